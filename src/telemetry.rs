//! Logs and metrics: how they are set up, and the names of every metric in one place so the
//! `/metrics` page and the README agree.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event.
    Text,
    /// For machines: one JSON object per line, with the request id of the request it belongs to.
    Json,
}

/// Logs go to stdout; `RUST_LOG` sets the level (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
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
