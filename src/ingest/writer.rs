//! Buffers converted events by day and writes them as sorted Parquet parts.
//!
//! [`PartitionWriter`] keeps one columnar buffer (Arrow builders) per day partition. When the
//! buffered data passes the memory budget, the largest buffer is handed to a background
//! thread that sorts it by `@timestamp` and writes it as one Parquet part into the run's
//! staging directory, while the next rows are buffered; at the end every buffer is written.
//! Memory therefore stays near twice the budget whatever the input size, and every file is
//! sorted by time. Parts are only staged here: [`super::dataset`] moves them into the dataset
//! when the run commits.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Builder, Int64Builder, ListArray, ListBuilder, StringArray,
    StringBuilder, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::doc::{Doc, Value};
use super::schema::{self, ColumnKind, TIMESTAMP};
use super::IngestError;

/// Compression codec of the written column chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd(i32),
    Lz4Raw,
    Snappy,
    Uncompressed,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Codec> {
        let lower = s.to_ascii_lowercase();
        Some(match lower.as_str() {
            "zstd" => Codec::Zstd(3),
            "lz4" | "lz4_raw" | "lz4-raw" => Codec::Lz4Raw,
            "snappy" => Codec::Snappy,
            "none" | "uncompressed" => Codec::Uncompressed,
            _ => {
                let level = lower
                    .strip_prefix("zstd")?
                    .trim_start_matches([':', '-', '(']);
                Codec::Zstd(level.trim_end_matches(')').parse().ok()?)
            }
        })
    }

    fn parquet(self) -> Result<Compression, IngestError> {
        Ok(match self {
            Codec::Zstd(level) => Compression::ZSTD(
                ZstdLevel::try_new(level)
                    .map_err(|e| IngestError::Config(format!("zstd level {level}: {e}")))?,
            ),
            Codec::Lz4Raw => Compression::LZ4_RAW,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        })
    }

    pub fn name(self) -> String {
        match self {
            Codec::Zstd(l) => format!("zstd({l})"),
            Codec::Lz4Raw => "lz4_raw".into(),
            Codec::Snappy => "snappy".into(),
            Codec::Uncompressed => "uncompressed".into(),
        }
    }
}

/// How parts are laid out.
#[derive(Debug, Clone)]
pub struct LayoutConfig {
    pub codec: Codec,
    /// Upper bound of a row group's values in memory (see `row_group_ranges`).
    pub row_group_bytes: usize,
    /// Upper bound of a row group's row count.
    pub row_group_rows: usize,
    /// Buffered input (approximate bytes) that triggers writing the largest partition.
    pub memory_budget: usize,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig {
            codec: Codec::Zstd(3),
            row_group_bytes: 8 << 20,
            row_group_rows: 128 * 1024,
            memory_budget: 256 << 20,
        }
    }
}

/// A day partition: the UTC date of `@timestamp`, or none for events whose time is the
/// zero FILETIME (they go to Hive's default partition, which date filters never select).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey(pub Option<i32>);

pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

impl PartitionKey {
    pub fn for_micros(ts: i64, valid: bool) -> PartitionKey {
        PartitionKey(valid.then(|| ts.div_euclid(86_400_000_000) as i32))
    }

    /// `date=YYYY-MM-DD`, the Hive-style directory name.
    pub fn dir_name(self) -> String {
        match self.0 {
            Some(days) => {
                let date = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                    .map(|d| d.date_naive().to_string())
                    .unwrap_or_else(|| NULL_PARTITION.to_string());
                format!("date={date}")
            }
            None => format!("date={NULL_PARTITION}"),
        }
    }
}

/// A part written to staging, waiting for the run to commit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StagedPart {
    /// Path relative to the dataset root once committed (`date=.../part-00001.parquet`).
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_timestamp_us: i64,
    pub max_timestamp_us: i64,
}

/// Coercion problems seen while filling typed columns (e.g. `process.pid: "abc"`).
#[derive(Debug, Default, Clone)]
pub struct CoercionReport {
    pub by_field: BTreeMap<String, u64>,
}

enum ColumnData {
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    List(ListBuilder<StringBuilder>),
}

struct ColumnBuf {
    data: ColumnData,
    declared: bool,
    len: usize,
}

impl ColumnBuf {
    fn new(field: &str, first: &Value) -> ColumnBuf {
        let declared = schema::declared_kind(field);
        let kind = declared.unwrap_or(match first {
            Value::List(_) => ColumnKind::StrList,
            _ => ColumnKind::Str,
        });
        let data = match kind {
            ColumnKind::Int => ColumnData::Int(Int64Builder::new()),
            ColumnKind::Float => ColumnData::Float(Float64Builder::new()),
            ColumnKind::StrList => ColumnData::List(ListBuilder::new(StringBuilder::new())),
            _ => ColumnData::Str(StringBuilder::new()),
        };
        ColumnBuf {
            data,
            declared: declared.is_some(),
            len: 0,
        }
    }

    fn pad_to(&mut self, rows: usize) {
        while self.len < rows {
            match &mut self.data {
                ColumnData::Int(b) => b.append_null(),
                ColumnData::Float(b) => b.append_null(),
                ColumnData::Str(b) => b.append_null(),
                ColumnData::List(b) => b.append_null(),
            }
            self.len += 1;
        }
    }

    /// Turns a string column into a list column (a row that had `"a"` now has `["a"]`).
    fn upgrade_to_list(&mut self) {
        if let ColumnData::Str(b) = &mut self.data {
            let strings = b.finish();
            let mut list = ListBuilder::new(StringBuilder::new());
            for v in strings.iter() {
                match v {
                    Some(s) => {
                        list.values().append_value(s);
                        list.append(true);
                    }
                    None => list.append_null(),
                }
            }
            self.data = ColumnData::List(list);
        }
    }

    /// Appends one value; returns false when it could not be coerced (stored as null).
    fn push(&mut self, value: &Value) -> bool {
        if matches!(value, Value::List(_))
            && matches!(self.data, ColumnData::Str(_))
            && !self.declared
        {
            self.upgrade_to_list();
        }
        self.len += 1;
        match (&mut self.data, value) {
            (ColumnData::Int(b), v) => match v.to_i64() {
                Some(i) => b.append_value(i),
                None => {
                    b.append_null();
                    return false;
                }
            },
            (ColumnData::Float(b), v) => match v.to_f64() {
                Some(f) => b.append_value(f),
                None => {
                    b.append_null();
                    return false;
                }
            },
            (ColumnData::Str(b), v) => match v.text() {
                Some(t) => b.append_value(t),
                None => {
                    b.append_null();
                    return false;
                }
            },
            (ColumnData::List(b), Value::List(items)) => {
                for item in items {
                    if let Some(t) = item.text() {
                        b.values().append_value(t);
                    }
                }
                b.append(true);
            }
            (ColumnData::List(b), v) => {
                if let Some(t) = v.text() {
                    b.values().append_value(t);
                }
                b.append(true);
            }
        }
        true
    }

    fn finish(mut self, rows: usize) -> ArrayRef {
        self.pad_to(rows);
        match self.data {
            ColumnData::Int(mut b) => Arc::new(b.finish()),
            ColumnData::Float(mut b) => Arc::new(b.finish()),
            ColumnData::Str(mut b) => Arc::new(b.finish()),
            ColumnData::List(mut b) => Arc::new(b.finish()),
        }
    }
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 8,
        Value::List(items) => items.iter().map(value_bytes).sum::<usize>() + 8,
        _ => 8,
    }
}

#[derive(Default)]
struct PartitionBuffer {
    timestamps: Vec<i64>,
    columns: HashMap<String, ColumnBuf>,
    bytes: usize,
}

impl PartitionBuffer {
    fn push(&mut self, ts: i64, doc: Doc, coercions: &mut CoercionReport) {
        let row = self.timestamps.len();
        self.timestamps.push(ts);
        for (field, value) in doc.into_fields() {
            if field == TIMESTAMP {
                continue;
            }
            self.bytes += value_bytes(&value) + 16;
            let column = match self.columns.get_mut(&field) {
                Some(c) => c,
                None => self
                    .columns
                    .entry(field.clone())
                    .or_insert_with(|| ColumnBuf::new(&field, &value)),
            };
            column.pad_to(row);
            if !column.push(&value) {
                *coercions.by_field.entry(field).or_default() += 1;
            }
        }
    }

    /// The buffered rows as one batch sorted by `@timestamp` (stable: input order breaks ties).
    fn into_sorted_batch(self) -> Result<RecordBatch, IngestError> {
        let rows = self.timestamps.len();
        // Logs mostly arrive in time order: then no row needs to move.
        let order = match self.timestamps.is_sorted() {
            true => None,
            false => {
                let mut order: Vec<u32> = (0..rows as u32).collect();
                order.sort_by_key(|&i| self.timestamps[i as usize]);
                Some(UInt32Array::from(order))
            }
        };
        let in_order = |array: ArrayRef| -> Result<ArrayRef, IngestError> {
            Ok(match &order {
                Some(indices) => arrow::compute::take(&array, indices, None)?,
                None => array,
            })
        };
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(self.timestamps).with_timezone("UTC"));
        let mut fields = vec![Field::new(TIMESTAMP, ts.data_type().clone(), false)];
        let mut arrays = vec![in_order(ts)?];
        let mut columns: Vec<(String, ColumnBuf)> = self.columns.into_iter().collect();
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, column) in columns {
            let array = column.finish(rows);
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(in_order(array)?);
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }
}

/// Writes converted events into staged, day-partitioned, time-sorted Parquet parts.
///
/// Sorting and encoding a full buffer happens on a background thread while the next rows
/// are buffered; at most one buffer is being written at a time.
pub struct PartitionWriter {
    layout: LayoutConfig,
    buffers: BTreeMap<PartitionKey, PartitionBuffer>,
    buffered: usize,
    next_part: u64,
    encoder: Option<Encoder>,
    pub coercions: CoercionReport,
}

/// The background thread that writes parts, and the way to hand it work.
struct Encoder {
    jobs: std::sync::mpsc::SyncSender<Vec<(String, PartitionBuffer)>>,
    thread: std::thread::JoinHandle<Result<Vec<StagedPart>, IngestError>>,
}

impl PartitionWriter {
    pub fn new(
        staging: PathBuf,
        layout: LayoutConfig,
        first_part: u64,
        metadata: Vec<(String, String)>,
    ) -> PartitionWriter {
        let metadata: Vec<KeyValue> = metadata
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        // A rendezvous channel: handing over buffers waits until the previous ones are written.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Vec<(String, PartitionBuffer)>>(0);
        let part_layout = layout.clone();
        let thread = std::thread::spawn(move || {
            use rayon::prelude::*;
            let mut staged = Vec::new();
            for parts in queue {
                let written: Vec<StagedPart> = parts
                    .into_par_iter()
                    .map(|(rel, buffer)| {
                        let path = staged_path(&staging, &rel);
                        write_part(&path, rel, buffer, &part_layout, &metadata)
                    })
                    .collect::<Result<_, IngestError>>()?;
                staged.extend(written);
            }
            Ok(staged)
        });
        PartitionWriter {
            layout,
            buffers: BTreeMap::new(),
            buffered: 0,
            next_part: first_part,
            encoder: Some(Encoder { jobs, thread }),
            coercions: CoercionReport::default(),
        }
    }

    /// Adds one event; `ts` is its `@timestamp` in microseconds.
    pub fn push(&mut self, key: PartitionKey, ts: i64, doc: Doc) -> Result<(), IngestError> {
        let buffer = self.buffers.entry(key).or_default();
        let before = buffer.bytes;
        buffer.push(ts, doc, &mut self.coercions);
        self.buffered += buffer.bytes - before + 8;
        if self.buffered > self.layout.memory_budget {
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, b)| b.bytes)
                .map(|(k, _)| *k);
            if let Some(k) = largest {
                self.flush_partitions(&[k])?;
            }
        }
        Ok(())
    }

    /// Hands the buffers of `keys` to the encoder, which writes them as parts in parallel.
    fn flush_partitions(&mut self, keys: &[PartitionKey]) -> Result<(), IngestError> {
        let mut parts = Vec::new();
        for key in keys {
            let Some(buffer) = self.buffers.remove(key) else {
                continue;
            };
            self.buffered = self
                .buffered
                .saturating_sub(buffer.bytes + 8 * buffer.timestamps.len());
            if buffer.timestamps.is_empty() {
                continue;
            }
            let rel = format!("{}/part-{:05}.parquet", key.dir_name(), self.next_part);
            self.next_part += 1;
            parts.push((rel, buffer));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let handed_over = match &self.encoder {
            Some(encoder) => encoder.jobs.send(parts).is_ok(),
            None => false,
        };
        if !handed_over {
            // The encoder stopped on an error: collect it.
            self.stop_encoder()?;
            return Err(IngestError::Config("the part writer stopped".into()));
        }
        Ok(())
    }

    fn stop_encoder(&mut self) -> Result<Vec<StagedPart>, IngestError> {
        let Some(Encoder { jobs, thread }) = self.encoder.take() else {
            return Ok(Vec::new());
        };
        drop(jobs);
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Writes every remaining buffer and returns the staged parts (in partition order), the
    /// coercion report and the number the next run's first part must take.
    pub fn finish(mut self) -> Result<(Vec<StagedPart>, CoercionReport, u64), IngestError> {
        // All at once: the sorted copies together take at most what the buffers take.
        let keys: Vec<PartitionKey> = self.buffers.keys().copied().collect();
        self.flush_partitions(&keys)?;
        let mut staged = self.stop_encoder()?;
        staged.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((staged, std::mem::take(&mut self.coercions), self.next_part))
    }
}

impl Drop for PartitionWriter {
    fn drop(&mut self) {
        // An abandoned run: let the encoder finish its part so staging can be removed.
        let _ = self.stop_encoder();
    }
}

/// Sorts one buffer by time and writes it as the Parquet part `path`.
fn write_part(
    path: &Path,
    rel: String,
    buffer: PartitionBuffer,
    layout: &LayoutConfig,
    metadata: &[KeyValue],
) -> Result<StagedPart, IngestError> {
    let batch = buffer.into_sorted_batch()?;
    let bytes = write_parquet(path, &batch, layout, metadata).map_err(|e| match e {
        IngestError::Parquet(source) => IngestError::Part {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    })?;
    let ts = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| IngestError::Config("timestamp column has the wrong type".into()))?;
    Ok(StagedPart {
        path: rel,
        rows: batch.num_rows() as u64,
        bytes,
        min_timestamp_us: ts.value(0),
        max_timestamp_us: ts.value(ts.len() - 1),
    })
}

fn properties(
    schema: &Schema,
    layout: &LayoutConfig,
    metadata: &[KeyValue],
) -> Result<WriterProperties, IngestError> {
    let mut props = WriterProperties::builder()
        .set_compression(layout.codec.parquet()?)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(layout.row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(layout.row_group_bytes.max(1)))
        .set_column_index_truncate_length(Some(64))
        .set_statistics_truncate_length(Some(64))
        .set_dictionary_enabled(true)
        .set_key_value_metadata(Some(metadata.to_vec()))
        .set_created_by(format!("quarry {}", env!("CARGO_PKG_VERSION")));
    for field in schema.fields() {
        if schema::is_big_text(field.name()) && field.data_type() == &DataType::Utf8 {
            let path = ColumnPath::new(vec![field.name().clone()]);
            props = props
                .set_column_statistics_enabled(path.clone(), EnabledStatistics::Chunk)
                .set_column_dictionary_page_size_limit(path, layout.row_group_bytes.max(1));
        }
    }
    Ok(props.build())
}

/// Writes `batch` as one Parquet file. Row groups are cut by [`row_group_ranges`]; every
/// column chunk of every row group is encoded and compressed as its own task on rayon's
/// pool, then the chunks are appended in order (encoding is most of a part's cost, and a
/// run's last part is written while nothing else is left to do).
fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    layout: &LayoutConfig,
    metadata: &[KeyValue],
) -> Result<u64, IngestError> {
    use rayon::prelude::*;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    }
    let file = File::create(path).map_err(|e| IngestError::io(path, e))?;
    let schema = batch.schema();
    let props = properties(schema.as_ref(), layout, metadata)?;
    // The Arrow writer adds the Arrow schema to the file metadata; its lower half encodes.
    let (mut file_writer, factory) =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?.into_serialized_writer()?;
    let groups = row_group_ranges(batch, layout.row_group_rows, layout.row_group_bytes);
    let mut tasks = Vec::new();
    for (index, rows) in groups.iter().enumerate() {
        let slice = batch.slice(rows.start, rows.len());
        let mut writers = factory.create_column_writers(index)?.into_iter();
        for (field, column) in schema.fields().iter().zip(slice.columns()) {
            for leaf in compute_leaves(field, column)? {
                let writer = writers.next().ok_or_else(|| {
                    IngestError::Config(format!("no Parquet column writer for {}", field.name()))
                })?;
                tasks.push((index, writer, leaf));
            }
        }
    }
    let chunks: Vec<(usize, ArrowColumnChunk)> = tasks
        .into_par_iter()
        .map(|(index, mut writer, leaf)| {
            writer.write(&leaf)?;
            Ok((index, writer.close()?))
        })
        .collect::<Result<_, parquet::errors::ParquetError>>()?;
    let mut chunks = chunks.into_iter().peekable();
    for index in 0..groups.len() {
        let mut row_group = file_writer.next_row_group()?;
        while let Some((_, chunk)) = chunks.next_if(|(i, _)| *i == index) {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
    }
    file_writer.close()?;
    Ok(std::fs::metadata(path)
        .map_err(|e| IngestError::io(path, e))?
        .len())
}

/// Consecutive row ranges of `batch`, each of at most `max_rows` rows and at most `max_bytes`
/// of Arrow values (string bytes plus 4 per string, 8 per number; a single larger row still
/// makes a group of its own). Values, not encoded bytes, because that is what a row group
/// takes in memory once a hunt decodes it.
fn row_group_ranges(
    batch: &RecordBatch,
    max_rows: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let rows = batch.num_rows();
    let mut row_bytes = vec![0u64; rows];
    for column in batch.columns() {
        add_value_bytes(column.as_ref(), &mut row_bytes);
    }
    let (max_rows, max_bytes) = (max_rows.max(1), max_bytes.max(1) as u64);
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (row, b) in row_bytes.iter().enumerate() {
        if row > start && (row - start == max_rows || bytes + b > max_bytes) {
            ranges.push(start..row);
            (start, bytes) = (row, 0);
        }
        bytes += b;
    }
    if start < rows {
        ranges.push(start..rows);
    }
    ranges
}

fn add_value_bytes(array: &dyn Array, row_bytes: &mut [u64]) {
    let string_bytes = |strings: &StringArray, from: usize, to: usize| {
        let offsets = strings.value_offsets();
        (offsets[to] - offsets[from]) as u64 + 4 * (to - from) as u64
    };
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>() {
        for (row, b) in row_bytes.iter_mut().enumerate() {
            *b += string_bytes(strings, row, row + 1);
        }
    } else if let Some(lists) = array.as_any().downcast_ref::<ListArray>() {
        let offsets = lists.value_offsets();
        match lists.values().as_any().downcast_ref::<StringArray>() {
            Some(strings) => {
                for (row, b) in row_bytes.iter_mut().enumerate() {
                    let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
                    *b += 4 + string_bytes(strings, from, to);
                }
            }
            None => row_bytes.iter_mut().for_each(|b| *b += 8),
        }
    } else {
        row_bytes.iter_mut().for_each(|b| *b += 8);
    }
}

/// Where a part waits before the commit: under the run's staging directory, with a suffix
/// that no `*.parquet` glob matches.
pub fn staged_path(staging: &Path, rel: &str) -> PathBuf {
    staging.join(format!("{rel}.staged"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_parse() {
        assert_eq!(Codec::parse("zstd"), Some(Codec::Zstd(3)));
        assert_eq!(Codec::parse("zstd:1"), Some(Codec::Zstd(1)));
        assert_eq!(Codec::parse("LZ4_RAW"), Some(Codec::Lz4Raw));
        assert_eq!(Codec::parse("brotli"), None);
    }

    #[test]
    fn partition_directories_are_hive_dates() {
        assert_eq!(
            PartitionKey::for_micros(0, true).dir_name(),
            "date=1970-01-01"
        );
        assert_eq!(
            PartitionKey::for_micros(1_589_456_031_389_000, true).dir_name(),
            "date=2020-05-14"
        );
        assert_eq!(
            PartitionKey::for_micros(0, false).dir_name(),
            "date=__HIVE_DEFAULT_PARTITION__"
        );
    }

    #[test]
    fn row_groups_are_cut_by_rows_and_by_value_bytes() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            "aaaaaa",
            "bb",
            "",
            "c",
            "dddddddddddd",
        ]));
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<
            arrow::datatypes::Int32Type,
            _,
            _,
        >(vec![Some(vec![Some(1)]); 5]));
        let batch = RecordBatch::try_from_iter([("t", text)]).expect("batch");
        // Row bytes (string + 4): 10, 6, 4, 5, 16.
        assert_eq!(row_group_ranges(&batch, 2, 1 << 20), vec![0..2, 2..4, 4..5]);
        assert_eq!(row_group_ranges(&batch, 100, 16), vec![0..2, 2..4, 4..5]);
        assert_eq!(row_group_ranges(&batch, 100, 20), vec![0..3, 3..4, 4..5]);
        // A row above the cap is a group of its own, never an empty group.
        assert_eq!(
            row_group_ranges(&batch, 100, 1),
            (0..5).map(|i| i..i + 1).collect::<Vec<_>>()
        );
        let numbers = RecordBatch::try_from_iter([("l", lists)]).expect("batch");
        assert_eq!(row_group_ranges(&numbers, 100, 24), vec![0..3, 3..5]);
    }

    #[test]
    fn buffer_sorts_rows_and_upgrades_scalars_to_lists() {
        let mut buf = PartitionBuffer::default();
        let mut report = CoercionReport::default();
        let mut a = Doc::new();
        a.set_str("x", "late");
        a.set_str("pid_like", "1");
        let mut b = Doc::new();
        b.set(
            "x",
            Value::List(vec![Value::Str("p".into()), Value::Str("q".into())]),
        );
        b.set_str("process.pid", "not a number");
        buf.push(20, a, &mut report);
        buf.push(10, b, &mut report);
        let batch = buf.into_sorted_batch().expect("batch");
        let schema = batch.schema();
        assert_eq!(schema.field(0).name(), TIMESTAMP);
        let x = schema.index_of("x").expect("x");
        assert!(matches!(schema.field(x).data_type(), DataType::List(_)));
        assert_eq!(report.by_field.get("process.pid"), Some(&1));
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("ts");
        assert_eq!(ts.values().to_vec(), vec![10, 20]);
    }
}
