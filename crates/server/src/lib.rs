//! The Cumulo server: opens the store, makes the first admin token, opens each cluster's driver,
//! runs the reconcile loop (`control`) and serves the REST API (`api`), in one process.
//!
//! `Options → start → Server`: [`start`] returns once the listener is bound, so callers (`cumulo
//! server`, `cumulo up`, tests) learn the URL and the admin token before they wait on
//! [`Server::wait`].

pub mod config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cumulo_api::{AppState, Metrics};
use cumulo_control::Controller;
use cumulo_store::{Role, Store};
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{DEMO_FLEET_YAML, FleetFile};

/// Name of the file in the data directory that holds the first admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {field}: {reason}")]
    Config { file: String, field: String, reason: String },
    #[error("store: {0}")]
    Store(String),
    #[error("driver: {0}")]
    Driver(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Io(String),
}

/// How to run a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the SQLite file, the admin token, local attempts and simulated dispatch logs live.
    pub data_dir: PathBuf,
    /// `postgres://...`, `sqlite://PATH` or a path; `<data_dir>/cumulo.db` when `None`.
    pub db: Option<String>,
    pub listen: SocketAddr,
    pub fleet: FleetFile,
    /// Where relative paths in the fleet file start (the file's directory).
    pub fleet_base: Option<PathBuf>,
    /// Time between reconcile passes.
    pub reconcile_interval: Duration,
    /// Whether this process runs the reconcile loop (it still competes for the lease) and samples
    /// the dashboard's history.
    pub reconcile: bool,
    /// Time between samples of the history the dashboard charts (`api::history`).
    pub history_interval: Duration,
    pub api: cumulo_api::Config,
}

impl Options {
    pub fn new(data_dir: impl Into<PathBuf>) -> Options {
        Options {
            data_dir: data_dir.into(),
            db: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            fleet: FleetFile::demo(),
            fleet_base: None,
            reconcile_interval: Duration::from_millis(500),
            reconcile: true,
            history_interval: Duration::from_secs(15),
            api: cumulo_api::Config::default(),
        }
    }
}

/// A running server.
pub struct Server {
    /// `http://ADDR` of the bound listener.
    pub url: String,
    pub addr: SocketAddr,
    /// The admin token created by this start (first start on an empty store), else `None`.
    pub new_admin_token: Option<String>,
    pub admin_token_file: PathBuf,
    pub db: String,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<Result<(), std::io::Error>>,
    reconcile: Option<JoinHandle<()>>,
    history: Option<JoinHandle<()>>,
}

impl Server {
    /// Asks the server to stop: the API stops taking requests and the loop finishes its pass.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the server stops (after [`Server::shutdown`], or an HTTP failure).
    pub async fn wait(self) -> Result<(), Error> {
        let served = self.http.await;
        let _ = self.shutdown.send(true);
        if let Some(reconcile) = self.reconcile {
            let _ = reconcile.await;
        }
        if let Some(history) = self.history {
            let _ = history.await;
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Io(format!("http server failed: {e}"))),
            Err(e) => Err(Error::Io(format!("http server task failed: {e}"))),
        }
    }
}

/// Writes `token` to `path` readable by its owner only (mode 600), creating the directory.
pub fn write_secret_file(path: &Path, token: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path).map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::Io(format!("cannot chmod {}: {e}", path.display())))?;
    }
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
}

/// On an empty store, creates the first admin token and writes it to `<data_dir>/admin.token`.
async fn bootstrap_admin(store: &dyn Store, data_dir: &Path) -> Result<Option<String>, Error> {
    if store.token_count().await.map_err(|e| Error::Store(e.to_string()))? > 0 {
        return Ok(None);
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let token = cumulo_api::auth::generate_token();
    // Written before it is stored: a crash in between leaves an unused file, never a token nobody
    // can read.
    write_secret_file(&path, &token)?;
    store
        .create_token(cumulo_store::TokenRecord {
            hash: cumulo_api::auth::hash_token(&token),
            tenant: "default".to_string(),
            role: Role::Admin,
            name: "admin".to_string(),
        })
        .await
        .map_err(|e| Error::Store(e.to_string()))?;
    tracing::info!(path = %path.display(), "created the first admin token (mode 600)");
    Ok(Some(token))
}

/// Opens everything and starts serving; returns once the listener is bound.
pub async fn start(mut options: Options) -> Result<Server, Error> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| Error::Io(format!("cannot create data directory {}: {e}", options.data_dir.display())))?;
    // The database, the admin token and local jobs' state: the server's user only (local jobs run
    // as another user and must not read them).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&options.data_dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            Error::Io(format!("cannot make data directory {} private: {e}", options.data_dir.display()))
        })?;
    }
    // Absolute, so that drivers running processes elsewhere still find their files.
    options.data_dir = std::fs::canonicalize(&options.data_dir)
        .map_err(|e| Error::Io(format!("cannot resolve data directory {}: {e}", options.data_dir.display())))?;
    let db = options.db.clone().unwrap_or_else(|| options.data_dir.join("cumulo.db").display().to_string());
    let store = cumulo_control::open_store(&db).await.map_err(|e| Error::Store(e.to_string()))?;
    let new_admin_token = bootstrap_admin(store.as_ref(), &options.data_dir).await?;
    // Jobs' secrets are sealed with this key before they are stored (`secret.key`, mode 600).
    let secret_key = Arc::new(
        cumulo_store::secrets::SecretKey::load_or_create(&options.data_dir).map_err(|e| Error::Io(e.to_string()))?,
    );

    let deployment = store.deployment_id().await.map_err(|e| Error::Store(e.to_string()))?;
    let fleet = options.fleet.open_for(&options.data_dir, options.fleet_base.as_deref(), Some(&deployment))?;
    let clusters = fleet.control_clusters();
    let api_fleet = cumulo_api::Fleet {
        clusters: fleet
            .clusters
            .iter()
            .map(|(entry, driver)| cumulo_api::Cluster {
                name: entry.name.clone(),
                provider: entry.provider.clone(),
                region: entry.region.clone(),
                capacity: entry.capacity,
                contract: entry.contract.clone(),
                node_type: entry.node_type.clone(),
                driver: driver.clone(),
            })
            .collect(),
        tenants: fleet.tenants.iter().map(|t| t.name.clone()).collect(),
        contracts: serde_json::to_value(&fleet.portfolio).map_err(|e| Error::Io(e.to_string()))?,
        portfolio: fleet.portfolio.clone().map(Arc::new),
        budgets: fleet.budgets.clone(),
    };
    let metrics = Arc::new(Metrics::default());
    let (shutdown, shutdown_rx) = watch::channel(false);

    let reconcile = options.reconcile.then(|| {
        let mut control = cumulo_control::Options::new(store.clone(), clusters);
        control.interval = options.reconcile_interval;
        control.tenants = fleet.tenants.clone();
        control.budgets = fleet.budgets.clone();
        control.portfolio = fleet.control_contracts();
        control.secret_key = Some(secret_key.clone());
        control.rounds = fleet.rounds;
        control.contracts = fleet
            .clusters
            .iter()
            .filter_map(|(entry, _)| entry.contract.clone().map(|contract| (entry.name.clone(), contract)))
            .collect();
        tracing::info!(holder = %control.holder, "this server's identity in the leadership lease");
        let controller = Controller::new(control);
        tokio::spawn(reconcile_loop(controller, metrics.clone(), options.reconcile_interval, shutdown_rx.clone()))
    });

    let mut state = AppState::new(store.clone(), Arc::new(api_fleet), metrics, options.api.clone());
    state.secret_key = secret_key;
    state.uploads_dir = Some(config::uploads_dir(&options.data_dir));
    let history = options
        .reconcile
        .then(|| tokio::spawn(history_loop(state.clone(), options.history_interval, shutdown_rx.clone())));
    let app = cumulo_api::router(state);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Error::Listen { addr: options.listen, reason: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    let mut http_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, db = %redact(&db), "cumulo server listening");
    Ok(Server {
        url: format!("http://{addr}"),
        addr,
        new_admin_token,
        admin_token_file: options.data_dir.join(ADMIN_TOKEN_FILE),
        db,
        shutdown,
        http,
        reconcile,
        history,
    })
}

/// A database URL without its password, for logs.
pub fn redact(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &db[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &db[..scheme + 3], &db[at..]),
                None => db.to_string(),
            }
        }
        _ => db.to_string(),
    }
}

/// How long the history is kept.
const HISTORY_KEPT_DAYS: i64 = 8;

/// Samples the dashboard's history every `interval` until shutdown, and forgets samples older than
/// [`HISTORY_KEPT_DAYS`] now and then. A failed sample is logged and skipped.
async fn history_loop(state: cumulo_api::AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s).map(|_| ()) => break,
            _ = tick.tick() => {
                let now = chrono::Utc::now();
                let points = match cumulo_api::history::sample(&state, now).await {
                    Ok(points) => points,
                    Err(err) => {
                        tracing::warn!(error = %err, "history sample failed");
                        continue;
                    }
                };
                if let Err(err) = state.store.append_history(points).await {
                    tracing::warn!(error = %err, "history sample not stored");
                }
                if samples.is_multiple_of(240)
                    && let Err(err) = state.store.forget_history(now - chrono::Duration::days(HISTORY_KEPT_DAYS)).await
                {
                    tracing::warn!(error = %err, "old history not forgotten");
                }
                samples += 1;
            }
        }
    }
}

/// Runs reconcile passes until shutdown, recording each pass in the metrics.
async fn reconcile_loop(
    controller: Controller,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s).map(|_| ()) => break,
            _ = tick.tick() => match controller.reconcile_once().await {
                Ok(report) if report.leading => {
                    if report.plan_skipped {
                        metrics.record_kept_plan();
                    } else {
                        metrics.record_pass(
                            Duration::from_micros(report.decision_micros),
                            report.planned.len() as u64,
                            report.preempted.len() as u64,
                        );
                    }
                    metrics.record_refused(report.refused as u64);
                    if !report.planned.is_empty() || !report.launched.is_empty() || !report.lost.is_empty() {
                        tracing::debug!(
                            planned = report.planned.len(),
                            launched = report.launched.len(),
                            lost = report.lost.len(),
                            pending = report.pending,
                            "reconcile pass"
                        );
                    }
                }
                Ok(_) => tracing::trace!("not the leader"),
                Err(err) => tracing::warn!(error = %err, "reconcile pass failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_reach_the_log() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("/tmp/x.db"), "/tmp/x.db");
    }
}
