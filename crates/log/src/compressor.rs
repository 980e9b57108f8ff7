//! The writer's background compressor: sealed segments are queued to it as
//! the flusher seals them, and a thread compresses them one after another
//! (`compact::compact_segment`), never on the path of an append.
//!
//! Invariants:
//! - Each queued segment is taken by exactly one worker: the thread, or a
//!   writer draining the queue at its end ([`Drainer::drain`]). Workers
//!   share the writer's compaction turn (read side); `Log::compact_sealed`
//!   takes it alone (write side), so no two parties ever compress one
//!   segment at once.
//! - Closing the writer ([`Drop`]) waits for no compression: the thread stops
//!   at the next block, and the segments not yet compressed stay `.seg`
//!   (durable; the next writer that opens the log queues them again).
//! - A compression that fails leaves its segment a `.seg` and is kept as
//!   the first failure; it never poisons the writer.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use crate::compact::{compact_segment, Compactor};
use crate::error::{LogError, Result};
use crate::segment::PackedSegments;
use crate::segz::Compression;
use crate::vfs::Vfs;

/// How often a drain checks that the thread still runs.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The segments waiting and being compressed.
#[derive(Default)]
struct Work {
    waiting: VecDeque<u64>,
    /// Taken by a worker and not yet done with.
    running: usize,
    /// No more segments will be queued (the flusher is gone).
    closed: bool,
}

/// What the thread, the queue's sender and a drain share.
struct Shared {
    work: Mutex<Work>,
    changed: Condvar,
    /// Set when the writer closes.
    stop: AtomicBool,
    /// Set when the thread has ended (by panicking, if the writer is open).
    ended: AtomicBool,
    /// The first failure: that segment stays a `.seg`, tried again at the
    /// next open.
    failure: Mutex<Option<String>>,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    compression: Compression,
    direct_writes: bool,
    turn: Arc<RwLock<()>>,
    packed: Arc<Mutex<PackedSegments>>,
}

impl Shared {
    fn work(&self) -> MutexGuard<'_, Work> {
        // Plain counters and a queue: a panic holding the lock leaves them
        // usable.
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next waiting segment, counting it as running.
    fn take(work: &mut Work) -> Option<u64> {
        let base = work.waiting.pop_front()?;
        work.running += 1;
        Some(base)
    }

    /// Compresses `base` (taken with [`Shared::take`]) and counts it done.
    fn compress(&self, base: u64, compactor: &mut Compactor) {
        if !self.stop.load(Ordering::Relaxed) {
            let _turn = self.turn.read().unwrap_or_else(|e| e.into_inner());
            let done = compact_segment(
                self.vfs.as_ref(),
                &self.dir,
                base,
                self.compression,
                &self.stop,
                compactor,
                &self.packed,
            );
            if let Err(e) = done {
                let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                f.get_or_insert_with(|| crate::error::display_chain(&e));
            }
        }
        self.work().running -= 1;
        self.changed.notify_all();
    }
}

/// Where sealed segments are sent to be compressed (held by the flusher;
/// dropping it says no more will come).
pub(crate) struct SealedQueue {
    shared: Arc<Shared>,
}

impl SealedQueue {
    /// Queues sealed segment `base`.
    pub fn send(&self, base: u64) {
        self.shared.work().waiting.push_back(base);
        self.shared.changed.notify_all();
    }
}

impl Drop for SealedQueue {
    fn drop(&mut self) {
        self.shared.work().closed = true;
        self.shared.changed.notify_all();
    }
}

pub(crate) struct Compressor {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compressor {
    /// Starts the thread; `queued` are compressed first. `turn` is the
    /// writer's compaction turn (see the invariants).
    pub fn start(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        compression: Compression,
        direct_writes: bool,
        queued: Vec<u64>,
        turn: Arc<RwLock<()>>,
        packed: Arc<Mutex<PackedSegments>>,
    ) -> Result<(Compressor, SealedQueue)> {
        let shared = Arc::new(Shared {
            work: Mutex::new(Work {
                waiting: queued.into(),
                ..Work::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            failure: Mutex::new(None),
            vfs,
            dir: dir.to_owned(),
            compression,
            direct_writes,
            turn,
            packed,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ccvault-log-compressor".into())
            .spawn(move || {
                let _ended = Ended(&worker);
                run(&worker)
            })
            .map_err(|e| LogError::io("starting the compressor thread for", dir, e))?;
        let queue = SealedQueue {
            shared: Arc::clone(&shared),
        };
        Ok((
            Compressor {
                shared,
                thread: Some(thread),
            },
            queue,
        ))
    }

    /// A handle that compresses waiting segments beside the thread
    /// ([`Drainer::drain`]), on any thread.
    /// Whether segments wait to be compressed or are being compressed.
    pub fn busy(&self) -> bool {
        let work = self.shared.work();
        !work.waiting.is_empty() || work.running > 0
    }

    pub fn drainer(&self) -> Drainer {
        Drainer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The first compression that failed, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Compresses, on the thread that calls [`Drainer::drain`], the segments
/// waiting for the compressor thread (for a writer that ends with its work
/// and wants its log compact: `Log::compression_drainer`).
pub struct Drainer {
    shared: Arc<Shared>,
}

impl Drainer {
    /// Compresses waiting segments beside the compressor thread and returns
    /// once every segment queued so far is done with (or the thread is
    /// gone: it only ends early by panicking). The writer must have
    /// flushed first, so that every segment it sealed is queued.
    pub fn drain(&self) {
        let shared = &self.shared;
        let mut compactor: Option<Compactor> = None;
        let mut work = shared.work();
        loop {
            if let Some(base) = Shared::take(&mut work) {
                drop(work);
                let c = compactor.get_or_insert_with(|| Compactor::new(shared.direct_writes));
                shared.compress(base, c);
                work = shared.work();
                continue;
            }
            if work.running == 0 || shared.ended.load(Ordering::Acquire) {
                return;
            }
            work = match shared.changed.wait_timeout(work, WAIT_SLICE) {
                Ok((work, _)) => work,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Marks the thread ended when dropped, panicking or not.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
        self.0.changed.notify_all();
    }
}

/// The thread: compresses segments as they come, until the writer closes
/// or the queue is closed and empty.
fn run(shared: &Shared) {
    let mut compactor = Compactor::new(shared.direct_writes);
    let mut work = shared.work();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(base) = Shared::take(&mut work) {
            drop(work);
            shared.compress(base, &mut compactor);
            work = shared.work();
        } else if work.closed {
            return;
        } else {
            work = shared.changed.wait(work).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Compressor {
    /// Stops the thread at the next block and joins it.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Taken so that a thread between its check and its wait is in the
        // wait before the notification.
        drop(self.shared.work());
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
