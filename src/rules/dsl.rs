//! The Query-DSL `filters` of a rule (`[[rule.filters]]`): parsed into [`Filter`] and ANDed
//! with the query. Elastic's rules use negated `wildcard` (often `case_insensitive`) and
//! `exists`; `term`, `terms`, `prefix`, `match`, `match_phrase` and `bool` are read too.
//! Anything else is an error naming the query type, never silently ignored. [`lower`] turns
//! them into the condition they add to the query.

use serde_json::Value;

use crate::cond::{glob, Cond, FieldSel, GlobCase, Pred, Test};

/// One filter as Kibana stores it: a query plus `meta.negate` / `meta.disabled`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub query: DslQuery,
    pub negate: bool,
    pub disabled: bool,
}

/// The Query-DSL queries a filter may hold.
#[derive(Debug, Clone, PartialEq)]
pub enum DslQuery {
    Wildcard {
        field: String,
        pattern: String,
        case_insensitive: bool,
    },
    Prefix {
        field: String,
        prefix: String,
        case_insensitive: bool,
    },
    Exists {
        field: String,
    },
    Term {
        field: String,
        value: String,
        case_insensitive: bool,
    },
    Terms {
        field: String,
        values: Vec<String>,
    },
    Match {
        field: String,
        query: String,
        phrase: bool,
    },
    Bool {
        must: Vec<DslQuery>,
        should: Vec<DslQuery>,
        must_not: Vec<DslQuery>,
        minimum_should_match: Option<usize>,
    },
    MatchAll,
}

impl DslQuery {
    /// The fields the query reads.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            DslQuery::Wildcard { field, .. }
            | DslQuery::Prefix { field, .. }
            | DslQuery::Exists { field }
            | DslQuery::Term { field, .. }
            | DslQuery::Terms { field, .. }
            | DslQuery::Match { field, .. } => vec![field.as_str()],
            DslQuery::Bool {
                must,
                should,
                must_not,
                ..
            } => must
                .iter()
                .chain(should)
                .chain(must_not)
                .flat_map(DslQuery::fields)
                .collect(),
            DslQuery::MatchAll => Vec::new(),
        }
    }
}

/// A filter Elasticsearch would reject, and so the rule: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DslError {
    /// The filter's index in the `filters` array.
    pub filter: Option<usize>,
    pub problem: DslProblem,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DslProblem {
    /// `filters` is not an array (what it is instead).
    NotAnArray(String),
    /// A filter, a query or a query's body that is not a JSON object.
    NotAnObject(String),
    /// A query object with other than one key.
    Keys(Vec<String>),
    /// A parameter the query type does not have.
    UnknownParameter { query: String, parameter: String },
    /// A query without what it needs (`exists needs a field`, `terms on f needs an array`).
    Missing { query: String, needs: &'static str },
    /// A query on other than exactly one field.
    OneField(String),
    /// A `minimum_should_match` that is not a count.
    MinimumShouldMatch,
    /// A query type quarry does not read (nor pretends to).
    Unsupported(String),
}

impl std::fmt::Display for DslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(i) = self.filter {
            write!(f, "filters[{i}]: ")?;
        }
        match &self.problem {
            DslProblem::NotAnArray(found) => write!(f, "filters must be an array, found {found}"),
            DslProblem::NotAnObject(what) => write!(f, "{what} must be an object"),
            DslProblem::Keys(keys) => {
                write!(f, "a query object must have one key, found {keys:?}")
            }
            DslProblem::UnknownParameter { query, parameter } => {
                write!(f, "{query} has an unknown parameter `{parameter}`")
            }
            DslProblem::Missing { query, needs } => write!(f, "{query} needs {needs}"),
            DslProblem::OneField(kind) => write!(f, "{kind} must name exactly one field"),
            DslProblem::MinimumShouldMatch => write!(f, "minimum_should_match must be a count"),
            DslProblem::Unsupported(kind) => write!(f, "unsupported filter query type `{kind}`"),
        }
    }
}

impl std::error::Error for DslError {}

impl From<DslProblem> for DslError {
    fn from(problem: DslProblem) -> Self {
        DslError {
            filter: None,
            problem,
        }
    }
}

/// Reads a rule's `filters` array.
pub fn parse_filters(filters: &Value) -> Result<Vec<Filter>, DslError> {
    match filters {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, f)| {
                parse_filter(f).map_err(|problem| DslError {
                    filter: Some(i),
                    problem,
                })
            })
            .collect(),
        other => Err(DslProblem::NotAnArray(other.to_string()).into()),
    }
}

fn parse_filter(f: &Value) -> Result<Filter, DslProblem> {
    let obj = f
        .as_object()
        .ok_or(DslProblem::NotAnObject("a filter".into()))?;
    let meta = obj.get("meta");
    let flag = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    // The query sits under `query`, or (older exports) beside `meta` at the top level.
    let query = match obj.get("query") {
        Some(q) => parse_query(q)?,
        None => {
            let rest: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "meta" | "$state"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            parse_query(&Value::Object(rest))?
        }
    };
    Ok(Filter {
        query,
        negate: flag("negate"),
        disabled: flag("disabled"),
    })
}

/// One Query-DSL query object (`{"wildcard": {...}}`, `{"bool": {...}}`, ...).
pub fn parse_query(q: &Value) -> Result<DslQuery, DslProblem> {
    let obj = q
        .as_object()
        .ok_or(DslProblem::NotAnObject("a query".into()))?;
    let (kind, body) = match obj.iter().next() {
        Some(one) if obj.len() == 1 => one,
        _ => return Err(DslProblem::Keys(obj.keys().cloned().collect())),
    };
    match kind.as_str() {
        "match_all" => Ok(DslQuery::MatchAll),
        "exists" => parse_exists(body),
        "wildcard" | "prefix" | "term" => parse_single_value(kind, body),
        "terms" => {
            let (field, spec) = single_field(body, kind)?;
            let values = spec
                .as_array()
                .ok_or_else(|| DslProblem::Missing {
                    query: format!("terms on {field}"),
                    needs: "an array",
                })?
                .iter()
                .map(scalar_text)
                .collect();
            Ok(DslQuery::Terms { field, values })
        }
        "match" | "match_phrase" => parse_match(kind, body),
        "bool" => parse_bool(body),
        other => Err(DslProblem::Unsupported(other.to_string())),
    }
}

/// `{"exists": {"field": f}}`.
fn parse_exists(body: &Value) -> Result<DslQuery, DslProblem> {
    if let Some(bad) = body.as_object().and_then(|m| {
        m.keys()
            .find(|k| !matches!(k.as_str(), "field" | "boost" | "_name"))
    }) {
        return Err(DslProblem::UnknownParameter {
            query: "exists".into(),
            parameter: bad.clone(),
        });
    }
    let field = body.get("field").and_then(Value::as_str);
    Ok(DslQuery::Exists {
        field: field
            .ok_or(DslProblem::Missing {
                query: "exists".into(),
                needs: "a field",
            })?
            .to_string(),
    })
}

/// `wildcard`, `prefix` and `term`: one field and one value, in short or long form.
fn parse_single_value(kind: &str, body: &Value) -> Result<DslQuery, DslProblem> {
    let (field, spec) = single_field(body, kind)?;
    let query = || format!("{kind} on {field}");
    let value = match spec {
        Value::Object(m) => m
            .get("value")
            .or_else(|| m.get("wildcard"))
            .map(scalar_text)
            .ok_or_else(|| DslProblem::Missing {
                query: query(),
                needs: "a value",
            })?,
        other => scalar_text(other),
    };
    if let Value::Object(m) = spec {
        // Elasticsearch rejects parameters it does not know, and so the rule.
        let allowed = [
            "value",
            "wildcard",
            "case_insensitive",
            "boost",
            "rewrite",
            "_name",
        ];
        if let Some(bad) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(DslProblem::UnknownParameter {
                query: query(),
                parameter: bad.clone(),
            });
        }
    }
    let ci = spec
        .get("case_insensitive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(match kind {
        "wildcard" => DslQuery::Wildcard {
            field,
            pattern: value,
            case_insensitive: ci,
        },
        "prefix" => DslQuery::Prefix {
            field,
            prefix: value,
            case_insensitive: ci,
        },
        _ => DslQuery::Term {
            field,
            value,
            case_insensitive: ci,
        },
    })
}

/// `match` and `match_phrase`, in short or long form.
fn parse_match(kind: &str, body: &Value) -> Result<DslQuery, DslProblem> {
    let (field, spec) = single_field(body, kind)?;
    let query = match spec {
        Value::Object(m) => m
            .get("query")
            .map(scalar_text)
            .ok_or_else(|| DslProblem::Missing {
                query: format!("{kind} on {field}"),
                needs: "a query",
            })?,
        other => scalar_text(other),
    };
    Ok(DslQuery::Match {
        field,
        query,
        phrase: kind == "match_phrase",
    })
}

/// `bool`: `must` and `filter` (both ANDed), `should`, `must_not`, `minimum_should_match`.
fn parse_bool(body: &Value) -> Result<DslQuery, DslProblem> {
    let list = |k: &str| -> Result<Vec<DslQuery>, DslProblem> {
        match body.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(parse_query).collect(),
            Some(one) => Ok(vec![parse_query(one)?]),
        }
    };
    let mut must = list("must")?;
    must.extend(list("filter")?);
    let minimum_should_match = match body.get("minimum_should_match") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or(DslProblem::MinimumShouldMatch)? as usize,
        ),
    };
    Ok(DslQuery::Bool {
        must,
        should: list("should")?,
        must_not: list("must_not")?,
        minimum_should_match,
    })
}

fn single_field<'a>(body: &'a Value, kind: &str) -> Result<(String, &'a Value), DslProblem> {
    let m = body
        .as_object()
        .ok_or_else(|| DslProblem::NotAnObject(format!("{kind} body")))?;
    let mut fields = m
        .iter()
        .filter(|(k, _)| !k.starts_with('_') && *k != "boost");
    match (fields.next(), fields.next()) {
        (Some((f, spec)), None) => Ok((f.clone(), spec)),
        _ => Err(DslProblem::OneField(kind.to_string())),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How many `should` clauses of a `bool` query must match: `minimum_should_match`, or one
/// when the query has only `should` clauses, else none.
pub fn should_needed(must: usize, should: usize, minimum_should_match: Option<usize>) -> usize {
    minimum_should_match.unwrap_or(if must == 0 && should > 0 { 1 } else { 0 })
}

/// The condition a rule's filters add to its query: every enabled filter ANDed, a negated
/// one inverted (`must_not`), each query its Elasticsearch leaf test. Reports name a
/// predicate by its query type and value (`file.path (wildcard C:\\*)`).
pub fn lower(filters: &[Filter]) -> Cond {
    Cond::And(
        filters
            .iter()
            .filter(|f| !f.disabled)
            .map(|f| match f.negate {
                true => Cond::Not(Box::new(lower_query(&f.query))),
                false => lower_query(&f.query),
            })
            .collect(),
    )
}

/// One Query-DSL query as a condition.
pub fn lower_query(q: &DslQuery) -> Cond {
    let test = match q {
        DslQuery::MatchAll => return Cond::True,
        DslQuery::Bool {
            must,
            should,
            must_not,
            minimum_should_match,
        } => {
            let needed = should_needed(must.len(), should.len(), *minimum_should_match);
            let mut all: Vec<Cond> = must.iter().map(lower_query).collect();
            all.extend(must_not.iter().map(|m| Cond::Not(Box::new(lower_query(m)))));
            all.push(Cond::AtLeast(
                needed,
                should.iter().map(lower_query).collect(),
            ));
            return Cond::And(all);
        }
        DslQuery::Exists { .. } => Test::Exists,
        DslQuery::Wildcard {
            pattern,
            case_insensitive,
            ..
        } => match case_insensitive {
            true => Test::Glob {
                pattern: glob::parse_wildcard(&pattern.to_ascii_lowercase()),
                case: GlobCase::Insensitive,
            },
            false => Test::Glob {
                pattern: glob::parse_wildcard(pattern),
                case: GlobCase::Sensitive,
            },
        },
        DslQuery::Prefix {
            prefix,
            case_insensitive,
            ..
        } => Test::Prefix {
            value: prefix.clone(),
            case_insensitive: *case_insensitive,
        },
        DslQuery::Term {
            value,
            case_insensitive,
            ..
        } => Test::Term {
            value: value.clone(),
            case_insensitive: *case_insensitive,
        },
        DslQuery::Terms { values, .. } => Test::Terms {
            values: values.clone(),
        },
        DslQuery::Match { query, phrase, .. } => Test::Match {
            text: query.clone(),
            phrase: *phrase,
        },
    };
    let field = q
        .fields()
        .first()
        .map_or_else(String::new, |f| f.to_string());
    Cond::Pred(Pred {
        field: FieldSel::Name(field),
        test,
        shown: format!(" ({})", kind(q)),
    })
}

/// A query's type and value, as reports show it.
fn kind(q: &DslQuery) -> String {
    match q {
        DslQuery::Wildcard { pattern, .. } => format!("wildcard {pattern}"),
        DslQuery::Prefix { prefix, .. } => format!("prefix {prefix}"),
        DslQuery::Exists { .. } => "exists".to_string(),
        DslQuery::Term { value, .. } => format!("term {value}"),
        DslQuery::Terms { values, .. } => format!("terms {}", values.join(",")),
        DslQuery::Match { query, phrase, .. } => match phrase {
            true => format!("match_phrase {query}"),
            false => format!("match {query}"),
        },
        DslQuery::Bool { .. } => "bool".to_string(),
        DslQuery::MatchAll => "match_all".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cond::glob::wildcard_matches;

    #[test]
    fn seed_filter_parses_and_matches() {
        let f: Value = serde_json::json!([{"meta": {"negate": true}, "query": {"wildcard": {"file.path": {"case_insensitive": true, "value": "?:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\DataCollection\\\\*"}}}}]);
        let filters = parse_filters(&f).expect("filters");
        assert!(filters[0].negate);
        let DslQuery::Wildcard { pattern, .. } = &filters[0].query else {
            panic!("wildcard")
        };
        assert!(wildcard_matches(
            pattern,
            r"c:\programdata\Microsoft\Windows Defender Advanced Threat Protection\DataCollection\x\y.ps1",
            true
        ));
        assert!(!wildcard_matches(pattern, r"C:\Windows\x.ps1", true));
    }

    #[test]
    fn unknown_parameters_are_errors() {
        let f = serde_json::json!([{"query": {"wildcard": {"file.path": {"value": "x*", "case_sensitive": true}}}}]);
        assert!(parse_filters(&f)
            .unwrap_err()
            .to_string()
            .contains("case_sensitive"));
        let f = serde_json::json!([{"query": {"exists": {"field": "a", "fields": ["b"]}}}]);
        assert!(parse_filters(&f)
            .unwrap_err()
            .to_string()
            .contains("fields"));
    }

    #[test]
    fn unknown_query_types_are_errors() {
        let f = serde_json::json!([{"meta": {}, "query": {"geo_shape": {}}}]);
        assert!(parse_filters(&f)
            .unwrap_err()
            .to_string()
            .contains("geo_shape"));
    }
}
