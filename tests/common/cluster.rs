//! A PostgreSQL primary and a hot standby of its own, made for one test from the machine's
//! PostgreSQL binaries (`initdb`, then `pg_basebackup` of it into a second cluster on another
//! port), so that a test may stop, restart and promote them without touching the server the rest
//! of the suite shares. Trust authentication on 127.0.0.1; the standby streams from the primary,
//! synchronously when asked (then a commit the primary acknowledges is on the standby too, as a
//! managed PostgreSQL with a synchronous standby promises, and survives a failover).
//!
//! PostgreSQL refuses to run as root: when the tests do, the clusters run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One PostgreSQL server of the pair.
pub struct Node {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
}

/// A primary and its standby; both are stopped when it is dropped.
pub struct Cluster {
    pub primary: Node,
    pub standby: Node,
    dir: PathBuf,
}

/// The directory of the machine's PostgreSQL programs: `KEEL_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KEEL_TEST_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's programs are in /usr/lib/postgresql (or set KEEL_TEST_PG_BIN)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL version under /usr/lib/postgresql").1
}

/// PostgreSQL's `program`, to run as `postgres` when the tests run as root.
fn command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    }
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs PostgreSQL's `program` with `args` (as `postgres` when the tests run as root) and panics
/// with its output if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let output = command(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed: {text}");
    text
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port()
}

impl Node {
    fn new(dir: &Path, name: &str) -> Node {
        Node { port: free_port(), data: dir.join(name), log: dir.join(format!("{name}.log")) }
    }

    fn path(&self) -> &str {
        self.data.to_str().expect("a UTF-8 path")
    }

    /// A URL of database `test` on this server alone.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    pub fn start(&self) {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.socket_dir());
        run(
            "pg_ctl",
            &["-D", self.path(), "-l", self.log.to_str().unwrap(), "-w", "-t", "60", "-o", &options, "start"],
        );
    }

    fn socket_dir(&self) -> String {
        self.data.parent().expect("a node's data is in the cluster's directory").display().to_string()
    }

    /// Stops at once, as a crash or a pulled plug would: no shutdown checkpoint, connections cut.
    pub fn stop_immediately(&self) {
        run("pg_ctl", &["-D", self.path(), "-m", "immediate", "-w", "stop"]);
    }

    /// Stops cleanly (`fast`: connections cut, a checkpoint written) and starts again.
    pub fn restart(&self) {
        run("pg_ctl", &["-D", self.path(), "-m", "fast", "-w", "stop"]);
        self.start();
    }

    /// Makes a standby a primary and waits until it accepts writes.
    pub fn promote(&self) {
        run("pg_ctl", &["-D", self.path(), "-w", "promote"]);
    }

    /// Runs `sql` on database `db` and returns what it printed, unaligned (`psql -At`).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let port = self.port.to_string();
        run("psql", &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", db, "-Atc", sql]).trim().to_string()
    }

    fn stop_quietly(&self) {
        let _ = command("pg_ctl").args(["-D", self.path(), "-m", "immediate", "stop"]).output();
    }
}

/// One PostgreSQL server alone, its data directory and its WAL where the test says (so a test can
/// fill the disk of one and not the other); stopped when dropped.
pub struct Lone {
    pub node: Node,
}

impl Lone {
    /// Runs `initdb` into `data` (a directory that must not exist yet, in one `postgres` may write
    /// to) with its WAL in `wal`, starts the server and creates database `test`.
    pub fn start(data: &Path, wal: &Path) -> Lone {
        let dir = data.parent().expect("the data directory has a parent");
        let name = data.file_name().and_then(|n| n.to_str()).expect("a data directory name");
        let node = Node::new(dir, name);
        let wal = wal.to_str().expect("a UTF-8 path");
        run("initdb", &["-D", node.path(), "-X", wal, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        node.start();
        node.sql("postgres", "CREATE DATABASE test");
        Lone { node }
    }
}

impl Drop for Lone {
    fn drop(&mut self) {
        self.node.stop_quietly();
    }
}

/// Gives `dir` to the `postgres` user when the tests run as root (PostgreSQL will not run as root).
pub fn give_to_postgres(dir: &Path) {
    if running_as_root() {
        let status = Command::new("chown").arg("postgres:postgres").arg(dir).status().expect("chown runs");
        assert!(status.success(), "{} can be given to postgres", dir.display());
    }
}

impl Cluster {
    /// A primary with database `test` and a hot standby streaming from it, both running;
    /// `synchronous`: the primary acknowledges a commit only once the standby has it.
    pub fn start(synchronous: bool) -> Cluster {
        let dir = tempfile::Builder::new().prefix("keel-cluster-").tempdir().expect("a temporary directory");
        let dir = dir.keep();
        give_to_postgres(&dir);
        let (primary, standby) = (Node::new(&dir, "primary"), Node::new(&dir, "standby"));
        run("initdb", &["-D", primary.path(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        primary.start();
        primary.sql("postgres", "CREATE DATABASE test");
        let port = primary.port.to_string();
        let base = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", standby.path(), "-R", "-X", "stream"];
        // A fast checkpoint: the default spreads it over minutes.
        run("pg_basebackup", &[&base[..], &["--no-sync", "--checkpoint=fast"]].concat());
        standby.start();
        let cluster = Cluster { primary, standby, dir };
        if synchronous {
            cluster.primary.sql("postgres", "ALTER SYSTEM SET synchronous_standby_names = '*'");
            cluster.primary.sql("postgres", "SELECT pg_reload_conf()");
        }
        cluster.wait_for_streaming(synchronous);
        cluster
    }

    /// A URL naming both servers, for whichever accepts writes (libpq's `target_session_attrs`).
    pub fn failover_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/test?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    fn wait_for_streaming(&self, synchronous: bool) {
        let wanted = if synchronous { "sync" } else { "async" };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.primary.sql("postgres", "SELECT sync_state FROM pg_stat_replication");
            if state == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "the standby did not stream ({state:?}); see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.standby.stop_quietly();
        self.primary.stop_quietly();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
