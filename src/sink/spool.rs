//! Hits put in the hit table's order within a fixed memory budget (an external merge sort).
//!
//! A noisy rule version over months of data can match millions of events; holding them all
//! to sort them would make memory grow with the data. The spool keeps hits in memory up to
//! a budget; past it, it sorts what it holds and writes it to a temporary *run* file in a
//! compact binary form. When the scan is over, the runs and what is still in memory are
//! merged, and the hits come out in order, a batch at a time. Run files live in a temporary
//! directory that is removed when the spool is dropped, finished or not.
//!
//! Anything [`Spooled`] goes through one: the hits, and the events of sequence steps, which
//! wait for the join.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Damage, SinkError, SinkErrorKind};
use super::{order, Hit, SequenceRef, TRIAGE_FIELDS};
use crate::plan::Role;

/// Hits handed to the consumer at a time.
pub const BATCH: usize = 8192;

/// Memory the spool holds before it spills (the default of [`Spool::new`]).
pub const DEFAULT_BUDGET: usize = 128 << 20;

/// What a spool can hold: ordered, sized, and written to a run and read back.
pub trait Spooled: Sized {
    /// Approximate heap and inline bytes.
    fn footprint(&self) -> usize;
    fn order(a: &Self, b: &Self) -> Ordering;
    fn encode(&self, out: &mut Vec<u8>);
    /// One item, as [`Spooled::encode`] wrote it.
    fn decode<R: BufRead>(input: &mut RunReader<R>) -> Result<Self, SinkError>;
}

impl Spooled for Hit {
    fn footprint(&self) -> usize {
        footprint(self)
    }

    fn order(a: &Self, b: &Self) -> Ordering {
        order(a, b)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out)
    }

    fn decode<R: BufRead>(input: &mut RunReader<R>) -> Result<Self, SinkError> {
        decode(input)
    }
}

pub struct Spool<T: Spooled = Hit> {
    /// The run directory is made on first spill, beside this path and named starting with
    /// its name.
    prefix: PathBuf,
    dir: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
    buffer: Vec<T>,
    buffered: usize,
    budget: usize,
    total: u64,
}

/// Approximate heap and inline bytes of a hit: its own strings, and its share of the
/// event's fields (held once for every hit on the event) and of the labels (held by the
/// plan).
fn footprint(h: &Hit) -> usize {
    const ALLOCATION: usize = 16;
    let fields = std::mem::size_of_val::<[Option<String>]>(&h.fields)
        + h.fields
            .iter()
            .flatten()
            .map(|f| ALLOCATION + f.len())
            .sum::<usize>();
    std::mem::size_of::<Hit>()
        + h.rule_id.len()
        + h.rule_name.len()
        + h.rule_type.len()
        + h.severity.len()
        + h.dataset.len()
        + h.file.len()
        + 6 * ALLOCATION
        + fields / Arc::strong_count(&h.fields)
        + std::mem::size_of_val::<[Arc<str>]>(&h.matched)
}

impl<T: Spooled> Spool<T> {
    /// A spool that spills past `budget` bytes to a temporary directory whose path starts
    /// with `prefix` (a directory, then the start of a name).
    pub fn new(prefix: &Path, budget: usize) -> Spool<T> {
        Spool {
            prefix: prefix.to_path_buf(),
            dir: None,
            runs: Vec::new(),
            buffer: Vec::new(),
            buffered: 0,
            budget,
            total: 0,
        }
    }

    /// Hits taken so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Runs written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) -> Result<(), SinkError> {
        for hit in items {
            self.buffered += hit.footprint();
            self.buffer.push(hit);
            self.total += 1;
            if self.buffered > self.budget {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Sorts the buffer and writes it as a run.
    fn spill(&mut self) -> Result<(), SinkError> {
        let dir = match &self.dir {
            Some(d) => d.path().to_path_buf(),
            None => {
                let parent = match self.prefix.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = self
                    .prefix
                    .file_name()
                    .map_or(".quarry-spool-".into(), |n| {
                        n.to_string_lossy().into_owned()
                    });
                std::fs::create_dir_all(&parent).map_err(|e| SinkError::io(&parent, e))?;
                let d = tempfile::Builder::new()
                    .prefix(&name)
                    .tempdir_in(&parent)
                    .map_err(|e| SinkError::io(&parent, e))?;
                let path = d.path().to_path_buf();
                self.dir = Some(d);
                path
            }
        };
        self.buffer.sort_by(T::order);
        let path = dir.join(format!("run-{:05}", self.runs.len()));
        write_run(&path, &self.buffer)?;
        self.buffer.clear();
        self.buffered = 0;
        self.runs.push(path);
        Ok(())
    }

    /// Everything in order, to `out` in batches of at most [`BATCH`].
    pub fn drain(
        self,
        out: &mut dyn FnMut(&[T]) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let mut batch = Vec::with_capacity(BATCH);
        self.each(&mut |item| {
            batch.push(item);
            if batch.len() == BATCH {
                out(&batch)?;
                batch.clear();
            }
            Ok(())
        })?;
        match batch.is_empty() {
            true => Ok(()),
            false => out(&batch),
        }
    }

    /// Everything in order, one at a time, to `out`.
    pub fn each(
        mut self,
        out: &mut dyn FnMut(T) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        self.buffer.sort_by(T::order);
        if self.runs.is_empty() {
            return std::mem::take(&mut self.buffer)
                .into_iter()
                .try_for_each(out);
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            let file = File::open(path).map_err(|e| SinkError::io(path, e))?;
            readers.push(RunReader {
                input: BufReader::with_capacity(1 << 16, file),
                path: path.clone(),
            });
        }
        let mut memory = std::mem::take(&mut self.buffer).into_iter();
        let memory_source = readers.len();
        let mut heap = BinaryHeap::new();
        for (source, reader) in readers.iter_mut().enumerate() {
            if let Some(hit) = reader.next()? {
                heap.push(Head { hit, source });
            }
        }
        if let Some(hit) = memory.next() {
            heap.push(Head {
                hit,
                source: memory_source,
            });
        }
        while let Some(Head { hit, source }) = heap.pop() {
            out(hit)?;
            let next = match readers.get_mut(source) {
                Some(reader) => reader.next()?,
                None => memory.next(),
            };
            if let Some(hit) = next {
                heap.push(Head { hit, source });
            }
        }
        Ok(())
    }
}

/// The smallest unread item of a source, ordered for a min-heap.
struct Head<T> {
    hit: T,
    source: usize,
}

impl<T: Spooled> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap pops the greatest. Equal items leave by source (the order
        // they were spooled in), so the merge is deterministic.
        T::order(&other.hit, &self.hit).then(other.source.cmp(&self.source))
    }
}

impl<T: Spooled> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Spooled> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T: Spooled> Eq for Head<T> {}

/// A string as bytes: its length, little-endian, then its UTF-8.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A hit as bytes: numbers little-endian, strings length-prefixed, an absent field as
/// length `u64::MAX`.
fn role_byte(role: Role) -> u8 {
    match role {
        Role::Version => 0,
        Role::WhatIf => 1,
        Role::GroundTruth => 2,
    }
}

/// Set in the role byte of a hit that is an event of a sequence (its id and step follow).
const IN_SEQUENCE: u8 = 0x10;

fn encode(h: &Hit, out: &mut Vec<u8>) {
    put_str(out, &h.rule_id);
    out.extend_from_slice(&h.rule_version.to_le_bytes());
    match h.sequence {
        None => out.push(role_byte(h.role)),
        Some(s) => {
            out.push(role_byte(h.role) | IN_SEQUENCE);
            out.extend_from_slice(&s.id.to_le_bytes());
            out.extend_from_slice(&s.step.to_le_bytes());
        }
    }
    put_str(out, &h.rule_name);
    put_str(out, &h.rule_type);
    put_str(out, &h.severity);
    out.extend_from_slice(&h.risk_score.to_le_bytes());
    out.extend_from_slice(&h.timestamp_us.to_le_bytes());
    out.extend_from_slice(&(h.fields.len() as u64).to_le_bytes());
    for f in h.fields.iter() {
        match f {
            Some(s) => put_str(out, s),
            None => out.extend_from_slice(&u64::MAX.to_le_bytes()),
        }
    }
    out.extend_from_slice(&(h.matched.len() as u64).to_le_bytes());
    for m in &h.matched {
        put_str(out, m);
    }
    put_str(out, &h.dataset);
    put_str(out, &h.file);
    out.extend_from_slice(&h.row.to_le_bytes());
}

/// Writes `hits` to a new file at `path` in the spool's run format (an incremental hunt's
/// segments use it too).
pub fn write_hits(path: &Path, hits: &[Hit]) -> Result<(), SinkError> {
    write_run(path, hits)
}

fn write_run<T: Spooled>(path: &Path, items: &[T]) -> Result<(), SinkError> {
    let io = |e| SinkError::io(path, e);
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let mut bytes = Vec::new();
    for item in items {
        bytes.clear();
        item.encode(&mut bytes);
        out.write_all(&bytes).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Every hit of a file written by [`write_hits`], its bytes read already; `name` says
/// which file in messages.
pub fn hits_from(bytes: &[u8], name: &str) -> Result<Vec<Hit>, SinkError> {
    let mut reader = RunReader {
        input: bytes,
        path: PathBuf::from(name),
    };
    let mut out = Vec::new();
    while let Some(h) = reader.next()? {
        out.push(h);
    }
    Ok(out)
}

/// Items read back from a run, one at a time.
pub struct RunReader<R> {
    input: R,
    path: PathBuf,
}

/// A hit as [`encode`] wrote it.
fn decode<R: BufRead>(input: &mut RunReader<R>) -> Result<Hit, SinkError> {
    input.hit()
}

impl<R: BufRead> RunReader<R> {
    /// The next item of the run, `None` at its end.
    fn next<T: Spooled>(&mut self) -> Result<Option<T>, SinkError> {
        match self.input.fill_buf() {
            Ok([]) => Ok(None),
            Ok(_) => T::decode(self).map(Some),
            Err(e) => Err(self.error(e)),
        }
    }

    fn hit(&mut self) -> Result<Hit, SinkError> {
        let rule_id = self.read_str()?;
        let rule_version = u32::from_le_bytes(self.array()?);
        let [role_byte] = self.array::<1>()?;
        let role = match role_byte & !IN_SEQUENCE {
            0 => Role::Version,
            1 => Role::WhatIf,
            2 => Role::GroundTruth,
            _ => return Err(self.damaged(Damage::Role(role_byte))),
        };
        let sequence = match role_byte & IN_SEQUENCE {
            0 => None,
            _ => Some(SequenceRef {
                id: u64::from_le_bytes(self.array()?),
                step: u32::from_le_bytes(self.array()?),
            }),
        };
        let rule_name = self.read_str()?;
        let rule_type = self.read_str()?;
        let severity = self.read_str()?;
        let risk_score = f64::from_le_bytes(self.array()?);
        let timestamp_us = i64::from_le_bytes(self.array()?);
        let count = self.count(TRIAGE_FIELDS.len())?;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u64::from_le_bytes(self.array()?);
            fields.push(match len {
                u64::MAX => None,
                n => Some(self.string(n)?),
            });
        }
        let count = self.count(usize::MAX)?;
        let mut matched = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            matched.push(self.read_str()?.into());
        }
        let dataset = self.read_str()?;
        let file = self.read_str()?;
        let row = u64::from_le_bytes(self.array()?);
        Ok(Hit {
            rule_id,
            rule_version,
            role,
            rule_name,
            rule_type,
            severity,
            risk_score,
            timestamp_us,
            fields: fields.into(),
            matched,
            dataset,
            file,
            row,
            sequence,
        })
    }

    fn error(&self, e: std::io::Error) -> SinkError {
        SinkError::io(&self.path, e)
    }

    fn damaged(&self, damage: Damage) -> SinkError {
        SinkError::new(&self.path, SinkErrorKind::Damaged(damage))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], SinkError> {
        let mut b = [0u8; N];
        self.input.read_exact(&mut b).map_err(|e| self.error(e))?;
        Ok(b)
    }

    /// A count written as a `u64`, at most `max`.
    pub fn count(&mut self, max: usize) -> Result<usize, SinkError> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| self.damaged(Damage::Count(n)))
    }

    pub fn read_str(&mut self) -> Result<String, SinkError> {
        let len = u64::from_le_bytes(self.array()?);
        self.string(len)
    }

    fn string(&mut self, len: u64) -> Result<String, SinkError> {
        let mut bytes = Vec::new();
        (&mut self.input)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(e))?;
        if bytes.len() as u64 != len {
            return Err(self.damaged(Damage::CutShort));
        }
        String::from_utf8(bytes).map_err(|_| self.damaged(Damage::NotUtf8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(i: u64) -> Hit {
        Hit {
            rule_id: format!("rule-{}", i % 3),
            rule_version: (i % 5) as u32,
            role: match i % 7 {
                0 => Role::WhatIf,
                _ => Role::Version,
            },
            rule_name: "name".into(),
            rule_type: "query".into(),
            severity: "low".into(),
            risk_score: 21.5,
            timestamp_us: (i * 7919 % 1000) as i64 - 500,
            fields: TRIAGE_FIELDS
                .iter()
                .enumerate()
                .map(|(k, f)| (k as u64 != i % 4).then(|| format!("{f}-{i}-é")))
                .collect(),
            matched: (0..i % 3).map(|m| format!("f: v{m}").into()).collect(),
            dataset: "d".into(),
            file: format!("part-{}", i % 2),
            row: i,
            sequence: i.is_multiple_of(3).then_some(SequenceRef {
                id: i,
                step: (i % 4) as u32,
            }),
        }
    }

    fn sorted_through(budget: usize, n: u64) -> (Vec<Hit>, usize) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut spool = Spool::new(&tmp.path().join("spill-"), budget);
        spool.extend((0..n).map(hit)).expect("extend");
        let runs = spool.runs();
        let mut out = Vec::new();
        spool
            .drain(&mut |b| {
                assert!(b.len() <= BATCH);
                out.extend_from_slice(b);
                Ok(())
            })
            .expect("drain");
        // The run directory is gone with the spool.
        assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
        (out, runs)
    }

    #[test]
    fn spilled_and_merged_hits_equal_an_in_memory_sort() {
        let mut want: Vec<Hit> = (0..20_000).map(hit).collect();
        want.sort_by(order);
        let (in_memory, runs) = sorted_through(usize::MAX, 20_000);
        assert_eq!(runs, 0);
        assert_eq!(in_memory, want);
        let (spilled, runs) = sorted_through(100_000, 20_000);
        assert!(runs > 10, "{runs} runs");
        assert_eq!(spilled, want);
    }
}
