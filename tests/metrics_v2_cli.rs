//! End-to-end tests of the metric rules of docs/METRICS.md that need the
//! whole path (import, index, projections, CLI): event-time sources and
//! transport control messages. Each test builds its stream by hand.

mod common;

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{ccvault, ccvault_stdin, docs_fixture, import};
use serde_json::Value;

fn one_json(dir: &Path, args: &[&str]) -> Value {
    let run = ccvault(dir, args).ok();
    let mut lines = run.json_lines();
    assert_eq!(lines.len(), 1, "ccvault {args:?}: one JSON line expected");
    lines.remove(0)
}

fn import_stdin(dir: &Path, stream: &str) -> Value {
    let run = ccvault_stdin(dir, &["import", "-", "--format", "json"], stream.as_bytes()).ok();
    run.json_lines().remove(0)
}

const END_OF_TOPIC: &str = r#"{"type":"isEndOfTopic","endOfTopic":true}"#;
const CLIENT_CHECK: &str = r#"{"ClientCheck":{"timestamp":1763900000000}}"#;
const STATUS: &str = r#"{"AgentStatusChange":{"agentId":"ag1","newState":5,"statusEventTS":1763900000,"msgInfo":{"sequenceId":1}}}"#;

#[test]
fn control_messages_are_counted_never_archived_and_the_count_survives_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let stream = format!("{END_OF_TOPIC}\n{STATUS}\n{CLIENT_CHECK}\n{END_OF_TOPIC}\n");
    let imported = import_stdin(dir.path(), &stream);
    assert_eq!(imported["lines"], 4);
    assert_eq!(imported["archived"], 1);
    assert_eq!(imported["quarantined"], 0);
    assert_eq!(imported["control"], 3);
    // Control messages are neither events nor duplicates of each other.
    assert_eq!(imported["duplicates"], 0);

    let stats = one_json(dir.path(), &["stats", "--format", "json"]);
    assert_eq!(stats["records"], 1);
    assert_eq!(stats["quarantined"], 0);
    assert_eq!(stats["control"], 3);
    let quarantined = ccvault(dir.path(), &["quarantine", "--format", "json"]).ok();
    assert!(quarantined.json_lines().is_empty());

    // Like duplicates, the count lives only in the index: a reindex from
    // the log must carry it over.
    ccvault(dir.path(), &["reindex"]).ok();
    let stats = one_json(dir.path(), &["stats", "--format", "json"]);
    assert_eq!(stats["control"], 3);
    assert_eq!(stats["records"], 1);
}

#[test]
fn show_names_each_event_time_source() {
    let dir = tempfile::tempdir().unwrap();
    let guid = "int-ts-1-phone-00-acme01";
    // Queued with its own time; an assignment that carries only eventTS (the
    // queue-entry time) inside an envelope published 40 s later; a deletion
    // with nothing but eventTS, imported from a file.
    let queued = format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","interactionEventTS":1763900000,"eventTS":1763900000}}}}"#
    );
    let assigned = format!(
        r#"{{"Interaction":{{"event":"InteractionAssigned","interactionGUID":"{guid}","agentId":"ag1","eventTS":1763900000,"msgInfo":{{}}}}}}"#
    );
    let deleted = format!(
        r#"{{"Interaction":{{"event":"InteractionDeleted","interactionGUID":"{guid}","eventTS":1763900000}}}}"#
    );
    let envelope = format!(
        r#"{{"messageId":"CAEQAQ==","payload":"{}","publishTime":"2025-11-23T12:14:00.000Z"}}"#,
        STANDARD.encode(assigned.as_bytes())
    );
    import_stdin(dir.path(), &format!("{queued}\n{envelope}\n{deleted}\n"));
    let shown = one_json(dir.path(), &["show", guid, "--format", "json"]);
    let events = shown["events"].as_array().unwrap();
    let by_type = |t: &str| {
        events
            .iter()
            .find(|e| e["eventType"] == t)
            .unwrap_or_else(|| panic!("no {t} in {shown}"))
    };
    let q = by_type("InteractionQueued");
    assert_eq!(
        (q["t"].as_i64(), q["timeSource"].as_str()),
        (Some(1_763_900_000_000), Some("interactionEventTS"))
    );
    let a = by_type("InteractionAssigned");
    assert_eq!(
        (a["t"].as_i64(), a["timeSource"].as_str()),
        (Some(1_763_900_040_000), Some("publishTime"))
    );
    let d = by_type("InteractionDeleted");
    assert_eq!(
        (d["t"].as_i64(), d["timeSource"].as_str()),
        (Some(1_763_900_000_000), Some("eventTS"))
    );
    // The assignment rings 40 s after queueing, not 0 s.
    assert_eq!(shown["summary"]["queuedAt"], 1_763_900_000_000i64);
}

/// A time written with a fraction is the payload's own time, read to the
/// millisecond: until 2026-12-07 it read as no time, so the queued event
/// took its import time (today) and the leg's wait and queue time were
/// negative (an outside audit).
#[test]
fn a_time_with_a_fraction_is_the_events_own_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let guid = "int-frac-1-phone-00-acme01";
    let ev = |event: &str, time: &str| {
        format!(
            r#"{{"Interaction":{{"event":"{event}","interactionGUID":"{guid}","direction":"in","queueId":311,"agentId":"A",{time}}}}}"#
        )
    };
    let stream = [
        ev("InteractionCreated", r#""interactionEventTS":1763900000.0"#),
        ev("InteractionQueued", r#""interactionEventTS":1763900003.5"#),
        ev(
            "InteractionAssigned",
            r#""interactionEventTS":1.763900005e9"#,
        ),
        ev(
            "InteractionAccepted",
            r#""msgInfo":{"timestamp":1763900007000.25}"#,
        ),
        ev("InteractionDeleted", r#""interactionEventTS":1763900020"#),
    ]
    .join("\n");
    import_stdin(dir.path(), &format!("{stream}\n"));
    let shown = one_json(dir.path(), &["show", guid, "--format", "json"]);
    let times: Vec<(i64, &str)> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["t"].as_i64().unwrap(), e["timeSource"].as_str().unwrap()))
        .collect();
    assert_eq!(
        times,
        [
            (1_763_900_000_000, "interactionEventTS"),
            (1_763_900_003_500, "interactionEventTS"),
            (1_763_900_005_000, "interactionEventTS"),
            (1_763_900_007_000, "msgInfo.timestamp"),
            (1_763_900_020_000, "interactionEventTS"),
        ]
    );
    let s = &shown["summary"];
    assert_eq!(s["queuedAt"], 1_763_900_003_500i64);
    assert_eq!(s["queueMs"], 1_500);
    assert_eq!(s["waitMs"], 3_500);
    let report = one_json(dir.path(), &["report", "--format", "json"]);
    // 2025-11-23T12:00Z, not today.
    assert_eq!(report["intervalStart"], 1_763_899_200_000i64, "{report}");
    assert_eq!(report["answeredInSla"], 1, "{report}");
}

#[test]
fn agent_time_without_to_ends_at_the_last_timed_event() {
    let dir = tempfile::tempdir().unwrap();
    // The 8x8 documentation's AgentProvChange example has `msgInfo: {}` and
    // no other time: imported, it takes the import time (today), which must
    // not keep the agent in its last state until today.
    let prov = r#"{"AgentProvChange":{"agentId":"agUeZBQ3RnQTaL0qZZukNOaw","enabled":"yes","event":"AgentSkillChanged","msgInfo":{},"skillId":"tenant01-agUeZBQ3RnQTaL0qZZukNOaw-phone-529-f01e6bdb-75a2-4639-825c-91c0f5168258","tenantSkillId":"tenant01-phone-529-b1e3e2f2-b01a-4a03-ba3d-f30859414d97"}}"#;
    let later = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-x-phone-00-acme01","interactionEventTS":1763900090}}"#;
    import_stdin(dir.path(), &format!("{STATUS}\n{prov}\n{later}\n"));
    let ag1 = agent_line(dir.path(), "ag1");
    assert_eq!(ag1["stateMs"]["5"], 90_000, "{ag1}");
}

/// docs/METRICS.md §2: weak times (`eventTS`, the import time) never
/// stretch the time range `stats` shows; they are counted apart as
/// `untimed`. On the 8x8 documentation's event-reference page, the
/// AgentProvChange (`msgInfo: {}`, imported: today) and the
/// InteractionAssigned (only `eventTS`) are weak; the other seven are timed.
#[test]
fn stats_time_range_comes_from_timed_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let reference = docs_fixture("event-reference.ndjson");
    let before_import = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    import(dir.path(), &[&reference], &[]);
    let stats = one_json(dir.path(), &["stats", "--format", "json"]);
    // AgentStatusChange's statusEventTS .. LineHoldStatus' interactionEventTS.
    assert_eq!(stats["minTime"], 1_669_235_544_000i64, "{stats}");
    assert_eq!(stats["maxTime"], 1_744_819_224_000i64, "{stats}");
    assert_eq!(stats["untimed"], 2, "{stats}");
    // The assignment's eventTS .. the import time.
    assert_eq!(stats["untimedMinTime"], 1_744_819_092_000i64, "{stats}");
    let untimed_max = stats["untimedMaxTime"].as_i64().unwrap();
    assert!(untimed_max >= before_import, "{stats}");

    let text = ccvault(dir.path(), &["stats"]).ok().stdout_str();
    assert!(
        text.contains("time range    2022-11-23T20:32:24.000Z .. 2025-04-16T16:00:24.000Z"),
        "{text}"
    );
    assert!(text.contains("untimed       2 records"), "{text}");

    // A reindex from the log gives the same split.
    ccvault(dir.path(), &["reindex"]).ok();
    let again = one_json(dir.path(), &["stats", "--format", "json"]);
    for key in [
        "minTime",
        "maxTime",
        "untimed",
        "untimedMinTime",
        "untimedMaxTime",
    ] {
        assert_eq!(again[key], stats[key], "{key} after reindex: {again}");
    }
}

/// A payload time past the year 9999 (here microseconds in a field of
/// seconds, from another tenant) is no time: the event takes the next rule
/// (its `msgInfo.timestamp`), so the time range `stats` shows and every
/// agent's state time are those of the archive without it. Until
/// 2026-12-06 it stretched each agent's last span to the year ~55,900
/// million and the range to "1763967600000000000ms".
#[test]
fn a_time_past_the_year_9999_stretches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = docs_fixture("event-reference.ndjson");
    let odd = tmp.path().join("odd.ndjson");
    std::fs::write(
        &odd,
        concat!(
            r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-us-phone-00-other01","#,
            r#""interactionEventTS":1744819224000000,"queueId":311,"msgInfo":{"timestamp":1744819000000}}}"#,
            "\n"
        ),
    )
    .unwrap();
    let plain = tmp.path().join("plain");
    let with_odd = tmp.path().join("with-odd");
    import(&plain, &[&reference], &[]);
    import(&with_odd, &[&reference, &odd], &[]);
    let (a, b) = (
        one_json(&plain, &["stats", "--format", "json"]),
        one_json(&with_odd, &["stats", "--format", "json"]),
    );
    assert_eq!(
        (a["minTime"].clone(), a["maxTime"].clone()),
        (b["minTime"].clone(), b["maxTime"].clone()),
        "{b}"
    );
    let agents = |dir: &Path| ccvault(dir, &["agents", "--format", "json"]).ok().stdout;
    assert_eq!(agents(&with_odd), agents(&plain));
    let shown = ccvault(
        &with_odd,
        &["show", "int-us-phone-00-other01", "--format", "json"],
    )
    .ok();
    assert!(
        shown.stdout_str().contains("msgInfo.timestamp"),
        "{}",
        shown.stdout_str()
    );
}

/// The last 999 ms of the time range the archive accepts print as
/// ISO-8601 like every other instant: until 2026-12-07 `show`,
/// `interactions` and `stats` printed them as raw milliseconds (jiff's
/// `from_millisecond` stops at a whole second; outside audit).
#[test]
fn the_last_instant_accepted_prints_as_a_date() {
    let dir = tempfile::tempdir().unwrap();
    let guid = "int-last-phone-00-acme01";
    let queued = format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","queueId":311,"msgInfo":{{"timestamp":253402207200999}}}}}}"#
    );
    import_stdin(dir.path(), &format!("{queued}\n"));
    for args in [&["show", guid][..], &["interactions"], &["stats"]] {
        let out = ccvault(dir.path(), args).ok().stdout_str().to_owned();
        assert!(
            out.contains("9999-12-30T22:00:00.999Z") && !out.contains("200999ms"),
            "{args:?}: {out}"
        );
    }
}

/// An archive of both pages of 8x8 examples (`tests/fixtures/8x8-docs`).
fn docs_archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let reference = docs_fixture("event-reference.ndjson");
    let format = docs_fixture("message-format.ndjson");
    import(dir.path(), &[&reference, &format], &[]);
    dir
}

/// docs/METRICS.md §3 on every interaction of the 8x8 examples: the
/// channel (`mediaType`, else `resourceType`), the parent link, the contact,
/// the kind and the reject reasons.
#[test]
fn legs_of_the_8x8_examples() {
    let dir = docs_archive();
    let rows = ccvault(dir.path(), &["interactions", "--format", "json"])
        .ok()
        .json_lines();
    let got: std::collections::BTreeMap<String, Value> = rows
        .into_iter()
        .map(|r| {
            let guid = r["interactionGUID"].as_str().unwrap().to_owned();
            let facts = serde_json::json!([
                r["mediaType"],
                r["kind"],
                r["outcome"],
                r["rejectTimeouts"],
                r["rejectRefusals"],
                r["parentGuid"],
                r["legIndex"],
                r["contactId"] == r["interactionGUID"]
            ]);
            (guid, facts)
        })
        .collect();
    let leg = |media: Value, kind: &str, outcome: &str, refusals: u64| {
        serde_json::json!([media, kind, outcome, 0, refusals, null, 0, true])
    };
    let want: std::collections::BTreeMap<String, Value> = [
        // Created twice (resourceType 0), queued with mediaType phone, then
        // deleted: the caller left the queue after 164 s.
        (
            "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01",
            leg("phone".into(), "inbound", "abandoned", 0),
        ),
        // Deleted with isQueued false and rejectReason 0: no queue, no reject.
        (
            "int-184a645e074-zGIsMxOkCYzQ8yg68e3t61i7A-phone-00-acmecorp01",
            leg("phone".into(), "unqueued", "ended", 0),
        ),
        // RecordingStatus: neither mediaType nor resourceType.
        (
            "int-1963f4d8314-ShlIYL3nayugzbFYJvHhZgPL2-phone-03-tenant01",
            leg(Value::Null, "unqueued", "open", 0),
        ),
        // The queued outbound campaign call's assignment.
        (
            "int-1963f527a2a-9wjz0hrkcolMxIqiOhxEsKFe9-phone-01-tenant01",
            leg("phone".into(), "outbound", "open", 0),
        ),
        (
            "int-1963f52d470-OcB3AbajqjTb9ikyLLBxBr1l7-phone-02-tenant01",
            leg("phone".into(), "unqueued", "open", 0),
        ),
        // Rejected with rejectReason 2 (the agent rejected), resourceType 0.
        (
            "int-1963f53a7f9-fRUlBL19w0hsi4GN50Xbcgazp-phone-03-tenant01",
            leg("phone".into(), "unqueued", "open", 1),
        ),
        (
            "int-1963f541b9f-wgyWcn0J0hwtyhN4XfMHIfCIO-phone-01-tenant01",
            leg("phone".into(), "inbound", "open", 0),
        ),
    ]
    .into_iter()
    .map(|(g, v)| (g.to_owned(), v))
    .collect();
    assert_eq!(got, want);
}

/// docs/METRICS.md §4 on the 8x8 examples, one row a day: service metrics
/// over the two inbound legs only; the outbound campaign call and the legs
/// that never queued have their own columns.
#[test]
fn report_of_the_8x8_examples_counts_inbound_legs_only() {
    let dir = docs_archive();
    let rows = ccvault(
        dir.path(),
        &["report", "--interval", "1d", "--format", "json"],
    )
    .ok()
    .json_lines();
    let pick = |r: &Value| {
        let keys = [
            "offered",
            "contacts",
            "transferredIn",
            "answered",
            "abandoned",
            "serviceLevel",
            "abandonRate",
            "asaMs",
            "maxWaitMs",
            "unqueued",
            "consults",
            "outbound",
            "outboundConnected",
            "handled",
            "rejects",
        ];
        keys.map(|k| r[k].clone())
    };
    let got: Vec<(Value, [Value; 15])> = rows
        .iter()
        .map(|r| (r["intervalStart"].clone(), pick(r)))
        .collect();
    let day = |d: &str| serde_json::json!(d.parse::<jiff::Timestamp>().unwrap().as_millisecond());
    let row = |v: Value| pick(&v);
    assert_eq!(
        got,
        [
            (
                day("2022-11-23T00:00:00Z"),
                row(serde_json::json!({
                    "offered": 1, "contacts": 2, "transferredIn": 0, "answered": 0,
                    "abandoned": 1, "serviceLevel": 0.0, "abandonRate": 1.0,
                    "asaMs": null, "maxWaitMs": 164_000, "unqueued": 1, "consults": 0,
                    "outbound": 0, "outboundConnected": 0, "handled": 0, "rejects": 0
                }))
            ),
            (
                day("2025-04-16T00:00:00Z"),
                row(serde_json::json!({
                    "offered": 1, "contacts": 4, "transferredIn": 0, "answered": 0,
                    "abandoned": 0, "serviceLevel": null, "abandonRate": 0.0,
                    "asaMs": null, "maxWaitMs": null, "unqueued": 3, "consults": 0,
                    "outbound": 1, "outboundConnected": 0, "handled": 0, "rejects": 1
                }))
            ),
        ]
    );

    // Grouped by queue and channel: a leg without queueId or channel is in
    // the null group of that grouping, which sorts first.
    let groups: Vec<(Value, Value, Value)> = ccvault(
        dir.path(),
        &[
            "report",
            "--interval",
            "1d",
            "--by",
            "queue,channel",
            "--format",
            "json",
        ],
    )
    .ok()
    .json_lines()
    .into_iter()
    .map(|r| {
        (
            r["queueId"].clone(),
            r["mediaType"].clone(),
            r["offered"].clone(),
        )
    })
    .collect();
    let g = |q: Value, m: Value, offered: u64| (q, m, offered.into());
    assert_eq!(
        groups,
        [
            g(Value::Null, "phone".into(), 0),
            g(591.into(), "phone".into(), 1),
            g(Value::Null, Value::Null, 0),
            g(Value::Null, "phone".into(), 0),
            g(1092.into(), "phone".into(), 0),
            g(1162.into(), "phone".into(), 1),
        ]
    );
}

/// docs/METRICS.md §5 on the 8x8 examples: the agent's status change
/// (statusEventTS, the same on both pages, two distinct events) runs to
/// the last timed event of the archive (the LineHoldStatus), not to the
/// AgentProvChange's import time nor the assignment's `eventTS`.
#[test]
fn agent_state_of_the_8x8_examples_runs_to_the_last_timed_event() {
    let dir = docs_archive();
    let agents = ccvault(dir.path(), &["agents", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(
        agents,
        [serde_json::json!({
            "agentId": "ag64oyEUb_Sk6bxVB9P5yaaa",
            "stateMs": {"5": 1_744_819_224_000i64 - 1_669_235_544_000},
            "changes": 2,
            "untimed": 0
        })]
    );
}

/// docs/METRICS.md §5: a status change that carries no time of its own
/// (`msgInfo: {}`, no `statusEventTS`) is imported with a weak time, so it
/// sets no state and is counted as `untimed`, through the materialized
/// projections of the built binary.
#[test]
fn an_untimed_status_change_sets_no_state_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let untimed = r#"{"AgentStatusChange":{"agentId":"ag1","msgInfo":{},"newState":0}}"#;
    let later = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-x-phone-00-acme01","interactionEventTS":1763900090}}"#;
    import_stdin(dir.path(), &format!("{STATUS}\n{untimed}\n{later}\n"));
    let ag1 = agent_line(dir.path(), "ag1");
    // Without the rule, state 0 would start at the import time (today) and
    // state 5 would not end at the last timed event.
    assert_eq!(ag1["stateMs"], serde_json::json!({"5": 90_000}), "{ag1}");
    assert_eq!(
        (ag1["changes"].as_u64(), ag1["untimed"].as_u64()),
        (Some(1), Some(1)),
        "{ag1}"
    );
}

/// docs/METRICS.md §3: a leg's contact is found through the archive, so a
/// parent archived after its child moves the child into the parent's
/// contact, whether the projections caught up (each import) or were rebuilt.
/// Chain a -> b -> c, imported c first, then b; a never arrives.
#[test]
fn a_late_parent_moves_its_child_into_the_parents_contact() {
    let dir = tempfile::tempdir().unwrap();
    let leg = |guid: &str, parent: &str, ts: i64| {
        format!(
            r#"{{"Interaction":{{"attachedData":{{"attachedDatum":[{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{parent}"}}]}},"event":"InteractionQueued","interactionGUID":"{guid}","interactionEventTS":{ts},"queueId":311,"direction":"in"}}}}"#
        )
    };
    let place = |dir: &Path| -> Vec<(String, String, u64)> {
        ccvault(dir, &["interactions", "--format", "json"])
            .ok()
            .json_lines()
            .iter()
            .map(|s| {
                (
                    s["interactionGUID"].as_str().unwrap_or_default().to_owned(),
                    s["contactId"].as_str().unwrap_or_default().to_owned(),
                    s["legIndex"].as_u64().unwrap_or(99),
                )
            })
            .collect()
    };
    let own = |g: &str, c: &str, i: u64| (g.to_owned(), c.to_owned(), i);
    import_stdin(
        dir.path(),
        &format!(
            "{}\n",
            leg("int-c-phone-02-acme01", "int-b-phone-01-acme01", 1763900200)
        ),
    );
    // b is not archived: the walk stops at it, index 1.
    assert_eq!(
        place(dir.path()),
        [own("int-c-phone-02-acme01", "int-b-phone-01-acme01", 1)]
    );
    import_stdin(
        dir.path(),
        &format!(
            "{}\n",
            leg("int-b-phone-01-acme01", "int-a-phone-00-acme01", 1763900100)
        ),
    );
    let expected = [
        own("int-b-phone-01-acme01", "int-a-phone-00-acme01", 1),
        own("int-c-phone-02-acme01", "int-a-phone-00-acme01", 2),
    ];
    assert_eq!(place(dir.path()), expected);
    ccvault(dir.path(), &["rebuild"]).ok();
    assert_eq!(place(dir.path()), expected);
    // `--contact` lists every leg of the contact.
    let legs = ccvault(
        dir.path(),
        &[
            "interactions",
            "--format",
            "json",
            "--contact",
            "int-a-phone-00-acme01",
        ],
    )
    .ok()
    .json_lines();
    assert_eq!(legs.len(), 2);
}

/// `agent`'s line of `ccvault agents --format json`.
fn agent_line(dir: &Path, agent: &str) -> Value {
    ccvault(dir, &["agents", "--format", "json"])
        .ok()
        .json_lines()
        .into_iter()
        .find(|a| a["agentId"] == agent)
        .unwrap_or_else(|| panic!("{agent} listed"))
}

/// A Pulsar WebSocket envelope of `payload`, published at `publish_time`.
fn envelope(payload: &str, publish_time: &str) -> String {
    format!(
        r#"{{"messageId":"m","payload":"{}","properties":{{}},"publishTime":"{publish_time}"}}"#,
        STANDARD.encode(payload)
    )
}

/// docs/METRICS.md §2: where several records hold one event, the publish,
/// receipt and import times are the smallest among them, so t(e) is a
/// function of the set of messages whatever order they arrive in, in one
/// import or several. A copy is stored only when its record gives the
/// event an earlier-ranked time; importing the same messages again stores
/// nothing.
#[test]
fn copies_of_a_time_less_event_give_it_the_best_time_among_them_in_any_order() {
    let guid = "int-copies-phone-00-acme01";
    let queued = format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"{guid}","queueId":1,"msgInfo":{{}}}}}}"#
    );
    let deleted = format!(
        r#"{{"Interaction":{{"event":"InteractionDeleted","interactionGUID":"{guid}","interactionEventTS":1763900045}}}}"#
    );
    let early = envelope(&queued, "2025-11-23T12:13:40.000Z");
    let late = envelope(&queued, "2025-11-23T12:13:50.000Z");
    // Each case: the imports in turn, and (archived, duplicates) of each.
    type Import<'a> = (&'a [&'a str], (u64, u64));
    let cases: [&[Import]; 5] = [
        &[(&[&late, &early, &deleted], (3, 0))],
        &[(&[&early, &late, &deleted], (2, 1))],
        &[(&[&early, &deleted], (2, 0)), (&[&late], (0, 1))],
        &[(&[&late, &deleted], (2, 0)), (&[&early], (1, 0))],
        // The bare event (its eventTS-less body takes the import time).
        &[(&[&queued, &deleted], (2, 0)), (&[&late, &early], (2, 0))],
    ];
    let mut summaries = Vec::new();
    for imports in cases {
        let dir = tempfile::tempdir().unwrap();
        for (lines, (archived, duplicates)) in imports {
            let got = import_stdin(dir.path(), &format!("{}\n", lines.join("\n")));
            assert_eq!(
                (&got["archived"], &got["duplicates"]),
                (&(*archived).into(), &(*duplicates).into()),
                "importing {lines:?}"
            );
        }
        let summary = one_json(dir.path(), &["interactions", "--format", "json"]);
        assert_eq!(summary["queuedAt"], 1_763_900_020_000i64, "{summary}");
        assert_eq!(summary["abandonMs"], 25_000, "{summary}");
        assert_eq!(summary["eventCount"], 2, "{summary}");
        // Everything again: every message is now a duplicate.
        let before = one_json(dir.path(), &["stats", "--format", "json"])["records"].clone();
        let all: Vec<&str> = imports
            .iter()
            .flat_map(|(lines, _)| lines.iter().copied())
            .collect();
        let again = import_stdin(dir.path(), &format!("{}\n", all.join("\n")));
        assert_eq!(again["archived"], 0, "{again}");
        assert_eq!(again["duplicates"], all.len(), "{again}");
        let after = one_json(dir.path(), &["stats", "--format", "json"])["records"].clone();
        assert_eq!(before, after);
        summaries.push(summary);
    }
    assert!(summaries.windows(2).all(|w| w[0] == w[1]), "{summaries:#?}");
}

/// The same rule for agent state time: a time-less status change imported
/// first (weak: counted as `untimed`) and then in an envelope is one timed
/// change.
#[test]
fn a_status_change_imported_then_published_is_one_timed_change() {
    let change = r#"{"AgentStatusChange":{"agentId":"ag1","newState":1,"msgInfo":{}}}"#;
    let later = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-y-phone-00-acme01","interactionEventTS":1763900090}}"#;
    let published = envelope(change, "2025-11-23T12:14:00.000Z");
    for order in [[change, published.as_str()], [published.as_str(), change]] {
        let dir = tempfile::tempdir().unwrap();
        import_stdin(dir.path(), &format!("{STATUS}\n{later}\n{}\n", order[0]));
        import_stdin(dir.path(), &format!("{}\n", order[1]));
        let ag1 = agent_line(dir.path(), "ag1");
        assert_eq!(ag1["stateMs"]["5"], 40_000, "{ag1}");
        assert_eq!(ag1["stateMs"]["1"], 50_000, "{ag1}");
        assert_eq!(
            (&ag1["changes"], &ag1["untimed"]),
            (&2.into(), &0.into()),
            "{ag1}"
        );
    }
}

/// A quarantined Pulsar message names the broker's message: `quarantine`
/// prints the envelope's `messageId` and `publishTime`, which the record
/// keeps (docs/FORMAT.md). Until 2026-12-07 neither output showed them,
/// so a bad message of a live feed could not be traced (outside audit).
#[test]
fn a_quarantined_envelope_names_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let published = "2025-11-23T12:13:20.000Z";
    import_stdin(
        dir.path(),
        &format!("{}\n", envelope(r#"{"hello":"world"}"#, published)),
    );
    let json = ccvault(dir.path(), &["quarantine", "--format", "json"]).ok();
    let rows = json.json_lines();
    assert_eq!(rows.len(), 1, "{}", json.stdout_str());
    assert_eq!(
        (&rows[0]["messageId"], &rows[0]["publishTime"]),
        (&Value::from("m"), &Value::from(published))
    );
    let human = ccvault(dir.path(), &["quarantine"]).ok();
    assert!(
        human
            .stdout_str()
            .contains(&format!("message m  published {published}")),
        "{}",
        human.stdout_str()
    );
}
