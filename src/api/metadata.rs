//! `POST /{id}/metadata`: merge keys into a ledger's, balance's or transaction's metadata (Blnk's
//! metadata route). The id's prefix names the entity.

use super::error::ApiError;
use super::extract::{JsonBody, PathId, Payload};
use super::AppState;
use crate::domain::error::Resource;
use crate::engine::{Command, Outcome};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MetadataBody {
    /// The keys to add or replace; keys not named keep their values.
    #[schema(value_type = Object)]
    meta_data: Option<Map<String, Value>>,
}

impl Payload for MetadataBody {
    const RESOURCE: Resource = Resource::General;
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MetadataJson {
    /// The entity's whole metadata after the merge.
    #[schema(value_type = Object)]
    meta_data: Map<String, Value>,
}

/// The resource an entity id names, by its prefix, as the scope check and the engine read it.
pub fn entity_resource(id: &str) -> Option<&'static str> {
    match id.split_once('_').map(|(prefix, _)| prefix) {
        Some("ldg") => Some("ledgers"),
        Some("bln") => Some("balances"),
        Some("txn" | "bulk") => Some("transactions"),
        _ => None,
    }
}

#[utoipa::path(operation_id = "updateMetadata",
    post,
    path = "/{id}/metadata",
    tag = "metadata",
    request_body = MetadataBody,
    params(("id" = String, Path, description = "a ledger (`ldg_…`), balance (`bln_…`), transaction or split \
        (`txn_…`) or bulk request (`bulk_…`)")),
    responses(
        (status = 200, description = "the entity's metadata after the merge (a transaction's \
            children get the keys too); for a split or a bulk request, whose every leg or item gets \
            them, the keys merged", body = MetadataJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, GEN_VALIDATION_ERROR, META_INVALID_ENTITY_ID, \
            META_UNSUPPORTED_ENTITY (identities)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS: needs metadata:write and read \
            of the entity's resource", body = crate::api::error::ErrorBody),
        (status = 404, description = "META_ENTITY_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<MetadataBody>,
) -> Result<Json<MetadataJson>, ApiError> {
    if entity_resource(&id).is_none() {
        return Err(match id.starts_with("idt_") {
            true => {
                ApiError::new(StatusCode::BAD_REQUEST, "META_UNSUPPORTED_ENTITY", "Keel does not have identities yet")
            }
            false => ApiError::validation(
                Resource::Metadata,
                "id",
                format!(
                    "{id} is not the id of a ledger (ldg_), balance (bln_), transaction (txn_) or bulk request (bulk_)"
                ),
            ),
        }
        .with_field("id"));
    }
    let Some(meta_data) = body.meta_data else {
        return Err(ApiError::validation(Resource::General, "meta_data", "meta_data is required"));
    };
    match app.engine.submit(Command::UpdateMetadata { id, meta_data }).await? {
        Outcome::MetaData(meta_data) => Ok(Json(MetadataJson { meta_data })),
        other => unreachable!("UpdateMetadata answers metadata, not {other:?}"),
    }
}
