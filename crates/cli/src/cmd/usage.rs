//! `cumulo usage`: metered usage from a usage file as totals per group, chargeback per tenant,
//! contract burn-down, or a FOCUS CSV export.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cumulo_ledger::invoice::decimal_hours;
use cumulo_ledger::{FocusOptions, GroupBy, Ledger, UsageFilter, UsageRecord, UsageRow, parse_time};
use cumulo_types::{Money, Provider};
use serde::Serialize;

use crate::cmd::remote::{Remote, runtime};
use crate::output::{print_json, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    Tenant,
    Provider,
    Contract,
    Job,
    Gpu,
}

impl From<Group> for GroupBy {
    fn from(g: Group) -> GroupBy {
        match g {
            Group::Tenant => GroupBy::Tenant,
            Group::Provider => GroupBy::Provider,
            Group::Contract => GroupBy::Contract,
            Group::Job => GroupBy::Job,
            Group::Gpu => GroupBy::Gpu,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// Totals per group (see --group-by)
    #[default]
    Usage,
    /// What each tenant owes at the prices actually paid, by contract, on-demand and spot
    Chargeback,
    /// Per contract: committed, scheduled, consumed (metered), status, projected shortfall or overrun
    BurnDown,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageFormat {
    #[default]
    Table,
    Json,
    /// FOCUS 1.2 cost-and-usage CSV, one row per usage record (only with --view usage)
    Focus,
}

/// Metered usage: totals by tenant, provider, contract, job or GPU model; chargeback per tenant;
/// contract burn-down from metered spend; or a FOCUS (FinOps Open Cost and Usage Specification) CSV.
///
/// Usage comes from a usage file (one usage record per line, as JSON: the ledger's record format) or,
/// without --usage, from the server (--server/--token): every view and the FOCUS export, of your own
/// tenant unless your token is an admin's. Records that straddle --since or --until are clipped and
/// re-rated exactly. `cumulo usage export` writes the server's records as a usage file.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Usage records, one JSON object per line (default: ask the server)
    #[arg(long, value_name = "FILE")]
    pub usage: Option<PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
    /// Only this tenant's usage
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this provider's usage (aws, azure, ...)
    #[arg(long)]
    pub provider: Option<String>,
    /// Only usage under this contract id
    #[arg(long)]
    pub contract: Option<String>,
    /// Start of the window (inclusive): RFC 3339 time or YYYY-MM-DD (UTC)
    #[arg(long)]
    pub since: Option<String>,
    /// End of the window (exclusive): RFC 3339 time or YYYY-MM-DD (UTC)
    #[arg(long)]
    pub until: Option<String>,
    /// What the usage view groups by
    #[arg(long, value_enum, default_value_t = Group::Tenant)]
    pub group_by: Group,
    /// Which view to print
    #[arg(long, value_enum, default_value_t = View::Usage)]
    pub view: View,
    /// Portfolio YAML for --view burn-down (default: the built-in demo portfolio, illustrative)
    #[arg(long, value_name = "FILE")]
    pub portfolio: Option<PathBuf>,
    /// Instant of the burn-down (default: --until, else the end of the last record)
    #[arg(long)]
    pub at: Option<String>,
    /// Output format: table, json or focus (FOCUS CSV); `--format` is an older spelling
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = UsageFormat::Table)]
    pub format: UsageFormat,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write the server's usage records to stdout (or --out FILE): JSON lines, the usage file format
    /// (read back with `cumulo usage --usage FILE`), or FOCUS CSV with -o focus
    Export(ExportArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One usage record per line as JSON (the usage file format)
    #[default]
    Jsonl,
    /// FOCUS 1.2 cost-and-usage CSV
    Focus,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Only this tenant's records (members and viewers: their own)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Records ending after this: RFC 3339 time or YYYY-MM-DD (UTC)
    #[arg(long)]
    pub since: Option<String>,
    /// Records starting before this: RFC 3339 time or YYYY-MM-DD (UTC)
    #[arg(long)]
    pub until: Option<String>,
    /// Write here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output: jsonl (usage file) or focus (CSV)
    #[arg(short = 'o', long = "format", alias = "output", value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

/// Reads and checks a usage file: JSON lines of usage records; errors name the file and line.
pub fn read_usage_file(path: &Path) -> anyhow::Result<Vec<UsageRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read usage file `{}`", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: UsageRecord = serde_json::from_str(line)
            .with_context(|| format!("usage file `{}` line {}: not a usage record", path.display(), i + 1))?;
        record.check().with_context(|| format!("usage file `{}` line {}", path.display(), i + 1))?;
        records.push(record);
    }
    let ledger = Ledger::from_records(records).with_context(|| format!("usage file `{}`", path.display()))?;
    Ok(ledger.to_records())
}

/// Money in JSON output is integer micro-dollars; this wrapper says so.
#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    money_unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    rows: T,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Action::Export(export)) = &args.action {
        return run_export(export);
    }
    let Some(path) = args.usage.clone() else { return run_remote(&args) };
    let records = read_usage_file(&path)?;
    let filter = UsageFilter {
        tenant: args.tenant.clone(),
        provider: args.provider.as_deref().map(Provider::new).transpose().context("--provider")?,
        contract: args.contract.clone(),
        since: args.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
        until: args.until.as_deref().map(|s| parse_time("until", s)).transpose()?,
    };
    check_focus_view(&args)?;
    match args.view {
        View::Usage => usage_view(&records, &filter, args.group_by.into(), args.format),
        View::Chargeback => chargeback_view(&records, &filter, args.format),
        View::BurnDown => burn_down_view(&records, &filter, &args, &path),
    }
}

fn check_focus_view(args: &Args) -> anyhow::Result<()> {
    if args.format == UsageFormat::Focus && args.view != View::Usage {
        let view = clap::ValueEnum::to_possible_value(&args.view).map(|v| v.get_name().to_string()).unwrap_or_default();
        bail!("invalid format `focus` for view `{view}`: expected table or json (focus exports the usage view)");
    }
    Ok(())
}

/// The filter flags as query pairs for the server's usage routes.
fn remote_query(args: &Args) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    for (name, value) in [
        ("tenant", &args.tenant),
        ("provider", &args.provider),
        ("contract", &args.contract),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    query
}

/// Every view from the server: `GET /v1/usage`, `/v1/usage/chargeback`, `/v1/usage/focus` and
/// `/v1/contracts/burn-down` (members see their own tenant).
fn run_remote(args: &Args) -> anyhow::Result<()> {
    check_focus_view(args)?;
    if args.view == View::BurnDown && args.portfolio.is_some() {
        bail!("--portfolio needs --usage FILE: the server burns down its own portfolio");
    }
    let client = args.remote.client()?;
    let rt = runtime()?;
    let query = remote_query(args);
    match (args.view, args.format) {
        (View::Usage, UsageFormat::Focus) => rt.block_on(stream_focus(&client, &query, &mut std::io::stdout().lock())),
        (View::Usage, format) => {
            let group_by: GroupBy = args.group_by.into();
            let mut query = query;
            query.push(("group_by", group_by.to_string()));
            let answer = rt.block_on(client.usage(&query))?;
            print_rows(&answer.rows, group_by, format)
        }
        (View::Chargeback, format) => {
            let answer = rt.block_on(client.usage_chargeback(&query))?;
            print_chargeback(&answer.rows, format)
        }
        (View::BurnDown, format) => {
            let at = args.at.as_deref().or(args.until.as_deref());
            let burn = rt.block_on(client.contracts_burn_down_at(at))?;
            print_remote_burn_down(&burn, client.base(), format)
        }
    }
}

/// Copies the server's FOCUS CSV to `out` as it streams in.
async fn stream_focus(
    client: &cumulo_api::client::Client,
    query: &[(&str, String)],
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut response = client.usage_focus(query).await?;
    while let Some(chunk) = response.chunk().await.context("the FOCUS export broke off")? {
        out.write_all(&chunk).context("cannot write the FOCUS export")?;
    }
    out.flush().context("cannot write the FOCUS export")?;
    Ok(())
}

/// `cumulo usage export`: the server's records, page by page, as a usage file or FOCUS CSV.
fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let mut out: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [("tenant", &args.tenant), ("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let rt = runtime()?;
    if args.format == ExportFormat::Focus {
        return rt.block_on(stream_focus(&client, &query, &mut out));
    }
    let mut after: Option<String> = None;
    loop {
        let mut page_query = query.clone();
        page_query.push(("limit", "10000".to_string()));
        if let Some(after) = &after {
            page_query.push(("after", after.clone()));
        }
        let page = rt.block_on(client.usage_records(&page_query))?;
        for record in &page.records {
            serde_json::to_writer(&mut out, record).context("cannot write a usage record")?;
            out.write_all(b"\n").context("cannot write a usage record")?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.flush().context("cannot write the usage records")?;
    Ok(())
}

fn usage_view(
    records: &[UsageRecord],
    filter: &UsageFilter,
    group_by: GroupBy,
    format: UsageFormat,
) -> anyhow::Result<()> {
    if format == UsageFormat::Focus {
        let clipped: Vec<UsageRecord> = filter.apply(records).collect();
        print!("{}", cumulo_ledger::to_focus_csv(&clipped, &FocusOptions::default())?);
        return Ok(());
    }
    print_rows(&cumulo_ledger::usage_by(records, filter, group_by), group_by, format)
}

fn print_rows(rows: &[UsageRow], group_by: GroupBy, format: UsageFormat) -> anyhow::Result<()> {
    if format == UsageFormat::Json {
        return print_json(&Document { money_unit: "micro-USD", title: None, rows: &rows });
    }
    let mut t = table([group_by.as_str(), "node-hours", "GPU-hours", "cost", "list cost", "records"]);
    for r in rows {
        t.add_row([
            r.group.clone(),
            decimal_hours(r.node_seconds),
            decimal_hours(r.gpu_seconds),
            r.cost.usd(),
            r.list_cost.usd(),
            r.records.to_string(),
        ]);
    }
    t.add_row([
        "total".to_string(),
        decimal_hours(rows.iter().map(|r| r.node_seconds).sum()),
        decimal_hours(rows.iter().map(|r| r.gpu_seconds).sum()),
        rows.iter().map(|r| r.cost).sum::<Money>().usd(),
        rows.iter().map(|r| r.list_cost).sum::<Money>().usd(),
        rows.iter().map(|r| r.records).sum::<usize>().to_string(),
    ]);
    println!("{t}");
    Ok(())
}

fn chargeback_view(records: &[UsageRecord], filter: &UsageFilter, format: UsageFormat) -> anyhow::Result<()> {
    print_chargeback(&cumulo_ledger::chargeback(records, filter), format)
}

fn print_chargeback(rows: &[cumulo_ledger::ChargebackRow], format: UsageFormat) -> anyhow::Result<()> {
    if format == UsageFormat::Json {
        return print_json(&Document { money_unit: "micro-USD", title: None, rows: &rows });
    }
    let mut t = table(["tenant", "GPU-hours", "contract", "on-demand", "spot", "total", "at list", "saved"]);
    for r in rows {
        t.add_row([
            r.tenant.clone(),
            decimal_hours(r.gpu_seconds),
            r.contract.usd(),
            r.on_demand.usd(),
            r.spot.usd(),
            r.total.usd(),
            r.list.usd(),
            r.savings.usd(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn burn_down_view(records: &[UsageRecord], filter: &UsageFilter, args: &Args, path: &Path) -> anyhow::Result<()> {
    let portfolio = match &args.portfolio {
        Some(path) => cumulo_portfolio::Portfolio::from_file(path)?,
        None => cumulo_portfolio::Portfolio::demo()?,
    };
    let at = match (&args.at, filter.until) {
        (Some(text), _) => parse_time("at", text)?,
        (None, Some(until)) => until,
        (None, None) => match records.iter().map(|r| r.stop).max() {
            Some(last) => last,
            None => bail!("usage file `{}` has no records: give --at", path.display()),
        },
    };
    let mine: Vec<UsageRecord> = filter.apply(records).collect();
    let burn = cumulo_ledger::burn_down(&portfolio, &mine, at);
    let title = format!(
        "burn-down at {} from metered usage ({}){}",
        cumulo_ledger::time::format_time(at),
        path.display(),
        if portfolio.illustrative { ", portfolio ILLUSTRATIVE" } else { "" }
    );
    if args.format == UsageFormat::Json {
        return print_json(&Document { money_unit: "micro-USD", title: Some(&title), rows: &burn });
    }
    println!("{title}");
    print_burn_table(serde_json::to_value(&burn)?)
}

/// The server's burn-down (`GET /v1/contracts/burn-down`, computed by the server's own definition).
fn print_remote_burn_down(burn: &serde_json::Value, server: &str, format: UsageFormat) -> anyhow::Result<()> {
    let illustrative = burn["illustrative"].as_bool().unwrap_or(false);
    let title = format!(
        "burn-down at {} from metered usage (server {server}){}",
        burn["at"].as_str().unwrap_or("?"),
        if illustrative { ", portfolio ILLUSTRATIVE" } else { "" }
    );
    if format == UsageFormat::Json {
        return print_json(&Document { money_unit: "micro-USD", title: Some(&title), rows: burn });
    }
    println!("{title}");
    print_burn_table(burn.clone())
}

/// One line per contract of a burn-down (as JSON: the portfolio's `BurnDown`).
fn print_burn_table(burn: serde_json::Value) -> anyhow::Result<()> {
    let money = |v: &serde_json::Value| v.as_i64().map_or_else(|| "-".to_string(), |m| Money(m).to_string());
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let mut t = table([
        "contract",
        "provider",
        "committed",
        "scheduled",
        "consumed",
        "status",
        "projected",
        "shortfall",
        "overrun",
    ]);
    for c in burn["contracts"].as_array().into_iter().flatten() {
        t.add_row([
            text(&c["contract"]),
            text(&c["provider"]),
            money(&c["committed"]),
            money(&c["scheduled"]),
            money(&c["consumed"]),
            text(&c["status_text"]),
            money(&c["projected_consumed"]),
            money(&c["projected_shortfall"]),
            money(&c["projected_overrun"]),
        ]);
    }
    println!("{t}");
    Ok(())
}
