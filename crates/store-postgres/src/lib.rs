//! `Store` on PostgreSQL: for production and for several servers sharing one database.
//!
//! Every call is one transaction at READ COMMITTED; rows a call reads in order to change them are
//! locked (`FOR UPDATE`) so concurrent servers cannot lose each other's updates. A submit batch is
//! one statement whatever its size (ids from the sequence, an `INSERT ... SELECT FROM UNNEST` and
//! the ids of idempotent repeats, in one round trip; a transaction around it only when keys are given). Leadership is a lease row judged by the database's clock.
//! Durability is PostgreSQL's: with the default `synchronous_commit=on` a committed submit is on disk.
//!
//! Submits are group-committed: a few writer tasks each drain the submits that are waiting, write
//! them as one batch in one transaction and answer each caller after the commit, so concurrent
//! single-job submits share a commit (and its WAL flush) instead of paying one each.

mod usage;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cumulo_store::{
    ActiveAttempt, AttemptRecord, AttemptState, AttemptUpdate, Error, EventRecord, HistoryPoint, JobFilter, JobOrder,
    JobPage, JobRecord, NewAttempt, NewJob, PendingKey, PlanApplied, PlanCommit, ReplicaAttempt, Result, Role, Store,
    Submitted, TenantRecord, TokenRecord, attempt_may_move, check_new_job, check_tenant, from_micros,
    job_state_after_attempt, job_state_of_replicas,
};
use cumulo_types::{AttemptId, JobId, JobSpec, JobState};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Schema migrations, applied in order; the applied version is kept in `cumulo_schema_version`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_usage.sql"),
    include_str!("../migrations/0003_preempt.sql"),
    include_str!("../migrations/0004_state_id.sql"),
    include_str!("../migrations/0005_replicas.sql"),
    include_str!("../migrations/0006_usage_intervals.sql"),
    include_str!("../migrations/0007_tenants_history.sql"),
    include_str!("../migrations/0008_tenant_budgets.sql"),
    include_str!("../migrations/0009_usage_in_page_order.sql"),
];

/// How to connect.
#[derive(Clone, Debug)]
pub struct Options {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Tables live in this schema (created when missing) instead of the URL's default; tests use a
    /// fresh schema each.
    pub schema: Option<String>,
    pub max_connections: u32,
}

impl Options {
    pub fn new(url: impl Into<String>) -> Options {
        Options { url: url.into(), schema: None, max_connections: 16 }
    }
}

/// A PostgreSQL-backed [`Store`]. Dropping the last handle stops the group-commit writers.
pub struct PostgresStore {
    pool: PgPool,
    submits: mpsc::UnboundedSender<SubmitRequest>,
}

/// Writer tasks draining the submit queue: several, so one group's round trips overlap the next
/// group's (one group at a time would cap submits at one commit per round-trip time).
const GROUP_WRITERS: usize = 4;

/// The most jobs one group commit writes.
const MAX_GROUP_JOBS: usize = 4096;

/// A job ready to write: checked and serialised before it joins a group.
struct PreparedJob {
    tenant: String,
    idem_key: Option<String>,
    priority: i64,
    max_attempts: i64,
    spec: String,
}

/// One `submit` call waiting for its group's commit.
struct SubmitRequest {
    jobs: Vec<PreparedJob>,
    reply: oneshot::Sender<Result<Vec<Submitted>>>,
}

/// Takes the next group from the queue: the first request waiting and every one behind it, up to
/// [`MAX_GROUP_JOBS`] jobs. `None` once the store is dropped.
async fn next_group(queue: &Mutex<mpsc::UnboundedReceiver<SubmitRequest>>) -> Option<Vec<SubmitRequest>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut jobs = first.jobs.len();
    let mut group = vec![first];
    while jobs < MAX_GROUP_JOBS {
        match queue.try_recv() {
            Ok(next) => {
                jobs += next.jobs.len();
                group.push(next);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

/// Writes waiting submits in groups: one statement (or, with idempotency keys, one transaction)
/// for many callers, each answered after the commit. When a group fails, each request is retried
/// alone so one bad request cannot fail the others (and a failed request has stored nothing: its
/// statement or transaction rolled back). A writer holds its connection for one group only (a
/// small pool must still serve reads); a connection that failed is closed, not returned.
async fn group_commit(pool: PgPool, queue: Arc<Mutex<mpsc::UnboundedReceiver<SubmitRequest>>>) {
    let mut held: Option<PoolConnection<Postgres>> = None;
    while let Some(mut group) = next_group(&queue).await {
        let jobs: Vec<&PreparedJob> = group.iter().flat_map(|request| &request.jobs).collect();
        match write_jobs(&pool, &mut held, &jobs).await {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for request in group {
                    let answer = answers.by_ref().take(request.jobs.len()).collect();
                    let _ = request.reply.send(Ok(answer));
                }
            }
            Err(err) if group.len() == 1 => {
                let _ = group.pop().expect("one request").reply.send(Err(err));
            }
            Err(err) => {
                tracing::warn!(error = %err, requests = group.len(), "group commit failed, retrying one by one");
                for request in group {
                    let answer = write_jobs(&pool, &mut held, &request.jobs.iter().collect::<Vec<_>>()).await;
                    let _ = request.reply.send(answer);
                }
            }
        }
        // Back to the pool between groups: a small pool must still serve reads.
        held = None;
    }
}

/// Writes `jobs` all-or-nothing on the writer's connection (taken from the pool when it has none)
/// and answers for each in order. On failure nothing of `jobs` is stored, and a connection that
/// is no longer usable is dropped (closed) so the next call connects afresh.
async fn write_jobs(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    jobs: &[&PreparedJob],
) -> Result<Vec<Submitted>> {
    let conn = match held {
        Some(conn) => conn,
        None => held.insert(pool.acquire().await.map_err(backend)?),
    };
    let written = insert_jobs(conn, jobs).await;
    if let Err(err) = &written {
        let statement_failed = matches!(err, sqlx::Error::Database(_) | sqlx::Error::RowNotFound);
        if !statement_failed && let Some(mut conn) = held.take() {
            conn.close_on_drop();
        }
    }
    written.map_err(backend)
}

/// The one statement a group is: ids from the sequence in batch order, one `INSERT ... SELECT
/// FROM UNNEST` that skips a used idempotency key (`ON CONFLICT DO NOTHING`, which also skips a
/// key repeated within the group), and for each skipped job the id its key already has: a row
/// committed before the statement began, or the row this statement inserted for the key's first
/// occurrence. `existing` is NULL only for a key whose row a concurrent statement committed
/// meanwhile (this statement's snapshot predates it); a second look-up in the same transaction
/// finds those.
const INSERT_JOBS: &str = "
    WITH input AS MATERIALIZED (
        SELECT nextval('jobs_id_seq') AS id, u.*
        FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])
             WITH ORDINALITY AS u (tenant, idem_key, priority, spec, max_attempts, ord)
    ), inserted AS (
        INSERT INTO jobs (id, tenant, idem_key, state, priority, spec, max_attempts, submitted_at, updated_at)
        SELECT id, tenant, idem_key, 'pending', priority, spec, max_attempts, $6, $6 FROM input ORDER BY ord
        ON CONFLICT DO NOTHING RETURNING id, tenant, idem_key
    )
    SELECT i.id AS id, (n.id IS NOT NULL) AS created, COALESCE(n.id, f.id, o.id) AS existing
    FROM input i
    LEFT JOIN inserted n ON n.id = i.id
    LEFT JOIN inserted f ON n.id IS NULL AND f.tenant = i.tenant AND f.idem_key = i.idem_key
    LEFT JOIN jobs o ON n.id IS NULL AND f.id IS NULL AND o.tenant = i.tenant AND o.idem_key = i.idem_key
         AND o.idem_key IS NOT NULL
    ORDER BY i.ord";

/// Runs [`INSERT_JOBS`]: alone (one round trip, atomic as one statement) when no job has an
/// idempotency key, else in a transaction so the rare second look-up sees the same commit.
async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: &[&PreparedJob],
) -> std::result::Result<Vec<Submitted>, sqlx::Error> {
    let n = jobs.len();
    let mut tenants = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut specs = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    for job in jobs {
        tenants.push(job.tenant.as_str());
        keys.push(job.idem_key.as_deref());
        priorities.push(job.priority);
        specs.push(job.spec.as_str());
        max_attempts.push(job.max_attempts);
    }
    let statement = sqlx::query_as::<_, (i64, bool, Option<i64>)>(INSERT_JOBS)
        .bind(&tenants)
        .bind(&keys)
        .bind(&priorities)
        .bind(&specs)
        .bind(&max_attempts)
        .bind(now_micros());
    if keys.iter().all(Option::is_none) {
        let rows = statement.fetch_all(&mut *conn).await?;
        return Ok(rows.into_iter().map(|(id, _, _)| Submitted { id: JobId(id as u64), created: true }).collect());
    }
    let mut tx = conn.begin().await?;
    let rows = statement.fetch_all(&mut *tx).await?;
    let mut answers = Vec::with_capacity(n);
    for (index, (id, created, existing)) in rows.into_iter().enumerate() {
        let id = match (created, existing) {
            (true, _) => id,
            (false, Some(existing)) => existing,
            (false, None) => {
                sqlx::query_scalar("SELECT id FROM jobs WHERE tenant = $1 AND idem_key = $2")
                    .bind(tenants[index])
                    .bind(keys[index])
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        answers.push(Submitted { id: JobId(id as u64), created });
    }
    tx.commit().await?;
    Ok(answers)
}

fn backend(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(db.message().to_string()),
        sqlx::Error::Database(db) if db.code().is_some_and(|code| cannot_write(&code)) => {
            Error::StorageFull(err.to_string())
        }
        _ => Error::Backend(err.to_string()),
    }
}

/// SQLSTATEs that mean "the database cannot write now": `53100` disk_full and `25006`
/// read_only_sql_transaction (a standby, or `default_transaction_read_only`). The same answer as
/// SQLite's disk full: nothing stored, retry later.
fn cannot_write(code: &str) -> bool {
    matches!(code, "53100" | "25006")
}

fn now_micros() -> i64 {
    cumulo_store::to_micros(chrono::Utc::now())
}

impl PostgresStore {
    /// Connects, creates the schema when asked for one, and applies pending migrations (serialised
    /// across servers by an advisory lock).
    pub async fn open(options: Options) -> Result<PostgresStore> {
        let bad_url = || Error::Invalid {
            field: "database url",
            value: redact(&options.url),
            expected: "a URL such as postgres://user@host:5432/cumulo",
        };
        if !(options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")) {
            return Err(bad_url());
        }
        let mut connect: PgConnectOptions = options.url.parse().map_err(|_| bad_url())?;
        if let Some(schema) = &options.schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(Error::Invalid {
                    field: "schema",
                    value: schema.clone(),
                    expected: "letters, digits and underscores",
                });
            }
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(connect.clone())
                .await
                .map_err(|e| Error::Backend(format!("cannot connect to {}: {e}", redact(&options.url))))?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&admin).await.map_err(backend)?;
            admin.close().await;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(|e| Error::Backend(format!("cannot connect to {}: {e}", redact(&options.url))))?;
        migrate(&pool).await?;
        Ok(PostgresStore::with_pool(pool))
    }

    /// A store on `pool` (already migrated), with its group-commit writers. Must be called inside a
    /// tokio runtime.
    fn with_pool(pool: PgPool) -> PostgresStore {
        let (submits, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..GROUP_WRITERS {
            tokio::spawn(group_commit(pool.clone(), queue.clone()));
        }
        PostgresStore { pool, submits }
    }

    /// Closes the connections (tests drop their schema after).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock(7438210)").execute(&mut *tx).await.map_err(backend)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS cumulo_schema_version (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM cumulo_schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let version = version.unwrap_or(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::Backend(format!(
            "database schema version {version} is newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(backend)?;
        sqlx::query("INSERT INTO cumulo_schema_version (version) VALUES ($1)")
            .bind((index + 1) as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tracing::info!(version = index + 1, "applied postgres migration");
    }
    tx.commit().await.map_err(backend)
}

const JOB_COLUMNS: &str = "id, state, spec, pending_reason, cancel_requested, attempt_count, submitted_at, updated_at";

fn job_from_row(row: &PgRow) -> Result<JobRecord> {
    let id: i64 = row.try_get("id").map_err(backend)?;
    let state: String = row.try_get("state").map_err(backend)?;
    let spec: String = row.try_get("spec").map_err(backend)?;
    let spec: JobSpec =
        serde_json::from_str(&spec).map_err(|e| Error::Backend(format!("job {id} has an unreadable spec: {e}")))?;
    Ok(JobRecord {
        id: JobId(id as u64),
        spec,
        state: JobState::from_str(&state).map_err(|e| Error::Backend(format!("job {id}: {e}")))?,
        pending_reason: row.try_get("pending_reason").map_err(backend)?,
        cancel_requested: row.try_get::<bool, _>("cancel_requested").map_err(backend)?,
        attempt_count: row.try_get::<i64, _>("attempt_count").map_err(backend)? as u32,
        submitted_at: from_micros(row.try_get("submitted_at").map_err(backend)?),
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?),
        attempts: Vec::new(),
    })
}

fn attempt_from_row(row: &PgRow) -> Result<AttemptRecord> {
    let job: i64 = row.try_get("job_id").map_err(backend)?;
    let attempt: i64 = row.try_get("attempt").map_err(backend)?;
    let state: String = row.try_get("a_state").map_err(backend)?;
    let placement: String = row.try_get("placement").map_err(backend)?;
    Ok(AttemptRecord {
        id: AttemptId { job: JobId(job as u64), attempt: attempt as u32 },
        replica: row.try_get::<i64, _>("replica").map_err(backend)? as u32,
        state: state.parse()?,
        placement: serde_json::from_str(&placement)
            .map_err(|e| Error::Backend(format!("attempt {job}.{attempt} has an unreadable placement: {e}")))?,
        message: row.try_get("message").map_err(backend)?,
        created_at: from_micros(row.try_get("a_created_at").map_err(backend)?),
        updated_at: from_micros(row.try_get("a_updated_at").map_err(backend)?),
    })
}

const ATTEMPT_COLUMNS: &str = "attempts.job_id, attempts.attempt, attempts.replica, attempts.state AS a_state, attempts.placement, \
     attempts.message, attempts.created_at AS a_created_at, attempts.updated_at AS a_updated_at";

async fn add_event(
    tx: &mut Transaction<'static, Postgres>,
    job: JobId,
    at: i64,
    kind: &str,
    message: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO events (job_id, at, kind, message) VALUES ($1, $2, $3, $4)")
        .bind(job.0 as i64)
        .bind(at)
        .bind(kind)
        .bind(message)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Moves one attempt and derives its job's state. Returns false (and changes nothing) when the move
/// is not allowed or the attempt is unknown and `must_exist` is false.
async fn move_attempt(
    tx: &mut Transaction<'static, Postgres>,
    id: AttemptId,
    to: AttemptState,
    message: Option<&str>,
    now: i64,
    must_exist: bool,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT attempts.state, jobs.cancel_requested, jobs.failures, jobs.max_attempts, jobs.attempt_count,
                COALESCE((jobs.spec::jsonb ->> 'replicas')::bigint, 1), attempts.replica
         FROM attempts JOIN jobs ON jobs.id = attempts.job_id WHERE attempts.job_id = $1 AND attempts.attempt = $2
         FOR UPDATE",
    )
    .bind(id.job.0 as i64)
    .bind(id.attempt as i64)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return if must_exist { Err(Error::NotFound { what: "attempt", id: id.to_string() }) } else { Ok(false) };
    };
    let from: AttemptState = row.try_get::<String, _>(0).map_err(backend)?.parse()?;
    if !attempt_may_move(from, to) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE attempts SET state = $1, message = COALESCE($2, message), updated_at = $3, engine_stop_pending = $6
         WHERE job_id = $4 AND attempt = $5",
    )
    .bind(to.as_str())
    .bind(message)
    .bind(now)
    .bind(id.job.0 as i64)
    .bind(id.attempt as i64)
    .bind(to == AttemptState::Lost)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    let cancel_requested = row.try_get::<bool, _>(1).map_err(backend)?;
    let counts_as_failure = matches!(to, AttemptState::Failed | AttemptState::Lost);
    let failures = row.try_get::<i64, _>(2).map_err(backend)? as u32 + u32::from(counts_as_failure);
    let max_attempts = row.try_get::<i64, _>(3).map_err(backend)? as u32;
    let latest = row.try_get::<i64, _>(4).map_err(backend)? as u32 == id.attempt;
    let replicas = row.try_get::<i64, _>(5).map_err(backend)?.max(1) as u32;
    let replica = row.try_get::<i64, _>(6).map_err(backend)? as u32;
    // One replica: the latest attempt decides. Several: all of the job's attempts do.
    let job_state = if replicas > 1 {
        let rows: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT attempt, replica, state FROM attempts WHERE job_id = $1 ORDER BY attempt")
                .bind(id.job.0 as i64)
                .fetch_all(&mut **tx)
                .await
                .map_err(backend)?;
        let attempts = rows
            .into_iter()
            .map(|(attempt, replica, state)| {
                Ok(ReplicaAttempt { attempt: attempt as u32, replica: replica as u32, state: state.parse()? })
            })
            .collect::<Result<Vec<_>>>()?;
        Some(job_state_of_replicas(replicas, &attempts, cancel_requested, max_attempts))
    } else if latest {
        Some(job_state_after_attempt(to, cancel_requested, failures, max_attempts))
    } else {
        None
    };
    if let Some(state) = job_state {
        let reason = (state == JobState::Pending).then(|| match message {
            Some(message) => format!("requeued after attempt {id} was {to}: {message}"),
            None => format!("requeued after attempt {id} was {to}"),
        });
        sqlx::query("UPDATE jobs SET state = $1, failures = $2, pending_reason = $3, updated_at = $4 WHERE id = $5")
            .bind(state.as_str())
            .bind(failures as i64)
            .bind(reason)
            .bind(now)
            .bind(id.job.0 as i64)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    } else if counts_as_failure {
        sqlx::query("UPDATE jobs SET failures = $1 WHERE id = $2")
            .bind(failures as i64)
            .bind(id.job.0 as i64)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    let of_replica = if replicas > 1 { format!(" (replica {replica})") } else { String::new() };
    let text = match message {
        Some(message) => format!("attempt {id}{of_replica} {to}: {message}"),
        None => format!("attempt {id}{of_replica} {to}"),
    };
    add_event(tx, id.job, now, &format!("attempt_{to}"), &text).await?;
    Ok(true)
}

/// Takes the job's next attempt number for `launch` when it may go ahead (see
/// `PlanCommit::launches`), moving a pending job to `launching`; returns it with the job's replica
/// count, or `None` when the launch must be skipped.
async fn claim_attempt_number(
    tx: &mut Transaction<'static, Postgres>,
    launch: &NewAttempt,
    now: i64,
) -> Result<Option<(i64, u32)>> {
    if launch.replica == 0 {
        // The common case, one statement: a pending job's first replica.
        let number: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE jobs SET state = 'launching', attempt_count = attempt_count + 1, pending_reason = NULL,
             updated_at = $1 WHERE id = $2 AND state = 'pending' AND cancel_requested = FALSE
             RETURNING attempt_count, COALESCE((jobs.spec::jsonb ->> 'replicas')::bigint, 1)",
        )
        .bind(now)
        .bind(launch.job.0 as i64)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        if let Some((number, replicas)) = number {
            return Ok(Some((number, replicas.max(1) as u32)));
        }
    }
    let row: Option<(String, bool, i64)> = sqlx::query_as(
        "SELECT state, cancel_requested, COALESCE((jobs.spec::jsonb ->> 'replicas')::bigint, 1) FROM jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(launch.job.0 as i64)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some((state, cancel_requested, replicas)) = row else { return Ok(None) };
    let replicas = replicas.max(1) as u32;
    if cancel_requested || launch.replica >= replicas {
        return Ok(None);
    }
    let waiting = match state.as_str() {
        "pending" => true,
        // A replica of a running job waits when it has no active attempt: nothing launched twice.
        "launching" | "running" if replicas > 1 => {
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM attempts WHERE job_id = $1 AND replica = $2
                 AND state IN ('planned', 'launching', 'running')",
            )
            .bind(launch.job.0 as i64)
            .bind(i64::from(launch.replica))
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
            active == 0
        }
        _ => false,
    };
    if !waiting {
        return Ok(None);
    }
    let number: i64 = sqlx::query_scalar(
        "UPDATE jobs SET state = CASE WHEN state = 'pending' THEN 'launching' ELSE state END,
         attempt_count = attempt_count + 1, pending_reason = NULL, updated_at = $1 WHERE id = $2
         RETURNING attempt_count",
    )
    .bind(now)
    .bind(launch.job.0 as i64)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(Some((number, replicas)))
}

#[async_trait]
impl Store for PostgresStore {
    async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut prepared = Vec::with_capacity(jobs.len());
        for job in jobs {
            check_new_job(&job)?;
            let spec =
                serde_json::to_string(&job.spec).map_err(|e| Error::Backend(format!("cannot encode job spec: {e}")))?;
            prepared.push(PreparedJob {
                tenant: job.spec.tenant,
                idem_key: job.idempotency_key,
                priority: i64::from(job.spec.priority.0),
                max_attempts: i64::from(job.spec.max_attempts),
                spec,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.submits
            .send(SubmitRequest { jobs: prepared, reply })
            .map_err(|_| Error::Backend("the postgres submit writers have stopped".to_string()))?;
        answer.await.map_err(|_| Error::Backend("the postgres submit writers dropped a submit".to_string()))?
    }

    async fn job_by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<JobId>> {
        if !cumulo_store::storable_text(tenant) || !cumulo_store::storable_text(key) {
            return Ok(None);
        }
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE tenant = $1 AND idem_key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(id.map(|id| JobId(id as u64)))
    }

    async fn get_job(&self, id: JobId) -> Result<JobRecord> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.0 as i64)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| Error::NotFound { what: "job", id: id.to_string() })?;
        let mut job = job_from_row(&row)?;
        let rows = sqlx::query(&format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = $1 ORDER BY attempt"))
            .bind(id.0 as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        job.attempts = rows.iter().map(attempt_from_row).collect::<Result<_>>()?;
        Ok(job)
    }

    async fn list_jobs(&self, filter: JobFilter) -> Result<JobPage> {
        let limit = filter.effective_limit();
        let newest_first = filter.order == JobOrder::NewestFirst;
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id {} $1", if newest_first { "<" } else { ">" });
        let mut texts: Vec<String> = Vec::new();
        let mut condition = |sql: &mut String, clause: &str, value: String| {
            texts.push(value);
            sql.push_str(&clause.replace("$N", &format!("${}", texts.len() + 1)));
        };
        if let Some(state) = filter.state {
            condition(&mut sql, " AND state = $N", state.as_str().to_string());
        }
        if let Some(tenant) = &filter.tenant {
            condition(&mut sql, " AND tenant = $N", tenant.clone());
        }
        if let Some(kind) = filter.kind {
            condition(&mut sql, " AND (spec::jsonb ->> 'kind') = $N", kind.as_str().to_string());
        }
        if let Some(text) = &filter.name_contains {
            condition(&mut sql, " AND strpos(lower(spec::jsonb ->> 'name'), lower($N)) > 0", text.clone());
        }
        if let Some(cluster) = &filter.cluster {
            condition(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND (a.placement::jsonb ->> 'cluster') = $N)",
                cluster.clone(),
            );
        }
        sql.push_str(&format!(" ORDER BY id {} LIMIT ${}", if newest_first { "DESC" } else { "ASC" }, texts.len() + 2));
        let cursor = match (filter.after, newest_first) {
            (Some(id), _) => id.0 as i64,
            (None, true) => i64::MAX,
            (None, false) => 0,
        };
        let mut query = sqlx::query(&sql).bind(cursor);
        for text in texts {
            query = query.bind(text);
        }
        query = query.bind(i64::from(limit) + 1);
        let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        let next = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    async fn create_tenant(&self, tenant: TenantRecord) -> Result<()> {
        check_tenant(&tenant)?;
        sqlx::query(
            "INSERT INTO tenants (name, weight, gpus_milli, cpus_milli, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&tenant.name)
        .bind(i64::from(tenant.weight))
        .bind(tenant.gpus_milli.map(|g| g as i64))
        .bind(tenant.cpus_milli.map(|c| c as i64))
        .bind(cumulo_store::to_micros(tenant.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| match backend(e) {
            Error::Conflict(_) => Error::Conflict(format!("tenant `{}` exists already", tenant.name)),
            other => other,
        })?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>, i64)> =
            sqlx::query_as("SELECT name, weight, gpus_milli, cpus_milli, created_at FROM tenants ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(name, weight, gpus, cpus, at)| TenantRecord {
                name,
                weight: weight as u32,
                gpus_milli: gpus.map(|g| g as u64),
                cpus_milli: cpus.map(|c| c as u64),
                created_at: cumulo_store::from_micros(at),
            })
            .collect())
    }

    async fn set_budget(&self, record: cumulo_store::budget::BudgetRecord) -> Result<()> {
        cumulo_store::budget::check_budget(&record)?;
        sqlx::query(
            "INSERT INTO tenant_budgets (tenant, monthly_micros, kind, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant) DO UPDATE SET monthly_micros = excluded.monthly_micros, kind = excluded.kind,
             updated_at = excluded.updated_at",
        )
        .bind(&record.tenant)
        .bind(record.budget.monthly.0)
        .bind(record.budget.kind.as_str())
        .bind(cumulo_store::to_micros(record.updated_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn budgets(&self) -> Result<Vec<cumulo_store::budget::BudgetRecord>> {
        let rows: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT tenant, monthly_micros, kind, updated_at FROM tenant_budgets ORDER BY tenant")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.into_iter()
            .map(|(tenant, micros, kind, at)| {
                Ok(cumulo_store::budget::BudgetRecord {
                    tenant,
                    budget: cumulo_store::budget::Budget { monthly: cumulo_types::Money(micros), kind: kind.parse()? },
                    updated_at: cumulo_store::from_micros(at),
                })
            })
            .collect()
    }

    async fn append_history(&self, points: Vec<HistoryPoint>) -> Result<()> {
        let mut tx = self.begin().await?;
        for point in &points {
            sqlx::query("INSERT INTO history (at, metric, label, value) VALUES ($1, $2, $3, $4)")
                .bind(cumulo_store::to_micros(point.at))
                .bind(&point.metric)
                .bind(&point.label)
                .bind(point.value)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn history_since(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<HistoryPoint>> {
        let rows: Vec<(i64, String, String, f64)> =
            sqlx::query_as("SELECT at, metric, label, value FROM history WHERE at >= $1 ORDER BY at, metric, label")
                .bind(cumulo_store::to_micros(since))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(at, metric, label, value)| HistoryPoint { at: cumulo_store::from_micros(at), metric, label, value })
            .collect())
    }

    async fn forget_history(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM history WHERE at < $1")
            .bind(cumulo_store::to_micros(before))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn cancel_job(&self, id: JobId) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id.0 as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or_else(|| Error::NotFound { what: "job", id: id.to_string() })?;
        let state = JobState::from_str(&state).map_err(|e| Error::Backend(e.to_string()))?;
        let now = now_micros();
        match state {
            JobState::Cancelled => {}
            JobState::Succeeded | JobState::Failed => {
                return Err(Error::Conflict(format!("job {id} already {state}")));
            }
            JobState::Pending => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = TRUE, pending_reason = NULL, updated_at = $1
                     WHERE id = $2",
                )
                .bind(now)
                .bind(id.0 as i64)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                add_event(&mut tx, id, now, "cancelled", "cancelled while pending").await?;
            }
            JobState::Launching | JobState::Running => {
                sqlx::query("UPDATE jobs SET cancel_requested = TRUE, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id.0 as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                add_event(&mut tx, id, now, "cancel_requested", "cancel requested; stopping the active attempt")
                    .await?;
            }
        }
        tx.commit().await.map_err(backend)?;
        // Read back through the writer so the answer reflects this commit.
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.0 as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        job_from_row(&row)
    }

    async fn cancel_pending(&self, id: JobId, reason: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id.0 as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or_else(|| Error::NotFound { what: "job", id: id.to_string() })?;
        if state != JobState::Pending.as_str() {
            return Ok(false);
        }
        let now = now_micros();
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = TRUE, pending_reason = $1, updated_at = $2
             WHERE id = $3",
        )
        .bind(reason)
        .bind(now)
        .bind(id.0 as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        add_event(&mut tx, id, now, "cancelled", &format!("cancelled while pending: {reason}")).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn job_counts_by_state(&self) -> Result<BTreeMap<JobState, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut counts: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|state| (*state, 0)).collect();
        for (state, count) in rows {
            let state = JobState::from_str(&state).map_err(|e| Error::Backend(e.to_string()))?;
            counts.insert(state, count as u64);
        }
        Ok(counts)
    }

    async fn job_events(&self, id: JobId) -> Result<Vec<EventRecord>> {
        let rows: Vec<(i64, i64, String, String)> =
            sqlx::query_as("SELECT seq, at, kind, message FROM events WHERE job_id = $1 ORDER BY seq")
                .bind(id.0 as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(seq, at, kind, message)| EventRecord { seq, job: id, at: from_micros(at), kind, message })
            .collect())
    }

    async fn create_token(&self, token: TokenRecord) -> Result<()> {
        sqlx::query("INSERT INTO tokens (hash, tenant, role, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token.hash)
            .bind(&token.tenant)
            .bind(token.role.as_str())
            .bind(&token.name)
            .bind(now_micros())
            .execute(&self.pool)
            .await
            .map_err(|e| match backend(e) {
                Error::Conflict(_) => {
                    Error::Conflict(format!("a token named `{}` with this hash already exists", token.name))
                }
                other => other,
            })?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row: Option<(String, String, String, String)> =
            sqlx::query_as("SELECT hash, tenant, role, name FROM tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        row.map(|(hash, tenant, role, name)| Ok(TokenRecord { hash, tenant, role: role.parse::<Role>()?, name }))
            .transpose()
    }

    async fn token_count(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens").fetch_one(&self.pool).await.map_err(backend)?;
        Ok(count as u64)
    }

    async fn pending_jobs(&self, limit: u32) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' AND cancel_requested = FALSE
             ORDER BY priority DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn pending_keys(&self, limit: u32) -> Result<Vec<PendingKey>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, attempt_count FROM jobs WHERE state = 'pending' AND cancel_requested = FALSE
             ORDER BY priority DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(id, attempt_count)| PendingKey { id: JobId(id as u64), attempt_count: attempt_count as u32 })
            .collect())
    }

    async fn jobs_by_ids(&self, ids: Vec<JobId>) -> Result<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0 as i64).collect();
        let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1) ORDER BY id"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn active_attempts(&self) -> Result<Vec<ActiveAttempt>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS}, jobs.spec, jobs.cancel_requested, attempts.preempt_requested FROM attempts JOIN jobs ON jobs.id = attempts.job_id
             WHERE attempts.state IN ('planned', 'launching', 'running') ORDER BY attempts.job_id, attempts.attempt"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let attempt = attempt_from_row(row)?;
                let spec: String = row.try_get("spec").map_err(backend)?;
                Ok(ActiveAttempt {
                    spec: serde_json::from_str(&spec)
                        .map_err(|e| Error::Backend(format!("job {} has an unreadable spec: {e}", attempt.id.job)))?,
                    cancel_requested: row.try_get::<bool, _>("cancel_requested").map_err(backend)?,
                    preempt_requested: row.try_get::<bool, _>("preempt_requested").map_err(backend)?,
                    attempt,
                })
            })
            .collect()
    }

    async fn commit_plan(&self, plan: PlanCommit) -> Result<PlanApplied> {
        let mut tx = self.begin().await?;
        let now = now_micros();
        let mut applied = PlanApplied::default();
        for preempted in &plan.preemptions {
            let marked = sqlx::query(
                "UPDATE attempts SET preempt_requested = TRUE, updated_at = $1
                 WHERE job_id = $2 AND attempt = $3 AND state IN ('planned', 'launching', 'running')",
            )
            .bind(now)
            .bind(preempted.job.0 as i64)
            .bind(preempted.attempt as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if marked.rows_affected() == 1 {
                let text = plan.preempting_text(*preempted);
                add_event(&mut tx, preempted.job, now, "attempt_preempting", &text).await?;
            }
        }
        for launch in &plan.launches {
            let Some((number, replicas)) = claim_attempt_number(&mut tx, launch, now).await? else {
                applied.skipped.push(launch.job);
                continue;
            };
            let id = AttemptId { job: launch.job, attempt: number as u32 };
            sqlx::query(
                "INSERT INTO attempts (job_id, attempt, replica, state, placement, created_at, updated_at)
                 VALUES ($1, $2, $3, 'planned', $4, $5, $5)",
            )
            .bind(launch.job.0 as i64)
            .bind(number)
            .bind(i64::from(launch.replica))
            .bind(launch.placement.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let text = if replicas > 1 {
                format!("attempt {id} (replica {}) planned", launch.replica)
            } else {
                format!("attempt {id} planned")
            };
            add_event(&mut tx, launch.job, now, "attempt_planned", &text).await?;
            applied.attempts.push(id);
        }
        // One statement for all the reasons, writing only rows whose reason changed: a pass over a
        // large queue that says the same as the last one writes almost nothing.
        let (jobs, reasons): (Vec<i64>, Vec<&str>) = cumulo_store::last_reason_per_job(&plan.pending_reasons)
            .into_iter()
            .map(|(job, reason)| (job.0 as i64, reason))
            .unzip();
        if !jobs.is_empty() {
            sqlx::query(
                "UPDATE jobs SET pending_reason = r.reason FROM UNNEST($1::bigint[], $2::text[]) AS r (id, reason)
                 WHERE jobs.id = r.id AND jobs.state IN ('pending', 'launching', 'running')
                 AND jobs.pending_reason IS DISTINCT FROM r.reason",
            )
            .bind(&jobs)
            .bind(&reasons)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(applied)
    }

    async fn update_attempts(&self, updates: Vec<AttemptUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let now = now_micros();
        for update in &updates {
            move_attempt(&mut tx, update.id, update.state, update.message.as_deref(), now, true).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn try_lead(&self, holder: &str, ttl_s: u32) -> Result<bool> {
        // A lease row, judged by the database's clock so servers' clocks need not agree. The holder
        // keeps it by renewing before it expires; anyone may take an expired one.
        let row: Option<String> = sqlx::query_scalar(
            "WITH now AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint AS us)
             INSERT INTO leases (name, holder, expires_at)
             SELECT 'control', $1, now.us + $2 FROM now
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE leases.holder = EXCLUDED.holder
                OR leases.expires_at < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint
             RETURNING holder",
        )
        .bind(holder)
        .bind(i64::from(ttl_s) * 1_000_000)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.is_some())
    }

    async fn attempts_to_stop_on_engine(&self) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE engine_stop_pending = TRUE
             ORDER BY attempts.updated_at, attempts.job_id, attempts.attempt"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn stopped_on_engine(&self, ids: Vec<AttemptId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE attempts SET engine_stop_pending = FALSE WHERE job_id = $1 AND attempt = $2 AND engine_stop_pending = TRUE",
            )
            .bind(id.job.0 as i64)
            .bind(id.attempt as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn deployment_id(&self) -> Result<String> {
        sqlx::query_scalar("SELECT id FROM deployment WHERE singleton = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| Error::Backend("the deployment row is missing".to_string()))
    }

    async fn append_usage(&self, records: Vec<cumulo_store::usage::UsageRecord>) -> Result<u64> {
        self.append_usage_rows(records).await
    }

    async fn usage_between(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<cumulo_store::usage::UsageRecord>> {
        self.usage_rows_between(since, until).await
    }

    async fn usage_page(
        &self,
        query: cumulo_store::usage::UsagePageQuery,
    ) -> Result<Vec<cumulo_store::usage::UsageRecord>> {
        self.usage_rows_page(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that refuses writes (here a session with `default_transaction_read_only`, as on a
    /// standby) answers `StorageFull`, which the API turns into 507, and a read still works.
    #[tokio::test]
    async fn a_read_only_database_answers_storage_full() {
        let Ok(url) = std::env::var("CUMULO_TEST_POSTGRES_URL") else {
            println!("skipping: CUMULO_TEST_POSTGRES_URL not set");
            return;
        };
        let schema = format!("t_ro_{}", std::process::id());
        let writable =
            PostgresStore::open(Options { schema: Some(schema.clone()), ..Options::new(url.clone()) }).await.unwrap();
        let job = || vec![NewJob { spec: JobSpec::new("ro", "default"), idempotency_key: None }];
        let stored = writable.submit(job()).await.unwrap();
        let connect: PgConnectOptions = url.parse().unwrap();
        let connect = connect.options([("search_path", schema.as_str()), ("default_transaction_read_only", "on")]);
        let read_only =
            PostgresStore::with_pool(PgPoolOptions::new().max_connections(2).connect_with(connect).await.unwrap());
        for jobs in [job(), vec![job().remove(0), job().remove(0)]] {
            let err = read_only.submit(jobs).await.unwrap_err();
            assert!(matches!(err, Error::StorageFull(_)), "a refused write must say storage full, not {err:?}");
        }
        assert_eq!(read_only.get_job(stored[0].id).await.unwrap().spec.name, "ro", "reads still work");
        read_only.close().await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&writable.pool).await.unwrap();
        writable.close().await;
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/cumulo"), "postgres://app@db:5432/cumulo");
        assert_eq!(redact("postgres://db/cumulo"), "postgres://db/cumulo");
    }
}
