//! How long a job file takes to parse and normalise: a SkyPilot task, Cumulo's GB200 gang, a
//! JSON body and a file with problems (the error path scans for line numbers).

use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn example(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs/");
    std::fs::read_to_string(format!("{path}{name}")).expect("example job file")
}

fn parse(c: &mut Criterion) {
    for name in ["skypilot-finetune.yaml", "pretrain-gb200-nvl72.yaml", "api-job.json", "broken/many-problems.yaml"] {
        let text = example(name);
        c.bench_function(&format!("parse {name}"), |b| {
            b.iter(|| cumulo_jobfile::parse_many_str(black_box(&text), "bench.yaml"))
        });
        // The YAML parser alone, to tell its share from the normalisation's.
        c.bench_function(&format!("yaml only {name}"), |b| {
            b.iter(|| {
                serde_yaml::Deserializer::from_str(black_box(&text))
                    .map(serde::Deserialize::deserialize)
                    .collect::<Result<Vec<serde_yaml::Value>, _>>()
            })
        });
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
