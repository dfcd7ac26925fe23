//! Webhook endpoints (`/webhooks`): subscriptions beside the server's webhook URL and a monitor's
//! `call_back_url`. Each endpoint names the event types it wants, signs with its own secret, sends
//! its own headers, and keeps its own delivery state, so one failing endpoint never delays another.

use super::event::{Delivery, EventKind};
use std::collections::BTreeMap;

/// Most patterns in one endpoint's `events`.
pub const MAX_PATTERNS: usize = 64;
/// Most custom headers on one endpoint (or on the server's webhook URL).
pub const MAX_HEADERS: usize = 32;
/// Longest custom header value, in bytes.
const MAX_HEADER_VALUE: usize = 1024;
/// A given secret's length bounds, in bytes.
const SECRET_LENGTH: (usize, usize) = (16, 256);

/// Headers Keel sets itself on every delivery; a custom header may not replace them, so a
/// signature or a body length can never be forged by configuration.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-blnk-signature",
    "x-blnk-timestamp",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `whk_<uuid>`.
    pub id: String,
    pub url: String,
    pub event_types: EventTypes,
    /// Signs every delivery to this endpoint (both schemes of `webhooks::signing`).
    pub secret: String,
    pub headers: Headers,
    /// An inactive endpoint is sent nothing; reactivated, it receives what happens from then on.
    pub active: bool,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    /// A Blnk hook's name (empty for a `/webhooks` endpoint).
    pub name: String,
    /// Set for a Blnk hook (`/hooks`): which transactions it is sent, and its body's shape.
    pub hook: Option<HookType>,
    /// This endpoint's own wait for an answer, instead of the server's.
    pub timeout_ms: Option<i64>,
    /// This endpoint's own number of attempts per event, instead of the server's.
    pub max_attempts: Option<u32>,
    /// When its last round of deliveries ended, and whether that round's last attempt succeeded.
    pub last_run: Option<String>,
    pub last_success: Option<bool>,
}

impl Endpoint {
    /// Whether an event of this kind goes to this endpoint (when it is active).
    pub fn wants(&self, kind: EventKind) -> bool {
        match self.hook {
            Some(hook) => hook.events().contains(&kind),
            None => self.event_types.0.iter().any(|pattern| matches(pattern, kind.as_str())),
        }
    }
}

/// A Blnk hook's type. Blnk queues both kinds, so neither can stop a transaction: a
/// `PRE_TRANSACTION` hook hears of every transaction Blnk processes, whatever comes of it; a
/// `POST_TRANSACTION` hook of every one it recorded. Keel sends each after the commit that decided
/// it (Keel has no moment before a transaction where a hook could matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookType {
    PreTransaction,
    PostTransaction,
}

impl HookType {
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreTransaction => "PRE_TRANSACTION",
            HookType::PostTransaction => "POST_TRANSACTION",
        }
    }

    pub fn parse(text: &str) -> Option<HookType> {
        [HookType::PreTransaction, HookType::PostTransaction].into_iter().find(|t| t.as_str() == text)
    }

    /// The events a hook of this type is sent (each once per transaction).
    pub fn events(self) -> &'static [EventKind] {
        match self {
            HookType::PreTransaction => {
                &[EventKind::TransactionApplied, EventKind::TransactionInflight, EventKind::TransactionRejected]
            }
            HookType::PostTransaction => {
                &[EventKind::TransactionApplied, EventKind::TransactionInflight, EventKind::TransactionVoid]
            }
        }
    }
}

/// The event types an endpoint subscribes to: exact types (`balance.monitor`), a prefix with a
/// wildcard (`transaction.*`: every type that starts `transaction.`), or `*` for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(pub Vec<String>);

impl EventTypes {
    /// Every event.
    pub fn all() -> EventTypes {
        EventTypes(vec!["*".to_string()])
    }

    /// Checks a list as a client sent it: not empty, not too long, and every pattern names at
    /// least one event type Keel sends (a typo would otherwise subscribe to nothing, silently).
    pub fn parse(patterns: Vec<String>) -> Result<EventTypes, String> {
        if patterns.is_empty() {
            return Err("events must name at least one event type (\"*\" for all)".into());
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("events may name at most {MAX_PATTERNS} event types"));
        }
        for pattern in &patterns {
            if !EventKind::ALL.iter().any(|kind| matches(pattern, kind.as_str())) {
                return Err(format!(
                    "events: {pattern:?} matches no event type (types: {}; a prefix such as \
                     \"transaction.*\"; or \"*\")",
                    EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(EventTypes(patterns))
    }
}

fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// Custom headers sent with every delivery (Blnk's `BLNK_WEBHOOK_HEADERS`), by lower-case name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub BTreeMap<String, String>);

impl Headers {
    /// Checks headers as a client sent them: valid HTTP names and values, none Keel sets itself.
    pub fn parse(given: impl IntoIterator<Item = (String, String)>) -> Result<Headers, String> {
        let mut headers = BTreeMap::new();
        for (name, value) in given {
            let lower = name.to_ascii_lowercase();
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || name.len() > 64 || !name.chars().all(token) {
                return Err(format!("headers: {name:?} is not an HTTP header name"));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(format!("headers: {name} is set by Keel itself and cannot be replaced"));
            }
            let visible = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
            if value.len() > MAX_HEADER_VALUE || !value.chars().all(visible) {
                return Err(format!(
                    "headers: the value of {name} must be printable ASCII of at most {MAX_HEADER_VALUE} bytes"
                ));
            }
            if headers.insert(lower, value).is_some() {
                return Err(format!("headers: {name} is given twice"));
            }
        }
        if headers.len() > MAX_HEADERS {
            return Err(format!("headers: at most {MAX_HEADERS} headers"));
        }
        Ok(Headers(headers))
    }
}

/// Checks a secret a client chose: long enough to be a key, printable, no white space.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let (shortest, longest) = SECRET_LENGTH;
    if secret.len() < shortest || secret.len() > longest || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "secret must be {shortest} to {longest} printable ASCII characters without spaces \
             (omit it and Keel generates one)"
        ));
    }
    Ok(())
}

/// A secret in the Standard Webhooks form, from 32 random bytes the engine hands in.
pub fn new_secret(random: [u8; 32]) -> String {
    use base64::Engine;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(random))
}

/// One event's delivery to one endpoint, kept only once its first attempt failed: an endpoint's
/// state is its cursor in the outbox plus these rows, so a healthy endpoint writes nothing per
/// event.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointDelivery {
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: EventKind,
    /// `pending` (a retry is due at `next_attempt_at`), `delivered` or `failed`.
    pub status: Delivery,
    pub attempts: u32,
    /// Unix milliseconds of the next attempt (pending only).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(patterns: &[&str]) -> Endpoint {
        Endpoint {
            id: "whk_1".into(),
            url: "http://127.0.0.1/".into(),
            event_types: EventTypes::parse(patterns.iter().map(|p| p.to_string()).collect()).unwrap(),
            secret: new_secret([7; 32]),
            headers: Headers::default(),
            active: true,
            description: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
            name: String::new(),
            hook: None,
            timeout_ms: None,
            max_attempts: None,
            last_run: None,
            last_success: None,
        }
    }

    #[test]
    fn patterns_match_exact_types_prefixes_and_everything() {
        let transactions = endpoint(&["transaction.*"]);
        assert!(transactions.wants(EventKind::TransactionApplied));
        assert!(!transactions.wants(EventKind::BalanceMonitor));
        let monitors = endpoint(&["balance.monitor"]);
        assert!(monitors.wants(EventKind::BalanceMonitor));
        assert!(!monitors.wants(EventKind::BalanceMonitorResolved));
        let everything = endpoint(&["*"]);
        assert!(EventKind::ALL.iter().all(|k| everything.wants(*k)));
        assert!(endpoint(&["balance.monitor.*"]).wants(EventKind::BalanceMonitorResolved));
        let pre = Endpoint { hook: Some(HookType::PreTransaction), ..endpoint(&["*"]) };
        assert!(pre.wants(EventKind::TransactionRejected) && !pre.wants(EventKind::BalanceMonitor));
        assert!(!pre.wants(EventKind::TransactionQueued), "once per transaction, when it is processed");
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_refused() {
        for bad in ["transactions.*", "transaction", "transaction*", "*.applied", "", "balance.monitor.x"] {
            assert!(EventTypes::parse(vec![bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(EventTypes::parse(Vec::new()).is_err());
    }

    #[test]
    fn headers_keel_sets_cannot_be_replaced() {
        let one = |n: &str, v: &str| Headers::parse([(n.to_string(), v.to_string())]);
        assert!(one("Authorization", "Bearer abc").is_ok());
        for reserved in ["Content-Type", "webhook-signature", "X-Blnk-Signature", "Host"] {
            assert!(one(reserved, "x").is_err(), "{reserved}");
        }
        assert!(one("bad name", "x").is_err());
        assert!(one("X-Ok", "line\r\nbreak").is_err());
        assert!(Headers::parse([("A".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    }

    #[test]
    fn secrets_are_checked_and_generated_in_the_standard_form() {
        assert!(check_secret("short").is_err());
        assert!(check_secret("has a space in it, long enough").is_err());
        assert!(check_secret("a-long-enough-secret").is_ok());
        assert!(new_secret([0; 32]).starts_with("whsec_"));
    }
}
