//! Currency codes, one rule wherever a client names one (a balance, a transaction). Blnk takes any
//! non-empty string and compares it exactly, so Keel does too (`USD`, `usd` and `USDC` are three
//! currencies), but refuses what cannot be a code rather than silently changing it: whitespace
//! anywhere (so `"USD "` is refused, not trimmed to `USD` or kept as a fourth currency), control
//! characters, and codes longer than `MAX_CHARS`.

use super::error::{DomainError, Resource};

/// The longest currency code accepted, in characters (ISO 4217 codes are 3; tokens and points
/// schemes run longer, none anywhere near this).
pub const MAX_CHARS: usize = 64;

/// `text` as a currency code, or a validation error on `currency` for `resource`.
pub fn parse(resource: Resource, text: Option<&str>) -> Result<String, DomainError> {
    let refuse = |message: String| Err(DomainError::validation(resource, "currency", message));
    match text {
        None | Some("") => refuse("currency is required".into()),
        Some(code) if code.chars().count() > MAX_CHARS => {
            refuse(format!("currency must be at most {MAX_CHARS} characters"))
        }
        Some(code) if code.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            refuse(format!("currency {code:?} must not contain spaces or control characters"))
        }
        Some(code) => Ok(code.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kept_exactly_and_what_cannot_be_a_code_is_refused() {
        for good in ["USD", "usd", "USDC", "BTC", "POINTS_2026", "€"] {
            assert_eq!(parse(Resource::Balance, Some(good)), Ok(good.to_string()));
        }
        let long = "X".repeat(MAX_CHARS + 1);
        for bad in
            [None, Some(""), Some("USD "), Some(" USD"), Some("U SD"), Some("US\tD"), Some("USD\0"), Some(&long[..])]
        {
            let refused = parse(Resource::Transaction, bad).unwrap_err();
            assert!(matches!(&refused, DomainError::Validation { field, .. } if field == "currency"), "{bad:?}");
        }
        assert_eq!(parse(Resource::Balance, Some(&"X".repeat(MAX_CHARS))).map(|c| c.len()), Ok(MAX_CHARS));
    }
}
