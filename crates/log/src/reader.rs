//! Read-only access to a log, safe alongside a running writer (even in another
//! process).
//!
//! Invariants:
//! - A reader never takes the writer lock and never modifies a file.
//! - Random reads use `pread` on shared file handles; the segment list is re-read
//!   from the directory on demand, so a reader sees segments a writer added later.
//! - `read_at` returns a record only if its magic, length, CRC and body are valid;
//!   otherwise it returns an error naming the file and byte position.
//! - A scan alongside a writer yields a dense prefix of the log: it follows into
//!   a later segment only once the current one is sealed, and it ends at the end
//!   of the last segment's data, or at a torn record being written (reported as a
//!   "truncated tail"), never resuming past either.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{LogError, Result};
use crate::format::{
    decode_body, frame_crc, frame_header, Record, FRAME_HEADER_LEN, HEADER_LEN, MAX_BODY_LEN,
    MIN_BODY_LEN, RECORD_MAGIC,
};
use crate::scan::{Scan, ScanRef};
use crate::segment::{list_segments, read_full_at, read_header, segment_path};
use crate::vfs::{OpenMode, StdVfs, Vfs, VfsFile};
use crate::Position;

/// Bytes read speculatively by `read_at`; most records fit in one `pread`.
const READ_AHEAD: usize = 4096;

/// Read-only handle on a log directory. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Inner>,
}

struct Inner {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segments: Mutex<Vec<u64>>,
    files: Mutex<HashMap<u64, Arc<dyn VfsFile>>>,
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
        let segments = list_segments(vfs.as_ref(), dir)?;
        Ok(LogReader {
            inner: Arc::new(Inner {
                vfs,
                dir: dir.to_owned(),
                segments: Mutex::new(segments),
                files: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn empty(vfs: Arc<dyn Vfs>, dir: &Path) -> LogReader {
        LogReader {
            inner: Arc::new(Inner {
                vfs,
                dir: dir.to_owned(),
                segments: Mutex::new(Vec::new()),
                files: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Base offsets of the segments, sorted, freshly listed from the directory.
    pub fn segments(&self) -> Vec<u64> {
        match list_segments(self.inner.vfs.as_ref(), &self.inner.dir) {
            Ok(fresh) => {
                if let Ok(mut s) = self.inner.segments.lock() {
                    s.clone_from(&fresh);
                }
                fresh
            }
            // An unreadable directory: fall back to the last known listing.
            Err(_) => self
                .inner
                .segments
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
        }
    }

    /// Total size in bytes of all segment files.
    pub fn total_bytes(&self) -> u64 {
        self.segments()
            .into_iter()
            .filter_map(|b| {
                let path = segment_path(&self.inner.dir, b);
                self.inner.vfs.file_len(&path).ok()
            })
            .sum()
    }

    fn file(&self, base: u64) -> Result<Arc<dyn VfsFile>> {
        if let Some(f) = self
            .inner
            .files
            .lock()
            .ok()
            .and_then(|m| m.get(&base).cloned())
        {
            return Ok(f);
        }
        let path = segment_path(&self.inner.dir, base);
        let file = match self.inner.vfs.open(&path, OpenMode::Read, "opening") {
            Ok(f) => f,
            Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(LogError::NoRecord {
                    file: path,
                    pos: 0,
                    what: "no such segment".into(),
                })
            }
            Err(e) => return Err(e),
        };
        // Refuse other format versions; a damaged header does not prevent reading
        // the (self-validating) records.
        read_header(file.as_ref(), &path, base)?;
        if let Ok(mut m) = self.inner.files.lock() {
            m.insert(base, Arc::clone(&file));
        }
        Ok(file)
    }

    /// Reads the record at `at`, checking magic, length, CRC and body.
    pub fn read_at(&self, at: Position) -> Result<Record> {
        let path = segment_path(&self.inner.dir, at.segment);
        let pos = u64::from(at.pos);
        let corrupt = |what: String| LogError::Corrupt {
            file: path.clone(),
            pos,
            what,
        };
        if at.pos < HEADER_LEN {
            return Err(LogError::NoRecord {
                file: path,
                pos,
                what: "position is inside the segment header".into(),
            });
        }
        let file = self.file(at.segment)?;
        let mut buf = vec![0u8; READ_AHEAD];
        let got = read_full_at(file.as_ref(), &path, &mut buf, pos)?;
        if got == 0 {
            return Err(LogError::NoRecord {
                file: path,
                pos,
                what: "position is at or past the end of the segment data".into(),
            });
        }
        let Some((magic, body_len, crc)) = buf.get(..got).and_then(frame_header) else {
            return Err(corrupt(format!(
                "incomplete record header ({got} bytes before end of file)"
            )));
        };
        if magic != RECORD_MAGIC {
            return Err(corrupt("no record starts here (bad record magic)".into()));
        }
        if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&body_len) {
            return Err(corrupt(format!("impossible record length {body_len}")));
        }
        let frame_len = (FRAME_HEADER_LEN + body_len) as usize;
        if frame_len > got {
            buf.resize(frame_len, 0);
            let more = buf.get_mut(got..).unwrap_or(&mut []);
            let n = read_full_at(file.as_ref(), &path, more, pos + got as u64)?;
            if got + n < frame_len {
                return Err(corrupt(format!(
                    "record of {frame_len} bytes is cut off by the end of the file"
                )));
            }
        }
        let (len_bytes, body) = match (buf.get(4..8), buf.get(FRAME_HEADER_LEN as usize..frame_len))
        {
            (Some(l), Some(b)) => (l, b),
            _ => return Err(corrupt("internal error: frame out of range".into())),
        };
        let computed = frame_crc(len_bytes, body);
        if computed != crc {
            return Err(corrupt(format!(
                "CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
            )));
        }
        decode_body(body)
            .map(|r| r.to_record())
            .map_err(|what| corrupt(format!("malformed record: {what}")))
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
