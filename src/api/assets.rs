//! The files Keel serves to browsers: the console (`/console`) and the API reference (`/docs`),
//! with the libraries they use (`assets/vendor`: uPlot, Swagger UI, each with its licence). They are
//! compiled into the binary, so both pages work on a machine with no internet access and need no
//! build step: `cargo run` serves them as they are in the tree.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// One served file: its name under `/console/assets/` or `/docs/assets/`, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr, $path:literal) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../assets/", $path)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// What `/console/assets/{name}` serves.
const CONSOLE: &[Asset] = &[
    asset!("console.js", JS, "console/console.js"),
    asset!("ui.js", JS, "console/ui.js"),
    asset!("pages.js", JS, "console/pages.js"),
    asset!("chart.js", JS, "console/chart.js"),
    asset!("console.css", CSS, "console/console.css"),
    asset!("uPlot.iife.min.js", JS, "vendor/uPlot.iife.min.js"),
    asset!("uPlot.min.css", CSS, "vendor/uPlot.min.css"),
];

/// What `/docs/assets/{name}` serves.
const DOCS: &[Asset] = &[
    asset!("reference.js", JS, "docs/reference.js"),
    asset!("swagger-ui-bundle.js", JS, "vendor/swagger-ui-bundle.js"),
    asset!("swagger-ui.css", CSS, "vendor/swagger-ui.css"),
];

/// The console's one page; its script routes by the URL's fragment (`/console#/balances`).
pub const CONSOLE_PAGE: &str = include_str!("../../assets/console/index.html");

/// The reference page (Swagger UI over `/openapi.json`).
pub const REFERENCE_PAGE: &str = include_str!("../../assets/docs/reference.html");

fn serve(table: &[Asset], name: &str) -> Response {
    match table.iter().find(|a| a.name == name) {
        // `no-cache`: the browser asks again (cheaply) each time, so a new Keel's files are used at
        // once; the files are small next to what a page reads from the API.
        Some(a) => {
            ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "no-cache")], a.body).into_response()
        }
        None => super::ApiError::new(StatusCode::NOT_FOUND, "GEN_NOT_FOUND", "no such file").into_response(),
    }
}

#[utoipa::path(operation_id = "getConsoleAsset", get, path = "/console/assets/{name}", tag = "console",
    security(()), params(("name" = String, Path, description = "a file of the console")),
    responses((status = 200, description = "the file"),
        (status = 404, description = "GEN_NOT_FOUND", body = crate::api::error::ErrorBody)))]
pub async fn console_asset(Path(name): Path<String>) -> Response {
    serve(CONSOLE, &name)
}

#[utoipa::path(operation_id = "getReferenceAsset", get, path = "/docs/assets/{name}", tag = "reference",
    security(()), params(("name" = String, Path, description = "a file of the reference page")),
    responses((status = 200, description = "the file"),
        (status = 404, description = "GEN_NOT_FOUND", body = crate::api::error::ErrorBody)))]
pub async fn docs_asset(Path(name): Path<String>) -> Response {
    serve(DOCS, &name)
}

/// Whether a path is one of these public files or pages (no key needed: they hold no data).
pub fn is_public(path: &str) -> bool {
    matches!(path, "/docs" | "/console") || path.starts_with("/docs/assets/") || path.starts_with("/console/assets/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_asset_is_named_once_with_its_type() {
        for table in [super::CONSOLE, super::DOCS] {
            for (i, a) in table.iter().enumerate() {
                assert!(!a.body.is_empty(), "{} is empty", a.name);
                assert!(table[i + 1..].iter().all(|b| b.name != a.name), "{} twice", a.name);
                let ext = a.name.rsplit('.').next().unwrap();
                let expected = match ext {
                    "js" => super::JS,
                    "css" => super::CSS,
                    _ => unreachable!(),
                };
                assert_eq!(a.content_type, expected, "{}", a.name);
            }
        }
    }
}
