//! The Query-DSL `filters` of a rule (`[[rule.filters]]`): parsed into [`Filter`] and ANDed
//! with the query. Elastic's rules use negated `wildcard` (often `case_insensitive`) and
//! `exists`; `term`, `terms`, `prefix`, `match`, `match_phrase` and `bool` are read too.
//! Anything else is an error naming the query type, never silently ignored.

use serde_json::Value;

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

/// Reads a rule's `filters` array.
pub fn parse_filters(filters: &Value) -> Result<Vec<Filter>, String> {
    match filters {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, f)| parse_filter(f).map_err(|e| format!("filters[{i}]: {e}")))
            .collect(),
        other => Err(format!("filters must be an array, found {other}")),
    }
}

fn parse_filter(f: &Value) -> Result<Filter, String> {
    let obj = f.as_object().ok_or("a filter must be an object")?;
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
pub fn parse_query(q: &Value) -> Result<DslQuery, String> {
    let obj = q.as_object().ok_or("a query must be an object")?;
    if obj.len() != 1 {
        return Err(format!(
            "a query object must have one key, found {:?}",
            obj.keys().collect::<Vec<_>>()
        ));
    }
    let Some((kind, body)) = obj.iter().next() else {
        return Err("empty query object".into());
    };
    match kind.as_str() {
        "match_all" => Ok(DslQuery::MatchAll),
        "exists" => {
            if let Some(bad) = body.as_object().and_then(|m| {
                m.keys()
                    .find(|k| !matches!(k.as_str(), "field" | "boost" | "_name"))
            }) {
                return Err(format!("exists has an unknown parameter `{bad}`"));
            }
            Ok(DslQuery::Exists {
                field: body
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or("exists needs a field")?
                    .to_string(),
            })
        }
        "wildcard" | "prefix" | "term" => {
            let (field, spec) = single_field(body, kind)?;
            let key = "value";
            let value = match spec {
                Value::Object(m) => m
                    .get(key)
                    .or_else(|| m.get("wildcard"))
                    .map(scalar_text)
                    .ok_or(format!("{kind} on {field} needs a value"))?,
                other => scalar_text(other),
            };
            if let Value::Object(m) = spec {
                // Elasticsearch rejects parameters it does not know, and so the rule.
                let allowed = [
                    key,
                    "wildcard",
                    "case_insensitive",
                    "boost",
                    "rewrite",
                    "_name",
                ];
                if let Some(bad) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
                    return Err(format!(
                        "{kind} on {field} has an unknown parameter `{bad}`"
                    ));
                }
            }
            let ci = spec
                .get("case_insensitive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(match kind.as_str() {
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
        "terms" => {
            let (field, spec) = single_field(body, kind)?;
            let values = spec
                .as_array()
                .ok_or(format!("terms on {field} needs an array"))?
                .iter()
                .map(scalar_text)
                .collect();
            Ok(DslQuery::Terms { field, values })
        }
        "match" | "match_phrase" => {
            let (field, spec) = single_field(body, kind)?;
            let query = match spec {
                Value::Object(m) => m
                    .get("query")
                    .map(scalar_text)
                    .ok_or(format!("{kind} on {field} needs a query"))?,
                other => scalar_text(other),
            };
            Ok(DslQuery::Match {
                field,
                query,
                phrase: kind == "match_phrase",
            })
        }
        "bool" => {
            let list = |k: &str| -> Result<Vec<DslQuery>, String> {
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
                        .ok_or("minimum_should_match must be a count")?
                        as usize,
                ),
            };
            Ok(DslQuery::Bool {
                must,
                should: list("should")?,
                must_not: list("must_not")?,
                minimum_should_match,
            })
        }
        other => Err(format!("unsupported filter query type `{other}`")),
    }
}

fn single_field<'a>(body: &'a Value, kind: &str) -> Result<(String, &'a Value), String> {
    let m = body
        .as_object()
        .ok_or(format!("{kind} body must be an object"))?;
    let mut fields = m
        .iter()
        .filter(|(k, _)| !k.starts_with('_') && *k != "boost");
    match (fields.next(), fields.next()) {
        (Some((f, spec)), None) => Ok((f.clone(), spec)),
        _ => Err(format!("{kind} must name exactly one field")),
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

/// Elasticsearch's wildcard syntax: `*` any run, `?` one character, `\` escapes.
pub fn wildcard_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let lower = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let p: Vec<WildToken> = parse_wildcard(&lower(pattern));
    let t: Vec<char> = lower(text).chars().collect();
    glob(&p, &t)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WildToken {
    Char(char),
    Any,
    AnyRun,
}

pub fn parse_wildcard(pattern: &str) -> Vec<WildToken> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => WildToken::AnyRun,
            '?' => WildToken::Any,
            '\\' => match chars.next() {
                Some(n) => WildToken::Char(n),
                None => WildToken::Char('\\'),
            },
            c => WildToken::Char(c),
        });
    }
    out
}

/// Whole-text glob match (iterative, with backtracking to the last `*`).
pub fn glob(p: &[WildToken], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(WildToken::AnyRun) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(WildToken::Any) => {
                pi += 1;
                ti += 1;
            }
            Some(WildToken::Char(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|w| *w == WildToken::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_filters(&f).unwrap_err().contains("case_sensitive"));
        let f = serde_json::json!([{"query": {"exists": {"field": "a", "fields": ["b"]}}}]);
        assert!(parse_filters(&f).unwrap_err().contains("fields"));
    }

    #[test]
    fn unknown_query_types_are_errors() {
        let f = serde_json::json!([{"meta": {}, "query": {"geo_shape": {}}}]);
        assert!(parse_filters(&f).unwrap_err().contains("geo_shape"));
    }

    #[test]
    fn glob_semantics() {
        assert!(wildcard_matches("a*c", "abbbc", false));
        assert!(wildcard_matches("a?c", "abc", false));
        assert!(!wildcard_matches("a?c", "ac", false));
        assert!(wildcard_matches("a\\*c", "a*c", false));
        assert!(!wildcard_matches("a\\*c", "abc", false));
        assert!(wildcard_matches("*", "", false));
        assert!(!wildcard_matches("A*", "abc", false));
        assert!(wildcard_matches("A*", "abc", true));
    }
}
