//! Elastic's pipeline tests for PowerShell Operational events (forwarded data stream): the
//! input, converted by quarry, must agree with Elastic's expected output on every field both
//! produce.

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

/// Values compared as Elasticsearch would index them: numbers and strings by text, a scalar
/// equal to a one-element list.
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
        (a, b) => text(a) == text(b),
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

#[test]
fn forwarded_powershell_events_match_elastic_expected_output() {
    let Some(data) = util::shared_data() else {
        return;
    };
    let dir = data.join("ecs/elastic-integrations/windows/forwarded");
    let input = dir.join("test-powershell-operational-events.json");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("test-powershell-operational-events.json-expected.json"))
            .expect("expected file"),
    )
    .expect("expected json");
    let expected = expected["expected"]
        .as_array()
        .expect("expected array")
        .clone();

    let tmp = util::temp_dir();
    let out = tmp.path().join("ds");
    let status = util::quarry()
        .args(["convert", "--quiet", "--out"])
        .arg(&out)
        .arg(&input)
        .status()
        .expect("run quarry");
    assert!(status.success(), "convert failed: {status}");
    let rows = util::read_rows(&out);
    assert_eq!(rows.len(), expected.len());

    let mut compared = 0;
    let mut mismatches = Vec::new();
    for exp in &expected {
        let mut want = Row::new();
        flatten("", exp, &mut want);
        let record = text(&want["winlog.record_id"]);
        let row = rows
            .iter()
            .find(|r| r.get("winlog.record_id").map(text) == Some(record.clone()))
            .unwrap_or_else(|| panic!("no row for record {record}"));
        for (field, value) in &want {
            let Some(ours) = row.get(our_name(field)) else {
                continue;
            };
            compared += 1;
            if !same(field, ours, value) {
                mismatches.push(format!(
                    "record {record} {field}: ours {ours} expected {value}"
                ));
            }
        }
        // The fields a backtest depends on must be produced, not only agree when present.
        for field in [
            "event.category",
            "event.type",
            "event.code",
            "host.os.type",
            "user.id",
        ] {
            assert!(row.contains_key(field), "record {record} lacks {field}");
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 150, "only {compared} fields compared");
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
