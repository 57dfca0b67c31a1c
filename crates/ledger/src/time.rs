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

/// Reads an instant as chrono's `Deserialize` does (any RFC 3339 offset, and what chrono's
/// `FromStr` accepts besides), with a fast path for the form stored records hold
/// (`2026-11-03T04:05:06Z`, [`format_time`]'s): an export reads three per record.
pub(crate) fn deserialize_time<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    struct Instant;
    impl serde::de::Visitor<'_> for Instant {
        type Value = Timestamp;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 date and time")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
            if let Some(t) = utc_seconds_time(text) {
                return Ok(t);
            }
            text.parse::<DateTime<chrono::FixedOffset>>().map(|t| t.with_timezone(&Utc)).map_err(E::custom)
        }
    }
    d.deserialize_str(Instant)
}

/// `YYYY-MM-DDTHH:MM:SSZ` with a real date and a time before 24:00:00 (no leap second), read by
/// hand; `None` for anything else.
fn utc_seconds_time(text: &str) -> Option<Timestamp> {
    let b: &[u8; 20] = text.as_bytes().try_into().ok()?;
    if (b[4], b[7], b[10], b[13], b[16], b[19]) != (b'-', b'-', b'T', b':', b':', b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = CivilDate::days_of(year, month, day);
    // a day past its month's end (2026-02-30) lands in another month: leave it to chrono's error
    if CivilDate::of_day(days) != (CivilDate { year, month, day }) {
        return None;
    }
    Utc.timestamp_opt(days * 86_400 + hour * 3600 + minute * 60 + second, 0).single()
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
#[derive(PartialEq, Eq)]
struct CivilDate {
    year: i64,
    month: i64,
    day: i64,
}

impl CivilDate {
    /// The days from 1970-01-01 to `year-month-day` (Howard Hinnant's `days_from_civil`; `month`
    /// 1 to 12, `day` past the month's end counts on into the next).
    fn days_of(year: i64, month: i64, day: i64) -> i64 {
        let year = year - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let shifted_month = if month > 2 { month - 3 } else { month + 9 };
        let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

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

    /// `text` read through [`deserialize_time`] from a JSON string.
    fn read_time(text: &str) -> Result<Timestamp, String> {
        let json = serde_json::Value::from(text);
        deserialize_time(json).map_err(|e| e.to_string())
    }

    /// `text` read as chrono's `Deserialize` reads it.
    fn chrono_time(text: &str) -> Result<Timestamp, String> {
        serde_json::from_value::<Timestamp>(serde_json::Value::from(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn stored_times_read_as_chrono_reads_them() {
        for text in [
            "2026-11-03T04:05:06Z",
            "2024-02-29T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "0000-03-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-03T04:05:06+02:00",
            "2026-11-03 04:05:06Z",
            "2026-11-03T04:05:06.5Z",
        ] {
            assert_eq!(read_time(text), chrono_time(text), "{text}");
            assert!(read_time(text).is_ok(), "{text}");
        }
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-03T24:00:00Z",
            "2026-11-03T04:60:00Z",
            "2026-11-03T04:05:61Z",
            "2026-11-03T04:05:0xZ",
            "2026-11-03",
            "",
        ] {
            assert!(read_time(bad).is_err() && chrono_time(bad).is_err(), "{bad}");
        }
        // what only chrono reads (a leap second, a signed year) goes to chrono
        for text in ["2016-12-31T23:59:60Z", "+026-11-03T04:05:06Z"] {
            assert_eq!(read_time(text), chrono_time(text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn written_times_read_back_as_chrono_reads_them(s in -62_167_219_200i64..253_402_300_800) {
            let text = format_time(at(s));
            proptest::prop_assert_eq!(read_time(&text), Ok(at(s)));
            proptest::prop_assert_eq!(read_time(&text), chrono_time(&text));
        }

        #[test]
        fn dates_in_the_fast_form_read_as_chrono_reads_them(
            year in 0i64..10_000, month in 0i64..14, day in 0i64..33, hour in 0i64..25, minute in 0i64..61,
            second in 0i64..62,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            proptest::prop_assert_eq!(read_time(&text), chrono_time(&text));
        }

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
