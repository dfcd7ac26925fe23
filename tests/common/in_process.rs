//! A Keel app in the test's own process: the real store (a SQLite file, or PostgreSQL with
//! `KEEL_TEST_POSTGRES_URL`), the real engine thread and the real router, with requests handed to
//! the router directly instead of over a socket. For tests where a subprocess adds nothing
//! (validation tables, the OpenAPI checks, hostile input); crash, restart, signal, webhook and
//! multi-process tests keep a real `keel serve` (`Server::start`).

use axum::body::Body;
use axum::http::Request;
use keel::api::{AppState, Shared};
use keel::engine::EngineConfig;
use keel::store::Access;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

/// PostgreSQL connections, as `keel serve`'s default (`--db-pool-size`).
const POOL_SIZE: u32 = 16;

/// Largest answer a test reads (the OpenAPI document is the largest).
const MOST_BYTES: usize = 64 * 1024 * 1024;

pub struct InProcess {
    /// `None` once dropped (on a thread of its own, below).
    router: Option<axum::Router>,
    engine_thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// The app `keel serve` builds (`src/main.rs`), on `database_url`, with `api_key` if given and
    /// the server's default settings; no webhook dispatcher.
    pub fn start(database_url: &str, api_key: Option<&str>) -> InProcess {
        Self::start_with_clock(database_url, api_key, keel::engine::Clock::system())
    }

    /// The same app on `clock` (a manual one, for windows that must cross their boundaries).
    pub fn start_with_clock(database_url: &str, api_key: Option<&str>, clock: keel::engine::Clock) -> InProcess {
        let url = database_url.to_string();
        // On a thread of its own: the synchronous PostgreSQL client runs its own runtime, which may
        // not start inside a test's.
        let store = std::thread::spawn(move || keel::store::open(&url, POOL_SIZE, Access::Own, &[]))
            .join()
            .expect("opening the store does not panic")
            .expect("the test database opens");
        let (engine, engine_thread) =
            keel::engine::start(store.clone(), EngineConfig { clock, ..EngineConfig::default() });
        let router = keel::api::router(AppState::new(Shared {
            engine,
            store,
            api_key: api_key.map(str::to_string),
            request_timeout: Duration::from_secs(30),
            callback_hosts: None,
            metrics: Some(metrics()),
            endpoints_changed: Default::default(),
            token_key: None,
        }));
        InProcess { router: Some(router), engine_thread: Some(engine_thread) }
    }

    /// Hands one request to the router; its answer, the body as text.
    pub async fn send(&self, request: Request<Body>) -> super::Answer {
        let router = self.router.clone().expect("the app is running");
        let response = router.oneshot(request).await.expect("the router's service never fails");
        let (status, headers) = (response.status(), response.headers().clone());
        let body = axum::body::to_bytes(response.into_body(), MOST_BYTES).await.expect("the body is read");
        super::Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // Dropping the router drops the last engine handle, so the engine finishes and stops; the
        // store goes with it. On a thread of its own, since closing a PostgreSQL connection blocks.
        let (router, engine_thread) = (self.router.take(), self.engine_thread.take());
        let _ = std::thread::spawn(move || {
            drop(router);
            if let Some(thread) = engine_thread {
                let _ = thread.join();
            }
        })
        .join();
    }
}

/// The process's one metrics recorder (a recorder is global, and each test binary may build many
/// apps), so `/metrics` renders as it does in a server.
fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| keel::telemetry::install_metrics().expect("the only recorder of this process")).clone()
}
