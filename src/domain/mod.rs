//! The domain: exact amounts, ledgers, balances, the transaction lifecycle, monitors and their
//! velocity windows. Pure code: no I/O, no clock, no randomness; ids and timestamps are handed in
//! by the engine.

pub mod amount;
pub mod api_key;
pub mod balance;
pub mod currency;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod filter;
pub mod identity;
pub mod ledger;
pub mod monitor;
pub mod preview;
pub mod replay;
pub mod search;
pub mod snapshot;
pub mod split;
pub mod transaction;
pub mod velocity;
