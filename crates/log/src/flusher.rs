//! The file side of the writer, on its own thread: writes the appender's
//! buffers, fsyncs, seals full segments and creates their successors.
//!
//! The appender (the `Log`) only encodes frames and decides positions, so
//! copying bytes into the kernel and waiting for the disk overlap with the
//! caller's next work instead of stalling it.
//!
//! Invariants:
//! - Jobs run one at a time, in the order submitted. `written` and
//!   `durable` (offsets one past the last record in the file, and durable
//!   under the policy) only grow.
//! - A segment is sealed (fsynced, whatever the policy) before its successor
//!   file is created, so only the last segment can ever have a torn tail.
//! - After the first failure no job touches a file again. The failure is
//!   handed to one waiter as the I/O error; everyone after gets `Poisoned`.
//! - At most [`QUEUE_JOBS`] jobs (so a bounded number of buffers) are in
//!   flight: the appender blocks when the disk falls behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::compressor::SealedQueue;
use crate::direct::{DirectAppender, FrameBuf};
use crate::error::{LogError, Result};
use crate::options::{FsyncPolicy, LogOptions};
use crate::segment::{create_segment, segment_path};
use crate::vfs::{Vfs, VfsFile};

/// Jobs queued before `submit` blocks.
const QUEUE_JOBS: usize = 4;
/// Emptied write buffers kept for reuse: as many as can be in flight (the
/// queue, the one being written, the one being filled), so that a writer
/// that caught up after the disk was slow allocates none (a fresh buffer's
/// pages are faulted in and zeroed by the kernel as they are first written).
const SPARE_BUFFERS: usize = QUEUE_JOBS + 2;

pub(crate) enum Job {
    /// Write `bytes` at `at` in the active segment; they end with the record
    /// below offset `through`.
    Write {
        bytes: FrameBuf,
        at: u64,
        through: u64,
    },
    /// Make every record below `through` readable from the file and, when
    /// `durable`, durable under the policy.
    Sync { through: u64, durable: bool },
    /// Seal the active segment (all records below `base`) and create
    /// segment `base`.
    Roll { base: u64 },
}

struct State {
    written: u64,
    durable: u64,
    /// The first failure, until a waiter takes it.
    failure: Option<LogError>,
    /// The first failure in words, kept for every waiter after the one
    /// that took it: their errors name the cause too (an `ingest` on a
    /// full disk said only "an earlier write or fsync failed" when another
    /// thread's wait had taken the ENOSPC: an outside audit).
    failure_said: Option<String>,
    spare: Vec<FrameBuf>,
}

impl State {
    /// The first failure, to the first caller; to the others, an error
    /// that says what it was.
    fn take_failure(&mut self) -> LogError {
        self.failure.take().unwrap_or_else(|| LogError::Poisoned {
            reason: self
                .failure_said
                .clone()
                .unwrap_or_else(|| "an earlier write or fsync failed".into()),
        })
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Whether a job failed. Set once, with the lock held (so a waiter
    /// that saw it unset is woken after), and read without the lock: the
    /// appender asks before every record, and taking the lock the worker
    /// takes after each job was a lock and a contended cache line a record
    /// (docs/BENCHMARKS.md, issue 12).
    failed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (they
        // are plain assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a wait is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// In the file (readable by offset), not necessarily durable.
    Written,
    /// Durable under the policy.
    Durable,
}

pub(crate) struct Flusher {
    jobs: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread for the active segment `file` (segment `base` of
    /// `dir`, `end` bytes long), everything below `next_offset` being
    /// durable already.
    /// Each segment it seals, once its successor exists durably, is sent
    /// to `sealed` (the compressor), if any.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        base: u64,
        file: Arc<dyn VfsFile>,
        end: u64,
        opts: LogOptions,
        next_offset: u64,
        sealed: Option<SealedQueue>,
    ) -> Result<Flusher> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                written: next_offset,
                durable: next_offset,
                failure: None,
                failure_said: None,
                spare: Vec::new(),
            }),
            changed: Condvar::new(),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = sync_channel(QUEUE_JOBS);
        let path = segment_path(dir, base);
        let worker = Worker {
            dir: dir.to_owned(),
            direct: opts
                .direct_io
                .then(|| DirectAppender::open(vfs.as_ref(), &path, file.as_ref(), end))
                .flatten(),
            direct_io: opts.direct_io,
            vfs,
            path,
            file,
            base,
            sealed,
            fsync: opts.fsync,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("ccvault-log-flusher".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| LogError::io("starting the flusher thread for", dir, e))?;
        Ok(Flusher {
            jobs: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a job, blocking while the queue is full.
    pub fn submit(&self, job: Job) -> Result<()> {
        let sent = self.jobs.as_ref().map(|tx| tx.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(LogError::Poisoned {
                reason: "the log's flusher thread is gone".into(),
            }),
        }
    }

    /// An emptied buffer to reuse, if one is spare.
    pub fn spare_buffer(&self) -> Option<FrameBuf> {
        self.shared.lock().spare.pop()
    }

    /// Whether a job failed (the appender should stop).
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Takes the first failure, or (once a waiter took it) an error that
    /// says what it was.
    pub fn take_failure(&self) -> LogError {
        self.shared.lock().take_failure()
    }

    /// Offset one past the last durable record.
    pub fn durable(&self) -> u64 {
        self.shared.lock().durable
    }

    /// Whether every record below `through` has `reached` already.
    pub fn has_reached(&self, through: u64, reached: Reached) -> bool {
        let state = self.shared.lock();
        match reached {
            Reached::Written => state.written >= through,
            Reached::Durable => state.durable >= through,
        }
    }

    /// Blocks until every record below `through` has `reached`; the first
    /// failure of the thread, if any, otherwise.
    pub fn wait(&self, through: u64, reached: Reached) -> Result<()> {
        self.shared.wait(through, reached)
    }

    /// A handle that waits for durability from another thread.
    pub fn durable_waiter(&self) -> DurableWaiter {
        DurableWaiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    fn wait(&self, through: u64, reached: Reached) -> Result<()> {
        let mut state = self.lock();
        loop {
            let at = match reached {
                Reached::Written => state.written,
                Reached::Durable => state.durable,
            };
            if at >= through {
                return Ok(());
            }
            if self.failed.load(Ordering::Acquire) {
                return Err(state.take_failure());
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Waits, on any thread, until records of the log are durable
/// ([`crate::Log::durable_waiter`]).
#[derive(Clone)]
pub struct DurableWaiter {
    shared: Arc<Shared>,
}

impl DurableWaiter {
    /// Blocks until every record below `through` is durable under the
    /// policy, or returns the flusher's failure (the first waiter to see
    /// it gets the I/O error, the others `Poisoned`, naming it). `through` must not
    /// be past what the writer asked to sync ([`crate::Log::flush_nowait`]'s
    /// result), or this waits for a sync no one asked for.
    pub fn wait(&self, through: u64) -> Result<()> {
        self.shared.wait(through, Reached::Durable)
    }
}

impl Drop for Flusher {
    /// Lets the thread finish the queued jobs, then joins it.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's side.
struct Worker {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    /// Base of the active segment.
    base: u64,
    /// Where sealed segments go to be compressed.
    sealed: Option<SealedQueue>,
    /// Direct appends to `file`, where the file system allows them.
    direct: Option<DirectAppender>,
    direct_io: bool,
    fsync: FsyncPolicy,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            if self.shared.failed.load(Ordering::Acquire) {
                continue;
            }
            let done = self.perform(job);
            let mut state = self.shared.lock();
            match done {
                Ok((progress, buffer)) => {
                    match progress {
                        Progress::Nothing => {}
                        Progress::Written(n) => state.written = state.written.max(n),
                        Progress::Durable(n) => {
                            state.written = state.written.max(n);
                            state.durable = state.durable.max(n);
                        }
                    }
                    if let Some(mut b) = buffer {
                        if state.spare.len() < SPARE_BUFFERS {
                            b.clear();
                            state.spare.push(b);
                        }
                    }
                }
                Err(e) => {
                    state.failure_said = Some(crate::error::display_chain(&e));
                    state.failure = Some(e);
                    self.shared.failed.store(true, Ordering::Release);
                }
            }
            drop(state);
            self.shared.changed.notify_all();
        }
    }

    fn perform(&mut self, job: Job) -> Result<(Progress, Option<FrameBuf>)> {
        match job {
            Job::Write {
                mut bytes,
                at,
                through,
            } => {
                let progress = match &mut self.direct {
                    Some(direct) => {
                        direct
                            .append_buf(&mut bytes, at)
                            .map_err(|e| LogError::io("writing", &self.path, e))?;
                        // Not readable until published.
                        Progress::Nothing
                    }
                    None => {
                        self.file
                            .write_all_at(bytes.data(), at)
                            .map_err(|e| LogError::io("writing", &self.path, e))?;
                        Progress::Written(through)
                    }
                };
                Ok((progress, Some(bytes)))
            }
            Job::Sync { through, durable } => {
                self.publish()?;
                if !durable {
                    return Ok((Progress::Written(through), None));
                }
                if self.fsync != FsyncPolicy::Never {
                    self.sync()?;
                }
                Ok((Progress::Durable(through), None))
            }
            Job::Roll { base } => {
                self.publish()?;
                self.sync()?;
                self.file = create_segment(self.vfs.as_ref(), &self.dir, base)?;
                self.path = segment_path(&self.dir, base);
                // Sealed, and its successor durable: it may be compressed. A
                // compressor that is gone only means it stays a `.seg`.
                let sealed = std::mem::replace(&mut self.base, base);
                if let Some(queue) = &self.sealed {
                    queue.send(sealed);
                }
                let end = u64::from(crate::HEADER_LEN);
                self.direct = self
                    .direct_io
                    .then(|| {
                        DirectAppender::open(self.vfs.as_ref(), &self.path, self.file.as_ref(), end)
                    })
                    .flatten();
                Ok((Progress::Durable(base), None))
            }
        }
    }

    fn publish(&self) -> Result<()> {
        match &self.direct {
            Some(direct) => direct
                .publish(self.file.as_ref())
                .map_err(|e| LogError::io("writing", &self.path, e)),
            None => Ok(()),
        }
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io("fsyncing", &self.path, e))
    }
}

enum Progress {
    Nothing,
    Written(u64),
    Durable(u64),
}
