//! From one YAML document (`serde_yaml::Value`) to a normalised [`JobSpec`], collecting every
//! problem found on the way instead of stopping at the first.

use std::collections::BTreeMap;

use cumulo_types::{
    AcceleratorDemand, Checkpoint, Constraints, GpuModel, GpuSelector, InfraSelector, JobId, JobKind, JobSpec,
    MilliGpu, Money, Priority, Provider, ResourceOption, Speed, SpreadPolicy, TopologyNeed,
};
use serde_yaml::{Mapping, Value};

use crate::accel::{self, Reading};
use crate::locate::LineMap;
use crate::{Problem, ProblemKind};
use crate::{instance, pyyaml, units};

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
    "after",
    "speedups",
];

/// Top-level fields SkyPilot writes for itself; accepted, never suggested.
const HIDDEN_TOP_FIELDS: &[&str] = &["_metadata"];

/// Resource fields that Cumulo reads.
const RESOURCE_FIELDS: &[&str] = &[
    "infra",
    "accelerators",
    "gpus",
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
    /// Fields read but not applied, or read differently than a user may think; the job is valid.
    pub(crate) warnings: Vec<Problem>,
    /// `after:` entries naming earlier documents of the same file (resolved by the caller).
    pub(crate) after_names: Vec<String>,
    /// The provider of the resources whose accelerators are being read: SkyPilot canonicalises
    /// a partial accelerator name only to a name that cloud offers.
    cloud: Option<String>,
    lines: &'a LineMap,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(lines: &'a LineMap) -> Ctx<'a> {
        Ctx { problems: Vec::new(), warnings: Vec::new(), after_names: Vec::new(), cloud: None, lines }
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        let line = self.lines.find(path);
        let warning = Problem { kind: ProblemKind::Field, path: path.to_string(), message: message.into(), line };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    pub(crate) fn report(&mut self, path: &str, message: impl Into<String>) {
        let line = self.lines.find(path);
        self.problems.push(Problem { kind: ProblemKind::Field, path: path.to_string(), message: message.into(), line });
    }

    /// A problem between values that are each valid: see [`ProblemKind::Conflict`].
    pub(crate) fn report_conflict(&mut self, path: &str, message: impl Into<String>) {
        let line = self.lines.find(path);
        self.problems.push(Problem {
            kind: ProblemKind::Conflict,
            path: path.to_string(),
            message: message.into(),
            line,
        });
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

    /// A whole number from 1 to `u32::MAX` (`2.0` is the whole number 2, as in SkyPilot's schema).
    fn positive(&mut self, path: &str, value: &Value, expected: &str) -> Option<u32> {
        match value {
            Value::Number(n) => match whole_number(n).and_then(|v| u32::try_from(v).ok()) {
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

/// The integer a number stands for: an integer, or a float without a fraction (`2.0`), as JSON
/// Schema's `integer` (and so SkyPilot's schema) reads it. Past 2^53 a float no longer holds
/// every integer, so such floats are not whole numbers here.
fn whole_number(n: &serde_yaml::Number) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match (n.as_i64(), n.as_f64()) {
        (Some(v), _) => Some(v),
        (None, Some(f)) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT => Some(f as i64),
        _ => None,
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

    // SkyPilot's `job_recovery.max_restarts_on_errors: N` allows N restarts: N + 1 attempts.
    let restarts = resources.as_ref().and_then(|r| r.max_restarts_on_errors);
    let max_attempts = match field(map, "max_attempts") {
        Some(v) => ctx.positive("max_attempts", v, "a positive integer (tries before the job fails for good)"),
        None => Some(restarts.map_or(DEFAULT_MAX_ATTEMPTS, |n| n.saturating_add(1))),
    };
    let after = field(map, "after").map_or(Some(Vec::new()), |v| after(ctx, v));

    let duration_s = field(map, "duration").map(|v| duration(ctx, "duration", v));
    let speedups = field(map, "speedups").map_or(Some(BTreeMap::new()), |v| speedups(ctx, v));

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

    let envs = field(map, "envs").map(|v| envs(ctx, v)).unwrap_or_default();
    let secrets = field(map, "secrets").map(|v| secrets(ctx, v)).unwrap_or_default();
    // SkyPilot fills `$VAR` and `${VAR}` from `envs` and the secrets given a value in the file into
    // `workdir` and `file_mounts` (destinations, sources, bucket names) as it loads the file.
    let mut fill = envs.clone();
    fill.extend(secrets.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))));
    let workdir = field(map, "workdir").map(|v| workdir(ctx, v).map(|w| fill_env_vars(&w, &fill)));
    let file_mounts = field(map, "file_mounts").map(|v| file_mounts(ctx, v, &fill)).unwrap_or_default();
    let setup = field(map, "setup").map(|v| ctx.string("setup", v, "a shell script"));
    let run = field(map, "run").map(|v| ctx.string("run", v, "a shell script"));
    warn_not_applied(ctx, "", map, NOT_APPLIED_TOP_FIELDS);
    if let Some(Value::Mapping(service)) = field(map, "service") {
        let ignored = service_not_applied(service);
        if !ignored.is_empty() {
            ctx.warn(
                "service",
                format!(
                    "only the replica count is applied (replicas, else replica_policy.min_replicas, fixed): not applied: {}",
                    ignored.join(", ")
                ),
            );
        }
    }
    if field(map, "workdir").is_some() {
        ctx.warn(
            "workdir",
            "a local directory is uploaded by `cumulo submit` and copied into the job's working directory before setup, only on clusters whose driver unpacks uploads (local); submitted without an upload, setup and run start in it, so it must exist on the nodes",
        );
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

    if let (Some(speedups), Some(resources)) = (&speedups, &resources) {
        warn_speedups_unused(ctx, speedups, &resources.options);
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
        secrets,
        workdir: workdir.flatten(),
        file_mounts,
        upload: None,
        setup: setup.flatten(),
        run: run.flatten(),
        checkpoint: checkpoint.flatten(),
        max_attempts: max_attempts?,
        duration_s: duration_s.flatten(),
        image: resources.image,
        after: after?,
        group: None,
        speedups: speedups?,
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
        Value::Number(n) => match whole_number(n).and_then(|v| i32::try_from(v).ok()) {
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

/// `after: [12, prep]`: job ids already submitted, or names of earlier documents in this file
/// (kept in `ctx.after_names` for the caller to resolve).
fn after(ctx: &mut Ctx<'_>, value: &Value) -> Option<Vec<JobId>> {
    const EXPECTED: &str = "a job id or the name of an earlier job in this file";
    let items: Vec<(String, &Value)> = match value {
        Value::Sequence(items) => items.iter().enumerate().map(|(i, v)| (item("after", i), v)).collect(),
        one => vec![("after".to_string(), one)],
    };
    let mut ids = Vec::new();
    let before = ctx.problems.len();
    for (path, v) in items {
        match v {
            Value::Number(n) => match n.as_u64().filter(|id| *id > 0) {
                Some(id) => ids.push(JobId(id)),
                None => ctx.invalid(&path, &n.to_string(), EXPECTED),
            },
            Value::String(name) if !name.trim().is_empty() => ctx.after_names.push(name.trim().to_string()),
            other => ctx.wrong_type(&path, other, EXPECTED),
        }
    }
    (ctx.problems.len() == before).then_some(ids)
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

/// `speedups: {V100: 3.0, K80: 1.0}`: the job's relative speed on each GPU model.
fn speedups(ctx: &mut Ctx<'_>, value: &Value) -> Option<BTreeMap<GpuModel, Speed>> {
    let Value::Mapping(map) = value else {
        ctx.wrong_type("speedups", value, "a mapping of GPU model to relative speed, such as {V100: 3.0, K80: 1.0}");
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, speed) in map {
        let Some(name) = scalar_text(key) else {
            ctx.report(
                "speedups",
                format!("wrong type: found {} as a GPU model, expected a name such as V100", describe(key)),
            );
            ok = false;
            continue;
        };
        let path = child("speedups", &name);
        let model = match GpuModel::parse(&name) {
            Ok(model) => model,
            Err(err) => {
                ctx.report(&path, err.to_string());
                ok = false;
                continue;
            }
        };
        let parsed = match speed {
            Value::Number(n) => n.as_f64().and_then(Speed::from_f64).or_else(|| {
                ctx.invalid(&path, &n.to_string(), Speed::EXPECTED);
                None
            }),
            other => {
                ctx.wrong_type(&path, other, Speed::EXPECTED);
                None
            }
        };
        match parsed {
            Some(s) if out.insert(model, s).is_some() => {
                ctx.report_conflict(&path, format!("duplicate GPU model `{model}`: expected each model once"));
                ok = false;
            }
            Some(_) => {}
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Speed-ups for models no resource option accepts are kept but never used: a warning says so.
fn warn_speedups_unused(ctx: &mut Ctx<'_>, speedups: &BTreeMap<GpuModel, Speed>, options: &[ResourceOption]) {
    for model in speedups.keys() {
        let usable = options.iter().any(|o| o.accelerators.as_ref().is_some_and(|a| a.selector.accepts(*model)));
        if !usable {
            ctx.warn(
                &child("speedups", model.name()),
                format!("the job's resources never select {model}: this speed-up is not used"),
            );
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

/// SkyPilot `file_mounts`: destination → a local path or a bucket URL, or a storage mapping
/// (`source`: a path, a list of local files or a bucket URL; `name`: the bucket; `store`; `mode`).
/// `$VAR` and `${VAR}` are filled from `fill` first, as SkyPilot does. A local source is copied
/// onto the node through the upload `cumulo submit` makes (a list of files: each into the
/// destination folder); a bucket URL, or a storage mapping with no `source` (a bucket SkyPilot
/// would create, kept as `STORE://NAME`: `bucket://` without a store, `(unnamed)` without a name), is a bucket
/// mount: no driver mounts one, so such a job goes only to clusters whose fleet entry says
/// `bucket_mounts: true`, and the warning says so.
fn file_mounts(ctx: &mut Ctx<'_>, value: &Value, fill: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const EXPECTED: &str = "a mapping of destination paths to a local path or a bucket URL";
    let mut out = BTreeMap::new();
    let Value::Mapping(map) = value else {
        ctx.wrong_type("file_mounts", value, EXPECTED);
        return out;
    };
    for (key, source) in map {
        let Some(written) = key.as_str().map(str::trim) else {
            ctx.report("file_mounts", format!("wrong type: found {} as a destination, expected a path", describe(key)));
            continue;
        };
        let path = child("file_mounts", written);
        let dest = fill_env_vars(written, fill);
        if dest.is_empty() || dest.split('/').any(|part| part == "..") {
            ctx.invalid(&path, &dest, "a destination path without `..` components");
            continue;
        }
        let sources = match source {
            Value::String(s) => vec![(dest.clone(), fill_env_vars(s.trim(), fill))],
            Value::Mapping(storage) => storage_sources(ctx, &path, &dest, storage, fill),
            other => {
                ctx.wrong_type(&path, other, "a local path, a bucket URL, or {source: ..., mode: ...}");
                Vec::new()
            }
        };
        for (dest, source) in sources.into_iter().filter(|(_, s)| !s.is_empty()) {
            if !cumulo_types::job::is_local_source(&source) {
                ctx.warn(&path, format!("bucket `{source}` is mounted by no driver: {BUCKET_PLACEMENT}"));
            }
            out.insert(dest, source);
        }
    }
    out
}

/// What a bucket mount means for placement, as validate and submit say it.
const BUCKET_PLACEMENT: &str = "the job is placed only on clusters whose fleet entry says `bucket_mounts: true` (their nodes mount it there), and waits with a reason naming file_mounts where none does; or fetch it in `setup`";

/// The (destination, source) pairs of one SkyPilot storage mapping under `dest`: its `source` (a
/// list of local files goes each into `dest`), else the bucket its `name` and `store` name.
fn storage_sources(
    ctx: &mut Ctx<'_>,
    path: &str,
    dest: &str,
    storage: &Mapping,
    fill: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    const EXPECTED: &str = "a local path, a list of local files, or a bucket URL";
    let source_path = child(path, "source");
    let mode = field(storage, "mode").and_then(Value::as_str).unwrap_or("MOUNT").to_ascii_uppercase();
    let sources = match field(storage, "source") {
        None | Some(Value::Null) => {
            // SkyPilot creates the bucket, under a name of its own when the file gives none.
            let name = match field(storage, "name") {
                None | Some(Value::Null) => Some(UNNAMED_BUCKET.to_string()),
                Some(v) => ctx.string(&child(path, "name"), v, "a bucket name"),
            };
            return match name.map(|n| fill_env_vars(n.trim(), fill)) {
                Some(name) if !name.is_empty() => {
                    vec![(dest.to_string(), format!("{}://{name}", store_scheme(storage, fill)))]
                }
                _ => vec![(dest.to_string(), format!("{}://{UNNAMED_BUCKET}", store_scheme(storage, fill)))],
            };
        }
        Some(Value::String(s)) => vec![(dest.to_string(), fill_env_vars(s.trim(), fill))],
        Some(Value::Sequence(files)) => {
            let mut out = Vec::new();
            for (i, file) in files.iter().enumerate() {
                let Some(file) = ctx.string(&item(&source_path, i), file, "a local file") else { continue };
                let file = fill_env_vars(file.trim(), fill);
                let base = file.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
                if base.is_empty() || base == ".." || base == "." || !cumulo_types::job::is_local_source(&file) {
                    ctx.invalid(&item(&source_path, i), &file, "a local file (a list holds local files only)");
                    continue;
                }
                out.push((format!("{}/{base}", dest.trim_end_matches('/')), file));
            }
            out
        }
        Some(other) => {
            ctx.wrong_type(&source_path, other, EXPECTED);
            Vec::new()
        }
    };
    if mode != "COPY" && sources.iter().any(|(_, s)| cumulo_types::job::is_local_source(s)) {
        ctx.warn(
            path,
            format!("mode {mode}: the local source is copied onto each node with the upload, not kept in a bucket: what the job writes there stays on the node"),
        );
    }
    sources
}

/// How a bucket SkyPilot would create and name itself is kept (`bucket://(unnamed)`).
const UNNAMED_BUCKET: &str = "(unnamed)";

/// The URL scheme of a SkyPilot storage mapping's `store` (`s3`, `gcs`, `r2`, ..., envs filled
/// in); `bucket` when it names none (SkyPilot would pick the store of the cloud it launches on).
fn store_scheme(storage: &Mapping, fill: &BTreeMap<String, String>) -> String {
    let store = field(storage, "store").and_then(Value::as_str).map(|s| fill_env_vars(s.trim(), fill));
    match store.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("gcs") => "gs".to_string(),
        Some("azure") => "az".to_string(),
        Some("ibm") => "cos".to_string(),
        Some("coreweave") => "cw".to_string(),
        Some(store) if !store.is_empty() => store.to_string(),
        _ => "bucket".to_string(),
    }
}

/// `text` with `$VAR` and `${VAR}` replaced by the values `vars` holds, as SkyPilot's
/// `_fill_in_env_vars` does (`\$\{?\b(NAME)\b\}?`); names it lacks stay as written.
pub(crate) fn fill_env_vars(text: &str, vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() || !text.contains('$') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let open = usize::from(bytes.get(i + 1) == Some(&b'{'));
            let start = i + 1 + open;
            let len = bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            let name = &text[start..start + len];
            if name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && let Some(value) = vars.get(name)
            {
                out.push_str(value);
                i = start + len + usize::from(bytes.get(start + len) == Some(&b'}'));
                continue;
            }
        }
        let c = text[i..].chars().next().expect("inside the text");
        out.push(c);
        i += c.len_utf8();
    }
    out
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
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                // As SkyPilot renders it: `True`, `1e-5` kept as written (see `pyyaml`).
                if let Some(text) = pyyaml::env_text(v, ctx.lines.written(&path)) {
                    out.insert(name.to_string(), text);
                }
            }
            other => ctx.wrong_type(&path, other, "a string, number or boolean"),
        }
    }
    out
}

/// SkyPilot `secrets`: a mapping of names to values (`null`: the submitter gives the value) or a
/// list of names. The values become environment variables of the job's processes only.
fn secrets(ctx: &mut Ctx<'_>, value: &Value) -> BTreeMap<String, Option<String>> {
    const EXPECTED: &str =
        "a mapping of secret names to values (null: taken from the submitter's environment), or a list of secret names";
    let mut out = BTreeMap::new();
    let entries: Vec<(&Value, &Value)> = match value {
        Value::Mapping(map) => map.iter().collect(),
        Value::Sequence(names) => names.iter().map(|n| (n, &Value::Null)).collect(),
        other => {
            ctx.wrong_type("secrets", other, EXPECTED);
            return out;
        }
    };
    for (key, v) in entries {
        let Some(name) = key.as_str() else {
            ctx.report("secrets", format!("wrong type: found {} as a secret name, expected a string", describe(key)));
            continue;
        };
        let path = child("secrets", name);
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            ctx.invalid(&path, name, "a variable name of letters, digits and '_', not starting with a digit");
            continue;
        }
        if name.starts_with("CUMULO_") {
            ctx.invalid(&path, name, "a name outside the reserved CUMULO_ prefix");
            continue;
        }
        match v {
            Value::Null => {
                out.insert(name.to_string(), None);
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                out.insert(name.to_string(), pyyaml::env_text(v, ctx.lines.written(&path)));
            }
            other => ctx.wrong_type(&path, other, "a string, number or boolean, or null"),
        }
    }
    out
}

/// The `service` fields Cumulo does not apply, each by its path under `service`: every key but
/// the replica count, and a `replica_policy`'s keys one by one (`replica_policy.max_replicas`,
/// `replica_policy.target_qps_per_replica`) so the warning names each, with `min_replicas` when
/// `replicas` overrides it or when it is 0 (Cumulo runs a fixed count of at least one).
fn service_not_applied(service: &Mapping) -> Vec<String> {
    let count_given = field(service, "replicas").is_some();
    let mut out = Vec::new();
    for key in service.keys().filter_map(Value::as_str) {
        match (key, field(service, key)) {
            ("replicas", _) => {}
            ("replica_policy", Some(Value::Mapping(policy))) => {
                for k in policy.keys().filter_map(Value::as_str) {
                    let zero = field(policy, k).and_then(Value::as_u64) == Some(0);
                    match k {
                        "min_replicas" if !count_given && zero => {
                            out.push("replica_policy.min_replicas 0 (one replica runs: no scaling to zero)".to_string())
                        }
                        "min_replicas" if !count_given => {}
                        _ => out.push(format!("replica_policy.{k}")),
                    }
                }
            }
            _ => out.push(key.to_string()),
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
    /// `cpus: 4+` (at least) rather than `cpus: 4` (exactly); read with `cpus_milli`.
    cpus_or_more: bool,
    memory_mib: Option<u64>,
    memory_or_more: bool,
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
            cpus_or_more: if item.cpus_milli.is_some() { item.cpus_or_more } else { self.cpus_or_more },
            memory_mib: item.memory_mib.or(self.memory_mib),
            memory_or_more: if item.memory_mib.is_some() { item.memory_or_more } else { self.memory_or_more },
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
        // An instance type alone stands for its vCPUs, memory and GPUs (exactly), as in SkyPilot.
        let shape = self.instance_type.as_deref().and_then(instance::shape);
        if let Some(shape) = shape {
            let mut filled = self.clone();
            if filled.cpus_milli.is_none() {
                filled.cpus_milli = Some(shape.vcpus_milli);
                filled.cpus_or_more = false;
            }
            if filled.memory_mib.is_none() {
                filled.memory_mib = Some(shape.memory_mib);
                filled.memory_or_more = false;
            }
            if filled.accelerators.is_none()
                && let Some((model, count)) = shape.gpu
            {
                let demand = AcceleratorDemand {
                    selector: GpuSelector::Models(vec![model]),
                    per_node: MilliGpu::whole(count),
                    names: Vec::new(),
                };
                filled.accelerators = Some(Accelerators { demands: vec![demand], ordered: false });
            }
            filled.instance_type = None;
            let (mut options, ordered) = filled.options();
            for option in &mut options {
                option.instance_type = self.instance_type.clone();
            }
            return (options, ordered);
        }
        // An instance type the catalog lacks whose name states its GPUs (Lambda, Nebius, OCI): those
        // GPUs, as SkyPilot reads from its own catalogs; vCPUs and memory exactly as the name states
        // them (Nebius), else as the file gives.
        if self.accelerators.is_none()
            && let Some(named) = self.instance_type.as_deref().and_then(instance::gpus_in_name)
        {
            let selector = accel::read(&named.accelerator, None).selector();
            let demand = AcceleratorDemand { selector, per_node: MilliGpu::whole(named.count), names: Vec::new() };
            let mut filled = self.clone();
            filled.accelerators = Some(Accelerators { demands: vec![demand], ordered: false });
            if let (None, Some(vcpus)) = (filled.cpus_milli, named.vcpus) {
                filled.cpus_milli = Some(vcpus.saturating_mul(1000));
                filled.cpus_or_more = false;
            }
            if let (None, Some(gb)) = (filled.memory_mib, named.memory_gb) {
                filled.memory_mib = Some(gb.saturating_mul(1024));
                filled.memory_or_more = false;
            }
            return filled.options();
        }
        let infra = self.location().filter(|s| s.provider.is_some() || s.region.is_some() || s.zone.is_some());
        // SkyPilot's default VM on a cloud (`_DEFAULT_NUM_VCPUS = 8`, memory 4 GB per vCPU) when
        // the file names a cloud and asks for nothing else; elsewhere one vCPU (see DEFAULT_CPUS_MILLI).
        let asks_nothing = self.cpus_milli.is_none()
            && self.memory_mib.is_none()
            && self.accelerators.is_none()
            && self.instance_type.is_none();
        let on_cloud = infra.as_ref().and_then(|i| i.provider.as_deref()).is_some_and(is_cloud);
        let (cpus_milli, cpus_or_more, memory_mib, memory_or_more) = if asks_nothing && on_cloud {
            (CLOUD_DEFAULT_CPUS_MILLI, true, CLOUD_DEFAULT_MEMORY_MIB, true)
        } else {
            (
                self.cpus_milli.unwrap_or(DEFAULT_CPUS_MILLI),
                self.cpus_or_more,
                self.memory_mib.unwrap_or(0),
                self.memory_or_more,
            )
        };
        let base = ResourceOption {
            accelerators: None,
            cpus_milli,
            cpus_or_more,
            memory_mib,
            memory_or_more,
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
            .map(|demand| ResourceOption {
                infra: infra_implied_by(&demand, base.infra.as_ref()),
                accelerators: Some(demand),
                ..base.clone()
            })
            .collect::<Vec<_>>();
        let ordered = accelerators.ordered && options.len() > 1;
        (options, ordered)
    }
}

/// The location an accelerator implies where the file names no cloud: TPUs exist only on GCP, and
/// SkyPilot sets `cloud: gcp` for them (`Resources._try_validate_accelerators`).
fn infra_implied_by(demand: &AcceleratorDemand, written: Option<&InfraSelector>) -> Option<InfraSelector> {
    let is_tpu = matches!(&demand.selector, GpuSelector::Named(name) if name.starts_with("tpu-"));
    if !is_tpu || written.is_some_and(|infra| infra.provider.is_some()) {
        return written.cloned();
    }
    let written = written.cloned().unwrap_or_default();
    Some(InfraSelector { provider: Some("gcp".to_string()), ..written })
}

/// vCPUs per node when a file does not say: one, so that every job holds a slot somewhere.
pub const DEFAULT_CPUS_MILLI: u32 = 1000;

/// SkyPilot's default VM on a cloud when a task asks for nothing: at least 8 vCPUs
/// (`sky/clouds/aws.py` and others, `_DEFAULT_NUM_VCPUS`)...
pub const CLOUD_DEFAULT_CPUS_MILLI: u32 = 8000;
/// ...and at least 4 GB per vCPU (`_DEFAULT_MEMORY_CPU_RATIO`): 32 GB.
pub const CLOUD_DEFAULT_MEMORY_MIB: u64 = 32 * 1024;

/// Providers that are clouds renting VMs (SkyPilot's defaults apply there), as opposed to
/// clusters Cumulo is handed (Kubernetes, Slurm, SSH node pools, the local machine).
fn is_cloud(provider: &str) -> bool {
    !matches!(provider, "kubernetes" | "k8s" | "slurm" | "ssh" | "local" | "ray" | "sim")
}

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
            (
                Some(AcceleratorDemand { selector: GpuSelector::Models(models), names, .. }),
                GpuSelector::Models(more),
            ) => {
                // The written names stay one per model, or are dropped when they cannot.
                let parallel = names.len() == models.len() && demand.names.len() == more.len();
                for (i, model) in more.iter().enumerate() {
                    if !models.contains(model) {
                        models.push(*model);
                        names.extend(demand.names.get(i).cloned());
                    }
                }
                if !parallel {
                    names.clear();
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
    /// `job_recovery.max_restarts_on_errors`: restarts after the job's own failure.
    max_restarts_on_errors: Option<u32>,
    /// `image_id: docker:IMAGE`: the container image, without the prefix.
    image: Option<String>,
}

impl Resources {
    fn default_cpu() -> Resources {
        let (options, ordered) = Partial::default().options();
        Resources {
            options,
            ordered,
            max_hourly_cost_per_node: None,
            priority: None,
            max_restarts_on_errors: None,
            image: None,
        }
    }
}

/// Resource fields that tune a VM or SkyPilot's own launch: accepted, not applied by any Cumulo
/// driver, each named once in a warning.
const NOT_APPLIED_RESOURCE_FIELDS: &[(&str, &str)] = &[
    ("disk_size", "the node's disk is the cluster's own"),
    ("disk_tier", "the node's disk is the cluster's own"),
    ("network_tier", "nodes come with the cluster's network"),
    ("ports", "no driver opens ports; a service must be reached through the cluster's own ingress"),
    ("labels", "nodes are not labelled by jobs"),
    ("autostop", "Cumulo stops nothing idle itself: a job's nodes are given back when it ends"),
    ("accelerator_args", "TPU runtime arguments are SkyPilot's"),
    ("local_disk", "the node's disk is the cluster's own"),
    ("volumes", "no driver attaches volumes"),
    ("ephemeral_storage", "no driver sizes ephemeral storage"),
    ("priority_class", "Kubernetes priority classes are not set; use the job's `priority`"),
];

/// Top-level SkyPilot fields that no Cumulo driver applies, each named once in a warning.
const NOT_APPLIED_TOP_FIELDS: &[(&str, &str)] = &[
    ("volumes", "no driver attaches volumes"),
    ("volume_mounts", "no driver attaches volumes"),
    ("config", "SkyPilot's own configuration overrides have no meaning here"),
    ("pool", "SkyPilot worker pools are not used; the job is placed like any other"),
    ("event_callback", "no callback is run on state changes; watch `cumulo job` or the API"),
    ("inputs", "inputs are SkyPilot's hints to its optimizer"),
    ("outputs", "outputs are SkyPilot's hints to its optimizer"),
    ("managed_secrets", "secret values are neither stored nor passed to the job"),
    ("file_mounts_mapping", "no files are copied onto the nodes"),
    ("api_server_access", "the job gets no access to an API server"),
];

/// One warning per field of `map` that `table` names.
fn warn_not_applied(ctx: &mut Ctx<'_>, path: &str, map: &Mapping, table: &[(&str, &str)]) {
    for (name, why) in table {
        if field(map, name).is_some() {
            ctx.warn(&child(path, name), format!("not applied: {why}"));
        }
    }
}

/// `image_id`: `docker:IMAGE` is a container image the job runs in (only on clusters whose
/// driver runs images); a VM image (an AMI, a GCP image, or a mapping of them per region) is
/// not applied, as Cumulo starts no VM.
fn image_id(ctx: &mut Ctx<'_>, path: &str, value: &Value) -> Option<String> {
    match value {
        Value::String(s) => match s.trim().strip_prefix("docker:") {
            Some(image) if !image.trim().is_empty() => Some(image.trim().to_string()),
            Some(_) => {
                ctx.invalid(path, s, "docker:IMAGE such as docker:vllm/vllm-openai:v0.10.0");
                None
            }
            None => {
                ctx.warn(
                    path,
                    "not applied: a VM image; Cumulo starts no VM (a container image is written docker:IMAGE)",
                );
                None
            }
        },
        Value::Mapping(_) => {
            ctx.warn(path, "not applied: VM images per region; Cumulo starts no VM");
            None
        }
        other => {
            ctx.wrong_type(path, other, "docker:IMAGE, a VM image name, or a mapping of region to VM image");
            None
        }
    }
}

/// `job_recovery` (a strategy name, or `{strategy, max_restarts_on_errors, ...}`): the restart
/// count becomes the job's attempt limit; the rest is SkyPilot's managed-job machinery.
fn job_recovery(ctx: &mut Ctx<'_>, path: &str, value: &Value) -> Option<u32> {
    match value {
        Value::String(_) => {
            ctx.warn(
                path,
                "strategy not applied: a lost or preempted attempt is always placed again, anywhere it fits",
            );
            None
        }
        Value::Mapping(map) => {
            for (key, _) in map {
                if key.as_str() != Some("max_restarts_on_errors") {
                    let name = key.as_str().unwrap_or("?");
                    ctx.warn(
                        &child(path, name),
                        "not applied: a lost or preempted attempt is always placed again; only max_restarts_on_errors is read",
                    );
                }
            }
            let p = child(path, "max_restarts_on_errors");
            match field(map, "max_restarts_on_errors") {
                Some(Value::Number(n)) => {
                    match n.as_u64().and_then(|v| u32::try_from(v).ok()).filter(|v| *v < u32::MAX) {
                        Some(v) => Some(v),
                        None => {
                            ctx.invalid(&p, &n.to_string(), "a non-negative integer (restarts after the job fails)");
                            None
                        }
                    }
                }
                Some(other) => {
                    ctx.wrong_type(&p, other, "a non-negative integer (restarts after the job fails)");
                    None
                }
                None => None,
            }
        }
        other => {
            ctx.wrong_type(path, other, "a strategy name or {max_restarts_on_errors: N}");
            None
        }
    }
}

fn resources(ctx: &mut Ctx<'_>, map: &Mapping) -> Option<Resources> {
    let before = ctx.problems.len();
    let mut fields: Vec<&str> = RESOURCE_FIELDS.to_vec();
    fields.extend(["any_of", "ordered"]);
    fields.extend(IGNORED_RESOURCE_FIELDS);
    ctx.check_fields("resources", map, &fields, HIDDEN_RESOURCE_FIELDS);
    let base = partial(ctx, "resources", map);
    warn_not_applied(ctx, "resources", map, NOT_APPLIED_RESOURCE_FIELDS);
    let max_restarts_on_errors =
        field(map, "job_recovery").and_then(|v| job_recovery(ctx, "resources.job_recovery", v));
    let image = field(map, "image_id").and_then(|v| image_id(ctx, "resources.image_id", v));

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
                            warn_not_applied(ctx, &item_path, m, NOT_APPLIED_RESOURCE_FIELDS);
                            if field(m, "image_id").is_some() {
                                ctx.warn(
                                    &child(&item_path, "image_id"),
                                    "not applied: an image per alternative is not supported; give `image_id` once, beside `any_of`",
                                );
                            }
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
        max_restarts_on_errors,
        image,
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
    ctx.cloud = out.infra.as_ref().and_then(|i| i.provider.clone()).or_else(|| out.cloud.clone());
    // `gpus` is SkyPilot's alias of `accelerators` (`sky/resources.py`, RESOURCE_CONFIG_ALIASES).
    match (field(map, "accelerators"), field(map, "gpus")) {
        (Some(_), Some(_)) => ctx.report(
            &child(path, "gpus"),
            "cannot be combined with `accelerators`: `gpus` is another name for it, give one of the two",
        ),
        (Some(v), None) => out.accelerators = accelerators(ctx, &child(path, "accelerators"), v, true),
        (None, Some(v)) => out.accelerators = accelerators(ctx, &child(path, "gpus"), v, true),
        (None, None) => {}
    }
    if let Some(v) = field(map, "cpus") {
        let p = child(path, "cpus");
        out.cpus_milli = match (v, scalar_text(v)) {
            // A number is read as itself, whatever text it would print as (`1e-3`).
            (Value::Number(n), _) => {
                let parsed = n.as_f64().and_then(units::cpus_milli_of);
                if parsed.is_none() {
                    ctx.invalid(&p, &n.to_string(), CPUS_EXPECTED);
                }
                parsed
            }
            (_, Some(text)) => {
                out.cpus_or_more = text.trim_end().ends_with('+');
                let parsed = units::cpus_milli(&text);
                if parsed.is_none() {
                    ctx.invalid(&p, &text, CPUS_EXPECTED);
                }
                parsed
            }
            (_, None) => {
                ctx.wrong_type(&p, v, CPUS_EXPECTED);
                None
            }
        };
    }
    if let Some(v) = field(map, "memory") {
        let p = child(path, "memory");
        out.memory_mib = match (v, scalar_text(v)) {
            (Value::Number(n), _) => {
                let parsed = n.as_f64().and_then(units::memory_mib_of_gb);
                if parsed.is_none() {
                    ctx.invalid(&p, &n.to_string(), MEMORY_EXPECTED);
                }
                parsed
            }
            (_, Some(text)) => {
                out.memory_or_more = text.trim_end().ends_with('+');
                let parsed = units::memory_mib(&text);
                if parsed.is_none() {
                    ctx.invalid(&p, &text, MEMORY_EXPECTED);
                }
                parsed
            }
            (_, None) => {
                ctx.wrong_type(&p, v, MEMORY_EXPECTED);
                None
            }
        };
    }
    if let Some(v) = field(map, "use_spot") {
        out.use_spot = ctx.boolean(&child(path, "use_spot"), v);
    }
    if let Some(v) = field(map, "instance_type") {
        let p = child(path, "instance_type");
        out.instance_type = ctx.string(&p, v, "an instance type such as p5.48xlarge");
        if let Some(name) = &out.instance_type
            && instance::shape(name).is_none()
            && instance::gpus_in_name(name).is_none()
        {
            ctx.warn(
                &p,
                format!(
                    "`{name}` is not in Cumulo's built-in catalog: its vCPUs, memory and GPUs are not known, so the job asks only for what the file gives (placed on pools of that instance type)"
                ),
            );
        } else if let Some(name) = &out.instance_type
            && instance::shape(name).is_none()
        {
            ctx.warn(
                &p,
                format!(
                    "`{name}` is not in Cumulo's built-in catalog: the job asks for what its name states ({}), and for the rest as the file gives (placed on pools of that instance type)",
                    named_parts(name)
                ),
            );
        }
    }
    out
}

/// What an instance type's name states, for the warning: `GPUs` or `GPUs, vCPUs and memory`.
fn named_parts(instance_type: &str) -> &'static str {
    match instance::gpus_in_name(instance_type) {
        Some(instance::NamedGpus { vcpus: Some(_), memory_gb: Some(_), .. }) => "GPUs, vCPUs and memory",
        _ => "GPUs",
    }
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
    if let Some(demand) = memory_demand(ctx, path, spec, count.as_deref()) {
        return demand;
    }
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
    if name.is_empty() {
        ctx.invalid(path, spec, ACCELERATORS_EXPECTED);
        return None;
    }
    let selector = match memory_selector(name) {
        Some(gb) => GpuSelector::MinMemoryGb(gb),
        None => {
            let reading = accel::read(name, ctx.cloud.as_deref());
            match &reading {
                Reading::Model(_) | Reading::Alias(_) => {}
                Reading::Unknown(known_as) => {
                    let hint = match units::closest(name, GpuModel::ALL.iter().map(|m| m.name())) {
                        Some(close) => format!(" (did you mean `{close}`?)"),
                        None => String::new(),
                    };
                    ctx.warn(
                        path,
                        format!(
                            "accelerator `{known_as}` is no GPU model Cumulo knows{hint}: kept by that name, it is placed only on a pool that offers `{known_as}` (known models: {})",
                            GpuModel::known_names()
                        ),
                    );
                }
                Reading::Ambiguous { name, candidates } => ctx.warn(
                    path,
                    format!(
                        "accelerator `{name}` is part of several SkyPilot names ({}): kept as written; write one of them",
                        candidates.join(", ")
                    ),
                ),
            }
            reading.selector()
        }
    };
    let per_node = match units::gpu_count(&count_text) {
        Ok(count) => Some(count),
        Err(why) => {
            ctx.report(path, format!("invalid GPU count `{count_text}` in `{written}`: expected {}", why.expected()));
            None
        }
    };
    // SkyPilot keeps the name as written when it loads a file (it canonicalises only to launch).
    Some(AcceleratorDemand { selector, per_node: per_node?, names: vec![name.to_string()] })
}

/// SkyPilot's accelerators by memory (`sky/resources.py`, `_parse_accelerators_from_str`):
/// `MEMORY`, `MEMORY:COUNT`, `MAKER:MEMORY` or `MAKER:MEMORY:COUNT`, where MEMORY is like `80GB`
/// (exactly) or `80GB+` (at least) and MAKER is `nvidia` or `amd`. `None` when `spec` is not one
/// of these forms; `Some(None)` when it is one and a problem was reported. Without a maker, `80GB+`
/// is any GPU with that much memory; otherwise the GPU models that match.
fn memory_demand(ctx: &mut Ctx<'_>, path: &str, spec: &str, count: Option<&str>) -> Option<Option<AcceleratorDemand>> {
    let full = match count {
        Some(count) => format!("{spec}:{count}"),
        None => spec.to_string(),
    };
    let parts: Vec<&str> = full.split(':').map(str::trim).collect();
    let (maker, memory, count) = match parts.as_slice() {
        [maker, memory, count] if memory_size(memory).is_some() => (Some(*maker), *memory, *count),
        [memory, count] if memory_size(memory).is_some() => (None, *memory, *count),
        [maker, memory] if memory_size(memory).is_some() => (Some(*maker), *memory, "1"),
        [memory] if memory_size(memory).is_some() => (None, *memory, "1"),
        _ => return None,
    };
    let (gb, at_least) = memory_size(memory)?;
    let per_node = match count.parse::<u32>().ok().filter(|c| *c > 0 && *c <= 4_000_000) {
        Some(c) => MilliGpu::whole(c),
        None => {
            ctx.report(
                path,
                format!("invalid GPU count `{count}` in `{full}`: expected a whole number of GPUs such as 8"),
            );
            return Some(None);
        }
    };
    let selector = match maker {
        None if at_least => GpuSelector::MinMemoryGb(gb),
        _ => {
            let models: Vec<GpuModel> = GpuModel::ALL
                .iter()
                .copied()
                .filter(|m| maker.is_none_or(|v| m.vendor().eq_ignore_ascii_case(v)))
                .filter(|m| if at_least { m.memory_gb() >= gb } else { m.memory_gb() == gb })
                .collect();
            if models.is_empty() {
                ctx.warn(
                    path,
                    format!("no GPU model Cumulo knows matches `{full}`: kept by that name, it is placed only on a pool that offers it"),
                );
                GpuSelector::Named(full.split(':').take(2).collect::<Vec<_>>().join(":"))
            } else {
                GpuSelector::Models(models)
            }
        }
    };
    Some(Some(AcceleratorDemand { selector, per_node, names: Vec::new() }))
}

/// `80GB`, `80GB+`, `1TB`, `512MB+`: memory in GB (rounded up) and whether it is a minimum.
fn memory_size(text: &str) -> Option<(u32, bool)> {
    let (body, at_least) = match text.strip_suffix('+') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let upper = body.to_ascii_uppercase();
    let unit_at = upper.len().checked_sub(2)?;
    let (digits, unit) = upper.split_at(unit_at);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let gb = match unit {
        "GB" => n,
        "TB" => n.checked_mul(1024)?,
        "MB" => n.div_ceil(1024),
        _ => return None,
    };
    u32::try_from(gb).ok().filter(|gb| *gb > 0).map(|gb| (gb, at_least))
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
