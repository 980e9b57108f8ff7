//! Appending to a segment with `O_DIRECT`: whole aligned blocks go straight
//! to the disk, skipping the copy into the page cache and the kernel's
//! writeback of it (most of an import's system time on a 2-core machine).
//! The partial last block stays here until the data must be readable or
//! durable; then it is written through the page cache ([`DirectAppender::publish`]).
//!
//! Invariants:
//! - The file holds every byte before `staged_at`; the window holds the
//!   bytes from `staged_at` (a multiple of [`BLOCK`]) to the logical end.
//! - Direct writes cover only whole blocks of real data, so the file is
//!   never longer than the data written to it.
//! - After `publish`, the file holds every byte up to the logical end.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::segment::read_full_at;
use crate::vfs::{Vfs, VfsFile};

/// Alignment of direct writes (offset, length and memory); 4 KiB covers
/// every logical block size Linux file systems use.
pub(crate) const BLOCK: usize = 4096;
/// Bytes collected before they are written.
const WINDOW: usize = 1 << 20;

/// Zeroed memory holding `len` bytes that start at a [`BLOCK`]-aligned
/// address, as direct I/O needs: `(memory, start)`, the bytes being
/// `memory[start..start + len]`. `None` if the allocator's address could
/// not be aligned within the block of slack (it always can).
pub(crate) fn aligned(len: usize) -> Option<(Vec<u8>, usize)> {
    let memory = vec![0u8; len.checked_add(BLOCK)?];
    let start = memory.as_ptr().align_offset(BLOCK);
    (start < BLOCK).then_some((memory, start))
}

pub(crate) struct DirectAppender {
    direct: Arc<dyn VfsFile>,
    /// `WINDOW + BLOCK` bytes; the window starts at the first aligned byte.
    memory: Vec<u8>,
    start: usize,
    staged: usize,
    staged_at: u64,
}

impl DirectAppender {
    /// Prepares direct appends to `path` (open as `file`) whose data ends at
    /// `end`. `None` when the file system refuses `O_DIRECT`: then the
    /// caller writes through the page cache.
    pub fn open(
        vfs: &dyn Vfs,
        path: &Path,
        file: &dyn VfsFile,
        end: u64,
    ) -> Option<DirectAppender> {
        let direct = vfs.open_direct(path, true)?;
        let (memory, start) = aligned(WINDOW)?;
        let staged_at = end - end % BLOCK as u64;
        let staged = usize::try_from(end - staged_at).ok()?;
        let mut appender = DirectAppender {
            direct,
            memory,
            start,
            staged,
            staged_at,
        };
        // The partial last block is rewritten whole by the next direct
        // write: start from what the file has.
        let window = appender.window_mut();
        let got = read_full_at(file, path, &mut window[..staged], staged_at).ok()?;
        if got != staged {
            return None;
        }
        Some(appender)
    }

    fn window_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + WINDOW]
    }

    /// Appends `bytes`, which belong at file position `at` (the logical end).
    pub fn append(&mut self, mut bytes: &[u8], at: u64) -> io::Result<()> {
        if at != self.staged_at + self.staged as u64 {
            return Err(io::Error::other(format!(
                "append at {at}, but the data ends at {}",
                self.staged_at + self.staged as u64
            )));
        }
        while !bytes.is_empty() {
            let staged = self.staged;
            let take = bytes.len().min(WINDOW - staged);
            self.window_mut()[staged..staged + take].copy_from_slice(&bytes[..take]);
            self.staged += take;
            bytes = &bytes[take..];
            self.write_full_blocks()?;
        }
        Ok(())
    }

    /// Writes the whole blocks of the window directly and keeps the rest.
    fn write_full_blocks(&mut self) -> io::Result<()> {
        let full = self.staged - self.staged % BLOCK;
        if full == 0 {
            return Ok(());
        }
        let window = &self.memory[self.start..self.start + full];
        self.direct.write_all_at(window, self.staged_at)?;
        let rest = self.staged - full;
        let begin = self.start;
        self.memory
            .copy_within(begin + full..begin + full + rest, begin);
        self.staged = rest;
        self.staged_at += full as u64;
        Ok(())
    }

    /// Writes the partial last block through the page cache (`file`), so
    /// the file holds all the data; it stays in the window, to be written
    /// again whole once the block fills.
    pub fn publish(&self, file: &dyn VfsFile) -> io::Result<()> {
        if self.staged == 0 {
            return Ok(());
        }
        let tail = &self.memory[self.start..self.start + self.staged];
        file.write_all_at(tail, self.staged_at)
    }
}
