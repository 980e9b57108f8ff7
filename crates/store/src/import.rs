//! Importing NDJSON streams and legacy JSON captures (input shape 3,
//! docs/OPERATIONS.md; split into messages by [`crate::split`]): files or
//! stdin, plain or gzip.
//!
//! Guarantees:
//! - Every non-blank line (or JSON value) becomes an outcome: archived,
//!   quarantined, duplicate, or rejected with the line number. No message
//!   stops the import; only an I/O error of the archive does.
//! - Memory is bounded whatever the input: lines are read with a cap of
//!   `max_record_bytes` (longer ones are skipped to their newline and
//!   rejected), and batches are bounded in count and bytes.
//! - The progress callback reports a line as done only when its batch is
//!   durable (the acknowledgement contract).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ccvault_log::SourceKind;

use crate::archive::{now_ms, Archive, Incoming, Outcome, Prepared};
use crate::error::{io, Result, StoreError};
use crate::gzip::{is_trailing_bytes, GzipMembers, GZIP_MAGIC};
use crate::pause::{LineWatch, PauseProbe, WatchedInput, PAUSE};
use crate::split::{InputFormat, Splitter, Undecided};

const BATCH_LINES: usize = 16_384;
const BATCH_BYTES: usize = 16 << 20;

/// A line that was not archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub source: String,
    pub line: u64,
    pub reason: String,
}

/// Totals of one import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub archived: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    /// Transport control messages, counted and not archived.
    pub control: u64,
    pub rejected: Vec<Rejected>,
    pub payload_bytes: u64,
}

impl ImportSummary {
    pub fn absorb(&mut self, other: &ImportSummary) {
        self.lines += other.lines;
        self.archived += other.archived;
        self.quarantined += other.quarantined;
        self.duplicates += other.duplicates;
        self.control += other.control;
        self.rejected.extend(other.rejected.iter().cloned());
        self.payload_bytes += other.payload_bytes;
    }
}

/// Progress after a durable batch: its source, the last line of it now
/// durable, the batch's own outcomes, the running totals, and the bytes of
/// its source read through it.
pub struct Progress<'a> {
    pub source: &'a str,
    pub durable_through_line: u64,
    pub landed: &'a ImportSummary,
    pub summary: &'a ImportSummary,
    pub input_bytes: u64,
}

/// Wraps `input` (read from `source`, a path or `-`) in a gzip decoder
/// when it starts with the gzip magic.
pub fn maybe_gunzip<'a>(
    mut input: impl BufRead + 'a,
    source: &str,
) -> Result<Box<dyn BufRead + 'a>> {
    let head = input.fill_buf().map_err(io("cannot read input", source))?;
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            GzipMembers::new(input),
        )));
    }
    if let Some(why) = refused_input(head, source) {
        return Err(StoreError::Input(why));
    }
    Ok(Box::new(input))
}

/// Why an input whose first bytes are `head` (512 of them tell a tar
/// archive) is refused: another compression than gzip, a tar archive, or
/// text in UTF-16 or UTF-32, whose bytes read as
/// UTF-8 lines would be archived as quarantined lines, for good. `None`
/// when it is not. `import` asks this of every named file before it
/// archives anything.
pub fn refused_input(head: &[u8], source: &str) -> Option<String> {
    if let Some((kind, command)) = other_compression(head) {
        return Some(format!(
            "{source}: this is a {kind} file, and ccvault decompresses only gzip: decompress it first (`{command} FILE | ccvault import -`)"
        ));
    }
    if is_tar(head) {
        return Some(format!(
            "{source}: this is a tar archive, and ccvault imports the events themselves: extract them first (`tar -xOf FILE | ccvault import -`)"
        ));
    }
    // A UTF-8 byte order mark before UTF-16 text (a converter's, then an
    // editor's) hides the NUL beside its first character no more.
    let (encoding, how) = wide_text(head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head))?;
    Some(format!(
        "{source}: this is {encoding} text ({how}), and events are UTF-8 JSON: convert it first (`iconv -f {encoding} -t UTF-8 FILE | ccvault import -`)"
    ))
}

/// Why the named file `file` would be refused as an input, looking inside
/// it when it is gzip ([`maybe_gunzip`]'s refusals): `import` asks this
/// of every named file before it archives anything. A file it cannot read
/// is not refused here: reading it says why.
pub fn refused_file(file: std::fs::File, source: &str) -> Option<String> {
    let gzip = match maybe_gunzip(BufReader::with_capacity(64 * 1024, file), source) {
        Err(StoreError::Input(why)) => return Some(why),
        Err(_) => return None,
        Ok(gzip) => gzip,
    };
    refused_inside(gzip, source).ok().flatten()
}

/// [`refused_inside_gzip`] of the decompressed `input`'s first block
/// (peeked at, not consumed). An error reading it is returned, for the
/// caller to report as it reports its first read.
fn refused_inside(mut input: impl BufRead, source: &str) -> std::io::Result<Option<String>> {
    loop {
        match input.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(inner) => return Ok(refused_inside_gzip(inner, source)),
        }
    }
}

/// Why a gzip input whose decompressed first bytes are `inner` is
/// refused: [`refused_input`] of what it holds (a `.tar.gz`), or gzip
/// again (a `.gz.gz`). Until 2026-12-07 their blocks were archived as
/// quarantined lines, for good, and the import exited 0 (outside audit).
fn refused_inside_gzip(inner: &[u8], source: &str) -> Option<String> {
    if inner.starts_with(&GZIP_MAGIC) {
        return Some(format!(
            "{source}: this gzip file holds another gzip file (it was compressed twice): decompress it once first (`gzip -dc FILE | ccvault import -`)"
        ));
    }
    refused_input(inner, &format!("{source} (inside its gzip)"))
}

/// Whether `head` is the start of a tar archive: the POSIX (`ustar\0`) or
/// GNU (`ustar  `) magic at byte 257 of its first header.
fn is_tar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// The byte order marks of UTF-16 and UTF-32 text, and its encoding.
const WIDE_MARKS: [(&[u8], &str); 4] = [
    (b"\x00\x00\xFE\xFF", "UTF-32BE"),
    (b"\xFF\xFE\x00\x00", "UTF-32LE"),
    (b"\xFE\xFF", "UTF-16BE"),
    (b"\xFF\xFE", "UTF-16LE"),
];

/// The magic bytes of the compressions other than gzip that captures
/// come in, what each is, and the command that undoes it.
const OTHER_COMPRESSIONS: [(&[u8], &str, &str); 6] = [
    (b"\xFD7zXZ\x00", "xz-compressed", "xz -dc"),
    (b"BZh", "bzip2-compressed", "bzip2 -dc"),
    (b"\x28\xB5\x2F\xFD", "zstd-compressed", "zstd -dc"),
    (b"PK\x03\x04", "zip", "unzip -p"),
    (b"7z\xBC\xAF\x27\x1C", "7-Zip", "7z x -so"),
    (b"\x04\x22\x4D\x18", "lz4-compressed", "lz4 -dc"),
];

/// Whether `head` may still become a magic number an input is told by
/// (gzip's, another compression's, a byte order mark): it is a strict
/// prefix of one; or wide text ([`wide_text`], after a UTF-8 byte order
/// mark too), told by the NULs of its first two code units: one byte, or
/// fewer than the 8 bytes of two
/// UTF-32 units with a NUL among them (a pipe's first write of 1 to 3
/// bytes of UTF-16 was read as text until 2026-12-07: an outside audit).
fn cuts_a_magic(head: &[u8]) -> bool {
    let cut = |magic: &[u8]| head.len() < magic.len() && magic.starts_with(head);
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let wide_so_far = text.len() < 2 || (text.len() < 8 && text.contains(&0));
    wide_so_far
        || cut(&GZIP_MAGIC)
        || cut(b"\xEF\xBB\xBF")
        || WIDE_MARKS.iter().any(|(m, _)| cut(m))
        || OTHER_COMPRESSIONS.iter().any(|(m, ..)| cut(m))
}

/// `input` with its first bytes read until they are no strict prefix of a
/// magic number, or it ends: a live input's first write may cut one (`1f`
/// alone, then `8b…`), and one cut was read as text: a gzip feed's bytes
/// archived as quarantined lines, an xz one not refused (an outside
/// audit). Only a prefix of a magic is waited on, never a whole line.
fn with_whole_magic<R: BufRead>(
    mut input: R,
) -> std::io::Result<std::io::Chain<std::io::Cursor<Vec<u8>>, R>> {
    let mut head = Vec::new();
    loop {
        let got = match input.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if got.is_empty() {
            break;
        }
        // The whole block: what follows reads it first, as it would have.
        let take = got.len();
        head.extend_from_slice(got);
        input.consume(take);
        if !cuts_a_magic(&head) {
            break;
        }
    }
    Ok(std::io::Cursor::new(head).chain(input))
}

/// The encoding of JSON text in UTF-16 or UTF-32 (PowerShell 5's `>`
/// writes UTF-16), told by its byte order mark or by the NUL bytes of its
/// first characters: each of the first two (or up to four) is an ASCII
/// character in a code unit of NULs, the first one opening JSON. One stray
/// NUL byte before UTF-8 text is not that (until 2026-12-07 a NUL beside
/// the first character sufficed, and such a file was refused as UTF-16,
/// with advice that garbled it: an outside audit); it is read as UTF-8,
/// and the line holding it quarantined.
fn wide_text(head: &[u8]) -> Option<(&'static str, &'static str)> {
    if let Some(&(_, encoding)) = WIDE_MARKS.iter().find(|(mark, _)| head.starts_with(mark)) {
        return Some((encoding, "its byte order mark"));
    }
    let opens = |b: u8| matches!(b, b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n');
    // The code units of `width` bytes, the character at `at` in each.
    let wide = |width: usize, at: usize| {
        let units: Vec<&[u8]> = head.chunks_exact(width).take(4).collect();
        units.len() >= 2
            && units.first().is_some_and(|u| opens(u[at]))
            && units.iter().all(|u| {
                u.iter().enumerate().all(|(i, &b)| {
                    if i == at {
                        b != 0 && b.is_ascii()
                    } else {
                        b == 0
                    }
                })
            })
    };
    let encoding = [
        ("UTF-32BE", 4, 3),
        ("UTF-32LE", 4, 0),
        ("UTF-16BE", 2, 1),
        ("UTF-16LE", 2, 0),
    ]
    .into_iter()
    .find(|&(_, width, at)| wide(width, at))?
    .0;
    Some((encoding, "the NUL bytes of its first characters"))
}

/// The compression (and the command that undoes it) whose magic bytes
/// `head` starts with, among those other than gzip that captures come in.
fn other_compression(head: &[u8]) -> Option<(&'static str, &'static str)> {
    OTHER_COMPRESSIONS
        .iter()
        .find(|(magic, ..)| head.starts_with(magic))
        .map(|&(_, kind, command)| (kind, command))
}

/// How `import` reads an input file: `O_DIRECT` when it is larger than the
/// page cache can keep ([`DirectRead::Auto`]), always, or never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectRead {
    #[default]
    Auto,
    Always,
    Never,
}

/// Buffer of an input read through the page cache (and of stdin).
const INPUT_BUFFER: usize = 1 << 20;

/// Whether an input file of `len` bytes is read with `O_DIRECT` under
/// [`DirectRead::Auto`], given the memory the kernel reports available
/// (`MemAvailable`, bytes; `None` where unknown): when the file is larger
/// than half of it. An import reads its input once, so the page cache only
/// helps when the file is already in it, which a file that large (beside
/// the archive being written, a quarter of its size, and its index) mostly
/// is not; read through the cache it costs 0.4–0.6 s of system CPU per GB
/// and evicts the archive's pages. A smaller file, likely still cached
/// (just written or copied), is cheaper read from memory than from the
/// device (docs/BENCHMARKS.md, "direct reads").
pub fn direct_by_size(len: u64, available: Option<u64>) -> bool {
    available.is_some_and(|a| len > a / 2)
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// An input ready to be imported ([`import_stream_as`]).
pub struct OpenedInput {
    pub reader: Box<dyn BufRead + Send>,
    /// Whether it is read with `O_DIRECT`.
    pub direct: bool,
    /// For a live input (not a regular file): says when it paused.
    pub pause: Option<PauseProbe>,
}

impl OpenedInput {
    fn buffered(file: std::fs::File, regular: bool) -> Self {
        if regular {
            return OpenedInput {
                reader: Box::new(BufReader::with_capacity(INPUT_BUFFER, file)),
                direct: false,
                pause: None,
            };
        }
        let (reader, probe) = WatchedInput::new(INPUT_BUFFER, file);
        OpenedInput {
            reader: Box::new(reader),
            direct: false,
            pause: Some(probe),
        }
    }
}

/// Prepares `file` (opened from `path`) to be imported: read with
/// `O_DIRECT` by a read-ahead thread ([`ccvault_log::DirectInput`]) when
/// `mode` says so and it is a regular file, else through a buffer. A file
/// system that refuses `O_DIRECT` (at open or at the first read) gets
/// ordinary reads. A gzip file is decompressed from whichever reader. A
/// FIFO or a device is watched for pauses.
pub fn open_input_file(
    path: &std::path::Path,
    file: std::fs::File,
    mode: DirectRead,
) -> OpenedInput {
    let regular_len = file
        .metadata()
        .ok()
        .filter(|m| m.file_type().is_file())
        .map(|m| m.len());
    let direct = match (mode, regular_len) {
        (DirectRead::Never, _) | (_, None) => false,
        (DirectRead::Always, Some(_)) => true,
        (DirectRead::Auto, Some(len)) => direct_by_size(len, mem_available()),
    };
    if !direct {
        return OpenedInput::buffered(file, regular_len.is_some());
    }
    match ccvault_log::DirectInput::open(path, file, ccvault_log::DIRECT_CHUNK) {
        Ok(input) => OpenedInput {
            reader: Box::new(input),
            direct: true,
            pause: None,
        },
        Err(file) => OpenedInput::buffered(file, true),
    }
}

/// Prepares standard input to be imported, watched for pauses unless it is
/// a regular file (`< file`). It is read through its own descriptor (a
/// duplicate), so that no bytes wait in `std::io::Stdin`'s buffer unseen by
/// the probe.
pub fn open_stdin() -> std::io::Result<OpenedInput> {
    let file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let regular = file.metadata().is_ok_and(|m| m.file_type().is_file());
    Ok(OpenedInput::buffered(file, regular))
}

/// Appends one line to `buf` (without its `\n` or `\r\n`; with `end`
/// `\r`, a file of old Mac line ends, without its `\r`), keeping at most
/// `cap + 2` bytes of it; returns (bytes consumed, whether the line without
/// its line break was longer than `cap`), or `None` at end of input. The
/// `\r` of a CRLF line break is not part of the line, so it never counts
/// against the cap. Appending lets the importer read each line straight
/// into its batch: one copy of every input byte fewer (issue 12).
pub(crate) fn read_capped_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
    end: u8,
    line: u64,
) -> std::io::Result<Option<(u64, bool)>> {
    let start = buf.len();
    let mut consumed = 0u64;
    let mut too_long = false;
    let mut warned = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            if consumed == 0 {
                return Ok(None);
            }
            break;
        }
        let (take, found_newline) = match memchr::memchr(end, chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let content = &chunk[..if found_newline { take - 1 } else { take }];
        if !too_long {
            // One byte more than the cap for a `\r` about to be dropped,
            // and one more to know the line is too long.
            let room = (cap + 2).saturating_sub(buf.len() - start);
            buf.extend_from_slice(&content[..content.len().min(room)]);
            too_long = buf.len() - start > cap + 1;
        }
        input.consume(take);
        consumed += take as u64;
        if found_newline {
            break;
        }
        // Its rejection is said when the line ends: an input without line
        // ends (`/dev/zero`, a binary file) would be skipped in silence.
        if consumed > LONG_LINE_WARNING && !warned {
            warned = true;
            tracing::warn!(
                "line {line} has no line end after {LONG_LINE_WARNING} bytes: skipping it to its end, where it is rejected (an input that is not line-delimited text, /dev/zero say, never ends it: stop with Ctrl-C)"
            );
        }
    }
    if !too_long && buf.len() > start && buf.last() == Some(&b'\r') {
        buf.pop();
    }
    too_long = too_long || buf.len() - start > cap;
    Ok(Some((consumed, too_long)))
}

/// Bytes of one line after which its skipping is said at once (1 GiB).
const LONG_LINE_WARNING: u64 = 1 << 30;

/// One batch of input lines, read and decoded by the reading thread.
struct ReadBatch {
    data: Vec<u8>,
    /// (start, end, line number) of each message in `data`.
    spans: Vec<(usize, usize, u64)>,
    /// Input byte offset of each message, for the JSON shapes (empty for
    /// NDJSON, whose messages are located by line).
    offsets: Vec<u64>,
    prepared: Vec<Prepared>,
    rejected: Vec<Rejected>,
    /// The last line read (all lines up to it are in this or earlier batches).
    through_line: u64,
    /// Input bytes consumed so far.
    input_bytes: u64,
}

/// What the appender hands back to the reading thread once a batch is
/// appended: its buffer, to be filled again, and its decoded messages, to
/// be dropped there. The strings of each message's keys were allocated by
/// the reading thread; freed by the appending thread (the import's
/// bottleneck) each was a cross-thread free, several times the cost of the
/// reading thread's own (docs/BENCHMARKS.md, issue 12).
struct Spare {
    data: Vec<u8>,
    spans: Vec<(usize, usize, u64)>,
    prepared: Vec<Prepared>,
}

/// The buffers of appended batches, waiting for the reading thread to fill
/// them again (the reader of the next stream, once one ends). A pool, not a
/// channel of one: with one, a buffer handed back while the last was not
/// yet taken was dropped, and the reader, finding none at times, made 9
/// fresh ~8 MiB buffers in a 1M import, each faulted in anew: 48k page
/// faults and a 204 MiB peak against 42k and 180 MiB now, for the same
/// time (docs/BENCHMARKS.md, issue 12). At most [`SPARES_KEPT`] are kept.
#[derive(Clone, Default)]
struct SparePool(Arc<std::sync::Mutex<Vec<Spare>>>);

/// Batches that can be in flight at once (being filled, waiting in the
/// channel, being appended, one handed back early): buffers past this are
/// freed.
const SPARES_KEPT: usize = 4;

impl SparePool {
    fn take(&self) -> Option<Spare> {
        self.0.lock().ok()?.pop()
    }

    fn put(&self, spare: Spare) {
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < SPARES_KEPT {
                pool.push(spare);
            }
        }
    }
}

/// What [`read_batches`] reads: a file, or a live input through the watch
/// that tells its pauses.
enum Reading<R> {
    File(R),
    Live(LineWatch<R>),
}

impl<R: BufRead> Reading<R> {
    fn paused(&mut self, json: bool) -> bool {
        match self {
            Reading::File(_) => false,
            Reading::Live(watch) => watch.paused(PAUSE, json),
        }
    }
}

impl<R: BufRead> Read for Reading<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Reading::File(r) => r.read(out),
            Reading::Live(w) => w.read(out),
        }
    }
}

impl<R: BufRead> BufRead for Reading<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Reading::File(r) => r.fill_buf(),
            Reading::Live(w) => w.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Reading::File(r) => r.consume(amount),
            Reading::Live(w) => w.consume(amount),
        }
    }
}

/// Reads lines into batches and decodes them; runs on its own thread so that
/// decoding overlaps with appending and syncing.
#[allow(clippy::too_many_arguments)]
fn read_batches(
    input: impl BufRead,
    pause: Option<PauseProbe>,
    source: &str,
    format: InputFormat,
    max_record_bytes: usize,
    tx: std::sync::mpsc::SyncSender<Result<ReadBatch>>,
    spares: SparePool,
) {
    // An input that cannot be read at all (a directory as stdin, a file
    // the kernel refuses to read) is rejected by name, as a read error
    // later on is, and the import goes on with the next input.
    // A live input's first write may cut a magic number.
    let mut input = match with_whole_magic(input) {
        Ok(whole) => whole,
        Err(e) => {
            let _ = tx.send(Ok(unreadable(source, &e)));
            return;
        }
    };
    let first = loop {
        match input.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.map(|head| head.starts_with(&GZIP_MAGIC)),
        }
    };
    let gzip = match first {
        Ok(gzip) => gzip,
        Err(e) => {
            let _ = tx.send(Ok(unreadable(source, &e)));
            return;
        }
    };
    let input = match maybe_gunzip(input, source) {
        // What a gzip input holds is checked as a file's first bytes are
        // (a .tar.gz, a .gz.gz); a first block that cannot be read is
        // rejected by name, as the splitter's first read would.
        Ok(mut i) if gzip => match refused_inside(&mut i, source) {
            Ok(None) => Ok(i),
            Ok(Some(why)) => Err(StoreError::Input(why)),
            Err(e) => {
                let _ = tx.send(Ok(unreadable(source, &e)));
                return;
            }
        },
        other => other,
    };
    let mut input = match input {
        // A live input is read through a watch that tells its pauses
        // (crate::pause), over the decompressed bytes of a gzip feed.
        Ok(i) => match pause {
            Some(probe) => Reading::Live(LineWatch::new(i, probe, gzip)),
            None => Reading::File(i),
        },
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    // A live input's first write may hold too little to tell its shape:
    // more of it is read first (`crate::split::Undecided`).
    let format = match (&mut input, format) {
        (Reading::Live(watch), InputFormat::Auto) => match decide_live(watch) {
            Ok(format) => format,
            Err(e) => {
                let _ = tx.send(Ok(unreadable(source, &e)));
                return;
            }
        },
        _ => format,
    };
    let mut splitter = match Splitter::new(format, &mut input) {
        Ok(Ok(s)) => s,
        Ok(Err(why)) => {
            let _ = tx.send(Err(StoreError::Input(format!("{source}: {why}"))));
            return;
        }
        Err(e) => {
            // Its first block unreadable (a .gz cut inside its header or
            // first block): rejected by name like a read error later on,
            // and the import goes on with the next input.
            let _ = tx.send(Ok(unreadable(source, &e)));
            return;
        }
    };
    // Messages are read whole up to the bound of an envelope whose event
    // fits the limit; the archive then holds the record to the limit.
    let cap = crate::archive::message_bound(max_record_bytes);
    // The appender hands each batch's buffers back once it is appended: a
    // fresh 16 MiB buffer a batch is a large allocation and free on two
    // threads, which allocators return to the OS and fault in again. Each
    // message is read straight into it (at most `cap + 2`
    // bytes of it, until the batch is full), so it never grows.
    let new_batch = |through_line, input_bytes| {
        let (data, spans, prepared) = spares.take().map_or_else(
            || {
                (
                    Vec::with_capacity(BATCH_BYTES + cap + 2),
                    Vec::with_capacity(BATCH_LINES),
                    Vec::new(),
                )
            },
            |Spare {
                 mut data,
                 mut spans,
                 mut prepared,
             }| {
                data.clear();
                spans.clear();
                prepared.clear();
                (data, spans, prepared)
            },
        );
        ReadBatch {
            data,
            spans,
            offsets: Vec::new(),
            prepared,
            rejected: Vec::new(),
            through_line,
            input_bytes,
        }
    };
    // Hands the batch read so far to the appender and starts the next one;
    // false when the appender stopped (it reports why). The next batch's
    // buffers are taken after the send: the send returns once the appender
    // has taken the batch before this one, and it hands back the buffers
    // of the one before that before taking the next.
    let ship = |batch: &mut ReadBatch| {
        let (through_line, input_bytes) = (batch.through_line, batch.input_bytes);
        let mut ready = std::mem::replace(batch, ReadBatch::unfilled());
        ready.prepared.extend(
            ready
                .spans
                .iter()
                .map(|&(s, e, _)| Prepared::of(&ready.data[s..e])),
        );
        for (p, at) in ready.prepared.iter_mut().zip(&ready.offsets) {
            p.locate(*at);
        }
        if tx.send(Ok(ready)).is_err() {
            return false;
        }
        *batch = new_batch(through_line, input_bytes);
        true
    };
    let holds_lines = |batch: &ReadBatch| !batch.spans.is_empty() || !batch.rejected.is_empty();
    let mut batch = new_batch(0, 0);
    // The last line of the batches shipped so far.
    let mut shipped_through = 0;
    loop {
        // A live input that paused: what came before the pause is made
        // durable now, not when the batch fills (crate::pause).
        if holds_lines(&batch) && input.paused(splitter.is_json()) {
            shipped_through = batch.through_line;
            if !ship(&mut batch) {
                return;
            }
        }
        let start = batch.data.len();
        let next = match splitter.next(&mut input, &mut batch.data, cap) {
            Ok(n) => n,
            Err(e) => {
                // A damaged input (a truncated .gz, a read error) ends this
                // input only: what was read before it is imported, the rest
                // is rejected by name, and the import goes on with the
                // next input.
                // gzip checks its CRC only at the end of a member: what was
                // read of a damaged one may be damaged too, undetected.
                let unchecked = if gzip && !is_trailing_bytes(&e) {
                    "; gzip checks its data only at the end of each compressed member, so the lines already archived from this file are unchecked and may hold damaged bytes: compare them with an intact copy of the file"
                } else {
                    ""
                };
                // The position is in what was read: a gzip input's
                // decompressed bytes, not the file's (an outside audit
                // found "after byte N" of a .gz ambiguous).
                let of = if gzip {
                    " of its decompressed data"
                } else {
                    ""
                };
                batch.rejected.push(Rejected {
                    source: source.to_owned(),
                    line: batch.through_line + 1,
                    reason: format!(
                        "cannot read the rest of the input after byte {}{of}: {}{unchecked}",
                        batch.input_bytes,
                        e.to_string().trim_end()
                    ),
                });
                None
            }
        };
        let done = next.is_none();
        if let Some(piece) = next {
            batch.through_line = piece.last_line;
            batch.input_bytes += piece.consumed;
            let message = batch.data.get(start..).unwrap_or_default();
            if piece.too_long || message.iter().all(u8::is_ascii_whitespace) {
                batch.data.truncate(start);
            } else {
                batch
                    .spans
                    .push((start, batch.data.len(), piece.first_line));
                batch.offsets.extend(piece.offset);
            }
            if piece.too_long {
                batch.rejected.push(Rejected {
                    source: source.to_owned(),
                    line: piece.first_line,
                    reason: match piece.offset {
                        None => format!(
                            "line of more than {cap} bytes (the longest read whole: a record of the limit as a Pulsar envelope's base64) exceeds the record size limit of {max_record_bytes} bytes"
                        ),
                        Some(at) => format!(
                            "the JSON value at byte offset {at}, of more than {cap} bytes (the longest read whole: a record of the limit as a Pulsar envelope's base64), exceeds the record size limit of {max_record_bytes} bytes"
                        ),
                    },
                });
            }
        } else {
            batch.data.truncate(start);
            // The input ended inside an array: said, or a capture cut short
            // (or `[[` alone) would import as if whole, exit 0.
            if let Some((at, line)) = splitter.unclosed_array() {
                batch.rejected.push(Rejected {
                    source: source.to_owned(),
                    line,
                    reason: format!(
                        "the JSON array begun at byte offset {at} is never closed: the input ends inside it (cut short?); the values before its end were read"
                    ),
                });
            }
        }
        let full = batch.spans.len() >= BATCH_LINES || batch.data.len() >= BATCH_BYTES;
        // The last batch goes even with only blank lines after the last
        // one shipped: each line of an input is acknowledged, even in a
        // file of blank lines alone.
        let last = done && (holds_lines(&batch) || batch.through_line > shipped_through);
        if full || last {
            shipped_through = batch.through_line;
            if !ship(&mut batch) {
                return;
            }
        }
        if done {
            return;
        }
    }
}

/// The shape of a live input, read until its start decides it (at most
/// [`DETECT_BYTES`]): a first write that cuts the first value of a stream
/// was taken for the start of one long line, and every value after it
/// went into that line; one whole value followed by its line end in a
/// later write was taken for a stream. [`InputFormat::Auto`] when the start
/// is no JSON the splitter takes (XML: it says so).
fn decide_live<R: std::io::Read>(watch: &mut LineWatch<R>) -> std::io::Result<InputFormat> {
    watch.fill_buf()?;
    loop {
        let Ok((format, undecided)) = crate::split::classify(watch.unread()) else {
            return Ok(InputFormat::Auto);
        };
        let wait = match undecided {
            None => return Ok(format),
            Some(_) if watch.unread().len() >= DETECT_BYTES => return Ok(format),
            Some(Undecided::FirstValueOpen) => None,
            Some(Undecided::FirstValueAlone) => Some(PAUSE),
        };
        match watch.read_more(wait)? {
            // A whole value, then a pause: a writer of values sent one.
            None => return Ok(InputFormat::JsonStream),
            Some(0) => return Ok(format),
            Some(_) => {}
        }
    }
}

/// The most of a live input read to decide its shape: the block a file's
/// is decided from.
const DETECT_BYTES: usize = 1 << 20;

/// The batch of an input none of which could be read: its rejection.
fn unreadable(source: &str, e: &std::io::Error) -> ReadBatch {
    ReadBatch {
        rejected: vec![Rejected {
            source: source.to_owned(),
            line: 1,
            reason: format!("cannot read the input from its first byte: {e}"),
        }],
        ..ReadBatch::unfilled()
    }
}

impl ReadBatch {
    /// A batch of nothing, holding no allocation.
    fn unfilled() -> ReadBatch {
        ReadBatch {
            data: Vec::new(),
            spans: Vec::new(),
            offsets: Vec::new(),
            prepared: Vec::new(),
            rejected: Vec::new(),
            through_line: 0,
            input_bytes: 0,
        }
    }
}

/// A batch appended to the archive and not yet reported: durable once a
/// sync asked for at or past `through_offset` is done.
struct InFlight {
    source: String,
    through_offset: u64,
    through_line: u64,
    input_bytes: u64,
    counts: ImportSummary,
}

/// Imports one NDJSON stream into the archive (see [`Import`]).
pub fn import_stream(
    archive: &mut Archive,
    input: impl Read + Send + 'static,
    source_kind: SourceKind,
    source: &str,
    max_record_bytes: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary> {
    import_stream_as(
        archive,
        BufReader::with_capacity(INPUT_BUFFER, input),
        None,
        source_kind,
        source,
        InputFormat::Ndjson,
        max_record_bytes,
        progress,
    )
}

/// Imports one stream of shape `format` into the archive: an [`Import`] of
/// that stream alone.
#[allow(clippy::too_many_arguments)]
pub fn import_stream_as(
    archive: &mut Archive,
    input: impl BufRead + Send + 'static,
    pause: Option<PauseProbe>,
    source_kind: SourceKind,
    source: &str,
    format: InputFormat,
    max_record_bytes: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary> {
    let mut import = Import::new(archive);
    import.stream(
        input,
        pause,
        source_kind,
        source,
        format,
        max_record_bytes,
        progress,
    )?;
    import.finish(progress)
}

/// An import of one or more streams, one after the other, into the
/// archive.
///
/// Reading and decoding run on a second thread, appending on this one.
/// A sync is asked for once a batch's worth of lines or bytes has been
/// appended since the last one, at a pause of a live input, and at
/// [`Import::finish`], not at the end of each stream: a thousand small
/// files cost a few fsyncs, not one each (docs/BENCHMARKS.md). Each sync
/// runs while the next batches are appended; a batch is reported to the
/// progress callback (and its counts added) only once it is durable. With
/// `pause`, a batch also ends where the input pauses and is reported
/// without waiting for more (crate::pause), then committed to the index,
/// so that readers see it while the input waits.
pub struct Import<'a> {
    archive: &'a mut Archive,
    summary: ImportSummary,
    /// Appended and not yet reported, oldest first.
    appended: VecDeque<InFlight>,
    /// The end of the last sync asked for and not yet waited for.
    syncing: Option<u64>,
    /// Lines and bytes appended since the last sync was asked for.
    unsynced_lines: usize,
    unsynced_bytes: usize,
    /// Appended batches' buffers, for the reader of this stream and the
    /// next ones.
    spares: SparePool,
    stop: Option<Arc<AtomicBool>>,
    cut_short: bool,
}

impl<'a> Import<'a> {
    pub fn new(archive: &'a mut Archive) -> Self {
        Import {
            archive,
            summary: ImportSummary::default(),
            appended: VecDeque::new(),
            syncing: None,
            unsynced_lines: 0,
            unsynced_bytes: 0,
            spares: SparePool::default(),
            stop: None,
            cut_short: false,
        }
    }

    /// Counts `rejected` (an input that could not even be opened) as an
    /// outcome of this import.
    pub fn reject(&mut self, rejected: Rejected) {
        self.summary.rejected.push(rejected);
    }

    /// Appends every message of `input`, read as `format` from `source`.
    /// Its last batches may still be unsynced when this returns; they are
    /// reported by a later call or by [`Import::finish`].
    #[allow(clippy::too_many_arguments)]
    pub fn stream(
        &mut self,
        input: impl BufRead + Send + 'static,
        pause: Option<PauseProbe>,
        source_kind: SourceKind,
        source: &str,
        format: InputFormat,
        max_record_bytes: usize,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        // One batch read ahead: a second measured ~4 % faster at ~15 MiB
        // more peak memory (docs/BENCHMARKS.md).
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let live = pause.is_some();
        let name = source.to_owned();
        let spares = self.spares.clone();
        // Not a scoped thread: after a stop (Import::stop_on) the reader may
        // be blocked reading a quiet pipe, and is left to the process's end
        // instead of being waited for.
        let reader = std::thread::Builder::new()
            .name("import-read".into())
            .spawn(move || read_batches(input, pause, &name, format, max_record_bytes, tx, spares))
            .map_err(io("cannot start a thread to read", source))?;
        loop {
            use std::sync::mpsc::RecvTimeoutError;
            if self.stopped() {
                self.cut_short = true;
                return Ok(());
            }
            let batch = match rx.recv_timeout(PAUSE) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    // A live input paused: what came before the pause is
                    // made durable and reported, and readers see it now,
                    // not once more comes (the commit otherwise waits for
                    // the next append). A file read slowly is not waited
                    // for.
                    if live && !self.appended.is_empty() {
                        self.land_all(progress)?;
                        self.archive.commit_index()?;
                    }
                    continue;
                }
            };
            let batch = match batch {
                Ok(batch) => batch,
                // The input refused (XML, another compression, from
                // stdin): nothing of it was appended, and what the inputs
                // before it appended is made durable and reported before
                // the error, which then says so (it said "no line was
                // known to be durable yet" of archived lines: an outside
                // audit).
                Err(e @ StoreError::Input(_)) => {
                    self.land_all(progress)?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let spare = self.append(batch, source_kind, source)?;
            self.spares.put(spare);
            if self.unsynced_lines >= BATCH_LINES || self.unsynced_bytes >= BATCH_BYTES {
                self.sync_nowait(progress)?;
            }
        }
        // It sent its last batch (or its error) and returned.
        let _ = reader.join();
        Ok(())
    }

    /// Stops the import when `flag` turns true (a signal handler sets it):
    /// [`Import::stream`] then returns before its input ends, what it
    /// appended is made durable by [`Import::finish`] as usual, and later
    /// streams are not read.
    pub fn stop_on(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// Whether the flag given to [`Import::stop_on`] turned true.
    pub fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Whether a stream returned before its input ended (it was stopped).
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// Makes everything appended durable, reports it, and returns the
    /// totals.
    pub fn finish(mut self, progress: &mut dyn FnMut(&Progress)) -> Result<ImportSummary> {
        self.land_all(progress)?;
        Ok(self.summary)
    }

    fn append(&mut self, batch: ReadBatch, source_kind: SourceKind, source: &str) -> Result<Spare> {
        let ingest_ms = now_ms();
        let incoming: Vec<Incoming> = batch
            .spans
            .iter()
            .map(|&(s, e, line)| Incoming {
                raw: &batch.data[s..e],
                source_kind,
                source,
                line,
                message_id: None,
                ingest_ms,
            })
            .collect();
        let report = self
            .archive
            .append_prepared_unsynced(&incoming, &batch.prepared)?;
        drop(incoming);
        let mut counts = ImportSummary::default();
        for ((s, e, line), outcome) in batch.spans.iter().zip(&report.outcomes) {
            counts.lines += 1;
            match outcome {
                Outcome::Archived { .. } => {
                    counts.archived += 1;
                    counts.payload_bytes += (e - s) as u64;
                }
                Outcome::Quarantined { .. } => {
                    counts.quarantined += 1;
                    counts.payload_bytes += (e - s) as u64;
                }
                Outcome::Duplicate { .. } => counts.duplicates += 1,
                Outcome::Control => counts.control += 1,
                Outcome::Rejected { reason } => counts.rejected.push(Rejected {
                    source: source.to_owned(),
                    line: *line,
                    reason: reason.clone(),
                }),
            }
        }
        counts.lines += batch.rejected.len() as u64;
        counts.rejected.extend(batch.rejected);
        counts.rejected.sort_by_key(|r| r.line);
        self.unsynced_lines += batch.spans.len();
        self.unsynced_bytes += batch.data.len();
        self.appended.push_back(InFlight {
            source: source.to_owned(),
            through_offset: report.next_offset,
            through_line: batch.through_line,
            input_bytes: batch.input_bytes,
            counts,
        });
        Ok(Spare {
            data: batch.data,
            spans: batch.spans,
            prepared: batch.prepared,
        })
    }

    /// Asks for a sync of everything appended, and reports what the sync
    /// asked for before it made durable: that sync ran while the batches
    /// since were appended.
    fn sync_nowait(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        let through = self.archive.sync_nowait()?;
        self.unsynced_lines = 0;
        self.unsynced_bytes = 0;
        if let Some(previous) = self.syncing.replace(through) {
            self.land_through(previous, progress)?;
        }
        Ok(())
    }

    /// Makes everything appended so far durable and reports it now, not
    /// with later batches (before a wait of unknown length: opening a
    /// FIFO). Readers see it too (it is committed to the index).
    ///
    /// The index is committed before anything is reported: a reader
    /// started on the acknowledgement must find what it acknowledges.
    pub fn make_durable(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        let through = self.archive.sync_nowait()?;
        self.archive.wait_durable(through)?;
        self.archive.commit_index()?;
        self.unsynced_lines = 0;
        self.unsynced_bytes = 0;
        self.syncing = None;
        self.land_through(through, progress)
    }

    /// Makes everything appended durable and reports it.
    fn land_all(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        let through = self.archive.sync_nowait()?;
        self.unsynced_lines = 0;
        self.unsynced_bytes = 0;
        self.syncing = None;
        self.land_through(through, progress)
    }

    /// Waits until every record below `through` is durable, then reports
    /// the batches that ended there or before.
    fn land_through(&mut self, through: u64, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        self.archive.wait_durable(through)?;
        while let Some(batch) = self.appended.front() {
            if batch.through_offset > through {
                break;
            }
            let Some(batch) = self.appended.pop_front() else {
                break;
            };
            self.summary.absorb(&batch.counts);
            progress(&Progress {
                source: &batch.source,
                durable_through_line: batch.through_line,
                landed: &batch.counts,
                summary: &self.summary,
                input_bytes: batch.input_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<(Vec<u8>, bool)> {
        let mut r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(4, input));
        // Each line is appended after the ones before it.
        let mut buf = b"before".to_vec();
        let mut out = Vec::new();
        let mut start = buf.len();
        while let Some((_, long)) = read_capped_line(&mut r, &mut buf, cap, b'\n', 1).unwrap() {
            out.push((buf[start..].to_vec(), long));
            start = buf.len();
        }
        out
    }

    #[test]
    fn capped_lines_split_on_newlines_and_flag_long_ones() {
        let got = lines(b"ab\r\ncdefghi\n\nxyz\nvwxy\r\nvwxyz\r\n", 4);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), false),
                (b"cdefgh".to_vec(), true),
                (b"".to_vec(), false),
                (b"xyz".to_vec(), false),
                // The `\r` of CRLF does not count against the cap.
                (b"vwxy".to_vec(), false),
                (b"vwxyz\r".to_vec(), true),
            ]
        );
    }
}
