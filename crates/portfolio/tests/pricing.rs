//! Effective prices, offer ranking and clauses: examples on the built-in catalog and the demo
//! portfolio, the scheduler adapter, and the four properties of issue 3 with proptest.

mod common;

use std::collections::BTreeMap;

use common::{at, gpu_job, ten_day_yaml};
use cumulo_catalog::{Catalog, Offer};
use cumulo_portfolio::clauses::{ActiveClauses, Bound};
use cumulo_portfolio::model::in_scope;
use cumulo_portfolio::offers::{Query, Ranking, rank};
use cumulo_portfolio::pricing::{self, PricingConfig, Terms, price_pools};
use cumulo_portfolio::{Forecast, Portfolio, Usage};
use cumulo_sched::{NodeState, Pool, PoolId, Snapshot};
use cumulo_types::{CapacityKind, GpuModel, GpuSelector, InfraSelector, JobSpec, Money, NodeType, TopologyNeed};
use proptest::prelude::*;

fn ranking(
    job: &JobSpec,
    catalog: &Catalog,
    portfolio: Option<&Portfolio>,
    usage: &Usage,
    now: &str,
    waited_s: u64,
) -> Ranking {
    rank(&Query {
        job,
        catalog,
        portfolio,
        usage,
        now: at(now),
        waited_s,
        config: PricingConfig::default(),
        sites: &[],
    })
}

fn demo_at(now: &str) -> (Portfolio, Usage) {
    let demo = Portfolio::demo().unwrap();
    let usage = Usage::at(&demo, &Forecast::Utilisation { bps: 7000 }, at(now));
    (demo, usage)
}

fn offer(provider: &str, gpu: GpuModel, gpus: u32, price: i64, spot: Option<i64>) -> Offer {
    Offer {
        provider: provider.to_string(),
        region: format!("{provider}-r1"),
        zone: None,
        instance_type: format!("{provider}-{gpu}-{gpus}x"),
        gpu: Some(gpu),
        gpus,
        vcpus_milli: 64_000,
        memory_mib: 512 * 1024,
        price: Some(Money::from_micros(price)),
        spot_price: spot.map(Money::from_micros),
        source: "test".to_string(),
    }
}

#[test]
fn h100_offers_are_ranked_cheapest_effective_first_with_reasons() {
    let catalog = Catalog::builtin().unwrap();
    let (demo, usage) = demo_at("2026-11-26");
    let r = ranking(&gpu_job(GpuModel::H100, 8, 1), &catalog, Some(&demo), &usage, "2026-11-26", 0);
    assert!(r.infeasible.is_none());
    assert!(r.feasible.windows(2).all(|w| w[0].effective_per_hour <= w[1].effective_per_hour));
    assert!(r.feasible.iter().all(|row| row.gpu == Some(GpuModel::H100) && row.gpus_per_node >= 8));
    // CoreWeave's H100 contract capacity is in the ranking with its schedule state as the reason.
    let cw = r.feasible.iter().find(|row| row.contract.as_deref() == Some("coreweave-2025")).unwrap();
    assert!(cw.why.starts_with("coreweave-2025 contract "), "{}", cw.why);
    // On-demand rows cost their list price.
    for row in r.feasible.iter().filter(|row| row.capacity == CapacityKind::OnDemand) {
        assert_eq!(row.list_per_hour, row.effective_per_hour);
        assert_eq!(row.why, "on-demand at list price");
    }
}

#[test]
fn behind_schedule_capacity_is_nearly_free_and_ahead_costs_the_rate() {
    let p = Portfolio::from_yaml(&ten_day_yaml("240", ""), "t").unwrap();
    let c = p.contract("c1").unwrap();
    let now = at("2026-01-06");
    let cfg = PricingConfig::default();
    let behind = Usage { at: Some(now), consumed: BTreeMap::from([("c1".to_string(), Money::from_dollars(60))]) };
    let price = pricing::committed(c, "one", &behind, now, &cfg).unwrap();
    assert_eq!(price.effective, Money::from_micros(10_000), "1% of $1");
    assert_eq!(price.why, "c1 contract 50% behind schedule: committed spend is paid anyway");
    let ahead = Usage { at: Some(now), consumed: BTreeMap::from([("c1".to_string(), Money::from_dollars(200))]) };
    let price = pricing::committed(c, "one", &ahead, now, &cfg).unwrap();
    assert_eq!(price.effective, Money::from_dollars(1));
    assert_eq!(price.why, "c1 contract 67% ahead of schedule: contract rate");
    assert!(pricing::committed(c, "one", &ahead, at("2026-02-01"), &cfg).is_none(), "term over");
    let s = pricing::spot(Money::from_dollars(10), &cfg);
    assert_eq!(
        (s.premium, s.effective),
        (Money::from_dollars(2) + Money::from_micros(500_000), Money::from_micros(12_500_000))
    );
}

#[test]
fn infeasible_jobs_say_why() {
    let catalog = Catalog::builtin().unwrap();
    let none = Usage::default();
    let r = ranking(&gpu_job(GpuModel::MI325X, 8, 1), &catalog, None, &none, "2026-11-26", 0);
    let why = r.infeasible.unwrap();
    assert!(
        why.starts_with("no offer has MI325X (GPU models offered by catalog `built-in` and the portfolio: "),
        "{why}"
    );

    let mut job = gpu_job(GpuModel::H100, 8, 1);
    job.resources[0].infra = Some(InfraSelector::parse("aws/eu-west-9").unwrap());
    let why = ranking(&job, &catalog, None, &none, "2026-11-26", 0).infeasible.unwrap();
    assert_eq!(why, "infra `aws/eu-west-9` excludes every region that offers H100:8");

    let mut job = gpu_job(GpuModel::H100, 8, 4);
    job.topology = TopologyNeed::NvlinkDomain;
    let why = ranking(&job, &catalog, None, &none, "2026-11-26", 0).infeasible.unwrap();
    assert_eq!(
        why,
        "topology nvlink-domain needs 4 nodes in one NVLink domain; the matching offers have at most 1 node(s) per domain"
    );

    let why = ranking(&gpu_job(GpuModel::H100, 16, 1), &catalog, None, &none, "2026-11-26", 0).infeasible.unwrap();
    assert_eq!(why, "no offer has H100:16 per node (the matching offers have at most 8)");

    let mut job = gpu_job(GpuModel::H100, 8, 1);
    job.constraints.max_price_per_hour = Some(Money::from_dollars(1));
    let why = ranking(&job, &catalog, None, &none, "2026-11-26", 0).infeasible.unwrap();
    assert_eq!(why, "every feasible offer costs more than max_price_per_hour $1.00");

    // The built-in catalog sells H100 spot (p5.48xlarge) but no GB200 spot.
    let mut job = gpu_job(GpuModel::GB200, 4, 1);
    job.resources[0].use_spot = true;
    let why = ranking(&job, &catalog, None, &none, "2026-11-26", 0).infeasible.unwrap();
    assert_eq!(why, "use_spot is true but no matching offer has a spot price");
}

#[test]
fn demo_gb300_rack_goes_only_to_aws_under_its_exclusive_clause() {
    let catalog = Catalog::builtin().unwrap();
    let (demo, usage) = demo_at("2026-12-31");
    let mut job = gpu_job(GpuModel::GB300, 4, 18);
    job.topology = TopologyNeed::NvlinkDomain;
    let r = ranking(&job, &catalog, Some(&demo), &usage, "2026-12-31", 0);
    assert!(!r.feasible.is_empty());
    assert!(r.feasible.iter().all(|row| row.provider == "aws"), "{:?}", r.feasible);
    assert!(r.excluded_by_exclusive > 0, "the OCI GB300 offer is excluded");
    // Without the portfolio the OCI offer is back.
    let r = ranking(&job, &catalog, None, &Usage::default(), "2026-12-31", 0);
    assert!(r.feasible.iter().any(|row| row.provider == "oci"));
}

#[test]
fn demo_h200_is_held_for_azure_until_the_first_refusal_wait() {
    let catalog = Catalog::builtin().unwrap();
    let (demo, usage) = demo_at("2026-11-26");
    let job = gpu_job(GpuModel::H200, 8, 1);
    let early = ranking(&job, &catalog, Some(&demo), &usage, "2026-11-26", 3600);
    assert!(early.feasible.iter().all(|row| row.provider == "azure"), "{:?}", early.feasible);
    assert!(!early.held_back.is_empty());
    assert!(early.held_back[0].reason.starts_with(
        "first refusal of azure-2025: H200 work is offered to azure first; other providers after 2h (waited 1h)"
    ));
    let late = ranking(&job, &catalog, Some(&demo), &usage, "2026-11-26", 7200);
    assert!(late.held_back.is_empty());
    assert!(late.feasible.iter().any(|row| row.provider != "azure"));
}

fn pool(id: u32, provider: &str, region: &str, capacity: CapacityKind, node_type: &str, price: Money) -> Pool {
    Pool {
        id: PoolId(id),
        name: format!("{provider}/{region}/{node_type}/{capacity}"),
        provider: provider.to_string(),
        region: region.to_string(),
        zone: format!("{region}a"),
        capacity,
        node_type: NodeType {
            name: node_type.to_string(),
            gpu: Some(GpuModel::H100),
            gpus: 1,
            vcpus: 8,
            memory_gb: 64,
            nvlink_domain_nodes: 1,
        },
        price_per_node_hour: price,
        nodes: vec![NodeState { name: "n0".into(), block: 0, nvlink_domain: 0, schedulable: true }],
    }
}

#[test]
fn price_pools_writes_live_prices_into_the_snapshot() {
    let p = Portfolio::from_yaml(&ten_day_yaml("240", ""), "t").unwrap();
    let now = at("2026-01-06");
    let usage = Usage { at: Some(now), consumed: BTreeMap::from([("c1".to_string(), Money::from_dollars(60))]) };
    let mut snapshot = Snapshot {
        pools: vec![
            pool(0, "acme", "r1", CapacityKind::Contract, "one", Money::ZERO),
            pool(1, "aws", "us-east-1", CapacityKind::OnDemand, "one", Money::ZERO),
            pool(2, "aws", "us-east-1", CapacityKind::Spot, "one", Money::ZERO),
            pool(3, "acme", "r9", CapacityKind::Contract, "one", Money::from_dollars(7)),
        ],
        ..Snapshot::default()
    };
    let contract = |id: &str| Terms::Contract { contract: id.into(), node_type: "one".into() };
    let terms = [
        contract("c1"),
        Terms::OnDemand { list: Money::from_dollars(4) },
        Terms::Spot { price: Money::from_dollars(2) },
        contract("c9"),
    ];
    let set = price_pools(&mut snapshot, &terms, &p, &usage, now, &PricingConfig::default());
    let prices: Vec<Money> = snapshot.pools.iter().map(|p| p.price_per_node_hour).collect();
    assert_eq!(
        prices,
        [Money::from_micros(10_000), Money::from_dollars(4), Money::from_micros(2_500_000), Money::from_dollars(7)],
        "c1 is 50% behind (1% of its rate), spot carries 25%, an unknown contract keeps its price"
    );
    assert_eq!(set[0].price.why, "c1 contract 50% behind schedule: committed spend is paid anyway");
    assert_eq!(set.len(), 3, "the pool of an unknown contract is not priced");
}

// ---- properties ---------------------------------------------------------------------------

const PROVIDERS: &[&str] = &["aws", "azure", "oci", "lambda"];
const MODELS: &[GpuModel] = &[GpuModel::H100, GpuModel::H200];

fn offers_strategy() -> impl Strategy<Value = Vec<Offer>> {
    prop::collection::vec(
        (0..PROVIDERS.len(), 0..MODELS.len(), 1u32..=8, 1i64..200_000_000, prop::option::of(1i64..100_000_000)),
        1..30,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (p, m, g, price, spot))| {
                let mut o = offer(PROVIDERS[p], MODELS[m], g, price, spot);
                o.instance_type = format!("{}-{i}", o.instance_type);
                o
            })
            .collect()
    })
}

fn any_h100_or_h200_job() -> JobSpec {
    let mut job = gpu_job(GpuModel::H100, 1, 1);
    job.resources[0].accelerators.as_mut().unwrap().selector = GpuSelector::Models(MODELS.to_vec());
    job
}

/// A portfolio with one contract held by `holder` (capacity `one` = 1 × H100 in region r1) and
/// the given clauses YAML.
fn holder_portfolio(holder: &str, rate_micros: i64, clauses: &str) -> Portfolio {
    let yaml = ten_day_yaml("240", clauses)
        .replace("provider: acme", &format!("provider: {holder}"))
        .replace("per_node_hour: 1}", &format!("per_node_hour: \"{}\"}}", Money::from_micros(rate_micros)));
    Portfolio::from_yaml(&yaml, "prop").unwrap()
}

fn scope_yaml(models: &[GpuModel]) -> String {
    let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
    format!("[{}]", names.join(", "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn effective_price_is_never_negative_nor_above_list_plus_premium(
        list in 0i64..1_000_000_000,
        spot_bps in 0u32..20_000,
        behind_bps in 0u32..=10_000,
        consumed in 0i64..1_000,
        hour in 0i64..300,
    ) {
        let cfg = PricingConfig { spot_premium_bps: spot_bps, behind_schedule_bps: behind_bps };
        let p = holder_portfolio("acme", list, "");
        let now = at("2026-01-01") + chrono::Duration::hours(hour);
        let usage = Usage { at: Some(now), consumed: BTreeMap::from([("c1".to_string(), Money::from_dollars(consumed))]) };
        let mut prices = vec![pricing::on_demand(Money::from_micros(list)), pricing::spot(Money::from_micros(list), &cfg)];
        prices.extend(pricing::committed(p.contract("c1").unwrap(), "one", &usage, now, &cfg));
        for price in prices {
            prop_assert!(price.effective >= Money::ZERO, "{price:?}");
            prop_assert!(price.effective <= price.list + price.premium, "{price:?}");
        }
    }

    #[test]
    fn when_every_contract_is_ahead_the_ranking_is_the_list_price_ranking(
        offers in offers_strategy(),
        holder in 0..PROVIDERS.len(),
        rate in 1i64..200_000_000,
    ) {
        let catalog = Catalog::new("prop", offers);
        let p = holder_portfolio(PROVIDERS[holder], rate, "");
        let now = at("2026-01-05");
        // Consumed far beyond anything scheduled: every contract is ahead.
        let usage = Usage { at: Some(now), consumed: BTreeMap::from([("c1".to_string(), Money::from_dollars(1_000_000))]) };
        let job = any_h100_or_h200_job();
        let r = rank(&Query { job: &job, catalog: &catalog, portfolio: Some(&p), usage: &usage, now, waited_s: 0, config: PricingConfig::default(), sites: &[] });
        prop_assert!(r.feasible.iter().any(|row| row.contract.is_some()));
        for row in &r.feasible {
            prop_assert_eq!(row.effective_per_hour, row.list_per_hour);
        }
        let mut by_list = r.feasible.clone();
        by_list.sort_by_key(|row| row.list_per_hour);
        let ranked: Vec<Money> = r.feasible.iter().map(|row| row.list_per_hour).collect();
        let listed: Vec<Money> = by_list.iter().map(|row| row.list_per_hour).collect();
        prop_assert_eq!(ranked, listed);
    }

    #[test]
    fn an_exclusive_clause_is_never_violated(
        offers in offers_strategy(),
        holder in 0..PROVIDERS.len(),
        scope in prop::sample::subsequence(MODELS.to_vec(), 0..=MODELS.len()),
        use_spot in any::<bool>(),
    ) {
        let catalog = Catalog::new("prop", offers);
        let p = holder_portfolio(PROVIDERS[holder], 1_000_000, &format!("    clauses:\n      exclusive: {{gpus: {}}}\n", scope_yaml(&scope)));
        let usage = Usage::default();
        let mut job = any_h100_or_h200_job();
        job.resources[0].use_spot = use_spot;
        let r = rank(&Query { job: &job, catalog: &catalog, portfolio: Some(&p), usage: &usage, now: at("2026-01-05"), waited_s: 0, config: PricingConfig::default(), sites: &[] });
        for row in &r.feasible {
            prop_assert!(!(in_scope(&scope, row.gpu) && row.provider != PROVIDERS[holder]), "{row:?}");
        }
    }

    #[test]
    fn first_refusal_falls_through_only_after_its_wait(
        offers in offers_strategy(),
        holder in 0..PROVIDERS.len(),
        scope in prop::sample::subsequence(MODELS.to_vec(), 0..=MODELS.len()),
        wait_s in 0u64..20_000,
        waited_s in 0u64..20_000,
    ) {
        let others_in_scope = offers
            .iter()
            .filter(|o| o.provider != PROVIDERS[holder] && in_scope(&scope, o.gpu) && o.price.is_some())
            .count();
        let catalog = Catalog::new("prop", offers);
        let clauses = format!("    clauses:\n      first_refusal: {{wait: {wait_s}s, gpus: {}}}\n", scope_yaml(&scope));
        let p = holder_portfolio(PROVIDERS[holder], 1_000_000, &clauses);
        let usage = Usage::default();
        let job = any_h100_or_h200_job();
        let r = rank(&Query { job: &job, catalog: &catalog, portfolio: Some(&p), usage: &usage, now: at("2026-01-05"), waited_s, config: PricingConfig::default(), sites: &[] });
        let placed_elsewhere = r
            .feasible
            .iter()
            .filter(|row| row.provider != PROVIDERS[holder] && in_scope(&scope, row.gpu))
            .count();
        if waited_s < wait_s {
            prop_assert_eq!(placed_elsewhere, 0);
            prop_assert_eq!(r.held_back.len(), others_in_scope);
        } else {
            prop_assert_eq!(placed_elsewhere, others_in_scope);
            prop_assert!(r.held_back.is_empty());
        }
    }
}

/// Where a job's options (bound by the clauses, or as written when nothing binds) let GPU
/// `model` go: the providers among `PROVIDERS` whose region `r1` an option accepting it matches.
fn open_providers(job: &JobSpec, bound: Option<&Bound>, model: GpuModel) -> Vec<&'static str> {
    let options: Vec<&cumulo_types::ResourceOption> = match bound {
        Some(b) => b.options.iter().map(|o| &o.option).collect(),
        None => job.resources.iter().collect(),
    };
    PROVIDERS
        .iter()
        .copied()
        .filter(|p| {
            options.iter().any(|o| {
                o.accelerators.as_ref().is_some_and(|a| a.selector.accepts(model))
                    && o.infra.as_ref().is_none_or(|i| i.matches(p, "r1", None))
            })
        })
        .collect()
}

#[test]
fn binding_turns_clauses_into_resource_options() {
    let demo = Portfolio::demo().unwrap();
    let clauses = ActiveClauses::at(Some(&demo), at("2026-12-31"));
    let bind = |job: &JobSpec, waited_s: u64| clauses.bind(&job.resources, waited_s);
    // GB300 work is exclusive to AWS: the option is narrowed to aws.
    let gb300 = gpu_job(GpuModel::GB300, 4, 18);
    assert_eq!(open_providers(&gb300, bind(&gb300, 0).as_ref(), GpuModel::GB300), ["aws"]);
    // GB200 work is offered to Azure first for 2h, then falls through.
    let gb200 = gpu_job(GpuModel::GB200, 4, 18);
    assert_eq!(open_providers(&gb200, bind(&gb200, 3600).as_ref(), GpuModel::GB200), ["azure"]);
    assert_eq!(bind(&gb200, 7200), None, "after the wait nothing binds GB200 work");
    // A job that also accepts a model outside every scope keeps it free, in its own option.
    let mut either = gpu_job(GpuModel::GB200, 4, 1);
    either.resources[0].accelerators.as_mut().unwrap().selector =
        GpuSelector::Models(vec![GpuModel::GB200, GpuModel::H100]);
    let bound = bind(&either, 0).unwrap();
    assert_eq!(open_providers(&either, Some(&bound), GpuModel::H100), PROVIDERS);
    assert_eq!(open_providers(&either, Some(&bound), GpuModel::GB200), ["azure"]);
    assert!(bound.options.iter().all(|o| o.original == 0), "both halves come from option 0");
    assert_eq!(bind(&JobSpec::new("cpu", "t"), 0), None, "clauses never bind CPU work");
    // A job that may only go to AWS waits, with the words `offers` uses.
    let mut on_aws = gpu_job(GpuModel::GB200, 4, 18);
    on_aws.resources[0].infra = Some(InfraSelector::parse("aws").unwrap());
    let bound = bind(&on_aws, 300).unwrap();
    assert!(bound.options.is_empty());
    assert_eq!(
        bound.reason.as_deref(),
        Some("first refusal of azure-2025: GB200 work is offered to azure first; other providers after 2h (waited 5m)")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The live path (`bind`, then the scheduler's infra matching) opens a provider to a GPU
    /// model exactly when the offer ranking's check (`block`) does.
    #[test]
    fn binding_opens_exactly_the_providers_the_offer_check_opens(
        holder in 0..PROVIDERS.len(),
        other in 0..PROVIDERS.len(),
        exclusive in prop::option::of(prop::sample::subsequence(MODELS.to_vec(), 0..=MODELS.len())),
        refusal in prop::option::of(prop::sample::subsequence(MODELS.to_vec(), 0..=MODELS.len())),
        infra in prop::option::of(0..PROVIDERS.len()),
        waited_s in 0u64..7200,
    ) {
        let mut clauses = String::from("    clauses:\n");
        if let Some(scope) = &exclusive {
            clauses.push_str(&format!("      exclusive: {{gpus: {}}}\n", scope_yaml(scope)));
        }
        if let Some(scope) = &refusal {
            clauses.push_str(&format!("      first_refusal: {{wait: 1h, gpus: {}}}\n", scope_yaml(scope)));
        }
        let mut p = holder_portfolio(PROVIDERS[holder], 1_000_000, &clauses);
        // a second contract of another provider with an exclusive clause on H200 (may clash)
        let mut second = p.contracts[0].clone();
        second.id = "c2".into();
        second.provider = cumulo_types::Provider::new(PROVIDERS[other]).unwrap();
        second.clauses = cumulo_portfolio::Clauses { exclusive: Some(vec![GpuModel::H200]), first_refusal: None };
        p.contracts.push(second);
        let active = ActiveClauses::at(Some(&p), at("2026-01-05"));
        let mut job = any_h100_or_h200_job();
        job.resources[0].infra = infra.map(|i| InfraSelector::parse(PROVIDERS[i]).unwrap());
        let bound = active.bind(&job.resources, waited_s);
        for &model in MODELS {
            let by_check: Vec<&str> = PROVIDERS
                .iter()
                .copied()
                .filter(|p| active.block(p, Some(model), waited_s).is_none())
                .filter(|p| job.resources[0].infra.as_ref().is_none_or(|i| i.matches(p, "r1", None)))
                .collect();
            prop_assert_eq!(open_providers(&job, bound.as_ref(), model), by_check, "{:?}", model);
        }
    }
}

/// A pool of `nodes` 4-GPU nodes of `model` at `provider`, at `dollars` a node-hour.
fn gpu_pool(id: u32, provider: &str, model: GpuModel, nodes: u32, dollars: i64) -> Pool {
    let mut p = pool(id, provider, "r1", CapacityKind::OnDemand, &format!("{model}x4"), Money::from_dollars(dollars));
    p.node_type.gpu = Some(model);
    p.node_type.gpus = 4;
    p.node_type.vcpus = 96;
    p.node_type.memory_gb = 1024;
    p.nodes = (0..nodes)
        .map(|n| NodeState { name: format!("n{n}"), block: 0, nvlink_domain: n / 18, schedulable: true })
        .collect();
    p
}

/// The core narrows a queue by the clauses once per (shape, regime): every entry must be decided
/// exactly as a plain pass decides the queue with each job's options bound by `bind` on its own
/// (held jobs left out), with placements naming the job's own option, held jobs waiting with
/// `contract_clause`, and `ClauseNotes` giving each entry bind's words with its own wait.
#[test]
fn the_core_narrows_a_queue_as_bind_binds_each_job() {
    use cumulo_portfolio::clauses::ClauseNotes;
    use cumulo_sched::{Config, Pending, PendingReason, QueuedJob, schedule_narrowed, schedule_with};
    use cumulo_types::JobId;

    let demo = Portfolio::demo().unwrap();
    let clauses = ActiveClauses::at(Some(&demo), at("2026-12-31"));
    let mut on_aws = gpu_job(GpuModel::GB200, 4, 18);
    on_aws.resources[0].infra = Some(InfraSelector::parse("aws").unwrap());
    let mut either = gpu_job(GpuModel::GB200, 4, 1);
    either.resources[0].accelerators.as_mut().unwrap().selector =
        GpuSelector::Models(vec![GpuModel::GB200, GpuModel::H100]);
    let shapes =
        [gpu_job(GpuModel::GB200, 4, 18), gpu_job(GpuModel::GB300, 4, 18), on_aws, either, JobSpec::new("cpu", "t")];
    let now = 100_000;
    // the same shapes at waits on both sides of the 2h first refusal, replicas included
    let waits = [0, 300, 7199, 7200, 9000];
    let mut queue = Vec::new();
    for (i, (shape, waited_s)) in shapes.iter().flat_map(|s| waits.iter().map(move |w| (s, *w))).enumerate() {
        let mut spec = shape.clone();
        spec.replicas = 1 + (i % 2) as u32;
        queue.extend(QueuedJob::from_spec(JobId(i as u64 + 1), &spec, now - waited_s));
    }
    let mut snapshot = Snapshot {
        pools: vec![
            gpu_pool(0, "aws", GpuModel::GB200, 36, 40),
            gpu_pool(1, "azure", GpuModel::GB200, 36, 60),
            gpu_pool(2, "aws", GpuModel::GB300, 18, 70),
            gpu_pool(3, "gcp", GpuModel::GB300, 36, 50),
            gpu_pool(4, "gcp", GpuModel::H100, 4, 90),
        ],
        ..Snapshot::default()
    };
    let mut cpu = pool(5, "gcp", "r1", CapacityKind::OnDemand, "cpu", Money::from_dollars(1));
    cpu.node_type.gpu = None;
    cpu.node_type.gpus = 0;
    snapshot.pools.push(cpu);
    let config = Config::default();
    let plan = schedule_narrowed(&snapshot, &queue, now, &config, &clauses).unwrap();

    // The same queue bound job by job, through a plain pass.
    let mut bound_queue = Vec::new();
    let mut origins = BTreeMap::new();
    let mut held = Vec::new();
    let mut words = BTreeMap::new();
    for job in &queue {
        let waited_s = now - job.submitted_at;
        let Some(b) = clauses.bind(&job.resources, waited_s) else {
            bound_queue.push(job.clone());
            continue;
        };
        words.insert((job.id, job.replica), b.reason.clone());
        if b.options.is_empty() {
            held.push(Pending { job: job.id, replica: job.replica, reason: PendingReason::ContractClause });
            continue;
        }
        origins.insert((job.id, job.replica), b.options.iter().map(|o| o.original as u32).collect::<Vec<_>>());
        let mut narrowed = job.clone();
        narrowed.resources = b.options.into_iter().map(|o| o.option).collect();
        bound_queue.push(narrowed);
    }
    let mut expected = schedule_with(&snapshot, &bound_queue, now, &config).unwrap();
    for p in &mut expected.placements {
        if let Some(o) = origins.get(&(p.job, p.replica)) {
            p.option = o[p.option as usize];
        }
    }
    expected.pending.extend(held.iter().cloned());
    let by_key = |pending: &[Pending]| -> BTreeMap<(JobId, u32), PendingReason> {
        pending.iter().map(|p| ((p.job, p.replica), p.reason.clone())).collect()
    };
    assert_eq!(plan.placements, expected.placements, "every entry is placed as its bound options place it");
    assert_eq!(by_key(&plan.pending), by_key(&expected.pending), "and waits for the same reason");
    assert!(!held.is_empty() && !origins.is_empty(), "the queue exercises both outcomes");
    let split = |p: &&cumulo_sched::Placement| {
        origins.get(&(p.job, p.replica)).is_some_and(|o| o.iter().enumerate().any(|(i, &origin)| i as u32 != origin))
    };
    assert!(expected.placements.iter().any(|p| split(&p)), "a job with a split option is placed: origins matter");

    let mut notes = ClauseNotes::new(&clauses, now);
    for job in &queue {
        let expected = words.get(&(job.id, job.replica)).cloned().flatten();
        assert_eq!(notes.words(job).map(|w| w.to_string()), expected, "words of {:?} name its own wait", job.id);
    }
    assert!(
        queue.iter().any(|j| notes.words(j).is_some_and(|w| w.to_string().ends_with("(waited 5m)"))),
        "a first refusal's words carry the job's wait"
    );
}
