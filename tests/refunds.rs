//! Refunds as Blnk resolves the id they are given (`POST /refund-transaction/{id}`): an applied
//! transfer; a settled hold, whose commits are reversed and whose void is held back the other way
//! (a new inflight hold); a split or a bulk request, every leg or item. Keel refunds them all in
//! one commit or none. What has nothing to refund is `404 TXN_NOT_FOUND`, what was refunded `409
//! TXN_ALREADY_REFUNDED`. Over HTTP, on a real store; the ledger's invariants after each.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
    carol: String,
}

/// Alice holds 1,000 minor units; Bob and Carol none.
async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("refunds").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    let carol = server.balance(&ledger, &currency).await;
    let (status, body) = server.transfer("@World", &alice, 1_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, alice, bob, carol }
}

fn id(t: &Value) -> &str {
    t["transaction_id"].as_str().unwrap_or_else(|| panic!("a transaction: {t}"))
}

impl Setup {
    fn transfer(&self, precise_amount: u64, extra: Value) -> Value {
        let mut body = json!({"precise_amount": precise_amount, "currency": self.currency, "source": self.alice,
            "destination": self.bob, "reference": unique("r"), "skip_queue": true});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    /// (balance, inflight_balance) of a balance.
    async fn totals(&self, id: &str) -> (i64, i64) {
        let (_, b) = self.server.get(&format!("/balances/{id}")).await;
        (b["balance"].as_i64().unwrap(), b["inflight_balance"].as_i64().unwrap())
    }

    async fn refund(&self, id: &str) -> (StatusCode, Value) {
        self.server.request("POST", &format!("/refund-transaction/{id}"), None).await
    }

    async fn settle(&self, id: &str, body: Value) -> Value {
        let (status, child) = self.server.put(&format!("/transactions/inflight/{id}"), body).await;
        assert_eq!(status, StatusCode::OK, "{child}");
        child
    }

    /// A bulk request of transfers from Alice to Bob, applied at once: its id and its items.
    async fn batch(&self, amounts: &[u64]) -> (String, Vec<Value>) {
        let items: Vec<Value> = amounts.iter().map(|amount| self.transfer(*amount, json!({}))).collect();
        let (status, bulk) =
            self.server.post("/transactions/bulk", json!({"transactions": items, "skip_queue": true})).await;
        assert_eq!(status, StatusCode::CREATED, "{bulk}");
        (bulk["batch_id"].as_str().unwrap().to_string(), items)
    }

    /// Every transaction whose parent is `parent`, oldest first.
    async fn children(&self, parent: &str) -> Vec<Value> {
        let (_, log) = self.server.get("/transactions?sort_order=asc&limit=1000").await;
        log.as_array().unwrap().iter().filter(|t| t["parent_transaction"] == parent).cloned().collect()
    }
}

#[tokio::test]
async fn a_settled_hold_is_refunded_by_its_id_commits_reversed_and_the_void_held_back() {
    let s = setup().await;
    let hold = s.server.create("/transactions", s.transfer(300, json!({"inflight": true}))).await;
    let (status, answer) = s.refund(id(&hold)).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("TXN_NOT_FOUND")),
        "a hold not settled has nothing to refund: {answer}"
    );
    let commit = s.settle(id(&hold), json!({"status": "commit", "precise_amount": 100})).await;
    let void = s.settle(id(&hold), json!({"status": "void"})).await;
    assert_eq!((s.totals(&s.alice).await, s.totals(&s.bob).await), ((900, 0), (100, 0)));

    // Holding the void back takes 200 more of Bob's money than he has: nothing is refunded, not
    // even the commit (all or nothing; Keel keeps the original's overdraft rule for refunds).
    let (status, answer) = s.refund(id(&hold)).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_INSUFFICIENT_FUNDS")),
        "{answer}"
    );
    assert_eq!((s.totals(&s.alice).await, s.totals(&s.bob).await), ((900, 0), (100, 0)), "nothing moved");

    let (status, body) = s.server.transfer("@World", &s.bob, 500, &s.currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, first) = s.refund(id(&hold)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["parent_transaction"], id(&commit), "the first refund answers: the commit's: {first}");
    assert_eq!(first["reference"], format!("{}_refund", id(&commit)));
    assert_eq!((first["status"].as_str(), first["precise_amount"].as_i64()), (Some("APPLIED"), Some(100)));
    let held_back = s.children(id(&void)).await;
    assert_eq!(held_back.len(), 1, "the void is refunded too");
    assert_eq!(
        (held_back[0]["status"].as_str(), held_back[0]["source"].as_str(), held_back[0]["precise_amount"].as_i64()),
        (Some("INFLIGHT"), Some(s.bob.as_str()), Some(200)),
        "a void is refunded as a hold the other way, as Blnk documents: {}",
        held_back[0]
    );
    assert_eq!(held_back[0]["reference"], format!("{}_refund", id(&void)));
    assert_eq!(s.totals(&s.alice).await, (1_000, 200), "the commit came back; the void is held for Alice");
    assert_eq!(s.totals(&s.bob).await, (500, -200));

    for again in [id(&hold), id(&commit)] {
        let (status, answer) = s.refund(again).await;
        assert_eq!(
            (status, answer["error_detail"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("TXN_ALREADY_REFUNDED")),
            "{again}: {answer}"
        );
    }
    // A void child is not refundable by its own id (Blnk's docs: 404 TXN_NOT_FOUND); nor is a
    // refund (409), the held-back one included.
    let (status, answer) = s.refund(id(&void)).await;
    assert_eq!((status, answer["error_detail"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("TXN_NOT_FOUND")));
    let (status, _) = s.refund(held_back[0]["transaction_id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The held-back refund is a hold like any other: committing it moves the 200 to Alice.
    s.settle(held_back[0]["transaction_id"].as_str().unwrap(), json!({"status": "commit"})).await;
    assert_eq!((s.totals(&s.alice).await, s.totals(&s.bob).await), ((1_200, 0), (300, 0)));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_split_and_a_bulk_request_are_refunded_whole_by_their_ids() {
    let s = setup().await;
    let split = s.transfer(
        400,
        json!({"destination": null, "destinations": [
            {"identifier": s.bob, "distribution": "25%"}, {"identifier": s.carol, "distribution": "left"}]}),
    );
    let split = s.server.create("/transactions", split).await;
    assert_eq!((s.totals(&s.bob).await.0, s.totals(&s.carol).await.0), (100, 300));
    let (status, refund) = s.refund(id(&split)).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["parent_transaction"], split["destinations"][0]["transaction_id"], "{refund}");
    assert_eq!((s.totals(&s.bob).await.0, s.totals(&s.carol).await.0), (0, 0), "every leg came back");
    assert_eq!(s.totals(&s.alice).await.0, 1_000);
    let (status, answer) = s.refund(id(&split)).await;
    assert_eq!((status, answer["error_detail"]["code"].as_str()), (StatusCode::CONFLICT, Some("TXN_ALREADY_REFUNDED")));

    let (whole, _) = s.batch(&[100, 200, 300]).await;
    assert_eq!(s.totals(&s.bob).await.0, 600);
    let (status, refund) = s.refund(&whole).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(s.totals(&s.bob).await.0, 0, "every item came back");

    // One item refunded on its own first: the batch's refund is then refused whole, naming it.
    let (partly, items) = s.batch(&[100, 200]).await;
    let (_, first) =
        s.server.get(&format!("/transactions/reference/{}", items[0]["reference"].as_str().unwrap())).await;
    assert_eq!(s.refund(id(&first)).await.0, StatusCode::CREATED);
    let (status, answer) = s.refund(&partly).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains(id(&first)), "{answer}");
    assert_eq!(s.totals(&s.bob).await.0, 200, "nothing more moved");

    // Bob spends what came to him: the batch's refund is short, so none of it happens.
    let (short, _) = s.batch(&[100, 100]).await;
    let spend = json!({"precise_amount": 350, "currency": s.currency, "source": s.bob, "destination": s.carol,
        "reference": unique("spend"), "skip_queue": true});
    s.server.create("/transactions", spend).await;
    let (status, answer) = s.refund(&short).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_INSUFFICIENT_FUNDS")),
        "{answer}"
    );
    assert_eq!(s.totals(&s.bob).await.0, 50, "no item was refunded");
    let (status, answer) = s.refund(&format!("{short}x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown batch: {answer}");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn what_never_moved_for_good_has_nothing_to_refund() {
    let s = setup().await;
    let queued_far = s.transfer(10, json!({"scheduled_for": "2100-01-01T00:00:00Z"}));
    let scheduled = s.server.create("/transactions", queued_far).await;
    let (status, answer) = s.refund(id(&scheduled)).await;
    assert_eq!((status, answer["error_detail"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("TXN_NOT_FOUND")));
    assert!(answer["error"].as_str().unwrap().contains("no transaction to refund"), "Blnk's words: {answer}");
    let (status, answer) = s.refund("txn_missing").await;
    assert_eq!((status, answer["error_detail"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("TXN_NOT_FOUND")));
    assert_ledger_invariants(&s.server, &s.currency).await;
}
