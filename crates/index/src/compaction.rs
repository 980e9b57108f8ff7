//! When compacting a redb file is worth it: the one rule for every redb file
//! of an archive (the index at the end of a write session or a `reindex`,
//! the projections' rebuilt file), decided by redb's own statistics.
//!
//! redb grows a file by doubling it, and its allocator then pins the file's
//! end (docs/BENCHMARKS.md, issue 17): just after a doubling much of the file
//! is free (the 1M projections: 71.3 -> 37.6 MB compacted), but a file filled
//! close to its size is not made smaller by compacting it (the 50M
//! projections: 1.7 % smaller for 31.5 CPU-s and ~17 reads of the 2.3 GB
//! file). Redb's count of allocated pages tells the two apart for one walk of
//! the tables; its `fragmented_bytes` would not, as it counts the leaves'
//! unused bytes too.

use std::path::Path;

use redb::Database;

/// Compaction is worth its passes over the file only when at least this
/// share of the file (in tenths) is not in redb's allocated pages.
const COMPACT_WHEN_FREE_TENTHS: u64 = 1;

/// Whether a file of `len` bytes of which `allocated` are in use is worth
/// compacting: a tenth of it or more would be given back.
fn frees_enough(allocated: u64, len: u64) -> bool {
    let free = len.saturating_sub(allocated);
    u128::from(free) * 10 >= u128::from(len) * u128::from(COMPACT_WHEN_FREE_TENTHS)
}

/// Compacts `db` (the file at `path`) when its allocated pages leave at
/// least a tenth of the file free; says whether it did. The statistics are
/// read in a write transaction that is aborted, so nothing is committed
/// when the file is left as it is. Fails with redb's
/// [`redb::Error::TransactionInProgress`] (or a savepoint's error) when
/// another transaction prevents the compaction, as
/// [`Database::compact`] does.
pub fn compact_if_it_frees_enough(db: &mut Database, path: &Path) -> Result<bool, redb::Error> {
    let txn = db.begin_write()?;
    let stats = txn.stats()?;
    txn.abort()?;
    let allocated = stats
        .allocated_pages()
        .saturating_mul(stats.page_size() as u64);
    let len = std::fs::metadata(path)?.len();
    if !frees_enough(allocated, len) {
        return Ok(false);
    }
    db.compact()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

    #[test]
    fn a_tenth_free_is_enough() {
        assert!(frees_enough(90, 100));
        assert!(!frees_enough(91, 100));
        assert!(frees_enough(0, 0), "an empty file costs nothing to compact");
        assert!(frees_enough(0, u64::MAX));
        assert!(!frees_enough(u64::MAX, u64::MAX));
    }

    /// A file whose pages were mostly freed is compacted and shrinks; the
    /// result, packed, is not rewritten again: the statistics decide.
    #[test]
    fn compacts_only_a_file_with_a_tenth_or_more_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.redb");
        let mut db = Database::create(&path).unwrap();
        let value = [7u8; 1000];
        let txn = db.begin_write().unwrap();
        {
            let mut rows = txn.open_table(ROWS).unwrap();
            for k in 0..20_000u64 {
                rows.insert(k, value.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut rows = txn.open_table(ROWS).unwrap();
            for k in 2_000..20_000u64 {
                rows.remove(k).unwrap();
            }
        }
        txn.commit().unwrap();
        let len = |p: &Path| std::fs::metadata(p).unwrap().len();
        let grown = len(&path);

        assert!(compact_if_it_frees_enough(&mut db, &path).unwrap());
        let compacted = len(&path);
        assert!(compacted * 4 < grown, "{grown} -> {compacted}");

        assert!(!compact_if_it_frees_enough(&mut db, &path).unwrap());
        assert_eq!(len(&path), compacted);
        let txn = db.begin_read().unwrap();
        let rows = txn.open_table(ROWS).unwrap();
        assert_eq!(rows.len().unwrap(), 2_000);
        assert_eq!(rows.get(1_999).unwrap().unwrap().value(), value.as_slice());
        assert!(rows.get(2_000).unwrap().is_none());
    }
}
