//! The field catalog: how Elasticsearch maps each ECS and Windows field quarry knows, the one
//! table both the converter (which column type stores a field, which fields are arrays) and
//! the matcher (how a test compares a value, DESIGN §5) read.
//!
//! Types are those of ECS 8.x (`elastic/ecs` `generated/csv/fields.csv`, 8.12) and of the
//! Windows and System integrations' field definitions (`packages/windows/data_stream/*/fields`,
//! `packages/system/data_stream/security/fields`): every `winlog.event_data.*` item is a
//! `keyword` (the object's `object_type`), command lines are `wildcard` with a
//! `match_only_text` `.text` sub-field, `powershell.file.script_block_text` is `text` under the
//! mapping profile's analyzer. Fields not listed are keywords, as Elasticsearch's dynamic
//! templates (`ecs@mappings`' last rule) map strings. Dates other than `@timestamp` and
//! booleans are stored as their text and parsed when compared.

use super::analyzer::Analyzer;

/// How Elasticsearch indexes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Exact, case-sensitive; values over `ignore_above` (1024 in ECS templates) are not
    /// indexed.
    Keyword,
    /// `wildcard`: exact and case-sensitive like a keyword, with no `ignore_above`.
    Wildcard,
    /// Analyzed text (`text`, `match_only_text`).
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

/// Elasticsearch's `_index` metadata field: the index or data stream of each event, a
/// keyword the dataset stores per row.
pub const INDEX: &str = "_index";

/// The name of the PowerShell script text field, whose analyzer the mapping profile decides.
pub const SCRIPT_TEXT: &str = "powershell.file.script_block_text";

/// Analyzed with the standard analyzer (`match_only_text` sub-fields and `text` fields).
const TEXT_STANDARD: &[&str] = &[
    "message",
    "error.message",
    "error.stack_trace.text",
    "process.command_line.text",
    "process.parent.command_line.text",
    "process.name.text",
    "process.parent.name.text",
    "process.executable.text",
    "process.parent.executable.text",
    "process.title.text",
    "process.working_directory.text",
    "file.path.text",
    "file.target_path.text",
    "user.name.text",
    "user.full_name.text",
    "user.target.name.text",
    "source.user.name.text",
    "destination.user.name.text",
    "host.os.name.text",
    "host.os.full.text",
    "url.full.text",
    "url.original.text",
    "powershell.command.value",
    "powershell.command.invocation_details.value",
];

const WILDCARD: &[&str] = &[
    "process.command_line",
    "process.parent.command_line",
    "error.stack_trace",
    "registry.data.strings",
    "url.full",
    "url.original",
    "url.path",
    "email.message_id",
];

const LONG: &[&str] = &[
    "winlog.process.pid",
    "winlog.process.thread.id",
    "winlog.version",
    "process.pid",
    "process.parent.pid",
    "process.pgid",
    "process.thread.id",
    "process.parent.thread.id",
    "process.exit_code",
    "process.parent.exit_code",
    "process.args_count",
    "process.parent.args_count",
    "process.uptime",
    "process.parent.uptime",
    "powershell.sequence",
    "powershell.total",
    "powershell.file.script_block_length",
    "powershell.file.script_block_unique_symbols",
    "event.sequence",
    "event.severity",
    "event.duration",
    "source.port",
    "destination.port",
    "client.port",
    "server.port",
    "source.nat.port",
    "destination.nat.port",
    "source.bytes",
    "destination.bytes",
    "source.packets",
    "destination.packets",
    "network.bytes",
    "network.packets",
    "file.size",
    "host.uptime",
    "http.response.status_code",
    "http.request.bytes",
    "http.response.bytes",
    "dns.answers.ttl",
];

const FLOAT: &[&str] = &[
    "powershell.file.script_block_entropy_bits",
    "powershell.file.script_block_surprisal_stdev",
    // Written by the Windows integration's pipeline but mapped by no field definition:
    // Elasticsearch's dynamic mapping makes a JSON fraction a `float`.
    "powershell.file.script_block_entropy_normalized",
    "event.risk_score",
    "event.risk_score_norm",
    "host.risk.calculated_score",
    "host.risk.calculated_score_norm",
    "user.risk.calculated_score",
    "user.risk.calculated_score_norm",
];

const SCALED_FLOAT_1000: &[&str] = &["host.cpu.usage", "container.cpu.usage"];

const BOOLEAN: &[&str] = &[
    "process.interactive",
    "process.parent.interactive",
    "process.code_signature.exists",
    "process.code_signature.trusted",
    "process.code_signature.valid",
    "process.parent.code_signature.exists",
    "process.parent.code_signature.trusted",
    "process.parent.code_signature.valid",
    "file.code_signature.exists",
    "file.code_signature.trusted",
    "file.code_signature.valid",
    "dll.code_signature.exists",
    "dll.code_signature.trusted",
    "dll.code_signature.valid",
    "sysmon.file.archived",
    "sysmon.file.is_executable",
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
    "process.parent.end",
    "file.created",
    "file.mtime",
    "file.ctime",
    "file.accessed",
    "file.code_signature.timestamp",
    "process.code_signature.timestamp",
    "dll.code_signature.timestamp",
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
    "network.forwarded_ip",
    "dns.resolved_ip",
];

/// Fields ECS (or the integration) declares as arrays: always list columns, even with one
/// value.
const ARRAYS: &[&str] = &[
    "event.category",
    "event.type",
    "related.user",
    "related.hosts",
    "related.ip",
    "related.hash",
    "process.args",
    "process.parent.args",
    "process.env_vars",
    "tags",
    "winlog.keywords",
    "host.ip",
    "host.mac",
    "observer.ip",
    "observer.mac",
    "dns.answers.name",
    "dns.answers.type",
    "dns.answers.class",
    "dns.answers.data",
    "dns.answers.ttl",
    "dns.header_flags",
    "dns.resolved_ip",
    "registry.data.strings",
    "user.roles",
    "file.attributes",
    "threat.tactic.id",
    "threat.tactic.name",
    "threat.tactic.reference",
    "threat.technique.id",
    "threat.technique.name",
    "threat.technique.reference",
];

/// The field-type table of one dataset: the catalog plus the analyzer its mapping profile
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

impl FieldTypes {
    pub fn new(script_block_analyzer: Analyzer) -> FieldTypes {
        FieldTypes {
            script_block_analyzer,
        }
    }

    pub fn type_of(&self, field: &str) -> FieldType {
        if field == SCRIPT_TEXT {
            return FieldType::Text(self.script_block_analyzer);
        }
        declared_type(field).unwrap_or(FieldType::Keyword)
    }
}

/// The type the catalog gives `field`, when it lists it (the script text aside, whose
/// analyzer depends on the mapping profile).
pub fn declared_type(field: &str) -> Option<FieldType> {
    let tables: [(&[&str], FieldType); 9] = [
        (TEXT_STANDARD, FieldType::Text(Analyzer::Standard)),
        (WILDCARD, FieldType::Wildcard),
        (LONG, FieldType::Long),
        (FLOAT, FieldType::Float),
        (SCALED_FLOAT_1000, FieldType::ScaledFloat(1000)),
        (DATE, FieldType::Date),
        (IP, FieldType::Ip),
        (BOOLEAN, FieldType::Boolean),
        (&[SCRIPT_TEXT], FieldType::Text(Analyzer::Pattern)),
    ];
    tables
        .iter()
        .find(|(names, _)| names.contains(&field))
        .map(|(_, t)| *t)
}

/// Whether ECS declares `field` an array.
pub fn is_array(field: &str) -> bool {
    ARRAYS.contains(&field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_field_is_listed_under_two_types() {
        let all = [
            TEXT_STANDARD,
            WILDCARD,
            LONG,
            FLOAT,
            SCALED_FLOAT_1000,
            DATE,
            IP,
            BOOLEAN,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for names in all {
            for n in names {
                assert!(seen.insert(*n), "{n} is listed twice");
            }
        }
    }

    #[test]
    fn windows_event_data_items_are_keywords_as_the_integration_maps_them() {
        let types = FieldTypes::default();
        for f in [
            "winlog.event_data.LogonType",
            "winlog.event_data.IpAddress",
            "winlog.event_data.ScriptBlockText",
            "winlog.record_id",
        ] {
            assert_eq!(types.type_of(f), FieldType::Keyword, "{f}");
        }
        assert_eq!(
            types.type_of("powershell.file.script_block_entropy_bits"),
            FieldType::Float
        );
        assert_eq!(types.type_of("process.command_line"), FieldType::Wildcard);
    }
}
