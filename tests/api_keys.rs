//! Scoped API keys: created, listed and revoked by the master key only; a key does what its scopes
//! allow and gets 403 AUTH_INSUFFICIENT_PERMISSIONS otherwise; revoked and expired keys are refused;
//! secrets are shown once and stored only as hashes, never listed and never logged.

mod common;

use common::{unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MASTER: &str = "master-key-for-tests";

async fn call(server: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request =
        server.client().request(method.parse().unwrap(), format!("{}{path}", server.base)).header("X-Blnk-Key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn new_key(server: &Server, scopes: Value, expires_at: Option<&str>) -> (String, Value) {
    let mut body = json!({"name": "ci", "owner": "team-payments", "scopes": scopes});
    if let Some(at) = expires_at {
        body["expires_at"] = json!(at);
    }
    let (status, created) = call(server, MASTER, "POST", "/api-keys", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["key"].as_str().unwrap().to_string(), created)
}

// tidy: long because it is one scenario, step by step
#[tokio::test]
async fn scoped_keys_do_what_their_scopes_allow_and_nothing_else() {
    let server = Server::start_with_args(&["--api-key", MASTER]);
    let ledger = call(&server, MASTER, "POST", "/ledgers", Some(json!({"name": "l"}))).await.1["ledger_id"]
        .as_str()
        .unwrap()
        .to_string();
    let currency = unique_currency();

    let (reader, created) = new_key(&server, json!(["balances:read", "balance-monitors:*"]), None).await;
    assert!(created["api_key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(created["scopes"], json!(["balances:read", "balance-monitors:*"]));
    assert_eq!((created["owner"].as_str(), created["is_revoked"].as_bool()), (Some("team-payments"), Some(false)));

    assert_eq!(call(&server, &reader, "GET", "/balances", None).await.0, StatusCode::OK);
    let (status, body) =
        call(&server, &reader, "POST", "/balances", Some(json!({"ledger_id": ledger, "currency": currency}))).await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("AUTH_INSUFFICIENT_PERMISSIONS"))
    );
    for (method, path) in
        [("GET", "/transactions"), ("GET", "/ledgers"), ("POST", "/refund-transaction/txn_x"), ("GET", "/api-keys")]
    {
        let (status, body) =
            call(&server, &reader, method, path, if method == "POST" { Some(json!({})) } else { None }).await;
        assert_eq!(
            (status, body["error_detail"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("AUTH_INSUFFICIENT_PERMISSIONS")),
            "{method} {path}"
        );
    }
    let balance =
        call(&server, MASTER, "POST", "/balances", Some(json!({"ledger_id": ledger, "currency": currency}))).await.1;
    let monitor =
        json!({"balance_id": balance["balance_id"], "condition": {"field": "balance", "operator": ">", "value": 1}});
    assert_eq!(
        call(&server, &reader, "POST", "/balance-monitors", Some(monitor)).await.0,
        StatusCode::CREATED,
        "balance-monitors:* writes"
    );

    let (writer, _) = new_key(&server, json!(["transactions:write"]), None).await;
    let transfer = json!({"precise_amount": 5, "currency": currency, "source": "@World",
        "destination": balance["balance_id"],
        "reference": "scoped-1", "skip_queue": true});
    assert_eq!(call(&server, &writer, "POST", "/transactions", Some(transfer)).await.0, StatusCode::CREATED);
    assert_eq!(
        call(&server, &writer, "GET", "/transactions/reference/scoped-1", None).await.0,
        StatusCode::FORBIDDEN,
        "write does not imply read"
    );

    // Only the master key manages keys; a key cannot mint itself more rights.
    let (status, _) = call(&server, &writer, "POST", "/api-keys", Some(json!({"name": "x", "scopes": ["*:*"]}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Listing never shows a secret or its hash.
    let (status, listed) = call(&server, MASTER, "GET", "/api-keys", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!text.contains(&reader) && !text.contains(&writer) && !text.contains("key_hash"), "{text}");

    // Revoked: refused as invalid.
    let id = created["api_key_id"].as_str().unwrap();
    let (status, _) = call(&server, MASTER, "DELETE", &format!("/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "Blnk answers a revocation with 204");
    let (_, listed) = call(&server, MASTER, "GET", "/api-keys", None).await;
    let revoked = listed.as_array().unwrap().iter().find(|k| k["api_key_id"] == id).unwrap().clone();
    assert_eq!((revoked["is_revoked"].as_bool(), revoked["owner_id"].as_str()), (Some(true), Some("team-payments")));
    let (_, theirs) = call(&server, MASTER, "GET", "/api-keys?owner=team-payments", None).await;
    assert_eq!(theirs.as_array().unwrap().len(), 2, "the owner filter: {theirs}");
    let (_, nobodys) = call(&server, MASTER, "GET", "/api-keys?owner=nobody", None).await;
    assert_eq!(nobodys, json!([]));
    let (status, body) = call(&server, &reader, "GET", "/balances", None).await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AUTH_INVALID_API_KEY"))
    );
    assert_eq!(call(&server, MASTER, "DELETE", "/api-keys/key_missing", None).await.0, StatusCode::NOT_FOUND);

    // Expired: its own code.
    let (expired, _) = new_key(&server, json!(["*:*"]), Some("2020-01-01T00:00:00Z")).await;
    let (status, body) = call(&server, &expired, "GET", "/balances", None).await;
    assert_eq!(
        (status, body["error_detail"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AUTH_EXPIRED_API_KEY"))
    );
    let (future, _) = new_key(&server, json!(["*:read"]), Some("2999-01-01T00:00:00Z")).await;
    assert_eq!(call(&server, &future, "GET", "/ledgers", None).await.0, StatusCode::OK);

    // Bad definitions name the field.
    for (body, field) in [
        (json!({"scopes": ["balances:read"]}), "name"),
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["balances:delete"]}), "scopes"),
        (json!({"name": "x", "scopes": ["*:*"], "expires_at": "next tuesday"}), "expires_at"),
    ] {
        let (status, answer) = call(&server, MASTER, "POST", "/api-keys", Some(body.clone())).await;
        assert_eq!(
            (status, answer["error_detail"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}"
        );
    }

    // The secrets never reach the logs.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = server.logs().join("\n");
    for secret in [&reader, &writer, &expired, &future] {
        assert!(!logs.contains(secret.as_str()), "a key's secret is in the logs");
    }
}

#[tokio::test]
async fn secrets_are_stored_only_as_hashes() {
    let database = common::TestDatabase::new();
    let server = Server::start_on(&database.url, &["--api-key", MASTER]);
    let (secret, _) = new_key(&server, json!(["balances:read"]), None).await;
    let dump = if database.is_postgres() {
        let url = database.url.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .query("SELECT key_id || name || owner || scopes || key_hash FROM api_keys", &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .join()
        .unwrap()
    } else {
        let conn = rusqlite::Connection::open(database.url.trim_start_matches("sqlite://")).unwrap();
        let mut stmt = conn.prepare("SELECT key_id || name || owner || scopes || key_hash FROM api_keys").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect::<Vec<_>>().join("\n")
    };
    assert!(!dump.is_empty());
    assert!(!dump.contains(&secret), "the secret itself is stored");
}

#[tokio::test]
async fn a_route_needs_the_read_scopes_of_everything_its_answer_carries() {
    let server = Server::start_with_args(&["--api-key", MASTER, "--webhook-url", "http://127.0.0.1:9/unused"]);
    let ledger = call(&server, MASTER, "POST", "/ledgers", Some(json!({"name": "l"}))).await.1["ledger_id"].clone();
    let currency = unique_currency();
    let balance = call(&server, MASTER, "POST", "/balances", Some(json!({"ledger_id": ledger, "currency": currency})))
        .await
        .1["balance_id"]
        .clone();
    let monitor = json!({"balance_id": balance, "condition": {"field": "balance", "operator": ">", "value": 0}});
    let monitor = call(&server, MASTER, "POST", "/balance-monitors", Some(monitor)).await.1["monitor_id"].clone();
    let transfer = json!({"precise_amount": 5, "currency": currency, "source": "@World", "destination": balance,
        "reference": "reveals-1", "skip_queue": true});
    assert_eq!(call(&server, MASTER, "POST", "/transactions", Some(transfer)).await.0, StatusCode::CREATED);
    let monitor_events = format!("/balance-monitors/{}/events", monitor.as_str().unwrap());
    let (_, events) = call(&server, MASTER, "GET", "/events", None).await;
    let event = format!("/events/{}", events[0]["event_id"].as_str().unwrap());
    let redeliver = format!("{event}/redeliver");

    // (scopes, method, path, allowed)
    let cases: Vec<(Value, &str, &str, bool)> = vec![
        // A monitor's triggers carry balance totals.
        (json!(["balance-monitors:read"]), "GET", &monitor_events, false),
        (json!(["balance-monitors:read", "balances:read"]), "GET", &monitor_events, true),
        (json!(["balance-monitors:read"]), "GET", "/balance-monitors", true),
        // Events carry transaction bodies, monitors and balances.
        (json!(["events:read"]), "GET", "/events", false),
        (json!(["events:read", "transactions:read"]), "GET", &event, false),
        (json!(["events:read", "transactions:read", "balances:read", "balance-monitors:read"]), "GET", "/events", true),
        (json!(["events:read", "transactions:read", "balances:read", "balance-monitors:read"]), "GET", &event, true),
        (json!(["events:write"]), "POST", &redeliver, false),
        (
            json!(["events:write", "transactions:read", "balances:read", "balance-monitors:read"]),
            "POST",
            &redeliver,
            true,
        ),
        (json!(["*:read"]), "GET", "/events", true),
    ];
    for (scopes, method, path, allowed) in cases {
        let (key, _) = new_key(&server, scopes.clone(), None).await;
        let (status, body) = call(&server, &key, method, path, (method == "POST").then(|| json!({}))).await;
        if allowed {
            assert!(status.is_success(), "{scopes} {method} {path}: {status} {body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{scopes} {method} {path}: {body}");
            assert!(body["error"].as_str().unwrap().contains("needs"), "the refusal names what is missing: {body}");
        }
    }
}
