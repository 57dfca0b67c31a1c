//! Price schedules per offer (provider, node type, how the capacity is held) and exact, telescoping
//! rating of node-time.

use std::collections::BTreeMap;
use std::fmt;

use cumulo_types::{CapacityKind, Money, Provider};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::time::{Timestamp, at, format_time, secs};

/// Seconds in an hour: rates are per node-hour.
pub const SECONDS_PER_HOUR: i64 = 3600;

/// The cost of one node at `rate_per_node_hour` from Unix second `start` to `stop`.
///
/// Computed as `F(stop) − F(start)` with `F(t) = round(rate × t / 3600)`, so that for any `a ≤ b ≤ c`,
/// `cost(a, b) + cost(b, c) == cost(a, c)` exactly: splitting node-time never changes its cost.
/// Each piece is within half a micro-dollar of the exact product.
pub fn cost_between(rate_per_node_hour: Money, start: i64, stop: i64) -> Money {
    cumulative(rate_per_node_hour, stop) - cumulative(rate_per_node_hour, start)
}

fn cumulative(rate: Money, t: i64) -> Money {
    rate.mul_div(t, SECONDS_PER_HOUR)
}

/// Which price list an offer is bought from: a contract's schedule, on-demand list, or spot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PriceKey {
    pub provider: Provider,
    pub node_type: String,
    pub capacity: CapacityKind,
    /// The contract id for [`CapacityKind::Contract`]; `None` for on-demand and spot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

impl PriceKey {
    pub fn on_demand(provider: &Provider, node_type: &str) -> PriceKey {
        PriceKey {
            provider: provider.clone(),
            node_type: node_type.to_string(),
            capacity: CapacityKind::OnDemand,
            contract: None,
        }
    }

    pub fn spot(provider: &Provider, node_type: &str) -> PriceKey {
        PriceKey {
            provider: provider.clone(),
            node_type: node_type.to_string(),
            capacity: CapacityKind::Spot,
            contract: None,
        }
    }

    pub fn contract(provider: &Provider, node_type: &str, contract: &str) -> PriceKey {
        PriceKey {
            provider: provider.clone(),
            node_type: node_type.to_string(),
            capacity: CapacityKind::Contract,
            contract: Some(contract.to_string()),
        }
    }
}

impl fmt::Display for PriceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.provider, self.node_type, self.capacity)?;
        if let Some(c) = &self.contract {
            write!(f, " (contract {c})")?;
        }
        Ok(())
    }
}

/// One step of a schedule: from `from` on (until the next step), a node-hour costs `rate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricePoint {
    pub from: Timestamp,
    pub rate: Money,
}

/// A piece of node-time with one price: `[start, stop)` at `rate`, the step that set it starting at
/// `price_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PricedSpan {
    pub start: i64,
    pub stop: i64,
    pub rate: Money,
    pub price_from: i64,
}

/// Every price the ledger may rate at: step schedules per [`PriceKey`], and the end of each contract's
/// term (node-time after it is rated on-demand).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBook {
    schedules: BTreeMap<PriceKey, Vec<PricePoint>>,
    contract_ends: BTreeMap<String, Timestamp>,
}

impl PriceBook {
    pub fn new() -> PriceBook {
        PriceBook::default()
    }

    /// From `from` on, `key` costs `rate` per node-hour. A later step replaces it from its own time;
    /// setting the same instant twice keeps the last rate. Refuses a negative rate.
    pub fn set_price(&mut self, key: PriceKey, from: Timestamp, rate: Money) -> Result<&mut Self, Error> {
        if rate.is_negative() {
            return Err(Error::Invalid {
                field: "rate",
                value: format!("{rate} for {key}"),
                expected: "a non-negative price per node-hour",
            });
        }
        if key.capacity == CapacityKind::Contract && key.contract.is_none()
            || key.capacity != CapacityKind::Contract && key.contract.is_some()
        {
            return Err(Error::Invalid {
                field: "contract",
                value: format!("{key}"),
                expected: "a contract id exactly when the capacity kind is contract",
            });
        }
        let from = at(secs(from));
        let steps = self.schedules.entry(key).or_default();
        match steps.binary_search_by_key(&from, |p| p.from) {
            Ok(i) => steps[i].rate = rate,
            Err(i) => steps.insert(i, PricePoint { from, rate }),
        }
        Ok(self)
    }

    /// The contract's term ends at `end` (exclusive): node-time after it no longer draws on the
    /// contract and is rated at the on-demand list price.
    pub fn set_contract_end(&mut self, contract: &str, end: Timestamp) -> &mut Self {
        self.contract_ends.insert(contract.to_string(), at(secs(end)));
        self
    }

    pub fn contract_end(&self, contract: &str) -> Option<Timestamp> {
        self.contract_ends.get(contract).copied()
    }

    pub fn schedule(&self, key: &PriceKey) -> &[PricePoint] {
        self.schedules.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The rate of `key` at instant `t`, if a step covers it.
    pub fn rate_at(&self, key: &PriceKey, t: Timestamp) -> Option<Money> {
        let steps = self.schedule(key);
        let i = steps.partition_point(|p| p.from <= t);
        (i > 0).then(|| steps[i - 1].rate)
    }

    /// Splits `[start, stop)` at every step of `key`'s schedule. Fails, naming the key and the instant,
    /// when no step covers the start.
    pub(crate) fn spans(
        &self,
        what: &'static str,
        key: &PriceKey,
        start: i64,
        stop: i64,
    ) -> Result<Vec<PricedSpan>, Error> {
        let steps = self.schedule(key);
        let first = steps.partition_point(|p| secs(p.from) <= start);
        if first == 0 {
            return Err(Error::NoPrice { what, key: key.to_string(), at: format_time(at(start)) });
        }
        let mut spans = Vec::new();
        let mut cursor = start;
        for (i, step) in steps.iter().enumerate().skip(first - 1) {
            if cursor >= stop {
                break;
            }
            let step_end = steps.get(i + 1).map(|n| secs(n.from)).unwrap_or(i64::MAX).min(stop);
            if step_end > cursor {
                spans.push(PricedSpan { start: cursor, stop: step_end, rate: step.rate, price_from: secs(step.from) });
                cursor = step_end;
            }
        }
        debug_assert_eq!(cursor, stop);
        Ok(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_time;

    fn t(s: &str) -> Timestamp {
        parse_time("t", s).unwrap()
    }

    #[test]
    fn cost_of_whole_hours_is_rate_times_hours() {
        let rate = Money::parse_dollars("98.32").unwrap();
        let a = secs(t("2026-11-01T00:00:00Z"));
        assert_eq!(cost_between(rate, a, a + 10 * 3600), Money::parse_dollars("983.20").unwrap());
        assert_eq!(cost_between(rate, a, a + 90), Money::parse_dollars("2.458").unwrap());
    }

    #[test]
    fn spans_split_at_price_changes() {
        let aws = Provider::new("aws").unwrap();
        let key = PriceKey::on_demand(&aws, "p5.48xlarge");
        let mut book = PriceBook::new();
        book.set_price(key.clone(), t("2026-01-01"), Money::from_dollars(98)).unwrap();
        book.set_price(key.clone(), t("2026-11-15"), Money::from_dollars(55)).unwrap();
        let spans = book.spans("list", &key, secs(t("2026-11-14T23:00:00Z")), secs(t("2026-11-15T02:00:00Z"))).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].rate, spans[0].stop - spans[0].start), (Money::from_dollars(98), 3600));
        assert_eq!((spans[1].rate, spans[1].stop - spans[1].start), (Money::from_dollars(55), 7200));
        assert_eq!(book.rate_at(&key, t("2026-11-15")), Some(Money::from_dollars(55)));
    }

    #[test]
    fn missing_and_negative_prices_are_named() {
        let aws = Provider::new("aws").unwrap();
        let key = PriceKey::spot(&aws, "p5.48xlarge");
        let mut book = PriceBook::new();
        book.set_price(key.clone(), t("2026-11-02"), Money::from_dollars(30)).unwrap();
        assert_eq!(
            book.spans("spot", &key, secs(t("2026-11-01")), secs(t("2026-11-03"))).unwrap_err().to_string(),
            "no spot price for aws p5.48xlarge spot at 2026-11-01T00:00:00Z"
        );
        assert_eq!(
            book.set_price(key, t("2026-11-02"), Money::from_dollars(-1)).unwrap_err().to_string(),
            "invalid rate `-$1.00 for aws p5.48xlarge spot`: expected a non-negative price per node-hour"
        );
        let bad = PriceKey { contract: None, ..PriceKey::contract(&aws, "p5.48xlarge", "x") };
        assert_eq!(
            book.set_price(bad, t("2026-11-02"), Money::from_dollars(1)).unwrap_err().to_string(),
            "invalid contract `aws p5.48xlarge contract`: expected a contract id exactly when the capacity kind is contract"
        );
    }
}
