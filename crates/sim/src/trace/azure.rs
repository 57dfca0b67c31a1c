//! Azure LLM inference 2023 request traces (Splitwise, ISCA'24) as the load behind an autoscaled
//! inference job.
//!
//! Requests (`TIMESTAMP,ContextTokens,GeneratedTokens`) are bucketed into windows. A window needs
//! `ceil(busy / (window × target_utilisation))` replicas, where `busy` is the replica-seconds the
//! window's requests take: `context / prefill_tokens_per_s + generated / decode_tokens_per_s`,
//! and never fewer than `min_replicas`. Replica `k` then runs as one inference job for every
//! stretch of windows that need at least `k` replicas: the autoscaler adds it when the load rises
//! and removes it when the load falls.

use std::path::Path;

use cumulo_types::{JobKind, MilliGpu, Priority, TopologyNeed};
use serde::Deserialize;

use super::{OnBadRow, RowErrors};
use crate::Error;
use crate::speed::{ModelSet, SpeedRow};
use crate::workload::{TraceJob, Workload};

/// How requests turn into replicas.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Autoscale {
    pub window_s: u64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub target_utilisation: f64,
    pub min_replicas: u32,
    /// GPUs per replica.
    pub gpus_per_replica: u32,
}

impl Default for Autoscale {
    /// One 8-GPU replica serving prefill at 40,000 and decode at 4,000 tokens/s, run at 70 %.
    fn default() -> Self {
        Autoscale {
            window_s: 60,
            prefill_tokens_per_s: 40_000.0,
            decode_tokens_per_s: 4_000.0,
            target_utilisation: 0.7,
            min_replicas: 1,
            gpus_per_replica: 8,
        }
    }
}

/// The per-window replica counts and the request count, kept for the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSeries {
    pub window_s: u64,
    pub replicas: Vec<u32>,
    pub requests: u64,
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fraction]` into seconds since 1970 (UTC, proleptic Gregorian).
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut t = time.split(':');
    let (h, min, s) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?, t.next()?.parse::<f64>().ok()?);
    if t.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&min) || !(0.0..61.0).contains(&s) {
        return None;
    }
    // days from civil, after Howard Hinnant
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + s)
}

/// Reads one Azure LLM inference trace into replica jobs of one tenant (the file stem).
pub fn import(path: &Path, scale: &Autoscale, on_bad: OnBadRow) -> Result<(Workload, ReplicaSeries), Error> {
    if scale.window_s == 0 || scale.prefill_tokens_per_s <= 0.0 || scale.decode_tokens_per_s <= 0.0 {
        return Err(Error::invalid("autoscale", format!("{scale:?}"), "positive window and token rates"));
    }
    if !(scale.target_utilisation > 0.0 && scale.target_utilisation <= 1.0) {
        return Err(Error::invalid("autoscale.target_utilisation", scale.target_utilisation, "a number in (0, 1]"));
    }
    let text = super::read_to_string(path)?;
    let mut errors = RowErrors::new(path, on_bad);
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "TIMESTAMP,ContextTokens,GeneratedTokens" => {}
        _ => {
            return Err(Error::BadFile {
                file: errors.file().to_string(),
                reason: "expected the header `TIMESTAMP,ContextTokens,GeneratedTokens`".to_string(),
            });
        }
    }
    let mut requests: Vec<(f64, f64)> = Vec::new(); // (time, busy seconds)
    for (i, line) in lines {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = (|| -> Result<(f64, f64), String> {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 3 {
                return Err(format!("expected 3 comma-separated fields, found {}", f.len()));
            }
            let t = parse_timestamp(f[0])
                .ok_or_else(|| format!("invalid TIMESTAMP `{}`: expected YYYY-MM-DD HH:MM:SS.fffffff", f[0]))?;
            let ctx: u64 =
                f[1].trim().parse().map_err(|_| format!("invalid ContextTokens `{}`: expected a token count", f[1]))?;
            let gen_tokens: u64 = f[2]
                .trim()
                .parse()
                .map_err(|_| format!("invalid GeneratedTokens `{}`: expected a token count", f[2]))?;
            Ok((t, ctx as f64 / scale.prefill_tokens_per_s + gen_tokens as f64 / scale.decode_tokens_per_s))
        })();
        match parsed {
            Ok(r) => requests.push(r),
            Err(reason) => errors.bad(line_no, reason)?,
        }
    }
    let start = requests.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let mut busy: Vec<f64> = Vec::new();
    for (t, b) in &requests {
        let w = ((t - start) / scale.window_s as f64) as usize;
        if busy.len() <= w {
            busy.resize(w + 1, 0.0);
        }
        busy[w] += b;
    }
    let capacity = scale.window_s as f64 * scale.target_utilisation;
    let replicas: Vec<u32> = busy.iter().map(|b| ((b / capacity).ceil() as u32).max(scale.min_replicas)).collect();
    let tenant_name = path.file_stem().map_or("azure-llm".to_string(), |s| s.to_string_lossy().into_owned());
    let mut workload = Workload { speeds: vec![SpeedRow::uniform("llm-replica")], ..Workload::default() };
    let tenant = workload.tenant(&tenant_name);
    let replica_job = |from: usize, to: usize| TraceJob {
        needs: crate::workload::NO_NEEDS,
        arrival_s: from as u64 * scale.window_s,
        kind: JobKind::Inference,
        tenant,
        priority: Priority::HIGH,
        preemptible: false,
        num_nodes: 1,
        topology: TopologyNeed::Any,
        gpus_per_node: MilliGpu::whole(scale.gpus_per_replica),
        cpus_milli: 8000 * scale.gpus_per_replica,
        memory_mib: 64 * 1024 * scale.gpus_per_replica as u64,
        models: ModelSet::ANY,
        job_type: 0,
        work_s: (to - from) as u64 * scale.window_s,
    };
    let peak = replicas.iter().copied().max().unwrap_or(0);
    for k in 1..=peak {
        let mut from = None;
        for (w, r) in replicas.iter().enumerate() {
            match (from, *r >= k) {
                (None, true) => from = Some(w),
                (Some(f), false) => {
                    workload.jobs.push(replica_job(f, w));
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            workload.jobs.push(replica_job(f, replicas.len()));
        }
    }
    workload.skipped = errors.skipped;
    workload.sort_by_arrival();
    Ok((workload, ReplicaSeries { window_s: scale.window_s, replicas, requests: requests.len() as u64 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(parse_timestamp("2023-11-16 18:17:03.5"), Some(1_700_158_623.5));
        assert_eq!(parse_timestamp("2023-13-16 18:17:03"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
