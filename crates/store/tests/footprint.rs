//! `stats` sizes the log from the index's count of compressed segments
//! (docs/FORMAT.md §3, "Packed segments") and the reader's one listing:
//! its segments and bytes must be what a fresh listing of the log
//! directory, every file sized, gives, after every way the count moves.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use ccvault_store::{Archive, ArchiveOptions, ArchiveReader, Incoming};
use common::{event, incoming};

fn append(archive: &mut Archive, from: u64, to: u64) {
    let lines: Vec<String> = (from..to).map(event).collect();
    for (n, chunk) in lines.chunks(500).enumerate() {
        let batch: Vec<Incoming> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| incoming(l, from + (n * 500 + i) as u64 + 1))
            .collect();
        archive.append_batch(&batch).unwrap();
    }
}

/// Segments of 16 KiB, and index commits of 1,000 records.
fn small_segments() -> ArchiveOptions {
    ArchiveOptions {
        segment_bytes: 16 << 10,
        index_commit_records: 1_000,
        ..ArchiveOptions::default()
    }
}

/// Segments and bytes of the log directory, each file sized now (a base
/// with both files counts its `.seg`).
fn listed(dir: &Path) -> (u64, u64) {
    let mut files: Vec<(u64, bool, u64)> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let (stem, packed) = match name.strip_suffix(".segz") {
                Some(stem) => (stem.to_owned(), true),
                None => (name.strip_suffix(".seg")?.to_owned(), false),
            };
            Some((stem.parse().unwrap(), packed, e.metadata().unwrap().len()))
        })
        .collect();
    files.sort_unstable();
    files.dedup_by_key(|f| f.0);
    (files.len() as u64, files.iter().map(|f| f.2).sum())
}

/// `stats`' segments and log bytes, and how many compressed segments the
/// index counted.
fn stats(dir: &Path) -> ((u64, u64), u64) {
    let reader = ArchiveReader::open_brief(dir).unwrap();
    let s = reader.stats().unwrap();
    let counted = reader.index().packed().unwrap().map_or(0, |p| p.count);
    ((s.segments, s.log_bytes), counted)
}

#[test]
fn stats_sizes_the_log_as_a_fresh_listing_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = small_segments();
    assert!(options.compression.is_some());

    // An import: its commits record the segments compressed so far; a
    // closing writer leaves the rest as `.seg`.
    let (mut archive, _) = Archive::open(dir, options.clone()).unwrap();
    append(&mut archive, 0, 3_000);
    archive.close().unwrap();
    let (got, _) = stats(dir);
    assert_eq!(got, listed(dir), "after an import");
    let old_index = tmp.path().join("index.old");
    std::fs::copy(dir.join("index.redb"), &old_index).unwrap();

    // A writer that compresses what was left and closes without a commit:
    // the index's count lacks those, which are sized one by one.
    let (archive, _) = Archive::open(dir, options.clone()).unwrap();
    wait_compressed(dir);
    drop(archive);
    let (got, _) = stats(dir);
    assert_eq!(got, listed(dir), "after compressions no commit counted");

    // Commits while compressing: every `.segz` counted.
    let (mut archive, _) = Archive::open(dir, options.clone()).unwrap();
    append(&mut archive, 3_000, 6_000);
    wait_compressed(dir);
    archive.reader().unwrap();
    let (got, counted) = stats(dir);
    assert_eq!(got, listed(dir), "while a writer runs");
    assert_eq!(
        counted + 1,
        got.0,
        "the index counts every compressed segment"
    );
    archive.close().unwrap();

    // An index from before (as after a crash that lost commits, or
    // restored from a copy): the reader indexes the tail, the writer it
    // opens for that counts the compressed segments afresh.
    std::fs::copy(&old_index, dir.join("index.redb")).unwrap();
    let (got, _) = stats(dir);
    assert_eq!(got, listed(dir), "after catching up an older index");

    // A reindex counts the compressed segments as it finds them.
    let (mut archive, _) = Archive::open(dir, options.clone()).unwrap();
    archive.rebuild_index().unwrap();
    archive.close().unwrap();
    let (got, counted) = stats(dir);
    assert_eq!(got, listed(dir), "after a reindex");
    assert!(counted > 0);
}

/// Waits until the log has no `.seg` but the active one.
fn wait_compressed(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let names: Vec<String> = std::fs::read_dir(dir.join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        if names.iter().filter(|n| n.ends_with(".seg")).count() == 1 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{names:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A read command that has to bring the index up to the log (here: the
/// index removed) opens the archive as a writer for that alone: the sealed
/// segments an import left uncompressed (`--no-compress`) stay `.seg`.
#[test]
fn a_reads_repair_leaves_the_segments_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = ArchiveOptions {
        segment_bytes: 4 << 10,
        compression: None,
        ..ArchiveOptions::default()
    };
    let (mut archive, _) = Archive::open(dir, options).unwrap();
    append(&mut archive, 0, 300);
    archive.close().unwrap();
    let plain = |dir: &Path| -> (usize, usize) {
        let mut counts = (0, 0);
        for e in std::fs::read_dir(dir.join("log")).unwrap() {
            match e.unwrap().path().extension().and_then(|x| x.to_str()) {
                Some("seg") => counts.0 += 1,
                Some("segz") => counts.1 += 1,
                _ => {}
            }
        }
        counts
    };
    let before = plain(dir);
    assert!(before.0 >= 10 && before.1 == 0, "{before:?}");
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    let reader = ArchiveReader::open(dir).unwrap();
    assert_eq!(reader.counters().unwrap().records, 300);
    drop(reader);
    // The compressor would have been at work for a moment: look again.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(plain(dir), before);
}

/// `verify` holds the index's record of the compressed segments to their
/// files: a flipped `packed.count` made every read warn of missing files,
/// and a flipped `packed.bytes` made `stats` misreport the log's size,
/// with `verify` clean (an outside audit). A count behind the files (a
/// compression no commit recorded yet) is no problem.
#[test]
fn verify_checks_the_record_of_compressed_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = small_segments();
    let (mut archive, _) = Archive::open(dir, options.clone()).unwrap();
    append(&mut archive, 0, 3_000);
    archive.close().unwrap();
    let (archive, _) = Archive::open(dir, options.clone()).unwrap();
    wait_compressed(dir);
    drop(archive);
    let report = ccvault_store::verify(dir).unwrap();
    assert!(report.is_clean(), "behind the files: {report:?}");

    let (mut archive, _) = Archive::open(dir, options).unwrap();
    archive.rebuild_index().unwrap();
    archive.close().unwrap();
    assert!(ccvault_store::verify(dir).unwrap().is_clean());
    let packed = ArchiveReader::open_brief(dir)
        .unwrap()
        .index()
        .packed()
        .unwrap()
        .unwrap();
    assert!(packed.count > 1, "{packed:?}");
    for (key, was, said) in [
        (
            "packed.count",
            packed.count,
            format!(
                "`meta` packed.count: the index counts {} compressed segment files, the log directory holds {}",
                packed.count + 1,
                packed.count
            ),
        ),
        (
            "packed.bytes",
            packed.bytes,
            format!(
                "`meta` packed.bytes: the index says {}, the {} compressed segment files give {} (`stats` prints the log's size from it)",
                packed.bytes + 1,
                packed.count,
                packed.bytes
            ),
        ),
        (
            "packed.bases",
            packed.bases,
            "`meta` packed.bases: the index says".to_owned(),
        ),
    ] {
        common::set_index_meta(dir, key, was.wrapping_add(1));
        let problems = ccvault_store::verify(dir).unwrap().index_problems;
        assert_eq!(problems.len(), 1, "{key}: {problems:#?}");
        assert!(problems[0].starts_with(&said), "{key}: {problems:#?}");
        assert!(problems[0].ends_with("`ccvault reindex` writes it again"));
        common::set_index_meta(dir, key, was);
    }
    assert!(ccvault_store::verify(dir).unwrap().is_clean());
}
