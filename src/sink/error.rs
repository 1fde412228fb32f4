//! Why hits could not be spooled, read back or written, and where.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failed write or read of a hit table, a spool run or a hunt state's segment.
#[derive(Debug)]
pub struct SinkError {
    /// The file or directory the failure was at.
    pub path: PathBuf,
    pub kind: SinkErrorKind,
}

#[derive(Debug)]
pub enum SinkErrorKind {
    Io(std::io::Error),
    /// Another process holds the hit table's lock.
    Locked,
    Parquet(parquet::errors::ParquetError),
    Arrow(arrow::error::ArrowError),
    Csv(csv::Error),
    /// Spooled hits that are not what the spool wrote.
    Damaged(Damage),
}

/// What is wrong with spooled hits read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// A role byte no hit has.
    Role(u8),
    /// A count larger than a hit can hold.
    Count(u64),
    /// The file ends inside a hit.
    CutShort,
    NotUtf8,
}

impl SinkError {
    pub fn new(path: &Path, kind: SinkErrorKind) -> SinkError {
        SinkError {
            path: path.to_path_buf(),
            kind,
        }
    }

    pub fn io(path: &Path, e: std::io::Error) -> SinkError {
        SinkError::new(path, SinkErrorKind::Io(e))
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            SinkErrorKind::Io(e) => write!(f, "{path}: {e}"),
            SinkErrorKind::Locked => {
                write!(
                    f,
                    "{path}: another quarry process is writing this hit table"
                )
            }
            SinkErrorKind::Parquet(e) => write!(f, "{path}: {e}"),
            SinkErrorKind::Arrow(e) => write!(f, "{path}: {e}"),
            SinkErrorKind::Csv(e) => write!(f, "{path}: {e}"),
            SinkErrorKind::Damaged(d) => write!(f, "spooled hits {path}: {d}"),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Role(b) => write!(f, "role {b}"),
            Damage::Count(n) => write!(f, "a count of {n}"),
            Damage::CutShort => write!(f, "cut short"),
            Damage::NotUtf8 => write!(f, "not UTF-8"),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            SinkErrorKind::Io(e) => Some(e),
            SinkErrorKind::Parquet(e) => Some(e),
            SinkErrorKind::Arrow(e) => Some(e),
            SinkErrorKind::Csv(e) => Some(e),
            SinkErrorKind::Locked | SinkErrorKind::Damaged(_) => None,
        }
    }
}
