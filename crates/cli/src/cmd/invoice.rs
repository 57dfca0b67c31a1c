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
    /// Billing month, YYYY-MM (UTC)
    #[arg(long)]
    pub month: String,
    /// Output: table, json or csv
    #[arg(short = 'o', long = "format", alias = "output", value_enum, default_value_t = InvoiceFormat::Table)]
    pub format: InvoiceFormat,
}

#[derive(Serialize)]
struct Document<'a> {
    money_unit: &'static str,
    #[serde(flatten)]
    invoice: &'a cumulo_ledger::Invoice,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let provider = Provider::new(&args.provider).context("--provider")?;
    let month = Month::parse(&args.month)?;
    let inv = match &args.usage {
        Some(path) => cumulo_ledger::invoice(&read_usage_file(path)?, &provider, month),
        None => {
            let client = args.remote.client()?;
            runtime()?.block_on(client.invoice(provider.as_str(), &month.to_string()))?
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
                t.add_row([
                    l.item.clone(),
                    l.node_type.clone(),
                    l.rate.to_string(),
                    l.node_hours(),
                    l.amount.to_string(),
                ]);
            }
            t.add_row([
                "total".to_string(),
                String::new(),
                String::new(),
                decimal_hours(inv.lines.iter().map(|l| l.node_seconds).sum()),
                inv.total.to_string(),
            ]);
            println!("{t}");
            Ok(())
        }
    }
}
