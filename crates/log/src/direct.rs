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
//! - A [`FrameBuf`] laid out for the position it is appended at is written
//!   from its own memory: only the partial blocks at its two ends are
//!   copied. Any other buffer is copied through the window, with the same
//!   result in the file.

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

/// A writer's buffer of encoded frames, laid out for direct appends: its
/// data starts at a memory address as far past a [`BLOCK`] boundary as the
/// file position it goes to is past one, with that boundary inside the
/// buffer, so the appender can put its partial block in front of the data
/// and write the whole blocks from here instead of copying every byte into
/// its window (the import's biggest copy: docs/BENCHMARKS.md).
pub(crate) struct FrameBuf {
    bytes: Vec<u8>,
    /// Where the data begins in `bytes`.
    data: usize,
}

impl FrameBuf {
    /// A buffer for `capacity` bytes of data.
    pub fn with_capacity(capacity: usize) -> FrameBuf {
        FrameBuf {
            bytes: Vec::with_capacity(capacity.saturating_add(2 * BLOCK)),
            data: 0,
        }
    }

    /// Empties the buffer for data that goes to file position `at`. The
    /// layout (less than two blocks before the data, within the room
    /// `with_capacity` added) holds while the data fits the capacity asked
    /// for; a buffer that had to grow is copied by the appender instead.
    pub fn start(&mut self, at: u64) {
        let address = self.bytes.as_ptr() as usize;
        let to_boundary = (BLOCK - address % BLOCK) % BLOCK;
        let data = to_boundary + (at % BLOCK as u64) as usize;
        self.bytes.clear();
        self.bytes.resize(data, 0);
        self.data = data;
    }

    /// Empties the buffer (to be started again before use).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.data = 0;
    }

    /// The data.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.data..]
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.bytes.len() - self.data
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where frames are encoded: appended to the data.
    pub fn tail_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The memory from the block boundary `staged` bytes before the data,
    /// when it lies inside the buffer at an aligned address.
    fn blocks_from(&mut self, staged: usize) -> Option<&mut [u8]> {
        let begin = self.data.checked_sub(staged)?;
        let aligned = (self.bytes.as_ptr() as usize + begin).is_multiple_of(BLOCK);
        aligned.then(|| &mut self.bytes[begin..])
    }
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

    /// Appends the data of `buf`, which belongs at file position `at` (the
    /// logical end): without copying it when `buf` was started at `at`.
    pub fn append_buf(&mut self, buf: &mut FrameBuf, at: u64) -> io::Result<()> {
        let staged = self.staged;
        let Some(blocks) = buf.blocks_from(staged) else {
            return self.append(buf.data(), at);
        };
        if at != self.staged_at + staged as u64 {
            return self.append(buf.data(), at);
        }
        let begin = self.start;
        blocks[..staged].copy_from_slice(&self.memory[begin..begin + staged]);
        let full = blocks.len() - blocks.len() % BLOCK;
        if full > 0 {
            self.direct.write_all_at(&blocks[..full], self.staged_at)?;
        }
        let rest = blocks.len() - full;
        self.memory[begin..begin + rest].copy_from_slice(&blocks[full..]);
        self.staged = rest;
        self.staged_at += full as u64;
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

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::vfs::{OpenMode, StdVfs, Vfs};

    /// A buffer started at a position is laid out for it, whatever the
    /// allocator's address: the block boundary before the data is aligned.
    #[test]
    fn a_started_buffer_has_its_block_boundary_aligned() {
        for capacity in [0, 1, 4095, 4096, 70_000, 1 << 20] {
            let mut buf = FrameBuf::with_capacity(capacity);
            for at in [0u64, 1, 40, 4095, 4096, 4097, 1 << 30, (1 << 30) + 77] {
                buf.start(at);
                assert!(buf.is_empty());
                let staged = (at % BLOCK as u64) as usize;
                assert!(buf.blocks_from(staged).is_some(), "{capacity} {at}");
                if staged > 0 {
                    assert!(buf.blocks_from(staged - 1).is_none(), "{capacity} {at}");
                }
            }
        }
    }

    /// Buffers written from their own memory, buffers laid out for another
    /// position, buffers that outgrew their layout and plain slices all
    /// end up in the file as the bytes appended, in order, and the file is
    /// never longer than the data.
    #[test]
    fn every_way_to_append_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let vfs = StdVfs;
        let file = vfs.open(&path, OpenMode::CreateNew, "creating").unwrap();
        let mut expected: Vec<u8> = (0..100u8).collect();
        file.write_all_at(&expected, 0).unwrap();
        let Some(mut appender) = DirectAppender::open(&vfs, &path, file.as_ref(), 100) else {
            eprintln!("this file system refuses O_DIRECT: nothing to check");
            return;
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let mut laid_out = FrameBuf::with_capacity(WINDOW);
        for round in 0..200u64 {
            let len = match next(4) {
                0 => next(BLOCK as u64) as usize,
                1 => next(40_000) as usize,
                _ => next(WINDOW as u64) as usize,
            };
            let bytes: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + round) as u8).collect();
            let at = expected.len() as u64;
            match next(4) {
                0 => {
                    laid_out.start(at);
                    laid_out.tail_mut().extend_from_slice(&bytes);
                    appender.append_buf(&mut laid_out, at).unwrap();
                }
                1 => {
                    let mut elsewhere = FrameBuf::with_capacity(WINDOW);
                    elsewhere.start(at + 1 + next(BLOCK as u64 - 1));
                    elsewhere.tail_mut().extend_from_slice(&bytes);
                    appender.append_buf(&mut elsewhere, at).unwrap();
                }
                2 => {
                    let mut grown = FrameBuf::with_capacity(16);
                    grown.start(at);
                    grown.tail_mut().extend_from_slice(&bytes);
                    appender.append_buf(&mut grown, at).unwrap();
                }
                _ => appender.append(&bytes, at).unwrap(),
            }
            expected.extend_from_slice(&bytes);
            if next(5) == 0 {
                appender.publish(file.as_ref()).unwrap();
                let mut back = vec![0u8; expected.len() + BLOCK];
                let got = read_full_at(file.as_ref(), &path, &mut back, 0).unwrap();
                assert_eq!(got, expected.len(), "file length after round {round}");
                assert!(
                    back[..got] == expected[..],
                    "file bytes after round {round}"
                );
            }
        }
    }
}
