//! Criterion benchmark of offer ranking: an `H100:8` job over every file of the real SkyPilot
//! catalog (`$CUMULO_DATA_DIR/skypilot-catalog-v8`, the built-in catalog when absent) with the
//! demo portfolio at 70% utilisation. Loading is outside the timed part, as in `decision_us`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use cumulo_catalog::{Catalog, import_dir};
use cumulo_portfolio::clock::parse_time;
use cumulo_portfolio::offers::{Query, rank};
use cumulo_portfolio::pricing::PricingConfig;
use cumulo_portfolio::{Forecast, Portfolio, Usage};
use cumulo_types::{AcceleratorDemand, GpuModel, GpuSelector, JobSpec, MilliGpu, ResourceOption};

fn catalog() -> Catalog {
    let base = std::env::var("CUMULO_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")));
    let dir = base.join("skypilot-catalog-v8");
    match import_dir(&dir) {
        Ok((catalog, _)) => catalog,
        Err(e) => {
            eprintln!("skipping real catalog ({e}): using the built-in catalog");
            Catalog::builtin().unwrap()
        }
    }
}

fn bench(c: &mut Criterion) {
    let catalog = catalog();
    let demo = Portfolio::demo().unwrap();
    let now = parse_time("2026-11-26").unwrap();
    let forecast = Forecast::Utilisation { bps: 7000 };
    let mut job = JobSpec::new("bench", "research");
    job.resources = vec![ResourceOption {
        accelerators: Some(AcceleratorDemand {
            selector: GpuSelector::Models(vec![GpuModel::H100]),
            per_node: MilliGpu::whole(8),
            names: Vec::new(),
        }),
        ..ResourceOption::default()
    }];
    c.bench_function(&format!("offers H100:8 over {} offers (usage + rank)", catalog.len()), |b| {
        b.iter(|| {
            let usage = Usage::at(&demo, &forecast, now);
            let query = Query {
                job: &job,
                catalog: &catalog,
                portfolio: Some(&demo),
                usage: &usage,
                now,
                waited_s: 0,
                config: PricingConfig::default(),
                sites: &[],
            };
            rank(&query).feasible.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
