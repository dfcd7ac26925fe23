//! Broker streams: every event of the outbox published to a broker (NATS JetStream, RabbitMQ), in
//! commit order, each confirmed by the broker before the stream's cursor moves past it. The cursor
//! lives in the database (`stream_cursors`), so a restart, or a broker that was away, resumes from
//! the last confirmed event: nothing is lost, and an event is published twice only when a crash
//! or an outage came between the broker's confirmation and the cursor's write (the broker sees the
//! same event id again and may drop it: JetStream does within its duplicate window).
//!
//! Where several Keel processes share a PostgreSQL database, a lease on the cursor's row makes one
//! of them the publisher; another takes over when its lease runs out.

pub mod amqp;
pub mod nats;

use crate::domain::event::Event;
use crate::store::Store;
use crate::tasks;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Events read and published at a time.
const BATCH: u32 = 256;

/// How long a publisher's lease lasts; renewed when half is left.
pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// While the stream has caught up, how often it looks for events this process was not told of
/// (another process's, on a shared PostgreSQL) and for a lease another process let run out.
const POLL: Duration = Duration::from_millis(250);

/// Waits between attempts to reach a broker that is away: from the first to the last, doubling.
const RECONNECT: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// A broker that confirms what it stored.
pub trait Broker: Send + 'static {
    /// The broker, for logs.
    fn describe(&self) -> String;

    /// Connects (again), making sure where the events go exists.
    fn connect(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Publishes `events` in order and waits for the broker's confirmations: how many of them,
    /// from the first, were confirmed, and why the rest were not.
    fn publish(&mut self, events: &[Event]) -> impl Future<Output = (usize, Option<String>)> + Send;
}

/// Starts publishing to `broker` under the cursor `name`. `committed` changes after each commit of
/// this process that wrote events.
pub fn spawn<B: Broker>(name: String, broker: B, store: Arc<dyn Store>, committed: watch::Receiver<u64>) {
    tasks::task(TASK, run(name, broker, store, committed));
}

const TASK: &str = "broker stream";

// tidy: long because the stream's loop (connect, lease, read, publish, advance, wait) reads best whole
async fn run<B: Broker>(name: String, mut broker: B, store: Arc<dyn Store>, mut committed: watch::Receiver<u64>) {
    let owner = crate::engine::new_id("pub");
    let mut reconnect = RECONNECT.0;
    'connect: loop {
        if let Err(error) = broker.connect().await {
            tracing::warn!(stream = %name, broker = %broker.describe(), %error, "cannot reach the broker; retrying");
            tokio::time::sleep(reconnect).await;
            reconnect = (reconnect * 2).min(RECONNECT.1);
            continue;
        }
        tracing::info!(stream = %name, broker = %broker.describe(), "publishing events");
        reconnect = RECONNECT.0;
        let mut leased_until = 0;
        let mut cursor = 0;
        loop {
            if leased_until - unix_ms() < (LEASE / 2).as_millis() as i64 {
                match lease(&store, &name, &owner).await {
                    Some(Some((sequence, until))) => (cursor, leased_until) = (sequence, until),
                    // Another process publishes; look again later.
                    Some(None) => {
                        leased_until = 0;
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    None => {
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                }
            }
            committed.mark_unchanged();
            let after = cursor;
            let read = {
                let store = store.clone();
                tasks::blocking(TASK, move || store.reader()?.events_after(after, BATCH)).await
            };
            let events = match read {
                Some(Ok(events)) => events,
                Some(Err(error)) => {
                    tracing::error!(stream = %name, %error, "cannot read the outbox; retrying");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                None => return, // the runtime is shutting down
            };
            if events.is_empty() {
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            let (confirmed, failure) = broker.publish(&events).await;
            if confirmed > 0 {
                let through = events[confirmed - 1].sequence;
                match advance(&store, &name, &owner, through).await {
                    Some(true) => cursor = through,
                    // The lease ran out and another process took the stream: it goes on from the
                    // cursor it found, so these events may reach the broker twice, never not at all.
                    Some(false) => leased_until = 0,
                    None => {}
                }
            }
            if let Some(error) = failure {
                let broker = broker.describe();
                tracing::warn!(stream = %name, %broker, %error, "the broker did not confirm; reconnecting");
                tokio::time::sleep(reconnect).await;
                continue 'connect;
            }
        }
    }
}

/// The lease on `name`'s cursor: `Some(Some((cursor, until)))` when held, `Some(None)` when another
/// process holds it, `None` when the store failed (logged).
async fn lease(store: &Arc<dyn Store>, name: &str, owner: &str) -> Option<Option<(i64, i64)>> {
    let (store, name, owner) = (store.clone(), name.to_string(), owner.to_string());
    let leased = tasks::blocking(TASK, move || {
        let (now, until) = (unix_ms(), unix_ms() + LEASE.as_millis() as i64);
        let mut found = None;
        store.write_unflushed(&mut |w| {
            found = w.lease_stream(&name, &owner, now, until)?.map(|cursor| (cursor, until));
            Ok(())
        })?;
        Ok::<_, crate::store::StoreError>(found)
    })
    .await?;
    leased.map_err(|error| tracing::error!(%error, "cannot lease the stream's cursor")).ok()
}

/// Moves the cursor to `through`: `Some(false)` if the lease was lost, `None` if the store failed.
/// Not flushed: a cursor lost in a crash only means events are published again.
async fn advance(store: &Arc<dyn Store>, name: &str, owner: &str, through: i64) -> Option<bool> {
    let (store, name, owner) = (store.clone(), name.to_string(), owner.to_string());
    let moved = tasks::blocking(TASK, move || {
        let mut moved = false;
        store.write_unflushed(&mut |w| {
            moved = w.advance_stream(&name, &owner, through)?;
            Ok(())
        })?;
        Ok::<_, crate::store::StoreError>(moved)
    })
    .await?;
    moved.map_err(|error| tracing::error!(%error, "cannot move the stream's cursor")).ok()
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `<event type>.<balance id>`: where a broker files an event (a NATS subject after its prefix, an
/// AMQP routing key). The balance is a monitor's or a created balance's, a transaction's source, or
/// `none` for an event about no one balance (a ledger, a bulk request).
pub(crate) fn routing_key(event: &Event) -> String {
    let data: serde_json::Value =
        serde_json::from_str(&event.body).map(|mut b: serde_json::Value| b["data"].take()).unwrap_or_default();
    let balance = data["balance_id"].as_str().or(data["source"].as_str()).filter(|b| is_word(b)).unwrap_or("none");
    format!("{}.{balance}", event.kind.as_str())
}

/// What is published in place of an event too large for the broker: where to read it whole (the
/// event feed, which a stream records every event for). `limit` is the broker's setting that
/// refused it, by name (`max_payload`, `max_message_size`), and its value in bytes.
pub(crate) fn too_large(event: &Event, bytes: usize, limit: (&str, usize)) -> String {
    let mut too_large = serde_json::json!({
        "bytes": bytes,
        "read_it_at": format!("/events/feed?after={}&limit=1", event.sequence - 1),
    });
    too_large[limit.0] = limit.1.into();
    serde_json::json!({
        "sequence": event.sequence,
        "event": event.kind.as_str(),
        "event_id": event.id,
        "too_large": too_large,
    })
    .to_string()
}

/// One word of a subject or routing key: no separator, wildcard or white space.
fn is_word(text: &str) -> bool {
    !text.is_empty() && !text.contains(['.', '*', '>', '#', ' ', '\t', '\r', '\n'])
}
