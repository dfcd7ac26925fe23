//! Taking balance snapshots (`domain::snapshot`): every balance, in id order, `batch_size` at a time,
//! each page one engine command (`Command::TakeSnapshots`), so transfers go on between pages. Run by
//! the scheduler once a day (and at start) and by `POST /balances-snapshots`; several runs, or
//! several processes, at once only find the snapshots taken already.

use crate::engine::{Command, EngineHandle, Outcome};
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Balances per engine command unless asked otherwise (Blnk's default `batch_size`).
pub const DEFAULT_BATCH: u32 = 1000;
/// Most balances per engine command: a page is one batch, which holds their locks.
pub const MAX_BATCH: u32 = 10_000;

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
    let (mut after, mut taken) = (String::new(), 0);
    loop {
        let store = store.clone();
        let from = after.clone();
        let page =
            crate::tasks::blocking("balance snapshots", move || store.reader()?.balance_ids_after(&from, batch_size))
                .await
                .ok_or("the read was cancelled")?
                .map_err(|e| e.to_string())?;
        let Some(last) = page.last().cloned() else { return Ok(taken) };
        match engine.submit(Command::TakeSnapshots { balance_ids: page }).await {
            Ok(Outcome::Snapshots(n)) => {
                taken += n;
                metrics::counter!(crate::telemetry::BALANCE_SNAPSHOTS).increment(n);
            }
            Ok(other) => unreachable!("TakeSnapshots answers Snapshots, not {other:?}"),
            Err(error) => return Err(error.to_string()),
        }
        after = last;
    }
}
