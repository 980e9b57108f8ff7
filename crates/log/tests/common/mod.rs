#![allow(dead_code)]
// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

mod rng;
pub mod sim;

pub use rng::Rng;

use ccvault_log::{
    FsyncPolicy, Log, LogOptions, LogReader, NewRecord, Position, Record, RecordKind, ScanItem,
    SourceKind, Tally,
};

/// A test record: the library's owned [`Record`], its offset left 0 (the log
/// assigns offsets; `matches` is told the one expected).
#[derive(Clone, Debug)]
pub struct TestRec(pub Record);

impl std::ops::Deref for TestRec {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.0
    }
}

impl TestRec {
    /// Record `i` of the test workloads. Every seventh one (but never a
    /// quarantined one) is a tally, so that every workload (round trips,
    /// power loss, corruption, recovery) carries both kinds of record.
    pub fn new(i: u64, max_payload: u64) -> TestRec {
        if Self::is_tally(i) {
            return TestRec(Record {
                kind: RecordKind::Tally,
                offset: 0,
                ingest_ms: 1_700_000_000_000 + i as i64,
                source_kind: SourceKind::File,
                source: format!("/data/events-{}.jsonl", i % 7),
                line: i,
                payload: Tally {
                    duplicates: i,
                    control: i / 2,
                }
                .encode()
                .to_vec(),
                ..Record::default()
            });
        }
        let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let len = rng.below(max_payload + 1) as usize;
        let payload: Vec<u8> = if matches!(i % 5, 0) {
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            let s = format!("{{\"Interaction\":{{\"n\":{i},\"pad\":\"");
            let mut p = s.into_bytes();
            while p.len() < len {
                p.push(b'a' + (rng.below(26) as u8));
            }
            p.extend_from_slice(b"\"}}");
            p
        };
        TestRec(Record {
            kind: RecordKind::Message,
            offset: 0,
            ingest_ms: 1_700_000_000_000 + i as i64,
            quarantined: matches!(i % 5, 0),
            source_kind: [
                SourceKind::Unknown,
                SourceKind::File,
                SourceKind::Stdin,
                SourceKind::Mqtt,
                SourceKind::Pulsar,
                SourceKind::Other,
            ][(i % 6) as usize],
            source: if matches!(i % 3, 0) {
                String::new()
            } else {
                format!("/data/events-{}.jsonl", i % 7)
            },
            line: i % 4 * i,
            message_id: if matches!(i % 2, 0) {
                format!("m{i}")
            } else {
                String::new()
            },
            publish_time: "2024-05-01T12:00:00.123Z".into(),
            quarantine_reason: if matches!(i % 5, 0) {
                "not valid JSON".into()
            } else {
                String::new()
            },
            payload,
        })
    }

    /// Whether record `i` of the workloads is a tally.
    pub fn is_tally(i: u64) -> bool {
        i % 7 == 3 && !i.is_multiple_of(5)
    }

    /// The fields of a record read back, to append again.
    pub fn from_record(r: &Record) -> TestRec {
        TestRec(Record {
            offset: 0,
            ..r.clone()
        })
    }

    pub fn as_new(&self) -> NewRecord<'_> {
        NewRecord {
            kind: self.kind,
            ingest_ms: self.ingest_ms,
            quarantined: self.quarantined,
            source_kind: self.source_kind,
            source: &self.source,
            line: self.line,
            message_id: &self.message_id,
            publish_time: &self.publish_time,
            quarantine_reason: &self.quarantine_reason,
            payload: &self.payload,
        }
    }

    /// Whether `r` is this record, read back at `offset`.
    pub fn matches(&self, offset: u64, r: &Record) -> bool {
        *r == Record {
            offset,
            ..self.0.clone()
        }
    }
}

/// Options with sealed segments left as `.seg` (the tests that flip their
/// bytes need them there); `tests/segz.rs` compresses explicitly.
pub fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        fsync: FsyncPolicy::Batch,
        compression: None,
        ..LogOptions::default()
    }
}

/// Writes records `from..to` (flushing at the end) and returns their positions.
pub fn write_records(log: &mut Log, from: u64, to: u64, max_payload: u64) -> Vec<Position> {
    let mut out = Vec::new();
    for i in from..to {
        let r = TestRec::new(i, max_payload);
        let (off, pos) = log.append(&r.as_new()).unwrap();
        assert_eq!(off, i);
        out.push(pos);
    }
    assert_eq!(log.flush().unwrap(), to);
    out
}

/// Scans the whole log; returns records and damage.
pub fn scan_all(dir: &Path) -> (Vec<(Position, Record)>, Vec<ccvault_log::Damage>) {
    let reader = LogReader::open(dir).unwrap();
    let mut recs = Vec::new();
    let mut damage = Vec::new();
    for item in reader.scan(Position::START) {
        match item.unwrap() {
            ScanItem::Record(p, r) => recs.push((p, r)),
            ScanItem::Damage(d) => damage.push(d),
        }
    }
    (recs, damage)
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for f in segment_files(from) {
        fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
}
