//! Blnk's transaction hooks (`/hooks`) against real local receivers: Blnk's body and headers, the
//! master key's signature, PRE and POST hooks' transactions, retries, and the routes' answers.

mod common;

use common::receiver::{Received, Receiver};
use common::{unique, unique_currency, Server};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const MASTER: &str = "the-master-key";

fn start() -> Server {
    Server::start_with_args(&["--api-key", MASTER, "--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "100"])
}

async fn call(server: &Server, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request =
        server.client().request(method.parse().unwrap(), format!("{}{path}", server.base)).header("x-blnk-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn master(server: &Server, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    call(server, method, path, MASTER, body).await
}

async fn transfer(server: &Server, source: &str, destination: &str, currency: &str, skip_queue: bool) -> Value {
    let body = json!({"precise_amount": 100, "currency": currency, "source": source, "destination": destination,
        "reference": unique("ref"), "skip_queue": skip_queue});
    let (status, t) = master(server, "POST", "/transactions", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t
}

async fn balance(server: &Server, ledger: &str, currency: &str) -> String {
    let (_, b) = master(server, "POST", "/balances", Some(json!({"ledger_id": ledger, "currency": currency}))).await;
    b["balance_id"].as_str().unwrap().to_string()
}

async fn wait_for(receiver: &Receiver, n: usize) -> Vec<Received> {
    for _ in 0..400 {
        if receiver.received_all().len() >= n {
            return receiver.received_all();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} hook calls, got {}", receiver.received_all().len());
}

#[tokio::test]
async fn pre_and_post_hooks_get_blnks_body_and_headers_signed_with_the_master_key() {
    let (pre_receiver, post_receiver) = (Receiver::start().await, Receiver::start().await);
    let server = start();
    let body = json!({"name": "audit", "url": post_receiver.url, "type": "POST_TRANSACTION", "active": true,
        "timeout": 5, "retry_count": 2});
    let (status, post) = master(&server, "POST", "/hooks", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{post}");
    assert!(post["id"].as_str().unwrap().starts_with("hook_"), "{post}");
    assert_eq!((post["timeout"].clone(), post["retry_count"].clone()), (json!(5), json!(2)));
    assert_eq!((post["last_run"].clone(), post["last_success"].clone()), (json!("0001-01-01T00:00:00Z"), json!(false)));
    let body = json!({"name": "screen", "url": pre_receiver.url, "type": "PRE_TRANSACTION", "active": true});
    let (_, pre) = master(&server, "POST", "/hooks", Some(body)).await;

    let currency = unique_currency();
    let (_, ledger) = master(&server, "POST", "/ledgers", Some(json!({"name": "hooks"}))).await;
    let ledger = ledger["ledger_id"].as_str().unwrap().to_string();
    let (empty, full) = (balance(&server, &ledger, &currency).await, balance(&server, &ledger, &currency).await);
    let applied = transfer(&server, "@World", &full, &currency, true).await;
    // Queued from a balance with nothing in it: rejected when the queue applies it.
    let rejected = transfer(&server, &empty, &full, &currency, false).await;

    let got = wait_for(&pre_receiver, 2).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.body["transaction_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![applied["transaction_id"].as_str().unwrap(), rejected["transaction_id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(ids, expected, "a PRE hook hears of every transaction processed, whatever came of it");
    assert!(got.iter().all(|r| r.body["hook_type"] == "PRE_TRANSACTION" && r.header("x-hook-id") == pre["id"]));

    let got = wait_for(&post_receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post_receiver.received_all().len(), 1, "a POST hook: only what was recorded");
    let call = &got[0];
    assert_eq!(call.body["transaction_id"], applied["transaction_id"]);
    assert_eq!(call.body["data"]["transaction_id"], applied["transaction_id"]);
    assert_eq!(call.body["data"]["status"], "APPLIED");
    assert!(call.body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", call.body);
    assert_eq!(call.header("x-hook-type"), "POST_TRANSACTION");
    assert_eq!(call.header("x-hook-id"), post["id"].as_str().unwrap());
    let mut mac = Hmac::<Sha256>::new_from_slice(MASTER.as_bytes()).unwrap();
    mac.update(format!("{}.{}", call.header("x-blnk-timestamp"), call.raw).as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(call.header("x-blnk-signature"), hex, "signed with the master key, as Blnk signs with its secret key");
}

#[tokio::test]
async fn a_failed_call_is_retried_retry_count_times_and_the_hook_shows_its_last_run() {
    let receiver = Receiver::start().await;
    receiver.fail_next(&[500, 502]);
    let server = start();
    let body = json!({"url": receiver.url, "type": "POST_TRANSACTION", "active": true, "retry_count": 2});
    let (_, hook) = master(&server, "POST", "/hooks", Some(body)).await;
    let currency = unique_currency();
    let (_, ledger) = master(&server, "POST", "/ledgers", Some(json!({"name": "retries"}))).await;
    let wallet = balance(&server, ledger["ledger_id"].as_str().unwrap(), &currency).await;
    transfer(&server, "@World", &wallet, &currency, true).await;
    let got = wait_for(&receiver, 3).await;
    assert!(got.iter().all(|r| r.header("webhook-id") == got[0].header("webhook-id")), "one event, three calls");
    let path = format!("/hooks/{}", hook["id"].as_str().unwrap());
    for _ in 0..100 {
        let (_, read) = master(&server, "GET", &path, None).await;
        if read["last_success"] == true {
            assert_ne!(read["last_run"], "0001-01-01T00:00:00Z");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hook never showed a successful last run");
}

#[tokio::test]
async fn hooks_are_listed_read_replaced_and_deleted_as_blnk_answers() {
    let server = start();
    let url = "http://127.0.0.1:1/hook";
    let (_, pre) = master(&server, "POST", "/hooks", Some(json!({"url": url, "type": "PRE_TRANSACTION"}))).await;
    assert_eq!(pre["active"], false, "inactive unless asked, as Blnk");
    assert_eq!((pre["timeout"].clone(), pre["retry_count"].clone()), (json!(30), json!(0)));
    let body = json!({"url": url, "type": "POST_TRANSACTION", "timeout": -1, "retry_count": 99});
    let (_, post) = master(&server, "POST", "/hooks", Some(body)).await;
    assert_eq!((post["timeout"].clone(), post["retry_count"].clone()), (json!(30), json!(10)), "Blnk's bounds");

    let (_, all) = master(&server, "GET", "/hooks", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, pres) = master(&server, "GET", "/hooks?type=PRE_TRANSACTION", None).await;
    assert_eq!(pres.as_array().unwrap().iter().map(|h| h["id"].clone()).collect::<Vec<_>>(), vec![pre["id"].clone()]);

    let path = format!("/hooks/{}", pre["id"].as_str().unwrap());
    let replacement = json!({"name": "renamed", "url": url, "type": "POST_TRANSACTION", "active": true, "timeout": 9});
    let (status, replaced) = master(&server, "PUT", &path, Some(replacement)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!((replaced["name"].clone(), replaced["type"].clone()), (json!("renamed"), json!("POST_TRANSACTION")));
    assert_eq!((replaced["timeout"].clone(), replaced["created_at"].clone()), (json!(9), pre["created_at"].clone()));

    for (body, field) in [
        (json!({"type": "PRE_TRANSACTION"}), "url"),
        (json!({"url": url, "type": "DURING_TRANSACTION"}), "type"),
        (json!({"url": url}), "type"),
        (json!({"url": url, "type": "PRE_TRANSACTION", "timeout": 86400}), "timeout"),
    ] {
        let (status, answer) = master(&server, "POST", "/hooks", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error_detail"]["code"], "HOOK_INVALID", "{answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{answer}");
    }

    let (status, deleted) = master(&server, "DELETE", &path, None).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"message": "hook deleted successfully"})));
    for path in [path.as_str(), "/hooks/hook_nope"] {
        let (status, answer) = master(&server, "GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(answer["error_detail"]["code"], "HOOK_NOT_FOUND", "{answer}");
    }
    // A `/webhooks` endpoint is not a hook, and a hook is not a `/webhooks` endpoint.
    let (_, endpoint) = master(&server, "POST", "/webhooks", Some(json!({"url": url}))).await;
    let (status, _) =
        master(&server, "GET", &format!("/hooks/{}", endpoint["endpoint_id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = master(&server, "GET", &format!("/webhooks/{}", post["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only the master key.
    let scopes = json!({"name": "all", "owner": "ops", "scopes": ["*:*"]});
    let (_, key) = master(&server, "POST", "/api-keys", Some(scopes)).await;
    let (status, answer) = call(&server, "GET", "/hooks", key["key"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error_detail"]["code"], "AUTH_MASTER_KEY_REQUIRED", "{answer}");
}
