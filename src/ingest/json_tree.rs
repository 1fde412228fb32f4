//! A borrowed JSON tree for the EVTX reader.
//!
//! The `evtx` crate renders each record as JSON text; reading that text into
//! `serde_json::Value` costs as much as rendering it (every key and string copied, objects
//! built as hash maps). [`Json`] borrows every string that has no escape from the rendered
//! bytes and keeps objects as short vectors in document order, which is all the EVTX mapping
//! needs: it reads a few dozen nodes once each. Numbers are `serde_json::Number`, so their
//! text is the same as through `Value`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses one JSON document, borrowing strings from `bytes` where it can.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Json<'a>> {
        serde_json::from_slice(bytes)
    }

    /// The value of `key` in an object (the first, as `serde_json` keeps the last only when
    /// keys repeat, which the EVTX renderer never writes).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The same document as an owned `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::Str(s) => serde_json::Value::String(s.to_string()),
            Json::Array(items) => {
                serde_json::Value::Array(items.iter().map(Json::to_value).collect())
            }
            Json::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// An object key, borrowed when it has no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json<'de>, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json<'de>, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Json<'de>, E> {
                Ok(Json::Number(i.into()))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Json<'de>, E> {
                Ok(Json::Number(u.into()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Json<'de>, E> {
                Ok(serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
                Ok(Json::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
                Ok(Json::Str(Cow::Owned(s.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, value)) = map.next_entry::<Key<'de>, Json<'de>>()? {
                    entries.push((key.0, value));
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let text = br#"{"a":"plain","b":"tab\there","c":[1,-2,2.5,true,null]}"#;
        let j = Json::parse(text).expect("valid JSON");
        assert!(matches!(
            j.get("a"),
            Some(Json::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(j.get("b"), Some(Json::Str(Cow::Owned(s))) if s == "tab\there"));
        assert_eq!(j.get("missing"), None);
    }

    #[test]
    fn converts_to_the_same_value_serde_json_reads() {
        let text = br##"{"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":""},"#text":4104},"Big":18446744073709551615,"F":1.5e300},"Data":["x","\u00e9",null,false]}}"##;
        let ours = Json::parse(text).expect("valid JSON").to_value();
        let theirs: serde_json::Value = serde_json::from_slice(text).expect("valid JSON");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(Json::parse(b"{\"a\":").is_err());
        assert!(Json::parse(b"{\"a\":\"\xff\"}").is_err());
    }
}
