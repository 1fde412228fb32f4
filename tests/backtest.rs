//! Backtest pieces on a real hunt: the seed rule's 29 versions over the shipped sample.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use quarry::backtest::diff::{self, EventRef};
use quarry::backtest::schedule::{replay, Schedule};
use quarry::hunt::{self, HuntOptions, NoProgress, VersionSelect};

use crate::util::repo;

/// The shipped seed pack over the shipped sample.
fn sample_hunt(versions: VersionSelect) -> HuntOptions {
    hunt_over(&repo("datasets/sample"), versions)
}

/// The shipped seed pack over `dataset`.
fn hunt_over(dataset: &Path, versions: VersionSelect) -> HuntOptions {
    HuntOptions {
        packs: vec![repo("datasets/rules")],
        datasets: vec![dataset.to_path_buf()],
        versions,
        ..Default::default()
    }
}

#[test]
fn version_diffs_of_the_seed_rule_add_up_to_each_versions_hits() {
    let packs = vec![repo("datasets/rules")];
    let opts = sample_hunt(VersionSelect::All);
    let report = hunt::hunt(&opts, &NoProgress, &AtomicBool::new(false)).expect("hunt");
    let pack = quarry::rules::pack::load(&packs, &Default::default()).expect("pack");
    let versions: Vec<_> = pack.versions.iter().map(|v| &v.rule).collect();
    let runs = diff::query_changes(&versions);
    assert_eq!(runs.len(), 29);
    let diffs = diff::diffs(&report.hits, &runs, 3);
    let mut before: BTreeSet<EventRef> = BTreeSet::new();
    let mut changed = 0;
    for d in &diffs {
        let now: BTreeSet<EventRef> = report
            .hits
            .iter()
            .filter(|h| h.rule_version == d.version)
            .map(EventRef::of)
            .collect();
        assert_eq!(d.hits, now.len());
        assert_eq!(d.gained, now.difference(&before).count(), "v{}", d.version);
        assert_eq!(d.lost, before.difference(&now).count(), "v{}", d.version);
        assert_eq!(d.hits + d.lost, before.len() + d.gained);
        assert!(d.gained_examples.len() <= 3 && d.gained_examples.len() <= d.gained);
        if !d.query_changed {
            assert_eq!(
                (d.gained, d.lost),
                (0, 0),
                "v{} left its query as it was",
                d.version
            );
        }
        changed += usize::from(d.query_changed);
        before = now;
    }
    assert!(
        diffs.iter().any(|d| d.gained + d.lost > 0),
        "some change of the seed rule changed its hits on the sample"
    );
    assert!(
        changed > 1 && changed < 29,
        "{changed} versions changed the query"
    );
    // The schedule replay of the latest version: every hit alerted or accounted for.
    let latest = versions.last().expect("a version");
    let schedule =
        Schedule::of(&latest.interval, &latest.from, latest.max_signals).expect("schedule");
    let times: Vec<i64> = report
        .hits
        .iter()
        .filter(|h| h.rule_version == latest.version)
        .map(|h| h.timestamp_us)
        .collect();
    let (start, end) = (
        *times.iter().min().expect("hits"),
        *times.iter().max().expect("hits"),
    );
    let r = replay(&times, start, end, &schedule);
    assert_eq!(r.alerts + r.dropped + r.uncovered, times.len());
    assert_eq!(
        r.uncovered, 0,
        "a 6-minute lookback every 5 minutes leaves no gap"
    );
}

/// (file, row) of every event whose `labels.truth` is `malicious`, read straight from the parts.
fn labelled_malicious(dataset: &Path) -> BTreeSet<(String, u64)> {
    column_values(dataset, "labels.truth")
        .into_iter()
        .filter(|(_, v)| v == "malicious")
        .map(|(event, _)| event)
        .collect()
}

/// Every non-null value of a string column by (file, row), read straight from the parts.
fn column_values(dataset: &Path, column: &str) -> BTreeMap<(String, u64), String> {
    use arrow::array::{Array, StringArray};
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest");
    let mut out = BTreeMap::new();
    for part in manifest.parts() {
        let file = std::fs::File::open(dataset.join(&part.path)).expect("part");
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet");
        let leaf = (0..builder.parquet_schema().num_columns())
            .find(|&i| builder.parquet_schema().column(i).path().string() == column)
            .expect("the column");
        let mask = parquet::arrow::ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
        let mut row = 0u64;
        for batch in builder.with_projection(mask).build().expect("reader") {
            let batch = batch.expect("batch");
            let values = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("strings");
            for i in 0..values.len() {
                if values.is_valid(i) {
                    out.insert((part.path.clone(), row), values.value(i).to_string());
                }
                row += 1;
            }
        }
    }
    out
}

#[test]
fn a_backtest_reports_what_the_hit_table_and_the_labels_say() {
    check_backtest(
        &repo("datasets/sample"),
        "host.name: \"ws-0073\" or user.id: S-1-5-19",
        &|h| h.field("host.name") == Some("ws-0073") || h.field("user.id") == Some("S-1-5-19"),
    );
}

#[test]
fn a_backtest_of_a_generated_month_reports_what_the_hit_table_and_the_labels_say() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dataset = tmp.path().join("month");
    let pack =
        quarry::rules::pack::load(&[repo("datasets/rules")], &Default::default()).expect("pack");
    let opts = quarry::gen::GenOptions {
        events: Some(6000),
        days: 30,
        hosts: 40,
        users: 25,
        seed: 30,
        ..Default::default()
    };
    quarry::gen::generate(
        &dataset,
        &opts,
        &pack,
        &mut quarry::ingest::NoProgress,
        &AtomicBool::new(false),
    )
    .expect("generate");
    check_backtest(&dataset, "user.id: S-1-5-18", &|h| {
        h.field("user.id") == Some("S-1-5-18")
    });
}

/// Runs a backtest of every seed version over `dataset` (which has `labels.truth`) with
/// `exception`, and recomputes its numbers from a plain hunt's hit table and the labels.
fn check_backtest(dataset: &Path, exception: &str, excepted: &dyn Fn(&quarry::sink::Hit) -> bool) {
    let dataset = dataset.to_path_buf();
    let hunt_opts = hunt_over(&dataset, VersionSelect::All);
    let report = quarry::backtest::run(
        &quarry::backtest::BacktestOptions {
            hunt: hunt_opts.clone(),
            truth: Some(quarry::backtest::TruthSource::Column("labels.truth".into())),
            examples: 2,
            exception: Some(exception.into()),
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("backtest");
    // One pass: every row group of the sample read once, for all 29 versions and the truth.
    let manifest = quarry::ingest::dataset::read_manifest(&dataset).expect("manifest");
    let row_groups: usize = manifest
        .parts()
        .map(|p| {
            let f = std::fs::File::open(dataset.join(&p.path)).expect("part");
            parquet::file::reader::FileReader::num_row_groups(
                &parquet::file::reader::SerializedFileReader::new(f).expect("parquet"),
            )
        })
        .sum();
    assert_eq!(report.units, row_groups);
    let malicious = labelled_malicious(&dataset);
    assert!(!malicious.is_empty());
    let scripts = column_values(&dataset, "powershell.file.script_block_text");
    assert_eq!(report.labelled_malicious, Some(malicious.len()));
    // Recomputed from the hit table of a plain hunt.
    let hits = hunt::hunt(&hunt_opts, &NoProgress, &AtomicBool::new(false))
        .expect("hunt")
        .hits;
    assert_eq!(report.rules.len(), 1);
    assert!(
        report.rules[0]
            .versions
            .iter()
            .any(|v| v.what_if.as_ref().is_some_and(|w| w.removed > 0)),
        "the exception removes some hits"
    );
    let rows = &report.rules[0].versions;
    assert_eq!(rows.len(), 29);
    let mut before = 0;
    let mut script_clusters = 0;
    for v in rows {
        let own: BTreeSet<(String, u64)> = hits
            .iter()
            .filter(|h| h.rule_version == v.version)
            .map(|h| (h.file.clone(), h.row))
            .collect();
        let tp = own.intersection(&malicious).count();
        let t = v.truth.as_ref().expect("truth");
        assert_eq!(v.hits, own.len(), "v{}", v.version);
        assert_eq!(
            (t.true_positives, t.false_positives, t.false_negatives),
            (tp, own.len() - tp, malicious.len() - tp),
            "v{}",
            v.version
        );
        assert_eq!(
            t.precision,
            (!own.is_empty()).then(|| tp as f64 / own.len() as f64)
        );
        assert_eq!(t.recall, Some(tp as f64 / malicious.len() as f64));
        assert_eq!(v.hits, before + v.gained - v.lost, "v{}", v.version);
        // Script clusters of the false positives, recomputed from the script texts.
        let mut shapes: BTreeMap<u64, usize> = BTreeMap::new();
        for event in own.difference(&malicious) {
            if let Some(text) = scripts.get(event) {
                *shapes.entry(quarry::scan::script::shape(text)).or_default() += 1;
            }
        }
        let mut expected: Vec<(String, usize)> = shapes
            .into_iter()
            .filter(|(_, n)| *n >= 2)
            .map(|(shape, n)| (format!("{shape:016x}"), n))
            .collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(3);
        let reported: Vec<(String, usize)> = v
            .clusters
            .iter()
            .filter(|c| c.field == "powershell.file.script_block_text")
            .map(|c| (c.value.clone(), c.hits))
            .collect();
        let mut by_count = reported.clone();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(by_count, expected, "v{}", v.version);
        script_clusters += reported.len();
        for e in v.gained_examples.iter().chain(&v.lost_examples) {
            let text = &scripts[&(e.file.clone(), e.row)];
            let s = e.script.as_ref().expect("a script");
            assert_eq!(s.head, text.chars().take(200).collect::<String>());
            assert_eq!(s.truncated, text.chars().count() > 200);
            assert_eq!(s.shape, quarry::scan::script::shape(text));
        }
        assert_eq!(v.alerts + v.dropped_by_cap + v.not_searched, v.hits);
        assert_eq!(
            v.alerts_per_day.iter().map(|d| d.alerts).sum::<usize>(),
            v.alerts
        );
        // The what-if, recomputed from the hits' triage fields.
        let removed: BTreeSet<(String, u64)> = hits
            .iter()
            .filter(|h| h.rule_version == v.version)
            .filter(|h| excepted(h))
            .map(|h| (h.file.clone(), h.row))
            .collect();
        let w = v.what_if.as_ref().expect("what-if");
        let lost = removed.intersection(&malicious).count();
        assert_eq!(
            (
                w.hits,
                w.removed,
                w.true_positives_lost,
                w.false_positives_removed
            ),
            (
                own.len() - removed.len(),
                removed.len(),
                Some(lost),
                Some(removed.len() - lost)
            ),
            "v{}",
            v.version
        );
        before = v.hits;
    }
    assert!(
        script_clusters > 0,
        "false positives cluster by script somewhere"
    );
}

#[test]
fn a_suggested_exception_removes_the_hits_of_its_cluster() {
    let hunt_opts = sample_hunt(VersionSelect::List([320].into_iter().collect()));
    let run = |exception: Option<String>| {
        quarry::backtest::run(
            &quarry::backtest::BacktestOptions {
                hunt: hunt_opts.clone(),
                truth: Some(quarry::backtest::TruthSource::Column("labels.truth".into())),
                examples: 0,
                exception,
            },
            &NoProgress,
            &AtomicBool::new(false),
        )
        .expect("backtest")
    };
    let plain = run(None);
    let v320 = &plain.rules[0].versions[0];
    let fp = v320.truth.as_ref().expect("truth").false_positives;
    let script = "powershell.file.script_block_text";
    let field_cluster = v320.clusters.iter().find(|c| c.field != script);
    let script_cluster = v320.clusters.iter().find(|c| c.field == script);
    for top in [field_cluster, script_cluster] {
        let top = top.expect("false positives cluster by field and by script");
        assert!(top.hits >= 2 && top.hits <= fp);
        let exception = top.exception.clone().expect("an exception");
        let with = run(Some(exception.clone()));
        let w = with.rules[0].versions[0].what_if.as_ref().expect("what-if");
        assert!(
            w.false_positives_removed.expect("truth") >= top.hits,
            "{exception} removes {w:?}, its cluster has {} false positives",
            top.hits
        );
    }
}

#[test]
fn labelled_event_files_give_the_same_truth_as_the_labels_column() {
    use arrow::array::{ArrayRef, StringArray, UInt64Array};
    use std::sync::Arc;
    let dataset = repo("datasets/sample");
    let malicious = labelled_malicious(&dataset);
    let tmp = tempfile::tempdir().expect("temp dir");
    // A CSV of file and row with a label column: benign rows must not count.
    let csv_path = tmp.path().join("labels.csv");
    let mut csv = String::from("file,row,label\n");
    for (file, row) in &malicious {
        csv.push_str(&format!(
            "{file},{row},malicious\n{file},{},benign\n",
            row + 1
        ));
    }
    std::fs::write(&csv_path, csv).expect("write csv");
    // A Parquet table naming the dataset as the hits do, spelt differently.
    let parquet_path = tmp.path().join("labels.parquet");
    let n = malicious.len();
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        (
            "dataset",
            Arc::new(StringArray::from(vec![
                format!("{}/", dataset.display());
                n
            ])) as ArrayRef,
        ),
        (
            "file",
            Arc::new(StringArray::from_iter_values(
                malicious.iter().map(|(f, _)| f.as_str()),
            )) as ArrayRef,
        ),
        (
            "row",
            Arc::new(UInt64Array::from_iter_values(
                malicious.iter().map(|(_, r)| *r),
            )) as ArrayRef,
        ),
    ])
    .expect("batch");
    let file = std::fs::File::create(&parquet_path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
    let run = |truth: quarry::backtest::TruthSource| {
        quarry::backtest::run(
            &quarry::backtest::BacktestOptions {
                hunt: sample_hunt(VersionSelect::All),
                truth: Some(truth),
                examples: 0,
                exception: None,
            },
            &NoProgress,
            &AtomicBool::new(false),
        )
        .expect("backtest")
    };
    let column = run(quarry::backtest::TruthSource::Column("labels.truth".into()));
    let truths = |r: &quarry::backtest::BacktestReport| -> Vec<_> {
        r.rules[0]
            .versions
            .iter()
            .map(|v| v.truth.clone().expect("truth"))
            .collect()
    };
    assert!(truths(&column).iter().any(|t| t.true_positives > 0));
    for path in [csv_path, parquet_path] {
        let from_file = run(quarry::backtest::TruthSource::File(path.clone()));
        assert_eq!(from_file.labelled_malicious, Some(n), "{}", path.display());
        assert!(from_file.warnings.iter().all(|w| !w.contains("labels.")));
        assert_eq!(truths(&from_file), truths(&column), "{}", path.display());
    }
}

/// An EQL event rule and an EQL sequence rule replayed: an execution of an EQL rule takes
/// its window's latest `max_signals` matches, and a sequence is one alert, raised by the
/// first execution whose window holds all its events.
#[test]
fn eql_rules_alert_the_latest_matches_and_once_per_sequence() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("events.ndjson");
    let mut f = std::fs::File::create(&input).expect("create");
    // Process starts on ws-1 at 1:00, 4:30 and 4:40, then a network event at 4:50; a start
    // on ws-2 at 20:00 and a network event at 29:00 (nine minutes later: no window holds
    // both).
    let events = [
        (60, "process", "ws-1"),
        (270, "process", "ws-1"),
        (280, "process", "ws-1"),
        (290, "network", "ws-1"),
        (1200, "process", "ws-2"),
        (1740, "network", "ws-2"),
    ];
    for (s, category, host) in events {
        let ts = chrono::DateTime::from_timestamp(1_714_521_600 + s, 0).expect("time");
        let doc = serde_json::json!({
            "@timestamp": ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "event": {"category": [category]},
            "host": {"name": host},
            "process": {"name": "cmd.exe"},
            "_index": "logs-windows.sysmon_operational-default",
        });
        writeln!(f, "{doc}").expect("write");
    }
    drop(f);
    let dataset = tmp.path().join("ds");
    crate::util::convert_default(&[input], &dataset).expect("convert");
    let pack = tmp.path().join("rules.jsonl");
    let rule = |id: &str, query: &str| {
        serde_json::json!({
            "rule_id": id, "version": 1, "name": id, "type": "eql", "language": "eql",
            "query": query, "index": ["logs-windows.*"], "interval": "5m", "from": "now-6m",
            "max_signals": 2, "risk_score": 21, "severity": "low",
        })
    };
    let rules = [
        rule("events", "process where process.name : \"CMD.exe\""),
        rule(
            "pairs",
            "sequence by host.name [process where true] [network where true]",
        ),
    ];
    std::fs::write(
        &pack,
        rules.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .expect("pack");
    let report = quarry::backtest::run(
        &quarry::backtest::BacktestOptions {
            hunt: HuntOptions {
                packs: vec![pack],
                datasets: vec![dataset],
                // Executions every five minutes from minute 0 to minute 35.
                range: quarry::scan::TimeRange {
                    from_us: Some(1_714_521_600_000_000),
                    to_us: Some((1_714_521_600 + 31 * 60) * 1_000_000),
                },
                ..Default::default()
            },
            truth: None,
            examples: 3,
            exception: Some("host.name: \"ws-9\"".into()),
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("backtest");
    let row = |id: &str| {
        let r = report.rules.iter().find(|r| r.rule_id == id).expect("rule");
        r.versions[0].clone()
    };
    let events = row("events");
    // Executions at 0, 5, ..., 35 min. The one at 5:00 sees 1:00, 4:30 and 4:40 and takes
    // the latest two; the one at 10:00 gets 4:30 and 4:40 again, alerted already, and they
    // fill its cap: 1:00 is never alerted (oldest first, it would have been at 5:00 and 4:40
    // at 10:00). 20:00 is alerted at 20:00.
    assert_eq!(events.hits, 4);
    assert_eq!((events.alerts, events.dropped_by_cap), (3, 1));
    assert!(events.what_if.is_some());
    let pairs = row("pairs");
    // Globally ws-1 pairs 4:40 with 4:50 and ws-2 pairs 20:00 with 29:00; only the first
    // fits in a six-minute window.
    assert_eq!(pairs.hits, 4, "two events of each of two sequences");
    assert_eq!((pairs.alerts, pairs.not_searched), (1, 1));
    assert!(pairs.what_if.is_none(), "a sequence has no what-if");
}

/// Threshold and new-terms rules replayed: a threshold group alerts once on the documents
/// that reach the value and again only on newer ones; the cap delays a group to a later
/// execution; a new term alerts once on its first document, again only once its history
/// window no longer holds it.
#[test]
fn threshold_and_new_terms_rules_alert_on_groups() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("events.ndjson");
    let mut f = std::fs::File::create(&input).expect("create");
    let events = [
        // net.exe: ws-1 three times before 5:00; ws-2 twice, then once at 7:00; ws-3 three
        // times just before 5:00 and twice more before 10:00.
        (60, "net.exe", "ws-1", "u0"),
        (120, "net.exe", "ws-1", "u0"),
        (180, "net.exe", "ws-1", "u0"),
        (60, "net.exe", "ws-2", "u0"),
        (120, "net.exe", "ws-2", "u0"),
        (420, "net.exe", "ws-2", "u0"),
        (270, "net.exe", "ws-3", "u0"),
        (280, "net.exe", "ws-3", "u0"),
        (290, "net.exe", "ws-3", "u0"),
        (480, "net.exe", "ws-3", "u0"),
        (540, "net.exe", "ws-3", "u0"),
        // whoami.exe: u1 at 1:00, 2:00 and 12:00; u2 at 3:00 and 8:00; u3 at 4:50.
        (60, "whoami.exe", "ws-1", "u1"),
        (120, "whoami.exe", "ws-1", "u1"),
        (720, "whoami.exe", "ws-1", "u1"),
        (180, "whoami.exe", "ws-1", "u2"),
        (480, "whoami.exe", "ws-1", "u2"),
        (290, "whoami.exe", "ws-1", "u3"),
    ];
    for (s, name, host, user) in events {
        let ts = chrono::DateTime::from_timestamp(1_714_521_600 + s, 0).expect("time");
        let doc = serde_json::json!({
            "@timestamp": ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "event": {"category": ["process"]},
            "host": {"name": host},
            "user": {"name": user},
            "process": {"name": name},
            "_index": "logs-windows.sysmon_operational-default",
        });
        writeln!(f, "{doc}").expect("write");
    }
    drop(f);
    let dataset = tmp.path().join("ds");
    crate::util::convert_default(&[input], &dataset).expect("convert");
    let rule = |id: &str, rule_type: &str, query: &str, max: u32| {
        serde_json::json!({
            "rule_id": id, "version": 1, "name": id, "type": rule_type, "language": "kuery",
            "query": query, "index": ["logs-windows.*"], "interval": "5m", "from": "now-6m",
            "max_signals": max, "risk_score": 21, "severity": "low",
        })
    };
    let mut threshold = rule("threshold", "threshold", "process.name:\"net.exe\"", 100);
    threshold["threshold"] = serde_json::json!({"field": ["host.name"], "value": 3});
    let mut capped = rule("capped", "threshold", "process.name:\"net.exe\"", 1);
    capped["threshold"] = threshold["threshold"].clone();
    let mut new_terms = rule("new-terms", "new_terms", "process.name:\"whoami.exe\"", 100);
    new_terms["new_terms_fields"] = serde_json::json!(["user.name"]);
    new_terms["history_window_start"] = serde_json::json!("now-10m");
    let pack = tmp.path().join("rules.jsonl");
    let rows: String = [threshold, capped, new_terms]
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    std::fs::write(&pack, rows).expect("pack");
    // The hit table says what each version's type is.
    let hunted = hunt::hunt(
        &HuntOptions {
            packs: vec![pack.clone()],
            datasets: vec![dataset.clone()],
            ..Default::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("hunt");
    let types: BTreeSet<(&str, &str)> = hunted
        .hits
        .iter()
        .map(|h| (h.rule_id.as_str(), h.rule_type.as_str()))
        .collect();
    let expected = [
        ("capped", "threshold"),
        ("new-terms", "new_terms"),
        ("threshold", "threshold"),
    ];
    assert_eq!(types, expected.into_iter().collect());
    let report = quarry::backtest::run(
        &quarry::backtest::BacktestOptions {
            hunt: HuntOptions {
                packs: vec![pack],
                datasets: vec![dataset],
                // Executions every five minutes from minute 0 to minute 20.
                range: quarry::scan::TimeRange {
                    from_us: Some(1_714_521_600_000_000),
                    to_us: Some((1_714_521_600 + 16 * 60) * 1_000_000),
                },
                ..Default::default()
            },
            truth: None,
            examples: 3,
            exception: None,
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("backtest");
    // `--from` cuts the histories; here nothing is before it.
    assert!(
        report
            .warnings
            .iter()
            .all(|w| w.contains("history before it")),
        "warnings: {:?}",
        report.warnings
    );
    let row = |id: &str| {
        let r = report.rules.iter().find(|r| r.rule_id == id).expect("rule");
        r.versions[0].clone()
    };
    let t = row("threshold");
    assert_eq!(t.rule_type, "threshold");
    // 5:00 sees ws-1 (3) and ws-3 (3) reach the value, ws-2 (2) not; 10:00 sees ws-3's
    // five, but its three alerted up to 4:50 are left out (the signal history): two, quiet.
    assert_eq!((t.hits, t.alerts, t.capped_executions), (11, 2, 0));
    assert_eq!((t.quiet, t.dropped_by_cap, t.not_searched), (Some(5), 0, 0));
    let c = row("capped");
    // One group per execution: ws-1 at 5:00 (ws-3 capped), ws-3 at 10:00 on all five.
    assert_eq!((c.alerts, c.capped_executions), (2, 1));
    assert_eq!((c.quiet, c.dropped_by_cap), (Some(3), 0));
    let n = row("new-terms");
    assert_eq!(n.rule_type, "new_terms");
    // 5:00: u1 (1:00), u2 (3:00), u3 (4:50) are new. 10:00: u2 at 8:00 is not (3:00 is in
    // its history); u3's 4:50 is again in the window and new, but that alert exists.
    // 15:00: u1 at 12:00 is new again, its 1:00 and 2:00 past the ten-minute history.
    assert_eq!((n.hits, n.alerts), (6, 4));
    assert_eq!((n.quiet, n.dropped_by_cap, n.not_searched), (Some(2), 0, 0));
    let days: usize = n.alerts_per_day.iter().map(|d| d.alerts).sum();
    assert_eq!(days, 4);
}
