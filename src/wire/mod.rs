//! Blnk's JSON shapes of the domain's types: what the API answers and what webhooks carry. Pure
//! translation, shared by `api` (responses) and `engine` (event bodies written to the outbox).

pub mod balance;
pub mod endpoint;
pub mod event;
pub mod identity;
pub mod ledger;
pub mod monitor;
pub mod number;
pub mod preview;
pub mod search;
pub mod transaction;

pub use balance::BalanceJson;
pub use endpoint::{EndpointDeliveryJson, EndpointJson};
pub use event::{EventFeedJson, EventJson};
pub use identity::IdentityJson;
pub use ledger::LedgerJson;
pub use monitor::MonitorJson;
pub use preview::PreviewJson;
pub use transaction::TransactionJson;
