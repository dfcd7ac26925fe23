//! Hostile input against every endpoint: random JSON of every shape (wrong types, huge and absurd
//! numbers, deep nesting, unicode, unknown fields), random bytes, and ids full of path tricks.
//! Whatever comes in: never a 5xx, every refusal is Blnk's error body, and a refusal changes nothing.

mod common;

use common::{check_property, unique_currency, Server};
use proptest::prelude::*;
use serde_json::{json, Value};

const BODY_ROUTES: &[(&str, &str)] = &[
    ("POST", "/ledgers"),
    ("PUT", "/ledgers/{ledger}"),
    ("POST", "/balances"),
    ("POST", "/transactions"),
    ("PUT", "/transactions/inflight/{txn}"),
    ("POST", "/refund-transaction/{txn}"),
    ("POST", "/balance-monitors"),
    ("PUT", "/balance-monitors/{monitor}"),
    ("POST", "/events/{event}/redeliver"),
];

const ID_ROUTES: &[&str] = &[
    "/ledgers/",
    "/balances/",
    "/transactions/",
    "/transactions/reference/",
    "/balance-monitors/",
    "/balance-monitors/balances/",
    "/events/",
    "/balances/indicator/",
];

/// Numbers as text, from the ordinary to the absurd.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        Just("0".to_string()),
        Just("-0.0".to_string()),
        Just("1e400".to_string()),
        Just("-1e-400".to_string()),
        Just("123456789012345678901234567890123456789012345678901234567890".to_string()),
        Just("0.000000000000000000000000000000000000000001".to_string()),
        (1u32..400).prop_map(|n| format!("1e{n}")),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z@_]{1,12}",
        "\\PC{0,20}",
        Just("../../etc/passwd".to_string()),
        Just("bln_%00".to_string()),
        Just("@World".to_string()),
        Just("😀".repeat(50)),
        Just("\u{202e}reversed".to_string()),
    ]
}

/// Raw JSON text of any shape: a leaf, or arrays and objects nested a few levels.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        number(),
        text().prop_map(|s| Value::from(s).to_string()),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((prop_oneof![field(), text()], inner), 0..6).prop_map(|pairs| {
                let fields: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{}:{v}", Value::from(k))).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// The contract's field names, so random bodies hit real validation paths.
fn field() -> impl Strategy<Value = String> {
    let mut names = vec!["name", "ledger_id", "identity_id", "status", "field", "operator", "value"];
    names.extend(common::TRANSACTION_FIELDS);
    names.extend(common::MONITOR_FIELDS);
    names.sort_unstable();
    names.dedup();
    prop::sample::select(names).prop_map(str::to_string)
}

#[derive(Debug, Clone)]
enum Body {
    Json(String),
    Bytes(Vec<u8>),
    Deep(usize),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        6 => json_text().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
        1 => (100usize..5000).prop_map(Body::Deep),
    ]
}

async fn state(server: &Server) -> Vec<usize> {
    let mut counts = Vec::new();
    for path in ["/ledgers", "/balances", "/transactions", "/balance-monitors", "/events"] {
        let (_, list) = server.get(&format!("{path}?limit=1000")).await;
        counts.push(list.as_array().map_or(0, Vec::len));
    }
    counts
}

#[test]
fn hostile_requests_get_4xx_error_bodies_and_change_nothing() {
    // Through the router in this process: every case is about the app, not the socket (the
    // socket's own limits are the tests below, on a real server).
    let server = Server::in_process(None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Something real to aim at, so ids and references can also be valid.
    let (ledger, txn, monitor) = runtime.block_on(async {
        let currency = unique_currency();
        let ledger = server.ledger("target").await;
        let balance = server.balance(&ledger, &currency).await;
        let (_, txn) = server.transfer("@World", &balance, 10, &currency).await;
        let monitor = server
            .create(
                "/balance-monitors",
                json!({"balance_id": balance, "condition": {"field": "balance", "operator": ">", "value": 0}}),
            )
            .await;
        (
            ledger,
            txn["transaction_id"].as_str().unwrap().to_string(),
            monitor["monitor_id"].as_str().unwrap().to_string(),
        )
    });
    let strategy =
        (prop::sample::select(BODY_ROUTES.to_vec()), body(), prop::sample::select(ID_ROUTES.to_vec()), text());
    check_property(256, strategy, |((method, route), body, id_route, id)| {
        let (server, ledger, txn, monitor) = (&server, ledger.clone(), txn.clone(), monitor.clone());
        Box::pin(async move {
            let before = state(server).await;
            let path = route
                .replace("{ledger}", &ledger)
                .replace("{txn}", &txn)
                .replace("{monitor}", &monitor)
                .replace("{event}", "evt_x");
            let bytes = match &body {
                Body::Json(text) => text.clone().into_bytes(),
                Body::Bytes(bytes) => bytes.clone(),
                Body::Deep(depth) => format!("{}{}", "[".repeat(*depth), "]".repeat(*depth)).into_bytes(),
            };
            let headers = [("content-type", "application/json")];
            let answer = server.send(method, &path, &headers, bytes).await.expect("a request a client can send");
            let (status, text) = (answer.status, answer.body);
            assert!(!status.is_server_error(), "{method} {path} {body:?} → {status} {text}");
            if !status.is_success() {
                let error: Value =
                    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} body is not JSON: {text}"));
                assert!(error["error_detail"]["code"].is_string() && error["error"].is_string(), "{text}");
                assert_eq!(
                    state(server).await,
                    before,
                    "{method} {path} {body:?} was refused ({text}) but changed state"
                );
            }
            // Ids full of tricks on the read routes.
            let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
            for candidate in [id.clone(), encoded] {
                // A path no client can send (a raw space, say) is no test of the server.
                if let Some(answer) = server.send("GET", &format!("{id_route}{candidate}"), &[], Vec::new()).await {
                    let (status, text) = (answer.status, answer.body);
                    assert!(!status.is_server_error(), "GET {id_route}{candidate} → {status} {text}");
                    assert!(serde_json::from_str::<Value>(&text).is_ok(), "GET {id_route}{candidate}: non-JSON {text}");
                }
            }
        })
    });
}

#[test]
fn a_client_that_dribbles_its_body_is_cut_off_with_408() {
    use std::io::{Read, Write};
    let server = Server::start_with_args(&["--request-timeout-ms", "500"]);
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    // Announce 100 bytes, send 10, then go quiet.
    write!(
        stream,
        "POST /ledgers HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: \
        100\r\n\r\n{{\"name\":\"a"
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer); // ends when the server closes
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("GEN_REQUEST_TIMEOUT"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "cut off after the timeout, not left open");
}
