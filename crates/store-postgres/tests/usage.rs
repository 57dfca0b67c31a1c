//! Runs the shared usage conformance cases (metered usage kept by the store) against PostgreSQL, each
//! in a fresh schema. Needs `CUMULO_TEST_POSTGRES_URL` (see `scripts/dev-postgres.sh`); skips when it
//! is unset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cumulo_store::Store;
use cumulo_store_postgres::{Options, PostgresStore};

static NEXT: AtomicU32 = AtomicU32::new(0);

async fn fresh() -> Option<Arc<dyn Store>> {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("u_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let options = Options { schema: Some(schema), max_connections: 4, ..Options::new(url) };
    Some(Arc::new(PostgresStore::open(options).await.expect("open postgres store")))
}

cumulo_store::usage_conformance_tests!(fresh());

#[tokio::test]
async fn migration_0006_compacts_per_pass_records_into_hours() {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
        return;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let schema = format!("m6_{}_{nanos}", std::process::id());
    let options = Options { schema: Some(schema.clone()), max_connections: 2, ..Options::new(url.clone()) };
    drop(PostgresStore::open(options.clone()).await.unwrap());
    let hourly = cumulo_store::usage::conformance::metered().to_records();
    // per-pass records as an older build wrote them: each hour in 10-minute pieces
    let mut pieces = Vec::new();
    for r in &hourly {
        let mut at = r.start;
        while at < r.stop {
            let next = (at + chrono::Duration::minutes(10)).min(r.stop);
            pieces.push(r.clip(Some(at), Some(next)).unwrap());
            at = next;
        }
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for row in cumulo_store::usage::usage_rows(&pieces).unwrap() {
        sqlx::query(&format!(
            "INSERT INTO {schema}.usage_records
             (job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
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
    sqlx::raw_sql(&format!(
        "DROP INDEX {schema}.usage_records_by_page; DROP TABLE {schema}.tenants; DROP TABLE {schema}.history; DROP TABLE {schema}.tenant_budgets; \
         CREATE INDEX usage_records_by_start ON {schema}.usage_records (start_s); \
         DELETE FROM {schema}.cumulo_schema_version WHERE version >= 6"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let store = PostgresStore::open(options).await.unwrap();
    let migrated = store.usage_between(None, None).await.unwrap();
    assert_eq!(migrated, hourly, "the pieces of each hour are one record again, costs unchanged");
    let stored: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT stop_s, cost_micros FROM {schema}.usage_records ORDER BY job_id, attempt, node_rank, start_s"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(i64, i64)> = hourly.iter().map(|r| (r.stop.timestamp(), r.cost.micros())).collect();
    assert_eq!(stored, expected);
    // migration 9 dropped the start-only index (the page index leads with start_s)
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'usage_records' ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, ["usage_records_by_page", "usage_records_pkey"]);
}
