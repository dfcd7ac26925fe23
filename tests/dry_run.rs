//! Dry runs (`dry_run: true`) of a transaction, an inflight commit or void, and a refund: Blnk's
//! preview body, the same rules as the real request, and nothing written: no row, no balance
//! change, no monitor state, no event, no indicator, and the reference stays free. Each preview
//! is then checked against what the real request does.

mod common;

use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

/// Alice holds 1,000 minor units; Bob none.
async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("wallets").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    let (status, body) = server.transfer("@World", &alice, 1_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, alice, bob }
}

/// Everything a dry run must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    balances: Value,
    transactions: Value,
    monitors: Value,
    events: Value,
}

impl Setup {
    /// Alice pays `precise_amount`, 20% to Bob and the rest to `@Tips` (a new indicator).
    fn tipped_split(&self, precise_amount: u64) -> Value {
        let shares = json!([{"identifier": self.bob, "distribution": "20%"},
            {"identifier": "@Tips", "distribution": "left"}]);
        let mut split = self.transfer(precise_amount, json!({"destinations": shares}));
        split.as_object_mut().unwrap().remove("destination");
        split
    }

    fn transfer(&self, precise_amount: u64, extra: Value) -> Value {
        let mut body = json!({
            "precise_amount": precise_amount, "precision": 100, "currency": self.currency,
            "source": self.alice, "destination": self.bob, "reference": unique("ref"), "skip_queue": true,
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn world(&self) -> World {
        let mut lists = Vec::new();
        for path in [
            "/balances?limit=1000",
            "/transactions?sort_order=asc&limit=1000",
            "/balance-monitors?limit=1000",
            "/events?limit=1000",
        ] {
            let (status, list) = self.server.get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {list}");
            lists.push(list);
        }
        let [balances, transactions, monitors, events] = lists.try_into().unwrap();
        World { balances, transactions, monitors, events }
    }

    async fn preview(&self, path: &str, body: Value) -> Value {
        let before = self.world().await;
        let (status, preview) =
            self.server.request(if path.contains("inflight") { "PUT" } else { "POST" }, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {preview}");
        assert_eq!(preview["dry_run"], true);
        assert_eq!(self.world().await, before, "a dry run changes nothing: {preview}");
        preview
    }

    async fn balance(&self, id: &str) -> Value {
        let (status, balance) = self.server.get(&format!("/balances/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{balance}");
        balance
    }
}

fn projection<'a>(preview: &'a Value, role: &str) -> &'a Value {
    preview["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["role"] == role)
        .unwrap_or_else(|| panic!("{role} in {preview}"))
}

/// The preview's resulting totals are the balance's totals after the real request.
fn assert_predicted(projected: &Value, balance: &Value) {
    assert_eq!(projected["balance_id"], balance["balance_id"]);
    for (resulting, total) in [
        ("resulting_balance", "balance"),
        ("resulting_credit_balance", "credit_balance"),
        ("resulting_debit_balance", "debit_balance"),
        ("resulting_inflight_debit_balance", "inflight_debit_balance"),
        ("resulting_inflight_credit_balance", "inflight_credit_balance"),
    ] {
        assert_eq!(
            projected[resulting].as_str().unwrap(),
            balance[total].to_string(),
            "{resulting}: {projected} vs {balance}"
        );
    }
}

#[tokio::test]
async fn a_transfer_dry_run_predicts_the_real_one_and_writes_nothing() {
    let s = setup().await;
    for skip_queue in [true, false] {
        let body = s.transfer(250, json!({"skip_queue": skip_queue, "meta_data": {"order": 7}}));
        let mut dry = body.clone();
        dry["dry_run"] = json!(true);
        let preview = s.preview("/transactions", dry).await;
        assert_eq!(preview["would_apply"], true, "{preview}");
        assert!(preview.get("rejection").is_none(), "{preview}");
        assert_eq!(preview["status"], "APPLIED");
        assert_eq!(preview["reference"], body["reference"]);
        assert_eq!(preview["currency"], json!(s.currency));
        assert_eq!(preview["precise_amount"], "250", "precise_amount is a string");
        assert_eq!(preview["amount"], json!(2.5));
        assert_eq!(preview["precision"], json!(100));
        assert_eq!(preview["monitors_triggered"], json!([]));
        assert_eq!(preview["notes"].is_array(), !skip_queue, "a note says a real post would queue it: {preview}");
        let source = projection(&preview, "source").clone();
        assert_eq!(source["balance_id"], json!(s.alice));
        assert_eq!(
            source["current_balance"].as_str().unwrap().parse::<i64>().unwrap() - 250,
            source["resulting_balance"].as_str().unwrap().parse::<i64>().unwrap()
        );
        assert_eq!(source["current_available"], source["current_balance"]);
        let destination = projection(&preview, "destination").clone();

        // The reference is still free: the real request goes through and lands where predicted.
        let (status, real) = s.server.post("/transactions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{real}");
        if !skip_queue {
            common::wait_for(&s.server, &format!("/transactions/{}", real["transaction_id"].as_str().unwrap()), |t| {
                t["status"] == "APPLIED"
            })
            .await;
        }
        assert_predicted(&source, &s.balance(&s.alice).await);
        assert_predicted(&destination, &s.balance(&s.bob).await);
    }
}

#[tokio::test]
async fn a_refused_dry_run_says_why_with_the_real_code() {
    let s = setup().await;
    // Not enough funds: 200, would_apply false, the code the real post answers, nothing projected.
    let body = s.transfer(5_000, json!({}));
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let preview = s.preview("/transactions", dry).await;
    assert_eq!(preview["would_apply"], false, "{preview}");
    assert_eq!(preview["rejection"]["code"], "TXN_INSUFFICIENT_FUNDS");
    assert_eq!(preview["rejection"]["reason"], "insufficient_funds");
    assert!(preview["rejection"]["message"].as_str().unwrap().len() > 5);
    assert!(preview.get("status").is_none(), "a refused preview has no status: {preview}");
    let source = projection(&preview, "source");
    assert_eq!(source["resulting_balance"], source["current_balance"]);
    let (status, real) = s.server.post("/transactions", body).await;
    assert_eq!((status, &real["error_detail"]["code"]), (StatusCode::BAD_REQUEST, &json!("TXN_INSUFFICIENT_FUNDS")));

    // A reference already used.
    let used = s.server.create("/transactions", s.transfer(1, json!({}))).await;
    let preview =
        s.preview("/transactions", s.transfer(1, json!({"reference": used["reference"], "dry_run": true}))).await;
    assert_eq!(
        (preview["would_apply"].clone(), preview["rejection"]["code"].clone()),
        (json!(false), json!("TXN_DUPLICATE_REFERENCE")),
        "{preview}"
    );

    // A balance that does not exist, and bad input: the real request's error, not a preview.
    let (status, error) =
        s.server.post("/transactions", s.transfer(1, json!({"destination": "bln_missing", "dry_run": true}))).await;
    assert_eq!((status, &error["error_detail"]["code"]), (StatusCode::NOT_FOUND, &json!("BAL_NOT_FOUND")), "{error}");
    assert_eq!(error["error_detail"]["details"]["field"], "destination");
    let (status, error) = s.server.post("/transactions", s.transfer(0, json!({"dry_run": true}))).await;
    assert_eq!((status, &error["error_detail"]["code"]), (StatusCode::BAD_REQUEST, &json!("TXN_INVALID_AMOUNT")));
}

#[tokio::test]
async fn a_dry_run_to_a_new_indicator_projects_it_without_creating_it() {
    let s = setup().await;
    let fees = format!("@Fees{}", unique("x").replace('-', ""));
    let preview = s.preview("/transactions", s.transfer(10, json!({"destination": fees, "dry_run": true}))).await;
    assert_eq!(preview["would_apply"], true, "{preview}");
    let destination = projection(&preview, "destination");
    assert_eq!(destination["balance_id"], json!(fees));
    assert_eq!(destination["virtual"], true);
    assert_eq!(
        (destination["current_balance"].as_str(), destination["resulting_balance"].as_str()),
        (Some("0"), Some("10"))
    );
    let (status, _) = s.server.get(&format!("/balances/indicator/{fees}/currency/{}", s.currency)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the indicator was not created");
    assert!(projection(&preview, "source").get("virtual").is_none(), "an existing balance is not virtual");
}

#[tokio::test]
async fn a_dry_run_names_the_monitors_it_would_trigger_and_leaves_them_armed() {
    let s = setup().await;
    let condition = json!({"field": "balance", "operator": ">", "value": 1, "precision": 100});
    let body = json!({"balance_id": s.bob, "condition": condition, "trigger": "crossing"});
    let monitor = s.server.create("/balance-monitors", body).await;
    let quiet = s.preview("/transactions", s.transfer(50, json!({"dry_run": true}))).await;
    assert_eq!(quiet["monitors_triggered"], json!([]), "0.50 does not cross 1.00");
    let preview = s.preview("/transactions", s.transfer(150, json!({"dry_run": true}))).await;
    let triggered = preview["monitors_triggered"].as_array().unwrap();
    assert_eq!(triggered.len(), 1, "{preview}");
    assert_eq!(triggered[0]["monitor_id"], monitor["monitor_id"]);
    // The monitor is as it was (`preview` compared the whole world), so the real transfer fires it.
    s.server.create("/transactions", s.transfer(150, json!({}))).await;
    let (_, events) =
        s.server.get(&format!("/balance-monitors/{}/events", monitor["monitor_id"].as_str().unwrap())).await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn inflight_commit_and_void_dry_runs_leave_the_hold() {
    let s = setup().await;
    let hold = s.server.create("/transactions", s.transfer(400, json!({"inflight": true}))).await;
    let path = format!("/transactions/inflight/{}", hold["transaction_id"].as_str().unwrap());

    let preview = s.preview(&path, json!({"status": "commit", "precise_amount": 100, "dry_run": true})).await;
    assert_eq!(
        (preview["operation"].clone(), preview["status"].clone()),
        (json!("commit"), json!("APPLIED")),
        "{preview}"
    );
    assert_eq!(preview["precise_amount"], "100");
    let destination = projection(&preview, "destination").clone();
    assert_eq!(destination["current_inflight_credit_balance"], "400");
    assert_eq!(destination["resulting_inflight_credit_balance"], "300");
    assert_eq!(destination["resulting_credit_balance"], "100");

    let preview = s.preview(&path, json!({"status": "void", "dry_run": true})).await;
    assert_eq!((preview["operation"].clone(), preview["status"].clone()), (json!("void"), json!("VOID")), "{preview}");
    assert_eq!(preview["precise_amount"], "400", "a void releases all that is left");

    let preview = s.preview(&path, json!({"status": "commit", "precise_amount": 401, "dry_run": true})).await;
    assert_eq!(preview["would_apply"], false, "{preview}");
    assert_eq!(preview["rejection"]["code"], "TXN_COMMIT_AMOUNT_EXCEEDED");

    // The real commit lands where the preview said.
    let (status, child) = s.server.put(&path, json!({"status": "commit", "precise_amount": 100})).await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_predicted(&destination, &s.balance(&s.bob).await);

    let (status, _) = s.server.put(&path, json!({"status": "void"})).await;
    assert_eq!(status, StatusCode::OK);
    let preview = s.preview(&path, json!({"status": "commit", "dry_run": true})).await;
    assert_eq!(preview["rejection"]["code"], "TXN_ALREADY_VOIDED", "{preview}");

    let (status, error) =
        s.server.put("/transactions/inflight/txn_missing", json!({"status": "void", "dry_run": true})).await;
    assert_eq!((status, &error["error_detail"]["code"]), (StatusCode::NOT_FOUND, &json!("TXN_NOT_FOUND")));
}

#[tokio::test]
async fn a_refund_dry_run_swaps_the_roles_and_leaves_the_original_refundable() {
    let s = setup().await;
    let original = s.server.create("/transactions", s.transfer(300, json!({}))).await;
    let path = format!("/refund-transaction/{}", original["transaction_id"].as_str().unwrap());
    let preview = s.preview(&path, json!({"dry_run": true})).await;
    assert_eq!(preview["would_apply"], true, "{preview}");
    assert_eq!(preview["precise_amount"], "300");
    let source = projection(&preview, "source").clone();
    assert_eq!(source["balance_id"], json!(s.bob), "the refund moves the money back");
    assert_eq!(projection(&preview, "destination")["balance_id"], json!(s.alice));

    let (status, refund) = s.server.request("POST", &path, None).await;
    assert_eq!(status, StatusCode::CREATED, "the original is still refundable: {refund}");
    assert_predicted(&source, &s.balance(&s.bob).await);

    let preview = s.preview(&path, json!({"dry_run": true})).await;
    assert_eq!(preview["would_apply"], false, "a second refund is refused: {preview}");
    assert_eq!(preview["rejection"]["code"], "TXN_ALREADY_REFUNDED");
}

#[tokio::test]
async fn a_split_dry_run_shows_each_leg_and_moves_nothing() {
    let s = setup().await;
    let shares = json!([{"identifier": s.bob, "distribution": "30%"}, {"identifier": "@Tips", "distribution": "left"}]);
    let mut body = s.transfer(1_000, json!({"destinations": shares}));
    body.as_object_mut().unwrap().remove("destination");
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let preview = s.preview("/transactions", dry).await;
    assert_eq!(preview["would_apply"], true, "{preview}");
    let legs: Vec<(Value, Value, Value)> = preview["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["identifier"].clone(), l["role"].clone(), l["precise_amount"].clone()))
        .collect();
    assert_eq!(
        legs,
        vec![(json!(s.bob), json!("destination"), json!("300")), (json!("@Tips"), json!("destination"), json!("700"))]
    );
    let source = projection(&preview, "source").clone();
    assert_eq!((source["current_balance"].as_str(), source["resulting_balance"].as_str()), (Some("1000"), Some("0")));
    let tips = preview["balances"].as_array().unwrap().iter().find(|b| b["balance_id"] == "@Tips").unwrap().clone();
    assert_eq!(tips["virtual"], true, "{tips}");

    let real = s.server.create("/transactions", body).await;
    assert_eq!(real["destinations"][0]["precise_amount"], json!(300), "{real}");
    assert_predicted(&source, &s.balance(&s.alice).await);

    // Too much: refused as a whole, with the code the real request gives.
    let mut body = s.transfer(5_000, json!({"destinations": shares, "dry_run": true}));
    body.as_object_mut().unwrap().remove("destination");
    let preview = s.preview("/transactions", body).await;
    assert_eq!(preview["rejection"]["code"], "TXN_INSUFFICIENT_FUNDS", "{preview}");
    assert!(preview.get("legs").is_none(), "a refused split has no legs: {preview}");
}

#[tokio::test]
async fn a_bulk_dry_run_judges_every_item_in_order_and_predicts_the_real_request() {
    let s = setup().await;
    // The second item is more than Alice has once the first is paid; the third fits again.
    let items = vec![s.transfer(600, json!({})), s.transfer(600, json!({})), s.transfer(100, json!({}))];
    for atomic in [true, false] {
        let body = json!({"transactions": items, "atomic": atomic, "skip_queue": true, "dry_run": true});
        let preview = s.preview("/transactions/bulk", body).await;
        assert_eq!(
            (&preview["would_apply"], &preview["cumulative"], &preview["atomic"]),
            (&json!(false), &json!(true), &json!(atomic)),
            "{preview}"
        );
        let verdicts: Vec<(Value, Value)> = preview["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["would_apply"].clone(), r["rejection"]["code"].clone()))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                (json!(true), Value::Null),
                (json!(false), json!("TXN_INSUFFICIENT_FUNDS")),
                (json!(true), Value::Null),
            ],
            "each item's own verdict, the refused one moving nothing: {preview}"
        );
        assert_eq!(preview["results"][2]["balances"][0]["current_balance"], "400", "after item 0 only: {preview}");
        assert!(preview["notes"].to_string().contains("transactions[1]"), "{preview}");
        // The request's effect: atomic, nothing; otherwise the first item alone (it stops at the second).
        let alice = projection(&preview, "source");
        let expected = if atomic { "1000" } else { "400" };
        assert_eq!(alice["resulting_balance"], expected, "{preview}");
    }
    // The real request does what the non-atomic preview said.
    let body = json!({"transactions": items, "skip_queue": true});
    let (status, answer) = s.server.post("/transactions/bulk", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(s.balance(&s.alice).await["balance"], 400);

    // Queued, the queue rejects the short item and goes on: the preview says so.
    let items = vec![s.transfer(300, json!({})), s.transfer(300, json!({})), s.transfer(100, json!({}))];
    let preview = s.preview("/transactions/bulk", json!({"transactions": items, "dry_run": true})).await;
    assert_eq!(preview["results"][1]["would_apply"], false, "{preview}");
    assert_eq!(projection(&preview, "source")["resulting_balance"], "0", "items 0 and 2 go: {preview}");
    assert!(preview["notes"].to_string().contains("REJECTED"), "{preview}");
}

#[tokio::test]
async fn a_bulk_dry_run_with_a_split_item_and_a_duplicate_reference() {
    let s = setup().await;
    let split = s.tipped_split(500);
    let repeated = s.transfer(10, json!({}));
    let body = json!({"transactions": [split, repeated, repeated], "dry_run": true, "run_async": true});
    let preview = s.preview("/transactions/bulk", body).await;
    let legs = &preview["results"][0]["legs"];
    assert_eq!((legs[0]["precise_amount"].as_str(), legs[1]["precise_amount"].as_str()), (Some("100"), Some("400")));
    assert_eq!(preview["results"][0]["precise_amount"], "500", "{preview}");
    assert_eq!(preview["results"][2]["rejection"]["code"], "TXN_DUPLICATE_REFERENCE", "{preview}");
    assert!(preview["notes"].to_string().contains("run_async is ignored"), "{preview}");
    let tips = preview["balances"].as_array().unwrap().iter().find(|b| b["balance_id"] == "@Tips").unwrap();
    assert_eq!(tips["virtual"], true, "a new indicator is projected, not made: {tips}");
}

/// A request with a split item is applied at once whatever `skip_queue` says, so it stops at its
/// first refused item; its preview must say so even when the split comes first (the simulation
/// found a preview that read the mode from that item and predicted the queue instead).
#[tokio::test]
async fn a_bulk_dry_run_led_by_a_split_item_predicts_an_at_once_request() {
    let s = setup().await;
    let split = s.tipped_split(500);
    let items = vec![split, s.transfer(600, json!({})), s.transfer(100, json!({}))];
    let body = json!({"transactions": items, "skip_queue": false, "dry_run": true});
    let preview = s.preview("/transactions/bulk", body.clone()).await;
    assert_eq!(preview["results"][1]["rejection"]["code"], "TXN_INSUFFICIENT_FUNDS", "{preview}");
    assert_eq!(projection(&preview, "source")["resulting_balance"], "500", "it stops at item 1: {preview}");
    let mut real = body;
    real["dry_run"] = json!(false);
    let (status, answer) = s.server.post("/transactions/bulk", real).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(s.balance(&s.alice).await["balance"], 500, "as predicted");
}

#[tokio::test]
async fn bulk_commit_and_void_dry_runs_project_each_hold_on_its_own() {
    let s = setup().await;
    let hold = s.server.create("/transactions", s.transfer(300, json!({"inflight": true}))).await;
    let hold = hold["transaction_id"].as_str().unwrap();
    let body = json!({"transactions": [{"transaction_id": hold, "precise_amount": 100}, {"transaction_id": hold},
        {"transaction_id": "txn_missing"}], "dry_run": true});
    let (status, preview) = s.server.post("/transactions/inflight/bulk/commit", body).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!((&preview["cumulative"], &preview["would_apply"]), (&json!(false), &json!(false)), "{preview}");
    let results = preview["results"].as_array().unwrap();
    assert_eq!(
        results.iter().map(|r| r["precise_amount"].clone()).take(2).collect::<Vec<_>>(),
        vec![json!("100"), json!("300")],
        "each against the hold as it stands: {preview}"
    );
    assert_eq!(results[2]["rejection"]["code"], "TXN_NOT_FOUND", "{preview}");
    assert!(preview["notes"].to_string().contains("more than once"), "{preview}");
    let (status, preview) =
        s.server.post("/transactions/inflight/bulk/void", json!({"transaction_ids": [hold], "dry_run": true})).await;
    assert_eq!((status, &preview["results"][0]["status"]), (StatusCode::OK, &json!("VOID")), "{preview}");
    let (_, stored) = s.server.get(&format!("/transactions/{hold}")).await;
    assert_eq!(stored["status"], "INFLIGHT", "nothing was settled");
    assert_eq!(s.balance(&s.alice).await["inflight_debit_balance"], 300);
}

#[tokio::test]
async fn a_refund_dry_run_of_several_lists_each_and_their_total() {
    let s = setup().await;
    let mut split = s.transfer(
        400,
        json!({"destinations": [
        {"identifier": s.bob, "distribution": "25%"}, {"identifier": "@Tips", "distribution": "left"}]}),
    );
    split.as_object_mut().unwrap().remove("destination");
    let split = s.server.create("/transactions", split).await;
    let path = format!("/refund-transaction/{}", split["transaction_id"].as_str().unwrap());
    let preview = s.preview(&path, json!({"dry_run": true})).await;
    assert_eq!((&preview["would_apply"], &preview["precise_amount"]), (&json!(true), &json!("400")), "{preview}");
    let legs: Vec<&Value> = preview["legs"].as_array().unwrap().iter().map(|l| &l["identifier"]).collect();
    assert_eq!(legs, vec![&split["destinations"][0]["transaction_id"], &split["destinations"][1]["transaction_id"]]);
    let (status, _) = s.server.request("POST", &path, None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_predicted(projection(&preview, "destination"), &s.balance(&s.alice).await);
}
