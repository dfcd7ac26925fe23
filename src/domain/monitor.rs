//! Balance monitors: a condition on one field of one balance (`debit_balance > 1000.00`), evaluated
//! after every transaction that touches the balance, against the balance as it stands right then.
//!
//! A monitor is a small state machine (`Monitor::evaluate`): `ok` (armed) until its condition
//! holds, then `triggered` until the condition stops holding — or, with a re-arm level
//! (`condition.reset_value`), until the field is back beyond that level. An edge monitor signals
//! both changes (`balance.monitor`, `balance.monitor.resolved`); a level monitor signals every
//! evaluation at which the condition holds (Blnk's behaviour). A guard (`action: "reject"`)
//! additionally refuses, before it moves anything, a transaction that would make it hold.

use super::amount::{AmountError, Decimal, Precision};
use super::balance::Balance;
use super::error::{DomainError, Resource};
use super::velocity::{Measure, Velocity, Window};
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
    /// (keel) What was debited from the balance within the condition's `window`.
    DebitVolume,
    /// (keel) What was credited to it within the window.
    CreditVolume,
    /// (keel) How many movements touched it within the window.
    TransactionCount,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::Balance,
        Field::CreditBalance,
        Field::DebitBalance,
        Field::InflightBalance,
        Field::InflightCreditBalance,
        Field::InflightDebitBalance,
        Field::DebitVolume,
        Field::CreditVolume,
        Field::TransactionCount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Balance => "balance",
            Field::CreditBalance => "credit_balance",
            Field::DebitBalance => "debit_balance",
            Field::InflightBalance => "inflight_balance",
            Field::InflightCreditBalance => "inflight_credit_balance",
            Field::InflightDebitBalance => "inflight_debit_balance",
            Field::DebitVolume => "debit_volume",
            Field::CreditVolume => "credit_volume",
            Field::TransactionCount => "transaction_count",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// What a velocity field measures over its window; `None` for a balance's own fields.
    pub fn measure(self) -> Option<Measure> {
        match self {
            Field::DebitVolume => Some(Measure::DebitVolume),
            Field::CreditVolume => Some(Measure::CreditVolume),
            Field::TransactionCount => Some(Measure::TransactionCount),
            _ => None,
        }
    }

    /// The field's value in minor units: borrowed where the balance stores it, computed where it is
    /// a difference. Every monitor of both balances is evaluated after every transfer, so a copy
    /// of a stored total for each evaluation would be an allocation each. A velocity field is
    /// measured over its window instead (`Monitor::observe`).
    pub fn read(self, b: &Balance) -> Cow<'_, BigInt> {
        match self {
            Field::Balance => Cow::Owned(b.balance()),
            Field::CreditBalance => Cow::Borrowed(&b.credit_balance),
            Field::DebitBalance => Cow::Borrowed(&b.debit_balance),
            Field::InflightBalance => Cow::Owned(b.inflight_balance()),
            Field::InflightCreditBalance => Cow::Borrowed(&b.inflight_credit_balance),
            Field::InflightDebitBalance => Cow::Borrowed(&b.inflight_debit_balance),
            Field::DebitVolume | Field::CreditVolume | Field::TransactionCount => {
                unreachable!("a velocity field is measured over its window, not read from the balance")
            }
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

    /// Whether a field that moved from `before` to `after` went further into the condition's side:
    /// up for `>`/`>=`, down for `<`/`<=`, any change for `=`/`!=`.
    pub fn worsens(self, before: &BigInt, after: &BigInt) -> bool {
        match self {
            Operator::Greater | Operator::GreaterOrEqual => after > before,
            Operator::Less | Operator::LessOrEqual => after < before,
            Operator::Equal | Operator::NotEqual => after != before,
        }
    }

    /// An ordering operator, the only kind a re-arm level means something for.
    fn is_ordering(self) -> bool {
        !matches!(self, Operator::Equal | Operator::NotEqual)
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

/// When a monitor whose condition holds sends an event. Blnk's open PR #388 spells the two modes
/// `level` and `edge`; Keel's first spelling was `every` and `crossing`. Both are accepted and a
/// monitor is read back as it was written, so each kind of client sees its own word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// After every transaction that leaves the condition true (Blnk's behaviour).
    Every,
    /// Only when the condition goes from false to true; `balance.monitor.resolved` when it re-arms.
    Crossing,
    /// `every`, as Blnk PR #388 spells it.
    Level,
    /// `crossing`, as Blnk PR #388 spells it.
    Edge,
}

impl Trigger {
    const ALL: [Trigger; 4] = [Trigger::Every, Trigger::Crossing, Trigger::Level, Trigger::Edge];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Every => "every",
            Trigger::Crossing => "crossing",
            Trigger::Level => "level",
            Trigger::Edge => "edge",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Signals changes of state only (`crossing`, `edge`), rather than every evaluation that holds.
    pub fn is_edge(self) -> bool {
        matches!(self, Trigger::Crossing | Trigger::Edge)
    }
}

/// What a monitor does besides recording its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Only events (Blnk's monitors).
    Notify,
    /// A guard: a transaction that would make the condition hold is refused before anything moves.
    Reject,
    /// When it triggers, records a transfer (`Monitor::transfer`) in the same commit.
    Transfer,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Notify => "notify",
            Action::Reject => "reject",
            Action::Transfer => "transfer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Action::Notify, Action::Reject, Action::Transfer].into_iter().find(|a| a.as_str() == text)
    }
}

/// The transfer a monitor with `action: "transfer"` records when it triggers: between its balance
/// and one other, of an amount it works out from the balance as it stands then.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoTransfer {
    /// The other balance (a `bln_` id, in the monitored balance's currency).
    pub counterparty: String,
    /// Money leaves the monitored balance (a sweep) rather than arriving (a top-up).
    pub outgoing: bool,
    pub amount: AutoAmount,
    pub description: String,
    /// Whether the source may go below zero for it (as a transaction's `allow_overdraft`).
    pub allow_overdraft: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AutoAmount {
    /// What the balance holds above the threshold (a sweep of `balance >`).
    Excess,
    /// What it lacks to reach the threshold (a top-up of `balance <`).
    Shortfall,
    /// A fixed amount: as written, and in minor units of the condition's precision.
    Fixed(String, BigInt),
}

impl AutoAmount {
    pub fn as_text(&self) -> &str {
        match self {
            AutoAmount::Excess => "excess",
            AutoAmount::Shortfall => "shortfall",
            AutoAmount::Fixed(text, _) => text,
        }
    }
}

impl AutoTransfer {
    /// Builds one from what a client wrote (`transfer.source` or `transfer.destination`, and
    /// `transfer.amount`: `"excess"`, `"shortfall"`, or an amount in the condition's precision).
    pub fn new(
        source: Option<&str>,
        destination: Option<&str>,
        amount: &str,
        precision: Precision,
        description: String,
        allow_overdraft: bool,
    ) -> Result<AutoTransfer, DomainError> {
        let (counterparty, outgoing) = match (source, destination) {
            (Some(source), None) => (source, false),
            (None, Some(destination)) => (destination, true),
            _ => {
                let message =
                    "transfer takes a source (a top-up into the monitored balance) or a destination (a sweep \
                               out of it), not both";
                return Err(invalid("transfer", message.into()));
            }
        };
        if !counterparty.starts_with("bln_") {
            let field = if outgoing { "transfer.destination" } else { "transfer.source" };
            return Err(invalid(field, format!("{field} must be a balance id (bln_…), not {counterparty:?}")));
        }
        let amount = match amount {
            "excess" => AutoAmount::Excess,
            "shortfall" => AutoAmount::Shortfall,
            text => {
                let (text, minor) = exact_level("transfer.amount", text, precision)?;
                if minor <= BigInt::ZERO {
                    return Err(invalid("transfer.amount", "transfer.amount must be more than 0".into()));
                }
                AutoAmount::Fixed(text, minor)
            }
        };
        Ok(AutoTransfer { counterparty: counterparty.to_string(), outgoing, amount, description, allow_overdraft })
    }

    /// What to move when the monitor triggers with its field at `observed`: `None` when there is
    /// nothing to move (no excess, no shortfall).
    pub fn amount_for(&self, condition: &Condition, observed: &BigInt) -> Option<BigInt> {
        let amount = match &self.amount {
            AutoAmount::Excess => observed - &condition.precise_value,
            AutoAmount::Shortfall => &condition.precise_value - observed,
            AutoAmount::Fixed(_, minor) => minor.clone(),
        };
        (amount > BigInt::ZERO).then_some(amount)
    }
}

/// What an evaluation says happened, when something did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `balance.monitor`: the condition holds (an edge monitor: it has just begun to).
    Triggered,
    /// `balance.monitor.resolved`: an edge monitor re-armed.
    Resolved,
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
    /// The re-arm level (`reset_value`, major units as plain decimal text), when there is one.
    pub reset_value: Option<String>,
    /// `reset_value × precision`: a triggered monitor re-arms once the field no longer passes it.
    pub reset_precise_value: Option<BigInt>,
    /// The window a velocity field (`debit_volume`, …) is measured over; `None` for the others.
    pub window: Option<Window>,
}

impl Condition {
    /// Builds a condition from what a client sent; errors name the offending field.
    pub fn new(field: &str, operator: &str, value: &str, precision: Option<&str>) -> Result<Self, DomainError> {
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
        let (value, precise_value) = exact_level("condition.value", value, precision)?;
        Ok(Condition {
            field,
            operator,
            value,
            precision,
            precise_value,
            reset_value: None,
            reset_precise_value: None,
            window: None,
        })
    }

    /// The same condition with a re-arm level: once triggered, the monitor stays triggered until
    /// the field no longer passes `reset` (`balance < 100` with reset 150 re-arms at 150 or more).
    /// The level must lie on the far side of the threshold (or on it), and only an ordering
    /// operator has sides.
    pub fn with_reset(mut self, reset: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "condition.reset_value";
        if !self.operator.is_ordering() {
            return Err(invalid(
                FIELD,
                format!("condition.reset_value needs >, >=, < or <=, not {}", self.operator.as_str()),
            ));
        }
        let (text, precise) = exact_level(FIELD, reset, self.precision)?;
        let beyond = match self.operator {
            Operator::Greater | Operator::GreaterOrEqual => precise > self.precise_value,
            _ => precise < self.precise_value,
        };
        if beyond {
            let side = if matches!(self.operator, Operator::Greater | Operator::GreaterOrEqual) {
                "at most"
            } else {
                "at least"
            };
            let message = format!("condition.reset_value must be {side} condition.value ({})", self.value);
            return Err(invalid(FIELD, message));
        }
        self.reset_value = Some(text);
        self.reset_precise_value = Some(precise);
        Ok(self)
    }

    /// The same condition over a window (`"24h"`): for the velocity fields, which need one.
    pub fn with_window(mut self, window: &str) -> Result<Self, DomainError> {
        self.window = Some(Window::parse(window).map_err(|e| invalid("condition.window", format!("condition.{e}")))?);
        Ok(self)
    }

    /// Whether the condition holds for `value`, the field as observed (minor units, or a count).
    pub fn holds_for(&self, value: &BigInt) -> bool {
        self.operator.compare(value, &self.precise_value)
    }

    /// Whether the condition holds for `balance`'s own field (not a velocity field).
    pub fn holds(&self, balance: &Balance) -> bool {
        self.holds_for(&self.field.read(balance))
    }

    /// Whether a triggered monitor whose condition no longer holds stays triggered: the field
    /// still passes the re-arm level.
    fn within_reset_band(&self, value: &BigInt) -> bool {
        self.reset_precise_value.as_ref().is_some_and(|reset| self.operator.compare(value, reset))
    }
}

/// `transfer` is given exactly with `action: "transfer"`, and an amount worked out from the
/// threshold fits the condition: `excess` sweeps out what `balance` holds above a `>`/`>=`
/// threshold, `shortfall` tops up what it lacks below a `<`/`<=` one.
fn check_transfer(condition: &Condition, action: Action, transfer: Option<&AutoTransfer>) -> Result<(), DomainError> {
    let transfer = match (action, transfer) {
        (Action::Transfer, Some(transfer)) => transfer,
        (Action::Transfer, None) => return Err(invalid("transfer", "action \"transfer\" needs a transfer".into())),
        (_, Some(_)) => return Err(invalid("transfer", "transfer goes with action \"transfer\"".into())),
        (_, None) => return Ok(()),
    };
    let above = matches!(condition.operator, Operator::Greater | Operator::GreaterOrEqual);
    let below = matches!(condition.operator, Operator::Less | Operator::LessOrEqual);
    let fits = match transfer.amount {
        AutoAmount::Excess => condition.field == Field::Balance && above && transfer.outgoing,
        AutoAmount::Shortfall => condition.field == Field::Balance && below && !transfer.outgoing,
        AutoAmount::Fixed(..) => true,
    };
    if !fits {
        let message = "transfer.amount \"excess\" sweeps what balance holds above a > or >= threshold out to a \
                       destination; \"shortfall\" tops up what it lacks below a < or <= threshold from a source";
        return Err(invalid("transfer.amount", message.into()));
    }
    if condition.field == Field::TransactionCount {
        return Err(invalid("transfer.amount", "a fixed transfer.amount needs a money field, not a count".into()));
    }
    Ok(())
}

fn invalid(name: &str, message: String) -> DomainError {
    DomainError::validation(Resource::Balance, name, message)
}

/// A threshold as a client wrote it: its plain decimal text and its exact value in minor units.
fn exact_level(name: &str, value: &str, precision: Precision) -> Result<(String, BigInt), DomainError> {
    let decimal = Decimal::parse(value).map_err(|e| invalid(name, format!("{name} {e}")))?;
    let precise = precision.to_minor(&decimal).map_err(|e| match e {
        AmountError::TooFine => {
            invalid(name, format!("{name} {value} has more decimal places than precision {precision} allows"))
        }
        other => invalid(name, format!("{name} {other}")),
    })?;
    Ok((decimal.to_plain_string(), precise))
}

/// The rules between a monitor's parts, checked when it is created or changed: a velocity field
/// needs a window and nothing else takes one; a re-arm level shapes when an edge monitor resolves,
/// so it means nothing to a level monitor or a guard; a transfer goes with `action: "transfer"`.
pub fn check_definition(
    condition: &Condition,
    trigger: Trigger,
    action: Action,
    transfer: Option<&AutoTransfer>,
) -> Result<(), DomainError> {
    check_transfer(condition, action, transfer)?;
    let field = condition.field.as_str();
    match (condition.field.measure(), &condition.window) {
        (Some(_), None) => {
            let message = format!("condition.window is required for {field}: the span it is measured over, as \"24h\"");
            return Err(DomainError::validation(Resource::Balance, "condition.window", message));
        }
        (None, Some(_)) => {
            let message =
                format!("condition.window applies to debit_volume, credit_volume and transaction_count, not {field}");
            return Err(DomainError::validation(Resource::Balance, "condition.window", message));
        }
        _ => {}
    }
    if condition.field == Field::TransactionCount && condition.precision != Precision::ONE {
        let message = "transaction_count is a count of movements: condition.precision must be 1 (or left out)";
        return Err(DomainError::validation(Resource::Balance, "condition.precision", message));
    }
    if condition.reset_value.is_some() && (!trigger.is_edge() || action == Action::Reject) {
        let message = "condition.reset_value applies to edge (crossing) monitors that notify: a level monitor \
                       signals whenever its condition holds, and a guard refuses the transaction instead";
        return Err(DomainError::validation(Resource::Balance, "condition.reset_value", message));
    }
    Ok(())
}

/// Which balances a ledger-wide monitor (a rule) watches: every balance of `ledger_id`, present and
/// future, optionally only those in `currency` and those whose `meta_data` holds every key of
/// `balance_meta_data` with the same value.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerScope {
    pub ledger_id: String,
    pub currency: Option<String>,
    pub balance_meta_data: Map<String, Value>,
}

impl LedgerScope {
    /// Whether the rule watches `balance`, as it stands now (its metadata may change).
    pub fn covers(&self, balance: &Balance) -> bool {
        balance.ledger_id == self.ledger_id
            && self.currency.as_ref().is_none_or(|c| *c == balance.currency)
            && self.balance_meta_data.iter().all(|(key, value)| balance.meta_data.get(key) == Some(value))
    }
}

/// A ledger-wide monitor's state for one balance: stored only once it differs from a fresh
/// instance's (armed, never triggered, a window starting when the balance was first seen), so a
/// rule over a million balances stores rows only for those it has acted on.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub monitor_id: String,
    pub balance_id: String,
    pub state: State,
    pub trigger_count: i64,
    pub last_triggered_at: Option<String>,
    pub velocity: Option<Velocity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub id: String,
    /// The balance watched. For a ledger-wide rule as stored, empty; for its instance on one
    /// balance (what a batch evaluates), that balance.
    pub balance_id: String,
    pub condition: Condition,
    pub description: String,
    pub call_back_url: String,
    pub meta_data: Map<String, Value>,
    pub created_at: String,
    pub trigger: Trigger,
    pub action: Action,
    pub state: State,
    pub trigger_count: i64,
    pub last_triggered_at: Option<String>,
    /// A velocity monitor's window state (`Some` exactly when `condition.window` is).
    pub velocity: Option<Velocity>,
    /// What `action: "transfer"` records (`Some` exactly then).
    pub transfer: Option<AutoTransfer>,
    /// `Some` for a ledger-wide monitor (a rule) and for each of its instances.
    pub scope: Option<LedgerScope>,
}

impl Monitor {
    /// A rule's instance on `balance`: the rule's definition with `balance`'s own state (`None`: a
    /// fresh one, whose window starts now). Evaluated, refused by and acted on exactly as a
    /// monitor of that balance.
    pub fn instance_on(&self, balance: &Balance, state: Option<&RuleState>, now_ms: i64) -> Monitor {
        debug_assert!(
            self.scope.as_ref().is_some_and(|s| s.covers(balance)),
            "G3: a rule has instances on the balances it covers"
        );
        let fresh = || self.condition.window.as_ref().map(|_| Velocity::starting(balance, now_ms));
        Monitor {
            balance_id: balance.id.clone(),
            state: state.map_or(State::Ok, |s| s.state),
            trigger_count: state.map_or(0, |s| s.trigger_count),
            last_triggered_at: state.and_then(|s| s.last_triggered_at.clone()),
            velocity: state.map_or_else(fresh, |s| s.velocity.clone().or_else(fresh)),
            ..self.clone()
        }
    }

    /// An instance's state, as stored for its balance.
    pub fn rule_state(&self) -> RuleState {
        debug_assert!(self.scope.is_some() && !self.balance_id.is_empty(), "only a rule's instance has one");
        RuleState {
            monitor_id: self.id.clone(),
            balance_id: self.balance_id.clone(),
            state: self.state,
            trigger_count: self.trigger_count,
            last_triggered_at: self.last_triggered_at.clone(),
            velocity: self.velocity.clone(),
        }
    }

    /// Evaluates the monitor against `balance` as it stands right after a transaction, updates its
    /// state, and says what it signals, if anything (an event is due).
    pub fn evaluate(&mut self, balance: &Balance, now: &str) -> Option<Signal> {
        debug_assert_eq!(balance.id, self.balance_id, "a monitor is evaluated on its own balance");
        let value = self.observe(balance);
        let holds = self.condition.holds_for(&value);
        let was = self.state;
        self.state = match (holds, was) {
            (true, _) => State::Triggered,
            (false, State::Triggered) if self.condition.within_reset_band(&value) => State::Triggered,
            (false, _) => State::Ok,
        };
        let signal = match self.trigger.is_edge() {
            true if self.state != was => Some(if holds { Signal::Triggered } else { Signal::Resolved }),
            true => None,
            false => holds.then_some(Signal::Triggered),
        };
        if signal == Some(Signal::Triggered) {
            self.trigger_count += 1;
            self.last_triggered_at = Some(now.to_string());
        }
        signal
    }

    /// Whether this monitor, a guard, refuses a movement after which its balance is `after`, when
    /// it saw `then` (`observe`) just before: the condition would hold afterwards, and either did
    /// not before or the movement takes the field further in (a deposit into a balance already
    /// past a floor is let through; another withdrawal is not).
    pub fn refuses(&self, then: &BigInt, after: &Balance) -> bool {
        if self.action != Action::Reject {
            return false;
        }
        let now = self.observe(after);
        let c = &self.condition;
        c.holds_for(&now) && (!c.holds_for(then) || c.operator.worsens(then, &now))
    }

    /// The monitored field of `balance` as it stands: its own total, or, for a velocity field, what
    /// moved through it within the window.
    pub fn observe<'b>(&self, balance: &'b Balance) -> Cow<'b, BigInt> {
        match (self.condition.field.measure(), &self.velocity) {
            (None, _) => self.condition.field.read(balance),
            (Some(measure), Some(velocity)) => Cow::Owned(velocity.measure(measure, balance)),
            (Some(_), None) => unreachable!("monitor {}: a velocity field has its window state", self.id),
        }
    }

    /// The refusal a guard answers, naming itself and what the field would have become.
    pub fn refusal(&self, after: &Balance) -> DomainError {
        let c = &self.condition;
        let would_be = c.precision.to_major(&self.observe(after));
        DomainError::RejectedByMonitor {
            monitor_id: self.id.clone(),
            message: format!(
                "transaction refused by monitor {}: {} of balance {} would be {would_be}, and the monitor \
                 rejects {} {} {}",
                self.id,
                c.field.as_str(),
                self.balance_id,
                c.field.as_str(),
                c.operator.as_str(),
                c.value
            ),
        }
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
            action: Action::Notify,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
            velocity: None,
            transfer: None,
            scope: None,
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
    fn every_fires_each_time_crossing_only_on_the_way_up_and_resolves_on_the_way_down() {
        use Signal::{Resolved as R, Triggered as T};
        let mut every = monitor("balance", ">", "10", None, Trigger::Every);
        let mut crossing = monitor("balance", ">", "10", None, Trigger::Crossing);
        let mut edge = monitor("balance", ">", "10", None, Trigger::Edge);
        let script =
            [(5, None, None), (20, Some(T), Some(T)), (30, Some(T), None), (0, None, Some(R)), (11, Some(T), Some(T))];
        for (amount, every_says, crossing_says) in script {
            let b = balance(amount, 0);
            assert_eq!(every.evaluate(&b, "t1"), every_says, "every at {amount}");
            assert_eq!(crossing.evaluate(&b, "t1"), crossing_says, "crossing at {amount}");
            assert_eq!(edge.evaluate(&b, "t1"), crossing_says, "edge (crossing's other name) at {amount}");
        }
        assert_eq!((every.trigger_count, crossing.trigger_count), (3, 2));
        assert_eq!(every.state, State::Triggered);
        assert_eq!(every.last_triggered_at.as_deref(), Some("t1"));
    }

    #[test]
    fn a_reset_value_keeps_a_hovering_balance_from_alerting_again() {
        use Signal::{Resolved as R, Triggered as T};
        // Low balance: alert below 100, re-arm only at 150 or more.
        let mut low = monitor("balance", "<", "100", None, Trigger::Edge);
        low.condition = low.condition.with_reset("150").unwrap();
        let script = [(120, None), (99, Some(T)), (101, None), (98, None), (149, None), (150, Some(R)), (99, Some(T))];
        for (amount, says) in script {
            assert_eq!(low.evaluate(&balance(amount, 0), "t"), says, "at {amount}");
        }
        assert_eq!(low.trigger_count, 2);
        // A reset equal to the threshold behaves as no reset at all.
        let mut plain = monitor("balance", ">=", "10", None, Trigger::Crossing);
        plain.condition = plain.condition.with_reset("10").unwrap();
        let said: Vec<_> = [10, 9, 10].iter().map(|&a| plain.evaluate(&balance(a, 0), "t")).collect();
        assert_eq!(said, [Some(T), Some(R), Some(T)]);
    }

    #[test]
    fn a_reset_value_lies_beyond_the_threshold_for_ordering_operators_only() {
        let field_of = |r: Result<Condition, DomainError>| match r {
            Err(DomainError::Validation { field, message, .. }) => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        };
        let c = |op: &str| Condition::new("balance", op, "100", Some("100")).unwrap();
        assert_eq!(c(">").with_reset("90.5").unwrap().reset_precise_value, Some(BigInt::from(9050)));
        assert_eq!(c("<=").with_reset("100").unwrap().reset_value.as_deref(), Some("100"));
        let (field, message) = field_of(c(">").with_reset("101"));
        assert_eq!((field.as_str(), message.contains("at most")), ("condition.reset_value", true));
        assert!(field_of(c("<").with_reset("99")).1.contains("at least"));
        assert_eq!(field_of(c("=").with_reset("100")).0, "condition.reset_value");
        assert_eq!(field_of(c(">").with_reset("1.001")).0, "condition.reset_value");
        let reset = c("<").with_reset("150").unwrap();
        assert!(check_definition(&reset, Trigger::Edge, Action::Notify, None).is_ok());
        assert!(check_definition(&reset, Trigger::Level, Action::Notify, None).is_err());
        assert!(check_definition(&reset, Trigger::Crossing, Action::Reject, None).is_err());
    }

    #[test]
    fn a_guard_refuses_what_makes_its_condition_hold_or_worse() {
        let mut floor = monitor("balance", "<", "0", None, Trigger::Every);
        floor.action = Action::Reject;
        let (at, below, further, back_up) = (balance(0, 0), balance(0, 5), balance(0, 7), balance(0, 2));
        let seen = |b: &Balance| b.balance(); // what a guard on `balance` observes
        assert!(floor.refuses(&seen(&at), &below), "into the condition");
        assert!(floor.refuses(&seen(&below), &further), "further in");
        assert!(!floor.refuses(&seen(&below), &back_up), "out of it, or on the way out, is let through");
        assert!(!floor.refuses(&seen(&at), &balance(3, 0)));
        floor.action = Action::Notify;
        assert!(!floor.refuses(&seen(&at), &below), "a monitor that only notifies never refuses");
        floor.action = Action::Reject;
        match floor.refusal(&below) {
            DomainError::RejectedByMonitor { monitor_id, message } => {
                assert_eq!(monitor_id, "mon");
                assert!(message.contains("would be -5"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
