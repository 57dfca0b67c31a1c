//! End-to-end tests of `cumulo offers`, `cumulo portfolio` and `cumulo catalog` against the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cumulo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("run cumulo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn job_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn data_dir() -> Option<PathBuf> {
    let base = std::env::var("CUMULO_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")));
    let dir = base.join("skypilot-catalog-v8");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} not found", dir.display());
        None
    }
}

#[test]
fn offers_json_ranks_by_effective_cost_and_labels_the_demo_illustrative() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_file(&dir, "h100.yaml", "name: h100\nresources:\n  accelerators: H100:8\nrun: echo hi\n");
    let out = cumulo(&["offers", &job, "--at", "2026-11-26", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["illustrative"], true);
    assert_eq!(v["catalog"], "built-in");
    assert!(v["decision_us"].as_u64().is_some());
    let rows = v["feasible"].as_array().unwrap();
    assert!(!rows.is_empty());
    let eff: Vec<i64> = rows.iter().map(|r| r["effective_per_hour"].as_i64().unwrap()).collect();
    assert!(eff.windows(2).all(|w| w[0] <= w[1]), "{eff:?}");
}

#[test]
fn offers_table_says_why_an_infeasible_job_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_file(&dir, "mi.yaml", "name: mi\nresources:\n  accelerators: MI325X:8\n");
    let out = cumulo(&["offers", &job, "--at", "2026-11-26", "--no-portfolio"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("infeasible: no offer has MI325X (GPU models offered by catalog `built-in`"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn burn_down_json_is_labelled_illustrative() {
    let out = cumulo(&["portfolio", "burn-down", "--at", "2026-12-31", "--utilisation", "70", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["illustrative"], true);
    assert_eq!(v["contracts"].as_array().unwrap().len(), 5);
    let table = stdout(&cumulo(&["portfolio", "burn-down", "--at", "2026-12-31"]));
    assert!(table.starts_with("burn-down of portfolio demo (illustrative) at 2026-12-31"), "{table}");
}

#[test]
fn broken_portfolio_and_bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = job_file(
        &dir,
        "p.yaml",
        "contracts:\n  - id: x\n    provider: aws\n    committed_usd: -1\n    term: {start: 2026-01-01, end: 2026-12-31}\n",
    );
    let out = cumulo(&["portfolio", "burn-down", "--portfolio", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: contract `x` field `committed_usd`: -$1.00 is negative: expected an amount of at least $0"
    );
    let out = cumulo(&["portfolio", "burn-down", "--utilisation", "150%"]);
    assert_eq!(
        stderr(&out).trim(),
        "error: invalid utilisation `150%`: expected a share of 0..100%, e.g. 70 or 70% or 0.7"
    );
}

#[test]
fn portfolio_demo_names_the_built_in_one_and_a_missing_file_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_file(&dir, "h100.yaml", "name: h100\nresources:\n  accelerators: H100:8\n");
    let named = cumulo(&["offers", &job, "--at", "2026-11-26", "--portfolio", "demo", "-o", "json"]);
    let absent = cumulo(&["offers", &job, "--at", "2026-11-26", "-o", "json"]);
    assert!(
        named.status.success(),
        "`--portfolio demo` is the built-in portfolio, as in fleet files: {}",
        stderr(&named)
    );
    let (named, absent): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&stdout(&named)).unwrap(), serde_json::from_str(&stdout(&absent)).unwrap());
    assert_eq!(named["feasible"], absent["feasible"], "`demo` and no --portfolio must rank alike");
    let missing = dir.path().join("nowhere.yaml").display().to_string();
    let out = cumulo(&["portfolio", "burn-down", "--portfolio", &missing]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the I/O reason is part of the message once, not repeated by the error chain: {err}"
    );
}

#[test]
fn catalog_import_summarises_the_real_files() {
    let Some(dir) = data_dir() else { return };
    let out = cumulo(&["catalog", "import", dir.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 7);
    let job_dir = tempfile::tempdir().unwrap();
    let job = job_file(&job_dir, "h100.yaml", "name: h100\nresources:\n  accelerators: H100:8\n");
    let out = cumulo(&["offers", &job, "--catalog", dir.to_str().unwrap(), "--at", "2026-11-26", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let providers: std::collections::BTreeSet<&str> =
        v["feasible"].as_array().unwrap().iter().map(|r| r["provider"].as_str().unwrap()).collect();
    for p in ["aws", "azure", "lambda", "oci", "nebius"] {
        assert!(providers.contains(p), "{p} missing from {providers:?}");
    }
}

/// `cumulo offers --fleet`: each fleet cluster says whether it can give what the job file needs of
/// its site, with the server's own words (`cumulo_sched::needs`), and catalog offers where only
/// unable clusters stand are kept off.
#[test]
fn offers_with_a_fleet_say_which_clusters_can_run_the_image_and_mount_the_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let job_text = "name: boxed\nresources:\n  accelerators: H100:8\n  image_id: docker:nvcr.io/nvidia/pytorch:24.01-py3\nfile_mounts:\n  /data: s3://bucket/data\nrun: python train.py\n";
    let job = job_file(&dir, "boxed.yaml", job_text);
    let fleet_text = "clusters:\n\
      - {name: slurm-east, provider: aws, region: us-east-1, capacity: on-demand, price_per_node_hour: '1', driver: {kind: slurm, conf: /nonexistent/slurm.conf}, bucket_mounts: true}\n\
      - {name: ray-lab, provider: onprem, region: lab, capacity: on-demand, price_per_node_hour: '1', driver: {kind: ray, url: 'http://127.0.0.1:1'}}\n\
      - {name: sim-west, provider: gcp, region: us-central1, capacity: on-demand, price_per_node_hour: '1', driver: {kind: simulated, nodes: 2, gpu: H100, gpus: 8, vcpus: 208, memory_gb: 1872}, bucket_mounts: true}\n";
    let fleet = job_file(&dir, "fleet.yaml", fleet_text);
    let out = cumulo(&["offers", &job, "--fleet", &fleet, "--no-portfolio", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();

    // The server's words, from the same functions on the same readings of both files.
    let spec = cumulo_jobfile::parse_str(job_text, "boxed.yaml").unwrap();
    let file = cumulo_server::config::FleetFile::parse(fleet_text, "fleet.yaml").unwrap();
    let sites: Vec<_> = file.clusters.iter().map(cumulo_server::config::ClusterEntry::site).collect();
    let needs = cumulo_sched::needs::Needs::of_file(&spec);
    let server_says = needs.reasons(&sites).unwrap();
    assert_eq!(v["fleet"]["pending_reason"], server_says.as_str());
    assert!(server_says.contains("cluster(s) slurm-east cannot run"), "{server_says}");
    assert!(server_says.contains("cluster(s) ray-lab do not say `bucket_mounts: true`"), "{server_says}");

    let clusters = v["fleet"]["clusters"].as_array().unwrap();
    let verdicts: Vec<(&str, bool)> =
        clusters.iter().map(|c| (c["cluster"].as_str().unwrap(), c["can_run"].as_bool().unwrap())).collect();
    assert_eq!(verdicts, [("slurm-east", false), ("ray-lab", false), ("sim-west", true)]);
    assert!(clusters[0]["reason"].as_str().unwrap().contains("resources.image_id"), "{}", clusters[0]);
    assert!(
        clusters[1]["reason"].as_str().unwrap().contains("file_mounts /data (s3://bucket/data)"),
        "{}",
        clusters[1]
    );

    // Only slurm-east stands in aws us-east-1: AWS's H100 offer there is kept off, gcp's is kept.
    let feasible = v["feasible"].as_array().unwrap();
    assert!(!feasible.iter().any(|r| r["provider"] == "aws" && r["region"] == "us-east-1"), "{feasible:?}");
    assert!(feasible.iter().any(|r| r["provider"] == "gcp" && r["region"] == "us-central1"), "{feasible:?}");
    let kept_off = v["fleet"]["kept_off"].as_array().unwrap();
    assert!(kept_off.iter().any(|r| r["provider"] == "aws" && r["region"] == "us-east-1"), "{kept_off:?}");

    // The table says the same; without --fleet nothing is kept off.
    let table = cumulo(&["offers", &job, "--fleet", &fleet, "--no-portfolio"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.contains(&format!("pending reason the server adds: {server_says}")), "{text}");
    assert!(text.contains("sim-west") && text.contains("simulated"), "{text}");
    let plain = cumulo(&["offers", &job, "--no-portfolio", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&plain)).unwrap();
    assert!(v.get("fleet").is_none());
    assert!(v["feasible"].as_array().unwrap().iter().any(|r| r["provider"] == "aws" && r["region"] == "us-east-1"));

    // A bad fleet file is refused naming the field.
    let bad = job_file(&dir, "bad.yaml", &fleet_text.replace("bucket_mounts: true}", "bucket_mounts: maybe}"));
    let out = cumulo(&["offers", &job, "--fleet", &bad]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("clusters[0]"), "{}", stderr(&out));
}
