//! The server in-process on a loopback port: first start makes an admin token file (mode 600), a
//! second start on the same data directory makes none, and a submitted job is placed and run on
//! a simulated cluster by the reconcile loop.

use std::time::Duration;

use cumulo_api::client::Client;
use cumulo_server::{FleetFile, Options, start};
use cumulo_types::JobState;

const FLEET: &str = "
tenants: [{name: default}, {name: research}]
clusters:
  - name: sim-h100
    provider: coreweave
    region: us-east-04
    capacity: on-demand
    price_per_node_hour: '49.24'
    driver: {kind: simulated, nodes: 2, gpu: H100, gpus: 8, vcpus: 128, memory_gb: 2048, start_delay_s: 0, default_duration_s: 1}
";

fn options(dir: &std::path::Path) -> Options {
    let mut options = Options::new(dir);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.fleet = FleetFile::parse(FLEET, "test fleet").unwrap();
    options.reconcile_interval = Duration::from_millis(100);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_writes_the_admin_token_and_jobs_run_on_a_simulated_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(options(dir.path())).await.unwrap();
    let token = server.new_admin_token.clone().expect("a first start creates an admin token");
    let file = std::fs::read_to_string(&server.admin_token_file).unwrap();
    assert_eq!(file.trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&server.admin_token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = Client::new(&server.url, Some(token.clone())).unwrap();
    assert_eq!(client.whoami().await.unwrap().role, cumulo_store::Role::Admin);
    let job = client
        .submit("name: gpu\ntenant: research\nresources: {accelerators: H100:8}\nrun: train\n", None)
        .await
        .unwrap();
    let mut state = JobState::Pending;
    for _ in 0..100 {
        state = client.job(job.id).await.unwrap().job.state;
        if state == JobState::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, JobState::Succeeded);
    let detail = client.job(job.id).await.unwrap();
    assert_eq!(detail.job.attempts.len(), 1);
    assert_eq!(detail.job.attempts[0].placement["cluster"], "sim-h100");
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cumulo_jobs{state=\"succeeded\"} 1"), "{metrics}");
    assert!(metrics.contains("cumulo_placements_total 1"), "{metrics}");
    server.shutdown();
    server.wait().await.unwrap();

    // A second start on the same store creates no new admin token; the old one still works.
    let again = start(options(dir.path())).await.unwrap();
    assert!(again.new_admin_token.is_none());
    let client = Client::new(&again.url, Some(token)).unwrap();
    assert_eq!(client.job(job.id).await.unwrap().job.state, JobState::Succeeded);
    again.shutdown();
    again.wait().await.unwrap();
}
