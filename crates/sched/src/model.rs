//! The scheduler's inputs and outputs: a snapshot of the fleet, the queue, and the plan.
//!
//! Everything here is plain serde data so the server can persist plans as JSON and the simulator
//! can replay them. Nodes are addressed by their index inside their pool's `nodes`; pools by
//! their `PoolId`, which must be unique within a snapshot.

use std::fmt;
use std::sync::Arc;

use cumulo_types::{
    CapacityKind, Constraints, InfraSelector, JobId, JobSpec, Money, NodeType, Priority, ResourceOption, SpreadPolicy,
    TopologyNeed,
};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, passed in by the caller (the core never reads a clock).
pub type Timestamp = u64;

/// A pool's id: unique within a snapshot, chosen by whoever builds the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PoolId(pub u32);

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the scheduler sees: capacity (pools of nodes), what already runs on it, and tenant policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub pools: Vec<Pool>,
    /// Allocations already running; their resources are not free.
    #[serde(default)]
    pub running: Vec<RunningAlloc>,
    /// Fair-share weights and quotas; a tenant not listed has weight 1 and no quota.
    #[serde(default)]
    pub tenants: Vec<TenantPolicy>,
}

/// Identical nodes of one node type, in one zone, held one way, at one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub id: PoolId,
    /// A readable name for explanations, e.g. `aws/us-east-1/use1-az1/gb200-nvl72/contract`.
    pub name: String,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub capacity: CapacityKind,
    pub node_type: NodeType,
    /// Price of one whole node for one hour. An input: contract-aware prices are computed
    /// elsewhere and written here; a job using part of a node pays its dominant share of it.
    pub price_per_node_hour: Money,
    pub nodes: Vec<NodeState>,
}

/// One node of a pool. `block` and `nvlink_domain` are ids local to the pool: nodes with equal
/// ids share the block or the NVLink domain. Use a distinct id per node when a node is its own
/// domain (8-GPU HGX nodes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub block: u32,
    pub nvlink_domain: u32,
    /// False for a node that is cordoned, down or draining: nothing new is placed on it.
    #[serde(default = "yes")]
    pub schedulable: bool,
}

fn yes() -> bool {
    true
}

/// GPUs given to a job on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuAlloc {
    #[default]
    None,
    /// Whole GPUs: bit `i` set means GPU `i` of the node.
    Whole { mask: u64 },
    /// A share of one physical GPU, in thousandths.
    Fraction { gpu: u8, milli: u16 },
}

impl GpuAlloc {
    /// GPUs in thousandths.
    pub fn milli(self) -> u64 {
        match self {
            GpuAlloc::None => 0,
            GpuAlloc::Whole { mask } => u64::from(mask.count_ones()) * 1000,
            GpuAlloc::Fraction { milli, .. } => u64::from(milli),
        }
    }
}

/// What one job holds on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAlloc {
    /// Index of the node in its pool's `nodes`.
    pub node: u32,
    pub gpus: GpuAlloc,
    pub cpus_milli: u32,
    pub memory_mib: u64,
}

/// Work already running, as the scheduler needs to know it (to account capacity, fair share and
/// to choose preemption victims).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningAlloc {
    pub job: JobId,
    #[serde(default)]
    pub replica: u32,
    pub tenant: String,
    pub priority: Priority,
    pub preemptible: bool,
    pub pool: PoolId,
    pub nodes: Vec<NodeAlloc>,
    pub started_at: Timestamp,
    /// When the allocation is expected to end (its start plus the job's `duration_s`); `None`
    /// when unknown, taken as never: backfill reservations count only on known ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_end: Option<Timestamp>,
}

/// A tenant's fair-share weight and optional quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicy {
    pub name: String,
    /// Relative weight in dominant resource fairness (at least 1).
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub quota: Quota,
}

fn one() -> u32 {
    1
}

/// The most a tenant may hold at once, running and newly placed together; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_milli: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_milli: Option<u64>,
}

/// One unit of work waiting for capacity: a job (or one replica of an inference job) with the
/// fields of its `JobSpec` that scheduling needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub id: JobId,
    /// Replica number for inference jobs queued once per replica; 0 otherwise.
    #[serde(default)]
    pub replica: u32,
    pub tenant: String,
    pub priority: Priority,
    pub preemptible: bool,
    /// Acceptable shapes per node; at least one. Shared: queue entries with the same options
    /// (a job's replicas, jobs a contract clause binds alike) hold one list, so copying a job's
    /// options is a pointer copy; [`QueuedJob::options_mut`] copies before a change.
    #[serde(with = "shared_options")]
    pub resources: Arc<[ResourceOption]>,
    /// True when `resources` is in order of preference; otherwise the cheapest feasible wins.
    #[serde(default)]
    pub ordered: bool,
    pub num_nodes: u32,
    pub topology: TopologyNeed,
    #[serde(default)]
    pub constraints: Constraints,
    pub submitted_at: Timestamp,
    /// How the job's replicas spread: with `providers` (`regions`), once one replica runs or is
    /// placed, another goes only to a different provider (provider and region) until two are
    /// used; after that replicas prefer the providers holding the fewest of the job's replicas.
    #[serde(default, skip_serializing_if = "no_spread")]
    pub spread: SpreadPolicy,
    /// Expected run time in seconds (`JobSpec::duration_s`); `None` when unknown, taken as
    /// forever: such a job never backfills onto nodes reserved for a waiting gang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
}

fn no_spread(spread: &SpreadPolicy) -> bool {
    *spread == SpreadPolicy::None
}

/// `QueuedJob::resources` (de)serialised as a plain list.
mod shared_options {
    use std::sync::Arc;

    use cumulo_types::ResourceOption;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(options: &Arc<[ResourceOption]>, s: S) -> Result<S::Ok, S::Error> {
        options.as_ref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[ResourceOption]>, D::Error> {
        Vec::<ResourceOption>::deserialize(d).map(Arc::from)
    }
}

impl QueuedJob {
    /// The job's options to change in place: a list shared with other entries is copied first.
    pub fn options_mut(&mut self) -> &mut [ResourceOption] {
        Arc::make_mut(&mut self.resources)
    }

    /// The queue entries for a job: one, or one per replica for a job with replicas (sharing
    /// one list of options).
    pub fn from_spec(id: JobId, spec: &JobSpec, submitted_at: Timestamp) -> Vec<QueuedJob> {
        let resources: Arc<[ResourceOption]> = Arc::from(spec.resources.as_slice());
        (0..spec.replicas.max(1))
            .map(|replica| QueuedJob {
                id,
                replica,
                tenant: spec.tenant.clone(),
                priority: spec.priority,
                preemptible: spec.preemptible,
                resources: Arc::clone(&resources),
                ordered: spec.ordered,
                num_nodes: spec.num_nodes,
                topology: spec.topology,
                constraints: spec.constraints.clone(),
                submitted_at,
                spread: spec.spread,
                duration_s: spec.duration_s,
            })
            .collect()
    }
}

/// What one scheduling pass decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The `now` the plan was made for.
    pub at: Timestamp,
    pub placements: Vec<Placement>,
    pub preemptions: Vec<Preemption>,
    /// Every queued job not placed, with the reason.
    pub pending: Vec<Pending>,
}

/// A job placed on nodes of one pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub job: JobId,
    #[serde(default)]
    pub replica: u32,
    pub pool: PoolId,
    /// Which of the job's resource options was used.
    pub option: u32,
    /// One entry per node of the gang, in the order of the gang's ranks.
    pub nodes: Vec<NodeAlloc>,
    /// What the placement costs per hour at the pool's price (dominant share of each node).
    pub price_per_hour: Money,
}

/// A running allocation to stop so that a higher-priority job can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preemption {
    pub victim: JobId,
    #[serde(default)]
    pub victim_replica: u32,
    pub pool: PoolId,
    pub for_job: JobId,
}

/// A job left waiting, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub job: JobId,
    #[serde(default)]
    pub replica: u32,
    pub reason: PendingReason,
}

/// Why a job was not placed. `Display` gives a human message; `explain` adds the job's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingReason {
    /// The request itself is malformed (no resource option, zero nodes, ...).
    InvalidRequest { detail: String },
    /// No pool in the fleet has any of the GPU models the job accepts.
    NoSuchGpuModel { wanted: String },
    /// Pools have the right hardware, but no node type is large enough for one node of the job.
    NoNodeLargeEnough { wanted: String },
    /// Pools with fitting nodes exist, but the job's constraints (infra, deny, spot, instance
    /// type, max price) exclude all of them.
    ConstraintExcludesAllPools { detail: String },
    /// No eligible pool has enough nodes in one NVLink domain / block / zone, even when empty.
    TopologyUnsatisfiable { nodes: u32, topology: TopologyNeed, largest_group: u32 },
    /// Placing the job would take its tenant over quota.
    Quota { tenant: String, resource: QuotaResource, limit: u64, used: u64, wanted: u64 },
    /// The job could run on an empty fleet, but not now, even after preempting what it may.
    InsufficientCapacity { nodes: u32, topology: TopologyNeed, eligible_pools: u32 },
    /// The job asks for its replicas on two providers (regions), its replicas run or were placed
    /// only on `used`, and no eligible pool elsewhere has room now.
    SpreadUnsatisfiable { policy: SpreadPolicy, used: Vec<String> },
    /// The job would fit now only on nodes reserved for the waiting gang `gang`, which starts
    /// there at `start`, and it is not expected to end by then (no `duration_s`, or too long).
    HeldForReservation { gang: JobId, start: Timestamp },
    /// A contract clause (the pass's [`Narrowing`](crate::Narrowing)) leaves no provider that
    /// may take any of the job's options yet; the caller words the clause.
    ContractClause,
}

/// Which quota a job would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaResource {
    GpusMilli,
    CpusMilli,
}

impl PendingReason {
    /// A short stable code for tables and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PendingReason::InvalidRequest { .. } => "invalid_request",
            PendingReason::NoSuchGpuModel { .. } => "no_such_gpu_model",
            PendingReason::NoNodeLargeEnough { .. } => "no_node_large_enough",
            PendingReason::ConstraintExcludesAllPools { .. } => "constraint_excludes_all_pools",
            PendingReason::TopologyUnsatisfiable { .. } => "topology_unsatisfiable",
            PendingReason::Quota { .. } => "quota",
            PendingReason::InsufficientCapacity { .. } => "insufficient_capacity",
            PendingReason::SpreadUnsatisfiable { .. } => "spread_unsatisfiable",
            PendingReason::HeldForReservation { .. } => "held_for_reservation",
            PendingReason::ContractClause => "contract_clause",
        }
    }
}

fn group_word(topology: TopologyNeed) -> &'static str {
    match topology {
        TopologyNeed::NvlinkDomain => "one NVLink domain",
        TopologyNeed::Block => "one network block",
        TopologyNeed::Zone => "one zone",
        TopologyNeed::Any => "one pool",
    }
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::InvalidRequest { detail } => write!(f, "invalid request: {detail}"),
            PendingReason::NoSuchGpuModel { wanted } => write!(f, "no pool in the fleet has {wanted}"),
            PendingReason::NoNodeLargeEnough { wanted } => {
                write!(f, "no node type is large enough for one node of {wanted}")
            }
            PendingReason::ConstraintExcludesAllPools { detail } => {
                write!(f, "constraints exclude every pool with fitting nodes: {detail}")
            }
            PendingReason::TopologyUnsatisfiable { nodes, topology, largest_group } => write!(
                f,
                "needs {nodes} nodes in {}, but the largest eligible one has {largest_group}",
                group_word(*topology)
            ),
            PendingReason::Quota { tenant, resource, limit, used, wanted } => {
                let (unit, div) = match resource {
                    QuotaResource::GpusMilli => ("GPUs", 1000.0),
                    QuotaResource::CpusMilli => ("vCPUs", 1000.0),
                };
                write!(
                    f,
                    "tenant {tenant} quota of {} {unit} reached ({} used, job wants {})",
                    *limit as f64 / div,
                    *used as f64 / div,
                    *wanted as f64 / div
                )
            }
            PendingReason::InsufficientCapacity { nodes, topology, eligible_pools } => write!(
                f,
                "not enough free capacity now: needs {nodes} fitting node(s) in {} across {eligible_pools} eligible pool(s)",
                group_word(*topology)
            ),
            PendingReason::SpreadUnsatisfiable { policy, used } => {
                let (what, each) = match policy {
                    SpreadPolicy::Regions => ("regions", "region"),
                    _ => ("providers", "provider"),
                };
                write!(
                    f,
                    "spread over {what} needs replicas on at least two {what}, but the job's replicas are only on {}, and no eligible pool in another {each} has room now",
                    used.join(", ")
                )
            }
            PendingReason::HeldForReservation { gang, start } => {
                write!(f, "held: would delay reserved gang job {gang} starting at {start}")
            }
            PendingReason::ContractClause => f.write_str("a contract clause leaves no provider that may take it yet"),
        }
    }
}

/// Settings of a scheduling pass. `Default` is what the server and the simulator use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Whether higher-priority jobs may preempt lower-priority preemptible allocations.
    pub preemption: bool,
    /// The most victims one job may preempt.
    pub max_victims_per_job: u32,
    /// How a single-node job's pool and node are chosen (gangs always take the cheapest pool).
    #[serde(default)]
    pub placement: PlacementRule,
    /// Whether CPU-only work may also use the CPUs of GPU nodes (by default only CPU nodes).
    #[serde(default)]
    pub cpu_work_on_gpu_nodes: bool,
    /// How jobs of one priority and tenant are ordered within a pass.
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// Whether the first waiting gang of a pass gets a reservation that later jobs backfill
    /// around.
    #[serde(default)]
    pub backfill: Backfill,
}

/// How a pass treats capacity that a waiting gang will need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backfill {
    /// EASY backfill: the first gang of the pass's order left waiting for capacity reserves
    /// the nodes it would get at the earliest time `T` the running work's expected ends free
    /// them; later jobs use those nodes only if they are expected to end by `T`.
    #[default]
    Reservations,
    /// Every job takes whatever fits now, in order (a big gang may wait forever).
    Greedy,
}

/// The order of jobs of one priority and tenant within a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// Submission time, then id.
    #[default]
    Submitted,
    /// The queue's own order: the caller ordered it (the heterogeneity rounds' JCT order,
    /// [`crate::hetero::plan_round`]).
    AsGiven,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preemption: true,
            max_victims_per_job: 1024,
            placement: PlacementRule::CheapestBestFit,
            cpu_work_on_gpu_nodes: false,
            queue_order: QueueOrder::Submitted,
            backfill: Backfill::Reservations,
        }
    }
}

/// How a single-node job's pool and node are chosen among those that hold it. Every rule is a
/// pure function of the scheduler's state and the job (`Random` draws from a hash of its seed and
/// the job id, not from a random source).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum PlacementRule {
    /// The cheapest pool (options in order when the job orders them), its best-fitting node.
    #[default]
    CheapestBestFit,
    /// Price-blind best fit over every eligible node: the node left with the fewest free GPUs,
    /// then the fewest free vCPUs.
    BestFit,
    /// Price-blind: a fitting node drawn uniformly.
    Random { seed: u64 },
    /// Price-blind fragmentation gradient descent (Weng et al., USENIX ATC'23): the node (and
    /// shared GPU) whose expected fragmentation, for the target workload, grows least; ties
    /// drawn uniformly, as the published Kubernetes plugin's host selection does.
    Fragmentation { seed: u64 },
    /// Cumulo's: the cheapest price tier first (the first option with room when the job orders
    /// them), then within it the least growth of expected fragmentation; ties go to CPU nodes for
    /// CPU-only work, then to the node left fullest.
    CostThenFragmentation,
}

/// One class of the work the fleet expects (the target workload of fragmentation-aware
/// placement): what one node of it takes, the GPU models it accepts (empty: any), and how often
/// it comes (a relative weight).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetClass {
    /// Thousandths of a GPU per node: below 1000 a share of one GPU, else whole GPUs.
    pub gpu_milli: u32,
    pub cpus_milli: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub models: Vec<cumulo_types::GpuModel>,
    pub weight: u32,
}

/// Helper so callers can build a snapshot's node list quickly.
impl NodeState {
    pub fn new(name: impl Into<String>, block: u32, nvlink_domain: u32) -> NodeState {
        NodeState { name: name.into(), block, nvlink_domain, schedulable: true }
    }
}

/// The infra a pool sits in, for matching `InfraSelector`s.
impl Pool {
    pub fn matches(&self, infra: &InfraSelector) -> bool {
        infra.matches(&self.provider, &self.region, Some(&self.zone))
    }
}
