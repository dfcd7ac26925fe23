//! Time-driven transactions on a real server: `scheduled_for` (held as `SCHEDULED`, applied when
//! due, also across a restart), `inflight_expiry_date` (what is left of the hold is voided) and
//! `inflight_commit_date` (what is left is committed), each by the engine's own rules.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// RFC 3339 in UTC, `seconds` from now.
fn in_seconds(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(seconds)).to_string()
}

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

async fn setup(server: Server) -> Setup {
    let currency = unique_currency();
    let ledger = server.ledger("time").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    let (status, body) = server.transfer("@World", &alice, 1_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, alice, bob }
}

impl Setup {
    fn transfer(&self, amount: u64, extra: Value) -> Value {
        let mut body = json!({"precise_amount": amount, "currency": self.currency, "source": self.alice,
            "destination": self.bob, "reference": unique("t"), "skip_queue": true});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn bob(&self) -> Value {
        self.server.get(&format!("/balances/{}", self.bob)).await.1
    }

    async fn settled(&self, id: &str, status: &str) -> Value {
        wait_for(&self.server, &format!("/transactions/{id}"), |t| t["status"] == status).await
    }
}

#[tokio::test]
async fn a_scheduled_transaction_waits_for_its_time() {
    let s = setup(Server::start()).await;
    let when = in_seconds(2);
    let scheduled = s.server.create("/transactions", s.transfer(100, json!({"scheduled_for": when}))).await;
    assert_eq!(scheduled["status"], "SCHEDULED", "{scheduled}");
    assert!(scheduled["scheduled_for"].as_str().unwrap().starts_with(&when[..19]), "{scheduled}");
    assert_eq!(s.bob().await["balance"], json!(0), "nothing moves before its time");
    let applied = s.settled(scheduled["transaction_id"].as_str().unwrap(), "APPLIED").await;
    assert_eq!(applied["reference"], scheduled["reference"]);
    assert_eq!(s.bob().await["balance"], json!(100));

    // In the past: applied at once. Without the funds when due: rejected, nothing moves.
    let past = s.server.create("/transactions", s.transfer(1, json!({"scheduled_for": "2020-01-01T00:00:00Z"}))).await;
    assert_eq!(past["status"], "APPLIED", "{past}");
    let broke = s.server.create("/transactions", s.transfer(5_000, json!({"scheduled_for": in_seconds(1)}))).await;
    s.settled(broke["transaction_id"].as_str().unwrap(), "REJECTED").await;
    assert_eq!(s.bob().await["balance"], json!(101));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_scheduled_transaction_survives_a_restart() {
    let database = TestDatabase::new();
    let s = setup(Server::start_on(&database.url, &[])).await;
    let scheduled = s.server.create("/transactions", s.transfer(250, json!({"scheduled_for": in_seconds(3)}))).await;
    let Setup { server, currency, alice, bob } = s;
    assert!(server.stop(), "a clean stop");
    let s = Setup { server: Server::start_on(&database.url, &[]), currency, alice, bob };
    s.settled(scheduled["transaction_id"].as_str().unwrap(), "APPLIED").await;
    assert_eq!(s.bob().await["balance"], json!(250));
}

#[tokio::test]
async fn holds_are_voided_at_expiry_and_committed_at_their_commit_date() {
    let s = setup(Server::start()).await;
    let expiring = s.transfer(300, json!({"inflight": true, "inflight_expiry_date": in_seconds(2)}));
    let hold = s.server.create("/transactions", expiring).await;
    let id = hold["transaction_id"].as_str().unwrap();
    let (status, _) =
        s.server.put(&format!("/transactions/inflight/{id}"), json!({"status": "commit", "precise_amount": 100})).await;
    assert_eq!(status, StatusCode::OK);
    s.settled(id, "VOID").await;
    let (_, alice) = s.server.get(&format!("/balances/{}", s.alice)).await;
    assert_eq!((alice["balance"].clone(), alice["inflight_debit_balance"].clone()), (json!(900), json!(0)), "{alice}");

    let committing = s.transfer(50, json!({"inflight": true, "inflight_commit_date": in_seconds(1)}));
    let hold = s.server.create("/transactions", committing).await;
    s.settled(hold["transaction_id"].as_str().unwrap(), "COMMIT").await;
    assert_eq!(s.bob().await["balance"], json!(150), "100 committed by hand, 50 at the commit date");

    for field in ["scheduled_for", "inflight_expiry_date", "inflight_commit_date"] {
        let (status, answer) =
            s.server.post("/transactions", s.transfer(1, json!({field: "soon", "inflight": true}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{answer}");
    }
    assert_ledger_invariants(&s.server, &s.currency).await;
}

/// Milliseconds since the epoch of a `created_at` the server answered.
fn stamp(transaction: &Value) -> u128 {
    let at = humantime::parse_rfc3339(transaction["created_at"].as_str().unwrap()).unwrap();
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
}

/// The engine's clock never goes back (M1): a transaction stored with a stamp ahead of this
/// machine's clock (written by a process whose clock ran ahead, or before this one's stepped back)
/// is never undercut by a later one, also after a restart; a stamp more than a day ahead is a
/// clock set wrong, logged and not followed (else time would stop here).
#[tokio::test]
async fn stamps_never_go_back_before_what_is_stored() {
    let database = TestDatabase::new();
    let s = setup(Server::start_on(&database.url, &[])).await;
    let first = s.server.create("/transactions", s.transfer(1, json!({"skip_queue": true}))).await;
    let Setup { server, currency, alice, bob } = s;
    server.kill();
    let ahead = SystemTime::now() + Duration::from_secs(3_600);
    let set_stamp = |id: &Value, at: SystemTime| {
        let at = humantime::format_rfc3339_micros(at);
        database.execute(&format!(
            "UPDATE transactions SET created_at = '{at}' WHERE transaction_id = '{}'",
            id.as_str().unwrap()
        ));
    };
    set_stamp(&first["transaction_id"], ahead);

    let s = Setup { server: Server::start_on(&database.url, &[]), currency, alice, bob };
    let later = s.server.create("/transactions", s.transfer(1, json!({"skip_queue": true}))).await;
    let ahead_ms = ahead.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
    assert!(stamp(&later) >= ahead_ms, "stamped {} before the stored {ahead_ms}", stamp(&later));
    let Setup { server, currency, alice, bob } = s;
    server.kill();

    set_stamp(&later["transaction_id"], SystemTime::now() + Duration::from_secs(3 * 86_400));
    let s = Setup { server: Server::start_on(&database.url, &[]), currency, alice, bob };
    let last = s.server.create("/transactions", s.transfer(1, json!({"skip_queue": true}))).await;
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
    assert!(stamp(&last) <= now_ms + 60_000, "a stamp three days ahead is not followed: {last}");
    assert!(s.server.logs().iter().any(|l| l.contains("more than a day ahead")), "and it is logged");
    assert_ledger_invariants(&s.server, &s.currency).await;
}
