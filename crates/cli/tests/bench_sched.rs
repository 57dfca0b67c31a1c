//! `cumulo bench sched` end to end on the real binary, on a small simulated fleet.

use std::process::Command;

fn cumulo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("cumulo runs")
}

#[test]
fn bench_sched_prints_one_json_object_with_the_promised_fields() {
    let out = cumulo(&[
        "bench", "sched", "--gpus", "4000", "--vcpus", "40000", "--jobs", "2000", "--mix", "mixed", "--seed", "3",
        "--verify",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    for field in [
        "placements_per_sec",
        "p50_decision_us",
        "p99_decision_us",
        "jobs",
        "placed",
        "pending",
        "fleet_gpus",
        "fleet_vcpus",
        "fleet_nodes",
        "peak_rss_bytes",
        "wall_s",
        "build_s",
    ] {
        assert!(report.get(field).is_some(), "missing {field}");
    }
    assert_eq!(report["jobs"], 2000);
    assert_eq!(report["placed"].as_u64().unwrap() + report["pending"].as_u64().unwrap(), 2000);
    assert_eq!(report["verified"], true);
    assert!(report["fleet"].as_str().unwrap().contains("simulated"));
}

#[test]
fn bench_sched_names_a_bad_mix() {
    let out = cumulo(&["bench", "sched", "--mix", "gangs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid mix `gangs`: expected sandbox, gang or mixed"), "{err}");
}
