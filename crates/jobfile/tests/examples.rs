//! The job files shipped in `examples/jobs/`: every example parses, every file in `broken/` fails
//! with the problems its `# expect:` lines name.

use std::path::{Path, PathBuf};

use cumulo_jobfile::{parse_file, parse_many_file};
use cumulo_types::{GpuModel, GpuSelector, JobKind, MilliGpu, SpreadPolicy, TopologyNeed};

fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs")).to_path_buf()
}

fn job_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses() {
    let files = job_files(&examples_dir());
    assert!(files.len() >= 6, "expected the example job files, found {files:?}");
    for file in files {
        let jobs = parse_many_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!jobs.is_empty(), "{}", file.display());
    }
}

#[test]
fn every_broken_example_fails_with_its_expected_problems() {
    let files = job_files(&examples_dir().join("broken"));
    assert!(files.len() >= 8, "expected the broken job files, found {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{} has no `# expect:` line", file.display());
        let err = match parse_many_file(&file) {
            Ok(jobs) => panic!("{} parsed but must fail: {jobs:?}", file.display()),
            Err(e) => e.to_string(),
        };
        for want in expected {
            assert!(err.contains(want), "{}: expected `{want}` in:\n{err}", file.display());
        }
    }
}

#[test]
fn examples_mean_what_they_say() {
    let dir = examples_dir();
    let pretrain = parse_file(&dir.join("pretrain-gb200-nvl72.yaml")).unwrap();
    assert_eq!(
        (pretrain.kind, pretrain.num_nodes, pretrain.topology),
        (JobKind::Training, 18, TopologyNeed::NvlinkDomain)
    );
    let demand = pretrain.resources[0].accelerators.as_ref().unwrap();
    assert_eq!((&demand.selector, demand.per_node), (&GpuSelector::Models(vec![GpuModel::GB200]), MilliGpu::whole(4)));
    assert!(!pretrain.preemptible);

    let service = parse_file(&dir.join("inference-service.yaml")).unwrap();
    assert_eq!((service.kind, service.replicas, service.spread), (JobKind::Inference, 4, SpreadPolicy::Providers));
    assert!(service.ordered);
    assert_eq!(service.resources.len(), 3);
    assert!(
        service.resources.iter().all(|r| r.accelerators.as_ref().unwrap().selector == GpuSelector::MinMemoryGb(80))
    );

    let notebook = parse_file(&dir.join("notebook-quarter-gpu.yaml")).unwrap();
    let demand = notebook.resources[0].accelerators.as_ref().unwrap();
    assert_eq!(demand.per_node, MilliGpu(250));
    assert_eq!(demand.selector, GpuSelector::Models(vec![GpuModel::A100, GpuModel::L4]));

    let skypilot = parse_file(&dir.join("skypilot-finetune.yaml")).unwrap();
    assert_eq!(skypilot.resources.len(), 3, "one option per any_of item, both GPU models in each");
    assert!(skypilot.resources.iter().all(|r| r.use_spot && r.cpus_milli == 32_000));

    let sweep = parse_many_file(&dir.join("batch-sweep.yaml")).unwrap();
    assert_eq!(sweep.len(), 2);
    assert_eq!(sweep[1].envs["LR"], "3e-4");
}
