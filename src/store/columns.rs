//! How both stores write the domain's values into columns and read them back: amounts as decimal
//! integer text, `meta_data` as JSON text, precisions as exponents, enums by name. A value that does
//! not read back is corruption (`StoreError::Corrupt`), never bad input.

use super::{StoreError, StoreResult};
use crate::domain::amount::Precision;
use num_bigint::BigInt;
use serde_json::{Map, Value};

pub fn amount(text: &str) -> StoreResult<BigInt> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("amount {text:?} is not an integer")))
}

pub fn json_map(text: &str) -> StoreResult<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("meta_data: {e}")))
}

pub fn json_text(map: &Map<String, Value>) -> String {
    serde_json::to_string(map).expect("a JSON map always serializes")
}

pub fn precision(exponent: i64) -> StoreResult<Precision> {
    u32::try_from(exponent)
        .ok()
        .and_then(|e| Precision::from_exponent(e).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("precision exponent {exponent}")))
}

/// One of the domain's named values (a status, a field, an operator, …) read back by its name.
pub fn named<T>(text: &str, what: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}

/// Scopes as stored: space-separated `RESOURCE:ACTION`.
pub fn scopes(text: &str) -> StoreResult<Vec<crate::domain::api_key::Scope>> {
    text.split_whitespace()
        .map(|s| crate::domain::api_key::Scope::parse(s).map_err(|_| StoreError::Corrupt(format!("scope {s:?}"))))
        .collect()
}

pub fn scopes_text(scopes: &[crate::domain::api_key::Scope]) -> String {
    scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}
