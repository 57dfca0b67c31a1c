//! A real Slurm cluster as a Cumulo cluster: submit through slurmrestd with JWT, or through the
//! command-line tools when no REST endpoint is configured.
//!
//! Each attempt is one Slurm batch job named `cumulo-<deployment>-<job>.<attempt>` (the
//! idempotence key; [`Config::deployment`], see [`cumulo_driver::EngineNames`]) with
//! `num_nodes` nodes, one task per node started by `srun`, GPUs per node as GRES, and no Slurm
//! requeue (Cumulo decides what runs again). Cumulo's chosen nodes are pinned with `--nodelist` on
//! the command line; slurmrestd 22.05 refuses `required_nodes` ("Disabled key"), so over REST a
//! constraint on per-node features named after the nodes is used (`[node003*1&node005*1]`). A
//! cluster whose nodes lack those features (most do: `Features=node003` on each node's line
//! adds them) would refuse every such job, so an attempt on any node without one is submitted
//! unpinned, Slurm choosing its nodes, with a warning naming the nodes.
//!
//! `observe` lists the cluster's jobs once per call, however many attempts are asked, and matches
//! them by name; so a restarted driver finds the attempts an earlier one submitted, and never
//! another deployment's. Finished jobs stay visible for the cluster's `MinJobAge`; after that an
//! attempt is `Unknown`, unless a `log_dir` is configured: the batch step then leaves its exit
//! code in the attempt's log directory, and a job Slurm forgot reads as exited with it (and is
//! never submitted again).

pub mod bench;
pub mod cli;
pub mod model;
pub mod rest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use cumulo_driver::{
    AttemptId, AttemptState, Capabilities, Capacity, Driver, EngineNames, GpuModel, LaunchOutcome, LaunchRequest,
    LogChunk, NodeInfo, NodeState, NodeStatus, Observation,
};
use serde_json::json;

pub use model::Pinning;
pub use rest::RestEndpoint;

use model::{SlurmJob, attempt_state, batch_script, pin_constraint, submit_environment};

/// Errors setting up a Slurm driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid slurm driver setting {field} `{value}`: expected {expected}")]
    Config { field: &'static str, value: String, expected: &'static str },
    #[error(transparent)]
    Driver(#[from] cumulo_driver::Error),
}

/// How Cumulo reaches the cluster.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Rest(RestEndpoint),
    /// `sbatch`, `scontrol`, `scancel` on this host, with this `SLURM_CONF` when given.
    Cli {
        slurm_conf: Option<PathBuf>,
    },
}

/// A Slurm cluster's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    pub partition: Option<String>,
    /// A directory shared by the nodes and Cumulo where each node writes
    /// `<attempt>/rank-<r>.log`; without it logs stay in Slurm's default output and `logs` is
    /// unsupported.
    pub log_dir: Option<String>,
    /// The batch job's working directory.
    pub working_dir: String,
    pub pinning: Pinning,
    /// Submit jobs held (never started until released): for benchmarks of the control path.
    pub submit_held: bool,
    /// Where `observe` lists jobs.
    pub observe_with: ObserveWith,
    /// The deployment (the store's id) in every job name, so that two Cumulo databases sharing
    /// this Slurm never take each other's jobs for their own; `None` names jobs
    /// `cumulo-<job>.<attempt>`.
    pub deployment: Option<String>,
    /// The cluster runs container images through pyxis/enroot (`srun --container-image`); only
    /// then does placement give it jobs with an `image_id: docker:IMAGE`.
    pub container_images: bool,
}

/// Where the job list that `observe` reads comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ObserveWith {
    /// The endpoint that submits (slurmrestd or the command line).
    #[default]
    Endpoint,
    /// This host's `squeue`, with this `SLURM_CONF` when given: over REST about 15 times cheaper
    /// for slurmctld than slurmrestd's job list (0.1 s against 1.5 s for 2,400 jobs); needs
    /// Slurm's client tools on the host.
    Squeue { slurm_conf: Option<PathBuf> },
}

impl Config {
    /// REST with feature pinning.
    pub fn rest(endpoint: RestEndpoint) -> Config {
        Config {
            endpoint: Endpoint::Rest(endpoint),
            partition: None,
            log_dir: None,
            working_dir: "/tmp".into(),
            pinning: Pinning::Features,
            submit_held: false,
            observe_with: ObserveWith::Endpoint,
            deployment: None,
            container_images: false,
        }
    }

    /// The command-line tools with `--nodelist` pinning.
    pub fn cli(slurm_conf: Option<PathBuf>) -> Config {
        Config {
            endpoint: Endpoint::Cli { slurm_conf },
            partition: None,
            log_dir: None,
            working_dir: "/tmp".into(),
            pinning: Pinning::NodeList,
            submit_held: false,
            observe_with: ObserveWith::Endpoint,
            deployment: None,
            container_images: false,
        }
    }
}

enum Backend {
    Rest(rest::Rest),
    Cli(cli::Cli),
}

#[derive(Default)]
struct Known {
    /// Slurm job id of every attempt this driver submitted or found by name.
    jobs: HashMap<AttemptId, u64>,
    /// Attempts being submitted now.
    submitting: HashSet<AttemptId>,
    /// Attempts whose submission failed ambiguously (it may have reached slurmctld): the next
    /// launch lists jobs by name before submitting again.
    uncertain: HashSet<AttemptId>,
    /// True once the job list was read at least once (after a restart, before the first launch).
    seeded: bool,
    /// Nodes that carry a feature named after themselves (feature pinning works for them), as
    /// the last `discover` found them; `None` before the first.
    self_named: Option<HashSet<String>>,
}

/// A Slurm cluster.
pub struct SlurmDriver {
    config: Config,
    backend: Backend,
    /// `squeue` for job lists when configured over REST.
    squeue: Option<cli::Cli>,
    names: EngineNames,
    known: Mutex<Known>,
}

impl SlurmDriver {
    pub fn new(config: Config) -> Result<SlurmDriver, Error> {
        if config.pinning == Pinning::NodeList && matches!(config.endpoint, Endpoint::Rest(_)) {
            return Err(Error::Config {
                field: "pinning",
                value: "node-list".into(),
                expected: "features or none over slurmrestd (22.05 refuses required_nodes)",
            });
        }
        let backend = match &config.endpoint {
            Endpoint::Rest(e) => Backend::Rest(rest::Rest::new(e.clone())?),
            Endpoint::Cli { slurm_conf } => Backend::Cli(cli::Cli { slurm_conf: slurm_conf.clone() }),
        };
        let squeue = match &config.observe_with {
            ObserveWith::Squeue { slurm_conf } => Some(cli::Cli { slurm_conf: slurm_conf.clone() }),
            ObserveWith::Endpoint => None,
        };
        let names = EngineNames::new(config.deployment.as_deref())?;
        Ok(SlurmDriver { config, backend, squeue, names, known: Mutex::default() })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().expect("slurm driver state poisoned")
    }

    /// Every job of the cluster (one call to the engine).
    pub async fn jobs(&self) -> Result<Vec<SlurmJob>, cumulo_driver::Error> {
        if let Some(squeue) = &self.squeue {
            return squeue.jobs().await;
        }
        match &self.backend {
            Backend::Rest(r) => r.jobs().await,
            Backend::Cli(c) => c.jobs().await,
        }
    }

    /// The Slurm job name of `attempt`.
    pub fn job_name(&self, attempt: AttemptId) -> String {
        self.names.name(attempt)
    }

    /// Where the nodes of `attempt` write their logs, under the configured `log_dir`.
    fn attempt_log_dir(&self, attempt: AttemptId) -> Option<String> {
        let dir = self.config.log_dir.as_deref()?;
        Some(match self.names.deployment() {
            Some(d) => format!("{dir}/{d}-{attempt}"),
            None => format!("{dir}/{attempt}"),
        })
    }

    /// The exit code and end time the batch step of `attempt` recorded in the log directory.
    fn recorded_exit(&self, attempt: AttemptId) -> Option<(i32, cumulo_driver::Timestamp)> {
        let dir = self.attempt_log_dir(attempt)?;
        model::parse_exit_file(&std::fs::read_to_string(PathBuf::from(dir).join("exit")).ok()?)
    }

    /// The newest Slurm job of each of this deployment's attempts among `jobs`.
    fn index_by_attempt(&self, jobs: Vec<SlurmJob>) -> HashMap<AttemptId, SlurmJob> {
        let mut by_attempt: HashMap<AttemptId, SlurmJob> = HashMap::with_capacity(jobs.len());
        for job in jobs {
            if let Some(a) = self.names.parse(&job.name) {
                match by_attempt.get(&a) {
                    Some(old) if old.job_id > job.job_id => {}
                    _ => {
                        by_attempt.insert(a, job);
                    }
                }
            }
        }
        by_attempt
    }

    /// `rest` or `cli`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Rest(_) => "rest",
            Backend::Cli(_) => "cli",
        }
    }

    /// Reads the cluster's job list and remembers the Slurm job of every Cumulo attempt in it
    /// (done before the first launch anyway).
    pub async fn refresh_known(&self) -> Result<(), cumulo_driver::Error> {
        let by_attempt = self.index_by_attempt(self.jobs().await?);
        let mut k = self.known();
        for (a, job) in by_attempt {
            k.jobs.entry(a).or_insert(job.job_id);
            k.uncertain.remove(&a);
        }
        k.seeded = true;
        Ok(())
    }

    async fn submit(&self, request: &LaunchRequest) -> Result<u64, cumulo_driver::Error> {
        let name = self.names.name(request.attempt);
        let nodes: Vec<String> = request.nodes.iter().map(|n| n.node.clone()).filter(|n| !n.is_empty()).collect();
        let mut pinned = self.config.pinning != Pinning::None && nodes.len() == request.nodes.len();
        if pinned && self.config.pinning == Pinning::Features {
            if self.known().self_named.is_none() {
                self.discover().await?;
            }
            let k = self.known();
            let lacking = model::nodes_without_own_feature(&nodes, k.self_named.as_ref().expect("discovered"));
            if !lacking.is_empty() {
                tracing::warn!(
                    attempt = %request.attempt,
                    nodes = %lacking.join(","),
                    "slurm nodes carry no feature named after them, so slurm chooses this attempt's nodes \
                     (add Features=<node name> to each node in slurm.conf to pin cumulo's choice)"
                );
                pinned = false;
            }
        }
        let script = batch_script(request, self.attempt_log_dir(request.attempt).as_deref(), pinned);
        let env = submit_environment(request);
        let n = request.nodes.len() as u64;
        let gpus = model::gpus_per_node(request);
        let cpus = model::cpus_per_node(request);
        let output = match &self.config.log_dir {
            Some(dir) => format!("{dir}/{name}.out"),
            None => "/dev/null".to_string(),
        };
        match &self.backend {
            Backend::Rest(r) => {
                let mut job = json!({
                    "name": name,
                    "nodes": [n, n],
                    "tasks_per_node": 1,
                    "minimum_cpus_per_node": cpus,
                    "current_working_directory": self.config.working_dir,
                    "environment": env,
                    "standard_output": output,
                    "requeue": false,
                });
                if gpus > 0 {
                    job["gpus_per_node"] = json!(gpus.to_string());
                }
                if let Some(p) = &self.config.partition {
                    job["partition"] = json!(p);
                }
                if self.config.submit_held {
                    job["hold"] = json!(true);
                }
                if pinned && self.config.pinning == Pinning::Features {
                    job["constraints"] = json!(pin_constraint(&nodes));
                }
                r.submit(job, script).await
            }
            Backend::Cli(c) => {
                let mut args = vec![
                    "--parsable".to_string(),
                    format!("--job-name={name}"),
                    format!("--nodes={n}"),
                    "--ntasks-per-node=1".into(),
                    format!("--mincpus={cpus}"),
                    format!("--chdir={}", self.config.working_dir),
                    format!("--output={output}"),
                    "--no-requeue".into(),
                    "--export=ALL".into(),
                ];
                if gpus > 0 {
                    args.push(format!("--gpus-per-node={gpus}"));
                }
                if let Some(p) = &self.config.partition {
                    args.push(format!("--partition={p}"));
                }
                if self.config.submit_held {
                    args.push("--hold".into());
                }
                if pinned {
                    match self.config.pinning {
                        Pinning::NodeList => args.push(format!("--nodelist={}", nodes.join(","))),
                        Pinning::Features => args.push(format!("--constraint={}", pin_constraint(&nodes))),
                        Pinning::None => {}
                    }
                }
                c.submit(args, &env, &script).await
            }
        }
    }
}

/// Builds a node from what either back end reports. Features named `nvl-*`, `block-*` and
/// `zone-*` become topology labels; every feature and the partitions are kept as labels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn node_info(
    name: &str,
    cpus: u64,
    memory_mib: u64,
    gres: &str,
    state: &str,
    flags: &[String],
    features: &str,
    partitions: &str,
) -> NodeInfo {
    let (gpu_type, gpus) = model::parse_gpu_gres(gres).unwrap_or((None, 0));
    let state_lc = state.to_lowercase();
    let node_state = if state_lc.starts_with("down")
        || state_lc.starts_with("fail")
        || flags.iter().any(|f| f.contains("NOT_RESPONDING"))
    {
        NodeState::Down
    } else if state_lc.starts_with("drain") || flags.iter().any(|f| f.starts_with("DRAIN")) {
        NodeState::Drained
    } else {
        NodeState::Up
    };
    let mut labels = BTreeMap::new();
    let mut node = NodeInfo {
        name: name.to_string(),
        gpu: gpu_type.as_deref().and_then(|t| GpuModel::parse(t).ok()),
        gpu_name: gpu_type.clone(),
        gpus,
        vcpus: cpus as u32,
        memory_mib,
        state: node_state,
        ..NodeInfo::default()
    };
    let features: Vec<&str> = features.split(',').map(str::trim).filter(|f| !f.is_empty() && *f != "(null)").collect();
    for f in &features {
        if let Some(v) = f.strip_prefix("nvl-") {
            node.nvlink_domain = Some(v.to_string());
        } else if let Some(v) = f.strip_prefix("block-") {
            node.block = Some(v.to_string());
        } else if let Some(v) = f.strip_prefix("zone-") {
            node.zone = Some(v.to_string());
        }
    }
    if !features.is_empty() {
        labels.insert("features".to_string(), features.join(","));
    }
    if !partitions.is_empty() {
        labels.insert("partitions".to_string(), partitions.to_string());
    }
    labels.insert("slurm-state".to_string(), state_lc);
    node.labels = labels;
    node
}

/// True when `node` belongs to `partition` (its `partitions` label lists it).
fn in_partition(node: &NodeInfo, partition: &str) -> bool {
    node.labels.get("partitions").is_some_and(|list| list.split(',').any(|p| p.trim() == partition))
}

#[async_trait]
impl Driver for SlurmDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "slurm".into(),
            simulated: false,
            gangs: true,
            node_selection: self.config.pinning != Pinning::None,
            gpu_indices: false,
            logs: self.config.log_dir.is_some(),
            max_nodes_per_attempt: None,
            // `--container-image` needs pyxis/enroot on the cluster: the fleet file says so.
            container_images: self.config.container_images,
            // an upload is not unpacked onto Slurm nodes: jobs with one go elsewhere.
            uploads: false,
        }
    }

    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        let mut nodes = match &self.backend {
            Backend::Rest(r) => r.nodes().await?,
            Backend::Cli(c) => c.nodes().await?,
        };
        if let Some(partition) = &self.config.partition {
            // Only the partition's nodes are this cluster's: a node elsewhere would be planned
            // for and then refused (or left pending) by Slurm.
            nodes.retain(|n| in_partition(n, partition));
        }
        let self_named = nodes
            .iter()
            .filter(|n| n.labels.get("features").is_some_and(|f| f.split(',').any(|f| f == n.name)))
            .map(|n| n.name.clone())
            .collect();
        self.known().self_named = Some(self_named);
        Ok(Capacity { nodes, simulated: false })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        request.validate()?;
        let attempt = request.attempt;
        let (seeded, uncertain) = {
            let k = self.known();
            (k.seeded, k.uncertain.contains(&attempt))
        };
        if !seeded || uncertain {
            self.refresh_known().await?;
        }
        let finished = self.recorded_exit(attempt).is_some();
        {
            let mut k = self.known();
            if let Some(id) = k.jobs.get(&attempt) {
                return Ok(LaunchOutcome { engine_id: id.to_string(), newly_started: false });
            }
            if finished {
                // It ran to its end and Slurm has forgotten it since.
                return Ok(LaunchOutcome { engine_id: "finished".into(), newly_started: false });
            }
            if !k.submitting.insert(attempt) {
                return Ok(LaunchOutcome { engine_id: "submitting".into(), newly_started: false });
            }
        }
        let result = self.submit(request).await;
        let mut k = self.known();
        k.submitting.remove(&attempt);
        match result {
            Ok(id) => {
                k.jobs.insert(attempt, id);
                k.uncertain.remove(&attempt);
                Ok(LaunchOutcome { engine_id: id.to_string(), newly_started: true })
            }
            Err(e) => {
                if e.is_transient() {
                    k.uncertain.insert(attempt);
                }
                Err(e)
            }
        }
    }

    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        let mut id = self.known().jobs.get(&attempt).copied();
        if id.is_none() {
            id = self.index_by_attempt(self.jobs().await?).get(&attempt).map(|j| j.job_id);
        }
        let Some(id) = id else { return Ok(()) };
        match &self.backend {
            Backend::Rest(r) => r.cancel(id).await,
            Backend::Cli(c) => c.cancel(id).await,
        }
    }

    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        let by_attempt = self.index_by_attempt(self.jobs().await?);
        let now = chrono::Utc::now();
        {
            let mut k = self.known();
            for (a, job) in &by_attempt {
                k.jobs.entry(*a).or_insert(job.job_id);
            }
        }
        let submitting = self.known().submitting.clone();
        // A gang whose node dies usually ends FAILED (srun loses a task) before slurmctld marks
        // the node down; once it is down, such a failure is a lost attempt, not the job's own.
        let any_failed = attempts.iter().any(|a| by_attempt.get(a).is_some_and(|j| j.state == "FAILED"));
        let down_nodes: HashSet<String> = if any_failed {
            self.discover().await?.nodes.into_iter().filter(|n| n.state == NodeState::Down).map(|n| n.name).collect()
        } else {
            HashSet::new()
        };
        Ok(attempts
            .iter()
            .map(|a| match by_attempt.get(a) {
                Some(job) => {
                    let mut state = attempt_state(job, now);
                    if job.state == "FAILED"
                        && let Some(node) = job.nodes.iter().find(|n| down_nodes.contains(*n))
                    {
                        state = AttemptState::Lost {
                            reason: format!("slurm job {} failed while node {node} went down", job.job_id),
                        };
                    }
                    let finished = state.is_terminal().then_some(job.end).flatten();
                    let nodes = job
                        .nodes
                        .iter()
                        .enumerate()
                        .map(|(rank, node)| NodeStatus {
                            rank: rank as u32,
                            node: node.clone(),
                            started_at: job.start,
                            finished_at: finished,
                            exit_code: None,
                        })
                        .collect();
                    Observation { attempt: *a, state, nodes, observed_at: now }
                }
                None if submitting.contains(a) => {
                    Observation { attempt: *a, state: AttemptState::Pending, nodes: vec![], observed_at: now }
                }
                // Gone from slurmctld (MinJobAge): what the batch step recorded, if it did.
                None => match self.recorded_exit(*a) {
                    Some((code, finished_at)) => Observation {
                        attempt: *a,
                        state: AttemptState::Exited { code, finished_at },
                        nodes: vec![],
                        observed_at: now,
                    },
                    None => Observation::unknown(*a, now),
                },
            })
            .collect())
    }

    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        let Some(dir) = self.attempt_log_dir(attempt) else {
            return Err(cumulo_driver::Error::Unsupported { driver: "slurm", what: "logs without a shared log_dir" });
        };
        let path = PathBuf::from(dir).join(format!("rank-{rank}.log"));
        let data = match tokio::fs::read(&path).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(cumulo_driver::Error::NotFound { attempt, rank });
            }
            Err(e) => return Err(cumulo_driver::Error::io(format!("reading {}", path.display()), e)),
        };
        let start = (offset as usize).min(data.len());
        let terminal = self.observe(&[attempt]).await?.first().map(|o| o.state.is_terminal()).unwrap_or(false);
        Ok(LogChunk { data: data[start..].to_vec(), next_offset: data.len() as u64, complete: terminal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_keeps_only_its_nodes() {
        let node = |partitions: &str| node_info("node001", 32, 1024, "gpu:h100:8", "IDLE", &[], "", partitions);
        assert!(in_partition(&node("gpu,failover-a"), "failover-a"));
        assert!(in_partition(&node("gpu"), "gpu"));
        assert!(!in_partition(&node("gpu,failover-a"), "failover"), "partition names match whole");
        assert!(!in_partition(&node(""), "gpu"));
    }
}
