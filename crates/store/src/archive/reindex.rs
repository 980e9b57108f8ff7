//! Indexing the log: the tail the index has not seen (at every open) and a
//! whole rebuild (`ccvault reindex`, or an index found unusable).
//!
//! Guarantees:
//! - Records are indexed in log order, whatever thread read them, and each
//!   commit carries the checkpoint just past its last record, so a crash
//!   midway resumes from the last commit.
//! - Tally records are not indexed as records: the last one read gives the
//!   counts of dropped messages (running totals), so indexing a tail twice
//!   counts nothing twice.
//! - A rebuild fills a scratch file and renames it over the index only once
//!   it is sealed: a crash leaves the old index in place.
//! - Reading and parsing (most of the work) run on up to four scanner
//!   threads, each taking whole segments in turn, with bounded queues.
//! - A whole rebuild also writes the facts (`crate::facts`) of every sealed
//!   segment, from the same parse: an archive written before facts, or
//!   whose facts were removed or disagree with their payloads, gets them.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ccvault_event::{parse_event, resolve_time, EventTime, Keys, PayloadTimes};
use ccvault_index::{payload_hash, Checkpoint, Entry, Index, IndexWriter};
use ccvault_log::{LogReader, Position, RecordKind, RecordRef, ScanRef, StdVfs, Tally};

use super::{
    arrival, create_private_file, index_entry, open_index, remove_file_if_exists, Archive,
};
use crate::error::{io, Result, StoreError};
use crate::facts::FactsBuilder;
use crate::segments::packed_totals;

/// Records this process has indexed from the log (catch-ups at an open,
/// whole rebuilds), whatever archive or thread: a gauge for a progress
/// display, which may run long (an upgrade reads the whole log).
static INDEXED_FROM_LOG: AtomicU64 = AtomicU64::new(0);

/// How many records this process has indexed from the log so far: read
/// twice, the difference is what indexing did in between.
pub fn records_indexed_from_log() -> u64 {
    INDEXED_FROM_LOG.load(Ordering::Relaxed)
}

impl Archive {
    /// Rebuilds the index from the whole log into a scratch file and then
    /// swaps it in by rename, so a crash midway leaves the old index in
    /// place. Returns the number of records indexed.
    pub fn rebuild_index(&mut self) -> Result<u64> {
        self.rebuild_index_noting(None)
    }

    /// [`Archive::rebuild_index`], recording in the new index that the log
    /// lost the records from `lost.0` on, as the loss `lost.1`
    /// (`IndexWriter::set_lost`).
    pub(crate) fn rebuild_index_noting(&mut self, lost: Option<(u64, u64)>) -> Result<u64> {
        self.commit_index()?;
        let path = self.layout.index_path();
        let scratch = self.layout.scratch_index_path();
        // Counts of dropped messages come from the log's tallies; an index
        // of a log written before tallies holds counts no tally has, kept
        // here until `open` writes them into one.
        let old = self.index.reader()?;
        let untallied = match old.tally_offset()? {
            None => old.counters().ok(),
            Some(_) => None,
        };
        drop(old);
        remove_file_if_exists(&scratch)?;
        create_private_file(&scratch)?;
        let built = self.fill_scratch_index(&path, &scratch, untallied, lost);
        if built.is_err() {
            // Not left to fill a disk that is already full: the index it
            // was to replace is still in place.
            let _ = std::fs::remove_file(&scratch);
        }
        let n = built?;
        std::fs::rename(&scratch, &path).map_err(io("cannot replace index", &path))?;
        self.index = Arc::new(open_index(&path)?);
        Ok(n)
    }

    /// [`Archive::rebuild_index`]'s work between creating the scratch file
    /// and renaming it over `path`: the whole log indexed into it, sealed.
    fn fill_scratch_index(
        &mut self,
        path: &Path,
        scratch: &Path,
        untallied: Option<ccvault_index::Counters>,
        lost: Option<(u64, u64)>,
    ) -> Result<u64> {
        let fresh = Index::create_scratch(scratch)?;
        drop(std::mem::replace(&mut self.index, Arc::new(fresh)));
        let started = Instant::now();
        let facts = FactsPlan {
            dir: self.layout.facts_dir(),
            last: self.log.end_position().segment,
        };
        let n = self.index_tail(None, u64::MAX, Some(&facts))?;
        tracing::debug!(records = n, elapsed = ?started.elapsed(), "index rebuilt from the log");
        // Only while no tally is behind the counts.
        let untallied = match untallied {
            Some(c) if self.index.reader()?.tally_offset()?.is_none() => Some(c),
            _ => None,
        };
        if untallied.is_some() || lost.is_some() {
            let mut w = self.index.begin()?;
            if let Some(c) = untallied {
                w.keep_untallied(c.duplicates, c.control);
            }
            if let Some((offset, id)) = lost {
                w.set_lost(offset, id);
            }
            self.index.commit(w, None)?;
        }
        // Hold the old index while the new one is sealed, then swap files.
        let built = std::mem::replace(&mut self.index, Arc::new(open_index(path)?));
        let started = Instant::now();
        // `commit_index` waited for any commit thread: this is the only share.
        Arc::try_unwrap(built)
            .map_err(|_| StoreError::Poisoned("the rebuilt index is still being committed".into()))?
            .seal()?;
        tracing::debug!(elapsed = ?started.elapsed(), "rebuilt index sealed");
        Ok(n)
    }

    /// Indexes every record from `from` (the start of the log when `None`)
    /// to the end of the log, committing every `every_records` records or
    /// `rebuild_commit_bytes` of collected entries, whichever comes first.
    ///
    /// Reading and parsing (most of the work) run on scanner threads, each
    /// taking whole segments in turn; this thread indexes their output in
    /// log order, segment by segment.
    pub(super) fn index_tail(
        &mut self,
        from: Option<Position>,
        every_records: u64,
        facts: Option<&FactsPlan>,
    ) -> Result<u64> {
        self.commit_index()?;
        let start = from.unwrap_or(Position { segment: 0, pos: 0 });
        let every_bytes = self.options.rebuild_commit_bytes.max(1);
        // (segment, where to start in it), in log order.
        let segments: Vec<(u64, u32)> = self
            .log_reader
            .segments()
            .into_iter()
            .filter(|&base| base >= start.segment)
            .map(|base| (base, if base == start.segment { start.pos } else { 0 }))
            .collect();
        let scanners = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(segments.len().max(1));
        let log_reader = &self.log_reader;
        let log = &self.log;
        let index = &self.index;
        std::thread::scope(|scope| {
            let mut outputs = Vec::with_capacity(scanners);
            let mut handles = Vec::with_capacity(scanners);
            for k in 0..scanners {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Scanned>(SCANNED_QUEUE);
                let mine: Vec<(u64, u32)> =
                    segments.iter().skip(k).step_by(scanners).copied().collect();
                handles.push(scope.spawn(move || scan_segments(log_reader, &mine, &tx, facts)));
                outputs.push(rx);
            }

            let mut total = 0u64;
            // The offset the next record should have, to find segments
            // missing between the ones scanned: a scanner starts each
            // segment afresh, so only this thread sees one end and the next
            // begin. Not known after damage (it may have hidden records).
            let mut expected = match from {
                None => Some(0),
                Some(_) => index.reader()?.checkpoint()?.map(|c| c.next_offset),
            };
            // The lowest offset the next record may have: one whose offset
            // repeats or goes back (a segment copied or renamed to a wrong
            // base) is damage, as a scan of the whole log reports it, and
            // is never indexed twice or out of order.
            let mut next_due = expected.unwrap_or(0);
            let mut repeated = RepeatedRun::default();
            let mut writer = index.begin()?;
            let mut checkpoint: Option<Checkpoint> = None;
            // The checkpoint of the last commit: records (tallies too) past
            // it are still to commit.
            let mut committed: Option<Checkpoint> = None;
            'segments: for i in 0..segments.len() {
                let Some(rx) = outputs.get(i % scanners) else {
                    break;
                };
                let base = segments.get(i).map_or(0, |&(base, _)| base);
                loop {
                    let chunk = match rx.recv() {
                        Ok(Scanned::Records(chunk)) => chunk,
                        Ok(Scanned::SegmentEnd) => break,
                        // The scanner stopped early: joining it says why.
                        Err(_) => break 'segments,
                    };
                    let mut entries: Vec<Entry> = Vec::with_capacity(chunk.len());
                    // Running totals: the last tally (in log order) is the count.
                    let mut tally = None;
                    for r in &chunk {
                        if let What::Damage { segment, bytes } = r.what {
                            repeated.flush(&mut writer);
                            writer.add_damage(segment, r.pos, bytes);
                            expected = None;
                        } else if r.offset < next_due {
                            let bytes = r.after.map_or(0, |a| a.pos.saturating_sub(r.pos));
                            repeated.add(&mut writer, base, r.pos, bytes, r.offset);
                        } else {
                            repeated.flush(&mut writer);
                            // A whole segment file gone: its base is the
                            // offset that was due.
                            if let Some(due) = expected.filter(|&due| r.offset > due) {
                                tracing::warn!(
                                    "offsets {due}..{} are in no segment of the log (a segment file missing?)",
                                    r.offset
                                );
                                writer.add_damage(due, 0, 0);
                            }
                            expected = Some(r.offset + 1);
                            next_due = r.offset + 1;
                            match &r.what {
                                What::Message(m) => entries.push(index_entry(
                                    r.offset,
                                    r.pos,
                                    m.hash,
                                    &m.keys,
                                    m.time,
                                    m.quarantined,
                                )),
                                What::Tally(t) => tally = Some((r.offset, *t)),
                                What::Damage { .. } => {}
                            }
                        }
                        // Past a repeated record the next one due is still
                        // `next_due`, not the one after the repeat.
                        checkpoint = r
                            .after
                            .map(|a| Checkpoint {
                                next_offset: a.next_offset.max(next_due),
                                ..a
                            })
                            .or(checkpoint);
                    }
                    writer.add_all(&entries)?;
                    total += entries.len() as u64;
                    INDEXED_FROM_LOG.fetch_add(entries.len() as u64, Ordering::Relaxed);
                    if let Some((offset, t)) = tally {
                        writer.add_tally(offset, t.duplicates, t.control);
                    }
                    if writer.pending() >= every_records || writer.held_bytes() >= every_bytes {
                        // The next writer's snapshot must include this commit.
                        writer.set_packed(packed_totals(log.packed_segments()));
                        index.commit(writer, checkpoint)?;
                        committed = checkpoint;
                        writer = index.begin()?;
                    }
                }
                repeated.flush(&mut writer);
            }
            repeated.flush(&mut writer);
            drop(outputs);
            for handle in handles {
                match handle.join() {
                    Ok(scanned) => scanned?,
                    Err(_) => {
                        return Err(StoreError::Thread(
                            "reindex's log scanning thread panicked".to_owned(),
                        ))
                    }
                }
            }
            // A tail of tallies alone (a re-import of archived lines) has
            // no entries but moves the checkpoint and the counts.
            if writer.pending() > 0 || checkpoint != committed {
                writer.set_packed(packed_totals(log.packed_segments()));
                index.commit(writer, checkpoint)?;
            }
            Ok(total)
        })
    }
}

/// A run of records whose offsets repeat or go back, met one after the
/// other in one segment: one damaged place of the index's counts.
#[derive(Default)]
struct RepeatedRun {
    /// Segment, start, bytes so far, the first offset met.
    run: Option<(u64, u32, u64, u64)>,
}

impl RepeatedRun {
    fn add(&mut self, writer: &mut IndexWriter, segment: u64, pos: u32, bytes: u32, offset: u64) {
        match &mut self.run {
            Some((s, start, len, _))
                if *s == segment && u64::from(*start) + *len == u64::from(pos) =>
            {
                *len += u64::from(bytes);
            }
            _ => {
                self.flush(writer);
                self.run = Some((segment, pos, u64::from(bytes), offset));
            }
        }
    }

    fn flush(&mut self, writer: &mut IndexWriter) {
        if let Some((segment, pos, bytes, offset)) = self.run.take() {
            tracing::warn!(
                "skipping records from offset {offset} in segment {segment:020} at byte {pos} ({bytes} bytes) while indexing: their offsets repeat or go back (a segment copied, or renamed to another base)"
            );
            writer.add_damage(segment, pos, bytes);
        }
    }
}

/// Chunks a scanning thread may queue. The indexing thread drains one
/// scanner's segment while the others scan theirs ahead: the queue holds a
/// whole default segment (64 MiB of ~800-byte records is 20 chunks), else
/// the scanners take turns instead of running together (5M records:
/// 10.8 s with 4 chunks, 8.5 s with 32).
const SCANNED_QUEUE: usize = 24;

/// What indexing needs of one record (or of a damaged place), computed
/// on a scanning thread.
struct ScannedRecord {
    offset: u64,
    pos: u32,
    what: What,
    /// The checkpoint just past it: `None` for a damaged place met before
    /// any record of a scan that started within a segment (the offset
    /// that comes next is not known there) or in a `.segz`; the records
    /// after it move the checkpoint past it.
    after: Option<Checkpoint>,
}

/// A message's index entry, a tally's counts, or a damaged place skipped
/// (its segment and length; `pos` is where it starts).
enum What {
    Message(ScannedMessage),
    Tally(Tally),
    Damage { segment: u64, bytes: u64 },
}

struct ScannedMessage {
    hash: u64,
    keys: Keys,
    time: EventTime,
    quarantined: bool,
}

/// A scanning thread's output, in log order.
enum Scanned {
    Records(Vec<ScannedRecord>),
    /// The current segment is done; the next message is of the scanner's
    /// next segment.
    SegmentEnd,
}

/// What indexing needs of a message.
fn scan_message(rec: &RecordRef<'_>) -> ScannedMessage {
    let (keys, payload_time) = if rec.quarantined {
        (Keys::default(), PayloadTimes::default())
    } else {
        match parse_event(rec.payload) {
            Ok(ev) => (Keys::of(&ev, rec.payload), ev.payload_times()),
            Err(_) => (Keys::default(), PayloadTimes::default()),
        }
    };
    let publish = (!rec.publish_time.is_empty()).then_some(rec.publish_time);
    ScannedMessage {
        hash: payload_hash(rec.payload),
        keys,
        time: resolve_time(
            payload_time,
            arrival(publish, rec.ingest_ms, rec.source_kind),
        ),
        quarantined: rec.quarantined,
    }
}

/// Which segments' facts a scan writes: every one before `last` (the
/// writer's segment), into `dir`. Those already there are written again
/// too: a facts file that reads well (its CRC holds) can still disagree with
/// its payloads (`verify` compares them), and the whole rebuild parses every
/// payload anyway, so it is what repairs them.
pub(super) struct FactsPlan {
    pub dir: std::path::PathBuf,
    pub last: u64,
}

impl FactsPlan {
    /// A builder for the facts of `base` scanned from `pos`, if they are to
    /// be written.
    fn builder(&self, base: u64, pos: u32) -> Option<FactsBuilder> {
        (pos == 0 && base < self.last).then(|| FactsBuilder::new(base))
    }
}

/// Scans and parses `segments` (segment, start position) in order, sending
/// records in chunks and a [`Scanned::SegmentEnd`] after each segment; and
/// writes the facts `facts` asks for.
fn scan_segments(
    log_reader: &LogReader,
    segments: &[(u64, u32)],
    tx: &std::sync::mpsc::SyncSender<Scanned>,
    facts: Option<&FactsPlan>,
) -> Result<()> {
    const CHUNK: usize = 4096;
    // A failed send means the indexing side is gone: it failed and reports
    // why, so the scanner just stops.
    let send = |msg: Scanned| {
        if tx.send(msg).is_ok() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    for &(base, pos) in segments {
        let mut built = facts.and_then(|f| f.builder(base, pos));
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut receiver_gone = false;
        // The offset the next record should have: a segment's base at its start.
        let mut next_offset = (pos == 0).then_some(base);
        log_reader.scan_segment_with(base, pos, |item| -> Result<ControlFlow<()>> {
            let (at, rec) = match item {
                ScanRef::Record(at, rec) => (at, rec),
                ScanRef::Damage(d) => {
                    tracing::warn!("skipping damaged record while indexing: {d}");
                    // Counted by the index (what its answers may lack), with
                    // the checkpoint past it so that it is counted once.
                    let start = u32::try_from(d.pos).unwrap_or(u32::MAX);
                    let end = d.pos.saturating_add(d.len_skipped);
                    chunk.push(ScannedRecord {
                        offset: next_offset.unwrap_or(0),
                        pos: start,
                        what: What::Damage {
                            segment: d.segment,
                            bytes: d.len_skipped,
                        },
                        // In a `.segz` the length is not of the `.seg`'s
                        // bytes, so no position past it is known there.
                        after: next_offset.filter(|_| !d.compressed).map(|next_offset| {
                            Checkpoint {
                                next_offset,
                                segment: d.segment,
                                pos: u32::try_from(end).unwrap_or(u32::MAX),
                            }
                        }),
                    });
                    return Ok(ControlFlow::Continue(()));
                }
            };
            next_offset = Some(rec.offset + 1);
            let frame = u32::try_from(rec.frame_len()).unwrap_or(u32::MAX);
            let after = Checkpoint {
                next_offset: rec.offset + 1,
                segment: at.segment,
                pos: at.pos.saturating_add(frame),
            };
            let what = match rec.kind {
                RecordKind::Tally => match rec.tally() {
                    Some(t) => What::Tally(t),
                    // The decoder only serves 16-byte tallies.
                    None => return Ok(ControlFlow::Continue(())),
                },
                RecordKind::Message => {
                    let m = scan_message(&rec);
                    if let (Some(b), false) = (built.as_mut(), m.quarantined) {
                        b.push(rec.offset, rec.payload, &m.keys);
                    }
                    What::Message(m)
                }
            };
            chunk.push(ScannedRecord {
                offset: rec.offset,
                pos: at.pos,
                what,
                after: Some(after),
            });
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                let flow = send(Scanned::Records(full));
                receiver_gone = flow.is_break();
                return Ok(flow);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let ended = receiver_gone
            || (!chunk.is_empty() && send(Scanned::Records(chunk)).is_break())
            || send(Scanned::SegmentEnd).is_break();
        if ended {
            break;
        }
        if let (Some(b), Some(plan)) = (built.filter(|b| !b.is_empty()), facts) {
            // Derived: a failure costs only speed, as the writer's.
            if let Err(e) = b.write(&StdVfs, &plan.dir) {
                tracing::warn!(
                    "could not write the facts of segment {base} in {} ({e})",
                    plan.dir.display()
                );
            }
        }
    }
    Ok(())
}
