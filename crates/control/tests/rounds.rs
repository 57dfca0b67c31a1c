//! Heterogeneity rounds in the live loop, with real processes: two local clusters on this machine
//! (a fake `nvidia-smi` each: one K80 box, one V100 box). A training job that states
//! `speedups: {V100: 3.0, K80: 1.0}` starts on the K80 while the V100 is busy; at the first round
//! after the V100 frees, its attempt gets SIGTERM (its script traps it and saves a marker within
//! the grace period), is recorded preempted with the move's reason, and the job is placed again on
//! the V100 only, where it resumes from the marker.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cumulo_control::{Cluster, ClusterInfo, Controller, Options, Rounds, StoredPlacement, open_store};
use cumulo_driver_local::{Config, JobUser, LocalDriver};
use cumulo_store::{AttemptState, JobRecord, NewJob, Store};
use cumulo_types::{CapacityKind, JobId, JobState, Money};

/// A local cluster whose one GPU is `gpu` (as `nvidia-smi` names it), stopping jobs with SIGTERM
/// and SIGKILL 3 s later.
fn local_cluster(dir: &Path, name: &str, gpu: &str, dollars_per_hour: f64) -> Cluster {
    let smi = dir.join(format!("nvidia-smi-{name}"));
    std::fs::write(&smi, format!("#!/bin/sh\nprintf '0, {gpu}, 16384, GPU-{name}\\n'\n")).unwrap();
    std::process::Command::new("chmod").args(["+x", smi.to_str().unwrap()]).status().unwrap();
    let mut config = Config::new(dir.join(name));
    config.nvidia_smi = smi;
    config.kill_grace = Duration::from_secs(3);
    config.job_user = JobUser::Server;
    config.work_root = Some(dir.join("work"));
    let info = ClusterInfo::new(
        name,
        "local",
        name,
        CapacityKind::OnDemand,
        Money::from_dollars_f64(dollars_per_hour).unwrap(),
    );
    Cluster { info, driver: Arc::new(LocalDriver::open(config).unwrap()) }
}

async fn submit(store: &Arc<dyn Store>, yaml: &str) -> JobId {
    let spec = cumulo_jobfile::parse_str(yaml, "job.yaml").unwrap();
    store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id
}

fn cluster_of(job: &JobRecord, attempt: usize) -> String {
    let placement: StoredPlacement = serde_json::from_value(job.attempts[attempt].placement.clone()).unwrap();
    placement.cluster
}

/// Runs passes until `done` holds for the job (or 30 s pass); returns the job.
async fn run_until(
    controller: &Controller,
    store: &Arc<dyn Store>,
    job: JobId,
    done: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    for _ in 0..150 {
        controller.reconcile_once().await.unwrap();
        let record = store.get_job(job).await.unwrap();
        if done(&record) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {job} did not get there in 30 s: {:#?}", store.get_job(job).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_moves_to_the_faster_gpu_at_a_round_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path().join("cumulo.db").to_str().unwrap()).await.unwrap();
    // The V100 box costs more: the ordinary rule alone would never move the job there.
    let clusters = vec![
        local_cluster(dir.path(), "k80-box", "Tesla K80", 1.0),
        local_cluster(dir.path(), "v100-box", "Tesla V100-SXM2-16GB", 3.0),
    ];
    let mut options = Options::new(store.clone(), clusters);
    options.rounds = Rounds { every: Duration::from_millis(1), min_gain: 1.3, migration_s: 5 };
    let controller = Controller::new(options);

    let blocker = submit(&store, "name: blocker\nresources:\n  accelerators: V100:1\nrun: sleep 3\n").await;
    let blocker_running = run_until(&controller, &store, blocker, |j| j.state == JobState::Running).await;
    assert_eq!(cluster_of(&blocker_running, 0), "v100-box");

    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    let ckpt_dir = ckpt.display();
    let mover = submit(
        &store,
        &format!(
            r#"name: mover
kind: training
checkpoint: {{dir: {ckpt_dir}}}
resources:
  accelerators: [V100:1, K80:1]
speedups: {{V100: 3.0, K80: 1.0}}
run: |
  if [ -f {ckpt_dir}/saved ]; then echo resumed >> {ckpt_dir}/log; exit 0; fi
  trap 'sleep 0.5; echo saved-after-sigterm > {ckpt_dir}/saved; exit 0' TERM
  echo started >> {ckpt_dir}/log
  while true; do sleep 0.1; done
"#
        ),
    )
    .await;
    let on_k80 = run_until(&controller, &store, mover, |j| j.state == JobState::Running).await;
    assert_eq!(cluster_of(&on_k80, 0), "k80-box", "the V100 is busy: the job starts on the K80");

    let done = run_until(&controller, &store, mover, |j| j.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    assert_eq!(done.attempts.len(), 2, "one move: {done:#?}");
    let first = &done.attempts[0];
    assert_eq!(first.state, AttemptState::Preempted);
    assert_eq!(first.message.as_deref(), Some("stopped to move from K80 to V100 (heterogeneity round)"));
    assert_eq!(cluster_of(&done, 1), "v100-box", "placed again on the faster model only");
    let blocker_done = store.get_job(blocker).await.unwrap();
    assert_eq!(blocker_done.state, JobState::Succeeded);
    assert!(
        done.attempts[1].created_at >= blocker_done.updated_at,
        "the move waited for the V100 to free: {blocker_done:#?} {done:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(ckpt.join("saved")).unwrap(),
        "saved-after-sigterm\n",
        "the job's TERM trap ran to its end within the grace period"
    );
    assert_eq!(std::fs::read_to_string(ckpt.join("log")).unwrap(), "started\nresumed\n");
    let events = store.job_events(mover).await.unwrap();
    let moved = events.iter().find(|e| e.kind == "attempt_preempting").expect("a preempting event");
    assert_eq!(
        moved.message,
        format!(
            "attempt {} moves from K80 to V100 at a heterogeneity round: 3.00x faster there (a move needs 1.30x); \
             stated migration cost 5 s (a checkpoint after SIGTERM, within the driver's grace before SIGKILL, and a \
             restart); stopping it",
            first.id
        )
    );
}
