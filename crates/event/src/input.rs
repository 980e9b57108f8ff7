//! Input shape detection (docs/OPERATIONS.md, input shapes): one message in, what to archive out.
//!
//! Guarantees: every message yields something to archive. A bare event is
//! archived as received; a Pulsar envelope is archived as its decoded payload
//! with `messageId`/`publishTime` kept as metadata; anything else (not UTF-8,
//! not JSON, bad base64, no recognizable event) is archived as received and
//! carries a quarantine reason. Decoding never panics and never fails.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine;

use crate::event::{parse_event, parse_top, Event, NotAnEvent, Top};
use crate::scan::scan_event_into;
use crate::time::PayloadTimes;
use crate::value::Lenient;

/// What the index (and a segment's facts, in the store) need to know of an
/// event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub interaction_guid: Option<String>,
    pub agent_id: Option<String>,
    /// What the payload says about the event's time.
    pub times: PayloadTimes,
    /// Where the family and the event type lie in the payload, when both
    /// are there verbatim (neither escaped nor a number).
    pub names: Option<NameSpans>,
}

/// Byte ranges of an event's family ([`Event::family`]) and type
/// ([`Event::event_type`]) in its payload: read back without a copy made
/// for each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSpans {
    pub family: Range<u32>,
    pub event_type: Range<u32>,
}

impl NameSpans {
    /// The spans of `event`'s names in `payload`, the bytes it was parsed
    /// from; `None` if either name is not a slice of them.
    pub fn of(event: &Event<'_>, payload: &[u8]) -> Option<NameSpans> {
        Some(NameSpans {
            family: span_in(payload, &event.family)?,
            event_type: span_in(payload, &event.event_type())?,
        })
    }

    /// The family and the event type, read from `payload` (the bytes the
    /// spans were taken from).
    pub fn read<'p>(&self, payload: &'p [u8]) -> Option<(&'p str, &'p str)> {
        let (family, event_type) = self.bytes(payload)?;
        Some((
            std::str::from_utf8(family).ok()?,
            std::str::from_utf8(event_type).ok()?,
        ))
    }

    /// [`NameSpans::read`] without checking the bytes as UTF-8 again: they
    /// are text when `payload` is the bytes the spans were taken from.
    pub fn bytes<'p>(&self, payload: &'p [u8]) -> Option<(&'p [u8], &'p [u8])> {
        let bytes = |r: &Range<u32>| {
            payload.get(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)
        };
        Some((bytes(&self.family)?, bytes(&self.event_type)?))
    }
}

/// Where `text` lies in `bytes`, if it is a slice of them.
fn span_in(bytes: &[u8], text: &str) -> Option<Range<u32>> {
    let start = (text.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let end = start.checked_add(text.len())?;
    // Equal bytes at that place: a slice of `bytes` whatever the pointers.
    (bytes.get(start..end)? == text.as_bytes())
        .then(|| Some(u32::try_from(start).ok()?..u32::try_from(end).ok()?))
        .flatten()
}

impl Keys {
    /// The keys of `event`, parsed from `payload`.
    pub fn of(event: &Event<'_>, payload: &[u8]) -> Keys {
        let text = |v: &Lenient| v.as_text().map(Cow::into_owned);
        Keys {
            interaction_guid: text(&event.body.interaction_guid),
            agent_id: text(&event.body.agent_id),
            times: event.payload_times(),
            names: NameSpans::of(event, payload),
        }
    }
}

/// One message, ready to archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    /// The bytes to archive: the message as received, or an envelope's
    /// decoded payload.
    pub payload: Cow<'a, [u8]>,
    /// Envelope `messageId` and `publishTime`, as text, when the message was
    /// a Pulsar envelope.
    pub message_id: Option<String>,
    pub publish_time: Option<String>,
    /// `Ok(keys)` for an event, `Err(reason)` for a quarantined message.
    pub outcome: Result<Keys, String>,
    /// A transport control message (a Pulsar control frame, a `ClientCheck`
    /// heartbeat): neither archived nor quarantined, only counted.
    pub control: bool,
}

/// Detects the shape of one message and decodes it.
pub fn decode_message(raw: &[u8]) -> Decoded<'_> {
    let quarantined = |reason: String| Decoded {
        payload: Cow::Borrowed(raw),
        message_id: None,
        publish_time: None,
        outcome: Err(reason),
        control: false,
    };
    let event = |ev: &Event<'_>| Decoded {
        outcome: Ok(Keys::of(ev, raw)),
        payload: Cow::Borrowed(raw),
        message_id: None,
        publish_time: None,
        control: false,
    };
    // The plain shape, without serde; it reads as serde would (`scan`).
    // Read in place: returned by value, the ~0.9 KB event was copied once
    // more for every message imported (docs/BENCHMARKS.md, issue 12).
    let mut ev = Event::default();
    if scan_event_into(raw, &mut ev) {
        return event(&ev);
    }
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => return quarantined(NotAnEvent::NotUtf8(e.to_string()).to_string()),
    };
    let top = match parse_top(text) {
        Ok(top) => top,
        Err(e) => return quarantined(NotAnEvent::NotJson(e.to_string()).to_string()),
    };
    match top {
        Top::Event(ev) => event(&ev),
        Top::Other(why) => quarantined(NotAnEvent::NoEvent(why).to_string()),
        Top::Control => Decoded {
            control: true,
            ..quarantined("a transport control message".to_owned())
        },
        Top::Envelope {
            message_id,
            payload,
            publish_time,
        } => {
            let message_id = message_id.as_text().map(Cow::into_owned);
            let publish_time = publish_time.as_text().map(Cow::into_owned);
            let decoded = match &payload {
                Lenient::Text(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| format!("bad base64 payload in Pulsar envelope: {e}")),
                _ => Err("Pulsar envelope payload is not a string".to_owned()),
            };
            match decoded {
                Ok(bytes) => {
                    let outcome = parse_event(&bytes)
                        .map(|ev| Keys::of(&ev, &bytes))
                        .map_err(|e| format!("Pulsar envelope payload: {e}"));
                    // A heartbeat sent through the topic arrives wrapped in
                    // an envelope; it is the same transport control message
                    // as a bare one, counted, not quarantined as a bad event.
                    let control = outcome.is_err() && is_control(&bytes);
                    Decoded {
                        payload: Cow::Owned(bytes),
                        message_id,
                        publish_time,
                        outcome,
                        control,
                    }
                }
                Err(reason) => Decoded {
                    payload: Cow::Borrowed(raw),
                    message_id,
                    publish_time,
                    outcome: Err(reason),
                    control: false,
                },
            }
        }
    }
}

/// Whether `payload` is a transport control message (`ClientCheck`).
fn is_control(payload: &[u8]) -> bool {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|text| parse_top(text).ok())
        .is_some_and(|top| matches!(top, Top::Control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_event_is_archived_as_received() {
        let raw = br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-a-northwind01","agentId":"ag1","interactionEventTS":1763900000}}"#;
        let d = decode_message(raw);
        assert_eq!(d.payload.as_ref(), raw.as_slice());
        let keys = d.outcome.unwrap();
        assert_eq!(keys.interaction_guid.as_deref(), Some("int-a-northwind01"));
        assert_eq!(keys.agent_id.as_deref(), Some("ag1"));
        assert_eq!(keys.times.own.map(|t| t.ms), Some(1_763_900_000_000));
    }

    /// A byte order mark before the document is not part of it: the event
    /// is read, its bytes archived as received, mark and all; one anywhere
    /// else is not JSON.
    #[test]
    fn a_byte_order_mark_before_the_event_is_read_past() {
        let event = br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"int-a-northwind01","agentId":"ag1","interactionEventTS":1763900000}}"#;
        let raw = [&b"\xEF\xBB\xBF"[..], event].concat();
        let d = decode_message(&raw);
        assert_eq!(d.payload.as_ref(), raw.as_slice());
        let keys = d.outcome.unwrap();
        assert_eq!(keys.interaction_guid.as_deref(), Some("int-a-northwind01"));
        assert_eq!(keys.times.own.map(|t| t.ms), Some(1_763_900_000_000));
        assert_eq!(
            crate::parse_event(&raw).unwrap().event_type(),
            crate::parse_event(event).unwrap().event_type()
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let enveloped = format!(
            r#"{{"messageId":"CAEQAQ==","payload":"{b64}","properties":{{}},"publishTime":"2025-11-23T12:13:20.000Z"}}"#
        );
        assert!(decode_message(enveloped.as_bytes()).outcome.is_ok());
        for misplaced in [
            [&b"\xEF\xBB\xBF\xEF\xBB\xBF"[..], event].concat(),
            [&b" \xEF\xBB\xBF"[..], event].concat(),
        ] {
            let reason = decode_message(&misplaced).outcome.unwrap_err();
            assert!(reason.contains("not JSON"), "{reason}");
        }
    }

    #[test]
    fn envelope_is_archived_as_its_decoded_payload() {
        let event = br#"{"AgentStatusChange":{"agentId":"ag1","newState":1}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(event);
        let raw = format!(
            r#"{{"messageId":"CAEQAQ==","payload":"{b64}","properties":{{}},"publishTime":"2025-11-23T12:13:20.000Z","redeliveryCount":0}}"#
        );
        let d = decode_message(raw.as_bytes());
        assert_eq!(d.payload.as_ref(), event.as_slice());
        assert_eq!(d.message_id.as_deref(), Some("CAEQAQ=="));
        assert_eq!(d.publish_time.as_deref(), Some("2025-11-23T12:13:20.000Z"));
        assert_eq!(d.outcome.unwrap().agent_id.as_deref(), Some("ag1"));
    }

    #[test]
    fn malformed_messages_are_quarantined_not_lost() {
        for (raw, why) in [
            (&b"not json at all"[..], "not JSON"),
            (b"[1,2,3]", "no recognizable event"),
            (
                br#"{"a":1}"#,
                "no recognizable event: one key whose value is not an object",
            ),
            (b"{\"Interaction\": {\"event\": \"X\"", "not JSON"),
            (b"\xff\xfe", "not UTF-8"),
            (
                br#"{"messageId":"CAEQAw==","payload":"%%%not-base64%%%","properties":{}}"#,
                "bad base64",
            ),
            (
                br#"{"messageId":"CAEQAw==","payload":"WzEsMl0=","properties":{}}"#,
                "Pulsar envelope payload: no recognizable event",
            ),
        ] {
            let d = decode_message(raw);
            let reason = d.outcome.unwrap_err();
            assert!(reason.contains(why), "{reason:?} should mention {why:?}");
            assert!(!d.payload.is_empty());
        }
    }

    #[test]
    fn unrepresentable_values_are_archived_and_read_as_absent() {
        let plain = br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","agentId":"ag1","queueId":311,"interactionEventTS":1763900000}}"#;
        let keys = decode_message(plain).outcome.unwrap();
        for (raw, agent, ts) in [
            (
                &br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","agentId":"ag1","queueId":1e400,"interactionEventTS":1763900000}}"#[..],
                Some("ag1"),
                Some(1_763_900_000_000),
            ),
            (
                br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","agentId":"\ud800","queueId":311,"interactionEventTS":-1E+999}}"#,
                None,
                None,
            ),
            (
                br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","agentId":"ag1","extra":{"k\udc00":[1e400]},"interactionEventTS":1763900000}}"#,
                Some("ag1"),
                Some(1_763_900_000_000),
            ),
        ] {
            let d = decode_message(raw);
            assert_eq!(d.payload.as_ref(), raw, "archived as received");
            let got = d.outcome.unwrap_or_else(|e| panic!("quarantined: {e}"));
            assert_eq!(got.interaction_guid, keys.interaction_guid);
            assert_eq!(got.agent_id.as_deref(), agent);
            assert_eq!(got.times.own.map(|t| t.ms), ts);
            let ev = parse_event(raw).unwrap();
            assert_eq!(ev.event_type(), "InteractionQueued");
            let queue = ev.body.queue_id.as_i64();
            assert!(queue.is_none() || queue == Some(311), "{queue:?}");
        }
        let queue_absent = parse_event(br#"{"Interaction":{"queueId":1e400}}"#).unwrap();
        assert!(!queue_absent.body.queue_id.is_present());

        // The same inside a Pulsar envelope, around the payload or in it.
        let event = br#"{"AgentStatusChange":{"agentId":"ag1","newState":1e400}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(event);
        let raw = format!(
            r#"{{"messageId":"CAEQAQ==","payload":"{b64}","properties":{{"x":"\ud800"}},"publishTime":1e999}}"#
        );
        let d = decode_message(raw.as_bytes());
        assert_eq!(d.payload.as_ref(), event.as_slice());
        assert_eq!(d.message_id.as_deref(), Some("CAEQAQ=="));
        assert_eq!(d.publish_time, None);
        assert_eq!(d.outcome.unwrap().agent_id.as_deref(), Some("ag1"));

        // Still quarantined: what is not JSON for another reason too.
        let d = decode_message(br#"{"Interaction":{"queueId":1e400,}}"#);
        assert!(d.outcome.unwrap_err().contains("not JSON"));
    }

    /// An envelope whose payload is not all it carries is kept as
    /// received and quarantined: a second payload, or an event beside
    /// one, would be lost with the envelope's bytes.
    #[test]
    fn an_envelope_that_would_hide_an_event_is_quarantined() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let a = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"a"}}"#;
        let b = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"b"}}"#;
        for raw in [
            format!(
                r#"{{"messageId":"m","payload":"{}","payload":"{}"}}"#,
                b64(a),
                b64(b)
            ),
            format!(
                r#"{{"Interaction":{{"event":"X","interactionGUID":"a"}},"payload":"{}"}}"#,
                b64(b)
            ),
            format!(
                r#"{{"payload":"{}","AgentStatus":{{"agentId":"x"}}}}"#,
                b64(b)
            ),
        ] {
            let d = decode_message(raw.as_bytes());
            assert!(!d.control, "{raw}");
            assert_eq!(d.payload.as_ref(), raw.as_bytes(), "{raw}");
            assert!(d.outcome.unwrap_err().contains("envelope"), "{raw}");
        }
        // `properties` (an object) and Pulsar's other keys beside the one
        // payload are an envelope, in any order.
        let raw = format!(
            r#"{{"properties":{{"k":"v"}},"messageId":"m","payload":"{}","publishTime":"2025-11-24T10:00:00Z","redeliveryCount":0,"key":"k"}}"#,
            b64(a)
        );
        let d = decode_message(raw.as_bytes());
        assert_eq!(d.payload.as_ref(), a.as_bytes());
        assert!(d.outcome.is_ok());
    }

    #[test]
    fn control_messages_are_recognized_and_nothing_else() {
        for raw in [
            &br#"{"type":"isEndOfTopic"}"#[..],
            br#"{"type":"isEndOfTopic","endOfTopic":true}"#,
            // The answer to an `isEndOfTopic` request carries no `type`.
            br#"{"endOfTopic":true}"#,
            br#"{"endOfTopic":"false"}"#,
            br#"{"ClientCheck":{"ts":1}}"#,
            br#"{"ClientCheck":"ping"}"#,
            // A heartbeat inside a Pulsar envelope ({"ClientCheck":{"ts":1}}).
            br#"{"messageId":"CAEQAQ==","payload":"eyJDbGllbnRDaGVjayI6eyJ0cyI6MX19","publishTime":"2025-11-24T10:00:00Z"}"#,
        ] {
            let d = decode_message(raw);
            assert!(d.control, "{}", String::from_utf8_lossy(raw));
            assert!(d.outcome.is_err());
        }
        // An envelope of something that is neither event nor heartbeat
        // ({"kind":"x"}) stays quarantined.
        let d = decode_message(br#"{"messageId":"CAEQAQ==","payload":"eyJraW5kIjoieCJ9"}"#);
        assert!(!d.control && d.outcome.is_err());
        for raw in [
            &br#"{"messageId":"m","payload":"e30=","type":"x"}"#[..],
            br#"{"Interaction":{"event":"X","type":"y"}}"#,
            br#"{"kind":"isEndOfTopic"}"#,
            br#"{"endOfTopic":{"event":"X"}}"#,
            // An event, or a message, beside a control frame's key: kept
            // (quarantined: more than one top-level key), never dropped.
            br#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"g"},"type":"note"}"#,
            br#"{"endOfTopic":false,"AgentStatus":{"agentId":"a"}}"#,
            br#"{"type":"error","message":"quota exceeded"}"#,
        ] {
            assert!(
                !decode_message(raw).control,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
