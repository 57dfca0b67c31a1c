//! Leadership with the real `cumulo` binary (issue 12, finding 5): two servers that are both PID 1
//! (each in its own PID namespace, as in two containers) share one PostgreSQL database; exactly one
//! of them leads. With the PID as the lease holder's name both renewed "their" lease and led.
//!
//! Needs `CUMULO_TEST_POSTGRES_URL` and `unshare --pid` (root or user namespaces); without either
//! the test says so and returns.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEET: &str = "
tenants: [{name: default}]
clusters:
  - name: sim-lead
    provider: aws
    region: us-east-1
    capacity: on-demand
    price_per_node_hour: '1.00'
    driver: {kind: simulated, nodes: 2, gpus: 0, vcpus: 8, memory_gb: 64, start_delay_s: 0, default_duration_s: 3600}
";

/// A server run as PID 1 of a fresh PID namespace; `--kill-child` takes it down with `unshare`.
struct Pid1Server {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Pid1Server {
    fn start(dir: &Path, name: &str, db: &str) -> Pid1Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child"])
            .arg(env!("CARGO_BIN_EXE_cumulo"))
            .args(["server", "--data-dir"])
            .arg(dir.join(name))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.join("fleet.yaml"))
            .args(["--db", db])
            .env("CUMULO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot run unshare");
        Pid1Server { child, url: format!("http://127.0.0.1:{port}"), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until it answers `/healthz`.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Command::new("curl")
            .args(["-sf", &format!("{}/healthz", self.url)])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success())
        {
            assert!(Instant::now() < deadline, "the server did not come up; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Scheduling passes this process ran as leader: the plans made (the count of the
    /// decision-latency histogram) and the passes that kept the last plan.
    fn passes(&self, token: &str) -> u64 {
        let out = Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {token}"), &format!("{}/metrics", self.url)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let counter = |name: &str| -> u64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
                .trim()
                .parse()
                .unwrap()
        };
        counter("cumulo_decision_latency_seconds_count ") + counter("cumulo_plans_kept_total ")
    }
}

impl Drop for Pid1Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `unshare --pid --fork` runs its command as PID 1 here.
fn unshare_makes_pid_1() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sh", "-c", "echo $$"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1")
}

#[test]
fn two_servers_that_are_both_pid_1_do_not_both_lead() {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: CUMULO_TEST_POSTGRES_URL is not set; the PID-1 leadership test did not run");
        return;
    };
    if !unshare_makes_pid_1() {
        eprintln!("SKIPPED: `unshare --pid --fork` is not permitted here; the PID-1 leadership test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    // A fresh schema, made and migrated once; both servers reach it through `search_path`.
    let schema = format!("pid1_{}_{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let options = cumulo_store_postgres::Options {
            schema: Some(schema.clone()),
            ..cumulo_store_postgres::Options::new(url.clone())
        };
        cumulo_store_postgres::PostgresStore::open(options).await.expect("cannot make the test schema").close().await;
    });
    let separator = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{separator}options[search_path]={schema}");

    let a = Pid1Server::start(dir.path(), "a", &db);
    a.wait_ready();
    let token =
        std::fs::read_to_string(dir.path().join("a/admin.token")).expect("the first server writes the admin token");
    let token = token.trim();
    let b = Pid1Server::start(dir.path(), "b", &db);
    b.wait_ready();
    // Passes run every 500 ms: after 4 s the leader has run several, the other none since it started.
    let (a0, b0) = (a.passes(token), b.passes(token));
    std::thread::sleep(Duration::from_secs(4));
    let (a1, b1) = (a.passes(token), b.passes(token));
    assert!(a1 > a0, "the first server should keep leading: passes {a0} -> {a1}");
    assert_eq!(b1, b0, "the second server led too ({b0} -> {b1} passes) while the first held the lease");
    assert_eq!(b1, 0, "the second server never led");
}
