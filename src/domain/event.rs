//! Events: what happened, written to the outbox in the same commit as the change that caused it,
//! and delivered to webhook subscribers at least once.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    BalanceMonitor,
    /// An edge monitor re-armed: its condition stopped holding (past its re-arm level, if any).
    BalanceMonitorResolved,
    /// A monitor's automatic transfer could not be made (no funds, a guard, a chain too long).
    BalanceMonitorActionFailed,
    TransactionScheduled,
    TransactionQueued,
    TransactionApplied,
    TransactionInflight,
    TransactionVoid,
    TransactionRejected,
    /// Blnk's creation events, sent to the server's webhook URL.
    LedgerCreated,
    BalanceCreated,
    /// A bulk request run with `run_async` finished: all applied, all held, or failed.
    BulkApplied,
    BulkInflight,
    BulkFailed,
    /// Something failed in the background (Blnk's `system.error`). Sent at once, best effort, and
    /// never written to the outbox: the failing part is often the store (`webhooks::system_error`).
    SystemError,
    /// A type this build does not know, read from the outbox: written there by a newer Keel (after
    /// a rollback, or beside it during a rolling upgrade, which the schema allows). Its body was
    /// rendered by the build that wrote it, so it is delivered as stored, under the stored name
    /// (bounded: `store::codec`).
    Other(&'static str),
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BalanceMonitor => "balance.monitor",
            EventKind::BalanceMonitorResolved => "balance.monitor.resolved",
            EventKind::BalanceMonitorActionFailed => "balance.monitor.action_failed",
            EventKind::TransactionScheduled => "transaction.scheduled",
            EventKind::TransactionQueued => "transaction.queued",
            EventKind::TransactionApplied => "transaction.applied",
            EventKind::TransactionInflight => "transaction.inflight",
            EventKind::TransactionVoid => "transaction.void",
            EventKind::TransactionRejected => "transaction.rejected",
            EventKind::LedgerCreated => "ledger.created",
            EventKind::BalanceCreated => "balance.created",
            EventKind::BulkApplied => "bulk_transaction.applied",
            EventKind::BulkInflight => "bulk_transaction.inflight",
            EventKind::BulkFailed => "bulk_transaction.failed",
            EventKind::SystemError => "system.error",
            EventKind::Other(name) => name,
        }
    }

    /// Every kind, in the order of the enum.
    pub const ALL: [EventKind; 15] = [
        EventKind::BalanceMonitor,
        EventKind::BalanceMonitorResolved,
        EventKind::BalanceMonitorActionFailed,
        EventKind::TransactionScheduled,
        EventKind::TransactionQueued,
        EventKind::TransactionApplied,
        EventKind::TransactionInflight,
        EventKind::TransactionVoid,
        EventKind::TransactionRejected,
        EventKind::LedgerCreated,
        EventKind::BalanceCreated,
        EventKind::BulkApplied,
        EventKind::BulkInflight,
        EventKind::BulkFailed,
        EventKind::SystemError,
    ];

    /// A type this build sends, by name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Where an event is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Gave up after the configured number of attempts; can be redelivered.
    Failed,
    /// Recorded (monitor history) but nobody subscribes: no URL on the monitor or the server.
    NoTarget,
    /// A state this build does not know, read from the outbox (a newer Keel's, as for
    /// `EventKind::Other`): never leased by this build's dispatcher, shown as stored, and the event
    /// still goes to endpoints and streams, which keep their own state.
    Other(&'static str),
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::NoTarget => "no_target",
            Delivery::Other(name) => name,
        }
    }

    /// A state this build writes, by name.
    pub fn parse(text: &str) -> Option<Self> {
        [Delivery::Pending, Delivery::Delivered, Delivery::Failed, Delivery::NoTarget]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_<uuid>`; also the `webhook-id` header, stable across retries.
    pub id: String,
    pub kind: EventKind,
    /// The webhook body, rendered when the event happened: `{"event": kind, "data": …}`.
    pub body: String,
    /// The monitor's `call_back_url`; `None` sends to the server's webhook URL.
    pub url: Option<String>,
    pub monitor_id: Option<String>,
    pub transaction_id: Option<String>,
    pub created_at: String,
    pub delivery: Delivery,
    pub attempts: u32,
    /// Unix milliseconds of the next attempt (pending events only).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// The event's position in the outbox, assigned by the store when the event is written (0
    /// until then). Two events about one balance are numbered in the order their changes
    /// committed: what a receiver orders by, since deliveries run concurrently and retries reorder
    /// them.
    pub sequence: i64,
}

/// One delivery attempt of an event, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempted_at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The endpoint (`/webhooks`) it was made to; `None` for the server's webhook URL or a
    /// monitor's `call_back_url`.
    pub endpoint_id: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterAttempt {
    Delivered {
        at: String,
    },
    /// Unix milliseconds of the next attempt.
    RetryAt(i64),
    Failed,
}

impl AfterAttempt {
    /// The delivery's state after it, as stored: status, next attempt (Unix milliseconds, 0 when
    /// none is due) and when it was delivered.
    pub fn state(&self) -> (Delivery, i64, Option<&str>) {
        match self {
            AfterAttempt::Delivered { at } => (Delivery::Delivered, 0, Some(at.as_str())),
            AfterAttempt::RetryAt(when) => (Delivery::Pending, *when, None),
            AfterAttempt::Failed => (Delivery::Failed, 0, None),
        }
    }
}
