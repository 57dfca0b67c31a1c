//! `GET /v1/usage`, `/v1/usage/records`, `/v1/usage/chargeback`, `/v1/usage/focus` and
//! `GET /v1/invoices` in-process over a real SQLite store holding metered usage: grouping, keyset
//! pages, chargeback against list, the streamed FOCUS export, tenant isolation, admin-only invoices,
//! and bad parameters named in the answer.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cumulo_api::auth::issue_token;
use cumulo_api::usage::{ChargebackAnswer, RecordsAnswer, UsageAnswer};
use cumulo_api::{AppState, Config, ErrorBody, Fleet, Metrics, router};
use cumulo_ledger::{Ledger, NodeMeta, Observation, PriceBook, PriceKey, UsageRecord, parse_time};
use cumulo_store::{Role, Store};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};
use tower::ServiceExt;

struct Harness {
    app: axum::Router,
    admin: String,
    member_a: String,
    _dir: tempfile::TempDir,
}

/// Tenant `research`: job 1, two contract nodes 2026-11-30T20:00 → 2026-12-01T04:00 at $60 ($960);
/// job 2, one on-demand node 2026-11-05 00:00 → 03:00 at $98.32. Tenant `a`: job 3, one on-demand
/// node for an hour.
fn metered() -> Vec<UsageRecord> {
    let aws = Provider::new("aws").unwrap();
    let t = |s: &str| parse_time("t", s).unwrap();
    let mut prices = PriceBook::new();
    prices
        .set_price(PriceKey::on_demand(&aws, "p5.48xlarge"), t("2026-01-01"), Money::parse_dollars("98.32").unwrap())
        .unwrap();
    prices
        .set_price(PriceKey::contract(&aws, "p5.48xlarge", "aws-2025"), t("2026-01-01"), Money::from_dollars(60))
        .unwrap();
    let mut ledger = Ledger::new();
    for (job, rank, tenant, contract, start, stop) in [
        (1, 0, "research", Some("aws-2025"), "2026-11-30T20:00:00Z", "2026-12-01T04:00:00Z"),
        (1, 1, "research", Some("aws-2025"), "2026-11-30T20:00:00Z", "2026-12-01T04:00:00Z"),
        (2, 0, "research", None, "2026-11-05T00:00:00Z", "2026-11-05T03:00:00Z"),
        (3, 0, "a", None, "2026-11-06T00:00:00Z", "2026-11-06T01:00:00Z"),
    ] {
        let node = NodeMeta {
            tenant: tenant.into(),
            provider: aws.clone(),
            region: "us-east-1".into(),
            node_type: "p5.48xlarge".into(),
            gpu: Some(GpuModel::H100),
            gpus: 8,
            capacity: if contract.is_some() { CapacityKind::Contract } else { CapacityKind::OnDemand },
            contract: contract.map(String::from),
            resource_id: None,
        };
        let attempt = AttemptId { job: JobId(job), attempt: 1 };
        ledger
            .ingest(&Observation { attempt, node_rank: rank, start: t(start), stop: t(stop), node }, &prices)
            .unwrap();
    }
    ledger.to_records()
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        cumulo_store_sqlite::SqliteStore::open_path(dir.path().join("cumulo.db")).await.unwrap();
    assert_eq!(store.append_usage(metered()).await.unwrap(), 20, "hourly records: 2 × 8 + 3 + 1");
    let admin = issue_token(store.as_ref(), "default", Role::Admin, "admin").await.unwrap();
    let member_a = issue_token(store.as_ref(), "a", Role::Member, "alice").await.unwrap();
    let portfolio = cumulo_portfolio::Portfolio::demo().unwrap();
    let fleet = Fleet {
        clusters: vec![],
        tenants: vec!["a".into(), "default".into()],
        contracts: serde_json::to_value(&portfolio).unwrap(),
        portfolio: Some(Arc::new(portfolio)),
        budgets: Default::default(),
    };
    let state = AppState::new(store, Arc::new(fleet), Arc::new(Metrics::default()), Config::default());
    Harness { app: router(state), admin, member_a, _dir: dir }
}

impl Harness {
    async fn get(&self, uri: &str, token: &str) -> (StatusCode, String) {
        let request = Request::get(uri).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[tokio::test]
async fn usage_groups_and_members_see_only_their_tenant() {
    let h = harness().await;
    let (status, text) = h.get("/v1/usage?group_by=tenant", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: UsageAnswer = serde_json::from_str(&text).unwrap();
    let rows: Vec<(&str, i64)> = answer.rows.iter().map(|r| (r.group.as_str(), r.cost.micros())).collect();
    assert_eq!(rows, vec![("a", 98_320_000), ("research", 1_254_960_000)]);
    assert_eq!(answer.money_unit, "micro-USD");
    // December only, clipped: job 1's two nodes for 4 h at $60
    let (_, text) = h.get("/v1/usage?group_by=job&since=2026-12-01&until=2027-01-01", &h.admin).await;
    let answer: UsageAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(answer.rows.len(), 1);
    assert_eq!((answer.rows[0].group.as_str(), answer.rows[0].cost.micros()), ("1", 480_000_000));
    // a member sees its own tenant only, and may not ask for another
    let (_, text) = h.get("/v1/usage?group_by=provider", &h.member_a).await;
    let answer: UsageAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(answer.rows.iter().map(|r| r.cost.micros()).sum::<i64>(), 98_320_000);
    let (status, text) = h.get("/v1/usage?tenant=research", &h.member_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
}

#[tokio::test]
async fn invoices_are_for_admins_and_add_up() {
    let h = harness().await;
    let (status, text) = h.get("/v1/invoices?provider=aws&month=2026-11", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // November: job 1's two nodes 4 h at $60 = $480; job 2 3 h and job 3 1 h on-demand at $98.32 = $393.28
    assert_eq!(json["total"], 873_280_000);
    let lines: i64 = json["lines"].as_array().unwrap().iter().map(|l| l["amount"].as_i64().unwrap()).sum();
    assert_eq!(lines, 873_280_000);
    let (status, _) = h.get("/v1/invoices?provider=aws&month=2026-11", &h.member_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let h = harness().await;
    for (uri, field, reason) in [
        (
            "/v1/invoices?provider=aws&month=2026-13",
            "month",
            "invalid month `2026-13`: expected a month YYYY-MM such as 2026-11",
        ),
        ("/v1/invoices?month=2026-11", "provider", "provider is required, e.g. ?provider=aws&month=2026-11"),
        (
            "/v1/usage?group_by=region",
            "group_by",
            "invalid group-by `region`: expected tenant, provider, contract, job or gpu",
        ),
    ] {
        let (status, text) = h.get(uri, &h.admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {text}");
        let body: ErrorBody = serde_json::from_str(&text).unwrap();
        assert_eq!((body.field.as_deref(), body.reason.as_str()), (Some(field), reason), "{uri}");
    }
    for (uri, field, reason) in [
        ("/v1/usage/records?limit=0", "limit", "limit 0 is out of range: expected 1 to 10000"),
        ("/v1/usage/records?limit=10001", "limit", "limit 10001 is out of range: expected 1 to 10000"),
        (
            "/v1/usage/records?after=yesterday",
            "after",
            "invalid page token `yesterday`: expected the `next` of a previous page",
        ),
        ("/v1/usage/chargeback?group_by=job", "group_by", "chargeback is always per tenant; group_by is for /v1/usage"),
        (
            "/v1/usage/focus?provider=AWS!",
            "provider",
            "invalid provider `AWS!`: expected lowercase letters, digits or '-'",
        ),
        (
            "/v1/usage/focus?until=soon",
            "until",
            "invalid until `soon`: expected an RFC 3339 time such as 2026-11-03T04:05:06Z or a date such as 2026-11-03",
        ),
    ] {
        let (status, text) = h.get(uri, &h.admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {text}");
        let body: ErrorBody = serde_json::from_str(&text).unwrap();
        assert_eq!((body.field.as_deref(), body.reason.as_str()), (Some(field), reason), "{uri}");
    }
    let (status, text) = h.get("/v1/usage?since=yesterday", &h.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid since `yesterday`"), "{text}");
}

#[tokio::test]
async fn contract_burn_down_counts_usage_metered_under_each_contract() {
    let h = harness().await;
    let (status, text) = h.get("/v1/contracts/burn-down?at=2026-12-31", &h.member_a).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["illustrative"], true);
    let line = |id: &str| json["contracts"].as_array().unwrap().iter().find(|c| c["contract"] == id).unwrap().clone();
    // job 1: two contract nodes for 8 h at $60 under aws-2025; on-demand usage counts for no contract
    assert_eq!(line("aws-2025")["consumed"], 960_000_000);
    assert_eq!(line("azure-2025")["consumed"], 0);
    let shortfall = line("aws-2025")["projected_shortfall"].as_i64().unwrap();
    assert!(shortfall > 0, "a $38B commitment with $960 used falls short: {shortfall}");
    let (status, text) = h.get("/v1/contracts/burn-down?at=yesterday-ish", &h.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("\"field\":\"at\""), "{text}");
}

#[tokio::test]
async fn usage_records_come_in_keyset_pages_and_members_see_only_theirs() {
    let h = harness().await;
    let mut all = Vec::new();
    let mut uri = "/v1/usage/records?limit=7".to_string();
    let mut pages = 0;
    loop {
        let (status, text) = h.get(&uri, &h.admin).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let page: RecordsAnswer = serde_json::from_str(&text).unwrap();
        assert!(page.records.len() <= 7, "a page holds at most its limit");
        all.extend(page.records);
        pages += 1;
        match page.next {
            Some(next) => uri = format!("/v1/usage/records?limit=7&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3, "20 records in pages of 7");
    let mut expected = metered();
    expected.sort_by_key(|r| (r.start, r.attempt, r.node_rank));
    assert_eq!(all, expected, "every record once, by start");
    // December only: job 1's hours from midnight
    let (_, text) = h.get("/v1/usage/records?since=2026-12-01&until=2027-01-01", &h.admin).await;
    let page: RecordsAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(page.records.len(), 8);
    assert!(page.next.is_none());
    // a member reads only its tenant, and may not ask for another
    let (_, text) = h.get("/v1/usage/records", &h.member_a).await;
    let page: RecordsAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(page.records.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>(), vec!["a"]);
    let (status, _) = h.get("/v1/usage/records?tenant=research", &h.member_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn chargeback_shows_what_contracts_saved_against_list() {
    let h = harness().await;
    let (status, text) = h.get("/v1/usage/chargeback", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: ChargebackAnswer = serde_json::from_str(&text).unwrap();
    let research = answer.rows.iter().find(|r| r.tenant == "research").unwrap();
    // job 1: 16 node-hours at $60 against a $98.32 list; job 2: 3 h on-demand at list
    assert_eq!(research.contract, Money::from_dollars(960));
    assert_eq!(research.on_demand, Money::parse_dollars("294.96").unwrap());
    assert_eq!(research.savings, Money::parse_dollars("613.12").unwrap(), "16 h × ($98.32 − $60)");
    // a member's chargeback is its own tenant's row alone
    let (_, text) = h.get("/v1/usage/chargeback", &h.member_a).await;
    let answer: ChargebackAnswer = serde_json::from_str(&text).unwrap();
    let tenants: Vec<&str> = answer.rows.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(tenants, vec!["a"]);
    let (status, _) = h.get("/v1/usage/chargeback?tenant=research", &h.member_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A FOCUS CSV as rows of column → value.
fn focus_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect()
}

fn money(row: &std::collections::BTreeMap<String, String>, column: &str) -> Money {
    Money::parse_dollars(&row[column]).unwrap_or_else(|e| panic!("{column} `{}`: {e}", row[column]))
}

/// Usage rows of metered records (not the commitment rows).
fn is_metered(row: &std::collections::BTreeMap<String, String>) -> bool {
    row["ChargeCategory"] == "Usage" && row["CommitmentDiscountStatus"] != "Unused"
}

#[tokio::test]
async fn focus_export_streams_csv_clipped_to_the_window() {
    let h = harness().await;
    let (status, text) = h.get("/v1/usage/focus?tenant=research", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let header = text.lines().next().unwrap();
    assert!(header.contains("SkuMeter") && header.contains("SkuPriceDetails"), "{header}");
    let rows = focus_rows(&text);
    assert_eq!(rows.len(), 19, "one usage row per record of the tenant, no commitment rows: {rows:?}");
    let total: Money = rows.iter().map(|r| money(r, "BilledCost")).sum();
    assert_eq!(total, Money::parse_dollars("1254.96").unwrap(), "one tenant is billed its cost: $960 + 3 h × $98.32");
    // half of the first hour of job 3: one row, half its cost
    let (_, text) =
        h.get("/v1/usage/focus?tenant=a&since=2026-11-06T00:30:00Z&until=2026-11-06T02:00:00Z", &h.admin).await;
    let rows = focus_rows(&text);
    assert_eq!(rows.len(), 1);
    assert_eq!(money(&rows[0], "BilledCost"), Money::parse_dollars("49.16").unwrap());
    // a member's export holds its tenant's usage only: commitments are not a tenant's
    let (_, text) = h.get("/v1/usage/focus", &h.member_a).await;
    let rows = focus_rows(&text);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["x_CumuloTenant"].as_str(), money(&rows[0], "BilledCost")),
        ("a", Money::parse_dollars("98.32").unwrap())
    );
    let (status, _) = h.get("/v1/usage/focus?tenant=research", &h.member_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn focus_export_of_every_tenant_reconciles_usage_with_purchases_per_commitment_and_month() {
    let h = harness().await;
    let (status, text) = h.get("/v1/usage/focus?since=2026-11-01&until=2027-01-01", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let rows = focus_rows(&text);
    assert_eq!(rows.iter().filter(|r| is_metered(r)).count(), 20, "every record once");
    let on_demand: Money = rows
        .iter()
        .filter(|r| is_metered(r) && r["PricingCategory"] == "Standard")
        .map(|r| money(r, "BilledCost"))
        .sum();
    assert_eq!(
        on_demand,
        Money::parse_dollars("393.28").unwrap(),
        "on-demand usage is billed as metered: 4 h × $98.32"
    );
    let portfolio = cumulo_portfolio::Portfolio::demo().unwrap();
    let in_term: Vec<&str> = portfolio
        .contracts
        .iter()
        .filter(|c| {
            c.term_start() < parse_time("t", "2027-01-01").unwrap()
                && c.term_end() > parse_time("t", "2026-11-01").unwrap()
        })
        .map(|c| c.id.as_str())
        .collect();
    assert!(in_term.contains(&"aws-2025"), "{in_term:?}");
    for contract in &in_term {
        for month in ["2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"] {
            let of: Vec<_> = rows
                .iter()
                .filter(|r| r["CommitmentDiscountId"] == *contract && r["BillingPeriodStart"] == month)
                .collect();
            let purchases: Vec<_> = of.iter().filter(|r| r["ChargeCategory"] == "Purchase").collect();
            assert_eq!(purchases.len(), 1, "one Purchase row for {contract} in {month}");
            let effective: Money =
                of.iter().filter(|r| r["ChargeCategory"] == "Usage").map(|r| money(r, "EffectiveCost")).sum();
            assert_eq!(
                effective,
                money(purchases[0], "BilledCost"),
                "{contract} {month}: used + unused = the amortised commitment"
            );
            let billed: Money =
                of.iter().filter(|r| r["ChargeCategory"] == "Usage").map(|r| money(r, "BilledCost")).sum();
            assert_eq!(billed, Money::ZERO, "{contract} {month}: usage under a commitment is billed by its purchase");
        }
    }
    let used: Money = rows
        .iter()
        .filter(|r| is_metered(r) && r["CommitmentDiscountId"] == "aws-2025")
        .map(|r| money(r, "EffectiveCost"))
        .sum();
    assert_eq!(used, Money::from_dollars(960), "2 nodes × 8 h × $60 used of aws-2025");
    // filters narrow the commitment rows too
    let (_, text) = h.get("/v1/usage/focus?since=2026-11-01&until=2027-01-01&contract=aws-2025", &h.admin).await;
    let rows = focus_rows(&text);
    let purchases: Vec<&str> =
        rows.iter().filter(|r| r["ChargeCategory"] == "Purchase").map(|r| r["CommitmentDiscountId"].as_str()).collect();
    assert_eq!(purchases, vec!["aws-2025", "aws-2025"], "November and December");
    assert_eq!(rows.iter().filter(|r| is_metered(r)).count(), 16);
}

#[tokio::test]
async fn an_empty_window_is_answered_with_no_usage() {
    // Any two times the OpenAPI document allows make a request the server answers: `until` at or
    // before `since` is a window that holds nothing (schemathesis' positive_data_acceptance).
    let h = harness().await;
    let window = "since=2026-12-01&until=2026-11-01";
    let (status, text) = h.get(&format!("/v1/usage?{window}"), &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: UsageAnswer = serde_json::from_str(&text).unwrap();
    assert!(answer.rows.is_empty(), "a reversed window holds no usage: {text}");
    let (status, text) = h.get(&format!("/v1/usage/records?{window}"), &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"records\":[]"), "a reversed window holds no records: {text}");
    let (status, text) = h.get(&format!("/v1/usage/chargeback?{window}"), &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = h.get("/v1/usage/focus?since=2026-12-01&until=2026-12-01", &h.admin).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text.lines().count(), 1, "the FOCUS header alone for an empty window: {text}");
}

#[tokio::test]
async fn a_control_byte_in_a_query_parameter_is_refused_with_its_name() {
    let h = harness().await;
    let (status, text) = h.get("/v1/usage?tenant=a%0Fb", &h.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: ErrorBody = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (body.field.as_deref(), body.reason.as_str()),
        (Some("tenant"), "query parameter `tenant` holds the control byte 0x0f: expected text without control bytes")
    );
}
