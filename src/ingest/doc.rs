//! The flat event document that every input format is turned into.
//!
//! A [`Doc`] maps full dotted field paths (`winlog.event_data.ScriptBlockText`,
//! `event.category`) to scalar values or lists of scalars, the way Elasticsearch sees a
//! document once its objects are flattened. Readers build one per event, the Windows
//! pipeline ([`super::pipeline`]) rewrites it, and the dataset writer turns it into one row.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// One field value. Absent fields are simply not in the document; JSON `null` is dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An array of scalars (arrays of objects are flattened leaf by leaf, as Elasticsearch
    /// indexes them).
    List(Vec<Value>),
}

impl Value {
    /// The value as a keyword string, the way Elasticsearch would index it into a keyword
    /// field (`4104` and `"4104"` are the same term). Lists have no single text.
    pub fn to_text(&self) -> Option<String> {
        self.text().map(Cow::into_owned)
    }

    /// [`Value::to_text`] without copying a string value.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Float(f) => Some(Cow::Owned(format_float(*f))),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::List(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a 64-bit integer, coercing numeric strings as Elasticsearch does for a
    /// `long` field.
    pub fn to_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => (f.fract() == 0.0 && f.abs() < 9.0e18).then_some(*f as i64),
            Value::Str(s) => {
                let t = s.trim();
                t.parse::<i64>().ok().or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })
            }
            Value::Bool(_) | Value::List(_) => None,
        }
    }

    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            Value::Bool(_) | Value::List(_) => None,
        }
    }

    /// True for the empty string, the value Elastic's pipelines treat as "no value".
    pub fn is_empty_text(&self) -> bool {
        matches!(self, Value::Str(s) if s.is_empty())
    }
}

/// Formats a float the way JSON serializers print it (no trailing `.0` loss of type).
pub fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// An event as a sorted map of dotted field paths to values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    fields: BTreeMap<String, Value>,
}

impl Doc {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flattens a JSON object into a document: nested objects and dotted keys give the same
    /// paths; arrays of objects become one list per leaf path; `null` and empty objects vanish.
    pub fn from_json(value: serde_json::Value) -> Doc {
        let mut doc = Doc::new();
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                flatten_into(&mut doc, k, v, false);
            }
        }
        doc
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        self.fields.get(path)
    }

    /// The field as a string if it holds one (numbers are not converted).
    pub fn get_str(&self, path: &str) -> Option<&str> {
        self.fields.get(path).and_then(Value::as_str)
    }

    /// The field as text whatever its scalar type (`event_id: 4104` gives `"4104"`).
    pub fn get_text(&self, path: &str) -> Option<String> {
        self.fields.get(path).and_then(Value::to_text)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.fields.contains_key(path)
    }

    /// Whether the document has the field or an object at `path` (a field under `path.`), as
    /// Elasticsearch's `hasField` sees it.
    pub fn has_path(&self, path: &str) -> bool {
        if self.fields.contains_key(path) {
            return true;
        }
        let prefix = format!("{path}.");
        self.fields
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Removes the field at `path` and every field under `path.` (an object).
    pub fn remove_tree(&mut self, path: &str) {
        self.fields.remove(path);
        for key in self.keys_under(&format!("{path}.")) {
            self.fields.remove(&format!("{path}.{key}"));
        }
    }

    pub fn set(&mut self, path: impl Into<String>, value: Value) {
        self.fields.insert(path.into(), value);
    }

    pub fn set_str(&mut self, path: impl Into<String>, value: impl Into<String>) {
        self.fields.insert(path.into(), Value::Str(value.into()));
    }

    /// Sets the field unless the document already has it: derived fields never overwrite
    /// what a source document carried.
    pub fn set_default(&mut self, path: &str, value: Value) {
        if !self.fields.contains_key(path) {
            self.fields.insert(path.to_string(), value);
        }
    }

    pub fn remove(&mut self, path: &str) -> Option<Value> {
        self.fields.remove(path)
    }

    /// Moves a field to a new path unless the target already exists or the value is the
    /// empty string (Elastic's `rename` with `if: field != ""`). Returns whether it moved.
    pub fn rename_nonempty(&mut self, from: &str, to: &str) -> bool {
        match self.fields.get(from) {
            Some(v) if !v.is_empty_text() && !self.fields.contains_key(to) => {
                if let Some(v) = self.fields.remove(from) {
                    self.fields.insert(to.to_string(), v);
                }
                true
            }
            _ => false,
        }
    }

    /// Appends a scalar to a list field, skipping duplicates (Elastic's `append` with
    /// `allow_duplicates: false`).
    pub fn append_unique(&mut self, path: &str, value: Value) {
        match self.fields.get_mut(path) {
            Some(Value::List(items)) => {
                if !items.contains(&value) {
                    items.push(value);
                }
            }
            Some(existing) => {
                if *existing != value {
                    let old = std::mem::replace(existing, Value::Bool(false));
                    *existing = Value::List(vec![old, value]);
                }
            }
            None => {
                self.fields
                    .insert(path.to_string(), Value::List(vec![value]));
            }
        }
    }

    /// Iterates over every field in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names (after `prefix`) of the fields under `prefix`, e.g. every
    /// `winlog.event_data.*` item.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.fields
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect()
    }

    pub fn into_fields(self) -> impl Iterator<Item = (String, Value)> {
        self.fields.into_iter()
    }
}

fn scalar(v: serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(Value::Bool(b)),
        serde_json::Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            Value::Int(i)
        } else if let Some(u) = n.as_u64() {
            Value::Str(u.to_string())
        } else {
            Value::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        serde_json::Value::String(s) => Some(Value::Str(s)),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => None,
    }
}

/// Adds `v` at `path`; `in_array` says the value sits inside a JSON array, so its leaves are
/// appended to list fields rather than set.
fn flatten_into(doc: &mut Doc, path: String, v: serde_json::Value, in_array: bool) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                flatten_into(doc, format!("{path}.{k}"), child, in_array);
            }
        }
        serde_json::Value::Array(items) => {
            if !doc.fields.contains_key(&path) && items.iter().all(|i| !i.is_object()) {
                // Mark the field as a list even when the array is empty of scalars.
                let mut list = Vec::new();
                for item in items {
                    flatten_scalars(&mut list, item);
                }
                if !list.is_empty() {
                    push_list(doc, path, list);
                }
                return;
            }
            for item in items {
                flatten_into(doc, path.clone(), item, true);
            }
        }
        other => {
            if let Some(value) = scalar(other) {
                if in_array {
                    push_list(doc, path, vec![value]);
                } else {
                    doc.fields.insert(path, value);
                }
            }
        }
    }
}

fn flatten_scalars(out: &mut Vec<Value>, v: serde_json::Value) {
    match v {
        serde_json::Value::Array(items) => items.into_iter().for_each(|i| flatten_scalars(out, i)),
        other => out.extend(scalar(other)),
    }
}

fn push_list(doc: &mut Doc, path: String, mut values: Vec<Value>) {
    match doc.fields.get_mut(&path) {
        Some(Value::List(items)) => items.append(&mut values),
        Some(existing) => {
            let old = std::mem::replace(existing, Value::Bool(false));
            let mut all = vec![old];
            all.append(&mut values);
            *existing = Value::List(all);
        }
        None => {
            doc.fields.insert(path, Value::List(values));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_dotted_keys_flatten_to_the_same_paths() {
        let a = Doc::from_json(json!({"event": {"code": "4104", "category": ["process"]}}));
        let b = Doc::from_json(json!({"event.code": "4104", "event.category": ["process"]}));
        assert_eq!(a, b);
        assert_eq!(a.get_str("event.code"), Some("4104"));
        assert_eq!(
            a.get("event.category"),
            Some(&Value::List(vec![Value::Str("process".into())]))
        );
    }

    #[test]
    fn arrays_of_objects_become_lists_per_leaf() {
        let d = Doc::from_json(json!({"p": {"details": [
            {"type": "CommandInvocation", "value": "a"},
            {"type": "ParameterBinding", "value": "b", "name": "n"}
        ]}}));
        assert_eq!(
            d.get("p.details.type"),
            Some(&Value::List(vec![
                Value::Str("CommandInvocation".into()),
                Value::Str("ParameterBinding".into())
            ]))
        );
        assert_eq!(
            d.get("p.details.name"),
            Some(&Value::List(vec![Value::Str("n".into())]))
        );
    }

    #[test]
    fn nulls_vanish_and_numbers_keep_their_type() {
        let d = Doc::from_json(json!({"a": null, "b": 3, "c": 1.5, "d": 18446744073709551615u64}));
        assert!(!d.contains("a"));
        assert_eq!(d.get("b"), Some(&Value::Int(3)));
        assert_eq!(d.get("c"), Some(&Value::Float(1.5)));
        assert_eq!(d.get_str("d"), Some("18446744073709551615"));
    }

    #[test]
    fn keys_under_lists_event_data_names() {
        let d = Doc::from_json(json!({"winlog": {"event_data": {"A": "1", "B": "2"}, "x": 1}}));
        assert_eq!(d.keys_under("winlog.event_data."), vec!["A", "B"]);
    }

    #[test]
    fn rename_skips_empty_values_and_existing_targets() {
        let mut d = Doc::from_json(json!({"a": "", "b": "x", "c": "y"}));
        assert!(!d.rename_nonempty("a", "z"));
        assert!(!d.rename_nonempty("b", "c"));
        assert!(d.rename_nonempty("b", "z"));
        assert_eq!(d.get_str("z"), Some("x"));
    }
}
