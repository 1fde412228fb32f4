//! Advisory file locks that make a second writer of the same thing fail at once instead of
//! racing the first: a dataset, a hit table, a hunt state. The lock lives as long as the
//! returned file; the kernel drops it when the process ends, however it ends.

use std::fs::{File, OpenOptions};
use std::path::Path;

pub enum LockError {
    /// The lock file could not be opened.
    Io(std::io::Error),
    /// Another process holds the lock.
    Held,
}

/// Takes the exclusive lock on `path` (created if missing), without waiting.
pub fn exclusive(path: &Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(LockError::Io)?;
    file.try_lock().map_err(|_| LockError::Held)?;
    Ok(file)
}
