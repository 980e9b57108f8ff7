//! The single-writer lock of a log directory.
//!
//! Invariants:
//! - At most one `Log` (in any process) holds `writer.lock` via an exclusive
//!   [`File::try_lock`] (`flock(LOCK_EX)` on Linux); the kernel releases it when
//!   the holder exits, even on `kill -9`.
//! - The holder writes `pid <n>` into the file so a refused writer can name it.
//! - Readers never take the lock; [`writer_running`] only probes it, for
//!   an instant, which a writer starting then waits out: the log's own
//!   lock is taken waiting [`LOCK_GRACE`] (the archive's lock, taken
//!   first, already keeps writers apart), the archive's as its caller says
//!   ([`lock_dir_waiting`]).

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{LogError, Result};
use crate::private::{open_private, private_options};

/// Name of the lock file inside the log directory.
pub const LOCK_FILE_NAME: &str = "writer.lock";

/// How long a writer that the user started waits for a lock held by
/// another before it is refused: a reader's probe holds the log's for an
/// instant, and a read command that indexes a log's tail (after a writer
/// was killed) the archive's for a moment, and neither is a writer the
/// user started (until 2026-12-06 an import that started then was
/// refused, naming the last writer's pid). A read command's own attempt
/// to open as a writer does not wait: a running writer is its answer.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A held writer lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the single-writer lock of `dir` (creating `dir/writer.lock`),
/// refused at once if another holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    lock_dir_waiting(dir, std::time::Duration::ZERO)
}

/// [`lock_dir`], waiting up to `wait` for a holder to let go. Also used by
/// the store for the archive directory as a whole.
pub fn lock_dir_waiting(dir: &Path, wait: std::time::Duration) -> Result<DirLock> {
    lock_dir_for(dir, wait, None)
}

/// [`lock_dir_waiting`], the lock file naming what the holder took it for
/// after its pid (`role`), for others to read with [`held_for`].
pub fn lock_dir_for(dir: &Path, wait: std::time::Duration, role: Option<&str>) -> Result<DirLock> {
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
    let deadline = std::time::Instant::now() + wait;
    let taken = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match taken {
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
    let note = match role {
        Some(role) => format!("pid {}, {role}\n", std::process::id()),
        None => format!("pid {}\n", std::process::id()),
    };
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

/// Whether the process holding the lock of `dir` took it for `role`
/// ([`lock_dir_for`]), as its lock file says. A file naming a process
/// that is gone is the last holder's note, which the holder that has just
/// taken the lock is about to replace: read again for a moment (200 ms).
/// A holder that names no role, or that cannot be read, is not.
pub fn held_for(dir: &Path, role: &str) -> bool {
    let path = dir.join(LOCK_FILE_NAME);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    loop {
        let note = std::fs::read_to_string(&path).unwrap_or_default();
        let mut words = note.trim().splitn(3, ' ');
        let pid = match (words.next(), words.next()) {
            (Some("pid"), Some(pid)) => pid.trim_end_matches(',').parse::<u32>().ok(),
            _ => None,
        };
        let alive = pid.is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if alive || std::time::Instant::now() >= deadline {
            return alive && words.next() == Some(role);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder's role is read from its note while it holds the lock; a
    /// note left by a process that is gone names no holder.
    #[test]
    fn the_role_a_holder_took_the_lock_for_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let lock =
            lock_dir_for(dir.path(), std::time::Duration::ZERO, Some("a test's role")).unwrap();
        assert!(held_for(dir.path(), "a test's role"));
        assert!(!held_for(dir.path(), "another role"));
        drop(lock);
        let lock = lock_dir(dir.path()).unwrap();
        assert!(!held_for(dir.path(), "a test's role"));
        drop(lock);
        // No process has pid 2^22 + 1 (Linux's pid_max is at most 2^22).
        std::fs::write(
            dir.path().join(LOCK_FILE_NAME),
            "pid 4194305, a test's role\n",
        )
        .unwrap();
        assert!(!held_for(dir.path(), "a test's role"));
    }

    /// A reader's probe (a shared lock, held here for 300 ms) delays a
    /// writer; it does not refuse it.
    #[test]
    fn a_writer_waits_out_a_probe() {
        let dir = tempfile::tempdir().unwrap();
        drop(lock_dir(dir.path()).unwrap());
        let probe = File::open(dir.path().join(LOCK_FILE_NAME)).unwrap();
        probe.try_lock_shared().unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(probe);
        });
        let started = std::time::Instant::now();
        let lock = lock_dir_waiting(dir.path(), LOCK_GRACE).unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        released.join().unwrap();
        // Held by a writer past the grace: refused, naming it; without a
        // wait, at once.
        let refused = lock_dir_waiting(dir.path(), LOCK_GRACE).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(&std::process::id().to_string()),
            "{refused}"
        );
        let started = std::time::Instant::now();
        assert!(lock_dir(dir.path()).is_err());
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        drop(lock);
    }
}
