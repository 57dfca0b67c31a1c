//! Trace importers on the real files in `$CUMULO_DATA_DIR` (skipped with a message when absent)
//! and on broken rows written here.

use std::path::PathBuf;

use cumulo_sim::Error;
use cumulo_sim::trace::{OnBadRow, alibaba, azure, gavel};
use cumulo_types::{GpuModel, JobKind, MilliGpu};

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

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const TABLE: &str = r#"{
    "k80": {"('ResNet-18 (batch size 16)', 1)": {"null": 2.0}, "('LM (batch size 5)', 1)": {"null": 0.0}},
    "p100": {"('ResNet-18 (batch size 16)', 1)": {"null": 5.0}, "('LM (batch size 5)', 1)": {"null": 1.0}},
    "v100": {"('ResNet-18 (batch size 16)', 1)": {"null": 10.0}, "('LM (batch size 5)', 1)": {"null": 2.0}}
}"#;

#[test]
fn gavel_philly_trace_real_file() {
    let (Some(table), Some(trace)) =
        (data("gavel/simulation_throughputs.json"), data("gavel/traces/msr/seed=0/11cb48.trace"))
    else {
        return;
    };
    let t = gavel::Throughputs::load(&table).unwrap();
    assert_eq!(t.table.len(), 83, "83 (job type, scale) keys per worker type");
    let w = gavel::import(&trace, &t, OnBadRow::Fail).unwrap();
    assert_eq!(w.jobs.len(), 2000);
    assert!(w.skipped.is_empty());
    assert!(w.jobs.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
    assert_eq!(w.jobs[0].arrival_s, 0);
    assert!(w.jobs.last().unwrap().arrival_s <= 8_799_232);
    let max_gpus = w.jobs.iter().map(|j| j.total_gpus_milli() / 1000).max().unwrap();
    assert_eq!(max_gpus, 64);
    // heterogeneity: every job is at least as fast on B200 as on H100, and on H100 as on V100
    for j in &w.jobs {
        let row = &w.speeds[j.job_type as usize];
        assert!(row.on(GpuModel::B200) >= row.on(GpuModel::H100) && row.on(GpuModel::H100) >= 1.0, "{}", row.name);
        let v100 = j.run_time_on(&w.speeds, Some(GpuModel::V100)).unwrap();
        let b200 = j.run_time_on(&w.speeds, Some(GpuModel::B200)).unwrap();
        assert!(b200 < v100 || v100 <= 1, "{} {v100} {b200}", row.name);
    }
}

#[test]
fn gavel_every_trace_imports_cleanly() {
    let Some(table) = data("gavel/simulation_throughputs.json") else { return };
    let t = gavel::Throughputs::load(&table).unwrap();
    let mut count = 0;
    for dir in ["gavel/traces/msr/seed=0", "gavel/traces/physical_cluster"] {
        let Some(dir) = data(dir) else { return };
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let w = gavel::import(&path, &t, OnBadRow::Fail).unwrap();
            assert_eq!(w.jobs.len(), text.lines().filter(|l| !l.trim().is_empty()).count(), "{}", path.display());
            count += 1;
        }
    }
    assert_eq!(count, 23);
}

#[test]
fn gavel_ten_field_format() {
    let dir = tempfile::tempdir().unwrap();
    let t = gavel::Throughputs::parse(TABLE, "t.json").unwrap();
    let trace = write(
        &dir,
        "pc.trace",
        "ResNet-18 (batch size 16)\tpython3 main.py\timage_classification/cifar10\t--num_steps\t1\t36000\t1\t2\t-1.000000\t60\n",
    );
    let w = gavel::import(&trace, &t, OnBadRow::Fail).unwrap();
    let j = &w.jobs[0];
    assert_eq!((j.arrival_s, j.work_s, j.num_nodes, j.gpus_per_node), (60, 3600, 1, MilliGpu::whole(1)));
    assert_eq!(j.priority.0, 1000, "priority weight 2 doubles normal priority");
    assert_eq!(j.run_time_on(&w.speeds, Some(GpuModel::K80)), Some(18_000));
}

#[test]
fn gavel_job_that_does_not_fit_a_k80_excludes_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = gavel::Throughputs::parse(TABLE, "t.json").unwrap();
    let trace = write(&dir, "vc.trace", "LM (batch size 5)\tcmd\t-n\t1\t100\t0.0\t1\n");
    let w = gavel::import(&trace, &t, OnBadRow::Fail).unwrap();
    assert!(!w.jobs[0].models.contains(GpuModel::K80));
    assert!(w.jobs[0].models.contains(GpuModel::P100));
    assert_eq!(w.jobs[0].run_time_on(&w.speeds, Some(GpuModel::K80)), None);
}

#[test]
fn gavel_broken_rows_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = gavel::Throughputs::parse(TABLE, "t.json").unwrap();
    let text = "ResNet-18 (batch size 16)\tcmd\t-n\t1\t100\t0.0\t1\n\
                ResNet-18 (batch size 16)\tcmd\t-n\t1\tmany\t0.0\t1\n\
                Unknown\tcmd\t-n\t1\t100\t0.0\t1\n\
                ResNet-18 (batch size 16)\tcmd\n\
                ResNet-18 (batch size 16)\tcmd\t-n\t1\t100\t-5\t1\n\
                ResNet-18 (batch size 16)\tcmd\t-n\t1\t100\t3\t0\n";
    let trace = write(&dir, "vc.trace", text);
    let w = gavel::import(&trace, &t, OnBadRow::Skip).unwrap();
    assert_eq!(w.jobs.len(), 1);
    let file = trace.display().to_string();
    let got: Vec<String> = w.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        got,
        vec![
            format!("{file}:2: invalid total_steps `many`: expected an integer"),
            format!("{file}:3: unknown job type `Unknown` at scale 1: not in the throughput table"),
            format!("{file}:4: expected 7 or 10 tab-separated fields, found 2"),
            format!("{file}:5: invalid arrival_time `-5`: expected non-negative seconds"),
            format!("{file}:6: invalid scale_factor `0`: expected a positive GPU count"),
        ]
    );
    let err = gavel::import(&trace, &t, OnBadRow::Fail).unwrap_err();
    assert!(matches!(err, Error::Malformed { line: 2, .. }), "{err}");
}

#[test]
fn alibaba_pods_and_nodes_real_files() {
    let (Some(pods), Some(nodes)) = (
        data("alibaba-clusterdata/cluster-trace-gpu-v2023/csv/openb_pod_list_default.csv"),
        data("alibaba-clusterdata/cluster-trace-gpu-v2023/csv/openb_node_list_all_node.csv"),
    ) else {
        return;
    };
    let names = alibaba::GpuNames::default();
    let w = alibaba::import_pods(&pods, &names, OnBadRow::Fail).unwrap();
    assert_eq!(w.jobs.len(), 8152);
    let count = |n: u32| w.jobs.iter().filter(|j| j.gpus_per_node.whole_gpus_ceil() == n).count();
    assert_eq!((count(0), count(1), count(2), count(4), count(8)), (1088, 6989, 16, 15, 44));
    assert!(w.jobs.iter().any(|j| j.gpus_per_node.is_fraction()), "GPU-sharing pods keep their fraction");
    assert!(w.jobs.iter().all(|j| j.models.is_any()), "the default list names no GPU model");
    let (nodes, skipped) = alibaba::import_nodes(&nodes, &names, OnBadRow::Fail).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(nodes.len(), 1523);
    assert_eq!(nodes.iter().filter(|n| n.model.is_none()).count(), 310);
    assert_eq!(nodes.iter().filter(|n| n.model == Some(GpuModel::A10G)).count(), 549, "G2 maps to A10G");
}

#[test]
fn alibaba_every_pod_list_variant_imports() {
    let Some(dir) = data("alibaba-clusterdata/cluster-trace-gpu-v2023/csv") else { return };
    let names = alibaba::GpuNames::default();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("openb_pod_list_") {
            let w = alibaba::import_pods(&path, &names, OnBadRow::Fail).unwrap();
            assert!((7064..=10094).contains(&w.jobs.len()), "{} {}", path.display(), w.jobs.len());
            if path.ends_with("openb_pod_list_gpuspec33.csv") {
                assert!(w.jobs.iter().any(|j| j.models.contains(GpuModel::T4) && !j.models.is_any()));
            }
            if path.file_name().unwrap().to_string_lossy().contains("multigpu") {
                assert!(w.jobs.iter().all(|j| j.work_s == u64::MAX), "untimed lists fill up");
            }
            files += 1;
        }
    }
    assert_eq!(files, 24, "the default list and its 23 variants");
}

#[test]
fn alibaba_broken_rows() {
    let dir = tempfile::tempdir().unwrap();
    let header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";
    let rows = "p0,1000,1024,1,500,,LS,Running,0,100,0\n\
                p1,1000,1024,1,500,H900,LS,Running,0,100,0\n\
                p2,lots,1024,1,500,,LS,Running,0,100,0\n\
                p3,1000,1024,2,500,,BE,Running,0,100,0\n\
                p4,1000,1024,1,1000,,BE,Running,50,10,50\n";
    let path = write(&dir, "pods.csv", &format!("{header}{rows}"));
    let w = alibaba::import_pods(&path, &alibaba::GpuNames::default(), OnBadRow::Skip).unwrap();
    assert_eq!(w.jobs.len(), 1);
    assert_eq!(w.jobs[0].gpus_per_node, MilliGpu(500));
    let file = path.display().to_string();
    let got: Vec<String> = w.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(got[0], format!("{file}:3: gpu_spec: unknown GPU model `H900` (known: {})", GpuModel::known_names()));
    assert_eq!(got[1], format!("{file}:4: invalid cpu_milli `lots`: expected a non-negative number"));
    assert_eq!(got[2], format!("{file}:5: invalid gpu_milli `500` with num_gpu 2: only a single GPU can be shared"));
    assert_eq!(got[3], format!("{file}:6: deletion_time 10 is before scheduled_time 50"));
    let missing = write(&dir, "short.csv", "name,cpu_milli\np0,1\n");
    let err = alibaba::import_pods(&missing, &alibaba::GpuNames::default(), OnBadRow::Skip).unwrap_err().to_string();
    assert_eq!(err, format!("{}: missing column `memory_mib`", missing.display()));
}

#[test]
fn alibaba_dlrm_real_file() {
    let Some(path) = data("alibaba-clusterdata/cluster-trace-gpu-v2025/disaggregated_DLRM_trace.csv") else { return };
    let w = alibaba::import_dlrm(&path, OnBadRow::Fail).unwrap();
    assert_eq!(w.jobs.len(), 23_871);
    assert!(w.jobs.iter().all(|j| j.kind == JobKind::Inference && j.work_s >= 1));
    assert_eq!(w.jobs.iter().filter(|j| j.gpus_per_node == MilliGpu::whole(1)).count(), 7386, "HN instances");
    assert_eq!(w.tenants.len(), 156, "one tenant per app");
    let span = w.jobs.iter().map(|j| j.arrival_s + j.work_s).max().unwrap();
    assert!((25 * 86_400..=35 * 86_400).contains(&span), "about 31 days: {span}");
}

#[test]
fn alibaba_dlrm_broken_rows() {
    let dir = tempfile::tempdir().unwrap();
    let text = "instance_sn,role,app_name,cpu_request,gpu_request,memory_request,creation_time,deletion_time\n\
                i0,HN,a,12,1,120.0,,\n\
                i1,XN,a,12,1,120.0,,\n\
                i2,CN,a,12,0,120.0,500,100\n\
                i3,CN,b,8,0,64,10,90\n";
    let path = write(&dir, "dlrm.csv", text);
    let w = alibaba::import_dlrm(&path, OnBadRow::Skip).unwrap();
    assert_eq!(w.jobs.len(), 2);
    assert_eq!(w.jobs[0].work_s, 90, "an open-ended instance runs to the trace's last time stamp");
    let file = path.display().to_string();
    assert_eq!(w.skipped[0].to_string(), format!("{file}:3: invalid role `XN`: expected HN or CN"));
    assert_eq!(w.skipped[1].to_string(), format!("{file}:4: deletion_time 100 is before creation_time 500"));
}

#[test]
fn azure_llm_traces_real_files() {
    for (name, requests) in [("AzureLLMInferenceTrace_code.csv", 8819), ("AzureLLMInferenceTrace_conv.csv", 19_366)] {
        let Some(path) = data(&format!("azure-llm-inference-2023/{name}")) else { return };
        let scale = azure::Autoscale::default();
        let (w, series) = azure::import(&path, &scale, OnBadRow::Fail).unwrap();
        assert_eq!(series.requests, requests);
        assert!((55..=60).contains(&series.replicas.len()), "about an hour of minutes: {}", series.replicas.len());
        // the replica jobs cover exactly the replica-minutes of the series
        let replica_s: u64 = w.jobs.iter().map(|j| j.work_s).sum();
        assert_eq!(replica_s, series.replicas.iter().map(|r| *r as u64).sum::<u64>() * 60);
        assert!(series.replicas.iter().all(|r| *r >= 1));
    }
}

#[test]
fn azure_broken_rows_and_hand_computed_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                2023-11-16 18:00:00.0,40000,0\n\
                2023-11-16 18:00:10.0,0,4000\n\
                2023-11-16 18:01:30.0,100,10\n\
                2023-11-16 18:02:00.0,x,1\n\
                not a time,1,1\n";
    let path = write(&dir, "load.csv", text);
    let scale = azure::Autoscale { window_s: 60, target_utilisation: 1.0 / 60.0, ..azure::Autoscale::default() };
    // minute 0 needs 2 s of replica time with 1 s of capacity per replica: 2 replicas; minute 1: 1
    let (w, series) = azure::import(&path, &scale, OnBadRow::Skip).unwrap();
    assert_eq!(series.replicas, vec![2, 1]);
    assert_eq!(w.jobs.iter().map(|j| (j.arrival_s, j.work_s)).collect::<Vec<_>>(), vec![(0, 120), (0, 60)]);
    let file = path.display().to_string();
    assert_eq!(w.skipped[0].to_string(), format!("{file}:5: invalid ContextTokens `x`: expected a token count"));
    assert_eq!(
        w.skipped[1].to_string(),
        format!("{file}:6: invalid TIMESTAMP `not a time`: expected YYYY-MM-DD HH:MM:SS.fffffff")
    );
}
