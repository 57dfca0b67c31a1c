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
    /// Output format: `table` (a summary, the default) or `json` (the whole report). A file name
    /// here still writes the report there, as before --report (deprecated)
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// Write the whole JSON report to this file (the summary still goes to stdout)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write SVG charts (allocation, pending, fragmentation, allocation vs demand, burn-down)
    /// into this directory
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
    /// Run the scenario this many times, with seeds `seed`, `seed + 1`, ... (default: the
    /// scenario's `seeds`, else 1); tables then give medians over the runs
    #[arg(long)]
    pub seeds: Option<u32>,
    /// Write one CSV row per job and policy (arrival, start, end, GPU type, attempts,
    /// migrations, outcome) to this file
    #[arg(long)]
    pub jobs_csv: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut scenario =
        Scenario::load(&args.scenario).with_context(|| format!("scenario {}", args.scenario.display()))?;
    scenario.sim.job_rows |= args.jobs_csv.is_some();
    let seeds = args.seeds.unwrap_or(scenario.seeds);
    if seeds > 1 && args.jobs_csv.is_some() {
        anyhow::bail!("--jobs-csv writes one run's jobs: use it without --seeds (or with --seeds 1)");
    }
    if seeds == 0 || seeds > 1000 {
        anyhow::bail!("--seeds {seeds}: expected a number of runs from 1 to 1000");
    }
    if seeds > 1 {
        return run_seeds(&args, scenario, seeds);
    }
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
    if let Some(path) = &args.jobs_csv {
        write_jobs_csv(path, &report)?;
    }
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, svg) in cumulo_sim::plot::charts(&report) {
            let path = dir.join(name);
            std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let report_file = match args.output.as_str() {
        "json" | "table" => args.report.clone(),
        path => {
            eprintln!(
                "note: `-o {path}` writes a file; -o means the output format (table or json): use --report {path}"
            );
            Some(PathBuf::from(path))
        }
    };
    if let Some(path) = &report_file {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    match args.output.as_str() {
        "json" => crate::output::print_json(&report)?,
        _ => print_summary(&report),
    }
    Ok(())
}

/// One row per job and policy; empty cells where a job never started or has not ended.
fn write_jobs_csv(path: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    let mut out = String::from("policy,job,arrival_s,start_s,end_s,gpu,gpus,attempts,migrations,outcome\n");
    let cell = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for p in &report.policies {
        for r in &p.job_rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                p.policy,
                r.job,
                r.arrival_s,
                cell(r.start_s),
                cell(r.end_s),
                r.gpu.as_deref().unwrap_or(""),
                r.gpus,
                r.attempts,
                r.migrations,
                r.outcome
            ));
        }
    }
    std::fs::write(path, out).with_context(|| format!("cannot write the job rows to {}", path.display()))
}

/// Runs the scenario once per seed and prints medians (the JSON output is the list of reports).
fn run_seeds(args: &Args, scenario: Scenario, seeds: u32) -> anyhow::Result<()> {
    if args.plot.is_some() {
        anyhow::bail!("--plot draws one run: use it without --seeds (or with --seeds 1)");
    }
    let began = Instant::now();
    let mut reports = Vec::with_capacity(seeds as usize);
    for i in 0..seeds {
        let mut one = scenario.clone();
        one.seed = scenario.seed + u64::from(i);
        if !args.quiet {
            eprintln!("seed {} ({}/{seeds})", one.seed, i + 1);
        }
        reports.push(simulate(&one, &mut |_, _| {})?);
    }
    if !args.quiet {
        eprintln!(
            "total: {:.2} s wall (simulated; wall times are not part of the report)",
            began.elapsed().as_secs_f64()
        );
    }
    match args.output.as_str() {
        "json" => crate::output::print_json(&reports)?,
        "table" => print_medians(&reports),
        path => {
            let text = serde_json::to_string_pretty(&reports)?;
            std::fs::write(path, text + "\n").with_context(|| format!("cannot write the reports to {path}"))?;
            print_medians(&reports);
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Per policy, medians over the runs (the spread in brackets where it tells).
fn print_medians(reports: &[Report]) {
    let Some(first) = reports.first() else { return };
    let seeds: Vec<String> = reports.iter().map(|r| r.seed.to_string()).collect();
    println!(
        "{} (simulated{}): medians over {} runs (seeds {}), {} GPUs",
        first.scenario,
        if first.illustrative { ", illustrative portfolio" } else { "" },
        reports.len(),
        seeds.join(", "),
        first.fleet_gpus
    );
    let fill_up = first.policies.iter().any(|p| p.fill_up.is_some());
    let mut t = if fill_up {
        table([
            "policy",
            "jobs",
            "alloc @ 100 % arrived",
            "[min, max]",
            "unallocated @ 100 %",
            "alloc @ 90 %",
            "alloc @ 110 %",
            "alloc at end",
            "failed jobs",
            "failed GPUs",
        ])
    } else {
        table([
            "policy",
            "jobs",
            "finished",
            "unfinished",
            "mean JCT",
            "p99 JCT",
            "mean wait",
            "GPU alloc",
            "preemptions",
        ])
    };
    for (i, p) in first.policies.iter().enumerate() {
        let of = |f: &dyn Fn(&cumulo_sim::report::PolicyReport) -> f64| {
            median(reports.iter().filter_map(|r| r.policies.get(i)).map(f).collect())
        };
        let all = |f: &dyn Fn(&cumulo_sim::report::PolicyReport) -> f64| -> Vec<f64> {
            reports.iter().filter_map(|r| r.policies.get(i)).map(f).collect()
        };
        if fill_up {
            let at = |pct: usize| {
                move |r: &cumulo_sim::report::PolicyReport| {
                    r.fill_up.as_ref().and_then(|f| f.at(pct)).unwrap_or(f64::NAN)
                }
            };
            let at100 = all(&at(100));
            let (lo, hi) =
                at100.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            let m100 = median(at100);
            t.add_row(vec![
                p.policy.clone(),
                format!("{:.0}", of(&|r| r.jobs as f64)),
                format!("{m100:.2} %"),
                format!("[{lo:.2}, {hi:.2}]"),
                format!("{:.2} %", 100.0 - m100),
                format!("{:.2} %", of(&at(90))),
                format!("{:.2} %", of(&at(110))),
                format!(
                    "{:.2} %",
                    of(&|r| r.fill_up.as_ref().and_then(|f| f.allocation_percent.last().copied()).unwrap_or(f64::NAN))
                ),
                format!("{:.0}", of(&|r| r.failed_to_place as f64)),
                format!("{:.1}", of(&|r| r.fill_up.as_ref().map_or(0.0, |f| f.failed_gpus))),
            ]);
        } else {
            let finished = of(&|r| r.finished as f64);
            let mean_jct = of(&|r| r.jct_s.get("all").map_or(f64::NAN, |d| d.mean_s));
            let p99_jct = of(&|r| r.jct_s.get("all").map_or(f64::NAN, |d| d.p99_s as f64));
            t.add_row(vec![
                p.policy.clone(),
                format!("{:.0}", of(&|r| r.jobs as f64)),
                format!("{finished:.0}"),
                format!("{:.0}", of(&|r| r.unfinished as f64 + r.failed_to_place as f64)),
                if finished == 0.0 { "-".to_string() } else { hours(mean_jct) },
                if finished == 0.0 { "-".to_string() } else { hours(p99_jct) },
                hours(of(&|r| r.queueing_delay_s.get("all").map_or(f64::NAN, |d| d.mean_s))),
                format!("{:.1} %", of(&|r| r.gpu_allocation.mean_ratio) * 100.0),
                format!("{:.0}", of(&|r| r.preemptions as f64)),
            ]);
        }
    }
    println!("{t}");
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
            whole_usd(h.total_cost_usd),
            whole_usd(h.contract_shortfall_usd),
            format!("{:.1} %", h.inference_slo_attainment * 100.0),
            h.preemptions.to_string(),
            format!("{:.1}", h.gpu_hours_lost_to_failures),
        ]);
    }
    println!("{t}");
    if report.policies.iter().any(|p| p.fill_up.is_some()) {
        let mut f = table([
            "policy",
            "alloc @ 50 %",
            "@ 90 %",
            "@ 100 % arrived",
            "@ 110 %",
            "at end",
            "failed jobs",
            "failed GPUs",
        ]);
        for p in &report.policies {
            let Some(fill) = &p.fill_up else { continue };
            let at = |pct: usize| fill.at(pct).map_or("-".to_string(), |v| format!("{v:.2} %"));
            f.add_row(vec![
                p.policy.clone(),
                at(50),
                at(90),
                at(100),
                at(110),
                fill.allocation_percent.last().map_or("-".to_string(), |v| format!("{v:.2} %")),
                fill.failed_jobs.to_string(),
                format!("{:.1}", fill.failed_gpus),
            ]);
        }
        println!("GPU allocation against arrived GPU request (% of the fleet's GPUs; fill-up, no retries):\n{f}");
    }
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

/// Whole dollars; an amount that rounds to zero prints `0`, never `-0`.
fn whole_usd(usd: f64) -> String {
    let rounded = usd.round();
    format!("{:.0}", if rounded == 0.0 { 0.0 } else { rounded })
}

#[cfg(test)]
mod whole_usd_tests {
    #[test]
    fn an_amount_rounding_to_zero_has_no_sign() {
        assert_eq!(super::whole_usd(-0.0), "0", "a shortfall of minus zero is none");
        assert_eq!(super::whole_usd(-0.3), "0", "a rounding error below half a dollar is none");
        assert_eq!(super::whole_usd(-2.6), "-3", "a real negative amount keeps its sign");
        assert_eq!(super::whole_usd(1054.4), "1054");
    }
}
