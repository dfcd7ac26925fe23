//! The database a test server runs on. By default a SQLite file in a temporary directory; with
//! `KEEL_TEST_POSTGRES_URL` set (e.g. `postgres://postgres@127.0.0.1:5432/test`), a PostgreSQL
//! database created for this test alone and dropped afterwards, so the same suite runs on both
//! backends and tests run in parallel.

pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>, // (admin URL, database name)
}

/// The PostgreSQL server the suite runs against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("KEEL_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// Runs `sql` on the admin database. On its own thread: the synchronous client runs its own async
/// runtime, which may not start inside a test's.
fn admin(url: &str, sql: String) {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("KEEL_TEST_POSTGRES_URL={url}: cannot connect: {e}"));
        client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("the PostgreSQL admin thread finished");
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        match postgres_url() {
            Some(admin_url) => Self::postgres_on(&admin_url),
            None => Self::sqlite(),
        }
    }

    /// A database of its own on the PostgreSQL server `admin_url` names (an admin database),
    /// dropped afterwards.
    pub fn postgres_on(admin_url: &str) -> TestDatabase {
        let name = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
        admin(admin_url, format!("CREATE DATABASE {name}"));
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
        TestDatabase { url: format!("{base}/{name}"), _dir: None, postgres: Some((admin_url.to_string(), name)) }
    }

    /// A SQLite file in a temporary directory, whatever the suite's backend (for what only SQLite
    /// has, such as its one-writer lock).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temp dir for the database");
        let url = format!("sqlite://{}", dir.path().join("keel.db").display());
        TestDatabase { url, _dir: Some(dir), postgres: None }
    }

    /// An empty PostgreSQL database (no Keel schema), dropped afterwards; `None` without
    /// `KEEL_TEST_POSTGRES_URL`.
    pub fn empty_postgres() -> Option<TestDatabase> {
        postgres_url().map(|_| Self::new())
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The one integer `sql` selects (a `COUNT(*)`), read straight from the database: for what the
    /// API does not show, such as how many rows a feature stores.
    #[allow(dead_code)] // not every test binary counts rows
    pub fn count(&self, sql: &str) -> i64 {
        if self.postgres.is_some() {
            let (url, sql) = (self.url.clone(), sql.to_string());
            return std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
                client.query_one(&sql, &[]).expect("one row").get::<_, i64>(0)
            })
            .join()
            .expect("the PostgreSQL thread finished");
        }
        let path = self.url.trim_start_matches("sqlite://");
        let connection = rusqlite::Connection::open(path).expect("opens the SQLite file");
        connection.query_row(sql, [], |row| row.get(0)).expect("one integer")
    }
}

impl TestDatabase {
    /// Runs `sql` straight on the database, beside the server: an operator's change behind its back.
    #[allow(dead_code)] // not every test binary changes the database
    pub fn execute(&self, sql: &str) {
        if self.postgres.is_some() {
            let (url, sql) = (self.url.clone(), sql.to_string());
            return std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
                client.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            })
            .join()
            .expect("the PostgreSQL thread finished");
        }
        let path = self.url.trim_start_matches("sqlite://");
        let connection = rusqlite::Connection::open(path).expect("opens the SQLite file");
        connection.busy_timeout(std::time::Duration::from_secs(10)).expect("sets a busy timeout");
        connection.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres {
            admin(admin_url, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
