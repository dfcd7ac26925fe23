//! A TCP proxy in front of the real PostgreSQL that can lose the answer to a COMMIT: it forwards
//! the COMMIT (so the database commits), then swallows the answer and closes the connection, as
//! a network fault or a failover after the commit record was written does. The client cannot
//! tell whether its transaction committed.
//!
//! It reads PostgreSQL's wire protocol just enough for that: the start-up message, then framed
//! messages (a type byte and a length). It notes which prepared statements write the
//! `transactions` table (from `Parse`), which of them each transaction runs (from `Bind`), and
//! arms only on the COMMIT (a simple `Query`) of a transaction that ran one, so the webhook
//! dispatcher's own commits are left alone. It can also hold such a COMMIT back for a while
//! before forwarding it (a slow commit: what another process's batch sees meanwhile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct PgProxy {
    pub port: u16,
    /// COMMIT answers still to lose.
    armed: Arc<AtomicUsize>,
    /// COMMIT answers lost so far.
    lost: Arc<AtomicUsize>,
    /// COMMITs still to hold back, and for how many milliseconds.
    delays: Arc<Delays>,
    task: tokio::task::JoinHandle<()>,
}

impl PgProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: String) -> PgProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("the proxy binds");
        let port = listener.local_addr().unwrap().port();
        let (armed, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let delays = Arc::new(Delays::default());
        let (a, l, d) = (armed.clone(), lost.clone(), delays.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, armed, lost, delays) = (upstream.clone(), a.clone(), l.clone(), d.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, armed, lost, delays).await;
                    }
                });
            }
        });
        PgProxy { port, armed, lost, delays, task }
    }

    /// `url` (a `postgres://user@host:port/db` URL) pointed at this proxy instead.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("a URL with user@host");
        let path = rest.split_once('/').map_or("", |(_, path)| path);
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }

    /// Lose the answers to the next `n` COMMITs of transactions that wrote `transactions` rows.
    pub fn lose_next_commit_answers(&self, n: usize) {
        self.armed.fetch_add(n, Ordering::SeqCst);
    }

    /// Hold back the next `n` COMMITs of transactions that wrote `transactions` rows for `delay`
    /// each before forwarding them.
    pub fn delay_next_commits(&self, n: usize, delay: std::time::Duration) {
        self.delays.millis.store(delay.as_millis() as u64, Ordering::SeqCst);
        self.delays.remaining.fetch_add(n, Ordering::SeqCst);
    }

    /// How many COMMIT answers were lost (each after the database had answered it).
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// COMMITs to hold back (`PgProxy::delay_next_commits`).
#[derive(Default)]
struct Delays {
    remaining: AtomicUsize,
    millis: AtomicU64,
}

/// What a connection's client side has told the database so far.
#[derive(Default)]
struct Session {
    /// Prepared statement name → whether it writes the `transactions` table.
    writes_transactions: HashMap<Vec<u8>, bool>,
    /// The open transaction ran such a statement.
    wrote_transactions: bool,
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    delays: Arc<Delays>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set just before a COMMIT is forwarded whose answer must be lost.
    let swallow = Arc::new(AtomicBool::new(false));
    let to_server = {
        let swallow = swallow.clone();
        tokio::spawn(async move {
            let _ = forward_client(&mut client_read, &mut server_write, &armed, &swallow, &delays).await;
        })
    };
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if swallow.load(Ordering::SeqCst) {
            // The COMMIT's answer arrived, so the database committed: lose it and cut both ends.
            lost.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    to_server.abort();
    let _ = client_write.shutdown().await;
}

/// Copies the client's messages to the server one whole message at a time, watching for the
/// COMMIT to arm on.
async fn forward_client(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    armed: &AtomicUsize,
    swallow: &AtomicBool,
    delays: &Delays,
) -> std::io::Result<()> {
    // Start-up: untyped messages (an SSL or GSS request may come first, answered by one byte).
    loop {
        let length = from.read_u32().await?;
        let mut body = vec![0u8; length as usize - 4];
        from.read_exact(&mut body).await?;
        to.write_u32(length).await?;
        to.write_all(&body).await?;
        let code = u32::from_be_bytes(body[..4].try_into().unwrap());
        if code != 80877103 && code != 80877104 {
            break; // the start-up message proper
        }
    }
    let mut session = Session::default();
    loop {
        let kind = from.read_u8().await?;
        let length = from.read_u32().await?;
        let mut body = vec![0u8; length as usize - 4];
        from.read_exact(&mut body).await?;
        match kind {
            b'P' => {
                // Parse: statement name, query text.
                let mut parts = body.split(|b| *b == 0);
                let name = parts.next().unwrap_or_default().to_vec();
                let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_ascii_uppercase();
                let writes = query.contains("INSERT INTO TRANSACTIONS") || query.contains("UPDATE TRANSACTIONS");
                session.writes_transactions.insert(name, writes);
            }
            b'B' => {
                // Bind: portal name, statement name.
                let mut parts = body.split(|b| *b == 0);
                let _portal = parts.next();
                let statement = parts.next().unwrap_or_default();
                if session.writes_transactions.get(statement).copied().unwrap_or(false) {
                    session.wrote_transactions = true;
                }
            }
            b'Q' => {
                let query = String::from_utf8_lossy(&body).trim_end_matches('\0').trim().to_ascii_uppercase();
                if query == "COMMIT" {
                    let lose = session.wrote_transactions
                        && armed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    if lose {
                        swallow.store(true, Ordering::SeqCst);
                    }
                    let hold = session.wrote_transactions
                        && delays
                            .remaining
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    if hold {
                        let millis = delays.millis.load(Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
                    }
                }
                if matches!(query.as_str(), "BEGIN" | "COMMIT" | "ROLLBACK") {
                    session.wrote_transactions = false;
                }
            }
            _ => {}
        }
        to.write_u8(kind).await?;
        to.write_u32(length).await?;
        to.write_all(&body).await?;
    }
}
