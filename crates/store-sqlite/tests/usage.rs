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
    assert_eq!(store.append_usage(records.clone()).await.unwrap(), 5);
    drop(store);
    let again = SqliteStore::open_path(&path).await.unwrap();
    assert_eq!(again.usage_between(None, None).await.unwrap(), records);
    assert_eq!(again.append_usage(records).await.unwrap(), 0);
}
