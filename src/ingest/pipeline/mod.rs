//! Elastic's Windows ingest pipelines, replayed on a [`Doc`] in Winlogbeat shape.
//!
//! Every reader turns its events into the shape Winlogbeat/Elastic Agent ships
//! (`winlog.channel`, `winlog.event_id`, `winlog.event_data.*`, ...). [`apply`] then adds the
//! fields the shipper itself sets (`common`: `event.code`, `event.provider`, `host.*`,
//! ...) and runs the pipeline of the channel's data stream:
//!
//! | channel | data stream | module |
//! |---|---|---|
//! | `Microsoft-Windows-PowerShell/Operational` | `windows.powershell_operational` | `powershell` |
//! | `Windows PowerShell` | `windows.powershell` | `powershell` |
//! | `Microsoft-Windows-Sysmon/Operational` | `windows.sysmon_operational` | `sysmon` |
//! | `Security` | `system.security` | `security` |
//! | `Microsoft-Windows-Windows Defender/Operational` | `windows.windows_defender` | `defender` |
//! | `System`, `Application` | `system.system`, `system.application` | (ECS version only) |
//! | any, collected by Windows Event Forwarding | `windows.forwarded` | the channel's, by exact name |
//!
//! The shipper's own fields follow Winlogbeat: `host.name` is the event's computer name, and
//! `host.id`, which the Agent reads from the collecting machine, is synthesised per host name
//! (see `synthesise_host_id`) except on forwarded events, to which the Agent adds no host
//! fields.
//!
//! The PowerShell mapping never overwrites a field the document has, so an export Elastic
//! already processed passes through it unchanged. The other pipelines are replayed exactly,
//! overwrites and first-writer-wins renames included, and so only on documents that no
//! pipeline has processed yet ([`is_unprocessed`]); a processed document keeps what it has.

mod defender;
mod network;
mod powershell;
mod security;
mod security_tables;
mod sysmon;
mod sysmon_tables;

use super::doc::{Doc, Value};
use super::shapes::TAG_FORWARDED;

pub use powershell::split_command_line;

pub const CHANNEL_PS_OPERATIONAL: &str = "Microsoft-Windows-PowerShell/Operational";
pub const CHANNEL_PS_CLASSIC: &str = "Windows PowerShell";
pub const CHANNEL_SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
pub const CHANNEL_SECURITY: &str = "Security";
pub const CHANNEL_DEFENDER: &str = "Microsoft-Windows-Windows Defender/Operational";

/// Knobs of the mapping that differ between Elastic versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Set `host.os.type`/`host.os.family` (Elastic Agent and Winlogbeat ≥ 7.12 do).
    pub host_os: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions { host_os: true }
    }
}

const ED: &str = "winlog.event_data.";

fn ed(name: &str) -> String {
    format!("{ED}{name}")
}

/// The data stream of Elastic's integrations a Windows channel's events are written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStream {
    PowerShellOperational,
    PowerShell,
    Sysmon,
    Security,
    Defender,
    System,
    Application,
    /// Events collected by Windows Event Forwarding (the Windows integration's
    /// `ForwardedEvents` stream), whatever their channel.
    Forwarded,
    /// Any other channel: the Windows integration's custom `winlog` input.
    Other,
}

impl DataStream {
    /// The data stream of `channel` (channel names compare case-insensitively, as Windows
    /// compares them).
    pub fn of_channel(channel: &str) -> DataStream {
        [
            (CHANNEL_PS_OPERATIONAL, DataStream::PowerShellOperational),
            (CHANNEL_PS_CLASSIC, DataStream::PowerShell),
            (CHANNEL_SYSMON, DataStream::Sysmon),
            (CHANNEL_SECURITY, DataStream::Security),
            (CHANNEL_DEFENDER, DataStream::Defender),
            ("System", DataStream::System),
            ("Application", DataStream::Application),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(channel))
        .map_or(DataStream::Other, |(_, stream)| stream)
    }

    /// The data stream of an event in Winlogbeat shape: the forwarded stream for an event
    /// tagged `forwarded` (the tag the Agent's forwarded stream sets, and the EVTX reader sets
    /// on records that carry the `RenderingInfo` of Windows Event Forwarding) or already
    /// written to it, else its channel's.
    pub fn of_doc(doc: &Doc) -> DataStream {
        let tagged = match doc.get("tags") {
            Some(Value::List(tags)) => tags.iter().any(|t| t.as_str() == Some(TAG_FORWARDED)),
            Some(tag) => tag.as_str() == Some(TAG_FORWARDED),
            None => false,
        };
        if tagged || doc.get_str("data_stream.dataset") == Some(DataStream::Forwarded.dataset()) {
            return DataStream::Forwarded;
        }
        DataStream::of_channel(&doc.get_text("winlog.channel").unwrap_or_default())
    }

    /// The data stream's `data_stream.dataset`.
    pub fn dataset(self) -> &'static str {
        match self {
            DataStream::PowerShellOperational => "windows.powershell_operational",
            DataStream::PowerShell => "windows.powershell",
            DataStream::Sysmon => "windows.sysmon_operational",
            DataStream::Security => "system.security",
            DataStream::Defender => "windows.windows_defender",
            DataStream::System => "system.system",
            DataStream::Application => "system.application",
            DataStream::Forwarded => "windows.forwarded",
            DataStream::Other => "winlog.winlog",
        }
    }
}

/// Derives ECS fields for a Windows event in Winlogbeat shape. Documents without
/// `winlog.event_id` are left alone.
pub fn apply(doc: &mut Doc, opts: PipelineOptions) {
    let Some(event_id) = doc.get_text("winlog.event_id") else {
        return;
    };
    let channel = doc.get_text("winlog.channel").unwrap_or_default();
    let stream = DataStream::of_doc(doc);
    let unprocessed = is_unprocessed(doc);
    // Winlogbeat ships no empty event-data values (its `addPairs` skips them).
    cleanup_event_data(doc);
    common(doc, &event_id, opts);
    if stream != DataStream::Forwarded {
        synthesise_host_id(doc);
    }
    match stream {
        DataStream::PowerShellOperational => powershell::operational(doc, &event_id),
        DataStream::PowerShell => powershell::classic(doc, &event_id),
        DataStream::Sysmon if unprocessed => sysmon::apply(doc),
        DataStream::Security if unprocessed => security::apply(doc),
        DataStream::Defender if unprocessed => defender::apply(doc),
        DataStream::System | DataStream::Application if unprocessed => windows_event(doc),
        DataStream::Forwarded => forwarded(doc, &channel, &event_id, unprocessed),
        _ => {}
    }
    cleanup_event_data(doc);
}

/// The Windows integration's `forwarded` pipeline (elastic/integrations
/// `packages/windows/data_stream/forwarded/elasticsearch/ingest_pipeline/default.yml`):
/// the channel's pipeline, chosen by exact channel name (Security only for the Eventlog and
/// Security-Auditing providers), then the user fields of the Agent's `translate_sid`
/// enrichment when present.
fn forwarded(doc: &mut Doc, channel: &str, event_id: &str, unprocessed: bool) {
    let provider = doc.get_text("winlog.provider_name").unwrap_or_default();
    match channel {
        CHANNEL_SECURITY
            if unprocessed
                && [
                    "Microsoft-Windows-Eventlog",
                    "Microsoft-Windows-Security-Auditing",
                ]
                .contains(&provider.as_str()) =>
        {
            security::apply(doc)
        }
        CHANNEL_PS_CLASSIC => powershell::classic(doc, event_id),
        CHANNEL_PS_OPERATIONAL => powershell::operational(doc, event_id),
        CHANNEL_SYSMON if unprocessed => sysmon::apply(doc),
        _ => {}
    }
    if !unprocessed {
        return;
    }
    rename(doc, &ed("_MemberUserName"), "user.name");
    rename(doc, &ed("_MemberDomain"), "user.domain");
    let account_type = ed("_MemberAccountType");
    if let Some(kind) = doc.get_text(&account_type) {
        doc.append_unique("user.roles", Value::Str(kind));
        doc.remove(&account_type);
    }
}

/// The name-based stand-in for Elastic Agent's `host.id` (the machine's `MachineGuid`, which
/// no event carries): an RFC 4122 version-5 UUID of the lower-cased `host.name` in the DNS
/// namespace (Python: `uuid.uuid5(uuid.NAMESPACE_DNS, host_name.lower())`), so that every
/// event of a host shares it and rules joining `by host.id` run. Flagged
/// [`FLAG_HOST_ID_SYNTHESISED`]; a document with a `host.id` keeps it.
fn synthesise_host_id(doc: &mut Doc) {
    if doc.contains("host.id") {
        return;
    }
    let Some(name) = doc.get_text("host.name").filter(|n| !n.is_empty()) else {
        return;
    };
    doc.set_str("host.id", uuid_v5(&DNS_NAMESPACE, &name.to_lowercase()));
    doc.append_unique("quarry.flags", Value::Str(FLAG_HOST_ID_SYNTHESISED.into()));
}

/// Flag stored in `quarry.flags` for an event whose `host.id` quarry synthesised.
pub const FLAG_HOST_ID_SYNTHESISED: &str = "host_id_synthesised";

/// RFC 4122's namespace for domain names, `6ba7b810-9dad-11d1-80b4-00c04fd430c8`.
const DNS_NAMESPACE: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// An RFC 4122 version-5 (SHA-1, name-based) UUID in its lower-case hyphenated form.
fn uuid_v5(namespace: &[u8; 16], name: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(namespace);
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The System integration's pipeline for the System and Application channels (the shared
/// `windows_event.yml`, elastic/integrations d3aaa918): no ECS mapping beyond the version.
fn windows_event(doc: &mut Doc) {
    doc.set_str("ecs.version", "8.11.0");
    if let Some(code) = doc.get("error.code").and_then(Value::to_text) {
        doc.set_str("error.code", code);
    }
}

/// True when no ingest pipeline has run on the document: it has none of the fields every
/// Windows pipeline writes (`event.category`, `event.type`) or Fleet's final pipeline adds
/// (`event.ingested`). Elastic's pipeline-test inputs are such documents.
pub fn is_unprocessed(doc: &Doc) -> bool {
    !["event.category", "event.type", "event.ingested"]
        .iter()
        .any(|f| doc.contains(f))
}

/// Fields the shipper (Winlogbeat, Elastic Agent) sets on every Windows event before any
/// pipeline runs.
fn common(doc: &mut Doc, event_id: &str, opts: PipelineOptions) {
    doc.set_default("event.kind", Value::Str("event".into()));
    doc.set_default("event.code", Value::Str(event_id.to_string()));
    if let Some(p) = doc.get_text("winlog.provider_name") {
        doc.set_default("event.provider", Value::Str(p));
    }
    if let Some(c) = doc.get_text("winlog.computer_name") {
        doc.set_default("host.name", Value::Str(c));
    }
    if opts.host_os {
        doc.set_default("host.os.type", Value::Str("windows".into()));
        doc.set_default("host.os.family", Value::Str("windows".into()));
    }
    if let Some(level) = doc.get_text("winlog.level").filter(|l| !l.is_empty()) {
        doc.set_default("log.level", Value::Str(level));
    }
    if let Some(task) = doc.get_text("winlog.task").filter(|t| !t.is_empty()) {
        doc.set_default("event.action", Value::Str(task));
    }
    // The integrations convert the record id to a string (a keyword).
    if let Some(id) = doc.get("winlog.record_id").and_then(Value::to_text) {
        doc.set("winlog.record_id", Value::Str(id));
    }
    if let Some(id) = doc.get("winlog.event_id").and_then(Value::to_text) {
        doc.set("winlog.event_id", Value::Str(id));
    }
}

/// Drops empty event-data values: Winlogbeat never ships them, and what a mapping leaves
/// empty is not indexed.
fn cleanup_event_data(doc: &mut Doc) {
    for key in doc.keys_under(ED) {
        let path = ed(&key);
        if doc.get(&path).is_some_and(Value::is_empty_text) {
            doc.remove(&path);
        }
    }
}

/// The `date` processor (tag `time_created_date`) the Windows pipelines share: `target` from
/// `winlog.time_created`, to the millisecond. A value that does not parse is removed, its
/// `on_failure` appends `fail-time_created_date` to `error.message`, and the message of the
/// `fail` it then raises is returned.
fn time_created_date(doc: &mut Doc, target: &str) -> Result<(), String> {
    let Some(created) = doc.get("winlog.time_created").cloned() else {
        return Ok(());
    };
    match crate::ingest::time::parse_timestamp(&created) {
        Some(us) => {
            doc.set_str(target, crate::ingest::time::format_millis(us));
            Ok(())
        }
        None => {
            doc.remove("winlog.time_created");
            doc.append_unique("error.message", Value::Str("fail-time_created_date".into()));
            Err(format!(
                "Processor date with tag time_created_date failed with message: \
                 unable to parse date [{}]",
                created.to_text().unwrap_or_default()
            ))
        }
    }
}

/// Elasticsearch's `rename` processor with `ignore_missing` and `ignore_failure`: moves the
/// value unless the source is absent or the target already exists (first writer wins; the
/// source then stays where it was). Returns whether it moved.
fn rename(doc: &mut Doc, from: &str, to: &str) -> bool {
    if !doc.contains(from) || doc.has_path(to) {
        return false;
    }
    if let Some(v) = doc.remove(from) {
        doc.set(to, v);
    }
    true
}

/// Flag stored in `quarry.flags` for an event with a value a pipeline's `ignore_failure`
/// processor could not convert (an address that does not parse, a port that is not a
/// number, a `Hashes` item without `=`): the field is left out, as in Elasticsearch.
pub const FLAG_VALUE_NOT_CONVERTED: &str = "value_not_converted";

fn flag_not_converted(doc: &mut Doc) {
    doc.append_unique("quarry.flags", Value::Str(FLAG_VALUE_NOT_CONVERTED.into()));
}

/// Elasticsearch's `convert` to `long` into another field: copies, overwriting the target;
/// a value that is not a (decimal or `0x` hex) integer leaves the target alone.
fn convert_long(doc: &mut Doc, from: &str, to: &str) {
    let Some(value) = doc.get(from) else {
        return;
    };
    match java_long(value) {
        Some(v) => doc.set(to, Value::Int(v)),
        None => flag_not_converted(doc),
    }
}

/// Java's `Long.decode` for `0x` prefixes, `Long.parseLong` otherwise, as the `convert`
/// processor parses longs.
fn java_long(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Str(s) => {
            let (neg, body) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let parsed = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
                Some(hex) if !hex.is_empty() && !hex.starts_with(['-', '+']) => {
                    i64::from_str_radix(hex, 16).ok()?
                }
                Some(_) => return None,
                None if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) => {
                    body.parse::<i64>().ok()?
                }
                None => return None,
            };
            Some(if neg { -parsed } else { parsed })
        }
        _ => None,
    }
}

/// Elasticsearch's `convert` to `ip` into another field: the text is kept as it was when it
/// parses as an address, and nothing is set when it does not.
fn convert_ip(doc: &mut Doc, from: &str, to: &str) {
    let Some(s) = doc.get_text(from) else {
        return;
    };
    if network::is_ip(&s) {
        doc.set(to, Value::Str(s));
    } else {
        flag_not_converted(doc);
    }
}

/// A `set` with `copy_from` and `ignore_empty_value`: copies a non-empty value.
fn copy_nonempty(doc: &mut Doc, from: &str, to: &str) {
    if let Some(v) = doc.get(from).filter(|v| !v.is_empty_text()).cloned() {
        doc.set(to, v);
    }
}

/// [`copy_nonempty`] with `override: false`: a target that exists is kept.
fn copy_nonempty_default(doc: &mut Doc, from: &str, to: &str) {
    if !doc.contains(to) {
        copy_nonempty(doc, from, to);
    }
}

/// A list of keyword values, as the pipelines' `set` of an array writes it.
fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Value {
    Value::List(items.into_iter().map(|s| Value::Str(s.into())).collect())
}

/// The last `\` segment of a path (the whole text when it has none), as the pipelines'
/// `([^\\]*$)` groks take a name from a path.
fn last_segment(path: &str) -> &str {
    path.rsplit('\\').next().unwrap_or(path)
}

/// A pipeline's `on_failure`: the event is kept, marked `event.kind: pipeline_error`, with
/// the failure in `error.message`, and counted (`pipeline_error` in `quarry.flags`).
fn record_pipeline_error(doc: &mut Doc, message: String) {
    doc.set_str("event.kind", "pipeline_error");
    doc.append_unique("error.message", Value::Str(message));
    doc.append_unique("quarry.flags", Value::Str("pipeline_error".into()));
}

/// A `{{field}}` mustache template as Elasticsearch renders it in ingest: JSON string
/// escaping (`\` → `\\`, `"` → `\"`, control characters as escapes).
fn mustache(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Appends the text of `field` to `list` unless already there (an `append` of
/// `"{{field}}"` with `allow_duplicates: false`), when the field has a non-empty value.
fn append_related(doc: &mut Doc, list: &str, field: &str) {
    if let Some(text) = doc.get_text(field).filter(|t| !t.is_empty()) {
        doc.append_unique(list, Value::Str(mustache(&text)));
    }
}

/// Java's `String.split` with a literal separator: trailing empty pieces are dropped.
fn java_split<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts == [""] && !s.is_empty() {
        parts.clear();
    }
    parts
}

/// Entries in the order a `java.util.HashMap` of this size iterates them: by bucket of the
/// key's `String.hashCode`, insertion order within a bucket.
fn java_hash_map_order<V>(entries: Vec<(String, V)>) -> Vec<(String, V)> {
    let mut capacity = 16usize;
    while entries.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |key: &str| {
        let h = key
            .encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut keyed: Vec<(usize, usize, (String, V))> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| (bucket(&e.0), i, e))
        .collect();
    keyed.sort_by_key(|(b, i, _)| (*b, *i));
    keyed.into_iter().map(|(_, _, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn existing_ecs_fields_are_kept() {
        let mut d = Doc::from_json(
            json!({"host": {"name": "agent-host"}, "event": {"code": "x"},
            "winlog": {"channel": "Security", "event_id": "4688", "computer_name": "dc1"}}),
        );
        apply(&mut d, PipelineOptions::default());
        assert_eq!(d.get_str("host.name"), Some("agent-host"));
        assert_eq!(d.get_str("event.code"), Some("x"));
    }

    #[test]
    fn longs_parse_as_java_convert_does() {
        for (text, want) in [
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("0x1F", Some(31)),
            ("-0x10", Some(-16)),
            ("", None),
            ("4.0", None),
            ("0x", None),
            ("12a", None),
        ] {
            assert_eq!(java_long(&Value::Str(text.into())), want, "{text}");
        }
    }

    #[test]
    fn java_split_drops_trailing_empty_pieces() {
        assert_eq!(java_split("a,b,,", ","), vec!["a", "b"]);
        assert_eq!(java_split(",a", ","), vec!["", "a"]);
        assert_eq!(java_split("DOM\\", "\\"), vec!["DOM"]);
        assert_eq!(java_split("", ","), vec![""]);
        assert!(java_split(",,", ",").is_empty());
    }

    #[test]
    fn hashes_come_out_in_java_hash_map_order() {
        let keys = |entries: &[&str]| {
            let pairs = entries.iter().map(|k| (k.to_string(), ())).collect();
            java_hash_map_order(pairs)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&["SHA1", "MD5", "SHA256", "IMPHASH"]),
            vec!["SHA256", "SHA1", "MD5", "IMPHASH"]
        );
        assert_eq!(keys(&["MD5", "IMPHASH"]), vec!["MD5", "IMPHASH"]);
    }

    #[test]
    fn host_ids_are_name_based_uuids() {
        // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
        assert_eq!(
            uuid_v5(&DNS_NAMESPACE, "python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
        let mut d = Doc::from_json(json!({"winlog": {"channel": "Security",
            "event_id": "4624", "computer_name": "WS1.corp.local"}}));
        apply(&mut d, PipelineOptions::default());
        assert_eq!(
            d.get_str("host.id"),
            Some(uuid_v5(&DNS_NAMESPACE, "ws1.corp.local").as_str())
        );
        let mut forwarded = Doc::from_json(json!({"tags": ["forwarded"],
            "winlog": {"channel": "Security", "event_id": "4624", "computer_name": "WS1"}}));
        apply(&mut forwarded, PipelineOptions::default());
        assert!(
            !forwarded.contains("host.id"),
            "the Agent adds no host fields to WEC data"
        );
        assert_eq!(DataStream::of_doc(&forwarded), DataStream::Forwarded);
    }

    #[test]
    fn forwarded_events_take_the_translated_member_names() {
        let mut d = Doc::from_json(json!({"tags": ["forwarded"],
            "winlog": {"channel": "Microsoft-Windows-TaskScheduler/Operational",
            "event_id": "106", "computer_name": "DC1",
            "event_data": {"_MemberUserName": "alice", "_MemberDomain": "CORP",
                "_MemberAccountType": "User"}}}));
        apply(&mut d, PipelineOptions::default());
        assert_eq!(d.get_str("user.name"), Some("alice"));
        assert_eq!(d.get_str("user.domain"), Some("CORP"));
        assert_eq!(
            d.get("user.roles"),
            Some(&Value::List(vec![Value::Str("User".into())]))
        );
        assert!(!d.has_path("winlog.event_data"));
    }

    #[test]
    fn mustache_escapes_as_json() {
        assert_eq!(mustache(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(mustache("x/y"), "x/y");
    }
}
