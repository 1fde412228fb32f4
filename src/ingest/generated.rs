//! Events that do not come from a file (the generator) written as a dataset run, through the
//! same pipeline, writer and manifest as `convert`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::doc::Doc;
use super::file::add_event;
use super::reader::{BadReason, BadRecord};
use super::shapes::Shape;
use super::writer::PartitionWriter;
use super::{
    dataset, discard_staging, finish_run, new_writer, now_rfc3339, open_run, ConvertOptions,
    ConvertReport, IngestError, InputReport,
};

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
/// run, exactly as [`super::convert`] writes converted files (same layout, metadata and commit). A
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
