//! Split transactions: how Blnk divides one amount among several sources or destinations
//! (`model/transaction.go`, `CalculateDistributionsPrecise`), computed exactly. A share is a fixed
//! amount (`"100"` in major units, or `precise_distribution` in minor units), a percentage
//! (`"10%"`, of the whole amount) or `"left"` (what the others leave). In Blnk's order:
//! 1. fixed shares, each at most what is still left;
//! 2. percentages of the whole; a share worth less than one minor unit is 0, and what such shares
//!    lose goes to the largest percentage share; at most 100% in all;
//! 3. each share is cut to whole minor units, and the `left` share takes what remains;
//! 4. if the shares still do not add up to the amount, the difference goes to the largest share.
//!
//! Where Blnk's result depends on Go's map order (ties for "largest", repeated identifiers), Keel
//! is deterministic: the first of equals in the request's order wins, and an identifier may appear
//! once. Percentages are exact decimals, never floats.

use super::amount::{Decimal, Precision};
use super::error::DomainError;
use num_bigint::BigInt;
use num_traits::{Signed, Zero};

/// Most shares in one split: each is a leg of its own, all in one commit (Blnk sets no limit;
/// this one keeps a split's work and its commit bounded).
pub const MAX_SHARES: usize = 1_000;

/// The side of a transaction a split divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitSide {
    Sources,
    Destinations,
}

/// One entry of `sources` or `destinations`, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub identifier: String,
    pub distribution: String,
    pub precise_distribution: String,
}

enum Kind {
    Fixed(BigInt),
    Percent(Decimal),
    Left,
}

/// Divides `total` minor units among `shares`; one amount per share, in their order (a share may
/// get 0). `field` (`sources` or `destinations`) names the input in errors.
pub fn distribute(
    total: &BigInt,
    precision: Precision,
    shares: &[Share],
    field: &str,
) -> Result<Vec<BigInt>, DomainError> {
    let invalid = |message: String| DomainError::InvalidDistribution { field: field.to_string(), message };
    let kinds = kinds(shares, precision, field)?;
    if total <= &BigInt::from(1) {
        // Too little to divide: the first share takes it (Blnk's small-amount rule).
        return Ok((0..shares.len()).map(|i| if i == 0 { total.clone() } else { BigInt::zero() }).collect());
    }

    // Every amount below is in units of 10^-digits minor units, so percentages stay exact.
    let digits =
        2 + kinds.iter().map(|k| if let Kind::Percent(p) = k { p.fraction_digits() } else { 0 }).max().unwrap_or(0);
    let unit = BigInt::from(10).pow(digits);
    let whole = total * &unit;
    let mut left = whole.clone();
    let mut amounts: Vec<BigInt> = vec![BigInt::zero(); shares.len()];

    for (i, k) in kinds.iter().enumerate() {
        if let Kind::Fixed(minor) = k {
            let scaled = minor * &unit;
            if scaled > left {
                return Err(invalid(format!("{field}[{i}]: fixed amount exceeds remaining transaction amount")));
            }
            left -= &scaled;
            amounts[i] = scaled;
        }
    }
    let mut target = BigInt::zero();
    let mut percents = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        if let Kind::Percent(p) = k {
            // total × p / 100, in units: total × (p × 10^(digits - 2)).
            let raw = total * p.shifted(digits - 2).expect("digits covers every percentage");
            target += &raw;
            amounts[i] = if raw < unit { BigInt::zero() } else { raw };
            percents.push(i);
        }
    }
    if target > whole {
        return Err(invalid(format!("{field}: total distributions exceed 100% or total amount")));
    }
    let lost = &target - percents.iter().map(|&i| &amounts[i]).sum::<BigInt>();
    if let Some(largest) = largest(&amounts, &percents) {
        amounts[largest] += lost;
    }
    for &i in &percents {
        left -= &amounts[i];
    }
    // Cut to whole minor units (Blnk truncates, and the left share gets the truncated rest).
    let mut result: Vec<BigInt> = amounts.iter().map(|a| a / &unit).collect();
    if let Some(i) = kinds.iter().position(|k| matches!(k, Kind::Left)) {
        if left.is_negative() {
            return Err(invalid(format!("{field}: total distributions exceed 100% or total amount")));
        }
        result[i] = &left / &unit;
    }
    let sum: BigInt = result.iter().sum();
    if &sum != total {
        // The rest to the largest share; to the first when every share came to nothing (shares
        // of a few minor units), as the small-amount rule above gives it.
        let all: Vec<usize> = (0..result.len()).collect();
        let taker = largest(&result, &all).unwrap_or(0);
        result[taker] += total - sum;
    }
    // Every split adds up: a leg of each share with an amount, nothing lost, nothing made.
    assert_eq!(&result.iter().sum::<BigInt>(), total, "a split's amounts add up to its total");
    Ok(result)
}

/// Reads every share, refusing what Blnk would split unpredictably: a repeated identifier, two
/// `left` shares.
fn kinds(shares: &[Share], precision: Precision, field: &str) -> Result<Vec<Kind>, DomainError> {
    let invalid = |message: String| DomainError::InvalidDistribution { field: field.to_string(), message };
    if shares.is_empty() {
        return Err(invalid(format!("{field} must list at least one share")));
    }
    if shares.len() > MAX_SHARES {
        return Err(invalid(format!("{field} may list at most {MAX_SHARES} shares")));
    }
    let mut kinds = Vec::with_capacity(shares.len());
    let mut seen = std::collections::HashSet::with_capacity(shares.len());
    for (i, share) in shares.iter().enumerate() {
        if share.identifier.trim().is_empty() {
            return Err(invalid(format!("{field}[{i}].identifier is required")));
        }
        if !seen.insert(share.identifier.as_str()) {
            return Err(invalid(format!("{field}: {} appears more than once", share.identifier)));
        }
        kinds.push(kind(share, precision).map_err(|why| invalid(format!("{field}[{i}]: {why}")))?);
    }
    if kinds.iter().filter(|k| matches!(k, Kind::Left)).count() > 1 {
        return Err(invalid(format!("{field}: only one share may be \"left\"")));
    }
    Ok(kinds)
}

/// The first of the largest positive amounts among `among`.
fn largest(amounts: &[BigInt], among: &[usize]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for &i in among {
        if amounts[i].is_positive() && best.is_none_or(|b| amounts[i] > amounts[b]) {
            best = Some(i);
        }
    }
    best
}

fn kind(share: &Share, precision: Precision) -> Result<Kind, String> {
    let (distribution, precise) = (share.distribution.trim(), share.precise_distribution.trim());
    if distribution == "left" || precise == "left" {
        return Ok(Kind::Left);
    }
    if let Some(percent) = distribution.strip_suffix('%') {
        let p = Decimal::parse(percent).map_err(|e| format!("percentage {distribution:?} {e}"))?;
        if p.is_negative() {
            return Err(format!("percentage {distribution:?} may not be negative"));
        }
        return Ok(Kind::Percent(p));
    }
    if !precise.is_empty() {
        let minor = Decimal::parse(precise)
            .and_then(|d| d.to_integer())
            .map_err(|_| "invalid precise_distribution format: must be an integer value in minor units".to_string())?;
        if minor.is_negative() {
            return Err("precise_distribution may not be negative".into());
        }
        return Ok(Kind::Fixed(minor));
    }
    if distribution.is_empty() {
        return Ok(Kind::Fixed(BigInt::zero()));
    }
    let major = Decimal::parse(distribution).map_err(|_| format!("invalid fixed amount format {distribution:?}"))?;
    if major.is_negative() {
        return Err(format!("fixed amount {distribution:?} may not be negative"));
    }
    precision
        .to_minor(&major)
        .map(Kind::Fixed)
        .map_err(|_| format!("fixed amount {distribution:?} has more decimal places than precision {precision} allows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(spec: &[(&str, &str)]) -> Vec<Share> {
        spec.iter()
            .map(|(id, d)| Share {
                identifier: id.to_string(),
                distribution: d.to_string(),
                precise_distribution: String::new(),
            })
            .collect()
    }

    fn split(total: i64, precision: &str, spec: &[(&str, &str)]) -> Result<Vec<i64>, DomainError> {
        let amounts = distribute(&BigInt::from(total), Precision::parse(precision).unwrap(), &shares(spec), "sources")?;
        Ok(amounts.iter().map(|a| i64::try_from(a).unwrap()).collect())
    }

    #[test]
    fn fixed_percent_and_left_shares_add_up_exactly() {
        // $100.00: $10.00 fixed, 20%, and the rest.
        assert_eq!(split(10_000, "100", &[("a", "10"), ("b", "20%"), ("c", "left")]).unwrap(), vec![1000, 2000, 7000]);
        assert_eq!(split(10_000, "100", &[("a", "50%"), ("b", "50%")]).unwrap(), vec![5000, 5000]);
        // 33.33% twice of 100 cents: 33.33 each truncates to 33, the left share gets 33.34 → 33,
        // and the cent still missing goes to the largest, the first of equals.
        assert_eq!(split(100, "100", &[("a", "33.33%"), ("b", "33.33%"), ("c", "left")]).unwrap(), vec![34, 33, 33]);
        assert_eq!(split(100, "1", &[("a", "33.333%"), ("b", "66.667%")]).unwrap(), vec![33, 67]);
    }

    #[test]
    fn every_split_adds_up_to_the_amount() {
        for total in [2i64, 3, 4, 7, 99, 101, 1_000_003] {
            for spec in [
                vec![("a", "33.3%"), ("b", "left")],
                vec![("a", "1"), ("b", "12.5%"), ("c", "12.5%"), ("d", "left")],
                vec![("a", "60%")],
                vec![("a", "0.5%"), ("b", "0.5%"), ("c", "99%")],
                // Percentages that all come to nothing of a few units (found by the simulation:
                // 20% and 12% of 4 made two legs of 0, and the split recorded nothing).
                vec![("a", "20%"), ("b", "12%")],
            ] {
                let amounts = split(total, "1", &spec).unwrap();
                assert_eq!(amounts.iter().sum::<i64>(), total, "{total} over {spec:?}: {amounts:?}");
                assert!(amounts.iter().all(|a| *a >= 0), "{amounts:?}");
            }
        }
    }

    #[test]
    fn bad_distributions_are_refused_naming_the_share() {
        let refused = |total, spec: &[(&str, &str)]| split(total, "100", spec).unwrap_err().to_string();
        assert!(refused(1000, &[("a", "11"), ("b", "left")]).contains("exceeds remaining"), "fixed over the amount");
        assert!(refused(1000, &[("a", "60%"), ("b", "50%")]).contains("exceed 100%"));
        assert!(refused(1000, &[("a", "left"), ("b", "left")]).contains("only one"));
        assert!(refused(1000, &[("a", "x%")]).contains("sources[0]"));
        assert!(refused(1000, &[("a", "1.001")]).contains("decimal places"));
        assert!(refused(1000, &[("a", "10%"), ("a", "left")]).contains("more than once"));
        assert!(refused(1000, &[("a", "-5%")]).contains("negative"));
        assert!(refused(1000, &[]).contains("at least one"));
    }

    #[test]
    fn precise_distributions_are_minor_units_and_tiny_amounts_go_to_the_first() {
        let shares = vec![
            Share { identifier: "a".into(), distribution: String::new(), precise_distribution: "1006".into() },
            Share { identifier: "b".into(), distribution: "left".into(), precise_distribution: String::new() },
        ];
        let amounts = distribute(&BigInt::from(5000), Precision::parse("100").unwrap(), &shares, "sources").unwrap();
        assert_eq!(amounts, vec![BigInt::from(1006), BigInt::from(3994)]);
        assert_eq!(split(1, "100", &[("a", "50%"), ("b", "50%")]).unwrap(), vec![1, 0]);
    }
}
