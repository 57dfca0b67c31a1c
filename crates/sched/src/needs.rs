//! What a job asks of the site that runs it beyond GPUs, vCPUs and memory, and the one rule that
//! keeps it off sites that cannot give it: a container image (`resources.image_id: docker:`) only
//! where the driver runs images, an upload (a local `workdir` or local `file_mounts` sources) only
//! where the driver unpacks uploads, and bucket `file_mounts` only where the fleet file says the
//! nodes mount them (`bucket_mounts: true`). The live loop (`control`) decides with these
//! functions and gives these reasons; they live in the pure core so that `cumulo offers --fleet`
//! (the fleet file's clusters as sites) and the simulator (its pools as sites) call the same rule
//! (ARCHITECTURE.md, invariant 13). [`Needs::of_file`] is the reading of a job file before
//! `cumulo submit` uploads anything, for those callers.
//!
//! Sites are judged by location: a job is denied a (provider, region) only when no site there can
//! serve it, since placement constraints name locations, not clusters. The live loop also refuses
//! a placement on an unable cluster that shares its location with an able one.

use std::collections::HashSet;

use cumulo_types::job::is_local_source;
use cumulo_types::{InfraSelector, JobSpec};

/// What a site can do for a job beyond its resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abilities {
    /// Its driver runs a job in a container image.
    pub container_images: bool,
    /// Its driver unpacks an upload into each node's working directory.
    pub uploads: bool,
    /// Its nodes mount the buckets a job's `file_mounts` name (the fleet file says so).
    pub bucket_mounts: bool,
}

impl Abilities {
    /// A site that can do everything (the default of simulated pools).
    pub const ALL: Abilities = Abilities { container_images: true, uploads: true, bucket_mounts: true };
}

impl Default for Abilities {
    fn default() -> Self {
        Abilities::ALL
    }
}

/// One place a job may run, by name, location and abilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub abilities: Abilities,
}

/// One thing a job needs of its site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    ContainerImage,
    Upload,
    BucketMounts,
}

impl Need {
    /// Whether a site with `abilities` gives this.
    pub fn met_by(self, abilities: &Abilities) -> bool {
        match self {
            Need::ContainerImage => abilities.container_images,
            Need::Upload => abilities.uploads,
            Need::BucketMounts => abilities.bucket_mounts,
        }
    }
}

/// What one job needs of its site, with the fields that ask for it (for reasons).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The container image (`resources.image_id` without `docker:`).
    pub image: Option<String>,
    /// The job file's fields its upload carries: `workdir`, `file_mounts`; empty without one.
    pub upload: Vec<&'static str>,
    /// Bucket `file_mounts`, each as `DESTINATION (SOURCE)`.
    pub buckets: Vec<String>,
}

impl Needs {
    /// The needs of a stored job: its image, the upload it carries ([`JobSpec::upload`]; a job
    /// submitted with `--no-upload` carries none) and its bucket mounts.
    pub fn of(spec: &JobSpec) -> Needs {
        let mut upload = Vec::new();
        if spec.upload.is_some() {
            if spec.workdir_uploaded() {
                upload.push("workdir");
            }
            if spec.local_file_mounts().next().is_some() {
                upload.push("file_mounts");
            }
            if upload.is_empty() {
                upload.push("upload");
            }
        }
        Needs { image: spec.image.clone(), upload, buckets: buckets_of(spec) }
    }

    /// The needs of a job file not yet submitted, with the upload `cumulo submit` would make of
    /// it (its local `workdir` and local `file_mounts` sources).
    pub fn of_file(spec: &JobSpec) -> Needs {
        let mut upload = Vec::new();
        if spec.workdir.as_deref().is_some_and(is_local_source) {
            upload.push("workdir");
        }
        if spec.local_file_mounts().next().is_some() {
            upload.push("file_mounts");
        }
        Needs { image: spec.image.clone(), upload, buckets: buckets_of(spec) }
    }

    /// Each need, in a fixed order (image, upload, buckets).
    pub fn list(&self) -> Vec<Need> {
        let mut out = Vec::new();
        if self.image.is_some() {
            out.push(Need::ContainerImage);
        }
        if !self.upload.is_empty() {
            out.push(Need::Upload);
        }
        if !self.buckets.is_empty() {
            out.push(Need::BucketMounts);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// The first need a site with `abilities` does not meet.
    pub fn unmet(&self, abilities: &Abilities) -> Option<Need> {
        self.list().into_iter().find(|n| !n.met_by(abilities))
    }

    /// Why the job is not placed on `lacking` (the names of the sites without `need`).
    pub fn reason(&self, need: Need, lacking: &[&str]) -> String {
        let mut names = lacking.to_vec();
        names.sort_unstable();
        names.dedup();
        let names = names.join(", ");
        match need {
            Need::ContainerImage => format!(
                "needs container image `{}` (resources.image_id), which cluster(s) {names} cannot run",
                self.image.as_deref().unwrap_or_default()
            ),
            Need::Upload => {
                let hint = match self.upload.as_slice() {
                    ["workdir"] => {
                        " (a workdir on the cluster's shared filesystem needs no upload: `cumulo submit --no-upload`)"
                    }
                    _ => "",
                };
                format!(
                    "needs its local {} copied onto the nodes (an upload), which cluster(s) {names} cannot do{hint}",
                    self.upload.join(" and ")
                )
            }
            Need::BucketMounts => format!(
                "file_mounts {} need a bucket mounted on the nodes, which no driver does; cluster(s) {names} do not say `bucket_mounts: true` in the fleet file",
                self.buckets.join(", ")
            ),
        }
    }

    /// One reason per need that some of `sites` lack, joined with `; `; `None` when every site
    /// gives everything the job needs.
    pub fn reasons(&self, sites: &[Site]) -> Option<String> {
        let reasons: Vec<String> = self
            .list()
            .into_iter()
            .filter_map(|need| {
                let lacking = lacking_names(sites, need);
                (!lacking.is_empty()).then(|| self.reason(need, &lacking))
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// The locations to deny this job: each (provider, region) where no site meets all its
    /// needs. Empty when it needs nothing.
    pub fn denials(&self, sites: &[Site]) -> Vec<InfraSelector> {
        self.list().into_iter().flat_map(|need| denials(sites, need)).fold(Vec::new(), |mut all, d| {
            if !all.contains(&d) {
                all.push(d);
            }
            all
        })
    }
}

fn buckets_of(spec: &JobSpec) -> Vec<String> {
    spec.bucket_mounts().map(|(dest, source)| format!("{dest} ({source})")).collect()
}

/// The names of the sites without `need`.
pub fn lacking_names(sites: &[Site], need: Need) -> Vec<&str> {
    sites.iter().filter(|s| !need.met_by(&s.abilities)).map(|s| s.name.as_str()).collect()
}

/// The locations to deny a job that needs `need`: the provider and region of each site without
/// it, unless a site with it shares them (lower-cased, as selectors match).
pub fn denials(sites: &[Site], need: Need) -> Vec<InfraSelector> {
    let location = |s: &Site| (s.provider.to_ascii_lowercase(), s.region.to_ascii_lowercase());
    let able: HashSet<(String, String)> = sites.iter().filter(|s| need.met_by(&s.abilities)).map(location).collect();
    let mut out: Vec<InfraSelector> = Vec::new();
    for site in sites.iter().filter(|s| !need.met_by(&s.abilities)) {
        let (provider, region) = location(site);
        if able.contains(&(provider.clone(), region.clone())) {
            continue;
        }
        let selector = InfraSelector { provider: Some(provider), region: Some(region), zone: None };
        if !out.contains(&selector) {
            out.push(selector);
        }
    }
    out
}

/// The first need of `needs` that no site at (`provider`, `region`) meets, when some site stands
/// there and none meets them all; `None` where no site stands (a location the sites do not speak
/// for) or one serves the job.
pub fn unmet_at(needs: &Needs, sites: &[Site], provider: &str, region: &str) -> Option<Need> {
    let here: Vec<&Site> = sites
        .iter()
        .filter(|s| s.provider.eq_ignore_ascii_case(provider) && s.region.eq_ignore_ascii_case(region))
        .collect();
    if here.is_empty() || here.iter().any(|s| needs.unmet(&s.abilities).is_none()) {
        return None;
    }
    needs.list().into_iter().find(|need| here.iter().all(|s| !need.met_by(&s.abilities)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, region: &str, abilities: Abilities) -> Site {
        Site { name: name.into(), provider: "onprem".into(), region: region.into(), abilities }
    }

    const NONE: Abilities = Abilities { container_images: false, uploads: false, bucket_mounts: false };

    fn job() -> JobSpec {
        let mut spec = JobSpec::new("j", "t");
        spec.workdir = Some("./src".into());
        spec.file_mounts.insert("/data".into(), "s3://bucket/data".into());
        spec
    }

    #[test]
    fn a_file_needs_the_upload_submit_would_make_and_a_stored_job_the_one_it_carries() {
        let spec = job();
        assert_eq!(Needs::of_file(&spec).list(), vec![Need::Upload, Need::BucketMounts]);
        assert_eq!(Needs::of(&spec).list(), vec![Need::BucketMounts], "submitted with --no-upload: no upload");
        let mut stored = spec.clone();
        stored.upload = Some("sha256:00".into());
        assert_eq!(Needs::of(&stored), Needs::of_file(&spec));
    }

    #[test]
    fn a_location_is_denied_only_when_no_site_there_can() {
        let sites = [site("slurm", "a", NONE), site("local", "a", Abilities::ALL), site("ray", "b", NONE)];
        let needs = Needs::of_file(&job());
        let denied = needs.denials(&sites);
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_eq!(denied[0].region.as_deref(), Some("b"));
        assert_eq!(unmet_at(&needs, &sites, "onprem", "a"), None);
        assert_eq!(unmet_at(&needs, &sites, "onprem", "b"), Some(Need::Upload));
        assert_eq!(unmet_at(&needs, &sites, "aws", "b"), None, "no site there: not the sites' say");
        let reasons = needs.reasons(&sites).unwrap();
        assert!(
            reasons.contains("local workdir copied onto the nodes (an upload), which cluster(s) ray, slurm cannot do")
        );
        assert!(reasons.contains("file_mounts /data (s3://bucket/data) need a bucket mounted"), "{reasons}");
        assert_eq!(Needs::default().reasons(&sites), None);
    }
}
