//! A `filter::Query` as one SQL statement per dialect: what each field of a collection is in its
//! table, and what each operator compares. Built at run time (every query differs), with every value
//! bound as a parameter; only the domain's fixed field list ever becomes SQL text.
//!
//! Amounts are exact on both backends: PostgreSQL compares `NUMERIC`; SQLite stores amounts as
//! decimal text, so both sides are turned into order-preserving keys (`Decimal::sort_key`, by the
//! `keel_key` functions `sqlite.rs` registers) and compared as text.

use super::codec::Value;
use super::sql::{select_list, Dialect};
use crate::domain::amount::Decimal;
use crate::domain::filter::{Collection, Condition, Field, Kind, Op, Operand, Query, Value as Operand1};
use crate::domain::search::TextMatch;
use std::borrow::Cow;

/// A statement and its parameters.
pub struct Built {
    pub sql: String,
    pub params: Vec<Value<'static>>,
}

/// The page of rows `query` asks for, and, when it asks for a count, the statement counting them all.
pub fn build(dialect: Dialect, query: &Query) -> (Built, Option<Built>) {
    let mut b = Builder { dialect, params: Vec::new() };
    let (table, select, seq) = match query.collection {
        // Both kinds of monitor as one list, a page of ids (the store reads the monitors by them).
        Collection::Monitors => (MONITORS.to_string(), "t.monitor_id".to_string(), "t.monitor_id"),
        other => {
            let table = table(other);
            let seq = if dialect == Dialect::Postgres { "t.seq" } else { "t.rowid" };
            (table.to_string(), select_list(dialect, table), seq)
        }
    };
    let conditions: Vec<String> = query.conditions.iter().map(|c| b.condition(query.collection, c)).collect();
    let mut filter = match (conditions.is_empty(), query.any) {
        (true, _) => String::new(),
        (false, false) => format!(" WHERE {}", conditions.join(" AND ")),
        (false, true) => format!(" WHERE ({})", conditions.join(") OR (")),
    };
    if let Some(text) = &query.text {
        let matched = b.text_match(query.collection, text, seq);
        filter = match filter.is_empty() {
            true => format!(" WHERE {matched}"),
            false => format!("{filter} AND {matched}"),
        };
    }
    let count =
        query.count.then(|| Built { sql: format!("SELECT COUNT(*) FROM {table} t{filter}"), params: b.params.clone() });
    let direction = if query.newest_first { "DESC" } else { "ASC" };
    let order = match &query.sort_by {
        // Blnk's order: newest first by `created_at`, then by arrival (both ends of every index).
        None => format!("t.created_at {direction}, {seq} {direction}"),
        Some((field, kind)) => {
            let key = b.sort_key(query.collection, field, *kind);
            // Where a value is missing (NULL), PostgreSQL sorts as SQLite does: smallest.
            let nulls = match (dialect, query.newest_first) {
                (Dialect::Postgres, false) => " NULLS FIRST",
                (Dialect::Postgres, true) => " NULLS LAST",
                (Dialect::Sqlite, _) => "",
            };
            format!("{key} {direction}{nulls}, {seq} {direction}")
        }
    };
    let limit = b.bind(Value::Int(query.limit.into()));
    let offset = b.bind(Value::Int(i64::try_from(query.offset).unwrap_or(i64::MAX)));
    let sql = format!("SELECT {select} FROM {table} t{filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}");
    (Built { sql, params: b.params }, count)
}

/// Monitors of balances (with their balance's ledger and currency) and rules (with the state and
/// counts of all their balances) as one relation, for filters.
const MONITORS: &str = "(SELECT m.monitor_id, m.balance_id, b.ledger_id, b.currency, m.field, m.operator,
        m.trigger_mode, m.action, m.state, m.description, m.trigger_count, m.last_triggered_at, m.created_at,
        m.meta_data
    FROM balance_monitors m JOIN balances b ON b.balance_id = m.balance_id
    UNION ALL
    SELECT r.monitor_id, '', r.ledger_id, COALESCE(r.currency, ''), r.field, r.operator, r.trigger_mode, r.action,
        CASE WHEN EXISTS (SELECT 1 FROM ledger_monitor_states s WHERE s.monitor_id = r.monitor_id
            AND s.state = 'triggered') THEN 'triggered' ELSE 'ok' END,
        r.description,
        (SELECT CAST(COALESCE(SUM(s.trigger_count), 0) AS BIGINT) FROM ledger_monitor_states s
            WHERE s.monitor_id = r.monitor_id),
        (SELECT MAX(s.last_triggered_at) FROM ledger_monitor_states s WHERE s.monitor_id = r.monitor_id),
        r.created_at, r.meta_data
    FROM ledger_monitors r)";

/// A collection's table.
fn table(collection: Collection) -> &'static str {
    super::sql::table_of(collection)
}

/// What a field is in its table.
enum Column {
    /// Text; empty means not set (`identity_id`, `indicator`…), as NULL does.
    Text(&'static str),
    /// An amount: minor units in a column, or the difference of two.
    Minor(&'static str),
    Difference(&'static str, &'static str),
    /// A transaction's amount in major units: `precise_amount ÷ 10^precision_exponent`.
    Major,
    /// `10^precision_exponent`.
    Precision,
    Instant(&'static str),
    /// `effective_date`, or `created_at` where it is not set.
    EffectiveDate,
    /// What a transaction shows as `parent_transaction`: the transaction it commits, voids or
    /// refunds, or the split or bulk request it belongs to.
    Parent,
    /// Either balance of a transaction.
    EitherBalance,
    /// The indicator of either balance of a transaction.
    EitherIndicator,
    Meta(String),
}

fn column(collection: Collection, field: &Field) -> Column {
    use Collection::*;
    match (collection, field) {
        (Ledgers, Field::Id) => Column::Text("ledger_id"),
        (Balances, Field::Id) => Column::Text("balance_id"),
        (Transactions, Field::Id) => Column::Text("transaction_id"),
        (Identities, Field::Id) => Column::Text("identity_id"),
        (_, Field::Named(name)) => Column::Text(name),
        (_, Field::Dob) => Column::Instant("dob"),
        (Monitors, Field::Id) => Column::Text("monitor_id"),
        (_, Field::TriggerCount) => Column::Minor("trigger_count"),
        (_, Field::LastTriggeredAt) => Column::Instant("last_triggered_at"),
        (_, Field::Name) => Column::Text("name"),
        (_, Field::CreatedAt) => Column::Instant("created_at"),
        (_, Field::LedgerId) => Column::Text("ledger_id"),
        (_, Field::IdentityId) => Column::Text("identity_id"),
        (Transactions, Field::Indicator) => Column::EitherIndicator,
        (_, Field::Indicator) => Column::Text("indicator"),
        (_, Field::Currency) => Column::Text("currency"),
        (_, Field::Balance) => Column::Difference("credit_balance", "debit_balance"),
        (_, Field::CreditBalance) => Column::Minor("credit_balance"),
        (_, Field::DebitBalance) => Column::Minor("debit_balance"),
        (_, Field::InflightBalance) => Column::Difference("inflight_credit_balance", "inflight_debit_balance"),
        (_, Field::InflightCreditBalance) => Column::Minor("inflight_credit_balance"),
        (_, Field::InflightDebitBalance) => Column::Minor("inflight_debit_balance"),
        (_, Field::ParentTransaction) => Column::Parent,
        (_, Field::Amount) => Column::Major,
        (_, Field::PreciseAmount) => Column::Minor("precise_amount"),
        (_, Field::Precision) => Column::Precision,
        (_, Field::Source) => Column::Text("source_balance_id"),
        (_, Field::Destination) => Column::Text("destination_balance_id"),
        (_, Field::BalanceId) => Column::EitherBalance,
        (_, Field::Reference) => Column::Text("reference"),
        (_, Field::Status) => Column::Text("status"),
        (_, Field::Description) => Column::Text("description"),
        (_, Field::EffectiveDate) => Column::EffectiveDate,
        (_, Field::Meta(key)) => Column::Meta(key.clone()),
    }
}

struct Builder {
    dialect: Dialect,
    params: Vec<Value<'static>>,
}

impl Builder {
    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Binds a parameter; answers its placeholder.
    fn bind(&mut self, value: Value<'static>) -> String {
        self.params.push(value);
        let n = self.params.len();
        if self.pg() {
            format!("${n}")
        } else {
            format!("?{n}")
        }
    }

    /// The records a search's text matches (`domain::search`): by their index terms, or by a
    /// keyword field equal to the whole text.
    fn text_match(&mut self, collection: Collection, text: &TextMatch, seq: &str) -> String {
        let mut any: Vec<String> = text.keywords.iter().map(|c| self.condition(collection, c)).collect();
        if !text.fields.is_empty() {
            any.push(self.terms_match(collection, text, seq));
        }
        format!("({})", any.join(" OR "))
    }

    /// The records whose index terms match: SQLite's FTS5 table of the collection
    /// (`search_<table>`, its rowid the record's), PostgreSQL's `search_index` by GIN. Terms are
    /// matched literally: FTS5 strings, and a `tsquery` cast (not parsed by a dictionary).
    fn terms_match(&mut self, collection: Collection, text: &TextMatch, seq: &str) -> String {
        let last = text.tokens.len() - 1;
        let table = table(collection);
        if self.pg() {
            let query = text
                .tokens
                .iter()
                .enumerate()
                .map(|(i, token)| {
                    let prefix = if i == last { ":*" } else { "" };
                    let any: Vec<String> = text.fields.iter().map(|f| format!("'{f}.{token}'{prefix}")).collect();
                    format!("({})", any.join(" | "))
                })
                .collect::<Vec<_>>()
                .join(" & ");
            let (collection, query) = (self.text(table), self.text(&query));
            format!(
                "{seq} IN (SELECT entity_seq FROM search_index
                 WHERE collection = {collection} AND terms @@ {query}::tsquery)"
            )
        } else {
            let query = text
                .tokens
                .iter()
                .enumerate()
                .map(|(i, token)| {
                    let prefix = if i == last { "*" } else { "" };
                    let any: Vec<String> = text.fields.iter().map(|f| format!("\"{f}.{token}\"{prefix}")).collect();
                    format!("({})", any.join(" OR "))
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let query = self.text(&query);
            format!("{seq} IN (SELECT rowid FROM search_{table} WHERE search_{table} MATCH {query})")
        }
    }

    fn text(&mut self, text: &str) -> String {
        let at = self.bind(Value::Text(Cow::Owned(text.to_string())));
        if self.pg() {
            format!("{at}::text")
        } else {
            at
        }
    }

    fn condition(&mut self, collection: Collection, c: &Condition) -> String {
        let column = column(collection, &c.field);
        match (&c.op, &c.operand) {
            (Op::IsNull, _) => self.is_null(&column),
            (Op::IsNotNull, _) => format!("NOT {}", self.is_null(&column)),
            (Op::Ne, Operand::One(Operand1::Text(v))) if matches!(column, Column::Text(_) | Column::Parent) => {
                // What is not set matches no comparison, `ne` included (SQL's NULL).
                let expr = self.text_of(&column);
                format!("({expr} <> {})", self.text(v))
            }
            (Op::Ne, Operand::One(v)) => format!("NOT {}", self.equals(&column, c.kind, v)),
            (Op::In, Operand::List(values)) => {
                let each: Vec<String> = values.iter().map(|v| self.equals(&column, c.kind, v)).collect();
                format!("({})", each.join(" OR "))
            }
            (Op::Eq, Operand::One(v)) => self.equals(&column, c.kind, v),
            (Op::Like | Op::ILike, Operand::One(Operand1::Text(pattern))) => {
                self.like(&column, pattern, c.op == Op::ILike)
            }
            (Op::Between, Operand::Two(low, high)) => {
                let low = self.compare(&column, c.kind, Op::Gte, low);
                let high = self.compare(&column, c.kind, Op::Lte, high);
                format!("({low} AND {high})")
            }
            (op, Operand::One(v)) => self.compare(&column, c.kind, *op, v),
            (op, operand) => unreachable!("the domain never pairs {op:?} with {operand:?}"),
        }
    }

    /// The field's text, for comparisons and patterns; NULL where it is not set (Keel stores an
    /// unset text as '').
    fn text_of(&mut self, column: &Column) -> String {
        match column {
            Column::Text(c) => format!("NULLIF(t.{c}, '')"),
            Column::Instant(c) => format!("t.{c}"),
            Column::EffectiveDate => "COALESCE(t.effective_date, t.created_at)".to_string(),
            Column::Parent => "COALESCE(t.parent_transaction, t.group_id)".to_string(),
            Column::Meta(key) if self.pg() => format!("(t.meta_data::jsonb ->> {})", self.text(key)),
            Column::Meta(key) => {
                // A string's text, a number's or a boolean's JSON literal; JSON null is NULL.
                let path = self.text(&format!("$.{key}"));
                format!(
                    "(CASE json_type(t.meta_data, {path}) WHEN 'text' THEN json_extract(t.meta_data, {path}) \
                     WHEN 'null' THEN NULL ELSE t.meta_data -> {path} END)"
                )
            }
            other => unreachable!("{} is not compared as text", other.name()),
        }
    }

    fn is_null(&mut self, column: &Column) -> String {
        match column {
            Column::Text(c) => format!("(t.{c} IS NULL OR t.{c} = '')"),
            Column::Instant(c) => format!("(t.{c} IS NULL)"),
            Column::EffectiveDate => "(t.effective_date IS NULL)".to_string(),
            Column::Parent => "(t.parent_transaction IS NULL AND t.group_id IS NULL)".to_string(),
            Column::Meta(_) => format!("({} IS NULL)", self.text_of(column)),
            Column::EitherIndicator => format!("NOT {}", self.either_indicator("b.indicator <> ''")),
            // Every other field always has a value.
            _ => "(1 = 0)".to_string(),
        }
    }

    fn equals(&mut self, column: &Column, kind: Kind, value: &Operand1) -> String {
        match (column, value) {
            (Column::EitherBalance, Operand1::Text(id)) => {
                let at = self.text(id);
                format!("(t.source_balance_id = {at} OR t.destination_balance_id = {at})")
            }
            // Each of the two indexed columns looked up on its own, then the page sorted: as one
            // `OR`, PostgreSQL's planner walks the whole table newest first hoping for an early
            // match (850 ms at 1,000,000 transactions, against 4 ms this way).
            (Column::Parent, Operand1::Text(id)) => {
                let at = self.text(id);
                format!(
                    "t.transaction_id IN (SELECT transaction_id FROM transactions WHERE parent_transaction = {at} \
                     UNION ALL SELECT transaction_id FROM transactions WHERE group_id = {at})"
                )
            }
            (Column::EitherIndicator, Operand1::Text(indicator)) => {
                let at = self.text(indicator);
                self.either_indicator(&format!("b.indicator = {at}"))
            }
            (_, Operand1::Instant { from, until }) => {
                let expr = self.text_of(column);
                let (from, until) = (self.text(from), self.text(until));
                format!("({expr} >= {from} AND {expr} < {until})")
            }
            (_, Operand1::Number(_)) => self.compare(column, kind, Op::Eq, value),
            // The bare column, so its index serves; '' is no value, so it matches nothing.
            (Column::Text(_), Operand1::Text(text)) if text.is_empty() => "(1 = 0)".to_string(),
            (Column::Text(c), Operand1::Text(text)) => format!("(t.{c} = {})", self.text(text)),
            (_, Operand1::Text(text)) => {
                let expr = self.text_of(column);
                format!("({expr} = {})", self.text(text))
            }
        }
    }

    fn either_indicator(&self, condition: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM balances b WHERE b.balance_id IN (t.source_balance_id, t.destination_balance_id) \
             AND {condition})"
        )
    }

    fn like(&mut self, column: &Column, pattern: &str, any_case: bool) -> String {
        let pg = self.pg();
        let condition = |this: &mut Builder, expr: &str| match (pg, any_case) {
            (true, false) => format!("({expr} LIKE {})", this.text(pattern)),
            (true, true) => format!("({expr} ILIKE {})", this.text(pattern)),
            // SQLite's LIKE ignores ASCII case, so a case-sensitive pattern becomes a GLOB.
            (false, false) => format!("({expr} GLOB {})", this.text(&like_to_glob(pattern))),
            (false, true) => format!("({expr} LIKE {} ESCAPE '\\')", this.text(pattern)),
        };
        match column {
            Column::EitherIndicator => {
                let inner = condition(self, "b.indicator");
                self.either_indicator(&inner)
            }
            _ => {
                let expr = self.text_of(column);
                condition(self, &expr)
            }
        }
    }

    /// `gt`, `gte`, `lt`, `lte` (and `eq` of numbers).
    fn compare(&mut self, column: &Column, kind: Kind, op: Op, value: &Operand1) -> String {
        let sign = match op {
            Op::Eq => "=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
            other => unreachable!("{other:?} is not an ordering"),
        };
        match value {
            // An instant is its span: after it starts at its end, up to it ends at its start.
            Operand1::Instant { from, until } => {
                let expr = self.text_of(column);
                let (sign, bound) = match op {
                    Op::Gt => (">=", until),
                    Op::Gte => (">=", from),
                    Op::Lt => ("<", from),
                    _ => ("<", until),
                };
                format!("({expr} {sign} {})", self.text(bound))
            }
            Operand1::Number(number) => self.compare_number(column, sign, number),
            Operand1::Text(text) => {
                debug_assert_eq!(kind, Kind::Text);
                let expr = self.text_of(column);
                format!("({expr}{} {sign} {})", self.byte_order(), self.text(text))
            }
        }
    }

    fn compare_number(&mut self, column: &Column, sign: &str, number: &Decimal) -> String {
        if self.pg() {
            let at = self.bind(Value::Text(Cow::Owned(number.to_plain_string())));
            let value = format!("{at}::text::numeric");
            return match column {
                // Scaled on the value's side: exact, and no division per row.
                Column::Major => {
                    format!("(t.precise_amount {sign} {value} * power(10::numeric, t.precision_exponent))")
                }
                _ => format!("({} {sign} {value})", self.number_of(column)),
            };
        }
        let expr = self.number_of(column);
        format!("({expr} {sign} {})", self.text(&number.sort_key()))
    }

    /// The field as a number: `NUMERIC` on PostgreSQL, its order-preserving key on SQLite.
    fn number_of(&mut self, column: &Column) -> String {
        let pg = self.pg();
        match column {
            Column::Minor(c) if pg => format!("t.{c}"),
            Column::Minor(c) => format!("keel_key(t.{c}, 0)"),
            Column::Difference(a, b) if pg => format!("(t.{a} - t.{b})"),
            Column::Difference(a, b) => format!("keel_difference_key(t.{a}, t.{b})"),
            Column::Major if pg => "(t.precise_amount / power(10::numeric, t.precision_exponent))".to_string(),
            Column::Major => "keel_key(t.precise_amount, t.precision_exponent)".to_string(),
            Column::Precision if pg => "power(10::numeric, t.precision_exponent)".to_string(),
            Column::Precision => "keel_key(1, -t.precision_exponent)".to_string(),
            Column::Meta(key) if pg => {
                let at = self.text(key);
                format!(
                    "(CASE WHEN jsonb_typeof(t.meta_data::jsonb -> {at}) = 'number' \
                     THEN (t.meta_data::jsonb ->> {at})::numeric END)"
                )
            }
            // `->` keeps a number's JSON text, so `keel_key` reads it exactly; a string is no number.
            Column::Meta(key) => format!("keel_key(t.meta_data -> {}, 0)", self.text(&format!("$.{key}"))),
            other => unreachable!("{} is not a number", other.name()),
        }
    }

    /// Text orders byte by byte on both backends: PostgreSQL's default collation would not.
    fn byte_order(&self) -> &'static str {
        if self.pg() {
            " COLLATE \"C\""
        } else {
            ""
        }
    }

    /// What a sort orders by; an unset text ('') sorts first, as it is stored.
    fn sort_key(&mut self, collection: Collection, field: &Field, kind: Kind) -> String {
        let column = column(collection, field);
        match (kind, &column) {
            (Kind::Number, _) => self.number_of(&column),
            (_, Column::Text(c)) => format!("t.{c}{}", self.byte_order()),
            (Kind::Meta, _) => format!("{}{}", self.text_of(&column), self.byte_order()),
            _ => self.text_of(&column),
        }
    }
}

impl Column {
    fn name(&self) -> &'static str {
        match self {
            Column::Text(c) | Column::Minor(c) | Column::Instant(c) => c,
            Column::Difference(..) => "a difference of amounts",
            Column::Major => "amount",
            Column::Precision => "precision",
            Column::EffectiveDate => "effective_date",
            Column::Parent => "parent_transaction",
            Column::EitherBalance => "balance_id",
            Column::EitherIndicator => "indicator",
            Column::Meta(_) => "meta_data",
        }
    }
}

/// A LIKE pattern (`%` any run, `_` one character, `\` escaping the next) as the GLOB matching the
/// same texts, case-sensitively.
fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '\\' => match chars.next() {
                Some(escaped) => literal(&mut glob, escaped),
                None => literal(&mut glob, '\\'),
            },
            other => literal(&mut glob, other),
        }
    }
    glob
}

fn literal(glob: &mut String, c: char) {
    match c {
        '*' | '?' | '[' => {
            glob.push('[');
            glob.push(c);
            glob.push(']');
        }
        other => glob.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_become_globs_matching_the_same_texts() {
        assert_eq!(like_to_glob("%savings%"), "*savings*");
        assert_eq!(like_to_glob("a_c"), "a?c");
        assert_eq!(like_to_glob("100\\%"), "100%");
        assert_eq!(like_to_glob("what?*[x]"), "what[?][*][[]x]");
    }
}
