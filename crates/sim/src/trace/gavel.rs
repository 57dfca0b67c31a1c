//! Gavel's traces (Philly-derived 7-field traces and the 10-field physical-cluster traces) and
//! its throughput table (steps per second per job type, scale factor and GPU model).
//!
//! A job's work is `total_steps / throughput(V100, job type, scale)` seconds on a V100; its speed
//! on other models comes from the measured K80/P100 throughputs and, for modern GPUs, the FLOPS
//! extrapolation of [`crate::speed::extrapolate`]. Scale factors missing from the table (Philly
//! jobs reach 64 GPUs, the table stops at 8) use the largest measured scale below and assume
//! linear scaling from there, as stated.

use std::collections::BTreeMap;
use std::path::Path;

use cumulo_types::{JobKind, MilliGpu, Priority, TopologyNeed};

use super::{OnBadRow, RowErrors, gang_shape, read_to_string};
use crate::Error;
use crate::speed::{ModelSet, SpeedRow, extrapolate};
use crate::workload::{TraceJob, Workload};

/// Isolated throughputs (steps/s) keyed by (job type, scale factor): `[k80, p100, v100]`.
#[derive(Clone, Debug, Default)]
pub struct Throughputs {
    pub table: BTreeMap<(String, u32), [f64; 3]>,
}

impl Throughputs {
    /// Reads Gavel's `simulation_throughputs.json` (worker type → "('Job', scale)" → {"null": tput}).
    pub fn load(path: &Path) -> Result<Throughputs, Error> {
        let text = read_to_string(path)?;
        Throughputs::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Throughputs, Error> {
        let bad = |reason: String| Error::BadFile { file: file.to_string(), reason };
        let root: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let mut table: BTreeMap<(String, u32), [f64; 3]> = BTreeMap::new();
        for (slot, worker) in ["k80", "p100", "v100"].into_iter().enumerate() {
            let Some(jobs) = root.get(worker).and_then(|w| w.as_object()) else {
                return Err(bad(format!("missing worker type `{worker}`")));
            };
            for (key, entry) in jobs {
                let (name, scale) = parse_job_key(key)
                    .ok_or_else(|| bad(format!("invalid job key `{key}`: expected ('Job type', scale factor)")))?;
                let tput = entry
                    .get("null")
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| bad(format!("{worker} {key}: missing isolated throughput `null`")))?;
                table.entry((name, scale)).or_insert([0.0; 3])[slot] = tput;
            }
        }
        Ok(Throughputs { table })
    }

    /// Throughputs for a job type at a scale factor, with the largest measured scale at or below
    /// it scaled linearly when the exact scale is missing.
    pub fn lookup(&self, job_type: &str, scale: u32) -> Option<[f64; 3]> {
        let (known_scale, tput) = self
            .table
            .range((job_type.to_string(), 0)..=(job_type.to_string(), scale))
            .next_back()
            .map(|((_, s), t)| (*s, *t))?;
        let factor = scale as f64 / known_scale as f64;
        Some(tput.map(|t| t * factor))
    }
}

fn parse_job_key(key: &str) -> Option<(String, u32)> {
    let inner = key.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (name, scale) = inner.rsplit_once(',')?;
    let name = name.trim().trim_matches('\'').to_string();
    Some((name, scale.trim().parse().ok()?))
}

/// Reads a Gavel trace in either format, detected per row by its field count:
/// 7 fields (`job_type, command, num_steps_arg, needs_data_dir, total_steps, arrival_time,
/// scale_factor`) or 10 (`job_type, command, working_directory, num_steps_arg, needs_data_dir,
/// total_steps, scale_factor, priority_weight, SLO, arrival_time`). The tenant is the file stem
/// (the Philly virtual cluster).
pub fn import(path: &Path, throughputs: &Throughputs, on_bad: OnBadRow) -> Result<Workload, Error> {
    let text = read_to_string(path)?;
    let tenant = path.file_stem().map_or("gavel".to_string(), |s| s.to_string_lossy().into_owned());
    let mut errors = RowErrors::new(path, on_bad);
    let mut workload = Workload::default();
    let tenant = workload.tenant(&tenant);
    let mut type_rows: BTreeMap<(String, u32), u16> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_row(line, throughputs) {
            Ok(row) => {
                let key = (row.job_type.clone(), row.scale);
                let job_type = match type_rows.get(&key) {
                    Some(t) => *t,
                    None => {
                        let t = workload.speeds.len() as u16;
                        workload.speeds.push(row.speed.clone());
                        type_rows.insert(key, t);
                        t
                    }
                };
                let runnable: Vec<_> =
                    cumulo_types::GpuModel::ALL.iter().copied().filter(|m| row.speed.on(*m) > 0.0).collect();
                let models = if runnable.len() == cumulo_types::GpuModel::ALL.len() {
                    ModelSet::ANY
                } else {
                    ModelSet::of(&runnable)
                };
                let (num_nodes, per_node) = gang_shape(row.scale);
                workload.jobs.push(TraceJob {
                    needs: crate::workload::NO_NEEDS,
                    arrival_s: row.arrival_s,
                    kind: JobKind::Training,
                    tenant,
                    priority: row.priority,
                    preemptible: true,
                    num_nodes,
                    topology: TopologyNeed::Any,
                    gpus_per_node: MilliGpu::whole(per_node),
                    cpus_milli: 4000 * per_node,
                    memory_mib: 32 * 1024 * per_node as u64,
                    models,
                    job_type,
                    work_s: row.work_s,
                });
            }
            Err(reason) => errors.bad(line_no, reason)?,
        }
    }
    workload.skipped = errors.skipped;
    workload.sort_by_arrival();
    Ok(workload)
}

struct Row {
    job_type: String,
    scale: u32,
    arrival_s: u64,
    work_s: u64,
    priority: Priority,
    speed: SpeedRow,
}

fn parse_row(line: &str, throughputs: &Throughputs) -> Result<Row, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let (job_type, steps, arrival, scale, weight) = match fields.len() {
        7 => (fields[0], fields[4], fields[5], fields[6], "1"),
        10 => (fields[0], fields[5], fields[9], fields[6], fields[7]),
        n => return Err(format!("expected 7 or 10 tab-separated fields, found {n}")),
    };
    let steps: u64 = steps.trim().parse().map_err(|_| format!("invalid total_steps `{steps}`: expected an integer"))?;
    let arrival: f64 = arrival
        .trim()
        .parse()
        .ok()
        .filter(|a: &f64| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| format!("invalid arrival_time `{arrival}`: expected non-negative seconds"))?;
    let scale: u32 = scale
        .trim()
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("invalid scale_factor `{scale}`: expected a positive GPU count"))?;
    let weight: f64 = weight
        .trim()
        .parse()
        .ok()
        .filter(|w: &f64| w.is_finite() && *w > 0.0)
        .ok_or_else(|| format!("invalid priority_weight `{weight}`: expected a positive number"))?;
    let [k80, p100, v100] = throughputs
        .lookup(job_type, scale)
        .ok_or_else(|| format!("unknown job type `{job_type}` at scale {scale}: not in the throughput table"))?;
    let speed = extrapolate(&format!("{job_type} x{scale}"), k80, p100, v100)
        .ok_or_else(|| format!("job type `{job_type}` has no V100 throughput"))?;
    Ok(Row {
        job_type: job_type.to_string(),
        scale,
        arrival_s: arrival.round() as u64,
        work_s: ((steps as f64 / v100).ceil() as u64).max(1),
        priority: Priority((Priority::NORMAL.0 as f64 * weight).round() as i32),
        speed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"{
        "k80": {"('ResNet-18 (batch size 16)', 1)": {"null": 2.0}, "('ResNet-18 (batch size 16)', 2)": {"null": 3.0}},
        "p100": {"('ResNet-18 (batch size 16)', 1)": {"null": 5.0}, "('ResNet-18 (batch size 16)', 2)": {"null": 8.0}},
        "v100": {"('ResNet-18 (batch size 16)', 1)": {"null": 10.0}, "('ResNet-18 (batch size 16)', 2)": {"null": 16.0}}
    }"#;

    #[test]
    fn lookup_scales_linearly_past_the_table() {
        let t = Throughputs::parse(TABLE, "t.json").unwrap();
        assert_eq!(t.lookup("ResNet-18 (batch size 16)", 1), Some([2.0, 5.0, 10.0]));
        assert_eq!(t.lookup("ResNet-18 (batch size 16)", 8), Some([12.0, 32.0, 64.0]));
        assert_eq!(t.lookup("LM", 1), None);
    }

    #[test]
    fn bad_table_names_the_problem() {
        let err = Throughputs::parse(r#"{"k80": {}, "p100": {}}"#, "t.json").unwrap_err().to_string();
        assert_eq!(err, "t.json: missing worker type `v100`");
    }
}
