//! Invariant 3 under `kill -9`: a child process submits in a loop and prints each id once its submit
//! returned; the parent kills it with SIGKILL mid-storm, reopens the file and checks that every
//! acknowledged job is there, and that resubmitting every key creates nothing twice.
//!
//! The child is this test binary again, running `storm` with `CUMULO_KILL_TEST_DB` set.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cumulo_store::{NewJob, Store};
use cumulo_store_sqlite::{Options, SqliteStore};
use cumulo_types::{JobId, JobSpec};

const CHILD_ENV: &str = "CUMULO_KILL_TEST_DB";
const BATCH: usize = 5;
const TASKS: usize = 8;

fn job(key: &str) -> NewJob {
    NewJob { spec: JobSpec::new(key, "storm"), idempotency_key: Some(key.to_string()) }
}

/// Submits from `TASKS` concurrent tasks, printing `ack KEY ID` for each answered job, until
/// `limit` batches per task (or forever when `None`).
async fn storm(store: Arc<dyn Store>, limit: Option<usize>) -> usize {
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            let mut round = 0;
            while limit.is_none_or(|l| round < l) {
                let keys: Vec<String> = (0..BATCH).map(|i| format!("t{task}-r{round}-{i}")).collect();
                let answers = store.submit(keys.iter().map(|k| job(k)).collect()).await.expect("submit");
                for (key, answer) in keys.iter().zip(answers) {
                    println!("ack {key} {}", answer.id);
                    acked += 1;
                }
                round += 1;
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.expect("storm task");
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_child_or_short_storm() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let store = SqliteStore::open(Options::new(path)).await.expect("child opens the store");
        storm(Arc::new(store), None).await;
        unreachable!("the storm runs until killed");
    }
    // Run normally: a short storm in-process, every answer stored.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(Options::new(dir.path().join("s.db"))).await.unwrap());
    let acked = storm(store.clone(), Some(4)).await;
    assert_eq!(acked, TASKS * 4 * BATCH);
    let counts = store.job_counts_by_state().await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), acked as u64);
}

/// Kills the child even when an assertion fails first, so no storm outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submits_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storm.db");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "storm_child_or_short_storm", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the storm child"),
    );
    let mut acked: Vec<(String, JobId)> = Vec::new();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    while acked.len() < 2000 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("ack ") {
            let (key, id) = rest.split_once(' ').expect("ack KEY ID");
            acked.push((key.to_string(), JobId(id.parse().expect("job id"))));
        }
    }
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().unwrap();
    assert!(acked.len() >= 2000, "the child acknowledged only {} submits before it stopped", acked.len());

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(Options::new(&path)).await.expect("reopen after kill"));
    for (key, id) in &acked {
        let job = store.get_job(*id).await.unwrap_or_else(|e| panic!("acknowledged job {id} ({key}) lost: {e}"));
        assert_eq!(&job.spec.name, key);
    }
    // Retrying every acknowledged key after the crash finds the stored job and creates nothing.
    let retried = store.submit(acked.iter().map(|(key, _)| job(key)).collect()).await.unwrap();
    for ((key, id), answer) in acked.iter().zip(retried) {
        assert_eq!((answer.id, answer.created), (*id, false), "retry of {key}");
    }
    println!("kill -9 after {} acknowledged submits: all present, none duplicated", acked.len());
}
