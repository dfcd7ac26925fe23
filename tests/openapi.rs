//! The OpenAPI document: 3.1, public, every endpoint and error code of CONTRACT.md in it, every
//! operation it lists actually served (probed over HTTP), every error answer described by the error
//! body, and the request bodies carrying the contract's fields. `.ci/run` also validates it with
//! openapi-spec-validator.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::Value;

const CONTRACT: &[(&str, &str)] = &[
    ("get", "/health"),
    ("post", "/ledgers"),
    ("get", "/ledgers"),
    ("get", "/ledgers/{id}"),
    ("put", "/ledgers/{id}"),
    ("post", "/balances"),
    ("get", "/balances"),
    ("get", "/balances/{id}"),
    ("get", "/balances/indicator/{indicator}/currency/{currency}"),
    ("post", "/transactions"),
    ("get", "/transactions/{id}"),
    ("get", "/transactions/reference/{reference}"),
    ("put", "/transactions/inflight/{id}"),
    ("post", "/refund-transaction/{id}"),
    ("post", "/balance-monitors"),
    ("get", "/balance-monitors"),
    ("get", "/balance-monitors/{id}"),
    ("put", "/balance-monitors/{id}"),
    ("delete", "/balance-monitors/{id}"),
    ("get", "/balance-monitors/balances/{id}"),
    ("get", "/balance-monitors/{id}/events"),
];

const CONTRACT_CODES: &[&str] = &[
    "GEN_MALFORMED_REQUEST",
    "GEN_VALIDATION_ERROR",
    "GEN_NOT_FOUND",
    "LGR_NOT_FOUND",
    "BAL_NOT_FOUND",
    "BAL_MONITOR_NOT_FOUND",
    "TXN_NOT_FOUND",
    "BAL_VALIDATION_ERROR",
    "TXN_VALIDATION_ERROR",
    "TXN_INVALID_AMOUNT",
    "TXN_PRECISION_NOT_INTEGER",
    "TXN_DUPLICATE_REFERENCE",
    "TXN_INSUFFICIENT_FUNDS",
    "TXN_NOT_INFLIGHT",
    "TXN_ALREADY_COMMITTED",
    "TXN_ALREADY_VOIDED",
    "TXN_COMMIT_AMOUNT_EXCEEDED",
    "GEN_PAYLOAD_TOO_LARGE",
    "AUTH_MISSING_API_KEY",
    "AUTH_INVALID_API_KEY",
    "GEN_INTERNAL",
];

async fn document(server: &Server) -> Value {
    // Public even when a key is configured.
    let answer = server.send("GET", "/openapi.json", &[], Vec::new()).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_str(&answer.body).unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

#[tokio::test]
async fn the_document_covers_the_contract() {
    let server = Server::in_process(Some("k"));
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "Keel");
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["name"], "X-Blnk-Key");
    let ops = operations(&doc);
    let mut ids: Vec<&str> = ops
        .iter()
        .map(|(m, p, op)| op["operationId"].as_str().unwrap_or_else(|| panic!("{m} {p} has no operationId")))
        .collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "operationIds are unique (client generators need them)");
    for (method, path) in CONTRACT {
        assert!(ops.iter().any(|(m, p, _)| m == method && p == path), "{method} {path} missing from /openapi.json");
    }
    let codes = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    for code in CONTRACT_CODES {
        assert!(codes.as_array().unwrap().contains(&Value::from(*code)), "{code} missing from the error codes");
    }
    for (method, path, op) in &ops {
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success response");
        for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
            let schema = &response["content"]["application/json"]["schema"];
            assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{method} {path} {status}");
        }
        let public = matches!(
            path.as_str(),
            "/health" | "/openapi.json" | "/docs" | "/docs/assets/{name}" | "/console" | "/console/assets/{name}"
        );
        assert_eq!(
            !public,
            responses.contains_key("401"),
            "{method} {path}: 401 documented exactly where auth applies"
        );
    }
    let body = |path: &str, method: &str| {
        let op = &doc["paths"][path][method];
        resolve(&doc, &op["requestBody"]["content"]["application/json"]["schema"]).clone()
    };
    let transaction = body("/transactions", "post");
    for field in common::TRANSACTION_FIELDS {
        assert!(transaction["properties"].get(field).is_some(), "POST /transactions body lacks {field}");
    }
    let monitor = body("/balance-monitors", "post");
    for field in common::MONITOR_FIELDS {
        assert!(monitor["properties"].get(field).is_some(), "POST /balance-monitors body lacks {field}");
    }
    let balance = resolve(
        &doc,
        &doc["paths"]["/balances/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
    );
    assert_eq!(balance["properties"]["balance"]["type"], "number", "amounts are documented as exact numbers");
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let server = Server::in_process(None);
    let doc = document(&server).await;
    for (method, path, _) in operations(&doc) {
        let concrete = path.replace("{indicator}", "@World").replace('{', "x").replace('}', "");
        let (headers, body): (&[(&str, &str)], Vec<u8>) = match method.as_str() {
            "post" | "put" => (&[("content-type", "application/json")], b"{}".to_vec()),
            _ => (&[], Vec::new()),
        };
        let answer = server.send(&method.to_uppercase(), &concrete, headers, body).await.unwrap();
        let (status, text) = (answer.status, answer.body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed");
        assert!(!text.contains("route not found"), "{method} {path} is documented but not routed: {text}");
        assert!(status.as_u16() < 500, "{method} {path}: {status} {text}");
    }
}

#[tokio::test]
async fn the_reference_page_is_served_over_the_document() {
    let server = Server::in_process(Some("k"));
    let answer = server.send("GET", "/docs", &[], Vec::new()).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    // Everything the page loads, Keel serves: it works on a machine with no internet access.
    let loaded: Vec<&str> = answer.body.split(['"', '\'']).filter(|s| s.starts_with("/docs/assets/")).collect();
    assert!(loaded.len() >= 3, "the page loads Swagger UI's script and style and its own: {loaded:?}");
    assert!(!answer.body.contains("http://") && !answer.body.contains("https://"), "no address off this server");
    for path in loaded {
        let asset = server.send("GET", path, &[], Vec::new()).await.unwrap();
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(asset.body.len() > 100, "{path} has a body");
    }
    let script = server.send("GET", "/docs/assets/reference.js", &[], Vec::new()).await.unwrap();
    assert!(script.body.contains("/openapi.json") && script.body.contains("validatorUrl: null"), "{}", script.body);
    let missing = server.send("GET", "/docs/assets/nothing.js", &[], Vec::new()).await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
