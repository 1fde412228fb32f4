//! The reference evaluator's hits on a whole dataset, for the tests and the hunt benchmark
//! alike: every row of every part the manifest lists, read with the plain Arrow JSON writer
//! (independent of the scanner's decoding), matched against each runnable version by
//! `quarry::cond::eval` (KQL) or `quarry::rules::eql::reference` (EQL, over the fields the
//! parts hold values for).

use std::collections::BTreeSet;
use std::path::Path;

use quarry::cond::eval::{self, Document};
use quarry::cond::fields::FieldTypes;
use quarry::cond::Cond;
use quarry::rules::dsl;
use quarry::rules::eql::{self, EventFilter};
use quarry::rules::pack::{Pack, ParsedQuery, Status};
use quarry::scan::TimeRange;
use quarry::sequence;
use rayon::prelude::*;

/// (rule id, version, file, row).
pub type HitKey = (String, u32, String, u64);

/// The reference's hits of every runnable version of `pack` on `dataset` within `range`,
/// the parts in parallel (a document caches its tokens, so it stays on one thread).
#[allow(dead_code)] // the hunt bench checks chosen parts with `reference_hits_in`
pub fn reference_hits(
    pack: &Pack,
    dataset: &Path,
    types: &FieldTypes,
    range: TimeRange,
) -> BTreeSet<HitKey> {
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest");
    let parts: Vec<String> = manifest.parts().map(|p| p.path.clone()).collect();
    reference_hits_in(pack, dataset, &parts, types, range)
}

/// How the reference reads one version.
enum Reading<'a> {
    /// KQL (and Query-DSL filters): the lowered condition, evaluated by `cond::eval`.
    Cond(&'a Cond),
    /// EQL: the event filter read by the EQL reference over the fields the dataset maps,
    /// and the rule's Query-DSL filters.
    Eql(&'a EventFilter, Cond),
}

/// The reference's hits on the named parts of `dataset` alone.
pub fn reference_hits_in(
    pack: &Pack,
    dataset: &Path,
    parts: &[String],
    types: &FieldTypes,
    range: TimeRange,
) -> BTreeSet<HitKey> {
    let ready: Vec<(&str, u32, &[String], Reading)> = pack
        .versions
        .iter()
        .filter_map(|v| match &v.status {
            Status::Ready(compiled) => Some((
                v.rule.rule_id.as_str(),
                v.rule.version,
                v.rule.index.as_slice(),
                match &compiled.query {
                    ParsedQuery::Eql(q) => match &q.body {
                        eql::Body::Event(filter) => {
                            Reading::Eql(filter, dsl::lower(&compiled.filters))
                        }
                        _ => return None,
                    },
                    ParsedQuery::Kql(_) => Reading::Cond(&compiled.cond),
                },
            )),
            _ => None,
        })
        .collect();
    // A field is mapped where some event of the parts holds a value for it (a document
    // caches its tokens, so it stays on the thread that read it: the parts are read twice).
    let mapped: BTreeSet<String> = parts
        .par_iter()
        .map(|part| part_documents(&dataset.join(part)).fields)
        .reduce(BTreeSet::new, |mut a, b| {
            a.extend(b);
            a
        });
    let is_mapped = |f: &str| mapped.contains(f);
    parts
        .par_iter()
        .flat_map_iter(|part| {
            let rows = part_documents(&dataset.join(part));
            let mapping = eql::lower::Mapping {
                is_mapped: &is_mapped,
                types: *types,
            };
            let mut hits = Vec::new();
            for (row, ts, index, doc) in &rows.rows {
                if !range.contains(*ts) {
                    continue;
                }
                for (id, version, patterns, reading) in &ready {
                    // A version searches only the indices its patterns name.
                    let searched = index
                        .as_deref()
                        .is_none_or(|i| quarry::cond::glob::index_matches(patterns, i));
                    let hit = searched
                        && match reading {
                            Reading::Cond(cond) => eval::matches(cond, doc, types),
                            Reading::Eql(filter, filters) => {
                                eql::reference::matches(filter, doc, &mapping).unwrap_or(false)
                                    && eval::matches(filters, doc, types)
                            }
                        };
                    if hit {
                        hits.push((id.to_string(), *version, part.clone(), *row));
                    }
                }
            }
            hits
        })
        .collect()
}

/// The document of one row of a part, as the reference reads it (to explain a difference).
#[allow(dead_code)]
pub fn document_at(dataset: &Path, file: &str, row: u64) -> Option<Document> {
    part_documents(&dataset.join(file))
        .rows
        .into_iter()
        .find(|(r, ..)| *r == row)
        .map(|(.., doc)| doc)
}

/// The fields some event of the dataset holds a value for: what it maps.
#[allow(dead_code)]
pub fn mapped_fields(dataset: &Path) -> BTreeSet<String> {
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest");
    manifest
        .parts()
        .flat_map(|p| part_documents(&dataset.join(&p.path)).fields)
        .collect()
}

/// The rows of one part, and the fields some row holds a value for.
struct PartRows {
    rows: Vec<(u64, i64, Option<String>, Document)>,
    fields: BTreeSet<String>,
}

/// Every row of one part as (row, time, index, reference document).
fn part_documents(path: &Path) -> PartRows {
    let file = std::fs::File::open(path).expect("open part");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet reader")
        .build()
        .expect("build reader");
    let mut out = Vec::new();
    let mut fields = BTreeSet::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let ts = batch
            .column_by_name("@timestamp")
            .expect("@timestamp")
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .expect("timestamp column")
            .clone();
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&batch).expect("json");
        writer.finish().expect("json finish");
        let json: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&writer.into_inner()).expect("rows");
        for (i, values) in json.into_iter().enumerate() {
            fields.extend(
                values
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k.clone()),
            );
            let index = values
                .get("_index")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            out.push((out.len() as u64, ts.value(i), index, document(values)));
        }
    }
    PartRows { rows: out, fields }
}

fn document(row: serde_json::Map<String, serde_json::Value>) -> Document {
    let mut doc = Document::new();
    for (field, value) in row {
        let values = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            doc = doc.with(&field, &text);
        }
    }
    doc
}

/// The (rule id, version, file, row) of every hit of a hunt that is not an event of a
/// sequence.
pub fn hit_keys(report: &quarry::hunt::HuntReport) -> BTreeSet<HitKey> {
    report
        .hits
        .iter()
        .filter(|h| h.sequence.is_none())
        .map(|h| (h.rule_id.clone(), h.rule_version, h.file.clone(), h.row))
        .collect()
}

/// (rule id, version, sequence number, step, file, row): one event of one sequence.
pub type SequenceKey = (String, u32, u64, u32, String, u64);

/// The events of the sequences of a hunt.
#[allow(dead_code)]
pub fn sequence_keys(report: &quarry::hunt::HuntReport) -> BTreeSet<SequenceKey> {
    report
        .hits
        .iter()
        .filter_map(|h| {
            let s = h.sequence?;
            Some((
                h.rule_id.clone(),
                h.rule_version,
                s.id,
                s.step,
                h.file.clone(),
                h.row,
            ))
        })
        .collect()
}

/// The reference's sequences of every runnable sequence version of `pack` on `dataset`:
/// each step matched by the EQL reference, with the step's non-optional keys present, the
/// events ordered by timestamp (milliseconds), `event.sequence` and (file, row), keyed by
/// every combination of their key values, and joined by `quarry::sequence::assemble`.
#[allow(dead_code)]
pub fn reference_sequences(
    pack: &Pack,
    dataset: &Path,
    types: &FieldTypes,
) -> BTreeSet<SequenceKey> {
    let mapped = mapped_fields(dataset);
    let is_mapped = |f: &str| mapped.contains(f);
    let mapping = eql::lower::Mapping {
        is_mapped: &is_mapped,
        types: *types,
    };
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest");
    let mut parts: Vec<String> = manifest.parts().map(|p| p.path.clone()).collect();
    parts.sort();
    let rows: Vec<(String, u64, i64, Option<String>, Document)> = parts
        .iter()
        .flat_map(|part| {
            part_documents(&dataset.join(part))
                .rows
                .into_iter()
                .map(move |(row, ts, index, doc)| (part.clone(), row, ts, index, doc))
        })
        .collect();
    let mut out = BTreeSet::new();
    for v in &pack.versions {
        let Status::Ready(compiled) = &v.status else {
            continue;
        };
        let (Some(join), ParsedQuery::Eql(q)) = (&compiled.sequence, &compiled.query) else {
            continue;
        };
        let eql::Body::Sequence(seq) = &q.body else {
            continue;
        };
        let filters = dsl::lower(&compiled.filters);
        let steps: Vec<(sequence::Role, &EventFilter, &sequence::JoinStep)> = seq
            .steps
            .iter()
            .zip(&join.steps)
            .enumerate()
            .map(|(i, (s, j))| (sequence::Role::Step(i), &s.filter, j))
            .chain(
                seq.until
                    .iter()
                    .zip(&join.until)
                    .map(|(s, j)| (sequence::Role::Until, &s.filter, j)),
            )
            .collect();
        let unmapped_key = steps
            .iter()
            .flat_map(|(_, _, j)| &j.keys)
            .any(|k| !k.optional && !mapped.contains(&k.path));
        if unmapped_key {
            continue;
        }
        let mut hits = Vec::new();
        for (i, (_, _, ts, index, doc)) in rows.iter().enumerate() {
            let searched = index
                .as_deref()
                .is_none_or(|x| quarry::cond::glob::index_matches(&v.rule.index, x));
            if !searched {
                continue;
            }
            for (role, filter, step) in &steps {
                let keys_present = step.keys.iter().filter(|k| !k.optional).all(|k| {
                    doc.fields.get(&k.path).is_some_and(|values| {
                        values.iter().any(|x| {
                            eval::value_matches(
                                &quarry::cond::Test::Exists,
                                types.type_of(&k.path),
                                x,
                            )
                        })
                    })
                });
                let matched = keys_present
                    && eql::reference::matches(filter, doc, &mapping).unwrap_or(false)
                    && eval::matches(&filters, doc, types);
                if !matched {
                    continue;
                }
                let values: Vec<Vec<String>> = step
                    .keys
                    .iter()
                    .map(|k| doc.fields.get(&k.path).cloned().unwrap_or_default())
                    .collect();
                let ordinal = sequence::Ordinal {
                    timestamp_ms: ts.div_euclid(1000),
                    tiebreaker: doc
                        .fields
                        .get("event.sequence")
                        .and_then(|v| v.first())
                        .and_then(|v| v.parse().ok()),
                    row: i as u64,
                };
                for key in sequence::keys_of(&values) {
                    hits.push(sequence::StepHit {
                        role: *role,
                        key,
                        ordinal,
                        event: i as u64,
                    });
                }
            }
        }
        for (n, found) in sequence::assemble(&join.spec(), &hits).iter().enumerate() {
            for (step, event) in found.events.iter().enumerate() {
                if let Some((_, i)) = event {
                    let (part, row, ..) = &rows[*i as usize];
                    out.insert((
                        v.rule.rule_id.clone(),
                        v.rule.version,
                        n as u64 + 1,
                        step as u32,
                        part.clone(),
                        *row,
                    ));
                }
            }
        }
    }
    out
}

/// Panics unless the engine's hits are the reference's, naming a few of each difference.
pub fn assert_same(engine: &BTreeSet<HitKey>, reference: &BTreeSet<HitKey>, what: &str) {
    let extra: Vec<_> = engine.difference(reference).take(5).collect();
    let missing: Vec<_> = reference.difference(engine).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: {} hits the reference does not make (e.g. {extra:?}), {} it makes that the engine misses (e.g. {missing:?})",
        engine.difference(reference).count(),
        reference.difference(engine).count()
    );
}
