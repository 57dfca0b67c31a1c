//! Metered usage in the store: what every backend shares to keep the ledger's usage records durable.
//!
//! A record is keyed by `(attempt, node rank, start)`. Appending is idempotent: a record already
//! stored is skipped; a different record under the same key, or one overlapping node-time already
//! stored for the same attempt and node, is a conflict. So replayed observations never bill twice,
//! even across restarts. Records are stored whole (the ledger's JSON) beside the columns queries use.

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
    let mut sorted: Vec<&UsageRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.job_id, r.attempt, r.node_rank, r.start_s));
    for w in sorted.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.job_id, a.attempt, a.node_rank) == (b.job_id, b.attempt, b.node_rank) && b.start_s < a.stop_s && a != b {
            return Err(overlap(b));
        }
    }
    Ok(rows)
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
        assert_eq!(store.append_usage(ledger.to_records()).await.unwrap(), 5);
        let all = store.usage_between(None, None).await.unwrap();
        assert_eq!(all, ledger.to_records());
        // records overlapping December only: job 1's December halves
        let december = store.usage_between(Some(t("2026-12-01")), Some(t("2027-01-01"))).await.unwrap();
        assert_eq!(december.len(), 2);
        assert!(december.iter().all(|r| r.start == t("2026-12-01")));
        // a window cutting records returns them whole (the caller clips)
        let around =
            store.usage_between(Some(t("2026-11-05T01:00:00Z")), Some(t("2026-11-05T02:00:00Z"))).await.unwrap();
        assert_eq!(around.len(), 1);
        assert_eq!(around[0].stop, t("2026-11-05T03:00:00Z"));
    }

    pub async fn usage_replays_change_nothing(store: Arc<dyn Store>) {
        let records = metered().to_records();
        assert_eq!(store.append_usage(records.clone()).await.unwrap(), 5);
        assert_eq!(store.append_usage(records.clone()).await.unwrap(), 0);
        let mut doubled = records.clone();
        doubled.extend(records.clone());
        assert_eq!(store.append_usage(doubled).await.unwrap(), 0);
        assert_eq!(store.usage_between(None, None).await.unwrap(), records);
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
        shifted.start = t("2026-11-30T21:00:00Z");
        shifted.cost = cumulo_ledger::cost_between(shifted.rate, shifted.start.timestamp(), shifted.stop.timestamp());
        shifted.list_cost =
            cumulo_ledger::cost_between(shifted.list_rate, shifted.start.timestamp(), shifted.stop.timestamp());
        let err = store.append_usage(vec![records[2].clone(), shifted]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: usage for attempt 1.1 node 0 from 2026-11-30T21:00:00+00:00 overlaps usage already stored"
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
