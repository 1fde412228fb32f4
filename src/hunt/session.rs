//! A hunt session: the rule packs loaded, the versions selected and the datasets' manifests
//! read, once, for as many passes as the caller runs over them. A plain hunt is one pass;
//! a backtest is one pass with its ground truth and what-ifs riding along; an incremental
//! hunt is a pass per chunk of changed files, each with only the versions those files need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cond::analyzer::Analyzer;
use crate::ingest::dataset::{self, Manifest};
use crate::ingest::schema::SCRIPT_TEXT;
use crate::plan::{Role, StepOf, Target};
use crate::rules::pack::{self, Compiled, LoadOptions, LoadedVersion, RuleVersion, Status};
use crate::sequence::{Join, Role as SequenceRole};
use crate::sink::{Hit, SinkError};
use crate::store::{LocalStore, Store};

use super::{pass, Extra, HuntError, HuntOptions, HuntProgress, HuntReport, VersionSelect};

/// A dataset of a session: where its bytes are, and its manifest as read at the start.
pub struct OpenDataset {
    /// The dataset as given, as hits and messages name it.
    pub label: String,
    pub store: Arc<dyn Store>,
    pub manifest: Manifest,
}

impl OpenDataset {
    /// The dataset in directory `root`.
    pub fn local(root: &Path) -> Result<OpenDataset, HuntError> {
        let label = root.display().to_string();
        let store = LocalStore::new(root);
        let manifest = dataset::manifest_in(&store).map_err(|e| HuntError::Dataset {
            dataset: label.clone(),
            source: e,
        })?;
        Ok(OpenDataset {
            label,
            store: Arc::new(store),
            manifest,
        })
    }

    /// The analyzer of the script text under the dataset's mapping.
    pub fn analyzer(&self) -> Analyzer {
        self.manifest
            .analyzers
            .get(SCRIPT_TEXT)
            .and_then(|a| Analyzer::parse(a))
            .unwrap_or(Analyzer::Pattern)
    }

    /// The indices (or data streams) the dataset stands for, which index patterns match.
    pub fn indices(&self) -> Vec<String> {
        match &self.manifest.index {
            Some(index) => vec![index.clone()],
            None => self.manifest.indices.keys().cloned().collect(),
        }
    }
}

/// What one pass over a session's datasets runs, besides the session's selection.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Only these (rule id, version) of the selection; none: all of it.
    pub versions: Option<BTreeSet<(String, u32)>>,
    /// Conditions run as versions besides the selection, in the same pass: a backtest's
    /// ground truth and what-ifs.
    pub extra: Vec<Extra>,
    /// Only these part files, as (dataset label, path inside it); none: every part.
    pub files: Option<BTreeSet<(String, String)>>,
    /// Also summarise the script of every hit event (its head and shape) into
    /// [`HuntReport::scripts`]: what a backtest shows and clusters by.
    pub summarise_scripts: bool,
    /// Every hit in the files, whatever the session's time range: an incremental hunt keeps
    /// whole files' hits and applies the range to the table.
    pub whole_files: bool,
    /// Also hand back the step events of every sequence version
    /// ([`HuntReport::sequence_steps`]).
    pub keep_sequence_steps: bool,
    /// Also hand back every value of the grouping fields of the hit events of threshold and
    /// new-terms versions ([`HuntReport::group_values`]): what a backtest counts by.
    pub keep_group_values: bool,
}

/// What a pass scans for.
#[derive(Default)]
pub(super) struct Targets<'s> {
    pub list: Vec<Target<'s>>,
    /// Selected versions among them (a sequence counts once, whatever its steps).
    pub selected: usize,
    /// The sequences whose steps are targets, as their [`StepOf`] indices name them.
    pub sequences: Vec<(&'s RuleVersion, &'s Join)>,
}

/// Rule versions chosen and datasets opened, ready for passes.
pub struct Session {
    opts: HuntOptions,
    pack: pack::Pack,
    /// Indices into the pack's versions, in the hit table's order.
    selected: Vec<usize>,
    datasets: Vec<OpenDataset>,
    /// Pack problems and versions that will not run.
    warnings: Vec<String>,
}

impl Session {
    /// Loads the packs of `opts`, selects its versions and reads its datasets' manifests.
    pub fn open(opts: &HuntOptions) -> Result<Session, HuntError> {
        let load = LoadOptions {
            version_lock: opts.version_lock.clone(),
        };
        let pack = pack::load(&opts.packs, &load).map_err(HuntError::Pack)?;
        let selected =
            select_versions(&pack, &opts.rules, &opts.versions).map_err(HuntError::Selection)?;
        let mut warnings: Vec<String> = pack
            .problems
            .iter()
            .map(|p| format!("rule pack: {p}"))
            .collect();
        for &i in &selected {
            let v = &pack.versions[i];
            if !v.status.is_ready() {
                warnings.push(format!(
                    "{} ({}) will not run: {}",
                    v.rule.key(),
                    v.rule.name,
                    v.status.problem()
                ));
            }
        }
        let datasets = opts
            .datasets
            .iter()
            .map(|root| OpenDataset::local(root))
            .collect::<Result<_, _>>()?;
        Ok(Session {
            opts: opts.clone(),
            pack,
            selected,
            datasets,
            warnings,
        })
    }

    pub fn options(&self) -> &HuntOptions {
        &self.opts
    }

    pub fn datasets(&self) -> &[OpenDataset] {
        &self.datasets
    }

    /// Pack problems and selected versions that will not run, in that order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The selected versions, runnable or not, in the hit table's order.
    pub fn selected(&self) -> impl Iterator<Item = &LoadedVersion> {
        self.selected.iter().map(|&i| &self.pack.versions[i])
    }

    /// The selected versions that run, compiled.
    pub fn ready(&self) -> impl Iterator<Item = (&RuleVersion, &Compiled)> {
        self.selected().filter_map(|v| match &v.status {
            Status::Ready(compiled) => Some((&v.rule, &**compiled)),
            _ => None,
        })
    }

    /// What `pass` scans for: the selection's runnable versions it keeps (a sequence as
    /// one target per step), then its extras.
    pub(super) fn targets<'s>(&'s self, pass: &'s Pass) -> Targets<'s> {
        let mut out = Targets::default();
        let kept = self.ready().filter(|(rule, _)| {
            pass.versions
                .as_ref()
                .is_none_or(|only| only.contains(&(rule.rule_id.clone(), rule.version)))
        });
        for (rule, compiled) in kept {
            out.selected += 1;
            let Some(join) = &compiled.sequence else {
                out.list.push(Target {
                    rule,
                    cond: &compiled.cond,
                    role: Role::Version,
                    mapped: compiled.mapped.as_deref(),
                    step: None,
                });
                continue;
            };
            let sequence = out.sequences.len();
            out.sequences.push((rule, join.as_ref()));
            let steps = join.steps.iter().enumerate();
            let steps = steps.map(|(i, s)| (SequenceRole::Step(i), s));
            for (role, step) in steps.chain(join.until.iter().map(|u| (SequenceRole::Until, u))) {
                out.list.push(Target {
                    rule,
                    cond: &step.cond,
                    role: Role::Version,
                    mapped: Some(step.mapped.as_ref()),
                    step: Some(StepOf { sequence, role }),
                });
            }
        }
        out.list.extend(pass.extra.iter().map(|e| Target {
            rule: &e.rule,
            cond: &e.cond,
            role: e.role,
            mapped: e.mapped.as_deref(),
            step: None,
        }));
        out
    }

    /// Runs `pass` and hands its hits to `out` in the hit table's order, a batch at a time;
    /// hits beyond the sort memory are spilled meanwhile to a temporary directory whose path
    /// starts with `spill` (see [`crate::sink::spool::Spool::new`]). `cancel` is polled
    /// between units.
    pub fn run_into(
        &self,
        pass: &Pass,
        progress: &dyn HuntProgress,
        cancel: &AtomicBool,
        spill: &Path,
        out: &mut dyn FnMut(&[Hit]) -> Result<(), SinkError>,
    ) -> Result<HuntReport, HuntError> {
        pass::run(self, pass, progress, cancel, spill, out)
    }

    /// Runs `pass` and returns its hits in memory, in the hit table's order.
    pub fn run(
        &self,
        pass: &Pass,
        progress: &dyn HuntProgress,
        cancel: &AtomicBool,
    ) -> Result<HuntReport, HuntError> {
        let mut hits = Vec::new();
        let spill = std::env::temp_dir().join(".quarry-spool-");
        let mut report = self.run_into(pass, progress, cancel, &spill, &mut |batch| {
            hits.extend_from_slice(batch);
            Ok(())
        })?;
        report.hits = hits;
        Ok(report)
    }
}

/// The versions `rules` and `versions` choose from `pack`, as indices into its versions in
/// the hit table's order (rule id, then version).
pub fn select_versions(
    pack: &pack::Pack,
    rules: &[String],
    versions: &VersionSelect,
) -> Result<Vec<usize>, pack::SelectionError> {
    // Each rule's versions in pack order (oldest first, as `Pack::rule` has them).
    let mut by_rule: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, v) in pack.versions.iter().enumerate() {
        by_rule.entry(v.rule.rule_id.as_str()).or_default().push(i);
    }
    let filter = |all: &[usize]| -> Vec<usize> {
        match versions {
            VersionSelect::All => all.to_vec(),
            VersionSelect::Latest => all.last().copied().into_iter().collect(),
            VersionSelect::List(wanted) => all
                .iter()
                .copied()
                .filter(|&i| wanted.contains(&pack.versions[i].rule.version))
                .collect(),
        }
    };
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    if rules.is_empty() {
        by_rule.values().for_each(|all| chosen.extend(filter(all)));
    } else {
        for spec in rules {
            let found = pack.find(spec)?;
            if spec.contains('@') {
                let at = pack.versions.iter().position(|v| std::ptr::eq(v, found));
                chosen.extend(at);
            } else if let Some(all) = by_rule.get(found.rule.rule_id.as_str()) {
                chosen.extend(filter(all));
            }
        }
    }
    let mut chosen: Vec<usize> = chosen.into_iter().collect();
    chosen.sort_by(|&a, &b| {
        let (a, b) = (&pack.versions[a].rule, &pack.versions[b].rule);
        (&a.rule_id, a.version).cmp(&(&b.rule_id, b.version))
    });
    Ok(chosen)
}
