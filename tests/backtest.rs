//! Backtest pieces on a real hunt: the seed rule's 29 versions over the shipped sample.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quarry::backtest::diff::{self, EventRef};
use quarry::backtest::schedule::{replay, Schedule};
use quarry::hunt::{self, HuntOptions, NoProgress, VersionSelect};
use quarry::scan::TimeRange;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn version_diffs_of_the_seed_rule_add_up_to_each_versions_hits() {
    let packs = vec![repo("datasets/rules")];
    let opts = HuntOptions {
        packs: packs.clone(),
        version_lock: None,
        datasets: vec![repo("datasets/sample")],
        rules: Vec::new(),
        versions: VersionSelect::All,
        range: TimeRange::default(),
        threads: 0,
        fail_fast: false,
        sort_memory: 0,
    };
    let report = hunt::hunt(&opts, &NoProgress, &AtomicBool::new(false)).expect("hunt");
    let pack = quarry::rules::pack::load(&packs, &Default::default()).expect("pack");
    let versions: Vec<_> = pack.versions.iter().map(|v| &v.rule).collect();
    let runs = diff::query_changes(&versions);
    assert_eq!(runs.len(), 29);
    let diffs = diff::diffs(&report.hits, &runs, 3);
    let mut before: BTreeSet<EventRef> = BTreeSet::new();
    let mut changed = 0;
    for d in &diffs {
        let now: BTreeSet<EventRef> = report
            .hits
            .iter()
            .filter(|h| h.rule_version == d.version)
            .map(EventRef::of)
            .collect();
        assert_eq!(d.hits, now.len());
        assert_eq!(d.gained, now.difference(&before).count(), "v{}", d.version);
        assert_eq!(d.lost, before.difference(&now).count(), "v{}", d.version);
        assert_eq!(d.hits + d.lost, before.len() + d.gained);
        assert!(d.gained_examples.len() <= 3 && d.gained_examples.len() <= d.gained);
        if !d.query_changed {
            assert_eq!(
                (d.gained, d.lost),
                (0, 0),
                "v{} left its query as it was",
                d.version
            );
        }
        changed += usize::from(d.query_changed);
        before = now;
    }
    assert!(
        diffs.iter().any(|d| d.gained + d.lost > 0),
        "some change of the seed rule changed its hits on the sample"
    );
    assert!(
        changed > 1 && changed < 29,
        "{changed} versions changed the query"
    );
    // The schedule replay of the latest version: every hit alerted or accounted for.
    let latest = versions.last().expect("a version");
    let schedule =
        Schedule::of(&latest.interval, &latest.from, latest.max_signals).expect("schedule");
    let times: Vec<i64> = report
        .hits
        .iter()
        .filter(|h| h.rule_version == latest.version)
        .map(|h| h.timestamp_us)
        .collect();
    let (start, end) = (
        *times.iter().min().expect("hits"),
        *times.iter().max().expect("hits"),
    );
    let r = replay(&times, start, end, &schedule);
    assert_eq!(r.alerts + r.dropped + r.uncovered, times.len());
    assert_eq!(
        r.uncovered, 0,
        "a 6-minute lookback every 5 minutes leaves no gap"
    );
}
