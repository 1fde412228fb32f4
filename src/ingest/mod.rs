//! Conversion of Windows logs into a day-partitioned Parquet dataset.
//!
//! [`convert`] is the whole stage: [`reader`] finds the inputs and reads their records,
//! [`shapes`] brings each record into Winlogbeat shape, [`pipeline`] derives the ECS fields
//! the Elastic Windows integration would derive, [`writer`] buffers rows per day and writes
//! time-sorted Parquet parts into staging, and [`dataset`] commits them atomically and keeps
//! the manifest (mapping profile, index, inputs and fingerprints, time range, counts).
//! This module is the driver (find the inputs, open a run, check it fits the dataset, commit);
//! `file` converts one input's records, `generated` takes events from the generator instead
//! of a file, `options` holds what a run is asked and reports, `time` reads and writes event
//! times, and `error` the [`IngestError`] that stops a run.
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
mod error;
mod file;
mod generated;
pub mod json_tree;
mod options;
pub mod parallel;
pub mod pipeline;
pub mod reader;
pub mod schema;
pub mod script_stats;
pub mod shapes;
pub mod strict_json;
mod time;
pub mod writer;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use file::convert_file;
use reader::{InputFile, SkippedFile};
use writer::PartitionWriter;

pub use error::IngestError;
pub use file::FLAG_ZERO_FILETIME;
pub use generated::{ingest_generated, EventSink, GeneratedSource};
pub use options::{
    ConvertOptions, ConvertProgress, ConvertReport, InputReport, MappingProfile, NoProgress,
};
pub use pipeline::{DataStream, FLAG_HOST_ID_SYNTHESISED};
pub use time::{format_micros, format_millis, now_rfc3339, parse_timestamp};
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
pub(super) fn open_run(
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
pub(super) fn discard_staging(staging: &Path) {
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
            skipped: Some(s.why.to_string()),
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
pub(super) fn new_writer(
    ds: &dataset::Dataset,
    opts: &ConvertOptions,
    run: u64,
) -> PartitionWriter {
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
pub(super) fn finish_run(
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
