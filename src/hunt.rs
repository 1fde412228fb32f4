//! The hunt: selected rule versions over datasets, in one parallel pass, into a hit table.
//!
//! [`hunt`] loads the rule packs and picks the versions, opens each dataset (its manifest
//! gives the mapping, and so the analyzer, and the indices it stands for), compiles one
//! [`Plan`] per dataset, prunes parts and row groups that lie outside `--from`/`--to`, and
//! scans every remaining (file, row group) unit on a rayon pool. A unit that fails to decode
//! is reported with its file and row group and the hunt goes on (unless `fail_fast`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::cond::analyzer::Analyzer;
use crate::cond::fields::FieldTypes;
use crate::cond::Cond;
use crate::ingest::dataset;
use crate::ingest::schema::SCRIPT_TEXT;
use crate::plan::text::Scratch;
use crate::plan::{Columns, Plan, Role, Target};
use crate::rules::pack::{self, LoadOptions, LoadedVersion, RuleVersion, Status};
use crate::scan::script::ScriptSummary;
use crate::scan::{Part, RowHit, Scanner, TimeRange};
use crate::sink::spool::{self, Spool};
use crate::sink::{EventRef, Hit, Summarizer, VersionSummary, TRIAGE_FIELDS};

/// Which versions of each selected rule run.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum VersionSelect {
    Latest,
    #[default]
    All,
    List(BTreeSet<u32>),
}

impl VersionSelect {
    pub fn parse(s: &str) -> Result<VersionSelect, String> {
        match s {
            "latest" => Ok(VersionSelect::Latest),
            "all" => Ok(VersionSelect::All),
            list => list
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("`{v}` is not a version number"))
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
    /// Memory for sorting hits before they spill to disk (0: [`spool::DEFAULT_BUDGET`]).
    pub sort_memory: usize,
    /// Versions run besides the selected ones, in the same pass: a backtest's ground truth
    /// (the query that finds the labelled events) and what-ifs.
    pub extra: Vec<Extra>,
    /// Also summarise the script of every hit event (its head and shape) in the pass, into
    /// [`HuntReport::scripts`]: what a backtest shows and clusters by.
    pub summarise_scripts: bool,
    /// Only these part files, as (dataset as given, path inside it); none: every part.
    /// Incremental hunts ([`crate::state`]) hunt what changed this way.
    pub only_files: Option<BTreeSet<(String, String)>>,
    /// Only these (rule id, version) of the selection; none: all of it.
    pub only_versions: Option<BTreeSet<(String, u32)>>,
}

/// A condition run as a version besides the selection, with the role its hits carry.
#[derive(Debug, Clone)]
pub struct Extra {
    pub rule: RuleVersion,
    pub cond: Cond,
    pub role: Role,
}

/// A file or row group that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanFailure {
    pub dataset: String,
    pub file: String,
    pub row_group: Option<usize>,
    pub message: String,
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
    pub summary: Vec<VersionSummary>,
    /// Versions selected and runnable.
    pub versions: usize,
    /// Versions that will not run or cannot fire somewhere, and why.
    pub warnings: Vec<String>,
    pub failures: Vec<ScanFailure>,
    /// With [`HuntOptions::summarise_scripts`]: the script of each hit event.
    pub scripts: HashMap<EventRef, ScriptSummary>,
    pub units: usize,
    pub units_pruned: usize,
    pub bytes: u64,
    pub rows: u64,
}

#[derive(Debug)]
pub enum HuntError {
    /// Bad usage: a rule pack or dataset that cannot be read, a rule that is not there.
    Input(String),
    /// `fail_fast` and a unit failed.
    Failed(ScanFailure),
    /// The hits could not be spooled or written.
    Output(String),
    Cancelled,
}

impl std::fmt::Display for HuntError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HuntError::Input(m) => f.write_str(m),
            HuntError::Failed(e) => write!(f, "{e}"),
            HuntError::Output(m) => write!(f, "cannot write the hits: {m}"),
            HuntError::Cancelled => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for HuntError {}

/// Progress of the scan, called from worker threads.
pub trait HuntProgress: Sync {
    fn start(&self, _bytes: u64, _units: usize) {}
    fn advance(&self, _bytes: u64) {}
}

pub struct NoProgress;
impl HuntProgress for NoProgress {}

/// The versions a hunt runs, in pack order.
pub fn select_versions<'p>(
    pack: &'p pack::Pack,
    rules: &[String],
    versions: &VersionSelect,
) -> Result<Vec<&'p LoadedVersion>, String> {
    let mut chosen: Vec<&LoadedVersion> = Vec::new();
    let mut add = |v: &'p LoadedVersion| {
        if !chosen.iter().any(|c| std::ptr::eq(*c, v)) {
            chosen.push(v);
        }
    };
    let by_rule = |rule_id: &str| pack.rule(rule_id);
    let filter = |all: Vec<&'p LoadedVersion>| -> Vec<&'p LoadedVersion> {
        match versions {
            VersionSelect::All => all,
            VersionSelect::Latest => all.last().copied().into_iter().collect(),
            VersionSelect::List(wanted) => all
                .into_iter()
                .filter(|v| wanted.contains(&v.rule.version))
                .collect(),
        }
    };
    if rules.is_empty() {
        let ids: BTreeSet<&str> = pack
            .versions
            .iter()
            .map(|v| v.rule.rule_id.as_str())
            .collect();
        for id in ids {
            filter(by_rule(id)).into_iter().for_each(&mut add);
        }
    } else {
        for spec in rules {
            if spec.contains('@') {
                add(pack.find(spec)?);
            } else {
                let latest = pack.find(spec)?;
                filter(by_rule(&latest.rule.rule_id))
                    .into_iter()
                    .for_each(&mut add);
            }
        }
    }
    chosen
        .sort_by(|a, b| (&a.rule.rule_id, a.rule.version).cmp(&(&b.rule.rule_id, b.rule.version)));
    Ok(chosen)
}

/// One dataset opened for hunting.
struct Source {
    label: String,
    /// The dataset's time span, when the time range leaves none of its parts.
    out_of_range: Option<String>,
    root: PathBuf,
    parts: Vec<PartSlot>,
    plan: Plan,
}

/// A row group as its footer describes it.
#[derive(Debug, Clone, Copy)]
struct GroupInfo {
    rows: usize,
    bytes: u64,
    /// `@timestamp` bounds from the statistics.
    time: Option<(i64, i64)>,
}

/// A part of a dataset: what planning read of its footer, and the part itself while some
/// thread scans it. A footer with its page index takes hundreds of KiB in memory, so parts
/// are opened when their first unit is scanned and let go after their last: memory does not
/// grow with the number of files.
struct PartSlot {
    rel: String,
    groups: Vec<GroupInfo>,
    open: Mutex<Option<Arc<Part>>>,
    /// Units of this part not yet scanned.
    remaining: AtomicUsize,
}

impl PartSlot {
    fn new(part: &Part) -> PartSlot {
        PartSlot {
            rel: part.rel.clone(),
            groups: (0..part.row_groups())
                .map(|rg| GroupInfo {
                    rows: part.row_group_rows(rg),
                    bytes: part.row_group_bytes(rg),
                    time: part.time_bounds(rg),
                })
                .collect(),
            open: Mutex::new(None),
            remaining: AtomicUsize::new(0),
        }
    }

    /// The part, opened by the first unit that needs it.
    fn get(&self, root: &Path) -> Result<Arc<Part>, String> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match &*open {
            Some(part) => Ok(Arc::clone(part)),
            None => {
                let part = Arc::new(Part::open(root, &self.rel)?);
                *open = Some(Arc::clone(&part));
                Ok(part)
            }
        }
    }

    /// One unit done: the last one lets the part go.
    fn done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }
}

/// Runs the hunt and returns its hits in memory, in the hit table's order. `cancel` is
/// polled between units.
pub fn hunt(
    opts: &HuntOptions,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
) -> Result<HuntReport, HuntError> {
    let mut hits = Vec::new();
    let spill = std::env::temp_dir().join(".quarry-spool-");
    let mut report = hunt_into(opts, progress, cancel, &spill, &mut |batch| {
        hits.extend_from_slice(batch);
        Ok(())
    })?;
    report.hits = hits;
    Ok(report)
}

/// Runs the hunt and hands its hits to `out` in the hit table's order, a batch at a time;
/// hits beyond [`spool::DEFAULT_BUDGET`] of memory are spilled meanwhile to a temporary
/// directory whose path starts with `spill` (see [`Spool::new`]).
pub fn hunt_into(
    opts: &HuntOptions,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
    spill: &Path,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), String>,
) -> Result<HuntReport, HuntError> {
    let mut report = HuntReport::default();
    let pack = pack::load(
        &opts.packs,
        &LoadOptions {
            version_lock: opts.version_lock.clone(),
        },
    )
    .map_err(|e| HuntError::Input(e.to_string()))?;
    for p in &pack.problems {
        report.warnings.push(format!("rule pack: {p}"));
    }
    let mut selected =
        select_versions(&pack, &opts.rules, &opts.versions).map_err(HuntError::Input)?;
    if let Some(only) = &opts.only_versions {
        selected.retain(|v| only.contains(&(v.rule.rule_id.clone(), v.rule.version)));
    }
    let mut runnable = Vec::new();
    for v in selected.iter().copied() {
        match &v.status {
            Status::Ready(compiled) => runnable.push(Target {
                rule: &v.rule,
                cond: &compiled.cond,
                role: Role::Version,
            }),
            other => report.warnings.push(format!(
                "{} ({}) will not run: {}",
                v.rule.key(),
                v.rule.name,
                other.problem()
            )),
        }
    }
    report.versions = runnable.len();
    runnable.extend(opts.extra.iter().map(|e| Target {
        rule: &e.rule,
        cond: &e.cond,
        role: e.role,
    }));
    let mut sources = Vec::new();
    for root in &opts.datasets {
        let source = open_source(root, &runnable, opts, &mut report)?;
        if let Some(span) = &source.out_of_range {
            // Nothing to say of fields when no part was looked at.
            report.warnings.push(format!(
                "{} has no events in the time range (its events span {span})",
                source.label
            ));
            continue;
        }
        for v in &source.plan.versions {
            if let Some(why) = &v.cannot_fire {
                report.warnings.push(format!(
                    "{} ({}) cannot fire on {}: {why}",
                    v.rule.key(),
                    v.rule.name,
                    source.label
                ));
            }
        }
        sources.push(source);
    }
    let scanners = sources
        .iter()
        .map(|s| {
            let mut scanner = Scanner::new(&s.plan, TRIAGE_FIELDS)?;
            if opts.summarise_scripts {
                scanner.summarise_scripts(SCRIPT_TEXT);
            }
            Ok(scanner)
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(HuntError::Input)?;
    // Units that the time range leaves.
    let mut units = Vec::new();
    for (si, source) in sources.iter().enumerate() {
        if !scanners[si].has_work() {
            continue;
        }
        for (pi, part) in source.parts.iter().enumerate() {
            for (rg, group) in part.groups.iter().enumerate() {
                let keep = opts.range.is_all()
                    || group
                        .time
                        .is_none_or(|(lo, hi)| opts.range.overlaps(lo, hi));
                if keep {
                    part.remaining.fetch_add(1, Ordering::Relaxed);
                    units.push((si, pi, rg));
                } else {
                    report.units_pruned += 1;
                }
            }
        }
    }
    report.units = units.len();
    let unit_bytes = |&(si, pi, rg): &(usize, usize, usize)| sources[si].parts[pi].groups[rg].bytes;
    report.bytes = units.iter().map(unit_bytes).sum();
    report.rows = units
        .iter()
        .map(|&(si, pi, rg)| sources[si].parts[pi].groups[rg].rows as u64)
        .sum();
    progress.start(report.bytes, units.len());
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| HuntError::Input(format!("cannot start {} threads: {e}", opts.threads)))?;
    let spool = Mutex::new(Spool::new(
        spill,
        match opts.sort_memory {
            0 => spool::DEFAULT_BUDGET,
            n => n,
        },
    ));
    let spool_error = Mutex::new(None);
    let scripts = Mutex::new(HashMap::new());
    pool.install(|| {
        units
            .par_iter()
            .for_each_init(Scratch::default, |scratch, &(si, pi, rg)| {
                if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                    return;
                }
                let source = &sources[si];
                let slot = &source.parts[pi];
                let result = slot.get(&source.root).and_then(|part| {
                    // The Parquet reader asserts on some damage its checks miss; such a
                    // panic fails this unit, like any decoding error, not the hunt.
                    let scan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scanners[si].scan(&part, rg, &opts.range, scratch)
                    }));
                    part.release(rg);
                    scan.unwrap_or_else(|panic| {
                        *scratch = Scratch::default();
                        Err(format!("the Parquet reader failed: {}", panic_text(&panic)))
                    })
                });
                slot.done();
                progress.advance(slot.groups[rg].bytes);
                match result {
                    Ok(unit) => {
                        if !unit.scripts.is_empty() {
                            let mut all = scripts.lock().unwrap_or_else(|p| p.into_inner());
                            for (row, summary) in unit.scripts {
                                let event = EventRef {
                                    dataset: source.label.clone(),
                                    file: slot.rel.clone(),
                                    row,
                                };
                                all.insert(event, summary);
                            }
                        }
                        let hits: Vec<Hit> = unit
                            .hits
                            .into_iter()
                            .map(|h| full_hit(source, slot, h))
                            .collect();
                        let mut spool = spool.lock().unwrap_or_else(|p| p.into_inner());
                        if let Err(e) = spool.extend(hits) {
                            stop.store(true, Ordering::Relaxed);
                            *spool_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        }
                    }
                    Err(message) => {
                        if opts.fail_fast {
                            stop.store(true, Ordering::Relaxed);
                        }
                        let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                        f.push(ScanFailure {
                            dataset: source.label.clone(),
                            file: slot.rel.clone(),
                            row_group: Some(rg),
                            message,
                        });
                    }
                }
            })
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(HuntError::Cancelled);
    }
    if let Some(e) = spool_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(HuntError::Output(e));
    }
    let mut unit_failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    unit_failures.sort_by(|a, b| {
        (&a.dataset, &a.file, a.row_group).cmp(&(&b.dataset, &b.file, b.row_group))
    });
    if opts.fail_fast {
        if let Some(first) = report.failures.first().or(unit_failures.first()) {
            return Err(HuntError::Failed(first.clone()));
        }
    }
    report.failures.extend(unit_failures);
    report.scripts = scripts.into_inner().unwrap_or_else(|p| p.into_inner());
    let spool = spool.into_inner().unwrap_or_else(|p| p.into_inner());
    drain_into(spool, &mut report, out)?;
    Ok(report)
}

/// Hands the spool's hits to `out` in order, and counts and summarises them in `report`.
pub(crate) fn drain_into(
    spool: Spool,
    report: &mut HuntReport,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), String>,
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

/// The message a panic carried.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A scan's hit with what the hit table says of its rule and file.
fn full_hit(source: &Source, part: &PartSlot, h: RowHit) -> Hit {
    let version = &source.plan.versions[h.version];
    let rule = &version.rule;
    Hit {
        rule_id: rule.rule_id.clone(),
        rule_version: rule.version,
        role: version.role,
        rule_name: rule.name.clone(),
        severity: rule.severity.clone(),
        risk_score: rule.risk_score,
        timestamp_us: h.timestamp_us,
        fields: h.fields,
        matched: h.matched,
        dataset: source.label.clone(),
        file: part.rel.clone(),
        row: h.row,
    }
}

fn open_source(
    root: &Path,
    versions: &[Target],
    opts: &HuntOptions,
    report: &mut HuntReport,
) -> Result<Source, HuntError> {
    let label = root.display().to_string();
    let manifest = dataset::read_manifest(root)
        .map_err(|e| HuntError::Input(format!("{label} is not a quarry dataset: {e}")))?;
    let analyzer = manifest
        .analyzers
        .get("powershell.file.script_block_text")
        .and_then(|a| Analyzer::parse(a))
        .unwrap_or(Analyzer::Pattern);
    let indices: Vec<String> = match &manifest.index {
        Some(index) => vec![index.clone()],
        None => manifest.indices.keys().cloned().collect(),
    };
    let mut parts = Vec::new();
    let mut columns = Columns::default();
    // A column is always null when it is null in every part that has it.
    let mut ever_set: BTreeSet<String> = BTreeSet::new();
    let mut pruned = 0;
    let mut considered = 0;
    for staged in manifest.parts() {
        if opts
            .only_files
            .as_ref()
            .is_some_and(|only| !only.contains(&(label.clone(), staged.path.clone())))
        {
            continue;
        }
        considered += 1;
        if !opts
            .range
            .overlaps(staged.min_timestamp_us, staged.max_timestamp_us)
        {
            report.units_pruned += 1;
            pruned += 1;
            continue;
        }
        match Part::open(root, &staged.path) {
            Ok(part) => {
                let nulls = part.all_null_columns();
                for name in part.columns() {
                    if !nulls.contains(&name) {
                        ever_set.insert(name.clone());
                    }
                    columns.names.insert(name);
                }
                parts.push(PartSlot::new(&part));
            }
            Err(message) => {
                let failure = ScanFailure {
                    dataset: label.clone(),
                    file: staged.path.clone(),
                    row_group: None,
                    message,
                };
                if opts.fail_fast {
                    return Err(HuntError::Failed(failure));
                }
                report.failures.push(failure);
            }
        }
    }
    columns.all_null = columns.names.difference(&ever_set).cloned().collect();
    let plan = Plan::compile(versions, &columns, FieldTypes::new(analyzer), &indices);
    let out_of_range = (pruned > 0 && pruned == considered).then(|| {
        format!(
            "{} to {}",
            manifest.min_timestamp.as_deref().unwrap_or("?"),
            manifest.max_timestamp.as_deref().unwrap_or("?")
        )
    });
    Ok(Source {
        label,
        out_of_range,
        root: root.to_path_buf(),
        parts,
        plan,
    })
}
