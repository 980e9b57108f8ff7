//! The server's view of the archive, kept current: one thread watches the
//! archive, brings the projections up to each new index commit, computes
//! the wallboard once and publishes it to every client.
//!
//! Invariants:
//! - The server is a reader: it never writes the log or the index, only
//!   `projections.redb` (derived data), and only while no other process
//!   holds it.
//! - One computation per change, whatever the number of clients: the
//!   wallboard is computed by the watcher thread and shared through a
//!   `watch` channel; a slow client skips to the latest document instead of
//!   queueing old ones.
//! - A change is seen within one poll interval of its index commit (the
//!   index file's size or modification time moves with every commit), or at
//!   once when the process that writes the archive calls [`Live::notify`].
//! - The document is recomputed at least every [`MAX_STALE`] even when
//!   nothing was archived, so "today" rolls over at midnight.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use ccvault_projections::{Access, Projections};
use ccvault_store::{ArchiveReader, Layout, StoreError};
use tokio::sync::watch;

use crate::wallboard::{self, Wallboard, WallboardOptions};

/// The longest a published wallboard goes without being recomputed.
pub const MAX_STALE: Duration = Duration::from_secs(30);

/// What every client is shown now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The wallboard as `/api/wallboard` serves it (one JSON line), or why
    /// there is none.
    pub wallboard: std::result::Result<Arc<str>, String>,
    /// The same document, for the page the server renders.
    pub board: Option<Arc<Wallboard>>,
    /// The archive's visible end when it was computed.
    pub records: u64,
}

/// The clock of a wallboard: the real one, or fixed (tests, replays).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    pub fn now_ms(self) -> i64 {
        match self {
            Clock::Fixed(ms) => ms,
            Clock::System => jiff::Timestamp::now().as_millisecond(),
        }
    }
}

/// Counters `/metrics` reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub refreshes: AtomicU64,
    pub refresh_errors: AtomicU64,
    pub last_refresh_us: AtomicU64,
    pub records: AtomicU64,
}

/// The archive as the server sees it.
pub struct Live {
    dir: PathBuf,
    options: WallboardOptions,
    clock: Clock,
    /// Held for writing only while a catch-up runs.
    projections: RwLock<Option<Projections>>,
    /// Dropped by [`Live::stop`], which ends every follower's stream.
    tx: RwLock<Option<watch::Sender<Arc<Snapshot>>>>,
    /// A receiver kept to subscribe from once `tx` is gone.
    rx: watch::Receiver<Arc<Snapshot>>,
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
    pub counters: Counters,
}

impl Live {
    pub fn new(dir: &Path, options: WallboardOptions, clock: Clock) -> Arc<Live> {
        let (tx, rx) = watch::channel(Arc::new(Snapshot {
            wallboard: Err("the archive has not been read yet".into()),
            board: None,
            records: 0,
        }));
        Arc::new(Live {
            dir: dir.to_path_buf(),
            options,
            clock,
            projections: RwLock::new(None),
            tx: RwLock::new(Some(tx)),
            rx,
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &WallboardOptions {
        &self.options
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The latest snapshot, and its changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// How many clients follow the changes (the kept receiver aside).
    pub fn subscribers(&self) -> usize {
        match self.tx.read() {
            Ok(tx) => tx
                .as_ref()
                .map_or(0, |t| t.receiver_count().saturating_sub(1)),
            Err(_) => 0,
        }
    }

    /// New records are durable: look now instead of at the next poll.
    pub fn notify(&self) {
        let (lock, cv) = &self.wake;
        if let Ok(mut woken) = lock.lock() {
            *woken = true;
            cv.notify_one();
        }
    }

    /// Ends the watcher: every follower's stream then ends too.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut tx) = self.tx.write() {
            tx.take();
        }
        self.notify();
    }

    /// Runs `f` with the projections (opened on first use) as last brought
    /// up to date.
    pub fn with_projections<T>(&self, f: impl FnOnce(&Projections) -> Result<T>) -> Result<T> {
        {
            let guard = self
                .projections
                .read()
                .map_err(|_| anyhow::anyhow!("the projections lock is poisoned"))?;
            if let Some(p) = guard.as_ref() {
                return f(p);
            }
        }
        let mut reader = self.reader()?;
        self.catch_up(&mut reader)?;
        let guard = self
            .projections
            .read()
            .map_err(|_| anyhow::anyhow!("the projections lock is poisoned"))?;
        match guard.as_ref() {
            Some(p) => f(p),
            None => anyhow::bail!("the projections of {} are not open", self.dir.display()),
        }
    }

    /// A reader of the archive's last index commit.
    pub fn reader(&self) -> Result<ArchiveReader> {
        ArchiveReader::open(&self.dir)
            .with_context(|| format!("cannot read archive {}", self.dir.display()))
    }

    /// Brings the projections up to `reader` (when this process can write
    /// them; else they are read as another process left them).
    fn catch_up(&self, reader: &mut ArchiveReader) -> Result<()> {
        let mut guard = self
            .projections
            .write()
            .map_err(|_| anyhow::anyhow!("the projections lock is poisoned"))?;
        // A read-only handle (another process held the file) is reopened
        // each time, so the server takes over once that process is gone.
        if guard
            .as_ref()
            .is_none_or(|p| p.access() == Access::ReadOnly)
        {
            *guard = None;
            *guard = Some(Projections::open(&self.dir).with_context(|| {
                format!("cannot open the projections of {}", self.dir.display())
            })?);
        }
        if let Some(p) = guard.as_mut() {
            if p.access() == Access::Writable {
                p.catch_up(reader, &mut |_| {})?;
            }
        }
        Ok(())
    }

    /// Reads the archive's last commit, catches up and computes the
    /// wallboard.
    fn refresh(&self) -> Result<(Wallboard, u64)> {
        let mut reader = self.reader()?;
        self.catch_up(&mut reader)?;
        let mut options = self.options.clone();
        options.now_ms = self.clock.now_ms();
        let board = self.with_projections(|p| wallboard::compute(p, &mut reader, &options))?;
        Ok((board, reader.visible_end()))
    }

    /// Computes and publishes the wallboard now.
    pub fn publish(&self) {
        let started = Instant::now();
        let snapshot = match self.refresh() {
            Ok((board, records)) => {
                self.counters.records.store(records, Ordering::Relaxed);
                match json_line(&board) {
                    Ok(json) => Snapshot {
                        wallboard: Ok(json.into()),
                        board: Some(Arc::new(board)),
                        records,
                    },
                    Err(e) => Snapshot {
                        wallboard: Err(format!("{e:#}")),
                        board: None,
                        records,
                    },
                }
            }
            Err(e) => {
                self.counters.refresh_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cannot refresh the wallboard: {e:#}");
                Snapshot {
                    wallboard: Err(format!("{e:#}")),
                    board: None,
                    records: self.counters.records.load(Ordering::Relaxed),
                }
            }
        };
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.last_refresh_us.store(us, Ordering::Relaxed);
        if let Ok(tx) = self.tx.read() {
            if let Some(tx) = tx.as_ref() {
                tx.send_replace(Arc::new(snapshot));
            }
        }
    }

    /// Watches the archive until [`Live::stop`]: polls the index file every
    /// `poll` (or wakes on [`Live::notify`]) and publishes a new snapshot
    /// when it moved, or when the last one is [`MAX_STALE`]. The first poll
    /// always publishes.
    pub fn run(self: Arc<Self>, poll: Duration) {
        let index = Layout::new(&self.dir).index_path();
        let mut seen: Option<(u64, Option<SystemTime>)> = None;
        let mut last = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let notified = {
                let (lock, cv) = &self.wake;
                match lock.lock() {
                    Ok(woken) => {
                        let (mut woken, _) = cv
                            .wait_timeout_while(woken, poll, |w| !*w)
                            .unwrap_or_else(|e| e.into_inner());
                        std::mem::take(&mut *woken)
                    }
                    Err(_) => {
                        std::thread::sleep(poll);
                        false
                    }
                }
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let now_seen = std::fs::metadata(&index)
                .ok()
                .map(|m| (m.len(), m.modified().ok()));
            let moved = now_seen != seen;
            if notified || moved || last.elapsed() >= MAX_STALE {
                seen = now_seen;
                self.publish();
                last = Instant::now();
            }
        }
    }
}

/// One JSON value and a newline: the bytes `--format json` writes.
pub fn json_line(value: &impl serde::Serialize) -> Result<String> {
    let mut s = serde_json::to_string(value)?;
    s.push('\n');
    Ok(s)
}

/// Whether `e` says there is no archive in the directory yet.
pub fn is_no_archive(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::NoArchive(_))
        )
    })
}
