//! EQL sequences assembled from the events each step matched, as Elasticsearch's sequence
//! matcher assembles them (`x-pack/plugin/eql`, `execution/sequence`: `SequenceMatcher`,
//! `TumblingWindow`). The scan finds, for every step of a sequence, the events it matches;
//! [`assemble`] joins them per key, never reading the data again.
//!
//! The rules, event by event in [`Ordinal`] order (timestamp in milliseconds, as a `date`
//! field holds it; then the tiebreaker; then the dataset's row order):
//!
//! - an event of the first step starts a new sequence of its key;
//! - an event of a later step extends the *latest* sequence of its key waiting at the
//!   previous step whose last event is strictly earlier, and every older sequence waiting
//!   there is dropped (`OrdinalGroup.trimBefore`), even when the extension is then refused;
//! - the extension is refused when the time from the sequence's *first* event exceeds
//!   `maxspan` (a span equal to it is accepted), or when an `until` event of the key lies
//!   between the sequence's last event and this one, both ends included;
//! - a sequence whose last step matched is complete; with missing-event steps (`![...]`) it
//!   is then checked against the events of those steps of the same key: one strictly
//!   between two matched events discards it, and a leading or trailing one discards it
//!   unless it lies more than `maxspan` away (`TumblingWindow`'s acceptance rule; these
//!   checks compare milliseconds only).
//!
//! Complete sequences come out ordered by their first event. Keys are the caller's to make:
//! a multi-valued key field gives the event once per combination of values, and an event
//! whose non-optional key field is null joins nothing (so it is not given here), as in
//! Elasticsearch.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use crate::cond::{Cond, MappedCond};

/// A sequence as it runs: each step's condition and join keys, the `until` query, and
/// `maxspan`.
#[derive(Debug, Clone)]
pub struct Join {
    pub steps: Vec<JoinStep>,
    pub until: Option<JoinStep>,
    pub maxspan_ms: Option<i64>,
}

/// One step of a sequence (or its `until` query).
#[derive(Debug, Clone)]
pub struct JoinStep {
    /// The step's condition where every field is mapped (for reading, not running).
    pub cond: Cond,
    /// The condition resolved against a dataset's fields: what runs.
    pub mapped: Arc<dyn MappedCond>,
    /// The join key fields, the sequence's own then the step's.
    pub keys: Vec<KeyField>,
    /// `![...]`: an event that must not occur.
    pub missing: bool,
}

/// A join key field; an optional one (`?f`) joins with a null value where an event has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyField {
    pub path: String,
    pub optional: bool,
}

impl Join {
    /// What [`assemble`] needs of it.
    pub fn spec(&self) -> Spec {
        Spec {
            missing: self.steps.iter().map(|s| s.missing).collect(),
            maxspan_ms: self.maxspan_ms,
        }
    }

    /// Every key field of every step, each once, in order.
    pub fn key_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for k in self.steps.iter().chain(&self.until).flat_map(|s| &s.keys) {
            if !out.contains(&k.path.as_str()) {
                out.push(&k.path);
            }
        }
        out
    }
}

/// Every combination of an event's key values: one value per key field (`None` where the
/// field has none), the Cartesian product where a field has several.
pub fn keys_of(values: &[Vec<String>]) -> Vec<Key> {
    let mut out: Vec<Key> = vec![Vec::new()];
    for field in values {
        let mut choices: Vec<Option<String>> = Vec::new();
        for v in field {
            if !choices.iter().any(|c| c.as_deref() == Some(v.as_str())) {
                choices.push(Some(v.clone()));
            }
        }
        if choices.is_empty() {
            choices.push(None);
        }
        out = out
            .into_iter()
            .flat_map(|prefix| {
                choices.iter().map(move |c| {
                    let mut k = prefix.clone();
                    k.push(c.clone());
                    k
                })
            })
            .collect();
    }
    out
}

/// Where an event stands in time: Elasticsearch orders events by timestamp, then by the
/// tiebreaker field (an event without one after those with one), then by its own implicit
/// tiebreaker, for which quarry uses the dataset's row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ordinal {
    pub timestamp_ms: i64,
    pub tiebreaker: Option<i64>,
    pub row: u64,
}

impl Ord for Ordinal {
    fn cmp(&self, other: &Ordinal) -> Ordering {
        self.timestamp_ms
            .cmp(&other.timestamp_ms)
            .then_with(|| match (self.tiebreaker, other.tiebreaker) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| self.row.cmp(&other.row))
    }
}

impl PartialOrd for Ordinal {
    fn partial_cmp(&self, other: &Ordinal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A join key: the values of the `by` fields (`None` for an optional field without one).
pub type Key = Vec<Option<String>>;

/// What a sequence asks for: its steps in order (`true` for a missing-event step) and its
/// `maxspan` in milliseconds.
#[derive(Debug, Clone)]
pub struct Spec {
    pub missing: Vec<bool>,
    pub maxspan_ms: Option<i64>,
}

/// Which part of the sequence an event matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Step(usize),
    Until,
}

/// An event one step (or the `until` query) matched, with its key and place in time; `event`
/// is the caller's handle for it.
#[derive(Debug, Clone)]
pub struct StepHit {
    pub role: Role,
    pub key: Key,
    pub ordinal: Ordinal,
    pub event: u64,
}

/// A complete sequence: per step, the event that played it (`None` for missing steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub key: Key,
    pub events: Vec<Option<(Ordinal, u64)>>,
}

impl Sequence {
    fn first(&self) -> Ordinal {
        self.matched().next().map(|(o, _)| o).unwrap_or(Ordinal {
            timestamp_ms: i64::MIN,
            tiebreaker: None,
            row: 0,
        })
    }

    fn last(&self) -> Ordinal {
        self.matched().last().map(|(o, _)| o).unwrap_or(Ordinal {
            timestamp_ms: i64::MIN,
            tiebreaker: None,
            row: 0,
        })
    }

    fn matched(&self) -> impl Iterator<Item = (Ordinal, u64)> + '_ {
        self.events.iter().flatten().copied()
    }
}

/// Joins the step hits of one sequence (in any order) into its complete sequences.
pub fn assemble(spec: &Spec, hits: &[StepHit]) -> Vec<Sequence> {
    let positive: Vec<usize> = (0..spec.missing.len())
        .filter(|s| !spec.missing[*s])
        .collect();
    let (Some(&first), Some(&last)) = (positive.first(), positive.last()) else {
        return Vec::new();
    };
    let mut order: Vec<&StepHit> = hits.iter().collect();
    // Steps before `until` at the same event: an `until` event cancels only later ones.
    order.sort_by_key(|h| {
        (
            h.ordinal,
            match h.role {
                Role::Step(s) => s,
                Role::Until => usize::MAX,
            },
        )
    });
    let mut waiting: HashMap<(usize, &Key), Vec<Sequence>> = HashMap::new();
    let mut latest_until: HashMap<&Key, Ordinal> = HashMap::new();
    let mut missing_events: HashMap<(usize, &Key), Vec<Ordinal>> = HashMap::new();
    let mut complete = Vec::new();
    for hit in order {
        let step = match hit.role {
            Role::Until => {
                latest_until.insert(&hit.key, hit.ordinal);
                continue;
            }
            Role::Step(s) if s >= spec.missing.len() => continue,
            Role::Step(s) => s,
        };
        if spec.missing[step] {
            missing_events
                .entry((step, &hit.key))
                .or_default()
                .push(hit.ordinal);
            continue;
        }
        let sequence = if step == first {
            let mut events = vec![None; spec.missing.len()];
            events[step] = Some((hit.ordinal, hit.event));
            Sequence {
                key: hit.key.clone(),
                events,
            }
        } else {
            let Some(at) = positive.iter().position(|s| *s == step) else {
                continue;
            };
            let previous = positive[at.saturating_sub(1)];
            let Some(group) = waiting.get_mut(&(previous, &hit.key)) else {
                continue;
            };
            // The latest waiting sequence strictly before this event; it and all older ones
            // leave the group (waiting sequences are in the order of their last event).
            let before = group.partition_point(|s| s.last() < hit.ordinal);
            let Some(mut sequence) = group.drain(..before).next_back() else {
                continue;
            };
            if exceeds(
                spec.maxspan_ms,
                sequence.first().timestamp_ms,
                hit.ordinal.timestamp_ms,
            ) {
                continue;
            }
            let cancelled = latest_until
                .get(&hit.key)
                .is_some_and(|u| *u >= sequence.last() && *u <= hit.ordinal);
            if cancelled {
                continue;
            }
            sequence.events[step] = Some((hit.ordinal, hit.event));
            sequence
        };
        if step == last {
            complete.push(sequence);
        } else {
            waiting.entry((step, &hit.key)).or_default().push(sequence);
        }
    }
    for list in missing_events.values_mut() {
        list.sort();
    }
    let mut out: Vec<Sequence> = complete
        .into_iter()
        .filter(|s| no_missing_event(spec, s, &missing_events))
        .collect();
    out.sort_by_key(|s| (s.first(), s.last()));
    out
}

/// Elasticsearch's `exceedsMaxSpan`: only a span greater than `maxspan` exceeds it.
fn exceeds(maxspan_ms: Option<i64>, from_ms: i64, to_ms: i64) -> bool {
    maxspan_ms.is_some_and(|m| to_ms.saturating_sub(from_ms) > m)
}

/// `TumblingWindow`'s check of a complete sequence against its missing-event steps.
fn no_missing_event(
    spec: &Spec,
    sequence: &Sequence,
    events: &HashMap<(usize, &Key), Vec<Ordinal>>,
) -> bool {
    let n = spec.missing.len();
    let ms = |o: Option<&(Ordinal, u64)>| o.map(|(o, _)| o.timestamp_ms);
    let of = |step: usize| -> &[Ordinal] {
        events
            .get(&(step, &sequence.key))
            .map_or(&[], Vec::as_slice)
    };
    let (start, end) = (sequence.first().timestamp_ms, sequence.last().timestamp_ms);
    let mut last_leading = None;
    let mut first_trailing = None;
    for step in (0..n).filter(|s| spec.missing[*s]) {
        let before = (0..step)
            .rev()
            .find_map(|s| ms(sequence.events[s].as_ref()));
        let after = (step + 1..n).find_map(|s| ms(sequence.events[s].as_ref()));
        match (before, after) {
            (None, _) => {
                last_leading = of(step)
                    .iter()
                    .rev()
                    .find(|o| o.timestamp_ms < start)
                    .map(|o| o.timestamp_ms);
            }
            (Some(_), None) => {
                first_trailing = of(step)
                    .iter()
                    .find(|o| o.timestamp_ms > end)
                    .map(|o| o.timestamp_ms);
            }
            (Some(lo), Some(hi)) => {
                if of(step)
                    .iter()
                    .any(|o| o.timestamp_ms > lo && o.timestamp_ms < hi)
                {
                    return false;
                }
            }
        }
    }
    let bigger = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => exceeds(spec.maxspan_ms, a, b),
        _ => true,
    };
    let (lead, trail) = (spec.missing[0], spec.missing[n - 1]);
    (first_trailing.is_none() && last_leading.is_none())
        || (last_leading.is_none() && lead)
        || (first_trailing.is_none() && trail)
        || (lead && trail && bigger(last_leading, first_trailing))
        || (lead && !trail && bigger(last_leading, Some(end)))
        || (!lead && trail && bigger(Some(start), first_trailing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64, row: u64) -> Ordinal {
        Ordinal {
            timestamp_ms: ms,
            tiebreaker: None,
            row,
        }
    }

    fn hit(role: Role, key: &str, ms: i64, event: u64) -> StepHit {
        StepHit {
            role,
            key: vec![Some(key.to_string())],
            ordinal: at(ms, event),
            event,
        }
    }

    fn events(out: &[Sequence]) -> Vec<Vec<u64>> {
        out.iter()
            .map(|s| s.matched().map(|(_, e)| e).collect())
            .collect()
    }

    fn spec(steps: usize, maxspan_ms: Option<i64>) -> Spec {
        Spec {
            missing: vec![false; steps],
            maxspan_ms,
        }
    }

    #[test]
    fn a_later_step_extends_the_latest_waiting_sequence_and_drops_older_ones() {
        let hits = [
            hit(Role::Step(0), "h1", 10, 1),
            hit(Role::Step(0), "h1", 20, 2),
            hit(Role::Step(1), "h1", 30, 3),
            hit(Role::Step(1), "h1", 40, 4),
            hit(Role::Step(0), "h2", 15, 5),
            hit(Role::Step(1), "h2", 16, 6),
        ];
        assert_eq!(
            events(&assemble(&spec(2, None), &hits)),
            vec![vec![5, 6], vec![2, 3]]
        );
    }

    #[test]
    fn an_event_never_plays_two_steps_of_one_sequence() {
        let hits = [
            hit(Role::Step(0), "h", 10, 1),
            hit(Role::Step(1), "h", 10, 1),
            hit(Role::Step(0), "h", 10, 2),
            hit(Role::Step(1), "h", 10, 2),
        ];
        // Same millisecond: the row order decides, so event 1 then event 2.
        assert_eq!(events(&assemble(&spec(2, None), &hits)), vec![vec![1, 2]]);
        // A repeated step (runs=2) needs two events.
        let runs = [
            hit(Role::Step(0), "h", 1, 1),
            hit(Role::Step(1), "h", 1, 1),
            hit(Role::Step(2), "h", 5, 3),
        ];
        assert!(assemble(&spec(3, None), &runs).is_empty());
    }

    #[test]
    fn maxspan_accepts_a_span_equal_to_it_and_a_refused_extension_is_gone() {
        let equal = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 1000, 2),
        ];
        assert_eq!(assemble(&spec(2, Some(1000)), &equal).len(), 1);
        let over = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 1001, 2),
            hit(Role::Step(1), "h", 1002, 3),
        ];
        assert!(assemble(&spec(2, Some(1000)), &over).is_empty());
    }

    #[test]
    fn until_cancels_what_is_pending_between_two_steps() {
        let cancelled = [
            hit(Role::Step(0), "h", 1, 1),
            hit(Role::Until, "h", 2, 2),
            hit(Role::Step(1), "h", 3, 3),
        ];
        assert!(assemble(&spec(2, None), &cancelled).is_empty());
        let earlier = [
            hit(Role::Until, "h", 0, 9),
            hit(Role::Step(0), "h", 1, 1),
            hit(Role::Step(1), "h", 3, 3),
            hit(Role::Until, "other", 2, 8),
        ];
        assert_eq!(
            events(&assemble(&spec(2, None), &earlier)),
            vec![vec![1, 3]]
        );
    }

    #[test]
    fn missing_events_discard_sequences_as_elasticsearch_checks_them() {
        let middle = Spec {
            missing: vec![false, true, false],
            maxspan_ms: Some(10_000),
        };
        let with_gap_event = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 500, 2),
            hit(Role::Step(2), "h", 1000, 3),
        ];
        assert!(assemble(&middle, &with_gap_event).is_empty());
        let at_the_boundary = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 1000, 2),
            hit(Role::Step(2), "h", 1000, 3),
        ];
        assert_eq!(assemble(&middle, &at_the_boundary).len(), 1);
        let trailing = Spec {
            missing: vec![false, false, true],
            maxspan_ms: Some(10_000),
        };
        let close = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 100, 2),
            hit(Role::Step(2), "h", 5_000, 3),
        ];
        assert!(assemble(&trailing, &close).is_empty());
        let far = [
            hit(Role::Step(0), "h", 0, 1),
            hit(Role::Step(1), "h", 100, 2),
            hit(Role::Step(2), "h", 20_000, 3),
        ];
        assert_eq!(events(&assemble(&trailing, &far)), vec![vec![1, 2]]);
        let leading = Spec {
            missing: vec![true, false, false],
            maxspan_ms: Some(10_000),
        };
        let before = [
            hit(Role::Step(0), "h", 9_000, 3),
            hit(Role::Step(1), "h", 10_000, 1),
            hit(Role::Step(2), "h", 11_000, 2),
        ];
        assert!(assemble(&leading, &before).is_empty());
    }

    /// Elasticsearch's own order of work: all hits of one step, then the next step's, each
    /// step's hits in ordinal order, with every `until` event known up front.
    fn stage_by_stage(spec: &Spec, hits: &[StepHit]) -> Vec<Sequence> {
        let positive: Vec<usize> = (0..spec.missing.len())
            .filter(|s| !spec.missing[*s])
            .collect();
        let of = |role: Role| {
            let mut v: Vec<&StepHit> = hits.iter().filter(|h| h.role == role).collect();
            v.sort_by_key(|h| h.ordinal);
            v
        };
        let untils = of(Role::Until);
        let mut groups: HashMap<&Key, Vec<Sequence>> = HashMap::new();
        for h in of(Role::Step(positive[0])) {
            let mut events = vec![None; spec.missing.len()];
            events[positive[0]] = Some((h.ordinal, h.event));
            groups.entry(&h.key).or_default().push(Sequence {
                key: h.key.clone(),
                events,
            });
        }
        for &step in &positive[1..] {
            let mut next: HashMap<&Key, Vec<Sequence>> = HashMap::new();
            for h in of(Role::Step(step)) {
                let Some(group) = groups.get_mut(&h.key) else {
                    continue;
                };
                let Some(i) = group.iter().rposition(|s| s.last() < h.ordinal) else {
                    continue;
                };
                let mut seq = group.remove(i);
                group.drain(..i);
                if exceeds(
                    spec.maxspan_ms,
                    seq.first().timestamp_ms,
                    h.ordinal.timestamp_ms,
                ) {
                    continue;
                }
                let until = untils
                    .iter()
                    .filter(|u| u.key == h.key && u.ordinal < h.ordinal)
                    .map(|u| u.ordinal)
                    .max();
                if until.is_some_and(|u| u >= seq.last() && u <= h.ordinal) {
                    continue;
                }
                seq.events[step] = Some((h.ordinal, h.event));
                next.entry(&h.key).or_default().push(seq);
            }
            groups = next;
        }
        let mut missing: HashMap<(usize, &Key), Vec<Ordinal>> = HashMap::new();
        for h in hits {
            if let Role::Step(s) = h.role {
                if spec.missing[s] {
                    missing.entry((s, &h.key)).or_default().push(h.ordinal);
                }
            }
        }
        for list in missing.values_mut() {
            list.sort();
        }
        let mut out: Vec<Sequence> = groups
            .into_values()
            .flatten()
            .filter(|s| no_missing_event(spec, s, &missing))
            .collect();
        out.sort_by_key(|s| (s.first(), s.last()));
        out
    }

    #[test]
    fn event_by_event_equals_elasticsearchs_step_by_step_order() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut found = 0;
        for case in 0..3000 {
            let steps = 2 + rand(3) as usize;
            let mut missing: Vec<bool> = (0..steps).map(|_| rand(5) == 0).collect();
            if missing.iter().all(|m| *m) {
                missing[0] = false;
            }
            let spec = Spec {
                missing,
                maxspan_ms: (rand(3) > 0).then(|| 1 + rand(20) as i64),
            };
            let mut hits = Vec::new();
            for event in 0..(5 + rand(30)) {
                // Coarse times so that ties and gaps equal to maxspan are common.
                let ordinal = Ordinal {
                    timestamp_ms: rand(40) as i64,
                    tiebreaker: (rand(4) == 0).then(|| rand(3) as i64),
                    row: event,
                };
                let key = vec![(rand(6) > 0).then(|| format!("k{}", rand(2)))];
                for step in 0..steps {
                    if rand(3) == 0 {
                        hits.push(StepHit {
                            role: Role::Step(step),
                            key: key.clone(),
                            ordinal,
                            event,
                        });
                    }
                }
                if rand(8) == 0 {
                    hits.push(StepHit {
                        role: Role::Until,
                        key: key.clone(),
                        ordinal,
                        event,
                    });
                }
            }
            let ours = assemble(&spec, &hits);
            assert_eq!(
                ours,
                stage_by_stage(&spec, &hits),
                "case {case}: {spec:?} {hits:?}"
            );
            found += ours.len();
        }
        assert!(found > 1000, "only {found} sequences in all cases");
    }

    #[test]
    fn ordinals_order_tiebreakers_before_rows_and_none_last() {
        let a = Ordinal {
            timestamp_ms: 5,
            tiebreaker: Some(2),
            row: 1,
        };
        let b = Ordinal {
            timestamp_ms: 5,
            tiebreaker: None,
            row: 0,
        };
        let c = Ordinal {
            timestamp_ms: 5,
            tiebreaker: Some(1),
            row: 9,
        };
        let mut v = vec![a, b, c];
        v.sort();
        assert_eq!(v, vec![c, a, b]);
    }
}
