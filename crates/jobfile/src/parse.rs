//! From one YAML document (`serde_yaml::Value`) to a normalised [`JobSpec`], collecting every
//! problem found on the way instead of stopping at the first.

use std::collections::BTreeMap;

use cumulo_types::{
    AcceleratorDemand, Checkpoint, Constraints, GpuModel, GpuSelector, InfraSelector, JobKind, JobSpec, Money,
    Priority, Provider, ResourceOption, SpreadPolicy, TopologyNeed,
};
use serde_yaml::{Mapping, Value};

use crate::Problem;
use crate::locate::LineMap;
use crate::units;

/// SkyPilot's top-level task fields (`sky/utils/schemas.py`, `get_task_schema`).
pub const SKYPILOT_FIELDS: &[&str] = &[
    "name",
    "workdir",
    "num_nodes",
    "resources",
    "envs",
    "secrets",
    "file_mounts",
    "volumes",
    "setup",
    "run",
    "config",
    "service",
    "pool",
    "event_callback",
    "managed_secrets",
    "inputs",
    "outputs",
    "file_mounts_mapping",
    "volume_mounts",
    "api_server_access",
];

/// Cumulo's own top-level fields, beside SkyPilot's.
pub const CUMULO_FIELDS: &[&str] = &[
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
];

/// Top-level fields SkyPilot writes for itself; accepted, never suggested.
const HIDDEN_TOP_FIELDS: &[&str] = &["_metadata"];

/// Resource fields that Cumulo reads.
const RESOURCE_FIELDS: &[&str] = &[
    "infra",
    "accelerators",
    "cpus",
    "memory",
    "use_spot",
    "instance_type",
    "cloud",
    "region",
    "zone",
    "max_hourly_cost",
    "priority",
];

/// SkyPilot resource fields accepted and ignored: they tune a VM, not where or whether it runs.
const IGNORED_RESOURCE_FIELDS: &[&str] = &[
    "accelerator_args",
    "disk_size",
    "disk_tier",
    "network_tier",
    "ports",
    "image_id",
    "labels",
    "autostop",
    "job_recovery",
    "local_disk",
    "volumes",
    "ephemeral_storage",
    "priority_class",
];

const HIDDEN_RESOURCE_FIELDS: &[&str] = &[
    "_no_missing_accel_warnings",
    "_docker_login_config",
    "_is_image_managed",
    "_requires_fuse",
    "_cluster_config_overrides",
];

/// Collects problems, each with the line of its field when the text shows it.
pub(crate) struct Ctx<'a> {
    pub(crate) problems: Vec<Problem>,
    lines: &'a LineMap,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(lines: &'a LineMap) -> Ctx<'a> {
        Ctx { problems: Vec::new(), lines }
    }

    pub(crate) fn report(&mut self, path: &str, message: impl Into<String>) {
        let line = self.lines.find(path);
        self.problems.push(Problem { path: path.to_string(), message: message.into(), line });
    }

    fn wrong_type(&mut self, path: &str, value: &Value, expected: &str) {
        self.report(path, format!("wrong type: found {}, expected {expected}", describe(value)));
    }

    fn invalid(&mut self, path: &str, value: &str, expected: &str) {
        self.report(path, format!("invalid value `{value}`: expected {expected}"));
    }

    /// Reports every key of `map` that is not a string or not in `fields` (nor in `hidden`).
    fn check_fields(&mut self, path: &str, map: &Mapping, fields: &[&str], hidden: &[&str]) {
        for key in map.keys() {
            let Some(name) = key.as_str() else {
                self.report(path, format!("wrong type: found {} as a field name, expected a string", describe(key)));
                continue;
            };
            // `x-` keys at the top hold YAML anchors for reuse, as in Compose files.
            let extension = path.is_empty() && name.starts_with("x-");
            if fields.contains(&name) || hidden.contains(&name) || extension {
                continue;
            }
            let hint = match units::closest(name, fields.iter().copied()) {
                Some(close) => format!(" (did you mean `{close}`?)"),
                None => String::new(),
            };
            self.report(
                &child(path, name),
                format!("unknown field `{name}`{hint}: expected one of {}", fields.join(", ")),
            );
        }
    }

    fn string(&mut self, path: &str, value: &Value, expected: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, other, expected);
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, other, "true or false");
                None
            }
        }
    }

    /// A whole number from 1 to `u32::MAX`.
    fn positive(&mut self, path: &str, value: &Value, expected: &str) -> Option<u32> {
        match value {
            Value::Number(n) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(v) if v > 0 => Some(v),
                _ => {
                    self.invalid(path, &n.to_string(), expected);
                    None
                }
            },
            other => {
                self.wrong_type(path, other, expected);
                None
            }
        }
    }
}

/// `parent.key`, or `key` at the top.
fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// How a value is named in messages: its YAML type and, for scalars, its text.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string `{}`", shorten(s)),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    let one_line = text.replace('\n', "\\n");
    if one_line.chars().count() <= MAX {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX).collect();
    format!("{cut}...")
}

/// The text of a number or a string, for fields that take either (`cpus: 4` or `cpus: 4+`).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Looks a field up, treating an explicit `null` like an absent field (`setup:` with no value).
fn field<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// The name a job gets when the file gives none: the file's stem (`train.yaml` → `train`).
pub(crate) fn default_name(source: &str) -> String {
    let path = std::path::Path::new(source);
    let is_file = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if is_file && !stem.is_empty() => stem.to_string(),
        _ => "unnamed".to_string(),
    }
}

/// The tenant of a job file without a `tenant` field, unless the caller says otherwise.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// What a job gets for the fields its file leaves out.
pub(crate) struct Defaults<'a> {
    pub(crate) name: &'a str,
    pub(crate) tenant: &'a str,
}

/// Builds the job; `None` when any problem was reported (they are in `ctx`).
pub(crate) fn job(ctx: &mut Ctx<'_>, root: &Value, defaults: &Defaults<'_>) -> Option<JobSpec> {
    let map = match root {
        Value::Mapping(map) => map,
        Value::Null => {
            ctx.report("", "empty document: expected a mapping of job fields such as name, resources and run");
            return None;
        }
        other => {
            ctx.wrong_type("", other, "a mapping of job fields such as name, resources and run");
            return None;
        }
    };
    let before = ctx.problems.len();
    let all_fields: Vec<&str> = SKYPILOT_FIELDS.iter().chain(CUMULO_FIELDS).copied().collect();
    ctx.check_fields("", map, &all_fields, HIDDEN_TOP_FIELDS);

    let name = match field(map, "name") {
        Some(v) => ctx.string("name", v, "a job name").and_then(|n| {
            let n = n.trim().to_string();
            if n.is_empty() || n.contains('\n') {
                ctx.invalid("name", &shorten(&n), "a non-empty name on one line");
                None
            } else {
                Some(n)
            }
        }),
        None => Some(defaults.name.to_string()),
    };

    let service = field(map, "service").and_then(|v| service_replicas(ctx, v));
    let has_service = field(map, "service").is_some();

    let kind = match field(map, "kind") {
        Some(v) => ctx.string("kind", v, KIND_EXPECTED).and_then(|k| {
            let found = match k.trim().to_ascii_lowercase().as_str() {
                "training" => Some(JobKind::Training),
                "inference" => Some(JobKind::Inference),
                "batch" => Some(JobKind::Batch),
                "sandbox" => Some(JobKind::Sandbox),
                _ => None,
            };
            if found.is_none() {
                ctx.invalid("kind", &k, KIND_EXPECTED);
            }
            found
        }),
        None if has_service => Some(JobKind::Inference),
        None => Some(JobKind::Batch),
    };

    let tenant = match field(map, "tenant") {
        Some(v) => ctx.string("tenant", v, TENANT_EXPECTED).and_then(|t| {
            let valid = !t.is_empty()
                && t.len() <= 63
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                ctx.invalid("tenant", &shorten(&t), TENANT_EXPECTED);
            }
            valid.then_some(t)
        }),
        None => Some(defaults.tenant.to_string()),
    };

    let num_nodes = match field(map, "num_nodes") {
        Some(v) => ctx.positive("num_nodes", v, "a positive integer (nodes in the gang)"),
        None => Some(1),
    };

    let resources = match field(map, "resources") {
        Some(Value::Mapping(r)) => resources(ctx, r),
        Some(other) => {
            ctx.wrong_type("resources", other, "a mapping of resource fields such as accelerators, cpus and infra");
            None
        }
        None => Some(Resources::default_cpu()),
    };

    let priority = match field(map, "priority") {
        Some(v) => priority(ctx, "priority", v),
        None => Some(resources.as_ref().and_then(|r| r.priority).unwrap_or_default()),
    };

    let preemptible = field(map, "preemptible").map(|v| ctx.boolean("preemptible", v));

    let topology = match field(map, "topology") {
        Some(v) => ctx.string("topology", v, TOPOLOGY_EXPECTED).and_then(|t| {
            let found = match t.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "nvlink-domain" | "nvlink" => Some(TopologyNeed::NvlinkDomain),
                "block" => Some(TopologyNeed::Block),
                "zone" => Some(TopologyNeed::Zone),
                "any" => Some(TopologyNeed::Any),
                _ => None,
            };
            if found.is_none() {
                ctx.invalid("topology", &t, TOPOLOGY_EXPECTED);
            }
            found
        }),
        None => Some(TopologyNeed::Any),
    };

    let replicas_field =
        field(map, "replicas").map(|v| ctx.positive("replicas", v, "a positive integer (inference replicas)"));

    let spread = match field(map, "spread") {
        Some(v) => ctx.string("spread", v, SPREAD_EXPECTED).and_then(|s| {
            let found = match s.trim().to_ascii_lowercase().as_str() {
                "none" => Some(SpreadPolicy::None),
                "providers" => Some(SpreadPolicy::Providers),
                "regions" => Some(SpreadPolicy::Regions),
                _ => None,
            };
            if found.is_none() {
                ctx.invalid("spread", &s, SPREAD_EXPECTED);
            }
            found
        }),
        None => Some(SpreadPolicy::None),
    };

    let checkpoint = field(map, "checkpoint").map(|v| checkpoint(ctx, v));

    let max_attempts = match field(map, "max_attempts") {
        Some(v) => ctx.positive("max_attempts", v, "a positive integer (tries before the job fails for good)"),
        None => Some(DEFAULT_MAX_ATTEMPTS),
    };

    let duration_s = field(map, "duration").map(|v| duration(ctx, "duration", v));

    let deny = match field(map, "deny") {
        Some(Value::String(s)) => vec![infra(ctx, "deny", s)],
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = item("deny", i);
                ctx.string(&path, v, INFRA_EXPECTED).and_then(|s| infra(ctx, &path, &s))
            })
            .collect(),
        Some(other) => {
            ctx.wrong_type("deny", other, "a list of infra such as [aws/us-east-1, gcp]");
            Vec::new()
        }
        None => Vec::new(),
    };

    let max_price = field(map, "max_price_per_hour").map(|v| price(ctx, "max_price_per_hour", v, PRICE_EXPECTED));

    let workdir = field(map, "workdir").map(|v| workdir(ctx, v));
    let setup = field(map, "setup").map(|v| ctx.string("setup", v, "a shell script"));
    let run = field(map, "run").map(|v| ctx.string("run", v, "a shell script"));
    let envs = field(map, "envs").map(|v| envs(ctx, v)).unwrap_or_default();
    if let Some(secrets) = field(map, "secrets")
        && !matches!(secrets, Value::Mapping(_) | Value::Sequence(_))
    {
        ctx.wrong_type("secrets", secrets, "a mapping of secret names to values, or a list of secret names");
    }

    // Cross-field rules, checked only on values that parsed.
    let replicas = match (replicas_field, service.flatten()) {
        (Some(Some(top)), Some(svc)) if top != svc => {
            ctx.invalid(
                "replicas",
                &top.to_string(),
                &format!("the same count as the service section ({svc}), or only one of the two"),
            );
            None
        }
        (Some(top), svc) => top.or(svc),
        (None, svc) => Some(svc.unwrap_or(1)),
    };
    if let Some(kind) = kind {
        if has_service && kind != JobKind::Inference {
            ctx.report(
                "service",
                format!("a service section on a {kind} job: expected `kind: inference` (or no kind)"),
            );
        }
        if let Some(n) = replicas
            && n > 1
            && kind != JobKind::Inference
            && !has_service
        {
            ctx.invalid(
                "replicas",
                &n.to_string(),
                &format!("1 for a {kind} job: only inference jobs have replicas (a gang is num_nodes)"),
            );
        }
    }
    if let (Some(spread), Some(n)) = (spread, replicas)
        && spread != SpreadPolicy::None
        && n < 2
    {
        let name = if spread == SpreadPolicy::Providers { "providers" } else { "regions" };
        let replicas = if n == 1 { "1 replica".to_string() } else { format!("{n} replicas") };
        ctx.invalid("spread", name, &format!("none with {replicas}: spreading needs at least 2 replicas"));
    }

    if ctx.problems.len() > before {
        return None;
    }
    let kind = kind?;
    let resources = resources?;
    let num_nodes = num_nodes?;
    let max_price_per_hour = match max_price {
        Some(price) => Some(price?),
        None => resources.max_hourly_cost_per_node.map(|p| p.saturating_mul(i64::from(num_nodes))),
    };
    Some(JobSpec {
        name: name?,
        kind,
        tenant: tenant?,
        priority: priority?,
        preemptible: match preemptible {
            Some(p) => p?,
            None => default_preemptible(kind),
        },
        resources: resources.options,
        ordered: resources.ordered,
        num_nodes,
        topology: topology?,
        replicas: replicas?,
        spread: spread?,
        constraints: Constraints { deny: deny.into_iter().collect::<Option<Vec<_>>>()?, max_price_per_hour },
        envs,
        workdir: workdir.flatten(),
        setup: setup.flatten(),
        run: run.flatten(),
        checkpoint: checkpoint.flatten(),
        max_attempts: max_attempts?,
        duration_s: duration_s.flatten(),
    })
}

const KIND_EXPECTED: &str = "training, inference, batch or sandbox";
const TENANT_EXPECTED: &str = "a tenant name of letters, digits, '-', '_' or '.' (at most 63)";
const TOPOLOGY_EXPECTED: &str = "nvlink-domain, block, zone or any";
const SPREAD_EXPECTED: &str = "none, providers or regions";
const INFRA_EXPECTED: &str = "provider[/region[/zone]] such as aws, aws/us-east-1, */us-east-1 or k8s/my-context";
const PRICE_EXPECTED: &str = "a non-negative number of US dollars per hour, all nodes together";
const DURATION_EXPECTED: &str = "a duration such as 90s, 30m, 2h or 1h30m, or a number of seconds";
const CPUS_EXPECTED: &str = "a positive number of vCPUs such as 4, or \"4+\" for at least 4";
const MEMORY_EXPECTED: &str = "a positive size in GB such as 32, \"32+\" or \"64GB\" (units KB, MB, GB, TB, PB)";
const ACCELERATORS_EXPECTED: &str =
    "GPUs per node such as H100:8, {H100: 8, H200: 8}, [H100:8, A100-80GB:8], A100:0.5 or 80GB+:8";

/// Attempts a job gets before it fails for good, when the file does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Whether a job may be preempted when the file does not say: sandboxes and batch work may be,
/// training and inference may not (training restarts are costly; inference serves users).
pub fn default_preemptible(kind: JobKind) -> bool {
    matches!(kind, JobKind::Sandbox | JobKind::Batch)
}

fn priority(ctx: &mut Ctx<'_>, path: &str, value: &Value) -> Option<Priority> {
    const EXPECTED: &str = "low, normal, high, critical or an integer";
    match value {
        Value::Number(n) => match n.as_i64().and_then(|v| i32::try_from(v).ok()) {
            Some(v) => Some(Priority(v)),
            None => {
                ctx.invalid(path, &n.to_string(), EXPECTED);
                None
            }
        },
        Value::String(s) => match Priority::parse(s) {
            Ok(p) => Some(p),
            Err(_) => {
                ctx.invalid(path, s, EXPECTED);
                None
            }
        },
        other => {
            ctx.wrong_type(path, other, EXPECTED);
            None
        }
    }
}

fn duration(ctx: &mut Ctx<'_>, path: &str, value: &Value) -> Option<u64> {
    match value {
        Value::Number(_) | Value::String(_) => {
            let text = scalar_text(value).unwrap_or_default();
            let parsed = units::duration_s(&text);
            if parsed.is_none() {
                ctx.invalid(path, &text, DURATION_EXPECTED);
            }
            parsed
        }
        other => {
            ctx.wrong_type(path, other, DURATION_EXPECTED);
            None
        }
    }
}

fn price(ctx: &mut Ctx<'_>, path: &str, value: &Value, expected: &str) -> Option<Money> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => {
            ctx.wrong_type(path, other, expected);
            return None;
        }
    };
    let parsed = Money::parse_non_negative(&text).ok().or_else(|| {
        // Floats that print with an exponent (`1e-7`).
        value.as_f64().and_then(Money::from_dollars_f64)
    });
    if parsed.is_none() {
        ctx.invalid(path, &text, expected);
    }
    parsed
}

fn checkpoint(ctx: &mut Ctx<'_>, value: &Value) -> Option<Checkpoint> {
    const EXPECTED: &str = "a directory, or {dir: /ckpt/run, every: 30m}";
    match value {
        Value::String(dir) if !dir.trim().is_empty() => Some(Checkpoint { dir: dir.trim().to_string(), every_s: None }),
        Value::Mapping(map) => {
            ctx.check_fields("checkpoint", map, &["dir", "every"], &[]);
            let dir = match field(map, "dir") {
                Some(v) => ctx.string("checkpoint.dir", v, "a directory path").filter(|d| {
                    let ok = !d.trim().is_empty();
                    if !ok {
                        ctx.invalid("checkpoint.dir", d, "a non-empty directory path");
                    }
                    ok
                }),
                None => {
                    ctx.report("checkpoint.dir", format!("missing field `dir`: expected {EXPECTED}"));
                    None
                }
            };
            let every = field(map, "every").map(|v| duration(ctx, "checkpoint.every", v));
            Some(Checkpoint { dir: dir?.trim().to_string(), every_s: every.map(|e| e.ok_or(())).transpose().ok()? })
        }
        other => {
            ctx.wrong_type("checkpoint", other, EXPECTED);
            None
        }
    }
}

fn workdir(ctx: &mut Ctx<'_>, value: &Value) -> Option<String> {
    const EXPECTED: &str = "a directory, or {url: https://..., ref: main} for a git repository";
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Mapping(map) => {
            ctx.check_fields("workdir", map, &["url", "ref"], &[]);
            let url = match field(map, "url") {
                Some(v) => ctx.string("workdir.url", v, "a git repository URL"),
                None => {
                    ctx.report("workdir.url", format!("missing field `url`: expected {EXPECTED}"));
                    None
                }
            };
            let git_ref = field(map, "ref").map(|v| ctx.string("workdir.ref", v, "a branch, tag or commit"));
            match (url?, git_ref) {
                (url, Some(r)) => Some(format!("{url}@{}", r?)),
                (url, None) => Some(url),
            }
        }
        other => {
            ctx.wrong_type("workdir", other, EXPECTED);
            None
        }
    }
}

/// Environment variables. Scalars become text (`PORT: 8080` → "8080"); a null value, which
/// SkyPilot fills from `--env` at launch, is left out.
fn envs(ctx: &mut Ctx<'_>, value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Value::Mapping(map) = value else {
        ctx.wrong_type("envs", value, "a mapping of variable names to values");
        return out;
    };
    for (key, v) in map {
        let Some(name) = key.as_str() else {
            ctx.report("envs", format!("wrong type: found {} as a variable name, expected a string", describe(key)));
            continue;
        };
        let path = child("envs", name);
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            ctx.invalid(&path, name, "a variable name of letters, digits and '_', not starting with a digit");
            continue;
        }
        match v {
            Value::Null => {}
            Value::String(s) => {
                out.insert(name.to_string(), s.clone());
            }
            Value::Number(n) => {
                out.insert(name.to_string(), n.to_string());
            }
            Value::Bool(b) => {
                out.insert(name.to_string(), b.to_string());
            }
            other => ctx.wrong_type(&path, other, "a string, number or boolean"),
        }
    }
    out
}

/// `service.replicas`, else `service.replica_policy.min_replicas` (at least 1). `Some(None)` when
/// the service gives no count.
fn service_replicas(ctx: &mut Ctx<'_>, value: &Value) -> Option<Option<u32>> {
    let Value::Mapping(map) = value else {
        ctx.wrong_type("service", value, "a mapping such as {replicas: 2, readiness_probe: /health}");
        return None;
    };
    if let Some(v) = field(map, "replicas") {
        return ctx.positive("service.replicas", v, "a positive integer").map(Some);
    }
    match field(map, "replica_policy") {
        Some(Value::Mapping(policy)) => match field(policy, "min_replicas") {
            Some(Value::Number(n)) if n.as_u64().is_some_and(|m| m <= u64::from(u32::MAX)) => {
                Some(Some((n.as_u64().unwrap_or(1) as u32).max(1)))
            }
            Some(other) => {
                let text = scalar_text(other).unwrap_or_else(|| describe(other));
                ctx.invalid("service.replica_policy.min_replicas", &text, "a non-negative integer");
                None
            }
            None => Some(None),
        },
        Some(other) => {
            ctx.wrong_type("service.replica_policy", other, "a mapping such as {min_replicas: 1, max_replicas: 3}");
            None
        }
        None => Some(None),
    }
}

/// Parses an `infra` string (`aws`, `aws/us-east-1/us-east-1a`, `*/us-east-1`, `k8s/context`).
fn infra(ctx: &mut Ctx<'_>, path: &str, text: &str) -> Option<InfraSelector> {
    match parse_infra(text) {
        Some(selector) => Some(selector),
        None => {
            ctx.invalid(path, text, INFRA_EXPECTED);
            None
        }
    }
}

fn parse_infra(text: &str) -> Option<InfraSelector> {
    let t = text.trim();
    let (first, rest) = t.split_once('/').unwrap_or((t, ""));
    if matches!(first.to_ascii_lowercase().as_str(), "k8s" | "kubernetes") {
        // Kubernetes contexts may contain '/', so the rest is one context name.
        let context = rest.trim();
        return Some(InfraSelector {
            provider: Some("kubernetes".to_string()),
            region: (!context.is_empty() && context != "*").then(|| context.to_string()),
            zone: None,
        });
    }
    let selector = InfraSelector::parse(t).ok()?;
    if let Some(provider) = &selector.provider {
        Provider::new(provider).ok()?;
    }
    Some(selector)
}

/// A provider name given in SkyPilot's older `cloud` field.
fn cloud_name(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    if lower == "k8s" {
        return Some("kubernetes".to_string());
    }
    Provider::new(&lower).ok().map(|p| p.as_str().to_string())
}

/// GPUs asked for, and how alternatives relate.
#[derive(Clone, Debug)]
struct Accelerators {
    demands: Vec<AcceleratorDemand>,
    /// True for a list (`[H100:8, A100:8]`, tried in order); false for one model or a mapping.
    ordered: bool,
}

/// The resource fields of one level (the base `resources`, or one `any_of` / `ordered` item).
#[derive(Clone, Debug, Default)]
struct Partial {
    infra: Option<InfraSelector>,
    cloud: Option<String>,
    region: Option<String>,
    zone: Option<String>,
    accelerators: Option<Accelerators>,
    cpus_milli: Option<u32>,
    memory_mib: Option<u64>,
    use_spot: Option<bool>,
    instance_type: Option<String>,
}

impl Partial {
    fn has_old_location(&self) -> bool {
        self.cloud.is_some() || self.region.is_some() || self.zone.is_some()
    }

    /// `item`'s fields over `self`'s. A whole `infra` replaces the base location; the older
    /// `cloud`, `region`, `zone` replace only their own part.
    fn overlay(&self, item: &Partial) -> Partial {
        let base_location = self.location();
        let location = if item.infra.is_some() {
            item.infra.clone()
        } else if item.has_old_location() {
            let base = base_location.unwrap_or_default();
            Some(InfraSelector {
                provider: item.cloud.clone().or(base.provider),
                region: item.region.clone().or(base.region),
                zone: item.zone.clone().or(base.zone),
            })
        } else {
            base_location
        };
        Partial {
            infra: location,
            cloud: None,
            region: None,
            zone: None,
            accelerators: item.accelerators.clone().or_else(|| self.accelerators.clone()),
            cpus_milli: item.cpus_milli.or(self.cpus_milli),
            memory_mib: item.memory_mib.or(self.memory_mib),
            use_spot: item.use_spot.or(self.use_spot),
            instance_type: item.instance_type.clone().or_else(|| self.instance_type.clone()),
        }
    }

    fn location(&self) -> Option<InfraSelector> {
        if self.infra.is_some() {
            return self.infra.clone();
        }
        if !self.has_old_location() {
            return None;
        }
        Some(InfraSelector { provider: self.cloud.clone(), region: self.region.clone(), zone: self.zone.clone() })
    }

    /// The options this level stands for: one per accelerator alternative.
    fn options(&self) -> (Vec<ResourceOption>, bool) {
        let infra = self.location().filter(|s| s.provider.is_some() || s.region.is_some() || s.zone.is_some());
        let base = ResourceOption {
            accelerators: None,
            cpus_milli: self.cpus_milli.unwrap_or(DEFAULT_CPUS_MILLI),
            memory_mib: self.memory_mib.unwrap_or(0),
            infra,
            use_spot: self.use_spot.unwrap_or(false),
            instance_type: self.instance_type.clone(),
        };
        let Some(accelerators) = &self.accelerators else {
            return (vec![base], false);
        };
        let demands =
            if accelerators.ordered { accelerators.demands.clone() } else { merge_same_count(&accelerators.demands) };
        let options = demands
            .into_iter()
            .map(|demand| ResourceOption { accelerators: Some(demand), ..base.clone() })
            .collect::<Vec<_>>();
        let ordered = accelerators.ordered && options.len() > 1;
        (options, ordered)
    }
}

/// vCPUs per node when a file does not say: one, so that every job holds a slot somewhere.
pub const DEFAULT_CPUS_MILLI: u32 = 1000;

/// Unordered alternatives with the same count become one demand with a list of models
/// (`{H100: 8, H200: 8}` → `H100|H200:8`); the scheduler then treats them as equals.
fn merge_same_count(demands: &[AcceleratorDemand]) -> Vec<AcceleratorDemand> {
    let mut merged: Vec<AcceleratorDemand> = Vec::new();
    for demand in demands {
        let target = merged.iter_mut().find(|m| {
            m.per_node == demand.per_node
                && matches!(m.selector, GpuSelector::Models(_))
                && matches!(demand.selector, GpuSelector::Models(_))
        });
        match (target, &demand.selector) {
            (Some(AcceleratorDemand { selector: GpuSelector::Models(models), .. }), GpuSelector::Models(more)) => {
                for model in more {
                    if !models.contains(model) {
                        models.push(*model);
                    }
                }
            }
            _ => {
                if !merged.contains(demand) {
                    merged.push(demand.clone());
                }
            }
        }
    }
    merged
}

/// What `resources` adds up to.
#[derive(Debug)]
struct Resources {
    options: Vec<ResourceOption>,
    ordered: bool,
    max_hourly_cost_per_node: Option<Money>,
    priority: Option<Priority>,
}

impl Resources {
    fn default_cpu() -> Resources {
        let (options, ordered) = Partial::default().options();
        Resources { options, ordered, max_hourly_cost_per_node: None, priority: None }
    }
}

fn resources(ctx: &mut Ctx<'_>, map: &Mapping) -> Option<Resources> {
    let before = ctx.problems.len();
    let mut fields: Vec<&str> = RESOURCE_FIELDS.to_vec();
    fields.extend(["any_of", "ordered"]);
    fields.extend(IGNORED_RESOURCE_FIELDS);
    ctx.check_fields("resources", map, &fields, HIDDEN_RESOURCE_FIELDS);
    let base = partial(ctx, "resources", map);

    let max_hourly_cost = field(map, "max_hourly_cost")
        .map(|v| price(ctx, "resources.max_hourly_cost", v, "a non-negative number of US dollars per node-hour"));
    let priority = field(map, "priority").map(|v| priority(ctx, "resources.priority", v));

    let mut candidate_lists = Vec::new();
    for list_name in ["any_of", "ordered"] {
        let path = child("resources", list_name);
        match field(map, list_name) {
            Some(Value::Sequence(items)) if items.is_empty() => {
                ctx.report(&path, "empty list: expected at least one candidate resource mapping");
            }
            Some(Value::Sequence(items)) => {
                let mut candidates = Vec::new();
                for (i, value) in items.iter().enumerate() {
                    let item_path = item(&path, i);
                    match value {
                        Value::Mapping(m) => {
                            let mut item_fields: Vec<&str> = RESOURCE_FIELDS.to_vec();
                            item_fields.extend(IGNORED_RESOURCE_FIELDS);
                            ctx.check_fields(&item_path, m, &item_fields, HIDDEN_RESOURCE_FIELDS);
                            candidates.push(partial(ctx, &item_path, m));
                        }
                        other => ctx.wrong_type(&item_path, other, "a mapping of resource fields such as {infra: aws}"),
                    }
                }
                candidate_lists.push((list_name, path, candidates));
            }
            Some(other) => {
                ctx.wrong_type(&path, other, "a list of resource mappings such as [{infra: aws}, {infra: gcp}]")
            }
            None => {}
        }
    }
    if candidate_lists.len() > 1 {
        ctx.report("resources.ordered", "cannot be combined with `any_of`: expected one list of candidates");
    }
    if ctx.problems.len() > before {
        return None;
    }

    let (options, mut ordered) = match candidate_lists.pop() {
        Some((list_name, _, candidates)) => {
            let mut options: Vec<ResourceOption> = Vec::new();
            let mut ordered = list_name == "ordered";
            for candidate in &candidates {
                let (more, more_ordered) = base.overlay(candidate).options();
                ordered |= more_ordered;
                for option in more {
                    if !options.contains(&option) {
                        options.push(option);
                    }
                }
            }
            (options, ordered)
        }
        None => base.overlay(&Partial::default()).options(),
    };
    if options.len() < 2 {
        ordered = false;
    }
    Some(Resources {
        options,
        ordered,
        max_hourly_cost_per_node: max_hourly_cost.flatten(),
        priority: priority.flatten(),
    })
}

/// Reads the fields of one resource level; problems go to `ctx`, bad fields are left unset.
fn partial(ctx: &mut Ctx<'_>, path: &str, map: &Mapping) -> Partial {
    let mut out = Partial::default();
    if let Some(v) = field(map, "infra") {
        let p = child(path, "infra");
        out.infra = ctx.string(&p, v, INFRA_EXPECTED).and_then(|s| infra(ctx, &p, &s));
    }
    for (name, slot) in [("cloud", &mut out.cloud), ("region", &mut out.region), ("zone", &mut out.zone)] {
        let Some(v) = field(map, name) else { continue };
        let p = child(path, name);
        if field(map, "infra").is_some() {
            ctx.report(&p, format!("cannot be combined with `infra`: expected either infra ({INFRA_EXPECTED}) or the older cloud, region and zone"));
            continue;
        }
        let Some(text) = ctx.string(&p, v, "a name such as aws, us-east-1 or us-east-1a") else { continue };
        let value = if name == "cloud" { cloud_name(&text) } else { Some(text.trim().to_string()) };
        match value.filter(|v| !v.is_empty() && !v.contains('/')) {
            Some(v) => *slot = Some(v),
            None => ctx.invalid(&p, &text, "a name of letters, digits and '-' such as aws, us-east-1 or us-east-1a"),
        }
    }
    if let Some(v) = field(map, "accelerators") {
        out.accelerators = accelerators(ctx, &child(path, "accelerators"), v, true);
    }
    if let Some(v) = field(map, "cpus") {
        let p = child(path, "cpus");
        out.cpus_milli = match scalar_text(v) {
            Some(text) => {
                let parsed = units::cpus_milli(&text);
                if parsed.is_none() {
                    ctx.invalid(&p, &text, CPUS_EXPECTED);
                }
                parsed
            }
            None => {
                ctx.wrong_type(&p, v, CPUS_EXPECTED);
                None
            }
        };
    }
    if let Some(v) = field(map, "memory") {
        let p = child(path, "memory");
        out.memory_mib = match scalar_text(v) {
            Some(text) => {
                let parsed = units::memory_mib(&text);
                if parsed.is_none() {
                    ctx.invalid(&p, &text, MEMORY_EXPECTED);
                }
                parsed
            }
            None => {
                ctx.wrong_type(&p, v, MEMORY_EXPECTED);
                None
            }
        };
    }
    if let Some(v) = field(map, "use_spot") {
        out.use_spot = ctx.boolean(&child(path, "use_spot"), v);
    }
    if let Some(v) = field(map, "instance_type") {
        out.instance_type = ctx.string(&child(path, "instance_type"), v, "an instance type such as p5.48xlarge");
    }
    out
}

/// `accelerators` in any of SkyPilot's forms, or Cumulo's `80GB+:8`.
fn accelerators(ctx: &mut Ctx<'_>, path: &str, value: &Value, may_reparse: bool) -> Option<Accelerators> {
    match value {
        Value::String(s) => {
            let t = s.trim();
            // SkyPilot accepts a flow set or list written as a string: "{A100:1, V100:1}".
            if may_reparse && (t.starts_with('{') || t.starts_with('[')) {
                return match serde_yaml::from_str::<Value>(t) {
                    Ok(inner @ (Value::Mapping(_) | Value::Sequence(_))) => accelerators(ctx, path, &inner, false),
                    _ => {
                        ctx.invalid(path, t, ACCELERATORS_EXPECTED);
                        None
                    }
                };
            }
            let demand = demand(ctx, path, t, None)?;
            Some(Accelerators { demands: vec![demand], ordered: false })
        }
        Value::Mapping(map) if map.is_empty() => {
            ctx.invalid(path, "{}", ACCELERATORS_EXPECTED);
            None
        }
        Value::Mapping(map) => {
            let mut demands = Vec::new();
            let mut failed = false;
            for (key, count) in map {
                let Some(name) = scalar_text(key) else {
                    ctx.wrong_type(path, key, "a GPU model name as the key, such as H100");
                    failed = true;
                    continue;
                };
                let count = match count {
                    Value::Null => None,
                    Value::Number(_) | Value::String(_) => scalar_text(count),
                    other => {
                        ctx.wrong_type(path, other, "a GPU count such as 8 or 0.5");
                        failed = true;
                        continue;
                    }
                };
                match demand(ctx, path, &name, count) {
                    Some(d) => demands.push(d),
                    None => failed = true,
                }
            }
            (!failed).then_some(Accelerators { demands, ordered: false })
        }
        Value::Sequence(items) if items.is_empty() => {
            ctx.invalid(path, "[]", ACCELERATORS_EXPECTED);
            None
        }
        Value::Sequence(items) => {
            let mut demands = Vec::new();
            let mut failed = false;
            for (i, entry) in items.iter().enumerate() {
                let item_path = item(path, i);
                let parsed = match entry {
                    Value::String(_) | Value::Mapping(_) => match accelerators(ctx, &item_path, entry, false) {
                        Some(a) if a.demands.len() == 1 => Some(a.demands),
                        Some(_) => {
                            ctx.wrong_type(&item_path, entry, "one GPU model and count per list item, such as H100:8");
                            None
                        }
                        None => None,
                    },
                    other => {
                        ctx.wrong_type(&item_path, other, "a GPU model and count such as H100:8");
                        None
                    }
                };
                match parsed {
                    Some(mut d) => demands.append(&mut d),
                    None => failed = true,
                }
            }
            (!failed).then_some(Accelerators { demands, ordered: true })
        }
        other => {
            ctx.wrong_type(path, other, ACCELERATORS_EXPECTED);
            None
        }
    }
}

/// One `MODEL:COUNT` (or `MODEL` with the count given apart, as in `{H100: 8}`).
fn demand(ctx: &mut Ctx<'_>, path: &str, spec: &str, count: Option<String>) -> Option<AcceleratorDemand> {
    let spec = spec.trim();
    let (name, count_text) = match (spec.split_once(':'), count) {
        (Some(_), Some(count)) => {
            ctx.invalid(path, &format!("{spec}: {count}"), "the count once, as H100:8 or {H100: 8}");
            return None;
        }
        (Some((name, count)), None) => (name.trim(), count.trim().to_string()),
        (None, Some(count)) => (spec, count),
        (None, None) => (spec, "1".to_string()),
    };
    let written = format!("{name}:{count_text}");
    let selector = match memory_selector(name) {
        Some(gb) => Some(GpuSelector::MinMemoryGb(gb)),
        None => match GpuModel::parse(name) {
            Ok(model) => Some(GpuSelector::Models(vec![model])),
            Err(_) => {
                let hint = match units::closest(name, GpuModel::ALL.iter().map(|m| m.name())) {
                    Some(close) => format!(" (did you mean `{close}`?)"),
                    None => String::new(),
                };
                ctx.report(
                    path,
                    format!(
                        "unknown GPU model `{name}`{hint}: expected one of {}, or NGB+ (such as 80GB+) for any GPU with at least N GB",
                        GpuModel::known_names()
                    ),
                );
                None
            }
        },
    };
    let per_node = match units::gpu_count(&count_text) {
        Ok(count) => Some(count),
        Err(why) => {
            ctx.report(path, format!("invalid GPU count `{count_text}` in `{written}`: expected {}", why.expected()));
            None
        }
    };
    Some(AcceleratorDemand { selector: selector?, per_node: per_node? })
}

/// `80GB+` → 80: any GPU with at least that much memory.
fn memory_selector(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let digits = upper.strip_suffix("GB+")?.trim_end();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|gb| *gb > 0)
}
