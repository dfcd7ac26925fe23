//! How domain values become column values and back, once for both backends: amounts as decimal
//! integer text, `meta_data` as JSON text, precisions as exponents, enums by name. A value that does
//! not read back is corruption (`ErrorKind::Corrupt`), never bad input.
//!
//! `Value` is what a statement is given; `Cursor` walks a result row column by column, so no
//! mapper counts column positions. Each backend binds `Value`s and implements `RowAccess`.

use super::{ErrorKind, StoreError, StoreResult};
use crate::domain::amount::Precision;
use crate::domain::api_key::Scope;
use crate::domain::endpoint::{EventTypes, Headers, HookType};
use crate::domain::event::{Delivery, EventKind};
use crate::domain::monitor::{Action, AutoAmount, AutoTransfer, Field, Operator, State, Trigger};
use crate::domain::transaction::Status;
use crate::domain::velocity::{Checkpoint, CheckpointLog, Velocity, Window, LOG_BYTES};
use num_bigint::BigInt;
use serde_json::Map;
use std::borrow::Cow;

/// A statement parameter, borrowed from the record it came from where it can be.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// A list of texts, for `{any}` (PostgreSQL binds it as one array; SQLite runs once per item).
    TextList(&'a [String]),
    /// One column of a set-based write (PostgreSQL only), bound as an array.
    Array(Vec<Value<'a>>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Self {
        Value::Text(Cow::Borrowed(text))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(text: &'a String) -> Self {
        Value::Text(Cow::Borrowed(text))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Value::Null, Value::from)
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

/// How a column is stored, which decides how SQL names and binds it per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    /// An exact integer amount: `NUMERIC` on PostgreSQL (exchanged as text), text on SQLite.
    Amount,
}

/// One column of a table: its name and kind.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// The column every table has for insertion order: PostgreSQL's `seq`, SQLite's `rowid`. Assigned
/// by the database, so read but never written.
pub const SEQUENCE: &str = "seq";

impl Column {
    pub fn is_written(&self) -> bool {
        self.name != SEQUENCE
    }
}

/// A result row, as each backend's driver gives it.
pub trait RowAccess {
    fn is_null(&self, index: usize) -> StoreResult<bool>;
    fn text(&self, index: usize) -> StoreResult<Option<&str>>;
    fn int(&self, index: usize) -> StoreResult<Option<i64>>;
    fn bool(&self, index: usize) -> StoreResult<Option<bool>>;
}

/// Reads a row's columns in order.
pub struct Cursor<'r> {
    row: &'r dyn RowAccess,
    next: usize,
}

impl<'r> Cursor<'r> {
    pub fn new(row: &'r dyn RowAccess) -> Self {
        Cursor { row, next: 0 }
    }

    fn advance(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    fn next_is_null(&self) -> StoreResult<bool> {
        self.row.is_null(self.next)
    }

    fn skip(&mut self) {
        self.advance();
    }

    pub fn text(&mut self) -> StoreResult<&'r str> {
        let index = self.advance();
        self.row.text(index)?.ok_or_else(|| null(index))
    }

    pub fn int(&mut self) -> StoreResult<i64> {
        let index = self.advance();
        self.row.int(index)?.ok_or_else(|| null(index))
    }

    pub fn bool(&mut self) -> StoreResult<bool> {
        let index = self.advance();
        self.row.bool(index)?.ok_or_else(|| null(index))
    }
}

fn null(index: usize) -> StoreError {
    corrupt(format!("column {index} is NULL"))
}

fn corrupt(what: String) -> StoreError {
    StoreError::caused_by(ErrorKind::Corrupt, what)
}

/// How a domain type is written to a column and read back. `Option<T>` is `T` or NULL.
pub trait Codec: Sized {
    const KIND: Kind;
    fn encode(&self) -> Value<'_>;
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self>;
}

impl Codec for String {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        self.into()
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        Ok(cursor.text()?.to_string())
    }
}

impl Codec for bool {
    const KIND: Kind = Kind::Bool;
    fn encode(&self) -> Value<'_> {
        Value::Bool(*self)
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        cursor.bool()
    }
}

/// Integers, stored as 64-bit integers.
macro_rules! integer_codecs {
    ($($type:ty),*) => {$(
        impl Codec for $type {
            const KIND: Kind = Kind::Int;
            fn encode(&self) -> Value<'_> {
                Value::Int((*self).into())
            }
            fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
                let n = cursor.int()?;
                Self::try_from(n).map_err(|_| corrupt(format!("integer {n} is out of range")))
            }
        }
    )*};
}
integer_codecs!(i64, u32, u16);

impl<T: Codec> Codec for Option<T> {
    const KIND: Kind = T::KIND;
    fn encode(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, T::encode)
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        if cursor.next_is_null()? {
            cursor.skip();
            return Ok(None);
        }
        T::decode(cursor).map(Some)
    }
}

impl Codec for BigInt {
    const KIND: Kind = Kind::Amount;
    fn encode(&self) -> Value<'_> {
        // Nearly every amount fits in 64 bits; those are written without BigInt's general (and,
        // at several amounts per transfer, noticeable) radix conversion.
        match num_traits::ToPrimitive::to_i64(self) {
            Some(small) => Value::Text(Cow::Owned(itoa::Buffer::new().format(small).to_owned())),
            None => Value::Text(Cow::Owned(self.to_string())),
        }
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        if let Ok(small) = text.parse::<i64>() {
            return Ok(BigInt::from(small));
        }
        text.parse().map_err(|_| corrupt(format!("amount {text:?} is not an integer")))
    }
}

/// `meta_data`: a JSON object as text.
impl Codec for Map<String, serde_json::Value> {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        Value::Text(Cow::Owned(serde_json::to_string(self).expect("a JSON map always serializes")))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        serde_json::from_str(cursor.text()?).map_err(|e| corrupt(format!("meta_data: {e}")))
    }
}

/// A precision, stored as its exponent.
impl Codec for Precision {
    const KIND: Kind = Kind::Int;
    fn encode(&self) -> Value<'_> {
        Value::Int(self.exponent().into())
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let exponent = cursor.int()?;
        u32::try_from(exponent)
            .ok()
            .and_then(|e| Precision::from_exponent(e).ok())
            .ok_or_else(|| corrupt(format!("precision exponent {exponent}")))
    }
}

/// A velocity window, stored as written (`"24h"`) and parsed again when read; a window an update
/// lengthened adds where it may reach back to (`"24h@1733562000000"`: no duration has an `@`), so
/// that its column, and a rule's constant size, stay as they were.
impl Codec for Window {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        match self.since_ms {
            None => (&self.text).into(),
            Some(since) => Value::Text(format!("{}@{since}", self.text).into()),
        }
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        let (length, since) = match text.split_once('@') {
            None => (text, None),
            Some((length, since)) => {
                let since = since.parse().map_err(|_| corrupt(format!("monitor window {text:?}")))?;
                (length, Some(since))
            }
        };
        let window = Window::parse(length).map_err(|e| corrupt(format!("monitor {e}")))?;
        Ok(Window { since_ms: since, ..window })
    }
}

/// A log of a balance's checkpoints, as its own compact text (`domain::velocity::CheckpointLog`);
/// read without the padding `padded_log` adds on a balance's row.
/// A set of names, as a JSON array (an identity's tokenized fields).
impl Codec for std::collections::BTreeSet<String> {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        Value::Text(Cow::Owned(serde_json::to_string(self).expect("a list of names always serializes")))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        serde_json::from_str(cursor.text()?).map_err(|e| corrupt(format!("a list of names: {e}")))
    }
}

impl Codec for CheckpointLog {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        self.as_text().into()
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        CheckpointLog::parse(cursor.text()?.trim_end_matches(' ')).map_err(corrupt)
    }
}

/// How wide a balance's checkpoint log is stored on its row: a log is stored as a chunk once it
/// reaches `LOG_BYTES`, before its next checkpoint is appended, and 80 bytes hold one checkpoint
/// written whole (the first after a chunk) of totals up to 24 digits and a version below 10^10.
const ROW_LOG_WIDTH: usize = LOG_BYTES + 80;

/// A balance's checkpoint log as its row stores it: padded with spaces to `ROW_LOG_WIDTH` once it
/// holds a checkpoint, so that the row keeps one size as checkpoints come and go. SQLite rewrites
/// a row of unchanged size in place; a row that grows overflows its page now and then, and when
/// SQLite then rebalances the pages it renumbers them through the locking page's number, after
/// which the commit scans the writer's whole page cache while the file is under 1 GiB (an eighth
/// of the engine's time in the benchmark, see docs/performance.md). An empty log (no velocity
/// monitor ever) stays empty. PostgreSQL stores the same text (one write path), at the cost of
/// the padding's bytes in each new row version.
pub fn padded_log(log: &CheckpointLog) -> Value<'_> {
    const SPACES: &str = match str::from_utf8(&[b' '; ROW_LOG_WIDTH]) {
        Ok(spaces) => spaces,
        Err(_) => panic!("spaces are UTF-8"),
    };
    let text = log.as_text();
    match text.len() {
        0 | ROW_LOG_WIDTH.. => text.into(),
        length => Value::Text(Cow::Owned([text, &SPACES[length..]].concat())),
    }
}

/// A velocity monitor's window state, one JSON object (the base's totals as decimal text): written
/// with the monitor's state by the batch that rolled it, never read by a query. The hint of the
/// next checkpoint is not stored.
impl Codec for Velocity {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        let b = &self.base;
        let state = serde_json::json!({"base_at": b.at_ms, "debit_balance": b.debit_balance.to_string(),
            "credit_balance": b.credit_balance.to_string(), "version": b.version});
        Value::Text(Cow::Owned(state.to_string()))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        let bad = || corrupt(format!("velocity state {text:?}"));
        let state: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let amount = |key: &str| state[key].as_str().and_then(|t| t.parse::<BigInt>().ok()).ok_or_else(bad);
        Ok(Velocity {
            base: Checkpoint {
                at_ms: state["base_at"].as_i64().ok_or_else(bad)?,
                debit_balance: amount("debit_balance")?,
                credit_balance: amount("credit_balance")?,
                version: state["version"].as_i64().ok_or_else(bad)?,
            },
            next_at_ms: None,
        })
    }
}

/// A monitor's automatic transfer, one JSON object (a fixed amount as written and in minor units).
impl Codec for AutoTransfer {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        let amount = match &self.amount {
            AutoAmount::Fixed(text, minor) => serde_json::json!({"text": text, "minor": minor.to_string()}),
            other => serde_json::json!(other.as_text()),
        };
        let transfer = serde_json::json!({"counterparty": self.counterparty, "outgoing": self.outgoing,
            "amount": amount, "description": self.description, "allow_overdraft": self.allow_overdraft});
        Value::Text(Cow::Owned(transfer.to_string()))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        let bad = || corrupt(format!("monitor transfer {text:?}"));
        let t: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let amount = match &t["amount"] {
            serde_json::Value::String(s) if s == "excess" => AutoAmount::Excess,
            serde_json::Value::String(s) if s == "shortfall" => AutoAmount::Shortfall,
            fixed => AutoAmount::Fixed(
                fixed["text"].as_str().ok_or_else(bad)?.to_string(),
                fixed["minor"].as_str().and_then(|m| m.parse().ok()).ok_or_else(bad)?,
            ),
        };
        Ok(AutoTransfer {
            counterparty: t["counterparty"].as_str().ok_or_else(bad)?.to_string(),
            outgoing: t["outgoing"].as_bool().ok_or_else(bad)?,
            amount,
            description: t["description"].as_str().unwrap_or_default().to_string(),
            allow_overdraft: t["allow_overdraft"].as_bool().unwrap_or(false),
        })
    }
}

/// Scopes as stored: space-separated `RESOURCE:ACTION`.
impl Codec for Vec<Scope> {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        Value::Text(Cow::Owned(self.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        text.split_whitespace().map(|s| Scope::parse(s).map_err(|_| corrupt(format!("scope {s:?}")))).collect()
    }
}

/// An endpoint's event types as stored: space-separated patterns (a pattern has no space).
impl Codec for EventTypes {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        Value::Text(Cow::Owned(self.0.join(" ")))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        Ok(EventTypes(cursor.text()?.split_whitespace().map(str::to_string).collect()))
    }
}

/// An endpoint's custom headers as stored: a JSON object of strings.
impl Codec for Headers {
    const KIND: Kind = Kind::Text;
    fn encode(&self) -> Value<'_> {
        Value::Text(Cow::Owned(serde_json::to_string(&self.0).expect("a map of strings serializes")))
    }
    fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
        let text = cursor.text()?;
        serde_json::from_str(text).map(Headers).map_err(|e| corrupt(format!("headers {text:?}: {e}")))
    }
}

/// The domain's named values (a status, a field, an operator, …), stored by the names the API uses.
/// `@read` gives one type its own way of reading the stored name back.
macro_rules! named_codecs {
    (@read $type:ty, |$text:ident| $decode:expr) => {
        impl Codec for $type {
            const KIND: Kind = Kind::Text;
            fn encode(&self) -> Value<'_> {
                self.as_str().into()
            }
            fn decode(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
                let $text = cursor.text()?;
                $decode
            }
        }
    };
    ($($type:ty: $what:literal),* $(,)?) => {$(
        named_codecs!(@read $type, |text| {
            <$type>::parse(text).ok_or_else(|| corrupt(format!("unknown {} {text:?}", $what)))
        });
    )*};
}
named_codecs!(Status: "status", Field: "field", Operator: "operator", Trigger: "trigger", State: "state",
    Action: "monitor action", HookType: "hook type");

// An event's type and delivery state as read from the outbox: one this build writes, or `Other`
// with the stored name, so that one event a newer build wrote is delivered, not a stop for every
// reader of the outbox.
named_codecs!(@read EventKind, |text| {
    Ok(EventKind::parse(text).unwrap_or_else(|| EventKind::Other(unknown_name(text))))
});
named_codecs!(@read Delivery, |text| {
    Ok(Delivery::parse(text).unwrap_or_else(|| Delivery::Other(unknown_name(text))))
});

/// Distinct unknown names (event types and delivery states) kept at most: they live as long as
/// the process, so they are bounded.
const UNKNOWN_NAMES: usize = 64;

/// A name from the outbox this build does not know, kept: itself if it has an event type's shape
/// (`balance.archived`: at most 64 bytes, words of lower-case letters, digits, `_` and `-` joined by
/// single dots, so it is a valid NATS subject and AMQP routing key prefix) and is among the first
/// `UNKNOWN_NAMES` distinct ones; otherwise `unknown`.
fn unknown_name(text: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let word = |w: &str| {
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
    };
    if text.len() > 64 || !text.split('.').all(word) {
        return "unknown";
    }
    let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(name) = names.iter().find(|n| **n == text) {
        return name;
    }
    if names.len() >= UNKNOWN_NAMES {
        return "unknown";
    }
    let name: &'static str = Box::leak(text.to_string().into_boxed_str());
    names.push(name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_name_reads_back_known_or_as_it_was_stored_within_bounds() {
        let kind = |text: &str| EventKind::parse(text).unwrap_or_else(|| EventKind::Other(unknown_name(text)));
        for known in EventKind::ALL {
            assert_eq!(kind(known.as_str()), known);
        }
        assert_eq!(kind("balance.archived").as_str(), "balance.archived");
        assert_eq!(kind("ledger.v2_closed-out").as_str(), "ledger.v2_closed-out");
        // Not a type's shape: it would not even make a subject or a routing key.
        for bad in ["", "a..b", ".a", "a.", "Balance.x", "a b", "a.*", "a>b", &"x".repeat(65)] {
            assert_eq!(unknown_name(bad), "unknown", "{bad:?}");
        }
        // Bounded: past the first distinct names, every new one reads as unknown; kept ones stay.
        let names: Vec<String> = (0..2 * UNKNOWN_NAMES).map(|i| format!("future.kind{i}")).collect();
        let read: Vec<&str> = names.iter().map(|n| unknown_name(n)).collect();
        assert!(read.iter().filter(|n| **n == "unknown").count() >= UNKNOWN_NAMES);
        assert_eq!(unknown_name("balance.archived"), "balance.archived");
    }
    use crate::domain::velocity::Checkpoint;

    /// One text column, as a driver would hand it over.
    struct OneText(String);

    impl RowAccess for OneText {
        fn is_null(&self, _: usize) -> StoreResult<bool> {
            Ok(false)
        }
        fn text(&self, _: usize) -> StoreResult<Option<&str>> {
            Ok(Some(&self.0))
        }
        fn int(&self, _: usize) -> StoreResult<Option<i64>> {
            Ok(None)
        }
        fn bool(&self, _: usize) -> StoreResult<Option<bool>> {
            Ok(None)
        }
    }

    fn stored(log: &CheckpointLog) -> String {
        match padded_log(log) {
            Value::Text(text) => text.into_owned(),
            other => panic!("a log is stored as text, not {other:?}"),
        }
    }

    fn read(text: String) -> CheckpointLog {
        CheckpointLog::decode(&mut Cursor::new(&OneText(text))).expect("a stored log reads back")
    }

    #[test]
    fn a_balance_rows_checkpoint_log_keeps_one_width_and_reads_back_unchanged() {
        let mut log = CheckpointLog::default();
        assert_eq!(stored(&log), "", "a balance without velocity monitors is not widened");
        for version in 1..=40 {
            if log.is_full() {
                log.take();
            }
            let checkpoint = Checkpoint {
                at_ms: 1_733_000_000_000 + version * 40,
                debit_balance: BigInt::from(version * 10_000),
                credit_balance: BigInt::from(version * 7_500),
                version,
            };
            log.push(checkpoint);
            let text = stored(&log);
            assert_eq!(text.len(), ROW_LOG_WIDTH, "version {version}: {text:?}");
            assert_eq!(read(text), log);
        }
    }

    #[test]
    fn a_log_wider_than_the_row_width_is_stored_whole() {
        let mut log = CheckpointLog::default();
        let huge = BigInt::from(10).pow(200);
        log.push(Checkpoint { at_ms: 1, debit_balance: huge.clone(), credit_balance: huge, version: 1 });
        let text = stored(&log);
        assert!(text.len() > ROW_LOG_WIDTH);
        assert_eq!(read(text), log);
    }
}
