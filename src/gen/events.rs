//! The events a generated run is made of, in Winlogbeat's raw shape: PowerShell 4104 script
//! blocks (cut into fragments as PowerShell logs them), 4103 module logging, 400/403 engine
//! start and stop and classic 800 pipeline events (the Sysmon and Security events are in
//! `windows`); and the two renderings of a raw event, as a reference-evaluator document and
//! as an NDJSON line.

use crate::cond::eval::Document;
use crate::ingest::doc::{Doc, Value};
use crate::ingest::pipeline;

use super::fleet::{self, Rng};
use super::world::{Generated, World};
use super::{scripts, FRAGMENT_CHARS};

impl World<'_> {
    /// The 4104 events of one execution of `script` (several when it is long).
    pub(super) fn script_events(
        &self,
        u: u64,
        rng: &mut Rng,
        script: &scripts::Script,
        family: &str,
        at: Option<(usize, usize, i64)>,
    ) -> Vec<Generated> {
        let (host, user, ts) = match at {
            Some((h, usr, t)) => (&self.fleet.hosts[h], &self.fleet.users[usr], t),
            None => {
                let host = match script.role {
                    Some(role) => self.fleet.host_with(rng, role),
                    None => self.fleet.host(rng),
                };
                let user = self.fleet.user(rng, script.service, script.admin);
                let ts = match script.minute {
                    Some(m) => self.clock.scheduled_time(rng, m),
                    None if rng.chance(0.03) => self.clock.burst_time(rng),
                    None => self.clock.working_time(rng),
                };
                (host, user, ts)
            }
        };
        let block_id = rng.guid();
        let pid = 1000 + rng.below(30_000) as i64;
        let fragments = fragments(&script.text);
        let total = fragments.len();
        fragments
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let mut doc = base_event(
                    ts + i as i64 * 1000,
                    u * 16 + i as u64,
                    host,
                    user,
                    "4104",
                    pipeline::CHANNEL_PS_OPERATIONAL,
                    pid,
                );
                doc.set_str("winlog.level", "verbose");
                doc.set_str("log.level", "verbose");
                doc.set_str("winlog.task", "Execute a Remote Command");
                doc.set_str("winlog.opcode", "On create calls");
                ed(&mut doc, "MessageNumber", &(i + 1).to_string());
                ed(&mut doc, "MessageTotal", &total.to_string());
                ed(&mut doc, "ScriptBlockText", text);
                ed(&mut doc, "ScriptBlockId", &block_id);
                ed(&mut doc, "Path", &script.path);
                self.finish(doc, family, false, None)
            })
            .collect()
    }

    pub(super) fn module_logging(&self, u: u64, rng: &mut Rng) -> Generated {
        let host = self.fleet.host(rng);
        let service = rng.chance(0.5);
        let user = self.fleet.user(rng, service, false);
        let ts = self.clock.working_time(rng);
        let cmd = rng.pick(&[
            "Get-Service",
            "Get-ChildItem",
            "Get-CimInstance",
            "Test-Path",
        ]);
        let arg = rng.pick(&["WinRM", "C:\\Temp", "Win32_BIOS", "HKLM:\\SOFTWARE\\Corp"]);
        let mut doc = base_event(
            ts,
            u * 16,
            host,
            user,
            "4103",
            pipeline::CHANNEL_PS_OPERATIONAL,
            1000 + rng.below(30_000) as i64,
        );
        doc.set_str("winlog.task", "Executing Pipeline");
        doc.set_str(
            "winlog.opcode",
            "To be used when operation is just executing a method",
        );
        let context = format!(
            "        Severity = Informational\r\n        Host Name = ConsoleHost\r\n        Host Version = 5.1.19041.4046\r\n        Host ID = {}\r\n        Host Application = C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\r\n        Engine Version = 5.1.19041.4046\r\n        Runspace ID = {}\r\n        Pipeline ID = {}\r\n        Command Name = {cmd}\r\n        Command Type = Cmdlet\r\n        Script Name = \r\n        Command Path = \r\n        Sequence Number = {}\r\n        User = {}\\{}\r\n        Connected User = \r\n        Shell ID = Microsoft.PowerShell\r\n",
            rng.guid(),
            rng.guid(),
            1 + rng.below(40),
            10 + rng.below(500),
            user.domain,
            user.name
        );
        ed(&mut doc, "ContextInfo", &context);
        ed(&mut doc, "UserData", "");
        ed(
            &mut doc,
            "Payload",
            &format!("CommandInvocation({cmd}): \"{cmd}\"\r\nParameterBinding({cmd}): name=\"Path\"; value=\"{arg}\""),
        );
        self.finish(doc, "module-logging", false, None)
    }

    pub(super) fn start_stop(&self, u: u64, rng: &mut Rng) -> Vec<Generated> {
        let host = self.fleet.host(rng);
        let user = self.fleet.user(rng, true, false);
        let ts = self.clock.working_time(rng);
        let id = rng.guid();
        let runspace = rng.guid();
        let pid = 1000 + rng.below(30_000) as i64;
        ["4105", "4106"]
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let mut doc = base_event(
                    ts + i as i64 * 250_000,
                    u * 16 + i as u64,
                    host,
                    user,
                    code,
                    pipeline::CHANNEL_PS_OPERATIONAL,
                    pid,
                );
                doc.set_str(
                    "winlog.task",
                    if i == 0 {
                        "Starting Command"
                    } else {
                        "Stopping Command"
                    },
                );
                ed(&mut doc, "ScriptBlockId", &id);
                ed(&mut doc, "RunspaceId", &runspace);
                self.finish(doc, "start-stop", false, None)
            })
            .collect()
    }

    pub(super) fn classic(&self, u: u64, rng: &mut Rng) -> Generated {
        let host = self.fleet.host(rng);
        let service = rng.chance(0.6);
        let user = self.fleet.user(rng, service, false);
        let ts = self.clock.working_time(rng);
        let code = *rng.pick(&["400", "403", "600", "800"]);
        let app = rng.pick(&[
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\ProgramData\\Scripts\\Collect-Inventory.ps1",
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "powershell.exe -Command Get-Service",
        ]);
        let mut doc = base_event(
            ts,
            u * 16,
            host,
            user,
            code,
            pipeline::CHANNEL_PS_CLASSIC,
            1000 + rng.below(30_000) as i64,
        );
        doc.set_str("winlog.provider_name", "PowerShell");
        doc.remove("winlog.provider_guid");
        doc.set_str("event.provider", "PowerShell");
        let details = format!(
            "\tHostName=ConsoleHost\r\n\tHostVersion=5.1.19041.4046\r\n\tHostId={}\r\n\tHostApplication={app}\r\n\tEngineVersion=5.1.19041.4046\r\n\tRunspaceId={}\r\n\tPipelineId=\r\n\tCommandName=\r\n\tCommandType=\r\n\tScriptName=\r\n\tCommandPath=\r\n\tCommandLine=",
            rng.guid(),
            rng.guid()
        );
        match code {
            "800" => {
                ed(&mut doc, "param1", "Get-Service");
                ed(&mut doc, "param2", &details);
                ed(
                    &mut doc,
                    "param3",
                    "CommandInvocation(Get-Service): \"Get-Service\"",
                );
            }
            "600" => {
                ed(&mut doc, "param1", "Variable");
                ed(&mut doc, "param2", "Started");
                ed(&mut doc, "param3", &format!("\tProviderName=Variable\r\n\tNewProviderState=Started\r\n\r\n\tSequenceNumber={}\r\n\r\n{details}", rng.below(20)));
            }
            _ => {
                ed(
                    &mut doc,
                    "param1",
                    if code == "400" {
                        "Available"
                    } else {
                        "Stopped"
                    },
                );
                ed(
                    &mut doc,
                    "param2",
                    if code == "400" { "None" } else { "Available" },
                );
                ed(&mut doc, "param3", &format!("\tNewEngineState={}\r\n\tPreviousEngineState=None\r\n\r\n\tSequenceNumber={}\r\n\r\n{details}", if code == "400" { "Available" } else { "Stopped" }, rng.below(20)));
            }
        }
        self.finish(doc, "engine-lifecycle", false, None)
    }

    /// Adds the benign labels, renders the raw line, then maps the event.
    pub(super) fn finish(
        &self,
        mut doc: Doc,
        family: &str,
        malicious: bool,
        target: Option<String>,
    ) -> Generated {
        if self.opts.truth {
            doc.set_str(
                "labels.truth",
                if malicious { "malicious" } else { "benign" },
            );
            doc.set_str("labels.family", family);
        }
        Generated {
            line: None,
            doc,
            malicious,
            step: None,
            target,
            unsatisfied: false,
        }
    }
}

pub(super) fn ed(doc: &mut Doc, name: &str, value: &str) {
    doc.set_str(format!("winlog.event_data.{name}"), value);
}

/// The fields every raw Winlogbeat 8 event carries.
fn base_event(
    ts: i64,
    record: u64,
    host: &fleet::Host,
    user: &fleet::User,
    code: &str,
    channel: &str,
    pid: i64,
) -> Doc {
    let mut doc = Doc::new();
    doc.set_str("@timestamp", crate::ingest::format_millis(ts));
    doc.set_str("agent.type", "winlogbeat");
    doc.set_str("agent.version", "8.12.2");
    doc.set_str("host.name", host.name.clone());
    doc.set_str("event.code", code);
    doc.set_str("event.kind", "event");
    doc.set_str("event.provider", "Microsoft-Windows-PowerShell");
    doc.set_str("log.level", "information");
    doc.set_str("winlog.channel", channel);
    doc.set_str("winlog.event_id", code);
    doc.set("winlog.record_id", Value::Int(record as i64));
    doc.set_str("winlog.provider_name", "Microsoft-Windows-PowerShell");
    doc.set_str(
        "winlog.provider_guid",
        "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}",
    );
    doc.set_str("winlog.computer_name", host.fqdn());
    doc.set_str("winlog.level", "information");
    doc.set("winlog.version", Value::Int(1));
    doc.set("winlog.process.pid", Value::Int(pid));
    doc.set("winlog.process.thread.id", Value::Int(pid + 4));
    doc.set_str("winlog.user.identifier", user.sid.clone());
    doc.set_str("winlog.user.domain", user.domain.clone());
    doc.set_str("winlog.user.name", user.name.clone());
    doc.set_str("winlog.user.type", "User");
    doc
}

/// The pieces PowerShell logs a script block as (at most [`FRAGMENT_CHARS`] each).
pub fn fragments(text: &str) -> Vec<&str> {
    if text.chars().count() <= FRAGMENT_CHARS {
        return vec![text];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == FRAGMENT_CHARS {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    out.push(&text[start..]);
    out
}

/// A mapped event as the reference evaluator reads it.
pub fn to_document(doc: &Doc) -> Document {
    let mut d = Document::new();
    for (field, value) in doc.iter() {
        let values: Vec<String> = match value {
            Value::List(items) => items.iter().filter_map(Value::to_text).collect(),
            other => other.to_text().into_iter().collect(),
        };
        d.fields.insert(field.to_string(), values);
    }
    d
}

/// A raw event as one line of nested Winlogbeat NDJSON.
pub(super) fn ndjson_line(doc: &Doc) -> String {
    let mut root = serde_json::Map::new();
    for (path, value) in doc.iter() {
        let json = match value {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .filter_map(Value::to_text)
                    .map(serde_json::Value::String)
                    .collect(),
            ),
        };
        // `@timestamp` and other keys without dots stay at the top level.
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap_or(path);
        let mut map = &mut root;
        for p in parts {
            let entry = map
                .entry(p.to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(serde_json::Map::new());
            }
            let serde_json::Value::Object(next) = entry else {
                unreachable!("made an object above")
            };
            map = next;
        }
        map.insert(last.to_string(), json);
    }
    serde_json::Value::Object(root).to_string()
}
