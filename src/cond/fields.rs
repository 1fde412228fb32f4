//! Field types as Elastic's mappings declare them: ECS core fields, the Windows integration's
//! and Winlogbeat's fields. The type decides how a KQL leaf matches (DESIGN §5): keyword
//! exact, text analyzed, numbers and dates as ranges, ip as address or CIDR block. Fields not
//! listed compare as keywords, as Elasticsearch's dynamic templates map strings.

use super::analyzer::Analyzer;

/// How Elasticsearch indexes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Exact, case-sensitive; values over `ignore_above` (1024 in ECS templates) are not
    /// indexed.
    Keyword,
    /// Analyzed text.
    Text(Analyzer),
    /// `long` and the other integer types.
    Long,
    /// `float`: values and query bounds at 32-bit precision.
    Float,
    Double,
    /// `scaled_float` with its `scaling_factor`: values stored as whole units of 1/factor.
    ScaledFloat(u32),
    Date,
    Ip,
    Boolean,
}

/// ECS templates index keyword values up to this many characters.
pub const KEYWORD_IGNORE_ABOVE: usize = 1024;

/// The field-type table of one dataset: fixed types plus the analyzer its mapping profile
/// gives `powershell.file.script_block_text`.
#[derive(Debug, Clone, Copy)]
pub struct FieldTypes {
    pub script_block_analyzer: Analyzer,
}

impl Default for FieldTypes {
    fn default() -> Self {
        FieldTypes {
            script_block_analyzer: Analyzer::Pattern,
        }
    }
}

const TEXT_STANDARD: &[&str] = &[
    "message",
    "error.message",
    "error.stack_trace.text",
    "process.command_line.text",
    "process.parent.command_line.text",
    "process.name.text",
    "process.executable.text",
    "file.path.text",
    "user.name.text",
    "winlog.event_data.ScriptBlockText",
    "powershell.command.value.text",
];

const LONG: &[&str] = &[
    "winlog.record_id",
    "winlog.process.pid",
    "winlog.process.thread.id",
    "winlog.version",
    "process.pid",
    "process.parent.pid",
    "process.thread.id",
    "powershell.sequence",
    "powershell.total",
    "powershell.file.script_block_length",
    "powershell.file.script_block_unique_symbols",
    "event.sequence",
    "event.severity",
    "event.duration",
    "source.port",
    "destination.port",
    "source.bytes",
    "destination.bytes",
    "network.bytes",
    "network.packets",
    "file.size",
    "process.exit_code",
    "process.parent.exit_code",
    "process.args_count",
    "process.parent.args_count",
    "process.uptime",
    "http.response.status_code",
    "dns.answers.ttl",
    "winlog.event_data.LogonType",
];

const BOOLEAN: &[&str] = &[
    "process.interactive",
    "process.parent.interactive",
    "process.code_signature.exists",
    "process.code_signature.trusted",
    "process.parent.code_signature.exists",
    "process.parent.code_signature.trusted",
    "file.code_signature.exists",
    "file.code_signature.trusted",
    "dll.code_signature.exists",
    "dll.code_signature.trusted",
    "powershell.file.script_block_signature_trusted",
];

const DOUBLE: &[&str] = &[
    "powershell.file.script_block_entropy_bits",
    "powershell.file.script_block_entropy_normalized",
    "powershell.file.script_block_surprisal_stdev",
    "event.risk_score",
];

const DATE: &[&str] = &[
    "@timestamp",
    "event.created",
    "event.ingested",
    "event.start",
    "event.end",
    "process.start",
    "process.end",
    "process.parent.start",
    "file.created",
    "file.mtime",
    "file.ctime",
    "file.accessed",
    "winlog.time_created",
];

const IP: &[&str] = &[
    "source.ip",
    "destination.ip",
    "client.ip",
    "server.ip",
    "host.ip",
    "related.ip",
    "observer.ip",
    "source.nat.ip",
    "destination.nat.ip",
    "winlog.event_data.IpAddress",
];

impl FieldTypes {
    pub fn new(script_block_analyzer: Analyzer) -> FieldTypes {
        FieldTypes {
            script_block_analyzer,
        }
    }

    pub fn type_of(&self, field: &str) -> FieldType {
        if field == "powershell.file.script_block_text" {
            return FieldType::Text(self.script_block_analyzer);
        }
        if TEXT_STANDARD.contains(&field) {
            return FieldType::Text(Analyzer::Standard);
        }
        if LONG.contains(&field) {
            return FieldType::Long;
        }
        if DOUBLE.contains(&field) {
            return FieldType::Double;
        }
        if DATE.contains(&field) {
            return FieldType::Date;
        }
        if IP.contains(&field) {
            return FieldType::Ip;
        }
        if BOOLEAN.contains(&field) {
            return FieldType::Boolean;
        }
        FieldType::Keyword
    }
}
