//! Usage records on SQLite: the `Store` usage methods (see `cumulo_store::usage`), one transaction
//! on the single writer connection per append.

use chrono::{DateTime, Utc};
use cumulo_store::Result;
use cumulo_store::usage::{UsageRecord, overlap, usage_bounds, usage_from_json, usage_rows};

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
            match stored {
                Some(text) if usage_from_json(&text)? == usage_from_json(&row.record)? => continue,
                Some(_) => return Err(overlap(row)),
                None => {}
            }
            let overlapping: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM usage_records
                 WHERE job_id = ? AND attempt = ? AND node_rank = ? AND start_s < ? AND stop_s > ?",
            )
            .bind(row.job_id)
            .bind(row.attempt)
            .bind(row.node_rank)
            .bind(row.stop_s)
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
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
}
