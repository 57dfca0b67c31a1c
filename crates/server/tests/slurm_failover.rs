//! Failover on the real local Slurm (`scripts/dev-slurm.sh start`), through the reconcile loop.
//!
//! * A training job placed on the Slurm cluster of a two-cluster fleet (Slurm over slurmrestd, and
//!   this machine's local driver) loses its cluster when slurmctld is stopped; the loop marks the
//!   attempt lost after `lost_after`, re-places the job on the local cluster, the new attempt sees
//!   the same `CUMULO_CHECKPOINT_DIR`, and every attempt started exactly once (each start appends
//!   a line to a file in the checkpoint directory). The test restarts Slurm at the end.
//! * A two-node training gang placed on Slurm partition `failover-a` (node055, node056, which no
//!   other test pins) loses both nodes when their slurmd processes are killed; the job is re-placed
//!   on partition `failover-b` (node057, node058) of the same Slurm as another cluster, with the
//!   same checkpoint directory, every rank of every attempt started once. The killed slurmds are
//!   restarted however the test ends.
//!
//! The two take Slurm away from each other, so they hold one lock and run one at a time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cumulo_types::AttemptId;

use cumulo_control::{Controller, Options, open_store};
use cumulo_server::config::FleetFile;
use cumulo_store::{AttemptState, NewJob};
use cumulo_types::{AcceleratorDemand, Checkpoint, GpuModel, GpuSelector, JobKind, JobSpec, MilliGpu};

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn dev_slurm(action: &str) {
    let status = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/dev-slurm.sh"))
        .arg(action)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run scripts/dev-slurm.sh");
    assert!(status.success(), "scripts/dev-slurm.sh {action} failed");
}

/// Held by each test of this file for its whole run.
static SLURM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Restarts Slurm however the test ends.
struct RestartSlurm;

impl Drop for RestartSlurm {
    fn drop(&mut self) {
        dev_slurm("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_job_fails_over_from_a_stopped_slurm_to_the_local_cluster() {
    let (Ok(url), Ok(user), Ok(token)) = (
        std::env::var("CUMULO_TEST_SLURM_URL"),
        std::env::var("CUMULO_TEST_SLURM_USER"),
        std::env::var("CUMULO_TEST_SLURM_TOKEN"),
    ) else {
        println!("skipping: CUMULO_TEST_SLURM_URL not set");
        return;
    };
    let slurm_dir = std::env::var("CUMULO_SLURM_DIR").unwrap_or_else(|_| "/tmp/cumulo-slurm".into());
    let ctld_pid_file = Path::new(&slurm_dir).join("run/slurmctld.pid");
    let Ok(workdir) = std::env::var("CUMULO_TEST_SLURM_WORKDIR") else {
        println!("skipping: CUMULO_TEST_SLURM_WORKDIR not set");
        return;
    };
    let _exclusive = SLURM.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    // Slurm runs the job as another user: the checkpoint directory lies in the shared, writable
    // work directory.
    let checkpoint = Path::new(&workdir).join(format!("failover-{stamp}"));
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::set_permissions(&checkpoint, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();

    let fleet_yaml = format!(
        "clusters:\n\
         - {{name: slurm, provider: onprem, region: lab, capacity: on-demand, price_per_node_hour: '1', \
            driver: {{kind: slurm, url: '{url}', user: {user}, token: '{token}', log_dir: '{workdir}/logs'}}}}\n\
         - {{name: here, provider: local, region: lab, capacity: on-demand, price_per_node_hour: '500', \
            driver: {{kind: local}}}}\n"
    );
    // A fresh store numbers jobs from 1 again; its deployment id in the Slurm job names keeps
    // Slurm's memory of earlier runs' `1.1` (for MinJobAge) from being taken for this run's.
    let store = open_store(dir.path().join("cumulo.db").to_str().unwrap()).await.unwrap();
    let deployment = store.deployment_id().await.unwrap();
    let fleet =
        FleetFile::parse(&fleet_yaml, "failover fleet").unwrap().open_for(dir.path(), None, Some(&deployment)).unwrap();
    let clusters = fleet.control_clusters();
    let slurm = clusters[0].driver.clone();
    let mut options = Options::new(store.clone(), clusters);
    options.lost_after = Duration::from_secs(5);
    let controller = Controller::new(options);

    let mut spec = JobSpec::new("failover", "research");
    spec.kind = JobKind::Training;
    spec.checkpoint = Some(Checkpoint { dir: checkpoint.display().to_string(), every_s: None });
    // Slurm's job user and the local driver's account of the tenant (`cumulo-job-research`) both
    // append to one file.
    spec.run = Some(
        "umask 000; echo \"$CUMULO_ATTEMPT $CUMULO_CHECKPOINT_DIR\" >> \"$CUMULO_CHECKPOINT_DIR/starts\"; sleep 600"
            .into(),
    );
    spec.max_attempts = 3;
    // Two ways to run: one H100 (only the Slurm cluster has GPUs), else CPU only (this machine).
    let cpu_only = spec.resources[0].clone();
    spec.resources[0].accelerators = Some(AcceleratorDemand {
        selector: GpuSelector::Models(vec![GpuModel::H100]),
        per_node: MilliGpu::whole(1),
        names: Vec::new(),
    });
    spec.resources.push(cpu_only);
    let job = store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id;

    let cluster_of = |placement: &serde_json::Value| placement["cluster"].as_str().unwrap_or("").to_string();
    let started = Instant::now();
    let mut launches: BTreeMap<String, usize> = BTreeMap::new();

    // Phase 1: the job runs on Slurm.
    let first = loop {
        let report = controller.reconcile_once().await.unwrap();
        for a in &report.launched {
            *launches.entry(a.to_string()).or_default() += 1;
        }
        let record = store.get_job(job).await.unwrap();
        if let Some(a) = record.attempts.iter().find(|a| a.state == AttemptState::Running) {
            assert_eq!(cluster_of(&a.placement), "slurm", "placed on the cheaper slurm cluster first: {a:?}");
            break a.id;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "the first attempt never ran on slurm: {record:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let running_on_slurm = started.elapsed();
    // Wait until the Slurm attempt wrote its start line.
    let starts = checkpoint.join("starts");
    let t = Instant::now();
    while !std::fs::read_to_string(&starts).unwrap_or_default().contains(&format!("{} ", first.attempt)) {
        assert!(t.elapsed() < Duration::from_secs(20), "the slurm attempt never wrote {}", starts.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Phase 2: stop slurmctld under it.
    let restart = RestartSlurm;
    let pid = std::fs::read_to_string(&ctld_pid_file).unwrap().trim().to_string();
    assert!(std::process::Command::new("kill").arg(&pid).status().unwrap().success(), "kill slurmctld {pid}");
    let stopped = Instant::now();

    let (second, lost_at) = loop {
        let report = controller.reconcile_once().await.unwrap();
        for a in &report.launched {
            *launches.entry(a.to_string()).or_default() += 1;
        }
        let record = store.get_job(job).await.unwrap();
        let lost = record.attempts.iter().find(|a| a.id == first).map(|a| a.state) == Some(AttemptState::Lost);
        if lost && let Some(a) = record.attempts.iter().find(|a| a.id != first && a.state == AttemptState::Running) {
            assert_eq!(cluster_of(&a.placement), "here", "re-placed on the local cluster: {a:?}");
            break (a.id, stopped.elapsed());
        }
        assert!(stopped.elapsed() < Duration::from_secs(45), "not re-placed after slurmctld stopped: {record:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let t = Instant::now();
    while !std::fs::read_to_string(&starts).unwrap_or_default().contains(&format!("{} ", second.attempt)) {
        assert!(t.elapsed() < Duration::from_secs(20), "the local attempt never wrote {}", starts.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&starts).unwrap();
    println!(
        "job {job}: attempt {first} running on slurm after {running_on_slurm:?}; slurmctld stopped; attempt \
         {second} running on the local cluster {lost_at:?} later; starts:\n{text}"
    );
    let mut per_attempt: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        let (attempt, dir) = line.split_once(' ').unwrap();
        assert_eq!(dir, checkpoint.display().to_string(), "every attempt sees the same CUMULO_CHECKPOINT_DIR");
        *per_attempt.entry(attempt).or_default() += 1;
    }
    assert_eq!(per_attempt.len(), 2, "{text}");
    assert!(per_attempt.values().all(|n| *n == 1), "an attempt started twice: {text}");
    assert!(launches.values().all(|n| *n == 1), "an attempt launched twice: {launches:?}");

    // Clean up: restart Slurm, cancel the job (the local attempt) and the orphan left on Slurm.
    drop(restart);
    store.cancel_job(job).await.unwrap();
    let t = Instant::now();
    while store.get_job(job).await.unwrap().state != cumulo_types::JobState::Cancelled {
        assert!(t.elapsed() < Duration::from_secs(30), "the job was not cancelled");
        controller.reconcile_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = Instant::now();
    while slurm.cancel(first).await.is_err() && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Restarts the slurmd daemons this test killed (the project script restarts every missing one)
/// and waits until their nodes take work again, however the test ends.
struct RestartSlurmds {
    nodes: Vec<String>,
    conf: String,
}

impl Drop for RestartSlurmds {
    fn drop(&mut self) {
        dev_slurm("start");
        let t = Instant::now();
        loop {
            let out = std::process::Command::new("sinfo")
                .env("SLURM_CONF", &self.conf)
                .args(["-h", "-N", "-o", "%N %t", "-n", &self.nodes.join(",")])
                .output()
                .expect("run sinfo");
            // One line per node and partition.
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let up: std::collections::BTreeSet<&str> = text
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, state)| ["idle", "mix", "alloc"].contains(state))
                .map(|(node, _)| node)
                .collect();
            if up.len() == self.nodes.len() {
                return;
            }
            if t.elapsed() > Duration::from_secs(90) {
                eprintln!("nodes {:?} not back in service after 90 s: {text}", self.nodes);
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Lines `<attempt> <rank> <checkpoint dir>` that every rank of every attempt appends on start.
fn starts_of(file: &Path) -> Vec<(u32, u32, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut f = line.splitn(3, ' ');
            let attempt = f.next().unwrap().parse().unwrap();
            let rank = f.next().unwrap().parse().unwrap();
            (attempt, rank, f.next().unwrap_or("").to_string())
        })
        .collect()
}

async fn wait_for_ranks(file: &Path, attempt: u32, ranks: u32) {
    let t = Instant::now();
    while starts_of(file).iter().filter(|(a, _, _)| *a == attempt).count() < ranks as usize {
        assert!(t.elapsed() < Duration::from_secs(30), "attempt {attempt} did not start its {ranks} ranks");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_whose_slurmds_are_killed_is_re_placed_on_another_partition() {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(user), Some(token), Some(conf), Some(workdir)) = (
        get("CUMULO_TEST_SLURM_URL"),
        get("CUMULO_TEST_SLURM_USER"),
        get("CUMULO_TEST_SLURM_TOKEN"),
        get("CUMULO_TEST_SLURM_CONF"),
        get("CUMULO_TEST_SLURM_WORKDIR"),
    ) else {
        println!("skipping: CUMULO_TEST_SLURM_* not set (run scripts/dev-slurm.sh start and source its env file)");
        return;
    };
    // $DIR/etc/slurm.conf: the slurmd pid files are $DIR/run/slurmd-<node>.pid.
    let slurm_dir = Path::new(&conf).parent().and_then(Path::parent).expect("slurm.conf under <dir>/etc").to_path_buf();
    let _exclusive = SLURM.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let checkpoint = Path::new(&workdir).join(format!("slurmd-failover-{stamp}"));
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::set_permissions(&checkpoint, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();

    let cluster = |name: &str, partition: &str, price: &str| {
        format!(
            "- {{name: {name}, provider: onprem, region: lab, capacity: on-demand, price_per_node_hour: '{price}', \
               driver: {{kind: slurm, url: '{url}', user: {user}, token: '{token}', partition: {partition}, \
               log_dir: '{workdir}/logs'}}}}\n"
        )
    };
    let fleet_yaml =
        format!("clusters:\n{}{}", cluster("slurm-a", "failover-a", "1"), cluster("slurm-b", "failover-b", "2"));
    let store = open_store(dir.path().join("cumulo.db").to_str().unwrap()).await.unwrap();
    let deployment = store.deployment_id().await.unwrap();
    let fleet = FleetFile::parse(&fleet_yaml, "slurmd failover fleet")
        .unwrap()
        .open_for(dir.path(), None, Some(&deployment))
        .unwrap();
    let clusters = fleet.control_clusters();
    // The partitions come from scripts/dev-slurm.sh; a Slurm started by an older copy of it has
    // none until the script runs again (it reconfigures the running controller).
    for retry in [true, false] {
        let mut sizes = Vec::new();
        for c in &clusters {
            sizes.push(c.driver.discover().await.unwrap().nodes.len());
        }
        if sizes == [2, 2] {
            break;
        }
        if retry {
            dev_slurm("start");
            continue;
        }
        println!("skipping: partitions failover-a and failover-b have {sizes:?} nodes, expected 2 each");
        return;
    }
    let slurm_a = clusters[0].driver.clone();
    // For Slurm job ids in the closing lines.
    let mut config = cumulo_driver_slurm::Config::rest(cumulo_driver_slurm::RestEndpoint::new(&url, &user, &token));
    config.deployment = Some(deployment.clone());
    let lister = cumulo_driver_slurm::SlurmDriver::new(config).unwrap();
    let slurm_job_of = |jobs: &[cumulo_driver_slurm::model::SlurmJob], a: AttemptId| {
        let name = lister.job_name(a);
        jobs.iter().filter(|j| j.name == name).map(|j| j.job_id).max()
    };
    let mut options = Options::new(store.clone(), clusters);
    options.lost_after = Duration::from_secs(30);
    let controller = Controller::new(options);

    let mut spec = JobSpec::new("slurmd-failover", "research");
    spec.kind = JobKind::Training;
    spec.num_nodes = 2;
    spec.checkpoint = Some(Checkpoint { dir: checkpoint.display().to_string(), every_s: None });
    spec.run = Some(
        "echo \"$CUMULO_ATTEMPT $CUMULO_NODE_RANK $CUMULO_CHECKPOINT_DIR\" >> \"$CUMULO_CHECKPOINT_DIR/starts\"; sleep 600"
            .into(),
    );
    spec.max_attempts = 3;
    spec.resources[0].accelerators = Some(AcceleratorDemand {
        selector: GpuSelector::Models(vec![GpuModel::H100]),
        per_node: MilliGpu::whole(1),
        names: Vec::new(),
    });
    let job = store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id;
    let starts = checkpoint.join("starts");
    let mut launches: BTreeMap<String, usize> = BTreeMap::new();

    // Phase 1: the gang runs on partition failover-a.
    let started = Instant::now();
    let (first, nodes) = loop {
        let report = controller.reconcile_once().await.unwrap();
        for a in &report.launched {
            *launches.entry(a.to_string()).or_default() += 1;
        }
        let record = store.get_job(job).await.unwrap();
        if let Some(a) = record.attempts.iter().find(|a| a.state == AttemptState::Running) {
            assert_eq!(a.placement["cluster"], "slurm-a", "placed on the cheaper partition first: {a:?}");
            let nodes: Vec<String> = a.placement["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["node"].as_str().unwrap().to_string())
                .collect();
            break (a.id, nodes);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the gang never ran on slurm-a: {record:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let running_on_a = started.elapsed();
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(sorted, ["node055", "node056"], "the gang spans partition failover-a");
    wait_for_ranks(&starts, first.attempt, 2).await;
    let first_slurm_job = slurm_job_of(&lister.jobs().await.unwrap(), first);

    // Phase 2: kill the slurmd of each node the gang runs on.
    let restart = RestartSlurmds { nodes: nodes.clone(), conf: conf.clone() };
    for node in &nodes {
        let file = slurm_dir.join(format!("run/slurmd-{node}.pid"));
        let pid = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let status = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(status.success(), "kill -KILL {} (slurmd of {node})", pid.trim());
    }
    let killed = Instant::now();
    let mut lost_after_kill = None;
    let mut lost_reason = None;
    let (second, running_elsewhere) = loop {
        let report = controller.reconcile_once().await.unwrap();
        for a in &report.launched {
            *launches.entry(a.to_string()).or_default() += 1;
        }
        let record = store.get_job(job).await.unwrap();
        let old = record.attempts.iter().find(|a| a.id == first).unwrap();
        let lost = old.state == AttemptState::Lost;
        if lost && lost_after_kill.is_none() {
            lost_after_kill = Some(killed.elapsed());
            lost_reason = old.message.clone();
        }
        if lost && let Some(a) = record.attempts.iter().find(|a| a.id != first && a.state == AttemptState::Running) {
            assert_eq!(a.placement["cluster"], "slurm-b", "re-placed on the other partition: {a:?}");
            break (a.id, killed.elapsed());
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "not re-placed after the slurmds died: {record:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    wait_for_ranks(&starts, second.attempt, 2).await;
    let jobs = lister.jobs().await.unwrap();
    let second_slurm_job = slurm_job_of(&jobs, second);

    // Phase 3: the slurmds come back; the lost attempt must not run again on its returning nodes.
    drop(restart);
    for _ in 0..10 {
        controller.reconcile_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Slurm requeues a job whose node failed (slurmrestd ignores `requeue: false`); the loop
    // cancels it, so nothing of the lost attempt is left to start on the returning nodes.
    let t = Instant::now();
    let leftover = loop {
        let jobs = lister.jobs().await.unwrap();
        let name = lister.job_name(first);
        let alive: Vec<String> = jobs
            .iter()
            .filter(|j| j.name == name && ["PENDING", "RUNNING", "CONFIGURING", "REQUEUED"].contains(&j.state.as_str()))
            .map(|j| format!("{} {}", j.job_id, j.state))
            .collect();
        if alive.is_empty() || t.elapsed() > Duration::from_secs(30) {
            break alive;
        }
        controller.reconcile_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(leftover.is_empty(), "the lost attempt is still queued or running on slurm: {leftover:?}");
    let lines = starts_of(&starts);
    println!(
        "job {job}: attempt {first} (slurm job {first_slurm_job:?}) running on {nodes:?} of slurm-a after \
         {running_on_a:?}; slurmds killed; lost after {:?} ({}); attempt {second} (slurm job \
         {second_slurm_job:?}) running on slurm-b {running_elsewhere:?} after the kill; starts: {lines:?}",
        lost_after_kill.unwrap(),
        lost_reason.unwrap_or_default(),
    );
    let mut per_rank: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for (attempt, rank, ckpt) in &lines {
        assert_eq!(*ckpt, checkpoint.display().to_string(), "every attempt sees the same CUMULO_CHECKPOINT_DIR");
        *per_rank.entry((*attempt, *rank)).or_default() += 1;
    }
    let expected: Vec<(u32, u32)> =
        vec![(first.attempt, 0), (first.attempt, 1), (second.attempt, 0), (second.attempt, 1)];
    assert_eq!(per_rank.keys().copied().collect::<Vec<_>>(), expected, "{lines:?}");
    assert!(per_rank.values().all(|n| *n == 1), "a rank started twice: {lines:?}");
    assert!(launches.values().all(|n| *n == 1), "an attempt launched twice: {launches:?}");
    assert_eq!(launches.len(), 2, "{launches:?}");

    // Clean up: cancel the job (the attempt on slurm-b) and whatever Slurm kept of the first.
    store.cancel_job(job).await.unwrap();
    let t = Instant::now();
    while store.get_job(job).await.unwrap().state != cumulo_types::JobState::Cancelled {
        assert!(t.elapsed() < Duration::from_secs(30), "the job was not cancelled");
        controller.reconcile_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    slurm_a.cancel(first).await.unwrap();
}
