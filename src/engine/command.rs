//! What the engine is asked to do and what it answers. Commands carry validated shapes; the rules
//! that need stored state (funds, references, lifecycle) are checked when the command is applied.

use crate::domain::amount::Precision;
use crate::domain::api_key::{ApiKey, Scope};
use crate::domain::balance::Balance;
use crate::domain::endpoint::{Endpoint, EndpointDelivery, EventTypes, Headers, HookType};
use crate::domain::error::DomainError;
use crate::domain::event::Event;
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Action, AutoTransfer, Condition, LedgerScope, Monitor, Trigger};
use crate::domain::preview::{BulkPreview, Preview};
use crate::domain::split::{Share, SplitSide};
use crate::domain::transaction::Transaction;
use crate::store::StoreError;
use num_bigint::BigInt;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub enum Command {
    CreateLedger {
        name: String,
        meta_data: Map<String, Value>,
    },
    UpdateLedger {
        id: String,
        name: String,
        meta_data: Option<Map<String, Value>>,
    },
    CreateBalance {
        ledger_id: String,
        currency: String,
        identity_id: String,
        meta_data: Map<String, Value>,
        /// A general-ledger balance created ahead of its first use (`@Fees`), or empty.
        indicator: String,
    },
    CreateTransaction(NewTransaction),
    /// A new identity (its id and `created_at` are the engine's).
    CreateIdentity(Identity),
    /// Replaces every field of identity `identity.id` (Blnk's `PUT`); a tokenized field sent back
    /// as its token stays tokenized.
    UpdateIdentity(Identity),
    /// Deletes an identity no balance belongs to.
    DeleteIdentity {
        id: String,
    },
    /// Replaces these fields' values with tokens (`domain::identity`).
    TokenizeIdentity {
        id: String,
        fields: Vec<String>,
    },
    /// The identity a balance belongs to.
    SetBalanceIdentity {
        balance_id: String,
        identity_id: String,
    },
    /// A split transaction (Blnk's `sources` or `destinations`): one leg per share with an amount,
    /// all applied in one commit or none (`splits.rs`).
    CreateSplit(NewSplit),
    /// Blnk's bulk request: its transactions in order, each a leg of the batch (`bulk.rs`).
    CreateBulk(NewBulk),
    /// Commit (all or part of the rest) or void an inflight transaction; or, by a split's or a bulk
    /// request's id, commit or void whole every leg or item still inflight (Blnk's documented use of
    /// those ids). Answers `Outcome::Transactions`: the children it wrote.
    FinishInflight {
        id: String,
        action: InflightAction,
    },
    /// Reverse what `id` moved, as Blnk resolves it: an `APPLIED` transaction; an inflight one's
    /// commits (each reversed) and its void (held back the other way, as a new inflight hold); a
    /// split's legs or a bulk request's items, each so. All in one commit or none. Each refund
    /// inherits its original's description and metadata: a non-empty `description` replaces it,
    /// `meta_data` keys are merged over it. Answers `Outcome::Transactions`: the refunds.
    Refund {
        id: String,
        description: String,
        meta_data: Map<String, Value>,
    },
    CreateMonitor(NewMonitor),
    /// Replaces a monitor's definition (and re-arms it: state back to `ok`).
    UpdateMonitor {
        id: String,
        monitor: NewMonitor,
    },
    DeleteMonitor {
        id: String,
    },
    /// Merges `meta_data`'s keys into a ledger's, a balance's or a transaction's metadata (a
    /// transaction's children too, as Blnk does); the id's prefix says which.
    UpdateMetadata {
        id: String,
        meta_data: Map<String, Value>,
    },
    /// Makes a delivered or failed event pending again.
    RedeliverEvent {
        id: String,
    },
    /// A scoped API key; the answer carries its secret, the only time it is ever shown.
    CreateApiKey {
        name: String,
        owner: String,
        scopes: Vec<Scope>,
        expires_at: Option<String>,
    },
    RevokeApiKey {
        id: String,
    },
    /// A webhook endpoint; it receives the events committed after this command.
    CreateEndpoint(NewEndpoint),
    /// Changes the fields given; reactivating an endpoint starts it from the events committed after.
    UpdateEndpoint {
        id: String,
        patch: EndpointPatch,
    },
    DeleteEndpoint {
        id: String,
    },
    /// Sends an event to an endpoint again (pending, due now, a fresh allowance of attempts).
    RedeliverToEndpoint {
        endpoint_id: String,
        event_id: String,
    },
    /// Internal: apply a transaction that was accepted as `QUEUED` (or `SCHEDULED`, now due).
    ApplyQueued(Transaction),
    /// Internal: look for queued and due scheduled transactions (the scheduler's nudge).
    RunQueue,
    /// Takes the snapshots these balances need, up to today's horizon (`domain::snapshot`). Runs
    /// in a batch of its own (`Core::execute`).
    TakeSnapshots {
        /// Sorted.
        balance_ids: Vec<String>,
    },
    /// Runs a money-moving command (`CreateTransaction`, `FinishInflight`, `Refund`) by the same
    /// rules against the current state, in a database transaction that is rolled back: it answers
    /// `Outcome::Preview` and changes nothing (`rehearsal.rs`).
    DryRun(Box<Command>),
}

/// A webhook endpoint as a client asked for it, validated by the API.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: EventTypes,
    /// Generated (`whsec_…`) when absent.
    pub secret: Option<String>,
    pub headers: Headers,
    pub active: bool,
    pub description: String,
    /// A Blnk hook's name, type and own settings (see `Endpoint`).
    pub name: String,
    pub hook: Option<HookType>,
    pub timeout_ms: Option<i64>,
    pub max_attempts: Option<u32>,
}

/// The fields of an endpoint to change; `None` keeps one as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<EventTypes>,
    pub secret: Option<String>,
    pub headers: Option<Headers>,
    pub active: Option<bool>,
    pub description: Option<String>,
    pub name: Option<String>,
    pub hook: Option<HookType>,
    pub timeout_ms: Option<i64>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub precise_amount: BigInt,
    pub precision: Precision,
    pub reference: String,
    pub description: String,
    pub currency: String,
    pub source: String,
    pub destination: String,
    pub allow_overdraft: bool,
    /// Minor units; zero for none (`Transaction::overdraft`).
    pub overdraft_limit: BigInt,
    /// RFC 3339 in UTC, as `Transaction::effective_date`.
    pub effective_date: Option<String>,
    /// RFC 3339 in UTC, as the `Transaction` fields of the same names.
    pub scheduled_for: Option<String>,
    pub inflight_expiry_date: Option<String>,
    pub inflight_commit_date: Option<String>,
    pub inflight: bool,
    /// Apply before answering (`true`) or answer `QUEUED` and apply shortly after (`false`).
    pub skip_queue: bool,
    pub meta_data: Map<String, Value>,
}

/// A split: `template` is the request (its `source` or `destination`, on the side split, is
/// empty); `amounts[i]` is what `shares[i]` gets (`domain::split::distribute`).
#[derive(Debug, Clone)]
pub struct NewSplit {
    pub template: NewTransaction,
    pub side: SplitSide,
    pub shares: Vec<Share>,
    pub amounts: Vec<BigInt>,
}

impl NewSplit {
    /// The legs with an amount, in the shares' order: (share index, the leg as a transaction).
    /// A leg's reference is the request's with the share's 1-based position (`order-7-2`), so a
    /// retried request finds its legs taken.
    pub fn legs(&self) -> Vec<(usize, NewTransaction)> {
        let positive = self.amounts.iter().enumerate().filter(|(_, a)| **a > BigInt::ZERO);
        positive
            .map(|(i, amount)| {
                let mut leg = self.template.clone();
                leg.precise_amount = amount.clone();
                leg.reference = format!("{}-{}", self.template.reference, i + 1);
                leg.skip_queue = true;
                match self.side {
                    SplitSide::Sources => leg.source = self.shares[i].identifier.clone(),
                    SplitSide::Destinations => leg.destination = self.shares[i].identifier.clone(),
                }
                (i, leg)
            })
            .collect()
    }
}

/// A bulk request: `items` are complete (the request's `inflight`, `skip_queue` and each item's
/// `sequence` already applied by the API).
#[derive(Debug, Clone)]
pub struct NewBulk {
    pub items: Vec<BulkItem>,
    /// All or nothing, in one commit; otherwise items are recorded in order up to the first refused.
    pub atomic: bool,
    /// Blnk's asynchronous mode: answer as accepted, and say how it ended in a
    /// `bulk_transaction.*` event (written in the same commit).
    pub run_async: bool,
}

impl NewBulk {
    /// A bulk request of `items` (each with the request's `inflight` and `skip_queue`). One that is
    /// atomic, or has a split item (whose legs commit together), is applied at once whatever
    /// `skip_queue` says, so that it can be all or nothing.
    pub fn new(mut items: Vec<BulkItem>, atomic: bool, run_async: bool) -> NewBulk {
        if atomic || items.iter().any(|item| matches!(item, BulkItem::Split(_))) {
            // Every item's flag, a split item's too: the dry run reads the request's mode from it.
            for item in &mut items {
                match item {
                    BulkItem::Transaction(t) => t.skip_queue = true,
                    BulkItem::Split(split) => split.template.skip_queue = true,
                }
            }
        }
        NewBulk { items, atomic, run_async }
    }
}

/// One item of a bulk request: a transaction, or a split whose legs are all recorded or none.
#[derive(Debug, Clone)]
pub enum BulkItem {
    Transaction(NewTransaction),
    Split(NewSplit),
}

impl BulkItem {
    /// The transactions the item records: itself, or a split's legs with an amount.
    pub fn legs(&self) -> std::borrow::Cow<'_, [NewTransaction]> {
        match self {
            BulkItem::Transaction(t) => std::borrow::Cow::Borrowed(std::slice::from_ref(t)),
            BulkItem::Split(split) => std::borrow::Cow::Owned(split.legs().into_iter().map(|(_, leg)| leg).collect()),
        }
    }

    /// The item as the client wrote it (a split's template).
    pub fn template(&self) -> &NewTransaction {
        match self {
            BulkItem::Transaction(t) => t,
            BulkItem::Split(split) => &split.template,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMonitor {
    /// The balance watched; empty for a ledger-wide monitor.
    pub balance_id: String,
    /// `Some` for a ledger-wide monitor (a rule): the balances it watches.
    pub scope: Option<LedgerScope>,
    pub condition: Condition,
    pub description: String,
    pub call_back_url: String,
    pub meta_data: Map<String, Value>,
    pub trigger: Trigger,
    pub action: Action,
    /// What `action: "transfer"` records.
    pub transfer: Option<AutoTransfer>,
}

#[derive(Debug, Clone)]
pub enum InflightAction {
    /// The amount to commit, as the client wrote it (in the inflight transaction's precision);
    /// both `None` commits everything still inflight.
    Commit {
        amount: Option<String>,
        precise_amount: Option<String>,
    },
    Void,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ledger(Ledger),
    Balance(Balance),
    Transaction(Transaction),
    /// What a commit, void or refund wrote, in order (one transaction, or one per leg or item of
    /// a split or bulk request it was asked about): the API answers the first, as Blnk does.
    Transactions(Vec<Transaction>),
    Monitor(Monitor),
    MonitorDeleted,
    Event(Event),
    ApiKey {
        key: ApiKey,
        secret: Option<String>,
    },
    /// A webhook endpoint; `show_secret` when the command chose or changed its secret.
    Endpoint {
        endpoint: Endpoint,
        show_secret: bool,
    },
    EndpointDelivery(EndpointDelivery),
    Preview(Preview),
    /// A dry run of a bulk request: each item's preview, and the request's effect on the balances.
    BulkPreview(BulkPreview),
    /// A split: `parent` is what the request is answered with (it is not stored: its legs are),
    /// `legs[i]` the leg of share `i`, if it got an amount.
    Split {
        parent: Transaction,
        legs: Vec<Option<Transaction>>,
    },
    /// A bulk request: the transactions recorded (every leg of a split item), and the item refused
    /// (its index and why), if one was: nothing is recorded then if it was atomic, the items before
    /// it otherwise.
    Bulk {
        id: String,
        recorded: Vec<Transaction>,
        refused: Option<(usize, DomainError)>,
    },
    /// The entity's metadata after a merge.
    MetaData(Map<String, Value>),
    Identity(Identity),
    /// An identity was deleted, or a balance linked to one.
    Done,
    /// How many snapshots `TakeSnapshots` took.
    Snapshots(u64),
    /// `RunQueue` was noted.
    QueueNudged,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The command broke a rule; nothing was written.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// Storage failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine has stopped")]
    Stopped,
}

impl Command {
    /// The movements this command may make: a bulk request's items, else one. What sizes a batch
    /// for the engine's workers (`LARGE_BATCH`).
    pub fn movements(&self) -> usize {
        match self {
            Command::CreateBulk(bulk) => bulk.items.len().max(1),
            _ => 1,
        }
    }
}
