//! Exact money. Amounts are integers of minor units of any size (`BigInt`); a `Precision` (a power of
//! ten) maps them to and from the decimal text clients send. Nothing here ever touches a float.

use num_bigint::BigInt;
use num_traits::{Signed, Zero};
use std::fmt;

/// The largest precision accepted is 10^36: beyond any currency or token in use, and small enough
/// that an absurd precision cannot make the server build gigantic numbers.
pub const MAX_PRECISION_EXPONENT: u32 = 36;
/// Input numbers may carry at most this many digits (and exponents are bounded the same way), so a
/// hostile `1e999999999` is a 400 rather than a gigabyte of zeros.
pub const MAX_INPUT_DIGITS: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is not a decimal number")]
    Malformed,
    #[error("has too many digits (at most {MAX_INPUT_DIGITS})")]
    TooLarge,
    #[error("must be a whole number")]
    NotInteger,
    #[error("must be a positive power of ten no larger than 10^{MAX_PRECISION_EXPONENT}")]
    NotPowerOfTen,
    #[error("has more decimal places than the precision allows")]
    TooFine,
}

/// A decimal number read exactly from text: `mantissa × 10^-scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    mantissa: BigInt,
    scale: i64,
}

impl Decimal {
    /// Parses JSON-number syntax (`-12.5`, `1e2`, `0.1E-3`) and the same inside strings.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (number, exponent) = match rest.find(['e', 'E']) {
            Some(at) => {
                let exp_text = &rest[at + 1..];
                if exp_text.len() > 8 {
                    return Err(AmountError::TooLarge);
                }
                let exp: i64 = exp_text.parse().map_err(|_| AmountError::Malformed)?;
                (&rest[..at], exp)
            }
            None => (rest, 0),
        };
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() && frac_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return Err(AmountError::Malformed);
        }
        let digits = format!("{int_part}{frac_part}");
        let significant = digits.trim_start_matches('0');
        if significant.len() > MAX_INPUT_DIGITS || exponent.unsigned_abs() > MAX_INPUT_DIGITS as u64 {
            return Err(AmountError::TooLarge);
        }
        let mut mantissa: BigInt = if significant.is_empty() {
            BigInt::zero()
        } else {
            significant.parse().map_err(|_| AmountError::Malformed)?
        };
        if negative {
            mantissa = -mantissa;
        }
        Ok(Decimal { mantissa, scale: frac_part.len() as i64 - exponent }.normalized())
    }

    /// Strips trailing zeros so `5.250` and `5.25` compare equal and integers have scale ≤ 0.
    fn normalized(mut self) -> Self {
        if self.mantissa.is_zero() {
            return Decimal { mantissa: self.mantissa, scale: 0 };
        }
        let ten = BigInt::from(10);
        while (&self.mantissa % &ten).is_zero() {
            self.mantissa /= &ten;
            self.scale -= 1;
        }
        self
    }

    pub fn is_positive(&self) -> bool {
        self.mantissa.is_positive()
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa.is_negative()
    }

    /// The number as plain decimal text, without exponent or trailing zeros (`1e2` → `100`).
    pub fn to_plain_string(&self) -> String {
        if self.scale <= 0 {
            return (&self.mantissa * pow10(self.scale.unsigned_abs() as u32)).to_string();
        }
        scaled_to_string(&self.mantissa, self.scale as usize)
    }

    /// How many digits it has after the decimal point (`12.50` → 1, `100` → 0).
    pub fn fraction_digits(&self) -> u32 {
        self.scale.max(0) as u32
    }

    /// The value × 10^`digits`, which must come out whole (`digits ≥ fraction_digits()`).
    pub fn shifted(&self, digits: u32) -> Result<BigInt, AmountError> {
        let shift = digits as i64 - self.scale;
        if shift < 0 {
            return Err(AmountError::TooFine);
        }
        Ok(&self.mantissa * pow10(shift as u32))
    }

    /// `minor × 10^-exponent`: an amount of minor units read as a decimal.
    pub fn from_minor(minor: BigInt, exponent: u32) -> Decimal {
        Decimal { mantissa: minor, scale: exponent as i64 }.normalized()
    }

    /// The value ÷ 10^`places` (× 10^-`places` for a negative `places`).
    pub fn shifted_point(self, places: i64) -> Decimal {
        Decimal { scale: self.scale + places, ..self }.normalized()
    }

    /// `self − other`, exactly.
    pub fn minus(&self, other: &Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        let widen = |d: &Decimal| &d.mantissa * pow10((scale - d.scale) as u32);
        Decimal { mantissa: widen(self) - widen(other), scale }.normalized()
    }

    /// Text whose byte order is the numbers' order, for a database that stores amounts as text
    /// and cannot compare them as numbers (SQLite): a sign letter, the position of the decimal
    /// point, then the digits; a negative number's digits and position are complemented (and end
    /// in `~`) so that larger magnitudes sort first.
    pub fn sort_key(&self) -> String {
        if self.mantissa.is_zero() {
            return "O".to_string();
        }
        let digits = self.mantissa.abs().to_string();
        // value = 0.<digits> × 10^point; digits carry no trailing zero (normalized).
        let point = digits.len() as i64 - self.scale + 1_000_000_000;
        if self.mantissa.is_positive() {
            format!("P{point:010}{digits}")
        } else {
            let complement: String = digits.bytes().map(|d| char::from(b'9' - d + b'0')).collect();
            format!("N{:010}{complement}~", 9_999_999_999 - point)
        }
    }

    /// The value as an integer, or `NotInteger` when it has a fractional part.
    pub fn to_integer(&self) -> Result<BigInt, AmountError> {
        if self.scale > 0 {
            return Err(AmountError::NotInteger);
        }
        Ok(&self.mantissa * pow10(self.scale.unsigned_abs() as u32))
    }
}

/// A positive power of ten, `10^exponent`: how many minor units make one major unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    exponent: u32,
}

impl Precision {
    pub const ONE: Precision = Precision { exponent: 0 };

    pub fn from_exponent(exponent: u32) -> Result<Self, AmountError> {
        if exponent > MAX_PRECISION_EXPONENT {
            return Err(AmountError::NotPowerOfTen);
        }
        Ok(Precision { exponent })
    }

    /// Reads a precision written as a number (`100`, `1e2`, `100.0`).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let value = Decimal::parse(text)
            .map_err(|_| AmountError::NotPowerOfTen)?
            .to_integer()
            .map_err(|_| AmountError::NotPowerOfTen)?;
        let digits = value.to_string();
        let is_power_of_ten = digits.starts_with('1') && digits[1..].bytes().all(|b| b == b'0');
        if !is_power_of_ten {
            return Err(AmountError::NotPowerOfTen);
        }
        Self::from_exponent(digits.len() as u32 - 1)
    }

    pub fn exponent(self) -> u32 {
        self.exponent
    }

    pub fn value(self) -> BigInt {
        pow10(self.exponent)
    }

    /// `decimal × precision`, which must come out whole: a value finer than the precision is refused,
    /// never rounded.
    pub fn to_minor(self, decimal: &Decimal) -> Result<BigInt, AmountError> {
        let shift = self.exponent as i64 - decimal.scale;
        if shift < 0 {
            return Err(AmountError::TooFine);
        }
        Ok(&decimal.mantissa * pow10(shift as u32))
    }

    /// `minor ÷ precision` as exact decimal text (`525`, 10^2 → `5.25`; `500` → `5`).
    pub fn to_major(self, minor: &BigInt) -> String {
        scaled_to_string(minor, self.exponent as usize)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// `value × 10^-places` as decimal text without trailing zeros.
fn scaled_to_string(value: &BigInt, places: usize) -> String {
    let digits = value.abs().to_string();
    let sign = if value.is_negative() { "-" } else { "" };
    if places == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (int_part, frac_part) = padded.split_at(padded.len() - places);
    let frac_part = frac_part.trim_end_matches('0');
    if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

fn pow10(exponent: u32) -> BigInt {
    num_traits::pow(BigInt::from(10), exponent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn minor(text: &str, precision: &str) -> Result<BigInt, AmountError> {
        Precision::parse(precision)?.to_minor(&Decimal::parse(text)?)
    }

    #[test]
    fn decimal_text_becomes_exact_minor_units() {
        assert_eq!(minor("0.1", "100"), Ok(BigInt::from(10)));
        assert_eq!(minor("5.25", "100"), Ok(BigInt::from(525)));
        assert_eq!(minor("1e2", "1"), Ok(BigInt::from(100)));
        assert_eq!(minor("1.5E1", "1"), Ok(BigInt::from(15)));
        assert_eq!(minor("5.250", "100"), Ok(BigInt::from(525)));
        assert_eq!(minor("0.001", "100"), Err(AmountError::TooFine));
        assert_eq!(minor("123456789012345678901234567890", "1"), Ok("123456789012345678901234567890".parse().unwrap()));
    }

    #[test]
    fn precision_must_be_a_power_of_ten() {
        assert_eq!(Precision::parse("1").map(Precision::exponent), Ok(0));
        assert_eq!(Precision::parse("1000").map(Precision::exponent), Ok(3));
        assert_eq!(Precision::parse("1e2").map(Precision::exponent), Ok(2));
        for bad in ["0", "-100", "50", "0.1", "abc", "1e37", "101", ""] {
            assert_eq!(Precision::parse(bad), Err(AmountError::NotPowerOfTen), "{bad}");
        }
    }

    #[test]
    fn sort_keys_order_as_the_numbers_do() {
        let numbers = [
            "-1000",
            "-10",
            "-1.55",
            "-1.5",
            "-1",
            "-0.51",
            "-0.5",
            "-0.001",
            "0",
            "0.001",
            "0.5",
            "0.51",
            "1",
            "1.5",
            "1.55",
            "10",
            "99.99",
            "100",
            "123456789012345678901234567890",
        ];
        let keys: Vec<String> = numbers.iter().map(|n| Decimal::parse(n).unwrap().sort_key()).collect();
        for (pair, numbers) in keys.windows(2).zip(numbers.windows(2)) {
            assert!(pair[0] < pair[1], "{} must sort before {}", numbers[0], numbers[1]);
        }
        assert_eq!(Decimal::parse("1.50").unwrap().sort_key(), Decimal::parse("1.5").unwrap().sort_key());
        assert_eq!(Decimal::from_minor(BigInt::from(150), 2).sort_key(), Decimal::parse("1.5").unwrap().sort_key());
    }

    #[test]
    fn malformed_and_huge_input_is_refused() {
        for bad in ["", "-", ".", "1.2.3", "1e", "0x10", "1,5", "NaN", "Infinity", " 1 2"] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Decimal::parse("1e999999999"), Err(AmountError::TooLarge));
        assert_eq!(Decimal::parse(&"9".repeat(500)), Err(AmountError::TooLarge));
    }

    #[test]
    fn minor_units_print_as_exact_decimals() {
        let p = Precision::from_exponent(2).unwrap();
        assert_eq!(p.to_major(&BigInt::from(525)), "5.25");
        assert_eq!(p.to_major(&BigInt::from(500)), "5");
        assert_eq!(p.to_major(&BigInt::from(7)), "0.07");
        assert_eq!(p.to_major(&BigInt::from(-7)), "-0.07");
        assert_eq!(Precision::ONE.to_major(&BigInt::from(42)), "42");
        for (text, plain) in [("1e2", "100"), ("100.50", "100.5"), ("-0.10", "-0.1"), ("0", "0"), ("1.5E-3", "0.0015")]
        {
            assert_eq!(Decimal::parse(text).unwrap().to_plain_string(), plain);
        }
    }

    proptest! {
        #[test]
        fn major_and_minor_round_trip(units in any::<i128>(), exponent in 0u32..=MAX_PRECISION_EXPONENT) {
            let p = Precision::from_exponent(exponent).unwrap();
            let units = BigInt::from(units);
            let text = p.to_major(&units);
            prop_assert_eq!(p.to_minor(&Decimal::parse(&text).unwrap()), Ok(units));
        }
    }
}
