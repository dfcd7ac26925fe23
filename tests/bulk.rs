//! `POST /transactions/bulk` (Blnk's bulk request) over HTTP: Blnk's answer and item linking,
//! atomic all-or-nothing, non-atomic up to the first refusal, inflight and queued batches,
//! validation naming `transactions[i].field`, and `run_async` with its webhook, durable across a
//! SIGKILL right after the answer.

mod common;

use common::invariants::assert_ledger_invariants;
use common::receiver::Receiver;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

/// Alice holds 1,000 minor units.
async fn setup(server: Server) -> Setup {
    let currency = unique_currency();
    let ledger = server.ledger("bulk").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    let (status, body) = server.transfer("@World", &alice, 1_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, alice, bob }
}

impl Setup {
    fn item(&self, amount: u64) -> Value {
        json!({"precise_amount": amount, "currency": self.currency, "source": self.alice, "destination": self.bob,
            "reference": unique("bulk"), "meta_data": {"k": "v"}})
    }

    async fn balances(&self) -> (i64, i64) {
        let get = |id: String| async move { self.server.get(&format!("/balances/{id}")).await.1["balance"].as_i64() };
        (get(self.alice.clone()).await.unwrap(), get(self.bob.clone()).await.unwrap())
    }

    async fn by_reference(&self, item: &Value) -> (StatusCode, Value) {
        self.server.get(&format!("/transactions/reference/{}", item["reference"].as_str().unwrap())).await
    }
}

#[tokio::test]
async fn a_batch_is_recorded_in_order_each_item_linked_to_it() {
    let s = setup(Server::in_process(None)).await;
    let items = vec![s.item(100), s.item(200), s.item(300)];
    let (status, answer) =
        s.server.post("/transactions/bulk", json!({"transactions": items, "skip_queue": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!((answer["status"].as_str(), answer["transaction_count"].as_u64()), (Some("applied"), Some(3)));
    let batch = answer["batch_id"].as_str().unwrap();
    assert!(batch.starts_with("bulk_"), "{answer}");
    for (i, item) in items.iter().enumerate() {
        let (status, t) = s.by_reference(item).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((t["status"].as_str(), t["parent_transaction"].as_str()), (Some("APPLIED"), Some(batch)), "{t}");
        assert_eq!(t["meta_data"], json!({"k": "v", "sequence": i + 1}), "Blnk numbers the items: {t}");
    }
    assert_eq!(s.balances().await, (400, 600));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn atomic_is_all_or_nothing_and_otherwise_up_to_the_first_refusal() {
    let s = setup(Server::in_process(None)).await;
    // The second item needs more than Alice has once the first is paid.
    let items = vec![s.item(600), s.item(600), s.item(1)];
    let (status, answer) = s.server.post("/transactions/bulk", json!({"transactions": items, "atomic": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS");
    assert_eq!(answer["error_detail"]["details"]["field"], "transactions[1].source", "{answer}");
    assert!(answer["batch_id"].as_str().unwrap().starts_with("bulk_"), "{answer}");
    assert_eq!(s.balances().await, (1_000, 0), "nothing moved");
    for item in &items {
        assert_eq!(s.by_reference(item).await.0, StatusCode::NOT_FOUND);
    }

    let items = vec![s.item(600), s.item(600), s.item(1)];
    let (status, answer) =
        s.server.post("/transactions/bulk", json!({"transactions": items, "skip_queue": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not rolled back"), "{answer}");
    assert_eq!(s.balances().await, (400, 600), "the first item stands");
    let found: Vec<StatusCode> = [&items[0], &items[1], &items[2]].iter().map(|_| StatusCode::OK).collect();
    assert_eq!(found.len(), 3);
    assert_eq!(s.by_reference(&items[0]).await.0, StatusCode::OK);
    assert_eq!(s.by_reference(&items[1]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.by_reference(&items[2]).await.0, StatusCode::NOT_FOUND, "nothing after the refused item");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn inflight_and_queued_batches() {
    let s = setup(Server::in_process(None)).await;
    let items = vec![s.item(100), s.item(200)];
    let body = json!({"transactions": items, "inflight": true, "skip_queue": true});
    let (status, answer) = s.server.post("/transactions/bulk", body).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::CREATED, Some("inflight")), "{answer}");
    for item in &items {
        assert_eq!(s.by_reference(item).await.1["status"], "INFLIGHT");
    }
    // Without skip_queue (and not atomic) the items are queued, then applied in order.
    let items = vec![s.item(10), s.item(20)];
    let (status, _) = s.server.post("/transactions/bulk", json!({"transactions": items})).await;
    assert_eq!(status, StatusCode::CREATED);
    for item in &items {
        let (_, t) = s.by_reference(item).await;
        let path = format!("/transactions/{}", t["transaction_id"].as_str().unwrap());
        assert_eq!(wait_for(&s.server, &path, |t| t["status"] != "QUEUED").await["status"], "APPLIED");
    }
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn bad_batches_are_refused_naming_the_item_and_field() {
    let s = setup(Server::in_process(None)).await;
    let mut no_amount = s.item(1);
    no_amount.as_object_mut().unwrap().remove("precise_amount");
    let mut both_sides = s.item(1);
    let split = json!({"sources": [{"identifier": s.alice, "distribution": "left"}],
        "destinations": [{"identifier": s.bob, "distribution": "left"}]});
    both_sides.as_object_mut().unwrap().extend(split.as_object().unwrap().clone());
    let mut bad_share = s.item(100);
    bad_share["destination"] = json!(null);
    bad_share["destinations"] = json!([{"identifier": s.bob, "distribution": "150%"}]);
    let mut own_dry_run = s.item(1);
    own_dry_run["dry_run"] = json!(true);
    let cases = [
        (json!({"transactions": []}), "TXN_BULK_EMPTY", "transactions"),
        (json!({}), "TXN_BULK_EMPTY", "transactions"),
        (json!({"transactions": [s.item(1), no_amount]}), "TXN_INVALID_AMOUNT", "transactions[1].amount"),
        (json!({"transactions": [both_sides]}), "TXN_VALIDATION_ERROR", "transactions[0].destinations"),
        (json!({"transactions": [bad_share]}), "TXN_INVALID_DISTRIBUTION", "transactions[0].destinations"),
        (json!({"transactions": [s.item(1), "x"]}), "TXN_VALIDATION_ERROR", "transactions[1]"),
        // A preview is the whole request's to ask for: an item's own dry_run would be applied.
        (json!({"transactions": [own_dry_run]}), "TXN_VALIDATION_ERROR", "transactions[0].dry_run"),
    ];
    for (body, code, field) in cases {
        let (status, answer) = s.server.post("/transactions/bulk", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error_detail"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body}: {answer}");
    }
    let many: Vec<Value> = (0..10_001).map(|i| json!({"precise_amount": 1, "reference": format!("r{i}")})).collect();
    let (status, answer) = s.server.post("/transactions/bulk", json!({"transactions": many})).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_BULK_LIMIT_EXCEEDED"))
    );
    assert_eq!(s.balances().await, (1_000, 0));
}

#[tokio::test]
async fn run_async_answers_at_once_sends_its_webhook_and_survives_a_sigkill() {
    let receiver = Receiver::start().await;
    let database = TestDatabase::new();
    // A 2 s receiver timeout: events the killed process had leased are taken again once their
    // lease (2 × timeout + 5 s) runs out, within the receiver's 20 s wait.
    let args = ["--webhook-url", receiver.url.as_str(), "--webhook-timeout-ms", "2000"];
    let s = setup(Server::start_on(&database.url, &args)).await;
    let items: Vec<Value> = (0..50).map(|_| s.item(10)).collect();
    let body = json!({"transactions": items, "run_async": true, "atomic": true});
    let (status, answer) = s.server.post("/transactions/bulk", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["message"].as_str()),
        (Some("processing"), Some("Bulk transaction processing started"))
    );
    let batch = answer["batch_id"].as_str().unwrap().to_string();
    // Killed right after the answer: every item is there after the restart, exactly once.
    let Setup { server, currency, alice, bob } = s;
    server.kill();
    let server = Server::start_on(&database.url, &args);
    for item in &items {
        let (status, t) = server.get(&format!("/transactions/reference/{}", item["reference"].as_str().unwrap())).await;
        assert_eq!((status, t["parent_transaction"].as_str()), (StatusCode::OK, Some(batch.as_str())), "{t}");
    }
    let s = Setup { server, currency, alice, bob };
    assert_eq!(s.balances().await, (500, 500));
    let got = receiver.wait_until_event("bulk_transaction.applied").await;
    assert_eq!(got.body["data"]["batch_id"], json!(batch), "{}", got.raw);
    assert_eq!(got.body["data"]["transaction_count"], json!(50));

    // A failing async batch says so in its webhook.
    let body = json!({"transactions": [s.item(10_000)], "run_async": true, "atomic": true});
    let (status, answer) = s.server.post("/transactions/bulk", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let got = receiver.wait_until_event("bulk_transaction.failed").await;
    assert_eq!(got.body["data"]["batch_id"], answer["batch_id"]);
    assert!(got.body["data"]["error"].as_str().unwrap().contains("insufficient funds"), "{}", got.raw);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn holds_are_committed_and_voided_in_bulk_each_on_its_own() {
    let s = setup(Server::in_process(None)).await;
    let mut holds = Vec::new();
    for amount in [100, 200, 300] {
        let mut item = s.item(amount);
        item["inflight"] = json!(true);
        item["skip_queue"] = json!(true);
        holds.push(s.server.create("/transactions", item).await["transaction_id"].as_str().unwrap().to_string());
    }
    let body = json!({"transactions": [
        {"transaction_id": holds[0]},
        {"transaction_id": holds[1], "precise_amount": 50},
        {"transaction_id": holds[2], "precise_amount": 301},
        {"transaction_id": "txn_missing"},
    ]});
    let (status, answer) = s.server.post("/transactions/inflight/bulk/commit", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["succeeded"].as_u64(), answer["failed"].as_u64()), (Some(2), Some(2)), "{answer}");
    let codes: Vec<Value> = answer["results"].as_array().unwrap().iter().map(|r| r["code"].clone()).collect();
    assert_eq!(codes, vec![Value::Null, Value::Null, json!("INVALID_AMOUNT"), json!("NOT_FOUND")], "{answer}");
    assert_eq!(answer["results"][0]["transaction_id"], json!(holds[0]), "in the request's order");
    assert_eq!(s.balances().await, (850, 150), "100 and 50 committed");

    let body = json!({"transaction_ids": [holds[0], holds[1], holds[2]]});
    let (status, answer) = s.server.post("/transactions/inflight/bulk/void", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let codes: Vec<Value> = answer["results"].as_array().unwrap().iter().map(|r| r["code"].clone()).collect();
    assert_eq!(codes, vec![json!("ALREADY_COMMITTED"), Value::Null, Value::Null], "{answer}");
    assert_eq!(s.balances().await, (850, 150), "the rest released");
    let (_, held) = s.server.get(&format!("/balances/{}", s.alice)).await;
    assert_eq!(held["inflight_debit_balance"], json!(0), "{held}");

    for (path, body) in [
        ("/transactions/inflight/bulk/commit", json!({"transactions": []})),
        ("/transactions/inflight/bulk/void", json!({"transaction_ids": []})),
    ] {
        let (status, answer) = s.server.post(path, body).await;
        assert_eq!(
            (status, answer["error_detail"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("TXN_BULK_EMPTY"))
        );
    }
    let ids: Vec<String> = (0..101).map(|i| format!("txn_{i}")).collect();
    let (_, answer) = s.server.post("/transactions/inflight/bulk/void", json!({"transaction_ids": ids})).await;
    assert_eq!(answer["error_detail"]["code"], "TXN_BULK_LIMIT_EXCEEDED");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn split_items_record_their_legs_in_the_batch_all_or_none() {
    let s = setup(Server::in_process(None)).await;
    let mut split = s.item(300);
    split["destination"] = json!(null);
    split["destinations"] =
        json!([{"identifier": s.bob, "distribution": "50%"}, {"identifier": "@Fees", "distribution": "left"}]);
    // Not skip_queue, yet applied at once: a split item's legs commit together.
    let (status, answer) =
        s.server.post("/transactions/bulk", json!({"transactions": [s.item(100), split.clone()]})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let batch = answer["batch_id"].as_str().unwrap();
    assert_eq!(answer["transaction_count"], 2, "items, as Blnk counts them: {answer}");
    for (leg, amount) in [(1, 150), (2, 150)] {
        let reference = format!("{}-{leg}", split["reference"].as_str().unwrap());
        let (status, t) = s.server.get(&format!("/transactions/reference/{reference}")).await;
        assert_eq!(status, StatusCode::OK, "{reference}: {t}");
        assert_eq!(
            (t["status"].as_str(), t["parent_transaction"].as_str(), t["precise_amount"].as_i64()),
            (Some("APPLIED"), Some(batch), Some(amount)),
            "{t}"
        );
        assert_eq!(t["meta_data"]["sequence"], 2, "the item's place: {t}");
    }
    assert_eq!(s.balances().await, (600, 250));

    // A split item one of whose legs is short: not atomic, so the items before it stand, and
    // none of its legs is recorded.
    let mut short = s.item(2_000);
    short["destination"] = json!(null);
    short["destinations"] =
        json!([{"identifier": s.bob, "distribution": "10%"}, {"identifier": "@Fees", "distribution": "left"}]);
    let first = s.item(100);
    let (status, answer) =
        s.server.post("/transactions/bulk", json!({"transactions": [first.clone(), short.clone()]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error_detail"]["details"]["field"], "transactions[1].source", "{answer}");
    assert_eq!(s.by_reference(&first).await.0, StatusCode::OK);
    for leg in [1, 2] {
        let reference = format!("{}-{leg}", short["reference"].as_str().unwrap());
        assert_eq!(s.server.get(&format!("/transactions/reference/{reference}")).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(s.balances().await, (500, 350));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn an_inflight_batch_is_committed_voided_and_tagged_by_its_id() {
    let s = setup(Server::in_process(None)).await;
    let items = vec![s.item(100), s.item(200)];
    let body = json!({"transactions": items, "inflight": true, "skip_queue": true});
    let (_, answer) = s.server.post("/transactions/bulk", body).await;
    let batch = answer["batch_id"].as_str().unwrap().to_string();
    let (status, answer) =
        s.server.put(&format!("/transactions/inflight/{batch}"), json!({"status": "commit", "amount": 1})).await;
    assert_eq!(
        (status, answer["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("amount")),
        "a batch is committed whole: {answer}"
    );
    let (status, first) = s.server.put(&format!("/transactions/inflight/{batch}"), json!({"status": "commit"})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!((first["status"].as_str(), first["precise_amount"].as_i64()), (Some("APPLIED"), Some(100)), "{first}");
    assert_eq!(s.balances().await, (700, 300), "every item committed");
    for item in &items {
        assert_eq!(s.by_reference(item).await.1["status"], "COMMIT");
    }
    let (status, answer) = s.server.put(&format!("/transactions/inflight/{batch}"), json!({"status": "void"})).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_ALREADY_COMMITTED")),
        "{answer}"
    );

    let (status, merged) = s.server.post(&format!("/{batch}/metadata"), json!({"meta_data": {"settled": "yes"}})).await;
    assert_eq!((status, &merged), (StatusCode::OK, &json!({"meta_data": {"settled": "yes"}})), "{merged}");
    for (i, item) in items.iter().enumerate() {
        let (_, t) = s.by_reference(item).await;
        assert_eq!(t["meta_data"], json!({"k": "v", "sequence": i + 1, "settled": "yes"}), "{t}");
    }
    let (status, _) = s.server.post("/bulk_missing/metadata", json!({"meta_data": {"a": 1}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A batch voided by its id releases every hold.
    let body = json!({"transactions": [s.item(50), s.item(60)], "inflight": true, "skip_queue": true});
    let (_, answer) = s.server.post("/transactions/bulk", body).await;
    let batch = answer["batch_id"].as_str().unwrap();
    let (status, _) = s.server.put(&format!("/transactions/inflight/{batch}"), json!({"status": "void"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, alice) = s.server.get(&format!("/balances/{}", s.alice)).await;
    assert_eq!((alice["balance"].as_i64(), alice["inflight_debit_balance"].as_i64()), (Some(700), Some(0)));
    assert_ledger_invariants(&s.server, &s.currency).await;
}
