//! The single writer: [`Index`] opens the file and commits; an
//! [`IndexWriter`] collects one commit's entries in memory and answers
//! duplicate lookups over the snapshot it builds on plus what it collected.
//! A commit writes entries, counters and checkpoint in one transaction.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ConcurrencyMode, Database, Durability, ReadableDatabase, ReadableTable};

use crate::chunk::{ChunkBuilder, Posting};
use crate::error::err;
use crate::filter::{generation, Filters, GenFilter, FILTERED};
use crate::guard::guarded;
use crate::schema::{builder, BY_AGENT, BY_GUID, BY_PAYLOAD, FILTERS, META, QUARANTINE, TIME};
use crate::{
    agent_hash, guid_hash, Checkpoint, Counters, Entry, Hit, IndexError, IndexReader, PostingKind,
    Result, INDEX_VERSION, TIME_SLICE,
};

/// The writable index, held by the archive's single writer.
pub struct Index {
    db: Database,
    path: PathBuf,
    /// A scratch index (being rebuilt, read by no one): commits need not be
    /// durable until [`Index::seal`].
    scratch: bool,
    /// The filters of the complete generations as of the last commit.
    filters: Mutex<Arc<Filters>>,
}

impl Index {
    /// Opens or creates the index file. Other processes may open it
    /// read-only ([`IndexReader::open`]) while this handle lives. redb
    /// creates a missing file with the umask's mode: the store creates it
    /// owner-only first (`ccvault_log::create_private_file`).
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
            let mode = if scratch {
                ConcurrencyMode::ExclusiveWriter
            } else {
                ConcurrencyMode::SingleWriter
            };
            let db = builder(mode)
                .create(path)
                .map_err(|e| err(path)(e.into()))?;
            let mut index = Index {
                db,
                path: path.to_path_buf(),
                scratch,
                filters: Mutex::default(),
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
            index.filters = Mutex::new(Arc::new(index.reader()?.filters()?));
            Ok(index)
        })
    }

    /// Starts collecting a commit's entries.
    pub fn begin(&self) -> Result<IndexWriter> {
        let snapshot = self.reader()?;
        let counters = snapshot.counters()?;
        Ok(IndexWriter {
            guid_gens: snapshot.generations(PostingKind::Guid)?,
            payload_gens: snapshot.generations(PostingKind::Payload)?,
            filters: self.current_filters(),
            first_offset: None,
            next_offset: None,
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

    fn current_filters(&self) -> Arc<Filters> {
        Arc::clone(&self.filters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes everything the writer collected, with the checkpoint after it
    /// (`None` keeps the checkpoint), in one durable transaction.
    pub fn commit(&self, w: IndexWriter, checkpoint: Option<Checkpoint>) -> Result<()> {
        guarded(&self.path, || {
            let e = |x: redb::Error| err(&self.path)(x);
            let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
            let filters;
            {
                // Posting tables in a block of their own: sealing reads them.
                {
                    for (table, map) in [(BY_GUID, &w.guid), (BY_AGENT, &w.agent)] {
                        let mut t = txn.open_table(table).map_err(|x| e(x.into()))?;
                        // In key order: a commit spanning generations
                        // fills each one's pages in one pass.
                        let mut chunks: Vec<((u64, u64, u64), &ChunkBuilder)> = map
                            .iter()
                            .map(|(hash, c)| ((generation(c.first()), *hash, c.first()), c))
                            .collect();
                        chunks.sort_unstable_by_key(|(key, _)| *key);
                        for (key, chunk) in chunks {
                            t.insert(key, chunk.bytes()).map_err(|x| e(x.into()))?;
                        }
                    }
                    let mut t = txn.open_table(BY_PAYLOAD).map_err(|x| e(x.into()))?;
                    let mut payload: Vec<((u64, u64, u64), u32)> = w
                        .payload
                        .iter()
                        .flat_map(|(h, hits)| {
                            hits.iter()
                                .map(move |hit| ((generation(hit.offset), *h, hit.offset), hit.pos))
                        })
                        .collect();
                    payload.sort_unstable();
                    for (key, pos) in payload {
                        t.insert(key, pos).map_err(|x| e(x.into()))?;
                    }
                }
                filters = self.seal_generations(&txn, &w)?;
                let mut t = txn.open_table(QUARANTINE).map_err(|x| e(x.into()))?;
                for hit in &w.quarantine {
                    t.insert(hit.offset, hit.pos).map_err(|x| e(x.into()))?;
                }
                let mut time_marks = w.time_marks.clone();
                if let (Some(first), Some(max_time)) = (w.slice_first, w.counters.latest_ms()) {
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
                    ("control", c.control),
                    ("interactions", c.interactions),
                    ("sealed_generations", filters.sealed()),
                ];
                meta.push(("untimed", c.untimed));
                for (key, time) in [
                    ("min_time_ms", c.min_time_ms),
                    ("max_time_ms", c.max_time_ms),
                    ("untimed_min_ms", c.untimed_min_ms),
                    ("untimed_max_ms", c.untimed_max_ms),
                ] {
                    if let Some(t) = time {
                        meta.push((key, t as u64));
                    }
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
            txn.commit().map_err(|x| e(x.into()))?;
            *self.filters.lock().unwrap_or_else(PoisonError::into_inner) = filters;
            Ok(())
        })
    }

    /// Builds and stores the filters of every generation this commit
    /// completes (no later record can fall in it: offsets only grow), and
    /// returns the filters as of this commit.
    fn seal_generations(
        &self,
        txn: &redb::WriteTransaction,
        w: &IndexWriter,
    ) -> Result<Arc<Filters>> {
        let e = |x: redb::Error| err(&self.path)(x);
        let mut filters = w.filters.as_ref().clone();
        let mut t = txn.open_table(FILTERS).map_err(|x| e(x.into()))?;
        // Offsets only grow, so this never happens; were a commit to add
        // records to a sealed generation, its filters would be stale.
        if let Some(first) = w.first_offset.filter(|f| generation(*f) < filters.sealed()) {
            for g in generation(first)..filters.sealed() {
                for kind in FILTERED {
                    t.remove((g, kind as u8)).map_err(|x| e(x.into()))?;
                }
            }
            filters.truncate(generation(first));
        }
        let Some(next) = w.next_offset else {
            return Ok(Arc::new(filters));
        };
        let guid = txn.open_table(BY_GUID).map_err(|x| e(x.into()))?;
        let payload = txn.open_table(BY_PAYLOAD).map_err(|x| e(x.into()))?;
        while filters.sealed() < generation(next) {
            let g = filters.sealed();
            let built = [
                GenFilter::build(&gen_hashes(&guid, g).map_err(e)?),
                GenFilter::build(&gen_hashes(&payload, g).map_err(e)?),
            ];
            for (kind, filter) in FILTERED.iter().zip(&built) {
                if let Some(bytes) = filter.encode() {
                    t.insert((g, *kind as u8), bytes.as_slice())
                        .map_err(|x| e(x.into()))?;
                }
            }
            filters.push(built);
        }
        Ok(Arc::new(filters))
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

/// The distinct key hashes of generation `g` of a posting table, sorted.
fn gen_hashes<V: redb::Value + 'static>(
    t: &impl ReadableTable<(u64, u64, u64), V>,
    g: u64,
) -> std::result::Result<Vec<u64>, redb::Error> {
    let mut hashes = Vec::new();
    for item in t.range((g, 0, 0)..=(g, u64::MAX, u64::MAX))? {
        let hash = item?.0.value().1;
        if hashes.last() != Some(&hash) {
            hashes.push(hash);
        }
    }
    Ok(hashes)
}

/// The generations below `gens` that may hold `hash` in `kind`'s table.
fn candidates(
    filters: &Filters,
    gens: u64,
    kind: PostingKind,
    hash: u64,
) -> impl Iterator<Item = u64> + '_ {
    (0..gens).filter(move |&g| filters.may_hold(g, kind, hash))
}

/// The entries of one commit, collected in memory, plus the snapshot they
/// build on. Lookups see both.
pub struct IndexWriter {
    snapshot: IndexReader,
    /// Generations of the snapshot's `by_guid` and `by_payload` tables.
    guid_gens: u64,
    payload_gens: u64,
    filters: Arc<Filters>,
    /// The first collected offset, and one past the last.
    first_offset: Option<u64>,
    next_offset: Option<u64>,
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
                let gens = candidates(&self.filters, self.payload_gens, PostingKind::Payload, hash);
                let mut hits = self.snapshot.payload_postings_in(hash, gens)?;
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
            MapEntry::Vacant(e) => {
                let gens = candidates(&self.filters, self.guid_gens, PostingKind::Guid, h);
                e.insert(
                    self.snapshot
                        .chunk_postings_in(PostingKind::Guid, h, gens)?,
                )
            }
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
            self.first_offset.get_or_insert(entry.offset);
            self.next_offset = Some(entry.offset + 1);
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
                            None => self.snapshot.has_chunk_in(
                                PostingKind::Guid,
                                h,
                                candidates(&self.filters, self.guid_gens, PostingKind::Guid, h),
                            )?,
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
            c.add_time(entry.time_ms, entry.timed);
            if entry.offset + 1 - slice_first >= TIME_SLICE {
                let max_time = c.latest_ms().map_or(0, |m| m.max(0) as u64);
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

    /// Counts transport control messages (not archived).
    pub fn add_control(&mut self, n: u64) {
        self.counters.control += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload_hash, PostingDigest, GENERATION_RECORDS};

    fn entry(offset: u64, payload: &[u8], guid: Option<&'static str>) -> Entry<'static> {
        Entry {
            offset,
            pos: offset as u32 * 10,
            payload_hash: payload_hash(payload),
            interaction_guid: guid,
            agent_id: Some("ag1"),
            time_ms: 1000 * offset as i64,
            timed: true,
            quarantined: guid.is_none(),
        }
    }

    fn offsets(hits: &[Hit]) -> Vec<u64> {
        hits.iter().map(|h| h.offset).collect()
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
        let hits = offsets(&r.guid_hits("g1").unwrap());
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
    fn weak_times_stay_out_of_the_time_range_but_bound_seeks() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let at = |offset: u64, time_ms: i64, timed: bool| Entry {
            time_ms,
            timed,
            ..entry(offset, &offset.to_le_bytes(), Some("g1"))
        };
        let mut w = index.begin().unwrap();
        w.add_all(&[at(0, 1000, true), at(1, 9000, false)]).unwrap();
        index.commit(w, None).unwrap();
        let mut w = index.begin().unwrap();
        w.add_all(&[at(2, 2000, true), at(3, 500, false)]).unwrap();
        index.commit(w, None).unwrap();
        let r = index.reader().unwrap();
        let c = r.counters().unwrap();
        assert_eq!((c.min_time_ms, c.max_time_ms), (Some(1000), Some(2000)));
        assert_eq!(
            (c.untimed, c.untimed_min_ms, c.untimed_max_ms),
            (2, Some(500), Some(9000))
        );
        // Record 1's weak 9000 ms is still found by a seek from 5000 ms.
        assert_eq!(r.seek_time(5000).unwrap(), 0);
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
                timed: true,
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
    fn lookups_span_generations_and_sealed_ones_are_filtered() {
        const G: u64 = GENERATION_RECORDS;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let commit = |index: &Index, entries: &[Entry]| {
            let mut w = index.begin().unwrap();
            w.add_all(entries).unwrap();
            index.commit(w, None).unwrap();
        };
        {
            let index = Index::open(&path).unwrap();
            commit(
                &index,
                &[
                    entry(0, b"a", Some("g1")),
                    entry(1, b"b", Some("g2")),
                    entry(2, b"junk", None),
                ],
            );
            assert_eq!(index.current_filters().sealed(), 0);
            // Offsets need not be dense: these fall in generations 1 and 2.
            commit(&index, &[entry(G + 1, b"c", Some("g1"))]);
            assert_eq!(index.current_filters().sealed(), 1);
            commit(
                &index,
                &[
                    entry(2 * G + 3, b"d", Some("g1")),
                    entry(2 * G + 4, b"e", Some("g3")),
                ],
            );
            assert_eq!(index.current_filters().sealed(), 2);
        }
        // Reopened: the filters come back from the file.
        let index = Index::open(&path).unwrap();
        assert_eq!(index.current_filters().sealed(), 2);
        let mut w = index.begin().unwrap();
        let found = |w: &mut IndexWriter, payload: &[u8], guid| {
            offsets(&w.duplicate_candidates(payload_hash(payload), guid).unwrap())
        };
        assert_eq!(found(&mut w, b"a", Some("g1")), vec![0]);
        assert_eq!(found(&mut w, b"c", Some("g1")), vec![G + 1]);
        assert_eq!(found(&mut w, b"d", Some("g1")), vec![2 * G + 3]);
        assert_eq!(found(&mut w, b"junk", None), vec![2]);
        assert!(found(&mut w, b"a", Some("g9")).is_empty());
        assert!(found(&mut w, b"zz", None).is_empty());
        // g1 is known in three generations: not a new interaction.
        w.add_all(&[entry(3 * G, b"f", Some("g1"))]).unwrap();
        index.commit(w, None).unwrap();

        let r = index.reader().unwrap();
        assert_eq!(r.counters().unwrap().interactions, 3);
        let hits = offsets(&r.guid_hits("g1").unwrap());
        assert_eq!(hits, vec![0, G + 1, 2 * G + 3, 3 * G]);
        let mut groups = Vec::new();
        r.for_each_guid_group(|h, hits| groups.push((h, hits.iter().map(|x| x.offset).collect())))
            .unwrap();
        let mut want: Vec<(u64, Vec<u64>)> = vec![
            (guid_hash("g1"), hits),
            (guid_hash("g2"), vec![1]),
            (guid_hash("g3"), vec![2 * G + 4]),
        ];
        want.sort();
        assert_eq!(groups, want, "one group per GUID, in hash order");
        assert_eq!(r.posting_digest(PostingKind::Guid).unwrap().count, 6);
        assert_eq!(r.agent_hits("ag1").unwrap().len(), 7);
        assert_eq!(
            r.posting(PostingKind::Guid, b"g1", 2 * G + 3).unwrap(),
            Some((2 * G + 3) as u32 * 10)
        );
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
