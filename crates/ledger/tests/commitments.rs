//! Commitments read as FinOps tools read them: amortised per month, used and unused, idle committed
//! capacity by region and node type, and FOCUS Purchase rows that reconcile with the usage rows.

mod common;

use std::collections::BTreeMap;

use common::{Obs, book, t, usd};
use cumulo_ledger::{FocusOptions, Ledger, Month, commitments, focus_commitment_rows, focus_header, focus_rows};
use cumulo_portfolio::Portfolio;
use cumulo_types::Money;

/// `aws-2026`: $61,000 over November and December 2026 ($1,000 a day), two p5.48xlarge nodes in
/// us-east-1 from the first day, $60 per node-hour.
fn portfolio() -> Portfolio {
    let yaml = "node_types:\n  - {name: p5.48xlarge, gpu: H100, gpus: 8, vcpus: 192, memory_gb: 2048}\n\
        contracts:\n  - id: aws-2026\n    provider: aws\n    committed_usd: 61000\n\
        \x20   term: {start: 2026-11-01, end: 2026-12-31}\n\
        \x20   ramp:\n      - {date: 2026-11-01, region: us-east-1, node_type: p5.48xlarge, nodes: 2}\n\
        \x20   rates:\n      - {node_type: p5.48xlarge, per_node_hour: 60}\n";
    Portfolio::from_yaml(yaml, "test.yaml").unwrap()
}

/// One node under the contract for 10 h on 2026-11-10 ($600), one on-demand node for 3 h.
fn usage() -> Ledger {
    let mut ledger = Ledger::new();
    for obs in [
        Obs::new(1, "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z").contract("aws-2026").build(),
        Obs::new(2, "2026-11-05T00:00:00Z", "2026-11-05T03:00:00Z").build(),
    ] {
        ledger.ingest(&obs, &book()).unwrap();
    }
    ledger
}

#[test]
fn each_month_carries_its_share_of_the_commitment_used_and_unused() {
    let periods = commitments(&portfolio(), usage().records(), t("2026-01-01"), t("2027-06-01"));
    let months: Vec<(String, Money, Money, Money)> =
        periods.iter().map(|p| (p.month.to_string(), p.amortized, p.used, p.unused)).collect();
    assert_eq!(
        months,
        vec![
            ("2026-11".into(), usd("30000"), usd("600"), usd("29400")),
            ("2026-12".into(), usd("31000"), Money::ZERO, usd("31000")),
        ],
        "30 and 31 of the term's 61 days; only the contract's own usage counts"
    );
    assert_eq!(periods.iter().map(|p| p.amortized).sum::<Money>(), usd("61000"), "the months add up to the commitment");
    // idle committed capacity: two nodes delivered all November, one used for 10 h
    let idle = &periods[0].idle;
    assert_eq!(idle.len(), 1);
    assert_eq!((idle[0].region.as_str(), idle[0].node_type.as_str()), ("us-east-1", "p5.48xlarge"));
    assert_eq!(idle[0].delivered_node_seconds, 2 * 30 * 86_400);
    assert_eq!(idle[0].used_node_seconds, 10 * 3600);
    assert_eq!(idle[0].idle_node_seconds, 2 * 30 * 86_400 - 10 * 3600);
    assert_eq!(idle[0].idle_value, usd("85800"), "1,430 idle node-hours at $60");
    // a window inside the term amortises only its own seconds
    let one_day = commitments(&portfolio(), usage().records(), t("2026-11-10"), t("2026-11-11"));
    assert_eq!((one_day.len(), one_day[0].amortized, one_day[0].used), (1, usd("1000"), usd("600")));
}

#[test]
fn focus_purchase_rows_reconcile_with_usage_rows_per_commitment() {
    let ledger = usage();
    let periods = commitments(&portfolio(), ledger.records(), t("2026-11-01"), t("2027-01-01"));
    let options = FocusOptions { amortized_commitments: true, ..FocusOptions::default() };
    let mut text = focus_header();
    text.push_str(&focus_rows(ledger.records(), &options).unwrap());
    text.push_str(&focus_commitment_rows(&periods, &options).unwrap());
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<BTreeMap<String, String>> =
        reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect();
    let money = |r: &BTreeMap<String, String>, c: &str| Money::parse_dollars(&r[c]).unwrap();
    for month in ["2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"] {
        let of_commitment: Vec<_> = rows
            .iter()
            .filter(|r| r["CommitmentDiscountId"] == "aws-2026" && r["BillingPeriodStart"] == month)
            .collect();
        let purchase: Vec<_> = of_commitment.iter().filter(|r| r["ChargeCategory"] == "Purchase").collect();
        assert_eq!(purchase.len(), 1, "one Purchase row per contract and month");
        assert_eq!(money(purchase[0], "EffectiveCost"), Money::ZERO, "a purchase's cost shows in the usage it covers");
        let effective: Money =
            of_commitment.iter().filter(|r| r["ChargeCategory"] == "Usage").map(|r| money(r, "EffectiveCost")).sum();
        assert_eq!(effective, money(purchase[0], "BilledCost"), "used + unused = the amortised commitment ({month})");
        let billed: Money =
            of_commitment.iter().filter(|r| r["ChargeCategory"] == "Usage").map(|r| money(r, "BilledCost")).sum();
        assert_eq!(billed, Money::ZERO, "usage under the commitment is billed by the purchase");
    }
    for r in &rows {
        assert_eq!(
            (r["ServiceName"].as_str(), r["ServiceSubcategory"].as_str()),
            ("Amazon Elastic Compute Cloud", "Virtual Machines"),
            "FOCUS: one ServiceSubcategory per ServiceName, never null ({} row)",
            r["ChargeCategory"]
        );
    }
    let unused: Vec<_> = rows.iter().filter(|r| r["CommitmentDiscountStatus"] == "Unused").collect();
    assert_eq!(unused.len(), 2);
    assert_eq!(money(unused[0], "EffectiveCost"), usd("29400"));
    assert!(
        unused[0]["ChargeDescription"].contains("1430 idle committed node-hours"),
        "{}",
        unused[0]["ChargeDescription"]
    );
    // on-demand usage is billed as before
    let on_demand: Money = rows
        .iter()
        .filter(|r| r["PricingCategory"] == "Standard" && r["ChargeCategory"] == "Usage")
        .map(|r| money(r, "BilledCost"))
        .sum();
    assert_eq!(on_demand, usd("294.96"));
    assert_eq!(Month::parse("2026-11").unwrap().to_string(), "2026-11");
}
