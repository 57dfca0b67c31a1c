//! Budgets end to end with the real `cumulo` binary and server: a job that would push its tenant
//! past a hard monthly budget waits with a reason naming the budget; raising the budget with
//! `cumulo tenant budget` lets it run; bad budgets are refused naming the field; `/metrics`
//! shows the budget, the month's spend and the cost by tenant, provider and contract, agreeing
//! with the metered usage.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cumulo, json, start_server};

/// One SIMULATED on-demand H100 node at $98.32 per node-hour; research may spend $10 a month.
const FLEET: &str = r#"
tenants:
  - {name: default}
  - {name: research, budget: {monthly: 10, kind: hard}}
clusters:
  - {name: sim-h100, provider: aws, region: us-east-1, capacity: on-demand, price_per_node_hour: "98.32",
     driver: {kind: simulated, nodes: 1, gpu: H100, gpus: 8, vcpus: 192, memory_gb: 2048, start_delay_s: 0, default_duration_s: 2}}
"#;

/// Polls the job until `done` says its JSON is what the test waits for.
fn wait_for(
    dir: &Path,
    env: &[(&str, &str)],
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = json(cumulo(dir, env, &["job", id, "-o", "json"]));
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id}: {what} never came: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn block<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// `/metrics` as `name{labels}` → value.
fn metrics(url: &str, token: &str) -> std::collections::BTreeMap<String, f64> {
    let text = block(async {
        let response = reqwest::Client::new().get(format!("{url}/metrics")).bearer_auth(token).send().await?;
        response.error_for_status()?.text().await
    })
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in `{line}`"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in `{line}`"));
        assert!(out.insert(key.to_string(), value).is_none(), "duplicate sample `{key}`");
    }
    out
}

#[test]
fn a_hard_budget_holds_a_job_until_it_is_raised_and_metrics_show_the_money() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let support::Started { server: _server, url, token } = start_server(dir, FLEET);
    let env = [("CUMULO_SERVER", url.as_str()), ("CUMULO_TOKEN", token.as_str())];
    std::fs::write(
        dir.join("train.yaml"),
        "name: train\ntenant: research\nresources: {accelerators: H100:8}\nrun: x\n",
    )
    .unwrap();
    let id = json(cumulo(dir, &env, &["submit", "train.yaml", "-o", "json"]))[0]["id"].as_u64().unwrap().to_string();
    let job =
        wait_for(dir, &env, &id, "a pending reason", |j| j["pending_reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        job["pending_reason"].as_str().unwrap(),
        "budget: tenant research would exceed its hard monthly budget of $10.00 (spent $0.00, this job ~$98.32)",
        "one node-hour (no duration given) of the only feasible pool, against the fleet file's budget"
    );
    assert_eq!(job["state"], "pending", "{job}");

    // Bad budgets are refused naming the field, and change nothing.
    let negative = cumulo(dir, &env, &["tenant", "budget", "research", "--monthly", "-5"]);
    let stderr = String::from_utf8_lossy(&negative.stderr);
    assert!(!negative.status.success(), "a negative budget fails");
    assert!(
        stderr.contains("monthly") && stderr.contains("invalid amount `-5`: expected dollars of at least 0"),
        "{stderr}"
    );
    let unknown = cumulo(dir, &env, &["tenant", "budget", "nobody", "--monthly", "5"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("tenant `nobody` not found"), "an unknown tenant");
    let (status, body) = block(async {
        let response = reqwest::Client::new()
            .put(format!("{url}/v1/tenants/research/budget"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"monthly": 5, "kind": "firm"}))
            .send()
            .await?;
        Ok::<_, reqwest::Error>((response.status(), response.json::<serde_json::Value>().await?))
    })
    .unwrap();
    assert_eq!(status, 400, "an unknown kind");
    assert_eq!(body["field"], "kind", "{body}");
    assert!(body.to_string().contains("unknown kind `firm`: expected `hard` or `soft`"), "{body}");
    let listed = json(cumulo(dir, &env, &["tenant", "list", "-o", "json"]));
    let research = listed.as_array().unwrap().iter().find(|t| t["name"] == "research").unwrap().clone();
    assert_eq!(research["budget"]["kind"], "hard", "still the fleet file's: {research}");
    assert_eq!(research["budget"]["source"], "fleet file", "{research}");

    // Raising the budget lets the job run; it ends (the simulated job lasts 2 s) and is metered.
    let raised = cumulo(dir, &env, &["tenant", "budget", "research", "--monthly", "$1,000", "--hard"]);
    assert!(raised.status.success(), "{}", String::from_utf8_lossy(&raised.stderr));
    assert_eq!(String::from_utf8_lossy(&raised.stdout).trim(), "tenant `research`: monthly budget $1,000.00 hard");
    wait_for(dir, &env, &id, "success", |j| j["state"] == "succeeded");
    let table = String::from_utf8(cumulo(dir, &env, &["tenant", "list"]).stdout).unwrap();
    assert!(table.contains("$1,000.00 hard"), "{table}");

    let usage = json(cumulo(dir, &env, &["usage", "-o", "json"]));
    let m = metrics(&url, &token);
    assert_eq!(m["cumulo_budget_dollars{tenant=\"research\",kind=\"hard\"}"], 1000.0, "the raised budget");
    let cost = m["cumulo_cost_dollars_total{tenant=\"research\",provider=\"aws\",contract=\"\"}"];
    assert!(cost > 0.0, "the job's seconds were metered: {usage}");
    assert_eq!(m["cumulo_budget_used_dollars{tenant=\"research\"}"], cost, "all of it this month");
    assert!((m["cumulo_budget_used_ratio{tenant=\"research\",kind=\"hard\"}"] - cost / 1000.0).abs() < 1e-12);
    let metered: i64 = usage["rows"].as_array().map_or(0, |rows| rows.iter().filter_map(|r| r["cost"].as_i64()).sum());
    assert_eq!(cumulo_types::Money(metered).as_dollars_f64(), cost, "the series equals the metered usage: {usage}");
}
