//! The rules of API keys.

use super::batch::{new_id, Batch};
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::api_key::{hash_secret, ApiKey, Scope};
use crate::domain::error::{DomainError, Resource};
use crate::store::Writes;

impl Batch {
    pub(super) fn create_api_key(
        &mut self,
        w: &mut dyn Writes,
        name: &str,
        owner: &str,
        scopes: &[Scope],
        expires_at: Option<&String>,
    ) -> Ruled<Outcome> {
        // 256 random bits from two v4 UUIDs (the OS's generator), hex-encoded.
        let secret = format!("keel_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let key = ApiKey {
            id: new_id("key"),
            name: name.to_string(),
            owner: owner.to_string(),
            scopes: scopes.to_vec(),
            key_hash: hash_secret(&secret),
            created_at: self.now.clone(),
            expires_at: expires_at.cloned(),
            revoked_at: None,
        };
        w.insert_api_key(&key)?;
        Ok(Outcome::ApiKey { key, secret: Some(secret) })
    }

    pub(super) fn revoke_api_key(&mut self, w: &mut dyn Writes, id: &str) -> Ruled<Outcome> {
        let mut key = w.api_key(id)?.ok_or_else(|| DomainError::not_found(Resource::General, "api_key_id"))?;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(self.now.clone());
            w.revoke_api_key(id, &self.now)?;
        }
        Ok(Outcome::ApiKey { key, secret: None })
    }
}
