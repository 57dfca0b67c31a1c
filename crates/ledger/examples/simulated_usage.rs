//! Writes SIMULATED usage records for November 2026 on the demo portfolio (illustrative contracts)
//! as JSON lines on stdout, for `cumulo usage` and `cumulo invoice` to read:
//!
//! ```text
//! cargo run -p cumulo-ledger --example simulated_usage > usage-simulated.jsonl
//! cumulo invoice --usage usage-simulated.jsonl --provider aws --month 2026-11
//! ```
//!
//! Prices: contract rates from the demo portfolio, on-demand list prices from the built-in catalog,
//! plus two simulated prices (a spot price for p5.48xlarge at 40% of list, and a list-price cut on
//! 2026-11-15). The jobs are made up; every observation is delivered twice, as heartbeats would be,
//! to show that replays bill nothing.

use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey, parse_time};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};

struct Gang {
    job: u64,
    attempt: u32,
    tenant: &'static str,
    provider: &'static str,
    region: &'static str,
    node_type: &'static str,
    gpu: GpuModel,
    gpus: u32,
    contract: Option<&'static str>,
    capacity: CapacityKind,
    nodes: u32,
    start: &'static str,
    stop: &'static str,
}

fn main() -> anyhow::Result<()> {
    let portfolio = cumulo_portfolio::Portfolio::demo()?;
    let catalog = cumulo_catalog::Catalog::builtin()?;
    let jan = parse_time("from", "2026-01-01")?;
    let mut prices = PriceBook::new();
    prices.add_portfolio(&portfolio)?.add_catalog(&catalog, jan)?;
    let aws = Provider::new("aws")?;
    prices.set_price(PriceKey::spot(&aws, "p5.48xlarge"), jan, Money::parse_dollars("22.016")?)?;
    prices.set_price(
        PriceKey::on_demand(&aws, "p5.48xlarge"),
        parse_time("from", "2026-11-15")?,
        Money::parse_dollars("49.536")?,
    )?;

    use CapacityKind::{Contract, OnDemand, Spot};
    #[rustfmt::skip]
    let gangs = [
        // a pre-training gang on one GB200 NVL72 rack; attempt 1 is lost to a node failure
        Gang { job: 101, attempt: 1, tenant: "research", provider: "aws", region: "us-east-1", node_type: "p6e-gb200.36xlarge", gpu: GpuModel::GB200, gpus: 4, contract: Some("aws-2025"), capacity: Contract, nodes: 18, start: "2026-11-02T00:00:00Z", stop: "2026-11-05T12:00:00Z" },
        Gang { job: 101, attempt: 2, tenant: "research", provider: "aws", region: "us-east-1", node_type: "p6e-gb200.36xlarge", gpu: GpuModel::GB200, gpus: 4, contract: Some("aws-2025"), capacity: Contract, nodes: 18, start: "2026-11-05T12:20:00Z", stop: "2026-11-09T06:00:00Z" },
        // a GB300 gang that runs into December
        Gang { job: 102, attempt: 1, tenant: "research", provider: "aws", region: "us-west-2", node_type: "p6e-gb300.36xlarge", gpu: GpuModel::GB300, gpus: 4, contract: Some("aws-2025"), capacity: Contract, nodes: 18, start: "2026-11-20T00:00:00Z", stop: "2026-12-02T00:00:00Z" },
        // inference replicas on Azure all month
        Gang { job: 201, attempt: 1, tenant: "serving", provider: "azure", region: "eastus2", node_type: "Standard_ND96isr_H200_v5", gpu: GpuModel::H200, gpus: 8, contract: Some("azure-2025"), capacity: Contract, nodes: 4, start: "2026-11-01T00:00:00Z", stop: "2026-12-01T00:00:00Z" },
        // overflow to on-demand across the simulated list-price cut
        Gang { job: 202, attempt: 1, tenant: "serving", provider: "aws", region: "us-east-1", node_type: "p5.48xlarge", gpu: GpuModel::H100, gpus: 8, contract: None, capacity: OnDemand, nodes: 2, start: "2026-11-14T00:00:00Z", stop: "2026-11-16T00:00:00Z" },
        // batch evaluation on spot
        Gang { job: 301, attempt: 1, tenant: "agents", provider: "aws", region: "us-east-1", node_type: "p5.48xlarge", gpu: GpuModel::H100, gpus: 8, contract: None, capacity: Spot, nodes: 4, start: "2026-11-21T08:00:00Z", stop: "2026-11-21T20:30:00Z" },
    ];

    let mut ledger = Ledger::new();
    for g in &gangs {
        for rank in 0..g.nodes {
            let obs = Observation {
                attempt: AttemptId { job: JobId(g.job), attempt: g.attempt },
                node_rank: rank,
                start: parse_time("start", g.start)?,
                stop: parse_time("stop", g.stop)?,
                node: NodeMeta {
                    tenant: g.tenant.into(),
                    provider: Provider::new(g.provider)?,
                    region: g.region.into(),
                    node_type: g.node_type.into(),
                    gpu: Some(g.gpu),
                    gpus: g.gpus,
                    capacity: g.capacity,
                    contract: g.contract.map(String::from),
                    resource_id: None,
                },
            };
            ledger.ingest(&obs, &prices)?;
            let replay = ledger.ingest(&obs, &prices)?;
            anyhow::ensure!(replay.new_seconds == 0, "a replayed observation billed {} s", replay.new_seconds);
        }
    }
    for record in ledger.records() {
        println!("{}", serde_json::to_string(record)?);
    }
    Ok(())
}
