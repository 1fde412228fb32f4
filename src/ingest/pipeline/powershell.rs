//! The PowerShell data streams of Elastic's Windows integration (`powershell_operational`
//! for `Microsoft-Windows-PowerShell/Operational`, `powershell` for `Windows PowerShell`).
//!
//! Derived fields never overwrite a field the document already has, so an ECS export that
//! Elastic already processed passes through unchanged, while a raw Winlogbeat export gains
//! what the integration would have added. Event-data items that the integration renames are
//! moved to their ECS home; items it only parses (`MessageNumber`, `ContextInfo`, `Payload`,
//! `User`, ...) are removed after parsing, exactly as the integration removes them, so that
//! field-existence queries see what Elasticsearch saw.
//!
//! One deliberate difference: values split out of multi-line event data (`ContextInfo`,
//! `Payload`, the classic channel's `param` blocks) also lose a trailing `\r`. Real event logs
//! use CRLF line ends; the integration's `kv`/`split` processors only cut at `\n`, which would
//! leave `ConsoleHost\r` in `process.title`.

use super::{ed, Doc, Value};
use crate::ingest::script_stats;

/// The process id both PowerShell pipelines copy from the event's `Execution` element, and
/// the user's SID from its `Security` element.
fn execution_context(doc: &mut Doc) {
    if let Some(pid) = doc.get("winlog.process.pid").and_then(Value::to_i64) {
        doc.set_default("process.pid", Value::Int(pid));
    }
    if let Some(sid) = doc
        .get_text("winlog.user.identifier")
        .filter(|s| !s.is_empty())
    {
        doc.set_default("user.id", Value::Str(sid));
    }
}

fn process_category(doc: &mut Doc, event_type: &str) {
    doc.set_default(
        "event.category",
        Value::List(vec![Value::Str("process".into())]),
    );
    doc.set_default(
        "event.type",
        Value::List(vec![Value::Str(event_type.to_string())]),
    );
}

pub(super) fn operational(doc: &mut Doc, event_id: &str) {
    execution_context(doc);
    if event_id == "4103" {
        if let Some(ctx) = doc.get_text(&ed("ContextInfo")) {
            split_key_values(doc, &ctx, &["\n"]);
        }
    }
    process_category(
        doc,
        match event_id {
            "4105" => "start",
            "4106" => "end",
            _ => "info",
        },
    );
    convert_long(doc, &ed("SequenceNumber"), "event.sequence");
    process_fields(doc, "HostID");
    user_from(doc, "User");
    connected_user(doc);
    convert_long(doc, &ed("MessageNumber"), "powershell.sequence");
    convert_long(doc, &ed("MessageTotal"), "powershell.total");
    for (from, to) in [
        ("ShellID", "powershell.id"),
        ("EngineVersion", "powershell.engine.version"),
        ("PipelineID", "powershell.pipeline_id"),
        ("RunspaceID", "powershell.runspace_id"),
        ("RunspaceId", "powershell.runspace_id"),
        ("HostVersion", "powershell.process.executable_version"),
        ("CommandLine", "powershell.command.value"),
        ("CommandPath", "powershell.command.path"),
        ("CommandName", "powershell.command.name"),
        ("CommandType", "powershell.command.type"),
        ("ScriptBlockId", "powershell.file.script_block_id"),
        ("ScriptBlockText", "powershell.file.script_block_text"),
    ] {
        doc.rename_nonempty(&ed(from), to);
    }
    script_block(doc);
    if event_id == "4103" {
        invocation_details(doc, "Payload");
    }
    command_line_args(doc);
    doc.rename_nonempty(&ed("Path"), &ed("ScriptName"));
    script_file(doc);
    for name in [
        "SequenceNumber",
        "User",
        "ConnectedUser",
        "ContextInfo",
        "Severity",
        "MessageTotal",
        "MessageNumber",
        "Payload",
    ] {
        doc.remove(&ed(name));
    }
    doc.remove("winlog.time_created");
    doc.remove("winlog.level");
}

pub(super) fn classic(doc: &mut Doc, event_id: &str) {
    execution_context(doc);
    let block = if event_id == "800" {
        "param2"
    } else {
        "param3"
    };
    if let Some(text) = doc.get_text(&ed(block)) {
        split_key_values(doc, &text, &["\n\t"]);
    } else if let Some(message) = doc.get_text("message") {
        // Collectors that keep only the rendered message (NXLog, as in the OTRF datasets)
        // still carry the same `\tKey=Value` block inside it.
        split_key_values(doc, &message_details(&message), &["\n"]);
    }
    process_category(
        doc,
        match event_id {
            "400" => "start",
            "403" => "end",
            _ => "info",
        },
    );
    convert_long(doc, &ed("SequenceNumber"), "event.sequence");
    process_fields(doc, "HostId");
    user_from(doc, "UserId");
    for (from, to) in [
        ("NewEngineState", "powershell.engine.new_state"),
        ("PreviousEngineState", "powershell.engine.previous_state"),
        ("NewProviderState", "powershell.provider.new_state"),
        ("ProviderName", "powershell.provider.name"),
    ] {
        doc.rename_nonempty(&ed(from), to);
    }
    convert_long(doc, &ed("DetailTotal"), "powershell.total");
    convert_long(doc, &ed("DetailSequence"), "powershell.sequence");
    for (from, to) in [
        ("EngineVersion", "powershell.engine.version"),
        ("PipelineId", "powershell.pipeline_id"),
        ("RunspaceId", "powershell.runspace_id"),
        ("HostVersion", "powershell.process.executable_version"),
        ("CommandLine", "powershell.command.value"),
        ("CommandPath", "powershell.command.path"),
        ("CommandName", "powershell.command.name"),
        ("CommandType", "powershell.command.type"),
    ] {
        doc.rename_nonempty(&ed(from), to);
    }
    if event_id == "800" {
        invocation_details(doc, "param3");
    }
    command_line_args(doc);
    script_file(doc);
    for name in [
        "param1",
        "param2",
        "param3",
        "SequenceNumber",
        "DetailTotal",
        "DetailSequence",
        "UserId",
    ] {
        doc.remove(&ed(name));
    }
    doc.remove("winlog.time_created");
    doc.remove("winlog.level");
}

/// The `\tKey=Value` lines of a classic PowerShell event's rendered message.
fn message_details(message: &str) -> String {
    message
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with('\t') && l.contains('='))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Elastic's `kv` processor into `winlog.event_data`, followed by the script that removes
/// whitespace from every key. Pieces without `=` are skipped.
fn split_key_values(doc: &mut Doc, text: &str, separators: &[&str]) {
    let mut pieces = vec![text];
    for sep in separators {
        pieces = pieces.iter().flat_map(|p| p.split(sep)).collect();
    }
    for piece in pieces {
        let Some((key, value)) = piece.split_once('=') else {
            continue;
        };
        let trim = |s: &str| {
            s.trim_matches(|c| matches!(c, ' ' | '\n' | '\t' | '\r'))
                .to_string()
        };
        let key: String = trim(key).chars().filter(|c| !c.is_whitespace()).collect();
        if key.is_empty() {
            continue;
        }
        doc.set_str(ed(&key), trim(value));
    }
}

fn convert_long(doc: &mut Doc, from: &str, to: &str) {
    if let Some(v) = doc.get(from).and_then(Value::to_i64) {
        doc.set_default(to, Value::Int(v));
    }
}

fn process_fields(doc: &mut Doc, host_id: &str) {
    doc.rename_nonempty(&ed(host_id), "process.entity_id");
    doc.rename_nonempty(&ed("HostApplication"), "process.command_line");
    doc.rename_nonempty(&ed("HostName"), "process.title");
}

/// `DOMAIN\name` into `user.domain`/`user.name` and `related.user`.
fn user_from(doc: &mut Doc, field: &str) {
    let Some(user) = doc.get_text(&ed(field)) else {
        return;
    };
    if let Some((domain, name)) = split_account(&user) {
        if !domain.is_empty() {
            doc.set_default("user.domain", Value::Str(domain.to_string()));
        }
        if !name.is_empty() {
            doc.set_default("user.name", Value::Str(name.to_string()));
        }
    }
    if let Some(name) = doc.get_text("user.name") {
        doc.append_unique("related.user", Value::Str(name));
    }
}

/// The account splits into exactly two parts at `\` (the pipeline's `size() == 2` test).
fn split_account(account: &str) -> Option<(&str, &str)> {
    let mut parts = account.split('\\');
    let (a, b) = (parts.next()?, parts.next()?);
    parts.next().is_none().then_some((a, b))
}

/// The connected user of a remote session becomes `source.user`, the local user moves to
/// `destination.user`, and `user.*` takes the connected user, as the integration does.
fn connected_user(doc: &mut Doc) {
    let Some(account) = doc.get_text(&ed("ConnectedUser")) else {
        return;
    };
    let Some((domain, name)) = split_account(&account) else {
        return;
    };
    if !domain.is_empty() {
        doc.set_default("source.user.domain", Value::Str(domain.to_string()));
    }
    if !name.is_empty() {
        doc.set_default("source.user.name", Value::Str(name.to_string()));
        doc.append_unique("related.user", Value::Str(name.to_string()));
    }
    if doc.contains("source.user.domain") || doc.contains("source.user.name") {
        for part in ["domain", "name"] {
            let user = format!("user.{part}");
            if let Some(v) = doc.remove(&user) {
                doc.set_default(&format!("destination.user.{part}"), v);
            }
            if let Some(v) = doc.get(&format!("source.user.{part}")).cloned() {
                doc.set(user, v);
            }
        }
    }
}

/// Trims the script block text, fingerprints it, extracts the signature block and adds the
/// script statistics.
fn script_block(doc: &mut Doc) {
    const TEXT: &str = "powershell.file.script_block_text";
    // Taken out while it is measured (scripts can be megabytes: no copy), then put back.
    let mut text = match doc.remove(TEXT) {
        Some(Value::Str(text)) => text,
        Some(other) => {
            doc.set(TEXT, other);
            return;
        }
        None => return,
    };
    let trimmed = script_stats::java_trim(&text);
    if trimmed.len() != text.len() {
        text = trimmed.to_string();
    }
    doc.set_default(
        "powershell.file.script_block_hash",
        Value::Str(script_stats::script_block_hash(&text)),
    );
    if let Some(sig) = script_stats::signature(&text) {
        doc.set_default("powershell.file.script_block_signature", Value::Str(sig));
    }
    let stats = if doc.contains("powershell.file.script_block_entropy_bits") {
        None
    } else {
        script_stats::script_stats(&text)
    };
    doc.set(TEXT, Value::Str(text));
    let Some(stats) = stats else {
        return;
    };
    for (field, value) in [
        ("length", Value::Int(stats.length)),
        ("unique_symbols", Value::Int(stats.unique_symbols)),
        ("entropy_bits", Value::Float(stats.entropy_bits)),
        ("entropy_normalized", Value::Float(stats.entropy_normalized)),
        ("surprisal_stdev", Value::Float(stats.surprisal_stdev)),
    ] {
        doc.set(format!("powershell.file.script_block_{field}"), value);
    }
}

/// One parsed line of a pipeline-execution `Payload` (4103) or `param3` (800).
#[derive(Debug, Default, PartialEq)]
struct InvocationDetail {
    kind: Option<String>,
    related_command: Option<String>,
    name: Option<String>,
    value: Option<String>,
}

/// `Type(Command): value`, and for `ParameterBinding` `name=N; value=V`, as the pipeline's
/// painless script parses them.
fn parse_invocation_detail(raw: &str) -> InvocationDetail {
    let whole = || InvocationDetail {
        value: Some(raw.to_string()),
        ..Default::default()
    };
    let Some(open) = raw.find('(') else {
        return whole();
    };
    let kind = &raw[..open];
    if kind.is_empty() || kind.contains(':') {
        return whole();
    }
    let Some(close_rel) = raw[open + 1..].find(')') else {
        return whole();
    };
    let close = open + 1 + close_rel;
    let command = &raw[open + 1..close];
    if command.is_empty() || !raw[close + 1..].starts_with(':') {
        return whole();
    }
    let rest = raw[close + 2..].trim_start_matches(|c: char| c.is_ascii_whitespace());
    if rest.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        return whole();
    }
    let value = (!rest.is_empty()).then(|| rest.to_string());
    if kind != "ParameterBinding" {
        return InvocationDetail {
            kind: Some(kind.to_string()),
            related_command: Some(command.to_string()),
            name: None,
            value,
        };
    }
    let binding = value.as_deref().and_then(parse_parameter_binding);
    match binding {
        Some((name, v)) => InvocationDetail {
            kind: Some(kind.to_string()),
            related_command: Some(command.to_string()),
            name: Some(name),
            value: Some(v),
        },
        None => InvocationDetail {
            value,
            ..Default::default()
        },
    }
}

/// `name=(.+);\s*value=(.+)` with greedy groups: the last `;\s*value=` that leaves a value.
fn parse_parameter_binding(s: &str) -> Option<(String, String)> {
    let body = s.strip_prefix("name=")?;
    let mut candidates: Vec<usize> = body.match_indices(';').map(|(i, _)| i).collect();
    candidates.reverse();
    for semi in candidates {
        if semi == 0 {
            continue;
        }
        let after = body[semi + 1..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        if let Some(value) = after.strip_prefix("value=") {
            if !value.is_empty() {
                return Some((body[..semi].to_string(), value.to_string()));
            }
        }
    }
    None
}

fn invocation_details(doc: &mut Doc, field: &str) {
    let Some(payload) = doc.get_text(&ed(field)) else {
        return;
    };
    let mut lines: Vec<&str> = payload
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    const BASE: &str = "powershell.command.invocation_details";
    if lines.is_empty() || !doc.keys_under(&format!("{BASE}.")).is_empty() {
        return;
    }
    for line in lines {
        let d = parse_invocation_detail(line);
        for (leaf, v) in [
            ("type", d.kind),
            ("related_command", d.related_command),
            ("name", d.name),
            ("value", d.value),
        ] {
            if let Some(v) = v {
                push_to_list(doc, &format!("{BASE}.{leaf}"), Value::Str(v));
            }
        }
    }
}

fn push_to_list(doc: &mut Doc, path: &str, value: Value) {
    let mut items = match doc.remove(path) {
        Some(Value::List(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    items.push(value);
    doc.set(path, Value::List(items));
}

/// `process.args`/`process.args_count` from `process.command_line`, split the way Windows'
/// `CommandLineToArgvW` does (the pre-2008 rule for doubled quotes inside quotes).
fn command_line_args(doc: &mut Doc) {
    if doc.contains("process.args") {
        return;
    }
    let Some(cmd) = doc
        .get_text("process.command_line")
        .filter(|c| !c.is_empty())
    else {
        return;
    };
    let args = split_command_line(&cmd);
    doc.set_default("process.args_count", Value::Int(args.len() as i64));
    doc.set(
        "process.args",
        Value::List(args.into_iter().map(Value::Str).collect()),
    );
}

pub fn split_command_line(cmd: &str) -> Vec<String> {
    let chars: Vec<char> = cmd.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        let mut arg = String::new();
        let mut in_quote = false;
        let mut slashes = 0usize;
        while i < chars.len() {
            let c = chars[i];
            match c {
                ' ' | '\t' if !in_quote => break,
                '"' => {
                    arg.extend(std::iter::repeat_n('\\', slashes / 2));
                    if slashes.is_multiple_of(2) {
                        if in_quote && chars.get(i + 1) == Some(&'"') {
                            arg.push('"');
                            i += 1;
                        }
                        in_quote = !in_quote;
                    } else {
                        arg.push('"');
                    }
                    slashes = 0;
                }
                '\\' => slashes += 1,
                _ => {
                    arg.extend(std::iter::repeat_n('\\', slashes));
                    slashes = 0;
                    arg.push(c);
                }
            }
            i += 1;
        }
        arg.extend(std::iter::repeat_n('\\', slashes));
        args.push(arg);
        i += 1;
    }
    args
}

/// `file.path`/`name`/`directory`/`extension` from the script path.
fn script_file(doc: &mut Doc) {
    let key = ed("ScriptName");
    if let Some(path) = doc.get_text(&key).filter(|p| p.chars().count() > 1) {
        if let Some(idx) = path.rfind('\\') {
            doc.set_default("file.name", Value::Str(path[idx + 1..].to_string()));
            doc.set_default("file.directory", Value::Str(path[..idx].to_string()));
            if let Some(ext) = path.rfind('.') {
                doc.set_default("file.extension", Value::Str(path[ext + 1..].to_string()));
            }
        }
    }
    doc.rename_nonempty(&key, "file.path");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::ingest::pipeline::{
        apply, PipelineOptions, CHANNEL_PS_CLASSIC, CHANNEL_PS_OPERATIONAL, ED,
    };

    fn run(v: serde_json::Value) -> Doc {
        let mut d = Doc::from_json(v);
        apply(&mut d, PipelineOptions::default());
        d
    }

    #[test]
    fn script_block_event_gets_powershell_fields() {
        let d = run(
            json!({"winlog": {"channel": CHANNEL_PS_OPERATIONAL, "event_id": 4104,
            "record_id": 7, "provider_name": "Microsoft-Windows-PowerShell",
            "computer_name": "ws1", "user": {"identifier": "S-1-5-18"},
            "event_data": {"MessageNumber": "2", "MessageTotal": "3", "ScriptBlockText": " Get-Date \n",
                "ScriptBlockId": "abc", "Path": "C:\\x\\y.ps1"}}}),
        );
        assert_eq!(
            d.get_str("powershell.file.script_block_text"),
            Some("Get-Date")
        );
        assert_eq!(d.get("powershell.sequence"), Some(&Value::Int(2)));
        assert_eq!(d.get("powershell.total"), Some(&Value::Int(3)));
        assert_eq!(d.get_str("file.name"), Some("y.ps1"));
        assert_eq!(d.get_str("file.directory"), Some("C:\\x"));
        assert_eq!(d.get_str("file.extension"), Some("ps1"));
        assert_eq!(d.get_str("file.path"), Some("C:\\x\\y.ps1"));
        assert_eq!(d.get_str("event.code"), Some("4104"));
        assert_eq!(d.get_str("winlog.record_id"), Some("7"));
        assert_eq!(d.get_str("user.id"), Some("S-1-5-18"));
        assert_eq!(d.get_str("host.os.type"), Some("windows"));
        assert!(d.keys_under(ED).is_empty(), "{:?}", d.keys_under(ED));
    }

    #[test]
    fn parses_invocation_details() {
        let d = parse_invocation_detail(
            r#"ParameterBinding(Out-Null): name="InputObject"; value="a; value=b""#,
        );
        assert_eq!(d.kind.as_deref(), Some("ParameterBinding"));
        assert_eq!(d.name.as_deref(), Some("\"InputObject\"; value=\"a"));
        assert_eq!(d.value.as_deref(), Some("b\""));
        let d = parse_invocation_detail("CommandInvocation(cmd.exe): \"cmd.exe\"");
        assert_eq!(d.related_command.as_deref(), Some("cmd.exe"));
        assert_eq!(d.value.as_deref(), Some("\"cmd.exe\""));
        assert_eq!(
            parse_invocation_detail("no detail").value.as_deref(),
            Some("no detail")
        );
    }

    #[test]
    fn splits_windows_command_lines() {
        assert_eq!(
            split_command_line(r#"C:\a b\c.exe -x "y z" "q\"r" s\\"#),
            vec!["C:\\a", "b\\c.exe", "-x", "y z", "q\"r", "s\\\\"]
        );
        assert_eq!(split_command_line(r#""a""b""#), vec!["a\"b"]);
    }

    #[test]
    fn classic_engine_event_uses_message_when_params_are_missing() {
        let d = run(
            json!({"winlog": {"channel": CHANNEL_PS_CLASSIC, "event_id": "400"},
            "message": "Engine state is changed.\r\n\r\nDetails: \r\n\tNewEngineState=Available\r\n\tHostApplication=powershell.exe -enc AA\r\n\tUserId=DOM\\bob\r\n"}),
        );
        assert_eq!(d.get_str("powershell.engine.new_state"), Some("Available"));
        assert_eq!(
            d.get_str("process.command_line"),
            Some("powershell.exe -enc AA")
        );
        assert_eq!(d.get("process.args_count"), Some(&Value::Int(3)));
        assert_eq!(d.get_str("user.name"), Some("bob"));
        assert_eq!(
            d.get("event.type"),
            Some(&Value::List(vec![Value::Str("start".into())]))
        );
    }
}
