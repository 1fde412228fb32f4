//! The hit table (DESIGN §7): one row per (rule version, event), written atomically.
//!
//! Rows are ordered by rule id, rule version, `@timestamp`, then dataset, file and row, so
//! the same hunt writes the same bytes whatever the thread count. Formats: Parquet (the
//! default; readable by DuckDB, Polars, pandas), JSON Lines and CSV. The file is written batch
//! by batch to a temporary name beside the target and renamed when complete; the hits reach
//! it in order through a [`spool::Spool`], so memory does not grow with their number.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
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
use crate::plan::Role;

pub mod error;
pub mod spool;

pub use error::{SinkError, SinkErrorKind};

/// The fields a hit row carries for triage (DESIGN §7), besides `@timestamp`: who and
/// where, the script of a PowerShell event, the process of a process event, and the usual
/// `timestamp_override` (a backtest's schedule replay searches by it).
pub const TRIAGE_FIELDS: &[&str] = &[
    "host.name",
    "user.id",
    "user.name",
    "event.code",
    "powershell.file.script_block_id",
    "powershell.sequence",
    "powershell.total",
    "file.path",
    "process.name",
    "process.command_line",
    "process.parent.name",
    "event.ingested",
];

/// One row of the hit table.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub rule_id: String,
    pub rule_version: u32,
    /// What the version ran as: itself (every hit of a hit table), or a backtest's what-if or
    /// ground truth.
    pub role: Role,
    pub rule_name: String,
    /// [`crate::rules::pack::RuleVersion::alert_type`]: `query`, `eql`, `threshold`, ...
    pub rule_type: String,
    pub severity: String,
    pub risk_score: f64,
    pub timestamp_us: i64,
    /// [`TRIAGE_FIELDS`], in order; shared by the hits of every version on the event.
    pub fields: Arc<[Option<String>]>,
    /// The leaves of the version that are true on the event, as `field: value`.
    pub matched: Vec<Arc<str>>,
    /// The dataset directory, the file inside it and the row number in that file.
    pub dataset: String,
    pub file: String,
    pub row: u64,
    /// For an event of an EQL sequence: which sequence of the version, and which step the
    /// event played.
    pub sequence: Option<SequenceRef>,
}

/// An event's place in a sequence: the sequence (numbered per version, in the order the
/// sequences come, by their first event) and the step (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceRef {
    pub id: u64,
    pub step: u32,
}

impl Hit {
    /// The value of a triage field.
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = TRIAGE_FIELDS.iter().position(|f| *f == name)?;
        self.fields.get(i)?.as_deref()
    }
}

/// An event as a hit points at it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventRef {
    pub dataset: String,
    pub file: String,
    pub row: u64,
}

impl EventRef {
    pub fn of(hit: &Hit) -> EventRef {
        EventRef {
            dataset: hit.dataset.clone(),
            file: hit.file.clone(),
            row: hit.row,
        }
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

/// The hit table's order.
pub fn order(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    (
        &a.rule_id,
        a.rule_version,
        a.role,
        a.timestamp_us,
        &a.dataset,
        &a.file,
        a.row,
        a.sequence,
    )
        .cmp(&(
            &b.rule_id,
            b.rule_version,
            b.role,
            b.timestamp_us,
            &b.dataset,
            &b.file,
            b.row,
            b.sequence,
        ))
}

/// Triage fields stored as numbers.
const INT_FIELDS: &[&str] = &["powershell.sequence", "powershell.total"];

/// The hit table's Arrow schema.
pub fn schema() -> Schema {
    let mut fields = vec![
        Field::new("rule_id", DataType::Utf8, false),
        Field::new("rule_version", DataType::UInt32, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("rule_type", DataType::Utf8, false),
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
    fields.push(Field::new("sequence_id", DataType::UInt64, true));
    fields.push(Field::new("sequence_step", DataType::UInt32, true));
    Schema::new(fields)
}

fn batch(hits: &[Hit]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let strings = |f: &dyn Fn(&Hit) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(hits.iter().map(f)))
    };
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|h| &h.rule_id),
        Arc::new(UInt32Array::from_iter_values(
            hits.iter().map(|h| h.rule_version),
        )),
        strings(&|h| &h.rule_name),
        strings(&|h| &h.rule_type),
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
    columns.push(Arc::new(UInt64Array::from_iter(
        hits.iter().map(|h| h.sequence.map(|s| s.id)),
    )));
    columns.push(Arc::new(UInt32Array::from_iter(
        hits.iter().map(|h| h.sequence.map(|s| s.step)),
    )));
    let schema = Arc::new(schema());
    // The list field of the builder is named `item` and nullable, as the schema says.
    RecordBatch::try_new(schema, columns)
}

/// Writes the sorted `hits` to `path` as `format`, through a temporary file.
pub fn write(hits: &[Hit], path: &Path, format: Format) -> Result<(), SinkError> {
    let mut writer = HitWriter::create(path, format)?;
    writer.write(hits)?;
    writer.finish()
}

/// A hit table being written, batch by batch, to a temporary file beside its target; it
/// takes the target's name in [`HitWriter::finish`], and is removed if dropped before.
///
/// The writer holds a lock beside the target (`.NAME.quarry-lock`) from creation to drop: a
/// second process writing the same table fails at once instead of racing it. Holding the
/// lock, it also removes what a killed writer of the same table left (its temporary file
/// and spill directory, named `.NAME.quarry-tmp-*` and `.NAME.quarry-spool-*`).
pub struct HitWriter {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    out: Output,
    _lock: crate::lock::Lock,
}

enum Output {
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
    Csv(Box<csv::Writer<BufWriter<File>>>),
}

/// The directory of `path` and the prefix of the files a writer of `path` keeps beside it.
fn beside(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or("hits".into(), |n| n.to_string_lossy().into_owned());
    (dir, format!(".{name}.quarry-"))
}

/// Removes the temporary files and spill directories of earlier, killed writers of a table
/// (the caller holds the table's lock, so no live writer owns them).
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let path = entry.path();
        if rest.starts_with("tmp-") {
            let _ = std::fs::remove_file(&path);
        } else if rest.starts_with("spool-") {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl HitWriter {
    pub fn create(path: &Path, format: Format) -> Result<HitWriter, SinkError> {
        let (dir, prefix) = beside(path);
        let in_dir = |e| SinkError::io(&dir, e);
        std::fs::create_dir_all(&dir).map_err(in_dir)?;
        let lock_path = dir.join(format!("{prefix}lock"));
        let lock = crate::lock::exclusive(&lock_path).map_err(|e| match e {
            crate::lock::LockError::Io(e) => SinkError::io(&lock_path, e),
            crate::lock::LockError::Held => SinkError::new(path, SinkErrorKind::Locked),
        })?;
        remove_leftovers(&dir, &prefix);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{prefix}tmp-"))
            .tempfile_in(&dir)
            .map_err(in_dir)?;
        let file = tmp.as_file().try_clone().map_err(in_dir)?;
        let parquet = |e| SinkError::new(path, SinkErrorKind::Parquet(e));
        let buffered = BufWriter::new(file);
        let out = match format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                Output::Parquet(Box::new(
                    ArrowWriter::try_new(buffered, Arc::new(schema()), Some(props))
                        .map_err(parquet)?,
                ))
            }
            Format::Jsonl => Output::Jsonl(buffered),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(buffered);
                let header: Vec<String> =
                    schema().fields().iter().map(|f| f.name().clone()).collect();
                w.write_record(&header)
                    .map_err(|e| SinkError::new(path, SinkErrorKind::Csv(e)))?;
                Output::Csv(Box::new(w))
            }
        };
        Ok(HitWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            _lock: lock,
        })
    }

    /// Where the hunt feeding this writer spills sorted runs: a directory beside the table
    /// whose name starts with this path's name.
    pub fn spill_prefix(&self) -> PathBuf {
        let (dir, prefix) = beside(&self.path);
        dir.join(format!("{prefix}spool-"))
    }

    /// Appends `hits`, which follow the ones written before in the table's order.
    pub fn write(&mut self, hits: &[Hit]) -> Result<(), SinkError> {
        let at = |kind| SinkError::new(&self.path, kind);
        match &mut self.out {
            Output::Parquet(w) => {
                let batch = batch(hits).map_err(|e| at(SinkErrorKind::Arrow(e)))?;
                w.write(&batch).map_err(|e| at(SinkErrorKind::Parquet(e)))
            }
            Output::Jsonl(w) => write_jsonl(hits, w).map_err(|e| at(SinkErrorKind::Io(e))),
            Output::Csv(w) => write_csv(hits, w).map_err(|e| at(SinkErrorKind::Csv(e))),
        }
    }

    /// Completes the file and gives it its name.
    pub fn finish(self) -> Result<(), SinkError> {
        let path = self.path;
        let at = |kind| SinkError::new(&path, kind);
        let io = |e| at(SinkErrorKind::Io(e));
        let file = match self.out {
            Output::Parquet(w) => w.into_inner().map_err(|e| at(SinkErrorKind::Parquet(e)))?,
            Output::Jsonl(w) => w,
            Output::Csv(w) => w.into_inner().map_err(|e| io(e.into_error()))?,
        };
        file.into_inner().map_err(|e| io(e.into_error()))?;
        self.tmp.as_file().sync_all().map_err(io)?;
        // A hit table is shared, not private like the temporary file it was.
        let _ = std::fs::set_permissions(
            self.tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        );
        self.tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

fn json_row(h: &Hit) -> serde_json::Value {
    let mut row = serde_json::Map::new();
    row.insert("rule_id".into(), h.rule_id.clone().into());
    row.insert("rule_version".into(), h.rule_version.into());
    row.insert("rule_name".into(), h.rule_name.clone().into());
    row.insert("rule_type".into(), h.rule_type.clone().into());
    row.insert("severity".into(), h.severity.clone().into());
    row.insert("risk_score".into(), h.risk_score.into());
    row.insert("@timestamp".into(), format_micros(h.timestamp_us).into());
    for (f, v) in TRIAGE_FIELDS.iter().zip(h.fields.iter()) {
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
    row.insert(
        "matched".into(),
        h.matched.iter().map(|m| &**m).collect::<Vec<_>>().into(),
    );
    row.insert("dataset".into(), h.dataset.clone().into());
    row.insert("file".into(), h.file.clone().into());
    row.insert("row".into(), h.row.into());
    row.insert("sequence_id".into(), h.sequence.map(|s| s.id).into());
    row.insert("sequence_step".into(), h.sequence.map(|s| s.step).into());
    serde_json::Value::Object(row)
}

fn write_jsonl(hits: &[Hit], out: &mut impl Write) -> std::io::Result<()> {
    for h in hits {
        serde_json::to_writer(&mut *out, &json_row(h))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_csv<W: Write>(hits: &[Hit], w: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    for h in hits {
        let mut record = vec![
            h.rule_id.clone(),
            h.rule_version.to_string(),
            h.rule_name.clone(),
            h.rule_type.clone(),
            h.severity.clone(),
            h.risk_score.to_string(),
            format_micros(h.timestamp_us),
        ];
        record.extend(h.fields.iter().map(|v| v.clone().unwrap_or_default()));
        record.push(h.matched.join("; "));
        record.push(h.dataset.clone());
        record.push(h.file.clone());
        record.push(h.row.to_string());
        let sequence = |f: fn(SequenceRef) -> String| h.sequence.map(f).unwrap_or_default();
        record.push(sequence(|s| s.id.to_string()));
        record.push(sequence(|s| s.step.to_string()));
        w.write_record(&record)?;
    }
    Ok(())
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

/// The summary built from hits given in the table's order.
#[derive(Debug, Default)]
pub struct Summarizer {
    out: Vec<VersionSummary>,
    hosts: BTreeSet<String>,
    users: BTreeSet<String>,
}

impl Summarizer {
    pub fn add(&mut self, h: &Hit) {
        let same = self
            .out
            .last()
            .is_some_and(|s| s.rule_id == h.rule_id && s.rule_version == h.rule_version);
        if !same {
            self.hosts.clear();
            self.users.clear();
            self.out.push(VersionSummary {
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
        if let Some(s) = self.out.last_mut() {
            s.hits += 1;
            if let Some(host) = h.field("host.name") {
                if !self.hosts.contains(host) {
                    self.hosts.insert(host.to_string());
                }
            }
            if let Some(user) = h.field("user.name").or(h.field("user.id")) {
                if !self.users.contains(user) {
                    self.users.insert(user.to_string());
                }
            }
            s.hosts = self.hosts.len();
            s.users = self.users.len();
            s.first_us = Some(s.first_us.map_or(h.timestamp_us, |f| f.min(h.timestamp_us)));
            s.last_us = Some(s.last_us.map_or(h.timestamp_us, |l| l.max(h.timestamp_us)));
        }
    }

    pub fn finish(self) -> Vec<VersionSummary> {
        self.out
    }
}
