//! Elastic's own pipeline tests (`../shared/data/ecs`): each input, converted by quarry,
//! must agree with Elastic's expected output on every field both produce, type included;
//! fields Elastic sets and quarry does not, and values that differ because an expected file
//! comes from another pipeline revision, are listed with their reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::util::{self, Row};

/// Flattens a JSON object into dotted paths, the way the dataset stores fields.
fn flatten(prefix: &str, v: &Value, out: &mut Row) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, child, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let mut leaves: Row = Row::new();
            for item in items {
                let mut one = Row::new();
                flatten(prefix, item, &mut one);
                for (k, v) in one {
                    let entry = leaves.entry(k).or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(list) = entry {
                        list.push(v);
                    }
                }
            }
            out.extend(leaves);
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Values compared as Elasticsearch would index them: a scalar equal to a one-element list,
/// numbers by value, strings by text. The JSON type must agree too: a number is a number, a
/// string a string; a boolean may be stored as its text (booleans are text columns).
fn same(field: &str, ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(field, x, y))
        }
        (Value::Array(a), b) if a.len() == 1 => same(field, &a[0], b),
        (a, Value::Array(b)) if b.len() == 1 => same(field, a, &b[0]),
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            (a - b).abs() <= 1e-9 * b.abs().max(1.0)
        }
        (Value::String(a), Value::String(b)) if field == "@timestamp" => {
            // Elasticsearch keeps milliseconds; the dataset keeps microseconds.
            a.get(..23) == b.get(..23)
        }
        (Value::String(a), Value::String(b)) => a == b,
        (Value::String(a), Value::Bool(b)) | (Value::Bool(b), Value::String(a)) => {
            *a == b.to_string()
        }
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Field names that differ between the expected file's pipeline revision and the current one.
fn our_name(expected_field: &str) -> &str {
    match expected_field {
        "powershell.file.script_block_surprisal_sd" => {
            "powershell.file.script_block_surprisal_stdev"
        }
        other => other,
    }
}

/// An expected value quarry knowingly does not reproduce: in `file`, for the listed
/// records (all when empty), `field` differs, for the reason given.
struct KnownDifference {
    file: &'static str,
    records: &'static [&'static str],
    field: &'static str,
    why: &'static str,
}

/// A field Elastic's expected documents have for events `codes` (all when empty) and
/// quarry does not write, with the reason (also in the README's mapping section).
struct Unproduced {
    codes: &'static [&'static str],
    field_prefix: &'static str,
    why: &'static str,
}

/// What comparing one or more test pairs found.
#[derive(Default)]
struct PairReport {
    documents: usize,
    compared: usize,
    mismatches: Vec<String>,
    unproduced: BTreeMap<(String, String), usize>,
    used_known: BTreeSet<usize>,
    used_unproduced: BTreeSet<usize>,
}

/// Converts each input of `pairs` on its own (names relative to `dir`) and compares every
/// expected document with the row of the same record, event code and computer.
fn compare_pairs(
    dir: &Path,
    pairs: &[&str],
    known: &[KnownDifference],
    unproduced: &[Unproduced],
) -> PairReport {
    compare_pairs_as(dir, pairs, known, unproduced, false)
}

/// [`compare_pairs`], with every input event tagged `forwarded` when `forwarded` is set, as
/// the Agent's forwarded stream tags what it collects (so the forwarded pipeline runs, as in
/// Elastic's own test of that data stream).
fn compare_pairs_as(
    dir: &Path,
    pairs: &[&str],
    known: &[KnownDifference],
    unproduced: &[Unproduced],
    forwarded: bool,
) -> PairReport {
    let mut report = PairReport::default();
    let inputs = util::temp_dir();
    for name in pairs {
        let mut input = dir.join(name);
        if forwarded {
            let mut events: Value =
                serde_json::from_str(&std::fs::read_to_string(&input).expect("input"))
                    .expect("input json");
            for e in events["events"].as_array_mut().expect("events") {
                e["tags"] = serde_json::json!(["forwarded"]);
            }
            input = inputs.path().join(name);
            std::fs::write(&input, events.to_string()).expect("write tagged input");
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}-expected.json")))
                .expect("expected file"),
        )
        .expect("expected json");
        let tmp = util::temp_dir();
        let out = tmp.path().join("ds");
        util::convert_default(&[input], &out).expect("convert");
        let rows = util::read_rows(&out);
        if forwarded {
            for r in &rows {
                assert_eq!(r["_index"], "logs-windows.forwarded-default", "{r:?}");
                assert!(!r.contains_key("host.id"), "{r:?}");
            }
        }
        for exp in expected["expected"].as_array().expect("expected array") {
            let mut want = Row::new();
            flatten("", exp, &mut want);
            let key = |r: &Row| {
                ["winlog.record_id", "event.code", "winlog.computer_name"]
                    .map(|f| r.get(f).map(text))
            };
            // Records can repeat across hosts' logs: the best-agreeing row of the key.
            let Some(row) = rows
                .iter()
                .filter(|r| key(r) == key(&want))
                .max_by_key(|r| {
                    want.iter()
                        .filter(|(f, v)| r.get(our_name(f)).is_some_and(|o| same(f, o, v)))
                        .count()
                })
            else {
                continue;
            };
            report.documents += 1;
            compare_document(name, row, &want, known, unproduced, &mut report);
        }
    }
    report
}

fn compare_document(
    file: &str,
    row: &Row,
    want: &Row,
    known: &[KnownDifference],
    unproduced: &[Unproduced],
    report: &mut PairReport,
) {
    let record = want.get("winlog.record_id").map(text).unwrap_or_default();
    let code = want.get("event.code").map(text).unwrap_or_default();
    for (field, value) in want {
        if field == "event.ingested" {
            continue; // dynamic in Elastic's own test runner
        }
        let Some(ours) = row.get(our_name(field)) else {
            match unproduced.iter().position(|u| {
                (u.codes.is_empty() || u.codes.contains(&code.as_str()))
                    && field.starts_with(u.field_prefix)
            }) {
                Some(i) => {
                    report.used_unproduced.insert(i);
                }
                None => {
                    *report
                        .unproduced
                        .entry((code.clone(), field.clone()))
                        .or_default() += 1;
                }
            }
            continue;
        };
        report.compared += 1;
        if same(field, ours, value) {
            continue;
        }
        let excused = known.iter().position(|k| {
            k.file == file
                && k.field == field
                && (k.records.is_empty() || k.records.contains(&record.as_str()))
        });
        match excused {
            Some(i) => {
                report.used_known.insert(i);
            }
            None => report.mismatches.push(format!(
                "{file} record {record} (event {code}) {field}: ours {ours} expected {value}"
            )),
        }
    }
}

/// Fails on any unexplained difference, and on explanations that no longer apply.
fn assert_explained(report: &PairReport, known: &[KnownDifference], unproduced: &[Unproduced]) {
    assert!(
        report.mismatches.is_empty(),
        "{}",
        report.mismatches.join("\n")
    );
    let unexplained: Vec<String> = report
        .unproduced
        .iter()
        .map(|((code, field), n)| format!("event {code}: {field} ({n} documents)"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "fields Elastic sets and quarry does not:\n{}",
        unexplained.join("\n")
    );
    for (i, k) in known.iter().enumerate() {
        assert!(
            report.used_known.contains(&i),
            "stale known difference {} {} ({})",
            k.file,
            k.field,
            k.why
        );
    }
    for (i, u) in unproduced.iter().enumerate() {
        assert!(
            report.used_unproduced.contains(&i),
            "stale unproduced entry {:?} {} ({})",
            u.codes,
            u.field_prefix,
            u.why
        );
    }
}

#[test]
fn forwarded_powershell_events_match_elastic_expected_output() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/windows/forwarded");
    let unproduced = [Unproduced {
        codes: &[],
        field_prefix: "ecs.version",
        why: "the PowerShell mapping is not pinned to one pipeline revision, so quarry \
              claims no ECS version for these events",
    }];
    let report = compare_pairs_as(
        &dir,
        &["test-powershell-operational-events.json"],
        &[],
        &unproduced,
        true,
    );
    assert_eq!(report.documents, 6);
    assert_explained(&report, &[], &unproduced);
    assert!(
        report.compared > 150,
        "only {} fields compared",
        report.compared
    );
    // The fields a backtest depends on must be produced, not only agree when present.
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    util::convert_default(&[dir.join("test-powershell-operational-events.json")], &out)
        .expect("convert");
    for row in util::read_rows(&out) {
        for field in [
            "event.category",
            "event.type",
            "event.code",
            "host.os.type",
            "user.id",
        ] {
            assert!(row.contains_key(field), "{row:?} lacks {field}");
        }
    }
}

/// Where Elastic's Sysmon test expectations (made by other revisions of the pipeline than
/// the bf3be6b2 one quarry follows) differ from it.
const SYSMON_KNOWN: &[KnownDifference] = &[
    KnownDifference {
        file: "test-events.json",
        records: &["68", "167", "168", "170"],
        field: "dns.question.registered_domain",
        why: "akamaized.net is a public suffix in the psl crate's list, not in the older list \
              Elasticsearch's HttpClient bundled",
    },
    KnownDifference {
        file: "test-events.json",
        records: &["68", "167", "168", "170"],
        field: "dns.question.top_level_domain",
        why: "as above",
    },
    KnownDifference {
        file: "test-events.json",
        records: &["9334", "9366", "9370", "9375", "9379", "9384"],
        field: "event.action",
        why: "the expected file's revision set no event.action and kept Winlogbeat's; \
              bf3be6b2 sets it per event id",
    },
    KnownDifference {
        file: "test-image-loaded-failed-signature.json",
        records: &[],
        field: "event.category",
        why: "a newer revision adds `library` and dll.* for event 7",
    },
    KnownDifference {
        file: "test-image-loaded-failed-signature.json",
        records: &[],
        field: "event.type",
        why: "a newer revision adds `start` for event 7",
    },
    KnownDifference {
        file: "test-image-loaded-failed-signature.json",
        records: &[],
        field: "event.action",
        why: "a newer revision adds `load` for event 7",
    },
    KnownDifference {
        file: "test-image-loaded-failed-signature.json",
        records: &[],
        field: "ecs.version",
        why: "the newer revision sets ECS 8.17.0",
    },
];

const SYSMON_UNPRODUCED: &[Unproduced] = &[
    Unproduced {
        codes: &["22"],
        field_prefix: "dns.question.subdomain",
        why: "follows from the akamaized.net suffix difference",
    },
    Unproduced {
        codes: &["26"],
        field_prefix: "process.hash.",
        why: "bf3be6b2 puts event 26's hashes under file.hash (the expected file's older \
              revision under process.hash)",
    },
    Unproduced {
        codes: &["7"],
        field_prefix: "dll.",
        why: "dll.* for image loads comes with a newer revision; bf3be6b2 writes file.*",
    },
    Unproduced {
        codes: &["7"],
        field_prefix: "file.code_signature.trusted",
        why: "newer revision",
    },
];

#[test]
fn sysmon_events_match_elastic_expected_output() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/windows/sysmon_operational");
    let report = compare_pairs(
        &dir,
        &[
            "test-events.json",
            "test-image-loaded-failed-signature.json",
        ],
        SYSMON_KNOWN,
        SYSMON_UNPRODUCED,
    );
    assert_eq!(report.documents, 210, "every input event has its document");
    assert_explained(&report, SYSMON_KNOWN, SYSMON_UNPRODUCED);
    assert!(
        report.compared > 5000,
        "only {} fields compared",
        report.compared
    );
}

#[test]
fn script_statistics_are_produced_for_the_obfuscated_dump_script() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let input = data
        .join("ecs/elastic-integrations/windows/forwarded/test-powershell-operational-events.json");
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    let report = util::convert_default(&[input], &out).expect("convert");
    assert_eq!(report.events, 6);
    let rows = util::read_rows(Path::new(&out));
    let dump = rows
        .iter()
        .find(|r| r.get("winlog.record_id") == Some(&Value::String("3944".into())))
        .expect("record 3944");
    assert_eq!(
        dump["powershell.file.script_block_length"],
        Value::from(1599)
    );
    assert_eq!(
        dump["powershell.file.script_block_unique_symbols"],
        Value::from(66)
    );
    let entropy = dump["powershell.file.script_block_entropy_bits"]
        .as_f64()
        .expect("entropy");
    assert!((entropy - 4.999389346653313).abs() < 1e-9, "{entropy}");
}

/// The Security pairs quarry converts. The scheduled-task pairs (4698, 4699, 4702) are left
/// out: their inputs carry no time at all (no `@timestamp`, no `winlog.time_created`), which
/// a dataset partitioned by time cannot store (`security_events_without_a_time_are_counted`).
const SECURITY_PAIRS: &[&str] = &[
    "test-1102.json",
    "test-4662.json",
    "test-4663.json",
    "test-4670-windowssrv2016.json",
    "test-4674.json",
    "test-4719.json",
    "test-4738.json",
    "test-4742.json",
    "test-5136.json",
    "test-security-windows2012-4673.json",
    "test-security-windows2012-4697.json",
    "test-security-windows2012-4768.json",
    "test-security-windows2012-4769.json",
    "test-security-windows2012-4771.json",
    "test-security-windows2012-4776.json",
    "test-security-windows2012r2-logon.json",
    "test-security-windows2016-4722-account-enabled.json",
    "test-security-windows2016-4724-password-reset.json",
    "test-security-windows2016-4728.json",
    "test-security-windows2016-4732.json",
    "test-security-windows2016-4738-account-changed.json",
    "test-security-windows2016-4756.json",
    "test-security-windows2016-logoff.json",
    "test-security-windows2019-4688-process-created.json",
    "test-security-windows2019-4689-process-exited.json",
];

/// Expected files made with the ECS 8.0.0 revision of the router (quarry follows 6321f22f,
/// which sets 8.11.0).
const ECS_8_0_FILES: &[&str] = &[
    "test-4670-windowssrv2016.json",
    "test-4719.json",
    "test-security-windows2012-4697.json",
    "test-security-windows2012-4769.json",
    "test-security-windows2012-4771.json",
    "test-security-windows2012-4776.json",
    "test-security-windows2016-4722-account-enabled.json",
    "test-security-windows2016-4728.json",
    "test-security-windows2016-4732.json",
];

fn ecs_version_differences(files: &'static [&'static str]) -> Vec<KnownDifference> {
    files
        .iter()
        .map(|file| KnownDifference {
            file,
            records: &[],
            field: "ecs.version",
            why: "the expected file comes from a router revision with another ECS version",
        })
        .collect()
}

const SECURITY_KNOWN: &[KnownDifference] = &[
    KnownDifference {
        file: "test-4663.json",
        records: &[],
        field: "winlog.event_data.AccessList",
        why: "a newer revision rewrites AccessList as a list of codes; 057f555b keeps the text",
    },
    KnownDifference {
        file: "test-4674.json",
        records: &[],
        field: "winlog.event_data.AccessMask",
        why: "a newer revision rewrites AccessMask as a list of codes; 057f555b keeps the text",
    },
    KnownDifference {
        file: "test-security-windows2016-4738-account-changed.json",
        records: &[],
        field: "winlog.event_data.NewUACList",
        why: "a newer revision names NewUacValue bits after MS-SAMR (USER_*); 057f555b uses \
              the LDAP userAccountControl names",
    },
];

const SECURITY_UNPRODUCED: &[Unproduced] = &[
    Unproduced {
        codes: &["4662", "5136"],
        field_prefix: "event.",
        why: "4662 and 5136 are categorised only by newer revisions; 057f555b leaves \
              Winlogbeat's event.action (the task name)",
    },
    Unproduced {
        codes: &["4662", "5136"],
        field_prefix: "user.",
        why: "newer revisions copy the subject of 4662 and 5136 to user.*",
    },
    Unproduced {
        codes: &["4662", "5136"],
        field_prefix: "related.user",
        why: "as above",
    },
    Unproduced {
        codes: &["4673", "4689"],
        field_prefix: "tags",
        why: "preserve_duplicate_custom_fields is a tag of Elastic's test configuration",
    },
];

#[test]
fn security_events_match_elastic_expected_output() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/system/security");
    let mut known: Vec<KnownDifference> = ecs_version_differences(ECS_8_0_FILES);
    known.extend(SECURITY_KNOWN.iter().map(|k| KnownDifference { ..*k }));
    let report = compare_pairs(&dir, SECURITY_PAIRS, &known, SECURITY_UNPRODUCED);
    assert_eq!(report.documents, 48, "every input event has its document");
    assert_explained(&report, &known, SECURITY_UNPRODUCED);
    assert!(
        report.compared > 1500,
        "only {} fields compared",
        report.compared
    );
}

const FORWARDED_KNOWN: &[KnownDifference] = &[
    KnownDifference {
        file: "test-security-5145.json",
        records: &[],
        field: "file.name",
        why: "a newer revision takes the base name of RelativeTargetName; 057f555b copies it",
    },
    KnownDifference {
        file: "test-security-5145.json",
        records: &[],
        field: "file.directory",
        why: "as above: the newer revision joins the share path and the relative directory",
    },
    KnownDifference {
        file: "test-security-5145.json",
        records: &[],
        field: "file.path",
        why: "057f555b builds it with a {{ }} template, which JSON-escapes the backslashes",
    },
    KnownDifference {
        file: "test-security-5145.json",
        records: &[],
        field: "winlog.event_data.AccessList",
        why: "a newer revision rewrites AccessList as a list of codes",
    },
    KnownDifference {
        file: "test-security-5145.json",
        records: &[],
        field: "winlog.event_data.AccessMaskDescription",
        why: "a newer revision lists the bits in ascending order; 057f555b in its parameter \
              map's order",
    },
];

const FORWARDED_UNPRODUCED: &[Unproduced] = &[
    Unproduced {
        codes: &["5136"],
        field_prefix: "event.",
        why: "5136 is categorised (and its event.reason set) only by newer revisions",
    },
    Unproduced {
        codes: &["5136"],
        field_prefix: "user.",
        why: "newer revisions copy the subject and the ObjectDN's name of 5136",
    },
    Unproduced {
        codes: &["5136"],
        field_prefix: "related.user",
        why: "as above",
    },
    Unproduced {
        codes: &["5145"],
        field_prefix: "winlog.event_data.AccessListDescription",
        why: "057f555b splits AccessList at spaces only; Windows separates it with newlines",
    },
];

#[test]
fn forwarded_security_events_match_elastic_expected_output() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/windows/forwarded");
    let mut known = ecs_version_differences(&[
        "test-security-5136-objectdn-escaped-comma.json",
        "test-security-5145.json",
        "test-security-windows2012-4768.json",
        "test-security-windows2016-logoff.json",
    ]);
    known.extend(FORWARDED_KNOWN.iter().map(|k| KnownDifference { ..*k }));
    let report = compare_pairs_as(
        &dir,
        &[
            "test-security-5136-objectdn-escaped-comma.json",
            "test-security-5145.json",
            "test-security-windows2012-4768.json",
            "test-security-windows2016-logoff.json",
        ],
        &known,
        FORWARDED_UNPRODUCED,
        true,
    );
    assert_eq!(report.documents, 5, "every input event has its document");
    assert_explained(&report, &known, FORWARDED_UNPRODUCED);
}

#[test]
fn security_events_without_a_time_are_counted() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/system/security");
    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    let inputs = [
        "test-4698-scheduled-task-created.json",
        "test-4702-scheduled-task-updated.json",
    ]
    .map(|f| dir.join(f));
    let report = util::convert_default(&inputs, &out).expect("convert");
    assert_eq!(report.events, 0);
    assert_eq!(report.bad_total(), 2, "{:?}", report.bad_examples);
}
