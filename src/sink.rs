//! The hit table (DESIGN §7): one row per (rule version, event), written atomically.
//!
//! Rows are ordered by rule id, rule version, `@timestamp`, then dataset, file and row, so
//! the same hunt writes the same bytes whatever the thread count. Formats: Parquet (the
//! default; readable by DuckDB, Polars, pandas), JSON Lines and CSV. The file is written to a
//! temporary name beside the target and renamed when complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::ingest::format_micros;
use crate::scan::TRIAGE_FIELDS;

/// One row of the hit table.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub rule_id: String,
    pub rule_version: u32,
    pub rule_name: String,
    pub severity: String,
    pub risk_score: f64,
    pub timestamp_us: i64,
    /// [`TRIAGE_FIELDS`], in order.
    pub fields: Vec<Option<String>>,
    /// The leaves of the version that are true on the event, as `field: value`.
    pub matched: Vec<String>,
    /// The dataset directory, the file inside it and the row number in that file.
    pub dataset: String,
    pub file: String,
    pub row: u64,
}

impl Hit {
    /// The value of a triage field.
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = TRIAGE_FIELDS.iter().position(|f| *f == name)?;
        self.fields.get(i)?.as_deref()
    }
}

/// Output formats of the hit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "parquet" => Format::Parquet,
            "jsonl" | "ndjson" => Format::Jsonl,
            "csv" => Format::Csv,
            _ => return None,
        })
    }
}

/// Sorts hits into the table's order.
pub fn sort(hits: &mut [Hit]) {
    hits.sort_by(|a, b| {
        (
            &a.rule_id,
            a.rule_version,
            a.timestamp_us,
            &a.dataset,
            &a.file,
            a.row,
        )
            .cmp(&(
                &b.rule_id,
                b.rule_version,
                b.timestamp_us,
                &b.dataset,
                &b.file,
                b.row,
            ))
    });
}

/// Triage fields stored as numbers.
const INT_FIELDS: &[&str] = &["powershell.sequence", "powershell.total"];

/// The hit table's Arrow schema.
pub fn schema() -> Schema {
    let mut fields = vec![
        Field::new("rule_id", DataType::Utf8, false),
        Field::new("rule_version", DataType::UInt32, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("risk_score", DataType::Float64, false),
        Field::new(
            "@timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ];
    for f in TRIAGE_FIELDS {
        let ty = match INT_FIELDS.contains(f) {
            true => DataType::Int64,
            false => DataType::Utf8,
        };
        fields.push(Field::new(*f, ty, true));
    }
    fields.push(Field::new(
        "matched",
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    ));
    fields.push(Field::new("dataset", DataType::Utf8, false));
    fields.push(Field::new("file", DataType::Utf8, false));
    fields.push(Field::new("row", DataType::UInt64, false));
    Schema::new(fields)
}

fn batch(hits: &[Hit]) -> Result<RecordBatch, String> {
    let strings = |f: &dyn Fn(&Hit) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(hits.iter().map(f)))
    };
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|h| &h.rule_id),
        Arc::new(UInt32Array::from_iter_values(
            hits.iter().map(|h| h.rule_version),
        )),
        strings(&|h| &h.rule_name),
        strings(&|h| &h.severity),
        Arc::new(Float64Array::from_iter_values(
            hits.iter().map(|h| h.risk_score),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(hits.iter().map(|h| h.timestamp_us))
                .with_timezone("UTC"),
        ),
    ];
    for (i, f) in TRIAGE_FIELDS.iter().enumerate() {
        let values = hits.iter().map(|h| h.fields.get(i).cloned().flatten());
        columns.push(match INT_FIELDS.contains(f) {
            true => Arc::new(Int64Array::from_iter(
                values.map(|v| v.and_then(|s| s.trim().parse::<i64>().ok())),
            )),
            false => Arc::new(StringArray::from_iter(values)),
        });
    }
    let mut matched = ListBuilder::new(StringBuilder::new());
    for h in hits {
        for m in &h.matched {
            matched.values().append_value(m);
        }
        matched.append(true);
    }
    columns.push(Arc::new(matched.finish()));
    columns.push(strings(&|h| &h.dataset));
    columns.push(strings(&|h| &h.file));
    columns.push(Arc::new(UInt64Array::from_iter_values(
        hits.iter().map(|h| h.row),
    )));
    let schema = Arc::new(schema());
    // The list field of the builder is named `item` and nullable, as the schema says.
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

/// Writes the sorted `hits` to `path` as `format`, through a temporary file.
pub fn write(hits: &[Hit], path: &Path, format: Format) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".quarry-hits-")
        .tempfile_in(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    {
        let file = tmp.as_file_mut();
        let mut out = std::io::BufWriter::new(file);
        match format {
            Format::Parquet => write_parquet(hits, &mut out)?,
            Format::Jsonl => write_jsonl(hits, &mut out).map_err(|e| e.to_string())?,
            Format::Csv => write_csv(hits, &mut out).map_err(|e| e.to_string())?,
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(())
}

fn write_parquet<W: Write + Send>(hits: &[Hit], out: W) -> Result<(), String> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let batch = batch(hits)?;
    let mut writer =
        ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(())
}

fn json_row(h: &Hit) -> serde_json::Value {
    let mut row = serde_json::Map::new();
    row.insert("rule_id".into(), h.rule_id.clone().into());
    row.insert("rule_version".into(), h.rule_version.into());
    row.insert("rule_name".into(), h.rule_name.clone().into());
    row.insert("severity".into(), h.severity.clone().into());
    row.insert("risk_score".into(), h.risk_score.into());
    row.insert("@timestamp".into(), format_micros(h.timestamp_us).into());
    for (f, v) in TRIAGE_FIELDS.iter().zip(&h.fields) {
        let value = match (v, INT_FIELDS.contains(f)) {
            (None, _) => serde_json::Value::Null,
            (Some(s), true) => s
                .trim()
                .parse::<i64>()
                .map_or(serde_json::Value::Null, Into::into),
            (Some(s), false) => s.clone().into(),
        };
        row.insert(f.to_string(), value);
    }
    row.insert("matched".into(), h.matched.clone().into());
    row.insert("dataset".into(), h.dataset.clone().into());
    row.insert("file".into(), h.file.clone().into());
    row.insert("row".into(), h.row.into());
    serde_json::Value::Object(row)
}

fn write_jsonl(hits: &[Hit], out: &mut impl Write) -> std::io::Result<()> {
    for h in hits {
        serde_json::to_writer(&mut *out, &json_row(h))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_csv(hits: &[Hit], out: &mut impl Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let header: Vec<String> = schema().fields().iter().map(|f| f.name().clone()).collect();
    w.write_record(&header)?;
    for h in hits {
        let mut record = vec![
            h.rule_id.clone(),
            h.rule_version.to_string(),
            h.rule_name.clone(),
            h.severity.clone(),
            h.risk_score.to_string(),
            format_micros(h.timestamp_us),
        ];
        record.extend(h.fields.iter().map(|v| v.clone().unwrap_or_default()));
        record.push(h.matched.join("; "));
        record.push(h.dataset.clone());
        record.push(h.file.clone());
        record.push(h.row.to_string());
        w.write_record(&record)?;
    }
    w.flush()
}

/// One line of the hunt summary: a version's hits, hosts, users and time span.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSummary {
    pub rule_id: String,
    pub rule_version: u32,
    pub rule_name: String,
    pub hits: u64,
    pub hosts: usize,
    pub users: usize,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
}

/// The summary of sorted `hits`, one line per version that has hits.
pub fn summarize(hits: &[Hit]) -> Vec<VersionSummary> {
    let mut out: Vec<VersionSummary> = Vec::new();
    let mut hosts = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    for h in hits {
        let same = out
            .last()
            .is_some_and(|s| s.rule_id == h.rule_id && s.rule_version == h.rule_version);
        if !same {
            hosts.clear();
            users.clear();
            out.push(VersionSummary {
                rule_id: h.rule_id.clone(),
                rule_version: h.rule_version,
                rule_name: h.rule_name.clone(),
                hits: 0,
                hosts: 0,
                users: 0,
                first_us: None,
                last_us: None,
            });
        }
        if let Some(s) = out.last_mut() {
            s.hits += 1;
            if let Some(host) = h.field("host.name") {
                hosts.insert(host.to_string());
            }
            if let Some(user) = h.field("user.name").or(h.field("user.id")) {
                users.insert(user.to_string());
            }
            s.hosts = hosts.len();
            s.users = users.len();
            s.first_us = Some(s.first_us.map_or(h.timestamp_us, |f| f.min(h.timestamp_us)));
            s.last_us = Some(s.last_us.map_or(h.timestamp_us, |l| l.max(h.timestamp_us)));
        }
    }
    out
}
