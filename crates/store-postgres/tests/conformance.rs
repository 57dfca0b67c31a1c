//! Runs the shared store conformance suite against PostgreSQL, each case in a fresh schema.
//! Needs `CUMULO_TEST_POSTGRES_URL` (see `scripts/dev-postgres.sh`); skips when it is unset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cumulo_store::Store;
use cumulo_store_postgres::{Options, PostgresStore};

static NEXT: AtomicU32 = AtomicU32::new(0);

async fn fresh_store() -> Option<PostgresStore> {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("t_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos());
    let options = Options { schema: Some(schema), max_connections: 8, ..Options::new(url) };
    Some(PostgresStore::open(options).await.expect("open postgres store"))
}

fn nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

async fn fresh() -> Option<Arc<dyn Store>> {
    Some(Arc::new(fresh_store().await?))
}

cumulo_store::conformance_tests!(fresh());

#[tokio::test]
async fn only_one_holder_leads_until_the_lease_expires() {
    let Some(store) = fresh_store().await else { return };
    assert!(store.try_lead("a", 1).await.unwrap());
    assert!(!store.try_lead("b", 1).await.unwrap(), "b must wait for a's lease");
    assert!(store.try_lead("a", 1).await.unwrap(), "a renews");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(store.try_lead("b", 30).await.unwrap(), "b takes the expired lease");
    assert!(!store.try_lead("a", 30).await.unwrap());
}

#[tokio::test]
async fn a_bad_url_names_the_field() {
    let Err(err) = PostgresStore::open(Options::new("mysql://nope")).await else { panic!("a mysql url must fail") };
    assert!(err.to_string().starts_with("invalid database url `mysql://nope`"), "{err}");
}
