//! Alibaba traces: the 2023 GPU-sharing pod lists with their node lists (FGD, ATC'23) and the
//! 2025 disaggregated DLRM serving instances (NSDI'25).
//!
//! GPU names in the 2023 trace: `V100M16` and `V100M32` are the 16 and 32 GB V100, `T4`, `P100`
//! and `A10` are themselves; `G2` and `G3` are anonymised by Alibaba and are mapped to A10G and
//! A100 by default (an assumption: override with [`GpuNames`]).

use std::collections::BTreeMap;
use std::path::Path;

use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};

use super::{OnBadRow, RowErrors};
use crate::Error;
use crate::speed::{ModelSet, SpeedRow};
use crate::workload::{TraceJob, Workload};

/// How the trace's GPU names map onto Cumulo's models.
#[derive(Clone, Debug)]
pub struct GpuNames(pub BTreeMap<String, GpuModel>);

impl Default for GpuNames {
    fn default() -> Self {
        GpuNames(BTreeMap::from([
            ("V100M16".to_string(), GpuModel::V100),
            ("V100M32".to_string(), GpuModel::V100_32),
            ("G2".to_string(), GpuModel::A10G),
            ("G3".to_string(), GpuModel::A100),
        ]))
    }
}

impl GpuNames {
    pub fn resolve(&self, name: &str) -> Result<GpuModel, String> {
        match self.0.get(name.trim()) {
            Some(m) => Ok(*m),
            None => GpuModel::parse(name).map_err(|e| e.to_string()),
        }
    }
}

/// A node of the 2023 node list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub cpus_milli: u32,
    pub memory_mib: u64,
    pub gpus: u32,
    pub model: Option<GpuModel>,
}

/// Column positions found by header name.
struct Columns {
    index: BTreeMap<String, usize>,
}

impl Columns {
    fn new(headers: &csv::StringRecord, file: &str, required: &[&str]) -> Result<Columns, Error> {
        let index: BTreeMap<String, usize> =
            headers.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect();
        for column in required {
            if !index.contains_key(*column) {
                return Err(Error::MissingColumn { file: file.to_string(), column: column.to_string() });
            }
        }
        Ok(Columns { index })
    }

    /// A column's text; empty when the file has no such column.
    fn get<'r>(&self, record: &'r csv::StringRecord, column: &str) -> &'r str {
        self.index.get(column).and_then(|i| record.get(*i)).unwrap_or("").trim()
    }

    fn num<T: std::str::FromStr>(&self, record: &csv::StringRecord, column: &str) -> Result<T, String> {
        let text = self.get(record, column);
        text.parse().map_err(|_| format!("invalid {column} `{text}`: expected a non-negative number"))
    }

    /// Seconds as a float column; `None` when empty or NaN.
    fn seconds(&self, record: &csv::StringRecord, column: &str) -> Result<Option<u64>, String> {
        let text = self.get(record, column);
        if text.is_empty() || text.eq_ignore_ascii_case("nan") {
            return Ok(None);
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v.round() as u64)),
            _ => Err(format!("invalid {column} `{text}`: expected non-negative seconds")),
        }
    }
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

fn headers(reader: &mut csv::Reader<std::fs::File>, file: &str) -> Result<csv::StringRecord, Error> {
    reader.headers().cloned().map_err(|e| Error::BadFile { file: file.to_string(), reason: e.to_string() })
}

/// Reads `openb_node_list_*.csv` (`sn,cpu_milli,memory_mib,gpu,model`).
pub fn import_nodes(
    path: &Path,
    names: &GpuNames,
    on_bad: OnBadRow,
) -> Result<(Vec<NodeRow>, Vec<crate::workload::SkippedRow>), Error> {
    let mut reader = open_csv(path)?;
    let mut errors = RowErrors::new(path, on_bad);
    let file = errors.file().to_string();
    let cols = Columns::new(&headers(&mut reader, &file)?, &file, &["sn", "cpu_milli", "memory_mib", "gpu", "model"])?;
    let mut nodes = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.bad(line, e.to_string())?;
                continue;
            }
        };
        let row = (|| -> Result<NodeRow, String> {
            let gpus: u32 = cols.num(&record, "gpu")?;
            let model_name = cols.get(&record, "model");
            let model = if gpus == 0 || model_name.is_empty() { None } else { Some(names.resolve(model_name)?) };
            Ok(NodeRow {
                name: cols.get(&record, "sn").to_string(),
                cpus_milli: cols.num(&record, "cpu_milli")?,
                memory_mib: cols.num(&record, "memory_mib")?,
                gpus: if model.is_some() { gpus } else { 0 },
                model,
            })
        })();
        match row {
            Ok(n) => nodes.push(n),
            Err(reason) => errors.bad(line, reason)?,
        }
    }
    Ok((nodes, errors.skipped))
}

/// Reads `openb_pod_list_*.csv` (`name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,
/// pod_phase,creation_time,deletion_time,scheduled_time`). A pod arrives at its creation time and
/// runs for `deletion - scheduled` seconds (`deletion - creation` when it was never scheduled).
/// `LS` pods are high priority and not preemptible; `BE` pods are low priority and preemptible;
/// the rest are normal. Pods are homogeneous in speed: the trace has one run time per pod.
/// The `multigpu*` variants have only the first five columns: their pods arrive one per second in
/// file order and never leave (they are meant for fill-up experiments).
pub fn import_pods(path: &Path, names: &GpuNames, on_bad: OnBadRow) -> Result<Workload, Error> {
    let mut reader = open_csv(path)?;
    let mut errors = RowErrors::new(path, on_bad);
    let file = errors.file().to_string();
    let required = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"];
    let cols = Columns::new(&headers(&mut reader, &file)?, &file, &required)?;
    let timed = cols.index.contains_key("creation_time");
    if timed {
        for column in ["deletion_time", "scheduled_time"] {
            if !cols.index.contains_key(column) {
                return Err(Error::MissingColumn { file: file.clone(), column: column.to_string() });
            }
        }
    }
    let mut workload = Workload { speeds: vec![SpeedRow::uniform("pod")], ..Workload::default() };
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.bad(line, e.to_string())?;
                continue;
            }
        };
        let job = (|| -> Result<TraceJob, String> {
            let num_gpu: u32 = cols.num(&record, "num_gpu")?;
            let gpu_milli: u32 = cols.num(&record, "gpu_milli")?;
            if num_gpu > 0 && (gpu_milli == 0 || gpu_milli > 1000) {
                return Err(format!("invalid gpu_milli `{gpu_milli}`: expected 1 to 1000 for a GPU pod"));
            }
            if num_gpu > 1 && gpu_milli < 1000 {
                return Err(format!(
                    "invalid gpu_milli `{gpu_milli}` with num_gpu {num_gpu}: only a single GPU can be shared"
                ));
            }
            let spec = cols.get(&record, "gpu_spec");
            let mut models = Vec::new();
            for name in spec.split('|').filter(|n| !n.trim().is_empty()) {
                models.push(names.resolve(name).map_err(|e| format!("gpu_spec: {e}"))?);
            }
            let (creation, work_s) = if timed {
                let creation = cols.seconds(&record, "creation_time")?.ok_or("creation_time is empty")?;
                let deletion = cols.seconds(&record, "deletion_time")?.ok_or("deletion_time is empty")?;
                let started = cols.seconds(&record, "scheduled_time")?.unwrap_or(creation);
                if deletion < started {
                    return Err(format!("deletion_time {deletion} is before scheduled_time {started}"));
                }
                (creation, (deletion - started).max(1))
            } else {
                (line - 2, u64::MAX)
            };
            let (priority, preemptible) = match cols.get(&record, "qos") {
                "LS" => (Priority::HIGH, false),
                "BE" => (Priority::LOW, true),
                _ => (Priority::NORMAL, false),
            };
            let gpus_per_node = if num_gpu == 0 {
                MilliGpu(0)
            } else if num_gpu == 1 {
                MilliGpu(gpu_milli)
            } else {
                MilliGpu::whole(num_gpu)
            };
            Ok(TraceJob {
                needs: crate::workload::NO_NEEDS,
                arrival_s: creation,
                kind: if num_gpu == 0 { JobKind::Batch } else { JobKind::Training },
                tenant: 0,
                priority,
                preemptible,
                num_nodes: 1,
                topology: TopologyNeed::Any,
                gpus_per_node,
                cpus_milli: cols.num(&record, "cpu_milli")?,
                memory_mib: cols.num(&record, "memory_mib")?,
                models: ModelSet::of(&models),
                job_type: 0,
                work_s,
            })
        })();
        match job {
            Ok(mut j) => {
                let qos = cols.get(&record, "qos").to_string();
                j.tenant = workload.tenant(&qos);
                workload.jobs.push(j);
            }
            Err(reason) => errors.bad(line, reason)?,
        }
    }
    workload.skipped = errors.skipped;
    workload.sort_by_arrival();
    Ok(workload)
}

/// Reads `disaggregated_DLRM_trace.csv`: each serving instance is an inference job (tenant = its
/// app) from its creation to its deletion. An empty creation time (before the trace) is 0; an
/// empty deletion time (after the trace) is the trace's last time stamp. `HN` instances take one
/// GPU of any model; `CN` instances are CPU-only. Memory is in GB in the trace.
pub fn import_dlrm(path: &Path, on_bad: OnBadRow) -> Result<Workload, Error> {
    let mut reader = open_csv(path)?;
    let mut errors = RowErrors::new(path, on_bad);
    let file = errors.file().to_string();
    let required = [
        "instance_sn",
        "role",
        "app_name",
        "cpu_request",
        "gpu_request",
        "memory_request",
        "creation_time",
        "deletion_time",
    ];
    let cols = Columns::new(&headers(&mut reader, &file)?, &file, &required)?;
    let mut workload = Workload { speeds: vec![SpeedRow::uniform("dlrm")], ..Workload::default() };
    let mut open_ended = Vec::new();
    let mut horizon = 0u64;
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.bad(line, e.to_string())?;
                continue;
            }
        };
        let parsed = (|| -> Result<(TraceJob, Option<u64>, String), String> {
            let cpus: f64 = cols.num(&record, "cpu_request")?;
            let gpus: u32 = cols.num(&record, "gpu_request")?;
            let memory_gb: f64 = cols.num(&record, "memory_request")?;
            if !(cpus.is_finite() && cpus >= 0.0 && memory_gb.is_finite() && memory_gb >= 0.0) {
                return Err("cpu_request and memory_request must be non-negative".to_string());
            }
            let role = cols.get(&record, "role");
            if role != "HN" && role != "CN" {
                return Err(format!("invalid role `{role}`: expected HN or CN"));
            }
            let creation = cols.seconds(&record, "creation_time")?.unwrap_or(0);
            let deletion = cols.seconds(&record, "deletion_time")?;
            if deletion.is_some_and(|d| d < creation) {
                return Err(format!("deletion_time {} is before creation_time {creation}", deletion.unwrap_or(0)));
            }
            let (num_nodes, per_node) = if gpus <= 8 { (1, gpus) } else { super::gang_shape(gpus) };
            let job = TraceJob {
                needs: crate::workload::NO_NEEDS,
                arrival_s: creation,
                kind: JobKind::Inference,
                tenant: 0,
                priority: Priority::HIGH,
                preemptible: false,
                num_nodes,
                topology: TopologyNeed::Any,
                gpus_per_node: MilliGpu::whole(per_node),
                cpus_milli: (cpus * 1000.0).round() as u32,
                memory_mib: (memory_gb * 1024.0).round() as u64,
                models: ModelSet::ANY,
                job_type: 0,
                work_s: deletion.map_or(0, |d| (d - creation).max(1)),
            };
            Ok((job, deletion, cols.get(&record, "app_name").to_string()))
        })();
        match parsed {
            Ok((mut job, deletion, app)) => {
                horizon = horizon.max(job.arrival_s).max(deletion.unwrap_or(0));
                job.tenant = workload.tenant(&app);
                if deletion.is_none() {
                    open_ended.push(workload.jobs.len());
                }
                workload.jobs.push(job);
            }
            Err(reason) => errors.bad(line, reason)?,
        }
    }
    for i in open_ended {
        let job = &mut workload.jobs[i];
        job.work_s = horizon.saturating_sub(job.arrival_s).max(1);
    }
    workload.skipped = errors.skipped;
    workload.sort_by_arrival();
    Ok(workload)
}
