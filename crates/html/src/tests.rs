//! Tests of both pages: well-formed XML, the expected lanes and segments,
//! escaping, and every interaction of a simulated day rendered and checked
//! against its summary.

use std::collections::BTreeMap;

use ccvault_projections::{
    summarize, timeline, EventInput, GroupBy, Report, ReportOptions, ReportRow,
};
use jiff::tz::TimeZone;

use crate::sim_day::{by_guid, inputs_of};
use crate::test_xml::check;
use crate::{lanes, render_contact, render_report, render_timeline, LegView, SegmentKind};

/// A lane as (kind, title, agent, segments in seconds after `T0`).
type LaneShape<'a> = (SegmentKind, &'a str, Option<&'a str>, Vec<(i64, i64)>);

const GUID: &str = "int-19a1b2c3d4e-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-acmecorp01";
const T0: i64 = 1_763_900_000;

fn ev(kind: &str, dt: i64, extra: &str) -> String {
    format!(
        r#"{{"Interaction":{{"event":"{kind}","interactionGUID":"{GUID}","interactionEventTS":{},"queueId":"311","direction":"in","mediaType":"phone"{extra}}}}}"#,
        T0 + dt
    )
}

/// Queued, offered to agA (rings out: rejected by timeout), offered to agB
/// (accepted), one 45 s hold, wrap-up; the hang-up fields carry markup.
fn sample() -> Vec<String> {
    vec![
        ev("InteractionCreated", 0, ""),
        ev("InteractionQueued", 2, ""),
        ev("InteractionAssigned", 40, r#","agentId":"agA""#),
        ev(
            "InteractionRejected",
            70,
            r#","agentId":"agA","rejectReason":"1""#,
        ),
        ev("InteractionAssigned", 75, r#","agentId":"agB""#),
        ev("InteractionAccepted", 81, r#","agentId":"agB""#),
        ev("LineHoldStatus", 200, r#","agentId":"agB","status":true"#),
        ev(
            "LineHoldStatus",
            245,
            r#","agentId":"agB","status":"false""#,
        ),
        ev("InteractionPostProcess", 400, r#","agentId":"agB""#),
        ev(
            "InteractionDeleted",
            400,
            r#","hangupInitiator":"CUSTOMER<script>alert('x')</script>","callHangupReason":"CEC_&_\u0000""#,
        ),
        ev(
            "InteractionEndPostProcess",
            429,
            r#","agentId":"agB","dispositionCode":1000"#,
        ),
    ]
}

fn inputs(lines: &[String]) -> Vec<EventInput<'_>> {
    lines
        .iter()
        .map(|l| EventInput {
            payload: l.as_bytes(),
            publish_time: None,
            ingest_ms: 0,
            live: false,
            topic_tenant: None,
        })
        .collect()
}

#[test]
fn lanes_show_queue_each_offer_talk_hold_and_wrap() {
    let lines = sample();
    let recs = inputs(&lines);
    let tl = timeline::build(&recs).unwrap();
    let lanes = lanes(&tl, &recs);
    let shape: Vec<LaneShape> = lanes
        .iter()
        .map(|l| {
            (
                l.kind,
                l.title.as_str(),
                l.agent.as_deref(),
                l.segments
                    .iter()
                    .map(|s| ((s.start / 1000 - T0), (s.end / 1000 - T0)))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (SegmentKind::Queue, "Queue", None, vec![(2, 40), (70, 75)]),
            (SegmentKind::Ring, "Ring #1", Some("agA"), vec![(40, 70)]),
            (SegmentKind::Ring, "Ring #2", Some("agB"), vec![(75, 81)]),
            (
                SegmentKind::Talk,
                "Talk",
                Some("agB"),
                vec![(81, 200), (245, 400)]
            ),
            (SegmentKind::Hold, "Hold ×1", Some("agB"), vec![(200, 245)]),
            (SegmentKind::Wrap, "Wrap", Some("agB"), vec![(400, 429)]),
        ]
    );
    assert_eq!(
        lanes[1].segments[0].note.as_deref(),
        Some("rejected (timeout)")
    );
    assert_eq!(lanes[2].segments[0].note.as_deref(), Some("accepted"));
    // The picture adds up to the summary.
    let talk: i64 = lanes[3].segments.iter().map(|s| s.duration_ms()).sum();
    assert_eq!(Some(talk), tl.summary.talk_ms);
    assert_eq!(Some(lanes[4].segments[0].duration_ms()), tl.summary.hold_ms);
}

#[test]
fn timeline_page_is_well_formed_and_labels_segments() {
    let lines = sample();
    let recs = inputs(&lines);
    let tl = timeline::build(&recs).unwrap();
    let html = render_timeline(&tl, &recs, &TimeZone::UTC);
    let doc = check(&html);

    let rects: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("rect") && n.attribute("class").is_some_and(|c| c.starts_with("seg "))
        })
        .collect();
    let of = |kind: &str| -> Vec<roxmltree::Node> {
        rects
            .iter()
            .copied()
            .filter(|n| {
                n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|w| w == kind))
            })
            .collect()
    };
    assert_eq!(of("queue").len(), 2);
    assert_eq!(of("ring").len(), 2);
    assert_eq!(of("talk").len(), 2);
    let hold = of("hold");
    assert_eq!(hold.len(), 1);
    assert_eq!(hold[0].attribute("data-duration-ms"), Some("45000"));
    let hold_title = hold[0]
        .children()
        .find(|c| c.has_tag_name("title"))
        .unwrap();
    assert_eq!(
        hold_title.text(),
        Some("Hold ×1 agB: 12:16:40 → 12:17:25 (45s)")
    );
    // The duration labels are drawn as text, not only as hover titles.
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(texts.contains(&"45s"), "{texts:?}");
    assert!(
        texts.contains(&"30s") && texts.contains(&"rejected (timeout)"),
        "{texts:?}"
    );
    assert!(texts.contains(&"29s"), "{texts:?}");
    let ring_lanes: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("data-kind") == Some("ring"))
        .map(|n| n.attribute("data-title").unwrap_or_default())
        .collect();
    assert_eq!(ring_lanes, ["Ring #1", "Ring #2"]);

    // One table row per event, each with its raw payload.
    let rows = doc
        .descendants()
        .filter(|n| n.has_tag_name("tbody"))
        .flat_map(|b| b.children().filter(|c| c.has_tag_name("tr")))
        .count();
    assert_eq!(rows, lines.len());
    let raws: Vec<String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("raw"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    for l in &lines {
        assert!(raws.contains(l), "payload not shown byte-exact: {l}");
    }
}

#[test]
fn markup_in_payloads_is_escaped() {
    let lines = sample();
    let recs = inputs(&lines);
    let tl = timeline::build(&recs).unwrap();
    let html = render_timeline(&tl, &recs, &TimeZone::UTC);
    check(&html);
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "unescaped script tag"
    );
    assert!(html.contains("CUSTOMER&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // No scripts, no external resources of any kind.
    for needle in ["http://", "https://", "src=", "href=", "@import", "url("] {
        let hits: Vec<_> = html.match_indices(needle).collect();
        // The only URLs are the XML namespace names, which are never fetched.
        let allowed = html.matches("http://www.w3.org/").count();
        if needle == "http://" {
            assert_eq!(hits.len(), allowed, "{needle}");
        } else {
            assert!(hits.is_empty(), "{needle} in page");
        }
    }
}

#[test]
fn timeline_times_follow_the_zone() {
    let lines = sample();
    let recs = inputs(&lines);
    let tl = timeline::build(&recs).unwrap();
    let ny = TimeZone::get("America/New_York").unwrap();
    let html = render_timeline(&tl, &recs, &ny);
    check(&html);
    assert!(html.contains("2025-11-23T07:13:20.000-05:00"));
    assert!(html.contains("America/New_York"));
}

fn row(
    start_h: i64,
    offered: u64,
    sl: Option<f64>,
    asa: Option<i64>,
    group: ccvault_projections::GroupKey,
) -> ReportRow {
    ReportRow {
        interval_start: T0 * 1000 + start_h * 3_600_000,
        interval_end: T0 * 1000 + (start_h + 1) * 3_600_000,
        group,
        offered,
        contacts: offered,
        transferred_in: 0,
        answered: offered - 2,
        abandoned: 2,
        short_abandoned: 1,
        unqueued: 0,
        consults: 0,
        outbound: 0,
        outbound_connected: 0,
        handled: offered - 2,
        answered_in_sla: offered / 2,
        service_level: sl,
        abandon_rate: Some(0.1),
        asa_ms: asa,
        aht_ms: Some(300_000),
        avg_talk_ms: Some(250_000),
        avg_hold_ms: None,
        avg_wrap_ms: Some(30_000),
        max_wait_ms: Some(95_000),
        holds: 1,
        max_hold_ms: Some(61_000),
        rejects: 2,
        transfers: 0,
    }
}

#[test]
fn report_page_has_four_charts_and_the_table() {
    use ccvault_projections::GroupKey;
    let rows = vec![
        row(0, 10, Some(0.8), Some(12_000), GroupKey::default()),
        row(1, 20, Some(0.5), Some(31_000), GroupKey::default()),
        // 2 has no interactions: a gap, not a zero.
        row(3, 7, None, None, GroupKey::default()),
    ];
    let html = render_report(&rows, &ReportOptions::default());
    let doc = check(&html);
    let charts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .filter_map(|n| n.attribute("id"))
        .collect();
    assert_eq!(
        charts,
        [
            "chart-volume",
            "chart-service-level",
            "chart-asa",
            "chart-abandons"
        ]
    );
    let volume = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("chart-volume"))
        .unwrap();
    let bars: Vec<(&str, &str)> = volume
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| {
            (
                n.attribute("class").unwrap_or(""),
                n.attribute("data-value").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(bars.len(), 9);
    assert_eq!(
        bars[0..3],
        [("offered", "10"), ("answered", "8"), ("abandoned", "2")]
    );
    // The SL line is broken at the null interval: one polyline through 2 points.
    let sl = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("chart-service-level"))
        .unwrap();
    let polylines: Vec<&str> = sl
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("points"))
        .collect();
    assert_eq!(polylines.len(), 1);
    assert_eq!(polylines[0].split(' ').count(), 2);
    assert_eq!(
        sl.descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count(),
        2
    );
    let rows_in_table = doc
        .descendants()
        .filter(|n| n.has_tag_name("tbody"))
        .flat_map(|b| b.children().filter(|c| c.has_tag_name("tr")))
        .count();
    assert_eq!(rows_in_table, 3);
    let headers: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("th"))
        .filter_map(|n| n.text())
        .collect();
    assert!(headers.contains(&"max hold"), "{headers:?}");
    assert!(html.contains(">1m 1s<"), "max hold");
    assert!(html.contains("80.00%"));
    assert!(html.contains("31s"));
}

#[test]
fn report_by_agent_escapes_names_and_limits_series() {
    use ccvault_projections::GroupKey;
    let mut rows = Vec::new();
    for a in 0..12 {
        let name = format!("ag{a}<b>&\"");
        rows.push(row(
            0,
            10 + a,
            Some(0.9),
            Some(5_000),
            GroupKey::agent(Some(name.clone())),
        ));
        rows.push(row(
            1,
            10 + a,
            Some(0.7),
            Some(9_000),
            GroupKey::agent(Some(name)),
        ));
    }
    rows.push(row(1, 3, None, None, GroupKey::agent(None)));
    let opts = ReportOptions {
        by: GroupBy::AGENT,
        ..ReportOptions::default()
    };
    let html = render_report(&rows, &opts);
    let doc = check(&html);
    assert!(!html.contains("ag0<b>"), "unescaped agent id");
    assert!(html.contains("ag11&lt;b&gt;&amp;&quot;"));
    let series = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("chart-asa"))
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("series"))
        .count();
    assert_eq!(series, 8);
    assert!(html.contains("the 8 largest of 13 groups"));
}

#[test]
fn empty_report_is_a_valid_page() {
    let html = render_report(&[], &ReportOptions::default());
    check(&html);
    assert!(html.contains("No interactions in this report."));
}

/// Every interaction of a simulated stream (all quirks on): the page is
/// well-formed and the lanes add up to the summary's numbers.
#[test]
fn simulated_interactions_render_and_add_up() {
    let cfg = ccvault_sim::SimConfig {
        seed: 42,
        interactions: Some(400),
        agents: 12,
        ..Default::default()
    };
    let mut buf = Vec::new();
    ccvault_sim::simulate(&cfg, &mut buf).unwrap();
    let by_guid = by_guid(&buf);
    assert!(by_guid.len() >= 400);
    let mut report = Report::new(ReportOptions {
        interval: ccvault_projections::Interval::Min15,
        ..ReportOptions::default()
    });
    let (mut holds_seen, mut rejects_seen) = (0, 0);
    for (guid, recs) in &by_guid {
        let inputs = inputs_of(recs);
        let tl = timeline::build(&inputs).unwrap();
        let s = &tl.summary;
        report.add(&summarize(&inputs).unwrap());
        let ls = lanes(&tl, &inputs);
        let total = |k: SegmentKind| -> i64 {
            ls.iter()
                .filter(|l| l.kind == k)
                .flat_map(|l| &l.segments)
                .map(|s| s.duration_ms())
                .sum()
        };
        let count = |k: SegmentKind| ls.iter().filter(|l| l.kind == k).count();
        assert_eq!(count(SegmentKind::Ring) as u64, s.offer_count, "{guid}");
        if let (Some(h), Some(t)) = (s.hold_ms, s.talk_ms) {
            assert_eq!(total(SegmentKind::Hold), h, "{guid}");
            let longest = ls
                .iter()
                .filter(|l| l.kind == SegmentKind::Hold)
                .flat_map(|l| &l.segments)
                .map(|s| s.duration_ms())
                .max();
            assert_eq!(longest, s.max_hold_ms, "{guid}");
            assert_eq!(total(SegmentKind::Talk), t, "{guid}");
            holds_seen += s.hold_count;
        }
        if let Some(w) = s.wrap_ms {
            assert_eq!(total(SegmentKind::Wrap), w, "{guid}");
        }
        if let (Some(r), Some(_)) = (s.ring_ms, s.accepted_at) {
            let answering = ls.iter().rfind(|l| l.kind == SegmentKind::Ring).unwrap();
            assert_eq!(answering.segments[0].duration_ms(), r, "{guid}");
        }
        if let Some(d) = s.dial_ms {
            assert_eq!(total(SegmentKind::Dial), d, "{guid}");
        }
        rejects_seen += s.reject_count;
        let html = render_timeline(&tl, &inputs, &TimeZone::UTC);
        check(&html);
    }
    assert!(
        holds_seen > 0 && rejects_seen > 0,
        "the sample should exercise holds and rejects"
    );
    let html = render_report(&report.rows(), report.options());
    check(&html);
}

const LEG_A: &str = "int-19a1b2c3d4e-AAAAAAAAAAAAAAAAAAAAAAAAA-phone-00-acmecorp01";
const LEG_B: &str = "int-19a1b2c3d4f-BBBBBBBBBBBBBBBBBBBBBBBBB-phone-01-acmecorp01";
const LEG_C: &str = "int-19a1b2c3d50-CCCCCCCCCCCCCCCCCCCCCCCCC-phone-02-acmecorp01";

fn leg_ev(guid: &str, kind: &str, dt: i64, extra: &str) -> String {
    format!(
        r#"{{"Interaction":{{"event":"{kind}","interactionGUID":"{guid}","interactionEventTS":{},"mediaType":"phone"{extra}}}}}"#,
        T0 + dt
    )
}

fn from(parent: &str) -> String {
    format!(
        r#","attachedData":{{"attachedDatum":[{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{parent}"}}]}}"#
    )
}

/// A contact of three legs: A answered by agA, who consults agC (leg C, never
/// queued) and then transfers the customer to queue 313 (leg B, answered by agB).
fn contact_legs() -> Vec<Vec<String>> {
    let q = r#","queueId":311,"direction":"in""#;
    let a = vec![
        leg_ev(LEG_A, "InteractionCreated", 0, ""),
        leg_ev(LEG_A, "InteractionQueued", 2, q),
        leg_ev(LEG_A, "InteractionAssigned", 10, r#","agentId":"agA""#),
        leg_ev(LEG_A, "InteractionAccepted", 14, r#","agentId":"agA""#),
        leg_ev(
            LEG_A,
            "InteractionTransferRequest",
            100,
            r#","agentId":"agA""#,
        ),
        leg_ev(LEG_A, "InteractionDeleted", 110, ""),
    ];
    let b = vec![
        leg_ev(LEG_B, "InteractionCreated", 111, &from(LEG_A)),
        leg_ev(
            LEG_B,
            "InteractionQueued",
            112,
            r#","queueId":313,"direction":"in""#,
        ),
        leg_ev(LEG_B, "InteractionAssigned", 130, r#","agentId":"agB""#),
        leg_ev(LEG_B, "InteractionAccepted", 133, r#","agentId":"agB""#),
        leg_ev(LEG_B, "InteractionDeleted", 300, ""),
    ];
    let c = vec![
        leg_ev(LEG_C, "InteractionCreated", 40, &from(LEG_A)),
        leg_ev(LEG_C, "InteractionAssigned", 41, r#","agentId":"agC""#),
        leg_ev(LEG_C, "InteractionAccepted", 44, r#","agentId":"agC""#),
        leg_ev(LEG_C, "InteractionDeleted", 80, ""),
    ];
    vec![a, c, b]
}

#[test]
fn contact_page_draws_each_leg_and_the_handoffs_between_them() {
    let legs = contact_legs();
    let recs: Vec<Vec<EventInput>> = legs.iter().map(|l| inputs(l)).collect();
    let tls: Vec<_> = recs.iter().map(|r| timeline::build(r).unwrap()).collect();
    let views: Vec<LegView> = (0..3)
        .map(|i| LegView {
            timeline: &tls[i],
            inputs: &recs[i],
            asked: i == 2,
        })
        .collect();
    let html = render_contact(&views, &TimeZone::UTC);
    let doc = check(&html);
    assert!(html.contains(&format!("Contact <code>{LEG_A}</code>")));

    // One group per leg, in the order given, the asked one marked; each with
    // the same lanes as the leg's own page.
    let groups: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("leg"))
        .collect();
    let guids: Vec<&str> = groups
        .iter()
        .filter_map(|g| g.attribute("data-guid"))
        .collect();
    assert_eq!(guids, [LEG_A, LEG_C, LEG_B]);
    let asked: Vec<&str> = groups
        .iter()
        .filter_map(|g| g.attribute("data-asked"))
        .collect();
    assert_eq!(asked, ["false", "false", "true"]);
    for (g, (tl, r)) in groups.iter().zip(tls.iter().zip(&recs)) {
        let drawn: Vec<&str> = g
            .descendants()
            .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("lane"))
            .filter_map(|n| n.attribute("data-title"))
            .collect();
        let expected: Vec<String> = lanes(tl, r).into_iter().map(|l| l.title).collect();
        assert_eq!(drawn, expected);
    }

    // The transfer leaves A at its transfer request and reaches B's first
    // event; the consultation leaves A when C starts.
    let arrows: Vec<(&str, &str, &str, &str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("path"))
        .map(|n| {
            (
                n.attribute("class").unwrap_or(""),
                n.attribute("data-from").unwrap_or(""),
                n.attribute("data-to").unwrap_or(""),
                n.attribute("data-from-ms").unwrap_or(""),
                n.attribute("data-to-ms").unwrap_or(""),
            )
        })
        .collect();
    let ms = |dt: i64| ((T0 + dt) * 1000).to_string();
    assert_eq!(
        arrows,
        [
            ("handoff consult", LEG_A, LEG_C, &*ms(40), &*ms(40)),
            ("handoff transfer", LEG_A, LEG_B, &*ms(100), &*ms(111)),
        ]
    );
    // Every leg's raw events are listed.
    let raws = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("raw"))
        .count();
    assert_eq!(raws, legs.iter().map(Vec::len).sum::<usize>());
    assert!(!html.contains("url(") && !html.contains("<script"));
}

#[test]
fn a_parent_the_archive_never_had_is_named_not_drawn() {
    let legs = contact_legs();
    let recs = inputs(&legs[2]);
    let tl = timeline::build(&recs).unwrap();
    let views = [LegView {
        timeline: &tl,
        inputs: &recs,
        asked: true,
    }];
    let html = render_contact(&views, &TimeZone::UTC);
    let doc = check(&html);
    // The contact is the missing first leg.
    assert!(html.contains(&format!("Contact <code>{LEG_A}</code>")));
    assert!(html.contains("(not in the archive)"));
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("path")).count(),
        0
    );
    assert!(render_contact(&[], &TimeZone::UTC).contains("(no legs)"));
}

/// Every contact of a simulated stream with more than one leg renders, with one
/// arrow per leg whose parent is on the page.
#[test]
fn simulated_contacts_render_with_their_handoffs() {
    let cfg = ccvault_sim::SimConfig {
        seed: 7,
        interactions: Some(1500),
        agents: 20,
        quirks: ccvault_sim::Quirks::none(),
        ..Default::default()
    };
    let mut buf = Vec::new();
    let mut truths = Vec::new();
    ccvault_sim::simulate_with_truth(&cfg, &mut buf, &mut |t| truths.push(t)).unwrap();
    let by_guid = by_guid(&buf);
    let mut contacts: BTreeMap<&str, Vec<&ccvault_sim::Truth>> = BTreeMap::new();
    for t in &truths {
        contacts.entry(t.contact_id.as_str()).or_default().push(t);
    }
    let mut drawn = 0;
    for legs in contacts.values().filter(|l| l.len() > 1) {
        let recs: Vec<Vec<EventInput>> = legs
            .iter()
            .map(|t| inputs_of(&by_guid[&t.interaction_guid]))
            .collect();
        let tls: Vec<_> = recs.iter().map(|r| timeline::build(r).unwrap()).collect();
        let views: Vec<LegView> = legs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // The arrows follow the parent each summary derives.
                assert_eq!(tls[i].summary.parent_guid, t.parent_guid);
                LegView {
                    timeline: &tls[i],
                    inputs: &recs[i],
                    asked: i == 0,
                }
            })
            .collect();
        let html = render_contact(&views, &TimeZone::UTC);
        let doc = check(&html);
        let on_page = legs
            .iter()
            .filter(|t| {
                t.parent_guid
                    .as_deref()
                    .is_some_and(|p| legs.iter().any(|o| o.interaction_guid == p))
            })
            .count();
        let arrows = doc.descendants().filter(|n| n.has_tag_name("path")).count();
        assert_eq!(arrows, on_page, "{}", legs[0].contact_id);
        drawn += arrows;
    }
    assert!(
        drawn > 10,
        "the sample should have transfers and consultations"
    );
}

/// The hour a fall-back day repeats gives two rows whose charts' labels
/// and hover texts tell them apart by their offset (both read "01:00").
#[test]
fn a_repeated_hour_is_labelled_with_its_offsets() {
    use ccvault_projections::GroupKey;
    // 2026-11-01 in New York: 01:00 EDT is 05:00Z, 01:00 EST is 06:00Z.
    let at = |h: i64| {
        let mut r = row(0, 10, Some(0.8), Some(12_000), GroupKey::default());
        r.interval_start = 1_793_509_200_000 + h * 3_600_000;
        r.interval_end = r.interval_start + 3_600_000;
        r
    };
    let rows = vec![at(0), at(1), at(2), at(3)];
    let opts = ReportOptions {
        tz: jiff::tz::TimeZone::get("America/New_York").unwrap(),
        ..ReportOptions::default()
    };
    let html = render_report(&rows, &opts);
    check(&html);
    for label in [
        ">01:00 -04:00<",
        ">01:00 -05:00<",
        "2026-11-01 01:00 -04:00: 10 offered",
    ] {
        assert!(html.contains(label), "{label} not in the page");
    }
    assert!(!html.contains("00:00 -04:00") && !html.contains("02:00 -05:00"));
}
