//! Upgrades of an existing SQLite file: what an older schema stored reads the same after Keel
//! migrates it. The older schema is built from the project's own migration files, as a file
//! written by an earlier release holds it.

use keel::domain::velocity::CheckpointLog;
use keel::store::Access;
use rusqlite::{params, Connection};

/// A SQLite file at schema `through` (migrations 1 to `through`, applied as Keel applied them).
fn file_at_schema(path: &std::path::Path, through: u32) -> Connection {
    let file = Connection::open(path).expect("a new SQLite file");
    file.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .expect("the migrations table");
    let mut migrations: Vec<_> = std::fs::read_dir("migrations/sqlite")
        .expect("the SQLite migrations")
        .map(|entry| entry.expect("a migration file").path())
        .collect();
    migrations.sort();
    for migration in migrations {
        let name = migration.file_stem().and_then(|s| s.to_str()).expect("a migration's name").to_string();
        let version: u32 = name[..4].parse().expect("a migration's number");
        if version > through {
            continue;
        }
        file.execute_batch(&std::fs::read_to_string(&migration).expect("a migration's SQL")).expect("it applies");
        file.execute("INSERT INTO schema_migrations VALUES (?1, ?2, '2026-12-01T00:00:00Z')", params![version, name])
            .expect("recorded");
    }
    file
}

fn log(text: &str) -> CheckpointLog {
    CheckpointLog::parse(text).expect("a valid checkpoint log")
}

#[test]
fn checkpoint_chunks_stored_before_they_were_appended_read_the_same_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("keel.db");
    let old = ["1733000000000,100,0,1;40,123456789012345678901234567890,0,3", "1733000000100,5,0,6;10,1,0,3"];
    {
        let file = file_at_schema(&path, 7);
        file.execute(
            "INSERT INTO checkpoint_chunks (balance_id, version, entries)
             VALUES ('bln_a', 4, ?1), ('bln_a', 9, ?2), ('bln_b', 3, '1,2,3,3')",
            params![old[0], old[1]],
        )
        .expect("chunks as schema 7 stored them");
    }
    let store =
        keel::store::open(&format!("sqlite://{}", path.display()), 1, Access::Own, &[]).expect("Keel upgrades it");
    store
        .write(&mut |w| {
            let chunk = |w: &mut dyn keel::store::Writes, after| w.checkpoint_chunk_after("bln_a", after);
            assert_eq!(chunk(w, 0)?, Some(log(old[0])), "the first chunk after version 0");
            assert_eq!(chunk(w, 4)?, Some(log(old[1])));
            assert_eq!(chunk(w, 9)?, None, "nothing after the last one");
            assert_eq!(w.checkpoint_chunk_after("bln_b", 0)?, Some(log("1,2,3,3")), "another balance's");
            let newer = log("1733000000200,7,1,10;5,1,0,2");
            w.save_checkpoint_chunk("bln_a", &newer)?;
            assert_eq!(chunk(w, 9)?, Some(newer.clone()), "a chunk stored after the upgrade follows them");
            w.prune_checkpoint_chunks("bln_a", 9)?;
            assert_eq!(chunk(w, 0)?, Some(newer.clone()), "the two behind every window are gone");
            assert_eq!(w.checkpoint_chunk_after("bln_b", 0)?, Some(log("1,2,3,3")), "not another balance's");
            Ok(())
        })
        .expect("the upgraded file reads and writes");
}
