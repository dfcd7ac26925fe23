//! Search: Blnk's `POST /search/{collection}` (Typesense's request: `q`, `query_by`, `filter_by`,
//! `sort_by`, `page`, `per_page`), answered from Keel's own database.
//!
//! Text: every record of a searchable collection has index terms, one per token of each of its
//! free-text fields, written `field.token` (`description.payment`, `meta_data.channel.card`): tokens
//! are runs of letters and digits, lowercased. A query's words are tokenized the same way; a record
//! matches when every token is a term of one of the `query_by` fields, the query's last token as a
//! prefix (Typesense's default `prefix: true`), or when the whole query equals one of its id or
//! code fields named in `query_by` (`source`, `reference`, `status`…), which need no terms: their
//! columns' own indexes find them. `filter_by` and `sort_by` become the list filters'
//! conditions (`domain::filter`), so they mean what `?field_op=value` means.

use super::filter::{self, Collection, Condition, Op, Problem, Query, Raw};
use serde_json::{Map, Value};

/// Typesense's default and largest `per_page`.
pub const DEFAULT_PER_PAGE: u32 = 10;
pub const MAX_PER_PAGE: u32 = 250;
/// Most tokens a query's text may have.
pub const MAX_TOKENS: usize = 20;
/// Longest index term (`field.token`), in bytes: a longer one is not indexed, and a query word
/// that would make one is refused. PostgreSQL's text search refuses a word over 2,047 bytes; one
/// such word in a record would stop the indexer at that record, so both backends draw the line
/// here, the same way.
pub const MAX_TERM_BYTES: usize = 512;
/// Most bytes of terms one record is indexed with (a PostgreSQL `tsvector` holds under 1 MiB):
/// past it, the rest of a record's words are not indexed, in the order they appear.
pub const MAX_RECORD_TERM_BYTES: usize = 256 * 1024;

/// The collections search serves, by their names.
pub fn collection(name: &str) -> Option<Collection> {
    match name {
        "ledgers" => Some(Collection::Ledgers),
        "balances" => Some(Collection::Balances),
        "transactions" => Some(Collection::Transactions),
        "identities" => Some(Collection::Identities),
        _ => None,
    }
}

/// The fields of a collection `query_by` may name that hold an id or a code: `q` matches them as
/// a whole value, exactly (by the columns' own indexes, so they need no search terms).
pub fn keyword_fields(collection: Collection) -> &'static [&'static str] {
    match collection {
        Collection::Ledgers => &["ledger_id"],
        Collection::Balances => &["balance_id", "ledger_id", "identity_id", "indicator", "currency"],
        Collection::Transactions => {
            &["transaction_id", "reference", "source", "destination", "parent_transaction", "currency", "status"]
        }
        Collection::Identities => &["identity_id"],
        Collection::Monitors => &[],
    }
}

/// The free-text fields of a collection `query_by` may name (and `meta_data.<key>`): `q`'s words
/// match their search terms.
pub fn text_fields(collection: Collection) -> &'static [&'static str] {
    match collection {
        Collection::Ledgers => &["name"],
        Collection::Balances => &[],
        Collection::Transactions => &["description"],
        Collection::Identities => &super::identity::TEXT_FIELDS,
        Collection::Monitors => &[],
    }
}

/// Keel's tokens of a text: its runs of letters and digits, lowercased.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase)
}

/// A record's index terms: `field.token` for each of its text fields (`(name, value)`, as
/// `text_fields` names them) and `meta_data.key.token` for each metadata value (text, number or
/// boolean), each once, sorted. Terms over `MAX_TERM_BYTES` are left out, and so is whatever comes
/// after the first `MAX_RECORD_TERM_BYTES` of terms.
pub fn terms(fields: &[(&str, &str)], meta_data: &Map<String, Value>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (field, text) in fields {
        found.extend(tokens(text).map(|t| format!("{field}.{t}")));
    }
    for (key, value) in meta_data {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => continue,
        };
        let key = key.to_lowercase();
        found.extend(tokens(&text).map(|t| format!("meta_data.{key}.{t}")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    let mut terms: Vec<String> = Vec::new();
    for term in found {
        if term.len() > MAX_TERM_BYTES || seen.contains(&term) {
            continue;
        }
        bytes += term.len();
        if bytes > MAX_RECORD_TERM_BYTES {
            break;
        }
        seen.insert(term.clone());
        terms.push(term);
    }
    terms.sort();
    terms
}

/// What a query's text asks: every token (the last as a prefix) among the terms of `fields`, or
/// the whole text equal to one of the `keywords` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    /// Field prefixes of terms (`description`, `meta_data.channel`), lowercased; may be empty.
    pub fields: Vec<String>,
    /// At least one.
    pub tokens: Vec<String>,
    /// `field = q` for each keyword field of `query_by` (conditions of the list filters).
    pub keywords: Vec<Condition>,
}

/// A search request, read: the query its page answers (its `text` set when `q` has words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: Query,
    pub page: u32,
    pub per_page: u32,
}

/// Reads a search body for `collection`. Every parameter Keel does not serve is refused by name.
pub fn read(collection: Collection, body: &Map<String, Value>) -> Result<Search, Problem> {
    let problem = |param: &str, message: String| Problem { param: param.to_string(), message };
    for name in body.keys() {
        if !matches!(name.as_str(), "q" | "query_by" | "filter_by" | "sort_by" | "page" | "per_page") {
            return Err(problem(name, format!("{name} is not a search parameter Keel serves")));
        }
    }
    let text = |name: &str| -> Result<Option<&str>, Problem> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(problem(name, format!("{name} must be a string"))),
        }
    };
    let number = |name: &str, default: u32, max: u32| -> Result<u32, Problem> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                // 2.0 is 2 (a JSON number the SDKs may send as a float).
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
                .filter(|n| (1..=u64::from(max)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| problem(name, format!("{name} must be an integer from 1 to {max}"))),
            Some(_) => Err(problem(name, format!("{name} must be an integer"))),
        }
    };
    let q = text("q")?.ok_or_else(|| problem("q", "q is required (\"*\" matches every record)".into()))?;
    let (page, per_page) =
        (number("page", 1, u32::MAX / MAX_PER_PAGE)?, number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)?);
    let mut query = Query::all(collection, per_page, u64::from(page - 1) * u64::from(per_page));
    query.count = true;
    query.text = text_match(collection, q, text("query_by")?)?;
    if let Some(filter_by) = text("filter_by")?.filter(|f| !f.trim().is_empty()) {
        let (conditions, any) = filter_by_conditions(collection, filter_by)?;
        query.conditions = conditions;
        query.any = any;
    }
    if let Some(sort_by) = text("sort_by")?.filter(|s| !s.trim().is_empty()) {
        sort(&mut query, sort_by)?;
    }
    Ok(Search { query, page, per_page })
}

fn text_match(collection: Collection, q: &str, query_by: Option<&str>) -> Result<Option<TextMatch>, Problem> {
    let problem = |param: &str, message: String| Problem { param: param.to_string(), message };
    let q = q.trim();
    let words: Vec<String> = if q == "*" { Vec::new() } else { tokens(q).collect() };
    let fields: Vec<String> = match query_by {
        Some(list) => list.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
        None => Vec::new(),
    };
    for field in &fields {
        // A metadata key as the filters take one: `^[a-zA-Z][a-zA-Z0-9_]*$`.
        let key = |key: &str| {
            key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let known = text_fields(collection).contains(&field.as_str())
            || keyword_fields(collection).contains(&field.as_str())
            || field.strip_prefix("meta_data.").is_some_and(key);
        if !known {
            let fields: Vec<&str> = keyword_fields(collection).iter().chain(text_fields(collection)).copied().collect();
            let message = format!(
                "query_by: '{field}' is not a searchable field of {} (searchable: {}, meta_data.<key>)",
                collection.name(),
                fields.join(", ")
            );
            return Err(problem("query_by", message));
        }
    }
    if words.is_empty() {
        // `*`, or a text with no letter or digit: every record, as Typesense's wildcard.
        return Ok(None);
    }
    if fields.is_empty() {
        return Err(problem("query_by", "query_by is required unless q is \"*\"".into()));
    }
    if words.len() > MAX_TOKENS {
        return Err(problem("q", format!("q has more than {MAX_TOKENS} words")));
    }
    let (keywords, fields): (Vec<String>, Vec<String>) =
        fields.into_iter().partition(|f| keyword_fields(collection).contains(&f.as_str()));
    // Such a term is never indexed, so it could not match (and PostgreSQL would refuse to parse it).
    if let Some(field) = fields.iter().max_by_key(|f| f.len()) {
        if let Some(word) = words.iter().find(|w| field.len() + 1 + w.len() > MAX_TERM_BYTES) {
            let shown: String = word.chars().take(20).collect();
            let message = format!(
                "the word '{shown}…' of q is too long to search {field} for (a field and a word are at most \
                 {MAX_TERM_BYTES} bytes together)"
            );
            return Err(problem("q", message));
        }
    }
    let keywords = keywords
        .iter()
        .map(|field| {
            let raw = Raw::Json { value: Some(q.to_string()), values: None };
            filter::condition(collection, "query_by", field, Op::Eq, raw)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TextMatch { fields: fields.iter().map(|f| f.to_lowercase()).collect(), tokens: words, keywords }))
}

/// Typesense's `filter_by` as the list filters' conditions: `field:=v`, `field:!=v`, `field:>v` (and
/// `>=`, `<`, `<=`), `field:[a, b]` and `field:=[a, b]` (any of), `field:[a..b]` (a range, both
/// ends included), `field:v` (text containing `v`; equal for numbers and instants); joined by `&&`
/// or by `||` (not both). Instants are Unix seconds, as Typesense documents hold them.
fn filter_by_conditions(collection: Collection, filter_by: &str) -> Result<(Vec<Condition>, bool), Problem> {
    let problem = |message: String| Problem { param: "filter_by".into(), message };
    let (and, or) = (filter_by.contains("&&"), filter_by.contains("||"));
    if and && or || filter_by.contains('(') {
        return Err(problem(
            "filter_by joins its conditions with && or with ||, not both, and without parentheses".into(),
        ));
    }
    let clauses: Vec<&str> = filter_by.split(if or { "||" } else { "&&" }).map(str::trim).collect();
    if clauses.len() > filter::MAX_FILTERS {
        return Err(problem(format!("filter_by has more than {} conditions", filter::MAX_FILTERS)));
    }
    let conditions = clauses.iter().map(|clause| clause_condition(collection, clause)).collect::<Result<_, _>>()?;
    Ok((conditions, or))
}

fn clause_condition(collection: Collection, clause: &str) -> Result<Condition, Problem> {
    let problem = |message: String| Problem { param: "filter_by".into(), message };
    let (field, rest) = clause.split_once(':').ok_or_else(|| problem(format!("'{clause}' is not field:value")))?;
    let field = field.trim();
    let rest = rest.trim();
    let instant = matches!(field, "created_at" | "effective_date" | "dob");
    let (op, value) = if let Some(v) = rest.strip_prefix("!=") {
        (Op::Ne, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Gte, v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Op::Lte, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (if v.trim_start().starts_with('[') { Op::In } else { Op::Eq }, v)
    } else if rest.starts_with('[') && rest.contains("..") {
        (Op::Between, rest)
    } else if rest.starts_with('[') {
        (Op::In, rest)
    } else {
        (if instant || collection.is_number(field) { Op::Eq } else { Op::ILike }, rest)
    };
    let value = value.trim();
    let list = |v: &str| -> Result<Vec<String>, Problem> {
        let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
        let inner = inner.ok_or_else(|| problem(format!("'{clause}': a list is written [a, b]")))?;
        Ok(inner.split(if op == Op::Between { ".." } else { "," }).map(|s| unquote(s.trim()).to_string()).collect())
    };
    let convert = |v: String| -> Result<String, Problem> {
        if !instant {
            return Ok(v);
        }
        let seconds: i64 = v.parse().map_err(|_| problem(format!("'{clause}': {field} is Unix seconds")))?;
        unix_seconds(seconds).ok_or_else(|| problem(format!("'{clause}': {seconds} is out of range")))
    };
    let raw = match op {
        Op::In | Op::Between => {
            let values = list(value)?.into_iter().map(convert).collect::<Result<Vec<_>, _>>()?;
            if op == Op::Between && values.len() != 2 {
                return Err(problem(format!("'{clause}': a range is written [low..high]")));
            }
            Raw::Json { value: None, values: Some(values) }
        }
        Op::ILike => Raw::Json { value: Some(format!("%{}%", escape_like(unquote(value)))), values: None },
        _ => Raw::Json { value: Some(convert(unquote(value).to_string())?), values: None },
    };
    filter::condition(collection, "filter_by", field, op, raw)
        .map_err(|p| problem(format!("'{clause}': {}", p.message)))
}

/// Typesense quotes a value holding separators in backticks.
fn unquote(value: &str) -> &str {
    value.strip_prefix('`').and_then(|v| v.strip_suffix('`')).unwrap_or(value)
}

/// A contained text matched literally: `%` and `_` in it are not patterns.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Unix seconds as the filters read an instant (RFC 3339, to the second).
fn unix_seconds(seconds: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    at.format(&time::format_description::well_known::Rfc3339).ok()
}

/// `sort_by`: one field, `field:asc` or `field:desc` (Keel sorts by one field; the default is
/// newest first).
fn sort(query: &mut Query, sort_by: &str) -> Result<(), Problem> {
    let problem = |message: String| Problem { param: "sort_by".into(), message };
    let keys: Vec<&str> = sort_by.split(',').map(str::trim).collect();
    if keys.len() > 1 {
        return Err(problem("Keel sorts search results by one field".into()));
    }
    let (field, direction) = keys[0].split_once(':').unwrap_or((keys[0], "asc"));
    query.newest_first = match direction.trim().to_ascii_lowercase().as_str() {
        "asc" => false,
        "desc" => true,
        other => return Err(problem(format!("sort direction '{other}' is not asc or desc"))),
    };
    query.sort_by(field).map_err(problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn terms_too_long_are_left_out_and_a_record_has_a_bounded_set() {
        let long = "x".repeat(MAX_TERM_BYTES);
        let text = format!("card {long} present");
        let meta = body(json!({ "k".repeat(MAX_TERM_BYTES): "word" }));
        assert_eq!(terms(&[("description", &text)], &meta), ["description.card", "description.present"]);
        // Many distinct words: the first ones, up to the bound, in the order they appear.
        let words: Vec<String> = (0..100_000).map(|n| format!("w{n}")).collect();
        let indexed = terms(&[("description", &words.join(" "))], &Map::new());
        let bytes: usize = indexed.iter().map(String::len).sum();
        assert!(bytes <= MAX_RECORD_TERM_BYTES && bytes > MAX_RECORD_TERM_BYTES - MAX_TERM_BYTES, "{bytes}");
        assert!(
            indexed.contains(&"description.w0".to_string()) && !indexed.contains(&"description.w99999".to_string())
        );
    }

    #[test]
    fn a_query_word_too_long_for_a_term_is_refused_naming_q() {
        let long = "y".repeat(MAX_TERM_BYTES);
        let refused = text_match(Collection::Transactions, &format!("card {long}"), Some("description")).unwrap_err();
        assert_eq!(refused.param, "q");
        // The whole of q against an id or code field needs no term.
        assert!(text_match(Collection::Transactions, &long, Some("reference")).is_ok());
    }

    #[test]
    fn terms_are_each_fields_tokens_and_each_metadata_values() {
        let meta = body(json!({"Channel": "Card-present", "tier": 2, "nested": {"x": 1}}));
        let terms = terms(&[("description", "Payment for SERVICES"), ("reference", "ref_001")], &meta);
        assert_eq!(
            terms,
            [
                "description.for",
                "description.payment",
                "description.services",
                "meta_data.channel.card",
                "meta_data.channel.present",
                "meta_data.tier.2",
                "reference.001",
                "reference.ref"
            ]
        );
    }

    #[test]
    fn a_search_body_reads_as_a_filtered_page_with_a_text_match() {
        let search = read(
            Collection::Transactions,
            &body(json!({"q": "Payment serv", "query_by": "description, meta_data.channel",
                "filter_by": "status:=APPLIED && created_at:[1720310400..1720396800] && currency:[USD, EUR]",
                "sort_by": "amount:desc", "page": 2, "per_page": 25})),
        )
        .unwrap();
        assert_eq!((search.page, search.per_page, search.query.offset, search.query.limit), (2, 25, 25, 25));
        let text = search.query.text.unwrap();
        assert_eq!(
            (text.fields, text.tokens),
            (vec!["description".into(), "meta_data.channel".into()], vec!["payment".into(), "serv".into()])
        );
        assert!(text.keywords.is_empty());
        let by_id = read(Collection::Transactions, &body(json!({"q": " bln_1-2 ", "query_by": "source,description"})));
        let by_id = by_id.unwrap().query.text.unwrap();
        assert_eq!((by_id.fields.len(), by_id.keywords.len(), by_id.tokens.len()), (1, 1, 3));
        assert_eq!(search.query.conditions.len(), 3);
        assert_eq!(search.query.conditions[1].op, Op::Between);
        assert!(search.query.newest_first && search.query.sort_by.is_some());
    }

    #[test]
    fn what_keel_does_not_serve_is_refused_by_name() {
        let refused = |value: Value| read(Collection::Transactions, &body(value)).unwrap_err().param;
        assert_eq!(refused(json!({"q": "*", "facet_by": "status"})), "facet_by");
        assert_eq!(refused(json!({"q": "x"})), "query_by");
        assert_eq!(refused(json!({"q": "x", "query_by": "amount"})), "query_by");
        assert_eq!(refused(json!({"q": "*", "filter_by": "hash:=x"})), "filter_by");
        assert_eq!(refused(json!({"q": "*", "filter_by": "a:=1 && b:=2 || c:=3"})), "filter_by");
        assert_eq!(refused(json!({"q": "*", "sort_by": "status:asc,amount:desc"})), "sort_by");
        assert_eq!(refused(json!({"q": "*", "per_page": 251})), "per_page");
        assert_eq!(refused(json!({"query_by": "reference"})), "q");
    }
}
