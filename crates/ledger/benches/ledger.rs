//! Metering throughput: ingesting observations (rating, month and price splits, idempotence
//! bookkeeping), replaying them, and building an invoice and a FOCUS export from the records.
//!
//! `cargo bench -p cumulo-ledger --bench ledger`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use cumulo_ledger::{
    FocusOptions, Ledger, Month, NodeMeta, Observation, PriceBook, PriceKey, invoice, parse_time, to_focus_csv,
};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};

const NODES: u64 = 10_000;

fn prices() -> PriceBook {
    let aws = Provider::new("aws").unwrap();
    let jan = parse_time("t", "2026-01-01").unwrap();
    let mut book = PriceBook::new();
    book.set_price(PriceKey::on_demand(&aws, "p5.48xlarge"), jan, Money::parse_dollars("98.32").unwrap()).unwrap();
    book.set_price(
        PriceKey::on_demand(&aws, "p5.48xlarge"),
        parse_time("t", "2026-11-15").unwrap(),
        Money::from_dollars(55),
    )
    .unwrap();
    book.set_price(PriceKey::contract(&aws, "p5.48xlarge", "aws-2026"), jan, Money::from_dollars(60)).unwrap();
    book.set_contract_end("aws-2026", parse_time("t", "2026-11-20").unwrap());
    book
}

/// `NODES` node observations of 1 to 40 days in Oct–Dec 2026 (deterministic, no randomness).
fn observations() -> Vec<Observation> {
    let base = parse_time("t", "2026-10-01").unwrap().timestamp();
    (0..NODES)
        .map(|i| {
            let start = base + (i as i64 * 7_919) % (60 * 86_400);
            let len = 3_600 + (i as i64 * 104_729) % (40 * 86_400);
            let contract = i % 3 == 0;
            Observation {
                attempt: AttemptId { job: JobId(i / 8), attempt: 1 },
                node_rank: (i % 8) as u32,
                start: chrono::DateTime::from_timestamp(start, 0).unwrap(),
                stop: chrono::DateTime::from_timestamp(start + len, 0).unwrap(),
                node: NodeMeta {
                    tenant: format!("tenant-{}", i % 5),
                    provider: Provider::new("aws").unwrap(),
                    region: "us-east-1".into(),
                    node_type: "p5.48xlarge".into(),
                    gpu: Some(GpuModel::H100),
                    gpus: 8,
                    capacity: if contract { CapacityKind::Contract } else { CapacityKind::OnDemand },
                    contract: contract.then(|| "aws-2026".to_string()),
                    resource_id: None,
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let prices = prices();
    let obs = observations();
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(NODES));
    group.bench_function("ingest_10k_observations", |b| {
        b.iter(|| {
            let mut ledger = Ledger::new();
            for o in &obs {
                ledger.ingest(o, &prices).unwrap();
            }
            ledger
        })
    });
    let mut full = Ledger::new();
    for o in &obs {
        full.ingest(o, &prices).unwrap();
    }
    group.bench_function("replay_10k_observations", |b| {
        b.iter_batched(
            || full.clone(),
            |mut ledger| {
                for o in &obs {
                    ledger.ingest(o, &prices).unwrap();
                }
                ledger
            },
            BatchSize::LargeInput,
        )
    });
    let records = full.to_records();
    group.throughput(Throughput::Elements(records.len() as u64));
    let aws = Provider::new("aws").unwrap();
    let november = Month::parse("2026-11").unwrap();
    group.bench_function("invoice_over_all_records", |b| b.iter(|| invoice(&records, &aws, november)));
    group.bench_function("focus_csv_all_records", |b| {
        b.iter(|| to_focus_csv(&records, &FocusOptions::default()).unwrap())
    });
    group.finish();
    eprintln!("records: {}", records.len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
