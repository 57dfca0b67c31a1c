//! Scenario files (YAML): the fleet, the workload, the policies to compare, and the events.
//!
//! Paths in a scenario are absolute, relative to the scenario file, or start with `data:` to
//! resolve against `$CUMULO_DATA_DIR` (where the real traces live).

use std::path::{Path, PathBuf};

use cumulo_types::{CapacityKind, GpuModel};
use serde::Deserialize;

use crate::Error;
use crate::generator::Generator;
use crate::trace::OnBadRow;
use crate::trace::azure::Autoscale;
use crate::transform::Transform;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The calendar date simulated time starts at (YYYY-MM-DD), for display only.
    #[serde(default = "default_start")]
    pub start_date: String,
    /// Seed for everything random in the run (generators, transforms without their own seed).
    #[serde(default)]
    pub seed: u64,
    /// How many times `cumulo simulate` runs the scenario, with seeds `seed`, `seed + 1`, ...
    /// (tables then give the median over the runs).
    #[serde(default = "one_u32")]
    pub seeds: u32,
    /// Simulated time to run, in days. Without it the run ends when the workload has drained (or
    /// after 10 years of simulated time).
    #[serde(default)]
    pub horizon_days: Option<f64>,
    #[serde(default)]
    pub sim: SimSettings,
    pub fleet: FleetSpec,
    pub workload: WorkloadSpec,
    #[serde(default = "all_policies")]
    pub policies: Vec<PolicyName>,
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub events: Vec<EventSpec>,
}

fn one_u32() -> u32 {
    1
}

fn default_start() -> String {
    "2026-01-01".to_string()
}

fn all_policies() -> Vec<PolicyName> {
    vec![PolicyName::Cumulo, PolicyName::FifoFirstFit, PolicyName::CheapestFirst]
}

/// Engine settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Scheduling passes happen on multiples of this many seconds, when something changed.
    pub tick_s: u64,
    /// Seconds between samples of the time series in the report.
    pub sample_s: Option<u64>,
    /// Training jobs checkpoint this often (seconds of run time); work since the last checkpoint
    /// is lost when a node fails or the job is preempted.
    pub checkpoint_s: u64,
    /// An inference job meets its SLO when it starts within this many seconds of arriving.
    pub inference_slo_s: u64,
    /// At most this many queued jobs (in priority, then arrival order) go to one pass.
    pub max_queue_per_pass: usize,
    /// Cumulo's policy adds this share of the price to spot pools for the risk of preemption.
    pub spot_risk_premium: f64,
    /// Whether higher-priority work may preempt preemptible work (never under fifo-first-fit).
    pub preemption: bool,
    /// Whether a job left unplaced by a pass waits for the next; without retries it fails at its
    /// first pass and is counted as failed (the fill-up experiments of the fragmentation papers).
    pub retries: bool,
    /// Whether CPU-only work may also use the vCPUs of GPU nodes.
    pub cpu_work_on_gpu_nodes: bool,
    /// Whether the report keeps one row per job (`cumulo simulate --jobs-csv` turns it on).
    pub job_rows: bool,
    /// Heterogeneity-aware rounds with migration under Cumulo's policy (off when absent).
    pub rounds: Option<RoundSettings>,
    /// `reservations` (default: the first waiting gang reserves the nodes that free first, work
    /// backfills around it, by each job's expected run time) or `greedy`.
    pub backfill: cumulo_sched::Backfill,
}

/// Gavel-like rounds (`sim.rounds`): at every boundary Cumulo's policy re-plans which GPU model
/// each job holds (`cumulo_sched::hetero::plan_round`), moves running training or preemptible
/// work whose model changes, and orders the queue by shortest remaining time.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSettings {
    /// Seconds between round boundaries (Gavel uses 360).
    pub every_s: u64,
    /// What one move costs a job: seconds of checkpoint (in its SIGTERM grace period) plus
    /// restart, during which it holds its new GPUs without progress.
    pub migration_s: u64,
    /// A running job whose remaining work is unknown moves only when the new model is at least
    /// this much faster for it (with known work, a move must save more than `migration_s`).
    #[serde(default = "default_min_gain")]
    pub min_gain: f32,
}

fn default_min_gain() -> f32 {
    1.3
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            tick_s: 60,
            sample_s: None,
            checkpoint_s: 1800,
            inference_slo_s: 300,
            max_queue_per_pass: 20_000,
            spot_risk_premium: 0.25,
            preemption: true,
            retries: true,
            cpu_work_on_gpu_nodes: false,
            job_rows: false,
            rounds: None,
            backfill: cumulo_sched::Backfill::Reservations,
        }
    }
}

/// The policies a run compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// The real scheduler with contract-aware effective prices and heterogeneity-aware GPU order.
    Cumulo,
    /// Arrival order, priorities flattened, no preemption, every pool at the same price (first fit).
    FifoFirstFit,
    /// Commitment-blind cheapest-first at list price, as SkyPilot ranks offers.
    CheapestFirst,
    /// Price-blind best fit: the node left with the fewest free GPUs (then vCPUs).
    BestFit,
    /// Price-blind: a fitting node drawn uniformly (seeded by the scenario's seed).
    Random,
    /// Fragmentation gradient descent (Weng et al., USENIX ATC'23), price-blind, with the whole
    /// workload's distribution as its target workload (as the paper's evaluation gives it).
    Fgd,
}

impl PolicyName {
    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyName::Cumulo => "cumulo",
            PolicyName::FifoFirstFit => "fifo-first-fit",
            PolicyName::CheapestFirst => "cheapest-first",
            PolicyName::BestFit => "best-fit",
            PolicyName::Random => "random",
            PolicyName::Fgd => "fgd",
        }
    }
}

/// The fleet: pools written out, a portfolio's contracts, an Alibaba node list or a synthetic
/// fleet; several may be given and add up.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// A portfolio file (see `cumulo_portfolio`) whose contracts' ramps deliver contract pools, or
    /// `demo` for the built-in illustrative demo portfolio. `pools` beside it add on-demand or
    /// spot capacity.
    #[serde(default)]
    pub portfolio: Option<String>,
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// Nodes of an Alibaba 2023 node list, as owned (contract) capacity in one simulated region.
    #[serde(default)]
    pub alibaba_nodes: Option<String>,
    /// The synthetic fleet of `cumulo_synth::fleet` (the default is 500,000 GPUs and 10,000,000
    /// vCPUs over five providers); its contract pools form one contract per provider.
    #[serde(default)]
    pub synth: Option<SynthFleet>,
    /// Contracts: what was committed for which pools.
    #[serde(default)]
    pub contracts: Vec<ContractSpec>,
}

/// Settings of the synthetic fleet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthFleet {
    #[serde(default = "default_gpus")]
    pub gpus: u64,
    #[serde(default = "default_vcpus")]
    pub vcpus: u64,
    #[serde(default = "one_u64")]
    pub seed: u64,
}

fn default_gpus() -> u64 {
    500_000
}
fn default_vcpus() -> u64 {
    10_000_000
}
fn one_u64() -> u64 {
    1
}

/// Identical nodes in one zone, held one way.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub provider: String,
    pub region: String,
    #[serde(default)]
    pub zone: Option<String>,
    pub capacity: CapacityKind,
    #[serde(default)]
    pub gpu: Option<GpuModel>,
    #[serde(default)]
    pub gpus_per_node: u32,
    pub vcpus: u32,
    pub memory_gb: u32,
    /// Nodes per NVLink domain; by default the GPU model's (18 for GB200/GB300, else 1).
    #[serde(default)]
    pub nvlink_domain_nodes: Option<u32>,
    /// Nodes per network block; by default 8 NVLink domains.
    #[serde(default)]
    pub block_nodes: Option<u32>,
    /// Nodes delivered when the simulation starts.
    pub nodes: u32,
    /// Later deliveries (a contract's ramp).
    #[serde(default)]
    pub deliveries: Vec<DeliverySpec>,
    /// List price of one node for one hour, in US dollars.
    pub price_per_node_hour: f64,
    /// Contract the pool belongs to (capacity `contract` only).
    #[serde(default)]
    pub contract: Option<String>,
    /// The contract's rate per node-hour, in US dollars (defaults to the list price).
    #[serde(default)]
    pub contract_rate_per_node_hour: Option<f64>,
    /// Its clusters run jobs in their container image (`image_id: docker:`), as a fleet file's
    /// Slurm `container_images` or local `container_runtime` says. Default true.
    #[serde(default = "yes")]
    pub container_images: bool,
    /// Its clusters unpack a job's upload (a local `workdir` or local `file_mounts`), as the
    /// local driver does and Slurm and Ray do not. Default true.
    #[serde(default = "yes")]
    pub uploads: bool,
    /// Its nodes mount the buckets jobs' `file_mounts` name, as a fleet file's `bucket_mounts`
    /// says. Default true.
    #[serde(default = "yes")]
    pub bucket_mounts: bool,
}

fn yes() -> bool {
    true
}

/// Nodes that arrive at a time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    pub at_days: f64,
    pub nodes: u32,
}

/// A take-or-pay commitment over pools that name it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    pub name: String,
    /// Committed spend over the simulated horizon, US dollars. Without it the commitment is the
    /// contract rate for every delivered node-hour (pure take-or-pay).
    #[serde(default)]
    pub committed_usd: Option<f64>,
}

/// Where the work comes from, and how it is transformed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub sources: Vec<SourceSpec>,
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub transforms: Vec<Transform>,
    #[serde(default)]
    pub on_bad_row: OnBadRow,
}

/// One source of jobs.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    Gavel {
        trace: String,
        throughputs: String,
    },
    AlibabaPods {
        pods: String,
    },
    AlibabaDlrm {
        instances: String,
    },
    AzureLlm {
        trace: String,
        #[serde(default)]
        autoscale: Autoscale,
    },
    Generator(Generator),
    /// Job files (Cumulo's or SkyPilot task files, every job of each in order), one arriving
    /// every `every_s` seconds from 0; a job without `duration_s` runs `default_duration_s`.
    /// Their container images, uploads and bucket mounts keep them off pools that cannot give
    /// them (`container_images`, `uploads`, `bucket_mounts` of `fleet.pools`).
    JobFiles {
        files: Vec<String>,
        #[serde(default)]
        every_s: u64,
        #[serde(default = "one_hour_s")]
        default_duration_s: u64,
    },
}

fn one_hour_s() -> u64 {
    3600
}

/// Something that happens to the fleet at a time.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EventSpec {
    /// Every pool of a provider (and region, when given) goes down for a while; what runs there
    /// is lost since its last checkpoint and re-queued.
    Outage {
        provider: String,
        #[serde(default)]
        region: Option<String>,
        at_days: f64,
        for_hours: f64,
    },
    /// Deliveries of a provider's pools (and region, when given) due after `after_days` come
    /// `by_days` later.
    DeliveryDelay {
        provider: String,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        after_days: f64,
        by_days: f64,
    },
    /// List prices of a provider's pools (optionally one capacity kind) are multiplied by
    /// `factor` from a time on.
    PriceChange {
        provider: String,
        #[serde(default)]
        capacity: Option<CapacityKind>,
        at_days: f64,
        factor: f64,
    },
}

/// `fleet.portfolio: demo` names the built-in illustrative demo portfolio instead of a file.
pub const DEMO_PORTFOLIO: &str = "demo";

/// Seconds in a day.
pub const DAY: f64 = 86_400.0;

pub(crate) fn days_to_s(field: &str, days: f64) -> Result<u64, Error> {
    if !(days.is_finite() && days >= 0.0) {
        return Err(Error::invalid(field, days, "a non-negative number of days"));
    }
    Ok((days * DAY).round() as u64)
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut scenario = Scenario::parse(&text)?;
        scenario.resolve_paths(path.parent().unwrap_or(Path::new(".")))?;
        Ok(scenario)
    }

    /// Parses scenario YAML; paths stay as written.
    pub fn parse(text: &str) -> Result<Scenario, Error> {
        let de = serde_yaml::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let mut inner = e.inner().to_string();
            // serde_yaml prefixes its own (shorter) path; keep the full one only
            if let Some((head, rest)) = inner.split_once(": ")
                && !head.contains(' ')
                && path.starts_with(head)
            {
                inner = rest.to_string();
            }
            Error::Scenario(if path == "." { inner } else { format!("{path}: {inner}") })
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), Error> {
        if crate::trace::azure::parse_timestamp(&format!("{} 00:00:00", self.start_date)).is_none() {
            return Err(Error::invalid("start_date", &self.start_date, "a date such as 2026-01-01"));
        }
        if let Some(r) = &self.sim.rounds {
            if r.every_s == 0 {
                return Err(Error::invalid("sim.rounds.every_s", 0, "a positive number of seconds"));
            }
            if !(r.min_gain.is_finite() && r.min_gain >= 1.0) {
                return Err(Error::invalid("sim.rounds.min_gain", r.min_gain, "a ratio of at least 1.0"));
            }
        }
        if self.sim.tick_s == 0 {
            return Err(Error::invalid("sim.tick_s", 0, "a positive number of seconds"));
        }
        let premium = self.sim.spot_risk_premium;
        if !(0.0..=10.0).contains(&premium) {
            return Err(Error::invalid("sim.spot_risk_premium", premium, "a share of the spot price from 0 to 10"));
        }
        if let Some(h) = self.horizon_days {
            days_to_s("horizon_days", h)?;
        }
        if self.policies.is_empty() {
            return Err(Error::invalid(
                "policies",
                "[]",
                "at least one of cumulo, fifo-first-fit, cheapest-first, best-fit, random, fgd",
            ));
        }
        if self.seeds == 0 || self.seeds > 1000 {
            return Err(Error::invalid("seeds", self.seeds, "a number of runs from 1 to 1000"));
        }
        if self.fleet.pools.is_empty()
            && self.fleet.alibaba_nodes.is_none()
            && self.fleet.synth.is_none()
            && self.fleet.portfolio.is_none()
        {
            return Err(Error::invalid("fleet", "no pools", "`pools`, `portfolio`, `synth` or `alibaba_nodes`"));
        }
        if self.workload.sources.is_empty() {
            return Err(Error::invalid("workload.sources", "[]", "at least one trace, generator or job_files"));
        }
        for (i, p) in self.fleet.pools.iter().enumerate() {
            let field = |f: &str| format!("fleet.pools[{i}].{f}");
            if p.gpu.is_some() != (p.gpus_per_node > 0) {
                return Err(Error::invalid(
                    &field("gpus_per_node"),
                    p.gpus_per_node,
                    "a positive count exactly when `gpu` is set",
                ));
            }
            if p.gpus_per_node > 64 {
                return Err(Error::invalid(&field("gpus_per_node"), p.gpus_per_node, "at most 64"));
            }
            if !(p.price_per_node_hour.is_finite() && p.price_per_node_hour >= 0.0) {
                return Err(Error::invalid(
                    &field("price_per_node_hour"),
                    p.price_per_node_hour,
                    "a non-negative price in US dollars",
                ));
            }
            if p.contract.is_some() != (p.capacity == CapacityKind::Contract) {
                return Err(Error::invalid(
                    &field("contract"),
                    p.contract.as_deref().unwrap_or("none"),
                    "a contract name exactly when capacity is `contract`",
                ));
            }
            if let Some(name) = &p.contract
                && !self.fleet.contracts.is_empty()
                && !self.fleet.contracts.iter().any(|c| &c.name == name)
            {
                return Err(Error::invalid(&field("contract"), name, "a contract listed in fleet.contracts"));
            }
            for (j, d) in p.deliveries.iter().enumerate() {
                days_to_s(&field(&format!("deliveries[{j}].at_days")), d.at_days)?;
            }
            if p.nodes == 0 && p.deliveries.is_empty() {
                return Err(Error::invalid(&field("nodes"), 0, "some nodes now or in `deliveries`"));
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            match e {
                EventSpec::Outage { at_days, for_hours, .. } => {
                    days_to_s(&format!("events[{i}].outage.at_days"), *at_days)?;
                    days_to_s(&format!("events[{i}].outage.for_hours"), for_hours / 24.0)?;
                }
                EventSpec::DeliveryDelay { after_days, by_days, .. } => {
                    days_to_s(&format!("events[{i}].delivery_delay.after_days"), *after_days)?;
                    days_to_s(&format!("events[{i}].delivery_delay.by_days"), *by_days)?;
                }
                EventSpec::PriceChange { at_days, factor, .. } => {
                    days_to_s(&format!("events[{i}].price_change.at_days"), *at_days)?;
                    if !(factor.is_finite() && *factor >= 0.0) {
                        return Err(Error::invalid(
                            &format!("events[{i}].price_change.factor"),
                            factor,
                            "a non-negative multiplier such as 0.8",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Rewrites every path to an absolute or scenario-relative one.
    pub fn resolve_paths(&mut self, base: &Path) -> Result<(), Error> {
        let resolve = |p: &mut String| -> Result<(), Error> {
            *p = resolve_path(p, base)?.display().to_string();
            Ok(())
        };
        if let Some(p) = &mut self.fleet.alibaba_nodes {
            resolve(p)?;
        }
        if let Some(p) = &mut self.fleet.portfolio
            && p != DEMO_PORTFOLIO
        {
            resolve(p)?;
        }
        for s in &mut self.workload.sources {
            match s {
                SourceSpec::Gavel { trace, throughputs } => {
                    resolve(trace)?;
                    resolve(throughputs)?;
                }
                SourceSpec::AlibabaPods { pods } => resolve(pods)?,
                SourceSpec::AlibabaDlrm { instances } => resolve(instances)?,
                SourceSpec::AzureLlm { trace, .. } => resolve(trace)?,
                SourceSpec::Generator(_) => {}
                SourceSpec::JobFiles { files, .. } => {
                    for file in files {
                        resolve(file)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Resolves `data:REL` against `$CUMULO_DATA_DIR`, a relative path against `base`.
pub fn resolve_path(text: &str, base: &Path) -> Result<PathBuf, Error> {
    if let Some(rel) = text.strip_prefix("data:") {
        let dir = std::env::var_os("CUMULO_DATA_DIR").ok_or_else(|| {
            Error::invalid(
                "path",
                text,
                "CUMULO_DATA_DIR to be set for a `data:` path (the directory of the real traces)",
            )
        })?;
        return Ok(PathBuf::from(dir).join(rel));
    }
    let path = PathBuf::from(text);
    Ok(if path.is_absolute() { path } else { base.join(path) })
}
