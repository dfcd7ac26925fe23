//! Command line and environment. Every flag can also be set by its `KEEL_*` variable; a flag wins.

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;

#[derive(Parser, Debug)]
#[command(
    name = "keel",
    version,
    about = "A double-entry ledger server with balance monitors, speaking Blnk's HTTP API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Start the HTTP server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Where the ledger is stored: `sqlite://PATH` (created if missing).
    #[arg(long, env = "KEEL_DATABASE_URL", default_value = "sqlite://keel.db")]
    pub database: String,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TCP port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "KEEL_PORT", default_value_t = 5001)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "KEEL_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Require this key in the `X-Blnk-Key` header of every request but `GET /health`.
    /// Without it, the API is open (and the server logs a warning).
    #[arg(long, env = "KEEL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// URL that receives every webhook event (used by balance monitors).
    #[arg(long, env = "KEEL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Secret that signs webhook bodies (HMAC-SHA256).
    #[arg(long, env = "KEEL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Most requests the engine applies in one database transaction (group commit).
    #[arg(long, env = "KEEL_MAX_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_batch: u16,

    /// Accept QUEUED transactions but do not apply them until a server runs without this flag
    /// (maintenance, and tests of the durable queue).
    #[arg(long, env = "KEEL_HOLD_QUEUE")]
    pub hold_queue: bool,
}
