//! Sequential scanning of segment files with damage detection and resynchronisation.
//!
//! Invariants:
//! - A record is returned only if its magic, length, CRC and body structure are all
//!   valid; everything else is reported as a [`Damage`] covering the skipped bytes.
//! - Every byte of a segment after the start position is either inside a returned
//!   record or inside exactly one reported `Damage` (nothing is skipped silently).
//! - After damage at `p` the scanner resumes at the first `q > p` where a complete
//!   frame with a valid CRC, a well-formed body and an offset not below the last
//!   good offset starts, so damage never hides the records after it.
//! - Reads are large sequential `pread`s into one reusable buffer; no per-record
//!   system call, no per-record allocation in the borrowed (`next_ref`) path.
//! - Every index into the buffer is checked; no byte pattern on disk can panic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::format::{
    decode_body, frame_crc, frame_header, Record, RecordRef, FRAME_HEADER_LEN, HEADER_LEN,
    MAX_BODY_LEN, MIN_BODY_LEN, RECORD_MAGIC,
};
use crate::segment::{
    list_segments, listed_between, misnamed, read_header, segment_file_name, segz_file_name,
    HeaderState, Kind,
};
use crate::vfs::Vfs;
use crate::window::{internal, Src, Window, READ_CHUNK, SHRANK};
use crate::Position;

/// Why a byte range was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DamageReason {
    /// The segment header is damaged (bad magic, CRC, or base offset).
    SegmentHeader(&'static str),
    /// A `.seg` header whose bytes are damaged (magic or CRC) while its
    /// first record names its base: `reindex` writes it again
    /// (docs/FORMAT.md §1.5; `verify` only, the scans say `SegmentHeader`).
    RewritableHeader(&'static str),
    /// No record magic where a record should start.
    BadMagic,
    /// The length field is outside `MIN_BODY_LEN..=MAX_BODY_LEN`.
    BadLength(u32),
    /// The length field points past the end of the segment.
    LengthPastEnd(u32),
    /// The CRC does not match.
    CrcMismatch,
    /// The CRC matches but the body is not well formed.
    Malformed(&'static str),
    /// An incomplete or invalid record at the end of the last segment with no valid
    /// record after it: a torn write (recovery truncates it).
    TruncatedTail,
    /// Invalid bytes at the end of a sealed (not last) segment.
    DamagedSegmentEnd,
    /// Bytes past the 4 GiB limit of a segment file.
    BeyondSegmentLimit,
    /// Offsets are not dense: a record (or segment base) skips offsets.
    OffsetGap {
        /// The offset that should have come next.
        expected: u64,
        /// The offset found.
        found: u64,
    },
    /// Offsets are not increasing: a record repeats or goes back.
    OffsetNotIncreasing {
        /// The offset that should have come next.
        expected: u64,
        /// The offset found.
        found: u64,
    },
    /// The file's well-formed header states another segment than its name
    /// (files renamed, or one copied into the log directory): its records
    /// are not read at this place (`verify` only; a writer refuses to open).
    Misnamed {
        /// The base its header states.
        holds: u64,
    },
    /// Part of a compressed segment (`.segz`) is damaged: a block (its
    /// records are lost), or its header or block index (nothing lost when
    /// the walk over the block headers found every block: 0 bytes skipped).
    Compressed {
        /// Where the damage is in the `.segz` file.
        file_pos: u64,
        /// What is wrong.
        what: &'static str,
        /// A damaged header or block index, the file showing that every
        /// block was found: `reindex` writes them again
        /// (docs/FORMAT.md §1.7).
        rewritable: bool,
    },
}

impl fmt::Display for DamageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DamageReason::SegmentHeader(what) => write!(f, "bad segment header: {what}"),
            DamageReason::RewritableHeader(what) => write!(
                f,
                "bad segment header: {what}; its first record names this segment: \
                 `ccvault reindex` writes the header again"
            ),
            DamageReason::BadMagic => f.write_str("bad record magic"),
            DamageReason::BadLength(len) => write!(f, "impossible record length {len}"),
            DamageReason::LengthPastEnd(len) => {
                write!(f, "record length {len} runs past the end of the segment")
            }
            DamageReason::CrcMismatch => f.write_str("CRC mismatch"),
            DamageReason::Malformed(what) => write!(f, "malformed record: {what}"),
            DamageReason::TruncatedTail => f.write_str("truncated tail"),
            DamageReason::DamagedSegmentEnd => f.write_str("damaged end of sealed segment"),
            DamageReason::BeyondSegmentLimit => f.write_str("data beyond the 4 GiB segment limit"),
            DamageReason::OffsetGap { expected, found } => write!(
                f,
                "offset gap: expected {expected}, found {found} ({} offsets missing)",
                found.saturating_sub(*expected)
            ),
            DamageReason::OffsetNotIncreasing { expected, found } => write!(
                f,
                "offset not increasing: expected {expected}, found {found}"
            ),
            DamageReason::Misnamed { holds } => write!(
                f,
                "the file holds the segment of base offset {holds} (its header says so, or its first record where the header is damaged), not the one its \
                 name gives: renamed, or copied into the log directory; its records are not read here \
                 (rename it to the name of offset {holds}, or move a copy out)"
            ),
            DamageReason::Compressed {
                file_pos,
                what,
                rewritable,
            } => {
                write!(f, "{what} (at byte {file_pos} of the compressed file)")?;
                if *rewritable {
                    f.write_str(
                        "; every block was found by its own header: `ccvault reindex` \
                         writes the header and block index again from them",
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl PartialEq<str> for DamageReason {
    fn eq(&self, other: &str) -> bool {
        self.to_string().as_str() == other
    }
}

impl PartialEq<&str> for DamageReason {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

/// A damaged byte range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Base offset of the segment (its file is [`Damage::file_name`]).
    pub segment: u64,
    /// Byte position of the damage in the segment: in a `.seg`, in the file;
    /// in a `.segz`, the position the bytes had in the `.seg` (the positions
    /// records keep; the reason names the position in the compressed file).
    pub pos: u64,
    /// Number of bytes skipped (0 for offset-order problems, which skip nothing).
    pub len_skipped: u64,
    /// What is wrong.
    pub reason: DamageReason,
    /// The segment is a compressed `.segz`.
    pub compressed: bool,
}

impl Damage {
    /// File name of the segment, e.g. `00000000000000000000.seg` (or
    /// `.segz` when it is compressed).
    pub fn file_name(&self) -> String {
        if self.compressed {
            segz_file_name(self.segment)
        } else {
            segment_file_name(self.segment)
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} byte {}: {} ({} bytes skipped)",
            self.file_name(),
            self.pos,
            self.reason,
            self.len_skipped
        )
    }
}

/// One item of a scan, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem {
    /// A valid record at its position.
    Record(Position, Record),
    /// A damaged range that was skipped.
    Damage(Damage),
}

/// One item of a scan, borrowing from the scan buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRef<'a> {
    /// A valid record at its position.
    Record(Position, RecordRef<'a>),
    /// A damaged range that was skipped.
    Damage(Damage),
}

impl ScanRef<'_> {
    /// Copies into an owned [`ScanItem`].
    pub fn to_item(&self) -> ScanItem {
        match self {
            ScanRef::Record(p, r) => ScanItem::Record(*p, r.to_record()),
            ScanRef::Damage(d) => ScanItem::Damage(d.clone()),
        }
    }
}

/// Outcome of checking the frame at one position.
enum Frame {
    /// A complete frame with a valid CRC and body; `len` is the frame length.
    Valid { len: u32, offset: u64 },
    /// Not a valid record.
    Invalid(DamageReason),
}

/// [`Window::fill`], or `false` when the last segment was cut short under
/// the read: the open of a writer (or of a reader repairing after a crash)
/// cuts a torn tail there, so the bytes gone were a torn tail's. A read
/// beside that open failed ("shrank while being read") until 2026-12-07.
fn fill_or_cut(win: &mut Window, src: &Src, p: u64, need: usize) -> Result<bool> {
    match win.fill(src, p, need) {
        Ok(()) => Ok(true),
        Err(LogError::Corrupt { what, .. }) if src.is_last && what == SHRANK => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks the frame at `p`: magic, length, CRC and body structure.
fn probe(win: &mut Window, src: &Src, p: u64) -> Result<Frame> {
    let remaining = src.len.saturating_sub(p);
    if remaining < u64::from(FRAME_HEADER_LEN)
        || !fill_or_cut(win, src, p, FRAME_HEADER_LEN as usize)?
    {
        return Ok(Frame::Invalid(DamageReason::TruncatedTail));
    }
    let Some((magic, body_len, crc)) =
        frame_header(win.slice(src, p, FRAME_HEADER_LEN as usize)?)
    else {
        return Err(internal(src, p));
    };
    if magic != RECORD_MAGIC {
        return Ok(Frame::Invalid(DamageReason::BadMagic));
    }
    if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Ok(Frame::Invalid(DamageReason::BadLength(body_len)));
    }
    let frame_len = FRAME_HEADER_LEN + body_len; // <= 64 MiB + 12, no overflow
    if u64::from(frame_len) > remaining {
        return Ok(Frame::Invalid(DamageReason::LengthPastEnd(body_len)));
    }
    if !fill_or_cut(win, src, p, frame_len as usize)? {
        return Ok(Frame::Invalid(DamageReason::TruncatedTail));
    }
    let frame = win.slice(src, p, frame_len as usize)?;
    let (len_bytes, body) = match (frame.get(4..8), frame.get(FRAME_HEADER_LEN as usize..)) {
        (Some(l), Some(b)) => (l, b),
        _ => return Err(internal(src, p)),
    };
    if frame_crc(len_bytes, body) != crc {
        return Ok(Frame::Invalid(DamageReason::CrcMismatch));
    }
    match decode_body(body) {
        Ok(r) => Ok(Frame::Valid {
            len: frame_len,
            offset: r.offset,
        }),
        Err(what) => Ok(Frame::Invalid(DamageReason::Malformed(what))),
    }
}

/// Finds the first position `>= from` holding a valid frame whose offset is at
/// least `min_offset`.
fn resync(win: &mut Window, src: &Src, from: u64, min_offset: u64) -> Result<Option<u64>> {
    let mut q = from;
    while q.saturating_add(u64::from(FRAME_HEADER_LEN)) <= src.len {
        let n = (src.len - q).min(READ_CHUNK as u64) as usize;
        if !fill_or_cut(win, src, q, n)? {
            // Cut short under the read: nothing valid past `q`.
            return Ok(None);
        }
        let hit = win
            .slice(src, q, n)?
            .windows(RECORD_MAGIC.len())
            .position(|w| w == RECORD_MAGIC);
        match hit {
            None => {
                // keep the last 3 bytes: a magic may straddle the chunk boundary
                q += (n as u64)
                    .saturating_sub(RECORD_MAGIC.len() as u64 - 1)
                    .max(1);
            }
            Some(i) => {
                let m = q + i as u64;
                if let Frame::Valid { offset, .. } = probe(win, src, m)? {
                    if offset >= min_offset {
                        return Ok(Some(m));
                    }
                }
                q = m + 1;
            }
        }
    }
    Ok(None)
}

/// One raw scan step (no borrowed data, so callers can loop freely).
pub(crate) enum Step {
    /// A valid record frame at `pos` of length `len` with `offset`.
    Record { pos: u64, len: u32, offset: u64 },
    /// A damaged range.
    Damage(Damage),
    /// End of this segment's data.
    End,
}

/// Scanning state inside one segment.
pub(crate) struct SegCursor {
    pub src: Src,
    pub pos: u64,
    /// Resynchronisation accepts only records with at least this offset.
    pub min_offset: u64,
    excess_reported: bool,
    /// The next hole of a `.segz` to report (`src.holes`).
    next_hole: usize,
    /// The end of the `.segz` block last found readable: positions before
    /// it need no check.
    prepared_to: u64,
}

impl SegCursor {
    pub fn new(src: Src, pos: u64) -> SegCursor {
        let min_offset = src.base;
        let pos = pos.max(u64::from(HEADER_LEN));
        // Holes before a start inside the segment are not this scan's.
        let next_hole = if pos > u64::from(HEADER_LEN) {
            src.holes.partition_point(|h| h.raw_pos < pos)
        } else {
            0
        };
        SegCursor {
            src,
            pos,
            min_offset,
            excess_reported: false,
            next_hole,
            prepared_to: 0,
        }
    }

    /// A damage of this segment.
    fn damage(&self, pos: u64, len_skipped: u64, reason: DamageReason) -> Damage {
        Damage {
            segment: self.src.base,
            pos,
            len_skipped,
            reason,
            compressed: self.src.packed,
        }
    }

    /// Checks the segment header; returns its damage, if any.
    pub fn header_damage(&self) -> Result<Option<Damage>> {
        let state = read_header(self.src.file.as_ref(), &self.src.path, self.src.base)?;
        let reason = match state {
            HeaderState::Ok { .. } => return Ok(None),
            HeaderState::Short if self.src.is_last => DamageReason::TruncatedTail,
            HeaderState::Short => DamageReason::SegmentHeader("segment shorter than its header"),
            HeaderState::Damaged(what) => DamageReason::SegmentHeader(what),
        };
        Ok(Some(self.damage(
            0,
            self.src.len.min(u64::from(HEADER_LEN)),
            reason,
        )))
    }

    /// Advances by one record or damaged range.
    pub fn step(&mut self, win: &mut Window) -> Result<Step> {
        let p = self.pos;
        if let Some(lazy) = self.src.lazy.as_ref().filter(|_| p >= self.prepared_to) {
            // A block of a `.segz` is checked when first read: learn of its
            // damage before reading any of its bytes (frames never cross
            // blocks), so it is reported here, where the scan meets it.
            let io = |e| LogError::io("reading", &self.src.path, e);
            self.prepared_to = lazy.prepare(p).map_err(io)?;
            for h in lazy.take_late_holes().map_err(io)? {
                let at = self
                    .src
                    .holes
                    .partition_point(|x| (x.raw_pos, x.raw_len) <= (h.raw_pos, h.raw_len))
                    .max(self.next_hole);
                self.src.holes.insert(at, h);
            }
        }
        if let Some(h) = self.src.holes.get(self.next_hole) {
            if p >= h.raw_pos {
                // A lost block of a `.segz`: its bytes are zeros, skip them.
                let d = self.damage(
                    h.raw_pos,
                    h.raw_len,
                    DamageReason::Compressed {
                        file_pos: h.file_pos,
                        what: h.what,
                        rewritable: h.rewritable,
                    },
                );
                self.next_hole += 1;
                self.pos = p.max(h.raw_pos + h.raw_len);
                return Ok(Step::Damage(d));
            }
        }
        if p >= self.src.len {
            if self.src.real_len > self.src.len && !self.excess_reported {
                self.excess_reported = true;
                return Ok(Step::Damage(self.damage(
                    self.src.len,
                    self.src.real_len - self.src.len,
                    DamageReason::BeyondSegmentLimit,
                )));
            }
            return Ok(Step::End);
        }
        match probe(win, &self.src, p)? {
            Frame::Valid { len, offset } => {
                self.pos = p + u64::from(len);
                self.min_offset = self.min_offset.max(offset.saturating_add(1));
                Ok(Step::Record {
                    pos: p,
                    len,
                    offset,
                })
            }
            Frame::Invalid(reason) => {
                let next = resync(win, &self.src, p + 1, self.min_offset)?;
                let (end, reason) = match next {
                    Some(q) => (q, reason),
                    None if self.src.is_last => (self.src.len, DamageReason::TruncatedTail),
                    None => (self.src.len, DamageReason::DamagedSegmentEnd),
                };
                self.pos = end;
                Ok(Step::Damage(self.damage(p, end - p, reason)))
            }
        }
    }

    /// Decodes the record returned by the last `Step::Record`.
    pub fn record<'w>(&self, win: &'w Window, pos: u64, len: u32) -> Result<RecordRef<'w>> {
        let frame = win.slice(&self.src, pos, len as usize)?;
        let body = frame
            .get(FRAME_HEADER_LEN as usize..)
            .ok_or_else(|| internal(&self.src, pos))?;
        decode_body(body).map_err(|what| LogError::Corrupt {
            file: self.src.path.clone(),
            pos,
            what: what.into(),
        })
    }

    /// The position of a record as a [`Position`].
    pub fn position(&self, pos: u64) -> Position {
        // pos < src.len <= MAX_SEGMENT_BYTES = u32::MAX
        Position {
            segment: self.src.base,
            pos: u32::try_from(pos).unwrap_or(u32::MAX),
        }
    }
}

/// The damage of a segment file whose well-formed header states another
/// segment than its name (renamed, or copied into the log directory): one
/// for the whole file, none of whose records are read there. Read, they
/// would be another place's records: offsets going back, or records filling
/// the gap a missing segment left, which `verify` would not count (an
/// outside audit: `export` printed 7,369 records of a swapped `.segz` that
/// `verify` reported as not read).
pub(crate) fn misnamed_damage(vfs: &dyn Vfs, dir: &Path, src: &Src) -> Result<Option<Damage>> {
    let kind = if src.packed {
        Kind::Packed
    } else {
        Kind::Plain
    };
    Ok(misnamed(vfs, dir, src.base, kind)?.map(|holds| Damage {
        segment: src.base,
        pos: 0,
        len_skipped: src.file_bytes,
        reason: DamageReason::Misnamed { holds },
        compressed: src.packed,
    }))
}

/// Iterator over the records and damage of a log, in log order across segments.
///
/// Yields `Result<ScanItem, LogError>`; an `Err` (I/O error, unsupported version)
/// ends the scan. Use [`Scan::next_ref`] to avoid allocating per record.
pub struct Scan {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segments: Vec<u64>,
    /// Index in `segments` of the next segment to open.
    next_idx: usize,
    /// Start position inside the first segment scanned.
    first_pos: Option<(u64, u64)>,
    cur: Option<SegCursor>,
    win: Window,
    done: bool,
    /// Whether to pick up segments created after the listing.
    follow: bool,
    /// Whether to read the directory again at the end of the last listed
    /// segment, to learn whether a writer has sealed it (see `grew`).
    relist: bool,
    /// The offset after the last record read: the base of the segment
    /// that follows, in a log without damage.
    next_offset: Option<u64>,
}

impl Scan {
    pub(crate) fn new(vfs: Arc<dyn Vfs>, dir: PathBuf, segments: Vec<u64>, from: Position) -> Scan {
        // Start in the segment whose base is `from.segment`; if there is none, in
        // the first segment after it.
        let next_idx = segments.partition_point(|&b| b < from.segment);
        let first_pos = match segments.get(next_idx) {
            Some(&b) if b == from.segment => Some((b, u64::from(from.pos))),
            _ => None,
        };
        Scan {
            vfs,
            dir,
            segments,
            next_idx,
            first_pos,
            cur: None,
            win: Window::new(),
            done: false,
            follow: true,
            relist: true,
            next_offset: None,
        }
    }

    /// A scan of the segments in `segments` only, as that listing left the
    /// log: it neither follows into segments created since nor lists the
    /// directory again, and reads the last listed segment to its end as of
    /// when it gets there. What it yields is what a scan would that had
    /// listed the directory at that listing's moment and met no writer
    /// sealing the last segment since: a dense prefix of the log still.
    pub(crate) fn as_listed(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        segments: Vec<u64>,
        from: Position,
    ) -> Scan {
        let mut scan = Scan::new(vfs, dir, segments, from);
        scan.follow = false;
        scan.relist = false;
        scan
    }

    /// A scan of the one segment `base` from `pos`, ending at its end.
    pub(crate) fn single(vfs: Arc<dyn Vfs>, dir: PathBuf, base: u64, pos: u32) -> Scan {
        let mut scan = Scan::new(vfs, dir, vec![base], Position { segment: base, pos });
        scan.follow = false;
        scan
    }

    /// Opens the next segment; returns a header damage to report, if any.
    fn open_next(&mut self) -> Result<Option<Option<Damage>>> {
        if self.next_idx >= self.segments.len() {
            if !self.follow {
                return Ok(None);
            }
            // Pick up segments a concurrent writer created since the listing.
            let last = self.segments.last().copied();
            let fresh = list_segments(self.vfs.as_ref(), &self.dir)?;
            self.segments = fresh;
            self.next_idx = match last {
                Some(l) => self.segments.partition_point(|&b| b <= l),
                None => 0,
            };
            if self.next_idx >= self.segments.len() {
                return Ok(None);
            }
        }
        let mut base = self.segments[self.next_idx];
        // A listing can lack segments a writer created and compressed
        // while it ran (`listed_between`): found by the gap they leave
        // between the offsets read and the next base, and read in order.
        // Only past the segment read last: a damaged log's offsets may run
        // back into a segment already read.
        let after_last_read = self
            .next_idx
            .checked_sub(1)
            .and_then(|i| self.segments.get(i))
            .map_or(0, |&b| b.saturating_add(1));
        let next = self.next_offset.map(|next| next.max(after_last_read));
        if let Some(next) = next.filter(|&next| next < base) {
            let missed = listed_between(self.vfs.as_ref(), &self.dir, next, base)?;
            if let Some(&first) = missed.first() {
                self.segments
                    .splice(self.next_idx..self.next_idx, missed.iter().copied());
                base = first;
            }
        }
        self.next_idx += 1;
        let is_last = self.next_idx == self.segments.len();
        let src = Src::open(self.vfs.as_ref(), &self.dir, base, is_last)?;
        let start = match self.first_pos.take() {
            Some((b, p)) if b == base => p,
            _ => 0,
        };
        if let Some(d) = misnamed_damage(self.vfs.as_ref(), &self.dir, &src)? {
            return Ok(Some(Some(d)));
        }
        let cur = SegCursor::new(src, start);
        let damage = if start < u64::from(HEADER_LEN) {
            cur.header_damage()?
        } else {
            // still refuse other format versions
            read_header(cur.src.file.as_ref(), &cur.src.path, base)?;
            None
        };
        self.cur = Some(cur);
        Ok(Some(damage))
    }

    /// When the current (last) segment seems to end, checks whether a concurrent
    /// writer has since added data or sealed it; returns true to keep scanning it.
    fn grew(&mut self) -> Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        if !cur.src.is_last {
            return Ok(false);
        }
        if !self.relist {
            return cur.src.restat();
        }
        // List first: a segment created after this one proves it is complete, so
        // the length read afterwards is final.
        let fresh = list_segments(self.vfs.as_ref(), &self.dir)?;
        let base = cur.src.base;
        let sealed = fresh.iter().any(|&b| b > base);
        let grew = cur.src.restat()?;
        if sealed {
            cur.src.is_last = false;
            // Keep the listing that proved it: the next segment is in it.
            if self.follow {
                self.next_idx = fresh.partition_point(|&b| b <= base);
                self.segments = fresh;
            }
        }
        Ok(grew || sealed)
    }

    /// Ends the scan after the current item: no more records, no more segments.
    fn end_here(&mut self) {
        self.cur = None;
        self.follow = false;
        self.next_idx = self.segments.len();
    }

    fn next_raw(&mut self) -> Result<Option<(u64, u32, Option<Damage>)>> {
        loop {
            if self.cur.is_none() {
                match self.open_next()? {
                    None => return Ok(None),
                    Some(Some(d)) => return Ok(Some((0, 0, Some(self.ends_if_torn(d))))),
                    Some(None) => {}
                }
            }
            let Some(cur) = self.cur.as_mut() else {
                continue;
            };
            let before = cur.pos;
            match cur.step(&mut self.win)? {
                Step::Record { pos, len, offset } => {
                    self.next_offset = Some(offset.saturating_add(1));
                    return Ok(Some((pos, len, None)));
                }
                Step::Damage(d) => {
                    if d.reason == DamageReason::TruncatedTail && self.grew()? {
                        if let Some(cur) = self.cur.as_mut() {
                            cur.pos = before;
                        }
                        continue;
                    }
                    return Ok(Some((0, 0, Some(self.ends_if_torn(d)))));
                }
                Step::End => {
                    if self.grew()? {
                        continue;
                    }
                    match &self.cur {
                        // The end of the data as of now: a segment listed later
                        // may only be followed into once this one is sealed, or
                        // records the writer adds to it meanwhile would be skipped.
                        Some(cur) if cur.src.is_last => self.end_here(),
                        _ => self.cur = None,
                    }
                }
            }
        }
    }

    /// A torn tail is the end of what is readable now, so it ends the scan. The
    /// writer may complete it a moment later, but its bytes were reported as
    /// damage: going on from the middle of that record would misread the rest.
    fn ends_if_torn(&mut self, d: Damage) -> Damage {
        if d.reason == DamageReason::TruncatedTail {
            self.end_here();
        }
        d
    }

    /// Next item, borrowing record fields from the scan buffer (no allocation).
    pub fn next_ref(&mut self) -> Option<Result<ScanRef<'_>>> {
        if self.done {
            return None;
        }
        match self.next_raw() {
            Ok(None) => {
                self.done = true;
                None
            }
            Ok(Some((_, _, Some(d)))) => Some(Ok(ScanRef::Damage(d))),
            Ok(Some((pos, len, None))) => {
                let Some(cur) = self.cur.as_ref() else {
                    self.done = true;
                    return None;
                };
                let position = cur.position(pos);
                Some(
                    cur.record(&self.win, pos, len)
                        .map(|r| ScanRef::Record(position, r)),
                )
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for Scan {
    type Item = Result<ScanItem>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_ref().map(|r| r.map(|item| item.to_item()))
    }
}
