//! A Blnk field is implemented or refused, never ignored: every request field of Blnk's API that
//! Keel does not implement yet answers `400` naming it and writes nothing, while its zero value
//! (what Blnk's Go server cannot tell from absence) and fields outside Blnk's API pass.

mod common;

use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    ledger: String,
    alice: String,
    bob: String,
}

async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("wallets").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    let (status, body) = server.transfer("@World", &alice, 10_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, ledger, alice, bob }
}

impl Setup {
    fn transfer(&self, extra: Value) -> Value {
        let mut body = json!({
            "precise_amount": 100, "currency": self.currency, "source": self.alice,
            "destination": self.bob, "reference": unique("ref"), "skip_queue": true,
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn balance_count(&self) -> usize {
        let (status, list) = self.server.get("/balances?limit=1000").await;
        assert_eq!(status, StatusCode::OK);
        list.as_array().unwrap().len()
    }
}

fn assert_refused(status: StatusCode, body: &Value, code: &str, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
    assert_eq!(body["error_detail"]["code"], code, "{field}: {body}");
    assert_eq!(body["error_detail"]["details"]["field"], field, "{body}");
    assert!(body["error"].as_str().unwrap().contains(field), "the message names {field}: {body}");
}

#[tokio::test]
async fn zero_values_and_fields_outside_blnks_api_are_accepted() {
    let s = setup().await;
    let zeros = json!({
        "dry_run": false, "sources": [], "destinations": null, "overdraft_limit": 0, "atomic": true,
        "balance_id": "bln_ignored_as_blnk_does", "scheduled_for": "", "effective_date": null,
        "not_a_blnk_field": {"x": 1},
    });
    let created = s.server.create("/transactions", s.transfer(zeros)).await;
    assert_eq!(created["status"], "APPLIED", "{created}");
    let (status, list) = s.server.get(&format!("/balances/{}", s.bob)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["balance"], json!(100));
}

#[tokio::test]
async fn unimplemented_balance_fields_are_refused_and_create_nothing() {
    let s = setup().await;
    let before = s.balance_count().await;
    for (field, value) in
        [("precision", json!(100)), ("track_fund_lineage", json!(true)), ("allocation_strategy", json!("FIFO"))]
    {
        let body = json!({"ledger_id": s.ledger, "currency": s.currency, field: value});
        let (status, answer) = s.server.post("/balances", body).await;
        assert_refused(status, &answer, "BAL_VALIDATION_ERROR", field);
    }
    assert_eq!(s.balance_count().await, before);
    let zeros = json!({"ledger_id": s.ledger, "currency": s.currency, "indicator": "", "precision": 0,
        "track_fund_lineage": false, "allocation_strategy": null});
    s.server.create("/balances", zeros).await;
}

#[tokio::test]
async fn a_refund_takes_blnks_optional_body() {
    let s = setup().await;
    let mut originals = Vec::new();
    for _ in 0..3 {
        let body = s.transfer(json!({"description": "order 7", "meta_data": {"order": 7, "channel": "web"}}));
        originals.push(s.server.create("/transactions", body).await);
    }
    let id = |t: &Value| t["transaction_id"].as_str().unwrap().to_string();

    // No body at all: the refund inherits the original's description and metadata.
    let (status, refund) = s.server.request("POST", &format!("/refund-transaction/{}", id(&originals[0])), None).await;
    assert_eq!(status, StatusCode::CREATED, "no body at all: {refund}");
    assert_eq!(refund["parent_transaction"], id(&originals[0]));
    assert_eq!(refund["reference"], format!("{}_refund", id(&originals[0])), "Blnk's refund reference");
    assert_eq!(
        (&refund["description"], &refund["meta_data"]),
        (&originals[0]["description"], &originals[0]["meta_data"])
    );

    // `null`, what Blnk's TypeScript SDK sends without options.
    let path = format!("/refund-transaction/{}", id(&originals[1]));
    let answer = s.server.send("POST", &path, &[("content-type", "application/json")], b"null".to_vec()).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    // Blnk's options: a description replaces the inherited one, metadata merges over it.
    let path = format!("/refund-transaction/{}", id(&originals[2]));
    let meta_data = json!({"channel": "support", "ticket": 9});
    let options = json!({"skip_queue": true, "dry_run": false, "description": "damaged", "meta_data": meta_data});
    let (status, refund) = s.server.post(&path, options).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["description"], "damaged");
    assert_eq!(refund["meta_data"], json!({"order": 7, "channel": "support", "ticket": 9}));
    let (_, original) = s.server.get(&format!("/transactions/{}", id(&originals[2]))).await;
    assert_eq!(original["meta_data"], json!({"order": 7, "channel": "web"}), "the original keeps its own");

    let answer = s.server.send("POST", &path, &[("content-type", "application/json")], b"[1]".to_vec()).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "a body that is not an object: {}", answer.body);
    let (status, answer) = s.server.post(&path, json!({"meta_data": [1]})).await;
    assert_refused(status, &answer, "TXN_VALIDATION_ERROR", "meta_data");
}

#[tokio::test]
async fn second_refunds_and_refunds_of_refunds_are_409_and_unknown_balances_404() {
    let s = setup().await;
    let original = s.server.create("/transactions", s.transfer(json!({}))).await;
    let path = format!("/refund-transaction/{}", original["transaction_id"].as_str().unwrap());
    let refund = s.server.create(&path, json!({})).await;
    for path in [path, format!("/refund-transaction/{}", refund["transaction_id"].as_str().unwrap())] {
        let (status, answer) = s.server.post(&path, json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {answer}");
        assert_eq!(answer["error_detail"]["code"], "TXN_ALREADY_REFUNDED", "{answer}");
    }
    // A commit's child is refundable: it is not a refund.
    let hold = s.server.create("/transactions", s.transfer(json!({"inflight": true}))).await;
    let (_, child) = s
        .server
        .put(
            &format!("/transactions/inflight/{}", hold["transaction_id"].as_str().unwrap()),
            json!({"status": "commit"}),
        )
        .await;
    s.server.create(&format!("/refund-transaction/{}", child["transaction_id"].as_str().unwrap()), json!({})).await;

    for field in ["source", "destination"] {
        let (status, answer) = s.server.post("/transactions", s.transfer(json!({field: "bln_missing"}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert_eq!(answer["error_detail"]["code"], "BAL_NOT_FOUND");
        assert_eq!(answer["error_detail"]["details"]["field"], field);
    }
}

#[tokio::test]
async fn an_inflight_commit_accepts_skip_queue() {
    let s = setup().await;
    let hold = s.server.create("/transactions", s.transfer(json!({"inflight": true}))).await;
    let path = format!("/transactions/inflight/{}", hold["transaction_id"].as_str().unwrap());
    let (status, answer) = s.server.put(&path, json!({"status": "commit", "skip_queue": true})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "APPLIED");
}
