//! Portfolio files (demo and broken ones), delivered capacity and burn-down maths.

mod common;

use common::{at, ten_day_yaml};
use cumulo_portfolio::{BurnDown, DEMO_PORTFOLIO_YAML, Forecast, Portfolio, Status};
use cumulo_types::Money;

fn check_error(yaml: &str, expect: &str) {
    match Portfolio::from_yaml(yaml, "test.yaml") {
        Ok(_) => panic!("expected error `{expect}`"),
        Err(err) => assert_eq!(err.to_string(), expect),
    }
}

#[test]
fn demo_is_illustrative_and_equals_the_example_file() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/portfolio-demo.yaml"))
        .expect("examples/portfolio-demo.yaml ships with the repository");
    assert_eq!(example, DEMO_PORTFOLIO_YAML, "examples/portfolio-demo.yaml and the compiled-in demo differ");
    let demo = Portfolio::demo().unwrap();
    assert!(demo.illustrative);
    let ids: Vec<&str> = demo.contracts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["aws-2025", "azure-2025", "oci-2026", "gcp-2025", "coreweave-2025"]);
    let aws = demo.contract("aws-2025").unwrap();
    assert_eq!(aws.committed, Money::from_dollars(38_000_000_000));
    assert_eq!(aws.end.signed_duration_since(aws.start).num_days() + 1, 2557, "7 years");
    assert!(aws.expansion.is_some());
    assert_eq!(demo.contract("azure-2025").unwrap().committed, Money::from_dollars(250_000_000_000));
}

#[test]
fn demo_aws_ramps_to_hundreds_of_thousands_of_gpus_in_whole_racks() {
    let demo = Portfolio::demo().unwrap();
    let gpus_at = |when: &str| -> u64 {
        demo.delivered_capacity(at(when))
            .iter()
            .filter(|d| d.contract == "aws-2025")
            .map(|d| {
                let nt = demo.node_type(&d.node_type).unwrap();
                assert_eq!(d.nodes % nt.nvlink_domain_nodes, 0, "whole NVL72 racks: {d:?}");
                u64::from(d.nodes) * u64::from(nt.gpus)
            })
            .sum()
    };
    assert_eq!(gpus_at("2025-12-31"), 0);
    assert!(gpus_at("2026-06-30") < gpus_at("2026-12-31"));
    let end_2026 = gpus_at("2026-12-31");
    assert!((100_000..1_000_000).contains(&end_2026), "{end_2026}");
    assert_eq!(gpus_at("2027-06-30"), end_2026, "no ramp after 2026-12-31");
}

#[test]
fn delivered_capacity_sums_ramp_steps_per_region_and_type() {
    let yaml = ten_day_yaml("240", "")
        .replace("      - {date: 2026-01-01, region: r1, node_type: one, nodes: 1}", "      - {date: 2026-01-01, region: r1, node_type: one, nodes: 1}\n      - {date: 2026-01-05, region: r1, node_type: one, nodes: 2}\n      - {date: 2026-01-05, region: r2, node_type: one, nodes: 4}");
    let p = Portfolio::from_yaml(&yaml, "t").unwrap();
    let view = |when: &str| -> Vec<(String, u32)> {
        p.delivered_capacity(at(when)).into_iter().map(|d| (d.region, d.nodes)).collect()
    };
    assert_eq!(view("2026-01-02"), [("r1".to_string(), 1)]);
    assert_eq!(view("2026-01-05"), [("r1".to_string(), 3), ("r2".to_string(), 4)]);
    assert!(view("2026-01-11").is_empty(), "term over");
    assert!(view("2025-12-31").is_empty(), "term not started");
}

#[test]
fn validation_errors_name_contract_and_field() {
    check_error(
        &ten_day_yaml("-5", ""),
        "contract `c1` field `committed_usd`: -$5.00 is negative: expected an amount of at least $0",
    );
    check_error(
        &ten_day_yaml("240", "").replace("date: 2026-01-01, region", "date: 2026-02-01, region"),
        "contract `c1` field `ramp[0].date`: 2026-02-01 is outside the term 2026-01-01..2026-01-10",
    );
    check_error(
        &ten_day_yaml("240", "").replace("region: r1, node_type: one", "region: r1, node_type: two"),
        "contract `c1` field `ramp[0].node_type`: unknown node type `two` (declared: one)",
    );
    let twice = ten_day_yaml("240", "")
        + &ten_day_yaml("240", "")
            .split("contracts:\n")
            .nth(1)
            .unwrap()
            .replace("start: 2026-01-01, end: 2026-01-10", "start: 2026-01-10, end: 2026-01-20")
            .replace("date: 2026-01-01,", "date: 2026-01-10,");
    check_error(
        &twice,
        "contract `c1` field `term`: 2026-01-10..2026-01-20 overlaps the term 2026-01-01..2026-01-10 of another contract with the same id",
    );
    check_error(
        &ten_day_yaml("240", "").replace("per_node_hour: 1", "per_node_hour: -1"),
        "contract `c1` field `rates[0].per_node_hour`: -$1.00 is negative: expected an amount of at least $0",
    );
    check_error(
        &ten_day_yaml("240", "    clauses:\n      first_refusal: {wait: soon}\n"),
        "contract `c1` field `clauses.first_refusal.wait`: invalid duration `soon`: expected a number with s, m, h or d, e.g. 2h",
    );
    check_error(
        &ten_day_yaml("240", "    clauses:\n      exclusive: {gpus: [H900]}\n"),
        &format!(
            "contract `c1` field `clauses.exclusive.gpus`: unknown GPU model `H900` (known: {})",
            cumulo_types::GpuModel::known_names()
        ),
    );
    check_error(
        &ten_day_yaml(
            "240",
            "    expansion: {until: 2027-01-01, region: r1, node_type: one, nodes: 1, per_node_hour: 1}\n",
        ),
        "contract `c1` field `expansion.until`: 2027-01-01 is outside the term 2026-01-01..2026-01-10",
    );
    check_error(
        &ten_day_yaml("240", "").replace("{node_type: one, per_node_hour: 1}", "{node_type: one}"),
        "contract `c1` field `rates[0]`: give exactly one of per_gpu_hour or per_node_hour",
    );
    check_error(
        &ten_day_yaml("240", "")
            .replace("term: {start: 2026-01-01, end: 2026-01-10}", "term: {start: 2026-01-10, end: 2026-01-01}"),
        "contract `c1` field `term.end`: 2026-01-01 is before the start 2026-01-10",
    );
    let err = Portfolio::from_yaml("contracts: []\nsurprise: 1\n", "p.yaml").unwrap_err().to_string();
    assert!(err.starts_with("portfolio `p.yaml`: unknown field `surprise`"), "{err}");
}

#[test]
fn burn_down_at_full_use_of_an_exact_commitment_is_on_schedule() {
    let p = Portfolio::from_yaml(&ten_day_yaml("240", ""), "t").unwrap();
    let full = Forecast::Utilisation { bps: 10_000 };
    let b = BurnDown::compute(&p, &full, at("2026-01-06"));
    let c = &b.contracts[0];
    assert_eq!(c.scheduled, Money::from_dollars(120));
    assert_eq!(c.consumed, Money::from_dollars(120));
    assert_eq!(c.status, Status::OnSchedule);
    assert_eq!((c.projected_shortfall, c.projected_overrun), (Money::ZERO, Money::ZERO));
}

#[test]
fn burn_down_at_half_use_is_behind_with_a_shortfall() {
    let p = Portfolio::from_yaml(&ten_day_yaml("240", ""), "t").unwrap();
    let half = Forecast::parse_utilisation("50%").unwrap();
    let c = &BurnDown::compute(&p, &half, at("2026-01-06")).contracts[0];
    assert_eq!(c.status, Status::Behind { bps: 5000 });
    assert_eq!(c.status_text, "50% behind schedule");
    assert_eq!(c.projected_consumed, Money::from_dollars(120));
    assert_eq!(c.projected_payable, Money::from_dollars(240));
    assert_eq!(c.projected_shortfall, Money::from_dollars(120));
}

#[test]
fn burn_down_overrun_when_use_exceeds_the_commitment() {
    let p = Portfolio::from_yaml(&ten_day_yaml("100", ""), "t").unwrap();
    let c = &BurnDown::compute(&p, &Forecast::Utilisation { bps: 10_000 }, at("2026-01-06")).contracts[0];
    assert!(matches!(c.status, Status::Ahead { .. }));
    assert_eq!(c.projected_overrun, Money::from_dollars(140));
    assert_eq!(c.projected_shortfall, Money::ZERO);
}

#[test]
fn minimum_spend_per_period_raises_what_is_paid() {
    // Ten days in one month: $100 minimum for the month, 25% use spends $60.
    let p = Portfolio::from_yaml(&ten_day_yaml("10", "    minimum_spend: {period: month, usd: 100}\n"), "t").unwrap();
    let c = &BurnDown::compute(&p, &Forecast::parse_utilisation("25").unwrap(), at("2026-01-06")).contracts[0];
    assert_eq!(c.projected_consumed, Money::from_dollars(60));
    assert_eq!(c.periods_under_minimum, 1);
    assert_eq!(c.projected_payable, Money::from_dollars(100));
    assert_eq!(c.projected_shortfall, Money::from_dollars(40));
}

#[test]
fn usage_series_is_prorated_then_carried_forward() {
    let p = Portfolio::from_yaml(&ten_day_yaml("240", ""), "t").unwrap();
    // 2 days at 50% use of $1/h = $24; carried forward at 50% for the remaining 192 h = $96.
    let series = Forecast::from_csv("contract,start,end,spend_usd\nc1,2026-01-01,2026-01-03,24\n", "u.csv").unwrap();
    series.check_against(&p).unwrap();
    let c = p.contract("c1").unwrap();
    assert_eq!(series.consumed(c, at("2026-01-02")), Money::from_dollars(12));
    assert_eq!(series.consumed(c, at("2026-01-11")), Money::from_dollars(120));
    let unknown = Forecast::from_csv("contract,start,end,spend_usd\nzz,2026-01-01,2026-01-03,24\n", "u.csv").unwrap();
    assert_eq!(unknown.check_against(&p).unwrap_err().to_string(), "invalid usage contract `zz`: expected one of c1");
}

#[test]
fn demo_burn_down_at_end_of_2026_is_consistent() {
    let demo = Portfolio::demo().unwrap();
    let b = BurnDown::compute(&demo, &Forecast::parse_utilisation("70").unwrap(), at("2026-12-31"));
    assert!(b.illustrative);
    for c in &b.contracts {
        assert!(c.consumed <= c.projected_consumed, "{c:?}");
        assert_eq!(c.projected_payable - c.projected_consumed, c.projected_shortfall, "{c:?}");
        assert!(c.projected_payable >= c.committed, "{c:?}");
        assert!(c.projected_shortfall == Money::ZERO || c.projected_overrun == Money::ZERO, "{c:?}");
    }
}
