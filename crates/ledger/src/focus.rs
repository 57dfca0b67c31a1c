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
use crate::time::{Month, Timestamp, format_time, push_time};

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
    let mut out = String::new();
    push_money(&mut out, m);
    out
}

/// Appends [`decimal_money`] to `out`.
fn push_money(out: &mut String, m: Money) {
    if m.0 < 0 {
        out.push('-');
    }
    let abs = m.0.unsigned_abs();
    push_u64(out, abs / 1_000_000);
    push_fraction(out, abs % 1_000_000, 6);
}

/// `seconds / 3600` as a decimal rounded to nine places (hours rarely divide exactly).
pub fn decimal_hours_9(seconds: i64) -> String {
    let mut out = String::new();
    push_hours_9(&mut out, seconds);
    out
}

/// Appends [`decimal_hours_9`] to `out`.
fn push_hours_9(out: &mut String, seconds: i64) {
    let nano_hours = (i128::from(seconds) * 1_000_000_000 + 1800) / 3600;
    if nano_hours < 0 {
        out.push('-');
    }
    let abs = nano_hours.unsigned_abs();
    push_u64(out, u64::try_from(abs / 1_000_000_000).unwrap_or(u64::MAX));
    push_fraction(out, (abs % 1_000_000_000) as u64, 9);
}

/// Appends `.digits` (`places` wide, trailing zeros dropped), or nothing for a zero fraction.
fn push_fraction(out: &mut String, frac: u64, places: u32) {
    if frac == 0 {
        return;
    }
    let (mut frac, mut places) = (frac, places);
    while frac % 10 == 0 {
        frac /= 10;
        places -= 1;
    }
    out.push('.');
    let mut digits = [b'0'; 20];
    let mut i = places as usize;
    while i > 0 {
        i -= 1;
        digits[i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.push_str(std::str::from_utf8(&digits[..places as usize]).expect("ASCII digits"));
}

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let (mut n, mut i) = (n, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

fn provider_display(p: &Provider) -> &str {
    match p.as_str() {
        "aws" => "AWS",
        "azure" => "Microsoft",
        "gcp" => "Google Cloud",
        "oci" => "Oracle",
        "coreweave" => "CoreWeave",
        "lambda" => "Lambda",
        "nebius" => "Nebius",
        "local" => "Self-hosted",
        other => other,
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
    write_focus_rows(&mut text, records, options);
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
    let mut text = String::new();
    write_focus_rows(&mut text, records, options);
    Ok(text)
}

/// Appends the records' FOCUS CSV lines (no header) to `out`, in the order given: what
/// [`focus_rows`] returns, written straight into one buffer (an export streams millions of rows).
pub fn write_focus_rows<'a>(
    out: &mut String,
    records: impl IntoIterator<Item = &'a UsageRecord>,
    options: &FocusOptions,
) {
    let mut line = CsvLine { out, scratch: String::with_capacity(256), first: true };
    let mut month = MonthText::default();
    for r in records {
        usage_row(&mut line, &mut month, r, options);
    }
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

/// One CSV line being written into a shared buffer, quoted as the `csv` crate quotes (a field
/// holding `,`, `"`, CR or LF is put in quotes with its quotes doubled), so the bytes are those
/// `csv::Writer` writes.
struct CsvLine<'o> {
    out: &'o mut String,
    /// A field being composed before it is quoted.
    scratch: String,
    first: bool,
}

impl CsvLine<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    /// A field of any text.
    fn text(&mut self, value: &str) {
        self.separate();
        push_quoted(self.out, value);
    }

    /// A field composed by `write` (it may hold any text).
    fn composed(&mut self, write: impl FnOnce(&mut String)) {
        self.separate();
        self.scratch.clear();
        write(&mut self.scratch);
        push_quoted(self.out, &self.scratch);
    }

    /// A field written by `write` that never needs quotes (numbers, times, fixed words).
    fn plain(&mut self, write: impl FnOnce(&mut String)) {
        self.separate();
        write(self.out);
    }

    /// A fixed word or a provider name: text that never holds a delimiter, a quote or a line break,
    /// so it is written without the scan.
    fn word(&mut self, value: &str) {
        debug_assert!(!needs_quotes(value), "{value:?} needs quotes");
        self.separate();
        self.out.push_str(value);
    }

    /// A field composed by `write`, quoted when `quoted` (the caller checked the parts of it that
    /// may need quotes, its user text), else written straight into the line: saves the scan of the
    /// whole field and its copy.
    fn composed_when(&mut self, quoted: bool, write: impl FnOnce(&mut String)) {
        if quoted {
            self.composed(write);
        } else {
            self.plain(write);
        }
    }

    /// A field that always needs quotes (a JSON object, a text holding `, `), composed by `write`
    /// straight into the line between quotes, its own quotes doubled as they are written.
    fn quoted(&mut self, write: impl FnOnce(&mut Quoted)) {
        self.separate();
        self.out.push('"');
        write(&mut Quoted { out: self.out });
        self.out.push('"');
    }

    fn money(&mut self, m: Money) {
        self.plain(|out| push_money(out, m));
    }

    fn time(&mut self, t: Timestamp) {
        self.plain(|out| push_time(out, t));
    }

    fn end(&mut self) {
        self.out.push('\n');
        self.first = true;
    }
}

/// Whether `value` as a CSV field must be quoted: it holds a delimiter, a quote or a line break.
fn needs_quotes(value: &str) -> bool {
    value.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// Appends `value` as a CSV field: as is, or quoted with its quotes doubled when it holds a
/// delimiter, a quote or a line break.
fn push_quoted(out: &mut String, value: &str) {
    if !needs_quotes(value) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for (i, part) in value.split('"').enumerate() {
        if i > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
    out.push('"');
}

/// Text being written inside a quoted CSV field: every `"` of it goes out doubled.
struct Quoted<'o> {
    out: &'o mut String,
}

impl Quoted<'_> {
    /// Text without a quote (`{`, `:`, fixed words, provider names).
    fn raw(&mut self, text: &str) {
        debug_assert!(!text.contains('"'));
        self.out.push_str(text);
    }

    /// Text without a quote written by `write` (numbers, amounts).
    fn raw_with(&mut self, write: impl FnOnce(&mut String)) {
        write(self.out);
    }

    /// Any text (user text): its quotes doubled.
    fn free(&mut self, text: &str) {
        if text.contains('"') {
            push_doubling_quotes(self.out, text);
        } else {
            self.out.push_str(text);
        }
    }

    /// A key (or a string value) Cumulo writes itself: plain text, no escapes.
    fn key(&mut self, key: &str) {
        debug_assert!(!needs_json_escape(key));
        self.out.push_str("\"\"");
        self.out.push_str(key);
        self.out.push_str("\"\"");
    }

    /// A string value of any text, escaped as `serde_json` writes it.
    fn string(&mut self, value: &str) {
        if needs_json_escape(value) {
            push_doubling_quotes(self.out, &serde_json::Value::from(value).to_string());
        } else {
            self.key(value);
        }
    }

    fn number(&mut self, n: u64) {
        push_u64(self.out, n);
    }

    /// A string value written by `write` (digits and dots: no escapes).
    fn string_of(&mut self, write: impl FnOnce(&mut String)) {
        self.out.push_str("\"\"");
        write(self.out);
        self.out.push_str("\"\"");
    }
}

/// Whether `value` as a JSON string needs escapes (a quote, a backslash, a control character).
fn needs_json_escape(value: &str) -> bool {
    value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `text` with each `"` doubled (the inside of a quoted CSV field).
fn push_doubling_quotes(out: &mut String, text: &str) {
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
}

/// The billing period columns of the month last written, kept while rows stay in that month.
#[derive(Default)]
struct MonthText {
    month: Option<Month>,
    start: String,
    end: String,
    name: String,
}

impl MonthText {
    fn of(&mut self, t: Timestamp) -> &MonthText {
        let month = Month::containing(t);
        if self.month != Some(month) {
            self.month = Some(month);
            self.start.clear();
            push_time(&mut self.start, month.start());
            self.end.clear();
            push_time(&mut self.end, month.end());
            self.name = month.to_string();
        }
        self
    }
}

/// `SkuMeter`: what the SKU's usage is measured in.
fn sku_meter(r: &UsageRecord) -> &'static str {
    if r.gpus > 0 { "GPU Node Hours" } else { "Node Hours" }
}

/// `SkuPriceDetails`: the properties of the node-hour that the price is for, as a JSON object
/// (keys sorted, as `serde_json` writes a map).
fn push_sku_price_details(json: &mut Quoted, r: &UsageRecord) {
    json.raw("{");
    json.key("x_CapacityKind");
    json.raw(":");
    json.key(r.capacity.as_str());
    json.raw(",");
    json.key("x_GpuCount");
    json.raw(":");
    json.number(u64::from(r.gpus));
    if let Some(gpu) = r.gpu {
        json.raw(",");
        json.key("x_GpuModel");
        json.raw(":");
        json.key(gpu.name());
    }
    json.raw(",");
    json.key("x_NodeType");
    json.raw(":");
    json.string(&r.node_type);
    json.raw("}");
}

/// `Tags`: the record's tenant, job and attempt as a JSON object (keys sorted).
fn push_tags(json: &mut Quoted, r: &UsageRecord) {
    json.raw("{");
    json.key("cumulo.attempt");
    json.raw(":");
    json.string_of(|s| push_attempt(s, r));
    json.raw(",");
    json.key("cumulo.job");
    json.raw(":");
    json.string_of(|s| push_u64(s, r.job().0));
    json.raw(",");
    json.key("cumulo.tenant");
    json.raw(":");
    json.string(&r.tenant);
    json.raw("}");
}

/// `JOB.N`, as `AttemptId` displays.
fn push_attempt(out: &mut String, r: &UsageRecord) {
    push_u64(out, r.attempt.job.0);
    out.push('.');
    push_u64(out, u64::from(r.attempt.attempt));
}

/// The prices of a usage row: how the capacity was held decides which rate is contracted.
struct RowPrices {
    pricing_category: &'static str,
    contracted_unit_price: Money,
    contracted_cost: Money,
}

impl RowPrices {
    fn of(r: &UsageRecord) -> RowPrices {
        let (pricing_category, contracted_unit_price, contracted_cost) = match r.capacity {
            // The contract's rate is a commitment discount off list: contracted = list, effective = paid.
            CapacityKind::Contract => ("Committed", r.list_rate, r.list_cost),
            CapacityKind::OnDemand => ("Standard", r.rate, r.cost),
            CapacityKind::Spot => ("Dynamic", r.rate, r.cost),
        };
        RowPrices { pricing_category, contracted_unit_price, contracted_cost }
    }
}

/// One usage record's line, in [`COLUMNS`] order.
fn usage_row(line: &mut CsvLine, month: &mut MonthText, r: &UsageRecord, options: &FocusOptions) {
    let month = month.of(r.start);
    let provider = provider_display(&r.provider);
    let prices = RowPrices::of(r);
    let committed = r.contract.is_some();
    let billed = if committed && options.amortized_commitments { Money::ZERO } else { r.cost };
    line.money(billed);
    match &options.billing_account_id {
        Some(id) => line.text(id),
        None => line.plain(|s| {
            s.push_str("cumulo-");
            s.push_str(r.provider.as_str());
        }),
    }
    match &options.billing_account_name {
        Some(name) => line.text(name),
        None => line.plain(|s| {
            s.push_str("Cumulo ");
            s.push_str(provider);
        }),
    }
    line.word("USD");
    line.word(&month.end);
    line.word(&month.start);
    line.word("Usage");
    line.word("");
    line.quoted(|q| push_description(q, r));
    line.time(r.stop);
    line.time(r.start);
    line.money(prices.contracted_cost);
    line.money(r.cost);
    line.word(provider);
    line.money(r.list_cost);
    line.plain(|s| push_hours_9(s, r.seconds()));
    line.word("Hours");
    line.word(provider);
    line.word(provider);
    line.word("Compute");
    line.word(service_name(&r.provider));
    line.word("Usage-Based");
    line.plain(|s| {
        s.push_str("cumulo-");
        s.push_str(r.provider.as_str());
        s.push('-');
        s.push_str(&month.name);
    });
    line.word("Virtual Machines");
    commitment_columns(line, r);
    line.plain(|s| push_hours_9(s, r.seconds()));
    line.word("Hours");
    line.money(prices.contracted_unit_price);
    line.money(r.list_rate);
    line.word(prices.pricing_category);
    line.text(&r.region);
    line.text(&r.region);
    resource_and_sku_columns(line, r);
    custom_columns(line, r);
    line.end();
}

/// Whether any of `parts` (user text) would need quotes as a CSV field.
fn any_needs_quotes(parts: &[&str]) -> bool {
    parts.iter().any(|part| needs_quotes(part))
}

/// `CommitmentDiscountCategory` to `CommitmentDiscountUnit`: filled for contract usage only.
fn commitment_columns(line: &mut CsvLine, r: &UsageRecord) {
    let Some(contract) = &r.contract else {
        (0..7).for_each(|_| line.word(""));
        return;
    };
    line.word("Spend");
    line.text(contract);
    line.text(contract);
    // a spend commitment is measured in money: this row consumed its cost of it
    line.money(r.cost);
    line.word("Used");
    line.word("Committed Spend Contract");
    line.word("USD");
}

/// `ResourceId` to `Tags`.
fn resource_and_sku_columns(line: &mut CsvLine, r: &UsageRecord) {
    match &r.resource_id {
        Some(id) => {
            line.text(id);
            line.text(id);
        }
        None => {
            let resource_id = |s: &mut String| {
                s.push_str("cumulo:attempt/");
                push_attempt(s, r);
                s.push_str("/node/");
                push_u64(s, u64::from(r.node_rank));
            };
            line.plain(resource_id);
            line.plain(resource_id);
        }
    }
    line.word("Virtual Machine");
    let node_type_quoted = needs_quotes(&r.node_type);
    line.composed_when(node_type_quoted, |s| {
        s.push_str(r.provider.as_str());
        s.push(':');
        s.push_str(&r.node_type);
    });
    line.word(sku_meter(r));
    line.quoted(|json| push_sku_price_details(json, r));
    let price_id_quoted = node_type_quoted || any_needs_quotes(&[r.contract.as_deref().unwrap_or_default()]);
    line.composed_when(price_id_quoted, |s| {
        s.push_str(r.provider.as_str());
        s.push(':');
        s.push_str(&r.node_type);
        s.push(':');
        s.push_str(r.capacity.as_str());
        if let Some(c) = &r.contract {
            s.push(':');
            s.push_str(c);
        }
        s.push(':');
        push_money(s, r.rate);
        s.push(':');
        push_time(s, r.price_from);
    });
    line.quoted(|json| push_tags(json, r));
}

/// The `x_Cumulo*` columns.
fn custom_columns(line: &mut CsvLine, r: &UsageRecord) {
    line.text(&r.tenant);
    line.plain(|s| push_u64(s, r.job().0));
    line.plain(|s| push_attempt(s, r));
    line.plain(|s| push_u64(s, u64::from(r.node_rank)));
    line.word(r.gpu.map_or("", |g| g.name()));
    line.plain(|s| push_u64(s, u64::from(r.gpus)));
    line.text(r.contract.as_deref().unwrap_or_default());
}

/// `ChargeDescription`: `p5.48xlarge node (8 x H100) in us-east-1, contract aws-2026 at $60.00/node-hour`
/// (it holds `, `, so it is always quoted).
fn push_description(q: &mut Quoted, r: &UsageRecord) {
    q.free(&r.node_type);
    q.raw(" node ");
    if let Some(g) = r.gpu {
        q.raw("(");
        q.raw_with(|s| push_u64(s, u64::from(r.gpus)));
        q.raw(" x ");
        q.raw(g.name());
        q.raw(") ");
    }
    q.raw("in ");
    q.free(&r.region);
    q.raw(", ");
    match &r.contract {
        Some(c) => {
            q.raw("contract ");
            q.free(c);
        }
        None => q.raw(r.capacity.as_str()),
    }
    q.raw(" at ");
    q.raw_with(|s| push_money_display(s, r.rate));
    q.raw("/node-hour");
}

/// Appends `m` as `Money` displays it (`$1,234.50`: grouped, cents at least), without the
/// formatter's allocations.
fn push_money_display(out: &mut String, m: Money) {
    if m.0 < 0 {
        out.push('-');
    }
    out.push('$');
    let abs = m.0.unsigned_abs();
    let mut digits = [0u8; 20];
    let (mut whole, mut i) = (abs / 1_000_000, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    let digits = &digits[i..];
    for (at, digit) in digits.iter().enumerate() {
        if at > 0 && (digits.len() - at).is_multiple_of(3) {
            out.push(',');
        }
        out.push(char::from(*digit));
    }
    out.push('.');
    let mut frac = [0u8; 6];
    let mut rest = abs % 1_000_000;
    for place in frac.iter_mut().rev() {
        *place = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut width = 6;
    while width > 2 && frac[width - 1] == b'0' {
        width -= 1;
    }
    out.push_str(std::str::from_utf8(&frac[..width]).expect("ASCII digits"));
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
    let provider = provider_display(&p.provider).to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{at, secs};
    use cumulo_types::{AttemptId, GpuModel, JobId};
    use proptest::prelude::*;

    #[test]
    fn decimals_are_plain() {
        assert_eq!(decimal_money(Money::parse_dollars("983.20").unwrap()), "983.2");
        assert_eq!(decimal_money(Money(-1)), "-0.000001");
        assert_eq!(decimal_money(Money::from_dollars(12)), "12");
        assert_eq!(decimal_money(Money::ZERO), "0");
        assert_eq!(decimal_money(Money(i64::MIN)), "-9223372036854.775808");
        assert_eq!(decimal_hours_9(5400), "1.5");
        assert_eq!(decimal_hours_9(1), "0.000277778");
        assert_eq!(decimal_hours_9(0), "0");
        assert_eq!(decimal_hours_9(3600 * 1_000_000), "1000000");
    }

    /// The decimals as they were first written, with `format!`: the fast ones must match them.
    fn reference_money(m: Money) -> String {
        let sign = if m.0 < 0 { "-" } else { "" };
        let abs = m.0.unsigned_abs();
        let frac = format!("{:06}", abs % 1_000_000);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() { format!("{sign}{}", abs / 1_000_000) } else { format!("{sign}{}.{frac}", abs / 1_000_000) }
    }

    fn reference_hours_9(seconds: i64) -> String {
        let nano_hours = (i128::from(seconds) * 1_000_000_000 + 1800) / 3600;
        let s = format!("{}.{:09}", nano_hours / 1_000_000_000, nano_hours % 1_000_000_000);
        let s = s.trim_end_matches('0');
        s.strip_suffix('.').unwrap_or(s).to_string()
    }

    /// A usage row as first written: every field a `String`, JSON through `serde_json::json!`, the
    /// line through `csv::Writer`. The streamed writer must produce the same bytes.
    fn reference_row(r: &UsageRecord, options: &FocusOptions) -> Vec<String> {
        let month = Month::containing(r.start);
        let account_id = options.billing_account_id.clone().unwrap_or_else(|| format!("cumulo-{}", r.provider));
        let provider = provider_display(&r.provider).to_string();
        let account_name = options.billing_account_name.clone().unwrap_or_else(|| format!("Cumulo {provider}"));
        let hours = reference_hours_9(secs(r.stop) - secs(r.start));
        let (pricing_category, contracted_unit_price, contracted_cost) = match r.capacity {
            CapacityKind::Contract => ("Committed", r.list_rate, r.list_cost),
            CapacityKind::OnDemand => ("Standard", r.rate, r.cost),
            CapacityKind::Spot => ("Dynamic", r.rate, r.cost),
        };
        let contract = r.contract.clone().unwrap_or_default();
        let committed = r.contract.is_some();
        let held = match &r.contract {
            Some(c) => format!("contract {c} at {}/node-hour", r.rate),
            None => format!("{} at {}/node-hour", r.capacity, r.rate),
        };
        let description = match r.gpu {
            Some(g) => format!("{} node ({} x {g}) in {}, {held}", r.node_type, r.gpus, r.region),
            None => format!("{} node in {}, {held}", r.node_type, r.region),
        };
        let resource_id =
            r.resource_id.clone().unwrap_or_else(|| format!("cumulo:attempt/{}/node/{}", r.attempt, r.node_rank));
        let mut price_id = format!("{}:{}:{}", r.provider, r.node_type, r.capacity);
        if let Some(c) = &r.contract {
            price_id.push(':');
            price_id.push_str(c);
        }
        price_id.push(':');
        price_id.push_str(&decimal_money(r.rate));
        price_id.push(':');
        price_id.push_str(&format_time(r.price_from));
        let mut details = serde_json::json!({
            "x_NodeType": r.node_type,
            "x_GpuCount": r.gpus,
            "x_CapacityKind": r.capacity.to_string(),
        });
        if let Some(gpu) = r.gpu {
            details["x_GpuModel"] = serde_json::Value::from(gpu.name());
        }
        let tags = serde_json::json!({
            "cumulo.tenant": r.tenant,
            "cumulo.job": r.job().to_string(),
            "cumulo.attempt": r.attempt.to_string(),
        });
        let if_committed = |s: &str| if committed { s.to_string() } else { String::new() };
        let billed = if committed && options.amortized_commitments { Money::ZERO } else { r.cost };
        vec![
            reference_money(billed),
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
            reference_money(contracted_cost),
            reference_money(r.cost),
            provider.clone(),
            reference_money(r.list_cost),
            hours.clone(),
            "Hours".into(),
            provider.clone(),
            provider.clone(),
            "Compute".into(),
            service_name(&r.provider).into(),
            "Usage-Based".into(),
            format!("cumulo-{}-{month}", r.provider),
            "Virtual Machines".into(),
            if_committed("Spend"),
            contract.clone(),
            contract,
            if committed { reference_money(r.cost) } else { String::new() },
            if_committed("Used"),
            if_committed("Committed Spend Contract"),
            if_committed("USD"),
            hours,
            "Hours".into(),
            reference_money(contracted_unit_price),
            reference_money(r.list_rate),
            pricing_category.into(),
            r.region.clone(),
            r.region.clone(),
            resource_id.clone(),
            resource_id,
            "Virtual Machine".into(),
            format!("{}:{}", r.provider, r.node_type),
            sku_meter(r).into(),
            details.to_string(),
            price_id,
            tags.to_string(),
            r.tenant.clone(),
            r.job().to_string(),
            r.attempt.to_string(),
            r.node_rank.to_string(),
            r.gpu.map(|g| g.name().to_string()).unwrap_or_default(),
            r.gpus.to_string(),
            r.contract.clone().unwrap_or_default(),
        ]
    }

    /// Text with every character CSV and JSON treat specially.
    fn awkward_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9 ,\"\\\\\n\r\t\u{1}é€-]{0,12}").unwrap()
    }

    fn record() -> impl Strategy<Value = (UsageRecord, FocusOptions)> {
        let text = (awkward_text(), awkward_text(), awkward_text(), awkward_text(), awkward_text());
        let capacity =
            prop_oneof![Just(CapacityKind::Contract), Just(CapacityKind::OnDemand), Just(CapacityKind::Spot)];
        let provider = prop_oneof![Just("aws"), Just("gcp"), Just("lambda"), Just("my-slurm")];
        let numbers = (0u64..u64::MAX, 0u32..5, 0u32..64, -2_000_000_000i64..4_000_000_000, 1i64..100_000);
        let money = (any::<i64>(), 0i64..1_000_000_000, any::<i64>(), -5i64..1_000_000_000_000);
        let options = (proptest::option::of(awkward_text()), proptest::option::of(awkward_text()), any::<bool>());
        let parts = (text, capacity, provider, numbers, money, options, 0usize..40, any::<bool>(), any::<bool>());
        parts.prop_map(|(text, capacity, provider, numbers, money, options, gpu, contract, resource)| {
            let (tenant, region, node_type, contract_id, resource_id) = text;
            let (job, attempt, node_rank, start, seconds) = numbers;
            let (rate, list_rate, cost, list_cost) = money;
            let record = UsageRecord {
                attempt: AttemptId { job: JobId(job), attempt },
                node_rank,
                start: at(start),
                stop: at(start + seconds),
                tenant,
                provider: Provider::new(provider).unwrap(),
                region,
                node_type,
                gpu: GpuModel::ALL.get(gpu).copied(),
                gpus: node_rank % 9,
                capacity,
                contract: contract.then_some(contract_id),
                rate: Money(rate),
                list_rate: Money(list_rate),
                price_from: at(start - 86_400),
                cost: Money(cost),
                list_cost: Money(list_cost),
                resource_id: resource.then_some(resource_id),
            };
            let (billing_account_id, billing_account_name, amortized_commitments) = options;
            (record, FocusOptions { billing_account_id, billing_account_name, amortized_commitments })
        })
    }

    proptest! {
        #[test]
        fn streamed_rows_are_the_bytes_csv_writes((r, options) in record()) {
            let expected = csv_lines(std::iter::once(reference_row(&r, &options))).unwrap();
            let streamed = focus_rows([&r], &options).unwrap();
            prop_assert_eq!(streamed, expected);
        }

        #[test]
        fn amounts_in_descriptions_are_as_money_displays(micros in any::<i64>()) {
            let mut written = String::new();
            push_money_display(&mut written, Money(micros));
            prop_assert_eq!(written, Money(micros).to_string());
        }

        #[test]
        fn decimals_match_their_first_form(micros in any::<i64>(), seconds in -10_000_000i64..1_000_000_000_000) {
            prop_assert_eq!(decimal_money(Money(micros)), reference_money(Money(micros)));
            prop_assert_eq!(decimal_hours_9(seconds.max(0)), reference_hours_9(seconds.max(0)));
        }
    }

    #[test]
    fn words_written_without_the_quote_scan_need_no_quotes() {
        // `CsvLine::word` and `Quoted::key` write these as they are
        for gpu in GpuModel::ALL {
            assert!(!needs_quotes(gpu.name()) && !needs_json_escape(gpu.name()), "{gpu:?}");
        }
        for capacity in [CapacityKind::Contract, CapacityKind::OnDemand, CapacityKind::Spot] {
            assert!(!needs_quotes(capacity.as_str()) && !needs_json_escape(capacity.as_str()), "{capacity:?}");
        }
        for provider in ["aws", "azure", "gcp", "oci", "coreweave", "lambda", "nebius", "local", "my-slurm-2"] {
            let provider = Provider::new(provider).unwrap();
            assert!(!needs_quotes(provider_display(&provider)) && !needs_quotes(service_name(&provider)));
        }
        assert!(Provider::new("a,b").is_err() && Provider::new("a\"b").is_err(), "provider names are plain");
    }

    #[test]
    fn rows_of_several_records_and_months_follow_each_other() {
        let mut rows = Vec::new();
        let mut records = Vec::new();
        for (i, start) in ["2026-11-30T23:00:00Z", "2026-12-01T00:00:00Z", "2027-01-31T23:00:00Z"].iter().enumerate() {
            let start = crate::time::parse_time("t", start).unwrap();
            let r = UsageRecord {
                attempt: AttemptId { job: JobId(7), attempt: 1 },
                node_rank: i as u32,
                start,
                stop: start + chrono::Duration::seconds(3600),
                tenant: "research".into(),
                provider: Provider::new("aws").unwrap(),
                region: "us-east-1".into(),
                node_type: "p5.48xlarge".into(),
                gpu: Some(GpuModel::H100),
                gpus: 8,
                capacity: CapacityKind::OnDemand,
                contract: None,
                rate: Money::parse_dollars("98.32").unwrap(),
                list_rate: Money::parse_dollars("98.32").unwrap(),
                price_from: start,
                cost: Money::parse_dollars("98.32").unwrap(),
                list_cost: Money::parse_dollars("98.32").unwrap(),
                resource_id: None,
            };
            rows.push(reference_row(&r, &FocusOptions::default()));
            records.push(r);
        }
        let expected = csv_lines(rows.into_iter()).unwrap();
        assert_eq!(focus_rows(&records, &FocusOptions::default()).unwrap(), expected);
        assert!(expected.contains("2026-11-01T00:00:00Z") && expected.contains("2027-01-01T00:00:00Z"));
    }
}
