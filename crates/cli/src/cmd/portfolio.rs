//! `cumulo portfolio burn-down` and `cumulo portfolio delivered`: contracts against their
//! schedule, and the capacity they have delivered; also the `--portfolio` loader other commands share.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use cumulo_portfolio::clock::parse_time;
use cumulo_portfolio::{BurnDown, Forecast, Portfolio};
use cumulo_types::Money;
use serde::Serialize;

use crate::output::{Format, print_json, table};

/// Contracts: burn-down against schedule, delivered capacity
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// How consumption is forecast: a constant utilisation or a usage series.
#[derive(Debug, Clone, clap::Args)]
pub struct ForecastArgs {
    /// Utilisation of delivered capacity, e.g. 70, 70% or 0.7 (default 70%)
    #[arg(long, value_name = "P", conflicts_with = "usage")]
    pub utilisation: Option<String>,
    /// A usage series CSV with columns contract,start,end,spend_usd (the last interval's
    /// utilisation is carried forward to the end of each term)
    #[arg(long, value_name = "FILE")]
    pub usage: Option<PathBuf>,
}

impl ForecastArgs {
    pub fn load(&self, portfolio: &Portfolio) -> anyhow::Result<Forecast> {
        let forecast = match (&self.utilisation, &self.usage) {
            (_, Some(path)) => Forecast::from_csv_file(path)?,
            (Some(p), None) => Forecast::parse_utilisation(p)?,
            (None, None) => Forecast::Utilisation { bps: 7000 },
        };
        forecast.check_against(portfolio)?;
        Ok(forecast)
    }
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Per contract: committed, scheduled and consumed to date, on or behind schedule, and the
    /// projected shortfall (paid, unused) or overrun at term end under a usage forecast
    BurnDown {
        /// A portfolio YAML file, or `demo` for the built-in demo portfolio (illustrative, the default)
        #[arg(long, value_name = "FILE")]
        portfolio: Option<PathBuf>,
        #[command(flatten)]
        forecast: ForecastArgs,
        /// The time to report at: 2026-12-31 or an RFC 3339 time (default: now)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Capacity delivered by each running contract at a time, per region and node type
    Delivered {
        /// A portfolio YAML file, or `demo` for the built-in demo portfolio (illustrative, the default)
        #[arg(long, value_name = "FILE")]
        portfolio: Option<PathBuf>,
        /// The time to report at: 2026-12-31 or an RFC 3339 time (default: now)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::BurnDown { portfolio, forecast, at, output } => {
            let portfolio = load(portfolio.as_deref())?;
            let forecast = forecast.load(&portfolio)?;
            let at = time_arg(at.as_deref())?;
            burn_down(&portfolio, &forecast, at, output)
        }
        Command::Delivered { portfolio, at, output } => {
            let portfolio = load(portfolio.as_deref())?;
            delivered(&portfolio, time_arg(at.as_deref())?, output)
        }
    }
}

/// `--at TIME`, or the wall clock when absent (the CLI is the edge that may read it).
pub fn time_arg(at: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match at {
        Some(t) => Ok(parse_time(t).context("--at")?),
        None => Ok(Utc::now()),
    }
}

/// The portfolio `--portfolio` names: a YAML file, or `demo` (also when absent) for the built-in
/// one, as a fleet file's `portfolio: demo` and `cumulo bench sched --portfolio demo` read it.
pub fn load(path: Option<&Path>) -> anyhow::Result<Portfolio> {
    match path {
        Some(p) if p != Path::new("demo") => Ok(Portfolio::from_file(p)?),
        _ => Ok(Portfolio::demo()?),
    }
}

/// `name (illustrative)` for the demo and other made-up portfolios.
pub fn label(p: &Portfolio) -> String {
    if p.illustrative { format!("{} (illustrative)", p.name) } else { p.name.clone() }
}

/// Large amounts in a readable unit: `$38.00B`, `$1,640.39M`, `$12.50` ([`Money::usd_short`]).
pub fn short_usd(m: Money) -> String {
    m.usd_short()
}

fn burn_down(portfolio: &Portfolio, forecast: &Forecast, at: DateTime<Utc>, output: Format) -> anyhow::Result<()> {
    let b = BurnDown::compute(portfolio, forecast, at);
    if output == Format::Json {
        return print_json(&b);
    }
    println!(
        "burn-down of portfolio {} at {}, forecast: {}",
        label(portfolio),
        at.format("%Y-%m-%d %H:%M UTC"),
        b.forecast
    );
    let mut t = table([
        "contract",
        "provider",
        "committed",
        "term",
        "GPUs now",
        "scheduled to date",
        "consumed to date",
        "status",
        "projected at end",
        "shortfall",
        "overrun",
    ]);
    for c in &b.contracts {
        t.add_row([
            c.contract.clone(),
            c.provider.clone(),
            short_usd(c.committed),
            c.term.clone(),
            c.delivered_gpus.to_string(),
            short_usd(c.scheduled),
            short_usd(c.consumed),
            c.status_text.clone(),
            short_usd(c.projected_consumed),
            short_usd(c.projected_shortfall),
            short_usd(c.projected_overrun),
        ]);
    }
    println!("{t}");
    for c in b.contracts.iter().filter(|c| c.periods_under_minimum > 0) {
        println!(
            "{}: {} period(s) under the minimum spend; projected payable {}",
            c.contract,
            c.periods_under_minimum,
            short_usd(c.projected_payable)
        );
    }
    if b.illustrative {
        println!("illustrative portfolio: figures are made up to exercise Cumulo, not real contract terms");
    }
    Ok(())
}

#[derive(Serialize)]
struct DeliveredOutput<'a> {
    portfolio: &'a str,
    illustrative: bool,
    at: DateTime<Utc>,
    delivered: Vec<DeliveredRow>,
}

#[derive(Serialize)]
struct DeliveredRow {
    contract: String,
    provider: String,
    region: String,
    node_type: String,
    nodes: u32,
    gpus: u64,
}

fn delivered(portfolio: &Portfolio, at: DateTime<Utc>, output: Format) -> anyhow::Result<()> {
    let rows: Vec<DeliveredRow> = portfolio
        .delivered_capacity(at)
        .into_iter()
        .map(|d| {
            let gpus = u64::from(d.nodes) * u64::from(portfolio.node_type(&d.node_type).map_or(0, |n| n.gpus));
            DeliveredRow {
                contract: d.contract,
                provider: d.provider.to_string(),
                region: d.region,
                node_type: d.node_type,
                nodes: d.nodes,
                gpus,
            }
        })
        .collect();
    if output == Format::Json {
        return print_json(&DeliveredOutput {
            portfolio: &portfolio.name,
            illustrative: portfolio.illustrative,
            at,
            delivered: rows,
        });
    }
    println!("capacity delivered by portfolio {} at {}", label(portfolio), at.format("%Y-%m-%d %H:%M UTC"));
    let mut t = table(["contract", "provider", "region", "node type", "nodes", "GPUs"]);
    for r in &rows {
        t.add_row([
            r.contract.clone(),
            r.provider.clone(),
            r.region.clone(),
            r.node_type.clone(),
            r.nodes.to_string(),
            r.gpus.to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_usd_units() {
        assert_eq!(short_usd(Money::from_dollars(38_000_000_000)), "$38.00B");
        assert_eq!(short_usd(Money::from_micros(1_640_393_749_820_631)), "$1.64B");
        assert_eq!(short_usd(Money::from_micros(768_530_000_000_000)), "$768.53M");
        assert_eq!(short_usd(Money::from_micros(12_500_000)), "$12.50");
        assert_eq!(short_usd(Money::from_dollars(-2_000_000)), "-$2.00M");
    }
}
