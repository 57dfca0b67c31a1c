//! Times and durations as users write them: `2026-12-31`, `2026-12-31T12:00:00Z`, `2h`, `30m`.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::Error;

/// The instant a calendar date starts (00:00 UTC).
pub fn start_of(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

/// Parses `2026-12-31` (its start, 00:00 UTC) or an RFC 3339 time such as `2026-12-31T12:00:00Z`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, Error> {
    let t = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(start_of(date));
    }
    DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&Utc)).map_err(|_| Error::Value {
        what: "time",
        value: t.to_string(),
        expected: "a date such as 2026-12-31 or an RFC 3339 time such as 2026-12-31T12:00:00Z",
    })
}

/// Parses a duration in seconds from `90s`, `30m`, `2h`, `7d` or a bare number of seconds.
pub fn parse_duration_s(text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let invalid =
        || Error::Value { what: "duration", value: t.to_string(), expected: "a number with s, m, h or d, e.g. 2h" };
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    n.checked_mul(scale).ok_or_else(invalid)
}

/// `7200` → `2h`, `90` → `90s`: the shortest exact form.
pub fn format_duration_s(secs: u64) -> String {
    match secs {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("2026-12-31").unwrap().to_rfc3339(), "2026-12-31T00:00:00+00:00");
        assert_eq!(parse_time("2026-12-31T12:00:00Z").unwrap().to_rfc3339(), "2026-12-31T12:00:00+00:00");
        assert_eq!(
            parse_time("next tuesday").unwrap_err().to_string(),
            "invalid time `next tuesday`: expected a date such as 2026-12-31 or an RFC 3339 time such as 2026-12-31T12:00:00Z"
        );
        assert_eq!(parse_duration_s("2h").unwrap(), 7200);
        assert_eq!(parse_duration_s("45").unwrap(), 45);
        assert_eq!(
            parse_duration_s("2 fortnights").unwrap_err().to_string(),
            "invalid duration `2 fortnights`: expected a number with s, m, h or d, e.g. 2h"
        );
        assert_eq!(format_duration_s(7200), "2h");
        assert_eq!(format_duration_s(90), "90s");
    }
}
