//! The one SQL layer: every query is written once, as a template, and rendered for each dialect;
//! `Reads` and `Writes` are implemented once, for any backend connection that can run a template
//! (`Sql`). What truly differs per backend stays in that backend's file: how it binds values and
//! reads rows, PostgreSQL's set-based batch writes, SQLite's pragmas and checkpointer.
//!
//! Template tokens, rendered once per dialect and cached:
//! - `{table}` (for example `{balances}`): the table's SELECT list (`schema.rs`);
//! - `{insert:table}`: `INSERT INTO table (…) VALUES (…)` of every written column, in order;
//! - `{update:table}`: `UPDATE table SET` every written column but the first `WHERE` the first;
//! - `{seq}`: the insertion-order column (PostgreSQL `seq`, SQLite `rowid`);
//! - `{any}`: `= ANY($1)` on PostgreSQL, `= $1` on SQLite, whose backend runs the statement once
//!   per item of the list bound to `$1` (in-process index lookups cost less than an IN list);
//! - `{numeric}`, after a placeholder: the cast PostgreSQL needs to bind an amount as text;
//! - `{amount}`, after a selected amount column: the cast PostgreSQL needs to read it as text;
//! - `{sum:column}`: the exact sum of an amount column, as text (SQLite: Keel's `keel_sum`);
//! - `{lock}` / `{skip_locked}` / `{share}`: PostgreSQL's `FOR UPDATE` / `FOR UPDATE SKIP LOCKED` /
//!   `FOR SHARE` (SQLite's
//!   writer holds the database's one write lock for the whole batch, so reading is locking).
//!
//! Placeholders are written `$N`; SQLite's are rendered `?N` (positional, like PostgreSQL's).

use super::codec::{Codec, Cursor, Kind, Value};
use super::schema::{columns_of, CheckpointChunk, LedgerRule, Record};
use super::{
    endpoint_stream, AfterAttempt, Attempt, EndpointFilter, EventFilter, Found, Order, Page, Reads, Searchable,
    StoreResult, Writes,
};
use crate::domain::api_key::ApiKey;
use crate::domain::balance::Balance;
use crate::domain::endpoint::{Endpoint, EndpointDelivery, HookType};
use crate::domain::event::{Delivery, Event};
use crate::domain::filter::{Collection, Query};
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Monitor, RuleState, State};
use crate::domain::snapshot::{BalanceSnapshot, Minute};
use crate::domain::transaction::{Status, Transaction};
use crate::domain::velocity::CheckpointLog;
use num_bigint::BigInt;
use parking_lot::RwLock;
use serde_json::Map;
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A template rendered for `dialect`. Cached by the template's address, so the hot statements
/// are not formatted again for every transaction.
pub fn render(dialect: Dialect, template: &'static str) -> &'static str {
    static RENDERED: LazyLock<RwLock<HashMap<(Dialect, usize), &'static str>>> = LazyLock::new(RwLock::default);
    let key = (dialect, template.as_ptr() as usize);
    if let Some(sql) = RENDERED.read().get(&key) {
        return sql;
    }
    // Leaked on purpose: one string per template in the source, for the life of the process.
    let sql: &'static str = Box::leak(render_uncached(dialect, template).into_boxed_str());
    RENDERED.write().insert(key, sql);
    sql
}

fn render_uncached(dialect: Dialect, template: &str) -> String {
    let pg = dialect == Dialect::Postgres;
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a template's `{` is closed");
        let token = &rest[start + 1..end];
        match token {
            "seq" => out.push_str(if pg { "seq" } else { "rowid" }),
            "any" => out.push_str(if pg { "= ANY($1)" } else { "= $1" }),
            "numeric" => out.push_str(if pg { "::text::numeric" } else { "" }),
            "amount" => out.push_str(if pg { "::text" } else { "" }),
            "lock" => out.push_str(if pg { " FOR UPDATE" } else { "" }),
            "skip_locked" => out.push_str(if pg { " FOR UPDATE SKIP LOCKED" } else { "" }),
            "share" => out.push_str(if pg { " FOR SHARE" } else { "" }),
            // SQLite's planner, without statistics, would serve `status = 'APPLIED' AND created_at
            // BETWEEN …` from the `(status, created_at)` index, walking every applied transaction
            // of the range, rather than the balance's own `(balance_id, created_at)` range; a
            // unary `+` keeps it from using an index for the status term. PostgreSQL plans by its
            // statistics.
            "no_index" => out.push_str(if pg { "" } else { "+" }),
            _ if token.starts_with("sum:") => {
                let column = &token["sum:".len()..];
                out.push_str(&if pg { format!("SUM({column})::text") } else { format!("keel_sum({column})") })
            }
            _ => out.push_str(&render_table_token(dialect, token)),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    if pg {
        out
    } else {
        out.replace('$', "?")
    }
}

fn render_table_token(dialect: Dialect, token: &str) -> String {
    let pg = dialect == Dialect::Postgres;
    let (verb, table) = token.split_once(':').unwrap_or(("select", token));
    let columns = columns_of(table).unwrap_or_else(|| panic!("a template names an unknown table {table:?}"));
    let written: Vec<_> = columns.iter().filter(|c| c.is_written()).collect();
    let placeholder = |n: usize, kind: Kind| match kind {
        Kind::Amount if pg => format!("${n}::text::numeric"),
        _ => format!("${n}"),
    };
    match verb {
        "select" => columns
            .iter()
            .map(|c| match c.kind {
                Kind::Amount if pg => format!("{}::text", c.name),
                _ if !c.is_written() && !pg => "rowid".to_string(),
                _ => c.name.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        "insert" => format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            written.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
            written.iter().enumerate().map(|(i, c)| placeholder(i + 1, c.kind)).collect::<Vec<_>>().join(", ")
        ),
        "update" => format!(
            "UPDATE {table} SET {} WHERE {} = $1",
            written
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, c)| format!("{} = {}", c.name, placeholder(i + 1, c.kind)))
                .collect::<Vec<_>>()
                .join(", "),
            written[0].name
        ),
        _ => panic!("unknown template token {token:?}"),
    }
}

/// `table`'s SELECT list for `dialect`, for statements built at run time (`filters`).
pub fn select_list(dialect: Dialect, table: &str) -> String {
    render_table_token(dialect, table)
}

/// A statement built at run time, as `operation` shows a template.
pub fn built_operation(sql: &str) -> String {
    let line = sql.trim_start().lines().next().unwrap_or_default();
    line.chars().take(96).collect()
}

/// The statement a failure happened in, short enough for a log line.
pub fn operation(sql: &'static str) -> &'static str {
    let line = sql.trim_start().lines().next().unwrap_or_default();
    match line.char_indices().nth(96) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

/// A connection that can run templates: a backend's reader, or the batch's writer.
pub trait Sql {
    const DIALECT: Dialect;

    /// Runs `sql` and reads every row with `read`.
    fn rows<T>(
        &self,
        sql: &'static str,
        params: &[Value<'_>],
        read: fn(&mut Cursor<'_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>>;

    /// Runs `sql`; returns the rows it changed.
    fn execute(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<u64>;

    /// Runs a statement built at run time for this dialect (`filters`), prepared for this one use.
    fn built_rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: fn(&mut Cursor<'_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>>;

    fn one<R: Record>(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<Option<R>> {
        Ok(self.rows(sql, params, R::read)?.into_iter().next())
    }

    fn all<R: Record>(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<Vec<R>> {
        self.rows(sql, params, R::read)
    }

    fn page<R: Record>(&self, sql: &'static str, page: Page) -> StoreResult<Vec<R>> {
        self.all(sql, &limits(page))
    }
}

/// The batch's writer. A backend may buffer the hottest writes and send them set-based
/// (PostgreSQL); by default each is one statement.
pub trait WriteSql: Sql {
    fn write_transaction(&self, t: &Transaction) -> StoreResult<()> {
        self.execute("{insert:transactions}", &t.values())?;
        if has_search_text(t) {
            to_index(self, "transactions", &t.id)?;
        }
        Ok(())
    }

    /// An event into the outbox. PostgreSQL holds them back until just before COMMIT, to write
    /// them in commit order (`Store::events_after`).
    fn write_event(&self, event: &Event) -> StoreResult<()> {
        self.execute("{insert:events}", &event.values()).map(drop)
    }

    fn write_totals(&self, b: &Balance) -> StoreResult<()> {
        self.execute(
            "UPDATE balances SET credit_balance = $2{numeric}, debit_balance = $3{numeric},
             inflight_credit_balance = $4{numeric}, inflight_debit_balance = $5{numeric}, version = $6,
             recent_checkpoints = $7
             WHERE balance_id = $1",
            &totals(b),
        )
        .map(drop)
    }
}

/// Whether a transaction has free text to search (`domain::search::text_fields`: its description
/// and metadata): only then is it queued for the indexer.
pub fn has_search_text(t: &Transaction) -> bool {
    !t.description.is_empty() || !t.meta_data.is_empty()
}

/// Queues a record for the search indexer (`src/search.rs`) in the commit that creates or changes
/// it: its terms are (re)written from the record as it then stands.
fn to_index<S: Sql + ?Sized>(sql: &S, collection: &'static str, id: &str) -> StoreResult<()> {
    sql.execute("INSERT INTO search_dirty (collection, entity_id) VALUES ($1, $2)", &[collection.into(), id.into()])
        .map(drop)
}

/// Adds an `APPLIED` transaction to its balances' snapshots taken after its effective instant
/// (invariant H1): a backdated `effective_date`, or a queued transaction applied after a snapshot.
fn settle_late<S: Sql + ?Sized>(sql: &S, t: &Transaction) -> StoreResult<()> {
    let at = t.effective_date.as_deref().unwrap_or(&t.created_at);
    for (balance_id, debits) in [(&t.source_balance_id, true), (&t.destination_balance_id, false)] {
        let later: Vec<BalanceSnapshot> = sql.all(
            "SELECT {balance_snapshots} FROM balance_snapshots WHERE balance_id = $1 AND snapshot_at > $2",
            &[balance_id.as_str().into(), at.into()],
        )?;
        for mut snapshot in later {
            if debits {
                snapshot.debit_balance += &t.precise_amount;
            } else {
                snapshot.credit_balance += &t.precise_amount;
            }
            sql.execute(
                "UPDATE balance_snapshots SET credit_balance = $3{numeric}, debit_balance = $4{numeric}
                 WHERE balance_id = $1 AND snapshot_at = $2",
                &snapshot.values(),
            )?;
        }
    }
    Ok(())
}

/// A balance's id, four totals, version and latest checkpoints: what a batch writes back.
pub fn totals(b: &Balance) -> [Value<'_>; 7] {
    use super::codec::Codec;
    [
        (&b.id).into(),
        b.credit_balance.encode(),
        b.debit_balance.encode(),
        b.inflight_credit_balance.encode(),
        b.inflight_debit_balance.encode(),
        b.version.into(),
        super::codec::padded_log(&b.checkpoints),
    ]
}

fn limits(page: Page) -> [Value<'static>; 2] {
    [Value::Int(page.limit.into()), Value::Int(i64::try_from(page.offset).unwrap_or(i64::MAX))]
}

fn text(cursor: &mut Cursor<'_>) -> StoreResult<String> {
    Ok(cursor.text()?.to_string())
}

/// A rule as a client reads it: triggered while any balance's instance is, with the triggers of
/// all its balances counted.
fn summarized<S: Sql + ?Sized>(sql: &S, rule: LedgerRule) -> StoreResult<Monitor> {
    let summary = sql.rows(
        "SELECT CAST(COALESCE(SUM(trigger_count), 0) AS BIGINT), MAX(last_triggered_at),
                CAST(COALESCE(SUM(CASE WHEN state = 'triggered' THEN 1 ELSE 0 END), 0) AS BIGINT)
         FROM ledger_monitor_states WHERE monitor_id = $1",
        &[(&rule.monitor.id).into()],
        |row| Ok((i64::decode(row)?, Option::<String>::decode(row)?, i64::decode(row)?)),
    )?;
    let (trigger_count, last_triggered_at, triggered) = summary.into_iter().next().unwrap_or_default();
    let state = if triggered > 0 { State::Triggered } else { State::Ok };
    Ok(Monitor { state, trigger_count, last_triggered_at, ..rule.into_monitor() })
}

/// A filtered page, and its count when asked for.
fn find<S: Sql + ?Sized, R: Record>(sql: &S, query: &Query) -> StoreResult<Found<R>> {
    found(sql, query, R::read)
}

/// A filtered page read with `read` (rows, or monitors' ids), and its count when asked for.
fn found<S: Sql + ?Sized, T>(
    sql: &S,
    query: &Query,
    read: fn(&mut Cursor<'_>) -> StoreResult<T>,
) -> StoreResult<Found<T>> {
    let (page, count) = super::filters::build(S::DIALECT, query);
    let items = sql.built_rows(&page.sql, &page.params, read)?;
    let total = match count {
        Some(count) => sql.built_rows(&count.sql, &count.params, i64::decode)?.first().map(|n| *n as u64),
        None => None,
    };
    Ok(Found { items, total })
}

/// Monitors of both kinds by id, in the order of `ids`.
fn monitors_by_ids<S: Sql + ?Sized>(sql: &S, ids: &[String]) -> StoreResult<Vec<Monitor>> {
    let own: Vec<Monitor> =
        sql.all("SELECT {balance_monitors} FROM balance_monitors WHERE monitor_id {any}", &[Value::TextList(ids)])?;
    let rules: Vec<LedgerRule> =
        sql.all("SELECT {ledger_monitors} FROM ledger_monitors WHERE monitor_id {any}", &[Value::TextList(ids)])?;
    let mut by_id: HashMap<String, Monitor> = own.into_iter().map(|m| (m.id.clone(), m)).collect();
    for rule in rules {
        by_id.insert(rule.monitor.id.clone(), summarized(sql, rule)?);
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

impl<S: Sql> Reads for S {
    fn ledger(&self, id: &str) -> StoreResult<Option<Ledger>> {
        self.one("SELECT {ledgers} FROM ledgers WHERE ledger_id = $1", &[id.into()])
    }

    fn ledgers(&self, page: Page) -> StoreResult<Vec<Ledger>> {
        let sql = match page.order {
            Order::OldestFirst => "SELECT {ledgers} FROM ledgers ORDER BY {seq} LIMIT $1 OFFSET $2",
            Order::NewestFirst => "SELECT {ledgers} FROM ledgers ORDER BY {seq} DESC LIMIT $1 OFFSET $2",
        };
        self.page(sql, page)
    }

    fn balance(&self, id: &str) -> StoreResult<Option<Balance>> {
        self.one("SELECT {balances} FROM balances WHERE balance_id = $1", &[id.into()])
    }

    fn balance_by_indicator(&self, indicator: &str, currency: &str) -> StoreResult<Option<Balance>> {
        self.one(
            "SELECT {balances} FROM balances WHERE indicator = $1 AND currency = $2 AND indicator <> ''",
            &[indicator.into(), currency.into()],
        )
    }

    fn balances(&self, page: Page) -> StoreResult<Vec<Balance>> {
        let sql = match page.order {
            Order::OldestFirst => "SELECT {balances} FROM balances ORDER BY {seq} LIMIT $1 OFFSET $2",
            Order::NewestFirst => "SELECT {balances} FROM balances ORDER BY {seq} DESC LIMIT $1 OFFSET $2",
        };
        self.page(sql, page)
    }

    fn find_ledgers(&self, query: &Query) -> StoreResult<Found<Ledger>> {
        find(self, query)
    }

    fn find_balances(&self, query: &Query) -> StoreResult<Found<Balance>> {
        find(self, query)
    }

    fn find_transactions(&self, query: &Query) -> StoreResult<Found<Transaction>> {
        find(self, query)
    }

    fn find_identities(&self, query: &Query) -> StoreResult<Found<Identity>> {
        find(self, query)
    }

    fn identity(&self, id: &str) -> StoreResult<Option<Identity>> {
        self.one("SELECT {identities} FROM identities WHERE identity_id = $1", &[id.into()])
    }

    fn identity_has_balances(&self, id: &str) -> StoreResult<bool> {
        let found = self.rows("SELECT 1 FROM balances WHERE identity_id = $1 LIMIT 1", &[id.into()], |_| Ok(()))?;
        Ok(!found.is_empty())
    }

    fn transaction(&self, id: &str) -> StoreResult<Option<Transaction>> {
        self.one("SELECT {transactions} FROM transactions WHERE transaction_id = $1", &[id.into()])
    }

    fn transaction_by_reference(&self, reference: &str) -> StoreResult<Option<Transaction>> {
        self.one("SELECT {transactions} FROM transactions WHERE reference = $1", &[reference.into()])
    }

    fn existing_references(&self, references: &[String]) -> StoreResult<Vec<String>> {
        // Prepared once per connection and again now and then (a plan PostgreSQL cached while the
        // table was small would scan the whole table: `postgres::Prepared`).
        self.rows("SELECT reference FROM transactions WHERE reference {any}", &[Value::TextList(references)], text)
    }

    fn transactions(&self, page: Page) -> StoreResult<Vec<Transaction>> {
        let sql = match page.order {
            Order::OldestFirst => "SELECT {transactions} FROM transactions ORDER BY {seq} LIMIT $1 OFFSET $2",
            Order::NewestFirst => "SELECT {transactions} FROM transactions ORDER BY {seq} DESC LIMIT $1 OFFSET $2",
        };
        self.page(sql, page)
    }

    fn transactions_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Transaction>> {
        self.all(
            "SELECT {transactions} FROM transactions
             WHERE source_balance_id = $1 OR destination_balance_id = $1 ORDER BY {seq}",
            &[balance_id.into()],
        )
    }

    fn settled_sum(&self, balance_id: &str, from: &str, until: &str, debits: bool) -> StoreResult<BigInt> {
        let sql = SETTLED_SUM[usize::from(debits)];
        let sums = self.rows(sql, &[balance_id.into(), from.into(), until.into()], Option::<BigInt>::decode)?;
        Ok(sums.into_iter().flatten().sum())
    }

    fn settled_minutes(&self, balance_id: &str, from: &str, until: &str, debits: bool) -> StoreResult<Vec<Minute>> {
        self.rows(SETTLED_MINUTES[usize::from(debits)], &[balance_id.into(), from.into(), until.into()], |c| {
            Ok((text(c)?, BigInt::decode(c)?, c.int()? as u64))
        })
    }

    fn latest_snapshot(&self, balance_id: &str, before: Option<&str>) -> StoreResult<Option<BalanceSnapshot>> {
        match before {
            Some(before) => self.one(
                "SELECT {balance_snapshots} FROM balance_snapshots WHERE balance_id = $1 AND snapshot_at < $2
                 ORDER BY snapshot_at DESC LIMIT 1",
                &[balance_id.into(), before.into()],
            ),
            None => self.one(
                "SELECT {balance_snapshots} FROM balance_snapshots WHERE balance_id = $1
                 ORDER BY snapshot_at DESC LIMIT 1",
                &[balance_id.into()],
            ),
        }
    }

    fn snapshots(&self, page: Page) -> StoreResult<Vec<BalanceSnapshot>> {
        self.page(
            "SELECT {balance_snapshots} FROM balance_snapshots ORDER BY balance_id, snapshot_at LIMIT $1 OFFSET $2",
            page,
        )
    }

    fn balance_ids_after(&self, after: &str, limit: u32) -> StoreResult<Vec<String>> {
        self.rows(
            "SELECT balance_id FROM balances WHERE balance_id > $1 ORDER BY balance_id LIMIT $2",
            &[after.into(), Value::Int(limit.into())],
            text,
        )
    }

    fn settled_between(&self, balance_id: &str, from: &str, to: &str, limit: u32) -> StoreResult<Vec<Transaction>> {
        // The page's ids first (SETTLED_BETWEEN), then its rows, by id.
        let ids =
            self.rows(SETTLED_BETWEEN, &[balance_id.into(), from.into(), to.into(), Value::Int(limit.into())], text)?;
        let rows: Vec<Transaction> =
            self.all("SELECT {transactions} FROM transactions WHERE transaction_id {any}", &[Value::TextList(&ids)])?;
        let mut by_id: HashMap<String, Transaction> = rows.into_iter().map(|t| (t.id.clone(), t)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn queued_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Transaction>> {
        self.all(
            "SELECT {transactions} FROM transactions
             WHERE status = 'QUEUED' AND (source_balance_id = $1 OR destination_balance_id = $1) ORDER BY {seq}",
            &[balance_id.into()],
        )
    }

    fn children(&self, parent: &str) -> StoreResult<Vec<Transaction>> {
        self.all(
            "SELECT {transactions} FROM transactions WHERE parent_transaction = $1 ORDER BY {seq}",
            &[parent.into()],
        )
    }

    fn members(&self, group: &str) -> StoreResult<Vec<Transaction>> {
        self.all("SELECT {transactions} FROM transactions WHERE group_id = $1 ORDER BY {seq}", &[group.into()])
    }

    fn monitor(&self, id: &str) -> StoreResult<Option<Monitor>> {
        let own = self.one("SELECT {balance_monitors} FROM balance_monitors WHERE monitor_id = $1", &[id.into()])?;
        if own.is_some() {
            return Ok(own);
        }
        let rule: Option<LedgerRule> =
            self.one("SELECT {ledger_monitors} FROM ledger_monitors WHERE monitor_id = $1", &[id.into()])?;
        rule.map(|rule| summarized(self, rule)).transpose()
    }

    /// Both kinds, in creation order (ids are UUIDv7: they sort by creation time), one page of ids
    /// first, then their rows.
    fn monitors(&self, page: Page) -> StoreResult<Vec<Monitor>> {
        let sql = match page.order {
            Order::OldestFirst => {
                "SELECT monitor_id FROM (SELECT monitor_id FROM balance_monitors
                 UNION ALL SELECT monitor_id FROM ledger_monitors) AS m ORDER BY monitor_id LIMIT $1 OFFSET $2"
            }
            Order::NewestFirst => {
                "SELECT monitor_id FROM (SELECT monitor_id FROM balance_monitors
                 UNION ALL SELECT monitor_id FROM ledger_monitors) AS m ORDER BY monitor_id DESC LIMIT $1 OFFSET $2"
            }
        };
        let ids = self.rows(sql, &limits(page), text)?;
        monitors_by_ids(self, &ids)
    }

    fn find_monitors(&self, query: &Query) -> StoreResult<Found<Monitor>> {
        let Found { items: ids, total } = found(self, query, text)?;
        Ok(Found { items: monitors_by_ids(self, &ids)?, total })
    }

    fn rules_of_ledger(&self, ledger_id: &str) -> StoreResult<Vec<Monitor>> {
        let rules: Vec<LedgerRule> = self.all(
            "SELECT {ledger_monitors} FROM ledger_monitors WHERE ledger_id = $1 ORDER BY monitor_id",
            &[ledger_id.into()],
        )?;
        Ok(rules.into_iter().map(LedgerRule::into_monitor).collect())
    }

    fn rule_states(&self, balance_ids: &[String]) -> StoreResult<Vec<RuleState>> {
        self.all(
            "SELECT {ledger_monitor_states} FROM ledger_monitor_states WHERE balance_id {any}",
            &[Value::TextList(balance_ids)],
        )
    }

    fn monitors_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Monitor>> {
        self.all(
            "SELECT {balance_monitors} FROM balance_monitors WHERE balance_id = $1 ORDER BY {seq}",
            &[balance_id.into()],
        )
    }

    fn monitors_of_balances(&self, balance_ids: &[String]) -> StoreResult<Vec<Monitor>> {
        self.all(
            "SELECT {balance_monitors} FROM balance_monitors WHERE balance_id {any} ORDER BY {seq}",
            &[Value::TextList(balance_ids)],
        )
    }

    fn event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.one("SELECT {events} FROM events WHERE event_id = $1", &[id.into()])
    }

    fn events(&self, filter: &EventFilter, page: Page) -> StoreResult<Vec<Event>> {
        let [limit, offset] = limits(page);
        let sql = match page.order {
            Order::OldestFirst => {
                "SELECT {events} FROM events
                 WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) AND (CAST($2 AS TEXT) IS NULL OR monitor_id = $2)
                 ORDER BY {seq} LIMIT $3 OFFSET $4"
            }
            Order::NewestFirst => {
                "SELECT {events} FROM events
                 WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) AND (CAST($2 AS TEXT) IS NULL OR monitor_id = $2)
                 ORDER BY {seq} DESC LIMIT $3 OFFSET $4"
            }
        };
        self.all(
            sql,
            &[filter.delivery.map(Delivery::as_str).into(), filter.monitor_id.as_deref().into(), limit, offset],
        )
    }

    fn events_after(&self, after_sequence: i64, limit: u32) -> StoreResult<Vec<Event>> {
        self.all(
            "SELECT {events} FROM events WHERE {seq} > $1 ORDER BY {seq} LIMIT $2",
            &[after_sequence.into(), Value::Int(limit.into())],
        )
    }

    fn attempts(&self, event_id: &str) -> StoreResult<Vec<Attempt>> {
        self.all("SELECT {event_attempts} FROM event_attempts WHERE event_id = $1 ORDER BY {seq}", &[event_id.into()])
    }

    fn scheduled_due(&self, now: &str) -> StoreResult<bool> {
        let due = self.rows(
            "SELECT transaction_id FROM transactions WHERE status = 'SCHEDULED' AND scheduled_for <= $1 LIMIT 1",
            &[now.into()],
            |c| c.text().map(str::to_string),
        )?;
        Ok(!due.is_empty())
    }

    fn latest_transaction_stamp(&self) -> StoreResult<Option<String>> {
        // The list index on `created_at` serves it (one step from its end).
        let latest = self.rows("SELECT created_at FROM transactions ORDER BY created_at DESC LIMIT 1", &[], |c| {
            c.text().map(str::to_string)
        })?;
        Ok(latest.into_iter().next())
    }

    fn queued_transaction_ids(&self, limit: u32, now: &str) -> StoreResult<Vec<String>> {
        self.rows(QUEUED_IDS, &[Value::Int(limit.into()), now.into()], text)
    }

    fn holds_due(&self, now: &str, expired: bool, limit: u32) -> StoreResult<Vec<String>> {
        // Two statements rather than one with the column spliced in: every query is a fixed text.
        let sql = match expired {
            true => {
                "SELECT transaction_id FROM transactions WHERE status = 'INFLIGHT'
                 AND inflight_expiry_date IS NOT NULL AND inflight_expiry_date <= $1
                 ORDER BY inflight_expiry_date LIMIT $2"
            }
            false => {
                "SELECT transaction_id FROM transactions WHERE status = 'INFLIGHT'
                 AND inflight_commit_date IS NOT NULL AND inflight_commit_date <= $1
                 ORDER BY inflight_commit_date LIMIT $2"
            }
        };
        self.rows(sql, &[now.into(), Value::Int(limit.into())], |c| c.text().map(str::to_string))
    }

    fn pending_events(&self) -> StoreResult<u64> {
        let counts = self.rows("SELECT count(*) FROM events WHERE status = 'pending'", &[], |c| c.int())?;
        Ok(counts.first().copied().unwrap_or(0).max(0) as u64)
    }

    fn count_events(&self, filter: &EventFilter) -> StoreResult<u64> {
        let counts = self.rows(
            "SELECT count(*) FROM events
             WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) AND (CAST($2 AS TEXT) IS NULL OR monitor_id = $2)",
            &[filter.delivery.map(Delivery::as_str).into(), filter.monitor_id.as_deref().into()],
            |c| c.int(),
        )?;
        Ok(counts.first().copied().unwrap_or(0).max(0) as u64)
    }

    fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.one("SELECT {api_keys} FROM api_keys WHERE key_hash = $1", &[key_hash.into()])
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        self.one("SELECT {api_keys} FROM api_keys WHERE key_id = $1", &[id.into()])
    }

    fn api_keys(&self, owner: Option<&str>, page: Page) -> StoreResult<Vec<ApiKey>> {
        let [limit, offset] = limits(page);
        let sql = match page.order {
            Order::OldestFirst => {
                "SELECT {api_keys} FROM api_keys WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
                 ORDER BY {seq} LIMIT $2 OFFSET $3"
            }
            Order::NewestFirst => {
                "SELECT {api_keys} FROM api_keys WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
                 ORDER BY {seq} DESC LIMIT $2 OFFSET $3"
            }
        };
        self.all(sql, &[owner.into(), limit, offset])
    }

    fn endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>> {
        self.one("SELECT {webhook_endpoints} FROM webhook_endpoints WHERE endpoint_id = $1", &[id.into()])
    }

    fn endpoints(&self, filter: &EndpointFilter, page: Page) -> StoreResult<Vec<Endpoint>> {
        let [limit, offset] = limits(page);
        let sql = match page.order {
            Order::OldestFirst => {
                "SELECT {webhook_endpoints} FROM webhook_endpoints
                 WHERE (CAST($1 AS TEXT) IS NULL OR endpoint_id LIKE $1)
                   AND (CAST($2 AS TEXT) IS NULL OR hook_type = $2)
                 ORDER BY created_at, endpoint_id LIMIT $3 OFFSET $4"
            }
            Order::NewestFirst => {
                "SELECT {webhook_endpoints} FROM webhook_endpoints
                 WHERE (CAST($1 AS TEXT) IS NULL OR endpoint_id LIKE $1)
                   AND (CAST($2 AS TEXT) IS NULL OR hook_type = $2)
                 ORDER BY created_at DESC, endpoint_id DESC LIMIT $3 OFFSET $4"
            }
        };
        // `_` matches any one character in LIKE: `hook_%` also matches `hookX…`, which no id is.
        let prefix = filter.id_prefix.map(|p| format!("{p}_%"));
        self.all(sql, &[prefix.as_deref().into(), filter.hook_type.map(HookType::as_str).into(), limit, offset])
    }

    fn endpoint_deliveries(
        &self,
        endpoint_id: &str,
        status: Option<Delivery>,
        page: Page,
    ) -> StoreResult<Vec<EndpointDelivery>> {
        let [limit, offset] = limits(page);
        self.all(
            "SELECT {endpoint_deliveries} FROM endpoint_deliveries
             WHERE endpoint_id = $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2)
             ORDER BY event_id DESC LIMIT $3 OFFSET $4",
            &[endpoint_id.into(), status.map(Delivery::as_str).into(), limit, offset],
        )
    }

    fn endpoint_delivery(&self, endpoint_id: &str, event_id: &str) -> StoreResult<Option<EndpointDelivery>> {
        self.one(
            "SELECT {endpoint_deliveries} FROM endpoint_deliveries WHERE endpoint_id = $1 AND event_id = $2",
            &[endpoint_id.into(), event_id.into()],
        )
    }

    fn endpoint_retry_due(&self, id: &str, now: i64) -> StoreResult<bool> {
        let due = self.rows(
            "SELECT 1 FROM endpoint_deliveries
             WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2 LIMIT 1",
            &[id.into(), now.into()],
            |c| c.int(),
        )?;
        Ok(!due.is_empty())
    }

    fn endpoint_attempts(&self, endpoint_id: &str, event_id: &str) -> StoreResult<Vec<Attempt>> {
        self.all(
            "SELECT {event_attempts} FROM event_attempts WHERE event_id = $1 AND endpoint_id = $2 ORDER BY {seq}",
            &[event_id.into(), endpoint_id.into()],
        )
    }

    fn last_event_sequence(&self) -> StoreResult<i64> {
        let found = self.rows("SELECT {seq} FROM events ORDER BY {seq} DESC LIMIT 1", &[], |c| c.int())?;
        Ok(found.first().copied().unwrap_or(0))
    }

    fn searchable(&self, collection: Collection, ids: &[String]) -> StoreResult<Vec<(i64, Searchable)>> {
        let ids = &[Value::TextList(ids)];
        match collection {
            Collection::Ledgers => self.rows("SELECT {ledgers}, {seq} FROM ledgers WHERE ledger_id {any}", ids, |c| {
                let record = Searchable::Ledger(Ledger::read(c)?);
                Ok((c.int()?, record))
            }),
            Collection::Balances => {
                self.rows("SELECT {balances}, {seq} FROM balances WHERE balance_id {any}", ids, |c| {
                    let record = Searchable::Balance(Balance::read(c)?);
                    Ok((c.int()?, record))
                })
            }
            Collection::Transactions => {
                self.rows("SELECT {transactions}, {seq} FROM transactions WHERE transaction_id {any}", ids, |c| {
                    let record = Searchable::Transaction(Transaction::read(c)?);
                    Ok((c.int()?, record))
                })
            }
            Collection::Identities => {
                self.rows("SELECT {identities}, {seq} FROM identities WHERE identity_id {any}", ids, |c| {
                    let record = Searchable::Identity(Identity::read(c)?);
                    Ok((c.int()?, record))
                })
            }
            Collection::Monitors => Ok(Vec::new()),
        }
    }

    fn search_queue(&self, limit: u32) -> StoreResult<Vec<(i64, String, String)>> {
        // SKIP LOCKED: indexers of several processes take different entries.
        self.rows(
            "SELECT position, collection, entity_id FROM search_dirty ORDER BY position LIMIT $1{skip_locked}",
            &[Value::Int(limit.into())],
            |c| Ok((c.int()?, text(c)?, text(c)?)),
        )
    }

    fn search_queued(&self) -> StoreResult<bool> {
        Ok(!self.rows("SELECT 1 FROM search_dirty LIMIT 1", &[], |c| c.int())?.is_empty())
    }

    fn collection_size(&self, collection: Collection) -> StoreResult<u64> {
        let sql = match collection {
            Collection::Ledgers => "SELECT COUNT(*) FROM ledgers",
            Collection::Balances => "SELECT COUNT(*) FROM balances",
            Collection::Transactions => "SELECT COUNT(*) FROM transactions",
            Collection::Identities => "SELECT COUNT(*) FROM identities",
            Collection::Monitors => {
                "SELECT (SELECT COUNT(*) FROM balance_monitors) + (SELECT COUNT(*) FROM ledger_monitors)"
            }
        };
        Ok(self.rows(sql, &[], |c| c.int())?.first().copied().unwrap_or(0) as u64)
    }
}

/// The settled total of a balance's credits (`[0]`) or debits (`[1]`) that took effect in
/// `[$2, $3)`. Two index ranges, one per way a row states when it moved (partial indexes of
/// migrations sqlite/0014, postgres/0013 for `effective_date`), never a walk of the balance's log.
pub(super) static SETTLED_SUM: [&str; 2] = [
    "SELECT {sum:amount} FROM (
         SELECT precise_amount AS amount FROM transactions WHERE destination_balance_id = $1
         AND effective_date IS NULL AND created_at >= $2 AND created_at < $3 AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT precise_amount FROM transactions WHERE destination_balance_id = $1
         AND effective_date >= $2 AND effective_date < $3 AND {no_index}status = 'APPLIED') AS settled",
    "SELECT {sum:amount} FROM (
         SELECT precise_amount AS amount FROM transactions WHERE source_balance_id = $1
         AND effective_date IS NULL AND created_at >= $2 AND created_at < $3 AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT precise_amount FROM transactions WHERE source_balance_id = $1
         AND effective_date >= $2 AND effective_date < $3 AND {no_index}status = 'APPLIED') AS settled",
];

/// A balance's settled credits (`[0]`) or debits (`[1]`) in `[$2, $3)`, summed by minute.
pub(super) static SETTLED_MINUTES: [&str; 2] = [
    "SELECT minute, {sum:amount}, COUNT(*) FROM (
         SELECT substr(created_at, 1, 16) AS minute, precise_amount AS amount FROM transactions
         WHERE destination_balance_id = $1 AND effective_date IS NULL AND created_at >= $2 AND created_at < $3
         AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT substr(effective_date, 1, 16), precise_amount FROM transactions
         WHERE destination_balance_id = $1 AND effective_date >= $2 AND effective_date < $3
         AND {no_index}status = 'APPLIED') AS settled GROUP BY minute",
    "SELECT minute, {sum:amount}, COUNT(*) FROM (
         SELECT substr(created_at, 1, 16) AS minute, precise_amount AS amount FROM transactions
         WHERE source_balance_id = $1 AND effective_date IS NULL AND created_at >= $2 AND created_at < $3
         AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT substr(effective_date, 1, 16), precise_amount FROM transactions
         WHERE source_balance_id = $1 AND effective_date >= $2 AND effective_date < $3
         AND {no_index}status = 'APPLIED') AS settled GROUP BY minute",
];

/// The ids of the transactions that moved a balance in `[$2, $3)`, in effective order, at most
/// `$4`. Four index ranges (each side, by `created_at` or by `effective_date`), so the cost is the
/// range's, not the balance's whole log.
pub(super) static SETTLED_BETWEEN: &str = "SELECT transaction_id FROM (
         SELECT transaction_id, created_at AS moved_at, {seq} AS arrival FROM transactions
         WHERE source_balance_id = $1 AND effective_date IS NULL AND created_at >= $2 AND created_at < $3
         AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT transaction_id, effective_date, {seq} FROM transactions
         WHERE source_balance_id = $1 AND effective_date >= $2 AND effective_date < $3
         AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT transaction_id, created_at, {seq} FROM transactions
         WHERE destination_balance_id = $1 AND effective_date IS NULL AND created_at >= $2 AND created_at < $3
         AND {no_index}status = 'APPLIED'
         UNION ALL
         SELECT transaction_id, effective_date, {seq} FROM transactions
         WHERE destination_balance_id = $1 AND effective_date >= $2 AND effective_date < $3
         AND {no_index}status = 'APPLIED') AS moved
     ORDER BY moved_at, arrival LIMIT $4";

/// The ids of what waits for the queue (`QUEUED`, and `SCHEDULED` due by `$2`), oldest first, at
/// most `$1`; `QUEUED_IDS_LOCKED` also takes their row locks (PostgreSQL), skipping those another
/// process holds.
pub(super) static QUEUED_IDS: &str = "SELECT transaction_id FROM transactions
     WHERE status = 'QUEUED' OR (status = 'SCHEDULED' AND scheduled_for <= $2) ORDER BY {seq} LIMIT $1";
pub(super) static QUEUED_IDS_LOCKED: &str = "SELECT transaction_id FROM transactions
     WHERE status = 'QUEUED' OR (status = 'SCHEDULED' AND scheduled_for <= $2) ORDER BY {seq} LIMIT $1{skip_locked}";

/// The dispatcher's claim: the oldest due events. It must read only those, whatever the backlog
/// (a test checks SQLite's plan).
pub(super) const CLAIM_DUE_EVENTS: &str =
    "SELECT {events} FROM events WHERE status = 'pending' AND next_attempt_at <= $1
     ORDER BY next_attempt_at, {seq} LIMIT $2{skip_locked}";

impl<S: WriteSql> Writes for S {
    fn lock_balances(&mut self, sorted_ids: &[String]) -> StoreResult<Vec<Balance>> {
        // On PostgreSQL, ORDER BY runs below the row locks, so rows are locked in id order.
        self.all(
            "SELECT {balances} FROM balances WHERE balance_id {any} ORDER BY balance_id{lock}",
            &[Value::TextList(sorted_ids)],
        )
    }

    fn insert_ledger(&mut self, ledger: &Ledger) -> StoreResult<()> {
        self.execute("{insert:ledgers}", &ledger.values())?;
        to_index(self, "ledgers", &ledger.id)
    }

    fn update_ledger(&mut self, l: &Ledger) -> StoreResult<()> {
        self.execute("{update:ledgers}", &l.values())?;
        to_index(self, "ledgers", &l.id)
    }

    fn insert_balance(&mut self, balance: &Balance) -> StoreResult<()> {
        self.execute("{insert:balances}", &balance.values())?;
        // A balance's only free text is its metadata (its ids and codes are matched by column).
        if !balance.meta_data.is_empty() {
            to_index(self, "balances", &balance.id)?;
        }
        Ok(())
    }

    fn set_balance_identity(&mut self, balance_id: &str, identity_id: &str) -> StoreResult<()> {
        let sql = "UPDATE balances SET identity_id = $2 WHERE balance_id = $1";
        self.execute(sql, &[balance_id.into(), identity_id.into()]).map(drop)
    }

    fn insert_identity(&mut self, identity: &Identity) -> StoreResult<()> {
        self.execute("{insert:identities}", &identity.values())?;
        to_index(self, "identities", &identity.id)
    }

    fn update_identity(&mut self, identity: &Identity) -> StoreResult<()> {
        self.execute("{update:identities}", &identity.values())?;
        to_index(self, "identities", &identity.id)
    }

    fn delete_identity(&mut self, id: &str) -> StoreResult<()> {
        let unindex = match S::DIALECT {
            Dialect::Sqlite => {
                "DELETE FROM search_identities WHERE rowid = (SELECT rowid FROM identities WHERE identity_id = $1)"
            }
            Dialect::Postgres => {
                "DELETE FROM search_index WHERE collection = 'identities'
                 AND entity_seq = (SELECT seq FROM identities WHERE identity_id = $1)"
            }
        };
        self.execute(unindex, &[id.into()])?;
        self.execute("DELETE FROM identities WHERE identity_id = $1", &[id.into()]).map(drop)
    }

    fn insert_indicator(&mut self, balance: &Balance) -> StoreResult<bool> {
        // On PostgreSQL the insert waits for another process inserting the same indicator, then
        // does nothing if that one committed.
        let inserted = self.execute(
            "{insert:balances} ON CONFLICT (indicator, currency) WHERE indicator <> '' DO NOTHING",
            &balance.values(),
        )?;
        if inserted == 1 && !balance.meta_data.is_empty() {
            to_index(self, "balances", &balance.id)?;
        }
        Ok(inserted == 1)
    }

    fn delete_balance(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM balances WHERE balance_id = $1", &[id.into()]).map(drop)
    }

    fn save_balance_totals(&mut self, balance: &Balance) -> StoreResult<()> {
        self.write_totals(balance)
    }

    fn insert_transaction(&mut self, transaction: &Transaction) -> StoreResult<()> {
        self.write_transaction(transaction)?;
        // Without `effective_date` a row moved at its batch's instant, after every snapshot
        // (`domain::snapshot::SETTLING_MS`); with one, it may be behind some (H1).
        if transaction.status == Status::Applied && transaction.effective_date.is_some() {
            settle_late(self, transaction)?;
        }
        Ok(())
    }

    fn set_transaction_status(&mut self, id: &str, status: Status) -> StoreResult<()> {
        self.execute(
            "UPDATE transactions SET status = $2 WHERE transaction_id = $1",
            &[id.into(), status.as_str().into()],
        )?;
        // A queued or scheduled transaction applied now moved at its own effective instant, which
        // a snapshot taken meanwhile may be past (H1).
        if status == Status::Applied {
            if let Some(transaction) = self.transaction(id)? {
                settle_late(self, &transaction)?;
            }
        }
        Ok(())
    }

    fn insert_snapshot(&mut self, snapshot: &BalanceSnapshot) -> StoreResult<()> {
        self.execute("{insert:balance_snapshots} ON CONFLICT DO NOTHING", &snapshot.values()).map(drop)
    }

    fn set_transaction_meta_data(&mut self, id: &str, meta_data: &Map<String, serde_json::Value>) -> StoreResult<()> {
        self.execute(
            "UPDATE transactions SET meta_data = $2 WHERE transaction_id = $1",
            &[id.into(), meta_data.encode()],
        )?;
        to_index(self, "transactions", id)
    }

    fn set_balance_meta_data(&mut self, id: &str, meta_data: &Map<String, serde_json::Value>) -> StoreResult<()> {
        self.execute("UPDATE balances SET meta_data = $2 WHERE balance_id = $1", &[id.into(), meta_data.encode()])?;
        to_index(self, "balances", id)
    }

    fn queued_transactions(&mut self, limit: u32, now: &str, except: &[String]) -> StoreResult<Vec<Transaction>> {
        // SKIP LOCKED: another process applying queued transactions takes different ones.
        if except.is_empty() {
            return self.all(
                "SELECT {transactions} FROM transactions
                 WHERE status = 'QUEUED' OR (status = 'SCHEDULED' AND scheduled_for <= $2)
                 ORDER BY {seq} LIMIT $1{skip_locked}",
                &[Value::Int(limit.into()), now.into()],
            );
        }
        // Those set aside may not read back: the ids first, then the others' rows, by id.
        let wanted = limit.saturating_add(u32::try_from(except.len()).unwrap_or(u32::MAX));
        let ids: Vec<String> = self
            .rows(QUEUED_IDS_LOCKED, &[Value::Int(wanted.into()), now.into()], text)?
            .into_iter()
            .filter(|id| !except.contains(id))
            .take(limit as usize)
            .collect();
        let rows: Vec<Transaction> =
            self.all("SELECT {transactions} FROM transactions WHERE transaction_id {any}", &[Value::TextList(&ids)])?;
        let mut by_id: HashMap<String, Transaction> = rows.into_iter().map(|t| (t.id.clone(), t)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn queued_transaction(&mut self, id: &str, now: &str) -> StoreResult<Option<Transaction>> {
        self.one(
            "SELECT {transactions} FROM transactions
             WHERE transaction_id = $1 AND (status = 'QUEUED' OR (status = 'SCHEDULED' AND scheduled_for <= $2))
             {skip_locked}",
            &[id.into(), now.into()],
        )
    }

    fn insert_monitor(&mut self, monitor: &Monitor) -> StoreResult<()> {
        self.execute("{insert:balance_monitors}", &monitor.values()).map(drop)
    }

    fn update_monitor(&mut self, monitor: &Monitor) -> StoreResult<()> {
        self.execute("{update:balance_monitors}", &monitor.values()).map(drop)
    }

    fn save_monitor_state(&mut self, m: &Monitor) -> StoreResult<()> {
        self.execute(
            "UPDATE balance_monitors SET state = $2, trigger_count = $3, last_triggered_at = $4, velocity = $5
             WHERE monitor_id = $1",
            &[
                (&m.id).into(),
                m.state.as_str().into(),
                m.trigger_count.into(),
                m.last_triggered_at.as_deref().into(),
                m.velocity.encode(),
            ],
        )
        .map(drop)
    }

    fn delete_monitor(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM balance_monitors WHERE monitor_id = $1", &[id.into()]).map(drop)
    }

    fn share_rules_of_ledgers(&mut self, ledger_ids: &[String]) -> StoreResult<Vec<Monitor>> {
        let rules: Vec<LedgerRule> = self.all(
            "SELECT {ledger_monitors} FROM ledger_monitors WHERE ledger_id {any} ORDER BY monitor_id{share}",
            &[Value::TextList(ledger_ids)],
        )?;
        Ok(rules.into_iter().map(LedgerRule::into_monitor).collect())
    }

    fn insert_rule(&mut self, rule: &Monitor) -> StoreResult<()> {
        self.execute("{insert:ledger_monitors}", &LedgerRule::of(rule).values()).map(drop)
    }

    fn update_rule(&mut self, rule: &Monitor, keep_windows: bool) -> StoreResult<()> {
        // The row first: its lock waits for every batch evaluating the rule (they hold it shared).
        self.execute("{update:ledger_monitors}", &LedgerRule::of(rule).values())?;
        let sql = match keep_windows {
            true => "UPDATE ledger_monitor_states SET state = 'ok' WHERE monitor_id = $1",
            false => "UPDATE ledger_monitor_states SET state = 'ok', velocity = NULL WHERE monitor_id = $1",
        };
        self.execute(sql, &[(&rule.id).into()]).map(drop)
    }

    fn delete_rule(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM ledger_monitors WHERE monitor_id = $1", &[id.into()])?;
        self.execute("DELETE FROM ledger_monitor_states WHERE monitor_id = $1", &[id.into()]).map(drop)
    }

    fn mark_rule_states(&mut self, balance_id: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE balances SET has_rule_states = $2 WHERE balance_id = $1",
            &[balance_id.into(), Value::Bool(true)],
        )
        .map(drop)
    }

    fn save_rule_state(&mut self, state: &RuleState) -> StoreResult<()> {
        self.execute(
            "{insert:ledger_monitor_states} ON CONFLICT (balance_id, monitor_id) DO UPDATE SET
             state = excluded.state, trigger_count = excluded.trigger_count,
             last_triggered_at = excluded.last_triggered_at, velocity = excluded.velocity",
            &state.values(),
        )
        .map(drop)
    }

    fn save_checkpoint_chunk(&mut self, balance_id: &str, chunk: &CheckpointLog) -> StoreResult<()> {
        let last = chunk.last().expect("a stored chunk holds at least one checkpoint");
        let row = CheckpointChunk { balance_id: balance_id.to_string(), version: last.version, entries: chunk.clone() };
        self.execute("{insert:checkpoint_chunks}", &row.values()).map(drop)
    }

    fn checkpoint_chunk_after(&mut self, balance_id: &str, version: i64) -> StoreResult<Option<CheckpointLog>> {
        let chunk: Option<CheckpointChunk> = self.one(
            "SELECT {checkpoint_chunks} FROM checkpoint_chunks WHERE balance_id = $1 AND version > $2
             ORDER BY version LIMIT 1",
            &[balance_id.into(), version.into()],
        )?;
        Ok(chunk.map(|row| row.entries))
    }

    fn prune_checkpoint_chunks(&mut self, balance_id: &str, through_version: i64) -> StoreResult<()> {
        self.execute(
            "DELETE FROM checkpoint_chunks WHERE balance_id = $1 AND version <= $2",
            &[balance_id.into(), through_version.into()],
        )
        .map(drop)
    }

    fn insert_event(&mut self, event: &Event) -> StoreResult<()> {
        self.write_event(event)
    }

    fn claim_due_events(&mut self, now_ms: i64, lease_until_ms: i64, limit: u32) -> StoreResult<Vec<Event>> {
        // SKIP LOCKED plus the lease: no two processes deliver one event at the same time.
        let due: Vec<Event> = self.all(CLAIM_DUE_EVENTS, &[now_ms.into(), Value::Int(limit.into())])?;
        let ids: Vec<String> = due.iter().map(|e| e.id.clone()).collect();
        self.execute(
            "UPDATE events SET next_attempt_at = $2 WHERE event_id {any}",
            &[Value::TextList(&ids), lease_until_ms.into()],
        )?;
        Ok(due)
    }

    fn record_attempt(&mut self, attempt: &Attempt, after: &AfterAttempt) -> StoreResult<()> {
        self.execute("{insert:event_attempts}", &attempt.values())?;
        let (status, next, delivered_at) = after.state();
        self.execute(
            "UPDATE events SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5, delivered_at = $6
             WHERE event_id = $1",
            &[
                (&attempt.event_id).into(),
                status.as_str().into(),
                Value::Int(attempt.attempt.into()),
                next.into(),
                attempt.error.as_deref().into(),
                delivered_at.into(),
            ],
        )
        .map(drop)
    }

    fn redeliver_event(&mut self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let changed = self.execute(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $2, delivered_at = NULL
             WHERE event_id = $1",
            &[id.into(), now_ms.into()],
        )?;
        Ok(changed > 0)
    }

    fn lease_stream(&mut self, stream: &str, owner: &str, now_ms: i64, until_ms: i64) -> StoreResult<Option<i64>> {
        self.execute(
            "INSERT INTO stream_cursors (stream, sequence) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING",
            &[stream.into()],
        )?;
        let leased = self.rows(
            "UPDATE stream_cursors SET owner = $2, lease_until = $4
             WHERE stream = $1 AND (owner = $2 OR owner IS NULL OR lease_until < $3) RETURNING sequence",
            &[stream.into(), owner.into(), now_ms.into(), until_ms.into()],
            |c| c.int(),
        )?;
        Ok(leased.first().copied())
    }

    fn advance_stream(&mut self, stream: &str, owner: &str, sequence: i64) -> StoreResult<bool> {
        let changed = self.execute(
            "UPDATE stream_cursors SET sequence = $3 WHERE stream = $1 AND owner = $2 AND sequence <= $3",
            &[stream.into(), owner.into(), sequence.into()],
        )?;
        Ok(changed > 0)
    }

    fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        self.execute("{insert:api_keys}", &key.values()).map(drop)
    }

    fn revoke_api_key(&mut self, id: &str, at: &str) -> StoreResult<()> {
        self.execute("UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1", &[id.into(), at.into()]).map(drop)
    }

    fn redeliver_failed(&mut self, now_ms: i64) -> StoreResult<u64> {
        self.execute(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $1 WHERE status = 'failed'",
            &[now_ms.into()],
        )
    }

    fn insert_endpoint(&mut self, endpoint: &Endpoint) -> StoreResult<()> {
        self.execute("{insert:webhook_endpoints}", &endpoint.values()).map(drop)
    }

    fn update_endpoint(&mut self, endpoint: &Endpoint) -> StoreResult<()> {
        self.execute("{update:webhook_endpoints}", &endpoint.values()).map(drop)
    }

    fn delete_endpoint(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM endpoint_deliveries WHERE endpoint_id = $1", &[id.into()])?;
        self.execute("DELETE FROM stream_cursors WHERE stream = $1", &[endpoint_stream(id).as_str().into()])?;
        self.execute("DELETE FROM webhook_endpoints WHERE endpoint_id = $1", &[id.into()]).map(drop)
    }

    fn set_stream_cursor(&mut self, stream: &str, sequence: i64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO stream_cursors (stream, sequence) VALUES ($1, $2)
             ON CONFLICT (stream) DO UPDATE SET sequence = excluded.sequence",
            &[stream.into(), sequence.into()],
        )
        .map(drop)
    }

    fn insert_endpoint_delivery(&mut self, delivery: &EndpointDelivery) -> StoreResult<()> {
        self.execute("{insert:endpoint_deliveries} ON CONFLICT (endpoint_id, event_id) DO NOTHING", &delivery.values())
            .map(drop)
    }

    fn record_endpoint_run(&mut self, id: &str, at: &str, success: bool) -> StoreResult<()> {
        self.execute(
            "UPDATE webhook_endpoints SET last_run = $2, last_success = $3 WHERE endpoint_id = $1",
            &[id.into(), at.into(), Value::Bool(success)],
        )
        .map(drop)
    }

    fn claim_endpoint_retries(
        &mut self,
        endpoint_id: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<EndpointDelivery>> {
        let due: Vec<EndpointDelivery> = self.all(
            "SELECT {endpoint_deliveries} FROM endpoint_deliveries
             WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2
             ORDER BY next_attempt_at LIMIT $3{skip_locked}",
            &[endpoint_id.into(), now_ms.into(), Value::Int(limit.into())],
        )?;
        for delivery in &due {
            self.execute(
                "UPDATE endpoint_deliveries SET next_attempt_at = $3 WHERE endpoint_id = $1 AND event_id = $2",
                &[endpoint_id.into(), (&delivery.event_id).into(), lease_until_ms.into()],
            )?;
        }
        Ok(due)
    }

    fn record_endpoint_attempt(&mut self, attempt: &Attempt, after: &AfterAttempt) -> StoreResult<()> {
        self.execute("{insert:event_attempts}", &attempt.values())?;
        let (status, next, delivered_at) = after.state();
        self.execute(
            "UPDATE endpoint_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
                 delivered_at = $7
             WHERE endpoint_id = $1 AND event_id = $2",
            &[
                attempt.endpoint_id.as_deref().into(),
                (&attempt.event_id).into(),
                status.as_str().into(),
                Value::Int(attempt.attempt.into()),
                next.into(),
                attempt.error.as_deref().into(),
                delivered_at.into(),
            ],
        )
        .map(drop)
    }

    fn redeliver_to_endpoint(&mut self, endpoint_id: &str, event: &Event, now_ms: i64) -> StoreResult<()> {
        let fresh = EndpointDelivery {
            endpoint_id: endpoint_id.to_string(),
            event_id: event.id.clone(),
            event_type: event.kind,
            status: Delivery::Pending,
            attempts: 0,
            next_attempt_at: now_ms,
            last_error: None,
            delivered_at: None,
        };
        self.insert_endpoint_delivery(&fresh)?;
        self.execute(
            "UPDATE endpoint_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3, delivered_at = NULL
             WHERE endpoint_id = $1 AND event_id = $2",
            &[endpoint_id.into(), (&event.id).into(), now_ms.into()],
        )
        .map(drop)
    }

    fn index_terms(&mut self, collection: Collection, position: i64, terms: &[String]) -> StoreResult<()> {
        match S::DIALECT {
            Dialect::Postgres if terms.is_empty() => self
                .execute(
                    "DELETE FROM search_index WHERE collection = $1 AND entity_seq = $2",
                    &[table_of(collection).into(), position.into()],
                )
                .map(drop),
            Dialect::Postgres => {
                let sql = "INSERT INTO search_index (collection, entity_seq, terms)
                    VALUES ($2, $3, array_to_tsvector($1::text[]))
                    ON CONFLICT (collection, entity_seq) DO UPDATE SET terms = EXCLUDED.terms";
                self.execute(sql, &[Value::TextList(terms), table_of(collection).into(), position.into()]).map(drop)
            }
            Dialect::Sqlite => {
                let (delete, insert) = match collection {
                    Collection::Ledgers => (
                        "DELETE FROM search_ledgers WHERE rowid = $1",
                        "INSERT INTO search_ledgers (rowid, terms) VALUES ($1, $2)",
                    ),
                    Collection::Balances => (
                        "DELETE FROM search_balances WHERE rowid = $1",
                        "INSERT INTO search_balances (rowid, terms) VALUES ($1, $2)",
                    ),
                    Collection::Transactions => (
                        "DELETE FROM search_transactions WHERE rowid = $1",
                        "INSERT INTO search_transactions (rowid, terms) VALUES ($1, $2)",
                    ),
                    Collection::Identities | Collection::Monitors => (
                        "DELETE FROM search_identities WHERE rowid = $1",
                        "INSERT INTO search_identities (rowid, terms) VALUES ($1, $2)",
                    ),
                };
                self.execute(delete, &[position.into()])?;
                if terms.is_empty() {
                    return Ok(());
                }
                self.execute(insert, &[position.into(), terms.join(" ").as_str().into()]).map(drop)
            }
        }
    }

    fn drop_search_queue(&mut self, positions: &[i64]) -> StoreResult<()> {
        // Exactly these: an entry numbered between them may commit after they were read (PostgreSQL
        // numbers rows when they are written, not when they commit).
        let positions: Vec<String> = positions.iter().map(i64::to_string).collect();
        let sql = match S::DIALECT {
            Dialect::Postgres => "DELETE FROM search_dirty WHERE position = ANY($1::text[]::bigint[])",
            Dialect::Sqlite => "DELETE FROM search_dirty WHERE position {any}",
        };
        self.execute(sql, &[Value::TextList(&positions)]).map(drop)
    }

    fn reset_search_index(&mut self) -> StoreResult<()> {
        let clear: &[&'static str] = match S::DIALECT {
            Dialect::Postgres => &["DELETE FROM search_index"],
            Dialect::Sqlite => &[
                "DELETE FROM search_ledgers",
                "DELETE FROM search_balances",
                "DELETE FROM search_transactions",
                "DELETE FROM search_identities",
            ],
        };
        for sql in clear {
            self.execute(sql, &[])?;
        }
        self.execute("DELETE FROM search_dirty", &[])?;
        for sql in [
            "INSERT INTO search_dirty (collection, entity_id) SELECT 'ledgers', ledger_id FROM ledgers ORDER BY {seq}",
            "INSERT INTO search_dirty (collection, entity_id)
             SELECT 'balances', balance_id FROM balances WHERE length(meta_data) > 2 ORDER BY {seq}",
            "INSERT INTO search_dirty (collection, entity_id)
             SELECT 'identities', identity_id FROM identities ORDER BY {seq}",
            "INSERT INTO search_dirty (collection, entity_id) SELECT 'transactions', transaction_id FROM transactions
             WHERE description <> '' OR length(meta_data) > 2 ORDER BY {seq}",
        ] {
            self.execute(sql, &[])?;
        }
        Ok(())
    }
}

/// A collection's table: also its name in the search tables and the search queue.
pub fn table_of(collection: Collection) -> &'static str {
    match collection {
        Collection::Ledgers => "ledgers",
        Collection::Balances => "balances",
        Collection::Transactions => "transactions",
        Collection::Identities => "identities",
        Collection::Monitors => "balance_monitors",
    }
}
