//! Elastic's detection engine replayed over a rule version's hits.
//!
//! A query rule does not alert on every matching event: the engine runs it every `interval`,
//! each execution searching `[t - lookback, t]` (both ends included; the lookback is the
//! rule's `from`, `now-6m` by default) on `timestamp_override` or `@timestamp`, and creates
//! at most `max_signals` alerts, oldest event first. An event already alerted by an earlier,
//! overlapping execution is not alerted again and does not count against the cap. So bursts
//! lose alerts to the cap, and a schedule whose lookback is shorter than its interval never
//! looks at the events in between.
//!
//! An EQL rule's execution is one EQL search of `size = max_signals` with Elasticsearch's
//! default `result_position: tail`: it gets the window's *latest* `max_signals` matches, and
//! the ones alerted before are among them (they are not created again, and they take their
//! place in the cap) ([`Schedule::newest_first`]).
//!
//! [`replay`] runs the executions `start, start + interval, ...` until one reaches `end`
//! over the hit times of one version and says which event each execution alerted.

use std::collections::HashSet;

use crate::sequence::{assemble, Sequence, Spec, StepHit};

/// When and how much a rule version searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval_us: i64,
    pub lookback_us: i64,
    pub max_signals: usize,
    /// An EQL rule: each execution takes its window's latest `max_signals` matches,
    /// alerted before or not.
    pub newest_first: bool,
}

impl Schedule {
    /// From a rule's `interval` (`5m`), `from` (`now-6m`) and `max_signals`.
    pub fn of(interval: &str, from: &str, max_signals: u32) -> Result<Schedule, ScheduleError> {
        let interval_us = duration_us(interval)
            .filter(|&d| d > 0)
            .ok_or_else(|| ScheduleError::Interval(interval.to_string()))?;
        let lookback_us = from
            .trim()
            .strip_prefix("now-")
            .and_then(duration_us)
            .ok_or_else(|| ScheduleError::From(from.to_string()))?;
        Ok(Schedule {
            interval_us,
            lookback_us,
            max_signals: max_signals as usize,
            newest_first: false,
        })
    }
}

/// A rule's schedule that does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    Interval(String),
    From(String),
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleError::Interval(i) => write!(f, "interval `{i}` is not a duration such as 5m"),
            ScheduleError::From(from) => {
                write!(f, "from `{from}` is not `now-` and a duration such as 6m")
            }
        }
    }
}

impl std::error::Error for ScheduleError {}

/// An Elasticsearch time unit duration (`30s`, `5m`, `1h`, `2d`) in microseconds.
pub fn duration_us(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_us: i64 = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return None,
    };
    n.checked_mul(unit_us)
}

/// What the engine would have done with one version's hits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replay {
    /// For each hit, as given: the time of the execution that alerted it.
    pub alerted_at: Vec<Option<i64>>,
    pub alerts: usize,
    pub executions: u64,
    /// Executions that created `max_signals` alerts and left events in their window.
    pub capped_executions: u64,
    /// Hits some execution saw but none alerted: lost to the cap.
    pub dropped: usize,
    /// Hits no execution's window covered (a lookback shorter than the interval).
    pub uncovered: usize,
}

/// Replays the executions at `start + k × interval` (k = 0, 1, ...) up to the first at or
/// after `end`, over the hits whose event times are `times` (in any order; equal times are
/// taken in the order given).
pub fn replay(times: &[i64], start: i64, end: i64, schedule: &Schedule) -> Replay {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| (times[i], i));
    let mut out = Replay {
        alerted_at: vec![None; times.len()],
        ..Replay::default()
    };
    let mut seen = vec![false; times.len()];
    // The window [t - lookback, t] only moves forward: `first` is its first event in `order`.
    let mut first = 0;
    let mut t = start;
    loop {
        out.executions += 1;
        let from = t.saturating_sub(schedule.lookback_us);
        while first < order.len() && times[order[first]] < from {
            first += 1;
        }
        let window: Vec<usize> = order[first..]
            .iter()
            .copied()
            .take_while(|&i| times[i] <= t)
            .collect();
        let mut created = 0;
        let mut capped = false;
        if schedule.newest_first {
            // The latest `max_signals` of the window; the rest are capped.
            let from_tail = window.len().saturating_sub(schedule.max_signals);
            capped = from_tail > 0
                && window[..from_tail]
                    .iter()
                    .any(|&i| out.alerted_at[i].is_none());
            for (n, &i) in window.iter().enumerate() {
                seen[i] = true;
                if n >= from_tail && out.alerted_at[i].is_none() {
                    out.alerted_at[i] = Some(t);
                    created += 1;
                }
            }
        }
        for &i in window.iter().filter(|_| !schedule.newest_first) {
            seen[i] = true;
            if out.alerted_at[i].is_some() {
                continue;
            }
            if created == schedule.max_signals {
                capped = true;
                continue;
            }
            out.alerted_at[i] = Some(t);
            created += 1;
        }
        out.alerts += created;
        out.capped_executions += u64::from(capped);
        if t >= end {
            break;
        }
        t = t.saturating_add(schedule.interval_us);
    }
    for (at, seen) in out.alerted_at.iter().zip(&seen) {
        match (at, seen) {
            (Some(_), _) => {}
            (None, true) => out.dropped += 1,
            (None, false) => out.uncovered += 1,
        }
    }
    out
}

/// What the engine would have done with one sequence version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceReplay {
    pub alerts: usize,
    pub executions: u64,
    /// Executions whose window held more sequences than `max_signals`, some not alerted.
    pub capped_executions: u64,
    /// Sequences some execution found but none alerted.
    pub dropped: usize,
    /// Sequences of the whole data that no execution's window held whole.
    pub uncovered: usize,
    /// The search time of the first event of each alerted sequence.
    pub alerted_first: Vec<i64>,
}

/// Replays an EQL sequence rule: each execution joins the step events its window holds
/// (`times[event]` is each event's search time), as its search does, and alerts the latest
/// `max_signals` sequences it finds, each once (a sequence is its events).
pub fn replay_sequences(
    spec: &Spec,
    hits: &[StepHit],
    times: &[i64],
    start: i64,
    end: i64,
    schedule: &Schedule,
) -> SequenceReplay {
    let time = |h: &StepHit| times.get(h.event as usize).copied().unwrap_or(i64::MIN);
    let mut order: Vec<&StepHit> = hits.iter().collect();
    order.sort_by_key(|h| time(h));
    let id = |s: &Sequence| -> Vec<u64> { s.events.iter().flatten().map(|(_, e)| *e).collect() };
    let mut out = SequenceReplay::default();
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    let mut alerted: HashSet<Vec<u64>> = HashSet::new();
    let mut first = 0;
    let mut t = start;
    loop {
        out.executions += 1;
        let from = t.saturating_sub(schedule.lookback_us);
        while first < order.len() && time(order[first]) < from {
            first += 1;
        }
        let window: Vec<StepHit> = order[first..]
            .iter()
            .take_while(|h| time(h) <= t)
            .map(|h| (*h).clone())
            .collect();
        let found = assemble(spec, &window);
        let from_tail = found.len().saturating_sub(schedule.max_signals);
        for (n, s) in found.iter().enumerate() {
            let key = id(s);
            seen.insert(key.clone());
            if n < from_tail {
                continue;
            }
            if alerted.insert(key.clone()) {
                out.alerts += 1;
                let first_event = key.first().map_or(i64::MIN, |&e| {
                    times.get(e as usize).copied().unwrap_or(i64::MIN)
                });
                out.alerted_first.push(first_event);
            }
        }
        let capped = found[..from_tail].iter().any(|s| !alerted.contains(&id(s)));
        out.capped_executions += u64::from(capped);
        if t >= end {
            break;
        }
        t = t.saturating_add(schedule.interval_us);
    }
    out.dropped = seen.difference(&alerted).count();
    out.uncovered = assemble(spec, hits)
        .iter()
        .filter(|s| !seen.contains(&id(s)))
        .count();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;
    const SEC: i64 = 1_000_000;

    fn every(interval: &str, from: &str, max: u32) -> Schedule {
        Schedule::of(interval, from, max).expect("schedule")
    }

    #[test]
    fn rule_schedules_parse() {
        assert_eq!(
            every("5m", "now-6m", 100),
            Schedule {
                interval_us: 5 * MIN,
                lookback_us: 6 * MIN,
                max_signals: 100,
                newest_first: false,
            }
        );
        assert_eq!(every("1h", "now-90s", 1).lookback_us, 90 * SEC);
        for (interval, from) in [
            ("5", "now-6m"),
            ("0m", "now-6m"),
            ("5m", "6m"),
            ("5m", "now-6w"),
        ] {
            assert!(
                Schedule::of(interval, from, 100).is_err(),
                "{interval} {from}"
            );
        }
    }

    #[test]
    fn a_burst_over_the_cap_loses_what_no_later_window_sees() {
        // Executions at 0, 5, 10 min (lookback 6): windows [-6, 0], [-1, 5], [4, 10].
        let times = [MIN, 2 * MIN, 3 * MIN];
        let r = replay(&times, 0, 10 * MIN, &every("5m", "now-6m", 2));
        assert_eq!(r.executions, 3);
        assert_eq!(r.alerted_at, vec![Some(5 * MIN), Some(5 * MIN), None]);
        assert_eq!(
            (r.alerts, r.capped_executions, r.dropped, r.uncovered),
            (2, 1, 1, 0)
        );
    }

    #[test]
    fn overlapping_windows_alert_an_event_once_and_pick_up_what_the_cap_left() {
        // 4:10 and 4:20 lie in the windows of 5:00 and 10:00; one alert per execution.
        let times = [4 * MIN + 20 * SEC, 4 * MIN + 10 * SEC];
        let r = replay(&times, 0, 10 * MIN, &every("5m", "now-6m", 1));
        assert_eq!(r.alerted_at, vec![Some(10 * MIN), Some(5 * MIN)]);
        assert_eq!((r.alerts, r.capped_executions, r.dropped), (2, 1, 0));
    }

    #[test]
    fn both_ends_of_a_window_are_inside_it() {
        // The execution at 10:00 searches [4:00, 10:00]; 5:00 is the end of the one before.
        let times = [5 * MIN, 4 * MIN, 10 * MIN, 10 * MIN + 1];
        let r = replay(&times, 0, 10 * MIN, &every("5m", "now-6m", 100));
        assert_eq!(
            r.alerted_at,
            vec![Some(5 * MIN), Some(5 * MIN), Some(10 * MIN), None]
        );
        assert_eq!(r.uncovered, 1, "after the last execution");
        // A window that starts exactly on an event: [4:00, 10:00] with a 6-minute lookback.
        let r = replay(&[4 * MIN], 10 * MIN, 10 * MIN, &every("5m", "now-6m", 100));
        assert_eq!(r.alerted_at, vec![Some(10 * MIN)]);
    }

    #[test]
    fn a_lookback_shorter_than_the_interval_leaves_gaps() {
        // Every 10 minutes looking back 5: [-5, 0], [5, 10], [15, 20].
        let times = [3 * MIN, 7 * MIN, 12 * MIN, 15 * MIN];
        let r = replay(&times, 0, 20 * MIN, &every("10m", "now-5m", 100));
        assert_eq!(r.executions, 3);
        assert_eq!(
            r.alerted_at,
            vec![None, Some(10 * MIN), None, Some(20 * MIN)]
        );
        assert_eq!((r.alerts, r.uncovered, r.dropped), (2, 2, 0));
    }

    #[test]
    fn equal_times_are_alerted_in_the_order_given() {
        let times = [MIN, MIN, MIN];
        let r = replay(&times, 0, 5 * MIN, &every("5m", "now-6m", 2));
        assert_eq!(r.alerted_at, vec![Some(5 * MIN), Some(5 * MIN), None]);
        assert_eq!(r.dropped, 1);
    }

    #[test]
    fn an_eql_execution_takes_the_latest_matches_and_the_alerted_ones_fill_the_cap() {
        let eql = |max| Schedule {
            newest_first: true,
            ..every("5m", "now-6m", max)
        };
        // Windows [-6, 0], [-1, 5], [4, 10]: at 5:00 the latest two of 1, 2, 3 min.
        let times = [MIN, 2 * MIN, 3 * MIN];
        let r = replay(&times, 0, 10 * MIN, &eql(2));
        assert_eq!(r.alerted_at, vec![None, Some(5 * MIN), Some(5 * MIN)]);
        assert_eq!((r.alerts, r.capped_executions, r.dropped), (2, 1, 1));
        // 4:30 is alerted at 5:00; at 10:00 it is again among the latest two, so 4:10 waits
        // for nothing: the cap is full.
        let times = [4 * MIN + 10 * SEC, 4 * MIN + 30 * SEC, 6 * MIN];
        let r = replay(&times, 0, 10 * MIN, &eql(2));
        assert_eq!(r.alerted_at[0], Some(5 * MIN));
        assert_eq!(r.alerted_at[1], Some(5 * MIN));
        assert_eq!(r.alerted_at[2], Some(10 * MIN));
        let times = [4 * MIN + 10 * SEC, 4 * MIN + 20 * SEC, 4 * MIN + 30 * SEC];
        let r = replay(&times, 0, 10 * MIN, &eql(1));
        assert_eq!(r.alerted_at, vec![None, None, Some(5 * MIN)]);
        assert_eq!(
            r.dropped, 2,
            "the same latest match fills both windows' cap"
        );
    }

    #[test]
    fn a_sequence_alerts_once_and_only_from_a_window_that_holds_all_its_events() {
        use crate::sequence::{Ordinal, Role};
        let hit = |role, event: u64, ms: i64| StepHit {
            role,
            key: vec![Some("h".into())],
            ordinal: Ordinal {
                timestamp_ms: ms,
                tiebreaker: None,
                row: event,
            },
            event,
        };
        let spec = Spec {
            missing: vec![false, false],
            maxspan_ms: None,
        };
        // Events at 1:00 and 4:30 (one sequence), 8:00 and 14:30 (too far apart for any
        // six-minute window).
        let times = [MIN, 4 * MIN + 30 * SEC, 8 * MIN, 14 * MIN + 30 * SEC];
        let hits: Vec<StepHit> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| hit(Role::Step(i % 2), i as u64, t / 1000))
            .collect();
        let r = replay_sequences(
            &spec,
            &hits,
            &times,
            0,
            20 * MIN,
            &every("5m", "now-6m", 100),
        );
        assert_eq!(r.executions, 5);
        assert_eq!((r.alerts, r.dropped, r.uncovered), (1, 0, 1));
        assert_eq!(r.alerted_first, vec![MIN]);
    }

    #[test]
    fn random_replays_keep_the_engine_rules() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as i64
        };
        for _ in 0..300 {
            let schedule = Schedule {
                interval_us: (1 + next(10)) * MIN,
                lookback_us: (1 + next(12)) * MIN,
                max_signals: 1 + next(5) as usize,
                newest_first: next(2) == 0,
            };
            let end = next(120) * MIN;
            let times: Vec<i64> = (0..next(60)).map(|_| next(end + MIN)).collect();
            let r = replay(&times, 0, end, &schedule);
            assert_eq!(r.alerted_at.len(), times.len());
            assert_eq!(r.alerts + r.dropped + r.uncovered, times.len());
            assert!(r.alerts as u64 <= r.executions * schedule.max_signals as u64);
            let mut per_execution = std::collections::HashMap::new();
            for (i, at) in r.alerted_at.iter().enumerate() {
                if let Some(t) = *at {
                    assert!(t - schedule.lookback_us <= times[i] && times[i] <= t);
                    assert_eq!(
                        (t % schedule.interval_us, t <= end + schedule.interval_us),
                        (0, true)
                    );
                    *per_execution.entry(t).or_insert(0usize) += 1;
                }
            }
            assert!(per_execution.values().all(|&n| n <= schedule.max_signals));
            if schedule.lookback_us >= schedule.interval_us {
                let last =
                    (end + schedule.interval_us - 1) / schedule.interval_us * schedule.interval_us;
                let inside = times.iter().filter(|&&t| t <= last).count();
                assert_eq!(r.uncovered, times.len() - inside, "{schedule:?}");
            }
        }
    }
}
