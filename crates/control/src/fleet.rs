//! Turns what drivers discovered into the scheduler's pools, and placements back into node names.
//!
//! Pools are rebuilt on every pass, so pool ids and node indices are local to one pass; what is
//! stored (an attempt's placement) names clusters and nodes instead, which stay stable.

use std::collections::{BTreeMap, HashMap};

use cumulo_driver::{Capacity, NodeState as DriverNodeState};
use cumulo_sched::{GpuAlloc, NodeAlloc, NodeState, Placement, Pool, PoolId, RunningAlloc, Timestamp};
use cumulo_types::{CapacityKind, GpuModel, JobSpec, Money, NodeType};
use serde::{Deserialize, Serialize};

/// Where one cluster sits and what its nodes cost, from the fleet configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub capacity: CapacityKind,
    /// Price of one node for one hour as paid: the contract's rate or the list price. Each pass
    /// turns it into an effective price for scheduling (`contracts`); metering keeps this one.
    pub price_per_node_hour: Money,
    /// The node type of its nodes by the portfolio's or the catalog's name (a contract cluster
    /// holds its contract's capacity of this type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
}

/// One node of a stored placement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedNode {
    pub node: String,
    /// GPU indices on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<u32>,
    /// Thousandths of the one GPU in `gpus` when the job has a fraction of it; 0 for whole GPUs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpu_milli: u32,
    pub cpus_milli: u32,
    pub memory_mib: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An attempt's placement as stored with it: the cluster and node names, stable across passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlacement {
    pub cluster: String,
    pub pool: String,
    /// Which of the job's resource options was used.
    pub option: u32,
    pub nodes: Vec<PlacedNode>,
    pub price_per_hour: Money,
    /// What the pool's nodes are and how they are held, for metering (absent from placements
    /// stored before metering; the loop then falls back to the cluster's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<PoolOffer>,
}

/// The pool an attempt was placed on, as metering needs it: where, what node type, how it is held
/// and at what price per node-hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolOffer {
    pub provider: String,
    pub region: String,
    pub capacity: CapacityKind,
    /// The contract the pool draws on, for contract capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub node_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    #[serde(default)]
    pub gpus: u32,
    /// The plan's price of one node of the placement for one hour (`price_per_hour / nodes`).
    pub price_per_node_hour: Money,
}

/// The pools of one pass and how to find a node by name.
#[derive(Debug, Default)]
pub struct Fleet {
    pub pools: Vec<Pool>,
    /// Pool → (cluster index, node names in pool order).
    members: HashMap<PoolId, (usize, Vec<String>)>,
    /// (cluster, node) → (pool, index in pool).
    by_name: HashMap<(String, String), (PoolId, u32)>,
    /// Each pool's price as paid (its cluster's), kept when the pass reprices the pools.
    paid: Vec<Money>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct PoolKey {
    gpu: Option<String>,
    gpus: u32,
    vcpus: u32,
    memory_mib: u64,
    zone: String,
}

impl Fleet {
    /// Groups each cluster's nodes into pools of identical nodes per zone. `capacities[i]` belongs
    /// to `clusters[i]`; `None` (never discovered) contributes nothing.
    pub fn build(clusters: &[ClusterInfo], capacities: &[Option<Capacity>]) -> Fleet {
        let mut fleet = Fleet::default();
        for (index, (cluster, capacity)) in clusters.iter().zip(capacities).enumerate() {
            let Some(capacity) = capacity else { continue };
            let mut groups: BTreeMap<PoolKey, Vec<&cumulo_driver::NodeInfo>> = BTreeMap::new();
            for node in &capacity.nodes {
                let key = PoolKey {
                    gpu: node.gpu.map(|g| g.to_string()),
                    gpus: node.gpus,
                    vcpus: node.vcpus,
                    memory_mib: node.memory_mib,
                    zone: node.zone.clone().unwrap_or_else(|| format!("{}-zone", cluster.name)),
                };
                groups.entry(key).or_default().push(node);
            }
            for (key, nodes) in groups {
                let id = PoolId(fleet.pools.len() as u32);
                let gpu = nodes[0].gpu;
                let type_name = match gpu {
                    Some(model) => format!("{model}x{}", key.gpus),
                    None => format!("cpu-{}", key.vcpus),
                };
                let mut blocks = Interner::default();
                let mut domains = Interner::default();
                let states = nodes
                    .iter()
                    .map(|node| NodeState {
                        name: node.name.clone(),
                        block: blocks.id(node.block.as_deref().unwrap_or(&key.zone)),
                        nvlink_domain: domains.id(node.nvlink_domain.as_deref().unwrap_or(&node.name)),
                        schedulable: node.state == DriverNodeState::Up,
                    })
                    .collect();
                let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
                for (i, name) in names.iter().enumerate() {
                    fleet.by_name.insert((cluster.name.clone(), name.clone()), (id, i as u32));
                }
                fleet.members.insert(id, (index, names));
                fleet.paid.push(cluster.price_per_node_hour);
                fleet.pools.push(Pool {
                    id,
                    name: format!("{}/{}/{}/{}/{type_name}", cluster.provider, cluster.region, key.zone, cluster.name),
                    provider: cluster.provider.clone(),
                    region: cluster.region.clone(),
                    zone: key.zone.clone(),
                    capacity: cluster.capacity,
                    node_type: NodeType {
                        name: cluster.node_type.clone().unwrap_or(type_name),
                        gpu,
                        gpus: key.gpus,
                        vcpus: key.vcpus,
                        memory_gb: (key.memory_mib / 1024) as u32,
                        nvlink_domain_nodes: NodeType::default_nvlink_domain_nodes(gpu),
                    },
                    price_per_node_hour: cluster.price_per_node_hour,
                    nodes: states,
                });
            }
        }
        fleet
    }

    /// The cluster index a pool belongs to.
    pub fn cluster_of(&self, pool: PoolId) -> Option<usize> {
        self.members.get(&pool).map(|(cluster, _)| *cluster)
    }

    /// A scheduler placement as stored: cluster and node names with what each node gives, and the
    /// pool's offer (`contract` is the contract id of the cluster, for contract capacity) at the
    /// price paid for it (the plan's `price_per_hour` is the effective price it was chosen at).
    pub fn store_placement(
        &self,
        clusters: &[ClusterInfo],
        placement: &Placement,
        contract: Option<&str>,
    ) -> Option<StoredPlacement> {
        let (cluster, names) = self.members.get(&placement.pool)?;
        let pool = self.pools.get(placement.pool.0 as usize)?;
        let nodes = placement
            .nodes
            .iter()
            .map(|alloc| {
                let (gpus, gpu_milli) = match alloc.gpus {
                    GpuAlloc::None => (Vec::new(), 0),
                    GpuAlloc::Whole { mask } => ((0..64).filter(|i| mask & (1u64 << i) != 0).collect(), 0),
                    GpuAlloc::Fraction { gpu, milli } => (vec![u32::from(gpu)], u32::from(milli)),
                };
                Some(PlacedNode {
                    node: names.get(alloc.node as usize)?.clone(),
                    gpus,
                    gpu_milli,
                    cpus_milli: alloc.cpus_milli,
                    memory_mib: alloc.memory_mib,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let info = &clusters[*cluster];
        let offer = PoolOffer {
            provider: info.provider.clone(),
            region: info.region.clone(),
            capacity: pool.capacity,
            contract: (pool.capacity == CapacityKind::Contract).then(|| contract.unwrap_or(&info.name).to_string()),
            node_type: pool.node_type.name.clone(),
            gpu: pool.node_type.gpu,
            gpus: pool.node_type.gpus,
            price_per_node_hour: self.paid.get(placement.pool.0 as usize).copied().unwrap_or(info.price_per_node_hour),
        };
        Some(StoredPlacement {
            cluster: info.name.clone(),
            pool: pool.name.clone(),
            option: placement.option,
            nodes,
            price_per_hour: placement.price_per_hour,
            offer: Some(offer),
        })
    }

    /// What a stored placement holds in this pass's pools, or `None` when its nodes are no longer
    /// discovered (their capacity is gone, so nothing needs accounting).
    pub fn running_alloc(
        &self,
        placement: &StoredPlacement,
        spec: &JobSpec,
        started_at: Timestamp,
    ) -> Option<RunningAlloc> {
        let mut pool = None;
        let mut nodes = Vec::with_capacity(placement.nodes.len());
        for placed in &placement.nodes {
            let (id, index) = *self.by_name.get(&(placement.cluster.clone(), placed.node.clone()))?;
            if *pool.get_or_insert(id) != id {
                return None;
            }
            let gpus = match (placed.gpus.as_slice(), placed.gpu_milli) {
                ([], _) => GpuAlloc::None,
                ([gpu], milli) if milli > 0 => GpuAlloc::Fraction { gpu: *gpu as u8, milli: milli as u16 },
                (gpus, _) => GpuAlloc::Whole { mask: gpus.iter().fold(0u64, |mask, g| mask | (1u64 << g)) },
            };
            nodes.push(NodeAlloc { node: index, gpus, cpus_milli: placed.cpus_milli, memory_mib: placed.memory_mib });
        }
        Some(RunningAlloc {
            job: cumulo_types::JobId(0),
            replica: 0,
            tenant: spec.tenant.clone(),
            priority: spec.priority,
            preemptible: spec.preemptible,
            pool: pool?,
            nodes,
            started_at,
        })
    }
}

#[derive(Default)]
struct Interner(HashMap<String, u32>);

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        let next = self.0.len() as u32;
        *self.0.entry(name.to_string()).or_insert(next)
    }
}
