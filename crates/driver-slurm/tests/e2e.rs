//! End-to-end tests against a real Slurm started by `scripts/dev-slurm.sh start` (64 fake-GPU
//! nodes and slurmrestd). They read `CUMULO_TEST_SLURM_URL`, `_USER`, `_TOKEN`, `_CONF` and
//! `_WORKDIR` (from `source /tmp/cumulo-slurm/env`) and print "skipping: ..." when absent.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cumulo_driver::conformance::{Behaviour, Suite};
use cumulo_driver::{
    AttemptId, AttemptState, Driver, JobId, JobKind, JobSpec, LaunchRequest, NodeAssignment, NodeState,
};
use cumulo_driver_slurm::{Config, ObserveWith, Pinning, RestEndpoint, SlurmDriver};

struct Env {
    url: String,
    user: String,
    token: String,
    conf: String,
    workdir: String,
}

fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("CUMULO_TEST_SLURM_URL"),
        get("CUMULO_TEST_SLURM_USER"),
        get("CUMULO_TEST_SLURM_TOKEN"),
        get("CUMULO_TEST_SLURM_CONF"),
        get("CUMULO_TEST_SLURM_WORKDIR"),
    ) {
        (Some(url), Some(user), Some(token), Some(conf), Some(workdir)) => {
            Some(Env { url, user, token, conf, workdir })
        }
        _ => {
            println!("skipping: CUMULO_TEST_SLURM_* not set (run scripts/dev-slurm.sh start and source its env file)");
            None
        }
    }
}

/// Job ids unique to this test run, so runs against a long-lived cluster never collide.
fn unique_job_base(slot: u64) -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    (ms % 1_000_000_000) * 1000 + slot * 100_000_000_000_000
}

fn log_dir(env: &Env, name: &str) -> String {
    let dir = format!("{}/{name}", env.workdir);
    std::fs::create_dir_all(&dir).unwrap();
    std::process::Command::new("chmod").args(["1777", &dir]).status().unwrap();
    dir
}

fn rest_driver(env: &Env) -> SlurmDriver {
    let mut config = Config::rest(RestEndpoint::new(&env.url, &env.user, &env.token));
    config.log_dir = Some(log_dir(env, "logs"));
    SlurmDriver::new(config).unwrap()
}

fn cli_driver(env: &Env) -> SlurmDriver {
    let mut config = Config::cli(Some(env.conf.clone().into()));
    config.log_dir = Some(log_dir(env, "logs"));
    SlurmDriver::new(config).unwrap()
}

fn request(a: AttemptId, nodes: &[String], run: &str) -> LaunchRequest {
    let mut job = JobSpec::new("e2e", "test");
    job.num_nodes = nodes.len() as u32;
    job.run = Some(run.to_string());
    let mut req = LaunchRequest::new(a, job);
    req.nodes = nodes.iter().map(|n| NodeAssignment::new(n, [])).collect();
    req
}

fn node(i: u32) -> String {
    format!("node{i:03}")
}

async fn wait_terminal(driver: &SlurmDriver, ids: &[AttemptId], timeout: Duration) -> Vec<cumulo_driver::Observation> {
    let start = Instant::now();
    loop {
        let obs = driver.observe(ids).await.unwrap();
        if obs.iter().all(|o| o.state.is_terminal()) {
            return obs;
        }
        let pending = obs.iter().filter(|o| !o.state.is_terminal()).count();
        assert!(start.elapsed() < timeout, "{pending} attempts not finished after {timeout:?}: {:?}", &obs[..1]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn conformance(driver: &SlurmDriver, base: u64, node_offset: u32) {
    let make = move |a: AttemptId, nodes: u32, b: Behaviour| {
        let names: Vec<String> = (0..nodes).map(|i| node(node_offset + i)).collect();
        let run = match b {
            Behaviour::Succeeds => "echo ok".to_string(),
            Behaviour::Fails(code) => format!("exit {code}"),
            Behaviour::RunsLong => "sleep 300".to_string(),
        };
        request(a, &names, &run)
    };
    let suite = Suite {
        driver,
        request: &make,
        first_job: base,
        timeout: Duration::from_secs(60),
        poll: Duration::from_millis(200),
        tick: None,
    };
    suite.run_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_passes_the_driver_conformance_suite() {
    let Some(env) = env() else { return };
    conformance(&rest_driver(&env), unique_job_base(1), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_passes_the_driver_conformance_suite() {
    let Some(env) = env() else { return };
    conformance(&cli_driver(&env), unique_job_base(2), 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eight_node_gang_runs_on_cumulos_nodes_with_its_ranks_gpus_and_checkpoint_dir() {
    let Some(env) = env() else { return };
    let driver = rest_driver(&env);
    let a = AttemptId { job: JobId(unique_job_base(3)), attempt: 2 };
    // Deliberately out of Slurm's order, so rank mapping by node name is tested.
    let nodes: Vec<String> = [47, 41, 42, 43, 44, 45, 46, 40].iter().map(|i| node(*i)).collect();
    let ckpt = log_dir(&env, &format!("ckpt-{}", a.job));
    let mut req = request(
        a,
        &nodes,
        "echo \"$CUMULO_NODE_RANK/$CUMULO_NUM_NODES $SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES ckpt=$CUMULO_CHECKPOINT_DIR job=$CUMULO_JOB_ID.$CUMULO_ATTEMPT\"; touch $CUMULO_CHECKPOINT_DIR/rank-$CUMULO_NODE_RANK",
    );
    req.job.kind = JobKind::Training;
    req.checkpoint_dir = Some(ckpt.clone());
    for n in &mut req.nodes {
        n.gpus = vec![0, 1];
    }
    let outcome = driver.launch(&req).await.unwrap();
    assert!(outcome.newly_started);
    let obs = wait_terminal(&driver, &[a], Duration::from_secs(60)).await.remove(0);
    assert!(obs.state.is_success(), "{}", obs.state);
    let ran_on: BTreeSet<&str> = obs.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(ran_on, nodes.iter().map(String::as_str).collect::<BTreeSet<_>>(), "slurm used Cumulo's nodes");
    for (rank, name) in nodes.iter().enumerate() {
        let chunk = driver.logs(a, rank as u32, 0).await.unwrap();
        let line = String::from_utf8(chunk.data).unwrap();
        let gpus = line.split("gpus=").nth(1).unwrap().split(' ').next().unwrap().to_string();
        assert_eq!(gpus.split(',').count(), 2, "two GPUs per node: {line}");
        assert_eq!(
            line.replace(&format!("gpus={gpus}"), "gpus=*"),
            format!("{rank}/8 {name} gpus=* ckpt={ckpt} job={}.2\n", a.job),
        );
        assert!(std::path::Path::new(&format!("{ckpt}/rank-{rank}")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_sandbox_tasks_all_run_once() {
    let Some(env) = env() else { return };
    let driver = Arc::new(rest_driver(&env));
    let base = unique_job_base(4);
    let ids: Vec<AttemptId> = (0..500).map(|i| AttemptId { job: JobId(base + i), attempt: 1 }).collect();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(32) {
        let driver = driver.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for a in chunk {
                let mut job = JobSpec::new("sandbox", "agents");
                job.kind = JobKind::Sandbox;
                job.run = Some("true".into());
                let mut req = LaunchRequest::new(a, job);
                req.nodes = vec![NodeAssignment::default()];
                assert!(driver.launch(&req).await.unwrap().newly_started);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let dispatched = start.elapsed();
    // Observed through this host's squeue, as a large REST deployment would.
    let mut config = Config::rest(RestEndpoint::new(&env.url, &env.user, &env.token));
    config.observe_with = ObserveWith::Squeue { slurm_conf: Some(env.conf.clone().into()) };
    let observer = SlurmDriver::new(config).unwrap();
    let obs = wait_terminal(&observer, &ids, Duration::from_secs(240)).await;
    println!("500 sandbox tasks: dispatched in {dispatched:?}, all finished after {:?}", start.elapsed());
    assert!(obs.iter().all(|o| o.state.is_success()), "{:?}", obs.iter().find(|o| !o.state.is_success()));
    let slurm_jobs = driver.jobs().await.unwrap();
    let names: Vec<&str> = slurm_jobs.iter().map(|j| j.name.as_str()).collect();
    for a in &ids {
        let name = cumulo_driver::engine_name(*a);
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} submitted once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_whose_run_fails_on_one_node_reports_its_exit_code() {
    let Some(env) = env() else { return };
    let driver = cli_driver(&env);
    let a = AttemptId { job: JobId(unique_job_base(5)), attempt: 1 };
    let nodes = vec![node(50), node(51)];
    driver.launch(&request(a, &nodes, "if [ $CUMULO_NODE_RANK = 1 ]; then echo boom >&2; exit 4; fi")).await.unwrap();
    let obs = wait_terminal(&driver, &[a], Duration::from_secs(60)).await.remove(0);
    assert!(matches!(obs.state, AttemptState::Exited { code: 4, .. }), "{}", obs.state);
    assert_eq!(String::from_utf8(driver.logs(a, 1, 0).await.unwrap().data).unwrap(), "boom\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_finds_its_attempts_by_name_and_does_not_resubmit() {
    let Some(env) = env() else { return };
    let a = AttemptId { job: JobId(unique_job_base(6)), attempt: 1 };
    let req = request(a, &[node(60)], "sleep 2");
    assert!(rest_driver(&env).launch(&req).await.unwrap().newly_started);
    let restarted = cli_driver(&env);
    assert!(!restarted.launch(&req).await.unwrap().newly_started);
    assert!(!restarted.observe(&[a]).await.unwrap()[0].state.is_terminal());
    restarted.cancel(a).await.unwrap();
    let obs = wait_terminal(&restarted, &[a], Duration::from_secs(30)).await.remove(0);
    assert_eq!(obs.state, AttemptState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_finds_64_nodes_with_8_gpus_each_and_their_blocks() {
    let Some(env) = env() else { return };
    for driver in [rest_driver(&env), cli_driver(&env)] {
        let cap = driver.discover().await.unwrap();
        assert_eq!(cap.nodes.len(), 64);
        assert_eq!(cap.total_gpus(), 512);
        let n = cap.nodes.iter().find(|n| n.name == "node009").unwrap();
        assert_eq!((n.gpu, n.gpus, n.vcpus, n.memory_mib), (Some(cumulo_driver::GpuModel::H100), 8, 32, 256_000));
        assert_eq!(n.block.as_deref(), Some("1"));
        assert_ne!(n.state, NodeState::Down);
    }
}

#[tokio::test]
async fn an_unreachable_slurmrestd_is_a_transient_error() {
    // No cluster needed: nothing listens on this loopback port.
    let driver = SlurmDriver::new(Config::rest(RestEndpoint::new("http://127.0.0.1:9", "u", "t"))).unwrap();
    let err = driver.observe(&[AttemptId { job: JobId(1), attempt: 1 }]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().starts_with("slurmrestd at http://127.0.0.1:9 unreachable"), "{err}");
}

#[test]
fn node_list_pinning_over_rest_is_refused_with_the_reason() {
    let mut config = Config::rest(RestEndpoint::new("http://127.0.0.1:9", "u", "t"));
    config.pinning = Pinning::NodeList;
    let err = SlurmDriver::new(config).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid slurm driver setting pinning `node-list`: expected features or none over slurmrestd (22.05 refuses required_nodes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_sharing_one_slurm_never_see_each_others_attempts() {
    let Some(env) = env() else { return };
    let deployment = |d: Option<&str>| {
        let mut config = Config::rest(RestEndpoint::new(&env.url, &env.user, &env.token));
        config.log_dir = Some(log_dir(&env, "logs"));
        config.deployment = d.map(str::to_string);
        SlurmDriver::new(config).unwrap()
    };
    let (one, two, bare) = (deployment(Some("0a1b2c3d")), deployment(Some("0a1b2c3e")), deployment(None));
    // The same attempt id in both deployments, as two fresh databases would number it.
    let a = AttemptId { job: JobId(unique_job_base(7)), attempt: 1 };
    let req = request(a, &[node(63)], "echo $CUMULO_JOB_ID.$CUMULO_ATTEMPT; sleep 300");
    assert!(one.launch(&req).await.unwrap().newly_started);
    assert_eq!(two.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown, "two saw one's attempt");
    assert_eq!(bare.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown, "no prefix saw one's attempt");
    assert!(two.launch(&req).await.unwrap().newly_started, "two adopted one's job instead of launching its own");
    let jobs = one.jobs().await.unwrap();
    let id_of = |name: String| {
        let ids: Vec<u64> = jobs.iter().filter(|j| j.name == name).map(|j| j.job_id).collect();
        assert_eq!(ids.len(), 1, "{name}: {ids:?}");
        ids[0]
    };
    let (id_one, id_two) = (id_of(one.job_name(a)), id_of(two.job_name(a)));
    assert_ne!(id_one, id_two);
    assert_eq!(one.job_name(a), format!("cumulo-0a1b2c3d-{a}"));
    // Cancelling in one deployment leaves the other's job alone.
    two.cancel(a).await.unwrap();
    assert_eq!(wait_terminal(&two, &[a], Duration::from_secs(30)).await[0].state, AttemptState::Cancelled);
    assert!(!one.observe(&[a]).await.unwrap()[0].state.is_terminal(), "cancelling two's attempt stopped one's");
    one.cancel(a).await.unwrap();
    assert_eq!(wait_terminal(&one, &[a], Duration::from_secs(30)).await[0].state, AttemptState::Cancelled);
}

#[test]
fn a_bad_deployment_is_refused_with_the_reason() {
    let mut config = Config::rest(RestEndpoint::new("http://127.0.0.1:9", "u", "t"));
    config.deployment = Some("Prod-1".into());
    let err = SlurmDriver::new(config).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid driver setting deployment `Prod-1`: expected 1 to 32 lowercase letters and digits"
    );
}

/// A JWT with the given `exp` (unsigned: the driver reads the claim, slurmrestd never sees it).
fn jwt_expiring_at(exp: i64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let payload = format!("{{\"exp\":{exp},\"iat\":0,\"sun\":\"cumulo\"}}");
    let mut out = String::new();
    for chunk in payload.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{out}.sig")
}

#[tokio::test]
async fn an_expired_token_says_so_and_a_rotated_token_file_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slurm.jwt");
    std::fs::write(&file, jwt_expiring_at(1_000_000_000)).unwrap();
    // No cluster needed for the expiry: the driver refuses before sending.
    let url = std::env::var("CUMULO_TEST_SLURM_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let user = std::env::var("CUMULO_TEST_SLURM_USER").unwrap_or_else(|_| "cumulo".into());
    let endpoint = RestEndpoint::new(&url, &user, "").with_token_file(&file);
    let driver = SlurmDriver::new(Config::rest(endpoint)).unwrap();
    let a = AttemptId { job: JobId(unique_job_base(8)), attempt: 1 };
    let err = driver.observe(&[a]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "slurmrestd at {url} unreachable: the JWT of user `{user}` expired at 2001-09-09T01:46:40Z: write a fresh \
             one (scontrol token username={user}) to {}",
            file.display()
        )
    );
    let Some(env) = env() else { return };
    let exp = cumulo_driver_slurm::rest::jwt_expiry(&env.token).expect("scontrol token gives a JWT with exp");
    assert!(exp > chrono::Utc::now(), "the test token expired at {exp}");
    std::fs::write(&file, format!("{}\n", env.token)).unwrap();
    assert_eq!(driver.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown, "the rotated token is used");
}

/// Gives node064 back the feature named after it however the test ends.
struct RestoreFeatures {
    conf: String,
}

impl RestoreFeatures {
    fn set(conf: &str, features: &str) {
        let status = std::process::Command::new("scontrol")
            .env("SLURM_CONF", conf)
            .args(["update", "NodeName=node064", &format!("AvailableFeatures={features}")])
            .arg(format!("ActiveFeatures={features}"))
            .status()
            .expect("run scontrol");
        assert!(status.success(), "scontrol update NodeName=node064 features {features}");
    }
}

impl Drop for RestoreFeatures {
    fn drop(&mut self) {
        RestoreFeatures::set(&self.conf, "node064,block-7");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_its_own_feature_is_not_pinned_over_rest() {
    let Some(env) = env() else { return };
    let _restore = RestoreFeatures { conf: env.conf.clone() };
    RestoreFeatures::set(&env.conf, "block-7");
    let driver = rest_driver(&env);
    let a = AttemptId { job: JobId(unique_job_base(9)), attempt: 1 };
    // Pinned with a constraint `node064`, Slurm would refuse the job (invalid feature).
    let outcome = driver.launch(&request(a, &[node(64)], "echo ran on $SLURMD_NODENAME")).await;
    assert!(outcome.as_ref().is_ok_and(|o| o.newly_started), "{outcome:?}");
    let obs = wait_terminal(&driver, &[a], Duration::from_secs(60)).await.remove(0);
    assert!(obs.state.is_success(), "{}", obs.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rank_ends_its_gang_and_the_exit_outlives_slurms_memory() {
    let Some(env) = env() else { return };
    let driver = rest_driver(&env);
    let base = unique_job_base(10);
    let a = AttemptId { job: JobId(base), attempt: 1 };
    let start = Instant::now();
    let run = "if [ $CUMULO_NODE_RANK = 1 ]; then sleep 1; exit 3; fi; sleep 600";
    driver.launch(&request(a, &[node(52), node(53)], run)).await.unwrap();
    let obs = wait_terminal(&driver, &[a], Duration::from_secs(60)).await.remove(0);
    let took = start.elapsed();
    assert!(matches!(obs.state, AttemptState::Exited { code: 3, .. }), "{}", obs.state);
    assert!(took < Duration::from_secs(30), "rank 0 kept the gang alive for {took:?}");
    println!("gang of 2 on slurm: rank 1 exited 3, attempt exited 3 after {took:?}");
    let exit_file = format!("{}/logs/{a}/exit", env.workdir);
    let recorded = std::fs::read_to_string(&exit_file).unwrap();
    assert!(recorded.starts_with("3 "), "{exit_file}: {recorded}");
    // An attempt Slurm no longer lists (past MinJobAge) whose batch step recorded its exit.
    let forgotten = AttemptId { job: JobId(base + 1), attempt: 1 };
    let dir = format!("{}/logs/{forgotten}", env.workdir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/exit"), &recorded).unwrap();
    let obs = driver.observe(&[forgotten]).await.unwrap().remove(0);
    assert!(matches!(obs.state, AttemptState::Exited { code: 3, .. }), "{}", obs.state);
    let again = driver.launch(&request(forgotten, &[node(52)], "true")).await.unwrap();
    assert!(!again.newly_started, "a finished attempt was submitted again");
}
