//! The server's fleet file (`--config FILE`, YAML): tenants, clusters with their drivers, and the
//! contract portfolio. Without one the server runs the built-in demo fleet.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cumulo_driver::{Driver, GpuModel};
use cumulo_driver_sim::{SimClock, SimConfig, SimDriver};
use cumulo_sched::{Quota, TenantPolicy};
use cumulo_types::{CapacityKind, Money};
use serde::Deserialize;

use crate::Error;

/// The demo fleet: this machine plus simulated clusters.
pub const DEMO_FLEET_YAML: &str = include_str!("demo-fleet.yaml");

/// A fleet file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    #[serde(default)]
    pub tenants: Vec<TenantEntry>,
    pub clusters: Vec<ClusterEntry>,
    /// A contracts YAML file (the `portfolio` crate's format), relative to the fleet file, or
    /// `demo` for the built-in illustrative demo portfolio. Every reconcile pass prices pools,
    /// gates ramps and binds clauses with it; without one no contract steers placement.
    #[serde(default)]
    pub portfolio: Option<PathBuf>,
    /// Heterogeneity rounds (`{every_s: 300, min_gain: 1.3, migration_s: 60}`, each optional;
    /// `every_s: 0` turns them off): at every round boundary a running preemptible or
    /// checkpointing job that states `speedups` moves to a GPU model at least `min_gain` faster
    /// for it (SIGTERM, its driver's grace, then SIGKILL; placed again on that model). On by
    /// default with these values; a round is held only while some job states `speedups`.
    #[serde(default)]
    pub rounds: RoundsEntry,
}

/// The fleet file's `rounds:`, as written (see [`FleetFile::rounds`]).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundsEntry {
    #[serde(default = "rounds_every_s")]
    pub every_s: u64,
    #[serde(default = "rounds_min_gain")]
    pub min_gain: f32,
    #[serde(default = "rounds_migration_s")]
    pub migration_s: u64,
}

fn rounds_every_s() -> u64 {
    cumulo_control::Rounds::default().every.as_secs()
}

fn rounds_min_gain() -> f32 {
    cumulo_control::Rounds::default().min_gain
}

fn rounds_migration_s() -> u64 {
    cumulo_control::Rounds::default().migration_s
}

impl Default for RoundsEntry {
    fn default() -> Self {
        RoundsEntry { every_s: rounds_every_s(), min_gain: rounds_min_gain(), migration_s: rounds_migration_s() }
    }
}

impl RoundsEntry {
    /// The rounds as the reconcile loop takes them.
    pub fn rounds(&self) -> cumulo_control::Rounds {
        cumulo_control::Rounds {
            every: std::time::Duration::from_secs(self.every_s),
            min_gain: self.min_gain,
            migration_s: self.migration_s,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub name: String,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub quota: QuotaEntry,
    /// A monthly budget: `{monthly: 50000, kind: hard}` (dollars per calendar month, UTC; `hard`
    /// holds back jobs that would pass it, `soft` only shows on `/metrics`).
    #[serde(default)]
    pub budget: Option<BudgetEntry>,
}

/// A tenant's budget as written: the amount in dollars (a number or text such as `"$50,000"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetEntry {
    pub monthly: serde_yaml::Value,
    #[serde(default = "hard")]
    pub kind: String,
}

fn hard() -> String {
    "hard".to_string()
}

impl BudgetEntry {
    /// The budget, or the field (under `tenants[i].budget`) and the reason it is refused.
    fn budget(&self) -> Result<cumulo_store::budget::Budget, (&'static str, String)> {
        let monthly = match &self.monthly {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s.clone(),
            other => return Err(("monthly", format!("invalid amount `{other:?}`: expected dollars such as 50000"))),
        };
        cumulo_store::budget::parse_budget(&monthly, &self.kind)
    }
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaEntry {
    #[serde(default)]
    pub gpus_milli: Option<u64>,
    #[serde(default)]
    pub cpus_milli: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub capacity: CapacityKind,
    /// Dollars per node-hour, as text (`"98.32"`) so that it stays exact: overrides the built-in
    /// catalog's list (or spot) price of `node_type` for an on-demand or spot cluster. A contract
    /// cluster takes its rate from its contract and may not give one.
    #[serde(default)]
    pub price_per_node_hour: Option<String>,
    /// The portfolio contract a `contract` cluster's capacity is held under: its rate, ramp and
    /// clauses apply and its usage is metered against it.
    #[serde(default)]
    pub contract: Option<String>,
    /// The node type of the cluster's nodes: a node type of its contract (contract clusters), or
    /// an instance type the built-in catalog prices in the cluster's provider and region.
    #[serde(default)]
    pub node_type: Option<String>,
    /// The on-demand list price per node-hour (text dollars), metered beside the price paid so
    /// chargeback shows what a contract or spot saved; by default the built-in catalog's on-demand
    /// price of `node_type` in the cluster's provider and region, else the paid price.
    #[serde(default)]
    pub list_price_per_node_hour: Option<String>,
    /// Only these tenants' jobs are placed here (absent: every tenant's).
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// The nodes mount the buckets jobs' `file_mounts` name, at the destinations the jobs give
    /// (the site mounts them; no driver does): only then are jobs with bucket mounts placed here.
    #[serde(default)]
    pub bucket_mounts: bool,
    pub driver: DriverEntry,
}

impl ClusterEntry {
    /// The cluster as a site of `cumulo_sched::needs`, read from the fleet file without opening
    /// its driver (`cumulo offers --fleet`): what its driver will say it can do, as
    /// `cumulo_control::site` reads it off the opened driver for the reconcile loop. A local
    /// cluster's `container_runtime` is checked on this machine as the server checks it at start
    /// (`auto`: docker, else podman, else none); a runtime that does not answer runs no image.
    pub fn site(&self) -> cumulo_sched::needs::Site {
        let (container_images, uploads) = match &self.driver {
            DriverEntry::Local { container_runtime, .. } => {
                let choice = container_runtime
                    .as_deref()
                    .and_then(cumulo_driver_local::RuntimeChoice::parse)
                    .unwrap_or_default();
                // The server gives every local driver its uploads directory.
                (cumulo_driver_local::ContainerRuntime::detect(choice).ok().flatten().is_some(), true)
            }
            // Simulated: nothing runs or is copied, so every image and upload is as good as done.
            DriverEntry::Simulated { .. } => (true, true),
            DriverEntry::Slurm { container_images, .. } => (*container_images, false),
            DriverEntry::Ray { .. } => (true, false),
        };
        cumulo_sched::needs::Site {
            name: self.name.clone(),
            provider: self.provider.clone(),
            region: self.region.clone(),
            abilities: cumulo_sched::needs::Abilities { container_images, uploads, bucket_mounts: self.bucket_mounts },
        }
    }

    /// The driver's kind as the fleet file names it: `local`, `simulated`, `slurm` or `ray`.
    pub fn driver_kind(&self) -> &'static str {
        match self.driver {
            DriverEntry::Local { .. } => "local",
            DriverEntry::Simulated { .. } => "simulated",
            DriverEntry::Slurm { .. } => "slurm",
            DriverEntry::Ray { .. } => "ray",
        }
    }
}

/// Which driver reaches a cluster.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DriverEntry {
    /// This machine: jobs run as local processes. A root server runs each tenant's jobs as the
    /// tenant's own unprivileged account `cumulo-job-<tenant>` (created when missing, in the
    /// shared group `cumulo-job`), or every tenant's as `job_user` when one is named (tenants then
    /// share its uid); as root only with `allow_root: true`.
    Local {
        #[serde(default)]
        job_user: Option<String>,
        #[serde(default)]
        allow_root: bool,
        /// Where jobs' working directories go (default: under the system's temp directory).
        #[serde(default)]
        work_dir: Option<PathBuf>,
        /// Runs jobs with `image_id: docker:IMAGE` under `docker`, `podman`, or whichever of the
        /// two answers (`auto`); `none` (the default) keeps such jobs off this cluster.
        #[serde(default)]
        container_runtime: Option<String>,
        /// Seconds between SIGTERM and SIGKILL when an attempt is stopped (cancel, preemption,
        /// a round's move): the job's time to save a checkpoint. Default 5.
        #[serde(default = "stop_grace_s")]
        stop_grace_s: u64,
    },
    /// A simulated cluster of identical nodes: nothing runs.
    Simulated {
        nodes: u32,
        #[serde(default)]
        gpu: Option<String>,
        #[serde(default)]
        gpus: u32,
        vcpus: u32,
        memory_gb: u64,
        /// Seconds from launch to running.
        #[serde(default = "one_s")]
        start_delay_s: u64,
        /// Run time of a job without `duration_s` (a service without one runs until cancelled).
        #[serde(default = "sixty_s")]
        default_duration_s: u64,
        /// Job seconds per wall-clock second on this simulated cluster: `600` runs a job's
        /// `duration` ten minutes a second (a 14-day training in 34 minutes). Default 1.
        #[serde(default = "one")]
        time_scale: u32,
    },
    /// A real Slurm cluster: slurmrestd with JWT when `url` is set, else the command-line tools
    /// (with `conf` as `SLURM_CONF` when given).
    Slurm {
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        user: Option<String>,
        /// A JWT (`scontrol token username=<user>`); or `token_file`, relative to the fleet file.
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        token_file: Option<PathBuf>,
        #[serde(default)]
        partition: Option<String>,
        /// A directory shared by the nodes and the server for per-node logs.
        #[serde(default)]
        log_dir: Option<String>,
        #[serde(default)]
        working_dir: Option<String>,
        /// `rest` (the endpoint that submits) or `squeue` (this host's client tools).
        #[serde(default)]
        observe_with: ObserveEntry,
        /// `SLURM_CONF` for the command-line tools (the CLI endpoint and `observe_with: squeue`).
        #[serde(default)]
        conf: Option<PathBuf>,
        /// The cluster has pyxis/enroot: jobs with `image_id: docker:IMAGE` run in the image
        /// (`srun --container-image`); without it placement keeps such jobs off the cluster.
        #[serde(default)]
        container_images: bool,
    },
    /// A Ray cluster through its Jobs REST API on the dashboard port.
    Ray { url: String },
}

/// Where a Slurm driver lists jobs.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ObserveEntry {
    #[default]
    Rest,
    Squeue,
}

/// Where the server keeps uploads (`POST /v1/uploads`): `<data_dir>/uploads`.
pub fn uploads_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("uploads")
}

fn one_s() -> u64 {
    1
}

fn stop_grace_s() -> u64 {
    5
}

fn sixty_s() -> u64 {
    60
}

/// A fleet ready to run: tenants, clusters with live drivers and their prices, the portfolio.
pub struct Fleet {
    pub tenants: Vec<TenantPolicy>,
    pub clusters: Vec<(ClusterEntry, Arc<dyn Driver>)>,
    /// Each cluster's price per node-hour as paid: its contract's rate, or the list (spot) price.
    pub prices: Vec<Money>,
    /// Each cluster's on-demand list price per node-hour, metered beside the price paid; `None`
    /// when neither the fleet file nor the built-in catalog gives one (the paid price then).
    pub list_prices: Vec<Option<Money>>,
    /// `None` when the fleet file names no portfolio.
    pub portfolio: Option<cumulo_portfolio::Portfolio>,
    /// The tenants' monthly budgets the fleet file sets.
    pub budgets: std::collections::BTreeMap<String, cumulo_store::budget::Budget>,
    /// Heterogeneity rounds as the fleet file sets them.
    pub rounds: cumulo_control::Rounds,
}

impl Fleet {
    /// The clusters as the reconcile loop takes them.
    pub fn control_clusters(&self) -> Vec<cumulo_control::Cluster> {
        self.clusters
            .iter()
            .zip(self.prices.iter().zip(&self.list_prices))
            .map(|((entry, driver), (price, list))| cumulo_control::Cluster {
                info: cumulo_control::ClusterInfo {
                    name: entry.name.clone(),
                    provider: entry.provider.clone(),
                    region: entry.region.clone(),
                    capacity: entry.capacity,
                    price_per_node_hour: *price,
                    node_type: entry.node_type.clone(),
                    tenants: entry.tenants.clone(),
                    list_price_per_node_hour: *list,
                    bucket_mounts: entry.bucket_mounts,
                },
                driver: driver.clone(),
            })
            .collect()
    }

    /// What the reconcile loop decides with: the portfolio and the default pricing knobs.
    pub fn control_contracts(&self) -> Option<cumulo_control::Contracts> {
        self.portfolio.as_ref().map(|p| cumulo_control::Contracts {
            portfolio: Arc::new(p.clone()),
            pricing: cumulo_portfolio::pricing::PricingConfig::default(),
        })
    }
}

fn invalid(source: &str, field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config { file: source.to_string(), field: field.into(), reason: reason.into() }
}

impl FleetFile {
    /// Parses a fleet file; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<FleetFile, Error> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let file: FleetFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "file".to_string() } else { path };
            let reason = e.into_inner().to_string();
            let reason = reason.strip_prefix(&format!("{field}: ")).unwrap_or(&reason).to_string();
            invalid(source, field, reason)
        })?;
        file.check(source)?;
        Ok(file)
    }

    pub fn demo() -> FleetFile {
        FleetFile::parse(DEMO_FLEET_YAML, "built-in demo fleet").expect("the built-in demo fleet is valid")
    }

    fn check(&self, source: &str) -> Result<(), Error> {
        if self.clusters.is_empty() {
            return Err(invalid(source, "clusters", "no clusters: expected at least one"));
        }
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.is_empty() || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
                return Err(invalid(
                    source,
                    format!("clusters[{i}].name"),
                    format!("invalid cluster name `{}`: expected letters, digits, '-', '_' or '.'", c.name),
                ));
            }
            if self.clusters[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid(source, format!("clusters[{i}].name"), format!("duplicate cluster `{}`", c.name)));
            }
            if let Some(price) = &c.price_per_node_hour {
                Money::parse_non_negative(price)
                    .map_err(|e| invalid(source, format!("clusters[{i}].price_per_node_hour"), e.to_string()))?;
            }
            if let Some(list) = &c.list_price_per_node_hour {
                Money::parse_non_negative(list)
                    .map_err(|e| invalid(source, format!("clusters[{i}].list_price_per_node_hour"), e.to_string()))?;
            }
            if let DriverEntry::Simulated { gpu: Some(gpu), .. } = &c.driver {
                GpuModel::parse(gpu)
                    .map_err(|e| invalid(source, format!("clusters[{i}].driver.gpu"), e.to_string()))?;
            }
            if let DriverEntry::Simulated { time_scale: 0, .. } = &c.driver {
                return Err(invalid(
                    source,
                    format!("clusters[{i}].driver.time_scale"),
                    "invalid time_scale `0`: expected job seconds per wall-clock second, at least 1",
                ));
            }
            match &c.driver {
                DriverEntry::Slurm { url, user, token, token_file, .. } => {
                    let field = |f: &str| format!("clusters[{i}].driver.{f}");
                    match url {
                        Some(url) => {
                            if !(url.starts_with("http://") || url.starts_with("https://")) {
                                return Err(invalid(
                                    source,
                                    field("url"),
                                    format!("invalid url `{url}`: expected http://host:port of slurmrestd"),
                                ));
                            }
                            if user.as_deref().is_none_or(str::is_empty) {
                                return Err(invalid(source, field("user"), "missing: expected the JWT's user name"));
                            }
                            match (token, token_file) {
                                (Some(_), Some(_)) => {
                                    return Err(invalid(
                                        source,
                                        field("token_file"),
                                        "both token and token_file given: expected one",
                                    ));
                                }
                                (None, None) => {
                                    return Err(invalid(
                                        source,
                                        field("token"),
                                        "missing: expected token or token_file with url",
                                    ));
                                }
                                _ => {}
                            }
                        }
                        None => {
                            if token.is_some() || token_file.is_some() {
                                return Err(invalid(
                                    source,
                                    field("url"),
                                    "missing: a token needs the slurmrestd url (without url the command-line \
                                     tools are used)",
                                ));
                            }
                        }
                    }
                }
                DriverEntry::Ray { url } if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    return Err(invalid(
                        source,
                        format!("clusters[{i}].driver.url"),
                        format!("invalid url `{url}`: expected http://host:port of the ray dashboard"),
                    ));
                }
                _ => {}
            }
        }
        for (i, c) in self.clusters.iter().enumerate() {
            self.check_cluster_access(source, i, c)?;
        }
        if !(self.rounds.min_gain.is_finite() && self.rounds.min_gain >= 1.0) {
            return Err(invalid(
                source,
                "rounds.min_gain",
                format!("invalid min_gain `{}`: expected a ratio of at least 1.0", self.rounds.min_gain),
            ));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if t.name.is_empty() || self.tenants[..i].iter().any(|o| o.name == t.name) {
                return Err(invalid(
                    source,
                    format!("tenants[{i}].name"),
                    format!("invalid tenant `{}`: expected a unique, non-empty name", t.name),
                ));
            }
            if let Some(Err((field, reason))) = t.budget.as_ref().map(BudgetEntry::budget) {
                return Err(invalid(source, format!("tenants[{i}].budget.{field}"), reason));
            }
        }
        Ok(())
    }

    /// Who may use cluster `i`: its `tenants` (known ones, at least one) and, for a local driver,
    /// the user its jobs run as.
    fn check_cluster_access(&self, source: &str, i: usize, c: &ClusterEntry) -> Result<(), Error> {
        if let Some(tenants) = &c.tenants {
            if tenants.is_empty() {
                return Err(invalid(
                    source,
                    format!("clusters[{i}].tenants"),
                    "empty: expected at least one tenant (or no `tenants` for all)",
                ));
            }
            let known: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
            if let Some((j, unknown)) = tenants.iter().enumerate().find(|(_, t)| !known.contains(&t.as_str())) {
                return Err(invalid(
                    source,
                    format!("clusters[{i}].tenants[{j}]"),
                    format!("unknown tenant `{unknown}`: expected one of the fleet's tenants ({})", known.join(", ")),
                ));
            }
        }
        if let DriverEntry::Local { container_runtime: Some(runtime), .. } = &c.driver
            && cumulo_driver_local::RuntimeChoice::parse(runtime).is_none()
        {
            return Err(invalid(
                source,
                format!("clusters[{i}].driver.container_runtime"),
                format!("`{runtime}`: expected docker, podman, auto or none"),
            ));
        }
        if let DriverEntry::Local { job_user: Some(_), allow_root: true, .. } = &c.driver {
            return Err(invalid(
                source,
                format!("clusters[{i}].driver.allow_root"),
                "both job_user and allow_root given: expected one (allow_root runs jobs as the server's user)",
            ));
        }
        Ok(())
    }

    /// Opens every cluster's driver: local drivers keep their state under `data_dir/local` (and
    /// unpack uploads from [`uploads_dir`]),
    /// simulated ones log each dispatch to `data_dir/dispatch/<cluster>.jsonl`. Engine job names
    /// carry no deployment; the server uses [`FleetFile::open_for`].
    pub fn open(&self, data_dir: &Path, base: Option<&Path>) -> Result<Fleet, Error> {
        self.open_for(data_dir, base, None)
    }

    /// [`FleetFile::open`] for `deployment` (the store's id): local, Slurm and Ray drivers put it
    /// in their state paths and engine job names, so two databases sharing an engine or a data
    /// directory never adopt each other's attempts.
    pub fn open_for(&self, data_dir: &Path, base: Option<&Path>, deployment: Option<&str>) -> Result<Fleet, Error> {
        let mut clusters = Vec::new();
        for entry in &self.clusters {
            let driver: Arc<dyn Driver> = match &entry.driver {
                DriverEntry::Local { job_user, allow_root, work_dir, container_runtime, stop_grace_s } => {
                    let root = data_dir.join("local").join(&entry.name);
                    let mut config = cumulo_driver_local::Config::new(root);
                    config.kill_grace = std::time::Duration::from_secs(*stop_grace_s);
                    config.deployment = deployment.map(str::to_string);
                    // `check` refused `job_user` together with `allow_root`.
                    config.job_user = match (job_user, allow_root) {
                        (_, true) => cumulo_driver_local::JobUser::Server,
                        (Some(user), false) => cumulo_driver_local::JobUser::Named(user.clone()),
                        (None, false) => cumulo_driver_local::JobUser::default(),
                    };
                    config.work_root = work_dir.as_ref().map(|dir| match base {
                        Some(base) if dir.is_relative() => base.join(dir),
                        _ => dir.clone(),
                    });
                    // Uploads (`POST /v1/uploads`) are kept here by the API and unpacked by the driver.
                    config.uploads_dir = Some(uploads_dir(data_dir));
                    let choice = container_runtime
                        .as_deref()
                        .and_then(cumulo_driver_local::RuntimeChoice::parse)
                        .unwrap_or_default();
                    config.container = cumulo_driver_local::ContainerRuntime::detect(choice)
                        .map_err(|e| Error::Driver(format!("cluster `{}`: {e}", entry.name)))?;
                    Arc::new(
                        cumulo_driver_local::LocalDriver::open(config)
                            .map_err(|e| Error::Driver(format!("cluster `{}`: {e}", entry.name)))?,
                    )
                }
                DriverEntry::Simulated {
                    nodes,
                    gpu,
                    gpus,
                    vcpus,
                    memory_gb,
                    start_delay_s,
                    default_duration_s,
                    time_scale,
                } => {
                    let gpu =
                        gpu.as_deref().map(GpuModel::parse).transpose().map_err(|e| Error::Driver(e.to_string()))?;
                    let mut config = SimConfig::uniform(&entry.name, *nodes, gpu, *gpus, *vcpus, memory_gb * 1024);
                    config.start_delay = std::time::Duration::from_secs(*start_delay_s);
                    config.default_duration = std::time::Duration::from_secs(*default_duration_s);
                    config.time_scale = *time_scale;
                    config.dispatch_log = Some(data_dir.join("dispatch").join(format!("{}.jsonl", entry.name)));
                    if let Some(dir) = config.dispatch_log.as_deref().and_then(Path::parent) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| Error::Driver(format!("cannot create {}: {e}", dir.display())))?;
                    }
                    Arc::new(
                        SimDriver::open(config, SimClock::Wall)
                            .map_err(|e| Error::Driver(format!("cluster `{}`: {e}", entry.name)))?,
                    )
                }
                DriverEntry::Slurm {
                    url,
                    user,
                    token,
                    token_file,
                    partition,
                    log_dir,
                    working_dir,
                    observe_with,
                    conf,
                    container_images,
                } => {
                    let resolve = |p: &PathBuf| base.map(|b| b.join(p)).unwrap_or_else(|| p.clone());
                    let conf = conf.as_ref().map(resolve);
                    let mut config = match url {
                        Some(url) => {
                            // A token file is read now (a missing one is a configuration error)
                            // and again by the driver whenever it changes.
                            let file = if token.is_none() { token_file.as_ref().map(resolve) } else { None };
                            let token = match (token, &file) {
                                (Some(t), _) => t.clone(),
                                (None, Some(f)) => std::fs::read_to_string(f)
                                    .map_err(|e| {
                                        Error::Io(format!(
                                            "cluster `{}`: cannot read token_file {}: {e}",
                                            entry.name,
                                            f.display()
                                        ))
                                    })?
                                    .trim()
                                    .to_string(),
                                (None, None) => String::new(),
                            };
                            let user = user.clone().unwrap_or_default();
                            let mut endpoint = cumulo_driver_slurm::RestEndpoint::new(url, &user, &token);
                            if let Some(f) = file {
                                endpoint = endpoint.with_token_file(f);
                            }
                            cumulo_driver_slurm::Config::rest(endpoint)
                        }
                        None => cumulo_driver_slurm::Config::cli(conf.clone()),
                    };
                    config.partition = partition.clone();
                    config.log_dir = log_dir.clone();
                    config.deployment = deployment.map(str::to_string);
                    config.container_images = *container_images;
                    if let Some(w) = working_dir {
                        config.working_dir = w.clone();
                    }
                    if *observe_with == ObserveEntry::Squeue {
                        config.observe_with = cumulo_driver_slurm::ObserveWith::Squeue { slurm_conf: conf };
                    }
                    Arc::new(
                        cumulo_driver_slurm::SlurmDriver::new(config)
                            .map_err(|e| Error::Driver(format!("cluster `{}`: {e}", entry.name)))?,
                    )
                }
                DriverEntry::Ray { url } => Arc::new(
                    cumulo_driver_ray::RayDriver::new(url)
                        .and_then(|d| d.with_deployment(deployment))
                        .map_err(|e| Error::Driver(format!("cluster `{}`: {e}", entry.name)))?,
                ),
            };
            clusters.push((entry.clone(), driver));
        }
        let portfolio = match &self.portfolio {
            None => None,
            Some(path) if path.as_os_str() == "demo" => {
                Some(cumulo_portfolio::Portfolio::demo().map_err(|e| Error::Driver(e.to_string()))?)
            }
            Some(path) => {
                let path = base.map(|b| b.join(path)).unwrap_or_else(|| path.clone());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Io(format!("cannot read portfolio {}: {e}", path.display())))?;
                Some(
                    cumulo_portfolio::Portfolio::from_yaml(&text, &path.display().to_string())
                        .map_err(|e| invalid(&path.display().to_string(), "portfolio", e.to_string()))?,
                )
            }
        };
        let catalog = cumulo_catalog::Catalog::builtin().map_err(|e| Error::Io(format!("built-in catalog: {e}")))?;
        let prices = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, entry)| cluster_price(i, entry, portfolio.as_ref(), &catalog))
            .collect::<Result<Vec<Money>, Error>>()?;
        let list_prices = self.clusters.iter().map(|entry| cluster_list_price(entry, &catalog)).collect();
        let tenants = self
            .tenants
            .iter()
            .map(|t| TenantPolicy {
                name: t.name.clone(),
                weight: t.weight.max(1),
                quota: Quota { gpus_milli: t.quota.gpus_milli, cpus_milli: t.quota.cpus_milli },
            })
            .collect();
        let budgets =
            self.tenants.iter().filter_map(|t| Some((t.name.clone(), t.budget.as_ref()?.budget().ok()?))).collect();
        Ok(Fleet { tenants, clusters, prices, list_prices, portfolio, budgets, rounds: self.rounds.rounds() })
    }
}

/// A cluster's price per node-hour as paid, checked against the portfolio and the catalog: a
/// contract cluster's rate comes from its contract (which must hold its node type, provider and
/// region); an on-demand or spot cluster takes its `price_per_node_hour`, else the built-in
/// catalog's price of its `node_type` in its provider and region. Errors name the field.
/// A cluster's on-demand list price per node-hour: the fleet file's `list_price_per_node_hour`
/// (checked by `check`), else the built-in catalog's on-demand price of its `node_type` in its
/// provider and region, else the provider's lowest price of that node type in another region (the
/// catalog lists some node types in one region only; a warning names the region used). Without
/// one, usage on the cluster records its paid price as the list price too, so it shows nothing
/// saved; a warning says so.
fn cluster_list_price(entry: &ClusterEntry, catalog: &cumulo_catalog::Catalog) -> Option<Money> {
    if let Some(list) = &entry.list_price_per_node_hour {
        return Money::parse_non_negative(list).ok();
    }
    let node_type = entry.node_type.as_ref()?;
    let priced = || {
        catalog.offers().iter().filter(|o| o.provider == entry.provider && &o.instance_type == node_type).filter_map(
            |o| {
                let price = o.price?;
                Some((o.region.as_str(), price))
            },
        )
    };
    if let Some(price) = priced().filter(|(region, _)| *region == entry.region).map(|(_, p)| p).min() {
        return Some(price);
    }
    let elsewhere = priced().min_by_key(|(_, price)| *price);
    match elsewhere {
        Some((region, price)) => {
            tracing::warn!(cluster = %entry.name, node_type = %node_type, list_region = %region, list_price = %price,
            "the built-in catalog has no list price of this node type in the cluster's region; using another region's")
        }
        None if entry.capacity != CapacityKind::OnDemand => {
            tracing::warn!(cluster = %entry.name, node_type = %node_type,
            "no list price for this node type: usage records the paid price as the list price (nothing saved); set list_price_per_node_hour")
        }
        None => {}
    }
    elsewhere.map(|(_, price)| price)
}

fn cluster_price(
    i: usize,
    entry: &ClusterEntry,
    portfolio: Option<&cumulo_portfolio::Portfolio>,
    catalog: &cumulo_catalog::Catalog,
) -> Result<Money, Error> {
    let bad = |field: &str, reason: String| invalid("fleet file", format!("clusters[{i}].{field}"), reason);
    if entry.capacity != CapacityKind::Contract {
        if let Some(id) = &entry.contract {
            return Err(bad(
                "contract",
                format!("`{id}` on {} capacity: only a contract cluster names a contract", entry.capacity),
            ));
        }
        if let Some(price) = &entry.price_per_node_hour {
            return Ok(Money::parse_non_negative(price).unwrap_or(Money::ZERO));
        }
        let spot = entry.capacity == CapacityKind::Spot;
        let Some(node_type) = &entry.node_type else {
            return Err(bad(
                "price_per_node_hour",
                "missing: give price_per_node_hour or a node_type the built-in catalog prices".to_string(),
            ));
        };
        let listed = catalog
            .offers()
            .iter()
            .filter(|o| o.provider == entry.provider && o.region == entry.region && &o.instance_type == node_type);
        let price = listed.filter_map(|o| if spot { o.spot_price } else { o.price }).min();
        return price.ok_or_else(|| {
            bad(
                "node_type",
                format!(
                    "the built-in catalog has no {} price for `{node_type}` in {}/{}: give price_per_node_hour",
                    entry.capacity, entry.provider, entry.region
                ),
            )
        });
    }
    let Some(id) = &entry.contract else {
        return Err(bad("contract", "missing: a contract cluster names its portfolio contract".to_string()));
    };
    let Some(portfolio) = portfolio else {
        return Err(bad("contract", format!("`{id}` but the fleet file names no portfolio (portfolio: FILE or demo)")));
    };
    let Some(contract) = portfolio.contract(id) else {
        let known: Vec<&str> = portfolio.contracts.iter().map(|c| c.id.as_str()).collect();
        return Err(bad(
            "contract",
            format!("no contract `{id}` in portfolio `{}` (known: {})", portfolio.name, known.join(", ")),
        ));
    };
    if entry.price_per_node_hour.is_some() {
        return Err(bad(
            "price_per_node_hour",
            format!("a contract cluster's rate comes from contract `{id}`: remove price_per_node_hour"),
        ));
    }
    if contract.provider.as_str() != entry.provider {
        return Err(bad("provider", format!("`{}` but contract `{id}` is with {}", entry.provider, contract.provider)));
    }
    let rated: Vec<&str> = contract.rates.iter().map(|r| r.node_type.as_str()).collect();
    let Some(node_type) = &entry.node_type else {
        return Err(bad("node_type", format!("missing: one of contract `{id}`'s node types ({})", rated.join(", "))));
    };
    let Some(rate) = contract.rate(node_type) else {
        return Err(bad(
            "node_type",
            format!("`{node_type}` is not a node type of contract `{id}` (it rates: {})", rated.join(", ")),
        ));
    };
    if !contract.ramp.iter().any(|s| &s.node_type == node_type && s.region == entry.region) {
        let regions: std::collections::BTreeSet<&str> =
            contract.ramp.iter().filter(|s| &s.node_type == node_type).map(|s| s.region.as_str()).collect();
        return Err(bad(
            "region",
            format!(
                "`{}`: contract `{id}` delivers `{node_type}` only in {}",
                entry.region,
                regions.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_fleet_parses() {
        let demo = FleetFile::demo();
        assert!(demo.clusters.iter().any(|c| matches!(c.driver, DriverEntry::Local { .. })));
        assert!(demo.clusters.iter().filter(|c| matches!(c.driver, DriverEntry::Simulated { .. })).count() >= 3);
        assert!(
            demo.clusters
                .iter()
                .filter(|c| matches!(c.driver, DriverEntry::Simulated { .. }))
                .all(|c| c.name.starts_with("sim-"))
        );
    }

    #[test]
    fn the_example_fleet_file_opens() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fleet.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let file = FleetFile::parse(&text, "examples/fleet.yaml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fleet = file.open(dir.path(), None).unwrap();
        let names: Vec<&str> = fleet.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["research", "inference", "agents", "vision", "data-science"],
            "the example's tenants, in order"
        );
        assert_eq!(
            fleet.budgets.get("data-science"),
            Some(&cumulo_store::budget::Budget {
                monthly: Money::from_dollars(20_000),
                kind: cumulo_store::budget::BudgetKind::Hard
            }),
            "the example's budget"
        );
        assert_eq!(fleet.clusters.len(), 3, "local, a contract cluster and an on-demand one");
    }

    #[test]
    fn rounds_are_on_by_default_and_set_or_turned_off_in_the_fleet_file() {
        let cluster = "{name: c, provider: aws, region: r, capacity: spot, price_per_node_hour: '1', \
                       driver: {kind: local, stop_grace_s: 30}}";
        let parse = |extra: &str| FleetFile::parse(&format!("clusters: [{cluster}]\n{extra}"), "fleet.yaml").unwrap();
        assert_eq!(parse("").rounds.rounds(), cumulo_control::Rounds::default(), "on, every 5 minutes");
        assert_eq!(
            parse("rounds: {every_s: 60, min_gain: 2, migration_s: 30}").rounds.rounds(),
            cumulo_control::Rounds { every: std::time::Duration::from_secs(60), min_gain: 2.0, migration_s: 30 }
        );
        assert!(parse("rounds: {every_s: 0}").rounds.rounds().every.is_zero(), "every_s: 0 turns them off");
        assert!(matches!(parse("").clusters[0].driver, DriverEntry::Local { stop_grace_s: 30, .. }));
        check(&format!("clusters: [{cluster}]\nrounds: {{min_gain: 0.5}}"), "rounds.min_gain", "at least 1.0");
        check(&format!("clusters: [{cluster}]\nrounds: {{every: 5m}}"), "rounds.every", "unknown field `every`");
    }

    fn check(text: &str, field: &str, words: &str) {
        let err = FleetFile::parse(text, "fleet.yaml").err().unwrap_or_else(|| panic!("accepted: {text}"));
        let message = err.to_string();
        assert!(message.contains(&format!("fleet.yaml: {field}:")), "{message}");
        assert!(message.contains(words), "{message}");
    }

    #[test]
    fn bad_fleet_files_name_the_field() {
        let cluster =
            "{name: c, provider: aws, region: r, capacity: spot, price_per_node_hour: '1', driver: {kind: local}}";
        check("clusters: []", "clusters", "at least one");
        check(&format!("clusters: [{}]", cluster.replace("spot", "cheap")), "clusters[0].capacity", "unknown variant");
        check(&format!("clusters: [{}]", cluster.replace("'1'", "'-3'")), "clusters[0].price_per_node_hour", "-3");
        check(
            &format!("clusters: [{}]", cluster.replace("'1',", "'1', list_price_per_node_hour: 'ten',")),
            "clusters[0].list_price_per_node_hour",
            "ten",
        );
        check(&format!("clusters: [{}]", cluster.replace("local", "k8s")), "clusters[0].driver.kind", "k8s");
        check(&format!("clusters: [{cluster}, {cluster}]"), "clusters[1].name", "duplicate cluster `c`");
        check(&format!("clusters: [{cluster}]\ncolour: red"), "colour", "unknown field `colour`");
        let restricted = |tenants: &str| {
            format!(
                "tenants: [{{name: a}}, {{name: b}}]\nclusters: [{}]",
                cluster.replace("driver:", &format!("tenants: {tenants}, driver:"))
            )
        };
        check(
            &restricted("[a, z]"),
            "clusters[0].tenants[1]",
            "unknown tenant `z`: expected one of the fleet's tenants (a, b)",
        );
        check(&restricted("[]"), "clusters[0].tenants", "empty: expected at least one tenant");
        let budget = |b: &str| format!("tenants: [{{name: a}}, {{name: r, budget: {b}}}]\nclusters: [{cluster}]");
        check(
            &budget("{monthly: -5}"),
            "tenants[1].budget.monthly",
            "invalid amount `-5`: expected dollars of at least 0",
        );
        check(&budget("{monthly: lots}"), "tenants[1].budget.monthly", "invalid amount `lots`: expected dollars");
        check(
            &budget("{monthly: 5, kind: firm}"),
            "tenants[1].budget.kind",
            "unknown kind `firm`: expected `hard` or `soft`",
        );
        check(&budget("{monthly: 5, cap: 2}"), "tenants[1].budget.cap", "unknown field `cap`");
        let parsed = FleetFile::parse(&budget("{monthly: '$50,000', kind: soft}"), "fleet.yaml").unwrap();
        let entry = parsed.tenants[1].budget.as_ref().unwrap().budget().unwrap();
        assert_eq!(entry.monthly, Money::from_dollars(50_000), "dollars as text");
        assert_eq!(entry.kind, cumulo_store::budget::BudgetKind::Soft);
        assert!(FleetFile::parse(&restricted("[b]"), "fleet.yaml").is_ok());
        check(
            &format!(
                "clusters: [{}]",
                cluster.replace("{kind: local}", "{kind: local, job_user: svc, allow_root: true}")
            ),
            "clusters[0].driver.allow_root",
            "both job_user and allow_root given",
        );
        check(
            &format!(
                "clusters: [{}]",
                cluster.replace("{kind: local}", "{kind: simulated, nodes: 1, gpu: H900, vcpus: 1, memory_gb: 1}")
            ),
            "clusters[0].driver.gpu",
            "H900",
        );
        let with = |driver: &str| format!("clusters: [{}]", cluster.replace("{kind: local}", driver));
        check(&with("{kind: slurm, url: 'ftp://x', user: u, token: t}"), "clusters[0].driver.url", "ftp://x");
        check(&with("{kind: slurm, url: 'http://x:6820', token: t}"), "clusters[0].driver.user", "user name");
        check(&with("{kind: slurm, url: 'http://x:6820', user: u}"), "clusters[0].driver.token", "token_file");
        check(
            &with("{kind: slurm, url: 'http://x:6820', user: u, token: t, token_file: f}"),
            "clusters[0].driver.token_file",
            "expected one",
        );
        check(&with("{kind: slurm, token: t}"), "clusters[0].driver.url", "slurmrestd url");
        // serde's tagged enums report the driver, not the field inside it: the reason names it
        check(&with("{kind: slurm, observe_with: sacct}"), "clusters[0].driver", "unknown variant `sacct`");
        check(&with("{kind: slurm, colour: red}"), "clusters[0].driver", "unknown field `colour`");
        check(&with("{kind: ray}"), "clusters[0].driver", "missing field `url`");
        check(
            &with("{kind: simulated, nodes: 1, vcpus: 1, memory_gb: 1, time_scale: 0}"),
            "clusters[0].driver.time_scale",
            "invalid time_scale `0`: expected job seconds per wall-clock second",
        );
        check(&with("{kind: ray, url: 'localhost:8265'}"), "clusters[0].driver.url", "localhost:8265");
    }

    #[test]
    fn slurm_and_ray_entries_open_their_drivers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slurm.jwt"), "secret\n").unwrap();
        let text = "clusters:\n\
          - {name: s, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, url: 'http://127.0.0.1:1', user: u, token_file: slurm.jwt, observe_with: squeue, conf: slurm.conf, log_dir: /tmp/l}}\n\
          - {name: c, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, conf: slurm.conf, container_images: true}}\n\
          - {name: r, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: ray, url: 'http://127.0.0.1:1'}}\n";
        let file = FleetFile::parse(text, "fleet.yaml").unwrap();
        let fleet = file.open(dir.path(), Some(dir.path())).unwrap();
        let names: Vec<&str> = fleet.clusters.iter().map(|(c, _)| c.name.as_str()).collect();
        assert_eq!(names, ["s", "c", "r"]);
        let images: Vec<bool> = fleet.clusters.iter().map(|(_, d)| d.capabilities().container_images).collect();
        assert_eq!(images, [false, true, true], "pyxis only where the fleet file says so; Ray always (image_uri)");
        let missing = "clusters:\n\
          - {name: s, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, url: 'http://127.0.0.1:1', user: u, token_file: nope.jwt}}\n";
        let err = FleetFile::parse(missing, "fleet.yaml").unwrap().open(dir.path(), Some(dir.path())).err().unwrap();
        assert!(err.to_string().contains("token_file") && err.to_string().contains("nope.jwt"), "{err}");
    }

    /// `cumulo offers --fleet` reads each cluster's site off the fleet file; the reconcile loop
    /// reads it off the opened driver. Both must agree for every driver kind.
    #[test]
    fn a_cluster_site_read_from_the_file_is_the_one_the_loop_reads_from_its_driver() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slurm.conf"), "").unwrap();
        let text = "clusters:\n\
          - {name: l, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: local}, bucket_mounts: true}\n\
          - {name: la, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: local, container_runtime: auto}}\n\
          - {name: s, provider: onprem, region: s, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, conf: slurm.conf}}\n\
          - {name: c, provider: onprem, region: s, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, conf: slurm.conf, container_images: true}}\n\
          - {name: ray, provider: onprem, region: y, capacity: on-demand, price_per_node_hour: '1', driver: {kind: ray, url: 'http://127.0.0.1:1'}}\n\
          - {name: sim, provider: aws, region: us-east-1, capacity: on-demand, price_per_node_hour: '1', driver: {kind: simulated, nodes: 1, vcpus: 4, memory_gb: 8}}\n";
        let file = FleetFile::parse(text, "fleet.yaml").unwrap();
        let fleet = file.open(dir.path(), Some(dir.path())).unwrap();
        let from_drivers: Vec<_> =
            fleet.control_clusters().iter().map(|c| cumulo_control::site(&c.info, &c.driver.capabilities())).collect();
        let from_file: Vec<_> = file.clusters.iter().map(ClusterEntry::site).collect();
        assert_eq!(from_file, from_drivers);
        let abilities = |i: usize| from_file[i].abilities;
        assert!(!abilities(0).container_images && abilities(0).uploads && abilities(0).bucket_mounts);
        assert!(!abilities(2).container_images && !abilities(2).uploads && abilities(3).container_images);
        assert!(abilities(4).container_images && !abilities(4).uploads);
        assert_eq!(
            abilities(5),
            cumulo_sched::needs::Abilities { bucket_mounts: false, ..cumulo_sched::needs::Abilities::ALL }
        );
        let kinds: Vec<&str> = file.clusters.iter().map(ClusterEntry::driver_kind).collect();
        assert_eq!(kinds, ["local", "local", "slurm", "slurm", "ray", "simulated"]);
    }

    #[test]
    fn bucket_mounts_is_a_cluster_flag_carried_to_the_control_loop() {
        let dir = tempfile::tempdir().unwrap();
        let text = "clusters:\n\
          - {name: a, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: local}, bucket_mounts: true}\n\
          - {name: b, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: local}}\n";
        let fleet = FleetFile::parse(text, "fleet.yaml").unwrap().open(dir.path(), Some(dir.path())).unwrap();
        let flags: Vec<bool> = fleet.control_clusters().iter().map(|c| c.info.bucket_mounts).collect();
        assert_eq!(flags, [true, false], "only where the fleet file says so");
        let bad = text.replace("bucket_mounts: true", "bucket_mounts: maybe");
        let err = FleetFile::parse(&bad, "fleet.yaml").unwrap_err().to_string();
        assert!(err.contains("bucket_mounts") || err.contains("clusters[0]"), "{err}");
    }

    #[test]
    fn a_deployment_reaches_every_engine_driver() {
        let dir = tempfile::tempdir().unwrap();
        let text = "clusters:\n\
          - {name: here, provider: local, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: local}}\n\
          - {name: s, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, conf: slurm.conf}}\n\
          - {name: r, provider: onprem, region: r, capacity: on-demand, price_per_node_hour: '1', driver: {kind: ray, url: 'http://127.0.0.1:1'}}\n";
        let file = FleetFile::parse(text, "fleet.yaml").unwrap();
        file.open_for(dir.path(), None, Some("0a1b2c3d")).unwrap();
        assert!(dir.path().join("local/here/0a1b2c3d/attempts").is_dir(), "local state is kept per deployment");
        let err = file.open_for(dir.path(), None, Some("Not-Hex")).err().unwrap().to_string();
        assert_eq!(
            err,
            "driver: cluster `here`: invalid driver setting deployment `Not-Hex`: expected 1 to 32 lowercase letters and digits"
        );
    }

    /// Opens a fleet file naming the demo portfolio with one cluster `entry`; the error text.
    fn open_error(entry: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("portfolio: demo\nclusters:\n  - {{name: c, driver: {{kind: local}}, {entry}}}\n");
        let file = FleetFile::parse(&text, "fleet.yaml").unwrap();
        file.open(dir.path(), None).err().map(|e| e.to_string()).unwrap_or_else(|| format!("accepted: {entry}"))
    }

    #[test]
    fn contract_clusters_name_their_contract_and_node_type() {
        let gb200 = "provider: aws, region: us-east-1, capacity: contract";
        for (entry, error) in [
            (
                format!("{gb200}, contract: aws-2099, node_type: p6e-gb200.36xlarge"),
                "fleet file: clusters[0].contract: no contract `aws-2099` in portfolio `demo` (known: aws-2025, azure-2025, oci-2026, gcp-2025, coreweave-2025)",
            ),
            (
                format!("{gb200}, node_type: p6e-gb200.36xlarge"),
                "fleet file: clusters[0].contract: missing: a contract cluster names its portfolio contract",
            ),
            (
                format!("{gb200}, contract: aws-2025, node_type: Standard_ND96isr_H200_v5"),
                "fleet file: clusters[0].node_type: `Standard_ND96isr_H200_v5` is not a node type of contract `aws-2025` (it rates: p6e-gb200.36xlarge, p6e-gb300.36xlarge)",
            ),
            (
                format!("{gb200}, contract: aws-2025"),
                "fleet file: clusters[0].node_type: missing: one of contract `aws-2025`'s node types (p6e-gb200.36xlarge, p6e-gb300.36xlarge)",
            ),
            (
                format!("{gb200}, contract: aws-2025, node_type: p6e-gb200.36xlarge, price_per_node_hour: '11.40'"),
                "fleet file: clusters[0].price_per_node_hour: a contract cluster's rate comes from contract `aws-2025`: remove price_per_node_hour",
            ),
            (
                "provider: azure, region: us-east-1, capacity: contract, contract: aws-2025, node_type: p6e-gb200.36xlarge".to_string(),
                "fleet file: clusters[0].provider: `azure` but contract `aws-2025` is with aws",
            ),
            (
                "provider: aws, region: eu-west-1, capacity: contract, contract: aws-2025, node_type: p6e-gb200.36xlarge".to_string(),
                "fleet file: clusters[0].region: `eu-west-1`: contract `aws-2025` delivers `p6e-gb200.36xlarge` only in us-east-1",
            ),
            (
                "provider: aws, region: us-east-1, capacity: on-demand, contract: aws-2025".to_string(),
                "fleet file: clusters[0].contract: `aws-2025` on on-demand capacity: only a contract cluster names a contract",
            ),
            (
                "provider: aws, region: us-east-1, capacity: on-demand".to_string(),
                "fleet file: clusters[0].price_per_node_hour: missing: give price_per_node_hour or a node_type the built-in catalog prices",
            ),
            (
                "provider: aws, region: us-east-1, capacity: spot, node_type: m7i.48xlarge".to_string(),
                "fleet file: clusters[0].node_type: the built-in catalog has no spot price for `m7i.48xlarge` in aws/us-east-1: give price_per_node_hour",
            ),
        ] {
            assert_eq!(open_error(&entry), error, "{entry}");
        }
        let dir = tempfile::tempdir().unwrap();
        let no_portfolio = "clusters:\n  - {name: c, provider: aws, region: us-east-1, capacity: contract, contract: aws-2025, node_type: x, driver: {kind: local}}\n";
        let err = FleetFile::parse(no_portfolio, "fleet.yaml").unwrap().open(dir.path(), None).err().unwrap();
        assert_eq!(
            err.to_string(),
            "fleet file: clusters[0].contract: `aws-2025` but the fleet file names no portfolio (portfolio: FILE or demo)"
        );
    }

    #[test]
    fn the_demo_fleet_takes_rates_from_its_contracts_and_list_prices_from_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let demo = FleetFile::demo().open(dir.path(), None).unwrap();
        let price = |name: &str| {
            let i = demo.clusters.iter().position(|(c, _)| c.name == name).unwrap();
            demo.prices[i].to_string()
        };
        // GB200 at $2.85/GPU-hour x 4 (aws-2025), H200 at $3.00 x 8 (azure-2025), CoreWeave's list.
        assert_eq!(price("sim-aws-use1-gb200"), "$11.40");
        assert_eq!(price("sim-azure-eastus2-h200"), "$24.00");
        assert_eq!(price("sim-coreweave-h100"), "$49.24");
        assert_eq!(price("sim-aws-use1-cpu"), "$2.10", "the fleet file overrides the catalog");
        let contracts: Vec<_> = demo.clusters.iter().filter_map(|(c, _)| c.contract.as_deref()).collect();
        assert_eq!(contracts, ["aws-2025", "azure-2025", "azure-2025"]);
        let list = |name: &str| {
            let i = demo.clusters.iter().position(|(c, _)| c.name == name).unwrap();
            demo.list_prices[i].map(|m| m.to_string())
        };
        // The catalog lists Azure's ND GB200 v6 and ND H200 v5 in eastus only: the eastus2
        // clusters take that list price, so their usage shows what the contract saved.
        assert_eq!(
            list("sim-aws-use1-gb200").as_deref(),
            Some("$64.00"),
            "the catalog's price in the cluster's region"
        );
        assert_eq!(
            list("sim-azure-eastus2-gb200").as_deref(),
            Some("$72.00"),
            "another region's when the region lacks one"
        );
        assert_eq!(
            list("sim-azure-eastus2-h200").as_deref(),
            Some("$110.24"),
            "another region's when the region lacks one"
        );
        assert_eq!(
            list("sim-aws-use1-cpu").as_deref(),
            Some("$9.6768"),
            "spot clusters keep the on-demand list beside"
        );
        assert!(demo.portfolio.as_ref().is_some_and(|p| p.illustrative));
    }
}
