//! The per-leg rules of docs/METRICS.md §3 (v2): parent link, kind,
//! channel, reject reasons, and the rank of InteractionDeassigned, on
//! hand-made events and on the 8x8 documentation's example events.

use super::*;
use crate::test_util::*;

const T0: i64 = 1_763_900_000;
const OWN: &str = "int-t-phone-00-acme01";
const PARENT: &str = "int-p-phone-00-acme01";

fn sum(events: &[String]) -> Summary {
    let raws: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    summarize(&inputs(&raws)).unwrap()
}

fn attached(key: &str, value: &str) -> String {
    format!(
        r#""attachedData":{{"attachedDatum":[{{"attachedDataKey":"@pri","attachedDataValue":100}},{{"attachedDataKey":"{key}","attachedDataValue":"{value}"}}]}}"#
    )
}

#[test]
fn parent_from_attached_data_or_a_body_field() {
    let s = sum(&[
        ev(
            "InteractionCreated",
            T0,
            &attached("originalInteractionGuid", PARENT),
        ),
        ev("InteractionDeleted", T0 + 5, ""),
    ]);
    assert_eq!(s.parent_guid.as_deref(), Some(PARENT));
    assert_eq!(s.kind, LegKind::Consult);

    let body = format!(r#""originalInteractionGuid":"{PARENT}""#);
    let s = sum(&[ev("InteractionCreated", T0, &body)]);
    assert_eq!(s.parent_guid.as_deref(), Some(PARENT));

    // Another datum key, or an empty value, is no parent.
    let s = sum(&[
        ev(
            "InteractionCreated",
            T0,
            &attached("originalTokenId", PARENT),
        ),
        ev(
            "InteractionDeleted",
            T0 + 5,
            &attached("originalInteractionGuid", ""),
        ),
    ]);
    assert_eq!(s.parent_guid, None);
    assert_eq!(s.kind, LegKind::Unqueued);
}

#[test]
fn parent_is_the_first_original_guid_that_is_not_the_leg_itself() {
    let s = sum(&[
        ev(
            "InteractionCreated",
            T0,
            &attached("originalInteractionGuid", OWN),
        ),
        ev(
            "InteractionQueued",
            T0 + 1,
            &attached("originalInteractionGuid", PARENT),
        ),
        ev(
            "InteractionDeleted",
            T0 + 9,
            &attached("originalInteractionGuid", "int-later"),
        ),
    ]);
    assert_eq!(s.parent_guid.as_deref(), Some(PARENT));
    // A leg that only names itself has no parent.
    let s = sum(&[ev(
        "InteractionCreated",
        T0,
        &attached("originalInteractionGuid", OWN),
    )]);
    assert_eq!(s.parent_guid, None);
    // Odd shapes of attachedData read as absent and never fail the event.
    for odd in [
        r#""attachedData":"x""#,
        r#""attachedData":{"attachedDatum":7}"#,
        r#""attachedData":{"attachedDatum":[1,[2],{"attachedDataKey":5}]}"#,
    ] {
        let s = sum(&[ev("InteractionCreated", T0, odd)]);
        assert_eq!(s.parent_guid, None, "{odd}");
        assert_eq!(s.event_count, 1);
    }
    // One entry object instead of a list reads as a list of one.
    let one = format!(
        r#""attachedData":{{"attachedDatum":{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{PARENT}"}}}}"#
    );
    assert_eq!(
        sum(&[ev("InteractionCreated", T0, &one)])
            .parent_guid
            .as_deref(),
        Some(PARENT)
    );
    // Several entries in one event are read in order: the first that is
    // not the leg itself (until 2026-12-06 only an event's last entry was
    // read: [own, parent] gave a parent, [parent, own] none, and [parent,
    // unarchived] linked the leg to the unarchived one).
    let entries = |guids: &[&str]| {
        let list: Vec<String> = guids
            .iter()
            .map(|g| {
                format!(
                    r#"{{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"{g}"}}"#
                )
            })
            .collect();
        format!(r#""attachedData":{{"attachedDatum":[{}]}}"#, list.join(","))
    };
    for guids in [
        &[PARENT, OWN][..],
        &[OWN, PARENT],
        &[OWN, OWN, PARENT, "int-later"],
        &[PARENT, "int-never-archived"],
    ] {
        let s = sum(&[ev("InteractionCreated", T0, &entries(guids))]);
        assert_eq!(s.parent_guid.as_deref(), Some(PARENT), "{guids:?}");
        assert_eq!(s.kind, LegKind::Consult, "{guids:?}");
    }
}

#[test]
fn kind_outbound_then_inbound_then_consult_then_unqueued() {
    let with_parent = attached("originalInteractionGuid", PARENT);
    let kind = |events: &[String]| sum(events).kind;
    // Outbound wins even when queued and linked.
    assert_eq!(
        kind(&[
            ev("InteractionCreated", T0, &with_parent),
            ev("InteractionQueued", T0 + 1, r#""direction":"out""#),
        ]),
        LegKind::Outbound
    );
    // A transferred leg that queues again is inbound.
    assert_eq!(
        kind(&[
            ev("InteractionCreated", T0, &with_parent),
            ev("InteractionQueued", T0 + 1, ""),
        ]),
        LegKind::Inbound
    );
    assert_eq!(
        kind(&[
            ev("InteractionCreated", T0, &with_parent),
            ev("InteractionAccepted", T0 + 1, r#""agentId":"a2""#),
        ]),
        LegKind::Consult
    );
    // Ended in the IVR: created with direction in, never queued.
    assert_eq!(
        kind(&[
            ev("InteractionCreated", T0, r#""direction":"in""#),
            ev("InteractionDeleted", T0 + 30, ""),
        ]),
        LegKind::Unqueued
    );
}

#[test]
fn channel_is_media_type_lower_cased_else_the_resource_type() {
    let media = |events: &[String]| sum(events).media_type;
    assert_eq!(
        media(&[
            ev("InteractionCreated", T0, r#""resourceType":1"#),
            ev("InteractionQueued", T0 + 1, r#""mediaType":"Chat""#),
        ])
        .as_deref(),
        Some("chat")
    );
    for (code, want) in [
        ("0", Some("phone")),
        ("1", Some("email")),
        ("2", Some("chat")),
        ("3", Some("chat")),
        ("4", Some("phone")),
        ("\"2\"", Some("chat")),
        ("9", None),
        ("\"x\"", None),
    ] {
        let extra = format!(r#""resourceType":{code},"mediaType":"""#);
        assert_eq!(
            media(&[ev("InteractionCreated", T0, &extra)]).as_deref(),
            want,
            "resourceType {code}"
        );
    }
    // The first resourceType that names a channel.
    assert_eq!(
        media(&[
            ev("InteractionCreated", T0, r#""resourceType":7"#),
            ev("InteractionQueued", T0 + 1, r#""resourceType":1"#),
            ev("InteractionDeleted", T0 + 2, r#""resourceType":2"#),
        ])
        .as_deref(),
        Some("email")
    );
}

#[test]
fn reject_reasons_split_timeouts_and_refusals() {
    let s = sum(&[
        ev("InteractionQueued", T0, ""),
        ev("InteractionRejected", T0 + 1, r#""rejectReason":1"#),
        ev("InteractionRejected", T0 + 2, r#""rejectReason":"2""#),
        ev(
            "InteractionRejected",
            T0 + 3,
            r#""rejectReason":2,"agentId":"b""#,
        ),
        ev("InteractionRejected", T0 + 4, r#""rejectReason":0"#),
        ev("InteractionRejected", T0 + 5, ""),
    ]);
    assert_eq!(s.reject_count, 5);
    assert_eq!(s.reject_timeouts, 1);
    assert_eq!(s.reject_refusals, 2);
}

#[test]
fn deassigned_ranks_after_end_post_process() {
    // Same second, no sequenceId: rank decides. v1 put the release with the
    // rejects (3), before the accept; v2 after the wrap-up.
    let events = [
        ev("InteractionQueued", T0, ""),
        ev("InteractionAssigned", T0 + 1, r#""agentId":"a1""#),
        ev("InteractionDeassigned", T0 + 9, r#""agentId":"a1""#),
        ev("InteractionAccepted", T0 + 9, r#""agentId":"a1""#),
        ev("InteractionPostProcess", T0 + 9, ""),
        ev("InteractionEndPostProcess", T0 + 9, ""),
        ev("InteractionDeleted", T0 + 9, ""),
    ];
    let raws: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    let tl = crate::timeline::build(&inputs(&raws)).unwrap();
    let order: Vec<&str> = tl.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        order,
        [
            "InteractionQueued",
            "InteractionAssigned",
            "InteractionAccepted",
            "InteractionPostProcess",
            "InteractionEndPostProcess",
            "InteractionDeassigned",
            "InteractionDeleted",
        ]
    );
}

// --- The 8x8 documentation's example events (event reference) ----------

/// InteractionCreated: `resourceType` 0 and no `mediaType`.
const DOC_CREATED: &str = r#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"@pri","attachedDataValue":100},{"attachedDataKey":"callingName","attachedDataValue":"Andrew Cunningh"},{"attachedDataKey":"phoneNum","attachedDataValue":5515557212}]},"callState":"CS_QUEUED","event":"InteractionCreated","interactionGUID":"int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01","msgInfo":{"instanceId":"example.8x8.com","sequenceId":220,"timestamp":1669235700000},"resourceType":0}}"#;
/// InteractionDeleted of the same interaction.
const DOC_DELETED: &str = r#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"callingName","attachedDataValue":"Andrew Cunningh"},{"attachedDataKey":"phoneNum","attachedDataValue":5515557212}]},"callHangupReason":"CEC_DISCONNECT_NORMAL","callState":"CS_DISCONNECTED","dispositionCode":1000,"event":"InteractionDeleted","hangupInitiator":"CUSTOMER","interactionGUID":"int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01","msgInfo":{"instanceId":"example.8x8.com","sequenceId":235,"timestamp":1669236000000}}}"#;
/// InteractionQueued: inbound, `mediaType` phone, no parent among nine datums.
const DOC_QUEUED: &str = r#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"@pri","attachedDataValue":100},{"attachedDataKey":"callingName","attachedDataValue":447799147855},{"attachedDataKey":"cha","attachedDataValue":441733968848},{"attachedDataKey":"channelName","attachedDataValue":"Support Queue"},{"attachedDataKey":"phoneNum","attachedDataValue":447799147855},{"attachedDataKey":"priority","attachedDataValue":50},{"attachedDataKey":"queueDirection","attachedDataValue":"in"},{"attachedDataKey":"tenantName","attachedDataValue":"tenant01"},{"attachedDataKey":"tenantSkillName","attachedDataValue":"Customer Service"}]},"callState":"CS_QUEUED","callerPermission":"yes","direction":"in","event":"InteractionQueued","eventTS":1744819217,"inboundChannelid":441733968848,"interactionEventTS":1744819217,"interactionGUID":"int-1963f541b9f-wgyWcn0J0hwtyhN4XfMHIfCIO-phone-01-tenant01","isAgentInitiated":false,"mediaType":"phone","msgInfo":{},"overrideAutoInteractionRecording":"yes","priority":50,"queueId":1162,"queueList":1162,"queueTime":1744819217,"resourceType":0,"transactionNum":848184}}"#;
/// InteractionAssigned of a queued outbound campaign call.
const DOC_ASSIGNED: &str = r#"{"Interaction":{"agentGUID":"tenant01-agAglVJkg0TU28dok9y9UQKg-e46672cd-660c-46f5-b8f0-856eaf18f65c","agentId":"agAglVJkg0TU28dok9y9UQKg","agentPhone":40375,"agentRscWaitTime":30,"agentTreatedPhone":"40375-tenant","attachedData":{"attachedDatum":[{"attachedDataKey":"@pri","attachedDataValue":50},{"attachedDataKey":"phoneNum","attachedDataValue":6298994259},{"attachedDataKey":"tenantSkillName","attachedDataValue":"Sales Queue"}]},"callState":"CS_INPROGRESS","direction":"out","event":"InteractionAssigned","eventTS":1744819092,"interactionGUID":"int-1963f527a2a-9wjz0hrkcolMxIqiOhxEsKFe9-phone-01-tenant01","isAgentInitiated":false,"isDirectAccess":false,"isExternal":true,"isOutboundCall":true,"mediaType":"phone","msgInfo":{},"outboundCampaignid":4926,"participatingAgents":"agAglVJkg0TU28dok9y9UQKg","promptingTimeout":30,"queueId":1092,"queueList":1092,"queueTime":1744819092,"recordingMode":"no","resourceType":0,"transactionNum":279563}}"#;
/// InteractionRejected: `rejectReason` 2, the agent rejected.
const DOC_REJECTED: &str = r#"{"Interaction":{"agentGUID":"tenant01-ag9I1yUNAvRqG7ovVMi3NTyw-c40cf425-5b69-4575-99a7-ccd6457b0180","agentId":"ag9I1yUNAvRqG7ovVMi3NTyw","callState":"CS_QUEUED","event":"InteractionRejected","interactionEventTS":1744819218,"interactionGUID":"int-1963f53a7f9-fRUlBL19w0hsi4GN50Xbcgazp-phone-03-tenant01","msgInfo":{},"participatingAgents":"ag9I1yUNAvRqG7ovVMi3NTyw","queueList":222,"rejectReason":2,"resourceType":0}}"#;

fn doc(lines: &[&str]) -> Summary {
    let raws: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    summarize(&inputs(&raws)).unwrap()
}

#[test]
fn doc_examples_created_and_deleted_carry_only_a_resource_type() {
    let s = doc(&[DOC_CREATED, DOC_DELETED]);
    assert_eq!(s.media_type.as_deref(), Some("phone")); // resourceType 0
    assert_eq!(s.parent_guid, None);
    assert_eq!(s.kind, LegKind::Unqueued); // never queued, no parent
    assert_eq!(s.contact_id, s.interaction_guid);
    assert_eq!(s.leg_index, 0);
    assert_eq!(s.outcome, Outcome::Ended);
}

#[test]
fn doc_example_queued_is_an_inbound_phone_leg() {
    let s = doc(&[DOC_QUEUED]);
    assert_eq!(s.media_type.as_deref(), Some("phone"));
    assert_eq!(s.kind, LegKind::Inbound);
    assert_eq!(s.parent_guid, None);
    assert_eq!(s.queue_id, Some(1162));
}

#[test]
fn doc_example_assigned_is_an_outbound_leg() {
    let s = doc(&[DOC_ASSIGNED]);
    assert_eq!(s.kind, LegKind::Outbound);
    assert_eq!(s.media_type.as_deref(), Some("phone"));
    assert_eq!(s.offer_count, 1);
}

#[test]
fn doc_example_rejected_is_a_refusal_on_a_phone_leg() {
    let s = doc(&[DOC_REJECTED]);
    assert_eq!(
        (s.reject_count, s.reject_timeouts, s.reject_refusals),
        (1, 0, 1)
    );
    assert_eq!(s.media_type.as_deref(), Some("phone")); // from resourceType 0
    assert_eq!(s.kind, LegKind::Unqueued);
}
