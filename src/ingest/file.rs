//! One input file's records into the partition writer: read, shaped to Winlogbeat, mapped to
//! ECS on every core, then timestamped and flagged in file order. A record that cannot be
//! converted is counted by reason and its first few kept as examples, never fatal.

use std::sync::atomic::{AtomicBool, Ordering};

use super::doc::{Doc, Value};
use super::reader::{self, BadReason, BadRecord, InputFile, Item};
use super::shapes::Shape;
use super::writer::{PartitionKey, PartitionWriter};
use super::{
    parse_timestamp, pipeline, schema, ConvertOptions, ConvertProgress, ConvertReport, IngestError,
    MappingProfile,
};

/// Flag stored in `quarry.flags` for an event whose time is the zero FILETIME.
pub const FLAG_ZERO_FILETIME: &str = "zero_filetime";
pub(super) const ZERO_FILETIME_US: i64 = reader::ZERO_FILETIME_UNIX_SECONDS * 1_000_000;

/// Converts one file's records into the writer; returns (events, bad records).
pub(super) fn convert_file(
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
pub(super) fn add_event(
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
            let stream = pipeline::DataStream::of_doc(&doc);
            if opts.mapping == MappingProfile::WindowsIntegration && !channel.is_empty() {
                doc.set_default("data_stream.type", Value::Str("logs".into()));
                doc.set_default("data_stream.dataset", Value::Str(stream.dataset().into()));
                doc.set_default("data_stream.namespace", Value::Str("default".into()));
            }
            opts.mapping.index_for(stream)
        }
    };
    // Each event names its index, so a version searches only the events its index
    // patterns cover (Elasticsearch's `_index` metadata field).
    doc.set_str(schema::INDEX, index.clone());
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
