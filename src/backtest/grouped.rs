//! The detection engine's threshold and new-terms executions replayed over a version's hits.
//!
//! Both search the same window as a query rule (`[t - lookback, t]`, both ends included)
//! but alert on groups, by the values of the rule's fields (Kibana's composite
//! aggregations: a document missing one of the fields is in no group, and a document with
//! several values is in the group of each combination of them):
//!
//! - **threshold**: a group reaching `value` documents (and `value` distinct values of the
//!   cardinality field) alerts, at most `max_signals` groups per execution, in ascending key
//!   order (the composite order; not the biggest groups). A group's alert records the
//!   latest time in it, and later executions leave out that group's documents up to that
//!   time (the rule's signal history, dropped once it is older than the window start), so a
//!   group alerts again only on new documents.
//! - **new_terms**: a combination whose earliest document in `[t - history, t]` is strictly
//!   after the window start is new; each new combination alerts once, on its earliest
//!   document (the alert's id is the document and the combination, so an overlapping
//!   execution does not create it again). At most `max_signals` per execution: for one
//!   field the terms of each 10,000-term page most documents first, for several fields in
//!   ascending key order.
//!
//! Kibana: `rule_types/threshold/{find_threshold_signals, build_threshold_aggregation,
//! get_threshold_bucket_filters, build_signal_history}.ts` and
//! `rule_types/new_terms/{execute_new_terms_aggregation_approach,
//! build_new_terms_aggregation}.ts` in `x-pack/solutions/security/plugins/security_solution`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::schedule::Schedule;

/// One hit of a grouped version, as its executions see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupDoc {
    /// Its search time (timestamp override, else `@timestamp`).
    pub time: i64,
    /// The value combinations it is grouped in ([`combinations`]).
    pub groups: Vec<Vec<String>>,
    /// Threshold with cardinality: the cardinality field's values.
    pub distinct: Vec<String>,
}

/// The combinations of one value of each field (each field's values once each); none
/// when a field has no value; one empty combination when there are no fields.
pub fn combinations(fields: &[&[String]]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for values in fields {
        let mut distinct: Vec<&String> = values.iter().collect();
        distinct.sort();
        distinct.dedup();
        out = out
            .iter()
            .flat_map(|prefix| {
                distinct.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((*v).clone());
                    c
                })
            })
            .collect();
    }
    out
}

/// What happened to one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fate {
    /// No execution's window held it.
    #[default]
    Uncovered,
    /// Searched, but in no group that alerted or would have: below the threshold, or its
    /// terms were not new (or, for new terms, not its group's earliest document).
    Quiet,
    /// In a group that would have alerted but for `max_signals`.
    Capped,
    /// In (threshold) or the document of (new terms) an alert.
    Alerted,
}

/// What the engine would have done with one grouped version's hits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupReplay {
    /// For each document, as given.
    pub fates: Vec<Fate>,
    /// The time each alert records (`kibana.alert.original_time`): a threshold group's
    /// latest document, a new term's document.
    pub alert_times: Vec<i64>,
    pub executions: u64,
    /// Executions with more alerting groups than `max_signals`.
    pub capped_executions: u64,
}

impl GroupReplay {
    pub fn count(&self, fate: Fate) -> usize {
        self.fates.iter().filter(|f| **f == fate).count()
    }
}

/// The executions `start, start + interval, ...` up to the first at or after `end`, each
/// given its window's documents (indices into `docs`, oldest first).
fn executions(
    docs: &[GroupDoc],
    start: i64,
    end: i64,
    schedule: &Schedule,
    mut run: impl FnMut(i64, i64, &[usize]),
) -> u64 {
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| (docs[i].time, i));
    let (mut first, mut n, mut t) = (0, 0u64, start);
    loop {
        n += 1;
        let from = t.saturating_sub(schedule.lookback_us);
        while first < order.len() && docs[order[first]].time < from {
            first += 1;
        }
        let last = first + order[first..].partition_point(|&i| docs[i].time <= t);
        if last > first {
            run(t, from, &order[first..last]);
        }
        if t >= end {
            break;
        }
        t = t.saturating_add(schedule.interval_us);
    }
    n
}

/// One threshold group in one execution.
#[derive(Default)]
struct Bucket<'a> {
    docs: Vec<usize>,
    latest: i64,
    distinct: HashSet<&'a str>,
}

/// Replays a threshold version: `value` documents per group, and with `cardinality`
/// (`(None, _)` without) that many distinct values of its field.
pub fn replay_threshold(
    docs: &[GroupDoc],
    value: u64,
    cardinality: Option<u64>,
    start: i64,
    end: i64,
    schedule: &Schedule,
) -> GroupReplay {
    let mut out = GroupReplay {
        fates: vec![Fate::Uncovered; docs.len()],
        ..GroupReplay::default()
    };
    // The signal history: each alerted group's latest alerted time.
    let mut history: HashMap<&[String], i64> = HashMap::new();
    out.executions = executions(docs, start, end, schedule, |_, from, window| {
        history.retain(|_, last| *last > from);
        let mut buckets: BTreeMap<&[String], Bucket> = BTreeMap::new();
        for &i in window {
            let d = &docs[i];
            if out.fates[i] == Fate::Uncovered {
                out.fates[i] = Fate::Quiet;
            }
            let counted_before = d.groups.iter().any(|g| {
                history
                    .get(g.as_slice())
                    .is_some_and(|&last| d.time <= last)
            });
            if counted_before {
                continue;
            }
            for g in &d.groups {
                let b = buckets.entry(g.as_slice()).or_default();
                b.docs.push(i);
                b.latest = b.latest.max(d.time);
                if cardinality.is_some() {
                    b.distinct.extend(d.distinct.iter().map(String::as_str));
                }
            }
        }
        let reached = buckets.into_iter().filter(|(_, b)| {
            b.docs.len() as u64 >= value && cardinality.is_none_or(|c| b.distinct.len() as u64 >= c)
        });
        for (n, (group, b)) in reached.enumerate() {
            let alerted = n < schedule.max_signals;
            out.capped_executions += u64::from(n == schedule.max_signals);
            for &i in &b.docs {
                out.fates[i] = match (alerted, out.fates[i]) {
                    (true, _) | (false, Fate::Alerted) => Fate::Alerted,
                    (false, _) => Fate::Capped,
                };
            }
            if alerted {
                out.alert_times.push(b.latest);
                let last = history.entry(group).or_insert(b.latest);
                *last = (*last).max(b.latest);
            }
        }
    });
    out
}

/// Terms per page of the composite aggregation a new-terms execution reads its window by.
const NEW_TERMS_PAGE: usize = 10_000;

/// Replays a new-terms version whose history reaches `history_us` back from each execution.
pub fn replay_new_terms(
    docs: &[GroupDoc],
    history_us: i64,
    start: i64,
    end: i64,
    schedule: &Schedule,
) -> GroupReplay {
    let mut out = GroupReplay {
        fates: vec![Fate::Uncovered; docs.len()],
        ..GroupReplay::default()
    };
    // Every document time of each combination, oldest first.
    let mut times: HashMap<&[String], Vec<i64>> = HashMap::new();
    for d in docs {
        for g in &d.groups {
            times.entry(g.as_slice()).or_default().push(d.time);
        }
    }
    times.values_mut().for_each(|t| t.sort_unstable());
    let one_field = docs.iter().all(|d| d.groups.iter().all(|g| g.len() == 1));
    let mut created: HashSet<(usize, &[String])> = HashSet::new();
    out.executions = executions(docs, start, end, schedule, |t, from, window| {
        // Each combination of the window: its earliest document and its documents.
        let mut found: BTreeMap<&[String], (usize, usize)> = BTreeMap::new();
        for &i in window {
            if out.fates[i] == Fate::Uncovered {
                out.fates[i] = Fate::Quiet;
            }
            for g in &docs[i].groups {
                found.entry(g.as_slice()).or_insert((i, 0)).1 += 1;
            }
        }
        let history_start = t.saturating_sub(history_us);
        let is_new = |g: &[String]| {
            let all = &times[g];
            let from_history = all.partition_point(|&x| x < history_start);
            all.get(from_history).is_some_and(|&first| first > from)
        };
        let keys: Vec<(&[String], (usize, usize))> = found.into_iter().collect();
        let mut new: Vec<(&[String], usize)> = Vec::new();
        for page in keys.chunks(NEW_TERMS_PAGE) {
            let mut page: Vec<&(&[String], (usize, usize))> =
                page.iter().filter(|(g, _)| is_new(g)).collect();
            if one_field {
                page.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
            }
            new.extend(page.into_iter().map(|(g, (doc, _))| (*g, *doc)));
        }
        new.retain(|&(g, doc)| !created.contains(&(doc, g)));
        for (n, (g, doc)) in new.into_iter().enumerate() {
            if n == schedule.max_signals {
                out.capped_executions += 1;
            }
            if n >= schedule.max_signals {
                if out.fates[doc] != Fate::Alerted {
                    out.fates[doc] = Fate::Capped;
                }
                continue;
            }
            created.insert((doc, g));
            out.fates[doc] = Fate::Alerted;
            out.alert_times.push(docs[doc].time);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn every(interval: &str, from: &str, max: u32) -> Schedule {
        Schedule::of(interval, from, max).expect("schedule")
    }

    fn doc(time: i64, group: &[&str]) -> GroupDoc {
        GroupDoc {
            time,
            groups: vec![group.iter().map(|s| s.to_string()).collect()],
            distinct: Vec::new(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn combinations_are_the_product_of_distinct_values() {
        let hosts = strings(&["b", "a", "b"]);
        let users = strings(&["u"]);
        assert_eq!(
            combinations(&[&hosts, &users]),
            vec![strings(&["a", "u"]), strings(&["b", "u"])]
        );
        assert!(combinations(&[&hosts, &[]]).is_empty());
        assert_eq!(combinations(&[]), vec![Vec::<String>::new()]);
    }

    #[test]
    fn a_threshold_group_alerts_once_on_its_documents_and_again_on_new_ones() {
        // Executions every 5 min, lookback 10: [-10, 0], [-5, 5], [0, 10], [5, 15], ...
        let docs = [
            doc(MIN, &["h1"]),
            doc(2 * MIN, &["h1"]),
            doc(3 * MIN, &["h2"]),
            doc(8 * MIN, &["h1"]),
            doc(9 * MIN, &["h1"]),
        ];
        let r = replay_threshold(&docs, 2, None, 0, 15 * MIN, &every("5m", "now-10m", 100));
        assert_eq!(r.executions, 4);
        // At 5: h1 (1, 2) alerts, latest 2. At 10: h1's 1 and 2 are history, 8 and 9 new:
        // alerts again, latest 9. At 15: 8 and 9 are history; nothing.
        assert_eq!(r.alert_times, vec![2 * MIN, 9 * MIN]);
        assert_eq!(
            r.fates,
            vec![
                Fate::Alerted,
                Fate::Alerted,
                Fate::Quiet,
                Fate::Alerted,
                Fate::Alerted
            ]
        );
    }

    #[test]
    fn the_history_filter_leaves_out_a_document_from_every_group_it_is_in() {
        // A doc in groups a and b; a alerted with latest time at or after it: b loses it.
        let both = GroupDoc {
            time: 2 * MIN,
            groups: vec![strings(&["a"]), strings(&["b"])],
            distinct: Vec::new(),
        };
        let docs = [doc(MIN, &["a"]), both, doc(6 * MIN, &["b"])];
        let r = replay_threshold(
            &docs,
            2,
            None,
            5 * MIN,
            10 * MIN,
            &every("5m", "now-10m", 1),
        );
        // At 5: a (1, 2) and b (2) — a alerts (b has one). At 10: window [0, 10], a's history
        // (latest 2) leaves out docs 0 and 1, so b has only doc 2: no alert.
        assert_eq!(r.alert_times, vec![2 * MIN]);
        assert_eq!(r.fates[2], Fate::Quiet);
    }

    #[test]
    fn threshold_cap_keeps_the_first_keys_and_cardinality_counts_distinct_values() {
        let with = |time, group: &str, d: &[&str]| GroupDoc {
            distinct: strings(d),
            ..doc(time, &[group])
        };
        let docs = [
            with(MIN, "c", &["1"]),
            with(MIN, "c", &["2"]),
            with(MIN, "b", &["1"]),
            with(MIN, "b", &["1"]),
            with(MIN, "a", &["1"]),
            with(MIN, "a", &["3"]),
        ];
        // b has one distinct value: out. a and c reach 2; max_signals 1 keeps a.
        let r = replay_threshold(&docs, 2, Some(2), 0, 5 * MIN, &every("5m", "now-5m", 1));
        assert_eq!(r.capped_executions, 1);
        assert_eq!(r.count(Fate::Alerted), 2);
        assert_eq!(r.count(Fate::Capped), 2);
        assert_eq!(r.count(Fate::Quiet), 2);
        assert_eq!(r.fates[4], Fate::Alerted);
    }

    #[test]
    fn without_fields_the_whole_window_is_one_group() {
        let none = |time| GroupDoc {
            time,
            groups: combinations(&[]),
            distinct: Vec::new(),
        };
        let docs = [none(MIN), none(2 * MIN), none(3 * MIN)];
        let r = replay_threshold(
            &docs,
            3,
            None,
            5 * MIN,
            5 * MIN,
            &every("5m", "now-5m", 100),
        );
        assert_eq!(r.alert_times, vec![3 * MIN]);
        assert_eq!(r.count(Fate::Alerted), 3);
    }

    #[test]
    fn a_term_is_new_only_when_its_history_has_none_up_to_the_window_start() {
        let docs = [
            doc(MIN, &["old"]),
            doc(20 * MIN, &["old"]),
            doc(21 * MIN, &["fresh"]),
            doc(22 * MIN, &["fresh"]),
            // `edge` alerts at 15; at 20 (window [15, 20]) its first time is the window
            // start, not after it: not new again.
            doc(15 * MIN, &["edge"]),
        ];
        let r = replay_new_terms(
            &docs,
            60 * MIN,
            5 * MIN,
            25 * MIN,
            &every("5m", "now-5m", 100),
        );
        // At 5: old (1) new. At 15: edge (15) new in [10, 15]. At 25: old seen at 1 (in the
        // history [-35, 20]); fresh new, alerted on 21.
        assert_eq!(r.alert_times, vec![MIN, 15 * MIN, 21 * MIN]);
        assert_eq!(
            r.fates,
            vec![
                Fate::Alerted,
                Fate::Quiet,
                Fate::Alerted,
                Fate::Quiet,
                Fate::Alerted
            ]
        );
        // With a 10-minute history, `old` at 20 is new again (1 is older than 15).
        let short = replay_new_terms(
            &docs,
            10 * MIN,
            5 * MIN,
            25 * MIN,
            &every("5m", "now-5m", 100),
        );
        assert_eq!(short.fates[1], Fate::Alerted);
    }

    #[test]
    fn overlapping_executions_alert_a_new_term_once_and_the_cap_keeps_the_busiest() {
        let t = 4 * MIN + 30_000_000;
        let docs = [doc(t, &["a"]), doc(t, &["b"]), doc(t, &["b"])];
        // Windows [-6, 0], [-1, 5], [4, 10]: at 5 both new, cap 1 keeps b (two docs); at 10
        // both still new (nothing up to 4), b's alert exists already, a alerts.
        let r = replay_new_terms(&docs, 60 * MIN, 0, 10 * MIN, &every("5m", "now-6m", 1));
        assert_eq!(r.alert_times, vec![t, t]);
        assert_eq!(r.capped_executions, 1);
        assert_eq!(r.fates, vec![Fate::Alerted, Fate::Alerted, Fate::Quiet]);
    }
}
