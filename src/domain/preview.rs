//! A dry run's findings: what a money-moving request would answer and move, had it not been
//! rolled back (`engine/rehearsal.rs`).

use super::balance::Balance;
use super::error::DomainError;
use super::monitor::Monitor;
use super::split::SplitSide;
use super::transaction::Transaction;

/// What a dry run found: what the command would have answered, and what it would have moved.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The transaction the command would write (a new one, a commit or void child, a refund), or
    /// the rule that refused it. Refused before any balance was locked (an unknown balance or
    /// transaction) is the engine's `Rejected` instead, as for the real command.
    pub result: Result<Transaction, DomainError>,
    /// The balances it names, source first, as they stand and as they would stand after it (equal
    /// when it is refused).
    pub balances: Vec<BalanceChange>,
    /// The monitors it would trigger, in evaluation order.
    pub monitors_triggered: Vec<Monitor>,
    /// A split's legs, each with what it would move (none when refused: a split is all or nothing).
    pub legs: Vec<Leg>,
}

/// One leg of a split: the share's identifier, its side, and its amount.
#[derive(Debug, Clone)]
pub struct Leg {
    pub identifier: String,
    pub role: Role,
    pub transaction: Transaction,
}

impl Leg {
    pub fn of(side: SplitSide, transaction: Transaction) -> Leg {
        match side {
            SplitSide::Sources => Leg { identifier: transaction.source.clone(), role: Role::Source, transaction },
            SplitSide::Destinations => {
                Leg { identifier: transaction.destination.clone(), role: Role::Destination, transaction }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct BalanceChange {
    pub role: Role,
    pub before: Balance,
    pub after: Balance,
    /// An indicator balance (`@Fees`) that does not exist yet: a real post would create it.
    pub is_new_indicator: bool,
}

/// The side of a transaction a balance is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
}
