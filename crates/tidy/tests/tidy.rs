//! Tidy checks over the whole workspace, in the manner of rust-analyzer's `tidy.rs`: the crate
//! dependency rules of `ARCHITECTURE.md`, purity of the decision cores, and house habits.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Names in a manifest's `[dependencies]` table (not dev- or build-dependencies).
fn normal_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap().trim();
            deps.insert(name.to_string());
        }
    }
    deps
}

/// The internal crates each crate may use, as in ARCHITECTURE.md's crate map. A crate missing here
/// fails the test: a new crate is a decision to write down.
const ALLOWED_INTERNAL: &[(&str, &[&str])] = &[
    ("types", &[]),
    ("sched", &["types"]),
    ("synth", &["types", "sched"]),
    ("jobfile", &["types", "catalog"]),
    ("catalog", &["types"]),
    ("portfolio", &["types", "catalog", "sched"]),
    ("ledger", &["types", "catalog", "portfolio"]),
    ("store", &["types", "ledger"]),
    ("store-sqlite", &["types", "store"]),
    ("store-postgres", &["types", "store"]),
    ("driver", &["types"]),
    ("driver-sim", &["types", "driver"]),
    ("driver-local", &["types", "driver"]),
    ("driver-slurm", &["types", "driver"]),
    ("driver-ray", &["types", "driver"]),
    ("control", &["types", "sched", "portfolio", "store", "store-sqlite", "store-postgres", "driver", "ledger"]),
    ("api", &["types", "sched", "jobfile", "portfolio", "ledger", "store", "driver"]),
    (
        "server",
        &[
            "types",
            "sched",
            "synth",
            "catalog",
            "portfolio",
            "store",
            "driver",
            "driver-sim",
            "driver-local",
            "driver-slurm",
            "driver-ray",
            "control",
            "api",
        ],
    ),
    ("sim", &["types", "sched", "synth", "catalog", "portfolio", "ledger", "driver", "driver-sim", "jobfile"]),
    ("tidy", &[]),
    ("cli", &["*"]),
];

/// Crates that decide and must not touch the outside world (invariant 1).
const PURE: &[&str] = &["types", "sched", "ledger"];
const IMPURE_DEPENDENCIES: &[&str] = &["tokio", "sqlx", "reqwest", "axum", "hyper", "rand", "rand_chacha", "chrono"];
const IMPURE_CALLS: &[&str] =
    &["std::fs", "std::net", "std::process", "SystemTime::now", "Instant::now", "Utc::now", "Local::now", "thread_rng"];

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let mut problems = Vec::new();
    for dir in crate_dirs() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let Some((_, allowed)) = ALLOWED_INTERNAL.iter().find(|(c, _)| *c == name) else {
            problems
                .push(format!("crate `{name}` is not in the crate map (tidy.rs ALLOWED_INTERNAL, ARCHITECTURE.md)"));
            continue;
        };
        for dep in normal_dependencies(&dir.join("Cargo.toml")) {
            let Some(internal) = dep.strip_prefix("cumulo-") else { continue };
            if !allowed.contains(&"*") && !allowed.contains(&internal) {
                problems.push(format!("crate `{name}` depends on `{internal}`, which ARCHITECTURE.md does not allow"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn decision_cores_do_no_io() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for name in PURE {
        let dir = root.join("crates").join(name);
        let deps = normal_dependencies(&dir.join("Cargo.toml"));
        // chrono is plain date arithmetic in the ledger; its clock is what must not be read
        for dep in IMPURE_DEPENDENCIES.iter().filter(|d| **d != "chrono") {
            if deps.contains(*dep) {
                problems.push(format!("pure crate `{name}` depends on `{dep}`"));
            }
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for call in IMPURE_CALLS {
                if text.contains(call) {
                    problems.push(format!("pure crate `{name}` uses `{call}` in {}", file.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let mut missing = Vec::new();
    for dir in crate_dirs() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "modules without a leading `//!` line:\n{}", missing.join("\n"));
}

#[test]
fn no_ignored_tests_and_no_shared_data_at_run_time() {
    let mut problems = Vec::new();
    let ignore_attr = ["#[", "ignore", "]"].concat();
    for dir in crate_dirs() {
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            if text.contains(&ignore_attr) {
                problems.push(format!("{} has an ignored test", file.display()));
            }
            let runtime = file.components().any(|c| c.as_os_str() == "src")
                && !file.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches");
            if runtime && text.lines().any(|l| l.contains("shared/data") && !l.trim_start().starts_with("//")) {
                problems.push(format!("{} reads ../shared at run time", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
