//! The engine: the only writer. Requests arrive on a channel; the engine thread takes everything
//! waiting (up to `max_batch`) and applies it in one database transaction, so one fsync serves the
//! whole batch (group commit) and throughput grows with concurrency. Each request is answered after
//! its batch commits. A request refused by a rule writes nothing and does not disturb its
//! neighbours; if storage fails, the batch is rolled back and re-run one request at a time, so only
//! the request that caused the failure sees it.

mod actions;
mod api_keys;
mod balance_cache;
mod batch;
mod bulk;
mod clock;
mod command;
mod endpoints;
mod failure;
mod identities;
mod ledgers;
mod metadata;
mod monitors;
mod queue;
mod rehearsal;
mod snapshots;
mod splits;
mod transactions;
mod windows;

pub use batch::new_id;
pub use clock::{stamp_ms, Clock};
pub use command::{
    BulkItem, Command, EndpointPatch, EngineError, InflightAction, NewBulk, NewEndpoint, NewMonitor, NewSplit,
    NewTransaction, Outcome,
};
pub use endpoints::{ENDPOINT_PREFIX, HOOK_PREFIX, MAX_ENDPOINTS};
pub use snapshots::due_snapshots;

use crate::domain::identity::TokenKey;
use crate::store::{Store, StoreResult};
use balance_cache::BalanceCache;
/// Balances plus monitors the engine's cache holds (SQLite): what a warm server keeps in memory.
pub use balance_cache::CAPACITY as BALANCE_CACHE_CAPACITY;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most requests applied in one database transaction.
    pub max_batch: usize,
    /// Apply `QUEUED` transactions in the background. Off only to hold the queue (tests, maintenance).
    pub apply_queue: bool,
    /// A server-wide webhook URL is configured (see `batch::BatchConfig`).
    pub webhook_url_configured: bool,
    /// `--event-feed` (see `batch::BatchConfig`).
    pub record_every_event: bool,
    /// Some webhook endpoint exists (see `batch::BatchConfig`). Set by the engine when it creates
    /// one, and by the endpoints' supervisor when it finds one another process created.
    pub endpoints_exist: Arc<AtomicBool>,
    /// Woken after a commit that wrote events to deliver, so delivery starts at once.
    pub events_written: Option<Arc<Notify>>,
    /// The instant each batch is stamped with (the system clock but in tests).
    pub clock: Clock,
    /// The key identities' fields are tokenized with (`--tokenization-secret`), if set.
    pub token_key: Option<&'static TokenKey>,
    /// Engine threads taking batches from the one channel (`--engine-workers`). More than one only
    /// on a store with no sole writer (PostgreSQL): each batch then locks what it reads, as several
    /// processes' batches do, so one batch's COMMIT overlaps the next one's work.
    pub workers: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch: 1000,
            apply_queue: true,
            webhook_url_configured: false,
            record_every_event: false,
            endpoints_exist: Arc::default(),
            events_written: None,
            clock: Clock::system(),
            token_key: None,
            workers: 1,
        }
    }
}

/// Retries of a batch that failed transiently (~10 s of backoff in all) before giving up.
const TRANSIENT_RETRIES: u32 = 15;
/// ...and for at most this long: a failover usually completes within it, and a database away for
/// longer must not hold every request waiting on the engine (they answer 503, retryable).
const TRANSIENT_FOR: Duration = Duration::from_secs(20);
/// ...but only this long while the database is known to be away (the last batch gave up on it):
/// requests that waited meanwhile are answered 503 at once, rather than each batch in turn waiting
/// 20 s more (the later ones would pass the HTTP layer's 30 s and answer 408). Long enough for a
/// pooled connection a restart left dead to be replaced.
const AWAY_FOR: Duration = Duration::from_secs(1);
/// Movements (a bulk request counts each item) above which a batch runs alone, while no other
/// worker's batch does: a batch that large locks a good share of a ledger's balances, so beside
/// another it would wait on that one's locks row by row (measured: two workers running 1,000-item
/// bulk requests side by side did 0.6× what one did).
const LARGE_BATCH: usize = 256;
/// Requests waiting for the engine before senders are made to wait (backpressure).
const CHANNEL_CAPACITY: usize = 16_384;

struct Envelope {
    command: Command,
    reply: oneshot::Sender<Result<Outcome, EngineError>>,
}

/// The API's way in. Cheap to clone; the engine stops when every handle is dropped.
#[derive(Clone)]
pub struct EngineHandle {
    sender: mpsc::Sender<Envelope>,
    events_committed: watch::Receiver<u64>,
    clock: Clock,
}

impl EngineHandle {
    pub async fn submit(&self, command: Command) -> Result<Outcome, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(Envelope { command, reply }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Changes after each commit that wrote events (the count of such commits): what the event
    /// feed's long polls wait on. Only this process's commits: other processes' are polled for.
    pub fn events_committed(&self) -> watch::Receiver<u64> {
        self.events_committed.clone()
    }

    /// The engine's clock, milliseconds since the epoch: for work prepared outside the engine for
    /// the instant its batches will be stamped with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().1
    }
}

/// Engine workers on a store with no sole writer (PostgreSQL) unless `--engine-workers` says
/// otherwise: two, so one batch's round trips and COMMIT overlap the next one's (docs/performance.md,
/// "Two engine workers on PostgreSQL"). A store with a sole writer (SQLite) has one.
pub fn default_workers(sole_writer: bool) -> usize {
    if sole_writer {
        1
    } else {
        2
    }
}

/// Starts the engine's threads (`EngineConfig::workers`). Join the returned handle after dropping
/// every `EngineHandle` to wait for the last batch to commit.
pub fn start(store: Arc<dyn Store>, config: EngineConfig) -> (EngineHandle, std::thread::JoinHandle<()>) {
    assert!(config.workers >= 1, "E4: the engine has at least one worker");
    assert!(
        config.workers == 1 || !store.sole_writer(),
        "E4: several workers only on a store whose batches lock what they read (no sole writer, no cache)"
    );
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    let clock = config.clock;
    let (events_committed, committed) = watch::channel(0);
    let events_committed = Arc::new(events_committed);
    let alone = Arc::new(std::sync::RwLock::new(()));
    let workers: Vec<Engine> = (0..config.workers)
        .map(|_| {
            let mut core = Core::new(store.clone(), config.clone());
            core.events_committed = events_committed.clone();
            Engine { core, receiver: receiver.clone(), alone: alone.clone() }
        })
        .collect();
    // A panic in the engine is a broken invariant. Nothing uncommitted was acknowledged, so the
    // safe move is to stop the process at once rather than serve on without a writer (`tasks`).
    let thread = crate::tasks::thread("keel-engine", move || {
        // On this thread, not the caller's: a store's blocking read must not run on a runtime.
        hold_clock_to_what_is_stored(&*store, clock);
        let mut workers = workers.into_iter();
        let first = workers.next().expect("E4: the engine has at least one worker");
        let others: Vec<_> = workers
            .enumerate()
            .map(|(i, worker)| {
                crate::tasks::thread(&format!("keel-engine-{}", i + 1), move || worker.run())
                    .expect("the OS can start the engine's threads at start-up")
            })
            .collect();
        first.run();
        for other in others {
            let _ = other.join();
        }
    })
    .expect("the OS can start the engine thread at start-up");
    (EngineHandle { sender, events_committed: committed, clock }, thread)
}

/// M1 across a restart: the clock never stamps before the latest transaction stored, whatever this
/// machine's clock did while Keel was down.
fn hold_clock_to_what_is_stored(store: &dyn Store, clock: Clock) {
    match store.reader().and_then(|r| r.latest_transaction_stamp()) {
        Ok(latest) => {
            if let Some(ms) = latest.as_deref().and_then(stamp_ms) {
                clock.not_before_ms(ms);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the latest stamp stored; the clock starts as it is"),
    }
}

/// An engine thread: takes what waits on the channel, runs it as one batch, answers.
struct Engine {
    core: Core,
    /// Shared by the engine's workers: one at a time takes what waits.
    receiver: Arc<std::sync::Mutex<mpsc::Receiver<Envelope>>>,
    /// Shared by the engine's workers: a batch runs holding it shared, or, if large, exclusive
    /// (`LARGE_BATCH`).
    alone: Arc<std::sync::RwLock<()>>,
}

impl Engine {
    fn run(mut self) {
        loop {
            let wait = match (self.core.queue_work(), self.core.queue_retry_at()) {
                (true, _) => Wait::Not,
                (false, Some(retry_at)) => Wait::Until(retry_at),
                (false, None) => Wait::Forever,
            };
            let batch = match self.take(wait) {
                Some(batch) => batch,
                None => break,
            };
            if !batch.is_empty() {
                // Moved out, not cloned: the commands are still the core's after the batch, should
                // it have to re-run them one at a time.
                let (commands, replies): (Vec<Command>, Vec<_>) =
                    batch.into_iter().map(|e| (e.command, e.reply)).unzip();
                let movements: usize = commands.iter().map(Command::movements).sum();
                let _turn = Turn::take(&self.alone, movements > LARGE_BATCH);
                let results = self.core.execute(commands);
                assert_eq!(results.len(), replies.len(), "E1: one answer per request");
                for (reply, result) in replies.into_iter().zip(results) {
                    // A client that gave up waiting is no reason to stop: its write stands.
                    let _ = reply.send(result);
                }
            }
            if self.core.queue_work() {
                // Up to `QUEUE_BATCH` transactions: a large batch.
                let _turn = Turn::take(&self.alone, true);
                self.core.apply_queued();
            }
        }
        tracing::info!("engine stopped: every accepted request was committed");
    }

    /// The next batch: what waits on the channel, up to `max_batch`, waiting for the first as
    /// `wait` says: with queued transactions to apply it does not wait (an empty batch, also when
    /// another worker is waiting on the channel); with a queue waiting out a storage failure, until
    /// the retry. `None` once every `EngineHandle` is gone.
    fn take(&self, wait: Wait) -> Option<Vec<Envelope>> {
        use std::sync::{PoisonError, TryLockError};
        let (mut receiver, first) = loop {
            let mut receiver = match wait {
                Wait::Forever => self.receiver.lock().unwrap_or_else(PoisonError::into_inner),
                _ => match self.receiver.try_lock() {
                    Ok(receiver) => receiver,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) if wait.pause() => continue,
                    Err(TryLockError::WouldBlock) => return Some(Vec::new()),
                },
            };
            let first = match wait {
                Wait::Forever => receiver.blocking_recv()?,
                _ => match receiver.try_recv() {
                    Ok(envelope) => envelope,
                    Err(mpsc::error::TryRecvError::Disconnected) => return None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        drop(receiver);
                        match wait.pause() {
                            true => continue,
                            false => return Some(Vec::new()),
                        }
                    }
                },
            };
            break (receiver, first);
        };
        let mut batch = vec![first];
        while batch.len() < self.core.config.max_batch {
            match receiver.try_recv() {
                Ok(envelope) => batch.push(envelope),
                Err(_) => break,
            }
        }
        Some(batch)
    }
}

/// How long an engine worker waits for a request before it turns to the queue.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all: queued transactions wait to be applied.
    Not,
    /// Until the queue's retry after a storage failure, looking at the channel every `POLL`.
    Until(std::time::Instant),
    /// Until a request comes.
    Forever,
}

impl Wait {
    /// How often a worker waiting `Until` looks at the channel: a request waits at most this long
    /// more, and only while the queue waits out a storage failure.
    const POLL: Duration = Duration::from_millis(2);

    /// Sleeps a moment if the wait is not over; false once it is.
    fn pause(self) -> bool {
        let Wait::Until(at) = self else { return false };
        let now = std::time::Instant::now();
        if now >= at {
            return false;
        }
        std::thread::sleep((at - now).min(Wait::POLL));
        true
    }
}

/// A worker's hold on `Engine::alone` while its batch runs (released when dropped).
enum Turn<'a> {
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'a, ()>),
    Beside(#[allow(dead_code)] std::sync::RwLockReadGuard<'a, ()>),
}

impl Turn<'_> {
    /// A worker's turn to run a batch: `alone` (no other worker's batch runs while it is held) for
    /// a large one, beside the others' otherwise.
    fn take(lock: &std::sync::RwLock<()>, alone: bool) -> Turn<'_> {
        use std::sync::PoisonError;
        match alone {
            true => Turn::Alone(lock.write().unwrap_or_else(PoisonError::into_inner)),
            false => Turn::Beside(lock.read().unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

/// The engine's state and its batch loop, without the channel: the engine thread drives it, and so
/// does the simulator (`tests/simulation.rs`), one batch at a time, deterministically.
pub struct Core {
    store: Arc<dyn Store>,
    config: EngineConfig,
    /// The queue of `QUEUED` transactions (`queue.rs`).
    queue: queue::Queue,
    /// The last write gave up on a transient failure (the database away): the next ones try for
    /// `AWAY_FOR` only, until one succeeds.
    store_away: bool,
    cache: BalanceCache,
    /// Counts the commits that wrote events (`EngineHandle::events_committed`), shared by the
    /// engine's workers.
    events_committed: Arc<watch::Sender<u64>>,
}

impl Core {
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Core {
        let cache = BalanceCache::new(store.sole_writer());
        let events_committed = Arc::new(watch::channel(0).0);
        Core { store, config, queue: queue::Queue::new(), store_away: false, cache, events_committed }
    }

    /// Queued transactions may be waiting, and the engine applies them now.
    pub fn queue_work(&self) -> bool {
        self.config.apply_queue && self.queue.due()
    }

    /// When the queue, waiting out a storage failure, is to be tried again (while the engine
    /// serves requests meanwhile).
    pub fn queue_retry_at(&self) -> Option<std::time::Instant> {
        self.queue.retry_at().filter(|_| self.config.apply_queue)
    }

    fn batch_config(&self) -> batch::BatchConfig {
        batch::BatchConfig {
            webhook_url_configured: self.config.webhook_url_configured,
            record_every_event: self.config.record_every_event,
            endpoints_exist: self.config.endpoints_exist.load(Ordering::Relaxed),
            clock: self.config.clock,
            token_key: self.config.token_key,
        }
    }

    /// Wakes the webhook dispatcher after a commit that wrote events for it, and the event feed's
    /// long polls after one that wrote any.
    fn committed(&mut self, output: &mut batch::BatchOutput) {
        if output.events_written > 0 {
            self.events_committed.send_modify(|commits| *commits += 1);
        }
        self.cache.follow_rules(&output.rules_changed);
        self.cache.commit(std::mem::take(&mut output.touched), &output.monitors_evicted);
        if output.events_to_deliver > 0 {
            if let Some(notify) = &self.config.events_written {
                notify.notify_one();
            }
        }
    }

    /// Applies `commands` as one batch in one database transaction and returns one answer per
    /// command, in order. If storage fails, the batch is rolled back and its commands re-run one
    /// at a time, so only the command that caused the failure sees it; a batch whose COMMIT may
    /// have happened is never run again, whole or in parts (DESIGN rule 8). The failure is logged
    /// here, once.
    ///
    /// Dry runs among `commands` are rehearsed one by one after the batch commits, each in a
    /// transaction of its own that is rolled back: so each sees the state the real ones left.
    pub fn execute(&mut self, commands: Vec<Command>) -> Vec<Result<Outcome, EngineError>> {
        // A dry run is rehearsed on its own; snapshots are taken in a batch of their own, which has
        // written nothing yet (PostgreSQL holds a batch's transaction rows back until its end, so a
        // snapshot taken after one in the same batch would miss it).
        let apart = |c: &Command| matches!(c, Command::DryRun(_) | Command::TakeSnapshots { .. });
        if commands.iter().any(|c| matches!(c, Command::DryRun(_)))
            || (commands.len() > 1 && commands.iter().any(apart))
        {
            let (alone, real): (Vec<_>, Vec<_>) = commands.into_iter().enumerate().partition(|(_, c)| apart(c));
            let (positions, real): (Vec<usize>, Vec<Command>) = real.into_iter().unzip();
            let mut answers: Vec<Option<Result<Outcome, EngineError>>> =
                (0..positions.len() + alone.len()).map(|_| None).collect();
            let committed = if real.is_empty() { Vec::new() } else { self.execute(real) };
            for (position, answer) in positions.into_iter().zip(committed) {
                answers[position] = Some(answer);
            }
            for (position, command) in alone {
                answers[position] = Some(match command {
                    Command::DryRun(command) => self.rehearse(&command),
                    other => self.execute(vec![other]).pop().expect("E1: one answer per command"),
                });
            }
            return answers.into_iter().map(|a| a.expect("E1: one answer per command")).collect();
        }
        if commands.iter().any(|c| matches!(c, Command::CreateEndpoint(_))) {
            // Before the batch, so every event committed after the endpoint is recorded for it.
            self.config.endpoints_exist.store(true, Ordering::Relaxed);
        }
        let mut output = None;
        let config = self.batch_config();
        let started = std::time::Instant::now();
        let patience = self.patience();
        let cache = &mut self.cache;
        let store = self.store.as_ref();
        let written = with_retries(patience, &mut || {
            store.write(&mut |w| {
                output = Some(batch::apply_batch(w, &commands, config, cache)?);
                Ok(())
            })
        });
        self.note_store(&written);
        match written {
            Ok(()) => {
                let mut output = output.expect("a committed batch has its output");
                self.committed(&mut output);
                record_batch(&commands, &output, started.elapsed());
                self.queue.pending |= output.results.iter().any(is_queued);
                output.results.into_iter().map(|r| r.map_err(EngineError::from)).collect()
            }
            // Re-run one by one to find the culprit, unless the failure is the database's and
            // outlasted the retries (away, busy, timing out): every command would wait as long
            // again, one after another, and fail the same way.
            Err(error) if commands.len() > 1 && !error.is_outcome_unknown() && !error.is_transient() => {
                tracing::warn!(%error, size = commands.len(), "batch failed; re-running its requests one by one");
                commands.into_iter().flat_map(|command| self.execute(vec![command])).collect()
            }
            Err(error) => {
                tracing::error!(%error, "request failed in storage");
                if error.is_outcome_unknown() {
                    // The batch may have committed: a rule it changed would be stale in any entry.
                    self.cache.clear();
                }
                commands.iter().map(|_| Err(EngineError::Store(error.clone()))).collect()
            }
        }
    }
}

impl Core {
    /// A dry run of `command`: `Outcome::Preview` (a bulk request's: `Outcome::BulkPreview`), with
    /// nothing written (`rehearsal.rs`).
    fn rehearse(&mut self, command: &Command) -> Result<Outcome, EngineError> {
        let mut preview = None;
        let config = self.batch_config();
        let store = self.store.as_ref();
        let rehearsed = with_retries(self.patience(), &mut || {
            store.rehearse(&mut |w| {
                preview = Some(rehearsal::rehearse(w, command, config)?);
                Ok(())
            })
        });
        self.note_store(&rehearsed);
        match rehearsed {
            Ok(()) => Ok(preview.expect("a rehearsal has its preview")?),
            Err(error) => {
                tracing::error!(%error, "dry run failed in storage");
                Err(EngineError::Store(error))
            }
        }
    }
}

/// The command left a transaction `QUEUED`, for the queue to apply.
fn is_queued(result: &batch::CommandResult) -> bool {
    let queued = |t: &crate::domain::transaction::Transaction| t.status == crate::domain::transaction::Status::Queued;
    match result {
        Ok(Outcome::Transaction(t)) => queued(t),
        Ok(Outcome::Bulk { recorded, .. }) => recorded.iter().any(queued),
        // The scheduler saw due work (a scheduled transaction whose time came).
        Ok(Outcome::QueueNudged) => true,
        _ => false,
    }
}

impl Core {
    /// How long a write retries a transient failure (`TRANSIENT_FOR`, or `AWAY_FOR`).
    fn patience(&self) -> Duration {
        if self.store_away {
            AWAY_FOR
        } else {
            TRANSIENT_FOR
        }
    }

    /// Notes whether the database answered a write (`store_away`).
    fn note_store(&mut self, written: &StoreResult<()>) {
        match written {
            Ok(()) => self.store_away = false,
            Err(error) if error.is_transient() => self.store_away = true,
            Err(_) => {}
        }
    }
}

/// Runs one database transaction (`transaction`: a `write` or a `rehearse`), trying again for up
/// to `patience` while the store reports a transient failure (a serialization failure, a
/// deadlock, a connection lost to a database restart): those are the database's to resolve, not
/// the client's.
fn with_retries(patience: Duration, transaction: &mut dyn FnMut() -> StoreResult<()>) -> StoreResult<()> {
    let mut delay = Duration::from_millis(5);
    let mut tries = 0;
    let started = std::time::Instant::now();
    loop {
        match transaction() {
            Err(error) if error.is_transient() && tries < TRANSIENT_RETRIES && started.elapsed() < patience => {
                tries += 1;
                tracing::warn!(%error, tries, "transient storage failure; retrying the batch");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Metrics of a committed batch: only what is durable is counted.
fn record_batch(commands: &[Command], output: &batch::BatchOutput, elapsed: Duration) {
    use crate::telemetry::*;
    metrics::histogram!(BATCH_SIZE).record(output.results.len() as f64);
    metrics::histogram!(COMMIT_DURATION).record(elapsed.as_secs_f64());
    metrics::counter!(MONITOR_EVALUATIONS).increment(output.monitor_evaluations);
    metrics::counter!(MONITOR_TRIGGERS).increment(output.monitor_triggers);
    // Counted per status once per batch, not per transaction: this runs on the engine thread,
    // which every request waits for. No currency label: a currency is the client's string (and a
    // refused request's may be anything), so it would make the label set, and memory, unbounded.
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    let mut count = |status: &'static str| match counts.iter_mut().find(|(s, _)| *s == status) {
        Some((_, n)) => *n += 1,
        None => counts.push((status, 1)),
    };
    for (i, result) in output.results.iter().enumerate() {
        match (result, commands.get(i)) {
            (Ok(Outcome::Transaction(t)), _) => count(t.status.as_str()),
            (Ok(Outcome::Split { legs, .. }), _) => legs.iter().flatten().for_each(|t| count(t.status.as_str())),
            (Ok(Outcome::Bulk { recorded, refused, .. }), _) => {
                recorded.iter().for_each(|t| count(t.status.as_str()));
                if refused.is_some() {
                    count("REFUSED");
                }
            }
            (Err(_), Some(Command::CreateTransaction(_) | Command::CreateSplit(_) | Command::CreateBulk(_))) => {
                count("REFUSED")
            }
            _ => {}
        }
    }
    for (status, n) in counts {
        metrics::counter!(TRANSACTIONS, "status" => status).increment(n);
    }
}
