//! Work that time makes due, driven by `keel serve`: once a second it looks (with the read pool)
//! for `SCHEDULED` transactions whose `scheduled_for` has come, and inflight holds whose
//! `inflight_expiry_date` or `inflight_commit_date` has; it hands them to the engine, which does
//! the work by its own rules (a due transaction is applied like a queued one; an expired hold is
//! voided, a hold at its commit date committed, each with its event). Everything it acts on is a
//! stored row, so it survives restarts, and it is safe on several processes: a second void or
//! commit of the same hold is refused by the engine, never applied twice. Once a day (and at start)
//! it also starts taking balance snapshots (`crate::snapshots`).

use crate::engine::{Command, EngineError, EngineHandle, InflightAction};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Holds voided or committed per look, per kind (the rest are found a second later).
const HOLDS_PER_LOOK: u32 = 500;

/// Starts the scheduler on the current runtime.
pub fn spawn(store: Arc<dyn Store>, engine: EngineHandle, every: Duration) {
    crate::tasks::task("scheduler", async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The day boundary snapshots were last taken up to (`domain::snapshot`): none at start,
        // so a restarted server catches up at once.
        let mut snapshots_through = None;
        loop {
            tick.tick().await;
            look(&store, &engine).await;
            let horizon = crate::domain::snapshot::horizon(crate::engine::Clock::system().now().1);
            if snapshots_through.as_ref() != Some(&horizon)
                && crate::snapshots::start(store.clone(), engine.clone(), crate::snapshots::DEFAULT_BATCH)
            {
                snapshots_through = Some(horizon);
            }
        }
    });
}

/// One look: what is due now, handed to the engine.
async fn look(store: &Arc<dyn Store>, engine: &EngineHandle) {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let store = store.clone();
    let due = crate::tasks::blocking("scheduler", move || -> crate::store::StoreResult<_> {
        let reader = store.reader()?;
        Ok((
            reader.scheduled_due(&now)?,
            reader.holds_due(&now, true, HOLDS_PER_LOOK)?,
            reader.holds_due(&now, false, HOLDS_PER_LOOK)?,
        ))
    })
    .await;
    let (scheduled, expired, committing) = match due {
        Some(Ok(due)) => due,
        Some(Err(error)) => {
            tracing::warn!(%error, "the scheduler could not read what is due; it looks again in a moment");
            return;
        }
        None => return,
    };
    if scheduled {
        let _ = engine.submit(Command::RunQueue).await;
    }
    let commit_all = InflightAction::Commit { amount: None, precise_amount: None };
    let holds = expired.into_iter().map(|id| (id, InflightAction::Void, "expired"));
    let holds = holds.chain(committing.into_iter().map(|id| (id, commit_all.clone(), "commit date")));
    for (id, action, why) in holds {
        match engine.submit(Command::FinishInflight { id: id.clone(), action }).await {
            Ok(_) => tracing::info!(transaction_id = %id, reason = why, "hold settled by the scheduler"),
            // Settled meanwhile (by a client, or another process): nothing to do.
            Err(EngineError::Rejected(refused)) => {
                tracing::debug!(transaction_id = %id, %refused, "hold already settled")
            }
            Err(error) => tracing::warn!(transaction_id = %id, %error, "the scheduler could not settle a hold"),
        }
    }
}
