//! End-to-end tests of the local driver: real bash process groups on this machine.

use std::time::Duration;

use cumulo_driver::conformance::{Behaviour, Suite};
use cumulo_driver::{AttemptId, AttemptState, Driver, JobId, JobSpec, LaunchRequest, NodeAssignment};
use cumulo_driver_local::{Config, JobUser, LocalDriver};

fn attempt(job: u64, n: u32) -> AttemptId {
    AttemptId { job: JobId(job), attempt: n }
}

fn request(a: AttemptId, nodes: u32, run: &str) -> LaunchRequest {
    let mut job = JobSpec::new("t", "test");
    job.num_nodes = nodes;
    job.run = Some(run.to_string());
    LaunchRequest::new(a, job)
}

/// Jobs run as this process's user (root here, allowed explicitly), so tests can hand them
/// directories; [`job_user_driver`] runs each tenant's jobs as its own unprivileged account.
fn driver(dir: &tempfile::TempDir) -> LocalDriver {
    let mut config = Config::new(dir.path());
    config.kill_grace = Duration::from_millis(500);
    config.job_user = JobUser::Server;
    LocalDriver::open(config).unwrap()
}

async fn wait_terminal(driver: &LocalDriver, a: AttemptId) -> cumulo_driver::Observation {
    for _ in 0..400 {
        let obs = driver.observe(&[a]).await.unwrap().remove(0);
        if obs.state.is_terminal() {
            return obs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("attempt {a} did not finish in 10 s");
}

async fn log_text(driver: &LocalDriver, a: AttemptId, rank: u32) -> String {
    String::from_utf8(driver.logs(a, rank, 0).await.unwrap().data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_driver_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let make = |a: AttemptId, nodes: u32, b: Behaviour| {
        let run = match b {
            Behaviour::Succeeds => "echo ok".to_string(),
            Behaviour::Fails(code) => format!("echo failing >&2; exit {code}"),
            Behaviour::RunsLong => "sleep 300".to_string(),
        };
        request(a, nodes, &run)
    };
    let suite = Suite {
        driver: &driver,
        request: &make,
        first_job: 1000,
        timeout: Duration::from_secs(10),
        poll: Duration::from_millis(20),
        tick: None,
    };
    suite.run_all().await.unwrap();
}

#[tokio::test]
async fn every_rank_sees_its_environment_and_the_jobs_envs() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(42, 3);
    let mut req = request(
        a,
        2,
        "echo \"$CUMULO_JOB_ID $CUMULO_ATTEMPT $CUMULO_NODE_RANK/$CUMULO_NUM_NODES $CUMULO_CHECKPOINT_DIR [$CUDA_VISIBLE_DEVICES] $LR\"",
    );
    req.nodes = vec![NodeAssignment::new("a", [0, 1]), NodeAssignment::new("b", [2, 3])];
    req.checkpoint_dir = Some("/ckpt/x".into());
    req.job.envs.insert("LR".into(), "3e-4".into());
    driver.launch(&req).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert!(obs.state.is_success(), "{}", obs.state);
    assert_eq!(log_text(&driver, a, 0).await, "42 3 0/2 /ckpt/x [0,1] 3e-4\n");
    assert_eq!(log_text(&driver, a, 1).await, "42 3 1/2 /ckpt/x [2,3] 3e-4\n");
    assert_eq!(obs.nodes.len(), 2);
    assert!(obs.nodes.iter().all(|n| n.started_at.is_some() && n.finished_at.is_some() && n.exit_code == Some(0)));
}

#[tokio::test]
async fn setup_runs_before_run_and_its_failure_ends_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let ok = attempt(1, 1);
    let mut req = request(ok, 1, "cat marker");
    req.job.setup = Some("echo from-setup > marker".into());
    driver.launch(&req).await.unwrap();
    assert!(wait_terminal(&driver, ok).await.state.is_success());
    assert_eq!(log_text(&driver, ok, 0).await, "from-setup\n");

    let bad = attempt(2, 1);
    let mut req = request(bad, 1, "echo never-runs");
    req.job.setup = Some("exit 7".into());
    driver.launch(&req).await.unwrap();
    let obs = wait_terminal(&driver, bad).await;
    assert!(matches!(obs.state, AttemptState::Exited { code: 7, .. }), "{}", obs.state);
    assert_eq!(log_text(&driver, bad, 0).await, "cumulo: setup failed with exit code 7\n");
}

#[tokio::test]
async fn a_gang_exits_with_the_first_failing_ranks_code() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(5, 1);
    // Rank 0 succeeds at once, rank 1 fails after 1 s, rank 2 would fail after 2 s but is stopped.
    driver.launch(&request(a, 3, "sleep $CUMULO_NODE_RANK; exit $((CUMULO_NODE_RANK * 2))")).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert!(matches!(obs.state, AttemptState::Exited { code: 2, .. }), "{}", obs.state);
    let codes: Vec<Option<i32>> = obs.nodes.iter().map(|n| n.exit_code).collect();
    assert_eq!(codes, [Some(0), Some(2), None]);
}

#[tokio::test]
async fn a_restarted_driver_neither_relaunches_nor_forgets_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let a = attempt(9, 1);
    let req = request(a, 1, "echo run >> $CUMULO_CHECKPOINT_DIR/runs; sleep 0.3");
    let ckpt = tempfile::tempdir().unwrap();
    let mut req = req;
    req.checkpoint_dir = Some(ckpt.path().display().to_string());
    assert!(driver(&dir).launch(&req).await.unwrap().newly_started);
    // A new driver over the same state directory, as after a crash of the control plane.
    let second = driver(&dir);
    assert!(!second.launch(&req).await.unwrap().newly_started);
    assert_eq!(second.known_attempts(), vec![a]);
    assert!(wait_terminal(&second, a).await.state.is_success());
    assert_eq!(std::fs::read_to_string(ckpt.path().join("runs")).unwrap(), "run\n", "the attempt ran exactly once");
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(11, 1);
    // A background grandchild that would outlive a kill of the rank's shell alone.
    driver.launch(&request(a, 1, "sleep 300 & echo $! > child.pid; wait")).await.unwrap();
    let child_pid_file = driver.work_dir(a, 0).join("child.pid");
    let mut child_pid = None;
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&child_pid_file)
            && text.ends_with('\n')
        {
            child_pid = Some(text.trim().parse::<u32>().unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let child_pid = child_pid.expect("grandchild started");
    assert!(std::path::Path::new(&format!("/proc/{child_pid}")).exists());
    driver.cancel(a).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert_eq!(obs.state, AttemptState::Cancelled);
    // The grandchild is gone too (or a zombie about to be reaped by init).
    let mut gone = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{child_pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "grandchild {child_pid} survived cancel");
}

#[tokio::test]
async fn a_rank_killed_from_outside_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(12, 1);
    driver.launch(&request(a, 1, "sleep 300")).await.unwrap();
    let pid_file = dir.path().join("attempts/12.1/rank-0/pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().split(' ').next().unwrap().parse().unwrap();
    // Simulates a node failure: the whole group dies without the wrapper writing an exit code.
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status().unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert_eq!(obs.state, AttemptState::Lost { reason: "rank 0 vanished without an exit code".into() });
}

#[tokio::test]
async fn logs_stream_from_an_offset_until_complete() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(13, 1);
    driver.launch(&request(a, 1, "echo one; sleep 0.3; echo two")).await.unwrap();
    let mut text = Vec::new();
    let mut offset = 0;
    for _ in 0..400 {
        let chunk = driver.logs(a, 0, offset).await.unwrap();
        text.extend_from_slice(&chunk.data);
        offset = chunk.next_offset;
        if chunk.complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(String::from_utf8(text).unwrap(), "one\ntwo\n");
    let err = driver.logs(a, 5, 0).await.unwrap_err();
    assert_eq!(err.to_string(), "attempt 13.1 rank 5 not found");
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(14, 1);
    let mut req = request(a, 2, "true");
    req.nodes.pop();
    let err = driver.launch(&req).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid launch request for attempt 14.1: nodes `1 assignments`: expected one assignment per node of the gang (job.num_nodes)"
    );
    assert_eq!(driver.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown);
}

#[tokio::test]
async fn discover_reports_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    // A fake nvidia-smi printing a captured sample, to exercise the GPU path on a machine without GPUs.
    let fake = dir.path().join("nvidia-smi");
    std::fs::write(
        &fake,
        "#!/bin/sh\nprintf '0, NVIDIA H100 80GB HBM3, 81559, GPU-a\\n1, NVIDIA H100 80GB HBM3, 81559, GPU-b\\n'\n",
    )
    .unwrap();
    std::process::Command::new("chmod").args(["+x", fake.to_str().unwrap()]).status().unwrap();
    config.nvidia_smi = fake;
    let capacity = LocalDriver::open(config).unwrap().discover().await.unwrap();
    let node = &capacity.nodes[0];
    assert_eq!(node.gpus, 2);
    assert_eq!(node.gpu, Some(cumulo_driver::GpuModel::H100));
    assert_eq!(node.vcpus as usize, std::thread::available_parallelism().unwrap().get());
    assert!(node.memory_mib > 0);

    let mut config = Config::new(dir.path());
    config.nvidia_smi = dir.path().join("no-such-nvidia-smi");
    let capacity = LocalDriver::open(config).unwrap().discover().await.unwrap();
    assert_eq!(capacity.nodes[0].gpus, 0, "no nvidia-smi means no GPUs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_sharing_a_root_never_see_each_others_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let open = |d: Option<&str>| {
        let mut config = Config::new(dir.path());
        config.deployment = d.map(str::to_string);
        config.job_user = JobUser::Server;
        LocalDriver::open(config).unwrap()
    };
    let (one, two, bare) = (open(Some("0a1b2c3d")), open(Some("0a1b2c3e")), open(None));
    let a = attempt(1, 1);
    assert!(one.launch(&request(a, 1, "echo one")).await.unwrap().newly_started);
    assert_eq!(two.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown);
    assert_eq!(bare.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown);
    assert!(two.launch(&request(a, 1, "echo two")).await.unwrap().newly_started, "two adopted one's attempt");
    assert!(bare.launch(&request(a, 1, "echo bare")).await.unwrap().newly_started, "bare adopted one's attempt");
    for (driver, text) in [(&one, "one\n"), (&two, "two\n"), (&bare, "bare\n")] {
        assert!(wait_terminal(driver, a).await.state.is_success());
        assert_eq!(log_text(driver, a, 0).await, text);
        assert_eq!(driver.known_attempts(), [a]);
    }
    let err = LocalDriver::open(Config { deployment: Some("x y".into()), ..Config::new(dir.path()) }).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid driver setting deployment `x y`: expected 1 to 32 lowercase letters and digits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rank_stops_the_rest_of_its_gang() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(7, 1);
    let start = std::time::Instant::now();
    let run = "if [ \"$CUMULO_NODE_RANK\" = 1 ]; then sleep 0.5; echo bad >&2; exit 3; fi; echo waiting; sleep 600";
    assert!(driver.launch(&request(a, 2, run)).await.unwrap().newly_started);
    let obs = wait_terminal(&driver, a).await;
    let took = start.elapsed();
    assert!(matches!(obs.state, AttemptState::Exited { code: 3, .. }), "{}", obs.state);
    assert!(took < Duration::from_secs(5), "the gang took {took:?} to stop");
    assert_eq!(obs.nodes[1].exit_code, Some(3));
    assert_eq!(obs.nodes[0].exit_code, None, "rank 0 was stopped, it did not exit by itself");
    let pid_file = dir.path().join("attempts").join(a.to_string()).join("rank-0").join("pid");
    let pgid = std::fs::read_to_string(&pid_file).unwrap().split(' ').next().unwrap().to_string();
    // The group's last members die of the SIGTERM just after its leader.
    let group_gone = || {
        let ps = std::process::Command::new("ps").args(["-o", "pid=,stat=,args=", "-g", &pgid]).output().unwrap();
        let left = String::from_utf8_lossy(&ps.stdout).to_string();
        left.lines()
            .all(|l| l.split_whitespace().nth(1).is_some_and(|stat| stat.starts_with('Z')))
            .then_some(())
            .ok_or(left)
    };
    let t = std::time::Instant::now();
    while let Err(left) = group_gone() {
        assert!(t.elapsed() < Duration::from_secs(2), "rank 0's process group {pgid} still has {left}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log_text(&driver, a, 1).await, "bad\n");
    println!("gang of 2: rank 1 exited 3, attempt exited 3 after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_stops_the_gang_of_a_rank_that_failed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let a = attempt(8, 1);
    let run = "if [ \"$CUMULO_NODE_RANK\" = 1 ]; then sleep 1; exit 5; fi; sleep 600";
    // Launched from another runtime that is gone before rank 1 fails: nobody waits on the ranks.
    std::thread::spawn({
        let driver = driver(&dir);
        move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async { driver.launch(&request(a, 2, run)).await.unwrap() });
        }
    })
    .join()
    .unwrap();
    let restarted = driver(&dir);
    let obs = wait_terminal(&restarted, a).await;
    assert!(matches!(obs.state, AttemptState::Exited { code: 5, .. }), "{}", obs.state);
}

/// Each tenant's jobs run as its own unprivileged account, `cumulo-job-<tenant>` (created when
/// missing), in the shared group `cumulo-job`; `None` when this process is not root and cannot
/// switch users.
fn job_user_driver(root: &std::path::Path) -> Option<LocalDriver> {
    job_user_driver_as(root, JobUser::PerTenant)
}

fn job_user_driver_as(root: &std::path::Path, user: JobUser) -> Option<LocalDriver> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: not root, so jobs cannot run as another user; the job-user cases did not run");
        return None;
    }
    let mut config = Config::new(root);
    config.kill_grace = Duration::from_millis(500);
    config.job_user = user;
    let driver = LocalDriver::open(config).unwrap();
    let account = driver.account_for_tenant("test").unwrap().expect("an account, not the server's user");
    assert_ne!(account.uid, 0);
    Some(driver)
}

/// The gid of the group every tenant's account is in.
fn shared_gid() -> u32 {
    let out = std::process::Command::new("getent").args(["group", "cumulo-job"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split(':').nth(2).unwrap().parse().unwrap()
}

fn request_of(tenant: &str, a: AttemptId, run: &str) -> LaunchRequest {
    let mut req = request(a, 1, run);
    req.job.tenant = tenant.to_string();
    req
}

/// The first `lines` lines of a rank's log, waiting for them (the job prints, then sleeps).
async fn first_lines(driver: &LocalDriver, a: AttemptId, lines: usize) -> Vec<String> {
    for _ in 0..400 {
        let text = log_text(driver, a, 0).await;
        if text.matches('\n').count() >= lines {
            return text.lines().map(str::to_string).collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("attempt {a} printed `{}`, not {lines} lines", log_text(driver, a, 0).await);
}

/// A directory anyone may make entries in, as `/tmp` (sticky, mode 1777).
fn sticky_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

#[test]
fn each_tenant_has_its_own_account_in_the_shared_group() {
    let dir = tempfile::tempdir().unwrap();
    let Some(driver) = job_user_driver(dir.path()) else { return };
    let a = driver.account_for_tenant("iso-a").unwrap().unwrap();
    let b = driver.account_for_tenant("iso-b").unwrap().unwrap();
    assert_eq!((a.name.as_str(), b.name.as_str()), ("cumulo-job-iso-a", "cumulo-job-iso-b"));
    assert_ne!(a.uid, b.uid);
    assert_ne!(a.gid, b.gid, "each account has its own primary group");
    assert_eq!((a.groups.clone(), b.groups.clone()), (vec![shared_gid()], vec![shared_gid()]));
    // A name that is no user name gets its hashed form, which useradd takes (32 characters).
    let odd = driver.account_for_tenant("Research Lab (EU)").unwrap().unwrap();
    assert!(odd.name.starts_with("cumulo-job-research-") && odd.name.len() == 32, "{}", odd.name);
    assert!(![a.uid, b.uid].contains(&odd.uid));
    // A restarted driver finds the same accounts (the mapping lives in /etc/passwd).
    let again = job_user_driver(dir.path()).unwrap();
    assert_eq!(again.account_for_tenant("iso-a").unwrap(), Some(a));
}

/// Tenant B's job holds a secret in its environment and a mode-700 checkpoint; tenant A's job,
/// given B's pid, tries to read B's `/proc/<pid>/environ`, signal it and read the checkpoint, and
/// cannot; B's own next job can. Both write into a directory of the shared group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_job_cannot_read_another_tenants_environment_but_one_tenants_jobs_share() {
    let dir = tempfile::tempdir().unwrap();
    let Some(driver) = job_user_driver(dir.path()) else { return };
    let scratch = sticky_dir();
    // What an operator does for a directory every tenant's jobs (and Slurm's job user) may use.
    let shared = scratch.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(0), Some(shared_gid())).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o2770)).unwrap();
    let ckpt = scratch.path().join("b-ckpt");

    let holder = attempt(90, 1);
    let mut req = request_of(
        "iso-b",
        holder,
        "umask 077; mkdir \"$CUMULO_CHECKPOINT_DIR\" && echo b-state > \"$CUMULO_CHECKPOINT_DIR/state\"; echo $$; exec sleep 300",
    );
    req.job.envs.insert("B_SECRET".into(), "b-secret-42".into());
    req.checkpoint_dir = Some(ckpt.display().to_string());
    driver.launch(&req).await.unwrap();
    let pid = first_lines(&driver, holder, 1).await[0].clone();

    let probe = |tenant: &str, a: AttemptId| {
        let run = format!(
            "tr '\\0' '\\n' 2>/dev/null < /proc/$TARGET/environ | grep -q b-secret-42 && echo READ-ENV || echo no-env
             kill -0 $TARGET 2>/dev/null && echo SIGNAL || echo no-signal
             cat {ckpt}/state 2>/dev/null || echo no-checkpoint
             echo x > {shared}/{tenant} && echo wrote-shared
             id -un",
            ckpt = ckpt.display(),
            shared = shared.display()
        );
        let mut req = request_of(tenant, a, &run);
        req.job.envs.insert("TARGET".into(), pid.clone());
        req
    };
    let (other, same) = (attempt(91, 1), attempt(92, 1));
    driver.launch(&probe("iso-a", other)).await.unwrap();
    driver.launch(&probe("iso-b", same)).await.unwrap();
    for a in [other, same] {
        let obs = wait_terminal(&driver, a).await;
        assert!(obs.state.is_success(), "{}: {}", obs.state, log_text(&driver, a, 0).await);
    }
    assert_eq!(
        log_text(&driver, other, 0).await,
        "no-env\nno-signal\nno-checkpoint\nwrote-shared\ncumulo-job-iso-a\n",
        "tenant A's job reached tenant B's"
    );
    assert_eq!(
        log_text(&driver, same, 0).await,
        "READ-ENV\nSIGNAL\nb-state\nwrote-shared\ncumulo-job-iso-b\n",
        "tenant B's jobs share their uid"
    );
    assert_running(&driver, holder).await;
    driver.cancel(holder).await.unwrap();
    assert_eq!(wait_terminal(&driver, holder).await.state, AttemptState::Cancelled);
}

async fn assert_running(driver: &LocalDriver, a: AttemptId) {
    let obs = driver.observe(&[a]).await.unwrap().remove(0);
    assert!(matches!(obs.state, AttemptState::Running { .. }), "attempt {a}: {}", obs.state);
}

/// An attempt the older build started as its one account `cumulo-job` is adopted by a driver
/// with accounts per tenant: observed, its log read, cancelled. The job's next attempt runs as
/// the tenant's own account: it reads the old checkpoint (group `cumulo-job`, which the tenant's
/// account is in) but may write into it only where the group may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_the_one_account_build_started_are_adopted_after_an_upgrade() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let Some(old) = job_user_driver_as(dir.path(), JobUser::Named("cumulo-job".into())) else { return };
    let scratch = sticky_dir();
    let ckpt = scratch.path().join("ckpt");
    let first = attempt(95, 1);
    let mut req = request(
        first,
        1,
        "umask 022; mkdir \"$CUMULO_CHECKPOINT_DIR\" && echo old-state > \"$CUMULO_CHECKPOINT_DIR/state\"; id -un; exec sleep 300",
    );
    req.checkpoint_dir = Some(ckpt.display().to_string());
    old.launch(&req).await.unwrap();
    assert_eq!(first_lines(&old, first, 1).await, ["cumulo-job"]);
    drop(old);

    let upgraded = job_user_driver(dir.path()).unwrap();
    assert_eq!(upgraded.known_attempts(), [first]);
    assert_running(&upgraded, first).await;
    let next = |n: u32| {
        let mut req = request(
            attempt(95, n),
            1,
            "cat \"$CUMULO_CHECKPOINT_DIR/state\"; id -un; echo new 2>/dev/null > \"$CUMULO_CHECKPOINT_DIR/new\" && echo wrote || echo read-only",
        );
        req.checkpoint_dir = Some(ckpt.display().to_string());
        req
    };
    upgraded.launch(&next(2)).await.unwrap();
    assert!(wait_terminal(&upgraded, attempt(95, 2)).await.state.is_success());
    assert_eq!(log_text(&upgraded, attempt(95, 2), 0).await, "old-state\ncumulo-job-test\nread-only\n");
    // The operator opens the old checkpoint to the group: the tenant's account writes there.
    std::fs::set_permissions(&ckpt, std::fs::Permissions::from_mode(0o775)).unwrap();
    upgraded.launch(&next(3)).await.unwrap();
    assert!(wait_terminal(&upgraded, attempt(95, 3)).await.state.is_success());
    assert_eq!(log_text(&upgraded, attempt(95, 3), 0).await, "old-state\ncumulo-job-test\nwrote\n");

    upgraded.cancel(first).await.unwrap();
    assert_eq!(wait_terminal(&upgraded, first).await.state, AttemptState::Cancelled);
    let log = log_text(&upgraded, first, 0).await;
    assert!(log.starts_with("cumulo-job\n"), "the old attempt's log: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_driver_conformance_suite_as_the_job_user() {
    let dir = tempfile::tempdir().unwrap();
    let Some(driver) = job_user_driver(dir.path()) else { return };
    let make = |a: AttemptId, nodes: u32, b: Behaviour| {
        let run = match b {
            Behaviour::Succeeds => "echo ok".to_string(),
            Behaviour::Fails(code) => format!("echo failing >&2; exit {code}"),
            Behaviour::RunsLong => "sleep 300".to_string(),
        };
        request(a, nodes, &run)
    };
    let suite = Suite {
        driver: &driver,
        request: &make,
        first_job: 1000,
        timeout: Duration::from_secs(10),
        poll: Duration::from_millis(20),
        tick: None,
    };
    suite.run_all().await.unwrap();
}

/// What a hostile job tried (issue 12, finding 2): the admin token, the database, its parent's
/// environment, the server's environment variables. Every line must say it could not.
#[tokio::test]
async fn a_job_cannot_read_the_admin_token_the_database_or_its_parents_environment() {
    use std::os::unix::fs::PermissionsExt;
    // A data directory as the server keeps it: mode 700, the token mode 600.
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(data.path().join("admin.token"), "cumulo_admin_secret\n").unwrap();
    std::fs::set_permissions(data.path().join("admin.token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(data.path().join("cumulo.db"), "SQLite format 3").unwrap();
    let Some(driver) = job_user_driver(&data.path().join("local/here")) else { return };
    // SAFETY: set before the launch below; the driver clears the job's environment anyway.
    unsafe { std::env::set_var("CUMULO_DB", "postgres://cumulo:hunter2@db/cumulo") };
    let d = data.path().display();
    let a = attempt(77, 1);
    let run = format!(
        "cat {d}/admin.token >/dev/null 2>&1 && echo READ-TOKEN || echo no-token
         [ -w {d}/cumulo.db ] && echo WRITE-DB || echo no-db
         tr '\\0' '\\n' 2>/dev/null </proc/$PPID/environ >/dev/null && echo READ-PARENT-ENV || echo no-parent-env
         env | grep -q hunter2 && echo SAW-SERVER-ENV || echo no-server-env
         [ \"$(id -u)\" = 0 ] && echo ROOT || echo not-root
         case \"$PWD\" in {d}*) echo IN-DATA-DIR ;; *) echo outside ;; esac"
    );
    driver.launch(&request(a, 1, &run)).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert!(obs.state.is_success(), "{}", obs.state);
    assert_eq!(
        log_text(&driver, a, 0).await,
        "no-token\nno-db\nno-parent-env\nno-server-env\nnot-root\noutside\n",
        "the job reached something of the server's"
    );
}

async fn setsid_grandchild_is_gone_when_the_attempt_ends(driver: &LocalDriver, a: AttemptId) {
    // The grandchild leaves the rank's process group and session, prints its pid and sleeps.
    let run = "setsid bash -c 'echo $$; exec sleep 300' & sleep 0.3";
    driver.launch(&request(a, 1, run)).await.unwrap();
    let obs = wait_terminal(driver, a).await;
    assert!(obs.state.is_success(), "{}", obs.state);
    let pid: u32 = log_text(driver, a, 0).await.trim().parse().expect("the grandchild printed its pid");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "setsid'ed grandchild {pid} outlived its attempt: {stat}");
}

#[tokio::test]
async fn a_setsid_grandchild_is_stopped_when_its_attempt_ends() {
    let dir = tempfile::tempdir().unwrap();
    setsid_grandchild_is_gone_when_the_attempt_ends(&driver(&dir), attempt(80, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    if let Some(driver) = job_user_driver(dir.path()) {
        setsid_grandchild_is_gone_when_the_attempt_ends(&driver, attempt(81, 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_setsid_grandchild_even_when_the_job_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let a = attempt(82, 1);
    let run = "trap '' TERM; setsid bash -c 'trap \"\" TERM; echo $$; exec sleep 300' & sleep 300";
    driver.launch(&request(a, 1, run)).await.unwrap();
    let mut pid = None;
    for _ in 0..200 {
        if let Ok(p) = log_text(&driver, a, 0).await.trim().parse::<u32>() {
            pid = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pid = pid.expect("the grandchild printed its pid");
    driver.cancel(a).await.unwrap();
    assert_eq!(wait_terminal(&driver, a).await.state, AttemptState::Cancelled);
    let mut gone = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "setsid'ed grandchild {pid} survived the cancel");
}

/// An upload (a tar archive in the uploads directory) named by the job.
fn with_upload(dir: &tempfile::TempDir, req: &mut LaunchRequest, files: &[(&str, &str)]) {
    let src = dir.path().join("upload-src");
    for (path, text) in files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let hex = "ab".repeat(32);
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(uploads.join(format!("{hex}.tar")))
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    req.job.upload = Some(format!("sha256:{hex}"));
}

#[tokio::test]
async fn an_upload_is_unpacked_into_the_working_directory_before_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("state"));
    config.job_user = JobUser::Server;
    config.uploads_dir = Some(dir.path().join("uploads"));
    let driver = LocalDriver::open(config).unwrap();
    let a = attempt(60, 1);
    let mut req = request(a, 1, "cat main.sh data/x.txt");
    req.job.setup = Some("test -f main.sh && echo setup-sees-it".into());
    req.job.workdir = Some("proj".into());
    req.job.file_mounts.insert("data".into(), "./local-data".into());
    with_upload(&dir, &mut req, &[("main.sh", "echo main\n"), ("data/x.txt", "x-data\n")]);
    assert!(req.node_script().find("cd ").is_none(), "an uploaded workdir is the working directory: no cd");
    driver.launch(&req).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    assert!(obs.state.is_success(), "{}", log_text(&driver, a, 0).await);
    assert_eq!(log_text(&driver, a, 0).await, "setup-sees-it\necho main\nx-data\n");

    // The upload's file is gone: the launch fails saying so, before anything starts.
    let b = attempt(60, 2);
    let mut req = request(b, 1, "true");
    req.job.upload = Some(format!("sha256:{}", "cd".repeat(32)));
    let err = driver.launch(&req).await.unwrap_err().to_string();
    assert!(err.contains("job.upload") && err.contains("missing"), "{err}");
}

/// A runtime that runs containers here, with a busybox test image imported into it: docker when
/// its daemon answers (CI starts one: `scripts/dev-docker.sh`), else podman; why neither can.
fn runtime_with_image() -> Result<cumulo_driver_local::ContainerRuntime, String> {
    use cumulo_driver_local::container::RuntimeKind;
    let docker = cumulo_driver_local::ContainerRuntime {
        kind: RuntimeKind::Docker,
        program: "docker".into(),
        global_args: Vec::new(),
    };
    let podman = cumulo_driver_local::ContainerRuntime {
        kind: RuntimeKind::Podman,
        program: "podman".into(),
        global_args: vec!["--cgroup-manager=cgroupfs".into(), "--storage-driver=vfs".into()],
    };
    let docker_failed = match import_busybox(&docker) {
        Ok(()) => return Ok(docker),
        Err(why) => why,
    };
    import_busybox(&podman).map(|()| podman).map_err(|why| format!("{docker_failed}; {why}"))
}

/// Imports a one-binary busybox image as `localhost/cumulo-test-busybox:1` into `runtime` and
/// runs it once.
fn import_busybox(runtime: &cumulo_driver_local::ContainerRuntime) -> Result<(), String> {
    let program = runtime.program.display().to_string();
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("no busybox binary to build a test image from")?;
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.path().join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, root.path().join("bin/busybox")).map_err(|e| e.to_string())?;
    for tool in ["sh", "cat", "id", "echo", "test", "[", "true"] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(tool)).map_err(|e| e.to_string())?;
    }
    let run = |args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new(&runtime.program)
            .args(&runtime.global_args)
            .args(args)
            .output()
            .map_err(|e| format!("{program} cannot run: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        out.status.success().then_some(()).ok_or_else(|| format!("{program} {}: {}", args[0], stderr.trim()))
    };
    let archive = root.path().join("rootfs.tar");
    let tarred = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(root.path())
        .arg("bin")
        .status()
        .map_err(|e| e.to_string())?;
    if !tarred.success() {
        return Err("tar failed".into());
    }
    run(&["import", archive.to_str().unwrap(), "localhost/cumulo-test-busybox:1"])?;
    run(&["run", "--rm", "--network=host", "localhost/cumulo-test-busybox:1", "true"])
}

#[tokio::test]
async fn a_container_job_runs_in_its_image_with_its_upload_or_the_test_says_why_not() {
    let runtime = match runtime_with_image() {
        Ok(runtime) => runtime,
        Err(why) => {
            eprintln!("SKIPPED: no container can run here ({why}); only the command line is tested (container.rs)");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("state"));
    config.job_user = JobUser::Server;
    config.uploads_dir = Some(dir.path().join("uploads"));
    config.container = Some(runtime.clone());
    let driver = LocalDriver::open(config).unwrap();
    let a = attempt(61, 1);
    let mut req = request(a, 1, "cat /inputs/x.txt; echo \"$GREETING\"; test -x /bin/busybox && echo in-image");
    req.job.image = Some("localhost/cumulo-test-busybox:1".into());
    req.job.envs.insert("GREETING".into(), "hello".into());
    req.job.file_mounts.insert("/inputs".into(), "./in".into());
    with_upload(&dir, &mut req, &[(".cumulo-mounts/inputs/x.txt", "from-upload\n")]);
    driver.launch(&req).await.unwrap();
    let obs = wait_terminal(&driver, a).await;
    let log = log_text(&driver, a, 0).await;
    assert!(obs.state.is_success(), "{log}");
    assert_eq!(log, "from-upload\nhello\nin-image\n");

    // With accounts per tenant (a root test), the container runs as the tenant's account and the
    // shared group.
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let mut per_tenant = Config::new(dir.path().join("per-tenant"));
    per_tenant.container = Some(runtime);
    let driver = LocalDriver::open(per_tenant).unwrap();
    let account = driver.account_for_tenant("test").unwrap().unwrap();
    let b = attempt(62, 1);
    let mut req = request(b, 1, "id -u; id -G");
    req.job.image = Some("localhost/cumulo-test-busybox:1".into());
    driver.launch(&req).await.unwrap();
    let obs = wait_terminal(&driver, b).await;
    let log = log_text(&driver, b, 0).await;
    assert!(obs.state.is_success(), "{log}");
    let (uid, groups) = log.split_once('\n').expect("two lines");
    assert_eq!(uid, account.uid.to_string(), "{log}");
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(groups.contains(&account.gid.to_string().as_str()), "{log}");
    assert!(groups.contains(&shared_gid().to_string().as_str()), "{log}");
}

/// The reconcile loop asks for a cancel on every pass until the attempt ends: within the grace a
/// repeated cancel must not send another SIGTERM (it would cut a job's TERM handler short, as
/// each TERM kills the handler's current command and starts the handler again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_cancels_within_the_grace_let_a_term_handler_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.kill_grace = Duration::from_secs(5);
    config.job_user = JobUser::Server;
    let driver = LocalDriver::open(config).unwrap();
    let saved = dir.path().join("saved");
    let a = attempt(83, 1);
    let run = format!(
        "trap 'sleep 1; echo saved > {}; exit 0' TERM\necho up\nwhile true; do sleep 0.1; done",
        saved.display()
    );
    driver.launch(&request(a, 1, &run)).await.unwrap();
    for _ in 0..200 {
        if log_text(&driver, a, 0).await.contains("up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for _ in 0..10 {
        driver.cancel(a).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wait_terminal(&driver, a).await.state, AttemptState::Cancelled);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "saved\n", "the TERM handler ran to its end");
}

/// A cancel repeated after the grace has passed (a restarted driver lost the SIGKILL timer) kills
/// a job that ignores SIGTERM at once, not a grace later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_repeated_after_the_grace_kills_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = attempt(84, 1);
    let open = || {
        let mut config = Config::new(dir.path());
        config.kill_grace = Duration::from_secs(60);
        config.job_user = JobUser::Server;
        LocalDriver::open(config).unwrap()
    };
    let first = open();
    first.launch(&request(a, 1, "trap '' TERM; echo up; while true; do sleep 0.1; done")).await.unwrap();
    for _ in 0..200 {
        if log_text(&first, a, 0).await.contains("up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    first.cancel(a).await.unwrap();
    drop(first);
    // The first cancel was two minutes ago: its grace (60 s) has passed.
    let marker = dir.path().join("attempts").join(a.to_string()).join("cancelled");
    let touched = std::process::Command::new("touch").args(["-d", "2 minutes ago"]).arg(&marker).status().unwrap();
    assert!(touched.success());
    let restarted = open();
    assert!(!restarted.observe(&[a]).await.unwrap()[0].state.is_terminal(), "the job ignores SIGTERM");
    restarted.cancel(a).await.unwrap();
    assert_eq!(wait_terminal(&restarted, a).await.state, AttemptState::Cancelled, "killed well within the grace");
}
