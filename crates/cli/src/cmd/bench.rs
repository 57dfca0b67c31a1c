//! `cumulo bench ...`: reproducible benchmarks that print one JSON object.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use cumulo_portfolio::clauses::ActiveClauses;
use cumulo_sched::{Config, Progress, Scheduler, verify_plan};
use cumulo_synth::{FleetConfig, Mix, QueueConfig, fleet_totals};
use serde::Serialize;

use crate::output::{Format, print_json, table};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Schedule a synthetic (simulated) fleet and queue and print throughput and decision latency
    Sched(SchedArgs),
    /// Submit jobs to a running server over HTTP and print jobs/s and request latency (p50, p99)
    Submit(super::bench_submit::BenchSubmitArgs),
    /// Dispatch held attempts to a live slurmrestd and time one observe of all of them
    Slurm(super::bench_slurm::BenchSlurmArgs),
    /// Meter attempt-nodes for a day (records written) and time a streamed FOCUS export of a store
    Usage(super::bench_usage::BenchUsageArgs),
}

#[derive(clap::Args)]
pub struct SchedArgs {
    /// GPUs in the synthetic fleet (GB200/GB300 NVL72 racks, H100/H200/B200 8-GPU nodes)
    #[arg(long, default_value_t = 500_000)]
    pub gpus: u64,
    /// vCPUs of CPU-only nodes in the synthetic fleet
    #[arg(long, default_value_t = 10_000_000)]
    pub vcpus: u64,
    /// Queued jobs
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: usize,
    /// Queue mix: sandbox (1-4 vCPU tasks), gang (8-4,608 GPU training), mixed
    #[arg(long, default_value = "mixed", value_parser = parse_mix)]
    pub mix: Mix,
    /// Seed for the fleet and the queue
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Re-check the plan with the independent verifier afterwards (not timed)
    #[arg(long)]
    pub verify: bool,
    /// Price pools with a portfolio and bind jobs by its clauses, as the server's reconcile loop does
    /// (`demo` for the built-in illustrative one, or a portfolio FILE): contract pools are held
    /// under the portfolio's contract of their provider and GPU model, burnt at 70% utilisation
    #[arg(long, value_name = "demo|FILE")]
    pub portfolio: Option<String>,
    /// The instant contracts are judged at with --portfolio (2026-12-31 or RFC 3339; default now)
    #[arg(long, value_name = "TIME", requires = "portfolio")]
    pub at: Option<String>,
    /// Give three jobs in four an expected run time (`duration_s`, 10 minutes to 8 hours, from a
    /// hash of the job id), so that waiting gangs reserve and the rest backfill around them
    #[arg(long)]
    pub durations: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
}

/// A run time for three jobs in four, 10 minutes to 8 hours in 10-minute steps, drawn from a
/// hash of the id (the synthetic queue itself states none).
fn synthetic_duration(id: u64) -> Option<u64> {
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (!h.is_multiple_of(4)).then(|| 600 * (1 + (h / 4) % 48))
}

fn parse_mix(text: &str) -> Result<Mix, String> {
    text.parse::<Mix>().map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct SchedReport {
    bench: &'static str,
    fleet: &'static str,
    mix: String,
    seed: u64,
    jobs: usize,
    placed: usize,
    pending: usize,
    preemptions: usize,
    pending_by_reason: BTreeMap<&'static str, usize>,
    fleet_gpus: u64,
    fleet_vcpus: u64,
    fleet_cpu_node_vcpus: u64,
    fleet_nodes: u64,
    fleet_pools: usize,
    placed_gpus: u64,
    placed_vcpus: f64,
    nvlink_racks: usize,
    nvlink_racks_whole_free_after: usize,
    placements_per_sec: f64,
    placements_per_cpu_sec: Option<f64>,
    placements_per_placing_sec: f64,
    decisions_per_sec: f64,
    p50_decision_us: f64,
    p99_decision_us: f64,
    max_decision_us: f64,
    decision_timing: &'static str,
    build_s: f64,
    index_s: f64,
    prepare_s: f64,
    schedule_s: f64,
    schedule_cpu_s: Option<f64>,
    backlog_s: f64,
    wall_s: f64,
    peak_rss_bytes: u64,
    verified: Option<bool>,
    /// With --portfolio: what contract-aware deciding added to the pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    contracts: Option<ContractsReport>,
    /// index_s + schedule_s, plus contracts_s with --portfolio: one whole scheduling pass.
    pass_s: f64,
    /// The same pass in CPU time of the scheduling thread (apart from time spent waiting for a
    /// core on a shared machine).
    pass_cpu_s: Option<f64>,
}

#[derive(Serialize)]
struct ContractsReport {
    portfolio: String,
    illustrative: bool,
    at: String,
    /// Contract pools held under a portfolio contract (the rest keep their synthetic price).
    contract_pools_priced: usize,
    pools: usize,
    /// Queue entries a clause narrowed, and entries it holds back (pending `contract_clause`);
    /// counted after the pass, untimed.
    jobs_narrowed: usize,
    jobs_held: usize,
    /// Time to price every pool (`pricing::price_pools`). Binding the clauses is part of the
    /// pass: the core narrows each (shape, regime) while it interns the queue (in `prepare_s`).
    pricing_s: f64,
    /// pricing_s in CPU time of the thread.
    pricing_cpu_s: Option<f64>,
}

/// Peak resident set size of this process (VmHWM), in bytes; 0 where /proc is unavailable.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time this thread has run, in nanoseconds (first field of /proc/thread-self/schedstat):
/// on a shared machine it shows the work done apart from time spent waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// CPU seconds this thread has run since `start` (a [`thread_cpu_ns`] reading).
fn cpu_s_since(start: Option<u64>) -> Option<f64> {
    start.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a) as f64 / 1e9)
}

fn percentile_us(sorted_ns: &[u32], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ns.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted_ns[i]) / 1000.0
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Sched(a) => sched(a),
        BenchCommand::Submit(a) => super::bench_submit::run(a),
        BenchCommand::Slurm(a) => super::bench_slurm::run(a),
        BenchCommand::Usage(a) => super::bench_usage::run(a),
    }
}

fn sched(args: SchedArgs) -> anyhow::Result<()> {
    let wall = Instant::now();
    let fleet_config = FleetConfig { gpus: args.gpus, vcpus: args.vcpus, ..FleetConfig::default() };
    let mut snapshot = cumulo_synth::fleet(&fleet_config, args.seed);
    snapshot.tenants = cumulo_synth::tenant_policies();
    let mut queue =
        cumulo_synth::queue(&QueueConfig { jobs: args.jobs, mix: args.mix, ..QueueConfig::default() }, args.seed);
    if args.durations {
        for job in &mut queue {
            job.duration_s = synthetic_duration(job.id.0);
        }
    }
    let build_s = wall.elapsed().as_secs_f64();
    let portfolio =
        args.portfolio.as_deref().map(|name| super::portfolio::load(Some(std::path::Path::new(name)))).transpose()?;
    let at = super::portfolio::time_arg(args.at.as_deref())?;
    let priced = portfolio.as_ref().map(|p| price_contract_pools(p, at, &mut snapshot));
    // Without a portfolio no clause binds: the same call the server makes then.
    let clauses = ActiveClauses::at(portfolio.as_ref(), at);
    let now = queue.first().map_or(0, |j| j.submitted_at);

    let t = Instant::now();
    let index_cpu_start = thread_cpu_ns();
    let scheduler = Scheduler::new(&snapshot, Config::default()).context("synthetic snapshot is inconsistent")?;
    let index_s = t.elapsed().as_secs_f64();
    let index_cpu_s = cpu_s_since(index_cpu_start);

    let mut decision_ns: Vec<(u32, u32)> = Vec::with_capacity(queue.len());
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut last = start;
    let mut prepare_s = 0.0;
    // one pass, as the server's `schedule_narrowed` makes it (nothing is kept for a next pass)
    let plan = scheduler.schedule_once_narrowed_observed(&queue, now, &clauses, |progress| {
        let now = Instant::now();
        match progress {
            Progress::Ordered => prepare_s = now.duration_since(start).as_secs_f64(),
            Progress::Decided(i) => {
                decision_ns.push((i as u32, now.duration_since(last).as_nanos().min(u128::from(u32::MAX)) as u32))
            }
        }
        last = now;
    });
    let schedule_s = start.elapsed().as_secs_f64();
    let schedule_cpu_s = cpu_s_since(cpu_start);
    let pricing_cpu_s = match &priced {
        Some(p) => p.pricing_cpu_s,
        None => Some(0.0),
    };
    let pass_cpu_s = index_cpu_s.zip(schedule_cpu_s).zip(pricing_cpu_s).map(|((i, s), c)| i + s + c);
    let contracts = portfolio.as_ref().zip(priced).map(|(p, priced)| {
        let counted = count_clause_entries(&clauses, now, &queue, &plan);
        ContractsReport {
            portfolio: p.name.clone(),
            illustrative: p.illustrative,
            at: at.to_rfc3339(),
            contract_pools_priced: priced.contract_pools_priced,
            pools: snapshot.pools.len(),
            jobs_narrowed: counted.narrowed,
            jobs_held: counted.held,
            pricing_s: priced.pricing_s,
            pricing_cpu_s: priced.pricing_cpu_s,
        }
    });

    // Time spent in decisions that ended in a placement (a gang queue far larger than the fleet
    // is mostly quick "pending" decisions; this separates the placing work).
    let placed_jobs: std::collections::HashSet<(u64, u32)> =
        plan.placements.iter().map(|p| (p.job.0, p.replica)).collect();
    let placing_ns: u64 = decision_ns
        .iter()
        .filter(|(i, _)| placed_jobs.contains(&(queue[*i as usize].id.0, queue[*i as usize].replica)))
        .map(|(_, ns)| u64::from(*ns))
        .sum();
    let decision_ns: Vec<u32> = decision_ns.into_iter().map(|(_, ns)| ns).collect();

    let mut sorted = decision_ns;
    sorted.sort_unstable();
    let verified = if args.verify {
        Some(verify_plan(&snapshot, &queue, &plan).map(|()| true).context("plan failed verification")?)
    } else {
        None
    };
    let (fleet_gpus, fleet_vcpus, fleet_nodes) = fleet_totals(&snapshot);
    let mut pending_by_reason = BTreeMap::new();
    for p in &plan.pending {
        *pending_by_reason.entry(p.reason.code()).or_insert(0) += 1;
    }
    let placed_gpus = plan.placements.iter().flat_map(|p| &p.nodes).map(|a| a.gpus.milli()).sum::<u64>() / 1000;
    let placed_vcpus =
        plan.placements.iter().flat_map(|p| &p.nodes).map(|a| u64::from(a.cpus_milli)).sum::<u64>() as f64 / 1000.0;
    // Fragmentation: multi-node NVLink domains (NVL72 racks) that nothing placed or running touches.
    let mut racks = std::collections::BTreeSet::new();
    for p in snapshot.pools.iter().filter(|p| p.node_type.nvlink_domain_nodes > 1) {
        racks.extend(p.nodes.iter().map(|n| (p.id, n.nvlink_domain)));
    }
    let nvlink_racks = racks.len();
    let pools: std::collections::HashMap<_, _> = snapshot.pools.iter().map(|p| (p.id, p)).collect();
    let used =
        plan.placements.iter().map(|p| (p.pool, &p.nodes)).chain(snapshot.running.iter().map(|r| (r.pool, &r.nodes)));
    for (pool, nodes) in used {
        for a in nodes {
            racks.remove(&(pool, pools[&pool].nodes[a.node as usize].nvlink_domain));
        }
    }
    let report = SchedReport {
        bench: "sched",
        fleet: "simulated (cumulo-synth)",
        mix: args.mix.to_string(),
        seed: args.seed,
        jobs: queue.len(),
        placed: plan.placements.len(),
        pending: plan.pending.len(),
        preemptions: plan.preemptions.len(),
        pending_by_reason,
        fleet_gpus,
        fleet_vcpus,
        fleet_cpu_node_vcpus: snapshot
            .pools
            .iter()
            .filter(|p| p.node_type.gpus == 0)
            .map(|p| p.nodes.len() as u64 * u64::from(p.node_type.vcpus))
            .sum(),
        fleet_nodes,
        fleet_pools: snapshot.pools.len(),
        placed_gpus,
        placed_vcpus,
        nvlink_racks,
        nvlink_racks_whole_free_after: racks.len(),
        placements_per_sec: plan.placements.len() as f64 / schedule_s,
        placements_per_cpu_sec: schedule_cpu_s.map(|c| plan.placements.len() as f64 / c),
        placements_per_placing_sec: plan.placements.len() as f64 / (placing_ns.max(1) as f64 / 1e9),
        decisions_per_sec: queue.len() as f64 / schedule_s,
        p50_decision_us: percentile_us(&sorted, 0.50),
        p99_decision_us: percentile_us(&sorted, 0.99),
        max_decision_us: sorted.last().map_or(0.0, |&ns| f64::from(ns) / 1000.0),
        decision_timing: "every decision timed with Instant between consecutive decisions (includes ~20-40 ns of timer overhead); prepare_s (interning and ordering the queue) is part of schedule_s but of no decision; placements_per_sec = placed / schedule_s (wall, whole pass including pending decisions); placements_per_cpu_sec = placed / CPU time of the scheduling thread; placements_per_placing_sec = placed / summed time of the decisions that placed a job",
        build_s,
        index_s,
        prepare_s,
        schedule_s,
        schedule_cpu_s,
        backlog_s: index_s + schedule_s,
        wall_s: wall.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        verified,
        pass_s: index_s + schedule_s + contracts.as_ref().map_or(0.0, |c| c.pricing_s),
        pass_cpu_s,
        contracts,
    };
    match args.output {
        Format::Json => print_json(&report),
        Format::Table => {
            let mut t = table(["metric", "value"]);
            let value = serde_json::to_value(&report)?;
            for (k, v) in value.as_object().into_iter().flatten() {
                t.add_row([k.clone(), v.to_string()]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

/// What pricing the snapshot's pools with a portfolio took.
struct Priced {
    contract_pools_priced: usize,
    pricing_s: f64,
    pricing_cpu_s: Option<f64>,
}

/// Prices the snapshot's pools with `portfolio` at `at`, through the function the reconcile loop
/// calls (`pricing::price_pools`), and times it. A contract pool is held under the first contract
/// of its provider with a node type of the same GPU model (mapping them is set-up, not timed);
/// the others keep their synthetic price.
fn price_contract_pools(
    portfolio: &cumulo_portfolio::Portfolio,
    at: chrono::DateTime<chrono::Utc>,
    snapshot: &mut cumulo_sched::Snapshot,
) -> Priced {
    use cumulo_portfolio::pricing::{PricingConfig, Terms, price_pools};
    use cumulo_portfolio::{Forecast, Usage};
    use cumulo_types::CapacityKind;

    let mut contract_pools_priced = 0;
    let terms: Vec<Terms> = snapshot
        .pools
        .iter()
        .map(|pool| match pool.capacity {
            CapacityKind::OnDemand => Terms::OnDemand { list: pool.price_per_node_hour },
            CapacityKind::Spot => Terms::Spot { price: pool.price_per_node_hour },
            CapacityKind::Contract => {
                let held = portfolio.contracts.iter().filter(|c| c.provider.as_str() == pool.provider).find_map(|c| {
                    c.rates
                        .iter()
                        .find(|r| portfolio.node_type(&r.node_type).is_some_and(|n| n.gpu == pool.node_type.gpu))
                        .map(|r| (c.id.clone(), r.node_type.clone()))
                });
                contract_pools_priced += usize::from(held.is_some());
                let (contract, node_type) = held.unwrap_or_default();
                Terms::Contract { contract, node_type }
            }
        })
        .collect();
    let forecast = Forecast::Utilisation { bps: 7000 };
    let t = Instant::now();
    let cpu_start = thread_cpu_ns();
    let usage = Usage::at(portfolio, &forecast, at);
    price_pools(snapshot, &terms, portfolio, &usage, at, &PricingConfig::default());
    Priced { contract_pools_priced, pricing_s: t.elapsed().as_secs_f64(), pricing_cpu_s: cpu_s_since(cpu_start) }
}

/// Queue entries a clause narrowed, and entries it held back.
struct ClauseEntries {
    narrowed: usize,
    held: usize,
}

/// Counts, after the pass, the entries the clauses touched: those the plan left pending with
/// `contract_clause` were held, the other entries with clause words were narrowed.
fn count_clause_entries(
    clauses: &cumulo_portfolio::clauses::ActiveClauses<'_>,
    now: u64,
    queue: &[cumulo_sched::QueuedJob],
    plan: &cumulo_sched::Plan,
) -> ClauseEntries {
    let held = plan.pending.iter().filter(|p| p.reason == cumulo_sched::PendingReason::ContractClause).count();
    let mut notes = cumulo_portfolio::clauses::ClauseNotes::new(clauses, now);
    let touched = queue.iter().filter(|q| notes.words(q).is_some()).count();
    ClauseEntries { narrowed: touched.saturating_sub(held), held }
}
