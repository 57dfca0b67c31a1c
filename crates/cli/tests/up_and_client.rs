//! `cumulo up` and the client commands end to end with the real binary on loopback: `up` prints the
//! URL and admin token and saves them, so that `submit`, `jobs`, `job`, `logs`, `cancel`,
//! `clusters`, `nodes`, `contracts` and `token create` work with no flags; the example inference
//! service runs one attempt per replica over two providers; a member token given by
//! `CUMULO_TOKEN` sees only its tenant; a bad token is refused with the server's reason.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cumulo(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cumulo"));
    command.args(args).current_dir(home).env("HOME", home).env_remove("XDG_CONFIG_HOME");
    command.env_remove("CUMULO_SERVER").env_remove("CUMULO_TOKEN").env_remove("CUMULO_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("cannot run cumulo")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn json(output: Output) -> serde_json::Value {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn up_saves_the_connection_and_every_client_command_works_against_it() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["up", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env("CUMULO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let up = Up(child);
    let (mut url, mut token, mut saved) = (None, None, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(u) = line.strip_prefix("Cumulo is up: ") {
            url = Some(u.trim().to_string());
        } else if let Some(t) = line.trim().strip_prefix("admin token: ") {
            token = Some(t.trim().to_string());
        } else if line.trim().starts_with("saved to:") {
            saved = true;
            break;
        }
    }
    let (url, token) = (url.expect("up printed no URL"), token.expect("up printed no token"));
    assert!(saved, "up did not save the connection");
    let config = std::fs::read_to_string(dir.join(".config/cumulo/config.yaml")).unwrap();
    assert!(config.contains(&url) && config.contains(&token), "{config}");
    assert_eq!(std::fs::read_to_string(dir.join(".cumulo/admin.token")).unwrap().trim(), token);

    // Fleet views: this machine and simulated clusters, marked so.
    let clusters = json(cumulo(dir, &["clusters", "-o", "json"], &[]));
    let names: Vec<&str> = clusters.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"local"), "{names:?}");
    assert!(clusters.as_array().unwrap().iter().filter(|c| c["name"] != "local").all(|c| c["simulated"] == true));
    let table = ok(cumulo(dir, &["clusters"], &[]));
    assert!(table.contains("NAME") && table.contains("simulated"), "{table}");
    assert!(!json(cumulo(dir, &["nodes", "--cluster", "local", "-o", "json"], &[])).as_array().unwrap().is_empty());
    assert!(json(cumulo(dir, &["contracts", "-o", "json"], &[]))["contracts"].is_array());

    // A job on this machine: submitted, run, its log read back.
    std::fs::write(
        dir.join("hello.yaml"),
        "name: hello\nresources: {cpus: 1, infra: local}\nrun: echo hello-from-e2e\n",
    )
    .unwrap();
    let submitted = json(cumulo(dir, &["submit", "--wait", "hello.yaml", "-o", "json"], &[]));
    assert_eq!(submitted[0]["state"], "succeeded", "{submitted}");
    let id = submitted[0]["id"].as_u64().unwrap().to_string();
    assert!(ok(cumulo(dir, &["logs", &id], &[])).contains("hello-from-e2e"));
    // Following a finished attempt prints its whole log and ends.
    assert!(ok(cumulo(dir, &["logs", "-f", &id], &[])).contains("hello-from-e2e"));
    let job = json(cumulo(dir, &["job", &id, "-o", "json"], &[]));
    assert_eq!(job["attempts"][0]["placement"]["cluster"], "local");

    // An admin makes a member token for another tenant; through CUMULO_TOKEN it sees only its own.
    let member = json(cumulo(dir, &["token", "create", "--tenant", "research", "--role", "member", "-o", "json"], &[]));
    let member_token = member["token"].as_str().unwrap();
    let env = [("CUMULO_TOKEN", member_token)];
    assert!(json(cumulo(dir, &["jobs", "-o", "json"], &env))["jobs"].as_array().unwrap().is_empty());
    let hidden = cumulo(dir, &["job", &id], &env);
    assert!(!hidden.status.success());
    assert!(String::from_utf8_lossy(&hidden.stderr).contains(&format!("job `{id}` not found")));
    std::fs::write(dir.join("wait.yaml"), "name: waits\nresources: {accelerators: GB200:4}\nnum_nodes: 100\nrun: x\n")
        .unwrap();
    let mine = json(cumulo(dir, &["submit", "wait.yaml", "-o", "json"], &env));
    let mine_id = mine[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(json(cumulo(dir, &["jobs", "-o", "json"], &env))["jobs"][0]["spec"]["tenant"], "research");
    let cancelled = json(cumulo(dir, &["cancel", &mine_id, "-o", "json"], &env));
    assert_eq!(cancelled["state"], "cancelled");

    // The example inference service: one attempt per replica, spread over providers; cancel stops
    // every replica.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs/inference-service.yaml");
    let served = json(cumulo(dir, &["submit", example, "-o", "json"], &[]));
    let served_id = served[0]["id"].as_u64().unwrap().to_string();
    let replicas_in = |wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = json(cumulo(dir, &["job", &served_id, "-o", "json"], &[]));
            let attempts = job["attempts"].as_array().cloned().unwrap_or_default();
            if attempts.len() == 4 && attempts.iter().all(|a| a["state"] == wanted) || Instant::now() > deadline {
                return attempts;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let attempts = replicas_in("running");
    let replicas: std::collections::BTreeSet<u64> = attempts.iter().map(|a| a["replica"].as_u64().unwrap()).collect();
    assert_eq!(replicas, (0..4).collect(), "{attempts:?}");
    let providers: std::collections::BTreeSet<&str> =
        attempts.iter().map(|a| a["placement"]["offer"]["provider"].as_str().unwrap()).collect();
    assert!(providers.len() >= 2, "spread: providers: {providers:?}");
    assert!(ok(cumulo(dir, &["job", &served_id], &[])).contains("REPLICA"));
    assert!(ok(cumulo(dir, &["cancel", &served_id], &[])).contains("every replica's attempt is being stopped"));
    let attempts = replicas_in("cancelled");
    assert!(attempts.iter().all(|a| a["state"] == "cancelled"), "{attempts:?}");
    assert_eq!(json(cumulo(dir, &["job", &served_id, "-o", "json"], &[]))["state"], "cancelled");

    // Bad input: the server's reason reaches the user, and the exit code says it failed.
    let refused = cumulo(dir, &["jobs"], &[("CUMULO_TOKEN", "cum_wrong")]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid token"));
    std::fs::write(dir.join("bad.yaml"), "name: bad\nnum_nodes: lots\n").unwrap();
    let bad = cumulo(dir, &["submit", "bad.yaml"], &[]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("num_nodes"), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad_role = cumulo(dir, &["token", "create", "--tenant", "research", "--role", "owner"], &[]);
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role `owner`"));
    drop(up);
}
