//! Tests of simulated clusters: the conformance suite on a manual clock, node loss, outages and the
//! dispatch log.

use std::time::Duration;

use cumulo_driver::conformance::{Behaviour, Suite};
use cumulo_driver::{
    AttemptId, AttemptState, Driver, GpuModel, JobId, JobSpec, LaunchRequest, NodeAssignment, NodeState,
};
use cumulo_driver_sim::{ENV_SIM_EXIT_CODE, SimClock, SimConfig, SimDriver, read_dispatch_log};

fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn attempt(job: u64, n: u32) -> AttemptId {
    AttemptId { job: JobId(job), attempt: n }
}

fn cluster(log: Option<std::path::PathBuf>) -> SimDriver {
    let mut config = SimConfig::uniform("aws-use1", 36, Some(GpuModel::GB200), 4, 144, 1_000_000);
    config.dispatch_log = log;
    SimDriver::open(config, SimClock::manual(t0())).unwrap()
}

fn request(a: AttemptId, nodes: &[&str], duration_s: u64) -> LaunchRequest {
    let mut job = JobSpec::new("t", "test");
    job.num_nodes = nodes.len() as u32;
    job.duration_s = Some(duration_s);
    let mut req = LaunchRequest::new(a, job);
    req.nodes = nodes.iter().map(|n| NodeAssignment::new(n, [0, 1, 2, 3])).collect();
    req
}

#[tokio::test]
async fn passes_the_driver_conformance_suite() {
    let driver = cluster(None);
    let make = |a: AttemptId, nodes: u32, b: Behaviour| {
        let names: Vec<String> = (1..=nodes).map(|i| format!("aws-use1-{i:04}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut req = request(a, &names, if b == Behaviour::RunsLong { 1_000_000 } else { 5 });
        if let Behaviour::Fails(code) = b {
            req.job.envs.insert(ENV_SIM_EXIT_CODE.into(), code.to_string());
        }
        req
    };
    let clock = driver.clock().clone();
    let tick = move || clock.advance(Duration::from_secs(1));
    let suite = Suite {
        driver: &driver,
        request: &make,
        first_job: 1,
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(1),
        tick: Some(&tick),
    };
    suite.run_all().await.unwrap();
}

#[tokio::test]
async fn an_attempt_follows_its_simulated_course() {
    let driver = cluster(None);
    let a = attempt(1, 1);
    driver.launch(&request(a, &["aws-use1-0001"], 10)).await.unwrap();
    let state = |d: &SimDriver| {
        let d = d.clone();
        async move { d.observe(&[a]).await.unwrap().remove(0).state }
    };
    assert_eq!(state(&driver).await, AttemptState::Pending);
    driver.clock().advance(Duration::from_secs(1));
    assert_eq!(state(&driver).await, AttemptState::Running { started_at: t0() + chrono::Duration::seconds(1) });
    driver.clock().advance(Duration::from_secs(10));
    assert_eq!(
        state(&driver).await,
        AttemptState::Exited { code: 0, finished_at: t0() + chrono::Duration::seconds(11) }
    );
}

#[tokio::test]
async fn a_lost_node_loses_its_attempts_and_refuses_new_ones() {
    let driver = cluster(None);
    let (on_lost, elsewhere) = (attempt(1, 1), attempt(2, 1));
    driver.launch(&request(on_lost, &["aws-use1-0001", "aws-use1-0002"], 100)).await.unwrap();
    driver.launch(&request(elsewhere, &["aws-use1-0003"], 100)).await.unwrap();
    driver.clock().advance(Duration::from_secs(5));
    driver.lose_node("aws-use1-0002");
    let obs = driver.observe(&[on_lost, elsewhere]).await.unwrap();
    assert_eq!(obs[0].state, AttemptState::Lost { reason: "simulated node aws-use1-0002 lost".into() });
    assert!(matches!(obs[1].state, AttemptState::Running { .. }));
    let lost_at = t0() + chrono::Duration::seconds(5);
    assert!(obs[0].nodes.iter().all(|n| n.finished_at == Some(lost_at)), "stopped when lost, not at its planned end");
    let cap = driver.discover().await.unwrap();
    assert!(cap.simulated);
    assert_eq!(cap.nodes.iter().filter(|n| n.state == NodeState::Down).count(), 1);
    let err = driver.launch(&request(attempt(3, 1), &["aws-use1-0002"], 1)).await.unwrap_err();
    assert!(
        err.to_string().starts_with("simulated refused attempt 3.1: simulated node aws-use1-0002 lost at"),
        "{err}"
    );
    driver.restore_node("aws-use1-0002");
    assert!(driver.launch(&request(attempt(3, 1), &["aws-use1-0002"], 1)).await.unwrap().newly_started);
}

#[tokio::test]
async fn an_unreachable_cluster_fails_every_call_transiently() {
    let driver = cluster(None);
    driver.set_unreachable(true);
    let err = driver.observe(&[attempt(1, 1)]).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.to_string(), "simulated at aws-use1 unreachable: simulated outage");
    assert!(driver.launch(&request(attempt(1, 1), &["aws-use1-0001"], 1)).await.is_err());
    driver.set_unreachable(false);
    assert_eq!(driver.observe(&[attempt(1, 1)]).await.unwrap()[0].state, AttemptState::Unknown);
}

#[tokio::test]
async fn unknown_nodes_and_bad_exit_codes_are_refused() {
    let driver = cluster(None);
    let err = driver.launch(&request(attempt(1, 1), &["gcp-0001"], 1)).await.unwrap_err();
    assert_eq!(err.to_string(), "simulated refused attempt 1.1: no simulated node `gcp-0001` in cluster aws-use1");
    let mut req = request(attempt(2, 1), &["aws-use1-0001"], 1);
    req.job.envs.insert(ENV_SIM_EXIT_CODE.into(), "boom".into());
    let err = driver.launch(&req).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid launch request for attempt 2.1: envs.SIM_EXIT_CODE `boom`: expected an integer exit code"
    );
}

#[tokio::test]
async fn the_dispatch_log_counts_each_attempt_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dispatch.jsonl");
    let a = attempt(7, 1);
    let first = cluster(Some(log.clone()));
    first.launch(&request(a, &["aws-use1-0001"], 30)).await.unwrap();
    first.launch(&request(a, &["aws-use1-0001"], 30)).await.unwrap();
    assert_eq!(first.dispatches(), 1);
    drop(first);
    // A restarted control plane relaunches the same attempt id: recognised, not dispatched again.
    let second = cluster(Some(log.clone()));
    assert!(!second.launch(&request(a, &["aws-use1-0001"], 30)).await.unwrap().newly_started);
    second.launch(&request(attempt(8, 1), &["aws-use1-0002"], 30)).await.unwrap();
    let records = read_dispatch_log(&log).unwrap();
    let ids: Vec<AttemptId> = records.iter().map(|r| r.attempt).collect();
    assert_eq!(ids, [a, attempt(8, 1)]);
    assert_eq!(records[0].nodes, ["aws-use1-0001"]);
    second.clock().advance(Duration::from_secs(31));
    assert!(second.observe(&[a]).await.unwrap()[0].state.is_success(), "reloaded attempts keep their course");
}

#[test]
fn nvl72_racks_group_eighteen_nodes_per_nvlink_domain() {
    let config = SimConfig::uniform("aws", 36, Some(GpuModel::GB200), 4, 144, 1);
    assert_eq!(config.nodes[17].nvlink_domain.as_deref(), Some("aws-nvl-0"));
    assert_eq!(config.nodes[18].nvlink_domain.as_deref(), Some("aws-nvl-1"));
    assert_eq!(config.nodes[0].labels.get("simulated").map(String::as_str), Some("true"));
    let h100 = SimConfig::uniform("cw", 2, Some(GpuModel::H100), 8, 96, 1);
    assert_ne!(h100.nodes[0].nvlink_domain, h100.nodes[1].nvlink_domain);
}

#[tokio::test]
async fn logs_say_simulated() {
    let driver = cluster(None);
    let a = attempt(1, 1);
    driver.launch(&request(a, &["aws-use1-0001"], 1)).await.unwrap();
    let chunk = driver.logs(a, 0, 0).await.unwrap();
    assert!(String::from_utf8(chunk.data).unwrap().starts_with("simulated attempt 1.1 rank 0 on aws-use1-0001"));
    assert!(!chunk.complete);
    assert_eq!(driver.capabilities().kind, "simulated");
}

#[tokio::test]
async fn durations_run_scaled_and_services_run_until_cancelled() {
    let mut config = SimConfig::uniform("demo", 4, Some(GpuModel::H100), 8, 96, 1_000_000);
    config.time_scale = 3600;
    let driver = SimDriver::open(config, SimClock::manual(t0())).unwrap();
    let job = |kind: cumulo_driver::JobKind, duration_s: Option<u64>| {
        let mut job = JobSpec::new("j", "t");
        job.kind = kind;
        job.duration_s = duration_s;
        job
    };
    use cumulo_driver::JobKind::{Batch, Inference, Training};
    // (kind, duration, seconds on the simulated cluster, why)
    for (kind, duration, run_s, why) in [
        (Training, Some(14 * 86_400), 336, "14 days at an hour a second"),
        (Batch, Some(600), 1, "ten minutes rounds up to one second"),
        (Batch, None, 1, "the default minute, scaled"),
        (Inference, Some(7200), 2, "a service with a duration ends then"),
        (Inference, None, 100 * 365 * 86_400, "a service without one runs until cancelled"),
    ] {
        assert_eq!(driver.run_time_s(&job(kind, duration)), run_s, "{why}");
    }
    let a = attempt(1, 1);
    let mut request = LaunchRequest::new(a, job(Training, Some(14 * 86_400)));
    request.nodes = vec![NodeAssignment::new("demo-0001", [0])];
    driver.launch(&request).await.unwrap();
    driver.clock().advance(Duration::from_secs(1 + 335));
    assert!(matches!(driver.observe(&[a]).await.unwrap()[0].state, AttemptState::Running { .. }), "not yet");
    driver.clock().advance(Duration::from_secs(1));
    assert!(matches!(driver.observe(&[a]).await.unwrap()[0].state, AttemptState::Exited { code: 0, .. }), "done");
}
