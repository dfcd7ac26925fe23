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
    ("POST", "/transactions/bulk"),
    ("POST", "/transactions/inflight/bulk/commit"),
    ("POST", "/transactions/inflight/bulk/void"),
    ("POST", "/ledgers/filter"),
    ("POST", "/balances/filter"),
    ("POST", "/transactions/filter"),
    ("POST", "/identities/filter"),
    ("POST", "/balance-monitors/filter"),
    ("POST", "/search/transactions"),
    ("POST", "/search/balances"),
    ("POST", "/search/ledgers"),
    ("POST", "/search/identities"),
    ("POST", "/multi-search"),
    ("POST", "/identities"),
    ("PUT", "/identities/{identity}"),
    ("PUT", "/balances/{balance}/identity"),
    ("POST", "/{txn}/metadata"),
    ("POST", "/{ledger}/metadata"),
    ("POST", "/balances-snapshots"),
    ("POST", "/webhooks"),
    ("POST", "/hooks"),
    ("POST", "/api-keys"),
];

/// Read routes whose query string a client writes: filters, paging, instants.
const QUERY_ROUTES: &[&str] = &[
    "/ledgers",
    "/balances",
    "/transactions",
    "/balance-monitors",
    "/identities",
    "/events",
    "/api-keys",
    "/webhooks",
    "/balances/{balance}/at",
    "/balances/{balance}/history",
    "/balance-monitors/{monitor}/events",
];

/// Query keys clients send, so random query strings hit real parsing paths.
const QUERY_KEYS: &[&str] = &[
    "limit",
    "offset",
    "page",
    "per_page",
    "order",
    "sort_by",
    "status",
    "status_eq",
    "status_in",
    "amount_gt",
    "amount_between",
    "precise_amount_lte",
    "created_at_gte",
    "created_at_lt",
    "currency_eq",
    "reference_like",
    "meta_data.tier_eq",
    "meta_data.x_in",
    "source_eq",
    "balance_id_eq",
    "timestamp",
    "from",
    "to",
    "interval",
    "include_count",
    "include",
    "fields",
    "after",
    "owner",
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
        // A word no index takes whole, and a text longer than any field wants.
        Just("w".repeat(3000)),
        Just("word ".repeat(3000)),
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
    // Bulk, filters, search, identities, webhooks, hooks, keys and snapshots.
    names.extend([
        "transactions",
        "atomic",
        "inflight",
        "run_async",
        "transaction_ids",
        "filters",
        "conditions",
        "sort_by",
        "sort_order",
        "limit",
        "offset",
        "include_count",
        "q",
        "query_by",
        "filter_by",
        "page",
        "per_page",
        "searches",
        "collection",
        "identity_type",
        "first_name",
        "email_address",
        "dob",
        "url",
        "events",
        "event_types",
        "secret",
        "headers",
        "active",
        "type",
        "timeout",
        "retry_count",
        "scopes",
        "expires_at",
        "owner",
        "balance_id",
        "timestamp",
        "dry_run",
    ]);
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
    /// The route's well-formed body (`shaped`) with these fields set to raw JSON of any shape, so
    /// a hostile value reaches the checks past the body's shape.
    Shaped(Vec<(String, String)>),
}

fn body() -> impl Strategy<Value = Body> {
    let overrides = prop::collection::vec((field(), json_text()), 1..3);
    prop_oneof![
        6 => json_text().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
        1 => (100usize..5000).prop_map(Body::Deep),
        6 => overrides.prop_map(Body::Shaped),
    ]
}

/// A body the route accepts (ids as placeholders the test fills), or `{}`.
fn shaped(route: &str) -> Value {
    let transfer = json!({"precise_amount": 1, "currency": "{currency}", "source": "@World",
        "destination": "{balance}", "reference": "hostile", "description": "card payment",
        "meta_data": {"tier": "gold"}, "skip_queue": true});
    let filters = json!({"filters": [{"field": "status", "operator": "eq", "value": "APPLIED"}], "limit": 10});
    match route {
        "/ledgers" | "/ledgers/{ledger}" => json!({"name": "hostile", "meta_data": {"k": "v"}}),
        "/balances" => json!({"ledger_id": "{ledger}", "currency": "{currency}"}),
        "/transactions" => transfer,
        "/transactions/bulk" => json!({"transactions": [transfer], "atomic": true}),
        "/transactions/inflight/{txn}" => json!({"status": "commit"}),
        "/transactions/inflight/bulk/commit" | "/transactions/inflight/bulk/void" => {
            json!({"transactions": ["{txn}"]})
        }
        "/balance-monitors" | "/balance-monitors/{monitor}" => json!({"balance_id": "{balance}",
            "condition": {"field": "debit_balance", "operator": ">", "value": 10, "precision": 100}}),
        r if r.ends_with("/filter") => filters,
        r if r.starts_with("/search/") => json!({"q": "card pay", "query_by": "description,meta_data.tier",
            "filter_by": "status:=APPLIED", "sort_by": "created_at:desc", "per_page": 5}),
        "/multi-search" => {
            json!({"searches": [{"collection": "transactions", "q": "card", "query_by": "description"}]})
        }
        "/identities" | "/identities/{identity}" => json!({"identity_type": "individual", "first_name": "Ada",
            "last_name": "Lovelace", "email_address": "ada@example.com", "dob": "1990-01-01T00:00:00Z"}),
        "/balances/{balance}/identity" => json!({"identity_id": "idt_x"}),
        r if r.ends_with("/metadata") => json!({"meta_data": {"k": "v"}}),
        "/api-keys" => json!({"name": "k", "owner": "o", "scopes": ["ledgers:read"],
            "expires_at": "2030-01-01T00:00:00Z"}),
        _ => json!({}),
    }
}

/// `route`'s shaped body as text, with `overrides` (raw JSON, kept as written: `1e400` is no
/// `serde_json` number) in place of its fields of those names.
fn shaped_text(route: &str, overrides: &[(String, String)]) -> String {
    let mut base = shaped(route).as_object().cloned().unwrap_or_default();
    for (field, _) in overrides {
        base.remove(field);
    }
    let mut pairs: Vec<String> = base.into_iter().map(|(k, v)| format!("{}:{v}", Value::from(k))).collect();
    pairs.extend(overrides.iter().map(|(k, raw)| format!("{}:{raw}", Value::from(k.as_str()))));
    format!("{{{}}}", pairs.join(","))
}

async fn state(server: &Server) -> Vec<usize> {
    let mut counts = Vec::new();
    for path in ["/ledgers", "/balances", "/transactions", "/balance-monitors", "/events"] {
        let (_, list) = server.get(&format!("{path}?limit=1000")).await;
        counts.push(list.as_array().map_or(0, Vec::len));
    }
    counts
}

/// Something real to aim at, so ids and references can also be valid: each route placeholder with
/// what it stands for.
async fn targets(server: &Server) -> Vec<(&'static str, String)> {
    let currency = unique_currency();
    let ledger = server.ledger("target").await;
    let balance = server.balance(&ledger, &currency).await;
    let (_, txn) = server.transfer("@World", &balance, 10, &currency).await;
    let condition = json!({"field": "balance", "operator": ">", "value": 0});
    let monitor = server.create("/balance-monitors", json!({"balance_id": balance, "condition": condition})).await;
    vec![
        ("{ledger}", ledger),
        ("{balance}", balance),
        ("{currency}", currency),
        ("{txn}", txn["transaction_id"].as_str().unwrap().to_string()),
        ("{monitor}", monitor["monitor_id"].as_str().unwrap().to_string()),
        ("{event}", "evt_x".into()),
        ("{identity}", "idt_x".into()),
    ]
}

#[test]
fn hostile_requests_get_4xx_error_bodies_and_change_nothing() {
    // Through the router in this process: every case is about the app, not the socket (the
    // socket's own limits are the tests below, on a real server).
    let server = Server::in_process(None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ids = runtime.block_on(targets(&server));
    let query = prop::collection::vec((prop::sample::select(QUERY_KEYS.to_vec()), text()), 0..4);
    let strategy = (
        (prop::sample::select(BODY_ROUTES.to_vec()), body()),
        (prop::sample::select(ID_ROUTES.to_vec()), text()),
        (prop::sample::select(QUERY_ROUTES.to_vec()), query),
    );
    check_property(256, strategy, |(((method, route), body), (id_route, id), (query_route, query))| {
        let (server, ids) = (&server, ids.clone());
        Box::pin(async move {
            let before = state(server).await;
            let fill = |route: &str| ids.iter().fold(route.to_string(), |path, (at, id)| path.replace(at, id));
            let path = fill(route);
            let bytes = match &body {
                Body::Json(text) => text.clone().into_bytes(),
                Body::Bytes(bytes) => bytes.clone(),
                Body::Deep(depth) => format!("{}{}", "[".repeat(*depth), "]".repeat(*depth)).into_bytes(),
                Body::Shaped(overrides) => fill(&shaped_text(route, overrides)).into_bytes(),
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
            // Query strings of every shape on the lists and the balance reads.
            let encode = |text: &str| text.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
            let pairs: Vec<String> = query.iter().map(|(key, value)| format!("{key}={}", encode(value))).collect();
            let path = format!("{}?{}", fill(query_route), pairs.join("&"));
            // (A query longer than a URI may be is no test of the server either.)
            if let Some(answer) = server.send("GET", &path, &[], Vec::new()).await {
                assert!(!answer.status.is_server_error(), "GET {path} → {} {}", answer.status, answer.body);
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
