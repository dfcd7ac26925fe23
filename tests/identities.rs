//! Blnk's identities over HTTP, on the suite's backend: create, read, replace, list and filter,
//! delete; a balance linked to one and read with it (`include=identity,ledger`, `with_queued`,
//! `from_source`); PII tokenization with the server's key, round trips, and a wrong key or none.

mod common;

use common::{unique, unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210";

async fn create_identity(server: &Server, first_name: &str) -> Value {
    server
        .create(
            "/identities",
            json!({
                "identity_type": "individual", "first_name": first_name, "last_name": "Smith",
                "email_address": format!("{}@example.com", first_name.to_lowercase()),
                "phone_number": "+2348012345678", "country": "NG", "dob": "1990-05-17",
                "category": "retail", "meta_data": {"segment": "gold"},
            }),
        )
        .await
}

fn id(value: &Value) -> String {
    value["identity_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn identities_are_created_read_replaced_listed_filtered_and_deleted() {
    let server = Server::start();
    let alice = create_identity(&server, "Alice").await;
    assert!(id(&alice).starts_with("idt_"), "{alice}");
    assert_eq!(alice["dob"], "1990-05-17T00:00:00.000000Z");
    assert_eq!((alice["first_name"].clone(), alice["gender"].clone()), (json!("Alice"), json!("")));
    let bob = create_identity(&server, "Bob").await;
    let (status, read) = server.get(&format!("/identities/{}", id(&alice))).await;
    assert_eq!((status, read.clone()), (StatusCode::OK, alice.clone()));

    let (_, listed) = server.get("/identities").await;
    let ids: Vec<String> = listed.as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [id(&bob), id(&alice)], "newest first");
    let (_, found) = server.get("/identities?first_name_eq=Bob").await;
    assert_eq!(found.as_array().unwrap().iter().map(id).collect::<Vec<_>>(), [id(&bob)]);
    let body = json!({"filters": [{"field": "email_address", "operator": "ilike", "value": "ALICE%"},
        {"field": "dob", "operator": "eq", "value": "1990-05-17"}], "include_count": true});
    let (_, found) = server.post("/identities/filter", body).await;
    assert_eq!((found["total_count"].clone(), id(&found["data"][0])), (json!(1), id(&alice)), "{found}");
    let (status, refused) = server.get("/identities?shoe_size_eq=9").await;
    assert_eq!((status, refused["errors"][0]["param"].clone()), (StatusCode::BAD_REQUEST, json!("shoe_size_eq")));

    // PUT replaces every field, as Blnk's does.
    let (status, answer) = server
        .put(&format!("/identities/{}", id(&alice)), json!({"first_name": "Alicia", "identity_type": "individual"}))
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Identity updated successfully"})));
    let (_, read) = server.get(&format!("/identities/{}", id(&alice))).await;
    assert_eq!((read["first_name"].clone(), read["last_name"].clone()), (json!("Alicia"), json!("")));
    assert_eq!(read["created_at"], alice["created_at"]);
    let (status, bad) = server.post("/identities", json!({"first_name": "X", "dob": "17/05/1990"})).await;
    assert_eq!((status, bad["error_detail"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("dob")));

    let (status, answer) = server.request("DELETE", &format!("/identities/{}", id(&bob)), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Identity deleted successfully"})));
    let (status, gone) = server.get(&format!("/identities/{}", id(&bob))).await;
    assert_eq!((status, gone["error_detail"]["code"].clone()), (StatusCode::NOT_FOUND, json!("IDT_NOT_FOUND")));
}

#[tokio::test]
async fn a_balance_belongs_to_an_identity_and_is_read_with_it() {
    let server = Server::start_with_args(&["--hold-queue"]);
    let alice = create_identity(&server, "Alice").await;
    let ledger = server.ledger("people").await;
    let currency = unique_currency();
    let balance = server.balance(&ledger, &currency).await;
    let link = |identity: String| json!({ "identity_id": identity });
    let (status, answer) = server.put(&format!("/balances/{balance}/identity"), link(id(&alice))).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Balance identity updated successfully"})));
    let (status, unknown) = server.put(&format!("/balances/{balance}/identity"), link("idt_nope".into())).await;
    assert_eq!((status, unknown["error_detail"]["code"].clone()), (StatusCode::NOT_FOUND, json!("IDT_NOT_FOUND")));
    let (status, unknown) = server.put("/balances/bln_nope/identity", link(id(&alice))).await;
    assert_eq!((status, unknown["error_detail"]["code"].clone()), (StatusCode::NOT_FOUND, json!("BAL_NOT_FOUND")));

    let (status, read) = server.get(&format!("/balances/{balance}?include=identity&include=ledger")).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(
        (read["identity_id"].clone(), read["identity"]["identity_id"].clone()),
        (json!(id(&alice)), json!(id(&alice)))
    );
    assert_eq!(read["ledger"]["ledger_id"], json!(ledger));
    let (_, by_filter) = server.get(&format!("/balances?identity_id_eq={}", id(&alice))).await;
    assert_eq!(by_filter[0]["balance_id"], json!(balance));
    let (status, refused) = server.request("DELETE", &format!("/identities/{}", id(&alice)), None).await;
    assert_eq!((status, refused["error_detail"]["code"].clone()), (StatusCode::CONFLICT, json!("GEN_CONFLICT")));

    // Queued transactions (the queue is held): what they will move, beside the balance.
    let (status, _) = server.transfer("@World", &balance, 700, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let queued = |amount: u64, source: &str, destination: &str| {
        json!({"precise_amount": amount, "currency": currency, "source": source, "destination": destination,
            "reference": unique("q"), "allow_overdraft": true})
    };
    for body in [queued(250, &balance, "@Out"), queued(40, "@World", &balance), queued(10, &balance, "@Out")] {
        let (status, created) = server.post("/transactions", body).await;
        assert_eq!((status, created["status"].clone()), (StatusCode::CREATED, json!("QUEUED")), "{created}");
    }
    let (_, read) = server.get(&format!("/balances/{balance}?with_queued=true&from_source=true")).await;
    assert_eq!((read["queued_debit_balance"].clone(), read["queued_credit_balance"].clone()), (json!(260), json!(40)));
    assert_eq!((read["balance"].clone(), read["credit_balance"].clone()), (json!(700), json!(700)), "{read}");
    let (_, plain) = server.get(&format!("/balances/{balance}")).await;
    assert!(plain.get("queued_debit_balance").is_none() && plain.get("identity").is_none(), "{plain}");
    for bad in ["include=owner", "with_queued=maybe", "colour=red"] {
        let (status, body) = server.get(&format!("/balances/{balance}?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn personal_data_is_tokenized_and_read_back_only_with_the_key() {
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &["--tokenization-secret", KEY]);
    let alice = create_identity(&server, "Alice").await;
    let path = |rest: &str| format!("/identities/{}{rest}", id(&alice));
    let (status, answer) = server.post(&path("/tokenize/email_address"), json!({})).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Field tokenized successfully"})));
    let (_, read) = server.get(&path("")).await;
    let token = read["email_address"].as_str().unwrap().to_string();
    assert!(!token.contains("alice") && !token.contains("example") && token.len() > 30, "{token}");
    assert_eq!(read["meta_data"]["tokenized_fields"], json!({"email_address": true}));
    let (status, answer) = server.post(&path("/tokenize"), json!({"fields": ["first_name", "phone_number"]})).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Fields tokenized successfully"})));
    let (_, fields) = server.get(&path("/tokenized-fields")).await;
    assert_eq!(fields, json!({"tokenized_fields": ["email_address", "first_name", "phone_number"]}));
    let (status, one) = server.get(&path("/detokenize/email_address")).await;
    assert_eq!((status, one), (StatusCode::OK, json!({"field": "email_address", "value": "alice@example.com"})));
    let (_, all) = server.post(&path("/detokenize"), json!({})).await;
    let expected =
        json!({"email_address": "alice@example.com", "first_name": "Alice", "phone_number": "+2348012345678"});
    assert_eq!(all["fields"], expected);
    let (_, some) = server.post(&path("/detokenize"), json!({"fields": ["first_name"]})).await;
    assert_eq!(some, json!({"fields": {"first_name": "Alice"}}));
    for (rest, body) in [("/tokenize/gender", json!({})), ("/tokenize", json!({"fields": ["email_address"]}))] {
        let (status, refused) = server.post(&path(rest), body).await;
        assert_eq!(
            (status, refused["error_detail"]["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("IDT_VALIDATION_ERROR"))
        );
    }
    let (status, _) = server.get(&path("/detokenize/last_name")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an untokenized field has no token to open");

    // Replacing the identity: a token sent back stays a token; a new value is plain again.
    let mut replaced = read.clone();
    replaced["phone_number"] = json!("+15550000000");
    let (status, _) = server.put(&path(""), replaced).await;
    assert_eq!(status, StatusCode::OK);
    let (_, fields) = server.get(&path("/tokenized-fields")).await;
    assert_eq!(fields, json!({"tokenized_fields": ["email_address"]}), "first_name was sent back as read (plain)");
    let (_, one) = server.get(&path("/detokenize/email_address")).await;
    assert_eq!(one["value"], "alice@example.com");

    // Another key cannot open the tokens; no key cannot tokenize at all.
    assert!(server.stop());
    let server = Server::start_on(&database.url, &["--tokenization-secret", OTHER_KEY]);
    let (status, refused) = server.get(&path("/detokenize/email_address")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("does not open"), "{refused}");
    assert!(server.stop());
    let server = Server::start_on(&database.url, &[]);
    let (status, refused) = server.post(&path("/tokenize/last_name"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("tokenization is disabled"), "{refused}");
}
