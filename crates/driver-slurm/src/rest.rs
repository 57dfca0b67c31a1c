//! slurmrestd (openapi v0.0.38) with JWT: submit, list, cancel, nodes.
//!
//! Tokens expire (`scontrol token lifespan=`), and slurmrestd 22.05 answers an expired one exactly
//! as it answers when slurmctld is down ("Unspecified error"), so the driver reads the token's
//! `exp` claim itself: an expired token is an error that says so, without a request, and a token
//! that expires within the hour is logged once. With a `token_file` the token is read again
//! whenever the file changes, so a rotation (cron, `scontrol token`) needs no restart.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

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
    /// A file holding the JWT, read again whenever it changes (it then replaces `token`).
    pub token_file: Option<PathBuf>,
}

impl RestEndpoint {
    pub fn new(url: &str, user: &str, token: &str) -> RestEndpoint {
        RestEndpoint {
            url: url.trim_end_matches('/').to_string(),
            user: user.to_string(),
            token: token.to_string(),
            version: "v0.0.38".to_string(),
            token_file: None,
        }
    }

    /// Reads the token from `file` on every call where the file changed since the last read.
    pub fn with_token_file(mut self, file: impl Into<PathBuf>) -> RestEndpoint {
        self.token_file = Some(file.into());
        self
    }
}

#[derive(Default)]
struct Token {
    value: String,
    /// The modification time of `token_file` when `value` was read from it.
    read_at: Option<SystemTime>,
    /// The near expiry of `value` was logged.
    warned: bool,
}

pub(crate) struct Rest {
    endpoint: RestEndpoint,
    http: reqwest::Client,
    token: Mutex<Token>,
}

const ENGINE: &str = "slurmrestd";

impl Rest {
    pub(crate) fn new(endpoint: RestEndpoint) -> Result<Rest, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Protocol { engine: ENGINE, what: "http client".into(), reason: e.to_string() })?;
        let token = Mutex::new(Token { value: endpoint.token.clone(), ..Token::default() });
        Ok(Rest { endpoint, http, token })
    }

    /// The token to send now: re-read from `token_file` when it changed; an error naming the
    /// expiry when the token's `exp` has passed (transient: a fresh token in the file fixes it).
    fn token(&self) -> Result<String, Error> {
        let mut t = self.token.lock().expect("slurmrestd token poisoned");
        if let Some(file) = &self.endpoint.token_file {
            let context = || format!("reading slurmrestd token_file {}", file.display());
            let modified = std::fs::metadata(file).and_then(|m| m.modified()).map_err(|e| Error::io(context(), e))?;
            if t.read_at != Some(modified) || t.value.is_empty() {
                let text = std::fs::read_to_string(file).map_err(|e| Error::io(context(), e))?;
                *t = Token { value: text.trim().to_string(), read_at: Some(modified), warned: false };
            }
        }
        if let Some(exp) = jwt_expiry(&t.value) {
            let now = chrono::Utc::now();
            let renew = match &self.endpoint.token_file {
                Some(f) => {
                    format!("write a fresh one (scontrol token username={}) to {}", self.endpoint.user, f.display())
                }
                None => format!("configure a fresh one (scontrol token username={})", self.endpoint.user),
            };
            if exp <= now {
                return Err(Error::Unreachable {
                    engine: ENGINE,
                    endpoint: self.endpoint.url.clone(),
                    reason: format!(
                        "the JWT of user `{}` expired at {}: {renew}",
                        self.endpoint.user,
                        exp.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                });
            }
            if exp - now < chrono::Duration::hours(1) && !t.warned {
                t.warned = true;
                tracing::warn!(user = %self.endpoint.user, expires = %exp, "slurmrestd token expires within the hour: {renew}");
            }
        }
        Ok(t.value.clone())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/slurm/{}/{path}", self.endpoint.url, self.endpoint.version)
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        Error::Unreachable { engine: ENGINE, endpoint: self.endpoint.url.clone(), reason: e.to_string() }
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, Error> {
        let token = self.token()?;
        let resp = req
            .header("X-SLURM-USER-NAME", &self.endpoint.user)
            .header("X-SLURM-USER-TOKEN", token)
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

/// The `exp` claim of a JWT (`header.payload.signature`, base64url without padding); `None` for
/// anything else.
pub fn jwt_expiry(token: &str) -> Option<Timestamp> {
    let payload = token.split('.').nth(1)?;
    let mut bytes = Vec::with_capacity(payload.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in payload.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    chrono::DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
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

    #[test]
    fn reads_the_expiry_of_a_slurm_jwt() {
        // `scontrol token` output: {"alg":"HS256","typ":"JWT"}.{"exp":1795721612,"iat":1795635212,"sun":"cumulo"}.sig
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTU3MjE2MTIsImlhdCI6MTc5NTYzNTIxMiwic3VuIjoiY3VtdWxvIn0.x";
        assert_eq!(jwt_expiry(token).unwrap().timestamp(), 1_795_721_612);
        assert_eq!(jwt_expiry("not a jwt"), None);
        assert_eq!(jwt_expiry("a.b!c.d"), None);
    }
}
