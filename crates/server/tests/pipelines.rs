//! SkyPilot pipelines and job groups end to end: the server in-process, a pipeline's two steps
//! run on the local driver (real processes) one after the other, a failed step cancels the next
//! with the reason, and the jobs of a job group are placed in one pass or not at all (on a
//! SIMULATED cluster).

use std::time::Duration;

use cumulo_api::client::Client;
use cumulo_server::{FleetFile, Options, start};
use cumulo_types::{JobId, JobState};

const FLEET: &str = "
tenants: [{name: default}]
clusters:
  - {name: here, provider: local, region: this-machine, capacity: on-demand, price_per_node_hour: '0', driver: {kind: local}}
  - name: sim-h100
    provider: coreweave
    region: us-east-04
    capacity: on-demand
    price_per_node_hour: '49.24'
    driver: {kind: simulated, nodes: 1, gpu: H100, gpus: 8, vcpus: 128, memory_gb: 2048, start_delay_s: 0, default_duration_s: 30}
";

async fn server(dir: &std::path::Path) -> (cumulo_server::Server, Client) {
    let mut options = Options::new(dir);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.fleet = FleetFile::parse(FLEET, "test fleet").unwrap();
    options.reconcile_interval = Duration::from_millis(100);
    let server = start(options).await.unwrap();
    let client = Client::new(&server.url, server.new_admin_token.clone()).unwrap();
    (server, client)
}

/// Waits until every job is in a final state (at most 30 s) and returns the states.
async fn finished(client: &Client, ids: &[JobId]) -> Vec<JobState> {
    for _ in 0..300 {
        let mut states = Vec::new();
        for id in ids {
            states.push(client.job(*id).await.unwrap().job.state);
        }
        if states.iter().all(|s| s.is_terminal()) {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("jobs {ids:?} did not finish in 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_its_steps_in_order_on_the_local_driver() {
    let dir = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    // Local jobs run as the unprivileged job user: the marks directory is theirs to write.
    std::fs::set_permissions(marks.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let (server, client) = server(dir.path()).await;
    let m = marks.path().display();
    // SkyPilot's pipeline form: a header holding only the name, then the steps.
    let pipeline = format!(
        "name: prep-then-train\n---\nname: prep\nresources: {{infra: local}}\nrun: sleep 1; date +%s%N > {m}/prep\n---\nname: train\nresources: {{infra: local}}\nrun: test -f {m}/prep && date +%s%N > {m}/train\n"
    );
    let jobs = client.submit_yaml_batch(&pipeline, Some("pipeline-1")).await.unwrap().jobs;
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 2, "the header is no job: {jobs:?}");
    let train = client.job(ids[1]).await.unwrap().job;
    assert_eq!(train.spec.after, vec![ids[0]], "train runs after prep, and the API shows it");

    assert_eq!(finished(&client, &ids).await, [JobState::Succeeded, JobState::Succeeded]);
    let read = |name: &str| std::fs::read_to_string(marks.path().join(name)).unwrap().trim().parse::<u128>().unwrap();
    assert!(read("train") > read("prep"), "train started only after prep had written its mark");
    let prep = client.job(ids[0]).await.unwrap().job;
    let train = client.job(ids[1]).await.unwrap().job;
    assert!(
        train.attempts[0].created_at >= prep.attempts[0].updated_at,
        "train's attempt was planned after prep's ended: {:?} vs {:?}",
        train.attempts[0].created_at,
        prep.attempts[0].updated_at
    );
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_cancels_the_next_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let pipeline = "name: broken\n---\nname: prep\nmax_attempts: 1\nresources: {infra: local}\nrun: exit 3\n---\nname: train\nresources: {infra: local}\nrun: echo never\n";
    let ids: Vec<JobId> = client.submit_yaml_batch(pipeline, None).await.unwrap().jobs.iter().map(|j| j.id).collect();
    assert_eq!(finished(&client, &ids).await, [JobState::Failed, JobState::Cancelled]);
    let train = client.job(ids[1]).await.unwrap();
    let reason = format!("job {}, which it runs after, failed", ids[0]);
    assert_eq!(train.job.pending_reason.as_deref(), Some(reason.as_str()), "the cancelled step says why");
    assert!(train.job.attempts.is_empty(), "train never ran");
    assert!(
        train.events.iter().any(|e| e.message == format!("cancelled while pending: {reason}")),
        "its history says why: {:?}",
        train.events
    );
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_a_group_are_placed_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    // Two jobs of 4 H100 each fit the one simulated 8-GPU node together: both placed in one pass.
    let group = "name: rl\nexecution: parallel\n---\nname: trainer\nresources: {accelerators: H100:4}\nrun: train\n---\nname: rollout\nresources: {accelerators: H100:4}\nrun: roll\n";
    let ids: Vec<JobId> =
        client.submit_yaml_batch(group, Some("g-1")).await.unwrap().jobs.iter().map(|j| j.id).collect();
    let mut records = Vec::new();
    for _ in 0..100 {
        records = Vec::new();
        for id in &ids {
            records.push(client.job(*id).await.unwrap().job);
        }
        if records.iter().all(|r| !r.attempts.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(records.iter().all(|r| r.attempts.len() == 1), "both placed: {records:#?}");
    let group_ids: Vec<Option<String>> = records.iter().map(|r| r.spec.group.clone()).collect();
    assert!(group_ids[0].as_deref().is_some_and(|g| g.starts_with("rl-")), "one id per submitted group: {group_ids:?}");
    assert_eq!(group_ids[0], group_ids[1], "both jobs share it");
    assert_eq!(records[0].attempts[0].created_at, records[1].attempts[0].created_at, "planned in the same pass");

    // A group with one job that cannot be placed now (the node's GPUs are busy, 8 asked): the
    // CPU-only job of the group waits with it, though it would fit on its own.
    let blocked = "name: blocked\nexecution: parallel\n---\nname: big\nresources: {accelerators: H100:8}\nrun: big\n---\nname: small\nresources: {infra: local}\nrun: echo small\n";
    let ids: Vec<JobId> = client.submit_yaml_batch(blocked, None).await.unwrap().jobs.iter().map(|j| j.id).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let small = client.job(ids[1]).await.unwrap().job;
    assert_eq!(small.state, JobState::Pending, "not placed without the rest of its group");
    assert!(small.attempts.is_empty());
    let reason = small.pending_reason.unwrap_or_default();
    assert!(
        reason.starts_with("job group blocked-") && reason.contains(&format!("and job {} of it waits: ", ids[0])),
        "the reason names the group and the member it waits with: {reason}"
    );
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_a_container_image_goes_only_where_images_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    // The local driver starts no container; the (simulated) cluster says it runs images.
    let anywhere = client
        .submit(
            "name: img\nresources: {accelerators: H100:1, image_id: 'docker:vllm/vllm-openai:v0.10.0'}\nrun: serve\n",
            None,
        )
        .await
        .unwrap();
    let local_only = client
        .submit(
            "name: img-local\nresources: {infra: local, image_id: 'docker:vllm/vllm-openai:v0.10.0'}\nrun: serve\n",
            None,
        )
        .await
        .unwrap();
    let mut placed = None;
    for _ in 0..100 {
        let job = client.job(anywhere.id).await.unwrap().job;
        if let Some(attempt) = job.attempts.first() {
            placed = Some(attempt.placement["cluster"].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = client.job(anywhere.id).await.unwrap().job.pending_reason;
    assert_eq!(
        placed,
        Some(serde_json::json!("sim-h100")),
        "the image job goes where images run, not to `here`: {why:?}"
    );
    // The second job may have come in after the pass that placed the first: wait for its own pass.
    let mut job = client.job(local_only.id).await.unwrap().job;
    for _ in 0..100 {
        if job.pending_reason.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = client.job(local_only.id).await.unwrap().job;
    }
    assert_eq!(job.state, JobState::Pending, "the only cluster it may use cannot run its image");
    let reason = job.pending_reason.unwrap_or_default();
    assert!(
        reason.contains(
            "needs container image `vllm/vllm-openai:v0.10.0` (resources.image_id), which cluster(s) here cannot run"
        ),
        "the pending reason names the field and the cluster: {reason}"
    );
    server.shutdown();
    server.wait().await.unwrap();
}
