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
    /// transaction) is the engine's `Rejected` instead, as for the real command. A command that
    /// writes several (a split; a commit, void or refund of a split or batch) shows one whose
    /// amount is their total, and lists them in `legs`.
    pub result: Result<Transaction, DomainError>,
    /// The balances it names, source first, as they stand and as they would stand after it (equal
    /// when it is refused).
    pub balances: Vec<BalanceChange>,
    /// The monitors it would trigger, in evaluation order.
    pub monitors_triggered: Vec<Monitor>,
    /// A split's legs, or the transactions a commit, void or refund of several would write, each
    /// with what it would move (none when refused: such a command is all or nothing).
    pub legs: Vec<Leg>,
}

impl Preview {
    /// A preview of a command refused before it could be projected (nothing it names exists).
    pub fn refused(why: DomainError) -> Preview {
        Preview { result: Err(why), balances: vec![], monitors_triggered: vec![], legs: vec![] }
    }
}

/// A dry run of a bulk request.
#[derive(Debug, Clone)]
pub struct BulkPreview {
    /// Each item's own verdict, in order, projected against the balances as the items before it
    /// that would apply leave them (an item refused moves nothing, and the next is projected on).
    pub items: Vec<Preview>,
    /// Every balance the items name, before the request and after it as it would really run: all
    /// or nothing when atomic; otherwise up to the item it would stop at (`stops_at`).
    pub balances: Vec<BalanceChange>,
    /// The item the real request would be refused at (answering its error), if any. Atomic, it
    /// records nothing then; otherwise the items before it stand.
    pub stops_at: Option<usize>,
}

/// One leg of a split (the share's identifier, its side), or one transaction of a commit, void
/// or refund of several (the original's id), with its amount.
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

    /// The child a commit, void or refund writes for `original` (Blnk lists it as a source).
    pub fn settling(original: &str, transaction: Transaction) -> Leg {
        Leg { identifier: original.to_string(), role: Role::Source, transaction }
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
