//! EQL's fast path against its reference: random EQL event queries over real field names
//! (keywords, a wildcard field, arrays, a long, an address, optional fields mapped and not,
//! a text field), with wildcards and `?` at the edges, case variants with non-ASCII letters,
//! missing and multi-valued fields and values over `ignore_above`, hunted from a converted
//! dataset and matched by `quarry::rules::eql::reference` row by row.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quarry::cond::fields::FieldTypes;
use quarry::hunt::{self, HuntOptions, NoProgress};
use quarry::rules::pack::{self, LoadOptions, Status};
use quarry::scan::TimeRange;

use super::reference::{self, assert_same};
use super::util::{self, Rng};

/// Values of the keyword fields: case variants, non-ASCII letters whose case folds differ
/// between ASCII and Unicode (`É`, `İ`, `ß`, the Kelvin sign), wildcard characters and
/// backslashes in the data, an empty string.
const VALUES: &[&str] = &[
    "cmd.exe",
    "CMD.EXE",
    "Cmd.exe",
    "powershell.exe",
    "PowerShell.EXE",
    "C:\\Windows\\System32\\cmd.exe",
    "c:\\windows\\system32\\CMD.exe",
    "C:\\Users\\Bob\\AppData\\x.exe",
    "école.exe",
    "ÉCOLE.EXE",
    "İstanbul",
    "istanbul",
    "straße",
    "STRASSE",
    "\u{212A}ey",
    "key",
    "a*b",
    "a?b",
    "axb",
    "admin$",
    "ADMIN$",
    "x\\y",
    "",
    "start",
    "process_started",
    "10",
];

const KEYWORDS: &[&str] = &[
    "process.name",
    "process.executable",
    "user.name",
    "file.path",
];
const ARRAYS: &[&str] = &["event.type", "process.args"];

fn value(rng: &mut Rng) -> String {
    if rng.chance(1) {
        // Over `ignore_above` (1024): a keyword does not index it.
        return format!("cmd.exe{}", "x".repeat(1100));
    }
    rng.pick(VALUES).to_string()
}

fn document(rng: &mut Rng, i: usize) -> serde_json::Value {
    let category = match rng.below(4) {
        0 => serde_json::json!(["process"]),
        1 => serde_json::json!(["process", "file"]),
        2 => serde_json::json!(["file"]),
        _ => serde_json::json!(["network"]),
    };
    let mut doc = serde_json::json!({
        "@timestamp": format!("2024-05-{:02}T{:02}:{:02}:00.{:03}Z", 1 + i % 5, i % 24, i % 60, i % 1000),
        "event": {"category": category},
        "_index": "logs-windows.sysmon_operational-default",
    });
    let obj = doc.as_object_mut().expect("object");
    let set = |obj: &mut serde_json::Map<String, serde_json::Value>, path: &str, v| {
        let (head, tail) = path.split_once('.').expect("dotted");
        let entry = obj.entry(head).or_insert(serde_json::json!({}));
        entry[tail] = v;
    };
    for f in KEYWORDS {
        if rng.chance(70) {
            set(obj, f, value(rng).into());
        }
    }
    for f in ARRAYS {
        if rng.chance(70) {
            let n = 1 + rng.below(3);
            let items: Vec<String> = (0..n).map(|_| value(rng)).collect();
            set(obj, f, items.into());
        }
    }
    if rng.chance(70) {
        let line = format!("{} /c {}", value(rng), value(rng));
        set(obj, "process.command_line", line.into());
    }
    if rng.chance(60) {
        set(obj, "process.pid", rng.below(12).into());
    }
    if rng.chance(50) {
        let ip = rng.pick(&["10.1.2.3", "192.168.1.1", "8.8.8.8", "::1", "fe80::1"]);
        set(obj, "source.ip", ip.into());
    }
    if rng.chance(30) {
        obj.insert("message".into(), value(rng).into());
    }
    doc
}

/// A string literal as EQL writes it.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A pattern made from a value: some characters replaced by `*` or `?`, stars at the edges.
fn pattern(rng: &mut Rng) -> String {
    let v = value(rng);
    let mut p: String = v
        .chars()
        .map(|c| match rng.below(10) {
            0 => '*',
            1 => '?',
            _ => c,
        })
        .collect();
    if rng.chance(40) {
        p = format!("*{p}");
    }
    if rng.chance(40) {
        p.push('*');
    }
    p
}

const REGEXES: &[&str] = &[
    ".*cmd.*",
    "[a-z]+\\.exe",
    "C:\\\\Windows\\\\.*",
    ".*\\.(exe|EXE)",
    "c.d\\.exe",
    "[A-Z]+",
    "(a|b)\\*b",
    ".*[ ]{1,}.*",
    "\\w+\\$",
];

fn field(rng: &mut Rng) -> String {
    let f = match rng.below(10) {
        0..=4 => rng.pick(KEYWORDS),
        5 | 6 => rng.pick(ARRAYS),
        7 => "process.command_line",
        8 => "?process.name",
        _ => rng.pick(&["?process.title", "?winlog.event_data.Nope"]),
    };
    f.to_string()
}

fn leaf(rng: &mut Rng) -> String {
    let f = field(rng);
    let lit = |rng: &mut Rng| quoted(&value(rng));
    match rng.below(22) {
        0 | 1 => format!("{f} == {}", lit(rng)),
        2 => format!("{f} != {}", lit(rng)),
        3 | 4 => format!("{f} : {}", quoted(&pattern(rng))),
        5 => format!("{f} : ({}, {})", quoted(&pattern(rng)), lit(rng)),
        6 => format!("{f} like {}", quoted(&pattern(rng))),
        7 => format!("{f} like~ {}", quoted(&pattern(rng))),
        8 => format!("{f} in ({}, {})", lit(rng), lit(rng)),
        9 => format!("{f} in~ ({}, {})", lit(rng), lit(rng)),
        10 => format!("{f} not in ({}, {})", lit(rng), lit(rng)),
        11 => format!(
            "{f} regex{} \"\"\"{}\"\"\"",
            if rng.chance(50) { "~" } else { "" },
            rng.pick(REGEXES)
        ),
        12 => format!("{f} == null"),
        13 => format!("{f} != null"),
        14 => format!(
            "{}({f}, {})",
            rng.pick(&[
                "startsWith",
                "startsWith~",
                "endsWith",
                "endsWith~",
                "stringContains",
                "stringContains~"
            ]),
            quoted(&value(rng).chars().take(4).collect::<String>())
        ),
        15 => format!(
            "length({f}) {} {}",
            rng.pick(&[">", "<=", "==", "!="]),
            rng.below(12)
        ),
        16 => format!("substring({f}, 0, -1) : {}", lit(rng)),
        17 => format!(
            "process.pid {} {}",
            rng.pick(&["==", "!=", "<", ">=", ">"]),
            rng.below(12)
        ),
        18 => format!(
            "cidrMatch(source.ip, \"10.0.0.0/8\", {})",
            quoted(rng.pick(&["192.168.1.1", "fe80::/16", "8.8.0.0/16"]))
        ),
        19 => format!(
            "string(process.pid) : {}",
            quoted(rng.pick(&["1", "10", "x"]))
        ),
        20 => rng.pick(&["true", "false", "null", "1 == 1"]).to_string(),
        _ => format!("{f} {} {}", rng.pick(&["<", ">=", ">"]), lit(rng)),
    }
}

fn condition(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.chance(35) {
        let l = leaf(rng);
        return if rng.chance(20) {
            format!("not {l}")
        } else {
            l
        };
    }
    let (a, b) = (condition(rng, depth - 1), condition(rng, depth - 1));
    match rng.below(5) {
        0 => format!("not ({a} and {b})"),
        1 | 2 => format!("({a} and {b})"),
        _ => format!("({a} or {b})"),
    }
}

fn query(rng: &mut Rng) -> String {
    let category = rng.pick(&["process", "any", "file", "network"]);
    format!("{category} where {}", condition(rng, 3))
}

/// Writes `docs` documents and `rules` EQL rules drawn by `doc` and `query`.
fn write_inputs(
    dir: &Path,
    rng: &mut Rng,
    (docs, doc): (usize, fn(&mut Rng, usize) -> serde_json::Value),
    (rules, query): (usize, fn(&mut Rng) -> String),
) -> (PathBuf, PathBuf) {
    let input = dir.join("docs.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    for i in 0..docs {
        writeln!(f, "{}", doc(rng, i)).expect("write");
    }
    f.flush().expect("flush");
    let pack = dir.join("rules.jsonl");
    let mut f = std::fs::File::create(&pack).expect("create");
    for r in 0..rules {
        let rule = serde_json::json!({
            "rule_id": format!("eql-{r:04}"), "version": 1, "name": format!("generated {r}"),
            "type": "eql", "language": "eql", "query": query(rng),
            "index": ["logs-windows.*"], "risk_score": 21, "severity": "low",
        });
        writeln!(f, "{rule}").expect("write");
    }
    (input, pack)
}

/// The input converted (row groups of `rows`), the pack loaded (every version runs but for
/// scripts over several fields) and hunted.
fn convert_and_hunt(
    dir: &Path,
    (input, pack): (PathBuf, PathBuf),
    rows: usize,
) -> (PathBuf, pack::Pack, hunt::HuntReport) {
    let dataset = dir.join("ds");
    let mut opts = quarry::ingest::ConvertOptions::default();
    opts.layout.row_group_rows = rows;
    quarry::ingest::convert(
        &[input],
        &dataset,
        &opts,
        &mut quarry::ingest::NoProgress,
        &AtomicBool::new(false),
    )
    .expect("convert");
    let loaded = pack::load(std::slice::from_ref(&pack), &LoadOptions::default()).expect("pack");
    let refused: Vec<String> = loaded
        .versions
        .iter()
        .filter(|v| !v.status.is_ready())
        .map(|v| format!("{}: {}", v.rule.query, v.status.problem()))
        .filter(|r| !r.contains("several fields"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    let report = hunt::hunt(
        &HuntOptions {
            packs: vec![pack],
            datasets: vec![dataset.clone()],
            ..Default::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("hunt");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    (dataset, loaded, report)
}

fn differential(seed: u64, docs: usize, rules: usize) {
    let tmp = util::temp_dir();
    let mut rng = Rng(seed);
    let inputs = write_inputs(tmp.path(), &mut rng, (docs, document), (rules, query));
    let (dataset, loaded, report) = convert_and_hunt(tmp.path(), inputs, 89);
    let ready = loaded
        .versions
        .iter()
        .filter(|v| v.status.is_ready())
        .count();
    let engine = reference::hit_keys(&report);
    let expected = reference::reference_hits(
        &loaded,
        &dataset,
        &FieldTypes::default(),
        TimeRange::default(),
    );
    if engine != expected {
        explain(&loaded, &dataset, &engine, &expected);
    }
    assert_same(&engine, &expected, &format!("EQL seed {seed}"));
    let versions_hit: BTreeSet<&String> = expected.iter().map(|(id, ..)| id).collect();
    assert!(ready * docs >= 100_000, "{} cases", ready * docs);
    assert!(
        versions_hit.len() * 4 > ready && expected.len() < ready * docs / 2,
        "{} of {ready} versions hit, {} hits",
        versions_hit.len(),
        expected.len()
    );
}

/// Prints the first differences: the query, how it lowered, the document.
fn explain(
    loaded: &pack::Pack,
    dataset: &Path,
    engine: &BTreeSet<reference::HitKey>,
    expected: &BTreeSet<reference::HitKey>,
) {
    let mapped = reference::mapped_fields(dataset);
    let mut seen = BTreeSet::new();
    for key in engine.symmetric_difference(expected) {
        if !seen.insert(key.0.clone()) || seen.len() > 4 {
            continue;
        }
        let v = loaded
            .find(&format!("{}@{}", key.0, key.1))
            .expect("version");
        let doc = reference::document_at(dataset, &key.2, key.3);
        let resolved = match &v.status {
            Status::Ready(c) => c
                .mapped
                .as_ref()
                .map(|m| m.resolve(&|f: &str| mapped.contains(f), FieldTypes::default())),
            _ => None,
        };
        let cond_says = match (&resolved, &doc) {
            (Some(Ok(c)), Some(d)) => format!(
                "{}",
                quarry::cond::eval::matches(c, d, &FieldTypes::default())
            ),
            _ => "-".into(),
        };
        let lowered = format!("cond eval={cond_says} {resolved:?}");
        eprintln!(
            "{} engine={} reference={}\n  query: {}\n  doc: {:?}\n  lowered: {lowered}",
            key.0,
            engine.contains(key),
            expected.contains(key),
            v.rule.query,
            doc.map(|d| d.fields)
        );
    }
}

/// A step of a generated sequence: a simple condition, so that steps match often.
fn step(rng: &mut Rng) -> String {
    let category = rng.pick(&["process", "any", "file"]);
    let condition = match rng.below(4) {
        0 => "true".to_string(),
        1 => leaf(rng),
        _ => format!("{} or {}", leaf(rng), leaf(rng)),
    };
    let by = match rng.below(4) {
        0 => " by process.pid".to_string(),
        _ => String::new(),
    };
    let step = format!("[{category} where {condition}]{by}");
    match rng.below(12) {
        0 => format!("{step} with runs=2"),
        _ => step,
    }
}

/// A generated sequence: keys (optional and mapped nowhere among them), `maxspan`, steps,
/// sometimes an `until` and a missing-event step.
fn sequence_query(rng: &mut Rng) -> String {
    let by = rng.pick(&[
        "by host.name",
        "by user.name",
        "by host.name, ?process.title",
        "by ?user.name",
        "",
    ]);
    let maxspan = rng.pick(&[
        "",
        "",
        " with maxspan=1s",
        " with maxspan=2500ms",
        " with maxspan=1m",
    ]);
    let n = 2 + rng.below(2);
    let mut steps: Vec<String> = (0..n).map(|_| step(rng)).collect();
    // A per-step key must be on every step or none: keep the first step's choice.
    let keyed = steps[0].contains("] by ");
    for s in steps.iter_mut() {
        let base = s
            .split("] by ")
            .next()
            .unwrap_or(s)
            .trim_end_matches(']')
            .to_string();
        let runs = s.contains("with runs=2");
        let base = base
            .replace(" with runs=2", "")
            .trim_end_matches(']')
            .to_string();
        *s = format!(
            "{base}]{}{}",
            if keyed { " by process.pid" } else { "" },
            if runs { " with runs=2" } else { "" }
        );
    }
    if !maxspan.is_empty() && rng.chance(20) {
        let at = rng.below(steps.len() + 1);
        let missing = format!("![file where {}]", leaf(rng));
        let missing = if keyed {
            format!("{missing} by process.pid")
        } else {
            missing
        };
        steps.insert(at, missing);
    }
    let until = match rng.below(5) {
        0 => format!(
            " until [any where {}]{}",
            leaf(rng),
            if keyed { " by process.pid" } else { "" }
        ),
        _ => String::new(),
    };
    format!("sequence {by}{maxspan} {}{until}", steps.join(" "))
}

/// Documents close in time for sequences: many share a millisecond, some carry
/// `event.sequence`, hosts and users repeat.
fn sequence_document(rng: &mut Rng, i: usize) -> serde_json::Value {
    let mut doc = document(rng, i);
    let ms = 1_714_521_600_000u64 + (i as u64 / 3) * 700 + rng.below(3) as u64 * 250;
    let ts = chrono::DateTime::from_timestamp_millis(ms as i64).expect("time");
    doc["@timestamp"] = ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().into();
    doc["host"] = serde_json::json!({"name": rng.pick(&["ws-1", "ws-2", "dc-1"])});
    if rng.chance(30) {
        doc["event"]["sequence"] = rng.below(5).into();
    }
    if rng.chance(10) {
        doc["host"] = serde_json::json!({"name": ["ws-1", "ws-2"]});
    }
    doc
}

fn sequence_differential(seed: u64, docs: usize, rules: usize) {
    let tmp = util::temp_dir();
    let mut rng = Rng(seed);
    let inputs = write_inputs(
        tmp.path(),
        &mut rng,
        (docs, sequence_document),
        (rules, sequence_query),
    );
    let (dataset, loaded, report) = convert_and_hunt(tmp.path(), inputs, 61);
    let engine = reference::sequence_keys(&report);
    let expected = reference::reference_sequences(&loaded, &dataset, &FieldTypes::default());
    let extra: Vec<_> = engine.difference(&expected).take(5).collect();
    let missing: Vec<_> = expected.difference(&engine).take(5).collect();
    if !extra.is_empty() || !missing.is_empty() {
        for key in extra.iter().chain(&missing).take(3) {
            let v = loaded
                .find(&format!("{}@{}", key.0, key.1))
                .expect("version");
            eprintln!("{key:?}: {}", v.rule.query);
        }
    }
    assert!(
        extra.is_empty() && missing.is_empty(),
        "seed {seed}: {} sequence events the reference does not make (e.g. {extra:?}), {} it makes that the engine misses (e.g. {missing:?})",
        engine.difference(&expected).count(),
        expected.difference(&engine).count()
    );
    // The same hunt with the step events and hits spilled to disk: the same table.
    let spill = tmp.path().join("spill");
    std::fs::create_dir_all(&spill).expect("spill dir");
    let mut spilled = Vec::new();
    let small = hunt::hunt_into(
        &HuntOptions {
            packs: vec![tmp.path().join("rules.jsonl")],
            datasets: vec![dataset.clone()],
            sort_memory: 20_000,
            ..Default::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
        &spill.join("run-"),
        &mut |batch| {
            spilled.extend_from_slice(batch);
            Ok(())
        },
    )
    .expect("hunt");
    assert!(
        small.step_runs > 10,
        "{} runs of step events",
        small.step_runs
    );
    assert!(spilled == report.hits, "the same hits in the same order");
    let left = std::fs::read_dir(&spill).expect("dir").count();
    assert_eq!(left, 0, "no spill files left behind");
    let versions_hit: BTreeSet<&String> = expected.iter().map(|(id, ..)| id).collect();
    assert!(
        versions_hit.len() * 3 > rules,
        "only {} of {rules} sequence versions found a sequence",
        versions_hit.len()
    );
}

#[test]
fn random_sequences_on_random_event_streams_equal_the_reference() {
    sequence_differential(5, 900, 120);
}

#[test]
fn random_eql_queries_on_random_documents_equal_the_reference() {
    differential(23, 1200, 160);
}

#[test]
fn more_random_eql_queries_equal_the_reference() {
    differential(101, 900, 140);
}

#[test]
fn eql_versions_that_cannot_run_are_listed_with_the_reason() {
    let rule = |q: &str| pack::RuleVersion {
        rule_id: "r".into(),
        version: 1,
        name: "n".into(),
        rule_type: "eql".into(),
        language: "eql".into(),
        query: q.into(),
        filters: serde_json::json!([]),
        index: vec!["logs-*".into()],
        interval: "5m".into(),
        from: "now-6m".into(),
        max_signals: 100,
        timestamp_override: None,
        severity: "low".into(),
        risk_score: 21.0,
        grouping: None,
        source: String::new(),
    };
    let problem = |q: &str| pack::compile(&rule(q)).problem();
    assert!(problem("process where message : \"x\"").contains("data type [text]"));
    assert!(
        problem("process where process.name regex \"C:\\\\Program\"")
            .contains("invalid character class")
    );
    assert!(
        problem("sample by host.name [process where true] [file where true]").contains("sample")
    );
    assert!(
        problem("sequence by length(host.name) [process where true] [file where true]")
            .contains("join key")
    );
    assert!(matches!(
        pack::compile(&rule("process where process.name : \"x\"")),
        Status::Ready(_)
    ));
}

/// The EQL versions of Elastic's Windows history on the real attack samples: the hits of
/// event queries and the events of sequences equal the reference's. In CI, the latest
/// version of every third EQL rule on `evtx-all-channels`; with `QUARRY_REAL_EQL=all`
/// (a release build), every EQL version on `evtx-all-channels` and `otrf/full`, with a table
/// of the rules that fire.
#[test]
fn eql_versions_on_the_real_attack_samples_equal_the_reference() {
    let (Some(data), true) = (
        util::shared_data(),
        util::repo("../shared/rules/windows-rules-history.jsonl").is_file(),
    ) else {
        return;
    };
    let all = std::env::var("QUARRY_REAL_EQL").is_ok_and(|v| v == "all");
    let tmp = util::temp_dir();
    let history =
        std::fs::read_to_string(util::repo("../shared/rules/windows-rules-history.jsonl"))
            .expect("history");
    let rows: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .filter(|r: &serde_json::Value| r["language"] == "eql")
        .collect();
    let mut latest: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &rows {
        let v = latest
            .entry(r["rule_id"].as_str().unwrap_or_default().to_string())
            .or_default();
        *v = (*v).max(r["version"].as_u64().unwrap_or(0));
    }
    let chosen: BTreeSet<&String> = latest.keys().step_by(3).collect();
    let pack = tmp.path().join("eql.jsonl");
    let mut f = std::fs::File::create(&pack).expect("create");
    for r in &rows {
        let id = r["rule_id"].as_str().unwrap_or_default().to_string();
        let keep =
            all || (chosen.contains(&id) && latest.get(&id) == r["version"].as_u64().as_ref());
        if keep {
            writeln!(f, "{r}").expect("write");
        }
    }
    drop(f);
    let dataset = tmp.path().join("ds");
    let mut inputs = vec![data.join("evtx-all-channels")];
    if all {
        inputs.push(data.join("otrf/full"));
    }
    util::convert_default(&inputs, &dataset).expect("convert");
    let loaded = pack::load(std::slice::from_ref(&pack), &LoadOptions::default()).expect("pack");
    let report = hunt::hunt(
        &HuntOptions {
            packs: vec![pack],
            datasets: vec![dataset.clone()],
            versions: hunt::VersionSelect::All,
            ..Default::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("hunt");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let types = FieldTypes::default();
    let engine = reference::hit_keys(&report);
    let expected = reference::reference_hits(&loaded, &dataset, &types, TimeRange::default());
    assert_same(&engine, &expected, "EQL versions on the attack samples");
    let engine_sequences = reference::sequence_keys(&report);
    let expected_sequences = reference::reference_sequences(&loaded, &dataset, &types);
    assert_eq!(
        engine_sequences.len(),
        expected_sequences.len(),
        "sequence events"
    );
    assert!(
        engine_sequences == expected_sequences,
        "sequence events differ"
    );
    assert!(!expected.is_empty() && !expected_sequences.is_empty());
    if all {
        let mut by_rule: std::collections::BTreeMap<String, (BTreeSet<u32>, usize, BTreeSet<u64>)> =
            Default::default();
        for h in &report.hits {
            let e = by_rule.entry(h.rule_name.clone()).or_default();
            e.0.insert(h.rule_version);
            e.1 += 1;
            if let Some(s) = h.sequence {
                e.2.insert(s.id);
            }
        }
        println!("| rule | versions firing | hit rows | sequences |\n|---|---|---|---|");
        for (name, (versions, rows, sequences)) in &by_rule {
            println!(
                "| {name} | {} | {rows} | {} |",
                versions.len(),
                sequences.len()
            );
        }
        println!(
            "{} versions run, {} rules fire, {} hit rows, {} sequence rows",
            report.versions,
            by_rule.len(),
            report.hits.len(),
            engine_sequences.len()
        );
    }
}
