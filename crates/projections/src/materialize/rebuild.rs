//! The parallel rebuild: one sequential log scan groups records by
//! interaction (the index says how many records each group has), worker
//! threads project complete groups, this thread gathers their output into
//! batches and one more thread writes and commits each batch. Interactions
//! spread too far through the log to buffer are set aside and recomputed
//! by further scans, each taking a buffer's worth of them, and (those no
//! scan can hold) through the index at the end, so memory stays bounded.
//!
//! Memory does not grow with the archive: which group each record belongs
//! to is known for one window of the log at a time ([`GroupWindow`], 4
//! bytes a record of the window plus 8 a group in it; one pass over the
//! index fills the first and sets the later ones aside on scratch files);
//! everything else is a bounded buffer or queue.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccvault_store::{ArchiveReader, Hit, IndexReader, Position, StoreError, VisibleRecords};
use fixedbitset::FixedBitSet;
use redb::backends::InMemoryBackend;
use redb::Durability;

use super::group_window::{GroupWindow, Taken};
use super::project::{
    project_records, ArchivedEvent, ArchivedGroup, Projected, SummaryRow, TenantFacts, Want,
};
use super::schema::{
    create_private, io_error, scratch_builder, Anchor, SkippedDamage, SortedTables,
};
use super::{
    guarded, scratch_path, Applied, AtPath, Db, Progress, ProjectionError, Projections, Result,
};
use crate::codec::CodecError;

/// Records buffered for interactions whose last record has not been read
/// yet, during a rebuild. Past this, the oldest interactions are set aside
/// and recomputed from the index at the end, so memory stays bounded
/// whatever the archive's shape.
const DEFAULT_BUFFER_BYTES: usize = 96 << 20;
/// Records per unit of work handed to a rebuild worker (and per batch a
/// catch-up parses).
pub(super) const WORK_RECORDS: usize = 512;
/// Rows (summaries and status changes) per intermediate (non-durable)
/// commit of a rebuild. Three batches may be held at once (see
/// `write_outputs`); a smaller batch also leaves less to write after the
/// scan ends.
const COMMIT_EVERY: usize = 25_000;
/// The page cache of the rebuild's own handle on the archive index. Its
/// reads are sequential passes over the GUID postings (counting each
/// interaction's records, then the deferred ones), which the reader's usual
/// 64 MiB would not speed up but would hold all through the rebuild: that
/// cache was the largest item of a 5M rebuild's peak memory
/// (docs/BENCHMARKS.md, issue 9).
const INDEX_CACHE_BYTES: usize = 4 << 20;

/// Records of the log whose groups are known at once during a rebuild
/// (2^24: 64 MiB of group numbers), instead of 4 bytes for every record
/// of the log. An archive of up to ~16.7M records needs no scratch file
/// for the later windows.
const DEFAULT_WINDOW_RECORDS: u64 = 1 << 24;

/// Emptied group buffers the workers hand back to the log reader, at most
/// this many, each kept only if it holds at most [`SPARE_BYTES`]: a group
/// reuses one instead of allocating, faulting in and (on another thread)
/// freeing buffers of its own, ~7 % of a rebuild's samples (issue 12). At
/// most 32 MiB; a few MiB at a time in practice.
const SPARE_GROUPS: usize = 512;
const SPARE_BYTES: usize = 64 << 10;

/// A later scan of the log for the interactions set aside is followed by
/// another only if it completed at least 1/this of the log's records.
const RESCAN_PAYS_FROM: u64 = 128;

/// Tuning of a rebuild (tests shrink the buffer to exercise deferral, and
/// the window to cross many).
#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Compute threads besides the log reader and the writer.
    pub workers: usize,
    pub buffer_bytes: usize,
    /// Records per window of the log whose groups are held at once.
    pub window_records: u64,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            window_records: DEFAULT_WINDOW_RECORDS,
        }
    }
}

impl Projections {
    /// Recomputes every projection from the archive: a new file, filled by
    /// a log reader, `opts.workers` compute threads and this thread writing,
    /// then renamed over the old one.
    pub fn rebuild(
        &mut self,
        reader: &mut ArchiveReader,
        opts: RebuildOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied> {
        let path = self.path.clone();
        guarded(&path, || {
            self.writable()?;
            let started = Instant::now();
            if let Some(Db::Memory(_)) = self.db {
                // Nothing is saved: build the new tables in memory too.
                let db = scratch_builder()
                    .create_with_backend(InMemoryBackend::new())
                    .at(&self.path)?;
                let building = Projections {
                    path: self.path.clone(),
                    db: Some(Db::Memory(db)),
                    unsaved: None,
                    pinned: None,
                };
                let mut applied = building.fill(reader, opts, progress, started, None)?;
                self.db = building.db;
                applied.elapsed = started.elapsed();
                return Ok(applied);
            }
            let scratch = scratch_path(&self.path);
            let _ = std::fs::remove_file(&scratch);
            let filled = create_private(&scratch).and_then(|()| {
                let db = scratch_builder().create(&scratch).at(&scratch)?;
                let building = Projections {
                    path: scratch.clone(),
                    db: Some(Db::Writable(db)),
                    unsaved: None,
                    pinned: None,
                };
                // Not compacted: the file is new, written by this rebuild
                // alone, and each commit reuses the pages the one before
                // freed, so it never has the tenth free that makes
                // compaction worth it (10M events: 57 KB of 290 MB), and
                // asking redb (a walk of every table) was ~2 % of the
                // rebuild (docs/BENCHMARKS.md; the test
                // `a_rebuilt_file_has_nothing_for_compaction_to_give_back`).
                building.fill(reader, opts, progress, started, Some(&scratch))
            });
            let mut applied = match filled {
                Ok(applied) => applied,
                Err(e) => {
                    // Not left to fill a disk that is already full.
                    let _ = std::fs::remove_file(&scratch);
                    return Err(e);
                }
            };
            // Swap the new file in while still holding the old one's lock,
            // then release it: whoever holds the lock knows no rebuild is
            // between its scratch file's creation and this rename, so a
            // scratch file found then is one a killed rebuild left
            // (`remove_stale_scratch`).
            std::fs::rename(&scratch, &self.path).map_err(io_error(&self.path))?;
            // Closing the old file can make redb read it (to save its
            // allocator state): a damaged one may fail or panic there. It is
            // no longer the projections, so that is not this rebuild's error.
            let old = self.db.take();
            let _ = ccvault_store::guard_redb(
                || {
                    drop(old);
                    Ok::<(), ()>(())
                },
                |_| (),
            );
            if let Some(dir) = self.path.parent() {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            let reopened =
                Self::open_writable(&self.path).or_else(|_| Self::open_read_only(&self.path))?;
            self.db = reopened.db;
            applied.elapsed = started.elapsed();
            Ok(applied)
        })
    }

    /// The rebuild proper, into this (empty) store; its sorted runs go to
    /// scratch files beside `scratch` (`None`: held in memory).
    pub(super) fn fill(
        &self,
        reader: &mut ArchiveReader,
        opts: RebuildOptions,
        progress: &mut dyn FnMut(Progress),
        started: Instant,
        scratch: Option<&Path>,
    ) -> Result<Applied> {
        let mut sorted = SortedTables::new(scratch);
        let end = reader.visible_end();
        // Every pass over the groups (each scan's windows, and the
        // interactions read through the index) goes through one handle, so
        // that they number the groups alike; a newer snapshot than the
        // reader's is harmless, as records at or past `end` are left out of
        // all of them. When the file cannot be opened twice, the reader's
        // own handle serves.
        let own_index = reader.index().reopen_with_cache(INDEX_CACHE_BYTES).ok();
        let index = own_index.as_ref().unwrap_or(reader.index());
        let pass = Pass {
            reader: &*reader,
            index,
            opts,
            end,
            started,
            scratch: scratch.is_some(),
        };
        let first = self.scan_pass(&pass, None, progress, &mut sorted)?;
        let mut applied = Applied {
            rebuilt: true,
            consumed: end,
            records: first.records,
            interactions: first.interactions,
            agent_changes: first.agents,
            deferred: first.deferred.len() as u64,
            ..Applied::default()
        };
        let mut max_time = first.own_max_ms;

        // Interactions set aside: further scans of the log, each taking
        // only those of them that fit the buffer, for as long as a scan
        // completes some; what is left then (an interaction larger than the
        // buffer) is read through the index, like a catch-up does. A scan
        // is sequential, decompressing each segment once; reading a
        // scattered interaction through the index decompresses a block a
        // record, so a log out of time order, where most interactions are
        // set aside, took minutes that way (docs/BENCHMARKS.md).
        let mut waiting = first.deferred;
        while !waiting.is_empty() {
            let only: FixedBitSet = waiting.iter().map(|&gid| gid as usize).collect();
            let again = self.scan_pass(&pass, Some(&only), &mut |_| {}, &mut sorted)?;
            applied.rescans += 1;
            applied.interactions += again.interactions;
            applied.agent_changes += again.agents;
            max_time = max_time.max(again.own_max_ms);
            // A scan costs about as much as reading the whole log; reading
            // records through the index ~100 times as much a record. Another
            // scan pays while it completes more than a hundredth or so of the
            // log (a log out of time order: a buffer's worth of interactions
            // a scan), not when it completes next to nothing (interactions
            // larger than the buffer, which no scan can take).
            let worth_another = again.grouped * RESCAN_PAYS_FROM >= first.records;
            waiting = again.deferred;
            if !worth_another {
                break;
            }
        }
        if !waiting.is_empty() {
            let deferred: BTreeSet<u32> = waiting.iter().copied().collect();
            let mut groups: Vec<Vec<Hit>> = Vec::new();
            let mut gid = 0u32;
            index
                .for_each_guid_group(|_, hits| {
                    if deferred.contains(&gid) {
                        groups.push(hits.iter().copied().filter(|h| h.offset < end).collect());
                    }
                    gid += 1;
                })
                .map_err(StoreError::from)?;
            let db = self.writable()?;
            let txn = db.begin_write().at(&self.path)?;
            let mut all = Projected::default();
            for hits in groups {
                let recs: Vec<ArchivedEvent> = reader
                    .read_hits(&hits)?
                    .iter()
                    .filter(|r| !r.quarantined)
                    .map(ArchivedEvent::of_record)
                    .collect();
                let p = project_records(&recs, Want::ALL).at(&self.path)?;
                max_time = max_time.max(p.own_max_ms);
                applied.interactions += p.summaries.len() as u64;
                applied.agent_changes += p.agents.len() as u64;
                all.absorb(p);
            }
            self.put_projected(&txn, std::slice::from_ref(&all), &mut sorted)?;
            txn.commit().at(&self.path)?;
        }
        let db = self.writable()?;
        let mut txn = db.begin_write().at(&self.path)?;
        self.put_sorted(db, &txn, sorted)?;
        let anchor = first.last_pos.map(|p| Anchor::at(reader, p));
        self.put_meta(&txn, end, anchor, max_time, first.skipped)?;
        txn.set_durability(Durability::Immediate).at(&self.path)?;
        txn.commit().at(&self.path)?;
        progress(Progress {
            records: applied.records,
            total: end,
            elapsed: started.elapsed(),
        });
        Ok(applied)
    }

    /// One scan of the log through fresh group windows: the groups it
    /// completes projected and written, the ones set aside returned.
    /// `only`: a later scan, for these groups alone, taking a group only
    /// while the buffer has room for it (the first scan takes every group
    /// and sets the oldest aside when over budget).
    fn scan_pass(
        &self,
        pass: &Pass<'_, '_>,
        only: Option<&FixedBitSet>,
        progress: &mut dyn FnMut(Progress),
        sorted: &mut SortedTables,
    ) -> Result<ScanResult> {
        let Pass {
            opts, end, started, ..
        } = *pass;
        let groups = GroupWindow::new(
            pass.index,
            &self.path,
            pass.scratch,
            end,
            opts.window_records,
        );
        let records_read = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let workers = opts.workers.max(1);
        let (work_tx, work_rx) = mpsc::sync_channel::<Vec<Work>>(workers * 4);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (out_tx, out_rx) = mpsc::sync_channel::<Result<Projected, CodecError>>(workers * 4);
        let records_seen = pass.reader.records();
        let spares = Mutex::new(Vec::new());
        let (records_read, failed, spares) = (&records_read, &failed, &spares);
        std::thread::scope(|scope| -> Result<ScanResult> {
            let scan = scope.spawn(move || {
                scan_groups(
                    records_seen,
                    groups,
                    Budget {
                        bytes: opts.buffer_bytes,
                        only,
                    },
                    work_tx,
                    records_read,
                    failed,
                    spares,
                )
            });
            for _ in 0..workers {
                let rx = Arc::clone(&work_rx);
                let tx = out_tx.clone();
                scope.spawn(move || compute_worker(&rx, &tx, failed, spares));
            }
            // Only the workers hold the receiving end: if they all stop, the
            // reader's sends fail instead of blocking.
            drop(work_rx);
            drop(out_tx);
            let written = self.write_outputs(&out_rx, records_read, end, started, progress, sorted);
            if written.is_err() {
                failed.store(true, Ordering::Relaxed);
                // Unblock the workers so the scope can end.
                while out_rx.recv().is_ok() {}
            }
            let scan_result = scan
                .join()
                .map_err(|_| ProjectionError::Worker("the log reader panicked".into()))?;
            let (interactions, agents, max_time) = written?;
            let mut r = scan_result?;
            r.interactions = interactions;
            r.agents = agents;
            r.own_max_ms = r.own_max_ms.max(max_time);
            Ok(r)
        })
    }

    /// The writer side of a rebuild: stores what the workers project, in
    /// non-durable commits (the final meta commit makes them durable).
    ///
    /// This thread only gathers the workers' output into batches of
    /// [`COMMIT_EVERY`] rows; a thread of its own writes and commits each
    /// batch, so the workers go on while one is written instead of waiting
    /// on a full queue (on 2 cores a rebuild stood still during each
    /// commit). At most one batch waits for that thread while the next
    /// one fills.
    fn write_outputs(
        &self,
        out_rx: &Receiver<Result<Projected, CodecError>>,
        records_read: &AtomicU64,
        end: u64,
        started: Instant,
        progress: &mut dyn FnMut(Progress),
        sorted: &mut SortedTables,
    ) -> Result<(u64, u64, Option<i64>)> {
        let db = self.writable()?;
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Vec<Projected>>(1);
        std::thread::scope(|scope| {
            let committer = scope.spawn(move || -> Result<()> {
                for batch in batch_rx {
                    let mut txn = db.begin_write().at(&self.path)?;
                    self.put_projected(&txn, &batch, sorted)?;
                    txn.set_durability(Durability::None).at(&self.path)?;
                    txn.commit().at(&self.path)?;
                }
                Ok(())
            });
            let gathered =
                self.gather_batches(out_rx, &batch_tx, records_read, end, started, progress);
            // Closing the channel ends the committer once it has written
            // the last batch.
            drop(batch_tx);
            let committed = committer
                .join()
                .map_err(|_| ProjectionError::Worker("the projections writer panicked".into()))?;
            // The committer's error first: it is why a send failed.
            committed?;
            gathered
        })
    }

    /// Gathers the workers' output into batches for `batch_tx`, the last
    /// one whatever its size; the counts of what was gathered.
    fn gather_batches(
        &self,
        out_rx: &Receiver<Result<Projected, CodecError>>,
        batch_tx: &SyncSender<Vec<Projected>>,
        records_read: &AtomicU64,
        end: u64,
        started: Instant,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(u64, u64, Option<i64>)> {
        let (mut interactions, mut agents, mut max_time) = (0u64, 0u64, None);
        // What the workers sent since the last batch, written all at once
        // so that each table receives its keys sorted. Kept as they came:
        // copying them into one (`Projected::absorb`) grew fresh vectors
        // of every batch's rows on this thread, most of its time in page
        // faults in some hours (docs/BENCHMARKS.md, issue 12).
        let mut pending: Vec<Projected> = Vec::new();
        let mut in_batch = 0usize;
        let mut last_report = Instant::now();
        // A failed send means the committer stopped on an error, which
        // `write_outputs` reports.
        let mut committer_stopped = false;
        loop {
            let item = match out_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(item) => Some(item),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(item) = item {
                let p = item.at(&self.path)?;
                if let Some((offset, guid)) = p.unplaced {
                    // Its interaction would lose it (or be missing) in
                    // silence: the index is not the log's.
                    // The archive's index, beside the projections.
                    let dir = self.path.parent().unwrap_or(Path::new("."));
                    let index = ccvault_store::Layout::new(dir).index_path();
                    return Err(ProjectionError::Unindexed {
                        index: index.display().to_string(),
                        offset,
                        guid,
                    });
                }
                interactions += p.summaries.len() as u64;
                agents += p.agents.len() as u64;
                max_time = max_time.max(p.own_max_ms);
                in_batch += p.summaries.len() + p.agents.len();
                pending.push(p);
                if in_batch >= COMMIT_EVERY {
                    if batch_tx.send(std::mem::take(&mut pending)).is_err() {
                        committer_stopped = true;
                        break;
                    }
                    in_batch = 0;
                }
            }
            if last_report.elapsed() >= Duration::from_millis(200) {
                last_report = Instant::now();
                progress(Progress {
                    records: records_read.load(Ordering::Relaxed),
                    total: end,
                    elapsed: started.elapsed(),
                });
            }
        }
        if !committer_stopped {
            // Nothing to do on failure: the committer's error is reported.
            let _ = batch_tx.send(pending);
        }
        Ok((interactions, agents, max_time))
    }

    /// Writes what a rebuild projected (every interaction new to the store),
    /// the keys of the tables filled at the end into `sorted`.
    fn put_projected(
        &self,
        txn: &redb::WriteTransaction,
        parts: &[Projected],
        sorted: &mut SortedTables,
    ) -> Result<()> {
        let summaries: Vec<&SummaryRow> = parts.iter().flat_map(|p| &p.summaries).collect();
        self.put_new_summaries(txn, &summaries, sorted)?;
        for p in parts {
            self.put_agents(txn, &p.agents, Some(&mut *sorted))?;
        }
        self.put_copies(txn, parts.iter().flat_map(|p| &p.copies))?;
        let tenants: Vec<&TenantFacts> = parts.iter().map(|p| &p.tenants).collect();
        self.put_tenants(txn, &tenants, Some(sorted))
    }
}

/// What every scan of one rebuild shares.
struct Pass<'r, 'i> {
    reader: &'r ArchiveReader,
    index: &'i IndexReader,
    opts: RebuildOptions,
    end: u64,
    started: Instant,
    /// Whether the group windows' buckets go to scratch files.
    scratch: bool,
}

/// What a scan may buffer: `bytes` of records of groups not complete yet,
/// and, for a later scan, only the groups in `only`.
struct Budget<'a> {
    bytes: usize,
    only: Option<&'a FixedBitSet>,
}

/// A unit of rebuild work: the complete records of one interaction group,
/// or records outside any interaction (status changes and the like).
enum Work {
    Group(ArchivedGroup),
    Loose(ArchivedGroup),
}

struct ScanResult {
    records: u64,
    /// Records of the groups it completed.
    grouped: u64,
    last_pos: Option<Position>,
    deferred: Vec<u32>,
    interactions: u64,
    agents: u64,
    own_max_ms: Option<i64>,
    skipped: SkippedDamage,
}

/// The log reader of a rebuild: one sequential scan; hands each group to
/// the workers once its last record is read.
fn scan_groups(
    records_seen: VisibleRecords<'_>,
    mut groups: GroupWindow<'_>,
    budget: Budget<'_>,
    work_tx: SyncSender<Vec<Work>>,
    records_read: &AtomicU64,
    failed: &AtomicBool,
    spares: &Mutex<Vec<ArchivedGroup>>,
) -> Result<ScanResult> {
    // The spare buffers taken from `spares` at once, one lock a refill.
    let mut spare: Vec<ArchivedGroup> = Vec::new();
    let mut inflight: HashMap<u32, (u64, usize, ArchivedGroup)> = HashMap::new();
    // The groups in the order their first record was read, to set the
    // oldest aside when over budget. A group that completes stays until it
    // reaches the front or the queue is tidied (past twice the groups in
    // flight): a sorted map's insert and remove a group cost more.
    let mut by_age: VecDeque<u32> = VecDeque::new();
    let mut deferred: Vec<u32> = Vec::new();
    let mut deferred_set = FixedBitSet::new();
    let mut buffered = 0usize;
    let mut batch: Vec<Work> = Vec::new();
    let mut batch_records = 0usize;
    let mut loose = ArchivedGroup::default();
    let mut records = 0u64;
    let mut grouped = 0u64;
    let mut last_pos = None;
    let send = |batch: &mut Vec<Work>| -> Result<()> {
        if failed.load(Ordering::Relaxed) {
            return Err(ProjectionError::Worker("stopped after an error".into()));
        }
        work_tx
            .send(std::mem::take(batch))
            .map_err(|_| ProjectionError::Worker("workers stopped".into()))
    };
    let mut skipped = SkippedDamage::default();
    let scanned = records_seen.scan_noting_damage(
        Position::START,
        |pos, rec| {
            records += 1;
            last_pos = Some(pos);
            if records & 4095 == 0 {
                records_read.store(records, Ordering::Relaxed);
            }
            if rec.quarantined {
                return ControlFlow::Continue(());
            }
            let group = match groups.take(rec.offset) {
                Ok(group) => group,
                Err(e) => return ControlFlow::Break(e),
            };
            match group {
                // A later scan: records outside interactions were
                // projected by the first.
                None if budget.only.is_some() => {}
                None => {
                    loose.push(&rec);
                    if loose.len() >= WORK_RECORDS {
                        batch_records += loose.len();
                        let next = take_spare(&mut spare, spares).unwrap_or_default();
                        batch.push(Work::Loose(std::mem::replace(&mut loose, next)));
                    }
                }
                Some(taken)
                    if deferred_set.contains(taken.gid as usize)
                        || budget
                            .only
                            .is_some_and(|only| !only.contains(taken.gid as usize)) => {}
                Some(Taken {
                    gid,
                    left,
                    size,
                    guid_hash,
                }) => {
                    let is_new = !inflight.contains_key(&gid);
                    // A later scan takes a group only if what it is
                    // expected to hold (its records, each the size of its
                    // first) fits beside the groups taken: the first scan
                    // set these aside for want of room, and taking them
                    // all again would set most aside again.
                    if is_new
                        && budget.only.is_some()
                        && !inflight.is_empty()
                        && buffered + expected_bytes(size, &rec) > budget.bytes
                    {
                        deferred.push(gid);
                        deferred_set.grow_and_insert(gid as usize);
                        return ControlFlow::Continue(());
                    }
                    let entry = inflight.entry(gid).or_insert_with(|| {
                        by_age.push_back(gid);
                        let reused = take_spare(&mut spare, spares);
                        (
                            rec.offset,
                            0,
                            ArchivedGroup::for_records(size as usize, &rec, reused, guid_hash),
                        )
                    });
                    // A new group counts the room reserved for it too: it
                    // is held from now on (left out, a log out of time
                    // order buffered most of itself, issue 12).
                    let before = if is_new { 0 } else { entry.2.footprint() };
                    entry.2.push(&rec);
                    let grown = entry.2.footprint().saturating_sub(before) + 64;
                    entry.1 += grown;
                    buffered += grown;
                    if left == 0 {
                        if let Some((_, bytes, recs)) = inflight.remove(&gid) {
                            buffered -= bytes;
                            batch_records += recs.len();
                            grouped += recs.len() as u64;
                            batch.push(Work::Group(recs));
                        }
                    }
                    while buffered > budget.bytes {
                        let Some(old) = by_age.pop_front() else {
                            break;
                        };
                        // Completed groups are skipped: each group enters
                        // `inflight` once, so one absent from it is done.
                        if let Some((_, bytes, _)) = inflight.remove(&old) {
                            buffered -= bytes;
                            deferred.push(old);
                            deferred_set.grow_and_insert(old as usize);
                        }
                    }
                    if by_age.len() > 2 * inflight.len() + 1024 {
                        by_age.retain(|g| inflight.contains_key(g));
                    }
                }
            }
            if batch_records >= WORK_RECORDS {
                if let Err(e) = send(&mut batch) {
                    return ControlFlow::Break(e);
                }
                batch_records = 0;
            }
            ControlFlow::Continue(())
        },
        |damage| skipped.add(damage),
    )?;
    if let ControlFlow::Break(e) = scanned {
        return Err(e);
    }
    records_read.store(records, Ordering::Relaxed);
    if !loose.is_empty() {
        batch.push(Work::Loose(loose));
    }
    // Groups whose remaining records are not visible (cannot happen with a
    // consistent index, but the log is the judge): project what was read.
    let mut rest: Vec<(u64, ArchivedGroup)> = inflight
        .into_values()
        .map(|(first, _, recs)| (first, recs))
        .collect();
    rest.sort_by_key(|(first, _)| *first);
    batch.extend(rest.into_iter().map(|(_, recs)| Work::Group(recs)));
    if !batch.is_empty() {
        send(&mut batch)?;
    }
    deferred.sort_unstable();
    Ok(ScanResult {
        records,
        grouped,
        last_pos,
        deferred,
        interactions: 0,
        agents: 0,
        own_max_ms: None,
        skipped,
    })
}

/// What a group of `records` records like `first` is expected to take in
/// a scan's buffer (as [`scan_groups`] counts it).
fn expected_bytes(records: u32, first: &ccvault_store::RecordRef<'_>) -> usize {
    let each = first.payload.len() + first.publish_time.len() + 64 + ArchivedGroup::PER_RECORD;
    (records.max(1) as usize).saturating_mul(each)
}

/// An emptied group buffer for the log reader to fill, from its own
/// `local` ones or, when those are used up, all the workers handed back.
fn take_spare(
    local: &mut Vec<ArchivedGroup>,
    shared: &Mutex<Vec<ArchivedGroup>>,
) -> Option<ArchivedGroup> {
    if local.is_empty() {
        if let Ok(mut shared) = shared.lock() {
            std::mem::swap(local, &mut *shared);
        }
    }
    local.pop()
}

/// A rebuild worker: projects units of work until the reader is done, and
/// hands the emptied group buffers back to the reader.
fn compute_worker(
    rx: &Mutex<Receiver<Vec<Work>>>,
    tx: &SyncSender<Result<Projected, CodecError>>,
    failed: &AtomicBool,
    spares: &Mutex<Vec<ArchivedGroup>>,
) {
    loop {
        let batch = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(batch) = batch else {
            return;
        };
        let mut out = Projected::default();
        for work in &batch {
            let p = match work {
                Work::Group(recs) => {
                    project_records(&recs.events(), Want::ALL).map(|p| recs.check_filed(p))
                }
                // Records outside interactions can still be status changes.
                Work::Loose(recs) => project_records(&recs.events(), Want::LOOSE),
            };
            match p {
                Ok(p) => out.absorb(p),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if tx.send(Ok(out)).is_err() {
            return;
        }
        let mut back: Vec<ArchivedGroup> = batch
            .into_iter()
            .map(|work| match work {
                Work::Group(recs) | Work::Loose(recs) => recs,
            })
            .filter(|recs| recs.footprint() <= SPARE_BYTES)
            .collect();
        back.iter_mut().for_each(ArchivedGroup::clear);
        if let Ok(mut shared) = spares.lock() {
            let room = SPARE_GROUPS.saturating_sub(shared.len());
            shared.extend(back.into_iter().take(room));
        }
    }
}
