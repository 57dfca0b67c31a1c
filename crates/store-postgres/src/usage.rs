//! Usage records on PostgreSQL: the `Store` usage methods (see `cumulo_store::usage`), one transaction
//! per append; a transaction-scoped advisory lock per attempt and node serialises servers appending
//! the same node's usage.

use chrono::{DateTime, Utc};
use cumulo_store::Result;
use cumulo_store::usage::{UsageRecord, overlap, usage_bounds, usage_from_json, usage_rows};

use crate::{PostgresStore, backend};

impl PostgresStore {
    pub(crate) async fn append_usage_rows(&self, records: Vec<UsageRecord>) -> Result<u64> {
        let rows = usage_rows(&records)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        for row in &rows {
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('cumulo-usage:' || $1 || '.' || $2 || '.' || $3, 0))",
            )
            .bind(row.job_id.to_string())
            .bind(row.attempt.to_string())
            .bind(row.node_rank.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let stored: Option<String> = sqlx::query_scalar(
                "SELECT record FROM usage_records WHERE job_id = $1 AND attempt = $2 AND node_rank = $3 AND start_s = $4",
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
                 WHERE job_id = $1 AND attempt = $2 AND node_rank = $3 AND start_s < $4 AND stop_s > $5",
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
            "SELECT record FROM usage_records WHERE stop_s > $1 AND start_s < $2
             ORDER BY job_id, attempt, node_rank, start_s",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        texts.iter().map(|t| usage_from_json(t)).collect()
    }
}
