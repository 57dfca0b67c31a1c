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
