//! Byte layout of segment files, format version 2 (documented in `docs/FORMAT.md`).
//!
//! Invariants:
//! - This version reads segments of version 1 and 2 and writes version 2. The
//!   only difference is the tally record kind (flag bit 1), which version 1
//!   never wrote: a version 1 reader would take a tally for damage, so a
//!   segment holding one must say version 2 and old readers refuse it whole.
//! - A tally's payload is exactly [`TALLY_PAYLOAD_LEN`] bytes and it is never
//!   quarantined; any other combination is malformed.
//! - Every integer is little endian.
//! - A segment file is a 32-byte header followed by record frames, back to back.
//! - A frame is `RECORD_MAGIC | body_len: u32 | crc: u32 | body[body_len]`, where
//!   `crc` is CRC-32/IEEE over the 4 `body_len` bytes followed by the body.
//! - `encode_frame` writes exactly `FRAME_HEADER_LEN + body_len` bytes, and
//!   `decode_body` of that body returns the same fields (round trip).
//! - `decode_body` and `check_header` never panic: every length read from disk is
//!   checked against the bytes actually present.

use crate::error::{LogError, Result};

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CCVLSEG\0";
/// The segment format version this build writes.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest segment format version this build reads (version 1 has no
/// tally records; everything else is the same).
pub const OLDEST_READABLE_VERSION: u16 = 1;
/// Length of the segment file header; the first record starts here.
pub const HEADER_LEN: u32 = 32;
/// Sync magic at the start of every record frame. `0xFE` never occurs in UTF-8 text,
/// so the magic is rare inside JSON payloads, which keeps resynchronisation cheap.
pub const RECORD_MAGIC: [u8; 4] = [0xFE, 0xCC, 0x5E, 0x91];
/// Bytes before the body: magic, body length, CRC.
pub const FRAME_HEADER_LEN: u32 = 12;
/// Smallest possible body: fixed fields, four empty strings and an empty payload.
pub const MIN_BODY_LEN: u32 = 8 + 8 + 8 + 1 + 1 + 4 * 2 + 4;
/// Largest body accepted by the writer and considered plausible by readers (64 MiB).
pub const MAX_BODY_LEN: u32 = 64 << 20;
/// Segment files never grow past this, so byte positions fit in a `u32`.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Maximum length of each string field.
pub const MAX_FIELD_LEN: usize = u16::MAX as usize;

/// Record flag bit 0: the record is quarantined.
const FLAG_QUARANTINED: u8 = 1;
/// Record flag bit 1: the record is a tally, not a message (format version 2).
const FLAG_TALLY: u8 = 2;
/// Length of a tally's payload: two little-endian `u64`.
pub const TALLY_PAYLOAD_LEN: usize = 16;

/// What a record is. Every reader of messages (events, quarantined input)
/// skips the other kinds: their offsets are taken, their payloads are not
/// input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RecordKind {
    /// A message as received: an event or a quarantined input.
    #[default]
    Message,
    /// A [`Tally`]: counts of messages that were dropped, not stored.
    Tally,
}

/// The payload of a tally record: how many messages the archive has dropped
/// as duplicates and as transport control messages, in total, up to and
/// including the batch this tally was appended with. The counts are running
/// totals, not a batch's share: the last readable tally alone gives the
/// counts, so indexing one twice (a crash between the log and the index) or
/// losing an earlier one to damage changes nothing (docs/FORMAT.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tally {
    /// Messages skipped because equal payload bytes were already stored.
    pub duplicates: u64,
    /// Transport control messages (not stored).
    pub control: u64,
}

impl Tally {
    /// The payload of a tally record.
    pub fn encode(&self) -> [u8; TALLY_PAYLOAD_LEN] {
        let mut b = [0u8; TALLY_PAYLOAD_LEN];
        b[..8].copy_from_slice(&self.duplicates.to_le_bytes());
        b[8..].copy_from_slice(&self.control.to_le_bytes());
        b
    }

    /// Reads a tally payload; `None` unless it is exactly
    /// [`TALLY_PAYLOAD_LEN`] bytes.
    pub fn decode(payload: &[u8]) -> Option<Tally> {
        let b: &[u8; TALLY_PAYLOAD_LEN] = payload.try_into().ok()?;
        let (d, c) = b.split_at(8);
        Some(Tally {
            duplicates: u64::from_le_bytes(d.try_into().ok()?),
            control: u64::from_le_bytes(c.try_into().ok()?),
        })
    }
}

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SourceKind {
    /// Not recorded (code 0).
    #[default]
    Unknown,
    /// An imported file (code 1).
    File,
    /// Standard input (code 2).
    Stdin,
    /// An MQTT subscription (code 3).
    Mqtt,
    /// A Pulsar WebSocket reader (code 4).
    Pulsar,
    /// Anything else (code 5).
    Other,
    /// A source a later version names: codes 6–127 are reserved for sources
    /// added without a format bump, and this version reads them as such.
    Later(LaterSource),
}

/// The code of a [`SourceKind::Later`]: always in the reserved range 6–127,
/// so it only comes from [`SourceKind::from_code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaterSource(u8);

impl LaterSource {
    pub fn code(self) -> u8 {
        self.0
    }
}

/// The source kind codes reserved for sources added later (see FORMAT.md).
pub const RESERVED_SOURCE_CODES: std::ops::RangeInclusive<u8> = 6..=127;

impl SourceKind {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            SourceKind::Unknown => 0,
            SourceKind::File => 1,
            SourceKind::Stdin => 2,
            SourceKind::Mqtt => 3,
            SourceKind::Pulsar => 4,
            SourceKind::Other => 5,
            SourceKind::Later(code) => code.0,
        }
    }

    /// Decodes an on-disk code; `None` for codes this version does not define.
    pub fn from_code(code: u8) -> Option<SourceKind> {
        Some(match code {
            0 => SourceKind::Unknown,
            1 => SourceKind::File,
            2 => SourceKind::Stdin,
            3 => SourceKind::Mqtt,
            4 => SourceKind::Pulsar,
            5 => SourceKind::Other,
            c if RESERVED_SOURCE_CODES.contains(&c) => SourceKind::Later(LaterSource(c)),
            _ => return None,
        })
    }

    /// Whether the records of this kind came from a live source, so that
    /// their ingest time is a receipt time (an event time, docs/METRICS.md
    /// §2) rather than an import time. The match is exhaustive on purpose:
    /// a new source does not compile until it says which it is. A code of
    /// the reserved range is not known to be live.
    pub fn is_live(self) -> bool {
        match self {
            SourceKind::Mqtt | SourceKind::Pulsar => true,
            SourceKind::Unknown
            | SourceKind::File
            | SourceKind::Stdin
            | SourceKind::Other
            | SourceKind::Later(_) => false,
        }
    }

    /// Lower-case name ("file", "mqtt", ..., "later" for a reserved code).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Unknown => "unknown",
            SourceKind::File => "file",
            SourceKind::Stdin => "stdin",
            SourceKind::Mqtt => "mqtt",
            SourceKind::Pulsar => "pulsar",
            SourceKind::Other => "other",
            SourceKind::Later(_) => "later",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKind::Later(code) => write!(f, "source {}", code.0),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// A record to append. The offset is assigned by the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewRecord<'a> {
    /// A message, or a tally (then `payload` is [`Tally::encode`]'s and
    /// `quarantined` is false; see [`NewRecord::tally`]).
    pub kind: RecordKind,
    /// Ingest time, milliseconds since the Unix epoch.
    pub ingest_ms: i64,
    /// The payload could not be understood and is archived as-is.
    pub quarantined: bool,
    /// Kind of source.
    pub source_kind: SourceKind,
    /// File path or topic ("" = unknown).
    pub source: &'a str,
    /// Line number in the source file (0 = not applicable).
    pub line: u64,
    /// Transport message id ("" = none).
    pub message_id: &'a str,
    /// Transport publish time, as given ("" = none).
    pub publish_time: &'a str,
    /// Why the record is quarantined ("" = not quarantined / no reason).
    pub quarantine_reason: &'a str,
    /// The raw payload bytes exactly as received.
    pub payload: &'a [u8],
}

impl<'a> NewRecord<'a> {
    /// A tally record carrying `payload` (from [`Tally::encode`]), placed
    /// at the message `source`/`line` of the batch it accounts for.
    pub fn tally(
        payload: &'a [u8; TALLY_PAYLOAD_LEN],
        ingest_ms: i64,
        source_kind: SourceKind,
        source: &'a str,
        line: u64,
    ) -> NewRecord<'a> {
        NewRecord {
            kind: RecordKind::Tally,
            ingest_ms,
            source_kind,
            source,
            line,
            payload,
            ..NewRecord::default()
        }
    }
}

/// A record read back, owned.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// A message or a tally: readers of messages skip tallies.
    pub kind: RecordKind,
    /// Global offset (record N of the log has offset N).
    pub offset: u64,
    /// Ingest time, milliseconds since the Unix epoch.
    pub ingest_ms: i64,
    /// Quarantine flag.
    pub quarantined: bool,
    /// Kind of source.
    pub source_kind: SourceKind,
    /// File path or topic.
    pub source: String,
    /// Line number (0 = n/a).
    pub line: u64,
    /// Transport message id.
    pub message_id: String,
    /// Transport publish time.
    pub publish_time: String,
    /// Quarantine reason ("" = absent).
    pub quarantine_reason: String,
    /// The raw payload bytes.
    pub payload: Vec<u8>,
}

/// A record read back, borrowing from the reader's buffer (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// A message or a tally: readers of messages skip tallies.
    pub kind: RecordKind,
    /// Global offset.
    pub offset: u64,
    /// Ingest time, milliseconds since the Unix epoch.
    pub ingest_ms: i64,
    /// Quarantine flag.
    pub quarantined: bool,
    /// Kind of source.
    pub source_kind: SourceKind,
    /// File path or topic.
    pub source: &'a str,
    /// Line number (0 = n/a).
    pub line: u64,
    /// Transport message id.
    pub message_id: &'a str,
    /// Transport publish time.
    pub publish_time: &'a str,
    /// Quarantine reason ("" = absent).
    pub quarantine_reason: &'a str,
    /// The raw payload bytes.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// The counts of a tally record; `None` for a message.
    pub fn tally(&self) -> Option<Tally> {
        match self.kind {
            RecordKind::Tally => Tally::decode(self.payload),
            RecordKind::Message => None,
        }
    }

    /// Copies into an owned [`Record`].
    pub fn to_record(&self) -> Record {
        Record {
            kind: self.kind,
            offset: self.offset,
            ingest_ms: self.ingest_ms,
            quarantined: self.quarantined,
            source_kind: self.source_kind,
            source: self.source.to_owned(),
            line: self.line,
            message_id: self.message_id.to_owned(),
            publish_time: self.publish_time.to_owned(),
            quarantine_reason: self.quarantine_reason.to_owned(),
            payload: self.payload.to_vec(),
        }
    }

    /// Length of this record's frame on disk (header + body).
    pub fn frame_len(&self) -> u64 {
        u64::from(FRAME_HEADER_LEN)
            + u64::from(MIN_BODY_LEN)
            + (self.source.len()
                + self.message_id.len()
                + self.publish_time.len()
                + self.quarantine_reason.len()
                + self.payload.len()) as u64
    }
}

impl Record {
    /// The counts of a tally record; `None` for a message.
    pub fn tally(&self) -> Option<Tally> {
        self.as_ref().tally()
    }

    /// Borrows as a [`RecordRef`].
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            kind: self.kind,
            offset: self.offset,
            ingest_ms: self.ingest_ms,
            quarantined: self.quarantined,
            source_kind: self.source_kind,
            source: &self.source,
            line: self.line,
            message_id: &self.message_id,
            publish_time: &self.publish_time,
            quarantine_reason: &self.quarantine_reason,
            payload: &self.payload,
        }
    }
}

/// Validates field sizes and returns the body length of `rec`.
pub(crate) fn body_len(rec: &NewRecord<'_>) -> Result<u32> {
    let fields = [
        ("source", rec.source.len()),
        ("message_id", rec.message_id.len()),
        ("publish_time", rec.publish_time.len()),
        ("quarantine_reason", rec.quarantine_reason.len()),
    ];
    if rec.kind == RecordKind::Tally && (rec.quarantined || rec.payload.len() != TALLY_PAYLOAD_LEN)
    {
        return Err(LogError::MalformedTally);
    }
    let mut total = u64::from(MIN_BODY_LEN);
    for (field, len) in fields {
        if len > MAX_FIELD_LEN {
            return Err(LogError::FieldTooLong {
                field,
                len,
                max: MAX_FIELD_LEN,
            });
        }
        total += len as u64;
    }
    total = total.saturating_add(rec.payload.len() as u64);
    if total > u64::from(MAX_BODY_LEN) {
        return Err(LogError::RecordTooLarge {
            len: total,
            max: u64::from(MAX_BODY_LEN),
        });
    }
    // total <= MAX_BODY_LEN < u32::MAX
    Ok(total as u32)
}

/// CRC of a frame: CRC-32/IEEE over the 4 length bytes followed by the body.
pub(crate) fn frame_crc(len_bytes: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(body);
    h.finalize()
}

/// Appends the frame of `rec` with `offset` to `buf`. `body_len` must come from
/// [`body_len`] for the same record (which also checked every length fits).
pub(crate) fn encode_frame(buf: &mut Vec<u8>, offset: u64, rec: &NewRecord<'_>, body_len: u32) {
    let start = buf.len();
    buf.reserve(FRAME_HEADER_LEN as usize + body_len as usize);
    buf.extend_from_slice(&RECORD_MAGIC);
    buf.extend_from_slice(&body_len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // CRC, filled in below
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&rec.ingest_ms.to_le_bytes());
    buf.extend_from_slice(&rec.line.to_le_bytes());
    let kind = match rec.kind {
        RecordKind::Message => 0,
        RecordKind::Tally => FLAG_TALLY,
    };
    buf.push(kind | if rec.quarantined { FLAG_QUARANTINED } else { 0 });
    buf.push(rec.source_kind.code());
    for s in [
        rec.source,
        rec.message_id,
        rec.publish_time,
        rec.quarantine_reason,
    ] {
        buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    buf.extend_from_slice(&(rec.payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(rec.payload);
    let frame = &mut buf[start..];
    let crc = frame_crc(&frame[4..8], &frame[FRAME_HEADER_LEN as usize..]);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(frame.len(), FRAME_HEADER_LEN as usize + body_len as usize);
}

/// Checked little-endian reader over a byte slice.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|a| a[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Reads the frame header fields `(magic, body_len, crc)` from at least 12 bytes.
pub(crate) fn frame_header(bytes: &[u8]) -> Option<([u8; 4], u32, u32)> {
    let mut c = Cursor { bytes };
    Some((c.array()?, c.u32()?, c.u32()?))
}

/// Decodes a record body (the bytes after the 12-byte frame header). The CRC must
/// already have been checked; this checks the structure.
pub(crate) fn decode_body(body: &[u8]) -> Result<RecordRef<'_>, &'static str> {
    let mut c = Cursor { bytes: body };
    let short = "body shorter than its fields";
    let offset = c.u64().ok_or(short)?;
    let ingest_ms = i64::from_le_bytes(c.array().ok_or(short)?);
    let line = c.u64().ok_or(short)?;
    let flags = c.u8().ok_or(short)?;
    if flags & !(FLAG_QUARANTINED | FLAG_TALLY) != 0 {
        return Err("unknown flag bits");
    }
    let kind = if flags & FLAG_TALLY != 0 {
        RecordKind::Tally
    } else {
        RecordKind::Message
    };
    let source_kind = SourceKind::from_code(c.u8().ok_or(short)?).ok_or("unknown source kind")?;
    let mut strings = [""; 4];
    for s in &mut strings {
        let len = c.u16().ok_or(short)?;
        let bytes = c.take(usize::from(len)).ok_or(short)?;
        // Most are empty (an import's message id, publish time and
        // quarantine reason): the UTF-8 check's call was ~2 % of a rebuild's
        // instructions, a scan decoding each body twice (docs/BENCHMARKS.md).
        if !bytes.is_empty() {
            *s = std::str::from_utf8(bytes).map_err(|_| "string field is not UTF-8")?;
        }
    }
    let payload_len = c.u32().ok_or(short)?;
    let payload = c.take(payload_len as usize).ok_or(short)?;
    if !c.bytes.is_empty() {
        return Err("body longer than its fields");
    }
    if kind == RecordKind::Tally
        && (flags & FLAG_QUARANTINED != 0 || payload.len() != TALLY_PAYLOAD_LEN)
    {
        return Err("a tally that is quarantined or whose payload is not 16 bytes");
    }
    let [source, message_id, publish_time, quarantine_reason] = strings;
    Ok(RecordRef {
        kind,
        offset,
        ingest_ms,
        quarantined: flags & FLAG_QUARANTINED != 0,
        source_kind,
        source,
        line,
        message_id,
        publish_time,
        quarantine_reason,
        payload,
    })
}

/// The 32-byte header of a segment whose first record has offset `base`.
pub(crate) fn encode_header(base: u64) -> [u8; HEADER_LEN as usize] {
    encode_header_version(base, FORMAT_VERSION)
}

/// `encode_header` claiming format `version` (tests write older segments).
pub fn encode_header_version(base: u64, version: u16) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[12..20].copy_from_slice(&base.to_le_bytes());
    // 20..28 reserved, zero
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What is wrong with a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// The file is shorter than a header.
    Short,
    /// Damaged header (bad magic, CRC, header length or base offset).
    Damaged(&'static str),
    /// A well-formed header of another format version.
    Version(u16),
}

/// The base offset a well-formed segment header states (magic and CRC
/// hold), whatever the file's name; `None` for anything else.
pub(crate) fn stated_base(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..HEADER_LEN as usize)?;
    let crc = u32::from_le_bytes(h.get(28..32)?.try_into().ok()?);
    if h.get(..8)? != SEGMENT_MAGIC || crc32fast::hash(h.get(..28)?) != crc {
        return None;
    }
    Some(u64::from_le_bytes(h.get(12..20)?.try_into().ok()?))
}

/// Checks a segment header against the base offset from the file name and
/// returns its format version (one this build reads).
pub(crate) fn check_header(bytes: &[u8], base: u64) -> Result<u16, HeaderProblem> {
    let Some(h) = bytes.get(..HEADER_LEN as usize) else {
        return Err(HeaderProblem::Short);
    };
    let mut c = Cursor { bytes: h };
    let magic: [u8; 8] = c.array().ok_or(HeaderProblem::Short)?;
    let version = c.u16().ok_or(HeaderProblem::Short)?;
    let header_len = c.u16().ok_or(HeaderProblem::Short)?;
    let hbase = c.u64().ok_or(HeaderProblem::Short)?;
    let _reserved: [u8; 8] = c.array().ok_or(HeaderProblem::Short)?;
    let crc = c.u32().ok_or(HeaderProblem::Short)?;
    if magic != SEGMENT_MAGIC {
        return Err(HeaderProblem::Damaged("bad segment magic"));
    }
    let body = h.get(..28).ok_or(HeaderProblem::Short)?;
    if crc32fast::hash(body) != crc {
        return Err(HeaderProblem::Damaged("segment header CRC mismatch"));
    }
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(HeaderProblem::Version(version));
    }
    if u32::from(header_len) != HEADER_LEN {
        return Err(HeaderProblem::Damaged("unexpected segment header length"));
    }
    if hbase != base {
        return Err(HeaderProblem::Damaged(
            "segment header base offset differs from the file name",
        ));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(frame_crc(b"1234", b"56789"), 0xCBF4_3926);
    }

    #[test]
    fn frame_roundtrip() {
        let rec = NewRecord {
            kind: RecordKind::Message,
            ingest_ms: -5,
            quarantined: true,
            source_kind: SourceKind::Pulsar,
            source: "persistent://t/ns/topic",
            line: 42,
            message_id: "CAAQAw==",
            publish_time: "2024-01-01T00:00:00Z",
            quarantine_reason: "not json",
            payload: b"\xff\x00raw",
        };
        let len = body_len(&rec).unwrap();
        let mut buf = vec![];
        encode_frame(&mut buf, 7, &rec, len);
        assert_eq!(buf.len(), 12 + len as usize);
        let (magic, blen, crc) = frame_header(&buf).unwrap();
        assert_eq!(magic, RECORD_MAGIC);
        assert_eq!(blen, len);
        assert_eq!(crc, frame_crc(&buf[4..8], &buf[12..]));
        let r = decode_body(&buf[12..]).unwrap();
        assert_eq!(r.offset, 7);
        assert_eq!(r.frame_len(), buf.len() as u64);
        assert_eq!(r.source, rec.source);
        assert_eq!(r.payload, rec.payload);
        assert!(r.quarantined);
        assert_eq!(r.source_kind, SourceKind::Pulsar);
    }

    #[test]
    fn reserved_source_codes_read_and_others_are_malformed() {
        let rec = NewRecord {
            source_kind: SourceKind::Mqtt,
            payload: b"{}",
            ..Default::default()
        };
        let len = body_len(&rec).unwrap();
        let mut buf = vec![];
        encode_frame(&mut buf, 3, &rec, len);
        let mut body = buf[12..].to_vec();
        assert_eq!(body[25], SourceKind::Mqtt.code(), "the source kind byte");
        for code in [6u8, 42, 127] {
            body[25] = code;
            let kind = decode_body(&body).unwrap().source_kind;
            assert!(matches!(kind, SourceKind::Later(_)), "{code}: {kind:?}");
            assert_eq!(kind.code(), code);
            assert_eq!(kind.to_string(), format!("source {code}"));
        }
        for code in [128u8, 255] {
            body[25] = code;
            assert!(decode_body(&body).is_err(), "{code} must stay invalid");
        }
        for code in 0..=5u8 {
            assert_eq!(
                SourceKind::from_code(code).map(SourceKind::code),
                Some(code)
            );
        }
        // The flags byte: bit 0 (quarantined) and, since format version 2,
        // bit 1 (tally) are known; bits 2-7 stay malformed. A message body
        // with bit 1 set reads as a tally only when its payload is a
        // tally's 16 bytes (this one's is 2), so it is malformed too.
        body[25] = SourceKind::Mqtt.code();
        assert_eq!(body[24], 0, "the flags byte");
        body[24] = FLAG_QUARANTINED;
        assert!(decode_body(&body).unwrap().quarantined);
        for bit in 1..8 {
            body[24] = 1 << bit;
            assert!(decode_body(&body).is_err(), "flag bit {bit}");
        }
    }

    #[test]
    fn tally_roundtrip_and_malformed_tallies() {
        let counts = Tally {
            duplicates: 7,
            control: u64::MAX - 1,
        };
        let payload = counts.encode();
        let rec = NewRecord::tally(
            &payload,
            1_700_000_000_000,
            SourceKind::File,
            "in.ndjson",
            99,
        );
        let len = body_len(&rec).unwrap();
        let mut buf = vec![];
        encode_frame(&mut buf, 12, &rec, len);
        assert_eq!(buf[12 + 24], FLAG_TALLY, "a tally is flag bit 1");
        let r = decode_body(&buf[12..]).unwrap();
        assert_eq!(r.kind, RecordKind::Tally);
        assert_eq!(r.tally(), Some(counts));
        assert_eq!((r.offset, r.line, r.source), (12, 99, "in.ndjson"));
        assert!(!r.quarantined);
        assert_eq!(r.frame_len(), buf.len() as u64);
        assert_eq!(r.to_record().tally(), Some(counts));
        // A message never reads as a tally, whatever its payload.
        let msg = NewRecord {
            payload: &payload,
            ..Default::default()
        };
        let mut mbuf = vec![];
        encode_frame(&mut mbuf, 1, &msg, body_len(&msg).unwrap());
        let m = decode_body(&mbuf[12..]).unwrap();
        assert_eq!((m.kind, m.tally()), (RecordKind::Message, None));
        // Quarantined tallies and tallies of another payload length are
        // refused by the writer and malformed on disk.
        let mut body = buf[12..].to_vec();
        body[24] = FLAG_TALLY | FLAG_QUARANTINED;
        assert!(decode_body(&body).is_err());
        assert!(matches!(
            body_len(&NewRecord {
                quarantined: true,
                ..rec
            }),
            Err(LogError::MalformedTally)
        ));
        for len in [0usize, 15, 17] {
            let p = vec![0u8; len];
            let bad = NewRecord { payload: &p, ..rec };
            assert!(matches!(body_len(&bad), Err(LogError::MalformedTally)));
            let as_msg = NewRecord {
                kind: RecordKind::Message,
                ..bad
            };
            let mut b = vec![];
            encode_frame(&mut b, 1, &as_msg, body_len(&as_msg).unwrap());
            b[12 + 24] = FLAG_TALLY;
            assert!(decode_body(&b[12..]).is_err(), "a tally of {len} bytes");
        }
        assert_eq!(Tally::decode(&[0; 15]), None);
    }

    #[test]
    fn empty_record_is_min_body() {
        let rec = NewRecord::default();
        assert_eq!(body_len(&rec).unwrap(), MIN_BODY_LEN);
    }

    #[test]
    fn decode_never_panics_on_prefixes_and_garbage() {
        let rec = NewRecord {
            source: "a",
            payload: b"xyz",
            ..Default::default()
        };
        let len = body_len(&rec).unwrap();
        let mut buf = vec![];
        encode_frame(&mut buf, 1, &rec, len);
        let body = &buf[12..];
        for i in 0..body.len() {
            assert!(decode_body(&body[..i]).is_err());
            let mut b = body.to_vec();
            b[i] ^= 0xFF;
            let _ = decode_body(&b);
        }
    }

    #[test]
    fn string_fields_are_checked_as_utf8_and_empty_ones_read_empty() {
        let rec = NewRecord {
            source: "in.ndjson",
            message_id: "m-1",
            payload: b"{}",
            ..Default::default()
        };
        let mut buf = vec![];
        encode_frame(&mut buf, 1, &rec, body_len(&rec).unwrap());
        let r = decode_body(&buf[12..]).unwrap();
        assert_eq!(
            (r.source, r.message_id, r.publish_time, r.quarantine_reason),
            ("in.ndjson", "m-1", "", "")
        );
        // The body: offset, ingest time, line (24 bytes), flags, source
        // kind, then each string's u16 length and bytes.
        let source_at = 12 + 24 + 2 + 2;
        let message_id_at = source_at + "in.ndjson".len() + 2;
        for at in [source_at, message_id_at] {
            let mut bad = buf.clone();
            bad[at] = 0xFF;
            assert_eq!(
                decode_body(&bad[12..]).err(),
                Some("string field is not UTF-8"),
                "byte {at}"
            );
        }
    }

    #[test]
    fn header_roundtrip_and_damage() {
        let h = encode_header(99);
        assert_eq!(check_header(&h, 99), Ok(FORMAT_VERSION));
        assert_eq!(check_header(&encode_header_version(99, 1), 99), Ok(1));
        for v in [0, FORMAT_VERSION + 1, u16::MAX] {
            assert_eq!(
                check_header(&encode_header_version(99, v), 99),
                Err(HeaderProblem::Version(v))
            );
        }
        assert!(matches!(
            check_header(&h, 98),
            Err(HeaderProblem::Damaged(_))
        ));
        assert_eq!(check_header(&h[..31], 99), Err(HeaderProblem::Short));
        for i in 0..h.len() {
            let mut b = h;
            b[i] ^= 1;
            assert!(check_header(&b, 99).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn field_limits() {
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        let rec = NewRecord {
            message_id: &long,
            ..Default::default()
        };
        assert!(matches!(
            body_len(&rec),
            Err(LogError::FieldTooLong {
                field: "message_id",
                ..
            })
        ));
    }
}
