//! A full disk, for real: the server's SQLite file on a small tmpfs that a filler file then fills.
//! Every write it cannot store is answered `503 GEN_UNAVAILABLE` (an operator's fault, not the
//! client's, and not a defect: never a `500`), nothing refused is stored, everything acknowledged
//! is, the books still balance, and once space is freed the same server writes again without a
//! restart. Transactions the queue applies that fall due while the disk is full are applied once
//! space is freed, by the same server.
//!
//! The same on PostgreSQL (a server of the test's own, its data directory on the tmpfs and its WAL
//! elsewhere: a full data volume is an error PostgreSQL answers, `disk_full`; a full WAL volume
//! makes PostgreSQL stop and recover, which is a restart, `tests/failover.rs`).
//!
//! Mounting a tmpfs needs root (CI runs as root); the tests fail, saying so, where they cannot.

mod common;

use common::database::postgres_url;
use common::invariants::assert_ledger_invariants;
use common::{cluster, unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted (and the directory removed) on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = std::env::temp_dir().join(unique("keel-full-disk"));
        std::fs::create_dir_all(&dir).expect("the mount point is created");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "this test mounts a {mib} MiB tmpfs on {} and needs root to do it", dir.display());
        SmallDisk { dir }
    }

    /// Bytes still free on the tmpfs.
    fn free(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.dir).output().expect("df runs");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df prints the free bytes")
    }

    /// Writes a file that leaves about `leave` bytes free, or none: the server may write between
    /// the look at what is free and the filler (CI met it), and a disk full sooner is full enough.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).expect("the filler is created");
        let chunk = vec![b'x'; 1024 * 1024];
        let mut left = self.free().saturating_sub(leave) as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            match file.write_all(&chunk[..n]) {
                Ok(()) => left -= n,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("the filler is written: {e}"),
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("keel.db").display())
}

/// Descriptions that do not compress (PostgreSQL compresses long values), about 20 KB each.
fn incompressible_description() -> String {
    (0..600).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect::<Vec<_>>().join(" ")
}

/// Fills `disk` under `server`'s transfers, then frees it, and checks what the module says.
async fn fill_then_free(server: Server, disk: &SmallDisk) {
    let currency = unique_currency();
    let ledger = server.ledger("full disk").await;
    let wallet = server.balance(&ledger, &currency).await;

    let filler = disk.fill(256 * 1024);
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let reference = unique("full");
        let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
            "reference": reference, "description": incompressible_description(), "skip_queue": true});
        let (status, answer) = server.post("/transactions", body).await;
        match status {
            StatusCode::CREATED => stored.push(reference),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["error_detail"]["code"], "GEN_UNAVAILABLE", "{answer}");
                assert!(answer["error"].as_str().unwrap().contains("disk space"), "{answer}");
                refused.push(reference);
            }
            other => panic!("a write on a full disk answered {other}: {answer}"),
        }
        if refused.len() == 10 {
            break;
        }
    }
    assert_eq!(refused.len(), 10, "the disk never filled: {} stored", stored.len());
    // Reads go on while the disk is full.
    let (status, _) = server.get(&format!("/balances/{wallet}")).await;
    assert_eq!(status, StatusCode::OK);

    std::fs::remove_file(&filler).expect("the filler is removed");
    let (status, answer) = server.transfer("@World", &wallet, 1, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "once space is freed the same server writes again: {answer}");

    for reference in &stored {
        let (status, _) = server.get(&format!("/transactions/reference/{reference}")).await;
        assert_eq!(status, StatusCode::OK, "an acknowledged transfer ({reference}) is stored");
    }
    for reference in &refused {
        let (status, _) = server.get(&format!("/transactions/reference/{reference}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a refused transfer ({reference}) is not stored");
    }
    let (_, balance) = server.get(&format!("/balances/{wallet}")).await;
    assert_eq!(balance["balance"], json!(stored.len() + 1), "{balance}");
    assert_ledger_invariants(&server, &currency).await;

    let url = server.database_url.clone();
    assert!(server.stop(), "the server stops cleanly after the disk was full");
    let (ok, printed) = common::keel(&["check", "--database", &url]);
    assert!(ok, "keel check after a full disk: {printed}");
}

/// Transactions the queue applies (here scheduled ones, which fall due while the disk is full)
/// meet a full disk: the queue waits it out (tried again after a backoff, while the server answers
/// requests) and applies them, in order, once space is freed; no restart.
#[tokio::test]
async fn the_queue_waits_out_a_full_disk_and_applies_everything_once_space_is_freed() {
    let disk = SmallDisk::mount(16);
    let server = Server::start_on(&database_url(&disk.dir), &[]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("full queue").await, &currency).await;
    let due = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + std::time::Duration::from_secs(5));
    let mut scheduled = Vec::new();
    for _ in 0..3 {
        let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
            "reference": unique("due"), "description": incompressible_description(), "scheduled_for": due.to_string()});
        let txn = server.create("/transactions", body).await;
        assert_eq!(txn["status"], "SCHEDULED", "{txn}");
        scheduled.push(txn["transaction_id"].as_str().unwrap().to_string());
    }
    // Filled until writes are refused, before they fall due.
    let filler = disk.fill(256 * 1024);
    let mut refused = 0;
    while refused < 5 {
        let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
            "reference": unique("fill"), "description": incompressible_description(), "skip_queue": true});
        let (status, answer) = server.post("/transactions", body).await;
        match status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("a write on a full disk answered {other}: {answer}"),
        }
    }
    // Past their time, and the server answers meanwhile.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (status, txn) = server.get(&format!("/transactions/{}", scheduled[0])).await;
    assert_eq!(status, StatusCode::OK, "{txn}");
    let (status, _) = server.transfer("@World", &wallet, 1, &currency).await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);

    std::fs::remove_file(&filler).expect("the filler is removed");
    for id in &scheduled {
        let txn = common::wait_for(&server, &format!("/transactions/{id}"), |t| t["status"] == "APPLIED").await;
        assert_eq!(txn["status"], "APPLIED", "{txn}");
    }
    assert_ledger_invariants(&server, &currency).await;
    let logs = server.logs();
    let waited = logs.iter().any(|l| l.contains("applying queued transactions failed") && l.contains("retry_in"));
    assert!(waited, "the queue met the full disk and waited it out: {logs:?}");
}

/// Keel cannot start on a full disk (it writes at start, and SQLite needs room for its
/// shared-memory file): the error says the disk is full, not only SQLite's "disk I/O error".
#[tokio::test]
async fn starting_on_a_full_disk_is_an_error_that_says_so() {
    let disk = SmallDisk::mount(16);
    let url = database_url(&disk.dir);
    let server = Server::start_on(&url, &[]);
    server.balance(&server.ledger("before").await, &unique_currency()).await;
    assert!(server.stop(), "a clean stop");
    let filler = disk.fill(0);
    for command in [&["serve", "--port", "0"][..], &["migrate"]] {
        let started = common::keel_within_20s(&disk.dir, &[command, &["--database", &url]].concat());
        let (ok, printed) = started.expect("keel stops at once on a full disk");
        assert!(!ok, "{command:?} on a full disk: {printed}");
        assert!(printed.contains("the disk holding it is full"), "{command:?}: {printed}");
    }
    std::fs::remove_file(&filler).expect("the filler is removed");
    let server = Server::start_on(&url, &[]);
    assert_eq!(server.get("/ledgers").await.0, StatusCode::OK, "and it starts once space is freed");
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_and_loses_or_doubles_nothing() {
    let disk = SmallDisk::mount(16);
    let server = Server::start_on(&database_url(&disk.dir), &[]);
    fill_then_free(server, &disk).await;
}

#[tokio::test]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_full_postgres_data_volume_refuses_writes_with_503_and_loses_or_doubles_nothing() {
    assert!(postgres_url().is_some(), "the PostgreSQL suite's test: set KEEL_TEST_POSTGRES_URL");
    let disk = SmallDisk::mount(96);
    cluster::give_to_postgres(&disk.dir);
    let wal = tempfile::Builder::new().prefix("keel-full-disk-wal-").tempdir().expect("a WAL directory");
    cluster::give_to_postgres(wal.path());
    let wal_dir = wal.path().join("wal");
    let postgres = cluster::Lone::start(&disk.dir.join("data"), &wal_dir);
    let server = Server::start_on(&postgres.node.url(), &[]);
    fill_then_free(server, &disk).await;
}

#[tokio::test]
async fn a_backup_onto_a_full_disk_fails_saying_so_and_leaves_nothing_behind() {
    let database = common::TestDatabase::sqlite();
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("backup").await, &currency).await;
    for _ in 0..100 {
        let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
            "reference": unique("b"), "description": incompressible_description(), "skip_queue": true});
        assert_eq!(server.post("/transactions", body).await.0, StatusCode::CREATED);
    }
    let disk = SmallDisk::mount(1); // the ledger is about 2 MiB
    let target = disk.dir.join("keel-backup.db");
    let (ok, printed) = common::keel(&["backup", "--database", &database.url, "--to", target.to_str().unwrap()]);
    assert!(!ok && printed.contains("full"), "{printed}");
    let left: Vec<_> = std::fs::read_dir(&disk.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "nothing is left to be mistaken for a backup: {left:?}");
}
