//! Contracts in a pass: nodes a contract has not delivered yet are taken out of scheduling, every
//! pool gets its live price and every queued job's options are bound by the clauses (the core
//! applies `clauses::ActiveClauses` as its narrowing), all through the `cumulo_portfolio`
//! functions `cumulo offers` and the simulator decide with (`pricing::price_pools` /
//! `live_price`, `Status::of` against the burn schedule, `clauses::block`). Nothing here prices or
//! judges a clause by itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cumulo_portfolio::pricing::{PricingConfig, Terms, price_pools};
use cumulo_portfolio::{Delivery, Portfolio, Usage};
use cumulo_sched::Snapshot;
use cumulo_types::{CapacityKind, Money};
use serde::Serialize;

use crate::fleet::{ClusterInfo, Fleet};

/// The portfolio a server's passes decide with, and the knobs of its effective prices.
#[derive(Clone, Debug)]
pub struct Contracts {
    pub portfolio: Arc<Portfolio>,
    pub pricing: PricingConfig,
}

/// One contract cluster's delivery as the last pass saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterDelivery {
    pub cluster: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// Money metered so far under each contract (the cost of its usage records).
pub(crate) fn consumed_by_contract<'a>(
    records: impl IntoIterator<Item = &'a cumulo_ledger::UsageRecord>,
) -> BTreeMap<String, Money> {
    let mut consumed: BTreeMap<String, Money> = BTreeMap::new();
    for record in records {
        if let Some(contract) = &record.contract {
            *consumed.entry(contract.clone()).or_default() += record.cost;
        }
    }
    consumed
}

/// How each pool of `fleet` is held: a contract cluster with a node type holds its contract's
/// capacity of that type; other pools are bought at their configured price.
pub(crate) fn pool_terms(fleet: &Fleet, infos: &[ClusterInfo], contracts: &BTreeMap<String, String>) -> Vec<Terms> {
    fleet
        .pools
        .iter()
        .map(|pool| {
            let info = fleet.cluster_of(pool.id).map(|c| &infos[c]);
            let price = pool.price_per_node_hour;
            match pool.capacity {
                CapacityKind::Contract => Terms::Contract {
                    contract: info.and_then(|i| contracts.get(&i.name)).cloned().unwrap_or_default(),
                    node_type: info.and_then(|i| i.node_type.clone()).unwrap_or_else(|| pool.node_type.name.clone()),
                },
                CapacityKind::OnDemand => Terms::OnDemand { list: price },
                CapacityKind::Spot => Terms::Spot { price },
            }
        })
        .collect()
}

/// Takes nodes a contract has not delivered by `now` out of scheduling: each contract cluster
/// with a node type keeps as many up nodes schedulable (in pool and node order) as the ramp has
/// delivered in its region, shared by clusters holding the same capacity in fleet order. Returns
/// each such cluster's delivery.
pub(crate) fn gate_deliveries(
    fleet: &mut Fleet,
    infos: &[ClusterInfo],
    contracts: &BTreeMap<String, String>,
    portfolio: &Portfolio,
    now: DateTime<Utc>,
) -> Vec<ClusterDelivery> {
    let mut left: HashMap<(String, String, String), u32> = HashMap::new();
    let mut out = Vec::new();
    for (index, info) in infos.iter().enumerate() {
        let (Some(contract), Some(node_type)) = (contracts.get(&info.name), &info.node_type) else { continue };
        if info.capacity != CapacityKind::Contract {
            continue;
        }
        let key = (contract.clone(), info.region.clone(), node_type.clone());
        let budget =
            left.entry(key).or_insert_with(|| portfolio.delivered_nodes(contract, &info.region, node_type, now));
        let mut discovered = 0u32;
        let mut granted = 0u32;
        let pools: Vec<usize> =
            (0..fleet.pools.len()).filter(|&i| fleet.cluster_of(fleet.pools[i].id) == Some(index)).collect();
        for i in pools {
            for node in fleet.pools[i].nodes.iter_mut().filter(|n| n.schedulable) {
                discovered += 1;
                if *budget > 0 {
                    *budget -= 1;
                    granted += 1;
                } else {
                    node.schedulable = false;
                }
            }
        }
        let mut delivery = portfolio.delivery(contract, &info.region, node_type, discovered, now);
        // Capacity shared with an earlier cluster: this one may use what is left of the ramp.
        delivery.delivered = delivery.delivered.min(granted + *budget);
        out.push(ClusterDelivery { cluster: info.name.clone(), delivery });
    }
    out
}

/// Prices every pool of `snapshot` (built from `fleet`) at its live price.
pub(crate) fn price(
    snapshot: &mut Snapshot,
    terms: &[Terms],
    contracts: &Contracts,
    consumed: &BTreeMap<String, Money>,
    now: DateTime<Utc>,
) {
    let usage = Usage { at: Some(now), consumed: consumed.clone() };
    price_pools(snapshot, terms, &contracts.portfolio, &usage, now, &contracts.pricing);
}
