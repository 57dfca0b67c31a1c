//! `cumulo usage` and `cumulo invoice` end to end: the real binary on a usage file written by the
//! ledger, and bad input answered with the file, line or field and the reason.

use std::path::PathBuf;
use std::process::{Command, Output};

use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey, parse_time};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};

fn cumulo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("cumulo runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch file under the system temp dir, unique to this test process and name.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cumulo-ledger-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Two contract nodes for 10 h at $60 and one on-demand node for 3 h at $98.32: $1,494.96.
fn usage_file() -> PathBuf {
    let aws = Provider::new("aws").unwrap();
    let t = |s: &str| parse_time("t", s).unwrap();
    let mut prices = PriceBook::new();
    prices
        .set_price(PriceKey::on_demand(&aws, "p5.48xlarge"), t("2026-01-01"), Money::parse_dollars("98.32").unwrap())
        .unwrap();
    prices
        .set_price(PriceKey::contract(&aws, "p5.48xlarge", "aws-2026"), t("2026-01-01"), Money::from_dollars(60))
        .unwrap();
    let node = |tenant: &str, contract: Option<&str>| NodeMeta {
        tenant: tenant.into(),
        provider: aws.clone(),
        region: "us-east-1".into(),
        node_type: "p5.48xlarge".into(),
        gpu: Some(GpuModel::H100),
        gpus: 8,
        capacity: if contract.is_some() { CapacityKind::Contract } else { CapacityKind::OnDemand },
        contract: contract.map(String::from),
        resource_id: None,
    };
    let mut ledger = Ledger::new();
    for (job, rank, tenant, contract, start, stop) in [
        (1, 0, "research", Some("aws-2026"), "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z"),
        (1, 1, "research", Some("aws-2026"), "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z"),
        (2, 0, "serving", None, "2026-11-05T00:00:00Z", "2026-11-05T03:00:00Z"),
    ] {
        let obs = Observation {
            attempt: AttemptId { job: JobId(job), attempt: 1 },
            node_rank: rank,
            start: t(start),
            stop: t(stop),
            node: node(tenant, contract),
        };
        ledger.ingest(&obs, &prices).unwrap();
    }
    let lines: Vec<String> = ledger.records().map(|r| serde_json::to_string(r).unwrap()).collect();
    scratch("usage.jsonl", &(lines.join("\n") + "\n"))
}

#[test]
fn invoice_prints_lines_and_exact_total() {
    let file = usage_file();
    let out =
        cumulo(&["invoice", "--usage", file.to_str().unwrap(), "--provider", "aws", "--month", "2026-11", "-o", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "item,capacity,node_type,rate_usd_per_node_hour,node_hours,amount_usd\n\
         aws-2026,contract,p5.48xlarge,60,20,1200\n\
         on-demand,on-demand,p5.48xlarge,98.32,3,294.96\n\
         total,,,,23,1494.96\n"
    );
    let out = cumulo(&[
        "invoice",
        "--usage",
        file.to_str().unwrap(),
        "--provider",
        "aws",
        "--month",
        "2026-11",
        "-o",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 1_494_960_000);
    assert_eq!(json["money_unit"], "micro-USD");
    let out = cumulo(&["invoice", "--usage", file.to_str().unwrap(), "--provider", "aws", "--month", "2026-11"]);
    assert!(stdout(&out).contains("$1,494.96"), "{}", stdout(&out));
}

#[test]
fn usage_groups_and_exports_focus() {
    let file = usage_file();
    let f = file.to_str().unwrap();
    let out = cumulo(&["usage", "--usage", f, "--group-by", "tenant", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(String, i64)> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap().to_string(), r["cost"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, vec![("research".into(), 1_200_000_000), ("serving".into(), 294_960_000)]);
    let out = cumulo(&["usage", "--usage", f, "--tenant", "research", "--since", "2026-11-10T05:00:00Z", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"][0]["cost"], 600_000_000);
    let out = cumulo(&["usage", "--usage", f, "--format", "focus"]);
    let text = stdout(&out);
    assert!(text.starts_with("BilledCost,BillingAccountId,"), "{text}");
    assert_eq!(text.lines().count(), 1 + 23, "the header and one row per hourly record (2 × 10 + 3)");
    let out = cumulo(&["usage", "--usage", f, "--view", "chargeback"]);
    assert!(stdout(&out).contains("$1,200.00"), "{}", stdout(&out));
}

#[test]
fn bad_input_names_the_problem() {
    let file = usage_file();
    let f = file.to_str().unwrap();
    let out = cumulo(&["invoice", "--usage", f, "--provider", "aws", "--month", "2026-13"]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "error: invalid month `2026-13`: expected a month YYYY-MM such as 2026-11");
    let out = cumulo(&["usage", "--usage", f, "--since", "last week"]);
    assert!(stderr(&out).contains("invalid since `last week`: expected an RFC 3339 time"), "{}", stderr(&out));
    let broken = scratch("broken.jsonl", "{\"attempt\": 1}\n");
    let out = cumulo(&["usage", "--usage", broken.to_str().unwrap()]);
    assert!(
        stderr(&out).starts_with(&format!("error: usage file `{}` line 1: not a usage record", broken.display())),
        "{}",
        stderr(&out)
    );
    let mut record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&file).unwrap().lines().next().unwrap()).unwrap();
    record["cost"] = serde_json::json!(1);
    let tampered = scratch("tampered.jsonl", &format!("{record}\n"));
    let out = cumulo(&["usage", "--usage", tampered.to_str().unwrap()]);
    assert!(stderr(&out).contains("line 1: usage record for attempt 1.1 node 0 from 2026-11-10T00:00:00Z: cost $0.000001 does not match rate $60.00"), "{}", stderr(&out));
    let out = cumulo(&["usage", "--usage", f, "--view", "chargeback", "-o", "focus"]);
    assert!(stderr(&out).contains("invalid format `focus` for view `chargeback`"), "{}", stderr(&out));
    for cmd in ["usage", "invoice"] {
        let out = cumulo(&[cmd, "--help"]);
        assert!(out.status.success() && stdout(&out).contains("--usage <FILE>"), "{cmd}");
    }
}

/// A `cumulo server` on loopback with a fresh SQLite store (no usage metered yet): the remote forms
/// of `usage` (every view, -o focus, `usage export`) and `invoice` reach the server's money routes
/// with the admin token.
#[test]
fn usage_and_invoice_ask_the_server_without_a_file() {
    let dir = std::env::temp_dir().join(format!("cumulo-ledger-cli-server-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["server", "--no-reconcile", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&dir)
        .env("CUMULO_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cumulo server starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let token = loop {
        if let Ok(token) = std::fs::read_to_string(dir.join("admin.token"))
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break token.trim().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let remote = ["--server", url.as_str(), "--token", token.as_str()];
    let out = cumulo(&[&["usage", "-o", "json", "--group-by", "provider"][..], &remote[..]].concat());
    let usage = stdout(&out);
    let invoice =
        cumulo(&[&["invoice", "--provider", "aws", "--month", "2026-11", "-o", "json"][..], &remote[..]].concat());
    let bad_month = cumulo(&[&["invoice", "--provider", "aws", "--month", "11-2026"][..], &remote[..]].concat());
    let chargeback = cumulo(&[&["usage", "--view", "chargeback"][..], &remote[..]].concat());
    let burn_down = cumulo(&[&["usage", "--view", "burn-down", "--at", "2026-12-31"][..], &remote[..]].concat());
    let focus = cumulo(&[&["usage", "-o", "focus"][..], &remote[..]].concat());
    let export = cumulo(&[&["usage", "export"][..], &remote[..]].concat());
    let export_focus = cumulo(&[&["usage", "export", "-o", "focus"][..], &remote[..]].concat());
    let bad_page = cumulo(
        &[&["usage", "--view", "chargeback", "--since", "2026-12-01", "--until", "soon"][..], &remote[..]].concat(),
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&usage).unwrap();
    assert_eq!((json["money_unit"].as_str(), json["rows"].as_array().map(Vec::len)), (Some("micro-USD"), Some(0)));
    assert!(invoice.status.success(), "{}", stderr(&invoice));
    let json: serde_json::Value = serde_json::from_slice(&invoice.stdout).unwrap();
    assert_eq!((json["provider"].as_str(), json["total"].as_i64()), (Some("aws"), Some(0)));
    assert_eq!(stderr(&bad_month).trim(), "error: invalid month `11-2026`: expected a month YYYY-MM such as 2026-11");
    assert!(chargeback.status.success(), "{}", stderr(&chargeback));
    assert!(stdout(&chargeback).contains("saved"), "{}", stdout(&chargeback));
    assert!(burn_down.status.success(), "{}", stderr(&burn_down));
    let burn = stdout(&burn_down);
    assert!(burn.starts_with("burn-down at 2026-12-31T00:00:00Z from metered usage (server http://"), "{burn}");
    assert!(burn.contains("ILLUSTRATIVE") && burn.contains("aws-2025"), "the demo portfolio's contracts: {burn}");
    for out in [&focus, &export_focus] {
        assert!(out.status.success(), "{}", stderr(out));
        let text = stdout(out);
        assert!(text.starts_with("BilledCost,BillingAccountId,"), "the FOCUS header first: {text}");
        // No job ran, so every row is the demo portfolio's commitments (Purchase and unused rows).
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let commitment = rows.headers().unwrap().iter().position(|c| c == "CommitmentDiscountId").unwrap();
        let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
        assert!(!rows.is_empty(), "the commitments' Purchase rows: {text}");
        for row in &rows {
            assert!(!row[commitment].is_empty(), "only commitment rows without usage: {row:?}");
        }
    }
    assert!(export.status.success() && stdout(&export).is_empty(), "no records: {}", stderr(&export));
    assert_eq!(
        stderr(&bad_page).trim(),
        "error: server answered 400: invalid until `soon`: expected an RFC 3339 time such as 2026-11-03T04:05:06Z \
         or a date such as 2026-11-03 (field `until`)"
    );
}
