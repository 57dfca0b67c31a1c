//! The conformance suite every `Store` backend runs, each case on a fresh database.
//!
//! A backend's test file calls [`crate::conformance_tests!`] with an async expression that opens a
//! fresh, migrated store (or `None` to skip, e.g. when no PostgreSQL URL is set).

use std::sync::Arc;

use crate::Store;

/// Generates one `#[tokio::test]` per conformance case. `$open` is an async block evaluating to
/// `Option<Arc<dyn Store>>` that returns a fresh store each time.
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::conformance_tests!(@cases $open;
            submit_returns_ids_and_is_durable
        );
    };
    (@cases $open:expr; $($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $open.await else { return };
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

pub async fn submit_returns_ids_and_is_durable(store: Arc<dyn Store>) {
    let _ = store;
}
