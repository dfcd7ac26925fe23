//! Taking balance snapshots (`domain::snapshot`): every balance, in id order, `batch_size` at a
//! time. Each page is first read on a reader, off the engine, for the
//! balances that lack a snapshot (most do not move every day); only those go to the engine, at most
//! `PER_COMMAND` per command (`Command::TakeSnapshots`), which takes them under their locks, so
//! transfers go on between commands and no command holds the engine for long. Run by the scheduler
//! once a day (and at start) and by `POST /balances-snapshots`; several runs, or several processes,
//! at once only find the snapshots taken already.

use crate::domain::snapshot;
use crate::engine::{Command, EngineHandle, Outcome};
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Balances per engine command unless asked otherwise (Blnk's default `batch_size`).
pub const DEFAULT_BATCH: u32 = 1000;
/// Most balances per page read.
pub const MAX_BATCH: u32 = 10_000;
/// Most balances per engine command: each costs a few reads inside the engine's batch.
const PER_COMMAND: usize = 50;

/// One run at a time per process: a second request while one runs finds it running.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Starts a run in the background unless one is running; true if this call started it.
pub fn start(store: Arc<dyn Store>, engine: EngineHandle, batch_size: u32) -> bool {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return false;
    }
    crate::tasks::task("balance snapshots", async move {
        match take_all(&store, &engine, batch_size.clamp(1, MAX_BATCH)).await {
            Ok(taken) => tracing::info!(taken, "balance snapshots taken"),
            Err(error) => tracing::warn!(%error, "balance snapshots stopped; the next run carries on"),
        }
        RUNNING.store(false, Ordering::SeqCst);
    });
    true
}

/// Every balance's snapshots; how many were taken.
async fn take_all(store: &Arc<dyn Store>, engine: &EngineHandle, batch_size: u32) -> Result<u64, String> {
    let horizon = snapshot::horizon(engine.now_ms());
    let (mut after, mut taken) = (String::new(), 0);
    loop {
        let (store, from, horizon) = (store.clone(), after.clone(), horizon.clone());
        let (last, lacking) = crate::tasks::blocking("balance snapshots", move || {
            let reader = store.reader()?;
            let page = reader.balance_ids_after(&from, batch_size)?;
            let mut lacking = Vec::new();
            for id in &page {
                if !crate::engine::due_snapshots(reader.as_ref(), id, &horizon)?.is_empty() {
                    lacking.push(id.clone());
                }
            }
            Ok::<_, crate::store::StoreError>((page.last().cloned(), lacking))
        })
        .await
        .ok_or("the read was cancelled")?
        .map_err(|e| e.to_string())?;
        let Some(last) = last else { return Ok(taken) };
        for balance_ids in lacking.chunks(PER_COMMAND) {
            match engine.submit(Command::TakeSnapshots { balance_ids: balance_ids.to_vec() }).await {
                Ok(Outcome::Snapshots(n)) => {
                    taken += n;
                    metrics::counter!(crate::telemetry::BALANCE_SNAPSHOTS).increment(n);
                }
                Ok(other) => unreachable!("TakeSnapshots answers Snapshots, not {other:?}"),
                Err(error) => return Err(error.to_string()),
            }
        }
        after = last;
    }
}
