//! SkyPilot task files read as SkyPilot reads them: the files under `tests/fixtures/skypilot`
//! (shapes of SkyPilot's own examples) give the accelerators, counts, locations, spot choice,
//! node counts, links between jobs and the warnings SkyPilot's reading calls for.

use std::path::Path;

use cumulo_jobfile::{Problem, Shape, Submission, parse_submission};
use cumulo_types::{AcceleratorDemand, GpuModel, GpuSelector, InfraSelector, JobSpec, MilliGpu};

fn fixture(name: &str) -> Submission {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/skypilot").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_submission(&text, name).unwrap_or_else(|e| panic!("SkyPilot accepts {name}; Cumulo must too:\n{e}"))
}

fn one(name: &str) -> (JobSpec, Vec<Problem>) {
    let submission = fixture(name);
    assert_eq!(submission.jobs.len(), 1, "{name} holds one task");
    (submission.jobs.into_iter().next().unwrap(), submission.warnings)
}

fn models(models: &[GpuModel], gpus: u32) -> Option<AcceleratorDemand> {
    Some(AcceleratorDemand {
        selector: GpuSelector::Models(models.to_vec()),
        per_node: MilliGpu::whole(gpus),
        names: Vec::new(),
    })
}

fn named(name: &str, gpus: u32) -> Option<AcceleratorDemand> {
    Some(AcceleratorDemand {
        selector: GpuSelector::Named(name.into()),
        per_node: MilliGpu::whole(gpus),
        names: Vec::new(),
    })
}

fn accelerators(job: &JobSpec) -> Vec<Option<AcceleratorDemand>> {
    job.resources.iter().map(|o| o.accelerators.clone()).collect()
}

/// The warning paths, in order.
fn warned(warnings: &[Problem]) -> Vec<&str> {
    warnings.iter().map(|w| w.path.as_str()).collect()
}

#[test]
fn an_unknown_name_inside_a_set_of_alternatives_is_kept() {
    let (job, warnings) = one("llama4-accelerator-set.yaml");
    assert_eq!(
        accelerators(&job),
        vec![
            models(&[GpuModel::H100, GpuModel::H200, GpuModel::GH200, GpuModel::B200, GpuModel::GB200], 8),
            named("B100", 8)
        ],
        "the known models stay equal alternatives; B100, which no model knows, is an alternative by name"
    );
    assert_eq!(job.resources[0].cpus_milli, 32_000);
    assert!(job.resources[0].cpus_or_more, "`32+` is at least 32");
    assert!(!job.envs.contains_key("HF_TOKEN"), "a null env is left for --env, as SkyPilot does");
    assert_eq!(
        warned(&warnings),
        ["resources.accelerators", "resources.disk_size", "resources.disk_tier", "resources.ports"],
        "B100 and every VM-tuning field are named once: {warnings:#?}"
    );
    assert!(warnings[0].message.starts_with("accelerator `B100` is no GPU model Cumulo knows"), "{}", warnings[0]);
    assert_eq!(warnings[1].message, "not applied: the node's disk is the cluster's own");
}

#[test]
fn a_header_naming_the_chain_makes_a_pipeline() {
    let submission = fixture("chain-two-steps.yaml");
    assert_eq!(submission.shape, Shape::Pipeline { name: "two-steps".into() }, "the header is the pipeline's name");
    let names: Vec<&str> = submission.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["step-one", "step-two"], "the header is no job");
    assert_eq!(submission.after, vec![vec![], vec![0]], "step two runs after step one");
    let first = &submission.jobs[0].resources[0];
    assert_eq!((first.cpus_milli, first.cpus_or_more), (2000, true), "cpus: 2+");
    assert_eq!((first.memory_mib, first.memory_or_more), (8 * 1024, true), "memory: 8+ (GB)");
}

#[test]
fn documents_without_a_header_run_side_by_side_and_say_so() {
    let submission = fixture("two-documents-no-header.yaml");
    assert_eq!(submission.shape, Shape::Independent);
    assert_eq!(submission.after, vec![Vec::<usize>::new(), vec![]], "no job waits for another");
    assert!(
        submission.warnings.iter().any(|w| w.path.is_empty() && w.message.contains("SkyPilot would chain them")),
        "the difference from SkyPilot is told: {:#?}",
        submission.warnings
    );
    assert!(submission.jobs[1].resources[0].use_spot, "the second task asks for spot");
    assert_eq!(warned(&submission.warnings)[0], "file_mounts./cache", "the bucket is not mounted, and that is said");
    assert_eq!(submission.jobs[0].file_mounts.get("/cache").map(String::as_str), Some("gs://gpt2-data"));
}

#[test]
fn a_parallel_header_makes_a_job_group() {
    let submission = fixture("job-group.yaml");
    assert_eq!(submission.shape, Shape::Group { name: "rl-post-training".into() });
    assert_eq!(submission.jobs.len(), 2, "the header is no job");
    for job in &submission.jobs {
        assert_eq!(job.group.as_deref(), Some("rl-post-training"), "{} belongs to the group", job.name);
    }
    assert_eq!(accelerators(&submission.jobs[1]), vec![models(&[GpuModel::L4], 1)]);
}

#[test]
fn non_gpu_accelerators_are_kept_by_name() {
    let (job, warnings) = one("inferentia.yaml");
    assert_eq!(accelerators(&job), vec![named("Inferentia", 6)], "Inferentia is kept, six of them");
    assert_eq!(warned(&warnings), ["resources.accelerators", "resources.disk_size", "resources.ports"]);

    let (job, _) = one("gpu-or-inferentia.yaml");
    assert_eq!(
        accelerators(&job),
        vec![models(&[GpuModel::A100], 1), named("Inferentia", 6)],
        "a GPU or a Neuron accelerator, unordered"
    );
    assert!(!job.ordered, "a mapping is a set of equals");

    let (job, _) = one("tpu.yaml");
    assert_eq!(accelerators(&job), vec![named("tpu-v5litepod-8", 1)], "a TPU slice by its lower-case name");
    let provider = job.resources[0].infra.as_ref().and_then(|infra| infra.provider.as_deref());
    assert_eq!(provider, Some("gcp"), "TPUs exist only on GCP, so SkyPilot sets cloud: gcp for them");
}

#[test]
fn a_set_without_counts_means_one_of_each_and_names_are_canonical() {
    let (job, warnings) = one("serve-any-gpu.yaml");
    assert_eq!(job.replicas, 2, "replica_policy.min_replicas");
    assert_eq!(
        accelerators(&job),
        vec![models(
            &[
                GpuModel::L4,
                GpuModel::A10G,
                GpuModel::A10,
                GpuModel::L40,
                GpuModel::A40,
                GpuModel::A100,
                GpuModel::A100_80
            ],
            1
        )],
        "A10g is SkyPilot's A10G; a name without a count is one GPU"
    );
    assert_eq!(warned(&warnings), ["service", "resources.ports", "resources.disk_tier"], "in file order");
    assert_eq!(
        warnings[0].message,
        "only the replica count is applied (replicas, else replica_policy.min_replicas, fixed): not applied: readiness_probe"
    );
}

#[test]
fn spot_alternatives_and_node_counts() {
    let (job, _) = one("two-nodes-spot-or-not.yaml");
    assert_eq!(job.num_nodes, 2);
    let spot: Vec<bool> = job.resources.iter().map(|o| o.use_spot).collect();
    assert_eq!(spot, [true, false], "spot first, then on-demand, both A100-80GB:8");
    assert!(job.resources.iter().all(|o| o.accelerators == models(&[GpuModel::A100_80], 8)));
}

#[test]
fn image_workdir_and_mounts_are_named_as_not_applied() {
    let (job, warnings) = one("docker-image-on-gcp.yaml");
    assert_eq!(job.resources[0].infra, Some(InfraSelector::parse("gcp").unwrap()));
    assert!(job.resources[0].use_spot, "`True` is YAML's true");
    assert_eq!(job.workdir.as_deref(), Some("mistral"));
    assert_eq!(job.image.as_deref(), Some("winglian/axolotl:main-py3.10-cu118-2.0.1"), "docker: is a container image");
    assert_eq!(
        warned(&warnings),
        ["workdir", "file_mounts./sky-notebook"],
        "the image is applied where a driver runs images: {warnings:#?}"
    );
    let (vm, warnings) = {
        let s = parse_submission("resources:\n  image_id: ami-0123456789\n", "job.yaml").unwrap();
        (s.jobs[0].clone(), s.warnings)
    };
    assert_eq!(vm.image, None, "an AMI is a VM image");
    assert_eq!(
        warnings[0].message,
        "not applied: a VM image; Cumulo starts no VM (a container image is written docker:IMAGE)"
    );
}

#[test]
fn gpus_is_another_name_for_accelerators() {
    let (job, _) = one("gpus-alias.yaml");
    assert_eq!(accelerators(&job), vec![models(&[GpuModel::H100], 8)]);
    assert_eq!(job.num_nodes, 2);
    assert_eq!(job.resources[0].infra, Some(InfraSelector::parse("aws/us-east-1").unwrap()));
    let err = parse_submission("resources:\n  gpus: H100:8\n  accelerators: H100:8\n", "job.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "job.yaml:2: resources.gpus: cannot be combined with `accelerators`: `gpus` is another name for it, give one of the two",
        "SkyPilot refuses both together as well"
    );
}

#[test]
fn an_instance_type_stands_for_its_shape_and_restarts_become_attempts() {
    let (job, warnings) = one("instance-type.yaml");
    let option = &job.resources[0];
    assert_eq!(option.accelerators, models(&[GpuModel::H100], 8), "p5.48xlarge has 8 H100");
    assert_eq!((option.cpus_milli, option.cpus_or_more), (192_000, false), "exactly its 192 vCPUs");
    assert_eq!(option.memory_mib, 2048 * 1024, "and its 2 TiB");
    assert_eq!(option.instance_type.as_deref(), Some("p5.48xlarge"));
    assert_eq!(job.max_attempts, 4, "max_restarts_on_errors: 3 allows 4 attempts");
    assert!(warnings.is_empty(), "nothing here is dropped: {warnings:#?}");
    assert_eq!(job.envs["LEARNING_RATE"], "1e-5", "not a YAML 1.1 float: kept as written");
    assert_eq!(job.envs["WARMUP"], "0.001", "a YAML 1.1 float, as Python prints it");
    assert_eq!(job.envs["USE_FP8"], "True", "as Python prints a boolean");
}

#[test]
fn exact_and_at_least_sizes() {
    let job = cumulo_jobfile::parse_str("resources:\n  cpus: 4\n  memory: 16\n", "job.yaml").unwrap();
    let option = &job.resources[0];
    assert_eq!((option.cpus_milli, option.cpus_or_more), (4000, false), "cpus: 4 is exactly 4 in SkyPilot");
    assert_eq!((option.memory_mib, option.memory_or_more), (16 * 1024, false), "memory: 16 is exactly 16 GB");
    let job = cumulo_jobfile::parse_str("resources:\n  memory: 512M\n", "job.yaml").unwrap();
    assert_eq!(job.resources[0].memory_mib, 512, "SkyPilot's one-letter units");
}

#[test]
fn sizes_default_to_skypilots_vm_on_a_cloud() {
    let job = cumulo_jobfile::parse_str("resources:\n  infra: aws\nrun: echo\n", "job.yaml").unwrap();
    let option = &job.resources[0];
    assert_eq!(
        (option.cpus_milli, option.cpus_or_more, option.memory_mib, option.memory_or_more),
        (8000, true, 32 * 1024, true),
        "8+ vCPUs and 32+ GB, SkyPilot's default VM, when the file names a cloud and asks for nothing"
    );
    let job = cumulo_jobfile::parse_str("run: echo\n", "job.yaml").unwrap();
    assert_eq!(job.resources[0].cpus_milli, 1000, "anywhere else one vCPU, so that a local node fits it");
}

#[test]
fn after_names_earlier_jobs_or_ids() {
    let text = "name: prep\nrun: echo\n---\nname: train\nafter: [prep, 12]\nrun: echo\n";
    let submission = parse_submission(text, "jobs.yaml").unwrap();
    assert_eq!(submission.after, vec![vec![], vec![0]], "train waits for prep, the document before it");
    assert_eq!(submission.jobs[1].after, vec![cumulo_types::JobId(12)], "and for job 12, already submitted");
    let err = parse_submission("name: a\nafter: [b]\nrun: x\n---\nname: b\nrun: y\n", "jobs.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "jobs.yaml:2: after: no earlier job named `b` in this file: expected a job id or the name of a job in an earlier document",
        "a job waits only for jobs before it, so a file never holds a cycle"
    );
}

#[test]
fn a_pipeline_header_refuses_parallel_and_a_group_needs_a_name() {
    let err = parse_submission("name: p\nexecution: sideways\n---\nrun: a\n---\nrun: b\n", "p.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:2: execution: invalid execution mode sideways: a pipeline header takes `execution: serial` (or none); `execution: parallel` makes a job group",
    );
    let err = parse_submission("name: bad name\nexecution: parallel\n---\nrun: a\n", "g.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "g.yaml:1: name: a job group header needs a name of letters, digits, '-' and '_' (as SkyPilot requires)"
    );
}

#[test]
fn a_partial_name_becomes_a_catalog_name_only_one_the_cloud_offers() {
    // SkyPilot's catalog has MI300X on RunPod only: on Kubernetes, `MI300` stays `MI300`.
    let (job, warnings) = one("amd-on-kubernetes.yaml");
    assert_eq!(accelerators(&job), vec![named("MI300", 2)], "kept as written on Kubernetes, as SkyPilot does");
    assert_eq!(job.resources[0].infra, Some(InfraSelector::parse("kubernetes").unwrap()));
    assert_eq!((job.resources[0].cpus_milli, job.resources[0].cpus_or_more), (128_000, false), "cpus: 128, exactly");
    assert_eq!(warned(&warnings), ["resources.accelerators"]);
    assert_eq!(job.image.as_deref(), Some("rocm/pytorch-training:v25.6"));
    // With no cloud named, the one catalog name containing it is taken.
    let job = cumulo_jobfile::parse_str("resources:\n  accelerators: MI300:2\n", "job.yaml").unwrap();
    assert_eq!(accelerators(&job), vec![models(&[GpuModel::MI300X], 2)], "MI300 is found only inside MI300X");
    let job = cumulo_jobfile::parse_str("resources:\n  accelerators: h100-sxm:8\n", "job.yaml").unwrap();
    assert_eq!(accelerators(&job), vec![named("H100-SXM", 8)], "SkyPilot's own name for an H100 is kept, in its case");
    assert!(GpuSelector::Named("H100-SXM".into()).accepts(GpuModel::H100), "and it places on H100 pools");
    let job = cumulo_jobfile::parse_str("resources:\n  accelerators: A100-40GB:1\n", "job.yaml").unwrap();
    assert_eq!(accelerators(&job), vec![named("A100-40GB", 1)], "A100-40GB is its own name, not folded into A100");
}

#[test]
fn accelerators_by_memory_and_maker() {
    let read = |text: &str| {
        let job = cumulo_jobfile::parse_str(&format!("resources:\n  accelerators: \"{text}\"\n"), "job.yaml")
            .unwrap_or_else(|e| panic!("SkyPilot accepts `{text}`: {e}"));
        job.resources[0].accelerators.clone().unwrap()
    };
    assert_eq!(read("80GB+:8").selector, GpuSelector::MinMemoryGb(80), "any GPU with at least 80 GB");
    assert_eq!(read("80GB+:8").per_node, MilliGpu::whole(8));
    let amd = read("amd:192GB+:2");
    assert_eq!(
        amd.selector,
        GpuSelector::Models(vec![GpuModel::MI300X, GpuModel::MI325X, GpuModel::MI355X]),
        "a maker and a minimum: that maker's models with that much memory"
    );
    assert_eq!(amd.per_node, MilliGpu::whole(2));
    assert_eq!(
        read("nvidia:48GB").selector,
        GpuSelector::Models(vec![GpuModel::A6000, GpuModel::A40, GpuModel::L40, GpuModel::L40S, GpuModel::Rtx6000Ada]),
        "without `+` the memory is exact; one GPU"
    );
    assert_eq!(read("24GB:1").per_node, MilliGpu::whole(1));
}

#[test]
fn file_mounts_keep_local_sources_and_name_each_bucket_in_a_warning() {
    let text = "file_mounts:\n  ~/data: ./data\n  /models/base: ../models\n  /ckpt:\n    source: s3://b/ckpt\n    mode: MOUNT\n  /new:\n    name: fresh-bucket\nrun: ls\n";
    let submission = parse_submission(text, "job.yaml").unwrap();
    let job = &submission.jobs[0];
    let local: Vec<(&str, &str)> = job.local_file_mounts().collect();
    assert_eq!(local, [("/models/base", "../models"), ("~/data", "./data")], "local sources are kept for the upload");
    assert_eq!(job.file_mounts.get("/ckpt").map(String::as_str), Some("s3://b/ckpt"));
    let warnings: Vec<(&str, &str)> =
        submission.warnings.iter().map(|w| (w.path.as_str(), w.message.as_str())).collect();
    assert!(
        warnings
            .iter()
            .any(|(p, m)| *p == "file_mounts./ckpt" && m.contains("bucket `s3://b/ckpt` is mounted by no driver")),
        "{warnings:?}"
    );
    assert_eq!(job.file_mounts.get("/new").map(String::as_str), Some("bucket://fresh-bucket"), "a bucket to create");
    assert!(
        warnings.iter().any(|(p, m)| *p == "file_mounts./new"
            && m.contains("bucket `bucket://fresh-bucket` is mounted by no driver")
            && m.contains("bucket_mounts: true")),
        "{warnings:?}"
    );
    assert!(!warnings.iter().any(|(p, _)| p.contains("data")), "local sources are not warned about: {warnings:?}");

    let err = parse_submission("file_mounts:\n  ../up: ./x\nrun: ls\n", "job.yaml").unwrap_err().to_string();
    assert!(err.contains("file_mounts.../up") && err.contains("without `..`"), "{err}");
    let err = parse_submission("file_mounts: [a]\nrun: ls\n", "job.yaml").unwrap_err().to_string();
    assert!(err.contains("file_mounts") && err.contains("expected a mapping of destination paths"), "{err}");
}

#[test]
fn an_instance_type_outside_the_catalog_stands_for_the_gpus_its_name_states() {
    let (job, warnings) = one("instance-type-named-gpus.yaml");
    assert_eq!(job.num_nodes, 2);
    let option = &job.resources[0];
    assert_eq!(option.accelerators, models(&[GpuModel::H100], 8), "SkyPilot's Nebius catalog: 8 H100");
    assert_eq!(option.instance_type.as_deref(), Some("gpu-h100-sxm_8gpu-128vcpu-1600gb"));
    assert_eq!(option.infra, Some(InfraSelector::parse("nebius/eu-north1").unwrap()));
    assert_eq!(warned(&warnings), ["resources.instance_type"], "vCPUs and memory not known: {warnings:#?}");
    assert!(warnings[0].message.contains("what its name states (GPUs, vCPUs and memory)"), "{}", warnings[0].message);
    // SkyPilot's catalog lists the 128 vCPUs and 1600 GB the Nebius name states, exactly.
    assert_eq!((option.cpus_milli, option.cpus_or_more), (128_000, false));
    assert_eq!((option.memory_mib, option.memory_or_more), (1600 * 1024, false));
    let given = cumulo_jobfile::parse_str(
        "resources:\n  instance_type: gpu-h100-sxm_8gpu-128vcpu-1600gb\n  cpus: 64+\nrun: x\n",
        "job.yaml",
    )
    .unwrap();
    assert_eq!(
        (given.resources[0].cpus_milli, given.resources[0].cpus_or_more),
        (64_000, true),
        "the file's own cpus win"
    );
    for (instance_type, want) in [
        ("gpu_8x_a100_80gb_sxm4", models(&[GpuModel::A100_80], 8)),
        ("gpu_1x_h100_sxm5", models(&[GpuModel::H100], 1)),
        ("BM.GPU4.8", models(&[GpuModel::A100], 8)),
        ("VM.GPU.A10.2", models(&[GpuModel::A10], 2)),
    ] {
        let text = format!("resources:\n  instance_type: {instance_type}\n");
        let job = cumulo_jobfile::parse_str(&text, "job.yaml").unwrap();
        assert_eq!(accelerators(&job), [want], "{instance_type}");
    }
}

/// From skypilot-org/skypilot `examples/using_file_mounts_with_env_vars.yaml` and
/// `examples/nemo/nemo_gpt_distributed.yaml`: SkyPilot fills envs into file_mounts as it loads.
#[test]
fn envs_are_filled_into_file_mount_destinations_sources_and_bucket_names() {
    let text = r#"
envs:
  MY_BUCKET: skypilot-temp
  MY_LOCAL_PATH: tmp-workdir
  MODEL_SIZE: 13b
  ROOT: /wiki
  STORE: s3
secrets:
  TOKEN_DIR: tok
  UNSET: null
workdir: ./${MY_LOCAL_PATH}
file_mounts:
  /mydir2:
    name: $MY_BUCKET
    store: gcs
    mode: MOUNT
  /another:
    name: ${MY_BUCKET}-2
    store: $STORE
  /checkpoint/${MODEL_SIZE}: ~/${MY_LOCAL_PATH}
  ${ROOT}:
    source: gs://sky-wiki-data
    mode: COPY
  /t: ./$TOKEN_DIR
  /u: ./$UNSET/$NOPE
run: ls
"#;
    let submission = parse_submission(text, "job.yaml").unwrap();
    let job = &submission.jobs[0];
    let mounts: Vec<(&str, &str)> = job.file_mounts.iter().map(|(d, s)| (d.as_str(), s.as_str())).collect();
    assert_eq!(
        mounts,
        [
            ("/another", "s3://skypilot-temp-2"),
            ("/checkpoint/13b", "~/tmp-workdir"),
            ("/mydir2", "gs://skypilot-temp"),
            ("/t", "./tok"),
            ("/u", "./$UNSET/$NOPE"),
            ("/wiki", "gs://sky-wiki-data"),
        ],
        "names with no value stay as written"
    );
    assert_eq!(job.workdir.as_deref(), Some("./tmp-workdir"));
    let warned = warned(&submission.warnings);
    assert!(warned.contains(&"file_mounts.${ROOT}"), "the warning names the field as written: {warned:?}");
}

/// From skypilot-org/skypilot `tests/test_yamls/test_r2_storage_mounting.yaml`: a storage mapping
/// whose source is a list of local files; SkyPilot uploads each into the bucket's top.
#[test]
fn a_list_of_local_files_goes_each_into_the_destination() {
    let text = "file_mounts:\n  /copy_lof:\n    name: my-bucket\n    source: ['~/work/tmp file', './b/file2']\n    store: r2\n    mode: COPY\nrun: ls\n";
    let submission = parse_submission(text, "job.yaml").unwrap();
    let local: Vec<(&str, &str)> = submission.jobs[0].local_file_mounts().collect();
    assert_eq!(local, [("/copy_lof/file2", "./b/file2"), ("/copy_lof/tmp file", "~/work/tmp file")]);
    assert!(submission.warnings.is_empty(), "COPY of local files is what the upload does: {:?}", submission.warnings);

    let err = parse_submission("file_mounts:\n  /x:\n    source: [s3://b/f]\nrun: ls\n", "job.yaml").unwrap_err();
    assert!(
        err.to_string().contains("file_mounts./x.source[0]") && err.to_string().contains("local files only"),
        "{err}"
    );

    // From skypilot-org/skypilot `examples/docker/echo_app.yaml`: `name:` left empty; SkyPilot
    // loads it (it names the bucket it creates), so it is a bucket mount here too.
    let job = parse_submission("file_mounts:\n  /outputs:\n    name:\n    mode: MOUNT\nrun: ls\n", "job.yaml").unwrap();
    assert_eq!(job.jobs[0].file_mounts.get("/outputs").map(String::as_str), Some("bucket://(unnamed)"));
    let err = parse_submission("file_mounts:\n  /x:\n    name: [a]\nrun: ls\n", "job.yaml").unwrap_err();
    assert!(err.to_string().contains("file_mounts./x.name") && err.to_string().contains("a bucket name"), "{err}");
}

/// SkyPilot's default storage mode is MOUNT: a local source is then a bucket the nodes share.
/// Cumulo copies it with the upload, and says that writes stay on the node.
#[test]
fn a_local_source_in_mount_mode_is_copied_and_the_difference_is_said() {
    let text = "file_mounts:\n  /data:\n    name: b\n    source: ./data\nrun: ls\n";
    let submission = parse_submission(text, "job.yaml").unwrap();
    assert_eq!(submission.jobs[0].file_mounts.get("/data").map(String::as_str), Some("./data"));
    assert_eq!(warned(&submission.warnings), ["file_mounts./data"]);
    assert!(
        submission.warnings[0].message.contains("mode MOUNT")
            && submission.warnings[0].message.contains("stays on the node")
    );
}

/// SkyPilot keeps an accelerator name as the file writes it when it loads the file (`Gaudi`,
/// `a100`; it canonicalises only to launch). Cumulo places by the model (`Gaudi HL-205`, `A100`)
/// and keeps the written names beside it, one per model, for `validate -o json` and the API.
#[test]
fn accelerator_names_are_kept_as_written_beside_the_model_placed_by() {
    let read = |text: &str| cumulo_jobfile::parse_str(text, "job.yaml").unwrap().resources;
    let gaudi = read("resources:\n  accelerators: Gaudi:8\n");
    let demand = gaudi[0].accelerators.clone().unwrap();
    assert_eq!(demand.selector, GpuSelector::Named("Gaudi HL-205".into()), "placed by the catalog name");
    assert_eq!(demand.names, ["Gaudi"], "shown as written, as SkyPilot loads it");

    // From llm/codellama/endpoint.yaml: a set of alternatives, lower case and merged by count.
    let set = read("resources:\n  accelerators: {a100:8, A10g:8, H100:8, A100-80GB:4}\n");
    let merged = set[0].accelerators.clone().unwrap();
    assert_eq!(merged.selector, GpuSelector::Models(vec![GpuModel::A100, GpuModel::A10G, GpuModel::H100]));
    assert_eq!(merged.names, ["a100", "A10g", "H100"], "one written name per model, in its order");
    assert_eq!(set[1].accelerators.as_ref().unwrap().names, ["A100-80GB"]);
    assert_eq!(
        set[0].accelerators,
        models(&[GpuModel::A100, GpuModel::A10G, GpuModel::H100], 8),
        "names are not matched"
    );

    let json = serde_json::to_value(&merged).unwrap();
    assert_eq!(json["names"], serde_json::json!(["a100", "A10g", "H100"]));
    let typed = read("resources:\n  instance_type: p4d.24xlarge\n");
    let json = serde_json::to_value(typed[0].accelerators.as_ref().unwrap()).unwrap();
    assert!(json.get("names").is_none(), "an instance type's GPUs have no written name: {json}");
}

/// From skypilot-org/skypilot `llm/pixtral/pixtral.yaml`: a flow mapping whose closing `}` sits
/// at its key's indentation. PyYAML (SkyPilot) reads it; so must Cumulo, with the lines right.
#[test]
fn a_flow_mapping_closed_at_its_keys_indentation_is_read_as_pyyaml_reads_it() {
    let text = r#"envs:
  MODEL_NAME: mistralai/Pixtral-12B-2409
service:
  replicas: 2
  readiness_probe:
    path: /v1/chat/completions
    post_data:
      messages:
        - role: user
          content: {
            "type": "text",
            "text": "What's in this image?"
          }
      max_tokens: 1
resources:
  accelerators: {L4, A10g}
  ports: 8081
run: vllm serve $MODEL_NAME
"#;
    let submission = parse_submission(text, "pixtral.yaml").unwrap_or_else(|e| panic!("SkyPilot loads it:\n{e}"));
    let job = &submission.jobs[0];
    assert_eq!(accelerators(job), [models(&[GpuModel::L4, GpuModel::A10G], 1)]);
    assert_eq!(job.replicas, 2);
    let ports = submission.warnings.iter().find(|w| w.path == "resources.ports").unwrap();
    assert_eq!(ports.line, Some(17), "lines keep their numbers");
    let err = parse_submission("a:\n  b: 1\n c: 2\n", "bad.yaml").unwrap_err().to_string();
    assert!(err.contains("invalid YAML"), "other indentation errors stay errors: {err}");
}

/// `scripts/skypilot-compare.py` checks that a field SkyPilot reads and Cumulo does not apply is
/// named in a warning: a `replica_policy`'s autoscaling keys are named one by one (the QPS target
/// was hidden behind `replica_policy` before), and `cpus: 4+` / `memory: 16` keep SkyPilot's
/// at-least and exactly.
#[test]
fn an_autoscaling_service_warns_each_policy_key_it_does_not_apply() {
    let (job, warnings) = one("serve-autoscale.yaml");
    assert_eq!(job.replicas, 1, "replica_policy.min_replicas");
    let option = &job.resources[0];
    assert_eq!((option.cpus_milli, option.cpus_or_more), (4000, true), "4+: at least 4");
    assert_eq!((option.memory_mib, option.memory_or_more), (16 * 1024, false), "16: exactly 16 GB");
    assert_eq!(
        warnings[0].message,
        "only the replica count is applied (replicas, else replica_policy.min_replicas, fixed): not applied: readiness_probe, replica_policy.max_replicas, replica_policy.target_qps_per_replica"
    );
    let paths = warned(&warnings);
    assert!(paths.contains(&"resources.disk_size") && paths.contains(&"resources.ports"), "{paths:?}");
    // `replicas` overrides the policy, so its min_replicas is not applied either.
    let text = "service:\n  readiness_probe: /\n  replicas: 2\n  replica_policy: {min_replicas: 1}\nrun: x\n";
    let submission = parse_submission(text, "t.yaml").unwrap();
    assert_eq!(submission.jobs[0].replicas, 2);
    assert!(
        submission.warnings[0].message.ends_with("not applied: readiness_probe, replica_policy.min_replicas"),
        "{}",
        submission.warnings[0].message
    );
    // Scaling to zero is not applied: one replica runs, and the warning says so.
    let text = "service:\n  readiness_probe: /\n  replica_policy: {min_replicas: 0, max_replicas: 2}\nrun: x\n";
    let submission = parse_submission(text, "t.yaml").unwrap();
    assert_eq!(submission.jobs[0].replicas, 1);
    assert!(
        submission.warnings[0].message.ends_with(
            "not applied: readiness_probe, replica_policy.min_replicas 0 (one replica runs: no scaling to zero), replica_policy.max_replicas"
        ),
        "{}",
        submission.warnings[0].message
    );
}
