//! Hostile input and hostile machines, through the built binary: a message
//! no record can hold, readers behind the log, and a data directory an
//! attacker prepared. Each test reproduces a way the archive once failed
//! (issue 15) and asserts the outcome the operations guide promises.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use common::{ccvault, ccvault_stdin, import, is_root, stats, Run, Stream};

/// A Pulsar envelope around `payload` with the given metadata.
fn envelope(message_id: &str, publish_time: &str, payload: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(r#"{{"messageId":"{message_id}","publishTime":"{publish_time}","payload":"{b64}"}}"#)
}

/// `--max-record-bytes` limits the record: an event just under it is
/// archived whether it comes bare or in a Pulsar envelope (whose base64
/// makes the message a third longer), and one just over it is rejected in
/// both shapes, by name, the rest of the file archived.
#[test]
fn the_record_limit_is_on_the_event_not_on_its_envelope() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 20_000usize;
    let event = |guid: &str, len: usize| {
        let head = format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","interactionEventTS":1763900000,"pad":""#
        );
        let pad = "x".repeat(len - head.len() - 3);
        format!("{head}{pad}\"}}}}")
    };
    let under = event("int-limit-under-phone-00-acme", limit - 10);
    let over = event("int-limit-over-phone-00-acme", limit + 10);
    let after = event("int-limit-after-phone-00-acme", 500);
    assert_eq!((under.len(), over.len()), (limit - 10, limit + 10));
    let wrapped = envelope("CAEQAw==", "2025-11-23T12:00:00.000Z", &under);
    assert!(
        wrapped.len() > limit,
        "the envelope alone is over the limit"
    );
    for (name, lines) in [
        ("bare", [under.clone(), over.clone(), after.clone()]),
        (
            "enveloped",
            [
                wrapped.clone(),
                envelope("CAEQBA==", "2025-11-23T12:00:00.000Z", &over),
                envelope("CAEQBQ==", "2025-11-23T12:00:00.000Z", &after),
            ],
        ),
    ] {
        let file = tmp.path().join(format!("{name}.ndjson"));
        fs::write(&file, lines.join("\n") + "\n").unwrap();
        let dir = tmp.path().join(name);
        let run = ccvault(
            &dir,
            &[
                "import",
                file.to_str().unwrap(),
                "--max-record-bytes",
                &limit.to_string(),
            ],
        )
        .expect_code(3);
        assert!(
            run.stderr.contains(&format!("{}:2", file.display())),
            "{name}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("{} bytes", limit + 10)),
            "{name}: {}",
            run.stderr
        );
        let s = stats(&dir);
        assert_eq!((s.events, s.quarantined), (2, 0), "{name}: {:?}", s.json);
        let raw = ccvault(&dir, &["show", "int-limit-under-phone-00-acme", "--raw"]).ok();
        assert_eq!(raw.stdout_str().trim_end(), under, "{name}");
    }
}

/// Metadata longer than a record can hold (65,535 bytes) in an envelope far
/// below `--max-record-bytes`: the envelope is archived as received and
/// quarantined naming the field, and everything after it (in the same file
/// and in the next file) is archived.
#[test]
fn an_envelope_with_oversized_metadata_is_quarantined_and_the_import_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 5,
        interactions: 5,
        line_len: 300,
    };
    let long = "M".repeat(70_000);
    let lines = [
        s.line(0),
        envelope(&long, "2025-11-23T12:13:20.000Z", &s.line(1)),
        envelope("CAEQAQ==", &long, &s.line(2)),
        s.line(3),
    ];
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, lines.join("\n") + "\n").unwrap();
    let second = tmp.path().join("second.ndjson");
    fs::write(&second, s.line(4) + "\n").unwrap();

    import(&dir, &[&first, &second], &[]);

    let st = stats(&dir);
    assert_eq!(
        (st.records, st.events, st.quarantined),
        (5, 3, 2),
        "{}",
        st.json
    );
    let listed = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (q, (line, field)) in listed.iter().zip([(2, "messageId"), (3, "publishTime")]) {
        assert_eq!(q["source"], first.to_str().unwrap(), "{q}");
        assert_eq!(q["line"], line, "{q}");
        let reason = q["reason"].as_str().unwrap();
        assert!(
            reason.contains(field) && reason.contains("70000"),
            "{reason}"
        );
        // Nothing is lost: the envelope is kept byte for byte.
        assert_eq!(q["payload"].as_str().unwrap(), lines[line - 1], "{q}");
    }
    for g in [0, 3, 4] {
        let out = ccvault(&dir, &["show", &s.guid(g), "--raw"]).ok();
        assert_eq!(out.stdout_str(), s.raw_of(g));
    }
    ccvault(&dir, &["verify"]).ok();
}

/// An index that is cleanly closed but behind the log (the state a writer
/// stopped by an error leaves, made here by restoring an older
/// `index.redb`): readers index the durable records they would miss, and
/// `verify` reports the lag instead of "clean".
#[test]
fn readers_see_every_durable_record_and_verify_reports_a_lagging_index() {
    let tmp = tempfile::tempdir().unwrap();
    let lagging = tmp.path().join("lagging");
    let s = Stream {
        events: 6,
        interactions: 6,
        line_len: 300,
    };
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, s.text(0..3)).unwrap();
    let second = tmp.path().join("second.ndjson");
    fs::write(&second, s.text(3..6)).unwrap();
    import(&lagging, &[&first], &[]);
    let older_index = tmp.path().join("older-index.redb");
    fs::copy(lagging.join("index.redb"), &older_index).unwrap();
    let acks = import(&lagging, &[&second], &["--print-acks"]);
    let acked = acks.stdout_str();
    assert!(acked.trim_end().ends_with("second.ndjson 3"), "{acked}");
    fs::copy(&older_index, lagging.join("index.redb")).unwrap();
    let for_verify = tmp.path().join("for-verify");
    common::copy_dir(&lagging, &for_verify);

    // verify: not clean the first time (it names the lag and indexes the
    // records), clean after.
    let run = ccvault(&for_verify, &["verify"]).expect_code(1);
    let out = run.stdout_str();
    assert!(
        out.contains("behind the log") && out.contains("3..6"),
        "{out}"
    );
    ccvault(&for_verify, &["verify"]).ok();
    assert_eq!(stats(&for_verify).records, 6);

    // Readers: every acknowledged record is there.
    let st = stats(&lagging);
    assert_eq!((st.records, st.events), (6, 6), "{}", st.json);
    for g in 0..6 {
        let out = ccvault(&lagging, &["show", &s.guid(g), "--raw"]).ok();
        assert_eq!(out.stdout_str(), s.raw_of(g));
    }
}

/// An archive with one event imported, and a second input to import into it.
fn small_archive(tmp: &Path) -> (PathBuf, PathBuf) {
    let s = Stream {
        events: 2,
        interactions: 2,
        line_len: 300,
    };
    fs::create_dir_all(tmp).unwrap();
    let dir = tmp.join("archive");
    let first = tmp.join("first.ndjson");
    fs::write(&first, s.text(0..1)).unwrap();
    import(&dir, &[&first], &[]);
    let second = tmp.join("second.ndjson");
    fs::write(&second, s.text(1..2)).unwrap();
    (dir, second)
}

/// `import` into `dir` must be refused with an error naming `path` and
/// containing `why`.
fn import_is_refused(dir: &Path, input: &Path, path: &Path, why: &str) {
    let run = ccvault(dir, &["import", input.to_str().unwrap()]).expect_code(1);
    assert!(
        run.stderr.contains("refusing")
            && run.stderr.contains(&path.display().to_string())
            && run.stderr.contains(why),
        "{}",
        run.stderr
    );
}

/// Each file the archive creates, replaced by a symlink to a file of the
/// operator's: the archive refuses it and the target is untouched (it used
/// to be truncated or appended to).
#[test]
fn a_symlink_in_place_of_any_archive_file_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (probe, _) = small_archive(&tmp.path().join("probe"));
    let segment = common::segment_files(&probe)[0]
        .strip_prefix(&probe)
        .unwrap()
        .to_path_buf();
    let files = [
        PathBuf::from("writer.lock"),
        PathBuf::from("log/writer.lock"),
        segment,
        PathBuf::from("index.redb"),
        PathBuf::from("index.redb.rebuild"),
    ];
    for (n, file) in files.iter().enumerate() {
        let case = tmp.path().join(format!("case-{n}"));
        let (dir, input) = small_archive(&case);
        let victim = case.join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let planted = dir.join(file);
        let _ = fs::remove_file(&planted);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        import_is_refused(&dir, &input, &planted, "symbolic link");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{} was followed",
            file.display()
        );
    }
}

/// The `facts/` directory replaced by a symlink to another directory, or
/// made writable by others: refused like the log's directory, and nothing
/// is written through the link (a writer wrote its facts into the link's
/// target: an outside audit).
#[test]
fn a_facts_directory_that_is_a_link_or_not_private_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = small_archive(&tmp.path().join("link"));
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let facts = dir.join("facts");
    let _ = fs::remove_dir_all(&facts);
    std::os::unix::fs::symlink(&elsewhere, &facts).unwrap();
    import_is_refused(&dir, &input, &facts, "symbolic link");
    let run = ccvault(&dir, &["stats"]).expect_code(1);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

    let (dir, input) = small_archive(&tmp.path().join("open"));
    let facts = dir.join("facts");
    fs::create_dir_all(&facts).unwrap();
    fs::set_permissions(&facts, fs::Permissions::from_mode(0o777)).unwrap();
    import_is_refused(&dir, &input, &facts, "writ");
}

/// The projections file, replaced by a symlink to a file of the operator's:
/// the read commands and `rebuild` refuse it and the target is untouched
/// (it used to be followed and handed to redb); a planted rebuild scratch
/// is removed, never followed.
#[test]
fn a_symlink_in_place_of_the_projections_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_archive(tmp.path());
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let planted = dir.join("projections.redb");
    let _ = fs::remove_file(&planted);
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    for args in [vec!["interactions"], vec!["rebuild"]] {
        let run = ccvault(&dir, &args).expect_code(1);
        assert!(
            run.stderr.contains("refusing")
                && run.stderr.contains(&planted.display().to_string())
                && run.stderr.contains("symbolic link"),
            "{args:?}: {}",
            run.stderr
        );
    }
    fs::remove_file(&planted).unwrap();
    let scratch = dir.join("projections.redb.rebuild");
    std::os::unix::fs::symlink(&victim, &scratch).unwrap();
    ccvault(&dir, &["rebuild"]).ok();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!scratch.exists());
}

/// A data directory or archive file that group or others may write, or
/// (checked when the test runs as root) that another user owns, is refused
/// with an error saying why.
#[test]
fn a_data_directory_or_file_others_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = small_archive(tmp.path());
    let segment = common::segment_files(&dir)[0].clone();
    for (path, mode) in [
        (dir.clone(), 0o770),
        (dir.join("log"), 0o707),
        (dir.join("index.redb"), 0o620),
        (segment.clone(), 0o602),
        (dir.join("writer.lock"), 0o660),
    ] {
        let before = fs::metadata(&path).unwrap().permissions();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        import_is_refused(&dir, &input, &path, "lets its group or others write");
        fs::set_permissions(&path, before).unwrap();
    }
    // SAFETY: geteuid cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&segment, Some(4242), None).unwrap();
        import_is_refused(&dir, &input, &segment, "owned by user id 4242");
        std::os::unix::fs::chown(&segment, Some(0), None).unwrap();
    }
    // Put right, the archive works again.
    import(&dir, &[&input], &[]);
    assert_eq!(stats(&dir).records, 2);
}

/// Issue 15 item 4: a credential in a URL is refused, and neither the
/// refusal nor anything else prints it.
#[test]
fn a_credential_in_a_url_is_refused_without_printing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let reader = "wss://h.example/ws/v2/reader/persistent/t/n/x";
    let cases = [
        (
            "mqtt",
            "mqtt://alice:SECRET-4711@127.0.0.1:1883".to_string(),
            "credentials",
        ),
        (
            "mqtt",
            "mqtts://SECRET-4711@127.0.0.1".to_string(),
            "credentials",
        ),
        (
            "pulsar",
            format!("{reader}?x-api-key=SECRET-4711&receiverQueueSize=5"),
            "\"x-api-key\"",
        ),
        ("pulsar", format!("{reader}?Token=SECRET-4711"), "\"Token\""),
        (
            "pulsar",
            "wss://bob:SECRET-4711@h.example/ws/v2/reader/persistent/t/n/x".to_string(),
            "credentials",
        ),
    ];
    for (source, url, named) in cases {
        let run = ccvault(&dir, &["ingest", source, "--url", &url]);
        run.assert_no_panic();
        assert_ne!(run.code, 0, "{url}: {}", run.stderr);
        assert!(
            run.stderr.contains(named) && run.stderr.contains("***"),
            "{url}: {}",
            run.stderr
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            !run.stderr.contains("SECRET-4711") && !stdout.contains("SECRET-4711"),
            "{url} leaked: {}",
            run.stderr
        );
    }
}

/// Issue 15 item 5: values from events are printed with their control
/// characters escaped, so a crafted agentId or GUID can neither send a
/// terminal escape sequence nor forge a row of human output.
#[test]
fn control_characters_in_event_values_never_reach_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let guid = r"int-\u001b]0;pwned\u0007-g1";
    let agent = r"ag\u001b[2J\nFORGED 999\u009b";
    // The channel too: the wallboard printed it raw until 2026-12-06.
    let media = r"ph\u001b[31mRED\nFORGED LINE";
    let events = [
        format!(
            r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"{guid}","mediaType":"{media}","direction":"in","queueId":"7","msgInfo":{{"timestamp":1763900000000}}}}}}"#
        ),
        format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","queueId":"7","isQueued":true,"msgInfo":{{"timestamp":1763900001000}}}}}}"#
        ),
        format!(
            r#"{{"Interaction":{{"event":"InteractionAccepted","interactionGUID":"{guid}","agentId":"{agent}","queueId":"7","msgInfo":{{"timestamp":1763900005000}}}}}}"#
        ),
        format!(
            r#"{{"AgentStatusChange":{{"agentId":"{agent}","newState":1,"msgInfo":{{"timestamp":1763899000000}}}}}}"#
        ),
        format!(
            r#"{{"AgentStatusChange":{{"agentId":"{agent}","newState":5,"msgInfo":{{"timestamp":1763899600000}}}}}}"#
        ),
        "{\"Interaction\": \u{1b}[31m not json".to_string(),
        // A tenant (the GUID's last part) that is an escape sequence.
        r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-2-\u001b[31mred\u0007","msgInfo":{"timestamp":1763900000000}}}"#.to_string(),
        // A leg transferred from the first, with a line feed in its GUID:
        // `show` of a contact heads each leg with its GUID (printed raw
        // until 2026-12-07: an outside audit).
        format!(
            r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"int-3-\nFORGED LEG-g1","originalInteractionGuid":"{guid}","msgInfo":{{"timestamp":1763900010000}}}}}}"#
        ),
    ];
    let input = tmp.path().join("in.ndjson");
    fs::write(&input, events.join("\n") + "\n").unwrap();
    import(&dir, &[&input], &[]);
    let decoded_guid = "int-\u{1b}]0;pwned\u{7}-g1";
    for args in [
        vec!["show", decoded_guid],
        vec!["show", "int-3-\nFORGED LEG-g1"],
        vec!["interactions"],
        vec!["agents"],
        vec!["report", "--by", "agent"],
        vec!["report", "--by", "queue,channel"],
        vec!["quarantine"],
        vec!["wallboard", "--at", "2025-11-23T13:00:00Z"],
    ] {
        let run = ccvault(&dir, &args).ok();
        let out = run.stdout_str();
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a control character:\n{out:?}"
        );
        assert!(
            !out.lines().any(|l| l.starts_with("FORGED")),
            "{args:?} let an agentId start a line:\n{out}"
        );
    }
    // Errors and notes on stderr too: an unknown tenant's error lists the
    // archive's tenants.
    let run = ccvault(&dir, &["stats", "--tenant", "nosuch"]).expect_code(1);
    assert!(
        !run.stderr.trim_end().chars().any(char::is_control),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains(r"\u{1b}[31mred\u{7}"), "{}", run.stderr);
    let shown = ccvault(&dir, &["show", decoded_guid]).ok().stdout_str();
    assert!(shown.contains(r"ag\u{1b}[2J\nFORGED 999\u{9b}"), "{shown}");
    // JSON keeps the value exactly (its encoder escapes it).
    let json = ccvault(&dir, &["show", decoded_guid, "--format", "json"]).ok();
    assert!(
        json.stdout_str().contains(r"ag\u001b[2J\nFORGED 999"),
        "{}",
        json.stdout_str()
    );
}

/// Issue 15 item 7: the small edges of input files. A UTF-8 byte order mark
/// is not part of the first event; the `\r` of CRLF does not count against
/// `--max-record-bytes`; a truncated `.gz` keeps its readable prefix, names
/// what it lost, and the files after it are still imported.
/// A `\r` alone inside a first line longer than the first block (JSON
/// whitespace, in a file of `\n` line ends) is not an old Mac line end:
/// the file was split at it, and every line after the first went into
/// the piece that followed, rejected over the record limit.
#[test]
fn a_carriage_return_inside_a_long_first_line_is_not_a_line_end() {
    let tmp = tempfile::tempdir().unwrap();
    let guid = "int-19abb632238-CrInside00000000000000000-phone-00-acme01";
    let head = format!(
        r#"{{"Interaction":{{{}"event":"InteractionCreated","interactionGUID":"{guid}","interactionEventTS":1763906000,"pad":""#,
        '\r'
    );
    // The longest line the default record limit (1 MiB) takes: longer
    // than the first block read (1 MiB of input less nothing).
    let tail = r#""}}"#;
    let first = format!(
        "{head}{}{tail}",
        "y".repeat((1 << 20) - head.len() - tail.len())
    );
    let lines = [
        first,
        format!(
            r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","interactionEventTS":1763906005,"queueId":"q1"}}}}"#
        ),
        format!(
            r#"{{"Interaction":{{"event":"InteractionDeleted","interactionGUID":"{guid}","interactionEventTS":1763906010}}}}"#
        ),
    ];
    let input = tmp.path().join("long.ndjson");
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let dir = tmp.path().join("archive");
    for format in ["auto", "ndjson"] {
        let _ = fs::remove_dir_all(&dir);
        let run = import(&dir, &[&input], &["--input-format", format]);
        assert_eq!(run.code, 0, "--input-format {format}: {}", run.stderr);
        let s = stats(&dir);
        assert_eq!((s.events, s.quarantined), (3, 0), "--input-format {format}");
        let raw = ccvault(&dir, &["show", guid, "--raw"]).ok().stdout_str();
        assert_eq!(raw, lines.join("\n") + "\n", "--input-format {format}");
    }
}

#[test]
fn a_bom_crlf_and_a_truncated_gzip_lose_nothing_readable() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 400,
        interactions: 40,
        line_len: 300,
    };

    let bom = tmp.path().join("bom.ndjson");
    fs::write(&bom, format!("\u{feff}{}\n{}\n", s.line(0), s.line(1))).unwrap();
    let dir = tmp.path().join("bom");
    import(&dir, &[&bom], &[]);
    let st = stats(&dir);
    assert_eq!((st.events, st.quarantined), (2, 0), "{:?}", st.json);

    let crlf = tmp.path().join("crlf.ndjson");
    fs::write(&crlf, format!("{}\r\n{}\r\n", s.line(0), s.line(1))).unwrap();
    let dir = tmp.path().join("crlf");
    let cap = s.line(0).len().max(s.line(1).len()).to_string();
    import(&dir, &[&crlf], &["--max-record-bytes", &cap]);
    assert_eq!(stats(&dir).events, 2);
    let raw = ccvault(&dir, &["export"]).ok().stdout_str();
    assert_eq!(
        raw,
        format!("{}\n{}\n", s.line(0), s.line(1)),
        "CRLF kept in a record"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(s.text(0..400).as_bytes()).unwrap();
    let whole = gz.finish().unwrap();
    let truncated = tmp.path().join("cut.ndjson.gz");
    fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let after = tmp.path().join("after.ndjson");
    fs::write(&after, format!("{}\n", s.line(399))).unwrap();
    let dir = tmp.path().join("gz");
    let run = ccvault(
        &dir,
        &[
            "import",
            truncated.to_str().unwrap(),
            after.to_str().unwrap(),
        ],
    );
    run.assert_no_panic();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cut.ndjson.gz")
            && run
                .stderr
                .contains("cannot read the rest of the input after byte ")
            && run.stderr.contains(" of its decompressed data: "),
        "{}",
        run.stderr
    );
    // gzip checks its CRC at the end: what was read before is unchecked.
    assert!(
        run.stderr.contains("may hold damaged bytes"),
        "{}",
        run.stderr
    );
    let st = stats(&dir);
    let exported = ccvault(&dir, &["export"]).ok().stdout_str();
    // A readable prefix of whole lines (some 1,000 bytes stay in the
    // decoder's last unfinished block), then the next file.
    assert!(st.events > 50 && st.events < 400, "{:?}", st.json);
    let lines: Vec<&str> = exported.lines().collect();
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        assert_eq!(*line, s.line(i));
    }
    assert_eq!(lines.last().copied(), Some(s.line(399).as_str()));
    assert_eq!(st.quarantined, 0);

    // Two whole members, then bytes that are no gzip (padding a copy left):
    // every line is archived and checked, and the error says the bytes
    // after the last member were ignored, not that the lines may be damaged.
    let mut padded = whole.clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(s.text(0..10).as_bytes()).unwrap();
    padded.extend(gz.finish().unwrap());
    padded.extend([0u8; 512]);
    let padded_path = tmp.path().join("padded.ndjson.gz");
    fs::write(&padded_path, &padded).unwrap();
    let dir = tmp.path().join("padded");
    let run = ccvault(&dir, &["import", padded_path.to_str().unwrap()]);
    run.assert_no_panic();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("padded.ndjson.gz")
            && run
                .stderr
                .contains("after its last complete gzip member (member 2)")
            && run.stderr.contains("ignored")
            && !run.stderr.contains("may hold damaged bytes"),
        "{}",
        run.stderr
    );
    let st = stats(&dir);
    assert_eq!((st.events, st.duplicates), (400, 10), "{:?}", st.json);

    // A .gz cut inside its header, or before its first block decodes, has
    // no readable line: it is rejected by name and the next file imported
    // (the import stopped there, with exit 1, until 2026-12-06).
    for (name, bytes) in [
        ("magic", &whole[..2]),
        ("header", &whole[..12]),
        ("first-block", &whole[..30]),
    ] {
        let cut = tmp.path().join(format!("{name}.ndjson.gz"));
        fs::write(&cut, bytes).unwrap();
        let dir = tmp.path().join(format!("cut-{name}"));
        let run = ccvault(
            &dir,
            &[
                "import",
                after.to_str().unwrap(),
                cut.to_str().unwrap(),
                bom.to_str().unwrap(),
            ],
        );
        run.assert_no_panic();
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{name}.ndjson.gz"))
                && run
                    .stderr
                    .contains("cannot read the input from its first byte"),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(stats(&dir).events, 3, "{name}");
    }
}

/// A gzip feed on a pipe says its damage and its trailing bytes as the
/// same bytes in a file do: until 2026-12-07 the watch for the pipe's
/// pauses dropped the decoder's error, and the feed ended there as if
/// complete, exit 0 (`cat a.gz b.ndjson | ccvault import -` archived a's
/// lines alone and said "all durable": an outside audit).
#[test]
fn a_gzip_feed_on_a_pipe_says_its_damage_as_a_file_does() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 40,
        interactions: 8,
        line_len: 300,
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(s.text(0..30).as_bytes()).unwrap();
    let whole = gz.finish().unwrap();
    let mut crc = whole.clone();
    let at = crc.len() - 8;
    crc[at] ^= 1;
    let mut then_plain = whole.clone();
    then_plain.extend(s.text(30..40).as_bytes());
    for (name, bytes, says) in [
        (
            "cut",
            &whole[..whole.len() * 2 / 3],
            "may hold damaged bytes",
        ),
        ("crc", &crc[..], "matching checksum"),
        (
            "then-plain",
            &then_plain[..],
            "after its last complete gzip member (member 1)",
        ),
    ] {
        for how in ["pipe", "file"] {
            let dir = tmp.path().join(format!("{name}-{how}"));
            let run = match how {
                "pipe" => ccvault_stdin(&dir, &["import", "-"], bytes),
                _ => {
                    let file = tmp.path().join(format!("{name}.gz"));
                    fs::write(&file, bytes).unwrap();
                    ccvault(&dir, &["import", file.to_str().unwrap()])
                }
            };
            run.assert_no_panic();
            assert_eq!(run.code, 3, "{name} on a {how}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains("cannot read the rest of the input after byte ")
                    && run.stderr.contains(says),
                "{name} on a {how}: {}",
                run.stderr
            );
        }
    }
}

/// Issue 15 item 7: a damaged `projections.redb` (derived data) is an error
/// that says to run `ccvault rebuild`, never a panic, and `rebuild` replaces
/// it; HTML pages, which hold the archive's names and numbers, are written
/// owner-only like the archive.
#[test]
fn a_damaged_projections_file_says_rebuild_and_html_pages_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    ccvault(tmp.path(), &["demo", "--into", dir.to_str().unwrap()]).ok();
    for page in ["report.html", "timeline.html"] {
        let mode = fs::metadata(dir.join(page)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{page}");
    }
    let html = tmp.path().join("r.html");
    ccvault(&dir, &["report", "--html", html.to_str().unwrap()]).ok();
    assert_eq!(
        fs::metadata(&html).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let report = ccvault(&dir, &["report", "--format", "csv"]).ok().stdout;
    let path = dir.join("projections.redb");
    let pristine = fs::read(&path).unwrap();
    // Scrambled pages past the header; the file cut inside its header; cut
    // after its first page (redb then reads past the end); a header that is
    // not redb's; nothing but zeros.
    let mut scrambled = pristine.clone();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut scrambled[4096..] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (what, bytes) in [
        ("scrambled", scrambled),
        ("cut to 54 bytes", pristine[..54].to_vec()),
        ("cut to 4,196 bytes", pristine[..4196].to_vec()),
        ("its magic number changed", {
            let mut b = pristine.clone();
            b[3] ^= 0x04;
            b
        }),
        ("zeroed", vec![0; pristine.len()]),
    ] {
        fs::write(&path, &bytes).unwrap();
        let damaged = ccvault(&dir, &["report", "--format", "csv"]);
        damaged.assert_no_panic();
        assert_eq!(damaged.code, 1, "{what}: {}", damaged.stderr);
        assert!(
            damaged.stderr.contains("projections.redb")
                && damaged.stderr.contains("ccvault rebuild"),
            "{what}: {}",
            damaged.stderr
        );
        ccvault(&dir, &["rebuild"]).ok();
        assert_eq!(
            ccvault(&dir, &["report", "--format", "csv"]).ok().stdout,
            report,
            "{what}"
        );
    }
}

/// Damage redb does not see: bytes flipped inside the stored values (a
/// byte of every page, at twelve places in the page), which redb serves
/// and the projections' decoding meets. Every reading command either
/// answers or fails with the file's name and "run `ccvault rebuild`",
/// never with a decoder's message alone and never with a panic; at least
/// one trial reaches the decoder.
#[test]
fn damaged_values_in_the_projections_say_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    ccvault(tmp.path(), &["demo", "--into", dir.to_str().unwrap()]).ok();
    let path = dir.join("projections.redb");
    let pristine = fs::read(&path).unwrap();
    let mut failures = 0;
    let mut undecodable = 0;
    for trial in 0..12usize {
        let at = (64 + 331 * trial) % 4096;
        let mut bytes = pristine.clone();
        for page in bytes.chunks_mut(4096).skip(1) {
            if let Some(b) = page.get_mut(at) {
                *b ^= 0xff;
            }
        }
        for args in [
            &["report", "--format", "csv"][..],
            &["interactions", "--format", "csv"],
            &["agents", "--format", "json"],
        ] {
            fs::write(&path, &bytes).unwrap();
            let run = ccvault(&dir, args);
            run.assert_no_panic();
            if run.code == 0 {
                continue;
            }
            failures += 1;
            undecodable += usize::from(run.stderr.contains("does not decode"));
            assert!(
                run.code == 1
                    && run.stderr.contains("projections.redb")
                    && run.stderr.contains("damaged")
                    && run.stderr.contains("run `ccvault rebuild`"),
                "trial {trial}, {args:?} (exit {}): {}",
                run.code,
                run.stderr
            );
        }
    }
    assert!(
        failures > 0 && undecodable > 0,
        "{failures} failures, {undecodable} undecodable"
    );
    // The page of the `meta` table, where every read first looks for where
    // the projections stopped: its bytes past the page header, one at a
    // time (a flip there ended every read with redb's panic until
    // 2026-12-07, that one lookup not being guarded: an outside audit).
    let meta_page = pristine
        .windows(b"consumed".len())
        .position(|w| w == b"consumed")
        .expect("the meta table's page")
        / 4096
        * 4096;
    for at in (meta_page + 8..meta_page + 40).step_by(4) {
        let mut bytes = pristine.clone();
        bytes[at] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let run = ccvault(&dir, &["interactions", "--format", "csv"]);
        run.assert_no_panic();
        assert!(
            run.code == 0
                || (run.code == 1
                    && run.stderr.contains("damaged")
                    && run.stderr.contains("run `ccvault rebuild`")),
            "byte {at} (exit {}): {}",
            run.code,
            run.stderr
        );
    }
    ccvault(&dir, &["rebuild"]).ok();
    ccvault(&dir, &["report", "--format", "csv"]).ok();
}

/// Issue 15 item 7: `verify` over a zeroed `index.redb` rebuilds it and says
/// so with a non-zero exit (it repaired something), instead of "clean".
#[test]
fn verify_over_a_zeroed_index_reports_the_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_archive(tmp.path());
    let index = dir.join("index.redb");
    let len = fs::metadata(&index).unwrap().len() as usize;
    fs::write(&index, vec![0u8; len]).unwrap();
    verify_reports_the_index_rebuilt(&dir);
}

/// `verify` says it rebuilt the index (exit 1); repaired, the next one is
/// clean and the archive's one record is served.
fn verify_reports_the_index_rebuilt(dir: &Path) {
    let run = ccvault(dir, &["verify"]);
    run.assert_no_panic();
    assert_eq!(run.code, 1, "{}", run.stdout_str());
    assert!(
        run.stdout_str().contains("was rebuilt from the log"),
        "{}",
        run.stdout_str()
    );
    ccvault(dir, &["verify"]).ok();
    assert_eq!(stats(dir).records, 1);
}

/// An `index.redb` of no bytes (cut to nothing, `: > index.redb`) is
/// damage like a zeroed one, reported by the command that rebuilds it,
/// `verify` or another (redb took it for a new database, and the log was
/// indexed into it in silence: an outside audit).
#[test]
fn an_empty_index_is_reported_as_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_archive(tmp.path());
    let index = dir.join("index.redb");
    fs::write(&index, b"").unwrap();
    verify_reports_the_index_rebuilt(&dir);

    fs::write(&index, b"").unwrap();
    let read = ccvault(&dir, &["stats"]).ok();
    assert!(
        read.stderr
            .contains("is empty: 0 bytes); rebuilding it from the log"),
        "{}",
        read.stderr
    );
    assert_eq!(stats(&dir).records, 1);
}

/// An `index.redb` cut short opens (its header is whole) but fails where a
/// read reaches past its end: `verify` reports it as an index problem that
/// names `ccvault reindex` and still checks the whole log (the projections,
/// whose recompute reads the index, go unchecked), `show` says the same
/// instead of a bare "failed to fill whole buffer", and `reindex` repairs
/// it.
#[test]
fn a_truncated_index_is_reported_with_the_command_that_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let input = tmp.path().join("day.ndjson");
    let day = ccvault(
        tmp.path(),
        &[
            "simulate",
            "--events",
            "20000",
            "--seed",
            "5",
            "--no-quirks",
        ],
    )
    .ok();
    fs::write(&input, &day.stdout).unwrap();
    import(&dir, &[&input], &[]);
    let guid = ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .json_lines()[0]["interactionGUID"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = stats(&dir).records;
    let index = dir.join("index.redb");
    let len = fs::metadata(&index).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(len - 100_000)
        .unwrap();

    let run = ccvault(&dir, &["verify", "--format", "json"]);
    run.assert_no_panic();
    assert_eq!(run.code, 1, "{}{}", run.stdout_str(), run.stderr);
    let report = &run.json_lines()[0];
    let problems = report["indexProblems"].to_string();
    assert!(
        report["records"].as_u64() == Some(records)
            && report["damage"].as_array().is_some_and(Vec::is_empty)
            && problems.contains("damaged")
            && problems.contains("ccvault reindex"),
        "{report}"
    );
    let show = ccvault(&dir, &["show", &guid]);
    show.assert_no_panic();
    assert!(
        show.code == 1
            && show.stderr.contains("damaged")
            && show.stderr.contains("ccvault reindex"),
        "{}",
        show.stderr
    );

    ccvault(&dir, &["reindex"]).ok();
    ccvault(&dir, &["verify"]).ok();
    ccvault(&dir, &["show", &guid]).ok();
}

/// Issue 15 item 7: a segment copied under a second name (its offsets
/// repeat) or renamed to a wrong base (its offsets go back) is damage that
/// `verify` reports; its records are never served twice or out of order, by
/// `export` or by the projections.
#[test]
fn a_copied_or_misnamed_segment_is_reported_and_never_served_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 60,
        interactions: 6,
        line_len: 300,
    };
    let input = tmp.path().join("in.ndjson");
    s.write(&input);
    import(
        &dir,
        &[&input],
        &["--segment-bytes", "4KiB", "--no-compress"],
    );
    let original = ccvault(&dir, &["export"]).ok().stdout_str();
    let interactions = ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .stdout_str();
    let segments = common::segment_files(&dir);
    assert!(segments.len() >= 4, "{segments:?}");
    let middle = segments[1].clone();

    // A copy with a base above every other: each of its offsets repeats.
    let copy = dir.join("log").join(format!("{:020}.seg", 999_999));
    fs::copy(&middle, &copy).unwrap();
    let verify = ccvault(&dir, &["verify"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout_str());
    assert!(
        verify.stdout_str().contains("000999999.seg"),
        "{}",
        verify.stdout_str()
    );
    assert_eq!(ccvault(&dir, &["export"]).ok().stdout_str(), original);
    ccvault(&dir, &["rebuild"]).ok();
    assert_eq!(
        ccvault(&dir, &["interactions", "--format", "json"])
            .ok()
            .stdout_str(),
        interactions
    );
    // A reindex, like every writer, refuses the copy by name and leaves
    // the log's files as they are (until 2026-12-07 it skipped the copy's
    // records as damage, and a swapped pair's for good; until 2026-12-06
    // each was indexed twice); with the copy moved out it is clean.
    // (On a copy: a writer compresses the sealed segments.)
    let reindexed = tmp.path().join("reindexed");
    common::copy_dir(&dir, &reindexed);
    let records = common::stats(&dir).records;
    let log_files = |d: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(d.join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n != "writer.lock"))
            .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = log_files(&reindexed);
    let reindex = ccvault(&reindexed, &["reindex"]);
    assert_eq!(reindex.code, 1, "{}", reindex.stderr);
    assert!(
        reindex
            .stderr
            .contains("00000000000000999999.seg holds the segment of base offset"),
        "{}",
        reindex.stderr
    );
    assert!(
        log_files(&reindexed) == before,
        "the reindex changed the log"
    );
    fs::rename(
        reindexed.join("log").join(format!("{:020}.seg", 999_999)),
        tmp.path().join("the-copy.seg"),
    )
    .unwrap();
    ccvault(&reindexed, &["reindex"]).ok();
    let after = common::stats(&reindexed);
    assert_eq!(after.records, records);
    assert_eq!(
        after.json["damagedPlaces"].as_u64(),
        Some(0),
        "{}",
        after.json
    );
    assert_eq!(ccvault(&reindexed, &["export"]).ok().stdout_str(), original);
    assert_eq!(
        ccvault(&reindexed, &["interactions", "--format", "json"])
            .ok()
            .stdout_str(),
        interactions
    );

    // Renamed instead: its records come after later offsets and are not
    // served at all; everything served is the original, once, in order.
    fs::remove_file(&middle).unwrap();
    let verify = ccvault(&dir, &["verify"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout_str());
    let served = ccvault(&dir, &["export"]).ok().stdout_str();
    let mut rest = original.lines();
    let served: Vec<&str> = served.lines().collect();
    assert!(served.len() < original.lines().count());
    for line in &served {
        assert!(
            rest.any(|o| o == *line),
            "served out of order or twice: {line}"
        );
    }
}

/// Issue 15 item 7: valid JSON that `f64` or UTF-8 cannot hold (a number
/// out of range, a lone surrogate escape) is an event like any other: it is
/// archived byte for byte, not quarantined, and only the odd field reads as
/// absent, in the index and in the projections.
#[test]
fn unrepresentable_numbers_and_lone_surrogates_are_archived_with_the_field_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 18,
        interactions: 3,
        line_len: 300,
    };
    // Interaction 0: its queue is out of f64 range. Interaction 1: its
    // agent is a lone surrogate. Interaction 2: as generated.
    let lines: Vec<String> = (0..s.events)
        .map(|i| {
            let line = s.line(i);
            match s.interaction_of(i) {
                0 => line.replacen(
                    &format!("\"queueId\":\"{}\"", 300 + i % 7),
                    "\"queueId\":1e400",
                    1,
                ),
                1 => line.replacen(
                    &format!("\"agentId\":\"{}\"", s.agent(i)),
                    r#""agentId":"\ud800""#,
                    1,
                ),
                _ => line,
            }
        })
        .collect();
    assert!(lines[0].contains("1e400") && lines[1].contains(r"\ud800"));
    let input = tmp.path().join("odd.ndjson");
    fs::write(&input, lines.join("\n") + "\n").unwrap();

    let run = import(&dir, &[&input], &["--format", "json"]);
    let summary = &run.json_lines()[0];
    assert_eq!(
        (&summary["archived"], &summary["quarantined"]),
        (&serde_json::json!(18), &serde_json::json!(0)),
        "{summary}"
    );
    let st = stats(&dir);
    assert_eq!(
        (st.records, st.events, st.quarantined, st.interactions),
        (18, 18, 0, 3),
        "{}",
        st.json
    );
    // Kept as received.
    let exported = ccvault(&dir, &["export"]).ok().stdout_str();
    assert_eq!(exported, lines.join("\n") + "\n");
    for g in 0..3 {
        let raw = ccvault(&dir, &["show", &s.guid(g), "--raw"])
            .ok()
            .stdout_str();
        let want: String = lines
            .iter()
            .skip(g)
            .step_by(3)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(raw, want, "interaction {g}");
    }
    // The projections: only the odd field is absent.
    let rows = ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = |g: usize| {
        rows.iter()
            .find(|r| r["interactionGUID"] == s.guid(g).as_str())
            .unwrap_or_else(|| panic!("no summary of interaction {g}: {rows:?}"))
    };
    assert!(row(0)["queueId"].is_null(), "{}", row(0));
    assert!(row(0)["agentId"].is_string(), "{}", row(0));
    assert!(row(1)["queueId"].is_number(), "{}", row(1));
    assert!(row(1)["agentId"].is_null(), "{}", row(1));
    assert!(
        row(2)["queueId"].is_number() && row(2)["agentId"].is_string(),
        "{}",
        row(2)
    );
    for g in 0..2 {
        for key in ["eventCount", "outcome", "complete"] {
            assert_eq!(row(g)[key], row(2)[key], "{key} of interaction {g}");
        }
    }
    ccvault(&dir, &["verify"]).ok();
}

/// Issue 15 item 7: a deleted `index.redb` is rebuilt by `verify`, which
/// says it repaired something and exits 1 (it used to say "clean").
#[test]
fn verify_over_a_missing_index_reports_the_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_archive(tmp.path());
    fs::remove_file(dir.join("index.redb")).unwrap();
    let run = ccvault(&dir, &["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout_str(), run.stderr);
    assert!(
        run.stdout_str().contains("index.redb was missing")
            && run.stdout_str().contains("rebuilt from the log"),
        "{}",
        run.stdout_str()
    );
    ccvault(&dir, &["verify"]).ok();
    assert_eq!(stats(&dir).records, 1);
}

/// Runs the built binary as the unprivileged user 65534 (`nobody`) on the
/// archive `dir`; `None` when not root (the switch needs root; CI is root).
fn as_nobody(dir: &Path, args: &[&str]) -> Option<Run> {
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    is_root().then(|| common::ccvault_under(&nobody, dir, args))
}

/// Issue 15 item 7: an archive this user may not read is a permission
/// error naming the path, never "no archive here", for every command.
#[test]
fn a_permission_error_says_so_instead_of_no_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = small_archive(tmp.path());
    let guid = Stream {
        events: 1,
        interactions: 1,
        line_len: 300,
    }
    .guid(0);
    use std::os::unix::fs::PermissionsExt;
    // First the archive directory (0700, root's) cannot be searched, then
    // it can, but it and its files are another user's.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for open_parent in [false, true] {
        if open_parent {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for args in [
            &["stats"][..],
            &["show", &guid],
            &["export"],
            &["verify"],
            &["interactions"],
            &["report"],
            &["quarantine"],
            &["agents"],
            &["import", input.to_str().unwrap()],
        ] {
            let Some(run) = as_nobody(&dir, args) else {
                eprintln!("skipped: not root, so the test cannot run ccvault as another user");
                return;
            };
            let stderr = &run.stderr;
            assert_eq!(
                run.code, 1,
                "{args:?} (parent open: {open_parent}): {stderr}"
            );
            assert!(
                (stderr.contains("Permission denied") || stderr.contains("not by this user"))
                    && !stderr.contains("no archive"),
                "{args:?} (parent open: {open_parent}): {stderr}"
            );
        }
    }
    assert_eq!(stats(&dir).records, 1);
}

/// A --data-dir that names a file: every command says so, reading or
/// writing, and the file is left as it was (it said "Not a directory" of
/// a path inside it, or "File exists" of creating it).
#[test]
fn a_data_dir_that_is_a_file_is_named_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("afile");
    fs::write(&file, b"hi\n").unwrap();
    let input = common::empty_file(tmp.path());
    for args in [
        &["stats"][..],
        &["show", "int-1"],
        &["export"],
        &["verify"],
        &["interactions"],
        &["reindex"],
        &["import", input.to_str().unwrap()],
    ] {
        let run = ccvault(&file, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "{} is a file, not an archive directory",
                file.display()
            )),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"hi\n");

    // A symbolic link to nothing: named with its target (creating it said
    // "File exists", naming neither, until 2026-12-07: an outside audit),
    // and nothing is made at the target.
    let link = tmp.path().join("alink");
    let target = tmp.path().join("nowhere");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for args in [&["stats"][..], &["import", input.to_str().unwrap()]] {
        let run = ccvault(&link, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "{} is a symbolic link to {}, which does not exist",
                link.display(),
                target.display()
            )),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(!target.exists());
}

/// The files of `dir` this process holds open, each with whether its
/// descriptor is close-on-exec (`/proc/self/fdinfo`'s `flags`, octal).
fn open_files_under(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").unwrap() {
        let fd = entry.unwrap().file_name();
        // A descriptor closed since the listing is simply gone.
        let Ok(target) = fs::read_link(Path::new("/proc/self/fd").join(&fd)) else {
            continue;
        };
        if !target.starts_with(dir) {
            continue;
        }
        let Ok(info) = fs::read_to_string(Path::new("/proc/self/fdinfo").join(&fd)) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| i64::from_str_radix(v.trim(), 8).unwrap())
            .unwrap_or_else(|| panic!("no flags in fdinfo of {target:?}: {info}"));
        out.push((target, flags & i64::from(libc::O_CLOEXEC) != 0));
    }
    out
}

/// Issue 15 item 3: every file the archive opens is close-on-exec, so no
/// child a process of the archive starts (a shell, a browser for `serve`)
/// inherits a descriptor of it. Checked while each kind of file is open: the
/// writer's lock, segments (buffered and `O_DIRECT`) and index; a reader's
/// segments, mid-scan; the projections.
#[test]
fn every_file_the_archive_opens_is_close_on_exec() {
    use ccvault_store::{Archive, ArchiveOptions, ArchiveReader, Incoming, SourceKind};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 200,
        interactions: 20,
        line_len: 300,
    };
    let lines: Vec<String> = (0..s.events).map(|i| s.line(i)).collect();
    let batch: Vec<Incoming> = lines
        .iter()
        .chain(&lines[..3]) // duplicates: a tally record too
        .zip(1..)
        .map(|(l, line)| Incoming {
            raw: l.as_bytes(),
            source_kind: SourceKind::File,
            source: "in.ndjson",
            line,
            message_id: None,
            ingest_ms: 1,
        })
        .collect();
    // Sealed segments stay `.seg`, held open by readers (a `.segz` is read
    // whole and closed at once).
    let options = ArchiveOptions {
        segment_bytes: 16 << 10,
        compression: None,
        ..ArchiveOptions::default()
    };
    let mut seen = Vec::new();
    let (mut archive, _) = Archive::open(&dir, options).unwrap();
    archive.append_batch(&batch).unwrap();
    archive.sync().unwrap();
    let mut reader = archive.reader().unwrap();
    seen.extend(open_files_under(&dir));
    // A reader of its own, and the projections, while the writer holds
    // everything it opened.
    let other = ArchiveReader::open(&dir).unwrap();
    let mut mid_scan = Vec::new();
    let _ = other
        .records()
        .scan(ccvault_store::Position::START, |_, r| {
            if r.offset == 150 {
                mid_scan = open_files_under(&dir);
            }
            std::ops::ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert!(!mid_scan.is_empty(), "the scan holds its segment open");
    seen.extend(mid_scan);
    let mut projections = ccvault_projections::materialize::Projections::open(&dir).unwrap();
    projections.catch_up(&mut reader, &mut |_| {}).unwrap();
    seen.extend(open_files_under(&dir));
    drop((projections, other, reader, archive));

    let names: std::collections::BTreeSet<String> = seen
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["writer.lock", "index.redb", "projections.redb"] {
        assert!(
            names.contains(want),
            "{want} was never seen open: {names:?}"
        );
    }
    assert!(
        names.iter().filter(|n| n.ends_with(".seg")).count() >= 2,
        "segments seen open: {names:?}"
    );
    let leaking: Vec<_> = seen.iter().filter(|(_, cloexec)| !cloexec).collect();
    assert!(
        leaking.is_empty(),
        "descriptors a child would inherit: {leaking:?}"
    );
}

/// Damage redb and the decoder cannot see: a bit flipped in a stored value
/// that still decodes, to another number. Reads then answer otherwise
/// without an error; `verify`, which recomputes the projections from the
/// log and compares them entry by entry, must say which table differs and
/// exit 1 whenever a read answers otherwise or fails, and be clean again
/// after `rebuild`.
#[test]
fn verify_finds_projections_that_differ_from_the_log_even_where_reads_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    ccvault(tmp.path(), &["demo", "--into", dir.to_str().unwrap()]).ok();
    let read = |dir: &Path| ccvault(dir, &["interactions", "--format", "json"]);
    let clean = read(&dir).ok().stdout;
    let verified = ccvault(&dir, &["verify", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(verified[0]["clean"], true, "{verified:?}");
    assert_eq!(verified[0]["projectionsProblems"], serde_json::json!([]));
    let (records, tallies) = (&verified[0]["records"], &verified[0]["tallies"]);
    assert_eq!(
        verified[0]["projectionsThrough"].as_u64(),
        Some(records.as_u64().unwrap() + tallies.as_u64().unwrap()),
        "every record was recomputed: {verified:?}"
    );

    let path = dir.join("projections.redb");
    let pristine = fs::read(&path).unwrap();
    let (mut silent, mut differing) = (0, 0);
    for trial in 0..24usize {
        let mut bytes = pristine.clone();
        let at = 4096 + (trial * 7919 + trial * trial * 131) % (bytes.len() - 4096);
        bytes[at] ^= 1 << (trial % 8);
        fs::write(&path, &bytes).unwrap();
        let run = read(&dir);
        run.assert_no_panic();
        let verify = ccvault(&dir, &["verify"]);
        verify.assert_no_panic();
        if run.code == 0 && run.stdout == clean {
            continue;
        }
        differing += 1;
        silent += usize::from(run.code == 0);
        if run.code == 0 {
            // The log and index are clean: skipping the projections is.
            let only = ccvault(&dir, &["verify", "--no-projections"]);
            assert_eq!(only.code, 0, "trial {trial}: {}", only.stdout_str());
            assert!(only.stdout_str().contains("projections not checked"));
        }
        assert!(
            verify.code == 1
                && verify.stdout_str().contains("PROJ ")
                && verify.stdout_str().contains("ccvault rebuild"),
            "trial {trial}: byte {at} flipped, the read {} but verify (exit {}) said:\n{}{}",
            if run.code == 0 {
                "answered otherwise"
            } else {
                "failed"
            },
            verify.code,
            verify.stdout_str(),
            verify.stderr
        );
    }
    assert!(
        silent > 0,
        "no flip changed an answer silently ({differing} changed one)"
    );
    fs::write(&path, &pristine).unwrap();
    ccvault(&dir, &["verify", "-q"]).ok();
    fs::write(&path, {
        let mut b = pristine.clone();
        let at = pristine.len() / 2;
        b[at] ^= 0x10;
        b
    })
    .unwrap();
    ccvault(&dir, &["rebuild", "-q"]).ok();
    ccvault(&dir, &["verify", "-q"]).ok();
    assert_eq!(read(&dir).ok().stdout, clean);
}

/// The archive `dir`'s records as (offset, line of `s`), in log order.
fn lines_by_offset(dir: &Path, s: &Stream) -> Vec<(u64, usize)> {
    let (records, damage) = common::scan(dir);
    assert!(damage.is_empty(), "{damage:?}");
    records
        .iter()
        .map(|r| {
            let line = s
                .index_of(&r.payload)
                .unwrap_or_else(|| panic!("offset {} holds no line of the stream", r.offset));
            (r.offset, line)
        })
        .collect()
}

/// `interactions --format json` of an archive freshly imported from
/// exactly `lines` of `s`.
fn interactions_of_lines(tmp: &Path, s: &Stream, lines: &[usize]) -> String {
    let dir = tmp.join("expected");
    let _ = fs::remove_dir_all(&dir);
    let input = tmp.join("expected.ndjson");
    let text: String = lines.iter().map(|&i| s.line(i) + "\n").collect();
    fs::write(&input, text).unwrap();
    import(&dir, &[&input], &[]);
    ccvault(&dir, &["interactions", "--format", "json"])
        .ok()
        .stdout_str()
}

/// The active segment removed, or its last record damaged after the index
/// took it: the archive loses those records only. The next writer says
/// which offsets were lost, appends after what the log holds (offsets stay
/// dense), and rebuilds what was derived from the lost records (the index
/// at once, the projections on the next read: a catch-up would otherwise
/// skip the new records that took their offsets). The archive then
/// verifies clean, projections included, and every answer is that of an
/// archive of the records the log holds.
#[test]
fn a_lost_tail_of_the_log_costs_only_its_records() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 900,
        interactions: 60,
        line_len: 300,
    };
    let dir = tmp.path().join("archive");
    let part = |name: &str, range: std::ops::Range<usize>| {
        let path = tmp.path().join(name);
        fs::write(&path, s.text(range)).unwrap();
        path
    };
    import(
        &dir,
        &[&part("a.ndjson", 0..400)],
        &["--segment-bytes", "40KiB"],
    );
    // Read once: the projections hold every record.
    ccvault(&dir, &["interactions"]).ok();
    let check = |lines: &[usize], when: &str| {
        let held = lines_by_offset(&dir, &s);
        let want: Vec<(u64, usize)> = lines
            .iter()
            .enumerate()
            .map(|(offset, &line)| (offset as u64, line))
            .collect();
        assert_eq!(held, want, "{when}: the records held, by offset");
        assert_eq!(
            ccvault(&dir, &["interactions", "--format", "json"])
                .ok()
                .stdout_str(),
            interactions_of_lines(tmp.path(), &s, lines),
            "{when}: interactions"
        );
        let verify = ccvault(&dir, &["verify"]);
        assert_eq!(verify.code, 0, "{when}: {}", verify.stdout_str());
    };

    // 1. The active segment removed: the sealed ones (compressed) remain.
    let active = common::segment_files(&dir);
    assert_eq!(active.len(), 1, "one active segment: {active:?}");
    let lost_from: usize = active[0]
        .file_stem()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(lost_from > 0 && lost_from < 400, "{lost_from}");
    fs::remove_file(&active[0]).unwrap();
    // As many records as were lost and a few more: most interactions get
    // no record past the offsets the projections had consumed.
    let b_end = 400 + (400 - lost_from) + 5;
    let run = import(&dir, &[&part("b.ndjson", 400..b_end)], &[]);
    assert!(
        run.stderr.contains("active segment was missing")
            && run.stderr.contains(&format!("offsets {lost_from}..400")),
        "{}",
        run.stderr
    );
    let mut lines: Vec<usize> = (0..lost_from).chain(400..b_end).collect();
    check(&lines, "after the segment was lost");

    // 2. The last record damaged after the index took it (a torn tail to
    // recovery, which cuts it).
    let active = common::segment_files(&dir);
    let last = active.last().unwrap();
    let mut bytes = fs::read(last).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x55;
    fs::write(last, bytes).unwrap();
    let run = import(&dir, &[&part("c.ndjson", b_end..b_end + 100)], &[]);
    let n = lines.len();
    assert!(
        run.stderr.contains(&format!("offsets {}..{n}", n - 1)),
        "{}",
        run.stderr
    );
    lines.pop();
    lines.extend(b_end..b_end + 100);
    check(&lines, "after the last record was cut");
}

/// Each 4 KiB page of `projections.redb` zeroed in turn (a derived file:
/// the log is intact): `rebuild` replaces the file at its first run, and
/// the archive then verifies clean, projections included. (In release
/// builds, closing the old file made redb read a damaged page after the
/// new file was in place, failing the first run: page 46 of this archive
/// built with 20,000 events. The debug build this suite runs closes
/// without that read, so here the property is checked, not that case.)
#[test]
fn rebuild_replaces_projections_damaged_in_any_page_at_its_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("day.ndjson");
    let day = ccvault(tmp.path(), &["simulate", "--events", "8000", "--seed", "3"]).ok();
    // Imported in two halves with a read between: a catch-up's commits
    // leave the file as a live archive's is (freed pages, several roots),
    // which a rebuild's single pass does not.
    // (Bytes: the simulator's quirks include lines that are not UTF-8.)
    let newlines: Vec<usize> = day
        .stdout
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let cut = newlines[newlines.len() / 2] + 1;
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, &day.stdout[..cut]).unwrap();
    fs::write(&input, &day.stdout[cut..]).unwrap();
    let pristine = tmp.path().join("pristine");
    import(&pristine, &[&first], &[]);
    ccvault(&pristine, &["interactions"]).ok();
    import(&pristine, &[&input], &[]);
    ccvault(&pristine, &["interactions"]).ok();
    let len = fs::metadata(pristine.join("projections.redb"))
        .unwrap()
        .len();
    let dir = tmp.path().join("damaged");
    for page in 0..len / 4096 {
        let _ = fs::remove_dir_all(&dir);
        common::copy_dir(&pristine, &dir);
        let file = dir.join("projections.redb");
        let mut bytes = fs::read(&file).unwrap();
        let at = (page * 4096) as usize;
        bytes[at..at + 4096].fill(0);
        fs::write(&file, bytes).unwrap();
        let run = ccvault(&dir, &["rebuild"]);
        run.assert_no_panic();
        assert_eq!(run.code, 0, "page {page}: {}", run.stderr);
        let verify = ccvault(&dir, &["verify"]);
        assert_eq!(verify.code, 0, "page {page}: {}", verify.stdout_str());
    }
}

/// Inputs are opened one at a time, each when its turn comes: more files
/// than the descriptor limit are all imported (all were opened before any
/// was read, and the import failed with EMFILE, archiving nothing). One
/// that cannot be read (`/proc/self/mem`, a directory as stdin) is rejected
/// by name and the inputs after it imported, exit 3 (it ended the import,
/// exit 1). Names that are not UTF-8 are kept apart, their other bytes
/// written `\xNN` (both were `in�.ndjson`).
/// An input that is one of the archive's own files (its active segment,
/// its index; through a symlink, `..`, a hard link, or as stdin) is
/// refused before anything is read: it would feed the archive its own
/// bytes. A capture kept in a
/// folder of its own under the data directory is an input like any other.
#[test]
fn the_archives_own_files_are_refused_as_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 40,
        interactions: 4,
        line_len: 200,
    };
    let dir = tmp.path().join("archive");
    let first = tmp.path().join("first.ndjson");
    fs::write(&first, s.text(0..20)).unwrap();
    import(&dir, &[&first], &["--no-compress"]);
    let segment = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("an active segment");
    let link = tmp.path().join("link.ndjson");
    std::os::unix::fs::symlink(&segment, &link).unwrap();
    let dotted = dir.join("log/../log").join(segment.file_name().unwrap());
    let hard = tmp.path().join("hard.ndjson");
    fs::hard_link(&segment, &hard).unwrap();
    for own in [segment.clone(), dir.join("index.redb"), link, dotted, hard] {
        let run = ccvault(&dir, &["import", own.to_str().unwrap()]);
        run.assert_no_panic();
        assert_eq!(run.code, 1, "{}: {}", own.display(), run.stderr);
        assert!(
            run.stderr.contains("is a file of the archive"),
            "{}: {}",
            own.display(),
            run.stderr
        );
        assert_eq!(stats(&dir).records, 20, "{}", own.display());
    }
    // Stdin redirected from one.
    let run = common::command(&dir, &["import", "-"])
        .stdin(fs::File::open(dir.join("index.redb")).unwrap())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(stats(&dir).records, 20);
    let kept = dir.join("captures");
    fs::create_dir(&kept).unwrap();
    let capture = kept.join("later.ndjson");
    fs::write(&capture, s.text(20..40)).unwrap();
    ccvault(&dir, &["import", capture.to_str().unwrap()]).ok();
    assert_eq!(stats(&dir).records, 40);
    // A file of the user's own, even in the log's folder, is no segment.
    let beside = dir.join("log").join("copy.ndjson");
    fs::write(&beside, s.text(0..40)).unwrap();
    ccvault(&dir, &["import", beside.to_str().unwrap()]).ok();
    assert_eq!(stats(&dir).records, 40);
}

/// The fsyncs (`fsync`, `fdatasync`) `ccvault ARGS` makes on `dir`,
/// counted by strace.
fn fsyncs_of(dir: &Path, args: &[&str], tmp: &Path) -> (Run, u64) {
    let counts = tmp.join("strace.out");
    let counts_arg = counts.to_str().unwrap();
    let wrapper = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=fsync,fdatasync",
        "-o",
        counts_arg,
    ];
    let run = common::ccvault_under(&wrapper, dir, args);
    let traced = fs::read_to_string(&counts).unwrap();
    let syncs = traced
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count();
    (run, syncs as u64)
}

/// A directory of small captures (one file an hour, a day a directory)
/// is imported with a few fsyncs, not one a file: each file's end is made
/// durable with the next files', and every line is still acknowledged
/// only once durable.
#[test]
fn small_files_share_their_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 400,
        interactions: 40,
        line_len: 200,
    };
    let mut files = Vec::new();
    for i in 0..200 {
        let f = tmp.path().join(format!("hour-{i:03}.ndjson"));
        fs::write(&f, s.text(2 * i..2 * i + 2)).unwrap();
        files.push(f.to_str().unwrap().to_owned());
    }
    let dir = tmp.path().join("archive");
    let mut args = vec!["import", "--print-acks"];
    args.extend(files.iter().map(String::as_str));
    let (run, syncs) = fsyncs_of(&dir, &args, tmp.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(stats(&dir).events, 400);
    // Each file's two lines acknowledged, in order, each once.
    let stdout = String::from_utf8_lossy(&run.stdout);
    let acks: Vec<&str> = stdout.lines().collect();
    let last_acks: Vec<String> = files.iter().map(|f| format!("durable {f} 2")).collect();
    let acked: Vec<String> = acks
        .iter()
        .filter(|a| a.ends_with(" 2"))
        .map(|a| a.to_string())
        .collect();
    assert_eq!(acked, last_acks, "{stdout}");
    // Creating the archive, an index commit a second (strace slows the
    // import several times) and closing take a few each; one a file was
    // 200 more.
    assert!(syncs < 100, "{syncs} fsyncs for 200 files");

    // A file of blank lines alone is acknowledged through its last line
    // too (a script waiting for each file's last line waited for ever),
    // and no input rejected before its first line is acknowledged at 0.
    let blank = tmp.path().join("blank.ndjson");
    fs::write(&blank, "\n\n\n").unwrap();
    let cut = tmp.path().join("cut.gz");
    fs::write(&cut, [0x1f, 0x8b, 0x08]).unwrap();
    let (blank, cut) = (blank.to_str().unwrap(), cut.to_str().unwrap());
    let run = ccvault(&dir, &["import", "--print-acks", blank, cut]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.stdout_str(), format!("durable {blank} 3\n"));
}

#[test]
fn many_files_unreadable_inputs_and_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 300,
        interactions: 30,
        line_len: 200,
    };
    let many = tmp.path().join("many");
    fs::create_dir(&many).unwrap();
    let mut files = Vec::new();
    for i in 0..300 {
        let f = many.join(format!("part-{i:03}.ndjson"));
        fs::write(&f, format!("{}\n", s.line(i))).unwrap();
        files.push(f.to_str().unwrap().to_owned());
    }
    let dir = tmp.path().join("many-archive");
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    let run = common::ccvault_under(
        &["sh", "-c", "ulimit -n 64 && exec \"$@\"", "sh"],
        &dir,
        &args,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(stats(&dir).events, 300);

    let dir = tmp.path().join("unreadable");
    let before = tmp.path().join("before.ndjson");
    fs::write(&before, s.text(0..10)).unwrap();
    let after = tmp.path().join("after.ndjson");
    fs::write(&after, s.text(10..20)).unwrap();
    let (before, after) = (before.to_str().unwrap(), after.to_str().unwrap());
    let run = ccvault(&dir, &["import", before, "/proc/self/mem", after]);
    run.assert_no_panic();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("/proc/self/mem"), "{}", run.stderr);
    assert_eq!(stats(&dir).events, 20);
    let run = common::command(&dir, &["import", before, "-", after])
        .stdin(fs::File::open(tmp.path()).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("-:1: rejected"), "{stderr}");
    let st = stats(&dir);
    assert_eq!((st.events, st.duplicates), (20, 20), "{:?}", st.json);

    let dir = tmp.path().join("names");
    let mut named = Vec::new();
    for byte in [0xFF_u8, 0xFE] {
        let mut name = b"in".to_vec();
        name.push(byte);
        name.extend_from_slice(b".ndjson");
        let path = tmp.path().join(std::ffi::OsStr::from_bytes(&name));
        fs::write(&path, format!("not json {byte}\n")).unwrap();
        named.push(path);
    }
    let mut cmd = common::command(&dir, &["import"]);
    let out = cmd
        .args(&named)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ccvault(&dir, &["quarantine", "--format", "json"])
        .ok()
        .stdout_str();
    for hex in ["in\\\\xFF.ndjson", "in\\\\xFE.ndjson"] {
        assert!(listed.contains(hex), "{hex} in {listed}");
    }
}

/// An input without line ends (`/dev/zero`) is one line that never ends:
/// its skipping is said once it passes 1 GiB, rather than in silence
/// until the user gives up (the rejection comes when a line ends).
#[test]
fn an_input_without_line_ends_is_said_while_it_is_skipped() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = common::command(&tmp.path().join("a"), &["import", "/dev/zero"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let said = rx.recv_timeout(std::time::Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    let said = said.expect("nothing said within 120 s");
    assert!(
        said.contains("line 1 has no line end") && said.contains("/dev/zero"),
        "{said}"
    );
}

/// Re-importing what is archived reads the archived copies to compare:
/// with few descriptors (`ulimit -n`) it holds a bounded number of
/// segments open and stores nothing again (it held every segment it read
/// open, ran out, and archived every message whose copy it could not read:
/// thousands of events stored twice, `verify` clean; outside audit). A
/// copy it cannot read for another reason (here its segment is replaced
/// by a directory) stops the import, the message not stored.
#[test]
fn a_copy_that_cannot_be_read_is_never_stored_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let s = Stream {
        events: 3_000,
        interactions: 300,
        line_len: 300,
    };
    let input = tmp.path().join("in.ndjson");
    s.write(&input);
    let i = input.to_str().unwrap();
    import(
        &dir,
        &[&input],
        &["--segment-bytes", "8KiB", "--no-compress"],
    );
    let before = stats(&dir).records;
    let segments = common::segment_files(&dir);
    assert!(segments.len() > 90, "{}", segments.len());

    let again = common::ccvault_under(
        &["sh", "-c", "ulimit -n 40 && exec \"$0\" \"$@\""],
        &dir,
        &["import", "--no-compress", "--format", "json", i],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("to compare"), "{}", again.stderr);
    let summary: serde_json::Value = serde_json::from_str(again.stdout_str().trim()).unwrap();
    assert_eq!(summary["archived"], 0, "{summary}");
    assert_eq!(stats(&dir).records, before);

    let segment = segments[segments.len() / 2].clone();
    let aside = tmp.path().join("aside");
    fs::rename(&segment, &aside).unwrap();
    fs::create_dir(&segment).unwrap();
    let stopped = ccvault(&dir, &["import", "--no-compress", i]);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .contains("to compare the two; that message was not archived")
            && stopped
                .stderr
                .contains(&*segment.file_name().unwrap().to_string_lossy()),
        "{}",
        stopped.stderr
    );
    fs::remove_dir(&segment).unwrap();
    fs::rename(&aside, &segment).unwrap();
    assert_eq!(stats(&dir).records, before);
    ccvault(&dir, &["verify"]).ok();
}

/// Out of threads (`ulimit -u`; a cgroup's `pids.max` alike), a command
/// that needs threads ends with one line saying so and exit 1: `rebuild`
/// and `verify` blamed the intact projections file ("damaged"), `reindex`
/// panicked with exit 101 (outside audit). The archive is untouched.
#[test]
fn out_of_threads_is_said_as_such_and_harms_nothing() {
    if !is_root() {
        eprintln!("skipped: not root, so the test cannot run ccvault as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Stream {
        events: 2_000,
        interactions: 200,
        line_len: 300,
    };
    let input = tmp.path().join("in.ndjson");
    s.write(&input);
    let dir = tmp.path().join("archive");
    import(&dir, &[&input], &[]);
    ccvault(&dir, &["interactions"]).ok();
    let before = ccvault(&dir, &["export"]).ok().stdout;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(chown.success());
    // prlimit first: it runs as root, so it may exec a binary under a
    // directory only root can search (CI builds in a 0700 mktemp dir);
    // setpriv keeps root's capabilities until its own exec.
    let limited = [
        "prlimit",
        "--nproc=2",
        "--",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    for args in [&["rebuild"][..], &["reindex"], &["verify"]] {
        let run = common::ccvault_under(&limited, &dir, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("thread")
                && run.stderr.contains("Resource temporarily unavailable")
                && !run.stderr.contains("damaged")
                && !run.stderr.contains("panicked"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let after = as_nobody(&dir, &["export"]).unwrap().ok().stdout;
    assert_eq!(after, before);
    as_nobody(&dir, &["verify"]).unwrap().ok();
}
