//! Submits per second on PostgreSQL: one batch of 1,000 jobs per call, and 1,000 single-job calls
//! from 64 concurrent tasks. Needs `CUMULO_TEST_POSTGRES_URL`; for durable figures start the server
//! with `CUMULO_PG_FSYNC=on scripts/dev-postgres.sh start` (the default test server has fsync off).
//! Run: `cargo bench -p cumulo-store-postgres --bench submit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cumulo_store::{NewJob, Store};
use cumulo_store_postgres::{Options, PostgresStore};
use cumulo_types::JobSpec;

const JOBS: u64 = 1000;
const CONCURRENCY: u64 = 64;

fn jobs(n: u64, prefix: &str, keyed: bool) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            let mut spec = JobSpec::new(&format!("bench-{i}"), "bench");
            spec.run = Some("python train.py --epochs 3".into());
            NewJob { spec, idempotency_key: keyed.then(|| format!("{prefix}-{i}")) }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
        println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let schema = format!("bench_{}", std::process::id());
    let options = Options { schema: Some(schema), max_connections: 64, ..Options::new(url) };
    let store: Arc<dyn Store> = runtime.block_on(async { Arc::new(PostgresStore::open(options).await.unwrap()) });
    let mut round = 0u64;
    let mut group = c.benchmark_group("postgres_submit");
    group.throughput(Throughput::Elements(JOBS));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    group.bench_function("batch_1000_keyed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let batch = jobs(JOBS, &format!("b{round}"), true);
                let start = Instant::now();
                runtime.block_on(store.submit(batch)).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("single_x1000_concurrency_64_keyed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let prefix = format!("s{round}");
                let start = Instant::now();
                runtime.block_on(async {
                    let mut tasks = Vec::new();
                    for t in 0..CONCURRENCY {
                        let store = store.clone();
                        let prefix = prefix.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut i = t;
                            while i < JOBS {
                                store.submit(jobs(1, &format!("{prefix}-{i}"), true)).await.unwrap();
                                i += CONCURRENCY;
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
