//! The single writer: appends records, rolls segments, makes data durable.
//!
//! The appender encodes frames into a buffer and hands full buffers, fsync
//! requests and segment rolls to the flusher thread (`flusher`), which
//! performs them in order; callers wait only where they need data written
//! or durable.
//!
//! Invariants:
//! - Offsets are dense: the record appended after offset N gets N + 1.
//! - Bytes reach the file in append order through one in-memory buffer; a record is
//!   never split across segments.
//! - Records are appended only to a segment whose header says this format
//!   version ([`FORMAT_VERSION`]); an older last segment is sealed at open.
//! - A segment is sealed (fsynced, whatever the policy) before its successor is
//!   created, so only the last segment can ever have a torn tail.
//! - A segment file exceeds `segment_bytes` only if it holds a single record that
//!   is larger; it never exceeds 4 GiB, so positions fit in `u32`.
//! - `flush` (and `wait_durable(N)`) returns N only when every record below N is
//!   durable under the policy.
//! - Sealed segments are compressed (`.segz`) by a background thread once
//!   their successor exists durably, never on the path of an append or an
//!   acknowledgement; closing the log stops it without waiting for what is
//!   queued (those stay `.seg`, durable, for the next writer to compress).
//! - [`Log::packed_segments`] counts exactly the `.segz` files of the
//!   directory that have no `.seg` beside them: counted at open after the
//!   crash tidying, each compression adding its file once its `.seg` is
//!   removed (nothing else adds or removes a `.segz` while the lock is held).
//! - After any failed write or fsync the writer is poisoned: it refuses further
//!   work, and reopening the log (which recovers the tail) is the way forward.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use crate::compact::{compact_segment, restore_container, Compacted, Compactor};
use crate::compressor::{Compressor, Drainer};
use crate::direct::FrameBuf;
use crate::error::{LogError, Result};
use crate::flusher::{DurableWaiter, Flusher, Job, Reached};
use crate::format::FORMAT_VERSION;
use crate::format::{
    body_len, encode_frame, NewRecord, FRAME_HEADER_LEN, HEADER_LEN, MAX_BODY_LEN,
    MAX_SEGMENT_BYTES,
};
use crate::options::{FsyncPolicy, LogOptions};
use crate::reader::LogReader;
use crate::recovery::{end_of_segment, next_offset_after_packed, recover_last, Recovery};
use crate::segment::{
    check_named_rightly, create_segment, list_segment_file_lens, list_segment_files,
    restore_plain_header, rewrite_empty_segment, segment_path, Kind, PackedSegments,
};
use crate::segz::Compression;
use crate::vfs::{create_dir_durably, LockGuard, StdVfs, Vfs};
use crate::Position;

/// A segment file whose damaged header (and, for a `.segz`, block index)
/// [`Log::restore_headers`] wrote again from what the file shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenHeader {
    /// The segment's base offset.
    pub base: u64,
    /// A `.segz` (header and block index written again), else a `.seg`.
    pub compressed: bool,
    /// What was wrong.
    pub what: &'static str,
}

impl RewrittenHeader {
    /// The file's name in the log directory.
    pub fn file_name(&self) -> String {
        match self.compressed {
            true => crate::segz_file_name(self.base),
            false => crate::segment_file_name(self.base),
        }
    }
}

/// Size of the in-memory append buffer; it is written out when it fills up.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The single writer of a log directory.
pub struct Log {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    opts: LogOptions,
    /// Base offset of the active (last) segment.
    base: u64,
    /// Bytes of the active segment handed to the flusher (header included).
    written: u64,
    buf: FrameBuf,
    next_offset: u64,
    /// Every record below this offset is handed to the flusher.
    sent_offset: u64,
    /// A sync through this offset has been requested.
    sync_requested: u64,
    poisoned: Option<String>,
    /// Dropping it finishes the queued jobs: declared before the lock, so
    /// that the directory is unlocked only after the last write.
    flusher: Flusher,
    /// Compresses sealed segments; dropped after the flusher (which holds
    /// its queue), before the lock.
    compressor: Option<Compressor>,
    /// The compaction turn: shared by the background compressions (which
    /// never take the same segment), taken alone by `compact_sealed`.
    compact_turn: Arc<RwLock<()>>,
    /// The `.segz` files of the directory: counted at open, and each
    /// compression adds the one it makes ([`Log::packed_segments`]).
    packed: Arc<Mutex<PackedSegments>>,
    _lock: LockGuard,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("segment", &self.base)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl Log {
    /// Opens (creating if needed, directory mode 0700) the log in `dir` for writing
    /// and recovers the tail of its last segment.
    ///
    /// Only the last segment is read. It is scanned from `scan_from` when that
    /// position lies in the last segment and a valid record starts there (an index
    /// checkpoint; pass the position of the last indexed record), otherwise from the
    /// segment start. A torn tail (invalid bytes with no valid record after them) is
    /// truncated; damage followed by valid records is kept and reported.
    ///
    /// New records only ever go into a segment whose header says this format
    /// version: a last segment of an older version (a log written before
    /// tallies) is left sealed as it is and a new segment started
    /// ([`Recovery::rolled_from_version`]), or, when it holds nothing, given
    /// a header of this version.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
        scan_from: Option<Position>,
    ) -> Result<(Log, Recovery)> {
        Log::open_with(StdVfs::shared(), dir, opts, scan_from)
    }

    /// [`Log::open`] on the file system `vfs`.
    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        opts: LogOptions,
        scan_from: Option<Position>,
    ) -> Result<(Log, Recovery)> {
        create_dir_durably(vfs.as_ref(), dir)?;
        vfs.check_private_dir(dir, false)?;
        let lock = vfs.lock_dir(dir)?;
        crate::compact::tidy(vfs.as_ref(), dir)?;
        let max_seg = MAX_SEGMENT_BYTES - u64::from(FRAME_HEADER_LEN + MAX_BODY_LEN) - 1;
        let opts = LogOptions {
            segment_bytes: opts.segment_bytes.clamp(u64::from(HEADER_LEN) + 1, max_seg),
            ..opts
        };
        // One listing, each file sized: the segments, the sealed ones to
        // compress, and the `.segz` already there (tidied above: no base
        // has both files now, and none goes away while the lock is held).
        let files = list_segment_file_lens(vfs.as_ref(), dir)?;
        // Each file is the segment its name says, or nothing is touched: a
        // renamed or copied segment's records would be taken for damage
        // (offsets going back), the last one's successor for missing, and
        // a `reindex` would leave them out for good (an outside audit).
        // One header read a segment.
        for &(base, kind, _) in &files {
            check_named_rightly(vfs.as_ref(), dir, base, kind)?;
        }
        let packed = Arc::new(Mutex::new(PackedSegments::of_listing(&files)));
        let last = files.last().map(|f| f.0);
        let previous = files.iter().rev().map(|f| f.0).find(|&b| Some(b) < last);
        let previous_end = || match previous {
            Some(p) => end_of_segment(&vfs, dir, p),
            None => Ok(None),
        };
        let (base, file, written, recovery) = match files.last().map(|f| (f.0, f.1)) {
            None => {
                let file = create_segment(vfs.as_ref(), dir, 0)?;
                (0, file, u64::from(HEADER_LEN), Recovery::default())
            }
            Some((base, Kind::Packed)) => {
                // Only sealed segments are compressed, and each after its
                // successor exists durably: the active `.seg` was removed.
                // The `.segz` stays as it is; appends go to a new segment
                // after its last record.
                let next = next_offset_after_packed(&vfs, dir, base, &previous_end)?;
                let file = create_segment(vfs.as_ref(), dir, next)?;
                let recovery = Recovery {
                    next_offset: next,
                    scanned_from: Position {
                        segment: next,
                        pos: HEADER_LEN,
                    },
                    resumed_after_packed: Some(base),
                    ..Recovery::default()
                };
                (next, file, u64::from(HEADER_LEN), recovery)
            }
            Some((base, Kind::Plain)) => {
                let r = recover_last(vfs.as_ref(), dir, base, scan_from, &previous_end)?;
                let mut recovery = r.recovery;
                match r.version {
                    Some(version) if version < FORMAT_VERSION => {
                        if r.len == u64::from(HEADER_LEN) {
                            // Holds nothing: it becomes a segment of this version.
                            let path = segment_path(dir, base);
                            rewrite_empty_segment(r.file.as_ref(), &path, base)?;
                            (base, r.file, r.len, recovery)
                        } else {
                            // Records of an older version stay where they
                            // are, sealed (recovery synced them); new
                            // records go to a segment of this version.
                            let next = recovery.next_offset;
                            let file = create_segment(vfs.as_ref(), dir, next)?;
                            recovery.rolled_from_version = Some(version);
                            (next, file, u64::from(HEADER_LEN), recovery)
                        }
                    }
                    // This version, or a damaged header (records after it
                    // are read as ever; its version is unknown).
                    _ => (base, r.file, r.len, recovery),
                }
            }
        };
        let next_offset = recovery.next_offset;
        let compact_turn = Arc::new(RwLock::new(()));
        let (compressor, sealed) = match opts.compression {
            Some(c) => {
                // Sealed segments left as `.seg` (an older archive, or a
                // writer that stopped before compressing them); a segment
                // recovery started is past them all.
                let queued = files
                    .iter()
                    .filter(|&&(b, k, _)| k == Kind::Plain && b < base)
                    .map(|&(b, _, _)| b)
                    .collect();
                let (compressor, tx) = Compressor::start(
                    Arc::clone(&vfs),
                    dir,
                    c,
                    opts.direct_io,
                    queued,
                    Arc::clone(&compact_turn),
                    Arc::clone(&packed),
                )?;
                (Some(compressor), Some(tx))
            }
            None => (None, None),
        };
        let flusher = Flusher::start(
            Arc::clone(&vfs),
            dir,
            base,
            file,
            written,
            opts,
            next_offset,
            sealed,
        )?;
        let log = Log {
            vfs,
            dir: dir.to_owned(),
            opts,
            _lock: lock,
            base,
            written,
            buf: FrameBuf::with_capacity(WRITE_BUFFER_BYTES),
            next_offset,
            sent_offset: next_offset,
            sync_requested: next_offset,
            poisoned: None,
            flusher,
            compressor,
            compact_turn,
            packed,
        };
        Ok((log, recovery))
    }

    /// Appends a record and returns its offset and position. The record is buffered
    /// in memory; it is durable once [`Log::flush`] returns an offset above it (or at
    /// once under [`FsyncPolicy::Always`]). Rolls to a new segment when needed.
    ///
    /// A record that breaks a format limit is rejected without changing the log,
    /// and so is any record after one claiming offset `u64::MAX`.
    pub fn append(&mut self, rec: &NewRecord<'_>) -> Result<(u64, Position)> {
        self.check_poisoned()?;
        let body_len = body_len(rec)?;
        // Only a damaged log whose CRCs still hold can claim the last offset.
        let next = self
            .next_offset
            .checked_add(1)
            .ok_or_else(|| LogError::OffsetsExhausted {
                dir: self.dir.clone(),
            })?;
        let frame_len = u64::from(FRAME_HEADER_LEN + body_len);
        let cur = self.end_pos();
        if cur > u64::from(HEADER_LEN) && cur + frame_len > self.opts.segment_bytes {
            self.roll()?;
        }
        let pos = self.end_pos();
        let position = Position {
            segment: self.base,
            // end_pos <= segment_bytes (clamped far below u32::MAX), or this is the
            // only record of a fresh segment (HEADER_LEN)
            pos: u32::try_from(pos).map_err(|_| LogError::Poisoned {
                reason: "segment position overflow".into(),
            })?,
        };
        // A frame that would not fit the buffer goes into the next one, so
        // that a buffer is never regrown (a copy of all it holds).
        if !matches!(self.opts.fsync, FsyncPolicy::Always)
            && self.buf.len() + frame_len as usize > WRITE_BUFFER_BYTES
        {
            self.send_buf()?;
        }
        if self.buf.is_empty() {
            self.buf.start(pos);
        }
        let offset = self.next_offset;
        encode_frame(self.buf.tail_mut(), offset, rec, body_len);
        self.next_offset = next;
        if matches!(self.opts.fsync, FsyncPolicy::Always) {
            self.flush()?;
        }
        Ok((offset, position))
    }

    /// Writes buffered records and makes them durable per the policy (`Batch`,
    /// `Always`: fsync; `Never`: write only). Returns the offset one past the last
    /// durable record.
    pub fn flush(&mut self) -> Result<u64> {
        let through = self.flush_nowait()?;
        self.wait_durable(through)
    }

    /// Starts making every record appended so far durable, without waiting:
    /// returns the offset to pass to [`Log::wait_durable`]. Appending can go
    /// on meanwhile.
    pub fn flush_nowait(&mut self) -> Result<u64> {
        self.check_poisoned()?;
        if self.sync_requested < self.next_offset || !self.buf.is_empty() {
            self.send_buf()?;
            let through = self.next_offset;
            self.submit(Job::Sync {
                through,
                durable: true,
            })?;
            self.sync_requested = through;
        }
        Ok(self.next_offset)
    }

    /// Blocks until every record below `through` (at most what has been
    /// flushed) is durable; returns the durable offset.
    pub fn wait_durable(&mut self, through: u64) -> Result<u64> {
        self.check_poisoned()?;
        let through = through.min(self.sync_requested);
        if let Err(e) = self.flusher.wait(through, Reached::Durable) {
            return Err(self.poison(e));
        }
        Ok(self.durable_offset())
    }

    /// A handle that blocks, on any thread, until records are durable: for
    /// work that must follow their fsync (an index checkpoint covering them)
    /// without holding up the appender. It waits for syncs already asked
    /// for ([`Log::flush_nowait`]).
    pub fn durable_waiter(&self) -> DurableWaiter {
        self.flusher.durable_waiter()
    }

    /// Blocks until the record at `offset` is in its segment file (readable
    /// by position), durable or not.
    pub fn wait_written(&mut self, offset: u64) -> Result<()> {
        self.check_poisoned()?;
        if offset >= self.sent_offset {
            self.send_buf()?;
        }
        let through = offset.saturating_add(1).min(self.sent_offset);
        if !self.flusher.has_reached(through, Reached::Written) {
            // Direct writes keep a partial block back until asked.
            self.submit(Job::Sync {
                through: self.sent_offset,
                durable: false,
            })?;
        }
        if let Err(e) = self.flusher.wait(through, Reached::Written) {
            return Err(self.poison(e));
        }
        Ok(())
    }

    /// Flushes and closes the log, returning the final durable offset.
    pub fn close(mut self) -> Result<u64> {
        self.flush()
    }

    /// The offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// One past the last record made durable by `flush` (or recovered at open).
    pub fn durable_offset(&self) -> u64 {
        self.flusher.durable()
    }

    /// The end of the data: where the next record goes unless it triggers a roll, in
    /// which case it goes to `Position { segment: next_offset(), pos: HEADER_LEN }`.
    pub fn end_position(&self) -> Position {
        Position {
            segment: self.base,
            pos: u32::try_from(self.end_pos()).unwrap_or(u32::MAX),
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The effective options (after clamping).
    pub fn options(&self) -> LogOptions {
        self.opts
    }

    /// Compresses every sealed segment still held as a `.seg` (all but the
    /// active one), one after the other; returns what was done to each.
    /// Readers, here and in other processes, go on reading meanwhile.
    ///
    /// It first flushes: a roll is only queued to the flusher, and a segment
    /// counts as sealed once its successor exists durably.
    pub fn compact_sealed(&mut self, c: Compression) -> Result<Vec<(u64, Compacted)>> {
        self.flush()?;
        let mut done = Vec::new();
        let mut work = Compactor::new(self.opts.direct_io);
        for (base, kind) in list_segment_files(self.vfs.as_ref(), &self.dir)? {
            if kind == Kind::Plain && base < self.base {
                let _turn = self.compact_turn.write().unwrap_or_else(|e| e.into_inner());
                done.push((
                    base,
                    compact_segment(
                        self.vfs.as_ref(),
                        &self.dir,
                        base,
                        c,
                        &AtomicBool::new(false),
                        &mut work,
                        &self.packed,
                    )?,
                ));
            }
        }
        Ok(done)
    }

    /// Writes again the damaged headers the files show, their records
    /// unchanged: of every sealed `.segz` whose header or block index is
    /// damaged while its file shows that every block was found and every
    /// block reads back (docs/FORMAT.md §1.7: the same frames at the same
    /// positions), and of every `.seg` whose header bytes are damaged while
    /// its first record names its base (§1.3). A file that lost records
    /// is left as it is.
    pub fn restore_headers(&mut self) -> Result<Vec<RewrittenHeader>> {
        let c = self.opts.compression.unwrap_or_default();
        let mut work = Compactor::new(self.opts.direct_io);
        let mut done = Vec::new();
        // Not beside the compressor, which reads sealed `.seg`s and renames
        // `.segz`s into place: the listing stays true while the lock is held.
        let _turn = self.compact_turn.write().unwrap_or_else(|e| e.into_inner());
        for (base, kind) in list_segment_files(self.vfs.as_ref(), &self.dir)? {
            let what = match kind {
                Kind::Packed if base < self.base => {
                    restore_container(self.vfs.as_ref(), &self.dir, base, c, &mut work)?
                }
                Kind::Packed => None,
                Kind::Plain => restore_plain_header(&self.vfs, &self.dir, base)?,
            };
            if let Some(what) = what {
                done.push(RewrittenHeader {
                    base,
                    compressed: kind == Kind::Packed,
                    what,
                });
            }
        }
        Ok(done)
    }

    /// Flushes, then compresses on the calling thread, beside the
    /// background compressor, every segment sealed so far (and those left
    /// as `.seg` by earlier writers) that it has not taken yet, and waits
    /// for the ones it has: when it returns, every sealed segment is a `.segz` unless
    /// it is damaged or its compression failed
    /// ([`Log::compression_failure`]). For a writer that ends with its
    /// work (a file import), so that the log it leaves is as compact as it
    /// will get; a writer that closes without it leaves the rest for the
    /// next one to open the log.
    pub fn wait_compressed(&mut self) -> Result<u64> {
        let (durable, drainer) = self.compression_drainer()?;
        if let Some(drainer) = drainer {
            drainer.drain();
        }
        Ok(durable)
    }

    /// Flushes, and returns the durable offset and a handle that does what
    /// [`Log::wait_compressed`] does after its flush on another thread, so
    /// that a writer can drain the compressor while it finishes other work
    /// (`None` without compression). Segments sealed after this call are
    /// not waited for.
    pub fn compression_drainer(&mut self) -> Result<(u64, Option<Drainer>)> {
        let durable = self.flush()?;
        Ok((durable, self.compressor.as_ref().map(Compressor::drainer)))
    }

    /// The compressed segments (`.segz`) in the directory as of now: those
    /// there when the log opened and those compressed since, each counted
    /// once its `.seg` is gone. Only this writer changes them while it runs.
    pub fn packed_segments(&self) -> PackedSegments {
        *self.packed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the background compressor has sealed segments to compress
    /// or is compressing one.
    pub fn compressing(&self) -> bool {
        self.compressor.as_ref().is_some_and(Compressor::busy)
    }

    /// The first background compression that failed, if any (that segment
    /// stays a `.seg` and is tried again at the next open).
    pub fn compression_failure(&self) -> Option<String> {
        self.compressor.as_ref().and_then(Compressor::failure)
    }

    /// A reader of this log; it sees everything flushed.
    pub fn reader(&self) -> LogReader {
        // The directory exists and is readable: `open` just listed it. Listing can
        // only fail now if it was removed underneath us; then the reader is empty.
        LogReader::open_with(Arc::clone(&self.vfs), &self.dir)
            .unwrap_or_else(|_| LogReader::empty(Arc::clone(&self.vfs), &self.dir))
    }

    fn end_pos(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn check_poisoned(&mut self) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(LogError::Poisoned {
                reason: reason.clone(),
            });
        }
        if self.flusher.failed() {
            let err = self.flusher.take_failure();
            return Err(self.poison(err));
        }
        Ok(())
    }

    fn poison(&mut self, err: LogError) -> LogError {
        if self.poisoned.is_none() {
            self.poisoned = Some(crate::error::display_chain(&err));
        }
        err
    }

    fn submit(&mut self, job: Job) -> Result<()> {
        self.flusher.submit(job).map_err(|e| self.poison(e))
    }

    /// Hands the buffered records to the flusher.
    fn send_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = self
            .flusher
            .spare_buffer()
            .unwrap_or_else(|| FrameBuf::with_capacity(WRITE_BUFFER_BYTES));
        let bytes = std::mem::replace(&mut self.buf, fresh);
        let len = bytes.len() as u64;
        self.submit(Job::Write {
            bytes,
            at: self.written,
            through: self.next_offset,
        })?;
        self.written += len;
        self.sent_offset = self.next_offset;
        Ok(())
    }

    /// Seals the active segment (write + fsync) and starts the next one.
    fn roll(&mut self) -> Result<()> {
        self.send_buf()?;
        let base = self.next_offset;
        self.submit(Job::Roll { base })?;
        self.sync_requested = base;
        self.base = base;
        self.written = u64::from(HEADER_LEN);
        Ok(())
    }
}

impl Drop for Log {
    /// Best effort: writes (and per policy fsyncs) buffered records. Call
    /// [`Log::flush`] to learn about errors.
    fn drop(&mut self) {
        if self.poisoned.is_none()
            && (self.sync_requested != self.next_offset || !self.buf.is_empty())
        {
            let _ = self.flush();
        }
    }
}
