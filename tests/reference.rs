//! The reference evaluator's hits on a whole dataset, for the tests and the hunt benchmark
//! alike: every row of every part the manifest lists, read with the plain Arrow JSON writer
//! (independent of the scanner's decoding), matched by `quarry::cond::eval` against each
//! runnable version.

use std::collections::BTreeSet;
use std::path::Path;

use quarry::cond::eval::{self, Document};
use quarry::cond::fields::FieldTypes;
use quarry::cond::Cond;
use quarry::rules::pack::{Pack, Status};
use quarry::scan::TimeRange;
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

/// The reference's hits on the named parts of `dataset` alone.
pub fn reference_hits_in(
    pack: &Pack,
    dataset: &Path,
    parts: &[String],
    types: &FieldTypes,
    range: TimeRange,
) -> BTreeSet<HitKey> {
    let ready: Vec<(&str, u32, &[String], &Cond)> = pack
        .versions
        .iter()
        .filter_map(|v| match &v.status {
            Status::Ready(compiled) => Some((
                v.rule.rule_id.as_str(),
                v.rule.version,
                v.rule.index.as_slice(),
                &compiled.cond,
            )),
            _ => None,
        })
        .collect();
    parts
        .par_iter()
        .flat_map_iter(|part| {
            let mut hits = Vec::new();
            for (row, ts, index, doc) in part_documents(&dataset.join(part)) {
                if !range.contains(ts) {
                    continue;
                }
                for (id, version, patterns, cond) in &ready {
                    // A version searches only the indices its patterns name.
                    let searched = index
                        .as_deref()
                        .is_none_or(|i| quarry::cond::glob::index_matches(patterns, i));
                    if searched && eval::matches(cond, &doc, types) {
                        hits.push((id.to_string(), *version, part.clone(), row));
                    }
                }
            }
            hits
        })
        .collect()
}

/// Every row of one part as (row, time, index, reference document).
fn part_documents(path: &Path) -> Vec<(u64, i64, Option<String>, Document)> {
    let file = std::fs::File::open(path).expect("open part");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet reader")
        .build()
        .expect("build reader");
    let mut out = Vec::new();
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
            let index = values
                .get("_index")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            out.push((out.len() as u64, ts.value(i), index, document(values)));
        }
    }
    out
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

/// The (rule id, version, file, row) of every hit of a hunt.
pub fn hit_keys(report: &quarry::hunt::HuntReport) -> BTreeSet<HitKey> {
    report
        .hits
        .iter()
        .map(|h| (h.rule_id.clone(), h.rule_version, h.file.clone(), h.row))
        .collect()
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
