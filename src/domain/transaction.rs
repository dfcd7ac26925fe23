//! Transactions and the movements they make. A transaction's life:
//!
//! ```text
//!  SCHEDULED ──► (as QUEUED, once its scheduled_for has come)
//!  QUEUED ──► APPLIED                          (a transfer)
//!    │   └──► INFLIGHT ──► COMMIT              (held, then fully committed)
//!    │            └──────► VOID                (held, then the rest released)
//!    └──────► REJECTED                         (refused when its turn came; nothing moved)
//! ```
//! Committing or voiding an inflight transaction creates a child transaction (`APPLIED` for the part
//! committed, `VOID` for the part released) whose `parent` is the inflight one. A refund is an
//! `APPLIED` child of the transaction it reverses, with source and destination swapped.

use super::amount::{AmountError, Decimal, Precision};
use super::balance::Balance;
use super::error::{DomainError, Resource};
use num_bigint::BigInt;
use num_traits::Signed;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waits for its `scheduled_for`, then goes as a queued one does.
    Scheduled,
    Queued,
    Applied,
    Inflight,
    Commit,
    Void,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Queued => "QUEUED",
            Status::Applied => "APPLIED",
            Status::Inflight => "INFLIGHT",
            Status::Commit => "COMMIT",
            Status::Void => "VOID",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Scheduled,
            Status::Queued,
            Status::Applied,
            Status::Inflight,
            Status::Commit,
            Status::Void,
            Status::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub id: String,
    pub parent: Option<String>,
    pub precise_amount: BigInt,
    pub precision: Precision,
    pub reference: String,
    pub description: String,
    pub currency: String,
    /// As the client wrote them: a balance id or an indicator such as `@World`.
    pub source: String,
    pub destination: String,
    /// The balances `source` and `destination` resolved to when the transaction was accepted.
    pub source_balance_id: String,
    pub destination_balance_id: String,
    pub status: Status,
    pub allow_overdraft: bool,
    /// Blnk's `overdraft_limit`, in minor units: the source may go down to `-overdraft_limit`
    /// (with or without `allow_overdraft`). Zero: no limit of its own (`allow_overdraft` decides).
    pub overdraft_limit: BigInt,
    pub inflight: bool,
    pub created_at: String,
    /// When the money is deemed to have moved (Blnk's `effective_date`, RFC 3339 in UTC), if the
    /// client said; otherwise `created_at`. Children inherit it.
    pub effective_date: Option<String>,
    /// When a `SCHEDULED` transaction is due (RFC 3339 in UTC).
    pub scheduled_for: Option<String>,
    /// An inflight transaction's hold is voided (what is left of it) at this time...
    pub inflight_expiry_date: Option<String>,
    /// ...or committed (all that is left) at this one, whichever the client set.
    pub inflight_commit_date: Option<String>,
    /// The split this transaction is a leg of: the id its request was answered with, which is
    /// not a transaction of its own (Blnk shows it as `parent_transaction`).
    pub group: Option<String>,
    pub meta_data: Map<String, Value>,
}

impl Transaction {
    /// The decimal `amount`, exactly `precise_amount ÷ precision`.
    pub fn amount(&self) -> String {
        self.precision.to_major(&self.precise_amount)
    }
}

/// How far a transfer or hold may take its source below zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overdraft {
    /// Not at all: the source's available balance must cover the amount.
    None,
    /// Down to minus this many minor units.
    Limit(BigInt),
    /// Without limit (`allow_overdraft` with no `overdraft_limit`).
    Unlimited,
}

impl Transaction {
    /// Blnk's rule: a positive `overdraft_limit` bounds the overdraft whatever `allow_overdraft`
    /// says; without one, `allow_overdraft` allows any.
    pub fn overdraft(&self) -> Overdraft {
        Self::overdraft_of(self.allow_overdraft, &self.overdraft_limit)
    }

    /// The same rule, for a transaction not made yet.
    pub fn overdraft_of(allow_overdraft: bool, overdraft_limit: &BigInt) -> Overdraft {
        match (overdraft_limit.is_positive(), allow_overdraft) {
            (true, _) => Overdraft::Limit(overdraft_limit.clone()),
            (false, true) => Overdraft::Unlimited,
            (false, false) => Overdraft::None,
        }
    }
}

/// What a transaction does to its two balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Debit the source, credit the destination.
    Transfer,
    /// Hold the amount: inflight debit on the source, inflight credit on the destination.
    Hold,
    /// Turn part of a hold into a transfer.
    CommitHold,
    /// Give part of a hold back.
    ReleaseHold,
}

/// What a new transaction does when it is applied, and the status it then has: an inflight one
/// holds the amount, any other transfers it.
pub fn first_movement(inflight: bool) -> (Movement, Status) {
    if inflight {
        (Movement::Hold, Status::Inflight)
    } else {
        (Movement::Transfer, Status::Applied)
    }
}

/// Applies `movement` of `amount` from `source` to `destination`, all or nothing.
///
/// Invariant D1 (double entry): every movement changes the source and the destination by the same
/// amount in opposite directions, so per currency the sum of `balance` and of `inflight_balance`
/// over all balances stays zero.
pub fn apply_movement(
    movement: Movement,
    source: &mut Balance,
    destination: &mut Balance,
    amount: &BigInt,
    overdraft: &Overdraft,
) -> Result<(), DomainError> {
    assert!(amount.is_positive(), "a movement of a non-positive amount is a bug upstream");
    assert_ne!(source.id, destination.id, "a movement needs two distinct balances");
    assert_eq!(source.currency, destination.currency, "currencies are checked before a movement");
    let needs_funds = matches!(movement, Movement::Transfer | Movement::Hold);
    if needs_funds && !source.is_indicator() {
        let after = source.available() - amount;
        match overdraft {
            Overdraft::None if after.is_negative() => return Err(DomainError::InsufficientFunds(source.id.clone())),
            Overdraft::Limit(limit) if after < -limit => {
                return Err(DomainError::OverdraftLimitExceeded(source.id.clone()))
            }
            _ => {}
        }
    }
    match movement {
        Movement::Transfer => {
            source.debit_balance += amount;
            destination.credit_balance += amount;
        }
        Movement::Hold => {
            source.inflight_debit_balance += amount;
            destination.inflight_credit_balance += amount;
        }
        Movement::CommitHold => {
            source.inflight_debit_balance -= amount;
            destination.inflight_credit_balance -= amount;
            source.debit_balance += amount;
            destination.credit_balance += amount;
        }
        Movement::ReleaseHold => {
            source.inflight_debit_balance -= amount;
            destination.inflight_credit_balance -= amount;
        }
    }
    source.version += 1;
    destination.version += 1;
    source.assert_invariants();
    destination.assert_invariants();
    Ok(())
}

/// Takes back, exactly, what a successful `apply_movement` with the same arguments did (an
/// all-or-nothing command tries its movements first, then makes them for real).
pub fn undo_movement(movement: Movement, source: &mut Balance, destination: &mut Balance, amount: &BigInt) {
    match movement {
        Movement::Transfer => {
            source.debit_balance -= amount;
            destination.credit_balance -= amount;
        }
        Movement::Hold => {
            source.inflight_debit_balance -= amount;
            destination.inflight_credit_balance -= amount;
        }
        Movement::CommitHold => {
            source.inflight_debit_balance += amount;
            destination.inflight_credit_balance += amount;
            source.debit_balance -= amount;
            destination.credit_balance -= amount;
        }
        Movement::ReleaseHold => {
            source.inflight_debit_balance += amount;
            destination.inflight_credit_balance += amount;
        }
    }
    source.version -= 1;
    destination.version -= 1;
    source.assert_invariants();
    destination.assert_invariants();
}

/// Reads a transaction's `precision`; absent means 1 (amounts are already minor units).
pub fn parse_precision(precision: Option<&str>) -> Result<Precision, DomainError> {
    match precision {
        None => Ok(Precision::ONE),
        Some(text) => Precision::parse(text)
            .map_err(|e| DomainError::validation(Resource::Transaction, "precision", format!("precision {e}"))),
    }
}

/// Works out `precise_amount` from what a client sent: `precise_amount` (integer minor units), or
/// `amount` (decimal) × `precision`. When both are sent they must agree.
pub fn resolve_amount(
    amount: Option<&str>,
    precise_amount: Option<&str>,
    precision: Precision,
) -> Result<BigInt, DomainError> {
    let from_amount = amount
        .map(|text| {
            let decimal = Decimal::parse(text).map_err(|e| DomainError::InvalidAmount(format!("amount {e}")))?;
            if !decimal.is_positive() {
                return Err(DomainError::InvalidAmount("amount must be greater than zero".into()));
            }
            precision.to_minor(&decimal).map_err(|e| match e {
                AmountError::TooFine => DomainError::PrecisionNotInteger(format!(
                    "amount {text} has more decimal places than precision {precision} allows"
                )),
                other => DomainError::InvalidAmount(format!("amount {other}")),
            })
        })
        .transpose()?;
    let from_precise = precise_amount
        .map(|text| {
            let value = Decimal::parse(text)
                .and_then(|d| d.to_integer())
                .map_err(|e| DomainError::InvalidAmount(format!("precise_amount {e}")))?;
            if !value.is_positive() {
                return Err(DomainError::InvalidAmount("precise_amount must be greater than zero".into()));
            }
            Ok(value)
        })
        .transpose()?;
    match (from_amount, from_precise) {
        (Some(a), Some(p)) if a != p => {
            Err(DomainError::InvalidAmount(format!("amount × precision is {a} but precise_amount is {p}")))
        }
        (_, Some(p)) | (Some(p), None) => Ok(p),
        (None, None) => Err(DomainError::InvalidAmount("amount or precise_amount is required".into())),
    }
}

/// Reads Blnk's `overdraft_limit`: major units, exact in the transaction's precision (a limit finer
/// than it is refused, never rounded), not negative. Absent is zero: no limit of its own.
pub fn parse_overdraft_limit(limit: Option<&str>, precision: Precision) -> Result<BigInt, DomainError> {
    let Some(text) = limit else { return Ok(BigInt::ZERO) };
    let invalid = |why: String| DomainError::validation(Resource::Transaction, "overdraft_limit", why);
    let decimal = Decimal::parse(text).map_err(|e| invalid(format!("overdraft_limit {e}")))?;
    let minor = precision.to_minor(&decimal).map_err(|e| match e {
        AmountError::TooFine => {
            invalid(format!("overdraft_limit {text} has more decimal places than precision {precision} allows"))
        }
        other => invalid(format!("overdraft_limit {other}")),
    })?;
    if minor.is_negative() {
        return Err(invalid("overdraft_limit may not be negative".into()));
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(id: &str, indicator: &str) -> Balance {
        let mut b = Balance::new(id.into(), "ldg".into(), "USD".into(), "t".into());
        b.indicator = indicator.into();
        b
    }

    #[test]
    fn amounts_resolve_exactly() {
        let resolve = |a, p, pr| resolve_amount(a, p, parse_precision(pr)?);
        let ok = |a, p, pr| resolve(a, p, pr).map(|v| v.to_string());
        assert_eq!(ok(Some("0.1"), None, Some("100")), Ok("10".into()));
        assert_eq!(ok(None, Some("525"), Some("100")), Ok("525".into()));
        assert_eq!(ok(Some("5.25"), Some("525"), Some("100")), Ok("525".into()));
        assert_eq!(ok(Some("7"), None, None), Ok("7".into()));
        assert!(matches!(resolve(Some("0.001"), None, Some("100")), Err(DomainError::PrecisionNotInteger(_))));
        assert!(matches!(resolve(Some("0"), None, None), Err(DomainError::InvalidAmount(_))));
        assert!(matches!(resolve(Some("-5"), None, None), Err(DomainError::InvalidAmount(_))));
        assert!(matches!(resolve(None, Some("1.5"), None), Err(DomainError::InvalidAmount(_))));
        assert!(matches!(resolve(Some("5"), Some("6"), None), Err(DomainError::InvalidAmount(_))));
        assert!(matches!(resolve(Some("5"), None, Some("30")), Err(DomainError::Validation { .. })));
        assert!(matches!(resolve(None, None, None), Err(DomainError::InvalidAmount(_))));
    }

    #[test]
    fn an_undone_movement_leaves_both_balances_as_they_were() {
        let (mut world, mut alice) = (balance("w", "@World"), balance("a", ""));
        let amount = BigInt::from(7);
        apply_movement(Movement::Transfer, &mut world, &mut alice, &BigInt::from(100), &Overdraft::None).unwrap();
        apply_movement(Movement::Hold, &mut alice, &mut world, &BigInt::from(30), &Overdraft::None).unwrap();
        for movement in [Movement::Transfer, Movement::Hold, Movement::CommitHold, Movement::ReleaseHold] {
            let before = (alice.clone(), world.clone());
            apply_movement(movement, &mut alice, &mut world, &amount, &Overdraft::None).unwrap();
            assert_ne!((&alice, &world), (&before.0, &before.1), "{movement:?} moved something");
            undo_movement(movement, &mut alice, &mut world, &amount);
            assert_eq!((alice.clone(), world.clone()), before, "{movement:?} taken back exactly");
        }
    }

    #[test]
    fn transfers_need_funds_unless_indicator_or_overdraft() {
        let (mut world, mut alice, mut bob) = (balance("w", "@World"), balance("a", ""), balance("b", ""));
        let ten = BigInt::from(10);
        apply_movement(Movement::Transfer, &mut world, &mut alice, &ten, &Overdraft::None).unwrap();
        assert_eq!(world.balance(), BigInt::from(-10));
        assert_eq!(
            apply_movement(Movement::Transfer, &mut alice, &mut bob, &BigInt::from(11), &Overdraft::None),
            Err(DomainError::InsufficientFunds("a".into()))
        );
        assert_eq!(alice.version, 1, "a refused movement changes nothing");
        apply_movement(Movement::Transfer, &mut alice, &mut bob, &BigInt::from(11), &Overdraft::Unlimited).unwrap();
        assert_eq!(alice.balance(), BigInt::from(-1));
    }

    #[test]
    fn holds_reserve_funds_and_commit_or_release() {
        let (mut world, mut alice, mut bob) = (balance("w", "@World"), balance("a", ""), balance("b", ""));
        apply_movement(Movement::Transfer, &mut world, &mut alice, &BigInt::from(10), &Overdraft::None).unwrap();
        apply_movement(Movement::Hold, &mut alice, &mut bob, &BigInt::from(8), &Overdraft::None).unwrap();
        assert_eq!(alice.available(), BigInt::from(2));
        assert!(apply_movement(Movement::Transfer, &mut alice, &mut bob, &BigInt::from(3), &Overdraft::None).is_err());
        apply_movement(Movement::CommitHold, &mut alice, &mut bob, &BigInt::from(5), &Overdraft::None).unwrap();
        apply_movement(Movement::ReleaseHold, &mut alice, &mut bob, &BigInt::from(3), &Overdraft::None).unwrap();
        assert_eq!((alice.balance(), bob.balance()), (BigInt::from(5), BigInt::from(5)));
        assert_eq!((alice.inflight_balance(), bob.inflight_balance()), (BigInt::from(0), BigInt::from(0)));
    }
}
