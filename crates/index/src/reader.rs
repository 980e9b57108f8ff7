//! Snapshots of the index. An [`IndexReader`] holds one redb read
//! transaction, so every lookup through it sees the same commit: entries
//! and checkpoint agree. Every lookup runs inside the panic guard.

use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Key, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, Value,
};

use crate::chunk::{self, Posting};
use crate::error::err;
use crate::guard::{guarded, unguarded};
use crate::schema::{builder, BY_AGENT, BY_GUID, BY_PAYLOAD, META, QUARANTINE, TIME};
use crate::{
    agent_hash, guid_hash, Checkpoint, Counters, Hit, IndexError, PostingDigest, PostingKind,
    Result, INDEX_VERSION,
};

/// A snapshot of the index as of one commit.
pub struct IndexReader {
    pub(crate) txn: ReadTransaction,
    pub(crate) path: PathBuf,
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

    pub(crate) fn corrupt(&self, what: String) -> IndexError {
        IndexError::Corrupt {
            path: self.path.display().to_string(),
            what,
        }
    }

    /// A table of the snapshot, or `None` while no commit has created it
    /// (an empty index answers every lookup with nothing).
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>> {
        match self.txn.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<u64>> {
        guarded(&self.path, || match self.table(META)? {
            Some(t) => Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value())),
            None => Ok(None),
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
            control: get("control")?,
            interactions: get("interactions")?,
            min_time_ms: time("min_time_ms")?,
            max_time_ms: time("max_time_ms")?,
            untimed: get("untimed")?,
            untimed_min_ms: time("untimed_min_ms")?,
            untimed_max_ms: time("untimed_max_ms")?,
        })
    }

    /// Every posting of one key hash, in offset order.
    pub(crate) fn chunk_postings(&self, kind: PostingKind, hash: u64) -> Result<Vec<Posting>> {
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
            let Some(t) = self.table(table)? else {
                return Ok(Vec::new());
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

    pub(crate) fn payload_postings(&self, hash: u64) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let Some(t) = self.table(BY_PAYLOAD)? else {
                return Ok(Vec::new());
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

    pub(crate) fn has_guid_hash(&self, hash: u64) -> Result<bool> {
        guarded(&self.path, || match self.table(BY_GUID)? {
            Some(t) => Ok(t
                .range((hash, 0)..=(hash, u64::MAX))
                .map_err(|e| self.err(e))?
                .next()
                .is_some()),
            None => Ok(false),
        })
    }

    /// Quarantined records in offset order.
    pub fn quarantined(&self) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let Some(t) = self.table(QUARANTINE)? else {
                return Ok(Vec::new());
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
            let Some(t) = self.table(TIME)? else {
                return Ok(0);
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
            let Some(t) = self.table(BY_GUID)? else {
                return Ok(());
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
                    let Some(t) = self.table(BY_PAYLOAD)? else {
                        return Ok(digest);
                    };
                    for item in t.iter().map_err(|e| self.err(e))? {
                        let (k, v) = item.map_err(|e| self.err(e))?;
                        let (hash, offset) = k.value();
                        digest.add(kind, hash, offset, v.value());
                    }
                    return Ok(digest);
                }
            };
            let Some(t) = self.table(table)? else {
                return Ok(digest);
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
        guarded(&self.path, || match self.table(QUARANTINE)? {
            Some(t) => t.len().map_err(|e| self.err(e)),
            None => Ok(0),
        })
    }
}
