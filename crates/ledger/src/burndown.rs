//! Contract burn-down from metered usage: committed, consumed so far, what the schedule expected by now,
//! and the shortfall or overrun projected at term end at the burn rate seen so far.

use std::collections::BTreeMap;
use std::fmt;

use cumulo_types::{Money, Provider};
use serde::{Deserialize, Serialize};

use crate::meter::UsageRecord;
use crate::time::{Timestamp, secs};

/// What the ledger needs to know of a contract to burn it down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub id: String,
    pub provider: Provider,
    /// Spend committed over the whole term.
    pub committed: Money,
    pub start: Timestamp,
    /// Exclusive end of the term.
    pub end: Timestamp,
    /// Cumulative spend due by each date (a ramp); empty means linear over the term.
    #[serde(default)]
    pub schedule: Vec<(Timestamp, Money)>,
}

impl Commitment {
    /// Cumulative spend the schedule expects by `t`: linear between schedule points (and between the
    /// term's start at zero and its end at `committed`).
    pub fn expected_by(&self, t: Timestamp) -> Money {
        let mut points: Vec<(i64, Money)> = vec![(secs(self.start), Money::ZERO)];
        points.extend(self.schedule.iter().map(|(d, m)| (secs(*d), *m)));
        points.push((secs(self.end), self.committed));
        points.sort_by_key(|p| p.0);
        let t = secs(t);
        if t <= points[0].0 {
            return Money::ZERO;
        }
        for w in points.windows(2) {
            let ((a, ma), (b, mb)) = (w[0], w[1]);
            if t < b {
                return ma + (mb - ma).mul_div(t - a, (b - a).max(1));
            }
        }
        self.committed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BurnStatus {
    NotStarted,
    /// Within 1% of the schedule.
    OnSchedule,
    Ahead,
    Behind,
    Ended,
}

impl fmt::Display for BurnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BurnStatus::NotStarted => "not started",
            BurnStatus::OnSchedule => "on schedule",
            BurnStatus::Ahead => "ahead",
            BurnStatus::Behind => "behind",
            BurnStatus::Ended => "ended",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BurnDown {
    pub contract: String,
    pub provider: Provider,
    pub as_of: Timestamp,
    pub committed: Money,
    /// Metered spend on the contract up to `as_of`.
    pub consumed: Money,
    /// What the schedule expected by `as_of`.
    pub expected: Money,
    pub status: BurnStatus,
    /// Consumed plus the average burn rate so far over the rest of the term.
    pub projected_at_end: Money,
    /// `committed − projected` when positive: paid for but not used (take-or-pay).
    pub shortfall: Money,
    /// `projected − committed` when positive.
    pub overrun: Money,
}

/// Metered spend per contract up to `until` (exclusive).
pub fn consumed_by_contract<'a>(
    records: impl IntoIterator<Item = &'a UsageRecord>,
    until: Timestamp,
) -> BTreeMap<String, Money> {
    let mut out = BTreeMap::new();
    for r in records {
        let (Some(contract), Some(r)) = (&r.contract, r.clip(None, Some(until))) else { continue };
        *out.entry(contract.clone()).or_insert(Money::ZERO) += r.cost;
    }
    out
}

/// Burn-down of each commitment at `as_of`, in the order given.
pub fn burn_down<'a>(
    commitments: &[Commitment],
    records: impl IntoIterator<Item = &'a UsageRecord>,
    as_of: Timestamp,
) -> Vec<BurnDown> {
    let consumed = consumed_by_contract(records, as_of);
    commitments
        .iter()
        .map(|c| {
            let used = consumed.get(&c.id).copied().unwrap_or(Money::ZERO);
            let expected = c.expected_by(as_of);
            let (start, end, now) = (secs(c.start), secs(c.end), secs(as_of));
            let elapsed = (now.min(end) - start).max(0);
            let remaining = (end - now.max(start)).max(0);
            let projected = if elapsed == 0 { used } else { used + used.mul_div(remaining, elapsed) };
            let tolerance = expected.mul_div(1, 100);
            let status = if now <= start {
                BurnStatus::NotStarted
            } else if now >= end {
                BurnStatus::Ended
            } else if used + tolerance < expected {
                BurnStatus::Behind
            } else if used > expected + tolerance {
                BurnStatus::Ahead
            } else {
                BurnStatus::OnSchedule
            };
            BurnDown {
                contract: c.id.clone(),
                provider: c.provider.clone(),
                as_of,
                committed: c.committed,
                consumed: used,
                expected,
                status,
                projected_at_end: projected,
                shortfall: (c.committed - projected).max(Money::ZERO),
                overrun: (projected - c.committed).max(Money::ZERO),
            }
        })
        .collect()
}
