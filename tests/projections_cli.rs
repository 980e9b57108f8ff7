//! End-to-end tests of the projection commands with the built binary:
//! exact JSON values on the sample stream, filters and flag errors, the CLI
//! catch-up after more imports, and determinism (a shuffled, duplicated copy
//! of a stream in another archive prints byte-identical output).

// json! of a whole summary nests deeper than the default limit.
#![recursion_limit = "256"]

mod common;

use std::path::Path;

use common::{samples_dir as samples, Run};
use serde_json::{json, Value};

const ANSWERED: &str = "int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01";
const ABANDONED: &str = "int-19ab3f0d7e1-Lk2VbN8sXq4ZtR6mPy1cJw0Ud-phone-01-northwind01";
const OUTBOUND: &str = "int-19ab3f0e9a4-Zx5CvB7nMq2WeR8tYu3iOp6As-phone-02-northwind01";
const OPEN: &str = "int-ok-after-garbage-phone-00-northwind01";
const AGENT: &str = "agR2t9LmQx7VbN3cZk5WpYe";

/// `ccvault --data-dir DIR ARGS...` (it must not panic).
fn run(dir: &Path, args: &[&str]) -> Run {
    common::ccvault(dir, args)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert_eq!(o.code, 0, "ccvault {args:?} failed:\n{}", o.stderr);
    o.stdout_str()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

/// An archive of the three sample files.
fn sample_archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let s = samples();
    let files: Vec<String> = [
        "events.ndjson",
        "pulsar-envelopes.ndjson",
        "malformed.ndjson",
    ]
    .iter()
    .map(|f| s.join(f).display().to_string())
    .collect();
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    ok(dir.path(), &args);
    dir
}

#[test]
fn interactions_json_on_the_samples() {
    let dir = sample_archive();
    let out = ok(dir.path(), &["--format", "json", "interactions"]);
    let rows = lines(&out);
    let guids: Vec<&str> = rows
        .iter()
        .map(|r| r["interactionGUID"].as_str().unwrap())
        .collect();
    // Sorted by offeredAt, then GUID.
    assert_eq!(guids, [ANSWERED, OPEN, ABANDONED, OUTBOUND]);
    assert_eq!(
        rows[0],
        json!({"interactionGUID":ANSWERED,"contactId":ANSWERED,"legIndex":0,"parentGuid":null,
            "kind":"inbound","tenant":"northwind01","mediaType":"phone","queueId":311,
            "direction":"in","createdAt":1763900000000i64,"queuedAt":1763900002000i64,
            "offeredAt":1763900002000i64,"offerCount":2,"rejectCount":1,"rejectTimeouts":1,
            "rejectRefusals":0,"acceptedAt":1763900081000i64,
            "assignedAt":1763900075000i64,"agentId":AGENT,"connectedAt":1763900081000i64,
            "wrapStartAt":1763900402000i64,"wrapEndAt":1763900431000i64,"endedAt":1763900402000i64,
            "holdCount":1,"holdMs":45000,"maxHoldMs":45000,"queueMs":73000,"ringMs":6000,"waitMs":79000,"dialMs":null,
            "talkMs":276000,"wrapMs":29000,"handleMs":350000,"abandonMs":null,"outcome":"answered",
            "hangupInitiator":"CUSTOMER","callHangupReason":"CEC_DISCONNECT_NORMAL",
            "dispositionCode":"1000","transferred":false,"complete":true,"eventCount":13,"anomalies":[]})
    );
    // The JSON keys come in the METRICS order, not alphabetically.
    assert!(out.starts_with("{\"interactionGUID\":\"int-19ab3f0c1d2"));
    assert!(out
        .lines()
        .next()
        .unwrap()
        .ends_with("\"eventCount\":13,\"anomalies\":[]}"));
    let open = &rows[1];
    assert_eq!(open["outcome"], "open");
    assert_eq!(open["createdAt"], Value::Null);
    assert_eq!(open["anomalies"], json!(["missing_created"]));
    let abandoned = &rows[2];
    assert_eq!(abandoned["outcome"], "abandoned");
    assert_eq!(abandoned["abandonMs"], 48000);
    assert_eq!(abandoned["queuedAt"], 1763900301000i64);
    let outbound = &rows[3];
    assert_eq!(outbound["direction"], "out");
    assert_eq!(outbound["outcome"], "unanswered");
    assert_eq!(outbound["ringMs"], 2000);
    assert_eq!(outbound["dispositionCode"], "NO_ANSWER");
    assert_eq!(outbound["hangupInitiator"], "SYSTEM");

    // Filters.
    let q = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["--format", "json", "interactions"];
        a.extend_from_slice(args);
        lines(&ok(dir.path(), &a))
            .iter()
            .map(|r| r["interactionGUID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(q(&["--queue", "312"]), [OUTBOUND]);
    assert_eq!(q(&["--outcome", "abandoned"]), [ABANDONED]);
    assert_eq!(q(&["--agent", AGENT]), [ANSWERED]);
    assert_eq!(
        q(&["--from", "2025-11-23T12:15:00Z", "--to", "1763900500000"]),
        [OPEN, ABANDONED]
    );
    // Digits below a millisecond are kept: `[from, to)` as typed, where
    // they were cut off until 2026-12-07 (ANSWERED is offered at
    // 12:13:22.000 and OPEN at 12:15:00.000).
    assert_eq!(
        q(&[
            "--from",
            "2025-11-23T12:13:22.0001Z",
            "--to",
            "2025-11-23T12:15:00.0000001Z"
        ]),
        [OPEN]
    );
    assert_eq!(q(&["--to", "2025-11-23T12:13:22.0005Z"]), [ANSWERED]);
}

#[test]
fn report_json_on_the_samples() {
    let dir = sample_archive();
    let day = lines(&ok(
        dir.path(),
        &["--format", "json", "report", "--interval", "1d"],
    ));
    assert_eq!(
        day,
        [
            json!({"intervalStart":1763856000000i64,"intervalEnd":1763942400000i64,"offered":3,
            "contacts":3,"transferredIn":0,"answered":1,"abandoned":1,"shortAbandoned":0,
            "answeredInSla":0,"serviceLevel":0.0,"abandonRate":0.3333,"asaMs":79000,
            "maxWaitMs":79000,"unqueued":0,"consults":0,"outbound":1,"outboundConnected":0,
            "handled":1,"ahtMs":350000,"avgTalkMs":276000,"avgHoldMs":45000,"avgWrapMs":29000,
            "holds":1,"maxHoldMs":45000,"rejects":1,"transfers":0})
        ]
    );
    let by_queue = lines(&ok(
        dir.path(),
        &["--format", "json", "report", "--by", "queue"],
    ));
    assert_eq!(by_queue.len(), 2);
    assert_eq!(by_queue[0]["queueId"], 311);
    assert_eq!(by_queue[0]["intervalStart"], 1763899200000i64);
    assert_eq!(by_queue[0]["intervalEnd"], 1763902800000i64);
    assert_eq!(by_queue[0]["offered"], 3);
    assert_eq!(by_queue[1]["queueId"], 312);
    assert_eq!(by_queue[1]["serviceLevel"], Value::Null);
    assert_eq!(by_queue[1]["outbound"], 1);
    // A generous SLA puts the 79 s answer in service level; a long short-abandon
    // threshold makes the 48 s abandon short.
    let sla = lines(&ok(
        dir.path(),
        &[
            "--format",
            "json",
            "report",
            "--interval",
            "1d",
            "--sla",
            "2m",
            "--short-abandon",
            "1m",
        ],
    ));
    assert_eq!(sla[0]["answeredInSla"], 1);
    assert_eq!(sla[0]["shortAbandoned"], 1);
    assert_eq!(sla[0]["serviceLevel"], 1.0);
    assert_eq!(sla[0]["abandonRate"], 0.0);
    // Agent grouping; day buckets in a zone start at its local midnight.
    let by_agent = lines(&ok(
        dir.path(),
        &[
            "--format",
            "json",
            "--tz",
            "America/New_York",
            "report",
            "--by",
            "agent",
            "--interval",
            "1d",
        ],
    ));
    assert_eq!(by_agent[0]["agentId"], Value::Null);
    assert_eq!(by_agent[0]["intervalStart"], 1763874000000i64); // 2025-11-23T00:00-05:00
    assert!(by_agent.iter().any(|r| r["agentId"] == AGENT));
}

#[test]
fn agents_json_on_the_samples() {
    let dir = sample_archive();
    let window = lines(&ok(
        dir.path(),
        &["--format", "json", "agents", "--to", "1763900600000"],
    ));
    assert_eq!(
        window,
        [json!({"agentId":AGENT,"stateMs":{"1":60000,"5":1140000},"changes":2,"untimed":0})]
    );
    let clipped = lines(&ok(
        dir.path(),
        &[
            "--format",
            "json",
            "agents",
            "--from",
            "2025-11-23T12:13:20Z",
            "--to",
            "2025-11-23T12:23:20Z",
        ],
    ));
    assert_eq!(
        clipped,
        [json!({"agentId":AGENT,"stateMs":{"5":600000},"changes":0,"untimed":0})]
    );
    let human = ok(
        dir.path(),
        &[
            "agents",
            "--to",
            "1763900600000",
            "--state-names",
            "1=ready to go,5=free",
        ],
    );
    assert!(
        human.contains("ready to go (1)") && human.contains("free (5)"),
        "{human}"
    );
}

#[test]
fn show_json_and_raw_on_the_samples() {
    let dir = sample_archive();
    let tl: Value =
        serde_json::from_str(&ok(dir.path(), &["--format", "json", "show", OUTBOUND])).unwrap();
    assert_eq!(tl["interactionGUID"], OUTBOUND);
    let events = tl["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "InteractionCreated",
            "InteractionAssigned",
            "InteractionAccepted",
            "InteractionDeleted"
        ]
    );
    let deltas: Vec<Value> = events.iter().map(|e| e["deltaMs"].clone()).collect();
    assert_eq!(
        deltas,
        [Value::Null, json!(1000), json!(2000), json!(30000)]
    );
    assert_eq!(events[1]["agentId"], "agH4s8KpWz1XcV6bNm2QrTa");
    assert_eq!(tl["summary"]["outcome"], "unanswered");
    assert_eq!(tl["summary"]["eventCount"], 4);
    assert_eq!(tl["summary"]["callHangupReason"], "CEC_DISCONNECT_NOANSWER");

    let answered: Value =
        serde_json::from_str(&ok(dir.path(), &["--format", "json", "show", ANSWERED])).unwrap();
    assert_eq!(answered["events"].as_array().unwrap().len(), 13);
    assert_eq!(answered["summary"]["holdMs"], 45000);
    // The summary of `show` is the summary of `interactions`.
    let listed = lines(&ok(
        dir.path(),
        &["--format", "json", "interactions", "--agent", AGENT],
    ));
    assert_eq!(answered["summary"], listed[0]);

    // Human: every event with time, delta and agent, then the durations.
    let human = ok(dir.path(), &["--tz", "America/New_York", "show", ANSWERED]);
    assert!(human.contains("2025-11-23T07:13:20.000-05:00"), "{human}");
    assert!(
        human.contains("InteractionRejected") && human.contains("+1m 59s"),
        "{human}"
    );
    assert!(human.contains("answered"), "{human}");

    // --raw stays byte-exact: every line is a line of the input files.
    let raw = ok(dir.path(), &["show", "--raw", ANSWERED]);
    let input = std::fs::read_to_string(samples().join("events.ndjson")).unwrap();
    assert_eq!(raw.lines().count(), 13);
    for l in raw.lines() {
        assert!(input.lines().any(|i| i == l), "not an input line: {l}");
    }

    let missing = run(dir.path(), &["show", "int-nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no events of interaction"));
}

#[test]
fn export_on_the_samples() {
    let dir = sample_archive();
    let events = ok(dir.path(), &["export"]);
    let as_ndjson = ok(
        dir.path(),
        &["export", "--format", "ndjson", "--what", "events"],
    );
    assert_eq!(events, as_ndjson);
    // 29 distinct records, 4 of them quarantined.
    assert_eq!(events.lines().count(), 25);
    let input = std::fs::read_to_string(samples().join("events.ndjson")).unwrap();
    let from_file = events
        .lines()
        .filter(|l| input.lines().any(|i| i == *l))
        .count();
    assert!(
        from_file >= 19,
        "{from_file} lines byte-exact from events.ndjson"
    );

    let csv = ok(
        dir.path(),
        &["export", "--format=csv", "--what", "interactions"],
    );
    let mut csv_lines = csv.lines();
    let header = csv_lines.next().unwrap();
    assert!(header.starts_with(
        "interactionGUID,contactId,legIndex,parentGuid,kind,tenant,mediaType,queueId,direction,createdAt"
    ));
    assert!(header.ends_with("transferred,complete,eventCount,anomalies"));
    assert_eq!(header.split(',').count(), 42);
    assert!(header.contains(",holdCount,holdMs,maxHoldMs,queueMs,"));
    let rows: Vec<&str> = csv_lines.collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[1].starts_with(&format!(
        "{OPEN},{OPEN},0,,inbound,northwind01,,311,in,,1763900100000,"
    )));
    assert!(rows[1].ends_with(",open,,,,false,false,1,missing_created"));

    let nd = lines(&ok(dir.path(), &["export", "--what", "interactions"]));
    let listed = lines(&ok(dir.path(), &["--format", "json", "interactions"]));
    assert_eq!(nd, listed);
}

#[test]
fn bad_flag_values_are_clear_errors() {
    let dir = sample_archive();
    for (args, needle) in [
        (vec!["report", "--from", "yesterday"], "RFC 3339"),
        (vec!["report", "--sla", "20q"], "invalid duration"),
        // A negative value after a space names itself, as after `=` (it
        // was "unexpected argument '-5'": an outside audit).
        (vec!["report", "--sla", "-5s"], "'-5s' for '--sla"),
        (
            vec!["report", "--short-abandon", "-5s"],
            "must not be negative",
        ),
        (vec!["wallboard", "--sla", "-5s"], "'-5s' for '--sla"),
        (
            vec!["report", "--short-abandon", "4999.5ms"],
            "whole milliseconds",
        ),
        (vec!["report", "--interval", "5m"], "15m, 30m, 1h, 1d"),
        (vec!["report", "--by", "tenant"], "queue, agent"),
        (vec!["interactions", "--outcome", "won"], "unknown outcome"),
        (
            vec!["agents", "--state-names", "five=available"],
            "CODE=NAME",
        ),
        (vec!["export", "--format", "xml"], "xml"),
    ] {
        let o = run(dir.path(), &args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    // A bad command line exits 2 (docs/OPERATIONS.md), also when only the
    // combination of flags is wrong.
    let o = run(dir.path(), &["--tz", "Mars/Olympus", "report"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("unknown time zone"), "{}", o.stderr);
    let o = run(dir.path(), &["export", "--format", "csv"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--what interactions"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------
// Determinism and catch-up on simulated streams

fn sim_lines(seed: u64, interactions: u64) -> Vec<String> {
    let cfg = ccvault_sim::SimConfig {
        seed,
        interactions: Some(interactions),
        agents: 10,
        ..ccvault_sim::SimConfig::default()
    };
    let mut out = Vec::new();
    ccvault_sim::simulate(&cfg, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Every projection output that must not depend on arrival order.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let cmds: Vec<Vec<&str>> = vec![
        vec!["--format", "json", "interactions"],
        vec!["--format", "json", "report"],
        vec![
            "--format",
            "json",
            "--tz",
            "America/New_York",
            "report",
            "--by",
            "queue",
            "--interval",
            "15m",
        ],
        vec![
            "--format",
            "json",
            "report",
            "--by",
            "agent",
            "--interval",
            "1d",
        ],
        // Without --to the last state runs to the archive's latest t(e),
        // which for events that carry no time at all (the simulator's
        // AgentProvChange with `msgInfo: {}`) is their ingest time: not a
        // function of the events, so the window is given.
        vec!["--format", "json", "agents", "--to", "1764100000000"],
        vec![
            "--format",
            "json",
            "agents",
            "--from",
            "1763942400000",
            "--to",
            "1763985600000",
        ],
        vec!["export", "--what", "interactions", "--format", "csv"],
        vec!["interactions"],
        vec!["report", "--by", "queue"],
    ];
    cmds.into_iter()
        .map(|c| (c.join(" "), ok(dir, &c)))
        .collect()
}

fn assert_same(a: &[(String, String)], b: &[(String, String)], what: &str) {
    for ((cmd, x), (_, y)) in a.iter().zip(b) {
        assert!(!x.is_empty(), "{cmd}: empty output");
        assert!(x == y, "{what}: `{cmd}` differs");
    }
}

#[test]
fn shuffled_and_duplicated_stream_gives_identical_output() {
    let stream = sim_lines(11, 250);
    assert!(stream.len() > 1500, "{} lines", stream.len());
    // A seeded shuffle with every 7th line repeated.
    let mut copy: Vec<String> = stream.clone();
    copy.extend(stream.iter().step_by(7).cloned());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..copy.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        copy.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let files = tempfile::tempdir().unwrap();
    let (fa, fb) = (files.path().join("a.ndjson"), files.path().join("b.ndjson"));
    write_lines(&fa, &stream);
    // The copy arrives in three imports (three catch-ups in between).
    let third = copy.len() / 3;
    let parts = [&copy[..third], &copy[third..2 * third], &copy[2 * third..]];
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(a.path(), &["import", fa.to_str().unwrap()]);
    for (i, part) in parts.iter().enumerate() {
        let f = files.path().join(format!("b{i}.ndjson"));
        write_lines(&f, part);
        ok(b.path(), &["import", f.to_str().unwrap()]);
        ok(b.path(), &["--format", "json", "report"]);
    }
    write_lines(&fb, &copy);
    let out_a = outputs(a.path());
    let out_b = outputs(b.path());
    assert_same(&out_a, &out_b, "shuffled + duplicated, imported in parts");

    // A rebuild from scratch changes nothing either.
    let rebuilt = ok(b.path(), &["--format", "json", "rebuild"]);
    assert_eq!(
        lines(&rebuilt)[0]["interactions"],
        out_a[0].1.lines().count()
    );
    assert_same(&out_a, &outputs(b.path()), "after rebuild");
    let replayed = run(b.path(), &["replay"]);
    assert_eq!(replayed.code, 0);
    assert!(replayed.stderr.contains("events/s"), "{}", replayed.stderr);
}
