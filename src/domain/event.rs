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
    /// rendered by the build that wrote it, so it is delivered as stored, under the stored name.
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

    /// The type of an event read from the outbox: one this build sends, or `Other` with the stored
    /// name, so that one event from a newer build never stops delivery of the rest. A name that is
    /// not an event type's shape (`balance.archived`: at most 64 bytes, words of lower-case letters,
    /// digits, `_` and `-` joined by single dots, so it is a valid NATS subject and AMQP routing key
    /// prefix), or past the first 64 distinct unknown names, is read as `Other("unknown")`: the names
    /// are kept for the life of the process, so they are bounded.
    pub fn stored(text: &str) -> Self {
        Self::parse(text).unwrap_or_else(|| EventKind::Other(unknown_name(text)))
    }
}

/// Distinct unknown names (event types and delivery states) kept at most (see `EventKind::stored`).
const UNKNOWN_NAMES: usize = 64;

fn unknown_name(text: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let word = |w: &str| {
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
    };
    let shaped = text.len() <= 64 && text.split('.').all(word);
    if !shaped {
        return "unknown";
    }
    let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(name) = names.iter().find(|n| **n == text) {
        return name;
    }
    if names.len() >= UNKNOWN_NAMES {
        return "unknown";
    }
    let name: &'static str = Box::leak(text.to_string().into_boxed_str());
    names.push(name);
    name
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

    /// The state of an event read from the outbox: one this build writes, or `Other` with the
    /// stored name (bounded as `EventKind::stored`'s names are).
    pub fn stored(text: &str) -> Self {
        Self::parse(text).unwrap_or_else(|| Delivery::Other(unknown_name(text)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_type_reads_back_known_or_as_it_was_stored_within_bounds() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::stored(kind.as_str()), kind);
        }
        assert_eq!(EventKind::stored("balance.archived").as_str(), "balance.archived");
        assert_eq!(EventKind::stored("ledger.v2_closed-out").as_str(), "ledger.v2_closed-out");
        // Not a type's shape: it would not even make a subject or a routing key.
        for bad in ["", "a..b", ".a", "a.", "Balance.x", "a b", "a.*", "a>b", &"x".repeat(65)] {
            assert_eq!(EventKind::stored(bad).as_str(), "unknown", "{bad:?}");
        }
        // Bounded: past the first distinct names, every new one reads as unknown; known ones stay.
        let names: Vec<String> = (0..2 * UNKNOWN_NAMES).map(|i| format!("future.kind{i}")).collect();
        let read: Vec<&str> = names.iter().map(|n| EventKind::stored(n).as_str()).collect();
        assert!(read.iter().filter(|n| **n == "unknown").count() >= UNKNOWN_NAMES);
        assert_eq!(EventKind::stored("balance.archived").as_str(), "balance.archived");
        assert_eq!(EventKind::stored("transaction.applied"), EventKind::TransactionApplied);
        assert_eq!(Delivery::stored("no_target"), Delivery::NoTarget);
        assert_eq!(Delivery::stored("balance.archived"), Delivery::Other("balance.archived"));
    }
}
