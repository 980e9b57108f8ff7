//! Making an export's files durable without stopping its encoder.
//!
//! Why: a sync waits for the disk. The writer thread used to sync each
//! file as it completed it, so the encoder (and, behind its queue, the
//! reader and the parser) stopped for every file's bytes in turn; at the
//! end of a table both cores sat idle through one sync after another (the
//! 1M events table: eight files, ~0.1 s of its ~1.1 s step). Here the
//! bytes of each completed row group start for the disk while the next
//! ones are encoded, on a thread that only waits ([`WriteBack::flush`]);
//! files completed during the run are synced and renamed on that thread
//! too; the files still open at the end are synced all at once, one
//! thread each ([`WriteBack::finish`]), so the wait at the end is about
//! the slowest file's, and most of their bytes are on the disk already.
//!
//! Invariants:
//! - A file gets its final name only after a sync that began after its
//!   last byte was written succeeded; [`WriteBack::finish`] returns only
//!   when every file given to it is synced and renamed, and directories
//!   are synced after the renames they hold ([`sync_dirs`]).
//! - No sync error is lost: Linux reports a failed write-back to one sync
//!   of an open file only, so the first error of the background thread is
//!   kept and returned by the next call, or by [`WriteBack::finish`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::error::{io, ExportError, Result};

/// Syncs run at once at most (files, then directories): more gain
/// nothing on one disk, and each costs a thread.
const AT_ONCE: usize = 8;

/// Jobs waiting for the background thread at most; past it the encoder
/// waits. Each holds a file open: unbounded, an export of many small
/// partitions (thousands of tenants) queued completed files faster than
/// they synced, until it ran out of file descriptors (an outside audit:
/// 1,000 tenants under `ulimit -n 256`).
const QUEUED: usize = 16;

/// A written file that gets its final name once synced.
pub struct Complete {
    pub file: File,
    /// Its hidden temporary name, and the name it gets.
    pub tmp: PathBuf,
    pub path: PathBuf,
}

impl Complete {
    fn sync_and_rename(self) -> Result<()> {
        self.file.sync_all().map_err(io("cannot sync", &self.tmp))?;
        drop(self.file);
        std::fs::rename(&self.tmp, &self.path).map_err(io("cannot rename into place", &self.path))
    }
}

enum Job {
    /// A handle to a file being written, whose bytes so far go to disk.
    Flush(File, PathBuf),
    Complete(Complete),
}

/// The background thread that writes completed row groups and files to
/// the disk.
pub struct WriteBack {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl WriteBack {
    pub fn start(name: &str) -> Result<WriteBack> {
        let (tx, rx) = sync_channel::<Job>(QUEUED);
        let thread = std::thread::Builder::new()
            .name(format!("export-sync-{name}"))
            .spawn(move || {
                // Every job runs, so that each file ends renamed or
                // reported; the first error is the one returned.
                let mut first = Ok(());
                for job in rx {
                    let done = match job {
                        Job::Flush(file, path) => {
                            file.sync_data().map_err(io("cannot sync", &path))
                        }
                        Job::Complete(c) => c.sync_and_rename(),
                    };
                    if first.is_ok() {
                        first = done;
                    }
                }
                first
            })
            .map_err(io("cannot start the sync thread for", name))?;
        Ok(WriteBack {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts the bytes written to `file` (at `path`) so far for the disk.
    pub fn flush(&mut self, file: &File, path: &Path) -> Result<()> {
        let handle = file.try_clone().map_err(io("cannot sync", path))?;
        self.send(Job::Flush(handle, path.to_owned()))
    }

    /// Syncs `file` and gives it its final name, in the background.
    pub fn complete(&mut self, file: Complete) -> Result<()> {
        self.send(Job::Complete(file))
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread is gone: only an error (or a panic) ends it early.
            self.join()?;
            Err(ExportError::Refused(
                "the export's sync thread stopped".into(),
            ))
        }
    }

    fn join(&mut self) -> Result<()> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(ExportError::Refused(
                "the export's sync thread panicked".into(),
            )),
        }
    }

    /// Waits for the background jobs, then syncs and renames `last` at once.
    pub fn finish(mut self, last: Vec<Complete>) -> Result<()> {
        let background = self.join();
        let mut last = last.into_iter();
        let mut first = background;
        loop {
            let some: Vec<Complete> = last.by_ref().take(AT_ONCE).collect();
            if some.is_empty() {
                return first;
            }
            let done = at_once(some, Complete::sync_and_rename);
            if first.is_ok() {
                first = done;
            }
        }
    }
}

impl Drop for WriteBack {
    fn drop(&mut self) {
        // An export stopped by an error: its other files stay under their
        // temporary names; the thread ends once its queue is done.
        let _ = self.join();
    }
}

/// Makes the entries of `dirs` (new names, renames, removals) durable,
/// several at once.
pub fn sync_dirs(dirs: &[PathBuf]) -> Result<()> {
    for some in dirs.chunks(AT_ONCE) {
        at_once(some.iter().collect(), |d: &PathBuf| sync_dir(d))?;
    }
    Ok(())
}

/// Makes the entries of `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync directory", dir))
}

/// `work` on every item, one thread each but the first (run here); the
/// first error.
fn at_once<T: Send>(items: Vec<T>, work: impl Fn(T) -> Result<()> + Sync) -> Result<()> {
    let mut items = items.into_iter();
    let Some(here) = items.next() else {
        return Ok(());
    };
    std::thread::scope(|s| {
        let work = &work;
        let others: Vec<_> = items.map(|item| s.spawn(move || work(item))).collect();
        let mut first = work(here);
        for t in others {
            let done = t
                .join()
                .unwrap_or_else(|_| Err(ExportError::Refused("a sync thread panicked".into())));
            if first.is_ok() {
                first = done;
            }
        }
        first
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn written(dir: &Path, name: &str, bytes: &[u8]) -> Complete {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&tmp).unwrap();
        file.write_all(bytes).unwrap();
        Complete {
            file,
            tmp,
            path: dir.join(name),
        }
    }

    #[test]
    fn every_file_is_renamed_with_its_bytes_by_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WriteBack::start("test").unwrap();
        let during = written(dir.path(), "a", b"first");
        w.flush(&during.file, &during.tmp).unwrap();
        w.complete(during).unwrap();
        // More files than run at once, so that some wait for a turn.
        let last: Vec<Complete> = (0..AT_ONCE + 3)
            .map(|i| {
                written(
                    dir.path(),
                    &format!("f{i}"),
                    format!("bytes {i}").as_bytes(),
                )
            })
            .collect();
        w.finish(last).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"first");
        for i in 0..AT_ONCE + 3 {
            let got = std::fs::read(dir.path().join(format!("f{i}"))).unwrap();
            assert_eq!(got, format!("bytes {i}").as_bytes());
            assert!(!dir.path().join(format!(".f{i}.tmp")).exists());
        }
        sync_dirs(&[dir.path().to_owned()]).unwrap();
    }

    #[test]
    fn a_failed_rename_is_reported_and_the_others_still_land() {
        let dir = tempfile::tempdir().unwrap();
        let w = WriteBack::start("test").unwrap();
        let mut last = vec![written(dir.path(), "ok", b"x")];
        let mut bad = written(dir.path(), "bad", b"y");
        bad.path = dir.path().join("no such directory").join("bad");
        last.insert(0, bad);
        let err = w.finish(last).unwrap_err().to_string();
        assert!(err.contains("cannot rename into place"), "{err}");
        assert!(err.contains("no such directory"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("ok")).unwrap(), b"x");
    }

    #[test]
    fn a_background_error_comes_back_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WriteBack::start("test").unwrap();
        let mut bad = written(dir.path(), "bad", b"y");
        bad.path = dir.path().join("missing").join("bad");
        w.complete(bad).unwrap();
        let err = w.finish(Vec::new()).unwrap_err().to_string();
        assert!(err.contains("cannot rename into place"), "{err}");
    }
}
