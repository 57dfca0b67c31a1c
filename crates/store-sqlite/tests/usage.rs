//! Runs the shared usage conformance cases (metered usage kept by the store) against SQLite, each on
//! a fresh database file.

use std::sync::Arc;

use cumulo_store::Store;
use cumulo_store_sqlite::{Options, SqliteStore};

async fn fresh() -> Option<Arc<dyn Store>> {
    // Leaked on purpose: the directory must outlive the store.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open(Options::new(dir.join("cumulo.db"))).await.expect("open sqlite store");
    Some(Arc::new(store))
}

cumulo_store::usage_conformance_tests!(fresh());

#[tokio::test]
async fn usage_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cumulo.db");
    let store = SqliteStore::open_path(&path).await.unwrap();
    let records = cumulo_store::usage::conformance::metered().to_records();
    assert_eq!(store.append_usage(records.clone()).await.unwrap(), 19, "hourly records");
    drop(store);
    let again = SqliteStore::open_path(&path).await.unwrap();
    assert_eq!(again.usage_between(None, None).await.unwrap(), records);
    assert_eq!(again.append_usage(records).await.unwrap(), 0);
}

/// Per-pass records as an older build wrote them: each hourly record cut into 10-minute pieces.
fn per_pass_pieces(records: &[cumulo_store::usage::UsageRecord]) -> Vec<cumulo_store::usage::UsageRecord> {
    let mut pieces = Vec::new();
    for r in records {
        let mut at = r.start;
        while at < r.stop {
            let next = (at + chrono::Duration::minutes(10)).min(r.stop);
            pieces.push(r.clip(Some(at), Some(next)).expect("a piece inside the record"));
            at = next;
        }
    }
    pieces
}

#[tokio::test]
async fn migration_0006_compacts_per_pass_records_into_hours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cumulo.db");
    drop(SqliteStore::open_path(&path).await.unwrap());
    let hourly = cumulo_store::usage::conformance::metered().to_records();
    let pieces = per_pass_pieces(&hourly);
    assert_eq!(pieces.len(), 19 * 6);
    // Write the pieces as a version-5 store held them, then let the store migrate again.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    for row in cumulo_store::usage::usage_rows(&pieces).unwrap() {
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
        .execute(&pool)
        .await
        .unwrap();
    }
    // Back to version 5: undo what migration 6 and the later ones made, so all re-run.
    sqlx::raw_sql(
        "DROP INDEX usage_records_by_page; DROP TABLE tenants; DROP TABLE history; DROP TABLE tenant_budgets; \
         PRAGMA user_version = 5",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = SqliteStore::open_path(&path).await.unwrap();
    let migrated = store.usage_between(None, None).await.unwrap();
    assert_eq!(migrated, hourly, "the pieces of each hour are one record again, costs unchanged");
    let cost = |rs: &[cumulo_store::usage::UsageRecord]| rs.iter().map(|r| r.cost).sum::<cumulo_types::Money>();
    assert_eq!(cost(&migrated), cost(&pieces));
    // the stored columns agree with the records
    let stored: Vec<(i64, i64)> =
        sqlx::query_as("SELECT stop_s, cost_micros FROM usage_records ORDER BY job_id, attempt, node_rank, start_s")
            .fetch_all(&sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap())
            .await
            .unwrap();
    let expected: Vec<(i64, i64)> = hourly.iter().map(|r| (r.stop.timestamp(), r.cost.micros())).collect();
    assert_eq!(stored, expected);
}
