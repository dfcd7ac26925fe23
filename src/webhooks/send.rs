//! One HTTP delivery: a body posted to a URL, signed, with custom headers, timed. Shared by the
//! server-wide dispatcher, the endpoints' workers and the endpoints' test delivery.

use super::signing;
use crate::domain::endpoint::Headers;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where and how a delivery is sent.
pub struct Target<'a> {
    pub url: &'a str,
    /// Signs the body when set; without it only `webhook-id` is sent.
    pub secret: Option<&'a str>,
    pub headers: &'a Headers,
    /// This target's own wait for an answer, instead of the client's.
    pub timeout: Option<Duration>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Sent {
    /// RFC 3339, when the attempt started.
    pub attempted_at: String,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// Why it did not count as delivered (`None` for a 2xx).
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl Sent {
    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The HTTP client deliveries use: no redirects (a receiver cannot point Keel elsewhere), keep-alive.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with static settings")
}

/// Posts `body` as event `event_id`. The receiver's body is never read, so a huge answer costs
/// nothing.
pub async fn send(client: &reqwest::Client, target: &Target<'_>, event_id: &str, body: String) -> Sent {
    let started = Instant::now();
    let attempted_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let mut request = client.post(target.url).header("content-type", "application/json");
    if let Some(timeout) = target.timeout {
        request = request.timeout(timeout);
    }
    for (name, value) in &target.headers.0 {
        request = request.header(name.as_str(), value.as_str());
    }
    match target.secret {
        Some(secret) => {
            let timestamp = unix_ms() / 1000;
            for (name, value) in signing::headers(secret, event_id, timestamp, &body) {
                request = request.header(name, value);
            }
        }
        None => request = request.header("webhook-id", event_id),
    }
    let (status_code, error) = match request.body(body).send().await {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => (Some(response.status().as_u16()), Some(format!("receiver answered {}", response.status()))),
        Err(e) => (None, Some(describe(&e))),
    };
    Sent { attempted_at, status_code, error, duration_ms: started.elapsed().as_millis() as i64 }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

pub(super) fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
