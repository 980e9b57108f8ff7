//! The ccvault index: redb tables that find records of the segment log.
//!
//! Guarantees and invariants:
//! - The log is the source of truth. Everything here is derived from it and
//!   can be rebuilt by replaying the log through [`IndexWriter::add_all`];
//!   two indexes built from the same log answer every query identically.
//! - The checkpoint is committed in the same transaction as the entries it
//!   covers: a reader never sees entries past it, nor a checkpoint ahead of
//!   its entries. After a crash the index is at some earlier checkpoint and
//!   the caller re-indexes the log tail past it.
//! - Postings are chunked: one commit writes, per GUID or agent, one value
//!   `(key hash, first offset) -> packed postings` (see [`chunk`]), so an
//!   interaction costs one B-tree entry per commit, not one per event, and
//!   nothing is ever rewritten. Keys are 64-bit hashes (xxh3): callers
//!   confirm a match against the record itself, so a collision costs a read,
//!   never a wrong answer.
//! - Deduplication finds candidates by payload hash: within the GUID's
//!   postings (which carry payload hashes) for events of an interaction, in
//!   a payload-hash table for every other record.
//! - A writer accumulates a commit's entries in memory (bounded by how often
//!   the caller commits) and writes them in one transaction.

pub mod chunk;
mod guard;

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition,
};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use chunk::{ChunkBuilder, Posting};
use guard::{guarded, unguarded};

/// (key hash, first offset) -> a chunk of postings.
type Chunks = TableDefinition<'static, (u64, u64), &'static [u8]>;

const BY_GUID: Chunks = TableDefinition::new("by_guid");
const BY_AGENT: Chunks = TableDefinition::new("by_agent");
/// (payload hash, offset) -> position, for records that name no interaction.
const BY_PAYLOAD: TableDefinition<(u64, u64), u32> = TableDefinition::new("by_payload");
/// offset -> position, for quarantined records only.
const QUARANTINE: TableDefinition<u64, u32> = TableDefinition::new("quarantine");
/// Running maximum of event time (ms) at the end of a slice of the log (at
/// most [`TIME_SLICE`] records, ending at the latest at a commit) -> the
/// slice's first offset. Records at offsets below the value of the first
/// key >= T all have event times < T.
const TIME: TableDefinition<u64, u64> = TableDefinition::new("time");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Bumped when the tables change meaning; an index of another version is
/// rebuilt from the log.
pub const INDEX_VERSION: u64 = 2;

/// redb's page cache. Bounded so that memory stays bounded whatever the
/// archive size (redb's default is 1 GiB).
const CACHE_BYTES: usize = 64 << 20;

const GUID_SEED: u64 = 0x6775_6964;
const AGENT_SEED: u64 = 0x6167_656e;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error("index {path} is version {found}, this ccvault reads version {INDEX_VERSION}: run `ccvault reindex`")]
    Version { path: String, found: u64 },
    #[error("index {path}: {what}: run `ccvault reindex`")]
    Corrupt { path: String, what: String },
}

pub type Result<T> = std::result::Result<T, IndexError>;

/// Where indexing stopped: the next offset to index and its log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub next_offset: u64,
    pub segment: u64,
    pub pos: u32,
}

/// Totals kept with the index (all counts are of distinct stored records,
/// except `duplicates`, which counts messages skipped as duplicates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub records: u64,
    pub events: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub interactions: u64,
    pub min_time_ms: Option<i64>,
    pub max_time_ms: Option<i64>,
}

/// One record to index.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub offset: u64,
    pub pos: u32,
    pub payload_hash: u64,
    pub interaction_guid: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    /// Event time t(e) (METRICS §2), or ingest time for quarantined records.
    pub time_ms: i64,
    pub quarantined: bool,
}

/// The posting tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingKind {
    Guid = 0,
    Agent = 1,
    Payload = 2,
}

impl PostingKind {
    fn hash(self, key: &[u8]) -> u64 {
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
    pub fn add(&mut self, kind: PostingKind, key_hash: u64, offset: u64, pos: u32) {
        let mut bytes = [0u8; 21];
        bytes[0] = kind as u8;
        bytes[1..9].copy_from_slice(&key_hash.to_le_bytes());
        bytes[9..17].copy_from_slice(&offset.to_le_bytes());
        bytes[17..21].copy_from_slice(&pos.to_le_bytes());
        self.count += 1;
        self.sum = self.sum.wrapping_add(xxh3_64(&bytes));
    }

    /// Adds the posting of a record under its key (the GUID, agent id or
    /// payload bytes, as the table is keyed).
    pub fn add_key(&mut self, kind: PostingKind, key: &[u8], offset: u64, pos: u32) {
        self.add(kind, kind.hash(key), offset, pos);
    }
}

/// A record found by a lookup: its offset and position in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    pub offset: u64,
    pub pos: u32,
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

fn err(path: &Path) -> impl Fn(redb::Error) -> IndexError + '_ {
    move |source| IndexError::Redb {
        path: path.display().to_string(),
        source,
    }
}

fn builder(mode: ConcurrencyMode) -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(mode).set_cache_size(CACHE_BYTES);
    b
}

/// The writable index, held by the archive's single writer.
pub struct Index {
    db: Database,
    path: PathBuf,
    /// A scratch index (being rebuilt, read by no one): commits need not be
    /// durable until [`Index::seal`].
    scratch: bool,
}

impl Index {
    /// Opens or creates the index file. Other processes may open it
    /// read-only ([`IndexReader::open`]) while this handle lives.
    pub fn open(path: &Path) -> Result<Index> {
        Self::open_mode(path, false)
    }

    /// Creates an index that only this process uses while it is filled (a
    /// rebuild's scratch file): its commits skip the fsync, and
    /// [`Index::seal`] makes everything durable at the end. A crash midway
    /// leaves a scratch file to delete, never a damaged live index.
    pub fn create_scratch(path: &Path) -> Result<Index> {
        Self::open_mode(path, true)
    }

    /// Makes every commit of a scratch index durable and closes it.
    pub fn seal(self) -> Result<()> {
        let path = self.path.clone();
        guarded(&path, || {
            let mut txn = self.db.begin_write().map_err(|e| self.err(e.into()))?;
            txn.set_durability(if self.scratch {
                Durability::None
            } else {
                Durability::Immediate
            })
            .map_err(|e| self.err(redb::Error::from(e)))?;
            txn.commit().map_err(|e| self.err(e.into()))?;
            let path = self.path;
            self.db.close().map_err(|e| err(&path)(e.into()))
        })
    }

    fn open_mode(path: &Path, scratch: bool) -> Result<Index> {
        guarded(path, || {
            // Archive files are private (they hold phone numbers and names):
            // create the file 0600 before redb initializes it.
            {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(path)(redb::Error::Io(e)))?;
            }
            let mode = if scratch {
                ConcurrencyMode::ExclusiveWriter
            } else {
                ConcurrencyMode::SingleWriter
            };
            let db = builder(mode)
                .create(path)
                .map_err(|e| err(path)(e.into()))?;
            let index = Index {
                db,
                path: path.to_path_buf(),
                scratch,
            };
            match index.reader()?.meta("version")? {
                None => {
                    let txn = index.db.begin_write().map_err(|e| index.err(e.into()))?;
                    {
                        let mut t = txn.open_table(META).map_err(|e| index.err(e.into()))?;
                        t.insert("version", INDEX_VERSION)
                            .map_err(|e| index.err(e.into()))?;
                    }
                    txn.commit().map_err(|e| index.err(e.into()))?;
                }
                Some(v) if v != INDEX_VERSION => {
                    return Err(IndexError::Version {
                        path: path.display().to_string(),
                        found: v,
                    })
                }
                Some(_) => {}
            }
            Ok(index)
        })
    }

    /// Starts collecting a commit's entries.
    pub fn begin(&self) -> Result<IndexWriter> {
        let snapshot = self.reader()?;
        let counters = snapshot.counters()?;
        Ok(IndexWriter {
            snapshot,
            counters,
            guid: HashMap::new(),
            committed_guid: HashMap::new(),
            agent: HashMap::new(),
            payload: HashMap::new(),
            quarantine: Vec::new(),
            slice_first: None,
            time_marks: Vec::new(),
            collected: 0,
            held_bytes: 0,
        })
    }

    /// Writes everything the writer collected, with the checkpoint after it
    /// (`None` keeps the checkpoint), in one durable transaction.
    pub fn commit(&self, w: IndexWriter, checkpoint: Option<Checkpoint>) -> Result<()> {
        guarded(&self.path, || {
            let e = |x: redb::Error| err(&self.path)(x);
            let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
            {
                for (table, map) in [(BY_GUID, &w.guid), (BY_AGENT, &w.agent)] {
                    let mut t = txn.open_table(table).map_err(|x| e(x.into()))?;
                    let mut chunks: Vec<(&u64, &ChunkBuilder)> = map.iter().collect();
                    chunks.sort_unstable_by_key(|(hash, _)| **hash);
                    for (hash, chunk) in chunks {
                        t.insert((*hash, chunk.first()), chunk.bytes())
                            .map_err(|x| e(x.into()))?;
                    }
                }
                let mut t = txn.open_table(BY_PAYLOAD).map_err(|x| e(x.into()))?;
                let mut payload: Vec<(u64, Hit)> = w
                    .payload
                    .iter()
                    .flat_map(|(h, hits)| hits.iter().map(move |hit| (*h, *hit)))
                    .collect();
                payload.sort_unstable();
                for (h, hit) in payload {
                    t.insert((h, hit.offset), hit.pos)
                        .map_err(|x| e(x.into()))?;
                }
                let mut t = txn.open_table(QUARANTINE).map_err(|x| e(x.into()))?;
                for hit in &w.quarantine {
                    t.insert(hit.offset, hit.pos).map_err(|x| e(x.into()))?;
                }
                let mut time_marks = w.time_marks;
                if let (Some(first), Some(max_time)) = (w.slice_first, w.counters.max_time_ms) {
                    time_marks.push((max_time.max(0) as u64, first));
                }
                let mut t = txn.open_table(TIME).map_err(|x| e(x.into()))?;
                for (key, first) in time_marks {
                    if t.get(key).map_err(|x| e(x.into()))?.is_none() {
                        t.insert(key, first).map_err(|x| e(x.into()))?;
                    }
                }
                let mut t = txn.open_table(META).map_err(|x| e(x.into()))?;
                let c = w.counters;
                let mut meta = vec![
                    ("records", c.records),
                    ("events", c.events),
                    ("quarantined", c.quarantined),
                    ("duplicates", c.duplicates),
                    ("interactions", c.interactions),
                ];
                if let Some(t) = c.min_time_ms {
                    meta.push(("min_time_ms", t as u64));
                }
                if let Some(t) = c.max_time_ms {
                    meta.push(("max_time_ms", t as u64));
                }
                if let Some(cp) = checkpoint {
                    meta.push(("checkpoint.next_offset", cp.next_offset));
                    meta.push(("checkpoint.segment", cp.segment));
                    meta.push(("checkpoint.pos", u64::from(cp.pos)));
                }
                for (k, v) in meta {
                    t.insert(k, v).map_err(|x| e(x.into()))?;
                }
            }
            let mut txn = txn;
            txn.set_durability(Durability::Immediate)
                .map_err(|x| e(redb::Error::from(x)))?;
            txn.commit().map_err(|x| e(x.into()))
        })
    }

    /// Gives the file's free space back: redb's copy-on-write commits leave
    /// freed pages behind (a fresh index of ~19 bytes an event measured
    /// 71 bytes an event on disk before compaction). Skipped, returning
    /// `false`, while another process holds a read transaction.
    pub fn compact(&mut self) -> Result<bool> {
        let path = self.path.clone();
        guarded(&path, || {
            let mut compacted = false;
            loop {
                match self.db.compact() {
                    Ok(true) => compacted = true,
                    Ok(false) => return Ok(compacted),
                    Err(
                        redb::CompactionError::TransactionInProgress
                        | redb::CompactionError::EphemeralSavepointExists
                        | redb::CompactionError::PersistentSavepointExists,
                    ) => return Ok(compacted),
                    Err(e) => return Err(err(&path)(e.into())),
                }
            }
        })
    }

    /// A snapshot of the last commit.
    pub fn reader(&self) -> Result<IndexReader> {
        guarded(&self.path, || {
            let txn = self.db.begin_read().map_err(|e| self.err(e.into()))?;
            Ok(IndexReader {
                txn,
                path: self.path.clone(),
            })
        })
    }

    fn err(&self, e: redb::Error) -> IndexError {
        err(&self.path)(e)
    }
}

/// A snapshot of the index as of one commit.
pub struct IndexReader {
    txn: ReadTransaction,
    path: PathBuf,
}

impl IndexReader {
    /// Opens the index of another (possibly running) writer read-only and
    /// takes a snapshot of its last commit.
    pub fn open(path: &Path) -> Result<IndexReader> {
        guarded(path, || {
            let db: ReadOnlyDatabase = builder(ConcurrencyMode::SingleWriter)
                .open_read_only(path)
                .map_err(|e| err(path)(e.into()))?;
            let txn = db.begin_read().map_err(|e| err(path)(e.into()))?;
            let reader = IndexReader {
                txn,
                path: path.to_path_buf(),
            };
            match reader.meta("version")? {
                Some(v) if v != INDEX_VERSION => Err(IndexError::Version {
                    path: path.display().to_string(),
                    found: v,
                }),
                _ => Ok(reader),
            }
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        err(&self.path)(e.into())
    }

    fn corrupt(&self, what: String) -> IndexError {
        IndexError::Corrupt {
            path: self.path.display().to_string(),
            what,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<u64>> {
        guarded(&self.path, || match self.txn.open_table(META) {
            Ok(t) => Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        })
    }

    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let Some(next_offset) = self.meta("checkpoint.next_offset")? else {
            return Ok(None);
        };
        let segment = self.meta("checkpoint.segment")?.unwrap_or(0);
        let pos = self.meta("checkpoint.pos")?.unwrap_or(0);
        Ok(Some(Checkpoint {
            next_offset,
            segment,
            pos: u32::try_from(pos).unwrap_or(u32::MAX),
        }))
    }

    pub fn counters(&self) -> Result<Counters> {
        let get = |k: &str| -> Result<u64> { Ok(self.meta(k)?.unwrap_or(0)) };
        let time = |k: &str| -> Result<Option<i64>> { Ok(self.meta(k)?.map(|v| v as i64)) };
        Ok(Counters {
            records: get("records")?,
            events: get("events")?,
            quarantined: get("quarantined")?,
            duplicates: get("duplicates")?,
            interactions: get("interactions")?,
            min_time_ms: time("min_time_ms")?,
            max_time_ms: time("max_time_ms")?,
        })
    }

    /// Every posting of one key hash, in offset order.
    fn chunk_postings(&self, kind: PostingKind, hash: u64) -> Result<Vec<Posting>> {
        guarded(&self.path, || {
            let (table, with_hash) = match kind {
                PostingKind::Guid => (BY_GUID, true),
                PostingKind::Agent => (BY_AGENT, false),
                PostingKind::Payload => {
                    return Ok(self
                        .payload_postings(hash)?
                        .into_iter()
                        .map(|h| Posting {
                            offset: h.offset,
                            pos: h.pos,
                            payload_hash: hash,
                        })
                        .collect())
                }
            };
            let t = match self.txn.open_table(table) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.err(e)),
            };
            let mut out = Vec::new();
            for item in t
                .range((hash, 0)..=(hash, u64::MAX))
                .map_err(|e| self.err(e))?
            {
                let (k, v) = item.map_err(|e| self.err(e))?;
                chunk::decode(k.value().1, v.value(), with_hash, &mut out)
                    .map_err(|w| self.corrupt(w))?;
            }
            Ok(out)
        })
    }

    fn payload_postings(&self, hash: u64) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let t = match self.txn.open_table(BY_PAYLOAD) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.err(e)),
            };
            let mut hits = Vec::new();
            for item in t
                .range((hash, 0)..=(hash, u64::MAX))
                .map_err(|e| self.err(e))?
            {
                let (k, v) = item.map_err(|e| self.err(e))?;
                hits.push(Hit {
                    offset: k.value().1,
                    pos: v.value(),
                });
            }
            Ok(hits)
        })
    }

    fn hits(&self, kind: PostingKind, hash: u64) -> Result<Vec<Hit>> {
        Ok(self
            .chunk_postings(kind, hash)?
            .into_iter()
            .map(|p| Hit {
                offset: p.offset,
                pos: p.pos,
            })
            .collect())
    }

    /// Records whose GUID hashes like `guid`, in offset order. Confirm each
    /// against the record: a hash collision can add foreign records.
    pub fn guid_hits(&self, guid: &str) -> Result<Vec<Hit>> {
        self.hits(PostingKind::Guid, guid_hash(guid))
    }

    /// Records whose agent id hashes like `agent`, in offset order.
    pub fn agent_hits(&self, agent: &str) -> Result<Vec<Hit>> {
        self.hits(PostingKind::Agent, agent_hash(agent))
    }

    /// Records that may hold exactly `payload`: same payload hash, looked
    /// up where the writer put them (under the GUID when there is one).
    pub fn duplicate_candidates(&self, hash: u64, guid: Option<&str>) -> Result<Vec<Hit>> {
        match guid {
            Some(g) => Ok(self
                .chunk_postings(PostingKind::Guid, guid_hash(g))?
                .into_iter()
                .filter(|p| p.payload_hash == hash)
                .map(|p| Hit {
                    offset: p.offset,
                    pos: p.pos,
                })
                .collect()),
            None => self.payload_postings(hash),
        }
    }

    fn has_guid_hash(&self, hash: u64) -> Result<bool> {
        guarded(&self.path, || match self.txn.open_table(BY_GUID) {
            Ok(t) => Ok(t
                .range((hash, 0)..=(hash, u64::MAX))
                .map_err(|e| self.err(e))?
                .next()
                .is_some()),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(self.err(e)),
        })
    }

    /// Quarantined records in offset order.
    pub fn quarantined(&self) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let t = match self.txn.open_table(QUARANTINE) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.err(e)),
            };
            let mut hits = Vec::new();
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                hits.push(Hit {
                    offset: k.value(),
                    pos: v.value(),
                });
            }
            Ok(hits)
        })
    }

    /// An offset from which a scan sees every record with event time >= `t_ms`
    /// (records before it all have earlier times).
    pub fn seek_time(&self, t_ms: i64) -> Result<u64> {
        guarded(&self.path, || {
            let t = match self.txn.open_table(TIME) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(e) => return Err(self.err(e)),
            };
            let key = t_ms.max(0) as u64;
            let mut range = t.range(key..).map_err(|e| self.err(e))?;
            match range.next() {
                Some(item) => Ok(item.map_err(|e| self.err(e))?.1.value()),
                None => Ok(self.checkpoint()?.map_or(0, |c| c.next_offset)),
            }
        })
    }

    /// Every distinct GUID hash with its records in offset order, in hash
    /// order: the unit of work of a projection rebuild.
    pub fn for_each_guid_group(&self, mut f: impl FnMut(u64, &[Hit])) -> Result<()> {
        guarded(&self.path, || {
            let t = match self.txn.open_table(BY_GUID) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(self.err(e)),
            };
            let mut current: Option<u64> = None;
            let mut postings = Vec::new();
            let mut hits = Vec::new();
            let mut flush = |h: u64, postings: &mut Vec<Posting>, hits: &mut Vec<Hit>| {
                hits.clear();
                hits.extend(postings.iter().map(|p| Hit {
                    offset: p.offset,
                    pos: p.pos,
                }));
                unguarded(|| f(h, hits));
                postings.clear();
            };
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let (hash, first) = k.value();
                if current != Some(hash) {
                    if let Some(h) = current {
                        flush(h, &mut postings, &mut hits);
                    }
                    current = Some(hash);
                }
                chunk::decode(first, v.value(), true, &mut postings)
                    .map_err(|w| self.corrupt(w))?;
            }
            if let Some(h) = current {
                flush(h, &mut postings, &mut hits);
            }
            Ok(())
        })
    }

    /// The position stored for `offset` under `key` in one posting table,
    /// if that posting exists (for verification).
    pub fn posting(&self, kind: PostingKind, key: &[u8], offset: u64) -> Result<Option<u32>> {
        Ok(self
            .chunk_postings(kind, kind.hash(key))?
            .into_iter()
            .find(|p| p.offset == offset)
            .map(|p| p.pos))
    }

    /// The number of postings in one table and their [`PostingDigest`]:
    /// one sequential pass, for verification.
    pub fn posting_digest(&self, kind: PostingKind) -> Result<PostingDigest> {
        guarded(&self.path, || {
            let mut digest = PostingDigest::default();
            let (table, with_hash) = match kind {
                PostingKind::Guid => (BY_GUID, true),
                PostingKind::Agent => (BY_AGENT, false),
                PostingKind::Payload => {
                    let t = match self.txn.open_table(BY_PAYLOAD) {
                        Ok(t) => t,
                        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(digest),
                        Err(e) => return Err(self.err(e)),
                    };
                    for item in t.iter().map_err(|e| self.err(e))? {
                        let (k, v) = item.map_err(|e| self.err(e))?;
                        let (hash, offset) = k.value();
                        digest.add(kind, hash, offset, v.value());
                    }
                    return Ok(digest);
                }
            };
            let t = match self.txn.open_table(table) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(digest),
                Err(e) => return Err(self.err(e)),
            };
            let mut buf = Vec::new();
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let (hash, first) = k.value();
                buf.clear();
                chunk::decode(first, v.value(), with_hash, &mut buf)
                    .map_err(|w| self.corrupt(w))?;
                for p in &buf {
                    digest.add(kind, hash, p.offset, p.pos);
                }
            }
            Ok(digest)
        })
    }

    /// Number of quarantine entries.
    pub fn quarantine_count(&self) -> Result<u64> {
        guarded(&self.path, || match self.txn.open_table(QUARANTINE) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        })
    }
}

/// The entries of one commit, collected in memory, plus the snapshot they
/// build on. Lookups see both.
pub struct IndexWriter {
    snapshot: IndexReader,
    counters: Counters,
    guid: HashMap<u64, ChunkBuilder>,
    /// The snapshot's postings of each GUID looked up during this commit.
    /// An interaction's events arrive close together, so one B-tree lookup
    /// serves all of them (bounded, like `guid`, by the commit's size).
    committed_guid: HashMap<u64, Vec<Posting>>,
    agent: HashMap<u64, ChunkBuilder>,
    /// Records that name no interaction, by payload hash.
    payload: HashMap<u64, Vec<Hit>>,
    quarantine: Vec<Hit>,
    /// First offset of the current time slice (see [`TIME_SLICE`]).
    slice_first: Option<u64>,
    /// (running max event time at the end of a slice, its first offset).
    time_marks: Vec<(u64, u64)>,
    collected: u64,
    /// Approximate heap bytes of the collected entries.
    held_bytes: usize,
}

/// Records per time-index entry: a seek by time starts at most this many
/// records early, whatever the commit size.
pub const TIME_SLICE: u64 = 16_384;

/// Approximate heap bytes of one map entry besides its chunk's bytes.
const ENTRY_OVERHEAD: usize = 64;

/// Adds a posting to the chunk of `key`, counting the bytes it takes.
fn collect(
    chunks: &mut HashMap<u64, ChunkBuilder>,
    key: u64,
    posting: &Posting,
    with_hash: bool,
    held_bytes: &mut usize,
) {
    let chunk = chunks.entry(key).or_insert_with(|| {
        *held_bytes += ENTRY_OVERHEAD;
        ChunkBuilder::new(posting.offset, with_hash)
    });
    let before = chunk.capacity();
    chunk.push(posting);
    *held_bytes += chunk.capacity() - before;
}

impl IndexWriter {
    /// Records that may hold exactly these payload bytes (same hash), among
    /// committed and collected entries. `guid` is the payload's GUID.
    pub fn duplicate_candidates(&mut self, hash: u64, guid: Option<&str>) -> Result<Vec<Hit>> {
        let same = |p: &&Posting| p.payload_hash == hash;
        let hit = |p: &Posting| Hit {
            offset: p.offset,
            pos: p.pos,
        };
        match guid {
            Some(g) => {
                let h = guid_hash(g);
                let mut hits: Vec<Hit> = self
                    .committed_postings(h)?
                    .iter()
                    .filter(same)
                    .map(hit)
                    .collect();
                if let Some(chunk) = self.guid.get(&h) {
                    let mut collected = Vec::new();
                    chunk
                        .decode_into(&mut collected)
                        .map_err(|w| self.snapshot.corrupt(w))?;
                    hits.extend(collected.iter().filter(same).map(hit));
                }
                Ok(hits)
            }
            None => {
                let mut hits = self.snapshot.payload_postings(hash)?;
                if let Some(hs) = self.payload.get(&hash) {
                    hits.extend_from_slice(hs);
                }
                Ok(hits)
            }
        }
    }

    /// The snapshot's postings of one GUID hash, looked up once a commit.
    fn committed_postings(&mut self, h: u64) -> Result<&[Posting]> {
        Ok(match self.committed_guid.entry(h) {
            MapEntry::Occupied(e) => e.into_mut(),
            MapEntry::Vacant(e) => e.insert(self.snapshot.chunk_postings(PostingKind::Guid, h)?),
        })
    }

    /// Number of records collected since `begin`.
    pub fn pending(&self) -> u64 {
        self.collected
    }

    /// Approximate heap bytes held by the records collected since `begin`
    /// (for callers that bound a commit by memory).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Collects a batch of records, in log order.
    pub fn add_all(&mut self, entries: &[Entry<'_>]) -> Result<()> {
        for entry in entries {
            let slice_first = *self.slice_first.get_or_insert(entry.offset);
            let posting = Posting {
                offset: entry.offset,
                pos: entry.pos,
                payload_hash: entry.payload_hash,
            };
            let hit = Hit {
                offset: entry.offset,
                pos: entry.pos,
            };
            match entry.interaction_guid {
                Some(guid) => {
                    let h = guid_hash(guid);
                    if !self.guid.contains_key(&h) {
                        let committed = match self.committed_guid.get(&h) {
                            Some(ps) => !ps.is_empty(),
                            None => self.snapshot.has_guid_hash(h)?,
                        };
                        if !committed {
                            self.counters.interactions += 1;
                        }
                    }
                    collect(&mut self.guid, h, &posting, true, &mut self.held_bytes);
                }
                None => {
                    self.payload
                        .entry(entry.payload_hash)
                        .or_default()
                        .push(hit);
                    self.held_bytes += ENTRY_OVERHEAD;
                }
            }
            if let Some(agent) = entry.agent_id {
                let h = agent_hash(agent);
                collect(&mut self.agent, h, &posting, false, &mut self.held_bytes);
            }
            self.collected += 1;
            let c = &mut self.counters;
            c.records += 1;
            if entry.quarantined {
                self.quarantine.push(hit);
                self.held_bytes += std::mem::size_of::<Hit>();
                c.quarantined += 1;
            } else {
                c.events += 1;
            }
            c.min_time_ms = Some(
                c.min_time_ms
                    .map_or(entry.time_ms, |m| m.min(entry.time_ms)),
            );
            c.max_time_ms = Some(
                c.max_time_ms
                    .map_or(entry.time_ms, |m| m.max(entry.time_ms)),
            );
            if entry.offset + 1 - slice_first >= TIME_SLICE {
                let max_time = c.max_time_ms.map_or(0, |m| m.max(0) as u64);
                self.time_marks.push((max_time, slice_first));
                self.slice_first = None;
            }
        }
        Ok(())
    }

    /// Counts messages skipped as duplicates.
    pub fn add_duplicates(&mut self, n: u64) {
        self.counters.duplicates += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, payload: &[u8], guid: Option<&'static str>) -> Entry<'static> {
        Entry {
            offset,
            pos: offset as u32 * 10,
            payload_hash: payload_hash(payload),
            interaction_guid: guid,
            agent_id: Some("ag1"),
            time_ms: 1000 * offset as i64,
            quarantined: guid.is_none(),
        }
    }

    #[test]
    fn postings_counters_and_checkpoint_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let index = Index::open(&path).unwrap();
        assert_eq!(index.reader().unwrap().checkpoint().unwrap(), None);

        let mut w = index.begin().unwrap();
        w.add_all(&[entry(0, b"a", Some("g1")), entry(1, b"b", Some("g2"))])
            .unwrap();
        w.add_all(&[entry(2, b"c", Some("g1")), entry(3, b"junk", None)])
            .unwrap();
        let c_hash = payload_hash(b"c");
        assert_eq!(
            w.duplicate_candidates(c_hash, Some("g1")).unwrap().len(),
            1,
            "visible before commit"
        );
        assert!(w
            .duplicate_candidates(c_hash, Some("g2"))
            .unwrap()
            .is_empty());
        assert_eq!(
            w.duplicate_candidates(payload_hash(b"junk"), None)
                .unwrap()
                .len(),
            1
        );
        w.add_duplicates(2);
        let cp = Checkpoint {
            next_offset: 4,
            segment: 0,
            pos: 40,
        };
        index.commit(w, Some(cp)).unwrap();

        // A second commit adds a second chunk for g1.
        let mut w = index.begin().unwrap();
        assert_eq!(
            w.duplicate_candidates(c_hash, Some("g1")).unwrap().len(),
            1,
            "committed"
        );
        w.add_all(&[entry(4, b"d", Some("g1"))]).unwrap();
        let cp2 = Checkpoint {
            next_offset: 5,
            segment: 0,
            pos: 50,
        };
        index.commit(w, Some(cp2)).unwrap();

        let r = index.reader().unwrap();
        assert_eq!(r.checkpoint().unwrap(), Some(cp2));
        let hits: Vec<u64> = r
            .guid_hits("g1")
            .unwrap()
            .iter()
            .map(|h| h.offset)
            .collect();
        assert_eq!(hits, vec![0, 2, 4]);
        assert_eq!(r.agent_hits("ag1").unwrap().len(), 5);
        assert_eq!(r.quarantined().unwrap(), vec![Hit { offset: 3, pos: 30 }]);
        let c = r.counters().unwrap();
        assert_eq!(
            (
                c.records,
                c.events,
                c.quarantined,
                c.duplicates,
                c.interactions
            ),
            (5, 4, 1, 2, 2)
        );
        assert_eq!(c.max_time_ms, Some(4000));
        assert_eq!(r.seek_time(2500).unwrap(), 0);
        assert_eq!(r.seek_time(3500).unwrap(), 4);
        assert_eq!(r.seek_time(99_999).unwrap(), 5);
        let mut groups = Vec::new();
        r.for_each_guid_group(|_, hits| groups.push(hits.len()))
            .unwrap();
        groups.sort();
        assert_eq!(groups, vec![1, 3]);
        assert_eq!(r.posting(PostingKind::Guid, b"g1", 2).unwrap(), Some(20));
        assert_eq!(r.posting(PostingKind::Guid, b"g1", 1).unwrap(), None);
        assert_eq!(r.posting_digest(PostingKind::Guid).unwrap().count, 4);
        assert_eq!(r.posting_digest(PostingKind::Agent).unwrap().count, 5);
        assert_eq!(r.posting_digest(PostingKind::Payload).unwrap().count, 1);
        let mut want = PostingDigest::default();
        for (offset, pos) in [(0, 0), (2, 20), (4, 40)] {
            want.add_key(PostingKind::Guid, b"g1", offset, pos);
        }
        want.add_key(PostingKind::Guid, b"g2", 1, 10);
        assert_eq!(r.posting_digest(PostingKind::Guid).unwrap(), want);
    }

    #[test]
    fn one_large_commit_still_seeks_by_time_slice() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let n = 3 * TIME_SLICE + 10;
        let entries: Vec<Entry> = (0..n)
            .map(|offset| Entry {
                offset,
                pos: 0,
                payload_hash: offset,
                interaction_guid: None,
                agent_id: None,
                time_ms: offset as i64 * 10,
                quarantined: false,
            })
            .collect();
        let mut w = index.begin().unwrap();
        w.add_all(&entries).unwrap();
        index.commit(w, None).unwrap();
        let r = index.reader().unwrap();
        // Times grow with offsets: a seek lands on the start of T's slice.
        for offset in [0, 5, TIME_SLICE - 1, TIME_SLICE, 2 * TIME_SLICE + 7, n - 1] {
            let t = offset as i64 * 10;
            assert_eq!(
                r.seek_time(t).unwrap(),
                offset / TIME_SLICE * TIME_SLICE,
                "seek to {t}"
            );
        }
    }

    #[test]
    fn an_uncommitted_batch_is_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        {
            let mut w = index.begin().unwrap();
            w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
            // dropped without commit
        }
        let r = index.reader().unwrap();
        assert!(r.guid_hits("g1").unwrap().is_empty());
        assert_eq!(r.counters().unwrap(), Counters::default());
    }

    #[test]
    fn a_read_only_reader_sees_the_writers_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let index = Index::open(&path).unwrap();
        let mut w = index.begin().unwrap();
        w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
        index.commit(w, Some(Checkpoint::default())).unwrap();
        let r = IndexReader::open(&path).unwrap();
        assert_eq!(r.guid_hits("g1").unwrap().len(), 1);
    }
}
