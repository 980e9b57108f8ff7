//! The ccvault index: redb tables that find records of the segment log.
//!
//! Guarantees and invariants:
//! - The log is the source of truth. Everything here is derived from it and
//!   can be rebuilt by replaying the log through [`IndexWriter::add`]; two
//!   indexes built from the same log answer every query identically.
//! - The checkpoint is committed in the same transaction as the entries it
//!   covers: a reader never sees entries past it, nor a checkpoint ahead of
//!   its entries. After a crash the index is at some earlier checkpoint and
//!   the caller re-indexes the log tail past it.
//! - Keys are 64-bit hashes (xxh3) of GUIDs, agent ids and payloads, paired
//!   with the offset, so a posting costs 16 key bytes and 4 value bytes and
//!   is never rewritten. Hashes can collide: callers confirm a match against
//!   the record itself (the store does), so a collision costs a read, never a
//!   wrong answer.
//! - Each record's position in its segment is stored with its offset, so a
//!   lookup reads the log with one `pread` per record.

use std::path::Path;

use redb::{
    ConcurrencyMode, Database, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// (key hash, offset) -> position of the record in its segment.
type Postings = TableDefinition<'static, (u64, u64), u32>;

const BY_GUID: Postings = TableDefinition::new("by_guid");
const BY_AGENT: Postings = TableDefinition::new("by_agent");
const BY_PAYLOAD: Postings = TableDefinition::new("by_payload");
/// offset -> position, for quarantined records only.
const QUARANTINE: TableDefinition<u64, u32> = TableDefinition::new("quarantine");
/// Running maximum of event time (ms) at the end of a batch -> the batch's
/// first offset. Records at offsets below the value of the first key >= T
/// all have event times < T.
const TIME: TableDefinition<u64, u64> = TableDefinition::new("time");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Bumped when the tables change meaning; an index of another version is
/// rebuilt from the log.
pub const INDEX_VERSION: u64 = 1;

const GUID_SEED: u64 = 0x6775_6964;
const AGENT_SEED: u64 = 0x6167_656e;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}: {source}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error("index {path} is version {found}, this ccvault reads version {INDEX_VERSION}: run `ccvault reindex`")]
    Version { path: String, found: u64 },
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
    pub payload: &'a [u8],
    pub interaction_guid: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    /// Event time t(e) (METRICS §2), or ingest time for quarantined records.
    pub time_ms: i64,
    pub quarantined: bool,
}

/// The posting tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingKind {
    Guid,
    Agent,
    Payload,
}

impl PostingKind {
    fn table(self) -> Postings {
        match self {
            PostingKind::Guid => BY_GUID,
            PostingKind::Agent => BY_AGENT,
            PostingKind::Payload => BY_PAYLOAD,
        }
    }
    fn hash(self, key: &[u8]) -> u64 {
        match self {
            PostingKind::Guid => xxh3_64_with_seed(key, GUID_SEED),
            PostingKind::Agent => xxh3_64_with_seed(key, AGENT_SEED),
            PostingKind::Payload => xxh3_64(key),
        }
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

/// The writable index, held by the archive's single writer.
pub struct Index {
    db: Database,
    path: std::path::PathBuf,
}

impl Index {
    /// Opens or creates the index file. Other processes may open it
    /// read-only ([`IndexReader::open`]) while this handle lives.
    pub fn open(path: &Path) -> Result<Index> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .create(path)
            .map_err(|e| err(path)(e.into()))?;
        let index = Index {
            db,
            path: path.to_path_buf(),
        };
        let version = index.reader()?.meta("version")?;
        match version {
            None => {
                let mut w = index.begin()?;
                w.put_meta("version", INDEX_VERSION)?;
                w.commit(None, Durability::Immediate)?;
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
    }

    pub fn begin(&self) -> Result<IndexWriter<'_>> {
        let txn = self.db.begin_write().map_err(|e| self.err(e.into()))?;
        Ok(IndexWriter {
            txn,
            path: &self.path,
            counters: None,
            batch_first_offset: None,
            batch_max_time: None,
        })
    }

    /// A snapshot of the last commit.
    pub fn reader(&self) -> Result<IndexReader> {
        let txn = self.db.begin_read().map_err(|e| self.err(e.into()))?;
        Ok(IndexReader {
            txn,
            path: self.path.clone(),
        })
    }

    fn err(&self, e: redb::Error) -> IndexError {
        err(&self.path)(e)
    }
}

/// A snapshot of the index as of one commit.
pub struct IndexReader {
    txn: ReadTransaction,
    path: std::path::PathBuf,
}

impl IndexReader {
    /// Opens the index of another (possibly running) writer read-only and
    /// takes a snapshot of its last commit.
    pub fn open(path: &Path) -> Result<IndexReader> {
        let db: ReadOnlyDatabase = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
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
    }

    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        err(&self.path)(e.into())
    }

    fn meta(&self, key: &str) -> Result<Option<u64>> {
        match self.txn.open_table(META) {
            Ok(t) => Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
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

    fn postings(&self, table: Postings, hash: u64) -> Result<Vec<Hit>> {
        let t = match self.txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        collect_postings(&t, hash).map_err(|e| self.err(e))
    }

    /// Records whose GUID hashes like `guid`, in offset order. Confirm each
    /// against the record: a hash collision can add foreign records.
    pub fn guid_hits(&self, guid: &str) -> Result<Vec<Hit>> {
        self.postings(BY_GUID, guid_hash(guid))
    }

    /// Records whose agent id hashes like `agent`, in offset order.
    pub fn agent_hits(&self, agent: &str) -> Result<Vec<Hit>> {
        self.postings(BY_AGENT, agent_hash(agent))
    }

    /// Records whose payload hashes like `payload`.
    pub fn payload_hits(&self, payload: &[u8]) -> Result<Vec<Hit>> {
        self.postings(BY_PAYLOAD, payload_hash(payload))
    }

    /// Quarantined records in offset order.
    pub fn quarantined(&self) -> Result<Vec<Hit>> {
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
    }

    /// An offset from which a scan sees every record with event time >= `t_ms`
    /// (records before it all have earlier times).
    pub fn seek_time(&self, t_ms: i64) -> Result<u64> {
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
    }

    /// Every distinct GUID hash with its records, in hash order: the unit of
    /// work of a projection rebuild.
    pub fn for_each_guid_group(&self, mut f: impl FnMut(u64, &[Hit])) -> Result<()> {
        let t = match self.txn.open_table(BY_GUID) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        let mut current: Option<u64> = None;
        let mut group = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (hash, offset) = k.value();
            if current != Some(hash) {
                if let Some(h) = current {
                    f(h, &group);
                }
                group.clear();
                current = Some(hash);
            }
            group.push(Hit {
                offset,
                pos: v.value(),
            });
        }
        if let Some(h) = current {
            f(h, &group);
        }
        Ok(())
    }

    /// The position stored for `offset` under `key` in one posting table,
    /// if that posting exists (for verification).
    pub fn posting(&self, kind: PostingKind, key: &[u8], offset: u64) -> Result<Option<u32>> {
        let t = match self.txn.open_table(kind.table()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let v = t
            .get((kind.hash(key), offset))
            .map_err(|e| self.err(e))?
            .map(|v| v.value());
        Ok(v)
    }

    /// Number of postings in one table.
    pub fn posting_count(&self, kind: PostingKind) -> Result<u64> {
        match self.txn.open_table(kind.table()) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Number of quarantine entries.
    pub fn quarantine_count(&self) -> Result<u64> {
        match self.txn.open_table(QUARANTINE) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Number of postings by GUID (one per event that names an interaction).
    pub fn guid_postings(&self) -> Result<u64> {
        match self.txn.open_table(BY_GUID) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }
}

fn collect_postings(
    t: &impl ReadableTable<(u64, u64), u32>,
    hash: u64,
) -> std::result::Result<Vec<Hit>, redb::Error> {
    let mut hits = Vec::new();
    for item in t.range((hash, 0)..=(hash, u64::MAX))? {
        let (k, v) = item?;
        hits.push(Hit {
            offset: k.value().1,
            pos: v.value(),
        });
    }
    Ok(hits)
}

/// One write transaction: a batch of entries and the checkpoint after them.
pub struct IndexWriter<'a> {
    txn: WriteTransaction,
    path: &'a Path,
    counters: Option<Counters>,
    batch_first_offset: Option<u64>,
    batch_max_time: Option<i64>,
}

impl IndexWriter<'_> {
    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        err(self.path)(e.into())
    }

    fn put_meta(&mut self, key: &str, value: u64) -> Result<()> {
        let mut t = self.txn.open_table(META).map_err(|e| self.err(e))?;
        t.insert(key, value).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<u64>> {
        let t = self.txn.open_table(META).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?.map(|v| v.value());
        Ok(v)
    }

    fn counters_mut(&mut self) -> Result<&mut Counters> {
        if self.counters.is_none() {
            let get = |w: &Self, k: &str| -> Result<u64> { Ok(w.get_meta(k)?.unwrap_or(0)) };
            let time =
                |w: &Self, k: &str| -> Result<Option<i64>> { Ok(w.get_meta(k)?.map(|v| v as i64)) };
            let c = Counters {
                records: get(self, "records")?,
                events: get(self, "events")?,
                quarantined: get(self, "quarantined")?,
                duplicates: get(self, "duplicates")?,
                interactions: get(self, "interactions")?,
                min_time_ms: time(self, "min_time_ms")?,
                max_time_ms: time(self, "max_time_ms")?,
            };
            self.counters = Some(c);
        }
        Ok(self.counters.get_or_insert_with(Counters::default))
    }

    /// Records whose payload hashes like `payload`, including those added in
    /// this transaction.
    pub fn payload_hits(&self, payload: &[u8]) -> Result<Vec<Hit>> {
        let t = self.txn.open_table(BY_PAYLOAD).map_err(|e| self.err(e))?;
        collect_postings(&t, payload_hash(payload)).map_err(|e| self.err(e))
    }

    /// Indexes a batch of records, in log order.
    pub fn add_all(&mut self, entries: &[Entry<'_>]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut new_interactions = 0u64;
        {
            let mut by_guid = self.txn.open_table(BY_GUID).map_err(|e| self.err(e))?;
            let mut by_agent = self.txn.open_table(BY_AGENT).map_err(|e| self.err(e))?;
            let mut by_payload = self.txn.open_table(BY_PAYLOAD).map_err(|e| self.err(e))?;
            let mut quarantine = self.txn.open_table(QUARANTINE).map_err(|e| self.err(e))?;
            let e2 = |e: redb::StorageError| err(self.path)(e.into());
            for entry in entries {
                by_payload
                    .insert((payload_hash(entry.payload), entry.offset), entry.pos)
                    .map_err(e2)?;
                if entry.quarantined {
                    quarantine.insert(entry.offset, entry.pos).map_err(e2)?;
                }
                if let Some(guid) = entry.interaction_guid {
                    let h = guid_hash(guid);
                    let seen = by_guid
                        .range((h, 0)..=(h, u64::MAX))
                        .map_err(e2)?
                        .next()
                        .is_some();
                    if !seen {
                        new_interactions += 1;
                    }
                    by_guid.insert((h, entry.offset), entry.pos).map_err(e2)?;
                }
                if let Some(agent) = entry.agent_id {
                    by_agent
                        .insert((agent_hash(agent), entry.offset), entry.pos)
                        .map_err(e2)?;
                }
            }
        }
        let c = self.counters_mut()?;
        c.interactions += new_interactions;
        for entry in entries {
            c.records += 1;
            if entry.quarantined {
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
        }
        let max_time = c.max_time_ms;
        if self.batch_first_offset.is_none() {
            self.batch_first_offset = entries.first().map(|e| e.offset);
        }
        self.batch_max_time = max_time;
        Ok(())
    }

    /// Counts messages skipped as duplicates.
    pub fn add_duplicates(&mut self, n: u64) -> Result<()> {
        if n > 0 {
            self.counters_mut()?.duplicates += n;
        }
        Ok(())
    }

    /// Commits the batch with the checkpoint after it (`None` keeps the
    /// checkpoint, for commits that add no records).
    pub fn commit(mut self, checkpoint: Option<Checkpoint>, durability: Durability) -> Result<()> {
        if let (Some(first), Some(max_time)) = (self.batch_first_offset, self.batch_max_time) {
            let mut t = self.txn.open_table(TIME).map_err(|e| self.err(e))?;
            let key = max_time.max(0) as u64;
            let present = t.get(key).map_err(|e| self.err(e))?.is_some();
            if !present {
                t.insert(key, first).map_err(|e| self.err(e))?;
            }
        }
        if let Some(c) = self.counters {
            for (k, v) in [
                ("records", c.records),
                ("events", c.events),
                ("quarantined", c.quarantined),
                ("duplicates", c.duplicates),
                ("interactions", c.interactions),
            ] {
                self.put_meta(k, v)?;
            }
            if let Some(t) = c.min_time_ms {
                self.put_meta("min_time_ms", t as u64)?;
            }
            if let Some(t) = c.max_time_ms {
                self.put_meta("max_time_ms", t as u64)?;
            }
        }
        if let Some(cp) = checkpoint {
            self.put_meta("checkpoint.next_offset", cp.next_offset)?;
            self.put_meta("checkpoint.segment", cp.segment)?;
            self.put_meta("checkpoint.pos", u64::from(cp.pos))?;
        }
        let path = self.path;
        let mut txn = self.txn;
        txn.set_durability(durability)
            .map_err(|e| err(path)(redb::Error::from(e)))?;
        txn.commit().map_err(|e| err(path)(e.into()))
    }
}

/// Durability of an index commit, re-exported so callers need not name redb.
pub use redb::Durability as CommitDurability;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, payload: &'static [u8], guid: Option<&'static str>) -> Entry<'static> {
        Entry {
            offset,
            pos: offset as u32 * 10,
            payload,
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
        w.add_all(&[
            entry(0, b"a", Some("g1")),
            entry(1, b"b", Some("g2")),
            entry(2, b"c", Some("g1")),
            entry(3, b"junk", None),
        ])
        .unwrap();
        assert_eq!(w.payload_hits(b"c").unwrap().len(), 1, "visible in-txn");
        w.add_duplicates(2).unwrap();
        let cp = Checkpoint {
            next_offset: 4,
            segment: 0,
            pos: 40,
        };
        w.commit(Some(cp), Durability::Immediate).unwrap();

        let r = index.reader().unwrap();
        assert_eq!(r.checkpoint().unwrap(), Some(cp));
        let hits: Vec<u64> = r
            .guid_hits("g1")
            .unwrap()
            .iter()
            .map(|h| h.offset)
            .collect();
        assert_eq!(hits, vec![0, 2]);
        assert_eq!(r.agent_hits("ag1").unwrap().len(), 4);
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
            (4, 3, 1, 2, 2)
        );
        assert_eq!(c.max_time_ms, Some(3000));
        assert_eq!(r.seek_time(2500).unwrap(), 0);
        assert_eq!(r.seek_time(99_999).unwrap(), 4);
        let mut groups = 0;
        r.for_each_guid_group(|_, hits| groups += hits.len())
            .unwrap();
        assert_eq!(groups, 3);
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
        w.commit(Some(Checkpoint::default()), Durability::Immediate)
            .unwrap();
        let r = IndexReader::open(&path).unwrap();
        assert_eq!(r.guid_hits("g1").unwrap().len(), 1);
    }
}
