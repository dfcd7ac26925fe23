//! The search indexer: keeps each record's search terms (`domain::search`, `wire::search::terms`)
//! up with the database, off the write path. Every write that creates or changes a searchable
//! record queues it in `search_dirty` in its own commit; the indexer takes queued records (on
//! PostgreSQL, `SKIP LOCKED`: indexers of several processes take different ones), writes their
//! terms from the records as they stand, and takes exactly those entries off the queue, in one
//! commit. So every committed change reaches the index, a round (`EVERY`) later; the indexer's
//! commits are not flushed, and one lost in a crash only leaves its entries queued. A record that
//! fails for good (not a lost connection or a full disk) is found and left out with an error, so
//! it cannot hold every later record out of search.
//!
//! A reindex (`POST /search/reindex`) empties the index and queues every record; its progress is
//! kept here, per process.

use crate::domain::filter::Collection;
use crate::store::{ErrorKind, Searchable, Store, StoreError, StoreResult, Writes};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the indexer looks for work.
const EVERY: Duration = Duration::from_millis(200);
/// Queued records per round, unless a reindex asked for another (`set_batch`).
static BATCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);

/// A reindex this process started: what Blnk's `GET /search/reindex` answers.
#[derive(Debug, Clone)]
struct Reindex {
    /// Unix milliseconds: rounds that began before do not count.
    started_ms: i64,
    started_at: String,
    completed_at: Option<String>,
    total_records: u64,
    processed_records: u64,
}

static REINDEX: Mutex<Option<Reindex>> = Mutex::new(None);

/// Starts the indexer on the current runtime.
pub fn spawn(store: Arc<dyn Store>) {
    crate::tasks::task("search indexer", async move {
        loop {
            let store = store.clone();
            let began = unix_ms();
            let batch = BATCH.load(std::sync::atomic::Ordering::Relaxed);
            let work = move || match round(store.as_ref(), batch, &mut Vec::new()) {
                Err(error) if for_good(&error) => {
                    tracing::warn!(%error, "the search indexer failed a round; it looks for the record that fails");
                    skip_unindexable(store.as_ref(), batch);
                    Err(error)
                }
                other => other,
            };
            let full = match crate::tasks::blocking("search indexer", work).await {
                Some(Ok(done)) => {
                    note_progress(began, done);
                    matches!(done, Round::Indexed { full: true, .. })
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "the search indexer failed a round; it tries again");
                    false
                }
                None => return,
            };
            // A full round means more is queued: the next starts at once, so the index keeps up
            // with a steady load instead of falling behind by a batch per pause.
            if !full {
                tokio::time::sleep(EVERY).await;
            }
        }
    });
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Nothing was queued: the index is up with every commit before the round.
    CaughtUp,
    /// `count` records indexed; `full` if the round took as many entries as it could.
    Indexed { count: u64, full: bool },
}

/// A failure that trying the same round again will not change: not a lost connection, a busy
/// database or a full disk (those pass), but a statement the database refuses or a record that does
/// not read back.
fn for_good(error: &StoreError) -> bool {
    matches!(error.kind(), ErrorKind::Database | ErrorKind::Corrupt)
}

/// After a round failed for good: indexes the queue one record at a time, at most `batch` of them,
/// and takes off the queue the first record whose indexing fails for good, with an error in the log
/// (so a `system.error` event): one record the index cannot take must not keep every later one out
/// of search. A reindex once the cause is mended brings it back.
fn skip_unindexable(store: &dyn Store, batch: u32) {
    for _ in 0..batch {
        let mut taken = Vec::new();
        match round(store, 1, &mut taken) {
            Ok(Round::CaughtUp) => return,
            Ok(Round::Indexed { .. }) => {}
            Err(error) if for_good(&error) => {
                let Some((position, collection, id)) = taken.first() else { return };
                match store.write_unflushed(&mut |w| w.drop_search_queue(&[*position])) {
                    Ok(()) => tracing::error!(
                        %error, collection, id,
                        "this record cannot be indexed: it is left out of search (POST /search/reindex once mended)"
                    ),
                    Err(error) => tracing::warn!(%error, "cannot take an unindexable record off the search queue"),
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// One round: the next `batch` queued records, indexed and taken off the queue in one commit.
/// `taken` is left holding the queue entries the round took (also when it failed).
fn round(store: &dyn Store, batch: u32, taken: &mut Vec<(i64, String, String)>) -> StoreResult<Round> {
    // Looked for with a read first: an idle indexer never takes the writer.
    if !store.reader()?.search_queued()? {
        return Ok(Round::CaughtUp);
    }
    let mut done = Round::CaughtUp;
    store.write_unflushed(&mut |w| {
        let queue = w.search_queue(batch)?;
        taken.clone_from(&queue);
        let mut count = 0;
        for collection in [Collection::Ledgers, Collection::Balances, Collection::Transactions, Collection::Identities]
        {
            let name = crate::store::table_of(collection);
            let mut ids: Vec<String> = queue.iter().filter(|q| q.1 == name).map(|q| q.2.clone()).collect();
            ids.sort();
            ids.dedup();
            count += index(w, collection, &ids)?;
        }
        let positions: Vec<i64> = queue.iter().map(|q| q.0).collect();
        if !positions.is_empty() {
            w.drop_search_queue(&positions)?;
        }
        done = match queue.is_empty() {
            true => Round::CaughtUp,
            false => Round::Indexed { count, full: queue.len() as u32 == batch },
        };
        Ok(())
    })?;
    Ok(done)
}

/// Writes the terms of these records of `collection` (those that still exist).
fn index(w: &mut dyn Writes, collection: Collection, ids: &[String]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let found = w.searchable(collection, ids)?;
    for (position, record) in &found {
        let document = document(record.clone());
        w.index_terms(collection, *position, &crate::wire::search::terms(collection, &document))?;
    }
    Ok(found.len() as u64)
}

/// A record's search document (`wire::search`).
pub fn document(record: Searchable) -> Value {
    match record {
        Searchable::Ledger(l) => crate::wire::search::ledger(l),
        Searchable::Balance(b) => crate::wire::search::balance(b),
        Searchable::Transaction(t) => crate::wire::search::transaction(t),
        Searchable::Identity(i) => crate::wire::search::identity(i),
    }
}

/// Sets how many queued records a round takes (Blnk's reindex `batch_size`).
pub fn set_batch(size: u32) {
    BATCH.store(size.clamp(1, 10_000), std::sync::atomic::Ordering::Relaxed);
}

/// Starts a reindex: `Err` with the running one's progress if one is running in this process.
pub fn start_reindex(store: &dyn Store) -> Result<Value, Value> {
    let mut reindex = REINDEX.lock();
    if let Some(running) = reindex.as_ref().filter(|r| r.completed_at.is_none()) {
        return Err(progress(running));
    }
    let mut total = 0;
    let reset = store.write(&mut |w| {
        total = 0;
        for c in [Collection::Ledgers, Collection::Balances, Collection::Transactions, Collection::Identities] {
            total += w.collection_size(c)?;
        }
        w.reset_search_index()
    });
    if let Err(error) = reset {
        tracing::error!(%error, "the search index could not be reset");
        return Err(json!({"status": "failed", "errors": [error.to_string()]}));
    }
    let started = Reindex {
        started_ms: unix_ms(),
        started_at: now_text(),
        completed_at: None,
        total_records: total,
        processed_records: 0,
    };
    let answer = progress(&started);
    *reindex = Some(started);
    Ok(answer)
}

/// The progress of the reindex this process started last, if any.
pub fn reindex_progress() -> Option<Value> {
    REINDEX.lock().as_ref().map(progress)
}

/// Counts a round that began at `began` (Unix milliseconds) towards the running reindex.
fn note_progress(began: i64, done: Round) {
    let mut reindex = REINDEX.lock();
    let Some(running) = reindex.as_mut().filter(|r| r.completed_at.is_none() && began > r.started_ms) else { return };
    match done {
        Round::Indexed { count, .. } => {
            running.processed_records = (running.processed_records + count).min(running.total_records)
        }
        // Caught up: every record of the reindex is indexed (records made since came as well).
        Round::CaughtUp => {
            running.processed_records = running.total_records;
            running.completed_at = Some(now_text());
        }
    }
}

fn progress(reindex: &Reindex) -> Value {
    let done = reindex.completed_at.is_some();
    let mut answer = json!({
        "status": if done { "completed" } else { "in_progress" },
        "phase": if done { "done" } else { "indexing" },
        "total_records": reindex.total_records,
        "processed_records": reindex.processed_records,
        "started_at": reindex.started_at,
    });
    if let Some(at) = &reindex.completed_at {
        answer["completed_at"] = json!(at);
    }
    answer
}

fn now_text() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
