//! A whole simulation: load the scenario's workload and fleet, run every policy on the same
//! input, and put the results side by side.

use std::path::Path;

use serde::Serialize;

use crate::Error;
use crate::engine::{self, Progress, RunInput};
use crate::fleet::Fleet;
use crate::generator::{ArrivalRate, Generator, JobStream};
use crate::report::PolicyReport;
use crate::scenario::{DAY, PolicyName, Scenario, SourceSpec};
use crate::speed::SpeedRow;
use crate::trace::{alibaba, azure, gavel};
use crate::transform;
use crate::workload::{NO_NEEDS, SkippedRow, TraceJob, Workload};

/// The report of a run, every policy included. Deterministic: the same scenario gives the same
/// report, byte for byte (no wall-clock figures in it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always true: nothing here ran on real capacity.
    pub simulated: bool,
    /// True when capacity came from an illustrative (made-up) portfolio such as the demo; the
    /// description then says so too.
    pub illustrative: bool,
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    /// Jobs simulated (arrived) per policy run.
    pub jobs: u64,
    pub fleet_gpus: u64,
    pub sample_s: u64,
    pub skipped_rows: Vec<SkippedRow>,
    /// Headline numbers, one row per policy.
    pub comparison: Vec<Headline>,
    pub policies: Vec<PolicyReport>,
}

/// A policy's headline numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Headline {
    pub policy: String,
    pub finished: u64,
    pub mean_jct_s: f64,
    pub p99_jct_s: u64,
    pub mean_queueing_delay_s: f64,
    pub gpu_allocation_ratio: f64,
    pub total_cost_usd: f64,
    pub contract_shortfall_usd: f64,
    pub inference_slo_attainment: f64,
    pub preemptions: u64,
    pub gpu_hours_lost_to_failures: f64,
}

impl Headline {
    fn of(r: &PolicyReport) -> Headline {
        let all = r.jct_s.get("all").cloned().unwrap_or_default();
        Headline {
            policy: r.policy.clone(),
            finished: r.finished,
            mean_jct_s: all.mean_s,
            p99_jct_s: all.p99_s,
            mean_queueing_delay_s: r.queueing_delay_s.get("all").map_or(0.0, |d| d.mean_s),
            gpu_allocation_ratio: r.gpu_allocation.mean_ratio,
            total_cost_usd: r.cost.total_usd,
            contract_shortfall_usd: (r.cost.by_contract.values().map(|c| c.shortfall_usd).sum::<f64>() * 100.0).round()
                / 100.0,
            inference_slo_attainment: r.inference.slo_attainment,
            preemptions: r.preemptions,
            gpu_hours_lost_to_failures: r.failures.gpu_hours_lost,
        }
    }
}

/// The scenario's jobs: all in memory (traces, transforms), or one generator streamed lazily.
pub enum Jobs {
    Loaded(Workload),
    Streamed {
        generator: crate::generator::Generator,
        seed: u64,
        /// The arrival rate when the generator follows the commitments.
        rate: Option<ArrivalRate>,
        speeds: Vec<SpeedRow>,
        tenants: Vec<String>,
    },
}

/// A generator's arrival rate when it follows the portfolio's commitments (`None`: `jobs`).
fn generator_rate(scenario: &Scenario, g: &Generator) -> Result<Option<ArrivalRate>, Error> {
    let Some(follow) = &g.follow_commitments else { return Ok(None) };
    let Some(portfolio) = crate::fleet::load_portfolio(&scenario.fleet)? else {
        return Err(Error::invalid(
            "generator.follow_commitments",
            "without fleet.portfolio",
            "a fleet from a portfolio (`fleet.portfolio`), whose commitments the demand follows",
        ));
    };
    let start = chrono::NaiveDate::parse_from_str(&scenario.start_date, "%Y-%m-%d")
        .map_err(|_| Error::invalid("start_date", &scenario.start_date, "a date such as 2026-01-01"))?;
    Ok(Some(crate::term::arrival_rate(g, follow, &portfolio, start)))
}

fn stream_of(g: &Generator, seed: u64, rate: &Option<ArrivalRate>) -> JobStream {
    match rate {
        Some(rate) => g.stream_at(seed, rate.clone()),
        None => g.stream(seed),
    }
}

/// Loads (or prepares to stream) the scenario's workload; `fleet_gpus` is what transforms that
/// size the workload to the fleet see.
pub fn load_jobs(scenario: &Scenario, fleet_gpus: u64) -> Result<Jobs, Error> {
    let spec = &scenario.workload;
    if let [SourceSpec::Generator(g)] = spec.sources.as_slice()
        && spec.transforms.is_empty()
    {
        g.check()?;
        return Ok(Jobs::Streamed {
            generator: g.clone(),
            seed: scenario.seed,
            rate: generator_rate(scenario, g)?,
            speeds: g.speeds(),
            tenants: g.tenants(),
        });
    }
    let mut all = Workload::default();
    for source in &spec.sources {
        let w = match source {
            SourceSpec::Gavel { trace, throughputs } => {
                let t = gavel::Throughputs::load(Path::new(throughputs))?;
                gavel::import(Path::new(trace), &t, spec.on_bad_row)?
            }
            SourceSpec::AlibabaPods { pods } => {
                alibaba::import_pods(Path::new(pods), &alibaba::GpuNames::default(), spec.on_bad_row)?
            }
            SourceSpec::AlibabaDlrm { instances } => alibaba::import_dlrm(Path::new(instances), spec.on_bad_row)?,
            SourceSpec::AzureLlm { trace, autoscale } => azure::import(Path::new(trace), autoscale, spec.on_bad_row)?.0,
            SourceSpec::Generator(g) => {
                g.check()?;
                Workload {
                    jobs: stream_of(g, scenario.seed, &generator_rate(scenario, g)?).collect(),
                    speeds: g.speeds(),
                    tenants: g.tenants(),
                    skipped: Vec::new(),
                    needs: Vec::new(),
                }
            }
            SourceSpec::JobFiles { files, every_s, default_duration_s } => {
                crate::jobfiles::import(files, *every_s, *default_duration_s)?
            }
        };
        merge(&mut all, w);
    }
    all.sort_by_arrival();
    let context = transform::Context { fleet_gpus, seed: scenario.seed };
    for t in &spec.transforms {
        transform::apply(&mut all, t, &context)?;
    }
    Ok(Jobs::Loaded(all))
}

fn merge(into: &mut Workload, w: Workload) {
    let type_base = into.speeds.len() as u16;
    let needs_map: Vec<u16> = w.needs.into_iter().map(|n| into.needs_index(n)).collect();
    let tenant_map: Vec<u32> = w.tenants.iter().map(|t| into.tenant(t)).collect();
    into.speeds.extend(w.speeds);
    into.skipped.extend(w.skipped);
    into.jobs.extend(w.jobs.into_iter().map(|mut j| {
        j.job_type += type_base;
        if j.needs != NO_NEEDS {
            j.needs = needs_map.get(usize::from(j.needs) - 1).copied().unwrap_or(NO_NEEDS);
        }
        j.tenant = tenant_map.get(j.tenant as usize).copied().unwrap_or(j.tenant);
        j
    }));
}

/// Runs every policy of the scenario. `progress` is called with the policy and the simulated
/// progress now and then.
pub fn simulate(scenario: &Scenario, progress: &mut dyn FnMut(PolicyName, Progress)) -> Result<Report, Error> {
    let fleet = Fleet::for_scenario(scenario)?;
    let jobs = load_jobs(scenario, fleet.total_gpus())?;
    let horizon_s = scenario.horizon_days.map(|d| (d * DAY).round() as u64);
    let (speeds, tenants, skipped, natural_span) = match &jobs {
        Jobs::Loaded(w) => {
            let span = w.jobs.iter().map(|j| j.arrival_s.saturating_add(j.work_s.min(365 * 86_400))).max().unwrap_or(0);
            (w.speeds.clone(), w.tenants.clone(), w.skipped.clone(), span)
        }
        Jobs::Streamed { generator, speeds, tenants, .. } => {
            (speeds.clone(), tenants.clone(), Vec::new(), (generator.horizon_days * DAY) as u64)
        }
    };
    let span_s = horizon_s.unwrap_or(natural_span).max(1);
    let tick = scenario.sim.tick_s;
    let sample_s = scenario.sim.sample_s.unwrap_or_else(|| span_s.div_ceil(400).div_ceil(tick) * tick).max(1);
    // the fgd policy's target workload: the whole workload's classes, known in advance as the
    // paper's evaluation assumes (Cumulo's policy learns its own from arrivals)
    let whole_target = match &jobs {
        Jobs::Loaded(w) => Some(crate::target::of_workload(&w.jobs)),
        Jobs::Streamed { .. } => None,
    };
    let mut reports = Vec::new();
    for policy in &scenario.policies {
        let input = RunInput {
            fleet: &fleet,
            speeds: &speeds,
            tenants: &tenants,
            events: &scenario.events,
            settings: &scenario.sim,
            policy: *policy,
            horizon_s,
            sample_s,
            span_s,
            seed: scenario.seed,
            target: whole_target.as_deref(),
            needs: match &jobs {
                Jobs::Loaded(w) => &w.needs,
                Jobs::Streamed { .. } => &[],
            },
        };
        let mut report_progress = |p: Progress| progress(*policy, p);
        let report = match &jobs {
            Jobs::Loaded(w) => engine::run(&input, &mut w.jobs.iter().cloned(), &mut report_progress)?,
            Jobs::Streamed { generator, seed, rate, .. } => {
                let mut stream: JobStream = stream_of(generator, *seed, rate);
                engine::run(&input, &mut stream, &mut report_progress)?
            }
        };
        reports.push(report);
    }
    Ok(Report {
        simulated: true,
        illustrative: fleet.illustrative,
        scenario: scenario.name.clone(),
        description: if fleet.illustrative && !scenario.description.contains("illustrative") {
            format!("illustrative portfolio (made-up contract figures); {}", scenario.description)
                .trim_end_matches("; ")
                .to_string()
        } else {
            scenario.description.clone()
        },
        seed: scenario.seed,
        jobs: reports.first().map_or(0, |r| r.jobs),
        fleet_gpus: fleet.total_gpus(),
        sample_s,
        skipped_rows: skipped,
        comparison: reports.iter().map(Headline::of).collect(),
        policies: reports,
    })
}

/// Convenience for tests and callers holding jobs already: one policy over a list of jobs.
pub fn run_jobs(input: &RunInput<'_>, jobs: &[TraceJob]) -> Result<PolicyReport, Error> {
    engine::run(input, &mut jobs.iter().cloned(), &mut |_| {})
}
