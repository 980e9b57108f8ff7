//! Facts files: each record's parsed event ([`ccvault_event::encode_facts`])
//! kept beside the log, so that a projection rebuild reads facts instead of
//! parsing JSON again (docs/FORMAT.md §5).
//!
//! Invariants:
//! - Derived, never the source of truth: a missing, stale or damaged file
//!   costs only speed. Every file carries its version, its offset range and
//!   a CRC of all its bytes; each entry carries its record's payload hash
//!   (the index's xxh3-64). A reader uses an entry only when all of these
//!   check out, and parses the record's payload otherwise, so facts of
//!   other bytes (another archive's, a log tail lost and written again)
//!   are never taken for a record's.
//! - A file is written whole (a temporary name, then a rename), only for
//!   records already durable in the log and after the index commit that
//!   covers them, so no file reaches past the index checkpoint: the records
//!   a reopen indexes again never have facts yet, and files never overlap.
//!   A whole reindex deletes every file first and writes them again.
//! - Failing to write a file never fails the archive: the write is logged
//!   and those records simply have no facts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ccvault_event::FACTS_VERSION;
use ccvault_index::chunk::{get_varint as varint, put_varint};

use crate::error::{io, Result};

const MAGIC: &[u8; 8] = b"CCVFACTS";
/// Magic, version, reserved, first offset, end offset, count, body length.
const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 8 + 4 + 4;
const EXTENSION: &str = "facts";
/// Records per file: bounds the writer's buffer (~10 MiB of ~150-byte
/// facts) and what a reader loads at once.
pub(crate) const FILE_RECORDS: usize = 1 << 16;

/// The facts of the records appended since the last file was written, and
/// the writing of full files.
#[derive(Debug)]
pub(crate) struct FactsWriter {
    dir: PathBuf,
    first: u64,
    /// One past the last offset pushed; `None` while empty.
    end: Option<u64>,
    count: u32,
    body: Vec<u8>,
}

impl FactsWriter {
    pub(crate) fn new(dir: PathBuf) -> FactsWriter {
        FactsWriter {
            dir,
            first: 0,
            end: None,
            count: 0,
            body: Vec::new(),
        }
    }

    /// Adds the record at `offset` (after any offset pushed before), whose
    /// payload hashes to `payload_hash`; `facts` empty means it is not an
    /// event (quarantined).
    pub(crate) fn push(&mut self, offset: u64, payload_hash: u64, facts: &[u8]) {
        let delta = match self.end {
            None => {
                self.first = offset;
                0
            }
            Some(end) if offset >= end => offset - end,
            // Out of order: the buffered entries cannot be trusted.
            Some(_) => {
                self.clear();
                self.first = offset;
                0
            }
        };
        put_varint(&mut self.body, delta);
        self.body.extend_from_slice(&payload_hash.to_le_bytes());
        put_varint(&mut self.body, facts.len() as u64);
        self.body.extend_from_slice(facts);
        self.end = Some(offset + 1);
        self.count += 1;
    }

    pub(crate) fn is_full(&self) -> bool {
        self.count as usize >= FILE_RECORDS
    }

    /// Forgets what is buffered (its records will have no facts).
    pub(crate) fn clear(&mut self) {
        self.end = None;
        self.count = 0;
        self.body.clear();
    }

    /// Writes what is buffered as one file, then empties the buffer. The
    /// caller has made the records durable and committed their index. A
    /// failure is logged, never returned: facts are only a cache.
    pub(crate) fn write(&mut self) {
        let Some(end) = self.end else {
            return;
        };
        if let Err(e) = self.write_file(end) {
            tracing::warn!(
                "facts of records {}..{end} not written (a rebuild will parse them): {e}",
                self.first
            );
        }
        self.clear();
    }

    fn write_file(&self, end: u64) -> Result<()> {
        crate::archive::create_private_dir(&self.dir)?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.body.len() + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FACTS_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&self.first.to_le_bytes());
        bytes.extend_from_slice(&end.to_le_bytes());
        bytes.extend_from_slice(&self.count.to_le_bytes());
        let body_len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&body_len.to_le_bytes());
        bytes.extend_from_slice(&self.body);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let path = file_path(&self.dir, self.first);
        let tmp = path.with_extension("facts.tmp");
        crate::archive::remove_file_if_exists(&tmp)?;
        crate::create_private_file(&tmp)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("cannot open", &tmp))?;
        f.write_all(&bytes).map_err(io("cannot write", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io("cannot rename into", &path))?;
        Ok(())
    }
}

/// Deletes every facts file in `dir` (before a whole reindex writes them
/// again).
pub(crate) fn remove_all(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("cannot remove", dir)(e)),
        _ => Ok(()),
    }
}

fn file_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{EXTENSION}"))
}

/// What a facts file says about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact<'a> {
    /// The encoded event ([`ccvault_event::decode_facts`]).
    Event(&'a [u8]),
    /// Not an event (it is quarantined or does not parse).
    NotAnEvent,
}

#[derive(Debug, Clone, Copy)]
struct EntryAt {
    offset: u64,
    payload_hash: u64,
    start: usize,
    len: usize,
}

/// One checked facts file in memory.
#[derive(Debug)]
struct FactsFile {
    end: u64,
    bytes: Vec<u8>,
    entries: Vec<EntryAt>,
}

impl FactsFile {
    /// Reads and checks a whole file: magic, version, CRC, offset range,
    /// and that its entries fill its body exactly.
    fn load(path: &Path, first: u64) -> std::result::Result<FactsFile, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let (content, crc) = bytes
            .split_last_chunk::<4>()
            .ok_or("shorter than its CRC")?;
        if crc32fast::hash(content) != u32::from_le_bytes(*crc) {
            return Err("CRC mismatch".into());
        }
        let header = content.get(..HEADER_LEN).ok_or("shorter than its header")?;
        let le64 = |at: usize| {
            header
                .get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let le32 = |at: usize| {
            header
                .get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
        };
        if header.get(..8) != Some(MAGIC.as_slice()) {
            return Err("not a facts file".into());
        }
        let version = header
            .get(8..10)
            .and_then(|s| s.try_into().ok())
            .map(u16::from_le_bytes);
        if version != Some(FACTS_VERSION) {
            return Err(format!(
                "version {version:?}, this build reads {FACTS_VERSION}"
            ));
        }
        let (Some(start), Some(end), Some(count), Some(body_len)) =
            (le64(12), le64(20), le32(28), le32(32))
        else {
            return Err("header truncated".into());
        };
        if start != first || end <= start {
            return Err(format!(
                "offset range {start}..{end} does not match its name"
            ));
        }
        if content.len() != HEADER_LEN + body_len as usize {
            return Err("body length does not match the header".into());
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut at = HEADER_LEN;
        let mut next = start;
        while at < content.len() {
            let delta = varint(content, &mut at);
            let hash = content
                .get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes);
            at += 8;
            let (Some(delta), Some(payload_hash), Some(len)) =
                (delta, hash, varint(content, &mut at))
            else {
                return Err("entry truncated".into());
            };
            let offset = next.checked_add(delta).ok_or("offset out of range")?;
            let len = usize::try_from(len).map_err(|_| "entry length out of range")?;
            let entry_end = at.checked_add(len).filter(|e| *e <= content.len());
            let Some(entry_end) = entry_end else {
                return Err("entry past the end of the body".into());
            };
            entries.push(EntryAt {
                offset,
                payload_hash,
                start: at,
                len,
            });
            at = entry_end;
            next = offset + 1;
        }
        if entries.len() != count as usize || next != end {
            return Err("entries do not match the header".into());
        }
        Ok(FactsFile {
            end,
            bytes,
            entries,
        })
    }

    fn get(&self, offset: u64) -> Option<(u64, &[u8])> {
        let i = self
            .entries
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()?;
        let e = self.entries.get(i)?;
        Some((e.payload_hash, self.bytes.get(e.start..e.start + e.len)?))
    }
}

/// How a reader fared with the facts files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactsUse {
    /// Records whose facts were found and checked.
    pub found: u64,
    /// Files that could not be used (damaged, stale, another version).
    pub unusable_files: u64,
}

/// Reads the facts of records in increasing offset order, one file in
/// memory at a time (a rebuild's log scan).
#[derive(Debug)]
pub struct FactsCursor {
    dir: PathBuf,
    /// First offset of each file present when the cursor was made.
    files: BTreeMap<u64, PathBuf>,
    /// The file loaded last (its first offset), if it could be used.
    current: Option<(u64, Option<FactsFile>)>,
    used: FactsUse,
}

impl FactsCursor {
    /// The facts files of the archive in `dir`, listed now; none (every
    /// record falls back to parsing) if the directory is missing.
    pub fn open(archive_dir: &Path) -> FactsCursor {
        let dir = crate::Layout::new(archive_dir).facts_dir();
        let mut files = BTreeMap::new();
        if let Ok(list) = std::fs::read_dir(&dir) {
            for entry in list.flatten() {
                let path = entry.path();
                let first = path
                    .extension()
                    .filter(|e| *e == EXTENSION)
                    .and_then(|_| path.file_stem())
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(first) = first {
                    files.insert(first, path);
                }
            }
        }
        FactsCursor {
            dir,
            files,
            current: None,
            used: FactsUse::default(),
        }
    }

    /// The facts of the record at `offset` whose payload is `payload`, if
    /// a usable file has them (and they were made from those bytes).
    pub fn get(&mut self, offset: u64, payload: &[u8]) -> Option<Fact<'_>> {
        let (&first, path) = self.files.range(..=offset).next_back()?;
        if self.current.as_ref().map(|(f, _)| *f) != Some(first) {
            let loaded = match FactsFile::load(path, first) {
                Ok(file) => Some(file),
                Err(why) => {
                    tracing::warn!(
                        "facts file {} not used ({why}); parsing those records instead",
                        path.display()
                    );
                    self.used.unusable_files += 1;
                    None
                }
            };
            self.current = Some((first, loaded));
        }
        let file = self.current.as_ref()?.1.as_ref()?;
        if offset >= file.end {
            return None;
        }
        let (hash, facts) = file.get(offset)?;
        if hash != ccvault_index::payload_hash(payload) {
            return None;
        }
        self.used.found += 1;
        Some(if facts.is_empty() {
            Fact::NotAnEvent
        } else {
            Fact::Event(facts)
        })
    }

    pub fn used(&self) -> FactsUse {
        self.used
    }

    /// The directory the files are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
