//! Metering in the loop: drivers' per-node start and stop times become usage records in the store,
//! rated at the price the attempt's pool has in this pass (the placement's price scaled by how the
//! pool's price moved since), with the on-demand list price beside it. A node's GPUs are the GPUs
//! the attempt holds there, not the node's.
//!
//! The ledger (pure) decides which seconds are new; the store refuses to bill a second twice. The
//! loop keeps one ledger per active attempt in memory, rebuilt from the store's records when it is
//! missing (first pass, restart, or after a failed append), so a re-observation bills nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use cumulo_driver::NodeStatus;
use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey};
use cumulo_store::ActiveAttempt;
use cumulo_types::{AttemptId, CapacityKind, Money, Provider};

use crate::fleet::{ClusterInfo, PoolOffer, StoredPlacement, scale_price};

/// What one attempt's driver reported about its nodes in this pass.
pub(crate) struct NodeReport {
    pub attempt: AttemptId,
    pub tenant: String,
    pub offer: PoolOffer,
    pub placement: StoredPlacement,
    pub nodes: Vec<NodeStatus>,
    pub observed_at: DateTime<Utc>,
    /// The pool's price of a whole node per hour in the latest pass, when the loop knows it.
    pub pool_price_now: Option<Money>,
}

impl NodeReport {
    /// The report for an attempt, or `None` when the driver gave no per-node times.
    pub fn new(
        attempt: &ActiveAttempt,
        placement: &StoredPlacement,
        cluster: &ClusterInfo,
        contract: Option<&str>,
        nodes: &[NodeStatus],
        observed_at: DateTime<Utc>,
        pool_price_now: Option<Money>,
    ) -> Option<NodeReport> {
        if nodes.iter().all(|n| n.started_at.is_none()) {
            return None;
        }
        let offer = placement.offer.clone().unwrap_or_else(|| fallback_offer(placement, cluster, contract));
        Some(NodeReport {
            attempt: attempt.attempt.id,
            tenant: attempt.spec.tenant.clone(),
            offer,
            placement: placement.clone(),
            nodes: nodes.to_vec(),
            observed_at,
            pool_price_now,
        })
    }

    /// The ledger's observations of this report's nodes (nodes not started yet give none).
    pub fn observations(&self) -> Result<Vec<Observation>, cumulo_ledger::Error> {
        let provider = provider(&self.offer.provider)?;
        Ok(self
            .nodes
            .iter()
            .filter_map(|node| {
                let meta = NodeMeta {
                    tenant: self.tenant.clone(),
                    provider: provider.clone(),
                    region: self.offer.region.clone(),
                    node_type: self.offer.node_type.clone(),
                    gpu: self.offer.gpu,
                    gpus: self.gpus_held(node.rank),
                    capacity: self.offer.capacity,
                    contract: self.offer.contract.clone(),
                    resource_id: Some(format!("{}/{}", self.placement.cluster, node.node)),
                };
                // Never bill seconds that have not happened yet (a driver may report a planned end).
                Observation::from_node_report(
                    self.attempt,
                    node.rank,
                    node.started_at,
                    node.finished_at.map(|f| f.min(self.observed_at)),
                    self.observed_at,
                    meta,
                )
            })
            .collect())
    }

    /// GPUs the attempt holds on the node of `rank`: its placed GPUs (a GPU shared by fraction
    /// counts as one), the node's when the placement does not say.
    fn gpus_held(&self, rank: u32) -> u32 {
        match self.placement.nodes.get(rank as usize) {
            Some(placed) if !placed.gpus.is_empty() || placed.cpus_milli > 0 => placed.gpus.len() as u32,
            _ => self.offer.gpus,
        }
    }

    /// The price the attempt pays per node-hour now: the placement's, moved as its pool's price moved.
    pub fn paid_now(&self) -> Money {
        match (self.pool_price_now, self.offer.pool_price_per_node_hour) {
            (Some(now), Some(then)) => scale_price(self.offer.price_per_node_hour, now, then),
            _ => self.offer.price_per_node_hour,
        }
    }

    /// The prices for this pass's new seconds: the price paid now under the attempt's terms, and
    /// the on-demand list price beside it. (A price change starts a new record: the ledger extends
    /// a record only on the same rate.)
    pub fn prices(&self) -> Result<PriceBook, cumulo_ledger::Error> {
        let provider = provider(&self.offer.provider)?;
        let key = PriceKey {
            provider: provider.clone(),
            node_type: self.offer.node_type.clone(),
            capacity: self.offer.capacity,
            contract: self.offer.contract.clone(),
        };
        let mut book = PriceBook::new();
        let from = DateTime::<Utc>::UNIX_EPOCH;
        book.set_price(key, from, self.paid_now())?;
        if self.offer.capacity != CapacityKind::OnDemand
            && let Some(list) = self.offer.list_price_per_node_hour
        {
            book.set_price(PriceKey::on_demand(&provider, &self.offer.node_type), from, list)?;
        }
        Ok(book)
    }
}

fn provider(name: &str) -> Result<Provider, cumulo_ledger::Error> {
    Provider::new(name).map_err(|_| cumulo_ledger::Error::Invalid {
        field: "provider",
        value: name.to_string(),
        expected: "letters, digits and dashes",
    })
}

/// The offer of a placement stored before placements carried one: the cluster's configuration, the
/// node type from the pool name's last part, the price per node from the plan's price.
fn fallback_offer(placement: &StoredPlacement, cluster: &ClusterInfo, contract: Option<&str>) -> PoolOffer {
    let nodes = i64::try_from(placement.nodes.len()).unwrap_or(i64::MAX).max(1);
    PoolOffer {
        provider: cluster.provider.clone(),
        region: cluster.region.clone(),
        capacity: cluster.capacity,
        contract: (cluster.capacity == CapacityKind::Contract).then(|| contract.unwrap_or(&cluster.name).to_string()),
        node_type: placement.pool.rsplit('/').next().unwrap_or(&placement.pool).to_string(),
        gpu: None,
        gpus: placement.nodes.first().map_or(0, |n| n.gpus.len() as u32),
        price_per_node_hour: cumulo_types::Money(placement.price_per_hour.micros() / nodes),
        pool_price_per_node_hour: None,
        list_price_per_node_hour: None,
    }
}

/// Attempts' ledgers, rebuilt from stored records where missing.
pub(crate) type Ledgers = HashMap<AttemptId, Ledger>;

/// Groups stored records by attempt into ledgers for `wanted` (every wanted attempt gets one).
pub(crate) fn ledgers_from_records(
    wanted: &[AttemptId],
    records: Vec<cumulo_ledger::UsageRecord>,
) -> Result<Ledgers, cumulo_ledger::Error> {
    let mut by_attempt: BTreeMap<AttemptId, Vec<cumulo_ledger::UsageRecord>> =
        wanted.iter().map(|id| (*id, Vec::new())).collect();
    for record in records {
        if let Some(list) = by_attempt.get_mut(&record.attempt) {
            list.push(record);
        }
    }
    by_attempt.into_iter().map(|(id, records)| Ok((id, Ledger::from_records(records)?))).collect()
}
