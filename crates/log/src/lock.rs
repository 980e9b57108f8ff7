//! The single-writer lock of a log directory.
//!
//! Invariants:
//! - At most one `Log` (in any process) holds `writer.lock` via an exclusive
//!   [`File::try_lock`] (`flock(LOCK_EX)` on Linux); the kernel releases it when
//!   the holder exits, even on `kill -9`.
//! - The holder writes `pid <n>` into the file so a refused writer can name it.
//! - Readers never take the lock; [`writer_running`] only probes it.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{LogError, Result};
use crate::private::{open_private, private_options};

/// Name of the lock file inside the log directory.
pub const LOCK_FILE_NAME: &str = "writer.lock";

/// A held writer lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the single-writer lock of `dir` (creating `dir/writer.lock`).
/// Also used by the store for the archive directory as a whole.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut file = open_private(
        private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600),
        &path,
        "opening lock file",
    )?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown process".to_owned());
            return Err(LogError::Locked {
                dir: dir.to_owned(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(LogError::io("locking", &path, e)),
    }
    let note = format!("pid {}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all_at(note.as_bytes(), 0))
        .and_then(|()| file.flush())
        .map_err(|e| LogError::io("writing lock file", &path, e))?;
    Ok(DirLock { _file: file })
}

/// Whether a writer holds the lock of `dir` at this moment (`verify` asks,
/// to tell the record a running writer is still writing from a torn tail).
/// Probes with a shared lock released at once: a writer starting in that
/// instant is refused as if another held the lock. No lock file: no writer.
pub fn writer_running(dir: &Path) -> Result<bool> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = match open_private(private_options().read(true), &path, "opening lock file") {
        Ok(file) => file,
        Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(LogError::io("probing", &path, e)),
    }
}
