//! Time as the ledger sees it: UTC instants metered to the second, and calendar months for billing.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A UTC instant. The ledger meters whole seconds; sub-second parts are dropped on ingestion.
pub type Timestamp = DateTime<Utc>;

/// Unix seconds of an instant (sub-second parts dropped).
pub(crate) fn secs(t: Timestamp) -> i64 {
    t.timestamp()
}

/// The instant at Unix second `s`. Panics only outside chrono's range (±262,000 years).
pub(crate) fn at(s: i64) -> Timestamp {
    Utc.timestamp_opt(s, 0).single().expect("timestamp within chrono's range")
}

/// `2026-11-03T04:05:06Z`: RFC 3339 in UTC with a `Z`, whole seconds (FOCUS's date/time format).
pub fn format_time(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 instant (`2026-11-03T04:05:06Z`, any offset) or a date (`2026-11-03`, midnight
/// UTC). `field` names the flag or column in the error.
pub fn parse_time(field: &'static str, text: &str) -> Result<Timestamp, Error> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    Err(Error::Invalid {
        field,
        value: text.to_string(),
        expected: "an RFC 3339 time such as 2026-11-03T04:05:06Z or a date such as 2026-11-03",
    })
}

/// A calendar month in UTC, the billing period of an invoice: `2026-11`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Month, Error> {
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(Error::Invalid {
                field: "month",
                value: format!("{year}-{month:02}"),
                expected: "a month YYYY-MM between 1970-01 and 9999-12",
            });
        }
        Ok(Month { year, month })
    }

    /// Parses `YYYY-MM`; the error names the `month` field.
    pub fn parse(text: &str) -> Result<Month, Error> {
        let invalid =
            || Error::Invalid { field: "month", value: text.to_string(), expected: "a month YYYY-MM such as 2026-11" };
        let (y, m) = text.trim().split_once('-').ok_or_else(invalid)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(invalid());
        }
        let year: i32 = y.parse().map_err(|_| invalid())?;
        let month: u32 = m.parse().map_err(|_| invalid())?;
        Month::new(year, month).map_err(|_| invalid())
    }

    /// The month an instant falls in.
    pub fn containing(t: Timestamp) -> Month {
        Month { year: t.year(), month: t.month() }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// Midnight UTC on the first day: the inclusive start of the billing period.
    pub fn start(self) -> Timestamp {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0).single().expect("first of month exists")
    }

    /// The exclusive end of the billing period (the start of the next month).
    pub fn end(self) -> Timestamp {
        self.next().start()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Month::parse(s)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Month::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_bound_their_period() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(format_time(m.start()), "2026-12-01T00:00:00Z");
        assert_eq!(format_time(m.end()), "2027-01-01T00:00:00Z");
        assert_eq!(Month::containing(parse_time("t", "2026-02-28T23:59:59Z").unwrap()).to_string(), "2026-02");
    }

    #[test]
    fn bad_months_and_times_name_the_field() {
        assert_eq!(
            Month::parse("2026-13").unwrap_err().to_string(),
            "invalid month `2026-13`: expected a month YYYY-MM such as 2026-11"
        );
        assert_eq!(
            Month::parse("November").unwrap_err().to_string(),
            "invalid month `November`: expected a month YYYY-MM such as 2026-11"
        );
        assert_eq!(
            parse_time("since", "yesterday").unwrap_err().to_string(),
            "invalid since `yesterday`: expected an RFC 3339 time such as 2026-11-03T04:05:06Z or a date such as 2026-11-03"
        );
        assert_eq!(format_time(parse_time("since", "2026-11-03").unwrap()), "2026-11-03T00:00:00Z");
        assert_eq!(format_time(parse_time("since", "2026-11-03T05:00:00+01:00").unwrap()), "2026-11-03T04:00:00Z");
    }
}
