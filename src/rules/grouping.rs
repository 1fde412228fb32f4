//! What threshold and new-terms rules group their matches by.
//!
//! A `threshold` rule alerts on groups of matching documents (by the values of its fields)
//! that reach a count, and optionally a number of distinct values of another field; a
//! `new_terms` rule alerts on values (or combinations of values) of its fields that no
//! matching document had since its history window start. Both are read here from the rule's
//! parameters in either of Elastic's spellings: detection-rules' TOML and history rows
//! (`new_terms = {field = "new_terms_fields", value = [...], history_window_start = [{...}]}`)
//! and Kibana's API and exports (`new_terms_fields`, `history_window_start`).

use serde::Serialize;
use serde_json::{Map, Value};

/// A threshold or new-terms rule's grouping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    Threshold(Threshold),
    NewTerms(NewTerms),
}

/// `threshold`: alert per group of `fields` values with at least `value` matches (and, with
/// a cardinality condition, at least that many distinct values of its field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// Empty: every match is in one group.
    pub fields: Vec<String>,
    pub value: u64,
    pub cardinality: Option<Cardinality>,
}

/// A threshold's condition on the number of distinct values of a field in a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cardinality {
    pub field: String,
    pub value: u64,
}

/// `new_terms`: alert on each value combination of `fields` not seen in the history window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTerms {
    pub fields: Vec<String>,
    /// Date math relative to the execution, such as `now-14d`.
    pub history_window_start: String,
}

/// Kibana's limit on the number of new-terms fields.
pub const MAX_NEW_TERMS_FIELDS: usize = 3;

impl Grouping {
    /// The rule key and parameters as detection-rules writes them, which [`read`] reads.
    pub fn as_rule_params(&self) -> (&'static str, Value) {
        match self {
            Grouping::Threshold(t) => {
                let mut v = serde_json::json!({"field": t.fields, "value": t.value});
                if let Some(c) = &t.cardinality {
                    v["cardinality"] = serde_json::json!([{"field": c.field, "value": c.value}]);
                }
                ("threshold", v)
            }
            Grouping::NewTerms(n) => (
                "new_terms",
                serde_json::json!({
                    "field": "new_terms_fields",
                    "value": n.fields,
                    "history_window_start": [
                        {"field": "history_window_start", "value": n.history_window_start}
                    ],
                }),
            ),
        }
    }
}

/// The grouping of a rule of type `rule_type` from its JSON object; `None` for other types,
/// an error naming what is missing or malformed for these two.
pub fn read(rule_type: &str, rule: &Map<String, Value>) -> Result<Option<Grouping>, String> {
    match rule_type {
        "threshold" => threshold(rule).map(|t| Some(Grouping::Threshold(t))),
        "new_terms" => new_terms(rule).map(|n| Some(Grouping::NewTerms(n))),
        _ => Ok(None),
    }
}

fn threshold(rule: &Map<String, Value>) -> Result<Threshold, String> {
    let t = rule
        .get("threshold")
        .and_then(Value::as_object)
        .ok_or("a threshold rule needs `threshold` (an object with field and value)")?;
    let fields = strings(t.get("field"), "threshold.field")?;
    let value = count(t.get("value"), "threshold.value")?;
    let cardinality = match t.get("cardinality") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.is_empty() => None,
        Some(Value::Array(items)) if items.len() == 1 => {
            let c = items[0]
                .as_object()
                .ok_or("threshold.cardinality entries must be objects")?;
            let field = c
                .get("field")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
                .ok_or("threshold.cardinality needs a field")?;
            Some(Cardinality {
                field: field.to_string(),
                value: count(c.get("value"), "threshold.cardinality.value")?,
            })
        }
        Some(_) => return Err("threshold.cardinality must be a list of one {field, value}".into()),
    };
    Ok(Threshold {
        fields,
        value,
        cardinality,
    })
}

fn new_terms(rule: &Map<String, Value>) -> Result<NewTerms, String> {
    // detection-rules: new_terms = {field, value, history_window_start = [{field, value}]}.
    let (fields, start) = match rule.get("new_terms").and_then(Value::as_object) {
        Some(n) => {
            let start = n
                .get("history_window_start")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|s| s.get("value"))
                .cloned();
            (strings(n.get("value"), "new_terms.value")?, start)
        }
        None => (
            strings(rule.get("new_terms_fields"), "new_terms_fields")?,
            rule.get("history_window_start").cloned(),
        ),
    };
    if fields.is_empty() || fields.len() > MAX_NEW_TERMS_FIELDS {
        return Err(format!(
            "a new_terms rule needs 1 to {MAX_NEW_TERMS_FIELDS} fields, found {}",
            fields.len()
        ));
    }
    let history_window_start = start
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or("a new_terms rule needs history_window_start (such as now-14d)")?
        .to_string();
    Ok(NewTerms {
        fields,
        history_window_start,
    })
}

/// A field list: a string or an array of strings (absent: none).
fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{what} must be strings")),
        Some(_) => Err(format!("{what} must be a field name or a list of them")),
    }
}

/// A positive whole number.
fn count(v: Option<&Value>, what: &str) -> Result<u64, String> {
    v.and_then(Value::as_f64)
        .filter(|n| *n >= 1.0 && n.fract() == 0.0 && *n <= u32::MAX as f64)
        .map(|n| n as u64)
        .ok_or_else(|| format!("{what} must be a positive whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(rule_type: &str, v: Value) -> Result<Option<Grouping>, String> {
        read(rule_type, v.as_object().expect("object"))
    }

    #[test]
    fn both_spellings_of_both_types_read() {
        let t = of(
            "threshold",
            json!({"threshold": {"field": ["process.entity_id"], "value": 2,
                   "cardinality": [{"field": "winlog.event_data.TargetProcessId", "value": 2}]}}),
        );
        assert_eq!(
            t,
            Ok(Some(Grouping::Threshold(Threshold {
                fields: vec!["process.entity_id".into()],
                value: 2,
                cardinality: Some(Cardinality {
                    field: "winlog.event_data.TargetProcessId".into(),
                    value: 2
                }),
            })))
        );
        let single = of(
            "threshold",
            json!({"threshold": {"field": "host.id", "value": 10}}),
        );
        let Ok(Some(Grouping::Threshold(single))) = single else {
            panic!("{single:?}")
        };
        assert_eq!(
            (single.fields, single.cardinality),
            (vec!["host.id".into()], None)
        );
        let history = json!({"new_terms": {"field": "new_terms_fields", "value": ["host.id", "file.path"],
            "history_window_start": [{"field": "history_window_start", "value": "now-14d"}]}});
        let api = json!({"new_terms_fields": ["host.id", "file.path"], "history_window_start": "now-14d"});
        assert_eq!(of("new_terms", history), of("new_terms", api.clone()));
        assert_eq!(of("query", api), Ok(None));
    }

    #[test]
    fn missing_or_malformed_parameters_say_what() {
        let err = |t, v| of(t, v).expect_err("an error");
        assert!(err("threshold", json!({})).contains("needs `threshold`"));
        assert!(
            err("threshold", json!({"threshold": {"field": [], "value": 0}})).contains("value")
        );
        assert!(err("new_terms", json!({"new_terms_fields": []})).contains("1 to 3 fields"));
        assert!(
            err("new_terms", json!({"new_terms_fields": ["a"]})).contains("history_window_start")
        );
    }
}
