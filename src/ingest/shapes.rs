//! Recognises the shape of one source document and brings it into Winlogbeat shape.
//!
//! Shapes: an EVTX record rendered as JSON by the `evtx` crate (`Event.System`,
//! `Event.EventData`), an Elasticsearch search hit (`_source`), an OTRF/Mordor flattened
//! NXLog/Winlogbeat line (`EventID`, `Channel`, `Hostname`, event data at the top level), a
//! Winlogbeat 6 document (`event_id`, `log_name`, `event_data`), and anything else, taken as
//! an ECS document and kept as it is.

use super::doc::{Doc, Value};
use super::json_tree::Json;

/// Which family a document came in; counted in the conversion summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Evtx,
    Ecs,
    Otrf,
    Winlogbeat6,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Evtx => "evtx",
            Shape::Ecs => "ecs",
            Shape::Otrf => "otrf",
            Shape::Winlogbeat6 => "winlogbeat6",
        }
    }
}

/// The time an EVTX record carries in its header, used when `TimeCreated` is absent.
pub type RecordTime = Option<String>;

/// Turns any supported JSON document into a Winlogbeat-shaped [`Doc`].
pub fn to_winlog_shape(value: serde_json::Value) -> (Shape, Doc) {
    let serde_json::Value::Object(mut map) = value else {
        return (Shape::Ecs, Doc::new());
    };
    if map.get("Event").is_some_and(|e| e.get("System").is_some()) {
        let event = map.remove("Event").unwrap_or_default();
        return (Shape::Evtx, from_evtx_json(&event, None));
    }
    if let Some(serde_json::Value::Object(source)) = map.remove("_source") {
        let (shape, mut doc) = to_winlog_shape(serde_json::Value::Object(source));
        for key in ["_index", "_id"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                doc.set_default(key, Value::Str(s.clone()));
            }
        }
        return (shape, doc);
    }
    if map.contains_key("EventID")
        && (map.contains_key("Channel") || map.contains_key("SourceName"))
    {
        return (Shape::Otrf, from_otrf(map));
    }
    if map.contains_key("event_id")
        && (map.contains_key("log_name") || map.contains_key("source_name"))
    {
        return (Shape::Winlogbeat6, from_winlogbeat6(map));
    }
    (Shape::Ecs, Doc::from_json(serde_json::Value::Object(map)))
}

/// The text of an OTRF/Winlogbeat JSON node: a scalar, or the `#text` of an element with
/// attributes.
fn node_text(v: &serde_json::Value) -> Option<String> {
    EvtxNode::text(v)
}

/// A node of an EVTX record rendered as JSON: read both from the `evtx` crate's output
/// ([`Json`], borrowed) and from `evtx_dump` lines in NDJSON input (`serde_json::Value`).
pub trait EvtxNode: Sized {
    fn child(&self, key: &str) -> Option<&Self>;
    /// A scalar's text, the `#text` of an element with attributes, or the joined texts of
    /// an array.
    fn text(&self) -> Option<String>;
    /// An object's entries in document order; nothing for any other node.
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)>;
    fn items(&self) -> Option<&[Self]>;
    fn to_value(&self) -> serde_json::Value;
}

impl EvtxNode for serde_json::Value {
    fn child(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn text(&self) -> Option<String> {
        match self {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            serde_json::Value::Object(o) => o.get("#text").and_then(EvtxNode::text),
            serde_json::Value::Array(items) => join_texts(items),
            serde_json::Value::Null => None,
        }
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)> {
        self.as_object()
            .into_iter()
            .flat_map(|o| o.iter().map(|(k, v)| (k.as_str(), v)))
    }
    fn items(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn to_value(&self) -> serde_json::Value {
        self.clone()
    }
}

impl EvtxNode for Json<'_> {
    fn child(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn text(&self) -> Option<String> {
        match self {
            Json::Str(s) => Some(s.to_string()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            Json::Object(_) => self.get("#text").and_then(EvtxNode::text),
            Json::Array(items) => join_texts(items),
            Json::Null => None,
        }
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)> {
        let entries = match self {
            Json::Object(entries) => entries.as_slice(),
            _ => &[],
        };
        entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
    fn items(&self) -> Option<&[Self]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
    fn to_value(&self) -> serde_json::Value {
        Json::to_value(self)
    }
}

fn join_texts<N: EvtxNode>(items: &[N]) -> Option<String> {
    let parts: Vec<String> = items.iter().filter_map(EvtxNode::text).collect();
    (!parts.is_empty()).then(|| parts.join(""))
}

fn attr<N: EvtxNode>(v: &N, element: &str, name: &str) -> Option<String> {
    v.child(element)?.child("#attributes")?.child(name)?.text()
}

/// The tag Elastic Agent's `forwarded` stream (and Winlogbeat's `ForwardedEvents` examples)
/// put on events collected by Windows Event Forwarding.
pub const TAG_FORWARDED: &str = "forwarded";

/// The keyword bits every provider shares, by the names Winlogbeat gives them (winmeta.xml,
/// as beats' `winevent.defaultWinMeta` lists them), in ascending order of the bit.
const STANDARD_KEYWORDS: &[(u64, &str)] = &[
    (0x0001_0000_0000_0000, "Response Time"),
    (0x0004_0000_0000_0000, "WDI Diag"),
    (0x0008_0000_0000_0000, "SQM"),
    (KEYWORD_AUDIT_FAILURE, "Audit Failure"),
    (KEYWORD_AUDIT_SUCCESS, "Audit Success"),
    (0x0040_0000_0000_0000, "Correlation Hint"),
    (0x0080_0000_0000_0000, "Classic"),
];
const KEYWORD_AUDIT_FAILURE: u64 = 0x0010_0000_0000_0000;
const KEYWORD_AUDIT_SUCCESS: u64 = 0x0020_0000_0000_0000;

/// Winlogbeat's reading of an event's keyword mask (`Event.Fields` in beats'
/// `winevent`): `winlog.keywords` holds the rendered names, or else the names of the standard
/// bits set (the provider's own keyword names need its manifest, which an offline file does
/// not carry); the audit bits give `winlog.outcome` and `event.outcome`, failure first.
fn set_keywords(doc: &mut Doc, raw: Option<&str>, rendered: Vec<String>) {
    let mask = raw.and_then(parse_keyword_mask);
    let names: Vec<Value> = if rendered.is_empty() {
        let mask = mask.unwrap_or(0);
        STANDARD_KEYWORDS
            .iter()
            .filter(|(bit, _)| mask & bit != 0)
            .map(|(_, name)| Value::Str((*name).into()))
            .collect()
    } else {
        rendered.into_iter().map(Value::Str).collect()
    };
    if names.is_empty() {
        doc.remove("winlog.keywords");
    } else {
        doc.set("winlog.keywords", Value::List(names));
    }
    let outcome = match mask {
        Some(m) if m & KEYWORD_AUDIT_FAILURE != 0 => "failure",
        Some(m) if m & KEYWORD_AUDIT_SUCCESS != 0 => "success",
        _ => return,
    };
    doc.set_str("winlog.outcome", outcome);
    doc.set_default("event.outcome", Value::Str(outcome.into()));
}

/// A keyword mask as Go's `ParseUint(s, 0, 64)` reads it (`0x` hex or decimal); NXLog's
/// signed decimal form is taken bit for bit.
fn parse_keyword_mask(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw
            .parse::<u64>()
            .ok()
            .or_else(|| raw.parse::<i64>().ok().map(|v| v as u64)),
    }
}

/// Names Winlogbeat renders for the levels of the Windows event schema.
pub fn level_name(level: &str) -> Option<&'static str> {
    Some(match level {
        "0" => "information",
        "1" => "critical",
        "2" => "error",
        "3" => "warning",
        "4" => "information",
        "5" => "verbose",
        _ => return None,
    })
}

/// Task names of the PowerShell and Security-Auditing providers (from their manifests),
/// which Winlogbeat renders into `winlog.task` and `event.action`.
fn task_name(provider: &str, task: &str) -> Option<&'static str> {
    Some(match (provider, task) {
        ("Microsoft-Windows-PowerShell", "2") => "Execute a Remote Command",
        ("Microsoft-Windows-PowerShell", "102") => "Starting Command",
        ("Microsoft-Windows-PowerShell", "103") => "Stopping Command",
        ("Microsoft-Windows-PowerShell", "106") => "Executing Pipeline",
        ("PowerShell", "4") => "Engine Lifecycle",
        ("PowerShell", "6") => "Provider Lifecycle",
        ("PowerShell", "8") => "Pipeline Execution Details",
        ("Microsoft-Windows-Security-Auditing", _) => {
            return SECURITY_AUDITING_TASKS
                .iter()
                .find(|(id, _)| *id == task)
                .map(|(_, name)| *name)
        }
        _ => return None,
    })
}

/// The tasks of the Security-Auditing provider: its audit subcategories, by task id (from
/// Microsoft's audit-policy documentation; the pairs the OTRF data renders are checked
/// against it by a test).
pub const SECURITY_AUDITING_TASKS: &[(&str, &str)] = &[
    ("12288", "Security State Change"),
    ("12289", "Security System Extension"),
    ("12290", "System Integrity"),
    ("12291", "IPsec Driver"),
    ("12292", "Other System Events"),
    ("12544", "Logon"),
    ("12545", "Logoff"),
    ("12546", "Account Lockout"),
    ("12547", "IPsec Main Mode"),
    ("12548", "Special Logon"),
    ("12549", "IPsec Quick Mode"),
    ("12550", "IPsec Extended Mode"),
    ("12551", "Other Logon/Logoff Events"),
    ("12552", "Network Policy Server"),
    ("12553", "User / Device Claims"),
    ("12554", "Group Membership"),
    ("12800", "File System"),
    ("12801", "Registry"),
    ("12802", "Kernel Object"),
    ("12803", "SAM"),
    ("12804", "Other Object Access Events"),
    ("12805", "Certification Services"),
    ("12806", "Application Generated"),
    ("12807", "Handle Manipulation"),
    ("12808", "File Share"),
    ("12809", "Filtering Platform Packet Drop"),
    ("12810", "Filtering Platform Connection"),
    ("12811", "Detailed File Share"),
    ("12812", "Removable Storage"),
    ("12813", "Central Policy Staging"),
    ("13056", "Sensitive Privilege Use"),
    ("13057", "Non Sensitive Privilege Use"),
    ("13058", "Other Privilege Use Events"),
    ("13312", "Process Creation"),
    ("13313", "Process Termination"),
    ("13314", "DPAPI Activity"),
    ("13315", "RPC Events"),
    ("13316", "Plug and Play Events"),
    ("13317", "Token Right Adjusted Events"),
    ("13568", "Audit Policy Change"),
    ("13569", "Authentication Policy Change"),
    ("13570", "Authorization Policy Change"),
    ("13571", "MPSSVC Rule-Level Policy Change"),
    ("13572", "Filtering Platform Policy Change"),
    ("13573", "Other Policy Change Events"),
    ("13824", "User Account Management"),
    ("13825", "Computer Account Management"),
    ("13826", "Security Group Management"),
    ("13827", "Distribution Group Management"),
    ("13828", "Application Group Management"),
    ("13829", "Other Account Management Events"),
    ("14080", "Directory Service Access"),
    ("14081", "Directory Service Changes"),
    ("14082", "Directory Service Replication"),
    ("14083", "Detailed Directory Service Replication"),
    ("14336", "Credential Validation"),
    ("14337", "Kerberos Service Ticket Operations"),
    ("14338", "Other Account Logon Events"),
    ("14339", "Kerberos Authentication Service"),
];

fn opcode_name(opcode: &str) -> Option<&'static str> {
    Some(match opcode {
        "0" => "Info",
        "1" => "Start",
        "2" => "Stop",
        "15" => "On create calls",
        "20" => "To be used when operation is just executing a method",
        _ => return None,
    })
}

/// An EVTX record (the `Event` element as JSON) in Winlogbeat shape. `record_time` is the
/// record header's timestamp, used only when `System/TimeCreated` is missing.
pub fn from_evtx_json<N: EvtxNode>(event: &N, record_time: RecordTime) -> Doc {
    let mut doc = Doc::new();
    let system = event.child("System");
    let text = |k: &str| {
        system
            .and_then(|s| s.child(k))
            .and_then(EvtxNode::text)
            .filter(|s| !s.is_empty())
    };
    let attr = |element: &str, name: &str| system.and_then(|s| attr(s, element, name));
    let provider = attr("Provider", "Name");
    let created = attr("TimeCreated", "SystemTime");
    if let Some(t) = &created {
        // Winlogbeat and the Agent ship the record's creation time here as well; the
        // pipelines read it (`event.created` for Sysmon, `@timestamp` for Security).
        doc.set_str("winlog.time_created", t.clone());
    }
    if let Some(t) = created.or(record_time) {
        doc.set_str("@timestamp", t);
    }
    if let Some(p) = &provider {
        doc.set_str("winlog.provider_name", p.clone());
    }
    if let Some(g) = attr("Provider", "Guid") {
        doc.set_str("winlog.provider_guid", g);
    }
    if let Some(id) = text("EventID") {
        doc.set_str("winlog.event_id", id);
    }
    if let Some(q) = attr("EventID", "Qualifiers") {
        doc.set_str("winlog.event_id_qualifiers", q);
    }
    if let Some(v) = text("Version").and_then(|v| v.parse::<i64>().ok()) {
        doc.set("winlog.version", Value::Int(v));
    }
    // Forwarded (WEC) events carry the names the source host rendered; Winlogbeat prefers
    // them to its own lookups.
    let rendering = event.child("RenderingInfo");
    let rendered = |k: &str| {
        rendering
            .and_then(|r| r.child(k))
            .and_then(EvtxNode::text)
            .filter(|s| !s.is_empty())
    };
    if let Some(level) = rendered("Level") {
        doc.set_str("winlog.level", level.to_lowercase());
    } else if let Some(level) = text("Level") {
        match level_name(&level) {
            Some(name) => doc.set_str("winlog.level", name),
            None => doc.set_str("winlog.level", level),
        }
    }
    if let Some(task) = rendered("Task") {
        doc.set_str("winlog.task", task);
    } else if let Some(task) = text("Task") {
        let name = provider.as_deref().and_then(|p| task_name(p, &task));
        doc.set_str("winlog.task", name.map_or(task, str::to_string));
    }
    if let Some(op) = rendered("Opcode") {
        doc.set_str("winlog.opcode", op);
    } else if let Some(op) = text("Opcode") {
        doc.set_str("winlog.opcode", opcode_name(&op).map_or(op, str::to_string));
    }
    if let Some(message) = rendered("Message") {
        doc.set_str("message", message.replace("\r\n", "\n"));
    }
    let rendered_keywords = rendering
        .and_then(|r| r.child("Keywords"))
        .and_then(|k| k.child("Keyword"))
        .map(|k| match k.items() {
            Some(items) => items.iter().filter_map(EvtxNode::text).collect(),
            None => k.text().into_iter().collect(),
        })
        .unwrap_or_default();
    set_keywords(&mut doc, text("Keywords").as_deref(), rendered_keywords);
    if rendering.is_some() {
        doc.append_unique("tags", Value::Str(TAG_FORWARDED.into()));
    }
    if let Some(r) = text("EventRecordID") {
        doc.set_str("winlog.record_id", r);
    }
    if let Some(a) = attr("Correlation", "ActivityID") {
        doc.set_str("winlog.activity_id", a);
    }
    if let Some(a) = attr("Correlation", "RelatedActivityID") {
        doc.set_str("winlog.related_activity_id", a);
    }
    for (name, field) in [
        ("ProcessID", "winlog.process.pid"),
        ("ThreadID", "winlog.process.thread.id"),
    ] {
        if let Some(v) = attr("Execution", name).and_then(|v| v.parse::<i64>().ok()) {
            doc.set(field, Value::Int(v));
        }
    }
    if let Some(c) = text("Channel") {
        doc.set_str("winlog.channel", c);
    }
    if let Some(c) = text("Computer") {
        doc.set_str("winlog.computer_name", c);
    }
    if let Some(sid) = attr("Security", "UserID") {
        doc.set_str("winlog.user.identifier", sid);
    }
    if let Some(data) = event.child("EventData") {
        event_data(&mut doc, data);
    }
    if let Some(user_data) = event.child("UserData") {
        let user_data = user_data.to_value();
        let mut flat = Doc::from_json(serde_json::json!({ "winlog": { "user_data": user_data } }));
        for key in flat.keys_under("winlog.user_data.") {
            if key.contains("#attributes") {
                flat.remove(&format!("winlog.user_data.{key}"));
            }
        }
        for (k, v) in flat.into_fields() {
            doc.set(k, v);
        }
    }
    doc
}

/// `EventData`: named items become `winlog.event_data.<Name>`; unnamed `<Data>` items become
/// `param1`, `param2`, ... as Winlogbeat names them.
fn event_data<N: EvtxNode>(doc: &mut Doc, data: &N) {
    for (name, value) in data.entries() {
        if name == "#attributes" {
            continue;
        }
        if name == "Data" {
            let node = value.child("#text").unwrap_or(value);
            let unnamed: Vec<String> = match node.items() {
                Some(parts) => parts.iter().map(|p| p.text().unwrap_or_default()).collect(),
                None => node.text().into_iter().collect(),
            };
            for (i, v) in unnamed.into_iter().enumerate() {
                doc.set_str(format!("winlog.event_data.param{}", i + 1), v);
            }
            continue;
        }
        match value.items() {
            Some(parts) => {
                let list = parts
                    .iter()
                    .filter_map(EvtxNode::text)
                    .map(Value::Str)
                    .collect();
                doc.set(format!("winlog.event_data.{name}"), Value::List(list));
            }
            None => {
                if let Some(v) = value.text() {
                    doc.set_str(format!("winlog.event_data.{name}"), v);
                }
            }
        }
    }
}

/// System fields of the OTRF/NXLog flat shape and where Winlogbeat keeps them.
const OTRF_SYSTEM: &[(&str, &str)] = &[
    ("EventID", "winlog.event_id"),
    ("Channel", "winlog.channel"),
    ("SourceName", "winlog.provider_name"),
    ("ProviderGuid", "winlog.provider_guid"),
    ("Hostname", "winlog.computer_name"),
    ("RecordNumber", "winlog.record_id"),
    ("ExecutionProcessID", "winlog.process.pid"),
    ("ThreadID", "winlog.process.thread.id"),
    ("ActivityID", "winlog.activity_id"),
    ("RelatedActivityID", "winlog.related_activity_id"),
    ("Version", "winlog.version"),
    ("Keywords", "winlog.keywords"),
    ("UserID", "winlog.user.identifier"),
    ("AccountName", "winlog.user.name"),
    ("Domain", "winlog.user.domain"),
    ("AccountType", "winlog.user.type"),
    ("Opcode", "winlog.opcode"),
    ("Message", "message"),
    ("@timestamp", "@timestamp"),
    ("tags", "tags"),
];

/// Fields the collector (NXLog, Logstash) added, kept under `nxlog.*`.
const OTRF_COLLECTOR: &[&str] = &[
    "@version",
    "EventReceivedTime",
    "SourceModuleName",
    "SourceModuleType",
    "EventType",
    "EventTypeOrignal",
    "SeverityValue",
    "Severity",
    "EventTime",
    "ERROR_EVT_UNRESOLVED",
    "OpcodeValue",
    "port",
    "host",
    "TimeCreated",
];

fn from_otrf(map: serde_json::Map<String, serde_json::Value>) -> Doc {
    let mut doc = Doc::new();
    let provider = map
        .get("SourceName")
        .and_then(node_text)
        .unwrap_or_default();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        if let Some((_, to)) = OTRF_SYSTEM.iter().find(|(k, _)| *k == key) {
            flatten_value(&mut doc, to, value);
        } else if key == "Level" {
            let level = node_text(&value).unwrap_or_default();
            doc.set_str(
                "winlog.level",
                level_name(&level).map_or(level, str::to_string),
            );
        } else if key == "Category" {
            // NXLog's category is the rendered task name.
            if let Some(t) = node_text(&value) {
                doc.set_str("winlog.task", t);
            }
        } else if key == "Task" {
            let task = node_text(&value).unwrap_or_default();
            match task_name(&provider, &task) {
                Some(name) => doc.set_default("winlog.task", Value::Str(name.into())),
                None => doc.set_str("nxlog.Task", task),
            }
        } else if OTRF_COLLECTOR.contains(&key.as_str()) {
            flatten_value(&mut doc, &format!("nxlog.{key}"), value);
        } else if key == "event_data" || key == "UserData" {
            let prefix = if key == "UserData" {
                "winlog.user_data"
            } else {
                "winlog.event_data"
            };
            flatten_value(&mut doc, prefix, value);
        } else {
            flatten_value(&mut doc, &format!("winlog.event_data.{key}"), value);
        }
    }
    let raw_keywords = doc.remove("winlog.keywords").and_then(|k| k.to_text());
    set_keywords(&mut doc, raw_keywords.as_deref(), Vec::new());
    // NXLog writes event-data items as strings; the record number and ids as numbers.
    for (key, value) in doc.clone().iter() {
        if key.starts_with("winlog.event_data.") {
            if let Some(t) = value.to_text().filter(|_| !matches!(value, Value::Str(_))) {
                doc.set_str(key, t);
            }
        }
    }
    doc
}

/// Winlogbeat 6 kept the Windows fields at the top level.
const WINLOGBEAT6: &[(&str, &str)] = &[
    ("event_id", "winlog.event_id"),
    ("log_name", "winlog.channel"),
    ("source_name", "winlog.provider_name"),
    ("provider_guid", "winlog.provider_guid"),
    ("computer_name", "winlog.computer_name"),
    ("record_number", "winlog.record_id"),
    ("process_id", "winlog.process.pid"),
    ("thread_id", "winlog.process.thread.id"),
    ("activity_id", "winlog.activity_id"),
    ("related_activity_id", "winlog.related_activity_id"),
    ("version", "winlog.version"),
    ("keywords", "winlog.keywords"),
    ("opcode", "winlog.opcode"),
    ("task", "winlog.task"),
    ("event_data", "winlog.event_data"),
    ("user_data", "winlog.user_data"),
    ("user", "winlog.user"),
    ("type", "winlog.api"),
];

fn from_winlogbeat6(map: serde_json::Map<String, serde_json::Value>) -> Doc {
    let mut doc = Doc::new();
    for (key, value) in map {
        if key == "level" {
            if let Some(l) = node_text(&value) {
                doc.set_str("winlog.level", l.to_lowercase());
            }
            continue;
        }
        let to = WINLOGBEAT6
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(key.as_str(), |(_, to)| to);
        flatten_value(&mut doc, to, value);
    }
    doc
}

fn flatten_value(doc: &mut Doc, path: &str, value: serde_json::Value) {
    let mut wrapped = serde_json::Map::new();
    wrapped.insert(path.to_string(), value);
    for (k, v) in Doc::from_json(serde_json::Value::Object(wrapped)).into_fields() {
        doc.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evtx_record_maps_system_and_data() {
        let ev = json!({"System": {"Provider": {"#attributes": {"Name": "PowerShell"}},
            "EventID": {"#attributes": {"Qualifiers": "0"}, "#text": "800"}, "Level": "4",
            "Task": "8", "TimeCreated": {"#attributes": {"SystemTime": "2021-06-03T13:05:59.8094582Z"}},
            "EventRecordID": "28208", "Channel": "Windows PowerShell", "Computer": "fs01",
            "Execution": {"#attributes": {"ProcessID": "4", "ThreadID": 8}}, "Security": null},
            "EventData": {"Data": {"#text": ["", "\tA=1", "x"]}}});
        let d = from_evtx_json(&ev, None);
        assert_eq!(d.get_str("winlog.event_id"), Some("800"));
        assert_eq!(d.get_str("winlog.task"), Some("Pipeline Execution Details"));
        assert_eq!(d.get_str("winlog.level"), Some("information"));
        assert_eq!(d.get_str("winlog.event_data.param2"), Some("\tA=1"));
        assert_eq!(d.get("winlog.process.thread.id"), Some(&Value::Int(8)));
        assert_eq!(
            d.get_str("@timestamp"),
            Some("2021-06-03T13:05:59.8094582Z")
        );
    }

    #[test]
    fn keyword_masks_give_names_and_the_audit_outcome() {
        let ev = |keywords: &str| json!({"System": {"EventID": "4625", "Keywords": keywords, "Channel": "Security"}});
        let d = from_evtx_json(&ev("0x8010000000000000"), None);
        let names = |d: &Doc| d.get("winlog.keywords").cloned();
        assert_eq!(
            names(&d),
            Some(Value::List(vec![Value::Str("Audit Failure".into())]))
        );
        assert_eq!(d.get_str("winlog.outcome"), Some("failure"));
        assert_eq!(d.get_str("event.outcome"), Some("failure"));
        let d = from_evtx_json(&ev("0x8020000000000000"), None);
        assert_eq!(d.get_str("event.outcome"), Some("success"));
        // Sysmon's keyword bit is its own; nothing standard is set.
        let d = from_evtx_json(&ev("0x8000000000000000"), None);
        assert_eq!(names(&d), None);
        assert!(!d.contains("event.outcome"));
        let d = from_evtx_json(&ev("not a mask"), None);
        assert!(!d.contains("winlog.outcome"));
    }

    #[test]
    fn forwarded_records_take_their_rendering_and_the_forwarded_tag() {
        let ev = json!({"System": {"EventID": "4634", "Level": "0", "Task": "12545",
            "Keywords": "0x8020000000000000", "Channel": "Security", "Computer": "ws1.corp",
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}},
            "EventData": {"Data": [{"#attributes": {"Name": "TargetUserName"}, "#text": "bob"}]},
            "RenderingInfo": {"#attributes": {"Culture": "en-US"},
                "Message": "An account was logged off.\r\n\r\nSubject:", "Level": "Information",
                "Task": "Logoff", "Opcode": "Info",
                "Keywords": {"Keyword": "Audit Success"}}});
        let d = from_evtx_json(&ev, None);
        assert_eq!(d.get_str("winlog.level"), Some("information"));
        assert_eq!(d.get_str("winlog.task"), Some("Logoff"));
        assert_eq!(
            d.get_str("message"),
            Some("An account was logged off.\n\nSubject:")
        );
        assert_eq!(
            d.get("tags"),
            Some(&Value::List(vec![Value::Str(TAG_FORWARDED.into())]))
        );
        assert_eq!(d.get_str("event.outcome"), Some("success"));
        assert_eq!(
            crate::ingest::pipeline::DataStream::of_doc(&d),
            crate::ingest::pipeline::DataStream::Forwarded
        );
    }

    #[test]
    fn otrf_line_maps_system_fields_and_event_data() {
        let (shape, d) = to_winlog_shape(
            json!({"EventID": 4104, "Channel": "Microsoft-Windows-PowerShell/Operational",
            "SourceName": "Microsoft-Windows-PowerShell", "Hostname": "WS5", "RecordNumber": 41696,
            "Task": 2, "Category": "Execute a Remote Command", "ScriptBlockText": "x", "Path": null,
            "port": 64545, "@timestamp": "2020-09-18T19:00:13.835Z"}),
        );
        assert_eq!(shape, Shape::Otrf);
        assert_eq!(d.get_text("winlog.event_id").as_deref(), Some("4104"));
        assert_eq!(d.get_str("winlog.event_data.ScriptBlockText"), Some("x"));
        assert_eq!(d.get_str("winlog.task"), Some("Execute a Remote Command"));
        assert_eq!(d.get("nxlog.port"), Some(&Value::Int(64545)));
        assert!(!d.contains("winlog.event_data.Path"));
    }

    #[test]
    fn search_hits_are_unwrapped() {
        let (shape, d) = to_winlog_shape(json!({"_index": "logs-x", "_id": "1",
            "_source": {"event": {"code": "4104"}, "@timestamp": "2024-01-01T00:00:00Z"}}));
        assert_eq!(shape, Shape::Ecs);
        assert_eq!(d.get_str("_index"), Some("logs-x"));
        assert_eq!(d.get_str("event.code"), Some("4104"));
    }

    #[test]
    fn winlogbeat6_is_moved_under_winlog() {
        let (shape, d) = to_winlog_shape(
            json!({"event_id": 4104, "log_name": "Microsoft-Windows-PowerShell/Operational",
            "source_name": "Microsoft-Windows-PowerShell", "event_data": {"ScriptBlockText": "a"}, "level": "Warning"}),
        );
        assert_eq!(shape, Shape::Winlogbeat6);
        assert_eq!(d.get_str("winlog.event_data.ScriptBlockText"), Some("a"));
        assert_eq!(d.get_str("winlog.level"), Some("warning"));
    }
}
