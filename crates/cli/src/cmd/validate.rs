//! `cumulo validate FILE...`: parses job files and prints each normalised job, or every problem
//! found, exiting non-zero when any file is invalid.

use std::path::PathBuf;
use std::process::ExitCode;

use cumulo_jobfile::Problem;
use cumulo_types::{JobSpec, ResourceOption};
use serde::Serialize;

use crate::output::{Format, print_json, table};

/// Check job files (SkyPilot task YAML plus Cumulo's fields; JSON works too) and print each job
/// as Cumulo understands it: kind, tenant, priority, resource alternatives, nodes, topology,
/// replicas and constraints. A file may hold several jobs separated by `---`. Invalid files get
/// every problem listed, one per line as FILE:LINE: FIELD: MESSAGE (on stderr for tables), and
/// the command exits with status 1.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [Problem]>,
}

enum Outcome {
    Jobs(Vec<JobSpec>),
    Problems { text: String, problems: Vec<Problem> },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcomes: Vec<(String, Outcome)> = args
        .files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            let parsed = if file == "-" { read_stdin() } else { cumulo_jobfile::parse_many_file(path) };
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
                        problems.push(Problem { path: String::new(), message, line: None });
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
                    Outcome::Jobs(jobs) => {
                        for (i, job) in jobs.iter().enumerate() {
                            let document = (jobs.len() > 1).then_some(i + 1);
                            entries.push(Entry {
                                file: file.clone(),
                                document,
                                ok: true,
                                job: Some(job),
                                errors: None,
                            });
                        }
                    }
                    Outcome::Problems { problems, .. } => entries.push(Entry {
                        file: file.clone(),
                        document: None,
                        ok: false,
                        job: None,
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
            ]);
            let mut rows = 0;
            for (file, outcome) in &outcomes {
                match outcome {
                    Outcome::Jobs(jobs) => {
                        for (i, job) in jobs.iter().enumerate() {
                            let label = if jobs.len() > 1 { format!("{file} [{}]", i + 1) } else { file.clone() };
                            t.add_row(job_row(label, job));
                            rows += 1;
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
fn read_stdin() -> Result<Vec<JobSpec>, cumulo_jobfile::Error> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|error| cumulo_jobfile::Error::Read { file: "<stdin>".to_string(), error })?;
    cumulo_jobfile::parse_many_str(&text, "<stdin>")
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
    parts.push(format!("{} vCPU", thousandths(u64::from(option.cpus_milli), 1000)));
    if option.memory_mib > 0 {
        parts.push(format!("{} GiB", thousandths(option.memory_mib * 1000 / 1024, 1000)));
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
