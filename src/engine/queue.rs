//! The queue: `QUEUED` transactions (and `SCHEDULED` ones once due) applied in the background by
//! the engine, oldest first, up to `QUEUE_BATCH` in one database transaction.
//!
//! Two kinds of failure, two answers:
//! - **The store's** (the database away, a full disk, a COMMIT whose outcome is unknown): the queue
//!   is tried again after a backoff (50 ms doubling to 5 s). The engine serves requests meanwhile:
//!   it waits for the retry only when it has nothing else to do (`Core::queue_retry_at`).
//! - **One transaction's** (its row does not read back, or the database refuses its statements:
//!   `ErrorKind::Database`, `Corrupt` or `Conflict`): after a batch fails so, the queue is applied one
//!   transaction at a time, and one that fails so twice in a row is *set aside*: left `QUEUED`,
//!   named in an error (so a `system.error` event), not taken again for `SET_ASIDE_FOR_MS` on the
//!   engine's clock; the queue goes on past it. Before, one such row failed the whole queue for
//!   ever. Twice, because a statement can fail once for a reason that is not the row's; and at
//!   most one per round: when the next fails too, the failure is more likely the database's (a
//!   grant revoked, a table renamed) than every row's, and the round ends as a store failure.

use super::{batch, record_batch, with_retries, Command, Core};
use crate::domain::transaction::Transaction;
use crate::store::{ErrorKind, StoreError, StoreResult, Writes};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many queued transactions one background batch applies.
pub(super) const QUEUE_BATCH: u32 = 500;
/// How long a transaction that cannot be applied is left alone before it is tried again (engine
/// clock, milliseconds): long enough not to fill the log, short enough that a mended row (or a
/// database that takes a statement again) is applied without a restart.
const SET_ASIDE_FOR_MS: i64 = 60_000;
/// The first and the longest wait before the queue is tried again after the store failed.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// What a round of the queue takes, read with the batch's writer at the engine's clock (as text).
type TakeQueued<'a> = dyn FnMut(&mut dyn Writes, &str) -> StoreResult<Vec<Transaction>> + 'a;

/// The queue's state in one engine worker.
pub(super) struct Queue {
    /// There may be queued transactions in the store (true at start: some may predate a restart).
    pub(super) pending: bool,
    /// After the store failed: not before this instant, and the wait that led to it.
    retry: Option<(Instant, Duration)>,
    /// Transactions set aside, by id: until when (engine clock, milliseconds).
    set_aside: HashMap<String, i64>,
}

impl Queue {
    pub(super) fn new() -> Queue {
        Queue { pending: true, retry: None, set_aside: HashMap::new() }
    }

    /// Whether the queue may be tried now (pending, and not waiting out a failure).
    pub(super) fn due(&self) -> bool {
        self.pending && self.retry.is_none_or(|(at, _)| Instant::now() >= at)
    }

    /// When a pending queue waiting out a failure may be tried again.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry.filter(|_| self.pending).map(|(at, _)| at)
    }

    fn failed(&mut self, error: &StoreError) {
        let wait = self.retry.map_or(FIRST_RETRY, |(_, wait)| (wait * 2).min(LONGEST_RETRY));
        tracing::error!(%error, retry_in = ?wait, "applying queued transactions failed");
        self.retry = Some((Instant::now() + wait, wait));
    }
}

/// A failure of the transaction, not of the store: running it again as it is fails again.
fn fails_for_good(error: &StoreError) -> bool {
    matches!(error.kind(), ErrorKind::Database | ErrorKind::Corrupt | ErrorKind::Conflict)
}

impl Core {
    /// Applies the oldest queued transactions in arrival order (but those set aside); returns how
    /// many it applied. It always tries, whatever the backoff: the engine thread asks
    /// `queue_work` first, the simulator calls it when it likes.
    pub fn apply_queued(&mut self) -> usize {
        let now_ms = self.config.clock.now().1;
        self.queue.set_aside.retain(|_, until| *until > now_ms);
        let except: Vec<String> = self.queue.set_aside.keys().cloned().collect();
        let applied = match self.apply_queue_round(&mut |w, now| w.queued_transactions(QUEUE_BATCH, now, &except)) {
            Err(error) if fails_for_good(&error) => {
                tracing::warn!(%error, "queued transactions failed as a batch; applying them one at a time");
                // Set-aside ones are out of the way now: a batch goes on from here.
                self.apply_queued_one_by_one(&except).inspect(|_| self.queue.pending = true)
            }
            applied => applied.inspect(|&applied| self.queue.pending = applied == QUEUE_BATCH as usize),
        };
        match applied {
            Ok(applied) => {
                self.queue.retry = None;
                applied
            }
            Err(error) => {
                self.queue.failed(&error);
                0
            }
        }
    }

    /// After a batch failed for good: each queued transaction in a database transaction of its
    /// own; one that fails for good twice in a row is set aside, at most one per round (a second
    /// ends the round as a store failure). Returns how many were applied.
    fn apply_queued_one_by_one(&mut self, except: &[String]) -> StoreResult<usize> {
        let now = self.config.clock.now().0;
        let wanted = QUEUE_BATCH.saturating_add(u32::try_from(except.len()).unwrap_or(u32::MAX));
        let ids = self.store.reader()?.queued_transaction_ids(wanted, &now)?;
        let (mut applied, mut set_aside_now) = (0, false);
        for id in ids.iter().filter(|id| !except.contains(id)).take(QUEUE_BATCH as usize) {
            let mut take_it = |w: &mut dyn Writes, now: &str| Ok(w.queued_transaction(id, now)?.into_iter().collect());
            let done = match self.apply_queue_round(&mut take_it) {
                Err(error) if fails_for_good(&error) => self.apply_queue_round(&mut take_it),
                done => done,
            };
            match done {
                Ok(n) => applied += n,
                Err(error) if fails_for_good(&error) && set_aside_now => return Err(error),
                Err(error) if fails_for_good(&error) => {
                    set_aside_now = true;
                    self.queue.set_aside.insert(id.clone(), self.config.clock.now().1 + SET_ASIDE_FOR_MS);
                    tracing::error!(
                        %error, transaction_id = %id,
                        "this queued transaction cannot be applied: it is set aside for a minute, still QUEUED, \
                         and the queue goes on past it"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(applied)
    }

    /// One database transaction applying what `take` reads (given the engine's clock as text).
    fn apply_queue_round(&mut self, take: &mut TakeQueued<'_>) -> StoreResult<usize> {
        let mut fetched = Vec::new();
        let mut output = None;
        let config = self.batch_config();
        let started = Instant::now();
        let patience = self.patience();
        let cache = &mut self.cache;
        let store = self.store.as_ref();
        let written = with_retries(patience, &mut || {
            store.write(&mut |w| {
                fetched = take(w, &config.clock.now().0)?.into_iter().map(Command::ApplyQueued).collect();
                output = Some(batch::apply_batch(w, &fetched, config, cache)?);
                Ok(())
            })
        });
        self.note_store(&written);
        written?;
        let mut output = output.expect("a committed batch has its output");
        self.committed(&mut output);
        record_batch(&[], &output, started.elapsed());
        Ok(fetched.len())
    }
}
