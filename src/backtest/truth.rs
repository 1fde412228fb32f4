//! Ground truth for a backtest: which hits are true positives, and which malicious events or
//! incidents a version missed.
//!
//! Three sources: a keyword column of the dataset (`labels.truth: malicious`, run as one
//! more query in the hunt's pass); a table (CSV or Parquet) of incident windows, `host`,
//! `start`, `end`, where any hit on that host inside the window is true; or a table of
//! labelled event references, rows naming events by the fields a hit carries (`file` and
//! `row`, optionally `dataset`, as in a hit table; else any of `@timestamp` and the triage
//! fields, such as `host.name` with `powershell.file.script_block_id`), with an optional
//! `label` column of which only `malicious` rows count. A labelled hit table exported from
//! an earlier hunt is such a table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::diff::EventRef;
use super::MALICIOUS;
use crate::ingest::doc::Value;
use crate::ingest::{format_micros, parse_timestamp};
use crate::sink::Hit;
use crate::sink::TRIAGE_FIELDS;

/// Where the ground truth comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TruthSource {
    /// A keyword column whose value `malicious` labels the events a rule should alert on
    /// (`labels.truth` in generated data), read in the hunt's pass.
    Column(String),
    /// A CSV or Parquet file of incident windows (columns `host`, `start`, `end`) or of
    /// labelled event references (see the module documentation).
    File(PathBuf),
}

/// An incident window on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub host: String,
    pub start_us: i64,
    pub end_us: i64,
}

/// The field of a hit an event reference compares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyField {
    Timestamp,
    Triage(usize),
    Dataset,
    File,
    Row,
}

/// Labelled event references: the key fields of the table, and the distinct keys of its
/// malicious rows with their number.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLabels {
    keys: Vec<KeyField>,
    malicious: HashMap<Vec<Option<String>>, usize>,
    /// The key columns, by name, for the report.
    pub key_columns: Vec<String>,
}

impl EventLabels {
    /// The number of a labelled event `hit` is, if it is one.
    fn label_of(&self, hit: &Hit) -> Option<usize> {
        let key: Vec<Option<String>> = self
            .keys
            .iter()
            .map(|k| match k {
                KeyField::Timestamp => Some(format_micros(hit.timestamp_us)),
                KeyField::Triage(i) => hit.fields.get(*i).cloned().flatten(),
                KeyField::Dataset => Some(normal_path(&hit.dataset)),
                KeyField::File => Some(hit.file.clone()),
                KeyField::Row => Some(hit.row.to_string()),
            })
            .collect();
        self.malicious.get(&key).copied()
    }

    pub fn len(&self) -> usize {
        self.malicious.len()
    }

    /// Labelled events whose `dataset` is none of `hunted` (dataset paths as hits name
    /// them), by dataset: they cannot be hit.
    pub fn outside(&self, hunted: &[String]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let Some(at) = self.keys.iter().position(|k| *k == KeyField::Dataset) else {
            return out;
        };
        let hunted: BTreeSet<String> = hunted.iter().map(|d| normal_path(d)).collect();
        for key in self.malicious.keys() {
            if let Some(d) = key[at].as_ref().filter(|d| !hunted.contains(*d)) {
                *out.entry(d.clone()).or_default() += 1;
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.malicious.is_empty()
    }
}

/// What a ground-truth file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum TruthFile {
    Incidents(Vec<Incident>),
    Events(EventLabels),
}

/// The ground truth a backtest compares hits against.
pub(super) enum Truth {
    /// The events the truth column labels malicious.
    Column(BTreeSet<EventRef>),
    Incidents(Vec<Incident>),
    Events(EventLabels),
}

/// True and false positives of one version against the ground truth. With incident
/// windows, false negatives and recall count incidents (one with no hit is missed); with
/// labelled references, distinct labelled keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthCounts {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub false_positives_per_day: f64,
    /// Hosts with at least one false positive.
    pub false_positive_hosts: usize,
    pub false_positives_per_host: Option<f64>,
}

impl Truth {
    pub(super) fn is_true(&self, h: &Hit) -> bool {
        match self {
            Truth::Column(bad) => bad.contains(&EventRef::of(h)),
            Truth::Incidents(all) => all.iter().any(|i| covers(i, h)),
            Truth::Events(labels) => labels.label_of(h).is_some(),
        }
    }

    pub(super) fn counts(&self, own: &[&Hit], days: f64) -> TruthCounts {
        let (tp, fp): (Vec<&&Hit>, Vec<&&Hit>) = own.iter().partition(|h| self.is_true(h));
        let (positives, found) = match self {
            Truth::Column(bad) => (bad.len(), tp.len()),
            Truth::Incidents(all) => (
                all.len(),
                all.iter()
                    .filter(|i| own.iter().any(|h| covers(i, h)))
                    .count(),
            ),
            Truth::Events(labels) => (
                labels.len(),
                tp.iter()
                    .filter_map(|h| labels.label_of(h))
                    .collect::<BTreeSet<usize>>()
                    .len(),
            ),
        };
        let fp_hosts: BTreeSet<&str> = fp.iter().filter_map(|h| h.field("host.name")).collect();
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        TruthCounts {
            true_positives: tp.len(),
            false_positives: fp.len(),
            false_negatives: positives - found,
            precision: ratio(tp.len(), own.len()),
            recall: ratio(found, positives),
            false_positives_per_day: fp.len() as f64 / days,
            false_positive_hosts: fp_hosts.len(),
            false_positives_per_host: ratio(fp.len(), fp_hosts.len()),
        }
    }
}

fn covers(i: &Incident, h: &Hit) -> bool {
    h.field("host.name") == Some(i.host.as_str())
        && i.start_us <= h.timestamp_us
        && h.timestamp_us <= i.end_us
}

/// A table's column names and rows, every cell as text (times as RFC 3339 UTC with
/// microseconds) or null, each row with the place it came from (`line N` or `row N`).
struct Table {
    columns: Vec<String>,
    rows: Vec<(String, Vec<Option<String>>)>,
}

/// The columns whose cells are times, compared as instants.
const TIME_COLUMNS: &[&str] = &["@timestamp", "start", "end"];

/// Reads a ground-truth file. Rows that cannot be read are skipped and described in the
/// returned problems (file and line or row).
pub fn read_truth_file(path: &Path) -> Result<(TruthFile, Vec<String>), TruthError> {
    let name = path.display();
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let table = match is_parquet {
        true => read_parquet(path),
        false => read_csv(path),
    }
    .map_err(|(place, kind)| TruthError {
        path: path.to_path_buf(),
        place,
        kind,
    })?;
    let mut problems = Vec::new();
    let column = |n: &str| table.columns.iter().position(|c| c == n);
    // Time cells in one form, so that keys and windows compare as instants.
    let mut rows = Vec::with_capacity(table.rows.len());
    'rows: for (place, mut cells) in table.rows {
        for t in TIME_COLUMNS.iter().filter_map(|c| column(c)) {
            if let Some(text) = cells[t].take() {
                match parse_timestamp(&Value::Str(text.clone())) {
                    Some(us) => cells[t] = Some(format_micros(us)),
                    None => {
                        problems.push(format!("{name} {place}: `{text}` is not a time"));
                        continue 'rows;
                    }
                }
            }
        }
        rows.push((place, cells));
    }
    if let (Some(host), Some(start), Some(end)) = (column("host"), column("start"), column("end")) {
        let mut incidents = Vec::new();
        for (place, cells) in rows {
            let time = |k: usize| {
                cells[k]
                    .as_deref()
                    .and_then(|t| parse_timestamp(&Value::Str(t.to_string())))
            };
            match (cells[host].as_deref(), time(start), time(end)) {
                (Some(h), Some(start_us), Some(end_us)) if start_us <= end_us => {
                    incidents.push(Incident {
                        host: h.trim().to_string(),
                        start_us,
                        end_us,
                    })
                }
                _ => problems.push(format!(
                    "{name} {place}: an incident needs a host and a start no later than its end"
                )),
            }
        }
        return Ok((TruthFile::Incidents(incidents), problems));
    }
    let labels =
        event_labels(&name.to_string(), &table.columns, rows, &mut problems).ok_or(TruthError {
            path: path.to_path_buf(),
            place: None,
            kind: TruthErrorKind::NoKeys,
        })?;
    Ok((TruthFile::Events(labels), problems))
}

/// Labelled event references from a table: its key columns, and the keys of its malicious
/// rows; `None` when it has no key column.
fn event_labels(
    name: &str,
    columns: &[String],
    rows: Vec<(String, Vec<Option<String>>)>,
    problems: &mut Vec<String>,
) -> Option<EventLabels> {
    let position = |n: &str| columns.iter().position(|c| c == n);
    let mut keys: Vec<(usize, KeyField)> = Vec::new();
    if let (Some(file), Some(row)) = (position("file"), position("row")) {
        // The exact reference a hit table carries; other columns then only describe it.
        keys.extend(position("dataset").map(|d| (d, KeyField::Dataset)));
        keys.push((file, KeyField::File));
        keys.push((row, KeyField::Row));
    } else {
        keys.extend(position("@timestamp").map(|t| (t, KeyField::Timestamp)));
        for (i, f) in TRIAGE_FIELDS.iter().enumerate() {
            keys.extend(position(f).map(|c| (c, KeyField::Triage(i))));
        }
    }
    if keys.is_empty() {
        return None;
    }
    let label = position("label");
    let mut malicious = HashMap::new();
    for (place, cells) in rows {
        if label.is_some_and(|l| {
            !cells[l]
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(MALICIOUS))
        }) {
            continue;
        }
        let key: Vec<Option<String>> = keys
            .iter()
            .map(|(c, k)| {
                let cell = cells[*c].as_deref().map(str::trim);
                match k {
                    KeyField::Dataset => cell.map(normal_path),
                    _ => cell.map(str::to_string),
                }
            })
            .collect();
        if key.iter().all(Option::is_none) {
            problems.push(format!("{name} {place}: every key column is empty"));
            continue;
        }
        let next = malicious.len();
        malicious.entry(key).or_insert(next);
    }
    Some(EventLabels {
        key_columns: keys.iter().map(|(c, _)| columns[*c].clone()).collect(),
        keys: keys.into_iter().map(|(_, k)| k).collect(),
        malicious,
    })
}

/// A ground-truth file that cannot be read, with the line or row where it stopped.
#[derive(Debug)]
pub struct TruthError {
    pub path: PathBuf,
    /// `line N` of a CSV file, `row N` of a Parquet one.
    pub place: Option<String>,
    pub kind: TruthErrorKind,
}

#[derive(Debug)]
pub enum TruthErrorKind {
    Io(std::io::Error),
    Csv(csv::Error),
    Parquet(crate::scan::ScanErrorKind),
    /// Neither incident windows nor any column that names an event.
    NoKeys,
}

impl std::fmt::Display for TruthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        match &self.kind {
            TruthErrorKind::Io(e) => write!(f, "{e}"),
            TruthErrorKind::Csv(e) => write!(f, "{e}"),
            TruthErrorKind::Parquet(e) => write!(f, "{e}"),
            TruthErrorKind::NoKeys => write!(
                f,
                "neither incident windows (host, start, end) nor event references: name events \
                 by `file` and `row` (and `dataset`), or by any of `@timestamp`, {}",
                TRIAGE_FIELDS
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for TruthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            TruthErrorKind::Io(e) => Some(e),
            TruthErrorKind::Csv(e) => Some(e),
            TruthErrorKind::Parquet(e) => Some(e),
            TruthErrorKind::NoKeys => None,
        }
    }
}

/// Where a table could not be read further, and why.
type TableError = (Option<String>, TruthErrorKind);

/// A dataset path in one spelling: `./datasets/sample/` and `datasets/sample` are equal.
fn normal_path(p: &str) -> String {
    let parts: Vec<String> = Path::new(p)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn read_csv(path: &Path) -> Result<Table, TableError> {
    let csv = |place, e| (place, TruthErrorKind::Csv(e));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv(None, e))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| csv(Some("line 1".into()), e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let place = format!("line {}", i + 2);
        let record = record.map_err(|e| csv(Some(place.clone()), e))?;
        let cells = (0..columns.len())
            .map(|k| {
                record
                    .get(k)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
            .collect();
        rows.push((place, cells));
    }
    Ok(Table { columns, rows })
}

fn read_parquet(path: &Path) -> Result<Table, TableError> {
    use crate::scan::ScanErrorKind;
    let file = std::fs::File::open(path).map_err(|e| (None, TruthErrorKind::Io(e)))?;
    let meta = crate::scan::read_footer(&file).map_err(|e| (None, TruthErrorKind::Parquet(e)))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
        .build()
        .map_err(|e| (None, TruthErrorKind::Parquet(ScanErrorKind::Parquet(e))))?;
    let schema = reader.schema();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| {
            let kind = ScanErrorKind::Arrow {
                column: None,
                source,
            };
            (
                Some(format!("row {}", rows.len())),
                TruthErrorKind::Parquet(kind),
            )
        })?;
        let mut cells: Vec<Vec<Option<String>>> = Vec::with_capacity(columns.len());
        for array in batch.columns() {
            cells.push(texts(array.as_ref()));
        }
        for r in 0..batch.num_rows() {
            let place = format!("row {}", rows.len());
            rows.push((place, cells.iter_mut().map(|c| c[r].take()).collect()));
        }
    }
    Ok(Table { columns, rows })
}

/// The cells of a column as text; a column that cannot be read as text is all nulls (it
/// cannot be a key).
fn texts(array: &dyn Array) -> Vec<Option<String>> {
    if let DataType::Timestamp(..) = array.data_type() {
        let micros = arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None));
        if let Ok(m) = micros {
            if let Some(t) = m.as_any().downcast_ref::<TimestampMicrosecondArray>() {
                return (0..t.len())
                    .map(|i| t.is_valid(i).then(|| format_micros(t.value(i))))
                    .collect();
            }
        }
    }
    match arrow::compute::cast(array, &DataType::Utf8) {
        Ok(s) => match s.as_any().downcast_ref::<StringArray>() {
            Some(s) => (0..s.len())
                .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
                .collect(),
            None => vec![None; array.len()],
        },
        Err(_) => vec![None; array.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit_on(host: &str, us: i64, row: u64) -> Hit {
        let mut fields = vec![None; TRIAGE_FIELDS.len()];
        fields[0] = Some(host.to_string());
        Hit {
            rule_id: "r".into(),
            rule_version: 1,
            role: crate::plan::Role::Version,
            rule_name: String::new(),
            rule_type: "query".into(),
            severity: String::new(),
            risk_score: 0.0,
            timestamp_us: us,
            fields: fields.into(),
            matched: Vec::new(),
            dataset: "./d/".into(),
            file: "f".into(),
            row,
            sequence: None,
        }
    }

    fn counts(truth: &Truth, hits: &[Hit]) -> (usize, usize, usize) {
        let own: Vec<&Hit> = hits.iter().collect();
        let c = truth.counts(&own, 1.0);
        (c.true_positives, c.false_positives, c.false_negatives)
    }

    #[test]
    fn incident_windows_decide_hits_and_count_missed_incidents() {
        assert_eq!(TRIAGE_FIELDS[0], "host.name");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("incidents.csv");
        std::fs::write(
            &path,
            "campaign,host,start,end\n\
             a,ws-1,1970-01-01T00:00:10Z,1970-01-01T00:00:20Z\n\
             b,ws-2,1970-01-01T00:01:00Z,1970-01-01T00:02:00Z\n\
             c,ws-3,yesterday,1970-01-01T00:02:00Z\n",
        )
        .expect("write");
        let (file, problems) = read_truth_file(&path).expect("read");
        let TruthFile::Incidents(incidents) = file else {
            panic!("not read as incidents");
        };
        assert_eq!(incidents.len(), 2);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line 4"), "{problems:?}");
        let truth = Truth::Incidents(incidents);
        let hits = [
            hit_on("ws-1", 10_000_000, 1), // on the window's first instant
            hit_on("ws-1", 20_000_001, 2), // just after it
            hit_on("ws-2", 10_000_000, 3), // another host's window
        ];
        assert_eq!(counts(&truth, &hits), (1, 2, 1));
        let own: Vec<&Hit> = hits.iter().collect();
        let c = truth.counts(&own, 1.0);
        assert_eq!(c.recall, Some(0.5));
        assert_eq!(c.false_positive_hosts, 2);
    }

    #[test]
    fn event_references_by_file_and_row_honour_labels_and_dataset_spelling() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("labels.csv");
        std::fs::write(
            &path,
            "dataset,file,row,label,host.name\n\
             d,f,1,malicious,ignored-when-file-and-row-are-given\n\
             d,f,2,benign,\n\
             d,f,1,MALICIOUS,duplicate\n\
             d,f,9,malicious,\n",
        )
        .expect("write");
        let (file, problems) = read_truth_file(&path).expect("read");
        assert!(problems.is_empty(), "{problems:?}");
        let TruthFile::Events(labels) = file else {
            panic!("not read as event references");
        };
        assert_eq!(labels.key_columns, ["dataset", "file", "row"]);
        assert!(labels.outside(&["d/".into()]).is_empty());
        assert_eq!(labels.outside(&["e".into()]).get("d"), Some(&2));
        assert_eq!(labels.len(), 2, "rows 1 and 9; row 1 twice counts once");
        let truth = Truth::Events(labels);
        let hits = [hit_on("x", 0, 1), hit_on("x", 0, 2), hit_on("x", 0, 3)];
        assert_eq!(counts(&truth, &hits), (1, 2, 1), "row 9 is missed");
    }

    #[test]
    fn event_references_by_fields_compare_times_as_instants_and_nulls_as_nulls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("labels.csv");
        std::fs::write(
            &path,
            "@timestamp,host.name,user.id,note\n\
             1970-01-01T01:00:10+01:00,ws-1,,a time with an offset\n\
             1970-01-01T00:00:20.000Z,ws-2,S-1-5-18,a user the hit lacks\n\
             not a time,ws-3,,\n",
        )
        .expect("write");
        let (file, problems) = read_truth_file(&path).expect("read");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line 4"), "{problems:?}");
        let TruthFile::Events(labels) = file else {
            panic!("not read as event references");
        };
        assert_eq!(labels.key_columns, ["@timestamp", "host.name", "user.id"]);
        let truth = Truth::Events(labels);
        let hits = [hit_on("ws-1", 10_000_000, 1), hit_on("ws-2", 20_000_000, 2)];
        assert_eq!(counts(&truth, &hits), (1, 1, 1));
    }

    #[test]
    fn a_table_naming_no_event_is_refused_with_what_it_needs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, "who,when\nme,now\n").expect("write");
        let e = read_truth_file(&path)
            .expect_err("no key columns")
            .to_string();
        assert!(
            e.contains("labels.csv") && e.contains("`file` and `row`"),
            "{e}"
        );
    }
}
