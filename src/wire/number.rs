//! Exact numbers on the wire. With serde_json's `arbitrary_precision`, a JSON number keeps its text,
//! so `0.1` and `123456789012345678901234567890` reach the domain as written, and amounts leave as
//! exact JSON numbers (never `1.2e29`, never through a float).

use num_bigint::BigInt;
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};
use std::str::FromStr;

/// A number in a request, as its text. Strings holding a number (`"5.25"`) are accepted too, since
/// clients that fear float rounding send amounts that way.
#[derive(Debug, Clone)]
pub struct NumberText(pub String);

impl<'de> Deserialize<'de> for NumberText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) => Ok(NumberText(n.to_string())),
            Value::String(s) => Ok(NumberText(s)),
            other => Err(serde::de::Error::custom(format!("expected a number, found {}", kind(&other)))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer as an exact JSON number.
pub fn integer(value: &BigInt) -> Number {
    decimal(&value.to_string())
}

/// Decimal text (as the domain writes it) as an exact JSON number.
pub fn decimal(text: &str) -> Number {
    Number::from_str(text).expect("the domain writes only valid decimal text")
}

/// OpenAPI schema of an exact amount: a JSON number of any size, written exactly (never a float).
pub fn exact_number_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Number)
        .description(Some(
            "An exact number of any size, written without exponent or rounding (parse it as a decimal \
            or big integer, not a float).",
        ))
        .build()
}

/// OpenAPI schema of an amount in a request: a number, or a string holding one (`"19.99"`).
pub fn number_or_string_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::String]))
        .description(Some("A decimal number, or a string holding one; read exactly, never through a float."))
        .build()
}
