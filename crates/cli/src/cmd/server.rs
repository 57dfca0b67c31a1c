//! `cumulo server` and `cumulo up`: run the control plane in this process until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cumulo_server::{FleetFile, Options, Server};

use super::remote::{UserConfig, runtime};
use super::up_lock::ServerLock;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Directory for the SQLite file, admin.token, local attempts and simulated dispatch logs
    #[arg(long, default_value = ".cumulo")]
    pub data_dir: PathBuf,
    /// Database: postgres://USER@HOST:PORT/DB, sqlite://PATH or a path (default: DATA_DIR/cumulo.db)
    #[arg(long, env = "CUMULO_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Address to serve the API on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Fleet file (YAML: tenants, clusters and their drivers, portfolio); default: the built-in demo fleet
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve the API only; leave reconciling to other servers on the same PostgreSQL database
    #[arg(long)]
    pub no_reconcile: bool,
    /// Seconds between samples of the history the dashboard charts
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub history_every: u64,
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// Directory for the SQLite file, admin.token, local attempts and simulated dispatch logs
    #[arg(long, default_value = ".cumulo")]
    pub data_dir: PathBuf,
    /// Address to serve the API on; when it is taken, a free port on 127.0.0.1 is used
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not write the URL and token to the user config file
    #[arg(long)]
    pub no_save: bool,
    /// Seconds between samples of the history the dashboard charts
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub history_every: u64,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUMULO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn fleet_file(path: Option<&Path>) -> anyhow::Result<(FleetFile, Option<PathBuf>)> {
    let Some(path) = path else { return Ok((FleetFile::demo(), None)) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read fleet file {}", path.display()))?;
    let file = FleetFile::parse(&text, &path.display().to_string())?;
    Ok((file, path.parent().map(Path::to_path_buf)))
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve_until_stopped(server: Server) -> anyhow::Result<()> {
    stop_signal().await;
    eprintln!("stopping");
    server.shutdown();
    server.wait().await?;
    Ok(())
}

pub fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let (fleet, base) = fleet_file(args.config.as_deref())?;
    let mut options = Options::new(&args.data_dir);
    options.db = args.db;
    options.listen = args.listen;
    options.fleet = fleet;
    options.fleet_base = base;
    options.reconcile = !args.no_reconcile;
    options.history_interval = std::time::Duration::from_secs(args.history_every);
    // SQLite is one process's file: a second server on it would answer 500 (database is locked).
    let sqlite = options.db.as_deref().is_none_or(|db| !db.starts_with("postgres"));
    let mut lock = if sqlite { Some(ServerLock::acquire(&args.data_dir)?) } else { None };
    runtime()?.block_on(async {
        let server = cumulo_server::start(options).await?;
        if let Some(lock) = lock.as_mut() {
            lock.set_url(&server.url)?;
        }
        if server.new_admin_token.is_some() {
            eprintln!(
                "admin token written to {} (mode 600); it is shown nowhere else",
                server.admin_token_file.display()
            );
        }
        eprintln!("cumulo server listening on {}", server.url);
        serve_until_stopped(server).await
    })
}

pub fn run_up(args: UpArgs) -> anyhow::Result<()> {
    init_logging();
    let mut lock = ServerLock::acquire(&args.data_dir)?;
    let mut options = Options::new(&args.data_dir);
    options.listen = args.listen;
    options.history_interval = std::time::Duration::from_secs(args.history_every);
    runtime()?.block_on(async {
        let bar = super::remote::spinner("starting cumulo (SQLite, local driver, simulated demo fleet)");
        let server = match cumulo_server::start(options.clone()).await {
            Err(cumulo_server::Error::Listen { addr, .. }) => {
                bar.println(format!("{addr} is taken; using a free port instead"));
                options.listen = SocketAddr::from(([127, 0, 0, 1], 0));
                cumulo_server::start(options).await?
            }
            other => other?,
        };
        bar.finish_and_clear();
        lock.set_url(&server.url)?;
        let token =
            match &server.new_admin_token {
                Some(t) => t.clone(),
                None => std::fs::read_to_string(&server.admin_token_file).map(|t| t.trim().to_string()).with_context(
                    || format!("the store has tokens but {} is unreadable", server.admin_token_file.display()),
                )?,
            };
        println!("Cumulo is up: {}", server.url);
        println!("  dashboard:   {}/#token={token}  (signs this browser in)", server.url);
        println!("  admin token: {token}");
        println!("  data:        {} (SQLite {})", args.data_dir.display(), server.db);
        println!(
            "  fleet:       this machine (local driver) and simulated demo clusters (nothing runs on them: a job there\n               \"runs\" for its duration at ten minutes a second, so a 14-day training takes 34 minutes)"
        );
        if !args.no_save {
            let path = UserConfig { server: Some(server.url.clone()), token: Some(token) }.save()?;
            println!("  saved to:    {} (so `cumulo jobs`, `cumulo submit` ... just work)", path.display());
        }
        println!("\nTry: cumulo clusters · cumulo submit JOB.yaml · cumulo jobs · cumulo logs -f ID\nCtrl-C stops it.");
        serve_until_stopped(server).await
    })
}
