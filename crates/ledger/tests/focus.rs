//! The FOCUS export checked against the specification's column requirements: every Mandatory column of
//! the FOCUS 1.2 column library is present, and every value has the column's type, nullability and
//! allowed values. The table below is transcribed from the specification (column id, feature level,
//! data type, allows nulls), independently of the exporter's own column list.

mod common;

use std::collections::BTreeMap;

use common::{Obs, book, usd};
use cumulo_ledger::{FocusOptions, Ledger, to_focus_csv};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Type {
    Decimal,
    DateTime,
    Currency,
    String,
    Json,
    Allowed(&'static [&'static str]),
}

/// FOCUS 1.2 cost-and-usage columns: (id, mandatory?, type, allows nulls). Mandatory ones first.
const SPEC: &[(&str, bool, Type, bool)] = &[
    ("BilledCost", true, Type::Decimal, false),
    ("BillingAccountId", true, Type::String, false),
    ("BillingAccountName", true, Type::String, true),
    ("BillingCurrency", true, Type::Currency, false),
    ("BillingPeriodEnd", true, Type::DateTime, false),
    ("BillingPeriodStart", true, Type::DateTime, false),
    ("ChargeCategory", true, Type::Allowed(&["Usage", "Purchase", "Tax", "Credit", "Adjustment"]), false),
    ("ChargeClass", true, Type::Allowed(&["Correction"]), true),
    ("ChargeDescription", true, Type::String, true),
    ("ChargePeriodEnd", true, Type::DateTime, false),
    ("ChargePeriodStart", true, Type::DateTime, false),
    ("ContractedCost", true, Type::Decimal, false),
    ("EffectiveCost", true, Type::Decimal, false),
    ("InvoiceIssuerName", true, Type::String, false),
    ("ListCost", true, Type::Decimal, false),
    ("PricingQuantity", true, Type::Decimal, true),
    ("PricingUnit", true, Type::String, true),
    ("ProviderName", true, Type::String, false),
    ("PublisherName", true, Type::String, false),
    (
        "ServiceCategory",
        true,
        Type::Allowed(&[
            "AI and Machine Learning",
            "Analytics",
            "Business Applications",
            "Compute",
            "Databases",
            "Developer Tools",
            "Multicloud",
            "Identity",
            "Integration",
            "Internet of Things",
            "Management and Governance",
            "Media",
            "Migration",
            "Mobile",
            "Networking",
            "Security",
            "Storage",
            "Web",
            "Other",
        ]),
        false,
    ),
    ("ServiceName", true, Type::String, false),
    // Recommended and Conditional columns the export fills
    ("ChargeFrequency", false, Type::Allowed(&["One-Time", "Recurring", "Usage-Based"]), false),
    ("CommitmentDiscountCategory", false, Type::Allowed(&["Spend", "Usage"]), true),
    ("CommitmentDiscountStatus", false, Type::Allowed(&["Used", "Unused"]), true),
    ("CommitmentDiscountQuantity", false, Type::Decimal, true),
    ("ConsumedQuantity", false, Type::Decimal, true),
    ("ContractedUnitPrice", false, Type::Decimal, true),
    ("ListUnitPrice", false, Type::Decimal, true),
    ("PricingCategory", false, Type::Allowed(&["Standard", "Dynamic", "Committed", "Other"]), true),
    ("SkuMeter", false, Type::String, true),
    ("SkuPriceDetails", false, Type::Json, true),
    ("Tags", false, Type::Json, true),
];

fn is_decimal(v: &str) -> bool {
    let v = v.strip_prefix('-').unwrap_or(v);
    let (whole, frac) = v.split_once('.').unwrap_or((v, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
}

/// FOCUS Date/Time Format: ISO 8601 in UTC, `YYYY-MM-DDTHH:mm:ssZ`.
fn is_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && chrono::DateTime::parse_from_rfc3339(v).is_ok()
}

fn check_value(column: &str, ty: Type, nullable: bool, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return if nullable { Ok(()) } else { Err(format!("{column} is null")) };
    }
    let ok = match ty {
        Type::Decimal => is_decimal(v),
        Type::DateTime => is_datetime(v),
        Type::Currency => v.len() == 3 && v.chars().all(|c| c.is_ascii_uppercase()),
        Type::String => true,
        Type::Json => serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| j.is_object()),
        Type::Allowed(values) => values.contains(&v),
    };
    if ok { Ok(()) } else { Err(format!("{column} = `{v}` is not a valid {ty:?}")) }
}

fn export() -> (Ledger, String) {
    let prices = book();
    let mut ledger = Ledger::new();
    for obs in [
        Obs::new(1, "2026-11-10T00:00:00Z", "2026-11-10T10:00:00Z").contract("aws-2026").build(),
        Obs::new(2, "2026-11-30T22:00:00Z", "2026-12-01T01:00:01Z").tenant("serving, \"eu\"").build(),
        Obs::new(3, "2026-11-06T00:00:00Z", "2026-11-06T00:30:00Z").spot().build(),
        Obs::new(4, "2026-11-19T20:00:00Z", "2026-11-20T04:00:00Z").gb200().contract("aws-2026").build(),
    ] {
        ledger.ingest(&obs, &prices).unwrap();
    }
    let csv = to_focus_csv(ledger.records(), &FocusOptions::default()).unwrap();
    (ledger, csv)
}

#[test]
fn focus_file_has_every_mandatory_column_with_valid_values() {
    let (ledger, text) = export();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    for (column, mandatory, _, _) in SPEC {
        if *mandatory {
            assert!(header.contains(&column.to_string()), "mandatory FOCUS column {column} missing");
        }
    }
    let spec: BTreeMap<&str, (Type, bool)> = SPEC.iter().map(|(c, _, t, n)| (*c, (*t, *n))).collect();
    // custom columns use the x_ prefix; everything else is a FOCUS column we know
    for column in &header {
        assert!(
            column.starts_with("x_") || spec.contains_key(column.as_str()) || KNOWN_OTHER.contains(&column.as_str()),
            "unknown column {column}"
        );
    }
    let mut rows = 0;
    let mut billed = cumulo_types::Money::ZERO;
    for row in reader.records() {
        let row = row.unwrap();
        assert_eq!(row.len(), header.len());
        for (column, value) in header.iter().zip(row.iter()) {
            if let Some((ty, nullable)) = spec.get(column.as_str()) {
                check_value(column, *ty, *nullable, value).unwrap();
            }
        }
        let get = |c: &str| row.get(header.iter().position(|h| h == c).unwrap()).unwrap().to_string();
        // a charge period lies inside its billing period
        assert!(
            get("BillingPeriodStart") <= get("ChargePeriodStart") && get("ChargePeriodEnd") <= get("BillingPeriodEnd")
        );
        // committed rows carry the commitment; others do not
        assert_eq!(get("PricingCategory") == "Committed", !get("CommitmentDiscountId").is_empty());
        // commitment columns are all set or all null (FOCUS 1.1+ conditional rules)
        for column in [
            "CommitmentDiscountQuantity",
            "CommitmentDiscountUnit",
            "CommitmentDiscountStatus",
            "CommitmentDiscountCategory",
        ] {
            assert_eq!(get(column).is_empty(), get("CommitmentDiscountId").is_empty(), "{column}");
        }
        billed += cumulo_types::Money::parse_dollars(&get("BilledCost")).unwrap();
        rows += 1;
    }
    assert_eq!(rows, ledger.len());
    assert_eq!(billed, ledger.total_cost());
}

/// Other FOCUS 1.2 column ids the export may use beyond `SPEC` (types not checked here).
const KNOWN_OTHER: &[&str] = &[
    "AvailabilityZone",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedUnit",
    "InvoiceId",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceSubcategory",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
];

#[test]
fn focus_rows_read_as_expected() {
    let (_, text) = export();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<BTreeMap<String, String>> =
        reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect();
    let first = &rows[0];
    assert_eq!(first["ChargePeriodStart"], "2026-11-10T00:00:00Z");
    // records cover at most an hour: the 10 h contract run is ten rows of 1 h at $60 (list $98.32)
    assert_eq!(first["BilledCost"], "60");
    assert_eq!(first["ListCost"], "98.32");
    assert_eq!(first["ContractedCost"], "98.32");
    assert_eq!(first["PricingQuantity"], "1");
    assert_eq!(first["CommitmentDiscountId"], "aws-2026");
    assert_eq!((first["CommitmentDiscountQuantity"].as_str(), first["CommitmentDiscountUnit"].as_str()), ("60", "USD"));
    assert_eq!(first["BillingPeriodStart"], "2026-11-01T00:00:00Z");
    assert_eq!(first["BillingPeriodEnd"], "2026-12-01T00:00:00Z");
    // the attempt that crosses into December: 1 h 1 s, one hour's record and one second's record,
    // the second at $98.32/h rounding to $0.027311
    let december: Vec<_> = rows
        .iter()
        .filter(|r| r["x_CumuloJobId"] == "2" && r["BillingPeriodStart"] == "2026-12-01T00:00:00Z")
        .collect();
    assert_eq!(december.len(), 2);
    assert_eq!(december[0]["PricingQuantity"], "1");
    assert_eq!(december[1]["PricingQuantity"], "0.000277778");
    let billed: cumulo_types::Money =
        december.iter().map(|r| cumulo_types::Money::parse_dollars(&r["BilledCost"]).unwrap()).sum();
    assert_eq!(billed, usd("98.32") + usd("0.027311"));
    // commas and quotes survive CSV quoting
    assert_eq!(december[0]["x_CumuloTenant"], "serving, \"eu\"");
    let tags: serde_json::Value = serde_json::from_str(&december[0]["Tags"]).unwrap();
    assert_eq!(tags["cumulo.tenant"], "serving, \"eu\"");
}

/// The server rates live prices from one step that starts at the epoch (the price paid now), so a
/// key and a start alone do not name a price: `SkuPriceId` carries the rate, one id per unit price.
#[test]
fn each_unit_price_has_its_own_sku_price_id() {
    let rated = |rate: &str, job: u64| {
        let mut prices = cumulo_ledger::PriceBook::new();
        let key = cumulo_ledger::PriceKey::contract(&common::aws(), "p5.48xlarge", "aws-2026");
        prices.set_price(key, chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, usd(rate)).unwrap();
        let mut ledger = Ledger::new();
        let obs = Obs::new(job, "2026-11-10T00:00:00Z", "2026-11-10T01:00:00Z").contract("aws-2026").build();
        ledger.ingest(&obs, &prices).unwrap();
        let csv = to_focus_csv(ledger.records(), &FocusOptions::default()).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let column = reader.headers().unwrap().iter().position(|h| h == "SkuPriceId").unwrap();
        let ids: Vec<String> =
            reader.records().map(|r| r.unwrap()[column].to_string()).filter(|id| id.contains(":contract:")).collect();
        ids
    };
    let at_60 = rated("60", 1);
    assert_eq!(at_60, ["aws:p5.48xlarge:contract:aws-2026:60:1970-01-01T00:00:00Z"], "the rate is in the id");
    assert_ne!(rated("12.5", 2), at_60, "another rate under the same key and start is another price");
    assert_eq!(rated("60", 3), at_60, "the same rate is the same price, whichever job pays it");
}
