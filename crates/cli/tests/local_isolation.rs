//! Local jobs against the real `cumulo server` (issue 12, finding 2): a member's job tries what the
//! attack did (read `admin.token`, write `cumulo.db`, read its parent's environment and the
//! server's `CUMULO_DB`, run as root, work in the data directory, leave a `setsid` process behind)
//! and every try fails; a job of one tenant tries to read another tenant's job's environment from
//! `/proc` and fails.
//!
//! Needs root (the server then runs the tenant's jobs as the unprivileged `cumulo-job-default`);
//! otherwise the test says so and returns.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEET: &str = "
tenants: [{name: default}, {name: other}]
clusters:
  - name: here
    provider: local
    region: local
    capacity: on-demand
    price_per_node_hour: '0'
    driver: {kind: local}
";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The hostile job: one line per try, upper case when it got through.
fn hostile_job(data: &Path) -> String {
    let d = data.display();
    let run = [
        format!("cat {d}/admin.token >/dev/null 2>&1 && echo READ-TOKEN || echo no-token"),
        format!("[ -w {d}/cumulo.db ] && echo WRITE-DB || echo no-db"),
        "tr '\\\\0' '\\\\n' 2>/dev/null </proc/$PPID/environ >/dev/null && echo READ-PARENT-ENV || echo no-parent-env"
            .into(),
        "[ -n \\\"$CUMULO_DB\\\" ] && echo SAW-CUMULO-DB || echo no-cumulo-db".into(),
        "[ \\\"$(id -u)\\\" = 0 ] && echo ROOT || echo not-root".into(),
        format!("case \\\"$PWD\\\" in {d}*) echo IN-DATA-DIR ;; *) echo outside ;; esac"),
        "setsid bash -c 'echo leftover $$; exec sleep 300' &".into(),
        "sleep 0.3".into(),
    ];
    format!("name: hostile\nresources: {{cpus: 1}}\nrun: \"{}\"\n", run.join("\\n"))
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--fail-with-body"]).args(args).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `cumulo server` over a fresh data directory, with its admin token.
struct Running {
    _server: Server,
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    url: String,
    admin: String,
}

/// Starts the server as root would be started in production; `None` (saying why) when this
/// process is not root and the server could not switch users.
fn start_server() -> Option<Running> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: not root, so the server cannot run jobs as another user; the isolation test did not run");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_cumulo"))
            .args(["server", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.path().join("fleet.yaml"))
            // The server's own database setting, which a job must not see.
            .env("CUMULO_DB", data.join("cumulo.db"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        if let Ok(token) = std::fs::read_to_string(data.join("admin.token"))
            && !curl(&["-H", &format!("Authorization: Bearer {}", token.trim()), &format!("{url}/v1/whoami")])
                .is_empty()
        {
            break token.trim().to_string();
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the server did not come up:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    Some(Running { _server: server, dir, data, url, admin })
}

impl Running {
    /// The `Authorization` header of a new member token of `tenant`.
    fn member_of(&self, tenant: &str) -> String {
        let body = format!(r#"{{"name": "m-{tenant}", "tenant": "{tenant}", "role": "member"}}"#);
        let member: serde_json::Value = serde_json::from_str(&curl(&[
            "-H",
            &format!("Authorization: Bearer {}", self.admin),
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            &format!("{}/v1/tokens", self.url),
        ]))
        .expect("a member token");
        format!("Authorization: Bearer {}", member["token"].as_str().expect("the token's secret"))
    }

    fn submit(&self, auth: &str, job_file: &str) -> u64 {
        let submitted: serde_json::Value = serde_json::from_str(&curl(&[
            "-H",
            auth,
            "-H",
            "content-type: application/yaml",
            "--data-binary",
            job_file,
            &format!("{}/v1/jobs", self.url),
        ]))
        .expect("the job is accepted");
        submitted["id"].as_u64().unwrap()
    }

    /// The job once it is in one of `states`, and its log.
    fn wait_for(&self, auth: &str, id: u64, states: &[&str]) -> (serde_json::Value, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let job = loop {
            let job: serde_json::Value =
                serde_json::from_str(&curl(&["-H", auth, &format!("{}/v1/jobs/{id}", self.url)])).unwrap();
            if states.iter().any(|s| job["state"] == *s) {
                break job;
            }
            let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "job {id} did not reach {states:?}: {job}\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        };
        (job, curl(&["-H", auth, &format!("{}/v1/jobs/{id}/logs", self.url)]))
    }
}

#[test]
fn a_members_local_job_reaches_nothing_of_the_servers() {
    let Some(server) = start_server() else { return };
    // A member of the tenant submits, as in the attack.
    let auth = server.member_of("default");
    let id = server.submit(&auth, &hostile_job(&server.data));
    let (job, log) = server.wait_for(&auth, id, &["succeeded", "failed"]);
    assert_eq!(job["state"], "succeeded", "{job}\n{log}");
    let (leftover, lines): (Vec<&str>, Vec<&str>) = log.lines().partition(|line| line.starts_with("leftover "));
    assert_eq!(
        lines,
        ["no-token", "no-db", "no-parent-env", "no-cumulo-db", "not-root", "outside"],
        "the job reached something of the server's:\n{log}"
    );
    let pid =
        leftover.first().and_then(|l| l.strip_prefix("leftover ")).expect("the setsid'ed process printed its pid");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "the setsid'ed process {pid} outlived its attempt: {stat}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&server.data).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the data directory must be the server's user's only");
}

/// Tenant `other` runs a job with a secret in its environment; a member of `default` submits a job
/// that reads the holder's pid and tries its `/proc/<pid>/environ` and a signal: both fail, since
/// each tenant's jobs run as the tenant's own account.
#[test]
fn a_local_job_cannot_read_another_tenants_environment() {
    let Some(server) = start_server() else { return };
    // Where the holder leaves its pid: anyone may write there, as in /tmp.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let pid_file = scratch.path().join("holder.pid");
    let other = server.member_of("other");
    let holder = server.submit(
        &other,
        &format!(
            "name: holder\nresources: {{cpus: 1}}\nenvs: {{OTHER_SECRET: s3cret-of-other}}\n\
             run: \"echo $$ > {}.tmp && mv {0}.tmp {0}; exec sleep 300\"\n",
            pid_file.display()
        ),
    );
    server.wait_for(&other, holder, &["running"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the holder never wrote its pid");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = [
        format!("target=$(cat {})", pid_file.display()),
        "tr '\\\\0' '\\\\n' 2>/dev/null < /proc/$target/environ | grep -q s3cret && echo READ-ENV || echo no-env"
            .into(),
        "kill -0 $target 2>/dev/null && echo SIGNAL || echo no-signal".into(),
        "id -un".into(),
    ];
    let default = server.member_of("default");
    let prober =
        server.submit(&default, &format!("name: prober\nresources: {{cpus: 1}}\nrun: \"{}\"\n", run.join("\\n")));
    let (job, log) = server.wait_for(&default, prober, &["succeeded", "failed"]);
    assert_eq!(job["state"], "succeeded", "{job}\n{log}");
    assert_eq!(log, "no-env\nno-signal\ncumulo-job-default\n", "a job reached another tenant's");
    curl(&["-X", "POST", "-H", &other, &format!("{}/v1/jobs/{holder}/cancel", server.url)]);
    server.wait_for(&other, holder, &["cancelled"]);
}
