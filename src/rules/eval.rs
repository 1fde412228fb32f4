//! The reference evaluator: whether Elasticsearch would return a document for a KQL query and
//! a rule's DSL filters. Slow and literal on purpose: every value is tokenized whole and
//! token lists are compared, exactly as DESIGN §5 and KQL.md state the semantics. The fast
//! engine must agree with it on every document.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;

use super::analyzer::Analyzer;
use super::dsl::{self, DslQuery, Filter, WildToken};
use super::fields::{FieldType, FieldTypes, KEYWORD_IGNORE_ABOVE};
use super::kql::{Chunk, Literal, Query, RangeOp};

/// The tokens of each value of a field, one list per value.
type FieldTokens = Vec<Vec<String>>;

/// A document as the evaluator sees it: every field's values as text (an array field has
/// several; a missing or null field has none).
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub fields: BTreeMap<String, Vec<String>>,
    /// Tokens of each (field, analyzer), made once per document: a plain memo, so that
    /// evaluating many versions against one document does not tokenize it again each time.
    tokens: RefCell<HashMap<(String, Analyzer), Rc<FieldTokens>>>,
}

impl PartialEq for Document {
    fn eq(&self, other: &Document) -> bool {
        self.fields == other.fields
    }
}

impl Document {
    pub fn new() -> Document {
        Document::default()
    }

    /// Adds a value to `field` (call again for arrays).
    pub fn with(mut self, field: &str, value: &str) -> Document {
        self.fields
            .entry(field.to_string())
            .or_default()
            .push(value.to_string());
        self
    }

    fn values(&self, field: &str) -> &[String] {
        self.fields.get(field).map_or(&[], Vec::as_slice)
    }

    /// The tokens of every value of `field`, one list per value.
    fn tokens(&self, field: &str, analyzer: Analyzer) -> Rc<FieldTokens> {
        let key = (field.to_string(), analyzer);
        if let Some(t) = self.tokens.borrow().get(&key) {
            return Rc::clone(t);
        }
        let t = Rc::new(
            self.values(field)
                .iter()
                .map(|v| analyzer.tokens(v))
                .collect(),
        );
        self.tokens.borrow_mut().insert(key, Rc::clone(&t));
        t
    }
}

/// Whether `doc` matches the query and every enabled filter.
pub fn matches(query: &Query, filters: &[Filter], doc: &Document, types: &FieldTypes) -> bool {
    matches_query(query, doc, types) && filters.iter().all(|f| matches_filter(f, doc, types))
}

pub fn matches_query(query: &Query, doc: &Document, types: &FieldTypes) -> bool {
    eval(query, "", doc, types)
}

fn eval(query: &Query, prefix: &str, doc: &Document, types: &FieldTypes) -> bool {
    match query {
        Query::MatchAll => true,
        Query::Or(items) => items.iter().any(|q| eval(q, prefix, doc, types)),
        Query::And(items) => items.iter().all(|q| eval(q, prefix, doc, types)),
        Query::Not(inner) => !eval(inner, prefix, doc, types),
        Query::Is { field: None, value } => doc
            .fields
            .keys()
            .any(|f| leaf_matches(f, value, doc, types)),
        Query::Is {
            field: Some(field),
            value,
        } => fields_named(field, prefix, doc)
            .iter()
            .any(|f| leaf_matches(f, value, doc, types)),
        Query::Exists { field } => fields_named(field, prefix, doc)
            .iter()
            .any(|f| exists(f, doc, types)),
        Query::Range { field, op, value } => fields_named(field, prefix, doc)
            .iter()
            .any(|f| range_matches(f, *op, value, doc, types)),
        Query::Nested { path, query } => {
            let inner = format!("{prefix}{}.", path.display());
            eval(query, &inner, doc, types)
        }
    }
}

/// The document's fields a (possibly wildcard) field name refers to.
fn fields_named(field: &Literal, prefix: &str, doc: &Document) -> Vec<String> {
    if field.has_wildcard() {
        let mut pattern = wild_tokens(prefix, false);
        pattern.extend(literal_tokens(field, false));
        doc.fields
            .keys()
            .filter(|k| dsl::glob(&pattern, &k.chars().collect::<Vec<_>>()))
            .cloned()
            .collect()
    } else {
        vec![format!("{prefix}{}", field.display())]
    }
}

fn wild_tokens(text: &str, lower: bool) -> Vec<WildToken> {
    let text = if lower {
        super::analyzer::lowercase(text)
    } else {
        text.to_string()
    };
    text.chars().map(WildToken::Char).collect()
}

/// A KQL literal as a glob: its `*` are wildcards, every other character (`?` too) literal.
pub fn literal_tokens(lit: &Literal, lower: bool) -> Vec<WildToken> {
    let mut out = Vec::new();
    for c in &lit.chunks {
        match c {
            Chunk::Star => out.push(WildToken::AnyRun),
            Chunk::Text(t) => out.extend(wild_tokens(t, lower)),
        }
    }
    out
}

/// Keyword values Elasticsearch indexed (longer ones are ignored by `ignore_above`).
fn keyword_values<'a>(doc: &'a Document, field: &str) -> impl Iterator<Item = &'a String> {
    doc.values(field)
        .iter()
        .filter(|v| v.chars().count() <= KEYWORD_IGNORE_ABOVE)
}

fn exists(field: &str, doc: &Document, types: &FieldTypes) -> bool {
    match types.type_of(field) {
        FieldType::Keyword => keyword_values(doc, field).next().is_some(),
        FieldType::Text(_) => !doc.values(field).is_empty(),
        other => doc
            .values(field)
            .iter()
            .any(|v| parse_typed(other, v).is_some()),
    }
}

fn leaf_matches(field: &str, value: &Literal, doc: &Document, types: &FieldTypes) -> bool {
    match types.type_of(field) {
        FieldType::Keyword => {
            if value.has_wildcard() {
                let pattern = literal_tokens(value, false);
                keyword_values(doc, field)
                    .any(|v| dsl::glob(&pattern, &v.chars().collect::<Vec<_>>()))
            } else {
                let want = value.display();
                keyword_values(doc, field).any(|v| *v == want)
            }
        }
        FieldType::Text(analyzer) => tokens_match(&doc.tokens(field, analyzer), analyzer, value),
        FieldType::Boolean => {
            let want = value.display();
            doc.values(field).contains(&want)
        }
        typed => {
            if value.has_wildcard() {
                return false;
            }
            let text = value.display();
            doc.values(field)
                .iter()
                .any(|v| match (parse_typed(typed, v), typed) {
                    (Some(Typed::Ip(addr)), FieldType::Ip) => ip_matches(&text, addr),
                    (Some(Typed::Date(t)), FieldType::Date) => match parse_date_bounds(&text) {
                        Some((lo, hi)) => lo <= t && t <= hi,
                        None => false,
                    },
                    (Some(Typed::Num(n)), _) => text.trim().parse::<f64>().is_ok_and(|q| q == n),
                    _ => false,
                })
        }
    }
}

/// `match`, `match_phrase` or a per-token wildcard on analyzed text.
pub fn text_matches(analyzer: Analyzer, values: &[String], value: &Literal) -> bool {
    let tokens: Vec<Vec<String>> = values.iter().map(|v| analyzer.tokens(v)).collect();
    tokens_match(&tokens, analyzer, value)
}

/// The same, given the tokens of each value of the field.
pub fn tokens_match(values: &[Vec<String>], analyzer: Analyzer, value: &Literal) -> bool {
    if value.has_wildcard() {
        let pattern = literal_tokens(value, true);
        return values.iter().any(|tokens| {
            tokens
                .iter()
                .any(|t| dsl::glob(&pattern, &t.chars().collect::<Vec<_>>()))
        });
    }
    let wanted = analyzer.tokens(&value.display());
    if wanted.is_empty() {
        return false;
    }
    values.iter().any(|tokens| {
        if value.quoted {
            tokens.windows(wanted.len()).any(|w| w == wanted.as_slice())
        } else {
            wanted.iter().any(|w| tokens.contains(w))
        }
    })
}

enum Typed {
    Num(f64),
    Date(i64),
    Ip(IpAddr),
}

fn parse_typed(t: FieldType, v: &str) -> Option<Typed> {
    match t {
        FieldType::Long | FieldType::Double => v.trim().parse().ok().map(Typed::Num),
        FieldType::Date => parse_date_bounds(v).map(|(lo, _)| Typed::Date(lo)),
        FieldType::Ip => v.trim().parse().ok().map(Typed::Ip),
        _ => None,
    }
}

/// A date as Elasticsearch reads it in a query: the first and last millisecond it covers
/// (`2024-01-05` is the whole day), from ISO 8601 text of any precision or epoch millis.
pub fn parse_date_bounds(text: &str) -> Option<(i64, i64)> {
    use chrono::{NaiveDate, NaiveDateTime};
    let s = text.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some((ms, ms));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        let ms = t.timestamp_millis();
        return Some((ms, ms));
    }
    let body = s.strip_suffix('Z').unwrap_or(s);
    let ms = |t: NaiveDateTime| t.and_utc().timestamp_millis();
    for (fmt, span) in [
        ("%Y-%m-%dT%H:%M:%S%.f", 0),
        ("%Y-%m-%dT%H:%M:%S", 999),
        ("%Y-%m-%dT%H:%M", 59_999),
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(body, fmt) {
            return Some((ms(t), ms(t) + span));
        }
    }
    if body.len() == 13 {
        if let Ok(t) = NaiveDateTime::parse_from_str(&format!("{body}:00"), "%Y-%m-%dT%H:%M") {
            return Some((ms(t), ms(t) + 3_599_999));
        }
    }
    let day_start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(ms);
    if let Ok(d) = NaiveDate::parse_from_str(body, "%Y-%m-%d") {
        let lo = day_start(d)?;
        return Some((lo, lo + 86_399_999));
    }
    let (first, next) = if body.len() == 7 {
        let d = NaiveDate::parse_from_str(&format!("{body}-01"), "%Y-%m-%d").ok()?;
        (d, d.checked_add_months(chrono::Months::new(1))?)
    } else if body.len() == 4 {
        let y: i32 = body.parse().ok()?;
        (
            NaiveDate::from_ymd_opt(y, 1, 1)?,
            NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
        )
    } else {
        return None;
    };
    Some((day_start(first)?, day_start(next)? - 1))
}

/// An address or CIDR block against one address (either family).
pub fn ip_matches(query: &str, addr: IpAddr) -> bool {
    let q = query.trim();
    match q.split_once('/') {
        None => q.parse::<IpAddr>().is_ok_and(|a| a == addr),
        Some((net, bits)) => {
            let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
                return false;
            };
            match (net, addr) {
                (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u128::MAX << (128 - bits)
                    };
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            }
        }
    }
}

fn range_matches(
    field: &str,
    op: RangeOp,
    value: &Literal,
    doc: &Document,
    types: &FieldTypes,
) -> bool {
    let q = value.display();
    let ty = types.type_of(field);
    doc.values(field).iter().any(|v| match ty {
        FieldType::Long | FieldType::Double => {
            match (v.trim().parse::<f64>(), q.trim().parse::<f64>()) {
                (Ok(d), Ok(b)) => compare(op, d.partial_cmp(&b)),
                _ => false,
            }
        }
        FieldType::Date => {
            let (Some((d, _)), Some((lo, hi))) = (parse_date_bounds(v), parse_date_bounds(&q))
            else {
                return false;
            };
            // gt and lte round the bound up, gte and lt round it down.
            match op {
                RangeOp::Gt => d > hi,
                RangeOp::Gte => d >= lo,
                RangeOp::Lt => d < lo,
                RangeOp::Lte => d <= hi,
            }
        }
        FieldType::Ip => match (v.trim().parse::<IpAddr>(), q.trim().parse::<IpAddr>()) {
            (Ok(d), Ok(b)) => compare(op, Some(d.cmp(&b))),
            _ => false,
        },
        FieldType::Text(analyzer) => analyzer.tokens(v).iter().any(|t| {
            compare(
                op,
                Some(t.as_str().cmp(super::analyzer::lowercase(&q).as_str())),
            )
        }),
        FieldType::Keyword | FieldType::Boolean => {
            v.chars().count() <= KEYWORD_IGNORE_ABOVE && compare(op, Some(v.as_str().cmp(&q)))
        }
    })
}

fn compare(op: RangeOp, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    matches!(
        (op, ord),
        (RangeOp::Lt, Some(Less))
            | (RangeOp::Lte, Some(Less | Equal))
            | (RangeOp::Gt, Some(Greater))
            | (RangeOp::Gte, Some(Greater | Equal))
    )
}

/// One rule filter (disabled filters always pass; `negate` inverts).
pub fn matches_filter(filter: &Filter, doc: &Document, types: &FieldTypes) -> bool {
    if filter.disabled {
        return true;
    }
    dsl_matches(&filter.query, doc, types) != filter.negate
}

fn dsl_matches(q: &DslQuery, doc: &Document, types: &FieldTypes) -> bool {
    match q {
        DslQuery::MatchAll => true,
        DslQuery::Exists { field } => exists(field, doc, types),
        DslQuery::Wildcard {
            field,
            pattern,
            case_insensitive,
        } => term_level(field, doc, types, |v| {
            dsl::wildcard_matches(pattern, v, *case_insensitive)
        }),
        DslQuery::Prefix {
            field,
            prefix,
            case_insensitive,
        } => term_level(field, doc, types, |v| {
            if *case_insensitive {
                v.to_lowercase().starts_with(&prefix.to_lowercase())
            } else {
                v.starts_with(prefix.as_str())
            }
        }),
        DslQuery::Term {
            field,
            value,
            case_insensitive,
        } => term_level(field, doc, types, |v| {
            if *case_insensitive {
                v.to_lowercase() == value.to_lowercase()
            } else {
                v == value
            }
        }),
        DslQuery::Terms { field, values } => {
            term_level(field, doc, types, |v| values.iter().any(|x| x == v))
        }
        DslQuery::Match {
            field,
            query,
            phrase,
        } => match types.type_of(field) {
            FieldType::Text(analyzer) => {
                text_matches(analyzer, doc.values(field), &Literal::text(query, *phrase))
            }
            _ => keyword_values(doc, field).any(|v| v == query),
        },
        DslQuery::Bool {
            must,
            should,
            must_not,
            minimum_should_match,
        } => {
            let should_hits = should.iter().filter(|s| dsl_matches(s, doc, types)).count();
            let needed = dsl::should_needed(must.len(), should.len(), *minimum_should_match);
            must.iter().all(|m| dsl_matches(m, doc, types))
                && !must_not.iter().any(|m| dsl_matches(m, doc, types))
                && should_hits >= needed
        }
    }
}

/// A term-level query: keyword values whole, text fields token by token.
fn term_level(
    field: &str,
    doc: &Document,
    types: &FieldTypes,
    test: impl Fn(&str) -> bool,
) -> bool {
    match types.type_of(field) {
        FieldType::Text(analyzer) => doc
            .values(field)
            .iter()
            .any(|v| analyzer.tokens(v).iter().any(|t| test(t))),
        _ => keyword_values(doc, field).any(|v| test(v)),
    }
}

/// Whether one of a rule's `index` patterns would have searched `index` (`*` wildcards;
/// a pattern starting with `-` excludes).
pub fn index_matches(patterns: &[String], index: &str) -> bool {
    let glob_match = |p: &str| {
        let tokens: Vec<WildToken> = p
            .chars()
            .map(|c| {
                if c == '*' {
                    WildToken::AnyRun
                } else {
                    WildToken::Char(c)
                }
            })
            .collect();
        dsl::glob(&tokens, &index.chars().collect::<Vec<_>>())
    };
    let included = patterns
        .iter()
        .filter(|p| !p.starts_with('-'))
        .any(|p| glob_match(p));
    let excluded = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('-'))
        .any(glob_match);
    included && !excluded
}
