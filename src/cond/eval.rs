//! The reference evaluator: whether Elasticsearch would return a document for a condition.
//! Slow and literal on purpose: every value is tokenized whole and token lists are compared,
//! numbers, dates and addresses are parsed from their text each time, exactly as DESIGN §5
//! and KQL.md state the semantics. The fast engine must agree with it on every document;
//! where it has nothing faster it calls [`value_matches`] itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;

use super::analyzer::{self, Analyzer};
use super::fields::{FieldType, FieldTypes, KEYWORD_IGNORE_ABOVE};
use super::{glob, script};
use super::{Cond, FieldSel, GlobCase, Pred, RangeOp, Test, TextQuery};

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

/// Whether Elasticsearch would return `doc` for `cond`.
pub fn matches(cond: &Cond, doc: &Document, types: &FieldTypes) -> bool {
    match cond {
        Cond::True => true,
        Cond::False => false,
        Cond::Pred(p) => pred_matches(p, doc, types),
        Cond::Not(inner) => !matches(inner, doc, types),
        Cond::And(items) => items.iter().all(|c| matches(c, doc, types)),
        Cond::Or(items) => items.iter().any(|c| matches(c, doc, types)),
        Cond::AtLeast(n, items) => items.iter().filter(|c| matches(c, doc, types)).count() >= *n,
    }
}

fn pred_matches(p: &Pred, doc: &Document, types: &FieldTypes) -> bool {
    fields_named(&p.field, doc)
        .iter()
        .any(|f| field_matches(&p.test, f, doc, types))
}

/// The document's fields a selection refers to.
fn fields_named<'d>(field: &'d FieldSel, doc: &'d Document) -> Vec<&'d str> {
    match field {
        FieldSel::Name(name) => vec![name.as_str()],
        FieldSel::Pattern { pattern, .. } => doc
            .fields
            .keys()
            .filter(|k| glob::glob_str(pattern, k))
            .map(String::as_str)
            .collect(),
        FieldSel::All => doc.fields.keys().map(String::as_str).collect(),
    }
}

/// Whether one value of `field` passes `test`.
fn field_matches(test: &Test, field: &str, doc: &Document, types: &FieldTypes) -> bool {
    let ty = types.type_of(field);
    let values = doc.values(field);
    match ty {
        FieldType::Text(analyzer) => {
            let tokens = doc.tokens(field, analyzer);
            values
                .iter()
                .zip(tokens.iter())
                .any(|(_, t)| text_value(test, analyzer, t))
        }
        _ => values.iter().any(|v| value_test(test, ty, v)),
    }
}

/// Whether one value of a field of type `ty` passes `test`: the whole of the semantics,
/// one value at a time (a field matches when one of its values does).
pub fn value_matches(test: &Test, ty: FieldType, value: &str) -> bool {
    match ty {
        FieldType::Text(analyzer) => text_value(test, analyzer, &analyzer.tokens(value)),
        _ => value_test(test, ty, value),
    }
}

/// The [`TextQuery`] a test is on analyzed text, for the tests the text matcher runs.
pub fn text_query(test: &Test) -> Option<TextQuery> {
    match test {
        Test::Match { text, phrase } => Some(TextQuery::Match {
            text: text.clone(),
            phrase: *phrase,
        }),
        Test::Glob {
            pattern,
            case: GlobCase::LowerOnText,
        } => Some(TextQuery::Glob(glob::map_chars(
            pattern,
            analyzer::lower_char,
        ))),
        _ => None,
    }
}

/// A value of analyzed text, given its tokens: full-text tests on the tokens as a whole,
/// term-level tests token by token.
fn text_value(test: &Test, analyzer: Analyzer, tokens: &[String]) -> bool {
    if let Some(q) = text_query(test) {
        return tokens_match(&[tokens], analyzer, &q);
    }
    match test {
        Test::Exists => true,
        Test::Range { op, bound } => {
            let bound = analyzer::lowercase(bound);
            tokens
                .iter()
                .any(|t| compare(*op, Some(t.as_str().cmp(bound.as_str()))))
        }
        term_level => tokens.iter().any(|t| term_matches(term_level, t)),
    }
}

/// A term-level test on one keyword value or one token.
fn term_matches(test: &Test, v: &str) -> bool {
    match test {
        Test::Match { text, .. } => v == text,
        Test::Glob { pattern, case } => match case {
            GlobCase::Insensitive => glob::glob_str(pattern, &v.to_ascii_lowercase()),
            GlobCase::Sensitive | GlobCase::LowerOnText => glob::glob_str(pattern, v),
        },
        Test::Term {
            value,
            case_insensitive,
        } => match case_insensitive {
            true => v.eq_ignore_ascii_case(value),
            false => v == value,
        },
        Test::Terms { values } => values.iter().any(|x| x == v),
        Test::Prefix {
            value,
            case_insensitive,
        } => match case_insensitive {
            true => {
                v.len() >= value.len()
                    && v.is_char_boundary(value.len())
                    && v[..value.len()].eq_ignore_ascii_case(value)
            }
            false => v.starts_with(value.as_str()),
        },
        Test::Range { op, bound } => compare(*op, Some(v.cmp(bound.as_str()))),
        Test::Regexp(re) => re.is_match(v),
        Test::Exists => true,
        Test::Script(s) => s.holds(Some(&script::Value::Str(v.to_string()))),
    }
}

/// One value of a field that is not analyzed text.
fn value_test(test: &Test, ty: FieldType, v: &str) -> bool {
    if let Test::Script(s) = test {
        return script_value(ty, v).is_some_and(|x| s.holds(Some(&x)));
    }
    match ty {
        // Keyword values over `ignore_above` are not indexed: no test sees them.
        FieldType::Keyword => v.chars().count() <= KEYWORD_IGNORE_ABOVE && term_matches(test, v),
        FieldType::Wildcard => term_matches(test, v),
        FieldType::Boolean => match test {
            Test::Exists => parse_bool(v).is_some(),
            Test::Glob { .. } | Test::Prefix { .. } | Test::Regexp(_) => false,
            Test::Range { .. } => {
                v.chars().count() <= KEYWORD_IGNORE_ABOVE && term_matches(test, v)
            }
            other => term_matches(other, v),
        },
        FieldType::Text(_) => false,
        typed => typed_test(test, typed, v),
    }
}

/// A stored value as a script reads its doc value: numbers as numbers, booleans as
/// booleans, the rest as text; none where the value is not indexed.
pub fn script_value(ty: FieldType, v: &str) -> Option<script::Value> {
    use script::Value;
    Some(match ty {
        FieldType::Keyword if v.chars().count() > KEYWORD_IGNORE_ABOVE => return None,
        FieldType::Keyword | FieldType::Wildcard | FieldType::Ip | FieldType::Date => {
            Value::Str(v.to_string())
        }
        FieldType::Text(_) => return None,
        FieldType::Boolean => Value::Bool(parse_bool(v)?),
        FieldType::Long => match Typed::parse(ty, v)? {
            Typed::Long(n) => Value::Int(n),
            _ => return None,
        },
        FieldType::Float | FieldType::Double | FieldType::ScaledFloat(_) => {
            Value::Float(v.trim().parse().ok()?)
        }
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Numbers, dates and addresses: parsed, then compared as the field's type stores them.
fn typed_test(test: &Test, ty: FieldType, v: &str) -> bool {
    let Some(stored) = Typed::parse(ty, v) else {
        return false;
    };
    match test {
        Test::Exists => true,
        Test::Match { text, .. } => stored.equals(text),
        Test::Term { value, .. } => stored.equals(value),
        Test::Terms { values } => values.iter().any(|x| stored.equals(x)),
        Test::Range { op, bound } => stored.in_range(*op, bound),
        // Elasticsearch refuses wildcard, prefix and regexp queries on these types.
        Test::Glob { .. } | Test::Prefix { .. } | Test::Regexp(_) => false,
        Test::Script(_) => false,
    }
}

/// `match`, `match_phrase` or a per-token glob on analyzed text.
pub fn text_matches(analyzer: Analyzer, values: &[String], query: &TextQuery) -> bool {
    let tokens: Vec<Vec<String>> = values.iter().map(|v| analyzer.tokens(v)).collect();
    tokens_match(&tokens, analyzer, query)
}

/// The same, given the tokens of each value of the field.
pub fn tokens_match<T: AsRef<[String]>>(
    values: &[T],
    analyzer: Analyzer,
    query: &TextQuery,
) -> bool {
    let mut values = values.iter().map(AsRef::as_ref);
    match query {
        TextQuery::Glob(pattern) => {
            values.any(|tokens| tokens.iter().any(|t| glob::glob_str(pattern, t)))
        }
        TextQuery::Match { text, phrase } => {
            let wanted = analyzer.tokens(text);
            values.any(|tokens| phrase_or_any(tokens, &wanted, *phrase))
        }
    }
}

/// Whether one value's tokens hold all of `wanted` in a row (`phrase`) or any of them; no
/// wanted token matches nothing.
fn phrase_or_any(tokens: &[String], wanted: &[String], phrase: bool) -> bool {
    match (wanted.is_empty(), phrase) {
        (true, _) => false,
        (false, true) => tokens.windows(wanted.len()).any(|w| w == wanted),
        (false, false) => wanted.iter().any(|w| tokens.contains(w)),
    }
}

/// A stored value of a number, date or address field, as the index holds it.
#[derive(Debug, Clone, Copy)]
enum Typed {
    /// `long` and the other integer types.
    Long(i64),
    /// `float`: stored at 32-bit precision, and queries are parsed to it.
    Float(f32),
    Double(f64),
    /// `scaled_float`: the value times the factor, rounded to a long.
    Scaled {
        units: i64,
        factor: f64,
    },
    /// Epoch milliseconds.
    Date(i64),
    Ip(IpAddr),
}

impl Typed {
    fn parse(ty: FieldType, v: &str) -> Option<Typed> {
        let v = v.trim();
        Some(match ty {
            FieldType::Long => match v.parse::<i64>() {
                Ok(n) => Typed::Long(n),
                // A decimal in a long field is truncated, as Elasticsearch coerces it.
                Err(_) => {
                    Typed::Long(v.parse::<f64>().ok().filter(|f| f.is_finite())?.trunc() as i64)
                }
            },
            FieldType::Float => Typed::Float(v.parse::<f32>().ok()?),
            FieldType::Double => Typed::Double(v.parse::<f64>().ok()?),
            FieldType::ScaledFloat(factor) => {
                let factor = f64::from(factor);
                let units = java_round(v.parse::<f64>().ok()? * factor)?;
                Typed::Scaled { units, factor }
            }
            FieldType::Date => Typed::Date(parse_date_bounds(v)?.0),
            FieldType::Ip => Typed::Ip(v.parse().ok()?),
            FieldType::Keyword | FieldType::Wildcard | FieldType::Text(_) | FieldType::Boolean => {
                return None
            }
        })
    }

    /// A `term` (or `match`) of `query` on this value.
    fn equals(self, query: &str) -> bool {
        let q = query.trim();
        match self {
            Typed::Long(n) => match q.parse::<i64>() {
                Ok(want) => n == want,
                // A query with a decimal part matches no long.
                Err(_) => q
                    .parse::<f64>()
                    .is_ok_and(|f| f.fract() == 0.0 && f == n as f64),
            },
            Typed::Float(x) => q.parse::<f32>().is_ok_and(|want| want == x),
            Typed::Double(x) => q.parse::<f64>().is_ok_and(|want| want == x),
            Typed::Scaled { units, factor } => scale_query(q, factor)
                .and_then(java_round)
                .is_some_and(|want| want == units),
            Typed::Date(t) => parse_date_bounds(q).is_some_and(|(lo, hi)| lo <= t && t <= hi),
            Typed::Ip(addr) => ip_matches(q, addr),
        }
    }

    /// A one-sided `range` with `bound` on this value.
    fn in_range(self, op: RangeOp, bound: &str) -> bool {
        let b = bound.trim();
        match self {
            Typed::Long(n) => match b.parse::<i64>() {
                Ok(want) => compare(op, Some(n.cmp(&want))),
                Err(_) => b
                    .parse::<f64>()
                    .is_ok_and(|want| compare(op, (n as f64).partial_cmp(&want))),
            },
            Typed::Float(x) => b
                .parse::<f32>()
                .is_ok_and(|want| compare(op, x.partial_cmp(&want))),
            Typed::Double(x) => b
                .parse::<f64>()
                .is_ok_and(|want| compare(op, x.partial_cmp(&want))),
            Typed::Scaled { units, factor } => b
                .parse::<f64>()
                .is_ok_and(|f| scaled_in_range(units, op, f * factor)),
            Typed::Date(t) => {
                let Some((lo, hi)) = parse_date_bounds(b) else {
                    return false;
                };
                // gt and lte round the bound up, gte and lt round it down.
                match op {
                    RangeOp::Gt => t > hi,
                    RangeOp::Gte => t >= lo,
                    RangeOp::Lt => t < lo,
                    RangeOp::Lte => t <= hi,
                }
            }
            Typed::Ip(addr) => b
                .parse::<IpAddr>()
                .is_ok_and(|want| compare(op, Some(addr.cmp(&want)))),
        }
    }
}

/// Java's `Math.round`: the nearest long, halves up.
fn java_round(x: f64) -> Option<i64> {
    let r = (x + 0.5).floor();
    (r.is_finite() && r.abs() < 9.2e18).then_some(r as i64)
}

/// A query value times a scaling factor as `ScaledFloatFieldMapper.scale` computes it: the
/// value's shortest decimal form multiplied exactly, then rounded once to a double (so
/// `79.99` at factor 100 is 7999, not 7998.999…).
fn scale_query(q: &str, factor: f64) -> Option<f64> {
    let value = q.parse::<f64>().ok().filter(|v| v.is_finite())?;
    let text = format!("{value:e}");
    let (mantissa, exp) = text.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: u128 = format!("{whole}{frac}").parse().ok()?;
    let exact = digits
        .checked_mul(factor as u128)
        .filter(|_| factor.fract() == 0.0);
    match exact {
        Some(product) => {
            let sign = if negative { "-" } else { "" };
            let e = exp - frac.len() as i32;
            format!("{sign}{product}e{e}").parse().ok()
        }
        None => Some(value * factor),
    }
}

/// A scaled float's range: the scaled bound is moved past itself when exclusive, then
/// rounded inwards to whole units (ScaledFloatFieldMapper's `rangeQuery`).
fn scaled_in_range(units: i64, op: RangeOp, scaled_bound: f64) -> bool {
    let u = units as f64;
    match op {
        RangeOp::Gte => u >= scaled_bound.ceil(),
        RangeOp::Gt => u >= scaled_bound.next_up().ceil(),
        RangeOp::Lte => u <= scaled_bound.floor(),
        RangeOp::Lt => u <= scaled_bound.next_down().floor(),
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
