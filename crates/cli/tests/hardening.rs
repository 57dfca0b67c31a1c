//! Hardening through the real `cumulo server` binary on loopback (issue 12): an aborted upload,
//! hostile YAML, oversized fields, tenant detection, Idempotency-Key reuse and overload. Each
//! test starts its own server on a temporary data directory and a free port, speaks raw HTTP/1.1
//! to it, and checks afterwards that the process is still alive and answering.
//!
//! Memory is judged by the server's peak resident set (`VmHWM` in `/proc/PID/status`), time only by
//! generous deadlines (minutes), never by a tight timed assertion.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEET: &str = "
tenants: [{name: default}, {name: team-b}]
clusters:
  - name: sim-hardening
    provider: aws
    region: us-east-1
    capacity: on-demand
    price_per_node_hour: '1.00'
    driver: {kind: simulated, nodes: 2, gpus: 0, vcpus: 8, memory_gb: 64, start_delay_s: 0, default_duration_s: 1}
";

/// A generous bound on one answer: a request that takes longer than this has hung.
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);

struct Server {
    child: Child,
    port: u16,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The header block, lower-cased.
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn field(&self) -> String {
        self.json()["field"].as_str().unwrap_or_default().to_string()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
            .args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.path().join("fleet.yaml"))
            .env("CUMULO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start the cumulo binary");
        let mut server = Server { child, port, token: String::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let token_file = server._dir.path().join("data/admin.token");
            if let Ok(token) = std::fs::read_to_string(&token_file) {
                server.token = token.trim().to_string();
                if TcpStream::connect(("127.0.0.1", port)).is_ok() && server.get("/v1/whoami").status == 200 {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "the server did not come up; its log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics unless the process still runs and answers `/healthz`.
    fn assert_alive(&mut self, after: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the server died ({status}) after {after}; its log:\n{}", self.log());
        }
        let health = request(self.port, "GET", "/healthz", None, &[], b"");
        assert_eq!(health.status, 200, "the server must still answer after {after}: {health:?}");
    }

    /// Peak resident set of the server process so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    fn get(&self, path: &str) -> Answer {
        request(self.port, "GET", path, Some(&self.token), &[], b"")
    }

    fn post(&self, path: &str, token: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        request(self.port, "POST", path, Some(token), headers, body.as_bytes())
    }

    fn submit(&self, token: &str, key: Option<&str>, body: &str) -> Answer {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        self.post("/v1/jobs", token, &headers, body)
    }

    fn token_for(&self, tenant: &str, role: &str) -> String {
        let body = format!("{{\"tenant\": \"{tenant}\", \"role\": \"{role}\"}}");
        let answer = self.post("/v1/tokens", &self.token, &[("Content-Type", "application/json")], &body);
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.json()["token"].as_str().unwrap().to_string()
    }

    fn job_count(&self) -> usize {
        let answer = self.get("/v1/jobs?limit=1000");
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json()["jobs"].as_array().unwrap().len()
    }
}

fn head(method: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)], length: usize) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    text
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    stream.set_read_timeout(Some(ANSWER_DEADLINE)).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("no answer within {ANSWER_DEADLINE:?}: {e}"));
    let text = String::from_utf8_lossy(&raw).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        unchunk(body)
    } else {
        body.to_string()
    };
    Answer { status, headers: headers.to_ascii_lowercase(), body }
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

fn request(port: u16, method: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(head(method, path, token, headers, body.len()).as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_answer(&mut stream)
}

/// Closes with a TCP reset instead of a FIN (SO_LINGER with a zero timeout).
fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
    drop(stream);
}

#[test]
fn an_aborted_upload_does_not_kill_the_server() {
    let mut server = Server::start();
    for round in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let head = head("POST", "/v1/jobs", Some(&server.token), &[], 100_000);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[b'#'; 1024]).unwrap();
        std::thread::sleep(Duration::from_millis(20 + round * 5));
        reset(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    server.assert_alive("20 uploads reset mid-body");
    assert_eq!(server.submit(&server.token, None, "name: after\nrun: 'true'\n").status, 201);
}

#[test]
fn a_job_file_mentioning_tenant_stays_in_the_callers_tenant() {
    let server = Server::start();
    let member = server.token_for("team-b", "member");
    let answer = server.submit(&member, None, "name: mentions\nrun: echo my tenant is $CUMULO_TENANT\n");
    assert_eq!(answer.status, 201, "the word tenant in a script is no tenant field: {answer:?}");
    let id = answer.json()["id"].as_u64().unwrap();
    let job = server.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(job["spec"]["tenant"], "team-b", "a job file without a tenant field belongs to the caller's tenant");
    // An explicit tenant field still decides, and a member may not name another tenant.
    let other = server.submit(&member, None, "name: x\ntenant: default\nrun: 'true'\n");
    assert_eq!(other.status, 403, "{other:?}");
    let comment = server.submit(&member, None, "# tenant: default\nname: c\nrun: 'true'\n");
    assert_eq!(comment.status, 201, "a comment is no tenant field: {comment:?}");
}

/// The alias bomb of `crates/jobfile/tests/limits.rs`: ~1.8 KB, ~17 million nodes expanded.
fn alias_bomb() -> String {
    let leaf = vec!["x"; 300].join(",");
    let uses = vec!["*a"; 250].join(",");
    format!("name: bomb\nrun: 'true'\nx-a: &a [{leaf}]\nx-b: &b [{uses}]\nx-c: [*b, *b, *b, *b]\n")
}

#[test]
fn hostile_yaml_is_refused_in_bounded_memory() {
    let mut server = Server::start();
    let bomb = alias_bomb();
    let nested = format!("name: deep\nx-n: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&bomb, &bomb, &nested]
            .into_iter()
            .map(|body| scope.spawn(|| server.submit(&server.token, None, body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answer in &answers[..2] {
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(answer.body.contains("expands to more than 100000 nodes"), "{}", answer.body);
    }
    assert_eq!(answers[2].status, 400, "{:?}", answers[2]);
    assert!(
        answers[2].body.contains("nested deeper") || answers[2].body.contains("recursion limit"),
        "{}",
        answers[2].body
    );
    let peak = server.peak_rss();
    eprintln!("peak RSS after two alias bombs and a 200 KB nested body: {} MiB", peak >> 20);
    assert!(peak < 512 << 20, "the server's peak RSS reached {} MiB (limit 512 MiB)", peak >> 20);
    server.assert_alive("hostile YAML");
    assert_eq!(server.job_count(), 0, "nothing was stored");
}

#[test]
fn oversized_fields_are_refused_at_submit_naming_the_field() {
    let mut server = Server::start();
    let token = server.token.clone();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("name: e\nrun: 'true'\nenvs:\n  BIG: '{}'\n", "v".repeat(15 << 20)),
            "body",
            "over the limit of 1048576 bytes",
        ),
        (
            format!("name: e\nrun: 'true'\nenvs:\n  BIG: '{}'\n", "v".repeat(100 << 10)),
            "envs.BIG",
            "over the limit of 65536 characters",
        ),
        (
            format!("name: e\nrun: 'true'\nenvs:\n{}", (0..2_000).map(|i| format!("  V{i}: x\n")).collect::<String>()),
            "envs",
            "2000 variables is over the limit of 1000",
        ),
        (
            format!(
                "name: e\nrun: 'true'\nenvs:\n{}",
                (0..200_000).map(|i| format!("  V{i}: x\n")).collect::<String>()
            ),
            "body",
            "over the limit of 1048576 bytes",
        ),
        ("name: e\nrun: \"echo a\\0b\"\n".to_string(), "run", "contains a NUL byte"),
        (format!("name: {}\nrun: 'true'\n", "n".repeat(10 << 20)), "body", "over the limit of 1048576 bytes"),
        (
            format!("name: {}\nrun: 'true'\n", "n".repeat(300)),
            "name",
            "300 characters is over the limit of 200 characters",
        ),
    ];
    for (body, field, reason) in &cases {
        let answer = server.submit(&token, None, body);
        assert_eq!(answer.status, 400, "{field}: {}", answer.body);
        assert_eq!(answer.field(), *field, "{}", answer.body);
        assert!(answer.body.contains(reason), "{field}: expected `{reason}` in {}", answer.body);
    }
    server.assert_alive("oversized fields");
    assert_eq!(server.job_count(), 0, "nothing was stored");
}

#[test]
fn idempotency_keys_refuse_another_body_and_keep_batches_apart() {
    let server = Server::start();
    let token = server.token.clone();
    let a = "name: a\nrun: 'true'\n";
    let b = "name: b\nrun: 'true'\n";
    let first = server.submit(&token, Some("K"), a);
    assert_eq!(first.status, 201, "{first:?}");
    let id = first.json()["id"].clone();
    let retry = server.submit(&token, Some("K"), a);
    assert_eq!((retry.status, retry.json()["id"].clone()), (200, id.clone()), "a retry returns the first job");
    let reused = server.submit(&token, Some("K"), b);
    assert_eq!(reused.status, 422, "the same key with another body: {reused:?}");
    assert_eq!(reused.field(), "Idempotency-Key");
    assert!(reused.body.contains("was used before for a different request"), "{}", reused.body);

    let batch = |key: &str, body: &str| server.post("/v1/jobs:batch", &token, &[("Idempotency-Key", key)], body);
    let made = batch("K", "name: a\nrun: echo a\n---\nname: b\nrun: echo b\n");
    assert_eq!(made.status, 201, "a batch key lives apart from a single submit's: {made:?}");
    let batch_ids: Vec<u64> =
        made.json()["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_u64().unwrap()).collect();
    let single = server.submit(&token, Some("K#0"), a);
    assert_eq!(single.status, 201, "a single submit with key K#0 is no retry of batch K's job 0: {single:?}");
    assert!(!batch_ids.contains(&single.json()["id"].as_u64().unwrap()));
    let again = batch("K", "name: a\nrun: echo a\n---\nname: b\nrun: echo b\n");
    assert_eq!(again.status, 200, "{again:?}");
    let again_ids: Vec<u64> =
        again.json()["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_u64().unwrap()).collect();
    assert_eq!(again_ids, batch_ids, "a retried batch returns its jobs");
    let changed = batch("K", "name: a\nrun: echo a\n---\nname: c\nrun: echo c\n");
    assert_eq!((changed.status, changed.field()), (422, "jobs[1]".to_string()), "{changed:?}");
    let longer = batch("K", "name: a\nrun: echo a\n---\nname: b\nrun: echo b\n---\nname: c\nrun: echo c\n");
    assert_eq!(longer.status, 422, "{longer:?}");
    let shorter = batch("K", "name: a\n");
    assert_eq!(shorter.status, 422, "{shorter:?}");
    assert_eq!(server.job_count(), 4, "a, the batch's two jobs and K#0; nothing from the refused requests");
}

#[test]
fn overload_is_shed_with_retry_after_and_memory_stays_bounded() {
    let mut server = Server::start();
    // Deterministic: bodies of 15 MiB declared and not yet sent hold the 64 MiB body budget; the
    // fifth is shed at once, before its body is read.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(head("POST", "/v1/jobs:batch", Some(&server.token), &[], 15 << 20).as_bytes()).unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut fifth = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    fifth.write_all(head("POST", "/v1/jobs:batch", Some(&server.token), &[], 15 << 20).as_bytes()).unwrap();
    let shed = read_answer(&mut fifth);
    assert_eq!(shed.status, 503, "{shed:?}");
    assert!(shed.headers.contains("retry-after: 1"), "{}", shed.headers);
    assert!(shed.body.contains("in-flight limit"), "{}", shed.body);
    drop(held);

    // A storm: 32 clients at once, each sending two batches of 2,000 jobs (128,000 jobs offered).
    let batch: String = (0..2_000).map(|i| format!("---\nname: j{i}\nrun: 'true'\n")).collect();
    let statuses: Vec<(u16, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                scope.spawn(|| {
                    (0..2)
                        .map(|_| {
                            let answer = server.post("/v1/jobs:batch", &server.token, &[], &batch);
                            (answer.status, answer.headers.contains("retry-after:"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    let shed = statuses.iter().filter(|(s, _)| *s == 503).count();
    let peak = server.peak_rss();
    eprintln!("storm: {created} batches stored, {shed} shed with 503; peak RSS {} MiB", peak >> 20);
    for (status, retry_after) in &statuses {
        assert!(
            *status == 201 || (*status == 503 && *retry_after),
            "every answer is 201, or 503 with Retry-After: {status}"
        );
    }
    assert!(created > 0, "an overloaded server still does work");
    assert!(peak < 1 << 30, "peak RSS {} MiB must stay under 1 GiB", peak >> 20);
    server.assert_alive("the storm");
}
