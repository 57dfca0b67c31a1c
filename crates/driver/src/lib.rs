//! The driver trait: how the control loop launches, observes and cancels attempts on one execution
//! engine (local processes, Slurm, Ray, or a simulated cluster), and learns what capacity it has.
//!
//! # Contract every driver keeps
//!
//! * **Idempotent on the attempt id.** Launching an [`AttemptId`] that the driver already knows
//!   (running or finished, in this process or, where the engine keeps state, an earlier one)
//!   starts nothing and answers [`LaunchOutcome::newly_started`] `== false` with the same engine
//!   id. The local driver keys this on a directory per attempt, Slurm on the job name and Ray on
//!   the `submission_id`, both `cumulo-<deployment>-<attempt>` ([`EngineNames`]), the simulator
//!   on its attempt table. Ids are unique within one deployment (one database); the deployment
//!   part keeps two databases sharing an engine apart.
//! * **A failed call leaves the question open, never a duplicate.** When `launch` returns `Err`
//!   the attempt may or may not have started; the caller either retries `launch` with the *same*
//!   attempt id (safe) or calls `observe` and, if the engine answers [`AttemptState::Unknown`],
//!   may then give up on that id. It must never launch a *new* attempt id for the same work while
//!   the old one may still run.
//! * **`cancel` is idempotent.** Cancelling an unknown or finished attempt is `Ok`. On `Err` the
//!   attempt may still run; retry.
//! * **`observe` answers for every attempt asked, in order.** One [`Observation`] per id in the
//!   same order; an attempt the engine has no record of is [`AttemptState::Unknown`]. `Err` means
//!   the engine as a whole did not answer: the control loop counts it toward its lost timeout and
//!   must not conclude anything about single attempts from it.
//! * **`discover` is read-only.** `Err` means the capacity is unknown right now; keep the previous
//!   picture and count toward the lost timeout.
//!
//! Failure policy (lost after a timeout, re-placement, retries) lives in the control loop; drivers
//! only report facts: [`AttemptState::Lost`] when the engine says the nodes died, node states in
//! [`Capacity`], and [`Observation::observed_at`] as the heartbeat of the engine.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use cumulo_types::{AttemptId, GpuModel, JobId, JobKind, JobSpec};

#[cfg(feature = "conformance")]
pub mod conformance;

/// Wall-clock instants reported by engines.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// One node of an attempt, as Cumulo placed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAssignment {
    /// The engine's name for the node (Slurm node name, hostname, simulated node id).
    pub node: String,
    /// Indices of the GPUs on that node given to this attempt; exported as `CUDA_VISIBLE_DEVICES`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<u32>,
}

impl NodeAssignment {
    pub fn new(node: &str, gpus: impl IntoIterator<Item = u32>) -> NodeAssignment {
        NodeAssignment { node: node.to_string(), gpus: gpus.into_iter().collect() }
    }
}

/// What the control loop asks a driver to run: one attempt of one job on chosen nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub attempt: AttemptId,
    pub job: JobSpec,
    /// One entry per node of the gang, in rank order (`nodes[0]` is rank 0). Its length is the
    /// job's `num_nodes`.
    pub nodes: Vec<NodeAssignment>,
    /// Exported as `CUMULO_CHECKPOINT_DIR`. The control loop passes the same directory to every
    /// attempt of a job, so a later attempt resumes where the last one checkpointed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_dir: Option<String>,
    /// Which replica of the job this attempt runs (0 for jobs with one replica), exported as
    /// `CUMULO_REPLICA`.
    #[serde(default)]
    pub replica: u32,
    /// Extra environment from the control plane, applied after the job's `envs`. Neither may
    /// override the `CUMULO_*` variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The job's secrets in clear, opened by the control loop for this launch only: environment
    /// variables of the job's processes, applied last of the job's own variables. Never
    /// serialised (a driver that writes the request down writes none of them) and never shown
    /// by `Debug`.
    #[serde(skip)]
    pub secrets: SecretEnv,
}

/// Secret environment variables: `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys().map(|k| format!("{k}=****"))).finish()
    }
}

/// Environment variables every driver sets on every node of an attempt.
pub const ENV_JOB_ID: &str = "CUMULO_JOB_ID";
pub const ENV_ATTEMPT: &str = "CUMULO_ATTEMPT";
pub const ENV_NODE_RANK: &str = "CUMULO_NODE_RANK";
pub const ENV_NUM_NODES: &str = "CUMULO_NUM_NODES";
pub const ENV_CHECKPOINT_DIR: &str = "CUMULO_CHECKPOINT_DIR";
pub const ENV_REPLICA: &str = "CUMULO_REPLICA";
pub const ENV_CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

impl LaunchRequest {
    /// A request for `job` with nodes named `node-0`, `node-1`... and no GPUs, for tests and
    /// drivers that choose nodes themselves.
    pub fn new(attempt: AttemptId, job: JobSpec) -> LaunchRequest {
        let nodes = (0..job.num_nodes.max(1)).map(|i| NodeAssignment::new(&format!("node-{i}"), [])).collect();
        LaunchRequest {
            attempt,
            job,
            nodes,
            checkpoint_dir: None,
            replica: 0,
            env: BTreeMap::new(),
            secrets: SecretEnv::default(),
        }
    }

    /// The name engines that key on names (Slurm job name, Ray submission id prefix) use for the
    /// attempt: `cumulo-<job>.<attempt>`.
    pub fn engine_name(&self) -> String {
        engine_name(self.attempt)
    }

    /// Checks what every driver relies on: at least one node, one assignment per node of the
    /// gang, distinct node names, distinct GPU indices per node, and environment names that are
    /// valid shell identifiers and leave `CUMULO_*` alone.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, value: String, expected: &'static str| Error::InvalidRequest {
            attempt: self.attempt,
            field,
            value,
            expected,
        };
        if self.job.num_nodes == 0 {
            return Err(invalid("job.num_nodes", "0".into(), "at least 1"));
        }
        if self.nodes.len() != self.job.num_nodes as usize {
            return Err(invalid(
                "nodes",
                format!("{} assignments", self.nodes.len()),
                "one assignment per node of the gang (job.num_nodes)",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if !n.node.is_empty() && !seen.insert(n.node.as_str()) {
                return Err(invalid("nodes.node", n.node.clone(), "distinct nodes within one attempt"));
            }
            let mut gpus = n.gpus.clone();
            gpus.sort_unstable();
            gpus.dedup();
            if gpus.len() != n.gpus.len() {
                return Err(invalid("nodes.gpus", format!("{:?}", n.gpus), "distinct GPU indices"));
            }
        }
        for key in self.job.envs.keys().chain(self.env.keys()).chain(self.secrets.0.keys()) {
            if !is_env_name(key) {
                return Err(invalid(
                    "envs",
                    key.clone(),
                    "a name of letters, digits and '_' not starting with a digit",
                ));
            }
            if key.starts_with("CUMULO_") {
                return Err(invalid("envs", key.clone(), "a name outside the reserved CUMULO_ prefix"));
            }
        }
        Ok(())
    }

    /// The environment of node `rank`: the job's `envs`, then the control plane's `env`, then the
    /// job's secrets, then the
    /// `CUMULO_*` variables and `CUDA_VISIBLE_DEVICES` (empty when the node has no GPUs, so a
    /// CPU-only attempt never sees the host's GPUs).
    pub fn environment(&self, rank: u32) -> BTreeMap<String, String> {
        let mut env = self.job.envs.clone();
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.secrets.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert(ENV_JOB_ID.into(), self.attempt.job.to_string());
        env.insert(ENV_ATTEMPT.into(), self.attempt.attempt.to_string());
        env.insert(ENV_NODE_RANK.into(), rank.to_string());
        env.insert(ENV_NUM_NODES.into(), self.nodes.len().to_string());
        env.insert(ENV_REPLICA.into(), self.replica.to_string());
        if let Some(dir) = &self.checkpoint_dir {
            env.insert(ENV_CHECKPOINT_DIR.into(), dir.clone());
        }
        let gpus = self.nodes.get(rank as usize).map(|n| n.gpus.as_slice()).unwrap_or(&[]);
        env.insert(ENV_CUDA_VISIBLE_DEVICES.into(), gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        env
    }

    /// The bash script every node runs: `setup` in a subshell (its failure ends the node with its
    /// exit code and a line on stderr), then `run` in the main shell so that `exit N` in `run` is
    /// the node's exit code. With neither, the script exits 0.
    pub fn node_script(&self) -> String {
        let mut script = String::new();
        if let Some(setup) = self.job.setup.as_deref().filter(|s| !s.trim().is_empty()) {
            script.push_str("(\n");
            script.push_str(setup);
            script.push_str(
                "\n) || { __cumulo_rc=$?; echo \"cumulo: setup failed with exit code $__cumulo_rc\" >&2; exit $__cumulo_rc; }\n",
            );
        }
        // An uploaded workdir was unpacked into the working directory the script starts in.
        if let Some(workdir) =
            self.job.workdir.as_deref().filter(|s| !s.trim().is_empty() && !self.job.workdir_uploaded())
        {
            script.push_str(&format!("cd {} || exit 1\n", shell_quote(workdir)));
        }
        match self.job.run.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(run) => {
                script.push_str(run);
                script.push('\n');
            }
            None => script.push_str("exit 0\n"),
        }
        script
    }
}

/// `cumulo-<job>.<attempt>`: the name under which engines that key on names know an attempt of
/// a deployment without a prefix (see [`EngineNames`]).
pub fn engine_name(attempt: AttemptId) -> String {
    format!("cumulo-{attempt}")
}

/// Parses a name made by [`engine_name`] back into the attempt id.
pub fn parse_engine_name(name: &str) -> Option<AttemptId> {
    let rest = name.strip_prefix("cumulo-")?;
    parse_attempt(rest)
}

fn parse_attempt(text: &str) -> Option<AttemptId> {
    let (job, attempt) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(job) || !digits(attempt) {
        return None;
    }
    Some(AttemptId { job: JobId(job.parse().ok()?), attempt: attempt.parse().ok()? })
}

/// How one Cumulo deployment names its attempts on an engine it may share with others:
/// `cumulo-<deployment>-<job>.<attempt>`, or `cumulo-<job>.<attempt>` without a deployment.
///
/// Job ids restart at 1 in every fresh database, and engines remember finished jobs for a while
/// (Slurm for `MinJobAge`, Ray for ever): without the deployment in the name, a new database would
/// take an old job of the same id for its own attempt and never launch it. A driver sees only the
/// names of its own deployment: [`EngineNames::parse`] refuses every other one, prefixed or not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineNames {
    deployment: Option<String>,
}

impl EngineNames {
    /// Names for `deployment`: 1 to 32 lowercase letters and digits (the store's deployment id is
    /// 8 hex digits); `None` gives the unprefixed names.
    pub fn new(deployment: Option<&str>) -> Result<EngineNames, Error> {
        if let Some(d) = deployment
            && (d.is_empty() || d.len() > 32 || !d.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        {
            return Err(Error::Config {
                field: "deployment",
                value: d.to_string(),
                expected: "1 to 32 lowercase letters and digits",
            });
        }
        Ok(EngineNames { deployment: deployment.map(str::to_string) })
    }

    pub fn deployment(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// The engine's name for `attempt`.
    pub fn name(&self, attempt: AttemptId) -> String {
        match &self.deployment {
            Some(d) => format!("cumulo-{d}-{attempt}"),
            None => engine_name(attempt),
        }
    }

    /// The attempt a name made by [`EngineNames::name`] of this deployment stands for; `None` for
    /// every other name, including other deployments' attempts.
    pub fn parse(&self, name: &str) -> Option<AttemptId> {
        let rest = name.strip_prefix("cumulo-")?;
        match &self.deployment {
            Some(d) => parse_attempt(rest.strip_prefix(d.as_str())?.strip_prefix('-')?),
            None => parse_attempt(rest),
        }
    }
}

fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Quotes a string for bash with single quotes.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What `launch` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchOutcome {
    /// The engine's own id for the attempt (Slurm job id, Ray submission id, local pid of rank 0,
    /// simulated id), for people and logs.
    pub engine_id: String,
    /// False when the attempt was already known and nothing new was started.
    pub newly_started: bool,
}

/// Where one attempt is, as its engine reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AttemptState {
    /// Accepted by the engine, not running yet (queued, nodes booting, setup not started).
    Pending,
    /// Running on all its nodes since `started_at`.
    Running { started_at: Timestamp },
    /// Every node finished; `code` is the job's exit code (0 is success; for a gang, the code of
    /// the first node to fail, whose failure stops the other nodes, else 0).
    Exited { code: i32, finished_at: Timestamp },
    /// The engine could not run it to an exit (launch failure, out of memory, time limit, engine
    /// error). A new attempt may succeed.
    Failed { reason: String },
    /// Stopped by `cancel` (or by an operator on the engine).
    Cancelled,
    /// The engine reports its nodes failed or it vanished without an exit code: the work is gone
    /// and should be re-placed.
    Lost { reason: String },
    /// The engine has no record of the attempt (never launched, or forgotten).
    Unknown,
}

impl AttemptState {
    /// True when the attempt will not change state again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            AttemptState::Exited { .. }
                | AttemptState::Failed { .. }
                | AttemptState::Cancelled
                | AttemptState::Lost { .. }
        )
    }

    pub fn is_success(&self) -> bool {
        matches!(self, AttemptState::Exited { code: 0, .. })
    }

    /// A short lowercase name: `pending`, `running`, `exited`, `failed`, `cancelled`, `lost`,
    /// `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            AttemptState::Pending => "pending",
            AttemptState::Running { .. } => "running",
            AttemptState::Exited { .. } => "exited",
            AttemptState::Failed { .. } => "failed",
            AttemptState::Cancelled => "cancelled",
            AttemptState::Lost { .. } => "lost",
            AttemptState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptState::Exited { code, .. } => write!(f, "exited {code}"),
            AttemptState::Failed { reason } => write!(f, "failed: {reason}"),
            AttemptState::Lost { reason } => write!(f, "lost: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

/// One node of an observed attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub rank: u32,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// What a driver knows about one attempt right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub attempt: AttemptId,
    #[serde(flatten)]
    pub state: AttemptState,
    /// Per-node start and stop times where the engine reports them (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// When the engine answered: the heartbeat the control loop's lost timeout runs against.
    pub observed_at: Timestamp,
}

impl Observation {
    pub fn unknown(attempt: AttemptId, observed_at: Timestamp) -> Observation {
        Observation { attempt, state: AttemptState::Unknown, nodes: Vec::new(), observed_at }
    }
}

/// Whether a node can take work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Up (idle, partly or fully allocated).
    #[default]
    Up,
    /// Up but closed to new work by an operator (Slurm DRAIN).
    Drained,
    /// Not answering, or failed: attempts on it should be treated as lost.
    Down,
}

/// One node an engine offers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// The GPU model when Cumulo knows the engine's name for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    /// The engine's own name for the GPUs (`NVIDIA H100 80GB HBM3`, Slurm GRES type `h100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_name: Option<String>,
    #[serde(default)]
    pub gpus: u32,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_domain: Option<String>,
    /// Other labels (Slurm partition and features, Ray resources, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What an engine offers, as `discover` found it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub nodes: Vec<NodeInfo>,
    /// True for simulated clusters; every user-facing view says "simulated" for them.
    #[serde(default)]
    pub simulated: bool,
}

impl Capacity {
    pub fn total_gpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.gpus)).sum()
    }

    pub fn total_vcpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.vcpus)).sum()
    }
}

/// What a driver can do, so the control loop and the UI know what to expect from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `local`, `slurm`, `ray` or `simulated`.
    pub kind: String,
    /// True for simulated clusters: nothing real runs.
    pub simulated: bool,
    /// Runs multi-node gangs as one attempt.
    pub gangs: bool,
    /// Honours [`NodeAssignment::node`] (Slurm `--nodelist`); otherwise the engine picks nodes.
    pub node_selection: bool,
    /// Honours [`NodeAssignment::gpus`] indices; otherwise the engine picks GPUs and only the count
    /// matters.
    pub gpu_indices: bool,
    /// Serves `logs`.
    pub logs: bool,
    /// The most nodes one attempt may span, when the engine has a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes_per_attempt: Option<u32>,
    /// Runs a job in its container image ([`cumulo_types::JobSpec::image`], SkyPilot's
    /// `image_id: docker:...`). The control loop keeps jobs with an image off clusters without it.
    #[serde(default)]
    pub container_images: bool,
    /// Unpacks a job's upload ([`cumulo_types::JobSpec::upload`]: its local `workdir` and
    /// `file_mounts`) into each node's working directory before `setup`. The control loop keeps
    /// jobs with an upload off clusters without it.
    #[serde(default)]
    pub uploads: bool,
}

/// A piece of one node's log, from `offset`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub data: Vec<u8>,
    /// Where the next read should start.
    pub next_offset: u64,
    /// True when the attempt has finished and nothing will be appended after `next_offset`.
    pub complete: bool,
}

/// Errors from drivers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine did not answer (connection refused, timeout, controller down). Transient: the
    /// control loop retries and counts it toward its lost timeout.
    #[error("{engine} at {endpoint} unreachable: {reason}")]
    Unreachable { engine: &'static str, endpoint: String, reason: String },
    /// The request is malformed; retrying it will not help.
    #[error("invalid launch request for attempt {attempt}: {field} `{value}`: expected {expected}")]
    InvalidRequest { attempt: AttemptId, field: &'static str, value: String, expected: &'static str },
    /// The engine answered and refused (unknown node, bad credentials, rejected job).
    #[error("{engine} refused {what}: {reason}")]
    Rejected { engine: &'static str, what: String, reason: String },
    /// The engine answered something the driver cannot read.
    #[error("{engine} answered unreadably to {what}: {reason}")]
    Protocol { engine: &'static str, what: String, reason: String },
    #[error("attempt {attempt} rank {rank} not found")]
    NotFound { attempt: AttemptId, rank: u32 },
    /// A driver setting is invalid.
    #[error("invalid driver setting {field} `{value}`: expected {expected}")]
    Config { field: &'static str, value: String, expected: &'static str },
    #[error("{what} is not supported by the {driver} driver")]
    Unsupported { driver: &'static str, what: &'static str },
    #[error("i/o error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Io { .. })
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

/// An execution engine as the control loop sees it. Object safe: the control loop holds
/// `Arc<dyn Driver>` per cluster. See the crate docs for what holds when a call fails.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// What this driver can do. Cheap, never fails.
    fn capabilities(&self) -> Capabilities;

    /// The nodes the engine offers now, with GPUs, vCPUs, memory, state and topology labels.
    async fn discover(&self) -> Result<Capacity, Error>;

    /// Starts `request.attempt` on `request.nodes`, or does nothing if that attempt id is already
    /// known (see [`LaunchOutcome::newly_started`]). Returns once the engine has accepted the
    /// attempt, not when it runs.
    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, Error>;

    /// Stops the attempt on all its nodes. `Ok` for unknown and finished attempts.
    async fn cancel(&self, attempt: AttemptId) -> Result<(), Error>;

    /// The state of every attempt in `attempts`, one observation per id, in order.
    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, Error>;

    /// Log bytes of node `rank` of `attempt` from `offset` (stdout and stderr interleaved).
    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, Error>;
}

// The control loop holds `Arc<dyn Driver>`: this fails to compile if the trait stops being object safe.
const _: Option<&dyn Driver> = None;

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(job: u64, n: u32) -> AttemptId {
        AttemptId { job: JobId(job), attempt: n }
    }

    fn gang(nodes: u32) -> LaunchRequest {
        let mut job = JobSpec::new("train", "research");
        job.num_nodes = nodes;
        let mut req = LaunchRequest::new(attempt(7, 2), job);
        req.nodes = (0..nodes).map(|i| NodeAssignment::new(&format!("n{i}"), [2 * i, 2 * i + 1])).collect();
        req
    }

    #[test]
    fn secrets_reach_the_environment_but_never_debug_or_json() {
        let mut req = gang(1);
        req.secrets.0.insert("HF_TOKEN".into(), "hf_clear_value".into());
        assert_eq!(req.environment(0).get("HF_TOKEN").map(String::as_str), Some("hf_clear_value"));
        let debug = format!("{req:?}");
        assert!(debug.contains("HF_TOKEN=****") && !debug.contains("hf_clear_value"), "{debug}");
        let json = serde_json::to_string(&req).unwrap();
        assert!(!json.contains("hf_clear_value"), "a written-down request holds no secret: {json}");
        req.secrets.0.insert("CUMULO_JOB_ID".into(), "1".into());
        assert!(req.validate().unwrap_err().to_string().contains("CUMULO_JOB_ID"), "reserved names are refused");
    }

    #[test]
    fn environment_carries_rank_gang_size_checkpoint_and_gpus() {
        let mut req = gang(2);
        req.checkpoint_dir = Some("/ckpt/train".into());
        req.replica = 3;
        req.job.envs.insert("LR".into(), "0.1".into());
        let env = req.environment(1);
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("CUMULO_JOB_ID"), Some("7"));
        assert_eq!(get("CUMULO_ATTEMPT"), Some("2"));
        assert_eq!(get("CUMULO_NODE_RANK"), Some("1"));
        assert_eq!(get("CUMULO_NUM_NODES"), Some("2"));
        assert_eq!(get("CUMULO_REPLICA"), Some("3"));
        assert_eq!(get("CUMULO_CHECKPOINT_DIR"), Some("/ckpt/train"));
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), Some("2,3"));
        assert_eq!(get("LR"), Some("0.1"));
    }

    #[test]
    fn validate_names_the_field_value_and_expectation() {
        let check = |req: LaunchRequest, expect: &str| {
            let err = req.validate().expect_err(expect).to_string();
            assert_eq!(err, expect);
        };
        let mut short = gang(3);
        short.nodes.pop();
        check(
            short,
            "invalid launch request for attempt 7.2: nodes `2 assignments`: expected one assignment per node of the gang (job.num_nodes)",
        );
        let mut twice = gang(2);
        twice.nodes[1].node = "n0".into();
        check(
            twice,
            "invalid launch request for attempt 7.2: nodes.node `n0`: expected distinct nodes within one attempt",
        );
        let mut gpus = gang(1);
        gpus.nodes[0].gpus = vec![1, 1];
        check(gpus, "invalid launch request for attempt 7.2: nodes.gpus `[1, 1]`: expected distinct GPU indices");
        let mut reserved = gang(1);
        reserved.job.envs.insert("CUMULO_NODE_RANK".into(), "9".into());
        check(
            reserved,
            "invalid launch request for attempt 7.2: envs `CUMULO_NODE_RANK`: expected a name outside the reserved CUMULO_ prefix",
        );
        let mut bad = gang(1);
        bad.env.insert("1X".into(), "y".into());
        check(
            bad,
            "invalid launch request for attempt 7.2: envs `1X`: expected a name of letters, digits and '_' not starting with a digit",
        );
        assert!(gang(4).validate().is_ok());
    }

    #[test]
    fn engine_names_round_trip() {
        let a = attempt(123, 4);
        assert_eq!(engine_name(a), "cumulo-123.4");
        assert_eq!(parse_engine_name(&engine_name(a)), Some(a));
        assert_eq!(parse_engine_name("other-1.2"), None);
        assert_eq!(parse_engine_name("cumulo-x.2"), None);
        assert_eq!(parse_engine_name("cumulo-+1.2"), None);
    }

    #[test]
    fn deployments_see_only_their_own_names() {
        let a = attempt(123, 4);
        let mine = EngineNames::new(Some("ab12cd34")).unwrap();
        let other = EngineNames::new(Some("ab12cd35")).unwrap();
        let digits = EngineNames::new(Some("12345678")).unwrap();
        let bare = EngineNames::new(None).unwrap();
        assert_eq!(mine.name(a), "cumulo-ab12cd34-123.4");
        assert_eq!(bare.name(a), "cumulo-123.4");
        for names in [&mine, &other, &digits, &bare] {
            assert_eq!(names.parse(&names.name(a)), Some(a));
            for others in [&mine, &other, &digits, &bare] {
                if others != names {
                    assert_eq!(names.parse(&others.name(a)), None, "{:?} saw {}", names, others.name(a));
                }
            }
        }
        assert_eq!(mine.parse("cumulo-ab12cd34-x.1"), None);
        assert_eq!(mine.parse("cumulo-ab12cd34123.4"), None);
    }

    #[test]
    fn a_bad_deployment_is_refused_with_the_reason() {
        for bad in ["", "AB12", "ab-12", "a.b", &"a".repeat(33)] {
            let err = EngineNames::new(Some(bad)).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("invalid driver setting deployment `{bad}`: expected 1 to 32 lowercase letters and digits")
            );
        }
    }

    #[test]
    fn node_script_runs_setup_then_run() {
        let mut req = gang(1);
        assert_eq!(req.node_script(), "exit 0\n");
        req.job.setup = Some("pip install x".into());
        req.job.run = Some("python train.py".into());
        let script = req.node_script();
        let setup_at = script.find("pip install x").unwrap();
        let run_at = script.find("python train.py").unwrap();
        assert!(setup_at < run_at, "{script}");
        assert!(script.contains("setup failed with exit code"));
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn observations_serialise_with_a_flat_state_tag() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let obs = Observation {
            attempt: attempt(1, 1),
            state: AttemptState::Exited { code: 3, finished_at: at },
            nodes: vec![],
            observed_at: at,
        };
        let json = serde_json::to_value(&obs).unwrap();
        assert_eq!(json["state"], "exited");
        assert_eq!(json["code"], 3);
        let back: Observation = serde_json::from_value(json).unwrap();
        assert_eq!(back, obs);
        assert!(back.state.is_terminal() && !back.state.is_success());
        assert_eq!(back.state.to_string(), "exited 3");
    }
}
