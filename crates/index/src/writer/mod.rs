//! The single writer: [`Index`] opens the file, checks its version, and
//! hands out an [`IndexWriter`] per commit; the parts of a commit live in
//! one module each.
//!
//! Invariants kept here:
//! - One `Index` per file holds redb's write lock; other processes read
//!   through [`IndexReader::open`] meanwhile.
//! - A file of another [`INDEX_VERSION`] is refused with
//!   [`IndexError::Version`] (the store rebuilds it); a new file gets this
//!   version in its first commit.
//! - A scratch index (a rebuild's, read by no one) is a file of its own,
//!   opened in redb's exclusive mode; the caller swaps it in only after
//!   [`Index::seal`], so a crash midway leaves a file to delete, never a
//!   damaged live index. Its count of interactions is written by `seal`
//!   (until then it is not kept), so only a sealed scratch index is whole.
//! - The filters of the complete generations that `begin` hands out are
//!   those of the last commit (replaced only after a commit succeeds), and
//!   so are the known keys of the generations not yet complete
//!   ([`OpenKeys`]: every commit goes through [`Index::commit`], which adds
//!   its keys once it has succeeded, or through [`Index::write_collected`],
//!   whose keys the writer begun after it adds when it is rebased).
//! - A commit may be written on another thread while the next one collects
//!   ([`Index::begin_after`]): the next writer sees it as committed, and is
//!   rebased onto it ([`IndexWriter::rebase`]) before it is committed
//!   itself, so that every commit builds on the filters and known keys of
//!   the one before it. Commits are still written one at a time, in order.
//!
//! The parts: [`collect`] (an [`IndexWriter`] gathers a commit's entries in
//! memory), [`dedupe`] (duplicate candidates over the snapshot plus what was
//! collected), [`commit`] (one transaction writes entries, filters of
//! completed generations, counters and checkpoint).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ConcurrencyMode, Database, Durability, ReadableDatabase};

use crate::compaction::compact_if_it_frees_enough;
use crate::error::AtPath;
use crate::filter::{Filters, OpenKeys, FILTERED, FILTER_BUDGET};
use crate::guard::guarded;
use crate::schema::{builder, writer_builder, META};
use crate::{key_map, IndexError, IndexReader, Result, INDEX_VERSION};

mod collect;
mod commit;
mod dedupe;

pub use collect::IndexWriter;
pub use commit::Written;
pub use dedupe::Lookups;

/// The writable index, held by the archive's single writer.
pub struct Index {
    db: Database,
    path: PathBuf,
    /// A scratch index (being rebuilt, read by no one): commits need not be
    /// durable until [`Index::seal`].
    scratch: bool,
    /// The filters of the complete generations as of the last commit.
    filters: Mutex<Arc<Filters>>,
    /// Bytes of droppable filters kept in memory ([`FILTER_BUDGET`]; tests
    /// lower it).
    filter_budget: usize,
    /// The keys of the generations not sealed yet, as of the last commit,
    /// where known.
    open_keys: Mutex<Arc<OpenKeys>>,
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
    /// rebuild's scratch file, in redb's exclusive mode; its commits are as
    /// durable as any), closed by [`Index::seal`] before the caller swaps it
    /// in. A crash midway leaves a scratch file to delete, never a damaged
    /// live index.
    pub fn create_scratch(path: &Path) -> Result<Index> {
        Self::open_mode(path, true)
    }

    /// Makes every commit of a scratch index durable and closes it. A
    /// scratch index gets its count of interactions here: the distinct GUID
    /// hashes of `by_guid`, counted in one pass (its writers count none).
    pub fn seal(self) -> Result<()> {
        let path = self.path.clone();
        guarded(&path, || {
            let interactions = if self.scratch {
                Some(self.reader()?.distinct_guids()?)
            } else {
                None
            };
            let mut txn = self.db.begin_write().at(&self.path)?;
            if let Some(n) = interactions {
                let mut t = txn.open_table(META).at(&self.path)?;
                t.insert("interactions", n).at(&self.path)?;
            }
            txn.set_durability(Durability::Immediate).at(&self.path)?;
            txn.commit().at(&self.path)?;
            let path = self.path;
            self.db.close().at(&path)
        })
    }

    fn open_mode(path: &Path, scratch: bool) -> Result<Index> {
        guarded(path, || {
            let builder = if scratch {
                builder(ConcurrencyMode::ExclusiveWriter)
            } else {
                writer_builder()
            };
            let db = builder.create(path).at(path)?;
            let mut index = Index {
                db,
                path: path.to_path_buf(),
                scratch,
                filters: Mutex::default(),
                filter_budget: FILTER_BUDGET,
                open_keys: Mutex::default(),
            };
            match index.reader()?.meta("version")? {
                None => {
                    let txn = index.db.begin_write().at(&index.path)?;
                    {
                        let mut t = txn.open_table(META).at(&index.path)?;
                        t.insert("version", INDEX_VERSION).at(&index.path)?;
                    }
                    txn.commit().at(&index.path)?;
                }
                Some(v) if v != INDEX_VERSION => {
                    return Err(IndexError::Version {
                        path: path.display().to_string(),
                        found: v,
                    })
                }
                Some(_) => {}
            }
            let reader = index.reader()?;
            index.filters = Mutex::new(Arc::new(reader.filters()?));
            // Past the last generation holding keys, every generation is
            // empty: known from the start.
            let [guid, payload] = FILTERED.map(|kind| reader.generations(kind));
            index.open_keys = Mutex::new(Arc::new(OpenKeys::empty_from([guid?, payload?])));
            Ok(index)
        })
    }

    /// Starts collecting a commit's entries.
    pub fn begin(&self) -> Result<IndexWriter> {
        IndexWriter::start(
            self.reader()?,
            self.current_filters(),
            self.current_open_keys(),
            !self.scratch,
        )
    }

    /// Starts collecting the commit after `prev` while `prev` is being
    /// written ([`Index::write_collected`], on another thread): on the same
    /// snapshot, with `prev`'s entries visible to lookups and its counters
    /// carried on. Rebase it ([`IndexWriter::rebase`]) once `prev` is
    /// written, before committing it.
    pub fn begin_after(&self, prev: &Arc<IndexWriter>) -> Result<IndexWriter> {
        let mut w = IndexWriter::start(
            self.reader()?,
            Arc::clone(&prev.filters),
            Arc::clone(&prev.open_keys),
            prev.count_interactions,
        )?;
        w.counters = prev.counters;
        // Sized as the commit before: grown from empty, each commit's maps
        // were rehashed a dozen times into fresh memory, ~8 % of the
        // import's appending thread in a profile (issue 12).
        w.guid = key_map(prev.guid.len());
        w.committed_guid = key_map(prev.committed_guid.len());
        w.agent = key_map(prev.agent.len());
        w.payload = key_map(prev.payload.len());
        w.prev = Some(Arc::clone(prev));
        Ok(w)
    }

    fn current_filters(&self) -> Arc<Filters> {
        Arc::clone(&self.filters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn current_open_keys(&self) -> Arc<OpenKeys> {
        Arc::clone(
            &self
                .open_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Gives the file's free space back: redb's copy-on-write commits leave
    /// freed pages behind (with generations of 2^20 records, a fresh index
    /// of ~19 bytes an event measured 71 bytes an event on disk before
    /// compaction; with 2^18, a first import leaves too little free to
    /// compact). Compacting reads every
    /// page of the file (redb looks for the highest pages in each pass, and
    /// makes one more pass that finds nothing to move), so it costs as much
    /// as the whole index, whatever the session added: it is considered
    /// only once the index holds a quarter more records than when it was
    /// last considered (or never was: a first session, a `reindex`'s fresh
    /// file), which keeps its cost per record bounded however large the
    /// archive is, and then runs only when redb's allocated pages leave a
    /// tenth of the file or more free ([`compact_if_it_frees_enough`], the
    /// rule of the projections' rebuilt file too). Pages freed meanwhile
    /// are reused by later commits. Returns whether it ran; skipped,
    /// returning `false`, also while another process holds a read
    /// transaction.
    pub fn compact(&mut self) -> Result<bool> {
        let path = self.path.clone();
        guarded(&path, || {
            let (records, last) = {
                let r = self.reader()?;
                (r.counters()?.records, r.meta(COMPACTED_RECORDS)?)
            };
            if last.is_some_and(|last| !worth_compacting(records, last)) {
                return Ok(false);
            }
            // The mark is committed before compacting, never after: redb
            // trims the file to its last page, so a commit after the
            // compaction would grow the file again (by as much as doubling
            // it), undoing what the compaction gave back. A file too full
            // to be worth compacting keeps the mark too: it is considered
            // again a quarter more records later, not at every close.
            self.put_compacted_records(Some(records))?;
            match compact_if_it_frees_enough(&mut self.db, &path) {
                Ok(compacted) => Ok(compacted),
                Err(
                    redb::Error::TransactionInProgress
                    | redb::Error::EphemeralSavepointExists
                    | redb::Error::PersistentSavepointExists,
                ) => {
                    // Not compacted: the next session tries again.
                    self.put_compacted_records(last)?;
                    Ok(false)
                }
                Err(e) => Err(e).at(&path),
            }
        })
    }

    /// Sets (or, with `None`, removes) the mark of the last compaction.
    fn put_compacted_records(&self, records: Option<u64>) -> Result<()> {
        let path = &self.path;
        let mut txn = self.db.begin_write().at(path)?;
        {
            let mut t = txn.open_table(META).at(path)?;
            match records {
                Some(n) => t.insert(COMPACTED_RECORDS, n).map(drop).at(path)?,
                None => t.remove(COMPACTED_RECORDS).map(drop).at(path)?,
            }
        }
        txn.set_durability(Durability::Immediate).at(path)?;
        txn.commit().at(path)
    }

    /// A snapshot of the last commit.
    pub fn reader(&self) -> Result<IndexReader> {
        guarded(&self.path, || {
            let txn = self.db.begin_read().at(&self.path)?;
            Ok(IndexReader {
                txn,
                path: self.path.clone(),
                repaired_in_memory: None,
            })
        })
    }
}

/// The `meta` key of the number of records the index held when its
/// compaction was last considered (compacted, or found too full to be worth
/// it).
pub(crate) const COMPACTED_RECORDS: &str = "compacted_records";

/// Whether an index of `records` records, `last` when its compaction was
/// last considered, is worth considering again: once it holds a quarter
/// more, so that a compaction reads at most about five times the index
/// pages added since the last one.
fn worth_compacting(records: u64, last: u64) -> bool {
    u128::from(records) * 4 >= u128::from(last) * 5
}

#[cfg(test)]
mod tests;
