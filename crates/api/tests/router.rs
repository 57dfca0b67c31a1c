//! The router in-process (`tower::ServiceExt::oneshot`) over a real SQLite store in a temporary
//! directory: auth, roles, tenant isolation, malformed requests, idempotency, the OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cumulo_api::auth::issue_token;
use cumulo_api::wire::{BatchResponse, JobDetail, JobList, SubmitResponse, TokenResponse};
use cumulo_api::{AppState, Cluster, Config, ErrorBody, Fleet, Metrics, ROUTES, router};
use cumulo_driver_sim::{SimClock, SimConfig, SimDriver};
use cumulo_store::{Role, Store};
use cumulo_types::{CapacityKind, GpuModel, JobState};
use tower::ServiceExt;

struct Harness {
    app: Router,
    store: Arc<dyn Store>,
    admin: String,
    member_a: String,
    member_b: String,
    viewer_a: String,
    _dir: tempfile::TempDir,
}

fn fleet() -> Fleet {
    let config = SimConfig::uniform("sim-aws", 2, Some(GpuModel::H100), 8, 192, 2048 * 1024);
    let driver = SimDriver::open(config, SimClock::manual(chrono::Utc::now())).unwrap();
    Fleet {
        clusters: vec![Cluster {
            name: "sim-aws".into(),
            provider: "aws".into(),
            region: "us-east-1".into(),
            capacity: CapacityKind::OnDemand,
            contract: None,
            node_type: None,
            driver: Arc::new(driver),
        }],
        tenants: vec!["a".into(), "b".into(), "default".into()],
        contracts: serde_json::json!([{"name": "aws-2026", "provider": "aws"}]),
        portfolio: None,
        budgets: Default::default(),
    }
}

async fn harness_with(config: Config) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        cumulo_store_sqlite::SqliteStore::open_path(dir.path().join("cumulo.db")).await.unwrap();
    let admin = issue_token(store.as_ref(), "default", Role::Admin, "admin").await.unwrap();
    let member_a = issue_token(store.as_ref(), "a", Role::Member, "alice").await.unwrap();
    let member_b = issue_token(store.as_ref(), "b", Role::Member, "bob").await.unwrap();
    let viewer_a = issue_token(store.as_ref(), "a", Role::Viewer, "vera").await.unwrap();
    let mut state = AppState::new(store.clone(), Arc::new(fleet()), Arc::new(Metrics::default()), config);
    state.uploads_dir = Some(dir.path().join("uploads"));
    Harness { app: router(state), store, admin, member_a, member_b, viewer_a, _dir: dir }
}

async fn harness() -> Harness {
    harness_with(Config::default()).await
}

struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("answer is not the expected JSON ({e}): {}", self.text))
    }

    fn error(&self) -> ErrorBody {
        self.json()
    }
}

impl Harness {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, Some(token), &[], Body::empty()).await
    }

    async fn post(&self, uri: &str, token: &str, content_type: &str, body: &str) -> Answer {
        self.call(Method::POST, uri, Some(token), &[("content-type", content_type)], Body::from(body.to_string())).await
    }

    async fn submit(&self, token: &str, yaml: &str) -> Answer {
        self.post("/v1/jobs", token, "application/yaml", yaml).await
    }

    async fn job_count(&self) -> u64 {
        self.store.job_counts_by_state().await.unwrap().values().sum()
    }
}

const JOB: &str = "name: train\nresources:\n  accelerators: H100:8\nrun: echo hi\n";

#[tokio::test]
async fn healthz_needs_no_token_and_everything_else_answers_401_without_one() {
    let h = harness().await;
    let ok = h.call(Method::GET, "/healthz", None, &[], Body::empty()).await;
    assert_eq!(ok.status, StatusCode::OK);
    for (method, path, _) in ROUTES.iter().filter(|(_, p, _)| *p != "/healthz") {
        let uri = path.replace("{id}", "1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let missing = h.call(method.clone(), &uri, None, &[], Body::empty()).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{method} {uri} without a token");
        assert!(missing.error().reason.contains("missing Authorization header"), "{}", missing.text);
        let bad = h.call(method.clone(), &uri, Some("cum_not-a-real-token"), &[], Body::empty()).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{method} {uri} with a bad token");
        assert_eq!(bad.error().reason, "invalid token: no such API token");
        let basic = h.call(method, &uri, None, &[("authorization", "Basic YTpi")], Body::empty()).await;
        assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
        assert!(basic.error().reason.contains("expected `Bearer <token>`"));
    }
    assert_eq!(h.job_count().await, 0);
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_every_route_exists() {
    let h = harness().await;
    let doc: serde_json::Value = h.get("/v1/openapi.json", &h.admin).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path, _) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the OpenAPI document");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
        // The route exists in the router: with a token it answers anything but 404 for the route or 405.
        let uri = path.replace("{id}", "999");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = h.call(m, &uri, Some(&h.admin), &[], Body::empty()).await;
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if answer.status == StatusCode::NOT_FOUND {
            assert!(!answer.text.contains("no such route"), "{method} {path} is not routed");
        }
    }
    let described = doc["paths"].as_object().unwrap().values().map(|v| v.as_object().unwrap().len()).sum::<usize>();
    assert_eq!(described, ROUTES.len(), "the document describes routes that ROUTES does not list");
}

#[tokio::test]
async fn submit_get_and_list_a_yaml_and_a_json_job() {
    let h = harness().await;
    let yaml = h.submit(&h.member_a, JOB).await;
    assert_eq!(yaml.status, StatusCode::CREATED, "{}", yaml.text);
    let first: SubmitResponse = yaml.json();
    assert!(first.created);
    let json_body =
        r#"{"name": "serve", "kind": "inference", "resources": {"accelerators": "H100:1"}, "run": "serve"}"#;
    let json = h.post("/v1/jobs", &h.member_a, "application/json", json_body).await;
    assert_eq!(json.status, StatusCode::CREATED, "{}", json.text);
    let second: SubmitResponse = json.json();
    assert_ne!(first.id, second.id);

    let detail: JobDetail = h.get(&format!("/v1/jobs/{}", first.id), &h.member_a).await.json();
    assert_eq!(detail.job.spec.name, "train");
    assert_eq!(detail.job.spec.tenant, "a", "a job file without a tenant belongs to the caller's tenant");
    assert_eq!(detail.job.state, JobState::Pending);
    let list: JobList = h.get("/v1/jobs", &h.member_a).await.json();
    assert_eq!(list.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![first.id, second.id]);
    assert_eq!(list.next, None);
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer_in_json() {
    // JSON Schema's `integer` admits 2.0; the job file parser sees the integer 2.
    let h = harness().await;
    let body = r#"{"name": "gang", "num_nodes": 2.0, "run": "echo hi"}"#;
    let one = h.post("/v1/jobs", &h.member_a, "application/json", body).await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.text);
    let detail: JobDetail = h.get(&format!("/v1/jobs/{}", one.json::<SubmitResponse>().id), &h.member_a).await.json();
    assert_eq!(detail.job.spec.num_nodes, 2, "2.0 nodes are 2");
    let batch = format!(r#"{{"jobs": [{body}]}}"#);
    let two = h.post("/v1/jobs:batch", &h.member_a, "application/json", &batch).await;
    assert_eq!(two.status, StatusCode::CREATED, "{}", two.text);
    let fraction = h.post("/v1/jobs", &h.member_a, "application/json", r#"{"name": "g", "num_nodes": 2.5}"#).await;
    assert_eq!(fraction.status, StatusCode::BAD_REQUEST, "a real fraction is still refused: {}", fraction.text);
    assert!(fraction.text.contains("num_nodes"), "{}", fraction.text);
}

#[tokio::test]
async fn a_retried_submit_with_the_same_idempotency_key_creates_one_job() {
    let h = harness().await;
    let headers = [("content-type", "application/yaml"), ("idempotency-key", "retry-1")];
    let first = h.call(Method::POST, "/v1/jobs", Some(&h.member_a), &headers, Body::from(JOB)).await;
    let again = h.call(Method::POST, "/v1/jobs", Some(&h.member_a), &headers, Body::from(JOB)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::OK);
    let (first, again): (SubmitResponse, SubmitResponse) = (first.json(), again.json());
    assert_eq!(first.id, again.id);
    assert!(first.created && !again.created);
    assert_eq!(h.job_count().await, 1);
    // The same key from another tenant is another job.
    let other = h.call(Method::POST, "/v1/jobs", Some(&h.member_b), &headers, Body::from(JOB)).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_eq!(h.job_count().await, 2);
    let bad_key = "x".repeat(300);
    let bad = h
        .call(Method::POST, "/v1/jobs", Some(&h.member_a), &[("idempotency-key", bad_key.as_str())], Body::from(JOB))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error().field.as_deref(), Some("Idempotency-Key"));
    assert_eq!(h.job_count().await, 2);
}

#[tokio::test]
async fn batch_submit_is_all_or_nothing_and_idempotent() {
    let h = harness().await;
    let body = serde_json::json!({"jobs": [
        {"name": "j0", "resources": {"cpus": 2}, "run": "true"},
        {"name": "j1", "resources": {"cpus": 2}, "run": "true"},
        "name: j2\nrun: 'true'\n",
    ]})
    .to_string();
    let headers = [("content-type", "application/json"), ("idempotency-key", "batch-1")];
    let first = h.call(Method::POST, "/v1/jobs:batch", Some(&h.member_a), &headers, Body::from(body.clone())).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let first: BatchResponse = first.json();
    assert_eq!(first.jobs.len(), 3);
    let again: BatchResponse =
        h.call(Method::POST, "/v1/jobs:batch", Some(&h.member_a), &headers, Body::from(body)).await.json();
    assert_eq!(
        first.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        again.jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    );
    assert!(again.jobs.iter().all(|j| !j.created));
    assert_eq!(h.job_count().await, 3);

    let yaml = h.post("/v1/jobs:batch", &h.member_a, "application/yaml", "name: y0\nrun: a\n---\nname: y1\n").await;
    assert_eq!(yaml.status, StatusCode::CREATED, "{}", yaml.text);
    assert_eq!(yaml.json::<BatchResponse>().jobs.len(), 2, "two jobs side by side");
    assert_eq!(h.job_count().await, 5);
    // A first document holding only `name` heads a SkyPilot pipeline: it is no job.
    let chain =
        h.post("/v1/jobs:batch", &h.member_a, "application/yaml", "name: c\n---\nname: c1\n---\nname: c2\n").await;
    assert_eq!(chain.status, StatusCode::CREATED, "{}", chain.text);
    let steps = chain.json::<BatchResponse>().jobs;
    assert_eq!(steps.len(), 2, "two steps; the header is no job");
    assert_eq!(h.job_count().await, 7);

    // One bad job refuses the whole batch, naming the job and the field.
    let bad = serde_json::json!({"jobs": [{"name": "ok"}, {"name": "bad", "num_nodes": "many"}]}).to_string();
    let answer = h.post("/v1/jobs:batch", &h.member_a, "application/json", &bad).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.error().field.as_deref(), Some("jobs[1].num_nodes"));
    assert_eq!(h.job_count().await, 7);
    let empty = h.post("/v1/jobs:batch", &h.member_a, "application/json", r#"{"jobs": []}"#).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.error().reason.contains("no jobs"));
}

/// `check(body, status, field, words)`: a malformed submit gets `status` naming `field` with a
/// reason containing `words`, and stores nothing.
async fn check_refused(h: &Harness, content_type: &str, body: &str, status: StatusCode, field: &str, words: &str) {
    let answer = h.post("/v1/jobs", &h.member_a, content_type, body).await;
    assert_eq!(answer.status, status, "{body:.80}: {}", answer.text);
    let error = answer.error();
    assert_eq!(error.field.as_deref(), Some(field), "{body:.80}: {}", answer.text);
    assert!(error.reason.contains(words), "`{}` does not contain `{words}`", error.reason);
    assert_eq!(h.job_count().await, 0, "a refused submit stored something");
}

#[tokio::test]
async fn malformed_submits_get_400_naming_the_problem_and_change_nothing() {
    let h = harness().await;
    check_refused(&h, "application/yaml", "name: [unclosed\n", StatusCode::BAD_REQUEST, "body", "request body").await;
    check_refused(&h, "application/yaml", "name: x\nnum_nodes: many\n", StatusCode::BAD_REQUEST, "num_nodes", "many")
        .await;
    check_refused(
        &h,
        "application/json",
        r#"{"name": "x", "resources": {"accelerators": "H100:1.5"}}"#,
        StatusCode::BAD_REQUEST,
        "resources.accelerators",
        "invalid GPU count `1.5`",
    )
    .await;
    check_refused(
        &h,
        "application/yaml",
        "name: x\ntenant: nobody\n",
        StatusCode::BAD_REQUEST,
        "tenant",
        "unknown tenant `nobody`",
    )
    .await;
    check_refused(&h, "application/yaml", "", StatusCode::BAD_REQUEST, "body", "empty job file").await;
}

/// Two spellings of one GPU model in `speedups` are each valid but say two speeds: the schema
/// cannot state that rule, so it is a 422 (the conflict), alone or in a batch, and stores nothing.
#[tokio::test]
async fn two_spellings_of_one_model_in_speedups_get_422() {
    let h = harness().await;
    let job = "name: x\nresources: {accelerators: V100:1}\nspeedups: {V100: 3.0, ' v-100': 2.0}\n";
    check_refused(
        &h,
        "application/yaml",
        job,
        StatusCode::UNPROCESSABLE_ENTITY,
        "speedups.v-100",
        "duplicate GPU model",
    )
    .await;
    let batch = r#"{"jobs": [{"name": "x", "speedups": {"K80": 1.0, "k80": 2.0}}]}"#;
    let answer = h.post("/v1/jobs:batch", &h.member_a, "application/json", batch).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "a batch job with the conflict: {}", answer.text);
    assert_eq!(answer.error().field.as_deref(), Some("jobs[0].speedups.k80"), "{}", answer.text);
    assert_eq!(h.job_count().await, 0, "a refused batch stored something");
    let wrong = "name: x\nspeedups: {V100: 3.0, v100: -1}\n";
    check_refused(&h, "application/yaml", wrong, StatusCode::BAD_REQUEST, "speedups.v100", "invalid value").await;
}

#[tokio::test]
async fn a_100_mb_body_gets_413_with_a_message() {
    let h = harness().await;
    let big = vec![b'a'; 100 * 1024 * 1024];
    let with_length = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&h.member_a),
            &[("content-length", &big.len().to_string())],
            Body::from(big.clone()),
        )
        .await;
    assert_eq!(with_length.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(with_length.error().reason.contains("over the limit of 16777216 bytes"), "{}", with_length.text);
    // Without a length header (chunked), the limit holds while reading.
    let stream = futures_util::stream::iter(
        big.chunks(1 << 20).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let chunked = h.call(Method::POST, "/v1/jobs:batch", Some(&h.member_a), &[], Body::from_stream(stream)).await;
    assert_eq!(chunked.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(chunked.error().error, "payload_too_large");
    assert_eq!(h.job_count().await, 0);
}

#[tokio::test]
async fn a_member_can_neither_see_nor_cancel_another_tenants_jobs() {
    let h = harness().await;
    let job: SubmitResponse = h.submit(&h.member_a, JOB).await.json();
    let uri = format!("/v1/jobs/{}", job.id);

    let peek = h.get(&uri, &h.member_b).await;
    assert_eq!(peek.status, StatusCode::NOT_FOUND);
    assert_eq!(peek.error().reason, format!("job `{}` not found", job.id));
    let cancel = h.post(&format!("{uri}/cancel"), &h.member_b, "application/json", "").await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let logs = h.get(&format!("{uri}/logs"), &h.member_b).await;
    assert_eq!(logs.status, StatusCode::NOT_FOUND);
    // Empty `follow` and `attempt` are their defaults, as the OpenAPI document says: the owner
    // gets past them to "no attempt yet"; another word for follow is refused naming it.
    let defaults = h.get(&format!("{uri}/logs?follow=&attempt="), &h.member_a).await;
    assert_eq!(defaults.status, StatusCode::NOT_FOUND, "{}", defaults.text);
    let blanks = h.get(&format!("{uri}/logs?follow=%C2%A0false%E2%80%80"), &h.member_a).await;
    assert_eq!(blanks.status, StatusCode::NOT_FOUND, "blanks around a flag are trimmed: {}", blanks.text);
    let yes = h.get(&format!("{uri}/logs?follow=yes"), &h.member_a).await;
    assert_eq!((yes.status, yes.error().field.as_deref()), (StatusCode::BAD_REQUEST, Some("follow")));
    let list: JobList = h.get("/v1/jobs", &h.member_b).await.json();
    assert!(list.jobs.is_empty());
    let cross = h.get("/v1/jobs?tenant=a", &h.member_b).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(cross.error().reason.contains("cannot list jobs of tenant `a`"));
    let foreign = h.submit(&h.member_b, "name: x\ntenant: a\n").await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(foreign.error().reason.contains("cannot submit jobs for tenant `a`"));
    assert_eq!(h.store.get_job(job.id).await.unwrap().state, JobState::Pending, "b's attempts changed a's job");
    assert_eq!(h.job_count().await, 1);

    // Its own member cancels it; the admin sees every tenant.
    let cancelled = h.post(&format!("{uri}/cancel"), &h.member_a, "application/json", "").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(h.store.get_job(job.id).await.unwrap().state, JobState::Cancelled);
    let all: JobList = h.get("/v1/jobs", &h.admin).await.json();
    assert_eq!(all.jobs.len(), 1);
}

#[tokio::test]
async fn a_viewer_only_reads() {
    let h = harness().await;
    let job: SubmitResponse = h.submit(&h.member_a, JOB).await.json();
    assert_eq!(h.get(&format!("/v1/jobs/{}", job.id), &h.viewer_a).await.status, StatusCode::OK);
    assert_eq!(h.get("/v1/jobs", &h.viewer_a).await.json::<JobList>().jobs.len(), 1);
    let submit = h.submit(&h.viewer_a, JOB).await;
    assert_eq!(submit.status, StatusCode::FORBIDDEN);
    assert!(submit.error().reason.contains("role viewer"));
    let cancel = h.post(&format!("/v1/jobs/{}/cancel", job.id), &h.viewer_a, "application/json", "").await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);
    let token = h.post("/v1/tokens", &h.viewer_a, "application/json", r#"{"tenant": "a", "role": "admin"}"#).await;
    assert_eq!(token.status, StatusCode::FORBIDDEN);
    assert_eq!(h.store.get_job(job.id).await.unwrap().state, JobState::Pending);
    assert_eq!(h.job_count().await, 1);
}

#[tokio::test]
async fn admins_create_tokens_that_work_and_others_cannot() {
    let h = harness().await;
    let created = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": "b", "role": "member"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token: TokenResponse = created.json();
    assert_eq!((token.tenant.as_str(), token.role), ("b", Role::Member));
    let who: serde_json::Value = h.get("/v1/whoami", &token.token).await.json();
    assert_eq!(who["tenant"], "b");
    assert_eq!(h.submit(&token.token, JOB).await.status, StatusCode::CREATED);

    let by_member = h.post("/v1/tokens", &h.member_a, "application/json", r#"{"tenant": "a", "role": "admin"}"#).await;
    assert_eq!(by_member.status, StatusCode::FORBIDDEN);
    let bad_role = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": "a", "role": "root"}"#).await;
    assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_role.error().field.as_deref(), Some("role"));
    let bad_tenant = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": "zz", "role": "member"}"#).await;
    assert_eq!(bad_tenant.error().field.as_deref(), Some("tenant"));
    // A tenant is named exactly (the OpenAPI document lists them); a role ignores case and blanks.
    let blank = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": " b", "role": "member"}"#).await;
    assert_eq!(
        (blank.status, blank.error().field.as_deref()),
        (StatusCode::BAD_REQUEST, Some("tenant")),
        "{}",
        blank.text
    );
    let role = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": "b", "role": " Viewer "}"#).await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let wrong_type = h.post("/v1/tokens", &h.admin, "application/json", r#"{"tenant": 5, "role": "member"}"#).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert!(wrong_type.error().reason.contains("invalid type"), "{}", wrong_type.text);
}

#[tokio::test]
async fn lists_filter_by_state_and_paginate() {
    let h = harness().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(h.submit(&h.member_a, &format!("name: j{i}\n")).await.json::<SubmitResponse>().id);
    }
    h.post(&format!("/v1/jobs/{}/cancel", ids[0]), &h.member_a, "application/json", "").await;
    let page1: JobList = h.get("/v1/jobs?limit=2", &h.member_a).await.json();
    assert_eq!(page1.jobs.len(), 2);
    let next = page1.next.expect("a next page");
    let page2: JobList = h.get(&format!("/v1/jobs?limit=2&after={next}"), &h.member_a).await.json();
    assert_eq!(page2.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids[2..4].to_vec());
    let pending: JobList = h.get("/v1/jobs?state=pending", &h.member_a).await.json();
    assert_eq!(pending.jobs.len(), 4);
    let cancelled: JobList = h.get("/v1/jobs?state=cancelled&tenant=a", &h.admin).await.json();
    assert_eq!(cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[0]]);
    // Empty filters are no filter, as the OpenAPI document's enums say (`""` is among them).
    let all: JobList = h.get("/v1/jobs?state=&kind=&order=&limit=", &h.member_a).await.json();
    assert_eq!(all.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids, "every job, oldest first");
    for (query, field) in [
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("after=-1", "after"),
        ("kind=job", "kind"),
        ("order=up", "order"),
    ] {
        let answer = h.get(&format!("/v1/jobs?{query}"), &h.member_a).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.error().field.as_deref(), Some(field), "{query}");
    }
    let bad_id = h.get("/v1/jobs/abc", &h.member_a).await;
    assert_eq!(bad_id.error().field.as_deref(), Some("id"));
}

#[tokio::test]
async fn metrics_and_fleet_views() {
    let h = harness().await;
    h.submit(&h.member_a, JOB).await;
    h.submit(&h.member_a, JOB).await;
    let metrics = h.get("/metrics", &h.viewer_a).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text.contains("cumulo_jobs{state=\"pending\"} 2\n"), "{}", metrics.text);
    assert!(metrics.text.contains("cumulo_gpus{provider=\"aws\",gpu=\"H100\"} 16\n"));
    assert!(metrics.text.contains("cumulo_gpu_utilisation{provider=\"aws\",gpu=\"H100\"} 0\n"));
    let clusters: serde_json::Value = h.get("/v1/clusters", &h.viewer_a).await.json();
    assert_eq!(clusters[0]["name"], "sim-aws");
    assert_eq!(clusters[0]["gpus"], 16);
    assert_eq!(clusters[0]["driver"], "simulated");
    assert_eq!(clusters[0]["simulated"], true);
    let nodes: serde_json::Value = h.get("/v1/nodes?cluster=sim-aws", &h.viewer_a).await.json();
    assert_eq!(nodes.as_array().unwrap().len(), 2);
    let unknown = h.get("/v1/nodes?cluster=gcp/x", &h.viewer_a).await;
    assert_eq!(unknown.error().field.as_deref(), Some("cluster"));
    let contracts: serde_json::Value = h.get("/v1/contracts", &h.viewer_a).await.json();
    assert_eq!(contracts[0]["name"], "aws-2026");
}

#[tokio::test]
async fn a_job_with_replicas_shows_which_replica_each_attempt_runs() {
    let h = harness().await;
    let yaml =
        "name: serve\nspread: providers\nservice:\n  replicas: 2\nresources:\n  accelerators: H100:8\nrun: serve\n";
    let answer = h.submit(&h.member_a, yaml).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let job: SubmitResponse = answer.json();
    let launches = (0..2)
        .map(|replica| cumulo_store::NewAttempt { job: job.id, replica, placement: serde_json::json!({}) })
        .collect();
    let plan = cumulo_store::PlanCommit { launches, ..cumulo_store::PlanCommit::default() };
    assert_eq!(h.store.commit_plan(plan).await.unwrap().attempts.len(), 2);
    let detail: serde_json::Value = h.get(&format!("/v1/jobs/{}", job.id), &h.member_a).await.json();
    let replicas: Vec<&serde_json::Value> =
        detail["attempts"].as_array().unwrap().iter().map(|a| &a["replica"]).collect();
    assert_eq!(replicas, [&serde_json::json!(0), &serde_json::json!(1)], "{detail}");
}

#[tokio::test]
async fn an_upload_is_kept_once_named_by_a_submit_and_refused_past_its_limit() {
    let h = harness_with(Config { upload_limit_bytes: 4096, ..Config::default() }).await;
    let post = |body: Vec<u8>| h.call(Method::POST, "/v1/uploads", Some(&h.member_a), &[], Body::from(body));
    let big = post(vec![0u8; 8192]).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text);
    assert!(big.error().reason.contains("over the limit of 4096 bytes"), "{}", big.text);
    let odd = post(vec![0u8; 1000]).await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
    assert_eq!(odd.error().field.as_deref(), Some("upload"));
    let first = post(vec![0u8; 1024]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let id = first.json::<serde_json::Value>()["upload"].as_str().unwrap().to_string();
    let again = post(vec![0u8; 1024]).await.json::<serde_json::Value>();
    assert_eq!(again["upload"], id.as_str(), "the same bytes are one upload");

    let job = "name: m\nfile_mounts: {data: ./data}\nrun: ls data\n";
    let submit = async |upload: &str| {
        let headers = [("content-type", "application/yaml"), ("cumulo-upload", upload)];
        h.call(Method::POST, "/v1/jobs", Some(&h.member_a), &headers, Body::from(job.to_string())).await
    };
    let unknown = submit(&format!("sha256:{}", "1".repeat(64))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.error().field.as_deref(), Some("Cumulo-Upload"));
    assert!(unknown.error().reason.contains("no such upload"), "{}", unknown.text);
    let created = submit(&id).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let job_id = created.json::<serde_json::Value>()["id"].as_u64().unwrap();
    let stored = h.store.get_job(cumulo_types::JobId(job_id)).await.unwrap();
    assert_eq!(stored.spec.upload.as_deref(), Some(id.as_str()));
}

/// Characters JSON carries raw that a YAML reader refuses raw (DEL, C1 controls, U+FFFE) or reads
/// as a break (NEL, U+2028) or a byte order mark (U+FEFF): the OpenAPI document allows them in
/// texts, so a JSON job file holding them is stored with them, unchanged.
#[tokio::test]
async fn a_json_job_file_keeps_characters_yaml_cannot_write_raw() {
    let h = harness().await;
    let odd = "a\u{7f}b\u{85}c\u{89}d\u{9f}e\u{2028}f\u{2029}g\u{feff}h\u{fffe}i\u{ffff}j";
    let job = serde_json::json!({"name": format!("n{odd}"), "run": format!("echo {odd}"), "envs": {"ODD": odd}});
    let answer = h.post("/v1/jobs", &h.admin, "application/json", &job.to_string()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let id = answer.json::<SubmitResponse>().id;
    let stored: JobDetail = h.get(&format!("/v1/jobs/{}", id.0), &h.admin).await.json();
    assert_eq!(stored.job.spec.name, format!("n{odd}"));
    assert_eq!(stored.job.spec.run.as_deref(), Some(format!("echo {odd}").as_str()));
    assert_eq!(stored.job.spec.envs.get("ODD").map(String::as_str), Some(odd));

    // The same in a batch, where each job is re-encoded on its own.
    let batch = serde_json::json!({"jobs": [job, {"name": odd}]});
    let answer = h.post("/v1/jobs:batch", &h.admin, "application/json", &batch.to_string()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let ids: Vec<u64> = answer.json::<BatchResponse>().jobs.iter().map(|s| s.id.0).collect();
    let second: JobDetail = h.get(&format!("/v1/jobs/{}", ids[1]), &h.admin).await.json();
    assert_eq!(second.job.spec.name, odd);
}

/// The OpenAPI document's job file: null is an absent field, a whole number may be written with
/// a fraction (as JSON Schema's `integer` admits), numbers of vCPUs and GB are read as numbers;
/// the same in YAML, where the fuzzer writes `2.0` as a float.
#[tokio::test]
async fn a_job_file_takes_nulls_and_whole_numbers_with_a_fraction_as_its_schema_says() {
    let h = harness().await;
    let json = r#"{"name": null, "kind": null, "tenant": null, "priority": 3.0, "num_nodes": 2.0, "topology": null,
        "resources": {"cpus": 0.001, "memory": 1e-9, "use_spot": null}, "run": null, "setup": null,
        "envs": {"A": null, "B": 1.5, "C": true}, "x-anchor": [1, {"y": null}]}"#;
    let answer = h.post("/v1/jobs", &h.admin, "application/json", json).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let stored: JobDetail = h.get(&format!("/v1/jobs/{}", answer.json::<SubmitResponse>().id.0), &h.admin).await.json();
    let spec = &stored.job.spec;
    assert_eq!((spec.num_nodes, spec.priority.0, spec.tenant.as_str()), (2, 3, "default"));
    let env: Vec<(&str, &str)> = spec.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("B", "1.5"), ("C", "True")], "a null env is left for --env at launch");

    let yaml = "name: y\nnum_nodes: 2.0\npriority: -4.0\nresources: {cpus: 2.0, memory: 0.5}\n";
    let answer = h.post("/v1/jobs", &h.admin, "application/yaml", yaml).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);

    // And what the schema forbids is refused, naming the field.
    for (body, field) in [
        (r#"{"num_nodes": 2.5}"#, "num_nodes"),
        (r#"{"num_nodes": 4294967296}"#, "num_nodes"),
        (r#"{"priority": 2147483648}"#, "priority"),
        (r#"{"resources": {"cpus": 0.0009}}"#, "resources.cpus"),
        (r#"{"resources": {"cpus": 4294967.3}}"#, "resources.cpus"),
        (r#"{"resources": {"memory": 0}}"#, "resources.memory"),
        (r#"{"resources": {"memory": 976562500001}}"#, "resources.memory"),
        (r#"{"envs": {"A": [1]}}"#, "envs.A"),
        (r#"{"name": "a\nb"}"#, "name"),
        (r#"{"name": " "}"#, "name"),
    ] {
        let answer = h.post("/v1/jobs", &h.admin, "application/json", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text);
        assert_eq!(answer.error().field.as_deref(), Some(field), "{body}: {}", answer.text);
    }
}
