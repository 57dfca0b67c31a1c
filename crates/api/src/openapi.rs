//! The OpenAPI 3 document at `/v1/openapi.json`, kept by hand beside [`crate::ROUTES`]; a test checks
//! that every route is described and every described route answers.

use axum::Json;
use serde_json::{Value, json};

use crate::ROUTES;

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "job id",
        "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}})
}

fn required_query_param(name: &str, description: &str, schema: Value) -> Value {
    let mut param = query_param(name, description, schema);
    param["required"] = json!(true);
    param
}

/// A time as the ledger reads it: an RFC 3339 time or a date; empty means "not given".
fn time_schema() -> Value {
    json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
        {"type": "string", "maxLength": 0}]})
}

/// A filter's text: any length, no control characters (the server refuses them in every query
/// parameter, [`crate::extract::ApiQuery`]); empty means "any".
fn filter_schema() -> Value {
    json!({"type": "string", "pattern": "^[^\\u0000-\\u001f]*$"})
}

/// A provider name (the server lowercases it), or empty for "any".
fn provider_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-zA-Z0-9-]*$"})
}

/// A number parameter; empty text means "not given" (the default applies).
fn number_or_empty(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
}

/// The `next` token of a usage records page: four integers joined by dots, or empty.
fn page_token_schema() -> Value {
    json!({"type": "string", "pattern": "^((-?[0-9]{1,18}\\.){3}-?[0-9]{1,18})?$"})
}

/// `range` of `GET /v1/history`: 1 to 31 days as minutes, hours or days, or empty for the default.
fn range_schema() -> Value {
    let minutes = "([1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-3][0-9]{3}|44[0-5][0-9]{2}|446[0-3][0-9]|44640)m";
    let hours = "([1-9][0-9]?|[1-6][0-9]{2}|7[0-3][0-9]|74[0-4])h";
    let days = "([1-9]|[12][0-9]|3[01])d";
    json!({"type": "string", "pattern": format!("^({minutes}|{hours}|{days})?$")})
}

/// The filters of chargeback and FOCUS: tenant, provider, contract and a `[since, until)` window
/// (`until` at or before `since` is an empty window).
fn usage_window_params() -> Value {
    json!([
        query_param("tenant", "only this tenant (members and viewers: their own)", filter_schema()),
        query_param("provider", "only this provider", provider_schema()),
        query_param("contract", "only usage under this contract", filter_schema()),
        query_param("since", "inclusive start, RFC 3339 or YYYY-MM-DD (records are clipped)", time_schema()),
        query_param("until", "exclusive end, RFC 3339 or YYYY-MM-DD (records are clipped)", time_schema())
    ])
}

fn idempotency_param() -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
        "description": "a retried request with the same key (per tenant) returns the first job instead of creating another",
        "schema": {"type": "string", "minLength": 1, "maxLength": crate::jobs::MAX_IDEMPOTENCY_KEY_LEN,
            "pattern": "^[!-~]+$"}})
}

/// 503 with `Retry-After`: the in-flight budgets are spent ([`crate::load`]).
fn overloaded_response() -> Value {
    let mut response = error_response("too much work in flight; retry after `Retry-After` seconds");
    response["headers"] = json!({"Retry-After": {"description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1}}});
    response
}

/// What one operation takes and answers.
fn operation(method: &str, path: &str, summary: &str) -> Value {
    let mut op = json!({"summary": summary});
    let mut responses = json!({});
    if path != "/healthz" {
        responses["401"] = error_response("missing or invalid token");
    }
    if path.contains("{id}") {
        responses["400"] = error_response("the id is not a job id, or a query parameter is invalid or repeated");
    }
    if method == "post" && path != "/v1/jobs/{id}/cancel" {
        responses["413"] = error_response("the body is over the limit");
        responses["503"] = overloaded_response();
    }
    match (method, path) {
        ("get", "/healthz") => {
            responses["200"] = json!({"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}});
            op["security"] = json!([]);
        }
        ("get", "/metrics") => {
            responses["200"] = json!({"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}});
        }
        ("get", "/v1/openapi.json") => responses["200"] = json_response("this document", json!({"type": "object"})),
        ("get", "/v1/whoami") => responses["200"] = json_response("the caller", schema_ref("WhoAmI")),
        ("post", "/v1/jobs") => {
            op["parameters"] = json!([idempotency_param()]);
            op["requestBody"] = json!({"required": true, "description": "a job file (see DESIGN.md), YAML or JSON",
                "content": {"application/yaml": {"schema": schema_ref("JobFile")}, "application/json": {"schema": schema_ref("JobFile")}}});
            responses["201"] = json_response("created", schema_ref("Submitted"));
            responses["200"] =
                json_response("an earlier submit with this Idempotency-Key created it", schema_ref("Submitted"));
            responses["400"] = error_response(
                "the job file is invalid; `field` names the problem (also sums no schema states: a job's \
                 envs over 256 KiB in all, a job file over 1 MiB)",
            );
            responses["403"] = error_response("the token may not submit for this tenant");
            responses["413"] = error_response("the body is over the limit");
            responses["507"] =
                error_response("the server's disk is full or its database read-only; nothing was stored");
            responses["422"] = error_response(
                "the Idempotency-Key was used before with another body, or fields valid each on its own contradict each other (two spellings of one GPU model in `speedups`)",
            );
        }
        ("post", "/v1/uploads") => {
            op["requestBody"] = json!({"required": true, "description": "a tar archive laid out as the job's working directory",
                "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}});
            responses["201"] = json_response("kept (the same bytes are kept once)", schema_ref("Uploaded"));
            responses["400"] = error_response("not a tar archive, or this server keeps no uploads");
            responses["403"] = error_response("the token may not submit");
        }
        ("post", "/v1/jobs:batch") => {
            op["parameters"] = json!([idempotency_param()]);
            op["requestBody"] = json!({"required": true, "description": "all jobs are stored or none",
                "content": {"application/json": {"schema": schema_ref("BatchRequest")},
                    "application/yaml": {"schema": {"allOf": [schema_ref("JobFile")],
                        "description": "a job file, or several separated by `---` lines (each as JobFile)"}}}});
            responses["201"] = json_response("created", schema_ref("BatchResponse"));
            responses["200"] = json_response("all already created by an earlier submit", schema_ref("BatchResponse"));
            responses["400"] = error_response("a job file is invalid; `field` starts with `jobs[i].`");
            responses["403"] = error_response("the token may not submit for this tenant");
            responses["413"] = error_response("the body is over the limit");
            responses["507"] =
                error_response("the server's disk is full or its database read-only; nothing was stored");
            responses["422"] = error_response(
                "the Idempotency-Key was used before with another body, or fields valid each on its own contradict each other (two spellings of one GPU model in `speedups`)",
            );
        }
        ("get", "/v1/jobs") => {
            op["parameters"] = json!([
                query_param(
                    "state",
                    "only jobs in this state (empty: any)",
                    json!({"type": "string", "enum": ["", "pending", "launching", "running", "succeeded", "failed", "cancelled"]})
                ),
                query_param("tenant", "only this tenant's jobs (members and viewers: their own only)", filter_schema()),
                query_param(
                    "after",
                    "jobs with ids after this one (the `next` of the previous page)",
                    number_or_empty(json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}))
                ),
                query_param(
                    "limit",
                    "page size, 1 to 1000 (default 100)",
                    number_or_empty(json!({"type": "integer", "minimum": 1, "maximum": 1000}))
                ),
                query_param(
                    "kind",
                    "only jobs of this kind (empty: any)",
                    json!({"type": "string", "enum": ["", "training", "inference", "batch", "sandbox"]})
                ),
                query_param("q", "only jobs whose name contains this text (case ignored)", filter_schema()),
                query_param("cluster", "only jobs with an attempt on this cluster", filter_schema()),
                query_param(
                    "order",
                    "oldest (ascending ids after `after`, the default, also when empty) or newest (descending ids below `after`)",
                    json!({"type": "string", "enum": ["", "oldest", "newest"]})
                ),
            ]);
            responses["200"] = json_response("one page", schema_ref("JobList"));
            responses["400"] = error_response("a filter is invalid");
            responses["403"] = error_response("the token may not read that tenant");
        }
        ("get", "/v1/jobs/{id}") => {
            op["parameters"] = json!([id_param()]);
            responses["200"] = json_response("the job", schema_ref("JobDetail"));
            responses["404"] = error_response("no such job visible to this token");
        }
        ("post", "/v1/jobs/{id}/cancel") => {
            op["parameters"] = json!([id_param()]);
            responses["200"] = json_response("the job after the cancel", schema_ref("Job"));
            responses["403"] = error_response("viewers may not cancel");
            responses["404"] = error_response("no such job visible to this token");
            responses["409"] = error_response("the job already ended");
        }
        ("get", "/v1/jobs/{id}/logs") => {
            op["parameters"] = json!([
                id_param(),
                query_param(
                    "follow",
                    "stream new output until the attempt ends: true or 1; false, 0 or empty do not",
                    // Trimmed blanks, but no control bytes: no query parameter holds one.
                    json!({"type": "string", "pattern": format!("^[{QUERY_BLANKS}]*(true|false|1|0)?[{QUERY_BLANKS}]*$")})
                ),
                query_param(
                    "attempt",
                    "attempt number (default, also when empty: the latest)",
                    number_or_empty(json!({"type": "integer", "minimum": 1, "maximum": u64::MAX}))
                )
            ]);
            responses["200"] = json!({"description": "the log text (chunked when following)", "content": {"text/plain": {"schema": {"type": "string"}}}});
            responses["404"] = error_response("no such job, or no attempt yet");
        }
        ("get", "/v1/clusters") => {
            responses["200"] = json_response("clusters", json!({"type": "array", "items": schema_ref("Cluster")}))
        }
        ("get", "/v1/nodes") => {
            op["parameters"] =
                json!([query_param("cluster", "only this cluster's nodes (empty: all)", json!({"type": "string"}))]);
            responses["200"] = json_response("nodes", json!({"type": "array", "items": schema_ref("Node")}));
            responses["400"] = error_response("unknown cluster, or a query parameter is invalid or repeated");
        }
        ("get", "/v1/contracts") => responses["200"] = json_response("the portfolio", json!({})),
        ("get", "/v1/contracts/burn-down") => {
            op["parameters"] = json!([query_param(
                "at",
                "the instant of the burn-down, RFC 3339 or YYYY-MM-DD (default now)",
                time_schema()
            )]);
            responses["200"] = json_response("burn-down per contract, money in integer micro-dollars", json!({}));
            responses["400"] = error_response("a query parameter is invalid or repeated");
            responses["404"] = error_response("the server's fleet file names no portfolio");
        }
        ("post", "/v1/tokens") => {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema_ref("TokenRequest")}}});
            responses["201"] = json_response("the new token; its secret is never shown again", schema_ref("Token"));
            responses["400"] = error_response("unknown tenant or role, or a bad name");
            responses["403"] = error_response("only admins create tokens");
        }
        ("get", "/v1/tenants") => {
            responses["200"] = json_response("tenants", json!({"type": "array", "items": schema_ref("Tenant")}))
        }
        ("post", "/v1/tenants") => {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema_ref("TenantRequest")}}});
            responses["201"] = json_response("the new tenant", schema_ref("Tenant"));
            responses["400"] = error_response("a bad name or weight; `field` names it");
            responses["403"] = error_response("only admins create tenants");
            responses["409"] = error_response("a tenant of that name exists");
        }
        ("put", "/v1/tenants/{name}/budget") => {
            op["parameters"] = json!([{"name": "name", "in": "path", "required": true, "description": "tenant name",
                "schema": {"type": "string"}}]);
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema_ref("BudgetRequest")}}});
            responses["200"] = json_response("the tenant with its budget", schema_ref("Tenant"));
            responses["400"] = error_response("a negative amount or an unknown kind; `field` names it");
            responses["403"] = error_response("only admins set budgets");
            responses["404"] = error_response("no such tenant");
        }
        ("get", "/v1/history") => {
            op["parameters"] = json!([query_param(
                "range",
                "how far back: minutes, hours or days such as 15m, 1h (default), 6h, 7d (at most 31d)",
                range_schema()
            )]);
            responses["200"] = json_response("series of [unix ms, value], oldest first", schema_ref("History"));
            responses["400"] = error_response("a bad range");
        }
        ("get", "/v1/usage") => {
            op["parameters"] = json!([
                query_param("tenant", "only this tenant (members and viewers: their own)", filter_schema()),
                query_param("provider", "only this provider", provider_schema()),
                query_param("contract", "only usage under this contract", filter_schema()),
                query_param("since", "inclusive start, RFC 3339 or YYYY-MM-DD (records are clipped)", time_schema()),
                query_param("until", "exclusive end, RFC 3339 or YYYY-MM-DD (records are clipped)", time_schema()),
                query_param(
                    "group_by",
                    "tenant (default, also when empty), provider, contract, job or gpu",
                    json!({"type": "string", "enum": ["", "tenant", "provider", "contract", "job", "gpu"]})
                )
            ]);
            responses["200"] = json_response("usage rows; money in micro-USD", schema_ref("Usage"));
            responses["400"] = error_response("bad time, provider or group_by; `field` names it");
            responses["403"] = error_response("another tenant's usage");
        }
        ("get", "/v1/usage/records") => {
            op["parameters"] = json!([
                query_param("tenant", "only this tenant (members and viewers: their own)", filter_schema()),
                query_param(
                    "since",
                    "records ending after this, RFC 3339 or YYYY-MM-DD (whole, not clipped)",
                    time_schema()
                ),
                query_param("until", "records starting before this, RFC 3339 or YYYY-MM-DD", time_schema()),
                query_param("after", "the `next` token of the previous page", page_token_schema()),
                query_param(
                    "limit",
                    "records per page, 1 to 10000 (default 1000)",
                    json!({"type": "integer", "minimum": 1, "maximum": 10000})
                )
            ]);
            responses["200"] =
                json_response("one page of usage records; money in micro-USD", schema_ref("UsageRecords"));
            responses["400"] = error_response("bad since, until, after or limit; `field` names it");
            responses["403"] = error_response("another tenant's usage");
        }
        ("get", "/v1/usage/chargeback") => {
            op["parameters"] = usage_window_params();
            responses["200"] =
                json_response("chargeback rows per tenant; money in micro-USD", schema_ref("Chargeback"));
            responses["400"] = error_response("bad time, provider, or a group_by given; `field` names it");
            responses["403"] = error_response("another tenant's usage");
        }
        ("get", "/v1/usage/focus") => {
            op["parameters"] = usage_window_params();
            responses["200"] = json!({"description": "FOCUS 1.2 cost-and-usage rows as CSV (header first), streamed; money in dollars",
                "content": {"text/csv": {"schema": {"type": "string"}}}});
            responses["400"] = error_response("bad time, provider, or a group_by given; `field` names it");
            responses["403"] = error_response("another tenant's usage");
        }
        ("get", "/v1/invoices") => {
            op["parameters"] = json!([
                required_query_param(
                    "provider",
                    "the provider billed",
                    json!({"type": "string", "pattern": "^[a-zA-Z0-9-]+$", "maxLength": 63})
                ),
                required_query_param(
                    "month",
                    "the billing month YYYY-MM, UTC, 1970 to 9999",
                    json!({"type": "string", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"})
                )
            ]);
            responses["200"] = json_response(
                "the invoice; its total is the exact sum of its lines; money in micro-USD",
                schema_ref("Invoice"),
            );
            responses["400"] = error_response("missing or bad provider or month");
            responses["403"] = error_response("only admins read invoices");
        }
        _ => {}
    }
    op["responses"] = responses;
    op
}

/// The characters Rust's `str::trim` removes (Unicode White_Space), as a regex class body.
const TRIMMED: &str = "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// [`TRIMMED`] less the control bytes, which [`crate::extract::ApiQuery`] refuses in a query.
const QUERY_BLANKS: &str = " \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A pattern for one of `words`, ASCII case ignored, with blanks around it (the job file parser
/// trims and lowercases such fields). `alternatives` are extra regex alternatives.
fn words_pattern(words: &[&str], alternatives: &[&str]) -> String {
    let either_case = |word: &str| -> String {
        word.chars()
            .map(|c| match c {
                'a'..='z' => format!("[{}{c}]", c.to_ascii_uppercase()),
                other => other.to_string(),
            })
            .collect()
    };
    let mut all: Vec<String> = words.iter().map(|w| either_case(w)).collect();
    all.extend(alternatives.iter().map(|a| a.to_string()));
    format!("^[{TRIMMED}]*({})[{TRIMMED}]*$", all.join("|"))
}

/// `schema` or null: the job file parser reads a null field as an absent one.
fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// The job file fields the document describes, as `cumulo_jobfile` reads them (its other fields
/// are in DESIGN.md). Texts are bounded in characters ([`cumulo_jobfile::limits`]); a job's
/// `envs` together hold at most 256 KiB and a job file at most 1 MiB, sums no schema states,
/// so such a file gets 400.
fn job_file_schema() -> Value {
    use cumulo_jobfile::limits;
    let no_nul = "^[^\\u0000]*$";
    let script = json!({"type": "string", "maxLength": limits::MAX_SCRIPT_CHARS, "pattern": no_nul});
    // Trimmed, non-empty, on one line, no NUL.
    let edge = format!("[^{TRIMMED}\\u0000]");
    let name = format!("^[{TRIMMED}]*{edge}([^\\n\\u0000]*{edge})?[{TRIMMED}]*$");
    let env_value = json!({"anyOf": [{"type": "string", "maxLength": limits::MAX_ENV_VALUE_CHARS, "pattern": no_nul},
        {"type": ["number", "boolean", "null"]}]});
    json!({"type": "object", "additionalProperties": false,
        "description": "a Cumulo job file: a superset of SkyPilot's task YAML; these are its common fields, \
            the job file format (DESIGN.md, README's Limits) has them all. A null field is an absent one; \
            keys starting with `x-` hold YAML anchors and are ignored",
        "patternProperties": {"^x-": {}},
        "properties": {
        "name": nullable(json!({"type": "string", "maxLength": limits::MAX_NAME_CHARS, "pattern": name})),
        "kind": nullable(json!({"type": "string", "pattern": words_pattern(&["training", "inference", "batch", "sandbox"], &[])})),
        "tenant": nullable(json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,63}$"})),
        "priority": {"anyOf": [
            {"type": "string", "pattern": words_pattern(&["low", "normal", "high", "critical"], &["[+-]?[0-9]{1,9}"])},
            {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}, {"type": "null"}]},
        "resources": nullable(json!({"type": "object", "additionalProperties": false, "properties": {
            "cpus": nullable(json!({"type": "number", "minimum": 0.001, "maximum": limits::MAX_CPUS,
                "description": "vCPUs per node (text such as `4+` is read too)"})),
            "memory": nullable(json!({"type": "number", "exclusiveMinimum": 0, "maximum": limits::MAX_MEMORY_MIB / 1024.0,
                "description": "GB per node (text such as `64GB+` is read too)"})),
            "use_spot": {"type": ["boolean", "null"]}}})),
        "num_nodes": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
        "topology": nullable(json!({"type": "string", "pattern": words_pattern(&["nvlink-domain", "nvlink_domain", "nvlink", "block", "zone", "any"], &[])})),
        "run": nullable(script.clone()), "setup": nullable(script),
        "envs": nullable(json!({"type": "object", "maxProperties": limits::MAX_ENV_VARS,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": env_value})),
        "speedups": nullable(json!({"type": "object",
            "description": "the job's speed on each GPU model relative to its others ({V100: 3.0, K80: 1.0}), \
                read by heterogeneity rounds; each model once (`V100` and `v100` are one model)",
            "propertyNames": {"pattern": gpu_model_pattern()},
            "additionalProperties": {"type": "number", "minimum": cumulo_types::Speed::MIN.as_f64(),
                "maximum": cumulo_types::Speed::MAX.as_f64()}}))}})
}

/// The GPU model names `cumulo_types::GpuModel::parse` reads: a model's name or alias, in any
/// case, with '-', '_' or ' ' anywhere, and blanks around.
fn gpu_model_pattern() -> String {
    let mut keys: Vec<String> = Vec::new();
    for model in cumulo_types::GpuModel::ALL {
        for name in std::iter::once(model.name()).chain(model.aliases().iter().copied()) {
            let key: String = name.chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect();
            let spelled: String = key
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' => format!("[{}{}][-_ ]*", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
                    other => format!("{other}[-_ ]*"),
                })
                .collect();
            if !keys.contains(&spelled) {
                keys.push(spelled);
            }
        }
    }
    format!("^[{TRIMMED}]*[-_ ]*({})[{TRIMMED}]*$", keys.join("|"))
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    json!({
        "Error": {"type": "object", "required": ["error", "reason"], "properties": {
            "error": {"type": "string", "description": "machine-readable code"},
            "field": {"type": "string", "description": "the request field at fault"},
            "reason": {"type": "string"}}},
        "JobFile": job_file_schema(),
        "Tenant": {"type": "object", "required": ["name", "source"], "properties": {
            "name": string, "source": {"type": "string", "enum": ["fleet file", "api"]}, "weight": integer,
            "gpus_milli": integer, "cpus_milli": integer, "created_at": {"type": "string", "format": "date-time"},
            "budget": {"type": "object", "properties": {"monthly": string, "kind": string, "source": string}}}},
        "BudgetRequest": {"type": "object", "required": ["monthly"], "additionalProperties": false, "properties": {
            "monthly": {"type": "number", "minimum": 0, "maximum": 1_000_000_000_000i64}, "kind": {"type": ["string", "null"], "enum": ["hard", "soft", null],
                "description": "null or absent: hard"}}},
        "TenantRequest": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"},
            "weight": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
            "gpus_milli": {"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX},
            "cpus_milli": {"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX}}},
        "History": {"type": "object", "properties": {"since": string, "until": string, "step_s": integer,
            "units": {"type": "object"}, "series": {"type": "array", "items": {"type": "object", "properties": {
                "metric": string, "label": string, "points": {"type": "array", "items": {"type": "array"}}}}}}},
        "Submitted": {"type": "object", "required": ["id", "created"], "properties": {"id": integer, "created": {"type": "boolean"}}},
        "BatchRequest": {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array",
            "minItems": 1, "maxItems": 10_000,
            "description": "job files as objects; a job file as YAML text (a string) is accepted too",
            "items": schema_ref("JobFile")}}},
        "BatchResponse": {"type": "object", "properties": {"jobs": {"type": "array", "items": schema_ref("Submitted")}}},
        "Attempt": {"type": "object", "properties": {"id": {"type": "object", "properties": {"job": integer, "attempt": integer}},
            "replica": {"type": "integer", "description": "which replica of its job the attempt runs (0 for one replica)"},
            "state": {"type": "string", "enum": ["planned", "launching", "running", "succeeded", "failed", "lost", "cancelled", "preempted"]},
            "placement": {"type": "object"}, "message": string, "created_at": string, "updated_at": string}},
        "Job": {"type": "object", "properties": {"id": integer, "spec": {"type": "object"}, "state": string,
            "pending_reason": string, "cancel_requested": {"type": "boolean"}, "attempt_count": integer,
            "submitted_at": string, "updated_at": string, "attempts": {"type": "array", "items": schema_ref("Attempt")}}},
        "JobDetail": {"allOf": [schema_ref("Job"), {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}}}]},
        "JobList": {"type": "object", "properties": {"jobs": {"type": "array", "items": schema_ref("Job")},
            "next": {"type": ["integer", "null"], "description": "pass as `after` for the next page"}}},
        "Cluster": {"type": "object", "properties": {"name": string, "provider": string, "region": string, "driver": string,
            "pools": integer, "nodes": integer, "gpus": integer, "gpus_used_milli": integer}},
        "Node": {"type": "object", "properties": {"name": string, "cluster": string, "pool": string, "zone": string,
            "capacity": string, "node_type": string, "gpu": string, "gpus": integer, "gpus_used_milli": integer,
            "vcpus": integer, "cpus_used_milli": integer, "schedulable": {"type": "boolean"}}},
        "TokenRequest": {"type": "object", "required": ["tenant", "role"], "properties": {"tenant": string,
            "role": {"type": "string", "pattern": words_pattern(&["admin", "member", "viewer"], &[])},
            "name": {"type": ["string", "null"], "description": "null or absent: `TENANT-ROLE`",
                "maxLength": crate::tokens::MAX_TOKEN_NAME_CHARS, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}}},
        "Token": {"type": "object", "properties": {"token": string, "tenant": string, "role": string, "name": string}},
        "WhoAmI": {"type": "object", "properties": {"tenant": string, "role": string, "name": string}},
        "Usage": {"type": "object", "properties": {"money_unit": string, "group_by": string, "rows": {"type": "array", "items": {"type": "object", "properties": {
            "group": string, "node_seconds": integer, "gpu_seconds": integer, "cost": integer, "list_cost": integer, "records": integer}}}}},
        "Invoice": {"type": "object", "properties": {"money_unit": string, "provider": string, "month": string, "period_start": string,
            "period_end": string, "total": integer, "lines": {"type": "array", "items": {"type": "object", "properties": {
            "item": string, "capacity": string, "contract": string, "node_type": string, "rate": integer, "node_seconds": integer, "amount": integer}}}}},
    })
}

/// The money views' answers (kept apart: one `json!` of every schema passes the macro's recursion limit).
fn usage_schemas() -> Value {
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    json!({
        "UsageRecords": {"type": "object", "properties": {"money_unit": string, "records": {"type": "array", "items": {"type": "object", "properties": {
            "attempt": {"type": "object", "properties": {"job": integer, "attempt": integer}}, "node_rank": integer, "start": string, "stop": string,
            "tenant": string, "provider": string, "region": string, "node_type": string, "gpu": string, "gpus": integer,
            "capacity": string, "contract": string, "rate": integer, "list_rate": integer, "price_from": string,
            "cost": integer, "list_cost": integer, "resource_id": string}}},
            "next": {"type": "string", "description": "pass as `after` for the next page; absent on the last"}}},
        "Chargeback": {"type": "object", "properties": {"money_unit": string, "rows": {"type": "array", "items": {"type": "object", "properties": {
            "tenant": string, "gpu_seconds": integer, "contract": integer, "on_demand": integer, "spot": integer, "total": integer,
            "list": integer, "savings": integer}}}}},
    })
}

fn all_schemas() -> Value {
    let mut all = schemas();
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), usage_schemas()) {
        all.extend(more);
    }
    if let Some(all) = all.as_object_mut() {
        all.insert(
            "Uploaded".into(),
            json!({"type": "object", "required": ["upload", "bytes"], "properties": {
                "upload": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}, "bytes": {"type": "integer", "minimum": 0}}}),
        );
    }
    all
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation(method, path, summary);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Cumulo API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-cloud compute control plane for AI: jobs, fleet, contracts"},
        "paths": paths,
        "components": {"schemas": all_schemas(), "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
    })
}

/// The document for this deployment: tenant and cluster names that exist (the fleet file's and
/// `stored_tenants`, those created over the API) are listed as the only values their fields
/// take, so that a schema-valid request names things that exist.
pub fn document_for(fleet: &crate::Fleet, stored_tenants: &[String]) -> Value {
    let mut doc = document();
    let mut tenants: Vec<&str> = fleet.tenants.iter().map(String::as_str).collect();
    tenants.extend(stored_tenants.iter().map(String::as_str).filter(|t| !fleet.tenants.iter().any(|f| f == t)));
    if !tenants.is_empty() {
        doc["components"]["schemas"]["TokenRequest"]["properties"]["tenant"] =
            json!({"type": "string", "enum": tenants});
        doc["components"]["schemas"]["JobFile"]["properties"]["tenant"] =
            nullable(json!({"type": "string", "enum": tenants}));
    }
    let mut clusters: Vec<&str> = vec![""];
    clusters.extend(fleet.clusters.iter().map(|c| c.name.as_str()));
    doc["paths"]["/v1/nodes"]["get"]["parameters"][0]["schema"] = json!({"type": "string", "enum": clusters});
    doc
}

pub(crate) async fn handler(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
) -> Result<Json<Value>, crate::ApiError> {
    let stored: Vec<String> = state.store.tenants().await?.into_iter().map(|t| t.name).collect();
    Ok(Json(document_for(&state.fleet, &stored)))
}
