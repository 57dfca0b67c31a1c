//! Seeded synthetic fleets and queues at the mission's scale, and builders for hand-written test
//! fleets. `sched` stays free of randomness; this crate owns it. The same `(config, seed)` always
//! gives the same fleet or queue.

mod builder;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use cumulo_sched::{NodeState, Pool, PoolId, QueuedJob, Quota, Snapshot, TenantPolicy, Timestamp};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, Constraints, GpuModel, GpuSelector, JobId, MilliGpu, Money, Priority,
    ResourceOption, SpreadPolicy, TopologyNeed,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use builder::{FleetBuilder, JobBuilder, OnlyOn, cpu_node_type, gpu_node_type, job, list_price};

/// Bad generator settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid mix `{0}`: expected sandbox, gang or mixed")]
    InvalidMix(String),
}

/// The shape of a synthetic fleet. The default is the mission's scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// GPUs in total (approximately: NVL72 pools come in whole racks, HGX pools in whole nodes).
    pub gpus: u64,
    /// vCPUs of CPU-only nodes in total (approximately, whole nodes).
    pub vcpus: u64,
    /// vCPUs per CPU node.
    pub cpu_node_vcpus: u32,
    pub providers: Vec<String>,
    /// NVL72 racks per network block.
    pub racks_per_block: u32,
    /// 8-GPU nodes per network block.
    pub hgx_nodes_per_block: u32,
    /// CPU nodes per block.
    pub cpu_nodes_per_block: u32,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            gpus: 500_000,
            vcpus: 10_000_000,
            cpu_node_vcpus: 192,
            providers: ["aws", "azure", "gcp", "oci", "coreweave"].iter().map(|p| p.to_string()).collect(),
            racks_per_block: 16,
            hgx_nodes_per_block: 32,
            cpu_nodes_per_block: 64,
        }
    }
}

fn regions(provider: &str) -> [&'static str; 2] {
    match provider {
        "aws" => ["us-east-1", "us-west-2"],
        "azure" => ["eastus", "westus2"],
        "gcp" => ["us-central1", "europe-west4"],
        "oci" => ["us-ashburn-1", "us-phoenix-1"],
        "coreweave" => ["us-east-04", "us-west-09"],
        _ => ["region-1", "region-2"],
    }
}

fn provider_factor(provider: &str) -> f64 {
    match provider {
        "aws" => 1.0,
        "azure" => 1.02,
        "gcp" => 0.98,
        "oci" => 0.9,
        "coreweave" => 0.85,
        _ => 1.0,
    }
}

const GPU_MIX: [(GpuModel, f64); 5] = [
    (GpuModel::GB200, 0.30),
    (GpuModel::GB300, 0.20),
    (GpuModel::H100, 0.20),
    (GpuModel::H200, 0.15),
    (GpuModel::B200, 0.15),
];

const KIND_MIX: [(CapacityKind, f64, f64); 3] =
    [(CapacityKind::Contract, 0.7, 0.6), (CapacityKind::OnDemand, 0.2, 1.0), (CapacityKind::Spot, 0.1, 0.4)];

/// A synthetic fleet: every provider has two regions of two zones; each zone holds GB200 and GB300
/// NVL72 racks, H100/H200/B200 8-GPU nodes and CPU nodes, as contract (70 %), on-demand (20 %)
/// and spot (10 %) pools. Prices are list prices scaled by provider and capacity kind, with a
/// ±5 % seeded jitter. Nothing is running and no tenant policy is set.
pub fn fleet(config: &FleetConfig, seed: u64) -> Snapshot {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let zones = (config.providers.len() * 4).max(1) as f64;
    let mut pools = Vec::new();
    let add = |pools: &mut Vec<Pool>,
               rng: &mut ChaCha8Rng,
               provider: &str,
               region: &str,
               zone: &str,
               nt: cumulo_types::NodeType,
               kind: CapacityKind,
               factor: f64,
               nodes: u32,
               block: u32| {
        if nodes == 0 {
            return;
        }
        let id = PoolId(pools.len() as u32);
        let jitter = rng.gen_range(0.95..1.05);
        let price = list_price(&nt).micros() as f64 * factor * provider_factor(provider) * jitter;
        let domain = nt.nvlink_domain_nodes.max(1);
        let prefix = format!("{zone}-{}-{}", nt.name, kind.as_str());
        let nodes = (0..nodes).map(|i| NodeState::new(format!("{prefix}-{i}"), i / block.max(1), i / domain)).collect();
        pools.push(Pool {
            id,
            name: format!("{provider}/{region}/{zone}/{}/{kind}", nt.name),
            provider: provider.to_string(),
            region: region.to_string(),
            zone: zone.to_string(),
            capacity: kind,
            node_type: nt,
            price_per_node_hour: Money::from_micros(price.round() as i64),
            nodes,
        });
    };
    for provider in &config.providers {
        for region in regions(provider) {
            for zone_letter in ["a", "b"] {
                let zone = format!("{region}{zone_letter}");
                for (model, share) in GPU_MIX {
                    let nt = gpu_node_type(model);
                    for (kind, kind_share, factor) in KIND_MIX {
                        let gpus = config.gpus as f64 / zones * share * kind_share;
                        let (nodes, block) = if nt.nvlink_domain_nodes > 1 {
                            let racks = (gpus / f64::from(nt.gpus_per_nvlink_domain())).round() as u32;
                            (racks * nt.nvlink_domain_nodes, config.racks_per_block * nt.nvlink_domain_nodes)
                        } else {
                            ((gpus / f64::from(nt.gpus)).round() as u32, config.hgx_nodes_per_block)
                        };
                        add(&mut pools, &mut rng, provider, region, &zone, nt.clone(), kind, factor, nodes, block);
                    }
                }
                let nt = cpu_node_type(config.cpu_node_vcpus);
                for (kind, kind_share, factor) in KIND_MIX {
                    let vcpus = config.vcpus as f64 / zones * kind_share;
                    let nodes = (vcpus / f64::from(nt.vcpus)).round() as u32;
                    add(
                        &mut pools,
                        &mut rng,
                        provider,
                        region,
                        &zone,
                        nt.clone(),
                        kind,
                        factor,
                        nodes,
                        config.cpu_nodes_per_block,
                    );
                }
            }
        }
    }
    Snapshot { pools, running: Vec::new(), tenants: Vec::new() }
}

/// What kind of work a synthetic queue holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mix {
    /// 1–4 vCPU single-node agent sandboxes.
    Sandbox,
    /// Training gangs of 8 to 4,608 GPUs with NVLink-domain, block or zone needs.
    Gang,
    /// Sandboxes, fractional-GPU inference, batch and training from several tenants.
    #[default]
    Mixed,
}

impl Mix {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mix::Sandbox => "sandbox",
            Mix::Gang => "gang",
            Mix::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mix {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sandbox" => Ok(Mix::Sandbox),
            "gang" => Ok(Mix::Gang),
            "mixed" => Ok(Mix::Mixed),
            _ => Err(Error::InvalidMix(s.to_string())),
        }
    }
}

/// The shape of a synthetic queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub jobs: usize,
    pub mix: Mix,
    /// Submission time of the first job; jobs arrive 1,000 per second after it.
    pub start_at: Timestamp,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { jobs: 1_000_000, mix: Mix::Mixed, start_at: 1_767_225_600 }
    }
}

const SANDBOX_TENANTS: [&str; 4] = ["agents-a", "agents-b", "agents-c", "agents-d"];
const RESEARCH_TENANTS: [&str; 3] = ["research", "pretrain", "post-train"];
const SERVING_TENANTS: [&str; 2] = ["serving", "search"];

/// Fair-share weights for the tenants the synthetic queues use (no quotas).
pub fn tenant_policies() -> Vec<TenantPolicy> {
    let weight = |name: &str| match name {
        "serving" => 4,
        "pretrain" => 3,
        "research" | "post-train" => 2,
        _ => 1,
    };
    SANDBOX_TENANTS
        .iter()
        .chain(RESEARCH_TENANTS.iter())
        .chain(SERVING_TENANTS.iter())
        .map(|t| TenantPolicy { name: t.to_string(), weight: weight(t), quota: Quota::default() })
        .collect()
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|w| w.1).sum();
    let mut x = rng.gen_range(0..total);
    for &(v, w) in weighted {
        if x < w {
            return v;
        }
        x -= w;
    }
    weighted[weighted.len() - 1].0
}

fn base_job(id: u64, tenant: &str, submitted_at: Timestamp) -> QueuedJob {
    QueuedJob {
        id: JobId(id),
        replica: 0,
        tenant: tenant.to_string(),
        priority: Priority::NORMAL,
        preemptible: false,
        resources: Arc::new([]),
        ordered: false,
        num_nodes: 1,
        topology: TopologyNeed::Any,
        constraints: Constraints::default(),
        submitted_at,
        spread: SpreadPolicy::None,
        duration_s: None,
    }
}

fn gpu_option(selector: GpuSelector, per_node: MilliGpu, cpus: u32, memory_gib: u64) -> ResourceOption {
    ResourceOption {
        accelerators: Some(AcceleratorDemand { selector, per_node, names: Vec::new() }),
        cpus_milli: cpus * 1000,
        memory_mib: memory_gib * 1024,
        ..ResourceOption::default()
    }
}

fn sandbox(rng: &mut ChaCha8Rng, id: u64, at: Timestamp) -> QueuedJob {
    let mut job = base_job(id, SANDBOX_TENANTS[rng.gen_range(0..SANDBOX_TENANTS.len())], at);
    let vcpus: u32 = rng.gen_range(1..=4);
    job.preemptible = true;
    job.resources = Arc::new([ResourceOption {
        cpus_milli: vcpus * 1000,
        memory_mib: u64::from(vcpus) * 2 * 1024,
        ..ResourceOption::default()
    }]);
    job
}

fn training(rng: &mut ChaCha8Rng, id: u64, at: Timestamp, max_gpus: u32) -> QueuedJob {
    let mut job = base_job(id, RESEARCH_TENANTS[rng.gen_range(0..RESEARCH_TENANTS.len())], at);
    let model = pick(
        rng,
        &[
            (GpuModel::GB200, 35),
            (GpuModel::GB300, 20),
            (GpuModel::H100, 20),
            (GpuModel::H200, 15),
            (GpuModel::B200, 10),
        ],
    );
    let nvl = matches!(model, GpuModel::GB200 | GpuModel::GB300);
    let sizes: &[(u32, u32)] = &[
        (8, 30),
        (16, 15),
        (32, 12),
        (64, 10),
        (72, 8),
        (128, 7),
        (256, 6),
        (512, 5),
        (1024, 4),
        (2048, 2),
        (4608, 1),
    ];
    let mut gpus = pick(rng, sizes).min(max_gpus);
    if !nvl {
        gpus = gpus.min(2048);
    }
    let per_node = if nvl { 4 } else { 8 };
    let nodes = gpus.div_ceil(per_node);
    job.num_nodes = nodes;
    job.topology = match (nvl, nodes) {
        (_, 1) => TopologyNeed::Any,
        (true, n) if n <= 18 => TopologyNeed::NvlinkDomain,
        (true, n) if n <= 16 * 18 => TopologyNeed::Block,
        (false, n) if n <= 32 => TopologyNeed::Block,
        _ => TopologyNeed::Zone,
    };
    job.priority = pick(rng, &[(Priority::HIGH, 15), (Priority::NORMAL, 70), (Priority::LOW, 15)]);
    job.preemptible = job.priority == Priority::LOW;
    job.resources = Arc::new([gpu_option(
        GpuSelector::Models(vec![model]),
        MilliGpu::whole(per_node),
        16 * per_node,
        128 * u64::from(per_node),
    )]);
    job
}

fn inference(rng: &mut ChaCha8Rng, id: u64, at: Timestamp) -> QueuedJob {
    let mut job = base_job(id, SERVING_TENANTS[rng.gen_range(0..SERVING_TENANTS.len())], at);
    job.priority = Priority::HIGH;
    let fraction = pick(rng, &[(250, 3), (500, 2), (1000, 1)]);
    let selector = if rng.gen_bool(0.5) {
        GpuSelector::MinMemoryGb(80)
    } else {
        GpuSelector::Models(vec![GpuModel::H100, GpuModel::H200])
    };
    job.resources = Arc::new([gpu_option(selector, MilliGpu(fraction), 4, 32)]);
    job
}

fn batch(rng: &mut ChaCha8Rng, id: u64, at: Timestamp) -> QueuedJob {
    let mut job = base_job(id, RESEARCH_TENANTS[rng.gen_range(0..RESEARCH_TENANTS.len())], at);
    job.priority = Priority::LOW;
    job.preemptible = true;
    if rng.gen_bool(0.5) {
        let gpus = pick(rng, &[(1, 4), (2, 3), (4, 2), (8, 1)]);
        let models = vec![GpuModel::H100, GpuModel::H200, GpuModel::B200];
        job.resources =
            Arc::new([gpu_option(GpuSelector::Models(models), MilliGpu::whole(gpus), 8 * gpus, 64 * u64::from(gpus))]);
    } else {
        let vcpus = pick(rng, &[(8, 3), (16, 2), (32, 1)]);
        job.resources = Arc::new([ResourceOption {
            cpus_milli: vcpus * 1000,
            memory_mib: u64::from(vcpus) * 4096,
            ..ResourceOption::default()
        }]);
    }
    job
}

/// A synthetic queue of `config.jobs` jobs with ids 1, 2, ... in submission order.
pub fn queue(config: &QueueConfig, seed: u64) -> Vec<QueuedJob> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0fc0_ffee);
    (0..config.jobs as u64)
        .map(|i| {
            let id = i + 1;
            let at = config.start_at + i / 1000;
            match config.mix {
                Mix::Sandbox => sandbox(&mut rng, id, at),
                Mix::Gang => training(&mut rng, id, at, 4608),
                Mix::Mixed => match pick(&mut rng, &[(0u8, 60), (1, 15), (2, 15), (3, 10)]) {
                    0 => sandbox(&mut rng, id, at),
                    1 => inference(&mut rng, id, at),
                    2 => batch(&mut rng, id, at),
                    _ => training(&mut rng, id, at, 512),
                },
            }
        })
        .collect()
}

/// A small demo fleet and queue that shows every kind of decision: an 18-node GB200 gang in one
/// NVL72 rack, the cheapest pool for an H100 job, fractional inference sharing one GPU, a
/// high-priority job preempting low-priority work, and jobs left pending with their reasons.
pub fn demo() -> (Snapshot, Vec<QueuedJob>) {
    use cumulo_types::GpuModel;
    let snapshot = FleetBuilder::new()
        .nvl72_racks("aws", 2)
        .region("us-east-1", "use1-az4")
        .price(40)
        .hgx("azure", GpuModel::H100, 2)
        .region("eastus", "eastus-1")
        .price(30)
        .hgx("coreweave", GpuModel::H100, 2)
        .region("us-east-04", "us-east-04a")
        .price(26)
        .running(900, &[0, 1], 8, Priority::LOW, true)
        .cpu_nodes("oci", 4, 64)
        .region("us-ashburn-1", "ad-1")
        .price(3)
        .tenant("research", 2, Quota::default())
        .tenant("serving", 3, Quota::default())
        .tenant("interns", 1, Quota { gpus_milli: Some(8_000), cpus_milli: None })
        .build();
    let mut queue = vec![
        job(1).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).tenant("research").build(),
        job(2).gpus("H100", "8").tenant("research").build(),
        job(3).gpus("H100", "0.25").cpus(4).tenant("serving").priority(Priority::HIGH).build(),
        job(4).gpus("H100", "0.25").cpus(4).tenant("serving").priority(Priority::HIGH).build(),
        job(5).gpus("H100", "8").nodes(2).tenant("serving").priority(Priority::CRITICAL).build(),
        job(6).gpus("GB300", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).tenant("research").build(),
        job(7).gpus("GB200", "4").nodes(19).topology(TopologyNeed::NvlinkDomain).tenant("research").build(),
        job(8).gpus("H100", "8").nodes(2).tenant("interns").build(),
    ];
    queue.extend((9..=12).map(|i| job(i).cpus(2).memory_gib(4).tenant("interns").preemptible().build()));
    (snapshot, queue)
}

/// Totals of a snapshot: GPUs, vCPUs and nodes.
pub fn fleet_totals(snapshot: &Snapshot) -> (u64, u64, u64) {
    snapshot.pools.iter().fold((0, 0, 0), |(g, c, n), p| {
        let nodes = p.nodes.len() as u64;
        (g + nodes * u64::from(p.node_type.gpus), c + nodes * u64::from(p.node_type.vcpus), n + nodes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fleet_has_the_mission_scale() {
        let snapshot = fleet(&FleetConfig::default(), 7);
        let (gpus, vcpus, _) = fleet_totals(&snapshot);
        assert!((480_000..=520_000).contains(&gpus), "{gpus} GPUs");
        let cpu_vcpus: u64 = snapshot
            .pools
            .iter()
            .filter(|p| p.node_type.gpus == 0)
            .map(|p| p.nodes.len() as u64 * u64::from(p.node_type.vcpus))
            .sum();
        assert!((9_900_000..=10_100_000).contains(&cpu_vcpus), "{cpu_vcpus} vCPUs of CPU nodes");
        assert!(vcpus > cpu_vcpus);
        let providers: std::collections::BTreeSet<&str> = snapshot.pools.iter().map(|p| p.provider.as_str()).collect();
        assert_eq!(providers.len(), 5);
        let gb200_rack_pool = snapshot.pools.iter().find(|p| p.node_type.gpu == Some(GpuModel::GB200)).unwrap();
        assert_eq!(gb200_rack_pool.nodes.len() % 18, 0, "whole NVL72 racks");
    }

    #[test]
    fn same_seed_same_fleet_and_queue() {
        let small = FleetConfig { gpus: 2_000, vcpus: 20_000, ..FleetConfig::default() };
        assert_eq!(fleet(&small, 1), fleet(&small, 1));
        assert_ne!(fleet(&small, 1), fleet(&small, 2));
        let q = QueueConfig { jobs: 500, mix: Mix::Mixed, start_at: 0 };
        assert_eq!(queue(&q, 3), queue(&q, 3));
        assert_ne!(queue(&q, 3), queue(&q, 4));
    }

    #[test]
    fn gang_queue_spans_8_to_4608_gpus() {
        let q = queue(&QueueConfig { jobs: 20_000, mix: Mix::Gang, start_at: 0 }, 1);
        let gpus = |j: &QueuedJob| j.num_nodes * j.resources[0].accelerators.as_ref().unwrap().per_node.0 / 1000;
        assert_eq!(q.iter().map(gpus).min(), Some(8));
        assert_eq!(q.iter().map(gpus).max(), Some(4608));
        assert!(q.iter().any(|j| j.topology == TopologyNeed::NvlinkDomain));
        assert!(q.iter().any(|j| j.topology == TopologyNeed::Block));
    }

    #[test]
    fn the_demo_shows_placements_preemption_and_pending_reasons() {
        let (snapshot, queue) = demo();
        let plan = cumulo_sched::schedule(&snapshot, &queue, 0).unwrap();
        cumulo_sched::verify_plan(&snapshot, &queue, &plan).unwrap();
        assert!(!plan.preemptions.is_empty());
        let codes: std::collections::BTreeSet<&str> = plan.pending.iter().map(|p| p.reason.code()).collect();
        for code in ["no_such_gpu_model", "topology_unsatisfiable", "quota"] {
            assert!(codes.contains(code), "{code} missing: {codes:?}");
        }
        let lines = plan.explain(&snapshot, &queue);
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("job 1 → aws/us-east-1/use1-az4/gb200x4/contract on 18 node(s) in one nvlink-domain")),
            "{lines:#?}"
        );
    }

    #[test]
    fn unknown_mix_is_an_error_naming_the_value() {
        assert_eq!(
            "gangs".parse::<Mix>().unwrap_err().to_string(),
            "invalid mix `gangs`: expected sandbox, gang or mixed"
        );
    }
}
