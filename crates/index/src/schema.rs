//! What the index stores: its redb tables, how keys are hashed, and the
//! values a caller hands in ([`Entry`]) and gets back ([`Hit`],
//! [`Checkpoint`], [`Counters`]). A change of a table's meaning bumps
//! [`INDEX_VERSION`], and an index of another version is rebuilt from the log.

use redb::{ConcurrencyMode, Database, TableDefinition};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::chunk::Posting;

/// (generation, key hash, first offset) -> a chunk of postings. The
/// generation ([`GENERATION_RECORDS`]) leads the key so that a commit's
/// inserts land in the newest generation's part of the B-tree: a commit
/// rewrites pages of a bounded region, not of a tree as large as the
/// archive.
pub(crate) type Chunks = TableDefinition<'static, (u64, u64, u64), &'static [u8]>;

pub(crate) const BY_GUID: Chunks = TableDefinition::new("by_guid");
pub(crate) const BY_AGENT: Chunks = TableDefinition::new("by_agent");
/// (generation, payload hash, offset) -> position, for records that name no
/// interaction.
pub(crate) const BY_PAYLOAD: TableDefinition<(u64, u64, u64), u32> =
    TableDefinition::new("by_payload");
/// (generation, table code) -> the generation's key filter (see
/// [`crate::filter`]); written once the generation is complete.
pub(crate) const FILTERS: TableDefinition<(u64, u8), &[u8]> = TableDefinition::new("gen_filter");
/// (span, table code) -> the filter of the span's complete generations'
/// key hashes (see [`crate::filter::SpanFilter`]); rewritten as each of its
/// generations is sealed. Absent in indexes written before it (their
/// generations are probed one by one until a commit fills it in).
pub(crate) const SPAN_FILTERS: TableDefinition<(u64, u8), &[u8]> =
    TableDefinition::new("span_filter");
/// (span, last hash of a block's range) -> the first hash of the range and
/// the block of each of the span's sealed generations' `by_guid` filters
/// (see [`crate::filter::SpanBlocks`]): what lets a GUID lookup skip the
/// generations that cannot hold the GUID, one small read a span. Rewritten
/// as each of the span's generations is sealed. Absent in indexes written
/// before it, and for spans sealed by an older binary: those generations
/// are looked up one by one until a `reindex`.
pub(crate) const GUID_BLOCKS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("guid_blocks");
/// (generation, table code) -> the places of the generation's keys of
/// that table (see [`crate::place::KeyRange`]), widened by each commit that
/// writes keys into it.
pub(crate) const KEY_RANGES: TableDefinition<(u64, u8), &[u8]> = TableDefinition::new("key_range");
/// offset -> position, for quarantined records only.
pub(crate) const QUARANTINE: TableDefinition<u64, u32> = TableDefinition::new("quarantine");
/// Running maximum of event time (ms) at the end of a slice of the log (at
/// most [`TIME_SLICE`] records, ending at the latest at a commit) -> the
/// slice's first offset. Records at offsets below the value of the first
/// key >= T all have event times < T.
pub(crate) const TIME: TableDefinition<u64, u64> = TableDefinition::new("time");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Bumped when the tables change meaning; an index of another version is
/// rebuilt from the log. 6 (2026-12-06): a payload time past the year 9999
/// is no time (docs/METRICS.md §2), which moves such a record's time
/// postings and the archive's time range. 7 (2026-12-07): a payload time
/// with a fraction is read to the millisecond (docs/METRICS.md §1), where
/// it was no time.
pub const INDEX_VERSION: u64 = 7;

/// Records per generation of the posting tables: a commit touches the
/// B-tree pages of at most this many records (plus a boundary), so its cost
/// does not grow with the archive, and a lookup by key visits one B-tree
/// range per generation its filters admit. As many as an import's commit
/// (`index_commit_records`): each such commit then appends a generation
/// instead of rewriting the pages the earlier commits of its generation
/// wrote, which with generations of 2^20 records made an import's commits
/// cost more the fuller their generation and left a first import's file
/// ~2.3× its data until compacted (docs/BENCHMARKS.md, "Generations of
/// 2^18 records").
pub const GENERATION_RECORDS: u64 = 1 << 18;

/// redb's page cache. Bounded so that memory stays bounded whatever the
/// archive size (redb's default is 1 GiB). It costs more resident memory
/// than it says: redb keeps each 4 KiB page as an `Arc<[u8]>` of 4,112
/// bytes, which the binary's allocator (mimalloc) serves from its
/// 5,120-byte size class, so 48 MiB of pages take ~60 MiB. 48 MiB, not
/// 64: an import's peak at 50M events was over its 256 MB bound with 64,
/// and a 10M import took the same CPU with either (docs/BENCHMARKS.md,
/// "What grows in a 50M import").
pub(crate) const CACHE_BYTES: usize = 48 << 20;

/// redb's page cache of the live index a writer holds ([`crate::Index::open`];
/// a rebuild's scratch index keeps [`CACHE_BYTES`]). Smaller than a
/// reader's because the archive writes its index commits on a thread of
/// their own: a cached page is allocated by the thread that read it and
/// freed by whichever thread evicts it, and mimalloc hands a block freed by
/// another thread back to the heap of the thread that allocated it, reused
/// only once that thread allocates again, so the two threads' pages
/// together hold more than the cache. With 48 MiB a 50M streamed import
/// rose by up to ~50 MiB for half a second around a commit that sealed a
/// generation (peak 251 MiB, over its 256 MB bound); with 40 MiB it stayed
/// under 236 MiB (docs/BENCHMARKS.md, "Import's peak and the commit
/// thread").
const WRITER_CACHE_BYTES: usize = 40 << 20;

const GUID_SEED: u64 = 0x6775_6964;
const AGENT_SEED: u64 = 0x6167_656e;

/// Records per time-index entry: a seek by time starts at most this many
/// records early, whatever the commit size.
pub const TIME_SLICE: u64 = 16_384;

/// Where indexing stopped: the next offset to index and its log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub next_offset: u64,
    pub segment: u64,
    pub pos: u32,
}

/// The log's compressed segments as the store last counted them
/// (`ccvault_log::PackedSegments`: how many, their total bytes, the
/// fingerprint of their bases), kept in `meta` with each commit that
/// carries them (docs/FORMAT.md §3, "Packed segments"): `stats` sizes the
/// log from it and one listing, without a `stat` per segment. Absent from
/// indexes written before it; then `stats` sizes every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackedTotals {
    pub count: u64,
    pub bytes: u64,
    pub bases: u64,
}

/// Totals kept with the index (all counts are of distinct stored records,
/// except `duplicates`, which counts messages skipped as duplicates, and
/// `control`, which counts transport control messages, never stored).
/// What an index says of the messages dropped before archiving, and the
/// log's tally those counts come from (`None`: none; the log was written
/// before tallies and the index alone keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DroppedCounts {
    pub duplicates: u64,
    pub control: u64,
    pub tally_offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub records: u64,
    pub events: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub control: u64,
    pub interactions: u64,
    /// The range of *timed* event times (docs/METRICS.md §2): a weak time
    /// (`eventTS`, an import time) never stretches it. An index written
    /// before weak times were kept apart holds every time here until
    /// `ccvault reindex`.
    pub min_time_ms: Option<i64>,
    pub max_time_ms: Option<i64>,
    /// Records whose time is weak, and the range of those times.
    pub untimed: u64,
    pub untimed_min_ms: Option<i64>,
    pub untimed_max_ms: Option<i64>,
    /// Damaged places of the log that indexing met and skipped (bytes that
    /// failed their CRC where a record should be): the records there, if
    /// any, are in no posting, so no answer read through the index holds
    /// them. Counted by `reindex` and by indexing a tail; 0 in an index
    /// written before they were counted.
    pub damaged_places: u64,
    /// The bytes those places cover.
    pub damaged_bytes: u64,
    /// The first of them, in log order: (segment base, byte position).
    pub first_damage: Option<(u64, u32)>,
}

impl Counters {
    /// Counts a damaged place indexing skipped.
    pub(crate) fn add_damage(&mut self, segment: u64, pos: u32, bytes: u64) {
        self.damaged_places += 1;
        self.damaged_bytes = self.damaged_bytes.saturating_add(bytes);
        if self.first_damage.is_none_or(|first| (segment, pos) < first) {
            self.first_damage = Some((segment, pos));
        }
    }

    /// Counts one record's time in the timed or the untimed range.
    pub fn add_time(&mut self, ms: i64, timed: bool) {
        let (min, max) = if timed {
            (&mut self.min_time_ms, &mut self.max_time_ms)
        } else {
            self.untimed += 1;
            (&mut self.untimed_min_ms, &mut self.untimed_max_ms)
        };
        *min = Some(min.map_or(ms, |m| m.min(ms)));
        *max = Some(max.map_or(ms, |m| m.max(ms)));
    }

    /// The largest time of any record, timed or not: the time index's key,
    /// which must bound every record's time for a seek by time to be safe.
    pub(crate) fn latest_ms(&self) -> Option<i64> {
        self.max_time_ms.max(self.untimed_max_ms)
    }
}

/// One record to index.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub offset: u64,
    pub pos: u32,
    pub payload_hash: u64,
    pub interaction_guid: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    /// Event time t(e) (docs/METRICS.md §2), or ingest time for quarantined records.
    pub time_ms: i64,
    /// Whether `time_ms` is timed (§2) rather than weak.
    pub timed: bool,
    pub quarantined: bool,
    /// The payload's own event time (docs/METRICS.md §2, rules 1–3: a
    /// function of the payload bytes alone), `None` for a quarantined
    /// record: where a record without a GUID sits for the duplicate check
    /// (`place`).
    pub payload_time: Option<i64>,
}

/// The posting tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PostingKind {
    Guid = 0,
    Agent = 1,
    Payload = 2,
}

/// The table's name in the file (docs/FORMAT.md §3), as messages name it.
impl std::fmt::Display for PostingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PostingKind::Guid => "by_guid",
            PostingKind::Agent => "by_agent",
            PostingKind::Payload => "by_payload",
        })
    }
}

impl PostingKind {
    /// What a key of the table is, for messages: "interaction GUID "…"".
    pub fn describe_key(self, key: &[u8]) -> String {
        match self {
            PostingKind::Guid => format!("interaction GUID {:?}", String::from_utf8_lossy(key)),
            PostingKind::Agent => format!("agent {:?}", String::from_utf8_lossy(key)),
            PostingKind::Payload => format!("payload hash {:016x}", xxh3_64(key)),
        }
    }

    pub(crate) fn hash(self, key: &[u8]) -> u64 {
        match self {
            PostingKind::Guid => xxh3_64_with_seed(key, GUID_SEED),
            PostingKind::Agent => xxh3_64_with_seed(key, AGENT_SEED),
            PostingKind::Payload => xxh3_64(key),
        }
    }
}

/// An order-independent fingerprint of a set of postings: their count and
/// the wrapping sum of a hash of each `(table, key hash, offset, position)`.
/// Two sets with equal digests are equal but for a 2^-64 chance, so
/// `verify` compares the log's expected postings with the index's in one
/// sequential pass each, and looks records up one by one only to name the
/// differences when the digests disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostingDigest {
    pub count: u64,
    pub sum: u64,
}

impl PostingDigest {
    /// `payload_hash`: what a GUID posting keeps of its record's payload
    /// for the duplicate check ([`payload_hash`]); 0 for the other kinds.
    /// A damaged one hides the record's copies from that check, so it is
    /// part of the digest.
    pub fn add(
        &mut self,
        kind: PostingKind,
        key_hash: u64,
        offset: u64,
        pos: u32,
        payload_hash: u64,
    ) {
        let mut bytes = [0u8; 29];
        bytes[0] = kind as u8;
        bytes[1..9].copy_from_slice(&key_hash.to_le_bytes());
        bytes[9..17].copy_from_slice(&offset.to_le_bytes());
        bytes[17..21].copy_from_slice(&pos.to_le_bytes());
        bytes[21..29].copy_from_slice(&payload_hash.to_le_bytes());
        self.count += 1;
        self.sum = self.sum.wrapping_add(xxh3_64(&bytes));
    }

    /// Adds the posting of a record under its key (the GUID, agent id or
    /// payload bytes, as the table is keyed).
    pub fn add_key(
        &mut self,
        kind: PostingKind,
        key: &[u8],
        offset: u64,
        pos: u32,
        payload_hash: u64,
    ) {
        self.add(kind, kind.hash(key), offset, pos, payload_hash);
    }
}

/// A record found by a lookup: its offset and position in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    pub offset: u64,
    pub pos: u32,
}

impl From<&Posting> for Hit {
    fn from(p: &Posting) -> Hit {
        Hit {
            offset: p.offset,
            pos: p.pos,
        }
    }
}

pub fn payload_hash(payload: &[u8]) -> u64 {
    PostingKind::Payload.hash(payload)
}
pub fn guid_hash(guid: &str) -> u64 {
    PostingKind::Guid.hash(guid.as_bytes())
}
pub fn agent_hash(agent: &str) -> u64 {
    PostingKind::Agent.hash(agent.as_bytes())
}

pub(crate) fn builder(mode: ConcurrencyMode) -> redb::Builder {
    builder_with_cache(mode, CACHE_BYTES)
}

/// The builder of the live index a writer holds (not a scratch one).
pub(crate) fn writer_builder() -> redb::Builder {
    builder_with_cache(ConcurrencyMode::SingleWriter, WRITER_CACHE_BYTES)
}

pub(crate) fn builder_with_cache(mode: ConcurrencyMode, cache_bytes: usize) -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(mode).set_cache_size(cache_bytes);
    b
}
