//! One decision path, end to end with the real `cumulo` binary: a server whose fleet file names
//! the demo portfolio places each job on the provider and contract `cumulo offers` ranks first
//! for the same job and usage (nothing metered yet: `--utilisation 0`); the repro (an
//! 18-node GB200 gang that only AWS may take) waits for Azure's first refusal with the words
//! `offers` gives; and `cumulo contracts` (the server's burn-down) agrees with `cumulo portfolio
//! burn-down` on the same usage: one schedule, one status.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cumulo, json, start_server};

/// SIMULATED clusters, one per contract capacity a job below could want, and an on-demand H100
/// cluster beside CoreWeave's contract one.
const FLEET: &str = "
portfolio: demo
tenants: [{name: default}, {name: research}]
clusters:
  - {name: sim-aws-gb200, provider: aws, region: us-east-1, capacity: contract, contract: aws-2025, node_type: p6e-gb200.36xlarge,
     driver: {kind: simulated, nodes: 18, gpu: GB200, gpus: 4, vcpus: 144, memory_gb: 960, start_delay_s: 0, default_duration_s: 3600}}
  - {name: sim-azure-gb200, provider: azure, region: eastus2, capacity: contract, contract: azure-2025, node_type: Standard_ND128isr_GB200_v6,
     driver: {kind: simulated, nodes: 18, gpu: GB200, gpus: 4, vcpus: 128, memory_gb: 900, start_delay_s: 0, default_duration_s: 3600}}
  - {name: sim-cw-h100-od, provider: coreweave, region: us-east-04, capacity: on-demand, node_type: gd-8xh100ib-i128,
     driver: {kind: simulated, nodes: 2, gpu: H100, gpus: 8, vcpus: 128, memory_gb: 2048, start_delay_s: 0, default_duration_s: 3600}}
  - {name: sim-cw-h100, provider: coreweave, region: us-east-04, capacity: contract, contract: coreweave-2025, node_type: gd-8xh100ib-i128,
     driver: {kind: simulated, nodes: 2, gpu: H100, gpus: 8, vcpus: 128, memory_gb: 2048, start_delay_s: 0, default_duration_s: 3600}}
";

/// The placement's (provider, contract) or the pending reason, once the loop has decided.
fn decision(dir: &Path, env: &[(&str, &str)], id: &str) -> Result<(String, String), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = json(cumulo(dir, env, &["job", id, "-o", "json"]));
        if let Some(offer) = job["attempts"].get(0).map(|a| &a["placement"]["offer"]) {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            return Ok((text(&offer["provider"]), text(&offer["contract"])));
        }
        if let Some(reason) = job["pending_reason"].as_str().filter(|r| !r.is_empty()) {
            return Err(reason.to_string());
        }
        assert!(Instant::now() < deadline, "job {id} was never decided: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_server_places_as_offers_ranks_and_burns_down_as_the_portfolio_does() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let support::Started { server: _server, url, token } = start_server(dir, FLEET);
    let env = [("CUMULO_SERVER", url.as_str()), ("CUMULO_TOKEN", token.as_str())];
    std::fs::write(
        dir.join("rack.yaml"),
        "name: rack\nresources: {accelerators: GB200:4}\nnum_nodes: 18\ntopology: nvlink-domain\nrun: x\n",
    )
    .unwrap();
    std::fs::write(dir.join("h100.yaml"), "name: h100\nresources: {accelerators: H100:8}\nrun: x\n").unwrap();
    for file in ["rack.yaml", "h100.yaml"] {
        let offers = json(cumulo(dir, &[], &["offers", file, "--utilisation", "0", "-o", "json"]));
        let best = &offers["feasible"][0];
        let ranked = (best["provider"].as_str().unwrap().to_string(), best["contract"].as_str().unwrap().to_string());
        let submitted = json(cumulo(dir, &env, &["submit", file, "-o", "json"]));
        let id = submitted[0]["id"].as_u64().unwrap().to_string();
        assert_eq!(decision(dir, &env, &id), Ok(ranked), "{file}: the server decides as `cumulo offers` ranks");
    }
    // The repro: an NVL72 gang that only AWS may take waits out Azure's first refusal.
    let pretrain = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs/pretrain-gb200-nvl72.yaml");
    let offers = cumulo(dir, &[], &["offers", pretrain, "--utilisation", "0", "-o", "json"]);
    assert!(!offers.status.success(), "offers says the job cannot be placed yet");
    let infeasible = json(offers)["infeasible"].as_str().unwrap().to_string();
    assert!(
        infeasible.starts_with("first refusal of azure-2025: GB200 work is offered to azure first"),
        "{infeasible}"
    );
    let id = json(cumulo(dir, &env, &["submit", pretrain, "-o", "json"]))[0]["id"].as_u64().unwrap().to_string();
    let reason = decision(dir, &env, &id).expect_err("the server holds it back too");
    let words = |r: &str| r.split(" (waited").next().unwrap().to_string();
    assert_eq!(words(&reason), words(&infeasible), "the same clause in the same words");

    // Burn-down: once usage is metered, the server's view and the portfolio command agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    let burn = loop {
        let burn = json(cumulo(dir, &env, &["contracts", "-o", "json"]));
        let metered = burn["contracts"].as_array().unwrap().iter().filter(|c| c["consumed"].as_i64() > Some(0)).count();
        if metered >= 2 {
            break burn;
        }
        assert!(Instant::now() < deadline, "no usage metered under two contracts: {burn}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let at = burn["at"].as_str().unwrap();
    let demo = cumulo_portfolio::Portfolio::demo().unwrap();
    let mut csv = String::from("contract,start,end,spend_usd\n");
    for c in burn["contracts"].as_array().unwrap().iter().filter(|c| c["consumed"].as_i64() > Some(0)) {
        let id = c["contract"].as_str().unwrap();
        let start = demo.contract(id).unwrap().term_start().to_rfc3339();
        let spend = cumulo_types::Money(c["consumed"].as_i64().unwrap()).to_string().replace(['$', ','], "");
        csv.push_str(&format!("{id},{start},{at},{spend}\n"));
    }
    std::fs::write(dir.join("usage.csv"), csv).unwrap();
    let local = json(cumulo(dir, &[], &["portfolio", "burn-down", "--usage", "usage.csv", "--at", at, "-o", "json"]));
    let fields = |b: &serde_json::Value| -> Vec<(String, i64, i64, String)> {
        b["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (
                    text("contract"),
                    c["scheduled"].as_i64().unwrap(),
                    c["consumed"].as_i64().unwrap(),
                    text("status_text"),
                )
            })
            .collect()
    };
    assert_eq!(fields(&burn), fields(&local), "one schedule and one status for the same portfolio and usage");
    assert!(fields(&burn).iter().any(|(_, scheduled, _, _)| *scheduled > 0));

    // Deliveries: each contract capacity's ramp against the nodes its simulated cluster shows.
    let now = chrono::Utc::now();
    for d in burn["deliveries"].as_array().unwrap() {
        let text = |k: &str| d[k].as_str().unwrap().to_string();
        let delivered = demo.delivered_nodes(&text("contract"), &text("region"), &text("node_type"), now);
        let discovered = d["discovered"].as_u64().unwrap() as u32;
        assert_eq!(d["delivered"].as_u64(), Some(u64::from(delivered)), "{d}");
        assert_eq!(d["shortfall"].as_u64(), Some(u64::from(delivered.saturating_sub(discovered))), "{d}");
    }
    let clusters: Vec<&str> =
        burn["deliveries"].as_array().unwrap().iter().map(|d| d["clusters"][0].as_str().unwrap()).collect();
    assert_eq!(clusters, ["sim-aws-gb200", "sim-azure-gb200", "sim-cw-h100"]);
    let table = String::from_utf8(cumulo(dir, &env, &["contracts"]).stdout).unwrap();
    assert!(table.contains("delivery shortfall: aws-2025 has delivered"), "{table}");
}
