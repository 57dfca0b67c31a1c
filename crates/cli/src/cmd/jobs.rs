//! Job commands against a server: `submit`, `jobs`, `job`, `cancel`, `logs`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cumulo_api::wire::{JobDetail, ListQuery};
use cumulo_store::JobRecord;
use cumulo_types::{JobId, JobState};
use serde::Serialize;
use sha2::Digest;

use super::remote::{Remote, age, runtime, spinner};
use crate::output::{Format, print_json, table};

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// Job files (YAML or JSON; `-` reads standard input). Each file is its own all-or-nothing
    /// submit (a file of several `---` documents is one batch); every file's result is printed
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Wait until every submitted job has finished
    #[arg(long)]
    pub wait: bool,
    /// Submit again even when the same file content was submitted before (by default a file's
    /// content is its idempotency key, so re-running a command never makes second jobs)
    #[arg(long)]
    pub new: bool,
    /// A secret the job file declares (`secrets:`): `NAME=VALUE`, or `NAME` to take the value
    /// from this environment. A secret declared with a null value and not given here is taken
    /// from this environment too. Values reach the job's processes as environment variables only
    #[arg(long = "secret", value_name = "NAME[=VALUE]")]
    pub secrets: Vec<String>,
    /// Upload nothing: a local `workdir` is then only where setup and run start (it must exist on
    /// the nodes, e.g. a shared filesystem), and local `file_mounts` are refused by the server.
    /// By default the local workdir and file_mounts sources (read from the current directory)
    /// are uploaded with the job and copied into its working directory before `setup`
    #[arg(long)]
    pub no_upload: bool,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// One line of `cumulo submit`'s answer: a job a file made (or had made before), or why a file
/// went in not at all.
#[derive(Serialize)]
struct Submitted {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<JobId>,
    /// False when the same content was submitted before: `id` is that earlier job.
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<JobState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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

/// A random key (`--new`): still one job per file when a lost answer is retried.
fn fresh_key() -> String {
    format!("cli-{}", &cumulo_api::auth::generate_token()[4..36])
}

/// The file's content as its key: the same file submitted again (a re-run of the same command)
/// answers with the job made the first time. The server scopes keys by tenant.
fn content_key(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("cli-sha256-{hex}")
}

/// Submits one file's text (one job or a `---` batch) all or nothing, retrying with the same key
/// when the connection failed.
async fn submit_one(
    client: &cumulo_api::client::Client,
    text: &str,
    key: &str,
) -> Result<Vec<cumulo_api::wire::SubmitResponse>, cumulo_api::Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = if is_multi_document(text) {
            client.submit_yaml_batch(text, Some(key)).await.map(|b| b.jobs)
        } else {
            client.submit(text, Some(key)).await.map(|s| vec![s])
        };
        match result {
            Err(cumulo_api::Error::Connect { .. }) if tries < 3 => {
                tokio::time::sleep(Duration::from_millis(500 * tries)).await
            }
            other => return other,
        }
    }
}

/// The `--secret` values: `NAME=VALUE`, or `NAME` read from this process's environment.
fn given_secrets(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut given = std::collections::BTreeMap::new();
    for arg in args {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = env(arg).with_context(|| {
                    format!("--secret {arg}: {arg} is not set in this environment: give --secret {arg}=VALUE")
                })?;
                (arg.clone(), value)
            }
        };
        given.insert(name, value);
    }
    Ok(given)
}

/// The secret values to send with one file: for each secret the file declares, the `--secret`
/// value, else (for a secret declared `null`) this environment's. A declared secret with no value
/// anywhere is an error naming it; a file the parser refuses is left to the server's answer.
fn secrets_for_file(
    text: &str,
    file: &str,
    given: &std::collections::BTreeMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let Ok(submission) = cumulo_jobfile::parse_submission(text, file) else {
        return Ok(Default::default());
    };
    let mut values = std::collections::BTreeMap::new();
    for job in &submission.jobs {
        for (name, value) in &job.secrets {
            if let Some(v) = given.get(name) {
                values.insert(name.clone(), v.clone());
            } else if value.is_none() {
                let v = env(name).with_context(|| {
                    format!("secrets.{name}: no value: set {name} in this environment or give --secret {name}=VALUE")
                })?;
                values.insert(name.clone(), v);
            }
        }
    }
    Ok(values)
}

/// Packs and sends the local workdir and file_mounts of one file's jobs; answers the upload's id
/// (`None` when there is nothing local). A file the parser refuses is left to the server's answer.
async fn upload_for_file(
    client: &cumulo_api::client::Client,
    text: &str,
    file: &str,
) -> anyhow::Result<Option<String>> {
    let Ok(submission) = cumulo_jobfile::parse_submission(text, file) else { return Ok(None) };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let items = super::upload::plan(&submission.jobs, &cwd, home.as_deref())?;
    if items.is_empty() {
        return Ok(None);
    }
    let archive = super::upload::pack(&items, super::upload::UPLOAD_LIMIT_BYTES)?;
    let uploaded = client.upload(archive).await.context("uploading workdir and file_mounts")?;
    Ok(Some(uploaded.upload))
}

/// Says on stderr, as `validate` does, which `file_mounts` are buckets: no driver mounts one, so
/// the job waits unless a cluster's fleet entry says `bucket_mounts: true`.
fn warn_bucket_mounts(text: &str, file: &str) {
    let Ok(submission) = cumulo_jobfile::parse_submission(text, file) else { return };
    for warning in submission.warnings.iter().filter(|w| w.message.contains("bucket_mounts: true")) {
        eprintln!("{}", super::validate::warning_line(file, warning));
    }
}

/// Submits every file; the exit code is 0 only when every file went in.
pub fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let env_var = |name: &str| std::env::var(name).ok();
    let given = given_secrets(&args.secrets, env_var)?;
    runtime()?.block_on(async {
        let bar = spinner(format!("submitting {} file(s) to {}", args.files.len(), client.base()));
        let mut out = Vec::new();
        for path in &args.files {
            let file = path.display().to_string();
            let failed = |error: String| Submitted {
                file: file.clone(),
                id: None,
                created: None,
                state: None,
                error: Some(error),
            };
            let text = match read_file(path) {
                Ok(text) => text,
                Err(e) => {
                    out.push(failed(format!("{e:#}")));
                    continue;
                }
            };
            warn_bucket_mounts(&text, &file);
            let key = if args.new { fresh_key() } else { content_key(&text) };
            let secrets = match secrets_for_file(&text, &file, &given, env_var) {
                Ok(secrets) => secrets,
                Err(e) => {
                    out.push(failed(format!("{e:#}")));
                    continue;
                }
            };
            let upload = if args.no_upload { Ok(None) } else { upload_for_file(&client, &text, &file).await };
            let (key, upload) = match upload {
                Ok(Some(upload)) => (format!("{key}-{}", &upload[7..23]), Some(upload)),
                Ok(None) => (key, None),
                Err(e) => {
                    out.push(failed(format!("{e:#}")));
                    continue;
                }
            };
            let client = client.clone().with_secrets(secrets).with_upload(upload);
            match submit_one(&client, &text, &key).await {
                Ok(jobs) => out.extend(jobs.into_iter().map(|j| Submitted {
                    file: file.clone(),
                    id: Some(j.id),
                    created: Some(j.created),
                    state: None,
                    error: None,
                })),
                Err(e @ cumulo_api::Error::Connect { .. }) => {
                    bar.finish_and_clear();
                    return Err(anyhow::Error::new(e).context(format!("{file} was not submitted")));
                }
                Err(e) => out.push(failed(e.to_string())),
            }
        }
        if args.wait {
            wait_for_all(&client, &bar, &mut out).await?;
        }
        bar.finish_and_clear();
        let all_in = out.iter().all(|s| s.error.is_none());
        match args.output {
            Format::Json => print_json(&out)?,
            Format::Table => print_submitted(&out),
        }
        Ok(if all_in { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

async fn wait_for_all(
    client: &cumulo_api::client::Client,
    bar: &indicatif::ProgressBar,
    out: &mut [Submitted],
) -> anyhow::Result<()> {
    let total = out.iter().filter(|s| s.id.is_some()).count();
    bar.set_message(format!("waiting for {total} job(s) to finish"));
    loop {
        let mut open = 0;
        for job in out.iter_mut() {
            let Some(id) = job.id else { continue };
            let state = client.job(id).await?.job.state;
            job.state = Some(state);
            open += usize::from(!state.is_terminal());
        }
        if open == 0 {
            return Ok(());
        }
        bar.set_message(format!("waiting: {open} of {total} job(s) not finished"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_submitted(out: &[Submitted]) {
    let mut t = table(["FILE", "ID", "RESULT", "STATE"]);
    for s in out {
        let (id, result) = match (&s.error, s.id, s.created) {
            (Some(_), _, _) => ("-".to_string(), "not submitted (below)".to_string()),
            (None, Some(id), Some(false)) => {
                (id.to_string(), "already submitted (same content; --new submits it again)".to_string())
            }
            (None, Some(id), _) => (id.to_string(), "created".to_string()),
            (None, None, _) => ("-".to_string(), String::new()),
        };
        let state = match (&s.error, s.state) {
            (Some(_), _) => "-".to_string(),
            (None, Some(st)) => st.to_string(),
            (None, None) => "submitted".to_string(),
        };
        t.add_row([s.file.clone(), id, result, state]);
    }
    println!("{t}");
    let failed: Vec<&Submitted> = out.iter().filter(|s| s.error.is_some()).collect();
    for s in &failed {
        eprintln!("{}: {}", s.file, s.error.as_deref().unwrap_or_default());
    }
    if !failed.is_empty() {
        eprintln!("{} file(s) not submitted; the others went in", failed.len());
    }
}

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Only jobs in this state (pending, launching, running, succeeded, failed, cancelled)
    #[arg(long)]
    pub state: Option<String>,
    /// Only this tenant's jobs (members and viewers see only their own tenant)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only jobs of this kind (training, inference, batch, sandbox)
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs whose name contains this text
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs with an attempt on this cluster
    #[arg(long)]
    pub cluster: Option<String>,
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
        kind: args.kind,
        q: args.name,
        cluster: args.cluster,
        order: None,
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

/// The job's secrets by name, values masked whatever the server sent (`HF_TOKEN=****`).
fn secret_names(job: &JobRecord) -> String {
    if job.spec.secrets.is_empty() {
        return "-".to_string();
    }
    let masked: Vec<String> =
        job.spec.secrets.keys().map(|name| format!("{name}={}", cumulo_store::secrets::MASK)).collect();
    masked.join(", ")
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
        ("secrets", secret_names(job)),
        ("pending reason", job.pending_reason.clone().unwrap_or_default()),
        ("cancel requested", job.cancel_requested.to_string()),
        ("submitted", job.submitted_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
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
            let price = p["price_per_hour"].as_i64().map(|m| cumulo_types::Money(m).usd_per_hour()).unwrap_or_default();
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
        let mut e = table(["AT (UTC)", "EVENT", "MESSAGE"]);
        for event in &detail.events {
            e.add_row(vec![
                event.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                event.kind.clone(),
                event.message.clone(),
            ]);
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
    let id = JobId(args.id);
    runtime()?.block_on(async {
        let mut response = if args.follow {
            follow_when_started(&client, id, args.attempt).await?
        } else {
            client.logs(id, false, args.attempt).await?
        };
        let mut stdout = std::io::stdout();
        while let Some(chunk) = response.chunk().await.context("the log stream broke")? {
            stdout.write_all(&chunk)?;
            stdout.flush()?;
        }
        Ok(())
    })
}

/// `logs -f` as `kubectl logs -f` does for a container: while the job has no attempt yet (or its
/// attempt has no log yet) wait with a spinner saying why, then follow. A job that ends without
/// ever starting an attempt is an error that says so.
async fn follow_when_started(
    client: &cumulo_api::client::Client,
    id: JobId,
    attempt: Option<u32>,
) -> anyhow::Result<reqwest::Response> {
    let bar = spinner(format!("waiting for job {id} to start"));
    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let mut shown = false;
    loop {
        let job = client.job(id).await?.job;
        let wanted = attempt.unwrap_or(1);
        if job.attempt_count >= wanted {
            match client.logs(id, true, attempt).await {
                Ok(response) => {
                    bar.finish_and_clear();
                    return Ok(response);
                }
                Err(cumulo_api::Error::Api { status: 404, .. }) if !job.state.is_terminal() => {}
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(e.into());
                }
            }
        } else if job.state.is_terminal() {
            bar.finish_and_clear();
            anyhow::bail!("job {id} is {} and never started attempt {wanted}", job.state);
        }
        let why = job.pending_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        bar.set_message(format!("waiting for job {id}'s attempt {wanted} to start ({}{why})", job.state));
        if !shown {
            // Drawn only once there is a wait, so a job already running shows no flash.
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "name: t\nsecrets:\n  HF_TOKEN: null\n  WANDB_KEY: in-file\nrun: echo\n";

    #[test]
    fn a_null_secret_comes_from_the_environment_or_from_secret_flags() {
        let env = |name: &str| (name == "HF_TOKEN").then(|| "from-env".to_string());
        let none = Default::default();
        let values = secrets_for_file(FILE, "t.yaml", &none, env).unwrap();
        assert_eq!(values.get("HF_TOKEN").map(String::as_str), Some("from-env"));
        assert!(!values.contains_key("WANDB_KEY"), "a value written in the file travels in the file");
        let given = given_secrets(&["HF_TOKEN=flag".to_string()], env).unwrap();
        let values = secrets_for_file(FILE, "t.yaml", &given, env).unwrap();
        assert_eq!(values.get("HF_TOKEN").map(String::as_str), Some("flag"), "--secret wins over the environment");
    }

    #[test]
    fn a_secret_with_no_value_anywhere_is_an_error_naming_the_field() {
        let no_env = |_: &str| None;
        let err = secrets_for_file(FILE, "t.yaml", &Default::default(), no_env).unwrap_err().to_string();
        assert_eq!(
            err, "secrets.HF_TOKEN: no value: set HF_TOKEN in this environment or give --secret HF_TOKEN=VALUE",
            "the submit table prints the file before this reason, so the reason does not repeat it"
        );
        let err = given_secrets(&["HF_TOKEN".to_string()], no_env).unwrap_err().to_string();
        assert_eq!(err, "--secret HF_TOKEN: HF_TOKEN is not set in this environment: give --secret HF_TOKEN=VALUE");
    }
}
