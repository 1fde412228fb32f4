//! Column types of the dataset: how each field is stored, read off the one field catalog
//! ([`crate::cond::fields`]) that matching uses too.
//!
//! Elasticsearch decides matching by field type, so the dataset stores each field with the
//! type its Elastic mapping gives it: `@timestamp` as a UTC microsecond timestamp, integer
//! and floating-point fields as numbers, fields ECS declares as arrays as list columns, and
//! everything else — keywords, text, dates, booleans and fields with no known type — as UTF-8
//! strings. A field that shows up as an array in any row becomes a list column for the whole
//! file.

use crate::cond::fields::{self, FieldType};

/// Storage class of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Timestamp,
    Int,
    Float,
    Bool,
    Str,
    StrList,
}

pub const TIMESTAMP: &str = "@timestamp";

/// The index or data stream each event belongs to (what index patterns select).
pub use crate::cond::fields::INDEX;

/// The text of a PowerShell script block (event 4104).
pub use crate::cond::fields::SCRIPT_TEXT;

/// Columns whose values are long free text: no page statistics are worth keeping for them.
pub const BIG_TEXT_FIELDS: &[&str] = &[
    SCRIPT_TEXT,
    "powershell.file.script_block_signature",
    "message",
    "event.original",
    "winlog.event_data.ScriptBlockText",
    "winlog.event_data.Payload",
    "winlog.event_data.ContextInfo",
];

/// The column kind a field is stored as, before looking at its values: as the field
/// catalog ([`crate::cond::fields`]) maps it. Arrays are list columns of text, numbers
/// numeric columns; dates other than `@timestamp`, booleans and everything else text.
pub fn declared_kind(field: &str) -> Option<ColumnKind> {
    if field == TIMESTAMP {
        return Some(ColumnKind::Timestamp);
    }
    if fields::is_array(field) {
        return Some(ColumnKind::StrList);
    }
    match fields::declared_type(field)? {
        FieldType::Long => Some(ColumnKind::Int),
        FieldType::Float | FieldType::Double | FieldType::ScaledFloat(_) => Some(ColumnKind::Float),
        _ => None,
    }
}

pub fn is_big_text(field: &str) -> bool {
    BIG_TEXT_FIELDS.contains(&field)
}
