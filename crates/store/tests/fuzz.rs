//! Fuzz target for the segments' facts files (docs/FORMAT.md §5). A facts
//! file is derived and checksummed, so flipped bytes on disk only ever meet
//! the CRC-32 (the unit tests in `facts.rs` flip every one). What is fuzzed
//! here is what lies under a checksum that holds, as a writer with a bug
//! would leave it: the decompressed body mutated (or arbitrary), then
//! compressed again and its header's lengths and CRC-32 rewritten.
//!
//! What must hold for any body: nothing panics; the file is refused with a
//! reason, or its cursor, asked for every record of the segment in order,
//! answers each with a fact of that very offset and payload length or with
//! none; continuing the facts (as a writer does at open) and encoding them
//! again never panic either.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ccvault_event::decode_message;
use ccvault_fuzz::{config, inputs};
use ccvault_store::facts::{FactsBuilder, SegmentFacts};
use proptest::prelude::*;

/// The segment every file here is of.
const BASE: u64 = 1_000;

/// Header fields rewritten around a new body (FORMAT §5: 40 bytes).
const HEADER_LEN: usize = 40;
const COUNT_AT: usize = 20;
const RAW_LEN_AT: usize = 24;
const BODY_LEN_AT: usize = 28;
const CRC_AT: usize = 36;

/// The events of the seeds: both families, texts with escapes, a type
/// spelled with an escape (no entry), times of every source.
fn events() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-a-t1","interactionEventTS":1763900000,"msgInfo":{"timestamp":1763900000123}}}"#.to_vec(),
        br#"{"AgentStatusChange":{"agentId":"ag1","statusEventTS":1763900005,"eventTS":1763800000,"newState":3}}"#.to_vec(),
        br#"{"Interaction":{"event":"Interaction\u0043reated","interactionGUID":"int-b-t1"}}"#.to_vec(),
        br#"{"Interaction":{"event":"InteractionAccepted","interactionGUID":"int-\u00e9-t1","agentId":"ag\"2","eventTS":1763900100}}"#.to_vec(),
    ];
    for i in 0..40u64 {
        out.push(
            format!(
                r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{}-t1","agentId":"ag{}","interactionEventTS":{}}}}}"#,
                i / 3,
                i % 5,
                1_763_900_000 + i * 17
            )
            .into_bytes(),
        );
    }
    out
}

/// A segment's records: (offset, payload), with a gap where a quarantined
/// or control record would be.
fn records() -> Vec<(u64, Vec<u8>)> {
    events()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (BASE + i as u64 + u64::from(i > 10), e))
        .collect()
}

/// The facts file the writer makes of `records()`.
fn written() -> Vec<u8> {
    let mut b = FactsBuilder::new(BASE);
    for (offset, payload) in records() {
        if let Ok(keys) = decode_message(&payload).outcome {
            b.push(offset, &payload, &keys);
        }
    }
    b.encode().unwrap()
}

/// The decompressed body of a facts file.
fn body_of(file: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(&file[HEADER_LEN..]).unwrap()
}

/// A file with `file`'s header around `raw` (compressed), its lengths and
/// checksum made to hold, and its entry count `count` when given.
fn rewrap(file: &[u8], raw: &[u8], count: Option<u32>) -> Vec<u8> {
    let body = zstd::bulk::compress(raw, 1).unwrap();
    let mut header = file[..HEADER_LEN].to_vec();
    if let Some(n) = count {
        header[COUNT_AT..COUNT_AT + 4].copy_from_slice(&n.to_le_bytes());
    }
    header[RAW_LEN_AT..RAW_LEN_AT + 4].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    header[BODY_LEN_AT..BODY_LEN_AT + 4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..CRC_AT]);
    crc.update(&body);
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.finalize().to_le_bytes());
    [header, body].concat()
}

/// Everything a reader and a writer do with a facts file, none of which may
/// panic; a fact given is the one asked for.
fn exercise(file: &[u8], records: &[(u64, Vec<u8>)]) {
    let Ok(facts) = SegmentFacts::decode(file, BASE) else {
        return;
    };
    let count = facts.len();
    let mut cursor = facts.into_cursor();
    for (offset, payload) in records {
        if let Some(fact) = cursor.get(*offset, payload.len()) {
            assert_eq!(
                (fact.offset, fact.payload_len),
                (*offset, payload.len() as u64),
                "a fact of another record"
            );
        }
    }
    // Past every record: the cursor reads whatever entries are left.
    if let Some(fact) = cursor.get(u64::MAX, 0) {
        assert_eq!((fact.offset, fact.payload_len), (u64::MAX, 0));
    }
    let _ = (cursor.is_sound(), cursor.mismatched());
    // A writer continues the facts only if every entry is below the log's
    // end, then appends from that end.
    for end in [BASE, BASE + 20, BASE + 1_000_000] {
        let facts = SegmentFacts::decode(file, BASE).unwrap();
        if let Some(mut resumed) = FactsBuilder::resume(facts, end) {
            assert!(resumed.len() <= count);
            let payload = &records[0].1;
            let keys = decode_message(payload).outcome.unwrap();
            resumed.push(end, payload, &keys);
            let again = resumed.encode().unwrap();
            let mut cursor = SegmentFacts::decode(&again, BASE).unwrap().into_cursor();
            assert!(
                cursor.get(end, payload.len()).is_some(),
                "the appended fact"
            );
        }
    }
}

#[test]
fn the_seed_decodes_to_what_the_writer_kept() {
    let file = written();
    let raw = body_of(&file);
    // Rewrapping changes nothing a reader sees.
    let again = rewrap(&file, &raw, None);
    let mut cursor = SegmentFacts::decode(&again, BASE).unwrap().into_cursor();
    let mut found = 0;
    for (offset, payload) in records() {
        if cursor.get(offset, payload.len()).is_some() {
            found += 1;
        }
    }
    assert!(cursor.is_sound());
    // Every event but the one whose type is spelled with an escape.
    assert_eq!(found, events().len() - 1);
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn facts_bodies_under_a_valid_checksum_never_panic(
        raw in inputs(vec![body_of(&written())], 4096),
        count in proptest::option::of(any::<u32>()),
    ) {
        let file = written();
        exercise(&rewrap(&file, &raw, count), &records());
    }
}
