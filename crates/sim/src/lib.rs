//! Cumulo's simulator: trace importers, workload transforms, and a discrete-event simulation that
//! drives the fleet forward in virtual time with the very same scheduling core the server uses.
//!
//! Everything here is simulated; nothing talks to a real cloud. The engine is pure over its inputs
//! (a scenario, a seed): the same inputs give the same report, byte for byte.

pub mod engine;
pub mod fleet;
pub mod generator;
pub mod jobfiles;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod simulate;
pub mod speed;
pub mod target;
pub mod term;
pub mod trace;
pub mod transform;
pub mod workload;

use std::path::PathBuf;

/// Errors raised while reading traces, scenarios, or running a simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: {reason}")]
    Malformed { file: String, line: u64, reason: String },
    #[error("{file}: missing column `{column}`")]
    MissingColumn { file: String, column: String },
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },
    #[error("invalid {field} `{value}`: expected {expected}")]
    Invalid { field: String, value: String, expected: String },
    #[error("scenario: {0}")]
    Scenario(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(field: &str, value: impl ToString, expected: &str) -> Error {
        Error::Invalid { field: field.to_string(), value: value.to_string(), expected: expected.to_string() }
    }
}
