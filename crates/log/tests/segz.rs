//! Compressed sealed segments (`.segz`) on real files: every record keeps its
//! position and bytes; real flipped bytes in a block, the block index or the
//! header are reported with the file and position, and every other block's
//! records are still served; the states a crash can leave mid-compression
//! are put right when a writer opens the log.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use ccvault_log::{
    segment_file_name, segz_file_name, verify, Compacted, Compression, DamageReason, Log,
    LogReader, Position, Record, ScanItem,
};
use common::*;

/// Small blocks, so a small test log has many.
const SMALL: Compression = Compression {
    level: 3,
    block_bytes: 4096,
};

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    positions: Vec<Position>,
    records: Vec<Record>,
}

/// A log of `n` records in segments of 16 KiB, every sealed one compressed.
fn compressed(n: u64) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    let positions = write_records(&mut log, 0, n, 600);
    let reader = log.reader();
    let records: Vec<Record> = positions
        .iter()
        .map(|&p| reader.read_at(p).unwrap())
        .collect();
    let plain_bytes = reader.total_bytes();
    let done = log.compact_sealed(SMALL).unwrap();
    let sealed = reader.segments().len() - 1;
    assert!(sealed >= 2, "{sealed} sealed segments");
    assert_eq!(done.len(), sealed);
    for (_, c) in &done {
        let Compacted::Done {
            seg_bytes,
            segz_bytes,
        } = c
        else {
            panic!("not compressed: {c:?}");
        };
        assert!(segz_bytes < seg_bytes, "{c:?}");
    }
    assert!(reader.total_bytes() < plain_bytes);
    drop(log);
    Fixture {
        _tmp: tmp,
        dir,
        positions,
        records,
    }
}

impl Fixture {
    /// The `i`-th segment's base, the path of its `.segz` and its bytes.
    fn segz(&self, i: usize) -> (u64, PathBuf, Vec<u8>) {
        let seg = LogReader::open(&self.dir).unwrap().segments()[i];
        let path = self.dir.join(segz_file_name(seg));
        let bytes = fs::read(&path).unwrap();
        (seg, path, bytes)
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "writer.lock")
        .collect();
    v.sort();
    v
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// `(file_pos, raw_pos, raw_len)` of each block, from the block index
/// (docs/FORMAT.md §1.7).
fn blocks(segz: &[u8]) -> Vec<(u64, u64, u64)> {
    let n = u32_at(segz, 28) as usize;
    let index = u64_at(segz, 32) as usize;
    (0..n)
        .map(|i| {
            let e = index + 24 * i;
            (
                u64_at(segz, e),
                u64::from(u32_at(segz, e + 8)),
                u64::from(u32_at(segz, e + 12)),
            )
        })
        .collect()
}

#[test]
fn compressed_segments_serve_every_record_at_its_position() {
    let f = compressed(200);
    let segs = LogReader::open(&f.dir).unwrap().segments();
    let last = *segs.last().unwrap();
    let mut expect: Vec<String> = segs[..segs.len() - 1]
        .iter()
        .map(|&b| segz_file_name(b))
        .collect();
    expect.push(segment_file_name(last));
    assert_eq!(names(&f.dir), expect);

    // Random reads by the positions the writer returned (the index's).
    let reader = LogReader::open(&f.dir).unwrap();
    for (i, (&p, r)) in f.positions.iter().zip(&f.records).enumerate() {
        assert_eq!(&reader.read_at(p).unwrap(), r, "record {i} at {p}");
    }
    // Scans see the same records at the same positions, and nothing else.
    let (recs, damage) = scan_all(&f.dir);
    assert!(damage.is_empty(), "{damage:?}");
    let got: Vec<(Position, Record)> = f.positions.iter().copied().zip(f.records.clone()).collect();
    assert_eq!(recs, got);
    // Scanning from a position inside a compressed segment.
    let mid = f.positions[37];
    let from: Vec<u64> = reader
        .scan(mid)
        .map(|i| match i.unwrap() {
            ccvault_log::ScanItem::Record(_, r) => r.offset,
            ccvault_log::ScanItem::Damage(d) => panic!("{d}"),
        })
        .collect();
    assert_eq!(from, (37..200).collect::<Vec<u64>>());

    let report = verify(&f.dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert_eq!(report.records, 200);
    assert_eq!(report.next_offset, 200);
    assert_eq!(report.bytes, reader.total_bytes());

    // The writer reopens, appends, and compacts what it sealed since.
    let (mut log, rec) = Log::open(&f.dir, opts(16 << 10), None).unwrap();
    assert_eq!(rec.next_offset, 200);
    write_records(&mut log, 200, 400, 600);
    let done = log.compact_sealed(SMALL).unwrap();
    assert!(!done.is_empty());
    drop(log);
    let (recs, damage) = scan_all(&f.dir);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(recs.len(), 400);
    for (i, (_, r)) in recs.iter().enumerate() {
        assert!(
            TestRec::new(i as u64, 600).matches(i as u64, r),
            "record {i}"
        );
    }
}

#[test]
fn an_existing_log_of_plain_segments_is_read_then_compressed() {
    // An archive written before compression existed: plain sealed segments.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    let positions = write_records(&mut log, 0, 120, 400);
    drop(log);
    assert!(names(&dir).iter().all(|n| n.ends_with(".seg")));
    let reader = LogReader::open(&dir).unwrap();
    let before: Vec<Record> = positions
        .iter()
        .map(|&p| reader.read_at(p).unwrap())
        .collect();

    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    log.compact_sealed(Compression::default()).unwrap();
    drop(log);
    let n = names(&dir);
    assert_eq!(n.iter().filter(|n| n.ends_with(".seg")).count(), 1, "{n:?}");
    assert!(
        n.iter().filter(|n| n.ends_with(".segz")).count() >= 2,
        "{n:?}"
    );
    // A reader opened before still reads (its files, or the new ones).
    for (&p, r) in positions.iter().zip(&before) {
        assert_eq!(&reader.read_at(p).unwrap(), r);
        assert_eq!(&LogReader::open(&dir).unwrap().read_at(p).unwrap(), r);
    }
    assert!(verify(&dir).unwrap().is_clean());
}

#[test]
fn a_damaged_sealed_segment_stays_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    let positions = write_records(&mut log, 0, 80, 400);
    drop(log);
    let seg = positions[0].segment;
    let path = dir.join(segment_file_name(seg));
    let mut bytes = fs::read(&path).unwrap();
    let at = positions[1].pos as usize + 20;
    bytes[at] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    let done = log.compact_sealed(SMALL).unwrap();
    assert_eq!(done[0], (seg, Compacted::Damaged));
    assert!(done[1..]
        .iter()
        .all(|(_, c)| matches!(c, Compacted::Done { .. })));
    drop(log);
    assert!(path.exists());
    let report = verify(&dir).unwrap();
    assert_eq!(report.damage[0].reason, DamageReason::CrcMismatch);
    for d in &report.damage {
        assert_eq!(d.file_name(), segment_file_name(seg), "{d}");
    }
}

#[test]
fn flipped_bytes_in_a_block_lose_only_that_block() {
    let f = compressed(200);
    let (seg, path, original) = f.segz(1);
    let bl = blocks(&original);
    assert!(bl.len() >= 3, "{bl:?}");
    let (file_pos, raw_pos, raw_len) = bl[1];

    // Flip bytes in the compressed data, in the block header, then in both.
    for flip in [file_pos + 40, file_pos + 5, file_pos + 2] {
        let mut bytes = original.clone();
        bytes[flip as usize] ^= 0x10;
        fs::write(&path, &bytes).unwrap();

        let report = verify(&f.dir).unwrap();
        // The lost block, and the gap in offsets it leaves.
        let [d, gap] = &report.damage[..] else {
            panic!("flip at {flip}: {:?}", report.damage);
        };
        assert!(
            matches!(gap.reason, DamageReason::OffsetGap { .. }),
            "{gap}"
        );
        assert_eq!(d.file_name(), segz_file_name(seg));
        assert_eq!((d.pos, d.len_skipped), (raw_pos, raw_len), "{d}");
        assert!(
            matches!(d.reason, DamageReason::Compressed { file_pos: p, .. } if p == file_pos),
            "{d}"
        );
        assert!(d.to_string().contains(&segz_file_name(seg)), "{d}");

        // Everything outside the block is served, by scan and by position.
        let reader = LogReader::open(&f.dir).unwrap();
        let (recs, _) = scan_all(&f.dir);
        let mut lost = 0;
        for (i, (&p, r)) in f.positions.iter().zip(&f.records).enumerate() {
            let inside =
                p.segment == seg && (raw_pos..raw_pos + raw_len).contains(&u64::from(p.pos));
            let read = reader.read_at(p);
            if inside {
                lost += 1;
                let e = read.unwrap_err().to_string();
                assert!(
                    e.contains(&segz_file_name(seg)) && e.contains(&format!("byte {file_pos}")),
                    "{e}"
                );
            } else {
                assert_eq!(&read.unwrap(), r, "record {i}");
                assert!(
                    recs.iter().any(|(q, s)| *q == p && s == r),
                    "record {i} not scanned"
                );
            }
        }
        assert!(lost > 0);
        assert_eq!(recs.len() + lost, f.records.len());
        assert_eq!(report.records as usize, recs.len());
    }
}

#[test]
fn a_damaged_block_index_or_header_loses_nothing_and_is_written_again() {
    let f = compressed(200);
    let (seg, path, original) = f.segz(0);
    let index = u64_at(&original, 32) as usize;
    // A byte of the block index, of its CRC, of the header (its base, its
    // index position, the copy of the `.seg` header, reserved bytes), and
    // the header's CRC.
    for flip in [index + 3, original.len() - 1, 14, 33, 45, 73, 78] {
        let mut bytes = original.clone();
        bytes[flip] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let report = verify(&f.dir).unwrap();
        assert_eq!(report.records, 200, "flip at {flip}: {:?}", report.damage);
        // One place, the part that is damaged, which loses nothing: not
        // also the `.seg` header the `.segz` header holds a copy of.
        let [d] = &report.damage[..] else {
            panic!("flip at {flip}: {:?}", report.damage);
        };
        assert_eq!(d.file_name(), segz_file_name(seg), "{d}");
        assert_eq!(d.len_skipped, 0, "{d}");
        assert!(
            matches!(
                d.reason,
                DamageReason::Compressed {
                    rewritable: true,
                    ..
                }
            ),
            "flip at {flip}: {d}"
        );
        assert!(
            d.to_string()
                .contains("`ccvault reindex` writes the header and block index again"),
            "{d}"
        );
        let reader = LogReader::open(&f.dir).unwrap();
        for (&p, r) in f.positions.iter().zip(&f.records) {
            assert_eq!(&reader.read_at(p).unwrap(), r, "flip at {flip}: {p}");
        }
        drop(reader);

        // A writer writes the container again: the file it had before the
        // flip, byte for byte (the same frames, compressed alike).
        let (mut log, _) = Log::open(&f.dir, small_compression(), None).unwrap();
        let rewritten = log.restore_headers().unwrap();
        assert_eq!(rewritten.len(), 1, "flip at {flip}: {rewritten:?}");
        assert_eq!((rewritten[0].base, rewritten[0].compressed), (seg, true));
        assert!(
            log.restore_headers().unwrap().is_empty(),
            "flip at {flip}: twice"
        );
        drop(log);
        assert!(
            fs::read(&path).unwrap() == original,
            "flip at {flip}: other bytes"
        );
        assert!(verify(&f.dir).unwrap().is_clean(), "flip at {flip}");
    }
}

/// The log's options with the compression the fixture used.
fn small_compression() -> ccvault_log::LogOptions {
    ccvault_log::LogOptions {
        compression: Some(SMALL),
        ..opts(16 << 10)
    }
}

#[test]
fn a_damaged_header_beside_a_lost_block_is_not_written_again() {
    // With the header damaged, a lost block is seen by the walk's gap or,
    // the last one, only by the block index that ends the file: a
    // container written again from the blocks found would make that loss
    // silent. So nothing is rewritten, `verify` names the lost records in
    // this file and does not offer the rewrite, and goes on naming them.
    let f = compressed(200);
    let (seg, path, original) = f.segz(0);
    let layout = blocks(&original);
    assert!(layout.len() >= 3, "{layout:?}");
    let (first, _, _) = layout[0];
    let (middle, _, _) = layout[layout.len() / 2];
    let (last, _, _) = layout[layout.len() - 1];
    // A block's magic (the walk misses it) or a byte of its compressed
    // data (found, but its CRC fails).
    for (lost_block, at) in [(first, 1), (middle, 1), (last, 1), (middle, 40), (last, 40)] {
        let mut bytes = original.clone();
        bytes[78] ^= 0x01; // the header's CRC
        bytes[(lost_block + at) as usize] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let case = format!("block at {lost_block}, byte {at}");
        let before = verify(&f.dir).unwrap();
        assert!(
            before.damage.iter().all(|d| !matches!(
                d.reason,
                DamageReason::Compressed {
                    rewritable: true,
                    ..
                }
            ) && !d.to_string().contains("ccvault reindex")),
            "{case}: {:?}",
            before.damage
        );
        assert!(
            before
                .damage
                .iter()
                .any(|d| d.segment == seg && d.len_skipped > 0),
            "{case}: the lost block is not said in its own file: {:?}",
            before.damage
        );

        let (mut log, _) = Log::open(&f.dir, small_compression(), None).unwrap();
        assert!(log.restore_headers().unwrap().is_empty(), "{case}");
        drop(log);
        assert!(fs::read(&path).unwrap() == bytes, "{case}: rewritten");
        let after = verify(&f.dir).unwrap();
        assert_eq!(after.records, before.records, "{case}");
        assert!(after.records < 200, "{case}: {}", after.records);
    }
}

#[test]
fn a_header_whose_fields_lie_with_a_valid_crc_is_not_written_again() {
    // FORMAT §1.7: a header's lengths are claims even when its CRC holds.
    // One that says the segment ends before its last block must not have
    // the container written again without that block.
    let f = compressed(200);
    let (_, path, original) = f.segz(0);
    let layout = blocks(&original);
    let (_, last_raw_pos, _) = layout[layout.len() - 1];
    let index_pos = u64_at(&original, 32);
    let shorter = |seg_len: u64, index_at: u64| {
        let mut bytes = original.clone();
        bytes[20..28].copy_from_slice(&seg_len.to_le_bytes());
        bytes[32..40].copy_from_slice(&index_at.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..76]);
        bytes[76..80].copy_from_slice(&crc.to_le_bytes());
        bytes
    };
    let (last_file_pos, _, _) = layout[layout.len() - 1];
    // Its length alone, and its length and index position together (as if
    // the file ended before the last block).
    for bytes in [
        shorter(last_raw_pos, index_pos),
        shorter(last_raw_pos, last_file_pos),
    ] {
        fs::write(&path, &bytes).unwrap();
        let (mut log, _) = Log::open(&f.dir, small_compression(), None).unwrap();
        assert!(log.restore_headers().unwrap().is_empty());
        drop(log);
        assert!(fs::read(&path).unwrap() == bytes, "rewritten");
    }
    fs::write(&path, &original).unwrap();
    assert!(verify(&f.dir).unwrap().is_clean());
}

#[test]
fn every_byte_flip_of_a_compressed_segment_is_caught() {
    // Each byte of a small .segz flipped in turn: verify notices, scans and
    // reads never panic and never serve a record that differs.
    let f = compressed(150);
    let (_, path, original) = f.segz(1);
    let step = (original.len() / 200).max(1);
    for at in (0..original.len()).step_by(step) {
        let mut bytes = original.clone();
        bytes[at] ^= 0x80;
        fs::write(&path, &bytes).unwrap();
        let report = verify(&f.dir).unwrap();
        assert!(!report.is_clean(), "flip at {at} went unnoticed");
        let (recs, _) = scan_all(&f.dir);
        for (p, r) in &recs {
            let i = r.offset as usize;
            assert_eq!((f.positions[i], &f.records[i]), (*p, r), "flip at {at}");
        }
        let reader = LogReader::open(&f.dir).unwrap();
        for (&p, r) in f.positions.iter().zip(&f.records) {
            if let Ok(got) = reader.read_at(p) {
                assert_eq!(&got, r, "flip at {at}");
            }
        }
    }
    fs::write(&path, &original).unwrap();
    assert!(verify(&f.dir).unwrap().is_clean());
}

#[test]
fn opening_puts_right_what_a_crash_left_mid_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    write_records(&mut log, 0, 100, 400);
    drop(log);
    let plain: Vec<(String, Vec<u8>)> = names(&dir)
        .into_iter()
        .map(|n| (n.clone(), fs::read(dir.join(&n)).unwrap()))
        .collect();
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    log.compact_sealed(SMALL).unwrap();
    drop(log);
    let (seg_name, seg_bytes) = &plain[0];
    let segz_name = format!("{seg_name}z");
    let segz_bytes = fs::read(dir.join(&segz_name)).unwrap();

    // A torn temporary file: deleted.
    let tmp_file = dir.join(format!("{segz_name}.tmp"));
    fs::write(&tmp_file, &segz_bytes[..segz_bytes.len() / 2]).unwrap();
    // Both files of a segment (crash before the .seg was removed), the
    // .segz whole: the .seg goes.
    fs::write(dir.join(seg_name), seg_bytes).unwrap();
    drop(Log::open(&dir, opts(16 << 10), None).unwrap());
    assert!(!tmp_file.exists());
    assert!(!dir.join(seg_name).exists());
    assert!(dir.join(&segz_name).exists());

    // Both, the .segz damaged: the .segz goes, the .seg stays.
    fs::write(dir.join(seg_name), seg_bytes).unwrap();
    let mut bad = segz_bytes.clone();
    bad[blocks(&segz_bytes)[0].0 as usize + 40] ^= 1;
    fs::write(dir.join(&segz_name), &bad).unwrap();
    drop(Log::open(&dir, opts(16 << 10), None).unwrap());
    assert!(dir.join(seg_name).exists());
    assert!(!dir.join(&segz_name).exists());
    let report = verify(&dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert_eq!(report.records, 100);
}

/// A log that an older writer, without compression, left as `n` records
/// of up to 400 bytes in plain segments of 16 KiB; and the number of
/// segments.
fn left_plain(n: u64) -> (tempfile::TempDir, PathBuf, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    write_records(&mut log, 0, n, 400);
    drop(log);
    let plain = names(&dir);
    assert!(plain.iter().all(|n| n.ends_with(".seg")), "{plain:?}");
    (tmp, dir, plain.len())
}

/// The options of a writer that compresses, in segments of 16 KiB.
fn compressing() -> ccvault_log::LogOptions {
    ccvault_log::LogOptions {
        compression: Some(SMALL),
        ..opts(16 << 10)
    }
}

/// The log of `dir` holds exactly the records `0..n` of up to 400 bytes,
/// undamaged, and verifies clean.
fn assert_holds_records(dir: &Path, n: u64) {
    let (recs, damage) = scan_all(dir);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(recs.len() as u64, n);
    for (i, (_, r)) in recs.iter().enumerate() {
        assert!(
            TestRec::new(i as u64, 400).matches(i as u64, r),
            "record {i}"
        );
    }
    assert!(verify(dir).unwrap().is_clean());
}

#[test]
fn the_writer_compresses_what_it_seals_and_what_an_older_writer_left() {
    let (_tmp, dir, plain) = left_plain(200);
    assert!(plain >= 3, "{plain} segments");

    // The default options compress in the background: at open, the sealed
    // segments left as `.seg`; then each segment once sealed.
    assert!(ccvault_log::LogOptions::default().compression.is_some());
    let (mut log, _) = Log::open(&dir, compressing(), None).unwrap();
    write_records(&mut log, 200, 500, 400);
    let last = *log.reader().segments().last().unwrap();
    // The writer, still open, compresses every sealed segment by itself.
    let all_compressed = || {
        names(&dir)
            .iter()
            .all(|n| n.ends_with(".segz") == (*n != segment_file_name(last)))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !all_compressed() {
        assert!(
            std::time::Instant::now() < deadline,
            "not compressed within a minute: {:?}",
            names(&dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(log.compression_failure().is_none());
    drop(log);
    assert!(LogReader::open(&dir).unwrap().segments().len() >= 6);
    assert!(all_compressed(), "{:?}", names(&dir));
    assert_holds_records(&dir, 500);
}

#[test]
fn closing_the_writer_leaves_what_it_did_not_compress_to_the_next_one() {
    let (_tmp, dir, plain) = left_plain(3000);
    assert!(plain >= 40, "{plain} segments");
    let options = compressing();
    // Opened and closed at once: the compressor had every sealed segment
    // queued and is stopped at the next block; whatever it did not finish is
    // a whole `.seg`, never a `.segz.tmp` or a pair.
    let (log, _) = Log::open(&dir, options, None).unwrap();
    assert_eq!(log.close().unwrap(), 3000);
    let after_close = names(&dir);
    // Forty compressions, each with three fsyncs, cannot all be done by
    // the time an immediate close returns: closing did not wait for them.
    assert!(
        after_close.iter().filter(|n| n.ends_with(".seg")).count() > 1,
        "{after_close:?}"
    );
    for name in &after_close {
        assert!(name.ends_with(".seg") || name.ends_with(".segz"), "{name}");
    }
    let bases = |v: &[String]| {
        let mut b: Vec<String> = v.iter().map(|n| n[..20].to_owned()).collect();
        b.dedup();
        b
    };
    assert_eq!(
        bases(&after_close).len(),
        after_close.len(),
        "{after_close:?}"
    );
    let (recs, damage) = scan_all(&dir);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(recs.len(), 3000);

    // The next writer compresses the rest while it runs.
    let (log, _) = Log::open(&dir, options, None).unwrap();
    let last = *log.reader().segments().last().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while names(&dir)
        .iter()
        .any(|n| n.ends_with(".seg") && *n != segment_file_name(last))
    {
        assert!(std::time::Instant::now() < deadline, "{:?}", names(&dir));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(log);
    assert_eq!(bases(&names(&dir)).len(), plain);
    assert!(verify(&dir).unwrap().is_clean());
}

/// A writer that ends with its work waits for the compressor
/// (`wait_compressed`): when it returns, every sealed segment, those an
/// older writer left and those sealed in this session alike, is a `.segz`.
#[test]
fn waiting_for_compression_leaves_every_sealed_segment_compressed() {
    let (_tmp, dir, plain) = left_plain(3000);
    assert!(plain >= 40, "{plain} segments");
    let (mut log, _) = Log::open(&dir, compressing(), None).unwrap();
    write_records(&mut log, 3000, 3600, 400);
    assert_eq!(log.wait_compressed().unwrap(), 3600);
    let last = segment_file_name(*log.reader().segments().last().unwrap());
    let now = names(&dir);
    assert!(now.len() > plain, "{now:?}");
    for name in &now {
        assert_eq!(name.ends_with(".segz"), *name != last, "{now:?}");
    }
    assert!(log.compression_failure().is_none());
    // The log goes on as before.
    write_records(&mut log, 3600, 3700, 400);
    drop(log);
    assert_holds_records(&dir, 3700);
}

#[test]
fn a_block_that_does_not_decompress_is_reported_where_the_scan_meets_it() {
    // A block whose CRCs hold but whose data zstd refuses is found only by
    // decompressing it, which a scan does as it reaches the block: it is
    // still reported in its place, between the records before and after it,
    // and verify still finds it.
    let f = compressed(200);
    let (seg, path, mut bytes) = f.segz(1);
    let bl = blocks(&bytes);
    assert!(bl.len() >= 3, "{bl:?}");
    let (file_pos, raw_pos, raw_len) = bl[1];
    let at = file_pos as usize;
    let comp_len = u32_at(&bytes, at + 12) as usize;
    for b in &mut bytes[at + 32..at + 32 + comp_len] {
        *b = 0xA5;
    }
    let data_crc = crc32fast::hash(&bytes[at + 32..at + 32 + comp_len]);
    bytes[at + 24..at + 28].copy_from_slice(&data_crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[at..at + 28]);
    bytes[at + 28..at + 32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();

    let report = verify(&f.dir).unwrap();
    let [d, gap] = &report.damage[..] else {
        panic!("{:?}", report.damage);
    };
    assert!(
        matches!(gap.reason, DamageReason::OffsetGap { .. }),
        "{gap}"
    );
    assert_eq!((d.pos, d.len_skipped), (raw_pos, raw_len), "{d}");
    assert!(
        matches!(d.reason, DamageReason::Compressed { file_pos: p, what, .. } if p == file_pos && what.contains("decompress")),
        "{d}"
    );

    // In scan order: this segment's records before the block, the block's
    // damage, then the records after it.
    let reader = LogReader::open(&f.dir).unwrap();
    let mut items = Vec::new();
    for item in reader.scan(Position::START) {
        items.push(item.unwrap());
    }
    let k = items
        .iter()
        .position(|i| matches!(i, ScanItem::Damage(x) if x == d))
        .unwrap_or_else(|| panic!("not scanned: {d}"));
    for (j, item) in items.iter().enumerate() {
        if let ScanItem::Record(p, r) = item {
            assert_eq!(f.records[r.offset as usize], *r);
            if p.segment == seg {
                let before = u64::from(p.pos) < raw_pos;
                assert_eq!(j < k, before, "record at {p} on the wrong side of {d}");
                assert!(!(raw_pos..raw_pos + raw_len).contains(&u64::from(p.pos)));
            }
        }
    }
    let lost = f
        .positions
        .iter()
        .filter(|p| p.segment == seg && (raw_pos..raw_pos + raw_len).contains(&u64::from(p.pos)))
        .count();
    assert!(lost > 0);
    let scanned = items
        .iter()
        .filter(|i| matches!(i, ScanItem::Record(..)))
        .count();
    assert_eq!(scanned + lost, f.records.len());
}

#[test]
fn the_writers_count_of_compressed_segments_sizes_the_log_as_a_listing_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = compressing();
    // An older writer's plain segments, then a writer that compresses
    // them (those queued at open, then each one it seals).
    let (mut log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    write_records(&mut log, 0, 300, 400);
    drop(log);
    let plain: Vec<(String, Vec<u8>)> = names(&dir)
        .into_iter()
        .map(|n| (n.clone(), fs::read(dir.join(&n)).unwrap()))
        .collect();
    let (mut log, _) = Log::open(&dir, options, None).unwrap();
    write_records(&mut log, 300, 600, 400);
    log.compact_sealed(SMALL).unwrap();
    let packed = log.packed_segments();
    drop(log);

    let fresh = LogReader::open(&dir).unwrap().footprint();
    let segz: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".segz"))
        .collect();
    assert!(segz.len() >= 5, "{segz:?}");
    assert_eq!(packed.count, segz.len() as u64);
    assert_eq!(
        packed.bytes,
        segz.iter()
            .map(|n| fs::metadata(dir.join(n)).unwrap().len())
            .sum::<u64>()
    );
    // Sized by the count: the same as a listing with every file sized.
    let reader = LogReader::open(&dir).unwrap();
    assert_eq!(reader.footprint_listed(Some(packed)), fresh);
    assert_eq!(reader.footprint_listed(None), fresh);
    // The count's bytes are what is used (no `stat` of those files) ...
    let off_by_one = ccvault_log::PackedSegments {
        bytes: packed.bytes + 1,
        ..packed
    };
    assert_eq!(
        reader.footprint_listed(Some(off_by_one)),
        (fresh.0, fresh.1 + 1)
    );
    // ... for the files whose bases it adds up to; a count that matches
    // no set of listed files is not used.
    let elsewhere = ccvault_log::PackedSegments {
        bases: packed.bases ^ 1,
        bytes: 1,
        ..packed
    };
    assert_eq!(reader.footprint_listed(Some(elsewhere)), fresh);
    let too_many = ccvault_log::PackedSegments {
        count: packed.count + 1,
        bytes: 1,
        ..packed
    };
    assert_eq!(reader.footprint_listed(Some(too_many)), fresh);

    // A count taken before later compressions (an index committed before
    // them): the files compressed since are sized one by one.
    let first = names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".segz"))
        .min()
        .unwrap();
    let base: u64 = first[..20].parse().unwrap();
    let mut older = ccvault_log::PackedSegments::default();
    older.add(base, segz_len(&dir, &first));
    assert_eq!(reader.footprint_listed(Some(older)), fresh);

    // A crash between a compression's rename and its removal of the
    // `.seg`: both files listed, the `.seg` counted (as `footprint` does).
    let (first_seg, first_plain) = &plain[0];
    assert_eq!(*first_seg, segment_file_name(base));
    fs::write(dir.join(first_seg), first_plain).unwrap();
    let reader = LogReader::open(&dir).unwrap();
    let both = reader.footprint();
    assert_eq!(
        both,
        (
            fresh.0,
            fresh.1 - segz_len(&dir, &first) + first_plain.len() as u64
        )
    );
    assert_eq!(reader.footprint_listed(Some(packed)), both);
    // The next writer keeps the whole `.segz` and counts what it finds.
    let (log, _) = Log::open(&dir, opts(16 << 10), None).unwrap();
    assert_eq!(log.packed_segments(), packed);
    drop(log);
    let reader = LogReader::open(&dir).unwrap();
    assert_eq!(reader.footprint_listed(Some(packed)), fresh);
}

fn segz_len(dir: &Path, name: &str) -> u64 {
    fs::metadata(dir.join(name)).unwrap().len()
}
