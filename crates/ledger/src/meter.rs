//! Metering: driver observations of node-time become rated usage records, exactly once.
//!
//! A record is keyed by `(attempt, node rank, start)`; the ledger remembers, per attempt and node, which
//! seconds it has already billed, so a duplicated, replayed or overlapping observation bills only the
//! seconds it has not seen before.
//!
//! Records grow with hours, not with observations: new seconds that continue a node's last record on
//! the same terms (price, list price, capacity, contract, month) extend it, up to
//! [`MAX_RECORD_SECONDS`]; a price change, a month boundary, a gap or a new attempt starts a new one.
//! An extended record keeps its key, so a store replaces the shorter version it holds
//! (`cumulo_store::usage`).

use std::collections::BTreeMap;

use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::price::{PriceBook, PriceKey, PricedSpan, cost_between};
use crate::time::{Month, Timestamp, at, format_time, secs};

/// What is being metered on one node of an attempt; the same for every observation of that node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub tenant: String,
    pub provider: Provider,
    pub region: String,
    pub node_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    /// GPUs on the node (0 for a CPU node).
    #[serde(default)]
    pub gpus: u32,
    /// How the node is held: under a contract, on-demand or spot.
    pub capacity: CapacityKind,
    /// The contract the node is held under, for [`CapacityKind::Contract`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The provider's id for the machine (instance id, hostname), when the driver knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// A driver's report that one node of an attempt ran from `start` to `stop` (exclusive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub attempt: AttemptId,
    pub node_rank: u32,
    pub start: Timestamp,
    pub stop: Timestamp,
    #[serde(flatten)]
    pub node: NodeMeta,
}

impl Observation {
    /// The node-time a driver reports for one node of an attempt: from `started_at` to `finished_at`,
    /// or to `observed_at` while the node still runs (a heartbeat; later ones extend it and bill only
    /// the new seconds). `None` before the node started or when no time has passed.
    pub fn from_node_report(
        attempt: AttemptId,
        node_rank: u32,
        started_at: Option<Timestamp>,
        finished_at: Option<Timestamp>,
        observed_at: Timestamp,
        node: NodeMeta,
    ) -> Option<Observation> {
        let start = started_at?;
        let stop = finished_at.unwrap_or(observed_at);
        (secs(stop) > secs(start)).then_some(Observation { attempt, node_rank, start, stop, node })
    }
}

/// The longest interval one usage record covers: an attempt-node running for a day writes 24 records.
pub const MAX_RECORD_SECONDS: i64 = 3600;

/// Node-time at one price: never crosses a month boundary, a price change or a contract's end, and
/// covers at most [`MAX_RECORD_SECONDS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub attempt: AttemptId,
    pub node_rank: u32,
    #[serde(deserialize_with = "crate::time::deserialize_time")]
    pub start: Timestamp,
    #[serde(deserialize_with = "crate::time::deserialize_time")]
    pub stop: Timestamp,
    pub tenant: String,
    pub provider: Provider,
    pub region: String,
    pub node_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    #[serde(default)]
    pub gpus: u32,
    /// How the time was paid for. Contract node-time after the contract's end is on-demand here.
    pub capacity: CapacityKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Price actually paid per node-hour.
    pub rate: Money,
    /// On-demand list price per node-hour at the same time (the paid rate where no list exists).
    pub list_rate: Money,
    /// When the price step behind `rate` took effect (names the price in exports).
    #[serde(deserialize_with = "crate::time::deserialize_time")]
    pub price_from: Timestamp,
    /// `cost_between(rate, start, stop)`.
    pub cost: Money,
    /// `cost_between(list_rate, start, stop)`.
    pub list_cost: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl UsageRecord {
    pub fn job(&self) -> JobId {
        self.attempt.job
    }

    pub fn seconds(&self) -> i64 {
        secs(self.stop) - secs(self.start)
    }

    pub fn gpu_seconds(&self) -> i64 {
        self.seconds() * i64::from(self.gpus)
    }

    /// True when `other` is on the same terms as this record: the same attempt, node and everything
    /// that rates it; only the interval and its costs may differ.
    pub fn same_terms(&self, other: &UsageRecord) -> bool {
        let interval_free = |r: &UsageRecord| UsageRecord {
            start: at(0),
            stop: at(0),
            cost: Money::ZERO,
            list_cost: Money::ZERO,
            ..r.clone()
        };
        interval_free(self) == interval_free(other)
    }

    /// True when this record is `longer` cut short: same key and terms, ending no later. A store
    /// holding `longer` has already billed every second of this one.
    pub fn is_prefix_of(&self, longer: &UsageRecord) -> bool {
        self.start == longer.start && secs(self.stop) <= secs(longer.stop) && self.same_terms(longer)
    }

    /// This record with its interval set to `[start, stop)` and its costs re-rated (telescoping).
    fn spanning(&self, start: i64, stop: i64) -> UsageRecord {
        UsageRecord {
            start: at(start),
            stop: at(stop),
            cost: cost_between(self.rate, start, stop),
            list_cost: cost_between(self.list_rate, start, stop),
            ..self.clone()
        }
    }

    /// The part of this record inside `[since, until)`, re-rated exactly (telescoping), or `None`.
    pub fn clip(&self, since: Option<Timestamp>, until: Option<Timestamp>) -> Option<UsageRecord> {
        let start = since.map_or(secs(self.start), |s| secs(s).max(secs(self.start)));
        let stop = until.map_or(secs(self.stop), |u| secs(u).min(secs(self.stop)));
        if stop <= start {
            return None;
        }
        if start == secs(self.start) && stop == secs(self.stop) {
            return Some(self.clone());
        }
        Some(UsageRecord {
            start: at(start),
            stop: at(stop),
            cost: cost_between(self.rate, start, stop),
            list_cost: cost_between(self.list_rate, start, stop),
            ..self.clone()
        })
    }

    /// Checks a record read from outside (a file, a store): a real interval inside one month, a
    /// contract id exactly for contract capacity, and costs that match the rates.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |reason: String| Error::BadRecord {
            attempt: self.attempt.to_string(),
            node_rank: self.node_rank,
            start: format_time(self.start),
            reason,
        };
        let (start, stop) = (secs(self.start), secs(self.stop));
        if stop <= start {
            return Err(bad(format!("stop {} is not after start", format_time(self.stop))));
        }
        if Month::containing(self.start) != Month::containing(at(stop - 1)) {
            return Err(bad("crosses a month boundary; records are split per month".into()));
        }
        if self.tenant.trim().is_empty() {
            return Err(bad("tenant is empty".into()));
        }
        if (self.capacity == CapacityKind::Contract) != self.contract.is_some() {
            return Err(bad(format!("capacity `{}` with contract {:?}", self.capacity, self.contract)));
        }
        if self.rate.is_negative() || self.list_rate.is_negative() {
            return Err(bad("negative rate".into()));
        }
        let expect = cost_between(self.rate, start, stop);
        if self.cost != expect {
            return Err(bad(format!(
                "cost {} does not match rate {} over {} s (expected {expect})",
                self.cost,
                self.rate,
                stop - start
            )));
        }
        let expect = cost_between(self.list_rate, start, stop);
        if self.list_cost != expect {
            return Err(bad(format!(
                "list_cost {} does not match list_rate {} (expected {expect})",
                self.list_cost, self.list_rate
            )));
        }
        Ok(())
    }
}

/// What one ingestion did: how many seconds were new (and billed) and how many were already metered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ingested {
    pub new_seconds: i64,
    pub duplicate_seconds: i64,
    pub records: usize,
    pub cost: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeAccount {
    meta: NodeMeta,
    /// True while `meta` was rebuilt from stored records rather than taken from an observation: a
    /// record past a contract's end says on-demand, so how the node is held is not known yet.
    meta_from_records: bool,
    /// Disjoint, sorted `[start, stop)` intervals already billed.
    covered: Vec<(i64, i64)>,
}

/// The usage records of a set of attempts, with the bookkeeping that makes ingestion idempotent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    nodes: BTreeMap<(AttemptId, u32), NodeAccount>,
    records: BTreeMap<(AttemptId, u32, i64), UsageRecord>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Rebuilds a ledger from stored records (checked one by one). A record seen twice is kept once;
    /// two different records for the same seconds of a node are an error.
    pub fn from_records<I: IntoIterator<Item = UsageRecord>>(records: I) -> Result<Ledger, Error> {
        let mut ledger = Ledger::new();
        for record in records {
            record.check()?;
            ledger.insert_record(record)?;
        }
        Ok(ledger)
    }

    fn insert_record(&mut self, record: UsageRecord) -> Result<(), Error> {
        let key = (record.attempt, record.node_rank, secs(record.start));
        if let Some(existing) = self.records.get(&key) {
            if *existing == record {
                return Ok(());
            }
            return Err(Error::BadRecord {
                attempt: record.attempt.to_string(),
                node_rank: record.node_rank,
                start: format_time(record.start),
                reason: "a different record for the same node and start is already in the ledger".into(),
            });
        }
        let (start, stop) = (secs(record.start), secs(record.stop));
        let meta = NodeMeta {
            tenant: record.tenant.clone(),
            provider: record.provider.clone(),
            region: record.region.clone(),
            node_type: record.node_type.clone(),
            gpu: record.gpu,
            gpus: record.gpus,
            capacity: record.capacity,
            contract: record.contract.clone(),
            resource_id: record.resource_id.clone(),
        };
        let account = self.nodes.entry((record.attempt, record.node_rank)).or_insert_with(|| NodeAccount {
            meta,
            meta_from_records: true,
            covered: Vec::new(),
        });
        if !uncovered(&account.covered, start, stop).iter().eq([(start, stop)].iter()) {
            return Err(Error::BadRecord {
                attempt: record.attempt.to_string(),
                node_rank: record.node_rank,
                start: format_time(record.start),
                reason: "overlaps node-time already in the ledger".into(),
            });
        }
        cover(&mut account.covered, start, stop);
        self.records.insert(key, record);
        Ok(())
    }

    /// Meters one observation: the seconds not yet billed for this attempt and node are split at month
    /// boundaries, price changes and the contract's end, rated, and recorded. Replaying an observation
    /// (or any part of one) adds nothing. Fails without changing the ledger when the interval is empty,
    /// a price is missing, or the node's description differs from earlier observations.
    pub fn ingest(&mut self, obs: &Observation, prices: &PriceBook) -> Result<Ingested, Error> {
        self.meter(obs, prices).map(|(ingested, _)| ingested)
    }

    /// Like [`Ledger::ingest`], also returning the records it added: what a durable store appends.
    /// For a node already metered elsewhere, rebuild its records with [`Ledger::from_records`] first.
    pub fn meter(&mut self, obs: &Observation, prices: &PriceBook) -> Result<(Ingested, Vec<UsageRecord>), Error> {
        let (start, stop) = (secs(obs.start), secs(obs.stop));
        validate(obs)?;
        let node_key = (obs.attempt, obs.node_rank);
        let covered: &[(i64, i64)] = match self.nodes.get(&node_key) {
            Some(account) => {
                check_same_node(obs, &account.meta, !account.meta_from_records)?;
                &account.covered
            }
            None => &[],
        };
        let fresh = uncovered(covered, start, stop);
        let mut rated = Vec::new();
        for (a, b) in &fresh {
            rated.extend(rate(obs, *a, *b, prices)?);
        }
        let result = Ingested {
            new_seconds: fresh.iter().map(|(a, b)| b - a).sum(),
            duplicate_seconds: (stop - start) - fresh.iter().map(|(a, b)| b - a).sum::<i64>(),
            records: 0,
            cost: rated.iter().map(|r| r.cost).sum(),
        };
        let account = self.nodes.entry(node_key).or_insert_with(|| NodeAccount {
            meta: obs.node.clone(),
            meta_from_records: false,
            covered: Vec::new(),
        });
        if account.meta_from_records {
            account.meta = obs.node.clone();
            account.meta_from_records = false;
        }
        for (a, b) in fresh {
            cover(&mut account.covered, a, b);
        }
        let mut written: BTreeMap<(AttemptId, u32, i64), UsageRecord> = BTreeMap::new();
        for record in rated {
            for record in self.extend_or_split(record) {
                let key = (record.attempt, record.node_rank, secs(record.start));
                self.records.insert(key, record.clone());
                written.insert(key, record);
            }
        }
        let written: Vec<UsageRecord> = written.into_values().collect();
        Ok((Ingested { records: written.len(), ..result }, written))
    }

    /// Places a freshly rated record: its first seconds extend the node's record that ends where it
    /// starts (same terms, same month, shorter than [`MAX_RECORD_SECONDS`]); the rest is cut into
    /// records of at most that length. Returns the records written (the extended one first).
    fn extend_or_split(&self, record: UsageRecord) -> Vec<UsageRecord> {
        let (mut start, stop) = (secs(record.start), secs(record.stop));
        let mut out = Vec::new();
        let before = self
            .records
            .range((record.attempt, record.node_rank, i64::MIN)..=(record.attempt, record.node_rank, start))
            .next_back()
            .map(|(_, r)| r);
        if let Some(open) = before
            && secs(open.stop) == start
            && open.seconds() < MAX_RECORD_SECONDS
            && Month::containing(open.start) == Month::containing(record.start)
            && open.same_terms(&record)
        {
            let until = stop.min(secs(open.start) + MAX_RECORD_SECONDS);
            out.push(open.spanning(secs(open.start), until));
            start = until;
        }
        while start < stop {
            let until = stop.min(start + MAX_RECORD_SECONDS);
            out.push(record.spanning(start, until));
            start = until;
        }
        out
    }

    /// All records in key order (attempt, node rank, start).
    pub fn records(&self) -> impl Iterator<Item = &UsageRecord> {
        self.records.values()
    }

    pub fn to_records(&self) -> Vec<UsageRecord> {
        self.records.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn total_cost(&self) -> Money {
        self.records.values().map(|r| r.cost).sum()
    }
}

fn validate(obs: &Observation) -> Result<(), Error> {
    if obs.stop <= obs.start {
        return Err(Error::Invalid {
            field: "stop",
            value: format!("{} (start {})", format_time(obs.stop), format_time(obs.start)),
            expected: "an instant after start",
        });
    }
    if obs.node.tenant.trim().is_empty() {
        return Err(Error::Invalid { field: "tenant", value: obs.node.tenant.clone(), expected: "a tenant name" });
    }
    if obs.node.node_type.trim().is_empty() {
        return Err(Error::Invalid {
            field: "node_type",
            value: obs.node.node_type.clone(),
            expected: "a node type name",
        });
    }
    if (obs.node.capacity == CapacityKind::Contract) != obs.node.contract.is_some() {
        return Err(Error::Invalid {
            field: "contract",
            value: format!("{:?} with capacity {}", obs.node.contract, obs.node.capacity),
            expected: "a contract id exactly when capacity is contract",
        });
    }
    Ok(())
}

/// Checks that an observation describes the node as earlier ones did. `with_terms` also compares how
/// the node is held (not known when the node was rebuilt from stored records).
fn check_same_node(obs: &Observation, before: &NodeMeta, with_terms: bool) -> Result<(), Error> {
    let now = &obs.node;
    let fields: [(&'static str, String, String); 7] = [
        ("tenant", before.tenant.clone(), now.tenant.clone()),
        ("provider", before.provider.to_string(), now.provider.to_string()),
        ("region", before.region.clone(), now.region.clone()),
        ("node_type", before.node_type.clone(), now.node_type.clone()),
        ("gpus", before.gpus.to_string(), now.gpus.to_string()),
        ("capacity", before.capacity.to_string(), now.capacity.to_string()),
        ("contract", before.contract.clone().unwrap_or_default(), now.contract.clone().unwrap_or_default()),
    ];
    for (field, b, a) in fields {
        // Rebuilt from records, the terms are not known yet, nor the GPUs held (records written before
        // GPUs counted the attempt's own say the node's).
        if !with_terms && (field == "capacity" || field == "contract" || field == "gpus") {
            continue;
        }
        if b != a {
            return Err(Error::ConflictingObservation {
                attempt: obs.attempt.to_string(),
                node_rank: obs.node_rank,
                field,
                before: b,
                after: a,
            });
        }
    }
    Ok(())
}

/// The parts of `[start, stop)` not in `covered` (sorted, disjoint).
fn uncovered(covered: &[(i64, i64)], start: i64, stop: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut cursor = start;
    for &(a, b) in covered {
        if b <= cursor {
            continue;
        }
        if a >= stop {
            break;
        }
        if a > cursor {
            out.push((cursor, a.min(stop)));
        }
        cursor = cursor.max(b);
        if cursor >= stop {
            break;
        }
    }
    if cursor < stop {
        out.push((cursor, stop));
    }
    out
}

/// Adds `[start, stop)` to `covered`, merging neighbours.
fn cover(covered: &mut Vec<(i64, i64)>, start: i64, stop: i64) {
    covered.push((start, stop));
    covered.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(covered.len());
    for &(a, b) in covered.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *covered = merged;
}

/// Rates `[start, stop)` of an observation into records, split per month, price step and contract end.
fn rate(obs: &Observation, start: i64, stop: i64, prices: &PriceBook) -> Result<Vec<UsageRecord>, Error> {
    let node = &obs.node;
    let list_key = PriceKey::on_demand(&node.provider, &node.node_type);
    // (start, stop, capacity, contract) pieces before pricing.
    let mut held: Vec<(i64, i64, CapacityKind, Option<String>)> = Vec::new();
    match (&node.capacity, &node.contract) {
        (CapacityKind::Contract, Some(contract)) => {
            let end = prices.contract_end(contract).map(secs).unwrap_or(i64::MAX);
            if start < end {
                held.push((start, stop.min(end), CapacityKind::Contract, Some(contract.clone())));
            }
            if stop > end {
                held.push((start.max(end), stop, CapacityKind::OnDemand, None));
            }
        }
        (capacity, _) => held.push((start, stop, *capacity, None)),
    }
    let mut records = Vec::new();
    for (a, b, capacity, contract) in held {
        let key = PriceKey {
            provider: node.provider.clone(),
            node_type: node.node_type.clone(),
            capacity,
            contract: contract.clone(),
        };
        let what = match capacity {
            CapacityKind::Contract => "contract",
            CapacityKind::OnDemand => "on-demand",
            CapacityKind::Spot => "spot",
        };
        for month_piece in split_months(a, b) {
            for paid in prices.spans(what, &key, month_piece.0, month_piece.1)? {
                for piece in list_spans(prices, &list_key, &paid)? {
                    records.push(UsageRecord {
                        attempt: obs.attempt,
                        node_rank: obs.node_rank,
                        start: at(piece.start),
                        stop: at(piece.stop),
                        tenant: node.tenant.clone(),
                        provider: node.provider.clone(),
                        region: node.region.clone(),
                        node_type: node.node_type.clone(),
                        gpu: node.gpu,
                        gpus: node.gpus,
                        capacity,
                        contract: contract.clone(),
                        rate: paid.rate,
                        list_rate: piece.rate,
                        price_from: at(paid.price_from),
                        cost: cost_between(paid.rate, piece.start, piece.stop),
                        list_cost: cost_between(piece.rate, piece.start, piece.stop),
                        resource_id: node.resource_id.clone(),
                    });
                }
            }
        }
    }
    Ok(records)
}

/// The list price over a paid span, split where the list changes; the paid rate where there is no list
/// (a private cluster has none) or the list does not cover the span.
fn list_spans(prices: &PriceBook, list_key: &PriceKey, paid: &PricedSpan) -> Result<Vec<PricedSpan>, Error> {
    if prices.schedule(list_key).is_empty() {
        return Ok(vec![*paid]);
    }
    match prices.spans("list", list_key, paid.start, paid.stop) {
        Ok(spans) => Ok(spans),
        Err(Error::NoPrice { .. }) => Ok(vec![*paid]),
        Err(e) => Err(e),
    }
}

/// `[start, stop)` split at UTC month boundaries.
fn split_months(start: i64, stop: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut cursor = start;
    while cursor < stop {
        let end = secs(Month::containing(at(cursor)).end()).min(stop);
        out.push((cursor, end));
        cursor = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncovered_and_cover_keep_disjoint_intervals() {
        let mut c = Vec::new();
        cover(&mut c, 10, 20);
        cover(&mut c, 30, 40);
        assert_eq!(uncovered(&c, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(uncovered(&c, 12, 18), vec![]);
        assert_eq!(uncovered(&c, 15, 35), vec![(20, 30)]);
        cover(&mut c, 20, 30);
        assert_eq!(c, vec![(10, 40)]);
    }

    #[test]
    fn months_split_at_midnight_utc() {
        let nov30 = secs(crate::time::parse_time("t", "2026-11-30T23:00:00Z").unwrap());
        let parts = split_months(nov30, nov30 + 7200);
        assert_eq!(parts, vec![(nov30, nov30 + 3600), (nov30 + 3600, nov30 + 7200)]);
    }
}
