//! Fuzz targets for the event parser ([`parse_event`]) and the envelope
//! decoder ([`decode_message`], which also detects input shapes and control
//! messages): arbitrary bytes, generated events, and mutations of the seeds
//! in `fuzz/event/` and `fuzz/envelope/` (every seed is replayed first).
//! Neither may panic, and what they say must agree: an archived event
//! parses again to the same keys, and a bare event decodes to itself.
//! `parse_event`'s serde-free path (`scan_event`) must give exactly what
//! serde's reader gives, on every input here and on a simulated feed with
//! its quirks: the same event, or the same refusal with the same reason.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ccvault_event::{
    decode_message, event_time, lifecycle_rank, parse_event, parse_event_serde, parse_publish_time,
    parse_topic, scan_event, Arrival, CanonicalKey, Keys,
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

/// The fast path reads what serde reads, or leaves the document to it;
/// returns whether it read it.
fn fast_agrees(raw: &[u8]) -> bool {
    let serde = parse_event_serde(raw);
    assert_eq!(parse_event(raw), serde, "{}", String::from_utf8_lossy(raw));
    match scan_event(raw) {
        Some(fast) => {
            assert_eq!(Ok(fast), serde, "{}", String::from_utf8_lossy(raw));
            true
        }
        None => false,
    }
}

/// Everything read from one event; none of it may panic.
fn read_all(raw: &[u8], publish_time: Option<&str>) {
    fast_agrees(raw);
    let Ok(ev) = parse_event(raw) else { return };
    let keys = Keys::of(&ev, raw);
    if let Some(names) = &keys.names {
        let (family, event_type) = names.read(raw).expect("spans inside the payload");
        assert_eq!(family, ev.family.as_ref());
        assert_eq!(event_type, ev.event_type().as_ref());
    }
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
        assert_eq!(d.outcome, Ok(Keys::of(&ev, raw)));
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
            assert_eq!(&Keys::of(&ev, &d.payload), keys);
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
        // Known names as values too (an `attachedDataKey` names the
        // original GUID), and plain ids, so that many events need no serde.
        proptest::sample::select(FIELDS).prop_map(|k| format!("\"{k}\"")),
        "[a-z0-9-]{0,12}".prop_map(|s| format!("\"{s}\"")),
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

/// An object of `keys`, each value from `value`, keys repeating.
fn object_of(
    keys: &'static [&'static str],
    value: BoxedStrategy<String>,
    most: usize,
) -> BoxedStrategy<String> {
    proptest::collection::vec((proptest::sample::select(keys), value), 0..most)
        .prop_map(|kv| {
            let members: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", members.join(","))
        })
        .boxed()
}

/// An event body whose `attachedData` and `msgInfo` have the shapes the
/// parser looks into (entries naming the original GUID, repeated keys,
/// odd types), which `json_value` reaches only by chance.
fn shaped_body() -> impl Strategy<Value = String> {
    const ENTRY: &[&str] = &["attachedDataKey", "attachedDataValue", "x"];
    const DATA: &[&str] = &["attachedDatum", "y"];
    const MSG: &[&str] = &["timestamp", "sequenceId", "instanceId", "z"];
    let scalar = prop_oneof![
        Just("\"originalInteractionGuid\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("null".to_owned()),
        Just("7".to_owned()),
        Just("[]".to_owned()),
        "[a-z0-9-]{1,8}".prop_map(|s| format!("\"{s}\"")),
    ]
    .boxed();
    let entry = prop_oneof![4 => object_of(ENTRY, scalar.clone(), 4), 1 => scalar.clone()].boxed();
    let datums = prop_oneof![
        3 => proptest::collection::vec(entry.clone(), 0..4)
            .prop_map(|v| format!("[{}]", v.join(","))),
        1 => entry,
        1 => scalar.clone(),
    ]
    .boxed();
    let attached = prop_oneof![4 => object_of(DATA, datums, 3), 1 => scalar.clone()];
    let msg_info = prop_oneof![4 => object_of(MSG, json_value().boxed(), 4), 1 => scalar];
    let field = prop_oneof![
        2 => (proptest::sample::select(FIELDS), json_value())
            .prop_map(|(k, v)| format!("\"{k}\":{v}")),
        1 => attached.prop_map(|v| format!("\"attachedData\":{v}")),
        1 => msg_info.prop_map(|v| format!("\"msgInfo\":{v}")),
    ];
    proptest::collection::vec(field, 0..8).prop_map(|f| format!("{{{}}}", f.join(",")))
}

fn generated_event() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![json_value(), shaped_body()];
    (proptest::sample::select(FAMILIES), body, any::<bool>()).prop_map(
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

/// A simulated feed with the real feed's quirks (escapes, envelopes, odd
/// types, malformed lines): every line reads the same both ways, and the
/// fast path is the common one, or it buys nothing.
#[test]
fn fast_path_agrees_on_a_simulated_feed_with_its_quirks() {
    let cfg = ccvault_sim::SimConfig {
        events: Some(20_000),
        seed: 11,
        ..ccvault_sim::SimConfig::default()
    };
    let mut out = Vec::new();
    ccvault_sim::simulate(&cfg, &mut out).unwrap();
    let (mut read, mut total) = (0, 0);
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        total += 1;
        read += usize::from(fast_agrees(line));
        let d = decode_message(line);
        if d.outcome.is_ok() {
            fast_agrees(&d.payload);
        }
    }
    assert!(read * 4 >= total * 3, "{read} of {total} read");
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
