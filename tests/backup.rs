//! `keel backup` of a SQLite ledger while its server writes: the copy holds every transfer
//! acknowledged before the backup began and nothing that was not acknowledged, its invariants hold
//! (`keel check`), and a server started on it serves and takes writes. A backup never replaces a
//! file and never leaves a half-written one; a PostgreSQL URL is pointed at PostgreSQL's own tools.

mod common;

use common::{keel, parties, Server, TestDatabase};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every transaction id in the SQLite file at `path`, read as any SQLite client would.
fn stored_ids(path: &std::path::Path) -> HashSet<String> {
    let file = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = file.prepare("SELECT transaction_id FROM transactions").unwrap();
    let ids = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_backup_taken_under_load_holds_every_acknowledged_transfer_and_checks_clean() {
    let database = TestDatabase::sqlite();
    let server = Arc::new(Server::start_on(&database.url, &[]));
    let (currency, wallets) = parties(&server, 6).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (server, acknowledged, stop) = (server.clone(), acknowledged.clone(), stop.clone());
        let (wallets, currency) = (wallets.clone(), currency.clone());
        clients.push(tokio::spawn(async move {
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let (status, txn) = server.transfer("@World", &wallets[1 + i % 6], 1 + i as u64, &currency).await;
                assert_eq!(status, StatusCode::CREATED, "{txn}");
                let id = txn["transaction_id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push((Instant::now(), id));
                i += 4;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keel-backup.db");
    let began = Instant::now();
    let args = ["backup", "--database", database.url.as_str(), "--to", target.to_str().unwrap()].map(String::from);
    let (ok, log) = tokio::task::spawn_blocking(move || keel(&args.each_ref().map(String::as_str))).await.unwrap();
    assert!(ok, "{log}");
    assert!(log.contains("backed up") && log.contains("transactions"), "{log}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> = acknowledged.iter().filter(|(at, _)| *at < began).map(|(_, id)| id).collect();
    let every: HashSet<&String> = acknowledged.iter().map(|(_, id)| id).collect();
    assert!(before.len() >= 20, "the load ran before the backup: {}", before.len());
    let copied = stored_ids(&target);
    for id in &before {
        assert!(copied.contains(*id), "{id} was acknowledged before the backup began, and is not in it");
    }
    assert!(copied.iter().all(|id| every.contains(id)), "the copy holds only what was acknowledged");
    assert!(copied.len() < every.len(), "the load went on after the copy was taken");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("keel-backup.db")], "no partial file left");

    // Restored: every invariant holds, and a server on it serves what it holds and takes writes.
    let restored = format!("sqlite://{}", target.display());
    let (ok, log) = keel(&["check", "--database", &restored]);
    assert!(ok, "{log}");
    let server = Server::start_on(&restored, &[]);
    let (status, txn) = server.get(&format!("/transactions/{}", before[before.len() - 1])).await;
    assert_eq!(status, StatusCode::OK, "{txn}");
    assert_eq!(server.transfer("@World", &wallets[1], 5, &currency).await.0, StatusCode::CREATED);
}

#[test]
fn a_backup_never_replaces_a_file_and_says_why_it_cannot_be_taken() {
    let database = TestDatabase::sqlite();
    drop(Server::start_on(&database.url, &[])); // a Keel database, migrated
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, "keep me").unwrap();
    let (ok, log) = keel(&["backup", "--database", &database.url, "--to", existing.to_str().unwrap()]);
    assert!(!ok && log.contains("exists: a backup never replaces a file"), "{log}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
    let target = dir.path().join("copy.db");
    let (ok, log) =
        keel(&["backup", "--database", &format!("sqlite://{}", other.display()), "--to", target.to_str().unwrap()]);
    assert!(!ok && log.contains("is not a Keel database"), "{log}");
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let (ok, log) = keel(&["backup", "--database", &missing, "--to", target.to_str().unwrap()]);
    assert!(!ok && log.contains("no such file"), "{log}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "nothing written but the test's own two files: {left:?}");

    let (ok, log) = keel(&["backup", "--database", "postgres://postgres@127.0.0.1:5432/test", "--to", "x.db"]);
    assert!(!ok && log.contains("pg_basebackup"), "{log}");
}

/// A served SQLite ledger of five transfers (15 in all) to `wallets[1]`, and a backup of it.
struct BackedUp {
    database: TestDatabase,
    /// The database file.
    path: std::path::PathBuf,
    server: Server,
    currency: String,
    wallets: Vec<String>,
    _dir: tempfile::TempDir,
    backup: std::path::PathBuf,
}

async fn backed_up() -> BackedUp {
    let database = TestDatabase::sqlite();
    let path = std::path::PathBuf::from(database.url.trim_start_matches("sqlite://"));
    let server = Server::start_on(&database.url, &[]);
    let (currency, wallets) = parties(&server, 1).await;
    for amount in 1..=5 {
        assert_eq!(server.transfer("@World", &wallets[1], amount, &currency).await.0, StatusCode::CREATED);
    }
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let (ok, log) = keel(&["backup", "--database", &database.url, "--to", backup.to_str().unwrap()]);
    assert!(ok, "{log}");
    BackedUp { database, path, server, currency, wallets, _dir: dir, backup }
}

#[tokio::test]
async fn a_restore_puts_the_ledger_back_keeps_what_it_replaced_and_is_refused_beside_a_server() {
    let BackedUp { database, path, server, currency, wallets, _dir, backup } = backed_up().await;
    let (_, later) = server.transfer("@World", &wallets[1], 100, &currency).await;
    let later = later["transaction_id"].as_str().unwrap().to_string();

    let restore = ["restore", "--database", database.url.as_str(), "--from", backup.to_str().unwrap()];
    let (ok, log) = keel(&restore);
    assert!(!ok && log.contains("another Keel process is using"), "beside a running server: {log}");
    assert_eq!(server.get(&format!("/balances/{}", wallets[1])).await.1["balance"], 115, "nothing changed");
    // Killed, not stopped: its WAL file is left beside the database, which a copy by hand would
    // have had replayed onto the backup.
    server.kill();
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map(|m| m.len()).unwrap_or(0);
    assert!(wal > 0, "the killed server left its WAL");
    let (ok, log) = keel(&restore);
    assert!(ok && log.contains("kept at"), "{log}");

    let (ok, log) = keel(&["check", "--database", &database.url]);
    assert!(ok, "{log}");
    let server = Server::start_on(&database.url, &[]);
    assert_eq!(server.get(&format!("/balances/{}", wallets[1])).await.1["balance"], 15, "as backed up");
    assert_eq!(server.get(&format!("/transactions/{later}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.transfer("@World", &wallets[1], 1, &currency).await.0, StatusCode::CREATED);
    // What it replaced is kept beside it, whole.
    let kept: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("keel.db.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(stored_ids(&kept[0]).contains(&later), "the replaced ledger is kept, with what came after the backup");
    let (ok, log) = keel(&["restore", "--database", &database.url, "--from", path.to_str().unwrap()]);
    assert!(!ok && log.contains("is the database itself"), "{log}");
    let (ok, log) = keel(&["restore", "--database", "postgres://postgres@127.0.0.1:5432/test", "--from", "x.db"]);
    assert!(!ok && log.contains("pg_restore"), "{log}");
}

#[tokio::test]
async fn a_ledger_a_restore_by_hand_got_wrong_is_put_back_by_keel_restore() {
    let BackedUp { database, path, server, currency, wallets, _dir, backup } = backed_up().await;
    for _ in 0..50 {
        assert_eq!(server.transfer("@World", &wallets[1], 100, &currency).await.0, StatusCode::CREATED);
    }
    server.kill();
    // The mistake: the backup copied over the file, the killed server's WAL left beside it.
    std::fs::copy(&backup, &path).unwrap();
    // SQLite replays the left WAL onto the copy: the file no longer reads ("malformed"), or reads
    // as the newer ledger's pages over the backup's; either way it is not the backup (both seen).
    let (ok, log) = keel(&["check", "--database", &database.url]);
    assert!(!ok || !log.contains(": 5 transactions replayed"), "a copy by hand is not a restore: {log}");

    let (ok, log) = keel(&["restore", "--database", &database.url, "--from", backup.to_str().unwrap()]);
    assert!(ok && log.contains("kept at"), "{log}");
    let (ok, log) = keel(&["check", "--database", &database.url]);
    assert!(ok, "{log}");
    let server = Server::start_on(&database.url, &[]);
    assert_eq!(server.get(&format!("/balances/{}", wallets[1])).await.1["balance"], 15, "as backed up");
}
