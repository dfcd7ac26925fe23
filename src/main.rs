//! `keel`: parses the command line, wires the parts together, and nothing else.

use clap::{CommandFactory, FromArgMatches};
use keel::config::{BackupArgs, Cli, Commands, DatabaseArgs, RestoreArgs, ServeArgs, WebhooksCommand};
use keel::engine::{self, EngineConfig};
use keel::store::Access;
use keel::webhooks::{self, retry::RetryPolicy, WebhookConfig};
use keel::{api, config_file, store, telemetry};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc, not glibc's malloc: the HTTP workers and the engine allocate and free many small,
/// short-lived buffers, and glibc's free and consolidation were a seventh of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let file = match config_file::load(&args) {
        Ok(file) => file,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let matches = Cli::command().try_get_matches().unwrap_or_else(|error| {
        // A bad value from the file reaches clap through its variable: say which keys the file set.
        if let (Some((path, applied)), true) = (&file, error.use_stderr()) {
            let keys: Vec<String> = config_file::known_keys()
                .into_iter()
                .filter(|(_, variable)| applied.contains(variable))
                .map(|(key, _)| key)
                .collect();
            eprintln!("note: {} set {}", path.display(), keys.join(", "));
        }
        error.exit()
    });
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    telemetry::init_logging(cli.log_format);
    let result = match cli.command {
        Commands::Serve(args) => serve(args),
        Commands::Migrate(args) => store::open(&args.database, args.db_pool_size, Access::Own, &[]).map(|s| {
            tracing::info!("migrations applied to {}", s.describe());
        }),
        Commands::Check(args) => check(args),
        Commands::Backup(args) => back_up(args),
        Commands::Restore(args) => restore(args),
        Commands::Openapi => api::openapi().to_pretty_json().map(|doc| println!("{doc}")).map_err(|e| e.to_string()),
        Commands::Config(_) => {
            print!("{}", config_file::effective(&matches, file.as_ref()));
            Ok(())
        }
        Commands::Webhooks { command: WebhooksCommand::Redeliver { failed: _, database } } => {
            redeliver_failed(database)
        }
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    };
    telemetry::flush_logs();
    code
}

/// What a newcomer must know about how this server is set up: auth, and where webhooks go.
fn log_settings(args: &ServeArgs) {
    match &args.api_key {
        Some(_) => tracing::info!("auth is on: requests need the X-Blnk-Key header"),
        None => {
            tracing::warn!("auth is OFF: no API key configured (set KEEL_API_KEY or --api-key)")
        }
    }
    match &args.webhook_url {
        Some(url) => {
            let signed = if args.webhook_secret.is_some() { "signed" } else { "unsigned" };
            tracing::info!("webhooks go to {url} ({signed}), and to monitors' own call_back_url");
        }
        None => tracing::info!("no KEEL_WEBHOOK_URL: only monitors with a call_back_url send webhooks"),
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    // The port first: a port in use is an error before any database is opened or created.
    let listener = std::net::TcpListener::bind((args.bind, args.port))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.bind, args.port))?;
    if args.engine_workers.is_some_and(|n| n > 1) && args.database.database.starts_with("sqlite:") {
        return Err("--engine-workers above 1 needs PostgreSQL: a SQLite database has one writer".into());
    }
    let store = store::open(&args.database.database, args.database.db_pool_size, Access::Own, &args.database_replica)?;
    tracing::info!("data lives in {}", store.describe());
    log_settings(&args);
    let nats = nats_config(&args)?;
    let amqp = amqp_config(&args)?;
    let events_written = Arc::new(tokio::sync::Notify::new());
    let endpoints_exist = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let endpoints_changed = Arc::new(tokio::sync::Notify::new());
    let webhook_config = webhook_config(&args);
    let config = engine_config(&args, store.sole_writer(), &endpoints_exist, &events_written);
    if args.hold_queue {
        tracing::warn!("queue is held: QUEUED transactions are stored but not applied");
    }
    let (engine, engine_thread) = engine::start(store.clone(), config);
    let scheduler_engine = engine.clone();
    let events_committed = engine.events_committed();
    let metrics = Some(telemetry::install_metrics()?);
    let request_timeout = Duration::from_millis(args.request_timeout_ms);
    let app = api::router(api::AppState::new(api::Shared {
        engine,
        store: store.clone(),
        api_key: args.api_key.clone(),
        request_timeout,
        callback_hosts: args.callback_allowed_hosts.clone(),
        metrics,
        endpoints_changed: endpoints_changed.clone(),
        token_key: args.tokenization_secret.clone(),
    }));
    let limits = api::serve::Limits {
        header_read_timeout: request_timeout,
        shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
    };

    // The last reference to the store is dropped here, after the runtime: closing a PostgreSQL
    // connection blocks, which must not happen on one of the runtime's threads.
    let store_outlives_runtime = store.clone();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("cannot listen: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        keel::scheduler::spawn(store.clone(), scheduler_engine, Duration::from_secs(1));
        keel::search::spawn(store.clone());
        spawn_streams(nats, amqp, &store, events_committed.clone());
        let endpoint_config = Arc::new(webhook_config.clone());
        let active = webhooks::endpoints::spawn(
            store.clone(),
            endpoint_config.clone(),
            events_committed,
            (endpoints_exist, endpoints_changed),
        );
        webhooks::system_error::spawn(endpoint_config, active);
        webhooks::spawn(store, webhook_config, events_written);
        tracing::info!("listening on {address}");
        api::serve::serve(listener, app, limits, shutdown_signal()).await;
        Ok::<_, String>(())
    });
    // Connections left open past the shutdown timeout, and the dispatcher, end with the runtime.
    // Every engine handle goes with them, so the engine finishes its batch and stops.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    engine_thread.join().map_err(|_| "the engine thread panicked".to_string())?;
    drop(store_outlives_runtime);
    tracing::info!("stopped");
    Ok(())
}

/// The engine's settings from the server's options.
fn engine_config(
    args: &ServeArgs,
    sole_writer: bool,
    endpoints_exist: &Arc<std::sync::atomic::AtomicBool>,
    events_written: &Arc<tokio::sync::Notify>,
) -> EngineConfig {
    EngineConfig {
        max_batch: args.max_batch as usize,
        workers: args.engine_workers.map_or(engine::default_workers(sole_writer), usize::from),
        apply_queue: !args.hold_queue,
        webhook_url_configured: args.webhook_url.is_some(),
        record_every_event: args.event_feed || args.nats_url.is_some() || args.amqp_url.is_some(),
        endpoints_exist: endpoints_exist.clone(),
        events_written: Some(events_written.clone()),
        clock: engine::Clock::system(),
        // Leaked once: the key lives as long as the process, and rides in every batch's settings.
        token_key: args.tokenization_secret.clone().map(|key| &*Box::leak(Box::new(key))),
    }
}

/// Where and how webhooks are delivered, from the options.
fn webhook_config(args: &ServeArgs) -> WebhookConfig {
    WebhookConfig {
        default_url: args.webhook_url.clone(),
        secret: args.webhook_secret.clone(),
        headers: args.webhook_headers.clone().unwrap_or_default(),
        hook_secret: args.api_key.clone(),
        retry: RetryPolicy {
            max_attempts: args.webhook_max_attempts,
            base: Duration::from_millis(args.webhook_retry_base_ms),
            cap: Duration::from_millis(args.webhook_retry_max_ms),
        },
        timeout: Duration::from_millis(args.webhook_timeout_ms),
        concurrency: args.webhook_concurrency as usize,
        poll: Duration::from_millis(250),
        callback_hosts: args.callback_allowed_hosts.clone(),
    }
}

/// Starts the configured broker streams on the current runtime.
fn spawn_streams(
    nats: Option<keel::streams::nats::NatsConfig>,
    amqp: Option<keel::streams::amqp::AmqpConfig>,
    store: &Arc<dyn keel::store::Store>,
    committed: tokio::sync::watch::Receiver<u64>,
) {
    if let Some(nats) = nats {
        let nats = keel::streams::nats::Nats::new(nats);
        keel::streams::spawn(nats.cursor_name(), nats, store.clone(), committed.clone());
    }
    if let Some(amqp) = amqp {
        let amqp = keel::streams::amqp::Amqp::new(amqp);
        keel::streams::spawn(amqp.cursor_name(), amqp, store.clone(), committed);
    }
}

/// `--nats-url` and its stream's names, checked: NATS refuses a stream name or subject with a
/// separator, wildcard or white space where it does not belong.
fn nats_config(args: &ServeArgs) -> Result<Option<keel::streams::nats::NatsConfig>, String> {
    let Some(url) = &args.nats_url else { return Ok(None) };
    let bad = |c: char| c.is_whitespace() || matches!(c, '*' | '>');
    if args.nats_stream.is_empty() || args.nats_stream.contains(|c: char| bad(c) || c == '.') {
        return Err(format!("--nats-stream {:?} is not a JetStream stream name", args.nats_stream));
    }
    let prefix = &args.nats_subject_prefix;
    if prefix.split('.').any(|token| token.is_empty() || token.contains(bad)) {
        return Err(format!("--nats-subject-prefix {prefix:?} is not a NATS subject without wildcards"));
    }
    Ok(Some(keel::streams::nats::NatsConfig {
        url: url.clone(),
        stream: args.nats_stream.clone(),
        subject_prefix: prefix.clone(),
    }))
}

/// `--amqp-url` and its exchange, checked.
fn amqp_config(args: &ServeArgs) -> Result<Option<keel::streams::amqp::AmqpConfig>, String> {
    let Some(url) = &args.amqp_url else { return Ok(None) };
    if args.amqp_exchange.is_empty()
        || args.amqp_exchange.len() > 255
        || args.amqp_exchange.contains(char::is_whitespace)
    {
        return Err(format!("--amqp-exchange {:?} is not an AMQP exchange name", args.amqp_exchange));
    }
    Ok(Some(keel::streams::amqp::AmqpConfig { url: url.clone(), exchange: args.amqp_exchange.clone() }))
}

fn check(args: DatabaseArgs) -> Result<(), String> {
    let store = store::open(&args.database, args.db_pool_size, Access::Existing, &[])?;
    tracing::info!("checking {}", store.describe());
    let report = keel::check::run(store.as_ref(), &mut |line| tracing::info!("{line}"))
        .map_err(|e| format!("check failed: {e}"))?;
    for problem in &report.problems {
        tracing::error!("{problem}");
    }
    let summary = format!(
        "{} transactions replayed, {} balances checked, {} snapshots checked",
        report.transactions, report.balances, report.snapshots
    );
    if report.problems.is_empty() {
        tracing::info!("{summary}: every invariant holds");
        Ok(())
    } else {
        Err(format!("{summary}: {} problems", report.problems.len()))
    }
}

fn back_up(args: BackupArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let backup = store::back_up(&args.database.database, &args.to)?;
    tracing::info!(
        "backed up {} to {}: {} transactions (the newest at {}), {} balances, {} bytes, in {:.1} s",
        args.database.database,
        args.to.display(),
        backup.transactions,
        backup.latest.as_deref().unwrap_or("-"),
        backup.balances,
        backup.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn restore(args: RestoreArgs) -> Result<(), String> {
    let restored = store::restore(&args.database.database, &args.from)?;
    if let Some(kept) = &restored.kept {
        tracing::info!("the ledger {} held is kept at {}", args.database.database, kept.display());
    }
    tracing::info!(
        "restored {} from {}: {} transactions (the newest at {}), {} balances; start the server, then run keel check",
        args.database.database,
        args.from.display(),
        restored.holds.transactions,
        restored.holds.latest.as_deref().unwrap_or("-"),
        restored.holds.balances,
    );
    Ok(())
}

fn redeliver_failed(args: DatabaseArgs) -> Result<(), String> {
    let store = store::open(&args.database, args.db_pool_size, Access::Existing, &[])?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut count = 0;
    store
        .write(&mut |w| {
            count = w.redeliver_failed(now)?;
            Ok(())
        })
        .map_err(|e| format!("cannot requeue failed events: {e}"))?;
    tracing::info!("{count} failed events are pending again; a running server delivers them");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
