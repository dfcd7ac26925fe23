//! Keel: a double-entry ledger server speaking Blnk's HTTP API.
//! Layers, each importing only those below it: `api` → `engine` → `store` → `domain`; `wire` (Blnk's
//! JSON shapes) sits beside `domain` for `api` and the engine's event bodies. The browser pages
//! (`/console`, `/docs`) are files under `assets/`, compiled in and served by `api::assets`; the
//! console calls the same API as any client.

pub mod api;
pub mod check;
pub mod config;
pub mod config_file;
pub mod domain;
pub mod engine;
pub mod scheduler;
pub mod search;
pub mod snapshots;
pub mod store;
pub mod streams;
pub mod tasks;
pub mod telemetry;
pub mod webhooks;
pub mod wire;
