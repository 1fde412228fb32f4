//! Shared helpers of the integration tests: temporary directories, a fixed random source, the
//! real-data location, running the binary, and reading a dataset back as JSON rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use tempfile::TempDir;

/// SplitMix64: the generated cases are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("quarry-test-")
        .tempdir()
        .expect("temporary directory")
}

/// `../shared/data`, or `None` (after printing why) when this checkout has no shared data.
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} is absent (real data lives beside the checkout)",
            dir.display()
        );
        None
    }
}

/// A path inside this repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A `quarry` command ready to run.
pub fn quarry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
}

/// Every part of a dataset, in path order.
pub fn parts(dataset: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dataset, &mut out);
    out.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Converts `inputs` into `out` with the default options, as `quarry convert` does.
pub fn convert_default(
    inputs: &[PathBuf],
    out: &Path,
) -> Result<quarry::ingest::ConvertReport, quarry::ingest::IngestError> {
    quarry::ingest::convert(
        inputs,
        out,
        &quarry::ingest::ConvertOptions::default(),
        &mut quarry::ingest::NoProgress,
        &std::sync::atomic::AtomicBool::new(false),
    )
}

pub type Row = BTreeMap<String, serde_json::Value>;

/// Every row of every part, as JSON objects keyed by column name (nulls left out).
pub fn read_rows(dataset: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for part in parts(dataset) {
        let file = std::fs::File::open(&part).expect("open part");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet reader")
            .build()
            .expect("build reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let mut writer = arrow::json::ArrayWriter::new(Vec::new());
            writer.write(&batch).expect("json");
            writer.finish().expect("json finish");
            let json: Vec<Row> = serde_json::from_slice(&writer.into_inner()).expect("rows");
            rows.extend(json);
        }
    }
    rows
}
