//! One pass of a session: a plan compiled per dataset against its parts' columns, the
//! (file, row group) units the time range leaves, scanned on a rayon pool, and every hit
//! spooled and handed out in the hit table's order. Parts are opened through the dataset's
//! [`crate::store::Store`] when their first unit is scanned and let go after their last.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::cond::fields::FieldTypes;
use crate::ingest::schema::SCRIPT_TEXT;
use crate::plan::text::Scratch;
use crate::plan::{Columns, Plan, Target};
use crate::rules::grouping::Grouping;
use crate::scan::script::ScriptSummary;
use crate::scan::{Part, RowHit, ScanError, ScanErrorKind, Scanner, TimeRange, UnitHits};
use crate::sink::spool::{self, Spool};
use crate::sink::{EventRef, Hit, SinkError, TRIAGE_FIELDS};
use crate::store::Store;

use super::join::{join_sequences, KeyColumns, StepEvent};
use super::session::{OpenDataset, Pass, Session};
use super::{drain_into, HuntError, HuntProgress, HuntReport, ScanFailure};

/// One dataset ready to scan.
struct Source<'s> {
    // The scanner is set up per dataset, then told which key columns to read.
    dataset: &'s OpenDataset,
    parts: Vec<PartSlot>,
    scanner: Scanner,
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
    fn get(&self, store: &dyn Store) -> Result<Arc<Part>, ScanError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match &*open {
            Some(part) => Ok(Arc::clone(part)),
            None => {
                let part = Arc::new(Part::open(store, &self.rel)?);
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

/// A (dataset, part, row group) to scan.
type Unit = (usize, usize, usize);

/// Runs `pass` of `session`, handing its hits to `out` in order.
pub(super) fn run(
    session: &Session,
    pass: &Pass,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
    spill: &Path,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), SinkError>,
) -> Result<HuntReport, HuntError> {
    let opts = session.options();
    let range = match pass.whole_files {
        true => TimeRange::default(),
        false => opts.range,
    };
    let targets = session.targets(pass);
    let mut report = HuntReport {
        versions: targets.selected,
        warnings: session.warnings().to_vec(),
        ..Default::default()
    };
    let grouped = match pass.keep_group_values {
        true => grouping_fields(&targets.list),
        false => Vec::new(),
    };
    let keys = KeyColumns::of(&targets.sequences, &grouped);
    let mut sources = Vec::new();
    for dataset in session.datasets() {
        let found = open_source(
            dataset,
            &targets.list,
            pass,
            &range,
            opts.fail_fast,
            &mut report,
        )?;
        sources.extend(found.map(|mut source| {
            if !keys.columns.is_empty() {
                source.scanner.read_keys(keys.columns.clone());
            }
            source
        }));
    }
    let units = units(&sources, &range, &mut report);
    progress.start(report.bytes, units.len());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| HuntError::Threads {
            threads: opts.threads,
            source: e,
        })?;
    let budget = match opts.sort_memory {
        0 => spool::DEFAULT_BUDGET,
        n => n,
    };
    // With sequences, the step events waiting for the join take half of the memory.
    let steps_budget = match targets.sequences.is_empty() {
        true => 0,
        false => budget / 2,
    };
    let steps = Spool::new(spill, steps_budget);
    let hits = Spool::new(spill, budget - steps_budget);
    let mut taken = Taken::new(hits, steps, opts.fail_fast);
    taken.keep_group_values = !grouped.is_empty();
    pool.install(|| {
        units
            .par_iter()
            .for_each_init(Scratch::default, |scratch, &unit| {
                if taken.stopped() || cancel.load(Ordering::Relaxed) {
                    return;
                }
                let result = scan_unit(&sources, unit, &range, scratch);
                let (si, pi, rg) = unit;
                progress.advance(sources[si].parts[pi].groups[rg].bytes);
                taken.take(&sources[si], pi, rg, result);
            })
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(HuntError::Cancelled);
    }
    let (mut spool, steps) = taken.finish(&mut report, opts.fail_fast)?;
    report.group_values.columns = keys.columns.clone();
    report.step_runs = steps.runs();
    let keep = pass.keep_sequence_steps;
    let joined = join_sequences(&targets.sequences, &keys, steps, &mut spool, keep);
    report.sequence_steps = joined.map_err(HuntError::Output)?;
    drain_into(spool, &mut report, out)?;
    Ok(report)
}

/// The fields the threshold and new-terms versions among `targets` group by, each once.
fn grouping_fields(targets: &[Target]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets
        .iter()
        .filter(|t| t.role == crate::plan::Role::Version)
    {
        let fields: Vec<&str> = match &t.rule.grouping {
            None => continue,
            Some(Grouping::Threshold(th)) => th
                .fields
                .iter()
                .chain(th.cardinality.iter().map(|c| &c.field))
                .map(String::as_str)
                .collect(),
            Some(Grouping::NewTerms(n)) => n.fields.iter().map(String::as_str).collect(),
        };
        for f in fields {
            if !out.iter().any(|c| c == f) {
                out.push(f.to_string());
            }
        }
    }
    out
}

/// The dataset's parts that `pass` and `range` leave, with their footers read, and the plan
/// compiled against their columns; `None` when the range leaves no part, which is said in
/// `report`, as is each version that cannot fire on the dataset.
fn open_source<'s>(
    dataset: &'s OpenDataset,
    targets: &[Target],
    pass: &Pass,
    range: &TimeRange,
    fail_fast: bool,
    report: &mut HuntReport,
) -> Result<Option<Source<'s>>, HuntError> {
    let label = &dataset.label;
    let mut parts = Vec::new();
    let mut columns = Columns::default();
    // A column is always null when it is null in every part that has it.
    let mut ever_set: BTreeSet<String> = BTreeSet::new();
    let (mut pruned, mut considered) = (0, 0);
    for staged in dataset.manifest.parts() {
        let wanted = |only: &BTreeSet<(String, String)>| {
            only.contains(&(label.clone(), staged.path.clone()))
        };
        if !pass.files.as_ref().is_none_or(wanted) {
            continue;
        }
        considered += 1;
        if !range.overlaps(staged.min_timestamp_us, staged.max_timestamp_us) {
            report.units_pruned += 1;
            pruned += 1;
            continue;
        }
        match Part::open(dataset.store.as_ref(), &staged.path) {
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
            Err(e) => {
                let failure = ScanFailure::of(label, &staged.path, None, &e);
                if fail_fast {
                    return Err(HuntError::Failed(failure));
                }
                report.failures.push(failure);
            }
        }
    }
    if pruned > 0 && pruned == considered {
        // Nothing to say of fields when no part was looked at.
        let m = &dataset.manifest;
        report.warnings.push(format!(
            "{label} has no events in the time range (its events span {} to {})",
            m.min_timestamp.as_deref().unwrap_or("?"),
            m.max_timestamp.as_deref().unwrap_or("?")
        ));
        return Ok(None);
    }
    columns.all_null = columns.names.difference(&ever_set).cloned().collect();
    let types = FieldTypes::new(dataset.analyzer());
    let plan = Plan::compile(targets, &columns, types, &dataset.indices());
    let mut warned = BTreeSet::new();
    for v in &plan.versions {
        if let Some(why) = &v.cannot_fire {
            // A sequence's steps often share the reason: said once.
            if v.step.is_some() && !warned.insert((v.rule.key(), why.clone())) {
                continue;
            }
            report.warnings.push(format!(
                "{} ({}) cannot fire on {label}: {why}",
                v.rule.key(),
                v.rule.name,
            ));
        }
    }
    let mut scanner = Scanner::new(Arc::new(plan), TRIAGE_FIELDS).map_err(HuntError::Plan)?;
    if pass.summarise_scripts {
        scanner.summarise_scripts(SCRIPT_TEXT);
    }
    Ok(Some(Source {
        dataset,
        parts,
        scanner,
    }))
}

/// The units the time range leaves (counted in `report`, with their bytes and rows, and the
/// pruned ones), each part told how many of its units there are.
fn units(sources: &[Source], range: &TimeRange, report: &mut HuntReport) -> Vec<Unit> {
    let mut units = Vec::new();
    for (si, source) in sources.iter().enumerate() {
        if !source.scanner.has_work() {
            continue;
        }
        for (pi, part) in source.parts.iter().enumerate() {
            for (rg, group) in part.groups.iter().enumerate() {
                let keep =
                    range.is_all() || group.time.is_none_or(|(lo, hi)| range.overlaps(lo, hi));
                if keep {
                    part.remaining.fetch_add(1, Ordering::Relaxed);
                    units.push((si, pi, rg));
                    report.bytes += group.bytes;
                    report.rows += group.rows as u64;
                } else {
                    report.units_pruned += 1;
                }
            }
        }
    }
    report.units = units.len();
    units
}

/// Scans one unit. The Parquet reader asserts on some damage its checks miss; such a panic
/// fails this unit, like any decoding error, not the hunt.
fn scan_unit(
    sources: &[Source],
    (si, pi, rg): Unit,
    range: &TimeRange,
    scratch: &mut Scratch,
) -> Result<UnitHits, ScanError> {
    let source = &sources[si];
    let slot = &source.parts[pi];
    let result = slot.get(source.dataset.store.as_ref()).and_then(|part| {
        let scan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            source.scanner.scan(&part, rg, range, scratch)
        }));
        part.release(rg);
        scan.unwrap_or_else(|panic| {
            *scratch = Scratch::default();
            let kind = ScanErrorKind::ReaderPanicked(panic_text(&panic));
            Err(ScanError::at(&part.rel, Some(rg), kind))
        })
    });
    slot.done();
    result
}

/// What the workers hand back, shared between them.
struct Taken {
    stop: AtomicBool,
    fail_fast: bool,
    spool: Mutex<Spool>,
    spool_error: Mutex<Option<SinkError>>,
    failures: Mutex<Vec<ScanFailure>>,
    scripts: Mutex<HashMap<EventRef, ScriptSummary>>,
    /// Events of sequence steps, joined once the scan is over.
    steps: Mutex<Spool<StepEvent>>,
    /// Keep the key columns' values of the hit events of threshold and new-terms versions.
    keep_group_values: bool,
    group_values: Mutex<HashMap<EventRef, Arc<[Vec<String>]>>>,
}

impl Taken {
    fn new(spool: Spool, steps: Spool<StepEvent>, fail_fast: bool) -> Taken {
        Taken {
            stop: AtomicBool::new(false),
            fail_fast,
            spool: Mutex::new(spool),
            spool_error: Mutex::new(None),
            failures: Mutex::new(Vec::new()),
            scripts: Mutex::new(HashMap::new()),
            steps: Mutex::new(steps),
            keep_group_values: false,
            group_values: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a failure stops the pass (the spool's, or any with `fail_fast`).
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes the result of unit (`pi`, `rg`) of `source`.
    fn take(&self, source: &Source, pi: usize, rg: usize, result: Result<UnitHits, ScanError>) {
        let slot = &source.parts[pi];
        let label = &source.dataset.label;
        let unit = match result {
            Ok(unit) => unit,
            Err(e) => {
                if self.fail_fast {
                    self.stop.store(true, Ordering::Relaxed);
                }
                lock(&self.failures).push(ScanFailure::of(label, &slot.rel, Some(rg), &e));
                return;
            }
        };
        if !unit.scripts.is_empty() {
            let mut all = lock(&self.scripts);
            for (row, summary) in unit.scripts {
                let event = EventRef {
                    dataset: label.clone(),
                    file: slot.rel.clone(),
                    row,
                };
                all.insert(event, summary);
            }
        }
        let plan = source.scanner.plan();
        let mut hits: Vec<Hit> = Vec::with_capacity(unit.hits.len());
        let mut steps = Vec::new();
        let mut group_values = Vec::new();
        for h in unit.hits {
            let version = &plan.versions[h.version];
            let step = version.step;
            let keys = Arc::clone(&h.keys);
            if self.keep_group_values
                && version.rule.grouping.is_some()
                && version.role == crate::plan::Role::Version
            {
                let event = EventRef {
                    dataset: label.clone(),
                    file: slot.rel.clone(),
                    row: h.row,
                };
                group_values.push((event, Arc::clone(&keys)));
            }
            let hit = full_hit(plan, label, &slot.rel, h);
            match step {
                None => hits.push(hit),
                Some(of) => steps.push(StepEvent {
                    sequence: of.sequence,
                    role: of.role,
                    hit,
                    keys,
                }),
            }
        }
        if !group_values.is_empty() {
            lock(&self.group_values).extend(group_values);
        }
        let spooled = match steps.is_empty() {
            true => Ok(()),
            false => lock(&self.steps).extend(steps),
        };
        if let Err(e) = spooled.and_then(|()| lock(&self.spool).extend(hits)) {
            self.stop.store(true, Ordering::Relaxed);
            *lock(&self.spool_error) = Some(e);
        }
    }

    /// The spool and the sequence steps' events, once the failures and scripts are in
    /// `report`; the first failure with `fail_fast`, or the spool's.
    fn finish(
        self,
        report: &mut HuntReport,
        fail_fast: bool,
    ) -> Result<(Spool, Spool<StepEvent>), HuntError> {
        if let Some(e) = inner(self.spool_error) {
            return Err(HuntError::Output(e));
        }
        let mut failures: Vec<ScanFailure> = inner(self.failures);
        failures.sort_by(|a, b| {
            (&a.dataset, &a.file, a.row_group).cmp(&(&b.dataset, &b.file, b.row_group))
        });
        if fail_fast {
            if let Some(first) = report.failures.first().or(failures.first()) {
                return Err(HuntError::Failed(first.clone()));
            }
        }
        report.failures.extend(failures);
        report.scripts = inner(self.scripts);
        report.group_values.by_event = inner(self.group_values);
        Ok((inner(self.spool), inner(self.steps)))
    }
}

fn inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
fn full_hit(plan: &Plan, dataset: &str, file: &str, h: RowHit) -> Hit {
    let version = &plan.versions[h.version];
    let rule = &version.rule;
    Hit {
        rule_id: rule.rule_id.clone(),
        rule_version: rule.version,
        role: version.role,
        rule_name: rule.name.clone(),
        rule_type: rule.alert_type().to_string(),
        severity: rule.severity.clone(),
        risk_score: rule.risk_score,
        timestamp_us: h.timestamp_us,
        fields: h.fields,
        matched: h.matched,
        dataset: dataset.to_string(),
        file: file.to_string(),
        row: h.row,
        sequence: None,
    }
}
