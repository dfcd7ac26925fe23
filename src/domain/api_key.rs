//! Scoped API keys, as Blnk has them: a name, an owner, scopes such as `balances:read`,
//! `transactions:write` or `balance-monitors:*`, and an optional expiry. Only a hash of the secret is
//! stored; the secret itself is shown once, when the key is created.

use super::error::{DomainError, Resource};

/// What a request does, as a scope names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    /// As a scope spells it: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// The resources a scope can name (`*` names them all).
pub const RESOURCES: &[&str] = &[
    "ledgers",
    "balances",
    "transactions",
    "balance-monitors",
    "events",
    "metrics",
    "metadata",
    "identities",
    "search",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// A name from `RESOURCES`, or `*`.
    pub resource: String,
    /// `read`, `write` or `*`.
    pub action: String,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, DomainError> {
        let invalid = || {
            DomainError::validation(
                Resource::General,
                "scopes",
                format!(
                    "scope {text:?} must be RESOURCE:ACTION with RESOURCE one of {}, or *, and ACTION read, write or *",
                    RESOURCES.join(", ")
                ),
            )
        };
        let (resource, action) = text.split_once(':').ok_or_else(invalid)?;
        if !(resource == "*" || RESOURCES.contains(&resource)) || !matches!(action, "read" | "write" | "*") {
            return Err(invalid());
        }
        Ok(Scope { resource: resource.into(), action: action.into() })
    }

    pub fn allows(&self, resource: &str, action: Action) -> bool {
        let action_ok =
            matches!((self.action.as_str(), action), ("*", _) | ("read", Action::Read) | ("write", Action::Write));
        action_ok && (self.resource == "*" || self.resource == resource)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the secret.
    pub key_hash: String,
    pub created_at: String,
    /// RFC 3339; `None` never expires.
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ApiKey {
    pub fn allows(&self, resource: &str, action: Action) -> bool {
        self.scopes.iter().any(|s| s.allows(resource, action))
    }
}

/// What is stored instead of a secret: hex SHA-256. Secrets are 256 random bits, so a fast hash is
/// enough (no password stretching needed), and a lookup by hash reveals nothing about the secret.
pub fn hash_secret(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_match() {
        let s = |t| Scope::parse(t).unwrap();
        assert!(s("balances:read").allows("balances", Action::Read));
        assert!(!s("balances:read").allows("balances", Action::Write));
        assert!(!s("balances:read").allows("transactions", Action::Read));
        assert!(s("balance-monitors:*").allows("balance-monitors", Action::Write));
        assert!(s("*:read").allows("events", Action::Read));
        assert!(s("*:*").allows("ledgers", Action::Write));
        for bad in ["balances", "balances:delete", "accounts:read", ":read", "balances:", "api-keys:*"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(s("transactions:write").to_string(), "transactions:write");
    }
}
