//! `cumulo validate FILE...`: parses job files and prints each normalised job with a warning
//! for every field read but not applied, or every problem found, exiting non-zero when any file
//! is invalid.

use std::path::PathBuf;
use std::process::ExitCode;

use cumulo_jobfile::{Problem, ProblemKind, Shape, Submission};
use cumulo_types::{JobSpec, ResourceOption};
use serde::Serialize;

use crate::output::{Format, print_json, table};

/// Check job files (SkyPilot task YAML plus Cumulo's fields; JSON works too) and print each job
/// as Cumulo understands it: kind, tenant, priority, resource alternatives, nodes, topology,
/// replicas, constraints and what it waits for. A file may hold several jobs separated by `---`
/// (a first document holding only `name` heads a pipeline; one with `execution: parallel` a job
/// group). Every field read but not applied gets one warning, FILE:LINE: warning: FIELD: MESSAGE
/// (on stderr for tables). Invalid files get every problem listed, one per line as
/// FILE:LINE: FIELD: MESSAGE, and the command exits with status 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job files to check (`-` reads standard input)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format: a table of jobs, or a JSON array of {file, ok, job | errors}
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// One entry of `-o json`: a job that parsed, or a file's problems.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    file: String,
    /// 1-based document number, for files holding several jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<usize>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a JobSpec>,
    /// The pipeline or job group the file makes, when it makes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    shape: Option<&'a Shape>,
    /// 1-based document numbers of the jobs of this file that this one waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    after_documents: Vec<usize>,
    /// Fields read but not applied (for a file of several jobs, on its first entry).
    #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
    warnings: &'a [Problem],
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [Problem]>,
}

enum Outcome {
    Jobs(Submission),
    Problems { text: String, problems: Vec<Problem> },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcomes: Vec<(String, Outcome)> = args
        .files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            let parsed = if file == "-" { read_stdin() } else { read_file(path) };
            let outcome = match parsed {
                Ok(jobs) => Outcome::Jobs(jobs),
                Err(err) => {
                    let mut problems = err.problems().to_vec();
                    if problems.is_empty() {
                        // A file that could not be read: one problem about the file itself.
                        let message = match &err {
                            cumulo_jobfile::Error::Read { error, .. } => format!("cannot read job file: {error}"),
                            other => other.to_string(),
                        };
                        problems.push(Problem { kind: ProblemKind::Field, path: String::new(), message, line: None });
                    }
                    Outcome::Problems { text: err.to_string(), problems }
                }
            };
            (file, outcome)
        })
        .collect();
    let invalid = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Problems { .. })).count();

    match args.output {
        Format::Json => {
            let mut entries = Vec::new();
            for (file, outcome) in &outcomes {
                match outcome {
                    Outcome::Jobs(submission) => {
                        let jobs = &submission.jobs;
                        let shape = (submission.shape != Shape::Independent).then_some(&submission.shape);
                        for (i, job) in jobs.iter().enumerate() {
                            let document = (jobs.len() > 1).then_some(i + 1);
                            entries.push(Entry {
                                file: file.clone(),
                                document,
                                ok: true,
                                job: Some(job),
                                shape,
                                after_documents: submission.after[i].iter().map(|d| d + 1).collect(),
                                warnings: if i == 0 { &submission.warnings } else { &[] },
                                errors: None,
                            });
                        }
                    }
                    Outcome::Problems { problems, .. } => entries.push(Entry {
                        file: file.clone(),
                        document: None,
                        ok: false,
                        job: None,
                        shape: None,
                        after_documents: Vec::new(),
                        warnings: &[],
                        errors: Some(problems),
                    }),
                }
            }
            print_json(&entries)?;
        }
        Format::Table => {
            let mut t = table([
                "file",
                "name",
                "kind",
                "tenant",
                "priority",
                "preemptible",
                "resources (per node)",
                "nodes",
                "topology",
                "replicas",
                "constraints",
                "runs",
            ]);
            let mut rows = 0;
            for (file, outcome) in &outcomes {
                match outcome {
                    Outcome::Jobs(submission) => {
                        let jobs = &submission.jobs;
                        for (i, job) in jobs.iter().enumerate() {
                            let label = if jobs.len() > 1 { format!("{file} [{}]", i + 1) } else { file.clone() };
                            let mut row = job_row(label, job);
                            row.push(runs_text(submission, i));
                            t.add_row(row);
                            rows += 1;
                        }
                        for warning in &submission.warnings {
                            eprintln!("{}", warning_line(file, warning));
                        }
                    }
                    Outcome::Problems { text, .. } => eprintln!("{text}"),
                }
            }
            if rows > 0 {
                println!("{t}");
            }
            if invalid > 0 {
                eprintln!("error: {invalid} of {} job files are invalid", outcomes.len());
            }
        }
    }
    Ok(if invalid > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `-` reads one file's text from standard input, named `<stdin>` in messages.
fn read_stdin() -> Result<Submission, cumulo_jobfile::Error> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|error| cumulo_jobfile::Error::Read { file: "<stdin>".to_string(), error })?;
    cumulo_jobfile::parse_submission(&text, "<stdin>")
}

fn read_file(path: &std::path::Path) -> Result<Submission, cumulo_jobfile::Error> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|error| cumulo_jobfile::Error::Read { file: file.clone(), error })?;
    cumulo_jobfile::parse_submission(&text, &file)
}

/// `FILE:LINE: warning: FIELD: MESSAGE`.
pub(crate) fn warning_line(file: &str, warning: &Problem) -> String {
    match warning.line {
        Some(line) => format!("{file}:{line}: warning: {warning}"),
        None => format!("{file}: warning: {warning}"),
    }
}

/// When a job runs: `at once`, `after [1]` (documents of this file), in a pipeline or a group.
fn runs_text(submission: &Submission, index: usize) -> String {
    let mut parts = Vec::new();
    match &submission.shape {
        Shape::Pipeline { name } => parts.push(format!("pipeline {name}, step {}", index + 1)),
        Shape::Group { name } => parts.push(format!("group {name} (placed together)")),
        Shape::Independent => {}
    }
    let documents: Vec<String> = submission.after[index].iter().map(|d| format!("[{}]", d + 1)).collect();
    let ids: Vec<String> = submission.jobs[index].after.iter().map(|id| format!("job {id}")).collect();
    let waits: Vec<String> = documents.into_iter().chain(ids).collect();
    if !waits.is_empty() {
        parts.push(format!("after {} succeeded", waits.join(", ")));
    }
    if parts.is_empty() {
        parts.push("-".into());
    }
    parts.join("\n")
}

fn job_row(file: String, job: &JobSpec) -> Vec<String> {
    let options: Vec<String> = job.resources.iter().map(option_text).collect();
    let resources = match options.len() {
        1 => options[0].clone(),
        _ if job.ordered => {
            options.iter().enumerate().map(|(i, o)| format!("{}. {o}", i + 1)).collect::<Vec<_>>().join("\n")
        }
        _ => options
            .iter()
            .enumerate()
            .map(|(i, o)| if i == 0 { o.clone() } else { format!("or {o}") })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let mut constraints: Vec<String> = job.constraints.deny.iter().map(|d| format!("deny {d}")).collect();
    if let Some(max) = job.constraints.max_price_per_hour {
        constraints.push(format!("max {max}/h"));
    }
    if constraints.is_empty() {
        constraints.push("-".to_string());
    }
    vec![
        file,
        job.name.clone(),
        job.kind.to_string(),
        job.tenant.clone(),
        job.priority.to_string(),
        if job.preemptible { "yes" } else { "no" }.to_string(),
        resources,
        job.num_nodes.to_string(),
        job.topology.to_string(),
        job.replicas.to_string(),
        constraints.join("\n"),
    ]
}

/// `H100|H200:8, 32 vCPU, 256 GiB, aws/us-east-1, spot`.
fn option_text(option: &ResourceOption) -> String {
    let mut parts = vec![match &option.accelerators {
        Some(demand) => format!("{demand} GPU"),
        None => "no GPU".to_string(),
    }];
    let or_more = |flag: bool| if flag { "+" } else { "" };
    parts.push(format!("{}{} vCPU", thousandths(u64::from(option.cpus_milli), 1000), or_more(option.cpus_or_more)));
    if option.memory_mib > 0 {
        parts.push(format!(
            "{}{} GiB",
            thousandths(option.memory_mib * 1000 / 1024, 1000),
            or_more(option.memory_or_more)
        ));
    }
    if let Some(infra) = &option.infra {
        parts.push(infra.to_string());
    }
    if option.use_spot {
        parts.push("spot".to_string());
    }
    if let Some(instance_type) = &option.instance_type {
        parts.push(instance_type.clone());
    }
    parts.join(", ")
}

/// `value / scale` with up to three decimals, trailing zeros dropped (`500` → `0.5`).
fn thousandths(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let text = format!("{whole}.{frac:03}");
    text.trim_end_matches('0').to_string()
}
