//! The dataset directory: its manifest, its lock, and the commit of a conversion run.
//!
//! A dataset is `DATASET/date=YYYY-MM-DD/part-NNNNN.parquet` plus `DATASET/_quarry/`, which
//! holds `dataset.json` (the [`Manifest`]: mapping profile, index name, inputs and their
//! fingerprints, parts, time range, counts), a lock file, and the staging area of a run in
//! progress. Readers that glob `*.parquet` never see staged parts (they end in `.staged`).
//!
//! A run commits in three steps: the manifest is rewritten with the run marked pending and
//! its parts listed; the staged parts are renamed into place; the manifest is rewritten with
//! the run committed. A run killed before the first step leaves only staging, which the next
//! run deletes; one killed during the renames is rolled forward by the next run. Every
//! manifest write goes to a temporary file that is then renamed over the old one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::writer::{staged_path, StagedPart};
use super::IngestError;
use crate::store::{LocalStore, Store};

pub const META_DIR: &str = "_quarry";
pub const MANIFEST: &str = "dataset.json";
const LOCK: &str = "lock";
const STAGING: &str = "staging";

/// An input file that went into the dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputRecord {
    pub path: String,
    /// `blake3:<hex>` of the file's bytes as stored (compressed bytes for gzip).
    pub fingerprint: String,
    pub bytes: u64,
    pub format: String,
    pub events: u64,
    pub bad_records: u64,
    pub run: u64,
}

/// One conversion run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub id: u64,
    pub started: String,
    pub finished: Option<String>,
    pub quarry_version: String,
    pub committed: bool,
    pub events: u64,
    pub parts: Vec<StagedPart>,
    pub inputs: Vec<InputRecord>,
}

/// `_quarry/dataset.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// Mapping profile: `windows-integration`, `winlogbeat-8` or `winlogbeat-7`.
    pub mapping: String,
    /// Analyzer of each analyzed text field under this mapping.
    pub analyzers: BTreeMap<String, String>,
    /// Whether raw Windows events got `host.os.type`/`host.os.family`.
    pub host_os: bool,
    /// The index name (or data stream) the data stands for, given with `--index`.
    pub index: Option<String>,
    /// Events per index or data stream they would have been written to.
    pub indices: BTreeMap<String, u64>,
    pub events: u64,
    pub min_timestamp: Option<String>,
    pub max_timestamp: Option<String>,
    pub next_part: u64,
    pub runs: Vec<RunRecord>,
}

impl Manifest {
    pub fn inputs(&self) -> impl Iterator<Item = &InputRecord> {
        self.runs
            .iter()
            .filter(|r| r.committed)
            .flat_map(|r| r.inputs.iter())
    }

    pub fn parts(&self) -> impl Iterator<Item = &StagedPart> {
        self.runs
            .iter()
            .filter(|r| r.committed)
            .flat_map(|r| r.parts.iter())
    }
}

/// An open dataset, locked for writing while this value lives.
pub struct Dataset {
    root: PathBuf,
    _lock: crate::lock::Lock,
    pub manifest: Manifest,
    /// Notes on what opening had to repair (rolled-forward or discarded runs).
    pub repairs: Vec<String>,
}

pub fn manifest_path(root: &Path) -> PathBuf {
    root.join(META_DIR).join(MANIFEST)
}

/// Reads the manifest of the dataset in directory `root`, without locking it.
pub fn read_manifest(root: &Path) -> Result<Manifest, IngestError> {
    manifest_in(&LocalStore::new(root))
}

/// Reads the manifest of the dataset in `store`.
pub fn manifest_in(store: &dyn Store) -> Result<Manifest, IngestError> {
    let path = format!("{META_DIR}/{MANIFEST}");
    let blob = store.read(&path).map_err(IngestError::Store)?;
    serde_json::from_slice(blob.bytes()).map_err(|e| IngestError::Dataset {
        path: PathBuf::from(store.location_of(&path)),
        message: format!("unreadable manifest: {e}"),
    })
}

impl Dataset {
    /// Opens `root` for writing, creating it with `fresh` as its manifest if it is new.
    /// Another writer holding the lock is an error rather than a wait.
    pub fn open(root: &Path, fresh: Manifest) -> Result<Dataset, IngestError> {
        let meta = root.join(META_DIR);
        std::fs::create_dir_all(&meta).map_err(|e| IngestError::io(&meta, e))?;
        let lock_path = meta.join(LOCK);
        let lock = crate::lock::exclusive(&lock_path).map_err(|e| match e {
            crate::lock::LockError::Io(e) => IngestError::io(&lock_path, e),
            crate::lock::LockError::Held => IngestError::Dataset {
                path: root.to_path_buf(),
                message: "another quarry process is writing to this dataset".into(),
            },
        })?;
        let manifest = if manifest_path(root).exists() {
            read_manifest(root)?
        } else {
            fresh
        };
        let mut dataset = Dataset {
            root: root.to_path_buf(),
            _lock: lock,
            manifest,
            repairs: Vec::new(),
        };
        dataset.recover()?;
        Ok(dataset)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn staging_root(&self) -> PathBuf {
        self.root.join(META_DIR).join(STAGING)
    }

    pub fn staging_dir(&self, run: u64) -> PathBuf {
        self.staging_root().join(format!("run-{run:05}"))
    }

    /// Finishes a run that died while committing and removes staging left by aborted runs.
    fn recover(&mut self) -> Result<(), IngestError> {
        let pending: Vec<u64> = self
            .manifest
            .runs
            .iter()
            .filter(|r| !r.committed)
            .map(|r| r.id)
            .collect();
        for id in pending {
            self.move_parts_into_place(id)?;
            self.mark_committed(id)?;
            self.repairs
                .push(format!("finished committing run {id}, interrupted earlier"));
        }
        let staging = self.staging_root();
        if staging.exists() {
            let leftovers = std::fs::read_dir(&staging)
                .map_err(|e| IngestError::io(&staging, e))?
                .count();
            std::fs::remove_dir_all(&staging).map_err(|e| IngestError::io(&staging, e))?;
            if leftovers > 0 {
                self.repairs.push(format!(
                    "removed the staged output of {leftovers} interrupted run(s)"
                ));
            }
        }
        Ok(())
    }

    /// The id the next run gets.
    pub fn next_run_id(&self) -> u64 {
        self.manifest.runs.iter().map(|r| r.id).max().unwrap_or(0) + 1
    }

    /// Whether an input of exactly `bytes` bytes went in before: only then can a file of
    /// that size have a fingerprint the dataset holds.
    pub fn has_input_of_size(&self, bytes: u64) -> bool {
        self.manifest.inputs().any(|i| i.bytes == bytes)
    }

    pub fn has_fingerprint(&self, fingerprint: &str) -> Option<&InputRecord> {
        self.manifest
            .inputs()
            .find(|i| i.fingerprint == fingerprint)
    }

    /// Commits a run whose parts sit in its staging directory; `next_part` is the first part
    /// number later runs may use.
    pub fn commit(
        &mut self,
        run: RunRecord,
        indices: BTreeMap<String, u64>,
        next_part: u64,
    ) -> Result<(), IngestError> {
        self.manifest.next_part = self.manifest.next_part.max(next_part);
        let id = run.id;
        self.manifest.events += run.events;
        for (index, n) in indices {
            *self.manifest.indices.entry(index).or_default() += n;
        }
        let times = run
            .parts
            .iter()
            .filter(|p| !p.path.contains(super::writer::NULL_PARTITION))
            .flat_map(|p| [p.min_timestamp_us, p.max_timestamp_us]);
        let (lo, hi) = times.fold((None::<i64>, None::<i64>), |(lo, hi), t| {
            (
                Some(lo.map_or(t, |l| l.min(t))),
                Some(hi.map_or(t, |h| h.max(t))),
            )
        });
        let merge = |old: &Option<String>, new: Option<i64>, pick_min: bool| -> Option<String> {
            let new = new.map(super::format_micros);
            match (old.clone(), new) {
                (Some(o), Some(n)) => Some(if (n < o) == pick_min { n } else { o }),
                (o, n) => o.or(n),
            }
        };
        self.manifest.min_timestamp = merge(&self.manifest.min_timestamp, lo, true);
        self.manifest.max_timestamp = merge(&self.manifest.max_timestamp, hi, false);
        self.manifest.runs.push(run);
        self.write_manifest()?;
        self.move_parts_into_place(id)?;
        self.mark_committed(id)?;
        let staging = self.staging_dir(id);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| IngestError::io(&staging, e))?;
        }
        // Only an empty directory goes; another run's leftovers are the next open's business.
        let _ = std::fs::remove_dir(self.staging_root());
        Ok(())
    }

    fn move_parts_into_place(&self, run: u64) -> Result<(), IngestError> {
        let Some(record) = self.manifest.runs.iter().find(|r| r.id == run) else {
            return Ok(());
        };
        let staging = self.staging_dir(run);
        for part in &record.parts {
            let from = staged_path(&staging, &part.path);
            let to = self.root.join(&part.path);
            if from.exists() {
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
                }
                std::fs::rename(&from, &to).map_err(|e| IngestError::io(&to, e))?;
            } else if !to.exists() {
                return Err(IngestError::Dataset {
                    path: to,
                    message: format!("part of run {run} is missing from staging and dataset"),
                });
            }
        }
        Ok(())
    }

    fn mark_committed(&mut self, run: u64) -> Result<(), IngestError> {
        let now = super::now_rfc3339();
        for r in self.manifest.runs.iter_mut().filter(|r| r.id == run) {
            r.committed = true;
            r.finished.get_or_insert(now.clone());
        }
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<(), IngestError> {
        let path = manifest_path(&self.root);
        let tmp = path.with_extension("json.tmp");
        let text =
            serde_json::to_string_pretty(&self.manifest).map_err(|e| IngestError::Dataset {
                path: path.clone(),
                message: e.to_string(),
            })?;
        std::fs::write(&tmp, text).map_err(|e| IngestError::io(&tmp, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| IngestError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| IngestError::io(&path, e))
    }
}

/// `blake3:<hex>` of a file's bytes.
pub fn fingerprint(path: &Path) -> Result<String, IngestError> {
    // Read through a buffer, not a mapping: mapped pages would count against the
    // converter's resident memory for the whole size of the input.
    let file = std::fs::File::open(path).map_err(|e| IngestError::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::io::BufReader::with_capacity(1 << 20, file))
        .map_err(|e| IngestError::io(path, e))?;
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

/// The distinct non-empty script block texts of a dataset (sorted), for `quarry gen --corpus`.
pub fn script_blocks(root: &Path) -> Result<Vec<String>, IngestError> {
    use arrow::array::{Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    const COLUMN: &str = "powershell.file.script_block_text";
    let manifest = read_manifest(root)?;
    let mut texts = std::collections::BTreeSet::new();
    for part in manifest.parts() {
        let path = root.join(&part.path);
        let file = File::open(&path).map_err(|e| IngestError::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let schema = builder.parquet_schema();
        // Dotted column names: select the leaf by index, not by a dotted path.
        let Some(leaf) = (0..schema.num_columns()).find(|&i| {
            schema.column(i).path().string() == COLUMN || schema.column(i).name() == COLUMN
        }) else {
            continue;
        };
        let mask = ProjectionMask::leaves(schema, [leaf]);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let Some(column) = batch.column(0).as_any().downcast_ref::<StringArray>() else {
                continue;
            };
            for i in 0..column.len() {
                if column.is_valid(i) && !column.value(i).is_empty() {
                    texts.insert(column.value(i).to_string());
                }
            }
        }
    }
    Ok(texts.into_iter().collect())
}
