//! The hunt: selected rule versions over datasets, in one parallel pass, into a hit table.
//!
//! A [`Session`] loads the rule packs, picks the versions and reads each dataset's manifest
//! (which gives the mapping, and so the analyzer, and the indices it stands for), once. Each
//! [`Pass`] of it (module `pass`) compiles one [`crate::plan::Plan`] per
//! dataset, prunes parts and row groups that lie outside `--from`/`--to`, and scans every
//! remaining (file, row group) unit on a rayon pool. A unit that fails to decode is reported
//! with its file and row group and the hunt goes on (unless `fail_fast`). [`hunt`] and
//! [`hunt_into`] are a session of one pass.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cond::Cond;
use crate::plan::Role;
use crate::rules::pack::{RuleVersion, SelectionError};
use crate::scan::script::ScriptSummary;
use crate::scan::TimeRange;
use crate::scan::{MatcherError, ScanError};
use crate::sink::spool::Spool;
use crate::sink::{EventRef, Hit, SinkError, Summarizer, VersionSummary};

mod join;
mod pass;
mod session;

pub use session::{select_versions, OpenDataset, Pass, Session};

/// Which versions of each selected rule run.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum VersionSelect {
    Latest,
    #[default]
    All,
    List(BTreeSet<u32>),
}

impl VersionSelect {
    pub fn parse(s: &str) -> Result<VersionSelect, SelectionError> {
        match s {
            "latest" => Ok(VersionSelect::Latest),
            "all" => Ok(VersionSelect::All),
            list => list
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| SelectionError::NotAVersion(v.to_string()))
                })
                .collect::<Result<_, _>>()
                .map(VersionSelect::List),
        }
    }
}

/// What a hunt runs over; the default is every version of the built-in pack over no
/// dataset, with every other option at its usual value.
#[derive(Debug, Clone, Default)]
pub struct HuntOptions {
    /// Rule packs, files or directories; none: the built-in seed pack
    /// ([`crate::rules::pack::BUILTIN`]).
    pub packs: Vec<PathBuf>,
    pub version_lock: Option<PathBuf>,
    pub datasets: Vec<PathBuf>,
    /// Rule ids (a unique prefix is enough), optionally `@version`; empty means every rule.
    pub rules: Vec<String>,
    pub versions: VersionSelect,
    pub range: TimeRange,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Stop at the first file or row group that fails to decode.
    pub fail_fast: bool,
    /// Memory for sorting hits before they spill to disk (0:
    /// [`crate::sink::spool::DEFAULT_BUDGET`]); with EQL sequences, half of it holds the
    /// events of their steps until the join, which spill to disk beyond it.
    pub sort_memory: usize,
}

/// A condition run as a version besides the selection, with the role its hits carry.
#[derive(Debug, Clone)]
pub struct Extra {
    pub rule: RuleVersion,
    pub cond: Cond,
    pub role: Role,
    /// Planned instead of `cond` where the condition depends on the dataset's fields.
    pub mapped: Option<std::sync::Arc<dyn crate::cond::MappedCond>>,
}

/// A file or row group that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanFailure {
    pub dataset: String,
    pub file: String,
    pub row_group: Option<usize>,
    pub message: String,
}

impl ScanFailure {
    /// The failure `e` of `file` of `dataset` (in row group `row_group`, when a unit failed).
    pub fn of(dataset: &str, file: &str, row_group: Option<usize>, e: &ScanError) -> ScanFailure {
        ScanFailure {
            dataset: dataset.to_string(),
            file: file.to_string(),
            row_group: row_group.or(e.row_group),
            message: e.kind.to_string(),
        }
    }
}

impl std::fmt::Display for ScanFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = Path::new(&self.dataset).join(&self.file);
        match self.row_group {
            Some(rg) => write!(f, "{} (row group {rg}): {}", path.display(), self.message),
            None => write!(f, "{}: {}", path.display(), self.message),
        }
    }
}

/// What a hunt found and met.
#[derive(Debug, Clone, Default)]
pub struct HuntReport {
    /// In the hit table's order ([`hunt`] only: [`hunt_into`] hands them out instead).
    pub hits: Vec<Hit>,
    /// How many hits there are.
    pub hit_count: u64,
    /// Times the hits outgrew the memory budget and were spilled to disk.
    pub spilled_runs: usize,
    /// Times the events of sequence steps outgrew the memory budget and were spilled to
    /// disk before the join.
    pub step_runs: usize,
    pub summary: Vec<VersionSummary>,
    /// Versions selected and runnable.
    pub versions: usize,
    /// Versions that will not run or cannot fire somewhere, and why.
    pub warnings: Vec<String>,
    pub failures: Vec<ScanFailure>,
    /// With [`Pass::summarise_scripts`]: the script of each hit event.
    pub scripts: HashMap<EventRef, ScriptSummary>,
    pub units: usize,
    pub units_pruned: usize,
    pub bytes: u64,
    pub rows: u64,
    /// With [`Pass::keep_sequence_steps`]: each sequence version's step events, what a
    /// backtest joins again per execution window.
    pub sequence_steps: Vec<SequenceSteps>,
    /// With [`Pass::keep_group_values`]: every value of the grouping fields of each hit event
    /// of a threshold or new-terms version.
    pub group_values: GroupValues,
}

/// The values of the fields threshold and new-terms versions group by, per hit event.
#[derive(Debug, Clone, Default)]
pub struct GroupValues {
    /// The fields read, in the order each event's values come.
    pub columns: Vec<String>,
    pub by_event: HashMap<EventRef, Arc<[Vec<String>]>>,
}

impl GroupValues {
    /// Every value of `field` on `event` (none where the event has none, or was not read).
    pub fn of(&self, event: &EventRef, field: &str) -> &[String] {
        let Some(i) = self.columns.iter().position(|c| c == field) else {
            return &[];
        };
        self.by_event
            .get(event)
            .and_then(|values| values.get(i))
            .map_or(&[], Vec::as_slice)
    }
}

/// The events the steps of one sequence version matched, keyed and ordered as the join
/// takes them.
#[derive(Debug, Clone)]
pub struct SequenceSteps {
    pub rule_id: String,
    pub version: u32,
    pub spec: crate::sequence::Spec,
    /// Each matched (step, key) with its place in time; `event` indexes `events`.
    pub hits: Vec<crate::sequence::StepHit>,
    pub events: Vec<Hit>,
}

/// Why a hunt stopped.
#[derive(Debug)]
pub enum HuntError {
    /// A rule pack that cannot be read.
    Pack(crate::rules::pack::PackError),
    /// A rule or version asked for that the packs do not have.
    Selection(SelectionError),
    /// A dataset whose manifest cannot be read.
    Dataset {
        dataset: String,
        source: crate::ingest::IngestError,
    },
    /// A plan the scanner cannot build (a text matcher too large).
    Plan(MatcherError),
    Threads {
        threads: usize,
        source: rayon::ThreadPoolBuildError,
    },
    /// A backtest's `--exception` that does not parse as KQL.
    Exception(crate::rules::kql::SyntaxError),
    /// A backtest's ground truth that cannot be read.
    Truth(crate::backtest::truth::TruthError),
    /// An incremental hunt's state that cannot be opened, read or saved.
    State(crate::state::StateError),
    /// `fail_fast` and a unit failed.
    Failed(ScanFailure),
    /// The hits could not be spooled or written.
    Output(SinkError),
    Cancelled,
}

impl HuntError {
    /// Whether the error is the caller's (what was asked for cannot be had), not the
    /// data's or the output's.
    pub fn is_usage(&self) -> bool {
        match self {
            HuntError::State(e) => e.is_usage(),
            HuntError::Pack(_)
            | HuntError::Selection(_)
            | HuntError::Dataset { .. }
            | HuntError::Plan(_)
            | HuntError::Threads { .. }
            | HuntError::Exception(_)
            | HuntError::Truth(_) => true,
            HuntError::Failed(_) | HuntError::Output(_) | HuntError::Cancelled => false,
        }
    }
}

impl std::fmt::Display for HuntError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HuntError::Pack(e) => write!(f, "{e}"),
            HuntError::Selection(e) => write!(f, "{e}"),
            HuntError::Exception(e) => write!(f, "--exception: {e}"),
            HuntError::Truth(e) => write!(f, "{e}"),
            HuntError::State(e) => write!(f, "{e}"),
            HuntError::Dataset { dataset, source } => {
                write!(f, "{dataset} is not a quarry dataset: {source}")
            }
            HuntError::Plan(e) => write!(f, "cannot plan the hunt: {e}"),
            HuntError::Threads { threads, source } => {
                write!(f, "cannot start {threads} threads: {source}")
            }
            HuntError::Failed(e) => write!(f, "{e}"),
            HuntError::Output(e) => write!(f, "cannot write the hits: {e}"),
            HuntError::Cancelled => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for HuntError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HuntError::Pack(e) => Some(e),
            HuntError::Dataset { source, .. } => Some(source),
            HuntError::Threads { source, .. } => Some(source),
            HuntError::Selection(e) => Some(e),
            HuntError::Plan(e) => Some(e),
            HuntError::Exception(e) => Some(e),
            HuntError::Truth(e) => Some(e),
            HuntError::State(e) => Some(e),
            HuntError::Output(e) => Some(e),
            HuntError::Failed(_) | HuntError::Cancelled => None,
        }
    }
}

/// Progress of the scan, called from worker threads.
pub trait HuntProgress: Sync {
    fn start(&self, _bytes: u64, _units: usize) {}
    fn advance(&self, _bytes: u64) {}
}

pub struct NoProgress;
impl HuntProgress for NoProgress {}

/// Runs the hunt of `opts` (one pass of a [`Session`] over every selected version) and
/// returns its hits in memory, in the hit table's order. `cancel` is polled between units.
pub fn hunt(
    opts: &HuntOptions,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
) -> Result<HuntReport, HuntError> {
    Session::open(opts)?.run(&Pass::default(), progress, cancel)
}

/// Runs the hunt of `opts` and hands its hits to `out` in the hit table's order, a batch
/// at a time; hits beyond [`crate::sink::spool::DEFAULT_BUDGET`] of memory (or `opts.sort_memory`) are
/// spilled meanwhile to a temporary directory whose path starts with `spill` (see
/// [`Spool::new`]).
pub fn hunt_into(
    opts: &HuntOptions,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
    spill: &Path,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), SinkError>,
) -> Result<HuntReport, HuntError> {
    Session::open(opts)?.run_into(&Pass::default(), progress, cancel, spill, out)
}

/// Hands the spool's hits to `out` in order, and counts and summarises them in `report`.
pub(crate) fn drain_into(
    spool: Spool,
    report: &mut HuntReport,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), SinkError>,
) -> Result<(), HuntError> {
    report.hit_count = spool.len();
    report.spilled_runs = spool.runs();
    let mut summary = Summarizer::default();
    spool
        .drain(&mut |batch| {
            batch.iter().for_each(|h| summary.add(h));
            out(batch)
        })
        .map_err(HuntError::Output)?;
    report.summary = summary.finish();
    Ok(())
}
