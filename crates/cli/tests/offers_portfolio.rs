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
