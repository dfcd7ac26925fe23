//! Logs and metrics: how they are set up, and the names of every metric in one place so the
//! `/metrics` page and the README agree.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use std::io::BufWriter;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub const HTTP_REQUESTS: &str = "keel_http_requests_total";
pub const HTTP_DURATION: &str = "keel_http_request_duration_seconds";
pub const TRANSACTIONS: &str = "keel_transactions_total";
pub const BATCH_SIZE: &str = "keel_engine_batch_size";
pub const COMMIT_DURATION: &str = "keel_engine_commit_duration_seconds";
pub const MONITOR_EVALUATIONS: &str = "keel_monitor_evaluations_total";
pub const MONITOR_TRIGGERS: &str = "keel_monitor_triggers_total";
pub const OUTBOX_PENDING: &str = "keel_outbox_pending_events";
pub const WEBHOOK_DELIVERIES: &str = "keel_webhook_deliveries_total";
pub const WEBHOOK_LAG: &str = "keel_webhook_delivery_lag_seconds";
pub const DB_CONNECTIONS: &str = "keel_db_pool_connections";
pub const BALANCE_SNAPSHOTS: &str = "keel_balance_snapshots_total";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event.
    Text,
    /// For machines: one JSON object per line, with the request id of the request it belongs to.
    Json,
}

/// The log writer's thread, kept so `flush_logs` can wait for it to write what it holds.
static LOG_WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Logs go to stdout; `RUST_LOG` sets the level (default `info`).
///
/// A thread of its own writes them, every line waiting at that moment in one `write`. Written
/// from the HTTP workers, one line and one locked `write` per request cost a quarter of the
/// throughput at 64 clients (docs/performance.md). A full buffer slows the logging request down;
/// no line is dropped. Call `flush_logs` before the process ends.
pub fn init_logging(format: LogFormat) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("keel-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    *LOG_WRITER.lock() = Some(guard);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = match format {
        LogFormat::Text => lines.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).boxed(),
        LogFormat::Json => lines.json().with_current_span(true).with_span_list(false).boxed(),
    };
    // Every error Keel logs is also a `system.error` webhook, as in Blnk, once the server runs.
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(crate::webhooks::system_error::ErrorLayer)
        .init();
}

/// Waits until every line logged so far is written (at most a second). Lines logged afterwards are
/// lost, so this is the last thing before the process ends. Does nothing if logging was never set up.
pub fn flush_logs() {
    let guard = LOG_WRITER.lock().take();
    drop(guard);
}

/// Installs the process-wide metrics recorder; the handle renders the Prometheus page.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    let seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &sizes))
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}
