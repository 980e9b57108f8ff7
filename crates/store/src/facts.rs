//! Segment facts: what an export row reads of each event (family, type,
//! GUID, agent, the payload's times), kept beside the log so that a reader
//! of a sealed segment need not parse its payloads again
//! (docs/FORMAT.md §5).
//!
//! Invariants:
//! - Derived, never the source of truth: a facts file may be missing,
//!   damaged, of another version or cover only some records; a reader then
//!   parses those payloads and gets the same answers. Nothing read from a
//!   facts file can panic or allocate more than the file's length allows.
//! - A facts file describes only records its writer appended itself, each
//!   as parsed when it was appended (`Keys`: the parse the index uses), and
//!   is written once the writer rolled past the segment, to a temporary
//!   name renamed into place: never partly visible.
//! - A writer opening an archive first removes the facts of any segment
//!   past its last one ([`remove_from`], from [`resume`]), and those of the last one unless
//!   every entry names an offset below the log's end, in which case it
//!   continues them ([`FactsBuilder::resume`]): a crash may have cut that
//!   segment's tail, and the offsets past the cut will be appended again
//!   with other bytes. The records that survived a cut are the ones the
//!   facts describe, so a reader in between reads true facts. The removals
//!   are made durable (the directory synced) before the writer appends: a
//!   power cut that undid one would bring back facts of offsets that by
//!   then hold other records.
//! - An entry names its record's offset and payload length; a reader uses
//!   it only for the record of that offset and length ([`FactsCursor`]).

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ccvault_event::{EventTime, Keys, PayloadTimes, TimeSource};
use ccvault_index::chunk::{get_varint, put_varint};
use ccvault_index::{key_map, KeyMap};
use ccvault_log::vfs::{create_dir_durably, read_file, remove_if_exists};
use ccvault_log::{OpenMode, StdVfs, Vfs};
use xxhash_rust::xxh3::xxh3_64;

/// Magic at the start of every facts file.
pub const FACTS_MAGIC: [u8; 8] = *b"CCVFACTS";
/// The facts version this build reads and writes. 2 (2026-12-06): a
/// payload time past the year 9999 is no time (docs/METRICS.md §2); the
/// index rebuild that its version bump brings rewrites every segment's.
/// 3 (2026-12-07): a payload time with a fraction is read to the
/// millisecond (docs/METRICS.md §1), where it was no time.
pub const FACTS_VERSION: u16 = 3;
/// Length of the header; the compressed body follows.
const HEADER_LEN: usize = 40;
/// zstd level of the body: its names and deltas compress ~2× even at the
/// fastest levels; a file is a few MB a segment (docs/FORMAT.md §5).
const ZSTD_LEVEL: i32 = -3;
/// zstd window of the body (128 KiB).
const FACTS_WINDOW_LOG: u32 = 17;
/// Largest body accepted, compressed or not: a segment of 4 GiB of
/// records of 1 byte would need more, and no real one comes near.
const MAX_BODY: u32 = 1 << 30;

/// The file of `base`'s facts in `dir` (the archive's `facts/`).
pub fn facts_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.facts"))
}

fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".facts")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Removes the facts (and leftover temporary files) of the segments from
/// `base` on, durably: see the module's invariants. A missing directory has
/// none.
pub fn remove_from(vfs: &dyn Vfs, dir: &Path, base: u64) -> std::io::Result<()> {
    if remove_stale(vfs, dir, base)? {
        vfs.sync_dir(dir)?;
    }
    Ok(())
}

/// [`remove_from`] without the directory's sync; whether it removed a file.
fn remove_stale(vfs: &dyn Vfs, dir: &Path, base: u64) -> std::io::Result<bool> {
    let names = match vfs.list_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut removed = false;
    for name in names {
        let stale = name.ends_with(".tmp") || parse_name(&name).is_some_and(|b| b >= base);
        if stale {
            removed |= remove_file_if_exists(vfs, &dir.join(name))?;
        }
    }
    Ok(removed)
}

/// Removes `path`; whether it existed.
fn remove_file_if_exists(vfs: &dyn Vfs, path: &Path) -> std::io::Result<bool> {
    match vfs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a writer about to append to segment `last` (the log's last, which
/// ends before `next_offset`) keeps of the facts in `dir`: those of the
/// last segment are continued if every entry names a record the log holds
/// (its tail may have been cut, and the offsets past the cut will hold
/// other records), else removed, and those of any later segment are
/// removed (see the module's invariants).
pub fn resume(
    vfs: &dyn Vfs,
    dir: &Path,
    last: u64,
    next_offset: u64,
) -> std::io::Result<Option<FactsBuilder>> {
    let mut removed = remove_stale(vfs, dir, last.saturating_add(1))?;
    let resumed = match SegmentFacts::read(vfs, dir, last) {
        Ok(Some(f)) => FactsBuilder::resume(f, next_offset),
        Ok(None) | Err(_) => None,
    };
    if resumed.is_none() {
        removed |= remove_file_if_exists(vfs, &facts_path(dir, last))?;
    }
    // Before the writer appends: a removal a power cut undid would bring
    // back facts of offsets that will hold other records.
    if removed {
        vfs.sync_dir(dir)?;
    }
    Ok(resumed)
}

/// The facts of one segment as its records are appended.
pub struct FactsBuilder {
    base: u64,
    /// The next offset an entry expects (the one after the last entry's).
    next: u64,
    count: u32,
    /// The encoded entries, in chunks of [`ENTRY_CHUNK`] bytes: never
    /// copied to grow, nor held at twice their size.
    entries: Vec<Vec<u8>>,
    /// Each distinct text once: varint length, bytes.
    strings: Vec<u8>,
    /// Where each text's bytes are in `strings`, by id.
    spans: Vec<Range<usize>>,
    /// Text ids by the xxh3 of the text (one hash of a few dozen bytes,
    /// where a `HashMap<Box<str>, _>` hashed them through a streaming
    /// hasher and allocated each; docs/BENCHMARKS.md, issue 14).
    ids: KeyMap<u32>,
    /// The texts whose hash an earlier text had.
    collided: HashMap<Box<[u8]>, u32>,
    /// The ids of the family and type names seen, looked up before any
    /// hashing: a stream has a few dozen.
    names: Vec<(Box<[u8]>, u64)>,
    last_own_ms: i64,
    last_event_ts_ms: i64,
    /// Entries read back from the segment's file by [`FactsBuilder::resume`]:
    /// until more are added, the file already says all these facts say.
    on_file: u32,
}

/// The texts of one entry, as bytes of UTF-8.
struct EntryTexts<'a> {
    family: &'a [u8],
    event_type: &'a [u8],
    guid: Option<&'a [u8]>,
    agent: Option<&'a [u8]>,
}

/// Bytes of entries held in one buffer.
const ENTRY_CHUNK: usize = 256 << 10;
/// The most bytes one entry takes: six varints of at most 10 bytes, the
/// flags, two more varints.
const MAX_ENTRY: usize = 6 * 10 + 1 + 2 * 10;

/// Flag bits of an entry: the own time's source rank (1–7, 0 = none) in the
/// low three bits, and whether an `eventTS` follows.
const HAS_EVENT_TS: u8 = 0x08;

impl FactsBuilder {
    /// The facts of the segment that starts at offset `base`.
    pub fn new(base: u64) -> FactsBuilder {
        FactsBuilder {
            base,
            next: base,
            count: 0,
            entries: Vec::new(),
            strings: Vec::new(),
            spans: Vec::new(),
            ids: key_map(0),
            collided: HashMap::new(),
            names: Vec::new(),
            last_own_ms: 0,
            last_event_ts_ms: 0,
            on_file: 0,
        }
    }

    /// The segment these facts are of.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// [`FactsBuilder::id`] of a family or type name.
    fn name_id(&mut self, name: &[u8]) -> u64 {
        if let Some((_, id)) = self.names.iter().find(|(n, _)| **n == *name) {
            return *id;
        }
        let id = self.id(name);
        // Past a few dozen, a search costs more than the hash.
        if self.names.len() < 64 {
            self.names.push((name.into(), id));
        }
        id
    }

    /// The id of `text` (UTF-8: a reader refuses a file with any other
    /// text), given when it is first seen.
    fn id(&mut self, text: &[u8]) -> u64 {
        let hash = xxh3_64(text);
        let first = match self.ids.get(&hash) {
            Some(&id) => {
                let span = self.spans[id as usize].clone();
                if self.strings.get(span) == Some(text) {
                    return u64::from(id);
                }
                if let Some(&id) = self.collided.get(text) {
                    return u64::from(id);
                }
                false
            }
            None => true,
        };
        let id = u32::try_from(self.spans.len()).unwrap_or(u32::MAX);
        put_varint(&mut self.strings, text.len() as u64);
        let start = self.strings.len();
        self.strings.extend_from_slice(text);
        self.spans.push(start..self.strings.len());
        if first {
            self.ids.insert(hash, id);
        } else {
            self.collided.insert(text.into(), id);
        }
        u64::from(id)
    }

    /// Adds the record at `offset` (past every one added before), its
    /// payload and the keys it was parsed to. A record whose names are not
    /// verbatim in its payload gets no entry (a reader parses it).
    pub fn push(&mut self, offset: u64, payload: &[u8], keys: &Keys) {
        let Some((family, event_type)) = keys.names.as_ref().and_then(|n| n.bytes(payload)) else {
            return;
        };
        let texts = EntryTexts {
            family,
            event_type,
            guid: keys.interaction_guid.as_deref().map(str::as_bytes),
            agent: keys.agent_id.as_deref().map(str::as_bytes),
        };
        self.push_entry(offset, payload.len() as u64, texts, keys.times);
    }

    /// The facts of `facts`' segment continued where its file ends, if every
    /// entry of it names a record below `next_offset` (a record the log
    /// holds, so the one the entry was made from: see the module's
    /// invariants); `None` if one does not, or is malformed.
    pub fn resume(facts: SegmentFacts, next_offset: u64) -> Option<FactsBuilder> {
        let mut b = FactsBuilder::new(facts.base);
        let mut cursor = facts.into_cursor();
        while cursor.left > 0 {
            let e = cursor.next_entry()?;
            if e.offset >= next_offset {
                return None;
            }
            let f = cursor.facts.fact(&e)?;
            let texts = EntryTexts {
                family: f.family.as_bytes(),
                event_type: f.event_type.as_bytes(),
                guid: f.interaction_guid.map(str::as_bytes),
                agent: f.agent_id.map(str::as_bytes),
            };
            b.push_entry(e.offset, e.payload_len, texts, f.times);
        }
        b.on_file = b.count;
        Some(b)
    }

    fn push_entry(
        &mut self,
        offset: u64,
        payload_len: u64,
        texts: EntryTexts<'_>,
        t: PayloadTimes,
    ) {
        let Some(skip) = offset.checked_sub(self.next) else {
            return;
        };
        let family = self.name_id(texts.family);
        let event_type = self.name_id(texts.event_type);
        let guid = texts.guid.map_or(0, |g| self.id(g) + 1);
        let agent = texts.agent.map_or(0, |a| self.id(a) + 1);
        if self
            .entries
            .last()
            .is_none_or(|c| c.len() + MAX_ENTRY > c.capacity())
        {
            self.entries.push(Vec::with_capacity(ENTRY_CHUNK));
        }
        let Some(e) = self.entries.last_mut() else {
            return;
        };
        put_varint(e, skip);
        put_varint(e, payload_len);
        put_varint(e, family);
        put_varint(e, event_type);
        put_varint(e, guid);
        put_varint(e, agent);
        let flags = t.own.map_or(0, |o| o.source.rank())
            | if t.event_ts_ms.is_some() {
                HAS_EVENT_TS
            } else {
                0
            };
        e.push(flags);
        if let Some(own) = t.own {
            put_varint(e, zigzag(own.ms.wrapping_sub(self.last_own_ms)));
            self.last_own_ms = own.ms;
        }
        if let Some(ts) = t.event_ts_ms {
            put_varint(e, zigzag(ts.wrapping_sub(self.last_event_ts_ms)));
            self.last_event_ts_ms = ts;
        }
        self.next = offset + 1;
        self.count += 1;
    }

    /// Entries added so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether these facts say more than the file they were resumed from
    /// (all of them, when not resumed): else writing them changes nothing,
    /// and a writer that appended nothing (a read command indexing what a
    /// crash left) wrote on a full disk only to warn that it could not.
    pub fn has_new_entries(&self) -> bool {
        self.count > self.on_file
    }

    /// The file's bytes: header, then the zstd of the texts and entries.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let (header, body) = self.encode_parts()?;
        Ok([&header[..], &body].concat())
    }

    /// The header and the body, the body compressed straight from the
    /// builder's buffers (no copy of them made whole first).
    fn encode_parts(&self) -> std::io::Result<([u8; HEADER_LEN], Vec<u8>)> {
        let mut count = Vec::with_capacity(10);
        put_varint(&mut count, self.spans.len() as u64);
        let raw_len =
            count.len() + self.strings.len() + self.entries.iter().map(Vec::len).sum::<usize>();
        let too_big = || std::io::Error::other("segment facts larger than 1 GiB");
        let raw_len = u32::try_from(raw_len)
            .ok()
            .filter(|n| *n <= MAX_BODY)
            .ok_or_else(too_big)?;
        let mut z = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
        z.set_pledged_src_size(Some(u64::from(raw_len)))?;
        // A small window: the encoder's buffers are the import's memory
        // (docs/OPERATIONS.md bounds it); most repeats are near.
        z.window_log(FACTS_WINDOW_LOG)?;
        z.include_contentsize(true)?;
        z.write_all(&count)?;
        z.write_all(&self.strings)?;
        for chunk in &self.entries {
            z.write_all(chunk)?;
        }
        let body = z.finish()?;
        let body_len = u32::try_from(body.len())
            .ok()
            .filter(|n| *n <= MAX_BODY)
            .ok_or_else(too_big)?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&FACTS_MAGIC);
        header[8..10].copy_from_slice(&FACTS_VERSION.to_le_bytes());
        header[12..20].copy_from_slice(&self.base.to_le_bytes());
        header[20..24].copy_from_slice(&self.count.to_le_bytes());
        header[24..28].copy_from_slice(&raw_len.to_le_bytes());
        header[28..32].copy_from_slice(&body_len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[..36]);
        crc.update(&body);
        header[36..40].copy_from_slice(&crc.finalize().to_le_bytes());
        Ok((header, body))
    }

    /// Writes the file into `dir` (created if missing, durably): to a
    /// temporary name, flushed to the device, renamed, and the directory
    /// synced. Facts are derived, so a torn file would cost no data (it
    /// fails its checksum and is not used), but `verify` would report it as
    /// damage until someone removed it; flushed before the rename, a power
    /// cut leaves the file whole, or the one before it, or none. The
    /// directory synced, a file written before a power cut is still there
    /// after it (else readers of its segment would parse its events until
    /// a `reindex`). An `fdatasync` and a directory `fsync` a segment, on
    /// the facts thread.
    pub fn write(&self, vfs: &dyn Vfs, dir: &Path) -> std::io::Result<PathBuf> {
        let (header, body) = self.encode_parts()?;
        create_dir_durably(vfs, dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = facts_path(dir, self.base);
        let tmp = path.with_extension("facts.tmp");
        remove_if_exists(vfs, &tmp)?;
        let f = vfs
            .open(&tmp, OpenMode::CreateNew, "creating")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        f.write_all_at(&header, 0)?;
        f.write_all_at(&body, header.len() as u64)?;
        f.sync_data()?;
        drop(f);
        vfs.rename(&tmp, &path)?;
        vfs.sync_dir(dir)?;
        Ok(path)
    }
}

/// A thread writing the facts handed to it, one segment after another
/// (one thread for a writer's life: its allocator heap is reused).
pub struct FactsWriter {
    to_write: Option<std::sync::mpsc::SyncSender<FactsBuilder>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FactsWriter {
    /// Starts the thread, writing into `dir`. A failed write is logged:
    /// it costs only speed (readers parse those events).
    pub fn start(vfs: Arc<dyn Vfs>, dir: PathBuf) -> std::io::Result<FactsWriter> {
        let (to_write, written) = std::sync::mpsc::sync_channel::<FactsBuilder>(1);
        let thread = std::thread::Builder::new()
            .name("ccvault-facts".into())
            .spawn(move || {
                for facts in written {
                    if let Err(e) = facts.write(vfs.as_ref(), &dir) {
                        tracing::warn!(
                            "could not write the facts of segment {} in {} ({e}); readers parse its events instead",
                            facts.base(),
                            dir.display()
                        );
                    }
                }
            })?;
        Ok(FactsWriter {
            to_write: Some(to_write),
            thread: Some(thread),
        })
    }

    /// Hands `facts` to the thread (waiting while it writes the one
    /// before, if that is not done).
    pub fn write(&mut self, facts: FactsBuilder) {
        let sent = match &self.to_write {
            Some(tx) => tx.send(facts).is_ok(),
            None => false,
        };
        if !sent {
            tracing::warn!("the facts writer stopped: a segment's facts are not written");
        }
    }

    /// Waits for every write handed over, and ends the thread.
    pub fn finish(&mut self) {
        drop(self.to_write.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the facts writer stopped unexpectedly");
            }
        }
    }
}

impl Drop for FactsWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// A cursor over the facts of segment `base` in `dir`, if it has a usable
/// facts file; one that cannot be read, is damaged or is of another
/// version is logged and not used (its events are parsed).
pub fn open_cursor(dir: &Path, base: u64) -> Option<FactsCursor> {
    match SegmentFacts::read(&StdVfs, dir, base) {
        Ok(f) => f.map(SegmentFacts::into_cursor),
        Err(e) => {
            tracing::debug!("{e}; its events are parsed instead");
            None
        }
    }
}

/// Why a facts file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("facts {path}: {why}")]
pub struct FactsError {
    pub path: PathBuf,
    pub why: String,
}

/// The facts of one segment, read and checked whole.
#[derive(Debug)]
pub struct SegmentFacts {
    base: u64,
    count: u32,
    /// The decompressed body.
    raw: Vec<u8>,
    /// The texts, checked as UTF-8 once.
    texts: String,
    /// Each text's range in `texts`, by id.
    strings: Vec<Range<usize>>,
    /// Where the entries start in `raw`.
    entries_at: usize,
}

impl SegmentFacts {
    /// Reads the facts of `base` from `dir`; `Ok(None)` when there are none.
    pub fn read(vfs: &dyn Vfs, dir: &Path, base: u64) -> Result<Option<SegmentFacts>, FactsError> {
        let path = facts_path(dir, base);
        let bytes = match read_file(vfs, &path, u64::from(MAX_BODY) + HEADER_LEN as u64) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(FactsError {
                    path,
                    why: e.to_string(),
                })
            }
        };
        Self::decode(&bytes, base)
            .map(Some)
            .map_err(|why| FactsError { path, why })
    }

    /// Checks and decompresses a facts file of segment `base`.
    pub fn decode(bytes: &[u8], base: u64) -> Result<SegmentFacts, String> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| format!("{} bytes, shorter than its header", bytes.len()))?;
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if header[..8] != FACTS_MAGIC {
            return Err("not a facts file (bad magic)".into());
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != FACTS_VERSION {
            return Err(format!(
                "facts version {version} (this build reads {FACTS_VERSION})"
            ));
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[12..20]);
        let file_base = u64::from_le_bytes(b);
        if file_base != base {
            return Err(format!("of segment {file_base}, not {base}"));
        }
        let (count, raw_len, body_len, crc) = (u32_at(20), u32_at(24), u32_at(28), u32_at(36));
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != u64::from(body_len) {
            return Err(format!(
                "body of {} bytes where the header says {body_len}",
                body.len()
            ));
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&header[..36]);
        h.update(body);
        if h.finalize() != crc {
            return Err("checksum mismatch".into());
        }
        if raw_len > MAX_BODY {
            return Err(format!("claims {raw_len} bytes uncompressed"));
        }
        let raw = zstd::bulk::decompress(body, raw_len as usize)
            .map_err(|e| format!("cannot decompress: {e}"))?;
        if raw.len() != raw_len as usize {
            return Err(format!(
                "{} bytes uncompressed where the header says {raw_len}",
                raw.len()
            ));
        }
        let mut at = 0;
        let n = get_varint(&raw, &mut at).ok_or("its text count is cut")?;
        // Each text takes at least one byte.
        if n > raw.len() as u64 {
            return Err(format!("claims {n} texts"));
        }
        let mut strings = Vec::with_capacity(n as usize);
        let mut texts = String::new();
        for _ in 0..n {
            let len = get_varint(&raw, &mut at).ok_or("a text is cut")?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| at.checked_add(l))
                .filter(|e| *e <= raw.len())
                .ok_or("a text runs past the end")?;
            let text = std::str::from_utf8(&raw[at..end]).map_err(|_| "a text is not UTF-8")?;
            strings.push(texts.len()..texts.len() + text.len());
            texts.push_str(text);
            at = end;
        }
        Ok(SegmentFacts {
            base,
            count,
            raw,
            texts,
            strings,
            entries_at: at,
        })
    }

    /// The segment these are of.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Entries the file holds.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// A cursor over the entries, in offset order; it owns the facts.
    pub fn into_cursor(self) -> FactsCursor {
        FactsCursor {
            at: self.entries_at,
            next: self.base,
            left: self.count,
            last_own_ms: 0,
            last_event_ts_ms: 0,
            pending: None,
            broken: false,
            mismatched: 0,
            facts: self,
        }
    }

    fn text(&self, id: u64) -> Option<&str> {
        let r = self.strings.get(usize::try_from(id).ok()?)?;
        self.texts.get(r.clone())
    }

    fn fact(&self, e: &Entry) -> Option<Fact<'_>> {
        let optional = |id: u64| match id {
            0 => Some(None),
            n => self.text(n - 1).map(Some),
        };
        Some(Fact {
            offset: e.offset,
            payload_len: e.payload_len,
            family: self.text(e.family)?,
            event_type: self.text(e.event_type)?,
            interaction_guid: optional(e.guid)?,
            agent_id: optional(e.agent)?,
            times: e.times,
        })
    }
}

/// What a segment's facts say of one record: as much of the event as an
/// export row needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact<'f> {
    pub offset: u64,
    pub payload_len: u64,
    pub family: &'f str,
    pub event_type: &'f str,
    pub interaction_guid: Option<&'f str>,
    pub agent_id: Option<&'f str>,
    pub times: PayloadTimes,
}

/// One entry as stored: its texts by id.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    payload_len: u64,
    family: u64,
    event_type: u64,
    /// 0: none; else the text's id + 1 (as `agent`).
    guid: u64,
    agent: u64,
    times: PayloadTimes,
}

/// Reads a segment's entries forward, for records asked for in increasing
/// offset order.
#[derive(Debug)]
pub struct FactsCursor {
    facts: SegmentFacts,
    at: usize,
    next: u64,
    left: u32,
    last_own_ms: i64,
    last_event_ts_ms: i64,
    /// The entry read past the record last asked for.
    pending: Option<Entry>,
    /// A malformed entry was met: none after it is used.
    broken: bool,
    /// Entries of a record asked for whose payload length differed.
    mismatched: u64,
}

impl FactsCursor {
    /// The segment the facts are of.
    pub fn base(&self) -> u64 {
        self.facts.base
    }

    /// The fact of the record at `offset` whose payload has `payload_len`
    /// bytes, if the file has one; offsets must be asked for in increasing
    /// order (one asked for again, or an earlier one, gets none).
    pub fn get(&mut self, offset: u64, payload_len: usize) -> Option<Fact<'_>> {
        loop {
            let e = match self.pending.take() {
                Some(e) => e,
                None => self.next_entry()?,
            };
            if e.offset < offset {
                continue;
            }
            if e.offset > offset {
                self.pending = Some(e);
                return None;
            }
            if e.payload_len != payload_len as u64 {
                self.mismatched += 1;
                return None;
            }
            let fact = self.facts.fact(&e);
            if fact.is_none() {
                self.broken = true;
            }
            return fact;
        }
    }

    /// Whether every entry read so far was well formed.
    pub fn is_sound(&self) -> bool {
        !self.broken
    }

    /// How many records asked for had an entry of another payload length
    /// (none should: a sign of facts not of this log).
    pub fn mismatched(&self) -> u64 {
        self.mismatched
    }

    fn next_entry(&mut self) -> Option<Entry> {
        if self.left == 0 || self.broken {
            return None;
        }
        let e = self.decode_entry();
        if e.is_none() {
            self.broken = true;
        }
        e
    }

    fn decode_entry(&mut self) -> Option<Entry> {
        let raw = &self.facts.raw;
        let at = &mut self.at;
        let offset = self.next.checked_add(get_varint(raw, at)?)?;
        let payload_len = get_varint(raw, at)?;
        let family = get_varint(raw, at)?;
        let event_type = get_varint(raw, at)?;
        let guid = get_varint(raw, at)?;
        let agent = get_varint(raw, at)?;
        let flags = *raw.get(*at)?;
        *at += 1;
        if flags & !(HAS_EVENT_TS | 0x07) != 0 {
            return None;
        }
        let own = match flags & 0x07 {
            0 => None,
            rank => {
                let ms = self
                    .last_own_ms
                    .wrapping_add(unzigzag(get_varint(raw, at)?));
                self.last_own_ms = ms;
                Some(EventTime {
                    ms,
                    source: TimeSource::of_rank(rank)?,
                })
            }
        };
        let event_ts_ms = if flags & HAS_EVENT_TS != 0 {
            let ms = self
                .last_event_ts_ms
                .wrapping_add(unzigzag(get_varint(raw, at)?));
            self.last_event_ts_ms = ms;
            Some(ms)
        } else {
            None
        };
        self.next = offset.checked_add(1)?;
        self.left -= 1;
        Some(Entry {
            offset,
            payload_len,
            family,
            event_type,
            guid,
            agent,
            times: PayloadTimes { own, event_ts_ms },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccvault_event::decode_message;

    fn keys(raw: &[u8]) -> Keys {
        decode_message(raw).outcome.expect("an event")
    }

    const A: &[u8] = br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-a-t1","interactionEventTS":1763900000}}"#;
    const B: &[u8] = br#"{"AgentStatusChange":{"agentId":"ag1","statusEventTS":1763900005,"eventTS":1763800000,"newState":3}}"#;
    const ESCAPED: &[u8] =
        br#"{"Interaction":{"event":"Interaction\u0043reated","interactionGUID":"int-b-t1"}}"#;

    fn built() -> FactsBuilder {
        let mut b = FactsBuilder::new(100);
        b.push(100, A, &keys(A));
        b.push(101, B, &keys(B));
        b.push(103, ESCAPED, &keys(ESCAPED));
        b.push(104, A, &keys(A));
        b
    }

    #[test]
    fn entries_read_back_as_the_parse_gave_them() {
        let b = built();
        assert_eq!(b.len(), 3, "the escaped type gets no entry");
        let f = SegmentFacts::decode(&b.encode().expect("encodes"), 100).expect("decodes");
        let mut c = f.into_cursor();
        let a = c.get(100, A.len()).expect("fact of 100");
        assert_eq!(
            (a.family, a.event_type, a.interaction_guid, a.agent_id),
            ("Interaction", "InteractionCreated", Some("int-a-t1"), None)
        );
        assert_eq!(a.times, keys(A).times);
        let s = c.get(101, B.len()).expect("fact of 101");
        assert_eq!(
            (s.family, s.event_type, s.agent_id),
            ("AgentStatusChange", "AgentStatusChange", Some("ag1"))
        );
        assert_eq!(s.times, keys(B).times);
        assert_eq!(c.get(102, 10), None, "no record there");
        assert_eq!(c.get(103, ESCAPED.len()), None, "not verbatim: parsed");
        assert_eq!(c.get(104, A.len() + 1), None, "another length: not used");
        assert!(c.is_sound());
    }

    #[test]
    fn many_entries_read_back_in_order() {
        let mut b = FactsBuilder::new(0);
        let events: Vec<Vec<u8>> = (0..40_000u64)
            .map(|i| {
                format!(
                    r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{}-t{}","agentId":"ag{}","interactionEventTS":{},"eventTS":{}}}}}"#,
                    i / 7,
                    i % 3,
                    i % 11,
                    1_763_900_000 + (i * 7919) % 5000,
                    1_763_800_000 + i / 9
                )
                .into_bytes()
            })
            .collect();
        for (i, e) in events.iter().enumerate() {
            b.push(i as u64 * 2, e, &keys(e));
        }
        assert!(b.entries.len() > 2, "spans several chunks");
        let f = SegmentFacts::decode(&b.encode().expect("encodes"), 0).expect("decodes");
        assert_eq!(f.len(), 40_000);
        let mut c = f.into_cursor();
        for (i, e) in events.iter().enumerate() {
            let k = keys(e);
            let fact = c.get(i as u64 * 2, e.len()).expect("a fact");
            assert_eq!(fact.interaction_guid, k.interaction_guid.as_deref());
            assert_eq!(fact.agent_id, k.agent_id.as_deref());
            assert_eq!(fact.times, k.times);
            assert_eq!(fact.event_type, "InteractionQueued");
        }
        assert!(c.is_sound());
    }

    #[test]
    fn resumed_facts_keep_their_entries_only_below_the_logs_end() {
        let f = SegmentFacts::decode(&built().encode().expect("encodes"), 100).expect("decodes");
        assert!(FactsBuilder::resume(f, 104).is_none(), "an entry at 104");
        let f = SegmentFacts::decode(&built().encode().expect("encodes"), 100).expect("decodes");
        let mut b = FactsBuilder::resume(f, 105).expect("every entry below 105");
        assert_eq!(b.len(), 3);
        // Resumed and nothing added: the file says it all already, and a
        // writer that appended nothing writes nothing.
        assert!(!b.has_new_entries() && built().has_new_entries());
        b.push(105, B, &keys(B));
        assert!(b.has_new_entries());
        let f = SegmentFacts::decode(&b.encode().expect("encodes"), 100).expect("decodes");
        let mut c = f.into_cursor();
        for (offset, raw) in [(100, A), (101, B), (104, A), (105, B)] {
            let fact = c.get(offset, raw.len()).expect("a fact");
            let k = keys(raw);
            assert_eq!(fact.times, k.times, "{offset}");
            assert_eq!(fact.agent_id, k.agent_id.as_deref(), "{offset}");
            assert_eq!(
                fact.interaction_guid,
                k.interaction_guid.as_deref(),
                "{offset}"
            );
        }
    }

    #[test]
    fn a_cursor_skips_records_not_asked_for() {
        let f = SegmentFacts::decode(&built().encode().expect("encodes"), 100).expect("decodes");
        let mut c = f.into_cursor();
        assert_eq!(c.get(104, A.len()).map(|f| f.offset), Some(104));
        assert_eq!(c.get(105, A.len()), None);
    }

    #[test]
    fn every_flipped_byte_or_cut_is_refused_or_harmless() {
        let bytes = built().encode().expect("encodes");
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(
                    SegmentFacts::decode(&bad, 100).is_err(),
                    "byte {i} flipped was accepted"
                );
            }
        }
        for cut in 0..bytes.len() {
            assert!(SegmentFacts::decode(&bytes[..cut], 100).is_err());
        }
        assert!(
            SegmentFacts::decode(&bytes, 99).is_err(),
            "another segment's"
        );
    }

    #[test]
    fn files_are_named_by_base_and_removed_from_a_base_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let facts = dir.path().join("facts");
        let mut b = FactsBuilder::new(100);
        b.push(100, A, &keys(A));
        b.write(&StdVfs, &facts).expect("written");
        let mut c = FactsBuilder::new(200);
        c.push(200, A, &keys(A));
        c.write(&StdVfs, &facts).expect("written");
        std::fs::write(facts.join("00000000000000000300.facts.tmp"), b"torn").expect("tmp");
        assert!(SegmentFacts::read(&StdVfs, &facts, 100)
            .expect("reads")
            .is_some());
        remove_from(&StdVfs, &facts, 200).expect("removed");
        assert!(SegmentFacts::read(&StdVfs, &facts, 100)
            .expect("reads")
            .is_some());
        assert!(SegmentFacts::read(&StdVfs, &facts, 200)
            .expect("reads")
            .is_none());
        let left: Vec<_> = std::fs::read_dir(&facts)
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        remove_from(&StdVfs, &dir.path().join("none"), 0).expect("a missing directory has none");
    }
}
