//! `system.error`: what Blnk sends when something fails in the background (Blnk 0.15's
//! `notification.NotifyError`: logged, and posted to the webhook URL as
//! `{"event": "system.error", "data": {"error", "time"}}`). Keel sends one for every error it logs
//! — a batch the store refused, a queue that cannot be applied, an outbox that cannot be written, a
//! panic — to `KEEL_WEBHOOK_URL` and to every active endpoint subscribed to `system.error`.
//!
//! Unlike every other event it is not written to the outbox first: the failing part is often the
//! store itself. It is sent once, at once, best effort; the same message is sent at most once a
//! minute, and a burst beyond what the queue holds is dropped (the log keeps every line).

use super::dispatcher::WebhookConfig;
use super::send::{self, send, Target};
use crate::domain::endpoint::{Endpoint, Headers};
use crate::domain::event::EventKind;
use crate::tasks;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Errors waiting to be sent; beyond this, new ones are dropped until the sender catches up.
const QUEUE: usize = 64;

/// How long the same message is not sent again.
const SAME_MESSAGE_EVERY: Duration = Duration::from_secs(60);

/// Where the log layer hands errors over; set once the server runs (`spawn`).
static SINK: OnceLock<mpsc::Sender<String>> = OnceLock::new();

/// The log layer that hands every error Keel logs to the sender (`spawn`); nothing before it runs.
pub struct ErrorLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for ErrorLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() != Level::ERROR || !metadata.target().starts_with("keel") {
            return;
        }
        let Some(sink) = SINK.get() else { return };
        let mut text = Message::default();
        event.record(&mut text);
        let _ = sink.try_send(text.finish());
    }
}

/// A log event as one line: its message, then its fields as `name=value`.
#[derive(Default)]
struct Message {
    message: String,
    fields: Vec<String>,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.fields.push(format!("{name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => self.fields.push(format!("{name}={value}")),
        }
    }
}

impl Message {
    fn finish(self) -> String {
        std::iter::once(self.message).chain(self.fields).collect::<Vec<_>>().join(" ")
    }
}

/// Starts sending `system.error` events on the current runtime. `endpoints` is the endpoints'
/// supervisor's latest list of active endpoints.
pub fn spawn(config: Arc<WebhookConfig>, endpoints: watch::Receiver<Arc<Vec<Endpoint>>>) {
    let (sink, errors) = mpsc::channel(QUEUE);
    if SINK.set(sink).is_err() {
        return; // one sender per process
    }
    tasks::task("system.error sender", run(config, endpoints, errors));
}

async fn run(
    config: Arc<WebhookConfig>,
    endpoints: watch::Receiver<Arc<Vec<Endpoint>>>,
    mut errors: mpsc::Receiver<String>,
) {
    let client = send::client(config.timeout);
    let mut last_sent: HashMap<String, Instant> = HashMap::new();
    while let Some(error) = errors.recv().await {
        last_sent.retain(|_, at| at.elapsed() < SAME_MESSAGE_EVERY);
        if last_sent.contains_key(&error) {
            continue;
        }
        last_sent.insert(error.clone(), Instant::now());
        let id = crate::engine::new_id("evt");
        let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let body =
            serde_json::json!({"event": EventKind::SystemError.as_str(), "data": {"error": error, "time": time}})
                .to_string();
        let mut targets = Vec::new();
        if let Some(url) = &config.default_url {
            targets.push((url.clone(), config.secret.clone(), config.headers.clone()));
        }
        let current = endpoints.borrow().clone();
        for e in current.iter().filter(|e| e.active && e.wants(EventKind::SystemError)) {
            targets.push((e.url.clone(), Some(e.secret.clone()), e.headers.clone()));
        }
        for (url, secret, headers) in &targets {
            post(&client, url, secret.as_deref(), headers, &id, &body).await;
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, secret: Option<&str>, headers: &Headers, id: &str, body: &str) {
    let target = Target { url, secret, headers, timeout: None };
    let sent = send(client, &target, id, body.to_string()).await;
    if !sent.delivered() {
        // A warning, not an error: an error here would be sent again, and fail again.
        tracing::warn!(url, error = ?sent.error, "a system.error webhook was not delivered");
    }
}
