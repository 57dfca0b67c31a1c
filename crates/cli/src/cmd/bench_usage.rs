//! `cumulo bench usage`: how many usage records a day of metering writes, and how fast the server
//! streams a FOCUS export of a million records.
//!
//! Metering: `--nodes` attempt-nodes (one node per attempt, as the loop keeps one ledger per
//! attempt) run for `--hours`, observed every `--beat-s` seconds; each beat's new seconds go
//! through `Ledger::meter` exactly as the reconcile loop does, and every record it hands back would
//! be one store write (a new record or the extension of the open one). The figure the issue sets is
//! the records stored at the end (at most 250,000 for 10,000 nodes × 24 h).
//!
//! Export: `--focus-records` hourly records are appended to a fresh SQLite store in batches, then
//! `GET /v1/usage/focus` is timed over loopback HTTP from request to last byte, `--runs` times.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey, UsageRecord};
use cumulo_store::{Role, Store};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};
use serde::Serialize;

use crate::cmd::remote::runtime;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct BenchUsageArgs {
    /// Attempt-nodes metered
    #[arg(long, default_value_t = 10_000)]
    pub nodes: u32,
    /// Hours they run
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Seconds between observations (the loop's pass interval is 1 s; any beat up to an hour
    /// writes the same records, a shorter one only costs bench time)
    #[arg(long, default_value_t = 60)]
    pub beat_s: u32,
    /// Usage records in the store the FOCUS export reads (0 skips the export)
    #[arg(long, default_value_t = 1_000_000)]
    pub focus_records: u32,
    /// Timed runs of each part (medians are reported)
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Directory for the export's SQLite store (default: a temporary one, removed afterwards)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    bench: &'static str,
    nodes: u32,
    hours: u32,
    beat_s: u32,
    /// Records stored after the day (the target: at most 250,000 for 10,000 nodes × 24 h).
    records: usize,
    /// Records handed to the store over the day (new or extended), for comparison.
    record_writes: u64,
    /// Node-seconds billed; equals nodes × hours × 3600 (each second once).
    billed_seconds: i64,
    meter_seconds: Vec<f64>,
    meter_seconds_median: f64,
    focus_records: u32,
    focus_rows: u64,
    focus_bytes: u64,
    store_fill_seconds: f64,
    focus_seconds: Vec<f64>,
    focus_seconds_median: f64,
    /// CPU seconds of each export, server and client together (both run in this process): on a
    /// shared machine the work done, apart from time spent waiting for a core.
    focus_cpu_seconds: Vec<f64>,
    focus_cpu_seconds_median: f64,
    note: &'static str,
}

pub fn run(args: BenchUsageArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.runs > 0 && args.beat_s > 0 && args.hours > 0,
        "--runs, --beat-s and --hours must be positive"
    );
    let mut meter_seconds = Vec::new();
    let mut day = Day::default();
    for _ in 0..args.runs {
        let started = Instant::now();
        day = meter_a_day(&args)?;
        meter_seconds.push(started.elapsed().as_secs_f64());
    }
    let expected = i64::from(args.nodes) * i64::from(args.hours) * 3600;
    anyhow::ensure!(day.billed_seconds == expected, "billed {} node-seconds, expected {expected}", day.billed_seconds);
    let export = if args.focus_records > 0 { runtime()?.block_on(time_focus(&args))? } else { Export::default() };
    print_json(&Report {
        bench: "usage",
        nodes: args.nodes,
        hours: args.hours,
        beat_s: args.beat_s,
        records: day.records,
        record_writes: day.writes,
        billed_seconds: day.billed_seconds,
        meter_seconds_median: median(&meter_seconds),
        meter_seconds,
        focus_records: args.focus_records,
        focus_rows: export.rows,
        focus_bytes: export.bytes,
        store_fill_seconds: export.fill_seconds,
        focus_seconds_median: median(&export.seconds),
        focus_seconds: export.seconds,
        focus_cpu_seconds_median: median(&export.cpu_seconds),
        focus_cpu_seconds: export.cpu_seconds,
        note: "shared machine: timings are noisy; records and billed seconds are exact",
    })
}

#[derive(Default)]
struct Day {
    records: usize,
    writes: u64,
    billed_seconds: i64,
}

fn start() -> cumulo_ledger::Timestamp {
    cumulo_ledger::parse_time("start", "2026-11-10T00:00:00Z").expect("a valid time")
}

fn aws() -> Provider {
    Provider::new("aws").expect("a valid provider")
}

fn prices() -> anyhow::Result<PriceBook> {
    let mut book = PriceBook::new();
    book.set_price(PriceKey::contract(&aws(), "p5.48xlarge", "aws-2026"), start(), Money::from_dollars(60))?;
    book.set_price(PriceKey::on_demand(&aws(), "p5.48xlarge"), start(), Money::parse_dollars("98.32")?)?;
    Ok(book)
}

fn observation(node: u32, seconds: i64) -> Observation {
    Observation {
        attempt: AttemptId { job: JobId(u64::from(node) + 1), attempt: 1 },
        node_rank: 0,
        start: start(),
        stop: start() + chrono::Duration::seconds(seconds),
        node: NodeMeta {
            tenant: format!("tenant-{}", node % 7),
            provider: aws(),
            region: "us-east-1".into(),
            node_type: "p5.48xlarge".into(),
            gpu: Some(GpuModel::H100),
            gpus: 8,
            capacity: CapacityKind::Contract,
            contract: Some("aws-2026".into()),
            resource_id: None,
        },
    }
}

/// Every node observed every beat for the whole run, each through its attempt's ledger.
fn meter_a_day(args: &BenchUsageArgs) -> anyhow::Result<Day> {
    let prices = prices()?;
    let mut ledgers: Vec<Ledger> = (0..args.nodes).map(|_| Ledger::new()).collect();
    let mut day = Day::default();
    let end = i64::from(args.hours) * 3600;
    let mut at = 0;
    while at < end {
        at = (at + i64::from(args.beat_s)).min(end);
        for (node, ledger) in ledgers.iter_mut().enumerate() {
            let (got, written) = ledger.meter(&observation(node as u32, at), &prices)?;
            day.writes += written.len() as u64;
            day.billed_seconds += got.new_seconds;
        }
    }
    day.records = ledgers.iter().map(Ledger::len).sum();
    Ok(day)
}

#[derive(Default)]
struct Export {
    rows: u64,
    bytes: u64,
    fill_seconds: f64,
    seconds: Vec<f64>,
    cpu_seconds: Vec<f64>,
}

/// Fills a fresh SQLite store with hourly records, serves the API on loopback and times the export.
async fn time_focus(args: &BenchUsageArgs) -> anyhow::Result<Export> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile_dir()?;
            temp.0.clone()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let db = dir.join(format!("bench-usage-{}.db", std::process::id()));
    let store = cumulo_control::open_store(db.to_str().context("a UTF-8 path")?).await?;
    let fill = Instant::now();
    fill_store(store.as_ref(), args.focus_records).await?;
    let fill_seconds = fill.elapsed().as_secs_f64();
    let token = cumulo_api::auth::issue_token(store.as_ref(), "default", Role::Admin, "bench").await?;
    let fleet = cumulo_api::Fleet {
        clusters: vec![],
        tenants: vec![],
        contracts: serde_json::Value::Null,
        portfolio: None,
        budgets: Default::default(),
    };
    let state = cumulo_api::AppState::new(
        store.clone(),
        Arc::new(fleet),
        Arc::new(cumulo_api::Metrics::default()),
        cumulo_api::Config::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, cumulo_api::router(state)).await });
    let client = cumulo_api::client::Client::new(&url, Some(token))?;
    let mut export = Export { fill_seconds, ..Export::default() };
    for _ in 0..args.runs {
        let (started, cpu_before) = (Instant::now(), process_cpu_seconds()?);
        let mut response = client.usage_focus(&[]).await?;
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        export.seconds.push(started.elapsed().as_secs_f64());
        export.cpu_seconds.push(process_cpu_seconds()? - cpu_before);
        export.rows = lines.saturating_sub(1);
        export.bytes = bytes;
    }
    server.abort();
    drop(store);
    let _ = std::fs::remove_file(&db);
    anyhow::ensure!(export.rows == u64::from(args.focus_records), "exported {} rows", export.rows);
    Ok(export)
}

/// `records` hourly records: 100 h per node over `records / 100` nodes, appended 20,000 at a time.
async fn fill_store(store: &dyn Store, records: u32) -> anyhow::Result<()> {
    let prices = prices()?;
    let mut batch: Vec<UsageRecord> = Vec::new();
    let mut left = records;
    let mut node = 0;
    while left > 0 {
        let hours = left.min(100);
        let mut ledger = Ledger::new();
        ledger.meter(&observation(node, i64::from(hours) * 3600), &prices)?;
        batch.extend(ledger.to_records());
        left -= hours;
        node += 1;
        if batch.len() >= 20_000 || left == 0 {
            store.append_usage(std::mem::take(&mut batch)).await?;
        }
    }
    Ok(())
}

/// CPU seconds this process has used so far, every thread, user and system time.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` through the pointer it is given, or fails.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    anyhow::ensure!(rc == 0, "getrusage failed: {}", std::io::Error::last_os_error());
    // SAFETY: getrusage returned 0, so it wrote the value (and a zeroed rusage is valid anyway).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("cumulo-bench-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    Ok(TempDir(dir))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
