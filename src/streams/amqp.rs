//! RabbitMQ (AMQP 0.9.1): each event is a persistent message on a durable topic exchange, with the
//! routing key `<event type>.<balance id>`, the webhook's body, and the event id as `message_id`
//! (RabbitMQ does not drop a copy by itself, so a consumer that must not see one twice keeps the
//! ids it has seen). An event counts as published once the broker confirmed it (publisher
//! confirms). The exchange routes to the queues bound to it; one with no queue bound drops what it
//! is given, as RabbitMQ does: bind a queue before events matter.

use super::Broker;
use crate::domain::event::Event;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;

/// How long the broker may take to confirm a message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where events are published (`--amqp-url`, `--amqp-exchange`).
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub url: String,
    /// A durable topic exchange, declared if missing.
    pub exchange: String,
}

/// A connection to RabbitMQ and a channel in confirm mode, once connected.
pub struct Amqp {
    config: AmqpConfig,
    channel: Option<(Connection, Channel)>,
    /// The broker's `max_message_size`, once it refused a message over it. AMQP does not announce
    /// it, and the broker closes the channel on such a message, so without it the same event would
    /// be sent again for ever: learnt from the refusal, a larger event goes as a stub.
    max_message_size: Option<usize>,
}

impl Amqp {
    pub fn new(config: AmqpConfig) -> Amqp {
        Amqp { config, channel: None, max_message_size: None }
    }

    /// The cursor's name in `stream_cursors`.
    pub fn cursor_name(&self) -> String {
        format!("amqp:{}", self.config.exchange)
    }

    /// `event`'s body and properties: persistent, its id as `message_id`, its type and sequence in
    /// headers; a stub in its place if it is over the broker's limit.
    fn message(&self, event: &Event) -> (String, BasicProperties) {
        let mut headers = FieldTable::default();
        headers.insert("keel-event-type".into(), AMQPValue::LongString(event.kind.as_str().into()));
        headers.insert("keel-sequence".into(), AMQPValue::LongLongInt(event.sequence));
        let mut body = crate::wire::event::delivered_body(event);
        if let Some(max) = self.max_message_size.filter(|max| body.len() > *max) {
            headers.insert("keel-too-large".into(), AMQPValue::LongLongInt(body.len() as i64));
            body = super::too_large(event, body.len(), ("max_message_size", max));
        }
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(event.id.as_str()))
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        (body, properties)
    }
}

impl Broker for Amqp {
    fn describe(&self) -> String {
        // The URL may carry a password: the host part only.
        let host = self.config.url.rsplit_once('@').map_or(self.config.url.as_str(), |(_, host)| host);
        format!("AMQP {host} exchange {}", self.config.exchange)
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.channel = None;
        let connection =
            Connection::connect(&self.config.url, ConnectionProperties::default()).await.map_err(|e| e.to_string())?;
        let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(self.config.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .map_err(|e| e.to_string())?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| e.to_string())?;
        self.channel = Some((connection, channel));
        Ok(())
    }

    async fn publish(&mut self, events: &[Event]) -> (usize, Option<String>) {
        let Some((connection, channel)) = &self.channel else { return (0, Some("not connected".into())) };
        // Sent one after another, then the confirmations awaited in order: a gap is never
        // confirmed past.
        let mut confirms = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in events {
            let (body, properties) = self.message(event);
            let key = super::routing_key(event);
            let options = BasicPublishOptions::default();
            match channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    key.as_str().into(),
                    options,
                    body.as_bytes(),
                    properties,
                )
                .await
            {
                Ok(confirm) => confirms.push(confirm),
                Err(error) => {
                    failure = Some(error.to_string());
                    break;
                }
            }
        }
        let mut done = 0;
        let mut said_blocked = false;
        let mut refused_over = None;
        for mut confirm in confirms {
            // A connection the broker closed may leave a confirmation that never comes. One the
            // broker blocks (a resource alarm: `connection.blocked`) is waited on while it stays
            // up: the broker takes what was sent once the alarm clears, and sending it again
            // would make a copy.
            let confirmed = loop {
                let waited = tokio::time::timeout(CONFIRM_TIMEOUT, &mut confirm).await;
                let status = connection.status();
                if waited.is_ok() || !(status.blocked() && status.connected()) {
                    break waited;
                }
                if !std::mem::replace(&mut said_blocked, true) {
                    tracing::warn!(
                        broker = %self.describe(),
                        "the broker blocks publishing (a resource alarm: memory or disk); waiting for it to clear"
                    );
                }
            };
            match confirmed {
                Ok(Ok(confirmation)) if confirmation.is_ack() => done += 1,
                Ok(Ok(_)) => {
                    failure.get_or_insert_with(|| "the broker refused a message (nack)".to_string());
                    break;
                }
                Ok(Err(error)) => {
                    let error = error.to_string();
                    refused_over = refused_over.or_else(|| max_message_size(&error));
                    failure.get_or_insert(error);
                    break;
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "no confirmation within 5 s".to_string());
                    break;
                }
            }
        }
        if let Some(max) = refused_over.filter(|max| self.max_message_size != Some(*max)) {
            tracing::warn!(
                broker = %self.describe(),
                "the broker refuses messages over {max} bytes (its max_message_size): a larger event is \
                 published as a stub naming where to read it whole"
            );
            self.max_message_size = Some(max);
        }
        (done, failure)
    }
}

/// The limit in RabbitMQ's refusal of a message over its `max_message_size` (the channel's close
/// reason: "PRECONDITION_FAILED - message size 100493 is larger than configured max size 65536").
fn max_message_size(error: &str) -> Option<usize> {
    let (_, after) = error.split_once("larger than configured max size ")?;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_limit_is_read_from_the_brokers_refusal() {
        let refusal = "protocol error: AMQP soft error: PRECONDITION-FAILED: PRECONDITION_FAILED - message size \
                       100493 is larger than configured max size 65536";
        assert_eq!(super::max_message_size(refusal), Some(65536));
        assert_eq!(super::max_message_size("invalid channel state: Closing (basic.publish)"), None);
        assert_eq!(super::max_message_size("larger than configured max size x"), None);
    }
}
