//! The fleet as the API shows it: clusters and their nodes (asked of each cluster's driver, with
//! what active attempts hold), the contract portfolio, and the tenants the server knows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use cumulo_driver::{Capacity, Driver};
use cumulo_store::ActiveAttempt;
use cumulo_types::CapacityKind;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::wire::{ClusterView, NodeQuery, NodeView};

/// One execution endpoint and the driver that reaches it.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub capacity: CapacityKind,
    /// The portfolio contract a contract cluster holds capacity under, and its node type.
    pub contract: Option<String>,
    pub node_type: Option<String>,
    pub driver: Arc<dyn Driver>,
}

/// What the server runs on: its clusters, the contracts, the tenants.
#[derive(Clone, Default)]
pub struct Fleet {
    pub clusters: Vec<Cluster>,
    /// Tenants jobs and tokens may name; empty accepts any tenant.
    pub tenants: Vec<String>,
    /// The contract portfolio as JSON (the `portfolio` crate's shape).
    pub contracts: serde_json::Value,
    /// The same portfolio, for burn-down against metered usage; `None` when the server has none.
    pub portfolio: Option<Arc<cumulo_portfolio::Portfolio>>,
    /// The fleet file's monthly budgets by tenant (one stored over the API overrides).
    pub budgets: std::collections::BTreeMap<String, cumulo_store::budget::Budget>,
}

impl Fleet {
    /// Whether jobs may be submitted for `tenant`.
    pub fn knows_tenant(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants.clone()
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// The fields of a stored placement the views need (the reconcile loop stores more).
#[derive(Deserialize)]
struct PlacementView {
    cluster: String,
    #[serde(default)]
    nodes: Vec<PlacedNodeView>,
}

#[derive(Deserialize)]
struct PlacedNodeView {
    node: String,
    #[serde(default)]
    gpus: Vec<u32>,
    #[serde(default)]
    gpu_milli: u32,
    #[serde(default)]
    cpus_milli: u32,
}

/// The cluster an attempt's stored placement names, when it names one.
pub fn placement_cluster(placement: &serde_json::Value) -> Option<String> {
    placement.get("cluster").and_then(|c| c.as_str()).map(str::to_string)
}

/// GPU and CPU thousandths held per (cluster, node) by active attempts. Placements of another
/// shape are skipped: these views are for people, not for scheduling.
pub fn usage_by_node(active: &[ActiveAttempt]) -> HashMap<(String, String), (u64, u64)> {
    let mut used: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for attempt in active {
        let Ok(placement) = serde_json::from_value::<PlacementView>(attempt.attempt.placement.clone()) else {
            continue;
        };
        for node in placement.nodes {
            let gpus = if node.gpu_milli > 0 { u64::from(node.gpu_milli) } else { node.gpus.len() as u64 * 1000 };
            let entry = used.entry((placement.cluster.clone(), node.node)).or_default();
            entry.0 += gpus;
            entry.1 += u64::from(node.cpus_milli);
        }
    }
    used
}

/// Each cluster with what its driver discovered now (`Err` text when it did not answer).
pub async fn discover_all(fleet: &Fleet) -> Vec<(&Cluster, Result<Capacity, String>)> {
    let mut out = Vec::with_capacity(fleet.clusters.len());
    for cluster in &fleet.clusters {
        out.push((cluster, cluster.driver.discover().await.map_err(|e| e.to_string())));
    }
    out
}

/// `GET /v1/clusters`.
pub(crate) async fn clusters(State(state): State<AppState>) -> Result<Json<Vec<ClusterView>>, ApiError> {
    let used = usage_by_node(&state.store.active_attempts().await?);
    let mut out = Vec::new();
    for (cluster, capacity) in discover_all(&state.fleet).await {
        let capabilities = cluster.driver.capabilities();
        let mut view = ClusterView {
            name: cluster.name.clone(),
            provider: cluster.provider.clone(),
            region: cluster.region.clone(),
            capacity: cluster.capacity.as_str().to_string(),
            driver: capabilities.kind.clone(),
            simulated: capabilities.simulated,
            status: "up".to_string(),
            nodes: 0,
            nodes_up: 0,
            gpus: 0,
            gpus_used_milli: 0,
            vcpus: 0,
        };
        match capacity {
            Ok(capacity) => {
                view.simulated |= capacity.simulated;
                view.nodes = capacity.nodes.len() as u32;
                view.nodes_up =
                    capacity.nodes.iter().filter(|n| n.state == cumulo_driver::NodeState::Up).count() as u32;
                view.gpus = capacity.total_gpus();
                view.vcpus = capacity.total_vcpus();
                view.gpus_used_milli = capacity
                    .nodes
                    .iter()
                    .filter_map(|n| used.get(&(cluster.name.clone(), n.name.clone())))
                    .map(|(g, _)| g)
                    .sum();
            }
            Err(reason) => view.status = format!("unreachable: {reason}"),
        }
        out.push(view);
    }
    Ok(Json(out))
}

/// `GET /v1/nodes?cluster=C`.
pub(crate) async fn nodes(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NodeQuery>,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    // An empty `cluster` is no filter, as in every other query.
    let query = NodeQuery { cluster: query.cluster.filter(|c| !c.is_empty()) };
    if let Some(name) = &query.cluster
        && state.fleet.cluster(name).is_none()
    {
        let known: Vec<&str> = state.fleet.clusters.iter().map(|c| c.name.as_str()).collect();
        return Err(ApiError::bad_request(
            "cluster",
            format!("unknown cluster `{name}`: known clusters are {}", known.join(", ")),
        ));
    }
    let used = usage_by_node(&state.store.active_attempts().await?);
    let mut out = Vec::new();
    for (cluster, capacity) in discover_all(&state.fleet).await {
        if query.cluster.as_ref().is_some_and(|c| c != &cluster.name) {
            continue;
        }
        let Ok(capacity) = capacity else { continue };
        for node in &capacity.nodes {
            let (gpus_used, cpus_used) =
                used.get(&(cluster.name.clone(), node.name.clone())).copied().unwrap_or_default();
            out.push(NodeView {
                name: node.name.clone(),
                cluster: cluster.name.clone(),
                zone: node.zone.clone().unwrap_or_default(),
                state: format!("{:?}", node.state).to_lowercase(),
                simulated: capacity.simulated,
                gpu: node.gpu.map(|g| g.name().to_string()).or_else(|| node.gpu_name.clone()),
                gpus: node.gpus,
                gpus_used_milli: gpus_used,
                vcpus: node.vcpus,
                cpus_used_milli: cpus_used,
                memory_mib: node.memory_mib,
            });
        }
    }
    Ok(Json(out))
}

/// `GET /v1/contracts`: the portfolio, with `deliveries`: each contract capacity the fleet's
/// clusters hold, what its ramp has delivered by now against the nodes they discovered (the
/// reconcile loop schedules at most the delivered ones), and the delivery shortfall.
pub(crate) async fn contracts(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut out = state.fleet.contracts.clone();
    if let (Some(portfolio), Some(object)) = (&state.fleet.portfolio, out.as_object_mut()) {
        let deliveries = deliveries(&state.fleet, portfolio, chrono::Utc::now()).await;
        object.insert("deliveries".into(), serde_json::to_value(deliveries).unwrap_or_default());
    }
    Json(out)
}

/// One contract capacity (contract, region, node type) held by the fleet's clusters.
#[derive(serde::Serialize)]
pub struct DeliveryView {
    pub clusters: Vec<String>,
    #[serde(flatten)]
    pub delivery: cumulo_portfolio::Delivery,
    pub schedulable: u32,
    pub shortfall: u32,
    /// Some of the clusters are simulated (their nodes are not real capacity).
    pub simulated: bool,
}

/// Deliveries of the contract clusters at `at`, from what their drivers discover now (up nodes;
/// an unreachable cluster counts none).
pub async fn deliveries(
    fleet: &Fleet,
    portfolio: &cumulo_portfolio::Portfolio,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<DeliveryView> {
    /// The clusters holding one contract capacity, their up nodes, whether any is simulated.
    #[derive(Default)]
    struct Held {
        clusters: Vec<String>,
        discovered: u32,
        simulated: bool,
    }
    let mut held: BTreeMap<(String, String, String), Held> = BTreeMap::new();
    for (cluster, capacity) in discover_all(fleet).await {
        let (Some(contract), Some(node_type)) = (&cluster.contract, &cluster.node_type) else { continue };
        let up = capacity
            .map(|c| c.nodes.iter().filter(|n| n.state == cumulo_driver::NodeState::Up).count() as u32)
            .unwrap_or(0);
        let entry = held.entry((contract.clone(), cluster.region.clone(), node_type.clone())).or_default();
        entry.clusters.push(cluster.name.clone());
        entry.discovered += up;
        entry.simulated |= cluster.driver.capabilities().simulated;
    }
    held.into_iter()
        .map(|((contract, region, node_type), Held { clusters, discovered, simulated })| {
            let delivery = portfolio.delivery(&contract, &region, &node_type, discovered, at);
            DeliveryView {
                clusters,
                schedulable: delivery.schedulable(),
                shortfall: delivery.shortfall(),
                delivery,
                simulated,
            }
        })
        .collect()
}

/// `GET /v1/contracts/burn-down`: per contract, committed, consumed (metered usage under it, all
/// tenants), the schedule, on or behind it, and the projected shortfall or overrun at term end with
/// the trailing week's utilisation carried forward.
pub(crate) async fn burn_down(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BurnDownQuery>,
) -> Result<Json<cumulo_portfolio::BurnDown>, ApiError> {
    let at = match query.at.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => cumulo_ledger::parse_time("at", text).map_err(|e| ApiError::bad_request("at", e.to_string()))?,
        None => chrono::Utc::now(),
    };
    let portfolio = state
        .fleet
        .portfolio
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server has no contract portfolio".to_string()))?;
    let records = state.store.usage_between(None, None).await?;
    Ok(Json(cumulo_ledger::burn_down(&portfolio, records.iter(), at)))
}

/// `?at=2026-12-31`: the instant of the burn-down (default now).
#[derive(serde::Deserialize)]
pub(crate) struct BurnDownQuery {
    at: Option<String>,
}

/// GPUs per (provider, GPU model): (total, thousandths held), for `/metrics`.
pub async fn gpu_use_by_provider_and_model(
    state: &AppState,
) -> Result<BTreeMap<(String, String), (u64, u64)>, ApiError> {
    let used = usage_by_node(&state.store.active_attempts().await?);
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (cluster, capacity) in discover_all(&state.fleet).await {
        let Ok(capacity) = capacity else { continue };
        for node in capacity.nodes.iter().filter(|n| n.gpus > 0) {
            let model = node.gpu.map(|g| g.name().to_string()).or_else(|| node.gpu_name.clone()).unwrap_or_default();
            let entry = out.entry((cluster.provider.clone(), model)).or_default();
            entry.0 += u64::from(node.gpus);
            entry.1 += used.get(&(cluster.name.clone(), node.name.clone())).map(|(g, _)| *g).unwrap_or(0);
        }
    }
    Ok(out)
}
