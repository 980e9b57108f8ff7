//! When compacting a redb file is worth it: the one rule for every redb file
//! of an archive that is compacted (the index at the end of a write session
//! or a `reindex`), decided by redb's own statistics. A rebuild's new
//! projections file is not asked: it never has a tenth free (its test
//! `a_rebuilt_file_has_nothing_for_compaction_to_give_back` holds it to
//! this rule).
//!
//! What compaction can give back is the disk space of pages that were
//! written and then freed. redb grows a file by doubling its length, but the
//! new tail is a hole (a sparse extension) until pages are written there: a
//! freshly built 50M-event index of 2.28 GB length had 1.749 GB on disk for
//! 1.713 GB of allocated pages, so compacting it (18 s, ~8 reads of the
//! file through redb's 64 MiB cache, docs/BENCHMARKS.md issue 17) gave back
//! 2 % of the disk, and the next commit doubled the length again anyway.
//! So the free share is counted against the bytes the file occupies on
//! disk, not its length. A file filled close to that is not made smaller by
//! compacting it (the 50M projections: 1.7 % smaller for 31.5 CPU-s). Redb's
//! count of allocated pages tells the cases apart for one walk of the
//! tables; its `fragmented_bytes` would not, as it counts the leaves' unused
//! bytes too.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use redb::Database;

/// Compaction is worth its passes over the file only when at least this
/// share of the file (in tenths) is not in redb's allocated pages.
const COMPACT_WHEN_FREE_TENTHS: u64 = 1;

/// Whether a file occupying `on_disk` bytes of which `allocated` are in use
/// is worth compacting: a tenth of it or more would be given back.
fn frees_enough(allocated: u64, on_disk: u64) -> bool {
    let free = on_disk.saturating_sub(allocated);
    u128::from(free) * 10 >= u128::from(on_disk) * u128::from(COMPACT_WHEN_FREE_TENTHS)
}

/// The bytes a file occupies on disk: its length less the holes never
/// written (a file system that does not report blocks gives its length).
fn bytes_on_disk(meta: &std::fs::Metadata) -> u64 {
    match meta.blocks().checked_mul(512) {
        Some(0) | None => meta.len(),
        Some(occupied) => occupied.min(meta.len()),
    }
}

/// Compacts `db` (the file at `path`) when its allocated pages leave at
/// least a tenth of the file's bytes on disk free; says whether it did. The statistics are
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
    let on_disk = bytes_on_disk(&std::fs::metadata(path)?);
    if !frees_enough(allocated, on_disk) {
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

    const VALUE: [u8; 1000] = [7u8; 1000];

    /// A database in `dir` whose one commit wrote 20,000 rows of `VALUE`
    /// (~20 MB: redb grows the file by doubling on the way).
    fn filled(dir: &Path) -> (Database, std::path::PathBuf) {
        let path = dir.join("file.redb");
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut rows = txn.open_table(ROWS).unwrap();
            for k in 0..20_000u64 {
                rows.insert(k, VALUE.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        (db, path)
    }

    /// The holes of a sparse file are not counted as occupied: the bytes
    /// written are.
    #[test]
    fn a_files_holes_are_not_on_disk() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&[1u8; 8192]).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start((64 << 20) - 4096)).unwrap();
        f.write_all(&[2u8; 4096]).unwrap();
        f.sync_all().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let on_disk = bytes_on_disk(&meta);
        assert_eq!(meta.len(), 64 << 20);
        assert!(
            (12_288..1 << 20).contains(&on_disk),
            "64 MiB with 12 KiB written occupies {on_disk} bytes"
        );
    }

    /// A file whose tail redb added by growing but never wrote is not
    /// compacted: there is nothing on disk to give back (a fresh index at
    /// 50M events: 18 s for 2 % of its disk).
    #[test]
    fn a_grown_tail_never_written_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, path) = filled(dir.path());
        let meta = std::fs::metadata(&path).unwrap();
        let on_disk = bytes_on_disk(&meta);
        assert!(
            on_disk * 10 < meta.len() * 9,
            "redb's growth should leave an unwritten tail: {on_disk} of {} bytes on disk",
            meta.len()
        );

        assert!(!compact_if_it_frees_enough(&mut db, &path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), meta.len());
    }

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
        let (mut db, path) = filled(dir.path());
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
        assert_eq!(rows.get(1_999).unwrap().unwrap().value(), VALUE.as_slice());
        assert!(rows.get(2_000).unwrap().is_none());
    }
}
