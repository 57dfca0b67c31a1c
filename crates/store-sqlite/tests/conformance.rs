//! Runs the shared store conformance suite against SQLite, each case on a fresh database file.

use std::sync::Arc;

use cumulo_store::Store;
use cumulo_store_sqlite::{Options, SqliteStore};

async fn fresh() -> Option<Arc<dyn Store>> {
    // The directory is leaked on purpose: it must outlive the store, and the OS temp dir is cleaned
    // by the test runner's environment.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open(Options::new(dir.join("cumulo.db"))).await.expect("open sqlite store");
    Some(Arc::new(store))
}

cumulo_store::conformance_tests!(fresh());
