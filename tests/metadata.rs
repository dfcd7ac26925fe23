//! `POST /{id}/metadata`, Blnk's metadata route: keys merge into a ledger's, a balance's or a
//! transaction's metadata (and a transaction's children's), the answer is the merged metadata,
//! unknown and foreign ids are Blnk's META_ errors, and a scoped key needs `metadata:write`.

mod common;

use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MASTER: &str = "master-key-for-metadata";

async fn merge(server: &Server, id: &str, meta_data: Value) -> Value {
    let (status, answer) = server.post(&format!("/{id}/metadata"), json!({ "meta_data": meta_data })).await;
    assert_eq!(status, StatusCode::OK, "{id}: {answer}");
    answer["meta_data"].clone()
}

#[tokio::test]
async fn keys_merge_into_ledgers_balances_and_transactions() {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.create("/ledgers", json!({"name": "m", "meta_data": {"region": "eu", "tier": 1}})).await;
    let ledger_id = ledger["ledger_id"].as_str().unwrap();
    let merged = merge(&server, ledger_id, json!({"tier": 2, "owner": "ops"})).await;
    assert_eq!(merged, json!({"region": "eu", "tier": 2, "owner": "ops"}));
    assert_eq!(server.get(&format!("/ledgers/{ledger_id}")).await.1["meta_data"], merged);

    let body = json!({"ledger_id": ledger_id, "currency": currency, "meta_data": {"kyc": "pending"}});
    let alice = server.create("/balances", body).await["balance_id"].as_str().unwrap().to_string();
    let bob = server.balance(ledger_id, &currency).await;
    let (status, _) = server.transfer("@World", &alice, 500, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let merged = merge(&server, &alice, json!({"kyc": "done", "nested": {"a": [1, 2]}})).await;
    assert_eq!(merged, json!({"kyc": "done", "nested": {"a": [1, 2]}}));
    // The balance keeps its new metadata through the next movement (the engine's copy has it too).
    let (status, _) = server.transfer(&alice, &bob, 100, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, balance) = server.get(&format!("/balances/{alice}")).await;
    assert_eq!((balance["meta_data"].clone(), balance["balance"].clone()), (merged, json!(400)), "{balance}");

    let hold = server
        .create(
            "/transactions",
            json!({"precise_amount": 50, "currency": currency, "source": alice, "destination": bob,
                "reference": unique("m"), "skip_queue": true, "inflight": true, "meta_data": {"order": 1}}),
        )
        .await;
    let hold_id = hold["transaction_id"].as_str().unwrap();
    let (_, child) = server.put(&format!("/transactions/inflight/{hold_id}"), json!({"status": "commit"})).await;
    let merged = merge(&server, hold_id, json!({"invoice": "INV-9"})).await;
    assert_eq!(merged, json!({"order": 1, "invoice": "INV-9"}));
    let (_, child) = server.get(&format!("/transactions/{}", child["transaction_id"].as_str().unwrap())).await;
    assert_eq!(child["meta_data"], merged, "a transaction's children get the keys too");
}

#[tokio::test]
async fn unknown_and_foreign_ids_and_bad_bodies_are_refused() {
    let server = Server::in_process(None);
    for (id, status, code) in [
        ("txn_missing", StatusCode::NOT_FOUND, "META_ENTITY_NOT_FOUND"),
        ("bln_missing", StatusCode::NOT_FOUND, "META_ENTITY_NOT_FOUND"),
        ("ldg_missing", StatusCode::NOT_FOUND, "META_ENTITY_NOT_FOUND"),
        ("idt_123", StatusCode::BAD_REQUEST, "META_UNSUPPORTED_ENTITY"),
        ("bulk_123", StatusCode::NOT_FOUND, "META_ENTITY_NOT_FOUND"),
        ("whatever", StatusCode::BAD_REQUEST, "META_INVALID_ENTITY_ID"),
    ] {
        let (answer_status, answer) = server.post(&format!("/{id}/metadata"), json!({"meta_data": {"k": 1}})).await;
        assert_eq!((answer_status, answer["error_detail"]["code"].as_str()), (status, Some(code)), "{id}: {answer}");
    }
    let ledger = server.ledger("m").await;
    for body in [json!({}), json!({"meta_data": [1]}), json!({"meta_data": "x"})] {
        let (status, answer) = server.post(&format!("/{ledger}/metadata"), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], "meta_data", "{answer}");
    }
    assert_eq!(server.get(&format!("/ledgers/{ledger}")).await.1["meta_data"], json!({}), "nothing was merged");
}

#[tokio::test]
async fn a_scoped_key_needs_metadata_write_and_read_of_the_entity() {
    let server = Server::in_process(Some(MASTER));
    let master = [("x-blnk-key", MASTER), ("content-type", "application/json")];
    let send = |key: &'static str, method: &'static str, path: String, body: Value| {
        let server = &server;
        async move {
            let headers = [("x-blnk-key", key), ("content-type", "application/json")];
            let answer = server.send(method, &path, &headers, serde_json::to_vec(&body).unwrap()).await.unwrap();
            (answer.status, serde_json::from_str::<Value>(&answer.body).unwrap_or(Value::Null))
        }
    };
    let answer = server.send("POST", "/ledgers", &master, br#"{"name":"m"}"#.to_vec()).await.unwrap();
    let ledger: Value = serde_json::from_str(&answer.body).unwrap();
    let path = format!("/{}/metadata", ledger["ledger_id"].as_str().unwrap());
    let mut keys = Vec::new();
    for scopes in [json!(["metadata:write", "ledgers:read"]), json!(["ledgers:*"]), json!(["metadata:write"])] {
        let body = json!({"name": "k", "owner": "ops", "scopes": scopes});
        let (status, key) = send(MASTER, "POST", "/api-keys".into(), body).await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        keys.push(key["key"].as_str().unwrap().to_string().leak() as &'static str);
    }
    let (status, answer) = send(keys[0], "POST", path.clone(), json!({"meta_data": {"k": 1}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for key in &keys[1..] {
        let (status, answer) = send(key, "POST", path.clone(), json!({"meta_data": {"k": 2}})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["error_detail"]["code"], "AUTH_INSUFFICIENT_PERMISSIONS");
    }
}
