//! `/identities`: Blnk's identity records, their filters, and tokenization of their personal
//! data (`domain::identity`). Writes go through the engine; detokenizing is a read with the
//! server's key.

use super::error::ApiError;
use super::extract::{JsonBody, PathId, PathPair, Payload};
use super::filters::{self, FilterBody, ListQuery, Listed, Listing};
use super::{created, read, AppState};
use crate::domain::error::Resource;
use crate::domain::filter::{self as filter_domain, Collection};
use crate::domain::identity::{Identity, TokenError};
use crate::engine::{Command, Outcome};
use crate::wire::IdentityJson;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The identity list.
pub struct IdentityList;
impl Listed for IdentityList {
    const COLLECTION: Collection = Collection::Identities;
}

/// An identity as clients send it (`POST`, and `PUT`, which replaces every field).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct IdentityBody {
    identity_type: Option<String>,
    organization_name: Option<String>,
    category: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    other_names: Option<String>,
    gender: Option<String>,
    email_address: Option<String>,
    phone_number: Option<String>,
    nationality: Option<String>,
    street: Option<String>,
    country: Option<String>,
    state: Option<String>,
    post_code: Option<String>,
    city: Option<String>,
    /// Date of birth: RFC 3339 or `YYYY-MM-DD`.
    dob: Option<String>,
    #[schema(value_type = Option<Object>)]
    meta_data: Option<Map<String, Value>>,
}

impl Payload for IdentityBody {
    const RESOURCE: Resource = Resource::Identity;
}

fn identity(id: String, body: IdentityBody) -> Result<Identity, ApiError> {
    let dob = match body.dob.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match filter_domain::instant(text) {
            Some(filter_domain::Value::Instant { from, .. }) => Some(from),
            _ => return Err(ApiError::validation(Resource::Identity, "dob", "dob must be RFC 3339 or YYYY-MM-DD")),
        },
    };
    let mut meta_data = body.meta_data.unwrap_or_default();
    // Which fields hold tokens is the server's to say, never the client's.
    meta_data.remove("tokenized_fields");
    Ok(Identity {
        id,
        identity_type: body.identity_type.unwrap_or_default(),
        organization_name: body.organization_name.unwrap_or_default(),
        category: body.category.unwrap_or_default(),
        first_name: body.first_name.unwrap_or_default(),
        last_name: body.last_name.unwrap_or_default(),
        other_names: body.other_names.unwrap_or_default(),
        gender: body.gender.unwrap_or_default(),
        email_address: body.email_address.unwrap_or_default(),
        phone_number: body.phone_number.unwrap_or_default(),
        nationality: body.nationality.unwrap_or_default(),
        street: body.street.unwrap_or_default(),
        country: body.country.unwrap_or_default(),
        state: body.state.unwrap_or_default(),
        post_code: body.post_code.unwrap_or_default(),
        city: body.city.unwrap_or_default(),
        dob,
        created_at: String::new(),
        meta_data,
        tokenized: Default::default(),
    })
}

async fn answer(app: &AppState, command: Command) -> Result<Identity, ApiError> {
    match app.engine.submit(command).await? {
        Outcome::Identity(identity) => Ok(identity),
        other => unreachable!("an identity command answers an identity, not {other:?}"),
    }
}

async fn done(app: &AppState, command: Command) -> Result<(), ApiError> {
    match app.engine.submit(command).await? {
        Outcome::Done => Ok(()),
        other => unreachable!("this command answers Done, not {other:?}"),
    }
}

async fn stored(app: &AppState, id: String) -> Result<Identity, ApiError> {
    read(app, move |r| r.identity(&id)).await?.ok_or_else(|| ApiError::not_found(Resource::Identity))
}

/// Blnk's `{"message": …}` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageJson {
    message: &'static str,
}

#[utoipa::path(operation_id = "createIdentity", post, path = "/identities", tag = "identities",
    request_body = IdentityBody,
    responses(
        (status = 201, description = "the identity", body = crate::wire::IdentityJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, \
            IDT_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody))
)]
pub async fn create(State(app): State<AppState>, JsonBody(body): JsonBody<IdentityBody>) -> Result<Response, ApiError> {
    let new = identity(String::new(), body)?;
    Ok(created(IdentityJson::from(answer(&app, Command::CreateIdentity(new)).await?)))
}

#[utoipa::path(operation_id = "getIdentity", get, path = "/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "identity id")),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "the identity (tokenized fields hold their \
            tokens)", body = crate::wire::IdentityJson),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<IdentityJson>, ApiError> {
    Ok(Json(stored(&app, id).await?.into()))
}

#[utoipa::path(operation_id = "updateIdentity", put, path = "/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "identity id")), request_body = IdentityBody,
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"message\": \"Identity updated successfully\"}` (Blnk's); every field is \
            replaced, and a tokenized field sent back as its token stays tokenized", body = MessageJson),
        (status = 400, description = "IDT_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<IdentityBody>,
) -> Result<Json<MessageJson>, ApiError> {
    answer(&app, Command::UpdateIdentity(identity(id, body)?)).await?;
    Ok(Json(MessageJson { message: "Identity updated successfully" }))
}

#[utoipa::path(operation_id = "deleteIdentity", delete, path = "/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "identity id")),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"message\": \"Identity deleted successfully\"}`", body = MessageJson),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 409, description = "GEN_CONFLICT: balances belong to it", body = crate::api::error::ErrorBody))
)]
pub async fn delete(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<MessageJson>, ApiError> {
    done(&app, Command::DeleteIdentity { id }).await?;
    Ok(Json(MessageJson { message: "Identity deleted successfully" }))
}

#[utoipa::path(operation_id = "listIdentities", get, path = "/identities", tag = "identities",
    params(crate::api::filters::ListQueryDoc),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "identities, newest first, filtered", body = Vec<crate::wire::IdentityJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    ListQuery(query, _): ListQuery<IdentityList>,
) -> Result<Listing<IdentityJson>, ApiError> {
    filters::answer(&app, query, |r, q| r.find_identities(q), IdentityJson::from).await
}

#[utoipa::path(operation_id = "filterIdentities", post, path = "/identities/filter", tag = "identities",
    request_body = crate::api::filters::FilterBody,
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "the identities matching the filters", body = Vec<crate::wire::IdentityJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody))
)]
pub async fn filter(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<FilterBody>,
) -> Result<Listing<IdentityJson>, ApiError> {
    let query = filters::from_body(Collection::Identities, body)?;
    filters::answer(&app, query, |r, q| r.find_identities(q), IdentityJson::from).await
}

#[utoipa::path(operation_id = "getTokenizedFields", get, path = "/identities/{id}/tokenized-fields",
    tag = "identities", params(("id" = String, Path, description = "identity id")),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"tokenized_fields\": [\"first_name\", …]}`", body = Object),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn tokenized_fields(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    let identity = stored(&app, id).await?;
    Ok(Json(json!({ "tokenized_fields": identity.tokenized })))
}

/// `POST /identities/{id}/tokenize`'s and `…/detokenize`'s body.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct FieldsBody {
    /// Field names (`first_name`, `email_address`, …).
    #[serde(default)]
    fields: Vec<String>,
}

impl Payload for FieldsBody {
    const RESOURCE: Resource = Resource::Identity;
    const ONLY: Option<&'static [&'static str]> = Some(&["fields"]);
}

#[utoipa::path(operation_id = "tokenizeIdentityField", post, path = "/identities/{id}/tokenize/{field}",
    tag = "identities",
    params(("id" = String, Path, description = "identity id"),
        ("field" = String, Path, description = "e.g. email_address")),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"message\": \"Field tokenized successfully\"}`", body = MessageJson),
        (status = 400, description = "IDT_VALIDATION_ERROR (not tokenizable, already tokenized, no \
            key)", body = crate::api::error::ErrorBody),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn tokenize_field(
    State(app): State<AppState>,
    PathPair(id, field): PathPair,
) -> Result<Json<MessageJson>, ApiError> {
    answer(&app, Command::TokenizeIdentity { id, fields: vec![field] }).await?;
    Ok(Json(MessageJson { message: "Field tokenized successfully" }))
}

#[utoipa::path(operation_id = "tokenizeIdentity", post, path = "/identities/{id}/tokenize", tag = "identities",
    params(("id" = String, Path, description = "identity id")), request_body = FieldsBody,
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"message\": \"Fields tokenized successfully\"}` (all or \
            none)", body = MessageJson),
        (status = 400, description = "IDT_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn tokenize(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<FieldsBody>,
) -> Result<Json<MessageJson>, ApiError> {
    if body.fields.is_empty() {
        return Err(ApiError::validation(Resource::Identity, "fields", "at least one field must be specified"));
    }
    answer(&app, Command::TokenizeIdentity { id, fields: body.fields }).await?;
    Ok(Json(MessageJson { message: "Fields tokenized successfully" }))
}

/// The value of a tokenized field, opened with the server's key.
fn detokenized(app: &AppState, identity: &Identity, field: &str) -> Result<String, ApiError> {
    let refused = |message: String| ApiError::validation(Resource::Identity, "field", message);
    if !identity.tokenized.contains(field) {
        return Err(refused(format!("field {field} is not tokenized")));
    }
    let key = app.token_key.as_ref().ok_or_else(|| refused(TokenError::Disabled.to_string()))?;
    let token = identity.field(field).expect("a tokenized field is a text field");
    key.open(token).map_err(|e| refused(format!("field {field}: {e}")))
}

#[utoipa::path(operation_id = "detokenizeIdentityField", get, path = "/identities/{id}/detokenize/{field}",
    tag = "identities",
    params(("id" = String, Path, description = "identity id"),
        ("field" = String, Path, description = "e.g. email_address")),
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"field\", \"value\"}`; needs `identities:write` with a scoped \
            key", body = Object),
        (status = 400, description = "IDT_VALIDATION_ERROR (not tokenized, no key, another key's \
            token)", body = crate::api::error::ErrorBody),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn detokenize_field(
    State(app): State<AppState>,
    PathPair(id, field): PathPair,
) -> Result<Json<Value>, ApiError> {
    let identity = stored(&app, id).await?;
    let value = detokenized(&app, &identity, &field)?;
    Ok(Json(json!({ "field": field, "value": value })))
}

#[utoipa::path(operation_id = "detokenizeIdentity", post, path = "/identities/{id}/detokenize", tag = "identities",
    params(("id" = String, Path, description = "identity id")), request_body = FieldsBody,
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"fields\": {name: value}}`: those asked for, or every tokenized \
            one", body = Object),
        (status = 400, description = "IDT_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 404, description = "IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn detokenize(
    State(app): State<AppState>,
    PathId(id): PathId,
    body: super::extract::OptionalJsonBody<FieldsBody>,
) -> Result<Json<Value>, ApiError> {
    let identity = stored(&app, id).await?;
    let asked = body.0.fields;
    let fields: Vec<String> = if asked.is_empty() { identity.tokenized.iter().cloned().collect() } else { asked };
    let mut values = Map::new();
    for field in fields {
        let value = detokenized(&app, &identity, &field)?;
        values.insert(field, Value::String(value));
    }
    Ok(Json(json!({ "fields": values })))
}
