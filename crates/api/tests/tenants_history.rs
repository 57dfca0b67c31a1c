//! The routes the dashboard and `cumulo tenant` use, in-process over a real SQLite store: tenants
//! an admin creates (stored, usable at once by jobs and tokens), the server's sampled history over
//! a time range, and job lists filtered by kind, name and cluster, newest first.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cumulo_api::auth::issue_token;
use cumulo_api::history::HistoryAnswer;
use cumulo_api::tenants::TenantView;
use cumulo_api::wire::{JobList, SubmitResponse};
use cumulo_api::{AppState, Config, ErrorBody, Fleet, Metrics, router};
use cumulo_store::{HistoryPoint, Role, Store};

struct Harness {
    app: Router,
    state: AppState,
    store: Arc<dyn Store>,
    admin: String,
    member: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        cumulo_store_sqlite::SqliteStore::open_path(dir.path().join("cumulo.db")).await.unwrap();
    let admin = issue_token(store.as_ref(), "default", Role::Admin, "admin").await.unwrap();
    let member = issue_token(store.as_ref(), "a", Role::Member, "alice").await.unwrap();
    let fleet = Fleet { tenants: vec!["a".into(), "default".into()], ..Fleet::default() };
    let state = AppState::new(store.clone(), Arc::new(fleet), Arc::new(Metrics::default()), Config::default());
    Harness { app: router(state.clone()), state, store, admin, member, _dir: dir }
}

struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.text))
    }
}

impl Harness {
    async fn call(&self, method: Method, uri: &str, token: &str, content_type: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.app.clone().oneshot_answer(request).await
    }
}

trait Oneshot {
    async fn oneshot_answer(self, request: Request<Body>) -> Answer;
}

impl Oneshot for Router {
    async fn oneshot_answer(self, request: Request<Body>) -> Answer {
        use tower::ServiceExt;
        let response = self.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, text: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

/// `(status, field, reason)` of an error answer.
fn refused(answer: &Answer) -> (StatusCode, Option<String>, String) {
    let body: ErrorBody = answer.json();
    (answer.status, body.field, body.reason)
}

#[tokio::test]
async fn an_admin_creates_a_tenant_that_jobs_and_tokens_may_name_at_once() {
    let h = harness().await;
    let job = "name: seg\ntenant: vision\nrun: echo hi\n";
    let before = h.call(Method::POST, "/v1/jobs", &h.admin, "application/yaml", job).await;
    let (status, field, reason) = refused(&before);
    assert_eq!((status, field.as_deref()), (StatusCode::BAD_REQUEST, Some("tenant")), "{reason}");
    assert!(reason.contains("unknown tenant `vision`") && reason.contains("cumulo tenant create"), "{reason}");

    let create = |token: &str, body: &str| {
        let (h, token, body) = (&h, token.to_string(), body.to_string());
        async move { h.call(Method::POST, "/v1/tenants", &token, "application/json", &body).await }
    };
    let by_member = create(&h.member, r#"{"name": "vision"}"#).await;
    assert_eq!(by_member.status, StatusCode::FORBIDDEN, "only admins create tenants: {}", by_member.text);
    let made = create(&h.admin, r#"{"name": "vision", "weight": 3, "gpus_milli": 16000}"#).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let made: TenantView = made.json();
    assert_eq!(
        (made.name.as_str(), made.source.as_str(), made.weight, made.gpus_milli),
        ("vision", "api", Some(3), Some(16000))
    );

    let after = h.call(Method::POST, "/v1/jobs", &h.admin, "application/yaml", job).await;
    assert_eq!(after.status, StatusCode::CREATED, "the new tenant takes jobs at once: {}", after.text);
    let token = h
        .call(Method::POST, "/v1/tokens", &h.admin, "application/json", r#"{"tenant": "vision", "role": "member"}"#)
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "and tokens: {}", token.text);

    let listed: Vec<TenantView> = h.call(Method::GET, "/v1/tenants", &h.member, "", "").await.json();
    let names: Vec<(&str, &str)> = listed.iter().map(|t| (t.name.as_str(), t.source.as_str())).collect();
    assert_eq!(names, [("a", "fleet file"), ("default", "fleet file"), ("vision", "api")]);

    // Bad requests name the field and store nothing.
    for (body, status, field, words) in [
        (r#"{"name": "vision"}"#, StatusCode::CONFLICT, None, "tenant `vision` exists already"),
        (r#"{"name": "a"}"#, StatusCode::CONFLICT, None, "tenant `a` exists already (in the fleet file)"),
        (
            r#"{"name": "Big Team"}"#,
            StatusCode::BAD_REQUEST,
            Some("name"),
            "invalid tenant name `Big Team`: expected 1 to 64 lowercase",
        ),
        (r#"{"name": "x", "weight": 0}"#, StatusCode::BAD_REQUEST, Some("weight"), "invalid weight `0`"),
        (r#"{"name": "x", "colour": "red"}"#, StatusCode::BAD_REQUEST, Some("body"), "unknown field `colour`"),
        // The schema's bounds: quotas fit the store's signed 64-bit integers, names have no blanks.
        (
            r#"{"name": "x", "gpus_milli": 9223372036854775808}"#,
            StatusCode::BAD_REQUEST,
            Some("gpus_milli"),
            "invalid quota `9223372036854775808`: expected at most 9223372036854775807",
        ),
        (
            r#"{"name": "x", "cpus_milli": 18446744073709551615}"#,
            StatusCode::BAD_REQUEST,
            Some("cpus_milli"),
            "expected at most 9223372036854775807 thousandths",
        ),
        (r#"{"name": " x "}"#, StatusCode::BAD_REQUEST, Some("name"), "invalid tenant name ` x `"),
        (
            r#"{"name": "x", "weight": 2.5}"#,
            StatusCode::BAD_REQUEST,
            Some("body"),
            "invalid value `2.5`: expected a non-negative whole number (u32)",
        ),
        (
            r#"{"name": "x", "weight": 4294967296.0}"#,
            StatusCode::BAD_REQUEST,
            Some("body"),
            "invalid value `4294967296.0`: expected a non-negative whole number (u32)",
        ),
    ] {
        let answer = create(&h.admin, body).await;
        let (got, got_field, reason) = refused(&answer);
        assert_eq!((got, got_field.as_deref()), (status, field), "{body}: {reason}");
        assert!(reason.contains(words), "{body}: {reason}");
    }
    assert_eq!(h.store.tenants().await.unwrap().len(), 1, "only `vision` was stored");
}

#[tokio::test]
async fn a_tenant_request_reads_whole_numbers_written_with_a_fraction_as_integers() {
    // JSON Schema's `integer` admits `3.0`, so the API does too (the OpenAPI document says integer).
    let h = harness().await;
    let body = r#"{"name": "vision", "weight": 3.0, "gpus_milli": 16000.0, "cpus_milli": 9223372036854775807, "gpus_milli": null}"#;
    let made = h.call(Method::POST, "/v1/tenants", &h.admin, "application/json", body).await;
    // serde_json refuses a repeated field: the request names it.
    assert_eq!(made.status, StatusCode::BAD_REQUEST, "{}", made.text);
    assert!(refused(&made).2.contains("duplicate field `gpus_milli`"), "{}", made.text);
    let body = r#"{"name": "vision", "weight": 3.0, "gpus_milli": 16000.0, "cpus_milli": 9223372036854775807}"#;
    let made = h.call(Method::POST, "/v1/tenants", &h.admin, "application/json", body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let made: TenantView = made.json();
    assert_eq!((made.weight, made.gpus_milli, made.cpus_milli), (Some(3), Some(16000), Some(i64::MAX as u64)));
}

#[tokio::test]
async fn a_budget_with_a_null_kind_is_hard_as_the_openapi_document_says() {
    let h = harness().await;
    let set = |body: &'static str| h.call(Method::PUT, "/v1/tenants/a/budget", &h.admin, "application/json", body);
    let answer = set(r#"{"monthly": 50.0, "kind": null}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let tenant: TenantView = answer.json();
    assert_eq!(tenant.budget.map(|b| (b.monthly, b.kind)), Some(("$50.00".to_string(), "hard".to_string())));
    let answer = set(r#"{"monthly": 50, "kind": 1}"#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "a kind that is not text: {}", answer.text);
}

#[tokio::test]
async fn history_comes_back_over_a_range_with_cost_for_the_callers_tenant_only() {
    let h = harness().await;
    let now = chrono::Utc::now();
    let point = |ago_s: i64, metric: &str, label: &str, value: f64| HistoryPoint {
        at: now - chrono::Duration::seconds(ago_s),
        metric: metric.to_string(),
        label: label.to_string(),
        value,
    };
    h.store
        .append_history(vec![
            point(7200, "jobs", "pending", 9.0),
            point(600, "jobs", "pending", 3.0),
            point(300, "jobs", "pending", 4.0),
            point(300, "cost_by_tenant", "a", 1.5),
            point(300, "cost_by_tenant", "b", 2.5),
            point(300, "cost_by_provider", "aws", 4.0),
        ])
        .await
        .unwrap();
    // The sampler's own points: queue depth by state, even with no jobs and no GPUs.
    let sampled = cumulo_api::history::sample(&h.state, now).await.unwrap();
    assert!(sampled.iter().any(|p| p.metric == "jobs" && p.label == "pending"), "{sampled:?}");

    let hour: HistoryAnswer = h.call(Method::GET, "/v1/history?range=1h", &h.admin, "", "").await.json();
    let pending = hour.series.iter().find(|s| s.metric == "jobs" && s.label == "pending").unwrap();
    assert_eq!(
        pending.points.iter().map(|p| p.1).collect::<Vec<_>>(),
        [3.0, 4.0],
        "the 2-hour-old sample is outside 1h"
    );
    assert_eq!(hour.step_s, 15, "an hour in at most 240 steps");
    let day: HistoryAnswer = h.call(Method::GET, "/v1/history?range=24h", &h.admin, "", "").await.json();
    let pending = day.series.iter().find(|s| s.metric == "jobs" && s.label == "pending").unwrap();
    assert_eq!(pending.points.len(), 3, "a day holds all three");

    let member: HistoryAnswer = h.call(Method::GET, "/v1/history", &h.member, "", "").await.json();
    let costs: Vec<(&str, &str)> = member
        .series
        .iter()
        .filter(|s| s.metric.starts_with("cost"))
        .map(|s| (s.metric.as_str(), s.label.as_str()))
        .collect();
    assert_eq!(costs, [("cost_by_tenant", "a")], "a member sees its own tenant's cost, no other");

    let bad = h.call(Method::GET, "/v1/history?range=3w", &h.admin, "", "").await;
    let (status, field, reason) = refused(&bad);
    assert_eq!((status, field.as_deref()), (StatusCode::BAD_REQUEST, Some("range")), "{reason}");
    assert!(reason.contains("invalid range `3w`"), "{reason}");
}

#[tokio::test]
async fn jobs_list_newest_first_and_by_kind_and_name() {
    let h = harness().await;
    let mut ids = Vec::new();
    for job in ["name: pretrain\nkind: training\n", "name: sweep-1\n", "name: sweep-2\n"] {
        let answer = h.call(Method::POST, "/v1/jobs", &h.member, "application/yaml", job).await;
        ids.push(answer.json::<SubmitResponse>().id);
    }
    let names = |list: JobList| list.jobs.into_iter().map(|j| j.spec.name).collect::<Vec<_>>();
    let get = |query: &str| {
        let (h, uri) = (&h, format!("/v1/jobs?{query}"));
        async move { h.call(Method::GET, &uri, &h.member, "", "").await }
    };
    assert_eq!(names(get("order=newest").await.json()), ["sweep-2", "sweep-1", "pretrain"]);
    let first: JobList = get("order=newest&limit=2").await.json();
    assert_eq!(first.next, Some(ids[1]), "the next page starts below the last id shown");
    assert_eq!(names(get(&format!("order=newest&after={}", ids[1])).await.json()), ["pretrain"]);
    assert_eq!(names(get("kind=training").await.json()), ["pretrain"]);
    assert_eq!(names(get("q=SWEEP").await.json()), ["sweep-1", "sweep-2"]);
    assert!(names(get("cluster=nowhere").await.json()).is_empty());
    for (query, field, words) in [
        ("kind=gaming", "kind", "unknown kind `gaming`: expected training, inference, batch or sandbox"),
        ("order=random", "order", "unknown order `random`: expected oldest or newest"),
    ] {
        let (status, got, reason) = refused(&get(query).await);
        assert_eq!((status, got.as_deref()), (StatusCode::BAD_REQUEST, Some(field)), "{query}: {reason}");
        assert!(reason.contains(words), "{query}: {reason}");
    }
}
