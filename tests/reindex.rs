//! Reindex test: the index rebuilt from the log answers every query as the
//! index built during import did, whether `reindex` runs with the index in
//! place or after `index.redb` was deleted.

mod common;

use std::fs;
use std::path::Path;

use ccvault_store::ArchiveReader;
use common::{assert_log_footprint, ccvault, import, sample, Stream};

/// Everything the archive answers, from the CLI and the library.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    /// `stats --format json` without the fields that depend on the index
    /// file's size (and `duplicates` when the caller drops it).
    stats: serde_json::Value,
    /// `show GUID` in every output form, per GUID.
    show: Vec<(String, String, String, String)>,
    quarantine_json: String,
    quarantine_human: String,
    /// Offsets found through the index, per GUID and per agent.
    guid_offsets: Vec<Vec<u64>>,
    agent_offsets: Vec<Vec<u64>>,
}

const SAMPLE_GUIDS: [&str; 4] = [
    "int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01",
    "int-19ab3f0d7e1-Lk2VbN8sXq4ZtR6mPy1cJw0Ud-phone-01-northwind01",
    "int-19ab3f0e9a4-Zx5CvB7nMq2WeR8tYu3iOp6As-phone-02-northwind01",
    "int-ok-after-garbage-phone-00-northwind01",
];
const SAMPLE_AGENTS: [&str; 2] = ["agH4s8KpWz1XcV6bNm2QrTa", "agR2t9LmQx7VbN3cZk5WpYe"];

fn answers(dir: &Path, stream: &Stream, keep_duplicates: bool) -> Answers {
    let mut stats = ccvault(dir, &["stats", "--format", "json"])
        .ok()
        .json_lines()[0]
        .clone();
    // The log's size as `stats` gives it is the log directory's, whichever
    // index (the import's, a reindexed one, none) it was sized with.
    assert_log_footprint(dir, &stats, &format!("stats of {}", dir.display()));
    let obj = stats.as_object_mut().unwrap();
    // Derived files: `reindex` rewrites the index.
    for k in ["bytes", "indexBytes", "projectionsBytes"] {
        obj.remove(k);
    }
    // The log's size on disk depends on how far the compressor got: a
    // sealed segment an import left as `.seg` (a closing writer does not
    // wait for it) is compressed by the next writer, `reindex` included.
    obj.remove("logBytes");
    if !keep_duplicates {
        obj.remove("duplicates");
    }
    let mut guids: Vec<String> = SAMPLE_GUIDS.iter().map(|g| g.to_string()).collect();
    guids.extend((0..stream.interactions).step_by(97).map(|g| stream.guid(g)));
    let mut show = Vec::new();
    for g in &guids {
        let run = |args: &[&str]| {
            let mut a = vec!["show", g.as_str()];
            a.extend_from_slice(args);
            ccvault(dir, &a).ok().stdout_str()
        };
        show.push((
            g.clone(),
            run(&[]),
            run(&["--format", "json"]),
            run(&["--raw"]),
        ));
    }
    let quarantine_json = ccvault(dir, &["quarantine", "--format", "json"])
        .ok()
        .stdout_str();
    let quarantine_human = ccvault(dir, &["quarantine"]).ok().stdout_str();

    let mut reader = ArchiveReader::open(dir).unwrap();
    let mut all_guids: Vec<String> = SAMPLE_GUIDS.iter().map(|g| g.to_string()).collect();
    all_guids.extend((0..stream.interactions).map(|g| stream.guid(g)));
    let guid_offsets = all_guids
        .iter()
        .map(|g| {
            let offsets: Vec<u64> = reader
                .interaction_records(g)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect();
            assert!(!offsets.is_empty(), "{g} has no records");
            offsets
        })
        .collect();
    let mut agents: Vec<String> = SAMPLE_AGENTS.iter().map(|a| a.to_string()).collect();
    agents.extend((0..37).map(|i| stream.agent(i)));
    let agent_offsets = agents
        .iter()
        .map(|a| {
            let offsets: Vec<u64> = reader
                .agent_records(a)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect();
            assert!(!offsets.is_empty(), "{a} has no records");
            offsets
        })
        .collect();
    check_time_seek(&reader, stream);
    Answers {
        stats,
        show,
        quarantine_json,
        quarantine_human,
        guid_offsets,
        agent_offsets,
    }
}

/// A replay that starts at `seek_time(t)` misses no record of time >= t
/// (the seek point itself may legitimately differ between two indexes, as
/// it depends on how commits were cut).
fn check_time_seek(reader: &ArchiveReader, stream: &Stream) {
    let mut times: Vec<(u64, u64)> = Vec::new(); // (event time ms, offset)
    reader
        .for_each_record(
            |r| {
                if let Some(i) = stream.index_of(&r.payload) {
                    times.push(((common::TIME_BASE_S + i as u64) * 1000, r.offset));
                }
                Ok(())
            },
            |d| panic!("damage: {d}"),
        )
        .unwrap();
    for k in (0..stream.events).step_by(stream.events / 10) {
        let t = (common::TIME_BASE_S + k as u64) * 1000;
        let seek = reader.index().seek_time(t as i64).unwrap();
        let first_needed = times
            .iter()
            .filter(|(tt, _)| *tt >= t)
            .map(|(_, o)| *o)
            .min();
        if let Some(o) = first_needed {
            assert!(seek <= o, "seek_time({t}) = {seek} skips offset {o}");
        }
    }
}

#[test]
fn a_rebuilt_index_answers_every_query_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let stream = Stream {
        events: 4000,
        interactions: 700,
        line_len: 500,
    };
    let input = tmp.path().join("stream.ndjson");
    stream.write(&input);
    let segs = ["--segment-bytes", "262144"];
    import(
        &dir,
        &[
            &sample("events.ndjson"),
            &sample("pulsar-envelopes.ndjson"),
            &sample("malformed.ndjson"),
        ],
        &segs,
    );
    import(&dir, &[&input], &segs);
    // Some duplicates, so the counter has something to keep.
    import(&dir, &[&sample("events.ndjson")], &segs);
    ccvault(&dir, &["verify"]).ok();

    let built = answers(&dir, &stream, true);
    assert!(
        built.stats["segments"].as_u64().unwrap() >= 5,
        "{}",
        built.stats
    );
    assert_eq!(
        built.stats["records"],
        (24 + 5 + stream.events) as u64,
        "{}",
        built.stats
    );

    // reindex with the index in place: identical, duplicates included (the
    // count of skipped messages is carried over from the old index).
    let run = ccvault(&dir, &["reindex"]).ok();
    assert!(run.stderr.contains("reindexed"), "{}", run.stderr);
    assert_eq!(answers(&dir, &stream, true), built, "reindex in place");
    ccvault(&dir, &["verify"]).ok();

    // Without the index: `duplicates` counts messages that never reached the
    // log, so only the index knew it; everything else is rebuilt from the log.
    let without_duplicates = answers(&dir, &stream, false);
    fs::remove_file(dir.join("index.redb")).unwrap();
    let run = ccvault(&dir, &["reindex"]).ok();
    // Once: not first into a fresh index at open, then again.
    assert!(
        run.stderr.contains("reindexed") && !run.stderr.contains("past the index checkpoint"),
        "{}",
        run.stderr
    );
    assert_eq!(
        answers(&dir, &stream, false),
        without_duplicates,
        "reindex after deleting index.redb"
    );
    ccvault(&dir, &["verify"]).ok();

    // A read command on an archive without an index rebuilds it too.
    fs::remove_file(dir.join("index.redb")).unwrap();
    assert_eq!(
        answers(&dir, &stream, false),
        without_duplicates,
        "reading after deleting index.redb"
    );
    ccvault(&dir, &["verify"]).ok();
}
