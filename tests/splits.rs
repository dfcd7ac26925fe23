//! Split transactions (Blnk's `sources` / `destinations`) over HTTP: Blnk's distribution rules,
//! one leg per share recorded as a transaction whose parent is the request, all legs in one commit
//! or none, monitors evaluated after each leg, and Blnk's validation.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    wallets: Vec<String>,
}

/// Three wallets; the first holds 10,000 minor units.
async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("split").await;
    let mut wallets = Vec::new();
    for _ in 0..3 {
        wallets.push(server.balance(&ledger, &currency).await);
    }
    let (status, body) = server.transfer("@World", &wallets[0], 10_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, wallets }
}

impl Setup {
    fn split(&self, extra: Value) -> Value {
        let mut body = json!({"amount": 100, "precision": 100, "currency": self.currency,
            "reference": unique("split"), "description": "dinner", "meta_data": {"bill": 7}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn balance(&self, id: &str) -> i64 {
        self.server.get(&format!("/balances/{id}")).await.1["balance"].as_i64().unwrap()
    }

    async fn balances(&self) -> Vec<i64> {
        let mut all = Vec::new();
        for id in &self.wallets {
            all.push(self.balance(id).await);
        }
        all
    }
}

#[tokio::test]
async fn destinations_are_split_by_blnks_rules_into_one_leg_each() {
    let s = setup().await;
    let (a, b, c) = (&s.wallets[0], &s.wallets[1], &s.wallets[2]);
    let body = s.split(json!({"source": a, "skip_queue": true, "destinations": [
        {"identifier": b, "distribution": "10%"},
        {"identifier": c, "distribution": "20"},
        {"identifier": "@Tips", "distribution": "left"},
    ]}));
    let parent = s.server.create("/transactions", body.clone()).await;
    assert_eq!((parent["status"].as_str(), parent["precise_amount"].as_i64()), (Some("APPLIED"), Some(10_000)));
    assert_eq!(parent["source"], json!(a));
    let shares = parent["destinations"].as_array().unwrap();
    let amounts: Vec<i64> = shares.iter().map(|s| s["precise_amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![1_000, 2_000, 7_000], "10% of $100, $20, and the rest: {parent}");
    let reference = body["reference"].as_str().unwrap();
    for (i, share) in shares.iter().enumerate() {
        let (status, leg) = s.server.get(&format!("/transactions/{}", share["transaction_id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{leg}");
        assert_eq!(leg["parent_transaction"], parent["transaction_id"], "{leg}");
        assert_eq!(leg["reference"], format!("{reference}-{}", i + 1));
        assert_eq!(
            (leg["source"].as_str(), leg["destination"].as_str()),
            (Some(a.as_str()), share["identifier"].as_str())
        );
        assert_eq!((leg["status"].as_str(), &leg["meta_data"]), (Some("APPLIED"), &json!({"bill": 7})));
    }
    assert_eq!(s.balances().await, vec![0, 1_000, 2_000]);
    let (status, tips) = s.server.get(&format!("/balances/indicator/@Tips/currency/{}", s.currency)).await;
    assert_eq!((status, tips["balance"].as_i64()), (StatusCode::OK, Some(7_000)));
    // The parent is the answer, not a row: its legs are.
    let (status, _) = s.server.get(&format!("/transactions/{}", parent["transaction_id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Sent again, its legs' references are taken: refused, nothing moves.
    let (status, again) = s.server.post("/transactions", body).await;
    assert_eq!(
        (status, again["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_DUPLICATE_REFERENCE"))
    );
    assert_eq!(s.balances().await, vec![0, 1_000, 2_000]);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn one_leg_refused_moves_no_leg() {
    let s = setup().await;
    let (a, b, c) = (&s.wallets[0], &s.wallets[1], &s.wallets[2]);
    // $60 from A (who has $100), the rest from B (who has nothing).
    let body = s.split(json!({"destination": c, "skip_queue": true, "sources": [
        {"identifier": a, "distribution": "60%"}, {"identifier": b, "distribution": "left"},
    ]}));
    let (status, answer) = s.server.post("/transactions", body.clone()).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_INSUFFICIENT_FUNDS"))
    );
    assert_eq!(s.balances().await, vec![10_000, 0, 0], "the first leg did not move either");
    let reference = body["reference"].as_str().unwrap();
    let (status, _) = s.server.get(&format!("/transactions/reference/{reference}-1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no leg was recorded");
    // With B allowed to overdraw, both legs go through, in one commit.
    let mut body = body;
    body["allow_overdraft"] = json!(true);
    body["reference"] = json!(unique("split"));
    let parent = s.server.create("/transactions", body).await;
    assert_eq!(s.balances().await, vec![4_000, -4_000, 10_000], "{parent}");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn monitors_are_evaluated_after_each_leg() {
    let s = setup().await;
    let (a, b, c) = (&s.wallets[0], &s.wallets[1], &s.wallets[2]);
    s.server
        .create("/transactions", s.split(json!({"amount": 50, "source": a, "destination": b, "skip_queue": true})))
        .await;
    // C crosses $50.00 with the second of its two legs from A and B.
    let condition = json!({"field": "balance", "operator": ">", "value": 50, "precision": 100});
    let monitor = s
        .server
        .create("/balance-monitors", json!({"balance_id": c, "condition": condition, "trigger": "crossing"}))
        .await;
    let body = s.split(json!({"amount": 90, "destination": c, "skip_queue": true, "sources": [
        {"identifier": a, "distribution": "40"}, {"identifier": b, "distribution": "left"},
    ]}));
    let parent = s.server.create("/transactions", body).await;
    let second = parent["sources"][1]["transaction_id"].clone();
    let (_, events) =
        s.server.get(&format!("/balance-monitors/{}/events", monitor["monitor_id"].as_str().unwrap())).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["transaction_id"], second, "it fired on the leg that crossed: {events:?}");
}

#[tokio::test]
async fn inflight_splits_hold_each_leg() {
    let s = setup().await;
    let (a, b, c) = (&s.wallets[0], &s.wallets[1], &s.wallets[2]);
    let body = s.split(json!({"source": a, "inflight": true, "destinations": [
        {"identifier": b, "precise_distribution": "2500"}, {"identifier": c, "distribution": "left"},
    ]}));
    let parent = s.server.create("/transactions", body).await;
    assert_eq!(parent["status"], "INFLIGHT", "a split is applied at once, even without skip_queue: {parent}");
    let leg = parent["destinations"][0]["transaction_id"].as_str().unwrap().to_string();
    let (status, child) = s.server.put(&format!("/transactions/inflight/{leg}"), json!({"status": "commit"})).await;
    assert_eq!((status, child["precise_amount"].as_i64()), (StatusCode::OK, Some(2_500)), "{child}");
    assert_eq!(s.balances().await, vec![7_500, 2_500, 0]);
    // By the split's id (Blnk's way): every leg still held is settled, here the one left.
    let split = parent["transaction_id"].as_str().unwrap();
    let (status, child) = s.server.put(&format!("/transactions/inflight/{split}"), json!({"status": "commit"})).await;
    assert_eq!((status, child["precise_amount"].as_i64()), (StatusCode::OK, Some(7_500)), "{child}");
    assert_eq!(s.balances().await, vec![0, 2_500, 7_500]);
    let (status, answer) = s.server.put(&format!("/transactions/inflight/{split}"), json!({"status": "void"})).await;
    assert_eq!(answer["error_detail"]["code"], "TXN_ALREADY_COMMITTED", "{status}: {answer}");
    // Tagged by its id: every leg gets the keys.
    let (status, merged) = s.server.post(&format!("/{split}/metadata"), json!({"meta_data": {"paid": true}})).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let (_, t) = s.server.get(&format!("/transactions/{leg}")).await;
    assert_eq!(t["meta_data"]["paid"], true, "{t}");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn bad_splits_are_refused_naming_the_field() {
    let s = setup().await;
    let (a, b) = (&s.wallets[0], &s.wallets[1]);
    let share = json!([{"identifier": b, "distribution": "left"}]);
    let cases = [
        (json!({"source": a, "sources": share, "destinations": share}), "TXN_VALIDATION_ERROR", "destinations"),
        (json!({"source": a, "destination": b, "sources": share}), "TXN_VALIDATION_ERROR", "source"),
        (
            json!({"source": a, "destinations": [{"identifier": b, "distribution": "x%"}]}),
            "TXN_INVALID_DISTRIBUTION",
            "destinations",
        ),
        (
            json!({"source": a, "destinations": [{"identifier": b, "distribution": "101"}]}),
            "TXN_INVALID_DISTRIBUTION",
            "destinations",
        ),
        (
            json!({"source": a, "destinations": [
                {"identifier": b, "distribution": "60%"}, {"identifier": "@X", "distribution": "60%"}]}),
            "TXN_INVALID_DISTRIBUTION",
            "destinations",
        ),
        (
            json!({"source": a, "destinations": [
                {"identifier": b, "distribution": "left"}, {"identifier": b, "distribution": "1"}]}),
            "TXN_INVALID_DISTRIBUTION",
            "destinations",
        ),
        (
            json!({"source": a, "destinations": [{"identifier": a, "distribution": "left"}]}),
            "TXN_VALIDATION_ERROR",
            "destinations",
        ),
        (
            json!({"source": a, "destinations": [{"identifier": "bln_missing", "distribution": "left"}]}),
            "BAL_NOT_FOUND",
            "destination",
        ),
    ];
    let too_many: Vec<Value> =
        (0..1_001).map(|i| json!({"identifier": format!("@S{i}"), "distribution": "1"})).collect();
    let mut cases = cases.to_vec();
    cases.push((json!({"source": a, "destinations": too_many}), "TXN_INVALID_DISTRIBUTION", "destinations"));
    for (extra, code, field) in cases {
        let (status, answer) = s.server.post("/transactions", s.split(extra.clone())).await;
        assert!(status.is_client_error(), "{extra}: {answer}");
        assert_eq!(answer["error_detail"]["code"], code, "{extra}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{extra}: {answer}");
    }
    assert_eq!(s.balances().await, vec![10_000, 0, 0]);
}
