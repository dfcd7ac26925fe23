//! The SQLite page cache wrapper (`store::sqlite::page_cache`) under the writes that exercise it:
//! B-tree splits that renumber pages through the temporary number past 1 GiB (each commit's
//! truncation is then skipped), a transaction that grew the file and rolled back, and a VACUUM
//! that shrank it (those truncations must be forwarded, or stale pages past the end would be
//! served again). After each, SQLite's own integrity check passes and every row reads back as
//! written, through the writer and through a second connection.
//!
//! One test in its own binary: the wrapper can only be installed before SQLite's first use in a
//! process.

use keel::store::sqlite::page_cache::{self, Installed};
use rusqlite::{params, Connection};

/// A deterministic stream of keys scattered over the whole key space, so inserts split pages
/// everywhere in the index (as transactions' random references do).
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> String {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        format!("{:016x}", self.0.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }
}

fn value(key: &str) -> Vec<u8> {
    key.bytes().cycle().take(200 + key.len() * 7).collect()
}

fn insert(conn: &mut Connection, keys: &mut Keys, rows: usize) -> Vec<String> {
    let tx = conn.transaction().unwrap();
    let mut written = Vec::with_capacity(rows);
    for _ in 0..rows {
        let key = keys.next();
        tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![key, value(&key)]).unwrap();
        written.push(key);
    }
    tx.commit().unwrap();
    written
}

/// Every row is exactly what was written, and SQLite finds nothing wrong with the file.
fn verify(conn: &Connection, expected: &[String]) {
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(count as usize, expected.len());
    let mut read = conn.prepare("SELECT v FROM t WHERE k = ?1").unwrap();
    for key in expected.iter().step_by(7) {
        let v: Vec<u8> = read.query_row([key], |r| r.get(0)).unwrap();
        assert_eq!(v, value(key), "row {key}");
    }
}

#[test]
fn the_page_cache_skips_only_truncations_that_drop_nothing() {
    assert_eq!(page_cache::install(), Installed::Yes, "installed before SQLite's first use");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let mut writer = Connection::open(&path).unwrap();
    writer.pragma_update(None, "journal_mode", "WAL").unwrap();
    writer.pragma_update(None, "cache_size", -65_536).unwrap();
    writer.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB NOT NULL)", []).unwrap();
    let reader = Connection::open(&path).unwrap();
    let mut keys = Keys(0x9e37_79b9_7f4a_7c15);

    // Splits everywhere: the commits' truncations have nothing past the end to drop.
    let (forwarded_before, skipped_before) = page_cache::truncations();
    let mut rows = Vec::new();
    for _ in 0..150 {
        rows.extend(insert(&mut writer, &mut keys, 100));
    }
    let (forwarded, skipped) = page_cache::truncations();
    assert!(skipped - skipped_before >= 100, "commits after splits skip the scan: {skipped} skipped");
    verify(&writer, &rows);
    verify(&reader, &rows);

    // A transaction that grew the file, rolled back: its new pages must leave the cache.
    let tx = writer.transaction().unwrap();
    for _ in 0..3_000 {
        let key = keys.next();
        tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![key, value(&key)]).unwrap();
    }
    tx.rollback().unwrap();
    assert!(page_cache::truncations().0 > forwarded, "the rollback's truncation was forwarded");
    for _ in 0..20 {
        rows.extend(insert(&mut writer, &mut keys, 100));
    }
    verify(&writer, &rows);
    verify(&reader, &rows);

    // A file that shrank: pages past its new end must not come back from the cache.
    let forwarded = page_cache::truncations().0;
    writer.execute("DELETE FROM t WHERE rowid % 4 <> 0", []).unwrap();
    let kept: Vec<String> = {
        let mut all = writer.prepare("SELECT k FROM t").unwrap();
        all.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    writer.execute_batch("VACUUM").unwrap();
    assert!(page_cache::truncations().0 > forwarded, "the VACUUM's truncation was forwarded");
    rows = kept;
    for _ in 0..30 {
        rows.extend(insert(&mut writer, &mut keys, 100));
    }
    verify(&writer, &rows);
    verify(&reader, &rows);
    assert!(forwarded_before <= forwarded);
}
