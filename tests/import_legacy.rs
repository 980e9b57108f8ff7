//! `ccvault import` of legacy streaming API captures (docs/INGEST.md "Legacy
//! captures"): the 8x8 documentation's sample events pretty-printed, in a
//! JSON array, back to back and one a line (tests/fixtures/8x8-docs/legacy),
//! detected from the file or named with --input-format; each event archived
//! with its own bytes; quarantine reasons naming the byte offset; XML
//! refused.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::{ccvault, ccvault_stdin, docs_fixture, import, scan, stats};

mod common;

fn legacy(name: &str) -> PathBuf {
    docs_fixture(&format!("legacy/{name}"))
}

/// The six events as the page prints them (pretty) and compacted.
fn pretty_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(legacy("sample-events.json")).unwrap();
    text.split("\n\n")
        .map(|b| b.trim_end().to_owned())
        .collect()
}

fn compact_lines() -> Vec<String> {
    let text = std::fs::read_to_string(legacy("newline-json.ndjson")).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Archived payloads, in archive order.
fn payloads(dir: &Path) -> Vec<String> {
    let (records, damage) = scan(dir);
    assert!(damage.is_empty(), "{damage:?}");
    records
        .into_iter()
        .map(|r| String::from_utf8(r.payload).unwrap())
        .collect()
}

fn summary(dir: &Path, files: &[&Path], extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let run = import(dir, files, &args);
    run.json_lines()[0].clone()
}

fn counts(s: &serde_json::Value) -> [u64; 6] {
    [
        "lines",
        "archived",
        "quarantined",
        "duplicates",
        "control",
        "rejected",
    ]
    .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")))
}

#[test]
fn every_legacy_json_shape_is_detected_and_each_event_archived_with_its_own_bytes() {
    let pretty = pretty_blocks();
    let compact = compact_lines();
    assert_eq!((pretty.len(), compact.len()), (6, 6));
    for (file, expected) in [
        ("sample-events.json", &pretty),
        ("array.json", &pretty),
        ("json-stream.json", &compact),
        ("newline-json.ndjson", &compact),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let s = summary(&dir, &[&legacy(file)], &[]);
        // Six messages: the heartbeat is control, five events archived.
        assert_eq!(counts(&s), [6, 5, 0, 0, 1, 0], "{file}: {s}");
        // Each archived as it appears in the file, not reformatted and not
        // the whole file; the heartbeat (first) is not archived.
        assert_eq!(payloads(&dir), expected[1..], "{file}");
        assert_eq!(stats(&dir).interactions, 2, "{file}");
    }
}

#[test]
fn a_gzipped_capture_is_detected_after_decompression() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("sample-events.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(legacy("sample-events.json")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    let dir = tmp.path().join("a");
    let s = summary(&dir, &[&gz], &[]);
    assert_eq!(counts(&s), [6, 5, 0, 0, 1, 0], "{s}");
    assert_eq!(payloads(&dir), pretty_blocks()[1..]);
}

#[test]
fn the_same_events_in_other_bytes_are_other_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let files = [
        legacy("sample-events.json"),
        legacy("array.json"),
        legacy("json-stream.json"),
        legacy("newline-json.ndjson"),
    ];
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let s = summary(&dir, &files, &[]);
    // Pretty (twice) and compact (twice): each byte form archived once.
    assert_eq!(counts(&s), [24, 10, 0, 10, 4, 0], "{s}");
}

#[test]
fn the_input_format_can_be_named() {
    let file = legacy("sample-events.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // Read as NDJSON (the former behaviour), every non-blank line of the
    // pretty-printed file is a message, quarantined the first time its
    // bytes are seen (`}, {` and the like recur).
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let distinct = lines
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    let n = lines.len() as u64;
    let s = summary(
        &tmp.path().join("a"),
        &[&file],
        &["--input-format", "ndjson"],
    );
    assert_eq!(counts(&s), [n, 0, distinct, n - distinct, 0, 0], "{s}");

    // The pretty file read as a JSON stream, and the array as an array.
    let s = summary(
        &tmp.path().join("b"),
        &[&file],
        &["--input-format", "json-stream"],
    );
    assert_eq!(counts(&s), [6, 5, 0, 0, 1, 0], "{s}");
    let array = legacy("array.json");
    let s = summary(
        &tmp.path().join("c"),
        &[&array],
        &["--input-format", "json-array"],
    );
    assert_eq!(counts(&s), [6, 5, 0, 0, 1, 0], "{s}");
}

#[test]
fn a_bad_value_in_a_stream_is_quarantined_naming_its_line_and_byte_offset() {
    let compact = compact_lines();
    let bad = r#"{"not": "an event"}"#;
    let input = format!("{}\n  {bad}{}", compact[1], compact[2]);
    let offset = compact[1].len() + 3;
    assert_eq!(&input[offset..offset + bad.len()], bad);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let run = ccvault_stdin(
        &dir,
        &[
            "import",
            "--input-format",
            "json-stream",
            "--format",
            "json",
            "-",
        ],
        input.as_bytes(),
    )
    .ok();
    assert_eq!(counts(&run.json_lines()[0]), [3, 2, 1, 0, 0, 0]);
    let q = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["payload"], bad);
    assert_eq!(q[0]["line"], 2);
    let reason = q[0]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with(&format!("(at input byte offset {offset})")),
        "{reason}"
    );
}

/// A value over the record limit in a one-line array is rejected naming
/// its byte offset, as a quarantined one is: its line is the whole file
/// (it said only `:1`).
#[test]
fn a_value_over_the_limit_in_an_array_is_rejected_naming_its_byte_offset() {
    let compact = compact_lines();
    let big = format!(
        r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"int-x-phone-00-a","pad":"{}"}}}}"#,
        "y".repeat(2000)
    );
    let input = format!("[{},{big},{}]", compact[1], compact[2]);
    let offset = compact[1].len() + 2;
    assert!(input[offset..].starts_with(&big));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let run = ccvault_stdin(
        &dir,
        &["import", "--max-record-bytes", "1KiB", "-"],
        input.as_bytes(),
    )
    .expect_code(3);
    assert!(
        run.stderr.contains(&format!(
            "exceeds the limit of 1024 bytes (at input byte offset {offset})"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(stats(&dir).records, 2);
}

/// A capture that ends inside its array (cut short, or `[[` alone) is said
/// as a rejection naming where the array began (exit 3): it imported as if
/// whole, exit 0, until 2026-12-07. Its values before the end are archived;
/// a closed array, even of nothing, is no rejection.
#[test]
fn an_array_the_input_never_closes_is_rejected_naming_where_it_began() {
    let compact = compact_lines();
    let cut = format!("[{},\n[", compact[1]);
    let batches = format!("  [[{}],[{}]", compact[1], compact[2]);
    for (input, archived, at, line) in [
        ("[[\n".to_owned(), 0, 0, 1),
        (cut, 1, 0, 1),
        (batches, 2, 2, 1),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let run = ccvault_stdin(&dir, &["import", "-"], input.as_bytes()).expect_code(3);
        assert!(
            run.stderr.contains(&format!(
                "-:{line}: rejected: the JSON array begun at byte offset {at} is never closed"
            )),
            "{input:?}: {}",
            run.stderr
        );
        assert_eq!(payloads(&dir).len(), archived, "{input:?}");
    }
    for whole in ["[]\n", "[[],[[]]]", &format!("[{}]", compact[1])] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let run = ccvault_stdin(&dir, &["import", "-"], whole.as_bytes()).ok();
        assert!(
            !run.stderr.contains("never closed"),
            "{whole:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn an_xml_capture_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("capture.xml");
    std::fs::write(
        &file,
        "<?xml version=\"1.0\"?>\n<AgentStatusChange><agentId>ag1</agentId></AgentStatusChange>\n",
    )
    .unwrap();
    let dir = tmp.path().join("a");
    let run = ccvault(&dir, &["import", file.to_str().unwrap()]).expect_code(1);
    let err = &run.stderr;
    assert!(
        err.contains("capture.xml") && err.contains("XML capture") && err.contains("JSON"),
        "{err}"
    );
    assert_eq!(stats(&dir).records, 0);
}

/// A capture compressed with anything but gzip is refused before anything
/// is archived, saying how to decompress it (read as text, its bytes
/// would be thousands of quarantined lines, for good).
#[test]
fn a_capture_compressed_otherwise_than_gzip_is_refused_naming_the_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let junk: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
    for (name, magic, tool) in [
        ("c.ndjson.xz", &b"\xFD7zXZ\x00"[..], "xz -dc"),
        ("c.ndjson.bz2", b"BZh9", "bzip2 -dc"),
        ("c.ndjson.zst", b"\x28\xB5\x2F\xFD", "zstd -dc"),
        ("c.zip", b"PK\x03\x04", "unzip -p"),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, [magic, &junk[..]].concat()).unwrap();
        let dir = tmp.path().join(format!("a-{name}"));
        // After a good file too: refused before that one is archived (it
        // was archived, and the error said no line was durable).
        let good = tmp.path().join("good.ndjson");
        let s = common::Stream {
            events: 1,
            interactions: 1,
            line_len: 300,
        };
        std::fs::write(&good, format!("{}\n", s.line(0))).unwrap();
        let run = ccvault(
            &dir,
            &["import", good.to_str().unwrap(), file.to_str().unwrap()],
        )
        .expect_code(1);
        assert!(
            run.stderr.contains(name) && run.stderr.contains(tool),
            "{name}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("before the error"), "{}", run.stderr);
        assert!(!dir.exists(), "{name}: the archive was created");
    }
}

/// An NDJSON capture whose first line is a log banner starting with `[`
/// is NDJSON, not a JSON array: each line is archived with its own bytes,
/// padding included, and the banner is one quarantined line. Until
/// 2026-12-07 it was read as an array: padding dropped (so a backfill of
/// the same lines stored them again) and the banner in pieces (outside
/// audit).
#[test]
fn a_log_banner_in_brackets_before_ndjson_is_one_bad_line() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 3,
        interactions: 1,
        line_len: 300,
    };
    let lines = [
        "[INFO] consumer connected".to_string(),
        format!("  {}\t", s.line(0)),
        s.line(1),
        format!("{}  ", s.line(2)),
    ];
    let input = tmp.path().join("banner.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let dir = tmp.path().join("a");
    let run = ccvault(&dir, &["import", input.to_str().unwrap()]).ok();
    assert!(
        run.stderr.contains("3 archived, 1 quarantined"),
        "{}",
        run.stderr
    );
    let quarantined = ccvault(&dir, &["quarantine", "--format", "json"]).ok();
    let rows = quarantined.json_lines();
    assert_eq!(rows.len(), 1, "{}", quarantined.stdout_str());
    assert_eq!(rows[0]["payload"], "[INFO] consumer connected");
    let raw = ccvault(&dir, &["show", &s.guid(0), "--raw"]).ok();
    assert_eq!(raw.stdout_str(), lines[1..].join("\n") + "\n");
}

/// A tar archive of captures, plain or gzipped, and a capture gzipped
/// twice are refused like the other compressions, named, with the command
/// that unpacks them, before anything is archived, from a file or from
/// stdin; so is UTF-16 text inside gzip. Until 2026-12-07 the tar header
/// glued to each file's first line made it a quarantined record (the
/// disputed call lost its InteractionCreated), a `.gz.gz` was archived as
/// binary lines, and the import exited 0 (outside audit).
#[test]
fn a_tar_archive_or_a_capture_gzipped_twice_is_refused_naming_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 20,
        interactions: 2,
        line_len: 300,
    };
    let capture = tmp.path().join("capture.ndjson");
    std::fs::write(&capture, s.text(0..20)).unwrap();
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(tmp.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    };
    sh("tar -cf c.tar capture.ndjson && tar -czf c.tar.gz capture.ndjson");
    sh("gzip -c capture.ndjson | gzip -c > c.ndjson.gz.gz");
    sh("iconv -f UTF-8 -t UTF-16LE capture.ndjson | gzip -c > c.utf16.gz");
    let good = tmp.path().join("good.ndjson");
    std::fs::write(&good, format!("{}\n", s.line(0))).unwrap();
    for (name, says) in [
        ("c.tar", "tar -xOf"),
        ("c.tar.gz", "tar -xOf"),
        ("c.ndjson.gz.gz", "compressed twice"),
        ("c.utf16.gz", "UTF-16LE"),
    ] {
        let file = tmp.path().join(name);
        let dir = tmp.path().join(format!("a-{name}"));
        let run = ccvault(
            &dir,
            &["import", good.to_str().unwrap(), file.to_str().unwrap()],
        )
        .expect_code(1);
        assert!(
            run.stderr.contains(name) && run.stderr.contains(says),
            "{name}: {}",
            run.stderr
        );
        assert!(!dir.exists(), "{name}: the archive was created");
        let bytes = std::fs::read(&file).unwrap();
        let run = common::ccvault_stdin(&dir, &["import", "-"], &bytes).expect_code(1);
        assert!(run.stderr.contains(says), "{name} on stdin: {}", run.stderr);
        assert_eq!(stats(&dir).records, 0, "{name} on stdin");
    }
    // A gzip capture of events is imported as ever.
    sh("gzip -k capture.ndjson");
    let dir = tmp.path().join("a-gz");
    import(&dir, &[&tmp.path().join("capture.ndjson.gz")], &[]);
    assert_eq!(stats(&dir).records, 20);
}

/// `import -` of `bytes` from a pipe written twice: its first `first`
/// bytes, then, a pause later, the rest (a live feed's first write may be
/// short). The rest may find the pipe closed, by an import that refused
/// the input.
fn import_in_two_writes(dir: &Path, bytes: &[u8], first: usize) -> std::process::Output {
    let mut child = common::command(dir, &["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..first]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = stdin.write_all(&bytes[first..]);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// A capture in UTF-16 or UTF-32 (PowerShell 5's `>` writes UTF-16LE) is
/// refused before anything is archived, naming the file, the encoding and
/// the command that converts it: read as UTF-8 each of its lines was a
/// quarantined record, for good, and the import exited 0.
#[test]
fn a_capture_in_utf16_is_refused_naming_the_encoding() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 3,
        interactions: 1,
        line_len: 300,
    };
    let text: String = (0..3).map(|i| format!("{}\r\n", s.line(i))).collect();
    let utf16 = |big: bool, mark: bool| -> Vec<u8> {
        let units = (mark.then_some(0xFEFF_u16).into_iter()).chain(text.encode_utf16());
        units
            .flat_map(|u| {
                if big {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    };
    let utf32le: Vec<u8> = text
        .chars()
        .flat_map(|c| (c as u32).to_le_bytes())
        .collect();
    for (name, bytes, encoding) in [
        ("le-bom.json", utf16(false, true), "UTF-16LE"),
        ("be-bom.json", utf16(true, true), "UTF-16BE"),
        ("le.json", utf16(false, false), "UTF-16LE"),
        ("be.json", utf16(true, false), "UTF-16BE"),
        ("le32.json", utf32le, "UTF-32LE"),
        // Behind a UTF-8 byte order mark (accepted until 2026-12-07: its
        // lines quarantined for good; an outside audit).
        (
            "bom8-le.json",
            [&b"\xEF\xBB\xBF"[..], &utf16(false, false)].concat(),
            "UTF-16LE",
        ),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let dir = tmp.path().join(format!("a-{name}"));
        let run = ccvault(&dir, &["import", file.to_str().unwrap()]).expect_code(1);
        let expected = format!("{name}: this is {encoding} text");
        assert!(
            run.stderr.contains(&expected) && run.stderr.contains("iconv -f"),
            "{name}: {}",
            run.stderr
        );
        assert!(!dir.exists(), "{name}: the archive was created");
        let run = common::ccvault_stdin(&dir, &["import", "-"], &bytes).expect_code(1);
        assert!(
            run.stderr.contains(encoding),
            "{name} on stdin: {}",
            run.stderr
        );
        // A pipe whose first write is 1 to 3 bytes (these were read as
        // text until 2026-12-07: an outside audit).
        for first in 1..=3 {
            let out = import_in_two_writes(&dir, &bytes, first);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name}, first write {first}: {stderr}"
            );
            assert!(
                stderr.contains(encoding),
                "{name}, first write {first}: {stderr}"
            );
        }
    }
    // The same lines in UTF-8, with or without its byte order mark, are
    // archived.
    for (name, mark) in [("plain.json", &b""[..]), ("bom.json", b"\xEF\xBB\xBF")] {
        let file = tmp.path().join(name);
        std::fs::write(&file, [mark, text.as_bytes()].concat()).unwrap();
        let dir = tmp.path().join(format!("a-{name}"));
        ccvault(&dir, &["import", file.to_str().unwrap()]).expect_code(0);
        assert_eq!(stats(&dir).records, 3, "{name}");
        assert_eq!(stats(&dir).quarantined, 0, "{name}");
    }
    // One stray NUL byte before UTF-8 lines is no UTF-16: the line holding
    // it is quarantined, the others archived (until 2026-12-07 the file
    // was refused as UTF-16BE, with advice that garbled it: an outside
    // audit).
    for (name, stray, archived) in [("nul.json", &b"\0"[..], 2), ("nul-line.json", b"\0\n", 3)] {
        let file = tmp.path().join(name);
        std::fs::write(&file, [stray, text.as_bytes()].concat()).unwrap();
        let dir = tmp.path().join(format!("a-{name}"));
        ccvault(&dir, &["import", file.to_str().unwrap()]).expect_code(0);
        let st = stats(&dir);
        assert_eq!(
            (st.events, st.quarantined),
            (archived, 1),
            "{name}: {:?}",
            st.json
        );
    }
}

/// A pretty-printed capture whose first value is longer than the block
/// auto-detection reads (1 MiB) is still a JSON stream, not NDJSON cut into
/// quarantined lines: within the size limit every value is archived with
/// its own bytes; over it, that value alone is rejected.
#[test]
fn a_pretty_capture_whose_first_value_outgrows_the_detection_block_is_a_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let datum: Vec<String> = (0..40_000)
        .map(|i| format!("        {{\n          \"attachedDataKey\": \"k{i}\",\n          \"attachedDataValue\": {i}\n        }}"))
        .collect();
    let big = format!(
        "{{\n  \"Interaction\": {{\n    \"event\": \"InteractionQueued\",\n    \"interactionGUID\": \"int-bigpretty-phone-00-acme\",\n    \"attachedData\": {{\n      \"attachedDatum\": [\n{}\n      ]\n    }}\n  }}\n}}",
        datum.join(",\n")
    );
    assert!(big.len() > 2 << 20);
    let small = |i: u32| {
        format!("{{\n  \"Interaction\": {{\n    \"event\": \"InteractionQueued\",\n    \"interactionGUID\": \"int-imp-{i}-phone-00-acme\",\n    \"interactionEventTS\": {}\n  }}\n}}", 1_763_900_000 + i)
    };
    let path = tmp.path().join("capture.json");
    std::fs::write(&path, format!("{big}\n{}\n{}\n", small(3), small(4))).unwrap();

    let dir = tmp.path().join("roomy");
    let s = summary(&dir, &[&path], &["--max-record-bytes", "4MiB"]);
    assert_eq!(counts(&s), [3, 3, 0, 0, 0, 0], "{s}");
    assert_eq!(payloads(&dir), vec![big.clone(), small(3), small(4)]);

    let dir = tmp.path().join("default");
    let run = ccvault(
        &dir,
        &["import", path.to_str().unwrap(), "--format", "json"],
    )
    .expect_code(3);
    assert_eq!(
        counts(&run.json_lines()[0]),
        [3, 2, 0, 0, 0, 1],
        "{}",
        run.stderr
    );
    assert_eq!(payloads(&dir), vec![small(3), small(4)]);
}

/// A capture cut off inside a nested object or array (a truncated file
/// with more appended, a writer killed mid-event) loses that event alone:
/// it is one quarantined message and every event after it is archived,
/// in a one-line stream as in a pretty-printed one.
#[test]
fn a_value_cut_off_deep_inside_loses_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let event = |i: u32| {
        format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-cut-{i}-phone-00-acme","interactionEventTS":{},"attachedData":{{"attachedDatum":[{{"attachedDataKey":"k","attachedDataValue":{i}}}]}}}}}}"#,
            1_763_900_000 + i
        )
    };
    let pretty = |i: u32| {
        let v: serde_json::Value = serde_json::from_str(&event(i)).unwrap();
        serde_json::to_string_pretty(&v).unwrap()
    };
    for (name, write) in [
        ("compact", &event as &dyn Fn(u32) -> String),
        ("pretty", &pretty),
    ] {
        let whole = write(0);
        for cut_after in [
            r#""Interaction":{"#,
            r#""attachedDatum":["#,
            r#""attachedDataKey":"#,
        ] {
            let at = whole.replace([' ', '\n'], "").find(cut_after).unwrap();
            // The same place in the pretty text: count its non-blank bytes.
            let mut seen = 0;
            let cut = whole
                .char_indices()
                .find(|(_, c)| {
                    if !c.is_whitespace() {
                        seen += 1;
                    }
                    seen > at + cut_after.len()
                })
                .map_or(whole.len(), |(i, _)| i);
            let mut text = format!("{}\n{}\n", write(1), &whole[..cut]);
            for i in 2..40 {
                text.push_str(&write(i));
                text.push('\n');
            }
            let path = tmp.path().join(format!("{name}.json"));
            std::fs::write(&path, text).unwrap();
            let dir = tmp.path().join(format!("{name}-{}", cut_after.len()));
            let s = summary(&dir, &[&path], &["--input-format", "json-stream"]);
            assert_eq!(
                counts(&s),
                [40, 39, 1, 0, 0, 0],
                "{name}, cut after {cut_after}: {s}"
            );
        }
    }
}

/// A capture on one line (values back to back, blank-separated, a compact
/// array, `json.dumps(list)`), its first or a middle value cut off at
/// every fifth byte: the cut value is one quarantined message and every
/// other event is archived, whatever the shape and the cut.
#[test]
fn a_value_cut_off_in_a_one_line_capture_loses_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let event = |i: u32| {
        format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-line-{i}-phone-00-acme","interactionEventTS":{},"queueName":"Sales, \"EU\" {{1}}","attachedData":{{"attachedDatum":[{{"attachedDataKey":"k","attachedDataValue":"v{i}"}},{{"attachedDataKey":"n","attachedDataValue":"{{\"a\":[1]}}"}}]}}}}}}"#,
            1_763_900_000 + i
        )
    };
    let events: Vec<String> = (0..11).map(event).collect();
    for e in &events {
        serde_json::from_str::<serde_json::Value>(e).unwrap();
    }
    let shapes: [(&str, &str, &str, &str); 4] = [
        ("back-to-back", "", "", ""),
        ("blanks", "", " ", ""),
        ("array", "[", ",", "]"),
        ("dumps", "[", ", ", "]"),
    ];
    let mut imports = 0;
    for (shape, open, sep, close) in shapes {
        imports += each_cut_loses_only_itself(tmp.path(), shape, &events, 5, &|values| {
            format!("{open}{}{close}", values.join(sep))
        });
    }
    assert!(imports > 300, "{imports}");
}

/// Imports `values` written out by `write`, the first and then a middle
/// one cut off at every `step`th byte: the cut value is one quarantined
/// message and every other is archived with its own bytes. Returns the
/// imports made.
fn each_cut_loses_only_itself(
    tmp: &Path,
    shape: &str,
    values: &[String],
    step: usize,
    write: &dyn Fn(&[&str]) -> String,
) -> usize {
    let mut imports = 0;
    for cut_index in [0usize, 5] {
        let whole = &values[cut_index];
        for cut in (1..whole.len()).step_by(step) {
            let mut cut_values: Vec<&str> = values.iter().map(String::as_str).collect();
            cut_values[cut_index] = &whole[..cut];
            let path = tmp.join(format!("{shape}-{cut_index}-{cut}.json"));
            std::fs::write(&path, write(&cut_values)).unwrap();
            let dir = tmp.join(format!("a-{shape}-{cut_index}-{cut}"));
            let s = summary(&dir, &[&path], &[]);
            assert_eq!(
                counts(&s)[1..],
                [10, 1, 0, 0, 0],
                "{shape}, value {cut_index} cut after {cut} bytes ({:?}): {s}",
                &whole[cut.saturating_sub(12)..cut]
            );
            let archived = payloads(&dir);
            for (i, v) in values.iter().enumerate().filter(|(i, _)| *i != cut_index) {
                assert!(
                    archived.contains(v),
                    "{shape}, cut {cut}: value {i} missing"
                );
            }
            std::fs::remove_dir_all(&dir).unwrap();
            imports += 1;
        }
    }
    imports
}

/// A JSON array written by a pretty-printer (`json.dumps(list,
/// indent=2)`, `jq .`, `JSON.stringify(a, null, "\t")`, and
/// `json.dumps(list, indent=0)`), its first or a middle element cut off:
/// each element's `{` stands alone on its line, indented (so no line
/// begins with one) or not (where a cut inside an array is no place for
/// one). The cut element is one quarantined message and every other is
/// archived with its own bytes.
/// Until 2026-12-06 everything after the cut went into that message.
#[test]
fn a_value_cut_off_in_an_indented_array_loses_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let event = |i: u32| {
        serde_json::json!({"Interaction": {
            "event": "InteractionQueued",
            "interactionGUID": format!("int-indent-{i}-phone-00-acme"),
            "interactionEventTS": 1_763_900_000 + i,
            "attachedData": {"attachedDatum": [
                {"attachedDataKey": "k", "attachedDataValue": format!("v{i}")},
                {"attachedDataKey": "originalInteractionGuid", "attachedDataValue": "x"}
            ]}
        }})
    };
    let mut imports = 0;
    for (shape, indent, line_end) in [
        ("indent-0", "", "\n"),
        ("indent-2", "  ", "\n"),
        ("indent-4", "    ", "\n"),
        ("tabs", "\t", "\n"),
        ("indent-2-crlf", "  ", "\r\n"),
    ] {
        // Each element as the writer prints it inside the array: its lines
        // indented one level more, its first line's indent not its own.
        let elements: Vec<String> = (0..11)
            .map(|i| {
                let mut out = Vec::new();
                let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
                let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
                serde::Serialize::serialize(&event(i), &mut ser).unwrap();
                let text = String::from_utf8(out).unwrap();
                text.replace('\n', &format!("{line_end}{indent}"))
            })
            .collect();
        imports += each_cut_loses_only_itself(tmp.path(), shape, &elements, 7, &|values| {
            format!(
                "[{line_end}{indent}{}{line_end}]{line_end}",
                values.join(&format!(",{line_end}{indent}"))
            )
        });
    }
    assert!(imports > 300, "{imports}");
}

/// A pipe whose first write cuts a magic number (gzip's `1f` alone, then
/// the rest after a pause; xz's first bytes) is told by the whole number:
/// gzip is decompressed, xz refused. Until 2026-12-07 the first write
/// alone decided: the gzip feed's bytes were archived as quarantined
/// lines and no event (exit 0), the xz one was not refused (outside
/// audit).
#[test]
fn a_magic_number_cut_by_a_pipes_first_write_is_told_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 3,
        interactions: 1,
        line_len: 300,
    };
    let plain = tmp.path().join("plain.ndjson");
    std::fs::write(&plain, s.text(0..3)).unwrap();
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg("gzip -c plain.ndjson > feed.gz")
        .current_dir(tmp.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let gz = std::fs::read(tmp.path().join("feed.gz")).unwrap();
    let xz = [&b"\xFD7zXZ\x00"[..], &[7u8; 64]].concat();
    for (name, bytes, cut, code) in [("gzip", &gz[..], 1, 0), ("xz", &xz[..], 3, 1)] {
        let dir = tmp.path().join(name);
        let out = import_in_two_writes(&dir, bytes, cut);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        if name == "gzip" {
            assert_eq!(stats(&dir).events, 3, "{name}: {stderr}");
            assert_eq!(stats(&dir).quarantined, 0, "{name}: {stderr}");
        } else {
            assert!(stderr.contains("xz -dc"), "{name}: {stderr}");
        }
    }
}

/// An input refused when it is read (an XML capture, a compression on
/// stdin) after inputs that were archived: the error says what of them
/// is durable, which it is. Until 2026-12-07 it said "no line was known to
/// be durable yet" of lines that were archived (outside audit).
#[test]
fn a_refusal_after_archived_inputs_says_what_of_them_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::Stream {
        events: 5,
        interactions: 1,
        line_len: 300,
    };
    let good = tmp.path().join("good.ndjson");
    std::fs::write(&good, s.text(0..5)).unwrap();
    let xml = tmp.path().join("cap.xml");
    std::fs::write(&xml, "<?xml version=\"1.0\"?><x/>\n").unwrap();
    let dir = tmp.path().join("a");
    let run = ccvault(
        &dir,
        &["import", good.to_str().unwrap(), xml.to_str().unwrap()],
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains("at least 5 lines were durable (through line 5 of"),
        "{}",
        run.stderr
    );
    assert_eq!(stats(&dir).records, 5);
    let dir = tmp.path().join("b");
    let xz = [&b"\xFD7zXZ\x00"[..], &[7u8; 64]].concat();
    let run = ccvault_stdin(&dir, &["import", good.to_str().unwrap(), "-"], &xz).expect_code(1);
    assert!(
        run.stderr.contains("xz -dc") && run.stderr.contains("at least 5 lines were durable"),
        "{}",
        run.stderr
    );
}
