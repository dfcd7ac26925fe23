//! Start-up and tools that must either work or say why, changing nothing: a SQLite URL naming no
//! file or an in-memory database, `keel check` on a file that does not exist or is not a Keel
//! database, and a port already in use are each a clear error, with no panic, no listener and no
//! database file left behind.

mod common;

use common::{keel_within_20s, TestDatabase};

/// Runs `keel` in `dir`; a process still running after 20 s (a server that started) fails the test.
fn keel_in(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    keel_within_20s(dir, args)
        .unwrap_or_else(|| panic!("keel {args:?} was still running after 20 s instead of failing"))
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn sqlite_urls_without_a_file_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in [
        ("sqlite://", "names no file"),
        ("sqlite:", "names no file"),
        ("sqlite://:memory:", "in-memory"),
        ("sqlite::memory:", "in-memory"),
        ("sqlite://file::memory:?cache=shared", "in-memory"),
        ("sqlite://keel.db?mode=memory", "in-memory"),
    ] {
        for command in ["serve", "migrate", "check"] {
            let mut args = vec![command, "--database", url];
            if command == "serve" {
                args.extend(["--bind", "127.0.0.1", "--port", "0"]);
            }
            let (ok, log) = keel_in(dir.path(), &args);
            assert!(!ok, "keel {command} --database {url} must fail: {log}");
            assert!(log.contains(says), "keel {command} --database {url}: expected {says:?} in {log}");
            assert!(!log.contains("listening on") && !log.contains("panicked"), "{log}");
        }
    }
    assert!(files_in(dir.path()).is_empty(), "nothing was created: {:?}", files_in(dir.path()));
}

#[test]
fn check_and_redeliver_never_create_or_migrate_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check", "--database", "sqlite://typo.db"][..],
        &["webhooks", "redeliver", "--failed", "--database", "sqlite://typo.db"][..],
    ] {
        let (ok, log) = keel_in(dir.path(), args);
        assert!(!ok, "{args:?} on a missing file fails: {log}");
        assert!(log.contains("no Keel database") && log.contains("typo.db"), "{args:?}: {log}");
        assert!(!log.contains("every invariant holds"), "{log}");
    }
    assert!(files_in(dir.path()).is_empty(), "no file was created: {:?}", files_in(dir.path()));

    // A SQLite file that is not a Keel database is named as such and left as it was.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    let before = std::fs::read(&other).unwrap();
    let (ok, log) = keel_in(dir.path(), &["check", "--database", "sqlite://other.db"]);
    assert!(!ok && log.contains("not a Keel database"), "{log}");
    assert_eq!(std::fs::read(&other).unwrap(), before, "the file is unchanged");
    assert_eq!(files_in(dir.path()), ["other.db"], "no -wal or -shm either");
}

#[test]
fn a_port_in_use_is_a_clean_error_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (ok, log) =
        keel_in(dir.path(), &["serve", "--bind", "127.0.0.1", "--port", &port, "--database", "sqlite://keel.db"]);
    assert!(!ok, "{log}");
    assert!(log.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("panicked") && !log.contains("panic"), "no panic after the clean error: {log}");
    assert!(files_in(dir.path()).is_empty(), "no database was created: {:?}", files_in(dir.path()));
    drop(taken);
}

#[test]
fn several_engine_workers_on_sqlite_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--port", "0", "--database", "sqlite://keel.db", "--engine-workers", "2"];
    let (ok, log) = keel_in(dir.path(), &args);
    assert!(!ok, "{log}");
    assert!(log.contains("--engine-workers above 1 needs PostgreSQL"), "{log}");
    assert!(files_in(dir.path()).is_empty(), "no database was created: {:?}", files_in(dir.path()));
    let (ok, log) =
        keel_in(dir.path(), &["serve", "--port", "0", "--database", "sqlite://keel.db", "--engine-workers", "0"]);
    assert!(!ok && log.contains("--engine-workers"), "zero workers is a usage error: {log}");
}

#[test]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
fn check_on_a_postgresql_database_without_keel_refuses_and_creates_nothing() {
    let empty = TestDatabase::empty_postgres().expect("the PostgreSQL suite needs KEEL_TEST_POSTGRES_URL");
    let dir = tempfile::tempdir().unwrap();
    let (ok, log) = keel_in(dir.path(), &["check", "--database", &empty.url]);
    assert!(!ok && log.contains("not a Keel database"), "{log}");
    let url = empty.url.clone();
    let tables: i64 = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[]).unwrap().get(0)
    })
    .join()
    .unwrap();
    assert_eq!(tables, 0, "keel check created no table");
}
