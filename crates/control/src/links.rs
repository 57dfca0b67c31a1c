//! What a job needs beyond resources: a job that runs after others (a pipeline's steps,
//! `after:` in a job file) is queued only once every one of them succeeded, and cancelled with
//! the reason when one failed or was cancelled; the pending jobs of one job group are placed in
//! the same pass or none of them is; a job in a container image goes only to clusters whose
//! driver runs images, a job with an upload (its local `workdir` and `file_mounts`) only to
//! clusters whose driver unpacks uploads, and a job with bucket `file_mounts` only to clusters
//! whose fleet entry says `bucket_mounts: true`.

use std::collections::{BTreeMap, HashMap, HashSet};

use cumulo_store::Store;
use cumulo_types::{InfraSelector, JobId, JobSpec, JobState};

use crate::ClusterInfo;

/// Locations to deny a job that needs what some clusters' drivers cannot do (run an image, unpack
/// an upload): the provider and region of each such cluster (`imageless`), unless a cluster that
/// can shares them.
pub(crate) fn location_denials(infos: &[ClusterInfo], imageless: &HashSet<usize>) -> Vec<InfraSelector> {
    let location = |c: &ClusterInfo| (c.provider.to_ascii_lowercase(), c.region.to_ascii_lowercase());
    let capable: HashSet<(String, String)> =
        infos.iter().enumerate().filter(|(i, _)| !imageless.contains(i)).map(|(_, c)| location(c)).collect();
    let mut denials: Vec<InfraSelector> = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        let (provider, region) = location(info);
        if imageless.contains(&i) && !capable.contains(&(provider.clone(), region.clone())) {
            let selector = InfraSelector { provider: Some(provider), region: Some(region), zone: None };
            if !denials.contains(&selector) {
                denials.push(selector);
            }
        }
    }
    denials
}

/// Why a job in a container image is not placed on the clusters that cannot run one.
pub(crate) fn image_reason(image: &str, infos: &[ClusterInfo], imageless: &HashSet<usize>) -> String {
    let mut names: Vec<&str> =
        infos.iter().enumerate().filter(|(i, _)| imageless.contains(i)).map(|(_, c)| c.name.as_str()).collect();
    names.sort_unstable();
    format!("needs container image `{image}` (resources.image_id), which cluster(s) {} cannot run", names.join(", "))
}

/// Why a job with an upload is not placed on the clusters that cannot unpack one.
pub(crate) fn upload_reason(spec: &JobSpec, infos: &[ClusterInfo], uploadless: &HashSet<usize>) -> String {
    let mut names: Vec<&str> =
        infos.iter().enumerate().filter(|(i, _)| uploadless.contains(i)).map(|(_, c)| c.name.as_str()).collect();
    names.sort_unstable();
    let mut fields = Vec::new();
    if spec.workdir_uploaded() {
        fields.push("workdir");
    }
    if spec.local_file_mounts().next().is_some() {
        fields.push("file_mounts");
    }
    let hint = match fields.as_slice() {
        ["workdir"] => " (a workdir on the cluster's shared filesystem needs no upload: `cumulo submit --no-upload`)",
        _ => "",
    };
    let fields = if fields.is_empty() { "upload".to_string() } else { fields.join(" and ") };
    format!(
        "needs its local {fields} copied onto the nodes (an upload), which cluster(s) {} cannot do{hint}",
        names.join(", ")
    )
}

/// Why a job with bucket `file_mounts` is not placed on the clusters whose fleet entry does not
/// say `bucket_mounts: true`: each bucket by destination, and those clusters.
pub(crate) fn bucket_reason(spec: &JobSpec, infos: &[ClusterInfo], bucketless: &HashSet<usize>) -> String {
    let mut names: Vec<&str> =
        infos.iter().enumerate().filter(|(i, _)| bucketless.contains(i)).map(|(_, c)| c.name.as_str()).collect();
    names.sort_unstable();
    let buckets: Vec<String> = spec.bucket_mounts().map(|(dest, source)| format!("{dest} ({source})")).collect();
    format!(
        "file_mounts {} need a bucket mounted on the nodes, which no driver does; cluster(s) {} do not say `bucket_mounts: true` in the fleet file",
        buckets.join(", "),
        names.join(", ")
    )
}

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
