//! Bad input is counted, named and survived; a run that fails or is interrupted leaves the
//! dataset as it was; converting the same input twice adds nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use quarry::ingest::reader::BadReason;
use quarry::ingest::{convert, ConvertOptions, ConvertProgress, IngestError};

use crate::util;

fn event_line(record: u64, time: &str) -> String {
    serde_json::json!({
        "@timestamp": time,
        "winlog": {"channel": "Microsoft-Windows-PowerShell/Operational", "event_id": "4104",
            "record_id": record, "computer_name": "ws1", "provider_name": "Microsoft-Windows-PowerShell",
            "event_data": {"ScriptBlockText": format!("Write-Output {record}"), "MessageNumber": "1", "MessageTotal": "1"}}
    })
    .to_string()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).expect("create");
    for l in lines {
        f.write_all(l).expect("write");
        f.write_all(b"\n").expect("write");
    }
}

fn run(inputs: &[PathBuf], out: &Path) -> Result<quarry::ingest::ConvertReport, IngestError> {
    util::convert_default(inputs, out)
}

#[test]
fn broken_lines_are_counted_by_reason_and_the_rest_converts() {
    let tmp = util::temp_dir();
    let input = tmp.path().join("events.ndjson");
    let mut invalid_utf8 = event_line(3, "2024-01-01T00:00:03Z").into_bytes();
    let at = invalid_utf8.len() - 10;
    invalid_utf8.insert(at, 0xff);
    write_lines(
        &input,
        &[
            event_line(1, "2024-01-01T00:00:01Z").into_bytes(),
            b"{\"@timestamp\": \"2024-01-01T00:00:02Z\", broken".to_vec(),
            invalid_utf8,
            event_line(4, "not a time").into_bytes(),
            b"42".to_vec(),
            event_line(6, "2024-01-01T00:00:06Z").into_bytes(),
        ],
    );
    let out = tmp.path().join("ds");
    let report = run(std::slice::from_ref(&input), &out).expect("convert");
    assert_eq!(report.events, 2);
    assert_eq!(report.bad.get(&BadReason::InvalidJson), Some(&1));
    assert_eq!(report.bad.get(&BadReason::InvalidUtf8), Some(&1));
    assert_eq!(report.bad.get(&BadReason::NoTimestamp), Some(&1));
    assert_eq!(report.bad.get(&BadReason::NotAnObject), Some(&1));
    let locations: Vec<&str> = report
        .bad_examples
        .iter()
        .map(|b| b.location.as_str())
        .collect();
    assert!(
        locations
            .iter()
            .any(|l| l.ends_with("events.ndjson: line 2")),
        "{locations:?}"
    );
    assert!(
        locations
            .iter()
            .any(|l| l.ends_with("events.ndjson: line 3")),
        "{locations:?}"
    );
    assert_eq!(util::read_rows(&out).len(), 2);
}

#[test]
fn corrupt_evtx_records_are_counted_and_the_file_goes_on() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let original =
        data.join("evtx/hayabusa-sample-evtx/DeepBlueCLI_Powershell-Invoke-Obfuscation-many.evtx");
    let mut bytes = std::fs::read(&original).expect("read evtx");
    // Overwrite the middle of the second chunk (chunks are 64 KiB after a 4 KiB header).
    let at = 4096 + 65536 + 30000;
    for b in &mut bytes[at..at + 4096] {
        *b = 0xA5;
    }
    let tmp = util::temp_dir();
    let input = tmp.path().join("corrupt.evtx");
    std::fs::write(&input, &bytes).expect("write");
    let report = run(std::slice::from_ref(&input), &tmp.path().join("ds")).expect("convert");
    assert!(
        report
            .bad
            .get(&BadReason::CorruptEvtxRecord)
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        report.bad
    );
    assert!(
        report.events > 0 && report.events < 302,
        "{} events",
        report.events
    );
    assert!(report.bad_examples[0]
        .location
        .contains("corrupt.evtx: record"));
}

#[test]
fn a_missing_input_path_exits_2_and_names_it() {
    let tmp = util::temp_dir();
    let output = util::quarry()
        .args(["convert", "--out"])
        .arg(tmp.path().join("ds"))
        .arg(tmp.path().join("no-such-file.evtx"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-file.evtx"), "{stderr}");
}

#[test]
fn gzip_inputs_are_read_transparently_and_reconversion_adds_nothing() {
    let tmp = util::temp_dir();
    let plain = tmp.path().join("a.ndjson");
    write_lines(
        &plain,
        &[
            event_line(1, "2024-01-01T00:00:01Z").into_bytes(),
            event_line(2, "2024-01-02T00:00:01Z").into_bytes(),
        ],
    );
    let gz = tmp.path().join("b.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("gz"),
        flate2::Compression::fast(),
    );
    enc.write_all(event_line(3, "2024-01-03T00:00:01Z").as_bytes())
        .expect("gz write");
    enc.finish().expect("gz finish");
    let out = tmp.path().join("ds");
    let first = run(&[plain.clone(), gz.clone()], &out).expect("first");
    assert_eq!(first.events, 3);
    assert_eq!(first.parts, 3, "one part per day");
    let second = run(&[plain, gz], &out).expect("second");
    assert_eq!(second.events, 0);
    assert!(second.inputs.iter().all(|i| i
        .skipped
        .as_deref()
        .is_some_and(|s| s.contains("already converted"))));
    assert_eq!(util::read_rows(&out).len(), 3);
    let manifest = quarry::ingest::dataset::read_manifest(&out).expect("manifest");
    assert_eq!(manifest.events, 3);
    assert_eq!(manifest.inputs().count(), 2);
}

#[test]
fn equal_content_is_skipped_and_equal_size_alone_is_not() {
    let tmp = util::temp_dir();
    // Records 1 and 2 give lines of the same length: files of equal size, other content.
    let a = tmp.path().join("a.ndjson");
    let copy = tmp.path().join("copy-of-a.ndjson");
    let b = tmp.path().join("b.ndjson");
    write_lines(&a, &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()]);
    write_lines(&copy, &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()]);
    write_lines(&b, &[event_line(2, "2024-01-01T00:00:01Z").into_bytes()]);
    let size = |p: &Path| std::fs::metadata(p).expect("size").len();
    assert_eq!(size(&a), size(&b));
    let out = tmp.path().join("ds");
    let first = run(&[a.clone(), copy], &out).expect("first");
    assert_eq!(first.events, 1);
    assert!(first.inputs[1]
        .skipped
        .as_deref()
        .is_some_and(|s| s.contains("same content as another input")));
    let second = run(&[b, a], &out).expect("second");
    assert_eq!(
        second.events, 1,
        "an input of a known size but new content converts"
    );
    assert!(second.inputs[0].skipped.is_none());
    assert!(second.inputs[1]
        .skipped
        .as_deref()
        .is_some_and(|s| s.contains("already converted")));
    assert_eq!(util::read_rows(&out).len(), 2);
}

/// Cancels the run as soon as the second input starts.
struct CancelOnSecondInput<'a> {
    seen: usize,
    cancel: &'a AtomicBool,
}

impl ConvertProgress for CancelOnSecondInput<'_> {
    fn input(&mut self, _input: &quarry::ingest::reader::InputFile) {
        self.seen += 1;
        if self.seen == 2 {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn an_interrupted_run_leaves_the_dataset_unchanged() {
    let tmp = util::temp_dir();
    let a = tmp.path().join("a.ndjson");
    let b = tmp.path().join("b.ndjson");
    write_lines(&a, &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()]);
    let many: Vec<Vec<u8>> = (0..5000)
        .map(|i| event_line(100 + i, "2024-01-05T00:00:01Z").into_bytes())
        .collect();
    write_lines(&b, &many);
    let out = tmp.path().join("ds");
    run(std::slice::from_ref(&a), &out).expect("first run");
    let before = std::fs::read_to_string(out.join("_quarry/dataset.json")).expect("manifest");
    let parts_before = util::parts(&out);

    let cancel = AtomicBool::new(false);
    let mut progress = CancelOnSecondInput {
        seen: 0,
        cancel: &cancel,
    };
    let c = tmp.path().join("c.ndjson");
    write_lines(&c, &[event_line(9, "2024-01-09T00:00:01Z").into_bytes()]);
    let result = convert(
        &[c, b.clone()],
        &out,
        &ConvertOptions::default(),
        &mut progress,
        &cancel,
    );
    assert!(
        matches!(result, Err(IngestError::Cancelled)),
        "{:?}",
        result.err()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("_quarry/dataset.json")).expect("manifest"),
        before
    );
    assert_eq!(util::parts(&out), parts_before);
    assert!(!out.join("_quarry/staging").exists());

    // Staging left by a killed run is cleaned by the next run, which then succeeds.
    let leftover = out.join("_quarry/staging/run-00009/date=2024-01-05");
    std::fs::create_dir_all(&leftover).expect("mkdir");
    std::fs::write(leftover.join("part-00042.parquet.staged"), b"partial").expect("write");
    let report = run(&[b], &out).expect("after kill");
    assert_eq!(report.events, 5000);
    assert!(
        report.repairs.iter().any(|r| r.contains("interrupted")),
        "{:?}",
        report.repairs
    );
    assert_eq!(util::read_rows(&out).len(), 5001);
}

#[test]
fn a_run_killed_while_committing_is_rolled_forward() {
    let tmp = util::temp_dir();
    let a = tmp.path().join("a.ndjson");
    write_lines(&a, &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()]);
    let out = tmp.path().join("ds");
    run(std::slice::from_ref(&a), &out).expect("first run");
    // Turn the committed run back into a pending one whose part still sits in staging.
    let manifest_path = out.join("_quarry/dataset.json");
    let mut manifest = quarry::ingest::dataset::read_manifest(&out).expect("manifest");
    let part = manifest.runs[0].parts[0].path.clone();
    manifest.runs[0].committed = false;
    std::fs::write(
        &manifest_path,
        serde_json::to_string(&manifest).expect("json"),
    )
    .expect("write");
    let staged = out.join(format!("_quarry/staging/run-00001/{part}.staged"));
    std::fs::create_dir_all(staged.parent().expect("parent")).expect("mkdir");
    std::fs::rename(out.join(&part), &staged).expect("move back");

    let b = tmp.path().join("b.ndjson");
    write_lines(&b, &[event_line(2, "2024-01-02T00:00:01Z").into_bytes()]);
    let report = run(&[b], &out).expect("second run");
    assert!(
        report
            .repairs
            .iter()
            .any(|r| r.contains("finished committing run 1")),
        "{:?}",
        report.repairs
    );
    assert!(out.join(&part).exists());
    assert_eq!(util::read_rows(&out).len(), 2);
}

#[test]
fn zero_filetime_events_are_kept_flagged_outside_any_date_partition() {
    let tmp = util::temp_dir();
    let input = tmp.path().join("a.ndjson");
    write_lines(
        &input,
        &[
            event_line(1, "1601-01-01T00:00:00Z").into_bytes(),
            event_line(2, "2024-01-01T00:00:00Z").into_bytes(),
        ],
    );
    let out = tmp.path().join("ds");
    let report = run(&[input], &out).expect("convert");
    assert_eq!(report.events, 2);
    assert_eq!(report.flags.get("zero_filetime"), Some(&1));
    let parts: Vec<String> = util::parts(&out)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        parts
            .iter()
            .any(|p| p.contains("date=__HIVE_DEFAULT_PARTITION__")),
        "{parts:?}"
    );
    assert!(!parts.iter().any(|p| p.contains("date=1601")), "{parts:?}");
    let manifest = quarry::ingest::dataset::read_manifest(&out).expect("manifest");
    assert_eq!(
        manifest.min_timestamp.as_deref(),
        Some("2024-01-01T00:00:00.000000Z")
    );
}

#[test]
fn ctrl_c_stops_the_binary_and_leaves_the_dataset_unchanged() {
    let tmp = util::temp_dir();
    let first = tmp.path().join("first.ndjson");
    write_lines(
        &first,
        &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()],
    );
    let out = tmp.path().join("ds");
    let status = util::quarry()
        .args(["convert", "--quiet", "--out"])
        .arg(&out)
        .arg(&first)
        .status()
        .expect("run quarry");
    assert!(status.success());
    let before = std::fs::read_to_string(out.join("_quarry/dataset.json")).expect("manifest");
    let parts_before = util::parts(&out);

    // Big enough, with a small memory budget, that parts are staged long before the end.
    let big = tmp.path().join("big.ndjson");
    let lines: Vec<Vec<u8>> = (0..200_000)
        .map(|i| event_line(10 + i, &format!("2024-02-{:02}T00:00:01Z", 1 + i % 28)).into_bytes())
        .collect();
    write_lines(&big, &lines);
    let mut child = util::quarry()
        .args(["convert", "--quiet", "--memory-mb", "2", "--out"])
        .arg(&out)
        .arg(&big)
        .spawn()
        .expect("spawn quarry");
    let staging = out.join("_quarry/staging");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !staging.exists() && std::time::Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(staging.exists(), "the run staged nothing before it ended");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("_quarry/dataset.json")).expect("manifest"),
        before
    );
    assert_eq!(util::parts(&out), parts_before);
    assert!(!staging.exists(), "staging is removed on Ctrl-C");
}

#[test]
fn a_manifest_with_a_stale_part_counter_does_not_let_a_run_overwrite_parts() {
    let tmp = util::temp_dir();
    let a = tmp.path().join("a.ndjson");
    let b = tmp.path().join("b.ndjson");
    write_lines(&a, &[event_line(1, "2024-01-01T00:00:01Z").into_bytes()]);
    write_lines(&b, &[event_line(2, "2024-01-01T00:00:02Z").into_bytes()]);
    let out = tmp.path().join("ds");
    run(&[a], &out).expect("first");
    // What builds up to commit 0b7a8ed recorded: a counter its own parts had already used.
    let manifest = out.join("_quarry/dataset.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["next_part"] = 1.into();
    std::fs::write(&manifest, json.to_string()).expect("write");
    run(&[b], &out).expect("second");
    assert_eq!(util::parts(&out).len(), 2);
    assert_eq!(util::read_rows(&out).len(), 2);
}
