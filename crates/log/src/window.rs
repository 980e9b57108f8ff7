//! Reading a segment file front to back in large chunks: the open file
//! ([`Src`]) and the reusable buffer a scan reads through ([`Window`]).
//! A compressed segment (`.segz`) is read whole (its compressed bytes) and
//! decompressed block by block as the scan reaches each block
//! (`segz::Lazy`), so a scan sees the bytes of the `.seg` it came from, at
//! the same positions, with the blocks that could not be read listed as
//! holes, and holds one decompressed block, not the segment.
//!
//! Guarantees:
//! - One `pread` fills many records; the buffer is reused, so a scan makes
//!   no per-record system call or allocation.
//! - Every slice handed out lies inside bytes actually read; a request
//!   outside them is an error naming the file, never a panic.
//! - A file that shrinks while it is read is reported as such.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::format::MAX_SEGMENT_BYTES;
use crate::segment::{open_segment, segment_path, Kind};
use crate::segz::{self, Hole};
use crate::vfs::{Vfs, VfsFile};

/// What a read says of a segment file found shorter than it was when the
/// read began ([`Window::fill`]).
pub(crate) const SHRANK: &str = "segment file shrank while being read";

/// Size of one sequential read (the buffer grows only for larger records).
pub(crate) const READ_CHUNK: usize = 2 << 20;

/// An open segment file being scanned.
pub(crate) struct Src {
    pub file: Arc<dyn VfsFile>,
    /// The same file opened with `O_DIRECT`, for the scan's large reads
    /// (`None` where the file system refuses it).
    pub direct: Option<Arc<dyn VfsFile>>,
    pub path: PathBuf,
    pub base: u64,
    /// End of the bytes considered (file length, capped at `MAX_SEGMENT_BYTES`).
    pub len: u64,
    /// Real file length (may exceed `len` only past the 4 GiB limit).
    pub real_len: u64,
    /// The last segment of the log: invalid bytes at its end are a torn tail.
    pub is_last: bool,
    /// Read from a `.segz`: `file` holds the decompressed segment.
    pub packed: bool,
    /// Segment positions of a `.segz` that could not be read, in order
    /// (those found at open; a scan adds those its reads find, from `lazy`).
    pub holes: Vec<Hole>,
    /// The `.segz` behind `file`, decompressed as it is read.
    pub lazy: Option<Arc<segz::Lazy>>,
    /// Length of the file on disk (for a `.segz`, the compressed length).
    pub file_bytes: u64,
}

impl Src {
    /// Opens segment `base` of `dir`, whichever kind of file it is in.
    pub fn open(vfs: &dyn Vfs, dir: &Path, base: u64, is_last: bool) -> Result<Src> {
        let Some((file, path, kind)) = open_segment(vfs, dir, base)? else {
            return Err(LogError::io(
                "opening",
                segment_path(dir, base),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        match kind {
            Kind::Plain => {
                let mut src = Src::from_file(file, path, base, is_last)?;
                // The last segment (at most one segment's bytes, the ones
                // read most) goes through the page cache: the kernel's
                // readahead overlaps its disk reads with the scan, and the
                // next scan finds it cached. Direct reads of it stalled the
                // scan ~50 ms per 43 MB on every rebuild and export of a 1M
                // archive (docs/BENCHMARKS.md, "The last segment through
                // the page cache").
                if !is_last {
                    src.direct = vfs.open_direct(&src.path, false);
                }
                Ok(src)
            }
            Kind::Packed => {
                let bytes = segz::read_all(file.as_ref(), &path)?;
                let file_bytes = bytes.len() as u64;
                let (lazy, holes) = segz::lazy(bytes, &path, base)?;
                let lazy = Arc::new(lazy);
                let file: Arc<dyn VfsFile> = Arc::clone(&lazy) as Arc<dyn VfsFile>;
                let mut src = Src::from_file(file, path, base, false)?;
                src.packed = true;
                src.holes = holes;
                src.lazy = Some(lazy);
                src.file_bytes = file_bytes;
                Ok(src)
            }
        }
    }

    pub fn from_file(
        file: Arc<dyn VfsFile>,
        path: PathBuf,
        base: u64,
        is_last: bool,
    ) -> Result<Src> {
        let mut src = Src {
            file,
            direct: None,
            path,
            base,
            len: 0,
            real_len: 0,
            is_last,
            packed: false,
            holes: Vec::new(),
            lazy: None,
            file_bytes: 0,
        };
        src.restat()?;
        src.file_bytes = src.real_len;
        Ok(src)
    }

    /// Re-reads the file length; returns true if it grew.
    pub fn restat(&mut self) -> Result<bool> {
        let real = self
            .file
            .size()
            .map_err(|e| LogError::io("reading metadata of", &self.path, e))?;
        let old = self.len;
        self.real_len = real;
        self.len = real.min(MAX_SEGMENT_BYTES);
        Ok(self.len > old)
    }
}

/// A reusable read buffer holding file bytes `[start, start + len)` at
/// `buf[at..]`.
///
/// Scans read whole chunks of sealed segments with `O_DIRECT` where the
/// file system allows it ([`Src::open`]): a one-pass scan of a log larger than memory gains nothing from the
/// page cache, and copying freshly read pages out of it was most of a cold
/// reindex's time (`docs/BENCHMARKS.md`). Direct reads start at a block
/// boundary at or before the wanted position; the bytes before it are
/// simply not used. A refused or failed direct read falls back to a
/// buffered one.
pub(crate) struct Window {
    buf: Vec<u8>,
    /// Where the held bytes start in `buf` (block-aligned address).
    at: usize,
    start: u64,
    len: usize,
    /// Identity of the file whose bytes are held (segment base), to avoid mixing.
    owner: Option<u64>,
}

impl Window {
    pub fn new() -> Window {
        Window {
            buf: Vec::new(),
            at: 0,
            start: 0,
            len: 0,
            owner: None,
        }
    }

    /// Makes bytes `[pos, pos + need)` of `src` available. The caller guarantees
    /// `pos + need <= src.len`.
    pub(crate) fn fill(&mut self, src: &Src, pos: u64, need: usize) -> Result<()> {
        let end = self.start + self.len as u64;
        if self.owner == Some(src.base) && pos >= self.start && pos + need as u64 <= end {
            return Ok(());
        }
        self.owner = None;
        let block = crate::direct::BLOCK;
        // Room for a block of slack before `pos` and whole blocks.
        let cap = (need.max(READ_CHUNK) + 2 * block).next_multiple_of(block);
        if self.buf.len() < cap + block {
            let (buf, at) = crate::direct::aligned(cap).ok_or_else(|| internal(src, pos))?;
            self.buf = buf;
            self.at = at;
        }
        let aligned = pos - pos % block as u64;
        let want = (cap as u64).min(src.len.saturating_sub(aligned)) as usize;
        let direct = match &src.direct {
            Some(file) => {
                let dst = self
                    .buf
                    .get_mut(self.at..self.at + cap)
                    .ok_or_else(|| internal(src, pos))?;
                read_direct(file.as_ref(), dst, aligned).ok()
            }
            None => None,
        };
        match direct {
            Some(got) => {
                self.start = aligned;
                self.len = got.min(want);
            }
            None => {
                let want = (cap as u64).min(src.len.saturating_sub(pos)) as usize;
                let dst = self
                    .buf
                    .get_mut(self.at..self.at + want)
                    .ok_or_else(|| internal(src, pos))?;
                self.start = pos;
                self.len = crate::segment::read_full_at(src.file.as_ref(), &src.path, dst, pos)?;
            }
        }
        self.owner = Some(src.base);
        if self.start + (self.len as u64) < pos + need as u64 {
            return Err(LogError::Corrupt {
                file: src.path.clone(),
                pos,
                what: SHRANK.into(),
            });
        }
        Ok(())
    }

    /// Bytes `[pos, pos + n)`, which must have been filled.
    pub(crate) fn slice(&self, src: &Src, pos: u64, n: usize) -> Result<&[u8]> {
        let from = pos
            .checked_sub(self.start)
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| internal(src, pos))?;
        let to = from.checked_add(n).ok_or_else(|| internal(src, pos))?;
        if to > self.len {
            return Err(internal(src, pos));
        }
        self.buf
            .get(self.at + from..self.at + to)
            .ok_or_else(|| internal(src, pos))
    }
}

/// Fills `dst` (block-aligned address and length) from block-aligned `pos`
/// with direct reads; stops early only at end of file.
pub(crate) fn read_direct(file: &dyn VfsFile, dst: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let block = crate::direct::BLOCK;
    let mut got = 0;
    while got < dst.len() {
        match file.read_at(&mut dst[got..], pos + got as u64) {
            Ok(0) => break,
            // A short read not at a block boundary is the end of the file.
            Ok(n) if n % block != 0 => return Ok(got + n),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

pub(crate) fn internal(src: &Src, pos: u64) -> LogError {
    LogError::Corrupt {
        file: src.path.clone(),
        pos,
        what: "internal error: scan buffer out of range".into(),
    }
}
