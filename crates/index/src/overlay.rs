//! A redb storage backend for a file this process may read but not write
//! (a full disk, a quota, a read-only file system, a file size limit): it
//! reads the file as it is and keeps every write in memory, so that redb can
//! repair the index after a crash, or the projections can catch up, for this
//! process only, and the read answers as if the writes had been saved. Used
//! by the index's [`crate::IndexReader::open_repaired_in_memory`] and by the
//! projections' in-memory catch-up.
//!
//! Invariants:
//! - The file is never written, extended or truncated: it stays the last
//!   commit a writer made, for other readers and for the next run.
//! - A read sees the file's bytes with every write made through the backend
//!   laid over them, exactly as if the writes had gone to the file; a
//!   position past the file's end, or past a shortening `set_len`, reads as
//!   zero until written.
//! - Memory is one block (4 KiB, a redb page) per block written, not the
//!   file's size.
//! - redb's locks are taken on the file itself (redb's own `FileBackend`
//!   does it), so another process opening the file sees it held and
//!   reads it unchanged. A file open for reading only cannot carry a
//!   write lock; it is then left unlocked (nobody can write it either: it
//!   is on a read-only file system or not ours to write).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The unit of copy-on-write. redb's pages are 4 KiB, so a page written
/// costs one block.
const BLOCK: u64 = 4096;

pub struct Overlay {
    base: Option<Base>,
    layer: Mutex<Layer>,
}

struct Base {
    file: FileBackend,
    /// Opened for writing too: it can carry redb's write locks.
    lockable: bool,
}

struct Layer {
    /// The length redb sees.
    len: u64,
    /// How much of the file shows through: its length, less anything a
    /// shorter `set_len` cut off (which must read as zero if grown again).
    base_len: u64,
    /// Every block written, whole.
    blocks: HashMap<u64, Box<[u8]>>,
}

impl fmt::Debug for Overlay {
    // Not the blocks: they hold names and phone numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = self.layer();
        f.debug_struct("Overlay")
            .field("len", &layer.len)
            .field("base_len", &layer.base_len)
            .field("blocks", &layer.blocks.len())
            .finish()
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "out of the storage's range")
}

impl Overlay {
    /// Over `file` (`writable`: opened for writing too, so it can be
    /// locked), or over nothing (`None`): an empty storage.
    pub fn over(file: Option<(File, bool)>) -> io::Result<Overlay> {
        let (base, len) = match file {
            Some((file, writable)) => {
                let len = file.metadata()?.len();
                let base = Base {
                    file: FileBackend::new(file).map_err(io::Error::other)?,
                    lockable: writable,
                };
                (Some(base), len)
            }
            None => (None, 0),
        };
        Ok(Overlay {
            base,
            layer: Mutex::new(Layer {
                len,
                base_len: len,
                blocks: HashMap::new(),
            }),
        })
    }

    /// Whether redb can lock the file through this backend.
    pub fn lockable(&self) -> bool {
        self.base.as_ref().is_some_and(|b| b.lockable)
    }

    fn layer(&self) -> MutexGuard<'_, Layer> {
        // Every update of the layer completes before it can panic (none
        // can), so a poisoned lock still guards a consistent layer.
        self.layer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `out.len()` bytes at `pos` of the file as it shows through
    /// `layer` (zeros past `base_len`).
    fn read_base(&self, layer: &Layer, pos: u64, out: &mut [u8]) -> io::Result<()> {
        let shown = usize::try_from(layer.base_len.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(out.len());
        if shown > 0 {
            match &self.base {
                Some(base) => base.file.read(pos, &mut out[..shown])?,
                None => return Err(out_of_range()),
            }
        }
        out[shown..].fill(0);
        Ok(())
    }

    fn locks(&self) -> Result<&FileBackend, BackendError> {
        match &self.base {
            Some(base) if base.lockable => Ok(&base.file),
            _ => Err(BackendError::Unsupported),
        }
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.layer().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let layer = self.layer();
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|end| *end <= layer.len)
            .ok_or_else(out_of_range)?;
        // Runs of blocks not written are read from the file in one call.
        let mut pos = offset;
        let mut run_start = offset;
        while pos < end {
            let block = pos / BLOCK;
            let next = ((block + 1) * BLOCK).min(end);
            if let Some(bytes) = layer.blocks.get(&block) {
                let at = |p: u64| (p - offset) as usize;
                self.read_base(&layer, run_start, &mut out[at(run_start)..at(pos)])?;
                let within = (pos - block * BLOCK) as usize;
                let n = (next - pos) as usize;
                out[at(pos)..at(next)].copy_from_slice(&bytes[within..within + n]);
                run_start = next;
            }
            pos = next;
        }
        let done = (run_start - offset) as usize;
        self.read_base(&layer, run_start, &mut out[done..])
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut layer = self.layer();
        if len < layer.len {
            layer.base_len = layer.base_len.min(len);
            let kept_blocks = len.div_ceil(BLOCK);
            layer.blocks.retain(|b, _| *b < kept_blocks);
            if let Some(last) = layer.blocks.get_mut(&(len / BLOCK)) {
                last[(len % BLOCK) as usize..].fill(0);
            }
        }
        layer.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        // Nothing here outlives the process: there is nothing to sync.
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut layer = self.layer();
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= layer.len)
            .ok_or_else(out_of_range)?;
        let mut pos = offset;
        while pos < end {
            let block = pos / BLOCK;
            let next = ((block + 1) * BLOCK).min(end);
            if !layer.blocks.contains_key(&block) {
                let mut bytes = vec![0u8; BLOCK as usize].into_boxed_slice();
                let whole = pos == block * BLOCK && next == (block + 1) * BLOCK;
                if !whole {
                    let shown = (layer.len - block * BLOCK).min(BLOCK) as usize;
                    self.read_base(&layer, block * BLOCK, &mut bytes[..shown])?;
                }
                layer.blocks.insert(block, bytes);
            }
            let within = (pos - block * BLOCK) as usize;
            let from = (pos - offset) as usize;
            let n = (next - pos) as usize;
            if let Some(bytes) = layer.blocks.get_mut(&block) {
                bytes[within..within + n].copy_from_slice(&data[from..from + n]);
            }
            pos = next;
        }
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        match &self.base {
            Some(base) => base.file.close(),
            None => Ok(()),
        }
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks()?.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.locks()?.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks()?.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks()?.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The model: a plain vector that every operation is applied to.
    fn check(overlay: &Overlay, model: &[u8]) {
        assert_eq!(overlay.len().unwrap(), model.len() as u64);
        let mut all = vec![0xEEu8; model.len()];
        overlay.read(0, &mut all).unwrap();
        assert_eq!(all, model);
        // Reads that start and end inside blocks, across written and
        // unwritten ones.
        for (from, to) in [(1, 4095), (4000, 9000), (4096, 8192), (5, model.len())] {
            let to = to.min(model.len());
            if from < to {
                let mut part = vec![0xEEu8; to - from];
                overlay.read(from as u64, &mut part).unwrap();
                assert_eq!(part, &model[from..to], "{from}..{to}");
            }
        }
    }

    #[test]
    fn reads_see_the_file_with_the_writes_laid_over_and_the_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base");
        let original: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&original).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let overlay = Overlay::over(Some((file, true))).unwrap();
        assert!(overlay.lockable());
        let mut model = original.clone();
        check(&overlay, &model);

        let write = |overlay: &Overlay, model: &mut Vec<u8>, at: usize, data: &[u8]| {
            overlay.write(at as u64, data).unwrap();
            model[at..at + data.len()].copy_from_slice(data);
        };
        write(&overlay, &mut model, 10, &[1, 2, 3]);
        write(&overlay, &mut model, 4090, &[9; 20]);
        write(&overlay, &mut model, 8192, &[7; 4096]);
        check(&overlay, &model);

        // Beyond the end only after growing; grown bytes read as zero.
        assert!(overlay.write(20_000, &[1]).is_err());
        overlay.set_len(30_000).unwrap();
        model.resize(30_000, 0);
        check(&overlay, &model);
        write(&overlay, &mut model, 25_000, &[5; 100]);
        check(&overlay, &model);

        // Shortening then growing again shows zeros, not the old bytes of
        // the file or of earlier writes.
        overlay.set_len(4100).unwrap();
        model.truncate(4100);
        check(&overlay, &model);
        overlay.set_len(12_000).unwrap();
        model.resize(12_000, 0);
        check(&overlay, &model);
        assert!(overlay.read(11_999, &mut [0u8; 2]).is_err());

        assert_eq!(std::fs::read(&path).unwrap(), original);
    }

    #[test]
    fn over_nothing_is_an_empty_storage() {
        let overlay = Overlay::over(None).unwrap();
        assert!(!overlay.lockable());
        assert!(matches!(
            overlay.try_lock_range(Bound::Unbounded, Bound::Unbounded),
            Err(BackendError::Unsupported)
        ));
        check(&overlay, &[]);
        overlay.set_len(5000).unwrap();
        overlay.write(4095, &[1, 2]).unwrap();
        let mut model = vec![0u8; 5000];
        model[4095] = 1;
        model[4096] = 2;
        check(&overlay, &model);
    }
}
