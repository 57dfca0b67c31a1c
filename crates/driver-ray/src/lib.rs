//! A Ray cluster as a Cumulo cluster, through Ray's Jobs REST API on the dashboard port.
//!
//! Each attempt is one Ray job whose `submission_id` is `cumulo-<deployment>-<job>.<attempt>`
//! ([`RayDriver::with_deployment`], [`cumulo_driver::EngineNames`]): Ray refuses a
//! second submission with the same id, which makes launch idempotent across Cumulo restarts. The
//! entrypoint runs the job's `setup` then `run` under bash on a node Ray picks, with the `CUMULO_*`
//! environment in the job's runtime env; Ray sets `CUDA_VISIBLE_DEVICES` for the GPUs it gives the
//! entrypoint. A gang is one entrypoint that spreads over the cluster with Ray itself, so
//! `CUMULO_NUM_NODES` is the gang size and `CUMULO_NODE_RANK` is 0.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use cumulo_driver::{
    AttemptId, AttemptState, Capabilities, Capacity, Driver, EngineNames, LaunchOutcome, LaunchRequest, LogChunk,
    NodeInfo, NodeState, NodeStatus, Observation, Timestamp, shell_quote,
};
use serde_json::{Value, json};

const ENGINE: &str = "ray";

/// Errors setting up a Ray driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid ray dashboard url `{0}`: expected http://host:port")]
    Url(String),
    #[error(transparent)]
    Driver(#[from] cumulo_driver::Error),
}

/// A Ray cluster.
pub struct RayDriver {
    url: String,
    http: reqwest::Client,
    names: EngineNames,
}

impl RayDriver {
    /// `url` is the dashboard, e.g. `http://127.0.0.1:8265`.
    pub fn new(url: &str) -> Result<RayDriver, Error> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Url(url));
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| {
            cumulo_driver::Error::Protocol { engine: ENGINE, what: "http client".into(), reason: e.to_string() }
        })?;
        Ok(RayDriver { url, http, names: EngineNames::default() })
    }

    /// Puts `deployment` (the store's id) in every submission id, so that two Cumulo databases
    /// sharing this Ray cluster never take each other's jobs for their own.
    pub fn with_deployment(mut self, deployment: Option<&str>) -> Result<RayDriver, Error> {
        self.names = EngineNames::new(deployment)?;
        Ok(self)
    }

    fn unreachable(&self, e: reqwest::Error) -> cumulo_driver::Error {
        cumulo_driver::Error::Unreachable { engine: ENGINE, endpoint: self.url.clone(), reason: e.to_string() }
    }

    /// Sends a request; answers the HTTP status, the body as JSON (`Null` when empty or not
    /// JSON) and as text, whatever the status.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value, String), cumulo_driver::Error> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, body, text))
    }

    /// Like `send_raw`, with a 5xx answer as a transient error.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value, String), cumulo_driver::Error> {
        let (status, body, text) = self.send_raw(req).await?;
        if status >= 500 {
            return Err(cumulo_driver::Error::Unreachable {
                engine: ENGINE,
                endpoint: self.url.clone(),
                reason: format!("http {status}: {}", text.chars().take(200).collect::<String>()),
            });
        }
        Ok((status, body, text))
    }

    async fn jobs(&self) -> Result<HashMap<AttemptId, Value>, cumulo_driver::Error> {
        let (status, body, text) = self.send(self.http.get(format!("{}/api/jobs/", self.url))).await?;
        let list = body.as_array().ok_or_else(|| cumulo_driver::Error::Protocol {
            engine: ENGINE,
            what: "job list".into(),
            reason: format!("http {status}: expected a JSON array, got {}", text.chars().take(200).collect::<String>()),
        })?;
        let mut by_attempt = HashMap::with_capacity(list.len());
        for job in list {
            if let Some(a) = job.get("submission_id").and_then(Value::as_str).and_then(|id| self.names.parse(id)) {
                by_attempt.insert(a, job.clone());
            }
        }
        Ok(by_attempt)
    }
}

fn millis(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_i64).filter(|t| *t > 0).and_then(chrono::DateTime::from_timestamp_millis)
}

/// Ray reports a failed entrypoint's exit code in `driver_exit_code` (newer versions) or only in
/// the message ("... failed with exit code 3").
fn exit_code_of(job: &Value) -> Option<i32> {
    if let Some(code) = job.get("driver_exit_code").and_then(Value::as_i64) {
        return Some(code as i32);
    }
    let message = job.get("message").and_then(Value::as_str)?;
    let rest = &message[message.find("exit code")? + "exit code".len()..];
    rest.trim_start().split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok()
}

/// Maps a Ray job's details to Cumulo's attempt state.
pub fn attempt_state(job: &Value, now: Timestamp) -> AttemptState {
    let status = job.get("status").and_then(Value::as_str).unwrap_or("");
    let start = millis(job.get("start_time"));
    let end = millis(job.get("end_time"));
    match status {
        "PENDING" => AttemptState::Pending,
        "RUNNING" => AttemptState::Running { started_at: start.unwrap_or(now) },
        "SUCCEEDED" => AttemptState::Exited { code: 0, finished_at: end.unwrap_or(now) },
        "STOPPED" => AttemptState::Cancelled,
        "FAILED" => match exit_code_of(job) {
            Some(code) if code != 0 => AttemptState::Exited { code, finished_at: end.unwrap_or(now) },
            _ => {
                let message = job.get("message").and_then(Value::as_str).unwrap_or("failed");
                let kind = job.get("error_type").and_then(Value::as_str).unwrap_or("");
                let lost = kind.contains("NODE") || message.contains("node") && message.contains("died");
                let reason = format!("ray job failed: {message}");
                if lost { AttemptState::Lost { reason } } else { AttemptState::Failed { reason } }
            }
        },
        other => AttemptState::Failed { reason: format!("ray job in unexpected status `{other}`") },
    }
}

/// The body of `POST /api/jobs/` for a request, named by `names`.
pub fn submission(request: &LaunchRequest, names: &EngineNames) -> Value {
    let mut env: BTreeMap<String, String> = request.environment(0);
    // Ray sets CUDA_VISIBLE_DEVICES for the GPUs it grants the entrypoint.
    env.remove(cumulo_driver::ENV_CUDA_VISIBLE_DEVICES);
    let gpus = request
        .job
        .resources
        .first()
        .and_then(|r| r.accelerators.as_ref())
        .map(|a| f64::from(a.per_node.0) / 1000.0)
        .unwrap_or(0.0);
    let cpus = request.job.resources.first().map(|r| f64::from(r.cpus_milli) / 1000.0).unwrap_or(0.0);
    let mut runtime_env = json!({"env_vars": env});
    if let Some(image) = &request.job.image {
        // Ray runs the entrypoint in this container image (`runtime_env.image_uri`).
        runtime_env["image_uri"] = json!(image);
    }
    json!({
        "submission_id": names.name(request.attempt),
        "entrypoint": format!("bash -c {}", shell_quote(&request.node_script())),
        "runtime_env": runtime_env,
        "metadata": {
            "cumulo_job": request.attempt.job.to_string(),
            "cumulo_attempt": request.attempt.attempt.to_string(),
            "cumulo_name": request.job.name,
        },
        "entrypoint_num_cpus": cpus,
        "entrypoint_num_gpus": gpus,
    })
}

#[async_trait]
impl Driver for RayDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "ray".into(),
            simulated: false,
            gangs: false,
            node_selection: false,
            gpu_indices: false,
            logs: true,
            max_nodes_per_attempt: None,
            // Ray's `runtime_env` `image_uri` runs the entrypoint in the image.
            container_images: true,
            // a job's upload is not passed to Ray (no `working_dir`): jobs with one go elsewhere.
            uploads: false,
        }
    }

    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        let (status, body, _) = self.send(self.http.get(format!("{}/api/v0/nodes?limit=10000", self.url))).await?;
        let nodes = body
            .pointer("/data/result/result")
            .and_then(Value::as_array)
            .ok_or_else(|| cumulo_driver::Error::Protocol {
                engine: ENGINE,
                what: "node list".into(),
                reason: format!("http {status}: no data.result.result array"),
            })?
            .iter()
            .map(|n| {
                let res = |k: &str| n.pointer(&format!("/resources_total/{k}")).and_then(Value::as_f64).unwrap_or(0.0);
                let mut labels = BTreeMap::new();
                if let Some(obj) = n.get("labels").and_then(Value::as_object) {
                    for (k, v) in obj {
                        labels.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                    }
                }
                if n.get("is_head_node").and_then(Value::as_bool) == Some(true) {
                    labels.insert("ray-head".into(), "true".into());
                }
                NodeInfo {
                    name: n.get("node_id").and_then(Value::as_str).unwrap_or("").to_string(),
                    gpus: res("GPU") as u32,
                    vcpus: res("CPU") as u32,
                    memory_mib: (res("memory") / 1_048_576.0) as u64,
                    state: if n.get("state").and_then(Value::as_str) == Some("ALIVE") {
                        NodeState::Up
                    } else {
                        NodeState::Down
                    },
                    labels,
                    ..NodeInfo::default()
                }
            })
            .collect();
        Ok(Capacity { nodes, simulated: false })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        request.validate()?;
        let id = self.names.name(request.attempt);
        let (status, body, text) = self
            .send_raw(self.http.post(format!("{}/api/jobs/", self.url)).json(&submission(request, &self.names)))
            .await?;
        match status {
            200 => Ok(LaunchOutcome {
                engine_id: body.get("submission_id").and_then(Value::as_str).unwrap_or(&id).to_string(),
                newly_started: true,
            }),
            // Ray refuses a second submission with the same id (Ray 2.60 answers 500 with a
            // Python traceback ending in "already exists"): the attempt already exists.
            _ if text.contains(&format!("submission_id {id} already exists")) => {
                Ok(LaunchOutcome { engine_id: id, newly_started: false })
            }
            500.. => Err(cumulo_driver::Error::Unreachable {
                engine: ENGINE,
                endpoint: self.url.clone(),
                reason: format!("http {status}: {}", text.chars().take(200).collect::<String>()),
            }),
            _ => Err(cumulo_driver::Error::Rejected {
                engine: ENGINE,
                what: format!("attempt {}", request.attempt),
                reason: format!("http {status}: {}", text.chars().take(300).collect::<String>()),
            }),
        }
    }

    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        let url = format!("{}/api/jobs/{}/stop", self.url, self.names.name(attempt));
        let (status, _, text) = self.send(self.http.post(url)).await?;
        match status {
            200 | 404 => Ok(()),
            _ => Err(cumulo_driver::Error::Rejected {
                engine: ENGINE,
                what: format!("cancel of attempt {attempt}"),
                reason: format!("http {status}: {}", text.chars().take(300).collect::<String>()),
            }),
        }
    }

    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        let jobs = self.jobs().await?;
        let now = chrono::Utc::now();
        Ok(attempts
            .iter()
            .map(|a| match jobs.get(a) {
                None => Observation::unknown(*a, now),
                Some(job) => {
                    let state = attempt_state(job, now);
                    let node = NodeStatus {
                        rank: 0,
                        node: job.get("driver_node_id").and_then(Value::as_str).unwrap_or("").to_string(),
                        started_at: millis(job.get("start_time")),
                        finished_at: millis(job.get("end_time")),
                        exit_code: match &state {
                            AttemptState::Exited { code, .. } => Some(*code),
                            _ => None,
                        },
                    };
                    Observation { attempt: *a, state, nodes: vec![node], observed_at: now }
                }
            })
            .collect())
    }

    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        if rank != 0 {
            return Err(cumulo_driver::Error::NotFound { attempt, rank });
        }
        let id = self.names.name(attempt);
        let (status, body, _) = self.send(self.http.get(format!("{}/api/jobs/{id}/logs", self.url))).await?;
        if status == 404 {
            return Err(cumulo_driver::Error::NotFound { attempt, rank });
        }
        let logs = body.get("logs").and_then(Value::as_str).unwrap_or("").as_bytes();
        let start = (offset as usize).min(logs.len());
        let (_, job, _) = self.send(self.http.get(format!("{}/api/jobs/{id}", self.url))).await?;
        let complete = attempt_state(&job, chrono::Utc::now()).is_terminal();
        Ok(LogChunk { data: logs[start..].to_vec(), next_offset: logs.len() as u64, complete })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cumulo_driver::{JobId, JobSpec};

    fn now() -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn ray_statuses_map_to_attempt_states() {
        let check = |job: Value, expect: &str| assert_eq!(attempt_state(&job, now()).to_string(), expect);
        check(json!({"status": "PENDING"}), "pending");
        check(json!({"status": "RUNNING", "start_time": 1_700_000_000_000i64}), "running");
        check(json!({"status": "SUCCEEDED"}), "exited 0");
        check(json!({"status": "STOPPED"}), "cancelled");
        check(json!({"status": "FAILED", "driver_exit_code": 3}), "exited 3");
        check(
            json!({"status": "FAILED", "message": "Job entrypoint command failed with exit code 7, last available logs"}),
            "exited 7",
        );
        check(
            json!({"status": "FAILED", "message": "Job supervisor actor died", "error_type": "JOB_SUPERVISOR_ACTOR_DIED"}),
            "failed: ray job failed: Job supervisor actor died",
        );
        check(
            json!({"status": "FAILED", "message": "node died", "error_type": "NODE_DIED"}),
            "lost: ray job failed: node died",
        );
        check(json!({"status": "ODD"}), "failed: ray job in unexpected status `ODD`");
    }

    #[test]
    fn submissions_carry_the_attempt_id_and_environment() {
        let mut job = JobSpec::new("x", "t");
        job.run = Some("python serve.py".into());
        let mut req = LaunchRequest::new(cumulo_driver::AttemptId { job: JobId(5), attempt: 2 }, job);
        req.checkpoint_dir = Some("/ckpt".into());
        let body = submission(&req, &EngineNames::default());
        assert_eq!(body["submission_id"], "cumulo-5.2");
        let named = EngineNames::new(Some("0a1b2c3d")).unwrap();
        assert_eq!(submission(&req, &named)["submission_id"], "cumulo-0a1b2c3d-5.2");
        assert_eq!(body["runtime_env"]["env_vars"]["CUMULO_CHECKPOINT_DIR"], "/ckpt");
        assert!(body["runtime_env"]["env_vars"].get("CUDA_VISIBLE_DEVICES").is_none());
        assert!(body["entrypoint"].as_str().unwrap().starts_with("bash -c 'python serve.py"));
        assert_eq!(body["entrypoint_num_cpus"], 1.0);
        assert!(body["runtime_env"].get("image_uri").is_none(), "no image asked, none set");
    }

    #[test]
    fn secrets_go_to_runtime_env_env_vars_not_the_entrypoint() {
        let mut job = JobSpec::new("x", "t");
        job.run = Some("python serve.py".into());
        let mut req = LaunchRequest::new(cumulo_driver::AttemptId { job: JobId(5), attempt: 1 }, job);
        req.secrets.0.insert("HF_TOKEN".into(), "hf_value_123".into());
        let body = submission(&req, &EngineNames::default());
        assert_eq!(body["runtime_env"]["env_vars"]["HF_TOKEN"], "hf_value_123");
        assert!(!body["entrypoint"].as_str().unwrap().contains("hf_value_123"), "the command line holds no secret");
    }

    #[test]
    fn a_container_image_goes_to_runtime_env_image_uri() {
        let mut job = JobSpec::new("x", "t");
        job.image = Some("vllm/vllm-openai:v0.10.0".into());
        let req = LaunchRequest::new(cumulo_driver::AttemptId { job: JobId(5), attempt: 1 }, job);
        let body = submission(&req, &EngineNames::default());
        assert_eq!(
            body["runtime_env"]["image_uri"], "vllm/vllm-openai:v0.10.0",
            "SkyPilot's image_id: docker:IMAGE runs in that image on Ray"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        assert_eq!(
            RayDriver::new("127.0.0.1:8265").err().unwrap().to_string(),
            "invalid ray dashboard url `127.0.0.1:8265`: expected http://host:port"
        );
    }
}
