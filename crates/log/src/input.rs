//! Reading an import's input file front to back with `O_DIRECT`
//! ([`DirectInput`]), for inputs larger than the page cache can keep.
//!
//! Read through the page cache, a one-pass input larger than memory is
//! copied out of freshly read (and soon evicted) pages and pushes the
//! archive's own pages out: ~17 of a 50M import's 46 system seconds
//! (docs/BENCHMARKS.md, "direct reads"). Direct reads land in the
//! process's own aligned buffers instead, the way scans read segments
//! (`window`), with the same read loop.
//!
//! Guarantees:
//! - The bytes handed out are the file's bytes, in order, each once, up to
//!   the first short read (the end of the file), whatever its length.
//! - A thread reads the next chunk while the caller parses this one, so the
//!   device's latency is not on the caller's path.
//! - A direct read the file system refuses (or that fails) is retried
//!   through the page cache, and the rest of the file is read that way.
//! - An error names the file and the byte offset of the failed read.
//! - Memory: `DEPTH` chunks of `chunk` bytes, allocated once.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::direct::{aligned, BLOCK};
use crate::segment::read_full_at;
use crate::vfs::{StdVfs, Vfs, VfsFile};
use crate::window::read_direct;

/// Chunks in use: one being parsed, one being read.
const DEPTH: usize = 2;

/// Bytes of one direct read, unless the caller asks otherwise: large
/// enough that the device streams (the kernel's readahead does not apply
/// to direct reads), small enough that `DEPTH` of them stay a few MiB of
/// an import's 256 MB.
pub const DIRECT_CHUNK: usize = 4 << 20;

/// One chunk read: `memory[start..start + len]` are the file's bytes at `pos`.
struct Chunk {
    memory: Vec<u8>,
    start: usize,
    len: usize,
}

/// A regular file read front to back with `O_DIRECT` by a read-ahead
/// thread; a [`BufRead`] whose buffer is the chunk last read.
pub struct DirectInput {
    path: PathBuf,
    chunks: Option<Receiver<io::Result<Chunk>>>,
    spent: Option<Sender<Chunk>>,
    current: Option<Chunk>,
    /// Bytes of `current` already consumed.
    used: usize,
    /// Bytes of a full chunk: a shorter one is the last.
    chunk: usize,
    /// End of file (or an error) seen: nothing more comes.
    done: bool,
    reader: Option<JoinHandle<()>>,
}

impl DirectInput {
    /// Reads `path`, already open as `file`, with direct reads of `chunk`
    /// bytes (rounded up to whole blocks). `Err(file)` when the file system
    /// refuses to open it with `O_DIRECT`: the caller reads `file` as usual.
    pub fn open(
        path: &Path,
        file: std::fs::File,
        chunk: usize,
    ) -> Result<DirectInput, std::fs::File> {
        match StdVfs.open_direct(path, false) {
            Some(direct) => Ok(DirectInput::with_files(
                path,
                Arc::new(file),
                Some(direct),
                chunk,
            )),
            None => Err(file),
        }
    }

    /// As [`DirectInput::open`], with both files given (`direct: None`:
    /// read through the page cache throughout).
    fn with_files(
        path: &Path,
        file: Arc<dyn VfsFile>,
        direct: Option<Arc<dyn VfsFile>>,
        chunk: usize,
    ) -> DirectInput {
        let chunk = chunk.max(1).next_multiple_of(BLOCK);
        let (full_tx, full_rx) = sync_channel(DEPTH);
        let (spent_tx, spent_rx) = channel();
        let owned = path.to_owned();
        let reader = std::thread::Builder::new()
            .name("ccvault-input".into())
            .spawn(move || read_ahead(&owned, file, direct, chunk, full_tx, spent_rx));
        let (chunks, reader) = match reader {
            Ok(handle) => (Some(full_rx), Some(handle)),
            // No thread: `fill_buf` reports it (the receiver is gone).
            Err(_) => (None, None),
        };
        DirectInput {
            path: path.to_owned(),
            chunks,
            spent: Some(spent_tx),
            current: None,
            used: 0,
            chunk,
            done: false,
            reader,
        }
    }
}

/// The read-ahead thread: fills chunks in order until the end of the
/// file, an error, or the reader is dropped.
fn read_ahead(
    path: &Path,
    file: Arc<dyn VfsFile>,
    mut direct: Option<Arc<dyn VfsFile>>,
    chunk: usize,
    full: SyncSender<io::Result<Chunk>>,
    spent: Receiver<Chunk>,
) {
    let mut allocated = 0;
    let mut pos = 0u64;
    loop {
        let buffer = if allocated < DEPTH {
            allocated += 1;
            aligned(chunk)
        } else {
            // Blocks until the reader is done with a chunk; ends with it.
            match spent.recv() {
                Ok(c) => Some((c.memory, c.start)),
                Err(_) => return,
            }
        };
        let Some((mut memory, start)) = buffer else {
            let _ = full.send(Err(io::Error::other(format!(
                "cannot allocate a read buffer for {}",
                path.display()
            ))));
            return;
        };
        let Some(dst) = memory.get_mut(start..start + chunk) else {
            let _ = full.send(Err(io::Error::other(format!(
                "read buffer for {} out of range",
                path.display()
            ))));
            return;
        };
        // A direct read needs a block-aligned position; every chunk but
        // the last is whole blocks, so `pos` is one (checked all the same).
        let tried = match &direct {
            Some(d) if pos.is_multiple_of(BLOCK as u64) => read_direct(d.as_ref(), dst, pos).ok(),
            _ => None,
        };
        let got = match tried {
            Some(n) => Ok(n),
            None => {
                // Refused or failed: the page cache serves the rest.
                direct = None;
                read_full_at(file.as_ref(), path, dst, pos).map_err(|e| {
                    io::Error::other(format!(
                        "cannot read {} at byte {pos}: {}",
                        path.display(),
                        crate::display_chain(&e)
                    ))
                })
            }
        };
        let (result, end) = match got {
            Ok(len) => {
                pos += len as u64;
                // A short read is the end of the file (as for `read`
                // through a `BufReader`, the first 0 ends the input).
                (Ok(Chunk { memory, start, len }), len < chunk)
            }
            Err(e) => (Err(e), true),
        };
        if full.send(result).is_err() || end {
            return;
        }
    }
}

impl Read for DirectInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let have = self.fill_buf()?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for DirectInput {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let exhausted = self.current.as_ref().is_none_or(|c| self.used >= c.len);
        if exhausted && !self.done {
            if let (Some(old), Some(spent)) = (self.current.take(), &self.spent) {
                // The thread may have ended (end of file): then it is dropped.
                let _ = spent.send(old);
            }
            self.used = 0;
            let next = self.chunks.as_ref().map(Receiver::recv);
            match next {
                Some(Ok(Ok(chunk))) => {
                    // The thread stops after a short chunk.
                    self.done = chunk.len < self.chunk;
                    self.current = Some(chunk);
                }
                Some(Ok(Err(e))) => {
                    self.done = true;
                    return Err(e);
                }
                // The thread ended without saying why (it could not start,
                // or panicked): never mistake that for the end of the file.
                Some(Err(_)) | None => {
                    self.done = true;
                    return Err(io::Error::other(format!(
                        "the thread reading {} stopped",
                        self.path.display()
                    )));
                }
            }
        }
        match &self.current {
            Some(c) if self.used < c.len => Ok(c
                .memory
                .get(c.start + self.used..c.start + c.len)
                .unwrap_or_default()),
            _ => Ok(&[]),
        }
    }

    fn consume(&mut self, amt: usize) {
        self.used += amt;
    }
}

impl Drop for DirectInput {
    fn drop(&mut self) {
        // Closing both channels ends the thread at its next send or
        // receive; it is in at most one read.
        self.chunks = None;
        self.spent = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn read_all(mut input: impl BufRead) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let have = input.fill_buf()?;
            if have.is_empty() {
                return Ok(out);
            }
            // Odd consumption, as a line reader's.
            let n = have.len().min(1000);
            out.extend_from_slice(&have[..n]);
            input.consume(n);
        }
    }

    #[test]
    fn reads_files_of_any_length_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 4095, 4096, 4097, 3 * 8192, 3 * 8192 + 17, 100_000] {
            let path = dir.path().join(format!("in{len}"));
            let bytes = data(len);
            std::fs::write(&path, &bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            // Chunks of two blocks: many chunks, and a reused buffer.
            let input = match DirectInput::open(&path, file, 8192) {
                Ok(input) => input,
                // A file system without O_DIRECT: the refusal path.
                Err(file) => DirectInput::with_files(&path, Arc::new(file), None, 8192),
            };
            assert_eq!(read_all(input).unwrap(), bytes, "length {len}");
        }
    }

    /// A file whose direct reads fail, like a file system that accepts
    /// `O_DIRECT` at open but not at read.
    struct Refusing(AtomicUsize);

    impl VfsFile for Refusing {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn size(&self) -> io::Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn refused_direct_reads_fall_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let bytes = data(50_000);
        std::fs::write(&path, &bytes).unwrap();
        let refusing = Arc::new(Refusing(AtomicUsize::new(0)));
        let input = DirectInput::with_files(
            &path,
            Arc::new(std::fs::File::open(&path).unwrap()),
            Some(refusing.clone()),
            8192,
        );
        assert_eq!(read_all(input).unwrap(), bytes);
        // Refused once, then not asked again.
        assert_eq!(refusing.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_failed_read_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let input =
            DirectInput::with_files(&path, Arc::new(Refusing(AtomicUsize::new(0))), None, 8192);
        let err = read_all(input).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("at byte 0"), "{err}");
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, data(200_000)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut input = DirectInput::with_files(&path, Arc::new(file), None, 4096);
        assert_eq!(input.fill_buf().unwrap().len(), 4096);
        drop(input); // joins the thread; a hang would fail the test run
    }
}
