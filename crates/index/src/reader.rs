//! Snapshots of the index. An [`IndexReader`] holds one redb read
//! transaction, so every lookup through it sees the same commit: entries
//! and checkpoint agree. Every lookup runs inside the panic guard.

use std::cmp::Reverse;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Key, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, Value,
};

use crate::chunk::{self, Posting};
use crate::error::AtPath;
use crate::filter::{
    span_blocks_admit, Filters, GenFilter, SpanFilter, FILTERED, FILTER_BUDGET, SPAN_GENERATIONS,
};
use crate::guard::{guarded, unguarded};
use crate::place::KeyRange;
use crate::schema::{
    builder, builder_with_cache, DroppedCounts, BY_AGENT, BY_GUID, BY_PAYLOAD, CACHE_BYTES,
    FILTERS, GUID_BLOCKS, KEY_RANGES, META, QUARANTINE, SPAN_FILTERS, TIME,
};
use crate::{
    agent_hash, guid_hash, Checkpoint, Counters, Hit, IndexError, PackedTotals, PostingDigest,
    PostingKind, Result, GENERATION_RECORDS, INDEX_VERSION,
};

/// A snapshot of the index as of one commit.
pub struct IndexReader {
    pub(crate) txn: ReadTransaction,
    pub(crate) path: PathBuf,
    /// Opened by [`IndexReader::open_repaired_in_memory`] (the file needed
    /// a repair it could not be given on disk): the database holding the
    /// repair, which `txn` reads (a `Database` closes its storage when
    /// dropped; fields drop in order, the transaction first).
    pub(crate) repaired_in_memory: Option<redb::Database>,
}

impl IndexReader {
    /// Opens the index of another (possibly running) writer read-only and
    /// takes a snapshot of its last commit.
    pub fn open(path: &Path) -> Result<IndexReader> {
        Self::open_with(path, builder(ConcurrencyMode::SingleWriter))
    }

    /// Like [`IndexReader::open`], with a page cache of `cache_bytes`
    /// instead of the usual 48 MiB: for one pass over the whole index (a
    /// projection rebuild's), which a cache does not speed up and would
    /// keep in memory for the rest of the process.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<IndexReader> {
        Self::open_with(
            path,
            builder_with_cache(ConcurrencyMode::SingleWriter, cache_bytes),
        )
    }

    /// The same index file opened again with a page cache of `cache_bytes`
    /// (see [`IndexReader::open_with_cache`]). Its snapshot is the file's
    /// last commit, which may be newer than this reader's.
    pub fn reopen_with_cache(&self, cache_bytes: usize) -> Result<IndexReader> {
        if self.repaired_in_memory.is_some() {
            return Self::open_repaired_in_memory_with_cache(&self.path, cache_bytes);
        }
        Self::open_with_cache(&self.path, cache_bytes)
    }

    /// Opens an index that needs redb's repair after a writer stopped
    /// without closing it (a crash, `kill -9`), where the repair cannot be
    /// written (a full disk, a read-only file system): redb repairs it with
    /// every write kept in memory ([`crate::overlay::Overlay`]), the file is
    /// left as it is, and the snapshot is its last commit. Costs what a
    /// repair costs (redb reads the allocation state of the whole file),
    /// each time it is opened so.
    pub fn open_repaired_in_memory(path: &Path) -> Result<IndexReader> {
        Self::open_repaired_in_memory_with_cache(path, CACHE_BYTES)
    }

    /// [`IndexReader::open_repaired_in_memory`] with a page cache of
    /// `cache_bytes` (see [`IndexReader::open_with_cache`]).
    pub fn open_repaired_in_memory_with_cache(
        path: &Path,
        cache_bytes: usize,
    ) -> Result<IndexReader> {
        guarded(path, || {
            let io = |e: std::io::Error| IndexError::Redb {
                path: path.display().to_string(),
                source: redb::Error::Io(e),
            };
            // Opened for writing too where it may be, so that redb can lock
            // it against a writer starting meanwhile; never written.
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => (file, true),
                Err(_) => (std::fs::File::open(path).map_err(io)?, false),
            };
            let backend = crate::overlay::Overlay::over(Some(file)).map_err(io)?;
            // A file that cannot be locked cannot be written by anyone else
            // either; redb's exclusive mode then takes no lock.
            let mode = if backend.lockable() {
                ConcurrencyMode::SingleWriter
            } else {
                ConcurrencyMode::ExclusiveWriter
            };
            let db = builder_with_cache(mode, cache_bytes)
                .create_with_backend(backend)
                .at(path)?;
            let txn = db.begin_read().at(path)?;
            Self::checked(IndexReader {
                txn,
                path: path.to_path_buf(),
                repaired_in_memory: Some(db),
            })
        })
    }

    fn open_with(path: &Path, builder: redb::Builder) -> Result<IndexReader> {
        guarded(path, || {
            let db: ReadOnlyDatabase = builder.open_read_only(path).at(path)?;
            let txn = db.begin_read().at(path)?;
            Self::checked(IndexReader {
                txn,
                path: path.to_path_buf(),
                repaired_in_memory: None,
            })
        })
    }

    /// The counts of dropped messages (duplicates, transport control
    /// messages) and the tally they come from, of an index of any version:
    /// what an index that is about to be rebuilt because it is of an older
    /// version knows alone when the log was written before tallies.
    pub fn dropped_counts_of_any_version(path: &Path) -> Result<DroppedCounts> {
        let reader = guarded(path, || {
            let db: ReadOnlyDatabase = builder_with_cache(ConcurrencyMode::SingleWriter, 1 << 20)
                .open_read_only(path)
                .at(path)?;
            let txn = db.begin_read().at(path)?;
            Ok(IndexReader {
                txn,
                path: path.to_path_buf(),
                repaired_in_memory: None,
            })
        })?;
        Ok(DroppedCounts {
            duplicates: reader.meta("duplicates")?.unwrap_or(0),
            control: reader.meta("control")?.unwrap_or(0),
            tally_offset: reader.tally_offset()?,
        })
    }

    /// `reader`, unless its index is of another version.
    fn checked(reader: IndexReader) -> Result<IndexReader> {
        match reader.meta("version")? {
            Some(v) if v != INDEX_VERSION => Err(IndexError::Version {
                path: reader.path.display().to_string(),
                found: v,
            }),
            _ => Ok(reader),
        }
    }

    /// Whether this snapshot was opened by
    /// [`IndexReader::open_repaired_in_memory`].
    pub fn repaired_in_memory(&self) -> bool {
        self.repaired_in_memory.is_some()
    }

    pub(crate) fn corrupt(&self, what: String) -> IndexError {
        IndexError::Corrupt {
            path: self.path.display().to_string(),
            what,
        }
    }

    /// [`IndexReader::corrupt`] for a posting chunk: which table, and the
    /// key of its entry.
    fn corrupt_chunk(
        &self,
        kind: PostingKind,
        generation: u64,
        hash: u64,
        first: u64,
        what: String,
    ) -> IndexError {
        self.corrupt(format!(
            "`{kind}` entry (generation {generation}, key hash {hash:016x}, first offset {first}): {what}"
        ))
    }

    /// A table of the snapshot, or `None` while no commit has created it
    /// (an empty index answers every lookup with nothing).
    /// `gens`, or `None` when it names no generation: a lookup in none
    /// opens no table. The duplicate check and the interactions counter ask
    /// about every new key of an import, and the writer's known keys
    /// ([`crate::filter::OpenKeys`]) and filters leave most of them no
    /// generation to look in; opening the table anyway took ~3,300
    /// instructions a key, a tenth of the appending thread's (issue 12).
    fn some_gens<I: Iterator<Item = u64>>(gens: I) -> Option<std::iter::Peekable<I>> {
        let mut gens = gens.peekable();
        gens.peek().is_some().then_some(gens)
    }

    pub(crate) fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>> {
        match self.txn.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e).at(&self.path),
        }
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<u64>> {
        guarded(&self.path, || match self.table(META)? {
            Some(t) => Ok(t.get(key).at(&self.path)?.map(|v| v.value())),
            None => Ok(None),
        })
    }

    /// The offset of the log's tally record that `duplicates` and `control`
    /// of [`IndexReader::counters`] come from; `None` when no tally is
    /// behind them (none was indexed: an index of a log written before
    /// tallies keeps counts the log does not hold).
    pub fn tally_offset(&self) -> Result<Option<u64>> {
        self.meta("tally.offset")
    }

    /// The last loss of records an index had seen that the writer which
    /// recovered the log recorded: the first lost offset, and the loss's
    /// identity (`IndexWriter::set_lost`); `None` when no loss was recorded
    /// since this index was built.
    pub fn lost(&self) -> Result<Option<(u64, u64)>> {
        Ok(self.meta("lost.from")?.zip(self.meta("lost.id")?))
    }

    /// The log's compressed segments as the last commit that recorded them
    /// counted them (`None`: no commit did, as in an index written before
    /// they were kept).
    pub fn packed(&self) -> Result<Option<PackedTotals>> {
        let (Some(count), Some(bytes), Some(bases)) = (
            self.meta("packed.count")?,
            self.meta("packed.bytes")?,
            self.meta("packed.bases")?,
        ) else {
            return Ok(None);
        };
        Ok(Some(PackedTotals {
            count,
            bytes,
            bases,
        }))
    }

    /// `sealed_generations` as stored, and as far as it can be true: a
    /// generation is complete only once the index holds a record past it,
    /// so no more than the checkpoint's offsets fill (an index committed
    /// without a checkpoint, as tests commit, is taken at its word). A
    /// damaged value (one flipped bit made it 2^40) would have every pass
    /// over the generations run, and allocate, without end.
    pub(crate) fn sealed_generations(&self) -> Result<(u64, u64)> {
        let stored = self.meta("sealed_generations")?.unwrap_or(0);
        let bound = match self.checkpoint()? {
            Some(c) => c.next_offset.div_ceil(GENERATION_RECORDS),
            None => stored,
        };
        Ok((stored, stored.min(bound)))
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
            damaged_places: get("damaged.places")?,
            damaged_bytes: get("damaged.bytes")?,
            first_damage: match (self.meta("damaged.segment")?, self.meta("damaged.pos")?) {
                (Some(segment), Some(pos)) => Some((segment, u32::try_from(pos).unwrap_or(0))),
                _ => None,
            },
        })
    }

    /// The stored key ranges and filters of the complete generations, as a
    /// writer keeps them: [`Filters::shed`] to [`FILTER_BUDGET`] as they
    /// are read, so that opening a large archive holds no more.
    pub(crate) fn filters(&self) -> Result<Filters> {
        guarded(&self.path, || {
            let mut filters = Filters::default();
            let (_, sealed) = self.sealed_generations()?;
            let Some(t) = self.table(FILTERS)? else {
                return Ok(filters);
            };
            let stored_ranges = self.table(KEY_RANGES)?;
            for g in 0..sealed {
                let mut ranges = [KeyRange::ANY; 2];
                let mut got = [GenFilter::Unknown, GenFilter::Unknown];
                for ((range, filter), kind) in ranges.iter_mut().zip(&mut got).zip(FILTERED) {
                    if let Some(r) = &stored_ranges {
                        if let Some(v) = r.get((g, kind as u8)).at(&self.path)? {
                            *range = KeyRange::decode(v.value());
                        }
                    }
                    if let Some(v) = t.get((g, kind as u8)).at(&self.path)? {
                        *filter = GenFilter::decode(v.value());
                    }
                }
                filters.push(got, ranges);
                // The writer's budget as they are read, so that opening
                // never holds more than a writer keeps.
                filters.shed(FILTER_BUDGET);
            }
            // A span filter that claims generations not sealed is not the
            // one this index's commits wrote: its generations are probed.
            if let Some(t) = self.table(SPAN_FILTERS)? {
                for s in 0..sealed.div_ceil(SPAN_GENERATIONS) {
                    let mut got = [None, None];
                    let gens = s * SPAN_GENERATIONS..((s + 1) * SPAN_GENERATIONS).min(sealed);
                    for (slot, kind) in got.iter_mut().zip(FILTERED) {
                        // Not read when its generations' filters were not.
                        if !gens.clone().any(|g| filters.has_filter(g, kind)) {
                            continue;
                        }
                        if let Some(v) = t.get((s, kind as u8)).at(&self.path)? {
                            *slot = SpanFilter::decode(v.value())
                                .filter(|f| s * SPAN_GENERATIONS + f.gens() <= sealed);
                        }
                    }
                    filters.set_span(s, got);
                }
            }
            filters.shed(FILTER_BUDGET);
            Ok(filters)
        })
    }

    /// Number of generations `kind`'s table spans: one past the generation
    /// of its last key (0 when empty).
    pub(crate) fn generations(&self, kind: PostingKind) -> Result<u64> {
        guarded(&self.path, || {
            let last = match kind {
                PostingKind::Payload => match self.table(BY_PAYLOAD)? {
                    Some(t) => t.last().at(&self.path)?.map(|(k, _)| k.value().0),
                    None => None,
                },
                _ => match self.table(chunk_table(kind))? {
                    Some(t) => t.last().at(&self.path)?.map(|(k, _)| k.value().0),
                    None => None,
                },
            };
            Ok(last.map_or(0, |g| g + 1))
        })
    }

    /// Every posting of one key hash, in offset order. A GUID is looked up
    /// only in the generations its span's `guid_blocks` entries admit.
    pub(crate) fn chunk_postings(&self, kind: PostingKind, hash: u64) -> Result<Vec<Posting>> {
        let gens = self.generations(kind)?;
        if kind == PostingKind::Guid {
            let admitted = self.guid_generations(hash, gens)?;
            return self.chunk_postings_in(kind, hash, admitted.into_iter());
        }
        self.chunk_postings_in(kind, hash, 0..gens)
    }

    /// The generations below `gens` of `by_guid` that may hold `hash`:
    /// of each span, those its `guid_blocks` entry for `hash` admits among
    /// the sealed ones it covers, and all the others (not sealed, not
    /// covered: an index or span written before the table, or an entry of
    /// the wrong shape). One entry read a span instead of one B-tree range
    /// a generation; exact, as a filter never rejects a key it holds.
    pub(crate) fn guid_generations(&self, hash: u64, gens: u64) -> Result<Vec<u64>> {
        guarded(&self.path, || {
            let sealed = self.sealed_generations()?.1.min(gens);
            let blocks = match sealed {
                0 => None,
                _ => self.table(GUID_BLOCKS)?,
            };
            let mut out = Vec::new();
            for s in 0..gens.div_ceil(SPAN_GENERATIONS) {
                let first = s * SPAN_GENERATIONS;
                let end = (first + SPAN_GENERATIONS).min(gens);
                let mut unknown_from = first;
                if let Some(t) = blocks.as_ref().filter(|_| first < sealed) {
                    let mut range = t.range((s, hash)..=(s, u64::MAX)).at(&self.path)?;
                    if let Some(item) = range.next() {
                        let admits = span_blocks_admit(item.at(&self.path)?.1.value(), hash);
                        for (g, may) in (first..sealed.min(end)).zip(admits.unwrap_or_default()) {
                            if may {
                                out.push(g);
                            }
                            unknown_from = g + 1;
                        }
                    }
                }
                out.extend(unknown_from..end);
            }
            Ok(out)
        })
    }

    /// The postings of one key hash in the generations `gens` (increasing),
    /// in offset order.
    pub(crate) fn chunk_postings_in(
        &self,
        kind: PostingKind,
        hash: u64,
        gens: impl Iterator<Item = u64>,
    ) -> Result<Vec<Posting>> {
        guarded(&self.path, || {
            if kind == PostingKind::Payload {
                return Ok(self
                    .payload_postings_in(hash, gens)?
                    .into_iter()
                    .map(|h| Posting {
                        offset: h.offset,
                        pos: h.pos,
                        payload_hash: hash,
                    })
                    .collect());
            }
            let Some(gens) = Self::some_gens(gens) else {
                return Ok(Vec::new());
            };
            let Some(t) = self.table(chunk_table(kind))? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for g in gens {
                for item in t.range((g, hash, 0)..=(g, hash, u64::MAX)).at(&self.path)? {
                    let (k, v) = item.at(&self.path)?;
                    let (generation, _, first) = k.value();
                    chunk::decode(first, v.value(), kind == PostingKind::Guid, &mut out)
                        .map_err(|w| self.corrupt_chunk(kind, generation, hash, first, w))?;
                }
            }
            Ok(out)
        })
    }

    /// Whether any of the generations `gens` holds a posting of `hash` in
    /// `kind`'s chunk table.
    pub(crate) fn has_chunk_in(
        &self,
        kind: PostingKind,
        hash: u64,
        gens: impl Iterator<Item = u64>,
    ) -> Result<bool> {
        guarded(&self.path, || {
            let Some(gens) = Self::some_gens(gens) else {
                return Ok(false);
            };
            let Some(t) = self.table(chunk_table(kind))? else {
                return Ok(false);
            };
            for g in gens {
                let mut range = t.range((g, hash, 0)..=(g, hash, u64::MAX)).at(&self.path)?;
                if range.next().is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    pub(crate) fn payload_postings(&self, hash: u64) -> Result<Vec<Hit>> {
        self.payload_postings_in(hash, 0..self.generations(PostingKind::Payload)?)
    }

    pub(crate) fn payload_postings_in(
        &self,
        hash: u64,
        gens: impl Iterator<Item = u64>,
    ) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let Some(gens) = Self::some_gens(gens) else {
                return Ok(Vec::new());
            };
            let Some(t) = self.table(BY_PAYLOAD)? else {
                return Ok(Vec::new());
            };
            let mut hits = Vec::new();
            for g in gens {
                for item in t.range((g, hash, 0)..=(g, hash, u64::MAX)).at(&self.path)? {
                    let (k, v) = item.at(&self.path)?;
                    hits.push(Hit {
                        offset: k.value().2,
                        pos: v.value(),
                    });
                }
            }
            Ok(hits)
        })
    }

    fn hits(&self, kind: PostingKind, hash: u64) -> Result<Vec<Hit>> {
        Ok(self
            .chunk_postings(kind, hash)?
            .iter()
            .map(Hit::from)
            .collect())
    }

    /// Records whose GUID hashes like `guid`, in offset order. Confirm each
    /// against the record: a hash collision can add foreign records.
    pub fn guid_hits(&self, guid: &str) -> Result<Vec<Hit>> {
        self.hits(PostingKind::Guid, guid_hash(guid))
    }

    /// As [`IndexReader::guid_hits`], for a GUID known by its hash only
    /// (`guid_hash`): a caller that keeps hashes, not GUIDs.
    pub fn guid_hash_hits(&self, hash: u64) -> Result<Vec<Hit>> {
        self.hits(PostingKind::Guid, hash)
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
                .iter()
                .filter(|p| p.payload_hash == hash)
                .map(Hit::from)
                .collect()),
            None => self.payload_postings(hash),
        }
    }

    /// Quarantined records in offset order.
    pub fn quarantined(&self) -> Result<Vec<Hit>> {
        guarded(&self.path, || {
            let Some(t) = self.table(QUARANTINE)? else {
                return Ok(Vec::new());
            };
            let mut hits = Vec::new();
            for item in t.iter().at(&self.path)? {
                let (k, v) = item.at(&self.path)?;
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
            let mut range = t.range(key..).at(&self.path)?;
            match range.next() {
                Some(item) => Ok(item.at(&self.path)?.1.value()),
                None => Ok(self.checkpoint()?.map_or(0, |c| c.next_offset)),
            }
        })
    }

    /// Every distinct GUID hash with its records in offset order, in hash
    /// order: the unit of work of a projection rebuild.
    pub fn for_each_guid_group(&self, f: impl FnMut(u64, &[Hit])) -> Result<()> {
        self.for_each_guid_group_in(0..=u64::MAX, f)
    }

    /// [`IndexReader::for_each_guid_group`] for the GUID hashes in
    /// `hashes` only: the groups of two ranges, one after the other, are
    /// the groups of their union in the same order (how a rebuild reads
    /// them on two threads).
    pub fn for_each_guid_group_in(
        &self,
        hashes: RangeInclusive<u64>,
        mut f: impl FnMut(u64, &[Hit]),
    ) -> Result<()> {
        let mut postings = Vec::new();
        let mut hits = Vec::new();
        self.merge_guid_generations(hashes, |h, chunk| {
            match chunk {
                Some((first, bytes)) => {
                    chunk::decode(first, bytes, true, &mut postings).map_err(|w| {
                        self.corrupt(format!(
                            "`{}` entry (key hash {h:016x}, first offset {first}): {w}",
                            PostingKind::Guid
                        ))
                    })?;
                }
                None => {
                    hits.clear();
                    hits.extend(postings.iter().map(Hit::from));
                    unguarded(|| f(h, &hits));
                    postings.clear();
                }
            }
            Ok(())
        })
    }

    /// The number of distinct GUID hashes in `by_guid`: the interactions of
    /// the log, counted in one pass over the table (a rebuild's count, with
    /// no lookup per GUID).
    pub fn distinct_guids(&self) -> Result<u64> {
        let mut n = 0u64;
        self.merge_guid_generations(0..=u64::MAX, |_, chunk| {
            n += u64::from(chunk.is_none());
            Ok(())
        })?;
        Ok(n)
    }

    /// Walks `by_guid` by GUID hash, hashes increasing and within
    /// `hashes`: `visit(hash, Some((first offset, chunk bytes)))` for each
    /// of the hash's chunks in offset order, then `visit(hash, None)`.
    ///
    /// A GUID's chunks may lie in several generations: one cursor per
    /// generation, merged through a heap ordered by (hash, generation), so a
    /// hash costs O(log generations) and its chunks come out in generation
    /// (hence offset) order.
    fn merge_guid_generations(
        &self,
        hashes: RangeInclusive<u64>,
        mut visit: impl FnMut(u64, Option<(u64, &[u8])>) -> Result<()>,
    ) -> Result<()> {
        let (lo, hi) = (*hashes.start(), *hashes.end());
        if lo > hi {
            return Ok(());
        }
        guarded(&self.path, || {
            let Some(t) = self.table(BY_GUID)? else {
                return Ok(());
            };
            type Cursor = redb::Range<'static, (u64, u64, u64), &'static [u8]>;
            type Head = Option<(u64, u64, redb::AccessGuard<'static, &'static [u8]>)>;
            let pull = |cursor: &mut Cursor| -> Result<Head> {
                match cursor.next() {
                    None => Ok(None),
                    Some(item) => {
                        let (k, v) = item.at(&self.path)?;
                        let (_, hash, first) = k.value();
                        Ok(Some((hash, first, v)))
                    }
                }
            };
            let mut cursors: Vec<Cursor> = Vec::new();
            let mut heads: Vec<Head> = Vec::new();
            let mut queue = BinaryHeap::new();
            for g in 0..self.generations(PostingKind::Guid)? {
                let mut cursor = t.range((g, lo, 0)..=(g, hi, u64::MAX)).at(&self.path)?;
                let head = pull(&mut cursor)?;
                if let Some((hash, _, _)) = &head {
                    queue.push(Reverse((*hash, cursors.len())));
                }
                heads.push(head);
                cursors.push(cursor);
            }
            while let Some(Reverse((h, _))) = queue.peek().copied() {
                while let Some(Reverse((_, i))) = queue
                    .peek_mut()
                    .filter(|top| top.0 .0 == h)
                    .map(PeekMut::pop)
                {
                    let (Some(head), Some(cursor)) = (heads.get_mut(i), cursors.get_mut(i)) else {
                        continue;
                    };
                    while let Some((hash, first, v)) = head {
                        if *hash != h {
                            queue.push(Reverse((*hash, i)));
                            break;
                        }
                        visit(h, Some((*first, v.value())))?;
                        *head = pull(cursor)?;
                    }
                }
                visit(h, None)?;
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
                PostingKind::Guid | PostingKind::Agent => {
                    (chunk_table(kind), kind == PostingKind::Guid)
                }
                PostingKind::Payload => {
                    let Some(t) = self.table(BY_PAYLOAD)? else {
                        return Ok(digest);
                    };
                    for item in t.iter().at(&self.path)? {
                        let (k, v) = item.at(&self.path)?;
                        let (_, hash, offset) = k.value();
                        digest.add(kind, hash, offset, v.value(), 0);
                    }
                    return Ok(digest);
                }
            };
            let Some(t) = self.table(table)? else {
                return Ok(digest);
            };
            let mut buf = Vec::new();
            for item in t.iter().at(&self.path)? {
                let (k, v) = item.at(&self.path)?;
                let (generation, hash, first) = k.value();
                buf.clear();
                chunk::decode(first, v.value(), with_hash, &mut buf)
                    .map_err(|w| self.corrupt_chunk(kind, generation, hash, first, w))?;
                for p in &buf {
                    let payload_hash = if with_hash { p.payload_hash } else { 0 };
                    digest.add(kind, hash, p.offset, p.pos, payload_hash);
                }
            }
            Ok(digest)
        })
    }

    /// Number of quarantine entries.
    pub fn quarantine_count(&self) -> Result<u64> {
        guarded(&self.path, || match self.table(QUARANTINE)? {
            Some(t) => t.len().at(&self.path),
            None => Ok(0),
        })
    }
}

/// The chunk table of `kind` (`by_payload` holds no chunks; callers
/// handle it first).
fn chunk_table(kind: PostingKind) -> crate::schema::Chunks {
    match kind {
        PostingKind::Agent => BY_AGENT,
        PostingKind::Guid | PostingKind::Payload => BY_GUID,
    }
}
