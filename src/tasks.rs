//! The one policy for a panic, which is always a bug (DESIGN: "a panic is a bug"):
//!
//! - **In a request** (a handler, or the read it runs on a blocking thread): that request answers
//!   `500` with Blnk's error body and the process carries on. A request holds nothing another one
//!   needs: its reader is dropped and nothing it did was written (writes go through the engine).
//! - **In a background task or thread** (the engine, the webhook dispatcher and its outbox writes,
//!   the SQLite checkpointer, the PostgreSQL marker pruner): the process logs it once and exits with
//!   status 70 (`EX_SOFTWARE`), so its supervisor restarts it. A server serving on without its
//!   writer, or with its webhooks silently stopped, would look healthy and be broken. Nothing
//!   acknowledged is lost by exiting: a `2xx` is sent only after its batch committed, and events
//!   wait in the outbox until they are delivered.
//!
//! Background work is started with `thread` or `task` (never a bare `std::thread::spawn` or
//! `tokio::spawn`), so the policy cannot be forgotten.

use std::future::Future;

/// The exit status of a process stopped by a panic in background work (`EX_SOFTWARE`).
pub const PANIC_EXIT_STATUS: i32 = 70;

/// Logs that background work `name` panicked and ends the process.
pub fn stop_process(name: &str) -> ! {
    tracing::error!(task = name, "a background task panicked (a bug); stopping so a supervisor restarts Keel");
    crate::telemetry::flush_logs();
    std::process::exit(PANIC_EXIT_STATUS);
}

/// Starts background thread `name`; a panic in it ends the process.
pub fn thread(name: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<std::thread::JoinHandle<()>> {
    let owned = name.to_string();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
            stop_process(&owned);
        }
    })
}

/// Starts background task `name` on the current runtime; a panic in it ends the process. A task
/// cancelled because the runtime shuts down simply ends.
pub fn task(name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
    let running = tokio::spawn(work);
    tokio::spawn(async move {
        if let Err(error) = running.await {
            if error.is_panic() {
                stop_process(name);
            }
        }
    });
}

/// Runs blocking `work` for background task `name` on the runtime's blocking threads. `None`: the
/// runtime is shutting down. A panic in `work` ends the process.
pub async fn blocking<T: Send + 'static>(name: &'static str, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => Some(done),
        Err(error) if error.is_panic() => stop_process(name),
        Err(_) => None,
    }
}
