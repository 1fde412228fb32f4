//! Column types of the dataset: which ECS and Windows fields are numbers, dates or arrays.
//!
//! Elasticsearch decides matching by field type, so the dataset stores each field with the
//! type its Elastic mapping gives it: `@timestamp` as a UTC microsecond timestamp, `long` and
//! `float` fields as numbers, fields ECS declares as arrays as list columns, and everything
//! else — keywords, text and fields with no known type — as UTF-8 strings. A field that shows
//! up as an array in any row becomes a list column for the whole file.

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

/// The text of a PowerShell script block (event 4104).
pub const SCRIPT_TEXT: &str = "powershell.file.script_block_text";

/// Fields ECS declares as arrays: always list columns, even with one value.
const LIST_FIELDS: &[&str] = &[
    "event.category",
    "event.type",
    "related.user",
    "related.hosts",
    "related.ip",
    "related.hash",
    "process.args",
    "process.parent.args",
    "tags",
    "host.ip",
    "host.mac",
];

/// `long` fields of ECS and the Windows integration that rules compare as numbers.
const INT_FIELDS: &[&str] = &[
    "winlog.process.pid",
    "winlog.process.thread.id",
    "winlog.version",
    "process.pid",
    "process.parent.pid",
    "process.args_count",
    "process.thread.id",
    "event.sequence",
    "event.severity",
    "powershell.sequence",
    "powershell.total",
    "powershell.file.script_block_length",
    "powershell.file.script_block_unique_symbols",
    "source.port",
    "destination.port",
];

const FLOAT_FIELDS: &[&str] = &[
    "powershell.file.script_block_entropy_bits",
    "powershell.file.script_block_entropy_normalized",
    "powershell.file.script_block_surprisal_stdev",
    "event.risk_score",
];

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

/// The column kind a field is stored as, before looking at its values.
pub fn declared_kind(field: &str) -> Option<ColumnKind> {
    if field == TIMESTAMP {
        Some(ColumnKind::Timestamp)
    } else if LIST_FIELDS.contains(&field) {
        Some(ColumnKind::StrList)
    } else if INT_FIELDS.contains(&field) {
        Some(ColumnKind::Int)
    } else if FLOAT_FIELDS.contains(&field) {
        Some(ColumnKind::Float)
    } else {
        None
    }
}

pub fn is_big_text(field: &str) -> bool {
    BIG_TEXT_FIELDS.contains(&field)
}
