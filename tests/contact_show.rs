//! `ccvault show GUID` shows the customer's whole contact (docs/METRICS.md
//! §3): every leg in order of `offeredAt`, then GUID, in text, JSON and
//! HTML, whichever leg
//! was asked for and in whatever order the legs were archived. `--raw` stays
//! the asked leg's payloads byte-exact. Each test builds its legs by hand.

mod common;

use std::path::Path;

use common::{ccvault, ccvault_stdin};
use serde_json::Value;

const A: &str = "int-19ab0000001-ContactShowLegA00000000-phone-00-acme01";
const B: &str = "int-19ab0000002-ContactShowLegB00000000-phone-01-acme01";
const C: &str = "int-19ab0000003-ContactShowLegC00000000-phone-02-acme01";
const AGENT_A: &str = "agContactShowAlice0000001";
const AGENT_B: &str = "agContactShowBob000000002";
const AGENT_C: &str = "agContactShowCarol0000003";

/// One event of `guid`, `ts_ms` into the call, naming `parent` (as 8x8 does,
/// in `attachedData`) when it has one.
fn event(
    guid: &str,
    parent: Option<&str>,
    event: &str,
    seq: u64,
    at_s: i64,
    extra: &str,
) -> String {
    let attached = parent.map_or(String::new(), |p| {
        format!(
            r#""attachedData":{{"attachedDatum":[{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{p}"}}]}},"#
        )
    });
    let ms = (1_763_900_000 + at_s) * 1000;
    format!(
        r#"{{"Interaction":{{{attached}"event":"{event}","interactionGUID":"{guid}","mediaType":"phone","direction":"in","msgInfo":{{"sequenceId":{seq},"timestamp":{ms}}}{extra}}}}}"#
    )
}

/// A leg queued at `start` on `queue`, answered by `agent` after 10 s, talking
/// 60 s, then (when `transfers`) asking for a transfer and ending.
fn leg(
    guid: &str,
    parent: Option<&str>,
    queue: u32,
    agent: &str,
    start: i64,
    transfers: bool,
) -> Vec<String> {
    let q = format!(r#","queueId":{queue}"#);
    let a = format!(r#","queueId":{queue},"agentId":"{agent}""#);
    let seq = start as u64 * 10;
    let mut lines = vec![
        event(guid, parent, "InteractionCreated", seq, start, &q),
        event(guid, parent, "InteractionQueued", seq + 1, start + 1, &q),
        event(guid, parent, "InteractionAssigned", seq + 2, start + 5, &a),
        event(guid, parent, "InteractionAccepted", seq + 3, start + 11, &a),
    ];
    if transfers {
        lines.push(event(
            guid,
            parent,
            "InteractionTransferRequest",
            seq + 4,
            start + 71,
            &a,
        ));
    }
    lines.push(event(
        guid,
        parent,
        "InteractionDeleted",
        seq + 5,
        start + 72,
        &a,
    ));
    lines
}

/// The three legs of one customer's call: A answered, transferred to B,
/// transferred to C.
fn chain() -> [Vec<String>; 3] {
    [
        leg(A, None, 311, AGENT_A, 0, true),
        leg(B, Some(A), 312, AGENT_B, 72, true),
        leg(C, Some(B), 313, AGENT_C, 144, false),
    ]
}

/// A new archive holding the chain's legs, imported in the order `order`
/// gives (indexes into [`chain`]), and the legs' lines.
fn archived_chain(order: [usize; 3]) -> (tempfile::TempDir, [Vec<String>; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let legs = chain();
    let lines: Vec<String> = order.iter().flat_map(|&i| legs[i].clone()).collect();
    import_lines(dir.path(), &lines);
    (dir, legs)
}

fn import_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    ccvault_stdin(dir, &["import", "-"], text.as_bytes()).ok();
}

fn show_json(dir: &Path, guid: &str) -> Value {
    let run = ccvault(dir, &["show", guid, "--format", "json"]).ok();
    let mut lines = run.json_lines();
    assert_eq!(lines.len(), 1, "show {guid} --format json: one line");
    lines.remove(0)
}

/// `(interactionGUID, legIndex, asked)` of each leg of `show --format json`.
fn legs_of(shown: &Value) -> Vec<(String, u64, bool)> {
    shown["legs"]
        .as_array()
        .unwrap_or_else(|| panic!("no legs in {shown}"))
        .iter()
        .map(|l| {
            (
                l["interactionGUID"].as_str().unwrap().to_owned(),
                l["summary"]["legIndex"].as_u64().unwrap(),
                l["asked"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn places(asked: &str, legs: &[(&str, u64)]) -> Vec<(String, u64, bool)> {
    legs.iter()
        .map(|(g, i)| ((*g).to_owned(), *i, *g == asked))
        .collect()
}

/// Legs are listed by `offeredAt`, then GUID, not by `legIndex`: a leg can
/// be offered before the leg it names as its parent (the parent's queue
/// entry came late, or a clock ran early), and the contract orders by time.
#[test]
fn legs_are_in_order_of_offered_at_even_against_their_index() {
    let dir = tempfile::tempdir().unwrap();
    // A queued at 200 s, its child B created at 150 s, B's child C at 50 s.
    let mut lines = leg(A, None, 311, AGENT_A, 199, false);
    lines.push(event(B, Some(A), "InteractionCreated", 1, 150, ""));
    lines.push(event(B, Some(A), "InteractionDeleted", 2, 160, ""));
    lines.push(event(C, Some(B), "InteractionCreated", 1, 50, ""));
    lines.push(event(C, Some(B), "InteractionDeleted", 2, 60, ""));
    import_lines(dir.path(), &lines);
    for asked in [A, B, C] {
        let shown = show_json(dir.path(), asked);
        assert_eq!(
            legs_of(&shown),
            places(asked, &[(C, 2), (B, 1), (A, 0)]),
            "show {asked}"
        );
    }
}

#[test]
fn showing_the_middle_leg_shows_all_three_in_order() {
    // Archived out of order: the last leg first.
    let (dir, _) = archived_chain([2, 0, 1]);
    let d = dir.path();

    let text = ccvault(d, &["show", B]).ok().stdout_str();
    assert!(
        text.starts_with(&format!("Contact {A}: 3 legs, leg 2 asked\n")),
        "{text}"
    );
    let at = |what: &str| {
        text.find(what)
            .unwrap_or_else(|| panic!("{what} missing:\n{text}"))
    };
    // Each leg's section, in order of offeredAt, the asked one marked.
    let (la, lb, lc) = (
        at(&format!("== Leg 1 of 3: {A} (legIndex 0) ==")),
        at(&format!("== Leg 2 of 3: {B} (legIndex 1, asked) ==")),
        at(&format!("== Leg 3 of 3: {C} (legIndex 2) ==")),
    );
    assert!(la < lb && lb < lc, "{text}");
    // Each with its queue, agent, kind and metrics, and its events.
    for (section, queue, agent) in [
        (&text[la..lb], 311, AGENT_A),
        (&text[lb..lc], 312, AGENT_B),
        (&text[lc..], 313, AGENT_C),
    ] {
        assert!(section.contains(&format!("queue {queue}")), "{section}");
        assert!(
            section.contains(&format!("outcome     answered (agent {agent})")),
            "{section}"
        );
        assert!(section.contains("kind inbound"), "{section}");
        assert!(section.contains("wait        10s"), "{section}");
        assert_eq!(
            section.matches("InteractionAccepted").count(),
            1,
            "{section}"
        );
    }
    assert_eq!(
        text.matches("InteractionTransferRequest").count(),
        2,
        "{text}"
    );
    // The overview lists the legs with their parents.
    let overview = &text[..la];
    for (g, from) in [(A, "-"), (B, A), (C, B)] {
        let row = overview
            .lines()
            .find(|l| l.contains(g) && !l.starts_with("Contact"))
            .unwrap_or_else(|| panic!("{g} not in the overview:\n{overview}"));
        assert!(row.contains(&format!(" {from} ")), "{row}");
    }

    // Whichever leg is asked for, the same legs in the same order.
    for asked in [A, B, C] {
        let shown = show_json(d, asked);
        assert_eq!(
            legs_of(&shown),
            places(asked, &[(A, 0), (B, 1), (C, 2)]),
            "show {asked}"
        );
        assert_eq!(shown["contactId"], A);
    }
}

#[test]
fn json_keeps_the_asked_legs_fields_and_adds_the_contacts_legs() {
    let (dir, [a, b, c]) = archived_chain([0, 1, 2]);
    let d = dir.path();
    let shown = show_json(d, B);
    // The asked leg, as before: its GUID, events (with provenance) and summary.
    assert_eq!(shown["interactionGUID"], B);
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), b.len());
    for (e, line) in events.iter().zip(&b) {
        let payload: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["event"], payload);
        assert!(
            e["offset"].is_u64() && e["timeSource"] == "msgInfo.timestamp",
            "{e}"
        );
    }
    assert_eq!(shown["summary"]["interactionGUID"], B);
    assert_eq!(shown["summary"]["contactId"], A);
    assert_eq!(shown["summary"]["legIndex"], 1);
    assert_eq!(shown["summary"]["parentGuid"], A);
    // Every leg in the same shape, the asked one equal to the top level.
    let legs = shown["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 3);
    for (l, (guid, lines)) in legs.iter().zip([(A, &a), (B, &b), (C, &c)]) {
        assert_eq!(l["interactionGUID"], guid);
        assert_eq!(l["summary"]["interactionGUID"], guid);
        assert_eq!(l["summary"]["contactId"], A);
        assert_eq!(l["events"].as_array().unwrap().len(), lines.len());
        let mut keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["asked", "events", "interactionGUID", "summary"]);
    }
    assert_eq!(legs[1]["events"], shown["events"]);
    assert_eq!(legs[1]["summary"], shown["summary"]);
    assert_eq!(legs[0]["summary"]["kind"], "inbound");
    assert_eq!(legs[2]["summary"]["parentGuid"], B);

    // Keys in the order docs/METRICS.md gives them (not sorted), and each
    // payload embedded as received.
    let text = ccvault(d, &["show", B, "--format", "json"])
        .ok()
        .stdout_str();
    assert!(
        text.starts_with(&format!(r#"{{"interactionGUID":"{B}","events":[{{"t":"#)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#""summary":{{"interactionGUID":"{B}","contactId":"{A}","legIndex":1,"#
        )),
        "{text}"
    );
    let top: Vec<usize> = [r#"],"summary":{"#, r#"},"contactId":"#, r#","legs":[{"#]
        .iter()
        .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
        .collect();
    assert!(top.windows(2).all(|w| w[0] < w[1]), "{top:?}");
    for line in &b {
        assert!(
            text.contains(&format!(r#""event":{line}}}"#)),
            "{line} verbatim"
        );
    }

    // --raw: the asked leg's payloads only, byte-exact.
    let raw = ccvault(d, &["show", B, "--raw"]).ok().stdout_str();
    assert_eq!(raw, format!("{}\n", b.join("\n")));
}

#[test]
fn a_parent_archived_last_joins_its_legs_after_a_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [a, b, c] = chain();
    import_lines(d, &c);
    import_lines(d, &b);
    // The first leg is not archived yet: the contact is named after it and
    // starts at index 1.
    let shown = show_json(d, C);
    assert_eq!(shown["contactId"], A);
    assert_eq!(legs_of(&shown), places(C, &[(B, 1), (C, 2)]));
    let text = ccvault(d, &["show", B]).ok().stdout_str();
    assert!(
        text.starts_with(&format!("Contact {A}: 2 legs, leg 1 asked\n")),
        "{text}"
    );

    // The contact's own GUID has no events yet: the error names its legs.
    let missing = ccvault(d, &["show", A]).expect_code(1);
    assert!(
        missing.stderr.contains(&format!(
            "no events of interaction \"{A}\" in {}; it names a contact whose first leg was never archived, and these legs of it were: {B}, {C} (show any of them)",
            d.display()
        )),
        "{}",
        missing.stderr
    );

    // Parents last: each `show` catches the projections up incrementally.
    import_lines(d, &a);
    for asked in [C, A] {
        let shown = show_json(d, asked);
        assert_eq!(shown["contactId"], A);
        assert_eq!(legs_of(&shown), places(asked, &[(A, 0), (B, 1), (C, 2)]));
    }
    // A store that is already current is only read (a writable redb open
    // rewrites the file and first reads all of it, which `show` cannot
    // afford on a large archive).
    let store = d.join("projections.redb");
    let before = std::fs::read(&store).unwrap();
    for asked in [A, B, C] {
        ccvault(d, &["show", asked]).ok();
    }
    assert!(
        std::fs::read(&store).unwrap() == before,
        "show wrote to a current store"
    );
    // A rebuild gives the same answer.
    let before = ccvault(d, &["show", B, "--format", "json"]).ok().stdout;
    ccvault(d, &["rebuild"]).ok();
    assert_eq!(
        ccvault(d, &["show", B, "--format", "json"]).ok().stdout,
        before
    );
}

#[test]
fn a_leg_without_transfers_shows_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lone = leg(A, None, 311, AGENT_A, 0, false);
    import_lines(d, &lone);
    let text = ccvault(d, &["show", A]).ok().stdout_str();
    assert!(text.starts_with(&format!("Interaction {A}\n")), "{text}");
    assert!(!text.contains("== Leg"), "{text}");
    assert!(text.contains(&format!("kind inbound  contact {A}  legIndex 0  from -\n")));
    let shown = show_json(d, A);
    assert_eq!(legs_of(&shown), places(A, &[(A, 0)]));
    let html = ccvault(d, &["show", A, "--html", "-"]).ok().stdout_str();
    assert_eq!(html.matches("<g class=\"leg\"").count(), 0);
}

#[test]
fn html_draws_one_lane_group_per_leg_and_the_transfers() {
    let (dir, [a, b, c]) = archived_chain([1, 2, 0]);
    let d = dir.path();
    let file = dir.path().join("contact.html");
    ccvault(d, &["show", C, "--html", file.to_str().unwrap()]).ok();
    let html = std::fs::read_to_string(&file).unwrap();
    let group = |g: &str, asked: bool| {
        format!("<g class=\"leg\" data-guid=\"{g}\" data-asked=\"{asked}\">")
    };
    let (ga, gb, gc) = (
        html.find(&group(A, false)).expect("leg A's lanes"),
        html.find(&group(B, false)).expect("leg B's lanes"),
        html.find(&group(C, true)).expect("leg C's lanes, asked"),
    );
    assert!(ga < gb && gb < gc);
    // The transfers between them: arrows from each leg to the next.
    let arrows: Vec<&str> = html
        .split("<path class=\"handoff transfer\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap()])
        .collect();
    assert_eq!(arrows.len(), 2, "{arrows:?}");
    for (arrow, (from, to)) in arrows.iter().zip([(A, B), (B, C)]) {
        assert!(
            arrow.contains(&format!("data-from=\"{from}\" data-to=\"{to}\"")),
            "{arrow}"
        );
    }
    // Each leg's events table, the raw payloads included.
    for lines in [&a, &b, &c] {
        for line in lines {
            let escaped = line.replace('&', "&amp;").replace('"', "&quot;");
            assert!(html.contains(&escaped), "payload missing: {line}");
        }
    }
}
