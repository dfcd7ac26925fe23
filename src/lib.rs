//! Keel: a double-entry ledger server speaking Blnk's HTTP API.
//! Layers, each importing only those below it: `api` → `engine` → `store` → `domain`.

pub mod api;
pub mod config;
pub mod domain;
pub mod engine;
pub mod store;
