//! Conversion of Windows logs into a day-partitioned Parquet dataset.
//!
//! [`convert`] is the whole stage: [`reader`] finds the inputs and reads their records,
//! [`shapes`] brings each record into Winlogbeat shape, [`pipeline`] derives the ECS fields
//! the Elastic Windows integration would derive, [`writer`] buffers rows per day and writes
//! time-sorted Parquet parts into staging, and [`dataset`] commits them atomically and keeps
//! the manifest (mapping profile, index, inputs and fingerprints, time range, counts).
//!
//! ```no_run
//! # use quarry::ingest::{convert, ConvertOptions, NoProgress};
//! # use std::sync::atomic::AtomicBool;
//! let report = convert(
//!     &["logs/".into()],
//!     "dataset".as_ref(),
//!     &ConvertOptions::default(),
//!     &mut NoProgress,
//!     &AtomicBool::new(false),
//! )?;
//! println!("{} events", report.events);
//! # Ok::<(), quarry::ingest::IngestError>(())
//! ```

pub mod dataset;
pub mod doc;
pub mod json_tree;
pub mod parallel;
pub mod pipeline;
pub mod reader;
pub mod schema;
pub mod script_stats;
pub mod shapes;
pub mod strict_json;
pub mod writer;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use doc::{Doc, Value};
use reader::{BadReason, BadRecord, InputFile, Item, SkippedFile};
use shapes::Shape;
use writer::{LayoutConfig, PartitionKey, PartitionWriter};

/// Errors that stop a conversion (bad records do not: they are counted in the report).
#[derive(Debug)]
pub enum IngestError {
    /// An input path that is missing or unreadable.
    Input {
        path: PathBuf,
        message: String,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Dataset {
        path: PathBuf,
        message: String,
    },
    Config(String),
    Parquet(parquet::errors::ParquetError),
    /// A Parquet part that could not be written (a full disk, say).
    Part {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    Arrow(arrow::error::ArrowError),
    /// A dataset's object that could not be read.
    Store(crate::store::StoreError),
    /// The run was interrupted; nothing was added to the dataset.
    Cancelled,
}

impl IngestError {
    pub fn io(path: &Path, source: std::io::Error) -> IngestError {
        IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestError::Input { path, message } => {
                write!(f, "input {}: {message}", path.display())
            }
            IngestError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IngestError::Dataset { path, message } => {
                write!(f, "dataset {}: {message}", path.display())
            }
            IngestError::Config(m) => write!(f, "{m}"),
            IngestError::Parquet(e) => write!(f, "parquet: {e}"),
            IngestError::Part { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            IngestError::Arrow(e) => write!(f, "arrow: {e}"),
            IngestError::Store(e) => write!(f, "{e}"),
            IngestError::Cancelled => write!(f, "interrupted; the dataset is unchanged"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IngestError::Io { source, .. } => Some(source),
            IngestError::Parquet(e) | IngestError::Part { source: e, .. } => Some(e),
            IngestError::Arrow(e) => Some(e),
            IngestError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<parquet::errors::ParquetError> for IngestError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        IngestError::Parquet(e)
    }
}

impl From<arrow::error::ArrowError> for IngestError {
    fn from(e: arrow::error::ArrowError) -> Self {
        IngestError::Arrow(e)
    }
}

/// Which Elastic mapping the data stands for; it fixes the analyzer of
/// `powershell.file.script_block_text` (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingProfile {
    /// Elastic Agent's Windows integration (≥ 1.4.0): pattern analyzer, data streams.
    WindowsIntegration,
    /// Winlogbeat 8 index templates: pattern analyzer.
    Winlogbeat8,
    /// Winlogbeat 7.9–7.16 index templates: standard analyzer.
    Winlogbeat7,
}

impl MappingProfile {
    pub fn parse(s: &str) -> Option<MappingProfile> {
        Some(match s {
            "windows-integration" => MappingProfile::WindowsIntegration,
            "winlogbeat-8" => MappingProfile::Winlogbeat8,
            "winlogbeat-7" => MappingProfile::Winlogbeat7,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MappingProfile::WindowsIntegration => "windows-integration",
            MappingProfile::Winlogbeat8 => "winlogbeat-8",
            MappingProfile::Winlogbeat7 => "winlogbeat-7",
        }
    }

    /// Analyzer of `powershell.file.script_block_text` under this mapping.
    pub fn script_block_analyzer(self) -> &'static str {
        match self {
            MappingProfile::Winlogbeat7 => "standard",
            _ => "pattern",
        }
    }

    /// The index or data stream an event of `channel` would have been written to.
    pub fn index_for(self, channel: &str) -> String {
        match self {
            MappingProfile::WindowsIntegration => {
                format!("logs-{}-default", data_stream_dataset(channel))
            }
            MappingProfile::Winlogbeat8 => "winlogbeat-8".into(),
            MappingProfile::Winlogbeat7 => "winlogbeat-7".into(),
        }
    }
}

/// The data stream dataset Elastic Agent's integrations use for a Windows channel.
pub fn data_stream_dataset(channel: &str) -> &'static str {
    match channel {
        pipeline::CHANNEL_PS_OPERATIONAL => "windows.powershell_operational",
        pipeline::CHANNEL_PS_CLASSIC => "windows.powershell",
        "Microsoft-Windows-Sysmon/Operational" => "windows.sysmon_operational",
        "ForwardedEvents" => "windows.forwarded",
        "Security" => "system.security",
        "System" => "system.system",
        "Application" => "system.application",
        _ => "winlog.winlog",
    }
}

/// Options of a conversion run.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub mapping: MappingProfile,
    /// The index name the data stands for; by default derived per event from the profile.
    pub index: Option<String>,
    pub pipeline: pipeline::PipelineOptions,
    pub layout: LayoutConfig,
    /// How many examples of each kind of bad record the report keeps.
    pub max_examples: usize,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            mapping: MappingProfile::WindowsIntegration,
            index: None,
            pipeline: pipeline::PipelineOptions::default(),
            layout: LayoutConfig::default(),
            max_examples: 5,
        }
    }
}

/// What happened to one input file.
#[derive(Debug, Clone)]
pub struct InputReport {
    pub path: PathBuf,
    pub format: &'static str,
    pub bytes: u64,
    pub events: u64,
    pub bad_records: u64,
    /// Why the file was not converted, if it was not.
    pub skipped: Option<String>,
}

/// Everything a conversion run did, for the closing summary.
#[derive(Debug, Clone, Default)]
pub struct ConvertReport {
    pub run: u64,
    pub inputs: Vec<InputReport>,
    pub events: u64,
    /// Events per (channel, event code).
    pub by_channel_code: BTreeMap<(String, String), u64>,
    pub by_shape: BTreeMap<&'static str, u64>,
    pub bad: BTreeMap<BadReason, u64>,
    pub bad_examples: Vec<BadRecord>,
    /// Kept but flagged events (e.g. a zero FILETIME), by flag.
    pub flags: BTreeMap<String, u64>,
    /// Values that could not take their column's type, stored as null, by field.
    pub coercions: BTreeMap<String, u64>,
    pub indices: BTreeMap<String, u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub parts: usize,
    pub min_timestamp_us: Option<i64>,
    pub max_timestamp_us: Option<i64>,
    /// Repairs made when opening the dataset (interrupted earlier runs).
    pub repairs: Vec<String>,
}

impl ConvertReport {
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }

    fn record_bad(&mut self, bad: BadRecord, max_examples: usize) {
        let count = self.bad.entry(bad.reason).or_default();
        *count += 1;
        if *count as usize <= max_examples {
            self.bad_examples.push(bad);
        }
    }
}

/// Receives progress while a conversion runs (the CLI draws a progress bar from it).
pub trait ConvertProgress {
    /// Total input bytes, once inputs are known.
    fn start(&mut self, _total_bytes: u64, _inputs: usize) {}
    /// An input is being read.
    fn input(&mut self, _input: &InputFile) {}
    /// Cumulative input bytes consumed and events converted.
    fn advance(&mut self, _bytes: u64, _events: u64) {}
    /// Writing and committing the dataset.
    fn finishing(&mut self) {}
}

/// A progress receiver that ignores everything.
pub struct NoProgress;
impl ConvertProgress for NoProgress {}

/// Flag stored in `quarry.flags` for an event whose time is the zero FILETIME.
pub const FLAG_ZERO_FILETIME: &str = "zero_filetime";
const ZERO_FILETIME_US: i64 = reader::ZERO_FILETIME_UNIX_SECONDS * 1_000_000;

/// Converts `inputs` (files or directories) into the dataset at `out`, adding to it if it
/// exists. Inputs whose content was converted before are skipped.
pub fn convert(
    inputs: &[PathBuf],
    out: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
) -> Result<ConvertReport, IngestError> {
    let (files, skipped) = reader::discover(inputs)?;
    let (mut ds, mut report) = open_run(out, opts)?;
    report_skipped(&mut report, skipped);
    let staging = ds.staging_dir(report.run);
    let result = convert_into(&mut ds, &files, opts, progress, cancel, &mut report);
    if result.is_err() {
        discard_staging(&staging);
    }
    result.map(|()| report)
}

/// Opens (or creates) the dataset for a new run and starts the run's report.
fn open_run(
    out: &Path,
    opts: &ConvertOptions,
) -> Result<(dataset::Dataset, ConvertReport), IngestError> {
    let mut ds = dataset::Dataset::open(out, fresh_manifest(opts))?;
    check_compatible(&ds.manifest, opts, out)?;
    let report = ConvertReport {
        run: ds.next_run_id(),
        repairs: std::mem::take(&mut ds.repairs),
        ..Default::default()
    };
    Ok((ds, report))
}

/// Removes a failed run's staging directory. Best effort: the next run removes whatever
/// staging is left anyway.
fn discard_staging(staging: &Path) {
    if staging.exists() {
        let _ = std::fs::remove_dir_all(staging);
        if let Some(parent) = staging.parent() {
            // Only succeeds when no other run's staging is there.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn fresh_manifest(opts: &ConvertOptions) -> dataset::Manifest {
    dataset::Manifest {
        format: "quarry-dataset".into(),
        format_version: 1,
        mapping: opts.mapping.name().into(),
        analyzers: BTreeMap::from([(
            "powershell.file.script_block_text".to_string(),
            opts.mapping.script_block_analyzer().to_string(),
        )]),
        host_os: opts.pipeline.host_os,
        index: opts.index.clone(),
        indices: BTreeMap::new(),
        events: 0,
        min_timestamp: None,
        max_timestamp: None,
        next_part: 1,
        runs: Vec::new(),
    }
}

/// A dataset has one mapping: adding data mapped another way would mix analyzers.
fn check_compatible(
    manifest: &dataset::Manifest,
    opts: &ConvertOptions,
    out: &Path,
) -> Result<(), IngestError> {
    if manifest.mapping != opts.mapping.name() {
        return Err(IngestError::Dataset {
            path: out.to_path_buf(),
            message: format!(
                "holds data mapped as {}; cannot add data mapped as {}",
                manifest.mapping,
                opts.mapping.name()
            ),
        });
    }
    if opts.index.is_some() && manifest.index.is_some() && manifest.index != opts.index {
        return Err(IngestError::Dataset {
            path: out.to_path_buf(),
            message: format!(
                "stands for index {}; cannot add data for {}",
                manifest.index.as_deref().unwrap_or_default(),
                opts.index.as_deref().unwrap_or_default()
            ),
        });
    }
    Ok(())
}

fn report_skipped(report: &mut ConvertReport, skipped: Vec<SkippedFile>) {
    for s in skipped {
        report.inputs.push(InputReport {
            bytes: std::fs::metadata(&s.path).map(|m| m.len()).unwrap_or(0),
            path: s.path,
            format: "-",
            events: 0,
            bad_records: 0,
            skipped: Some(s.why),
        });
    }
}

fn convert_into(
    ds: &mut dataset::Dataset,
    files: &[InputFile],
    opts: &ConvertOptions,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
    report: &mut ConvertReport,
) -> Result<(), IngestError> {
    let started = now_rfc3339();
    let mut writer = new_writer(ds, opts, report.run);
    progress.start(files.iter().map(|f| f.bytes).sum(), files.len());
    let mut inputs = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut sizes: HashSet<u64> = HashSet::new();
    let mut done_bytes = 0u64;
    for file in files {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Cancelled);
        }
        progress.input(file);
        // Equal content means equal size: a file of a size not seen before is new for sure,
        // and its fingerprint is taken while it converts instead of before.
        let maybe_seen = ds.has_input_of_size(file.bytes) || sizes.contains(&file.bytes);
        let known = match maybe_seen {
            true => Some(dataset::fingerprint(&file.path)?),
            false => None,
        };
        if let Some(fingerprint) = &known {
            let earlier = ds.has_fingerprint(fingerprint).map(|i| i.run);
            if earlier.is_some() || seen.contains(fingerprint) {
                let why = match earlier {
                    Some(run) => format!("already converted (run {run}, same content)"),
                    None => "same content as another input of this run".to_string(),
                };
                report.inputs.push(InputReport {
                    path: file.path.clone(),
                    format: file.format.name(),
                    bytes: file.bytes,
                    events: 0,
                    bad_records: 0,
                    skipped: Some(why),
                });
                done_bytes += file.bytes;
                continue;
            }
        }
        let (converted, fingerprint) = std::thread::scope(|scope| {
            // The fingerprint, or the thread taking it.
            let hashing = known.ok_or_else(|| scope.spawn(|| dataset::fingerprint(&file.path)));
            let converted = convert_file(
                file,
                opts,
                &mut writer,
                report,
                progress,
                cancel,
                done_bytes,
            );
            let fingerprint = hashing.or_else(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (converted, fingerprint)
        });
        let (events, bad) = converted?;
        let fingerprint = fingerprint?;
        seen.insert(fingerprint.clone());
        sizes.insert(file.bytes);
        done_bytes += file.bytes;
        report.bytes_in += file.bytes;
        report.inputs.push(InputReport {
            path: file.path.clone(),
            format: file.format.name(),
            bytes: file.bytes,
            events,
            bad_records: bad,
            skipped: None,
        });
        inputs.push(dataset::InputRecord {
            path: file.path.display().to_string(),
            fingerprint,
            bytes: file.bytes,
            format: file.format.name().to_string(),
            events,
            bad_records: bad,
            run: report.run,
        });
    }
    progress.finishing();
    finish_run(ds, writer, inputs, report, started)
}

/// The part writer of run `run`, with the dataset's metadata in every part.
fn new_writer(ds: &dataset::Dataset, opts: &ConvertOptions, run: u64) -> PartitionWriter {
    let metadata = vec![
        (
            "quarry.mapping".to_string(),
            opts.mapping.name().to_string(),
        ),
        (
            "quarry.analyzer.powershell.file.script_block_text".to_string(),
            opts.mapping.script_block_analyzer().to_string(),
        ),
        ("quarry.run".to_string(), run.to_string()),
    ];
    // Past every part the manifest lists too: builds up to commit 0b7a8ed recorded a
    // `next_part` that the run's last parts had already taken.
    let after_parts = ds
        .manifest
        .parts()
        .filter_map(|p| part_number(&p.path))
        .max()
        .map_or(1, |n| n + 1);
    PartitionWriter::new(
        ds.staging_dir(run),
        opts.layout.clone(),
        ds.manifest.next_part.max(after_parts),
        metadata,
    )
}

/// `N` of a part path `date=.../part-N.parquet`.
fn part_number(path: &str) -> Option<u64> {
    path.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Writes the last parts and commits the run (nothing is committed without inputs).
fn finish_run(
    ds: &mut dataset::Dataset,
    writer: PartitionWriter,
    inputs: Vec<dataset::InputRecord>,
    report: &mut ConvertReport,
    started: String,
) -> Result<(), IngestError> {
    // After finish: the parts it writes take numbers too.
    let (parts, coercions, next_part) = writer.finish()?;
    report.coercions = coercions.by_field;
    report.parts = parts.len();
    report.bytes_out = parts.iter().map(|p| p.bytes).sum();
    if inputs.is_empty() {
        return Ok(());
    }
    let run = dataset::RunRecord {
        id: report.run,
        started,
        finished: None,
        quarry_version: env!("CARGO_PKG_VERSION").to_string(),
        committed: false,
        events: report.events,
        parts,
        inputs,
    };
    ds.commit(run, report.indices.clone(), next_part)
}

/// Converts one file's records into the writer; returns (events, bad records).
fn convert_file(
    file: &InputFile,
    opts: &ConvertOptions,
    writer: &mut PartitionWriter,
    report: &mut ConvertReport,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
    done_bytes: u64,
) -> Result<(u64, u64), IngestError> {
    let mut events = 0u64;
    let mut bad = 0u64;
    let mut failure: Option<IngestError> = None;
    let mut last_bytes = 0u64;
    let failed = std::cell::Cell::new(false);
    let cancelled = || cancel.load(Ordering::Relaxed) || failed.get();
    let mut emit = |item: Item| {
        if failure.is_some() {
            return;
        }
        match item {
            Item::Doc {
                shape,
                doc,
                location,
            } => match add_event(doc, shape, opts, writer, report) {
                Ok(true) => events += 1,
                Ok(false) => {
                    bad += 1;
                    report.record_bad(
                        BadRecord {
                            reason: BadReason::NoTimestamp,
                            location: format!("{}: {location}", file.path.display()),
                            detail: "@timestamp is missing or not a date".into(),
                        },
                        opts.max_examples,
                    );
                }
                Err(e) => {
                    failure = Some(e);
                    failed.set(true);
                }
            },
            Item::Bad(b) => {
                bad += 1;
                report.record_bad(b, opts.max_examples);
            }
        }
    };
    let mut on_progress = |bytes: u64| last_bytes = bytes;
    let pipeline_options = opts.pipeline;
    let prepare: reader::Prepare =
        std::sync::Arc::new(move |doc: &mut Doc| pipeline::apply(doc, pipeline_options));
    let read_result = reader::read(file, &prepare, &mut on_progress, &cancelled, &mut emit);
    if let Some(e) = failure {
        return Err(e);
    }
    read_result?;
    progress.advance(done_bytes + last_bytes.min(file.bytes), report.events);
    Ok((events, bad))
}

/// Stamps and buffers one mapped event. `Ok(false)` means it had no usable timestamp.
fn add_event(
    mut doc: Doc,
    shape: Shape,
    opts: &ConvertOptions,
    writer: &mut PartitionWriter,
    report: &mut ConvertReport,
) -> Result<bool, IngestError> {
    let Some(ts) = doc.get(schema::TIMESTAMP).and_then(parse_timestamp) else {
        return Ok(false);
    };
    let valid = ts > ZERO_FILETIME_US + 86_400_000_000;
    if !valid {
        doc.append_unique("quarry.flags", Value::Str(FLAG_ZERO_FILETIME.into()));
    }
    if let Some(Value::Str(flag)) = doc.get("quarry.flags").cloned() {
        doc.set("quarry.flags", Value::List(vec![Value::Str(flag)]));
    }
    if let Some(Value::List(flags)) = doc.get("quarry.flags") {
        for f in flags.iter().filter_map(Value::to_text) {
            *report.flags.entry(f).or_default() += 1;
        }
    }
    let channel = doc.get_text("winlog.channel").unwrap_or_default();
    let index = match (&opts.index, doc.get_text("_index")) {
        (Some(index), _) => index.clone(),
        (None, Some(index)) => index,
        (None, None) => {
            if opts.mapping == MappingProfile::WindowsIntegration && !channel.is_empty() {
                doc.set_default("data_stream.type", Value::Str("logs".into()));
                doc.set_default(
                    "data_stream.dataset",
                    Value::Str(data_stream_dataset(&channel).into()),
                );
                doc.set_default("data_stream.namespace", Value::Str("default".into()));
            }
            opts.mapping.index_for(&channel)
        }
    };
    *report.indices.entry(index).or_default() += 1;
    let code = doc.get_text("event.code").unwrap_or_default();
    *report.by_channel_code.entry((channel, code)).or_default() += 1;
    *report.by_shape.entry(shape.name()).or_default() += 1;
    report.events += 1;
    if valid {
        report.min_timestamp_us = Some(report.min_timestamp_us.map_or(ts, |m| m.min(ts)));
        report.max_timestamp_us = Some(report.max_timestamp_us.map_or(ts, |m| m.max(ts)));
    }
    writer.push(PartitionKey::for_micros(ts, valid), ts, doc)?;
    Ok(true)
}

/// A source of events that is not a file (the generator): how the manifest records it.
#[derive(Debug, Clone)]
pub struct GeneratedSource {
    /// What produced the events, e.g. the `quarry gen` command line.
    pub label: String,
    /// Identifies the content: the same fingerprint again is skipped, like a file.
    pub fingerprint: String,
    pub format: &'static str,
}

/// Receives mapped events (the ingest pipeline already applied) for the run being written.
pub struct EventSink<'a> {
    writer: &'a mut PartitionWriter,
    report: &'a mut ConvertReport,
    opts: &'a ConvertOptions,
    pub events: u64,
    /// Input bytes the events stand for (the producer adds them).
    pub bytes: u64,
}

impl EventSink<'_> {
    /// Buffers one mapped event; an event without a usable timestamp is counted as bad.
    pub fn add(&mut self, doc: Doc, shape: Shape) -> Result<(), IngestError> {
        if add_event(doc, shape, self.opts, self.writer, self.report)? {
            self.events += 1;
        } else {
            self.report.record_bad(
                BadRecord {
                    reason: BadReason::NoTimestamp,
                    location: "generated event".into(),
                    detail: "@timestamp is missing or not a date".into(),
                },
                self.opts.max_examples,
            );
        }
        Ok(())
    }
}

/// Writes the events that `produce` hands to its [`EventSink`] into the dataset at `out` as one
/// run, exactly as [`convert`] writes converted files (same layout, metadata and commit). A
/// source whose fingerprint the dataset already holds is skipped.
pub fn ingest_generated(
    out: &Path,
    opts: &ConvertOptions,
    source: GeneratedSource,
    cancel: &AtomicBool,
    produce: &mut dyn FnMut(&mut EventSink<'_>, &AtomicBool) -> Result<(), IngestError>,
) -> Result<ConvertReport, IngestError> {
    let (mut ds, mut report) = open_run(out, opts)?;
    if let Some(earlier) = ds.has_fingerprint(&source.fingerprint) {
        report.inputs.push(InputReport {
            path: PathBuf::from(&source.label),
            format: source.format,
            bytes: 0,
            events: 0,
            bad_records: 0,
            skipped: Some(format!(
                "already generated (run {}, same parameters)",
                earlier.run
            )),
        });
        return Ok(report);
    }
    let staging = ds.staging_dir(report.run);
    let started = now_rfc3339();
    let result = (|| {
        let mut writer = new_writer(&ds, opts, report.run);
        let mut sink = EventSink {
            writer: &mut writer,
            report: &mut report,
            opts,
            events: 0,
            bytes: 0,
        };
        produce(&mut sink, cancel)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Cancelled);
        }
        let (events, bytes) = (sink.events, sink.bytes);
        let bad = report.bad_total();
        report.bytes_in = bytes;
        report.inputs.push(InputReport {
            path: PathBuf::from(&source.label),
            format: source.format,
            bytes,
            events,
            bad_records: bad,
            skipped: None,
        });
        let input = dataset::InputRecord {
            path: source.label.clone(),
            fingerprint: source.fingerprint.clone(),
            bytes,
            format: source.format.to_string(),
            events,
            bad_records: bad,
            run: report.run,
        };
        finish_run(&mut ds, writer, vec![input], &mut report, started)
    })();
    if result.is_err() {
        discard_staging(&staging);
    }
    result.map(|()| report)
}

/// `@timestamp` in microseconds since the Unix epoch: RFC 3339 / ISO 8601 text (any
/// fraction, `Z` or offset, or no zone meaning UTC) or a number of epoch milliseconds, as
/// Elasticsearch's default date format reads it.
pub fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Int(ms) => ms.checked_mul(1000),
        Value::Float(ms) => Some((ms * 1000.0) as i64),
        Value::Str(s) => {
            let s = s.trim();
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_micros());
            }
            for fmt in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.fZ",
            ] {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(t.and_utc().timestamp_micros());
                }
            }
            if let Ok(t) = chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z") {
                return Some(t.timestamp_micros());
            }
            None
        }
        Value::Bool(_) | Value::List(_) => None,
    }
}

/// Microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn format_micros(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_seen_form() {
        let want = 1_589_456_031_389_000;
        for s in [
            "2020-05-14T11:33:51.389Z",
            "2020-05-14T11:33:51.389000000Z",
            "2020-05-14T11:33:51.389+00:00",
            "2020-05-14T13:33:51.389+02:00",
            "2020-05-14 11:33:51.389",
        ] {
            assert_eq!(parse_timestamp(&Value::Str(s.into())), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp(&Value::Int(1_589_456_031_389)), Some(want));
        assert_eq!(parse_timestamp(&Value::Str("yesterday".into())), None);
        assert_eq!(
            parse_timestamp(&Value::Str("2020-05-14T11:33:51.3892662Z".into())),
            Some(1_589_456_031_389_266)
        );
    }

    #[test]
    fn zero_filetime_is_1601() {
        assert_eq!(
            parse_timestamp(&Value::Str("1601-01-01T00:00:00Z".into())),
            Some(ZERO_FILETIME_US)
        );
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
    }
}
