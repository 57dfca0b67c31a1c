//! Workload transforms for what-if questions: reorder, grow, or fill up. All take a seed; the
//! same seed gives the same workload.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::Error;
use crate::workload::Workload;

/// One transform, as written in a scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Transform {
    /// Permutes which job arrives in which arrival slot; the arrival times themselves stay.
    Shuffle { seed: u64 },
    /// Samples jobs with replacement, at uniform random arrival times over `horizon_s`, until the
    /// GPU-seconds of work reach `share` of `fleet_gpus × horizon_s` (demand growth when the
    /// share is above what the trace had).
    SampleToShare { seed: u64, share: f64, fleet_gpus: u64, horizon_s: u64 },
    /// Work never leaves: every job runs forever once placed (the FGD paper's fill-up mode).
    FillUp,
    /// The fill-up experiment of the fragmentation papers (FGD, USENIX ATC'23): jobs (CPU-only
    /// ones included) sampled uniformly with replacement until their GPU request reaches
    /// `multiple` × the fleet's GPUs; job `i` arrives at second `i`, one per decision, and never
    /// leaves. Seeded by `seed`, or by the scenario's seed when absent.
    FillUpSample {
        #[serde(default)]
        seed: Option<u64>,
        multiple: f64,
    },
}

/// What a transform may need to know besides the workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// GPUs of the whole fleet (every node ever delivered).
    pub fleet_gpus: u64,
    /// The scenario's seed, for transforms without their own.
    pub seed: u64,
}

/// Applies one transform in place.
pub fn apply(workload: &mut Workload, transform: &Transform, context: &Context) -> Result<(), Error> {
    match transform {
        Transform::Shuffle { seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let arrivals: Vec<u64> = workload.jobs.iter().map(|j| j.arrival_s).collect();
            workload.jobs.shuffle(&mut rng);
            for (job, arrival) in workload.jobs.iter_mut().zip(arrivals) {
                job.arrival_s = arrival;
            }
        }
        Transform::SampleToShare { seed, share, fleet_gpus, horizon_s } => {
            if !(share.is_finite() && *share > 0.0 && *share <= 100.0) {
                return Err(Error::invalid(
                    "sample-to-share.share",
                    share,
                    "a positive share of fleet capacity such as 0.8",
                ));
            }
            if *fleet_gpus == 0 || *horizon_s == 0 {
                return Err(Error::invalid(
                    "sample-to-share.fleet_gpus/horizon_s",
                    format!("{fleet_gpus}/{horizon_s}"),
                    "positive numbers",
                ));
            }
            let source: Vec<_> =
                workload.jobs.iter().filter(|j| j.work_s != u64::MAX && j.total_gpus_milli() > 0).cloned().collect();
            if source.is_empty() {
                return Err(Error::invalid("sample-to-share", "an empty workload", "at least one finite GPU job"));
            }
            let target = share * *fleet_gpus as f64 * *horizon_s as f64;
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let mut jobs = Vec::new();
            let mut demand = 0.0;
            while demand < target {
                let mut job = source[rng.gen_range(0..source.len())].clone();
                job.arrival_s = rng.gen_range(0..*horizon_s);
                demand += job.total_gpus_milli() as f64 / 1000.0 * job.work_s as f64;
                jobs.push(job);
            }
            workload.jobs = jobs;
            workload.sort_by_arrival();
        }
        Transform::FillUp => {
            for job in &mut workload.jobs {
                job.work_s = u64::MAX;
            }
        }
        Transform::FillUpSample { seed, multiple } => {
            fill_up_sample(workload, seed.unwrap_or(context.seed), *multiple, context)?
        }
    }
    Ok(())
}

fn fill_up_sample(workload: &mut Workload, seed: u64, multiple: f64, context: &Context) -> Result<(), Error> {
    if !(multiple.is_finite() && multiple > 0.0 && multiple <= 10.0) {
        return Err(Error::invalid(
            "fill-up-sample.multiple",
            multiple,
            "a multiple of the fleet's GPUs from 0 to 10, such as 1.3",
        ));
    }
    if context.fleet_gpus == 0 {
        return Err(Error::invalid("fill-up-sample", "a fleet without GPUs", "a fleet with GPUs to fill"));
    }
    if !workload.jobs.iter().any(|j| j.total_gpus_milli() > 0) {
        return Err(Error::invalid("fill-up-sample", "a workload without GPU jobs", "at least one GPU job"));
    }
    let target = (multiple * context.fleet_gpus as f64 * 1000.0).ceil() as u64;
    let source = std::mem::take(&mut workload.jobs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut requested = 0u64;
    let mut jobs = Vec::new();
    while requested < target {
        let mut job = source[rng.gen_range(0..source.len())].clone();
        job.arrival_s = jobs.len() as u64;
        job.work_s = u64::MAX;
        requested += job.total_gpus_milli();
        jobs.push(job);
    }
    workload.jobs = jobs;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::{ModelSet, SpeedRow};
    use crate::workload::TraceJob;
    use cumulo_types::{JobKind, MilliGpu, Priority, TopologyNeed};

    fn job(arrival_s: u64, work_s: u64, gpus: u32) -> TraceJob {
        TraceJob {
            needs: crate::workload::NO_NEEDS,
            arrival_s,
            kind: JobKind::Training,
            tenant: 0,
            priority: Priority::NORMAL,
            preemptible: false,
            num_nodes: 1,
            topology: TopologyNeed::Any,
            gpus_per_node: MilliGpu::whole(gpus),
            cpus_milli: 1000,
            memory_mib: 1024,
            models: ModelSet::ANY,
            job_type: 0,
            work_s,
        }
    }

    fn workload() -> Workload {
        Workload {
            jobs: vec![job(0, 10, 1), job(5, 20, 2), job(9, 30, 4), job(12, 40, 8)],
            speeds: vec![SpeedRow::uniform("x")],
            ..Workload::default()
        }
    }

    #[test]
    fn shuffle_keeps_arrival_slots_and_is_seeded() {
        let mut a = workload();
        let mut b = workload();
        apply(&mut a, &Transform::Shuffle { seed: 7 }, &Context::default()).unwrap();
        apply(&mut b, &Transform::Shuffle { seed: 7 }, &Context::default()).unwrap();
        assert_eq!(a.jobs, b.jobs);
        assert_eq!(a.jobs.iter().map(|j| j.arrival_s).collect::<Vec<_>>(), vec![0, 5, 9, 12]);
        let mut works: Vec<u64> = a.jobs.iter().map(|j| j.work_s).collect();
        works.sort();
        assert_eq!(works, vec![10, 20, 30, 40]);
    }

    #[test]
    fn sampling_reaches_the_share_and_no_more_than_one_job_past_it() {
        let mut w = workload();
        let t = Transform::SampleToShare { seed: 1, share: 0.5, fleet_gpus: 16, horizon_s: 1000 };
        apply(&mut w, &t, &Context::default()).unwrap();
        let demand = w.gpu_seconds();
        assert!(demand >= 8000.0, "{demand}");
        assert!(demand < 8000.0 + 320.0, "{demand}");
        assert!(w.jobs.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
        assert!(w.jobs.iter().all(|j| j.arrival_s < 1000));
    }

    #[test]
    fn bad_share_is_refused_with_the_field() {
        let mut w = workload();
        let err = apply(
            &mut w,
            &Transform::SampleToShare { seed: 1, share: -1.0, fleet_gpus: 16, horizon_s: 10 },
            &Context::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "invalid sample-to-share.share `-1`: expected a positive share of fleet capacity such as 0.8");
    }

    #[test]
    fn fill_up_sampling_reaches_the_multiple_one_job_a_second_and_keeps_cpu_jobs() {
        let mut base = workload();
        base.jobs.push(job(20, 50, 0));
        let context = Context { fleet_gpus: 100, seed: 5 };
        let t = Transform::FillUpSample { seed: None, multiple: 1.3 };
        let mut a = base.clone();
        apply(&mut a, &t, &context).unwrap();
        let mut b = base.clone();
        apply(&mut b, &t, &context).unwrap();
        assert_eq!(a.jobs, b.jobs, "the scenario's seed decides the sample");
        let requested: u64 = a.jobs.iter().map(|j| j.total_gpus_milli()).sum();
        let before_last = requested - a.jobs.last().unwrap().total_gpus_milli();
        assert!(
            requested >= 130_000 && before_last < 130_000,
            "stops at the first job reaching 1.3 x 100 GPUs: {requested}"
        );
        assert!(
            a.jobs.iter().enumerate().all(|(i, j)| j.arrival_s == i as u64 && j.work_s == u64::MAX),
            "job i at second i, never leaving"
        );
        assert!(a.jobs.iter().any(|j| j.total_gpus_milli() == 0), "CPU-only jobs are sampled too");
        let err = apply(&mut base, &Transform::FillUpSample { seed: Some(1), multiple: 0.0 }, &context)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid fill-up-sample.multiple `0`: expected a multiple of the fleet's GPUs from 0 to 10, such as 1.3"
        );
    }

    #[test]
    fn fill_up_makes_work_permanent() {
        let mut w = workload();
        apply(&mut w, &Transform::FillUp, &Context::default()).unwrap();
        assert!(w.jobs.iter().all(|j| j.work_s == u64::MAX));
    }
}
