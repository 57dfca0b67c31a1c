//! SkyPilot `workdir` and local `file_mounts` through the real binaries (issue 14): `cumulo submit`
//! packs them into an upload, the server keeps it, and the local driver unpacks it into the job's
//! working directory before `setup`, as the job's user. A bucket is named in a warning and placed
//! only because the fleet file says the cluster mounts buckets (`bucket_mounts: true`); an
//! absolute destination on a plain (no container) local job fails the attempt naming the field; a
//! job file with local mounts sent without an upload is refused naming the field.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cumulo, json, start_server};

const FLEET: &str = "
tenants: [{name: default}]
clusters:
  - name: here
    provider: local
    region: local
    capacity: on-demand
    price_per_node_hour: '0'
    bucket_mounts: true
    driver: {kind: local}
";

const JOB: &str = "name: uploaded
max_attempts: 1
workdir: proj
file_mounts:
  ~/inputs: ./data
  conf/cfg.txt: ./cfg.txt
  /ckpt: s3://bucket/ckpt
setup: |
  test -f train.py && echo setup-sees-workdir
run: |
  cat train.py inputs/a.txt conf/cfg.txt
  [ \"$PWD\" = \"$HOME\" ] && echo cwd-is-home
  touch written && echo can-write
";

fn wait_done(dir: &Path, env: &[(&str, &str)], id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job = json(cumulo(dir, env, &["job", id, "-o", "json"]));
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn workdir_and_local_file_mounts_are_copied_into_the_job_before_setup() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let support::Started { server: _server, url, token } = start_server(dir, FLEET);
    let env = [("CUMULO_SERVER", url.as_str()), ("CUMULO_TOKEN", token.as_str())];
    std::fs::create_dir_all(dir.join("proj")).unwrap();
    std::fs::write(dir.join("proj/train.py"), "print('train')\n").unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/a.txt"), "input-a\n").unwrap();
    std::fs::write(dir.join("cfg.txt"), "config-line\n").unwrap();
    std::fs::write(dir.join("job.yaml"), JOB).unwrap();

    let validated = cumulo(dir, &env, &["validate", "job.yaml"]);
    let warnings = String::from_utf8_lossy(&validated.stderr);
    assert!(
        warnings.contains("file_mounts./ckpt: bucket `s3://bucket/ckpt` is mounted by no driver")
            && warnings.contains("bucket_mounts: true"),
        "{warnings}"
    );

    let submitted = cumulo(dir, &env, &["submit", "job.yaml", "-o", "json"]);
    let said = String::from_utf8_lossy(&submitted.stderr).into_owned();
    assert!(
        said.contains("job.yaml:7: warning: file_mounts./ckpt: bucket `s3://bucket/ckpt` is mounted by no driver"),
        "submit says where a bucket job is placed, as validate does: {said}"
    );
    let id = json(submitted)[0]["id"].as_u64().unwrap().to_string();
    let job = wait_done(dir, &env, &id);
    let log = String::from_utf8_lossy(&cumulo(dir, &env, &["logs", &id]).stdout).into_owned();
    assert_eq!(job["state"], "succeeded", "{job}\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        ["setup-sees-workdir", "print('train')", "input-a", "config-line", "cwd-is-home", "can-write"],
        "{log}"
    );
    assert!(job["spec"]["upload"].as_str().is_some_and(|u| u.starts_with("sha256:")), "{job}");

    // An absolute destination cannot be given to a plain local process: the attempt fails, saying why.
    let absolute = JOB.replace("~/inputs", "/inputs").replace("uploaded", "absolute");
    std::fs::write(dir.join("abs.yaml"), absolute).unwrap();
    let id = json(cumulo(dir, &env, &["submit", "abs.yaml", "-o", "json"]))[0]["id"].as_u64().unwrap().to_string();
    let job = wait_done(dir, &env, &id);
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job.to_string().contains("absolute destinations need a container image"), "{job}");

    // Without an upload the server cannot read the submitter's files: refused, naming the field.
    let refused = cumulo(dir, &env, &["submit", "--no-upload", "--new", "job.yaml", "-o", "json"]);
    let answer = json(refused);
    let error = answer[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("file_mounts.conf/cfg.txt") && error.contains("no upload came with the job"), "{answer}");
}
