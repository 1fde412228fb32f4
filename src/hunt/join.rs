//! The sequence join after the scan: the events each step of each sequence version matched
//! wait in a [`Spool`] (spilled to disk past its memory budget, like the hits), come back
//! one sequence version at a time in the dataset's row order, and are joined by
//! [`sequence::assemble`] into sequences, whose events are spooled as hits. Memory holds the
//! events of one sequence version at a time, not of all of them.

use std::cmp::Ordering;
use std::io::BufRead;
use std::sync::Arc;

use crate::rules::pack::RuleVersion;
use crate::sequence::{self, Join, Ordinal, Role as SequenceRole, StepHit};
use crate::sink::spool::{put_str, RunReader, Spool, Spooled};
use crate::sink::{Hit, SequenceRef, SinkError};

use super::SequenceSteps;

/// The columns read whole for the events of sequence steps (every join key field, then the
/// tiebreaker) and for the hits of threshold and new-terms versions (their grouping fields).
pub(super) struct KeyColumns {
    pub columns: Vec<String>,
}

/// Orders events of equal timestamps in a sequence (Elasticsearch's tiebreaker field).
const TIEBREAKER: &str = "event.sequence";

impl KeyColumns {
    pub fn of(sequences: &[(&RuleVersion, &Join)], grouped: &[String]) -> KeyColumns {
        let mut columns: Vec<String> = Vec::new();
        let sequence_keys = sequences.iter().flat_map(|(_, join)| join.key_fields());
        for f in sequence_keys.chain(grouped.iter().map(String::as_str)) {
            if !columns.iter().any(|c| c == f) {
                columns.push(f.to_string());
            }
        }
        if !sequences.is_empty() && !columns.iter().any(|c| c == TIEBREAKER) {
            columns.push(TIEBREAKER.to_string());
        }
        KeyColumns { columns }
    }

    fn position(&self, field: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == field)
    }
}

/// An event one step of a sequence matched, as the scan found it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepEvent {
    /// The sequence version, an index into the pass's sequences.
    pub sequence: usize,
    pub role: SequenceRole,
    pub hit: Hit,
    /// The values of [`KeyColumns`] on the event.
    pub keys: Arc<[Vec<String>]>,
}

/// A step role as a number: steps in order, then `until`.
fn role_number(role: SequenceRole) -> u64 {
    match role {
        SequenceRole::Step(n) => n as u64,
        SequenceRole::Until => u64::MAX,
    }
}

impl Spooled for StepEvent {
    fn footprint(&self) -> usize {
        const ALLOCATION: usize = 16;
        let keys: usize = self
            .keys
            .iter()
            .map(|values| ALLOCATION + values.iter().map(|v| ALLOCATION + v.len()).sum::<usize>())
            .sum();
        std::mem::size_of::<StepEvent>() - std::mem::size_of::<Hit>()
            + self.hit.footprint()
            + keys / Arc::strong_count(&self.keys)
    }

    /// By sequence version, then the dataset's row order (the last of the ordinal's
    /// tiebreakers), then role.
    fn order(a: &Self, b: &Self) -> Ordering {
        fn at(e: &StepEvent) -> (usize, &str, &str, u64, u64) {
            let h = &e.hit;
            (e.sequence, &h.dataset, &h.file, h.row, role_number(e.role))
        }
        at(a).cmp(&at(b))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.sequence as u64).to_le_bytes());
        out.extend_from_slice(&role_number(self.role).to_le_bytes());
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for values in self.keys.iter() {
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                put_str(out, v);
            }
        }
        self.hit.encode(out);
    }

    fn decode<R: BufRead>(input: &mut RunReader<R>) -> Result<Self, SinkError> {
        let sequence = input.count(usize::MAX)?;
        let role = match u64::from_le_bytes(input.array()?) {
            u64::MAX => SequenceRole::Until,
            n => SequenceRole::Step(usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let columns = input.count(1 << 16)?;
        let mut keys = Vec::with_capacity(columns);
        for _ in 0..columns {
            let n = input.count(usize::MAX)?;
            let mut values = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                values.push(input.read_str()?);
            }
            keys.push(values);
        }
        Ok(StepEvent {
            sequence,
            role,
            hit: Hit::decode(input)?,
            keys: keys.into(),
        })
    }
}

/// Joins each sequence version's step events into its sequences and spools one hit per
/// event of each, numbered per version in the order the sequences come. With `keep`,
/// returns each version's step events as the join took them (what a backtest replays).
pub(super) fn join_sequences(
    sequences: &[(&RuleVersion, &Join)],
    keys: &KeyColumns,
    events: Spool<StepEvent>,
    spool: &mut Spool,
    keep: bool,
) -> Result<Vec<SequenceSteps>, SinkError> {
    let mut kept = Vec::new();
    let mut group: Vec<StepEvent> = Vec::new();
    let mut join = |group: &[StepEvent], kept: &mut Vec<SequenceSteps>| {
        let (hits, steps) = join_one(sequences, keys, group, keep);
        spool.extend(hits)?;
        kept.extend(steps);
        Ok::<(), SinkError>(())
    };
    events.each(&mut |e| {
        if group.first().is_some_and(|g| g.sequence != e.sequence) {
            join(&group, &mut kept)?;
            group.clear();
        }
        group.push(e);
        Ok(())
    })?;
    if !group.is_empty() {
        join(&group, &mut kept)?;
    }
    Ok(kept)
}

/// The hits of one sequence version's sequences, from its step events (all of one
/// sequence, in the dataset's row order), and with `keep` the step events as the join took
/// them.
fn join_one(
    sequences: &[(&RuleVersion, &Join)],
    keys: &KeyColumns,
    group: &[StepEvent],
    keep: bool,
) -> (Vec<Hit>, Option<SequenceSteps>) {
    let Some((rule, join)) = group.first().and_then(|e| sequences.get(e.sequence)) else {
        return (Vec::new(), None);
    };
    let tiebreaker = keys.position(TIEBREAKER);
    let mut hits = Vec::new();
    let mut rank = 0u64;
    for (i, e) in group.iter().enumerate() {
        let same_event = i > 0 && {
            let p = &group[i - 1].hit;
            (&p.dataset, &p.file, p.row) == (&e.hit.dataset, &e.hit.file, e.hit.row)
        };
        if i > 0 && !same_event {
            rank += 1;
        }
        let step = match e.role {
            SequenceRole::Step(n) => match join.steps.get(n) {
                Some(s) => s,
                None => continue,
            },
            SequenceRole::Until => match &join.until {
                Some(u) => u,
                None => continue,
            },
        };
        let values: Vec<Vec<String>> = step
            .keys
            .iter()
            .map(|k| {
                keys.position(&k.path)
                    .and_then(|p| e.keys.get(p).cloned())
                    .unwrap_or_default()
            })
            .collect();
        let ordinal = Ordinal {
            timestamp_ms: e.hit.timestamp_us.div_euclid(1000),
            tiebreaker: tiebreaker
                .and_then(|p| e.keys.get(p))
                .and_then(|v| v.first())
                .and_then(|v| v.trim().parse::<i64>().ok()),
            row: rank,
        };
        for key in sequence::keys_of(&values) {
            hits.push(StepHit {
                role: e.role,
                key,
                ordinal,
                event: i as u64,
            });
        }
    }
    let spec = join.spec();
    let mut out = Vec::new();
    for (n, found) in sequence::assemble(&spec, &hits).iter().enumerate() {
        for (step, event) in found.events.iter().enumerate() {
            let Some((_, i)) = event else { continue };
            let Some(e) = group.get(*i as usize) else {
                continue;
            };
            let mut hit = e.hit.clone();
            hit.sequence = Some(SequenceRef {
                id: n as u64 + 1,
                step: step as u32,
            });
            out.push(hit);
        }
    }
    let steps = keep.then(|| SequenceSteps {
        rule_id: rule.rule_id.clone(),
        version: rule.version,
        spec,
        hits,
        events: group.iter().map(|e| e.hit.clone()).collect(),
    });
    (out, steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::TRIAGE_FIELDS;

    fn event(i: u64) -> StepEvent {
        StepEvent {
            sequence: (i % 4) as usize,
            role: match i % 5 {
                4 => SequenceRole::Until,
                n => SequenceRole::Step(n as usize),
            },
            hit: Hit {
                rule_id: format!("r{}", i % 4),
                rule_version: 1,
                role: crate::plan::Role::Version,
                rule_name: "n".into(),
                rule_type: "eql".into(),
                severity: "low".into(),
                risk_score: 1.0,
                timestamp_us: (i * 7919 % 1000) as i64,
                fields: vec![None; TRIAGE_FIELDS.len()].into(),
                matched: Vec::new(),
                dataset: "d".into(),
                file: format!("part-{}", i % 3),
                row: i / 3,
                sequence: None,
            },
            keys: vec![
                vec![format!("host-{}", i % 7)],
                Vec::new(),
                vec!["a".into(), "é".into()],
            ]
            .into(),
        }
    }

    #[test]
    fn step_events_spilled_and_merged_equal_an_in_memory_sort() {
        let mut want: Vec<StepEvent> = (0..5_000).map(event).collect();
        want.sort_by(StepEvent::order);
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut spool: Spool<StepEvent> = Spool::new(&tmp.path().join("steps-"), 20_000);
        spool.extend((0..5_000).map(event)).expect("extend");
        assert!(spool.runs() > 10, "{} runs", spool.runs());
        let mut got = Vec::new();
        spool
            .each(&mut |e| {
                got.push(e);
                Ok(())
            })
            .expect("merge");
        assert!(got == want, "the same events in the same order");
        assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
    }
}
