//! Where a hunt's bytes come from: one small seam under every file the hunt reads (Parquet
//! parts with their footers and page indexes, dataset manifests, an incremental hunt's
//! state record and segments), so that no reader opens a path itself.
//!
//! A [`Store`] names objects by `/`-separated paths relative to its root, hands out an
//! object's whole bytes as a [`Blob`], and tells an object's [`Identity`] (its size and a
//! version that changes when its contents do). [`LocalStore`] is a directory: blobs are
//! memory maps, the version is the modification time. Object storage is another
//! implementation of the same trait. Nothing here knows Parquet or quarry's formats.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// A failed read, with the object it was of.
#[derive(Debug)]
pub struct StoreError {
    /// Where the object is, as a user names it (a path, or a URL).
    pub location: String,
    pub kind: StoreErrorKind,
}

#[derive(Debug)]
pub enum StoreErrorKind {
    NotFound,
    Io(std::io::Error),
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, StoreErrorKind::NotFound)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StoreErrorKind::NotFound => write!(f, "{}: not found", self.location),
            StoreErrorKind::Io(e) => write!(f, "{}: {e}", self.location),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            StoreErrorKind::NotFound => None,
            StoreErrorKind::Io(e) => Some(e),
        }
    }
}

/// What tells two states of an object apart without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub size: u64,
    /// Changes whenever the contents may have (a local file: its modification time in
    /// nanoseconds since the epoch).
    pub version: String,
}

/// An object's bytes, as cheap to clone and slice as [`Bytes`].
#[derive(Clone)]
pub struct Blob {
    bytes: Bytes,
    /// The mapping under `bytes`, when the store maps files.
    map: Option<Arc<memmap2::Mmap>>,
}

impl Blob {
    /// Bytes held in memory (a test's, or a store that downloads).
    pub fn from_bytes(bytes: Bytes) -> Blob {
        Blob { bytes, map: None }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Lets `range` leave this process's resident memory when the blob is a mapping (the
    /// pages stay in the page cache and are read again on the next access); otherwise a
    /// no-op. Without it the resident size of a hunt grows with the data read.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let Some(map) = &self.map else { return };
        if range.start < range.end && range.end <= map.len() {
            // SAFETY: the mapping is shared and read-only, so dropped pages are read again
            // from the file on the next access (by any thread) with the same contents.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
        }
    }
}

/// A place objects are read from.
pub trait Store: Send + Sync {
    /// The root, as messages name it.
    fn location(&self) -> String;
    /// Where `path` is, as messages name it.
    fn location_of(&self, path: &str) -> String;
    /// The whole object at `path`.
    fn read(&self, path: &str) -> Result<Blob, StoreError>;
    fn identity(&self, path: &str) -> Result<Identity, StoreError>;
}

/// A directory of the local file system.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: &Path) -> LocalStore {
        LocalStore {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn error(&self, path: &str, e: std::io::Error) -> StoreError {
        StoreError {
            location: self.location_of(path),
            kind: match e.kind() {
                std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
                _ => StoreErrorKind::Io(e),
            },
        }
    }
}

impl Store for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn location_of(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }

    fn read(&self, path: &str) -> Result<Blob, StoreError> {
        let file = std::fs::File::open(self.root.join(path)).map_err(|e| self.error(path, e))?;
        let len = file.metadata().map_err(|e| self.error(path, e))?.len();
        if len == 0 {
            // An empty file cannot be mapped.
            return Ok(Blob::from_bytes(Bytes::new()));
        }
        // SAFETY: dataset parts and state segments are written once (to a temporary path,
        // then renamed) and never modified in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| self.error(path, e))?;
        let map = Arc::new(map);
        Ok(Blob {
            bytes: Bytes::from_owner(SharedMap(Arc::clone(&map))),
            map: Some(map),
        })
    }

    fn identity(&self, path: &str) -> Result<Identity, StoreError> {
        let meta = std::fs::metadata(self.root.join(path)).map_err(|e| self.error(path, e))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Identity {
            size: meta.len(),
            version: modified.to_string(),
        })
    }
}

/// A mapping as the owner of [`Bytes`] slices, shared with the [`Blob`].
struct SharedMap(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_store_reads_maps_and_tells_identity_and_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), b"abc").expect("write");
        std::fs::write(dir.path().join("empty"), b"").expect("write");
        let store = LocalStore::new(dir.path());
        let blob = store.read("a").expect("read");
        assert_eq!(&blob.bytes()[..], b"abc");
        blob.release(0..3);
        assert_eq!(&blob.bytes()[..], b"abc", "released pages read again");
        assert!(store.read("empty").expect("empty").is_empty());
        let id = store.identity("a").expect("identity");
        assert_eq!(id.size, 3);
        let e = store.read("missing").err().expect("no such object");
        assert!(e.is_not_found());
        assert!(e.to_string().ends_with("missing: not found"), "{e}");
    }
}
