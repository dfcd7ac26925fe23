//! Balance monitors: a condition on one field of one balance (`debit_balance > 1000.00`), evaluated
//! after every transaction that touches the balance, against the balance as it stands right then.

use super::amount::{AmountError, Decimal, Precision};
use super::balance::Balance;
use super::error::{DomainError, Resource};
use num_bigint::BigInt;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Balance,
    CreditBalance,
    DebitBalance,
    InflightBalance,
    InflightCreditBalance,
    InflightDebitBalance,
}

impl Field {
    const ALL: [Field; 6] = [
        Field::Balance,
        Field::CreditBalance,
        Field::DebitBalance,
        Field::InflightBalance,
        Field::InflightCreditBalance,
        Field::InflightDebitBalance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Balance => "balance",
            Field::CreditBalance => "credit_balance",
            Field::DebitBalance => "debit_balance",
            Field::InflightBalance => "inflight_balance",
            Field::InflightCreditBalance => "inflight_credit_balance",
            Field::InflightDebitBalance => "inflight_debit_balance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The field's value in minor units: borrowed where the balance stores it, computed where it is
    /// a difference. Every monitor of both balances is evaluated after every transfer, so a copy
    /// of a stored total for each evaluation would be an allocation each.
    pub fn read(self, b: &Balance) -> Cow<'_, BigInt> {
        match self {
            Field::Balance => Cow::Owned(b.balance()),
            Field::CreditBalance => Cow::Borrowed(&b.credit_balance),
            Field::DebitBalance => Cow::Borrowed(&b.debit_balance),
            Field::InflightBalance => Cow::Owned(b.inflight_balance()),
            Field::InflightCreditBalance => Cow::Borrowed(&b.inflight_credit_balance),
            Field::InflightDebitBalance => Cow::Borrowed(&b.inflight_debit_balance),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Greater,
    Less,
    Equal,
    NotEqual,
    GreaterOrEqual,
    LessOrEqual,
}

impl Operator {
    const ALL: [Operator; 6] = [
        Operator::Greater,
        Operator::Less,
        Operator::Equal,
        Operator::NotEqual,
        Operator::GreaterOrEqual,
        Operator::LessOrEqual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Greater => ">",
            Operator::Less => "<",
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::GreaterOrEqual => ">=",
            Operator::LessOrEqual => "<=",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }

    pub fn compare(self, left: &BigInt, right: &BigInt) -> bool {
        match self {
            Operator::Greater => left > right,
            Operator::Less => left < right,
            Operator::Equal => left == right,
            Operator::NotEqual => left != right,
            Operator::GreaterOrEqual => left >= right,
            Operator::LessOrEqual => left <= right,
        }
    }
}

/// When a monitor whose condition holds sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// After every transaction that leaves the condition true (Blnk's behaviour).
    Every,
    /// Only when the condition goes from false to true.
    Crossing,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Every => "every",
            Trigger::Crossing => "crossing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Trigger::Every, Trigger::Crossing].into_iter().find(|t| t.as_str() == text)
    }
}

/// Whether the condition held at the monitor's last evaluation (`ok` before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Triggered,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Triggered => "triggered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [State::Ok, State::Triggered].into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub operator: Operator,
    /// The threshold in major units, as plain decimal text (`1000`, `0.1`, `-50`).
    pub value: String,
    pub precision: Precision,
    /// `value × precision`, exactly: what the field (minor units) is compared with.
    pub precise_value: BigInt,
}

impl Condition {
    /// Builds a condition from what a client sent; errors name the offending field.
    pub fn new(field: &str, operator: &str, value: &str, precision: Option<&str>) -> Result<Self, DomainError> {
        let invalid = |name: &str, message: String| DomainError::validation(Resource::Balance, name, message);
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
        let field = Field::parse(field).ok_or_else(|| {
            invalid("condition.field", format!("condition.field must be one of {}", names.join(", ")))
        })?;
        let operator = Operator::parse(operator).ok_or_else(|| {
            invalid("condition.operator", "condition.operator must be one of >, <, =, !=, >=, <=".into())
        })?;
        let precision = match precision {
            None => Precision::ONE,
            Some(text) => Precision::parse(text)
                .map_err(|e| invalid("condition.precision", format!("condition.precision {e}")))?,
        };
        let decimal = Decimal::parse(value).map_err(|e| invalid("condition.value", format!("condition.value {e}")))?;
        let precise_value = precision.to_minor(&decimal).map_err(|e| match e {
            AmountError::TooFine => invalid(
                "condition.value",
                format!("condition.value {value} has more decimal places than precision {precision} allows"),
            ),
            other => invalid("condition.value", format!("condition.value {other}")),
        })?;
        Ok(Condition { field, operator, value: decimal.to_plain_string(), precision, precise_value })
    }

    pub fn holds(&self, balance: &Balance) -> bool {
        self.operator.compare(&self.field.read(balance), &self.precise_value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub id: String,
    pub balance_id: String,
    pub condition: Condition,
    pub description: String,
    pub call_back_url: String,
    pub meta_data: Map<String, Value>,
    pub created_at: String,
    pub trigger: Trigger,
    pub state: State,
    pub trigger_count: i64,
    pub last_triggered_at: Option<String>,
}

impl Monitor {
    /// Evaluates the monitor against `balance` as it stands right after a transaction, updates its
    /// state, and says whether it fires (an event is due).
    pub fn evaluate(&mut self, balance: &Balance, now: &str) -> bool {
        debug_assert_eq!(balance.id, self.balance_id, "a monitor is evaluated on its own balance");
        let holds = self.condition.holds(balance);
        let fires = holds
            && match self.trigger {
                Trigger::Every => true,
                Trigger::Crossing => self.state == State::Ok,
            };
        self.state = if holds { State::Triggered } else { State::Ok };
        if fires {
            self.trigger_count += 1;
            self.last_triggered_at = Some(now.to_string());
        }
        fires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(credit: i64, debit: i64) -> Balance {
        let mut b = Balance::new("bln".into(), "ldg".into(), "USD".into(), "t".into());
        b.credit_balance = credit.into();
        b.debit_balance = debit.into();
        b
    }

    fn monitor(field: &str, op: &str, value: &str, precision: Option<&str>, trigger: Trigger) -> Monitor {
        Monitor {
            id: "mon".into(),
            balance_id: "bln".into(),
            condition: Condition::new(field, op, value, precision).unwrap(),
            description: String::new(),
            call_back_url: String::new(),
            meta_data: Map::new(),
            created_at: "t".into(),
            trigger,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
        }
    }

    #[test]
    fn thresholds_are_exact_minor_units() {
        let c = Condition::new("debit_balance", ">", "1000", Some("100")).unwrap();
        assert_eq!(c.precise_value, BigInt::from(100_000));
        let c = Condition::new("balance", "=", "0.1", Some("100")).unwrap();
        assert_eq!((c.precise_value.clone(), c.value.as_str()), (BigInt::from(10), "0.1"));
        assert_eq!(Condition::new("balance", "<", "-2.5", Some("10")).unwrap().precise_value, BigInt::from(-25));
        assert_eq!(Condition::new("balance", ">", "1e2", None).unwrap().value, "100");
    }

    #[test]
    fn bad_conditions_name_their_field() {
        let field_of = |r: Result<Condition, DomainError>| match r {
            Err(DomainError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(field_of(Condition::new("balanse", ">", "1", None)), "condition.field");
        assert_eq!(field_of(Condition::new("balance", "=>", "1", None)), "condition.operator");
        assert_eq!(field_of(Condition::new("balance", ">", "abc", None)), "condition.value");
        assert_eq!(field_of(Condition::new("balance", ">", "0.001", Some("100"))), "condition.value");
        assert_eq!(field_of(Condition::new("balance", ">", "1", Some("3"))), "condition.precision");
    }

    #[test]
    fn all_operators_on_all_fields() {
        let mut b = balance(500, 200);
        b.inflight_credit_balance = 70.into();
        b.inflight_debit_balance = 30.into();
        let values = [
            ("balance", 300),
            ("credit_balance", 500),
            ("debit_balance", 200),
            ("inflight_balance", 40),
            ("inflight_credit_balance", 70),
            ("inflight_debit_balance", 30),
        ];
        for (field, v) in values {
            for (op, below, at, above) in [
                (">", true, false, false),
                ("<", false, false, true),
                ("=", false, true, false),
                ("!=", true, false, true),
                (">=", true, true, false),
                ("<=", false, true, true),
            ] {
                let holds = |threshold: i64| Condition::new(field, op, &threshold.to_string(), None).unwrap().holds(&b);
                assert_eq!((holds(v - 1), holds(v), holds(v + 1)), (below, at, above), "{field} {op}");
            }
        }
    }

    #[test]
    fn every_fires_each_time_crossing_only_on_the_way_up() {
        let mut every = monitor("balance", ">", "10", None, Trigger::Every);
        let mut crossing = monitor("balance", ">", "10", None, Trigger::Crossing);
        let script = [(5, false, false), (20, true, true), (30, true, false), (0, false, false), (11, true, true)];
        for (amount, every_fires, crossing_fires) in script {
            let b = balance(amount, 0);
            assert_eq!(every.evaluate(&b, "t1"), every_fires, "every at {amount}");
            assert_eq!(crossing.evaluate(&b, "t1"), crossing_fires, "crossing at {amount}");
        }
        assert_eq!((every.trigger_count, crossing.trigger_count), (3, 2));
        assert_eq!(every.state, State::Triggered);
        assert_eq!(every.last_triggered_at.as_deref(), Some("t1"));
    }
}
