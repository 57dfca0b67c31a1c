//! Job files in, `JobSpec`s or exact error texts out: SkyPilot forms, Cumulo fields, defaults and
//! every refusal the issue names.

use cumulo_jobfile::{Problem, ProblemKind, parse_many_str, parse_str};
use cumulo_types::{
    AcceleratorDemand, GpuModel, GpuSelector, InfraSelector, JobKind, JobSpec, MilliGpu, Money, Priority, SpreadPolicy,
    TopologyNeed,
};

fn ok(text: &str) -> JobSpec {
    parse_str(text, "job.yaml").unwrap_or_else(|e| panic!("expected a valid job, got:\n{e}"))
}

/// Asserts the whole error text, one problem per line.
fn check_err(text: &str, expected: &str) {
    match parse_str(text, "job.yaml") {
        Ok(job) => panic!("expected an error, got {job:?}"),
        Err(e) => assert_eq!(e.to_string(), expected.trim_end()),
    }
}

fn gpus(models: &[GpuModel], milli: u32) -> Option<AcceleratorDemand> {
    Some(AcceleratorDemand {
        selector: GpuSelector::Models(models.to_vec()),
        per_node: MilliGpu(milli),
        names: Vec::new(),
    })
}

fn infra(text: &str) -> Option<InfraSelector> {
    Some(InfraSelector::parse(text).unwrap())
}

#[test]
fn skypilot_task_parses_unchanged() {
    let job = ok(r#"
# A SkyPilot task as its docs write it.
name: my-task
workdir: ~/my-task-code
num_nodes: 4
resources:
  infra: aws
  accelerators: H100:8
  accelerator_args:
    runtime_version: tpu-vm-base
  cpus: 4+
  memory: 32+
  instance_type: p5.48xlarge
  use_spot: false
  disk_size: 256
  disk_tier: medium
  network_tier: best
  image_id: ami-0868a20f5a3bf9702
  ports: 8081
  labels:
    my-label: my-value
  autostop: 10m
  job_recovery: none
envs:
  MY_BUCKET: skypilot-temp-gcs-test
  MODEL_SIZE: 13b
  PORT: 8080
  HF_TOKEN:  # given with --env at launch
secrets:
  MY_HF_TOKEN: my-secret-value
file_mounts:
  /remote/path: /local/path
  /checkpoints:
    source: s3://existing-bucket
    mode: MOUNT
volumes:
  /mnt/data: my-volume
setup: |
  echo "Begin setup."
  pip install -r requirements.txt
run: |
  echo "Begin run."
  python train.py
config:
  kubernetes:
    provision_timeout: 600
"#);
    assert_eq!(job.name, "my-task");
    assert_eq!(job.kind, JobKind::Batch);
    assert_eq!(job.tenant, "default");
    assert_eq!(job.priority, Priority::NORMAL);
    assert_eq!(job.num_nodes, 4);
    assert_eq!(job.resources.len(), 1);
    let option = &job.resources[0];
    assert_eq!(option.accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(option.cpus_milli, 4000);
    assert_eq!(option.memory_mib, 32 * 1024);
    assert_eq!(option.infra, infra("aws"));
    assert_eq!(option.instance_type.as_deref(), Some("p5.48xlarge"));
    assert!(!option.use_spot);
    assert_eq!(job.workdir.as_deref(), Some("~/my-task-code"));
    assert_eq!(job.envs.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(job.envs.get("MODEL_SIZE").map(String::as_str), Some("13b"));
    assert!(!job.envs.contains_key("HF_TOKEN"), "null envs are left for launch time");
    assert!(job.setup.as_deref().unwrap().contains("pip install"));
    assert!(job.run.as_deref().unwrap().starts_with("echo \"Begin run.\""));
    assert_eq!(
        job.secrets.get("MY_HF_TOKEN"),
        Some(&Some("my-secret-value".to_string())),
        "a secret's value is read; the server seals it before anything is stored"
    );
}

#[test]
fn accelerator_forms() {
    let one = |acc: &str| ok(&format!("resources:\n  accelerators: {acc}\n"));
    assert_eq!(one("H100").resources[0].accelerators, gpus(&[GpuModel::H100], 1000));
    assert_eq!(one("H100:8").resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(one("{H100: 8}").resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(one("A100:0.5").resources[0].accelerators, gpus(&[GpuModel::A100], 500));
    assert_eq!(one("a100-80gb:8").resources[0].accelerators, gpus(&[GpuModel::A100_80], 8000));

    // A mapping is a set of equal alternatives: same counts merge into one list of models.
    let set = one("{H100: 8, H200: 8}");
    assert_eq!(set.resources.len(), 1);
    assert_eq!(set.resources[0].accelerators, gpus(&[GpuModel::H100, GpuModel::H200], 8000));
    assert!(!set.ordered);
    // SkyPilot's set syntax: keys with a count and no value, or no count at all.
    let set = one("{A100:1, V100:1}");
    assert_eq!(set.resources[0].accelerators, gpus(&[GpuModel::A100, GpuModel::V100], 1000));
    let set = one("{L4, A10g, A100}");
    assert_eq!(set.resources[0].accelerators, gpus(&[GpuModel::L4, GpuModel::A10G, GpuModel::A100], 1000));
    let set = one("\"{'A100:1', 'V100:1'}\"");
    assert_eq!(set.resources[0].accelerators, gpus(&[GpuModel::A100, GpuModel::V100], 1000));
    // Different counts stay separate options.
    let set = one("{H100: 8, A100: 4}");
    assert_eq!(set.resources.len(), 2);

    // A list is tried in order.
    let list = one("[H100:8, A100-80GB:8]");
    assert!(list.ordered);
    assert_eq!(list.resources.len(), 2);
    assert_eq!(list.resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(list.resources[1].accelerators, gpus(&[GpuModel::A100_80], 8000));
    let block_list = ok("resources:\n  accelerators:\n    - A100:1\n    - V100:1\n");
    assert!(block_list.ordered);
    assert_eq!(block_list.resources[1].accelerators, gpus(&[GpuModel::V100], 1000));

    // Any GPU with at least 80 GB.
    let big = one("80GB+:8");
    assert_eq!(
        big.resources[0].accelerators,
        Some(AcceleratorDemand { selector: GpuSelector::MinMemoryGb(80), per_node: MilliGpu(8000), names: Vec::new() })
    );
}

#[test]
fn any_of_and_ordered_merge_over_the_base() {
    let job = ok("
resources:
  accelerators: H100:8
  cpus: 16
  use_spot: true
  any_of:
    - infra: aws/us-west-2
    - infra: gcp/us-central1
      accelerators: H200:8
");
    assert!(!job.ordered);
    assert_eq!(job.resources.len(), 2);
    assert_eq!(job.resources[0].infra, infra("aws/us-west-2"));
    assert_eq!(job.resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(job.resources[1].infra, infra("gcp/us-central1"));
    assert_eq!(job.resources[1].accelerators, gpus(&[GpuModel::H200], 8000));
    assert!(job.resources.iter().all(|r| r.cpus_milli == 16_000 && r.use_spot));

    let job = ok("
resources:
  cloud: aws
  region: us-east-1
  ordered:
    - zone: us-east-1a
    - region: us-west-2
    - infra: gcp
");
    assert!(job.ordered);
    assert_eq!(job.resources[0].infra, infra("aws/us-east-1/us-east-1a"));
    assert_eq!(job.resources[1].infra, infra("aws/us-west-2"));
    assert_eq!(job.resources[2].infra, infra("gcp"));
}

#[test]
fn infra_forms() {
    let at = |text: &str| ok(&format!("resources:\n  infra: {text}\n")).resources[0].infra.clone();
    assert_eq!(at("aws/us-east-1/us-east-1a"), infra("aws/us-east-1/us-east-1a"));
    assert_eq!(at("'*/us-east-1'"), infra("*/us-east-1"));
    assert_eq!(
        at("k8s/arn:aws:eks:us-east-1:1234:cluster/my-cluster"),
        Some(InfraSelector {
            provider: Some("kubernetes".into()),
            region: Some("arn:aws:eks:us-east-1:1234:cluster/my-cluster".into()),
            zone: None
        })
    );
    assert_eq!(at("'*'"), None, "a bare wildcard is anywhere");
    let old = ok("resources:\n  cloud: AWS\n  region: us-east-1\n");
    assert_eq!(old.resources[0].infra, infra("aws/us-east-1"));
}

#[test]
fn cumulo_fields() {
    let job = ok("
name: pretrain-70b
kind: training
tenant: research
priority: high
resources:
  accelerators: GB200:4
  infra: aws
num_nodes: 18
topology: nvlink-domain
checkpoint: {dir: /ckpt/pretrain-70b, every: 30m}
max_attempts: 10
duration: 2h
deny: [aws/us-east-2, oci]
max_price_per_hour: 1200.50
");
    assert_eq!(job.kind, JobKind::Training);
    assert_eq!(job.tenant, "research");
    assert_eq!(job.priority, Priority::HIGH);
    assert!(!job.preemptible, "training is not preemptible by default");
    assert_eq!(job.num_nodes, 18);
    assert_eq!(job.topology, TopologyNeed::NvlinkDomain);
    let checkpoint = job.checkpoint.unwrap();
    assert_eq!((checkpoint.dir.as_str(), checkpoint.every_s), ("/ckpt/pretrain-70b", Some(1800)));
    assert_eq!(job.max_attempts, 10);
    assert_eq!(job.duration_s, Some(7200));
    assert_eq!(job.constraints.deny, vec![infra("aws/us-east-2").unwrap(), infra("oci").unwrap()]);
    assert_eq!(job.constraints.max_price_per_hour, Some(Money(1_200_500_000)));
}

#[test]
fn defaults_by_kind() {
    for (kind, preemptible) in [("training", false), ("inference", false), ("batch", true), ("sandbox", true)] {
        let job = ok(&format!("kind: {kind}\n"));
        assert_eq!(job.preemptible, preemptible, "{kind}");
        assert_eq!(job.replicas, 1);
        assert_eq!(job.max_attempts, cumulo_jobfile::DEFAULT_MAX_ATTEMPTS);
        assert_eq!(job.topology, TopologyNeed::Any);
        assert_eq!(job.resources.len(), 1);
        assert_eq!(job.resources[0].cpus_milli, cumulo_jobfile::DEFAULT_CPUS_MILLI);
        assert_eq!(job.resources[0].accelerators, None);
    }
    let job = ok("kind: sandbox\npreemptible: false\npriority: 42\n");
    assert!(!job.preemptible);
    assert_eq!(job.priority, Priority(42));
    // The default name is the file's stem.
    assert_eq!(parse_str("run: echo hi\n", "jobs/nightly-eval.yaml").unwrap().name, "nightly-eval");
    assert_eq!(parse_str("run: echo hi\n", "request body").unwrap().name, "unnamed");
    // SkyPilot's resources.priority and per-node max_hourly_cost apply when Cumulo's fields are absent.
    let job = ok("num_nodes: 2\nresources:\n  priority: 900\n  max_hourly_cost: 10.5\n");
    assert_eq!(job.priority, Priority(900));
    assert_eq!(job.constraints.max_price_per_hour, Some(Money::from_dollars(21)));
}

#[test]
fn skyserve_service_makes_an_inference_job() {
    let job = ok("
service:
  readiness_probe: /v1/models
  replica_policy:
    min_replicas: 2
    max_replicas: 6
    target_qps_per_replica: 5
resources:
  accelerators: {L4:1, A10G:1}
  ports: 8000
spread: providers
");
    assert_eq!(job.kind, JobKind::Inference);
    assert_eq!(job.replicas, 2);
    assert_eq!(job.spread, SpreadPolicy::Providers);
    let job = ok("kind: inference\nreplicas: 3\nservice:\n  replicas: 3\n");
    assert_eq!(job.replicas, 3);
}

#[test]
fn json_bodies_parse_through_the_same_path() {
    let job = ok(r#"{"name": "api-job", "kind": "inference", "replicas": 2,
        "resources": {"accelerators": {"H100": 1}, "infra": "aws"}}"#);
    assert_eq!(job.name, "api-job");
    assert_eq!(job.replicas, 2);
    assert_eq!(job.resources[0].accelerators, gpus(&[GpuModel::H100], 1000));
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let job = ok("
x-base: &base
  accelerators: H100:8
  cpus: 8
resources:
  <<: *base
  cpus: 32
");
    assert_eq!(job.resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!(job.resources[0].cpus_milli, 32_000);
}

#[test]
fn unknown_gpu_names_are_kept_with_a_warning_naming_the_closest_model() {
    // SkyPilot keeps a name no catalog knows (a Kubernetes cluster may offer it); so does Cumulo.
    let known = GpuModel::known_names();
    let parsed = cumulo_jobfile::parse_submission("name: x\nresources:\n  accelerators: H900:8\n", "job.yaml").unwrap();
    assert_eq!(
        parsed.jobs[0].resources[0].accelerators,
        Some(AcceleratorDemand {
            selector: GpuSelector::Named("H900".into()),
            per_node: MilliGpu(8000),
            names: Vec::new()
        }),
        "an unknown name is kept by name"
    );
    assert_eq!(
        parsed.warnings,
        vec![Problem {
            kind: ProblemKind::Field,
            path: "resources.accelerators".into(),
            message: format!(
                "accelerator `H900` is no GPU model Cumulo knows (did you mean `H100`?): kept by that name, it is placed only on a pool that offers `H900` (known models: {known})"
            ),
            line: Some(3),
        }],
        "the typo is still pointed at"
    );
}

#[test]
fn num_nodes_zero_and_wrong_type() {
    check_err(
        "name: x\nnum_nodes: 0\n",
        "job.yaml:2: num_nodes: invalid value `0`: expected a positive integer (nodes in the gang)",
    );
    check_err(
        "num_nodes: \"two\"\n",
        "job.yaml:1: num_nodes: wrong type: found string `two`, expected a positive integer (nodes in the gang)",
    );
    check_err(
        "num_nodes: 1.5\n",
        "job.yaml:1: num_nodes: invalid value `1.5`: expected a positive integer (nodes in the gang)",
    );
}

#[test]
fn bad_gpu_counts() {
    check_err(
        "resources:\n  accelerators: H100:-1\n",
        "job.yaml:2: resources.accelerators: invalid GPU count `-1` in `H100:-1`: expected a positive number of GPUs such as 8, or a fraction of one GPU such as 0.25",
    );
    check_err(
        "resources:\n  accelerators: {H100: -1}\n",
        "job.yaml:2: resources.accelerators: invalid GPU count `-1` in `H100:-1`: expected a positive number of GPUs such as 8, or a fraction of one GPU such as 0.25",
    );
    check_err(
        "resources:\n  accelerators: H100:1.5\n",
        "job.yaml:2: resources.accelerators: invalid GPU count `1.5` in `H100:1.5`: expected a whole number of GPUs, or a fraction below 1 that shares one GPU (such as 0.25 or 0.5)",
    );
    check_err(
        "resources:\n  accelerators: H100:0\n",
        "job.yaml:2: resources.accelerators: invalid GPU count `0` in `H100:0`: expected a positive number of GPUs such as 8, or a fraction of one GPU such as 0.25",
    );
    check_err(
        "resources:\n  accelerators: A100:0.0001\n",
        "job.yaml:2: resources.accelerators: invalid GPU count `0.0001` in `A100:0.0001`: expected at most three decimals (GPUs are shared in thousandths)",
    );
    check_err(
        "resources:\n  accelerators:\n    - H100:8\n    - H100:x\n",
        "job.yaml:4: resources.accelerators[1]: invalid GPU count `x` in `H100:x`: expected a positive number of GPUs such as 8, or a fraction of one GPU such as 0.25",
    );
}

#[test]
fn unknown_top_level_field_is_named_with_the_valid_ones() {
    let fields = cumulo_jobfile::SKYPILOT_FIELDS
        .iter()
        .chain(cumulo_jobfile::CUMULO_FIELDS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    check_err(
        "nmae: x\nrun: echo\n",
        &format!("job.yaml:1: nmae: unknown field `nmae` (did you mean `name`?): expected one of {fields}"),
    );
    check_err("gpus: 8\n", &format!("job.yaml:1: gpus: unknown field `gpus`: expected one of {fields}"));
}

#[test]
fn unknown_resource_field_suggests_the_closest() {
    let err = parse_str("resources:\n  acclerators: H100:8\n", "job.yaml").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "job.yaml:2: resources.acclerators: unknown field `acclerators` (did you mean `accelerators`?): expected one of infra, accelerators,"
        ),
        "{err}"
    );
}

#[test]
fn prices() {
    check_err(
        "max_price_per_hour: -5\n",
        "job.yaml:1: max_price_per_hour: invalid value `-5`: expected a non-negative number of US dollars per hour, all nodes together",
    );
    check_err(
        "max_price_per_hour: cheap\n",
        "job.yaml:1: max_price_per_hour: invalid value `cheap`: expected a non-negative number of US dollars per hour, all nodes together",
    );
    assert_eq!(ok("max_price_per_hour: \"$98.32\"\n").constraints.max_price_per_hour, Some(Money(98_320_000)));
    assert_eq!(ok("max_price_per_hour: 0\n").constraints.max_price_per_hour, Some(Money::ZERO));
}

#[test]
fn every_problem_is_reported_at_once() {
    check_err(
        "\
name: broken
kind: trainnig
num_nodes: 0
resources:
  accelerators: H100:1.5
  cpus: many
  memory: -4
topology: ring
priority: urgent
checkpoint: {every: soon}
replicas: 2
",
        "\
job.yaml:2: kind: invalid value `trainnig`: expected training, inference, batch or sandbox
job.yaml:3: num_nodes: invalid value `0`: expected a positive integer (nodes in the gang)
job.yaml:5: resources.accelerators: invalid GPU count `1.5` in `H100:1.5`: expected a whole number of GPUs, or a fraction below 1 that shares one GPU (such as 0.25 or 0.5)
job.yaml:6: resources.cpus: invalid value `many`: expected a positive number of vCPUs such as 4, or \"4+\" for at least 4
job.yaml:7: resources.memory: invalid value `-4`: expected a positive size in GB such as 32, \"32+\" or \"64GB\" (units KB, MB, GB, TB, PB)
job.yaml:8: topology: invalid value `ring`: expected nvlink-domain, block, zone or any
job.yaml:9: priority: invalid value `urgent`: expected low, normal, high, critical or an integer
job.yaml:10: checkpoint.dir: missing field `dir`: expected a directory, or {dir: /ckpt/run, every: 30m}
job.yaml:10: checkpoint.every: invalid value `soon`: expected a duration such as 90s, 30m, 2h or 1h30m, or a number of seconds
",
    );
    let err = parse_str("num_nodes: 0\nkind: batch\nreplicas: 0\n", "job.yaml").unwrap_err();
    let problems: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(problems, ["num_nodes", "replicas"]);
    assert_eq!(
        err.problems()[0],
        Problem {
            kind: ProblemKind::Field,
            path: "num_nodes".into(),
            message: "invalid value `0`: expected a positive integer (nodes in the gang)".into(),
            line: Some(1)
        }
    );
}

#[test]
fn cross_field_rules() {
    check_err(
        "kind: training\nreplicas: 4\n",
        "job.yaml:2: replicas: invalid value `4`: expected 1 for a training job: only inference jobs have replicas (a gang is num_nodes)",
    );
    check_err(
        "kind: inference\nspread: regions\n",
        "job.yaml:2: spread: invalid value `regions`: expected none with 1 replica: spreading needs at least 2 replicas",
    );
    check_err(
        "kind: batch\nservice:\n  replicas: 2\n",
        "job.yaml:2: service: a service section on a batch job: expected `kind: inference` (or no kind)",
    );
    check_err(
        "replicas: 3\nservice:\n  replicas: 2\n",
        "job.yaml:1: replicas: invalid value `3`: expected the same count as the service section (2), or only one of the two",
    );
    check_err(
        "resources:\n  infra: aws\n  cloud: gcp\n",
        "job.yaml:3: resources.cloud: cannot be combined with `infra`: expected either infra (provider[/region[/zone]] such as aws, aws/us-east-1, */us-east-1 or k8s/my-context) or the older cloud, region and zone",
    );
    check_err(
        "resources:\n  any_of: [{infra: aws}]\n  ordered: [{infra: gcp}]\n",
        "job.yaml:3: resources.ordered: cannot be combined with `any_of`: expected one list of candidates",
    );
}

#[test]
fn wrong_types_name_what_was_found() {
    check_err(
        "resources: H100:8\n",
        "job.yaml:1: resources: wrong type: found string `H100:8`, expected a mapping of resource fields such as accelerators, cpus and infra",
    );
    check_err("preemptible: yes\n", "job.yaml:1: preemptible: wrong type: found string `yes`, expected true or false");
    check_err(
        "envs: [A, B]\n",
        "job.yaml:1: envs: wrong type: found a list, expected a mapping of variable names to values",
    );
    check_err(
        "envs:\n  1BAD: x\n",
        "job.yaml:2: envs.1BAD: invalid value `1BAD`: expected a variable name of letters, digits and '_', not starting with a digit",
    );
    check_err(
        "resources:\n  accelerators: 8\n",
        "job.yaml:2: resources.accelerators: wrong type: found number `8`, expected GPUs per node such as H100:8, {H100: 8, H200: 8}, [H100:8, A100-80GB:8], A100:0.5 or 80GB+:8",
    );
    check_err(
        "- name: a\n",
        "job.yaml: wrong type: found a list, expected a mapping of job fields such as name, resources and run",
    );
    check_err(
        "deny: [aws, 'a b']\n",
        "job.yaml:1: deny[1]: invalid value `a b`: expected provider[/region[/zone]] such as aws, aws/us-east-1, */us-east-1 or k8s/my-context",
    );
}

#[test]
fn yaml_syntax_errors_carry_their_line() {
    let err = parse_str("name: x\nresources:\n  accelerators: [H100:8\nrun: echo\n", "job.yaml").unwrap_err();
    let problem = &err.problems()[0];
    assert!(problem.message.starts_with("invalid YAML: "), "{problem:?}");
    assert!(problem.line.is_some_and(|l| l >= 3), "{problem:?}");
    let err = parse_str("name: a\nname: b\n", "job.yaml").unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn empty_and_multi_document_files() {
    check_err("", "job.yaml: empty job file: expected a mapping of job fields such as name, resources and run");
    check_err(
        "# only a comment\n",
        "job.yaml: empty job file: expected a mapping of job fields such as name, resources and run",
    );
    check_err("name: a\n---\nname: b\n", "job.yaml: found 2 YAML documents: expected one job per file");
    let jobs = parse_many_str("---\nname: a\nrun: x\n---\nname: b\nkind: sandbox\n---\n", "jobs.yaml").unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "two jobs side by side: the first document holds more than a name, so it heads no pipeline"
    );
    let jobs = parse_many_str("---\nname: a\n---\nname: b\nkind: sandbox\n---\n", "jobs.yaml").unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["b"],
        "a first document holding only `name` heads a pipeline, as in SkyPilot: it is no job"
    );
    // Lines stay those of the whole file.
    let err = parse_many_str("name: a\n---\nname: b\nnum_nodes: 0\n", "jobs.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "jobs.yaml:4: num_nodes: invalid value `0`: expected a positive integer (nodes in the gang)"
    );
    assert!(parse_str("{}", "job.yaml").is_ok(), "every field is optional, as in SkyPilot");
}

#[test]
fn parse_file_reports_missing_files() {
    let err = cumulo_jobfile::parse_file(std::path::Path::new("/nonexistent/job.yaml")).unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent/job.yaml: cannot read job file: "), "{err}");
    assert!(err.problems().is_empty());
}

#[test]
fn windows_line_endings_and_byte_order_mark() {
    let job = ok("\u{feff}name: crlf\r\nresources:\r\n  accelerators: H100:8\r\nrun: |\r\n  echo hi\r\n");
    assert_eq!(job.name, "crlf");
    assert_eq!(job.resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    check_err(
        "\u{feff}num_nodes: 0\r\nkind: batch\r\n",
        "job.yaml:1: num_nodes: invalid value `0`: expected a positive integer (nodes in the gang)",
    );
}

#[test]
fn odd_but_valid_spellings() {
    let job = ok(
        "resources:\n  accelerators: \"H100: 8\"\n  cpus: \"0.5\"\n  memory: 512MB\ntopology: NVLink_Domain\nkind: Training\n",
    );
    assert_eq!(job.resources[0].accelerators, gpus(&[GpuModel::H100], 8000));
    assert_eq!((job.resources[0].cpus_milli, job.resources[0].memory_mib), (500, 512));
    assert_eq!((job.kind, job.topology), (JobKind::Training, TopologyNeed::NvlinkDomain));
    check_err(
        "num_nodes: 4294967296\n",
        "job.yaml:1: num_nodes: invalid value `4294967296`: expected a positive integer (nodes in the gang)",
    );
    check_err(
        "resources:\n  accelerators: {\"H100:8\": 2}\n",
        "job.yaml:2: resources.accelerators: invalid value `H100:8: 2`: expected the count once, as H100:8 or {H100: 8}",
    );
    check_err(
        "resources:\n  any_of:\n    - any_of: [{infra: aws}]\n",
        &format!(
            "job.yaml:3: resources.any_of[0].any_of: unknown field `any_of`: expected one of {}",
            "infra, accelerators, gpus, cpus, memory, use_spot, instance_type, cloud, region, zone, max_hourly_cost, priority, accelerator_args, disk_size, disk_tier, network_tier, ports, image_id, labels, autostop, job_recovery, local_disk, volumes, ephemeral_storage, priority_class"
        ),
    );
}

/// Shapes seen in SkyPilot's own example tasks (serving with auth headers and null secrets, a
/// Kubernetes pod_config override, multi-node vLLM usable by both `sky launch` and `sky serve`).
#[test]
fn skypilot_example_shapes() {
    let serve = ok("
service:
  readiness_probe:
    path: /v1/models
    headers:
      Authorization: Bearer $AUTH_TOKEN
  replicas: 1
envs:
  MODEL_NAME: meta-llama/Llama-2-7b-chat-hf
secrets:
  HF_TOKEN: null
  AUTH_TOKEN: null
resources:
  accelerators: {L4:1, A10G:1, A10:1, A100:1, A100-80GB:1}
  ports: 8000
run: |
  python -m vllm.entrypoints.openai.api_server --port 8000
");
    assert_eq!((serve.kind, serve.replicas), (JobKind::Inference, 1));
    assert_eq!(
        serve.resources[0].accelerators,
        gpus(&[GpuModel::L4, GpuModel::A10G, GpuModel::A10, GpuModel::A100, GpuModel::A100_80], 1000)
    );

    let k8s = ok("
name: nccl-efa-eks
resources:
  infra: k8s
  accelerators: A100:8
  cpus: 90+
  image_id: docker:public.ecr.aws/hpc-cloud/nccl-tests:latest
num_nodes: 2
envs:
  USE_EFA: \"true\"
config:
  kubernetes:
    pod_config:
      spec:
        containers:
        - resources:
            limits:
              vpc.amazonaws.com/efa: 4
");
    assert_eq!(
        k8s.resources[0].infra,
        Some(InfraSelector { provider: Some("kubernetes".into()), region: None, zone: None })
    );

    let multinode = ok("
secrets:
  HF_TOKEN: null
resources:
  network_tier: best
  accelerators: H100:8
  cpus: 100+
  memory: 1000+
  ports: 8081
num_nodes: 2
service:
  replicas: 2
  readiness_probe:
    timeout_seconds: 60
    path: /v1/chat/completions
    post_data:
      model: $MODEL_NAME
      max_tokens: 1
");
    assert_eq!((multinode.kind, multinode.replicas, multinode.num_nodes), (JobKind::Inference, 2, 2));
    assert_eq!(multinode.resources[0].memory_mib, 1000 * 1024);
    assert_eq!(multinode.secrets.get("HF_TOKEN"), Some(&None), "a null secret is given by the submitter");
}

#[test]
fn secrets_with_bad_names_or_values_are_refused_naming_the_field() {
    let errors = |text: &str| cumulo_jobfile::parse_str(text, "t.yaml").unwrap_err().to_string();
    let bad_name = errors("secrets:\n  1TOKEN: x\n");
    assert!(bad_name.contains("secrets.1TOKEN"), "the field is named: {bad_name}");
    let reserved = errors("secrets:\n  CUMULO_JOB_ID: x\n");
    assert!(reserved.contains("a name outside the reserved CUMULO_ prefix"), "{reserved}");
    let nested = errors("secrets:\n  TOKEN: {a: 1}\n");
    assert!(nested.contains("secrets.TOKEN") && nested.contains("a string, number or boolean, or null"), "{nested}");
    let list = ok("secrets: [HF_TOKEN, WANDB_KEY]\n");
    assert_eq!(list.secrets.keys().map(String::as_str).collect::<Vec<_>>(), ["HF_TOKEN", "WANDB_KEY"]);
}

#[test]
fn speedups_give_the_jobs_relative_speed_per_gpu_model() {
    let job =
        ok("name: x\nkind: training\nresources:\n  accelerators: [V100:1, K80:1]\nspeedups: {V100: 3.0, k80: 1}\n");
    let speed = |v: f64| cumulo_types::Speed::from_f64(v).unwrap();
    assert_eq!(
        job.speedups,
        [(GpuModel::V100, speed(3.0)), (GpuModel::K80, speed(1.0))].into_iter().collect(),
        "names are read as GPU models anywhere (k80 is K80)"
    );
    assert!(ok("name: x\n").speedups.is_empty(), "no speedups: the same speed everywhere");
    let json = serde_json::to_value(&job).unwrap();
    assert_eq!(json["speedups"], serde_json::json!({"K80": 1.0, "V100": 3.0}), "stored as plain numbers");
}

#[test]
fn speedups_refuse_unknown_gpu_names_and_speeds_out_of_range() {
    let known = GpuModel::known_names();
    check_err(
        "name: x\nspeedups: {V900: 3.0}\n",
        &format!("job.yaml:2: speedups.V900: unknown GPU model `V900` (known: {known})"),
    );
    let expected = "a positive speed relative to the job's other GPU models, from 0.001 to 1000 (such as 3.0)";
    check_err(
        "name: x\nspeedups:\n  V100: 0\n",
        &format!("job.yaml:3: speedups.V100: invalid value `0`: expected {expected}"),
    );
    check_err(
        "name: x\nspeedups:\n  V100: -2.5\n",
        &format!("job.yaml:3: speedups.V100: invalid value `-2.5`: expected {expected}"),
    );
    check_err(
        "name: x\nspeedups:\n  V100: 5000\n",
        &format!("job.yaml:3: speedups.V100: invalid value `5000`: expected {expected}"),
    );
    check_err(
        "name: x\nspeedups:\n  V100: fast\n",
        &format!("job.yaml:3: speedups.V100: wrong type: found string `fast`, expected {expected}"),
    );
    check_err(
        "name: x\nspeedups: [V100]\n",
        "job.yaml:2: speedups: wrong type: found a list, expected a mapping of GPU model to relative speed, such as {V100: 3.0, K80: 1.0}",
    );
    check_err(
        "name: x\nspeedups: {V100: 2, v100: 3}\n",
        "job.yaml:2: speedups.v100: duplicate GPU model `V100`: expected each model once",
    );
}

#[test]
fn speedups_for_models_the_job_never_selects_are_pointed_at() {
    let parsed = cumulo_jobfile::parse_submission(
        "name: x\nresources:\n  accelerators: V100:1\nspeedups:\n  A100: 2\n",
        "job.yaml",
    )
    .unwrap();
    assert_eq!(
        parsed.warnings,
        vec![Problem {
            kind: ProblemKind::Field,
            path: "speedups.A100".into(),
            message: "the job's resources never select A100: this speed-up is not used".into(),
            line: Some(5),
        }]
    );
}
