//! `cumulo offers JOB.yaml`: the feasible placements of a job ranked by effective cost, given the
//! catalog and the portfolio's burn-down state; with `--fleet FILE`, which of the fleet's clusters
//! can give what the job needs of its site (`cumulo_sched::needs`), as the server decides.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use cumulo_portfolio::clock::parse_duration_s;
use cumulo_portfolio::offers::{HeldBack, OfferRow, Query, Ranking, SiteAnswer, rank};
use cumulo_portfolio::pricing::PricingConfig;
use cumulo_portfolio::{Portfolio, Usage};
use serde::Serialize;

use super::portfolio::{ForecastArgs, label, time_arg};
use crate::output::{Format, print_json, table};

/// Rank the feasible placements of a job by effective cost: provider, region, instance type,
/// nodes, list $/h, effective $/h and why. Effective cost counts committed capacity behind its
/// burn schedule as nearly free, ahead of schedule at its contract rate, on-demand at list and
/// spot at its price plus a preemption-risk premium. Exclusive and first-refusal clauses are
/// honoured. Exits non-zero, saying why, when no placement is feasible. Amounts in the JSON
/// output are integer micro-dollars per hour for all nodes together.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job file (SkyPilot task YAML plus Cumulo's fields)
    job: PathBuf,
    /// A directory of SkyPilot catalog CSVs; the built-in catalog when absent
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// A portfolio YAML file, or `demo` for the built-in demo portfolio (illustrative, the default)
    #[arg(long, value_name = "FILE", conflicts_with = "no_portfolio")]
    portfolio: Option<PathBuf>,
    /// Rank at list prices only, without any contracts
    #[arg(long)]
    no_portfolio: bool,
    /// A fleet file (as `cumulo up` and the server read it): say which of its clusters can run
    /// the job's container image, take its upload and mount its buckets, with the pending reason
    /// the server gives for those that cannot, and keep off the offers in locations where only
    /// such clusters stand
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    #[command(flatten)]
    forecast: ForecastArgs,
    /// The time to decide at: 2026-12-31 or an RFC 3339 time (default: now)
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// How long the job has already waited (first-refusal clauses hold other providers back
    /// until then), e.g. 90m or 2h
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    waited: String,
    /// Premium on spot prices for preemption risk, in percent
    #[arg(long, value_name = "PERCENT", default_value_t = 25)]
    spot_premium: u32,
    /// Rows to show in the table (JSON always has all)
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Serialize)]
struct Output<'a> {
    job: &'a str,
    at: DateTime<Utc>,
    catalog: &'a str,
    portfolio: Option<&'a str>,
    illustrative: bool,
    forecast: Option<String>,
    /// Microseconds spent deciding (usage state and ranking), excluding file loading.
    decision_us: u128,
    feasible: &'a [OfferRow],
    held_back: &'a [HeldBack],
    excluded_by_exclusive: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    infeasible: Option<&'a str>,
    /// The fleet file's clusters, each with whether it can run the job (with `--fleet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<FleetAnswer<'a>>,
}

#[derive(Serialize)]
struct FleetAnswer<'a> {
    file: String,
    clusters: &'a [SiteAnswer],
    /// What the server adds to the job's pending reason for the clusters that cannot run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_reason: Option<&'a str>,
    /// Offers kept off: every cluster in their location lacks what the job needs of its site.
    kept_off: &'a [HeldBack],
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A file of several `---` documents (a sweep) gets one ranking per job.
    let jobs = cumulo_jobfile::parse_many_file(&args.job).map_err(|e| anyhow::anyhow!("{e}"))?;
    let catalog = super::catalog::load(args.catalog.as_deref())?;
    let portfolio: Option<Portfolio> =
        if args.no_portfolio { None } else { Some(super::portfolio::load(args.portfolio.as_deref())?) };
    let forecast = match &portfolio {
        Some(p) => Some(args.forecast.load(p)?),
        None => None,
    };
    let now = time_arg(args.at.as_deref())?;
    let waited_s = parse_duration_s(&args.waited).context("--waited")?;
    let config = PricingConfig { spot_premium_bps: args.spot_premium.saturating_mul(100), ..PricingConfig::default() };
    let fleet = args.fleet.as_deref().map(load_fleet).transpose()?;
    let sites: Vec<_> =
        fleet.iter().flat_map(|f| f.clusters.iter().map(cumulo_server::config::ClusterEntry::site)).collect();

    let rankings: Vec<(u128, _)> = jobs
        .iter()
        .map(|job| {
            let started = Instant::now();
            let usage = match (&portfolio, &forecast) {
                (Some(p), Some(f)) => Usage::at(p, f, now),
                _ => Usage::default(),
            };
            let ranking = rank(&Query {
                job,
                catalog: &catalog,
                portfolio: portfolio.as_ref(),
                usage: &usage,
                now,
                waited_s,
                config,
                sites: &sites,
            });
            (started.elapsed().as_micros(), ranking)
        })
        .collect();

    if args.output == Format::Json {
        let outputs: Vec<Output> = jobs
            .iter()
            .zip(&rankings)
            .map(|(job, (decision_us, ranking))| Output {
                job: &job.name,
                at: now,
                catalog: &catalog.origin,
                portfolio: portfolio.as_ref().map(|p| p.name.as_str()),
                illustrative: portfolio.as_ref().is_some_and(|p| p.illustrative),
                forecast: forecast.as_ref().map(|f| f.describe()),
                decision_us: *decision_us,
                feasible: &ranking.feasible,
                held_back: &ranking.held_back,
                excluded_by_exclusive: ranking.excluded_by_exclusive,
                infeasible: ranking.infeasible.as_deref(),
                fleet: args.fleet.as_ref().map(|file| FleetAnswer {
                    file: file.display().to_string(),
                    clusters: &ranking.sites,
                    pending_reason: ranking.site_reason.as_deref(),
                    kept_off: &ranking.kept_off,
                }),
            })
            .collect();
        match outputs.as_slice() {
            [one] => print_json(one)?,
            many => print_json(&many)?,
        }
    } else {
        for (i, (job, (decision_us, ranking))) in jobs.iter().zip(&rankings).enumerate() {
            if i > 0 {
                println!();
            }
            println!(
                "offers for job `{}` ({} x {}) at {}; catalog {}; portfolio {}{}",
                job.name,
                job.num_nodes,
                cumulo_portfolio::offers::demand_text(job),
                now.format("%Y-%m-%d %H:%M UTC"),
                catalog.origin,
                portfolio.as_ref().map_or("none (list prices)".to_string(), label),
                forecast.as_ref().map_or(String::new(), |f| format!(", {}", f.describe())),
            );
            print_rows(&ranking.feasible, args.limit);
            if let Some((first, rest)) = ranking.held_back.split_first() {
                println!("held back: {} offer(s): {}", rest.len() + 1, first.reason);
            }
            if ranking.excluded_by_exclusive > 0 {
                println!("excluded: {} offer(s) by an exclusive clause", ranking.excluded_by_exclusive);
            }
            if let Some(fleet) = &fleet {
                print_fleet(ranking, fleet);
            }
            if let Some(why) = &ranking.infeasible {
                println!("infeasible: {why}");
            }
            println!("decided in {decision_us} µs");
        }
    }
    let all_feasible = rankings.iter().all(|(_, r)| r.infeasible.is_none());
    Ok(if all_feasible { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn load_fleet(path: &std::path::Path) -> anyhow::Result<cumulo_server::config::FleetFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read fleet file {}", path.display()))?;
    cumulo_server::config::FleetFile::parse(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The fleet's clusters, whether each can run the job by what it needs of its site, the server's
/// pending reason, and the offers kept off.
fn print_fleet(ranking: &Ranking, fleet: &cumulo_server::config::FleetFile) {
    let mut t = table(["cluster", "provider", "region", "driver", "runs this job", "why not"]);
    for (answer, entry) in ranking.sites.iter().zip(&fleet.clusters) {
        t.add_row([
            answer.cluster.clone(),
            answer.provider.clone(),
            answer.region.clone(),
            entry.driver_kind().to_string(),
            if answer.can_run { "yes" } else { "no" }.to_string(),
            answer.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("fleet clusters, by what the job needs of its site (image, upload, bucket mounts):\n{t}");
    if let Some(reason) = &ranking.site_reason {
        println!("pending reason the server adds: {reason}");
    }
    if let Some((first, rest)) = ranking.kept_off.split_first() {
        println!("kept off: {} offer(s) where only such clusters stand: {}", rest.len() + 1, first.reason);
    }
}

/// The table: rows that differ only by region or zone (OCI lists one price in 54 domains) are
/// folded into one line with a count.
fn print_rows(rows: &[OfferRow], limit: usize) {
    let mut t = table(["#", "provider", "region", "instance type", "kind", "nodes", "list", "effective", "why"]);
    let mut shown = 0;
    let mut i = 0;
    while i < rows.len() && shown < limit {
        let r = &rows[i];
        let same = rows[i..]
            .iter()
            .take_while(|o| {
                o.provider == r.provider
                    && o.instance_type == r.instance_type
                    && o.capacity == r.capacity
                    && o.effective_per_hour == r.effective_per_hour
                    && o.list_per_hour == r.list_per_hour
                    && o.why == r.why
            })
            .count();
        let mut region = match &r.zone {
            Some(z) => format!("{}/{z}", r.region),
            None => r.region.clone(),
        };
        if same > 1 {
            region.push_str(&format!(" (+{} more)", same - 1));
        }
        shown += 1;
        t.add_row([
            shown.to_string(),
            r.provider.clone(),
            region,
            r.instance_type.clone(),
            r.capacity.to_string(),
            r.nodes.to_string(),
            r.list_per_hour.usd_per_hour(),
            r.effective_per_hour.usd_per_hour(),
            r.why.clone(),
        ]);
        i += same;
    }
    println!("{t}");
    if i < rows.len() {
        println!("... {} more feasible offers (--limit, or -o json for all)", rows.len() - i);
    }
}
