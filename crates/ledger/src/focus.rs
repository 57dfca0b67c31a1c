//! FOCUS export: usage records as CSV in the FinOps Open Cost and Usage Specification's cost-and-usage
//! columns (FOCUS 1.2 column library), so FinOps tools can read Cumulo's books.
//!
//! Every column the specification marks Mandatory is written, plus the Recommended and Conditional
//! columns Cumulo has data for, plus `x_Cumulo*` custom columns (the spec's prefix for extensions).
//! Date/times are UTC `YYYY-MM-DDTHH:MM:SSZ`; decimals are plain (no currency symbol, no grouping);
//! a null is an empty field.

use cumulo_types::{CapacityKind, Money, Provider};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::Error;
use crate::commitments::CommitmentPeriod;
use crate::meter::UsageRecord;
use crate::time::{Month, format_time, secs};

/// The FOCUS version whose column library the export follows.
pub const FOCUS_VERSION: &str = "1.2";

/// The header, in output order.
pub const COLUMNS: &[&str] = &[
    // Mandatory
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    // Recommended
    "ChargeFrequency",
    "InvoiceId",
    "ServiceSubcategory",
    // Conditional
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedUnitPrice",
    "ListUnitPrice",
    "PricingCategory",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "Tags",
    // Custom
    "x_CumuloTenant",
    "x_CumuloJobId",
    "x_CumuloAttemptId",
    "x_CumuloNodeRank",
    "x_CumuloGpuModel",
    "x_CumuloGpuCount",
    "x_CumuloContract",
];

/// Account names to put in the export; by default the billing account is `cumulo-<provider>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FocusOptions {
    pub billing_account_id: Option<String>,
    pub billing_account_name: Option<String>,
    /// Commitments are exported as Purchase rows (see [`focus_commitment_rows`]): usage under a
    /// contract is then billed by those (`BilledCost` 0) and keeps its `EffectiveCost`.
    #[serde(default)]
    pub amortized_commitments: bool,
}

/// A plain decimal: `983.2`, `-0.000001`, `12`.
pub fn decimal_money(m: Money) -> String {
    let sign = if m.0 < 0 { "-" } else { "" };
    let abs = m.0.unsigned_abs();
    let frac = format!("{:06}", abs % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{sign}{}", abs / 1_000_000) } else { format!("{sign}{}.{frac}", abs / 1_000_000) }
}

/// `seconds / 3600` as a decimal rounded to nine places (hours rarely divide exactly).
pub fn decimal_hours_9(seconds: i64) -> String {
    let nano_hours = (i128::from(seconds) * 1_000_000_000 + 1800) / 3600;
    let s = format!("{}.{:09}", nano_hours / 1_000_000_000, nano_hours % 1_000_000_000);
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

fn provider_display(p: &Provider) -> String {
    match p.as_str() {
        "aws" => "AWS".into(),
        "azure" => "Microsoft".into(),
        "gcp" => "Google Cloud".into(),
        "oci" => "Oracle".into(),
        "coreweave" => "CoreWeave".into(),
        "lambda" => "Lambda".into(),
        "nebius" => "Nebius".into(),
        "local" => "Self-hosted".into(),
        other => other.to_string(),
    }
}

fn service_name(p: &Provider) -> &'static str {
    match p.as_str() {
        "aws" => "Amazon Elastic Compute Cloud",
        "azure" => "Virtual Machines",
        "gcp" => "Compute Engine",
        "oci" => "Compute",
        _ => "GPU Compute",
    }
}

/// The records as a FOCUS CSV document (header first), in the order given.
pub fn to_focus_csv<'a>(
    records: impl IntoIterator<Item = &'a UsageRecord>,
    options: &FocusOptions,
) -> Result<String, Error> {
    let mut text = focus_header();
    text.push_str(&focus_rows(records, options)?);
    Ok(text)
}

/// The FOCUS CSV header line (with its line end): the first chunk of a streamed export.
pub fn focus_header() -> String {
    csv_lines(std::iter::once(COLUMNS.iter().map(|c| c.to_string()).collect())).expect("the header is plain text")
}

/// The records as FOCUS CSV lines without the header: the next chunk of a streamed export.
pub fn focus_rows<'a>(
    records: impl IntoIterator<Item = &'a UsageRecord>,
    options: &FocusOptions,
) -> Result<String, Error> {
    csv_lines(records.into_iter().map(|r| row(r, options)))
}

fn csv_lines(rows: impl Iterator<Item = Vec<String>>) -> Result<String, Error> {
    let mut out = csv::WriterBuilder::new().from_writer(Vec::new());
    for row in rows {
        debug_assert_eq!(row.len(), COLUMNS.len());
        out.write_record(&row).map_err(|e| Error::Focus(e.to_string()))?;
    }
    let bytes = out.into_inner().map_err(|e| Error::Focus(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Error::Focus(e.to_string()))
}

/// `SkuMeter`: what the SKU's usage is measured in.
fn sku_meter(r: &UsageRecord) -> &'static str {
    if r.gpus > 0 { "GPU Node Hours" } else { "Node Hours" }
}

/// `SkuPriceDetails`: the properties of the node-hour that the price is for, as a JSON object.
fn sku_price_details(r: &UsageRecord) -> String {
    let mut details = serde_json::json!({
        "x_NodeType": r.node_type,
        "x_GpuCount": r.gpus,
        "x_CapacityKind": r.capacity.to_string(),
    });
    if let Some(gpu) = r.gpu {
        details["x_GpuModel"] = serde_json::Value::from(gpu.name());
    }
    details.to_string()
}

fn row(r: &UsageRecord, options: &FocusOptions) -> Vec<String> {
    let month = Month::containing(r.start);
    let account_id = options.billing_account_id.clone().unwrap_or_else(|| format!("cumulo-{}", r.provider));
    let account_name =
        options.billing_account_name.clone().unwrap_or_else(|| format!("Cumulo {}", provider_display(&r.provider)));
    let hours = decimal_hours_9(secs(r.stop) - secs(r.start));
    let (pricing_category, contracted_unit_price, contracted_cost) = match r.capacity {
        // The contract's rate is a commitment discount off list: contracted = list, effective = paid.
        CapacityKind::Contract => ("Committed", r.list_rate, r.list_cost),
        CapacityKind::OnDemand => ("Standard", r.rate, r.cost),
        CapacityKind::Spot => ("Dynamic", r.rate, r.cost),
    };
    let contract = r.contract.clone().unwrap_or_default();
    let committed = r.contract.is_some();
    let gpu = r.gpu.map(|g| g.name().to_string()).unwrap_or_default();
    let description = match r.gpu {
        Some(g) => format!("{} node ({} x {g}) in {}, {}", r.node_type, r.gpus, r.region, held(r)),
        None => format!("{} node in {}, {}", r.node_type, r.region, held(r)),
    };
    let resource_id =
        r.resource_id.clone().unwrap_or_else(|| format!("cumulo:attempt/{}/node/{}", r.attempt, r.node_rank));
    let mut price_id = format!("{}:{}:{}", r.provider, r.node_type, r.capacity);
    if let Some(c) = &r.contract {
        price_id.push(':');
        price_id.push_str(c);
    }
    price_id.push(':');
    price_id.push_str(&format_time(r.price_from));
    let tags = serde_json::json!({
        "cumulo.tenant": r.tenant,
        "cumulo.job": r.job().to_string(),
        "cumulo.attempt": r.attempt.to_string(),
    })
    .to_string();
    let if_committed = |s: &str| if committed { s.to_string() } else { String::new() };
    let billed = if committed && options.amortized_commitments { Money::ZERO } else { r.cost };
    vec![
        decimal_money(billed),
        account_id,
        account_name,
        "USD".into(),
        format_time(month.end()),
        format_time(month.start()),
        "Usage".into(),
        String::new(),
        description,
        format_time(r.stop),
        format_time(r.start),
        decimal_money(contracted_cost),
        decimal_money(r.cost),
        provider_display(&r.provider),
        decimal_money(r.list_cost),
        hours.clone(),
        "Hours".into(),
        provider_display(&r.provider),
        provider_display(&r.provider),
        "Compute".into(),
        service_name(&r.provider).into(),
        "Usage-Based".into(),
        format!("cumulo-{}-{month}", r.provider),
        "Virtual Machines".into(),
        if_committed("Spend"),
        contract.clone(),
        contract,
        // a spend commitment is measured in money: this row consumed its cost of it
        if committed { decimal_money(r.cost) } else { String::new() },
        if_committed("Used"),
        if_committed("Committed Spend Contract"),
        if_committed("USD"),
        hours,
        "Hours".into(),
        decimal_money(contracted_unit_price),
        decimal_money(r.list_rate),
        pricing_category.into(),
        r.region.clone(),
        r.region.clone(),
        resource_id.clone(),
        resource_id,
        "Virtual Machine".into(),
        format!("{}:{}", r.provider, r.node_type),
        sku_meter(r).into(),
        sku_price_details(r),
        price_id,
        tags,
        r.tenant.clone(),
        r.job().to_string(),
        r.attempt.to_string(),
        r.node_rank.to_string(),
        gpu,
        r.gpus.to_string(),
        r.contract.clone().unwrap_or_default(),
    ]
}

/// Two kinds of rows per contract and month: a `Purchase` row billing the amortised commitment
/// (`EffectiveCost` 0: the usage rows carry it), and, when some of it went unused, a `Usage` row
/// with `CommitmentDiscountStatus` `Unused` whose `EffectiveCost` is that remainder. Per contract
/// and month, the `EffectiveCost` of its usage rows (used and unused) is the amortised commitment,
/// or the usage when it ran ahead of it. Export usage rows with `amortized_commitments` beside these.
pub fn focus_commitment_rows(periods: &[CommitmentPeriod], options: &FocusOptions) -> Result<String, Error> {
    let mut rows = Vec::new();
    for p in periods {
        rows.push(commitment_row(p, options, CommitmentRow::Purchase));
        if p.unused > Money::ZERO {
            rows.push(commitment_row(p, options, CommitmentRow::Unused));
        }
    }
    csv_lines(rows.into_iter())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CommitmentRow {
    Purchase,
    Unused,
}

fn commitment_row(p: &CommitmentPeriod, options: &FocusOptions, kind: CommitmentRow) -> Vec<String> {
    let provider = provider_display(&p.provider);
    let idle_hours: i64 = p.idle.iter().map(|i| i.idle_node_seconds).sum();
    let (category, frequency, status, billed, effective, description) = match kind {
        CommitmentRow::Purchase => (
            "Purchase",
            "Recurring",
            "",
            p.amortized,
            Money::ZERO,
            format!("committed spend {} for {}, amortised over the term", p.contract, p.month),
        ),
        CommitmentRow::Unused => (
            "Usage",
            "Usage-Based",
            "Unused",
            Money::ZERO,
            p.unused,
            format!(
                "unused commitment {} in {} ({} idle committed node-hours)",
                p.contract,
                p.month,
                decimal_hours_9(idle_hours)
            ),
        ),
    };
    let amount = if kind == CommitmentRow::Purchase { p.amortized } else { p.unused };
    let values: BTreeMap<&str, String> = BTreeMap::from([
        ("BilledCost", decimal_money(billed)),
        ("BillingAccountId", options.billing_account_id.clone().unwrap_or_else(|| format!("cumulo-{}", p.provider))),
        ("BillingAccountName", options.billing_account_name.clone().unwrap_or_else(|| format!("Cumulo {provider}"))),
        ("BillingCurrency", "USD".into()),
        ("BillingPeriodEnd", format_time(p.month.end())),
        ("BillingPeriodStart", format_time(p.month.start())),
        ("ChargeCategory", category.into()),
        ("ChargeDescription", description),
        ("ChargePeriodEnd", format_time(p.end)),
        ("ChargePeriodStart", format_time(p.start)),
        ("ContractedCost", decimal_money(billed)),
        ("EffectiveCost", decimal_money(effective)),
        ("InvoiceIssuerName", provider.clone()),
        ("ListCost", decimal_money(billed)),
        ("ProviderName", provider.clone()),
        ("PublisherName", provider.clone()),
        ("ServiceCategory", "Compute".into()),
        ("ServiceName", service_name(&p.provider).into()),
        // FOCUS: one ServiceSubcategory per ServiceName, and never null; the usage rows' one
        ("ServiceSubcategory", "Virtual Machines".into()),
        ("ChargeFrequency", frequency.into()),
        ("InvoiceId", format!("cumulo-{}-{}", p.provider, p.month)),
        ("CommitmentDiscountCategory", "Spend".into()),
        ("CommitmentDiscountId", p.contract.clone()),
        ("CommitmentDiscountName", p.contract.clone()),
        ("CommitmentDiscountQuantity", decimal_money(amount)),
        ("CommitmentDiscountStatus", status.into()),
        ("CommitmentDiscountType", "Committed Spend Contract".into()),
        ("CommitmentDiscountUnit", "USD".into()),
        ("PricingCategory", if kind == CommitmentRow::Purchase { "Standard" } else { "Committed" }.into()),
        ("SkuId", format!("{}:commitment:{}", p.provider, p.contract)),
        ("SkuMeter", "Committed Spend".into()),
        ("SkuPriceId", format!("{}:commitment:{}:{}", p.provider, p.contract, p.month)),
        ("x_CumuloContract", p.contract.clone()),
    ]);
    COLUMNS.iter().map(|c| values.get(c).cloned().unwrap_or_default()).collect()
}

fn held(r: &UsageRecord) -> String {
    match &r.contract {
        Some(c) => format!("contract {c} at {}/node-hour", r.rate),
        None => format!("{} at {}/node-hour", r.capacity, r.rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain() {
        assert_eq!(decimal_money(Money::parse_dollars("983.20").unwrap()), "983.2");
        assert_eq!(decimal_money(Money(-1)), "-0.000001");
        assert_eq!(decimal_money(Money::from_dollars(12)), "12");
        assert_eq!(decimal_hours_9(5400), "1.5");
        assert_eq!(decimal_hours_9(1), "0.000277778");
    }
}
