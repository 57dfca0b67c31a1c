//! Exact money: signed integer micro-dollars (1 USD = 1,000,000 µ$), never a float.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An amount of US dollars in integer micro-dollars.
///
/// Arithmetic saturates rather than wraps: a trillion-dollar portfolio is 10^18 µ$, inside `i64`
/// (9.2 × 10^18), and a saturated figure is visibly wrong where a wrapped one would be silently so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);
    pub const MICROS_PER_DOLLAR: i64 = 1_000_000;

    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn from_dollars(dollars: i64) -> Money {
        Money(dollars.saturating_mul(Self::MICROS_PER_DOLLAR))
    }

    /// Parses a decimal dollar amount such as `98.32`, `$1,200.50` or `0.0000015`; at most six
    /// decimal places are kept exactly, further digits are rounded half away from zero.
    pub fn parse_dollars(text: &str) -> Result<Money, crate::Error> {
        let invalid = || crate::Error::InvalidMoney(text.to_string());
        let cleaned: String = text.trim().trim_start_matches('$').chars().filter(|c| *c != ',' && *c != '_').collect();
        let (negative, digits) = match cleaned.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, cleaned.as_str()),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        let mut micros: i64 = 0;
        let mut scale = 100_000;
        for (i, c) in frac.chars().enumerate() {
            let d = c as i64 - '0' as i64;
            if i < 6 {
                micros += d * scale;
                scale /= 10;
            } else {
                if i == 6 && d >= 5 {
                    micros += 1;
                }
                break;
            }
        }
        let total =
            whole.checked_mul(Self::MICROS_PER_DOLLAR).and_then(|w| w.checked_add(micros)).ok_or_else(invalid)?;
        Ok(Money(if negative { -total } else { total }))
    }

    /// Like [`Money::parse_dollars`] but refuses negative amounts (prices, commitments).
    pub fn parse_non_negative(text: &str) -> Result<Money, crate::Error> {
        let money = Self::parse_dollars(text)?;
        if money.0 < 0 {
            return Err(crate::Error::InvalidMoney(text.to_string()));
        }
        Ok(money)
    }

    /// Converts a float price from a catalog; `None` for NaN, infinities and negatives.
    pub fn from_dollars_f64(dollars: f64) -> Option<Money> {
        if !dollars.is_finite() || !(0.0..=9.0e12).contains(&dollars) {
            return None;
        }
        Some(Money((dollars * Self::MICROS_PER_DOLLAR as f64).round() as i64))
    }

    /// Dollars as a float, for display and charts only: never for accounting.
    pub fn as_dollars_f64(self) -> f64 {
        self.0 as f64 / Self::MICROS_PER_DOLLAR as f64
    }

    /// `self × numerator / denominator`, rounded half away from zero, computed in 128 bits so that
    /// rating `rate × seconds / 3600` is exact until the final rounding.
    pub fn mul_div(self, numerator: i64, denominator: i64) -> Money {
        assert!(denominator != 0, "mul_div by zero");
        let product = self.0 as i128 * numerator as i128;
        let d = denominator as i128;
        let half = d.abs() / 2;
        let rounded = if (product >= 0) == (d > 0) {
            (product.abs() + half) / d.abs()
        } else {
            -((product.abs() + half) / d.abs())
        };
        Money(rounded.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    pub fn saturating_mul(self, factor: i64) -> Money {
        Money(self.0.saturating_mul(factor))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The one way amounts are shown to people: dollars and cents, grouped (`$38,000.00`),
    /// rounded half away from zero. [`Money`]'s `Display` keeps every micro-dollar for exports.
    pub fn usd(self) -> String {
        let cents = self.mul_div(1, 10_000).0;
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        format!("{sign}${}.{:02}", group_thousands(abs / 100), abs % 100)
    }

    /// Totals in a readable unit from a million up: `$1.75B`, `$768.53M`; below that, [`Money::usd`].
    pub fn usd_short(self) -> String {
        let abs = self.0.unsigned_abs();
        let (unit, scale) = match abs {
            a if a >= 1_000_000_000_000_000 => ("B", 1_000_000_000_000_000u64),
            a if a >= 1_000_000_000_000 => ("M", 1_000_000_000_000),
            _ => return self.usd(),
        };
        let sign = if self.0 < 0 { "-" } else { "" };
        let hundredths = (abs as u128 * 100 + scale as u128 / 2) / scale as u128;
        format!("{sign}${}.{:02}{unit}", group_thousands((hundredths / 100) as u64), hundredths % 100)
    }

    /// A price per hour: `$6.16/h`; below a dollar up to four decimals so that small rates are not
    /// shown as nothing (`$0.0125/h`).
    pub fn usd_per_hour(self) -> String {
        if self.0.unsigned_abs() >= 1_000_000 || self.0 == 0 {
            return format!("{}/h", self.usd());
        }
        let ten_thousandths = self.mul_div(1, 100).0;
        let sign = if ten_thousandths < 0 { "-" } else { "" };
        let mut frac = format!("{:04}", ten_thousandths.unsigned_abs());
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        format!("{sign}$0.{frac}/h")
    }
}

/// `1234567` as `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

impl fmt::Display for Money {
    /// `$1,234.567890` style with grouping and trailing zeros after cents trimmed (`$3.50`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / 1_000_000;
        let mut frac = format!("{:06}", abs % 1_000_000);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        let digits = whole.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}${grouped}.{frac}")
    }
}

impl FromStr for Money {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_dollars(s)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}
impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}
impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }
}
impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = *self - rhs;
    }
}
impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(self.0.saturating_neg())
    }
}
impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_shown_one_way() {
        let shown = |micros: i64| (Money(micros).usd(), Money(micros).usd_short(), Money(micros).usd_per_hour());
        assert_eq!(shown(38_000_000_000).0, "$38,000.00", "cents always, grouped");
        assert_eq!(shown(1_754_999_000_000_000).1, "$1.75B", "billions in short form");
        assert_eq!(shown(768_530_000_000_000).1, "$768.53M");
        assert_eq!(shown(999_999_994_999).1, "$999,999.99", "below a million: cents");
        assert_eq!(shown(6_155_000).2, "$6.16/h", "rates round half away from zero");
        assert_eq!(shown(12_500).2, "$0.0125/h", "small rates keep four decimals");
        assert_eq!(shown(500_000).2, "$0.50/h");
        assert_eq!(shown(0).2, "$0.00/h");
        assert_eq!(shown(-1_234_567).0, "-$1.23");
        assert_eq!(shown(1_234_567_891).0, "$1,234.57", "never six decimals");
    }

    fn check(text: &str, micros: i64) {
        assert_eq!(Money::parse_dollars(text).unwrap(), Money(micros), "{text}");
    }

    #[test]
    fn parses_dollar_amounts_exactly() {
        check("98.32", 98_320_000);
        check("$1,200.50", 1_200_500_000);
        check("0.0000015", 2);
        check("-3", -3_000_000);
        check(".5", 500_000);
        check("38000000000", 38_000_000_000_000_000);
    }

    #[test]
    fn rejects_garbage_and_negative_prices() {
        assert!(Money::parse_dollars("abc").is_err());
        assert!(Money::parse_dollars("1.2.3").is_err());
        assert!(Money::parse_dollars("").is_err());
        assert_eq!(
            Money::parse_non_negative("-1").unwrap_err().to_string(),
            "invalid money amount `-1`: expected a non-negative number of US dollars"
        );
    }

    #[test]
    fn displays_grouped_with_cents() {
        assert_eq!(Money(1_234_567_890_000).to_string(), "$1,234,567.89");
        assert_eq!(Money(3_500_000).to_string(), "$3.50");
        assert_eq!(Money(-1_500).to_string(), "-$0.0015");
    }

    #[test]
    fn mul_div_rounds_half_away_from_zero() {
        assert_eq!(Money(10).mul_div(1, 4), Money(3));
        assert_eq!(Money(-10).mul_div(1, 4), Money(-3));
        // $98.32/h for 90 seconds
        assert_eq!(Money(98_320_000).mul_div(90, 3600), Money(2_458_000));
    }
}
