//! Jobs as Cumulo understands them once a job file is parsed and normalised.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gpu::{GpuModel, GpuSelector, MilliGpu, Speed};
use crate::infra::InfraSelector;
use crate::money::Money;

/// A job's id, assigned by the store when the job is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One try at running a job: the job id and the attempt's number (1, 2, ...). Drivers key their
/// idempotence on its text form `JOB.N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    pub job: JobId,
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.job.0, self.attempt)
    }
}

/// What kind of work a job is; it decides defaults (preemptible sandboxes, restartable training).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Training,
    Inference,
    #[default]
    Batch,
    Sandbox,
}

impl JobKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::Training => "training",
            JobKind::Inference => "inference",
            JobKind::Batch => "batch",
            JobKind::Sandbox => "sandbox",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's priority: higher runs first and may preempt lower preemptible work. Named classes map
/// to fixed values; any integer is accepted too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i32);

impl Priority {
    pub const LOW: Priority = Priority(100);
    pub const NORMAL: Priority = Priority(500);
    pub const HIGH: Priority = Priority(1000);
    pub const CRITICAL: Priority = Priority(10_000);
    pub const CLASSES: &'static [(&'static str, Priority)] = &[
        ("low", Priority::LOW),
        ("normal", Priority::NORMAL),
        ("high", Priority::HIGH),
        ("critical", Priority::CRITICAL),
    ];

    pub fn parse(text: &str) -> Result<Priority, crate::Error> {
        let t = text.trim();
        if let Some((_, p)) = Priority::CLASSES.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
            return Ok(*p);
        }
        t.parse::<i32>().map(Priority).map_err(|_| crate::Error::Invalid {
            what: "priority",
            value: t.to_string(),
            expected: "low, normal, high, critical or an integer",
        })
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Priority::CLASSES.iter().find(|(_, p)| p == self) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl FromStr for Priority {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::parse(s)
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i32),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(i) => Ok(Priority(i)),
            Raw::Name(n) => Priority::parse(&n).map_err(serde::de::Error::custom),
        }
    }
}

/// Where the nodes of a gang must sit relative to each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyNeed {
    /// All nodes in one NVLink domain (an NVL72 rack; an 8-GPU node is its own domain).
    NvlinkDomain,
    /// All nodes in one network block (a set of racks on one non-blocking fabric).
    Block,
    /// All nodes in one availability zone.
    Zone,
    #[default]
    Any,
}

impl TopologyNeed {
    pub const fn as_str(self) -> &'static str {
        match self {
            TopologyNeed::NvlinkDomain => "nvlink-domain",
            TopologyNeed::Block => "block",
            TopologyNeed::Zone => "zone",
            TopologyNeed::Any => "any",
        }
    }
}

impl fmt::Display for TopologyNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an inference job's replicas are spread for resilience.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpreadPolicy {
    #[default]
    None,
    /// Replicas over at least two providers.
    Providers,
    /// Replicas over at least two regions.
    Regions,
}

/// GPUs wanted on each node: which models and how many (possibly a fraction of one GPU).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcceleratorDemand {
    pub selector: GpuSelector,
    pub per_node: MilliGpu,
    /// The accelerator names as the job file wrote them, which is how SkyPilot keeps them when it
    /// loads a file (`Gaudi` for the model `Gaudi HL-205`, `a100` for `A100`): one per model of
    /// `selector`, in its order, or the one name of a `named` selector; empty when the file wrote
    /// none (an instance type's GPUs). Shown, never matched: demands for the same GPUs are equal
    /// whatever their spelling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl AcceleratorDemand {
    /// `per_node` GPUs of `selector`, with no written names.
    pub fn new(selector: GpuSelector, per_node: MilliGpu) -> AcceleratorDemand {
        AcceleratorDemand { selector, per_node, names: Vec::new() }
    }
}

impl PartialEq for AcceleratorDemand {
    fn eq(&self, other: &Self) -> bool {
        self.selector == other.selector && self.per_node == other.per_node
    }
}

impl Eq for AcceleratorDemand {}

impl std::hash::Hash for AcceleratorDemand {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.selector.hash(state);
        self.per_node.hash(state);
    }
}

impl fmt::Display for AcceleratorDemand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.selector, self.per_node)
    }
}

/// One acceptable shape of resources per node. A job lists one or more (SkyPilot's `any_of` /
/// `ordered`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceOption {
    /// GPUs per node; `None` for CPU-only work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<AcceleratorDemand>,
    /// vCPUs per node in thousandths. The job is given this many; see `cpus_or_more`.
    #[serde(default)]
    pub cpus_milli: u32,
    /// True when the file said "at least" (`4+`, SkyPilot's form); false for an exact count
    /// (`cpus: 4`). Either way a node is shared and the job holds `cpus_milli`; the flag keeps
    /// what the file asked for (SkyPilot picks instance types by it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cpus_or_more: bool,
    /// Memory per node in MiB (held by the job); see `memory_or_more`.
    #[serde(default)]
    pub memory_mib: u64,
    /// True when the file said "at least" (`32+`); false for an exact size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_or_more: bool,
    /// Where it may run; `None` is anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra: Option<InfraSelector>,
    /// Whether spot capacity may be used.
    #[serde(default)]
    pub use_spot: bool,
    /// A specific instance type (SkyPilot's `instance_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// Limits on where a job may go beyond its resource options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Constraints {
    /// Places the job must never go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<InfraSelector>,
    /// The most the job may cost per hour, all nodes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_hour: Option<Money>,
}

/// Where a training job writes checkpoints, so a later attempt can resume.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub dir: String,
    /// How often the job checkpoints, in seconds (used to estimate work lost on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_s: Option<u64>,
}

/// A job as submitted and normalised: the unit the store keeps and the scheduler places.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    pub kind: JobKind,
    pub tenant: String,
    pub priority: Priority,
    /// Whether higher-priority work may preempt it.
    pub preemptible: bool,
    /// Acceptable resource shapes per node, at least one.
    pub resources: Vec<ResourceOption>,
    /// True when `resources` is in order of preference (SkyPilot's `ordered`).
    #[serde(default)]
    pub ordered: bool,
    /// Nodes in the gang; all are placed or none.
    pub num_nodes: u32,
    pub topology: TopologyNeed,
    /// Replicas of an inference job; 1 otherwise.
    pub replicas: u32,
    #[serde(default)]
    pub spread: SpreadPolicy,
    #[serde(default)]
    pub constraints: Constraints,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// SkyPilot `secrets`: environment variables of the job's processes whose values are never
    /// shown. `None` until the submitter gives the value (`cumulo submit` reads it from its own
    /// environment or `--secret NAME=VALUE`); the server stores only sealed values
    /// (`cumulo_store::secrets`) and shows the names with the values masked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// SkyPilot `file_mounts`: destination on the node → source (a local path on the submitter's
    /// machine, or a bucket URL such as `s3://bucket/path`). Local sources reach the nodes only
    /// through [`JobSpec::upload`]; bucket URLs are mounted by no driver (the job file's warning
    /// says so).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_mounts: BTreeMap<String, String>,
    /// The upload (`sha256:HEX`, see `POST /v1/uploads`) holding the local `workdir` and the local
    /// `file_mounts` sources, laid out as they go under the job's working directory on a node.
    /// Only clusters whose driver unpacks uploads take such a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Attempts before the job is failed for good.
    pub max_attempts: u32,
    /// Expected run time in seconds, when the user knows it (used by the simulator and backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// A container image to run the job in (SkyPilot's `image_id: docker:IMAGE`, without the
    /// prefix). Only clusters whose driver runs container images take such a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Jobs that must have succeeded before this one is queued (a pipeline's previous step, or
    /// `after:` in a Cumulo file). When one fails or is cancelled, this job is cancelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<JobId>,
    /// The job group (SkyPilot's `execution: parallel`) this job belongs to: the pending jobs of
    /// one group are placed together in one pass, or none of them is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How fast the job runs on each GPU model, relative to the others (`speedups: {V100: 3.0,
    /// K80: 1.0}`): heterogeneity rounds (`cumulo_sched::hetero`) give the fast models to the jobs
    /// that gain most and move a running preemptible or checkpointing job to a model at least
    /// `min_gain` faster (where every job of the round states a `duration_s`: to the work that
    /// finishes soonest, the cost of a move weighed). A usable model not listed counts as 1.0.
    /// Empty: the same speed everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub speedups: BTreeMap<GpuModel, Speed>,
}

impl JobSpec {
    /// Whether the upload carries the workdir: it does when there is an upload and the workdir is
    /// a local path (not a git repository), so the job's working directory is that copy.
    pub fn workdir_uploaded(&self) -> bool {
        self.upload.is_some() && self.workdir.as_deref().is_some_and(is_local_source)
    }

    /// The `file_mounts` whose source is a local path (those an upload carries).
    pub fn local_file_mounts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.file_mounts.iter().filter(|(_, src)| is_local_source(src)).map(|(d, s)| (d.as_str(), s.as_str()))
    }

    /// The `file_mounts` whose source is a bucket (`s3://...`, a bucket SkyPilot would create
    /// kept as `STORE://NAME`): no driver mounts one.
    pub fn bucket_mounts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.file_mounts.iter().filter(|(_, src)| !is_local_source(src)).map(|(d, s)| (d.as_str(), s.as_str()))
    }

    /// A CPU-only single-node batch job with defaults, for tests and generators.
    pub fn new(name: &str, tenant: &str) -> JobSpec {
        JobSpec {
            name: name.to_string(),
            kind: JobKind::Batch,
            tenant: tenant.to_string(),
            priority: Priority::NORMAL,
            preemptible: false,
            resources: vec![ResourceOption { cpus_milli: 1000, ..ResourceOption::default() }],
            ordered: false,
            num_nodes: 1,
            topology: TopologyNeed::Any,
            replicas: 1,
            spread: SpreadPolicy::None,
            constraints: Constraints::default(),
            envs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            workdir: None,
            file_mounts: BTreeMap::new(),
            upload: None,
            setup: None,
            run: None,
            checkpoint: None,
            max_attempts: 3,
            duration_s: None,
            image: None,
            after: Vec::new(),
            group: None,
            speedups: BTreeMap::new(),
        }
    }
}

/// True for a path on the submitter's machine; false for a URL (`s3://...`, `https://...`,
/// `git@host:repo`) or a `workdir` written as a git repository (`URL@REF`).
pub fn is_local_source(source: &str) -> bool {
    let source = source.trim();
    !source.is_empty() && !source.contains("://") && !source.starts_with("git@")
}

/// The hex digest of an upload id `sha256:<64 lower-case hex digits>`; `None` for anything else
/// (so that an id never names a path).
pub fn upload_hex(upload: &str) -> Option<&str> {
    let hex = upload.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// Where a `file_mounts` destination goes on a node of a driver that unpacks uploads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountPlace {
    /// Inside the job's working directory (a relative destination, or `~/...`: the job's `HOME`
    /// is its working directory): this path relative to it; empty for `~` itself.
    WorkDir(String),
    /// An absolute destination outside the working directory: the upload holds it under
    /// [`UPLOAD_ABSOLUTE_DIR`]`/<path without its leading />`.
    Absolute(String),
}

/// The folder of an upload (and of the working directory it is unpacked into) that holds the
/// `file_mounts` with absolute destinations.
pub const UPLOAD_ABSOLUTE_DIR: &str = ".cumulo-mounts";

impl MountPlace {
    /// Reads a destination; `None` for one with `..` components or an empty one.
    pub fn of(dest: &str) -> Option<MountPlace> {
        let dest = dest.trim();
        if dest.is_empty() || dest.split('/').any(|part| part == "..") {
            return None;
        }
        let clean = |p: &str| p.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/");
        if dest == "~" {
            return Some(MountPlace::WorkDir(String::new()));
        }
        if let Some(rest) = dest.strip_prefix("~/") {
            return Some(MountPlace::WorkDir(clean(rest)));
        }
        if dest.starts_with('/') {
            let path = clean(dest);
            return (!path.is_empty()).then(|| MountPlace::Absolute(format!("/{path}")));
        }
        Some(MountPlace::WorkDir(clean(dest)))
    }

    /// The path inside the upload (and the working directory) that holds this destination.
    pub fn upload_path(&self) -> String {
        match self {
            MountPlace::WorkDir(rel) => rel.clone(),
            MountPlace::Absolute(abs) => format!("{UPLOAD_ABSOLUTE_DIR}{abs}"),
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, waiting for capacity.
    Pending,
    /// Placed; its attempt is being launched.
    Launching,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: &'static [JobState] = &[
        JobState::Pending,
        JobState::Launching,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Launching => "launching",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.iter().copied().find(|st| st.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            crate::Error::Invalid {
                what: "job state",
                value: s.to_string(),
                expected: "pending, launching, running, succeeded, failed or cancelled",
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_by_name_or_number() {
        assert_eq!(Priority::parse("high").unwrap(), Priority::HIGH);
        assert_eq!(Priority::parse("42").unwrap(), Priority(42));
        assert!(Priority::parse("urgent").is_err());
        assert_eq!(Priority::HIGH.to_string(), "high");
        let p: Priority = serde_json::from_str("\"critical\"").unwrap();
        assert_eq!(p, Priority::CRITICAL);
    }

    #[test]
    fn attempt_ids_print_as_job_dot_attempt() {
        assert_eq!(AttemptId { job: JobId(42), attempt: 3 }.to_string(), "42.3");
    }

    #[test]
    fn job_spec_round_trips_through_json() {
        let job = JobSpec::new("x", "research");
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&text).unwrap(), job);
    }
}
