//! Incremental, resumable hunts: `quarry hunt --state DIR`.
//!
//! A dataset that grows by a day each night should not be hunted from the start each
//! night, nor a run of hours be restarted from zero after a crash. The state directory
//! remembers, for every part file hunted, its identity (dataset, path, and the size and
//! version its [`crate::store::Store`] tells: locally, the modification time) and the
//! fingerprint of every rule version hunted on it, and keeps that file's hits
//! as a segment. A run hunts only the (file, version) pairs that are new or changed: a new
//! file with every selected version, a changed version (its query, filters, index patterns
//! or what the hit table says of it) on every file, and nothing else. Files are hunted in
//! chunks; each chunk's segments and the state record are written (temporary file, then
//! rename) before the next chunk starts, so a run killed anywhere resumes from its last
//! chunk. The hit table is then written from the segments, in the hit table's order: it
//! equals a full hunt's. The packs are loaded and the manifests read once, in one
//! [`Session`]; each chunk is a [`Pass`] of it.
//!
//! The state directory is locked while a run uses it; a second run fails at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::hunt::{HuntError, HuntOptions, HuntProgress, HuntReport, Pass, Session};
use crate::rules::pack::RuleVersion;
use crate::sink::spool::{self, Spool};
use crate::sink::{Hit, SinkError};
use crate::store::{Identity, LocalStore, Store, StoreError};

const RECORD: &str = "state.json";
const LOCK: &str = "state.lock";
/// The record's format: 3 has segments whose hits carry their rule type; 2 names a file's
/// version as its store tells it; 1 kept the same value as a number. Records of 1 and 2 are
/// read, their segments (in the older hit layout) dropped and hunted again.
const FORMAT: u32 = 3;
const FORMATS_READ: [u32; 3] = [1, 2, 3];

/// Files hunted per chunk: what a killed run loses at most.
const CHUNK_FILES: usize = 16;

/// A part file as the state knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct FileKey {
    dataset: String,
    path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileRecord {
    size: u64,
    /// The store's version of the file (a state written before stores had versions kept a
    /// local modification time, in nanoseconds, as a number: the same value).
    #[serde(alias = "modified_ns", deserialize_with = "version_text")]
    version: String,
    /// The segment holding this file's hits, inside the state directory.
    segment: String,
    /// `rule_id@version` → fingerprint of every version whose hits the segment holds.
    versions: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    format: u32,
    files: BTreeMap<String, (FileKey, FileRecord)>,
    next_segment: u64,
}

impl FileRecord {
    fn is(&self, id: &Identity) -> bool {
        self.size == id.size && self.version == id.version
    }
}

/// A version as text, from text or a number.
fn version_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a version, as text or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Text)
}

/// What an incremental run did besides the hunt's own report.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IncrementalReport {
    /// Files whose hits were all taken from the state.
    pub files_up_to_date: usize,
    /// Files hunted, and the (file, version) pairs hunted on them.
    pub files_hunted: usize,
    pub pairs_hunted: usize,
    /// Chunks completed in this run.
    pub chunks: usize,
}

/// The fingerprint of a version: everything of it that decides its hits or is written in
/// them.
fn fingerprint(v: &RuleVersion) -> String {
    let json = serde_json::json!({
        "rule_id": v.rule_id, "version": v.version, "name": v.name, "type": v.rule_type,
        "language": v.language, "query": v.query, "filters": v.filters, "index": v.index,
        "severity": v.severity, "risk_score": v.risk_score,
        "quarry": env!("CARGO_PKG_VERSION"),
    });
    blake3::hash(json.to_string().as_bytes()).to_hex()[..32].to_string()
}

fn key_of(dataset: &str, path: &str) -> String {
    format!("{dataset}\u{0}{path}")
}

/// A hunt state that cannot be opened, read or saved.
#[derive(Debug)]
pub enum StateError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the state's lock.
    Locked(PathBuf),
    /// A record that is not a quarry hunt state.
    NotAState {
        at: String,
        source: serde_json::Error,
    },
    /// A record in a format this quarry does not read.
    Format {
        at: String,
        format: u32,
    },
    Store(StoreError),
    /// A segment of hits that cannot be read or written.
    Segment(SinkError),
}

impl StateError {
    fn io(path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the caller named a state this run cannot use (not an I/O failure).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StateError::Locked(_) | StateError::NotAState { .. } | StateError::Format { .. }
        )
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StateError::Locked(dir) => write!(
                f,
                "{}: another quarry process is using this hunt state",
                dir.display()
            ),
            StateError::NotAState { at, source } => {
                write!(f, "{at}: not a quarry hunt state: {source}")
            }
            StateError::Format { at, format } => write!(
                f,
                "{at}: hunt state format {format} (this quarry reads {FORMATS_READ:?})"
            ),
            StateError::Store(e) => write!(f, "{e}"),
            StateError::Segment(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::NotAState { source, .. } => Some(source),
            StateError::Store(e) => Some(e),
            StateError::Segment(e) => Some(e),
            StateError::Locked(_) | StateError::Format { .. } => None,
        }
    }
}

/// A hunt state directory, locked for this run.
pub struct State {
    dir: PathBuf,
    /// The directory as a store: the record and segments are read through it.
    store: LocalStore,
    record: Record,
    /// Segments the unsaved record no longer names: removed once it is saved.
    obsolete: Vec<String>,
    /// The format of a record from an older quarry, whose files are hunted again.
    upgraded_from: Option<u32>,
    _lock: crate::lock::Lock,
}

impl State {
    pub fn open(dir: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = crate::lock::exclusive(&lock_path).map_err(|e| match e {
            crate::lock::LockError::Io(e) => StateError::io(&lock_path, e),
            crate::lock::LockError::Held => StateError::Locked(dir.to_path_buf()),
        })?;
        let store = LocalStore::new(dir);
        let mut upgraded_from = None;
        let record = match store.read(RECORD) {
            Ok(blob) => {
                let at = store.location_of(RECORD);
                let mut r: Record = serde_json::from_slice(blob.bytes()).map_err(|source| {
                    StateError::NotAState {
                        at: at.clone(),
                        source,
                    }
                })?;
                if !FORMATS_READ.contains(&r.format) {
                    return Err(StateError::Format {
                        at,
                        format: r.format,
                    });
                }
                if r.format < FORMAT {
                    upgraded_from = Some(r.format);
                    r.files.clear();
                }
                r.format = FORMAT;
                r
            }
            Err(e) if e.is_not_found() => Record {
                format: FORMAT,
                ..Default::default()
            },
            Err(e) => return Err(StateError::Store(e)),
        };
        let state = State {
            dir: dir.to_path_buf(),
            store,
            record,
            obsolete: Vec::new(),
            upgraded_from,
            _lock: lock,
        };
        state.remove_orphans();
        Ok(state)
    }

    /// Removes what a killed run left: temporary files, and segments the record does not
    /// name (written after the last save).
    fn remove_orphans(&self) {
        let named: BTreeSet<&str> = self
            .record
            .files
            .values()
            .map(|(_, r)| r.segment.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = name.starts_with(".tmp-")
                || (name.starts_with("segment-") && !named.contains(name.as_str()));
            if orphan {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The hits of a segment.
    fn segment(&self, name: &str) -> Result<Vec<Hit>, StateError> {
        let blob = self.store.read(name).map_err(StateError::Store)?;
        spool::hits_from(blob.bytes(), &self.store.location_of(name)).map_err(StateError::Segment)
    }

    /// The record of `f`, when it is of the file as it is now.
    fn known(&self, f: &CurrentFile) -> Option<&FileRecord> {
        let (_, r) = self
            .record
            .files
            .get(&key_of(&f.key.dataset, &f.key.path))?;
        f.identity.as_ref().filter(|id| r.is(id)).map(|_| r)
    }

    /// Writes the record (to a temporary file, synced, then renamed over the old one), then
    /// removes the segments it no longer names.
    fn save(&mut self) -> Result<(), StateError> {
        let path = self.dir.join(RECORD);
        let bytes =
            serde_json::to_vec(&self.record).map_err(|e| StateError::io(&path, e.into()))?;
        write_atomically(&self.dir, &path, &|f| f.write_all(&bytes))?;
        for segment in self.obsolete.drain(..) {
            let _ = std::fs::remove_file(self.dir.join(segment));
        }
        Ok(())
    }
}

fn write_atomically(
    dir: &Path,
    path: &Path,
    fill: &dyn Fn(&mut File) -> std::io::Result<()>,
) -> Result<(), StateError> {
    let at = |e| StateError::io(path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(at)?;
    fill(tmp.as_file_mut()).map_err(at)?;
    tmp.as_file().sync_all().map_err(at)?;
    tmp.persist(path).map_err(|e| at(e.error))?;
    Ok(())
}

/// A part file of the hunted datasets, as it is now.
struct CurrentFile {
    key: FileKey,
    /// None when the store cannot tell (the file is missing or unreadable): such a file is
    /// never up to date, and the hunt reports it.
    identity: Option<Identity>,
    /// It holds events inside `--from`/`--to`.
    in_range: bool,
}

fn current_files(session: &Session) -> Vec<CurrentFile> {
    let range = session.options().range;
    let mut out = Vec::new();
    for dataset in session.datasets() {
        for part in dataset.manifest.parts() {
            out.push(CurrentFile {
                key: FileKey {
                    dataset: dataset.label.clone(),
                    path: part.path.clone(),
                },
                identity: dataset.store.identity(&part.path).ok(),
                in_range: range.overlaps(part.min_timestamp_us, part.max_timestamp_us),
            });
        }
    }
    out
}

/// A runnable selected version, by `rule_id@version`: its rule id, version and
/// [`fingerprint`].
type Versions = BTreeMap<String, (String, u32, String)>;

/// Runs the hunt of `opts` incrementally against the state in `dir`, handing the whole
/// hit table's hits to `out` in order (as [`crate::hunt::hunt_into`] does).
pub fn hunt_incremental(
    opts: &HuntOptions,
    dir: &Path,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
    spill: &Path,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), SinkError>,
) -> Result<(HuntReport, IncrementalReport), HuntError> {
    let mut state = State::open(dir).map_err(HuntError::State)?;
    let session = Session::open(opts)?;
    // A sequence's events join across files, which per-file segments cannot keep.
    let (sequences, singles): (Vec<_>, Vec<_>) =
        session.ready().partition(|(_, c)| c.sequence.is_some());
    let versions: Versions = singles
        .into_iter()
        .map(|(rule, _)| {
            let id = (rule.rule_id.clone(), rule.version, fingerprint(rule));
            (rule.key(), id)
        })
        .collect();
    let files = current_files(&session);
    let mut inc = IncrementalReport::default();
    let mut report = HuntReport {
        warnings: session.warnings().to_vec(),
        ..Default::default()
    };
    if let Some(format) = state.upgraded_from {
        report.warnings.push(format!(
            "{}: a hunt state of format {format}, written by an older quarry: every file is \
             hunted again",
            dir.display()
        ));
    }
    if let Some((first, _)) = sequences.first() {
        report.warnings.push(format!(
            "{} EQL sequence versions (the first {}) are not hunted incrementally: their \
             events join across files; a full hunt runs them",
            sequences.len(),
            first.key()
        ));
    }
    for (needed, group) in &work(&state, &files, &versions, &mut inc) {
        for chunk in group.chunks(CHUNK_FILES) {
            let chunk = Chunk {
                files: chunk,
                needed,
                versions: &versions,
            };
            let found = chunk.hunt(&session, &mut state, progress, cancel, &mut inc)?;
            add_up(&mut report, found);
        }
    }
    forget_gone_files(&mut state, &files).map_err(HuntError::State)?;
    report.versions = versions.len();
    let spool = table(&state, &session, &files, &versions, spill)?;
    crate::hunt::drain_into(spool, &mut report, out)?;
    Ok((report, inc))
}

/// What each in-range file needs hunted (the versions it has no current hits of), grouped
/// by the same needs; files needing nothing are counted up to date in `inc`.
fn work<'f>(
    state: &State,
    files: &'f [CurrentFile],
    versions: &Versions,
    inc: &mut IncrementalReport,
) -> BTreeMap<BTreeSet<String>, Vec<&'f CurrentFile>> {
    let mut groups: BTreeMap<BTreeSet<String>, Vec<&CurrentFile>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.in_range) {
        let known = state.known(f);
        let needed: BTreeSet<String> = versions
            .iter()
            .filter(|(k, (_, _, fp))| known.is_none_or(|r| r.versions.get(*k) != Some(fp)))
            .map(|(k, _)| k.clone())
            .collect();
        if needed.is_empty() {
            inc.files_up_to_date += 1;
        } else {
            groups.entry(needed).or_default().push(f);
        }
    }
    groups
}

/// Files hunted together for the same versions, and recorded together.
struct Chunk<'c> {
    files: &'c [&'c CurrentFile],
    needed: &'c BTreeSet<String>,
    versions: &'c Versions,
}

impl Chunk<'_> {
    /// Hunts the chunk's files for its versions, whole (segments hold a file's every hit;
    /// the range applies to the table), then records each file that could be read and saves
    /// the state.
    fn hunt(
        &self,
        session: &Session,
        state: &mut State,
        progress: &dyn HuntProgress,
        cancel: &AtomicBool,
        inc: &mut IncrementalReport,
    ) -> Result<HuntReport, HuntError> {
        let pass = Pass {
            files: Some(self.files.iter().map(|f| file_id(f)).collect()),
            versions: Some(
                self.needed
                    .iter()
                    .map(|k| (self.versions[k].0.clone(), self.versions[k].1))
                    .collect(),
            ),
            whole_files: true,
            ..Default::default()
        };
        let mut found = session.run(&pass, progress, cancel)?;
        let failed: BTreeSet<(String, String)> = found
            .failures
            .iter()
            .map(|f| (f.dataset.clone(), f.file.clone()))
            .collect();
        let mut by_file: BTreeMap<(String, String), Vec<Hit>> = BTreeMap::new();
        for h in std::mem::take(&mut found.hits) {
            by_file
                .entry((h.dataset.clone(), h.file.clone()))
                .or_default()
                .push(h);
        }
        for f in self.files {
            let id = file_id(f);
            if failed.contains(&id) {
                continue;
            }
            let new_hits = by_file.remove(&id).unwrap_or_default();
            record_file(state, f, self.needed, self.versions, new_hits)
                .map_err(HuntError::State)?;
            inc.files_hunted += 1;
            inc.pairs_hunted += self.needed.len();
        }
        state.save().map_err(HuntError::State)?;
        inc.chunks += 1;
        Ok(found)
    }
}

fn file_id(f: &CurrentFile) -> (String, String) {
    (f.key.dataset.clone(), f.key.path.clone())
}

/// A chunk's counts, failures and new warnings added to the run's report.
fn add_up(report: &mut HuntReport, found: HuntReport) {
    report.units += found.units;
    report.units_pruned += found.units_pruned;
    report.bytes += found.bytes;
    report.rows += found.rows;
    report.failures.extend(found.failures);
    for w in found.warnings {
        if !report.warnings.contains(&w) {
            report.warnings.push(w);
        }
    }
}

/// The table: every current in-range file's segment, the hits of selected versions inside
/// the time range, spooled into the hit table's order.
fn table(
    state: &State,
    session: &Session,
    files: &[CurrentFile],
    versions: &Versions,
    spill: &Path,
) -> Result<Spool, HuntError> {
    let opts = session.options();
    let budget = match opts.sort_memory {
        0 => spool::DEFAULT_BUDGET,
        n => n,
    };
    let mut spool = Spool::new(spill, budget);
    for f in files.iter().filter(|f| f.in_range) {
        let Some((_, r)) = state.record.files.get(&key_of(&f.key.dataset, &f.key.path)) else {
            continue;
        };
        let hits = state.segment(&r.segment).map_err(HuntError::State)?;
        spool
            .extend(hits.into_iter().filter(|h| {
                opts.range.contains(h.timestamp_us)
                    && versions.contains_key(&format!("{}@{}", h.rule_id, h.rule_version))
            }))
            .map_err(HuntError::Output)?;
    }
    Ok(spool)
}

/// Replaces the hits of `needed` versions in the segment of `f` by `new_hits`, and records
/// the file and the versions' fingerprints.
fn record_file(
    state: &mut State,
    f: &CurrentFile,
    needed: &BTreeSet<String>,
    versions: &BTreeMap<String, (String, u32, String)>,
    new_hits: Vec<Hit>,
) -> Result<(), StateError> {
    let key = key_of(&f.key.dataset, &f.key.path);
    let (mut hits, mut hunted) = match state.known(f) {
        Some(r) => (state.segment(&r.segment)?, r.versions.clone()),
        None => (Vec::new(), BTreeMap::new()),
    };
    hits.retain(|h| !needed.contains(&format!("{}@{}", h.rule_id, h.rule_version)));
    hits.extend(new_hits);
    for k in needed {
        hunted.insert(k.clone(), versions[k].2.clone());
    }
    let segment = format!("segment-{:08}.hits", state.record.next_segment);
    state.record.next_segment += 1;
    let path = state.dir.join(&segment);
    let tmp = state.dir.join(format!(".tmp-{segment}"));
    spool::write_hits(&tmp, &hits).map_err(StateError::Segment)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| StateError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| StateError::io(&path, e))?;
    let old = state.record.files.insert(
        key,
        (
            f.key.clone(),
            FileRecord {
                size: f.identity.as_ref().map_or(0, |id| id.size),
                version: f
                    .identity
                    .as_ref()
                    .map_or(String::new(), |id| id.version.clone()),
                segment,
                versions: hunted,
            },
        ),
    );
    // The old segment is what a restart reads until the record is saved.
    if let Some((_, r)) = old {
        state.obsolete.push(r.segment);
    }
    Ok(())
}

/// Drops the record and segment of files no longer in the datasets.
fn forget_gone_files(state: &mut State, files: &[CurrentFile]) -> Result<(), StateError> {
    let current: BTreeSet<String> = files
        .iter()
        .map(|f| key_of(&f.key.dataset, &f.key.path))
        .collect();
    let before = state.record.files.len();
    let mut gone = Vec::new();
    state.record.files.retain(|k, (_, r)| {
        let keep = current.contains(k);
        if !keep {
            gone.push(r.segment.clone());
        }
        keep
    });
    if state.record.files.len() < before {
        state.obsolete.extend(gone);
        state.save()?;
    }
    Ok(())
}
