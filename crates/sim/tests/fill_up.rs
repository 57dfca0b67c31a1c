//! The FGD fill-up experiment on the real Alibaba 2023 trace in `$CUMULO_DATA_DIR` (skipped with
//! a message when absent), kept small: every twelfth node of the real node list, the real
//! `openb_pod_list_default` pods, a few seeds.

use std::path::PathBuf;

use cumulo_sim::scenario::Scenario;
use cumulo_sim::simulate::simulate;

fn data_dir() -> PathBuf {
    std::env::var("CUMULO_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")))
}

fn data(rel: &str) -> Option<PathBuf> {
    let path = data_dir().join(rel);
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} not found", path.display());
        None
    }
}

/// Allocation at 100 % arrived GPU request, per policy (in the scenario's order), for one seed.
fn allocation_at_100(nodes: &str, pods: &str, seed: u64) -> Vec<(String, f64)> {
    let yaml = format!(
        "
name: openb-fill-small
seed: {seed}
sim: {{tick_s: 1, preemption: false, retries: false, cpu_work_on_gpu_nodes: true}}
fleet:
  alibaba_nodes: {nodes}
workload:
  sources:
    - alibaba_pods: {{pods: {pods}}}
  transforms:
    - fill-up-sample: {{multiple: 1.3}}
policies: [cumulo, best-fit, random]
"
    );
    let scenario = Scenario::parse(&yaml).unwrap();
    let report = simulate(&scenario, &mut |_, _| {}).unwrap();
    report
        .policies
        .iter()
        .map(|p| (p.policy.clone(), p.fill_up.as_ref().and_then(|f| f.at(100)).expect("a fill-up curve to 100 %")))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[test]
fn cumulo_allocates_at_least_as_much_as_best_fit_on_a_slice_of_the_real_openb_trace() {
    let (Some(nodes), Some(pods)) = (
        data("alibaba-clusterdata/cluster-trace-gpu-v2023/csv/openb_node_list_all_node.csv"),
        data("alibaba-clusterdata/cluster-trace-gpu-v2023/csv/openb_pod_list_default.csv"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&nodes).unwrap();
    let mut lines = text.lines();
    let mut slice: Vec<&str> = vec![lines.next().unwrap()];
    slice.extend(lines.step_by(12));
    let sliced = dir.path().join("nodes.csv");
    std::fs::write(&sliced, slice.join("\n") + "\n").unwrap();
    let (nodes, pods) = (sliced.display().to_string(), pods.display().to_string());
    let runs: Vec<Vec<(String, f64)>> = (1..=3).map(|seed| allocation_at_100(&nodes, &pods, seed)).collect();
    let of = |policy: &str| {
        median(runs.iter().map(|r| r.iter().find(|(p, _)| p == policy).expect("policy in the report").1).collect())
    };
    let (cumulo, best_fit, random) = (of("cumulo"), of("best-fit"), of("random"));
    println!(
        "median allocation at 100 % arrived: cumulo {cumulo:.2} %, best-fit {best_fit:.2} %, random {random:.2} %"
    );
    assert!(cumulo > 50.0, "the fill-up placed work at all: {cumulo:.2} %");
    assert!(cumulo >= best_fit, "cumulo {cumulo:.2} % below best-fit {best_fit:.2} %");
    assert!(cumulo > random, "cumulo {cumulo:.2} % not above random {random:.2} %");
}
