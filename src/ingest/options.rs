//! What a conversion is asked to do and what it tells back: the mapping profile, the options,
//! the per-input and whole-run reports, and the progress callbacks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::pipeline;
use super::reader::{BadReason, BadRecord, InputFile};
use super::writer::LayoutConfig;

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

    /// The index or data stream an event of `stream` would have been written to.
    pub fn index_for(self, stream: pipeline::DataStream) -> String {
        match self {
            MappingProfile::WindowsIntegration => format!("logs-{}-default", stream.dataset()),
            MappingProfile::Winlogbeat8 => "winlogbeat-8".into(),
            MappingProfile::Winlogbeat7 => "winlogbeat-7".into(),
        }
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

    pub(super) fn record_bad(&mut self, bad: BadRecord, max_examples: usize) {
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
