//! Invoices per provider and calendar month: one line per contract (or on-demand / spot), node type and
//! rate, with a total that is the exact sum of the lines.

use std::collections::BTreeMap;

use cumulo_types::{CapacityKind, Money, Provider};
use serde::{Deserialize, Serialize};

use crate::meter::UsageRecord;
use crate::time::{Month, Timestamp};

/// One line: node-time of one node type, held one way, at one rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The contract id, or `on-demand` / `spot`.
    pub item: String,
    pub capacity: CapacityKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub node_type: String,
    /// Price per node-hour.
    pub rate: Money,
    pub node_seconds: i64,
    /// Sum of the records' costs (each rated exactly by telescoping).
    pub amount: Money,
}

impl InvoiceLine {
    /// Node-hours as a decimal string with up to six places (display only).
    pub fn node_hours(&self) -> String {
        decimal_hours(self.node_seconds)
    }
}

/// `seconds / 3600` with six decimal places, rounded half up; for display.
pub fn decimal_hours(seconds: i64) -> String {
    let micro_hours = Money(seconds).mul_div(1_000_000, 3600).0;
    let s = format!("{}.{:06}", micro_hours / 1_000_000, micro_hours.rem_euclid(1_000_000));
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub provider: Provider,
    pub month: Month,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub lines: Vec<InvoiceLine>,
    /// Exactly the sum of `lines[*].amount`.
    pub total: Money,
}

/// The invoice of `provider` for `month` from the records (records of other providers or months are
/// ignored; records never straddle a month, but clipping keeps this exact even if they did).
pub fn invoice<'a>(records: impl IntoIterator<Item = &'a UsageRecord>, provider: &Provider, month: Month) -> Invoice {
    let (since, until) = (month.start(), month.end());
    let mut lines: BTreeMap<(u8, String, String, Money), InvoiceLine> = BTreeMap::new();
    for r in records.into_iter().filter(|r| r.provider == *provider) {
        let Some(r) = r.clip(Some(since), Some(until)) else { continue };
        let order = match r.capacity {
            CapacityKind::Contract => 0,
            CapacityKind::OnDemand => 1,
            CapacityKind::Spot => 2,
        };
        let item = r.contract.clone().unwrap_or_else(|| r.capacity.to_string());
        let line = lines.entry((order, item.clone(), r.node_type.clone(), r.rate)).or_insert_with(|| InvoiceLine {
            item,
            capacity: r.capacity,
            contract: r.contract.clone(),
            node_type: r.node_type.clone(),
            rate: r.rate,
            node_seconds: 0,
            amount: Money::ZERO,
        });
        line.node_seconds += r.seconds();
        line.amount += r.cost;
    }
    let lines: Vec<InvoiceLine> = lines.into_values().collect();
    let total = lines.iter().map(|l| l.amount).sum();
    Invoice { provider: provider.clone(), month, period_start: since, period_end: until, lines, total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_print_as_short_decimals() {
        assert_eq!(decimal_hours(7200), "2");
        assert_eq!(decimal_hours(5400), "1.5");
        assert_eq!(decimal_hours(1), "0.000278");
    }
}
