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
}

impl Amqp {
    pub fn new(config: AmqpConfig) -> Amqp {
        Amqp { config, channel: None }
    }

    /// The cursor's name in `stream_cursors`.
    pub fn cursor_name(&self) -> String {
        format!("amqp:{}", self.config.exchange)
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
            let mut headers = FieldTable::default();
            headers.insert("keel-event-type".into(), AMQPValue::LongString(event.kind.as_str().into()));
            headers.insert("keel-sequence".into(), AMQPValue::LongLongInt(event.sequence));
            let properties = BasicProperties::default()
                .with_message_id(ShortString::from(event.id.as_str()))
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers);
            let body = crate::wire::event::delivered_body(event);
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
                    failure.get_or_insert_with(|| error.to_string());
                    break;
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "no confirmation within 5 s".to_string());
                    break;
                }
            }
        }
        (done, failure)
    }
}
