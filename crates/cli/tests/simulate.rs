//! `cumulo simulate` end to end: the real binary on a tiny generated scenario.

use std::process::Command;

const SCENARIO: &str = "
name: tiny
seed: 4
horizon_days: 1
sim: {tick_s: 300}
fleet:
  pools:
    - {provider: aws, region: us-east-1, capacity: contract, contract: aws-c, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 4, price_per_node_hour: 98.32, contract_rate_per_node_hour: 60}
    - {provider: lambda, region: us-west-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 208, memory_gb: 1800, nodes: 4, price_per_node_hour: 23.92}
workload:
  sources:
    - generator:
        jobs: 200
        horizon_days: 1
        classes:
          - {name: batch, kind: batch, weight: 1, gpus_min: 1, gpus_max: 8, median_hours: 1}
";

fn cumulo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("the cumulo binary runs")
}

#[test]
fn simulate_writes_report_summary_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let report = dir.path().join("report.json");
    let plots = dir.path().join("plots");
    let out = cumulo(&[
        "simulate",
        scenario.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tiny (simulated)"), "{stdout}");
    for policy in ["cumulo", "fifo-first-fit", "cheapest-first"] {
        assert!(stdout.contains(policy), "{stdout}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let jobs = json["jobs"].as_u64().unwrap();
    assert!(jobs > 150 && jobs <= 200, "{jobs}");
    assert_eq!(json["policies"].as_array().unwrap().len(), 3);
    let mut charts: Vec<String> =
        std::fs::read_dir(&plots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    charts.sort();
    assert_eq!(
        charts,
        ["allocation-vs-demand.svg", "allocation.svg", "burn-down.svg", "fragmentation.svg", "pending.svg"]
    );
    // -o json prints the same report
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-o", "json", "-q"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json);
}

#[test]
fn simulate_bad_scenario_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(&scenario, SCENARIO.replace("tick_s: 300", "tick_s: 0")).unwrap();
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-q"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid sim.tick_s `0`: expected a positive number of seconds"), "{stderr}");
}

#[test]
fn fill_up_runs_show_no_completion_time() {
    // In fill-up mode work never leaves, so no job finishes: the table says `-`, not 0.00 h.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("fill.yaml");
    std::fs::write(&scenario, SCENARIO.replace("name: tiny", "name: fill").to_string() + "  transforms: [fill-up]\n")
        .unwrap();
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.contains("cumulo ")).unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().filter(|c| *c != "│").collect();
    assert_eq!(&cells[..4], ["cumulo", "0", "-", "-"], "{stdout}");
}
