//! Delivery to webhook endpoints (`/webhooks`). Each active endpoint has a worker of its own that
//! reads the outbox from the endpoint's cursor (like a broker stream, `crate::streams`), posts the
//! events the endpoint wants, and moves the cursor past them in one commit. An event whose first
//! attempt fails gets a row of its own (`endpoint_deliveries`) and is retried from there, so a
//! healthy endpoint writes nothing per event, and a failing one only delays itself: every
//! endpoint has its own cursor, retries and task.
//!
//! Delivery is at least once: the cursor moves only after the attempts are recorded, so a crash
//! in between sends those events again, with the same `webhook-id`. Where several processes share
//! a PostgreSQL database, the cursor's lease makes one of them the endpoint's sender.

use super::dispatcher::{conclude, WebhookConfig};
use super::retry::RetryPolicy;
use super::send::{self, send, unix_ms, Sent, Target};
use crate::domain::endpoint::{Endpoint, EndpointDelivery};
use crate::domain::event::{AfterAttempt, Attempt, Event};
use crate::engine::MAX_ENDPOINTS;
use crate::store::{endpoint_stream, EndpointFilter, Page, Store, StoreResult};
use crate::streams;
use crate::tasks;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

const TASK: &str = "webhook endpoints";

/// How often the list of endpoints is read again: a change another process made takes effect
/// within this (events committed meanwhile wait in the outbox, nothing is lost); one this
/// process made, at once.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Events read from the outbox at a time.
const BATCH: u32 = 256;

/// Retries taken at a time.
const RETRY_BATCH: u32 = 64;

/// While an endpoint has caught up, how often it looks for events this process was not told of
/// (another process's), for due retries and for a lease another process let run out.
const POLL: Duration = Duration::from_millis(250);

/// Starts the endpoints' supervisor on the current runtime. `flags.0` is the engine's
/// `endpoints_exist`: set here when an endpoint another process created is found, so this process
/// records its events too; `flags.1` is notified when this process changed an endpoint, which is
/// then read at once rather than at the next poll. Answers the active endpoints, as last read
/// (for `system_error`).
pub fn spawn(
    store: Arc<dyn Store>,
    config: Arc<WebhookConfig>,
    committed: watch::Receiver<u64>,
    flags: (Arc<AtomicBool>, Arc<Notify>),
) -> watch::Receiver<Arc<Vec<Endpoint>>> {
    let (active, listed) = watch::channel(Arc::new(Vec::new()));
    tasks::task(TASK, supervise(store, config, committed, flags, active));
    listed
}

/// Keeps one worker per active endpoint, each told of its endpoint's changes.
async fn supervise(
    store: Arc<dyn Store>,
    config: Arc<WebhookConfig>,
    committed: watch::Receiver<u64>,
    (endpoints_exist, changed): (Arc<AtomicBool>, Arc<Notify>),
    published: watch::Sender<Arc<Vec<Endpoint>>>,
) {
    // One lease owner per process, so a worker started again for the same endpoint (after a
    // change) takes the lease its predecessor held at once.
    let owner = crate::engine::new_id("whw");
    let client = send::client(config.timeout);
    let mut workers: HashMap<String, watch::Sender<Option<Endpoint>>> = HashMap::new();
    loop {
        let listed = {
            let store = store.clone();
            tasks::blocking(TASK, move || {
                store.reader()?.endpoints(&EndpointFilter::default(), Page::first(MAX_ENDPOINTS as u32, 0))
            })
            .await
        };
        match listed {
            None => return, // the runtime is shutting down
            Some(Err(error)) => tracing::error!(%error, "cannot read the webhook endpoints; retrying"),
            Some(Ok(endpoints)) => {
                if !endpoints.is_empty() {
                    endpoints_exist.store(true, Ordering::Relaxed);
                }
                let active: HashMap<String, Endpoint> =
                    endpoints.into_iter().filter(|e| e.active).map(|e| (e.id.clone(), e)).collect();
                published.send_replace(Arc::new(active.values().cloned().collect()));
                workers.retain(|id, worker| {
                    let keep = active.contains_key(id) && !worker.is_closed();
                    if !keep {
                        let _ = worker.send(None);
                    }
                    keep
                });
                for (id, endpoint) in active {
                    match workers.get(&id) {
                        Some(worker) => {
                            worker.send_if_modified(|current| {
                                let changed = current.as_ref().is_none_or(|c| !same_settings(c, &endpoint));
                                *current = Some(endpoint);
                                changed
                            });
                        }
                        None => {
                            let (tx, rx) = watch::channel(Some(endpoint));
                            let worker = Worker {
                                store: store.clone(),
                                config: config.clone(),
                                client: client.clone(),
                                owner: owner.clone(),
                                stream: endpoint_stream(&id),
                            };
                            tasks::task(TASK, worker.run(rx, committed.clone()));
                            workers.insert(id, tx);
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
        }
    }
}

/// Whether two reads of an endpoint send the same way (its last run is not a setting).
fn same_settings(a: &Endpoint, b: &Endpoint) -> bool {
    let unrun = |e: &Endpoint| Endpoint { last_run: None, last_success: None, ..e.clone() };
    unrun(a) == unrun(b)
}

/// One endpoint's sender.
struct Worker {
    store: Arc<dyn Store>,
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    owner: String,
    /// The endpoint's cursor in `stream_cursors`.
    stream: String,
}

/// One attempt to record: at a fresh event (no delivery row yet) or at a retry.
struct Done {
    attempt: Attempt,
    after: AfterAttempt,
    fresh: Option<Event>,
}

impl Worker {
    // tidy: long because the worker's loop (lease, read, deliver, record and advance, wait) reads best whole
    async fn run(self, mut endpoint: watch::Receiver<Option<Endpoint>>, mut committed: watch::Receiver<u64>) {
        let (mut leased_until, mut cursor) = (0, 0);
        let mut retries_looked = 0;
        // The last batch's commit, while it runs (`record`).
        let mut recording: Option<JoinHandle<Option<bool>>> = None;
        loop {
            let Some(current) = endpoint.borrow_and_update().clone() else { return };
            if leased_until - unix_ms() < (streams::LEASE / 2).as_millis() as i64 {
                // The lease answers the stored cursor: the last batch's commit goes first.
                if let Some(previous) = recording.take() {
                    settled(previous).await;
                }
                match self.lease(&current.id).await {
                    Some((sequence, until)) => (cursor, leased_until) = (sequence, until),
                    // Another process sends to this endpoint, or the store failed: look again later.
                    _ => {
                        leased_until = 0;
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                }
            }
            committed.mark_unchanged();
            let fresh = {
                let store = self.store.clone();
                tasks::blocking(TASK, move || store.reader()?.events_after(cursor, BATCH)).await
            };
            let fresh = match fresh {
                None => return,
                Some(Err(error)) => {
                    tracing::error!(stream = %self.stream, %error, "cannot read the outbox; retrying");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Some(Ok(fresh)) => fresh,
            };
            let retries = if unix_ms() - retries_looked >= POLL.as_millis() as i64 {
                retries_looked = unix_ms();
                self.claim_retries(&current).await
            } else {
                Vec::new()
            };
            let through = fresh.last().map(|e| e.sequence);
            let wanted: Vec<Event> = fresh.into_iter().filter(|e| current.wants(e.kind)).collect();
            if through.is_none() && retries.is_empty() {
                if let Some(previous) = recording.take() {
                    if !settled(previous).await {
                        leased_until = 0;
                        continue;
                    }
                }
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = endpoint.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            let done = self.deliver(&current, wanted, retries).await;
            // The previous batch's commit ran meanwhile; this one's is started only once that one
            // stored its cursor, so the cursor never moves past an event whose attempt is unrecorded.
            if let Some(previous) = recording.take() {
                if !settled(previous).await {
                    leased_until = 0; // lease again: from the stored cursor, both batches are sent again
                    continue;
                }
            }
            recording = Some(self.record(&current.id, done, through));
            cursor = through.unwrap_or(cursor);
        }
    }

    /// The lease on the endpoint's cursor, `(cursor, until)`; `None` while another process holds
    /// it, once the endpoint is deleted (its cursor must not be made again), or if the store failed.
    async fn lease(&self, endpoint_id: &str) -> Option<(i64, i64)> {
        let (store, stream, owner, id) =
            (self.store.clone(), self.stream.clone(), self.owner.clone(), endpoint_id.to_string());
        let leased = tasks::blocking(TASK, move || {
            let until = unix_ms() + streams::LEASE.as_millis() as i64;
            let mut found = None;
            store.write_unflushed(&mut |w| {
                found = match w.endpoint(&id)? {
                    Some(_) => w.lease_stream(&stream, &owner, unix_ms(), until)?.map(|cursor| (cursor, until)),
                    None => None,
                };
                Ok(())
            })?;
            StoreResult::Ok(found)
        })
        .await?;
        leased.map_err(|error| tracing::error!(%error, "cannot lease the endpoint's cursor")).ok().flatten()
    }

    /// The endpoint's due retries with their events, leased for a round of delivery.
    async fn claim_retries(&self, endpoint: &Endpoint) -> Vec<(EndpointDelivery, Event)> {
        let (store, id) = (self.store.clone(), endpoint.id.clone());
        let timeout = endpoint.timeout_ms.map_or(self.config.timeout, |ms| Duration::from_millis(ms.max(1) as u64));
        let lease_until = unix_ms() + (2 * timeout + Duration::from_secs(5)).as_millis() as i64;
        let claimed = tasks::blocking(TASK, move || {
            let mut claimed = Vec::new();
            if !store.reader()?.endpoint_retry_due(&id, unix_ms())? {
                return StoreResult::Ok(claimed);
            }
            store.write_unflushed(&mut |w| {
                claimed.clear();
                for delivery in w.claim_endpoint_retries(&id, unix_ms(), lease_until, RETRY_BATCH)? {
                    if let Some(event) = w.event(&delivery.event_id)? {
                        claimed.push((delivery, event));
                    }
                }
                Ok(())
            })?;
            StoreResult::Ok(claimed)
        })
        .await;
        match claimed {
            Some(Ok(claimed)) => claimed,
            Some(Err(error)) => {
                tracing::error!(stream = %self.stream, %error, "cannot read the endpoint's retries");
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Posts every event at once, at most `concurrency` in flight.
    async fn deliver(
        &self,
        endpoint: &Endpoint,
        fresh: Vec<Event>,
        retries: Vec<(EndpointDelivery, Event)>,
    ) -> Vec<Done> {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = JoinSet::new();
        let work =
            fresh.into_iter().map(|e| (1, e, true)).chain(retries.into_iter().map(|(d, e)| (d.attempts + 1, e, false)));
        for (attempt, event, is_fresh) in work {
            let (slots, client, config, endpoint) =
                (slots.clone(), self.client.clone(), self.config.clone(), endpoint.clone());
            running.spawn(async move {
                let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
                let sent = post(&client, &config, &endpoint, &event).await;
                let retry = RetryPolicy {
                    max_attempts: endpoint.max_attempts.unwrap_or(config.retry.max_attempts),
                    ..config.retry
                };
                let (attempt, after) = conclude(&retry, &event, attempt, sent, true, Some(&endpoint.id));
                Done { attempt, after, fresh: is_fresh.then_some(event) }
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(one) => done.push(one),
                // A panicked delivery is not recorded: its event is sent again (at least once).
                Err(error) => tracing::error!(%error, "a webhook delivery panicked"),
            }
        }
        done
    }

    /// One unflushed commit: every attempt, a delivery row for each fresh event that failed, and
    /// the cursor moved to `through`. It runs on its own while the next batch is delivered;
    /// it answers `Some(false)` if the lease was lost, `None` if the store failed (nothing
    /// recorded: the events are sent again).
    fn record(&self, endpoint_id: &str, done: Vec<Done>, through: Option<i64>) -> JoinHandle<Option<bool>> {
        let (store, stream, owner, id) =
            (self.store.clone(), self.stream.clone(), self.owner.clone(), endpoint_id.to_string());
        tokio::spawn(record(store, stream, owner, id, done, through))
    }
}

/// `Worker::record`'s commit.
async fn record(
    store: Arc<dyn Store>,
    stream: String,
    owner: String,
    id: String,
    done: Vec<Done>,
    through: Option<i64>,
) -> Option<bool> {
    let recorded = tasks::blocking(TASK, move || {
        let mut moved = true;
        store.write_unflushed(&mut |w| {
            // Deleted meanwhile: nothing of it is kept.
            if w.endpoint(&id)?.is_none() {
                moved = false;
                return Ok(());
            }
            for one in &done {
                if let Some(event) = &one.fresh {
                    if matches!(one.after, AfterAttempt::Delivered { .. }) {
                        continue;
                    }
                    w.insert_endpoint_delivery(&failed_first(&id, event, &one.attempt, &one.after))?;
                }
                w.record_endpoint_attempt(&one.attempt, &one.after)?;
            }
            if let Some(last) = done.last() {
                let success = matches!(last.after, AfterAttempt::Delivered { .. });
                w.record_endpoint_run(&id, &last.attempt.attempted_at, success)?;
            }
            moved = match through {
                Some(sequence) => w.advance_stream(&stream, &owner, sequence)?,
                None => true,
            };
            Ok(())
        })?;
        StoreResult::Ok(moved)
    })
    .await?;
    recorded.map_err(|error| tracing::error!(%error, "cannot record webhook deliveries; sending again")).ok()
}

/// One attempt at `event` to `endpoint`: its own secret, headers and timeout; a Blnk hook gets
/// Blnk's hook body and headers, signed with the master key as Blnk signs it.
async fn post(client: &reqwest::Client, config: &WebhookConfig, endpoint: &Endpoint, event: &Event) -> Sent {
    let timeout = endpoint.timeout_ms.map(|ms| Duration::from_millis(ms.max(1) as u64));
    let Some(hook) = endpoint.hook else {
        let target = Target { url: &endpoint.url, secret: Some(&endpoint.secret), headers: &endpoint.headers, timeout };
        return send(client, &target, &event.id, crate::wire::event::delivered_body(event)).await;
    };
    let mut headers = endpoint.headers.clone();
    headers.0.insert("x-hook-id".into(), endpoint.id.clone());
    headers.0.insert("x-hook-type".into(), hook.as_str().into());
    let target = Target { url: &endpoint.url, secret: config.hook_secret.as_deref(), headers: &headers, timeout };
    send(client, &target, &event.id, crate::wire::event::hook_body(event, hook.as_str())).await
}

/// Whether a batch's commit stored its cursor; if not (the lease was lost, the store failed, or the
/// runtime is stopping), the worker leases its cursor again and sends from there.
async fn settled(recording: JoinHandle<Option<bool>>) -> bool {
    match recording.await {
        Ok(Some(true)) => true,
        Ok(None) => {
            tokio::time::sleep(POLL).await;
            false
        }
        _ => false,
    }
}

/// The delivery row of an event whose first attempt at an endpoint failed.
fn failed_first(endpoint_id: &str, event: &Event, attempt: &Attempt, after: &AfterAttempt) -> EndpointDelivery {
    let (status, next_attempt_at, _) = after.state();
    EndpointDelivery {
        endpoint_id: endpoint_id.to_string(),
        event_id: event.id.clone(),
        event_type: event.kind,
        status,
        attempts: attempt.attempt,
        next_attempt_at,
        last_error: attempt.error.clone(),
        delivered_at: None,
    }
}
