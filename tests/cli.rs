//! CLI tests: the built binary on the sample streams (including the
//! malformed one) and on constructed inputs.
//!
//! Expected counts for the three sample files (`tests/fixtures/samples`):
//! - `events.ndjson`: 24 non-blank lines, 24 distinct bare events: 21
//!   `Interaction` events of 3 interactions (13 + 4 + 4), 2
//!   `AgentStatusChange` and 1 `AgentProvChange` event (no GUID).
//! - `pulsar-envelopes.ndjson`: 6 Pulsar envelopes whose base64 payloads
//!   decode to exactly the bytes of the first 6 lines of `events.ndjson`
//!   (dedup is by decoded payload bytes): 6 duplicates, nothing new.
//! - `malformed.ndjson`: 5 lines. Quarantined: line 1 (truncated JSON),
//!   line 2 (not JSON), line 3 (envelope with a bad base64 payload), line 5
//!   (`[1,2,3]`, no recognizable event). Line 4 is a valid event of a 4th
//!   interaction.
//!
//! So importing the three: records = 24 + 5 = 29 distinct stored records,
//! events = 24 + 1 = 25, quarantined = 4, duplicates = 6, interactions = 3 +
//! 1 = 4, segments = 1 (far below the 64 MiB default). `sample_facts` checks
//! the facts this reasoning rests on, so a changed sample fails clearly.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    ccvault, ccvault_stdin, command, docs_fixture, import, sample, stats, tallies, Stream,
};
use serde_json::Value;

const GUID_A: &str = "int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01";
const GUID_B: &str = "int-19ab3f0d7e1-Lk2VbN8sXq4ZtR6mPy1cJw0Ud-phone-01-northwind01";
const GUID_C: &str = "int-19ab3f0e9a4-Zx5CvB7nMq2WeR8tYu3iOp6As-phone-02-northwind01";
const GUID_OK: &str = "int-ok-after-garbage-phone-00-northwind01";

fn samples() -> [PathBuf; 3] {
    [
        sample("events.ndjson"),
        sample("pulsar-envelopes.ndjson"),
        sample("malformed.ndjson"),
    ]
}

fn import_samples(dir: &Path) -> common::Run {
    let [a, b, c] = samples();
    import(dir, &[&a, &b, &c], &["--format", "json"])
}

fn non_blank_lines(path: &Path) -> Vec<Vec<u8>> {
    fs::read(path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

/// Standard base64 decoding (the test's own, independent of the engine).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn guid_of(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let (_, body) = v.as_object()?.iter().next()?;
    body.get("interactionGUID")?.as_str().map(str::to_owned)
}

#[test]
fn sample_facts() {
    let events = non_blank_lines(&sample("events.ndjson"));
    assert_eq!(events.len(), 24);
    assert_eq!(events.iter().collect::<HashSet<_>>().len(), 24);
    let guids: Vec<Option<String>> = events.iter().map(|l| guid_of(l)).collect();
    let count = |g: &str| guids.iter().filter(|x| x.as_deref() == Some(g)).count();
    assert_eq!((count(GUID_A), count(GUID_B), count(GUID_C)), (13, 4, 4));
    assert_eq!(guids.iter().filter(|g| g.is_none()).count(), 3);

    let envelopes = non_blank_lines(&sample("pulsar-envelopes.ndjson"));
    assert_eq!(envelopes.len(), 6);
    for (i, e) in envelopes.iter().enumerate() {
        let v: Value = serde_json::from_slice(e).unwrap();
        let payload = base64_decode(v["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            payload,
            events[i],
            "envelope {} is events line {}",
            i + 1,
            i + 1
        );
    }
    let malformed = non_blank_lines(&sample("malformed.ndjson"));
    assert_eq!(malformed.len(), 5);
    assert_eq!(guid_of(&malformed[3]).as_deref(), Some(GUID_OK));
}

#[test]
fn stats_counts_the_samples_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let run = import_samples(&dir);
    let summary = &run.json_lines()[0];
    assert_eq!(summary["lines"], 35u64, "{summary}");
    assert_eq!(summary["archived"], 25u64, "{summary}");
    assert_eq!(summary["quarantined"], 4u64, "{summary}");
    assert_eq!(summary["duplicates"], 6u64, "{summary}");
    assert_eq!(summary["rejected"], 0u64, "{summary}");
    let s = stats(&dir);
    assert_eq!(
        (
            s.records,
            s.events,
            s.quarantined,
            s.duplicates,
            s.interactions,
            s.segments
        ),
        (29, 25, 4, 6, 4, 1),
        "{}",
        s.json
    );
    for key in ["bytes", "logBytes", "indexBytes"] {
        assert!(s.json[key].as_u64().unwrap() > 0, "{}", s.json);
    }
    assert_sizes_are_the_files(&dir, &s.json);
    // No projections yet; a report builds them, and `bytes` counts them.
    assert_eq!(s.json["projectionsBytes"], 0u64, "{}", s.json);
    ccvault(&dir, &["report"]).ok();
    let after = stats(&dir).json;
    assert!(after["projectionsBytes"].as_u64().unwrap() > 0, "{after}");
    assert_sizes_are_the_files(&dir, &after);
    // Human output carries the same numbers.
    let human = ccvault(&dir, &["stats"]).ok().stdout_str();
    assert!(human.contains("29") && human.contains("25"), "{human}");
    let sizes = format!(
        "bytes         {} (log {}, index {}, projections {})",
        after["bytes"], after["logBytes"], after["indexBytes"], after["projectionsBytes"]
    );
    assert!(human.contains(&sizes), "{human}");
    ccvault(&dir, &["verify"]).ok();
}

/// `stats`' sizes are the archive's files' lengths, and `bytes` their sum.
fn assert_sizes_are_the_files(dir: &Path, json: &Value) {
    let len = |p: PathBuf| fs::metadata(p).map_or(0, |m| m.len());
    let n = |k: &str| json[k].as_u64().unwrap();
    assert_eq!(n("indexBytes"), len(dir.join("index.redb")), "{json}");
    assert_eq!(
        n("projectionsBytes"),
        len(dir.join("projections.redb")),
        "{json}"
    );
    let parts = ["logBytes", "indexBytes", "projectionsBytes"];
    assert_eq!(
        n("bytes"),
        parts.iter().map(|k| n(k)).sum::<u64>(),
        "{json}"
    );
}

/// A quarantined line that is not UTF-8 (a Latin-1 `é`) comes back byte
/// for byte from `quarantine --format json` as `payloadBase64`, where its
/// `payload` text can only show U+FFFD; a UTF-8 line needs no such field.
#[test]
fn a_quarantined_line_that_is_not_utf8_comes_back_exactly() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let latin1: &[u8] = b"{\"Interaction\":{\"callingName\":\"Jos\xe9\"}}";
    let input = tmp.path().join("in.ndjson");
    fs::write(&input, [latin1, b"\n", b"not json\n"].concat()).unwrap();
    import(&dir, &[&input], &[]);
    let listed = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(listed[0]["payloadBase64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, latin1);
    assert!(listed[0]["payload"].as_str().unwrap().contains('\u{fffd}'));
    assert_eq!(listed[1]["payload"], "not json");
    assert!(listed[1].get("payloadBase64").is_none(), "{}", listed[1]);
}

#[test]
fn quarantine_lists_the_malformed_lines_with_file_line_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    let malformed = sample("malformed.ndjson");
    let raw = non_blank_lines(&malformed);
    let listed = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    let lines: Vec<u64> = listed.iter().map(|q| q["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 5]);
    for q in &listed {
        let line = q["line"].as_u64().unwrap() as usize;
        assert_eq!(q["source"], malformed.to_str().unwrap(), "{q}");
        assert!(!q["reason"].as_str().unwrap().is_empty(), "{q}");
        // The quarantined payload is the line as received.
        assert_eq!(
            q["payload"].as_str().unwrap().as_bytes(),
            &raw[line - 1][..],
            "{q}"
        );
    }
    let human = ccvault(&dir, &["quarantine"]).ok().stdout_str();
    for n in [1, 2, 3, 5] {
        assert!(
            human.contains(&format!("malformed.ndjson:{n}")),
            "line {n} missing:\n{human}"
        );
    }
    assert!(!human.contains("malformed.ndjson:4"), "{human}");
}

/// The canonical order of docs/METRICS.md §2, computed from the JSON directly.
fn canonical_key(line: &[u8]) -> (i64, u8, i64, u8, Vec<u8>) {
    let v: Value = serde_json::from_slice(line).unwrap();
    let body = v.as_object().unwrap().values().next().unwrap();
    let num = |x: &Value| -> Option<i64> {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|&n| n > 0)
    };
    let t = num(&body["interactionEventTS"])
        .map(|s| s * 1000)
        .or_else(|| num(&body["statusEventTS"]).map(|s| s * 1000))
        .or_else(|| num(&body["msgInfo"]["timestamp"]))
        .or_else(|| num(&body["eventTS"]).map(|s| s * 1000))
        .expect("sample events have a time");
    let seq = num(&body["msgInfo"]["sequenceId"]);
    let rank = match body["event"].as_str().unwrap_or("") {
        "InteractionCreated" => 0,
        "InteractionQueued" => 1,
        "InteractionAssigned" => 2,
        "InteractionRejected" => 3,
        "InteractionAccepted" => 4,
        "InteractionCustomerAccepted" => 5,
        "LineHoldStatus" => 6,
        "InteractionPostProcess" => 8,
        "InteractionEndPostProcess" => 9,
        // docs/METRICS.md §2 (v2): the agent's release after its wrap-up.
        "InteractionDeassigned" => 10,
        "InteractionUnqueued" => 11,
        "InteractionDeleted" => 12,
        _ => 7,
    };
    (
        t,
        u8::from(seq.is_none()),
        seq.unwrap_or(0),
        rank,
        line.to_vec(),
    )
}

fn expected_raw(guid: &str) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = non_blank_lines(&sample("events.ndjson"))
        .into_iter()
        .chain(non_blank_lines(&sample("malformed.ndjson")))
        .filter(|l| guid_of(l).as_deref() == Some(guid))
        .collect();
    lines.sort_by_cached_key(|l| canonical_key(l));
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(&l);
        out.push(b'\n');
    }
    out
}

/// While a writer holds the archive, a reader sees the index's last commit
/// and cannot index the log's newer records itself: a writer rebuilding a
/// lost or older index leaves the whole log unseen for a while. `show` of
/// an interaction found nowhere then says that those records were not
/// searched, instead of that the interaction has no events.
#[test]
fn reads_under_a_running_writer_say_which_records_are_not_indexed_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let lines = non_blank_lines(&sample("events.ndjson"));
    let (later, first): (Vec<_>, Vec<_>) = lines
        .iter()
        .partition(|l| guid_of(l).as_deref() == Some(GUID_B));
    let write = |name: &str, lines: &[&Vec<u8>]| {
        let path = tmp.path().join(name);
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        fs::write(&path, bytes).unwrap();
        path
    };
    import(&dir, &[&write("first.ndjson", &first)], &[]);
    let index = dir.join("index.redb");
    let before = tmp.path().join("index.before");
    fs::copy(&index, &before).unwrap();
    import(&dir, &[&write("later.ndjson", &later)], &[]);
    // The index as the first import left it: GUID_B's records are in the
    // log past its checkpoint. A writer holds the archive (its lock).
    fs::copy(&before, &index).unwrap();
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("writer.lock"))
        .unwrap();
    lock.try_lock().unwrap();

    let unseen = format!(
        "its records from offset {} on are not indexed yet, so were not searched",
        first.len()
    );
    for args in [&["show", GUID_B, "--raw"][..], &["show", GUID_B]] {
        let run = ccvault(&dir, args).expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("no events of interaction \"{GUID_B}\"")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(&unseen), "{args:?}: {}", run.stderr);
    }
    // What is indexed is found; an interaction absent from what was
    // searched is reported with the same caveat.
    assert_eq!(
        ccvault(&dir, &["show", GUID_A, "--raw"]).ok().stdout,
        expected_raw(GUID_A)
    );
    let absent = ccvault(&dir, &["show", "int-absent", "--raw"]).expect_code(1);
    assert!(absent.stderr.contains(&unseen), "{}", absent.stderr);
    // `stats` counts what is indexed and says where that ends.
    let stats = ccvault(&dir, &["stats", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(stats[0]["records"], first.len());
    assert_eq!(stats[0]["unindexedFrom"], first.len());
    let human = ccvault(&dir, &["stats"]).ok().stdout_str();
    let line = format!(
        "unindexed     the log's records from offset {} on",
        first.len()
    );
    assert!(human.contains(&line), "{human}");
    // The commands that read the projections list what is indexed and say
    // where it ends.
    let note = format!(
        "the writer running now has not committed the log's records from offset {} on to the index yet, so what follows ends before them",
        first.len()
    );
    let listed = ccvault(&dir, &["interactions", "--format", "csv"]).ok();
    assert!(listed.stderr.contains(&note), "{}", listed.stderr);
    assert!(listed.stdout_str().contains(GUID_A));
    assert!(!listed.stdout_str().contains(GUID_B));
    let report = ccvault(&dir, &["report"]).ok();
    assert!(report.stderr.contains(&note), "{}", report.stderr);
    // So do the commands that read the log through the index, once.
    let exported = ccvault(&dir, &["export"]).ok();
    assert_eq!(
        exported.stderr.matches(&note).count(),
        1,
        "{}",
        exported.stderr
    );
    assert_eq!(exported.stdout_str().lines().count(), first.len());
    let quarantined = ccvault(&dir, &["quarantine"]).ok();
    assert!(quarantined.stderr.contains(&note), "{}", quarantined.stderr);

    // The writer gone, a reader indexes the rest itself and finds them;
    // an absent interaction is then plainly absent.
    drop(lock);
    assert_eq!(
        ccvault(&dir, &["show", GUID_B, "--raw"]).ok().stdout,
        expected_raw(GUID_B)
    );
    let absent = ccvault(&dir, &["show", "int-absent", "--raw"]).expect_code(1);
    assert!(!absent.stderr.contains("not indexed"), "{}", absent.stderr);
    let stats = ccvault(&dir, &["stats", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(stats[0]["records"], lines.len());
    assert!(stats[0]["unindexedFrom"].is_null());
    assert!(!ccvault(&dir, &["stats"])
        .ok()
        .stdout_str()
        .contains("unindexed"));
    let listed = ccvault(&dir, &["interactions", "--format", "csv"]).ok();
    assert!(!listed.stderr.contains("not indexed"), "{}", listed.stderr);
    assert!(listed.stdout_str().contains(GUID_B));
}

/// `export` writes a payload received on one line as its archived bytes,
/// a carriage return in it included, and puts only one received over
/// several lines on one (until 2026-12-07 every CR became a space, so the
/// export of a one-line payload was not its bytes; an outside audit). One
/// that ends in a CR ends its line with CRLF, so that `import` reads it back
/// whole: `export | import` adds nothing.
#[test]
fn export_keeps_a_one_line_payload_byte_exact_carriage_returns_and_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let [events, _, _] = samples();
    let lines = non_blank_lines(&events);
    let (first, second) = (&lines[0], &lines[1]);
    // A CR as JSON whitespace inside the first; the second ends in one
    // before its CRLF.
    let inner = first.iter().position(|&b| b == b':').unwrap() + 1;
    let mut with_cr = first[..inner].to_vec();
    with_cr.push(b'\r');
    with_cr.extend_from_slice(&first[inner..]);
    let mut ends_in_cr = second.clone();
    ends_in_cr.push(b'\r');
    let mut input = with_cr.clone();
    input.push(b'\n');
    input.extend_from_slice(&ends_in_cr);
    input.extend_from_slice(b"\r\n");
    let file = tmp.path().join("cr.ndjson");
    fs::write(&file, &input).unwrap();
    import(&dir, &[&file], &[]);

    let mut expected = with_cr.clone();
    expected.push(b'\n');
    expected.extend_from_slice(&ends_in_cr);
    expected.extend_from_slice(b"\r\n");
    let exported = ccvault(&dir, &["export"]).ok().stdout;
    assert_eq!(
        String::from_utf8_lossy(&exported),
        String::from_utf8_lossy(&expected)
    );
    let raw = ccvault(&dir, &["show", GUID_A, "--raw"]).ok().stdout;
    assert!(
        raw.windows(with_cr.len()).any(|w| w == with_cr.as_slice()),
        "show --raw holds the payload with its CR"
    );
    // The export imported again is the same events: nothing new archived.
    let again = tmp.path().join("again.ndjson");
    fs::write(&again, &exported).unwrap();
    let run = import(&dir, &[&again], &["--format", "json"]);
    let summary = run.json_lines();
    assert_eq!(summary[0]["archived"], 0, "{summary:?}");
    assert_eq!(summary[0]["duplicates"], 2, "{summary:?}");
}

#[test]
fn show_raw_prints_the_payloads_byte_exact_in_canonical_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    // Envelopes first: their records carry the envelope metadata.
    let [events, envelopes, malformed] = samples();
    import(&dir, &[&envelopes, &events, &malformed], &[]);
    for guid in [GUID_A, GUID_B, GUID_C, GUID_OK] {
        let run = ccvault(&dir, &["show", guid, "--raw"]).ok();
        let expected = expected_raw(guid);
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&expected),
            "show {guid} --raw"
        );
        assert_eq!(run.stdout, expected);

        let json = ccvault(&dir, &["show", guid, "--format", "json"])
            .ok()
            .json_lines();
        assert_eq!(json.len(), 1, "one timeline object");
        let events = json[0]["events"].as_array().unwrap();
        assert_eq!(events.len(), expected.split(|&b| b == b'\n').count() - 1);
        // In canonical order, each with its archived payload.
        for (shown, line) in events.iter().zip(expected.split(|&b| b == b'\n')) {
            assert_eq!(
                shown["event"],
                serde_json::from_slice::<Value>(line).unwrap()
            );
        }
        let human = ccvault(&dir, &["show", guid]).ok().stdout_str();
        assert!(human.contains(guid), "{human}");
    }
    // The envelope metadata (messageId, publishTime) is kept with the
    // decoded payload.
    let env_lines = non_blank_lines(&envelopes);
    let json = ccvault(&dir, &["show", GUID_A, "--format", "json"])
        .ok()
        .json_lines();
    let json = json[0]["events"].as_array().unwrap();
    for e in env_lines {
        let env: Value = serde_json::from_slice(&e).unwrap();
        let payload: Value =
            serde_json::from_slice(&base64_decode(env["payload"].as_str().unwrap()).unwrap())
                .unwrap();
        let shown = json
            .iter()
            .find(|j| j["event"] == payload)
            .unwrap_or_else(|| panic!("event of envelope {} not shown", env["messageId"]));
        assert_eq!(shown["messageId"], env["messageId"], "{shown}");
        assert_eq!(shown["publishTime"], env["publishTime"], "{shown}");
    }
}

/// Stats without the fields an import legitimately changes.
fn stable_stats(dir: &Path) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> = stats(dir)
        .json
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    for k in ["bytes", "indexBytes", "projectionsBytes"] {
        m.remove(k);
    }
    m
}

#[test]
fn importing_the_same_files_twice_changes_nothing_but_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    let before = stable_stats(&dir);
    let show_before = ccvault(&dir, &["show", GUID_A, "--format", "json"])
        .ok()
        .stdout;
    let q_before = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .stdout;
    let run = import_samples(&dir);
    let summary = &run.json_lines()[0];
    // All 35 lines (quarantined ones included) are already archived.
    assert_eq!(summary["duplicates"], 35u64, "{summary}");
    assert_eq!(summary["archived"], 0u64, "{summary}");
    assert_eq!(summary["quarantined"], 0u64, "{summary}");
    let mut after = stable_stats(&dir);
    assert_eq!(after["duplicates"], 6 + 35);
    after.insert("duplicates".into(), before["duplicates"].clone());
    // The log grew only by the tallies of the dropped lines (docs/FORMAT.md
    // §1.4): the last one counts them all.
    assert_eq!(tallies(&dir).last().map(|t| t.1.duplicates), Some(6 + 35));
    assert!(after["logBytes"].as_u64() > before["logBytes"].as_u64());
    after.insert("logBytes".into(), before["logBytes"].clone());
    assert_eq!(after, before);
    assert_eq!(
        ccvault(&dir, &["show", GUID_A, "--format", "json"])
            .ok()
            .stdout,
        show_before
    );
    assert_eq!(
        ccvault(&dir, &["quarantine", "--format", "json"])
            .ok()
            .stdout,
        q_before
    );
}

/// What an archive answers, independent of where its input came from.
fn content(dir: &Path) -> (Vec<u64>, Vec<Vec<u8>>) {
    let s = stats(dir);
    let counts = vec![
        s.records,
        s.events,
        s.quarantined,
        s.duplicates,
        s.interactions,
    ];
    let shows = [GUID_A, GUID_B, GUID_C, GUID_OK]
        .iter()
        .map(|g| ccvault(dir, &["show", g, "--raw"]).ok().stdout)
        .collect();
    (counts, shows)
}

#[test]
fn gzip_input_gives_the_same_archive_as_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let gz_dir = tmp.path().join("gz");
    import_samples(&plain);
    let mut gz_files = Vec::new();
    for s in samples() {
        let to = tmp
            .path()
            .join(format!("{}.gz", s.file_name().unwrap().to_str().unwrap()));
        let mut enc = flate2::write::GzEncoder::new(
            fs::File::create(&to).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(&fs::read(&s).unwrap()).unwrap();
        enc.finish().unwrap();
        gz_files.push(to);
    }
    let refs: Vec<&Path> = gz_files.iter().map(PathBuf::as_path).collect();
    import(&gz_dir, &refs, &[]);
    assert_eq!(content(&gz_dir), content(&plain));
    let q = ccvault(&gz_dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(q.len(), 4);
    assert!(q[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("malformed.ndjson.gz"));
}

/// Whether the file system under `path` opens files with `O_DIRECT`.
fn accepts_o_direct(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .is_ok()
}

/// Imports `input` with `--direct-read MODE` (debug log on) into `dir`:
/// whether the input was read directly, from the log line saying so.
fn import_reading(dir: &Path, input: &Path, mode: &str) -> bool {
    let run = command(
        dir,
        &["import", input.to_str().unwrap(), "--direct-read", mode],
    )
    .env("CCVAULT_LOG", "ccvault=debug")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(run.status.success(), "{run:?}");
    let log = String::from_utf8_lossy(&run.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("reading input"))
        .unwrap_or_else(|| panic!("no `reading input` line in {log}"));
    line.contains("direct=true")
}

#[test]
fn direct_reads_of_the_input_give_a_byte_identical_archive() {
    let tmp = tempfile::tempdir().unwrap();
    // Over one 4 MiB direct read, and not a whole number of 4 KiB blocks.
    let stream = Stream {
        events: 20_001,
        interactions: 700,
        line_len: 300,
    };
    let input = tmp.path().join("in.ndjson");
    stream.write(&input);
    let bytes = fs::read(&input).unwrap();
    assert!(bytes.len() > 4 << 20 && !bytes.len().is_multiple_of(4096));
    let export = |dir: &Path| ccvault(dir, &["export", "--format", "ndjson"]).ok().stdout;
    let buffered = tmp.path().join("buffered");
    assert!(!import_reading(&buffered, &input, "never"));
    assert_eq!(export(&buffered), bytes);
    let direct = tmp.path().join("direct");
    assert_eq!(
        import_reading(&direct, &input, "always"),
        accepts_o_direct(&input)
    );
    assert_eq!(export(&direct), bytes);
    assert_eq!(stable_stats(&direct), stable_stats(&buffered));
    // `auto` reads a file this small through the page cache.
    assert!(!import_reading(&tmp.path().join("auto"), &input, "auto"));
    // A gzip file read directly feeds the decompressor.
    let gz = tmp.path().join("in.ndjson.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&bytes).unwrap();
    enc.finish().unwrap();
    let from_gz = tmp.path().join("gz");
    import_reading(&from_gz, &gz, "always");
    assert_eq!(export(&from_gz), bytes);
    // tmpfs refuses O_DIRECT on older kernels (EINVAL) and accepts it on
    // newer ones: either way the import reads the whole file.
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let on_shm = shm.path().join("in.ndjson");
        fs::copy(&input, &on_shm).unwrap();
        let from_shm = tmp.path().join("shm");
        assert_eq!(
            import_reading(&from_shm, &on_shm, "always"),
            accepts_o_direct(&on_shm)
        );
        assert_eq!(export(&from_shm), bytes);
    }
}

#[test]
fn stdin_import_gives_the_same_archive_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    let stdin = tmp.path().join("stdin");
    let stdin2 = tmp.path().join("stdin2");
    import_samples(&files);
    let mut all = Vec::new();
    for s in samples() {
        all.extend(fs::read(&s).unwrap());
    }
    ccvault_stdin(&stdin, &["import", "-"], &all).ok();
    assert_eq!(content(&stdin), content(&files));
    // No file argument reads stdin too.
    ccvault_stdin(&stdin2, &["import"], &all).ok();
    assert_eq!(content(&stdin2), content(&files));
    let q = ccvault(&stdin, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    // Line numbers count from the start of stdin (events 24 + envelopes 6
    // lines come first).
    let lines: Vec<u64> = q.iter().map(|x| x["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [31, 32, 33, 35]);
    assert!(q.iter().all(|x| x["source"] == "-"), "{q:?}");
}

/// A directory among the inputs is named and refused before anything is
/// archived (it opens, and failed only when read, after the files before
/// it, without a summary); one on stdin, which cannot be looked at first,
/// is rejected as stdin when read, as any input that cannot be read is
/// (exit 3, the inputs after it imported).
#[test]
fn a_directory_given_as_input_is_refused_before_anything_is_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let sample = &samples()[0];
    let run = ccvault(
        &dir,
        &[
            "import",
            sample.to_str().unwrap(),
            tmp.path().to_str().unwrap(),
        ],
    )
    .expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot import {}: it is a directory",
            tmp.path().display()
        )),
        "{}",
        run.stderr
    );
    assert!(!dir.exists(), "the archive was created");
    let out = common::command(&dir, &["import", "-"])
        .stdin(fs::File::open(tmp.path()).unwrap())
        .output()
        .unwrap();
    let run = common::Run::from_output(vec!["import".into(), "-".into()], out).expect_code(3);
    assert!(
        run.stderr
            .contains("-:1: rejected: cannot read the input from its first byte: Is a directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_line_over_the_size_limit_is_rejected_by_name_and_the_rest_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let small = Stream {
        events: 6,
        interactions: 6,
        line_len: 300,
    };
    let big = Stream {
        events: 1,
        interactions: 1,
        line_len: 5000,
    };
    let mut text = small.text(0..3);
    text.push_str(&big.line(0).replace("e2e", "big"));
    text.push('\n');
    text.push_str(&small.text(3..6));
    let input = tmp.path().join("with-a-big-line.ndjson");
    fs::write(&input, &text).unwrap();
    let run = ccvault(
        &dir,
        &[
            "import",
            input.to_str().unwrap(),
            "--max-record-bytes",
            "2000",
        ],
    )
    .expect_code(3);
    let needle = format!("{}:4", input.display());
    assert!(run.stderr.contains(&needle), "{}", run.stderr);
    assert!(run.stderr.contains("2000"), "{}", run.stderr);
    let s = stats(&dir);
    assert_eq!((s.records, s.events, s.quarantined), (6, 6, 0));
    for g in 0..6 {
        let out = ccvault(&dir, &["show", &small.guid(g), "--raw"]).ok();
        assert_eq!(out.stdout_str(), small.raw_of(g));
    }
    ccvault(&dir, &["show", &big.guid(0).replace("e2e", "big")]).expect_code(1);
    // Through stdin the error names `-` and the line.
    let dir2 = tmp.path().join("b");
    let run = ccvault_stdin(
        &dir2,
        &["import", "-", "--max-record-bytes", "2000"],
        text.as_bytes(),
    )
    .expect_code(3);
    assert!(run.stderr.contains("-:4"), "{}", run.stderr);
    assert_eq!(stats(&dir2).records, 6);
}

#[test]
fn a_second_writer_is_refused_by_pid_while_readers_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    // A writer that holds the archive: an import reading a stdin we keep open.
    let mut writer = command(&dir, &["import", "-", "--print-acks"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = writer.id();
    let mut stdin = writer.stdin.take().unwrap();
    let stream = Stream {
        events: 10,
        interactions: 5,
        line_len: 300,
    };
    stdin.write_all(stream.text(0..10).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Wait until it holds the lock: a small lock file in the archive names
    // its pid.
    let names_pid = |d: &Path| {
        fs::read_dir(d).into_iter().flatten().flatten().any(|e| {
            e.metadata().is_ok_and(|m| m.is_file() && m.len() < 64)
                && fs::read_to_string(e.path()).is_ok_and(|t| {
                    t.split(|c: char| !c.is_ascii_digit())
                        .any(|w| w == pid.to_string())
                })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !names_pid(&dir) && !names_pid(&dir.join("log")) {
        assert!(Instant::now() < deadline, "the writer never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let empty = common::empty_file(tmp.path());
    let second = ccvault(&dir, &["import", empty.to_str().unwrap()]).expect_code(1);
    assert!(second.stderr.contains("locked"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&pid.to_string()),
        "the error must name pid {pid}: {}",
        second.stderr
    );
    // Readers work meanwhile.
    let s = stats(&dir);
    assert!(s.records >= 29, "{}", s.json);
    let raw = ccvault(&dir, &["show", GUID_A, "--raw"]).ok();
    assert_eq!(raw.stdout, expected_raw(GUID_A));
    ccvault(&dir, &["reindex"]).expect_code(1);
    // Its index file moved away under it (as in the first instant of a new
    // archive, before the writer has made one): a reader names the writer
    // instead of saying only "No such file or directory".
    let index = dir.join("index.redb");
    let kept = tmp.path().join("index.kept");
    fs::rename(&index, &kept).unwrap();
    let missing = ccvault(&dir, &["stats"]).expect_code(1);
    fs::rename(&kept, &index).unwrap();
    assert!(
        missing.stderr.contains("has no index.redb while a writer")
            && missing.stderr.contains(&pid.to_string()),
        "{}",
        missing.stderr
    );

    // The writer finishes when its input ends; the lines are archived.
    drop(stdin);
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acks: Vec<String> = out.stdout.as_slice().lines().map(Result::unwrap).collect();
    assert_eq!(acks.last().map(String::as_str), Some("durable - 10"));
    assert_eq!(stats(&dir).records, 29 + 10);
    ccvault(&dir, &["verify"]).ok();
}

#[test]
fn archive_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    ccvault(&dir, &["reindex"]).ok();
    fn walk(path: &Path, seen: &mut usize) {
        let meta = fs::metadata(path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            for e in fs::read_dir(path).unwrap() {
                walk(&e.unwrap().path(), seen);
            }
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            *seen += 1;
        }
    }
    let mut files = 0;
    walk(&dir, &mut files);
    assert!(files >= 3, "expected a segment, the index and the lock");
    assert!(dir.join("index.redb").is_file());
}

#[test]
fn verify_is_clean_on_a_clean_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    let run = ccvault(&dir, &["verify"]).ok();
    assert!(run.stdout_str().contains("clean"), "{}", run.stdout_str());
    let json = ccvault(&dir, &["verify", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(json[0]["clean"], true);
    assert_eq!(json[0]["records"], 29u64);
}

#[test]
fn unknown_guid_and_missing_archive_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    import_samples(&dir);
    let run = ccvault(&dir, &["show", "int-no-such-interaction"]).expect_code(1);
    assert!(
        run.stderr.contains("int-no-such-interaction"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let run = ccvault(&dir, &["show", "int-no-such-interaction", "--raw"]).expect_code(1);
    assert!(run.stdout.is_empty());

    let nowhere = tmp.path().join("nowhere");
    let run = ccvault(&nowhere, &["stats"]).expect_code(1);
    assert!(run.stderr.contains("no archive"), "{}", run.stderr);
    assert!(
        !nowhere.exists(),
        "a read command must not create an archive"
    );
}

// ---------------------------------------------------------------------------
// The 8x8 documentation's own examples

/// The interactionGUIDs a fixture names (read with serde_json, not ccvault).
fn guids_in(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["Interaction"]["interactionGUID"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn the_8x8_documentation_examples_import_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let reference = docs_fixture("event-reference.ndjson");
    let format = docs_fixture("message-format.ndjson");
    // 9 + 5 example blocks; all distinct; the envelope's payload is not an
    // 8x8 event, so it is kept but quarantined.
    let run = import(&dir, &[&reference, &format], &["--format", "json"]);
    let summary = &run.json_lines()[0];
    assert_eq!(summary["lines"], 14, "{summary}");
    assert_eq!(summary["archived"], 13, "{summary}");
    assert_eq!(summary["quarantined"], 1, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    // The envelope example carries a payload: no transport control message.
    assert_eq!(summary["control"], 0, "{summary}");
    let s = stats(&dir);
    assert_eq!((s.records, s.events, s.quarantined), (14, 13, 1));

    let mut guids = guids_in(&reference);
    guids.extend(guids_in(&format));
    assert_eq!(guids.len(), 7);
    assert_eq!(s.interactions, 7);
    let listed: BTreeSet<String> = ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .json_lines()
        .iter()
        .map(|v| v["interactionGUID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, guids);

    let q = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["line"], 1);
    assert!(q[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("message-format.ndjson"));

    // The same page again is all duplicates.
    let again = import(&dir, &[&reference], &["--format", "json"]);
    assert_eq!(again.json_lines()[0]["duplicates"], 9);
    assert_eq!(stats(&dir).records, 14);
}

// ---------------------------------------------------------------------------
// Unix manners: pipes, colour, quiet, causes, exit codes, `-`, JSON everywhere

/// An archive of the samples, shared by the tests below (each its own copy).
fn sample_archive(tmp: &Path) -> PathBuf {
    let dir = tmp.join("archive");
    import_samples(&dir);
    dir
}

/// Runs `ccvault ARGS` with its stdout a pipe whose reader is already gone.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = command(dir, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An archive whose listings need many writes, and every command that
/// prints results on stdout, with the arguments to run each on it.
fn printing_commands(tmp: &Path) -> (PathBuf, Vec<Vec<String>>) {
    // Large enough that every listing needs many writes.
    let stream = Stream {
        events: 6_000,
        interactions: 1_500,
        line_len: 400,
    };
    let input = tmp.join("stream.ndjson");
    stream.write(&input);
    let dir = tmp.join("archive");
    import(&dir, &[&input], &[]);
    let guid = stream.guid(0);
    let demo = tmp.join("demo");
    let demo = demo.to_str().unwrap();
    let commands = [
        vec!["export"],
        // A tenant's events are read another way ("stdout: stdout: …" once).
        vec!["export", "--tenant", "acmecorp01"],
        vec!["export", "--what", "interactions", "--format", "csv"],
        vec!["show", &guid, "--raw"],
        vec!["show", &guid],
        vec!["show", &guid, "--html", "-"],
        vec!["interactions"],
        vec!["interactions", "--format", "json"],
        vec!["interactions", "--format", "csv"],
        vec!["report", "--interval", "15m"],
        vec!["agents", "--format", "csv"],
        vec!["wallboard"],
        vec!["stats"],
        vec!["quarantine"],
        vec!["verify"],
        vec!["simulate", "--interactions", "300"],
        vec!["demo", "--seed", "2", "--into", demo],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
        vec!["import", "--help"],
        vec!["--version"],
    ];
    let commands = commands
        .iter()
        .map(|args| args.iter().map(|a| a.to_string()).collect())
        .collect();
    (dir, commands)
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly_with_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, commands) = printing_commands(tmp.path());
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = with_closed_stdout(&dir, &args);
        assert_eq!(
            code, 0,
            "{args:?} with a closed stdout: exit {code}\n{stderr}"
        );
        for noise in ["error", "Broken pipe", "panicked"] {
            assert!(
                !stderr.contains(noise),
                "{args:?} printed {noise:?}:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_stdout_that_cannot_be_written_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, commands) = printing_commands(tmp.path());
    // /dev/full fails every write with ENOSPC: unlike a closed pipe, a
    // failure the user must hear about, and where.
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = command(&dir, &args)
            .stdin(Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("ccvault: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line:\n{stderr}"));
        assert_eq!(error.matches("stdout").count(), 1, "{args:?}: {error}");
        assert_eq!(
            error.matches("No space left on device").count(),
            1,
            "{args:?}: {error}"
        );
    }
}

#[test]
fn logs_have_no_colour_unless_asked_and_quiet_means_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let empty = common::empty_file(tmp.path());
    let empty = empty.to_str().unwrap();
    // -vv shows debug logs; stderr is a pipe here, so no ANSI.
    let run = ccvault(&dir, &["-vv", "stats"]).ok();
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    // --color always colours it (so the check above can fail).
    let run = ccvault(&dir, &["--color", "always", "-vv", "stats"]).ok();
    assert!(run.stderr.contains("\u{1b}["), "{:?}", run.stderr);
    let run = ccvault(&dir, &["--color", "never", "-vv", "stats"]).ok();
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    // A usage error is one line like every other error, uncoloured like
    // them (until 2026-12-07 clap's own, several lines and coloured).
    for args in [
        &["--color", "always", "stats", "--bogus"][..],
        &["stats", "--bogus", "--color=always"],
    ] {
        let run = ccvault(&dir, args).expect_code(2);
        assert!(
            run.stderr
                .starts_with("ccvault: error: unexpected argument '--bogus'")
                && run.stderr.lines().count() == 1
                && !run.stderr.contains('\u{1b}'),
            "{:?}",
            run.stderr
        );
    }
    // Every usage error ends with the command's usage: clap's without one
    // of its own (a flag given no value) and ccvault's found after the
    // parse (a format the command does not take), which ended bare until
    // 2026-12-07 (an outside audit).
    for (args, usage) in [
        (&["stats", "--bogus"][..], "ccvault stats [OPTIONS]"),
        (&["report", "--interval"], "ccvault report [OPTIONS]"),
        (&["stats", "--format", "csv"], "ccvault stats [OPTIONS]"),
        (&["--format", "csv", "stats"], "ccvault stats [OPTIONS]"),
        // An option's value that is a command's name is no command (it
        // gave that command's usage until 2026-12-07: an outside audit).
        (
            &["--tz", "demo", "report", "--interval", "7q"],
            "ccvault report [OPTIONS]",
        ),
        (
            &["--tz", "stats", "export", "--format", "csv"],
            "ccvault export [OPTIONS]",
        ),
        // An error clap meets before the command, which the line names.
        (&["--bogus", "report"], "ccvault report [OPTIONS]"),
        (&["-q", "-v", "report"], "ccvault report [OPTIONS]"),
        (
            &["ingest", "-x", "mqtt"],
            "ccvault ingest mqtt [OPTIONS] --url <URL>",
        ),
        // A command's command, and a check made before anything runs (an
        // empty client id came after a summary line of nothing received).
        (
            &[
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:1",
                "--client-id",
                "",
            ],
            "ccvault ingest mqtt [OPTIONS] --url <URL>",
        ),
    ] {
        let run = ccvault(&dir, args).expect_code(2);
        assert!(
            run.stderr.starts_with("ccvault: error: ")
                && run.stderr.lines().count() == 1
                && run
                    .stderr
                    .trim_end()
                    .ends_with(&format!("(usage: {usage}; more with --help)")),
            "{args:?}: {:?}",
            run.stderr
        );
    }
    // The same found after the parse, the archive named `demo` as the
    // README's first command names it.
    let out = std::process::Command::new(common::bin())
        .current_dir(tmp.path())
        .args(["--data-dir", "demo", "export", "--format", "csv"])
        .env_remove("CCVAULT_DATA")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("(usage: ccvault export [OPTIONS]; more with --help)"),
        "{stderr}"
    );
    // clap's line that introduces the next runs on with a space (it read
    // `were not provided:; <GUID>`: an outside audit).
    let run = ccvault(&dir, &["show"]).expect_code(2);
    assert!(
        run.stderr.starts_with(
            "ccvault: error: the following required arguments were not provided: <GUID> (usage: "
        ),
        "{:?}",
        run.stderr
    );
    let run = command(&dir, &["-vv", "stats"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&run.stderr).contains('\u{1b}'));
    // Without -v only warnings and the summary; with -q nothing at all.
    let run = ccvault(&dir, &["import", empty]).ok();
    assert!(!run.stderr.contains("DEBUG") && run.stderr.contains("imported 0 lines"));
    for args in [
        vec!["-q", "import", empty],
        vec!["rebuild", "-q"],
        vec!["-q", "interactions"],
        vec!["-q", "simulate", "--interactions", "5"],
    ] {
        let run = ccvault(&dir, &args).ok();
        assert_eq!(run.stderr, "", "{args:?}");
    }
    assert_eq!(ccvault(&dir, &["-q", "-v", "stats"]).code, 2);
}

#[test]
fn warnings_speak_as_the_command_does_unless_a_log_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    // A flipped byte inside the first record: the open keeps it aside and
    // says so through the store's log.
    let segment = common::segment_files(&dir).remove(0);
    let name = segment.file_name().unwrap().to_str().unwrap().to_owned();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[200] ^= 0xff;
    fs::write(&segment, &bytes).unwrap();
    let copy = tmp.path().join("copy");
    common::copy_dir(&dir, &copy);
    let run = ccvault(&dir, &["reindex"]).ok();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("kept aside on open"))
        .unwrap_or_else(|| panic!("no warning:\n{}", run.stderr));
    assert!(
        line.starts_with("ccvault: warning: damaged record kept aside on open: ")
            && line.contains(&format!("{name} byte ")),
        "{line}"
    );
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    // Asked for a log: time, level and where from.
    let run = ccvault(&copy, &["-v", "reindex"]).ok();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("kept aside on open"))
        .unwrap_or_else(|| panic!("no warning:\n{}", run.stderr));
    assert!(line.contains(" WARN ccvault_store"), "{line}");
}

#[test]
fn each_cause_of_an_error_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    // A segment that is a directory: the log's I/O error, wrapped by the
    // store and by the command's context.
    let segment = common::segment_files(&dir).remove(0);
    fs::remove_file(&segment).unwrap();
    fs::create_dir(&segment).unwrap();
    let name = segment.file_name().unwrap().to_str().unwrap().to_owned();
    for args in [vec!["verify"], vec!["import", "-"]] {
        let run = ccvault(&dir, &args).expect_code(1);
        let error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("ccvault: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line:\n{}", run.stderr));
        assert_eq!(error.matches("Is a directory").count(), 1, "{error}");
        assert_eq!(error.matches(&name).count(), 1, "{error}");
    }
}

#[test]
fn an_empty_ccvault_data_is_taken_as_unset() {
    let tmp = tempfile::tempdir().unwrap();
    import_samples(&tmp.path().join("ccvault-data"));
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let stats = |data: &str, cwd: &Path| {
        std::process::Command::new(common::bin())
            .args(["stats", "--format", "json"])
            .current_dir(cwd)
            .env("CCVAULT_DATA", data)
            .env_remove("CCVAULT_LOG")
            .output()
            .unwrap()
    };
    // Empty: the default directory, ./ccvault-data.
    let out = stats("", tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["records"].as_u64().unwrap() > 0, "{json}");
    // Not empty: still the directory it names.
    let named = tmp.path().join("ccvault-data");
    let out = stats(named.to_str().unwrap(), &elsewhere);
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json);
    // Empty elsewhere: no archive in ./ccvault-data there, said as such.
    let out = stats("", &elsewhere);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no archive at ./ccvault-data"), "{stderr}");
}

/// A page (`report --html`, `show --html`) named over a file of the
/// archive is refused before anything is written: a report page written
/// over the log's segment emptied the archive, exit 0.
#[test]
fn a_page_is_never_written_over_a_file_of_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let segment = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg" || x == "segz"))
        .unwrap();
    let before = fs::read(&segment).unwrap();
    let guid = ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .json_lines()[0]["interactionGUID"]
        .as_str()
        .unwrap()
        .to_owned();
    for (args, what) in [
        (vec!["report", "--html"], "the report page"),
        (vec!["show", guid.as_str(), "--html"], "the timeline page"),
    ] {
        for target in [segment.clone(), dir.join("index.redb")] {
            let mut args = args.clone();
            args.push(target.to_str().unwrap());
            let run = ccvault(&dir, &args).expect_code(2);
            assert!(
                run.stderr.contains(&format!(
                    "cannot write {what} to {}: it is a file of the archive",
                    target.display()
                )),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    assert_eq!(fs::read(&segment).unwrap(), before);
    ccvault(&dir, &["verify"]).ok();
}

#[test]
fn exit_codes_are_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let missing = tmp.path().join("nothing-here");
    for (args, code) in [
        (vec!["stats"], 0),
        (vec!["verify"], 0),
        (vec!["--help"], 0),
        (vec!["--version"], 0),
        // 1: an error.
        (vec!["show", "int-not-archived"], 1),
        // 2: a bad command line, whatever the command.
        (vec!["frobnicate"], 2),
        (vec!["stats", "--no-such-flag"], 2),
        (vec!["--tz", "Mars/Olympus", "stats"], 2),
        (vec!["report", "--tz", "Mars/Olympus"], 2),
        (vec!["stats", "--format", "csv"], 2),
        (vec!["--format", "csv", "stats"], 2),
        (vec!["--format", "human", "export"], 2),
        (vec!["--format", "json", "man"], 2),
        (vec!["export", "--format", "csv"], 2),
        (vec!["report", "--sla", "20"], 2),
        (vec!["report", "--from", "last tuesday"], 2),
        // A date that --tz puts outside the instants there are.
        (vec!["interactions", "--from", "9999-12-31"], 2),
        (vec!["report", "--from", "1763985600"], 2),
        // A year is no epoch millisecond (it read as 1970, exit 0).
        (vec!["report", "--from", "2024"], 2),
        (vec!["import", "--max-record-bytes", "0", "-"], 2),
        // Limits past what the log holds: unallocatable buffers (`8EiB`
        // panicked, and the import said it had succeeded, exit 0), a
        // keep-alive MQTT cannot carry (65536s went as 0), a group commit
        // whose buffer cannot be allocated.
        (vec!["import", "--max-record-bytes", "64MiB", "-"], 2),
        (vec!["import", "--max-record-bytes", "8EiB", "-"], 2),
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:1",
                "--keep-alive",
                "65536s",
            ],
            2,
        ),
        // Nor a fraction of a second (cut off, and under 5 s sent as 5 s,
        // until 2026-12-07).
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:1",
                "--keep-alive",
                "1500ms",
            ],
            2,
        ),
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:1",
                "--max-batch",
                "1000001",
            ],
            2,
        ),
        (vec!["ingest", "mqtt", "--url", "http://127.0.0.1:1883"], 2),
        // A CA file with a plain ws:// URL: the key would go in the clear
        // while the flags read as pinned TLS (MQTT refused the same).
        (
            vec![
                "ingest",
                "pulsar",
                "--url",
                "ws://127.0.0.1:1/ws/v2/reader/persistent/a/b/c",
                "--ca-file",
                "ca.pem",
            ],
            2,
        ),
        // A wallboard clock whose day ends past the last instant (a server
        // started so answered 503 for good).
        (vec!["wallboard", "--at", "9999-12-30"], 2),
        // `-` where only a file or a directory will do.
        (vec!["simulate", "--events", "10", "--truth", "-"], 2),
        // The truth and the events into one file (they interleaved).
        (
            vec![
                "simulate",
                "--events",
                "10",
                "--out",
                "./same.ndjson",
                "--truth",
                "same.ndjson",
            ],
            2,
        ),
        (vec!["export", "--format", "parquet", "--out", "-"], 2),
        // Raw bytes have one format: a --format beside it was ignored.
        (vec!["show", "int-1", "--raw", "--format", "json"], 2),
        // A window whose start is after its end.
        (
            vec!["report", "--from", "2025-11-25", "--to", "2025-11-24"],
            2,
        ),
        (
            vec![
                "--tz",
                "Pacific/Kiritimati",
                "agents",
                "--to",
                "9999-12-31T23:00",
            ],
            2,
        ),
        (vec!["import", "--segment-bytes", "lots"], 2),
        // A segment a record long: a file (and a facts file) per record.
        (vec!["import", "--segment-bytes", "0", "-"], 2),
        // A relative time without its unit (no event is before 1970).
        (vec!["interactions", "--from", "-1"], 2),
        // The simulator's refusals are bad command lines like the rest.
        (vec!["simulate", "--days", "0"], 2),
        (vec!["simulate", "--duplicate-rate", "2"], 2),
        // Each agent is held in memory: 2 billion ran for minutes towards
        // a terabyte before it was bounded.
        (vec!["simulate", "--agents", "2000000000"], 2),
        // A demo holds its day in memory: 100,000 agents took 24 GB.
        (vec!["demo", "--agents", "100000"], 2),
        (vec!["completions", "tcsh"], 2),
        // MQTT options that cannot work together or at all: said before
        // anything is opened or connected.
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:9",
                "--ca-file",
                "ca.pem",
            ],
            2,
        ),
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtt://127.0.0.1:9",
                "--topic",
                "a/#/b",
            ],
            2,
        ),
        // A CA file that cannot be read, by either source (it was exit
        // 1, the code of an archive error, after a summary of nothing).
        (
            vec![
                "ingest",
                "pulsar",
                "--url",
                "wss://127.0.0.1:9/ws/v2/reader/persistent/a/b/c",
                "--ca-file",
                "ca.pem",
            ],
            2,
        ),
        (
            vec![
                "ingest",
                "mqtt",
                "--url",
                "mqtts://127.0.0.1:9",
                "--ca-file",
                "ca.pem",
            ],
            2,
        ),
        // A negative count is a bad value of its flag, not a flag `-1`.
        (vec!["simulate", "--events", "-1"], 2),
        (vec!["demo", "--agents", "-5"], 2),
    ] {
        let run = ccvault(&dir, &args);
        assert_eq!(run.code, code, "{args:?}:\n{}", run.stderr);
        if code == 2 {
            assert!(!run.stderr.is_empty(), "{args:?} says nothing");
            // Named as typed, not as a type or a library's internals.
            assert!(
                !run.stderr.contains("Date(") && !run.stderr.contains("overflowed"),
                "{args:?}: {}",
                run.stderr
            );
            assert!(
                !run.stderr.contains("failed: received"),
                "{args:?}: {}",
                run.stderr
            );
            assert!(
                !["'-1'", "'-5'"]
                    .iter()
                    .any(|n| run.stderr.contains(&format!("unexpected argument {n}"))),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    // A mistyped --data-dir is an error for every command that needs an
    // archive, reindex included (which once made an empty one and exited 0).
    for cmd in ["stats", "reindex"] {
        let run = ccvault(&missing, &[cmd]).expect_code(1);
        assert!(
            run.stderr.contains("no archive at"),
            "{cmd}: {}",
            run.stderr
        );
        assert!(!missing.exists(), "{cmd} created {}", missing.display());
    }
    // verify: 1 when damage is found.
    let seg = common::segment_files(&dir).remove(0);
    let mut bytes = fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&seg, bytes).unwrap();
    let run = ccvault(&dir, &["verify", "--format", "json"]).expect_code(1);
    let report = &run.json_lines()[0];
    assert_eq!(report["clean"], false);
    let damage = report["damage"].as_array().unwrap();
    assert!(!damage.is_empty());
    // Damage comes as objects, not text.
    for d in damage {
        assert!(d["segment"].as_str().unwrap().ends_with(".seg"), "{d}");
        assert!(d["pos"].is_u64() && d["reason"].is_string(), "{d}");
    }
    // Its exit code is the answer, also to a reader that stopped reading
    // (`verify | head -1`): a closed pipe does not make damage a success.
    for format in ["human", "json"] {
        let (code, stderr) = with_closed_stdout(&dir, &["verify", "--format", format]);
        assert_eq!(
            code, 1,
            "verify --format {format} into a closed pipe\n{stderr}"
        );
    }
    // So is an import's, with rejected lines (3), its summary unread.
    let long = tmp.path().join("long.ndjson");
    fs::write(&long, format!("{{\"x\":\"{}\"}}\n", "y".repeat(2000))).unwrap();
    let other = tmp.path().join("other");
    let long = long.to_str().unwrap();
    let args = [
        "import",
        "--max-record-bytes",
        "1KiB",
        "--format",
        "json",
        long,
    ];
    let (code, stderr) = with_closed_stdout(&other, &args);
    assert_eq!(code, 3, "import --format json into a closed pipe\n{stderr}");
}

#[test]
fn a_dash_means_stdout_for_html_and_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let guid = GUID_A;
    for args in [
        vec!["show", guid, "--html", "-"],
        vec!["report", "--html", "-"],
    ] {
        let run = ccvault(&dir, &args).ok();
        let page = run.stdout_str();
        assert!(page.starts_with("<!DOCTYPE html>"), "{args:?}: {page:.80}");
        assert!(page.contains("<svg"), "{args:?}");
        assert!(!dir.join("-").exists() && !Path::new("-").exists());
    }
    // A file is written and named on stderr.
    let file = tmp.path().join("call.html");
    let run = ccvault(&dir, &["show", guid, "--html", file.to_str().unwrap()]).ok();
    assert!(run
        .stderr
        .contains(&format!("wrote the timeline page to {}", file.display())));
    assert!(fs::read_to_string(&file).unwrap().contains("<svg"));
    let run = ccvault(&dir, &["simulate", "--interactions", "20", "--out", "-"]).ok();
    let to_stdout = run.stdout_str();
    assert!(to_stdout.lines().count() > 20);
    let plain = ccvault(&dir, &["simulate", "--interactions", "20"]).ok();
    assert_eq!(plain.stdout_str(), to_stdout);
}

/// `--html -` puts the page alone on stdout: a `--format` beside it, the
/// command's own or the global one, is refused (exit 2) instead of dropped;
/// with a file name for the page, both are written.
#[test]
fn a_page_on_stdout_refuses_a_format_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let guid = GUID_A;
    for args in [
        vec!["report", "--html", "-", "--format", "csv"],
        vec!["--format", "json", "report", "--html", "-"],
        vec!["show", guid, "--html", "-", "--format", "json"],
    ] {
        let run = ccvault(&dir, &args).expect_code(2);
        assert!(run.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            run.stderr
                .contains("--html - writes the page alone on stdout")
                && run.stderr.contains("--format"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let page = tmp.path().join("report.html");
    let run = ccvault(
        &dir,
        &[
            "report",
            "--html",
            page.to_str().unwrap(),
            "--format",
            "csv",
        ],
    )
    .ok();
    assert!(
        run.stdout_str().starts_with("intervalStart,"),
        "{}",
        run.stdout_str()
    );
    assert!(fs::read_to_string(&page)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

#[test]
fn every_command_speaks_json_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let events = sample("events.ndjson");
    let demo = tmp.path().join("demo");
    let commands: Vec<Vec<&str>> = vec![
        vec!["import", events.to_str().unwrap()],
        vec!["stats"],
        vec!["verify"],
        vec!["reindex"],
        vec!["quarantine"],
        vec!["show", GUID_A],
        vec!["interactions"],
        vec!["report"],
        vec!["agents"],
        vec!["rebuild"],
        vec!["export"],
        vec!["export", "--what", "interactions"],
        vec!["simulate", "--interactions", "5"],
        vec!["demo", "--into", demo.to_str().unwrap()],
    ];
    for args in commands {
        // After the command name, and before it.
        for json_first in [false, true] {
            let mut full: Vec<&str> = Vec::new();
            if json_first {
                full.extend(["--format", "json"]);
            }
            full.extend(&args);
            if !json_first {
                full.extend(["--format", "json"]);
            }
            if args[0] == "demo" && json_first {
                fs::remove_dir_all(&demo).unwrap();
            }
            let run = ccvault(&dir, &full).ok();
            let lines = run.json_lines();
            assert!(!lines.is_empty(), "{full:?} printed nothing");
        }
    }
}

#[test]
fn time_flags_take_dates_relative_times_and_units() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let count = |args: &[&str]| {
        let mut full = vec!["--format", "json"];
        full.extend_from_slice(args);
        ccvault(&dir, &full).ok().json_lines().len()
    };
    let all = count(&["interactions"]);
    assert!(all > 0);
    // The samples are of 2025-11-23 (UTC).
    assert_eq!(count(&["interactions", "--from", "2025-11-23"]), all);
    assert_eq!(count(&["interactions", "--from", "2025-11-24"]), 0);
    assert_eq!(count(&["interactions", "--to", "2025-11-23"]), 0);
    // Midnight of the 24th in Tokyo is 15:00 UTC on the 23rd, after them all.
    assert_eq!(
        count(&["interactions", "--tz", "Asia/Tokyo", "--to", "2025-11-24"]),
        all
    );
    assert_eq!(count(&["interactions", "--from", "-7d"]), 0);
    assert_eq!(count(&["interactions", "--to", "now"]), all);
    // Raw events by event time: the one sample event without a time of its
    // own has its arrival time (METRICS), so it alone is after the 24th.
    let late = ccvault(&dir, &["export", "--from", "2025-11-24"]).ok();
    let late = late.json_lines();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["AgentProvChange"]["msgInfo"], serde_json::json!({}));
    assert_eq!(
        count(&["export", "--to", "2025-11-24"]) + 1,
        count(&["export"])
    );
    assert_eq!(count(&["export", "--to", "now"]), count(&["export"]));
    // Quarantined lines arrived just now.
    assert_eq!(
        count(&["quarantine", "--from", "-1h"]),
        count(&["quarantine"])
    );
    assert_eq!(count(&["quarantine", "--to", "-1h"]), 0);
    for sla in ["1m30s", "90s", "PT90S"] {
        assert_eq!(
            ccvault(&dir, &["--format", "json", "report", "--sla", sla])
                .ok()
                .stdout,
            ccvault(&dir, &["--format", "json", "report", "--sla", "90000ms"])
                .ok()
                .stdout
        );
    }
}

#[test]
fn completions_and_the_manual_page_cover_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let commands = [
        "demo",
        "import",
        "show",
        "stats",
        "verify",
        "reindex",
        "quarantine",
        "ingest",
        "simulate",
        "interactions",
        "report",
        "agents",
        "rebuild",
        "export",
        "completions",
        "man",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let run = ccvault(tmp.path(), &["completions", shell]).ok();
        let script = run.stdout_str();
        for c in commands {
            assert!(script.contains(c), "{shell} completion lacks {c}");
        }
        // Flags of the commands (fish names them without dashes).
        for flag in ["outcome", "sla", "data-dir", "format"] {
            assert!(script.contains(flag), "{shell} completion lacks {flag}");
        }
        // Never one hidden from help (until 2026-12-07 they were offered).
        for hidden in ["print-acks", "backoff-ms"] {
            assert!(
                !script.contains(hidden),
                "{shell} completion offers {hidden}"
            );
        }
    }
    // Nor a global flag where the command's help hides it.
    let fish = ccvault(tmp.path(), &["completions", "fish"]).ok();
    let offered = |command: &str, flag: &str| {
        fish.stdout_str().lines().any(|l| {
            l.contains(&format!("subcommand {command}\"")) && l.contains(&format!("-l {flag} "))
        })
    };
    assert!(offered("import", "data-dir") && !offered("simulate", "data-dir"));
    // The bash script is valid bash.
    let script = tmp.path().join("ccvault.bash");
    fs::write(
        &script,
        ccvault(tmp.path(), &["completions", "bash"]).ok().stdout,
    )
    .unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let page = ccvault(tmp.path(), &["man"]).ok().stdout_str();
    assert!(
        page.starts_with(".ie") || page.contains(".TH ccvault 1"),
        "{page:.200}"
    );
    assert!(page.contains(".TH ccvault 1"));
    for c in commands {
        assert!(page.contains(c), "the man page lacks {c}");
    }
    assert!(page.contains("CCVAULT_DATA") && page.contains("\\-\\-data\\-dir"));

    // A page per command, as `man ccvault-import` would find it, with the
    // command's own flags and the global ones.
    for (c, flag) in [
        ("import", "\\-\\-input\\-format"),
        ("report", "\\-\\-sla"),
        ("export", "\\-\\-since\\-last"),
        ("serve", "\\-\\-token\\-file"),
    ] {
        let page = ccvault(tmp.path(), &["man", c]).ok().stdout_str();
        assert!(page.contains(&format!(".TH ccvault-{c} 1")), "{page:.300}");
        assert!(page.contains(flag), "ccvault-{c}(1) lacks {flag}");
        assert!(
            page.contains("\\-\\-data\\-dir"),
            "ccvault-{c}(1) lacks --data-dir"
        );
    }
    // The pages the ingest page points to, by either name, with their
    // flags; no page points to a `help` pseudo-command.
    let ingest = ccvault(tmp.path(), &["man", "ingest"]).ok().stdout_str();
    assert!(ingest.contains("ccvault\\-ingest\\-mqtt(1)"), "{ingest}");
    for name in [&["ingest-mqtt"][..], &["ingest mqtt"], &["ingest", "mqtt"]] {
        let args: Vec<&str> = std::iter::once("man").chain(name.iter().copied()).collect();
        let page = ccvault(tmp.path(), &args).ok().stdout_str();
        assert!(page.contains(".TH ccvault-ingest-mqtt 1"), "{page:.300}");
        assert!(page.contains("\\-\\-keep\\-alive"), "{name:?}");
    }
    for page in [&page, &ingest] {
        assert!(!page.contains("help(1)"), "{page}");
    }
    // Every page says its exit codes (docs/OPERATIONS.md, "Exit codes"),
    // where man-pages(7) puts them: after the options, before the version.
    let import = ccvault(tmp.path(), &["man", "import"]).ok().stdout_str();
    for page in [&page, &ingest, &import] {
        let status = page
            .find(".SH \"EXIT STATUS\"")
            .expect("an EXIT STATUS section");
        assert!(page.find(".SH OPTIONS").unwrap() < status, "{page}");
        assert!(status < page.find(".SH VERSION").unwrap(), "{page}");
        for code in [
            "\\fB0\\fR",
            "\\fB1\\fR",
            "\\fB2\\fR",
            "\\fB3\\fR",
            "\\fB130\\fR",
        ] {
            assert!(page[status..].contains(code), "{code} in {page}");
        }
    }
    let run = ccvault(tmp.path(), &["man", "frobnicate"]).expect_code(2);
    assert!(
        run.stderr.contains("frobnicate") && run.stderr.contains("ingest-pulsar"),
        "{}",
        run.stderr
    );
}

/// The names in `dir/log` that are segments (`.seg`, `.segz`), sorted.
fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg") || n.ends_with(".segz"))
        .collect();
    names.sort();
    names
}

/// `import` exits with its archive as small as it gets: every sealed
/// segment compressed (docs/FORMAT.md §1.7), those it sealed itself and
/// those an earlier writer left as `.seg`; only the last one, still being
/// written, stays a `.seg`.
#[test]
fn import_exits_with_every_sealed_segment_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let first = tmp.path().join("first.ndjson");
    let second = tmp.path().join("second.ndjson");
    for (file, seed) in [(&first, "1"), (&second, "2")] {
        let out = file.to_str().unwrap();
        let args = [
            "simulate",
            "--interactions",
            "300",
            "--seed",
            seed,
            "--out",
            out,
        ];
        ccvault(&dir, &args).ok();
    }
    let small = ["--segment-bytes", "64KiB"];
    import(&dir, &[&first], &[&small[..], &["--no-compress"]].concat());
    let left = segment_names(&dir);
    assert!(
        left.len() >= 10 && left.iter().all(|n| n.ends_with(".seg")),
        "{left:?}"
    );
    import(&dir, &[&second], &small);
    let names = segment_names(&dir);
    assert!(names.len() > left.len(), "{names:?}");
    let (last, sealed) = names.split_last().unwrap();
    assert!(last.ends_with(".seg"), "{names:?}");
    assert!(sealed.iter().all(|n| n.ends_with(".segz")), "{names:?}");
    // Exit 0: every record and block checked.
    ccvault(&dir, &["verify"]).ok();
}

/// On a terminal, an input of unknown length (a FIFO) gets a count of what
/// was read and its rate, not a bar: its length (0) said nothing, and the
/// bar was drawn full from the start (`… [====…] 1.2 KiB/0 B`).
#[test]
fn a_fifo_on_a_terminal_shows_what_was_read_not_a_full_bar() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("feed.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let data = tmp.path().join("data");
    let command = format!(
        "{} --data-dir {} import {}",
        common::bin(),
        data.display(),
        fifo.display()
    );
    // `script` gives the command a terminal and writes what it drew.
    let child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = fs::read_to_string(common::sample("events.ndjson")).unwrap();
    let mut feed = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // Slowly, so that the progress line is drawn while it is read.
    for line in lines.lines() {
        writeln!(feed, "{line}").unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(feed);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(drawn.contains("feed.fifo"), "{drawn}");
    assert!(!drawn.contains("/0 B") && !drawn.contains("[="), "{drawn}");
    assert!(drawn.contains("B/s"), "{drawn}");
}

/// `reindex` (and an open that must index much of the log: an upgrade)
/// draws on a terminal how many records it has indexed, where it drew
/// nothing for as long as the whole log took to read; nothing with `-q`
/// or without a terminal.
#[test]
fn reindex_on_a_terminal_shows_the_records_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 300_000,
        interactions: 30_000,
        line_len: 150,
    };
    let input = tmp.path().join("events.ndjson");
    fs::write(&input, s.text(0..s.events)).unwrap();
    let data = tmp.path().join("data");
    import(&data, &[&input], &["--no-compress"]);
    let on_terminal = |quiet: &str| -> String {
        let command = format!(
            "{} {quiet} --data-dir {} reindex",
            common::bin(),
            data.display()
        );
        // `script` gives the command a terminal and writes what it drew.
        let out = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let drawn = on_terminal("");
    assert!(drawn.contains("indexing the log"), "{drawn}");
    assert!(drawn.contains(" records ("), "{drawn}");
    assert!(drawn.contains("reindexed 300000 records"), "{drawn}");
    let quiet = on_terminal("-q");
    assert!(!quiet.contains("indexing"), "{quiet}");
    let piped = ccvault(&data, &["reindex"]).ok();
    assert!(
        !piped.stderr.contains("indexing the log"),
        "{}",
        piped.stderr
    );
}

/// A global flag a command has no use for (`--data-dir` for `simulate`,
/// which opens no archive; `--data-dir` and `--tz` for `man` and
/// `completions`) is not listed in its help or manual page, where a
/// newcomer took it for something the command reads, and is still
/// accepted there; the commands that use it list it.
#[test]
fn global_flags_a_command_does_not_use_are_accepted_but_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unused");
    for (command, unused) in [
        (&["simulate"][..], &["--data-dir", "--tz"][..]),
        (&["man"][..], &["--data-dir", "--tz"][..]),
        (&["completions"][..], &["--data-dir", "--tz"][..]),
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = ccvault(&dir, &args).ok().stdout_str();
        for flag in unused {
            assert!(!help.contains(flag), "{command:?}: {help}");
        }
        assert!(help.contains("--quiet"), "{command:?}: {help}");
    }
    let page = ccvault(&dir, &["man", "simulate"]).ok().stdout_str();
    assert!(!page.contains("data\\-dir"), "{page}");
    // Still accepted, before and after the command's name.
    let run = ccvault(&dir, &["simulate", "--events", "2", "-q"]).ok();
    assert_eq!(run.stdout_str().lines().count(), 2);
    let zoned = ccvault(
        &dir,
        &["simulate", "--events", "2", "-q", "--tz", "Asia/Tokyo"],
    )
    .ok();
    assert_eq!(zoned.stdout, run.stdout, "--tz changed the stream");
    let run = ccvault(&dir, &["completions", "--tz", "UTC", "bash"]).ok();
    assert!(run.stdout_str().contains("ccvault"));
    assert!(!dir.exists(), "simulate or completions made an archive");
    let import = ccvault(&dir, &["import", "--help"]).ok().stdout_str();
    assert!(import.contains("--data-dir"), "{import}");
}

/// An import's summary says its lines are durable only when they were
/// synced: under `--fsync never` it says they were written, not synced.
#[test]
fn an_unsynced_import_does_not_call_its_lines_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let events = sample("events.ndjson");
    let synced = ccvault(
        &tmp.path().join("synced"),
        &["import", events.to_str().unwrap()],
    )
    .ok();
    assert!(synced.stderr.contains("; all durable"), "{}", synced.stderr);
    let unsynced = ccvault(
        &tmp.path().join("unsynced"),
        &["import", "--fsync", "never", events.to_str().unwrap()],
    )
    .ok();
    assert!(
        unsynced
            .stderr
            .contains("all written, not synced (--fsync never")
            && !unsynced.stderr.contains("durable"),
        "{}",
        unsynced.stderr
    );
    // The JSON summary says it too (until 2026-12-07 only the human one).
    for (name, fsync, durable) in [("j-synced", "batch", true), ("j-unsynced", "never", false)] {
        let run = ccvault(
            &tmp.path().join(name),
            &[
                "import",
                "--fsync",
                fsync,
                "--format",
                "json",
                events.to_str().unwrap(),
            ],
        )
        .ok();
        assert_eq!(
            run.json_lines()[0]["durable"],
            durable,
            "{}",
            run.stdout_str()
        );
    }
}

#[test]
fn a_log_filter_that_does_not_parse_is_said_and_the_command_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_archive(tmp.path());
    let with_filter = |filter: &str, quiet: bool| {
        let mut args = vec!["stats"];
        if quiet {
            args.push("-q");
        }
        let run = command(&dir, &args)
            .env("CCVAULT_LOG", filter)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(run.status.success(), "CCVAULT_LOG={filter}: {run:?}");
        assert!(String::from_utf8_lossy(&run.stdout).contains("records"));
        String::from_utf8_lossy(&run.stderr).into_owned()
    };
    let said = with_filter("ccvault_store=verbose", false);
    assert!(
        said.contains("CCVAULT_LOG ignored") && said.contains("ccvault_store=verbose"),
        "{said}"
    );
    assert!(with_filter("ccvault_store=verbose", true).is_empty());
    assert!(!with_filter("ccvault_store=debug", false).contains("CCVAULT_LOG"));
}
