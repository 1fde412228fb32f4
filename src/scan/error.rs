//! Why a part, one of its row groups or a batch could not be scanned, and where.
//!
//! A [`ScanError`] names the file (dataset-relative, as hits name it) and the row group when
//! there is one; its [`ScanErrorKind`] says what was wrong, with the underlying Parquet,
//! Arrow or store error as its `source()`. The hunt turns each into a reported failure of
//! that unit alone.

use std::fmt;

use crate::scan::pages::PageError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ScanError {
    /// The part, relative to its dataset's root; `None` for a batch handed in by a caller.
    pub file: Option<String>,
    pub row_group: Option<usize>,
    pub kind: ScanErrorKind,
}

#[derive(Debug)]
pub enum ScanErrorKind {
    /// The part's bytes could not be had from its store.
    Store(StoreError),
    /// Not a Parquet file the reader accepts: no footer, or a damaged one.
    Footer(parquet::errors::ParquetError),
    /// A footer so damaged that the Parquet reader panicked on it.
    FooterPanicked,
    /// A footer whose column chunk lies (partly) outside the file.
    ChunkOutsideFile {
        row_group: usize,
        column: usize,
        start: i64,
        len: i64,
        file_len: u64,
    },
    /// The Parquet reader could not decode a row group's columns.
    Parquet(parquet::errors::ParquetError),
    /// Arrow could not assemble or pick a column's values.
    Arrow {
        column: Option<String>,
        source: arrow::error::ArrowError,
    },
    /// A text column's pages, read straight from the file, are damaged.
    Pages { column: String, source: PageError },
    /// A text column with more values than its row group has rows.
    MoreValuesThanRows { column: String },
    /// A text value that is not UTF-8.
    NotUtf8 { column: String, row: usize },
    /// A column whose type holds no value a query can match.
    Unmatchable { column: String, data_type: String },
    /// No `@timestamp` column of a timestamp type.
    NoTimestamps,
    /// The Parquet reader panicked on damage its checks missed.
    ReaderPanicked(String),
}

impl ScanError {
    /// `kind`, met in row group `row_group` of `file`.
    pub fn at(file: &str, row_group: Option<usize>, kind: ScanErrorKind) -> ScanError {
        ScanError {
            file: Some(file.to_string()),
            row_group,
            kind,
        }
    }

    /// `kind`, met in a batch the caller handed in.
    pub fn in_batch(kind: ScanErrorKind) -> ScanError {
        ScanError {
            file: None,
            row_group: None,
            kind,
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.row_group) {
            (Some(file), Some(rg)) => write!(f, "{file} (row group {rg}): {}", self.kind),
            (Some(file), None) => write!(f, "{file}: {}", self.kind),
            (None, _) => write!(f, "batch: {}", self.kind),
        }
    }
}

impl fmt::Display for ScanErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NOT_PARQUET: &str = "not a readable Parquet file";
        match self {
            ScanErrorKind::Store(e) => match e.is_not_found() {
                true => write!(f, "cannot open: not found"),
                false => write!(f, "cannot open: {e}"),
            },
            ScanErrorKind::Footer(e) => write!(f, "{NOT_PARQUET}: {e}"),
            ScanErrorKind::FooterPanicked => write!(f, "{NOT_PARQUET}: its footer is damaged"),
            ScanErrorKind::ChunkOutsideFile {
                row_group,
                column,
                start,
                len,
                file_len,
            } => write!(
                f,
                "{NOT_PARQUET}: row group {row_group}, column {column}: bytes {start}..+{len} \
                 are not inside the file ({file_len} bytes)"
            ),
            ScanErrorKind::Parquet(e) => write!(f, "{e}"),
            ScanErrorKind::Arrow {
                column: Some(c),
                source,
            } => write!(f, "{c}: {source}"),
            ScanErrorKind::Arrow {
                column: None,
                source,
            } => write!(f, "{source}"),
            ScanErrorKind::Pages { column, source } => write!(f, "{column}: {source}"),
            ScanErrorKind::MoreValuesThanRows { column } => {
                write!(f, "{column}: more values than rows")
            }
            ScanErrorKind::NotUtf8 { column, row } => write!(f, "{column}: row {row} is not UTF-8"),
            ScanErrorKind::Unmatchable { column, data_type } => write!(
                f,
                "column `{column}` is of type {data_type}, which holds no value a query can match"
            ),
            ScanErrorKind::NoTimestamps => write!(f, "no @timestamp column of a timestamp type"),
            ScanErrorKind::ReaderPanicked(why) => write!(f, "the Parquet reader failed: {why}"),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// A kind is an error of its own where it travels without its place (a ground-truth file's
/// Parquet failure, say).
impl std::error::Error for ScanErrorKind {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanErrorKind::Store(e) => Some(e),
            ScanErrorKind::Footer(e) | ScanErrorKind::Parquet(e) => Some(e),
            ScanErrorKind::Arrow { source, .. } => Some(source),
            ScanErrorKind::Pages { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<parquet::errors::ParquetError> for ScanErrorKind {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ScanErrorKind::Parquet(e)
    }
}

/// A column's text matcher that could not be built (its automaton outgrew aho-corasick's
/// limits): the plan cannot be scanned.
#[derive(Debug)]
pub struct MatcherError {
    pub column: String,
    pub source: aho_corasick::BuildError,
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot build the text automaton of {}: {}",
            self.column, self.source
        )
    }
}

impl std::error::Error for MatcherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
