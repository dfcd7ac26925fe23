//! The rules of webhook endpoints. They are written through the engine like every other write, so
//! an endpoint's starting point in the outbox is exact: it receives every event committed after it.

use super::batch::{new_id, Batch};
use super::command::{EndpointPatch, NewEndpoint, Outcome};
use super::failure::Ruled;
use crate::domain::endpoint::{new_secret, Endpoint};
use crate::domain::error::{DomainError, Resource};
use crate::store::{endpoint_stream, EndpointFilter, Page, Writes};

/// The id prefix of a `/webhooks` endpoint.
pub const ENDPOINT_PREFIX: &str = "whk";
/// The id prefix of a Blnk hook (`/hooks`), as Blnk makes them.
pub const HOOK_PREFIX: &str = "hook";

/// Most endpoints a server keeps: each has a task delivering to it in every process.
pub const MAX_ENDPOINTS: usize = 1000;

impl Batch {
    pub(super) fn create_endpoint(&mut self, w: &mut dyn Writes, new: &NewEndpoint) -> Ruled<Outcome> {
        if w.endpoints(&EndpointFilter::default(), Page::first(MAX_ENDPOINTS as u32, 0))?.len() >= MAX_ENDPOINTS {
            let message = format!("a server keeps at most {MAX_ENDPOINTS} webhook endpoints");
            return Err(DomainError::Conflict(message).into());
        }
        let endpoint = Endpoint {
            // The prefix keeps `/webhooks` and `/hooks` apart.
            id: new_id(if new.hook.is_some() { HOOK_PREFIX } else { ENDPOINT_PREFIX }),
            url: new.url.clone(),
            event_types: new.event_types.clone(),
            secret: new.secret.clone().unwrap_or_else(|| new_secret(random_bytes())),
            headers: new.headers.clone(),
            active: new.active,
            description: new.description.clone(),
            created_at: self.now.clone(),
            updated_at: self.now.clone(),
            name: new.name.clone(),
            hook: new.hook,
            timeout_ms: new.timeout_ms,
            max_attempts: new.max_attempts,
            last_run: None,
            last_success: None,
        };
        w.insert_endpoint(&endpoint)?;
        w.set_stream_cursor(&endpoint_stream(&endpoint.id), w.last_event_sequence()?)?;
        Ok(Outcome::Endpoint { endpoint, show_secret: true })
    }

    pub(super) fn update_endpoint(&mut self, w: &mut dyn Writes, id: &str, patch: &EndpointPatch) -> Ruled<Outcome> {
        let mut endpoint = w.endpoint(id)?.ok_or_else(|| DomainError::not_found(resource_of(id), "id"))?;
        let reactivated = patch.active == Some(true) && !endpoint.active;
        let EndpointPatch {
            url,
            event_types,
            secret,
            headers,
            active,
            description,
            name,
            hook,
            timeout_ms,
            max_attempts,
        } = patch.clone();
        endpoint.url = url.unwrap_or(endpoint.url);
        endpoint.event_types = event_types.unwrap_or(endpoint.event_types);
        let show_secret = secret.is_some();
        endpoint.secret = secret.unwrap_or(endpoint.secret);
        endpoint.headers = headers.unwrap_or(endpoint.headers);
        endpoint.active = active.unwrap_or(endpoint.active);
        endpoint.description = description.unwrap_or(endpoint.description);
        endpoint.name = name.unwrap_or(endpoint.name);
        endpoint.hook = hook.or(endpoint.hook);
        endpoint.timeout_ms = timeout_ms.or(endpoint.timeout_ms);
        endpoint.max_attempts = max_attempts.or(endpoint.max_attempts);
        endpoint.updated_at = self.now.clone();
        w.update_endpoint(&endpoint)?;
        if reactivated {
            // What happened while it was off is not sent: it was off.
            w.set_stream_cursor(&endpoint_stream(id), w.last_event_sequence()?)?;
        }
        Ok(Outcome::Endpoint { endpoint, show_secret })
    }

    pub(super) fn delete_endpoint(&mut self, w: &mut dyn Writes, id: &str) -> Ruled<Outcome> {
        let endpoint = w.endpoint(id)?.ok_or_else(|| DomainError::not_found(resource_of(id), "id"))?;
        w.delete_endpoint(id)?;
        Ok(Outcome::Endpoint { endpoint, show_secret: false })
    }

    pub(super) fn redeliver_to_endpoint(
        &mut self,
        w: &mut dyn Writes,
        endpoint_id: &str,
        event_id: &str,
    ) -> Ruled<Outcome> {
        w.endpoint(endpoint_id)?.ok_or_else(|| DomainError::not_found(resource_of(endpoint_id), "id"))?;
        let event = w.event(event_id)?.ok_or_else(|| DomainError::not_found(Resource::Event, "event_id"))?;
        w.redeliver_to_endpoint(endpoint_id, &event, self.now_ms)?;
        let delivery = w.endpoint_delivery(endpoint_id, event_id)?.expect("a delivery just written exists");
        Ok(Outcome::EndpointDelivery(delivery))
    }
}

/// Which API an endpoint id belongs to, for the code of its errors.
fn resource_of(id: &str) -> Resource {
    match id.strip_prefix(HOOK_PREFIX).is_some_and(|rest| rest.starts_with('_')) {
        true => Resource::Hook,
        false => Resource::Webhook,
    }
}

/// 32 bytes from the operating system's generator (two v4 UUIDs: 244 random bits).
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}
