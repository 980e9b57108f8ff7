//! Read-only access to a log, safe alongside a running writer (even in another
//! process).
//!
//! Invariants:
//! - A reader never takes the writer lock and never modifies a file.
//! - Random reads use `pread` on shared file handles, at most [`OPEN_FILES`]
//!   held open (the least recently read let go first; all of them when the
//!   descriptors run out); the segment list is re-read
//!   from the directory on demand, so a reader sees segments a writer added later.
//!   Only `listed_segments`, `scan_listed` and `footprint_listed` keep to
//!   the last listing (for a look right after opening); they say so, and
//!   what a scan then misses.
//! - `read_at` returns a record only if its magic, length, CRC and body are valid;
//!   otherwise it returns an error naming the file and byte position. In a
//!   compressed segment it reads and decompresses the one block holding the
//!   position (its block CRC checked first); a damaged block is an error
//!   naming the `.segz` and the block's place in it.
//! - A scan alongside a writer yields a dense prefix of the log: it follows into
//!   a later segment only once the current one is sealed, and it ends at the end
//!   of the last segment's data, or at a torn record being written (reported as a
//!   "truncated tail"), never resuming past either.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{LogError, Result};
use crate::format::{
    decode_body, frame_crc, frame_header, Record, FRAME_HEADER_LEN, HEADER_LEN, MAX_BODY_LEN,
    MIN_BODY_LEN, RECORD_MAGIC,
};
use crate::scan::{Scan, ScanRef};
use crate::segment::{
    list_segment_file_lens, list_segment_files, open_segment, read_full_at, read_header,
    segment_path, segz_path, Kind, PackedSegments,
};
use crate::segz::{self, Table};
use crate::vfs::{StdVfs, Vfs, VfsFile};
use crate::Position;

/// Bytes read speculatively by `read_at`; most records fit in one `pread`.
const READ_AHEAD: usize = 4096;

/// Segment files a reader holds open at most. Reads by position reach any
/// segment (a re-import's duplicate checks read the segments of the copies
/// they find): holding each one met until the reader was dropped ran a
/// long writer out of descriptors on an archive of a thousand segments,
/// and `ulimit -n` is often 1024 (outside audit, 2026-12-07). Reopening a
/// `.segz` costs one read of its block table.
const OPEN_FILES: usize = 64;

/// The segment files held open, with when each was last read (a counter).
#[derive(Default)]
struct OpenFiles {
    by_base: HashMap<u64, (Seg, u64)>,
    clock: u64,
}

impl OpenFiles {
    fn get(&mut self, base: u64) -> Option<Seg> {
        self.clock += 1;
        let clock = self.clock;
        self.by_base.get_mut(&base).map(|(seg, used)| {
            *used = clock;
            seg.clone()
        })
    }

    /// Holds `seg` open, letting the least recently read file go first
    /// when [`OPEN_FILES`] are held (its descriptor closes once no read
    /// in flight holds it).
    fn insert(&mut self, base: u64, seg: Seg) {
        if self.by_base.len() >= OPEN_FILES {
            if let Some(&oldest) = self
                .by_base
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(b, _)| b)
            {
                self.by_base.remove(&oldest);
            }
        }
        self.clock += 1;
        self.by_base.insert(base, (seg, self.clock));
    }
}

/// Read-only handle on a log directory. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Inner>,
}

struct Inner {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    /// The last listing of the directory.
    listed: Mutex<Listed>,
    /// Segment files held open for reads by position, at most
    /// [`OPEN_FILES`]: the least recently read one is let go past that.
    files: Mutex<OpenFiles>,
    /// The blocks of `.segz` files decompressed last (segment, block start):
    /// reads by position mostly come in log order (a duplicate check of a
    /// re-imported file, an interaction's events), so one decompression of a
    /// block serves all its records.
    blocks: Mutex<VecDeque<CachedBlock>>,
}

/// A listing of the log directory.
#[derive(Default)]
struct Listed {
    /// Base offsets of the segments, sorted.
    bases: Vec<u64>,
    /// Every segment file, sorted by base, a base's `.seg` before its
    /// `.segz` (both while a compression finishes).
    files: Vec<(u64, Kind)>,
}

impl Listed {
    fn of(files: Vec<(u64, Kind)>) -> Listed {
        let mut bases: Vec<u64> = files.iter().map(|&(b, _)| b).collect();
        bases.dedup();
        Listed { bases, files }
    }
}

/// A decompressed block: segment base, block start, bytes.
type CachedBlock = (u64, u32, Arc<Vec<u8>>);

/// Decompressed blocks a reader keeps (at most 256 KiB each by default).
const CACHED_BLOCKS: usize = 8;

/// An open segment file.
#[derive(Clone)]
enum Seg {
    Plain(Arc<dyn VfsFile>),
    /// A `.segz` with its block table (read once per reader).
    Packed(Arc<dyn VfsFile>, Arc<Table>),
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl LogReader {
    /// Opens the log in `dir` for reading. The directory must exist.
    pub fn open(dir: &Path) -> Result<LogReader> {
        LogReader::open_with(StdVfs::shared(), dir)
    }

    /// [`LogReader::open`] on the file system `vfs`.
    pub fn open_with(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<LogReader> {
        let listed = Listed::of(list_segment_files(vfs.as_ref(), dir)?);
        Ok(LogReader {
            inner: Arc::new(Inner {
                vfs,
                dir: dir.to_owned(),
                listed: Mutex::new(listed),
                files: Mutex::new(OpenFiles::default()),
                blocks: Mutex::new(VecDeque::new()),
            }),
        })
    }

    pub(crate) fn empty(vfs: Arc<dyn Vfs>, dir: &Path) -> LogReader {
        LogReader {
            inner: Arc::new(Inner {
                vfs,
                dir: dir.to_owned(),
                listed: Mutex::new(Listed::default()),
                files: Mutex::new(OpenFiles::default()),
                blocks: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Base offsets of the segments, sorted, freshly listed from the directory.
    pub fn segments(&self) -> Vec<u64> {
        match list_segment_files(self.inner.vfs.as_ref(), &self.inner.dir) {
            Ok(files) => {
                let fresh = Listed::of(files);
                let bases = fresh.bases.clone();
                if let Ok(mut s) = self.inner.listed.lock() {
                    *s = fresh;
                }
                bases
            }
            // An unreadable directory: fall back to the last known listing.
            Err(_) => self.listed_segments(),
        }
    }

    /// Base offsets of the segments as last listed (by [`LogReader::open`]
    /// or the last [`LogReader::segments`]), without reading the directory:
    /// each listing is one pass over the whole directory, ~0.1 ms at 400
    /// segments (docs/BENCHMARKS.md, "What grows in opening"). Every segment
    /// listed is still there (segments are never removed, and compressing
    /// one keeps its base); segments a writer created since may be missing.
    pub fn listed_segments(&self) -> Vec<u64> {
        self.inner
            .listed
            .lock()
            .map(|s| s.bases.clone())
            .unwrap_or_default()
    }

    /// Of the listing [`LogReader::listed_segments`] gives: how many
    /// segments are compressed (`.segz`), and whether a segment of base
    /// `base` is there in either form.
    pub fn listed_packed_and_has(&self, base: u64) -> (u64, bool) {
        self.inner.listed.lock().map_or((0, true), |s| {
            let mut packed: Vec<u64> = s
                .files
                .iter()
                .filter(|&&(_, kind)| kind == Kind::Packed)
                .map(|&(b, _)| b)
                .collect();
            packed.dedup();
            (packed.len() as u64, s.bases.binary_search(&base).is_ok())
        })
    }

    /// The compressed segments of a fresh listing, as a writer counts them
    /// ([`crate::Log::packed_segments`]): what `verify` holds the index's
    /// record of them to.
    pub fn packed_listed(&self) -> Result<PackedSegments> {
        let files = list_segment_file_lens(self.inner.vfs.as_ref(), &self.inner.dir)?;
        Ok(PackedSegments::of_listing(&files))
    }

    /// Total size in bytes of all segment files, as stored (a compressed
    /// segment counts its compressed length).
    pub fn total_bytes(&self) -> u64 {
        self.footprint().1
    }

    /// The number of segments and their total size in bytes as stored,
    /// from one fresh listing that reads each file's length as it goes
    /// (`Vfs::list_dir_lens`). A segment listed as both `.seg` and `.segz`
    /// (a compression finishing) counts its `.seg`, the file
    /// [`LogReader::read_at`] reads; a file gone by the time its length was
    /// read counts the segment's other file.
    pub fn footprint(&self) -> (u64, u64) {
        let vfs = self.inner.vfs.as_ref();
        let dir = &self.inner.dir;
        let Ok(files) = list_segment_file_lens(vfs, dir) else {
            // An unreadable directory: what the last listing knew.
            let known = self.listed_segments();
            let bytes = known
                .iter()
                .filter_map(|&b| segment_len(vfs, dir, b, Kind::Plain))
                .sum();
            return (known.len() as u64, bytes);
        };
        let mut bytes = 0;
        for (i, &(base, kind, len)) in files.iter().enumerate() {
            // Sorted by base, the `.seg` first: a base listed twice is sized once.
            if i > 0 && files[i - 1].0 == base {
                continue;
            }
            bytes += len
                .or_else(|| segment_len(vfs, dir, base, kind))
                .unwrap_or(0);
        }
        let listed = Listed::of(files.into_iter().map(|(b, k, _)| (b, k)).collect());
        let count = listed.bases.len() as u64;
        if let Ok(mut s) = self.inner.listed.lock() {
            *s = listed;
        }
        (count, bytes)
    }

    /// [`LogReader::footprint`] as of the last listing (the open's), with
    /// the `.segz` files `known` counts sized by it instead of one `stat`
    /// each: the same answer, without listing again or a `stat` per
    /// segment (docs/BENCHMARKS.md, "`stats` without a `stat` per
    /// segment"). `known` (the store keeps it in the index,
    /// [`crate::Log::packed_segments`]) must have been taken before the
    /// listing: every `.segz` it counts is then listed (a `.segz` is never
    /// removed nor changed once in place), as the first `known.count` of
    /// the listing's bases that have a `.segz` only, unless compressions
    /// since it went in a base order other than the log's (a writer that
    /// reopened and compressed a `.seg` left behind). Those bases' summed
    /// [`PackedSegments::mix`] must equal `known.bases`; when they do not
    /// (or without `known`: an index written before it was kept) the
    /// directory is listed and every file sized ([`LogReader::footprint`]).
    /// The other files (the `.seg` ones, any `.segz` compressed since) are
    /// sized one `stat` each, the `.seg` first while a base has both.
    pub fn footprint_listed(&self, known: Option<PackedSegments>) -> (u64, u64) {
        let Some(known) = known else {
            return self.footprint();
        };
        let files = self
            .inner
            .listed
            .lock()
            .map(|s| s.files.clone())
            .unwrap_or_default();
        let mut seen = PackedSegments::default();
        let mut rest = Vec::new();
        let mut count = 0u64;
        for (i, &(base, kind)) in files.iter().enumerate() {
            if i > 0 && files[i - 1].0 == base {
                continue;
            }
            count += 1;
            // Sorted `.seg` first: a base first listed as a `.segz` has no `.seg`.
            if kind == Kind::Packed && seen.count < known.count {
                seen.add(base, 0);
            } else {
                rest.push((base, kind));
            }
        }
        if (seen.count, seen.bases) != (known.count, known.bases) {
            return self.footprint();
        }
        let (vfs, dir) = (self.inner.vfs.as_ref(), &self.inner.dir);
        let rest_bytes: u64 = rest
            .iter()
            .filter_map(|&(base, kind)| segment_len(vfs, dir, base, kind))
            .sum();
        (count, known.bytes + rest_bytes)
    }

    fn file(&self, base: u64) -> Result<Seg> {
        if let Some(f) = self.inner.files.lock().ok().and_then(|mut m| m.get(base)) {
            return Ok(f);
        }
        // A new file is about to be held: the `.seg` files compressed away
        // since are let go first, so that a reader kept for a long time
        // holds no more than the files it reads.
        self.drop_replaced();
        let opened = match open_segment(self.inner.vfs.as_ref(), &self.inner.dir, base) {
            // Out of descriptors (the process's or the system's): the files
            // this reader holds are let go, and the open tried once more.
            Err(LogError::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) =>
            {
                if let Ok(mut files) = self.inner.files.lock() {
                    files.by_base.clear();
                }
                open_segment(self.inner.vfs.as_ref(), &self.inner.dir, base)
            }
            opened => opened,
        };
        let Some((file, path, kind)) = opened? else {
            return Err(LogError::NoRecord {
                file: segment_path(&self.inner.dir, base),
                pos: 0,
                what: "no such segment".into(),
            });
        };
        let seg = match kind {
            Kind::Plain => {
                // Refuse other format versions; a damaged header does not prevent
                // reading the (self-validating) records.
                read_header(file.as_ref(), &path, base)?;
                Seg::Plain(file)
            }
            Kind::Packed => {
                let table = segz::load_table(file.as_ref(), &path, base)?;
                // The frames' own format version, as for a `.seg`.
                read_header(
                    &segz::Image::whole(Arc::new(table.seg_header.to_vec())),
                    &path,
                    base,
                )?;
                Seg::Packed(file, Arc::new(table))
            }
        };
        if let Ok(mut m) = self.inner.files.lock() {
            m.insert(base, seg.clone());
        }
        Ok(seg)
    }

    /// Lets go of every `.seg` held open whose file is gone (compressed to
    /// a `.segz` and removed): a removed file's disk space is freed only
    /// once no one holds it, so a process that keeps its reader (a long
    /// `ingest`, which reads its log to confirm duplicates) held each
    /// sealed segment's uncompressed bytes, and a descriptor, until it
    /// ended, and stopped once the descriptors ran out. A later read of
    /// that segment opens its `.segz`.
    pub fn drop_replaced(&self) {
        let Ok(mut files) = self.inner.files.lock() else {
            return;
        };
        let (vfs, dir) = (self.inner.vfs.as_ref(), &self.inner.dir);
        files.by_base.retain(|&base, (seg, _)| match seg {
            Seg::Plain(_) => vfs.file_len(&segment_path(dir, base)).is_ok(),
            Seg::Packed(..) => true,
        });
    }

    /// The length of segment `base`'s data (its `.seg` file, or the `.seg`
    /// its `.segz` was made from): where a position of it ends.
    pub fn segment_data_len(&self, base: u64) -> Result<u64> {
        match self.file(base)? {
            Seg::Plain(file) => file.size().map_err(|e| {
                LogError::io(
                    "reading the size of",
                    segment_path(&self.inner.dir, base),
                    e,
                )
            }),
            Seg::Packed(_, table) => Ok(table.seg_len),
        }
    }

    /// Reads the record at `at`, checking magic, length, CRC and body.
    pub fn read_at(&self, at: Position) -> Result<Record> {
        let pos = u64::from(at.pos);
        if at.pos < HEADER_LEN {
            return Err(LogError::NoRecord {
                file: segment_path(&self.inner.dir, at.segment),
                pos,
                what: "position is inside the segment header".into(),
            });
        }
        match self.file(at.segment)? {
            Seg::Plain(file) => read_plain(
                file.as_ref(),
                &segment_path(&self.inner.dir, at.segment),
                pos,
            ),
            Seg::Packed(file, table) => self.read_packed(
                file.as_ref(),
                &table,
                &segz_path(&self.inner.dir, at.segment),
                at.segment,
                pos,
            ),
        }
    }

    /// Reads the record at segment position `pos` of the `.segz` `file`:
    /// one block read and decompressed, unless it is cached.
    fn read_packed(
        &self,
        file: &dyn VfsFile,
        table: &Table,
        path: &Path,
        base: u64,
        pos: u64,
    ) -> Result<Record> {
        let corrupt = |what: String| LogError::Corrupt {
            file: path.to_owned(),
            pos,
            what,
        };
        let Some(block) = table.block_at(pos) else {
            if pos >= table.seg_len {
                return Err(LogError::NoRecord {
                    file: path.to_owned(),
                    pos,
                    what: "position is at or past the end of the segment data".into(),
                });
            }
            let hole = table
                .holes
                .iter()
                .find(|h| h.raw_pos <= pos && pos < h.raw_pos + h.raw_len);
            return Err(corrupt(match hole {
                Some(h) => format!("{} (at byte {} of the compressed file)", h.what, h.file_pos),
                None => "no block of the compressed segment holds this position".into(),
            }));
        };
        let cached = self.inner.blocks.lock().ok().and_then(|c| {
            c.iter()
                .find(|(b, p, _)| *b == base && *p == block.raw_pos)
                .map(|(_, _, raw)| Arc::clone(raw))
        });
        let raw = match cached {
            Some(raw) => raw,
            None => {
                let raw = Arc::new(segz::read_block(file, path, block)?.map_err(|what| {
                    corrupt(format!(
                        "{what} (block at byte {} of the compressed file)",
                        block.file_pos
                    ))
                })?);
                if let Ok(mut c) = self.inner.blocks.lock() {
                    if c.len() >= CACHED_BLOCKS {
                        c.pop_front();
                    }
                    c.push_back((base, block.raw_pos, Arc::clone(&raw)));
                }
                raw
            }
        };
        let at = usize::try_from(pos - u64::from(block.raw_pos)).unwrap_or(usize::MAX);
        let bytes = raw.get(at..).unwrap_or(&[]);
        let frame_len = frame_len(bytes).map_err(corrupt)?;
        let frame = bytes.get(..frame_len).ok_or_else(|| {
            corrupt(format!(
                "record of {frame_len} bytes runs past the end of its block"
            ))
        })?;
        decode_frame(frame).map_err(corrupt)
    }

    /// Scans records and damage from `from` to the end of the data present, in log
    /// order across segments. `Position::default()` scans the whole log.
    pub fn scan(&self, from: Position) -> Scan {
        Scan::new(
            Arc::clone(&self.inner.vfs),
            self.inner.dir.clone(),
            self.segments(),
            from,
        )
    }

    /// A scan from `from` of the log as the last listing
    /// ([`LogReader::listed_segments`]) knew it, without reading the
    /// directory again: for a look right after opening, where each listing
    /// costs as much as the open's. It does not follow into segments
    /// created since that listing, and reads the last listed segment to its
    /// end as of when it gets there (`Scan::as_listed`). A listing without
    /// `from`'s segment is not used (the scan would start that segment at
    /// its beginning): the directory is listed afresh then.
    pub fn scan_listed(&self, from: Position) -> Scan {
        let listed = self.listed_segments();
        let segments = if listed.binary_search(&from.segment).is_ok() {
            listed
        } else {
            self.segments()
        };
        Scan::as_listed(
            Arc::clone(&self.inner.vfs),
            self.inner.dir.clone(),
            segments,
            from,
        )
    }

    /// [`LogReader::scan_with`] over the one segment `base`, from `pos` (0:
    /// its start) to its end. Segments are separate files, so threads can
    /// scan different segments at once.
    pub fn scan_segment_with<E, C, F>(
        &self,
        base: u64,
        pos: u32,
        f: F,
    ) -> std::result::Result<(), E>
    where
        E: From<LogError>,
        C: ScanControl,
        F: FnMut(ScanRef<'_>) -> std::result::Result<C, E>,
    {
        for_each_ref(
            Scan::single(
                Arc::clone(&self.inner.vfs),
                self.inner.dir.clone(),
                base,
                pos,
            ),
            f,
        )
    }

    /// Fast scan: calls `f` for every record (borrowed, no allocation) and every
    /// damaged range from `from` to the end of the data present. Reads segments with
    /// large sequential reads. Stops at the first error (from the log or from `f`),
    /// or early, with `Ok`, when `f` returns [`ControlFlow::Break`].
    pub fn scan_with<E, C, F>(&self, from: Position, f: F) -> std::result::Result<(), E>
    where
        E: From<LogError>,
        C: ScanControl,
        F: FnMut(ScanRef<'_>) -> std::result::Result<C, E>,
    {
        for_each_ref(self.scan(from), f)
    }
}

/// Reads the record at byte `pos` of the `.seg` file `file`.
fn read_plain(file: &dyn VfsFile, path: &Path, pos: u64) -> Result<Record> {
    let corrupt = |what: String| LogError::Corrupt {
        file: path.to_owned(),
        pos,
        what,
    };
    let mut buf = vec![0u8; READ_AHEAD];
    let got = read_full_at(file, path, &mut buf, pos)?;
    if got == 0 {
        return Err(LogError::NoRecord {
            file: path.to_owned(),
            pos,
            what: "position is at or past the end of the segment data".into(),
        });
    }
    let frame_len = frame_len(buf.get(..got).unwrap_or(&[])).map_err(corrupt)?;
    if frame_len > got {
        buf.resize(frame_len, 0);
        let more = buf.get_mut(got..).unwrap_or(&mut []);
        let n = read_full_at(file, path, more, pos + got as u64)?;
        if got + n < frame_len {
            return Err(corrupt(format!(
                "record of {frame_len} bytes is cut off by the end of the file"
            )));
        }
    }
    decode_frame(buf.get(..frame_len).unwrap_or(&[])).map_err(corrupt)
}

/// The length of the frame `bytes` start with, from its header (magic and
/// length checked).
fn frame_len(bytes: &[u8]) -> std::result::Result<usize, String> {
    let Some((magic, body_len, _)) = frame_header(bytes) else {
        return Err(format!(
            "incomplete record header ({} bytes before end of file)",
            bytes.len()
        ));
    };
    if magic != RECORD_MAGIC {
        return Err("no record starts here (bad record magic)".into());
    }
    if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Err(format!("impossible record length {body_len}"));
    }
    Ok((FRAME_HEADER_LEN + body_len) as usize)
}

/// Checks the CRC and body of one whole frame and decodes it.
fn decode_frame(frame: &[u8]) -> std::result::Result<Record, String> {
    let (Some((_, _, crc)), Some(len_bytes), Some(body)) = (
        frame_header(frame),
        frame.get(4..8),
        frame.get(FRAME_HEADER_LEN as usize..),
    ) else {
        return Err("internal error: frame out of range".into());
    };
    let computed = frame_crc(len_bytes, body);
    if computed != crc {
        return Err(format!(
            "CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
        ));
    }
    decode_body(body)
        .map(|r| r.to_record())
        .map_err(|what| format!("malformed record: {what}"))
}

/// What a scan callback returns when it does not fail: `()` to go on, or a
/// [`ControlFlow`] whose `Break` ends the scan early without an error (the
/// consumer is gone, or has seen enough).
pub trait ScanControl {
    fn into_flow(self) -> ControlFlow<()>;
}

impl ScanControl for () {
    fn into_flow(self) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

impl ScanControl for ControlFlow<()> {
    fn into_flow(self) -> ControlFlow<()> {
        self
    }
}

/// Drives `scan`, calling `f` on each item; stops at the first error or break.
fn for_each_ref<E, C, F>(mut scan: Scan, mut f: F) -> std::result::Result<(), E>
where
    E: From<LogError>,
    C: ScanControl,
    F: FnMut(ScanRef<'_>) -> std::result::Result<C, E>,
{
    while let Some(item) = scan.next_ref() {
        if f(item?)?.into_flow().is_break() {
            break;
        }
    }
    Ok(())
}

/// The size of segment `base`'s file of kind `kind`, or of its other file
/// when that one is gone (compression replaces a `.seg` by a `.segz`).
fn segment_len(vfs: &dyn Vfs, dir: &Path, base: u64, kind: Kind) -> Option<u64> {
    let (plain, packed) = (segment_path(dir, base), segz_path(dir, base));
    let (first, then) = match kind {
        Kind::Plain => (plain, packed),
        Kind::Packed => (packed, plain),
    };
    vfs.file_len(&first).or_else(|_| vfs.file_len(&then)).ok()
}
