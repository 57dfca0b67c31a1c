//! Job files: a superset of SkyPilot's task YAML, parsed and normalised into a [`JobSpec`].
//!
//! A SkyPilot task file parses unchanged; Cumulo's own fields sit beside SkyPilot's. JSON bodies
//! go through the same path (JSON is YAML). Every problem in a file is reported at once, each
//! naming the field path (`resources.accelerators`), the value and what was expected, with its
//! line when the text shows it.
//!
//! # SkyPilot fields
//! - `name` (default: the file's stem, `train.yaml` → `train`), `workdir` (a path, or
//!   `{url, ref}` kept as `URL@REF`), `num_nodes` (a gang, default 1), `setup`, `run`, `envs`
//!   (scalars become text; a `null` value, which SkyPilot fills from `--env`, is left out).
//! - `resources`: `accelerators` as `H100:8`, `H100` (one GPU), `{H100: 8}`, `{H100: 8, H200: 8}`
//!   (alternatives, unordered), `[H100:8, A100-80GB:8]` (alternatives in order of preference),
//!   `A100:0.5` (a share of one GPU; fractions above one must be whole), or those forms written as
//!   a string (`"{A100:1, V100:1}"`); `cpus` and `memory` as a number or a string such as `"4+"`
//!   or `"64GB"` (a request is always a minimum, so `4` and `4+` mean the same; memory is in GB of
//!   2^30 bytes unless a unit is given); `infra` (`aws`, `aws/us-east-1`,
//!   `aws/us-east-1/us-east-1a`, `*/us-east-1`, `k8s`, `k8s/context`) or the older `cloud`,
//!   `region`, `zone`; `use_spot`; `instance_type`; `max_hourly_cost` (per node, turned into the
//!   job's `max_price_per_hour` when that is not given); `priority` (used when the top-level
//!   `priority` is absent); `any_of` / `ordered`: lists of resource mappings merged over the base
//!   fields (an item's `infra` replaces the base location, its `cloud` / `region` / `zone` replace
//!   only their part).
//! - Accepted and not kept (they tune a VM or a launch, not placement): `resources.disk_size`,
//!   `disk_tier`, `network_tier`, `ports`, `image_id`, `labels`, `autostop`, `accelerator_args`,
//!   `job_recovery`, `local_disk`, `volumes`; top-level `file_mounts`, `volumes`, `config`,
//!   `secrets` (never copied into the job, so `cumulo validate` cannot print them), `pool`,
//!   `inputs`, `outputs` and SkyPilot's other task fields.
//! - `service` (SkyServe) makes the job an inference job; its `replicas`, else
//!   `replica_policy.min_replicas` (at least 1), gives the replica count.
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
//! - `max_attempts` (default [`DEFAULT_MAX_ATTEMPTS`]), `duration` (`90s`, `30m`, `2h`, `1h30m`
//!   or seconds).
//! - `deny`: infra strings the job must never use; `max_price_per_hour`: dollars per hour for all
//!   nodes together, never negative.
//! - "Any GPU with at least N GB": `accelerators: 80GB+:8` (also inside maps and lists), which
//!   becomes [`cumulo_types::GpuSelector::MinMemoryGb`].
//! - `cpus` defaults to 1 vCPU ([`DEFAULT_CPUS_MILLI`]) so that every job holds a slot.
//! - Top-level keys starting with `x-` are ignored, to hold YAML anchors (`x-base: &base`) that
//!   other fields merge in with `<<: *base`.
//!
//! # Limits
//! A job file is at most 1 MiB, nests at most 64 levels and expands (aliases counted each time
//! they are used) to at most 100,000 YAML nodes; a name is at most 200 bytes, `run` and `setup`
//! 64 KiB each, `envs` at most 1,000 variables of at most 64 KiB each and 256 KiB in all; no
//! string holds a NUL byte. See [`limits`].

pub mod limits;
mod locate;
mod parse;
mod units;

use std::fmt;
use std::path::Path;

use cumulo_types::JobSpec;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

pub use parse::{CUMULO_FIELDS, DEFAULT_CPUS_MILLI, DEFAULT_MAX_ATTEMPTS, SKYPILOT_FIELDS, default_preemptible};

use locate::LineMap;
use parse::Ctx;

/// One thing wrong with a job file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field, as `resources.any_of[1].accelerators`; empty for the document as a whole.
    pub path: String,
    /// What is wrong: the value found and what was expected.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
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
        [one] => build(one, source, tenant).map_err(|problems| invalid(source, problems)),
        [] => Err(invalid(
            source,
            vec![Problem {
                path: String::new(),
                message: "empty job file: expected a mapping of job fields such as name, resources and run".into(),
                line: None,
            }],
        )),
        many => Err(invalid(
            source,
            vec![Problem {
                path: String::new(),
                message: format!("found {} YAML documents: expected one job per file", many.len()),
                line: None,
            }],
        )),
    }
}

/// Parses a job file of one or more YAML documents separated by `---`, one job each; empty
/// documents are skipped. Problems of every document are reported together.
pub fn parse_many_str(text: &str, source: &str) -> Result<Vec<JobSpec>, Error> {
    let documents = documents(text, source)?;
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    for document in documents.iter().filter(|d| !d.value.is_null()) {
        match build(document, source, parse::DEFAULT_TENANT) {
            Ok(job) => jobs.push(job),
            Err(mut more) => problems.append(&mut more),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(source, problems));
    }
    if jobs.is_empty() {
        return Err(invalid(
            source,
            vec![Problem {
                path: String::new(),
                message: "empty job file: expected one or more mappings of job fields".into(),
                line: None,
            }],
        ));
    }
    Ok(jobs)
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

fn build(document: &Document, source: &str, tenant: &str) -> Result<JobSpec, Vec<Problem>> {
    let mut ctx = Ctx::new(&document.lines);
    let defaults = parse::Defaults { name: &parse::default_name(source), tenant };
    let job = parse::job(&mut ctx, &document.value, &defaults);
    if let Some(job) = &job {
        limits::check_job(&mut ctx, job);
    }
    match job {
        Some(job) if ctx.problems.is_empty() => Ok(job),
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
    limits::check_yaml(text).map_err(|problem| invalid(source, vec![problem]))?;
    let mut values = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(mut value) => {
                // `<<: *anchor` merge keys, as YAML 1.1 tools (and SkyPilot's PyYAML) apply them.
                if value.apply_merge().is_err() {
                    return Err(invalid(
                        source,
                        vec![Problem {
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
                    vec![Problem { path: String::new(), message: format!("invalid YAML: {message}"), line }],
                ));
            }
        }
    }
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
