//! Jobs from job files (Cumulo's, or SkyPilot task files as `cumulo submit` reads them) as a
//! workload source: each job of each file arrives `every_s` after the one before, with what it
//! needs of its site (`cumulo_sched::needs`: a container image, the upload `cumulo submit` would
//! make, bucket mounts), so the simulator keeps it off pools that cannot give it, as the server
//! keeps it off clusters.

use std::path::Path;

use cumulo_sched::needs::Needs;
use cumulo_types::{GpuModel, JobSpec, MilliGpu};

use crate::Error;
use crate::speed::{ModelSet, SpeedRow};
use crate::workload::{TraceJob, Workload};

/// Reads every job of `files` in order. A job without `duration_s` runs `default_duration_s` on
/// any GPU (the job files state no speeds). The simulator takes one shape per job: the first
/// resource option's GPUs per node, vCPUs and memory, with the models of every option asking for
/// as many GPUs per node.
pub fn import(files: &[String], every_s: u64, default_duration_s: u64) -> Result<Workload, Error> {
    let mut workload = Workload { speeds: vec![SpeedRow::uniform("job-file")], ..Workload::default() };
    for file in files {
        let specs = cumulo_jobfile::parse_many_file(Path::new(file))
            .map_err(|e| Error::BadFile { file: file.clone(), reason: e.to_string() })?;
        for spec in &specs {
            let arrival_s = every_s.saturating_mul(workload.jobs.len() as u64);
            let job = trace_job(&mut workload, spec, arrival_s, default_duration_s).map_err(|reason| {
                Error::BadFile { file: file.clone(), reason: format!("job `{}`: {reason}", spec.name) }
            })?;
            workload.jobs.push(job);
        }
    }
    Ok(workload)
}

fn trace_job(
    workload: &mut Workload,
    spec: &JobSpec,
    arrival_s: u64,
    default_duration_s: u64,
) -> Result<TraceJob, String> {
    let first = spec.resources.first().ok_or("resources: no resource option")?;
    let per_node = first.accelerators.as_ref().map_or(MilliGpu(0), |a| a.per_node);
    let models = match &first.accelerators {
        None => ModelSet::ANY,
        Some(_) => {
            let accepted: Vec<GpuModel> = GpuModel::ALL
                .iter()
                .copied()
                .filter(|m| {
                    spec.resources
                        .iter()
                        .filter_map(|o| o.accelerators.as_ref())
                        .any(|a| a.per_node == per_node && a.selector.accepts(*m))
                })
                .collect();
            if accepted.is_empty() {
                return Err("resources.accelerators: names no GPU model the simulator knows".to_string());
            }
            ModelSet::of(&accepted)
        }
    };
    let tenant = workload.tenant(&spec.tenant);
    Ok(TraceJob {
        arrival_s,
        kind: spec.kind,
        tenant,
        priority: spec.priority,
        preemptible: spec.preemptible,
        num_nodes: spec.num_nodes,
        topology: spec.topology,
        gpus_per_node: per_node,
        cpus_milli: first.cpus_milli,
        memory_mib: first.memory_mib,
        models,
        job_type: 0,
        work_s: spec.duration_s.unwrap_or(default_duration_s).max(1),
        needs: workload.needs_index(Needs::of_file(spec)),
    })
}
