//! How much of each contract has been (and will be) consumed: a constant utilisation of the
//! delivered capacity, or a usage series read from a CSV file (`contract,start,end,spend_usd`).
//!
//! Spend under a contract is counted at its contract rates, so "consumed" is money burnt down.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use cumulo_types::Money;
use serde::Serialize;

use crate::burndown::delivered_value;
use crate::clock::parse_time;
use crate::{Contract, Error, Portfolio};

/// Spend under one contract over one interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub contract: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub spend: Money,
}

/// A usage forecast: what each contract consumes over time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forecast {
    /// Delivered capacity used at this share (basis points: 7000 = 70%), paid at contract rates.
    Utilisation { bps: u32 },
    /// Recorded spend; after the last record the last record's utilisation is carried forward.
    Series(Vec<UsageRecord>),
}

impl Forecast {
    /// Parses `70`, `70%` or `0.7` as a utilisation: a bare number up to 1 is a fraction (`1` is
    /// 100%), above 1 a percentage.
    pub fn parse_utilisation(text: &str) -> Result<Forecast, Error> {
        let t = text.trim();
        let invalid = || Error::Value {
            what: "utilisation",
            value: t.to_string(),
            expected: "a share of 0..100%, e.g. 70 or 70% or 0.7",
        };
        let (number, percent) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        // Parsed as money to stay exact: 0.7 → 700,000 µ, 70 → 70,000,000 µ.
        let micros = Money::parse_dollars(number).map_err(|_| invalid())?.micros();
        let bps = if percent || micros > 1_000_000 { micros / 10_000 } else { micros / 100 };
        if !(0..=10_000).contains(&bps) || micros < 0 {
            return Err(invalid());
        }
        Ok(Forecast::Utilisation { bps: bps as u32 })
    }

    /// Reads a usage CSV: header `contract,start,end,spend_usd`, one interval per line.
    pub fn from_csv_file(path: &Path) -> Result<Forecast, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Forecast::from_csv(&text, &path.display().to_string())
    }

    pub fn from_csv(text: &str, source_name: &str) -> Result<Forecast, Error> {
        let bad = |line: u64, reason: String| Error::Usage { source_name: source_name.to_string(), line, reason };
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
        let col = |name: &'static str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(1, format!("no column `{name}` (required: contract, start, end, spend_usd)")))
        };
        let (c, s, e, m) = (col("contract")?, col("start")?, col("end")?, col("spend_usd")?);
        let mut records = Vec::new();
        for row in reader.records() {
            let row = row.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
            let line = row.position().map_or(0, |p| p.line());
            let get = |i: usize| row.get(i).unwrap_or("");
            let start = parse_time(get(s)).map_err(|err| bad(line, format!("start: {err}")))?;
            let end = parse_time(get(e)).map_err(|err| bad(line, format!("end: {err}")))?;
            if end <= start {
                return Err(bad(line, format!("end `{}` is not after start `{}`", get(e), get(s))));
            }
            let spend = Money::parse_non_negative(get(m)).map_err(|err| bad(line, format!("spend_usd: {err}")))?;
            records.push(UsageRecord { contract: get(c).to_string(), start, end, spend });
        }
        records.sort_by(|a, b| (&a.contract, a.end).cmp(&(&b.contract, b.end)));
        Ok(Forecast::Series(records))
    }

    /// Checks that every record names a contract of the portfolio.
    pub fn check_against(&self, portfolio: &Portfolio) -> Result<(), Error> {
        if let Forecast::Series(records) = self
            && let Some(r) = records.iter().find(|r| portfolio.contract(&r.contract).is_none())
        {
            let known: Vec<&str> = portfolio.contracts.iter().map(|c| c.id.as_str()).collect();
            return Err(Error::UnknownUsageContract { contract: r.contract.clone(), known: known.join(", ") });
        }
        Ok(())
    }

    /// Money consumed under `contract` from its start to `t` (clamped to the term).
    pub fn consumed(&self, contract: &Contract, t: DateTime<Utc>) -> Money {
        let t = t.clamp(contract.term_start(), contract.term_end());
        match self {
            Forecast::Utilisation { bps } => delivered_value(contract, t).mul_div(i64::from(*bps), 10_000),
            Forecast::Series(records) => {
                let mine: Vec<&UsageRecord> = records.iter().filter(|r| r.contract == contract.id).collect();
                let recorded = |t: DateTime<Utc>| -> Money {
                    mine.iter()
                        .map(|r| {
                            let to = t.min(r.end);
                            if to <= r.start {
                                return Money::ZERO;
                            }
                            let part = (to - r.start).num_seconds();
                            r.spend.mul_div(part, (r.end - r.start).num_seconds())
                        })
                        .sum()
                };
                match mine.last() {
                    Some(last) if t > last.end => {
                        // Carry the last interval's utilisation of delivered value forward.
                        let base = recorded(last.end);
                        let last_value = delivered_value(contract, last.end) - delivered_value(contract, last.start);
                        let later_value = delivered_value(contract, t) - delivered_value(contract, last.end);
                        if last_value.micros() <= 0 {
                            return base;
                        }
                        base + last.spend.mul_div(later_value.micros(), last_value.micros())
                    }
                    _ => recorded(t),
                }
            }
        }
    }

    /// A short description for headers: `70% utilisation of delivered capacity`.
    pub fn describe(&self) -> String {
        match self {
            Forecast::Utilisation { bps } => {
                format!("{}% utilisation of delivered capacity", format_bps(*bps))
            }
            Forecast::Series(r) => format!("usage series ({} records; last utilisation carried forward)", r.len()),
        }
    }
}

pub(crate) fn format_bps(bps: u32) -> String {
    if bps.is_multiple_of(100) { format!("{}", bps / 100) } else { format!("{}.{:02}", bps / 100, bps % 100) }
}

/// Money consumed so far under each contract at one instant: the state effective prices read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub at: Option<DateTime<Utc>>,
    pub consumed: BTreeMap<String, Money>,
}

impl Usage {
    /// Each contract's consumption at `at` under a forecast.
    pub fn at(portfolio: &Portfolio, forecast: &Forecast, at: DateTime<Utc>) -> Usage {
        let consumed = portfolio.contracts.iter().map(|c| (c.id.clone(), forecast.consumed(c, at))).collect();
        Usage { at: Some(at), consumed }
    }

    pub fn consumed(&self, contract: &str) -> Money {
        self.consumed.get(contract).copied().unwrap_or(Money::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_forms() {
        for (text, bps) in [
            ("70", 7000),
            ("70%", 7000),
            ("0.7", 7000),
            ("100", 10_000),
            ("0", 0),
            ("1", 10_000),
            ("1%", 100),
            ("0.5", 5000),
        ] {
            assert_eq!(Forecast::parse_utilisation(text).unwrap(), Forecast::Utilisation { bps }, "{text}");
        }
        assert_eq!(
            Forecast::parse_utilisation("140%").unwrap_err().to_string(),
            "invalid utilisation `140%`: expected a share of 0..100%, e.g. 70 or 70% or 0.7"
        );
    }

    #[test]
    fn usage_csv_errors_name_the_line() {
        let err = Forecast::from_csv("contract,start,end\n", "u.csv").unwrap_err().to_string();
        assert_eq!(err, "usage `u.csv` line 1: no column `spend_usd` (required: contract, start, end, spend_usd)");
        let err = Forecast::from_csv("contract,start,end,spend_usd\nx,2026-01-02,2026-01-01,5\n", "u.csv")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "usage `u.csv` line 2: end `2026-01-01` is not after start `2026-01-02`");
        let err = Forecast::from_csv("contract,start,end,spend_usd\nx,2026-01-01,2026-02-01,-5\n", "u.csv")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("usage `u.csv` line 2: spend_usd: invalid money amount `-5`"), "{err}");
    }
}
