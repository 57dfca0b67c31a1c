//! Job commands against a server: `submit`, `jobs`, `job`, `cancel`, `logs`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cumulo_api::wire::{JobDetail, ListQuery};
use cumulo_store::JobRecord;
use cumulo_types::{JobId, JobState};
use serde::Serialize;

use super::remote::{Remote, age, runtime, spinner};
use crate::output::{Format, print_json, table};

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// Job files (YAML or JSON; `-` reads standard input). A file of several `---` documents is
    /// submitted as one all-or-nothing batch
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Wait until every submitted job has finished
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Serialize)]
struct Submitted {
    file: String,
    id: JobId,
    created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<JobState>,
}

fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read job file {}", path.display()))
}

/// True when a `---` line separates two documents (the first line may be a `---` header).
fn is_multi_document(text: &str) -> bool {
    let mut seen_content = false;
    for line in text.lines() {
        let separator = line.starts_with("---") && line[3..].trim().is_empty();
        if separator && seen_content {
            return true;
        }
        seen_content |= !separator && !line.trim().is_empty() && !line.trim_start().starts_with('#');
    }
    false
}

/// A random key per submitted file, so that a retry after a lost answer never makes two jobs.
fn fresh_key() -> String {
    format!("cli-{}", &cumulo_api::auth::generate_token()[4..36])
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let files: Vec<(String, String)> =
        args.files.iter().map(|p| Ok((p.display().to_string(), read_file(p)?))).collect::<anyhow::Result<_>>()?;
    runtime()?.block_on(async {
        let bar = spinner(format!("submitting {} file(s) to {}", files.len(), client.base()));
        let mut out = Vec::new();
        for (name, text) in &files {
            let key = fresh_key();
            // Retried with the same key on a connection failure: at most one job per file.
            let mut tries = 0;
            loop {
                tries += 1;
                let result = if is_multi_document(text) {
                    client.submit_yaml_batch(text, Some(&key)).await.map(|b| b.jobs)
                } else {
                    client.submit(text, Some(&key)).await.map(|s| vec![s])
                };
                match result {
                    Ok(jobs) => {
                        out.extend(jobs.into_iter().map(|j| Submitted {
                            file: name.clone(),
                            id: j.id,
                            created: j.created,
                            state: None,
                        }));
                        break;
                    }
                    Err(cumulo_api::Error::Connect { .. }) if tries < 3 => {
                        tokio::time::sleep(Duration::from_millis(500 * tries)).await
                    }
                    Err(e) => {
                        bar.finish_and_clear();
                        return Err(anyhow::Error::new(e).context(format!("{name} was not submitted")));
                    }
                }
            }
        }
        if args.wait {
            bar.set_message(format!("waiting for {} job(s) to finish", out.len()));
            loop {
                let mut open = 0;
                for job in &mut out {
                    let state = client.job(job.id).await?.job.state;
                    job.state = Some(state);
                    open += usize::from(!state.is_terminal());
                }
                if open == 0 {
                    break;
                }
                bar.set_message(format!("waiting: {open} of {} job(s) not finished", out.len()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        bar.finish_and_clear();
        match args.output {
            Format::Json => print_json(&out),
            Format::Table => {
                let mut t = table(["FILE", "ID", "CREATED", "STATE"]);
                for s in &out {
                    let state = s.state.map(|st| st.to_string()).unwrap_or_else(|| "submitted".into());
                    t.add_row(vec![s.file.clone(), s.id.to_string(), s.created.to_string(), state]);
                }
                println!("{t}");
                Ok(())
            }
        }
    })
}

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Only jobs in this state (pending, launching, running, succeeded, failed, cancelled)
    #[arg(long)]
    pub state: Option<String>,
    /// Only this tenant's jobs (members and viewers see only their own tenant)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Jobs after this id (the `next` of an earlier page)
    #[arg(long)]
    pub after: Option<u64>,
    /// At most this many jobs (1 to 1000)
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

fn resources(job: &JobRecord) -> String {
    let option = job.spec.resources.first();
    let per_node = match option.and_then(|o| o.accelerators.as_ref()) {
        Some(a) => a.to_string(),
        None => format!("{} vCPU", option.map(|o| f64::from(o.cpus_milli) / 1000.0).unwrap_or(0.0)),
    };
    if job.spec.num_nodes > 1 { format!("{} × {per_node}", job.spec.num_nodes) } else { per_node }
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let query = ListQuery {
        state: args.state,
        tenant: args.tenant,
        after: args.after.map(|a| a.to_string()),
        limit: Some(args.limit.to_string()),
    };
    let page = runtime()?.block_on(client.list_jobs(&query))?;
    match args.output {
        Format::Json => print_json(&page),
        Format::Table => {
            let mut t =
                table(["ID", "NAME", "TENANT", "KIND", "STATE", "PRIORITY", "RESOURCES", "ATTEMPTS", "AGE", "REASON"]);
            for job in &page.jobs {
                t.add_row(vec![
                    job.id.to_string(),
                    job.spec.name.clone(),
                    job.spec.tenant.clone(),
                    job.spec.kind.to_string(),
                    job.state.to_string(),
                    job.spec.priority.to_string(),
                    resources(job),
                    job.attempt_count.to_string(),
                    age(job.submitted_at),
                    job.pending_reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
            if let Some(next) = page.next {
                eprintln!("more: cumulo jobs --after {next}");
            }
            Ok(())
        }
    }
}

#[derive(clap::Args)]
pub struct JobArgs {
    /// Job id
    pub id: u64,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// `jobs 12, 13 succeeded` style list of what a job waits for, or `-`.
fn runs_after(job: &JobRecord) -> String {
    if job.spec.after.is_empty() {
        return "-".to_string();
    }
    let ids: Vec<String> = job.spec.after.iter().map(|id| format!("job {id}")).collect();
    format!("{} (each must succeed)", ids.join(", "))
}

fn print_detail(detail: &JobDetail) {
    let job = &detail.job;
    let mut t = table(["FIELD", "VALUE"]);
    let rows = [
        ("id", job.id.to_string()),
        ("name", job.spec.name.clone()),
        ("tenant", job.spec.tenant.clone()),
        ("kind", job.spec.kind.to_string()),
        ("state", job.state.to_string()),
        ("priority", job.spec.priority.to_string()),
        ("resources", resources(job)),
        ("topology", job.spec.topology.to_string()),
        ("runs after", runs_after(job)),
        ("group", job.spec.group.clone().unwrap_or_else(|| "-".to_string())),
        ("pending reason", job.pending_reason.clone().unwrap_or_default()),
        ("cancel requested", job.cancel_requested.to_string()),
        ("submitted", job.submitted_at.to_rfc3339()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    println!("{t}");
    if !job.attempts.is_empty() {
        // Jobs with several replicas run one attempt per replica: say which.
        let replicated = job.spec.replicas > 1;
        let mut a = if replicated {
            table(["ATTEMPT", "REPLICA", "STATE", "CLUSTER", "NODES", "PRICE/H", "MESSAGE"])
        } else {
            table(["ATTEMPT", "STATE", "CLUSTER", "NODES", "PRICE/H", "MESSAGE"])
        };
        for attempt in &job.attempts {
            let p = &attempt.placement;
            let nodes: Vec<String> = p["nodes"]
                .as_array()
                .map(|ns| ns.iter().filter_map(|n| n["node"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let price = p["price_per_hour"].as_i64().map(|m| cumulo_types::Money(m).to_string()).unwrap_or_default();
            let mut row = vec![
                attempt.id.to_string(),
                attempt.state.to_string(),
                p["cluster"].as_str().unwrap_or("").to_string(),
                crate::output::fold_node_names(&nodes),
                price,
                attempt.message.clone().unwrap_or_default(),
            ];
            if replicated {
                row.insert(1, attempt.replica.to_string());
            }
            a.add_row(row);
        }
        println!("{a}");
    }
    if !detail.events.is_empty() {
        let mut e = table(["AT", "EVENT", "MESSAGE"]);
        for event in &detail.events {
            e.add_row(vec![event.at.format("%H:%M:%S").to_string(), event.kind.clone(), event.message.clone()]);
        }
        println!("{e}");
    }
}

pub fn job(args: JobArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let detail = runtime()?.block_on(client.job(JobId(args.id)))?;
    match args.output {
        Format::Json => print_json(&detail),
        Format::Table => {
            print_detail(&detail);
            Ok(())
        }
    }
}

pub fn cancel(args: JobArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let job = runtime()?.block_on(client.cancel(JobId(args.id)))?;
    match args.output {
        Format::Json => print_json(&job),
        Format::Table => {
            let what = if job.state == JobState::Cancelled {
                "cancelled"
            } else if job.spec.replicas > 1 {
                "cancel requested; every replica's attempt is being stopped"
            } else {
                "cancel requested; the attempt is being stopped"
            };
            println!("job {}: {what}", job.id);
            Ok(())
        }
    }
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Job id
    pub id: u64,
    /// Keep printing new output until the attempt ends
    #[arg(short, long)]
    pub follow: bool,
    /// Attempt number (default: the latest)
    #[arg(long)]
    pub attempt: Option<u32>,
    #[command(flatten)]
    pub remote: Remote,
}

pub fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    runtime()?.block_on(async {
        let mut response = client.logs(JobId(args.id), args.follow, args.attempt).await?;
        let mut stdout = std::io::stdout();
        while let Some(chunk) = response.chunk().await.context("the log stream broke")? {
            stdout.write_all(&chunk)?;
            stdout.flush()?;
        }
        Ok(())
    })
}
