//! Node types and where a node sits in the network topology.

use serde::{Deserialize, Serialize};

use crate::gpu::GpuModel;

/// A kind of machine: GPUs, vCPUs and memory. `nvlink_domain_nodes` says how many nodes share one
/// NVLink domain (18 for a GB200/GB300 NVL72 rack of 18 × 4 GPUs; 1 for an 8-GPU HGX node).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeType {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    #[serde(default)]
    pub gpus: u32,
    pub vcpus: u32,
    pub memory_gb: u32,
    #[serde(default = "one")]
    pub nvlink_domain_nodes: u32,
}

fn one() -> u32 {
    1
}

impl NodeType {
    /// The NVLink domain size that a GPU model ships in by default: NVL72 racks (18 nodes × 4
    /// GPUs) for GB200 and GB300, one node otherwise.
    pub fn default_nvlink_domain_nodes(gpu: Option<GpuModel>) -> u32 {
        match gpu {
            Some(GpuModel::GB200 | GpuModel::GB300) => 18,
            _ => 1,
        }
    }

    pub fn gpus_per_nvlink_domain(&self) -> u32 {
        self.gpus * self.nvlink_domain_nodes
    }
}

/// Where a node sits: provider → region → zone → network block → NVLink domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Topology {
    pub provider: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_domain: Option<String>,
}
