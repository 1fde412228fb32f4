//! `quarry gen`: determinism, the same rows as converting its NDJSON, consistent ground truth,
//! fragments, size targets, and the committed sample dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quarry::cond::eval::{self, Document};
use quarry::cond::fields::FieldTypes;
use quarry::gen::{self, GenOptions};
use quarry::ingest::NoProgress;
use quarry::rules::pack::{self, LoadOptions, Pack, Status};

use crate::util::{self, Row};

fn seed_pack() -> Pack {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/rules");
    pack::load(&[dir], &LoadOptions::default()).expect("seed pack")
}

fn run(out: &Path, opts: &GenOptions) -> gen::GenReport {
    gen::generate(
        out,
        opts,
        &seed_pack(),
        &mut NoProgress,
        &AtomicBool::new(false),
    )
    .expect("generate")
}

fn small(events: u64) -> GenOptions {
    GenOptions {
        events: Some(events),
        hosts: 30,
        users: 20,
        ..GenOptions::default()
    }
}

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in util::parts(dir) {
        let rel = p.strip_prefix(dir).expect("under").display().to_string();
        out.insert(rel, std::fs::read(&p).expect("read"));
    }
    let truth = dir.join("_quarry/truth");
    if let Ok(entries) = std::fs::read_dir(&truth) {
        for e in entries.flatten() {
            out.insert(
                format!("truth/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).expect("read"),
            );
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let tmp = util::temp_dir();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    run(&a, &small(3000));
    run(&b, &small(3000));
    let fa = files_under(&a);
    assert!(fa.keys().any(|k| k.ends_with(".parquet")));
    assert_eq!(fa, files_under(&b));
    run(
        &c,
        &GenOptions {
            seed: 2,
            ..small(3000)
        },
    );
    assert_ne!(fa, files_under(&c));
    // The same parameters again add nothing.
    let again = run(&a, &small(3000));
    assert_eq!(again.events, 0);
    assert_eq!(files_under(&a), fa);
}

fn without_run_fields(mut rows: Vec<Row>) -> Vec<Row> {
    for r in &mut rows {
        r.retain(|k, _| !k.starts_with("quarry."));
    }
    rows.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
    rows
}

#[test]
fn rows_equal_converting_the_ndjson_copy() {
    let tmp = util::temp_dir();
    let ds = tmp.path().join("gen");
    let ndjson = tmp.path().join("events.ndjson");
    let report = run(
        &ds,
        &GenOptions {
            ndjson: Some(ndjson.clone()),
            ..small(2500)
        },
    );
    let converted = tmp.path().join("converted");
    let conv = util::convert_default(std::slice::from_ref(&ndjson), &converted).expect("convert");
    assert_eq!(conv.events, report.events);
    assert_eq!(conv.bad_total(), 0);
    let a = without_run_fields(util::read_rows(&ds));
    let b = without_run_fields(util::read_rows(&converted));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    // Same columns with the same types.
    let schema = |dir: &Path| -> BTreeMap<String, String> {
        let mut cols = BTreeMap::new();
        for p in util::parts(dir) {
            let file = std::fs::File::open(&p).expect("open");
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("reader");
            for f in b.schema().fields() {
                cols.insert(f.name().clone(), format!("{:?}", f.data_type()));
            }
        }
        cols
    };
    assert_eq!(schema(&ds), schema(&converted));
}

fn text(row: &Row, field: &str) -> Option<String> {
    row.get(field).and_then(|v| v.as_str()).map(str::to_string)
}

#[test]
fn ground_truth_is_consistent() {
    let tmp = util::temp_dir();
    let ds = tmp.path().join("gen");
    let report = run(&ds, &small(6000));
    let rows = util::read_rows(&ds);
    let malicious: Vec<&Row> = rows
        .iter()
        .filter(|r| text(r, "labels.truth").as_deref() == Some("malicious"))
        .collect();
    assert_eq!(malicious.len() as u64, report.malicious);
    assert!(!malicious.is_empty());
    assert!(rows.iter().all(|r| text(r, "labels.truth").is_some()));
    for r in &rows {
        let is_malicious = text(r, "labels.truth").as_deref() == Some("malicious");
        assert_eq!(is_malicious, text(r, "labels.campaign").is_some(), "{r:?}");
    }
    // Every malicious event lies inside its campaign's incident window, on its host.
    let csv = std::fs::read_to_string(ds.join("_quarry/truth/incidents-run-00001.csv"))
        .expect("incidents");
    let windows: BTreeMap<String, (String, String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].to_string(),
                (c[1].to_string(), c[3].to_string(), c[4].to_string()),
            )
        })
        .collect();
    assert_eq!(windows.len(), report.incidents.len());
    // Every listed incident has events (a campaign the run never reached is not listed).
    for campaign in windows.keys() {
        assert!(
            malicious
                .iter()
                .any(|r| text(r, "labels.campaign").as_ref() == Some(campaign)),
            "{campaign} has no events"
        );
    }
    for r in malicious {
        let campaign = text(r, "labels.campaign").expect("campaign");
        let (host, start, end) = &windows[&campaign];
        assert_eq!(text(r, "host.name").as_ref(), Some(host));
        let micros = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp_micros())
                .expect("timestamp")
        };
        let ts = text(r, "@timestamp").expect("ts");
        assert!(
            micros(&ts) >= micros(start) && micros(&ts) <= micros(end),
            "{ts} not in {start}..{end}"
        );
    }
}

#[test]
fn long_scripts_are_fragments_that_reassemble() {
    let tmp = util::temp_dir();
    let ndjson = tmp.path().join("events.ndjson");
    run(
        &tmp.path().join("gen"),
        &GenOptions {
            ndjson: Some(ndjson.clone()),
            ..small(4000)
        },
    );
    let mut blocks: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&ndjson).expect("ndjson").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let ed = &v["winlog"]["event_data"];
        let (Some(id), Some(text)) = (ed["ScriptBlockId"].as_str(), ed["ScriptBlockText"].as_str())
        else {
            continue;
        };
        let n: u64 = ed["MessageNumber"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("number");
        let total: u64 = ed["MessageTotal"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("total");
        blocks
            .entry(id.to_string())
            .or_default()
            .push((n, total, text.to_string()));
    }
    let mut split = 0;
    for (id, mut parts) in blocks {
        parts.sort();
        let total = parts[0].1;
        assert_eq!(parts.len() as u64, total, "{id}: every fragment present");
        for (i, (n, t, text)) in parts.iter().enumerate() {
            assert_eq!((*n, *t), (i as u64 + 1, total));
            let chars = text.chars().count();
            if i + 1 < parts.len() {
                assert_eq!(chars, gen::FRAGMENT_CHARS, "{id}: fragment {n} is full");
            } else {
                assert!(chars <= gen::FRAGMENT_CHARS);
            }
        }
        if total > 1 && parts[0].2.starts_with("#Requires") {
            split += 1;
            let whole: String = parts.iter().map(|p| p.2.as_str()).collect();
            assert!(whole.starts_with("#Requires -Version 5.1"), "{id}");
            assert!(
                whole.ends_with("Export-ModuleMember -Function *\r\n"),
                "{id}"
            );
        }
    }
    assert!(split > 0, "no script long enough to be split");
}

#[test]
fn size_targets_are_met_within_ten_percent() {
    let tmp = util::temp_dir();
    let ndjson = tmp.path().join("events.ndjson");
    let target = 30_000_000u64;
    let report = run(
        &tmp.path().join("gen"),
        &GenOptions {
            events: None,
            size: Some(target),
            ndjson: Some(ndjson.clone()),
            distinct: 1.0,
            ..small(0)
        },
    );
    let bytes = std::fs::metadata(&ndjson).expect("ndjson").len();
    assert_eq!(bytes, report.ndjson_bytes);
    assert!(
        bytes >= target && bytes <= target + target / 10,
        "{bytes} for {target}"
    );
}

/// The committed sample, and the command that regenerates it (datasets/README.md).
const SAMPLE_EVENTS: u64 = 8000;
const SAMPLE_SEED: u64 = 20240301;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample")
}

#[test]
fn the_sample_dataset_regenerates_bit_for_bit() {
    let tmp = util::temp_dir();
    let out = tmp.path().join("sample");
    let status = util::quarry()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "gen",
            "--quiet",
            "--events",
            &SAMPLE_EVENTS.to_string(),
            "--seed",
            &SAMPLE_SEED.to_string(),
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("quarry gen");
    assert!(status.success());
    let committed = files_under(&sample_dir());
    assert!(!committed.is_empty(), "datasets/sample is missing");
    assert_eq!(files_under(&out), committed);
}

#[test]
fn the_sample_has_true_and_false_positives_of_seed_versions() {
    let rows = util::read_rows(&sample_dir());
    // `--events` stops at the first unit boundary at or after the count.
    let n = rows.len() as u64;
    assert!((SAMPLE_EVENTS..SAMPLE_EVENTS + 64).contains(&n), "{n} rows");
    let pack = seed_pack();
    let types = FieldTypes::default();
    let docs: Vec<(Document, bool)> = rows
        .iter()
        .map(|r| {
            (
                row_document(r),
                text(r, "labels.truth").as_deref() == Some("malicious"),
            )
        })
        .collect();
    let mut with_tp = 0;
    let mut with_fp = 0;
    for v in &pack.versions {
        let Status::Ready(compiled) = &v.status else {
            continue;
        };
        let (mut tp, mut fp) = (0, 0);
        for (d, malicious) in &docs {
            if eval::matches(&compiled.cond, d, &types) {
                if *malicious {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
        }
        with_tp += usize::from(tp > 0);
        with_fp += usize::from(fp > 0);
        println!(
            "{}: {tp} true positives, {fp} false positives",
            v.rule.key()
        );
    }
    assert!(with_tp >= 5, "{with_tp} versions with true positives");
    assert!(with_fp >= 3, "{with_fp} versions with false positives");
}

fn row_document(r: &Row) -> Document {
    let mut d = Document::new();
    for (k, v) in r {
        let values = match v {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        d.fields.insert(k.clone(), values);
    }
    d
}

#[test]
fn every_elastic_powershell_rule_gets_true_positives() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let history = pack::load(
        &[data.join("../rules/posh-kuery-history.jsonl")],
        &LoadOptions::default(),
    )
    .expect("history");
    let tmp = util::temp_dir();
    let ds = tmp.path().join("gen");
    let report = gen::generate(
        &ds,
        &small(4000),
        &history,
        &mut NoProgress,
        &AtomicBool::new(false),
    )
    .expect("generate");
    assert_eq!(report.unsatisfied, 0);
    let malicious: Vec<Document> = util::read_rows(&ds)
        .iter()
        .filter(|r| text(r, "labels.truth").as_deref() == Some("malicious"))
        .map(row_document)
        .collect();
    let types = FieldTypes::default();
    let mut hit_versions: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for v in &history.versions {
        let entry = hit_versions.entry(v.rule.rule_id.as_str()).or_default();
        entry.1 += 1;
        let Status::Ready(compiled) = &v.status else {
            continue;
        };
        if malicious
            .iter()
            .any(|d| eval::matches(&compiled.cond, d, &types))
        {
            entry.0 += 1;
        }
    }
    assert_eq!(hit_versions.len(), 35);
    let missing: Vec<&&str> = hit_versions
        .iter()
        .filter(|(_, (hit, _))| *hit == 0)
        .map(|(id, _)| id)
        .collect();
    assert!(
        missing.is_empty(),
        "rules without true positives: {missing:?}"
    );
    let partial = hit_versions.values().filter(|(hit, all)| hit < all).count();
    println!("{partial} of 35 rules have true positives for only some of their versions");
    assert!(partial > 0);
}

#[test]
fn corpus_scripts_replace_the_built_in_families() {
    let tmp = util::temp_dir();
    let corpus_ds = tmp.path().join("corpus");
    let ndjson = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/ndjson");
    util::convert_default(&[ndjson], &corpus_ds).expect("convert corpus");
    let corpus = quarry::ingest::dataset::script_blocks(&corpus_ds).expect("script blocks");
    assert!(corpus.len() > 3, "{} scripts", corpus.len());
    let ds = tmp.path().join("gen");
    run(
        &ds,
        &GenOptions {
            corpus: corpus.clone(),
            ..small(1500)
        },
    );
    let known: std::collections::BTreeSet<&str> = corpus.iter().map(String::as_str).collect();
    let mut from_corpus = 0;
    for r in util::read_rows(&ds) {
        let benign_block = text(&r, "event.code").as_deref() == Some("4104")
            && text(&r, "labels.truth").as_deref() == Some("benign");
        if benign_block {
            assert_eq!(text(&r, "labels.family").as_deref(), Some("corpus"));
            let script = text(&r, "powershell.file.script_block_text").expect("text");
            assert!(
                known.contains(script.as_str()),
                "{script:?} is not from the corpus"
            );
            from_corpus += 1;
        }
    }
    assert!(from_corpus > 500, "{from_corpus}");
}

#[test]
fn no_truth_leaves_out_labels_and_incidents() {
    let tmp = util::temp_dir();
    let ds = tmp.path().join("gen");
    run(
        &ds,
        &GenOptions {
            truth: false,
            ..small(1500)
        },
    );
    let rows = util::read_rows(&ds);
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r.keys().all(|k| !k.starts_with("labels."))));
    assert!(!ds.join("_quarry/truth").exists());
}

#[test]
fn windows_activity_is_mapped_as_the_pipelines_would() {
    let tmp = util::temp_dir();
    let ds = tmp.path().join("gen");
    run(
        &ds,
        &GenOptions {
            campaigns: Some(5),
            ..small(6000)
        },
    );
    let rows = util::read_rows(&ds);
    let mut per_stream: BTreeMap<String, usize> = BTreeMap::new();
    let mut host_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut techniques: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        let index = text(r, "_index").expect("every event names its index");
        *per_stream.entry(index.clone()).or_default() += 1;
        let flags = r
            .get("quarry.flags")
            .map(|f| f.to_string())
            .unwrap_or_default();
        assert!(!flags.contains("pipeline_error"), "{r:?}");
        let host = text(r, "host.name").expect("host.name");
        let id = text(r, "host.id").expect("host.id");
        assert_eq!(host_ids.entry(host).or_insert(id.clone()), &id);
        let code = text(r, "event.code").unwrap_or_default();
        if index.contains("sysmon") || index.contains("security") {
            assert!(r.contains_key("event.category"), "{code}: {r:?}");
        }
        if code == "1" || code == "4688" {
            for f in ["process.name", "process.executable", "process.parent.name"] {
                assert!(r.contains_key(f), "{code} without {f}: {r:?}");
            }
        }
        if code == "4625" {
            assert_eq!(text(r, "event.outcome").as_deref(), Some("failure"));
        }
        if text(r, "labels.truth").as_deref() == Some("malicious") {
            assert!(text(r, "labels.campaign").is_some());
            if !index.contains("powershell") {
                let family = text(r, "labels.family").unwrap_or_default();
                *techniques.entry(family).or_default() += 1;
            }
        }
    }
    for stream in [
        "logs-windows.sysmon_operational-default",
        "logs-system.security-default",
        "logs-system.system-default",
        "logs-windows.powershell_operational-default",
    ] {
        assert!(
            per_stream.get(stream).is_some_and(|n| *n > 10),
            "{per_stream:?}"
        );
    }
    let distinct_ids: std::collections::BTreeSet<&String> = host_ids.values().collect();
    assert_eq!(distinct_ids.len(), host_ids.len(), "one host.id per host");
    for t in gen::windows::TECHNIQUES {
        assert!(techniques.contains_key(*t), "{t} missing: {techniques:?}");
    }
}
