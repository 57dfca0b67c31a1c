//! Properties of metering, checked with proptest: invoice totals equal the sum of their lines, splitting
//! node-time never changes its cost, and replaying observations changes nothing.

mod common;

use common::{Obs, aws, book, t, usd};
use cumulo_ledger::{
    GroupBy, Ledger, Month, Observation, PriceBook, PriceKey, UsageFilter, cost_between, invoice, usage_by,
};
use cumulo_types::Money;
use proptest::prelude::*;

/// Cases per property (reported in the closing note).
const CASES: u32 = 1024;

/// Unix seconds of 2026-10-01, the start of the window observations fall in (about 95 days).
fn base() -> i64 {
    t("2026-10-01").timestamp()
}

fn at(s: i64) -> cumulo_ledger::Timestamp {
    chrono::DateTime::from_timestamp(s, 0).unwrap()
}

/// A price book whose on-demand price steps at random instants (with odd micro-dollar rates).
fn book_with_steps(steps: &[(i64, i64)]) -> PriceBook {
    let mut b = book();
    for &(offset, micros) in steps {
        b.set_price(PriceKey::on_demand(&aws(), "p5.48xlarge"), at(base() + offset), Money(micros)).unwrap();
        b.set_price(PriceKey::contract(&aws(), "p5.48xlarge", "aws-2026"), at(base() + offset), Money(micros / 2))
            .unwrap();
    }
    b
}

fn steps() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0..95 * 86_400i64, 1..200_000_000i64), 0..6)
}

/// An observation of up to 40 days on one of a few (job, rank) nodes; how the node is held (contract,
/// spot, on-demand) follows from the node so that every observation of a node agrees.
fn observation() -> impl Strategy<Value = Observation> {
    (1..6u64, 0..3u32, 0..90 * 86_400i64, 1..40 * 86_400i64).prop_map(|(job, rank, start, len)| {
        let start_s = base() + start;
        let mut o = Obs::new(job, "2026-10-01", "2026-10-02").rank(rank);
        o = match (job + u64::from(rank)) % 3 {
            0 => o.contract("aws-2026"),
            1 => o.spot(),
            _ => o,
        };
        let mut obs = o.build();
        obs.start = at(start_s);
        obs.stop = at(start_s + len);
        obs
    })
}

fn ingest_all(observations: &[Observation], prices: &PriceBook) -> Ledger {
    let mut ledger = Ledger::new();
    for obs in observations {
        ledger.ingest(obs, prices).unwrap();
    }
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn cost_is_additive_over_any_split(rate in 0..1_000_000_000i64, a in -1_000_000_000i64..3_000_000_000, len in 0..10_000_000i64, cut in 0.0..=1.0f64) {
        let b = a + len;
        let m = a + (len as f64 * cut) as i64;
        prop_assert_eq!(cost_between(Money(rate), a, m) + cost_between(Money(rate), m, b), cost_between(Money(rate), a, b));
        // and each piece is within half a micro-dollar of the exact product
        let exact = i128::from(rate) * i128::from(len);
        let got = i128::from(cost_between(Money(rate), a, b).0) * 3600;
        prop_assert!((got - exact).abs() <= 3600);
    }

    #[test]
    fn splitting_an_observation_never_changes_its_cost(
        steps in steps(),
        obs in observation(),
        cuts in prop::collection::vec(0.0..1.0f64, 0..6),
        reverse in any::<bool>(),
    ) {
        let prices = book_with_steps(&steps);
        let whole = ingest_all(std::slice::from_ref(&obs), &prices);
        let (a, b) = (obs.start.timestamp(), obs.stop.timestamp());
        let mut points: Vec<i64> = cuts.iter().map(|c| a + ((b - a) as f64 * c) as i64).collect();
        points.push(a);
        points.push(b);
        points.sort_unstable();
        points.dedup();
        let mut pieces: Vec<Observation> = points.windows(2).map(|w| Observation { start: at(w[0]), stop: at(w[1]), ..obs.clone() }).collect();
        if reverse {
            pieces.reverse();
        }
        let split = ingest_all(&pieces, &prices);
        prop_assert_eq!(split.total_cost(), whole.total_cost());
        for month in ["2026-10", "2026-11", "2026-12", "2027-01"] {
            let m = Month::parse(month).unwrap();
            prop_assert_eq!(invoice(split.records(), &aws(), m).total, invoice(whole.records(), &aws(), m).total);
        }
        let seconds: i64 = split.records().map(|r| r.seconds()).sum();
        prop_assert_eq!(seconds, b - a);
    }

    #[test]
    fn replaying_observations_changes_nothing(
        steps in steps(),
        observations in prop::collection::vec(observation(), 1..12),
        replay in prop::collection::vec((any::<prop::sample::Index>(), 0.0..1.0f64, 0.0..1.0f64), 0..12),
    ) {
        let prices = book_with_steps(&steps);
        // later observations of a node may overlap earlier ones (heartbeats); that is normal input
        let ledger = ingest_all(&observations, &prices);
        let mut replayed = ledger.clone();
        for (index, x, y) in &replay {
            let obs = index.get(&observations);
            let (a, b) = (obs.start.timestamp(), obs.stop.timestamp());
            let (lo, hi) = (x.min(*y), x.max(*y));
            let (s, e) = (a + ((b - a) as f64 * lo) as i64, a + ((b - a) as f64 * hi) as i64);
            // the whole observation again, and a sub-interval of it
            let got = replayed.ingest(obs, &prices).unwrap();
            prop_assert_eq!(got.new_seconds, 0);
            if e > s {
                let part = Observation { start: at(s), stop: at(e), ..obs.clone() };
                prop_assert_eq!(replayed.ingest(&part, &prices).unwrap().cost, Money::ZERO);
            }
        }
        prop_assert_eq!(&replayed, &ledger);
        // and the stored records rebuild the same ledger
        prop_assert_eq!(Ledger::from_records(ledger.to_records()).unwrap().to_records(), ledger.to_records());
    }

    #[test]
    fn invoice_total_is_the_sum_of_its_lines(steps in steps(), observations in prop::collection::vec(observation(), 1..16)) {
        let prices = book_with_steps(&steps);
        let ledger = ingest_all(&observations, &prices);
        let mut all_months = Money::ZERO;
        let mut month = Month::parse("2026-10").unwrap();
        for _ in 0..5 {
            let inv = invoice(ledger.records(), &aws(), month);
            prop_assert_eq!(inv.total, inv.lines.iter().map(|l| l.amount).sum::<Money>());
            all_months += inv.total;
            month = month.next();
        }
        prop_assert_eq!(all_months, ledger.total_cost());
    }

    #[test]
    fn views_clipped_at_any_instant_add_up(observations in prop::collection::vec(observation(), 1..12), cut in 0..130 * 86_400i64) {
        let ledger = ingest_all(&observations, &book());
        let m = at(base() + cut);
        let total = |f: UsageFilter| usage_by(ledger.records(), &f, GroupBy::Tenant).iter().map(|r| r.cost).sum::<Money>();
        let before = total(UsageFilter { until: Some(m), ..Default::default() });
        let after = total(UsageFilter { since: Some(m), ..Default::default() });
        prop_assert_eq!(before + after, ledger.total_cost());
    }
}

#[test]
fn strategies_produce_priced_observations() {
    // guards the generators above: the base book prices every kind they produce
    let ledger = ingest_all(&[Obs::new(1, "2026-10-01", "2026-10-02").contract("aws-2026").build()], &book());
    assert_eq!(ledger.total_cost(), usd("1440"));
}
