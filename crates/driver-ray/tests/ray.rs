//! End-to-end tests against a real Ray head (`scripts/ci-ray.sh` starts one and runs them; by hand,
//! `scripts/dev-ray.sh start` and `CUMULO_TEST_RAY_URL` from its env file); print "skipping: ..." when absent.

use std::time::Duration;

use cumulo_driver::conformance::{Behaviour, Suite};
use cumulo_driver::{AttemptId, AttemptState, Driver, JobId, JobSpec, LaunchRequest};
use cumulo_driver_ray::RayDriver;

fn url() -> Option<String> {
    let url = std::env::var("CUMULO_TEST_RAY_URL").ok().filter(|v| !v.is_empty());
    if url.is_none() {
        println!("skipping: CUMULO_TEST_RAY_URL not set (run scripts/dev-ray.sh start and source its env file)");
    }
    url
}

fn base(slot: u64) -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    (ms % 1_000_000_000) * 1000 + slot * 100_000_000_000_000
}

fn request(a: AttemptId, run: &str) -> LaunchRequest {
    let mut job = JobSpec::new("ray-e2e", "test");
    job.run = Some(run.to_string());
    LaunchRequest::new(a, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_driver_conformance_suite() {
    let Some(url) = url() else { return };
    let driver = RayDriver::new(&url).unwrap();
    let make = |a: AttemptId, nodes: u32, b: Behaviour| {
        let run = match b {
            Behaviour::Succeeds => "echo ok".to_string(),
            Behaviour::Fails(code) => format!("exit {code}"),
            Behaviour::RunsLong => "sleep 300".to_string(),
        };
        let mut req = request(a, &run);
        req.job.num_nodes = nodes;
        req.nodes = (0..nodes).map(|i| cumulo_driver::NodeAssignment::new(&format!("ray-{i}"), [])).collect();
        req
    };
    let suite = Suite {
        driver: &driver,
        request: &make,
        first_job: base(1),
        timeout: Duration::from_secs(90),
        poll: Duration::from_millis(300),
        tick: None,
    };
    suite.run_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entrypoint_sees_the_cumulo_environment_and_logs_stream() {
    let Some(url) = url() else { return };
    let driver = RayDriver::new(&url).unwrap();
    let a = AttemptId { job: JobId(base(2)), attempt: 3 };
    let mut req =
        request(a, "echo \"$CUMULO_JOB_ID.$CUMULO_ATTEMPT rank=$CUMULO_NODE_RANK ckpt=$CUMULO_CHECKPOINT_DIR\"");
    req.checkpoint_dir = Some("/tmp/ckpt-ray".into());
    assert!(driver.launch(&req).await.unwrap().newly_started);
    let start = std::time::Instant::now();
    loop {
        let obs = driver.observe(&[a]).await.unwrap().remove(0);
        if obs.state.is_terminal() {
            assert!(obs.state.is_success(), "{}", obs.state);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "not finished: {}", obs.state);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let chunk = driver.logs(a, 0, 0).await.unwrap();
    let text = String::from_utf8(chunk.data).unwrap();
    assert!(text.contains(&format!("{}.3 rank=0 ckpt=/tmp/ckpt-ray", a.job)), "{text}");
    assert!(chunk.complete);
    let cap = driver.discover().await.unwrap();
    assert_eq!(cap.total_gpus(), 8, "dev-ray.sh starts the head with 8 (virtual) GPUs");
}

#[tokio::test]
async fn an_unreachable_ray_head_is_a_transient_error() {
    let driver = RayDriver::new("http://127.0.0.1:9").unwrap();
    let err = driver.observe(&[AttemptId { job: JobId(1), attempt: 1 }]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_sharing_one_ray_never_see_each_others_attempts() {
    let Some(url) = url() else { return };
    let deployment = |d: &str| RayDriver::new(&url).unwrap().with_deployment(Some(d)).unwrap();
    let (one, two, bare) = (deployment("0a1b2c3d"), deployment("0a1b2c3e"), RayDriver::new(&url).unwrap());
    // The same attempt id in both deployments, as two fresh databases would number it.
    let a = AttemptId { job: JobId(base(3)), attempt: 1 };
    assert!(one.launch(&request(a, "sleep 300")).await.unwrap().newly_started);
    assert_eq!(two.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown, "two saw one's attempt");
    assert_eq!(bare.observe(&[a]).await.unwrap()[0].state, AttemptState::Unknown, "no prefix saw one's attempt");
    assert!(two.launch(&request(a, "echo two")).await.unwrap().newly_started, "two adopted one's job");
    let start = std::time::Instant::now();
    loop {
        let obs = two.observe(&[a]).await.unwrap().remove(0);
        if obs.state.is_terminal() {
            assert!(obs.state.is_success(), "{}", obs.state);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "not finished: {}", obs.state);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!one.observe(&[a]).await.unwrap()[0].state.is_terminal(), "two's end ended one's attempt");
    one.cancel(a).await.unwrap();
}

#[test]
fn a_bad_deployment_is_refused_with_the_reason() {
    let err = RayDriver::new("http://127.0.0.1:9").unwrap().with_deployment(Some("a b")).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid driver setting deployment `a b`: expected 1 to 32 lowercase letters and digits"
    );
}
