//! The dispatcher: a loop that leases due events from the outbox and delivers each on its own task,
//! at most `concurrency` at once. Its bookkeeping is batched and cheap, so it keeps pace with the
//! engine: one commit records every attempt that finished since the last and leases the next
//! events, up to a round of slots ahead; that commit is not flushed (`Store::write_unflushed`), since
//! losing it in a crash only means an event is delivered again. A lease outlives the wait in that
//! queue and the delivery, so an event whose process died mid-delivery (or before its attempt was
//! recorded) is taken again once the lease runs out: delivery is at least once.

use super::callback;
use super::retry::RetryPolicy;
use super::send::{self, send, unix_ms, Sent, Target};
use crate::domain::endpoint::Headers;
use crate::domain::event::Event;
use crate::store::{AfterAttempt, Attempt, Store};
use crate::tasks;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Receives every event, except monitor events whose monitor has its own `call_back_url`.
    pub default_url: Option<String>,
    pub secret: Option<String>,
    /// `--webhook-headers`: sent to `default_url` with every delivery.
    pub headers: Headers,
    /// Signs Blnk hooks' calls (`/hooks`): the master API key, as Blnk signs them with its
    /// `secret_key`; unsigned without one.
    pub hook_secret: Option<String>,
    pub retry: RetryPolicy,
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
    /// Most deliveries in flight at once.
    pub concurrency: usize,
    /// How often due retries are looked for when nothing wakes the dispatcher.
    pub poll: Duration,
    /// `--callback-allowed-hosts`: a monitor's `call_back_url` outside them is never posted to.
    pub callback_hosts: Option<Vec<String>>,
}

/// Starts the dispatcher on the current Tokio runtime. `wake` is notified by the engine after each
/// commit that wrote events. A panic in it ends the process (`tasks`).
pub fn spawn(store: Arc<dyn Store>, config: WebhookConfig, wake: Arc<Notify>) {
    tasks::task(TASK, run(store, config, wake));
}

/// The dispatcher's name in the log line of a panic.
const TASK: &str = "webhook dispatcher";

/// Attempts recorded in one commit at most; more wait for the next.
const RECORD_BATCH: usize = 1024;

/// How long finished attempts may wait to be recorded while nothing else needs a commit: a
/// commit per delivery would cost more than the delivery.
const RECORD_EVERY: Duration = Duration::from_millis(20);

/// The dispatcher's state between commits.
struct Dispatcher {
    store: Arc<dyn Store>,
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    finished_tx: mpsc::UnboundedSender<(Attempt, AfterAttempt)>,
    /// Leased, not yet started: at most one round of slots (`concurrency`).
    queue: VecDeque<Event>,
    /// Finished, not yet recorded.
    to_record: Vec<(Attempt, AfterAttempt)>,
    /// The last lease found fewer events than it asked for: none is due until woken or polled.
    exhausted: bool,
    last_commit: Instant,
}

// tidy: long because the delivery loop (start, commit, wait until due, woken or finished) reads best whole
async fn run(store: Arc<dyn Store>, config: WebhookConfig, wake: Arc<Notify>) {
    let client = send::client(config.timeout);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    // One message per delivery in flight, so `concurrency` bounds what waits here.
    let (finished_tx, mut finished) = mpsc::unbounded_channel::<(Attempt, AfterAttempt)>();
    let mut d = Dispatcher {
        store,
        config: Arc::new(config),
        client,
        slots,
        finished_tx,
        queue: VecDeque::new(),
        to_record: Vec::new(),
        exhausted: false,
        last_commit: Instant::now(),
    };
    let mut depth_measured = Instant::now() - Duration::from_secs(60);
    loop {
        if depth_measured.elapsed() >= Duration::from_secs(1) {
            depth_measured = Instant::now();
            d.measure_depth().await;
        }
        while let Ok(done) = finished.try_recv() {
            d.to_record.push(done);
        }
        d.start_queued();
        // Refilled once half of it has started, so a lease commit serves many deliveries.
        let wants_events = !d.exhausted && d.queue.len() <= d.config.concurrency.max(1) / 2;
        let must_record =
            d.to_record.len() >= RECORD_BATCH || (!d.to_record.is_empty() && d.last_commit.elapsed() >= RECORD_EVERY);
        if wants_events || must_record {
            match d.commit(wants_events).await {
                Some(true) => continue,
                Some(false) => tokio::time::sleep(d.config.poll.min(Duration::from_millis(200))).await,
                // The runtime is shutting down: stop. Unrecorded attempts are retried after their lease.
                None => return,
            }
            continue;
        }
        // Nothing to do before something changes: a commit of new events, a finished delivery, a
        // retry coming due, or attempts that have waited long enough to be recorded.
        let wait =
            if d.to_record.is_empty() { d.config.poll } else { RECORD_EVERY.saturating_sub(d.last_commit.elapsed()) };
        tokio::select! {
            _ = wake.notified() => d.exhausted = false,
            _ = tokio::time::sleep(wait) => d.exhausted = false,
            Some(done) = finished.recv() => d.to_record.push(done),
        }
    }
}

impl Dispatcher {
    /// Publishes the outbox's depth (`keel_outbox_pending_events`).
    async fn measure_depth(&self) {
        let store = self.store.clone();
        if let Some(Ok(depth)) = tasks::blocking(TASK, move || store.reader()?.pending_events()).await {
            metrics::gauge!(crate::telemetry::OUTBOX_PENDING).set(depth as f64);
        }
    }

    /// Starts a delivery of each queued event a slot is free for.
    fn start_queued(&mut self) {
        while !self.queue.is_empty() {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else { return };
            let event = self.queue.pop_front().expect("the queue is not empty");
            let (client, config, finished_tx) = (self.client.clone(), self.config.clone(), self.finished_tx.clone());
            tasks::task(TASK, async move {
                let done = deliver(&client, &config, event).await;
                drop(slot);
                // The receiver lives as long as the loop, which lives as long as the process.
                let _ = finished_tx.send(done);
            });
        }
    }

    /// One unflushed commit: records what finished (up to `RECORD_BATCH`) and, if `lease`, leases
    /// due events to fill the queue to one round of slots. `Some(true)`: committed; `Some(false)`:
    /// the store failed (kept for the next round; should the process die first, each event's
    /// lease runs out and it is delivered again); `None`: the runtime is shutting down.
    async fn commit(&mut self, lease: bool) -> Option<bool> {
        let slots = self.config.concurrency.max(1);
        let limit = if lease { slots.saturating_sub(self.queue.len()) as u32 } else { 0 };
        let records: Vec<_> = self.to_record.drain(..self.to_record.len().min(RECORD_BATCH)).collect();
        let (store, now) = (self.store.clone(), unix_ms());
        // With at most one round of slots queued, an event waits in the queue for at most one
        // delivery's timeout (until the deliveries ahead of it finish), then is delivered within
        // another: its lease covers both, so it is never taken twice at once.
        let lease_until = now + (2 * self.config.timeout + Duration::from_secs(5)).as_millis() as i64;
        let task = tasks::blocking(TASK, move || {
            let mut leased = Vec::new();
            let outcome = store.write_unflushed(&mut |w| {
                for (attempt, after) in &records {
                    w.record_attempt(attempt, after)?;
                }
                leased = if limit > 0 { w.claim_due_events(now, lease_until, limit)? } else { Vec::new() };
                Ok(())
            });
            outcome.map(|()| leased).map_err(|error| (error, records))
        });
        self.last_commit = Instant::now();
        match task.await? {
            Ok(leased) => {
                self.exhausted = lease && leased.len() < limit as usize;
                self.queue.extend(leased);
                Some(true)
            }
            Err((error, records)) => {
                tracing::error!(%error, "cannot write to the outbox; retrying");
                self.to_record.splice(0..0, records);
                Some(false)
            }
        }
    }
}

/// Makes one attempt at delivering `event` and says what to record.
async fn deliver(client: &reqwest::Client, config: &WebhookConfig, event: Event) -> (Attempt, AfterAttempt) {
    // A monitor's own URL is checked again here: it may predate `--callback-allowed-hosts`.
    let refused = event.url.as_deref().and_then(|url| callback::check(url, config.callback_hosts.as_deref()).err());
    let not_sent = |error: String| Sent {
        attempted_at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        status_code: None,
        error: Some(error),
        duration_ms: 0,
    };
    let sent = match (&refused, event.url.as_deref().or(config.default_url.as_deref())) {
        (Some(refusal), _) => not_sent(format!("not sent: {refusal}")),
        (None, None) => not_sent("no webhook URL configured".to_string()),
        (None, Some(url)) => {
            // The server's headers go to its URL only, never to a monitor's own.
            let headers = if event.url.is_none() { &config.headers } else { &Headers::default() };
            let target = Target { url, secret: config.secret.as_deref(), headers, timeout: None };
            send(client, &target, &event.id, crate::wire::event::delivered_body(&event)).await
        }
    };
    // Trying again cannot help a refused URL until the operator changes the list; then it can be
    // redelivered.
    conclude(&config.retry, &event, event.attempts + 1, sent, refused.is_none(), None)
}

/// What to record of attempt number `attempt` at delivering `event` (to `endpoint_id`, or to the
/// server's or a monitor's URL): delivered, due again after the policy's delay, or failed for good.
pub(super) fn conclude(
    retry: &RetryPolicy,
    event: &Event,
    attempt: u32,
    sent: Sent,
    retryable: bool,
    endpoint_id: Option<&str>,
) -> (Attempt, AfterAttempt) {
    let delivered = sent.delivered();
    let after = if delivered {
        AfterAttempt::Delivered { at: humantime::format_rfc3339_micros(SystemTime::now()).to_string() }
    } else if !retryable {
        AfterAttempt::Failed
    } else {
        match retry.next_delay(attempt) {
            Some(delay) => AfterAttempt::RetryAt(unix_ms() + delay.as_millis() as i64),
            None => AfterAttempt::Failed,
        }
    };
    let outcome = match &after {
        AfterAttempt::Delivered { .. } => "delivered",
        AfterAttempt::RetryAt(_) => "retry",
        AfterAttempt::Failed => "failed",
    };
    metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    if delivered {
        if let Ok(created) = humantime::parse_rfc3339(&event.created_at) {
            let lag = SystemTime::now().duration_since(created).unwrap_or_default();
            metrics::histogram!(crate::telemetry::WEBHOOK_LAG).record(lag.as_secs_f64());
        }
    }
    let (id, status_code, error) = (&event.id, sent.status_code, &sent.error);
    match &after {
        AfterAttempt::Delivered { .. } => tracing::debug!(event_id = %id, ?endpoint_id, attempt, "webhook delivered"),
        AfterAttempt::RetryAt(_) => {
            tracing::info!(event_id = %id, ?endpoint_id, attempt, ?status_code, ?error, "webhook failed; will retry")
        }
        AfterAttempt::Failed => {
            tracing::warn!(event_id = %id, ?endpoint_id, attempt, ?status_code, ?error, "webhook failed for good")
        }
    }
    let record = Attempt {
        event_id: event.id.clone(),
        attempt,
        attempted_at: sent.attempted_at,
        status_code: sent.status_code,
        error: sent.error,
        duration_ms: sent.duration_ms,
        endpoint_id: endpoint_id.map(str::to_string),
    };
    (record, after)
}
