//! Contracts steer the live loop: every pass prices pools with the portfolio's live prices
//! (burn status from the usage metered so far), binds jobs by exclusive and first-refusal
//! clauses, and schedules only the nodes a contract's ramp has delivered. A real SQLite store,
//! simulated clusters and a manual clock; usage comes from jobs the loop ran and metered.

use std::sync::Arc;
use std::time::Duration;

use cumulo_control::{Cluster, ClusterInfo, Contracts, Controller, Options, open_store};
use cumulo_driver::Driver;
use cumulo_driver_sim::{SimClock, SimConfig, SimDriver};
use cumulo_portfolio::Portfolio;
use cumulo_portfolio::pricing::PricingConfig;
use cumulo_store::{NewJob, Store};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, GpuModel, GpuSelector, InfraSelector, JobId, JobSpec, JobState, MilliGpu, Money,
};

/// One simulated cluster of 2 one-GPU H100 nodes: its name, provider, how it is held, the
/// contract (for contract capacity) and the price it is configured at.
struct Site {
    name: &'static str,
    provider: &'static str,
    capacity: CapacityKind,
    contract: Option<&'static str>,
    price: i64,
}

const NODE_TYPE: &str = "h100-1";

struct World {
    clock: SimClock,
    store: Arc<dyn Store>,
    sites: Vec<(Site, SimDriver)>,
    portfolio: Option<Portfolio>,
}

/// A portfolio of the given contracts (YAML list items after `contracts:`), all over the node
/// type `h100-1` at $10 per node-hour in region r1.
fn portfolio(contracts: &str) -> Portfolio {
    let yaml = format!(
        "name: test\nnode_types:\n  - {{name: {NODE_TYPE}, gpu: H100, gpus: 1, vcpus: 8, memory_gb: 64}}\ncontracts:\n{contracts}"
    );
    Portfolio::from_yaml(&yaml, "test portfolio").unwrap()
}

/// The date `offset` days from today. The store stamps submissions with the wall clock, so the
/// tests' manual clock starts now and contracts are dated around today (first refusal counts the
/// wait from the submission).
fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

/// One contract of `provider` over ten days from yesterday delivering `ramp` ((day offset, nodes)
/// steps) in region r1, committing `committed` dollars, with `clauses` YAML (may be empty).
fn contract(id: &str, provider: &str, committed: u32, ramp: &[(i64, u32)], clauses: &str) -> String {
    let steps: String = ramp
        .iter()
        .map(|(offset, nodes)| {
            format!("      - {{date: {}, region: r1, node_type: {NODE_TYPE}, nodes: {nodes}}}\n", day(*offset))
        })
        .collect();
    format!(
        "  - id: {id}\n    provider: {provider}\n    committed_usd: {committed}\n    term: {{start: {}, end: {}}}\n    ramp:\n{steps}    rates:\n      - {{node_type: {NODE_TYPE}, per_node_hour: 10}}\n{clauses}",
        day(-1),
        day(8)
    )
}

impl World {
    async fn new(sites: Vec<Site>, portfolio: Option<Portfolio>) -> World {
        let dir = tempfile::tempdir().unwrap().keep();
        let clock = SimClock::manual(chrono::Utc::now());
        let store = open_store(dir.join("cumulo.db").to_str().unwrap()).await.unwrap();
        let sites = sites
            .into_iter()
            .map(|site| {
                let config = SimConfig::uniform(site.name, 2, Some(GpuModel::H100), 1, 8, 64 * 1024);
                let sim = SimDriver::open(config, clock.clone()).unwrap();
                (site, sim)
            })
            .collect();
        World { clock, store, sites, portfolio }
    }

    fn controller(&self) -> Controller {
        let clusters = self
            .sites
            .iter()
            .map(|(site, sim)| Cluster {
                info: ClusterInfo {
                    node_type: Some(NODE_TYPE.into()),
                    ..ClusterInfo::new(site.name, site.provider, "r1", site.capacity, Money::from_dollars(site.price))
                },
                driver: Arc::new(sim.clone()) as Arc<dyn Driver>,
            })
            .collect();
        let mut options = Options::new(self.store.clone(), clusters);
        for (site, _) in &self.sites {
            if let Some(contract) = site.contract {
                options.contracts.insert(site.name.into(), contract.into());
            }
        }
        options.portfolio =
            self.portfolio.clone().map(|p| Contracts { portfolio: Arc::new(p), pricing: PricingConfig::default() });
        let clock = self.clock.clone();
        options.clock = Arc::new(move || clock.now());
        options.lost_after = Duration::from_secs(10 * 86_400);
        Controller::new(options)
    }

    async fn submit(&self, spec: JobSpec) -> JobId {
        self.store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    /// The cluster the job's latest attempt was placed on, or its pending reason.
    async fn placed(&self, job: JobId) -> Result<String, String> {
        let record = self.store.get_job(job).await.unwrap();
        match record.attempts.last() {
            Some(a) => Ok(a.placement["cluster"].as_str().unwrap_or_default().to_string()),
            None => Err(record.pending_reason.unwrap_or_default()),
        }
    }
}

fn h100_job(name: &str, nodes: u32, hours: u64, infra: Option<&str>) -> JobSpec {
    let mut spec = JobSpec::new(name, "research");
    spec.resources[0].accelerators = Some(AcceleratorDemand {
        selector: GpuSelector::Models(vec![GpuModel::H100]),
        per_node: MilliGpu::whole(1),
        names: Vec::new(),
    });
    spec.resources[0].infra = infra.map(|i| InfraSelector::parse(i).unwrap());
    spec.num_nodes = nodes;
    spec.duration_s = Some(hours * 3600);
    spec
}

fn site(name: &'static str, provider: &'static str, contract: Option<&'static str>, price: i64) -> Site {
    let capacity = if contract.is_some() { CapacityKind::Contract } else { CapacityKind::OnDemand };
    Site { name, provider, capacity, contract, price }
}

/// Two contracts at the same rate, Azure's cluster first (it wins ties).
fn twin_contracts() -> (Vec<Site>, Portfolio) {
    let sites = vec![site("sim-azure", "azure", Some("c-azure"), 10), site("sim-aws", "aws", Some("c-aws"), 10)];
    let ramp = [(-1, 2)];
    let p = portfolio(&(contract("c-azure", "azure", 240, &ramp, "") + &contract("c-aws", "aws", 240, &ramp, "")));
    (sites, p)
}

#[tokio::test]
async fn a_contract_behind_schedule_gets_work_before_one_ahead_at_equal_rates() {
    // Without a portfolio the tie between the two $10 pools goes to Azure's (listed first).
    let (sites, _) = twin_contracts();
    let plain = World::new(sites, None).await;
    let job = plain.submit(h100_job("tie", 1, 1, None)).await;
    plain.controller().reconcile_once().await.unwrap();
    assert_eq!(plain.placed(job).await, Ok("sim-azure".into()), "ties go to the first cluster");

    let (sites, p) = twin_contracts();
    let world = World::new(sites, Some(p)).await;
    let controller = world.controller();
    // 4 hours of both Azure nodes: $80 metered against at most $52 scheduled by then, so Azure is ahead
    // while AWS (nothing metered) is behind.
    let warm = world.submit(h100_job("warm", 2, 4, Some("azure"))).await;
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    world.advance(4 * 3600);
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.store.get_job(warm).await.unwrap().state, JobState::Succeeded);
    let job = world.submit(h100_job("next", 1, 1, None)).await;
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.placed(job).await, Ok("sim-aws".into()), "the contract behind schedule is nearly free");
    // What was metered is the contract rate, not the effective price the plan chose at.
    let records = world.store.usage_between(None, None).await.unwrap();
    assert!(records.iter().all(|r| r.rate == Money::from_dollars(10) && r.contract.as_deref() == Some("c-azure")));
}

#[tokio::test]
async fn the_first_refusal_holder_gets_the_job_within_its_wait() {
    // AWS on-demand at $1 is cheaper than Azure's contract at $10 (nothing committed: on schedule),
    // but Azure holds first refusal on H100 work for an hour.
    let sites = vec![site("sim-aws", "aws", None, 1), site("sim-azure", "azure", Some("c-azure"), 10)];
    let clauses = "    clauses:\n      first_refusal: {wait: 1h, gpus: [H100]}\n";
    let p = portfolio(&contract("c-azure", "azure", 0, &[(-1, 2)], clauses));
    let world = World::new(sites, Some(p)).await;
    let controller = world.controller();
    let first = world.submit(h100_job("first", 1, 10, None)).await;
    let on_aws = world.submit(h100_job("on-aws", 1, 10, Some("aws"))).await;
    let second = world.submit(h100_job("second", 1, 10, None)).await;
    let third = world.submit(h100_job("third", 1, 10, None)).await;
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.placed(first).await, Ok("sim-azure".into()), "the holder gets the job, though dearer");
    assert_eq!(world.placed(second).await, Ok("sim-azure".into()));
    let held = "first refusal of c-azure: H100 work is offered to azure first; other providers after 1h (waited 0s)";
    assert_eq!(world.placed(on_aws).await, Err(held.into()), "a job only AWS may take waits out the hour");
    let full =
        format!("not enough free capacity now: needs 1 fitting node(s) in one pool across 1 eligible pool(s); {held}");
    assert_eq!(world.placed(third).await, Err(full), "the holder is full: the job waits, not elsewhere");
    world.advance(1800);
    controller.reconcile_once().await.unwrap();
    assert!(world.placed(third).await.is_err(), "still within the wait");
    world.advance(1801); // submissions are stamped within the second after the clock's start
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.placed(on_aws).await, Ok("sim-aws".into()), "after the wait other providers may take it");
    assert_eq!(world.placed(third).await, Ok("sim-aws".into()));
}

#[tokio::test]
async fn exclusive_gpus_never_go_elsewhere() {
    let sites = vec![site("sim-azure", "azure", None, 1), site("sim-aws", "aws", Some("c-aws"), 10)];
    let clauses = "    clauses:\n      exclusive: {gpus: [H100]}\n";
    let p = portfolio(&contract("c-aws", "aws", 0, &[(-1, 2)], clauses));
    let world = World::new(sites, Some(p)).await;
    let controller = world.controller();
    let jobs = [
        world.submit(h100_job("a", 1, 100, None)).await,
        world.submit(h100_job("b", 1, 100, None)).await,
        world.submit(h100_job("c", 1, 100, None)).await,
    ];
    let on_azure = world.submit(h100_job("on-azure", 1, 1, Some("azure"))).await;
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(86_400);
    }
    assert_eq!(world.placed(jobs[0]).await, Ok("sim-aws".into()), "exclusive to AWS though Azure is cheaper");
    assert_eq!(world.placed(jobs[1]).await, Ok("sim-aws".into()));
    assert_eq!(
        world.placed(jobs[2]).await,
        Err("not enough free capacity now: needs 1 fitting node(s) in one pool across 1 eligible pool(s); \
             exclusive clause of c-aws: H100 work only on aws"
            .into()),
        "AWS is full; Azure's free nodes stay off limits"
    );
    assert_eq!(world.placed(on_azure).await, Err("exclusive clause of c-aws: H100 work only on aws".into()));
}

#[tokio::test]
async fn nodes_a_ramp_has_not_delivered_are_not_scheduled() {
    // AWS delivers one node yesterday and the second tomorrow; Azure's ramp says 3 nodes but its
    // cluster shows 2: a delivery shortfall of one.
    let sites = vec![site("sim-aws", "aws", Some("c-aws"), 10), site("sim-azure", "azure", Some("c-azure"), 10)];
    let p = portfolio(
        &(contract("c-aws", "aws", 0, &[(-1, 1), (1, 1)], "") + &contract("c-azure", "azure", 0, &[(-1, 3)], "")),
    );
    let world = World::new(sites, Some(p)).await;
    let controller = world.controller();
    let gang = world.submit(h100_job("gang", 2, 1, Some("aws"))).await;
    controller.reconcile_once().await.unwrap();
    assert!(world.placed(gang).await.is_err(), "one of the two AWS nodes is not delivered yet");
    let deliveries = controller.deliveries();
    let of = |cluster: &str| deliveries.iter().find(|d| d.cluster == cluster).unwrap().delivery.clone();
    assert_eq!((of("sim-aws").delivered, of("sim-aws").discovered, of("sim-aws").shortfall()), (1, 2, 0));
    assert_eq!((of("sim-azure").delivered, of("sim-azure").discovered, of("sim-azure").shortfall()), (3, 2, 1));
    world.advance(86_400);
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.placed(gang).await, Ok("sim-aws".into()), "delivered tomorrow: the gang fits");
}
