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
    /// The only tenants whose jobs may be placed here; `None`: every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// The on-demand list price of one node for one hour, metered beside the price paid (what the
    /// time would have cost without the contract or the spot discount); the paid price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_price_per_node_hour: Option<Money>,
    /// The node type of its nodes by the portfolio's or the catalog's name (a contract cluster
    /// holds its contract's capacity of this type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    /// The fleet file says the nodes mount the buckets a job's `file_mounts` name (at the
    /// destinations the job gives): no driver mounts a bucket, so a job with one is placed only
    /// on such clusters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_mounts: bool,
}

impl ClusterInfo {
    /// A cluster every tenant may use, priced `price_per_node_hour` and metered at that price,
    /// without a node type or bucket mounts; set the other fields with struct update syntax.
    pub fn new(
        name: impl Into<String>,
        provider: impl Into<String>,
        region: impl Into<String>,
        capacity: CapacityKind,
        price_per_node_hour: Money,
    ) -> ClusterInfo {
        ClusterInfo {
            name: name.into(),
            provider: provider.into(),
            region: region.into(),
            capacity,
            price_per_node_hour,
            tenants: None,
            list_price_per_node_hour: None,
            node_type: None,
            bucket_mounts: false,
        }
    }
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
    /// The pool's price of a whole node for one hour when the placement was made: metering scales
    /// `price_per_node_hour` by the pool's price now over this (absent in older placements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_price_per_node_hour: Option<Money>,
    /// The on-demand list price of the placement's share of one node for one hour (absent: the
    /// paid price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_price_per_node_hour: Option<Money>,
}

/// `price` scaled by `now / then` (exact integer arithmetic, rounded down); `price` when `then` is 0.
pub fn scale_price(price: Money, now: Money, then: Money) -> Money {
    if then.micros() <= 0 {
        return price;
    }
    let scaled = i128::from(price.micros()) * i128::from(now.micros()) / i128::from(then.micros());
    Money(i64::try_from(scaled).unwrap_or(i64::MAX))
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
    /// Keeps each queued job off clusters reserved for other tenants (`ClusterInfo::tenants`): a
    /// `deny` selector per pool of such a cluster (its provider, region and zone) joins the job's
    /// constraints, so the scheduler never places it there. Returns, per job, the clusters closed
    /// to it, for its pending reason. A zone shared with an open cluster is denied there too (the
    /// safe side), with a warning.
    pub fn keep_tenants_off_reserved_clusters(
        &self,
        clusters: &[ClusterInfo],
        queue: &mut [cumulo_sched::QueuedJob],
    ) -> HashMap<cumulo_types::JobId, Vec<String>> {
        let mut closed = HashMap::new();
        if clusters.iter().all(|c| c.tenants.is_none()) {
            return closed;
        }
        for job in queue.iter_mut() {
            for (c, cluster) in clusters.iter().enumerate() {
                let Some(tenants) = &cluster.tenants else { continue };
                if tenants.contains(&job.tenant) {
                    continue;
                }
                for pool in self.pools.iter().filter(|p| self.cluster_of(p.id) == Some(c)) {
                    let deny = cumulo_types::InfraSelector {
                        provider: Some(pool.provider.clone()),
                        region: Some(pool.region.clone()),
                        zone: Some(pool.zone.clone()),
                    };
                    if !job.constraints.deny.contains(&deny) {
                        job.constraints.deny.push(deny);
                    }
                }
                let names: &mut Vec<String> = closed.entry(job.id).or_default();
                if !names.contains(&cluster.name) {
                    names.push(cluster.name.clone());
                }
            }
        }
        for pool in &self.pools {
            let Some(c) = self.cluster_of(pool.id) else { continue };
            let shared = self.pools.iter().any(|other| {
                self.cluster_of(other.id).is_some_and(|o| o != c && clusters[o].tenants != clusters[c].tenants)
                    && (other.provider.as_str(), other.region.as_str(), other.zone.as_str())
                        == (pool.provider.as_str(), pool.region.as_str(), pool.zone.as_str())
            });
            if shared && clusters[c].tenants.is_some() {
                tracing::warn!(cluster = %clusters[c].name, zone = %pool.zone, "a tenant-reserved cluster shares its zone with another cluster: that cluster is closed to the same tenants");
            }
        }
        closed
    }

    pub fn cluster_of(&self, pool: PoolId) -> Option<usize> {
        self.members.get(&pool).map(|(cluster, _)| *cluster)
    }

    /// A scheduler placement as stored: cluster and node names with what each node gives, and the
    /// pool's offer (`contract` is the contract id of the cluster, for contract capacity) at the
    /// price paid for it (the plan's `price_per_hour` is the effective price it was chosen at, from
    /// a pool priced `chosen_at` per node-hour).
    pub fn store_placement(
        &self,
        clusters: &[ClusterInfo],
        placement: &Placement,
        contract: Option<&str>,
        chosen_at: Money,
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
        // The plan's price is the effective one the pass chose with; metering keeps what is paid:
        // the pool's paid price, scaled to the placement's share of its nodes.
        let node_count = i64::try_from(nodes.len()).unwrap_or(i64::MAX).max(1);
        let paid = self.paid.get(placement.pool.0 as usize).copied().unwrap_or(info.price_per_node_hour);
        let paid_share = scale_price(Money(placement.price_per_hour.micros() / node_count), paid, chosen_at);
        let offer = PoolOffer {
            provider: info.provider.clone(),
            region: info.region.clone(),
            capacity: pool.capacity,
            contract: (pool.capacity == CapacityKind::Contract).then(|| contract.unwrap_or(&info.name).to_string()),
            node_type: pool.node_type.name.clone(),
            gpu: pool.node_type.gpu,
            gpus: pool.node_type.gpus,
            price_per_node_hour: paid_share,
            pool_price_per_node_hour: Some(paid),
            list_price_per_node_hour: info.list_price_per_node_hour.map(|list| scale_price(paid_share, list, paid)),
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
            expected_end: spec.duration_s.map(|d| started_at.saturating_add(d)),
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
