//! Small hand-written fleets and jobs for tests: `FleetBuilder::new().nvl72_racks("aws", 2)` and
//! `job(7).gpus("GB200", "4").nodes(18).topology(NvlinkDomain)`. Modifiers such as `.price()` or
//! `.spot()` apply to the pool added last.

use std::sync::Arc;

use cumulo_sched::{
    GpuAlloc, NodeAlloc, NodeState, Pool, PoolId, QueuedJob, Quota, RunningAlloc, Snapshot, TenantPolicy,
};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, Constraints, GpuModel, GpuSelector, InfraSelector, JobId, MilliGpu, Money,
    NodeType, Priority, ResourceOption, SpreadPolicy, TopologyNeed,
};

/// Builds a `Snapshot` pool by pool.
#[derive(Clone, Debug, Default)]
pub struct FleetBuilder {
    snapshot: Snapshot,
}

/// A node type with the usual shape for a GPU model: NVL72 nodes (4 GPUs, 144 vCPUs, 18 per
/// domain) for GB200/GB300, 8-GPU HGX nodes otherwise.
pub fn gpu_node_type(model: GpuModel) -> NodeType {
    let (gpus, vcpus, memory_gb) = match model {
        GpuModel::GB200 | GpuModel::GB300 => (4, 144, 960),
        _ => (8, 192, 2048),
    };
    NodeType {
        name: format!("{}x{}", model.name().to_ascii_lowercase(), gpus),
        gpu: Some(model),
        gpus,
        vcpus,
        memory_gb,
        nvlink_domain_nodes: NodeType::default_nvlink_domain_nodes(Some(model)),
    }
}

/// A CPU node type with `vcpus` vCPUs and 4 GiB per vCPU.
pub fn cpu_node_type(vcpus: u32) -> NodeType {
    NodeType { name: format!("cpu{vcpus}"), gpu: None, gpus: 0, vcpus, memory_gb: vcpus * 4, nvlink_domain_nodes: 1 }
}

/// A list price per node-hour that is plausible for the node type (for tests and synthetic fleets).
pub fn list_price(node_type: &NodeType) -> Money {
    let per_gpu_cents: i64 = match node_type.gpu {
        Some(GpuModel::GB300) => 900,
        Some(GpuModel::GB200) => 700,
        Some(GpuModel::B200) => 600,
        Some(GpuModel::H200) => 450,
        Some(GpuModel::H100) => 350,
        Some(_) => 200,
        None => 0,
    };
    if node_type.gpus > 0 {
        Money::from_micros(per_gpu_cents * 10_000 * i64::from(node_type.gpus))
    } else {
        Money::from_micros(40_000 * i64::from(node_type.vcpus))
    }
}

impl FleetBuilder {
    pub fn new() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// Adds a pool of `nodes` nodes, each `domain_nodes` to an NVLink domain and `block_nodes` to
    /// a network block, in `provider/<provider>-region-1/<provider>-zone-a`, contract capacity.
    pub fn pool(mut self, provider: &str, node_type: NodeType, nodes: u32, block_nodes: u32) -> FleetBuilder {
        let id = PoolId(self.snapshot.pools.len() as u32);
        let domain = node_type.nvlink_domain_nodes.max(1);
        let block = block_nodes.max(1);
        let price = list_price(&node_type);
        let region = format!("{provider}-region-1");
        let zone = format!("{provider}-zone-a");
        let nodes = (0..nodes).map(|i| NodeState::new(format!("p{}n{i}", id.0), i / block, i / domain)).collect();
        self.snapshot.pools.push(Pool {
            id,
            name: format!("{provider}/{region}/{zone}/{}/contract", node_type.name),
            provider: provider.to_string(),
            region,
            zone,
            capacity: CapacityKind::Contract,
            node_type,
            price_per_node_hour: price,
            nodes,
        });
        self
    }

    /// `racks` GB200 NVL72 racks (18 nodes × 4 GPUs each), 8 racks to a block.
    pub fn nvl72_racks(self, provider: &str, racks: u32) -> FleetBuilder {
        self.pool(provider, gpu_node_type(GpuModel::GB200), racks * 18, 8 * 18)
    }

    /// `racks` GB300 NVL72 racks, 8 racks to a block.
    pub fn gb300_racks(self, provider: &str, racks: u32) -> FleetBuilder {
        self.pool(provider, gpu_node_type(GpuModel::GB300), racks * 18, 8 * 18)
    }

    /// `nodes` 8-GPU HGX nodes of `model`, 32 nodes to a block.
    pub fn hgx(self, provider: &str, model: GpuModel, nodes: u32) -> FleetBuilder {
        self.pool(provider, gpu_node_type(model), nodes, 32)
    }

    /// `nodes` CPU nodes of `vcpus` vCPUs, 64 nodes to a block.
    pub fn cpu_nodes(self, provider: &str, nodes: u32, vcpus: u32) -> FleetBuilder {
        self.pool(provider, cpu_node_type(vcpus), nodes, 64)
    }

    fn last(&mut self) -> &mut Pool {
        self.snapshot.pools.last_mut().expect("add a pool first")
    }

    /// Sets the last pool's price per node-hour, in whole dollars.
    pub fn price(mut self, dollars: i64) -> FleetBuilder {
        self.last().price_per_node_hour = Money::from_dollars(dollars);
        self
    }

    pub fn capacity(mut self, kind: CapacityKind) -> FleetBuilder {
        let pool = self.last();
        pool.capacity = kind;
        pool.name = format!("{}/{}/{}/{}/{}", pool.provider, pool.region, pool.zone, pool.node_type.name, kind);
        self
    }

    pub fn spot(self) -> FleetBuilder {
        self.capacity(CapacityKind::Spot)
    }

    pub fn region(mut self, region: &str, zone: &str) -> FleetBuilder {
        let pool = self.last();
        pool.region = region.to_string();
        pool.zone = zone.to_string();
        pool.name = format!("{}/{region}/{zone}/{}/{}", pool.provider, pool.node_type.name, pool.capacity);
        self
    }

    /// Regroups the last pool's nodes into blocks of `n` nodes.
    pub fn nodes_per_block(mut self, n: u32) -> FleetBuilder {
        for (i, node) in self.last().nodes.iter_mut().enumerate() {
            node.block = i as u32 / n.max(1);
        }
        self
    }

    /// Marks node `i` of the last pool unschedulable.
    pub fn cordon(mut self, i: u32) -> FleetBuilder {
        self.last().nodes[i as usize].schedulable = false;
        self
    }

    /// Records work already running on the last pool: `gpus` whole GPUs on each listed node.
    pub fn running(
        mut self,
        job: u64,
        nodes: &[u32],
        gpus: u32,
        priority: Priority,
        preemptible: bool,
    ) -> FleetBuilder {
        let pool = self.last().id;
        let mask = if gpus == 0 { 0 } else { (1u64 << gpus) - 1 };
        let allocs = nodes
            .iter()
            .map(|&node| NodeAlloc {
                node,
                gpus: if gpus == 0 { GpuAlloc::None } else { GpuAlloc::Whole { mask } },
                cpus_milli: 0,
                memory_mib: 0,
            })
            .collect();
        self.snapshot.running.push(RunningAlloc {
            job: JobId(job),
            replica: 0,
            tenant: "running".to_string(),
            priority,
            preemptible,
            pool,
            nodes: allocs,
            started_at: job,
            expected_end: None,
        });
        self
    }

    /// Gives the last running allocation an expected end (for backfill reservations).
    pub fn ending_at(mut self, end: u64) -> FleetBuilder {
        self.snapshot.running.last_mut().expect("running work was added").expected_end = Some(end);
        self
    }

    /// Adds raw running work (any pool).
    pub fn running_alloc(mut self, alloc: RunningAlloc) -> FleetBuilder {
        self.snapshot.running.push(alloc);
        self
    }

    pub fn tenant(mut self, name: &str, weight: u32, quota: Quota) -> FleetBuilder {
        self.snapshot.tenants.push(TenantPolicy { name: name.to_string(), weight, quota });
        self
    }

    pub fn build(self) -> Snapshot {
        self.snapshot
    }
}

/// Starts a test job: one node, one vCPU, tenant `t`, normal priority, not preemptible.
pub fn job(id: u64) -> JobBuilder {
    JobBuilder {
        job: QueuedJob {
            id: JobId(id),
            replica: 0,
            tenant: "t".to_string(),
            priority: Priority::NORMAL,
            preemptible: false,
            resources: Arc::new([ResourceOption { cpus_milli: 1000, ..ResourceOption::default() }]),
            ordered: false,
            num_nodes: 1,
            topology: TopologyNeed::Any,
            constraints: Constraints::default(),
            submitted_at: id,
            spread: SpreadPolicy::None,
            duration_s: None,
        },
    }
}

/// A queued job under construction; modifiers apply to its last resource option.
#[derive(Clone, Debug)]
pub struct JobBuilder {
    job: QueuedJob,
}

impl JobBuilder {
    fn option(&mut self) -> &mut ResourceOption {
        self.job.options_mut().last_mut().expect("a job has an option")
    }

    /// GPUs per node: `models` is `GB200` or `H100|H200`; `count` is `4` or `0.25`.
    pub fn gpus(mut self, models: &str, count: &str) -> JobBuilder {
        let models = models.split('|').map(|m| GpuModel::parse(m).expect("known GPU model")).collect();
        let per_node = MilliGpu::parse(count).expect("valid GPU count");
        self.option().accelerators =
            Some(AcceleratorDemand { selector: GpuSelector::Models(models), per_node, names: Vec::new() });
        self.option().cpus_milli = 0;
        self
    }

    /// GPUs per node by memory: any model with at least `gb` GB.
    pub fn gpus_min_memory(mut self, gb: u32, count: &str) -> JobBuilder {
        let per_node = MilliGpu::parse(count).expect("valid GPU count");
        self.option().accelerators =
            Some(AcceleratorDemand { selector: GpuSelector::MinMemoryGb(gb), per_node, names: Vec::new() });
        self.option().cpus_milli = 0;
        self
    }

    pub fn cpus(mut self, vcpus: u32) -> JobBuilder {
        self.option().cpus_milli = vcpus * 1000;
        self
    }

    pub fn cpus_milli(mut self, milli: u32) -> JobBuilder {
        self.option().cpus_milli = milli;
        self
    }

    pub fn memory_gib(mut self, gib: u64) -> JobBuilder {
        self.option().memory_mib = gib * 1024;
        self
    }

    pub fn infra(mut self, infra: &str) -> JobBuilder {
        self.option().infra = Some(InfraSelector::parse(infra).expect("valid infra"));
        self
    }

    pub fn spot(mut self) -> JobBuilder {
        self.option().use_spot = true;
        self
    }

    pub fn instance_type(mut self, name: &str) -> JobBuilder {
        self.option().instance_type = Some(name.to_string());
        self
    }

    /// Adds another acceptable resource option (SkyPilot's `any_of`).
    pub fn or(mut self) -> JobBuilder {
        let mut options = self.job.resources.to_vec();
        options.push(ResourceOption { cpus_milli: 1000, ..ResourceOption::default() });
        self.job.resources = options.into();
        self
    }

    pub fn ordered(mut self) -> JobBuilder {
        self.job.ordered = true;
        self
    }

    pub fn nodes(mut self, n: u32) -> JobBuilder {
        self.job.num_nodes = n;
        self
    }

    pub fn topology(mut self, t: TopologyNeed) -> JobBuilder {
        self.job.topology = t;
        self
    }

    pub fn priority(mut self, p: Priority) -> JobBuilder {
        self.job.priority = p;
        self
    }

    pub fn tenant(mut self, t: &str) -> JobBuilder {
        self.job.tenant = t.to_string();
        self
    }

    pub fn preemptible(mut self) -> JobBuilder {
        self.job.preemptible = true;
        self
    }

    pub fn deny(mut self, infra: &str) -> JobBuilder {
        self.job.constraints.deny.push(InfraSelector::parse(infra).expect("valid infra"));
        self
    }

    pub fn max_price(mut self, dollars: i64) -> JobBuilder {
        self.job.constraints.max_price_per_hour = Some(Money::from_dollars(dollars));
        self
    }

    /// Spread policy for the job's replicas.
    pub fn spread(mut self, spread: SpreadPolicy) -> JobBuilder {
        self.job.spread = spread;
        self
    }

    /// Replica number (for jobs queued once per replica).
    pub fn replica(mut self, replica: u32) -> JobBuilder {
        self.job.replica = replica;
        self
    }

    /// Expected run time in seconds.
    pub fn duration(mut self, seconds: u64) -> JobBuilder {
        self.job.duration_s = Some(seconds);
        self
    }

    pub fn submitted_at(mut self, at: u64) -> JobBuilder {
        self.job.submitted_at = at;
        self
    }

    pub fn build(self) -> QueuedJob {
        self.job
    }
}

impl From<JobBuilder> for QueuedJob {
    fn from(b: JobBuilder) -> QueuedJob {
        b.build()
    }
}

/// A narrowing for tests: every option may go only to `provider` (as an exclusive contract clause
/// leaves work), whatever the wait.
pub struct OnlyOn(pub &'static str);

impl cumulo_sched::Narrowing for OnlyOn {
    fn regime(&self, _waited_s: u64) -> u64 {
        0
    }

    fn narrow(&self, options: &[ResourceOption], _waited_s: u64) -> cumulo_sched::Narrowed {
        let infra = InfraSelector::parse(self.0).expect("valid provider");
        let options: Vec<ResourceOption> =
            options.iter().map(|o| ResourceOption { infra: Some(infra.clone()), ..o.clone() }).collect();
        let origins: Vec<u32> = (0..options.len() as u32).collect();
        cumulo_sched::Narrowed::To { options: options.into(), origins: origins.into() }
    }

    fn key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish().max(1)
    }
}
