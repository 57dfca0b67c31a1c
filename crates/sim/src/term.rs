//! A portfolio's whole term, simulated: demand that grows toward the commitments, and what each
//! contract comes to at term end.
//!
//! Demand ([`arrival_rate`]): at time `t` the commitments are burnt exactly on schedule when
//! each contract's delivered GPUs are used at the share `committed / V(end)` (its commitment over
//! the value of all it delivers over the term at contract rates, as
//! `cumulo_portfolio::burndown::scheduled` schedules it). The generator's arrival rate is sized so
//! that the GPUs its jobs hold on average (Little's law: rate × GPU-hours held per job) are
//! `share(t)` times those GPUs. A job's GPU-hours held are its reference (H100) GPU-hours divided
//! by its class's speed on the GPUs the commitments deliver then (inference holds its window
//! whatever the GPU).
//!
//! Books ([`marks`], [`report`]): the engine records every pool's cost and GPU-seconds at marked
//! instants (month starts, each contract's term start and end and minimum-spend period bounds,
//! the run's end). From them, per contract: spend consumed against committed at term end, the
//! payable amount and the periods under the minimum spend (both by `cumulo_portfolio`'s own
//! burn-down rules, fed the simulated consumption as a usage series), the on-demand spend at the
//! contract's provider during its term (overflow), and the expansion option's value if exercised
//! at each month start until its deadline.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use cumulo_portfolio::burndown::delivered_value;
use cumulo_portfolio::clock::start_of;
use cumulo_portfolio::{BurnDown, Forecast, Portfolio, UsageRecord};
use cumulo_types::{CapacityKind, GpuModel, JobKind, Money};
use serde::Serialize;

use crate::fleet::Fleet;
use crate::generator::{ArrivalRate, FollowCommitments, Generator, RateSegment};
use crate::speed::SpeedRow;

/// GPUs per model that, used at contract rates, burn every running commitment on schedule at `at`.
pub fn commitment_gpus(portfolio: &Portfolio, at: DateTime<Utc>) -> BTreeMap<GpuModel, f64> {
    let mut out: BTreeMap<GpuModel, f64> = BTreeMap::new();
    let delivered = portfolio.delivered_capacity(at);
    for c in portfolio.contracts.iter().filter(|c| c.is_active(at)) {
        let value = delivered_value(c, c.term_end());
        if value.micros() <= 0 {
            continue;
        }
        let share = c.committed.micros() as f64 / value.micros() as f64;
        for d in delivered.iter().filter(|d| d.contract == c.id) {
            if let Some(nt) = portfolio.node_type(&d.node_type)
                && let Some(model) = nt.gpu
            {
                *out.entry(model).or_default() += share * f64::from(d.nodes) * f64::from(nt.gpus);
            }
        }
    }
    out
}

/// The arrival rate that makes the generator's demand follow the commitments (see the module
/// doc), in steps of `follow.step_days` from `start` over the generator's horizon.
pub fn arrival_rate(g: &Generator, follow: &FollowCommitments, portfolio: &Portfolio, start: NaiveDate) -> ArrivalRate {
    let horizon_s = (g.horizon_days * 86_400.0).round().max(1.0) as u64;
    let step_s = ((follow.step_days * 86_400.0).round() as u64).max(1);
    let origin = start_of(start);
    let mut segments = Vec::new();
    let mut from_s = 0;
    while from_s < horizon_s {
        let to_s = (from_s + step_s).min(horizon_s);
        let mid_s = from_s + (to_s - from_s) / 2;
        let gpus = commitment_gpus(portfolio, origin + chrono::Duration::seconds(mid_s as i64));
        let total: f64 = gpus.values().sum();
        let share = follow.share_from + (follow.share_to - follow.share_from) * mid_s as f64 / horizon_s as f64;
        let held = g.mean_gpu_hours_per_job(|class| {
            if class.kind == JobKind::Inference {
                return 1.0; // an inference replica holds its window on any GPU
            }
            let speed = SpeedRow::by_flops(&class.name, GpuModel::H100, class.alpha.clamp(0.0, 1.0));
            let usable: Vec<(f64, f64)> = gpus
                .iter()
                .filter(|(m, _)| class.models.is_empty() || class.models.contains(m))
                .map(|(m, n)| (*n, f64::from(speed.on(*m)).max(1e-9)))
                .collect();
            let weight: f64 = usable.iter().map(|(n, _)| n).sum();
            if weight <= 0.0 { 1.0 } else { usable.iter().map(|(n, s)| n / s).sum::<f64>() / weight }
        });
        let jobs_per_s = if held > 0.0 { share * total / held / 3600.0 } else { 0.0 };
        segments.push(RateSegment { from_s, to_s, jobs_per_s });
        from_s = to_s;
    }
    ArrivalRate { segments }
}

/// Seconds from the run's start to `at` (0 before it).
fn offset_s(origin: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    (at - origin).num_seconds().max(0) as u64
}

/// The instants (seconds from the start) at which the engine records its books for the term
/// report, sorted, within `[0, end_s]`; empty for a fleet without a portfolio.
pub fn marks(fleet: &Fleet, end_s: u64) -> Vec<u64> {
    let (Some(portfolio), Some(origin)) = (&fleet.portfolio, fleet.calendar_start) else { return Vec::new() };
    let mut out = vec![0, end_s];
    let mut month = NaiveDate::from_ymd_opt(origin.year(), origin.month(), 1).unwrap_or(origin.date_naive());
    loop {
        month = month.checked_add_months(Months::new(1)).unwrap_or(month);
        let t = offset_s(origin, start_of(month));
        if t >= end_s || t == 0 {
            break;
        }
        out.push(t);
    }
    for c in &portfolio.contracts {
        out.push(offset_s(origin, c.term_start()));
        out.push(offset_s(origin, c.term_end()));
        for (from, to) in periods(c) {
            out.push(offset_s(origin, from));
            out.push(offset_s(origin, to));
        }
    }
    out.retain(|t| *t <= end_s);
    out.sort_unstable();
    out.dedup();
    out
}

/// A contract's minimum-spend periods, counted from its start (the last one cut at term end),
/// as `cumulo_portfolio::burndown` counts them.
fn periods(c: &cumulo_portfolio::Contract) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let Some(min) = &c.minimum_spend else { return Vec::new() };
    let mut out = Vec::new();
    let mut from = c.start;
    let end = c.term_end();
    while start_of(from) < end {
        let next = from.checked_add_months(Months::new(min.period.months())).unwrap_or(c.end);
        out.push((start_of(from), start_of(next).min(end)));
        if next <= from {
            break;
        }
        from = next;
    }
    out
}

/// Every pool's books at one mark.
#[derive(Clone, Debug)]
pub struct Books {
    pub t_s: u64,
    /// Per pool: money accrued so far (contract rate or list price × use).
    pub cost: Vec<Money>,
    /// Per pool: thousandth-GPU-seconds held so far.
    pub gpu_milli_s: Vec<u128>,
}

/// The term report: per contract, what the simulated demand came to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TermReport {
    /// The portfolio's figures are made up (the demo): these results are illustrative.
    pub illustrative: bool,
    /// The simulated window, calendar dates (the end exclusive).
    pub from: String,
    pub to: String,
    /// What these figures approximate, in words.
    pub approximations: Vec<String>,
    /// On-demand GPU spend over the window, all providers.
    pub on_demand_gpu_usd: f64,
    pub contracts: Vec<ContractTerm>,
}

/// One contract over its term.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContractTerm {
    pub contract: String,
    pub provider: String,
    pub term: String,
    /// The whole term lies within the simulated window; otherwise the figures to term end carry
    /// the last simulated interval forward (`cumulo_portfolio::Forecast::Series`).
    pub whole_term_simulated: bool,
    pub committed_usd: f64,
    /// Spend consumed under the contract (contract rates × use) by term end.
    pub consumed_usd: f64,
    pub consumed_share: f64,
    /// What is paid: the commitment, or more where minimums or use exceed it.
    pub payable_usd: f64,
    /// Paid for and not used.
    pub shortfall_usd: f64,
    /// Consumed beyond the commitment.
    pub overrun_usd: f64,
    /// On-demand GPU spend at this contract's provider during its term: work its capacity (and
    /// every other contract's) did not hold.
    pub overflow_on_demand_usd: f64,
    /// Jobs stopped and re-queued when the term ended and its capacity went away.
    pub jobs_moved_at_term_end: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_spend: Option<MinimumSpendTerm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expansion: Option<ExpansionTerm>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MinimumSpendTerm {
    pub period: String,
    pub minimum_usd: f64,
    /// Periods whose spend fell under the minimum (`cumulo_portfolio`'s count).
    pub periods_under: u32,
    pub periods: Vec<PeriodSpend>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodSpend {
    pub from: String,
    pub to: String,
    pub spend_usd: f64,
    pub under_minimum: bool,
    /// False where the period lies (partly) outside the simulated window.
    pub simulated: bool,
}

/// Whether exercising the expansion option pays, and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpansionTerm {
    pub region: String,
    pub node_type: String,
    pub gpus: u64,
    pub until: String,
    pub option_usd_per_gpu_hour: f64,
    /// Some exercise date has a positive net value.
    pub pays: bool,
    /// The exercise date (a month start) with the highest net value, when it pays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_exercise: Option<String>,
    pub best_net_usd: f64,
    /// Per candidate date: on-demand spend the expansion's GPUs would have displaced from then to
    /// term end, less the option's cost over the same time.
    pub candidates: Vec<ExerciseCandidate>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExerciseCandidate {
    pub date: String,
    pub displaced_on_demand_usd: f64,
    pub option_cost_usd: f64,
    pub net_usd: f64,
}

fn usd(m: Money) -> f64 {
    (m.micros() as f64 / 1e4).round() / 100.0
}

/// The statements every term report carries about what it approximates.
pub const APPROXIMATIONS: [&str; 4] = [
    "demand is generated (seeded), sized to the commitment schedule; it is not a forecast",
    "a job's capacity is withdrawn at its contract's term end: the job is stopped and re-queued \
     (training keeps its last checkpoint)",
    "the expansion option is valued without re-simulating: from the exercise date its GPUs \
     displace the simulated on-demand GPU-hours one for one, at the on-demand price paid that \
     month, against the option rate for every hour to term end (take-or-pay)",
    "on-demand overflow is attributed to a contract by provider: on-demand GPU spend at the \
     contract's provider during its term",
];

/// What [`report`] needs besides the books.
pub struct TermInput<'a> {
    pub fleet: &'a Fleet,
    pub books: &'a [Books],
    /// Per fleet contract: jobs stopped at its term end.
    pub moved_at_term_end: &'a [u64],
}

/// The term report of a run whose fleet came from a portfolio; `None` otherwise.
pub fn report(input: &TermInput<'_>) -> Option<TermReport> {
    let fleet = input.fleet;
    let (portfolio, origin) = (fleet.portfolio.as_ref()?, fleet.calendar_start?);
    let end_s = input.books.last()?.t_s;
    let at = |t_s: u64| origin + chrono::Duration::seconds(t_s as i64);
    let window_end = at(end_s);
    let is_on_demand_gpu =
        |p: usize| fleet.pools[p].pool.capacity == CapacityKind::OnDemand && fleet.pools[p].gpu().is_some();
    let spend_between = |pools: &dyn Fn(usize) -> bool, a: &Books, b: &Books| -> Money {
        (0..fleet.pools.len()).filter(|p| pools(*p)).map(|p| b.cost[p] - a.cost[p]).sum()
    };
    // the simulated consumption as a usage series, one record per interval between marks
    let mut records = Vec::new();
    for (c, contract) in fleet.contracts.iter().enumerate() {
        let mine = |p: usize| fleet.pools[p].contract == Some(c);
        for w in input.books.windows(2) {
            if w[1].t_s > w[0].t_s {
                records.push(UsageRecord {
                    contract: contract.name.clone(),
                    start: at(w[0].t_s),
                    end: at(w[1].t_s),
                    spend: spend_between(&mine, &w[0], &w[1]),
                });
            }
        }
    }
    records.sort_by(|a, b| (&a.contract, a.end).cmp(&(&b.contract, b.end)));
    let forecast = Forecast::Series(records);
    let burn = BurnDown::compute(portfolio, &forecast, window_end);
    let book_at = |t: DateTime<Utc>| -> Option<&Books> {
        let t_s = offset_s(origin, t);
        input.books.iter().find(|b| b.t_s == t_s && t >= origin)
    };
    let first = &input.books[0];
    let last = input.books.last()?;
    let mut contracts = Vec::new();
    for (c, contract) in fleet.contracts.iter().enumerate() {
        let Some(schedule) = &contract.schedule else { continue };
        let pc = &schedule.contract;
        let Some(line) = burn.contracts.iter().find(|l| l.contract == pc.id) else { continue };
        let whole = pc.term_start() >= origin && pc.term_end() <= window_end;
        let from = book_at(pc.term_start()).unwrap_or(first);
        let to = book_at(pc.term_end()).unwrap_or(last);
        let provider_od = |p: usize| is_on_demand_gpu(p) && fleet.pools[p].pool.provider == contract.provider;
        let minimum_spend = pc.minimum_spend.as_ref().map(|m| MinimumSpendTerm {
            period: format!("{:?}", m.period).to_lowercase(),
            minimum_usd: usd(m.amount),
            periods_under: line.periods_under_minimum,
            periods: periods(pc)
                .into_iter()
                .map(|(a, b)| {
                    let spend = forecast.consumed(pc, b) - forecast.consumed(pc, a);
                    PeriodSpend {
                        from: a.date_naive().to_string(),
                        to: b.date_naive().to_string(),
                        spend_usd: usd(spend),
                        under_minimum: spend < m.amount,
                        simulated: a >= origin && b <= window_end,
                    }
                })
                .collect(),
        });
        let committed = pc.committed;
        contracts.push(ContractTerm {
            contract: pc.id.clone(),
            provider: contract.provider.clone(),
            term: format!("{}..{}", pc.start, pc.end),
            whole_term_simulated: whole,
            committed_usd: usd(committed),
            consumed_usd: usd(line.projected_consumed),
            consumed_share: if committed.micros() > 0 {
                (line.projected_consumed.micros() as f64 / committed.micros() as f64 * 10_000.0).round() / 10_000.0
            } else {
                0.0
            },
            payable_usd: usd(line.projected_payable),
            shortfall_usd: usd(line.projected_shortfall),
            overrun_usd: usd(line.projected_overrun),
            overflow_on_demand_usd: usd(spend_between(&provider_od, from, to)),
            jobs_moved_at_term_end: input.moved_at_term_end.get(c).copied().unwrap_or(0),
            minimum_spend,
            expansion: pc.expansion.as_ref().and_then(|e| expansion(input, portfolio, pc, e, &is_on_demand_gpu)),
        });
    }
    Some(TermReport {
        illustrative: portfolio.illustrative,
        from: origin.date_naive().to_string(),
        to: window_end.date_naive().to_string(),
        approximations: APPROXIMATIONS.iter().map(|s| s.to_string()).collect(),
        on_demand_gpu_usd: usd(spend_between(&is_on_demand_gpu, first, last)),
        contracts,
    })
}

/// The expansion option's value if exercised at each month start from the term's (or run's)
/// start until its deadline: the on-demand spend its GPUs would displace, month by month, to
/// term end, less its cost.
fn expansion(
    input: &TermInput<'_>,
    portfolio: &Portfolio,
    contract: &cumulo_portfolio::Contract,
    e: &cumulo_portfolio::Expansion,
    is_on_demand_gpu: &dyn Fn(usize) -> bool,
) -> Option<ExpansionTerm> {
    let fleet = input.fleet;
    let origin = fleet.calendar_start?;
    let gpus_per_node = portfolio.node_type(&e.node_type).map_or(0, |n| n.gpus);
    let gpus = u64::from(e.nodes) * u64::from(gpus_per_node);
    let per_gpu_hour =
        if gpus_per_node > 0 { e.per_node_hour.mul_div(1, i64::from(gpus_per_node)) } else { e.per_node_hour };
    // the simulated part of the term: beyond the window nothing is known
    let term_end_s = offset_s(origin, contract.term_end()).min(input.books.last()?.t_s);
    // per interval between marks within the term: (from, to, on-demand spend, on-demand GPU-s)
    let intervals: Vec<(u64, u64, Money, f64)> = input
        .books
        .windows(2)
        .filter(|w| w[1].t_s > w[0].t_s && w[1].t_s <= term_end_s)
        .map(|w| {
            let pools = (0..fleet.pools.len()).filter(|p| is_on_demand_gpu(*p));
            let (mut spend, mut gpu_s) = (Money::ZERO, 0.0);
            for p in pools {
                spend += w[1].cost[p] - w[0].cost[p];
                gpu_s += (w[1].gpu_milli_s[p] - w[0].gpu_milli_s[p]) as f64 / 1000.0;
            }
            (w[0].t_s, w[1].t_s, spend, gpu_s)
        })
        .collect();
    let deadline = start_of(e.until.succ_opt()?);
    let mut candidates = Vec::new();
    let mut month = NaiveDate::from_ymd_opt(origin.year(), origin.month(), 1)?;
    loop {
        let when = start_of(month);
        if when >= deadline || when >= contract.term_end() {
            break;
        }
        if when >= origin && when >= contract.term_start() {
            let from_s = offset_s(origin, when);
            let mut displaced = Money::ZERO;
            for (a, b, spend, gpu_s) in intervals.iter().filter(|i| i.0 >= from_s) {
                let capacity_s = gpus as f64 * (b - a) as f64;
                let share = if *gpu_s > 0.0 { (capacity_s / gpu_s).min(1.0) } else { 0.0 };
                displaced += Money::from_micros((spend.micros() as f64 * share).round() as i64);
            }
            let hours_s = term_end_s.saturating_sub(from_s) as i64;
            let cost = per_gpu_hour.saturating_mul(gpus as i64).mul_div(hours_s, 3600);
            candidates.push(ExerciseCandidate {
                date: month.to_string(),
                displaced_on_demand_usd: usd(displaced),
                option_cost_usd: usd(cost),
                net_usd: usd(displaced - cost),
            });
        }
        month = month.checked_add_months(Months::new(1))?;
    }
    let best = candidates.iter().max_by(|a, b| a.net_usd.total_cmp(&b.net_usd).then(b.date.cmp(&a.date)));
    let pays = best.is_some_and(|b| b.net_usd > 0.0);
    Some(ExpansionTerm {
        region: e.region.clone(),
        node_type: e.node_type.clone(),
        gpus,
        until: e.until.to_string(),
        option_usd_per_gpu_hour: usd(per_gpu_hour),
        pays,
        best_exercise: best.filter(|_| pays).map(|b| b.date.clone()),
        best_net_usd: best.map_or(0.0, |b| b.net_usd),
        candidates,
    })
}
