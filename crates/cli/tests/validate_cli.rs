//! `cumulo validate` end to end: the real binary on the shipped example job files and on broken
//! ones, in table and JSON form, with its exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cumulo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("cumulo runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs")).join(name).display().to_string()
}

/// A scratch file under the system temp dir, unique to this test process and name.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cumulo-validate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn valid_files_print_a_table_and_exit_zero() {
    let pretrain = example("pretrain-gb200-nvl72.yaml");
    let notebook = example("notebook-quarter-gpu.yaml");
    let out = cumulo(&["validate", &pretrain, &notebook]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let table = stdout(&out);
    for want in
        ["pretrain-70b", "training", "research", "high", "GB200:4 GPU", "nvlink-domain", "18", "deny aws/us-east-2"]
    {
        assert!(table.contains(want), "`{want}` missing from:\n{table}");
    }
    assert!(table.contains("A100|L4:0.25 GPU"), "{table}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn json_output_holds_each_normalised_job() {
    let out = cumulo(&["validate", "-o", "json", &example("inference-service.yaml"), &example("batch-sweep.yaml")]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 3, "one service and two sweep documents: {entries:?}");
    let service = &entries[0];
    assert_eq!(service["ok"], true);
    assert_eq!(service["job"]["kind"], "inference");
    assert_eq!(service["job"]["replicas"], 4);
    assert_eq!(service["job"]["spread"], "providers");
    assert_eq!(service["job"]["resources"][0]["accelerators"]["selector"]["min_memory_gb"], 80);
    assert_eq!(entries[2]["document"], 2);
    assert_eq!(entries[2]["job"]["name"], "sweep-lr-3e-4");
}

#[test]
fn invalid_files_list_every_problem_and_exit_non_zero() {
    let good = example("agent-sandbox.yaml");
    let bad = scratch("bad.yaml", "name: x\nnum_nodes: 0\nresources:\n  accelerators: H100:1.5\n");
    let bad = bad.display().to_string();

    let out = cumulo(&["validate", &good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("agent-sandbox"), "the valid file is still shown:\n{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{bad}:2: num_nodes: invalid value `0`: expected a positive integer (nodes in the gang)"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{bad}:4: resources.accelerators: invalid GPU count `1.5` in `H100:1.5`")), "{err}");
    assert!(err.contains("error: 1 of 2 job files are invalid"), "{err}");

    let out = cumulo(&["validate", "-o", "json", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entry = &entries[0];
    assert_eq!(entry["ok"], false);
    assert_eq!(entry["file"], bad.as_str());
    assert_eq!(entry["errors"][0]["path"], "num_nodes");
    assert_eq!(entry["errors"][0]["line"], 2);
    assert_eq!(entry["errors"][0]["message"], "invalid value `0`: expected a positive integer (nodes in the gang)");
    assert_eq!(entry["errors"][1]["path"], "resources.accelerators");
    assert_eq!(entry["errors"][1]["line"], 4);
}

#[test]
fn every_broken_example_fails() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs/broken"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut args = vec!["validate", "-o", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = cumulo(&args);
    assert_eq!(out.status.code(), Some(1));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), files.len());
    assert!(entries.iter().all(|e| e["ok"] == false && !e["errors"].as_array().unwrap().is_empty()), "{entries:?}");
}

#[test]
fn missing_file_is_an_invalid_file() {
    let out = cumulo(&["validate", "/nonexistent/job.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("/nonexistent/job.yaml: cannot read job file: "), "{}", stderr(&out));
}

#[test]
fn help_describes_the_command() {
    let out = cumulo(&["validate", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("Check job files"), "{help}");
    assert!(help.contains("--output"), "{help}");
    let out = cumulo(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "a FILE is required");
}

#[test]
fn dash_reads_standard_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["validate", "-o", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"name: piped\nresources:\n  accelerators: B200:8\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(entries[0]["file"], "-");
    assert_eq!(entries[0]["job"]["name"], "piped");
}

fn skypilot_fixture(name: &str) -> String {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../jobfile/tests/fixtures/skypilot"))
        .join(name)
        .display()
        .to_string()
}

/// Every SkyPilot-shaped fixture is accepted through the binary, with the accelerators, counts,
/// locations, spot choice and node counts SkyPilot reads, and a warning per field not applied.
#[test]
fn skypilot_task_files_are_accepted_with_a_warning_per_field_not_applied() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../jobfile/tests/fixtures/skypilot"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 12, "the fixtures are there: {files:?}");
    let mut args = vec!["validate", "-o", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = cumulo(&args);
    assert!(out.status.success(), "SkyPilot accepts every one of them, so must Cumulo:\n{}", stdout(&out));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    let of = |file: &str| -> Vec<&serde_json::Value> {
        entries.iter().filter(|e| e["file"].as_str().is_some_and(|f| f.ends_with(file))).collect()
    };

    let llama = of("llama4-accelerator-set.yaml");
    let selectors: Vec<&serde_json::Value> =
        llama[0]["job"]["resources"].as_array().unwrap().iter().map(|o| &o["accelerators"]["selector"]).collect();
    assert_eq!(
        selectors,
        [
            &serde_json::json!({"models": ["H100", "H200", "GH200", "B200", "GB200"]}),
            &serde_json::json!({"named": "B100"})
        ],
        "B100 stays an alternative by name"
    );
    let warned: Vec<&str> =
        llama[0]["warnings"].as_array().unwrap().iter().map(|w| w["path"].as_str().unwrap()).collect();
    assert_eq!(warned, ["resources.accelerators", "resources.disk_size", "resources.disk_tier", "resources.ports"]);

    let chain = of("chain-two-steps.yaml");
    assert_eq!(chain.len(), 2, "two steps, the header is no job");
    assert_eq!(chain[0]["shape"], serde_json::json!({"kind": "pipeline", "name": "two-steps"}));
    assert_eq!(chain[1]["after_documents"], serde_json::json!([1]), "step two runs after step one");

    let group = of("job-group.yaml");
    assert_eq!(group.len(), 2);
    assert!(group.iter().all(|e| e["job"]["group"] == "rl-post-training"), "both jobs share the group");

    let spot = of("two-nodes-spot-or-not.yaml");
    assert_eq!(spot[0]["job"]["num_nodes"], 2);
    let spots: Vec<&serde_json::Value> =
        spot[0]["job"]["resources"].as_array().unwrap().iter().map(|o| &o["use_spot"]).collect();
    assert_eq!(spots, [&serde_json::json!(true), &serde_json::json!(false)]);

    let alias = of("gpus-alias.yaml");
    assert_eq!(alias[0]["job"]["resources"][0]["accelerators"]["selector"], serde_json::json!({"models": ["H100"]}));
    assert_eq!(alias[0]["job"]["resources"][0]["infra"], serde_json::json!({"provider": "aws", "region": "us-east-1"}));

    let tpu = of("tpu.yaml");
    assert_eq!(
        tpu[0]["job"]["resources"][0]["accelerators"]["selector"],
        serde_json::json!({"named": "tpu-v5litepod-8"})
    );

    // The table form says the same on stderr, one line per field, with the file and line.
    let image = skypilot_fixture("docker-image-on-gcp.yaml");
    let out = cumulo(&["validate", &image]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(!err.contains("image_id"), "a docker: image is applied where a driver runs images:\n{err}");
    assert!(
        err.contains(&format!(
            "{image}:10: warning: file_mounts./sky-notebook: bucket `bucket://my-bucket` is mounted by no driver: the job is placed only on clusters whose fleet entry says `bucket_mounts: true`"
        )),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.contains("warning: workdir:")).count(), 1, "each field once:\n{err}");
}
