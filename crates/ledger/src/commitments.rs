//! Commitments as FinOps tools read them: per contract and month, the amortised commitment (the
//! take-or-pay total spread evenly over the term's seconds), what metered usage used of it, what was
//! left unused, and idle committed capacity by region and node type (node-time the ramp delivered
//! that no attempt used).
//!
//! Amortisation telescopes like rating does: the share of `[a, b)` is `A(b) − A(a)` with
//! `A(t) = ⌊committed × (t − term start) / term length⌋`, so the months of a term add up to the
//! commitment exactly.

use std::collections::BTreeMap;

use cumulo_portfolio::{Contract, Portfolio};
use cumulo_types::{Money, Provider};
use serde::Serialize;

use crate::meter::UsageRecord;
use crate::price::cost_between;
use crate::time::{Month, Timestamp, at, secs};

/// One contract over one month (clipped to its term and to the window asked for).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitmentPeriod {
    pub contract: String,
    pub provider: Provider,
    pub month: Month,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The commitment's share of `[start, end)`.
    pub amortized: Money,
    /// Metered cost under the contract in `[start, end)`.
    pub used: Money,
    /// `amortized − used` when positive: committed money no work used.
    pub unused: Money,
    /// `used − amortized` when positive: spend ahead of the even schedule.
    pub ahead: Money,
    /// Idle committed capacity by region and node type.
    pub idle: Vec<IdleCapacity>,
}

/// Delivered committed node-time of one region and node type against what attempts used of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdleCapacity {
    pub region: String,
    pub node_type: String,
    pub delivered_node_seconds: i64,
    pub used_node_seconds: i64,
    /// `delivered − used`, never negative.
    pub idle_node_seconds: i64,
    /// The idle node-time at the contract's rate for the node type (zero without a rate).
    pub idle_value: Money,
}

/// Usage under contracts, gathered one record at a time (an export can stream its records through
/// it and emit the commitment rows at the end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitmentUse {
    cost: BTreeMap<(String, Month), Money>,
    node_seconds: BTreeMap<(String, Month, String, String), i64>,
}

impl CommitmentUse {
    pub fn new() -> CommitmentUse {
        CommitmentUse::default()
    }

    /// Counts a record (already clipped to the window; records never cross a month).
    pub fn add(&mut self, record: &UsageRecord) {
        let Some(contract) = &record.contract else { return };
        let month = Month::containing(record.start);
        *self.cost.entry((contract.clone(), month)).or_default() += record.cost;
        *self
            .node_seconds
            .entry((contract.clone(), month, record.region.clone(), record.node_type.clone()))
            .or_default() += record.seconds();
    }

    /// Every contract of `portfolio`, month by month over `[since, until)` within its term.
    pub fn periods(&self, portfolio: &Portfolio, since: Timestamp, until: Timestamp) -> Vec<CommitmentPeriod> {
        let mut out = Vec::new();
        for contract in &portfolio.contracts {
            let (from, to) = (secs(since).max(secs(contract.term_start())), secs(until).min(secs(contract.term_end())));
            let mut month = Month::containing(at(from));
            while from < to && secs(month.start()) < to {
                let (a, b) = (from.max(secs(month.start())), to.min(secs(month.end())));
                if a < b {
                    out.push(self.period(contract, month, a, b));
                }
                month = month.next();
            }
        }
        out
    }

    fn period(&self, contract: &Contract, month: Month, a: i64, b: i64) -> CommitmentPeriod {
        let amortized = amortized(contract, a, b);
        let used = self.cost.get(&(contract.id.clone(), month)).copied().unwrap_or_default();
        let idle = delivered(contract, a, b)
            .into_iter()
            .map(|((region, node_type), delivered)| {
                let used = self
                    .node_seconds
                    .get(&(contract.id.clone(), month, region.clone(), node_type.clone()))
                    .copied()
                    .unwrap_or(0);
                let idle = (delivered - used).max(0);
                let idle_value = contract
                    .rates
                    .iter()
                    .find(|r| r.node_type == node_type)
                    .map_or(Money::ZERO, |r| cost_between(r.per_node_hour, 0, idle));
                IdleCapacity {
                    region,
                    node_type,
                    delivered_node_seconds: delivered,
                    used_node_seconds: used,
                    idle_node_seconds: idle,
                    idle_value,
                }
            })
            .collect();
        CommitmentPeriod {
            contract: contract.id.clone(),
            provider: contract.provider.clone(),
            month,
            start: at(a),
            end: at(b),
            amortized,
            used,
            unused: if amortized > used { amortized - used } else { Money::ZERO },
            ahead: if used > amortized { used - amortized } else { Money::ZERO },
            idle,
        }
    }
}

/// Commitment periods of `portfolio` over `[since, until)` from `records` (clipped here).
pub fn commitments<'a>(
    portfolio: &Portfolio,
    records: impl IntoIterator<Item = &'a UsageRecord>,
    since: Timestamp,
    until: Timestamp,
) -> Vec<CommitmentPeriod> {
    let mut used = CommitmentUse::new();
    for record in records {
        if let Some(clipped) = record.clip(Some(since), Some(until)) {
            used.add(&clipped);
        }
    }
    used.periods(portfolio, since, until)
}

/// The commitment's share of `[a, b)`: `A(b) − A(a)`.
fn amortized(contract: &Contract, a: i64, b: i64) -> Money {
    let (start, end) = (secs(contract.term_start()), secs(contract.term_end()));
    let length = i128::from((end - start).max(1));
    let share = |t: i64| i128::from(contract.committed.micros()) * i128::from(t.clamp(start, end) - start) / length;
    Money(i64::try_from(share(b) - share(a)).unwrap_or(i64::MAX))
}

/// Node-seconds the ramp delivered in `[a, b)`, by region and node type.
fn delivered(contract: &Contract, a: i64, b: i64) -> BTreeMap<(String, String), i64> {
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    for step in &contract.ramp {
        let from = step.date.and_hms_opt(0, 0, 0).map_or(i64::MAX, |d| d.and_utc().timestamp());
        let seconds = (b - a.max(from)).max(0);
        *out.entry((step.region.clone(), step.node_type.clone())).or_default() += seconds * i64::from(step.nodes);
    }
    out
}
