//! What each text value matched, remembered across the units of a hunt.
//!
//! A fleet runs the same scripts on many hosts, on many days: the same script block text
//! comes back in row group after row group, where a Parquet dictionary (one per column
//! chunk) cannot see the repeat. Matching a value costs a pass of the automaton or the
//! token table over it; hashing it costs a small fraction of that. So the text leaves of a
//! value are kept under its 128-bit XXH3 hash and its length, shared by all threads, and a
//! value seen before is not matched again. Two different texts of equal length would have
//! to collide on 128 bits to be confused.
//!
//! The memo holds at most [`MEMO_ENTRIES`] values per column (about 40 bytes each); when full
//! it stops learning and keeps answering for what it has. Where values hardly repeat (every
//! script distinct) hashing is pure cost, so a memo whose first [`PROBE`] lookups find fewer
//! than one in [`WORTH`] values turns itself off for the rest of the hunt.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use twox_hash::XxHash3_128;

/// Values shorter than this are matched each time: hashing and locking would cost more.
pub const MEMO_MIN_BYTES: usize = 256;

/// Upper bound of values remembered per column.
pub const MEMO_ENTRIES: usize = 1 << 20;

const SHARDS: usize = 16;

/// Lookups after which the memo judges whether it pays.
pub const PROBE: u64 = 2048;

/// A memo pays when at least one lookup in this many finds the value.
pub const WORTH: u64 = 8;

/// The key already is a hash: its low bits index the table.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64;
    }
    fn write_u32(&mut self, n: u32) {
        self.0 ^= u64::from(n).rotate_left(32);
    }
}

type Shard = HashMap<(u128, u32), Box<[u32]>, BuildHasherDefault<KeyHasher>>;

/// The leaves each text value of one column matched.
pub struct TextMemo {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    lookups: AtomicU64,
    found: AtomicU64,
    off: AtomicBool,
}

/// A value's identity in the memo.
#[derive(Debug, Clone, Copy)]
pub struct ValueKey(u128, u32);

impl ValueKey {
    /// `None` for a value too short to be worth remembering.
    pub fn of(bytes: &[u8]) -> Option<ValueKey> {
        let len = u32::try_from(bytes.len()).ok()?;
        (bytes.len() >= MEMO_MIN_BYTES).then(|| ValueKey(XxHash3_128::oneshot(bytes), len))
    }
}

impl Default for TextMemo {
    fn default() -> Self {
        TextMemo::with_capacity(MEMO_ENTRIES)
    }
}

impl TextMemo {
    pub fn with_capacity(entries: usize) -> TextMemo {
        TextMemo {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: entries.div_ceil(SHARDS),
            lookups: AtomicU64::new(0),
            found: AtomicU64::new(0),
            off: AtomicBool::new(entries == 0),
        }
    }

    /// Whether values should still be looked up.
    pub fn active(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    fn judge(&self, found: bool) {
        let lookups = self.lookups.fetch_add(1, Ordering::Relaxed) + 1;
        let hits = match found {
            true => self.found.fetch_add(1, Ordering::Relaxed) + 1,
            false => self.found.load(Ordering::Relaxed),
        };
        if lookups == PROBE && hits * WORTH < lookups {
            self.off.store(true, Ordering::Relaxed);
        }
    }

    fn shard(&self, key: ValueKey) -> &Mutex<Shard> {
        &self.shards[(key.0 >> 120) as usize % SHARDS]
    }

    /// Copies the leaves remembered for `key` into `out`; false when it is not known.
    pub fn get(&self, key: ValueKey, out: &mut Vec<usize>) -> bool {
        // A poisoned lock only means another thread panicked; the map itself is intact.
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let known = match shard.get(&(key.0, key.1)) {
            Some(leaves) => {
                out.clear();
                out.extend(leaves.iter().map(|&l| l as usize));
                true
            }
            None => false,
        };
        drop(shard);
        self.judge(known);
        known
    }

    /// Remembers that the value of `key` matched `leaves` (unless the memo is full).
    pub fn insert(&self, key: ValueKey, leaves: &[usize]) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() < self.per_shard {
            let leaves = leaves.iter().map(|&l| l as u32).collect();
            shard.insert((key.0, key.1), leaves);
        }
    }

    /// Values remembered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_values_by_content_and_stops_learning_when_full() {
        let memo = TextMemo::with_capacity(SHARDS);
        let a = "a".repeat(MEMO_MIN_BYTES);
        let b = "b".repeat(MEMO_MIN_BYTES);
        assert!(ValueKey::of(b"short").is_none());
        let ka = ValueKey::of(a.as_bytes()).expect("long enough");
        let mut out = vec![99];
        assert!(!memo.get(ka, &mut out));
        memo.insert(ka, &[3, 1]);
        assert!(memo.get(ValueKey::of(a.clone().as_bytes()).expect("key"), &mut out));
        assert_eq!(out, vec![3, 1]);
        let kb = ValueKey::of(b.as_bytes()).expect("key");
        assert!(!memo.get(kb, &mut out));
        memo.insert(kb, &[]);
        assert!(memo.get(kb, &mut out));
        assert!(out.is_empty());
        // One entry per shard at most: a full shard keeps what it has.
        for i in 0..200 {
            let v = format!("{i:0>300}");
            memo.insert(ValueKey::of(v.as_bytes()).expect("key"), &[i]);
        }
        assert!(memo.len() <= SHARDS);
    }

    #[test]
    fn a_memo_that_rarely_finds_a_value_turns_itself_off() {
        let key = |i: u64| ValueKey::of(format!("{i:0>300}").as_bytes()).expect("key");
        let distinct = TextMemo::default();
        for i in 0..PROBE {
            assert!(distinct.active());
            if !distinct.get(key(i), &mut Vec::new()) {
                distinct.insert(key(i), &[]);
            }
        }
        assert!(!distinct.active());
        let repeated = TextMemo::default();
        for i in 0..PROBE * 2 {
            if !repeated.get(key(i % 100), &mut Vec::new()) {
                repeated.insert(key(i % 100), &[]);
            }
        }
        assert!(repeated.active());
    }
}
