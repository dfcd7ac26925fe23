//! The dispatcher: a loop that leases due events from the outbox and delivers each on its own task,
//! at most `concurrency` at once. Attempts are recorded in batches, in the same commit that leases
//! the next events. A lease outlives the delivery timeout, so an event whose process died
//! mid-delivery (or before its attempt was recorded) is taken again once the lease runs out:
//! delivery is at least once.

use super::callback;
use super::retry::RetryPolicy;
use super::signing;
use crate::domain::event::Event;
use crate::store::{AfterAttempt, Attempt, Store};
use crate::tasks;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Receives every event, except monitor events whose monitor has its own `call_back_url`.
    pub default_url: Option<String>,
    pub secret: Option<String>,
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

// tidy: long because the delivery loop (claim, deliver, record, sleep until due or woken) reads best whole
async fn run(store: Arc<dyn Store>, config: WebhookConfig, wake: Arc<Notify>) {
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with static settings");
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    // One message per delivery in flight, so `concurrency` bounds what waits here.
    let (finished_tx, mut finished) = mpsc::unbounded_channel::<(Attempt, AfterAttempt)>();
    // A lease longer than any delivery can take, so an event is never taken twice at once.
    let lease = config.timeout + Duration::from_secs(5);
    let mut to_record: Vec<(Attempt, AfterAttempt)> = Vec::new();
    let mut depth_measured = Instant::now() - Duration::from_secs(60);
    loop {
        if depth_measured.elapsed() >= Duration::from_secs(1) {
            depth_measured = Instant::now();
            let store = store.clone();
            if let Some(Ok(depth)) = tasks::blocking(TASK, move || store.reader()?.pending_events()).await {
                metrics::gauge!(crate::telemetry::OUTBOX_PENDING).set(depth as f64);
            }
        }
        while let Ok(done) = finished.try_recv() {
            to_record.push(done);
        }
        // One commit records every attempt that finished since the last one and claims as many
        // due events as there are free slots. Under load one commit serves many deliveries, so
        // the dispatcher seldom needs the store's writer and keeps up with the engine.
        let limit = slots.available_permits() as u32;
        if limit == 0 && to_record.is_empty() {
            // Every slot is busy and nothing to record: wait for the first delivery to finish.
            if let Some(done) = finished.recv().await {
                to_record.push(done);
            }
            continue;
        }
        let records = std::mem::take(&mut to_record);
        let written = {
            let (store, now) = (store.clone(), unix_ms());
            let lease_until = now + lease.as_millis() as i64;
            let task = tasks::blocking(TASK, move || {
                let mut claimed = Vec::new();
                let outcome = store.write(&mut |w| {
                    for (attempt, after) in &records {
                        w.record_attempt(attempt, after)?;
                    }
                    claimed = if limit > 0 { w.claim_due_events(now, lease_until, limit)? } else { Vec::new() };
                    Ok(())
                });
                outcome.map(|()| claimed).map_err(|error| (error, records))
            });
            match task.await {
                Some(written) => written,
                // The runtime is shutting down: stop. Unrecorded attempts are retried after their lease.
                None => return,
            }
        };
        let claimed = match written {
            Ok(claimed) => claimed,
            Err((error, records)) => {
                // Kept for the next round. Should the process die first, each event's lease runs
                // out and it is delivered again: at least once, never lost.
                tracing::error!(%error, "cannot write to the outbox; retrying");
                to_record = records;
                tokio::time::sleep(config.poll.min(Duration::from_millis(200))).await;
                continue;
            }
        };
        let more_due = limit > 0 && claimed.len() == limit as usize;
        for event in claimed {
            let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (client, config, finished_tx) = (client.clone(), config.clone(), finished_tx.clone());
            tasks::task(TASK, async move {
                let done = deliver(&client, &config, event).await;
                drop(slot);
                // The receiver lives as long as this loop, which lives as long as the process.
                let _ = finished_tx.send(done);
            });
        }
        if more_due || slots.available_permits() == 0 {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(config.poll) => {}
            Some(done) = finished.recv() => to_record.push(done),
        }
    }
}

/// Makes one attempt at delivering `event` and says what to record.
async fn deliver(client: &reqwest::Client, config: &WebhookConfig, event: Event) -> (Attempt, AfterAttempt) {
    let attempt = event.attempts + 1;
    let started = Instant::now();
    let attempted_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    // A monitor's own URL is checked again here: it may predate `--callback-allowed-hosts`.
    let refused = event.url.as_deref().and_then(|url| callback::check(url, config.callback_hosts.as_deref()).err());
    let (status_code, error) = match (&refused, event.url.as_deref().or(config.default_url.as_deref())) {
        (Some(refusal), _) => (None, Some(format!("not sent: {refusal}"))),
        (None, None) => (None, Some("no webhook URL configured".to_string())),
        (None, Some(url)) => post(client, config, url, &event).await,
    };
    let delivered = status_code.is_some_and(|s| (200..300).contains(&s));
    let after = if delivered {
        AfterAttempt::Delivered { at: humantime::format_rfc3339_micros(SystemTime::now()).to_string() }
    } else if refused.is_some() {
        // Trying again cannot help until the operator changes the list; then it can be redelivered.
        AfterAttempt::Failed
    } else {
        match config.retry.next_delay(attempt) {
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
    match &after {
        AfterAttempt::Delivered { .. } => tracing::debug!(event_id = %event.id, attempt, "webhook delivered"),
        AfterAttempt::RetryAt(_) => {
            tracing::info!(event_id = %event.id, attempt, ?status_code, ?error, "webhook failed; will retry")
        }
        AfterAttempt::Failed => {
            tracing::warn!(event_id = %event.id, attempt, ?status_code, ?error, "webhook failed for good")
        }
    }
    let record = Attempt {
        event_id: event.id.clone(),
        attempt,
        attempted_at,
        status_code,
        error,
        duration_ms: started.elapsed().as_millis() as i64,
    };
    (record, after)
}

/// Posts the event; the receiver's body is never read, so a huge answer costs nothing.
async fn post(
    client: &reqwest::Client,
    config: &WebhookConfig,
    url: &str,
    event: &Event,
) -> (Option<u16>, Option<String>) {
    let body = crate::wire::event::delivered_body(event);
    let mut request = client.post(url).header("content-type", "application/json").body(body.clone());
    if let Some(secret) = &config.secret {
        let timestamp = unix_ms() / 1000;
        for (name, value) in signing::headers(secret, &event.id, timestamp, &body) {
            request = request.header(name, value);
        }
    } else {
        request = request.header("webhook-id", event.id.as_str());
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => (Some(response.status().as_u16()), Some(format!("receiver answered {}", response.status()))),
        Err(e) => (None, Some(describe(&e))),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
