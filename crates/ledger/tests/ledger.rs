//! Metering scenarios checkable by hand: an invoice worked out line by line, an attempt crossing a
//! month, a contract ending mid-month, a price change during an attempt, replays, and bad input.

mod common;

use common::{Obs, aws, book, t, usd};
use cumulo_ledger::{
    GroupBy, Ledger, Month, PriceBook, PriceKey, UsageFilter, burn_down, chargeback, invoice, usage_by,
};
use cumulo_types::{CapacityKind, Money};

fn ledger_of(observations: Vec<cumulo_ledger::Observation>) -> Ledger {
    let prices = book();
    let mut ledger = Ledger::new();
    for obs in &observations {
        ledger.ingest(obs, &prices).unwrap();
    }
    ledger
}

/// November 2026 at AWS, one job of each kind (see `common::book` for the prices).
fn november() -> Ledger {
    ledger_of(vec![
        // two contract nodes, 10 h each at $60 = $1,200
        Obs::new(1, "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z").contract("aws-2026").build(),
        Obs::new(1, "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z").contract("aws-2026").rank(1).build(),
        // on-demand, 3 h at $98.32 = $294.96
        Obs::new(2, "2026-11-05T00:00:00Z", "2026-11-05T03:00:00Z").tenant("serving").build(),
        // spot, 30 min at $40 = $20
        Obs::new(3, "2026-11-06T00:00:00Z", "2026-11-06T00:30:00Z").spot().build(),
        // GB200 under the contract, which ends at 2026-11-20T00:00: 4 h at $70, then 4 h on-demand at $120
        Obs::new(4, "2026-11-19T20:00:00Z", "2026-11-20T04:00:00Z").gb200().contract("aws-2026").build(),
    ])
}

#[test]
fn invoice_checked_by_hand() {
    let inv = invoice(november().records(), &aws(), Month::parse("2026-11").unwrap());
    let lines: Vec<(String, &str, Money, i64, Money)> =
        inv.lines.iter().map(|l| (l.item.clone(), l.node_type.as_str(), l.rate, l.node_seconds, l.amount)).collect();
    assert_eq!(
        lines,
        vec![
            ("aws-2026".into(), "p5.48xlarge", usd("60"), 20 * 3600, usd("1200")),
            ("aws-2026".into(), "p6e-gb200", usd("70"), 4 * 3600, usd("280")),
            ("on-demand".into(), "p5.48xlarge", usd("98.32"), 3 * 3600, usd("294.96")),
            ("on-demand".into(), "p6e-gb200", usd("120"), 4 * 3600, usd("480")),
            ("spot".into(), "p5.48xlarge", usd("40"), 1800, usd("20")),
        ]
    );
    assert_eq!(inv.total, usd("2274.96"));
    assert_eq!(inv.total, inv.lines.iter().map(|l| l.amount).sum());
    // another provider or month has nothing
    assert!(invoice(november().records(), &aws(), Month::parse("2026-10").unwrap()).lines.is_empty());
}

#[test]
fn contract_ending_mid_month_falls_back_to_on_demand() {
    let ledger = november();
    let job4: Vec<_> = ledger.records().filter(|r| r.job().0 == 4).collect();
    // 4 h under the contract, then 4 h on-demand: one record per hour
    assert_eq!(job4.len(), 8);
    assert_eq!(
        (job4[3].capacity, job4[3].contract.as_deref(), job4[3].stop),
        (CapacityKind::Contract, Some("aws-2026"), t("2026-11-20"))
    );
    assert_eq!(
        (job4[4].capacity, job4[4].contract.as_deref(), job4[4].start),
        (CapacityKind::OnDemand, None, t("2026-11-20"))
    );
    assert_eq!(job4[4].rate, usd("120"));
}

#[test]
fn attempt_crossing_a_month_is_split_between_invoices() {
    let ledger = ledger_of(vec![Obs::new(5, "2026-11-30T22:00:00Z", "2026-12-01T02:00:00Z").build()]);
    assert_eq!(ledger.len(), 4, "one record per hour");
    assert!(
        ledger
            .records()
            .all(|r| Month::containing(r.start) == Month::containing(r.stop - chrono::Duration::seconds(1))),
        "no record crosses the month"
    );
    let nov = invoice(ledger.records(), &aws(), Month::parse("2026-11").unwrap());
    let dec = invoice(ledger.records(), &aws(), Month::parse("2026-12").unwrap());
    assert_eq!((nov.lines[0].node_seconds, nov.total), (7200, usd("196.64")));
    assert_eq!((dec.lines[0].node_seconds, dec.total), (7200, usd("196.64")));
    assert_eq!(nov.total + dec.total, ledger.total_cost());
}

#[test]
fn price_change_during_an_attempt_bills_each_part_at_its_price() {
    let mut prices = book();
    prices.set_price(PriceKey::on_demand(&aws(), "p5.48xlarge"), t("2026-11-15T12:00:00Z"), usd("55")).unwrap();
    let mut ledger = Ledger::new();
    let obs = Obs::new(6, "2026-11-15T10:00:00Z", "2026-11-15T14:00:00Z").build();
    let got = ledger.ingest(&obs, &prices).unwrap();
    assert_eq!((got.records, got.new_seconds, got.cost), (4, 4 * 3600, usd("306.64"))); // 2 h × 98.32 + 2 h × 55
    let inv = invoice(ledger.records(), &aws(), Month::parse("2026-11").unwrap());
    let rates: Vec<(Money, Money)> = inv.lines.iter().map(|l| (l.rate, l.amount)).collect();
    assert_eq!(rates, vec![(usd("55"), usd("110")), (usd("98.32"), usd("196.64"))]);
    // the list price moves with it, so a contract node sees its list cost change too
    let mut contract = Ledger::new();
    contract
        .ingest(&Obs::new(7, "2026-11-15T11:00:00Z", "2026-11-15T13:00:00Z").contract("aws-2026").build(), &prices)
        .unwrap();
    let list: Vec<Money> = contract.records().map(|r| r.list_cost).collect();
    assert_eq!(list, vec![usd("98.32"), usd("55")]);
    assert_eq!(contract.total_cost(), usd("120"));
}

#[test]
fn the_same_observation_twice_bills_once() {
    let prices = book();
    let obs = Obs::new(8, "2026-11-03T00:00:00Z", "2026-11-03T05:00:00Z").build();
    let mut ledger = Ledger::new();
    let first = ledger.ingest(&obs, &prices).unwrap();
    let before = ledger.clone();
    let second = ledger.ingest(&obs, &prices).unwrap();
    assert_eq!((first.new_seconds, first.cost), (5 * 3600, usd("491.6")));
    assert_eq!((second.new_seconds, second.duplicate_seconds, second.cost), (0, 5 * 3600, Money::ZERO));
    assert_eq!(ledger, before);
}

#[test]
fn growing_heartbeats_bill_only_new_seconds() {
    let prices = book();
    let mut beats = Ledger::new();
    for stop in ["2026-11-03T01:00:00Z", "2026-11-03T02:30:00Z", "2026-11-03T02:00:00Z", "2026-11-03T04:00:00Z"] {
        beats.ingest(&Obs::new(9, "2026-11-03T00:00:00Z", stop).build(), &prices).unwrap();
    }
    let once = ledger_of(vec![Obs::new(9, "2026-11-03T00:00:00Z", "2026-11-03T04:00:00Z").build()]);
    assert_eq!(beats.total_cost(), once.total_cost());
    assert_eq!(beats.total_cost(), usd("393.28"));
    // a new attempt of the same job is new node-time
    beats.ingest(&Obs::new(9, "2026-11-03T00:00:00Z", "2026-11-03T01:00:00Z").attempt(2).build(), &prices).unwrap();
    assert_eq!(beats.total_cost(), usd("491.6"));
}

#[test]
fn conflicting_and_bad_observations_are_refused_and_change_nothing() {
    let prices = book();
    let mut ledger = november();
    let before = ledger.clone();
    let err = ledger.ingest(&Obs::new(2, "2026-11-05T00:00:00Z", "2026-11-05T04:00:00Z").build(), &prices).unwrap_err();
    assert_eq!(
        err.to_string(),
        "observation for attempt 2.1 node 0 conflicts with what is already metered: tenant was `serving`, now `research`"
    );
    let err =
        ledger.ingest(&Obs::new(10, "2026-11-05T04:00:00Z", "2026-11-05T03:00:00Z").build(), &prices).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid stop `2026-11-05T03:00:00Z (start 2026-11-05T04:00:00Z)`: expected an instant after start"
    );
    let err =
        ledger.ingest(&Obs::new(11, "2025-12-31T23:00:00Z", "2026-01-01T01:00:00Z").build(), &prices).unwrap_err();
    assert_eq!(err.to_string(), "no on-demand price for aws p5.48xlarge on-demand at 2025-12-31T23:00:00Z");
    let err = ledger
        .ingest(&Obs::new(12, "2026-11-05T00:00:00Z", "2026-11-05T01:00:00Z").contract("azure-1").build(), &prices)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no contract price for aws p5.48xlarge contract (contract azure-1) at 2026-11-05T00:00:00Z"
    );
    assert_eq!(ledger, before);
}

#[test]
fn stored_records_reload_and_tampering_is_caught() {
    let ledger = november();
    let records = ledger.to_records();
    let mut doubled = records.clone();
    doubled.extend(records.clone());
    assert_eq!(Ledger::from_records(doubled).unwrap(), Ledger::from_records(records.clone()).unwrap());
    let mut bad = records[0].clone();
    bad.cost += Money(1);
    assert_eq!(
        Ledger::from_records(vec![bad]).unwrap_err().to_string(),
        "usage record for attempt 1.1 node 0 from 2026-11-10T00:00:00Z: cost $60.000001 does not match rate $60.00 over 3600 s (expected $60.00)"
    );
    let mut overlapping = records[0].clone();
    overlapping.start = t("2026-11-10T00:30:00Z");
    overlapping.cost = usd("30");
    overlapping.list_cost = usd("49.16");
    assert_eq!(
        Ledger::from_records(vec![records[0].clone(), overlapping]).unwrap_err().to_string(),
        "usage record for attempt 1.1 node 0 from 2026-11-10T00:30:00Z: overlaps node-time already in the ledger"
    );
}

#[test]
fn usage_views_group_and_clip_exactly() {
    let ledger = november();
    let by_tenant = usage_by(ledger.records(), &UsageFilter::default(), GroupBy::Tenant);
    let rows: Vec<(&str, Money)> = by_tenant.iter().map(|r| (r.group.as_str(), r.cost)).collect();
    assert_eq!(rows, vec![("research", usd("1980")), ("serving", usd("294.96"))]);
    let by_contract = usage_by(ledger.records(), &UsageFilter::default(), GroupBy::Contract);
    let rows: Vec<(&str, Money)> = by_contract.iter().map(|r| (r.group.as_str(), r.cost)).collect();
    assert_eq!(rows, vec![("aws-2026", usd("1480")), ("on-demand", usd("774.96")), ("spot", usd("20"))]);
    let by_gpu = usage_by(ledger.records(), &UsageFilter::default(), GroupBy::Gpu);
    let rows: Vec<(&str, i64)> = by_gpu.iter().map(|r| (r.group.as_str(), r.gpu_seconds / 3600)).collect();
    // 8 GB200 node-hours × 4 GPUs; 23.5 H100 node-hours × 8 GPUs
    assert_eq!(rows, vec![("GB200", 32), ("H100", 188)]);
    // since 05:00 on the 10th and until the 12th: job 1's two nodes for 5 h each at $60
    let filter =
        UsageFilter { since: Some(t("2026-11-10T05:00:00Z")), until: Some(t("2026-11-12")), ..Default::default() };
    let by_job = usage_by(ledger.records(), &filter, GroupBy::Job);
    assert_eq!(by_job.len(), 1);
    assert_eq!((by_job[0].group.as_str(), by_job[0].node_seconds, by_job[0].cost), ("1", 10 * 3600, usd("600")));
    let serving = UsageFilter { tenant: Some("serving".into()), ..Default::default() };
    assert_eq!(usage_by(ledger.records(), &serving, GroupBy::Provider)[0].cost, usd("294.96"));
}

#[test]
fn chargeback_is_at_prices_actually_paid() {
    let rows = chargeback(november().records(), &UsageFilter::default());
    assert_eq!(rows.len(), 2);
    let research = &rows[0];
    assert_eq!(research.tenant, "research");
    assert_eq!((research.contract, research.on_demand, research.spot), (usd("1480"), usd("480"), usd("20")));
    assert_eq!(research.total, usd("1980"));
    // list: 20 h × 98.32 + 8 h × 120 + 0.5 h × 98.32
    assert_eq!(research.list, usd("2975.56"));
    assert_eq!(research.savings, usd("995.56"));
    assert_eq!(rows[1].total, usd("294.96"));
    assert_eq!(rows.iter().map(|r| r.total).sum::<Money>(), november().total_cost());
}

/// The contract of `common::book` as a portfolio: $2,000 over 2026-11-01..=2026-11-19, two p5 nodes
/// delivered from the start (2 × $60 × 24 h = $2,880 of capacity a day).
const PORTFOLIO: &str = "
name: ledger-test
node_types:
  - {name: p5.48xlarge, gpu: H100, gpus: 8, vcpus: 192, memory_gb: 2048}
  - {name: p6e-gb200, gpu: GB200, gpus: 4, vcpus: 144, memory_gb: 960}
contracts:
  - id: aws-2026
    provider: aws
    committed_usd: 2000
    term: {start: 2026-11-01, end: 2026-11-19}
    ramp:
      - {date: 2026-11-01, region: us-east-1, node_type: p5.48xlarge, nodes: 2}
    rates:
      - {node_type: p5.48xlarge, per_node_hour: 60}
      - {node_type: p6e-gb200, per_node_hour: 70}
";

#[test]
fn burn_down_from_metered_usage_uses_the_portfolio_maths() {
    let portfolio = cumulo_portfolio::Portfolio::from_yaml(PORTFOLIO, "test").unwrap();
    let b = burn_down(&portfolio, november().records(), t("2026-11-11"));
    let c = &b.contracts[0];
    // 10 of 19 days: $2,000 × 10/19 scheduled; job 1's $1,200 consumed
    assert_eq!((c.consumed, c.scheduled), (usd("1200"), usd("1052.631579")));
    assert_eq!(c.status_text, "14% ahead of schedule");
    // the trailing week (1,200 of 7 × 2,880 of capacity) carried over the 9 days left
    assert_eq!(c.projected_consumed, usd("1200") + usd("1200").mul_div(9, 7));
    assert_eq!(c.projected_overrun, c.projected_consumed - usd("2000"));
    assert_eq!(c.projected_shortfall, Money::ZERO);
    // after the term: everything metered under the contract counts ($1,480), short $520
    let c = &burn_down(&portfolio, november().records(), t("2026-11-25")).contracts[0];
    assert_eq!((c.consumed, c.status_text.as_str()), (usd("1480"), "term ended"));
    assert_eq!(c.projected_shortfall, usd("520"));
}

#[test]
fn price_book_from_a_portfolio_rates_like_the_hand_built_one() {
    let portfolio = cumulo_portfolio::Portfolio::from_yaml(PORTFOLIO, "test").unwrap();
    let mut prices = PriceBook::new();
    prices.add_portfolio(&portfolio).unwrap();
    let from_hand = book();
    for (key, when) in [
        (PriceKey::contract(&aws(), "p5.48xlarge", "aws-2026"), "2026-11-10"),
        (PriceKey::contract(&aws(), "p6e-gb200", "aws-2026"), "2026-11-19T23:59:59Z"),
    ] {
        assert_eq!(prices.rate_at(&key, t(when)), from_hand.rate_at(&key, t(when)));
    }
    assert_eq!(prices.contract_end("aws-2026"), Some(t("2026-11-20")));
    // list prices from the built-in catalog
    let catalog = cumulo_catalog::Catalog::builtin().unwrap();
    prices.add_catalog(&catalog, t("2026-01-01")).unwrap();
    let p5 = prices.rate_at(&PriceKey::on_demand(&aws(), "p5.48xlarge"), t("2026-11-10")).unwrap();
    assert!(p5 > usd("0"), "{p5}");
}

#[test]
fn metering_against_stored_records_returns_only_what_is_new() {
    let prices = book();
    // stored: the first two hours of a node; observed: four hours
    let mut stored = Ledger::new();
    stored.ingest(&Obs::new(13, "2026-11-03T00:00:00Z", "2026-11-03T02:00:00Z").build(), &prices).unwrap();
    let mut ledger = Ledger::from_records(stored.to_records()).unwrap();
    let (got, new) =
        ledger.meter(&Obs::new(13, "2026-11-03T00:00:00Z", "2026-11-03T04:00:00Z").build(), &prices).unwrap();
    assert_eq!((got.new_seconds, got.duplicate_seconds), (7200, 7200));
    // the stored hours are full, so the new two hours are two new hourly records
    let spans: Vec<_> = new.iter().map(|r| (r.start, r.stop, r.cost)).collect();
    assert_eq!(
        spans,
        vec![
            (t("2026-11-03T02:00:00Z"), t("2026-11-03T03:00:00Z"), usd("98.32")),
            (t("2026-11-03T03:00:00Z"), t("2026-11-03T04:00:00Z"), usd("98.32")),
        ]
    );
}

#[test]
fn a_node_rebuilt_from_records_past_its_contract_takes_its_terms_from_the_next_observation() {
    let prices = book();
    // the contract ended on the 20th: stored records of this node say on-demand
    let mut first = Ledger::new();
    first
        .ingest(&Obs::new(14, "2026-11-20T01:00:00Z", "2026-11-20T02:00:00Z").contract("aws-2026").build(), &prices)
        .unwrap();
    assert_eq!(first.records().next().unwrap().capacity, CapacityKind::OnDemand);
    let mut again = Ledger::from_records(first.to_records()).unwrap();
    let (got, new) = again
        .meter(&Obs::new(14, "2026-11-20T01:00:00Z", "2026-11-20T03:00:00Z").contract("aws-2026").build(), &prices)
        .unwrap();
    assert_eq!((got.new_seconds, new.len(), new[0].capacity), (3600, 1, CapacityKind::OnDemand));
    // from then on the node's terms are known and a change of terms is refused
    let err = again
        .ingest(&Obs::new(14, "2026-11-20T03:00:00Z", "2026-11-20T04:00:00Z").spot().build(), &prices)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "observation for attempt 14.1 node 0 conflicts with what is already metered: capacity was `contract`, now `spot`"
    );
}

#[test]
fn driver_node_reports_become_observations() {
    let meta = Obs::new(15, "2026-11-03", "2026-11-04").build().node;
    let attempt = cumulo_types::AttemptId { job: cumulo_types::JobId(15), attempt: 1 };
    let at = |s: &str| Some(t(s));
    let from = |started: Option<_>, finished: Option<_>, observed: &str| {
        cumulo_ledger::Observation::from_node_report(attempt, 2, started, finished, t(observed), meta.clone())
            .map(|o| (o.node_rank, o.start, o.stop))
    };
    assert_eq!(from(None, None, "2026-11-03T05:00:00Z"), None);
    assert_eq!(
        from(at("2026-11-03T01:00:00Z"), None, "2026-11-03T05:00:00Z"),
        Some((2, t("2026-11-03T01:00:00Z"), t("2026-11-03T05:00:00Z")))
    );
    assert_eq!(
        from(at("2026-11-03T01:00:00Z"), at("2026-11-03T02:00:00Z"), "2026-11-03T05:00:00Z"),
        Some((2, t("2026-11-03T01:00:00Z"), t("2026-11-03T02:00:00Z")))
    );
    assert_eq!(from(at("2026-11-03T01:00:00Z"), None, "2026-11-03T01:00:00Z"), None);
}

#[test]
fn heartbeats_extend_the_open_record_up_to_an_hour() {
    let prices = book();
    let mut ledger = Ledger::new();
    let start = t("2026-11-03T00:00:00Z");
    let mut written = 0;
    // a heartbeat every 10 s for a day: every record written is new or its extension
    for beat in 1..=(24 * 360) {
        let stop = start + chrono::Duration::seconds(beat * 10);
        let obs = Obs::new(14, "2026-11-03T00:00:00Z", &stop.to_rfc3339()).build();
        let (got, records) = ledger.meter(&obs, &prices).unwrap();
        assert_eq!(got.new_seconds, 10, "each beat bills only its own seconds");
        assert_eq!(records.len(), 1, "a beat writes one record: the extended open one, or a new one");
        written += records.len();
    }
    assert_eq!(written, 24 * 360);
    assert_eq!(ledger.len(), 24, "a day of heartbeats is 24 hourly records, not 8,640");
    assert!(ledger.records().all(|r| r.seconds() == 3600), "each record is one full hour");
    assert_eq!(ledger.total_cost(), usd("2359.68"), "24 h × $98.32");
    // a price change at 00:30 on the next day closes the open record there
    let mut changed = prices.clone();
    changed.set_price(PriceKey::on_demand(&aws(), "p5.48xlarge"), t("2026-11-04T00:30:00Z"), usd("55")).unwrap();
    ledger.ingest(&Obs::new(14, "2026-11-03T00:00:00Z", "2026-11-04T00:20:00Z").build(), &changed).unwrap();
    ledger.ingest(&Obs::new(14, "2026-11-03T00:00:00Z", "2026-11-04T01:00:00Z").build(), &changed).unwrap();
    let last: Vec<(String, Money)> =
        ledger.records().skip(24).map(|r| (format!("{}..{}", r.start.time(), r.stop.time()), r.rate)).collect();
    assert_eq!(last, vec![("00:00:00..00:30:00".into(), usd("98.32")), ("00:30:00..01:00:00".into(), usd("55"))]);
}
