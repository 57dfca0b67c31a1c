//! The conformance suite every `Store` backend runs, each case on a fresh database.
//!
//! A backend's test file calls [`crate::conformance_tests!`] with an async expression that opens a
//! fresh, migrated store (or `None` to skip, e.g. when no PostgreSQL URL is set). Cases panic with a
//! message on failure; they are plain async functions so a backend may also call one directly.

use std::collections::BTreeSet;
use std::sync::Arc;

use cumulo_types::{JobId, JobSpec, JobState, Priority};

use crate::{
    AttemptId, AttemptState, AttemptUpdate, Error, HistoryPoint, JobFilter, JobOrder, NewAttempt, NewJob, PendingKey,
    PlanCommit, Role, Store, TenantRecord, TokenRecord, replicas_to_place,
};

/// Generates one `#[tokio::test]` per conformance case. `$open` is an async expression evaluating to
/// `Option<Arc<dyn Store>>`, a fresh store each time it is evaluated.
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::conformance_tests!(@cases $open;
            submit_returns_ids_and_stores_specs
            submit_is_idempotent_per_tenant_and_key
            jobs_are_found_by_tenant_and_idempotency_key
            a_bad_job_fails_the_whole_batch
            unknown_jobs_are_not_found
            list_jobs_paginates_and_filters
            cancel_follows_the_job_state
            cancel_pending_keeps_its_reason
            counts_cover_every_state
            tokens_are_found_by_hash
            commit_plan_persists_attempts_before_dispatch
            commit_plan_skips_jobs_no_longer_pending
            lost_attempts_requeue_until_max_attempts
            attempt_states_only_move_forward
            a_bad_update_applies_nothing
            preemption_requeues_the_job
            a_preemption_with_a_reason_tells_it_in_the_event
            cancel_of_an_active_job_ends_with_its_attempt
            pending_jobs_come_by_priority
            pending_keys_follow_the_pending_queue
            jobs_are_read_by_ids
            concurrent_submits_get_distinct_ids
            concurrent_retries_create_one_job
            events_tell_a_jobs_history
            a_single_holder_leads
            the_deployment_id_is_made_once
            replicas_launch_as_separate_attempts
            a_lost_replica_leaves_the_job_running_and_is_placed_again
            max_attempts_counts_per_replica
            cancel_ends_a_replicated_job_with_its_last_replica
            a_replicated_job_requeues_when_every_replica_is_lost
            a_replicated_job_succeeds_when_every_replica_succeeded
            lost_attempts_wait_for_their_engine_to_stop
            large_batches_keep_order_and_repeats
            list_jobs_finds_by_kind_name_and_cluster_newest_first
            tenants_are_created_once_and_listed
            budgets_are_set_replaced_and_listed
            history_comes_back_in_time_order_and_can_be_forgotten
        );
    };
    (@cases $open:expr; $($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $open.await else { return };
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

fn job(name: &str, tenant: &str) -> NewJob {
    NewJob { spec: JobSpec::new(name, tenant), idempotency_key: None }
}

fn keyed(name: &str, tenant: &str, key: &str) -> NewJob {
    NewJob { spec: JobSpec::new(name, tenant), idempotency_key: Some(key.to_string()) }
}

async fn submit_one(store: &Arc<dyn Store>, new: NewJob) -> JobId {
    store.submit(vec![new]).await.expect("submit")[0].id
}

/// Submits a job and commits a plan placing it; returns its attempt id.
async fn placed(store: &Arc<dyn Store>, spec: JobSpec) -> AttemptId {
    let id = submit_one(store, NewJob { spec, idempotency_key: None }).await;
    let applied = store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: id, replica: 0, placement: serde_json::json!({"node": "n1"}) }],
            ..PlanCommit::default()
        })
        .await
        .expect("commit plan");
    assert_eq!(applied.attempts.len(), 1, "job {id} should be placed");
    applied.attempts[0]
}

async fn update(store: &Arc<dyn Store>, id: AttemptId, state: AttemptState) {
    store.update_attempts(vec![AttemptUpdate { id, state, message: None }]).await.expect("update attempt");
}

async fn state_of(store: &Arc<dyn Store>, id: JobId) -> JobState {
    store.get_job(id).await.expect("get job").state
}

pub async fn submit_returns_ids_and_stores_specs(store: Arc<dyn Store>) {
    let mut spec = JobSpec::new("train", "research");
    spec.priority = Priority::HIGH;
    spec.run = Some("echo hi".to_string());
    let answers =
        store.submit(vec![NewJob { spec: spec.clone(), idempotency_key: None }, job("b", "research")]).await.unwrap();
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(|a| a.created));
    assert_ne!(answers[0].id, answers[1].id);
    let stored = store.get_job(answers[0].id).await.unwrap();
    assert_eq!(stored.spec, spec);
    assert_eq!(stored.state, JobState::Pending);
    assert_eq!(stored.attempt_count, 0);
    assert!(stored.attempts.is_empty());
    assert!(!stored.cancel_requested);
    assert!(store.submit(Vec::new()).await.unwrap().is_empty());
}

pub async fn submit_is_idempotent_per_tenant_and_key(store: Arc<dyn Store>) {
    let first = store.submit(vec![keyed("a", "t1", "k1")]).await.unwrap()[0];
    assert!(first.created);
    let retry = store.submit(vec![keyed("a", "t1", "k1")]).await.unwrap()[0];
    assert_eq!(retry.id, first.id);
    assert!(!retry.created, "a retry must not create a job");
    let other_tenant = store.submit(vec![keyed("a", "t2", "k1")]).await.unwrap()[0];
    assert!(other_tenant.created);
    assert_ne!(other_tenant.id, first.id);
    let batch =
        store.submit(vec![keyed("b", "t1", "k2"), keyed("b", "t1", "k2"), keyed("c", "t1", "k1")]).await.unwrap();
    assert!(batch[0].created);
    assert_eq!((batch[1].id, batch[1].created), (batch[0].id, false), "duplicate key within one batch");
    assert_eq!((batch[2].id, batch[2].created), (first.id, false));
    let page = store.list_jobs(JobFilter::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 3, "three jobs exist: t1/k1, t2/k1, t1/k2");
}

pub async fn jobs_are_found_by_tenant_and_idempotency_key(store: Arc<dyn Store>) {
    assert_eq!(store.job_by_idempotency_key("t1", "k1").await.unwrap(), None, "nothing stored yet");
    let first = store.submit(vec![keyed("a", "t1", "k1"), job("b", "t1")]).await.unwrap()[0];
    assert_eq!(store.job_by_idempotency_key("t1", "k1").await.unwrap(), Some(first.id));
    assert_eq!(store.job_by_idempotency_key("t2", "k1").await.unwrap(), None, "keys are scoped per tenant");
    assert_eq!(store.job_by_idempotency_key("t1", "k2").await.unwrap(), None);
    // A key with a NUL cannot have been stored (PostgreSQL text holds none): not found, no error.
    assert_eq!(store.job_by_idempotency_key("t1", "k\u{0}").await.unwrap(), None);
}

pub async fn a_bad_job_fails_the_whole_batch(store: Arc<dyn Store>) {
    let bad = NewJob { spec: JobSpec::new("x", ""), idempotency_key: None };
    let err = store.submit(vec![job("good", "t"), bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "tenant", .. }), "{err}");
    assert_eq!(err.to_string(), "invalid tenant ``: expected a non-empty tenant name");
    assert!(store.list_jobs(JobFilter::default()).await.unwrap().jobs.is_empty(), "nothing is stored");
}

pub async fn unknown_jobs_are_not_found(store: Arc<dyn Store>) {
    let err = store.get_job(JobId(4242)).await.unwrap_err();
    assert_eq!(err.to_string(), "job `4242` not found");
    let err = store.cancel_job(JobId(4242)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: "job", .. }), "{err}");
}

pub async fn list_jobs_paginates_and_filters(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let tenant = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(submit_one(&store, job(&format!("j{i}"), tenant)).await);
    }
    store.cancel_job(ids[3]).await.unwrap();
    let mut seen = Vec::new();
    let mut filter = JobFilter { limit: 10, ..JobFilter::default() };
    loop {
        let page = store.list_jobs(filter.clone()).await.unwrap();
        assert!(page.jobs.len() <= 10);
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages cover every job once, in id order");
    let odd = store.list_jobs(JobFilter { tenant: Some("odd".into()), ..JobFilter::default() }).await.unwrap();
    assert_eq!(odd.jobs.len(), 12);
    assert!(odd.jobs.iter().all(|j| j.spec.tenant == "odd"));
    let cancelled =
        store.list_jobs(JobFilter { state: Some(JobState::Cancelled), ..JobFilter::default() }).await.unwrap();
    assert_eq!(cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[3]]);
    let both =
        JobFilter { state: Some(JobState::Pending), tenant: Some("odd".into()), limit: 5, ..JobFilter::default() };
    let page = store.list_jobs(both).await.unwrap();
    assert_eq!(page.jobs.len(), 5);
    assert!(page.jobs.iter().all(|j| j.spec.tenant == "odd" && j.state == JobState::Pending && j.id != ids[3]));
    assert_eq!(page.next, Some(page.jobs[4].id));
}

pub async fn cancel_follows_the_job_state(store: Arc<dyn Store>) {
    let pending = submit_one(&store, job("p", "t")).await;
    let record = store.cancel_job(pending).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert_eq!(store.cancel_job(pending).await.unwrap().state, JobState::Cancelled, "cancel twice is a no-op");

    let attempt = placed(&store, JobSpec::new("r", "t")).await;
    update(&store, attempt, AttemptState::Running).await;
    let record = store.cancel_job(attempt.job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "an active job keeps running until its attempt stops");
    assert!(record.cancel_requested);

    let done = placed(&store, JobSpec::new("d", "t")).await;
    update(&store, done, AttemptState::Succeeded).await;
    let err = store.cancel_job(done.job).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert_eq!(err.to_string(), format!("conflict: job {} already succeeded", done.job));
    assert_eq!(state_of(&store, done.job).await, JobState::Succeeded);
}

pub async fn cancel_pending_keeps_its_reason(store: Arc<dyn Store>) {
    let pending = submit_one(&store, job("p", "t")).await;
    let reason = "job 1 (which it runs after) failed";
    assert!(store.cancel_pending(pending, reason).await.unwrap(), "a pending job is cancelled");
    let record = store.get_job(pending).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert_eq!(record.pending_reason.as_deref(), Some(reason), "the reason stays readable on the job");
    let events = store.job_events(pending).await.unwrap();
    assert!(
        events.iter().any(|e| e.message == format!("cancelled while pending: {reason}")),
        "the history says why: {events:?}"
    );
    assert!(!store.cancel_pending(pending, reason).await.unwrap(), "a job no longer pending is left as it is");

    let running = placed(&store, JobSpec::new("r", "t")).await;
    update(&store, running, AttemptState::Running).await;
    assert!(!store.cancel_pending(running.job, reason).await.unwrap(), "a running job is not cancelled by it");
    assert_eq!(state_of(&store, running.job).await, JobState::Running);
    let err = store.cancel_pending(JobId(4242), reason).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

pub async fn counts_cover_every_state(store: Arc<dyn Store>) {
    let counts = store.job_counts_by_state().await.unwrap();
    assert_eq!(counts.len(), JobState::ALL.len());
    assert!(counts.values().all(|n| *n == 0));
    for i in 0..3 {
        submit_one(&store, job(&format!("{i}"), "t")).await;
    }
    let cancelled = submit_one(&store, job("c", "t")).await;
    store.cancel_job(cancelled).await.unwrap();
    let running = placed(&store, JobSpec::new("r", "t")).await;
    update(&store, running, AttemptState::Running).await;
    let counts = store.job_counts_by_state().await.unwrap();
    assert_eq!(counts[&JobState::Pending], 3);
    assert_eq!(counts[&JobState::Cancelled], 1);
    assert_eq!(counts[&JobState::Running], 1);
    assert_eq!(counts[&JobState::Failed], 0);
}

pub async fn tokens_are_found_by_hash(store: Arc<dyn Store>) {
    assert_eq!(store.token_count().await.unwrap(), 0);
    let token = TokenRecord { hash: "h1".into(), tenant: "research".into(), role: Role::Member, name: "ci".into() };
    store.create_token(token.clone()).await.unwrap();
    assert_eq!(store.token_by_hash("h1").await.unwrap(), Some(token.clone()));
    assert_eq!(store.token_by_hash("h2").await.unwrap(), None);
    let err = store.create_token(token).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert_eq!(store.token_count().await.unwrap(), 1);
}

pub async fn commit_plan_persists_attempts_before_dispatch(store: Arc<dyn Store>) {
    let a = submit_one(&store, job("a", "t")).await;
    let b = submit_one(&store, job("b", "t")).await;
    let placement = serde_json::json!({"cluster": "local", "nodes": ["n1", "n2"]});
    let applied = store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: a, replica: 0, placement: placement.clone() }],
            pending_reasons: vec![(b, "no node has 8 free H100".into())],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    assert_eq!(applied.attempts, vec![AttemptId { job: a, attempt: 1 }]);
    assert!(applied.skipped.is_empty());
    let record = store.get_job(a).await.unwrap();
    assert_eq!(record.state, JobState::Launching);
    assert_eq!(record.attempt_count, 1);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].state, AttemptState::Planned);
    assert_eq!(record.attempts[0].placement, placement);
    assert_eq!(store.get_job(b).await.unwrap().pending_reason.as_deref(), Some("no node has 8 free H100"));
    let active = store.active_attempts().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].attempt.id, applied.attempts[0]);
    assert_eq!(active[0].spec.name, "a");
    let pending: Vec<JobId> = store.pending_jobs(10).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(pending, vec![b]);
}

pub async fn commit_plan_skips_jobs_no_longer_pending(store: Arc<dyn Store>) {
    let first = placed(&store, JobSpec::new("a", "t")).await;
    let cancelled = submit_one(&store, job("c", "t")).await;
    store.cancel_job(cancelled).await.unwrap();
    let fresh = submit_one(&store, job("f", "t")).await;
    let launches = [first.job, cancelled, fresh, JobId(999_999)]
        .into_iter()
        .map(|job| NewAttempt { job, replica: 0, placement: serde_json::json!({}) })
        .collect();
    let applied = store.commit_plan(PlanCommit { launches, ..PlanCommit::default() }).await.unwrap();
    assert_eq!(applied.attempts, vec![AttemptId { job: fresh, attempt: 1 }]);
    assert_eq!(applied.skipped, vec![first.job, cancelled, JobId(999_999)]);
    assert_eq!(store.get_job(first.job).await.unwrap().attempts.len(), 1, "no second attempt for a placed job");
}

pub async fn lost_attempts_requeue_until_max_attempts(store: Arc<dyn Store>) {
    let mut spec = JobSpec::new("flaky", "t");
    spec.max_attempts = 2;
    let first = placed(&store, spec).await;
    update(&store, first, AttemptState::Running).await;
    assert_eq!(state_of(&store, first.job).await, JobState::Running);
    store
        .update_attempts(vec![AttemptUpdate {
            id: first,
            state: AttemptState::Lost,
            message: Some("node gone".into()),
        }])
        .await
        .unwrap();
    let record = store.get_job(first.job).await.unwrap();
    assert_eq!(record.state, JobState::Pending);
    assert_eq!(
        record.pending_reason.as_deref(),
        Some(format!("requeued after attempt {first} was lost: node gone").as_str())
    );
    assert_eq!(record.attempts[0].message.as_deref(), Some("node gone"));
    let applied = store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: first.job, replica: 0, placement: serde_json::json!({}) }],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    let second = applied.attempts[0];
    assert_eq!(second, AttemptId { job: first.job, attempt: 2 });
    update(&store, second, AttemptState::Failed).await;
    assert_eq!(state_of(&store, first.job).await, JobState::Failed, "two failures of two attempts");
    assert!(store.active_attempts().await.unwrap().is_empty());
}

pub async fn attempt_states_only_move_forward(store: Arc<dyn Store>) {
    let attempt = placed(&store, JobSpec::new("a", "t")).await;
    update(&store, attempt, AttemptState::Running).await;
    update(&store, attempt, AttemptState::Launching).await;
    assert_eq!(store.get_job(attempt.job).await.unwrap().attempts[0].state, AttemptState::Running);
    update(&store, attempt, AttemptState::Succeeded).await;
    update(&store, attempt, AttemptState::Lost).await;
    let record = store.get_job(attempt.job).await.unwrap();
    assert_eq!(record.attempts[0].state, AttemptState::Succeeded, "terminal states are final");
    assert_eq!(record.state, JobState::Succeeded);
}

pub async fn a_bad_update_applies_nothing(store: Arc<dyn Store>) {
    let attempt = placed(&store, JobSpec::new("a", "t")).await;
    let unknown = AttemptId { job: attempt.job, attempt: 7 };
    let err = store
        .update_attempts(vec![
            AttemptUpdate { id: attempt, state: AttemptState::Running, message: None },
            AttemptUpdate { id: unknown, state: AttemptState::Running, message: None },
        ])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("attempt `{unknown}` not found"));
    let record = store.get_job(attempt.job).await.unwrap();
    assert_eq!(record.attempts[0].state, AttemptState::Planned, "the valid update was rolled back too");
    assert_eq!(record.state, JobState::Launching);
}

pub async fn preemption_requeues_the_job(store: Arc<dyn Store>) {
    let mut spec = JobSpec::new("low", "t");
    spec.max_attempts = 1;
    let victim = placed(&store, spec).await;
    update(&store, victim, AttemptState::Running).await;
    let urgent = submit_one(&store, job("urgent", "t")).await;
    let applied = store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: urgent, replica: 0, placement: serde_json::json!({}) }],
            preemptions: vec![victim],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    assert_eq!(applied.attempts.len(), 1);
    let active = store.active_attempts().await.unwrap();
    let marked = active.iter().find(|a| a.attempt.id == victim).expect("the victim stays active until stopped");
    assert!(marked.preempt_requested);
    assert!(active.iter().any(|a| a.attempt.id == applied.attempts[0] && !a.preempt_requested));
    assert_eq!(state_of(&store, victim.job).await, JobState::Running, "running until its cluster confirms");
    update(&store, victim, AttemptState::Preempted).await;
    let record = store.get_job(victim.job).await.unwrap();
    assert_eq!(record.attempts[0].state, AttemptState::Preempted);
    assert_eq!(record.state, JobState::Pending, "preemption does not use up max_attempts");
    let active: Vec<AttemptId> = store.active_attempts().await.unwrap().iter().map(|a| a.attempt.id).collect();
    assert_eq!(active, applied.attempts);
    let kinds: Vec<String> = store.job_events(victim.job).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"attempt_preempting".to_string()), "{kinds:?}");
}

pub async fn a_preemption_with_a_reason_tells_it_in_the_event(store: Arc<dyn Store>) {
    let mover = placed(&store, JobSpec::new("mover", "t")).await;
    update(&store, mover, AttemptState::Running).await;
    let reason = "moves from K80 to V100 at a heterogeneity round".to_string();
    store
        .commit_plan(PlanCommit {
            preemptions: vec![mover],
            preemption_reasons: vec![crate::PreemptionReason { attempt: mover, reason }],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    let events = store.job_events(mover.job).await.unwrap();
    let preempting = events.iter().find(|e| e.kind == "attempt_preempting").expect("a preempting event");
    assert_eq!(
        preempting.message,
        format!("attempt {mover} moves from K80 to V100 at a heterogeneity round; stopping it")
    );
}

pub async fn cancel_of_an_active_job_ends_with_its_attempt(store: Arc<dyn Store>) {
    let attempt = placed(&store, JobSpec::new("a", "t")).await;
    update(&store, attempt, AttemptState::Running).await;
    store.cancel_job(attempt.job).await.unwrap();
    let active = store.active_attempts().await.unwrap();
    assert!(active[0].cancel_requested, "the loop sees the cancel request");
    assert!(store.pending_jobs(10).await.unwrap().is_empty());
    update(&store, attempt, AttemptState::Cancelled).await;
    assert_eq!(state_of(&store, attempt.job).await, JobState::Cancelled);

    // A cancel-requested job whose attempt is lost is cancelled, not requeued.
    let other = placed(&store, JobSpec::new("b", "t")).await;
    store.cancel_job(other.job).await.unwrap();
    update(&store, other, AttemptState::Lost).await;
    assert_eq!(state_of(&store, other.job).await, JobState::Cancelled);
}

pub async fn pending_jobs_come_by_priority(store: Arc<dyn Store>) {
    let low = submit_one(&store, job("low", "t")).await;
    let mut spec = JobSpec::new("high", "t");
    spec.priority = Priority::HIGH;
    let high = submit_one(&store, NewJob { spec, idempotency_key: None }).await;
    let low2 = submit_one(&store, job("low2", "t")).await;
    let order: Vec<JobId> = store.pending_jobs(10).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(order, vec![high, low, low2]);
    assert_eq!(store.pending_jobs(1).await.unwrap().len(), 1);
}

pub async fn pending_keys_follow_the_pending_queue(store: Arc<dyn Store>) {
    let low = submit_one(&store, job("low", "t")).await;
    let mut spec = JobSpec::new("high", "t");
    spec.priority = Priority::HIGH;
    let high = submit_one(&store, NewJob { spec, idempotency_key: None }).await;
    let low2 = submit_one(&store, job("low2", "t")).await;
    let cancelled = submit_one(&store, job("cancelled", "t")).await;
    store.cancel_job(cancelled).await.unwrap();
    let keys = |ids: &[JobId], attempts: &[u32]| -> Vec<PendingKey> {
        ids.iter().zip(attempts).map(|(id, n)| PendingKey { id: *id, attempt_count: *n }).collect()
    };
    assert_eq!(store.pending_keys(10).await.unwrap(), keys(&[high, low, low2], &[0, 0, 0]));
    assert_eq!(store.pending_keys(2).await.unwrap(), keys(&[high, low], &[0, 0]));
    let pending: Vec<PendingKey> = store.pending_jobs(10).await.unwrap().iter().map(PendingKey::of).collect();
    assert_eq!(store.pending_keys(10).await.unwrap(), pending, "the keys of pending_jobs, in its order");

    // A job placed and requeued is pending again with one attempt more: a different key.
    let applied = store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: low, replica: 0, placement: serde_json::json!({}) }],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    assert_eq!(store.pending_keys(10).await.unwrap(), keys(&[high, low2], &[0, 0]));
    store
        .update_attempts(vec![AttemptUpdate { id: applied.attempts[0], state: AttemptState::Lost, message: None }])
        .await
        .unwrap();
    assert_eq!(store.pending_keys(10).await.unwrap(), keys(&[high, low, low2], &[0, 1, 0]));
}

pub async fn jobs_are_read_by_ids(store: Arc<dyn Store>) {
    let a = submit_one(&store, job("a", "t")).await;
    let b = submit_one(&store, job("b", "u")).await;
    assert!(store.jobs_by_ids(Vec::new()).await.unwrap().is_empty());
    let read = store.jobs_by_ids(vec![b, JobId(999_999), a]).await.unwrap();
    assert_eq!(read.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a, b], "ascending ids, unknown ones left out");
    let mut expected = store.get_job(b).await.unwrap();
    expected.attempts.clear();
    assert_eq!(read[1], expected);
}

pub async fn concurrent_submits_get_distinct_ids(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let answer = store.submit(vec![keyed("c", "t", &format!("{t}-{i}"))]).await.unwrap();
                ids.push(answer[0].id);
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(all.insert(id), "id {id} given twice");
        }
    }
    assert_eq!(all.len(), 200);
    assert_eq!(store.job_counts_by_state().await.unwrap()[&JobState::Pending], 200);
}

pub async fn concurrent_retries_create_one_job(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.submit(vec![keyed("r", "t", "same")]).await.unwrap()[0] }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| a.created).count(), 1);
    assert!(answers.iter().all(|a| a.id == answers[0].id));
    assert_eq!(store.list_jobs(JobFilter::default()).await.unwrap().jobs.len(), 1);
}

pub async fn events_tell_a_jobs_history(store: Arc<dyn Store>) {
    let attempt = placed(&store, JobSpec::new("a", "t")).await;
    update(&store, attempt, AttemptState::Running).await;
    store.cancel_job(attempt.job).await.unwrap();
    let kinds: Vec<String> = store.job_events(attempt.job).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec!["attempt_planned", "attempt_running", "cancel_requested"]);
    assert!(store.job_events(JobId(777)).await.unwrap().is_empty());
}

pub async fn a_single_holder_leads(store: Arc<dyn Store>) {
    assert!(store.try_lead("node-a", 10).await.unwrap());
    assert!(store.try_lead("node-a", 10).await.unwrap(), "renewing keeps the lead");
}

pub async fn the_deployment_id_is_made_once(store: Arc<dyn Store>) {
    let id = store.deployment_id().await.expect("deployment id");
    assert_eq!(id.len(), 8, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "lowercase hex: {id}");
    submit_one(&store, job("a", "t")).await;
    assert_eq!(store.deployment_id().await.unwrap(), id, "the same id on every call");
}

pub async fn large_batches_keep_order_and_repeats(store: Arc<dyn Store>) {
    let earlier = store.submit(vec![keyed("old", "t", "k-7")]).await.unwrap()[0].id;
    // 600 jobs span several multi-row statements; key k-3 repeats across them and k-7 was stored.
    let batch: Vec<NewJob> = (0..600)
        .map(|i| match i {
            550 => keyed("again", "t", "k-3"),
            _ => keyed(&format!("j{i}"), "t", &format!("k-{i}")),
        })
        .collect();
    let answers = store.submit(batch).await.unwrap();
    assert_eq!(answers.len(), 600);
    assert_eq!((answers[7].id, answers[7].created), (earlier, false));
    assert_eq!((answers[550].id, answers[550].created), (answers[3].id, false));
    assert_eq!(answers.iter().filter(|a| a.created).count(), 598);
    for (i, answer) in answers.iter().enumerate().filter(|(i, _)| ![7, 550].contains(i)) {
        assert_eq!(store.get_job(answer.id).await.unwrap().spec.name, format!("j{i}"), "answer {i} names its job");
    }
    let counts = store.job_counts_by_state().await.unwrap();
    assert_eq!(counts[&JobState::Pending], 599);
}

/// An inference job with `replicas` replicas and `max_attempts` attempts per replica.
fn replicated(name: &str, replicas: u32, max_attempts: u32) -> NewJob {
    let mut spec = JobSpec::new(name, "t");
    spec.kind = cumulo_types::JobKind::Inference;
    spec.replicas = replicas;
    spec.max_attempts = max_attempts;
    NewJob { spec, idempotency_key: None }
}

/// Commits launches of `replicas` of `job`; returns what was created.
async fn launch_replicas(store: &Arc<dyn Store>, job: JobId, replicas: &[u32]) -> crate::PlanApplied {
    let launches = replicas
        .iter()
        .map(|r| NewAttempt { job, replica: *r, placement: serde_json::json!({"replica": r}) })
        .collect();
    store.commit_plan(PlanCommit { launches, ..PlanCommit::default() }).await.expect("commit plan")
}

async fn waiting_replicas(store: &Arc<dyn Store>, job: JobId) -> Vec<u32> {
    replicas_to_place(&store.get_job(job).await.expect("get job"))
}

/// Starts a job with `replicas` replicas, all running; returns the job and its attempts by replica.
async fn running_replicas(store: &Arc<dyn Store>, new: NewJob) -> (JobId, Vec<AttemptId>) {
    let job = submit_one(store, new.clone()).await;
    let all: Vec<u32> = (0..new.spec.replicas).collect();
    let applied = launch_replicas(store, job, &all).await;
    assert_eq!(applied.attempts.len(), all.len());
    for attempt in &applied.attempts {
        update(store, *attempt, AttemptState::Running).await;
    }
    assert_eq!(state_of(store, job).await, JobState::Running);
    (job, applied.attempts)
}

pub async fn replicas_launch_as_separate_attempts(store: Arc<dyn Store>) {
    let job = submit_one(&store, replicated("serve", 3, 3)).await;
    assert_eq!(waiting_replicas(&store, job).await, vec![0, 1, 2]);
    // Replica 1 twice and a replica the job does not have: each is skipped.
    let applied = launch_replicas(&store, job, &[0, 1, 1, 3, 2]).await;
    assert_eq!(applied.attempts, (1..=3).map(|attempt| AttemptId { job, attempt }).collect::<Vec<_>>());
    assert_eq!(applied.skipped, vec![job, job]);
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Launching);
    assert_eq!(record.attempt_count, 3);
    let replicas: Vec<u32> = record.attempts.iter().map(|a| a.replica).collect();
    assert_eq!(replicas, vec![0, 1, 2]);
    assert_eq!(record.attempts[1].placement, serde_json::json!({"replica": 1}));
    let active = store.active_attempts().await.unwrap();
    assert_eq!(
        active.iter().map(|a| (a.attempt.id.attempt, a.attempt.replica)).collect::<Vec<_>>(),
        [(1, 0), (2, 1), (3, 2)]
    );
    assert!(waiting_replicas(&store, job).await.is_empty());
    update(&store, applied.attempts[0], AttemptState::Running).await;
    assert_eq!(state_of(&store, job).await, JobState::Running, "running while any replica runs");
    let again = launch_replicas(&store, job, &[0, 1, 2]).await;
    assert!(again.attempts.is_empty(), "nothing launched twice: every replica has an active attempt");
    assert_eq!(again.skipped.len(), 3);
    // A job with one replica still takes no second attempt while it runs, whatever the replica.
    let single = placed(&store, JobSpec::new("one", "t")).await;
    let applied = launch_replicas(&store, single.job, &[0, 1]).await;
    assert!(applied.attempts.is_empty());
    let kinds: Vec<String> = store.job_events(job).await.unwrap().into_iter().map(|e| e.message).collect();
    assert!(kinds.contains(&format!("attempt {job}.2 (replica 1) planned")), "{kinds:?}");
}

pub async fn a_lost_replica_leaves_the_job_running_and_is_placed_again(store: Arc<dyn Store>) {
    let (job, attempts) = running_replicas(&store, replicated("serve", 3, 3)).await;
    store
        .update_attempts(vec![AttemptUpdate {
            id: attempts[1],
            state: AttemptState::Lost,
            message: Some("cluster unreachable".into()),
        }])
        .await
        .unwrap();
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "the other replicas still run");
    assert_eq!(record.pending_reason, None);
    assert_eq!(replicas_to_place(&record), vec![1]);
    assert!(store.pending_jobs(10).await.unwrap().is_empty(), "a running job is not in the pending queue");
    let waits = PlanCommit { pending_reasons: vec![(job, "replica 1 waits: no room".into())], ..PlanCommit::default() };
    store.commit_plan(waits).await.unwrap();
    let record = store.get_job(job).await.unwrap();
    assert_eq!(
        record.pending_reason.as_deref(),
        Some("replica 1 waits: no room"),
        "a running job says why a replica waits"
    );
    assert_eq!(record.state, JobState::Running);
    let applied = launch_replicas(&store, job, &[1]).await;
    let replacement = AttemptId { job, attempt: 4 };
    assert_eq!(applied.attempts, vec![replacement]);
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "re-placing a replica keeps the job running");
    assert_eq!(record.pending_reason, None, "the replica no longer waits");
    assert!(waiting_replicas(&store, job).await.is_empty());
    update(&store, replacement, AttemptState::Running).await;
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running);
    let by_replica: Vec<(u32, AttemptState)> = record.attempts.iter().map(|a| (a.replica, a.state)).collect();
    assert_eq!(
        by_replica,
        vec![
            (0, AttemptState::Running),
            (1, AttemptState::Lost),
            (2, AttemptState::Running),
            (1, AttemptState::Running)
        ]
    );
}

pub async fn max_attempts_counts_per_replica(store: Arc<dyn Store>) {
    let (job, attempts) = running_replicas(&store, replicated("serve", 2, 2)).await;
    update(&store, attempts[0], AttemptState::Lost).await;
    let second = launch_replicas(&store, job, &[0]).await.attempts[0];
    update(&store, second, AttemptState::Failed).await;
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "replica 1 still runs");
    assert!(replicas_to_place(&record).is_empty(), "replica 0 used its two attempts");
    assert!(launch_replicas(&store, job, &[1]).await.attempts.is_empty(), "replica 1 is active");
    // Replica 1's first failure is its own: it may be placed again.
    update(&store, attempts[1], AttemptState::Failed).await;
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Failed, "nothing runs and replica 0 has no attempts left");
    assert!(replicas_to_place(&record).is_empty());
    assert!(store.active_attempts().await.unwrap().is_empty());
}

pub async fn cancel_ends_a_replicated_job_with_its_last_replica(store: Arc<dyn Store>) {
    let (job, attempts) = running_replicas(&store, replicated("serve", 2, 3)).await;
    update(&store, attempts[1], AttemptState::Lost).await;
    let record = store.cancel_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running);
    assert!(record.cancel_requested);
    assert!(waiting_replicas(&store, job).await.is_empty(), "a cancelled job places nothing");
    assert!(launch_replicas(&store, job, &[1]).await.attempts.is_empty(), "nor does its plan");
    let active = store.active_attempts().await.unwrap();
    assert_eq!(active.len(), 1);
    assert!(active.iter().all(|a| a.cancel_requested));
    update(&store, attempts[0], AttemptState::Cancelled).await;
    assert_eq!(state_of(&store, job).await, JobState::Cancelled);

    let (job, attempts) = running_replicas(&store, replicated("serve2", 3, 3)).await;
    store.cancel_job(job).await.unwrap();
    assert_eq!(store.active_attempts().await.unwrap().iter().filter(|a| a.cancel_requested).count(), 3);
    update(&store, attempts[0], AttemptState::Cancelled).await;
    update(&store, attempts[2], AttemptState::Lost).await;
    assert_eq!(state_of(&store, job).await, JobState::Running, "ended only when every replica ended");
    update(&store, attempts[1], AttemptState::Cancelled).await;
    assert_eq!(state_of(&store, job).await, JobState::Cancelled);
}

pub async fn a_replicated_job_requeues_when_every_replica_is_lost(store: Arc<dyn Store>) {
    let (job, attempts) = running_replicas(&store, replicated("serve", 2, 3)).await;
    update(&store, attempts[0], AttemptState::Lost).await;
    assert_eq!(state_of(&store, job).await, JobState::Running);
    store
        .update_attempts(vec![AttemptUpdate {
            id: attempts[1],
            state: AttemptState::Lost,
            message: Some("gone".into()),
        }])
        .await
        .unwrap();
    let record = store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Pending);
    assert_eq!(
        record.pending_reason.as_deref(),
        Some(format!("requeued after attempt {} was lost: gone", attempts[1]).as_str())
    );
    assert_eq!(replicas_to_place(&record), vec![0, 1]);
    assert_eq!(store.pending_jobs(10).await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), vec![job]);
    // Replica 1 alone is placed first; the job launches with it and replica 0 still waits.
    let applied = launch_replicas(&store, job, &[1]).await;
    assert_eq!(applied.attempts, vec![AttemptId { job, attempt: 3 }]);
    assert_eq!(state_of(&store, job).await, JobState::Launching);
    assert_eq!(waiting_replicas(&store, job).await, vec![0]);
}

pub async fn a_replicated_job_succeeds_when_every_replica_succeeded(store: Arc<dyn Store>) {
    let (job, attempts) = running_replicas(&store, replicated("serve", 2, 3)).await;
    update(&store, attempts[0], AttemptState::Succeeded).await;
    assert_eq!(state_of(&store, job).await, JobState::Running);
    assert!(waiting_replicas(&store, job).await.is_empty(), "a replica that succeeded is done");
    update(&store, attempts[1], AttemptState::Succeeded).await;
    assert_eq!(state_of(&store, job).await, JobState::Succeeded);
}

pub async fn lost_attempts_wait_for_their_engine_to_stop(store: Arc<dyn Store>) {
    assert!(store.attempts_to_stop_on_engine().await.unwrap().is_empty());
    let lost = placed(&store, JobSpec::new("a", "t")).await;
    update(&store, lost, AttemptState::Running).await;
    update(&store, lost, AttemptState::Lost).await;
    let failed = placed(&store, JobSpec::new("b", "t")).await;
    update(&store, failed, AttemptState::Failed).await;
    let (job, replicas) = running_replicas(&store, replicated("serve", 2, 3)).await;
    update(&store, replicas[1], AttemptState::Lost).await;
    let listed: Vec<(AttemptId, u32)> =
        store.attempts_to_stop_on_engine().await.unwrap().iter().map(|a| (a.id, a.replica)).collect();
    assert_eq!(listed, vec![(lost, 0), (replicas[1], 1)], "lost attempts only, oldest first");
    store.stopped_on_engine(vec![lost, failed, AttemptId { job, attempt: 99 }]).await.unwrap();
    let listed: Vec<AttemptId> = store.attempts_to_stop_on_engine().await.unwrap().iter().map(|a| a.id).collect();
    assert_eq!(listed, vec![replicas[1]], "until their engine confirms the stop");
    store.stopped_on_engine(vec![replicas[1]]).await.unwrap();
    assert!(store.attempts_to_stop_on_engine().await.unwrap().is_empty());
    assert_eq!(state_of(&store, lost.job).await, JobState::Pending, "the stop changes no state");
}

pub async fn list_jobs_finds_by_kind_name_and_cluster_newest_first(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for (name, kind) in [
        ("Pretrain-70B", cumulo_types::JobKind::Training),
        ("sweep-a", cumulo_types::JobKind::Batch),
        ("sweep-b", cumulo_types::JobKind::Batch),
        ("notebook", cumulo_types::JobKind::Sandbox),
    ] {
        let mut spec = JobSpec::new(name, "t");
        spec.kind = kind;
        ids.push(submit_one(&store, NewJob { spec, idempotency_key: None }).await);
    }
    store
        .commit_plan(PlanCommit {
            launches: vec![NewAttempt { job: ids[1], replica: 0, placement: serde_json::json!({"cluster": "east"}) }],
            ..PlanCommit::default()
        })
        .await
        .unwrap();
    let names = |page: crate::JobPage| page.jobs.into_iter().map(|j| j.spec.name).collect::<Vec<_>>();
    let find = |filter: JobFilter| {
        let store = store.clone();
        async move { names(store.list_jobs(filter).await.unwrap()) }
    };
    let newest = JobFilter { order: JobOrder::NewestFirst, ..JobFilter::default() };
    assert_eq!(find(newest.clone()).await, ["notebook", "sweep-b", "sweep-a", "Pretrain-70B"], "newest first");
    let page = store.list_jobs(JobFilter { limit: 2, ..newest.clone() }).await.unwrap();
    assert_eq!(page.next, Some(ids[2]), "a newest-first page ends at its oldest job");
    let rest = JobFilter { after: page.next, ..newest.clone() };
    assert_eq!(find(rest).await, ["sweep-a", "Pretrain-70B"], "the next page goes on below it");
    let batch = JobFilter { kind: Some(cumulo_types::JobKind::Batch), ..JobFilter::default() };
    assert_eq!(find(batch).await, ["sweep-a", "sweep-b"], "by kind");
    let named = JobFilter { name_contains: Some("70b".into()), ..JobFilter::default() };
    assert_eq!(find(named).await, ["Pretrain-70B"], "by name, ignoring case");
    let on_east = JobFilter { cluster: Some("east".into()), ..JobFilter::default() };
    assert_eq!(find(on_east).await, ["sweep-a"], "by the cluster of an attempt");
    let nowhere = JobFilter { cluster: Some("west".into()), ..JobFilter::default() };
    assert!(find(nowhere).await.is_empty(), "no job ran on west");
}

pub async fn tenants_are_created_once_and_listed(store: Arc<dyn Store>) {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let tenant = |name: &str, weight: u32| TenantRecord {
        name: name.to_string(),
        weight,
        gpus_milli: Some(8000),
        cpus_milli: None,
        created_at: at,
    };
    assert!(store.tenants().await.unwrap().is_empty(), "a new store has no stored tenants");
    store.create_tenant(tenant("vision", 2)).await.unwrap();
    store.create_tenant(tenant("audio", 1)).await.unwrap();
    let again = store.create_tenant(tenant("vision", 3)).await.unwrap_err();
    assert!(matches!(again, Error::Conflict(_)), "a second `vision` is a conflict: {again}");
    assert!(again.to_string().contains("tenant `vision` exists already"), "{again}");
    let bad = store.create_tenant(tenant("Vision Team", 1)).await.unwrap_err().to_string();
    assert_eq!(
        bad,
        "invalid tenant name `Vision Team`: expected 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter"
    );
    let zero = store.create_tenant(tenant("zero", 0)).await.unwrap_err().to_string();
    assert!(zero.contains("weight"), "{zero}");
    let stored = store.tenants().await.unwrap();
    assert_eq!(stored, vec![tenant("audio", 1), tenant("vision", 2)], "by name; the failed creates left nothing");
}

pub async fn budgets_are_set_replaced_and_listed(store: Arc<dyn Store>) {
    use crate::budget::{Budget, BudgetKind, BudgetRecord};
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let record = |tenant: &str, dollars: i64, kind: BudgetKind| BudgetRecord {
        tenant: tenant.to_string(),
        budget: Budget { monthly: cumulo_types::Money(dollars * 1_000_000), kind },
        updated_at: at,
    };
    assert!(store.budgets().await.unwrap().is_empty(), "a new store has no budgets");
    store.set_budget(record("research", 50_000, BudgetKind::Hard)).await.unwrap();
    store.set_budget(record("agents", 100, BudgetKind::Soft)).await.unwrap();
    store.set_budget(record("research", 60_000, BudgetKind::Hard)).await.unwrap();
    let negative = store.set_budget(record("agents", -1, BudgetKind::Hard)).await.unwrap_err().to_string();
    assert!(negative.starts_with("invalid monthly"), "the amount is named: {negative}");
    assert_eq!(
        store.budgets().await.unwrap(),
        vec![record("agents", 100, BudgetKind::Soft), record("research", 60_000, BudgetKind::Hard)],
        "by tenant; the second research budget replaced the first; the negative one left agents' as it was"
    );
}

pub async fn history_comes_back_in_time_order_and_can_be_forgotten(store: Arc<dyn Store>) {
    let t = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
    let point = |s: i64, metric: &str, label: &str, value: f64| HistoryPoint {
        at: t(s),
        metric: metric.to_string(),
        label: label.to_string(),
        value,
    };
    store.append_history(vec![point(30, "jobs", "pending", 4.0), point(30, "jobs", "running", 2.0)]).await.unwrap();
    store
        .append_history(vec![point(0, "jobs", "pending", 1.0), point(60, "cost_by_tenant", "research", 1.5e6)])
        .await
        .unwrap();
    let all = store.history_since(t(0)).await.unwrap();
    let at: Vec<i64> = all.iter().map(|p| p.at.timestamp() - 1_700_000_000).collect();
    assert_eq!(at, [0, 30, 30, 60], "oldest first");
    assert_eq!(all[3], point(60, "cost_by_tenant", "research", 1.5e6));
    assert_eq!(store.history_since(t(31)).await.unwrap().len(), 1, "since is inclusive and filters");
    assert_eq!(store.forget_history(t(30)).await.unwrap(), 1, "only the sample before 30 s goes");
    assert_eq!(store.history_since(t(0)).await.unwrap().len(), 3);
}
