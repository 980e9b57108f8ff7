//! Fuzz targets for the event parser ([`parse_event`]) and the envelope
//! decoder ([`decode_message`], which also detects input shapes and control
//! messages): arbitrary bytes, generated events, and mutations of the seeds
//! in `fuzz/event/` and `fuzz/envelope/` (every seed is replayed first).
//! Neither may panic, and what they say must agree: an archived event
//! parses again to the same keys, and a bare event decodes to itself.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ccvault_event::{
    decode_message, event_time, lifecycle_rank, parse_event, parse_publish_time, parse_topic,
    Arrival, CanonicalKey, Keys,
};
use ccvault_fuzz::{config, corpus, inputs};
use proptest::prelude::*;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    corpus(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(target),
    )
}

/// Everything read from one event; none of it may panic.
fn read_all(raw: &[u8], publish_time: Option<&str>) {
    let Ok(ev) = parse_event(raw) else { return };
    let keys = Keys::of(&ev);
    let _ = lifecycle_rank(&ev.event_type());
    for live in [false, true] {
        let t = event_time(
            &ev,
            Arrival {
                publish_time,
                ingest_ms: 1_763_900_000_000,
                live,
            },
        );
        let key = CanonicalKey::new(&ev, t.ms, raw);
        assert_eq!(key.cmp(&key), std::cmp::Ordering::Equal);
    }
    assert_eq!(keys.times, ev.payload_times());
}

/// The event parser: an event is read whole, and the shape detection of
/// the envelope decoder agrees with it.
fn event_target(raw: &[u8]) {
    read_all(raw, None);
    if let Ok(ev) = parse_event(raw) {
        let d = decode_message(raw);
        assert_eq!(
            d.payload.as_ref(),
            raw,
            "a bare event is archived as received"
        );
        assert_eq!(d.outcome, Ok(Keys::of(&ev)));
        assert!(!d.control);
    }
}

/// The envelope decoder: every message gets an outcome, and an event it
/// accepts (bare or inside an envelope) parses again to the same keys.
fn envelope_target(raw: &[u8]) {
    let d = decode_message(raw);
    if d.control {
        assert!(d.outcome.is_err(), "a control message is not an event");
    }
    if let Some(t) = &d.publish_time {
        let _ = parse_publish_time(t);
    }
    match &d.outcome {
        Ok(keys) => {
            let ev = parse_event(&d.payload).unwrap_or_else(|e| {
                panic!("decode_message accepted an event parse_event refuses: {e}")
            });
            assert_eq!(&Keys::of(&ev), keys);
            read_all(&d.payload, d.publish_time.as_deref());
        }
        Err(reason) => assert!(!reason.is_empty(), "a quarantine needs a reason"),
    }
    if let Ok(text) = std::str::from_utf8(raw) {
        let _ = parse_topic(text);
    }
}

/// Field names the parser looks for, so that generated events reach them.
const FIELDS: &[&str] = &[
    "event",
    "interactionGUID",
    "agentId",
    "queueId",
    "mediaType",
    "direction",
    "isOutboundCall",
    "status",
    "callState",
    "hangupInitiator",
    "callHangupReason",
    "dispositionCode",
    "rejectReason",
    "newState",
    "newSubState",
    "newReasonCodeUser",
    "interactionEventTS",
    "statusEventTS",
    "eventTS",
    "msgInfo",
    "resourceType",
    "originalInteractionGuid",
    "attachedData",
    "timestamp",
    "sequenceId",
    "instanceId",
    "attachedDatum",
    "attachedDataKey",
    "attachedDataValue",
];
const FAMILIES: &[&str] = &[
    "Interaction",
    "AgentStatusChange",
    "AgentProvChange",
    "ClientCheck",
    "type",
    "messageId",
    "payload",
];

/// JSON text whose keys are mostly ones the parser knows, with values of
/// every type (numbers at the edges of i64 and f64 included).
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            format!("{f:e}")
        } else {
            "1e999".to_owned()
        }),
        "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        (0u32..3_000_000_000).prop_map(|n| format!("\"{n}\"")),
        Just("\"\\ud800\"".to_owned()),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6).prop_map(
                |kv| {
                    let body: Vec<String> =
                        kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", body.join(","))
                }
            ),
        ]
    })
}

fn generated_event() -> impl Strategy<Value = Vec<u8>> {
    (proptest::sample::select(FAMILIES), json_value(), any::<bool>()).prop_map(
        |(family, body, envelope)| {
            let event = format!("{{\"{family}\":{body}}}");
            if envelope {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&event);
                format!("{{\"messageId\":\"m\",\"payload\":\"{b64}\",\"publishTime\":\"2025-11-23T12:13:20Z\"}}")
                    .into_bytes()
            } else {
                event.into_bytes()
            }
        },
    )
}

#[test]
fn event_parser_corpus() {
    for (name, raw) in seeds("event") {
        let result = std::panic::catch_unwind(|| event_target(&raw));
        assert!(result.is_ok(), "seed fuzz/event/{name}");
    }
}

#[test]
fn envelope_decoder_corpus() {
    for (name, raw) in seeds("envelope").into_iter().chain(seeds("event")) {
        let result = std::panic::catch_unwind(|| envelope_target(&raw));
        assert!(result.is_ok(), "seed {name}");
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn event_parser_fuzz(raw in prop_oneof![
        3 => inputs(seeds("event").into_iter().map(|(_, b)| b).collect(), 256),
        1 => generated_event(),
    ]) {
        event_target(&raw);
    }

    #[test]
    fn envelope_decoder_fuzz(raw in prop_oneof![
        3 => inputs(seeds("envelope").into_iter().map(|(_, b)| b).collect(), 256),
        1 => generated_event(),
    ]) {
        envelope_target(&raw);
    }
}
