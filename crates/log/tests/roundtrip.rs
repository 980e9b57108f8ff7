//! Append / read / scan round trips, rolling, reopening, options, locking.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;

use ccvault_log::{
    verify, FsyncPolicy, Log, LogError, LogOptions, LogReader, NewRecord, Position, ScanItem,
    ScanRef, HEADER_LEN,
};
use common::*;

#[test]
fn roundtrip_across_rolls_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, rec) = Log::open(&dir, opts(4096), None).unwrap();
    assert_eq!(rec.next_offset, 0);
    let positions = write_records(&mut log, 0, 400, 300);
    assert_eq!(log.next_offset(), 400);
    let reader = log.reader();
    let segs = reader.segments();
    assert!(
        segs.len() > 10,
        "expected many segments, got {}",
        segs.len()
    );
    assert_eq!(segs[0], 0);
    for f in segment_files(&dir) {
        assert!(std::fs::metadata(&f).unwrap().len() <= 4096);
    }
    // positions are increasing in log order and read back exactly
    for w in positions.windows(2) {
        assert!(w[0] < w[1]);
    }
    for (i, p) in positions.iter().enumerate() {
        let r = reader.read_at(*p).unwrap();
        assert!(
            TestRec::new(i as u64, 300).matches(i as u64, &r),
            "record {i}"
        );
    }
    // segment base = offset of its first record
    for &b in &segs {
        let first = positions.iter().position(|p| p.segment == b).unwrap();
        assert_eq!(first as u64, b);
        assert_eq!(positions[first].pos, HEADER_LEN);
    }
    let (recs, damage) = scan_all(&dir);
    assert!(damage.is_empty());
    assert_eq!(recs.len(), 400);
    for (i, (p, r)) in recs.iter().enumerate() {
        assert_eq!(*p, positions[i]);
        assert!(TestRec::new(i as u64, 300).matches(i as u64, r));
    }
    // scan from the middle
    let mid = positions[237];
    let tail: Vec<_> = reader.scan(mid).map(|i| i.unwrap()).collect();
    assert_eq!(tail.len(), 400 - 237);
    // the borrowed fast scan sees the same
    let mut n = 0u64;
    reader
        .scan_with(Position::START, |item| -> Result<(), LogError> {
            match item {
                ScanRef::Record(_, r) => {
                    assert_eq!(r.offset, n);
                    assert_eq!(r.payload, TestRec::new(n, 300).payload.as_slice());
                    n += 1;
                }
                ScanRef::Damage(d) => panic!("unexpected damage {d}"),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 400);
    // segment by segment, out of order, each scan ends at its segment's end
    let mut seen = Vec::new();
    for &base in segs.iter().rev() {
        let mut in_segment = Vec::new();
        reader
            .scan_segment_with(base, 0, |item| -> Result<(), LogError> {
                match item {
                    ScanRef::Record(at, r) => in_segment.push((at, r.offset)),
                    ScanRef::Damage(d) => panic!("unexpected damage {d}"),
                }
                Ok(())
            })
            .unwrap();
        assert!(!in_segment.is_empty());
        assert!(in_segment.iter().all(|(at, _)| at.segment == base));
        seen.splice(0..0, in_segment);
    }
    let expect: Vec<(Position, u64)> = positions.iter().copied().zip(0..).collect();
    assert_eq!(seen, expect);
    // from a position inside a segment
    let mut from_mid = 0;
    reader
        .scan_segment_with(mid.segment, mid.pos, |_| -> Result<(), LogError> {
            from_mid += 1;
            Ok(())
        })
        .unwrap();
    // a callback's Break ends the scan early, without an error
    let mut seen_before_break = 0;
    reader
        .scan_with(Position::START, |_| -> Result<ControlFlow<()>, LogError> {
            seen_before_break += 1;
            Ok(if seen_before_break == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
    assert_eq!(seen_before_break, 10);
    let in_mid_segment = positions.iter().filter(|p| p.segment == mid.segment);
    assert_eq!(
        from_mid,
        in_mid_segment.filter(|p| p.pos >= mid.pos).count()
    );
    assert!(reader.total_bytes() > 400 * 50);
    drop(log);

    let (mut log, rec) = Log::open(&dir, opts(4096), None).unwrap();
    assert_eq!(rec.next_offset, 400);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.damaged.is_empty());
    write_records(&mut log, 400, 500, 300);
    drop(log);
    let (recs, damage) = scan_all(&dir);
    assert!(damage.is_empty());
    assert_eq!(recs.len(), 500);
    for (i, (_, r)) in recs.iter().enumerate() {
        assert!(TestRec::new(i as u64, 300).matches(i as u64, r));
    }
    let report = verify(&dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert_eq!(report.records, 500);
    assert_eq!(report.next_offset, 500);
    assert_eq!(report.quarantined, 100);
}

#[test]
fn reader_sees_segments_added_later() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, opts(2048), None).unwrap();
    let reader = LogReader::open(dir).unwrap();
    assert_eq!(reader.segments(), vec![0]);
    assert_eq!(reader.scan(Position::START).count(), 0);
    let positions = write_records(&mut log, 0, 100, 200);
    assert!(reader.segments().len() > 3);
    assert_eq!(reader.scan(Position::START).count(), 100);
    let last = *positions.last().unwrap();
    assert_eq!(reader.read_at(last).unwrap().offset, 99);
    // unflushed data is not visible, flushed data is
    let r = TestRec::new(100, 10);
    let (_, p) = log.append(&r.as_new()).unwrap();
    assert!(reader.read_at(p).is_err());
    log.flush().unwrap();
    assert_eq!(reader.read_at(p).unwrap().offset, 100);
}

/// Files of `dir` this process holds open.
fn open_files_in(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter(|fd| {
            fd.as_ref()
                .is_ok_and(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&dir)))
        })
        .count()
}

/// Reads by position in hundreds of segments hold a bounded number of
/// them open (each one met was held until the reader was dropped, and a
/// long writer's duplicate checks ran out of descriptors), and every read,
/// of a segment let go and read again too, returns its record.
#[test]
fn reads_by_position_hold_few_files_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, opts(1024), None).unwrap();
    let positions = write_records(&mut log, 0, 1_500, 100);
    drop(log);
    let reader = LogReader::open(dir).unwrap();
    let segments = reader.segments().len();
    assert!(segments > 200, "{segments}");
    for round in 0..2 {
        for (i, &at) in positions.iter().enumerate() {
            assert_eq!(
                reader.read_at(at).unwrap().offset,
                i as u64,
                "round {round}"
            );
        }
        let held = open_files_in(dir);
        assert!(held <= 64, "{held} files of {segments} segments held open");
    }
    // Read at random: the least recently read ones go, and are opened again.
    let mut rng = Rng(3);
    for _ in 0..3_000 {
        let i = rng.below(positions.len() as u64) as usize;
        assert_eq!(reader.read_at(positions[i]).unwrap().offset, i as u64);
    }
    assert!(open_files_in(dir) <= 64);
}

/// `listed_segments` and `scan_listed` keep to the listing a reader took
/// (no directory read), and `footprint` counts each segment once with the
/// size `total_bytes` always reported.
#[test]
fn listed_scan_keeps_to_its_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, opts(2048), None).unwrap();
    let first = write_records(&mut log, 0, 20, 200);
    log.flush().unwrap();
    let reader = LogReader::open(dir).unwrap();
    let listed = reader.listed_segments();
    assert_eq!(listed, reader.segments());
    let in_listing = reader.scan_listed(Position::START).count();
    assert_eq!(in_listing, 20);
    let later = write_records(&mut log, 20, 100, 200);
    log.flush().unwrap();
    // The last listing still holds what the open saw; a listed scan reads
    // only its segments (the last one to its end now), a plain scan all.
    assert_eq!(reader.listed_segments(), listed);
    let last_listed = *listed.last().unwrap();
    let seen = reader
        .scan_listed(first[5])
        .map(|i| match i.unwrap() {
            ScanItem::Record(p, r) => (p, r.offset),
            ScanItem::Damage(d) => panic!("damage {d:?}"),
        })
        .collect::<Vec<_>>();
    assert!(seen.iter().all(|(p, _)| p.segment <= last_listed));
    assert_eq!(seen.first().map(|s| s.1), Some(5));
    assert!(seen.windows(2).all(|w| w[1].1 == w[0].1 + 1));
    assert_eq!(reader.scan(Position::START).count(), 100);
    // A position in a segment the listing lacks: listed afresh.
    let last = *later.last().unwrap();
    assert!(last.segment > last_listed);
    let tail = reader.scan_listed(last).count();
    assert_eq!(tail, 1);
    let fresh = reader.listed_segments();
    assert!(fresh.len() > listed.len());
    let (count, bytes) = reader.footprint();
    assert_eq!(count, fresh.len() as u64);
    let on_disk: u64 = segment_files(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(bytes, on_disk);
    assert_eq!(reader.total_bytes(), on_disk);
}

#[test]
fn fsync_policies_produce_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut contents = Vec::new();
    for policy in [FsyncPolicy::Always, FsyncPolicy::Batch, FsyncPolicy::Never] {
        let dir = tmp.path().join(policy.to_string());
        let o = LogOptions {
            segment_bytes: 4096,
            fsync: policy,
            compression: None,
            ..LogOptions::default()
        };
        let (mut log, _) = Log::open(&dir, o, None).unwrap();
        for i in 0..300 {
            log.append(&TestRec::new(i, 250).as_new()).unwrap();
            if matches!(i % 7, 0) {
                assert_eq!(log.flush().unwrap(), i + 1);
            }
        }
        log.close().unwrap();
        let files: Vec<(String, Vec<u8>)> = segment_files(&dir)
            .into_iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        assert!(files.len() > 5);
        contents.push(files);
    }
    assert_eq!(contents[0], contents[1]);
    assert_eq!(contents[1], contents[2]);
}

#[test]
fn always_policy_is_durable_per_append() {
    let tmp = tempfile::tempdir().unwrap();
    let o = LogOptions {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Always,
        ..LogOptions::default()
    };
    let (mut log, _) = Log::open(tmp.path(), o, None).unwrap();
    let (_, p) = log.append(&TestRec::new(0, 10).as_new()).unwrap();
    assert_eq!(log.durable_offset(), 1);
    // written without an explicit flush
    assert_eq!(log.reader().read_at(p).unwrap().offset, 0);
}

#[test]
fn second_writer_is_refused_and_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(tmp.path(), opts(4096), None).unwrap();
    let err = Log::open(tmp.path(), opts(4096), None).unwrap_err();
    match &err {
        LogError::Locked { holder, .. } => {
            assert_eq!(holder, &format!("pid {}", std::process::id()))
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.to_string().contains("already open for writing"));
    // readers are not blocked
    LogReader::open(tmp.path()).unwrap();
    drop(log);
    Log::open(tmp.path(), opts(4096), None).unwrap();
}

#[test]
fn files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let (mut log, _) = Log::open(&dir, opts(1024), None).unwrap();
    write_records(&mut log, 0, 30, 100);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(ccvault_log::LOCK_FILE_NAME)), 0o600);
    let segs = segment_files(&dir);
    assert!(segs.len() > 1);
    for f in segs {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn limits_reject_without_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(4096), None).unwrap();
    write_records(&mut log, 0, 3, 100);
    let long = "x".repeat(70_000);
    let err = log
        .append(&NewRecord {
            source: &long,
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::FieldTooLong {
                field: "source",
                ..
            }
        ),
        "{err}"
    );
    let big = vec![0u8; ccvault_log::MAX_BODY_LEN as usize];
    let err = log
        .append(&NewRecord {
            payload: &big,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, LogError::RecordTooLarge { .. }), "{err}");
    // still usable, offsets unchanged
    write_records(&mut log, 3, 6, 100);
    drop(log);
    assert!(verify(tmp.path()).unwrap().is_clean());
}

#[test]
fn record_larger_than_segment_gets_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(4096), None).unwrap();
    write_records(&mut log, 0, 5, 100);
    let big = vec![7u8; 20_000];
    let (off, pos) = log
        .append(&NewRecord {
            payload: &big,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(off, 5);
    assert_eq!(
        pos,
        Position {
            segment: 5,
            pos: HEADER_LEN
        }
    );
    let (off, pos) = log.append(&TestRec::new(6, 10).as_new()).unwrap();
    assert_eq!((off, pos.segment, pos.pos), (6, 6, HEADER_LEN));
    log.flush().unwrap();
    assert_eq!(
        log.reader()
            .read_at(Position {
                segment: 5,
                pos: HEADER_LEN
            })
            .unwrap()
            .payload,
        big
    );
    drop(log);
    let report = verify(tmp.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert_eq!(report.records, 7);
}

#[test]
fn drop_writes_buffered_records() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
        for i in 0..10 {
            log.append(&TestRec::new(i, 50).as_new()).unwrap();
        }
    }
    let (log, rec) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    assert_eq!(rec.next_offset, 10);
    assert_eq!(log.next_offset(), 10);
}

#[test]
fn checkpoint_limits_the_recovery_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    let positions = write_records(&mut log, 0, 50, 100);
    drop(log);
    // a valid checkpoint: only the records from it on are scanned
    let (log, rec) = Log::open(tmp.path(), opts(1 << 20), Some(positions[40])).unwrap();
    assert_eq!(rec.scanned_records, 10);
    assert_eq!(rec.scanned_from, positions[40]);
    assert_eq!(rec.next_offset, 50);
    drop(log);
    // a checkpoint in the middle of a record is not trusted: full scan, nothing lost
    let bogus = Position {
        segment: 0,
        pos: positions[40].pos + 5,
    };
    let (log, rec) = Log::open(tmp.path(), opts(1 << 20), Some(bogus)).unwrap();
    assert_eq!(rec.scanned_records, 50);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.damaged.is_empty());
    assert_eq!(rec.next_offset, 50);
    drop(log);
    // a checkpoint at the end of the data (or past it), or in another segment
    for cp in [
        log_end(tmp.path()),
        Position {
            segment: 0,
            pos: u32::MAX,
        },
        Position {
            segment: 77,
            pos: 40,
        },
    ] {
        let (log, rec) = Log::open(tmp.path(), opts(1 << 20), Some(cp)).unwrap();
        assert_eq!(rec.next_offset, 50, "{cp}");
        assert_eq!(rec.truncated_bytes, 0);
        drop(log);
    }
    let (recs, damage) = scan_all(tmp.path());
    assert_eq!(recs.len(), 50);
    assert!(damage.is_empty());
}

fn log_end(dir: &std::path::Path) -> Position {
    let (log, _) = Log::open(dir, opts(1 << 20), None).unwrap();
    log.end_position()
}

#[test]
fn empty_log_and_fresh_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, rec) = Log::open(tmp.path(), opts(4096), None).unwrap();
    assert_eq!(rec.next_offset, 0);
    assert_eq!(
        log.end_position(),
        Position {
            segment: 0,
            pos: HEADER_LEN
        }
    );
    drop(log);
    let (mut log, rec) = Log::open(tmp.path(), opts(4096), None).unwrap();
    assert_eq!(rec.next_offset, 0);
    write_records(&mut log, 0, 3, 10);
    assert!(verify(tmp.path()).unwrap().is_clean());
}

#[test]
fn concurrent_reader_sees_a_dense_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let (mut log, _) = Log::open(&dir, opts(64 << 10), None).unwrap();
    let reader = LogReader::open(&dir).unwrap();
    let total = 20_000u64;
    let writer = std::thread::spawn(move || {
        for i in 0..total {
            log.append(&TestRec::new(i, 200).as_new()).unwrap();
            if matches!(i % 50, 0) {
                log.flush().unwrap();
            }
        }
        log.flush().unwrap();
    });
    let mut scans = 0;
    loop {
        let done = writer.is_finished();
        let mut expected = 0u64;
        let items: Vec<ScanItem> = reader.scan(Position::START).map(|i| i.unwrap()).collect();
        let n = items.len();
        for (k, item) in items.into_iter().enumerate() {
            match item {
                ScanItem::Record(_, r) => {
                    assert_eq!(r.offset, expected);
                    assert!(TestRec::new(expected, 200).matches(expected, &r));
                    expected += 1;
                }
                // only a record being written at the very end may look torn
                ScanItem::Damage(d) => {
                    assert!(k + 1 == n && d.reason == "truncated tail", "{d}");
                    assert!(!done, "{d}");
                }
            }
        }
        scans += 1;
        if done {
            assert_eq!(expected, total);
            break;
        }
    }
    writer.join().unwrap();
    assert!(scans > 1);
    assert!(verify(&dir).unwrap().is_clean());
}

/// The race the concurrent test above hits at random, made deterministic: the
/// writer completes a torn record after the scan reported it. The scan must end
/// at the damage, not resume from the middle of the completed record.
#[test]
fn a_reported_torn_tail_ends_the_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let (mut log, _) = Log::open(&dir, opts(1 << 20), None).unwrap();
    write_records(&mut log, 0, 10, 200);
    drop(log);
    let seg = segment_files(&dir).pop().unwrap();
    let whole = std::fs::read(&seg).unwrap();
    let torn_at = whole.len() - 100;
    std::fs::write(&seg, &whole[..torn_at]).unwrap();

    let reader = LogReader::open(&dir).unwrap();
    let mut scan = reader.scan(Position::START);
    let mut records = 0;
    let damage = loop {
        match scan.next().unwrap().unwrap() {
            ScanItem::Record(..) => records += 1,
            ScanItem::Damage(d) => break d,
        }
    };
    assert_eq!(records, 9);
    assert!(damage.reason == "truncated tail", "{damage}");
    // the writer finishes the record, and writes more after it
    let mut file = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut file, &whole[torn_at..]).unwrap();
    std::io::Write::write_all(&mut file, &whole[HEADER_LEN as usize..]).unwrap();
    drop(file);
    let rest: Vec<_> = scan.map(|i| i.unwrap()).collect();
    assert!(rest.is_empty(), "items after a torn tail: {rest:?}");
    // a fresh scan sees the completed record
    let fresh = reader.scan(Position::START).map(|i| i.unwrap());
    assert!(fresh.take(10).all(|i| matches!(i, ScanItem::Record(..))));
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<LogReader>();
    assert_send_sync::<Log>();
    assert_send::<ccvault_log::Scan>();
    assert_send_sync::<LogError>();
}
