//! The JSON shapes of requests and answers, shared by the server and the [`crate::client`].

use cumulo_store::{EventRecord, JobRecord, Role};
use cumulo_types::{JobId, JobState};
use serde::{Deserialize, Serialize};

/// The answer to a submit: the job's id, and whether this request created it (false when the
/// `Idempotency-Key` matched an earlier submit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub id: JobId,
    pub created: bool,
}

/// `POST /v1/jobs:batch` with a JSON body: job files as objects (the YAML schema in JSON) or as
/// YAML text.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BatchRequest {
    pub jobs: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub jobs: Vec<SubmitResponse>,
}

/// Query of `GET /v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `training`, `inference`, `batch` or `sandbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Text the job's name contains (ASCII case ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Jobs with an attempt on this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `oldest` (ascending ids after `after`, the default) or `newest` (descending ids below `after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// One page of jobs; pass `next` as `after` to get the next page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
    pub next: Option<JobId>,
}

/// `GET /v1/jobs/{id}`: the job with its attempts (each with its placement) and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobRecord,
    #[serde(default)]
    pub events: Vec<EventRecord>,
}

/// `POST /v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub tenant: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A new token: the secret appears here once and is never shown again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    pub tenant: String,
    pub role: Role,
    pub name: String,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub tenant: String,
    pub role: Role,
    pub name: String,
}

/// A cluster: one execution endpoint reached through one driver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    pub provider: String,
    pub region: String,
    /// How its capacity is held: `contract`, `on-demand` or `spot`.
    pub capacity: String,
    /// The driver kind: `local`, `slurm`, `ray` or `simulated`.
    pub driver: String,
    /// True when nothing real runs there.
    pub simulated: bool,
    /// `up`, or `unreachable: REASON` when its driver did not answer.
    pub status: String,
    pub nodes: u32,
    pub nodes_up: u32,
    pub gpus: u64,
    /// GPUs held by active attempts, in thousandths.
    pub gpus_used_milli: u64,
    pub vcpus: u64,
}

/// A node as its driver reports it, with what active attempts hold on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub cluster: String,
    pub zone: String,
    /// `up`, `drained` or `down`.
    pub state: String,
    pub simulated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    pub gpus: u32,
    pub gpus_used_milli: u64,
    pub vcpus: u32,
    pub cpus_used_milli: u64,
    pub memory_mib: u64,
}

/// Filters of `GET /v1/nodes`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeQuery {
    #[serde(default)]
    pub cluster: Option<String>,
}

/// Query of `GET /v1/jobs/{id}/logs`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogQuery {
    /// Keep the answer open and send new lines until the attempt ends.
    #[serde(default)]
    pub follow: Option<String>,
    /// Which attempt (1, 2, ...); the latest by default.
    #[serde(default)]
    pub attempt: Option<String>,
}

/// Parses a job state from a query parameter, naming the field on failure.
pub fn parse_state(text: &str) -> Result<JobState, crate::ApiError> {
    text.parse::<JobState>().map_err(|_| {
        crate::ApiError::bad_request(
            "state",
            format!("unknown job state `{text}`: expected pending, launching, running, succeeded, failed or cancelled"),
        )
    })
}
