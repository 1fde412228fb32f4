//! The hunt against the reference evaluator: every hit of the fast path must be a document
//! the reference matches and the other way round, on the shipped sample, on generated
//! adversarial documents and rules (both analyzers), and on the real data.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quarry::cond::analyzer::Analyzer;
use quarry::cond::fields::FieldTypes;
use quarry::hunt::{self, HuntOptions, NoProgress, VersionSelect};
use quarry::rules::pack::{self, LoadOptions};
use quarry::scan::TimeRange;

use super::reference::{self, assert_same, HitKey};
use super::util::repo;
use super::util::{self, Rng};

/// The reference's hits of every runnable version of `packs` on `dataset`.
fn reference_hits(
    packs: &[PathBuf],
    dataset: &Path,
    analyzer: Analyzer,
    range: TimeRange,
) -> BTreeSet<HitKey> {
    let pack = pack::load(packs, &LoadOptions::default()).expect("pack");
    reference::reference_hits(&pack, dataset, &FieldTypes::new(analyzer), range)
}

fn hunt_opts(packs: &[PathBuf], dataset: &Path) -> HuntOptions {
    HuntOptions {
        packs: packs.to_vec(),
        datasets: vec![dataset.to_path_buf()],
        ..Default::default()
    }
}

fn engine_hits(opts: &HuntOptions) -> (BTreeSet<HitKey>, hunt::HuntReport) {
    let report = hunt::hunt(opts, &NoProgress, &AtomicBool::new(false)).expect("hunt");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    (reference::hit_keys(&report), report)
}

#[test]
fn the_seed_rule_versions_on_the_sample_equal_the_reference() {
    let packs = vec![repo("datasets/rules")];
    let dataset = repo("datasets/sample");
    let (engine, report) = engine_hits(&hunt_opts(&packs, &dataset));
    assert_eq!(report.versions, 29);
    assert!(!engine.is_empty(), "the sample holds true positives");
    let reference = reference_hits(&packs, &dataset, Analyzer::Pattern, TimeRange::default());
    assert_same(&engine, &reference, "29 seed versions on datasets/sample");
}

#[test]
fn a_time_range_gives_exactly_the_unpruned_hits_in_that_range() {
    let packs = vec![repo("datasets/rules")];
    let dataset = repo("datasets/sample");
    let (all, full) = engine_hits(&hunt_opts(&packs, &dataset));
    let from = 1_709_337_600_000_000; // 2024-03-02T00:00:00Z
    let to = from + 2 * 86_400_000_000;
    let range = TimeRange {
        from_us: Some(from),
        to_us: Some(to),
    };
    let (some, pruned) = engine_hits(&HuntOptions {
        range,
        ..hunt_opts(&packs, &dataset)
    });
    assert!(pruned.units_pruned > 0, "whole days lie outside the range");
    let expected: BTreeSet<HitKey> = full
        .hits
        .iter()
        .filter(|h| range.contains(h.timestamp_us))
        .map(|h| (h.rule_id.clone(), h.rule_version, h.file.clone(), h.row))
        .collect();
    assert!(!expected.is_empty() && expected.len() < all.len());
    assert_eq!(some, expected);
    // A range past the data: one warning saying so, not one per version about fields.
    let (none, report) = engine_hits(&HuntOptions {
        range: TimeRange {
            from_us: Some(to + 365 * 86_400_000_000),
            to_us: None,
        },
        ..hunt_opts(&packs, &dataset)
    });
    assert!(none.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("no events in the time range"),
        "{:?}",
        report.warnings
    );
}

/// Words of scripts and rules alike: token boundaries inside and around them differ
/// between the two analyzers.
const WORDS: &[&str] = &[
    "Get-Process",
    "get",
    "process",
    "NetShareEnum",
    "netshareenum",
    "Mod",
    "Invoke-Expression",
    "IEX",
    "FromBase64String",
    "mimikatz",
    "Add-Type",
    "DllImport",
    "kernel32",
    "VirtualAlloc",
    "x_y",
    "x-y",
    "can't",
    "straße",
    "STRASSE",
    "0x41",
    "123",
    "-enc",
    "Win32_Process",
    "a",
    "b",
    "c",
    "GetDelegateForFunctionPointer",
    "Mod.NetShareEnum",
];

/// What goes between words: nothing at all, separators of one analyzer and not the other,
/// CR/TAB, non-ASCII text (`K` is the Kelvin sign, which lowercases to ASCII `k`).
const GLUE: &[&str] = &[
    "", " ", " ", "\t", "\r\n", ".", "(", ")", "$", "::", "'", "\"", "é", "日本", "-", "_",
    "\u{212A}", "İ", ",", "/", "\\", "=", "[", "]",
];

fn cased(rng: &mut Rng, word: &str) -> String {
    match rng.below(3) {
        0 => word.to_string(),
        1 => word.to_uppercase(),
        _ => word.to_lowercase(),
    }
}

fn script(rng: &mut Rng) -> String {
    let pieces = if rng.chance(1) {
        20_000
    } else {
        1 + rng.below(30)
    };
    let mut s = String::new();
    for _ in 0..pieces {
        let w = rng.pick(WORDS);
        let word = cased(rng, w);
        s.push_str(&word);
        s.push_str(rng.pick(GLUE));
    }
    s
}

fn document(rng: &mut Rng, i: usize) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "@timestamp": format!("2024-05-{:02}T{:02}:{:02}:00.{:03}Z", 1 + i % 5, i % 24, i % 60, i % 1000),
        "event": {"code": rng.pick(&["4104", "4103", "4688"])},
        "host": {"name": format!("ws-{}", rng.below(4)), "os": {"type": rng.pick(&["windows", "windows", "linux"])}},
        "_index": rng.pick(&[
            "logs-windows.powershell_operational-default",
            "logs-windows.sysmon_operational-default",
            "logs-system.security-default",
        ]),
    });
    let obj = doc.as_object_mut().expect("object");
    if rng.chance(80) {
        let category = match rng.below(3) {
            0 => serde_json::json!(["process"]),
            1 => serde_json::json!(["process", "host"]),
            _ => serde_json::json!(["network"]),
        };
        obj["event"]["category"] = category;
    }
    if rng.chance(85) {
        obj.insert(
            "powershell".into(),
            serde_json::json!({"file": {"script_block_text": script(rng)}}),
        );
    }
    if rng.chance(40) {
        obj.insert("message".into(), script(rng).into());
    }
    if rng.chance(60) {
        obj.insert(
            "user".into(),
            serde_json::json!({"name": rng.pick(&["Admin", "admin", "svc_x", "Bob"])}),
        );
    }
    if rng.chance(50) {
        let path = rng.pick(&[
            "C:\\Temp\\a.ps1",
            "C:\\Program Files\\WindowsPowerShell\\Modules\\x.psm1",
            "D:\\TEMP\\b.ps1",
            "c:\\users\\bob\\c.ps1",
        ]);
        obj.insert("file".into(), serde_json::json!({"path": path}));
    }
    if rng.chance(50) {
        obj.insert(
            "process".into(),
            serde_json::json!({"pid": rng.below(5000)}),
        );
    }
    if rng.chance(50) {
        // Around 4.5, where 32-bit and 64-bit comparisons part (the field is a `float`).
        let bits = rng.pick(&["4.4999999", "4.49999", "4.5", "4.5000001", "4.50001", "3.2"]);
        let bits: f64 = bits.parse().expect("a number");
        let powershell = obj.entry("powershell").or_insert(serde_json::json!({}));
        powershell["file"]["script_block_entropy_bits"] = serde_json::json!(bits);
    }
    doc
}

fn text_value(rng: &mut Rng) -> String {
    let w = |rng: &mut Rng| {
        let word = rng.pick(WORDS).trim_start_matches('-');
        cased(rng, word)
    };
    match rng.below(7) {
        0 | 1 => w(rng).replace('\'', ""),
        2 => format!("\"{} {}\"", w(rng), w(rng)),
        3 => format!(
            "\"{}{}{}\"",
            w(rng),
            rng.pick(&[".", " ", "-", "(", "::"]),
            w(rng)
        ),
        4 => format!(
            "({} or {})",
            w(rng).replace('\'', ""),
            w(rng).replace('\'', "")
        ),
        5 => rng
            .pick(&["Get-*", "*process*", "net*enum", "*Alloc", "mimi*", "*enc"])
            .to_string(),
        _ => format!("\"{}\"", w(rng)),
    }
}

fn leaf(rng: &mut Rng) -> String {
    match rng.below(15) {
        0..=4 => format!("powershell.file.script_block_text: {}", text_value(rng)),
        14 => format!(
            "powershell.file.script_block_entropy_bits {} 4.5",
            rng.pick(&["<", ">=", ">", "<=", ":"])
        ),
        5 => format!("message: {}", text_value(rng)),
        6 => format!(
            "event.code: {}",
            rng.pick(&["4104", "4103", "(4104 or 4688)"])
        ),
        7 => format!(
            "event.category: {}",
            rng.pick(&["process", "host", "\"process\"", "proc*"])
        ),
        8 => format!(
            "host.{}: {}",
            rng.pick(&["name", "*"]),
            rng.pick(&["ws-1", "ws-*", "windows", "WS-2"])
        ),
        9 => format!("user.name: {}", rng.pick(&["Admin", "admin", "*", "svc_*"])),
        10 => format!(
            "process.pid {} {}",
            rng.pick(&["<", ">=", ">"]),
            rng.below(5000)
        ),
        11 => rng
            .pick(&[
                "mimikatz",
                "\"Get-Process\"",
                "nope.field: x",
                "nope.field: *",
            ])
            .to_string(),
        12 => format!(
            "@timestamp {} \"2024-05-0{}\"",
            rng.pick(&["<", ">="]),
            1 + rng.below(5)
        ),
        _ => format!(
            "file.path: {}",
            rng.pick(&["C\\:\\\\Temp\\\\*", "*\\\\a.ps1", "*Temp*"])
        ),
    }
}

fn query(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.chance(35) {
        let l = leaf(rng);
        return if rng.chance(15) {
            format!("not {l}")
        } else {
            l
        };
    }
    let n = 2 + rng.below(2);
    let op = rng.pick(&[" and ", " or "]);
    let parts: Vec<String> = (0..n).map(|_| query(rng, depth - 1)).collect();
    let inner = format!("({})", parts.join(op));
    if rng.chance(15) {
        format!("not {inner}")
    } else {
        inner
    }
}

fn filters(rng: &mut Rng) -> serde_json::Value {
    if !rng.chance(30) {
        return serde_json::json!([]);
    }
    serde_json::json!([{
        "meta": {"negate": rng.chance(70)},
        "query": {"wildcard": {"file.path": {
            "value": rng.pick(&["*\\\\temp\\\\*", "?:\\\\Program Files\\\\*", "*.ps1"]),
            "case_insensitive": rng.chance(70),
        }}},
    }])
}

/// Random documents and rules; the dataset written with small row groups so that units,
/// pages, dictionary and plain encodings and the late-column row selection all vary.
/// Index patterns covering all, some or none of the documents' three data streams.
fn index_patterns(rng: &mut Rng) -> serde_json::Value {
    match rng.below(6) {
        0 => serde_json::json!(["logs-windows.powershell*"]),
        1 => serde_json::json!(["logs-windows.*", "-logs-windows.sysmon*"]),
        2 => serde_json::json!(["logs-system.security*", "logs-windows.sysmon*"]),
        3 => serde_json::json!(["winlogbeat-*"]),
        _ => serde_json::json!(["logs-*", "winlogbeat-*"]),
    }
}

fn differential(seed: u64, mapping: quarry::ingest::MappingProfile, docs: usize, rules: usize) {
    let tmp = util::temp_dir();
    let mut rng = Rng(seed);
    let input = tmp.path().join("docs.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    for i in 0..docs {
        writeln!(f, "{}", document(&mut rng, i)).expect("write");
    }
    f.flush().expect("flush");
    drop(f);
    let pack = tmp.path().join("rules.jsonl");
    let mut f = std::fs::File::create(&pack).expect("create");
    for r in 0..rules {
        let rule = serde_json::json!({
            "rule_id": format!("rule-{r:04}"), "version": 1, "name": format!("generated {r}"),
            "type": "query", "language": "kuery", "query": query(&mut rng, 3),
            "filters": filters(&mut rng), "index": index_patterns(&mut rng),
            "risk_score": 21, "severity": "low",
        });
        writeln!(f, "{rule}").expect("write");
    }
    drop(f);
    let dataset = tmp.path().join("ds");
    let mut opts = quarry::ingest::ConvertOptions {
        mapping,
        ..Default::default()
    };
    opts.layout.row_group_rows = 97;
    quarry::ingest::convert(
        &[input],
        &dataset,
        &opts,
        &mut quarry::ingest::NoProgress,
        &AtomicBool::new(false),
    )
    .expect("convert");
    let packs = vec![pack];
    let (engine, report) = engine_hits(&hunt_opts(&packs, &dataset));
    let analyzer = match mapping {
        quarry::ingest::MappingProfile::Winlogbeat7 => Analyzer::Standard,
        _ => Analyzer::Pattern,
    };
    let reference = reference_hits(&packs, &dataset, analyzer, TimeRange::default());
    assert_same(&engine, &reference, &format!("seed {seed}, {mapping:?}"));
    assert!(
        report.versions * docs >= 100_000,
        "{} cases",
        report.versions * docs
    );
    assert!(!reference.is_empty() && reference.len() < report.versions * docs);
}

#[test]
fn random_rules_on_random_documents_equal_the_reference_under_the_pattern_analyzer() {
    differential(
        7,
        quarry::ingest::MappingProfile::WindowsIntegration,
        1500,
        120,
    );
}

#[test]
fn random_rules_on_random_documents_equal_the_reference_under_the_standard_analyzer() {
    differential(11, quarry::ingest::MappingProfile::Winlogbeat7, 1500, 120);
}

fn history() -> Option<PathBuf> {
    let p = repo("../shared/rules/posh-kuery-history.jsonl");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

#[test]
fn all_589_powershell_versions_on_generated_data_equal_the_reference() {
    let Some(history) = history() else {
        return;
    };
    let tmp = util::temp_dir();
    let dataset = tmp.path().join("ds");
    let seed_pack = pack::load(&[repo("datasets/rules")], &LoadOptions::default()).expect("pack");
    let opts = quarry::gen::GenOptions {
        events: Some(1_200),
        seed: 589,
        ..Default::default()
    };
    quarry::gen::generate(
        &dataset,
        &opts,
        &seed_pack,
        &mut quarry::ingest::NoProgress,
        &AtomicBool::new(false),
    )
    .expect("generate");
    let packs = vec![history];
    let (engine, report) = engine_hits(&hunt_opts(&packs, &dataset));
    assert_eq!(
        report.versions, 588,
        "589 versions, one of which Kibana cannot parse"
    );
    let reference = reference_hits(&packs, &dataset, Analyzer::Pattern, TimeRange::default());
    assert!(!reference.is_empty());
    assert_same(&engine, &reference, "589 versions on generated data");
}

#[test]
fn all_589_powershell_versions_on_the_real_data_equal_the_reference() {
    let (Some(history), Some(data)) = (history(), util::shared_data()) else {
        return;
    };
    let tmp = util::temp_dir();
    let dataset = tmp.path().join("ds");
    // Every PowerShell event of the real data: the EVTX samples, the OTRF 4103/4104/800
    // sets and Elastic's pipeline inputs (the 14,000 mixed events of otrf/full are left to
    // the conversion tests: the reference evaluator is too slow for them in a debug build).
    let inputs: Vec<PathBuf> = ["evtx", "otrf/ps4104", "otrf/ps4103_800"]
        .iter()
        .map(|d| data.join(d))
        .collect();
    util::convert_default(&inputs, &dataset).expect("convert");
    let packs = vec![history];
    let (engine, _) = engine_hits(&hunt_opts(&packs, &dataset));
    let reference = reference_hits(&packs, &dataset, Analyzer::Pattern, TimeRange::default());
    assert!(!reference.is_empty());
    assert_same(&engine, &reference, "589 versions on ../shared/data");
}

/// A copy of the shipped sample to damage.
fn sample_copy(into: &Path) -> PathBuf {
    let src = repo("datasets/sample");
    let dst = into.join("sample");
    for p in util::parts(&src)
        .into_iter()
        .chain([src.join("_quarry/dataset.json")])
    {
        let rel = p.strip_prefix(&src).expect("under sample");
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&p, &to).expect("copy");
    }
    dst
}

#[test]
fn damaged_parts_are_reported_by_file_and_row_group_and_the_rest_is_hunted() {
    let tmp = util::temp_dir();
    let dataset = sample_copy(tmp.path());
    let parts = util::parts(&dataset);
    // One part cut short (no footer), one with garbage over its column data.
    let cut = &parts[1];
    let len = std::fs::metadata(cut).expect("size").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    let garbled = &parts[3];
    let mut bytes = std::fs::read(garbled).expect("read");
    let half = bytes.len() / 2;
    for b in &mut bytes[4..half] {
        *b = 0x5a;
    }
    std::fs::write(garbled, &bytes).expect("write");
    let packs = vec![repo("datasets/rules")];
    let opts = hunt_opts(&packs, &dataset);
    let report = hunt::hunt(&opts, &NoProgress, &AtomicBool::new(false)).expect("hunt goes on");
    let name = |p: &Path| p.file_name().expect("name").to_string_lossy().into_owned();
    let failed: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failed.iter().any(|f| f.contains(&name(cut))), "{failed:?}");
    assert!(
        failed.iter().any(|f| f.contains(&name(garbled))),
        "{failed:?}"
    );
    assert!(
        !report.hits.is_empty(),
        "the undamaged parts still give hits"
    );
    assert!(report
        .hits
        .iter()
        .all(|h| !h.file.ends_with(&name(cut)) && !h.file.ends_with(&name(garbled))));
    // --fail-fast stops at the first.
    let err = hunt::hunt(
        &HuntOptions {
            fail_fast: true,
            ..opts
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect_err("fail fast");
    assert!(matches!(err, hunt::HuntError::Failed(_)), "{err}");
    // The binary: errors named on stderr, the table still written, exit status 1.
    let out = tmp.path().join("hits.jsonl");
    let run = util::quarry()
        .args(["hunt", "--quiet", "--rules"])
        .arg(&packs[0])
        .arg("--data")
        .arg(&dataset)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains(&name(cut)), "{stderr}");
    assert!(out.is_file());
}

#[test]
fn the_hit_table_is_the_same_in_every_format_and_thread_count() {
    let tmp = util::temp_dir();
    let packs = vec![repo("datasets/rules")];
    let dataset = repo("datasets/sample");
    let mut tables = Vec::new();
    for threads in [1, 3] {
        let out = tmp.path().join(format!("hits-{threads}.parquet"));
        let run = util::quarry()
            .args([
                "hunt",
                "--quiet",
                "--threads",
                &threads.to_string(),
                "--out",
            ])
            .arg(&out)
            .arg("--rules")
            .arg(&packs[0])
            .arg("--data")
            .arg(&dataset)
            .output()
            .expect("run");
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        tables.push(std::fs::read(&out).expect("table"));
    }
    assert_eq!(tables[0], tables[1], "same bytes whatever the thread count");
    let report = hunt::hunt(
        &hunt_opts(&packs, &dataset),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("hunt");
    let jsonl = tmp.path().join("hits.jsonl");
    let csv = tmp.path().join("hits.csv");
    quarry::sink::write(&report.hits, &jsonl, quarry::sink::Format::Jsonl).expect("jsonl");
    quarry::sink::write(&report.hits, &csv, quarry::sink::Format::Csv).expect("csv");
    let lines = std::fs::read_to_string(&jsonl).expect("read");
    assert_eq!(lines.lines().count(), report.hits.len());
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a hit")).expect("json");
    assert_eq!(first["rule_id"], report.hits[0].rule_id.as_str());
    assert_eq!(first["row"], report.hits[0].row);
    let mut reader = csv::Reader::from_path(&csv).expect("csv");
    assert_eq!(reader.records().count(), report.hits.len());
    let file = std::fs::File::open(tmp.path().join("hits-1.parquet")).expect("open");
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch").num_rows())
        .sum();
    assert_eq!(rows, report.hits.len());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".quarry-hits-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary table left behind");
}

#[test]
fn hits_sorted_on_disk_equal_hits_sorted_in_memory() {
    let tmp = util::temp_dir();
    let packs = vec![repo("datasets/rules")];
    let dataset = repo("datasets/sample");
    let in_memory = hunt::hunt(
        &hunt_opts(&packs, &dataset),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("hunt");
    assert_eq!(in_memory.spilled_runs, 0);
    let mut spilled = Vec::new();
    let report = hunt::hunt_into(
        &HuntOptions {
            sort_memory: 50_000,
            ..hunt_opts(&packs, &dataset)
        },
        &NoProgress,
        &AtomicBool::new(false),
        &tmp.path().join("spill-"),
        &mut |batch| {
            spilled.extend_from_slice(batch);
            Ok(())
        },
    )
    .expect("hunt");
    assert!(report.spilled_runs > 10, "{} runs", report.spilled_runs);
    assert_eq!(report.hit_count, in_memory.hits.len() as u64);
    assert!(spilled == in_memory.hits, "the same hits in the same order");
    assert_eq!(report.summary, in_memory.summary);
    let left = std::fs::read_dir(tmp.path()).expect("dir").count();
    assert_eq!(left, 0, "no spill files left behind");
}

#[test]
fn a_cancelled_hunt_returns_no_hits_and_a_versions_list_selects() {
    let packs = vec![repo("datasets/rules")];
    let dataset = repo("datasets/sample");
    let cancelled = hunt::hunt(
        &hunt_opts(&packs, &dataset),
        &NoProgress,
        &AtomicBool::new(true),
    );
    assert!(matches!(cancelled, Err(hunt::HuntError::Cancelled)));
    let (some, report) = engine_hits(&HuntOptions {
        versions: VersionSelect::parse("3,320").expect("list"),
        ..hunt_opts(&packs, &dataset)
    });
    assert_eq!(report.versions, 2);
    assert!(some.iter().all(|(_, v, _, _)| *v == 3 || *v == 320));
    let (_, latest) = engine_hits(&HuntOptions {
        versions: VersionSelect::Latest,
        ..hunt_opts(&packs, &dataset)
    });
    assert_eq!(latest.versions, 1);
    assert!(latest.hits.iter().all(|h| h.rule_version == 320));
}
