//! What a job needs beyond resources: a job that runs after others (a pipeline's steps,
//! `after:` in a job file) is queued only once every one of them succeeded, and cancelled with
//! the reason when one failed or was cancelled; the pending jobs of one job group are placed in
//! the same pass or none of them is. What a job needs of its site (a container image, an upload,
//! bucket mounts) is judged by `cumulo_sched::needs` (`Controller::sites` says what each cluster can do).

use std::collections::{BTreeMap, HashMap};

use cumulo_store::Store;
use cumulo_types::{JobId, JobSpec, JobState};

/// Whether a job that waits for others may be queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Ready,
    /// Not yet: the reason names the jobs still running or waiting.
    Wait(String),
    /// Never: a job it waits for failed, was cancelled or does not exist.
    Never(String),
}

/// The gate of `spec`, reading each job it waits for once per pass (`seen` keeps the answers).
pub(crate) async fn gate(
    store: &dyn Store,
    spec: &JobSpec,
    seen: &mut HashMap<JobId, Option<JobState>>,
) -> Result<Gate, cumulo_store::Error> {
    let mut waiting = Vec::new();
    for id in &spec.after {
        let state = match seen.get(id) {
            Some(state) => *state,
            None => {
                let state = match store.get_job(*id).await {
                    Ok(job) => Some(job.state),
                    Err(cumulo_store::Error::NotFound { .. }) => None,
                    Err(err) => return Err(err),
                };
                seen.insert(*id, state);
                state
            }
        };
        match state {
            None => return Ok(Gate::Never(format!("job {id}, which it runs after, does not exist"))),
            Some(JobState::Succeeded) => {}
            Some(state @ (JobState::Failed | JobState::Cancelled)) => {
                return Ok(Gate::Never(format!("job {id}, which it runs after, {state}")));
            }
            Some(state) => waiting.push(format!("job {id} ({state})")),
        }
    }
    Ok(match waiting.is_empty() {
        true => Gate::Ready,
        false => Gate::Wait(format!("waits for {} to succeed", waiting.join(", "))),
    })
}

/// Groups that must wait this pass, each with why: a member of it that the plan left pending,
/// or one still waiting for other jobs. `group_of` maps the queued or held members to their group.
pub(crate) fn blocked_groups<'a>(
    group_of: &HashMap<JobId, String>,
    waiting: impl IntoIterator<Item = (JobId, &'a str)>,
) -> BTreeMap<String, String> {
    let mut blocked = BTreeMap::new();
    for (job, reason) in waiting {
        if let Some(group) = group_of.get(&job) {
            blocked.entry(group.clone()).or_insert_with(|| {
                format!("job group {group} is placed together, and job {job} of it waits: {reason}")
            });
        }
    }
    blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_waits_for_its_first_waiting_member() {
        let group_of: HashMap<JobId, String> =
            [(JobId(1), "g".to_string()), (JobId(2), "g".to_string()), (JobId(3), "h".to_string())].into();
        let blocked = blocked_groups(&group_of, [(JobId(2), "no pool has 8 free H100"), (JobId(9), "alone")]);
        assert_eq!(
            blocked,
            BTreeMap::from([(
                "g".to_string(),
                "job group g is placed together, and job 2 of it waits: no pool has 8 free H100".to_string()
            )]),
            "group g waits because job 2 does; group h has no waiting member; job 9 is in no group"
        );
    }
}
