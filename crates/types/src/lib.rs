//! Cumulo's domain model: plain data, no I/O, shared by every other crate.
//!
//! The words follow `DESIGN.md`: providers, regions and clusters hold nodes of a node type; nodes
//! sit in a topology (NVLink domain, network block, zone); jobs ask for resources per node, a gang
//! size and a topology need, and run as attempts.

pub mod gpu;
pub mod infra;
pub mod job;
pub mod money;
pub mod node;

pub use gpu::{GpuModel, GpuSelector, MilliGpu, Speed};
pub use infra::{CapacityKind, InfraSelector, Provider};
pub use job::{
    AcceleratorDemand, AttemptId, Checkpoint, Constraints, JobId, JobKind, JobSpec, JobState, Priority, ResourceOption,
    SpreadPolicy, TopologyNeed,
};
pub use money::Money;
pub use node::{NodeType, Topology};

/// Errors raised when plain values are parsed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown GPU model `{0}` (known: {known})", known = gpu::GpuModel::known_names())]
    UnknownGpu(String),
    #[error("invalid GPU count `{0}`: expected a positive number such as 8 or 0.25")]
    InvalidGpuCount(String),
    #[error("invalid money amount `{0}`: expected a non-negative number of US dollars")]
    InvalidMoney(String),
    #[error("invalid provider `{0}`: expected lowercase letters, digits or '-'")]
    InvalidProvider(String),
    #[error("invalid {what} `{value}`: expected {expected}")]
    Invalid { what: &'static str, value: String, expected: &'static str },
}
