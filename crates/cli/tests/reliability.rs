//! Reliability end to end with the real `cumulo` binary on loopback: `kill -9` of the server during
//! a submit storm and during scheduling, then a restart on the same data directory.
//!
//! What must hold afterwards: every job whose submit was answered 2xx is there, with its name, once;
//! a submit retried with its Idempotency-Key after the crash never makes a second job; and no
//! attempt was dispatched twice (counted in the simulated driver's dispatch log).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cumulo_api::client::Client;
use cumulo_api::wire::ListQuery;
use cumulo_types::{JobId, JobState};

const FLEET: &str = "
tenants: [{name: default}]
clusters:
  - name: sim-crash
    provider: aws
    region: us-east-1
    capacity: on-demand
    price_per_node_hour: '1.00'
    driver: {kind: simulated, nodes: 40, gpus: 0, vcpus: 8, memory_gb: 64, start_delay_s: 0, default_duration_s: 1}
";

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, port: u16) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
            .args(["server", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.join("fleet.yaml"))
            .env("CUMULO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start the cumulo binary");
        Server { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// `kill -9`: no shutdown, no flush.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn setup() -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    (dir, free_port())
}

async fn wait_ready(dir: &Path, url: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(token) = std::fs::read_to_string(dir.join("data/admin.token")) {
            let client = Client::new(url, Some(token.trim().to_string())).unwrap();
            if client.whoami().await.is_ok() {
                return client;
            }
        }
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the server did not come up; its log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn all_jobs(client: &Client) -> Vec<cumulo_store::JobRecord> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .list_jobs(&ListQuery {
                after: after.map(|a: JobId| a.to_string()),
                limit: Some("1000".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.jobs);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn job_file(name: &str) -> String {
    format!("name: {name}\nresources: {{cpus: 1}}\nrun: 'true'\n")
}

/// What the storm's clients saw: acknowledged jobs by name, and submits whose answer was lost.
#[derive(Default)]
struct Seen {
    acknowledged: BTreeMap<String, JobId>,
    unanswered: BTreeSet<String>,
}

/// Even workers send single jobs (key = name), odd ones batches of five (key `wW-I`).
fn is_single_worker_key(key: &str) -> bool {
    key[1..key.find('-').unwrap()].parse::<u32>().unwrap().is_multiple_of(2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn kill_9_during_a_submit_storm_loses_no_acknowledged_job_and_duplicates_none() {
    let (dir, port) = setup();
    runtime().block_on(async {
        let server = Server::start(dir.path(), port);
        let client = wait_ready(dir.path(), &server.url).await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..8u32 {
            let (client, seen, stop) = (client.clone(), seen.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || i >= 5_000 {
                        break;
                    }
                    // Half the workers send single jobs, half batches of 5; the name is the key.
                    if w.is_multiple_of(2) {
                        let name = format!("w{w}-{i}");
                        match client.submit(&job_file(&name), Some(&name)).await {
                            Ok(s) => drop(seen.lock().unwrap().acknowledged.insert(name, s.id)),
                            Err(_) => drop(seen.lock().unwrap().unanswered.insert(name)),
                        }
                    } else {
                        let names: Vec<String> = (0..5).map(|j| format!("w{w}-{i}-{j}")).collect();
                        let body = names.iter().map(|n| job_file(n)).collect::<Vec<_>>().join("---\n");
                        let key = format!("w{w}-{i}");
                        match client.submit_yaml_batch(&body, Some(&key)).await {
                            Ok(b) => {
                                let mut seen = seen.lock().unwrap();
                                for (n, s) in names.into_iter().zip(b.jobs) {
                                    seen.acknowledged.insert(n, s.id);
                                }
                            }
                            Err(_) => drop(seen.lock().unwrap().unanswered.insert(key)),
                        }
                    }
                }
            }));
        }
        // Let the storm build, then pull the plug in the middle of it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().acknowledged.len() < 300 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill_9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        let (acknowledged, unanswered) = {
            let seen = seen.lock().unwrap();
            (seen.acknowledged.clone(), seen.unanswered.clone())
        };
        assert!(acknowledged.len() >= 300, "the storm acknowledged only {} jobs", acknowledged.len());
        assert!(!unanswered.is_empty(), "the kill hit no submit in flight: the test proved nothing");

        let server = Server::start(dir.path(), port);
        let client = wait_ready(dir.path(), &server.url).await;
        // Every acknowledged job is there, under its id, with its name.
        for (name, id) in &acknowledged {
            let job = client.job(*id).await.unwrap_or_else(|e| panic!("acknowledged job {id} ({name}) lost: {e}"));
            assert_eq!(&job.job.spec.name, name);
        }
        // Some submits in flight at the kill were stored without an answer: their retry must not
        // make a second job.
        let before_retry: BTreeSet<String> = all_jobs(&client).await.into_iter().map(|j| j.spec.name).collect();
        let stored_unanswered = unanswered
            .iter()
            .filter(|k| before_retry.contains(k.as_str()) || before_retry.contains(&format!("{k}-0")))
            .count();
        // Submits whose answer the crash swallowed are retried with their keys: at most one job each.
        for key in &unanswered {
            let w: u32 = key[1..key.find('-').unwrap()].parse().unwrap();
            if w.is_multiple_of(2) {
                client.submit(&job_file(key), Some(key)).await.unwrap();
            } else {
                let i = &key[key.find('-').unwrap() + 1..];
                let names: Vec<String> = (0..5).map(|j| format!("w{w}-{i}-{j}")).collect();
                let body = names.iter().map(|n| job_file(n)).collect::<Vec<_>>().join("---\n");
                client.submit_yaml_batch(&body, Some(key)).await.unwrap();
            }
        }
        let jobs = all_jobs(&client).await;
        let mut by_name: BTreeMap<&str, u32> = BTreeMap::new();
        for job in &jobs {
            *by_name.entry(job.spec.name.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = by_name.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "jobs stored twice: {twice:?}");
        let expected = acknowledged.len()
            + unanswered.iter().map(|k| if is_single_worker_key(k) { 1 } else { 5 }).sum::<usize>();
        assert_eq!(jobs.len(), expected, "jobs neither acknowledged nor retried appeared");
        eprintln!(
            "submit storm: {} jobs acknowledged before kill -9, {} requests unanswered ({} of them stored anyway) and retried with their keys, {} jobs after restart, none twice",
            acknowledged.len(),
            unanswered.len(),
            stored_unanswered,
            jobs.len()
        );
    });
}

fn dispatch_log(dir: &Path) -> PathBuf {
    dir.join("data/dispatch/sim-crash.jsonl")
}

#[test]
fn kill_9_during_scheduling_dispatches_no_attempt_twice_and_every_job_finishes() {
    let (dir, port) = setup();
    runtime().block_on(async {
        let server = Server::start(dir.path(), port);
        let client = wait_ready(dir.path(), &server.url).await;
        // 600 one-vCPU jobs of one second on 320 simulated vCPUs: two waves of placing and
        // dispatching, with the server killed in the middle of them.
        let mut ids = Vec::new();
        for chunk in 0..12 {
            let body = (0..50).map(|i| job_file(&format!("s{chunk}-{i}"))).collect::<Vec<_>>().join("---\n");
            ids.extend(client.submit_yaml_batch(&body, None).await.unwrap().jobs.into_iter().map(|s| s.id));
        }
        let mut server = Some(server);
        let mut kills = 0;
        for delay_ms in [300u64, 500, 800] {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            server.take().unwrap().kill_9();
            kills += 1;
            let dispatched = cumulo_driver_sim::read_dispatch_log(&dispatch_log(dir.path())).unwrap().len();
            eprintln!("kill -9 #{kills}: {dispatched} attempts dispatched so far");
            server = Some(Server::start(dir.path(), port));
        }
        let url = server.as_ref().unwrap().url.clone();
        let client = wait_ready(dir.path(), &url).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        let jobs = loop {
            let jobs = all_jobs(&client).await;
            if jobs.iter().all(|j| j.state.is_terminal()) || Instant::now() > deadline {
                break jobs;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(jobs.len(), ids.len());
        let unfinished: Vec<_> =
            jobs.iter().filter(|j| j.state != JobState::Succeeded).map(|j| (j.id, j.state)).collect();
        assert!(unfinished.is_empty(), "jobs that did not succeed: {unfinished:?}");

        let dispatches = cumulo_driver_sim::read_dispatch_log(&dispatch_log(dir.path())).unwrap();
        let mut per_attempt: BTreeMap<String, u32> = BTreeMap::new();
        for d in &dispatches {
            *per_attempt.entry(d.attempt.to_string()).or_default() += 1;
        }
        let twice: Vec<_> = per_attempt.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "attempts dispatched twice: {twice:?}");
        // Every dispatched attempt is one the store knows, and every stored attempt that got past
        // `planned` was dispatched.
        let mut stored = BTreeSet::new();
        for id in &ids {
            for attempt in client.job(*id).await.unwrap().job.attempts {
                if attempt.state != cumulo_store::AttemptState::Planned {
                    stored.insert(attempt.id.to_string());
                }
            }
        }
        let dispatched: BTreeSet<String> = per_attempt.keys().cloned().collect();
        assert_eq!(dispatched, stored, "dispatch log and stored attempts disagree");
        eprintln!(
            "scheduling: {kills} kill -9s, {} jobs all succeeded, {} attempts dispatched, none twice",
            jobs.len(),
            dispatches.len()
        );
    });
}
