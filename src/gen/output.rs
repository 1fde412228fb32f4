//! Where a generation run's events go, in order: the optional NDJSON copy (a temporary file
//! renamed when complete), the dataset's event sink and the run's report; and the incident
//! windows written beside the dataset.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ingest::shapes::Shape;
use crate::ingest::{self, EventSink, IngestError};

use super::world::Generated;
use super::{GenReport, Incident};

/// Writes the events of the run, in order: the NDJSON copy, the dataset, the report.
pub(super) struct Emitter<'a, 'w> {
    pub(super) sink: &'a mut EventSink<'w>,
    pub(super) ndjson: Option<&'a mut NdjsonOut>,
    pub(super) report: &'a mut GenReport,
    pub(super) covered: BTreeSet<String>,
    pub(super) failure: Option<IngestError>,
}

impl Emitter<'_, '_> {
    /// Emits one unit's events; false (with the error kept) when writing failed.
    pub(super) fn emit(&mut self, unit: Vec<Generated>) -> bool {
        for g in unit {
            if let Some(line) = &g.line {
                self.report.ndjson_bytes += line.len() as u64 + 1;
                if let Some(n) = self.ndjson.as_deref_mut() {
                    if let Err(e) = n.write(line) {
                        self.failure = Some(e);
                        return false;
                    }
                }
            }
            self.report.events += 1;
            self.report.malicious += u64::from(g.malicious);
            self.report.unsatisfied += u64::from(g.unsatisfied);
            if let Some(step) = g.step {
                self.report.emitted.insert(step);
            }
            if let Some(t) = g.target {
                self.covered.insert(t);
            }
            if let Err(e) = self.sink.add(g.doc, Shape::Ecs) {
                self.failure = Some(e);
                return false;
            }
        }
        true
    }
}

pub(super) fn write_incidents(
    out: &Path,
    run: u64,
    incidents: &[Incident],
) -> Result<(), IngestError> {
    let dir = out.join("_quarry/truth");
    std::fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let path = dir.join(format!("incidents-run-{run:05}.csv"));
    let tmp = dir.join(format!(".incidents-run-{run:05}.csv.tmp"));
    let mut text = String::from("campaign,host,user_id,start,end,steps\n");
    for i in incidents {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            i.campaign,
            i.host,
            i.user,
            ingest::format_micros(i.start_us),
            ingest::format_micros(i.end_us),
            i.families.join(";")
        ));
    }
    std::fs::write(&tmp, text).map_err(|e| IngestError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| IngestError::io(&path, e))
}

/// The NDJSON copy, written to a temporary name and renamed when complete.
pub(super) struct NdjsonOut {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl NdjsonOut {
    pub(super) fn create(path: &Path) -> Result<NdjsonOut, IngestError> {
        let tmp = path.with_extension("ndjson.partial");
        let file = std::fs::File::create(&tmp).map_err(|e| IngestError::io(&tmp, e))?;
        Ok(NdjsonOut {
            path: path.to_path_buf(),
            tmp,
            out: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub(super) fn write(&mut self, line: &str) -> Result<(), IngestError> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| IngestError::io(&self.tmp, e))
    }

    pub(super) fn commit(mut self) -> Result<(), IngestError> {
        self.out
            .flush()
            .map_err(|e| IngestError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| IngestError::io(&self.path, e))
    }
}
