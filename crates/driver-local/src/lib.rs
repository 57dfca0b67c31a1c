//! The embedded default driver: every node (rank) of an attempt is a local process group running
//! the job's `setup` then `run` under bash.
//!
//! State lives in files under the driver's root, one directory per attempt, so that a restarted
//! driver finds what an earlier one launched (`<root>/<deployment>/attempts/` with a
//! [`Config::deployment`], so a fresh database in the same place never adopts an old attempt):
//!
//! ```text
//! <root>/attempts/<job>.<attempt>/
//!     script.sh       setup then run (LaunchRequest::node_script)
//!     ranks           number of ranks
//!     launched        written once every rank was spawned
//!     cancelled       written by cancel
//!     bad-exit        "<rank> <code>": the rank whose non-zero exit stopped the others
//!     rank-<r>/pid    "<pid> <start time in clock ticks>" of the rank's process group leader
//!     rank-<r>/log    stdout and stderr
//!     rank-<r>/started, rank-<r>/exit   written by the rank's wrapper: epoch seconds; "<code> <epoch>"
//! ```
//!
//! Idempotence: the attempt directory is created with `create_dir`, which fails when it exists, so
//! a second launch of the same attempt id (concurrent, or after a restart) starts nothing. The
//! pid file records the process start time as well, so a reused pid is never mistaken for a rank.
//!
//! A gang ends with its first failing rank, as `srun --kill-on-bad-exit` does: when a rank exits
//! non-zero while others run, the others' process groups get SIGTERM, then SIGKILL after
//! [`Config::kill_grace`], and the attempt exits with the failing rank's code. The launching
//! process notices the exit at once; `observe` notices it too (after a driver restart).

pub mod container;
pub mod host;
pub mod isolation;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
pub use container::{ContainerRuntime, RuntimeChoice};
use cumulo_driver::{
    AttemptId, AttemptState, Capabilities, Capacity, Driver, JobId, LaunchOutcome, LaunchRequest, LogChunk, NodeInfo,
    NodeStatus, Observation, Timestamp,
};
pub use isolation::{Account, JobUser};

/// Errors opening a local driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use local driver state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Driver(#[from] cumulo_driver::Error),
    #[error("{0}")]
    JobUser(String),
}

/// How a local driver is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where attempt directories, scripts and logs go.
    pub root: PathBuf,
    /// The `nvidia-smi` to query for GPUs (looked up on `PATH` when relative).
    pub nvidia_smi: PathBuf,
    /// Time between SIGTERM and SIGKILL when cancelling.
    pub kill_grace: Duration,
    /// The deployment (the store's id) whose attempts this driver keeps, under
    /// `<root>/<deployment>/attempts`: attempt ids restart with every fresh database.
    pub deployment: Option<String>,
    /// Whom jobs run as (see [`isolation`]): each tenant's as its own account `cumulo-job-<tenant>`
    /// unless the operator names one account or allows root.
    pub job_user: JobUser,
    /// Where jobs' working directories go (`<work_root>/<attempt>/rank-<r>`); outside the data
    /// directory. Default: `<temp>/cumulo-jobs/<random id kept in root>/<deployment>`.
    pub work_root: Option<PathBuf>,
    /// Where the server keeps uploads (`<dir>/<sha256 hex>.tar`, see `POST /v1/uploads`); a job's
    /// upload is unpacked into each rank's working directory, as the job's user, before `setup`.
    pub uploads_dir: Option<PathBuf>,
    /// The container runtime that runs jobs with an image ([`container`]); none: such jobs are
    /// kept off this cluster.
    pub container: Option<ContainerRuntime>,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            nvidia_smi: PathBuf::from("nvidia-smi"),
            kill_grace: Duration::from_secs(5),
            deployment: None,
            job_user: JobUser::default(),
            work_root: None,
            uploads_dir: None,
            container: None,
        }
    }
}

/// What [`LocalDriver::job_command`] builds one rank's command from.
#[derive(Clone, Copy)]
struct JobCommand<'a> {
    request: &'a LaunchRequest,
    rank: u32,
    /// The rank's working directory.
    work: &'a Path,
    /// The job's script inside `work`.
    script: &'a Path,
    env: &'a std::collections::BTreeMap<String, String>,
    /// Whom the job runs as; `None`: the server's user.
    account: Option<&'a Account>,
}

/// Runs attempts as local process groups. Cheap to clone.
#[derive(Clone)]
pub struct LocalDriver {
    config: Arc<Config>,
    attempts_dir: PathBuf,
    /// Whom each tenant's jobs run as.
    accounts: Arc<isolation::Accounts>,
    /// Parent of the attempts' working directories.
    work_root: PathBuf,
    /// Attempts whose launch is in progress in this process (directory made, ranks not all spawned).
    launching: Arc<Mutex<HashSet<AttemptId>>>,
}

/// The bash wrapper each rank runs as its process group leader: it records the start time, runs
/// the node script with the log as stdout and stderr, and records the exit code and time.
///
/// Arguments: the job's working directory, the upload to unpack there first (empty for none), the
/// number N of words that switch to the job's user (0 to stay), those N words, then the command
/// that runs the job (the N words and `bash SCRIPT`, or a container runtime's `run`). The upload
/// is unpacked by `tar` running as the job's user, reading the file the wrapper opened. The wrapper is a child subreaper: when the job's shell ends, whatever it
/// left behind (also `setsid`'ed or double-forked processes, re-parented here) is killed before the
/// exit is recorded. A SIGTERM (cancel, or a gang stopping) lets the job end first and then records
/// no exit, as before: the attempt's markers say why it stopped.
const RANK_WRAPPER: &str = r#"trap 'stopped=1' TERM
printf '%s\n' "$EPOCHREALTIME" > started
work=$1; upload=$2; n=$3; shift 3
as_job=("${@:1:$n}"); shift "$n"
( cd "$work" \
    && { [ -z "$upload" ] || "${as_job[@]}" tar -x --no-same-owner -f - < "$upload" \
        || { echo "cumulo: cannot unpack the job's upload (workdir, file_mounts)" >&2; exit 1; }; } \
    && exec "$@" ) < /dev/null
rc=$?
for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    found=
    for stat in /proc/[0-9]*/stat; do
        read -r line 2> /dev/null < "$stat" || continue
        fields=(${line##*) })
        [ "${fields[1]}" = "$$" ] && [ "${fields[0]}" != Z ] || continue
        pid=${stat#/proc/}; pid=${pid%/stat}
        kill -KILL "$pid" 2> /dev/null && found=1
    done
    [ -n "$found" ] || break
    sleep 0.02
done 2> /dev/null
[ -n "$stopped" ] && exit $rc
printf '%s %s\n' "$rc" "$EPOCHREALTIME" > exit.tmp && mv exit.tmp exit
exit $rc"#;

impl LocalDriver {
    /// Opens (creating if needed) the state directory.
    pub fn open(config: Config) -> Result<LocalDriver, Error> {
        let names = cumulo_driver::EngineNames::new(config.deployment.as_deref())?;
        let attempts_dir = match names.deployment() {
            Some(d) => config.root.join(d).join("attempts"),
            None => config.root.join("attempts"),
        };
        fs::create_dir_all(&attempts_dir).map_err(|source| Error::StateDir { path: attempts_dir.clone(), source })?;
        // Logs and scripts of every tenant's jobs live here: the server's user only.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&config.root, fs::Permissions::from_mode(0o700))
                .map_err(|source| Error::StateDir { path: config.root.clone(), source })?;
        }
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let accounts = isolation::resolve(&config.job_user, unsafe { libc::geteuid() }).map_err(Error::JobUser)?;
        let work_root = match &config.work_root {
            Some(root) => root.join(names.deployment().unwrap_or("default")),
            None => default_work_root(&config.root, names.deployment())?,
        };
        Ok(LocalDriver {
            config: Arc::new(config),
            attempts_dir,
            accounts: Arc::new(accounts),
            work_root,
            launching: Arc::default(),
        })
    }

    /// The account `tenant`'s jobs run as (`None`: the server's own user), created when missing.
    pub fn account_for_tenant(&self, tenant: &str) -> Result<Option<Account>, cumulo_driver::Error> {
        self.accounts.for_tenant(tenant).map_err(|reason| {
            cumulo_driver::Error::io(
                format!("setting up the job account of tenant `{tenant}`"),
                std::io::Error::other(reason),
            )
        })
    }

    /// The working directory of one rank.
    pub fn work_dir(&self, attempt: AttemptId, rank: u32) -> PathBuf {
        self.work_root.join(attempt.to_string()).join(format!("rank-{rank}"))
    }

    fn attempt_dir(&self, attempt: AttemptId) -> PathBuf {
        self.attempts_dir.join(attempt.to_string())
    }

    /// The log file of one rank, for callers that tail it directly.
    pub fn log_path(&self, attempt: AttemptId, rank: u32) -> PathBuf {
        self.attempt_dir(attempt).join(format!("rank-{rank}")).join("log")
    }

    /// Attempts this driver has a directory for, e.g. to re-observe after a restart.
    pub fn known_attempts(&self) -> Vec<AttemptId> {
        let Ok(entries) = fs::read_dir(&self.attempts_dir) else { return Vec::new() };
        let mut ids: Vec<AttemptId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (job, n) = name.split_once('.')?;
                Some(AttemptId { job: JobId(job.parse().ok()?), attempt: n.parse().ok()? })
            })
            .collect();
        ids.sort();
        ids
    }

    fn spawn_rank(
        &self,
        request: &LaunchRequest,
        dir: &Path,
        rank: u32,
        account: Option<&Account>,
    ) -> Result<(), cumulo_driver::Error> {
        let rank_dir = dir.join(format!("rank-{rank}"));
        fs::create_dir(&rank_dir)
            .map_err(|e| cumulo_driver::Error::io(format!("creating {}", rank_dir.display()), e))?;
        let log_path = rank_dir.join("log");
        let log = fs::File::create(&log_path)
            .map_err(|e| cumulo_driver::Error::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log.try_clone().map_err(|e| cumulo_driver::Error::io("duplicating the log handle", e))?;
        let work = isolation::make_work_dir(
            &self.work_root.join(request.attempt.to_string()),
            &format!("rank-{rank}"),
            account,
        )
        .map_err(|e| cumulo_driver::Error::io(format!("creating the working directory of rank {rank}"), e))?;
        let script = isolation::write_job_script(&work, &request.node_script(), account)
            .map_err(|e| cumulo_driver::Error::io(format!("writing the script of rank {rank}"), e))?;
        let env = isolation::job_environment(account, &work, request.environment(rank));
        let as_job = isolation::switch_user_prefix(account);
        let job_command =
            self.job_command(&JobCommand { request, rank, work: &work, script: &script, env: &env, account })?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(RANK_WRAPPER)
            .arg("cumulo-rank")
            .arg(&work)
            .arg(self.upload_path(request)?.unwrap_or_default())
            .arg(as_job.len().to_string())
            .args(&as_job)
            .args(job_command)
            .current_dir(&rank_dir)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        // SAFETY: the hook makes one prctl(2) call, which is async-signal-safe.
        unsafe { cmd.pre_exec(isolation::become_subreaper) };
        let mut child = cmd
            .spawn()
            .map_err(|e| cumulo_driver::Error::io(format!("starting rank {rank} of {}", request.attempt), e))?;
        let pid = child.id().unwrap_or(0);
        let ticks = proc_start_ticks(pid).unwrap_or(0);
        write_atomically(&rank_dir.join("pid"), &format!("{pid} {ticks}\n"))?;
        // Reap the child so it never lingers as a zombie; its exit code is in the `exit` file.
        // A failing rank stops the rest of its gang at once.
        let (this, attempt) = (self.clone(), request.attempt);
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await
                && status.code().is_some_and(|code| code != 0)
            {
                this.stop_gang_after_bad_exit(attempt);
            }
        });
        Ok(())
    }

    /// The upload file of the request's job, when it has one; an error when this driver has no
    /// uploads directory or the file is missing (the server lost it).
    fn upload_path(&self, request: &LaunchRequest) -> Result<Option<PathBuf>, cumulo_driver::Error> {
        let Some(upload) = request.job.upload.as_deref() else { return Ok(None) };
        let invalid = |expected: &'static str| cumulo_driver::Error::InvalidRequest {
            attempt: request.attempt,
            field: "job.upload",
            value: upload.to_string(),
            expected,
        };
        let hex = cumulo_types::job::upload_hex(upload).ok_or_else(|| invalid("sha256:<64 hex digits>"))?;
        let dir = self.config.uploads_dir.as_ref().ok_or_else(|| invalid("no upload: this driver keeps none"))?;
        let path = dir.join(format!("{hex}.tar"));
        if !path.is_file() {
            return Err(invalid("an upload this server holds (its file is missing from the data directory)"));
        }
        Ok(Some(path))
    }

    /// What runs the job once its working directory is ready: `bash SCRIPT` as the job's user, or
    /// the container runtime's `run` for a job with an image. Absolute `file_mounts`
    /// destinations need a container: a plain process cannot be given paths outside its
    /// working directory.
    fn job_command(&self, rank_job: &JobCommand<'_>) -> Result<Vec<String>, cumulo_driver::Error> {
        let JobCommand { request, rank, work, script, env, account } = *rank_job;
        let mut binds = Vec::new();
        if request.job.upload.is_some() {
            for (dest, _) in request.job.local_file_mounts() {
                let place = cumulo_types::job::MountPlace::of(dest);
                if let Some(cumulo_types::job::MountPlace::Absolute(inside)) = &place {
                    let copy = place.as_ref().map(|p| p.upload_path()).unwrap_or_default();
                    binds.push((work.join(copy), inside.clone()));
                }
            }
        }
        let Some(image) = request.job.image.as_deref() else {
            if let Some((_, dest)) = binds.first() {
                return Err(cumulo_driver::Error::InvalidRequest {
                    attempt: request.attempt,
                    field: "job.file_mounts",
                    value: dest.clone(),
                    expected: "a destination in the job's working directory (relative, or ~/...): \
                               absolute destinations need a container image on the local driver",
                });
            }
            let mut words = isolation::switch_user_prefix(account);
            words.extend(["bash".to_string(), script.display().to_string()]);
            return Ok(words);
        };
        let Some(runtime) = &self.config.container else {
            return Err(cumulo_driver::Error::Unsupported { driver: "local", what: "a container image (no runtime)" });
        };
        let name = container::container_name(self.config.deployment.as_deref(), request.attempt, rank);
        let gpus = request.nodes.get(rank as usize).map(|n| n.gpus.as_slice()).unwrap_or(&[]);
        Ok(runtime.run_words(&container::RankContainer {
            name: &name,
            image,
            work,
            script,
            account,
            env_names: env.keys().map(String::as_str).collect(),
            gpus,
            binds,
        }))
    }

    /// Removes by force the containers of an attempt's ranks (after a SIGKILL: the runtime's
    /// client died, its container may not have).
    fn remove_containers(&self, attempt: AttemptId, ranks: u32) {
        let Some(runtime) = &self.config.container else { return };
        if !self.attempt_dir(attempt).join("container").exists() {
            return;
        }
        for rank in 0..ranks {
            let words =
                runtime.remove_words(&container::container_name(self.config.deployment.as_deref(), attempt, rank));
            let _ = std::process::Command::new(&words[0])
                .args(&words[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// The first rank (by finish time) that exited non-zero, with its code.
    fn first_bad_exit(dir: &Path, ranks: u32) -> Option<(u32, i32, Timestamp)> {
        (0..ranks)
            .filter_map(|rank| {
                let text = read_trimmed(&dir.join(format!("rank-{rank}")).join("exit"))?;
                let (code, at) = text.split_once(' ')?;
                let code: i32 = code.parse().ok()?;
                (code != 0).then_some((rank, code, parse_epoch(at)?))
            })
            .min_by_key(|(rank, _, at)| (*at, *rank))
    }

    /// After a rank of `attempt` exited non-zero: records which (once) and stops the ranks still
    /// running (SIGTERM, then SIGKILL after the grace). Nothing when the attempt was cancelled.
    fn stop_gang_after_bad_exit(&self, attempt: AttemptId) {
        let dir = self.attempt_dir(attempt);
        if dir.join("cancelled").exists() {
            return;
        }
        let ranks: u32 = read_trimmed(&dir.join("ranks")).and_then(|s| s.parse().ok()).unwrap_or(0);
        let Some((rank, code, _)) = Self::first_bad_exit(&dir, ranks) else { return };
        let marker = dir.join("bad-exit");
        if !marker.exists() && write_atomically(&marker, &format!("{rank} {code}\n")).is_err() {
            tracing::warn!(%attempt, "cannot record the failing rank");
        }
        if self.terminate(attempt) > 0 {
            tracing::info!(%attempt, rank, code, "rank failed: stopping the rest of the gang");
        }
    }

    /// The observation, and whether a failed rank's gang still has ranks to stop.
    fn observe_blocking(&self, attempt: AttemptId, now: Timestamp) -> (Observation, bool) {
        let dir = self.attempt_dir(attempt);
        if !dir.is_dir() {
            return (Observation::unknown(attempt, now), false);
        }
        let in_progress = self.launching.lock().expect("launching set poisoned").contains(&attempt);
        let launched = dir.join("launched").exists();
        let cancelled = dir.join("cancelled").exists();
        let ranks: u32 = read_trimmed(&dir.join("ranks")).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut nodes = Vec::with_capacity(ranks as usize);
        let (mut alive, mut exited, mut vanished) = (0u32, 0u32, None);
        let mut first_failure: Option<i32> = None;
        let mut last_finish: Option<Timestamp> = None;
        let mut last_start: Option<Timestamp> = None;
        for rank in 0..ranks {
            let rank_dir = dir.join(format!("rank-{rank}"));
            let started_at = read_trimmed(&rank_dir.join("started")).and_then(|s| parse_epoch(&s));
            let exit = read_trimmed(&rank_dir.join("exit")).and_then(|s| {
                let (code, at) = s.split_once(' ')?;
                Some((code.parse::<i32>().ok()?, parse_epoch(at)?))
            });
            let mut status = NodeStatus { rank, node: host::hostname(), started_at, ..NodeStatus::default() };
            if let Some((code, at)) = exit {
                exited += 1;
                status.exit_code = Some(code);
                status.finished_at = Some(at);
                last_finish = last_finish.max(Some(at));
                if code != 0 && first_failure.is_none() {
                    first_failure = Some(code);
                }
            } else if pid_file_alive(&rank_dir.join("pid")) {
                alive += 1;
            } else if rank_dir.join("pid").exists() && vanished.is_none() {
                vanished = Some(rank);
            }
            last_start = last_start.max(started_at);
            nodes.push(status);
        }
        let bad_exit: Option<i32> =
            read_trimmed(&dir.join("bad-exit")).and_then(|s| s.split_once(' ').and_then(|(_, code)| code.parse().ok()));
        let stop_gang = launched && !cancelled && alive > 0 && first_failure.is_some();
        let state = if ranks == 0 || (!launched && in_progress) {
            AttemptState::Pending
        } else if let Some(code) = bad_exit {
            // A rank failed and the others are being stopped: the failing rank's code decides.
            if alive == 0 {
                AttemptState::Exited { code, finished_at: last_finish.unwrap_or(now) }
            } else {
                AttemptState::Running { started_at: last_start.unwrap_or(now) }
            }
        } else if exited == ranks {
            AttemptState::Exited { code: first_failure.unwrap_or(0), finished_at: last_finish.unwrap_or(now) }
        } else if alive > 0 && !cancelled && vanished.is_none() {
            match last_start {
                Some(started_at) if nodes.iter().all(|n| n.started_at.is_some()) => {
                    AttemptState::Running { started_at }
                }
                _ => AttemptState::Pending,
            }
        } else if cancelled {
            if alive > 0 {
                AttemptState::Running { started_at: last_start.unwrap_or(now) }
            } else {
                AttemptState::Cancelled
            }
        } else if !launched {
            AttemptState::Lost { reason: "launch was interrupted before every rank started".into() }
        } else if let Some(rank) = vanished {
            AttemptState::Lost { reason: format!("rank {rank} vanished without an exit code") }
        } else {
            AttemptState::Pending
        };
        (Observation { attempt, state, nodes, observed_at: now }, stop_gang)
    }

    /// Signals the process group of every rank whose leader still runs; returns those groups.
    fn signal_attempt(&self, attempt: AttemptId, signal: libc::c_int) -> Vec<libc::pid_t> {
        let dir = self.attempt_dir(attempt);
        let ranks: u32 = read_trimmed(&dir.join("ranks")).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut signalled = Vec::new();
        for rank in 0..ranks {
            if let Some(pid) = live_pid(&dir.join(format!("rank-{rank}")).join("pid")) {
                // The rank's wrapper leads its own process group: signal the whole group.
                // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
                if unsafe { libc::kill(-(pid as libc::pid_t), signal) } == 0 {
                    signalled.push(pid as libc::pid_t);
                }
            }
        }
        signalled
    }

    /// SIGTERM to every running rank's group of `attempt`, SIGKILL to the same groups after the
    /// grace: also to members left behind by a leader that died of the SIGTERM (Linux does not
    /// reuse a group's id while a member lives). Returns how many groups were signalled.
    fn terminate(&self, attempt: AttemptId) -> usize {
        let groups = self.signal_attempt(attempt, libc::SIGTERM);
        let n = groups.len();
        if n > 0 {
            let grace = self.config.kill_grace;
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = tokio::task::spawn_blocking(move || this.kill_groups(attempt, groups)).await;
            });
        }
        n
    }

    /// SIGKILL to `groups` of `attempt` (their descendants first), then its containers removed.
    fn kill_groups(&self, attempt: AttemptId, groups: Vec<libc::pid_t>) {
        for group in groups {
            // Descendants first, while the wrapper (a subreaper) still holds the ones that left
            // the group with setsid.
            isolation::kill_descendants(group);
            // SAFETY: as above; a group already gone answers ESRCH, which is fine.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let ranks: u32 =
            read_trimmed(&self.attempt_dir(attempt).join("ranks")).and_then(|s| s.parse().ok()).unwrap_or(0);
        self.remove_containers(attempt, ranks);
    }
}

#[async_trait]
impl Driver for LocalDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "local".into(),
            simulated: false,
            gangs: true,
            node_selection: false,
            gpu_indices: true,
            logs: true,
            max_nodes_per_attempt: None,
            // a job's image runs under the container runtime the fleet file named (or detected).
            container_images: self.config.container.is_some(),
            // a job's upload is unpacked into each rank's working directory before `setup`.
            uploads: self.config.uploads_dir.is_some(),
        }
    }

    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        let gpus = host::query_nvidia_smi(&self.config.nvidia_smi)
            .await
            .map_err(|reason| cumulo_driver::Error::Protocol { engine: "local", what: "nvidia-smi".into(), reason })?;
        let mut node = NodeInfo {
            name: host::hostname(),
            gpus: gpus.len() as u32,
            vcpus: host::vcpus(),
            memory_mib: host::memory_mib(),
            ..NodeInfo::default()
        };
        if let Some(first) = gpus.first() {
            node.gpu = first.model;
            node.gpu_name = Some(first.name.clone());
            node.labels.insert("gpu-memory-mib".into(), first.memory_mib.to_string());
        }
        node.nvlink_domain = Some(node.name.clone());
        Ok(Capacity { nodes: vec![node], simulated: false })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        request.validate()?;
        let attempt = request.attempt;
        let engine_id = format!("local:{attempt}");
        let dir = self.attempt_dir(attempt);
        // Before the directory: a tenant whose account cannot be made leaves nothing behind, and
        // a later launch of the same attempt tries again.
        let account = self.account_for_tenant(&request.job.tenant)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(LaunchOutcome { engine_id, newly_started: false });
            }
            Err(e) => return Err(cumulo_driver::Error::io(format!("creating {}", dir.display()), e)),
        }
        self.launching.lock().expect("launching set poisoned").insert(attempt);
        let result = (|| {
            write_atomically(&dir.join("script.sh"), &request.node_script())?;
            let json = serde_json::to_string_pretty(request).unwrap_or_default();
            write_atomically(&dir.join("request.json"), &json)?;
            write_atomically(&dir.join("ranks"), &format!("{}\n", request.nodes.len()))?;
            if request.job.image.is_some() {
                write_atomically(&dir.join("container"), "")?;
            }
            for rank in 0..request.nodes.len() as u32 {
                self.spawn_rank(request, &dir, rank, account.as_ref())?;
            }
            write_atomically(&dir.join("launched"), "")
        })();
        self.launching.lock().expect("launching set poisoned").remove(&attempt);
        match result {
            Ok(()) => {
                tracing::info!(%attempt, ranks = request.nodes.len(), "launched local attempt");
                // A rank that failed before the last one was spawned: stop the late ones too.
                self.stop_gang_after_bad_exit(attempt);
                Ok(LaunchOutcome { engine_id, newly_started: true })
            }
            Err(e) => {
                // Ranks already started are stopped; the directory stays, so the id is never reused.
                self.signal_attempt(attempt, libc::SIGKILL);
                Err(e)
            }
        }
    }

    /// The first cancel writes `cancelled` and sends SIGTERM (SIGKILL after the grace). A repeated
    /// cancel (the loop asks on every pass until the attempt ends) signals nothing within the
    /// grace, so a job's TERM handler saving a checkpoint is not interrupted by a second TERM; past
    /// the grace (say after a driver restart lost the timer) it sends SIGKILL at once.
    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        let dir = self.attempt_dir(attempt);
        if !dir.is_dir() {
            return Ok(());
        }
        let marker = dir.join("cancelled");
        let since = fs::metadata(&marker).and_then(|m| m.modified()).ok();
        match since.map(|at| at.elapsed().unwrap_or_default()) {
            None => {
                write_atomically(&marker, "")?;
                self.terminate(attempt);
            }
            Some(waited) if waited >= self.config.kill_grace => {
                let groups = self.signal_attempt(attempt, 0);
                if !groups.is_empty() {
                    let this = self.clone();
                    let _ = tokio::task::spawn_blocking(move || this.kill_groups(attempt, groups)).await;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        let this = self.clone();
        let ids = attempts.to_vec();
        let observed: Vec<(Observation, bool)> = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now();
            ids.iter().map(|a| this.observe_blocking(*a, now)).collect()
        })
        .await
        .map_err(|e| cumulo_driver::Error::io("observing local attempts", std::io::Error::other(e.to_string())))?;
        // A gang whose failing rank's exit the launching process did not see (a restart since).
        for (obs, stop_gang) in &observed {
            if *stop_gang {
                self.stop_gang_after_bad_exit(obs.attempt);
            }
        }
        Ok(observed.into_iter().map(|(obs, _)| obs).collect())
    }

    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        const MAX_CHUNK: u64 = 1 << 20;
        let path = self.log_path(attempt, rank);
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(cumulo_driver::Error::NotFound { attempt, rank });
            }
            Err(e) => return Err(cumulo_driver::Error::io(format!("opening {}", path.display()), e)),
        };
        let len = file.metadata().map_err(|e| cumulo_driver::Error::io("reading log size", e))?.len();
        let start = offset.min(len);
        file.seek(SeekFrom::Start(start)).map_err(|e| cumulo_driver::Error::io("seeking in log", e))?;
        let mut data = Vec::new();
        file.take(MAX_CHUNK).read_to_end(&mut data).map_err(|e| cumulo_driver::Error::io("reading log", e))?;
        let next_offset = start + data.len() as u64;
        let terminal = self.observe_blocking(attempt, chrono::Utc::now()).0.state.is_terminal();
        Ok(LogChunk { data, next_offset, complete: terminal && next_offset >= len })
    }
}

/// `<temp>/cumulo-jobs/<id>/<deployment>`, the id random and kept in `<root>/work-id` so that a
/// restarted driver finds the same place and two drivers never share one.
fn default_work_root(root: &Path, deployment: Option<&str>) -> Result<PathBuf, Error> {
    let file = root.join("work-id");
    let state_err = |source| Error::StateDir { path: file.clone(), source };
    let id = match fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let mut bytes = [0u8; 8];
            fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(state_err)?;
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            fs::write(&file, format!("{id}\n")).map_err(state_err)?;
            id
        }
    };
    Ok(std::env::temp_dir().join("cumulo-jobs").join(id).join(deployment.unwrap_or("default")))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), cumulo_driver::Error> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| cumulo_driver::Error::io(format!("writing {}", path.display()), e))
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Parses bash's `$EPOCHREALTIME` (`1700000000.123456`).
fn parse_epoch(text: &str) -> Option<Timestamp> {
    let (secs, frac) = text.split_once(['.', ',']).unwrap_or((text, "0"));
    let secs: i64 = secs.parse().ok()?;
    let frac = format!("{frac:0<9}");
    let nanos: u32 = frac.get(..9)?.parse().ok()?;
    chrono::DateTime::from_timestamp(secs, nanos)
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), and whether
/// it is a zombie.
fn proc_stat(pid: u32) -> Option<(u64, bool)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((fields.get(19)?.parse().ok()?, zombie))
}

fn proc_start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(ticks, _)| ticks)
}

/// The pid in a pid file when that process is still the one that was started (same start time)
/// and not a zombie.
fn live_pid(pid_file: &Path) -> Option<u32> {
    let text = read_trimmed(pid_file)?;
    let (pid, ticks) = text.split_once(' ')?;
    let (pid, ticks): (u32, u64) = (pid.parse().ok()?, ticks.parse().ok()?);
    let (now_ticks, zombie) = proc_stat(pid)?;
    (pid != 0 && now_ticks == ticks && !zombie).then_some(pid)
}

fn pid_file_alive(pid_file: &Path) -> bool {
    live_pid(pid_file).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_times_parse_with_microseconds() {
        let t = parse_epoch("1700000000.250000").unwrap();
        assert_eq!(t.timestamp(), 1_700_000_000);
        assert_eq!(t.timestamp_subsec_millis(), 250);
        assert_eq!(parse_epoch("1700000000").unwrap().timestamp(), 1_700_000_000);
        assert!(parse_epoch("soon").is_none());
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let pid = std::process::id();
        let ticks = proc_start_ticks(pid).unwrap();
        let file = dir.path().join("pid");
        fs::write(&file, format!("{pid} {ticks}\n")).unwrap();
        assert_eq!(live_pid(&file), Some(pid));
        fs::write(&file, format!("{pid} {}\n", ticks + 1)).unwrap();
        assert_eq!(live_pid(&file), None, "a reused pid must not count as the rank");
    }
}
