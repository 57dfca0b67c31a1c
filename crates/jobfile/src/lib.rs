//! Job files: a superset of SkyPilot's task YAML, parsed and normalised into a [`JobSpec`].
//!
//! A SkyPilot task file parses unchanged; Cumulo's own fields sit beside SkyPilot's. JSON bodies
//! go through the same path (JSON is YAML). Every problem in a file is reported at once, each
//! naming the field path (`resources.accelerators`), the value and what was expected, with its
//! line when the text shows it.
//!
//! # SkyPilot fields
//! Read as SkyPilot 0.14 reads them (`sky/task.py`, `sky/resources.py`, `sky/utils/dag_utils.py`,
//! `sky/utils/accelerator_registry.py`); `examples/jobs/README.md` has the full table, and which
//! driver honours which field.
//! - `name` (default: the file's stem, `train.yaml` → `train`), `workdir` (a path, or
//!   `{url, ref}` kept as `URL@REF`), `num_nodes` (a gang, default 1), `setup`, `run`, `envs`
//!   (values as SkyPilot renders them: YAML 1.1 read, Python `str()` written, see `pyyaml`; a
//!   `null` value, which SkyPilot fills from `--env`, is left out).
//! - `resources`: `accelerators` (or its alias `gpus`) as `H100:8`, `H100` (one GPU), `{H100: 8}`,
//!   `{H100: 8, H200: 8}` (alternatives, unordered), `[H100:8, A100-80GB:8]` (alternatives in
//!   order of preference), `A100:0.5`, by memory (`80GB+:8`, `amd:192GB+:2`), or those forms
//!   written as a string. Names are canonicalised as SkyPilot does (`accel`); a name no GPU model
//!   knows is kept by name ([`cumulo_types::GpuSelector::Named`]) with a warning. `cpus` and
//!   `memory`: `4` is exactly 4, `"4+"` at least 4 (memory in GB of 2^30 bytes unless a unit is
//!   given). `instance_type` alone stands for its vCPUs, memory and GPUs (built-in catalog).
//!   `infra` (`aws`, `aws/us-east-1`, `aws/us-east-1/us-east-1a`, `*/us-east-1`, `k8s`,
//!   `k8s/context`) or the older `cloud`, `region`, `zone`; `use_spot`; `max_hourly_cost` (per
//!   node, turned into the job's `max_price_per_hour` when that is not given); `priority` (used
//!   when the top-level `priority` is absent); `any_of` / `ordered`: lists of resource mappings
//!   merged over the base fields; `image_id: docker:IMAGE` (the job's container image);
//!   `job_recovery.max_restarts_on_errors: N` (N + 1 attempts).
//! - Read and not applied, each named once in a warning ([`Submission::warnings`]): the fields
//!   that tune a VM (`disk_size`, `ports`, `autostop`, a VM `image_id`, ...), SkyPilot's own
//!   machinery (`volumes`, `config`, `pool`, ...) and each `file_mounts` destination whose source is
//!   a bucket. `file_mounts` are kept in [`cumulo_types::JobSpec::file_mounts`]: local sources travel
//!   in the upload `cumulo submit` makes.
//! - `secrets` (a mapping, `null` for a value the submitter gives, or a list of names) are read into
//!   [`cumulo_types::JobSpec::secrets`]; the server seals the values before storing the job and
//!   the drivers pass them as environment variables only.
//! - `service` (SkyServe) makes the job an inference job; its `replicas`, else
//!   `replica_policy.min_replicas` (at least 1), gives the replica count.
//! - Several documents ([`parse_submission`]): a first document holding only `name` heads a
//!   pipeline (each task after the previous one succeeded); one with `execution: parallel` heads
//!   a job group (placed together).
//!
//! # Cumulo fields and their defaults
//! - `kind`: `training | inference | batch | sandbox`; default `inference` with a `service`
//!   section, else `batch`.
//! - `tenant`: default `default`. `priority`: `low | normal | high | critical` or an integer;
//!   default `normal`.
//! - `preemptible`: default true for `sandbox` and `batch`, false for `training` and `inference`
//!   ([`default_preemptible`]).
//! - `topology`: `nvlink-domain | block | zone | any`, default `any`.
//! - `replicas` (inference only, default 1; must agree with `service` when both are given),
//!   `spread`: `none | providers | regions` (needs at least 2 replicas).
//! - `checkpoint`: `{dir: /ckpt/run, every: 30m}` or just the directory.
//! - `speedups`: `{V100: 3.0, K80: 1.0}`, the job's speed on each GPU model relative to the others
//!   (0.001 to 1000; a usable model not listed counts as 1.0), read by heterogeneity rounds; a
//!   model no resource option selects is warned about.
//! - `max_attempts` (default [`DEFAULT_MAX_ATTEMPTS`]), `duration` (`90s`, `30m`, `2h`, `1h30m`
//!   or seconds).
//! - `deny`: infra strings the job must never use; `max_price_per_hour`: dollars per hour for all
//!   nodes together, never negative.
//! - "Any GPU with at least N GB": `accelerators: 80GB+:8` (also inside maps and lists), which
//!   becomes [`cumulo_types::GpuSelector::MinMemoryGb`].
//! - `cpus` defaults to 1 vCPU ([`DEFAULT_CPUS_MILLI`]) so that every job holds a slot; on a
//!   cloud with nothing asked, SkyPilot's default VM: 8+ vCPUs and 32+ GB.
//! - `after`: job ids, or names of earlier documents, that must succeed first.
//! - Top-level keys starting with `x-` are ignored, to hold YAML anchors (`x-base: &base`) that
//!   other fields merge in with `<<: *base`.
//!
//! # Limits
//! A job file is at most 1 MiB, nests at most 64 levels and expands (aliases counted each time
//! they are used) to at most 100,000 YAML nodes; a name is at most 200 characters, `run` and
//! `setup` 65,536 characters each, `envs` at most 1,000 variables of at most 65,536 characters
//! each and 256 KiB in all; no string holds a NUL byte. See [`limits`].

mod accel;
mod instance;
pub mod limits;
mod locate;
mod parse;
mod pyyaml;
mod units;

use std::fmt;
use std::path::Path;

use cumulo_types::JobSpec;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

pub use parse::{
    CLOUD_DEFAULT_CPUS_MILLI, CLOUD_DEFAULT_MEMORY_MIB, CUMULO_FIELDS, DEFAULT_CPUS_MILLI, DEFAULT_MAX_ATTEMPTS,
    SKYPILOT_FIELDS, default_preemptible,
};

use locate::LineMap;
use parse::Ctx;

/// One thing wrong with a job file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Whether one field is wrong or two fields contradict each other.
    #[serde(default, skip_serializing_if = "ProblemKind::is_field")]
    pub kind: ProblemKind,
    /// The field, as `resources.any_of[1].accelerators`; empty for the document as a whole.
    pub path: String,
    /// What is wrong: the value found and what was expected.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

/// What kind of problem a [`Problem`] is. The API answers 400 for a wrong field and 422 when
/// every problem is a conflict: each value is valid alone, together they say two things (two
/// spellings of one GPU model in `speedups`), a rule no schema of single fields can state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A field's value is wrong on its own.
    #[default]
    Field,
    /// Values valid on their own contradict each other.
    Conflict,
}

impl ProblemKind {
    fn is_field(&self) -> bool {
        *self == ProblemKind::Field
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Why a job file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file was read but is not a valid job; every problem found is listed.
    #[error("{}", render(file, problems))]
    Invalid { file: String, problems: Vec<Problem> },
    /// The file could not be read.
    #[error("{file}: cannot read job file: {error}")]
    Read {
        file: String,
        #[source]
        error: std::io::Error,
    },
}

impl Error {
    /// Every problem found (none for a file that could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems, .. } => problems,
            Error::Read { .. } => &[],
        }
    }

    /// True when the file was read and every problem is a [`ProblemKind::Conflict`].
    pub fn is_conflict(&self) -> bool {
        let problems = self.problems();
        !problems.is_empty() && problems.iter().all(|p| p.kind == ProblemKind::Conflict)
    }

    /// The file name (or source) the error is about.
    pub fn file(&self) -> &str {
        match self {
            Error::Invalid { file, .. } | Error::Read { file, .. } => file,
        }
    }
}

/// One problem per line: `FILE:LINE: PATH: MESSAGE`.
fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{file}:{line}: {p}"),
            None => format!("{file}: {p}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses a job file holding one job. `source` names the file in messages and gives the job its
/// default name.
pub fn parse_str(text: &str, source: &str) -> Result<JobSpec, Error> {
    parse_str_in_tenant(text, source, parse::DEFAULT_TENANT)
}

/// As [`parse_str`], but a job file without a `tenant` field belongs to `tenant` (the API passes
/// the caller's tenant). Whether the field is there is read from the parsed document.
pub fn parse_str_in_tenant(text: &str, source: &str, tenant: &str) -> Result<JobSpec, Error> {
    limits::check_size(text).map_err(|problem| invalid(source, vec![problem]))?;
    let documents = documents(text, source)?;
    let non_empty: Vec<&Document> = documents.iter().filter(|d| !d.value.is_null()).collect();
    match non_empty.as_slice() {
        [one] => match build(one, source, tenant) {
            Ok(built) => match built.after_names.first() {
                None => Ok(built.job),
                Some(name) => Err(invalid(
                    source,
                    vec![Problem {
                        kind: ProblemKind::Field,
                        path: "after".into(),
                        message: format!(
                            "no earlier job named `{name}` in this file: a file of one job waits only for job ids (after: [12])"
                        ),
                        line: one.lines.find("after"),
                    }],
                )),
            },
            Err(problems) => Err(invalid(source, problems)),
        },
        [] => Err(invalid(
            source,
            vec![Problem {
                kind: ProblemKind::Field,
                path: String::new(),
                message: "empty job file: expected a mapping of job fields such as name, resources and run".into(),
                line: None,
            }],
        )),
        many => Err(invalid(
            source,
            vec![Problem {
                kind: ProblemKind::Field,
                path: String::new(),
                message: format!("found {} YAML documents: expected one job per file", many.len()),
                line: None,
            }],
        )),
    }
}

/// Parses a job file of one or more YAML documents separated by `---`, one job each; empty
/// documents are skipped, and so is a pipeline's or job group's header document (see
/// [`parse_submission`]). Problems of every document are reported together.
pub fn parse_many_str(text: &str, source: &str) -> Result<Vec<JobSpec>, Error> {
    parse_submission(text, source).map(|s| s.jobs)
}

/// How the jobs of one file relate to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// One job, or several that run side by side (each may name earlier ones in `after:`).
    Independent,
    /// SkyPilot's pipeline: a header document holding only `name` (and `execution: serial`),
    /// then tasks that run one after the other, each once the previous one succeeded.
    Pipeline { name: String },
    /// SkyPilot's job group: a header with `execution: parallel`, then jobs placed together.
    Group { name: String },
}

/// A parsed job file: its jobs in file order, how they relate, and the warnings about fields
/// that are read but not applied.
#[derive(Clone, Debug)]
pub struct Submission {
    pub shape: Shape,
    pub jobs: Vec<JobSpec>,
    /// For each job, the earlier jobs of this file it waits for (indices into `jobs`): the
    /// previous step of a pipeline, or those its `after:` names.
    pub after: Vec<Vec<usize>>,
    /// Everything read but not applied, each with its field path and line.
    pub warnings: Vec<Problem>,
}

/// Fields a job group's header may hold (`sky/utils/dag_utils.py`, `_JOB_GROUP_HEADER_FIELDS`).
const GROUP_HEADER_FIELDS: &[&str] = &["name", "execution", "primary_tasks", "termination_delay", "inter_connection"];

/// Parses a job file of one or more documents, as SkyPilot's `load_dag_from_yaml` reads them: a
/// first document with `execution: parallel` heads a job group; one holding only `name` (or
/// `name` and `execution: serial`) heads a pipeline; otherwise every document is a job. Unlike
/// SkyPilot, documents without a header run side by side, not as a chain (a warning says so).
pub fn parse_submission(text: &str, source: &str) -> Result<Submission, Error> {
    parse_submission_in_tenant(text, source, parse::DEFAULT_TENANT)
}

/// As [`parse_submission`], but jobs without a `tenant` field belong to `tenant` (the API passes
/// the caller's tenant), read from the parsed documents.
pub fn parse_submission_in_tenant(text: &str, source: &str, tenant: &str) -> Result<Submission, Error> {
    limits::check_size(text).map_err(|problem| invalid(source, vec![problem]))?;
    let documents = documents(text, source)?;
    let documents: Vec<&Document> = documents.iter().filter(|d| !d.value.is_null()).collect();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let (shape, bodies) = match documents.split_first() {
        Some((first, rest)) if !rest.is_empty() => match header(first, &mut problems, &mut warnings) {
            Some(shape) => (shape, rest.to_vec()),
            None => (Shape::Independent, documents.clone()),
        },
        _ => (Shape::Independent, documents.clone()),
    };
    let mut jobs = Vec::new();
    let mut names_after = Vec::new();
    for document in &bodies {
        match build(document, source, tenant) {
            Ok(built) => {
                jobs.push(built.job);
                names_after.push(built.after_names);
                warnings.extend(built.warnings);
            }
            Err(mut more) => problems.append(&mut more),
        }
    }
    if problems.is_empty() && jobs.is_empty() {
        problems.push(Problem {
            kind: ProblemKind::Field,
            path: String::new(),
            message: "empty job file: expected one or more mappings of job fields".into(),
            line: None,
        });
    }
    if !problems.is_empty() {
        return Err(invalid(source, problems));
    }
    let mut after = Vec::with_capacity(jobs.len());
    for (i, names) in names_after.iter().enumerate() {
        let mut earlier: Vec<usize> = Vec::new();
        if matches!(shape, Shape::Pipeline { .. }) && i > 0 {
            earlier.push(i - 1);
        }
        for name in names {
            match jobs[..i].iter().rposition(|j| &j.name == name) {
                Some(at) if !earlier.contains(&at) => earlier.push(at),
                Some(_) => {}
                None => problems.push(Problem { kind: ProblemKind::Field,
                    path: "after".into(),
                    message: format!(
                        "no earlier job named `{name}` in this file: expected a job id or the name of a job in an earlier document"
                    ),
                    line: bodies[i].lines.find("after"),
                }),
            }
        }
        after.push(earlier);
    }
    if !problems.is_empty() {
        return Err(invalid(source, problems));
    }
    if let Shape::Group { name } = &shape {
        for job in &mut jobs {
            job.group = Some(name.clone());
        }
    }
    if shape == Shape::Independent && jobs.len() > 1 && after.iter().all(Vec::is_empty) {
        warnings.push(Problem { kind: ProblemKind::Field,
            path: String::new(),
            message: format!(
                "{} jobs without a header document run side by side (SkyPilot would chain them): start the file with a document holding only `name:` to run them as a pipeline",
                jobs.len()
            ),
            line: None,
        });
    }
    Ok(Submission { shape, jobs, after, warnings })
}

/// The pipeline or job group a first document heads, or `None` when it is a job itself.
fn header(document: &Document, problems: &mut Vec<Problem>, warnings: &mut Vec<Problem>) -> Option<Shape> {
    let serde_yaml::Value::Mapping(map) = &document.value else { return None };
    let execution = map.get("execution");
    let report = |problems: &mut Vec<Problem>, path: &str, message: String| {
        problems.push(Problem {
            kind: ProblemKind::Field,
            path: path.to_string(),
            message,
            line: document.lines.find(path),
        });
    };
    let name = match map.get("name") {
        Some(serde_yaml::Value::String(n)) => Some(n.trim().to_string()),
        _ => None,
    };
    if execution.and_then(|e| e.as_str()) == Some("parallel") {
        for key in map.keys().filter_map(|k| k.as_str()) {
            if !GROUP_HEADER_FIELDS.contains(&key) {
                warnings.push(Problem {
                    kind: ProblemKind::Field,
                    path: key.to_string(),
                    message: format!("unknown job group header field `{key}`: ignored (as SkyPilot does)"),
                    line: document.lines.find(key),
                });
            } else if key != "name" && key != "execution" {
                warnings.push(Problem {
                    kind: ProblemKind::Field,
                    path: key.to_string(),
                    message: "not applied: the jobs of a group are placed together and each ends on its own".into(),
                    line: document.lines.find(key),
                });
            }
        }
        let valid = name
            .as_deref()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if !valid {
            report(
                problems,
                "name",
                "a job group header needs a name of letters, digits, '-' and '_' (as SkyPilot requires)".into(),
            );
        }
        return Some(Shape::Group { name: name.unwrap_or_default() });
    }
    let keys: Vec<&str> = map.keys().filter_map(|k| k.as_str()).collect();
    let only_header =
        keys.len() == map.len() && keys.contains(&"name") && keys.iter().all(|k| *k == "name" || *k == "execution");
    if !only_header {
        return None;
    }
    match execution {
        None => {}
        Some(serde_yaml::Value::String(e)) if e == "serial" => {}
        Some(other) => report(
            problems,
            "execution",
            format!(
                "invalid execution mode {}: a pipeline header takes `execution: serial` (or none); `execution: parallel` makes a job group",
                serde_yaml::to_string(other).unwrap_or_default().trim()
            ),
        ),
    }
    Some(Shape::Pipeline { name: name.unwrap_or_default() })
}

/// Reads and parses a job file holding one job.
pub fn parse_file(path: &Path) -> Result<JobSpec, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| Error::Read { file: file.clone(), error })?;
    parse_str(&text, &file)
}

/// Reads and parses a job file of one or more documents.
pub fn parse_many_file(path: &Path) -> Result<Vec<JobSpec>, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| Error::Read { file: file.clone(), error })?;
    parse_many_str(&text, &file)
}

fn invalid(file: &str, problems: Vec<Problem>) -> Error {
    Error::Invalid { file: file.to_string(), problems }
}

struct Document {
    value: Value,
    lines: LineMap,
}

/// One document read into a job, with what the caller must resolve or show.
struct Built {
    job: JobSpec,
    after_names: Vec<String>,
    warnings: Vec<Problem>,
}

fn build(document: &Document, source: &str, tenant: &str) -> Result<Built, Vec<Problem>> {
    let mut ctx = Ctx::new(&document.lines);
    let defaults = parse::Defaults { name: &parse::default_name(source), tenant };
    let job = parse::job(&mut ctx, &document.value, &defaults);
    if let Some(job) = &job {
        limits::check_job(&mut ctx, job);
    }
    match job {
        Some(job) if ctx.problems.is_empty() => {
            let mut warnings = ctx.warnings;
            warnings.sort_by_key(|w| w.line.unwrap_or(usize::MAX));
            Ok(Built { job, after_names: ctx.after_names, warnings })
        }
        _ => {
            // In the order of the file; problems without a line last. The sort is stable.
            let mut problems = ctx.problems;
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(problems)
        }
    }
}

/// Splits the text into YAML documents, each with the line map of its own lines.
fn documents(text: &str, source: &str) -> Result<Vec<Document>, Error> {
    // Editors on Windows may start a file with a byte order mark, which the YAML parser refuses.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match read_documents(text, source) {
        // PyYAML (SkyPilot's reader) takes flow content at any indentation; the parsers here do not.
        Err(err) if err.to_string().contains("invalid indentation") => {
            let reindented = pyyaml::indent_flow_continuations(text);
            if reindented == text { Err(err) } else { read_documents(&reindented, source).map_err(|_| err) }
        }
        read => read,
    }
}

/// The documents of `text`, bounded (`limits`), with wide integers kept and lines located.
fn read_documents(text: &str, source: &str) -> Result<Vec<Document>, Error> {
    let wide = limits::check_yaml(text).map_err(|problem| invalid(source, vec![problem]))?;
    let readable = wide.as_floats(text);
    located(text, yaml_values(&readable, source)?)
}

/// The YAML documents of `readable`, merge keys applied.
fn yaml_values(readable: &str, source: &str) -> Result<Vec<Value>, Error> {
    let mut values = Vec::new();
    for document in serde_yaml::Deserializer::from_str(readable) {
        match Value::deserialize(document) {
            Ok(mut value) => {
                // `<<: *anchor` merge keys, as YAML 1.1 tools (and SkyPilot's PyYAML) apply them.
                if value.apply_merge().is_err() {
                    return Err(invalid(
                        source,
                        vec![Problem {
                            kind: ProblemKind::Field,
                            path: String::new(),
                            message: "invalid YAML: a `<<` merge key must refer to a mapping or a list of mappings"
                                .into(),
                            line: None,
                        }],
                    ));
                }
                values.push(value);
            }
            Err(error) => {
                let line = error.location().map(|l| l.line());
                let mut message = error.to_string();
                if let Some(cut) = message.find(" at line ") {
                    message.truncate(cut);
                }
                return Err(invalid(
                    source,
                    vec![Problem {
                        kind: ProblemKind::Field,
                        path: String::new(),
                        message: format!("invalid YAML: {message}"),
                        line,
                    }],
                ));
            }
        }
    }
    Ok(values)
}

/// Each document with the lines its fields were written on.
fn located(text: &str, values: Vec<Value>) -> Result<Vec<Document>, Error> {
    let starts = document_starts(text);
    let line_maps: Vec<LineMap> = if starts.len() == values.len() {
        starts.iter().map(|(first_line, body)| LineMap::scan(body, *first_line)).collect()
    } else if values.len() == 1 {
        vec![LineMap::scan(text, 1)]
    } else {
        values.iter().map(|_| LineMap::default()).collect()
    };
    Ok(values.into_iter().zip(line_maps).map(|(value, lines)| Document { value, lines }).collect())
}

/// Each document's first line (1-based) and text, split at `---` lines. A leading part holding
/// only comments, directives or blank lines before the first `---` is no document.
fn document_starts(text: &str) -> Vec<(usize, String)> {
    let mut parts: Vec<(usize, String)> = vec![(1, String::new())];
    let mut separators = 0;
    for (index, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            separators += 1;
            parts.push((index + 2, String::new()));
            continue;
        }
        if let Some((_, body)) = parts.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let first_is_empty = parts[0].1.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    });
    if separators > 0 && first_is_empty {
        parts.remove(0);
    }
    parts
}
