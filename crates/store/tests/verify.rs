//! `verify` finds disagreements between the index and the log, in both
//! directions, and names them.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ccvault_index::{payload_hash, Entry, Index};
use ccvault_store::facts::FACTS_VERSION;
use ccvault_store::{verify, Archive, ArchiveOptions, Incoming, INDEX_VERSION};
use common::{event, incoming};

fn archive_with(n: u64) -> tempfile::TempDir {
    archive_of(n, ArchiveOptions::default())
}

/// An archive of `n` events written with `options`, its writer closed.
fn archive_of(n: u64, options: ArchiveOptions) -> tempfile::TempDir {
    archive_of_lines(&(0..n).map(event).collect::<Vec<_>>(), options)
}

/// An archive of the messages `lines`, its writer closed.
fn archive_of_lines(lines: &[String], options: ArchiveOptions) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut archive, _) = Archive::open(dir.path(), options).unwrap();
    let batch: Vec<Incoming> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| incoming(l, i as u64 + 1))
        .collect();
    archive.append_batch(&batch).unwrap();
    archive.close().unwrap();
    dir
}

/// Adds one posting to the index behind the archive's back.
/// A timed record's entry naming `guid` (and `agent`), for [`tamper`].
fn posting<'a>(
    offset: u64,
    pos: u32,
    payload: &[u8],
    guid: &'a str,
    agent: Option<&'a str>,
) -> Entry<'a> {
    Entry {
        offset,
        pos,
        payload_hash: payload_hash(payload),
        interaction_guid: Some(guid),
        agent_id: agent,
        time_ms: 0,
        timed: true,
        quarantined: false,
        payload_time: None,
    }
}

fn tamper(dir: &std::path::Path, entry: Entry) {
    let index = Index::open(&dir.join("index.redb")).unwrap();
    let mut w = index.begin().unwrap();
    w.add_all(&[entry]).unwrap();
    index.commit(w, None).unwrap();
}

#[test]
fn a_clean_archive_verifies_clean() {
    let dir = archive_with(50);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 50);
}

#[test]
fn a_posting_the_log_does_not_call_for_is_reported() {
    let dir = archive_with(50);
    tamper(dir.path(), posting(10_000, 32, b"ghost", "int-ghost", None));
    let report = verify(dir.path()).unwrap();
    assert!(!report.is_clean());
    let text = report.index_problems.join("\n");
    assert!(
        text.contains("`by_guid` postings: the index has 51, the log's records call for 50"),
        "{text}"
    );
    assert!(text.contains("no record of the log calls for"), "{text}");
}

#[test]
fn a_key_range_narrower_than_its_keys_or_damaged_is_named() {
    // Generation 0's GUID range says its keys all sit at place 1000 (a
    // duplicate of any of them could then be archived twice), or is of
    // another version.
    let mut narrow = vec![1u8, 0];
    narrow.extend_from_slice(&1000u64.to_le_bytes());
    narrow.extend_from_slice(&1000u64.to_le_bytes());
    let cases = [
        (
            narrow,
            "`by_guid` key range of generation 0 holds places 1000..=1000, its keys need places 0..=",
        ),
        (vec![9u8; 18], "`by_guid` key range of generation 0 is damaged"),
    ];
    for (stored, named) in cases {
        let dir = archive_with(50);
        assert!(verify(dir.path()).unwrap().is_clean());
        // Behind the index's back.
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let ranges: redb::TableDefinition<(u64, u8), &[u8]> =
            redb::TableDefinition::new("key_range");
        let txn = db.begin_write().unwrap();
        txn.open_table(ranges)
            .unwrap()
            .insert((0, 0), stored.as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        let report = verify(dir.path()).unwrap();
        let text = report.index_problems.join("\n");
        assert!(text.contains(named), "{text}");
        assert!(!report.is_clean());
    }
}

#[test]
fn a_posting_with_a_wrong_position_is_named() {
    let dir = archive_with(50);
    // Offset 7 is its GUID's only event, so this chunk replaces the real
    // one: same count, wrong position. For agent ag1 it is an extra posting.
    tamper(
        dir.path(),
        posting(7, 3, event(7).as_bytes(), "int-7-t", Some("ag1")),
    );
    let report = verify(dir.path()).unwrap();
    let text = report.index_problems.join("\n");
    assert!(
        text.contains(
            "`by_guid` posting of offset 7 (interaction GUID \"int-7-t\") says position 3, the log has it at"
        ),
        "{text}"
    );
    assert!(
        !text.contains("`by_guid` postings: the index has"),
        "{text}"
    );
    assert!(
        text.contains("`by_agent` postings: the index has 51, the log's records call for 50"),
        "{text}"
    );
}

/// Postings no record of the log calls for cannot be named by a record:
/// the line names the tables, as the file does.
#[test]
fn postings_no_record_calls_for_name_their_tables() {
    let dir = archive_with(50);
    tamper(
        dir.path(),
        posting(60, 3, b"no such record", "int-60-t", Some("ag1")),
    );
    let report = verify(dir.path()).unwrap();
    let text = report.index_problems.join("\n");
    assert!(
        text.contains("`by_guid`, `by_agent` postings: the index holds entries that no record of the log calls for"),
        "{text}"
    );
    assert!(!report.is_clean());
}

/// A posting chunk whose bytes do not decode is named by its table and
/// key, as the file names them.
#[test]
fn a_malformed_posting_chunk_names_its_table_and_key() {
    let dir = archive_with(50);
    let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
    let by_guid: redb::TableDefinition<(u64, u64, u64), &[u8]> =
        redb::TableDefinition::new("by_guid");
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(by_guid).unwrap();
        let key = {
            use redb::ReadableTable;
            t.first().unwrap().unwrap().0.value()
        };
        t.insert(key, [0xFFu8; 3].as_slice()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let said = match verify(dir.path()) {
        Ok(report) => report.index_problems.join("\n"),
        Err(e) => e.to_string(),
    };
    assert!(
        said.contains("`by_guid` entry (generation 0, key hash ")
            && said.contains("malformed posting chunk at byte 0 of 3"),
        "{said}"
    );
}

/// Every count of the index's `meta` that `stats` prints is checked
/// against the log's records: until 2026-12-07 only `records` was, and
/// one flipped byte made `stats` say 0 interactions, or 70368744177721
/// untimed records, with `verify` clean (an outside audit).
#[test]
fn every_count_stats_prints_is_checked_against_the_log() {
    let mut lines: Vec<String> = (0..20).map(event).collect();
    // An event with no time of its own (untimed: its import time), and a
    // message that is no event (quarantined).
    lines.push(
        r#"{"Interaction":{"event":"InteractionDeleted","interactionGUID":"int-0-t"}}"#.into(),
    );
    lines.push("not json".into());
    let dir = archive_of_lines(&lines, ArchiveOptions::default());
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let read = |key: &str| {
        use redb::ReadableDatabase;
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(meta).unwrap();
        t.get(key).unwrap().map(|v| v.value())
    };
    let write = |key: &str, value: u64| common::set_index_meta(dir.path(), key, value);
    for (key, said) in [
        ("events", "`meta` events: the index says 22, the log's records give 21"),
        ("quarantined", "`meta` quarantined: the index says 2, the log's records give 1"),
        ("interactions", "`meta` interactions: the index says 21, the log's records give 20"),
        ("untimed", "`meta` untimed: the index says 3, the log's records give 2"),
        ("min_time_ms", "`meta` timed records' time range: the index says 1763900000001..1763900019000 ms"),
        ("max_time_ms", "`meta` timed records' time range: the index says 1763900000000..1763900019001 ms"),
        ("untimed_min_ms", "`meta` untimed records' time range: the index says 2..1 ms, the log's records give 1..1 ms"),
        ("untimed_max_ms", "`meta` untimed records' time range: the index says 1..2 ms, the log's records give 1..1 ms"),
    ] {
        let was = read(key).unwrap_or_else(|| panic!("no {key}"));
        write(key, was + 1);
        let problems = verify(dir.path()).unwrap().index_problems;
        assert_eq!(problems.len(), 1, "{key}: {problems:#?}");
        assert!(problems[0].contains(said), "{key}: {problems:#?}");
        assert!(problems[0].ends_with("`ccvault reindex` rebuilds the index"));
        write(key, was);
    }
    assert!(verify(dir.path()).unwrap().is_clean());
}

/// A `sealed_generations` no index's records can fill (one flipped bit
/// made it 2^40, and `verify` grew without end, as would every writer's
/// open: an outside audit) is named, and nothing runs over it.
#[test]
fn an_impossible_count_of_sealed_generations_is_named_and_bounded() {
    let dir = archive_with(50);
    common::set_index_meta(dir.path(), "sealed_generations", 1 << 40);
    let problems = verify(dir.path()).unwrap().index_problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains(&format!(
            "`meta` sealed_generations says {} generations are complete, but the index's records fill at most 1",
            1u64 << 40
        )),
        "{problems:#?}"
    );
    let (archive, _) = Archive::open(dir.path(), ArchiveOptions::default()).unwrap();
    archive.close().unwrap();
}

/// Many small index commits, while appending and while rebuilding: every
/// counter and posting must survive the hand-over between commits.
#[test]
fn counts_and_postings_survive_many_index_commits() {
    let dir = tempfile::tempdir().unwrap();
    let options = ArchiveOptions {
        index_commit_records: 1_000,
        rebuild_commit_bytes: 16 << 10,
        segment_bytes: 4096,
        ..ArchiveOptions::default()
    };
    // More records than one scanning chunk of a rebuild (4,096), 1,000 duplicates.
    let lines: Vec<String> = (0..10_000).map(|i| event(i % 9_000)).collect();
    let (mut archive, _) = Archive::open(dir.path(), options.clone()).unwrap();
    for (n, chunk) in lines.chunks(1_300).enumerate() {
        let batch: Vec<Incoming> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| incoming(l, (n * 1_300 + i) as u64 + 1))
            .collect();
        archive.append_batch(&batch).unwrap();
    }
    let counters = |archive: &mut Archive| {
        let c = archive.reader().unwrap().counters().unwrap();
        (c.records, c.events, c.duplicates, c.interactions)
    };
    assert_eq!(counters(&mut archive), (9_000, 9_000, 1_000, 9_000));
    archive.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());

    let (mut archive, _) = Archive::open(dir.path(), options).unwrap();
    assert_eq!(archive.rebuild_index().unwrap(), 9_000);
    assert_eq!(counters(&mut archive), (9_000, 9_000, 1_000, 9_000));
    let mut reader = archive.reader().unwrap();
    assert_eq!(reader.interaction_records("int-7-t").unwrap().len(), 1);
    assert_eq!(reader.agent_records("ag1").unwrap().len(), 3_000);
    archive.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// An archive of a build whose index and facts versions are both older
/// (index 5, facts 1: the upgrade of 2026-12-06): the first writer rebuilds
/// the index and rewrites every sealed segment's facts with it, so `verify`
/// is clean at once (an outside audit found the old facts left, and every
/// `verify` "NOT CLEAN" until a `reindex`).
#[test]
fn an_upgraded_index_brings_the_segments_facts_up_to_date() {
    let options = ArchiveOptions {
        segment_bytes: 4 << 10,
        ..ArchiveOptions::default()
    };
    let dir = archive_of(200, options.clone());
    // Facts of the version before this build's (checksum made again, so
    // only the version is old), and an index of the version before.
    let facts: Vec<_> = std::fs::read_dir(dir.path().join("facts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(facts.len() >= 5, "{facts:?}");
    let version_of = |bytes: &[u8]| u16::from_le_bytes([bytes[8], bytes[9]]);
    for f in &facts {
        let mut bytes = std::fs::read(f).unwrap();
        bytes[8..10].copy_from_slice(&(FACTS_VERSION - 1).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[..36]);
        crc.update(&bytes[40..]);
        bytes[36..40].copy_from_slice(&crc.finalize().to_le_bytes());
        std::fs::write(f, bytes).unwrap();
    }
    common::set_index_version(dir.path(), INDEX_VERSION - 1);
    let upgraded = dir.path().join("copy");
    std::fs::create_dir(&upgraded).unwrap();
    for sub in ["log", "facts"] {
        std::fs::create_dir(upgraded.join(sub)).unwrap();
        for e in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), upgraded.join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(dir.path().join("index.redb"), upgraded.join("index.redb")).unwrap();

    // The first writer...
    let (archive, report) = Archive::open(dir.path(), options).unwrap();
    assert!(report.index_rebuilt);
    archive.close().unwrap();
    let rewritten: Vec<_> = std::fs::read_dir(dir.path().join("facts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(rewritten.len() + 1 >= facts.len(), "{rewritten:?}");
    for f in &rewritten {
        assert_eq!(
            version_of(&std::fs::read(f).unwrap()),
            FACTS_VERSION,
            "{}",
            f.display()
        );
    }
    let after = verify(dir.path()).unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.records, 200);
    assert!(after.notes.is_empty(), "{after:?}");

    // ... or `verify` as the first command: clean too, the upgrade a note.
    let first = verify(&upgraded).unwrap();
    assert!(first.is_clean(), "{first:?}");
    assert_eq!(first.facts_checked, after.facts_checked);
    let note = format!("index was of version {}", INDEX_VERSION - 1);
    assert!(first.notes.iter().any(|n| n.contains(&note)), "{first:?}");
}
