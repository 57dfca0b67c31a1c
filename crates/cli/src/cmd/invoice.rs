//! `cumulo invoice`: one provider's invoice for one calendar month, from metered usage.

use std::path::PathBuf;

use anyhow::Context;
use cumulo_ledger::invoice::decimal_hours;
use cumulo_ledger::{Month, focus::decimal_money};
use cumulo_types::Provider;
use serde::Serialize;

use crate::cmd::remote::{Remote, runtime};
use crate::cmd::usage::read_usage_file;
use crate::output::{print_json, table};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InvoiceFormat {
    #[default]
    Table,
    Json,
    Csv,
}

/// A provider's invoice for a month: one line per contract (or on-demand / spot), node type and
/// rate; the total is the exact sum of the lines.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Usage records, one JSON object per line (default: ask the server, admin token)
    #[arg(long, value_name = "FILE")]
    pub usage: Option<PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
    /// Provider billed (aws, azure, gcp, oci, coreweave, ...)
    #[arg(long)]
    pub provider: String,
    /// Billing month, YYYY-MM (UTC; default: this month)
    #[arg(long)]
    pub month: Option<String>,
    /// Output format: table, json or csv; `--format` is an older spelling
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = InvoiceFormat::Table)]
    pub format: InvoiceFormat,
}

#[derive(Serialize)]
struct Document<'a> {
    money_unit: &'static str,
    #[serde(flatten)]
    invoice: &'a cumulo_ledger::Invoice,
}

/// An invoice for a provider nobody uses is a typo, not an empty bill.
fn refuse_unknown_provider(provider: &Provider, mut known: Vec<String>, among: &str) -> anyhow::Result<()> {
    known.sort();
    known.dedup();
    if known.iter().any(|k| k == provider.as_str()) {
        return Ok(());
    }
    anyhow::bail!(
        "unknown provider `{provider}` for --provider: expected one of {} (the providers {among})",
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let provider = Provider::new(&args.provider).context("--provider")?;
    let month = match &args.month {
        Some(text) => Month::parse(text)?,
        None => Month::parse(&chrono::Utc::now().format("%Y-%m").to_string())?,
    };
    let inv = match &args.usage {
        Some(path) => {
            let records = read_usage_file(path)?;
            let known: Vec<String> = records.iter().map(|r| r.provider.to_string()).collect();
            refuse_unknown_provider(&provider, known, &format!("in {}", path.display()))?;
            cumulo_ledger::invoice(&records, &provider, month)
        }
        None => {
            let client = args.remote.client()?;
            runtime()?.block_on(async {
                let known = client.clusters().await?.into_iter().map(|c| c.provider).collect();
                refuse_unknown_provider(&provider, known, "in the server's fleet")?;
                Ok::<_, anyhow::Error>(client.invoice(provider.as_str(), &month.to_string()).await?)
            })?
        }
    };
    match args.format {
        InvoiceFormat::Json => print_json(&Document { money_unit: "micro-USD", invoice: &inv }),
        InvoiceFormat::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout());
            out.write_record(["item", "capacity", "node_type", "rate_usd_per_node_hour", "node_hours", "amount_usd"])?;
            for l in &inv.lines {
                out.write_record([
                    l.item.as_str(),
                    l.capacity.as_str(),
                    &l.node_type,
                    &decimal_money(l.rate),
                    &decimal_hours(l.node_seconds),
                    &decimal_money(l.amount),
                ])?;
            }
            out.write_record([
                "total",
                "",
                "",
                "",
                &decimal_hours(inv.lines.iter().map(|l| l.node_seconds).sum()),
                &decimal_money(inv.total),
            ])?;
            out.flush()?;
            Ok(())
        }
        InvoiceFormat::Table => {
            println!(
                "invoice {} {} ({} .. {})",
                provider,
                month,
                cumulo_ledger::time::format_time(inv.period_start),
                cumulo_ledger::time::format_time(inv.period_end)
            );
            let mut t = table(["item", "node type", "rate / node-hour", "node-hours", "amount"]);
            for l in &inv.lines {
                t.add_row([l.item.clone(), l.node_type.clone(), l.rate.usd_per_hour(), l.node_hours(), l.amount.usd()]);
            }
            t.add_row([
                "total".to_string(),
                String::new(),
                String::new(),
                decimal_hours(inv.lines.iter().map(|l| l.node_seconds).sum()),
                inv.total.usd(),
            ]);
            println!("{t}");
            Ok(())
        }
    }
}
