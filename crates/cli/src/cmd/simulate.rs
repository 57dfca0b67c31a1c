//! `cumulo simulate SCENARIO.yaml`: run a simulated fleet forward in time with the real
//! scheduling core, Cumulo's policy beside the FIFO and cheapest-first baselines.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use cumulo_sim::scenario::Scenario;
use cumulo_sim::simulate::{Report, simulate};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::table;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML): fleet, workload, policies and events; `data:` paths resolve against
    /// $CUMULO_DATA_DIR
    pub scenario: PathBuf,
    /// `table` (a summary on stdout, the default), `json` (the whole report on stdout), or a
    /// file to write the whole JSON report to (the summary still goes to stdout)
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// Write SVG charts (allocation, pending, fragmentation, allocation vs demand, burn-down)
    /// into this directory
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario).with_context(|| format!("scenario {}", args.scenario.display()))?;
    let start = NaiveDate::parse_from_str(&scenario.start_date, "%Y-%m-%d").context("start_date")?;
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let began = Instant::now();
    let mut policy_began = Instant::now();
    let mut current = None;
    let mut timings: Vec<(String, f64, u64)> = Vec::new();
    let report = simulate(&scenario, &mut |policy, p| {
        if current != Some(policy) {
            if let Some(prev) = current {
                timings.push((
                    cumulo_sim::scenario::PolicyName::as_str(prev).to_string(),
                    policy_began.elapsed().as_secs_f64(),
                    0,
                ));
            }
            current = Some(policy);
            policy_began = Instant::now();
        }
        let date = start + Duration::seconds(p.now_s as i64);
        bar.set_message(format!(
            "simulated {date} · {} · {} jobs arrived, {} finished",
            policy.as_str(),
            p.arrived,
            p.finished
        ));
        bar.tick();
    })?;
    if let Some(prev) = current {
        timings.push((prev.as_str().to_string(), policy_began.elapsed().as_secs_f64(), 0));
    }
    bar.finish_and_clear();
    let wall = began.elapsed().as_secs_f64();
    for ((_, _, jobs), r) in timings.iter_mut().zip(&report.policies) {
        *jobs = r.jobs;
    }
    if !args.quiet {
        for (policy, secs, jobs) in &timings {
            eprintln!(
                "{policy}: {jobs} jobs simulated in {secs:.2} s wall ({:.0} jobs/s)",
                *jobs as f64 / secs.max(1e-9)
            );
        }
        eprintln!("total: {wall:.2} s wall (simulated; wall times are not part of the report)");
    }
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, svg) in cumulo_sim::plot::charts(&report) {
            let path = dir.join(name);
            std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    match args.output.as_str() {
        "json" => crate::output::print_json(&report)?,
        "table" => print_summary(&report),
        path => {
            let text = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, text + "\n").with_context(|| format!("cannot write the report to {path}"))?;
            print_summary(&report);
        }
    }
    Ok(())
}

fn hours(s: f64) -> String {
    format!("{:.2} h", s / 3600.0)
}

fn print_summary(report: &Report) {
    println!(
        "{} (simulated{}): {} jobs per policy on {} GPUs{}",
        report.scenario,
        if report.illustrative { ", illustrative portfolio" } else { "" },
        report.jobs,
        report.fleet_gpus,
        if report.skipped_rows.is_empty() {
            String::new()
        } else {
            format!(", {} trace rows skipped", report.skipped_rows.len())
        }
    );
    let mut t = table([
        "policy",
        "finished",
        "mean JCT",
        "p99 JCT",
        "mean wait",
        "GPU alloc",
        "cost (USD)",
        "contract unused (USD)",
        "inference SLO",
        "preemptions",
        "GPU-h lost",
    ]);
    for h in &report.comparison {
        t.add_row(vec![
            h.policy.clone(),
            h.finished.to_string(),
            // Completion times exist only for jobs that finished (none do in fill-up runs).
            if h.finished == 0 { "-".to_string() } else { hours(h.mean_jct_s) },
            if h.finished == 0 { "-".to_string() } else { hours(h.p99_jct_s as f64) },
            hours(h.mean_queueing_delay_s),
            format!("{:.1} %", h.gpu_allocation_ratio * 100.0),
            format!("{:.0}", h.total_cost_usd),
            format!("{:.0}", h.contract_shortfall_usd),
            format!("{:.1} %", h.inference_slo_attainment * 100.0),
            h.preemptions.to_string(),
            format!("{:.1}", h.gpu_hours_lost_to_failures),
        ]);
    }
    println!("{t}");
    for r in &report.policies {
        if let Some(term) = &r.term {
            print_term(&r.policy, term);
        }
    }
}

fn short(usd: f64) -> String {
    cumulo_types::Money::from_dollars_f64(usd.abs())
        .map(|m| format!("{}{}", if usd < 0.0 { "-" } else { "" }, super::portfolio::short_usd(m)))
        .unwrap_or_else(|| format!("{usd:.0}"))
}

/// Each contract over its term: consumed against committed, overflow, minimums, expansion.
fn print_term(policy: &str, term: &cumulo_sim::term::TermReport) {
    println!(
        "\n{policy}: contract terms, {} to {} (simulated{})",
        term.from,
        term.to,
        if term.illustrative { "; illustrative portfolio, made-up contract figures" } else { "" }
    );
    let mut t = table([
        "contract",
        "term",
        "committed",
        "consumed",
        "consumed %",
        "shortfall",
        "payable",
        "on-demand overflow",
        "periods under min",
        "expansion",
    ]);
    for c in &term.contracts {
        let under = match &c.minimum_spend {
            Some(m) => format!("{} of {} ({})", m.periods_under, m.periods.len(), m.period),
            None => "-".to_string(),
        };
        let expansion = match &c.expansion {
            Some(e) => match &e.best_exercise {
                Some(date) => format!("pays from {date} (net {})", short(e.best_net_usd)),
                None => format!("does not pay (best net {})", short(e.best_net_usd)),
            },
            None => "-".to_string(),
        };
        t.add_row(vec![
            c.contract.clone(),
            format!("{}{}", c.term, if c.whole_term_simulated { "" } else { " (part)" }),
            short(c.committed_usd),
            short(c.consumed_usd),
            format!("{:.1} %", c.consumed_share * 100.0),
            short(c.shortfall_usd),
            short(c.payable_usd),
            short(c.overflow_on_demand_usd),
            under,
            expansion,
        ]);
    }
    println!("{t}");
    println!("on-demand GPU spend, all providers: {}", short(term.on_demand_gpu_usd));
    for a in &term.approximations {
        println!("approximation: {a}");
    }
}
