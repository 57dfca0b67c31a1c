//! Property tests: the parser never panics on any text, every refusal names a field and a line
//! inside the file, and a job written with random valid values reads back as written.

use cumulo_jobfile::{parse_many_str, parse_str};
use cumulo_types::{GpuModel, GpuSelector, JobKind, MilliGpu, Priority, TopologyNeed};
use proptest::prelude::*;

/// Scalars that exercise every conversion: numbers of all signs, words, GPU specs, infra, sizes.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1.5".to_string()),
        Just("0.25".to_string()),
        Just("4+".to_string()),
        Just("64GB".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("H100:8".to_string()),
        Just("H900:8".to_string()),
        Just("80GB+:8".to_string()),
        Just("A100:0.0001".to_string()),
        Just("{H100: 8, H200: 8}".to_string()),
        Just("[H100:8, A100:x]".to_string()),
        Just("aws/us-east-1/us-east-1a".to_string()),
        Just("k8s/a/b/c".to_string()),
        Just("'*/x'".to_string()),
        Just("30m".to_string()),
        Just("\"$12.50\"".to_string()),
        Just("99999999999999999999".to_string()),
        Just("1e400".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        "[a-zA-Z0-9 _:+./-]{0,12}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
}

const TOP_KEYS: &[&str] = &[
    "name",
    "num_nodes",
    "resources",
    "kind",
    "tenant",
    "priority",
    "preemptible",
    "topology",
    "replicas",
    "spread",
    "checkpoint",
    "max_attempts",
    "duration",
    "deny",
    "max_price_per_hour",
    "envs",
    "service",
    "workdir",
    "run",
    "nmae",
];

const RESOURCE_KEYS: &[&str] = &[
    "accelerators",
    "cpus",
    "memory",
    "infra",
    "cloud",
    "region",
    "zone",
    "use_spot",
    "any_of",
    "ordered",
    "disk_size",
];

/// A block-style YAML document built from known and unknown keys with arbitrary values.
fn document() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        scalar(),
        prop::collection::vec(scalar(), 0..3).prop_map(|items| format!("[{}]", items.join(", "))),
    ];
    let resource_entry = (prop::sample::select(RESOURCE_KEYS), value.clone());
    let resources = prop::collection::vec(resource_entry, 0..5)
        .prop_map(|entries| entries.into_iter().map(|(k, v)| format!("  {k}: {v}\n")).collect::<String>());
    let top_entry = (prop::sample::select(TOP_KEYS), value, resources);
    prop::collection::vec(top_entry, 0..8).prop_map(|entries| {
        let mut text = String::new();
        for (key, value, resources) in entries {
            if key == "resources" {
                text.push_str("resources:\n");
                text.push_str(&resources);
                if resources.is_empty() {
                    text.push_str("  {}\n");
                }
            } else {
                text.push_str(&format!("{key}: {value}\n"));
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = parse_str(&text, "fuzz.yaml");
        let _ = parse_many_str(&text, "fuzz.yaml");
    }

    #[test]
    fn never_panics_on_yaml_shaped_text(text in "([ \\-:{}\\[\\],'\"#|>&*!a-z0-9\n]){0,160}") {
        let _ = parse_str(&text, "fuzz.yaml");
        let _ = parse_many_str(&text, "fuzz.yaml");
    }

    /// Every refusal carries a message, and a line that exists in the file.
    #[test]
    fn problems_name_a_field_and_a_real_line(text in document()) {
        let lines = text.lines().count().max(1);
        if let Err(err) = parse_str(&text, "fuzz.yaml") {
            prop_assert!(!err.problems().is_empty(), "{text}");
            for problem in err.problems() {
                prop_assert!(!problem.message.is_empty());
                prop_assert!(problem.line.is_none_or(|l| (1..=lines).contains(&l)), "{problem:?} in\n{text}");
                let top = problem.path.split(['.', '[']).next().unwrap_or("");
                prop_assert!(
                    problem.path.is_empty() || TOP_KEYS.contains(&top),
                    "problem on a field not in the file: {problem:?} in\n{text}"
                );
            }
            prop_assert!(err.to_string().lines().count() == err.problems().len());
        }
    }

    /// A job written with random valid values reads back as written.
    #[test]
    fn valid_jobs_read_back_as_written(
        model in prop::sample::select(GpuModel::ALL),
        milli in prop_oneof![(1u32..=1000).prop_map(|m| m), (1u32..=64).prop_map(|g| g * 1000)],
        nodes in 1u32..=4096,
        cpus in 1u32..=512,
        memory_gb in 1u64..=4096,
        kind in prop::sample::select(vec![JobKind::Training, JobKind::Inference, JobKind::Batch, JobKind::Sandbox]),
        priority in any::<i32>(),
        topology in prop::sample::select(vec![TopologyNeed::NvlinkDomain, TopologyNeed::Block, TopologyNeed::Zone, TopologyNeed::Any]),
        map_form in any::<bool>(),
    ) {
        let count = MilliGpu(milli).to_string();
        let accelerators =
            if map_form { format!("{{{}: {count}}}", model.name()) } else { format!("{}:{count}", model.name()) };
        let text = format!(
            "name: prop\nkind: {kind}\npriority: {priority}\nnum_nodes: {nodes}\ntopology: {topology}\nresources:\n  accelerators: \"{accelerators}\"\n  cpus: {cpus}+\n  memory: {memory_gb}\n"
        );
        let job = parse_str(&text, "prop.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(job.kind, kind);
        prop_assert_eq!(job.priority, Priority(priority));
        prop_assert_eq!(job.num_nodes, nodes);
        prop_assert_eq!(job.topology, topology);
        prop_assert_eq!(job.resources.len(), 1);
        let option = &job.resources[0];
        let demand = option.accelerators.as_ref().unwrap();
        // A model's name reads back as that model, or as SkyPilot's catalog name for it (`MI25` is
        // found inside exactly one SkyPilot name, `Radeon MI25`) that places on that model alone.
        match &demand.selector {
            GpuSelector::Models(models) => prop_assert_eq!(models, &vec![model]),
            named @ GpuSelector::Named(_) => {
                prop_assert!(GpuModel::ALL.iter().all(|m| named.accepts(*m) == (*m == model)), "{named} for {model}")
            }
            other => prop_assert!(false, "{other} for {model}"),
        }
        prop_assert_eq!(demand.per_node, MilliGpu(milli));
        prop_assert_eq!(option.cpus_milli, cpus * 1000);
        prop_assert_eq!(option.memory_mib, memory_gb * 1024);
        prop_assert_eq!(job.preemptible, cumulo_jobfile::default_preemptible(kind));
    }
}
