//! Local jobs against the real `cumulo server` (issue 12, finding 2): a member's job tries what the
//! attack did (read `admin.token`, write `cumulo.db`, read its parent's environment and the
//! server's `CUMULO_DB`, run as root, work in the data directory, leave a `setsid` process behind)
//! and every try fails.
//!
//! Needs root (the server then runs jobs as the unprivileged `cumulo-job`); otherwise the test says
//! so and returns.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEET: &str = "
tenants: [{name: default}]
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

#[test]
fn a_members_local_job_reaches_nothing_of_the_servers() {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: not root, so the server cannot run jobs as another user; the isolation test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let _server = Server(
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
    // A member of the tenant submits, as in the attack.
    let member: serde_json::Value = serde_json::from_str(&curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name": "m", "tenant": "default", "role": "member"}"#,
        &format!("{url}/v1/tokens"),
    ]))
    .expect("a member token");
    let member = member["token"].as_str().expect("the token's secret").to_string();
    let auth = format!("Authorization: Bearer {member}");
    let submitted: serde_json::Value = serde_json::from_str(&curl(&[
        "-H",
        &auth,
        "-H",
        "content-type: application/yaml",
        "--data-binary",
        &hostile_job(&data),
        &format!("{url}/v1/jobs"),
    ]))
    .expect("the job is accepted");
    let id = submitted["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job: serde_json::Value =
            serde_json::from_str(&curl(&["-H", &auth, &format!("{url}/v1/jobs/{id}")])).unwrap();
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = curl(&["-H", &auth, &format!("{url}/v1/jobs/{id}/logs")]);
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
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&data).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the data directory must be the server's user's only");
}
