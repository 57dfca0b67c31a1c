//! Jobs from job files carry what they need of their site (`cumulo_sched::needs`), and the
//! simulator keeps them off pools that cannot give it, by the rule the server's loop uses.

use cumulo_sim::scenario::Scenario;
use cumulo_sim::simulate::simulate;

const BOXED: &str = "name: boxed\nresources:\n  accelerators: {H100: 8, A100: 8}\n  image_id: docker:nvcr.io/nvidia/pytorch:24.01-py3\nduration: 1h\nrun: python train.py\n";
const PLAIN: &str = "name: plain\nresources:\n  accelerators: {H100: 8, A100: 8}\nduration: 1h\nrun: python train.py\n";

/// A cheap H100 pool whose clusters run no container image, and a dearer A100 pool that does.
fn scenario(dir: &std::path::Path, h100_images: bool) -> Scenario {
    std::fs::write(dir.join("boxed.yaml"), BOXED).unwrap();
    std::fs::write(dir.join("plain.yaml"), PLAIN).unwrap();
    let yaml = format!(
        "name: needs\nsim: {{tick_s: 1, sample_s: 60, job_rows: true}}\n\
         fleet:\n  pools:\n\
         \x20   - {{provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 2, price_per_node_hour: 10, container_images: {h100_images}}}\n\
         \x20   - {{provider: gcp, region: us-central1, capacity: on-demand, gpu: A100, gpus_per_node: 8, vcpus: 96, memory_gb: 1360, nodes: 2, price_per_node_hour: 50}}\n\
         workload:\n  sources:\n    - job_files: {{files: [{boxed}, {plain}], every_s: 10}}\n",
        boxed = dir.join("boxed.yaml").display(),
        plain = dir.join("plain.yaml").display(),
    );
    Scenario::parse(&yaml).unwrap()
}

/// GPU model each job's last attempt ran on, by job, for every policy.
fn models(scenario: &Scenario) -> Vec<(String, Vec<Option<String>>)> {
    let report = simulate(scenario, &mut |_, _| {}).unwrap();
    report
        .policies
        .iter()
        .map(|p| {
            assert!(p.job_rows.iter().all(|r| r.outcome == "finished"), "{}: {:?}", p.policy, p.job_rows);
            (p.policy.clone(), p.job_rows.iter().map(|r| r.gpu.clone()).collect())
        })
        .collect()
}

#[test]
fn a_job_needing_a_container_runtime_never_lands_on_a_pool_without_one() {
    let dir = tempfile::tempdir().unwrap();
    for (policy, gpus) in models(&scenario(dir.path(), false)) {
        assert_eq!(gpus, [Some("A100".to_string()), Some("H100".to_string())], "{policy}: the image job on A100");
    }
    // The same files where the cheap pool runs images: the image job takes it too, so the rule
    // above is what kept it off.
    let cumulo = &models(&scenario(dir.path(), true))[0];
    assert_eq!(cumulo.1, [Some("H100".to_string()), Some("H100".to_string())], "{}", cumulo.0);
}

#[test]
fn pools_in_one_location_must_agree_on_what_they_can_do() {
    let yaml = "name: x\nfleet:\n  pools:\n\
      \x20   - {provider: aws, region: r, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 8, memory_gb: 8, nodes: 1, price_per_node_hour: 1, uploads: false}\n\
      \x20   - {provider: aws, region: r, capacity: spot, gpu: H100, gpus_per_node: 8, vcpus: 8, memory_gb: 8, nodes: 1, price_per_node_hour: 1}\n\
      workload:\n  sources: [{job_files: {files: [x.yaml]}}]\n";
    let scenario = Scenario::parse(yaml).unwrap();
    let err = match cumulo_sim::fleet::Fleet::for_scenario(&scenario) {
        Ok(_) => panic!("pools disagreeing in one location were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("fleet.pools") && err.contains("sites are judged by location"), "{err}");
}

#[test]
fn a_job_file_the_simulator_cannot_read_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: bad\nresources:\n  accelerators: H100:0.3:x\nrun: x\n").unwrap();
    let err = match cumulo_sim::jobfiles::import(&[path.display().to_string()], 0, 60) {
        Ok(_) => panic!("a bad job file was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("bad.yaml") && err.contains("accelerators"), "{err}");
}

/// `examples/sim-job-files.yaml`: SkyPilot's fine-tune (an image and a local workdir) waits for the
/// site that runs images, though the H100 site is cheaper; the sweep, needing nothing, takes it.
#[test]
fn the_job_files_example_keeps_the_fine_tune_off_the_site_without_a_runtime() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sim-job-files.yaml"));
    let scenario = Scenario::load(path).unwrap();
    for (policy, gpus) in models(&scenario) {
        assert_eq!(gpus.len(), 3, "{policy}: the fine-tune and two sweep jobs");
        assert_eq!(gpus[0].as_deref(), Some("A100-80GB"), "{policy}: the fine-tune");
        assert!(gpus[1..].iter().all(|g| g.as_deref() == Some("H100")), "{policy}: {gpus:?}");
    }
}
