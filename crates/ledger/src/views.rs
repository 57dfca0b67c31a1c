//! Aggregated views of usage: totals grouped by tenant, provider, contract, job or GPU model, and
//! chargeback per tenant at the prices actually paid.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cumulo_types::{CapacityKind, Money, Provider};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::meter::UsageRecord;
use crate::time::Timestamp;

/// Which records a view covers. Records straddling `since` or `until` are clipped and re-rated exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub tenant: Option<String>,
    pub provider: Option<Provider>,
    pub contract: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl UsageFilter {
    /// The records (clipped to `[since, until)`) that pass the filter.
    pub fn apply<'a>(
        &'a self,
        records: impl IntoIterator<Item = &'a UsageRecord> + 'a,
    ) -> impl Iterator<Item = UsageRecord> + 'a {
        records
            .into_iter()
            .filter(move |r| self.tenant.as_ref().is_none_or(|t| *t == r.tenant))
            .filter(move |r| self.provider.as_ref().is_none_or(|p| *p == r.provider))
            .filter(move |r| self.contract.as_ref().is_none_or(|c| r.contract.as_ref() == Some(c)))
            .filter_map(move |r| r.clip(self.since, self.until))
    }

    /// Like [`UsageFilter::apply`], but a record inside the window is borrowed, not copied: only a
    /// record straddling `since` or `until` is clipped into a new one (an export reads millions).
    pub fn apply_borrowed<'a>(
        &'a self,
        records: impl IntoIterator<Item = &'a UsageRecord> + 'a,
    ) -> impl Iterator<Item = std::borrow::Cow<'a, UsageRecord>> + 'a {
        records
            .into_iter()
            .filter(move |r| self.tenant.as_ref().is_none_or(|t| *t == r.tenant))
            .filter(move |r| self.provider.as_ref().is_none_or(|p| *p == r.provider))
            .filter(move |r| self.contract.as_ref().is_none_or(|c| r.contract.as_ref() == Some(c)))
            .filter_map(move |r| {
                let inside = r.start < r.stop
                    && self.since.is_none_or(|s| s <= r.start)
                    && self.until.is_none_or(|u| r.stop <= u);
                if inside {
                    Some(std::borrow::Cow::Borrowed(r))
                } else {
                    r.clip(self.since, self.until).map(std::borrow::Cow::Owned)
                }
            })
    }
}

/// What usage is grouped by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    #[default]
    Tenant,
    Provider,
    Contract,
    Job,
    Gpu,
}

impl GroupBy {
    pub const ALL: [GroupBy; 5] = [GroupBy::Tenant, GroupBy::Provider, GroupBy::Contract, GroupBy::Job, GroupBy::Gpu];

    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Tenant => "tenant",
            GroupBy::Provider => "provider",
            GroupBy::Contract => "contract",
            GroupBy::Job => "job",
            GroupBy::Gpu => "gpu",
        }
    }

    /// The group a record falls in: non-contract time groups as `on-demand` or `spot`, CPU nodes as `cpu`.
    pub fn key(self, r: &UsageRecord) -> String {
        match self {
            GroupBy::Tenant => r.tenant.clone(),
            GroupBy::Provider => r.provider.to_string(),
            GroupBy::Contract => r.contract.clone().unwrap_or_else(|| r.capacity.to_string()),
            GroupBy::Job => r.job().to_string(),
            GroupBy::Gpu => r.gpu.map_or_else(|| "cpu".to_string(), |g| g.name().to_string()),
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupBy::ALL.into_iter().find(|g| g.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| Error::Invalid {
            field: "group-by",
            value: s.to_string(),
            expected: "tenant, provider, contract, job or gpu",
        })
    }
}

/// One group's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub group: String,
    pub node_seconds: i64,
    pub gpu_seconds: i64,
    /// What was paid.
    pub cost: Money,
    /// What the same node-time costs at on-demand list price.
    pub list_cost: Money,
    pub records: usize,
}

/// Usage totals per group, sorted by group name; the rows' costs add up to the filtered total exactly.
pub fn usage_by<'a>(
    records: impl IntoIterator<Item = &'a UsageRecord>,
    filter: &UsageFilter,
    group_by: GroupBy,
) -> Vec<UsageRow> {
    let mut rows: BTreeMap<String, UsageRow> = BTreeMap::new();
    let records: Vec<&UsageRecord> = records.into_iter().collect();
    for r in filter.apply(records) {
        let key = group_by.key(&r);
        let row = rows.entry(key.clone()).or_insert_with(|| UsageRow { group: key, ..UsageRow::default() });
        row.node_seconds += r.seconds();
        row.gpu_seconds += r.gpu_seconds();
        row.cost += r.cost;
        row.list_cost += r.list_cost;
        row.records += 1;
    }
    rows.into_values().collect()
}

/// What one tenant owes at the prices actually paid, split by how the capacity was held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargebackRow {
    pub tenant: String,
    pub gpu_seconds: i64,
    pub contract: Money,
    pub on_demand: Money,
    pub spot: Money,
    /// `contract + on_demand + spot`.
    pub total: Money,
    /// The same node-time at on-demand list price.
    pub list: Money,
    /// `list − total`: what contracts and spot saved against list.
    pub savings: Money,
}

/// Chargeback per tenant over `filter` (its tenant filter included), sorted by tenant.
pub fn chargeback<'a>(records: impl IntoIterator<Item = &'a UsageRecord>, filter: &UsageFilter) -> Vec<ChargebackRow> {
    let mut rows: BTreeMap<String, ChargebackRow> = BTreeMap::new();
    let records: Vec<&UsageRecord> = records.into_iter().collect();
    for r in filter.apply(records) {
        let row = rows
            .entry(r.tenant.clone())
            .or_insert_with(|| ChargebackRow { tenant: r.tenant.clone(), ..Default::default() });
        row.gpu_seconds += r.gpu_seconds();
        match r.capacity {
            CapacityKind::Contract => row.contract += r.cost,
            CapacityKind::OnDemand => row.on_demand += r.cost,
            CapacityKind::Spot => row.spot += r.cost,
        }
        row.total += r.cost;
        row.list += r.list_cost;
    }
    rows.into_values()
        .map(|mut row| {
            row.savings = row.list - row.total;
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_parses_and_names_bad_values() {
        assert_eq!("GPU".parse::<GroupBy>().unwrap(), GroupBy::Gpu);
        assert_eq!(
            "region".parse::<GroupBy>().unwrap_err().to_string(),
            "invalid group-by `region`: expected tenant, provider, contract, job or gpu"
        );
    }

    #[test]
    fn borrowing_filter_keeps_what_the_copying_one_keeps() {
        use crate::time::{at, parse_time};
        use cumulo_types::{AttemptId, JobId};
        let start = parse_time("t", "2026-11-10T00:00:00Z").unwrap();
        let record = |tenant: &str, from: i64| UsageRecord {
            attempt: AttemptId { job: JobId(1), attempt: 1 },
            node_rank: 0,
            start: start + chrono::Duration::seconds(from),
            stop: start + chrono::Duration::seconds(from + 3600),
            tenant: tenant.into(),
            provider: Provider::new("aws").unwrap(),
            region: "us-east-1".into(),
            node_type: "p5.48xlarge".into(),
            gpu: None,
            gpus: 0,
            capacity: CapacityKind::OnDemand,
            contract: None,
            rate: Money::from_dollars(36),
            list_rate: Money::from_dollars(36),
            price_from: start,
            cost: Money::from_dollars(36),
            list_cost: Money::from_dollars(36),
            resource_id: None,
        };
        let records: Vec<UsageRecord> = (0..6).map(|i| record(if i % 2 == 0 { "a" } else { "b" }, i * 3600)).collect();
        let s = start.timestamp();
        let windows = [
            (None, None),
            (Some(at(s + 1800)), None),
            (None, Some(at(s + 7200))),
            (Some(at(s + 5000)), Some(at(s + 9000))),
        ];
        for (since, until) in windows {
            for tenant in [None, Some("a".to_string())] {
                let filter = UsageFilter { tenant, since, until, ..UsageFilter::default() };
                let copied: Vec<UsageRecord> = filter.apply(&records).collect();
                let borrowed: Vec<UsageRecord> = filter.apply_borrowed(&records).map(|r| r.into_owned()).collect();
                assert_eq!(borrowed, copied, "{since:?} {until:?}");
            }
        }
    }
}
