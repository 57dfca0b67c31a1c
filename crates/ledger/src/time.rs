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
    let mut out = String::with_capacity(20);
    push_time(&mut out, t);
    out
}

/// Appends [`format_time`] to `out`, computing the civil date by hand for years 0 to 9999 (an
/// export writes several times per row); other years go through chrono.
pub fn push_time(out: &mut String, t: Timestamp) {
    let s = secs(t);
    let date = CivilDate::of_day(s.div_euclid(86_400));
    if !(0..=9999).contains(&date.year) {
        out.push_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true));
        return;
    }
    let second_of_day = s.rem_euclid(86_400);
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, value: i64| {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, date.year);
    put(5, 2, date.month);
    put(8, 2, date.day);
    put(11, 2, second_of_day / 3600);
    put(14, 2, second_of_day / 60 % 60);
    put(17, 2, second_of_day % 60);
    out.push_str(std::str::from_utf8(&text).expect("ASCII"));
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

/// A day of the proleptic Gregorian calendar.
struct CivilDate {
    year: i64,
    month: i64,
    day: i64,
}

impl CivilDate {
    /// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn of_day(days: i64) -> CivilDate {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        CivilDate { year, month, day }
    }
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

    proptest::proptest! {
        #[test]
        fn times_are_written_as_chrono_writes_them(s in -70_000_000_000i64..300_000_000_000) {
            let t = at(s);
            proptest::prop_assert_eq!(format_time(t), t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }

    #[test]
    fn times_at_the_edges_of_four_digit_years() {
        for text in [
            "0000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:34:56Z",
            "2100-03-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(format_time(parse_time("t", text).unwrap()), text);
        }
        let beyond = at(253_402_300_800);
        assert_eq!(format_time(beyond), beyond.to_rfc3339_opts(SecondsFormat::Secs, true));
    }

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
