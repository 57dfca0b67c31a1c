//! Durable state behind one object-safe trait: jobs, attempts, tokens, leadership and events.
//!
//! The `Store` trait is what the API and the reconcile loop (`control`) talk to; `store-sqlite` (the
//! default, one file) and `store-postgres` implement it, and both run the one conformance suite in
//! [`conformance`] (feature `conformance`).
//!
//! Guarantees every implementation keeps (each checked by a conformance test):
//! - a submit is durable before it returns, and a batch is all-or-nothing;
//! - a retried submit with the same `(tenant, idempotency key)` returns the first job's id and creates
//!   nothing (`Submitted::created == false`);
//! - attempt ids are assigned and persisted by `commit_plan` before the caller may dispatch them, in
//!   the same transaction as the job's move out of `pending`;
//! - attempt states only move forward: an update to an attempt already in a terminal state is ignored;
//! - nothing is launched twice: a job with one replica gets a new attempt only while `pending`, and
//!   each replica of a job with several has at most one active attempt;
//! - a failed call changes nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use cumulo_types::{AttemptId, JobId, JobSpec, JobState};

pub mod budget;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod secrets;
pub mod usage;

/// What went wrong in a store call. `Backend` carries text for logs; API layers must not send it to
/// clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid {field} `{value}`: expected {expected}")]
    Invalid { field: &'static str, value: String, expected: &'static str },
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The database could not write because its disk is full or it is read-only (SQLite's
    /// `SQLITE_FULL`/`SQLITE_READONLY`, PostgreSQL's class 53 and `25006`). Nothing of the call was
    /// stored; the same call may succeed once space returns. The text is the backend's, for the log.
    #[error("storage full or read-only: {0}")]
    StorageFull(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One job to submit. The key, when given, makes retries safe: it is unique per tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    pub spec: JobSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The answer for one submitted job, in the order of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: JobId,
    /// False when an earlier submit with the same tenant and idempotency key already created it.
    pub created: bool,
}

/// Where one attempt is in its life. `Planned` is written by `commit_plan` before dispatch;
/// the last five are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptState {
    Planned,
    Launching,
    Running,
    Succeeded,
    Failed,
    Lost,
    Cancelled,
    Preempted,
}

impl AttemptState {
    pub const ALL: &'static [AttemptState] = &[
        AttemptState::Planned,
        AttemptState::Launching,
        AttemptState::Running,
        AttemptState::Succeeded,
        AttemptState::Failed,
        AttemptState::Lost,
        AttemptState::Cancelled,
        AttemptState::Preempted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptState::Planned => "planned",
            AttemptState::Launching => "launching",
            AttemptState::Running => "running",
            AttemptState::Succeeded => "succeeded",
            AttemptState::Failed => "failed",
            AttemptState::Lost => "lost",
            AttemptState::Cancelled => "cancelled",
            AttemptState::Preempted => "preempted",
        }
    }

    pub const fn is_terminal(self) -> bool {
        !matches!(self, AttemptState::Planned | AttemptState::Launching | AttemptState::Running)
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        AttemptState::ALL.iter().copied().find(|st| st.as_str() == s).ok_or_else(|| Error::Invalid {
            field: "attempt state",
            value: s.to_string(),
            expected: "planned, launching, running, succeeded, failed, lost, cancelled or preempted",
        })
    }
}

/// One attempt of a job as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub id: AttemptId,
    /// Which replica of its job this attempt runs: `0..spec.replicas` (always 0 for one replica).
    #[serde(default)]
    pub replica: u32,
    pub state: AttemptState,
    /// Where the plan put it (the scheduler's placement, as JSON: cluster, nodes, price...).
    pub placement: serde_json::Value,
    /// The last thing a driver or the loop said about it (exit reason, loss reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A job as stored. `attempts` is filled by `get_job` (oldest first) and left empty by `list_jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// Why the last scheduling pass left it (or, for a job with several replicas, one of them)
    /// waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// A cancel was asked for while an attempt was active; the loop stops the attempt.
    pub cancel_requested: bool,
    /// Attempts made so far (the number of the latest).
    pub attempt_count: u32,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
}

/// A pending job as [`Store::pending_keys`] lists it. A job's spec, priority and submit time never
/// change once stored; while it stays pending and not cancel-requested, only `attempt_count`
/// moves (each attempt planned for it), so the pair says whether the job is the one seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingKey {
    pub id: JobId,
    pub attempt_count: u32,
}

impl PendingKey {
    pub fn of(job: &JobRecord) -> PendingKey {
        PendingKey { id: job.id, attempt_count: job.attempt_count }
    }
}

/// Which jobs `list_jobs` returns: ids in `order`, strictly beyond `after` in that order (keyset
/// pagination: ascending ids after it, or with [`JobOrder::NewestFirst`] descending ids below it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub tenant: Option<String>,
    pub after: Option<JobId>,
    /// At most this many; 0 means [`JobFilter::DEFAULT_LIMIT`], larger than [`JobFilter::MAX_LIMIT`] is
    /// capped.
    pub limit: u32,
    /// Only jobs of this kind (`training`, `inference`, `batch`, `sandbox`).
    #[serde(default)]
    pub kind: Option<cumulo_types::JobKind>,
    /// Only jobs whose name contains this text, ignoring ASCII case.
    #[serde(default)]
    pub name_contains: Option<String>,
    /// Only jobs with an attempt placed on this cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub order: JobOrder,
}

/// The order of [`Store::list_jobs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOrder {
    /// Ascending ids (the API's default; every job exactly once while paging).
    #[default]
    OldestFirst,
    /// Descending ids (the dashboard's list).
    NewestFirst,
}

/// A tenant created over the API, beside those of the fleet file (which are not stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    /// Fair-share weight (at least 1).
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_milli: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_milli: Option<u64>,
    pub created_at: DateTime<Utc>,
}

/// One sample of the server's history (the dashboard's charts): `metric` for `label` at `at`,
/// e.g. `jobs` / `pending`, `gpu_utilisation` / `aws`, `cost_by_tenant` / `research` (µ$ so far).
/// Values are floats: history is for charts, never for accounting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub at: DateTime<Utc>,
    pub metric: String,
    pub label: String,
    pub value: f64,
}

/// Checks a tenant before it is stored: its name ([`check_tenant_name`]) and a weight of at least 1.
pub fn check_tenant(tenant: &TenantRecord) -> Result<()> {
    check_tenant_name(&tenant.name)?;
    if tenant.weight == 0 {
        return Err(Error::Invalid { field: "weight", value: "0".to_string(), expected: "a weight of at least 1" });
    }
    Ok(())
}

/// Checks a tenant name: 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter.
pub fn check_tenant_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(Error::Invalid {
        field: "tenant name",
        value: name.to_string(),
        expected: "1 to 64 lowercase letters, digits, '-' or '_', starting with a letter",
    })
}

impl JobFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// One page of `list_jobs`. `next` is the `after` for the next page, `None` on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    pub next: Option<JobId>,
}

/// What an API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            _ => Err(Error::Invalid { field: "role", value: s.to_string(), expected: "admin, member or viewer" }),
        }
    }
}

/// An API token as stored: only its hash (the caller hashes; the store never sees the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub hash: String,
    pub tenant: String,
    pub role: Role,
    /// A label for people (`admin`, `ci-bot`).
    pub name: String,
}

/// An attempt the loop must watch, with its job's spec (for the snapshot's used capacity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAttempt {
    pub attempt: AttemptRecord,
    pub spec: JobSpec,
    pub cancel_requested: bool,
    /// A plan preempted it: the loop stops it and records `preempted` once its cluster confirms.
    #[serde(default)]
    pub preempt_requested: bool,
}

/// A placement decided by a scheduling pass, to be persisted as a new attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAttempt {
    pub job: JobId,
    /// Which replica of the job it runs (0 for jobs with one replica).
    #[serde(default)]
    pub replica: u32,
    pub placement: serde_json::Value,
}

/// Everything one scheduling pass decided, applied by `commit_plan` in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanCommit {
    /// New attempts. A launch is skipped when its job is cancel-requested, when its replica is not
    /// below the job's `replicas`, and when its job is not `pending` unless the job has several
    /// replicas, is `launching` or `running`, and that replica has no active attempt (a lost replica
    /// is re-placed while the others run).
    pub launches: Vec<NewAttempt>,
    /// Jobs left waiting and why: a pending job, or a launching or running job with several
    /// replicas some of which wait (the reason then says which). Kept as the job's
    /// `pending_reason` until an attempt of it is planned or changes state.
    pub pending_reasons: Vec<(JobId, String)>,
    /// Active attempts to preempt: marked `preempt_requested` (see [`ActiveAttempt`]); they stay
    /// active until the loop has stopped them and written `preempted`, which requeues their jobs.
    /// Attempts no longer active are ignored.
    pub preemptions: Vec<AttemptId>,
    /// Why some of `preemptions` are stopped, when it is not the scheduler making room (a
    /// heterogeneity round moving a job to a faster GPU model): their `attempt_preempting` event
    /// says this instead of "preempted by the scheduler".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preemption_reasons: Vec<PreemptionReason>,
}

/// Why a plan stops an attempt (see [`PlanCommit::preemption_reasons`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreemptionReason {
    pub attempt: AttemptId,
    /// Follows "attempt 3.1 " in the event: `moves from K80 to V100 at a heterogeneity round ...`.
    pub reason: String,
}

impl PlanCommit {
    /// The `attempt_preempting` event's text for one of `preemptions`.
    pub fn preempting_text(&self, attempt: AttemptId) -> String {
        match self.preemption_reasons.iter().find(|r| r.attempt == attempt) {
            Some(r) => format!("attempt {attempt} {}; stopping it", r.reason),
            None => format!("attempt {attempt} preempted by the scheduler; stopping it"),
        }
    }
}

/// What `commit_plan` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanApplied {
    /// The attempts created, in the order of `launches` less the skipped ones; state `planned`.
    pub attempts: Vec<AttemptId>,
    /// Launches skipped because their job or replica was no longer waiting (cancelled or placed
    /// meanwhile), one entry per skipped launch.
    pub skipped: Vec<JobId>,
}

/// A change to an attempt observed by the loop (from a driver, or a decision such as "lost").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptUpdate {
    pub id: AttemptId,
    pub state: AttemptState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line of a job's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    pub job: JobId,
    pub at: DateTime<Utc>,
    /// Short machine-readable kind: `cancel_requested`, `attempt_planned`, `attempt_running`, ...
    pub kind: String,
    pub message: String,
}

/// Durable state. Every method is one transaction: when it returns an error nothing was changed.
/// Implementations are `Send + Sync` and shared as `Arc<dyn Store>`.
///
/// Job state follows the attempts (the store derives it, callers never set it directly).
/// A job with one replica follows its latest attempt: `commit_plan` moves it `pending → launching`;
/// an attempt `running` makes it `running`; `succeeded` makes it `succeeded`; `cancelled` makes it
/// `cancelled`; `failed` or `lost` requeue it (`pending`) while its failed and lost attempts are
/// fewer than `spec.max_attempts` and fail it otherwise; `preempted` always requeues it (a
/// cancel-requested job is cancelled instead of requeued). A job with several replicas follows all
/// of its attempts, see [`job_state_of_replicas`]: it runs while any replica runs, a replica that
/// ends while others run leaves the job running (the loop re-places it, see [`replicas_to_place`]),
/// and `max_attempts` counts per replica.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Accepts jobs atomically: all are durable when it returns `Ok`, or none is stored. Per
    /// `(tenant, idempotency_key)` at most one job exists; a repeat returns that job's id with
    /// `created: false` (also within one batch).
    async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>>;

    /// A job with its attempts (oldest first). `Error::NotFound` when there is none.
    async fn get_job(&self, id: JobId) -> Result<JobRecord>;

    /// The job an earlier submit created with `(tenant, idempotency key)`, if any. Reads only.
    async fn job_by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<JobId>>;

    /// Jobs by ascending id after `filter.after`, without attempts.
    async fn list_jobs(&self, filter: JobFilter) -> Result<JobPage>;

    /// Cancels a job: a pending job becomes `cancelled` at once; a job with an active attempt gets
    /// `cancel_requested` (the loop stops the attempt, whose `cancelled` update ends the job).
    /// Cancelling a cancelled job is a no-op; a succeeded or failed job gives `Error::Conflict`.
    /// Returns the job after the change.
    async fn cancel_job(&self, id: JobId) -> Result<JobRecord>;

    /// Cancels a job that is still `pending` because it can no longer run (a job it waits for
    /// failed or was cancelled): it becomes `cancelled` with `reason` kept as its
    /// `pending_reason` and told in its events. Returns false, changing nothing, for a job in any
    /// other state; `Error::NotFound` for an unknown job. Nothing changes on failure.
    async fn cancel_pending(&self, id: JobId, reason: &str) -> Result<bool>;

    /// How many jobs are in each state (every state present, zero included).
    async fn job_counts_by_state(&self) -> Result<BTreeMap<JobState, u64>>;

    /// A job's history, oldest first. Empty for an unknown job.
    async fn job_events(&self, id: JobId) -> Result<Vec<EventRecord>>;

    /// Stores a token; `Error::Conflict` when the hash already exists.
    async fn create_token(&self, token: TokenRecord) -> Result<()>;

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;

    async fn token_count(&self) -> Result<u64>;

    /// Up to `limit` pending, not cancel-requested jobs, oldest first.
    async fn pending_jobs(&self, limit: u32) -> Result<Vec<JobRecord>>;

    /// The keys of the jobs `pending_jobs(limit)` returns, in its order, without their specs: what
    /// the loop compares between passes (an unchanged window needs no new plan) and keys its cache
    /// of parsed specs by. Backends answer it from the jobs' index and two columns; this default
    /// reads the whole jobs.
    async fn pending_keys(&self, limit: u32) -> Result<Vec<PendingKey>> {
        Ok(self.pending_jobs(limit).await?.iter().map(PendingKey::of).collect())
    }

    /// The jobs with these ids, in ascending id order, without their attempts; ids not stored are
    /// left out. The loop reads the specs it has not parsed yet with it.
    async fn jobs_by_ids(&self, ids: Vec<JobId>) -> Result<Vec<JobRecord>> {
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get_job(id).await {
                Ok(mut job) => {
                    job.attempts.clear();
                    jobs.push(job);
                }
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Attempts in `planned`, `launching` or `running`, with their jobs' specs.
    async fn active_attempts(&self) -> Result<Vec<ActiveAttempt>>;

    /// Persists one scheduling pass in one transaction (see [`PlanCommit`]). The new attempt ids are
    /// durable when it returns; only then may they be dispatched.
    async fn commit_plan(&self, plan: PlanCommit) -> Result<PlanApplied>;

    /// Applies observed attempt changes in one transaction and derives job states. Updates to unknown
    /// attempts give `Error::NotFound` (and nothing is applied); updates to terminal attempts and
    /// repeats of the current state are ignored.
    async fn update_attempts(&self, updates: Vec<AttemptUpdate>) -> Result<()>;

    /// Takes or renews leadership for `ttl_s` seconds. True when `holder` leads now. A single-process
    /// backend (SQLite) always answers true.
    async fn try_lead(&self, holder: &str, ttl_s: u32) -> Result<bool>;

    /// This deployment's id: 8 lowercase hex characters, made once when the database was created
    /// (migration 5) and the same on every call and every server sharing the database. Drivers put
    /// it in engine job names so two deployments sharing one engine never adopt each other's jobs.
    async fn deployment_id(&self) -> Result<String>;

    /// Lost attempts whose engine has not yet confirmed they stopped (oldest first): the loop asks
    /// their drivers to cancel them on every pass until [`Store::stopped_on_engine`] is called. An
    /// attempt joins this list when it moves to `lost`.
    async fn attempts_to_stop_on_engine(&self) -> Result<Vec<AttemptRecord>>;

    /// Records that the engines of these attempts confirmed the stop (or no longer know them). Ids
    /// not in [`Store::attempts_to_stop_on_engine`] are ignored.
    async fn stopped_on_engine(&self, ids: Vec<AttemptId>) -> Result<()>;

    /// Appends metered usage records (the ledger's) in one transaction and returns how many were
    /// written (new, or extending a stored record). Idempotent per `(attempt, node rank, start)`: a
    /// record already stored, or a shorter version of it, is skipped; a longer version on the same
    /// terms replaces the stored one (`usage::append_decision`). A different record under a stored
    /// key, or node-time overlapping what is stored for the same attempt and node, gives
    /// `Error::Conflict`; a record whose costs do not match its rates gives
    /// `Error::Invalid`. On any error nothing of the batch is stored. (Added by the ledger; the
    /// default answers `Error::Backend` for stores without usage tables.)
    async fn append_usage(&self, records: Vec<usage::UsageRecord>) -> Result<u64> {
        let _ = records;
        Err(Error::Backend("this store keeps no usage records".into()))
    }

    /// Usage records overlapping `[since, until)` (open ends unbounded), whole (callers clip), in key
    /// order: job, attempt, node rank, start.
    async fn usage_between(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<usage::UsageRecord>> {
        let _ = (since, until);
        Err(Error::Backend("this store keeps no usage records".into()))
    }

    /// One keyset page of usage records: those overlapping `[since, until)` (of `tenant`, when
    /// given), ordered by `(start, job, attempt, node rank)` and strictly after `after`; at most
    /// `limit`. A failed read changes nothing. (The default answers `Error::Backend`, as above.)
    async fn usage_page(&self, query: usage::UsagePageQuery) -> Result<Vec<usage::UsageRecord>> {
        let _ = query;
        Err(Error::Backend("this store keeps no usage records".into()))
    }

    /// Stores a new tenant. `Error::Invalid` for a bad name or a weight of 0, `Error::Conflict`
    /// when a tenant of that name is stored already; nothing changes on error.
    async fn create_tenant(&self, tenant: TenantRecord) -> Result<()> {
        let _ = tenant;
        Err(Error::Backend("this store keeps no tenants".into()))
    }

    /// Stored tenants by name.
    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        Ok(Vec::new())
    }

    /// Sets (or replaces) a tenant's monthly budget. `Error::Invalid` for a bad tenant name or a
    /// negative amount; nothing changes on error. The caller checks that the tenant exists.
    async fn set_budget(&self, budget: budget::BudgetRecord) -> Result<()> {
        let _ = budget;
        Err(Error::Backend("this store keeps no budgets".into()))
    }

    /// Stored budgets by tenant name.
    async fn budgets(&self) -> Result<Vec<budget::BudgetRecord>> {
        Ok(Vec::new())
    }

    /// Appends history samples in one transaction (all or none).
    async fn append_history(&self, points: Vec<HistoryPoint>) -> Result<()> {
        let _ = points;
        Err(Error::Backend("this store keeps no history".into()))
    }

    /// History samples at or after `since`, oldest first.
    async fn history_since(&self, since: DateTime<Utc>) -> Result<Vec<HistoryPoint>> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Deletes history samples older than `before`; returns how many went.
    async fn forget_history(&self, before: DateTime<Utc>) -> Result<u64> {
        let _ = before;
        Ok(0)
    }
}

/// What a job becomes when its latest attempt moves to `attempt`. `failures` counts the job's failed
/// and lost attempts including this one. Shared by every backend so they derive states alike.
pub fn job_state_after_attempt(
    attempt: AttemptState,
    cancel_requested: bool,
    failures: u32,
    max_attempts: u32,
) -> JobState {
    match attempt {
        AttemptState::Planned | AttemptState::Launching => JobState::Launching,
        AttemptState::Running => JobState::Running,
        AttemptState::Succeeded => JobState::Succeeded,
        AttemptState::Cancelled => JobState::Cancelled,
        _ if cancel_requested => JobState::Cancelled,
        AttemptState::Preempted => JobState::Pending,
        AttemptState::Failed | AttemptState::Lost if failures >= max_attempts.max(1) => JobState::Failed,
        AttemptState::Failed | AttemptState::Lost => JobState::Pending,
    }
}

/// One attempt as the rules for jobs with several replicas see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAttempt {
    pub attempt: u32,
    pub replica: u32,
    pub state: AttemptState,
}

impl From<&AttemptRecord> for ReplicaAttempt {
    fn from(record: &AttemptRecord) -> ReplicaAttempt {
        ReplicaAttempt { attempt: record.id.attempt, replica: record.replica, state: record.state }
    }
}

/// The latest attempt of `replica` (highest attempt number), if any.
fn latest_of_replica(attempts: &[ReplicaAttempt], replica: u32) -> Option<&ReplicaAttempt> {
    attempts.iter().filter(|a| a.replica == replica).max_by_key(|a| a.attempt)
}

/// Failed and lost attempts of `replica`: what `max_attempts` bounds for jobs with several replicas.
fn replica_failures(attempts: &[ReplicaAttempt], replica: u32) -> u32 {
    attempts
        .iter()
        .filter(|a| a.replica == replica && matches!(a.state, AttemptState::Failed | AttemptState::Lost))
        .count() as u32
}

/// Whether `replica` waits for a new attempt: it has none yet, or its latest attempt failed, was
/// lost or was preempted (a replica that succeeded or was cancelled is done).
fn replica_waits(attempts: &[ReplicaAttempt], replica: u32) -> bool {
    latest_of_replica(attempts, replica)
        .is_none_or(|a| matches!(a.state, AttemptState::Failed | AttemptState::Lost | AttemptState::Preempted))
}

/// The state of a job with several replicas, from all its attempts (after the change being
/// applied). It runs while any replica runs and launches while any launches. With no active attempt
/// left it has ended: `succeeded` when every replica's latest attempt succeeded, else `cancelled`
/// when a cancel was requested, else `failed` when a waiting replica (see [`replicas_to_place`]) has
/// used up `max_attempts` (counted per replica: its failed and lost attempts), else `pending` when a
/// replica waits (it is requeued), else `cancelled` (every replica succeeded or was cancelled on its
/// engine). Shared by every backend so they derive states alike.
pub fn job_state_of_replicas(
    replicas: u32,
    attempts: &[ReplicaAttempt],
    cancel_requested: bool,
    max_attempts: u32,
) -> JobState {
    let active: Vec<AttemptState> = attempts.iter().map(|a| a.state).filter(|s| !s.is_terminal()).collect();
    if active.contains(&AttemptState::Running) {
        return JobState::Running;
    }
    if !active.is_empty() {
        return JobState::Launching;
    }
    let replicas = replicas.max(1);
    let all_succeeded =
        (0..replicas).all(|r| latest_of_replica(attempts, r).is_some_and(|a| a.state == AttemptState::Succeeded));
    if all_succeeded {
        return JobState::Succeeded;
    }
    if cancel_requested {
        return JobState::Cancelled;
    }
    let waiting: Vec<u32> = (0..replicas).filter(|r| replica_waits(attempts, *r)).collect();
    if waiting.iter().any(|r| replica_failures(attempts, *r) >= max_attempts.max(1)) {
        JobState::Failed
    } else if !waiting.is_empty() {
        JobState::Pending
    } else {
        JobState::Cancelled
    }
}

/// The replicas of a job that the loop should place now: those without an active attempt that wait
/// (no attempt yet, or the latest failed, was lost or was preempted) and have used fewer than
/// `spec.max_attempts` failed or lost attempts. Empty for a cancel-requested or ended job. `job`
/// must carry its attempts (`Store::get_job`). For a job with one replica this is `[0]` exactly when
/// it is pending.
pub fn replicas_to_place(job: &JobRecord) -> Vec<u32> {
    if job.cancel_requested || !matches!(job.state, JobState::Pending | JobState::Launching | JobState::Running) {
        return Vec::new();
    }
    let replicas = job.spec.replicas.max(1);
    if replicas == 1 {
        return if job.state == JobState::Pending { vec![0] } else { Vec::new() };
    }
    let attempts: Vec<ReplicaAttempt> = job.attempts.iter().map(ReplicaAttempt::from).collect();
    (0..replicas)
        .filter(|r| {
            !attempts.iter().any(|a| a.replica == *r && !a.state.is_terminal())
                && replica_waits(&attempts, *r)
                && replica_failures(&attempts, *r) < job.spec.max_attempts.max(1)
        })
        .collect()
}

/// Whether an attempt may move from `from` to `to`: terminal states are final and active states only
/// move forward (planned → launching → running). Repeats are not moves.
pub fn attempt_may_move(from: AttemptState, to: AttemptState) -> bool {
    !from.is_terminal() && from != to && (to.is_terminal() || to > from)
}

/// Checks a job before it is stored: the store keeps what the scheduler can read back.
pub fn check_new_job(job: &NewJob) -> Result<()> {
    if job.spec.tenant.trim().is_empty() {
        return Err(Error::Invalid {
            field: "tenant",
            value: job.spec.tenant.clone(),
            expected: "a non-empty tenant name",
        });
    }
    if let Some(key) = &job.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(Error::Invalid {
            field: "idempotency key",
            value: key.chars().take(64).collect(),
            expected: "1 to 255 characters",
        });
    }
    Ok(())
}

/// Microseconds since the Unix epoch, the form both backends store times in.
pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Whether `text` can be stored as text by every backend: PostgreSQL's text holds no NUL byte.
pub fn storable_text(text: &str) -> bool {
    !text.contains('\0')
}

/// The reason each job of a plan's `pending_reasons` keeps: the last one given for it, as when they
/// are applied one by one; one entry per job, in the order of each job's first mention. Lets a store
/// write them all in one statement.
pub fn last_reason_per_job(reasons: &[(JobId, String)]) -> Vec<(JobId, &str)> {
    let mut index: std::collections::HashMap<JobId, usize> = std::collections::HashMap::with_capacity(reasons.len());
    let mut out: Vec<(JobId, &str)> = Vec::with_capacity(reasons.len());
    for (job, reason) in reasons {
        match index.entry(*job) {
            std::collections::hash_map::Entry::Occupied(slot) => out[*slot.get()].1 = reason,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push((*job, reason));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_state_follows_the_latest_attempt() {
        use AttemptState as A;
        use JobState as J;
        let check = |a, cancel, failures, max, expect: JobState| {
            assert_eq!(
                job_state_after_attempt(a, cancel, failures, max),
                expect,
                "{a} cancel={cancel} {failures}/{max}"
            );
        };
        check(A::Planned, false, 0, 3, J::Launching);
        check(A::Running, false, 0, 3, J::Running);
        check(A::Succeeded, true, 0, 3, J::Succeeded);
        check(A::Lost, false, 1, 3, J::Pending);
        check(A::Failed, false, 3, 3, J::Failed);
        check(A::Failed, true, 1, 3, J::Cancelled);
        check(A::Preempted, false, 9, 3, J::Pending);
        check(A::Preempted, true, 0, 3, J::Cancelled);
        check(A::Cancelled, false, 0, 3, J::Cancelled);
    }

    #[test]
    fn a_replicated_job_follows_all_its_attempts() {
        use AttemptState as A;
        use JobState as J;
        // (replica, state) per attempt, numbered in order.
        let check = |attempts: &[(u32, AttemptState)], cancel: bool, max: u32, expect: JobState| {
            let attempts: Vec<ReplicaAttempt> = attempts
                .iter()
                .enumerate()
                .map(|(i, (replica, state))| ReplicaAttempt { attempt: i as u32 + 1, replica: *replica, state: *state })
                .collect();
            assert_eq!(job_state_of_replicas(2, &attempts, cancel, max), expect, "{attempts:?} cancel={cancel}");
        };
        check(&[(0, A::Planned), (1, A::Running)], false, 3, J::Running);
        check(&[(0, A::Planned), (1, A::Lost)], false, 3, J::Launching);
        check(&[(0, A::Lost), (1, A::Running)], false, 1, J::Running);
        check(&[(0, A::Lost), (1, A::Failed)], false, 3, J::Pending);
        check(&[(0, A::Lost), (1, A::Failed)], true, 3, J::Cancelled);
        check(&[(0, A::Lost), (1, A::Failed), (0, A::Lost)], false, 2, J::Failed);
        check(&[(0, A::Lost), (1, A::Preempted), (0, A::Succeeded)], false, 1, J::Pending);
        check(&[(0, A::Succeeded), (1, A::Lost), (1, A::Succeeded)], true, 3, J::Succeeded);
        check(&[(0, A::Succeeded), (1, A::Cancelled)], false, 3, J::Cancelled);
        check(&[(0, A::Succeeded)], false, 3, J::Pending);
    }

    #[test]
    fn attempts_only_move_forward() {
        use AttemptState as A;
        assert!(attempt_may_move(A::Planned, A::Running));
        assert!(attempt_may_move(A::Running, A::Lost));
        assert!(!attempt_may_move(A::Running, A::Launching));
        assert!(!attempt_may_move(A::Running, A::Running));
        assert!(!attempt_may_move(A::Succeeded, A::Failed));
    }

    #[test]
    fn bad_roles_and_states_name_the_field() {
        assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert_eq!(err, "invalid role `root`: expected admin, member or viewer");
        let err = "gone".parse::<AttemptState>().unwrap_err().to_string();
        assert!(err.starts_with("invalid attempt state `gone`"), "{err}");
    }

    #[test]
    fn a_jobs_last_pending_reason_wins() {
        let reasons = vec![
            (JobId(2), "no capacity".to_string()),
            (JobId(1), "quota".to_string()),
            (JobId(2), "placement refused by the plan check".to_string()),
        ];
        assert_eq!(
            last_reason_per_job(&reasons),
            vec![(JobId(2), "placement refused by the plan check"), (JobId(1), "quota")],
            "one entry per job, holding the reason given last, as applying them in order would leave"
        );
        assert!(last_reason_per_job(&[]).is_empty());
    }

    #[test]
    fn empty_idempotency_keys_are_refused() {
        let job = NewJob { spec: JobSpec::new("x", "t"), idempotency_key: Some(String::new()) };
        let err = check_new_job(&job).unwrap_err().to_string();
        assert_eq!(err, "invalid idempotency key ``: expected 1 to 255 characters");
        let job = NewJob { spec: JobSpec::new("x", " "), idempotency_key: None };
        assert!(check_new_job(&job).unwrap_err().to_string().contains("invalid tenant"));
    }
}
