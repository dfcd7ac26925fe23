//! Read replicas (`--database-replica`): streaming standbys of the primary that serve the reads
//! that may lag behind the latest commits (lists, filters, history, search; `Store::read_lagging`),
//! so that those stop competing with the engine's writes for the primary. Reads that must see a
//! caller's own write (one record by id or reference, an API key) stay on the primary:
//! read-your-writes holds because they never leave it.
//!
//! A replica that cannot be reached, whose read fails (a standby cancels a query that conflicts
//! with replay, or lags behind a migration), or that trails the primary by more than `MAX_LAG`,
//! rests for `REST` and its reads go to the next one or to the primary: a replica's trouble never
//! fails a request the primary could answer, and a list is never more than `MAX_LAG` stale.

use super::{schema_version, Connection, Manager, Pool, MIGRATIONS};
use crate::store::schema_is_current;
use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a replica that failed is left alone before it is tried again.
const REST: Duration = Duration::from_secs(5);
/// How long a read waits for a replica's connection before it goes elsewhere: short, as the
/// primary can answer instead.
const CONNECT_WITHIN: Duration = Duration::from_millis(500);
/// How far behind the primary, in time, a replica may be and still serve reads.
const MAX_LAG: Duration = Duration::from_secs(5);
/// How often a replica's replay position is compared with the primary's.
const LAG_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The replicas, taken in turn.
pub(in crate::store) struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
}

struct Replica {
    pool: Pool,
    description: String,
    resting_until: Mutex<Option<Instant>>,
    lag: Mutex<Lag>,
}

/// How far behind the primary a replica is, in time: the primary's WAL position at past instants
/// (one mark per check), and whether the replica had replayed the one from `MAX_LAG` ago.
#[derive(Default)]
struct Lag {
    checked_at: Option<Instant>,
    marks: VecDeque<(Instant, i64)>,
    behind: bool,
}

/// What a replica must share with the primary to serve its reads: the same cluster (its system
/// identifier) and the same database.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) struct Origin {
    system: i64,
    database: String,
}

impl Origin {
    /// The origin of the database `client` is connected to.
    pub(in crate::store) fn of(client: &mut postgres::Client) -> Result<Origin, postgres::Error> {
        let row =
            client.query_one("SELECT system_identifier, current_database()::text FROM pg_control_system()", &[])?;
        Ok(Origin { system: row.try_get(0)?, database: row.try_get(1)? })
    }
}

impl Replicas {
    /// No replicas: every read goes to the primary.
    pub(in crate::store) fn none() -> Replicas {
        Replicas { list: Vec::new(), next: AtomicUsize::new(0) }
    }

    /// Pools for `urls`, each checked now if it answers: a replica of another cluster or database
    /// is a start-up error; one that does not answer yet, or lags behind the primary's schema, is
    /// only a warning (its reads go to the primary until it is ready).
    pub(in crate::store) fn open(urls: &[String], pool_size: u32, primary: &Origin) -> Result<Replicas, String> {
        let mut list = Vec::new();
        for url in urls {
            let mut config =
                postgres::Config::from_str(url).map_err(|e| format!("invalid PostgreSQL replica URL: {e}"))?;
            config.connect_timeout(CONNECT_WITHIN);
            let description = format!("replica {}", super::describe(&config));
            let pool = r2d2::Pool::builder()
                .max_size(pool_size)
                .min_idle(Some(0))
                .connection_timeout(CONNECT_WITHIN)
                .build_unchecked(Manager { config });
            match pool.get() {
                Ok(mut conn) => check(&mut conn, primary, &description)?,
                Err(error) => tracing::warn!(%error, "{description} does not answer yet: its reads go to the primary"),
            }
            list.push(Replica { pool, description, resting_until: Mutex::new(None), lag: Mutex::default() });
        }
        Ok(Replicas { list, next: AtomicUsize::new(0) })
    }

    /// A connection to the next replica in turn that answers and is no more than `MAX_LAG` behind
    /// `primary`; `None` if none is (or there are none).
    pub(in crate::store) fn connection(&self, primary: &Pool) -> Option<(r2d2::PooledConnection<Manager>, &str)> {
        let count = self.list.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count).map(|i| &self.list[(first + i) % count]).filter(|r| !r.resting()).find_map(|replica| {
            let mut conn = replica.pool.get().map_err(|error| replica.rest(&error.to_string())).ok()?;
            match replica.behind(&mut conn, primary) {
                Ok(false) => Some((conn, replica.description.as_str())),
                Ok(true) => {
                    replica.rest(&format!("more than {}s behind the primary", MAX_LAG.as_secs()));
                    None
                }
                Err(error) => {
                    replica.rest(&error.to_string());
                    None
                }
            }
        })
    }

    /// A read on the replica `description` failed: it rests before it is tried again.
    pub(in crate::store) fn failed(&self, description: &str, error: &str) {
        if let Some(replica) = self.list.iter().find(|r| r.description == description) {
            replica.rest(error);
        }
    }
}

impl Replica {
    /// Whether this replica has not yet replayed what the primary had written `MAX_LAG` ago: asked
    /// at most every `LAG_CHECK_EVERY` (the verdict is kept in between). A primary that cannot be
    /// asked leaves the last verdict: then the replica's reads are all there may be.
    fn behind(&self, conn: &mut Connection, primary: &Pool) -> Result<bool, postgres::Error> {
        let mut lag = self.lag.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if lag.checked_at.is_some_and(|at| now.duration_since(at) < LAG_CHECK_EVERY) {
            return Ok(lag.behind);
        }
        lag.checked_at = Some(now);
        let replayed: Option<i64> =
            conn.client.query_one("SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint", &[])?.get(0);
        let written = primary.get().ok().and_then(|mut p| {
            p.client.query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[]).ok()?.try_get::<_, i64>(0).ok()
        });
        let Some(written) = written else { return Ok(lag.behind) };
        lag.marks.push_back((now, written));
        let Some(horizon) = now.checked_sub(MAX_LAG) else { return Ok(false) };
        // Only the latest mark at or before the horizon is needed, and those after it.
        while lag.marks.get(1).is_some_and(|(at, _)| *at <= horizon) {
            lag.marks.pop_front();
        }
        let then = lag.marks.front().filter(|(at, _)| *at <= horizon).map(|(_, position)| *position);
        // Not a standby (no replay position): never behind.
        lag.behind = matches!((replayed, then), (Some(replayed), Some(then)) if replayed < then);
        Ok(lag.behind)
    }

    fn resting(&self) -> bool {
        let mut until = self.resting_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *until {
            Some(at) if Instant::now() < at => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn rest(&self, error: &str) {
        tracing::warn!(error, "{} failed: its reads go elsewhere for {}s", self.description, REST.as_secs());
        *self.resting_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now() + REST);
    }
}

/// Refuses a replica that is not of `primary`'s database. One that has not replayed the migrations
/// just applied to the primary yet is only a warning: until it has, its reads fail and go to the
/// primary.
fn check(conn: &mut Connection, primary: &Origin, description: &str) -> Result<(), String> {
    let origin = Origin::of(&mut conn.client).map_err(|e| format!("cannot read {description}: {e}"))?;
    if origin != *primary {
        return Err(format!(
            "{description} is not a replica of the primary's database (it is database {} of cluster {}, the \
             primary's is {} of {})",
            origin.database, origin.system, primary.database, primary.system
        ));
    }
    let found = schema_version(&mut conn.client).map_err(|e| format!("cannot read {description}: {e}"))?;
    if let Err(behind) = schema_is_current(found, MIGRATIONS, description) {
        tracing::warn!("{behind} (still replaying?): its reads go to the primary until it has caught up");
    }
    Ok(())
}
