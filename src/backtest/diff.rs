//! What each change of a rule did to its hits: the version diff.
//!
//! For every version, the events it hits that the version before it did not (gained) and
//! the events the version before hit that it does not (lost), with a few of each as
//! examples. The diff is taken on events (dataset, file, row), so the counts always add up:
//! `hits(v) = hits(v - 1) + gained(v) - lost(v)`. A version whose query, filters, language
//! and index patterns equal its predecessor's is marked unchanged: its gains and losses can
//! then only come from a schedule or data difference, and are normally zero.

use std::collections::BTreeMap;

use crate::rules::pack::RuleVersion;
pub use crate::sink::EventRef;
use crate::sink::Hit;

/// A version that ran, in the order of its rule's history.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRun {
    pub rule_id: String,
    pub version: u32,
    /// Its query, filters, language or index patterns differ from the previous version run.
    pub query_changed: bool,
}

/// One version against the version of the same rule before it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionDiff {
    pub rule_id: String,
    pub version: u32,
    /// The version compared against (none for a rule's first version run).
    pub previous: Option<u32>,
    pub query_changed: bool,
    pub hits: usize,
    pub gained: usize,
    pub lost: usize,
    /// The first gained hits in time order (at most the number asked for).
    pub gained_examples: Vec<Hit>,
    /// The first lost hits (as the previous version made them) in time order.
    pub lost_examples: Vec<Hit>,
}

/// Whether each version's query differs from the previous one of the same rule in `versions`
/// (ordered by rule, then version).
pub fn query_changes(versions: &[&RuleVersion]) -> Vec<VersionRun> {
    let mut out: Vec<VersionRun> = Vec::with_capacity(versions.len());
    for (i, v) in versions.iter().enumerate() {
        let previous = i
            .checked_sub(1)
            .map(|p| versions[p])
            .filter(|p| p.rule_id == v.rule_id);
        let changed = previous.is_none_or(|p| {
            (&p.language, &p.query, &p.filters, &p.index)
                != (&v.language, &v.query, &v.filters, &v.index)
        });
        out.push(VersionRun {
            rule_id: v.rule_id.clone(),
            version: v.version,
            query_changed: changed,
        });
    }
    out
}

/// The diff of every version in `runs` against the one before it, from `hits` (any order).
pub fn diffs(hits: &[Hit], runs: &[VersionRun], examples: usize) -> Vec<VersionDiff> {
    let mut by_version: BTreeMap<(&str, u32), BTreeMap<EventRef, &Hit>> = BTreeMap::new();
    for h in hits {
        by_version
            .entry((h.rule_id.as_str(), h.rule_version))
            .or_default()
            .insert(EventRef::of(h), h);
    }
    let empty = BTreeMap::new();
    let mut out = Vec::with_capacity(runs.len());
    let mut previous: Option<&VersionRun> = None;
    for run in runs {
        let before = previous.filter(|p| p.rule_id == run.rule_id);
        let current = by_version
            .get(&(run.rule_id.as_str(), run.version))
            .unwrap_or(&empty);
        let prior = before
            .and_then(|p| by_version.get(&(p.rule_id.as_str(), p.version)))
            .unwrap_or(&empty);
        let gained: Vec<&Hit> = current
            .iter()
            .filter(|(e, _)| !prior.contains_key(*e))
            .map(|(_, h)| *h)
            .collect();
        let lost: Vec<&Hit> = prior
            .iter()
            .filter(|(e, _)| !current.contains_key(*e))
            .map(|(_, h)| *h)
            .collect();
        out.push(VersionDiff {
            rule_id: run.rule_id.clone(),
            version: run.version,
            previous: before.map(|p| p.version),
            query_changed: run.query_changed,
            hits: current.len(),
            gained: gained.len(),
            lost: lost.len(),
            gained_examples: first_in_time(&gained, examples),
            lost_examples: first_in_time(&lost, examples),
        });
        previous = Some(run);
    }
    out
}

fn first_in_time(hits: &[&Hit], n: usize) -> Vec<Hit> {
    let mut sorted: Vec<&Hit> = hits.to_vec();
    sorted.sort_by_key(|h| (h.timestamp_us, EventRef::of(h)));
    sorted.into_iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(version: u32, row: u64, time: i64) -> Hit {
        Hit {
            rule_id: "r".into(),
            rule_version: version,
            role: crate::plan::Role::Version,
            rule_name: "rule".into(),
            rule_type: "query".into(),
            severity: "low".into(),
            risk_score: 21.0,
            timestamp_us: time,
            fields: Vec::new().into(),
            matched: Vec::new(),
            dataset: "d".into(),
            file: "f".into(),
            row,
            sequence: None,
        }
    }

    fn run(version: u32, changed: bool) -> VersionRun {
        VersionRun {
            rule_id: "r".into(),
            version,
            query_changed: changed,
        }
    }

    #[test]
    fn gains_and_losses_add_up_across_versions() {
        // v1 hits rows 1-3, v2 (no hits at all) loses them, v3 hits 2 and 4, v4 = v3.
        let hits = vec![
            hit(1, 1, 30),
            hit(1, 2, 20),
            hit(1, 3, 10),
            hit(3, 4, 5),
            hit(3, 2, 20),
            hit(4, 2, 20),
            hit(4, 4, 5),
        ];
        let runs = [run(1, true), run(2, true), run(3, true), run(4, false)];
        let d = diffs(&hits, &runs, 2);
        let counts: Vec<_> = d
            .iter()
            .map(|v| (v.version, v.previous, v.hits, v.gained, v.lost))
            .collect();
        assert_eq!(
            counts,
            vec![
                (1, None, 3, 3, 0),
                (2, Some(1), 0, 0, 3),
                (3, Some(2), 2, 2, 0),
                (4, Some(3), 2, 0, 0),
            ]
        );
        let mut before = 0;
        for v in &d {
            assert_eq!(v.hits, before + v.gained - v.lost);
            before = v.hits;
        }
        // Examples: the earliest first, at most two.
        let rows = |e: &[Hit]| e.iter().map(|h| h.row).collect::<Vec<_>>();
        assert_eq!(rows(&d[0].gained_examples), vec![3, 2]);
        assert_eq!(rows(&d[1].lost_examples), vec![3, 2]);
        assert_eq!(rows(&d[2].gained_examples), vec![4, 2]);
        assert!(!d[3].query_changed);
    }

    #[test]
    fn each_rule_starts_its_own_history() {
        let mut other = hit(7, 1, 0);
        other.rule_id = "s".into();
        let hits = vec![hit(1, 1, 0), other];
        let runs = [
            run(1, true),
            VersionRun {
                rule_id: "s".into(),
                version: 7,
                query_changed: true,
            },
        ];
        let d = diffs(&hits, &runs, 5);
        assert_eq!((d[1].previous, d[1].gained, d[1].lost), (None, 1, 0));
    }
}
