//! Elastic's real rules: every KQL query of the corpus parses, the PowerShell history loads
//! whole, and the shipped seed pack equals the locked history.

use std::path::{Path, PathBuf};

use quarry::rules::kql;
use quarry::rules::pack::{self, Compiled, LoadOptions, Status};

use crate::util;

fn rules_dir() -> Option<PathBuf> {
    util::shared_data().map(|d| d.join("../rules"))
}

#[test]
fn every_corpus_query_parses() {
    let Some(dir) = rules_dir() else { return };
    let text = std::fs::read_to_string(dir.join("elastic-kuery-corpus.jsonl")).expect("corpus");
    let mut failures = Vec::new();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let query = v["query"].as_str().expect("query");
        n += 1;
        match kql::parse(query) {
            Ok(q) => {
                let printed = q.to_kql();
                assert_eq!(
                    kql::parse(&printed).as_ref(),
                    Ok(&q),
                    "round trip of {}",
                    v["rule_id"]
                );
            }
            Err(e) => failures.push(format!("{}: {e}", v["rule_id"])),
        }
    }
    assert_eq!(n, 792);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn posh_history_loads_every_version() {
    let Some(dir) = rules_dir() else { return };
    let pack = pack::load(
        &[dir.join("posh-kuery-history.jsonl")],
        &LoadOptions::default(),
    )
    .expect("load");
    assert!(pack.problems.is_empty(), "{:#?}", pack.problems);
    assert_eq!(pack.versions.len(), 589);
    let rules: std::collections::BTreeSet<&str> = pack
        .versions
        .iter()
        .map(|v| v.rule.rule_id.as_str())
        .collect();
    assert_eq!(rules.len(), 35);
    let broken: Vec<String> = pack
        .versions
        .iter()
        .filter(|v| !v.status.is_ready())
        .map(|v| format!("{} {}", v.rule.key(), v.status.problem()))
        .collect();
    println!("{broken:#?}");
    // Kibana's grammar rejects at least one historical version (`... or"..."`).
    assert!(!broken.is_empty());
    assert!(
        broken.iter().all(|b| b.contains("syntax error")),
        "{broken:#?}"
    );
    assert!(pack
        .versions
        .iter()
        .any(|v| matches!(v.status, Status::SyntaxError(_))));
}

/// `rule-versions.tsv` escapes newlines as `\n` (and tabs, backslashes as `\t`, `\\`).
fn tsv_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[test]
fn shipped_seed_pack_equals_the_locked_history() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/rules");
    let pack = pack::load(&[shipped], &LoadOptions::default()).expect("shipped pack");
    assert!(pack.problems.is_empty(), "{:#?}", pack.problems);
    assert_eq!(pack.versions.len(), 29);
    assert!(pack.versions.iter().all(|v| v.status.is_ready()));
    let Some(data) = util::shared_data() else {
        return;
    };
    let tsv = std::fs::read_to_string(data.join("../seed/rule-versions.tsv")).expect("tsv");
    let mut rows = 0;
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let version: u32 = cols[0].parse().expect("version");
        let v = pack
            .find(&format!("61ac3638-40a3-44b2-855a-985636ca985e@{version}"))
            .expect("version in pack");
        let index: Vec<String> = serde_json::from_str(cols[5]).expect("index");
        assert_eq!(v.rule.index, index, "v{version} index");
        assert_eq!(
            v.rule.risk_score,
            cols[6].parse::<f64>().expect("risk"),
            "v{version}"
        );
        assert_eq!(v.rule.severity, cols[7], "v{version}");
        let has_filter = v.rule.filters.as_array().is_some_and(|f| !f.is_empty());
        assert_eq!(has_filter.to_string(), cols[8], "v{version} filter");
        assert_eq!(
            v.rule.query.trim_matches('\n'),
            tsv_unescape(cols[9]).trim_matches('\n'),
            "v{version} query"
        );
        rows += 1;
    }
    assert_eq!(rows, 29);
    // And the same as the JSON Lines history, filters included.
    let history = pack::load(
        &[data.join("../rules/posh-kuery-history.jsonl")],
        &LoadOptions::default(),
    )
    .expect("history");
    for v in &pack.versions {
        let h = history.find(&v.rule.key()).expect("in history");
        assert_eq!(h.rule.query, v.rule.query, "{}", v.rule.key());
        assert_eq!(h.rule.filters, v.rule.filters, "{}", v.rule.key());
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn elastic_formats_load() {
    let tmp = util::temp_dir();
    let d = tmp.path();
    write(
        d,
        "rule.toml",
        r#"[metadata]
creation_date = "2021/01/01"
maturity = "production"

[rule]
rule_id = "aaaa-toml"
name = "TOML rule"
type = "query"
language = "kuery"
index = ["winlogbeat-*"]
risk_score = 21
severity = "low"
query = '''
event.code:"4104" and powershell.file.script_block_text:Invoke-Mimikatz
'''

[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.wildcard."file.path"]
case_insensitive = true
value = "C:\\Tools\\*"

[[rule.threat]]
framework = "MITRE ATT&CK"
"#,
    );
    let lock = write(
        d,
        "version.lock.json",
        r#"{"aaaa-toml": {"rule_name": "TOML rule", "sha256": "x", "version": 7}}"#,
    );
    write(
        d,
        "bbbb-fleet_3.json",
        r#"{"id": "bbbb-fleet_3", "type": "security-rule", "attributes": {"rule_id": "bbbb-fleet", "version": 3, "name": "Fleet", "type": "query", "language": "kuery", "query": "a:1", "index": ["logs-*"], "risk_score": 47, "severity": "medium", "max_signals": 50}}"#,
    );
    write(
        d,
        "export.ndjson",
        concat!(
            r#"{"rule_id": "cccc-export", "version": 1, "name": "E", "type": "eql", "language": "eql", "query": "process where true"}"#,
            "\n",
            r#"{"rule_id": "cccc-export", "version": 2, "name": "E", "type": "query", "language": "kuery", "query": "b:2", "interval": "1m", "from": "now-2m"}"#,
            "\n",
            r#"{"exported_count": 2, "missing_rules": []}"#,
            "\n"
        ),
    );
    let pack = pack::load(
        &[d.to_path_buf()],
        &LoadOptions {
            version_lock: Some(lock),
        },
    )
    .expect("load");
    assert!(pack.problems.is_empty(), "{:#?}", pack.problems);
    let toml = pack.find("aaaa-toml").expect("toml rule");
    assert_eq!(toml.rule.version, 7);
    let Some(Compiled { filters, .. }) = toml.status.compiled() else {
        panic!("{:?}", toml.status)
    };
    assert!(filters[0].negate);
    let fleet = pack.find("bbbb-fleet@3").expect("fleet");
    assert_eq!(fleet.rule.max_signals, 50);
    assert_eq!(fleet.rule.from, pack::DEFAULT_FROM);
    let eql = pack.find("cccc-export@1").expect("eql");
    assert!(
        matches!(&eql.status, Status::Ready(c) if c.kql().is_none()),
        "{:?}",
        eql.status
    );
    assert_eq!(
        pack.find("cccc-export@2").expect("kuery").rule.interval,
        "1m"
    );

    // Without the lock the TOML rule has no version: a problem, the rest still loads.
    let pack = pack::load(&[d.to_path_buf()], &LoadOptions::default()).expect("load");
    assert_eq!(pack.versions.len(), 3);
    assert!(
        pack.problems
            .iter()
            .any(|p| p.message.contains("version.lock")),
        "{:#?}",
        pack.problems
    );
}

#[test]
fn bad_rule_input_is_reported_with_its_place() {
    let tmp = util::temp_dir();
    let d = tmp.path();
    write(
        d,
        "broken.toml",
        "rule_id = \"x\"\n[[versions]\nversion = 1\n",
    );
    write(
        d,
        "lines.jsonl",
        concat!(
            r#"{"rule_id": "dddd", "version": 1, "query": "a:1 and (b:2", "language": "kuery"}"#,
            "\n",
            "{not json\n",
            r#"{"rule_id": "dddd", "version": 2, "query": "a:1", "filters": [{"query": {"geo_shape": {}}}]}"#,
            "\n",
            r#"{"rule_id": "dddd", "version": 3, "query": "a:1"}"#,
            "\n",
            r#"{"rule_id": "dddd", "version": 3, "query": "a:2"}"#,
            "\n",
            r#"{"rule_id": "dddd", "version": 3, "query": "a:1"}"#,
            "\n",
        ),
    );
    let pack = pack::load(&[d.to_path_buf()], &LoadOptions::default()).expect("load");
    let messages: Vec<String> = pack.problems.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("broken.toml:2") && m.contains("invalid TOML")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("lines.jsonl:2") && m.contains("invalid JSON")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("lines.jsonl:5")
            && m.contains("dddd@3")
            && m.contains("different content")),
        "{messages:#?}"
    );
    assert_eq!(pack.duplicates, 1);
    let v1 = pack.find("dddd@1").expect("v1");
    let Status::SyntaxError(e) = &v1.status else {
        panic!("{:?}", v1.status)
    };
    assert_eq!((e.line, e.column), (1, 13));
    assert!(pack
        .find("dddd@2")
        .expect("v2")
        .status
        .problem()
        .contains("geo_shape"));
    assert!(pack.find("dddd@3").expect("v3").status.is_ready());

    // The CLI names file, rule, version and position, and exits 1.
    let out = util::quarry()
        .args(["rules", "check"])
        .arg(d)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lines.jsonl:1: rule dddd@1: KQL 1:13"),
        "{err}"
    );
    assert!(err.contains('^'), "{err}");
}

/// EQL versions of the Windows history that run: all but the 25 Elasticsearch refuses, one
/// whose regular expression Lucene rejects, and 110 with scripts over several fields.
const EQL_READY: usize = 7984 - 25 - 1 - 110;

#[test]
fn windows_history_runs_kql_rules_and_lists_the_rest() {
    let Some(dir) = rules_dir() else { return };
    let pack = pack::load(
        &[dir.join("windows-rules-history.jsonl")],
        &LoadOptions::default(),
    )
    .expect("load");
    assert_eq!(pack.versions.len(), 9862);
    assert!(pack.problems.is_empty(), "{:?}", pack.problems.first());
    // Every threshold and new-terms version carries its grouping, and it survives a pack.
    let grouped: Vec<&pack::RuleVersion> = pack
        .versions
        .iter()
        .map(|v| &v.rule)
        .filter(|r| matches!(r.rule_type.as_str(), "threshold" | "new_terms"))
        .collect();
    assert_eq!(grouped.len(), 71 + 254);
    assert!(grouped.iter().all(|r| r.grouping.is_some()));
    let d = tempfile::tempdir().expect("tempdir");
    for rule in grouped.iter().step_by(7) {
        let text = pack::to_pack_toml(&[rule]).expect("pack");
        let path = write(d.path(), "one.toml", &text);
        let back = pack::load(&[path], &LoadOptions::default()).expect("load");
        assert_eq!(back.versions[0].rule.grouping, rule.grouping, "{text}");
    }
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for v in &pack.versions {
        let key = match &v.status {
            Status::Ready(_) => {
                assert_ne!(v.rule.rule_type, "threat_match", "{}", v.rule.key());
                "ready".to_string()
            }
            Status::NotReplayed { rule_type } => format!("type {rule_type}"),
            Status::Unsupported { language } => format!("language {language}"),
            Status::EqlCannotRun(why) if why.contains("script over several fields") => {
                "EQL script over several fields".to_string()
            }
            // An unbalanced group: Elasticsearch fails the search.
            Status::EqlCannotRun(why)
                if why.starts_with("Lucene rejects")
                    && v.rule.key() == "00140285-b827-4aee-aa09-8113f58a08f3@104" =>
            {
                "EQL regexp Lucene rejects".to_string()
            }
            // Elasticsearch refuses these before searching: the `wildcard()` function of
            // early EQL versions is gone, and 263481c8@111 compares two fields.
            Status::EqlError(e)
                if e.message.starts_with("Unknown function [wildcard]")
                    || e.message.starts_with("Comparisons against fields") =>
            {
                "EQL refused".to_string()
            }
            // Kibana rejects this version's query too (posh_history_loads_every_version).
            Status::SyntaxError(_) if v.rule.key() == "cde1bafa-9f01-4f43-a872-605b678968b0@1" => {
                "KQL syntax error".to_string()
            }
            other => format!("{}: {}", v.rule.key(), other.problem()),
        };
        *by_status.entry(key).or_default() += 1;
    }
    // rules/README.md: 1,280 query KQL versions, 254 new terms and 71 threshold (run: their
    // hits are the query's documents), 69 indicator match (not run); 7,984 EQL, event
    // queries and sequences, which run but for scripts over two fields or more; 198 ES|QL,
    // 6 Lucene.
    let want: std::collections::BTreeMap<String, usize> = [
        ("ready", 1279 + 254 + 71 + EQL_READY),
        ("KQL syntax error", 1),
        ("type threat_match", 69),
        ("EQL script over several fields", 110),
        ("EQL regexp Lucene rejects", 1),
        ("EQL refused", 25),
        ("language esql", 198),
        ("language lucene", 6),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(by_status, want);
}
