//! Identities (Blnk's): the people and organisations balances belong to, and tokenization of their
//! personal data. A tokenized field holds a token instead of its value: AES-256-GCM under the
//! server's key with a fresh random nonce, so a token reveals nothing without the key (not even
//! whether two values are equal) and cannot be altered unnoticed. The token is Blnk's standard
//! one (base64 of nonce ‖ ciphertext ‖ tag), so a Blnk database tokenized under the same key
//! detokenizes here; Blnk's format-preserving tokens (`FPT:…`), which show the value's shape,
//! are read but never made.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The fields that may be tokenized (Blnk's list, as its docs spell them).
pub const TOKENIZABLE: [&str; 7] =
    ["first_name", "last_name", "other_names", "email_address", "phone_number", "street", "post_code"];

/// The text fields of an identity, in Blnk's order (every one may be written and filtered on).
pub const TEXT_FIELDS: [&str; 15] = [
    "identity_type",
    "organization_name",
    "category",
    "first_name",
    "last_name",
    "other_names",
    "gender",
    "email_address",
    "phone_number",
    "nationality",
    "street",
    "country",
    "state",
    "post_code",
    "city",
];

/// An identity. Text fields left out are empty, as in Blnk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    pub id: String,
    pub identity_type: String,
    pub organization_name: String,
    pub category: String,
    pub first_name: String,
    pub last_name: String,
    pub other_names: String,
    pub gender: String,
    pub email_address: String,
    pub phone_number: String,
    pub nationality: String,
    pub street: String,
    pub country: String,
    pub state: String,
    pub post_code: String,
    pub city: String,
    /// Date of birth: RFC 3339 in UTC (microseconds), if given.
    pub dob: Option<String>,
    pub created_at: String,
    pub meta_data: Map<String, Value>,
    /// The fields whose value is a token.
    pub tokenized: BTreeSet<String>,
}

impl Identity {
    /// The text field `name`, if it is one.
    pub fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            "identity_type" => &self.identity_type,
            "organization_name" => &self.organization_name,
            "category" => &self.category,
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "other_names" => &self.other_names,
            "gender" => &self.gender,
            "email_address" => &self.email_address,
            "phone_number" => &self.phone_number,
            "nationality" => &self.nationality,
            "street" => &self.street,
            "country" => &self.country,
            "state" => &self.state,
            "post_code" => &self.post_code,
            "city" => &self.city,
            _ => return None,
        })
    }

    pub fn field_mut(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "identity_type" => &mut self.identity_type,
            "organization_name" => &mut self.organization_name,
            "category" => &mut self.category,
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "other_names" => &mut self.other_names,
            "gender" => &mut self.gender,
            "email_address" => &mut self.email_address,
            "phone_number" => &mut self.phone_number,
            "nationality" => &mut self.nationality,
            "street" => &mut self.street,
            "country" => &mut self.country,
            "state" => &mut self.state,
            "post_code" => &mut self.post_code,
            "city" => &mut self.city,
            _ => return None,
        })
    }
}

/// The server's tokenization key: 32 bytes.
#[derive(Clone)]
pub struct TokenKey(Aes256Gcm);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

/// Why a token could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "tokenization is disabled: start the server with --tokenization-secret (KEEL_TOKENIZATION_SECRET), 32 bytes"
    )]
    Disabled,
    #[error("the stored value is not a token")]
    Malformed,
    #[error("the token does not open with this server's key (another key made it, or it was altered)")]
    WrongKey,
}

impl TokenKey {
    /// A key from the configured secret: 32 bytes as written (Blnk's `BLNK_TOKENIZATION_SECRET`),
    /// or 64 hexadecimal digits.
    pub fn from_secret(secret: &str) -> Result<TokenKey, String> {
        let bytes: Vec<u8> = match secret.len() {
            32 => secret.as_bytes().to_vec(),
            64 if secret.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (0..32).map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).expect("hex digits")).collect()
            }
            n => return Err(format!("the tokenization secret must be 32 bytes (or 64 hex digits), not {n}")),
        };
        Aes256Gcm::new_from_slice(&bytes).map(TokenKey).map_err(|e| e.to_string())
    }

    /// `value` sealed with `nonce` (which must never be used twice with this key: the engine draws
    /// it at random).
    pub fn seal(&self, nonce: [u8; 12], value: &str) -> String {
        let sealed = self.0.encrypt(Nonce::from_slice(&nonce), value.as_bytes()).expect("AES-GCM seals any length");
        let mut token = nonce.to_vec();
        token.extend(sealed);
        base64::engine::general_purpose::STANDARD.encode(token)
    }

    /// The value a token was made from.
    pub fn open(&self, token: &str) -> Result<String, TokenError> {
        // Blnk's format-preserving token carries the standard one after its visible part.
        let standard = match token.strip_prefix("FPT:") {
            Some(rest) => rest.split_once(':').map(|(_, standard)| standard).ok_or(TokenError::Malformed)?,
            None => token,
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(standard).map_err(|_| TokenError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(TokenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let opened = self.0.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| TokenError::WrongKey)?;
        String::from_utf8(opened).map_err(|_| TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_with_its_key_only_and_reveals_nothing() {
        let key = TokenKey::from_secret("0123456789abcdef0123456789abcdef").unwrap();
        let other = TokenKey::from_secret(&"ab".repeat(32)).unwrap();
        let (a, b) = (key.seal([1; 12], "alice@example.com"), key.seal([2; 12], "alice@example.com"));
        assert_ne!(a, b, "the same value seals differently each time");
        assert!(!a.contains("alice") && !a.contains("example"));
        assert_eq!(key.open(&a).as_deref(), Ok("alice@example.com"));
        assert_eq!(other.open(&a), Err(TokenError::WrongKey));
        let mut altered = base64::engine::general_purpose::STANDARD.decode(&a).unwrap();
        *altered.last_mut().unwrap() ^= 1;
        let altered = base64::engine::general_purpose::STANDARD.encode(altered);
        assert_eq!(key.open(&altered), Err(TokenError::WrongKey));
        assert_eq!(key.open("not a token"), Err(TokenError::Malformed));
        assert_eq!(key.open(&format!("FPT:xxxxx@xxxxxxx.xxx:{b}")).as_deref(), Ok("alice@example.com"));
        assert!(TokenKey::from_secret("short").is_err());
    }
}
