//! `ccvault ingest mqtt` against a real mosquitto started by the test.
//!
//! The decisive test publishes a numbered stream at QoS 1 (waiting for each
//! PUBACK) while the ingest process is SIGKILLed and restarted several
//! times, and asserts that every published event ends up archived exactly
//! once. Requires the `mosquitto` binary (`.ci/run` installs it); without
//! it the tests fail with a message saying so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ccvault_store::ArchiveReader;
use common::daemon::Daemon;
use common::mqtt::{free_port, publish_all, wait_listening, Broker};
use common::tls::Pki;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ccvault");

/// One `ccvault ingest mqtt` process (see `common::daemon`).
fn start_ingest(
    data: &Path,
    logdir: &Path,
    n: usize,
    args: &[&str],
    env: &[(&str, &str)],
) -> Daemon {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--format", "json", "ingest", "mqtt"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Daemon::spawn(cmd, logdir.join(format!("ingest-{n}.log")))
}

/// An ingest process once it has subscribed, and a moment more: the
/// broker routes to a new subscription a little after its SUBACK, and a
/// message published before that is not delivered to it.
fn subscribed_ingest(data: &Path, logdir: &Path, n: usize, args: &[&str]) -> Daemon {
    let mut ingest = start_ingest(data, logdir, n, args, &[]);
    ingest.wait_for_log("subscribed", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(200));
    ingest
}

fn event(i: usize) -> String {
    format!(
        r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"int-{i:06}-test-acme","queueId":"7","interactionEventTS":{},"msgInfo":{{"sequenceId":{i},"timestamp":{}}}}}}}"#,
        1_763_900_000 + i,
        1_763_900_000_000u64 + i as u64 * 1000
    )
}

/// Each record of the archive in log order: its payload, whether it is
/// quarantined, and why.
fn records_of(data: &Path) -> Vec<(Vec<u8>, bool, String)> {
    let reader = ArchiveReader::open(data).unwrap();
    let mut records = Vec::new();
    reader
        .for_each_record(
            |r| {
                records.push((r.payload, r.quarantined, r.quarantine_reason));
                Ok(())
            },
            |d| panic!("{d}"),
        )
        .unwrap();
    records
}

/// The archive's records: payload -> count, read at library level.
fn archived(data: &Path) -> (BTreeMap<Vec<u8>, usize>, ccvault_store::Stats) {
    let reader = ArchiveReader::open(data).unwrap();
    let mut map = BTreeMap::new();
    reader
        .for_each_record(
            |r| {
                *map.entry(r.payload).or_insert(0) += 1;
                Ok(())
            },
            |d| panic!("damage in the archive: {d}"),
        )
        .unwrap();
    (map, reader.stats().unwrap())
}

fn summary(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary {line:?}: {e}"))
}

#[test]
fn every_event_is_archived_exactly_once_across_kill9_restarts() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let args = [
        "--url",
        url.as_str(),
        "--client-id",
        "ccvault-test-kill",
        "--backoff-ms",
        "50",
        "--max-backoff-ms",
        "500",
    ];
    let mut runs = 0;
    let mut ingest = start_ingest(&data, work.path(), runs, &args, &[]);
    // The persistent session must exist before anything is published.
    ingest.wait_for_log("subscribed", Duration::from_secs(20));

    const N: usize = 3000;
    let port = broker.port;
    let publisher = std::thread::spawn(move || {
        publish_all(
            port,
            (0..N)
                .map(|i| ("acme/event-v1/all".to_owned(), event(i).into_bytes()))
                .collect(),
        )
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    eprintln!("seed {seed}");
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(150 + next() % 450));
        ingest.kill9();
        std::thread::sleep(Duration::from_millis(next() % 200));
        runs += 1;
        ingest = start_ingest(&data, work.path(), runs, &args, &[]);
    }
    publisher.join().expect("publisher failed");
    // Readers may only look once the writer holds the archive (a reader
    // that finds a crashed index repairs it, which needs the writer lock).
    ingest.wait_for_log("subscribed", Duration::from_secs(20));
    ingest.wait_records(&data, N as u64, Duration::from_secs(90));
    // Let the last PUBACKs go out, then stop cleanly.
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let s = summary(&stdout);
    assert_eq!(s["ok"], true, "{s}");

    let (records, stats) = archived(&data);
    assert_eq!(records.len(), N, "distinct archived payloads");
    for i in 0..N {
        assert_eq!(
            records.get(event(i).as_bytes()),
            Some(&1),
            "event {i} archived once"
        );
    }
    assert_eq!(stats.counters.records, N as u64);
    assert_eq!(stats.counters.quarantined, 0);
    eprintln!(
        "{runs} restarts; duplicates skipped overall: {}",
        stats.counters.duplicates
    );

    // A last run finds the session empty: nothing new arrives.
    let mut again = start_ingest(&data, work.path(), 99, &args, &[]);
    again.wait_for_log("subscribed", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let (status, stdout) = again.terminate();
    assert!(status.success());
    assert_eq!(summary(&stdout)["archived"], 0, "{stdout}");
}

/// A stop (SIGTERM) in the middle of a burst sends every PUBACK it counts
/// as sent, and then a DISCONNECT, before the process exits: the next run
/// of the same session is given only what was not archived, no duplicate.
/// Until 2026-12-06 the process left on the event loop's word that the
/// DISCONNECT was queued, before its bytes and the PUBACKs ahead of them
/// were written: an audit saw 21,000 counted as acknowledged, 23 reach the
/// broker, and the next run take 13,488 again as duplicates.
#[test]
fn a_stop_in_a_burst_sends_every_acknowledgement_it_counts() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let args = ["--url", url.as_str(), "--client-id", "ccvault-test-burst"];
    // The persistent session first, then a backlog for it.
    let mut first = start_ingest(&data, work.path(), 0, &args, &[]);
    first.wait_for_log("subscribed", Duration::from_secs(20));
    assert!(first.terminate().0.success());
    const N: usize = 30_000;
    publish_all(
        broker.port,
        (0..N)
            .map(|i| ("acme/event-v1/all".to_owned(), event(i).into_bytes()))
            .collect(),
    );
    // Stopped as the broker pours the backlog out (it does once it has
    // the subscription).
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut with_metrics = args.to_vec();
    with_metrics.extend(["--metrics-addr", metrics_addr.as_str()]);
    let mut stopped = start_ingest(&data, work.path(), 1, &with_metrics, &[]);
    stopped.wait_for_log("subscribed", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut body = String::new();
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", metrics_port)) {
            let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            let _ = conn.read_to_string(&mut body);
        }
        let received = body
            .lines()
            .find_map(|l| l.strip_prefix("ccvault_ingest_received_total{source=\"mqtt\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok());
        if received.is_some_and(|n| n > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing received:\n{}",
            stopped.stderr()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (status, stdout) = stopped.terminate();
    assert!(status.success(), "exit {status}:\n{}", stopped.stderr());
    let s1 = summary(&stdout);
    eprintln!("stopped in the burst: {s1}");
    assert_eq!(s1["acked"], s1["archived"], "{s1}");
    let received = s1["received"].as_u64().unwrap();
    assert!(
        received > 0 && received < N as u64,
        "the stop came before or after the burst, not in it: {s1}"
    );

    let mut rest = start_ingest(&data, work.path(), 2, &args, &[]);
    rest.wait_for_log("subscribed", Duration::from_secs(20));
    rest.wait_records(&data, N as u64, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout) = rest.terminate();
    assert!(status.success(), "exit {status}:\n{}", rest.stderr());
    let s2 = summary(&stdout);
    assert_eq!(
        s2["duplicates"], 0,
        "the broker sent again what was counted as acknowledged: {s1} then {s2}"
    );
    let (records, stats) = archived(&data);
    assert_eq!((records.len(), stats.counters.records), (N, N as u64));
}

/// The removed files process `pid` holds open under `dir`.
fn deleted_files_held(pid: u32, dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|t| t.starts_with(dir.to_str().unwrap()) && t.ends_with(" (deleted)"))
        .collect()
}

/// An ingest that runs for months seals and compresses segment after
/// segment; the `.seg` files it read to confirm duplicates (the same event
/// on two topics) are let go once compressed away. It held each one open
/// until it exited: its uncompressed bytes stayed on the disk, a
/// descriptor each, until the descriptors ran out and ingest stopped.
#[test]
fn a_long_ingest_holds_no_segment_it_compressed_away() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let args = [
        "--url",
        url.as_str(),
        "--client-id",
        "ccvault-test-segments",
        "--topic",
        "+/event-v1/#",
        "--topic",
        "+/agent-v1/+",
        "--segment-bytes",
        "16KiB",
    ];
    let mut ingest = subscribed_ingest(&data, work.path(), 0, &args);
    // ~2 KB each: ~150 segments sealed, and the compressor may still
    // work through some once the stream is quiet.
    let note = "x".repeat(2_000);
    let status = |i: usize| {
        format!(
            r#"{{"AgentStatusChange":{{"agentId":"ag{i}","newState":5,"statusEventTS":{},"note":"{note}"}}}}"#,
            1_763_900_000 + i
        )
        .into_bytes()
    };
    // Each change on two topics: the second is a duplicate, confirmed by
    // reading the first from the log.
    let twice = |range: std::ops::Range<usize>| {
        range
            .flat_map(|i| {
                [
                    ("acme/event-v1/all".to_owned(), status(i)),
                    (format!("acme/agent-v1/ag{i}"), status(i)),
                ]
            })
            .collect::<Vec<_>>()
    };
    publish_all(broker.port, twice(0..600));
    ingest.wait_records(&data, 600, Duration::from_secs(60));
    let log = data.join("log");
    let compressed = || {
        std::fs::read_dir(&log)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "segz")
            })
            .count()
    };
    let plain = || {
        std::fs::read_dir(&log)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    // Every sealed segment compressed (the active one stays a `.seg`),
    // most of them after the last batch: the stream is quiet, and those
    // are let go of all the same, without another message.
    let deadline = Instant::now() + Duration::from_secs(60);
    while compressed() < 3 || plain() > 1 {
        assert!(
            Instant::now() < deadline,
            "{} compressed, {} not:\n{}",
            compressed(),
            plain(),
            ingest.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held = deleted_files_held(ingest.pid(), &data);
        if held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "quiet for 5 s with {} compressed, still held: {held:?}",
            compressed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The next batch lets go of what was compressed meanwhile.
    publish_all(broker.port, twice(600..610));
    ingest.wait_records(&data, 610, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let held = deleted_files_held(ingest.pid(), &data);
    assert!(
        held.is_empty(),
        "{} compressed, still held: {held:?}",
        compressed()
    );
    let (status, _) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
}

#[test]
fn topics_tenants_dedup_quarantine_metrics_and_clean_shutdown() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let args = [
        "--url",
        url.as_str(),
        "--client-id",
        "ccvault-test-topics",
        "--topic",
        "+/event-v1/#",
        "--topic",
        "+/agent-v1/+",
        "--metrics-addr",
        metrics_addr.as_str(),
    ];
    let mut ingest = subscribed_ingest(&data, work.path(), 0, &args);

    let ev = br#"{"AgentStatusChange":{"agentId":"agA","newState":5,"statusEventTS":1763900000}}"#
        .to_vec();
    let other = event(1).into_bytes();
    publish_all(
        broker.port,
        vec![
            // The same event on three topics of one tenant: archived once.
            ("acme/event-v1/all".into(), ev.clone()),
            ("acme/event-v1/AgentStatusChange".into(), ev.clone()),
            ("acme/agent-v1/agA".into(), ev.clone()),
            // Another tenant.
            ("globex/event-v1/all".into(), other.clone()),
            // Not an event: archived, quarantined.
            ("acme/event-v1/all".into(), b"this is not json".to_vec()),
        ],
    );
    ingest.wait_records(&data, 3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));

    let mut conn = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for line in [
        "ccvault_ingest_received_total{source=\"mqtt\"} 5",
        "ccvault_ingest_archived_total{source=\"mqtt\"} 2",
        "ccvault_ingest_duplicates_total{source=\"mqtt\"} 2",
        "ccvault_ingest_quarantined_total{source=\"mqtt\"} 1",
        "ccvault_ingest_acked_total{source=\"mqtt\"} 5",
        "ccvault_ingest_connected{source=\"mqtt\"} 1",
        "ccvault_ingest_reconnects_total{source=\"mqtt\"} 0",
        "ccvault_ingest_last_event_timestamp_seconds{source=\"mqtt\"}",
        "ccvault_ingest_lag_seconds{source=\"mqtt\"}",
    ] {
        assert!(body.contains(line), "metrics lack {line:?}:\n{body}");
    }

    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let s = summary(&stdout);
    assert_eq!(
        (
            s["received"].as_u64(),
            s["archived"].as_u64(),
            s["duplicates"].as_u64(),
            s["quarantined"].as_u64()
        ),
        (Some(5), Some(2), Some(2), Some(1)),
        "{s}"
    );

    let reader = ArchiveReader::open(&data).unwrap();
    let mut sources = Vec::new();
    reader
        .for_each_record(
            |r| {
                sources.push((r.source.clone(), r.quarantined));
                Ok(())
            },
            |d| panic!("{d}"),
        )
        .unwrap();
    assert_eq!(
        sources,
        vec![
            ("acme/event-v1/all".to_owned(), false),
            ("globex/event-v1/all".to_owned(), false),
            ("acme/event-v1/all".to_owned(), true),
        ]
    );
}

#[test]
fn a_refused_login_is_a_clear_error_without_retries_and_the_password_stays_secret() {
    let work = tempfile::tempdir().unwrap();
    let pwfile = work.path().join("broker.passwd");
    std::fs::write(&pwfile, "").unwrap();
    let st = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(&pwfile)
        .args(["archiver", "right-password"])
        .status()
        .expect("mosquitto_passwd (from the mosquitto package) is needed");
    assert!(st.success());
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}",
        pwfile.display()
    ));
    let data = work.path().join("data");
    let url = broker.url();
    let secret_file = work.path().join("pw");
    std::fs::write(&secret_file, "wrong-password-XYZZY\n").unwrap();
    let started = Instant::now();
    let mut ingest = start_ingest(
        &data,
        work.path(),
        0,
        &[
            "--url",
            url.as_str(),
            "--username",
            "archiver",
            "--password-file",
            secret_file.to_str().unwrap(),
        ],
        &[],
    );
    let (status, _) = ingest.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(3), "{}", ingest.stderr());
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = ingest.stderr();
    // Named with the broker: the run ends on it.
    assert!(
        err.contains(&format!("the MQTT broker {url} refused the login")),
        "{err}"
    );
    assert!(
        !err.contains("XYZZY"),
        "the password leaked into the log:\n{err}"
    );
    assert!(
        !err.contains("reconnecting"),
        "retried a refused login:\n{err}"
    );

    // The right password from the environment works.
    let mut ok = start_ingest(
        &data,
        work.path(),
        1,
        &["--url", url.as_str(), "--username", "archiver"],
        &[("CCVAULT_MQTT_PASSWORD", "right-password")],
    );
    ok.wait_for_log("subscribed", Duration::from_secs(20));
    let (status, _) = ok.terminate();
    assert!(status.success(), "{}", ok.stderr());
}

/// An envelope whose `messageId` is longer than a record's metadata can hold
/// (65,535 bytes) is archived as received and quarantined naming the field,
/// and the stream goes on: the event published after it is archived and the
/// process keeps running (it used to exit, and again on every redelivery).
#[test]
fn an_envelope_with_oversized_metadata_is_quarantined_and_the_stream_goes_on() {
    use base64::Engine;
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let mut ingest = subscribed_ingest(
        &data,
        work.path(),
        0,
        &[
            "--url",
            url.as_str(),
            "--client-id",
            "ccvault-test-oversized",
        ],
    );
    let oversized = format!(
        r#"{{"messageId":"{}","publishTime":"2025-11-23T12:13:20.000Z","payload":"{}"}}"#,
        "M".repeat(70_000),
        base64::engine::general_purpose::STANDARD.encode(event(1))
    )
    .into_bytes();
    let after = event(2).into_bytes();
    publish_all(
        broker.port,
        vec![
            ("acme/event-v1/all".into(), oversized.clone()),
            ("acme/event-v1/all".into(), after.clone()),
        ],
    );
    ingest.wait_records(&data, 2, Duration::from_secs(20));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let s = summary(&stdout);
    assert_eq!(
        (s["archived"].as_u64(), s["quarantined"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let records = records_of(&data);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!((&records[0].0, records[0].1), (&oversized, true));
    assert!(records[0].2.contains("messageId"), "{}", records[0].2);
    assert_eq!((&records[1].0, records[1].1), (&after, false));
}

/// Messages of the edges an operator meets: one over `--max-record-bytes`
/// is a warning (the stream goes on; an `error:` line would say the
/// command ended); one led by a UTF-8 byte order mark is
/// its event, archived as received; `{"a":1}` is quarantined with a reason
/// that names no family.
#[test]
fn oversized_marked_and_familyless_messages_each_get_their_outcome() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let mut ingest = subscribed_ingest(
        &data,
        work.path(),
        0,
        &[
            "--url",
            url.as_str(),
            "--client-id",
            "ccvault-test-edges",
            "--max-record-bytes",
            "4KiB",
        ],
    );
    let oversized = format!("{}{}", " ".repeat(5000), event(1)).into_bytes();
    let marked = [&b"\xEF\xBB\xBF"[..], event(2).as_bytes()].concat();
    let familyless = br#"{"a":1}"#.to_vec();
    let after = event(3).into_bytes();
    publish_all(
        broker.port,
        vec![
            ("acme/event-v1/all".into(), oversized),
            ("acme/event-v1/all".into(), marked.clone()),
            ("acme/event-v1/all".into(), familyless.clone()),
            ("acme/event-v1/all".into(), after.clone()),
        ],
    );
    ingest.wait_records(&data, 3, Duration::from_secs(20));
    let (status, stdout) = ingest.terminate();
    let stderr = ingest.stderr();
    assert!(status.success(), "exit {status}:\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(
        (
            s["archived"].as_u64(),
            s["quarantined"].as_u64(),
            s["rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{s}"
    );
    // Logged to a file: tracing's own levels, not `ccvault: warning:`.
    assert!(
        stderr.contains(
            "WARN ccvault_store::loss: message not archived (acknowledged, so not sent again)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("ERROR"), "{stderr}");
    let records = records_of(&data);
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!((&records[0].0, records[0].1), (&marked, false));
    assert_eq!((&records[1].0, records[1].1), (&familyless, true));
    assert!(
        records[1]
            .2
            .contains("one key whose value is not an object"),
        "{}",
        records[1].2
    );
    assert_eq!((&records[2].0, records[2].1), (&after, false));
}

/// `mqtts://` at a plain listener, the likeliest slip: the retried
/// connection says the handshake failed before any certificate and asks
/// whether the port speaks TLS.
#[test]
fn mqtts_at_a_plain_listener_says_so_while_it_retries() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    says_while_retrying(work.path(), &url, "is this port one that speaks TLS?");
}

/// `ingest` from `url` says `needle` while it retries, and stops cleanly.
fn says_while_retrying(work: &Path, url: &str, needle: &str) {
    let mut ingest = start_ingest(
        &work.join("data"),
        work,
        0,
        &["--url", url, "--client-id", "ccvault-test-wrong-url"],
        &[],
    );
    ingest.wait_for_log(needle, Duration::from_secs(20));
    let (status, _) = ingest.terminate();
    assert!(status.success(), "{}", ingest.stderr());
}

/// The other slip: `mqtt://` at a port that speaks TLS only. The broker
/// drops the connection before answering, and the retried connection
/// asks the same question.
#[test]
fn mqtt_at_a_tls_listener_says_so_while_it_retries() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let tls_port = free_port();
    let _broker = Broker::start(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    wait_listening(tls_port);
    says_while_retrying(
        work.path(),
        &format!("mqtt://127.0.0.1:{tls_port}"),
        "dropped before the broker answered: is this port one that speaks TLS?",
    );
}

#[test]
fn mqtts_verifies_the_broker_and_presents_a_client_certificate() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let tls_port = free_port();
    // A second listener speaking TLS only, requiring a client certificate
    // signed by the test CA.
    let broker = Broker::start(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    wait_listening(tls_port);
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let (ca, other_ca) = (pki.ca.to_str().unwrap(), pki.other_ca.to_str().unwrap());
    let (cert, key) = (
        pki.client_cert.to_str().unwrap(),
        pki.client_key.to_str().unwrap(),
    );
    let base = [
        "--url",
        url.as_str(),
        "--backoff-ms",
        "50",
        "--max-backoff-ms",
        "200",
    ];

    // The broker is verified by default: without --ca-file the platform's
    // roots do not know the test CA; with the wrong CA neither. Both keep
    // retrying (a certificate can be fixed on the broker) and say why.
    for (n, extra) in [
        (
            0,
            vec![
                "--client-id",
                "tls-a",
                "--client-cert",
                cert,
                "--client-key",
                key,
            ],
        ),
        (
            1,
            vec![
                "--client-id",
                "tls-b",
                "--ca-file",
                other_ca,
                "--client-cert",
                cert,
                "--client-key",
                key,
            ],
        ),
    ] {
        let data = work.path().join(format!("refused-{n}"));
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let mut ingest = start_ingest(&data, work.path(), n, &args, &[]);
        ingest.wait_for_log("UnknownIssuer", Duration::from_secs(20));
        let (status, stdout) = ingest.terminate();
        assert!(status.success(), "{}", ingest.stderr());
        let s = summary(&stdout);
        assert_eq!(s["archived"], 0, "{s}");
        let log = ingest.stderr();
        assert!(
            log.contains("not trusted: give the CA that signed it with --ca-file"),
            "{log}"
        );
        assert!(
            !log.contains("subscribed"),
            "connected to an unverified broker:\n{log}"
        );
    }

    // Without a client certificate the broker refuses the handshake.
    let data = work.path().join("no-client-cert");
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--client-id", "tls-c", "--ca-file", ca])
        .collect();
    let mut ingest = start_ingest(&data, work.path(), 2, &args, &[]);
    ingest.wait_for_log("reconnecting", Duration::from_secs(20));
    let (_, stdout) = ingest.terminate();
    assert_eq!(summary(&stdout)["archived"], 0);
    assert!(
        !ingest.stderr().contains("subscribed"),
        "{}",
        ingest.stderr()
    );

    // The right CA and a client certificate: the stream is archived.
    let data = work.path().join("data");
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--client-id",
            "tls-d",
            "--ca-file",
            ca,
            "--client-cert",
            cert,
            "--client-key",
            key,
        ])
        .collect();
    let mut ingest = start_ingest(&data, work.path(), 3, &args, &[]);
    ingest.wait_for_log("subscribed", Duration::from_secs(20));
    const N: usize = 200;
    publish_all(
        broker.port,
        (0..N)
            .map(|i| ("acme/event-v1/all".to_owned(), event(i).into_bytes()))
            .collect(),
    );
    ingest.wait_records(&data, N as u64, Duration::from_secs(30));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "{}", ingest.stderr());
    assert_eq!(summary(&stdout)["archived"], N as u64);
    let (records, _) = archived(&data);
    assert!((0..N).all(|i| records.get(event(i).as_bytes()) == Some(&1)));
}

/// The human summary of a stopped ingest is a status line, as import's:
/// on stderr, and not with `-q`; stdout is left for data.
#[test]
fn the_human_summary_goes_to_stderr_and_quiet_silences_it() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let url = broker.url();
    for quiet in [false, true] {
        let data = work.path().join(format!("data-{quiet}"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(&data);
        if quiet {
            cmd.arg("-q");
        }
        let client = format!("ccvault-test-summary-{quiet}");
        cmd.args(["ingest", "mqtt", "--url", &url, "--client-id", &client]);
        let mut ingest = Daemon::spawn(cmd, work.path().join(format!("summary-{quiet}.log")));
        ingest.wait_for_log("subscribed", Duration::from_secs(20));
        let (status, stdout) = ingest.terminate();
        assert!(status.success(), "{status:?}");
        assert_eq!(stdout, "", "quiet {quiet}");
        let said = ingest.stderr();
        assert_eq!(
            said.contains("ingest mqtt stopped: received 0"),
            !quiet,
            "quiet {quiet}: {said}"
        );
        // Every outcome a message may have is on the line, control too
        // (a Pulsar control frame looked unaccounted for: an outside audit).
        assert_eq!(
            said.contains("duplicates 0, control 0, rejected 0"),
            !quiet,
            "quiet {quiet}: {said}"
        );
    }
}

/// The client id a log line names (`client_id=...`).
fn logged_client_id(log: &str) -> String {
    let at = log
        .find("client_id=")
        .unwrap_or_else(|| panic!("no client_id in the log:\n{log}"));
    log[at + "client_id=".len()..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The default client id names the archive's persistent session, so it is
/// the same on the first run on a new archive given by a relative path (as
/// the default `./ccvault-data`) as on every later run: messages published
/// while ccvault is stopped after its first run are archived by the second.
/// (The first run once hashed the path as typed, the later ones the
/// canonical path, and the broker's session of the first run was lost.)
#[test]
fn the_default_client_id_is_the_same_from_the_first_run_on_a_relative_path() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let spawn = |n: usize| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(work.path())
            .args(["--data-dir", "data", "--format", "json", "ingest", "mqtt"])
            .args(["--url", url.as_str(), "--backoff-ms", "50"]);
        Daemon::spawn(cmd, work.path().join(format!("relative-{n}.log")))
    };
    let batch = |from: usize, to: usize| {
        (from..to)
            .map(|i| ("acme/event-v1/all".to_owned(), event(i).into_bytes()))
            .collect::<Vec<_>>()
    };
    let mut first = spawn(0);
    first.wait_for_log("subscribed", Duration::from_secs(20));
    publish_all(broker.port, batch(0, 5));
    first.wait_records(&data, 5, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = first.terminate();
    assert!(status.success(), "exit {status}:\n{}", first.stderr());

    // Published while no ccvault runs: the broker keeps them for the session.
    publish_all(broker.port, batch(5, 15));
    let mut second = spawn(1);
    second.wait_for_log("subscribed", Duration::from_secs(20));
    assert_eq!(
        logged_client_id(&first.stderr()),
        logged_client_id(&second.stderr()),
        "the second run must resume the first run's session"
    );
    second.wait_records(&data, 15, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = second.terminate();
    assert!(status.success(), "exit {status}:\n{}", second.stderr());
    let (records, _) = archived(&data);
    assert_eq!(records.len(), 15, "every event once");
}

/// `--client-cert` and `--client-key` go together: one without the other is
/// a flag combination the command refuses, a usage error (exit 2, as
/// docs/OPERATIONS.md says), named, before anything connects.
#[test]
fn a_client_certificate_without_its_key_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    for (flag, missing) in [
        ("--client-cert", "--client-key"),
        ("--client-key", "--client-cert"),
    ] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["ingest", "mqtt", "--url", "mqtts://127.0.0.1:1", flag])
            .arg(work.path().join("some.pem"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(missing), "{flag}: {err}");
    }
}

/// A `--password-file` that cannot be read is a bad option value: exit 2,
/// as an unreadable `--ca-file` is, named, before the archive is created.
#[test]
fn an_unreadable_password_file_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let missing = work.path().join("no-such-password");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "mqtt", "--url", "mqtt://127.0.0.1:1"])
        .arg("--password-file")
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read MQTT password file"), "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert!(!data.exists(), "created the archive: {err}");
}

/// A DER length.
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        _ => {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            std::iter::once(0x80 | bytes.len() as u8)
                .chain(bytes)
                .collect()
        }
    }
}

/// The DER elements directly inside `b`: (tag, whole element).
fn der_elements(mut b: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (head, len) = match b[1] {
            n if n < 0x80 => (2, usize::from(n)),
            n => {
                let k = usize::from(n & 0x7f);
                (
                    2 + k,
                    b[2..2 + k]
                        .iter()
                        .fold(0, |l, x| (l << 8) | usize::from(*x)),
                )
            }
        };
        out.push((b[0], &b[..head + len]));
        b = &b[head + len..];
    }
    out
}

/// The content of a DER element.
fn der_content(element: &[u8]) -> &[u8] {
    let head = if element[1] < 0x80 {
        2
    } else {
        2 + usize::from(element[1] & 0x7f)
    };
    &element[head..]
}

fn der_sequence(parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    [&[0x30][..], &der_len(body.len()), &body].concat()
}

/// `pem`'s certificate made X.509 v1, as `openssl x509 -req` without
/// extensions makes them: no version field, no extensions. (The signature
/// no longer matches; rustls refuses the version before it would look.)
fn as_x509_v1(pem: &str) -> String {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let cert = der_elements(der_content(&der));
    let tbs: Vec<&[u8]> = der_elements(der_content(cert[0].1))
        .into_iter()
        .filter(|(tag, _)| *tag != 0xa0 && *tag != 0xa3)
        .map(|(_, e)| e)
        .collect();
    let tbs = der_sequence(&tbs);
    let v1 = der_sequence(&[&tbs, cert[1].1, cert[2].1]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(v1);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A client certificate ccvault cannot use is named with the real cause:
/// an X.509 v1 certificate (rustls needs v3), or a file holding no
/// certificate at all (the key given as --client-cert). Both were reported
/// as "client certificate and key do not match", naming no file. A
/// reconnect warning names the broker it failed to reach.
#[test]
fn unusable_client_certificates_are_named_with_the_cause() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let v1 = work.path().join("client-v1.pem");
    std::fs::write(
        &v1,
        as_x509_v1(&std::fs::read_to_string(&pki.client_cert).unwrap()),
    )
    .unwrap();
    let key = pki.client_key.to_str().unwrap();
    for (cert, needle) in [
        (v1.as_path(), "an X.509 v1 certificate; rustls needs v3"),
        (pki.client_key.as_path(), "holds no certificate"),
    ] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(work.path().join("data"))
            .args(["ingest", "mqtt", "--url", "mqtts://127.0.0.1:1"])
            .args(["--ca-file", pki.ca.to_str().unwrap(), "--client-key", key])
            .arg("--client-cert")
            .arg(cert)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // A bad option value, said before anything is opened.
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("failed: received"), "{err}");
        assert!(err.contains(&*cert.to_string_lossy()), "{err}");
        assert!(!err.contains("do not match"), "{err}");
    }

    // Nothing listens there: the warning says where it tried.
    let port = free_port();
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut ingest = start_ingest(
        &work.path().join("data"),
        work.path(),
        0,
        &[
            "--url",
            &url,
            "--ca-file",
            pki.ca.to_str().unwrap(),
            "--client-id",
            "nowhere",
        ],
        &[],
    );
    ingest.wait_for_log("reconnecting", Duration::from_secs(20));
    let (_, stdout) = ingest.terminate();
    let log = ingest.stderr();
    assert!(
        log.contains(&format!("cannot connect to MQTT at {url}")),
        "{log}"
    );
    // `reconnects` counts attempts, failed connects included (INGEST.md).
    let s = summary(&stdout);
    assert!(s["reconnects"].as_u64() >= Some(1), "{s}");
}

/// When the broker has no session for the client id although the archive
/// was being fed from MQTT (here: the client id changed), whatever it kept
/// for the old session is not delivered; ccvault says so with a warning
/// naming the broker, and not on the first run of a new archive.
#[test]
fn a_lost_session_of_an_archive_fed_from_mqtt_is_warned_about() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    const WARNING: &str = "holds no session for this client id";
    let mut first = start_ingest(
        &data,
        work.path(),
        0,
        &["--url", &url, "--client-id", "ccvault-a"],
        &[],
    );
    first.wait_for_log("subscribed", Duration::from_secs(20));
    publish_all(
        broker.port,
        vec![("acme/event-v1/all".to_owned(), event(0).into_bytes())],
    );
    first.wait_records(&data, 1, Duration::from_secs(20));
    let (status, _) = first.terminate();
    assert!(status.success(), "{}", first.stderr());
    assert!(!first.stderr().contains(WARNING), "{}", first.stderr());

    let mut second = start_ingest(
        &data,
        work.path(),
        1,
        &["--url", &url, "--client-id", "ccvault-b"],
        &[],
    );
    second.wait_for_log("subscribed", Duration::from_secs(20));
    let (status, _) = second.terminate();
    assert!(status.success(), "{}", second.stderr());
    let log = second.stderr();
    assert!(log.contains(WARNING) && log.contains(&url), "{log}");
}

/// An ingest whose archive cannot grow (a file size limit, as a full disk
/// would: every write past it fails) stops with exit 1, and its last error
/// names the archive's failure, not only "the archive thread stopped".
#[test]
fn an_ingest_whose_archive_cannot_grow_says_why_it_stopped() {
    let broker = Broker::start("allow_anonymous true");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let url = broker.url();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -f 4096 && exec "$0" "$@""#)
        .arg(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "ingest",
            "mqtt",
            "--url",
            &url,
            "--client-id",
            "ccvault-test-full",
        ]);
    let mut ingest = Daemon::spawn(cmd, work.path().join("full.log"));
    ingest.wait_for_log("subscribed", Duration::from_secs(20));
    let port = broker.port;
    // Past 4096 blocks (2 or 4 MiB as the shell counts them) of log.
    publish_all(
        port,
        (0..20_000)
            .map(|i| ("acme/event-v1/all".to_owned(), event(i).into_bytes()))
            .collect(),
    );
    let (status, _) = ingest.wait_exit(Duration::from_secs(60));
    let said = ingest.stderr();
    assert_eq!(status.code(), Some(1), "{said}");
    let last = said
        .lines()
        .rfind(|l| l.starts_with("ccvault: error"))
        .unwrap_or_else(|| panic!("no error line:\n{said}"));
    assert!(last.contains("File too large"), "{last}");
}
