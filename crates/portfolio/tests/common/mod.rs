//! Builders shared by the portfolio tests.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use cumulo_portfolio::clock::parse_time;
use cumulo_types::{AcceleratorDemand, GpuModel, GpuSelector, JobSpec, MilliGpu, ResourceOption};

pub fn at(text: &str) -> DateTime<Utc> {
    parse_time(text).unwrap()
}

/// A job of `nodes` nodes with `per_node` GPUs of `model` each.
pub fn gpu_job(model: GpuModel, per_node: u32, nodes: u32) -> JobSpec {
    let mut job = JobSpec::new("test", "research");
    job.resources = vec![ResourceOption {
        accelerators: Some(AcceleratorDemand {
            selector: GpuSelector::Models(vec![model]),
            per_node: MilliGpu::whole(per_node),
            names: Vec::new(),
        }),
        ..ResourceOption::default()
    }];
    job.num_nodes = nodes;
    job
}

/// A one-contract portfolio: 1 node of a 1-GPU H100 type at $1/node-hour over ten days
/// (2026-01-01..2026-01-10), so full use is worth exactly $240.
pub fn ten_day_yaml(committed: &str, extra: &str) -> String {
    format!(
        "node_types:\n  - {{name: one, gpu: H100, gpus: 1, vcpus: 8, memory_gb: 64}}\n\
         contracts:\n  - id: c1\n    provider: acme\n    committed_usd: {committed}\n\
         \x20   term: {{start: 2026-01-01, end: 2026-01-10}}\n\
         \x20   ramp:\n      - {{date: 2026-01-01, region: r1, node_type: one, nodes: 1}}\n\
         \x20   rates:\n      - {{node_type: one, per_node_hour: 1}}\n{extra}"
    )
}
