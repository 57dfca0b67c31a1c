//! Per-tenant monthly budgets: an amount of money per calendar month (UTC) and a kind. A hard
//! budget holds back jobs that would push the tenant past it; a soft one only shows on
//! `/metrics` and in warnings. Budgets come from the fleet file and from the API (stored; a stored
//! budget overrides the fleet file's for the same tenant).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use cumulo_types::Money;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Hard: an admission gate. Soft: an alert only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetKind {
    Hard,
    Soft,
}

impl BudgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Hard => "hard",
            BudgetKind::Soft => "soft",
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BudgetKind {
    type Err = Error;
    fn from_str(text: &str) -> Result<BudgetKind> {
        match text {
            "hard" => Ok(BudgetKind::Hard),
            "soft" => Ok(BudgetKind::Soft),
            other => Err(Error::Invalid { field: "kind", value: other.to_string(), expected: "`hard` or `soft`" }),
        }
    }
}

/// A tenant's monthly budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Money per calendar month (UTC), never negative.
    pub monthly: Money,
    pub kind: BudgetKind,
}

/// A budget stored for a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    pub tenant: String,
    pub budget: Budget,
    pub updated_at: DateTime<Utc>,
}

/// Checks a budget before it is stored: a valid tenant name and an amount that is not negative.
pub fn check_budget(record: &BudgetRecord) -> Result<()> {
    crate::check_tenant_name(&record.tenant)?;
    if record.budget.monthly.is_negative() {
        return Err(Error::Invalid {
            field: "monthly",
            value: record.budget.monthly.to_string(),
            expected: "an amount of at least $0",
        });
    }
    Ok(())
}

/// Reads a budget as people write it: `monthly` in dollars (`50000`, `"$50,000.00"`) and `kind`
/// `hard` or `soft`. The error names the field (`monthly` or `kind`) and the reason.
pub fn parse_budget(monthly: &str, kind: &str) -> std::result::Result<Budget, (&'static str, String)> {
    let monthly = match Money::parse_dollars(monthly) {
        Ok(m) if !m.is_negative() => m,
        Ok(_) => return Err(("monthly", format!("invalid amount `{monthly}`: expected dollars of at least 0"))),
        Err(_) => return Err(("monthly", format!("invalid amount `{monthly}`: expected dollars such as 50000"))),
    };
    let kind = kind
        .parse::<BudgetKind>()
        .map_err(|_| ("kind", format!("unknown kind `{kind}`: expected `hard` or `soft`")))?;
    Ok(Budget { monthly, kind })
}

/// The start of the calendar month (UTC) holding `at`: budgets count spend from here.
pub fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0).single().expect("the first of a month exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_amount_or_an_unknown_kind_is_refused_by_field() {
        let record = BudgetRecord {
            tenant: "research".into(),
            budget: Budget { monthly: Money(-1), kind: BudgetKind::Hard },
            updated_at: Utc::now(),
        };
        let err = check_budget(&record).unwrap_err().to_string();
        assert!(err.contains("monthly"), "the amount is named: {err}");
        let err = "firm".parse::<BudgetKind>().unwrap_err().to_string();
        assert!(err.contains("kind") && err.contains("firm"), "the kind is named: {err}");
        assert_eq!(
            parse_budget("-5", "hard").unwrap_err(),
            ("monthly", "invalid amount `-5`: expected dollars of at least 0".to_string()),
            "a negative amount"
        );
        assert_eq!(
            parse_budget("50000", "firm").unwrap_err(),
            ("kind", "unknown kind `firm`: expected `hard` or `soft`".to_string()),
            "an unknown kind"
        );
        assert_eq!(
            parse_budget("$50,000", "soft").unwrap(),
            Budget { monthly: Money::from_dollars(50_000), kind: BudgetKind::Soft },
            "dollars with a sign and grouping"
        );
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 15, 4, 0).unwrap();
        assert_eq!(month_start(at), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), "December's start");
    }
}
