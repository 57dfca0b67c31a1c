//! A typed HTTP client for the API, used by the CLI and `cumulo bench submit`.

use cumulo_store::JobRecord;
use cumulo_types::JobId;
use serde::de::DeserializeOwned;

use crate::wire::{
    BatchRequest, BatchResponse, ClusterView, JobDetail, JobList, ListQuery, NodeView, SubmitResponse, TokenRequest,
    TokenResponse, WhoAmI,
};
use crate::{Error, ErrorBody, ErrorBodyDisplay};

/// A connection to one server with one token. Cheap to clone (connections are pooled).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// Secret values sent with every submit (`Cumulo-Secret` headers); `Debug` shows names only.
    secrets: cumulo_driver::SecretEnv,
    /// The upload (`sha256:...`) named with every submit (`Cumulo-Upload` header).
    upload: Option<String>,
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:8080`); `token` is sent as a bearer
    /// token.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, Error> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid {
                field: "server",
                value: base,
                expected: "a URL such as http://127.0.0.1:8080",
            });
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(Client { base, token, http, secrets: cumulo_driver::SecretEnv::default(), upload: None })
    }

    /// This client with secret values to send with every submit: they fill (or replace) the
    /// values of the secrets the job files declare (`cumulo submit --secret`).
    pub fn with_secrets(mut self, secrets: std::collections::BTreeMap<String, String>) -> Client {
        self.secrets = cumulo_driver::SecretEnv(secrets);
        self
    }

    /// This client naming `upload` (as `POST /v1/uploads` answered) with every submit.
    pub fn with_upload(mut self, upload: Option<String>) -> Client {
        self.upload = upload;
        self
    }

    /// Sends a tar archive of a job's local workdir and file_mounts; answers its id.
    pub async fn upload(&self, archive: Vec<u8>) -> Result<crate::uploads::Uploaded, Error> {
        let request = self
            .request(reqwest::Method::POST, "/v1/uploads")
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(archive);
        self.json(request).await
    }

    /// Adds one `Cumulo-Secret: NAME=BASE64(VALUE)` header per secret, marked sensitive, and the
    /// `Cumulo-Upload` header when there is an upload.
    fn with_secret_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        use base64::Engine as _;
        if let Some(upload) = &self.upload {
            request = request.header(crate::uploads::UPLOAD_HEADER, upload.as_str());
        }
        for (name, value) in &self.secrets.0 {
            let text = format!("{name}={}", base64::engine::general_purpose::STANDARD.encode(value));
            if let Ok(mut header) = reqwest::header::HeaderValue::from_str(&text) {
                header.set_sensitive(true);
                request = request.header(crate::jobs::SECRET_HEADER, header);
            }
        }
        request
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let response = request.send().await.map_err(|e| Error::Connect {
            url: self.base.clone(),
            reason: std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string()),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
            error: "http".to_string(),
            field: None,
            reason: if text.is_empty() { format!("HTTP {status}") } else { text },
        });
        Err(Error::Api { status, body: ErrorBodyDisplay(body) })
    }

    async fn json<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, Error> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| Error::Protocol(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("cannot read the answer: {e}")))
    }

    pub async fn healthz(&self) -> Result<(), Error> {
        self.send(self.request(reqwest::Method::GET, "/healthz")).await.map(|_| ())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, Error> {
        let response = self.send(self.request(reqwest::Method::GET, "/metrics")).await?;
        response.text().await.map_err(|e| Error::Protocol(e.to_string()))
    }

    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/whoami")).await
    }

    /// Submits one job file (YAML or JSON text).
    pub async fn submit(&self, job_file: &str, idempotency_key: Option<&str>) -> Result<SubmitResponse, Error> {
        let mut request = self
            .request(reqwest::Method::POST, "/v1/jobs")
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(job_file.to_string());
        request = self.with_secret_headers(request);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    /// Submits one job file given as JSON text.
    pub async fn submit_json(&self, job_file: &str, idempotency_key: Option<&str>) -> Result<SubmitResponse, Error> {
        let mut request = self
            .request(reqwest::Method::POST, "/v1/jobs")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(job_file.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    /// Submits job files (as JSON values: objects, or YAML text as strings) all or nothing.
    pub async fn submit_batch(
        &self,
        jobs: Vec<serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<BatchResponse, Error> {
        let mut request = self.request(reqwest::Method::POST, "/v1/jobs:batch").json(&BatchRequest { jobs });
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    /// Submits a YAML stream of job files (`---` separated) all or nothing.
    pub async fn submit_yaml_batch(&self, yaml: &str, idempotency_key: Option<&str>) -> Result<BatchResponse, Error> {
        self.submit_batch_body("application/yaml", yaml.to_string(), idempotency_key).await
    }

    /// Submits a batch body already serialised (`application/json` `{"jobs": [...]}` or a YAML
    /// stream); benchmarks use it to keep serialisation out of the measurement.
    pub async fn submit_batch_body(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        idempotency_key: Option<&str>,
    ) -> Result<BatchResponse, Error> {
        let mut request = self
            .request(reqwest::Method::POST, "/v1/jobs:batch")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        request = self.with_secret_headers(request);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    pub async fn list_jobs(&self, query: &ListQuery) -> Result<JobList, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/jobs").query(query)).await
    }

    pub async fn job(&self, id: JobId) -> Result<JobDetail, Error> {
        self.json(self.request(reqwest::Method::GET, &format!("/v1/jobs/{id}"))).await
    }

    pub async fn cancel(&self, id: JobId) -> Result<JobRecord, Error> {
        self.json(self.request(reqwest::Method::POST, &format!("/v1/jobs/{id}/cancel"))).await
    }

    /// The log answer, to read whole or chunk by chunk (`follow`).
    pub async fn logs(&self, id: JobId, follow: bool, attempt: Option<u32>) -> Result<reqwest::Response, Error> {
        let mut query = vec![("follow", follow.to_string())];
        if let Some(a) = attempt {
            query.push(("attempt", a.to_string()));
        }
        self.send(self.request(reqwest::Method::GET, &format!("/v1/jobs/{id}/logs")).query(&query)).await
    }

    pub async fn clusters(&self) -> Result<Vec<ClusterView>, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/clusters")).await
    }

    pub async fn nodes(&self, cluster: Option<&str>) -> Result<Vec<NodeView>, Error> {
        let mut request = self.request(reqwest::Method::GET, "/v1/nodes");
        if let Some(c) = cluster {
            request = request.query(&[("cluster", c)]);
        }
        self.json(request).await
    }

    pub async fn contracts(&self) -> Result<serde_json::Value, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/contracts")).await
    }

    pub async fn contracts_burn_down(&self) -> Result<serde_json::Value, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/contracts/burn-down")).await
    }

    pub async fn tenants(&self) -> Result<Vec<crate::tenants::TenantView>, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/tenants")).await
    }

    pub async fn create_tenant(
        &self,
        request: &crate::tenants::TenantRequest,
    ) -> Result<crate::tenants::TenantView, Error> {
        self.json(self.request(reqwest::Method::POST, "/v1/tenants").json(request)).await
    }

    /// `PUT /v1/tenants/{name}/budget`.
    pub async fn set_budget(
        &self,
        tenant: &str,
        request: &crate::tenants::BudgetRequest,
    ) -> Result<crate::tenants::TenantView, Error> {
        self.json(self.request(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/budget")).json(request)).await
    }

    pub async fn create_token(&self, request: &TokenRequest) -> Result<TokenResponse, Error> {
        self.json(self.request(reqwest::Method::POST, "/v1/tokens").json(request)).await
    }

    /// `GET /v1/usage` with query pairs (`tenant`, `provider`, `contract`, `since`, `until`, `group_by`).
    pub async fn usage(&self, query: &[(&str, String)]) -> Result<crate::usage::UsageAnswer, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/usage").query(query)).await
    }

    /// `GET /v1/usage/records`: one keyset page (`tenant`, `since`, `until`, `after`, `limit`).
    pub async fn usage_records(&self, query: &[(&str, String)]) -> Result<crate::usage::RecordsAnswer, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/usage/records").query(query)).await
    }

    /// `GET /v1/usage/chargeback` with the query pairs of [`Client::usage`] but `group_by`.
    pub async fn usage_chargeback(&self, query: &[(&str, String)]) -> Result<crate::usage::ChargebackAnswer, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/usage/chargeback").query(query)).await
    }

    /// `GET /v1/usage/focus`: the FOCUS CSV as a response to stream (read it with `chunk()`).
    pub async fn usage_focus(&self, query: &[(&str, String)]) -> Result<reqwest::Response, Error> {
        self.send(self.request(reqwest::Method::GET, "/v1/usage/focus").query(query)).await
    }

    /// `GET /v1/contracts/burn-down?at=...` (`at` absent: now).
    pub async fn contracts_burn_down_at(&self, at: Option<&str>) -> Result<serde_json::Value, Error> {
        let query: Vec<(&str, &str)> = at.map(|at| ("at", at)).into_iter().collect();
        self.json(self.request(reqwest::Method::GET, "/v1/contracts/burn-down").query(&query)).await
    }

    /// `GET /v1/invoices`: one provider's invoice for a month (`YYYY-MM`).
    pub async fn invoice(&self, provider: &str, month: &str) -> Result<cumulo_ledger::Invoice, Error> {
        self.json(self.request(reqwest::Method::GET, "/v1/invoices").query(&[("provider", provider), ("month", month)]))
            .await
    }
}
