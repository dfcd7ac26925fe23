//! Webhook delivery: reads the outbox, posts each event to its subscriber (signed when a secret is
//! set), retries with backoff across restarts, and records every attempt. The write path never waits
//! on any of this.

pub mod callback;
mod dispatcher;
pub mod endpoints;
pub mod retry;
pub mod send;
pub mod signing;
pub mod system_error;

pub use dispatcher::{spawn, WebhookConfig};
