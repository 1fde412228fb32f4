//! Backtests (DESIGN §8): what a rule version's hits would have meant as alerts.
//!
//! Built on the hunt's hits, never on a pass of its own per version. [`diff`] says what each
//! version gained and lost against the one before it; [`schedule`] replays the detection
//! engine's executions over a version's hits: alerts, executions that reached `max_signals`,
//! hits lost to the cap or never searched.

pub mod diff;
pub mod grouped;
pub mod report;
pub mod schedule;
pub mod truth;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::cond::analyzer::Analyzer;
use crate::cond::eval::{self, Document};
use crate::cond::fields::FieldTypes;
use crate::cond::{AndNot, Cond, FieldSel, MappedCond, Pred, Test};
use crate::hunt::{
    Extra, GroupValues, HuntError, HuntOptions, HuntProgress, Pass, SequenceSteps, Session,
};
use crate::ingest::format_micros;
use crate::ingest::schema::SCRIPT_TEXT;
use crate::plan::Role;
use crate::rules::grouping::Grouping;
use crate::rules::kql;
use crate::rules::pack::{Compiled, RuleVersion};
use crate::scan::script::ScriptSummary;
use crate::sink::Hit;

use diff::{EventRef, VersionDiff};
use grouped::{combinations, replay_new_terms, replay_threshold, Fate, GroupDoc};
use schedule::{duration_us, replay, replay_sequences, Replay, Schedule};
pub use truth::TruthSource;
use truth::{read_truth_file, Truth, TruthCounts, TruthFile};

/// The rule id of the ground-truth query run beside the versions.
pub const TRUTH_RULE: &str = "quarry-ground-truth";

/// The value of the truth column that marks a malicious event.
pub const MALICIOUS: &str = "malicious";

/// The timestamp override the hit table carries (as a triage field).
const OVERRIDE_FIELD: &str = "event.ingested";

#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The rule packs, datasets, rules, versions, range and threads of the one hunt pass.
    pub hunt: HuntOptions,
    /// Ground truth; none: hits, alerts and diffs only.
    pub truth: Option<TruthSource>,
    /// Example events per gained or lost list of a version diff.
    pub examples: usize,
    /// A proposed exception (KQL): every version is also run, in the same pass, with
    /// `and not (...)` added to its query.
    pub exception: Option<String>,
}

/// What a version would lose with the proposed exception.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    /// Hits with the exception added.
    pub hits: usize,
    /// Hits the exception removes.
    pub removed: usize,
    /// Of those, false positives (with ground truth).
    pub false_positives_removed: Option<usize>,
    /// And true positives (with ground truth).
    pub true_positives_lost: Option<usize>,
}

/// An example event of a version diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub time: String,
    pub host: Option<String>,
    pub user: Option<String>,
    pub script_block_id: Option<String>,
    pub matched: Vec<String>,
    /// The event's script: its first characters and its shape.
    pub script: Option<ScriptSummary>,
    pub file: String,
    pub row: u64,
}

/// A value many of a version's false positives (or, without ground truth, its hits) share:
/// a triage field's value, or a script shape (see [`crate::scan::script`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub field: String,
    /// The value, or for a script cluster the shape (16 hex digits).
    pub value: String,
    pub hits: usize,
    /// The exception that would remove them, as KQL (try it with `--exception`). For a
    /// script cluster: a phrase of the first script's head found in the heads of its other
    /// scripts too (checked on up to [`PHRASE_CHECKS`] of them); none when no such phrase
    /// without digits was found.
    pub exception: Option<String>,
    /// For a script cluster, the head of its first script.
    pub example: Option<String>,
}

/// Alerts on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub alerts: usize,
}

/// Fields clusters are made on (besides the script shape), and how many clusters each gives.
const CLUSTER_FIELDS: &[&str] = &["host.name", "user.name", "user.id", "file.path"];
const CLUSTERS_PER_FIELD: usize = 3;

/// Scripts of a cluster a suggested phrase is checked against.
pub const PHRASE_CHECKS: usize = 50;

/// The most tokens a suggested phrase has, and the fewest (unless the script is shorter).
const PHRASE_TOKENS: usize = 6;
const PHRASE_MIN_TOKENS: usize = 3;

/// One row of a rule's table: a version's hits, alerts and (with labels) accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    pub version: u32,
    /// `query`, `eql`, `threshold`, `new_terms`: what an alert is.
    pub rule_type: String,
    pub query_changed: bool,
    pub hits: usize,
    /// Alerted events; for a sequence version, sequences; for a threshold version, groups
    /// that reached the threshold; for a new-terms version, new terms.
    pub alerts: usize,
    pub executions: u64,
    /// Executions that reached `max_signals` with events left in their window.
    pub capped_executions: u64,
    /// Hits no execution alerted because of the cap.
    pub dropped_by_cap: usize,
    /// Hits no execution's window covered.
    pub not_searched: usize,
    /// Threshold and new-terms versions: hits searched but in no alert, their group below
    /// the threshold or their terms not new (none for other types).
    pub quiet: Option<usize>,
    pub hosts: usize,
    pub users: usize,
    pub first_hit: Option<String>,
    pub last_hit: Option<String>,
    /// Against the previous version of the rule.
    pub gained: usize,
    pub lost: usize,
    pub gained_examples: Vec<Example>,
    pub lost_examples: Vec<Example>,
    pub truth: Option<TruthCounts>,
    /// The noisiest values of the cluster fields among false positives (among all hits
    /// without ground truth), most hits first.
    pub clusters: Vec<Cluster>,
    /// Replayed alerts per UTC day of the alerted events, days without alerts left out.
    pub alerts_per_day: Vec<DayCount>,
    /// With `--exception`.
    pub what_if: Option<WhatIf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    pub rule_id: String,
    pub name: String,
    pub versions: Vec<VersionRow>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BacktestReport {
    pub rules: Vec<RuleReport>,
    /// The replayed span: `--from`/`--to`, else the datasets' first and last events.
    pub start: Option<String>,
    pub end: Option<String>,
    pub days: f64,
    /// Events the truth column marks malicious, or the distinct malicious references of a
    /// truth file (none without ground truth, or with incident windows).
    pub labelled_malicious: Option<usize>,
    /// The columns a truth file of event references names events by.
    pub labelled_by: Option<Vec<String>>,
    /// Incident windows read.
    pub incidents: Option<usize>,
    pub warnings: Vec<String>,
    pub failures: Vec<String>,
    /// Row groups and rows the one hunt pass read.
    pub units: usize,
    pub rows: u64,
}

impl BacktestReport {
    /// What the ground truth was, in a sentence.
    pub fn ground_truth(&self) -> String {
        match (self.labelled_malicious, self.incidents) {
            (Some(n), _) => format!(
                "Ground truth: {n} events labelled malicious{}.",
                self.labelled_by
                    .as_ref()
                    .map_or(String::new(), |k| format!(" (by {})", k.join(", ")))
            ),
            (_, Some(n)) => format!(
                "Ground truth: {n} incident windows; false negatives and recall count incidents."
            ),
            _ => "No ground truth: alerts and clusters only.".to_string(),
        }
    }
}

/// Runs the backtest: one hunt pass over every selected version (and the ground-truth
/// query and the what-ifs), then the per-version tables, diffs and schedule replays from
/// its hits.
pub fn run(
    opts: &BacktestOptions,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
) -> Result<BacktestReport, HuntError> {
    let session = Session::open(&opts.hunt)?;
    let ready: Vec<(&RuleVersion, &Compiled)> = session.ready().collect();
    let versions: Vec<&RuleVersion> = ready.iter().map(|(rule, _)| *rule).collect();
    let sequence_versions: BTreeSet<(String, u32)> = ready
        .iter()
        .filter(|(_, c)| c.sequence.is_some())
        .map(|(rule, _)| (rule.rule_id.clone(), rule.version))
        .collect();
    let (truth_file, truth_problems) = match &opts.truth {
        Some(TruthSource::File(path)) => {
            let (file, problems) = read_truth_file(path).map_err(HuntError::Truth)?;
            (Some(file), problems)
        }
        _ => (None, Vec::new()),
    };
    let pass = Pass {
        extra: extra_runs(opts, &ready)?,
        summarise_scripts: true,
        keep_sequence_steps: true,
        keep_group_values: true,
        ..Default::default()
    };
    let mut found = session.run(&pass, progress, cancel)?;
    let steps = std::mem::take(&mut found.sequence_steps);
    let sequences: HashMap<(String, u32), &SequenceSteps> = steps
        .iter()
        .map(|s| ((s.rule_id.clone(), s.version), s))
        .collect();
    let Datasets {
        start,
        end,
        analyzers,
    } = datasets(&session);
    let days = ((end - start) as f64 / 86_400e6).max(1.0 / 24.0);
    let mut roles: HashMap<Role, Vec<Hit>> = HashMap::new();
    for h in found.hits {
        roles.entry(h.role).or_default().push(h);
    }
    let mut take = |role| roles.remove(&role).unwrap_or_default();
    let (hits, what_if_hits, truth_hits) = (
        take(Role::Version),
        take(Role::WhatIf),
        take(Role::GroundTruth),
    );
    let mut warnings: Vec<String> = found.warnings.into_iter().chain(truth_problems).collect();
    let truth = ground_truth(opts, truth_file, &truth_hits, &mut warnings);
    let mut report = BacktestReport {
        start: Some(format_micros(start)),
        end: Some(format_micros(end)),
        days,
        warnings,
        failures: found.failures.iter().map(ToString::to_string).collect(),
        units: found.units,
        rows: found.rows,
        ..Default::default()
    };
    report.describe_truth(truth.as_ref());
    let context = Context {
        start,
        end,
        days,
        truth: truth.as_ref(),
        scripts: &found.scripts,
        analyzers: &analyzers,
        sequences: &sequences,
        sequence_versions: &sequence_versions,
        group_values: &found.group_values,
    };
    if session.options().range.from_us.is_some() && versions.iter().any(|r| r.grouping.is_some()) {
        report.warnings.push(
            "threshold and new_terms versions are replayed on events from --from on: the \
             signal history and new-terms history before it are not read"
                .to_string(),
        );
    }
    let what_ifs = opts
        .exception
        .is_some()
        .then(|| by_version_of(&what_if_hits));
    report.rules = rule_reports(
        &versions,
        &hits,
        what_ifs.as_ref(),
        &context,
        opts,
        &mut report.warnings,
    );
    Ok(report)
}

/// The conditions that ride along the backtest's pass: the ground-truth query (with a truth
/// column), and each version `and not` the exception (with one).
fn extra_runs(
    opts: &BacktestOptions,
    ready: &[(&RuleVersion, &Compiled)],
) -> Result<Vec<Extra>, HuntError> {
    let mut extra = Vec::new();
    if let Some(TruthSource::Column(column)) = &opts.truth {
        extra.push(truth_run(column));
    }
    if let Some(exception) = &opts.exception {
        let exception = kql::parse(exception).map_err(HuntError::Exception)?;
        let exception = kql::lower(&exception);
        // A sequence has no one condition to add an exception to: no what-if.
        let singles = ready.iter().filter(|(_, c)| c.sequence.is_none());
        extra.extend(singles.map(|(rule, compiled)| Extra {
            rule: (*rule).clone(),
            cond: compiled.cond.clone().and_not(exception.clone()),
            role: Role::WhatIf,
            mapped: compiled.mapped.as_ref().map(|base| {
                let what_if = AndNot {
                    base: std::sync::Arc::clone(base),
                    exception: exception.clone(),
                };
                std::sync::Arc::new(what_if) as std::sync::Arc<dyn MappedCond>
            }),
        }));
    }
    Ok(extra)
}

/// The ground truth: the events the truth query found, or the truth file's; labelled events
/// in datasets not hunted are warned of.
fn ground_truth(
    opts: &BacktestOptions,
    file: Option<TruthFile>,
    truth_hits: &[Hit],
    warnings: &mut Vec<String>,
) -> Option<Truth> {
    match (&opts.truth, file) {
        (Some(TruthSource::Column(_)), _) => {
            Some(Truth::Column(truth_hits.iter().map(EventRef::of).collect()))
        }
        (_, Some(TruthFile::Incidents(all))) => Some(Truth::Incidents(all)),
        (_, Some(TruthFile::Events(labels))) => {
            let hunted: Vec<String> = opts
                .hunt
                .datasets
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            for (dataset, n) in labels.outside(&hunted) {
                warnings.push(format!(
                    "{n} labelled events are in dataset `{dataset}`, which is not hunted"
                ));
            }
            Some(Truth::Events(labels))
        }
        _ => None,
    }
}

impl BacktestReport {
    /// Says what the ground truth holds.
    fn describe_truth(&mut self, truth: Option<&Truth>) {
        self.labelled_malicious = match truth {
            Some(Truth::Column(bad)) => Some(bad.len()),
            Some(Truth::Events(labels)) => Some(labels.len()),
            _ => None,
        };
        self.labelled_by = match truth {
            Some(Truth::Events(labels)) => Some(labels.key_columns.clone()),
            _ => None,
        };
        self.incidents = match truth {
            Some(Truth::Incidents(all)) => Some(all.len()),
            _ => None,
        };
    }
}

/// Each rule's table: a row per version, against its previous version and (with an
/// exception) its what-if twin's hits.
fn rule_reports(
    versions: &[&RuleVersion],
    hits: &[Hit],
    what_ifs: Option<&HashMap<(String, u32), Vec<&Hit>>>,
    context: &Context,
    opts: &BacktestOptions,
    warnings: &mut Vec<String>,
) -> Vec<RuleReport> {
    let runs = diff::query_changes(versions);
    let diffs = diff::diffs(hits, &runs, opts.examples);
    let by_version = by_version_of(hits);
    let mut rules: Vec<RuleReport> = Vec::new();
    for (rule, d) in versions.iter().zip(&diffs) {
        let key = (rule.rule_id.clone(), rule.version);
        let own = by_version.get(&key).map_or(&[][..], Vec::as_slice);
        let mut row = version_row(rule, d, own, context, warnings);
        if let Some(twins) = what_ifs.filter(|_| !context.sequence_versions.contains(&key)) {
            let kept = twins.get(&key).map_or(&[][..], Vec::as_slice);
            row.what_if = Some(what_if(own, kept, context.truth));
        }
        match rules.last_mut() {
            Some(r) if r.rule_id == rule.rule_id => r.versions.push(row),
            _ => rules.push(RuleReport {
                rule_id: rule.rule_id.clone(),
                name: rule.name.clone(),
                versions: vec![row],
            }),
        }
    }
    rules
}

/// The query that finds the labelled events, run as one more version.
fn truth_run(column: &str) -> Extra {
    let rule = RuleVersion {
        rule_id: TRUTH_RULE.into(),
        version: 1,
        name: format!("ground truth ({column}: {MALICIOUS})"),
        rule_type: "query".into(),
        language: "kuery".into(),
        query: format!("{column}: {MALICIOUS}"),
        filters: serde_json::Value::Array(Vec::new()),
        index: vec!["*".into()],
        interval: "5m".into(),
        from: "now-6m".into(),
        max_signals: 100,
        timestamp_override: None,
        severity: "low".into(),
        risk_score: 0.0,
        grouping: None,
        source: "quarry backtest".into(),
    };
    let cond = Cond::Pred(Pred {
        field: FieldSel::Name(column.to_string()),
        test: Test::Match {
            text: MALICIOUS.to_string(),
            phrase: false,
        },
        shown: format!(": {MALICIOUS}"),
    });
    Extra {
        rule,
        cond,
        role: Role::GroundTruth,
        mapped: None,
    }
}

/// Hits grouped by (rule id, version).
fn by_version_of(hits: &[Hit]) -> HashMap<(String, u32), Vec<&Hit>> {
    let mut out: HashMap<(String, u32), Vec<&Hit>> = HashMap::new();
    for h in hits {
        out.entry((h.rule_id.clone(), h.rule_version))
            .or_default()
            .push(h);
    }
    out
}

/// What the exception takes from `own`, the hits of a version: `kept` are the hits of its
/// what-if twin.
fn what_if(own: &[&Hit], kept: &[&Hit], truth: Option<&Truth>) -> WhatIf {
    let kept: BTreeSet<EventRef> = kept.iter().map(|h| EventRef::of(h)).collect();
    let removed: Vec<&&Hit> = own
        .iter()
        .filter(|h| !kept.contains(&EventRef::of(h)))
        .collect();
    let tp_lost = truth.map(|t| removed.iter().filter(|h| t.is_true(h)).count());
    WhatIf {
        hits: kept.len(),
        removed: removed.len(),
        false_positives_removed: tp_lost.map(|lost| removed.len() - lost),
        true_positives_lost: tp_lost,
    }
}

/// What a backtest needs of the datasets besides the hunt's hits.
struct Datasets {
    /// `--from`/`--to`, else the first and last event of the datasets' parts.
    start: i64,
    end: i64,
    /// The analyzer of each dataset's script text, by dataset as hits name it.
    analyzers: HashMap<String, Analyzer>,
}

fn datasets(session: &Session) -> Datasets {
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    let mut analyzers = HashMap::new();
    for dataset in session.datasets() {
        for p in dataset.manifest.parts() {
            lo = lo.min(p.min_timestamp_us);
            hi = hi.max(p.max_timestamp_us);
        }
        analyzers.insert(dataset.label.clone(), dataset.analyzer());
    }
    let range = session.options().range;
    let start = range.from_us.unwrap_or(lo);
    let end = range.to_us.unwrap_or(hi);
    let (start, end) = if start <= end { (start, end) } else { (0, 0) };
    Datasets {
        start,
        end,
        analyzers,
    }
}

/// What every version's row is made against.
struct Context<'a> {
    start: i64,
    end: i64,
    days: f64,
    truth: Option<&'a Truth>,
    scripts: &'a HashMap<EventRef, ScriptSummary>,
    analyzers: &'a HashMap<String, Analyzer>,
    /// The step events of each sequence version, joined again per execution.
    sequences: &'a HashMap<(String, u32), &'a SequenceSteps>,
    /// Every sequence version (with step events or not): no what-if for them.
    sequence_versions: &'a BTreeSet<(String, u32)>,
    /// The grouping field values of the hits of threshold and new-terms versions.
    group_values: &'a GroupValues,
}

/// The time a rule's executions search a hit by: its `timestamp_override` when the hit has
/// it, else `@timestamp` (as the detection engine falls back).
fn search_time(rule: &RuleVersion, hit: &Hit) -> i64 {
    rule.timestamp_override
        .as_deref()
        .filter(|f| *f == OVERRIDE_FIELD)
        .and_then(|f| hit.field(f))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
        .map_or(hit.timestamp_us, |t| t.timestamp_micros())
}

/// A sequence version's replay, in the terms of a version row: alerts are sequences.
fn sequence_replay(
    rule: &RuleVersion,
    steps: &SequenceSteps,
    schedule: &Schedule,
    cx: &Context,
) -> (Replay, Vec<DayCount>) {
    let times: Vec<i64> = steps.events.iter().map(|h| search_time(rule, h)).collect();
    let r = replay_sequences(&steps.spec, &steps.hits, &times, cx.start, cx.end, schedule);
    let per_day = per_day(r.alerted_first.iter().copied());
    let replay = Replay {
        alerted_at: Vec::new(),
        alerts: r.alerts,
        executions: r.executions,
        capped_executions: r.capped_executions,
        dropped: r.dropped,
        uncovered: r.uncovered,
    };
    (replay, per_day)
}

/// A version's schedule replay, in the terms of a version row.
struct Replayed {
    replay: Replay,
    /// Alerts per day where alerts are not the alerted hits (sequences, groups).
    days: Option<Vec<DayCount>>,
    quiet: Option<usize>,
}

/// Replays a version's executions as its type runs them; none (with a warning) when its
/// schedule or its new-terms history does not read.
fn replay_version(
    rule: &RuleVersion,
    own: &[&Hit],
    cx: &Context,
    warnings: &mut Vec<String>,
) -> Option<Replayed> {
    let schedule = match Schedule::of(&rule.interval, &rule.from, rule.max_signals) {
        Ok(s) => Schedule {
            newest_first: rule.language == "eql",
            ..s
        },
        Err(e) => {
            warnings.push(format!("{}: no schedule replay: {e}", rule.key()));
            return None;
        }
    };
    if rule
        .timestamp_override
        .as_deref()
        .is_some_and(|f| f != OVERRIDE_FIELD)
    {
        warnings.push(format!(
            "{}: replayed on @timestamp (quarry carries only {OVERRIDE_FIELD} as a timestamp override)",
            rule.key()
        ));
    }
    if let Some(grouping) = &rule.grouping {
        return grouped_replay(rule, grouping, own, &schedule, cx)
            .map_err(|e| warnings.push(format!("{}: no schedule replay: {e}", rule.key())))
            .ok();
    }
    let key = (rule.rule_id.clone(), rule.version);
    Some(match cx.sequences.get(&key) {
        Some(steps) => {
            let (replay, days) = sequence_replay(rule, steps, &schedule, cx);
            Replayed {
                replay,
                days: Some(days),
                quiet: None,
            }
        }
        None => {
            let times: Vec<i64> = own.iter().map(|h| search_time(rule, h)).collect();
            Replayed {
                replay: replay(&times, cx.start, cx.end, &schedule),
                days: None,
                quiet: None,
            }
        }
    })
}

/// A threshold or new-terms version's replay: alerts are groups, each hit grouped by the
/// values the pass kept of its grouping fields.
fn grouped_replay(
    rule: &RuleVersion,
    grouping: &Grouping,
    own: &[&Hit],
    schedule: &Schedule,
    cx: &Context,
) -> Result<Replayed, String> {
    let (fields, distinct) = match grouping {
        Grouping::Threshold(t) => (&t.fields, t.cardinality.as_ref().map(|c| c.field.as_str())),
        Grouping::NewTerms(n) => (&n.fields, None),
    };
    let docs: Vec<GroupDoc> = own
        .iter()
        .map(|h| {
            let event = EventRef::of(h);
            let values: Vec<&[String]> = fields
                .iter()
                .map(|f| cx.group_values.of(&event, f))
                .collect();
            GroupDoc {
                time: search_time(rule, h),
                groups: combinations(&values),
                distinct: distinct
                    .map_or_else(Vec::new, |f| cx.group_values.of(&event, f).to_vec()),
            }
        })
        .collect();
    let r = match grouping {
        Grouping::Threshold(t) => {
            let cardinality = t.cardinality.as_ref().map(|c| c.value);
            replay_threshold(&docs, t.value, cardinality, cx.start, cx.end, schedule)
        }
        Grouping::NewTerms(n) => {
            let history = n.history_window_start.trim();
            let history_us = history
                .strip_prefix("now-")
                .and_then(duration_us)
                .filter(|&h| h > schedule.lookback_us)
                .ok_or_else(|| {
                    format!(
                        "history_window_start `{history}` is not `now-` and a duration longer than the lookback"
                    )
                })?;
            replay_new_terms(&docs, history_us, cx.start, cx.end, schedule)
        }
    };
    Ok(Replayed {
        replay: Replay {
            alerted_at: Vec::new(),
            alerts: r.alert_times.len(),
            executions: r.executions,
            capped_executions: r.capped_executions,
            dropped: r.count(Fate::Capped),
            uncovered: r.count(Fate::Uncovered),
        },
        days: Some(per_day(r.alert_times.iter().copied())),
        quiet: Some(r.count(Fate::Quiet)),
    })
}

fn version_row(
    rule: &RuleVersion,
    d: &VersionDiff,
    own: &[&Hit],
    cx: &Context,
    warnings: &mut Vec<String>,
) -> VersionRow {
    let replayed = replay_version(rule, own, cx, warnings);
    let hosts: BTreeSet<&str> = own.iter().filter_map(|h| h.field("host.name")).collect();
    let users: BTreeSet<&str> = own
        .iter()
        .filter_map(|h| h.field("user.name").or(h.field("user.id")))
        .collect();
    let noise: Vec<&Hit> = own
        .iter()
        .copied()
        .filter(|h| cx.truth.is_none_or(|t| !t.is_true(h)))
        .collect();
    let clusters = clusters(&noise, cx);
    let truth = cx.truth.map(|t| t.counts(own, cx.days));
    VersionRow {
        version: rule.version,
        rule_type: rule.alert_type().to_string(),
        query_changed: d.query_changed,
        hits: own.len(),
        alerts: replayed.as_ref().map_or(0, |r| r.replay.alerts),
        executions: replayed.as_ref().map_or(0, |r| r.replay.executions),
        capped_executions: replayed.as_ref().map_or(0, |r| r.replay.capped_executions),
        dropped_by_cap: replayed.as_ref().map_or(0, |r| r.replay.dropped),
        not_searched: replayed.as_ref().map_or(0, |r| r.replay.uncovered),
        quiet: replayed.as_ref().and_then(|r| r.quiet),
        hosts: hosts.len(),
        users: users.len(),
        first_hit: own.iter().map(|h| h.timestamp_us).min().map(format_micros),
        last_hit: own.iter().map(|h| h.timestamp_us).max().map(format_micros),
        gained: d.gained,
        lost: d.lost,
        gained_examples: d.gained_examples.iter().map(|h| example(h, cx)).collect(),
        lost_examples: d.lost_examples.iter().map(|h| example(h, cx)).collect(),
        truth,
        clusters,
        alerts_per_day: match replayed {
            Some(Replayed {
                days: Some(days), ..
            }) => days,
            Some(r) => alerts_per_day(own, &r.replay.alerted_at),
            None => Vec::new(),
        },
        what_if: None,
    }
}

/// Alerted hits of `own` counted by the UTC day of their event.
fn alerts_per_day(own: &[&Hit], alerted_at: &[Option<i64>]) -> Vec<DayCount> {
    let alerted = own.iter().zip(alerted_at).filter(|(_, at)| at.is_some());
    per_day(alerted.map(|(h, _)| h.timestamp_us))
}

/// Alerts counted by the UTC day of the times given, one time per alert.
fn per_day(times: impl Iterator<Item = i64>) -> Vec<DayCount> {
    let mut days: BTreeMap<i64, usize> = BTreeMap::new();
    for t in times {
        *days.entry(t.div_euclid(86_400_000_000)).or_default() += 1;
    }
    days.into_iter()
        .map(|(day, alerts)| {
            let time = format_micros(day.saturating_mul(86_400_000_000));
            DayCount {
                day: time.get(..10).unwrap_or(&time).to_string(),
                alerts,
            }
        })
        .collect()
}

/// The top values of each cluster field, and the top script shapes, among `hits` (two
/// hits at least each).
fn clusters(hits: &[&Hit], cx: &Context) -> Vec<Cluster> {
    let mut out = Vec::new();
    for field in CLUSTER_FIELDS {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for h in hits {
            if let Some(v) = h.field(field) {
                *counts.entry(v).or_default() += 1;
            }
        }
        for (value, n) in top(counts) {
            out.push(Cluster {
                field: field.to_string(),
                value: value.to_string(),
                hits: n,
                exception: Some(format!("{field}: {}", quoted(value))),
                example: None,
            });
        }
    }
    let mut shapes: BTreeMap<u64, Vec<&Hit>> = BTreeMap::new();
    for h in hits {
        if let Some(s) = cx.scripts.get(&EventRef::of(h)) {
            shapes.entry(s.shape).or_default().push(h);
        }
    }
    let counts = shapes
        .iter()
        .map(|(shape, members)| (*shape, members.len()));
    for (shape, n) in top(counts.collect()) {
        let members: Vec<&ScriptSummary> = shapes[&shape]
            .iter()
            .filter_map(|h| cx.scripts.get(&EventRef::of(h)))
            .collect();
        let analyzer = shapes[&shape]
            .first()
            .and_then(|h| cx.analyzers.get(&h.dataset))
            .copied()
            .unwrap_or(Analyzer::Pattern);
        out.push(Cluster {
            field: SCRIPT_TEXT.to_string(),
            value: format!("{shape:016x}"),
            hits: n,
            exception: phrase_exception(&members, analyzer),
            example: members.first().map(|m| m.head.clone()),
        });
    }
    out.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.field.cmp(&b.field)));
    out
}

/// The [`CLUSTERS_PER_FIELD`] values counted most often (twice at least), most first.
fn top<K: Ord + Copy>(counts: BTreeMap<K, usize>) -> Vec<(K, usize)> {
    let mut top: Vec<(K, usize)> = counts.into_iter().filter(|(_, n)| *n >= 2).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(CLUSTERS_PER_FIELD);
    top
}

/// `value` as a quoted KQL value.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A KQL phrase on the script text that the heads of all `members` (the first
/// [`PHRASE_CHECKS`]) hold: a run of up to [`PHRASE_TOKENS`] tokens of the first head, none
/// with a digit (those change from run to run), checked with the reference evaluator.
fn phrase_exception(members: &[&ScriptSummary], analyzer: Analyzer) -> Option<String> {
    let first = members.first()?;
    let tokens = analyzer.tokens(first.whole_words());
    let usable = |t: &String| t.chars().count() >= 2 && !t.chars().any(|c| c.is_ascii_digit());
    let types = FieldTypes::new(analyzer);
    let heads: Vec<Document> = members
        .iter()
        .take(PHRASE_CHECKS)
        .map(|m| Document::new().with(SCRIPT_TEXT, m.whole_words()))
        .collect();
    let shortest = PHRASE_MIN_TOKENS.min(tokens.len()).max(1);
    for start in 0..tokens.len() {
        let run = tokens[start..]
            .iter()
            .take_while(|t| usable(t))
            .take(PHRASE_TOKENS)
            .count();
        if run < shortest {
            continue;
        }
        let phrase = tokens[start..start + run].join(" ");
        let kql = format!("{SCRIPT_TEXT}: {}", quoted(&phrase));
        let Ok(query) = kql::parse(&kql) else {
            continue;
        };
        let cond = kql::lower(&query);
        if heads.iter().all(|d| eval::matches(&cond, d, &types)) {
            return Some(kql);
        }
    }
    None
}

fn example(h: &Hit, cx: &Context) -> Example {
    Example {
        time: format_micros(h.timestamp_us),
        host: h.field("host.name").map(str::to_string),
        user: h
            .field("user.name")
            .or(h.field("user.id"))
            .map(str::to_string),
        script_block_id: h
            .field("powershell.file.script_block_id")
            .map(str::to_string),
        matched: h.matched.iter().map(|m| m.to_string()).collect(),
        script: cx.scripts.get(&EventRef::of(h)).cloned(),
        file: h.file.clone(),
        row: h.row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::TRIAGE_FIELDS;

    #[test]
    fn executions_search_by_the_override_and_fall_back_to_the_event_time() {
        let mut rule = truth_run("labels.truth").rule;
        let at = TRIAGE_FIELDS
            .iter()
            .position(|f| *f == OVERRIDE_FIELD)
            .expect("the override is a triage field");
        let mut fields = vec![None; TRIAGE_FIELDS.len()];
        fields[at] = Some("1970-01-01T00:00:05Z".to_string());
        let mut hit = Hit {
            rule_id: "r".into(),
            rule_version: 1,
            role: crate::plan::Role::Version,
            rule_name: String::new(),
            rule_type: "query".into(),
            severity: String::new(),
            risk_score: 0.0,
            timestamp_us: 1_000_000,
            fields: fields.into(),
            matched: Vec::new(),
            dataset: String::new(),
            file: String::new(),
            row: 0,
            sequence: None,
        };
        assert_eq!(search_time(&rule, &hit), 1_000_000, "no override set");
        rule.timestamp_override = Some(OVERRIDE_FIELD.into());
        assert_eq!(search_time(&rule, &hit), 5_000_000);
        hit.fields = vec![None; TRIAGE_FIELDS.len()].into();
        assert_eq!(search_time(&rule, &hit), 1_000_000, "the event lacks it");
    }

    #[test]
    fn a_script_cluster_phrase_skips_what_changes_and_holds_in_every_head() {
        let a = ScriptSummary::of(
            "# job 4411\nRemove-Item C:\\Temp\\x1.tmp -Force; Clear-RecycleBin -Confirm:$false",
        );
        let b = ScriptSummary::of(
            "# job 17\nRemove-Item C:\\Temp\\x88.tmp -Force; Clear-RecycleBin -Confirm:$false",
        );
        for analyzer in [Analyzer::Pattern, Analyzer::Standard] {
            let kql = phrase_exception(&[&a, &b], analyzer).expect("a phrase");
            assert!(!kql.chars().any(|c| c.is_ascii_digit()), "{kql}");
            let query = kql::lower(&kql::parse(&kql).expect("KQL"));
            let types = FieldTypes::new(analyzer);
            for s in [&a, &b] {
                let doc = Document::new().with(SCRIPT_TEXT, &s.head);
                assert!(eval::matches(&query, &doc, &types), "{kql}");
            }
        }
        let numbers = ScriptSummary::of("0x1F 42 7");
        assert_eq!(phrase_exception(&[&numbers], Analyzer::Pattern), None);
    }
}
