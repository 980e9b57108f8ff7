//! Torn tails: cut the last segment at every byte of its last records; and
//! opening a log of an older format version.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::OpenOptions;

use ccvault_log::{verify, Log, Position, HEADER_LEN};
use common::*;

fn cut(path: &std::path::Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn torn_tail_at_every_byte_of_the_last_records() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    // small segments: the last segment holds a few records, so cuts also hit its
    // first record and previous segments stay untouched
    let (mut log, _) = Log::open(&template, opts(2048), None).unwrap();
    let positions = write_records(&mut log, 0, 40, 150);
    drop(log);
    let last_seg = positions.last().unwrap().segment;
    let seg_path = segment_files(&template).pop().unwrap();
    let full_len = std::fs::metadata(&seg_path).unwrap().len();
    // record ends inside the last segment
    let in_last: Vec<(u64, u64)> = positions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.segment == last_seg)
        .map(|(i, p)| (i as u64, u64::from(p.pos)))
        .collect();
    assert!(in_last.len() >= 2);
    let ends: Vec<(u64, u64)> = in_last
        .iter()
        .enumerate()
        .map(|(k, &(i, _))| {
            let end = in_last.get(k + 1).map_or(full_len, |n| n.1);
            (i, end)
        })
        .collect();
    let from = in_last[in_last.len().saturating_sub(3)].1;
    for at in (0..u64::from(HEADER_LEN)).chain(from..full_len) {
        let dir = tmp.path().join(format!("cut{at}"));
        copy_dir(&template, &dir);
        cut(&dir.join(seg_path.file_name().unwrap()), at);
        let whole = ends.iter().filter(|(_, e)| *e <= at).count() as u64;
        let expect_next = last_seg + whole;
        let good_end = ends
            .iter()
            .filter(|(_, e)| *e <= at)
            .map(|(_, e)| *e)
            .max()
            .unwrap_or(u64::from(HEADER_LEN));
        let (mut log, rec) = Log::open(&dir, opts(2048), None).unwrap();
        assert_eq!(rec.next_offset, expect_next, "cut at {at}");
        assert!(rec.damaged.is_empty(), "cut at {at}: {:?}", rec.damaged);
        if at >= u64::from(HEADER_LEN) {
            assert_eq!(rec.truncated_bytes, at - good_end, "cut at {at}");
        }
        assert_eq!(
            log.end_position(),
            Position {
                segment: last_seg,
                pos: good_end as u32
            }
        );
        // appending continues at the right offset
        let r = TestRec::new(expect_next, 150);
        let (off, _) = log.append(&r.as_new()).unwrap();
        assert_eq!(off, expect_next);
        log.flush().unwrap();
        drop(log);
        let (recs, damage) = scan_all(&dir);
        assert!(damage.is_empty(), "cut at {at}: {damage:?}");
        assert_eq!(recs.len() as u64, expect_next + 1);
        for (i, (_, r)) in recs.iter().enumerate() {
            assert!(
                TestRec::new(i as u64, 150).matches(i as u64, r),
                "cut at {at}, rec {i}"
            );
        }
        let report = verify(&dir).unwrap();
        assert!(report.is_clean(), "cut at {at}: {:?}", report.damage);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn torn_segment_creation_is_repaired() {
    // A crash right after creating the next segment: its header is missing or torn.
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("t");
    let (mut log, _) = Log::open(&template, opts(1024), None).unwrap();
    let positions = write_records(&mut log, 0, 30, 100);
    // force a roll so the last segment holds exactly one record, then cut it
    drop(log);
    let last = *positions.last().unwrap();
    let last_first = positions
        .iter()
        .position(|p| p.segment == last.segment)
        .unwrap() as u64;
    for at in 0..=u64::from(HEADER_LEN) {
        let dir = tmp.path().join(format!("c{at}"));
        copy_dir(&template, &dir);
        cut(&dir.join(ccvault_log::segment_file_name(last.segment)), at);
        let (mut log, rec) = Log::open(&dir, opts(1024), None).unwrap();
        assert_eq!(rec.next_offset, last_first, "cut {at}");
        assert!(rec.damaged.is_empty());
        write_records(&mut log, last_first, 30, 100);
        drop(log);
        let report = verify(&dir).unwrap();
        assert!(report.is_clean(), "cut {at}: {:?}", report.damage);
        assert_eq!(report.records, 30);
    }
}

#[test]
fn a_file_named_like_the_next_segment_is_never_overwritten() {
    // A torn creation leaves at most a header's bytes, or zeros past them
    // (repaired above); a file with other bytes and no header is not one
    // of the log's, whatever its name.
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("t");
    let (mut log, _) = Log::open(&template, opts(1 << 20), None).unwrap();
    write_records(&mut log, 0, 20, 100);
    drop(log);
    let mut rng = Rng(11);
    let foreign: Vec<u8> = (0..3000).map(|_| rng.next_u64() as u8).collect();
    let mut zeros = vec![0u8; 3000];
    zeros[..5].copy_from_slice(b"CCVLX");
    for (name, bytes, ours) in [("foreign", &foreign, false), ("zeros", &zeros, true)] {
        let dir = tmp.path().join(name);
        copy_dir(&template, &dir);
        let file = dir.join(ccvault_log::segment_file_name(20));
        std::fs::write(&file, bytes).unwrap();
        match Log::open(&dir, opts(1 << 20), None) {
            Ok((mut log, rec)) => {
                assert!(ours, "{name}: opened over a file it never wrote");
                assert_eq!(rec.next_offset, 20);
                write_records(&mut log, 20, 25, 100);
                drop(log);
                assert!(verify(&dir).unwrap().is_clean(), "{name}");
            }
            Err(e) => {
                assert!(!ours, "{name}: {e}");
                let text = e.to_string();
                assert!(text.contains(&file.display().to_string()), "{text}");
                assert!(text.contains("not overwritten"), "{text}");
                assert_eq!(&std::fs::read(&file).unwrap(), bytes, "{name} changed");
            }
        }
    }
}

#[test]
fn garbage_after_the_last_record_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    write_records(&mut log, 0, 20, 100);
    drop(log);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // zero fill (as a file system may leave after a crash) and random junk
    let mut data = std::fs::read(&seg).unwrap();
    data.extend(std::iter::repeat_n(0u8, 5000));
    let mut rng = Rng(7);
    data.extend((0..3000).map(|_| rng.next_u64() as u8));
    std::fs::write(&seg, &data).unwrap();
    let (log, rec) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    assert_eq!(rec.truncated_bytes, 8000);
    assert_eq!(rec.truncated_at.unwrap().pos as u64, len);
    assert_eq!(rec.next_offset, 20);
    drop(log);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn damaged_record_followed_by_valid_ones_is_kept_not_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    let positions = write_records(&mut log, 0, 20, 100);
    drop(log);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut data = std::fs::read(&seg).unwrap();
    let p = positions[10].pos as usize + 20;
    data[p] ^= 0x55;
    std::fs::write(&seg, &data).unwrap();
    let (mut log, rec) = Log::open(tmp.path(), opts(1 << 20), None).unwrap();
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.next_offset, 20);
    assert_eq!(rec.damaged.len(), 1);
    assert_eq!(rec.damaged[0].pos, u64::from(positions[10].pos));
    assert_eq!(rec.damaged[0].reason, "CRC mismatch");
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    write_records(&mut log, 20, 25, 100);
    drop(log);
    let (recs, damage) = scan_all(tmp.path());
    assert_eq!(damage.len(), 1);
    let offsets: Vec<u64> = recs.iter().map(|(_, r)| r.offset).collect();
    let expected: Vec<u64> = (0..25).filter(|&i| i != 10).collect();
    assert_eq!(offsets, expected);
}

/// Rewrites the header of the segment file `path` to claim format `version`
/// (a log written before tallies has version 1 and no tally in it).
fn set_version(path: &std::path::Path, version: u16) {
    let mut bytes = std::fs::read(path).unwrap();
    let base: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    bytes[..HEADER_LEN as usize]
        .copy_from_slice(&ccvault_log::format::encode_header_version(base, version));
    std::fs::write(path, bytes).unwrap();
}

/// Messages only: a version 1 log cannot hold tallies.
fn write_messages(log: &mut Log, n: usize) -> Vec<(u64, TestRec)> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        if !TestRec::is_tally(i) {
            let r = TestRec::new(i, 100);
            let (offset, _) = log.append(&r.as_new()).unwrap();
            out.push((offset, r));
        }
        i += 1;
    }
    log.flush().unwrap();
    out
}

#[test]
fn a_version_1_log_is_read_and_new_records_go_to_a_version_2_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(1 << 20), None).unwrap();
    let mut written = write_messages(&mut log, 30);
    drop(log);
    let v1 = segment_files(&dir).pop().unwrap();
    set_version(&v1, 1);
    let v1_bytes = std::fs::read(&v1).unwrap();
    assert_eq!(verify(&dir).unwrap().records, 30, "a v2 reader reads v1");

    let (mut log, rec) = Log::open(&dir, opts(1 << 20), None).unwrap();
    assert_eq!(rec.rolled_from_version, Some(1));
    assert_eq!(rec.next_offset, 30);
    let tally = TestRec::new(3, 0);
    assert!(TestRec::is_tally(3));
    let (offset, at) = log.append(&tally.as_new()).unwrap();
    assert_eq!((offset, at.segment, at.pos), (30, 30, HEADER_LEN));
    written.push((offset, tally));
    written.extend(write_messages(&mut log, 5));
    drop(log);

    assert_eq!(
        std::fs::read(&v1).unwrap(),
        v1_bytes,
        "the v1 segment is left as it was"
    );
    let files = segment_files(&dir);
    assert_eq!(files.len(), 2);
    assert_eq!(
        &std::fs::read(&files[1]).unwrap()[8..10],
        &2u16.to_le_bytes()
    );
    let (recs, damage) = scan_all(&dir);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(recs.len(), written.len());
    for ((_, r), (offset, want)) in recs.iter().zip(&written) {
        assert!(want.matches(*offset, r), "offset {offset}");
    }
    let report = verify(&dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.records, report.tallies), (36, 1));

    // Reopening does not roll again: the last segment is of this version.
    let (log, rec) = Log::open(&dir, opts(1 << 20), None).unwrap();
    drop(log);
    assert_eq!(rec.rolled_from_version, None);
    assert_eq!(segment_files(&dir).len(), 2);
}

#[test]
fn an_empty_version_1_segment_becomes_a_version_2_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(Log::open(&dir, opts(1 << 20), None).unwrap());
    let seg = segment_files(&dir).pop().unwrap();
    set_version(&seg, 1);
    let (mut log, rec) = Log::open(&dir, opts(1 << 20), None).unwrap();
    assert_eq!(rec.rolled_from_version, None, "nothing to keep: no roll");
    log.append(&TestRec::new(3, 0).as_new()).unwrap();
    log.flush().unwrap();
    drop(log);
    assert_eq!(segment_files(&dir), vec![seg.clone()]);
    assert_eq!(&std::fs::read(&seg).unwrap()[8..10], &2u16.to_le_bytes());
    assert!(verify(&dir).unwrap().is_clean());
}

#[test]
fn a_segment_of_a_newer_version_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(1 << 20), None).unwrap();
    write_messages(&mut log, 3);
    drop(log);
    let seg = segment_files(&dir).pop().unwrap();
    set_version(&seg, 3);
    let err = Log::open(&dir, opts(1 << 20), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(seg.to_str().unwrap()) && err.contains("version 3") && err.contains("1 to 2"),
        "{err}"
    );
}
