//! `ccvault verify`: every CRC of the log, and the index against the log.
//!
//! Guarantees: reads every byte of every segment; damage in one record is
//! reported with its segment file and byte position and never hides the
//! records after it; every visible record must be found by every posting
//! that should name it (by GUID, else by payload hash; and by agent), and
//! the posting tables must hold nothing else.

use std::path::Path;

use ccvault_event::{parse_event, Keys};
use ccvault_index::PostingKind;
use ccvault_log::{verify as verify_log, Position, ScanItem};

use crate::error::Result;
use crate::reader::ArchiveReader;

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub segments: usize,
    pub records: u64,
    /// Log damage: segment file and position of each damaged record.
    pub damage: Vec<String>,
    /// Disagreements between the index and the log.
    pub index_problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.index_problems.is_empty()
    }
}

pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let reader = ArchiveReader::open(dir)?;
    let log_report = verify_log(&dir.join("log"))?;
    let mut report = VerifyReport {
        segments: log_report.segments,
        records: log_report.records,
        damage: log_report.damage.iter().map(|d| d.to_string()).collect(),
        index_problems: Vec::new(),
    };
    let index = reader.index();
    let visible_end = reader.visible_end();
    let mut problems = Vec::new();
    let mut expect = [0u64; 3];
    let mut quarantined = 0u64;
    let mut seen = 0u64;
    let mut check = |kind: PostingKind, key: &[u8], offset: u64, pos: u32| -> Result<()> {
        match index.posting(kind, key, offset)? {
            Some(p) if p == pos => {}
            Some(p) => problems.push(format!(
                "{kind:?} posting of offset {offset} says position {p}, the log has it at {pos}"
            )),
            None => problems.push(format!("{kind:?} posting of offset {offset} is missing")),
        }
        Ok(())
    };
    for item in reader.log().scan(Position { segment: 0, pos: 0 }) {
        let (at, rec) = match item? {
            ScanItem::Record(at, rec) => (at, rec),
            ScanItem::Damage(_) => continue, // reported by the log verification
        };
        if rec.offset >= visible_end {
            break;
        }
        seen += 1;
        let keys = if rec.quarantined {
            Keys::default()
        } else {
            parse_event(&rec.payload)
                .map(|ev| Keys::of(&ev))
                .unwrap_or_default()
        };
        if rec.quarantined {
            quarantined += 1;
        }
        match &keys.interaction_guid {
            Some(guid) => {
                check(PostingKind::Guid, guid.as_bytes(), rec.offset, at.pos)?;
                expect[0] += 1;
            }
            None => {
                check(PostingKind::Payload, &rec.payload, rec.offset, at.pos)?;
                expect[2] += 1;
            }
        }
        if let Some(agent) = &keys.agent_id {
            check(PostingKind::Agent, agent.as_bytes(), rec.offset, at.pos)?;
            expect[1] += 1;
        }
    }
    for (kind, n) in [
        (PostingKind::Guid, expect[0]),
        (PostingKind::Agent, expect[1]),
        (PostingKind::Payload, expect[2]),
    ] {
        let have = index.posting_count(kind)?;
        if have != n {
            problems.push(format!(
                "{kind:?} postings: the index has {have}, the log's records call for {n}"
            ));
        }
    }
    if index.quarantine_count()? != quarantined {
        problems.push(format!(
            "quarantine entries: the index has {}, the log has {quarantined} quarantined records",
            index.quarantine_count()?
        ));
    }
    let counters = index.counters()?;
    if counters.records != seen {
        problems.push(format!(
            "the index counts {} records below its checkpoint {visible_end}; the log has {seen} readable ones",
            counters.records
        ));
    }
    report.index_problems = problems;
    Ok(report)
}
