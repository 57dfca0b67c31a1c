//! `cumulo bench slurm`: dispatch rate to slurmrestd and the time of one `observe` of every
//! attempt, against a live Slurm cluster (e.g. the one `scripts/dev-slurm.sh start` runs).
//!
//! Attempts are submitted held, so they never run and ten thousand fit on one machine; they are
//! cancelled afterwards.

use anyhow::Context;
use cumulo_driver_slurm::bench::{BenchConfig, BenchReport, dispatch_and_observe};
use cumulo_driver_slurm::{Config, ObserveWith, RestEndpoint};

use super::remote::runtime;
use crate::output::{Format, print_json, table};

#[derive(clap::Args)]
pub struct BenchSlurmArgs {
    /// slurmrestd URL
    #[arg(long, env = "CUMULO_TEST_SLURM_URL")]
    pub url: String,
    /// User the JWT belongs to
    #[arg(long, env = "CUMULO_TEST_SLURM_USER")]
    pub user: String,
    /// JWT from `scontrol token username=USER`
    #[arg(long, env = "CUMULO_TEST_SLURM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Attempts to submit and then observe in one call
    #[arg(long, default_value_t = 10_000)]
    pub attempts: u64,
    /// Submissions in flight at once
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Timed polls of all attempts
    #[arg(long, default_value_t = 5)]
    pub polls: usize,
    /// Where observe lists jobs: slurmrestd (`endpoint`) or this host's `squeue`
    #[arg(long, value_parser = ["endpoint", "squeue"], default_value = "squeue")]
    pub observe_with: String,
    /// SLURM_CONF for squeue
    #[arg(long, env = "CUMULO_TEST_SLURM_CONF")]
    pub slurm_conf: Option<std::path::PathBuf>,
    /// First Cumulo job id used (ids up to it + attempts must be unused on the cluster)
    #[arg(long)]
    pub first_job: Option<u64>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Format,
}

pub fn run(args: BenchSlurmArgs) -> anyhow::Result<()> {
    let mut slurm = Config::rest(RestEndpoint::new(&args.url, &args.user, &args.token));
    if args.observe_with == "squeue" {
        slurm.observe_with = ObserveWith::Squeue { slurm_conf: args.slurm_conf.clone() };
    }
    let first_job = args.first_job.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        800_000_000_000 + (secs % 100_000) * 1_000_000
    });
    let config = BenchConfig { attempts: args.attempts, concurrency: args.concurrency, polls: args.polls, first_job };
    let report: BenchReport =
        runtime()?.block_on(dispatch_and_observe(slurm, &config)).context("slurm benchmark failed")?;
    match args.output {
        Format::Json => print_json(&report),
        Format::Table => {
            let mut t = table(["attempts", "dispatch/s", "observe with", "observe median s"]);
            t.add_row([
                report.attempts.to_string(),
                format!("{:.0}", report.dispatch_per_second),
                report.observe_with.clone(),
                format!("{:.3}", report.observe_median_seconds),
            ]);
            println!("{t}");
            Ok(())
        }
    }
}
