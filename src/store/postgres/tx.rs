//! A transaction on a pooled connection, begun and ended with plain statements rather than the
//! postgres crate's `Transaction`, which sends `START TRANSACTION` in a round trip of its own: here
//! the statements every batch opens with (its marker) share that round trip. On PostgreSQL a
//! batch's time is mostly round trips, so this is one fewer of about nine per batch.

use std::ops::{Deref, DerefMut};

/// An open transaction on `client`: rolled back when dropped unless committed or rolled back.
pub(super) struct Tx<'a> {
    client: &'a mut postgres::Client,
    open: bool,
}

impl<'a> Tx<'a> {
    /// Sends `opening` (`START TRANSACTION …`, then any statements without parameters) in one
    /// round trip. If any of it fails, what it opened is rolled back.
    pub(super) fn begin(client: &'a mut postgres::Client, opening: &str) -> Result<Tx<'a>, postgres::Error> {
        debug_assert!(opening.starts_with("START TRANSACTION"), "a Tx opens its transaction: {opening}");
        let tx = Tx { client, open: true };
        tx.client.batch_execute(opening)?;
        Ok(tx)
    }

    pub(super) fn commit(mut self) -> Result<(), postgres::Error> {
        // Whatever COMMIT answers, the transaction is over: ended by the server, or with the
        // connection (whose outcome the caller finds out).
        self.open = false;
        self.client.batch_execute("COMMIT")
    }

    pub(super) fn rollback(mut self) -> Result<(), postgres::Error> {
        self.open = false;
        self.client.batch_execute("ROLLBACK")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A broken connection needs no rollback: the pool discards it (`Manager::has_broken`).
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

impl Deref for Tx<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.client
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.client
    }
}
