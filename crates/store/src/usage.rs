//! Metered usage in the store: what every backend shares to keep the ledger's usage records durable.
//!
//! A record is keyed by `(attempt, node rank, start)`. Appending is idempotent: a record already
//! stored, or a shorter version of it (a replayed heartbeat), is skipped; a longer version on the same
//! terms (the ledger extends a node's open record, up to an hour) replaces it when the seconds it
//! adds are not stored yet; a different record under the same key, or one overlapping node-time
//! already stored for the same attempt and node, is a conflict. So replayed observations never bill
//! twice, even across restarts. Records are stored whole (the ledger's JSON) beside the columns
//! queries use. [`append_decision`] is that rule, shared by every backend.

use chrono::{DateTime, Utc};
pub use cumulo_ledger::UsageRecord;

use crate::{Error, Result};

/// The columns of one usage row, as every backend stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub job_id: i64,
    pub attempt: i64,
    pub node_rank: i64,
    pub start_s: i64,
    pub stop_s: i64,
    pub tenant: String,
    pub provider: String,
    pub contract: Option<String>,
    pub cost_micros: i64,
    /// The record as JSON (the source of truth; the other columns are for queries).
    pub record: String,
}

/// Checks a batch (each record's own consistency, and no overlap inside the batch) and turns it into
/// rows. `Error::Invalid` names the record.
pub fn usage_rows(records: &[UsageRecord]) -> Result<Vec<UsageRow>> {
    let mut rows: Vec<UsageRow> = Vec::with_capacity(records.len());
    for r in records {
        r.check().map_err(|e| Error::Invalid {
            field: "usage record",
            value: e.to_string(),
            expected: "a record rated by the ledger (one month, costs matching rates)",
        })?;
        rows.push(UsageRow {
            job_id: i64::try_from(r.attempt.job.0).map_err(|_| Error::Invalid {
                field: "job id",
                value: r.attempt.job.to_string(),
                expected: "a job id below 2^63",
            })?,
            attempt: i64::from(r.attempt.attempt),
            node_rank: i64::from(r.node_rank),
            start_s: r.start.timestamp(),
            stop_s: r.stop.timestamp(),
            tenant: r.tenant.clone(),
            provider: r.provider.to_string(),
            contract: r.contract.clone(),
            cost_micros: r.cost.micros(),
            record: serde_json::to_string(r).map_err(|e| Error::Backend(e.to_string()))?,
        });
    }
    // Two versions of one record in a batch (a node's open record, extended twice): keep the longer.
    rows.sort_by_key(|r| (r.job_id, r.attempt, r.node_rank, r.start_s, std::cmp::Reverse(r.stop_s)));
    let mut kept: Vec<UsageRow> = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(longer) = kept.last()
            && (longer.job_id, longer.attempt, longer.node_rank, longer.start_s)
                == (row.job_id, row.attempt, row.node_rank, row.start_s)
            && usage_from_json(&row.record)?.is_prefix_of(&usage_from_json(&longer.record)?)
        {
            continue;
        }
        kept.push(row);
    }
    for w in kept.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if (a.job_id, a.attempt, a.node_rank) == (b.job_id, b.attempt, b.node_rank) && b.start_s < a.stop_s {
            return Err(overlap(b));
        }
    }
    Ok(kept)
}

/// What an append does with one row, given the record stored under its key (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Append {
    /// Nothing stored under the key: insert, if `[start_s, stop_s)` overlaps nothing stored.
    Insert,
    /// The stored record is this one cut short: replace it, if `[from_s, stop_s)` overlaps nothing.
    Extend { from_s: i64 },
    /// Every second of the row is already stored: skip it.
    Skip,
}

/// The rule of an append for one row: `stored` is the record under the row's key.
pub fn append_decision(row: &UsageRow, stored: Option<&str>) -> Result<Append> {
    let Some(stored) = stored else { return Ok(Append::Insert) };
    let (stored, new) = (usage_from_json(stored)?, usage_from_json(&row.record)?);
    if new.is_prefix_of(&stored) {
        Ok(Append::Skip)
    } else if stored.is_prefix_of(&new) {
        Ok(Append::Extend { from_s: stored.stop.timestamp() })
    } else {
        Err(overlap(row))
    }
}

/// The conflict for a row whose node-time is already stored differently.
pub fn overlap(row: &UsageRow) -> Error {
    Error::Conflict(format!(
        "usage for attempt {}.{} node {} from {} overlaps usage already stored",
        row.job_id,
        row.attempt,
        row.node_rank,
        DateTime::<Utc>::from_timestamp(row.start_s, 0).map_or_else(|| row.start_s.to_string(), |t| t.to_rfc3339()),
    ))
}

/// Parses a stored record back.
pub fn usage_from_json(text: &str) -> Result<UsageRecord> {
    serde_json::from_str(text).map_err(|e| Error::Backend(format!("stored usage record does not parse: {e}")))
}

/// Parses a page of stored records read back as one JSON array.
pub fn usage_page_from_json(text: &str) -> Result<Vec<UsageRecord>> {
    serde_json::from_str(text).map_err(|e| Error::Backend(format!("a stored usage record does not parse: {e}")))
}

/// What [`crate::Store::usage_page`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsagePageQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only this tenant's records.
    pub tenant: Option<String>,
    /// The key of the previous page's last record.
    pub after: Option<UsageKey>,
    pub limit: u32,
}

/// Where a page of usage records ends: the last record's `(start, job, attempt, node rank)`, the
/// order of [`crate::Store::usage_page`]. Written as `start.job.attempt.rank` in page tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageKey {
    pub start_s: i64,
    pub job_id: i64,
    pub attempt: i64,
    pub node_rank: i64,
}

impl UsageKey {
    /// The key of a record.
    pub fn of(record: &UsageRecord) -> UsageKey {
        UsageKey {
            start_s: record.start.timestamp(),
            job_id: i64::try_from(record.attempt.job.0).unwrap_or(i64::MAX),
            attempt: i64::from(record.attempt.attempt),
            node_rank: i64::from(record.node_rank),
        }
    }

    /// Parses a page token written by `Display`.
    pub fn parse(token: &str) -> Option<UsageKey> {
        let mut parts = token.split('.').map(str::parse::<i64>);
        let key = UsageKey {
            start_s: parts.next()?.ok()?,
            job_id: parts.next()?.ok()?,
            attempt: parts.next()?.ok()?,
            node_rank: parts.next()?.ok()?,
        };
        parts.next().is_none().then_some(key)
    }
}

impl std::fmt::Display for UsageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}.{}", self.start_s, self.job_id, self.attempt, self.node_rank)
    }
}

/// The `[since, until)` bounds of a query in Unix seconds (open ends as the extremes).
pub fn usage_bounds(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> (i64, i64) {
    (since.map_or(i64::MIN, |t| t.timestamp()), until.map_or(i64::MAX, |t| t.timestamp()))
}

/// The usage conformance cases every backend runs (see [`crate::usage_conformance_tests!`]).
#[cfg(feature = "conformance")]
pub mod conformance {
    use std::sync::Arc;

    use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey, parse_time};
    use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};

    use crate::usage::UsagePageQuery;
    use crate::{Error, Store};

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        parse_time("t", s).unwrap()
    }

    /// Job 1: two contract nodes 2026-11-30T20:00 → 2026-12-01T04:00 at $60 (split at the month);
    /// job 2: one on-demand node 2026-11-05T00:00 → 03:00 at $98.32.
    pub fn metered() -> Ledger {
        let aws = Provider::new("aws").unwrap();
        let mut prices = PriceBook::new();
        prices
            .set_price(
                PriceKey::on_demand(&aws, "p5.48xlarge"),
                t("2026-01-01"),
                Money::parse_dollars("98.32").unwrap(),
            )
            .unwrap();
        prices
            .set_price(PriceKey::contract(&aws, "p5.48xlarge", "aws-2026"), t("2026-01-01"), Money::from_dollars(60))
            .unwrap();
        let mut ledger = Ledger::new();
        for (job, rank, contract, start, stop) in [
            (1, 0, Some("aws-2026"), "2026-11-30T20:00:00Z", "2026-12-01T04:00:00Z"),
            (1, 1, Some("aws-2026"), "2026-11-30T20:00:00Z", "2026-12-01T04:00:00Z"),
            (2, 0, None, "2026-11-05T00:00:00Z", "2026-11-05T03:00:00Z"),
        ] {
            let obs = Observation {
                attempt: AttemptId { job: JobId(job), attempt: 1 },
                node_rank: rank,
                start: t(start),
                stop: t(stop),
                node: NodeMeta {
                    tenant: "research".into(),
                    provider: aws.clone(),
                    region: "us-east-1".into(),
                    node_type: "p5.48xlarge".into(),
                    gpu: Some(GpuModel::H100),
                    gpus: 8,
                    capacity: if contract.is_some() { CapacityKind::Contract } else { CapacityKind::OnDemand },
                    contract: contract.map(String::from),
                    resource_id: None,
                },
            };
            ledger.ingest(&obs, &prices).unwrap();
        }
        ledger
    }

    pub async fn usage_appends_and_reads_back(store: Arc<dyn Store>) {
        let ledger = metered();
        // hourly records: 2 nodes × 8 h of job 1, 3 h of job 2
        assert_eq!(store.append_usage(ledger.to_records()).await.unwrap(), 19);
        let all = store.usage_between(None, None).await.unwrap();
        assert_eq!(all, ledger.to_records());
        // records overlapping December only: job 1's December hours, 4 per node
        let december = store.usage_between(Some(t("2026-12-01")), Some(t("2027-01-01"))).await.unwrap();
        assert_eq!(december.len(), 8);
        assert!(december.iter().all(|r| r.start >= t("2026-12-01")));
        // a window cutting records returns them whole (the caller clips)
        let around =
            store.usage_between(Some(t("2026-11-05T01:30:00Z")), Some(t("2026-11-05T01:40:00Z"))).await.unwrap();
        assert_eq!(around.len(), 1);
        assert_eq!((around[0].start, around[0].stop), (t("2026-11-05T01:00:00Z"), t("2026-11-05T02:00:00Z")));
    }

    pub async fn usage_replays_change_nothing(store: Arc<dyn Store>) {
        let records = metered().to_records();
        assert_eq!(store.append_usage(records.clone()).await.unwrap(), 19);
        assert_eq!(store.append_usage(records.clone()).await.unwrap(), 0);
        let mut doubled = records.clone();
        doubled.extend(records.clone());
        assert_eq!(store.append_usage(doubled).await.unwrap(), 0);
        assert_eq!(store.usage_between(None, None).await.unwrap(), records);
    }

    /// `record` ending at `stop` instead, costs re-rated.
    fn ending(record: &cumulo_ledger::UsageRecord, stop: &str) -> cumulo_ledger::UsageRecord {
        let (start, stop) = (record.start.timestamp(), t(stop));
        cumulo_ledger::UsageRecord {
            stop,
            cost: cumulo_ledger::cost_between(record.rate, start, stop.timestamp()),
            list_cost: cumulo_ledger::cost_between(record.list_rate, start, stop.timestamp()),
            ..record.clone()
        }
    }

    pub async fn an_open_record_is_extended_once_and_replays_of_it_change_nothing(store: Arc<dyn Store>) {
        let records = metered().to_records();
        // job 1 node 0: 20:00-21:00 and 21:00-22:00
        let (first, second) = (records[0].clone(), records[1].clone());
        let short = ending(&first, "2026-11-30T20:10:00Z");
        assert_eq!(store.append_usage(vec![short.clone()]).await.unwrap(), 1);
        assert_eq!(store.append_usage(vec![first.clone()]).await.unwrap(), 1, "the longer version replaces it");
        assert_eq!(store.append_usage(vec![short.clone()]).await.unwrap(), 0, "a replayed shorter version is stored");
        assert_eq!(store.append_usage(vec![short.clone(), first.clone()]).await.unwrap(), 0);
        assert_eq!(store.usage_between(None, None).await.unwrap(), vec![first.clone()]);
        // a batch with both versions of a new record keeps the longer one
        let second_short = ending(&second, "2026-11-30T21:05:00Z");
        assert_eq!(store.append_usage(vec![second.clone(), second_short]).await.unwrap(), 1);
        assert_eq!(store.usage_between(None, None).await.unwrap(), vec![first.clone(), second.clone()]);
        // on other terms (another price) the same start is a conflict
        let mut repriced = ending(&first, "2026-11-30T20:10:00Z");
        repriced.rate = Money::from_dollars(61);
        repriced.cost =
            cumulo_ledger::cost_between(repriced.rate, repriced.start.timestamp(), repriced.stop.timestamp());
        let err = store.append_usage(vec![repriced]).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        // an extension into seconds stored under another key is a conflict, and nothing changes
        let third = records[2].clone();
        let third_short = ending(&third, "2026-11-30T22:30:00Z");
        store.append_usage(vec![third_short.clone()]).await.unwrap();
        let mut into_next = second.clone();
        into_next.start = t("2026-11-30T21:40:00Z");
        let into_next = ending(&into_next, "2026-11-30T22:40:00Z");
        let err = store.append_usage(vec![ending(&third, "2026-11-30T23:00:00Z"), into_next]).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert_eq!(store.usage_between(None, None).await.unwrap(), vec![first, second, third_short.clone()]);
        // extending a record over seconds another key holds is a conflict
        let job2 = records[16].clone();
        let mut later = job2.clone();
        later.start = t("2026-11-05T00:30:00Z");
        let later = ending(&later, "2026-11-05T00:40:00Z");
        store.append_usage(vec![ending(&job2, "2026-11-05T00:10:00Z"), later]).await.unwrap();
        let err = store.append_usage(vec![job2.clone()]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: usage for attempt 2.1 node 0 from 2026-11-05T00:00:00+00:00 overlaps usage already stored"
        );
    }

    pub async fn usage_pages_by_start_cover_every_record_once(store: Arc<dyn Store>) {
        let records = metered().to_records();
        store.append_usage(records.clone()).await.unwrap();
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store.usage_page(UsagePageQuery { after, limit: 4, ..Default::default() }).await.unwrap();
            assert!(page.len() <= 4, "a page holds at most its limit");
            let Some(last) = page.last() else { break };
            after = Some(crate::usage::UsageKey::of(last));
            paged.extend(page);
        }
        let mut expected = records.clone();
        expected.sort_by_key(crate::usage::UsageKey::of);
        assert_eq!(paged, expected, "pages in (start, job, attempt, rank) order, each record once");
        // since/until keep records overlapping the window
        let window = UsagePageQuery {
            since: Some(t("2026-11-05T01:30:00Z")),
            until: Some(t("2026-11-05T02:30:00Z")),
            limit: 100,
            ..Default::default()
        };
        let starts: Vec<_> = store.usage_page(window.clone()).await.unwrap().iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![t("2026-11-05T01:00:00Z"), t("2026-11-05T02:00:00Z")]);
        // a tenant's page holds only its records
        let other = UsagePageQuery { tenant: Some("serving".into()), ..window };
        assert!(store.usage_page(other).await.unwrap().is_empty(), "every metered record is research's");
        let all = UsagePageQuery { tenant: Some("research".into()), limit: 100, ..Default::default() };
        assert_eq!(store.usage_page(all).await.unwrap().len(), records.len());
    }

    pub async fn conflicting_usage_is_refused_whole(store: Arc<dyn Store>) {
        let records = metered().to_records();
        store.append_usage(records[..1].to_vec()).await.unwrap();
        // the same key with another price
        let mut other = records[0].clone();
        other.rate = Money::from_dollars(61);
        other.cost = cumulo_ledger::cost_between(other.rate, other.start.timestamp(), other.stop.timestamp());
        let err = store.append_usage(vec![records[1].clone(), other]).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        // overlapping node-time under another start
        let mut shifted = records[0].clone();
        shifted.start = t("2026-11-30T20:30:00Z");
        shifted.cost = cumulo_ledger::cost_between(shifted.rate, shifted.start.timestamp(), shifted.stop.timestamp());
        shifted.list_cost =
            cumulo_ledger::cost_between(shifted.list_rate, shifted.start.timestamp(), shifted.stop.timestamp());
        let err = store.append_usage(vec![records[2].clone(), shifted]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: usage for attempt 1.1 node 0 from 2026-11-30T20:30:00+00:00 overlaps usage already stored"
        );
        // nothing of either batch was kept
        assert_eq!(store.usage_between(None, None).await.unwrap(), records[..1].to_vec());
        // a record whose cost does not match its rate is invalid
        let mut tampered = records[3].clone();
        tampered.cost = Money(1);
        let err = store.append_usage(vec![tampered]).await.unwrap_err();
        assert!(err.to_string().starts_with("invalid usage record `usage record for attempt"), "{err}");
    }
}

/// Generates one `#[tokio::test]` per usage conformance case; `$open` as for
/// [`crate::conformance_tests!`].
#[cfg(feature = "conformance")]
#[macro_export]
macro_rules! usage_conformance_tests {
    ($open:expr) => {
        $crate::usage_conformance_tests!(@cases $open;
            usage_appends_and_reads_back
            usage_replays_change_nothing
            conflicting_usage_is_refused_whole
            an_open_record_is_extended_once_and_replays_of_it_change_nothing
            usage_pages_by_start_cover_every_record_once
        );
    };
    (@cases $open:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $open.await else { return };
                $crate::usage::conformance::$case(store).await;
            }
        )*
    };
}
