//! Command line and environment. Every flag can also be set by its `KEEL_*` variable; a flag wins.

use crate::domain::endpoint::Headers;
use crate::domain::identity::TokenKey;
use crate::telemetry::LogFormat;
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

    /// Configuration file (TOML; keys are `serve`'s flags in snake case). Default: ./keel.toml if it
    /// exists. Flags override `KEEL_*` variables, which override the file.
    #[arg(long, env = "KEEL_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,

    /// Log lines as readable text or as JSON objects (each with the request id it belongs to).
    #[arg(long, env = "KEEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Start the HTTP server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the effective configuration of `serve` (same options), each value with its source;
    /// secrets masked.
    Config(ServeArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (the one served at /openapi.json).
    Openapi,
    /// Verify the ledger's invariants over the whole database; exits 1 listing every balance that
    /// does not match its transactions.
    Check(DatabaseArgs),
    /// Copy a SQLite ledger, consistently, while a server may be writing it: every transaction
    /// committed before the copy began, none after; the copy is checked before it takes its name.
    Backup(BackupArgs),
    /// Put a SQLite ledger back to a backup. Refused while a server uses the database; the ledger
    /// it held is kept beside it as a backup first.
    Restore(RestoreArgs),
    /// Webhook maintenance.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup's file: it must not exist yet (a backup never replaces a file).
    #[arg(long)]
    pub to: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup to restore (`keel backup`'s file).
    #[arg(long)]
    pub from: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Make events pending again so the dispatcher delivers them.
    Redeliver {
        /// Every event marked failed (after its last attempt).
        #[arg(long, required = true)]
        failed: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Where the ledger is stored: `sqlite://PATH` (created if missing by `serve` and `migrate`) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (several Keel processes may share it).
    #[arg(long, env = "KEEL_DATABASE_URL", default_value = "sqlite://keel.db")]
    pub database: String,

    /// Most PostgreSQL connections this process opens (ignored for SQLite).
    #[arg(long, env = "KEEL_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..))]
    pub db_pool_size: u32,
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

    /// The master key: required in the `X-Blnk-Key` header of every request but `/health`,
    /// `/openapi.json` and the pages `/docs` and `/console` (whose data needs a key), and the only
    /// key that may manage scoped keys (`/api-keys`).
    /// Without it, the API is open (and the server logs a warning).
    #[arg(long, env = "KEEL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A PostgreSQL streaming replica of `--database` that serves the reads that may lag (lists,
    /// filters, history, search); one record by id or reference is always read from the primary.
    /// Repeat it for several (in the environment: URLs separated by spaces).
    #[arg(long = "database-replica", env = "KEEL_DATABASE_REPLICA", value_delimiter = ' ', value_name = "URL")]
    pub database_replica: Vec<String>,

    /// URL that receives every webhook event (a monitor's `call_back_url` takes its events instead).
    #[arg(long, env = "KEEL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Secret that signs webhook bodies (HMAC-SHA256; Blnk's and Standard Webhooks' headers).
    #[arg(long, env = "KEEL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// The key identities' personal data is tokenized with (AES-256-GCM): 32 bytes, as Blnk's
    /// `BLNK_TOKENIZATION_SECRET`, or 64 hex digits. Without it, tokenizing is refused.
    #[arg(long, env = "KEEL_TOKENIZATION_SECRET", hide_env_values = true, value_parser = parse_token_key)]
    pub tokenization_secret: Option<TokenKey>,

    /// Headers sent with every delivery to the webhook URL, as Blnk's `BLNK_WEBHOOK_HEADERS`:
    /// `Name:value` pairs separated by commas (`Authorization:Bearer abc,X-Env:prod`).
    #[arg(long, env = "KEEL_WEBHOOK_HEADERS", hide_env_values = true, value_parser = parse_webhook_headers)]
    pub webhook_headers: Option<Headers>,

    /// Delivery attempts per event before it is marked failed (it can then be redelivered).
    #[arg(long, env = "KEEL_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_max_attempts: u32,

    /// Delay before the first retry, in milliseconds; doubles with each failure (with jitter).
    #[arg(long, env = "KEEL_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,

    /// Longest delay between two attempts, in milliseconds.
    #[arg(long, env = "KEEL_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_retry_max_ms: u64,

    /// How long a receiver may take to answer, in milliseconds.
    #[arg(long, env = "KEEL_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// Record every event even without a webhook URL (as `no_target`), for `GET /events/feed`:
    /// `transaction.*`, `ledger.created`, `balance.created` and bulk events (monitor events are
    /// always recorded).
    #[arg(long, env = "KEEL_EVENT_FEED")]
    pub event_feed: bool,

    /// NATS server to publish every event to, through JetStream (`nats://127.0.0.1:4222`); also
    /// records every event, as `--event-feed` does.
    #[arg(long, env = "KEEL_NATS_URL")]
    pub nats_url: Option<String>,

    /// The JetStream stream events go to (created if missing).
    #[arg(long, env = "KEEL_NATS_STREAM", default_value = "KEEL_EVENTS")]
    pub nats_stream: String,

    /// Subjects are `<prefix>.<event type>.<balance id>`; the stream takes `<prefix>.>`.
    #[arg(long, env = "KEEL_NATS_SUBJECT_PREFIX", default_value = "keel.events")]
    pub nats_subject_prefix: String,

    /// RabbitMQ (AMQP 0.9.1) to publish every event to (`amqp://guest:guest@127.0.0.1:5672/%2f`);
    /// also records every event, as `--event-feed` does.
    #[arg(long, env = "KEEL_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// The durable topic exchange events go to (declared if missing); routing keys are
    /// `<event type>.<balance id>`.
    #[arg(long, env = "KEEL_AMQP_EXCHANGE", default_value = "keel.events")]
    pub amqp_exchange: String,

    /// Most webhook deliveries in flight at once.
    #[arg(long, env = "KEEL_WEBHOOK_CONCURRENCY", default_value_t = 64,
        value_parser = clap::value_parser!(u16).range(1..))]
    pub webhook_concurrency: u16,

    /// Longest time to read a request's headers, and then to read its body and answer it, in
    /// milliseconds: slow headers close the connection, a slow body or answer gets 408 (a write
    /// that reached the engine may still commit: look it up by its reference).
    #[arg(long, env = "KEEL_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// After SIGTERM or Ctrl-C, the longest wait in milliseconds for open connections to finish
    /// the requests they are on; then they are closed (a write that reached the engine still
    /// commits before the process exits).
    #[arg(long, env = "KEEL_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// Only these hosts (comma-separated) may be a monitor's `call_back_url`, checked when a
    /// monitor is written and again at every delivery; unset allows any.
    #[arg(long, env = "KEEL_CALLBACK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub callback_allowed_hosts: Option<Vec<String>>,

    /// Most requests the engine applies in one database transaction (group commit).
    #[arg(long, env = "KEEL_MAX_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_batch: u16,

    /// Engine threads, each applying a batch at a time: more than one only on PostgreSQL (one
    /// batch's round trips and COMMIT then overlap the next one's work; SQLite has one writer).
    /// Default: 2 on PostgreSQL, 1 on SQLite.
    #[arg(long, env = "KEEL_ENGINE_WORKERS", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub engine_workers: Option<u8>,

    /// Accept QUEUED transactions but do not apply them until a server runs without this flag
    /// (maintenance, and tests of the durable queue).
    #[arg(long, env = "KEEL_HOLD_QUEUE")]
    pub hold_queue: bool,
}

/// `--tokenization-secret`: 32 bytes, or 64 hex digits.
fn parse_token_key(text: &str) -> Result<TokenKey, String> {
    TokenKey::from_secret(text)
}

/// `--webhook-headers`: `Name:value` pairs separated by commas, checked as an endpoint's headers.
fn parse_webhook_headers(text: &str) -> Result<Headers, String> {
    let pairs = text.split(',').filter(|pair| !pair.trim().is_empty()).map(|pair| {
        let (name, value) = pair.split_once(':').ok_or_else(|| format!("{pair:?} is not Name:value"))?;
        Ok((name.trim().to_string(), value.trim().to_string()))
    });
    Headers::parse(pairs.collect::<Result<Vec<_>, String>>()?)
}
