//! Burn-down maths: each contract's schedule, its consumption against it, and the projected
//! shortfall (committed money paid for nothing) or overrun at term end.
//!
//! The schedule follows delivered capacity, not the calendar: by time `t` a contract is scheduled
//! to have burnt `committed × V(t) / V(end)`, where `V(t)` is the value of the capacity delivered
//! so far, fully used at contract rates. A contract whose capacity is used at the rate that burns
//! the commitment exactly is therefore on schedule at every point of its ramp. A contract without
//! a ramp is scheduled linearly over its term.

use chrono::{DateTime, Utc};
use cumulo_types::Money;
use serde::Serialize;

use crate::clock::start_of;
use crate::{Contract, Forecast, Portfolio};

/// Value of the contract's delivered capacity used fully at contract rates, from the start of
/// its term to `t` (clamped to the term).
pub fn delivered_value(contract: &Contract, t: DateTime<Utc>) -> Money {
    let (start, end) = (contract.term_start(), contract.term_end());
    let t = t.clamp(start, end);
    let mut total = Money::ZERO;
    for step in &contract.ramp {
        let from = start_of(step.date).max(start);
        if t <= from {
            continue;
        }
        let rate = contract.rate(&step.node_type).unwrap_or(Money::ZERO).saturating_mul(i64::from(step.nodes));
        total += rate.mul_div((t - from).num_seconds(), 3600);
    }
    total
}

/// Spend scheduled by `t`: the share of the commitment that delivered value to date represents.
pub fn scheduled(contract: &Contract, t: DateTime<Utc>) -> Money {
    let (start, end) = (contract.term_start(), contract.term_end());
    let total_value = delivered_value(contract, end);
    if total_value.micros() > 0 {
        return contract.committed.mul_div(delivered_value(contract, t).micros(), total_value.micros());
    }
    let t = t.clamp(start, end);
    contract.committed.mul_div((t - start).num_seconds(), (end - start).num_seconds().max(1))
}

/// Where a contract stands against its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    NotStarted,
    /// Within 1% of schedule.
    OnSchedule,
    /// Consumed less than scheduled, by this share of the scheduled amount (basis points).
    Behind {
        bps: u32,
    },
    /// Consumed more than scheduled, by this share (basis points).
    Ahead {
        bps: u32,
    },
    Ended,
}

impl Status {
    /// Tolerance within which a contract counts as on schedule: 1%.
    pub const ON_SCHEDULE_BPS: u32 = 100;

    pub fn of(contract: &Contract, consumed: Money, at: DateTime<Utc>) -> Status {
        if at < contract.term_start() {
            return Status::NotStarted;
        }
        if at >= contract.term_end() {
            return Status::Ended;
        }
        Status::against(consumed, scheduled(contract, at))
    }

    /// How `consumed` stands against the spend `plan` scheduled by the same moment of a running
    /// term (the simulator's contracts schedule their spend their own way and judge it here).
    pub fn against(consumed: Money, plan: Money) -> Status {
        if plan.micros() <= 0 {
            return if consumed.micros() > 0 { Status::Ahead { bps: 10_000 } } else { Status::OnSchedule };
        }
        let diff = consumed - plan;
        let bps =
            (i128::from(diff.micros()).abs() * 10_000 / i128::from(plan.micros())).min(i128::from(u32::MAX)) as u32;
        match (diff.micros().signum(), bps) {
            (_, b) if b < Self::ON_SCHEDULE_BPS => Status::OnSchedule,
            (-1, b) => Status::Behind { bps: b },
            (_, b) => Status::Ahead { bps: b },
        }
    }

    /// `12% behind schedule`, `on schedule`, ...
    pub fn describe(self) -> String {
        match self {
            Status::NotStarted => "not started".to_string(),
            Status::OnSchedule => "on schedule".to_string(),
            Status::Behind { bps } => format!("{}% behind schedule", whole_percent(bps)),
            Status::Ahead { bps } => format!("{}% ahead of schedule", whole_percent(bps)),
            Status::Ended => "term ended".to_string(),
        }
    }
}

/// `12` for 1,234 bps, `5.6` for 560 bps: whole percent from 10%, one decimal below.
fn whole_percent(bps: u32) -> String {
    if bps >= 1000 { format!("{}", (bps + 50) / 100) } else { format!("{}.{}", bps / 100, (bps % 100) / 10) }
}

/// One contract's burn-down line.
#[derive(Clone, Debug, Serialize)]
pub struct ContractBurn {
    pub contract: String,
    pub provider: String,
    pub committed: Money,
    pub term: String,
    /// Nodes and GPUs delivered at `at`.
    pub delivered_nodes: u64,
    pub delivered_gpus: u64,
    /// Spend scheduled by `at`.
    pub scheduled: Money,
    /// Spend consumed by `at` under the forecast.
    pub consumed: Money,
    pub status: Status,
    pub status_text: String,
    /// Spend at term end under the forecast.
    pub projected_consumed: Money,
    /// What will be paid: the larger of the commitment and the sum over periods of the larger of
    /// the period's minimum and its spend.
    pub projected_payable: Money,
    /// Paid for capacity not used: `projected_payable - projected_consumed`.
    pub projected_shortfall: Money,
    /// Spend beyond the commitment: `projected_consumed - committed`, when positive.
    pub projected_overrun: Money,
    /// Periods whose projected spend is under the contract's minimum spend.
    pub periods_under_minimum: u32,
}

/// Burn-down of a whole portfolio at one instant under one forecast.
#[derive(Clone, Debug, Serialize)]
pub struct BurnDown {
    pub portfolio: String,
    pub illustrative: bool,
    pub at: DateTime<Utc>,
    pub forecast: String,
    pub contracts: Vec<ContractBurn>,
}

impl BurnDown {
    pub fn compute(portfolio: &Portfolio, forecast: &Forecast, at: DateTime<Utc>) -> BurnDown {
        let delivered = portfolio.delivered_capacity(at);
        let contracts = portfolio
            .contracts
            .iter()
            .map(|c| {
                let (mut nodes, mut gpus) = (0u64, 0u64);
                for d in delivered.iter().filter(|d| d.contract == c.id) {
                    nodes += u64::from(d.nodes);
                    gpus += u64::from(d.nodes) * u64::from(portfolio.node_type(&d.node_type).map_or(0, |n| n.gpus));
                }
                let consumed = forecast.consumed(c, at);
                let status = Status::of(c, consumed, at);
                let projected_consumed = forecast.consumed(c, c.term_end());
                let (paid_by_period, periods_under_minimum) = period_payments(c, forecast);
                let projected_payable = c.committed.max(paid_by_period).max(projected_consumed);
                ContractBurn {
                    contract: c.id.clone(),
                    provider: c.provider.to_string(),
                    committed: c.committed,
                    term: format!("{}..{}", c.start, c.end),
                    delivered_nodes: nodes,
                    delivered_gpus: gpus,
                    scheduled: scheduled(c, at),
                    consumed,
                    status,
                    status_text: status.describe(),
                    projected_consumed,
                    projected_payable,
                    projected_shortfall: projected_payable - projected_consumed,
                    projected_overrun: (projected_consumed - c.committed).max(Money::ZERO),
                    periods_under_minimum,
                }
            })
            .collect();
        BurnDown {
            portfolio: portfolio.name.clone(),
            illustrative: portfolio.illustrative,
            at,
            forecast: forecast.describe(),
            contracts,
        }
    }
}

/// Sum over the term's periods of max(minimum, spend), and how many periods fall under the
/// minimum. Without a minimum spend it is just the projected spend.
fn period_payments(contract: &Contract, forecast: &Forecast) -> (Money, u32) {
    let Some(min) = &contract.minimum_spend else {
        return (forecast.consumed(contract, contract.term_end()), 0);
    };
    let (mut paid, mut under) = (Money::ZERO, 0);
    let mut from = contract.start;
    let end = contract.term_end();
    while start_of(from) < end {
        let next = from.checked_add_months(chrono::Months::new(min.period.months())).unwrap_or(contract.end);
        let to = start_of(next).min(end);
        let spend = forecast.consumed(contract, to) - forecast.consumed(contract, start_of(from));
        if spend < min.amount {
            under += 1;
        }
        paid += spend.max(min.amount);
        if next <= from {
            break;
        }
        from = next;
    }
    (paid, under)
}
