//! The Slurm command-line tools (`sbatch`, `scontrol`, `scancel`) as a fallback when no slurmrestd
//! endpoint is configured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cumulo_driver::{Error, NodeInfo, Timestamp};
use tokio::io::AsyncWriteExt;

use crate::model::{SlurmJob, expand_hostlist, split_wait_status};

const ENGINE: &str = "slurm cli";

pub(crate) struct Cli {
    /// `SLURM_CONF` for the tools, when not the system default.
    pub(crate) slurm_conf: Option<PathBuf>,
}

impl Cli {
    async fn run(
        &self,
        program: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        stdin: Option<&str>,
    ) -> Result<String, Error> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).envs(env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        if let Some(conf) = &self.slurm_conf {
            cmd.env("SLURM_CONF", conf);
        }
        let mut child = cmd.spawn().map_err(|e| Error::Unreachable {
            engine: ENGINE,
            endpoint: program.to_string(),
            reason: format!("cannot run {program}: {e}"),
        })?;
        let mut input = child.stdin.take();
        if let (Some(text), Some(pipe)) = (stdin, input.as_mut()) {
            pipe.write_all(text.as_bytes()).await.map_err(|e| Error::io(format!("writing to {program}"), e))?;
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| Error::Unreachable {
                engine: ENGINE,
                endpoint: program.into(),
                reason: "no answer in 60 s".into(),
            })?
            .map_err(|e| Error::io(format!("running {program}"), e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            // The controller not answering is transient; anything else is a refusal.
            if stderr.contains("Unable to contact slurm controller") || stderr.contains("Socket timed out") {
                return Err(Error::Unreachable { engine: ENGINE, endpoint: program.into(), reason: stderr });
            }
            return Err(Error::Rejected { engine: ENGINE, what: program.to_string(), reason: stderr });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) async fn submit(
        &self,
        args: Vec<String>,
        env: &BTreeMap<String, String>,
        script: &str,
    ) -> Result<u64, Error> {
        let out = self.run("sbatch", &args, env, Some(script)).await?;
        let id = out.trim().split(';').next().unwrap_or("");
        id.parse().map_err(|_| Error::Protocol {
            engine: ENGINE,
            what: "sbatch".into(),
            reason: format!("unexpected output `{}`", out.trim()),
        })
    }

    /// Every job, from `squeue`: one short text line per job, an order of magnitude cheaper for
    /// slurmctld than slurmrestd's job list.
    pub(crate) async fn jobs(&self) -> Result<Vec<SlurmJob>, Error> {
        let args: Vec<String> =
            ["--noheader", "--states=all", "--Format", SQUEUE_FORMAT].iter().map(|s| s.to_string()).collect();
        let out = self.run("squeue", &args, &BTreeMap::new(), None).await?;
        Ok(out.lines().filter_map(job_from_squeue).collect())
    }

    pub(crate) async fn cancel(&self, job_id: u64) -> Result<(), Error> {
        match self.run("scancel", &[job_id.to_string()], &BTreeMap::new(), None).await {
            Ok(_) => Ok(()),
            Err(Error::Rejected { reason, .. })
                if reason.contains("already completed") || reason.contains("Invalid job id") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let out = self.run("scontrol", &["-o".into(), "show".into(), "node".into()], &BTreeMap::new(), None).await?;
        Ok(out
            .lines()
            .map(parse_kv_line)
            .filter(|kv| kv.contains_key("NodeName"))
            .map(|kv| {
                let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
                let state = g("State");
                let mut parts = state.split('+');
                let base = parts.next().unwrap_or("").to_lowercase();
                let flags: Vec<String> = parts.map(str::to_string).collect();
                crate::node_info(
                    &g("NodeName"),
                    g("CPUTot").parse().unwrap_or(0),
                    g("RealMemory").parse().unwrap_or(0),
                    &g("Gres"),
                    &base,
                    &flags,
                    &g("ActiveFeatures"),
                    &g("Partitions"),
                )
            })
            .collect())
    }
}

/// Splits `scontrol -o` output (`Key=value Key=value with spaces ...`) into a map; a word without
/// `=` continues the previous value.
pub fn parse_kv_line(line: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '/') => {
                map.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            _ => {
                if let Some(k) = &last {
                    let v: &mut String = map.get_mut(k).expect("inserted");
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    map
}

fn local_time(text: &str) -> Option<Timestamp> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok()?;
    naive.and_local_timezone(chrono::Local).single().map(|t| t.with_timezone(&chrono::Utc))
}

/// `squeue --Format` fields, `|`-separated, unpadded.
pub const SQUEUE_FORMAT: &str =
    "JobID:|,Name:|,State:|,exit_code:|,StartTime:|,EndTime:|,NodeList:|,RestartCnt:|,Reason:";

/// Reads one line of `squeue --noheader --Format SQUEUE_FORMAT`.
pub fn job_from_squeue(line: &str) -> Option<SlurmJob> {
    let f: Vec<&str> = line.split('|').map(str::trim).collect();
    if f.len() < 9 {
        return None;
    }
    let (exit_code, signal) = match f[3].parse::<i64>() {
        Ok(status) => split_wait_status(status),
        Err(_) => (None, None),
    };
    Some(SlurmJob {
        job_id: f[0].parse().ok()?,
        name: f[1].to_string(),
        state: f[2].to_string(),
        exit_code,
        signal,
        start: local_time(f[4]),
        end: local_time(f[5]),
        nodes: expand_hostlist(f[6]),
        restarts: f[7].parse().unwrap_or(0),
        reason: f[8].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_squeue_lines() {
        let job = job_from_squeue(
            "3894|cumulo-881.1|FAILED|768|2026-11-26T05:38:23|2026-11-26T05:38:24|node[001-002]|0|NonZeroExitCode|",
        )
        .unwrap();
        assert_eq!((job.job_id, job.name.as_str(), job.state.as_str()), (3894, "cumulo-881.1", "FAILED"));
        assert_eq!((job.exit_code, job.signal), (Some(3), None));
        assert_eq!(job.nodes, ["node001", "node002"]);
        assert_eq!((job.end.unwrap() - job.start.unwrap()).num_seconds(), 1);
        let pending = job_from_squeue("7|cumulo-1.1|PENDING|0|N/A|N/A||2|Priority|").unwrap();
        assert_eq!((pending.start, pending.nodes.len(), pending.restarts), (None, 0, 2));
        let killed = job_from_squeue("8|x|FAILED|9|N/A|N/A|node001|0|JobLaunchFailure|").unwrap();
        assert_eq!((killed.exit_code, killed.signal), (None, Some(9)));
        assert!(job_from_squeue("garbage").is_none());
    }

    #[test]
    fn reads_scontrol_key_values_with_spaces() {
        let kv = parse_kv_line(
            "NodeName=node001 CPUTot=32 State=IDLE+DRAIN Reason=disk is full [root@2026] Gres=gpu:h100:8",
        );
        assert_eq!(kv["Reason"], "disk is full [root@2026]");
        assert_eq!(kv["State"], "IDLE+DRAIN");
        assert_eq!(kv["Gres"], "gpu:h100:8");
    }
}
