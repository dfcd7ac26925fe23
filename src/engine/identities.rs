//! The rules of identities: create, replace, delete (only one no balance belongs to), tokenize
//! fields, and link a balance to one.

use super::batch::{new_id, Batch};
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::error::{DomainError, Resource};
use crate::domain::identity::{Identity, TOKENIZABLE};
use crate::store::Writes;
use aes_gcm::AeadCore;

impl Batch {
    pub(super) fn create_identity(&mut self, w: &mut dyn Writes, new: &Identity) -> Ruled<Outcome> {
        let identity =
            Identity { id: new_id("idt"), created_at: self.now.clone(), tokenized: Default::default(), ..new.clone() };
        w.insert_identity(&identity)?;
        Ok(Outcome::Identity(identity))
    }

    pub(super) fn update_identity(&mut self, w: &mut dyn Writes, new: &Identity) -> Ruled<Outcome> {
        let current = stored(w, &new.id)?;
        // A tokenized field sent back as its token stays tokenized; given anything else, it holds
        // that value now.
        let tokenized = current
            .tokenized
            .iter()
            .filter(|field| current.field(field).is_some() && current.field(field) == new.field(field))
            .cloned()
            .collect();
        let identity = Identity { created_at: current.created_at, tokenized, ..new.clone() };
        w.update_identity(&identity)?;
        Ok(Outcome::Identity(identity))
    }

    pub(super) fn delete_identity(&mut self, w: &mut dyn Writes, id: &str) -> Ruled<Outcome> {
        stored(w, id)?;
        if w.identity_has_balances(id)? {
            let message = "balances belong to this identity: link them to another (PUT /balances/{id}/identity) first";
            return Err(DomainError::Conflict(message.to_string()).into());
        }
        w.delete_identity(id)?;
        Ok(Outcome::Done)
    }

    pub(super) fn tokenize_identity(&mut self, w: &mut dyn Writes, id: &str, fields: &[String]) -> Ruled<Outcome> {
        let Some(key) = self.config.token_key else {
            let message = crate::domain::identity::TokenError::Disabled.to_string();
            return Err(DomainError::validation(Resource::Identity, "tokenization_secret", message).into());
        };
        let mut identity = stored(w, id)?;
        for field in fields {
            if !TOKENIZABLE.contains(&field.as_str()) {
                let message = format!("field {field} is not tokenizable (tokenizable: {})", TOKENIZABLE.join(", "));
                return Err(DomainError::validation(Resource::Identity, "field", message).into());
            }
            if identity.tokenized.contains(field) {
                let message = format!("field {field} is already tokenized");
                return Err(DomainError::validation(Resource::Identity, "field", message).into());
            }
            let value = identity.field_mut(field).expect("a tokenizable field is a text field");
            // A fresh 96-bit random nonce from the operating system for every token (never reused).
            let nonce: [u8; 12] = aes_gcm::Aes256Gcm::generate_nonce(&mut aes_gcm::aead::OsRng).into();
            *value = key.seal(nonce, value);
            identity.tokenized.insert(field.clone());
        }
        w.update_identity(&identity)?;
        Ok(Outcome::Identity(identity))
    }

    pub(super) fn set_balance_identity(
        &mut self,
        w: &mut dyn Writes,
        balance_id: &str,
        identity_id: &str,
    ) -> Ruled<Outcome> {
        stored(w, identity_id)?;
        // Loaded and locked by `plan`: the batch's copy is what the cache gets back.
        let balance =
            self.balances.get_mut(balance_id).ok_or_else(|| DomainError::not_found(Resource::Balance, "balance_id"))?;
        balance.identity_id = identity_id.to_string();
        w.set_balance_identity(balance_id, identity_id)?;
        Ok(Outcome::Done)
    }
}

fn stored(w: &mut dyn Writes, id: &str) -> Ruled<Identity> {
    Ok(w.identity(id)?.ok_or_else(|| DomainError::not_found(Resource::Identity, "identity_id"))?)
}
