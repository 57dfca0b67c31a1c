//! The default `Store`: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Durability (invariant 3, "a job is durable before the API answers"): every write is a transaction
//! that commits before the call returns, and `synchronous=FULL` makes SQLite fsync the WAL on each
//! commit, so an answered submit survives a process kill *and* a power loss (`NORMAL` would survive
//! only a process kill). To keep that affordable, submits are group-committed: one writer task
//! drains every submit that is waiting, writes them in one transaction and answers each caller after
//! the one fsync. All other writes share the same single writer connection; reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

/// Schema migrations, applied in order; the applied version is kept in `PRAGMA user_version`.
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

/// The most jobs one group commit writes.
const MAX_GROUP_JOBS: usize = 4096;

/// How to open the database.
#[derive(Clone, Debug)]
pub struct Options {
    /// The database file; created with its directory when missing.
    pub path: PathBuf,
    /// Read-only connections beside the one writer.
    pub readers: u32,
}

impl Options {
    pub fn new(path: impl Into<PathBuf>) -> Options {
        Options { path: path.into(), readers: 4 }
    }
}

/// A SQLite-backed [`Store`]. Cheap to share behind an `Arc`; dropping the last handle stops the
/// group-commit task.
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    submits: mpsc::UnboundedSender<SubmitRequest>,
    path: PathBuf,
}

/// A job ready to write: checked and serialised outside the writer.
struct PreparedJob {
    tenant: String,
    idem_key: Option<String>,
    priority: i64,
    max_attempts: i64,
    spec: String,
}

struct SubmitRequest {
    jobs: Vec<PreparedJob>,
    reply: oneshot::Sender<Result<Vec<Submitted>>>,
}

fn backend(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(db.message().to_string()),
        sqlx::Error::Database(db) if db.code().is_some_and(|code| cannot_write(&code)) => {
            Error::StorageFull(err.to_string())
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => Error::StorageFull(err.to_string()),
        _ => Error::Backend(err.to_string()),
    }
}

/// SQLite result codes (primary code in the low byte) that mean "cannot write": `SQLITE_FULL` (13)
/// and `SQLITE_READONLY` (8).
fn cannot_write(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 8 | 13))
}

/// The writer's connection comes back to the pool only when no transaction is left open on it.
///
/// When a statement fails with `SQLITE_FULL`, SQLite may roll the whole transaction back by itself;
/// sqlx's own `ROLLBACK` then fails and sqlx keeps counting the transaction as open, so the next
/// `begin` on that connection becomes a `SAVEPOINT` inside a transaction that nothing ever commits:
/// later submits were answered 201 without being durable, and ids were handed out again (issue 12,
/// finding 1). Such a connection is closed instead (closing rolls back whatever is open) and the
/// pool opens a fresh one.
fn writer_released_clean(
    conn: &mut sqlx::SqliteConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        // A round trip to the connection's worker, so a rollback queued by a dropped transaction
        // has run before the depth is read.
        sqlx::Connection::ping(&mut *conn).await?;
        let depth = <sqlx::sqlite::SqliteTransactionManager as sqlx::TransactionManager>::get_transaction_depth(conn);
        if depth != 0 {
            tracing::warn!(depth, "the sqlite writer came back inside a transaction; reopening it");
        }
        Ok(depth == 0)
    })
}

fn now_micros() -> i64 {
    cumulo_store::to_micros(chrono::Utc::now())
}

/// How much of the database file a reader maps (SQLite clamps it to its compiled-in maximum, 2 GiB
/// by default; the rest of a larger file is read as before).
const READER_MMAP_BYTES: u64 = 1 << 31;

impl SqliteStore {
    /// Opens (creating when missing) the database at `options.path` and applies pending migrations.
    /// Must be called inside a tokio runtime (it spawns the group-commit task).
    pub async fn open(options: Options) -> Result<SqliteStore> {
        if let Some(dir) = options.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Backend(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let base = SqliteConnectOptions::new()
            .filename(&options.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_release(writer_released_clean)
            .connect_with(base.clone().create_if_missing(true))
            .await
            .map_err(|e| Error::Backend(format!("cannot open {}: {e}", options.path.display())))?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .idle_timeout(None)
            .max_lifetime(None)
            // Readers map the file rather than copy each page out of the OS cache with a read(2):
            // a FOCUS export reads every usage page (the copies were its largest cost).
            .connect_with(base.read_only(true).pragma("mmap_size", READER_MMAP_BYTES.to_string()))
            .await
            .map_err(backend)?;
        let (submits, queue) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(writer.clone(), queue));
        Ok(SqliteStore { writer, readers, submits, path: options.path })
    }

    /// Opens `path` with default options, shared.
    pub async fn open_path(path: impl AsRef<Path>) -> Result<Arc<SqliteStore>> {
        Ok(Arc::new(SqliteStore::open(Options::new(path.as_ref())).await?))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.writer.begin().await.map_err(backend)
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(backend)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *conn).await.map_err(backend)?;
    if version as usize > MIGRATIONS.len() {
        return Err(Error::Backend(format!(
            "database schema version {version} is newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(backend)?;
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(backend)?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", index + 1)).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(version = index + 1, "applied sqlite migration");
    }
    Ok(())
}

/// Writes waiting submits in groups: one transaction and one fsync for many callers. When a group
/// fails, each request is retried alone so one bad request cannot fail the others.
async fn group_commit(pool: SqlitePool, mut queue: mpsc::UnboundedReceiver<SubmitRequest>) {
    while let Some(first) = queue.recv().await {
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
        match write_submits(&pool, &group).await {
            Ok(answers) => {
                for (request, answer) in group.into_iter().zip(answers) {
                    let _ = request.reply.send(Ok(answer));
                }
            }
            Err(err) if group.len() == 1 => {
                let _ = group.pop().expect("one request").reply.send(Err(err));
            }
            Err(err) => {
                tracing::warn!(error = %err, requests = group.len(), "group commit failed, retrying one by one");
                for request in group {
                    let answer = write_submits(&pool, std::slice::from_ref(&request)).await;
                    let _ = request.reply.send(answer.map(|mut all| all.pop().unwrap_or_default()));
                }
            }
        }
    }
}

/// Rows per multi-row `INSERT` (8 parameters each, well under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 256;

async fn write_submits(pool: &SqlitePool, group: &[SubmitRequest]) -> Result<Vec<Vec<Submitted>>> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let now = now_micros();
    let first_id: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetch_one(&mut *tx).await.map_err(backend)?;
    // Every job gets the next id; a job whose (tenant, key) already exists is not inserted (the
    // `RETURNING` list leaves it out) and answers with the existing job's id instead.
    let jobs: Vec<&PreparedJob> = group.iter().flat_map(|request| &request.jobs).collect();
    let mut inserted = std::collections::HashSet::with_capacity(jobs.len());
    for (chunk_index, chunk) in jobs.chunks(ROWS_PER_INSERT).enumerate() {
        let mut sql = String::from(
            "INSERT INTO jobs (id, tenant, idem_key, state, priority, spec, max_attempts, submitted_at, updated_at) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, 'pending', ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, 'pending', ?, ?, ?, ?, ?)"
            });
        }
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING id");
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for (i, job) in chunk.iter().enumerate() {
            let id = first_id + (chunk_index * ROWS_PER_INSERT + i) as i64;
            query = query
                .bind(id)
                .bind(&job.tenant)
                .bind(&job.idem_key)
                .bind(job.priority)
                .bind(&job.spec)
                .bind(job.max_attempts)
                .bind(now)
                .bind(now);
        }
        inserted.extend(query.fetch_all(&mut *tx).await.map_err(backend)?);
    }
    let mut answers = Vec::with_capacity(group.len());
    let mut index = 0i64;
    for request in group {
        let mut answer = Vec::with_capacity(request.jobs.len());
        for job in &request.jobs {
            let id = first_id + index;
            index += 1;
            if inserted.contains(&id) {
                answer.push(Submitted { id: JobId(id as u64), created: true });
                continue;
            }
            let existing: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE tenant = $1 AND idem_key = $2")
                .bind(&job.tenant)
                .bind(&job.idem_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            answer.push(Submitted { id: JobId(existing as u64), created: false });
        }
        answers.push(answer);
    }
    tx.commit().await.map_err(backend)?;
    Ok(answers)
}

const JOB_COLUMNS: &str = "id, state, spec, pending_reason, cancel_requested, attempt_count, submitted_at, updated_at";

fn job_from_row(row: &SqliteRow) -> Result<JobRecord> {
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
        cancel_requested: row.try_get::<i64, _>("cancel_requested").map_err(backend)? != 0,
        attempt_count: row.try_get::<i64, _>("attempt_count").map_err(backend)? as u32,
        submitted_at: from_micros(row.try_get("submitted_at").map_err(backend)?),
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?),
        attempts: Vec::new(),
    })
}

/// One `id:attempt_count` entry of `pending_keys`'s list.
fn pending_key_from_text(entry: &str) -> Result<PendingKey> {
    let parsed =
        entry.split_once(':').and_then(|(id, count)| Some((id.parse::<u64>().ok()?, count.parse::<u32>().ok()?)));
    let (id, attempt_count) = parsed
        .ok_or_else(|| Error::Backend(format!("unreadable pending job key `{entry}`: expected id:attempt_count")))?;
    Ok(PendingKey { id: JobId(id), attempt_count })
}

fn attempt_from_row(row: &SqliteRow) -> Result<AttemptRecord> {
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
    tx: &mut Transaction<'static, Sqlite>,
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
    tx: &mut Transaction<'static, Sqlite>,
    id: AttemptId,
    to: AttemptState,
    message: Option<&str>,
    now: i64,
    must_exist: bool,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT attempts.state, jobs.cancel_requested, jobs.failures, jobs.max_attempts, jobs.attempt_count,
                COALESCE(json_extract(jobs.spec, '$.replicas'), 1), attempts.replica
         FROM attempts JOIN jobs ON jobs.id = attempts.job_id WHERE attempts.job_id = $1 AND attempts.attempt = $2",
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
    .bind(i64::from(to == AttemptState::Lost))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    let cancel_requested = row.try_get::<i64, _>(1).map_err(backend)? != 0;
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
    tx: &mut Transaction<'static, Sqlite>,
    launch: &NewAttempt,
    now: i64,
) -> Result<Option<(i64, u32)>> {
    if launch.replica == 0 {
        // The common case, one statement: a pending job's first replica.
        let number: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE jobs SET state = 'launching', attempt_count = attempt_count + 1, pending_reason = NULL,
             updated_at = $1 WHERE id = $2 AND state = 'pending' AND cancel_requested = 0
             RETURNING attempt_count, COALESCE(json_extract(jobs.spec, '$.replicas'), 1)",
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
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT state, cancel_requested, COALESCE(json_extract(jobs.spec, '$.replicas'), 1) FROM jobs WHERE id = $1",
    )
    .bind(launch.job.0 as i64)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some((state, cancel_requested, replicas)) = row else { return Ok(None) };
    let replicas = replicas.max(1) as u32;
    if cancel_requested != 0 || launch.replica >= replicas {
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

/// Rows per multi-row pending-reason `UPDATE` (2 parameters each).
const REASONS_PER_UPDATE: usize = 500;

/// Writes the pending reasons of a plan: a few multi-row statements, and only rows whose reason
/// changed, so a pass over a large queue that says the same as the last one writes almost nothing
/// (and holds the one writer briefly: submits wait behind it).
async fn set_pending_reasons(tx: &mut Transaction<'static, Sqlite>, reasons: &[(JobId, String)]) -> Result<()> {
    let reasons = cumulo_store::last_reason_per_job(reasons);
    for chunk in reasons.chunks(REASONS_PER_UPDATE) {
        let mut sql = String::from("UPDATE jobs SET pending_reason = r.column2 FROM (VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        sql.push_str(
            ") AS r WHERE jobs.id = r.column1 AND jobs.state IN ('pending', 'launching', 'running')
             AND jobs.pending_reason IS NOT r.column2",
        );
        let mut query = sqlx::query(&sql);
        for (job, reason) in chunk {
            query = query.bind(job.0 as i64).bind(*reason);
        }
        query.execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
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
            .map_err(|_| Error::Backend("the sqlite writer has stopped".to_string()))?;
        answer.await.map_err(|_| Error::Backend("the sqlite writer dropped a submit".to_string()))?
    }

    async fn job_by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<JobId>> {
        if !cumulo_store::storable_text(tenant) || !cumulo_store::storable_text(key) {
            return Ok(None);
        }
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE tenant = $1 AND idem_key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(&self.readers)
            .await
            .map_err(backend)?;
        Ok(id.map(|id| JobId(id as u64)))
    }

    async fn get_job(&self, id: JobId) -> Result<JobRecord> {
        let mut conn = self.readers.acquire().await.map_err(backend)?;
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
            condition(&mut sql, " AND json_extract(spec, '$.kind') = $N", kind.as_str().to_string());
        }
        if let Some(text) = &filter.name_contains {
            condition(&mut sql, " AND instr(lower(json_extract(spec, '$.name')), lower($N)) > 0", text.clone());
        }
        if let Some(cluster) = &filter.cluster {
            condition(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND json_extract(a.placement, '$.cluster') = $N)",
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
        let rows = query.fetch_all(&self.readers).await.map_err(backend)?;
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
        .execute(&self.writer)
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
                .fetch_all(&self.readers)
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
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn budgets(&self) -> Result<Vec<cumulo_store::budget::BudgetRecord>> {
        let rows: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT tenant, monthly_micros, kind, updated_at FROM tenant_budgets ORDER BY tenant")
                .fetch_all(&self.readers)
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
                .fetch_all(&self.readers)
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
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn cancel_job(&self, id: JobId) -> Result<JobRecord> {
        let mut tx = self.begin().await?;
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
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
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, pending_reason = NULL, updated_at = $1
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
                sqlx::query("UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2")
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
            .fetch_one(&self.writer)
            .await
            .map_err(backend)?;
        job_from_row(&row)
    }

    async fn cancel_pending(&self, id: JobId, reason: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
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
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, pending_reason = $1, updated_at = $2
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
            .fetch_all(&self.readers)
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
                .fetch_all(&self.readers)
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
            .execute(&self.writer)
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
                .fetch_optional(&self.readers)
                .await
                .map_err(backend)?;
        row.map(|(hash, tenant, role, name)| Ok(TokenRecord { hash, tenant, role: role.parse::<Role>()?, name }))
            .transpose()
    }

    async fn token_count(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens").fetch_one(&self.readers).await.map_err(backend)?;
        Ok(count as u64)
    }

    async fn pending_jobs(&self, limit: u32) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' AND cancel_requested = 0
             ORDER BY priority DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(backend)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn pending_keys(&self, limit: u32) -> Result<Vec<PendingKey>> {
        // The whole window in one row: sqlx hands rows over from SQLite's worker thread one
        // message at a time, and for 10,000 rows every pass the wake-ups cost more than the read.
        let keys: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(id || ':' || attempt_count, ',' ORDER BY priority DESC, id) FROM (
                 SELECT id, attempt_count, priority FROM jobs WHERE state = 'pending' AND cancel_requested = 0
                 ORDER BY priority DESC, id LIMIT $1)",
        )
        .bind(i64::from(limit))
        .fetch_one(&self.readers)
        .await
        .map_err(backend)?;
        let Some(keys) = keys else { return Ok(Vec::new()) };
        keys.split(',').map(pending_key_from_text).collect()
    }

    async fn jobs_by_ids(&self, ids: Vec<JobId>) -> Result<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&ids.iter().map(|id| id.0 as i64).collect::<Vec<_>>()).expect("ids serialise");
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id"
        ))
        .bind(ids)
        .fetch_all(&self.readers)
        .await
        .map_err(backend)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn active_attempts(&self) -> Result<Vec<ActiveAttempt>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS}, jobs.spec, jobs.cancel_requested, attempts.preempt_requested FROM attempts JOIN jobs ON jobs.id = attempts.job_id
             WHERE attempts.state IN ('planned', 'launching', 'running') ORDER BY attempts.job_id, attempts.attempt"
        ))
        // A reader: WAL shows it every commit made before the read starts, and the one writer stays
        // free for submits while thousands of active attempts are read.
        .fetch_all(&self.readers)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let attempt = attempt_from_row(row)?;
                let spec: String = row.try_get("spec").map_err(backend)?;
                Ok(ActiveAttempt {
                    spec: serde_json::from_str(&spec)
                        .map_err(|e| Error::Backend(format!("job {} has an unreadable spec: {e}", attempt.id.job)))?,
                    cancel_requested: row.try_get::<i64, _>("cancel_requested").map_err(backend)? != 0,
                    preempt_requested: row.try_get::<i64, _>("preempt_requested").map_err(backend)? != 0,
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
                "UPDATE attempts SET preempt_requested = 1, updated_at = $1
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
        set_pending_reasons(&mut tx, &plan.pending_reasons).await?;
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

    async fn try_lead(&self, _holder: &str, _ttl_s: u32) -> Result<bool> {
        // One process owns the file, so it always leads.
        Ok(true)
    }

    async fn attempts_to_stop_on_engine(&self) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE engine_stop_pending = 1
             ORDER BY attempts.updated_at, attempts.job_id, attempts.attempt"
        ))
        .fetch_all(&self.writer)
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
                "UPDATE attempts SET engine_stop_pending = 0 WHERE job_id = $1 AND attempt = $2 AND engine_stop_pending = 1",
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
            .fetch_optional(&self.readers)
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

    #[test]
    fn pending_keys_are_read_back_or_refused_by_name() {
        assert_eq!(pending_key_from_text("42:3").unwrap(), PendingKey { id: JobId(42), attempt_count: 3 });
        for bad in ["42", "x:1", "42:-1", ""] {
            let err = pending_key_from_text(bad).unwrap_err().to_string();
            assert!(err.contains("id:attempt_count") && err.contains(bad), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn listing_by_state_pages_through_an_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(Options::new(dir.path().join("plan.db"))).await.unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {JOB_COLUMNS} FROM jobs WHERE id > 0 AND state = 'pending' ORDER BY id LIMIT 10"
        );
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&sql).fetch_all(&store.readers).await.unwrap();
        let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
        assert!(plan.iter().any(|step| step.contains("jobs_state_id")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "no sort of every pending job: {plan:?}");
    }

    #[tokio::test]
    async fn reopening_keeps_jobs_and_does_not_migrate_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cumulo.db");
        let first = SqliteStore::open_path(&path).await.unwrap();
        let ids = first.submit(vec![NewJob { spec: JobSpec::new("a", "t"), idempotency_key: None }]).await.unwrap();
        let deployment = first.deployment_id().await.unwrap();
        drop(first);
        let again = SqliteStore::open_path(&path).await.unwrap();
        assert_eq!(again.get_job(ids[0].id).await.unwrap().spec.name, "a");
        assert_eq!(again.deployment_id().await.unwrap(), deployment, "the deployment id is made once");
    }
}
