//! `cumulo catalog import DIR` and `cumulo catalog list`: cloud offers from SkyPilot catalog CSVs
//! or from the built-in catalog; also the `--catalog DIR` loader other commands share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cumulo_catalog::{Catalog, ImportReport, import_dir};
use cumulo_types::{GpuModel, Money};
use serde::Serialize;

use crate::output::{Format, print_json, table};

/// Cloud offers: import SkyPilot catalogs or list offers
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Import every SkyPilot catalog CSV under DIR (columns by header name) and print a summary:
    /// files, rows, rows imported, and each skipped row with its file, line and reason
    Import {
        /// A directory of `<cloud>/vms.csv` files, e.g. a skypilot-catalog `catalogs/v8` checkout
        dir: PathBuf,
        /// Print every skipped row, not just the first few per reason
        #[arg(long)]
        all_skipped: bool,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List offers: instance types with GPUs, vCPUs, memory and hourly prices
    List {
        /// Only offers with this GPU model (e.g. H100, GB200); `none` for CPU-only offers
        #[arg(long)]
        gpu: Option<String>,
        /// Only offers of this provider (aws, azure, oci, lambda, ...)
        #[arg(long)]
        provider: Option<String>,
        /// A directory of SkyPilot catalog CSVs; the built-in catalog when absent
        #[arg(long, value_name = "DIR")]
        catalog: Option<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Import { dir, all_skipped, output } => import(&dir, all_skipped, output),
        Command::List { gpu, provider, catalog, output } => {
            list(gpu.as_deref(), provider.as_deref(), catalog.as_deref(), output)
        }
    }
}

/// The catalog `--catalog DIR` names, or the built-in one. Skipped rows are summarised on stderr.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    match dir {
        None => Ok(Catalog::builtin()?),
        Some(dir) => {
            let (catalog, report) =
                import_dir(dir).with_context(|| format!("loading catalog directory `{}`", dir.display()))?;
            let skipped = report.skipped().count();
            if skipped > 0 {
                eprintln!(
                    "note: catalog `{}`: {} offers imported, {skipped} rows skipped (see `cumulo catalog import {}`)",
                    dir.display(),
                    report.imported(),
                    dir.display()
                );
            }
            Ok(catalog)
        }
    }
}

fn import(dir: &Path, all_skipped: bool, output: Format) -> anyhow::Result<()> {
    let (_, report) = import_dir(dir).with_context(|| format!("importing catalog directory `{}`", dir.display()))?;
    if output == Format::Json {
        return print_json(&report);
    }
    print_import(&report, all_skipped);
    Ok(())
}

fn print_import(report: &ImportReport, all_skipped: bool) {
    println!("catalog import: {}", report.directory);
    let mut t = table(["file", "provider", "rows", "imported", "spot only", "skipped", "corrected"]);
    for f in &report.files {
        t.add_row([
            f.file.clone(),
            f.provider.clone(),
            f.rows.to_string(),
            f.imported.to_string(),
            f.spot_only.to_string(),
            f.skipped.len().to_string(),
            f.corrected.len().to_string(),
        ]);
    }
    t.add_row([
        format!("{} files", report.files.len()),
        String::new(),
        report.rows().to_string(),
        report.imported().to_string(),
        report.files.iter().map(|f| f.spot_only).sum::<usize>().to_string(),
        report.skipped().count().to_string(),
        report.files.iter().map(|f| f.corrected.len()).sum::<usize>().to_string(),
    ]);
    println!("{t}");
    for (file, why) in &report.ignored {
        println!("ignored {file}: {why}");
    }
    for c in report.files.iter().flat_map(|f| &f.corrected) {
        println!("corrected {c}");
    }
    // Skipped rows grouped by reason, with a few examples each.
    let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in report.skipped() {
        by_reason.entry(s.reason.as_str()).or_default().push(format!("{}:{} {}", s.file, s.line, s.instance_type));
    }
    for (reason, rows) in by_reason {
        println!("skipped {} row(s): {reason}", rows.len());
        let shown = if all_skipped { rows.len() } else { rows.len().min(3) };
        for r in &rows[..shown] {
            println!("    {r}");
        }
        if shown < rows.len() {
            println!("    ... {} more (--all-skipped)", rows.len() - shown);
        }
    }
}

#[derive(Serialize)]
struct ListOutput<'a> {
    catalog: &'a str,
    offers: Vec<&'a cumulo_catalog::Offer>,
}

fn list(gpu: Option<&str>, provider: Option<&str>, dir: Option<&Path>, output: Format) -> anyhow::Result<()> {
    let catalog = load(dir)?;
    let gpu_filter: Option<Option<GpuModel>> = match gpu {
        None => None,
        Some(g) if g.eq_ignore_ascii_case("none") => Some(None),
        Some(g) => Some(Some(GpuModel::parse(g).context("--gpu")?)),
    };
    let offers: Vec<&cumulo_catalog::Offer> = match gpu_filter {
        Some(g) => catalog.with_gpu(g).collect(),
        None => catalog.offers().iter().collect(),
    };
    let offers: Vec<_> =
        offers.into_iter().filter(|o| provider.is_none_or(|p| o.provider.eq_ignore_ascii_case(p))).collect();
    if let (Some(Some(model)), true) = (gpu_filter, offers.is_empty()) {
        // `--gpu A100` finds nothing where the catalog sells `A100-80GB`: say which names it has.
        let asked = model.to_string();
        let mut near: Vec<String> = catalog
            .offers()
            .iter()
            .filter_map(|o| o.gpu.map(|g| g.to_string()))
            .filter(|name| name.starts_with(&asked) || asked.starts_with(name.as_str()))
            .collect();
        near.sort();
        near.dedup();
        if !near.is_empty() {
            eprintln!("no {asked} offers in this catalog; it has {} (--gpu {})", near.join(", "), near[0]);
        }
    }
    if output == Format::Json {
        return print_json(&ListOutput { catalog: &catalog.origin, offers });
    }
    println!("catalog: {} ({} offers shown)", catalog.origin, offers.len());
    let mut t =
        table(["provider", "region", "zone", "instance type", "GPU", "vCPUs", "mem GiB", "$/h", "spot $/h", "source"]);
    let price = |m: Option<Money>| m.map_or("-".to_string(), Money::usd_per_hour);
    for o in offers {
        t.add_row([
            o.provider.clone(),
            o.region.clone(),
            o.zone.clone().unwrap_or_default(),
            o.instance_type.clone(),
            o.gpu.map_or("-".to_string(), |g| format!("{}x {g}", o.gpus)),
            format_milli(o.vcpus_milli),
            (o.memory_mib / 1024).to_string(),
            price(o.price),
            price(o.spot_price),
            o.source.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn format_milli(milli: u32) -> String {
    if milli.is_multiple_of(1000) { (milli / 1000).to_string() } else { format!("{:.3}", f64::from(milli) / 1000.0) }
}
