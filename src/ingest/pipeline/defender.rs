//! Microsoft Defender Antivirus events (`Microsoft-Windows-Windows Defender/Operational`), as
//! the Windows integration's `windows_defender` data stream indexes them: its agent stream
//! first renames event-data keys with spaces to underscores (`Detection User` →
//! `Detection_User`), then the ingest pipeline (elastic/integrations commit 136ebec1, ECS
//! 8.11.0) runs, processor by processor:
//!
//! | event | `event.action` | `event.category` | `event.type` |
//! |---|---|---|---|
//! | 1116 | `malware-detected` | malware | info |
//! | 1117 | `malware-quarantined` (action `Quarantine`), else `malware-detected` | malware | info |
//! | 2050 | `file-uploaded` | file | info |
//! | 5007 | `antivirus-configuration-changed` | configuration | change |
//! | 2000 | `antivirus-updated` | process | info |
//! | any other | – | process | info |
//!
//! and `event.outcome: success` for `Error_Description` "The operation completed
//! successfully. " (trailing space included), `event.reference` from `FWLink`,
//! `destination.domain` from `Destination`, `user.domain`/`user.name` from a two-part
//! `User` (else `Detection_User`), `file.path` from `Path` or `FileName` with everything up
//! to the last `:_` removed (`file:_C:\x.exe` → `C:\x.exe`), `file.name` and
//! `file.extension` (after the first dot; a name without one fails the pipeline, as its grok
//! has no `ignore_failure`), `file.hash.sha256`, and `process.command_line`,
//! `process.parent.command_line`, `process.executable` (`process.name` for event 1126) and
//! `process.name`.

use super::{
    copy_nonempty, copy_nonempty_default, ed, java_split, last_segment, mustache,
    record_pipeline_error, strings, time_created_date, Doc, Value,
};

/// The channel's agent-stream script and the ingest pipeline.
pub(super) fn apply(doc: &mut Doc) {
    underscore_event_data_keys(doc);
    if let Err(message) = pipeline(doc) {
        record_pipeline_error(doc, message);
    }
}

/// The agent stream's `rename_fields_in_winlog_event_data_that_have_spaces` script.
fn underscore_event_data_keys(doc: &mut Doc) {
    for key in doc.keys_under("winlog.event_data.") {
        if key.contains(' ') {
            if let Some(v) = doc.remove(&ed(&key)) {
                doc.set(ed(&key.replace(' ', "_")), v);
            }
        }
    }
}

fn pipeline(doc: &mut Doc) -> Result<(), String> {
    doc.set_str("ecs.version", "8.11.0");
    if let Some(level) = doc.get_text("winlog.level").filter(|l| !l.is_empty()) {
        doc.set_str("log.level", level);
    }
    time_created_date(doc, "@timestamp")?;
    if let Some(code) = doc.get("error.code").and_then(Value::to_text) {
        doc.set_str("error.code", code);
    }
    let code = mustache(&doc.get_text("winlog.event_id").unwrap_or_default());
    doc.set_str("event.code", code.clone());
    categorise(doc, &code);
    doc.set_str("event.kind", "event");
    if doc.get_str(&ed("Error_Description")) == Some("The operation completed successfully. ") {
        doc.set_str("event.outcome", "success");
    }
    copy_nonempty(doc, &ed("FWLink"), "event.reference");
    event_type(doc, &code);
    copy_nonempty_default(doc, &ed("Destination"), "destination.domain");
    if let Some(id) = doc.get("winlog.record_id").and_then(Value::to_text) {
        doc.set_str("winlog.record_id", id);
    }
    user(doc);
    doc.remove("winlog.message");
    file(doc)?;
    process(doc, &code);
    Ok(())
}

/// Processors 6–14: the action and the category by event code.
fn categorise(doc: &mut Doc, code: &str) {
    let action = match code {
        "5007" => Some("antivirus-configuration-changed"),
        "2000" => Some("antivirus-updated"),
        "2050" => Some("file-uploaded"),
        "1117" if doc.get_str(&ed("Action_Name")) == Some("Quarantine") => {
            Some("malware-quarantined")
        }
        "1116" | "1117" => Some("malware-detected"),
        _ => None,
    };
    if let Some(action) = action {
        doc.set_str("event.action", action);
    }
    let category = match code {
        "5007" => Some("configuration"),
        "2050" => Some("file"),
        "1116" | "1117" => Some("malware"),
        _ => None,
    };
    if let Some(category) = category {
        doc.set("event.category", strings([category]));
    } else if !doc.contains("event.category") {
        doc.set("event.category", strings(["process"]));
    }
}

/// The "Set Event Types" script: `change` for a configuration change (overwriting), else
/// `info` for the first malware, file or process category when no type is set.
fn event_type(doc: &mut Doc, code: &str) {
    let Some(Value::List(categories)) = doc.get("event.category").cloned() else {
        return;
    };
    let has = |name: &str| categories.iter().any(|c| c.as_str() == Some(name));
    if code == "5007" && has("configuration") {
        doc.set("event.type", strings(["change"]));
    }
    if !doc.contains("event.type") && ["malware", "file", "process"].iter().any(|c| has(c)) {
        doc.set("event.type", strings(["info"]));
    }
}

/// Processors 21–25: `DOMAIN\name` of `User` (else `Detection_User`), when it has exactly
/// two parts.
fn user(doc: &mut Doc) {
    let source = [ed("User"), ed("Detection_User")]
        .into_iter()
        .find_map(|f| doc.get_text(&f));
    let Some(source) = source else {
        return;
    };
    let parts = java_split(&source, "\\");
    if let [domain, name] = parts.as_slice() {
        for (field, value) in [("user.domain", domain), ("user.name", name)] {
            let value = mustache(value);
            if !value.is_empty() {
                doc.set_str(field, value);
            }
        }
    }
}

/// Processors 27–33: the file path without its `file:_` style prefix, its name, extension
/// and hash.
fn file(doc: &mut Doc) -> Result<(), String> {
    for source in ["Path", "FileName"] {
        if let Some(path) = doc.get_text(&ed(source)) {
            doc.set_str("file.path", strip_through_last_marker(&path));
        }
    }
    copy_nonempty_default(doc, &ed("Path"), "file.path");
    copy_nonempty_default(doc, &ed("Filename"), "file.path");
    if !doc.contains("file.name") {
        if let Some(path) = doc.get_text("file.path") {
            doc.set_str("file.name", last_segment(&path));
        }
    }
    if let Some(name) = doc.get_text("file.name") {
        match name.split_once('.') {
            Some((_, extension)) => doc.set_str("file.extension", extension),
            None => {
                return Err(format!(
                    "Provided Grok expressions do not match field value: [{name}]"
                ))
            }
        }
    }
    if doc.get_str(&ed("Sha256")) != Some("-") {
        copy_nonempty_default(doc, &ed("Sha256"), "file.hash.sha256");
    }
    Ok(())
}

/// Processors 34–38: command lines and the process image.
fn process(doc: &mut Doc, code: &str) {
    for (from, to) in [
        ("Target_Commandline", "process.command_line"),
        ("Parent_Commandline", "process.parent.command_line"),
    ] {
        super::rename(doc, &ed(from), to);
    }
    if code == "1126" {
        if !doc.contains("process.name") {
            super::rename(doc, &ed("Process_Name"), "process.name");
        }
    } else if !doc.contains("process.executable") {
        super::rename(doc, &ed("Process_Name"), "process.executable");
    }
    if !doc.contains("process.name") {
        if let Some(exe) = doc.get_text("process.executable") {
            doc.set_str("process.name", last_segment(&exe));
        }
    }
}

/// `gsub` of `.*:_` with nothing: greedy, so through the last `:_`.
fn strip_through_last_marker(text: &str) -> String {
    // `.` does not match a line break, so only the last line's markers count per line.
    text.split('\n')
        .map(|line| match line.rfind(":_") {
            Some(i) => &line[i + 2..],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Elastic's pipeline-test event for record 5647 (`test-events.json`), in the Agent's
    /// shape, against the expected document's fields that the stored pipeline revision sets.
    #[test]
    fn a_quarantined_detection_is_indexed_as_elastic_would() {
        let mut d = Doc::from_json(json!({
            "@timestamp": "2024-06-21T01:21:15.2279837Z",
            "event": {"code": "1117", "kind": "event",
                "provider": "Microsoft-Windows-Windows Defender"},
            "winlog": {"channel": "Microsoft-Windows-Windows Defender/Operational",
                "event_id": "1117", "level": "Information", "record_id": 5647,
                "time_created": "2024-06-21T01:21:15.2279837Z",
                "event_data": {"Detection User": "NT AUTHORITY\\SYSTEM",
                    "Error_Description": "The operation completed successfully. ",
                    "Action_Name": "Quarantine",
                    "FWLink": "https://go.microsoft.com/fwlink/?linkid=37020&threatid=2147519003",
                    "Path": "file:_C:\\Users\\Topsy\\Desktop\\eat_more_yams.exe",
                    "Threat_Name": "Virus:DOS/EICAR_Test_File"}}
        }));
        apply(&mut d);
        let text = |f: &str| d.get_text(f);
        assert_eq!(
            text("@timestamp").as_deref(),
            Some("2024-06-21T01:21:15.227Z")
        );
        assert_eq!(text("event.action").as_deref(), Some("malware-quarantined"));
        assert_eq!(d.get("event.category"), Some(&strings(["malware"])));
        assert_eq!(d.get("event.type"), Some(&strings(["info"])));
        assert_eq!(text("event.outcome").as_deref(), Some("success"));
        assert_eq!(
            text("file.path").as_deref(),
            Some("C:\\Users\\Topsy\\Desktop\\eat_more_yams.exe")
        );
        assert_eq!(text("file.name").as_deref(), Some("eat_more_yams.exe"));
        assert_eq!(text("file.extension").as_deref(), Some("exe"));
        assert_eq!(text("user.domain").as_deref(), Some("NT AUTHORITY"));
        assert_eq!(text("user.name").as_deref(), Some("SYSTEM"));
        assert_eq!(text("winlog.record_id").as_deref(), Some("5647"));
        assert_eq!(text("ecs.version").as_deref(), Some("8.11.0"));
        assert!(d.contains("winlog.event_data.Detection_User"));
    }

    #[test]
    fn configuration_changes_and_updates_are_categorised() {
        let run = |code: &str, data: serde_json::Value| {
            let mut d = Doc::from_json(json!({"winlog": {"event_id": code,
                "channel": "Microsoft-Windows-Windows Defender/Operational",
                "event_data": data}}));
            apply(&mut d);
            d
        };
        let d = run("5007", json!({"New_Value": "HKLM\\SOFTWARE\\x = 0x1"}));
        assert_eq!(d.get("event.type"), Some(&strings(["change"])));
        assert_eq!(d.get("event.category"), Some(&strings(["configuration"])));
        let d = run("2000", json!({"User": "SYSTEM"}));
        assert_eq!(d.get_str("event.action"), Some("antivirus-updated"));
        assert_eq!(d.get("event.category"), Some(&strings(["process"])));
        assert!(!d.contains("user.name"), "a one-part User sets no user");
        let d = run(
            "1126",
            json!({"Process Name": "C:\\Tools\\x.exe", "Path": "file:_a;file:_C:\\b\\c.dll"}),
        );
        assert_eq!(d.get_str("process.name"), Some("C:\\Tools\\x.exe"));
        assert_eq!(d.get_str("file.path"), Some("C:\\b\\c.dll"));
    }

    #[test]
    fn a_file_name_without_a_dot_fails_the_pipeline() {
        let mut d = Doc::from_json(json!({"winlog": {"event_id": "1116",
            "event_data": {"Path": "file:_C:\\Temp\\payload"}}}));
        apply(&mut d);
        assert_eq!(d.get_str("event.kind"), Some("pipeline_error"));
        assert!(
            !d.contains("process.name"),
            "the rest of the pipeline did not run"
        );
        assert_eq!(d.get_str("file.name"), Some("payload"));
    }
}
