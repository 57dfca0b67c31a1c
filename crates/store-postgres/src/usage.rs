//! Usage records on PostgreSQL: the `Store` usage methods (see `cumulo_store::usage`), one transaction
//! per append; a transaction-scoped advisory lock per attempt and node serialises servers appending
//! the same node's usage.

use chrono::{DateTime, Utc};
use cumulo_store::Result;
use cumulo_store::usage::{
    Append, UsageKey, UsagePageQuery, UsageRecord, append_decision, overlap, usage_bounds, usage_from_json, usage_rows,
};

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
            let from_s = match append_decision(row, stored.as_deref())? {
                Append::Skip => continue,
                Append::Insert => row.start_s,
                Append::Extend { from_s } => from_s,
            };
            // The seconds this row adds must be stored under no other key.
            let overlapping: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM usage_records
                 WHERE job_id = $1 AND attempt = $2 AND node_rank = $3 AND start_s < $4 AND stop_s > $5
                   AND start_s <> $6",
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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

    pub(crate) async fn usage_rows_page(&self, query: UsagePageQuery) -> Result<Vec<UsageRecord>> {
        let (since, until) = usage_bounds(query.since, query.until);
        let after = query.after.unwrap_or(UsageKey {
            start_s: i64::MIN,
            job_id: i64::MIN,
            attempt: i64::MIN,
            node_rank: i64::MIN,
        });
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT record FROM usage_records WHERE stop_s > $1 AND start_s < $2 AND ($3::text IS NULL OR tenant = $3)
               AND (start_s, job_id, attempt, node_rank) > ($4, $5, $6, $7)
             ORDER BY start_s, job_id, attempt, node_rank LIMIT $8",
        )
        .bind(since)
        .bind(until)
        .bind(&query.tenant)
        .bind(after.start_s)
        .bind(after.job_id)
        .bind(after.attempt)
        .bind(after.node_rank)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        texts.iter().map(|t| usage_from_json(t)).collect()
    }
}
