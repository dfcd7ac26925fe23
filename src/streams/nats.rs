//! NATS JetStream: each event is a message on `<prefix>.<event type>.<balance id>` (`none` for an
//! event about no one balance; a transaction's is its source's) in one stream, with the webhook's
//! body and the event id as `Nats-Msg-Id`, so JetStream drops a copy published again within its
//! duplicate window. An event counts as published once JetStream has acknowledged storing it.
//!
//! A message may be no larger than the server's `max_payload` (1 MiB by default), and a request
//! of up to 1 MiB can make an event a little larger: such an event is published as a stub (its
//! sequence, type and id, where to read it whole, and a `Keel-Too-Large` header), so one large
//! transaction never stops the stream behind it.

use super::Broker;
use crate::domain::event::Event;
use async_nats::jetstream;
use std::time::Duration;

/// Where and how events are published (`--nats-url`, `--nats-stream`, `--nats-subject-prefix`).
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    /// The JetStream stream, created if missing, taking `<subject_prefix>.>`.
    pub stream: String,
    pub subject_prefix: String,
}

/// A connection to NATS and its JetStream context, once connected.
pub struct Nats {
    config: NatsConfig,
    context: Option<jetstream::Context>,
    /// The connected server's largest message, headers included.
    max_payload: usize,
}

impl Nats {
    pub fn new(config: NatsConfig) -> Nats {
        Nats { config, context: None, max_payload: usize::MAX }
    }

    /// The cursor's name in `stream_cursors`.
    pub fn cursor_name(&self) -> String {
        format!("nats:{}", self.config.stream)
    }
}

/// How long JetStream may take to acknowledge a message.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl Broker for Nats {
    fn describe(&self) -> String {
        format!("NATS {} stream {}", self.config.url, self.config.stream)
    }

    async fn connect(&mut self) -> Result<(), String> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(ACK_TIMEOUT)
            .connect(&self.config.url)
            .await
            .map_err(|e| e.to_string())?;
        self.max_payload = client.server_info().max_payload;
        let mut context = jetstream::new(client);
        context.set_timeout(ACK_TIMEOUT);
        let stream = jetstream::stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            ..Default::default()
        };
        context.get_or_create_stream(stream).await.map_err(|e| e.to_string())?;
        self.context = Some(context);
        Ok(())
    }

    async fn publish(&mut self, events: &[Event]) -> (usize, Option<String>) {
        let Some(context) = &self.context else { return (0, Some("not connected".into())) };
        // Sent one after another without waiting, then the acknowledgements awaited in order:
        // the broker stores them in the order sent, and a gap is never confirmed past.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.as_str());
            headers.insert("Keel-Event-Type", event.kind.as_str());
            headers.insert("Keel-Sequence", event.sequence.to_string().as_str());
            let mut body = crate::wire::event::delivered_body(event);
            if body.len() + HEADERS_AT_MOST > self.max_payload {
                headers.insert("Keel-Too-Large", body.len().to_string().as_str());
                body = super::too_large(event, body.len(), ("max_payload", self.max_payload));
            }
            let subject = subject(&self.config.subject_prefix, event);
            match context.publish_with_headers(subject, headers, body.into()).await {
                Ok(ack) => acks.push(ack),
                Err(error) => {
                    return (confirmed(acks).await, Some(error.to_string()));
                }
            }
        }
        let sent = acks.len();
        let done = confirmed(acks).await;
        (done, (done < sent).then(|| "JetStream did not acknowledge every message".to_string()))
    }
}

/// Room left for a message's headers (ours are three short ones) under `max_payload`.
const HEADERS_AT_MOST: usize = 1024;

/// How many acknowledgements, from the first, arrived.
async fn confirmed(acks: Vec<jetstream::context::PublishAckFuture>) -> usize {
    let mut done = 0;
    for ack in acks {
        if ack.await.is_err() {
            break;
        }
        done += 1;
    }
    done
}

/// `<prefix>.<event type>.<balance id>`: a subscriber takes one type (`keel.events.balance.monitor.*`),
/// one balance (`keel.events.*.*.bln_…` for two-part types) or everything (`keel.events.>`).
fn subject(prefix: &str, event: &Event) -> String {
    format!("{prefix}.{}", super::routing_key(event))
}
