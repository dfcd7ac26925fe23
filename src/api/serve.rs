//! The HTTP server loop: accepts connections and serves the router on each, with the two limits
//! `axum::serve` does not set. A request's head must arrive within `header_read_timeout` (axum's
//! own loop gives hyper no timer, so half a request's headers held a connection open for as long
//! as the client liked), and after the shutdown signal, connections still open when
//! `shutdown_timeout` runs out are closed instead of keeping the process alive.

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tower::ServiceExt;

/// How long a client may take, before and after the shutdown signal.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's first byte (or the end of its previous request) to the end of the next
    /// request's head. Also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// After the shutdown signal, the longest wait for open connections to finish their requests.
    pub shutdown_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets every open
/// connection finish the request it is on (idle ones close at once) for at most
/// `limits.shutdown_timeout`. Connections still open then keep their tasks on the runtime: the
/// caller closes them by shutting the runtime down.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine, so wait a moment rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(
            app.clone().map_request(|request: axum::http::Request<Incoming>| request.map(axum::body::Body::new)),
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client that went away or timed out reading its headers: nothing to answer.
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish their requests");
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(
                timeout_ms = limits.shutdown_timeout.as_millis() as u64,
                "connections still open after the shutdown timeout are being closed"
            );
        }
    }
}
