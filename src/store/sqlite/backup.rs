//! `keel backup`: a consistent copy of a SQLite ledger, taken beside the server that writes it;
//! `keel restore`: a ledger put back from such a copy, safely.
//!
//! Why `VACUUM INTO`: it reads the database in one read transaction, so the copy holds every commit
//! before that moment and none after or in part, while the server's commits go on (WAL). SQLite's
//! online backup API would start its copy again whenever another connection commits: under load,
//! perhaps never finishing.
//!
//! The copy is written under a temporary name beside the target, flushed, checked (SQLite's
//! `quick_check`, Keel's schema) and only then linked under the target's name (a link, unlike a
//! rename, never replaces a file that appeared meanwhile), and the directory flushed: a backup that
//! stopped half way, or on a full disk, never sits under the name an operator restores from.
//!
//! A restore by hand (copying the file over `keel.db`) goes wrong in two ordinary ways: a server
//! still running writes behind it, and a WAL file left beside it (`keel.db-wal`, from a crash) is
//! replayed onto the copy, which then no longer reads ("database disk image is malformed") or
//! reads as the newer pages laid over the backup's.
//! `restore` holds the database file's owner lock throughout (so no server runs on it, as `serve`
//! takes the same lock), keeps the ledger it replaces beside it, and writes the copy through SQLite
//! itself (the online backup API, one transaction on the destination): whatever WAL the file had is
//! superseded, not mixed in, and a restore that stops half way leaves the ledger as it was.

use super::{register_amount_keys, schema_version};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What a backup holds.
#[derive(Debug)]
pub struct Backup {
    pub transactions: i64,
    pub balances: i64,
    /// `created_at` of the newest transaction in the copy.
    pub latest: Option<String>,
    /// The copy's size.
    pub bytes: u64,
}

/// Copies the Keel database at `path` to `target`, a file that must not exist yet.
pub fn back_up(path: &str, target: &Path) -> Result<Backup, String> {
    if !Path::new(path).is_file() {
        return Err(format!("there is no Keel database at {path}: no such file"));
    }
    if target.exists() {
        return Err(format!("{} exists: a backup never replaces a file; name a new one", target.display()));
    }
    let partial = PathBuf::from(format!("{}.partial", target.display()));
    // Ours alone, from a backup that stopped half way: never a backup.
    remove(&partial);
    let copied = copy(path, &partial).and_then(|version| check(&partial, version));
    let backup = match copied {
        Ok(backup) => backup,
        Err(error) => {
            remove(&partial);
            return Err(error);
        }
    };
    let linked = name(&partial, target).and_then(|()| sync_directory_of(target));
    remove(&partial);
    linked.map(|()| backup)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// What the ledger now holds.
    pub holds: Backup,
    /// Where the ledger it replaced was kept, if there was one.
    pub kept: Option<PathBuf>,
}

/// Puts the Keel database at `path` back to the backup `from`, keeping what it held as a backup
/// beside it (`<path>.before-restore-<UTC time>`). Refuses while a server uses `path`.
pub fn restore(path: &str, from: &Path) -> Result<Restored, String> {
    if !from.is_file() {
        return Err(format!("there is no backup at {}: no such file", from.display()));
    }
    let from_version = {
        let failed = |e: rusqlite::Error| format!("the backup {} does not read: {e}", from.display());
        let copy = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
        schema_version(&copy).map_err(|e| format!("the backup {} does not read: {e}", from.display()))?
    };
    let Some(version) = from_version else {
        return Err(format!("{} is not a Keel backup (it has no schema_migrations table)", from.display()));
    };
    check(from, version)?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(from, Path::new(path)) {
        return Err(format!("{} is the database itself: restore from a backup of it", from.display()));
    }
    let _owner = super::lock_for_owner(path)?;
    let kept = keep_current(path)?;
    let failed = |e: rusqlite::Error| format!("cannot restore {path}: {e}");
    let mut ledger = Connection::open(path).map_err(failed)?;
    register_amount_keys(&ledger).map_err(failed)?;
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    {
        let copy = rusqlite::backup::Backup::new(&source, &mut ledger).map_err(failed)?;
        // Every page in one step: one transaction on the destination, committed at the end.
        match copy.step(-1).map_err(failed)? {
            rusqlite::backup::StepResult::Done => {}
            other => return Err(format!("cannot restore {path}: the copy stopped ({other:?})")),
        }
    }
    // Folded into the file itself, so the file alone is the ledger again.
    ledger.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(failed)?;
    drop(ledger);
    let holds = check(Path::new(path), version)?;
    Ok(Restored { holds, kept })
}

/// Keeps the ledger at `path`, if there is one, beside it; refuses a readable file that is not a
/// Keel database (a wrong path should not be overwritten). A ledger that reads is kept as a backup;
/// one that does not (often why it is restored) as its files, copied as they are (the owner lock
/// is held, so nothing writes them): `<kept>` and `<kept>-wal`, which SQLite reads together.
fn keep_current(path: &str) -> Result<Option<PathBuf>, String> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let readable = Connection::open_with_flags(path, flags).and_then(|conn| {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(schema_version(&conn).ok().flatten())
    });
    if let Ok(None) = readable {
        return Err(format!("{path} is not a Keel database: a restore does not overwrite it"));
    }
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace([':', '-'], "");
    let kept = PathBuf::from(format!("{path}.before-restore-{stamp}"));
    match back_up(path, &kept) {
        Ok(_) => return Ok(Some(kept)),
        Err(error) => tracing::warn!("{error}; keeping the ledger's files as they are instead"),
    }
    for suffix in ["", "-wal"] {
        let file = format!("{path}{suffix}");
        if Path::new(&file).exists() {
            std::fs::copy(&file, format!("{}{suffix}", kept.display()))
                .map_err(|e| format!("cannot keep {file} before restoring: {e}"))?;
        }
    }
    Ok(Some(kept))
}

/// Removes the partial copy and what SQLite wrote beside it (a failed `VACUUM INTO` leaves its
/// rollback journal).
fn remove(partial: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
}

/// Writes the copy to `partial` and flushes it; the source's schema version.
fn copy(path: &str, partial: &Path) -> Result<i64, String> {
    let failed = |e: rusqlite::Error| format!("cannot back up {path}: {e}");
    // Without SQLITE_OPEN_CREATE: a file that vanished in between is an error, not a new database.
    let source = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(failed)?;
    source.busy_timeout(std::time::Duration::from_secs(5)).map_err(failed)?;
    // Indexes on amounts use Keel's functions; the copy's are built again through them.
    register_amount_keys(&source).map_err(failed)?;
    let Some(version) = schema_version(&source).map_err(|e| format!("cannot back up {path}: {e}"))? else {
        return Err(format!("{path} is not a Keel database (it has no schema_migrations table)"));
    };
    let into = partial.to_str().ok_or_else(|| format!("{} is not a UTF-8 path", partial.display()))?;
    source.execute("VACUUM INTO ?1", [into]).map_err(failed)?;
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("cannot flush the backup {}: {e}", partial.display()))?;
    Ok(version)
}

/// Reads the copy back: intact, at the source's schema version, and what it holds.
fn check(partial: &Path, version: i64) -> Result<Backup, String> {
    let failed = |e: rusqlite::Error| format!("the backup {} does not read back: {e}", partial.display());
    let copy = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(failed)?;
    register_amount_keys(&copy).map_err(failed)?;
    let verdict: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(failed)?;
    if verdict != "ok" {
        return Err(format!("the backup {} is damaged: {verdict}", partial.display()));
    }
    let copied_version = schema_version(&copy).map_err(|e| format!("the backup does not read back: {e}"))?;
    if copied_version != Some(version) {
        return Err(format!("the backup holds schema version {copied_version:?}, its source {version}"));
    }
    let count = |table: &str| copy.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0));
    Ok(Backup {
        transactions: count("transactions").map_err(failed)?,
        balances: count("balances").map_err(failed)?,
        latest: copy.query_row("SELECT max(created_at) FROM transactions", [], |r| r.get(0)).map_err(failed)?,
        bytes: std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0),
    })
}

/// Gives the copy the target's name, never replacing a file of that name: a hard link, or where
/// the file system has none, a rename after looking.
fn name(partial: &Path, target: &Path) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot name the backup {}: {e}", target.display());
    match std::fs::hard_link(partial, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(failed(e)),
        Err(_) if !target.exists() => std::fs::rename(partial, target).map_err(failed),
        Err(e) => Err(failed(e)),
    }
}

/// Flushes the directory holding `file`, so its new name survives a crash.
fn sync_directory_of(file: &Path) -> Result<(), String> {
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot flush the directory {}: {e}", directory.display()))
}
