//! With PostgreSQL several servers may run: exactly one leads and reconciles, the others wait until
//! its lease expires. Needs `CUMULO_TEST_POSTGRES_URL` (see `scripts/dev-postgres.sh`).

use std::sync::Arc;
use std::time::Duration;

use cumulo_control::{Controller, Options};
use cumulo_store::Store;
use cumulo_store_postgres::PostgresStore;

async fn shared_store() -> Option<Arc<dyn Store>> {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("leader_{}_{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let options = cumulo_store_postgres::Options { schema: Some(schema), ..cumulo_store_postgres::Options::new(url) };
    Some(Arc::new(PostgresStore::open(options).await.expect("open postgres")))
}

fn server(store: &Arc<dyn Store>, name: &str) -> Controller {
    let mut options = Options::new(store.clone(), Vec::new());
    options.holder = name.to_string();
    options.lease_ttl_s = 1;
    Controller::new(options)
}

#[tokio::test]
async fn exactly_one_server_leads_until_its_lease_lapses() {
    let Some(store) = shared_store().await else { return };
    let a = server(&store, "server-a");
    let b = server(&store, "server-b");
    assert!(a.reconcile_once().await.unwrap().leading);
    assert!(!b.reconcile_once().await.unwrap().leading, "b must not lead while a's lease holds");
    assert!(a.reconcile_once().await.unwrap().leading, "a renews its lease");
    // a stops (crashes); after the lease lapses, b takes over.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(b.reconcile_once().await.unwrap().leading);
    assert!(!a.reconcile_once().await.unwrap().leading);
}
