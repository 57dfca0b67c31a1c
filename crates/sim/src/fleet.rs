//! The simulated fleet: the scheduler's pools plus what the simulator needs around them (list
//! prices, contracts, delivery schedules).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use cumulo_portfolio::Portfolio;
use cumulo_portfolio::burndown::scheduled;
use cumulo_portfolio::clauses::ActiveClauses;
use cumulo_sched::needs::{Abilities, Site};
use cumulo_sched::{NodeState, Pool, PoolId};
use cumulo_types::{CapacityKind, GpuModel, Money, NodeType};

use crate::Error;
use crate::scenario::{DAY, DEMO_PORTFOLIO, EventSpec, FleetSpec, Scenario, days_to_s};
use crate::trace::alibaba::{GpuNames, NodeRow};

/// A pool as simulated: the scheduler's view (every node it will ever have; undelivered ones
/// unschedulable) and the facts around it.
#[derive(Clone, Debug)]
pub struct SimPool {
    pub pool: Pool,
    pub list_price: Money,
    /// Index into [`Fleet::contracts`].
    pub contract: Option<usize>,
    pub contract_rate: Money,
    /// Nodes delivered at the start.
    pub initial_nodes: u32,
    /// (time, nodes) delivered later, in time order.
    pub deliveries: Vec<(u64, u32)>,
    /// What its clusters can do for a job beyond resources (`cumulo_sched::needs`); everything
    /// unless the scenario's pool says otherwise.
    pub abilities: Abilities,
}

impl SimPool {
    pub fn gpu(&self) -> Option<GpuModel> {
        self.pool.node_type.gpu
    }

    pub fn gpus_per_node(&self) -> u32 {
        self.pool.node_type.gpus
    }
}

/// A contract: its name and, when given, the committed spend.
#[derive(Clone, Debug, PartialEq)]
pub struct Contract {
    pub name: String,
    pub provider: String,
    /// The committed spend: over the simulated span for `fleet.contracts`, over the whole term
    /// for a portfolio's contract (whose [`schedule`](Self::schedule) says what falls in the run).
    pub committed: Option<Money>,
    /// A portfolio contract's own burn schedule; `None` spreads `committed` evenly over the run.
    pub schedule: Option<PortfolioSchedule>,
}

/// A portfolio contract's schedule (`cumulo_portfolio::burndown::scheduled`), seen from the
/// simulation's start.
#[derive(Clone, Debug, PartialEq)]
pub struct PortfolioSchedule {
    pub contract: cumulo_portfolio::Contract,
    /// The calendar instant simulated time 0 stands for.
    pub start: DateTime<Utc>,
}

impl PortfolioSchedule {
    /// Spend the portfolio schedules between the simulation's start and `now_s` seconds later.
    pub fn scheduled(&self, now_s: u64) -> Money {
        scheduled(&self.contract, self.at(now_s)) - scheduled(&self.contract, self.start)
    }

    /// The calendar instant `now_s` seconds into the simulation.
    pub fn at(&self, now_s: u64) -> DateTime<Utc> {
        self.start + chrono::Duration::seconds(now_s.min(i64::MAX as u64 / 2) as i64)
    }
}

impl Fleet {
    /// The clauses of the portfolio's contracts that run `now_s` seconds into the simulation
    /// (none without a portfolio): the same `cumulo_portfolio::clauses` rule `cumulo offers` and
    /// the server bind jobs with.
    pub fn clauses_at(&self, now_s: u64) -> ActiveClauses<'_> {
        let mut held = self.contracts.iter().filter_map(|c| c.schedule.as_ref()).peekable();
        let at = held.peek().map_or(DateTime::<Utc>::UNIX_EPOCH, |s| s.at(now_s));
        ActiveClauses::of(held.map(|s| &s.contract), at)
    }
}

/// Every pool and contract of a run.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub pools: Vec<SimPool>,
    pub contracts: Vec<Contract>,
    /// Some capacity comes from an illustrative (made-up) portfolio such as the demo.
    pub illustrative: bool,
    /// The portfolio whose contracts delivered capacity, and the calendar instant simulated time
    /// 0 stands for (for the term report).
    pub portfolio: Option<Portfolio>,
    pub calendar_start: Option<DateTime<Utc>>,
}

/// A portfolio whose contracts deliver capacity into a run starting on `start`.
pub struct PortfolioFleet<'a> {
    pub portfolio: &'a Portfolio,
    pub start: NaiveDate,
    /// Ramp steps later than this many seconds after `start` are left out (`None`: all).
    pub horizon_s: Option<u64>,
}

/// Nodes delivered by the start and (seconds, nodes) delivered later.
type Ramped = (u32, Vec<(u64, u32)>);

/// What [`Fleet::add_pool`] needs to know of a pool.
struct NewPool {
    provider: String,
    region: String,
    zone: Option<String>,
    capacity: CapacityKind,
    node_type: NodeType,
    block_nodes: Option<u32>,
    initial_nodes: u32,
    /// (seconds, nodes), before delivery delays.
    deliveries: Vec<(u64, u32)>,
    list_price: Money,
    contract: Option<usize>,
    contract_rate: Money,
    abilities: Abilities,
}

/// Simulated list prices per GPU-hour for the Alibaba fleet, in US dollars, so that its costs are
/// comparable (its own capacity is owned: priced as one contract).
fn alibaba_gpu_hour(model: Option<GpuModel>) -> f64 {
    match model {
        None => 0.0,
        Some(GpuModel::T4) => 0.53,
        Some(GpuModel::P100) => 1.46,
        Some(GpuModel::V100 | GpuModel::V100_32) => 2.48,
        Some(GpuModel::A10 | GpuModel::A10G) => 1.01,
        Some(GpuModel::A100 | GpuModel::A100_80) => 3.67,
        Some(_) => 4.0,
    }
}

impl Fleet {
    /// Builds the fleet from a scenario's spec (and node list, when it names one), with delivery
    /// delays already applied.
    pub fn build(spec: &FleetSpec, alibaba_nodes: &[NodeRow], events: &[EventSpec]) -> Result<Fleet, Error> {
        Fleet::build_with(spec, alibaba_nodes, None, events)
    }

    /// Builds a scenario's whole fleet, reading the node list and the portfolio it names.
    pub fn for_scenario(scenario: &Scenario) -> Result<Fleet, Error> {
        let nodes = load_alibaba_nodes(&scenario.fleet, scenario.workload.on_bad_row)?;
        let portfolio = load_portfolio(&scenario.fleet)?;
        let start = NaiveDate::parse_from_str(&scenario.start_date, "%Y-%m-%d")
            .map_err(|_| Error::invalid("start_date", &scenario.start_date, "a date such as 2026-01-01"))?;
        let from = portfolio.as_ref().map(|portfolio| PortfolioFleet {
            portfolio,
            start,
            horizon_s: scenario.horizon_days.map(|d| (d * DAY).round() as u64),
        });
        Fleet::build_with(&scenario.fleet, &nodes, from.as_ref(), &scenario.events)
    }

    /// [`Fleet::build`] with a portfolio's contract pools first (when one is given). A spec
    /// naming a portfolio needs it given (as [`Fleet::for_scenario`] does).
    pub fn build_with(
        spec: &FleetSpec,
        alibaba_nodes: &[NodeRow],
        portfolio: Option<&PortfolioFleet<'_>>,
        events: &[EventSpec],
    ) -> Result<Fleet, Error> {
        if let (Some(path), None) = (&spec.portfolio, portfolio) {
            return Err(Error::invalid(
                "fleet.portfolio",
                path,
                "the portfolio read and dated by the scenario (Fleet::for_scenario)",
            ));
        }
        let mut fleet = Fleet::default();
        let mut contract_ids: BTreeMap<String, usize> = BTreeMap::new();
        for c in &spec.contracts {
            let committed = match c.committed_usd {
                Some(usd) => Some(Money::from_dollars_f64(usd).ok_or_else(|| {
                    Error::invalid(
                        &format!("fleet.contracts.{}.committed_usd", c.name),
                        usd,
                        "a non-negative amount of US dollars",
                    )
                })?),
                None => None,
            };
            contract_ids.insert(c.name.clone(), fleet.contracts.len());
            fleet.contracts.push(Contract { name: c.name.clone(), provider: String::new(), committed, schedule: None });
        }
        let pool_contracts: Vec<&str> = spec.pools.iter().filter_map(|p| p.contract.as_deref()).collect();
        if let Some(from) = portfolio {
            if let Some(c) = from.portfolio.contracts.iter().find(|c| pool_contracts.contains(&c.id.as_str())) {
                return Err(Error::invalid(
                    "fleet.portfolio",
                    &c.id,
                    "contract ids distinct from the contracts of `fleet.contracts` and `fleet.pools`",
                ));
            }
            fleet.add_portfolio(from, events)?;
        }
        for (i, p) in spec.pools.iter().enumerate() {
            let domain = p.nvlink_domain_nodes.unwrap_or_else(|| NodeType::default_nvlink_domain_nodes(p.gpu)).max(1);
            let node_type = NodeType {
                name: match p.gpu {
                    Some(m) => format!("{}x{}", m.name().to_ascii_lowercase(), p.gpus_per_node),
                    None => format!("cpu{}", p.vcpus),
                },
                gpu: p.gpu,
                gpus: p.gpus_per_node,
                vcpus: p.vcpus,
                memory_gb: p.memory_gb,
                nvlink_domain_nodes: domain,
            };
            let deliveries: Vec<(u64, u32)> = p
                .deliveries
                .iter()
                .enumerate()
                .map(|(j, d)| {
                    Ok((days_to_s(&format!("fleet.pools[{i}].deliveries[{j}].at_days"), d.at_days)?, d.nodes))
                })
                .collect::<Result<_, Error>>()?;
            let contract = match &p.contract {
                Some(name) => Some(match contract_ids.get(name) {
                    Some(c) => *c,
                    None => {
                        contract_ids.insert(name.clone(), fleet.contracts.len());
                        fleet.contracts.push(Contract {
                            name: name.clone(),
                            provider: String::new(),
                            committed: None,
                            schedule: None,
                        });
                        fleet.contracts.len() - 1
                    }
                }),
                None => None,
            };
            if let Some(c) = contract {
                fleet.contracts[c].provider = p.provider.clone();
            }
            let list_price = Money::from_dollars_f64(p.price_per_node_hour).ok_or_else(|| {
                Error::invalid(
                    &format!("fleet.pools[{i}].price_per_node_hour"),
                    p.price_per_node_hour,
                    "a price in US dollars",
                )
            })?;
            let contract_rate = match p.contract_rate_per_node_hour {
                Some(r) => Money::from_dollars_f64(r).ok_or_else(|| {
                    Error::invalid(&format!("fleet.pools[{i}].contract_rate_per_node_hour"), r, "a price in US dollars")
                })?,
                None => list_price,
            };
            fleet.add_pool(
                NewPool {
                    provider: p.provider.clone(),
                    region: p.region.clone(),
                    zone: p.zone.clone(),
                    capacity: p.capacity,
                    node_type,
                    block_nodes: p.block_nodes,
                    initial_nodes: p.nodes,
                    deliveries,
                    list_price,
                    contract,
                    contract_rate,
                    abilities: Abilities {
                        container_images: p.container_images,
                        uploads: p.uploads,
                        bucket_mounts: p.bucket_mounts,
                    },
                },
                events,
            );
        }
        if !alibaba_nodes.is_empty() {
            fleet.add_alibaba(alibaba_nodes);
        }
        if let Some(synth) = &spec.synth {
            fleet.add_synth(synth);
        }
        fleet.check_abilities()?;
        Ok(fleet)
    }

    /// Each pool as a site of `cumulo_sched::needs`, named as the pool (`provider/region/...`).
    pub fn sites(&self) -> Vec<Site> {
        self.pools
            .iter()
            .map(|p| Site {
                name: p.pool.name.clone(),
                provider: p.pool.provider.clone(),
                region: p.pool.region.clone(),
                abilities: p.abilities,
            })
            .collect()
    }

    /// The rule judges sites by location (`Needs::denials`: a job is kept off a provider and
    /// region, not off one pool), so pools sharing one must say the same abilities: a job needing
    /// a container runtime then never lands on a pool without one.
    fn check_abilities(&self) -> Result<(), Error> {
        let mut seen: BTreeMap<(&str, &str), &SimPool> = BTreeMap::new();
        for p in &self.pools {
            let key = (p.pool.provider.as_str(), p.pool.region.as_str());
            match seen.get(&key) {
                Some(first) if first.abilities != p.abilities => {
                    return Err(Error::invalid(
                        "fleet.pools (container_images, uploads, bucket_mounts)",
                        &p.pool.name,
                        &format!(
                            "the same abilities as pool `{}` in that provider and region: sites are judged by location",
                            first.pool.name
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(key, p);
                }
            }
        }
        Ok(())
    }

    /// Adds one pool of identical nodes: every node it will ever have, those delivered later
    /// unschedulable until their delivery (moved by the scenario's delivery delays).
    fn add_pool(&mut self, p: NewPool, events: &[EventSpec]) {
        let mut deliveries = p.deliveries;
        for e in events {
            if let EventSpec::DeliveryDelay { provider, region, after_days, by_days } = e
                && provider == &p.provider
                && region.as_ref().is_none_or(|r| r == &p.region)
            {
                let after = (after_days * DAY) as u64;
                for d in &mut deliveries {
                    if d.0 >= after {
                        d.0 += (by_days * DAY) as u64;
                    }
                }
            }
        }
        deliveries.sort();
        let i = self.pools.len();
        let domain = p.node_type.nvlink_domain_nodes.max(1);
        let block = p.block_nodes.unwrap_or(domain * 8).max(domain);
        let total = p.initial_nodes + deliveries.iter().map(|d| d.1).sum::<u32>();
        let zone = p.zone.unwrap_or_else(|| format!("{}-a", p.region));
        let nodes = (0..total)
            .map(|n| NodeState {
                name: format!("p{i}-n{n}"),
                block: n / block,
                nvlink_domain: n / domain,
                schedulable: n < p.initial_nodes,
            })
            .collect();
        let pool = Pool {
            id: PoolId(i as u32),
            name: format!("{}/{}/{}/{}/{}", p.provider, p.region, zone, p.node_type.name, p.capacity),
            provider: p.provider,
            region: p.region,
            zone,
            capacity: p.capacity,
            node_type: p.node_type,
            price_per_node_hour: p.list_price,
            nodes,
        };
        self.pools.push(SimPool {
            pool,
            list_price: p.list_price,
            contract: p.contract,
            contract_rate: p.contract_rate,
            initial_nodes: p.initial_nodes,
            deliveries,
            abilities: p.abilities,
        });
    }

    /// Adds a portfolio's contracts: for each contract and each (region, node type) its ramp
    /// delivers, one contract pool holding the nodes delivered by `start` plus the later ramp
    /// steps within the horizon as deliveries. Node type facts come from the portfolio, the rate
    /// from the contract; the list price is the built-in catalog's on-demand price of the
    /// instance type of the same name, or the contract rate where the catalog does not list it.
    /// Each contract burns its commitment on the portfolio's own schedule
    /// ([`PortfolioSchedule`]). Contracts whose term ended before `start` are left out; capacity
    /// is not withdrawn when a term ends within the horizon.
    fn add_portfolio(&mut self, from: &PortfolioFleet<'_>, events: &[EventSpec]) -> Result<(), Error> {
        let catalog = cumulo_catalog::Catalog::builtin()
            .map_err(|e| Error::Scenario(format!("the built-in catalog is broken: {e}")))?;
        let start = cumulo_portfolio::clock::start_of(from.start);
        for c in &from.portfolio.contracts {
            if c.term_end() <= start {
                continue;
            }
            if self.contracts.iter().any(|k| k.name == c.id) {
                return Err(Error::invalid(
                    "fleet.portfolio",
                    &c.id,
                    "contract ids distinct from the contracts of `fleet.contracts` and `fleet.pools`",
                ));
            }
            // (region, node type) -> (nodes delivered by the start, later deliveries)
            let mut groups: BTreeMap<(&str, &str), Ramped> = BTreeMap::new();
            for step in &c.ramp {
                let at = cumulo_portfolio::clock::start_of(step.date);
                let group = groups.entry((step.region.as_str(), step.node_type.as_str())).or_default();
                if at <= start {
                    group.0 += step.nodes;
                } else {
                    let offset = (at - start).num_seconds().max(0) as u64;
                    if from.horizon_s.is_none_or(|h| offset <= h) {
                        group.1.push((offset, step.nodes));
                    }
                }
            }
            groups.retain(|_, g| g.0 > 0 || !g.1.is_empty());
            if groups.is_empty() {
                continue;
            }
            let index = self.contracts.len();
            self.contracts.push(Contract {
                name: c.id.clone(),
                provider: c.provider.to_string(),
                committed: Some(c.committed),
                schedule: Some(PortfolioSchedule { contract: c.clone(), start }),
            });
            for ((region, node_type), (initial_nodes, deliveries)) in groups {
                let bad = |what: &str| {
                    Error::Scenario(format!(
                        "fleet.portfolio: contract `{}` ramps node type `{node_type}`, which has no {what} in the portfolio",
                        c.id
                    ))
                };
                let nt = from.portfolio.node_type(node_type).ok_or_else(|| bad("definition"))?;
                let contract_rate = c.rate(node_type).ok_or_else(|| bad("rate"))?;
                let list_price = catalog
                    .offers()
                    .iter()
                    .find(|o| o.instance_type == node_type && o.price.is_some())
                    .and_then(|o| o.price)
                    .unwrap_or(contract_rate);
                self.add_pool(
                    NewPool {
                        provider: c.provider.to_string(),
                        region: region.to_string(),
                        zone: None,
                        capacity: CapacityKind::Contract,
                        node_type: nt.clone(),
                        block_nodes: None,
                        initial_nodes,
                        deliveries,
                        list_price,
                        contract: Some(index),
                        contract_rate,
                        abilities: Abilities::ALL,
                    },
                    events,
                );
            }
        }
        if from.portfolio.illustrative {
            self.illustrative = true;
        }
        self.portfolio = Some(from.portfolio.clone());
        self.calendar_start = Some(start);
        Ok(())
    }

    /// Adds `cumulo_synth::fleet`'s pools; each provider's contract pools form one contract
    /// `<provider>-commit` at the pool's price (take-or-pay), whose list price is the node type's
    /// on-demand list price (`cumulo_synth::list_price`).
    fn add_synth(&mut self, spec: &crate::scenario::SynthFleet) {
        let config = cumulo_synth::FleetConfig { gpus: spec.gpus, vcpus: spec.vcpus, ..Default::default() };
        let snapshot = cumulo_synth::fleet(&config, spec.seed);
        for mut pool in snapshot.pools {
            let contract = (pool.capacity == CapacityKind::Contract).then(|| {
                let name = format!("{}-commit", pool.provider);
                match self.contracts.iter().position(|c| c.name == name) {
                    Some(c) => c,
                    None => {
                        self.contracts.push(Contract {
                            name,
                            provider: pool.provider.clone(),
                            committed: None,
                            schedule: None,
                        });
                        self.contracts.len() - 1
                    }
                }
            });
            pool.id = PoolId(self.pools.len() as u32);
            let price = pool.price_per_node_hour;
            let list_price =
                if contract.is_some() { cumulo_synth::list_price(&pool.node_type).max(price) } else { price };
            let nodes = pool.nodes.len() as u32;
            self.pools.push(SimPool {
                pool,
                list_price,
                contract,
                contract_rate: price,
                initial_nodes: nodes,
                deliveries: Vec::new(),
                abilities: Abilities::ALL,
            });
        }
    }

    /// Groups an Alibaba node list into pools of identical nodes (one simulated region), all under
    /// one owned-capacity contract `alibaba-owned`.
    fn add_alibaba(&mut self, nodes: &[NodeRow]) {
        let mut groups: BTreeMap<(Option<GpuModel>, u32, u32, u64), u32> = BTreeMap::new();
        for n in nodes {
            *groups.entry((n.model, n.gpus, n.cpus_milli, n.memory_mib)).or_default() += 1;
        }
        let contract = self.contracts.len();
        self.contracts.push(Contract {
            name: "alibaba-owned".to_string(),
            provider: "alibaba".to_string(),
            committed: None,
            schedule: None,
        });
        for ((model, gpus, cpus_milli, memory_mib), count) in groups {
            let id = self.pools.len() as u32;
            let node_type = NodeType {
                name: match model {
                    Some(m) => format!("{}x{gpus}-c{}", m.name().to_ascii_lowercase(), cpus_milli / 1000),
                    None => format!("cpu{}", cpus_milli / 1000),
                },
                gpu: model,
                gpus,
                vcpus: cpus_milli / 1000,
                memory_gb: (memory_mib / 1024) as u32,
                nvlink_domain_nodes: 1,
            };
            let price =
                Money::from_dollars_f64(alibaba_gpu_hour(model) * gpus as f64 + 0.04 * (cpus_milli / 1000) as f64)
                    .unwrap_or(Money::ZERO);
            let pool = Pool {
                id: PoolId(id),
                name: format!("alibaba/cn-sim/cn-sim-a/{}/contract", node_type.name),
                provider: "alibaba".to_string(),
                region: "cn-sim".to_string(),
                zone: "cn-sim-a".to_string(),
                capacity: CapacityKind::Contract,
                node_type,
                price_per_node_hour: price,
                nodes: (0..count).map(|n| NodeState::new(format!("p{id}-n{n}"), n / 32, n)).collect(),
            };
            self.pools.push(SimPool {
                pool,
                list_price: price,
                contract: Some(contract),
                contract_rate: price,
                initial_nodes: count,
                deliveries: Vec::new(),
                abilities: Abilities::ALL,
            });
        }
    }

    /// GPUs of every node ever delivered.
    pub fn total_gpus(&self) -> u64 {
        self.pools.iter().map(|p| p.pool.nodes.len() as u64 * p.gpus_per_node() as u64).sum()
    }

    /// The GPU models present, in `GpuModel::ALL` order.
    pub fn models(&self) -> Vec<GpuModel> {
        let mut v: Vec<GpuModel> = self.pools.iter().filter_map(|p| p.gpu()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Reads the portfolio a fleet names, if any (`demo`: the built-in illustrative one). Errors
/// name `fleet.portfolio`.
pub fn load_portfolio(spec: &FleetSpec) -> Result<Option<Portfolio>, Error> {
    let Some(path) = &spec.portfolio else { return Ok(None) };
    let portfolio =
        if path == DEMO_PORTFOLIO { Portfolio::demo() } else { Portfolio::from_file(std::path::Path::new(path)) };
    portfolio.map(Some).map_err(|e| Error::Scenario(format!("fleet.portfolio `{path}`: {e}")))
}

/// Reads the node list a scenario names, if any.
pub fn load_alibaba_nodes(spec: &FleetSpec, on_bad: crate::trace::OnBadRow) -> Result<Vec<NodeRow>, Error> {
    match &spec.alibaba_nodes {
        Some(path) => {
            Ok(crate::trace::alibaba::import_nodes(std::path::Path::new(path), &GpuNames::default(), on_bad)?.0)
        }
        None => Ok(Vec::new()),
    }
}
