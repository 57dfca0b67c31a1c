//! Usage records on SQLite: the `Store` usage methods (see `cumulo_store::usage`), one transaction
//! on the single writer connection per append.

use chrono::{DateTime, Utc};
use cumulo_store::Result;
use cumulo_store::usage::{
    Append, UsageKey, UsagePageQuery, UsageRecord, append_decision, overlap, usage_bounds, usage_from_json,
    usage_page_from_json, usage_rows,
};

use crate::{SqliteStore, backend};

impl SqliteStore {
    pub(crate) async fn append_usage_rows(&self, records: Vec<UsageRecord>) -> Result<u64> {
        let rows = usage_rows(&records)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        for row in &rows {
            let stored: Option<String> = sqlx::query_scalar(
                "SELECT record FROM usage_records WHERE job_id = ? AND attempt = ? AND node_rank = ? AND start_s = ?",
            )
            .bind(row.job_id)
            .bind(row.attempt)
            .bind(row.node_rank)
            .bind(row.start_s)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let from_s = match append_decision(row, stored.as_deref())? {
                Append::Skip => continue,
                Append::Insert => row.start_s,
                Append::Extend { from_s } => from_s,
            };
            // The seconds this row adds must be stored under no other key.
            let overlapping: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM usage_records
                 WHERE job_id = ? AND attempt = ? AND node_rank = ? AND start_s < ? AND stop_s > ?
                   AND start_s <> ?",
            )
            .bind(row.job_id)
            .bind(row.attempt)
            .bind(row.node_rank)
            .bind(row.stop_s)
            .bind(from_s)
            .bind(row.start_s)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            if overlapping > 0 {
                return Err(overlap(row));
            }
            sqlx::query(
                "INSERT INTO usage_records
                 (job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (job_id, attempt, node_rank, start_s)
                 DO UPDATE SET stop_s = excluded.stop_s, cost_micros = excluded.cost_micros, record = excluded.record",
            )
            .bind(row.job_id)
            .bind(row.attempt)
            .bind(row.node_rank)
            .bind(row.start_s)
            .bind(row.stop_s)
            .bind(&row.tenant)
            .bind(&row.provider)
            .bind(&row.contract)
            .bind(row.cost_micros)
            .bind(&row.record)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            inserted += 1;
        }
        tx.commit().await.map_err(backend)?;
        Ok(inserted)
    }

    pub(crate) async fn usage_rows_between(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UsageRecord>> {
        let (since, until) = usage_bounds(since, until);
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT record FROM usage_records WHERE stop_s > ? AND start_s < ?
             ORDER BY job_id, attempt, node_rank, start_s",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.readers)
        .await
        .map_err(backend)?;
        texts.iter().map(|t| usage_from_json(t)).collect()
    }

    pub(crate) async fn usage_rows_page(&self, query: UsagePageQuery) -> Result<Vec<UsageRecord>> {
        let (since, until) = usage_bounds(query.since, query.until);
        let after = query.after.unwrap_or(UsageKey {
            start_s: i64::MIN,
            job_id: i64::MIN,
            attempt: i64::MIN,
            node_rank: i64::MIN,
        });
        // The page comes back as one value, a JSON array of the records: sqlx-sqlite hands each row
        // from its worker thread to the caller through a channel, which cost more than the rest of an
        // export together when a page was 20,000 rows. The table is kept in page order (migration 9),
        // so the page is one range of it. The array is not ordered by an `ORDER BY` inside
        // `group_concat` (SQLite would copy every record into a sorter); it comes in the subquery's
        // order in practice, and is put in key order here, which costs one pass when it already is.
        let page: Option<String> = sqlx::query_scalar(
            "SELECT '[' || group_concat(record, ',') || ']'
             FROM (SELECT start_s, job_id, attempt, node_rank, record FROM usage_records
                   WHERE stop_s > ? AND start_s < ? AND (? IS NULL OR tenant = ?)
                     AND (start_s, job_id, attempt, node_rank) > (?, ?, ?, ?)
                   ORDER BY start_s, job_id, attempt, node_rank LIMIT ?)",
        )
        .bind(since)
        .bind(until)
        .bind(&query.tenant)
        .bind(&query.tenant)
        .bind(after.start_s)
        .bind(after.job_id)
        .bind(after.attempt)
        .bind(after.node_rank)
        .bind(i64::from(query.limit))
        .fetch_one(&self.readers)
        .await
        .map_err(backend)?;
        let mut records = page.map_or_else(|| Ok(Vec::new()), |text| usage_page_from_json(&text))?;
        records.sort_by_key(UsageKey::of);
        Ok(records)
    }
}
