//! Incremental, resumable hunts: `quarry hunt --state DIR`.
//!
//! A dataset that grows by a day each night should not be hunted from the start each
//! night, nor a run of hours be restarted from zero after a crash. The state directory
//! remembers, for every part file hunted, its identity (dataset, path, size, modification
//! time) and the fingerprint of every rule version hunted on it, and keeps that file's hits
//! as a segment. A run hunts only the (file, version) pairs that are new or changed: a new
//! file with every selected version, a changed version (its query, filters, index patterns
//! or what the hit table says of it) on every file, and nothing else. Files are hunted in
//! chunks; each chunk's segments and the state record are written (temporary file, then
//! rename) before the next chunk starts, so a run killed anywhere resumes from its last
//! chunk. The hit table is then written from the segments, in the hit table's order: it
//! equals a full hunt's.
//!
//! The state directory is locked while a run uses it; a second run fails at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::hunt::{self, HuntError, HuntOptions, HuntProgress, HuntReport};
use crate::ingest::dataset;
use crate::rules::pack::{self, LoadOptions, RuleVersion};
use crate::sink::spool::{self, Spool};
use crate::sink::Hit;

const RECORD: &str = "state.json";
const LOCK: &str = "state.lock";
const FORMAT: u32 = 1;

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
    modified_ns: i128,
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

/// A hunt state directory, locked for this run.
pub struct State {
    dir: PathBuf,
    record: Record,
    /// Segments the unsaved record no longer names: removed once it is saved.
    obsolete: Vec<String>,
    _lock: crate::lock::Lock,
}

impl State {
    pub fn open(dir: &Path) -> Result<State, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock_path = dir.join(LOCK);
        let lock = crate::lock::exclusive(&lock_path).map_err(|e| match e {
            crate::lock::LockError::Io(e) => format!("{}: {e}", lock_path.display()),
            crate::lock::LockError::Held => format!(
                "{}: another quarry process is using this hunt state",
                dir.display()
            ),
        })?;
        let path = dir.join(RECORD);
        let record = match std::fs::read(&path) {
            Ok(bytes) => {
                let r: Record = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: not a quarry hunt state: {e}", path.display()))?;
                if r.format != FORMAT {
                    return Err(format!(
                        "{}: hunt state format {} (this quarry reads {FORMAT})",
                        path.display(),
                        r.format
                    ));
                }
                r
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record {
                format: FORMAT,
                ..Default::default()
            },
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let state = State {
            dir: dir.to_path_buf(),
            record,
            obsolete: Vec::new(),
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

    /// Writes the record (to a temporary file, synced, then renamed over the old one), then
    /// removes the segments it no longer names.
    fn save(&mut self) -> Result<(), String> {
        let path = self.dir.join(RECORD);
        let bytes = serde_json::to_vec(&self.record).map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
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
    size: u64,
    modified_ns: i128,
    /// It holds events inside `--from`/`--to`.
    in_range: bool,
}

fn current_files(opts: &HuntOptions) -> Result<Vec<CurrentFile>, HuntError> {
    let mut out = Vec::new();
    for root in &opts.datasets {
        let label = root.display().to_string();
        let manifest = dataset::read_manifest(root)
            .map_err(|e| HuntError::Input(format!("{label} is not a quarry dataset: {e}")))?;
        for part in manifest.parts() {
            // A file that cannot be read stays unhunted: the hunt reports it.
            let (size, modified_ns) = std::fs::metadata(root.join(&part.path))
                .map(|m| {
                    let modified = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos() as i128);
                    (m.len(), modified)
                })
                .unwrap_or((0, 0));
            out.push(CurrentFile {
                key: FileKey {
                    dataset: label.clone(),
                    path: part.path.clone(),
                },
                size,
                modified_ns,
                in_range: opts
                    .range
                    .overlaps(part.min_timestamp_us, part.max_timestamp_us),
            });
        }
    }
    Ok(out)
}

/// Runs the hunt of `opts` incrementally against the state in `dir`, handing the whole
/// hit table's hits to `out` in order (as [`hunt::hunt_into`] does).
pub fn hunt_incremental(
    opts: &HuntOptions,
    dir: &Path,
    progress: &dyn HuntProgress,
    cancel: &AtomicBool,
    spill: &Path,
    out: &mut dyn FnMut(&[Hit]) -> Result<(), String>,
) -> Result<(HuntReport, IncrementalReport), HuntError> {
    let mut state = State::open(dir).map_err(HuntError::Input)?;
    let pack = pack::load(
        &opts.packs,
        &LoadOptions {
            version_lock: opts.version_lock.clone(),
        },
    )
    .map_err(|e| HuntError::Input(e.to_string()))?;
    let selected =
        hunt::select_versions(&pack, &opts.rules, &opts.versions).map_err(HuntError::Input)?;
    let versions: BTreeMap<String, (String, u32, String)> = selected
        .iter()
        .filter(|v| v.status.is_ready())
        .map(|v| {
            (
                v.rule.key(),
                (v.rule.rule_id.clone(), v.rule.version, fingerprint(&v.rule)),
            )
        })
        .collect();
    let files = current_files(opts)?;
    // What each file needs hunted, grouped by the same needs.
    let mut groups: BTreeMap<BTreeSet<String>, Vec<&CurrentFile>> = BTreeMap::new();
    let mut inc = IncrementalReport::default();
    for f in files.iter().filter(|f| f.in_range) {
        let known = state
            .record
            .files
            .get(&key_of(&f.key.dataset, &f.key.path))
            .map(|(_, r)| r)
            .filter(|r| r.size == f.size && r.modified_ns == f.modified_ns);
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
    let mut report = HuntReport::default();
    for (needed, group) in &groups {
        for chunk in group.chunks(CHUNK_FILES) {
            let chunk_opts = HuntOptions {
                only_files: Some(
                    chunk
                        .iter()
                        .map(|f| (f.key.dataset.clone(), f.key.path.clone()))
                        .collect(),
                ),
                only_versions: Some(
                    needed
                        .iter()
                        .map(|k| (versions[k].0.clone(), versions[k].1))
                        .collect(),
                ),
                // Segments hold a file's every hit; the range applies to the table.
                range: Default::default(),
                ..opts.clone()
            };
            let found = hunt::hunt(&chunk_opts, progress, cancel)?;
            let failed: BTreeSet<(String, String)> = found
                .failures
                .iter()
                .map(|f| (f.dataset.clone(), f.file.clone()))
                .collect();
            let mut by_file: BTreeMap<(String, String), Vec<Hit>> = BTreeMap::new();
            for h in found.hits {
                by_file
                    .entry((h.dataset.clone(), h.file.clone()))
                    .or_default()
                    .push(h);
            }
            for f in chunk {
                let id = (f.key.dataset.clone(), f.key.path.clone());
                if failed.contains(&id) {
                    continue;
                }
                let new_hits = by_file.remove(&id).unwrap_or_default();
                record_file(&mut state, f, needed, &versions, new_hits)
                    .map_err(HuntError::Output)?;
                inc.files_hunted += 1;
                inc.pairs_hunted += needed.len();
            }
            state.save().map_err(HuntError::Output)?;
            inc.chunks += 1;
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
    }
    forget_gone_files(&mut state, &files).map_err(HuntError::Output)?;
    report.versions = versions.len();
    // The table, from every current file's segment, in the hit table's order.
    let mut spool = Spool::new(
        spill,
        match opts.sort_memory {
            0 => spool::DEFAULT_BUDGET,
            n => n,
        },
    );
    for f in files.iter().filter(|f| f.in_range) {
        let Some((_, r)) = state.record.files.get(&key_of(&f.key.dataset, &f.key.path)) else {
            continue;
        };
        let hits = spool::read_hits(&state.dir.join(&r.segment)).map_err(HuntError::Output)?;
        spool
            .extend(hits.into_iter().filter(|h| {
                opts.range.contains(h.timestamp_us)
                    && versions.contains_key(&format!("{}@{}", h.rule_id, h.rule_version))
            }))
            .map_err(HuntError::Output)?;
    }
    hunt::drain_into(spool, &mut report, out)?;
    Ok((report, inc))
}

/// Replaces the hits of `needed` versions in the segment of `f` by `new_hits`, and records
/// the file and the versions' fingerprints.
fn record_file(
    state: &mut State,
    f: &CurrentFile,
    needed: &BTreeSet<String>,
    versions: &BTreeMap<String, (String, u32, String)>,
    new_hits: Vec<Hit>,
) -> Result<(), String> {
    let key = key_of(&f.key.dataset, &f.key.path);
    let same_file = state
        .record
        .files
        .get(&key)
        .filter(|(_, r)| r.size == f.size && r.modified_ns == f.modified_ns)
        .map(|(_, r)| r.clone());
    let (mut hits, mut hunted) = match &same_file {
        Some(r) => (
            spool::read_hits(&state.dir.join(&r.segment))?,
            r.versions.clone(),
        ),
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
    spool::write_hits(&tmp, &hits)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    let old = state.record.files.insert(
        key,
        (
            f.key.clone(),
            FileRecord {
                size: f.size,
                modified_ns: f.modified_ns,
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
fn forget_gone_files(state: &mut State, files: &[CurrentFile]) -> Result<(), String> {
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
