//! What both back ends (REST and command line) share: Slurm host lists, job states, wait statuses,
//! GRES strings, and the batch script that runs a Cumulo attempt.

use std::collections::BTreeMap;

use cumulo_driver::{AttemptState, LaunchRequest, Timestamp, shell_quote};

/// A Slurm job as either back end reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmJob {
    pub job_id: u64,
    pub name: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `NODE_FAIL`...
    pub state: String,
    /// The batch script's exit code, when the job ended with one.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub nodes: Vec<String>,
    pub reason: String,
    /// How often Slurm requeued the job by itself (node failure with `JobRequeue`).
    pub restarts: u32,
}

/// Expands a Slurm host list such as `node[001-003,007],gpu1` into names, keeping zero padding.
pub fn expand_hostlist(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let bytes = list.as_bytes();
    let mut parts = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty() && *p != "(null)") {
        match (part.find('['), part.rfind(']')) {
            (Some(open), Some(close)) if close > open => {
                let (prefix, suffix) = (&part[..open], &part[close + 1..]);
                for range in part[open + 1..close].split(',') {
                    match range.split_once('-') {
                        Some((lo, hi)) => {
                            let width = lo.len();
                            if let (Ok(lo), Ok(hi)) = (lo.parse::<u64>(), hi.parse::<u64>()) {
                                for n in lo..=hi {
                                    out.push(format!("{prefix}{n:0width$}{suffix}"));
                                }
                            }
                        }
                        None => out.push(format!("{prefix}{range}{suffix}")),
                    }
                }
            }
            _ => out.push(part.to_string()),
        }
    }
    out
}

/// Splits a wait status as slurmctld stores it (`exit_code` 768 = exit 3, 15 = signal 15).
pub fn split_wait_status(status: i64) -> (Option<i32>, Option<i32>) {
    let signal = (status & 0x7f) as i32;
    if signal != 0 { (None, Some(signal)) } else { (Some(((status >> 8) & 0xff) as i32), None) }
}

/// Maps a Slurm job to Cumulo's attempt state.
pub fn attempt_state(job: &SlurmJob, now: Timestamp) -> AttemptState {
    let reason = || {
        if job.reason.is_empty() || job.reason == "None" {
            job.state.to_lowercase()
        } else {
            format!("{} ({})", job.state.to_lowercase(), job.reason)
        }
    };
    // Cumulo asks for no requeue, but slurmrestd 22.05 ignores `requeue: false` and clusters
    // default to JobRequeue=1: a job Slurm requeued after a failure lost its work, and Cumulo
    // re-places it itself (the control loop cancels the requeued job).
    if job.restarts > 0 && !job.state.starts_with("COMPLETED") && job.state != "CANCELLED" {
        return AttemptState::Lost {
            reason: format!("slurm job {} requeued by slurm after a failure ({})", job.job_id, reason()),
        };
    }
    match job.state.as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED" => {
            AttemptState::Pending
        }
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            AttemptState::Running { started_at: job.start.unwrap_or(now) }
        }
        "COMPLETED" => AttemptState::Exited { code: 0, finished_at: job.end.unwrap_or(now) },
        "FAILED" => match (job.exit_code, job.signal) {
            (Some(code), _) if code != 0 => AttemptState::Exited { code, finished_at: job.end.unwrap_or(now) },
            (_, Some(sig)) => AttemptState::Exited { code: 128 + sig, finished_at: job.end.unwrap_or(now) },
            _ => AttemptState::Failed { reason: format!("slurm job {} {}", job.job_id, reason()) },
        },
        "CANCELLED" => AttemptState::Cancelled,
        "NODE_FAIL" => AttemptState::Lost { reason: format!("slurm job {} lost its nodes (node_fail)", job.job_id) },
        "PREEMPTED" => AttemptState::Lost { reason: format!("slurm job {} preempted by slurm", job.job_id) },
        "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" | "TIMEOUT" | "SPECIAL_EXIT" | "REVOKED" => {
            AttemptState::Failed { reason: format!("slurm job {} {}", job.job_id, reason()) }
        }
        other => AttemptState::Failed { reason: format!("slurm job {} in unexpected state {other}", job.job_id) },
    }
}

/// GPUs in a GRES string such as `gpu:h100:8(S:0-1),shard:4` or `gpu:8`: (type, count).
pub fn parse_gpu_gres(gres: &str) -> Option<(Option<String>, u32)> {
    for item in gres.split(',') {
        let item = item.split('(').next().unwrap_or(item).trim();
        let fields: Vec<&str> = item.split(':').collect();
        match fields.as_slice() {
            ["gpu", count] => return Some((None, count.parse().ok()?)),
            ["gpu", kind, count] => return Some((Some(kind.to_string()), count.parse().ok()?)),
            _ => {}
        }
    }
    None
}

/// How Cumulo's node choice reaches Slurm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// The engine picks the nodes.
    None,
    /// `--nodelist` (command line; slurmrestd 22.05 refuses `required_nodes`).
    NodeList,
    /// A constraint `[nodeA*1&nodeB*1]` on per-node features named after the nodes (REST).
    Features,
}

/// The nodes among `nodes` that lack a feature equal to their name (`self_named` lists those that
/// have one): feature pinning works only when this is empty.
pub fn nodes_without_own_feature(nodes: &[String], self_named: &std::collections::HashSet<String>) -> Vec<String> {
    nodes.iter().filter(|n| !self_named.contains(*n)).cloned().collect()
}

/// The constraint that pins a job to exactly `nodes`, each carrying a feature equal to its name.
pub fn pin_constraint(nodes: &[String]) -> String {
    match nodes {
        [one] => one.clone(),
        many => format!("[{}]", many.iter().map(|n| format!("{n}*1")).collect::<Vec<_>>().join("&")),
    }
}

/// pyxis's flags for a job with a container image (SkyPilot's `image_id: docker:IMAGE`): the
/// step runs in the image (`--container-image`, enroot's `REGISTRY#IMAGE` form) with the log
/// directory mounted at the same path, so the node's output still lands there. Empty without an
/// image.
fn container_flags(request: &LaunchRequest, attempt_log_dir: Option<&str>) -> String {
    let Some(image) = request.job.image.as_deref() else { return String::new() };
    let mut flags = format!(" --container-image={}", shell_quote(&pyxis_image(image)));
    if let Some(dir) = attempt_log_dir {
        let parent = std::path::Path::new(dir).parent().map(|p| p.display().to_string()).unwrap_or_default();
        let shared = if parent.is_empty() { dir.to_string() } else { parent };
        flags.push_str(&format!(" --container-mounts={}", shell_quote(&format!("{shared}:{shared}"))));
    }
    flags
}

/// A Docker image reference in enroot's form: a registry host (the first component when it holds
/// a `.` or `:`, or is `localhost`) is separated by `#` (`nvcr.io/nvidia/pytorch:24.01` →
/// `nvcr.io#nvidia/pytorch:24.01`); a Docker Hub name stays as it is.
pub fn pyxis_image(image: &str) -> String {
    match image.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            format!("{host}#{rest}")
        }
        _ => image.to_string(),
    }
}

/// The batch script for an attempt: it starts one task per node with `srun`, gives each node
/// Cumulo's rank for it (by node name when Cumulo chose the nodes, else Slurm's node id), sends
/// each node's output to `<attempt_log_dir>/rank-<r>.log`, and runs the node script from an
/// environment variable so no shared file system is needed for it. A gang ends with its first
/// failing rank (`srun --kill-on-bad-exit`), as on the local driver. With a log directory each
/// failing rank records its code (`rank-<r>.exit`), so the job exits with the first failure's
/// code rather than srun's highest (the 143 of a rank it stopped), and the batch step records
/// `<code> <epoch seconds>` in `<attempt_log_dir>/exit` when it ends by itself, so the outcome
/// outlives Slurm's memory of the job (`MinJobAge`).
pub fn batch_script(request: &LaunchRequest, attempt_log_dir: Option<&str>, pinned: bool) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("export CUMULO_NODE_SCRIPT={}\n", shell_quote(&request.node_script())));
    let mut rank_of = String::from("case \"$SLURMD_NODENAME\" in\n");
    if pinned {
        for (rank, node) in request.nodes.iter().enumerate() {
            rank_of.push_str(&format!("  {}) export CUMULO_NODE_RANK={rank} ;;\n", shell_quote(&node.node)));
        }
    }
    rank_of.push_str("  *) export CUMULO_NODE_RANK=$SLURM_NODEID ;;\nesac\n");
    let mut task = rank_of;
    if let Some(dir) = attempt_log_dir {
        task.push_str(&format!("mkdir -p {d}\nexec > {d}/rank-$CUMULO_NODE_RANK.log 2>&1\n", d = shell_quote(dir)));
    }
    match attempt_log_dir {
        Some(dir) => {
            task.push_str(&format!(
                "bash -c \"$CUMULO_NODE_SCRIPT\"\nrc=$?\nif [ $rc -ne 0 ]; then printf '%s %s\\n' \"$rc\" \"$EPOCHREALTIME\" > {}/rank-$CUMULO_NODE_RANK.exit; fi\nexit $rc\n",
                shell_quote(dir)
            ));
            s.push_str(&format!("mkdir -p {}\n", shell_quote(dir)));
        }
        None => task.push_str("exec bash -c \"$CUMULO_NODE_SCRIPT\"\n"),
    }
    if request.nodes.len() == 1 && request.job.image.is_none() {
        // One node: the batch step is the node; no srun step to create (faster, and no step
        // creation that can stall under a burst of submissions).
        s.push_str(&format!("bash -c {}\n", shell_quote(&task)));
    } else {
        // --overlap: a step whose creation timed out and was retried cannot hold the
        // allocation against its own retry ("Requested nodes are busy").
        s.push_str(&format!(
            "srun --overlap --nodes={n} --ntasks={n} --ntasks-per-node=1 --kill-on-bad-exit=1{container} bash -c {}\n",
            shell_quote(&task),
            n = request.nodes.len(),
            container = container_flags(request, attempt_log_dir),
        ));
    }
    if let Some(dir) = attempt_log_dir {
        s.push_str("rc=$?\n");
        if request.nodes.len() > 1 {
            s.push_str(&format!(
                "first=$(cat {}/rank-*.exit 2>/dev/null | sort -k2,2g | head -n1 | cut -d' ' -f1)\nif [ -n \"$first\" ]; then rc=$first; fi\n",
                shell_quote(dir)
            ));
        }
        s.push_str(&format!(
            "printf '%s %s\\n' \"$rc\" \"$(date +%s)\" > {d}/exit.tmp && mv {d}/exit.tmp {d}/exit\nexit $rc\n",
            d = shell_quote(dir)
        ));
    }
    s
}

/// Reads an `exit` file written by [`batch_script`]: the code and when the job ended.
pub fn parse_exit_file(text: &str) -> Option<(i32, Timestamp)> {
    let (code, at) = text.trim().split_once(' ')?;
    Some((code.parse().ok()?, chrono::DateTime::from_timestamp(at.parse().ok()?, 0)?))
}

/// The environment a job is submitted with: the attempt's (rank 0) environment without the
/// per-node variables, which the batch script and Slurm set on each node.
pub fn submit_environment(request: &LaunchRequest) -> BTreeMap<String, String> {
    let mut env = request.environment(0);
    env.remove(cumulo_driver::ENV_NODE_RANK);
    env.remove(cumulo_driver::ENV_CUDA_VISIBLE_DEVICES);
    env.entry("PATH".into()).or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    env
}

/// GPUs per node the job asks for: the most any assignment lists, or the job's demand.
pub fn gpus_per_node(request: &LaunchRequest) -> u32 {
    let assigned = request.nodes.iter().map(|n| n.gpus.len() as u32).max().unwrap_or(0);
    let demanded = request
        .job
        .resources
        .first()
        .and_then(|r| r.accelerators.as_ref())
        .map(|a| a.per_node.whole_gpus_ceil())
        .unwrap_or(0);
    assigned.max(demanded)
}

/// CPUs per node the job asks for (at least one).
pub fn cpus_per_node(request: &LaunchRequest) -> u32 {
    request.job.resources.first().map(|r| r.cpus_milli.div_ceil(1000)).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cumulo_driver::{AttemptId, JobId, JobSpec, NodeAssignment};

    #[test]
    fn hostlists_expand_with_padding() {
        assert_eq!(expand_hostlist("node[003,005]"), ["node003", "node005"]);
        assert_eq!(expand_hostlist("node[008-010],gpu1"), ["node008", "node009", "node010", "gpu1"]);
        assert_eq!(expand_hostlist("a[1-2]b,c"), ["a1b", "a2b", "c"]);
        assert!(expand_hostlist("").is_empty());
        assert!(expand_hostlist("(null)").is_empty());
    }

    #[test]
    fn wait_statuses_split_into_code_or_signal() {
        assert_eq!(split_wait_status(768), (Some(3), None));
        assert_eq!(split_wait_status(0), (Some(0), None));
        assert_eq!(split_wait_status(15), (None, Some(15)));
    }

    fn job(state: &str, exit: Option<i32>, signal: Option<i32>) -> SlurmJob {
        SlurmJob {
            job_id: 9,
            name: "cumulo-1.1".into(),
            state: state.into(),
            exit_code: exit,
            signal,
            start: None,
            end: None,
            nodes: vec![],
            reason: "None".into(),
            restarts: 0,
        }
    }

    #[test]
    fn slurm_states_map_to_attempt_states() {
        let now = chrono::DateTime::from_timestamp(1_000, 0).unwrap();
        let check = |j: SlurmJob, expect: &str| assert_eq!(attempt_state(&j, now).to_string(), expect);
        check(job("PENDING", None, None), "pending");
        check(job("RUNNING", None, None), "running");
        check(job("COMPLETED", Some(0), None), "exited 0");
        check(job("FAILED", Some(3), None), "exited 3");
        check(job("FAILED", None, Some(9)), "exited 137");
        check(job("FAILED", Some(0), None), "failed: slurm job 9 failed");
        check(job("CANCELLED", None, Some(15)), "cancelled");
        check(job("NODE_FAIL", None, None), "lost: slurm job 9 lost its nodes (node_fail)");
        check(job("OUT_OF_MEMORY", None, None), "failed: slurm job 9 out_of_memory");
        check(job("WEIRD", None, None), "failed: slurm job 9 in unexpected state WEIRD");
        let requeued = SlurmJob { restarts: 1, reason: "BeginTime".into(), ..job("PENDING", None, None) };
        check(requeued, "lost: slurm job 9 requeued by slurm after a failure (pending (BeginTime))");
    }

    #[test]
    fn gpu_gres_strings() {
        assert_eq!(parse_gpu_gres("gpu:h100:8"), Some((Some("h100".into()), 8)));
        assert_eq!(parse_gpu_gres("gpu:h100:8(S:0-1)"), Some((Some("h100".into()), 8)));
        assert_eq!(parse_gpu_gres("shard:4,gpu:2"), Some((None, 2)));
        assert_eq!(parse_gpu_gres("(null)"), None);
    }

    #[test]
    fn feature_pinning_needs_every_node_to_carry_its_own_name() {
        let self_named: std::collections::HashSet<String> = ["node001".to_string()].into();
        assert!(nodes_without_own_feature(&["node001".into()], &self_named).is_empty());
        assert_eq!(nodes_without_own_feature(&["node001".into(), "gpu7".into()], &self_named), ["gpu7"]);
    }

    #[test]
    fn pin_constraints() {
        assert_eq!(pin_constraint(&["node001".into()]), "node001");
        assert_eq!(pin_constraint(&["node001".into(), "node007".into()]), "[node001*1&node007*1]");
    }

    #[test]
    fn batch_script_maps_cumulo_ranks_by_node_name() {
        let mut job = JobSpec::new("t", "x");
        job.num_nodes = 2;
        job.run = Some("echo it's $CUMULO_NODE_RANK".into());
        let mut req = LaunchRequest::new(AttemptId { job: JobId(4), attempt: 1 }, job);
        req.nodes = vec![NodeAssignment::new("node009", []), NodeAssignment::new("node002", [])];
        let script = batch_script(&req, Some("/logs/4.1"), true);
        assert!(
            script.contains("srun --overlap --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1"),
            "{script}"
        );
        assert!(
            script.ends_with("> '/logs/4.1'/exit.tmp && mv '/logs/4.1'/exit.tmp '/logs/4.1'/exit\nexit $rc\n"),
            "{script}"
        );
        assert_eq!(
            parse_exit_file("3 1700000000\n"),
            Some((3, chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()))
        );
        assert_eq!(parse_exit_file("3"), None);
        assert!(script.contains("node009'\\'') export CUMULO_NODE_RANK=0"), "{script}");
        assert!(
            script.contains("mkdir -p '\\''/logs/4.1'\\''\nexec > '\\''/logs/4.1'\\''/rank-$CUMULO_NODE_RANK.log"),
            "{script}"
        );
        let env = submit_environment(&req);
        assert!(!env.contains_key("CUMULO_NODE_RANK") && env.contains_key("PATH"));
        assert_eq!(env["CUMULO_NUM_NODES"], "2");
    }

    #[test]
    fn a_container_image_runs_the_step_under_pyxis() {
        let mut job = JobSpec::new("t", "default");
        job.run = Some("nvidia-smi".into());
        job.image = Some("nvcr.io/nvidia/pytorch:24.01-py3".into());
        let req = LaunchRequest::new(AttemptId { job: JobId(4), attempt: 1 }, job);
        let script = batch_script(&req, Some("/shared/logs/4.1"), true);
        assert!(
            script.contains(
                "srun --overlap --nodes=1 --ntasks=1 --ntasks-per-node=1 --kill-on-bad-exit=1 --container-image='nvcr.io#nvidia/pytorch:24.01-py3' --container-mounts='/shared/logs:/shared/logs' bash -c"
            ),
            "one node with an image still goes through an srun step, in the image: {script}"
        );
        assert_eq!(pyxis_image("ubuntu:22.04"), "ubuntu:22.04", "a Docker Hub name is kept");
        assert_eq!(pyxis_image("localhost:5000/my/img"), "localhost:5000#my/img");
        let plain = batch_script(&LaunchRequest::new(req.attempt, JobSpec::new("t", "d")), None, true);
        assert!(!plain.contains("container"), "no image, no pyxis flags: {plain}");
    }

    #[test]
    fn secrets_travel_in_the_submitted_environment_not_in_the_script() {
        let mut job = JobSpec::new("t", "default");
        job.run = Some("echo run".into());
        let mut req = LaunchRequest::new(AttemptId { job: JobId(4), attempt: 1 }, job);
        req.secrets.0.insert("HF_TOKEN".into(), "hf_value_123".into());
        assert_eq!(submit_environment(&req)["HF_TOKEN"], "hf_value_123", "the job's environment carries it");
        let script = batch_script(&req, Some("/logs/4.1"), true);
        assert!(!script.contains("hf_value_123"), "the batch script (visible to scontrol) holds no secret: {script}");
    }
}
