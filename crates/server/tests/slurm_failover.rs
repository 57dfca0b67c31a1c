//! Failover on the real local Slurm (`scripts/dev-slurm.sh start`): a training job placed on the
//! Slurm cluster of a two-cluster fleet (Slurm over slurmrestd, and this machine's local driver)
//! loses its cluster when slurmctld is stopped; the reconcile loop marks the attempt lost after
//! `lost_after`, re-places the job on the local cluster, the new attempt sees the same
//! `CUMULO_CHECKPOINT_DIR`, and every attempt started exactly once (each start appends a line to
//! a file in the checkpoint directory). The test restarts Slurm at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cumulo_driver::{Capabilities, Capacity, Driver, LaunchOutcome, LaunchRequest, LogChunk, Observation};
use cumulo_types::{AttemptId, JobId};

use cumulo_control::{Cluster, ClusterInfo, Controller, Options, open_store};
use cumulo_server::config::FleetFile;
use cumulo_store::{AttemptState, NewJob};
use cumulo_types::{AcceleratorDemand, Checkpoint, GpuModel, GpuSelector, JobKind, JobSpec, MilliGpu, Money};

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

/// The Slurm driver with job ids moved by `base`: a fresh store numbers jobs from 1, and Slurm
/// keeps finished jobs named `cumulo-1.1` for `MinJobAge` (600 s here), which the driver would
/// take for this run's attempt (its idempotence key is the name).
struct Offset {
    inner: Arc<dyn Driver>,
    base: u64,
}

impl Offset {
    fn to(&self, a: AttemptId) -> AttemptId {
        AttemptId { job: JobId(a.job.0 + self.base), attempt: a.attempt }
    }
}

#[async_trait]
impl Driver for Offset {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        self.inner.discover().await
    }
    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        let mut request = request.clone();
        request.attempt = self.to(request.attempt);
        self.inner.launch(&request).await
    }
    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        self.inner.cancel(self.to(attempt)).await
    }
    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        let moved: Vec<AttemptId> = attempts.iter().map(|a| self.to(*a)).collect();
        let mut observations = self.inner.observe(&moved).await?;
        for (o, a) in observations.iter_mut().zip(attempts) {
            o.attempt = *a;
        }
        Ok(observations)
    }
    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        self.inner.logs(self.to(attempt), rank, offset).await
    }
}

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
    let dir = tempfile::tempdir().unwrap();
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
        % 1_000_000_000
        * 1000
        + 500_000_000_000_000;
    // Slurm runs the job as another user: the checkpoint directory lies in the shared, writable
    // work directory.
    let checkpoint = Path::new(&workdir).join(format!("failover-{base}"));
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::set_permissions(&checkpoint, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();

    let fleet_yaml = format!(
        "clusters:\n\
         - {{name: slurm, provider: onprem, region: lab, capacity: on-demand, price_per_node_hour: '1', \
            driver: {{kind: slurm, url: '{url}', user: {user}, token: '{token}', log_dir: '{workdir}/logs'}}}}\n\
         - {{name: here, provider: local, region: lab, capacity: on-demand, price_per_node_hour: '500', \
            driver: {{kind: local}}}}\n"
    );
    let fleet = FleetFile::parse(&fleet_yaml, "failover fleet").unwrap().open(dir.path(), None).unwrap();
    let clusters: Vec<Cluster> = fleet
        .clusters
        .iter()
        .map(|(entry, driver)| Cluster {
            info: ClusterInfo {
                name: entry.name.clone(),
                provider: entry.provider.clone(),
                region: entry.region.clone(),
                capacity: entry.capacity,
                price_per_node_hour: Money::parse_non_negative(&entry.price_per_node_hour).unwrap(),
            },
            driver: if entry.name == "slurm" {
                Arc::new(Offset { inner: driver.clone(), base }) as Arc<dyn Driver>
            } else {
                driver.clone()
            },
        })
        .collect();
    let slurm = clusters[0].driver.clone();
    let store = open_store(dir.path().join("cumulo.db").to_str().unwrap()).await.unwrap();
    let mut options = Options::new(store.clone(), clusters);
    options.lost_after = Duration::from_secs(5);
    let controller = Controller::new(options);

    let mut spec = JobSpec::new("failover", "research");
    spec.kind = JobKind::Training;
    spec.checkpoint = Some(Checkpoint { dir: checkpoint.display().to_string(), every_s: None });
    spec.run =
        Some("echo \"$CUMULO_ATTEMPT $CUMULO_CHECKPOINT_DIR\" >> \"$CUMULO_CHECKPOINT_DIR/starts\"; sleep 600".into());
    spec.max_attempts = 3;
    // Two ways to run: one H100 (only the Slurm cluster has GPUs), else CPU only (this machine).
    let cpu_only = spec.resources[0].clone();
    spec.resources[0].accelerators =
        Some(AcceleratorDemand { selector: GpuSelector::Models(vec![GpuModel::H100]), per_node: MilliGpu::whole(1) });
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
