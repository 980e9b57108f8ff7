//! The writer's two ways to the file: direct block writes with a staged
//! partial block, and the page cache (`direct_io: false`, or a file system
//! that refuses `O_DIRECT`). Both must give byte-identical logs,
//! files exactly as long as their data after every flush, and records
//! readable as soon as `wait_written` returns. Scans read sealed segments
//! directly and the last one through the page cache.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use ccvault_log::{Compacted, Compression, Log, LogOptions, Position};
use common::*;

/// Whether this process holds a file of `dir` (or the file `dir` itself)
/// open with `O_DIRECT` (read from `/proc/self/fdinfo`).
fn has_direct_fd(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd").unwrap().any(|fd| {
        let fd = fd.unwrap();
        let in_dir = std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(&dir));
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ));
        let flags = info.ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 8).ok())
        });
        in_dir && flags.is_some_and(|f| f & libc::O_DIRECT as u64 != 0)
    })
}

/// Appends 600 records of random sizes with flushes at random points and
/// checks the files after each flush; returns whether the writer used
/// direct I/O, and the segment files' bytes.
fn exercise(dir: &Path, direct_io: bool) -> (bool, Vec<Vec<u8>>) {
    let opts = LogOptions {
        direct_io,
        ..opts(256 << 10)
    };
    let (mut log, _) = Log::open(dir, opts, None).unwrap();
    let direct = has_direct_fd(dir);
    let mut rng = Rng(7);
    let mut positions: Vec<Position> = Vec::new();
    for i in 0..600u64 {
        let rec = TestRec::new(i, 9_000);
        let (offset, at) = log.append(&rec.as_new()).unwrap();
        assert_eq!(offset, i);
        positions.push(at);
        match rng.below(10) {
            0 => {
                assert_eq!(log.flush().unwrap(), i + 1);
                let end = log.end_position();
                let last = segment_files(dir).pop().unwrap();
                let len = std::fs::metadata(&last).unwrap().len();
                assert_eq!(len, u64::from(end.pos), "file length after a flush");
            }
            1 => {
                // Readable without being durable.
                let back = rng.below(i + 1);
                log.wait_written(back).unwrap();
                let r = log.reader().read_at(positions[back as usize]).unwrap();
                assert!(TestRec::new(back, 9_000).matches(back, &r), "record {back}");
            }
            _ => {}
        }
    }
    drop(log);
    let (log, rec) = Log::open(dir, opts, None).unwrap();
    assert_eq!(rec.next_offset, 600);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.damaged.is_empty());
    drop(log);
    let (recs, damage) = scan_all(dir);
    assert!(damage.is_empty());
    assert_eq!(recs.len(), 600);
    for (i, (at, r)) in recs.iter().enumerate() {
        assert_eq!(*at, positions[i]);
        assert!(TestRec::new(i as u64, 9_000).matches(i as u64, r));
    }
    let files = segment_files(dir)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    (direct, files)
}

/// A scan reads sealed segments with `O_DIRECT` and the last segment
/// through the page cache (`window::Src::open`), and sees every record
/// either way.
#[test]
fn scans_read_sealed_segments_directly_and_the_last_through_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), opts(64 << 10), None).unwrap();
    for i in 0..60u64 {
        log.append(&TestRec::new(i, 9_000).as_new()).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    if !direct_io_allowed(&files[0]) {
        // This file system refuses O_DIRECT (tmpfs): nothing to tell apart.
        return;
    }
    let reader = ccvault_log::LogReader::open(dir.path()).unwrap();
    let mut seen = 0u64;
    let mut direct_by_segment = std::collections::BTreeMap::new();
    for item in reader.scan(Position::START) {
        let ccvault_log::ScanItem::Record(at, rec) = item.unwrap() else {
            panic!("damage in a clean log");
        };
        assert!(
            TestRec::new(seen, 9_000).matches(seen, &rec),
            "record {seen}"
        );
        seen += 1;
        let file = dir.path().join(ccvault_log::segment_file_name(at.segment));
        direct_by_segment
            .entry(at.segment)
            .or_insert_with(|| has_direct_fd(&file));
    }
    assert_eq!(seen, 60);
    let direct: Vec<bool> = direct_by_segment.values().copied().collect();
    let (last, sealed) = direct.split_last().unwrap();
    assert!(
        sealed.iter().all(|&d| d),
        "sealed segments read directly: {direct:?}"
    );
    assert!(
        !last,
        "the last segment read through the page cache: {direct:?}"
    );
}

/// Whether `file` can be opened with `O_DIRECT` here.
fn direct_io_allowed(file: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)
        .is_ok()
}

#[test]
fn direct_and_page_cache_writes_give_identical_logs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (direct, blocks) = exercise(a.path(), true);
    assert!(direct, "the writer should use O_DIRECT on this file system");
    let (direct, cached) = exercise(b.path(), false);
    assert!(!direct);
    assert!(blocks.len() > 3, "expected several segments");
    assert!(blocks == cached, "the two write paths differ");
}

/// The compressor writes each `.segz` past the page cache too (whole
/// blocks directly, the partial last one through the cache): the same bytes
/// as through the cache, and the records read back.
#[test]
fn direct_and_page_cache_writes_give_identical_compressed_segments() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut packed = Vec::new();
    for (dir, direct_io) in [(a.path(), true), (b.path(), false)] {
        exercise(dir, direct_io);
        let opts = LogOptions {
            direct_io,
            ..opts(256 << 10)
        };
        let (mut log, _) = Log::open(dir, opts, None).unwrap();
        let done = log.compact_sealed(Compression::default()).unwrap();
        assert!(done.len() > 3, "expected several sealed segments");
        assert!(done
            .iter()
            .all(|(_, c)| matches!(c, Compacted::Done { .. })));
        drop(log);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "segz"))
            .collect();
        files.sort();
        packed.push(
            files
                .iter()
                .map(|f| std::fs::read(f).unwrap())
                .collect::<Vec<_>>(),
        );
        let (recs, damage) = scan_all(dir);
        assert!(damage.is_empty());
        assert_eq!(recs.len(), 600);
    }
    assert!(packed[0] == packed[1], "the two write paths differ");
}

#[test]
fn reopening_resumes_direct_writes_inside_a_partial_block() {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..5u64 {
        let (mut log, rec) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
        assert_eq!(rec.next_offset, round * 37);
        write_records(&mut log, round * 37, (round + 1) * 37, 700);
    }
    let (recs, damage) = scan_all(tmp.path());
    assert!(damage.is_empty());
    assert_eq!(recs.len(), 5 * 37);
    for (i, (_, r)) in recs.iter().enumerate() {
        assert!(TestRec::new(i as u64, 700).matches(i as u64, r));
    }
}
