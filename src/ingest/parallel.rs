//! An ordered parallel map: work units read on the calling thread are processed on worker
//! threads and their results handed back in input order.
//!
//! Reading a file is serial and so is appending rows to the partition buffers, but turning
//! raw lines into mapped documents (JSON parsing, the ingest pipeline, script statistics) is
//! independent per unit and is where conversion spends its time. [`ordered_map`] keeps at most
//! two units per worker in flight, so memory stays bounded whatever the input size.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};

/// Processes every unit of `units` with `work` on up to `threads` worker threads and passes
/// the results to `sink` in the order of `units`. Stops early, returning false, as soon as
/// `sink` returns false. A panic in `work` is re-raised on the calling thread.
pub fn ordered_map<U, R>(
    threads: usize,
    units: &mut dyn Iterator<Item = U>,
    work: &(dyn Fn(U) -> R + Sync),
    sink: &mut dyn FnMut(R) -> bool,
) -> bool
where
    U: Send,
    R: Send,
{
    if threads <= 1 {
        for unit in units {
            if !sink(work(unit)) {
                return false;
            }
        }
        return true;
    }
    let (work_tx, work_rx) = mpsc::channel::<(u64, U)>();
    let work_rx = Mutex::new(work_rx);
    let work_rx = &work_rx;
    std::thread::scope(move |scope| {
        // Owned by this closure: dropped when it returns, which lets the workers finish.
        let work_tx = work_tx;
        let (done_tx, done_rx) = mpsc::channel::<(u64, std::thread::Result<R>)>();
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let next = work_rx
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .recv();
                let Ok((seq, unit)) = next else { break };
                let result = catch_unwind(AssertUnwindSafe(|| work(unit)));
                if done_tx.send((seq, result)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let max_in_flight = threads * 2;
        let mut reorder: BTreeMap<u64, std::thread::Result<R>> = BTreeMap::new();
        let (mut next_seq, mut next_out, mut exhausted) = (0u64, 0u64, false);
        loop {
            while !exhausted && next_seq - next_out < max_in_flight as u64 {
                match units.next() {
                    Some(unit) => {
                        if work_tx.send((next_seq, unit)).is_err() {
                            exhausted = true;
                        }
                        next_seq += 1;
                    }
                    None => exhausted = true,
                }
            }
            if let Some(result) = reorder.remove(&next_out) {
                next_out += 1;
                match result {
                    Ok(r) => {
                        if !sink(r) {
                            return false;
                        }
                    }
                    Err(panic) => resume_unwind(panic),
                }
                continue;
            }
            if exhausted && next_out == next_seq {
                return true;
            }
            match done_rx.recv() {
                Ok((seq, result)) => {
                    reorder.insert(seq, result);
                }
                // Every worker is gone; only possible if all of them stopped early.
                Err(_) => return next_out == next_seq,
            }
        }
    })
}

/// Worker threads to use: every core the process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order() {
        for threads in [1, 2, 7] {
            let mut out = Vec::new();
            let done = ordered_map(
                threads,
                &mut (0..1000u64),
                &|i| {
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                    i * i
                },
                &mut |r| {
                    out.push(r);
                    true
                },
            );
            assert!(done);
            assert_eq!(out, (0..1000u64).map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_false_sink_stops_early() {
        let mut seen = 0;
        let done = ordered_map(2, &mut (0..100_000u32), &|i| i, &mut |_| {
            seen += 1;
            seen < 10
        });
        assert!(!done);
        assert_eq!(seen, 10);
    }

    #[test]
    #[should_panic(expected = "unit 5")]
    fn a_worker_panic_reaches_the_caller() {
        ordered_map(
            2,
            &mut (0..10u32),
            &|i| {
                if i == 5 {
                    panic!("unit 5");
                }
                i
            },
            &mut |_| true,
        );
    }
}
