//! The JSON shapes of webhook endpoints (`/webhooks`, Keel's own) and of their deliveries.

use crate::domain::endpoint::{Endpoint, EndpointDelivery};
use crate::domain::event::Attempt;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointJson {
    pub endpoint_id: String,
    pub url: String,
    /// Event types, `prefix.*` or `*`.
    pub events: Vec<String>,
    /// Custom headers sent with every delivery, by lower-case name.
    pub headers: BTreeMap<String, String>,
    pub active: bool,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret: only in the answer to the request that created or changed it. Store it;
    /// to replace a lost one, set a new one with `PUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointJson {
    pub fn new(e: Endpoint, show_secret: bool) -> Self {
        EndpointJson {
            secret: show_secret.then_some(e.secret),
            endpoint_id: e.id,
            url: e.url,
            events: e.event_types.0,
            headers: e.headers.0,
            active: e.active,
            description: e.description,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An event whose delivery to an endpoint needed more than one attempt (or was asked again).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointDeliveryJson {
    pub endpoint_id: String,
    pub event_id: String,
    pub event: &'static str,
    /// `pending` (retried at `next_attempt_at`), `delivered` or `failed` (redeliverable).
    pub status: &'static str,
    pub attempts: u32,
    /// Unix milliseconds of the next attempt, while pending.
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// Every attempt, oldest first (on a single delivery's read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<super::event::AttemptJson>>,
}

impl EndpointDeliveryJson {
    pub fn new(d: EndpointDelivery, attempts: Option<Vec<Attempt>>) -> Self {
        let pending = d.status == crate::domain::event::Delivery::Pending;
        EndpointDeliveryJson {
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: pending.then_some(d.next_attempt_at),
            last_error: d.last_error,
            delivered_at: d.delivered_at,
            deliveries: attempts.map(|list| list.into_iter().map(super::event::AttemptJson::from).collect()),
        }
    }
}
