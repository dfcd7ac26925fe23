//! Ledgers, balances, health, auth and error bodies. The API's rules run in this process (`Server::in_process`);
//! what depends on the socket (body limits and keep-alive, auth draining bodies) on a real server.

mod common;

use common::{unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error_detail"]["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["error"], body["error_detail"]["message"], "{body}");
}

#[tokio::test]
async fn health_answers_json() {
    let server = Server::in_process(None);
    let (status, body) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_object());
}

#[tokio::test]
async fn ledgers_are_created_read_listed_and_renamed() {
    let server = Server::in_process(None);
    let created = server.create("/ledgers", json!({"name": "Customers", "meta_data": {"region": "eu"}})).await;
    let id = created["ledger_id"].as_str().unwrap();
    assert!(id.starts_with("ldg_"), "{created}");
    assert_eq!(created["name"], "Customers");
    assert_eq!(created["meta_data"], json!({"region": "eu"}));
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, fetched) = server.get(&format!("/ledgers/{id}")).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &created));

    let (status, renamed) = server.put(&format!("/ledgers/{id}"), json!({"name": "Clients"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["name"], "Clients");
    assert_eq!(renamed["meta_data"], json!({"region": "eu"}), "meta_data is kept when not sent");
    assert_eq!(server.get(&format!("/ledgers/{id}")).await.1["name"], "Clients");

    server.ledger("second").await;
    let (status, list) = server.get("/ledgers").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["second", "Clients", "General Ledger"],
        "newest first, as Blnk; the general ledger always exists"
    );
    let (_, page) = server.get("/ledgers?limit=1&offset=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], "Clients");
    let (_, oldest) = server.get("/ledgers?sort_order=asc&sort_by=created_at&limit=2").await;
    let names: Vec<&str> = oldest.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["General Ledger", "Clients"], "Blnk's sort_order=asc: oldest first");
    for (query, field) in [("sort_order=up", "sort_order"), ("sort_by=colour", "sort_by")] {
        let (status, body) = server.get(&format!("/ledgers?{query}")).await;
        assert_eq!((status, body["error_detail"]["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)));
    }
}

#[tokio::test]
async fn ledger_errors_name_the_problem() {
    let server = Server::in_process(None);
    let (status, body) = server.post("/ledgers", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "GEN_VALIDATION_ERROR");
    assert_eq!(body["error_detail"]["details"]["field"], "name");

    let (status, body) = server.post("/ledgers", json!({"name": 42})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_detail"]["details"]["field"], "name");

    let (status, body) = server.get("/ledgers/ldg_missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "LGR_NOT_FOUND");
    let (status, body) = server.put("/ledgers/ldg_missing", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "LGR_NOT_FOUND");

    // NUL cannot be stored by PostgreSQL and is never needed: refused on both backends, naming where.
    let (status, body) = server.post("/ledgers", json!({"name": "a\u{0}b", "meta_data": {"k": "v"}})).await;
    assert_eq!(
        (status, body["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name")),
        "{body}"
    );
    let (status, body) = server.post("/ledgers", json!({"name": "ok", "meta_data": {"deep": ["x", "\u{0}"]}})).await;
    assert_eq!(
        (status, body["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("meta_data.deep[1]")),
        "{body}"
    );
    let (status, body) = server.get("/ledgers/ldg_%00").await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("GEN_VALIDATION_ERROR")),
        "{body}"
    );

    let (status, body) = server.get("/ledgers?limit=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_detail"]["details"]["field"], "limit");
}

#[tokio::test]
async fn balances_start_at_zero_and_are_found_by_id_and_list() {
    let server = Server::in_process(None);
    let ledger = server.ledger("wallets").await;
    let currency = unique_currency();
    let body = json!({"ledger_id": ledger, "currency": currency, "identity_id": "idt_1", "meta_data": {"tier": 1}});
    let created = server.create("/balances", body).await;
    let id = created["balance_id"].as_str().unwrap();
    assert!(id.starts_with("bln_"));
    for field in [
        "balance",
        "credit_balance",
        "debit_balance",
        "inflight_balance",
        "inflight_credit_balance",
        "inflight_debit_balance",
        "version",
    ] {
        assert_eq!(created[field], json!(0), "{field} in {created}");
    }
    assert_eq!(created["ledger_id"], ledger.as_str());
    assert_eq!(created["identity_id"], "idt_1");
    assert_eq!(created["indicator"], "");
    assert_eq!(created["meta_data"], json!({"tier": 1}));
    assert_eq!(server.get(&format!("/balances/{id}")).await, (StatusCode::OK, created.clone()));
    let (_, list) = server.get("/balances").await;
    assert!(list.as_array().unwrap().contains(&created));
}

#[tokio::test]
async fn balance_errors_are_4xx_with_the_field() {
    let server = Server::in_process(None);
    let ledger = server.ledger("l").await;
    let cases = [
        (json!({"currency": "USD"}), StatusCode::BAD_REQUEST, "BAL_VALIDATION_ERROR", "ledger_id"),
        (json!({"ledger_id": ledger, "currency": ""}), StatusCode::BAD_REQUEST, "BAL_VALIDATION_ERROR", "currency"),
        (json!({"ledger_id": ledger, "currency": 5}), StatusCode::BAD_REQUEST, "BAL_VALIDATION_ERROR", "currency"),
        (
            json!({"ledger_id": ledger, "currency": "USD", "meta_data": "x"}),
            StatusCode::BAD_REQUEST,
            "BAL_VALIDATION_ERROR",
            "meta_data",
        ),
        (json!({"ledger_id": "ldg_nope", "currency": "USD"}), StatusCode::NOT_FOUND, "LGR_NOT_FOUND", "ledger_id"),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = server.post("/balances", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_error(&answer, code);
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body}");
    }
    let (_, list) = server.get("/balances").await;
    assert_eq!(list, json!([]), "no refused request created a balance");
    let (status, body) = server.get("/balances/bln_missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "BAL_NOT_FOUND");
}

#[tokio::test]
async fn indicator_balances_appear_on_first_use_in_the_general_ledger() {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let (status, _) = server.get(&format!("/balances/indicator/@World/currency/{currency}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let wallet = server.balance(&server.ledger("l").await, &currency).await;
    let (status, txn) = server.transfer("@World", &wallet, 500, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{txn}");
    for path in [
        format!("/balances/indicator/@World/currency/{currency}"),
        format!("/balances/indicator/World/currency/{currency}"),
    ] {
        let (status, world) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(world["indicator"], "@World");
        assert_eq!(world["ledger_id"], "general_ledger_id");
        assert_eq!(world["balance"], json!(-500), "indicators may go negative");
    }
}

#[tokio::test]
async fn malformed_oversized_and_unknown_requests_get_json_errors() {
    let server = Server::start();
    let url = format!("{}/ledgers", server.base);
    let client = server.client();
    for body in ["{not json", "[1,2]", "\"text\"", ""] {
        let response = client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert_error(&response.json().await.unwrap(), "GEN_MALFORMED_REQUEST");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let response = client.post(&url).body(format!("{{\"name\":{deep}}}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "deep nesting is refused, not a crash");

    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = client.post(&url).body(huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_ne!(
        response.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "a 2 MiB body is drained: the connection stays usable"
    );
    assert_error(&response.json().await.unwrap(), "GEN_PAYLOAD_TOO_LARGE");
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(20 * 1024 * 1024));
    let response = client.post(&url).header("content-length", huge.len()).body(huge).send().await;
    if let Ok(response) = response {
        // Past the drain limit the server answers at once and closes; the client may also see the
        // close before the answer while still sending, which is the point of refusing.
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()["connection"], "close", "an unread body closes the connection, and says so");
    }

    let (status, body) = server.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "GEN_NOT_FOUND");
    let (status, body) = server.request("DELETE", "/ledgers", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "GEN_METHOD_NOT_ALLOWED");
    // The SDKs send content-type: application/json with an empty body on GET.
    let response = client.get(&url).header("content-type", "application/json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_api_key_guards_everything_but_health() {
    let server = Server::start_with_args(&["--api-key", "s3cret"]);
    let client = server.client();
    let url = format!("{}/ledgers", server.base);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_error(&response.json().await.unwrap(), "AUTH_MISSING_API_KEY");
    // A body on a refused request is drained: the same keep-alive connection serves the next one.
    for _ in 0..3 {
        let response =
            client.post(&url).header("X-Blnk-Key", "wrong").json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_error(&response.json().await.unwrap(), "AUTH_INVALID_API_KEY");
    }
    let response = client.post(&url).header("x-blnk-key", "s3cret").json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = client.get(format!("{}/health", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let listed: Value = client.get(&url).header("X-Blnk-Key", "s3cret").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "only the authorised create went through");
}

#[tokio::test]
async fn general_ledger_balances_can_be_made_ahead_with_an_indicator() {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let body =
        |indicator: &str, ledger: &str| json!({"ledger_id": ledger, "currency": currency, "indicator": indicator});
    let fees = server.create("/balances", body("  @Fees ", "general_ledger_id")).await;
    assert_eq!((fees["indicator"].as_str(), fees["ledger_id"].as_str()), (Some("@Fees"), Some("general_ledger_id")));
    let (status, found) = server.get(&format!("/balances/indicator/@Fees/currency/{currency}")).await;
    assert_eq!((status, &found["balance_id"]), (StatusCode::OK, &fees["balance_id"]));

    // A transaction naming it uses it; a second one of the same pair is a conflict.
    let (status, _) = server.transfer("@World", "@Fees", 7, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(server.get(&format!("/balances/{}", fees["balance_id"].as_str().unwrap())).await.1["balance"], json!(7));
    for indicator in ["@Fees", "@World"] {
        let (status, answer) = server.post("/balances", body(indicator, "general_ledger_id")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{indicator}: {answer}");
        assert_error(&answer, "GEN_CONFLICT");
    }

    let ledger = server.ledger("customers").await;
    for (indicator, ledger) in [
        ("@Cash", ledger.as_str()),
        ("Cash", "general_ledger_id"),
        ("@Petty cash", "general_ledger_id"),
        ("@", "general_ledger_id"),
    ] {
        let (status, answer) = server.post("/balances", body(indicator, ledger)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{indicator}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], "indicator", "{answer}");
    }
}
