use super::*;
use crate::test_util::*;

fn sum(events: &[String]) -> Summary {
    let raws: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    summarize(&inputs(&raws)).unwrap()
}

fn sample_summary(guid: &str) -> Summary {
    summarize(&inputs(&sample_of(guid))).unwrap()
}

const T0: i64 = 1_763_900_000;

// --- The sample stream, computed by hand from its timestamps ------------

#[test]
fn sample_answered_inbound_with_reject_hold_and_wrap() {
    let s = sample_summary(GUID1);
    // Canonical order at t=1763900402000: Deleted (seq 1029) before
    // PostProcess (seq 1030), so wrapStartAt = endedAt = 1763900402000.
    assert_eq!(s.interaction_guid.as_deref(), Some(GUID1));
    assert_eq!(s.tenant.as_deref(), Some("northwind01")); // after the last '-'
    assert_eq!(s.media_type.as_deref(), Some("phone"));
    assert_eq!(s.queue_id, Some(311));
    assert_eq!(s.direction, Some(Direction::In));
    assert_eq!(s.created_at, Some(1_763_900_000_000));
    assert_eq!(s.queued_at, Some(1_763_900_002_000));
    assert_eq!(s.offered_at, 1_763_900_002_000); // = queuedAt
    assert_eq!(s.offer_count, 2); // agH4 at ..040, agR2 at ..075
    assert_eq!(s.reject_count, 1); // agH4 at ..070
    assert_eq!(s.accepted_at, Some(1_763_900_081_000));
    assert_eq!(s.assigned_at, Some(1_763_900_075_000)); // last Assigned before Accepted
    assert_eq!(s.agent_id.as_deref(), Some("agR2t9LmQx7VbN3cZk5WpYe"));
    assert_eq!(s.connected_at, Some(1_763_900_081_000)); // inbound: acceptedAt
    assert_eq!(s.wrap_start_at, Some(1_763_900_402_000));
    assert_eq!(s.wrap_end_at, Some(1_763_900_431_000));
    assert_eq!(s.ended_at, Some(1_763_900_402_000));
    assert_eq!(s.hold_count, 1);
    assert_eq!(s.hold_ms, Some(45_000)); // 1763900245000 - 1763900200000
    assert_eq!(s.max_hold_ms, Some(45_000)); // the one hold
    assert_eq!(s.queue_ms, Some(73_000)); // 1763900075000 - 1763900002000
    assert_eq!(s.ring_ms, Some(6_000)); // 1763900081000 - 1763900075000
    assert_eq!(s.wait_ms, Some(79_000)); // 1763900081000 - 1763900002000
    assert_eq!(s.dial_ms, None); // inbound
    assert_eq!(s.talk_ms, Some(276_000)); // (1763900402000 - 1763900081000) - 45000
    assert_eq!(s.wrap_ms, Some(29_000)); // 1763900431000 - 1763900402000
    assert_eq!(s.handle_ms, Some(350_000)); // 276000 + 45000 + 29000
    assert_eq!(s.abandon_ms, None);
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.hangup_initiator.as_deref(), Some("CUSTOMER"));
    assert_eq!(
        s.call_hangup_reason.as_deref(),
        Some("CEC_DISCONNECT_NORMAL")
    );
    assert_eq!(s.disposition_code.as_deref(), Some("1000")); // number 1000 as text
    assert!(!s.transferred);
    assert!(s.complete);
    assert_eq!(s.event_count, 13);
    assert!(s.anomalies.is_empty());
}

#[test]
fn sample_abandoned_in_queue() {
    let s = sample_summary(GUID2);
    assert_eq!(s.direction, Some(Direction::In));
    assert_eq!(s.queue_id, Some(311));
    assert_eq!(s.created_at, Some(1_763_900_300_000));
    assert_eq!(s.queued_at, Some(1_763_900_301_000));
    assert_eq!(s.offered_at, 1_763_900_301_000);
    assert_eq!((s.offer_count, s.reject_count), (0, 0));
    assert_eq!(
        (s.accepted_at, s.assigned_at, s.connected_at),
        (None, None, None)
    );
    assert_eq!(s.agent_id, None);
    assert_eq!(s.ended_at, Some(1_763_900_349_000));
    assert_eq!(s.hold_count, 0);
    assert_eq!(s.hold_ms, None); // no connectedAt
    assert_eq!(s.wait_ms, None);
    assert_eq!(s.talk_ms, None);
    assert_eq!(s.handle_ms, None);
    assert_eq!(s.outcome, Outcome::Abandoned);
    assert_eq!(s.abandon_ms, Some(48_000)); // Unqueued 1763900349000 - 1763900301000
    assert_eq!(s.hangup_initiator.as_deref(), Some("CUSTOMER"));
    assert_eq!(s.disposition_code, None);
    assert!(s.complete);
    assert_eq!(s.event_count, 4);
    assert!(s.anomalies.is_empty());
}

#[test]
fn sample_outbound_not_answered() {
    let s = sample_summary(GUID3);
    assert_eq!(s.direction, Some(Direction::Out)); // direction "out", isOutboundCall
    assert_eq!(s.queue_id, Some(312));
    assert_eq!(s.created_at, Some(1_763_900_500_000));
    assert_eq!(s.queued_at, None);
    assert_eq!(s.offered_at, 1_763_900_500_000); // no queuedAt: createdAt
    assert_eq!((s.offer_count, s.reject_count), (1, 0));
    assert_eq!(s.assigned_at, Some(1_763_900_501_000));
    assert_eq!(s.accepted_at, Some(1_763_900_503_000));
    assert_eq!(s.agent_id.as_deref(), Some("agH4s8KpWz1XcV6bNm2QrTa"));
    assert_eq!(s.connected_at, None); // outbound: no CustomerAccepted
    assert_eq!(s.ring_ms, Some(2_000)); // 1763900503000 - 1763900501000
    assert_eq!((s.queue_ms, s.wait_ms, s.dial_ms), (None, None, None));
    assert_eq!((s.hold_ms, s.talk_ms, s.handle_ms), (None, None, None));
    assert_eq!(s.ended_at, Some(1_763_900_533_000));
    assert_eq!(s.outcome, Outcome::Unanswered);
    assert_eq!(s.hangup_initiator.as_deref(), Some("SYSTEM"));
    assert_eq!(
        s.call_hangup_reason.as_deref(),
        Some("CEC_DISCONNECT_NOANSWER")
    );
    assert_eq!(s.disposition_code.as_deref(), Some("NO_ANSWER"));
    assert_eq!(s.event_count, 4);
    assert!(s.anomalies.is_empty());
}

#[test]
fn json_names_order_and_nulls() {
    let json = serde_json::to_string(&sample_summary(GUID1)).unwrap();
    let expected = concat!(
        r#"{"interactionGUID":"int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01","#,
        r#""contactId":"int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01","#,
        r#""legIndex":0,"parentGuid":null,"kind":"inbound","#,
        r#""tenant":"northwind01","mediaType":"phone","queueId":311,"direction":"in","#,
        r#""createdAt":1763900000000,"queuedAt":1763900002000,"offeredAt":1763900002000,"#,
        r#""offerCount":2,"rejectCount":1,"rejectTimeouts":1,"rejectRefusals":0,"acceptedAt":1763900081000,"assignedAt":1763900075000,"#,
        r#""agentId":"agR2t9LmQx7VbN3cZk5WpYe","connectedAt":1763900081000,"#,
        r#""wrapStartAt":1763900402000,"wrapEndAt":1763900431000,"endedAt":1763900402000,"#,
        r#""holdCount":1,"holdMs":45000,"maxHoldMs":45000,"queueMs":73000,"ringMs":6000,"waitMs":79000,"#,
        r#""dialMs":null,"talkMs":276000,"wrapMs":29000,"handleMs":350000,"abandonMs":null,"#,
        r#""outcome":"answered","hangupInitiator":"CUSTOMER","#,
        r#""callHangupReason":"CEC_DISCONNECT_NORMAL","dispositionCode":"1000","#,
        r#""transferred":false,"complete":true,"eventCount":13,"anomalies":[]}"#
    );
    assert_eq!(json, expected);
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sample_summary(GUID1));
}

#[test]
fn stored_round_trip() {
    use crate::codec::{decode_summary, encode_summary};
    let mut buf = Vec::new();
    for guid in [GUID1, GUID2, GUID3] {
        let s = sample_summary(guid);
        encode_summary(guid, s.clone(), &mut buf).unwrap();
        // The key's GUID, the contact and the epochs are not repeated.
        assert!(buf.len() < 100, "{} bytes", buf.len());
        assert_eq!(decode_summary(guid, s.offered_at, &buf).unwrap(), s);
    }
    // Instants at any distance from offeredAt, and a GUID other than the
    // key's, survive.
    let mut odd = sample_summary(GUID1);
    odd.created_at = Some(i64::MIN);
    odd.ended_at = Some(i64::MAX);
    odd.offered_at = -5;
    odd.interaction_guid = None;
    odd.contact_id = None;
    // Texts that are not the GUID's tenant or a common word are spelled out.
    odd.tenant = Some("northwind02".into());
    odd.media_type = Some("fax".into());
    odd.hangup_initiator = Some("".into());
    odd.call_hangup_reason = Some("phone".into());
    encode_summary(GUID2, odd.clone(), &mut buf).unwrap();
    assert_eq!(decode_summary(GUID2, -5, &buf).unwrap(), odd);
}

/// The leg a report keeps of a stored summary, decoded alone, is the
/// summary's own (`ReportLeg::of`) with `first_leg` told by its parent: for
/// legs with and without a parent (itself, another), a GUID other than the
/// key's, none, and channels spelled, common or the GUID's suffix.
#[test]
fn a_stored_leg_decodes_as_its_summary_reads() {
    use crate::codec::{decode_report_leg, encode_guid, encode_summary};
    use crate::report::ReportLeg;
    let mut cases = Vec::new();
    for guid in [GUID1, GUID2, GUID3] {
        let s = sample_summary(guid);
        let suffix = guid.rsplit_once('-').map(|(_, t)| t.to_owned());
        for parent in [None, Some(guid.to_owned()), Some(GUID2.to_owned())] {
            for media in [
                s.media_type.clone(),
                Some("fax".into()),
                suffix.clone(),
                None,
            ] {
                for own in [Some(guid.to_owned()), Some(GUID3.to_owned()), None] {
                    let mut c = s.clone();
                    c.parent_guid = parent.clone();
                    c.media_type = media.clone();
                    c.contact_id = own.clone();
                    c.interaction_guid = own;
                    cases.push((guid, c));
                }
            }
        }
    }
    let (mut buf, mut key) = (Vec::new(), Vec::new());
    let mut openers = [0, 0];
    for (guid, s) in cases {
        encode_summary(guid, s.clone(), &mut buf).unwrap();
        encode_guid(guid, s.offered_at, &mut key);
        let stored = decode_report_leg(&key, s.offered_at, &buf).unwrap();
        let mut want = ReportLeg::of(&s);
        want.first_leg = match (&s.interaction_guid, &s.parent_guid) {
            (Some(g), Some(p)) => g == p,
            _ => true,
        };
        openers[usize::from(want.first_leg)] += 1;
        assert_eq!(stored.leg(), want, "{guid}: {s:?}");
    }
    assert!(openers[0] > 0 && openers[1] > 0, "{openers:?}");
    // A damaged value is an error, not a leg.
    let s = sample_summary(GUID1);
    encode_summary(GUID1, s.clone(), &mut buf).unwrap();
    encode_guid(GUID1, s.offered_at, &mut key);
    for cut in 0..buf.len() {
        assert!(decode_report_leg(&key, s.offered_at, &buf[..cut]).is_err());
    }
}

#[test]
fn stored_summaries_refuse_a_resolved_contact_and_bad_bytes() {
    use crate::codec::{decode_summary, encode_summary};
    let mut s = sample_summary(GUID1);
    s.leg_index = 1;
    let err = encode_summary(GUID1, s, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains(GUID1), "{err}");

    let s = sample_summary(GUID1);
    let mut buf = Vec::new();
    encode_summary(GUID1, s.clone(), &mut buf).unwrap();
    for cut in [0, 1, buf.len() / 2, buf.len() - 1] {
        assert!(decode_summary(GUID1, s.offered_at, &buf[..cut]).is_err());
    }
    buf.push(0);
    let err = decode_summary(GUID1, s.offered_at, &buf).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
}

#[test]
fn report_chunks_round_trip_and_refuse_bad_bytes() {
    use crate::codec::{encode_report_chunk, for_each_report_leg, CodecError};
    use crate::report::ReportLeg;
    fn decode_report_chunk(bytes: &[u8]) -> Result<Vec<ReportLeg<'_>>, CodecError> {
        let mut legs = Vec::new();
        for_each_report_leg(bytes, |l| legs.push(l))?;
        Ok(legs)
    }
    let summaries: Vec<Summary> = [GUID1, GUID2, GUID3].map(sample_summary).to_vec();
    let mut legs: Vec<ReportLeg> = summaries.iter().map(ReportLeg::of).collect();
    // Every kind, outcome, direction and flag, extreme instants and
    // durations, texts absent or repeated.
    let mut odd = legs[0];
    odd.offered_at = i64::MIN;
    odd.kind = LegKind::Unqueued;
    odd.outcome = Outcome::Open;
    odd.direction = Some(Direction::Out);
    odd.first_leg = false;
    odd.has_parent = true;
    odd.transferred = true;
    odd.queue_id = Some(i64::MIN);
    odd.agent_id = None;
    odd.media_type = Some("fax");
    odd.wait_ms = Some(i64::MAX);
    odd.abandon_ms = Some(-1);
    odd.max_hold_ms = None;
    odd.hold_count = u64::MAX;
    legs.push(odd);
    let mut late = legs[1];
    late.offered_at = i64::MAX;
    late.kind = LegKind::Consult;
    late.outcome = Outcome::Ended;
    late.direction = None;
    legs.push(late);
    let mut buf = Vec::new();
    encode_report_chunk(&legs, &mut buf).unwrap();
    assert_eq!(decode_report_chunk(&buf).unwrap(), legs);
    encode_report_chunk(&[], &mut buf).unwrap();
    assert_eq!(decode_report_chunk(&buf).unwrap(), Vec::new());

    encode_report_chunk(&legs[..3], &mut buf).unwrap();
    // A few bytes a leg: its texts are the chunk's, its instant a delta.
    assert!(buf.len() < 3 * 40 + 80, "{} bytes", buf.len());
    for cut in [0, 1, buf.len() / 2, buf.len() - 1] {
        assert!(decode_report_chunk(&buf[..cut]).is_err());
    }
    let mut trailing = buf.clone();
    trailing.push(0);
    let err = decode_report_chunk(&trailing).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
    // Any byte changed decodes to something or fails; it never panics.
    for i in 0..buf.len() {
        for x in [1u8, 0x80, 0xff] {
            let mut bad = buf.clone();
            bad[i] ^= x;
            let _ = decode_report_chunk(&bad);
        }
    }
}

#[test]
fn anomaly_names_sort_as_strings() {
    let mut by_name = Anomaly::ALL.to_vec();
    by_name.sort_by_key(|a| a.as_str());
    assert_eq!(by_name, Anomaly::ALL.to_vec());
    for a in Anomaly::ALL {
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            format!("\"{}\"", a.as_str())
        );
    }
}

// --- Reading and ordering ------------------------------------------------

#[test]
fn nothing_to_summarize() {
    assert_eq!(summarize(&[]), None);
    assert_eq!(summarize(&inputs(&[b"not json", b"[1]"])), None);
}

#[test]
fn non_events_and_duplicates_are_ignored() {
    let created = ev("InteractionCreated", T0, "");
    let s = summarize(&inputs(&[
        created.as_bytes(),
        b"{oops",
        created.as_bytes(),
        created.as_bytes(),
    ]))
    .unwrap();
    assert_eq!(s.event_count, 1);
}

#[test]
fn duplicates_timed_by_the_record_keep_the_earliest_copy() {
    // No time in the payload: t(e) comes from the record; copies differ.
    let raw =
        br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"g-x","msgInfo":{}}}"#;
    let rec = |ingest_ms| EventInput {
        payload: raw,
        publish_time: None,
        ingest_ms,
        live: false,
        topic_tenant: None,
    };
    let a = summarize(&[rec(9_000), rec(5_000)]).unwrap();
    let b = summarize(&[rec(5_000), rec(9_000)]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.created_at, Some(5_000));
    assert_eq!(a.event_count, 1);
}

#[test]
fn among_copies_the_best_rule_gives_the_time_not_the_smallest_value() {
    // One time-less payload held by four records: imported (weak, the
    // earliest value), received live, and published twice. §2: the first
    // rule any copy has (publishTime) with its smallest value, in any order.
    let raw =
        br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"g-c","msgInfo":{}}}"#;
    let rec = |publish_time, ingest_ms, live| EventInput {
        payload: raw,
        publish_time,
        ingest_ms,
        live,
        topic_tenant: None,
    };
    let copies = [
        rec(None, 1_000, false),
        rec(None, 2_000, true),
        rec(Some("2025-11-23T12:13:50.000Z"), 3_000, true),
        rec(Some("2025-11-23T12:13:40.000Z"), 4_000, true),
    ];
    let mut order: Vec<usize> = (0..copies.len()).collect();
    let want = Some(1_763_900_020_000);
    loop {
        let inputs: Vec<EventInput> = order.iter().map(|&i| copies[i]).collect();
        let s = summarize(&inputs).unwrap();
        assert_eq!(s.queued_at, want, "copies in the order {order:?}");
        assert_eq!(s.event_count, 1);
        if !next_permutation(&mut order) {
            break;
        }
    }
    // Without the envelopes, the live receipt outranks the earlier import.
    let s = summarize(&[copies[0], copies[1]]).unwrap();
    assert_eq!(s.queued_at, Some(2_000));
}

/// The next permutation in lexicographic order; `false` after the last.
fn next_permutation(v: &mut [usize]) -> bool {
    let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
        return false;
    };
    let j = (i..v.len()).rev().find(|&j| v[j] > v[i - 1]).unwrap();
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}

#[test]
fn empty_msg_info_and_missing_interaction_ts_fall_back() {
    // No interactionEventTS: eventTS (seconds); then publishTime; then ingest.
    let queued = br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"g-a","eventTS":1763900002,"msgInfo":{}}}"#;
    let created =
        br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"g-a","msgInfo":{}}}"#;
    let deleted =
        br#"{"Interaction":{"event":"InteractionDeleted","interactionGUID":"g-a","msgInfo":{}}}"#;
    let s = summarize(&[
        EventInput {
            payload: queued,
            publish_time: None,
            ingest_ms: 1,
            live: false,
            topic_tenant: None,
        },
        EventInput {
            payload: created,
            publish_time: Some("2025-11-23T12:13:20.000Z"),
            ingest_ms: 1,
            live: false,
            topic_tenant: None,
        },
        EventInput {
            payload: deleted,
            publish_time: None,
            ingest_ms: 1_763_900_010_500,
            live: false,
            topic_tenant: None,
        },
    ])
    .unwrap();
    assert_eq!(s.queued_at, Some(1_763_900_002_000));
    assert_eq!(s.created_at, Some(1_763_900_000_000));
    assert_eq!(s.ended_at, Some(1_763_900_010_500));
    assert_eq!(s.outcome, Outcome::Abandoned);
    assert_eq!(s.abandon_ms, Some(8_500));
}

#[test]
fn ties_in_one_second_follow_rank_then_sequence() {
    // Same second, no sequenceId: rank puts Assigned (2) before Accepted (4)
    // whatever the input order.
    let s = sum(&[
        ev("InteractionAccepted", T0, r#""agentId":"a1""#),
        ev("InteractionAssigned", T0, r#""agentId":"a1""#),
        ev("InteractionCreated", T0, ""),
    ]);
    assert_eq!(s.assigned_at, Some(T0 * 1000));
    assert_eq!(s.ring_ms, Some(0));
    assert!(s.anomalies.is_empty());

    // A sequenceId outranks the lifecycle rank: the Accepted (seq 5) comes
    // before the Assigned (seq 6), so no offer precedes the accept.
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev(
            "InteractionAssigned",
            T0,
            r#""agentId":"a1","msgInfo":{"sequenceId":6}"#,
        ),
        ev(
            "InteractionAccepted",
            T0,
            r#""agentId":"a1","msgInfo":{"sequenceId":5}"#,
        ),
    ]);
    assert_eq!(s.assigned_at, None);
    assert_eq!(s.agent_id.as_deref(), Some("a1"));
    assert_eq!(s.anomalies, vec![Anomaly::AcceptedWithoutAssigned]);

    // Events with a sequenceId come before events without one.
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionAssigned", T0, r#""agentId":"a1""#),
        ev(
            "InteractionAccepted",
            T0,
            r#""agentId":"a1","msgInfo":{"sequenceId":1}"#,
        ),
    ]);
    assert_eq!(s.anomalies, vec![Anomaly::AcceptedWithoutAssigned]);
}

#[test]
fn ties_of_equal_rank_break_by_raw_bytes() {
    // Two hold events in one second: `"status":false` sorts before
    // `"status":true` byte-wise, so the hold starts last and runs to talk end.
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0, ""),
        ev("InteractionAssigned", T0 + 1, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 2, r#""agentId":"a1""#),
        ev("LineHoldStatus", T0 + 10, r#""status":true"#),
        ev("LineHoldStatus", T0 + 10, r#""status":false"#),
        ev("InteractionDeleted", T0 + 30, ""),
    ]);
    assert_eq!(s.hold_count, 1);
    assert_eq!(s.hold_ms, Some(20_000)); // ends at talkEndAt = endedAt
    assert_eq!(s.talk_ms, Some(8_000)); // (30 - 2) s - 20 s
}

#[test]
fn text_typed_numbers_and_booleans() {
    let s = sum(&[
        ev("InteractionCreated", T0, r#""queueId":"abc""#),
        // interactionEventTS as text, queueId with a leading zero.
        r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-t-phone-00-acme01","interactionEventTS":"1763900001","queueId":"0311"}}"#.to_string(),
        ev("InteractionAssigned", T0 + 2, r#""agentId":1234"#),
        ev("InteractionAccepted", T0 + 3, ""),
        ev("LineHoldStatus", T0 + 5, r#""status":"TRUE""#),
        ev("LineHoldStatus", T0 + 6, r#""status":"pause""#), // not a flag: ignored
        ev("LineHoldStatus", T0 + 8, r#""status":"no""#),
        ev("LineHoldStatus", T0 + 9, r#""status":1"#),
        ev("LineHoldStatus", T0 + 10, r#""status":"0""#),
        ev("InteractionDeleted", T0 + 20, r#""dispositionCode":"0311""#),
    ]);
    assert_eq!(s.queue_id, Some(311)); // first value that reads as a number
    assert_eq!(s.queued_at, Some(1_763_900_001_000));
    assert_eq!(s.agent_id.as_deref(), Some("1234")); // agentId read as text
    assert_eq!(s.hold_count, 2);
    assert_eq!(s.hold_ms, Some(4_000)); // 5..8 and 9..10
    assert_eq!(s.max_hold_ms, Some(3_000)); // 5..8
    assert_eq!(s.disposition_code.as_deref(), Some("0311")); // stays text
    assert_eq!(s.direction, Some(Direction::In)); // type InteractionQueued
}

#[test]
fn outbound_flag_as_text_and_direction_is_exact_text() {
    let s = sum(&[
        ev("InteractionCreated", T0, r#""isOutboundCall":"yes""#),
        ev("InteractionDeleted", T0 + 5, ""),
    ]);
    assert_eq!(s.direction, Some(Direction::Out));
    assert_eq!(s.outcome, Outcome::Unanswered);

    let s = sum(&[
        ev("InteractionCreated", T0, r#""direction":"OUT""#),
        ev("InteractionDeleted", T0 + 5, ""),
    ]);
    assert_eq!(s.direction, None);
    assert_eq!(s.outcome, Outcome::Ended);
}

// --- Holds ---------------------------------------------------------------

fn answered_with(extra: Vec<String>) -> Summary {
    let mut events = vec![
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, r#""queueId":7"#),
        ev("InteractionAssigned", T0 + 2, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 4, r#""agentId":"a1""#),
    ];
    events.extend(extra);
    sum(&events)
}

#[test]
fn hold_left_open_ends_at_wrap_start() {
    let s = answered_with(vec![
        ev("LineHoldStatus", T0 + 10, r#""status":true"#),
        ev("LineHoldStatus", T0 + 12, r#""status":true"#), // already on hold
        ev("InteractionPostProcess", T0 + 40, ""),
        ev(
            "InteractionEndPostProcess",
            T0 + 50,
            r#""dispositionCode":7"#,
        ),
        ev("InteractionDeleted", T0 + 60, ""),
    ]);
    assert_eq!(s.hold_count, 1);
    assert_eq!(s.hold_ms, Some(30_000)); // 10 s .. wrapStartAt 40 s
    assert_eq!(s.max_hold_ms, Some(30_000)); // left open: measured to wrapStartAt
    assert_eq!(s.talk_ms, Some(6_000)); // (40 - 4) s - 30 s
    assert_eq!(s.wrap_ms, Some(10_000));
    assert_eq!(s.handle_ms, Some(46_000)); // 6 + 30 + 10
    assert_eq!(s.disposition_code.as_deref(), Some("7")); // from EndPostProcess
    assert!(s.anomalies.is_empty());
}

#[test]
fn hold_outside_talk_is_an_anomaly_and_not_counted() {
    let s = answered_with(vec![
        ev("LineHoldStatus", T0 + 3, r#""status":true"#), // before connectedAt
        ev("LineHoldStatus", T0 + 20, r#""status":true"#),
        ev("LineHoldStatus", T0 + 25, r#""status":false"#),
        ev("InteractionPostProcess", T0 + 30, ""),
        ev("LineHoldStatus", T0 + 31, r#""status":false"#), // after talkEndAt
    ]);
    assert_eq!(s.hold_count, 1);
    assert_eq!(s.hold_ms, Some(5_000));
    assert_eq!(s.anomalies, vec![Anomaly::HoldOutsideTalk]);
    // Without a talk end there is no window: holdMs is null.
    let s = answered_with(vec![ev("LineHoldStatus", T0 + 20, r#""status":true"#)]);
    assert_eq!((s.hold_count, s.hold_ms, s.talk_ms), (0, None, None));
    assert_eq!(s.max_hold_ms, None);
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.anomalies, vec![Anomaly::HoldOutsideTalk]);
}

#[test]
fn longest_hold_is_one_hold_not_their_sum() {
    // 30 s, then 90 s, then one left open for 20 s until the Deleted.
    let s = answered_with(vec![
        ev("LineHoldStatus", T0 + 10, r#""status":true"#),
        ev("LineHoldStatus", T0 + 40, r#""status":false"#),
        ev("LineHoldStatus", T0 + 50, r#""status":true"#),
        ev("LineHoldStatus", T0 + 140, r#""status":false"#),
        ev("LineHoldStatus", T0 + 150, r#""status":true"#),
        ev("InteractionDeleted", T0 + 170, ""),
    ]);
    assert_eq!(s.hold_count, 3);
    assert_eq!(s.hold_ms, Some(140_000));
    assert_eq!(s.max_hold_ms, Some(90_000));
    assert!(s.anomalies.is_empty());

    // Talked without a hold: nothing to measure, while holdMs is 0.
    let s = answered_with(vec![ev("InteractionDeleted", T0 + 30, "")]);
    assert_eq!((s.hold_count, s.hold_ms, s.max_hold_ms), (0, Some(0), None));

    // A hold opened exactly at the end of talk counts with 0 ms.
    let s = answered_with(vec![
        ev("LineHoldStatus", T0 + 30, r#""status":true"#),
        ev("InteractionDeleted", T0 + 30, ""),
    ]);
    assert_eq!(
        (s.hold_count, s.hold_ms, s.max_hold_ms),
        (1, Some(0), Some(0))
    );
}

// --- Offers --------------------------------------------------------------

#[test]
fn rejected_offers_then_another_agent_accepts() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionAssigned", T0 + 5, r#""agentId":"a1""#),
        ev(
            "InteractionRejected",
            T0 + 20,
            r#""agentId":"a1","rejectReason":1"#,
        ),
        ev("InteractionAssigned", T0 + 25, r#""agentId":"a2""#),
        ev(
            "InteractionRejected",
            T0 + 30,
            r#""agentId":"a2","rejectReason":2"#,
        ),
        ev("InteractionAssigned", T0 + 32, r#""agentId":"a3""#),
        ev("InteractionAccepted", T0 + 40, ""), // no agentId: the offer's
        ev("InteractionAssigned", T0 + 50, r#""agentId":"a4""#), // after: not the answering offer
    ]);
    assert_eq!(s.offer_count, 4);
    assert_eq!(s.reject_count, 2);
    assert_eq!(s.assigned_at, Some((T0 + 32) * 1000));
    assert_eq!(s.agent_id.as_deref(), Some("a3"));
    assert_eq!(s.queue_ms, Some(31_000)); // 32 - 1
    assert_eq!(s.ring_ms, Some(8_000)); // 40 - 32
    assert_eq!(s.wait_ms, Some(39_000)); // 40 - 1, rejected offers included
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.hold_ms, None); // no talk end yet
    assert_eq!(s.talk_ms, None);
    assert!(!s.complete);
}

#[test]
fn accepted_without_assigned() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionAccepted", T0 + 4, r#""agentId":"a1""#),
        ev("InteractionAssigned", T0 + 5, r#""agentId":"a2""#),
    ]);
    assert_eq!(s.assigned_at, None);
    assert_eq!(s.agent_id.as_deref(), Some("a1"));
    assert_eq!(
        (s.queue_ms, s.ring_ms, s.wait_ms),
        (None, None, Some(3_000))
    );
    assert_eq!(s.anomalies, vec![Anomaly::AcceptedWithoutAssigned]);
}

// --- Abandons and outcomes -----------------------------------------------

#[test]
fn abandon_uses_unqueued_else_last_deleted() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionUnqueued", T0 + 4, ""),
        ev("InteractionDeleted", T0 + 9, ""),
    ]);
    assert_eq!((s.outcome, s.abandon_ms), (Outcome::Abandoned, Some(3_000)));

    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionDeleted", T0 + 7, ""),
        ev(
            "InteractionDeleted",
            T0 + 9,
            r#""hangupInitiator":"CUSTOMER""#,
        ),
    ]);
    assert_eq!((s.outcome, s.abandon_ms), (Outcome::Abandoned, Some(8_000)));
    assert_eq!(s.ended_at, Some((T0 + 9) * 1000)); // the last Deleted
    assert_eq!(s.hangup_initiator.as_deref(), Some("CUSTOMER"));

    // Unqueued without a Deleted is already an abandon (still open).
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionUnqueued", T0 + 2, ""),
    ]);
    assert_eq!((s.outcome, s.complete), (Outcome::Abandoned, false));
}

#[test]
fn outcomes_without_a_queue() {
    let s = sum(&[ev("InteractionCreated", T0, "")]);
    assert_eq!(s.outcome, Outcome::Open);
    assert_eq!(s.direction, None);
    let s = sum(&[
        ev("InteractionCreated", T0, r#""direction":"in""#),
        ev("InteractionDeleted", T0 + 2, ""),
    ]);
    assert_eq!(s.outcome, Outcome::Ended); // inbound but never queued
}

#[test]
fn outbound_answered_has_dial_time() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev(
            "InteractionAssigned",
            T0 + 1,
            r#""agentId":"a1","direction":"out""#,
        ),
        ev("InteractionAccepted", T0 + 2, r#""agentId":"a1""#),
        ev("InteractionCustomerAccepted", T0 + 9, ""),
        ev("InteractionPostProcess", T0 + 69, ""),
        ev("InteractionEndPostProcess", T0 + 80, ""),
        ev(
            "InteractionDeleted",
            T0 + 70,
            r#""hangupInitiator":"AGENT""#,
        ),
    ]);
    assert_eq!(s.direction, Some(Direction::Out));
    assert_eq!(s.connected_at, Some((T0 + 9) * 1000)); // CustomerAccepted
    assert_eq!(s.dial_ms, Some(7_000)); // 9 - 2
    assert_eq!(s.talk_ms, Some(60_000)); // 69 - 9
    assert_eq!(s.wrap_ms, Some(11_000));
    assert_eq!(s.handle_ms, Some(71_000));
    assert_eq!(s.wait_ms, None); // never queued
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.offered_at, T0 * 1000); // createdAt

    // The type alone makes it outbound.
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0, ""),
        ev("InteractionCustomerAccepted", T0 + 3, ""),
    ]);
    assert_eq!(s.direction, Some(Direction::Out));
    assert_eq!(s.connected_at, Some((T0 + 3) * 1000));
    assert_eq!(s.dial_ms, None); // no acceptedAt
}

#[test]
fn outbound_no_answer_is_unanswered() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev(
            "InteractionAssigned",
            T0 + 1,
            r#""agentId":"a1","isOutboundCall":true"#,
        ),
        ev("InteractionAccepted", T0 + 2, r#""agentId":"a1""#),
        ev("InteractionQueued", T0 + 1, ""), // queued, yet outbound
        ev("InteractionDeleted", T0 + 30, ""),
    ]);
    assert_eq!(s.outcome, Outcome::Unanswered);
    assert_eq!(s.abandon_ms, None);
    assert_eq!(s.dial_ms, None);
}

#[test]
fn events_after_deleted() {
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionAssigned", T0 + 2, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 3, r#""agentId":"a1""#),
        ev("InteractionDeleted", T0 + 20, r#""dispositionCode":"A""#),
        // Late: a hold after the call ended, wrap-up after the delete.
        ev("LineHoldStatus", T0 + 21, r#""status":true"#),
        ev("InteractionPostProcess", T0 + 22, ""),
        ev(
            "InteractionEndPostProcess",
            T0 + 40,
            r#""dispositionCode":"B""#,
        ),
        ev("InteractionTransferRequest", T0 + 41, ""),
    ]);
    // PostProcess exists, so talk ends at wrapStartAt (22), not endedAt (20);
    // the hold at 21 lies inside [3, 22].
    assert_eq!(s.wrap_start_at, Some((T0 + 22) * 1000));
    assert_eq!(s.hold_ms, Some(1_000));
    assert_eq!(s.talk_ms, Some(18_000)); // (22 - 3) - 1
    assert_eq!(s.wrap_ms, Some(18_000));
    assert_eq!(s.disposition_code.as_deref(), Some("A")); // the Deleted's first
    assert!(s.transferred);
    assert!(s.complete);
    assert!(s.anomalies.is_empty());
}

#[test]
fn wrap_end_is_the_first_end_after_wrap_start() {
    let s = answered_with(vec![
        ev("InteractionEndPostProcess", T0 + 5, ""), // before wrap start
        ev("InteractionPostProcess", T0 + 10, ""),
        ev("InteractionEndPostProcess", T0 + 15, ""),
        ev("InteractionEndPostProcess", T0 + 19, ""),
    ]);
    assert_eq!(s.wrap_end_at, Some((T0 + 15) * 1000));
    assert_eq!(s.wrap_ms, Some(5_000));
}

#[test]
fn negative_durations_are_null_with_an_anomaly() {
    // Assigned and Accepted stamped before the Queued (clock skew).
    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 10, ""),
        ev("InteractionAssigned", T0 + 2, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 4, r#""agentId":"a1""#),
        ev("InteractionDeleted", T0 + 3, ""), // talk end before connect
    ]);
    assert_eq!(s.queue_ms, None);
    assert_eq!(s.wait_ms, None);
    assert_eq!(s.ring_ms, Some(2_000));
    assert_eq!(s.talk_ms, None);
    assert_eq!(s.handle_ms, None);
    assert_eq!(s.hold_ms, Some(0));
    assert_eq!(
        s.anomalies,
        vec![
            Anomaly::NegativeQueueMs,
            Anomaly::NegativeTalkMs,
            Anomaly::NegativeWaitMs
        ]
    );

    let s = sum(&[
        ev("InteractionCreated", T0, ""),
        ev("InteractionQueued", T0 + 10, ""),
        ev("InteractionUnqueued", T0 + 5, ""),
    ]);
    assert_eq!((s.outcome, s.abandon_ms), (Outcome::Abandoned, None));
    assert_eq!(s.anomalies, vec![Anomaly::NegativeAbandonMs]);

    let s = sum(&[
        ev("InteractionCreated", T0, r#""direction":"out""#),
        ev("InteractionAssigned", T0 + 1, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 9, r#""agentId":"a1""#),
        ev("InteractionCustomerAccepted", T0 + 5, ""),
    ]);
    assert_eq!(s.dial_ms, None);
    assert_eq!(s.anomalies, vec![Anomaly::NegativeDialMs]);
}

#[test]
fn missing_created() {
    let s = sum(&[
        ev("InteractionQueued", T0 + 1, ""),
        ev("InteractionDeleted", T0 + 2, ""),
    ]);
    assert_eq!(s.created_at, None);
    assert_eq!(s.offered_at, (T0 + 1) * 1000);
    assert_eq!(s.anomalies, vec![Anomaly::MissingCreated]);
    // Neither queued nor created: the first event's time.
    let s = sum(&[
        ev("InteractionDeleted", T0 + 7, ""),
        ev("RecordingStatus", T0 + 6, ""),
    ]);
    assert_eq!(s.offered_at, (T0 + 6) * 1000);
}

#[test]
fn tenant_from_topic_else_guid_suffix() {
    let created = ev("InteractionCreated", T0, "");
    let deleted = ev("InteractionDeleted", T0 + 1, "");
    let mut recs = inputs(&[created.as_bytes(), deleted.as_bytes()]);
    assert_eq!(summarize(&recs).unwrap().tenant.as_deref(), Some("acme01"));
    recs[1].topic_tenant = Some("fromtopic");
    assert_eq!(
        summarize(&recs).unwrap().tenant.as_deref(),
        Some("fromtopic")
    );
    let no_dash = br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"nodash","interactionEventTS":5}}"#;
    assert_eq!(summarize(&inputs(&[no_dash])).unwrap().tenant, None);
}

#[test]
fn the_column_list_is_the_serde_field_list() {
    let cols: Vec<_> = SUMMARY_COLUMNS.iter().collect();
    // Every sample summary: nulls, lists and both directions are all met.
    for guid in [GUID1, GUID2, GUID3] {
        crate::columns::assert_columns_match_serde(&cols, &sample_summary(guid));
    }
    let mut s = sample_summary(GUID2);
    s.anomalies = vec![Anomaly::MissingCreated, Anomaly::NegativeRingMs];
    s.direction = Some(Direction::Out);
    crate::columns::assert_columns_match_serde(&cols, &s);
}

#[test]
fn csv_rows_carry_every_column_as_json_prints_it() {
    let mut s = sample_summary(GUID1);
    s.disposition_code = Some("a,\"b\"".into());
    s.anomalies = vec![Anomaly::HoldOutsideTalk, Anomaly::MissingCreated];
    let mut w = crate::columns::CsvWriter::new(Vec::new(), &SUMMARY_COLUMNS).unwrap();
    w.write(&s).unwrap();
    let text = String::from_utf8(w.finish().unwrap()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keys: Vec<&str> = SUMMARY_COLUMNS.iter().map(|c| c.key).collect();
    assert_eq!(header, keys);
    let row = lines.next().unwrap();
    assert!(row.starts_with(&format!(
        "{GUID1},{GUID1},0,,inbound,northwind01,phone,311,in,1763900000000,"
    )));
    assert!(row.ends_with(
        ",CUSTOMER,CEC_DISCONNECT_NORMAL,\"a,\"\"b\"\"\",false,true,13,hold_outside_talk;missing_created"
    ));
    assert!(row.contains(",73000,6000,79000,,276000,"), "{row}");
    assert_eq!(lines.next(), None);
}

#[test]
fn the_human_listing_shows_the_labelled_columns() {
    let header = listing_header();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "GUID", "KIND", "CHANNEL", "QUEUE", "DIR", "OFFERED", "AGENT", "WAIT", "TALK",
            "HANDLE", "OUTCOME"
        ]
    );
    let row = listing_row(&sample_summary(GUID1), None);
    assert!(row.starts_with(GUID1), "{row}");
    assert!(row.contains("2025-11-23T12:13:22.000Z"), "{row}");
    assert!(row.ends_with("answered"), "{row}");
    assert!(row.contains("1m 19s"), "{row}");
}
