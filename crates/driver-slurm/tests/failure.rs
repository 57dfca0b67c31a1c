//! Failure tests against the real Slurm of `scripts/dev-slurm.sh` (same env as `e2e.rs`): the
//! slurmd daemons of a running gang are killed, then the controller is killed while a job runs and
//! restarted. One test, in its own binary, because it takes nodes and the controller away from
//! every other test while it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cumulo_driver::{AttemptId, AttemptState, Driver, JobId, JobSpec, LaunchRequest, NodeAssignment, NodeState};
use cumulo_driver_slurm::{Config, RestEndpoint, SlurmDriver};

fn slurm_dir(conf: &str) -> PathBuf {
    // $DIR/etc/slurm.conf
    Path::new(conf).parent().and_then(Path::parent).expect("slurm.conf under <dir>/etc").to_path_buf()
}

fn kill_from_pid_file(file: &Path, signal: &str) {
    let pid = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let status = std::process::Command::new("kill").args([signal, pid.trim()]).status().unwrap();
    assert!(status.success(), "kill {}", pid.trim());
}

fn restart_with_the_project_script() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/dev-slurm.sh");
    let out = std::process::Command::new("bash").args([script, "start"]).output().unwrap();
    assert!(out.status.success(), "dev-slurm.sh start: {}", String::from_utf8_lossy(&out.stderr));
}

fn request(a: AttemptId, nodes: &[&str], run: &str) -> LaunchRequest {
    let mut job = JobSpec::new("failure", "test");
    job.num_nodes = nodes.len() as u32;
    job.run = Some(run.into());
    let mut req = LaunchRequest::new(a, job);
    req.nodes = nodes.iter().map(|n| NodeAssignment::new(n, [])).collect();
    req
}

async fn wait_state(driver: &SlurmDriver, a: AttemptId, what: &str, done: impl Fn(&AttemptState) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(obs) = driver.observe(&[a]).await
            && done(&obs[0].state)
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(180), "attempt {a} not {what} after 180 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_slurmds_lose_the_gang_and_a_restarted_controller_keeps_its_jobs() {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(user), Some(token), Some(conf)) = (
        get("CUMULO_TEST_SLURM_URL"),
        get("CUMULO_TEST_SLURM_USER"),
        get("CUMULO_TEST_SLURM_TOKEN"),
        get("CUMULO_TEST_SLURM_CONF"),
    ) else {
        println!("skipping: CUMULO_TEST_SLURM_* not set (run scripts/dev-slurm.sh start and source its env file)");
        return;
    };
    let dir = slurm_dir(&conf);
    let driver = SlurmDriver::new(Config::rest(RestEndpoint::new(&url, &user, &token))).unwrap();
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;

    // 1. The slurmd processes of a running gang die: the attempt is reported lost, the node down.
    let gang = AttemptId { job: JobId(base), attempt: 1 };
    driver.launch(&request(gang, &["node061", "node062"], "sleep 600")).await.unwrap();
    wait_state(&driver, gang, "running", |s| matches!(s, AttemptState::Running { .. })).await;
    kill_from_pid_file(&dir.join("run/slurmd-node062.pid"), "-KILL");
    let took = wait_state(&driver, gang, "lost", |s| matches!(s, AttemptState::Lost { .. })).await;
    println!("gang {gang} on node061,node062: lost {took:?} after node062's slurmd was killed");
    let cap = driver.discover().await.unwrap();
    let node062 = cap.nodes.iter().find(|n| n.name == "node062").unwrap();
    assert_eq!(node062.state, NodeState::Down, "{:?}", node062.labels);

    // 2. The controller stops while a job runs: every call fails transiently, nothing is lost;
    //    after a restart the job is still there and launching it again starts nothing.
    let survivor = AttemptId { job: JobId(base + 1), attempt: 1 };
    let req = request(survivor, &["node001"], "sleep 600");
    driver.launch(&req).await.unwrap();
    wait_state(&driver, survivor, "running", |s| matches!(s, AttemptState::Running { .. })).await;
    let before = driver.jobs().await.unwrap().into_iter().find(|j| j.name == req.engine_name()).unwrap();
    // SIGTERM: the controller saves its state and stops, as in a maintenance stop or a failover
    // (after SIGKILL it loses the jobs of its last seconds and reports them as orphans).
    kill_from_pid_file(&dir.join("run/slurmctld.pid"), "-TERM");
    let start = Instant::now();
    let err = loop {
        match driver.observe(&[survivor]).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(start.elapsed() < Duration::from_secs(30), "observe kept answering without a controller");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(err.is_transient(), "{err}");
    println!("controller down: {err}");
    restart_with_the_project_script();
    wait_state(&driver, survivor, "running again", |s| matches!(s, AttemptState::Running { .. })).await;
    let after = driver.jobs().await.unwrap().into_iter().find(|j| j.name == req.engine_name()).unwrap();
    assert_eq!(after.job_id, before.job_id, "the same slurm job survived the controller restart");
    assert!(!driver.launch(&req).await.unwrap().newly_started);
    driver.cancel(survivor).await.unwrap();
    driver.cancel(gang).await.unwrap();
    wait_state(&driver, survivor, "cancelled", |s| *s == AttemptState::Cancelled).await;
    // node062's slurmd was restarted by the script; it returns to service by itself.
    let start = Instant::now();
    loop {
        let cap = driver.discover().await.unwrap();
        if cap.nodes.iter().all(|n| n.state == NodeState::Up) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "node062 did not return to service");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
