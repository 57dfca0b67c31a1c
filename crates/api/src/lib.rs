//! Cumulo's REST API: everything under `/v1`, plus `/healthz` and `/metrics`, as one axum router
//! over an `Arc<dyn Store>`, and a typed HTTP [`client`] for the CLI and benchmarks.
//!
//! Invariants (each kept by a test in `tests/router.rs`):
//! - every route but `/healthz` answers 401 without a valid token;
//! - a member sees and cancels only its tenant's jobs, a viewer only reads;
//! - a bad request gets a 4xx naming the field and changes nothing;
//! - a submit answers 2xx only after the store made the job durable, and a retried submit with the
//!   same `Idempotency-Key` never creates a second job; the same key with another body is a 422;
//! - past the in-flight budgets ([`load`]) a request is answered 503 with `Retry-After`, never
//!   queued without bound.

pub mod auth;
pub mod client;
pub mod dashboard;
pub mod error;
mod extract;
pub mod fleet;
pub mod history;
mod jobs;
pub mod load;
mod logs;
pub mod metrics;
pub mod money_metrics;
pub mod openapi;
pub mod tenants;
mod tokens;
pub mod uploads;
pub mod usage;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use cumulo_store::Store;

pub use error::{ApiError, ErrorBody};
pub use fleet::{Cluster, Fleet};
pub use metrics::Metrics;

/// Errors of the client side of this crate (the server side answers with [`ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body.
    #[error("server answered {status}: {body}")]
    Api { status: u16, body: ErrorBodyDisplay },
    #[error("cannot reach the server at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error("invalid {field} `{value}`: expected {expected}")]
    Invalid { field: &'static str, value: String, expected: &'static str },
}

/// An [`ErrorBody`] printed as `reason (field: F)`.
#[derive(Debug)]
pub struct ErrorBodyDisplay(pub ErrorBody);

impl std::fmt::Display for ErrorBodyDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.field {
            Some(field) => write!(f, "{} (field `{field}`)", self.0.reason),
            None => write!(f, "{}", self.0.reason),
        }
    }
}

/// Settings of the API layer.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Most jobs in one batch submit.
    pub max_batch_jobs: usize,
    /// Most request body bytes held at once, over all requests; past it requests get 503 with
    /// `Retry-After` ([`load`]).
    pub max_inflight_body_bytes: usize,
    /// Most jobs being submitted at once, over all requests; past it submits get 503.
    pub max_inflight_jobs: usize,
    /// Largest upload (`POST /v1/uploads`: a job's local workdir and file_mounts) accepted.
    pub upload_limit_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            body_limit_bytes: 16 * 1024 * 1024,
            max_batch_jobs: 10_000,
            max_inflight_body_bytes: 64 * 1024 * 1024,
            max_inflight_jobs: 50_000,
            upload_limit_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub(crate) tokens: Arc<auth::TokenCache>,
    pub(crate) load: Arc<load::Load>,
    /// Names of the tenants stored through `POST /v1/tenants`, as last read.
    pub(crate) stored_tenants: Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
    /// Seals jobs' secrets before they are stored. [`AppState::new`] makes one kept in memory
    /// only; the server replaces it with the key in its data directory.
    pub secret_key: Arc<cumulo_store::secrets::SecretKey>,
    /// Where uploads are kept ([`uploads`]); `None`: this server takes none.
    pub uploads_dir: Option<std::path::PathBuf>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, fleet: Arc<Fleet>, metrics: Arc<Metrics>, config: Config) -> AppState {
        let load = Arc::new(load::Load::new(config.max_inflight_body_bytes, config.max_inflight_jobs));
        AppState {
            store,
            fleet,
            metrics,
            config: Arc::new(config),
            tokens: Arc::default(),
            load,
            stored_tenants: Arc::default(),
            secret_key: Arc::new(cumulo_store::secrets::SecretKey::ephemeral()),
            uploads_dir: None,
        }
    }
}

/// Every route with its method, path and summary: the router and the OpenAPI document are both
/// checked against this list by tests.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/healthz", "liveness: 200 while the server runs; needs no token"),
    ("get", "/metrics", "Prometheus text: queue depth by state, placements, decision latency, utilisation"),
    ("get", "/v1/openapi.json", "this document"),
    ("get", "/v1/whoami", "the tenant and role of the calling token"),
    ("post", "/v1/jobs", "submit one job (YAML or JSON job file); Idempotency-Key makes retries safe"),
    (
        "get",
        "/v1/jobs",
        "list jobs, filtered by state, tenant, kind, name and cluster, paginated by id (oldest or newest first)",
    ),
    ("post", "/v1/jobs:batch", "submit many jobs at once, all or nothing"),
    (
        "post",
        "/v1/uploads",
        "upload a tar archive of a job's local workdir and file_mounts; a submit names it in Cumulo-Upload",
    ),
    ("get", "/v1/jobs/{id}", "one job with its attempts, placement, pending reason and events"),
    ("post", "/v1/jobs/{id}/cancel", "cancel a job"),
    ("get", "/v1/jobs/{id}/logs", "a job's log (latest attempt by default); follow=true streams it"),
    ("get", "/v1/clusters", "clusters of the fleet with capacity and use"),
    ("get", "/v1/nodes", "nodes of the fleet with capacity and use"),
    ("get", "/v1/contracts", "the contract portfolio"),
    ("get", "/v1/contracts/burn-down", "each contract against its burn schedule, from metered usage"),
    ("post", "/v1/tokens", "create an API token (admin only); the secret is shown once"),
    ("get", "/v1/tenants", "the tenants jobs and tokens may name: the fleet file's and those created over the API"),
    ("post", "/v1/tenants", "create a tenant (admin only), kept in the store"),
    ("put", "/v1/tenants/{name}/budget", "set a tenant's monthly budget, hard or soft (admin only), kept in the store"),
    (
        "get",
        "/v1/history",
        "the server's sampled history (queue depth, GPU utilisation, cost per tenant and provider) over a time range",
    ),
    ("get", "/v1/usage", "metered usage grouped by tenant, provider, contract, job or gpu (own tenant unless admin)"),
    (
        "get",
        "/v1/usage/records",
        "metered usage records in keyset pages by start, since/until (own tenant unless admin)",
    ),
    (
        "get",
        "/v1/usage/chargeback",
        "per tenant: contract, on-demand and spot cost against list, and savings (own tenant unless admin)",
    ),
    ("get", "/v1/usage/focus", "a FOCUS 1.2 CSV export of metered usage, streamed (own tenant unless admin)"),
    ("get", "/v1/invoices", "one provider's invoice for a month from metered usage (admin only)"),
];

/// The whole HTTP surface. `/healthz` is open; everything else needs a token.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/v1/openapi.json", get(openapi::handler))
        .route("/v1/whoami", get(tokens::whoami))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs:batch", post(jobs::submit_batch))
        .route("/v1/uploads", post(uploads::create))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/logs", get(logs::handler))
        .route("/v1/clusters", get(fleet::clusters))
        .route("/v1/nodes", get(fleet::nodes))
        .route("/v1/contracts", get(fleet::contracts))
        .route("/v1/contracts/burn-down", get(fleet::burn_down))
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/v1/tenants/{name}/budget", axum::routing::put(tenants::set_budget))
        .route("/v1/history", get(history::handler))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/usage/records", get(usage::records))
        .route("/v1/usage/chargeback", get(usage::chargeback))
        .route("/v1/usage/focus", get(usage::focus))
        .route("/v1/invoices", get(usage::invoices))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(dashboard::routes())
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such route; see /v1/openapi.json".to_string()) })
        // The body limit is enforced by `jobs::read_body` with a clear message; axum's own limit is
        // lifted so that it does not answer first with plain text.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
