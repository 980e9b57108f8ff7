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
use axum::body::Bytes;
use ccvault_projections::{Access, Applied, Projections, Touched};
use ccvault_store::{ArchiveReader, Layout, StoreError};
use tokio::sync::watch;

use crate::wallboard::{Floor, Wallboard, WallboardOptions};

/// The longest a published wallboard goes without being recomputed.
pub const MAX_STALE: Duration = Duration::from_secs(30);

/// Refreshes that must fail in a row before the failure replaces a
/// wallboard on every client (each after one poll interval).
pub const FAILURES_SHOWN: u64 = 3;

/// What every client is shown now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The wallboard as `/api/wallboard` serves it (one JSON line), or why
    /// there is none.
    pub wallboard: std::result::Result<Bytes, String>,
    /// The Server-Sent Event that carries it to `/events` (event
    /// `wallboard`, or `problem` with the reason): formatted once, and its
    /// bytes shared by every client.
    pub message: Bytes,
    /// [`Snapshot::message`] compressed, once, for the clients that take
    /// `/events` in gzip ([`crate::gzip`]).
    pub message_gzip: crate::gzip::Piece,
    /// The same document, for the page the server renders.
    pub board: Option<Arc<Wallboard>>,
    /// The archive's visible end when it was computed.
    pub records: u64,
}

impl Snapshot {
    fn new(
        wallboard: std::result::Result<String, String>,
        board: Option<Arc<Wallboard>>,
        records: u64,
    ) -> Snapshot {
        // A JSON line has no line break but its last (serde_json escapes
        // them in strings), so it is one `data:` field; a reason's are
        // folded.
        let message = match &wallboard {
            Ok(json) => format!(
                "event: wallboard\ndata: {}\n\n",
                json.trim_end_matches('\n')
            ),
            Err(e) => format!("event: problem\ndata: {}\n\n", e.replace(['\n', '\r'], " ")),
        };
        Snapshot {
            wallboard: wallboard.map(Bytes::from),
            message_gzip: crate::gzip::Piece::of(message.as_bytes()),
            message: Bytes::from(message),
            board,
            records,
        }
    }
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
    /// Wallboard states built from scratch (the others were updates from
    /// the legs the new records touched).
    pub builds: AtomicU64,
    pub refresh_errors: AtomicU64,
    pub last_refresh_us: AtomicU64,
    pub records: AtomicU64,
    /// Bytes of `/events` bodies sent plain, and in gzip.
    pub event_bytes_identity: AtomicU64,
    pub event_bytes_gzip: AtomicU64,
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
    /// The wallboard's state as of the last refresh, when this process
    /// keeps the projections up to date (see [`Floor`]).
    floor: Mutex<Option<Floor>>,
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
    /// The last refresh read projections another process holds.
    held_elsewhere: AtomicBool,
    /// Refreshes that failed in a row.
    failing: AtomicU64,
    pub counters: Counters,
}

impl Live {
    pub fn new(dir: &Path, options: WallboardOptions, clock: Clock) -> Arc<Live> {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::new(
            Err("the archive has not been read yet".into()),
            None,
            0,
        )));
        Arc::new(Live {
            dir: dir.to_path_buf(),
            options,
            clock,
            projections: RwLock::new(None),
            tx: RwLock::new(Some(tx)),
            rx,
            floor: Mutex::new(None),
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            held_elsewhere: AtomicBool::new(false),
            failing: AtomicU64::new(0),
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
        self.catch_up(&mut reader, None)?;
        let guard = self
            .projections
            .read()
            .map_err(|_| anyhow::anyhow!("the projections lock is poisoned"))?;
        match guard.as_ref() {
            Some(p) => f(p),
            None => anyhow::bail!("the projections of {} are not open", self.dir.display()),
        }
    }

    /// Lets go of the projections held open: the archive is gone (removed,
    /// or moved away), and every page says so, as the CLI would, until one
    /// is there again. Until 2026-12-08 the listing and the report went on
    /// answering from the file held open, 200, for as long as the server
    /// ran (an outside audit).
    fn forget_projections(&self) {
        if let Ok(mut guard) = self.projections.write() {
            *guard = None;
        }
        if let Ok(mut tracked) = self.floor.lock() {
            *tracked = None;
        }
    }

    /// A reader of the archive's last index commit.
    pub fn reader(&self) -> Result<ArchiveReader> {
        ArchiveReader::open(&self.dir)
            .with_context(|| format!("cannot read archive {}", self.dir.display()))
    }

    /// Brings the projections up to `reader` (when this process can write
    /// them; else they are read as another process left them, and `None`),
    /// noting in `touched`, when given, which legs the catch-up summarized
    /// again.
    fn catch_up(
        &self,
        reader: &mut ArchiveReader,
        touched: Option<&mut Touched>,
    ) -> Result<Option<Applied>> {
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
        match guard.as_mut() {
            Some(p) if p.access() == Access::Writable => {
                Ok(Some(p.catch_up_noting(reader, &mut |_| {}, touched)?))
            }
            _ => Ok(None),
        }
    }

    /// Reads the archive's last commit, catches up and brings the
    /// wallboard's state up to it: from the legs the catch-up summarized
    /// again (it hands their stage over, so no leg is read twice) when this
    /// process caught the projections up from the state's end, else from
    /// scratch.
    fn refresh(&self) -> Result<(Wallboard, u64)> {
        let mut reader = match self.reader() {
            Ok(reader) => reader,
            Err(e) => {
                if is_no_archive(&e) {
                    self.forget_projections();
                }
                return Err(e);
            }
        };
        let mut options = self.options.clone();
        options.now_ms = self.clock.now_ms();
        let mut tracked = self
            .floor
            .lock()
            .map_err(|_| anyhow::anyhow!("the wallboard state lock is poisoned"))?;
        // Only a kept state needs the touched legs: a state built from
        // scratch reads every leg anyway.
        let mut touched = Touched::default();
        let noting = tracked.is_some().then_some(&mut touched);
        let applied = self.catch_up(&mut reader, noting)?;
        self.held_elsewhere
            .store(applied.is_none(), Ordering::Relaxed);
        let end = reader.visible_end();
        let board = self.with_projections(|p| {
            let kept = tracked.take().filter(|f| {
                applied.as_ref().is_some_and(|a| !a.rebuilt)
                    && f.covers(&options)
                    && f.records() == touched.from
            });
            let floor = match kept {
                Some(mut f) => {
                    let agents = applied.as_ref().is_some_and(|a| a.agent_changes > 0);
                    f.update(p, &touched, agents, end, &options)?;
                    f
                }
                None => {
                    self.counters.builds.fetch_add(1, Ordering::Relaxed);
                    Floor::build(p, &mut reader, &options)?
                }
            };
            let board = floor.wallboard(&options)?;
            let records = floor.records();
            // Only a state this process keeps up to date is worth keeping.
            if applied.is_some() {
                *tracked = Some(floor);
            }
            Ok((board, records))
        })?;
        Ok(board)
    }

    /// Computes and publishes the wallboard now; false when it could not
    /// and the board shown before stays up for now (a failure is shown only
    /// from the [`FAILURES_SHOWN`]th in a row on: one that passes, a
    /// command repairing the index a killed writer left while this reads
    /// it, would flash a problem on every wallboard for a second).
    pub fn publish(&self) -> bool {
        let started = Instant::now();
        let snapshot = match self.refresh() {
            Ok((board, records)) => {
                self.failing.store(0, Ordering::Relaxed);
                self.counters.records.store(records, Ordering::Relaxed);
                match json_line(&board) {
                    Ok(json) => Snapshot::new(Ok(json), Some(Arc::new(board)), records),
                    Err(e) => Snapshot::new(Err(format!("{e:#}")), None, records),
                }
            }
            Err(e) => {
                self.counters.refresh_errors.fetch_add(1, Ordering::Relaxed);
                let failing = self.failing.fetch_add(1, Ordering::Relaxed) + 1;
                if failing < FAILURES_SHOWN && self.latest().wallboard.is_ok() {
                    tracing::debug!("cannot refresh the wallboard ({failing} in a row; tried again at the next poll): {e:#}");
                    return false;
                }
                // No archive yet was said once at the start; the page says it.
                if !is_no_archive(&e) {
                    tracing::warn!("cannot refresh the wallboard: {e:#}");
                }
                Snapshot::new(
                    Err(format!("{e:#}")),
                    None,
                    self.counters.records.load(Ordering::Relaxed),
                )
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
        true
    }

    /// Watches the archive until [`Live::stop`]: polls the index file every
    /// `poll` (or wakes on [`Live::notify`]) and publishes a new snapshot
    /// when it moved, or when the last one is [`MAX_STALE`]. The first poll
    /// always publishes. While another process holds the projections, the
    /// document is as far as that process brought them, so their file is
    /// watched too, and the document moves when they do.
    pub fn run(self: Arc<Self>, poll: Duration) {
        let layout = Layout::new(&self.dir);
        let files = [layout.index_path(), layout.projections_path()];
        let mut seen: Option<Vec<FileStamp>> = None;
        let mut last = Instant::now();
        // A failure held back is tried again at the next poll.
        let mut retry = false;
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
            // This process's own commits to the projections follow the
            // index's: watched only while another process holds them.
            let watched = if self.held_elsewhere.load(Ordering::Relaxed) {
                &files[..]
            } else {
                &files[..1]
            };
            let now_seen = Some(
                watched
                    .iter()
                    .map(|f| {
                        std::fs::metadata(f)
                            .ok()
                            .map(|m| (m.len(), m.modified().ok()))
                    })
                    .collect::<Vec<_>>(),
            );
            let moved = now_seen != seen;
            if notified || moved || retry || last.elapsed() >= MAX_STALE {
                seen = now_seen;
                retry = !self.publish();
                last = Instant::now();
            }
        }
    }
}

/// A watched file's length and modification time (`None`: not there).
type FileStamp = Option<(u64, Option<SystemTime>)>;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ccvault_projections::report::Sla;
    use ccvault_projections::StateNames;
    use ccvault_store::{Archive, ArchiveOptions, Incoming, SourceKind};
    use jiff::tz::TimeZone;

    use super::*;
    use crate::wallboard::compute;

    /// Replays two simulated days (every quirk of the feed on: reordered,
    /// duplicated, malformed, enveloped and untimed events, transfers,
    /// consultations, agent status changes) into an archive in uneven
    /// batches, and after each publish compares the server's wallboard,
    /// kept up to date from the legs each commit touched, with one computed
    /// from scratch. Some publishes cover several index commits, the log
    /// rolls over small segments, and the server restarts midway (its state
    /// then built again from the projections it left).
    #[test]
    fn the_incremental_wallboard_equals_the_full_computation_through_a_replayed_day() {
        let cfg = ccvault_sim::SimConfig {
            days: 2,
            agents: 2,
            ..ccvault_sim::SimConfig::default()
        };
        let mut out = Vec::new();
        ccvault_sim::simulate(&cfg, &mut out).unwrap();
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let day = 86_400_000;
        // Evening of the first day, and midday of the second (New York):
        // today's counts and the legs in progress both move through the replay.
        for clock in [
            ccvault_sim::DEFAULT_START_MS + 22 * 3_600_000,
            ccvault_sim::DEFAULT_START_MS + day + 17 * 3_600_000,
        ] {
            replay(&lines, clock);
        }
    }

    /// A refresh that fails leaves the board shown before up, and is tried
    /// again; only a failure that lasts [`FAILURES_SHOWN`] refreshes in a
    /// row replaces it; the next refresh that works shows the board again.
    #[test]
    fn a_passing_failure_leaves_the_board_up_and_a_lasting_one_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ccvault_sim::DEFAULT_START_MS + 12 * 3_600_000;
        let (mut archive, _) = Archive::open(dir.path(), ArchiveOptions::default()).unwrap();
        let event = format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-one-phone-00-northwind01","mediaType":"phone","queueId":301,"interactionEventTS":{}}}}}"#,
            (clock - 60_000) / 1000
        );
        archive
            .append_batch(&[Incoming {
                raw: event.as_bytes(),
                source_kind: SourceKind::File,
                source: "one.ndjson",
                line: 1,
                message_id: None,
                ingest_ms: clock,
            }])
            .unwrap();
        archive.close().unwrap();
        let options = new_york_at(clock);
        let live = Live::new(dir.path(), options, Clock::Fixed(clock));
        assert!(live.publish());
        let shown = live.latest().wallboard.clone().expect("a wallboard");
        let (log, away) = (dir.path().join("log"), dir.path().join("log.away"));
        std::fs::rename(&log, &away).unwrap();
        for _ in 1..FAILURES_SHOWN {
            assert!(!live.publish(), "a failure held back");
            assert_eq!(live.latest().wallboard.as_ref().ok(), Some(&shown));
        }
        assert!(live.publish(), "the failure shown");
        let why = live.latest().wallboard.clone().expect_err("the failure");
        assert!(why.contains("archive"), "{why}");
        std::fs::rename(&away, &log).unwrap();
        assert!(live.publish());
        assert_eq!(live.latest().wallboard.as_ref().ok(), Some(&shown));
    }

    /// The tests' wallboard: New York's day, the default SLA, at `clock`.
    fn new_york_at(clock: i64) -> WallboardOptions {
        WallboardOptions {
            tz: TimeZone::get("America/New_York").unwrap(),
            sla: Sla::default(),
            short_abandon_ms: 5_000,
            state_names: StateNames::agent_status_api(),
            now_ms: clock,
        }
    }

    fn replay(lines: &[&[u8]], clock: i64) {
        let dir = tempfile::tempdir().unwrap();
        let options = new_york_at(clock);
        let (mut archive, _) = Archive::open(
            dir.path(),
            ArchiveOptions {
                segment_bytes: 64 << 10,
                index_commit_interval: Duration::from_secs(3600),
                ..ArchiveOptions::default()
            },
        )
        .unwrap();
        let mut live = Live::new(dir.path(), options.clone(), Clock::Fixed(clock));
        let (mut builds, mut publishes) = (0, 0);
        let (mut busiest, mut offered, mut agents) = (0, 0, 0);
        let mut contacts = Vec::new();
        let sizes = [1usize, 37, 80, 200, 3, 60];
        // Then, one commit each, a transfer whose legs arrive child first:
        // the leg in progress changes contact when its parent arrives.
        let late: Vec<Vec<u8>> = [
            ("child", Some("parent"), "InteractionQueued"),
            ("parent", Some("first"), "InteractionAccepted"),
            ("first", None, "InteractionQueued"),
        ]
        .iter()
        .map(|(leg, parent, event)| {
            let parent = parent.map_or(String::new(), |p| {
                format!(r#","originalInteractionGuid":"int-late-{p}-phone-00-northwind01""#)
            });
            format!(
                r#"{{"Interaction":{{"event":"{event}","interactionGUID":"int-late-{leg}-phone-00-northwind01"{parent},"mediaType":"phone","queueId":301,"interactionEventTS":{}}}}}"#,
                (clock - 60_000) / 1000
            )
            .into_bytes()
        })
        .collect();
        let mut lines: Vec<&[u8]> = lines.to_vec();
        let sim_lines = lines.len();
        lines.extend(late.iter().map(Vec::as_slice));
        let mut at = 0;
        let mut step = 0;
        while at < lines.len() {
            let size = if at < sim_lines {
                sizes[step % sizes.len()]
            } else {
                1
            };
            let end = (at + size).min(if at < sim_lines {
                sim_lines
            } else {
                lines.len()
            });
            let batch: Vec<Incoming> = lines[at..end]
                .iter()
                .map(|l| Incoming {
                    raw: l,
                    source_kind: SourceKind::Mqtt,
                    source: "northwind01/event-v1/all",
                    line: 0,
                    message_id: None,
                    ingest_ms: clock,
                })
                .collect();
            archive.append_batch(&batch).unwrap();
            archive.commit_index().unwrap();
            at = end;
            step += 1;
            if step % 4 == 3 && at < sim_lines {
                continue; // the next publish covers two commits
            }
            if step == 20 {
                live = Live::new(dir.path(), options.clone(), Clock::Fixed(clock));
            }
            live.publish();
            publishes += 1;
            let shown = live.latest();
            let board = shown
                .board
                .clone()
                .unwrap_or_else(|| panic!("no wallboard after {at} lines: {:?}", shown.wallboard));
            let fresh = live
                .with_projections(|p| compute(p, &mut live.reader()?, &options))
                .unwrap();
            assert_eq!(*board, fresh, "after {at} of {} lines", lines.len());
            if at > sim_lines {
                let child = fresh
                    .in_progress
                    .iter()
                    .find(|l| l.interaction_guid.starts_with("int-late-child"));
                contacts.push(child.and_then(|l| l.contact_id.clone()));
            }
            assert_eq!(
                shown.wallboard.as_deref().ok(),
                Some(json_line(&fresh).unwrap().as_bytes())
            );
            builds = live.counters.builds.load(Ordering::Relaxed);
            busiest = busiest.max(fresh.in_progress.len());
            offered = offered.max(fresh.queues.iter().map(|q| q.offered).sum());
            agents = agents.max(fresh.agents.len());
        }
        // The comparison means something: the state was kept, not rebuilt
        // at each publish (once at the start, once after the restart), and
        // the boards had legs in progress, today's counts and agents.
        assert_eq!(builds, 1, "builds since the restart");
        assert!(publishes > 20, "{publishes}");
        assert!(
            busiest > 0 && offered > 0 && agents > 0,
            "{busiest} {offered} {agents}"
        );
        assert_eq!(contacts.len(), 3);
        assert!(contacts[0] != contacts[1], "{contacts:?}");
    }
}
