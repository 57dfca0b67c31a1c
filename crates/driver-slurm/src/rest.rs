//! slurmrestd (openapi v0.0.38) with JWT: submit, list, cancel, nodes.

use std::time::Duration;

use cumulo_driver::{Error, NodeInfo, Timestamp};
use serde_json::{Value, json};

use crate::model::{SlurmJob, expand_hostlist, split_wait_status};

/// Where slurmrestd listens and who Cumulo is to it.
#[derive(Clone, Debug)]
pub struct RestEndpoint {
    /// `http://127.0.0.1:6820`
    pub url: String,
    pub user: String,
    /// A JWT from `scontrol token username=<user>`.
    pub token: String,
    /// The openapi plugin version in paths, `v0.0.38` by default.
    pub version: String,
}

impl RestEndpoint {
    pub fn new(url: &str, user: &str, token: &str) -> RestEndpoint {
        RestEndpoint {
            url: url.trim_end_matches('/').to_string(),
            user: user.to_string(),
            token: token.to_string(),
            version: "v0.0.38".to_string(),
        }
    }
}

pub(crate) struct Rest {
    endpoint: RestEndpoint,
    http: reqwest::Client,
}

const ENGINE: &str = "slurmrestd";

impl Rest {
    pub(crate) fn new(endpoint: RestEndpoint) -> Result<Rest, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Protocol { engine: ENGINE, what: "http client".into(), reason: e.to_string() })?;
        Ok(Rest { endpoint, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/slurm/{}/{path}", self.endpoint.url, self.endpoint.version)
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        Error::Unreachable { engine: ENGINE, endpoint: self.endpoint.url.clone(), reason: e.to_string() }
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, Error> {
        let resp = req
            .header("X-SLURM-USER-NAME", &self.endpoint.user)
            .header("X-SLURM-USER-TOKEN", &self.endpoint.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            engine: ENGINE,
            what: what.to_string(),
            reason: format!("http {status}: {e}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])),
        })?;
        // Error 2042 (job held) comes with a successful submission of a held job: not a failure.
        let errors: Vec<&Value> = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter(|e| {
                        let code = e.get("error_number").or_else(|| e.get("error_code")).and_then(Value::as_i64);
                        code != Some(2042)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !errors.is_empty() {
            let reason = errors
                .iter()
                .map(|e| {
                    let text = e.get("description").or_else(|| e.get("error")).and_then(Value::as_str).unwrap_or("?");
                    match e.get("error_number").or_else(|| e.get("error_code")).and_then(Value::as_i64) {
                        Some(n) => format!("{text} (error {n})"),
                        None => text.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            // slurmrestd answers, but slurmctld behind it does not: transient, like a refused
            // connection. A read-only list that fails ("Failed while looking for jobs (error -1)")
            // fails for the same reason: its request cannot be refused.
            if what.ends_with(" list")
                || reason.contains("Unable to contact slurm controller")
                || reason.contains("Socket timed out")
                || reason.contains("Connection refused")
            {
                return Err(Error::Unreachable {
                    engine: ENGINE,
                    endpoint: self.endpoint.url.clone(),
                    reason: format!("slurmctld: {reason}"),
                });
            }
            return Err(Error::Rejected { engine: ENGINE, what: what.to_string(), reason });
        }
        if status.is_server_error() {
            return Err(Error::Unreachable {
                engine: ENGINE,
                endpoint: self.endpoint.url.clone(),
                reason: format!("http {status} for {what}"),
            });
        }
        if !status.is_success() {
            return Err(Error::Rejected { engine: ENGINE, what: what.to_string(), reason: format!("http {status}") });
        }
        Ok(body)
    }

    pub(crate) async fn submit(&self, job: Value, script: String) -> Result<u64, Error> {
        let what = format!("job submission {}", job.get("name").and_then(Value::as_str).unwrap_or("?"));
        let body = self
            .send(&what, self.http.post(self.url("job/submit")).json(&json!({"job": job, "script": script})))
            .await?;
        body.get("job_id").and_then(Value::as_u64).ok_or_else(|| Error::Protocol {
            engine: ENGINE,
            what,
            reason: "no job_id in the answer".into(),
        })
    }

    pub(crate) async fn jobs(&self) -> Result<Vec<SlurmJob>, Error> {
        // slurmrestd renders about 3 KB of JSON per job on one thread: 24 s for 12,800 jobs here.
        let list = self.http.get(self.url("jobs")).timeout(Duration::from_secs(120));
        let body = self.send("job list", list).await?;
        let jobs = body.get("jobs").and_then(Value::as_array).ok_or_else(|| Error::Protocol {
            engine: ENGINE,
            what: "job list".into(),
            reason: "no jobs array".into(),
        })?;
        Ok(jobs.iter().filter_map(job_from_json).collect())
    }

    pub(crate) async fn cancel(&self, job_id: u64) -> Result<(), Error> {
        match self.send(&format!("cancel of job {job_id}"), self.http.delete(self.url(&format!("job/{job_id}")))).await
        {
            Ok(_) => Ok(()),
            // Already finished or purged: cancel is idempotent.
            Err(Error::Rejected { reason, .. })
                if reason.contains("already completed")
                    || reason.contains("Invalid job id")
                    || reason.contains("2017") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let body = self.send("node list", self.http.get(self.url("nodes"))).await?;
        let nodes = body.get("nodes").and_then(Value::as_array).ok_or_else(|| Error::Protocol {
            engine: ENGINE,
            what: "node list".into(),
            reason: "no nodes array".into(),
        })?;
        Ok(nodes
            .iter()
            .map(|n| {
                let s = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let flags: Vec<String> = n
                    .get("state_flags")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                let partitions: Vec<String> = n
                    .get("partitions")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                crate::node_info(
                    &s("name"),
                    n.get("cpus").and_then(Value::as_u64).unwrap_or(0),
                    n.get("real_memory").and_then(Value::as_u64).unwrap_or(0),
                    &s("gres"),
                    &s("state"),
                    &flags,
                    &s("active_features"),
                    &partitions.join(","),
                )
            })
            .collect())
    }
}

fn epoch(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_i64).filter(|t| *t > 0).and_then(|t| chrono::DateTime::from_timestamp(t, 0))
}

/// Reads one job of `GET /jobs`; jobs without an id are skipped.
pub fn job_from_json(j: &Value) -> Option<SlurmJob> {
    let (exit_code, signal) = match j.get("exit_code").and_then(Value::as_i64) {
        Some(status) => split_wait_status(status),
        None => (None, None),
    };
    Some(SlurmJob {
        job_id: j.get("job_id")?.as_u64()?,
        name: j.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
        state: j.get("job_state").and_then(Value::as_str).unwrap_or("UNKNOWN").to_string(),
        exit_code,
        signal,
        start: epoch(j.get("start_time")),
        end: epoch(j.get("end_time")),
        nodes: expand_hostlist(j.get("nodes").and_then(Value::as_str).unwrap_or("")),
        reason: j.get("state_reason").and_then(Value::as_str).unwrap_or("").to_string(),
        restarts: j.get("restart_cnt").and_then(Value::as_u64).unwrap_or(0) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_v0_0_38_job() {
        let j = json!({"job_id": 2, "name": "cumulo-2.1", "job_state": "FAILED", "exit_code": 768,
            "start_time": 1795669530, "end_time": 1795669531, "nodes": "node[003,005]", "state_reason": "NonZeroExitCode"});
        let job = job_from_json(&j).unwrap();
        assert_eq!(job.exit_code, Some(3));
        assert_eq!(job.nodes, ["node003", "node005"]);
        assert_eq!(job.end.unwrap().timestamp(), 1795669531);
        assert!(job_from_json(&json!({"name": "x"})).is_none());
    }
}
