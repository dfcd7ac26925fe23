//! Transactions over HTTP: exact amounts, the queue, overdrafts, references, inflight commit and
//! void, refunds, and bad input that must change nothing.

mod common;

use common::invariants::{assert_ledger_invariants, big};
use common::{unique, unique_currency, wait_for, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

/// An app with two balances; alice is funded with `funds` minor units from @World. In this
/// process (`Server::in_process`): these tests are about the API's rules, not the socket.
async fn setup(funds: u64) -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("wallets").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    if funds > 0 {
        let (status, body) = server.transfer("@World", &alice, funds, &currency).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    Setup { server, currency, alice, bob }
}

impl Setup {
    fn body(&self, extra: Value) -> Value {
        let mut body = json!({
            "currency": self.currency, "source": self.alice, "destination": self.bob,
            "reference": unique("ref"), "description": "test", "skip_queue": true,
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn balance(&self, id: &str) -> Value {
        let (status, body) = self.server.get(&format!("/balances/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        body
    }

    async fn totals(&self, id: &str) -> [i64; 4] {
        let b = self.balance(id).await;
        ["credit_balance", "debit_balance", "inflight_credit_balance", "inflight_debit_balance"]
            .map(|f| b[f].as_i64().unwrap_or_else(|| panic!("{f} in {b}")))
    }
}

#[tokio::test]
async fn decimal_amounts_become_exact_minor_units() {
    let s = setup(0).await;
    let cases = [
        (json!({"amount": 0.1, "precision": 100}), "10", "0.1"),
        (json!({"amount": 5.25, "precision": 100}), "525", "5.25"),
        (json!({"amount": 1e2}), "100", "100"),
        (json!({"amount": "19.99", "precision": 100}), "1999", "19.99"),
        (json!({"precise_amount": 525, "precision": 100}), "525", "5.25"),
        (json!({"precise_amount": "7"}), "7", "7"),
        (json!({"amount": 0.000001, "precision": 1000000}), "1", "0.000001"),
    ];
    for (extra, precise, amount) in cases {
        let body = s.body(json!({"source": "@World", "destination": s.alice}));
        let mut body = body.as_object().unwrap().clone();
        body.extend(extra.as_object().unwrap().clone());
        let created = s.server.create("/transactions", Value::Object(body)).await;
        assert_eq!(created["precise_amount"].to_string(), precise, "{extra} → {created}");
        assert_eq!(created["amount"].to_string(), amount, "{extra} → {created}");
        assert_eq!(created["status"], "APPLIED");
    }
    assert_eq!(s.balance(&s.alice).await["balance"], json!(10 + 525 + 100 + 1999 + 525 + 7 + 1));
}

#[tokio::test]
async fn huge_amounts_stay_exact_numbers() {
    let s = setup(0).await;
    let raw = format!(
        r#"{{"precise_amount": 123456789012345678901234567890, "currency": "{}", "source": "@World",
            "destination": "{}", "reference": "{}", "skip_queue": true}}"#,
        s.currency,
        s.alice,
        unique("big")
    );
    let answer = s.server.send("POST", "/transactions", &[], raw.clone().into_bytes()).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    let text = answer.body;
    assert!(text.contains("\"precise_amount\":123456789012345678901234567890"), "{text}");
    let answer = s.server.send("POST", "/transactions", &[], raw.replace("big-", "big2-").into_bytes()).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    let text = s.server.send("GET", &format!("/balances/{}", s.alice), &[], Vec::new()).await.unwrap().body;
    assert!(text.contains("\"balance\":246913578024691357802469135780"), "{text}");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn transfers_move_money_and_bump_versions() {
    let s = setup(1000).await;
    let created =
        s.server.create("/transactions", s.body(json!({"precise_amount": 300, "meta_data": {"order": 7}}))).await;
    assert!(created["transaction_id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(created["status"], "APPLIED");
    assert_eq!(created["meta_data"], json!({"order": 7}));
    assert_eq!(created["parent_transaction"], "");
    for field in [
        "reference",
        "description",
        "currency",
        "source",
        "destination",
        "allow_overdraft",
        "inflight",
        "created_at",
        "precision",
    ] {
        assert!(!created[field].is_null(), "{field} missing from {created}");
    }
    assert_eq!(s.totals(&s.alice).await, [1000, 300, 0, 0]);
    assert_eq!(s.totals(&s.bob).await, [300, 0, 0, 0]);
    assert_eq!(s.balance(&s.alice).await["version"], json!(2));
    let id = created["transaction_id"].as_str().unwrap();
    assert_eq!(s.server.get(&format!("/transactions/{id}")).await, (StatusCode::OK, created.clone()));
    let reference = created["reference"].as_str().unwrap();
    assert_eq!(s.server.get(&format!("/transactions/reference/{reference}")).await, (StatusCode::OK, created.clone()));
    let (status, body) = s.server.get("/transactions/txn_missing").await;
    assert_eq!((status, body["error_detail"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("TXN_NOT_FOUND")));
    let (status, _) = s.server.get("/transactions/reference/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn overdrafts_need_permission_and_move_nothing() {
    let s = setup(100).await;
    let (status, body) = s.server.post("/transactions", s.body(json!({"precise_amount": 101}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS", "{body}");
    assert_eq!(s.totals(&s.alice).await, [100, 0, 0, 0]);
    let created =
        s.server.create("/transactions", s.body(json!({"precise_amount": 101, "allow_overdraft": true}))).await;
    assert_eq!(created["allow_overdraft"], true);
    assert_eq!(s.balance(&s.alice).await["balance"], json!(-1));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_reference_is_used_once() {
    let s = setup(100).await;
    let body = s.body(json!({"precise_amount": 10}));
    s.server.create("/transactions", body.clone()).await;
    let (status, answer) = s.server.post("/transactions", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error_detail"]["code"], "TXN_DUPLICATE_REFERENCE");
    let mut queued = body.clone();
    queued["skip_queue"] = json!(false);
    let (status, _) = s.server.post("/transactions", queued).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "queued requests check references too");
    assert_eq!(s.totals(&s.bob).await, [10, 0, 0, 0], "the duplicates moved nothing");
}

#[tokio::test]
async fn queued_transactions_are_applied_or_rejected_shortly_after() {
    let s = setup(100).await;
    let queued = s.server.create("/transactions", s.body(json!({"precise_amount": 60, "skip_queue": false}))).await;
    assert_eq!(queued["status"], "QUEUED");
    let rejected = s.server.create("/transactions", s.body(json!({"precise_amount": 60, "skip_queue": false}))).await;
    assert_eq!(rejected["status"], "QUEUED", "funds are checked when the turn comes");
    let no_flag = s.body(json!({"precise_amount": 1}));
    let mut no_flag = no_flag.as_object().unwrap().clone();
    no_flag.remove("skip_queue");
    let default_queued = s.server.create("/transactions", Value::Object(no_flag)).await;
    assert_eq!(default_queued["status"], "QUEUED", "skip_queue defaults to false");

    let path = |t: &Value| format!("/transactions/{}", t["transaction_id"].as_str().unwrap());
    let applied = wait_for(&s.server, &path(&queued), |t| t["status"] != "QUEUED").await;
    assert_eq!(applied["status"], "APPLIED");
    let refused = wait_for(&s.server, &path(&rejected), |t| t["status"] != "QUEUED").await;
    assert_eq!(refused["status"], "REJECTED", "arrival order: the second 60 finds only 40");
    wait_for(&s.server, &path(&default_queued), |t| t["status"] == "APPLIED").await;
    assert_eq!(s.totals(&s.alice).await, [100, 61, 0, 0]);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn inflight_is_held_then_committed_in_parts_and_voided() {
    let s = setup(1000).await;
    let held = s.server.create("/transactions", s.body(json!({"amount": 6, "precision": 100, "inflight": true}))).await;
    assert_eq!((held["status"].as_str(), held["inflight"].as_bool()), (Some("INFLIGHT"), Some(true)));
    assert_eq!(s.totals(&s.alice).await, [1000, 0, 0, 600]);
    assert_eq!(s.totals(&s.bob).await, [0, 0, 600, 0]);
    assert_eq!(s.balance(&s.alice).await["inflight_balance"], json!(-600));
    let (status, body) = s.server.post("/transactions", s.body(json!({"precise_amount": 401}))).await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_INSUFFICIENT_FUNDS")),
        "held funds are not available"
    );

    let id = held["transaction_id"].as_str().unwrap();
    let path = format!("/transactions/inflight/{id}");
    let (status, part) = s.server.put(&path, json!({"status": "commit", "amount": 2.5})).await;
    assert_eq!(status, StatusCode::OK, "{part}");
    assert_eq!((part["status"].as_str(), part["parent_transaction"].as_str()), (Some("APPLIED"), Some(id)));
    assert_eq!(part["precise_amount"], json!(250));
    assert_eq!(s.totals(&s.alice).await, [1000, 250, 0, 350]);
    let (status, body) = s.server.put(&path, json!({"status": "commit", "precise_amount": 351})).await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TXN_COMMIT_AMOUNT_EXCEEDED"))
    );
    let (_, part) = s.server.put(&path, json!({"status": "commit", "precise_amount": 100})).await;
    assert_eq!(part["precise_amount"], json!(100));
    let (status, voided) = s.server.put(&path, json!({"status": "void"})).await;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!((voided["status"].as_str(), voided["precise_amount"].as_i64()), (Some("VOID"), Some(250)));
    assert_eq!(s.totals(&s.alice).await, [1000, 350, 0, 0]);
    assert_eq!(s.totals(&s.bob).await, [350, 0, 0, 0]);
    assert_eq!(s.server.get(&format!("/transactions/{id}")).await.1["status"], "VOID");
    for (body, code) in
        [(json!({"status": "void"}), "TXN_ALREADY_VOIDED"), (json!({"status": "commit"}), "TXN_ALREADY_VOIDED")]
    {
        let (status, answer) = s.server.put(&path, body).await;
        assert_eq!((status, answer["error_detail"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)));
    }

    let full = s.server.create("/transactions", s.body(json!({"precise_amount": 50, "inflight": true}))).await;
    let full_path = format!("/transactions/inflight/{}", full["transaction_id"].as_str().unwrap());
    let (_, committed) = s.server.put(&full_path, json!({"status": "commit"})).await;
    assert_eq!(committed["precise_amount"], json!(50), "commit without an amount takes all that is left");
    let (_, answer) = s.server.put(&full_path, json!({"status": "void"})).await;
    assert_eq!(answer["error_detail"]["code"], "TXN_ALREADY_COMMITTED");
    let applied = s.server.create("/transactions", s.body(json!({"precise_amount": 1}))).await;
    let (_, answer) = s
        .server
        .put(
            &format!("/transactions/inflight/{}", applied["transaction_id"].as_str().unwrap()),
            json!({"status": "commit"}),
        )
        .await;
    assert_eq!(answer["error_detail"]["code"], "TXN_NOT_INFLIGHT");
    let (status, answer) = s.server.put(&full_path, json!({"status": "settle"})).await;
    assert_eq!(
        (status, answer["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
    assert_eq!(answer["error_detail"]["code"], "TXN_INVALID_STATUS_ACTION", "Blnk's code: {answer}");
    let (status, _) = s.server.put("/transactions/inflight/txn_missing", json!({"status": "void"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn refunds_reverse_an_applied_transaction_once() {
    let s = setup(1000).await;
    let original = s.server.create("/transactions", s.body(json!({"precise_amount": 400}))).await;
    let id = original["transaction_id"].as_str().unwrap();
    let refund = s.server.create(&format!("/refund-transaction/{id}"), json!({})).await;
    assert_eq!(refund["status"], "APPLIED");
    assert_eq!(refund["parent_transaction"], id);
    assert_eq!(
        (refund["source"].as_str(), refund["destination"].as_str()),
        (Some(s.bob.as_str()), Some(s.alice.as_str()))
    );
    assert_ne!(refund["reference"], original["reference"]);
    assert_eq!(s.balance(&s.alice).await["balance"], json!(1000));
    assert_eq!(s.balance(&s.bob).await["balance"], json!(0));
    let (status, answer) = s.server.post(&format!("/refund-transaction/{id}"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second refund is refused: {answer}");
    let (status, _) = s.server.post("/refund-transaction/txn_missing", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn bad_transactions_are_4xx_naming_the_field_and_change_nothing() {
    let s = setup(1000).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"amount": 0}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"amount": -5}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"precise_amount": -5}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"precise_amount": 1.5}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"amount": "ten"}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"amount": 0.001, "precision": 100}), "TXN_PRECISION_NOT_INTEGER", "amount"),
        (json!({"amount": 1, "precision": 50}), "TXN_VALIDATION_ERROR", "precision"),
        (json!({"amount": 1, "precision": 0}), "TXN_VALIDATION_ERROR", "precision"),
        (json!({"amount": 1, "precision": -100}), "TXN_VALIDATION_ERROR", "precision"),
        (json!({"amount": 1, "precision": 1e300}), "TXN_VALIDATION_ERROR", "precision"),
        (json!({"amount": "1e999999"}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"amount": "9".repeat(500)}), "TXN_INVALID_AMOUNT", "amount"),
        (json!({"amount": [1]}), "TXN_VALIDATION_ERROR", "amount"),
        (json!({"amount": 1, "reference": ""}), "TXN_VALIDATION_ERROR", "reference"),
        (json!({"amount": 1, "reference": 12}), "TXN_VALIDATION_ERROR", "reference"),
        (json!({"amount": 1, "currency": null}), "TXN_VALIDATION_ERROR", "currency"),
        (json!({"amount": 1, "source": ""}), "TXN_VALIDATION_ERROR", "source"),
        (json!({"amount": 1, "currency": "ZZZ"}), "TXN_VALIDATION_ERROR", "currency"),
        (json!({"amount": 1, "destination": s.alice}), "TXN_VALIDATION_ERROR", "destination"),
        (json!({"amount": 1, "skip_queue": "yes"}), "TXN_VALIDATION_ERROR", "skip_queue"),
        (json!({"amount": 1, "meta_data": [1]}), "TXN_VALIDATION_ERROR", "meta_data"),
    ];
    for (extra, code, field) in cases {
        let (status, body) = s.server.post("/transactions", s.body(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra} → {body}");
        assert_eq!(body["error_detail"]["code"], code, "{extra} → {body}");
        assert_eq!(body["error_detail"]["details"]["field"], field, "{extra} → {body}");
    }
    assert_eq!(s.totals(&s.alice).await, [1000, 0, 0, 0]);
    assert_eq!(s.totals(&s.bob).await, [0, 0, 0, 0]);
    let (_, all) = s.server.get("/transactions").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "only the funding transaction exists: {all}");
    assert_eq!(big(&all[0]["precise_amount"]), 1000.into());
}

#[tokio::test]
async fn a_refused_transaction_creates_no_indicator_and_currency_codes_follow_one_rule() {
    let s = setup(1000).await;
    let before = count_balances(&s.server).await;
    // 100 refusals, each naming an indicator no one has used yet.
    for i in 0..100 {
        let refusals = [
            json!({"amount": 1, "source": format!("@Unused{i}"), "destination": "bln_missing"}),
            json!({"amount": 1, "source": format!("@Elsewhere{i}"), "currency": "OTHER"}),
        ];
        let (status, body) = s.server.post("/transactions", s.body(refusals[i % 2].clone())).await;
        assert!(status.is_client_error(), "{body}");
    }
    assert_eq!(count_balances(&s.server).await, before, "no refusal left an indicator balance behind");
    let (status, _) = s.server.get("/balances/indicator/@Unused0/currency/OTHER").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // One indicator named by a refused and an accepted transaction at once exists once, used.
    let refused = s.body(json!({"amount": 1, "source": "@Shared", "destination": "bln_missing"}));
    let accepted = s.body(json!({"amount": 1, "source": "@Shared", "destination": s.bob}));
    let (a, b) = tokio::join!(s.server.post("/transactions", refused), s.server.post("/transactions", accepted));
    assert_eq!((a.0, b.0), (StatusCode::NOT_FOUND, StatusCode::CREATED), "{a:?} {b:?}");
    let (status, shared) = s.server.get(&format!("/balances/indicator/@Shared/currency/{}", s.currency)).await;
    assert_eq!((status, &shared["balance"]), (StatusCode::OK, &json!(-1)), "{shared}");
    assert_eq!(count_balances(&s.server).await, before + 1);

    // A currency with a space is refused by balances and transactions alike, and creates nothing.
    let ledger = s.server.ledger("codes").await;
    for currency in ["USD ", " USD", "U SD", "USD\t", &"X".repeat(65)] {
        let (status, body) = s.server.post("/balances", json!({"ledger_id": ledger, "currency": currency})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "balance in {currency:?}: {body}");
        assert_eq!(body["error_detail"]["details"]["field"], "currency", "{body}");
        let transfer = s.body(json!({"amount": 1, "source": "@World", "currency": currency}));
        let (status, body) = s.server.post("/transactions", transfer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "transaction in {currency:?}: {body}");
        assert_eq!(body["error_detail"]["details"]["field"], "currency", "{body}");
    }
    assert_eq!(count_balances(&s.server).await, before + 1, "no balance in a refused currency");
    assert_ledger_invariants(&s.server, &s.currency).await;
}

async fn count_balances(server: &Server) -> usize {
    server.get("/balances?limit=1000").await.1.as_array().unwrap().len()
}

#[tokio::test]
async fn an_overdraft_limit_bounds_how_far_the_source_goes_below_zero() {
    let s = setup(1000).await;
    let pay = |amount: u64, extra: Value| {
        let mut body = s.body(json!({"precise_amount": amount, "precision": 100}));
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    // $5.00 below zero at most: 1,000 in, 1,400 out is -400; another 200 would be -600.
    let first = s.server.create("/transactions", pay(1400, json!({"overdraft_limit": 5}))).await;
    assert_eq!((first["status"].as_str(), first["overdraft_limit"].to_string()), (Some("APPLIED"), "5".into()));
    let (status, refused) = s.server.post("/transactions", pay(200, json!({"overdraft_limit": "5"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error_detail"]["details"]["field"], "overdraft_limit", "{refused}");
    // With allow_overdraft too, the limit still holds; exactly at it is allowed.
    let (status, _) =
        s.server.post("/transactions", pay(200, json!({"overdraft_limit": 5, "allow_overdraft": true}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.server.create("/transactions", pay(100, json!({"overdraft_limit": 5.0}))).await;
    assert_eq!(s.balance(&s.alice).await["balance"], json!(-500));
    // Without a limit, allow_overdraft allows any overdraft, as before.
    s.server.create("/transactions", pay(10_000, json!({"allow_overdraft": true}))).await;

    // A dry run says which rule refused it.
    let (_, preview) = s.server.post("/transactions", pay(1, json!({"overdraft_limit": 5, "dry_run": true}))).await;
    assert_eq!(preview["rejection"]["reason"], "overdraft_limit", "{preview}");

    // A queued transaction is applied later by the limit it was accepted with.
    let ledger = s.server.ledger("queued").await;
    let carol = s.server.balance(&ledger, &s.currency).await;
    let (_, funded) = s.server.transfer("@World", &carol, 100, &s.currency).await;
    assert_eq!(funded["status"], "APPLIED");
    let queued = |amount: u64| {
        json!({"precise_amount": amount, "precision": 100, "currency": s.currency, "source": carol,
            "destination": s.alice, "reference": unique("q"), "overdraft_limit": 1})
    };
    let ok = s.server.create("/transactions", queued(200)).await;
    let refused = s.server.create("/transactions", queued(1)).await;
    for (t, status) in [(ok, "APPLIED"), (refused, "REJECTED")] {
        let path = format!("/transactions/{}", t["transaction_id"].as_str().unwrap());
        let done = wait_for(&s.server, &path, |t| t["status"] != "QUEUED").await;
        assert_eq!(done["status"], status, "{done}");
    }

    for (limit, why) in
        [(json!(-1), "negative"), (json!("0.001"), "finer than the precision"), (json!("x"), "not a number")]
    {
        let (status, answer) = s.server.post("/transactions", pay(1, json!({"overdraft_limit": limit}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], "overdraft_limit", "{why}: {answer}");
    }
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn an_effective_date_is_stored_in_utc_and_inherited_by_children() {
    let s = setup(1000).await;
    let body = s.body(json!({"precise_amount": 100, "inflight": true, "effective_date": "2026-01-31T23:00:00+01:00"}));
    let hold = s.server.create("/transactions", body).await;
    assert_eq!(hold["effective_date"], "2026-01-31T22:00:00.000000Z", "{hold}");
    let id = hold["transaction_id"].as_str().unwrap();
    assert_eq!(s.server.get(&format!("/transactions/{id}")).await.1["effective_date"], hold["effective_date"]);
    let (_, child) = s.server.put(&format!("/transactions/inflight/{id}"), json!({"status": "commit"})).await;
    assert_eq!(child["effective_date"], hold["effective_date"], "a commit inherits it: {child}");

    let plain = s.server.create("/transactions", s.body(json!({"precise_amount": 1}))).await;
    assert!(plain.get("effective_date").is_none(), "absent unless given: {plain}");
    for bad in [json!("yesterday"), json!("2026-13-01T00:00:00Z"), json!(12)] {
        let (status, answer) =
            s.server.post("/transactions", s.body(json!({"amount": 1, "effective_date": bad}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], "effective_date", "{answer}");
    }
}
