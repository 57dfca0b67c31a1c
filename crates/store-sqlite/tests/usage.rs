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

/// The usage table as migrations 2 to 8 left it: a rowid table keyed by attempt, node and start,
/// with the start-only index (`also` adds more indexes: migration 6's page index).
fn usage_table_before_0009(also: &str) -> String {
    format!(
        "DROP TABLE usage_records;
         CREATE TABLE usage_records (
             job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, node_rank INTEGER NOT NULL,
             start_s INTEGER NOT NULL, stop_s INTEGER NOT NULL, tenant TEXT NOT NULL, provider TEXT NOT NULL,
             contract TEXT, cost_micros INTEGER NOT NULL, record TEXT NOT NULL,
             PRIMARY KEY (job_id, attempt, node_rank, start_s));
         CREATE INDEX usage_records_by_start ON usage_records (start_s);
         {also}"
    )
}

/// Writes `records` into the usage table as stored rows, bypassing the store's append.
async fn insert_rows(pool: &sqlx::SqlitePool, records: &[cumulo_store::usage::UsageRecord]) {
    for row in cumulo_store::usage::usage_rows(records).unwrap() {
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
        .execute(pool)
        .await
        .unwrap();
    }
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
    // Back to version 5: undo what migration 6 and the later ones made, so all re-run; then write
    // the pieces as a version-5 store held them, and let the store migrate again.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let rewind = usage_table_before_0009("DROP TABLE tenants; DROP TABLE history; DROP TABLE tenant_budgets;");
    sqlx::raw_sql(&format!("{rewind} PRAGMA user_version = 5")).execute(&pool).await.unwrap();
    insert_rows(&pool, &pieces).await;
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

#[tokio::test]
async fn migration_0009_keeps_every_record_in_page_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cumulo.db");
    drop(SqliteStore::open_path(&path).await.unwrap());
    let records = cumulo_store::usage::conformance::metered().to_records();
    // A version-8 store: the rowid table with its start and page indexes, holding the records.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let rewind = usage_table_before_0009(
        "CREATE INDEX usage_records_by_page ON usage_records (start_s, job_id, attempt, node_rank);",
    );
    sqlx::raw_sql(&format!("{rewind} PRAGMA user_version = 8")).execute(&pool).await.unwrap();
    insert_rows(&pool, &records).await;
    pool.close().await;
    let store = SqliteStore::open_path(&path).await.unwrap();
    assert_eq!(store.usage_between(None, None).await.unwrap(), records, "every record, unchanged");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let query = cumulo_store::usage::UsagePageQuery { after, limit: 5, ..Default::default() };
        let page = store.usage_page(query).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(cumulo_store::usage::UsageKey::of(last));
        paged.extend(page);
    }
    let mut in_page_order = records.clone();
    in_page_order.sort_by_key(cumulo_store::usage::UsageKey::of);
    assert_eq!(paged, in_page_order);
    assert_eq!(store.append_usage(records).await.unwrap(), 0, "replays still find the stored records");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let schema: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'usage_records' AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(schema.len(), 2, "the table and its attempt index, nothing else: {schema:?}");
    assert!(
        schema[0].ends_with("WITHOUT ROWID") && schema[0].contains("PRIMARY KEY (start_s, job_id, attempt, node_rank)")
    );
    assert!(
        schema[1].contains("usage_records_by_attempt ON usage_records (job_id, attempt, node_rank, start_s, stop_s)")
    );
}
