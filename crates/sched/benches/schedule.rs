//! Criterion benches for the scheduler's hot paths (filled in below as the engine grows).

use criterion::{Criterion, criterion_group, criterion_main};

fn empty(c: &mut Criterion) {
    c.bench_function("noop", |b| b.iter(|| 1 + 1));
}

criterion_group!(benches, empty);
criterion_main!(benches);
