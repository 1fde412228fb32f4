//! Sysmon and Security events of the real data (`../shared/data/evtx-all-channels`, the
//! EVTX-ATTACK-SAMPLES): every event of a mapped channel gets its data stream and the ECS
//! fields Elastic's pipelines give it, and chosen events are checked field by field.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::util::{self, Row};

fn samples() -> Option<PathBuf> {
    Some(util::shared_data()?.join("evtx-all-channels/EVTX-ATTACK-SAMPLES"))
}

fn rows_of(file: &str) -> Vec<Row> {
    let input = samples().expect("samples").join(file);
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    let report = util::convert_default(&[input], &out).expect("convert");
    assert_eq!(report.bad_total(), 0, "{:?}", report.bad_examples);
    util::read_rows(&out)
}

fn record<'a>(rows: &'a [Row], id: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.get("winlog.record_id") == Some(&Value::String(id.into())))
        .unwrap_or_else(|| panic!("no record {id}"))
}

/// Each `(field, value)` of `want` is the row's, exactly.
fn assert_fields(row: &Row, want: &[(&str, Value)]) {
    for (field, value) in want {
        assert_eq!(row.get(*field), Some(value), "{field} of {row:?}");
    }
}

#[test]
fn every_sysmon_and_security_event_of_the_attack_samples_is_mapped() {
    let Some(dir) = samples() else {
        return;
    };
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    let report = util::convert_default(&[dir], &out).expect("convert");
    assert_eq!(report.bad_total(), 0, "{:?}", report.bad_examples);
    for ((channel, code), n) in &report.by_channel_code {
        eprintln!("{n:>6}  {channel}  {code}");
    }
    let rows = util::read_rows(&out);
    let (mut sysmon, mut security, mut defender) = (0, 0, 0);
    for row in &rows {
        let text = |f: &str| row.get(f).and_then(Value::as_str).unwrap_or_default();
        let (channel, code) = (text("winlog.channel"), text("event.code"));
        if channel == "Microsoft-Windows-Sysmon/Operational" {
            sysmon += 1;
            assert_eq!(
                row["_index"],
                json!("logs-windows.sysmon_operational-default")
            );
            assert_eq!(row["ecs.version"], json!("8.0.0"));
            assert!(row.contains_key("event.type"), "{row:?}");
            if code != "24" {
                assert!(row.contains_key("event.category"), "{row:?}");
            }
            if code == "1" {
                for f in [
                    "process.executable",
                    "process.name",
                    "process.pid",
                    "process.args",
                ] {
                    assert!(row.contains_key(f), "Sysmon 1 lacks {f}: {row:?}");
                }
            }
        } else if channel == "Microsoft-Windows-Windows Defender/Operational" {
            defender += 1;
            assert_eq!(
                row["_index"],
                json!("logs-windows.windows_defender-default")
            );
            assert_eq!(row["event.category"], json!(["malware"]));
            for f in ["file.path", "file.name", "event.action", "user.name"] {
                assert!(row.contains_key(f), "Defender {code} lacks {f}: {row:?}");
            }
            assert!(
                !row["file.path"].as_str().unwrap_or_default().contains(":_"),
                "{row:?}"
            );
        } else if channel.eq_ignore_ascii_case("Security") {
            security += 1;
            assert_eq!(row["_index"], json!("logs-system.security-default"));
            if ["4624", "4625", "4688", "4672"].contains(&code) {
                assert!(row.contains_key("event.category"), "{row:?}");
                assert!(row.contains_key("user.name"), "{row:?}");
            }
        }
    }
    assert!(
        sysmon > 3000 && security > 1500 && defender == 11,
        "{sysmon} Sysmon, {security} Security, {defender} Defender"
    );
}

#[test]
fn a_sysmon_process_creation_is_indexed_as_elastic_would() {
    if samples().is_none() {
        return;
    }
    let rows = rows_of("Credential Access/sysmon_10_1_memdump_comsvcs_minidump.evtx");
    assert_fields(
        record(&rows, "32151"),
        &[
            ("event.category", json!(["process"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("Process creation")),
            (
                "process.executable",
                json!("C:\\Windows\\System32\\cscript.exe"),
            ),
            ("process.name", json!("cscript.exe")),
            (
                "process.command_line",
                json!("cscript  c:\\ProgramData\\memdump.vbs notepad.exe"),
            ),
            (
                "process.args",
                json!(["cscript", "c:\\ProgramData\\memdump.vbs", "notepad.exe"]),
            ),
            ("process.args_count", json!(3)),
            (
                "process.parent.executable",
                json!("C:\\Windows\\System32\\cmd.exe"),
            ),
            ("process.parent.name", json!("cmd.exe")),
            ("process.parent.pid", json!(2128)),
            (
                "process.hash.sha256",
                json!("59d3cdc7d51fa34c6b27b8b04ea17992955466eb25022b7bd64880ab35df0bbc"),
            ),
            (
                "process.entity_id",
                json!("{747f3d96-1c6f-5d69-0000-0010323c1f00}"),
            ),
            ("@timestamp", json!("2019-08-30T12:54:07.823Z")),
            ("event.created", json!("2019-08-30T12:54:07.873Z")),
            ("winlog.event_data.IntegrityLevel", json!("High")),
        ],
    );
    for gone in [
        "winlog.event_data.Image",
        "winlog.event_data.UtcTime",
        "winlog.event_data.Hashes",
    ] {
        assert!(!record(&rows, "32151").contains_key(gone), "{gone} stayed");
    }
}

#[test]
fn a_sysmon_connection_and_a_registry_event_are_indexed_as_elastic_would() {
    if samples().is_none() {
        return;
    }
    let rows = rows_of("Command and Control/DE_sysmon-3-rdp-tun.evtx");
    assert_fields(
        record(&rows, "1940897"),
        &[
            ("event.category", json!(["network"])),
            ("event.type", json!(["start", "connection", "protocol"])),
            ("source.ip", json!("239.255.255.250")),
            ("source.port", json!(1900)),
            ("destination.ip", json!("10.0.2.16")),
            ("network.transport", json!("udp")),
            ("network.direction", json!("ingress")),
            ("network.type", json!("ipv4")),
            ("related.ip", json!(["239.255.255.250", "10.0.2.16"])),
            ("user.name", json!("LOCAL SERVICE")),
            ("user.domain", json!("NT AUTHORITY")),
        ],
    );
    let rows = rows_of("Defense Evasion/DE_Powershell_CLM_Disabled_Sysmon_12.evtx");
    let key =
        "System\\CurrentControlSet\\Control\\SESSION MANAGER\\Environment\\__PSLockdownPolicy";
    assert_fields(
        record(&rows, "18527"),
        &[
            ("event.category", json!(["configuration", "registry"])),
            ("registry.hive", json!("HKLM")),
            ("registry.key", json!(key)),
            ("registry.path", json!(format!("HKLM\\{key}"))),
            ("registry.value", json!("__PSLockdownPolicy")),
        ],
    );
}

#[test]
fn a_security_logon_is_indexed_as_elastic_would() {
    if samples().is_none() {
        return;
    }
    let rows = rows_of("Command and Control/DE_RDP_Tunneling_4624.evtx");
    let logon = record(&rows, "5278");
    assert_fields(
        logon,
        &[
            ("event.category", json!(["authentication"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("logged-in")),
            ("winlog.logon.type", json!("Service")),
            ("winlog.logon.id", json!("0x3e7")),
            ("user.id", json!("S-1-5-18")),
            ("user.name", json!("SYSTEM")),
            ("user.domain", json!("NT AUTHORITY")),
            ("related.user", json!(["SYSTEM", "PC02$"])),
            (
                "process.executable",
                json!("C:\\Windows\\System32\\services.exe"),
            ),
            ("process.name", json!("services.exe")),
            ("process.pid", json!(468)),
            ("winlog.event_data.IpAddress", json!("-")),
            ("ecs.version", json!("8.11.0")),
            ("@timestamp", json!("2019-02-13T15:14:52.409Z")),
        ],
    );
    assert!(
        !logon.contains_key("source.domain"),
        "an empty workstation is not shipped"
    );
}

#[test]
fn security_auditing_task_names_agree_with_what_nxlog_rendered() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let mut checked = 0;
    for entry in walk(&data.join("otrf")) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["SourceName"] != "Microsoft-Windows-Security-Auditing" {
                continue;
            }
            let (Some(task), Some(category)) = (v.get("Task"), v["Category"].as_str()) else {
                continue;
            };
            let task = task.to_string();
            let ours = quarry::ingest::shapes::SECURITY_AUDITING_TASKS
                .iter()
                .find(|(id, _)| *id == task)
                .map(|(_, name)| *name);
            assert_eq!(ours, Some(category), "task {task}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} events checked");
}

/// Malformed values leave their field out as the pipelines' `ignore_failure` does, are
/// counted, and never cost the event.
#[test]
fn malformed_values_leave_their_field_out_and_are_counted() {
    let tmp = util::temp_dir();
    let input = tmp.path().join("bad-values.ndjson");
    let base = |code: &str, data: Value| {
        json!({"@timestamp": "2024-03-01T10:00:00.000Z",
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": code,
                "provider_name": "Microsoft-Windows-Sysmon", "record_id": 7,
                "computer_name": "ws1.corp", "event_data": data}})
    };
    let events = [
        base(
            "3",
            json!({"UtcTime": "2024-03-01 10:00:00.000", "ProcessGuid": "1234-no-braces",
                "ProcessId": "x12", "Image": "C:\\a.exe", "SourceIp": "10.0.0.300",
                "DestinationIp": "10.0.0.5", "DestinationPort": "443", "SourcePort": "abc"}),
        ),
        base(
            "1",
            json!({"UtcTime": "2024-03-01 10:00:01.000", "Image": "C:\\b.exe",
                "Hashes": "SHA256", "User": "not a sid\\x", "ProcessId": "8"}),
        ),
    ];
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n")).expect("write");
    let out = tmp.path().join("ds");
    let report = util::convert_default(&[input], &out).expect("convert");
    assert_eq!(report.events, 2, "no event is dropped");
    assert_eq!(report.flags.get("value_not_converted"), Some(&2));
    let rows = util::read_rows(&out);
    let net = rows
        .iter()
        .find(|r| r["event.code"] == "3")
        .expect("network event");
    assert!(!net.contains_key("source.ip"), "{net:?}");
    assert!(!net.contains_key("source.port"), "{net:?}");
    assert!(!net.contains_key("process.pid"), "{net:?}");
    assert_eq!(net["destination.ip"], "10.0.0.5");
    assert_eq!(net["destination.port"], 443);
    // The pipeline copies a GUID as it is written, braces or not.
    assert_eq!(net["process.entity_id"], "1234-no-braces");
    let start = rows
        .iter()
        .find(|r| r["event.code"] == "1")
        .expect("process event");
    assert!(!start.contains_key("process.hash.sha256"), "{start:?}");
    assert_eq!(start["process.pid"], 8);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out
}
