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
/// without --usage, from the server (--server/--token; grouped usage only). Records that straddle
/// --since or --until are clipped and re-rated exactly.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    let Some(path) = args.usage.clone() else { return run_remote(&args) };
    let records = read_usage_file(&path)?;
    let filter = UsageFilter {
        tenant: args.tenant.clone(),
        provider: args.provider.as_deref().map(Provider::new).transpose().context("--provider")?,
        contract: args.contract.clone(),
        since: args.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
        until: args.until.as_deref().map(|s| parse_time("until", s)).transpose()?,
    };
    if args.format == UsageFormat::Focus && args.view != View::Usage {
        let view = clap::ValueEnum::to_possible_value(&args.view).map(|v| v.get_name().to_string()).unwrap_or_default();
        bail!("invalid format `focus` for view `{view}`: expected table or json (focus exports the usage view)");
    }
    match args.view {
        View::Usage => usage_view(&records, &filter, args.group_by.into(), args.format),
        View::Chargeback => chargeback_view(&records, &filter, args.format),
        View::BurnDown => burn_down_view(&records, &filter, &args, &path),
    }
}

/// Grouped usage from the server's `GET /v1/usage` (members see their own tenant).
fn run_remote(args: &Args) -> anyhow::Result<()> {
    if args.view != View::Usage || args.format == UsageFormat::Focus {
        bail!(
            "--view chargeback, --view burn-down and --output focus need --usage FILE: the server answers grouped usage only"
        );
    }
    let client = args.remote.client()?;
    let group_by: GroupBy = args.group_by.into();
    let mut query: Vec<(&str, String)> = vec![("group_by", group_by.to_string())];
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
    let answer = runtime()?.block_on(client.usage(&query))?;
    print_rows(&answer.rows, group_by, args.format)
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
    let rows = cumulo_ledger::chargeback(records, filter);
    if format == UsageFormat::Json {
        return print_json(&Document { money_unit: "micro-USD", title: None, rows: &rows });
    }
    let mut t = table(["tenant", "GPU-hours", "contract", "on-demand", "spot", "total", "at list", "saved"]);
    for r in &rows {
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
    for c in &burn.contracts {
        t.add_row([
            c.contract.clone(),
            c.provider.clone(),
            c.committed.usd_short(),
            c.scheduled.usd_short(),
            c.consumed.usd_short(),
            c.status_text.clone(),
            c.projected_consumed.usd_short(),
            c.projected_shortfall.usd_short(),
            c.projected_overrun.usd_short(),
        ]);
    }
    println!("{t}");
    Ok(())
}
