//! An identity as Blnk writes it. Which fields hold tokens shows as Blnk shows it:
//! `meta_data.tokenized_fields`, each tokenized field's name mapped to `true`.

use crate::domain::identity::Identity;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct IdentityJson {
    pub identity_id: String,
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
    /// RFC 3339, or null when not given.
    pub dob: Option<String>,
    pub created_at: String,
    #[schema(value_type = Option<Object>)]
    pub meta_data: Map<String, Value>,
}

impl From<Identity> for IdentityJson {
    fn from(i: Identity) -> Self {
        let mut meta_data = i.meta_data;
        if !i.tokenized.is_empty() {
            let tokenized = i.tokenized.into_iter().map(|field| (field, Value::Bool(true))).collect();
            meta_data.insert("tokenized_fields".into(), Value::Object(tokenized));
        }
        IdentityJson {
            identity_id: i.id,
            identity_type: i.identity_type,
            organization_name: i.organization_name,
            category: i.category,
            first_name: i.first_name,
            last_name: i.last_name,
            other_names: i.other_names,
            gender: i.gender,
            email_address: i.email_address,
            phone_number: i.phone_number,
            nationality: i.nationality,
            street: i.street,
            country: i.country,
            state: i.state,
            post_code: i.post_code,
            city: i.city,
            dob: i.dob,
            created_at: i.created_at,
            meta_data,
        }
    }
}
