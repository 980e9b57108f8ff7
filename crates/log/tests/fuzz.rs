//! Fuzz targets for the record decoder and the segment scanner, on the
//! simulated disk (`common/sim.rs`, so a case costs no file system calls):
//! arbitrary bytes and mutations of the seeds in `fuzz/record/` (record
//! bodies) and `fuzz/segment/` (segment files written by the real writer),
//! every seed replayed first.
//!
//! What must hold for any bytes: nothing panics; a record is served only if
//! it is valid, and then random access and scans agree on it; an error names
//! the file and byte; `verify` counts what scans serve; recovery keeps every
//! record a scan served, and the log takes new records after it.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use ccvault_fuzz::{config, corpus, inputs};
use ccvault_log::format::{FRAME_HEADER_LEN, RECORD_MAGIC};
use ccvault_log::{
    segment_file_name, verify_with, Log, LogError, LogOptions, LogReader, Position, Record,
    ScanItem, HEADER_LEN,
};
use common::sim::SimDisk;
use common::TestRec;
use proptest::prelude::*;

const DIR: &str = "/fuzz/log";

fn seeds(target: &str) -> Vec<Vec<u8>> {
    corpus(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(target),
    )
    .into_iter()
    .map(|(_, bytes)| bytes)
    .collect()
}

fn seg_path(base: u64) -> PathBuf {
    Path::new(DIR).join(segment_file_name(base))
}

/// A disk holding `files` as the segments of the log at `DIR`.
fn disk_with(files: &[(u64, Vec<u8>)]) -> SimDisk {
    let disk = SimDisk::new(1, true);
    disk.put_dir(Path::new(DIR));
    for (base, bytes) in files {
        disk.put_file(&seg_path(*base), bytes.clone());
    }
    disk
}

/// The header of segment 0, as the writer makes it.
fn header() -> Vec<u8> {
    let disk = disk_with(&[]);
    drop(Log::open_with(disk.vfs(), Path::new(DIR), LogOptions::default(), None).unwrap());
    disk.read_file(&seg_path(0)).unwrap()
}

/// The only errors a read may end with on any bytes: a record refused with
/// its file and byte, or a format version this build does not read.
fn expected_error(e: &LogError) -> bool {
    matches!(
        e,
        LogError::Corrupt { .. }
            | LogError::UnsupportedVersion { .. }
            | LogError::NoRecord { .. }
            // A well-formed header of another segment: a writer refuses it.
            | LogError::Misnamed { .. }
    )
}

/// Records served by a full scan, or `None` when the scan ended with an
/// (expected) error.
fn scan(disk: &SimDisk) -> Option<Vec<(Position, Record)>> {
    let reader = LogReader::open_with(disk.vfs(), Path::new(DIR)).unwrap();
    let mut out = Vec::new();
    for item in reader.scan(Position::START) {
        match item {
            Ok(ScanItem::Record(at, r)) => out.push((at, r)),
            Ok(ScanItem::Damage(_)) => {}
            Err(e) => {
                assert!(expected_error(&e), "scan failed unexpectedly: {e}");
                return None;
            }
        }
    }
    Some(out)
}

/// The record decoder: `body` framed with a correct CRC, so that it gets
/// past every check before the decoder.
fn record_target(body: &[u8]) {
    let mut seg = header();
    seg.extend_from_slice(&RECORD_MAGIC);
    seg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&(body.len() as u32).to_le_bytes());
    crc.update(body);
    seg.extend_from_slice(&crc.finalize().to_le_bytes());
    seg.extend_from_slice(body);
    let disk = disk_with(&[(0, seg.clone())]);
    let reader = LogReader::open_with(disk.vfs(), Path::new(DIR)).unwrap();
    let at = Position {
        segment: 0,
        pos: HEADER_LEN,
    };
    match reader.read_at(at) {
        Ok(r) => {
            assert_eq!(
                r.as_ref().frame_len(),
                (FRAME_HEADER_LEN as usize + body.len()) as u64,
                "a decoded record covers its whole body"
            );
            assert_eq!(scan(&disk).unwrap(), vec![(at, r.clone())]);
            // Encoding it again gives the same bytes (offset aside).
            let again = disk_with(&[]);
            let (mut log, _) =
                Log::open_with(again.vfs(), Path::new(DIR), LogOptions::default(), None).unwrap();
            let rec = TestRec::from_record(&r);
            log.append(&rec.as_new()).unwrap();
            log.flush().unwrap();
            drop(log);
            let written = again.read_file(&seg_path(0)).unwrap();
            let body_at = (HEADER_LEN + FRAME_HEADER_LEN) as usize;
            assert_eq!(
                written.get(body_at + 8..),
                body.get(8..),
                "re-encoding differs"
            );
        }
        Err(e) => {
            assert!(
                matches!(&e, LogError::Corrupt { pos, .. } if *pos == u64::from(HEADER_LEN)),
                "a bad record is refused with its file and byte: {e}"
            );
            let served = scan(&disk).unwrap();
            assert!(served.is_empty(), "a scan served a record read_at refused");
        }
    }
}

/// The segment scanner, random access, verification and recovery on any
/// segment file: alone (the last segment) or followed by another.
fn segment_target(bytes: &[u8], sealed: bool) {
    let mut files = vec![(0, bytes.to_vec())];
    if sealed {
        // A sealed segment: its invalid end is damage, not a torn tail. The
        // segment after it holds just its header (of its own base: a header
        // of another base is a misnamed file, which a writer refuses).
        let next = ccvault_log::format::encode_header_version(1 << 40, ccvault_log::FORMAT_VERSION);
        files.push((1 << 40, next.to_vec()));
    }
    let disk = disk_with(&files);
    let Some(before) = scan(&disk) else { return };
    let reader = LogReader::open_with(disk.vfs(), Path::new(DIR)).unwrap();
    for (at, r) in &before {
        assert_eq!(
            &reader.read_at(*at).unwrap(),
            r,
            "read_at and scan disagree at {at}"
        );
    }
    match verify_with(disk.vfs().as_ref(), Path::new(DIR)) {
        Ok(report) => assert_eq!(
            report.records,
            before.len() as u64,
            "verify and scan disagree"
        ),
        Err(e) => assert!(expected_error(&e), "verify failed unexpectedly: {e}"),
    }
    let (mut log, recovery) =
        match Log::open_with(disk.vfs(), Path::new(DIR), LogOptions::default(), None) {
            Ok(opened) => opened,
            Err(e) => {
                assert!(expected_error(&e), "recovery failed unexpectedly: {e}");
                return;
            }
        };
    let kept = scan(&disk).unwrap();
    assert_eq!(kept, before, "recovery changed what is served");
    let rec = TestRec::new(7, 30);
    let (offset, at) = match log.append(&rec.as_new()) {
        Ok(appended) => appended,
        Err(LogError::OffsetsExhausted { .. }) if recovery.next_offset == u64::MAX => return,
        Err(e) => panic!("no append after recovery: {e}"),
    };
    assert_eq!(offset, recovery.next_offset);
    log.flush().unwrap();
    drop(log);
    let after = scan(&disk).unwrap();
    assert_eq!(after.len(), before.len() + 1);
    let (last_at, last) = after.last().unwrap();
    assert_eq!(*last_at, at);
    assert!(rec.matches(offset, last));
}

#[test]
fn record_decoder_corpus() {
    for body in seeds("record") {
        record_target(&body);
    }
}

#[test]
fn segment_scanner_corpus() {
    for bytes in seeds("segment") {
        segment_target(&bytes, false);
        segment_target(&bytes, true);
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn record_decoder_fuzz(body in inputs(seeds("record"), 128)) {
        record_target(&body);
    }

    #[test]
    fn segment_scanner_fuzz(bytes in inputs(seeds("segment"), 600), sealed in any::<bool>()) {
        segment_target(&bytes, sealed);
    }
}
