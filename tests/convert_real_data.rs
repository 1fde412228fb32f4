//! Converting the real data in ../shared/data: every record arrives, per channel and event
//! code, and specific events carry the fields Elastic would give them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quarry::ingest::ConvertReport;
use serde_json::Value;

use crate::util;

fn convert_to(inputs: &[PathBuf], out: &Path) -> ConvertReport {
    util::convert_default(inputs, out).unwrap_or_else(|e| panic!("convert {inputs:?}: {e}"))
}

struct ManifestRow {
    local_file: String,
    records: u64,
    events_4104: u64,
    by_channel_code: BTreeMap<(String, String), u64>,
    zero_time: bool,
}

fn evtx_manifest(data: &Path) -> Vec<ManifestRow> {
    let text = std::fs::read_to_string(data.join("evtx/MANIFEST.tsv")).expect("MANIFEST.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (file, records, e4104, counts, tmin) = (
        col("local_file"),
        col("records"),
        col("events_4104"),
        col("channel_eventid_counts"),
        col("time_min"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let by_channel_code = f[counts]
                .split(';')
                .filter(|s| !s.is_empty())
                .map(|item| {
                    let (key, n) = item.rsplit_once('=').expect("count");
                    let (channel, code) = key.rsplit_once('/').expect("channel/code");
                    (
                        (channel.to_string(), code.to_string()),
                        n.parse().expect("n"),
                    )
                })
                .collect();
            ManifestRow {
                local_file: f[file].to_string(),
                records: f[records].parse().expect("records"),
                events_4104: f[e4104].parse().expect("4104"),
                by_channel_code,
                zero_time: f[tmin].starts_with("1601"),
            }
        })
        .collect()
}

#[test]
fn every_evtx_record_is_converted_with_its_channel_and_code() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let manifest = evtx_manifest(&data);
    assert!(
        manifest.len() >= 70,
        "MANIFEST has {} files",
        manifest.len()
    );
    let tmp = util::temp_dir();
    for (i, row) in manifest.iter().enumerate() {
        let input = data.join("evtx").join(&row.local_file);
        let out = tmp.path().join(format!("ds{i}"));
        let report = convert_to(&[input], &out);
        assert_eq!(
            report.bad_total(),
            0,
            "{}: {:?}",
            row.local_file,
            report.bad_examples
        );
        assert_eq!(report.events, row.records, "{}", row.local_file);
        assert_eq!(
            report.by_channel_code, row.by_channel_code,
            "{}",
            row.local_file
        );
        let code_4104: u64 = report
            .by_channel_code
            .iter()
            .filter(|((_, code), _)| code == "4104")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(code_4104, row.events_4104, "{}", row.local_file);
        let rows = util::read_rows(&out);
        assert_eq!(rows.len() as u64, row.records, "{}", row.local_file);
        if row.zero_time {
            assert!(
                !report.flags.is_empty(),
                "{}: zero FILETIME not flagged",
                row.local_file
            );
        }
        assert!(
            !util::parts(&out)
                .iter()
                .any(|p| p.to_string_lossy().contains("date=1601")),
            "{}: a 1601 partition was created",
            row.local_file
        );
    }
}

fn nonempty_lines(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

#[test]
fn every_otrf_line_is_converted_and_4104_counts_match_the_index() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let otrf = data.join("otrf");
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(otrf.join("otrf_4104_index.json")).expect("index"),
    )
    .expect("index json");
    let tmp = util::temp_dir();
    let mut total_4104 = 0;
    for entry in index["datasets"].as_array().expect("datasets") {
        let file = otrf.join(entry["ps4104_file"].as_str().expect("ps4104_file"));
        let out = tmp.path().join(file.file_stem().expect("stem"));
        let report = convert_to(std::slice::from_ref(&file), &out);
        assert_eq!(
            report.bad_total(),
            0,
            "{}: {:?}",
            file.display(),
            report.bad_examples
        );
        assert_eq!(report.events, nonempty_lines(&file), "{}", file.display());
        let n4104: u64 = report
            .by_channel_code
            .iter()
            .filter(|((_, c), _)| c == "4104")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            n4104,
            entry["events_4104"].as_u64().expect("count"),
            "{}",
            file.display()
        );
        total_4104 += n4104;
    }
    assert_eq!(total_4104, 1744);
    for dir in ["full", "ps4103_800"] {
        for file in std::fs::read_dir(otrf.join(dir)).expect("dir") {
            let file = file.expect("entry").path();
            let out = tmp.path().join(format!(
                "{dir}-{}",
                file.file_stem().expect("stem").to_string_lossy()
            ));
            let report = convert_to(std::slice::from_ref(&file), &out);
            assert_eq!(report.bad_total(), 0, "{}", file.display());
            assert_eq!(report.events, nonempty_lines(&file), "{}", file.display());
        }
    }
}

fn find<'a>(rows: &'a [util::Row], field: &str, value: &str) -> &'a util::Row {
    rows.iter()
        .find(|r| r.get(field).and_then(Value::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no row with {field} = {value}"))
}

#[test]
fn golden_fields_of_an_evtx_script_block_event() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let input = data.join(
        "evtx/EVTX-ATTACK-SAMPLES/Credential_Access_Powershell_4104_MiniDumpWriteDump_Lsass.evtx",
    );
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    convert_to(&[input], &out);
    let rows = util::read_rows(&out);
    let ev = find(&rows, "winlog.record_id", "971");
    assert_eq!(ev["event.code"], "4104");
    assert_eq!(ev["event.category"], serde_json::json!(["process"]));
    assert_eq!(ev["event.type"], serde_json::json!(["info"]));
    assert_eq!(ev["event.provider"], "Microsoft-Windows-PowerShell");
    assert_eq!(ev["event.action"], "Execute a Remote Command");
    assert_eq!(ev["host.name"], "MSEDGEWIN10");
    assert_eq!(ev["host.os.type"], "windows");
    assert_eq!(
        ev["user.id"],
        "S-1-5-21-3461203602-4096304019-2269080069-1000"
    );
    assert_eq!(ev["winlog.process.pid"], 7008);
    assert_eq!(ev["powershell.sequence"], 1);
    assert_eq!(ev["powershell.total"], 1);
    assert_eq!(ev["log.level"], "warning");
    assert_eq!(ev["@timestamp"], "2020-06-30T14:24:08.254605Z");
    let text = ev["powershell.file.script_block_text"]
        .as_str()
        .expect("text");
    assert!(text.starts_with("function Memory($path)"), "{text:.40}");
    assert!(text.contains("MiniDumpWriteDump"));
    assert!(!ev.contains_key("winlog.event_data.ScriptBlockText"));
    assert!(ev["powershell.file.script_block_entropy_bits"]
        .as_f64()
        .is_some());
    // Elastic Agent's host.id is the machine's; quarry's stand-in is named after the host.
    // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "msedgewin10")
    assert_eq!(ev["host.id"], "793f23ce-c4c7-5959-a51c-63fb1c8d65f0");
    assert_eq!(
        ev["quarry.flags"],
        serde_json::json!(["record_header_zero_filetime", "host_id_synthesised"])
    );
}

#[test]
fn golden_fields_of_otrf_pipeline_events() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let input = data.join("otrf/full/empire_launcher_vbs_2020-09-04160940.json");
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    convert_to(&[input], &out);
    let rows = util::read_rows(&out);
    let ev = find(&rows, "winlog.record_id", "1949");
    assert_eq!(ev["event.code"], "4103");
    assert_eq!(ev["process.title"], "ConsoleHost");
    assert_eq!(ev["user.name"], "pgustavo");
    assert_eq!(
        ev["powershell.command.invocation_details.related_command"],
        serde_json::json!(["New-Object", "New-Object"])
    );
    assert!(ev["process.command_line"]
        .as_str()
        .expect("cmd")
        .starts_with("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -noP"));
    assert_eq!(
        ev["process.args"].as_array().expect("args")[0],
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    );
    let engine = find(&rows, "winlog.record_id", "1337");
    assert_eq!(engine["event.code"], "400");
    assert_eq!(engine["event.type"], serde_json::json!(["start"]));
    assert_eq!(engine["powershell.engine.new_state"], "Available");
    assert_eq!(engine["event.action"], "Engine Lifecycle");
}
