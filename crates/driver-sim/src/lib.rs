//! Simulated clusters: a [`Driver`] that runs nothing, for the demo fleet and the simulator. Every
//! name a user sees says "simulated" (capability kind, engine ids, node labels, log text, reasons).
//!
//! Deterministic: time comes from a [`SimClock`] (manual for tests and the simulator, the wall
//! clock for a live demo), and an attempt's course follows from its request alone: it starts
//! `start_delay` after launch, runs for the job's `duration_s` (or the default), and exits with the
//! code in its `SIM_EXIT_CODE` env (0 when absent). Nodes can be lost and the whole cluster can be
//! made unreachable, to drive failure handling.
//!
//! With a dispatch log configured, every new launch appends one JSON line to it, and opening a
//! driver over an existing log knows those attempts again: a relaunch after a control-plane
//! restart is recognised, so the log counts each attempt once when the control plane is correct
//! and twice when it is not.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use cumulo_driver::{
    AttemptId, AttemptState, Capabilities, Capacity, Driver, GpuModel, LaunchOutcome, LaunchRequest, LogChunk,
    NodeInfo, NodeState, NodeStatus, Observation, Timestamp,
};
use serde::{Deserialize, Serialize};

/// The env a job sets to choose its simulated exit code.
pub const ENV_SIM_EXIT_CODE: &str = "SIM_EXIT_CODE";

/// Errors opening a simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read simulated dispatch log {path}: {source}")]
    DispatchLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulated dispatch log {path} line {line}: {reason}")]
    DispatchLogLine { path: PathBuf, line: usize, reason: String },
}

/// Where a simulated cluster's time comes from.
#[derive(Clone, Debug)]
pub enum SimClock {
    /// Time moves only when told (`advance`, `set`): tests and the simulator.
    Manual(Arc<Mutex<Timestamp>>),
    /// The wall clock: a live demo fleet.
    Wall,
}

impl SimClock {
    pub fn manual(start: Timestamp) -> SimClock {
        SimClock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            SimClock::Manual(t) => *t.lock().expect("sim clock poisoned"),
            SimClock::Wall => chrono::Utc::now(),
        }
    }

    /// Moves a manual clock forward; a wall clock ignores it.
    pub fn advance(&self, by: std::time::Duration) {
        if let SimClock::Manual(t) = self {
            let mut t = t.lock().expect("sim clock poisoned");
            *t += Duration::from_std(by).unwrap_or(Duration::zero());
        }
    }

    pub fn set(&self, to: Timestamp) {
        if let SimClock::Manual(t) = self {
            *t.lock().expect("sim clock poisoned") = to;
        }
    }
}

/// A simulated cluster's shape and behaviour.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The cluster's name, used in node names and engine ids.
    pub cluster: String,
    pub nodes: Vec<NodeInfo>,
    /// From launch to running.
    pub start_delay: std::time::Duration,
    /// Run time of a job without `duration_s` (an inference service without one runs until it
    /// is cancelled: a service does not end by itself).
    pub default_duration: std::time::Duration,
    /// Job seconds per simulated-cluster second: a job of `duration_s` runs `duration_s /
    /// time_scale` seconds of this driver's clock (at least one). 1 runs durations as written; the
    /// demo fleet runs an hour of job time in a second so a 14-day training ends in minutes.
    pub time_scale: u32,
    /// Append-only JSON lines, one per new launch.
    pub dispatch_log: Option<PathBuf>,
}

impl SimConfig {
    /// `count` identical nodes named `<cluster>-0001`..., grouped `domain_nodes` to an NVLink
    /// domain and 16 domains to a network block, all in zone `<cluster>-a`.
    pub fn uniform(
        cluster: &str,
        count: u32,
        gpu: Option<GpuModel>,
        gpus: u32,
        vcpus: u32,
        memory_mib: u64,
    ) -> SimConfig {
        // NVL72 racks: 18 nodes of 4 GPUs share one NVLink domain; other nodes are their own.
        let domain_nodes = if matches!(gpu, Some(GpuModel::GB200 | GpuModel::GB300)) { 18 } else { 1 };
        let nodes = (0..count)
            .map(|i| {
                let domain = i / domain_nodes;
                let mut labels = BTreeMap::new();
                labels.insert("simulated".to_string(), "true".to_string());
                NodeInfo {
                    name: format!("{cluster}-{:04}", i + 1),
                    gpu,
                    gpu_name: gpu.map(|g| format!("simulated {g}")),
                    gpus,
                    vcpus,
                    memory_mib,
                    state: NodeState::Up,
                    zone: Some(format!("{cluster}-a")),
                    block: Some(format!("{cluster}-block-{}", domain / 16)),
                    nvlink_domain: Some(format!("{cluster}-nvl-{domain}")),
                    labels,
                }
            })
            .collect();
        SimConfig {
            cluster: cluster.to_string(),
            nodes,
            start_delay: std::time::Duration::from_secs(1),
            default_duration: std::time::Duration::from_secs(60),
            time_scale: 1,
            dispatch_log: None,
        }
    }
}

/// One line of the dispatch log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchRecord {
    pub attempt: AttemptId,
    pub cluster: String,
    pub nodes: Vec<String>,
    /// The job's replica this attempt runs (`LaunchRequest::replica`).
    #[serde(default)]
    pub replica: u32,
    pub at: Timestamp,
    /// Simulated run time in seconds and exit code, so a reopened driver replays the same course.
    pub duration_s: u64,
    pub exit_code: i32,
}

/// Reads a dispatch log; a missing file is an empty log.
pub fn read_dispatch_log(path: &Path) -> Result<Vec<DispatchRecord>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::DispatchLog { path: path.to_path_buf(), source }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::DispatchLogLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

#[derive(Clone, Debug)]
struct SimAttempt {
    nodes: Vec<String>,
    launched_at: Timestamp,
    duration: Duration,
    exit_code: i32,
    cancelled_at: Option<Timestamp>,
    /// Why and when the attempt was lost.
    lost: Option<(String, Timestamp)>,
}

#[derive(Debug, Default)]
struct State {
    attempts: HashMap<AttemptId, SimAttempt>,
    down: BTreeMap<String, String>,
    unreachable: Option<String>,
    dispatches: u64,
}

/// A simulated cluster. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SimDriver {
    config: Arc<SimConfig>,
    clock: SimClock,
    state: Arc<Mutex<State>>,
}

/// A service without a duration runs this long: until it is cancelled, in practice.
const SERVICE_RUN_S: u64 = 100 * 365 * 86_400;

impl SimDriver {
    /// How long an attempt of `job` runs on this driver's clock: its `duration_s` (else the
    /// default; a service without one runs until cancelled) divided by `time_scale`, at least 1 s.
    pub fn run_time_s(&self, job: &cumulo_driver::JobSpec) -> u64 {
        let job_s = match (job.duration_s, job.kind) {
            (Some(d), _) => d,
            (None, cumulo_driver::JobKind::Inference) => return SERVICE_RUN_S,
            (None, _) => self.config.default_duration.as_secs(),
        };
        job_s.div_ceil(u64::from(self.config.time_scale.max(1))).max(1)
    }

    /// Opens a simulated cluster, reloading the attempts of an existing dispatch log.
    pub fn open(config: SimConfig, clock: SimClock) -> Result<SimDriver, Error> {
        let mut state = State::default();
        if let Some(path) = &config.dispatch_log {
            for r in read_dispatch_log(path)? {
                if r.cluster == config.cluster {
                    state.attempts.insert(
                        r.attempt,
                        SimAttempt {
                            nodes: r.nodes,
                            launched_at: r.at,
                            duration: Duration::seconds(r.duration_s as i64),
                            exit_code: r.exit_code,
                            cancelled_at: None,
                            lost: None,
                        },
                    );
                }
            }
        }
        Ok(SimDriver { config: Arc::new(config), clock, state: Arc::new(Mutex::new(state)) })
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    pub fn cluster(&self) -> &str {
        &self.config.cluster
    }

    /// New launches this driver instance accepted (not counting those reloaded from the log).
    pub fn dispatches(&self) -> u64 {
        self.lock().dispatches
    }

    /// Marks a node down: attempts on it become lost and it takes no new work.
    pub fn lose_node(&self, node: &str) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.down.insert(node.to_string(), format!("simulated node {node} lost at {}", now.to_rfc3339()));
        let reason = format!("simulated node {node} lost");
        for a in st.attempts.values_mut() {
            if a.nodes.iter().any(|n| n == node) && a.lost.is_none() && !self.finished(a, now) {
                a.lost = Some((reason.clone(), now));
            }
        }
    }

    pub fn restore_node(&self, node: &str) {
        self.lock().down.remove(node);
    }

    /// Makes every call fail as if the cluster's controller stopped answering.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable.then(|| "simulated outage".to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("simulated cluster state poisoned")
    }

    fn check_reachable(&self, st: &State) -> Result<(), cumulo_driver::Error> {
        match &st.unreachable {
            Some(reason) => Err(cumulo_driver::Error::Unreachable {
                engine: "simulated",
                endpoint: self.config.cluster.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn finished(&self, a: &SimAttempt, now: Timestamp) -> bool {
        a.cancelled_at.is_some() || now >= self.end_of(a)
    }

    fn start_of(&self, a: &SimAttempt) -> Timestamp {
        a.launched_at + Duration::from_std(self.config.start_delay).unwrap_or(Duration::zero())
    }

    fn end_of(&self, a: &SimAttempt) -> Timestamp {
        self.start_of(a) + a.duration
    }

    fn observe_one(&self, st: &State, attempt: AttemptId, now: Timestamp) -> Observation {
        let Some(a) = st.attempts.get(&attempt) else { return Observation::unknown(attempt, now) };
        let start = self.start_of(a);
        let end = self.end_of(a);
        let started = (now >= start).then_some(start);
        let state = if let Some((reason, _)) = &a.lost {
            AttemptState::Lost { reason: reason.clone() }
        } else if a.cancelled_at.is_some() {
            AttemptState::Cancelled
        } else if now < start {
            AttemptState::Pending
        } else if now < end {
            AttemptState::Running { started_at: start }
        } else {
            AttemptState::Exited { code: a.exit_code, finished_at: end }
        };
        // A lost or cancelled attempt stopped when that happened, never at its planned end.
        let stopped_at = a.lost.as_ref().map(|(_, at)| *at).or(a.cancelled_at).unwrap_or(end).min(end);
        let finished = state.is_terminal().then_some(stopped_at);
        let nodes = a
            .nodes
            .iter()
            .enumerate()
            .map(|(rank, node)| NodeStatus {
                rank: rank as u32,
                node: node.clone(),
                started_at: started,
                finished_at: finished,
                exit_code: matches!(state, AttemptState::Exited { .. }).then_some(a.exit_code),
            })
            .collect();
        Observation { attempt, state, nodes, observed_at: now }
    }
}

#[async_trait]
impl Driver for SimDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "simulated".into(),
            simulated: true,
            gangs: true,
            node_selection: true,
            gpu_indices: true,
            logs: true,
            max_nodes_per_attempt: None,
            // simulated: nothing runs, so any image is as good as started.
            container_images: true,
            // simulated: nothing is copied, so any upload is as good as unpacked.
            uploads: true,
        }
    }

    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        let st = self.lock();
        self.check_reachable(&st)?;
        let nodes = self
            .config
            .nodes
            .iter()
            .map(|n| {
                let mut n = n.clone();
                if st.down.contains_key(&n.name) {
                    n.state = NodeState::Down;
                }
                n
            })
            .collect();
        Ok(Capacity { nodes, simulated: true })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        request.validate()?;
        let attempt = request.attempt;
        let engine_id = format!("simulated:{}:{attempt}", self.config.cluster);
        let now = self.clock.now();
        let mut st = self.lock();
        self.check_reachable(&st)?;
        if st.attempts.contains_key(&attempt) {
            return Ok(LaunchOutcome { engine_id, newly_started: false });
        }
        let known = !self.config.nodes.is_empty();
        for n in &request.nodes {
            if known && !self.config.nodes.iter().any(|k| k.name == n.node) {
                return Err(cumulo_driver::Error::Rejected {
                    engine: "simulated",
                    what: format!("attempt {attempt}"),
                    reason: format!("no simulated node `{}` in cluster {}", n.node, self.config.cluster),
                });
            }
            if let Some(why) = st.down.get(&n.node) {
                return Err(cumulo_driver::Error::Rejected {
                    engine: "simulated",
                    what: format!("attempt {attempt}"),
                    reason: why.clone(),
                });
            }
        }
        let exit_code = match request.job.envs.get(ENV_SIM_EXIT_CODE) {
            None => 0,
            Some(v) => v.parse().map_err(|_| cumulo_driver::Error::InvalidRequest {
                attempt,
                field: "envs.SIM_EXIT_CODE",
                value: v.clone(),
                expected: "an integer exit code",
            })?,
        };
        let duration_s = self.run_time_s(&request.job);
        let sim = SimAttempt {
            nodes: request.nodes.iter().map(|n| n.node.clone()).collect(),
            launched_at: now,
            duration: Duration::seconds(duration_s as i64),
            exit_code,
            cancelled_at: None,
            lost: None,
        };
        if let Some(path) = &self.config.dispatch_log {
            let record = DispatchRecord {
                attempt,
                cluster: self.config.cluster.clone(),
                nodes: sim.nodes.clone(),
                replica: request.replica,
                at: now,
                duration_s,
                exit_code,
            };
            let line = serde_json::to_string(&record).expect("dispatch records serialise") + "\n";
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(|e| cumulo_driver::Error::io(format!("appending to {}", path.display()), e))?;
        }
        st.attempts.insert(attempt, sim);
        st.dispatches += 1;
        Ok(LaunchOutcome { engine_id, newly_started: true })
    }

    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        let now = self.clock.now();
        let mut st = self.lock();
        self.check_reachable(&st)?;
        if let Some(a) = st.attempts.get(&attempt).cloned()
            && !self.finished(&a, now)
            && a.lost.is_none()
        {
            st.attempts.get_mut(&attempt).expect("present").cancelled_at = Some(now);
        }
        Ok(())
    }

    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        let now = self.clock.now();
        let st = self.lock();
        self.check_reachable(&st)?;
        Ok(attempts.iter().map(|a| self.observe_one(&st, *a, now)).collect())
    }

    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        let now = self.clock.now();
        let st = self.lock();
        self.check_reachable(&st)?;
        let obs = self.observe_one(&st, attempt, now);
        if obs.nodes.len() <= rank as usize {
            return Err(cumulo_driver::Error::NotFound { attempt, rank });
        }
        let text = format!(
            "simulated attempt {attempt} rank {rank} on {}: no real output\n{}",
            obs.nodes[rank as usize].node,
            if obs.state.is_terminal() { format!("simulated {}\n", obs.state) } else { String::new() }
        );
        let bytes = text.into_bytes();
        let start = (offset as usize).min(bytes.len());
        let complete = obs.state.is_terminal();
        Ok(LogChunk { data: bytes[start..].to_vec(), next_offset: bytes.len() as u64, complete })
    }
}
