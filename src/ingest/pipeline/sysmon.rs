//! The Sysmon data stream of Elastic's Windows integration (`sysmon_operational`, ingest
//! pipeline `default.yml` at elastic/integrations commit bf3be6b2, ECS 8.0.0), replayed
//! processor by processor on a document no pipeline has processed.
//!
//! What Elasticsearch's processors do beyond the YAML is reproduced too: `rename` refuses
//! an existing target (the first writer wins and the source stays in `winlog.event_data`),
//! `convert` and `set` overwrite, `{{ }}` templates JSON-escape, hashes come out in Java
//! `HashMap` order, and a processor without `ignore_failure` that fails stops the pipeline
//! with `event.kind: pipeline_error` and the reason in `error.message`, keeping what was
//! done before. Known quirks kept on purpose: `file.code_signature.signed` is never set
//! (`Signed` is the string `"true"`, which Painless does not equal to `true`), a `QWORD` is
//! `(high << 8) + low`, `file.extension` is cut at the path's last `.`, and the DNS answer
//! loop skips the address after an invalid one. The tables are in [`super::sysmon_tables`].

use super::network::{self, DomainParts};
use super::sysmon_tables::{self as tables, lookup};
use super::{
    append_related, convert_ip, convert_long, copy_nonempty, ed, java_hash_map_order, java_split,
    mustache, record_pipeline_error, rename, split_command_line, strings, time_created_date, Doc,
    Value, ED,
};
use crate::ingest::time::format_millis;

/// Why the pipeline stopped: the message Elasticsearch appends to `error.message`.
struct Failure(String);

type Step = Result<(), Failure>;

/// Runs the pipeline; a failure is recorded as Elasticsearch's pipeline `on_failure` does.
pub(super) fn apply(doc: &mut Doc) {
    if let Err(Failure(message)) = run(doc) {
        record_pipeline_error(doc, message);
    }
}

fn run(doc: &mut Doc) -> Step {
    doc.set_str("ecs.version", "8.0.0");
    remove_empty_event_data(doc, true);
    if doc.get_str("winlog.level") != Some("") {
        rename(doc, "winlog.level", "log.level");
    }
    times(doc)?;
    doc.set_str("event.kind", "event");
    let code = doc
        .get_text("winlog.event_id")
        .map_or(String::new(), |c| mustache(&c));
    doc.set_str("event.code", code.clone());
    categorise(doc, &code);
    if let Some(id) = doc.get("winlog.record_id").and_then(Value::to_text) {
        doc.set_str("winlog.record_id", id);
    }
    if code == "255" {
        rename(doc, &ed("ID"), "error.code");
    }
    rename(doc, &ed("RuleName"), "rule.name");
    if code == "25" {
        rename(doc, &ed("Type"), "message");
    }
    rename(doc, &ed("Hash"), &ed("Hashes"));
    let hashes = hashes(doc);
    process_fields(doc, &code, hashes.as_ref())?;
    file_fields(doc, &code, hashes.as_ref())?;
    network_fields(doc, &code)?;
    user_fields(doc);
    sysmon_fields(doc);
    append_related(doc, "related.user", "user.name");
    append_related(doc, "related.ip", "source.ip");
    append_related(doc, "related.ip", "destination.ip");
    registry_fields(doc, &code);
    if doc.contains(&ed("TargetProcessGuid")) {
        target_process_guid(doc)?;
    }
    cleanup(doc);
    Ok(())
}

/// `TargetProcessGuid` → `TargetProcessGUID`, the one event-data rename without
/// `ignore_failure`.
fn target_process_guid(doc: &mut Doc) -> Step {
    let to = ed("TargetProcessGUID");
    if rename(doc, &ed("TargetProcessGuid"), &to) {
        Ok(())
    } else {
        Err(Failure(format!("field [{to}] already exists")))
    }
}

/// The pipeline's first and last script: event-data items that are `""`, `"-"` or (first
/// time only) the zero GUID in braces are dropped.
fn remove_empty_event_data(doc: &mut Doc, zero_guid: bool) {
    for key in doc.keys_under(ED) {
        let path = ed(&key);
        let empty = doc.get_str(&path).is_some_and(|v| {
            v.is_empty() || v == "-" || (zero_guid && v == "{00000000-0000-0000-0000-000000000000}")
        });
        if empty {
            doc.remove(&path);
        }
    }
}

/// `event.created` from `winlog.time_created` (a bad one fails the pipeline) and
/// `@timestamp` from Sysmon's `UtcTime` (`yyyy-MM-dd HH:mm:ss.SSS`, UTC; a bad one is
/// ignored).
fn times(doc: &mut Doc) -> Step {
    time_created_date(doc, "event.created").map_err(Failure)?;
    if let Some(us) = doc.get_str(&ed("UtcTime")).and_then(sysmon_utc_time) {
        doc.set_str("@timestamp", format_millis(us));
    }
    Ok(())
}

fn sysmon_utc_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 23
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// `event.category`, `event.type` and `event.action` from the event id's table row.
fn categorise(doc: &mut Doc, code: &str) {
    let Some((_, category, kind, action)) = tables::CATEGORIES.iter().find(|r| r.0 == code) else {
        return;
    };
    if !category.is_empty() {
        doc.set("event.category", strings(category.iter().copied()));
    }
    doc.set("event.type", strings(kind.iter().copied()));
    doc.set_str("event.action", *action);
}

/// The `Hashes` item split into lower-case `(algorithm, hash)` pairs in the order
/// Elasticsearch's map iterates them, all-zero hashes left out; `related.hash` replaces the
/// whole `related` object when any hash is kept. `None` when there was nothing to split.
fn hashes(doc: &mut Doc) -> Option<Vec<(String, String)>> {
    let text = doc.get_str(&ed("Hashes"))?.to_string();
    // The kv processor: pairs before a piece without `=` stay written.
    let mut pairs: Vec<(String, Vec<String>)> = Vec::new();
    for piece in java_split(&text, ",") {
        let Some((key, value)) = piece.split_once('=') else {
            super::flag_not_converted(doc);
            break;
        };
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value.to_string()),
            None => pairs.push((key.to_string(), vec![value.to_string()])),
        }
    }
    if pairs.is_empty() {
        return None;
    }
    let mut kept = Vec::new();
    for (key, values) in java_hash_map_order(pairs) {
        let value = match values.as_slice() {
            [one] => one.to_lowercase(),
            many => format!("[{}]", many.join(", ")).to_lowercase(),
        };
        if value.bytes().all(|b| b == b'0') {
            continue;
        }
        kept.push((key.to_lowercase(), value));
    }
    if !kept.is_empty() {
        doc.remove_tree("related");
        let list = kept.iter().map(|(_, v)| Value::Str(v.clone())).collect();
        doc.set("related.hash", Value::List(list));
    }
    Some(kept)
}

/// Moves the hashes to `<object>.hash.*` and the imphash to `<object>.pe.imphash`. The
/// rename has no `ignore_failure`: an existing hash object fails the pipeline.
fn place_hashes(doc: &mut Doc, object: &str, hashes: &[(String, String)]) -> Step {
    let target = format!("{object}.hash");
    if doc.has_path(&target) {
        return Err(Failure(format!("field [{target}] already exists")));
    }
    for (algorithm, hash) in hashes {
        doc.set_str(format!("{target}.{algorithm}"), hash.clone());
    }
    rename(
        doc,
        &format!("{target}.imphash"),
        &format!("{object}.pe.imphash"),
    );
    Ok(())
}

/// Event-data items and the ECS field they move to (renames, first writer wins) or are
/// converted into (`long`, copies that overwrite), in the pipeline's order.
const PROCESS_ITEMS: &[(&str, &str, Conversion)] = &[
    ("ProcessGuid", "process.entity_id", Conversion::Rename),
    ("ProcessId", "process.pid", Conversion::Long),
    ("Image", "process.executable", Conversion::Rename),
    ("SourceProcessGuid", "process.entity_id", Conversion::Rename),
    ("SourceProcessGUID", "process.entity_id", Conversion::Rename),
    ("SourceProcessId", "process.pid", Conversion::Long),
    ("SourceThreadId", "process.thread.id", Conversion::Long),
    ("SourceImage", "process.executable", Conversion::Rename),
    ("Destination", "process.executable", Conversion::Rename),
    ("CommandLine", "process.command_line", Conversion::Rename),
    (
        "CurrentDirectory",
        "process.working_directory",
        Conversion::Rename,
    ),
    (
        "ParentProcessGuid",
        "process.parent.entity_id",
        Conversion::Rename,
    ),
    ("ParentProcessId", "process.parent.pid", Conversion::Long),
    (
        "ParentImage",
        "process.parent.executable",
        Conversion::Rename,
    ),
    (
        "ParentCommandLine",
        "process.parent.command_line",
        Conversion::Rename,
    ),
];

const NETWORK_ITEMS: &[(&str, &str, Conversion)] = &[
    ("SourceIp", "source.ip", Conversion::Ip),
    ("SourceHostname", "source.domain", Conversion::Rename),
    ("SourcePort", "source.port", Conversion::Long),
    ("DestinationIp", "destination.ip", Conversion::Ip),
    (
        "DestinationHostname",
        "destination.domain",
        Conversion::Rename,
    ),
    ("DestinationPort", "destination.port", Conversion::Long),
    ("QueryName", "dns.question.name", Conversion::Rename),
];

/// Portable-executable details copied (not moved) from event data.
const PE_ITEMS: &[(&str, &str)] = &[
    ("Company", "company"),
    ("Description", "description"),
    ("FileVersion", "file_version"),
    ("Product", "product"),
];

#[derive(Clone, Copy)]
enum Conversion {
    Rename,
    Long,
    Ip,
}

fn move_items(doc: &mut Doc, items: &[(&str, &str, Conversion)]) {
    for (item, field, conversion) in items {
        let from = ed(item);
        match conversion {
            Conversion::Rename => {
                rename(doc, &from, field);
            }
            Conversion::Long => convert_long(doc, &from, field),
            Conversion::Ip => convert_ip(doc, &from, field),
        }
    }
}

fn process_fields(doc: &mut Doc, code: &str, hashes: Option<&Vec<(String, String)>>) -> Step {
    if let Some(h) = hashes.filter(|_| tables::PROCESS_HASH_EVENTS.contains(&code)) {
        place_hashes(doc, "process", h)?;
    }
    move_items(doc, PROCESS_ITEMS);
    if code != "7" {
        rename(
            doc,
            &ed("OriginalFileName"),
            "process.pe.original_file_name",
        );
        for (item, field) in PE_ITEMS {
            copy_nonempty(doc, &ed(item), &format!("process.pe.{field}"));
        }
    }
    for object in ["process", "process.parent"] {
        args(doc, object);
    }
    for object in ["process", "process.parent"] {
        name_from_executable(doc, object);
    }
    Ok(())
}

/// `<object>.args`/`args_count` from its command line, split as `CommandLineToArgvW` does.
fn args(doc: &mut Doc, object: &str) {
    let Some(cmd) = doc
        .get_str(&format!("{object}.command_line"))
        .filter(|c| !c.is_empty())
    else {
        return;
    };
    let args = split_command_line(cmd);
    doc.set(
        format!("{object}.args_count"),
        Value::Int(args.len() as i64),
    );
    doc.set(
        format!("{object}.args"),
        Value::List(args.into_iter().map(Value::Str).collect()),
    );
}

/// `<object>.name`, when it has none, from the executable's last `\` component.
fn name_from_executable(doc: &mut Doc, object: &str) {
    let name_field = format!("{object}.name");
    if doc.contains(&name_field) {
        return;
    }
    let Some(exe) = doc.get_str(&format!("{object}.executable")) else {
        return;
    };
    if exe.chars().count() <= 1 {
        return;
    }
    if let Some(i) = exe.rfind('\\') {
        let name = exe[i + 1..].to_string();
        if !name.is_empty() {
            doc.set_str(name_field, name);
        }
    }
}

fn file_fields(doc: &mut Doc, code: &str, hashes: Option<&Vec<(String, String)>>) -> Step {
    if let Some(h) = hashes.filter(|_| tables::FILE_HASH_EVENTS.contains(&code)) {
        place_hashes(doc, "file", h)?;
    }
    for (item, field) in [
        ("TargetFilename", "file.path"),
        ("Device", "file.path"),
        ("PipeName", "file.name"),
        ("ImageLoaded", "file.path"),
    ] {
        rename(doc, &ed(item), field);
    }
    copy_nonempty(doc, &ed("Signature"), "file.code_signature.subject_name");
    copy_nonempty(doc, &ed("SignatureStatus"), "file.code_signature.status");
    if code == "7" {
        rename(doc, &ed("OriginalFileName"), "file.pe.original_file_name");
        for (item, field) in PE_ITEMS {
            copy_nonempty(doc, &ed(item), &format!("file.pe.{field}"));
        }
    }
    if doc.get(&ed("Signed")) == Some(&Value::Bool(true)) {
        doc.set("file.code_signature.signed", Value::Bool(true));
    }
    if doc.get_str(&ed("SignatureStatus")) == Some("Valid") {
        doc.set("file.code_signature.valid", Value::Bool(true));
    }
    file_name_parts(doc);
    Ok(())
}

/// `file.name`, `file.directory` and `file.extension` from `file.path`.
fn file_name_parts(doc: &mut Doc) {
    let Some(path) = doc.get_str("file.path").filter(|p| p.chars().count() > 1) else {
        return;
    };
    let Some(i) = path.rfind('\\') else {
        return;
    };
    let (name, directory) = (path[i + 1..].to_string(), path[..i].to_string());
    let extension = path.rfind('.').map(|j| path[j + 1..].to_string());
    doc.set_str("file.name", name);
    doc.set_str("file.directory", directory);
    if let Some(ext) = extension {
        doc.set_str("file.extension", ext);
    }
}

fn network_fields(doc: &mut Doc, code: &str) -> Step {
    rename(doc, &ed("Protocol"), "network.transport");
    if code == "22" {
        doc.set_str("network.protocol", "dns");
    } else {
        rename(doc, &ed("DestinationPortName"), "network.protocol");
        rename(doc, &ed("SourcePortName"), "network.protocol");
    }
    move_items(doc, NETWORK_ITEMS);
    let flag = |doc: &Doc, item: &str| doc.get_str(&ed(item)).map(str::to_string);
    match flag(doc, "Initiated").as_deref() {
        Some("true") => doc.set_str("network.direction", "egress"),
        Some("false") => doc.set_str("network.direction", "ingress"),
        _ => {}
    }
    match flag(doc, "SourceIsIpv6").as_deref() {
        Some("false") => doc.set_str("network.type", "ipv4"),
        Some("true") => doc.set_str("network.type", "ipv6"),
        _ => {}
    }
    dns_answers(doc)?;
    dns_question(doc);
    community_id(doc);
    Ok(())
}

/// One parsed `QueryResults` answer.
struct Answer {
    kind: Option<&'static str>,
    data: Option<String>,
}

/// `dns.answers`, `dns.resolved_ip` and `related.hosts`/`related.ip` from `QueryResults`
/// (`type:  5 name;` entries and bare addresses, separated by `;`).
fn dns_answers(doc: &mut Doc) -> Step {
    let mut answers = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut hosts = Vec::new();
    if let Some(results) = doc.get_str(&ed("QueryResults")).map(str::to_string) {
        for answer in java_split(&results, ";")
            .into_iter()
            .filter(|a| !a.is_empty())
        {
            if answer.starts_with("type:") {
                let parts: Vec<&str> = answer.split_whitespace().collect();
                if parts.len() < 2 {
                    return Err(Failure("unexpected QueryResult format".into()));
                }
                let kind = lookup(tables::DNS_TYPES, parts[1]);
                let data = (parts.len() == 3).then(|| parts[2].to_string());
                hosts.extend(data.clone());
                answers.push(Answer { kind, data });
            } else {
                addresses.push(answer.replace("::ffff:", ""));
            }
        }
        if (!answers.is_empty() || !addresses.is_empty()) && !doc.has_path("dns") {
            return Err(Failure(
                "Cannot invoke \"Object.getClass()\" because \"ctx.dns\" is null".into(),
            ));
        }
        if !hosts.is_empty() {
            doc.set(
                "related.hosts",
                Value::List(hosts.into_iter().map(Value::Str).collect()),
            );
        }
    }
    let resolved: Vec<Option<String>> = addresses
        .into_iter()
        .map(|a| network::is_ip(&a).then_some(a))
        .collect();
    synthesise_address_answers(&mut answers, &resolved);
    write_answers(doc, &answers, &resolved);
    Ok(())
}

/// An `A`/`AAAA` answer per resolved address, with the pipeline's loop quirk: after an
/// invalid address is removed, the one that slides into its place is skipped.
fn synthesise_address_answers(answers: &mut Vec<Answer>, resolved: &[Option<String>]) {
    let mut list: Vec<Option<String>> = resolved.to_vec();
    let mut i = 0;
    while i < list.len() {
        match list[i].clone() {
            None => {
                list.remove(i);
            }
            Some(ip) => {
                let kind = if ip.contains(':') { "AAAA" } else { "A" };
                answers.push(Answer {
                    kind: Some(kind),
                    data: Some(ip),
                });
            }
        }
        i += 1;
    }
}

fn write_answers(doc: &mut Doc, answers: &[Answer], resolved: &[Option<String>]) {
    let strings = |items: Vec<String>| Value::List(items.into_iter().map(Value::Str).collect());
    if !answers.is_empty() {
        let kinds: Vec<String> = answers
            .iter()
            .filter_map(|a| a.kind)
            .map(str::to_string)
            .collect();
        let data: Vec<String> = answers.iter().filter_map(|a| a.data.clone()).collect();
        if !kinds.is_empty() {
            doc.set("dns.answers.type", strings(kinds));
        }
        if !data.is_empty() {
            doc.set("dns.answers.data", strings(data));
        }
    }
    // Elasticsearch indexes no value for the null an invalid address leaves in the list.
    let valid: Vec<String> = resolved.iter().flatten().cloned().collect();
    if !valid.is_empty() {
        doc.set("dns.resolved_ip", strings(valid.clone()));
    }
    for ip in valid {
        doc.append_unique("related.ip", Value::Str(mustache(&ip)));
    }
}

/// The registered domain, top-level domain and subdomain of `dns.question.name`, and the
/// name in `related.hosts`.
fn dns_question(doc: &mut Doc) {
    let Some(name) = doc.get_text("dns.question.name") else {
        return;
    };
    if let Some(DomainParts {
        registered_domain,
        top_level_domain,
        subdomain,
        ..
    }) = network::registered_domain(&name)
    {
        if let Some(r) = registered_domain {
            doc.set_str("dns.question.registered_domain", r);
        }
        doc.set_str("dns.question.top_level_domain", top_level_domain);
        if let Some(s) = subdomain {
            doc.set_str("dns.question.subdomain", s);
        }
    }
    append_related(doc, "related.hosts", "dns.question.name");
}

fn community_id(doc: &mut Doc) {
    let endpoint = |ip: &str, port: &str| Some((doc.get_str(ip)?, doc.get(port)?.to_i64()?));
    let (Some(source), Some(destination), Some(transport)) = (
        endpoint("source.ip", "source.port"),
        endpoint("destination.ip", "destination.port"),
        doc.get_str("network.transport"),
    ) else {
        return;
    };
    if let Some(id) = network::community_id(source, destination, transport) {
        doc.set_str("network.community_id", id);
    }
}

/// `user.id` from the event's SID; `user.domain`/`user.name` from `DOMAIN\name`, else from
/// Winlogbeat's SID translation (`_MemberUserName`, ...).
fn user_fields(doc: &mut Doc) {
    copy_nonempty(doc, "winlog.user.identifier", "user.id");
    if let Some(user) = doc.get_str(&ed("User")).map(str::to_string) {
        if let [domain, name] = java_split(&user, "\\").as_slice() {
            for (field, part) in [("user.domain", domain), ("user.name", name)] {
                let text = mustache(part);
                if !text.is_empty() {
                    doc.set_str(field, text);
                }
            }
        }
    }
    rename(doc, &ed("_MemberUserName"), "user.name");
    rename(doc, &ed("_MemberDomain"), "user.domain");
    if let Some(kind) = doc.get_text(&ed("_MemberAccountType")) {
        doc.append_unique("user.roles", Value::Str(kind));
        doc.remove(&ed("_MemberAccountType"));
    }
}

fn sysmon_fields(doc: &mut Doc) {
    rename(doc, &ed("QueryStatus"), "sysmon.dns.status");
    if let Some(name) = doc
        .get_str("sysmon.dns.status")
        .and_then(tables::dns_status)
    {
        doc.set_str("sysmon.dns.status", name);
    }
    for (item, field) in [
        ("Archived", "sysmon.file.archived"),
        ("IsExecutable", "sysmon.file.is_executable"),
    ] {
        let flag = doc.get_text(&ed(item)).map(|v| v.to_ascii_lowercase());
        match flag.as_deref() {
            Some("true") => doc.set(field, Value::Bool(true)),
            Some("false") => doc.set(field, Value::Bool(false)),
            _ => {}
        }
    }
    if let Some(code) = doc.get("error.code").and_then(Value::to_text) {
        doc.set_str("error.code", code);
    }
}

/// `registry.*` from `TargetObject` and `Details` for events 12 to 14.
fn registry_fields(doc: &mut Doc, code: &str) {
    if !["12", "13", "14"].contains(&code) {
        return;
    }
    let Some(path) = doc.get_str(&ed("TargetObject")).map(str::to_string) else {
        return;
    };
    doc.remove_tree("registry");
    let tokens = java_split(&path, "\\");
    doc.set_str("registry.path", path.clone());
    if let Some(hive) = tokens.first().and_then(|t| lookup(tables::HIVES, t)) {
        doc.set_str("registry.hive", hive);
        if tokens.len() > 1 {
            doc.set_str("registry.key", tokens[1..].join("\\"));
        }
    }
    if let Some(last) = tokens.last() {
        doc.set_str("registry.value", *last);
    }
    if let Some(details) = doc.get_str(&ed("Details")).map(str::to_string) {
        let (kind, text) = registry_data(&details);
        doc.set_str("registry.data.type", kind);
        doc.set("registry.data.strings", Value::List(vec![Value::Str(text)]));
    }
}

/// The type and text of a registry value as Sysmon's `Details` renders it.
fn registry_data(details: &str) -> (&'static str, String) {
    let upper = details.to_ascii_uppercase();
    let hex8 = |s: &str| -> Option<i64> {
        let digits = s.strip_prefix("0X")?;
        (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| i64::from_str_radix(digits, 16).ok())
            .flatten()
    };
    if let Some(inner) = upper
        .strip_prefix("QWORD (")
        .and_then(|r| r.strip_suffix(')'))
    {
        if let Some((high, low)) = inner.split_once('-') {
            if let (Some(high), Some(low)) = (hex8(high), hex8(low)) {
                return ("SZ_QWORD", ((high << 8) + low).to_string());
            }
        }
    }
    if let Some(value) = upper
        .strip_prefix("DWORD (")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(hex8)
    {
        return ("SZ_DWORD", value.to_string());
    }
    if details == "Binary Data" {
        return ("REG_BINARY", details.to_string());
    }
    ("REG_SZ", details.to_string())
}

/// Event-data items the pipeline has read and drops at the end.
const DROPPED_ITEMS: &[&str] = &[
    "ProcessId",
    "ParentProcessId",
    "SourceProcessId",
    "SourceThreadId",
    "SourceIp",
    "SourcePort",
    "SourcePortName",
    "DestinationIp",
    "DestinationPort",
    "DestinationPortName",
    "RuleName",
    "User",
    "Initiated",
    "SourceIsIpv6",
    "DestinationIsIpv6",
    "QueryStatus",
    "Archived",
    "IsExecutable",
    "QueryResults",
    "UtcTime",
    "Hash",
    "Hashes",
    "TargetObject",
];

fn cleanup(doc: &mut Doc) {
    for item in DROPPED_ITEMS {
        doc.remove(&ed(item));
    }
    doc.remove("winlog.time_created");
    doc.remove("winlog.level");
    remove_empty_event_data(doc, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_details_parse_with_the_pipelines_quirks() {
        assert_eq!(
            registry_data("QWORD (0x00000000-0x1234fabd)"),
            ("SZ_QWORD", "305461949".to_string())
        );
        assert_eq!(
            registry_data("QWORD (0x00000001-0x00000000)"),
            ("SZ_QWORD", "256".to_string())
        );
        assert_eq!(
            registry_data("DWORD (0x00000004)"),
            ("SZ_DWORD", "4".into())
        );
        assert_eq!(
            registry_data("dword (0x0000000a)"),
            ("SZ_DWORD", "10".into())
        );
        assert_eq!(
            registry_data("DWORD (0x4)"),
            ("REG_SZ", "DWORD (0x4)".into())
        );
        assert_eq!(
            registry_data("Binary Data"),
            ("REG_BINARY", "Binary Data".into())
        );
        assert_eq!(registry_data("(Empty)"), ("REG_SZ", "(Empty)".into()));
    }

    #[test]
    fn utc_time_needs_exactly_milliseconds() {
        assert_eq!(
            sysmon_utc_time("2019-07-18 03:34:01.239")
                .map(format_millis)
                .as_deref(),
            Some("2019-07-18T03:34:01.239Z")
        );
        assert_eq!(sysmon_utc_time("2019-07-18 03:34:01.2391"), None);
        assert_eq!(sysmon_utc_time("2019-07-18T03:34:01.239"), None);
    }
}
