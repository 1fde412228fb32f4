//! The errors that stop a conversion, each naming its file (bad records do not stop it: they
//! are counted in the report).

use std::path::{Path, PathBuf};

/// Errors that stop a conversion (bad records do not: they are counted in the report).
#[derive(Debug)]
pub enum IngestError {
    /// An input path that is missing or unreadable.
    Input {
        path: PathBuf,
        message: String,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Dataset {
        path: PathBuf,
        message: String,
    },
    Config(String),
    Parquet(parquet::errors::ParquetError),
    /// A Parquet part that could not be written (a full disk, say).
    Part {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    Arrow(arrow::error::ArrowError),
    /// A dataset's object that could not be read.
    Store(crate::store::StoreError),
    /// The run was interrupted; nothing was added to the dataset.
    Cancelled,
}

impl IngestError {
    pub fn io(path: &Path, source: std::io::Error) -> IngestError {
        IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestError::Input { path, message } => {
                write!(f, "input {}: {message}", path.display())
            }
            IngestError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IngestError::Dataset { path, message } => {
                write!(f, "dataset {}: {message}", path.display())
            }
            IngestError::Config(m) => write!(f, "{m}"),
            IngestError::Parquet(e) => write!(f, "parquet: {e}"),
            IngestError::Part { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            IngestError::Arrow(e) => write!(f, "arrow: {e}"),
            IngestError::Store(e) => write!(f, "{e}"),
            IngestError::Cancelled => write!(f, "interrupted; the dataset is unchanged"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IngestError::Io { source, .. } => Some(source),
            IngestError::Parquet(e) | IngestError::Part { source: e, .. } => Some(e),
            IngestError::Arrow(e) => Some(e),
            IngestError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<parquet::errors::ParquetError> for IngestError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        IngestError::Parquet(e)
    }
}

impl From<arrow::error::ArrowError> for IngestError {
    fn from(e: arrow::error::ArrowError) -> Self {
        IngestError::Arrow(e)
    }
}
