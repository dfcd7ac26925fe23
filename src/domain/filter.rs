//! Blnk's list filters (`status_eq=APPLIED`, `POST /transactions/filter`), read into one `Query`
//! the store can run: which fields each collection has, what each operator means for each kind of
//! field, and how a value is read. Nothing is dropped: an unknown field, operator or value is a
//! `Problem` naming the parameter, never a filter silently left out (which would answer more than
//! was asked for).

use super::amount::Decimal;
use std::fmt;

/// At most this many conditions in one query (Blnk's limit).
pub const MAX_FILTERS: usize = 20;
/// At most this many values in one `in` (Blnk's limit).
pub const MAX_IN_VALUES: usize = 100;
/// At most this many characters in one value (Blnk's limit).
pub const MAX_VALUE_CHARS: usize = 1000;

/// A list that can be filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Ledgers,
    Balances,
    Transactions,
    Identities,
    /// Monitors of balances and ledger-wide ones together (Keel's).
    Monitors,
}

impl Collection {
    /// The name Blnk's messages use (`invalid field 'x' for table 'transactions'`).
    pub fn name(self) -> &'static str {
        match self {
            Collection::Ledgers => "ledgers",
            Collection::Balances => "balances",
            Collection::Transactions => "transactions",
            Collection::Identities => "identities",
            Collection::Monitors => "balance-monitors",
        }
    }

    /// The fields a filter or a sort may name, with what each holds.
    fn fields(self) -> &'static [(&'static str, Field, Kind)] {
        use Field::*;
        use Kind::*;
        match self {
            Collection::Ledgers => &[("ledger_id", Id, Text), ("name", Name, Text), ("created_at", CreatedAt, Instant)],
            Collection::Balances => &[
                ("balance_id", Id, Text),
                ("ledger_id", LedgerId, Text),
                ("identity_id", IdentityId, Text),
                ("indicator", Indicator, Text),
                ("currency", Currency, Text),
                ("balance", Balance, Number),
                ("credit_balance", CreditBalance, Number),
                ("debit_balance", DebitBalance, Number),
                ("inflight_balance", InflightBalance, Number),
                ("inflight_credit_balance", InflightCreditBalance, Number),
                ("inflight_debit_balance", InflightDebitBalance, Number),
                ("created_at", CreatedAt, Instant),
            ],
            Collection::Transactions => &[
                ("transaction_id", Id, Text),
                ("parent_transaction", ParentTransaction, Text),
                ("amount", Amount, Number),
                ("precise_amount", PreciseAmount, Number),
                ("precision", Precision, Number),
                ("currency", Currency, Text),
                ("source", Source, Text),
                ("destination", Destination, Text),
                ("balance_id", BalanceId, Text),
                ("indicator", Indicator, Text),
                ("reference", Reference, Text),
                ("status", Status, Text),
                ("description", Description, Text),
                ("created_at", CreatedAt, Instant),
                ("effective_date", EffectiveDate, Instant),
            ],
            Collection::Identities => &[
                ("identity_id", Id, Text),
                ("identity_type", Named("identity_type"), Text),
                ("organization_name", Named("organization_name"), Text),
                ("category", Named("category"), Text),
                ("first_name", Named("first_name"), Text),
                ("last_name", Named("last_name"), Text),
                ("other_names", Named("other_names"), Text),
                ("gender", Named("gender"), Text),
                ("email_address", Named("email_address"), Text),
                ("phone_number", Named("phone_number"), Text),
                ("nationality", Named("nationality"), Text),
                ("street", Named("street"), Text),
                ("country", Named("country"), Text),
                ("state", Named("state"), Text),
                ("post_code", Named("post_code"), Text),
                ("city", Named("city"), Text),
                ("dob", Dob, Instant),
                ("created_at", CreatedAt, Instant),
            ],
            // A rule (ledger-wide monitor) has no `balance_id`, and its state and counts are those
            // of all its balances, as its reads show them; a balance's monitor has its balance's
            // ledger and currency.
            Collection::Monitors => &[
                ("monitor_id", Id, Text),
                ("balance_id", Named("balance_id"), Text),
                ("ledger_id", LedgerId, Text),
                ("currency", Currency, Text),
                ("field", Named("field"), Text),
                ("operator", Named("operator"), Text),
                ("trigger", Named("trigger_mode"), Text),
                ("action", Named("action"), Text),
                ("state", Named("state"), Text),
                ("description", Description, Text),
                ("trigger_count", TriggerCount, Number),
                ("last_triggered_at", LastTriggeredAt, Instant),
                ("created_at", CreatedAt, Instant),
            ],
        }
    }

    /// Whether `name` is a numeric field of the collection.
    pub fn is_number(self, name: &str) -> bool {
        matches!(self.field(name), Some((_, Kind::Number)))
    }

    fn field(self, name: &str) -> Option<(Field, Kind)> {
        self.fields().iter().find(|(n, _, _)| *n == name).map(|(_, f, k)| (f.clone(), *k))
    }

    /// Every field name, for messages and documentation.
    pub fn field_names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.fields().iter().map(|(n, _, _)| *n).collect();
        names.push("meta_data.<key>");
        names
    }
}

/// A field of a collection. What it means in SQL is the store's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The collection's own id (`ledger_id`, `balance_id`, `transaction_id`).
    Id,
    Name,
    CreatedAt,
    LedgerId,
    IdentityId,
    /// A balance's indicator; on transactions, the indicator of either balance it moved.
    Indicator,
    Currency,
    /// `credit_balance − debit_balance`, in minor units.
    Balance,
    CreditBalance,
    DebitBalance,
    /// `inflight_credit_balance − inflight_debit_balance`.
    InflightBalance,
    InflightCreditBalance,
    InflightDebitBalance,
    ParentTransaction,
    /// A transaction's amount in major units (`precise_amount ÷ precision`), as Blnk's `amount`.
    Amount,
    PreciseAmount,
    /// Blnk's precision: a power of ten (`100`).
    Precision,
    /// The balance a transaction moved money from (resolved: an indicator names its balance).
    Source,
    Destination,
    /// Either balance of a transaction (Blnk's virtual `balance_id`).
    BalanceId,
    Reference,
    Status,
    Description,
    /// When the money is deemed to have moved: `effective_date`, or `created_at` without one.
    EffectiveDate,
    /// A text column, by its name (an identity's fields, a monitor's `field`, `state`…).
    Named(&'static str),
    /// An identity's date of birth.
    Dob,
    /// How many times a monitor triggered.
    TriggerCount,
    /// When a monitor last triggered (none if never).
    LastTriggeredAt,
    /// One key of `meta_data` (`meta_data.customer_type`).
    Meta(String),
}

/// What a field holds, which decides how its values are read and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Compared as written, byte for byte.
    Text,
    /// An exact decimal number.
    Number,
    /// An instant, stored as RFC 3339 text in UTC with microseconds.
    Instant,
    /// A metadata value: text, a number or a boolean.
    Meta,
}

/// Blnk's operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Between,
    Like,
    ILike,
    IsNull,
    IsNotNull,
}

impl Op {
    /// Blnk's spellings, aliases included (`neq`, `gteq`, `lteq`), in any case.
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" | "neq" => Op::Ne,
            "gt" => Op::Gt,
            "gte" | "gteq" => Op::Gte,
            "lt" => Op::Lt,
            "lte" | "lteq" => Op::Lte,
            "in" => Op::In,
            "between" => Op::Between,
            "like" => Op::Like,
            "ilike" => Op::ILike,
            "isnull" => Op::IsNull,
            "isnotnull" => Op::IsNotNull,
            _ => return None,
        })
    }
}

/// A value read for a field of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Number(Decimal),
    /// An instant as precise as it was written: `2024-01-15` is the whole day, `from` (inclusive)
    /// to `until` (exclusive), both RFC 3339 in UTC with microseconds, so they compare as text.
    Instant {
        from: String,
        until: String,
    },
}

/// What an operator compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    None,
    One(Value),
    /// `between`'s bounds, both inclusive (an instant's upper bound: up to the end of its precision).
    Two(Value, Value),
    List(Vec<Value>),
}

/// One condition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: Field,
    pub kind: Kind,
    pub op: Op,
    pub operand: Operand,
}

/// A filtered, sorted page of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub collection: Collection,
    pub conditions: Vec<Condition>,
    /// The conditions are joined with OR (Blnk's `logical_operator=or`), not AND.
    pub any: bool,
    /// `None`: creation order.
    pub sort_by: Option<(Field, Kind)>,
    pub newest_first: bool,
    pub limit: u32,
    pub offset: u64,
    /// Also count every match (Blnk's `include_count`).
    pub count: bool,
    /// Only records whose index terms match (search's `q`, `domain::search`).
    pub text: Option<super::search::TextMatch>,
}

impl Query {
    /// Every item, newest first: what a list answers with no filter.
    pub fn all(collection: Collection, limit: u32, offset: u64) -> Query {
        Query {
            collection,
            conditions: Vec::new(),
            any: false,
            sort_by: None,
            newest_first: true,
            limit,
            offset,
            count: false,
            text: None,
        }
    }

    /// Sorts by `name` (a field of the collection); `created_at` is creation order.
    pub fn sort_by(&mut self, name: &str) -> Result<(), String> {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name == "created_at" {
            self.sort_by = None;
            return Ok(());
        }
        let virtual_field = matches!(
            (self.collection, self.collection.field(&name)),
            (Collection::Transactions, Some((Field::BalanceId | Field::Indicator, _)))
        );
        if virtual_field {
            return Err(format!("cannot sort by '{name}': it matches either balance of a transaction"));
        }
        match self.collection.field(&name) {
            Some((field, kind)) => {
                self.sort_by = Some((field, kind));
                Ok(())
            }
            None => {
                Err(format!("cannot sort by '{name}' for table '{}': field is not filterable", self.collection.name()))
            }
        }
    }
}

/// A refused filter: the parameter (`amount_gt`, or `filters[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub param: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

/// A filter's values as the client wrote them.
pub enum Raw<'a> {
    /// A query parameter's text: `in` splits it at `,`, `between` at `|`.
    Query(&'a str),
    /// A JSON filter's `value` and `values`, each scalar already turned into its text.
    Json { value: Option<String>, values: Option<Vec<String>> },
}

/// Splits a query parameter into field and operator at its last `_` (`created_at_gte` →
/// `created_at`, `gte`); `None` when what follows is no operator.
pub fn split_param(param: &str) -> Option<(&str, Op)> {
    let (field, op) = param.rsplit_once('_')?;
    Some((field, Op::parse(op)?)).filter(|(field, _)| !field.is_empty())
}

/// Reads one condition on `field` of `collection`; `param` names it in a refusal.
pub fn condition(collection: Collection, param: &str, field: &str, op: Op, raw: Raw<'_>) -> Result<Condition, Problem> {
    let problem = |message: String| Problem { param: param.to_string(), message };
    let (field, kind) = match field.strip_prefix("meta_data.") {
        Some(key) => {
            let valid = key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(problem(format!(
                    "invalid JSON key '{key}' in field '{field}': must match pattern ^[a-zA-Z][a-zA-Z0-9_]*$"
                )));
            }
            (Field::Meta(key.to_string()), Kind::Meta)
        }
        None => collection
            .field(field)
            .ok_or_else(|| problem(format!("invalid field '{field}' for table '{}'", collection.name())))?,
    };
    let virtual_field = collection == Collection::Transactions && matches!(field, Field::BalanceId | Field::Indicator);
    check_operator(kind, virtual_field.then_some(&field), op).map_err(problem)?;
    let operand = operand(kind, op, raw).map_err(problem)?;
    Ok(Condition { field, kind, op, operand })
}

/// Operators that mean nothing for a kind of field are refused rather than guessed at. A virtual
/// field (one that matches either balance of a transaction) takes only equality and patterns.
fn check_operator(kind: Kind, virtual_field: Option<&Field>, op: Op) -> Result<(), String> {
    let allowed = match (kind, op) {
        (Kind::Number | Kind::Instant, Op::Like | Op::ILike) => false,
        (_, Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Between) => virtual_field.is_none(),
        (_, Op::Like | Op::ILike) => virtual_field != Some(&Field::BalanceId),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("operator '{}' is not supported for this field", op_name(op)))
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Gt => "gt",
        Op::Gte => "gte",
        Op::Lt => "lt",
        Op::Lte => "lte",
        Op::In => "in",
        Op::Between => "between",
        Op::Like => "like",
        Op::ILike => "ilike",
        Op::IsNull => "isnull",
        Op::IsNotNull => "isnotnull",
    }
}

fn operand(kind: Kind, op: Op, raw: Raw<'_>) -> Result<Operand, String> {
    let texts: Vec<String> = match (op, raw) {
        (Op::IsNull | Op::IsNotNull, Raw::Query(text)) => {
            return match text.trim().to_ascii_lowercase().as_str() {
                "" | "true" => Ok(Operand::None),
                _ => Err(format!("{} takes no value but true", op_name(op))),
            }
        }
        (Op::IsNull | Op::IsNotNull, Raw::Json { .. }) => return Ok(Operand::None),
        (Op::In, Raw::Query(text)) => text.split(',').map(|v| v.trim().to_string()).collect(),
        (Op::Between, Raw::Query(text)) => text.split('|').map(str::to_string).collect(),
        (Op::In | Op::Between, Raw::Json { values: Some(values), .. }) => values,
        (Op::In | Op::Between, Raw::Json { values: None, .. }) => {
            return Err(format!("operator '{}' requires 'values'", op_name(op)))
        }
        (_, Raw::Query(text)) => vec![text.to_string()],
        (_, Raw::Json { value: Some(value), .. }) => vec![value],
        (_, Raw::Json { value: None, .. }) => return Err(format!("operator '{}' requires 'value'", op_name(op))),
    };
    if texts.iter().any(|t| t.chars().count() > MAX_VALUE_CHARS) {
        return Err(format!("value exceeds maximum length ({MAX_VALUE_CHARS} chars)"));
    }
    let mut values = texts.iter().map(|t| value(kind, op, t)).collect::<Result<Vec<_>, _>>()?;
    match op {
        Op::In if values.is_empty() || values.len() > MAX_IN_VALUES => {
            Err(format!("in takes 1 to {MAX_IN_VALUES} values"))
        }
        Op::In => Ok(Operand::List(values)),
        Op::Between if values.len() != 2 => {
            Err("between operator requires exactly 2 values (value1|value2)".to_string())
        }
        Op::Between => {
            let high = values.pop().expect("two values");
            Ok(Operand::Two(values.pop().expect("two values"), high))
        }
        _ => Ok(Operand::One(values.pop().expect("one value"))),
    }
}

fn value(kind: Kind, op: Op, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Text => Ok(Value::Text(text.to_string())),
        Kind::Number => Decimal::parse(text).map(Value::Number).map_err(|_| format!("value '{text}' is not a number")),
        Kind::Instant => instant(text).ok_or_else(|| {
            format!("value '{text}' is not a date or time (use RFC 3339, or YYYY-MM-DD[ HH:MM[:SS[.ffffff]]])")
        }),
        // Ordering compares numbers; matching compares text.
        Kind::Meta if matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Between) => Decimal::parse(text)
            .map(Value::Number)
            .map_err(|_| format!("value '{text}' is not a number (metadata is ordered as numbers)")),
        Kind::Meta => Ok(Value::Text(text.to_string())),
    }
}

/// Reads an instant written as Blnk reads one (RFC 3339, or a date with an optional time after
/// `T` or a space, without zone meaning UTC; `YYYY/MM/DD` too) with the span its precision
/// covers: a day, a minute, a second, a millisecond (1 to 5 fraction digits) or a microsecond.
pub fn instant(text: &str) -> Option<Value> {
    use time::{Date, Duration, Month, PrimitiveDateTime, Time, UtcOffset};
    let text = text.trim();
    let number = |s: &str| -> Option<u32> { s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok())? };
    let (date, rest) = (text.get(..10)?, &text[10..]);
    let sep = date.as_bytes()[4];
    if !(sep == b'-' || sep == b'/') || date.as_bytes()[7] != sep {
        return None;
    }
    let month = Month::try_from(u8::try_from(number(&date[5..7])?).ok()?).ok()?;
    let date = Date::from_calendar_date(number(&date[..4])? as i32, month, number(&date[8..10])? as u8).ok()?;
    let (mut time, mut span, mut rest) = (Time::MIDNIGHT, Duration::DAY, rest);
    if let Some(clock) = rest.strip_prefix(['T', 't', ' ']) {
        let hour = number(clock.get(..2)?)?;
        let minute = number(clock.get(3..5).filter(|_| clock.as_bytes().get(2) == Some(&b':'))?)?;
        let (mut second, mut micro) = (0, 0);
        span = Duration::MINUTE;
        rest = &clock[5..];
        if let Some(after) = rest.strip_prefix(':') {
            second = number(after.get(..2)?)?;
            span = Duration::SECOND;
            rest = &after[2..];
            if let Some(fraction) = rest.strip_prefix('.') {
                let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
                if !(1..=9).contains(&digits) {
                    return None;
                }
                let padded = format!("{:0<6}", &fraction[..digits.min(6)]);
                micro = number(&padded)?;
                span = if digits >= 6 { Duration::MICROSECOND } else { Duration::MILLISECOND };
                if digits < 6 {
                    micro -= micro % 1000;
                }
                rest = &fraction[digits..];
            }
        }
        time = Time::from_hms_micro(u8::try_from(hour).ok()?, minute as u8, second as u8, micro).ok()?;
    }
    let offset = match rest {
        "" | "Z" | "z" => UtcOffset::UTC,
        zone if span != Duration::DAY && zone.len() == 6 && matches!(zone.as_bytes()[0], b'+' | b'-') => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = (number(&zone[1..3])? as i8, number(zone.get(4..6)?)? as i8);
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
        _ => return None,
    };
    let from = PrimitiveDateTime::new(date, time).assume_offset(offset).to_offset(UtcOffset::UTC);
    Some(Value::Instant { from: rfc3339_micros(from), until: rfc3339_micros(from + span) })
}

/// How every row stamps time: `2024-01-15T10:30:00.000000Z`.
fn rfc3339_micros(at: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(text: &str) -> Option<(String, String)> {
        match instant(text)? {
            Value::Instant { from, until } => Some((from, until)),
            _ => None,
        }
    }

    #[test]
    fn an_instant_spans_the_precision_it_was_written_with() {
        let day = span("2024-01-15").unwrap();
        assert_eq!(day, ("2024-01-15T00:00:00.000000Z".into(), "2024-01-16T00:00:00.000000Z".into()));
        assert_eq!(span("2024/01/15"), Some(day));
        assert_eq!(span("2024-12-31 23:59").unwrap().1, "2025-01-01T00:00:00.000000Z");
        assert_eq!(span("2024-01-15T10:30:05Z").unwrap().1, "2024-01-15T10:30:06.000000Z");
        assert_eq!(
            span("2024-01-15T10:30:05.1234Z").unwrap(),
            ("2024-01-15T10:30:05.123000Z".into(), "2024-01-15T10:30:05.124000Z".into())
        );
        assert_eq!(span("2024-01-15T10:30:05.123456789Z").unwrap().0, "2024-01-15T10:30:05.123456Z");
        assert_eq!(span("2024-01-15T12:30:00+02:00").unwrap().0, "2024-01-15T10:30:00.000000Z");
        for bad in ["", "2024", "2024-13-01", "2024-02-30", "15/01/2024", "2024-01-15T25:00", "2024-01-15Tnoon", "x"] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_parameter_splits_at_its_last_underscore() {
        assert_eq!(split_param("created_at_between"), Some(("created_at", Op::Between)));
        assert_eq!(split_param("identity_id_isnull"), Some(("identity_id", Op::IsNull)));
        assert_eq!(split_param("meta_data.tier_NEQ"), Some(("meta_data.tier", Op::Ne)));
        assert_eq!(split_param("status"), None);
        assert_eq!(split_param("with_queued"), None);
        assert_eq!(split_param("_eq"), None);
    }

    #[test]
    fn unknown_fields_operators_and_values_are_refused_by_name() {
        let txns = Collection::Transactions;
        let refused = |field: &str, op: Op, raw: Raw<'_>| condition(txns, "p", field, op, raw).unwrap_err().message;
        assert!(refused("nope", Op::Eq, Raw::Query("1")).contains("invalid field 'nope'"));
        assert!(refused("amount", Op::Gt, Raw::Query("ten")).contains("not a number"));
        assert!(refused("amount", Op::Like, Raw::Query("1%")).contains("not supported"));
        assert!(refused("created_at", Op::Gte, Raw::Query("yesterday")).contains("not a date"));
        assert!(refused("status", Op::Between, Raw::Query("A")).contains("exactly 2"));
        assert!(refused("meta_data.1x", Op::Eq, Raw::Query("a")).contains("invalid JSON key"));
        assert!(refused("status", Op::In, Raw::Query(&vec!["A"; 101].join(","))).contains("1 to 100"));
        let ok = condition(txns, "p", "currency", Op::In, Raw::Query("USD, EUR")).unwrap();
        let usd_eur = vec![Value::Text("USD".into()), Value::Text("EUR".into())];
        assert_eq!(ok.operand, Operand::List(usd_eur));
    }
}
