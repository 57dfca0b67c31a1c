//! The fleet as the API shows it: clusters and nodes (from the scheduler's pools, with what active
//! attempts hold), the contract portfolio, and the tenants the server knows.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use cumulo_sched::{Placement, Pool, PoolId, Snapshot};
use cumulo_store::ActiveAttempt;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::{ClusterView, NodeQuery, NodeView};

/// What the server runs on: the pools of the scheduler's snapshot, the contracts, the tenants.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Pools and tenant policies; `running` is ignored here (use comes from the store).
    pub snapshot: Snapshot,
    /// The contract portfolio as JSON (the `portfolio` crate's shape).
    pub contracts: serde_json::Value,
    /// The driver that runs work (`local`, `simulated`, ...), shown per cluster.
    pub driver: String,
}

impl Fleet {
    /// Whether jobs may be submitted for `tenant`: any tenant when no tenant policy is configured,
    /// otherwise only the configured ones.
    pub fn knows_tenant(&self, tenant: &str) -> bool {
        self.snapshot.tenants.is_empty() || self.snapshot.tenants.iter().any(|t| t.name == tenant)
    }

    pub fn tenant_names(&self) -> Vec<String> {
        self.snapshot.tenants.iter().map(|t| t.name.clone()).collect()
    }

    fn cluster_of(pool: &Pool) -> String {
        format!("{}/{}", pool.provider, pool.region)
    }
}

/// GPU and CPU thousandths held per (pool, node index) by active attempts. Placements the API
/// cannot read (another shape) are skipped: the views are for people, not for scheduling.
pub fn usage_by_node(active: &[ActiveAttempt]) -> HashMap<(PoolId, u32), (u64, u64)> {
    let mut used: HashMap<(PoolId, u32), (u64, u64)> = HashMap::new();
    for attempt in active {
        let Ok(placement) = serde_json::from_value::<Placement>(attempt.attempt.placement.clone()) else {
            continue;
        };
        for node in &placement.nodes {
            let entry = used.entry((placement.pool, node.node)).or_default();
            entry.0 += node.gpus.milli();
            entry.1 += u64::from(node.cpus_milli);
        }
    }
    used
}

/// `GET /v1/clusters`.
pub(crate) async fn clusters(State(state): State<AppState>) -> Result<Json<Vec<ClusterView>>, ApiError> {
    let used = usage_by_node(&state.store.active_attempts().await?);
    let mut clusters: BTreeMap<String, ClusterView> = BTreeMap::new();
    for pool in &state.fleet.snapshot.pools {
        let name = Fleet::cluster_of(pool);
        let view = clusters.entry(name.clone()).or_insert_with(|| ClusterView {
            name,
            provider: pool.provider.clone(),
            region: pool.region.clone(),
            driver: state.fleet.driver.clone(),
            pools: 0,
            nodes: 0,
            gpus: 0,
            gpus_used_milli: 0,
        });
        view.pools += 1;
        view.nodes += pool.nodes.len() as u32;
        view.gpus += u64::from(pool.node_type.gpus) * pool.nodes.len() as u64;
        view.gpus_used_milli +=
            (0..pool.nodes.len() as u32).filter_map(|i| used.get(&(pool.id, i))).map(|(g, _)| g).sum::<u64>();
    }
    Ok(Json(clusters.into_values().collect()))
}

/// `GET /v1/nodes?cluster=C`.
pub(crate) async fn nodes(
    State(state): State<AppState>,
    Query(query): Query<NodeQuery>,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    if let Some(cluster) = &query.cluster
        && !state.fleet.snapshot.pools.iter().any(|p| &Fleet::cluster_of(p) == cluster)
    {
        return Err(ApiError::bad_request("cluster", format!("unknown cluster `{cluster}`: see /v1/clusters")));
    }
    let used = usage_by_node(&state.store.active_attempts().await?);
    let mut out = Vec::new();
    for pool in &state.fleet.snapshot.pools {
        let cluster = Fleet::cluster_of(pool);
        if query.cluster.as_ref().is_some_and(|c| c != &cluster) {
            continue;
        }
        for (i, node) in pool.nodes.iter().enumerate() {
            let (gpus_used, cpus_used) = used.get(&(pool.id, i as u32)).copied().unwrap_or_default();
            out.push(NodeView {
                name: node.name.clone(),
                cluster: cluster.clone(),
                pool: pool.name.clone(),
                zone: pool.zone.clone(),
                capacity: pool.capacity.as_str().to_string(),
                node_type: pool.node_type.name.clone(),
                gpu: pool.node_type.gpu.map(|g| g.name().to_string()),
                gpus: pool.node_type.gpus,
                gpus_used_milli: gpus_used,
                vcpus: pool.node_type.vcpus,
                cpus_used_milli: cpus_used,
                schedulable: node.schedulable,
            });
        }
    }
    Ok(Json(out))
}

/// `GET /v1/contracts`.
pub(crate) async fn contracts(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.fleet.contracts.clone())
}
