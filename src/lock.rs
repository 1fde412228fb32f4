//! Advisory file locks that make a second writer of the same thing fail at once instead of
//! racing the first: a dataset, a hit table, a hunt state. The kernel drops a lock when its
//! process ends, however it ends; a [`Lock`] released normally also removes its file, so a
//! finished run leaves nothing beside what it wrote.
//!
//! Removing the file is safe because a taker checks, once it holds the lock, that the path
//! still names the file it locked: one that locked a file just unlinked by its holder opens
//! the path again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub enum LockError {
    /// The lock file could not be opened.
    Io(std::io::Error),
    /// Another process holds the lock.
    Held,
}

/// An exclusive lock, held until dropped; dropping it removes the lock file.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlinked while still held: whoever locks the old file next sees it is gone.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Takes the exclusive lock on `path` (created if missing), without waiting.
pub fn exclusive(path: &Path) -> Result<Lock, LockError> {
    // A few rounds only: each retry means a holder released the lock in between.
    for _ in 0..8 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(LockError::Io)?;
        file.try_lock().map_err(|_| LockError::Held)?;
        let held = file.metadata().map_err(LockError::Io)?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(Lock {
                    file,
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LockError::Io(e)),
        }
    }
    Err(LockError::Held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_fails_and_a_released_lock_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(".x.quarry-lock");
        let first = exclusive(&path).ok().expect("first");
        assert!(matches!(exclusive(&path), Err(LockError::Held)));
        drop(first);
        assert!(!path.exists(), "the lock file is removed with the lock");
        let again = exclusive(&path).ok().expect("free again");
        assert!(path.exists());
        drop(again);
    }

    #[test]
    fn a_lock_taken_on_a_file_its_holder_just_removed_is_taken_again_on_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(".x.quarry-lock");
        // A taker that opened the old file before its holder removed it.
        let stale = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("open");
        std::fs::remove_file(&path).expect("unlink");
        stale.try_lock().expect("the unlinked file is free");
        let lock = exclusive(&path).ok().expect("the path is free");
        assert!(path.exists());
        drop(lock);
    }
}
