//! The benchmark's NATS mode (`--nats URL`): the server publishes every event to a JetStream stream
//! of the run's own, and a plain NATS subscription on its subjects notes when each event arrived,
//! so a run reports how far behind the engine the stream is (lag from the transaction's
//! `created_at` to the arrival, p50/p99) and how long it took to catch up after the load.

use super::webhooks::{created_at, quantiles};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The stream and subjects of one benchmark run, and what arrived on them.
pub struct NatsWatcher {
    pub url: String,
    pub stream: String,
    pub prefix: String,
    arrivals: Arc<Mutex<(u64, Vec<f64>)>>,
}

impl NatsWatcher {
    /// Subscribes to the run's subjects before the server starts publishing.
    pub async fn start(url: &str) -> NatsWatcher {
        let tag = format!(
            "{}_{}",
            std::process::id(),
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
        );
        let (stream, prefix) = (format!("KEEL_BENCH_{tag}"), format!("keelbench.{tag}"));
        let client = async_nats::connect(url).await.expect("NATS is reachable (--nats)");
        let mut subscription = client.subscribe(format!("{prefix}.>")).await.expect("a subscription");
        let arrivals = Arc::new(Mutex::new((0u64, Vec::new())));
        let noted = arrivals.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some(message) = subscription.next().await {
                let now = SystemTime::now();
                let lag = created_at(&message.payload).and_then(|c| now.duration_since(c).ok());
                let mut noted = noted.lock().unwrap();
                noted.0 += 1;
                if let Some(lag) = lag {
                    noted.1.push(lag.as_secs_f64() * 1000.0);
                }
            }
        });
        NatsWatcher { url: url.into(), stream, prefix, arrivals }
    }

    /// The server's arguments that publish to this run's stream.
    pub fn server_args(&self) -> Vec<&str> {
        vec!["--nats-url", &self.url, "--nats-stream", &self.stream, "--nats-subject-prefix", &self.prefix]
    }

    /// Waits until `expected` more events than `before` arrived (at most 30 s), then prints the
    /// lag of what arrived since the last call and how long after the load the stream caught up.
    pub async fn report(&self, before: u64, expected: u64, load_ended: Instant) {
        while self.count() < before + expected && load_ended.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let caught_up = (self.count() >= before + expected).then(|| load_ended.elapsed());
        let (p50, p99) = quantiles(std::mem::take(&mut self.arrivals.lock().unwrap().1));
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
        println!(
            "{:>17} NATS stream: {} of {expected} events, lag p50 {} p99 {}, caught up {} after the load",
            "",
            self.count() - before,
            ms(p50),
            ms(p99),
            caught_up.map_or("NOT within 30 s".to_string(), |d| format!("{} ms", d.as_millis()))
        );
    }

    /// Deletes the run's stream (a run's events are of no use afterwards).
    pub async fn delete(&self) {
        if let Ok(client) = async_nats::connect(&self.url).await {
            let _ = async_nats::jetstream::new(client).delete_stream(&self.stream).await;
        }
    }

    /// Events received so far.
    pub fn count(&self) -> u64 {
        self.arrivals.lock().unwrap().0
    }
}
