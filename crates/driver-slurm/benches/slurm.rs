//! Dispatch to slurmrestd and whole-cluster observe, against the cluster of
//! `scripts/dev-slurm.sh start` (env from its env file); prints one JSON report per way of
//! observing (slurmrestd's job list, then `squeue`), or "skipping: ..." without a cluster.
//! `BENCH_ATTEMPTS` (default 10000), `BENCH_CONCURRENCY` (default 16) and `BENCH_OBSERVE`
//! (`endpoint` or `squeue`: only that run) tune it; the
//! slurmrestd-observed run uses a fifth of the attempts, since slurmrestd takes about 2 s per
//! 1,000 jobs to list them.

use cumulo_driver_slurm::bench::{BenchConfig, dispatch_and_observe};
use cumulo_driver_slurm::{Config, ObserveWith, RestEndpoint};

fn main() {
    // `cargo test --all-targets` runs this binary too, without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipping: slurm dispatch benchmark runs only under cargo bench");
        return;
    }
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(user), Some(token)) =
        (get("CUMULO_TEST_SLURM_URL"), get("CUMULO_TEST_SLURM_USER"), get("CUMULO_TEST_SLURM_TOKEN"))
    else {
        println!("skipping: CUMULO_TEST_SLURM_* not set (run scripts/dev-slurm.sh start and source its env file)");
        return;
    };
    let attempts = get("BENCH_ATTEMPTS").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let concurrency = get("BENCH_CONCURRENCY").and_then(|v| v.parse().ok()).unwrap_or(16);
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let observers =
        [ObserveWith::Endpoint, ObserveWith::Squeue { slurm_conf: get("CUMULO_TEST_SLURM_CONF").map(Into::into) }];
    let only = get("BENCH_OBSERVE"); // `endpoint` or `squeue` to run one of the two
    for (i, observe_with) in observers.into_iter().enumerate() {
        let name = if observe_with == ObserveWith::Endpoint { "endpoint" } else { "squeue" };
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let first_job = 900_000_000_000 + (epoch % 100_000) * 1_000_000 + i as u64 * 100_000;
        let attempts = if observe_with == ObserveWith::Endpoint { attempts / 5 } else { attempts };
        let config = BenchConfig { attempts, concurrency, polls: 5, first_job };
        let mut slurm = Config::rest(RestEndpoint::new(&url, &user, &token));
        slurm.observe_with = observe_with;
        let report = rt.block_on(dispatch_and_observe(slurm, &config)).unwrap();
        println!("{}", serde_json::to_string(&report).unwrap());
    }
}
