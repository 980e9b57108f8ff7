//! The counts of dropped messages (duplicates, control messages) are tally
//! records of the log (docs/FORMAT.md §1.4): readers of messages never see
//! them, losing the index loses no count, `verify` checks the index against
//! the last one, and an archive written before tallies keeps its counts.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use ccvault_index::{Checkpoint, Index};
use ccvault_log::{DamageReason, LogReader, Position, RecordKind, ScanItem, Tally};
use ccvault_store::{verify, Archive, ArchiveOptions, ArchiveReader, Incoming, SourceKind};
use common::event;

const HEARTBEAT: &str = r#"{"ClientCheck":{"ts":1}}"#;

/// Appends `lines` as one batch, line numbers from `first_line`.
fn append(archive: &mut Archive, lines: &[String], first_line: u64) {
    let batch: Vec<Incoming> = lines
        .iter()
        .zip(first_line..)
        .map(|(l, line)| Incoming {
            raw: l.as_bytes(),
            source_kind: SourceKind::File,
            source: "t.ndjson",
            line,
            message_id: None,
            ingest_ms: 1,
        })
        .collect();
    archive.append_batch(&batch).unwrap();
}

/// Every tally of the log: (offset, counts, line).
fn tallies(dir: &Path) -> Vec<(u64, Tally, u64)> {
    let reader = LogReader::open(&dir.join("log")).unwrap();
    let mut out = Vec::new();
    for item in reader.scan(Position::START) {
        if let ScanItem::Record(_, r) = item.unwrap() {
            if let Some(t) = r.tally() {
                out.push((r.offset, t, r.line));
            }
        }
    }
    out
}

fn dropped(dir: &Path) -> (u64, u64, Option<u64>) {
    let reader = ArchiveReader::open(dir).unwrap();
    let c = reader.counters().unwrap();
    (
        c.duplicates,
        c.control,
        reader.index().tally_offset().unwrap(),
    )
}

#[test]
fn dropped_counts_are_tallies_of_the_log_and_survive_losing_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let events: Vec<String> = (0..20).map(event).collect();
    append(&mut archive, &events[..10], 1); // offsets 0..10, nothing dropped
    let mut second: Vec<String> = events[..5].to_vec(); // 5 duplicates
    second.push(HEARTBEAT.into());
    second.extend_from_slice(&events[10..13]);
    second.push(HEARTBEAT.into());
    append(&mut archive, &second, 11); // offsets 10..13, tally at 13
    append(&mut archive, &events[13..17], 21); // offsets 14..18, no tally
    append(&mut archive, &events[16..17], 25); // 1 duplicate: tally at 18
    archive.close().unwrap();

    let totals = |duplicates, control| Tally {
        duplicates,
        control,
    };
    assert_eq!(
        tallies(dir),
        vec![(13, totals(5, 2), 20), (18, totals(6, 2), 25)],
        "one tally closes each batch that dropped anything, with running totals \
         and the batch's last line"
    );
    assert_eq!(dropped(dir), (6, 2, Some(18)));

    // Readers of messages never see a tally.
    let reader = ArchiveReader::open(dir).unwrap();
    assert_eq!(reader.counters().unwrap().records, 17);
    let mut scanned = Vec::new();
    let _ = reader
        .records()
        .scan(Position::START, |_, r| {
            assert_eq!(r.kind, RecordKind::Message);
            scanned.push(r.offset);
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert_eq!(scanned, (0..13).chain(14..18).collect::<Vec<_>>());
    let mut visited = 0;
    reader
        .for_each_record(
            |r| {
                assert_eq!(r.kind, RecordKind::Message);
                visited += 1;
                Ok(())
            },
            |d| panic!("damage: {d}"),
        )
        .unwrap();
    assert_eq!(visited, 17);
    drop(reader);
    let report = verify(dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.records, report.tallies), (17, 2));

    // The index lost: the counts come back from the log.
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    assert_eq!(dropped(dir), (6, 2, Some(18)));
    // A rebuild derives them again.
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    assert_eq!(archive.rebuild_index().unwrap(), 17);
    archive.close().unwrap();
    assert_eq!(dropped(dir), (6, 2, Some(18)));
    assert!(verify(dir).unwrap().is_clean());
}

#[test]
fn verify_names_counts_that_the_log_does_not_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let lines: Vec<String> = [0, 1, 1].into_iter().map(event).collect();
    append(&mut archive, &lines, 1);
    archive.close().unwrap();
    assert!(verify(dir).unwrap().is_clean());
    // Counts changed behind the archive's back.
    let index = Index::open(&dir.join("index.redb")).unwrap();
    let mut w = index.begin().unwrap();
    w.add_tally(3, 5, 0);
    index.commit(w, None).unwrap();
    drop(index);
    let report = verify(dir).unwrap();
    assert!(
        report
            .index_problems
            .iter()
            .any(|p| p.contains("5 duplicates")
                && p.contains("offset 3")
                && p.contains("says 1 and 0")),
        "{report:?}"
    );
}

/// Rewrites every segment header of the archive to format version 1, as a
/// build before tallies wrote them (the records are the same).
fn make_version_1(dir: &Path) {
    for entry in std::fs::read_dir(dir.join("log")).unwrap() {
        let path = entry.unwrap().path();
        let Some(base) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..32].copy_from_slice(&ccvault_log::format::encode_header_version(base, 1));
        std::fs::write(&path, bytes).unwrap();
    }
}

/// A version 1 archive of 20 events: no tally in the log, 7 duplicates and
/// 3 control messages counted in its index only. Returns the events.
fn written_before_tallies(dir: &Path) -> Vec<String> {
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let events: Vec<String> = (0..20).map(event).collect();
    append(&mut archive, &events, 1);
    archive.close().unwrap();
    make_version_1(dir);
    let index = Index::open(&dir.join("index.redb")).unwrap();
    let mut w = index.begin().unwrap();
    w.keep_untallied(7, 3);
    index.commit(w, None).unwrap();
    events
}

#[test]
fn an_archive_written_before_tallies_keeps_its_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let events = written_before_tallies(dir);
    assert_eq!(dropped(dir), (7, 3, None), "a reader changes nothing");
    assert!(tallies(dir).is_empty());

    // The first writer writes them into a tally, in a new version 2 segment.
    let (archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    archive.close().unwrap();
    let tally = Tally {
        duplicates: 7,
        control: 3,
    };
    assert_eq!(tallies(dir), vec![(20, tally, 0)]);
    let segments: Vec<_> = LogReader::open(&dir.join("log")).unwrap().segments();
    assert_eq!(segments, vec![0, 20], "the v1 segment is left sealed");
    assert_eq!(dropped(dir), (7, 3, Some(20)));
    let report = verify(dir).unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Opened again: written once.
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    append(&mut archive, &events[..1], 21);
    archive.close().unwrap();
    let tally2 = Tally {
        duplicates: 8,
        control: 3,
    };
    assert_eq!(tallies(dir), vec![(20, tally, 0), (21, tally2, 21)]);
    // And derived from the log when the index is lost.
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    assert_eq!(dropped(dir), (8, 3, Some(21)));
    let report = verify(dir).unwrap();
    assert_eq!((report.records, report.tallies), (20, 2));
}

/// An archive written before tallies by a build whose index version is
/// older than this one's: the index is rebuilt from the log, which holds no
/// count, so the old file's counts are read before it goes and written into
/// a tally first (an outside audit found them lost: 201,925 duplicates
/// read 0 after the upgrade), by the first writer and by `reindex` alike.
#[test]
fn an_older_index_of_an_archive_written_before_tallies_gives_its_counts_to_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, reindexed) = (tmp.path().join("first-writer"), tmp.path().join("reindex"));
    for dir in [&first, &reindexed] {
        written_before_tallies(dir);
        common::set_index_version(dir, 3);
    }

    let tally = Tally {
        duplicates: 7,
        control: 3,
    };
    let (archive, report) = Archive::open(&first, ArchiveOptions::default()).unwrap();
    assert!(report.index_rebuilt);
    archive.close().unwrap();
    let (archive, report, _) =
        Archive::open_and_reindex(&reindexed, ArchiveOptions::default()).unwrap();
    assert!(report.index_rebuilt);
    archive.close().unwrap();
    for dir in [&first, &reindexed] {
        assert_eq!(tallies(dir), vec![(20, tally, 0)]);
        assert_eq!(dropped(dir), (7, 3, Some(20)));
        let report = verify(dir).unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}

#[test]
fn a_rebuild_of_an_index_written_before_tallies_keeps_its_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let events: Vec<String> = (0..5).map(event).collect();
    append(&mut archive, &events, 1);
    archive.close().unwrap();
    // Counts no tally holds, and a checkpoint past the end of the log (it
    // lost an unsynced tail), so that `open` rebuilds the index before it
    // writes the counts into a tally.
    let index = Index::open(&dir.join("index.redb")).unwrap();
    let mut w = index.begin().unwrap();
    w.keep_untallied(4, 1);
    let ahead = Checkpoint {
        next_offset: 100,
        segment: 0,
        pos: 10_000,
    };
    index.commit(w, Some(ahead)).unwrap();
    drop(index);
    let (archive, report) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    assert!(report.index_rebuilt);
    archive.close().unwrap();
    assert_eq!(dropped(dir), (4, 1, Some(5)));
    assert!(verify(dir).unwrap().is_clean());
}

#[test]
fn a_damaged_tally_loses_no_count_once_a_later_one_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let events: Vec<String> = (0..12).map(event).collect();
    append(&mut archive, &events[..4], 1); // offsets 0..4
    append(&mut archive, &events[..6], 5); // 4 duplicates: offsets 4, 5, tally at 6
    append(&mut archive, &events[..8], 11); // 6 duplicates: offsets 7, 8, tally at 9
    append(&mut archive, &events[8..], 19); // offsets 10..14
    archive.close().unwrap();
    let t = |duplicates| Tally {
        duplicates,
        control: 0,
    };
    assert_eq!(tallies(dir), vec![(6, t(4), 10), (9, t(10), 18)]);

    // Flip the last payload byte of the first tally: a CRC mismatch.
    let reader = LogReader::open(&dir.join("log")).unwrap();
    let (at, len) = reader
        .scan(Position::START)
        .find_map(|item| match item.unwrap() {
            ScanItem::Record(at, r) if r.offset == 6 => Some((at, r.as_ref().frame_len())),
            _ => None,
        })
        .unwrap();
    let seg = dir
        .join("log")
        .join(ccvault_log::segment_file_name(at.segment));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[(u64::from(at.pos) + len - 1) as usize] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();

    // Reported as damage (the frame, and the offset it leaves out), not as
    // an index problem: the index's counts are the later tally's.
    let report = verify(dir).unwrap();
    let reasons: Vec<_> = report.damage.iter().map(|d| d.reason.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            DamageReason::CrcMismatch,
            DamageReason::OffsetGap {
                expected: 6,
                found: 7
            }
        ],
        "{report:?}"
    );
    assert_eq!(report.damage[0].pos, u64::from(at.pos));
    assert!(report.index_problems.is_empty(), "{report:?}");
    assert_eq!(dropped(dir), (10, 0, Some(9)));
    // The index lost too: the later tally has every count.
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    assert_eq!(dropped(dir), (10, 0, Some(9)));
    assert_eq!(
        ArchiveReader::open(dir)
            .unwrap()
            .counters()
            .unwrap()
            .records,
        12
    );
}
