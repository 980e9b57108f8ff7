//! End-to-end tests of the metrics v2 report and listing flags with the
//! built binary (docs/METRICS.md §3–4): `--by` combinations, `--sla` per
//! channel, the v2 report columns in JSON and CSV, and the `interactions`
//! filters `--channel`, `--kind` and `--contact`.

mod common;

use std::path::Path;

use serde_json::Value;

const T0: i64 = 1_763_900_000;
const A: &str = "int-a-phone-00-acme01";
const B: &str = "int-b-phone-00-acme01";
const CHAT: &str = "int-c-chat-00-acme01";
const OUT: &str = "int-o-phone-00-acme01";

fn ev(guid: &str, event: &str, secs: i64, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"Interaction":{{"event":"{event}","interactionGUID":"{guid}","interactionEventTS":{}{sep}{extra}}}}}"#,
        T0 + secs
    )
}

/// A phone contact transferred from queue 7 (leg A) to queue 8 (leg B,
/// linked through attachedData), a chat that only carries `resourceType`,
/// and a queued outbound campaign call.
fn stream() -> String {
    let parent = format!(
        r#""attachedData":{{"attachedDatum":[{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{A}"}}]}}"#
    );
    let lines = [
        ev(A, "InteractionCreated", 0, r#""mediaType":"phone""#),
        ev(A, "InteractionQueued", 1, r#""queueId":7"#),
        ev(A, "InteractionAssigned", 5, r#""agentId":"a1""#),
        ev(A, "InteractionAccepted", 6, r#""agentId":"a1""#),
        ev(A, "InteractionTransferRequest", 60, ""),
        ev(A, "InteractionDeleted", 61, ""),
        ev(B, "InteractionCreated", 60, &parent),
        ev(
            B,
            "InteractionQueued",
            61,
            r#""queueId":8,"mediaType":"Phone""#,
        ),
        ev(B, "InteractionAssigned", 90, r#""agentId":"a2""#),
        ev(B, "InteractionAccepted", 91, r#""agentId":"a2""#),
        ev(B, "InteractionDeleted", 200, ""),
        ev(CHAT, "InteractionCreated", 10, r#""resourceType":2"#),
        ev(
            CHAT,
            "InteractionQueued",
            10,
            r#""queueId":7,"resourceType":2"#,
        ),
        ev(CHAT, "InteractionAssigned", 45, r#""agentId":"a3""#),
        ev(CHAT, "InteractionAccepted", 50, r#""agentId":"a3""#),
        ev(CHAT, "InteractionDeleted", 100, ""),
        ev(
            OUT,
            "InteractionCreated",
            20,
            r#""direction":"out","mediaType":"phone""#,
        ),
        ev(OUT, "InteractionQueued", 20, r#""queueId":7"#),
        ev(OUT, "InteractionAssigned", 24, r#""agentId":"a1""#),
        ev(OUT, "InteractionAccepted", 25, r#""agentId":"a1""#),
        ev(OUT, "InteractionCustomerAccepted", 30, ""),
        ev(OUT, "InteractionDeleted", 90, ""),
    ];
    lines.join("\n") + "\n"
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::ccvault(dir, args);
    assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    (
        out.code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.stderr,
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(dir, args);
    assert_eq!(code, 0, "ccvault {args:?} failed:\n{stderr}");
    stdout
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v2.ndjson");
    std::fs::write(&file, stream()).unwrap();
    ok(dir.path(), &["import", file.to_str().unwrap()]);
    dir
}

fn guids(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["interactionGUID"].as_str().unwrap_or(""))
        .collect()
}

#[test]
fn report_by_queue_and_channel_with_a_per_channel_sla() {
    let dir = archive();
    let out = ok(
        dir.path(),
        &[
            "report",
            "--format",
            "json",
            "--by",
            "queue,channel",
            "--sla",
            "phone=20s,chat=45s",
        ],
    );
    let rows = json_lines(&out);
    let groups: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["queueId"].as_i64().unwrap(),
                r["mediaType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups, [(7, "chat"), (7, "phone"), (8, "phone")]);
    // The chat waited 40 s: in SLA at 45 s.
    assert_eq!(rows[0]["offered"], 1);
    assert_eq!(rows[0]["answeredInSla"], 1);
    // Queue 7 phone: leg A (waited 5 s) offered; the queued outbound call is
    // counted apart and stays out of service level and ASA.
    assert_eq!(rows[1]["offered"], 1);
    assert_eq!(rows[1]["outbound"], 1);
    assert_eq!(rows[1]["outboundConnected"], 1);
    assert_eq!(rows[1]["asaMs"], 5000);
    assert_eq!(rows[1]["serviceLevel"], 1.0);
    assert_eq!(rows[1]["contacts"], 1);
    // Queue 8: the transferred leg queues again and is offered there.
    assert_eq!(rows[2]["offered"], 1);
    assert_eq!(rows[2]["transferredIn"], 1);
    assert_eq!(rows[2]["answeredInSla"], 0); // 30 s > 20 s
                                             // A contact is counted once, at its leg 0: B is leg 1 of A's contact,
                                             // so queue 8 offers a leg but no new contact.
    let b = json_lines(&ok(
        dir.path(),
        &["interactions", "--format", "json", "--queue", "8"],
    ));
    assert_eq!(
        (&b[0]["contactId"], &b[0]["legIndex"]),
        (&A.into(), &1.into())
    );
    assert_eq!(rows[2]["contacts"], 0);

    let csv = ok(
        dir.path(),
        &["report", "--format", "csv", "--by", "channel,queue"],
    );
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with(
            "intervalStart,intervalEnd,queueId,mediaType,offered,contacts,transferredIn,"
        ),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 4);

    let text = ok(
        dir.path(),
        &["report", "--by", "queue,agent,channel", "--sla", "*=1m"],
    );
    assert!(
        text.contains("SLA *=1m") || text.contains("SLA 1m"),
        "{text}"
    );
    assert!(text.contains("CHANNEL"), "{text}");
    // A day's threshold as ISO 8601 writes it, as docs/METRICS.md §4 says
    // every duration reads (refused by `--sla` alone until 2026-12-07).
    let text = ok(dir.path(), &["report", "--sla", "email=P1D,*=20s"]);
    assert!(text.contains("SLA email=24h,*=20s"), "{text}");
}

#[test]
fn bad_grouping_and_sla_are_usage_errors() {
    let dir = archive();
    for (args, needle) in [
        (
            vec!["report", "--by", "queue,tenant"],
            "queue, agent, channel",
        ),
        (vec!["report", "--sla", "phone=soon"], "invalid SLA"),
        (
            vec!["interactions", "--kind", "transfer"],
            "inbound, outbound, consult",
        ),
    ] {
        let (code, _, stderr) = run(dir.path(), &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn interactions_filter_by_channel_kind_and_contact() {
    let dir = archive();
    let list = |extra: &[&str]| {
        let mut args = vec!["interactions", "--format", "json"];
        args.extend_from_slice(extra);
        json_lines(&ok(dir.path(), &args))
    };
    let chat = list(&["--channel", "CHAT"]);
    assert_eq!(guids(&chat), [CHAT]);
    assert_eq!(chat[0]["mediaType"], "chat"); // from resourceType 2
    assert_eq!(guids(&list(&["--kind", "outbound"])), [OUT]);
    let inbound = list(&["--kind", "inbound"]);
    assert_eq!(guids(&inbound), [A, CHAT, B]);
    assert_eq!(inbound[2]["parentGuid"], A);
    // Every leg listed for a contact carries that contactId; the first leg
    // is its own contact.
    let contact = list(&["--contact", A]);
    assert!(guids(&contact).contains(&A));
    assert!(contact.iter().all(|r| r["contactId"] == A));
    assert!(!guids(&contact).contains(&CHAT));
}
