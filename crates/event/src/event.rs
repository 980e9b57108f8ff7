//! The fields of one event that ccvault reads, borrowed from the payload bytes.
//!
//! An event is `{"<Family>": {...}}` (input shape 1, docs/OPERATIONS.md). Only the fields the
//! index and the metrics need are kept; every other field is skipped without
//! being materialized. Each kept field is a [`Lenient`], so an odd type makes
//! that field absent and never fails the event. A repeated key keeps its last
//! value, as JavaScript's `JSON.parse` does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::time::{payload_time_ms, EventTime, PayloadTimes, TimeSource};
use crate::unrepresentable::absent_unrepresentable;
use crate::value::Lenient;

/// `msgInfo`: publication metadata. Sometimes an empty object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MsgInfo<'a> {
    pub timestamp: Lenient<'a>,
    pub sequence_id: Lenient<'a>,
    pub instance_id: Lenient<'a>,
}

/// The body of one event (the object under the family key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBody<'a> {
    pub event: Lenient<'a>,
    pub interaction_guid: Lenient<'a>,
    pub agent_id: Lenient<'a>,
    pub queue_id: Lenient<'a>,
    pub media_type: Lenient<'a>,
    pub direction: Lenient<'a>,
    pub is_outbound_call: Lenient<'a>,
    pub status: Lenient<'a>,
    /// `callState` (`CS_QUEUED`, `CS_CONNECTED`, ...): shown by timelines.
    pub call_state: Lenient<'a>,
    pub hangup_initiator: Lenient<'a>,
    pub call_hangup_reason: Lenient<'a>,
    pub disposition_code: Lenient<'a>,
    pub reject_reason: Lenient<'a>,
    pub new_state: Lenient<'a>,
    pub new_sub_state: Lenient<'a>,
    pub new_reason_code_user: Lenient<'a>,
    pub interaction_event_ts: Lenient<'a>,
    pub status_event_ts: Lenient<'a>,
    pub event_ts: Lenient<'a>,
    pub msg_info: MsgInfo<'a>,
    /// `resourceType`: the channel's code, for legs without `mediaType`.
    pub resource_type: Lenient<'a>,
    /// `originalInteractionGuid` as a field of the body.
    pub original_interaction_guid: Lenient<'a>,
    /// The values of the `attachedData.attachedDatum` entries whose
    /// `attachedDataKey` is `originalInteractionGuid`, as far as a parent is
    /// chosen from them.
    pub attached_original_guids: OriginalGuids<'a>,
}

/// The `originalInteractionGuid` entries of an event's `attachedData`, as
/// far as a leg's parent is chosen from them (docs/METRICS.md §3: the first
/// present that is not the leg's own GUID): the first entry with a value,
/// and the first after it with another value. Entries without a value
/// (absent, `null`, `""`, an object or array) are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OriginalGuids<'a> {
    pub first: Lenient<'a>,
    pub other: Lenient<'a>,
}

impl<'a> OriginalGuids<'a> {
    /// Notes the next entry's value, in document order.
    pub(crate) fn note(&mut self, v: Lenient<'a>) {
        let Some(text) = v.as_text() else { return };
        if !self.first.is_present() {
            self.first = v;
        } else if !self.other.is_present() && self.first.as_text().as_deref() != Some(&*text) {
            self.other = v;
        }
    }

    /// Notes `later`'s entries after these.
    pub(crate) fn extend(&mut self, later: OriginalGuids<'a>) {
        self.note(later.first);
        self.note(later.other);
    }

    /// The values, in document order.
    pub fn values(&self) -> [&Lenient<'a>; 2] {
        [&self.first, &self.other]
    }

    pub fn is_present(&self) -> bool {
        self.first.is_present()
    }

    fn into_owned(self) -> OriginalGuids<'static> {
        OriginalGuids {
            first: self.first.into_owned(),
            other: self.other.into_owned(),
        }
    }
}

impl<'a> EventBody<'a> {
    /// The scalar field a body key names (every kept field but `msgInfo`
    /// and `attachedData`, which are objects read apart); `None` for a key
    /// this crate does not keep. The one list both readers (serde's
    /// visitor and [`crate::scan_event`]) fill the body by.
    pub(crate) fn scalar_mut(&mut self, key: &str) -> Option<&mut Lenient<'a>> {
        Some(match key {
            "event" => &mut self.event,
            "interactionGUID" => &mut self.interaction_guid,
            "agentId" => &mut self.agent_id,
            "queueId" => &mut self.queue_id,
            "mediaType" => &mut self.media_type,
            "direction" => &mut self.direction,
            "isOutboundCall" => &mut self.is_outbound_call,
            "status" => &mut self.status,
            "callState" => &mut self.call_state,
            "hangupInitiator" => &mut self.hangup_initiator,
            "callHangupReason" => &mut self.call_hangup_reason,
            "dispositionCode" => &mut self.disposition_code,
            "rejectReason" => &mut self.reject_reason,
            "newState" => &mut self.new_state,
            "newSubState" => &mut self.new_sub_state,
            "newReasonCodeUser" => &mut self.new_reason_code_user,
            "interactionEventTS" => &mut self.interaction_event_ts,
            "statusEventTS" => &mut self.status_event_ts,
            "eventTS" => &mut self.event_ts,
            "resourceType" => &mut self.resource_type,
            "originalInteractionGuid" => &mut self.original_interaction_guid,
            _ => return None,
        })
    }
}

impl<'a> MsgInfo<'a> {
    /// The field a `msgInfo` key names, `None` for one not kept.
    pub(crate) fn field_mut(&mut self, key: &str) -> Option<&mut Lenient<'a>> {
        Some(match key {
            "timestamp" => &mut self.timestamp,
            "sequenceId" => &mut self.sequence_id,
            "instanceId" => &mut self.instance_id,
            _ => return None,
        })
    }
}

impl EventBody<'_> {
    /// Detaches the body from the payload bytes.
    pub fn into_owned(self) -> EventBody<'static> {
        EventBody {
            event: self.event.into_owned(),
            interaction_guid: self.interaction_guid.into_owned(),
            agent_id: self.agent_id.into_owned(),
            queue_id: self.queue_id.into_owned(),
            media_type: self.media_type.into_owned(),
            direction: self.direction.into_owned(),
            is_outbound_call: self.is_outbound_call.into_owned(),
            status: self.status.into_owned(),
            call_state: self.call_state.into_owned(),
            hangup_initiator: self.hangup_initiator.into_owned(),
            call_hangup_reason: self.call_hangup_reason.into_owned(),
            disposition_code: self.disposition_code.into_owned(),
            reject_reason: self.reject_reason.into_owned(),
            new_state: self.new_state.into_owned(),
            new_sub_state: self.new_sub_state.into_owned(),
            new_reason_code_user: self.new_reason_code_user.into_owned(),
            interaction_event_ts: self.interaction_event_ts.into_owned(),
            status_event_ts: self.status_event_ts.into_owned(),
            event_ts: self.event_ts.into_owned(),
            msg_info: MsgInfo {
                timestamp: self.msg_info.timestamp.into_owned(),
                sequence_id: self.msg_info.sequence_id.into_owned(),
                instance_id: self.msg_info.instance_id.into_owned(),
            },
            resource_type: self.resource_type.into_owned(),
            original_interaction_guid: self.original_interaction_guid.into_owned(),
            attached_original_guids: self.attached_original_guids.into_owned(),
        }
    }
}

/// A decoded event: its family (the single top-level key) and body. The
/// default, an empty family and body, is only something to parse into
/// ([`parse_event_into`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event<'a> {
    pub family: Cow<'a, str>,
    pub body: EventBody<'a>,
}

impl<'a> Event<'a> {
    /// Detaches the event from the payload bytes.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            family: Cow::Owned(self.family.into_owned()),
            body: self.body.into_owned(),
        }
    }

    /// The event type: `body.event` for families that carry one (Interaction,
    /// AgentProvChange), else the family name (`AgentStatusChange`).
    pub fn event_type(&self) -> Cow<'_, str> {
        match self.body.event.as_text() {
            Some(t) => t,
            None => Cow::Borrowed(self.family.as_ref()),
        }
    }

    /// What the payload says about the event's time: the first of
    /// `interactionEventTS`, `statusEventTS` (seconds) and
    /// `msgInfo.timestamp` (ms) that is an instant ([`payload_time_ms`]:
    /// positive and no later than the year 9999), and `eventTS`. The
    /// record's metadata ranks between the two: see [`crate::resolve_time`].
    pub fn payload_times(&self) -> PayloadTimes {
        let b = &self.body;
        let secs = |v: &Lenient| payload_time_ms(v, 1000);
        let at = |source| move |ms| EventTime { ms, source };
        let own = secs(&b.interaction_event_ts)
            .map(at(TimeSource::InteractionEventTs))
            .or_else(|| secs(&b.status_event_ts).map(at(TimeSource::StatusEventTs)))
            .or_else(|| {
                payload_time_ms(&b.msg_info.timestamp, 1).map(at(TimeSource::MsgInfoTimestamp))
            });
        PayloadTimes {
            own,
            event_ts_ms: secs(&b.event_ts),
        }
    }

    /// `msgInfo.sequenceId` as a number, when present.
    pub fn sequence_id(&self) -> Option<i64> {
        self.body.msg_info.sequence_id.as_i64()
    }
}

/// A payload as one NDJSON line: its bytes and the line end to write after
/// them.
///
/// A payload that holds a line feed was received over several lines (a
/// pretty-printed capture's): each CR and LF in it becomes a space, which
/// keeps the JSON value (a string cannot hold a raw one, so they can only
/// be whitespace between tokens). Any other payload is its archived bytes
/// exactly, a lone CR in it included (until 2026-12-07 every CR became a
/// space, so `export` changed payloads received on one line; an outside
/// audit); one that ends in a CR gets `\r\n`, so that a reader that takes
/// a CRLF's CR as the line's end, as `import` does, reads it back whole.
pub fn ndjson_line(payload: &[u8]) -> (std::borrow::Cow<'_, [u8]>, &'static [u8]) {
    if payload.contains(&b'\n') {
        let flat = payload
            .iter()
            .map(|&b| if matches!(b, b'\n' | b'\r') { b' ' } else { b })
            .collect();
        return (std::borrow::Cow::Owned(flat), b"\n");
    }
    let end: &'static [u8] = if payload.ends_with(b"\r") {
        b"\r\n"
    } else {
        b"\n"
    };
    (std::borrow::Cow::Borrowed(payload), end)
}

/// Why a payload is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnEvent {
    #[error("not UTF-8: {0}")]
    NotUtf8(String),
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("no recognizable event: {0}")]
    NoEvent(&'static str),
}

/// Parses event payload bytes (shape 1).
///
/// The plain shape of an archived event is read by [`crate::scan_event`]
/// (no serde, borrowed strings); whatever it is not sure of goes through
/// [`parse_event_serde`], so the answer, accepted or refused and why, is
/// always serde's.
pub fn parse_event(payload: &[u8]) -> Result<Event<'_>, NotAnEvent> {
    match crate::scan::scan_event(payload) {
        Some(event) => Ok(event),
        None => parse_event_serde(payload),
    }
}

/// [`parse_event`] into `out`, whatever it held: a caller parsing many
/// events reuses one (its box, say) instead of moving each ~0.9 KB event
/// out of the parser (issue 12). On `Err`, what `out` holds is no event.
pub fn parse_event_into<'a>(payload: &'a [u8], out: &mut Event<'a>) -> Result<(), NotAnEvent> {
    if crate::scan::scan_event_into(payload, out) {
        return Ok(());
    }
    *out = parse_event_serde(payload)?;
    Ok(())
}

/// [`parse_event`] through serde's visitors alone: the reference reader,
/// which every document [`crate::scan_event`] reads must agree with.
pub fn parse_event_serde(payload: &[u8]) -> Result<Event<'_>, NotAnEvent> {
    let text = std::str::from_utf8(payload).map_err(|e| NotAnEvent::NotUtf8(e.to_string()))?;
    match parse_top(text) {
        Ok(Top::Event(ev)) => Ok(ev),
        Ok(Top::Envelope { .. }) => Err(NotAnEvent::NoEvent(
            "a Pulsar envelope where an event was expected",
        )),
        Ok(Top::Other(why)) => Err(NotAnEvent::NoEvent(why)),
        Ok(Top::Control) => Err(NotAnEvent::NoEvent("a transport control message")),
        Err(e) => Err(NotAnEvent::NotJson(e.to_string())),
    }
}

/// Reads a top-level message. A document serde_json refuses only for a
/// value it cannot represent (a number out of `f64` range, a lone surrogate)
/// is read again with those values absent (`crate::unrepresentable`); the
/// result then owns its text. Any other refusal keeps serde_json's error.
pub(crate) fn parse_top(text: &str) -> Result<Top<'_>, serde_json::Error> {
    // A UTF-8 byte order mark before the document is not part of it (RFC
    // 8259 §8.1 lets a parser ignore one): a message or line sent with one
    // is its event, its bytes kept as received (until 2026-12-07 it was
    // quarantined, "not JSON", from MQTT or a later line of a file: an
    // outside audit).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = match serde_json::from_str::<Top<'_>>(text) {
        Ok(top) => return Ok(top),
        Err(e) => e,
    };
    if !first.is_syntax() {
        return Err(first);
    }
    match absent_unrepresentable(text) {
        Some(readable) => serde_json::from_str::<Top<'_>>(&readable)
            .map(Top::into_owned)
            .map_err(|_| first),
        None => Err(first),
    }
}

/// What a top-level JSON message is (input shapes 1 and 2, docs/OPERATIONS.md).
// Short-lived on the stack; boxing the body would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Top<'a> {
    Event(Event<'a>),
    Envelope {
        message_id: Lenient<'a>,
        payload: Lenient<'a>,
        publish_time: Lenient<'a>,
    },
    Other(&'static str),
    /// A transport control message, not an event: a Pulsar control frame
    /// (a `type` or `endOfTopic` field that is no object, no `payload`, and
    /// no key but those and `messageId`/`context`, e.g. `{"type":
    /// "isEndOfTopic"}`) or the legacy API's `ClientCheck` heartbeat.
    Control,
}

impl Top<'_> {
    fn into_owned(self) -> Top<'static> {
        match self {
            Top::Event(ev) => Top::Event(ev.into_owned()),
            Top::Envelope {
                message_id,
                payload,
                publish_time,
            } => Top::Envelope {
                message_id: message_id.into_owned(),
                payload: payload.into_owned(),
                publish_time: publish_time.into_owned(),
            },
            Top::Other(why) => Top::Other(why),
            Top::Control => Top::Control,
        }
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

/// A top-level value: an object body or anything else.
#[allow(clippy::large_enum_variant)]
enum Slot<'a> {
    Body(EventBody<'a>),
    NotObject,
}

/// Whether a value is a JSON object, its content skipped.
struct IsObject(bool);

impl<'de> Deserialize<'de> for IsObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IsObjectVisitor)
    }
}

struct IsObjectVisitor;

impl<'de> Visitor<'de> for IsObjectVisitor {
    type Value = IsObject;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(IsObject(true))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(IsObject(false))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(IsObject(false))
    }
}

impl<'de> Deserialize<'de> for Slot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SlotVisitor)
    }
}

struct SlotVisitor;

impl<'de> Visitor<'de> for SlotVisitor {
    type Value = Slot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        BodyVisitor.visit_map(map).map(Slot::Body)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Slot::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Slot::NotObject)
    }
}

/// A map key borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Lenient::deserialize(d)? {
            Lenient::Text(t) => Ok(Key(t)),
            _ => Err(de::Error::custom("object key is not a string")),
        }
    }
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = 0usize;
        let mut first: Option<(Cow<'de, str>, Slot<'de>)> = None;
        let (mut message_id, mut payload, mut publish_time) =
            (Lenient::Null, Lenient::Null, Lenient::Null);
        let mut payloads = 0u32;
        // A key beside an envelope's payload whose value is an object
        // (`properties` apart): an event the envelope would drop.
        let mut object_beside = false;
        let mut control_frame = false;
        // A key no control frame has: with it, the message is kept (an
        // event with a stray `"type":"note"` beside its family was counted
        // as control and dropped until 2026-12-07: an outside audit).
        let mut other_key = false;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            keys += 1;
            other_key |= !matches!(
                key.as_ref(),
                "type" | "endOfTopic" | "messageId" | "context" | "payload"
            );
            match key.as_ref() {
                "payload" => {
                    payloads += 1;
                    payload = map.next_value()?;
                }
                // A Pulsar frame's `type`, or the `endOfTopic` answer to an
                // `isEndOfTopic` request (8x8's client examples take either
                // for a control frame).
                "type" | "endOfTopic" => {
                    let slot: Slot<'de> = map.next_value()?;
                    control_frame |= matches!(slot, Slot::NotObject);
                    if keys == 1 {
                        first = Some((key, slot));
                    }
                }
                "messageId" => message_id = map.next_value()?,
                "publishTime" => publish_time = map.next_value()?,
                _ if keys == 1 => {
                    let slot: Slot<'de> = map.next_value()?;
                    object_beside |= key != "properties" && matches!(slot, Slot::Body(_));
                    first = Some((key, slot));
                }
                "properties" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    object_beside |= map.next_value::<IsObject>()?.0;
                }
            }
        }
        // An envelope is kept as received, and quarantined, unless its
        // payload is all it carries (until 2026-12-07 a second `payload`,
        // or an event beside one, was dropped without a trace: an outside
        // audit).
        if payloads > 1 {
            return Ok(Top::Other("an envelope with more than one payload"));
        }
        if payloads == 1 && object_beside {
            return Ok(Top::Other(
                "an envelope's payload beside another object (an event the envelope would hide)",
            ));
        }
        if payloads == 1 {
            return Ok(Top::Envelope {
                message_id,
                payload,
                publish_time,
            });
        }
        if control_frame && !other_key {
            return Ok(Top::Control);
        }
        match (keys, first) {
            (1, Some((family, _))) if family == "ClientCheck" => Ok(Top::Control),
            (1, Some((family, Slot::Body(body)))) => Ok(Top::Event(Event { family, body })),
            // Not "the family key's": `{"a":1}` names no family (an outside
            // audit found that reason misleading).
            (1, _) => Ok(Top::Other(
                "one key whose value is not an object (an event is an object under one key naming its family)",
            )),
            (0, _) => Ok(Top::Other("empty object")),
            _ => Ok(Top::Other(
                "an event has exactly one top-level key naming its family",
            )),
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other("a JSON array, not an object"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Top::Other("a JSON scalar, not an object"))
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = EventBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut b = EventBody::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let slot = match b.scalar_mut(&key) {
                Some(slot) => slot,
                None if key == "attachedData" => {
                    let found = map.next_value::<AttachedData<'de>>()?.0;
                    b.attached_original_guids.extend(found);
                    continue;
                }
                None if key == "msgInfo" => {
                    b.msg_info = map.next_value::<MsgInfoSlot<'de>>()?.0;
                    continue;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(b)
    }
}

/// A visitor's scalar cases, each reading as `$absent` (shapes this crate
/// does not expect make a value absent, never fail the event).
macro_rules! scalars_read_as {
    ($absent:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($absent)
        }
    };
}

/// The attached datum this crate reads.
pub(crate) const ORIGINAL_GUID_KEY: &str = "originalInteractionGuid";

/// `attachedData` read leniently for the `originalInteractionGuid` entries
/// of its `attachedDatum` list (a single entry object is read as a list of
/// one); any other shape reads as absent, other entries are skipped.
struct AttachedData<'a>(OriginalGuids<'a>);

impl<'de> Deserialize<'de> for AttachedData<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AttachedDataVisitor)
    }
}

struct AttachedDataVisitor;

impl<'de> Visitor<'de> for AttachedDataVisitor {
    type Value = AttachedData<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("attachedData")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = OriginalGuids::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if key == "attachedDatum" {
                found.extend(map.next_value::<Datums<'de>>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(AttachedData(found))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(AttachedData(OriginalGuids::default()))
    }
    scalars_read_as!(AttachedData(OriginalGuids::default()));
}

/// `attachedDatum`: a list of `{attachedDataKey, attachedDataValue}`
/// entries, or one entry; the values of the original-GUID entries.
struct Datums<'a>(OriginalGuids<'a>);

impl<'de> Deserialize<'de> for Datums<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DatumsVisitor)
    }
}

struct DatumsVisitor;

impl<'de> Visitor<'de> for DatumsVisitor {
    type Value = Datums<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("attachedDatum")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = OriginalGuids::default();
        while let Some(Datum(v)) = seq.next_element::<Datum<'de>>()? {
            found.note(v);
        }
        Ok(Datums(found))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut found = OriginalGuids::default();
        found.note(DatumVisitor.visit_map(map)?.0);
        Ok(Datums(found))
    }
    scalars_read_as!(Datums(OriginalGuids::default()));
}

/// One entry: its value when its key is the original GUID's, else absent.
struct Datum<'a>(Lenient<'a>);

impl<'de> Deserialize<'de> for Datum<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DatumVisitor)
    }
}

struct DatumVisitor;

impl<'de> Visitor<'de> for DatumVisitor {
    type Value = Datum<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attachedDatum entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut key, mut value) = (Lenient::Null, Lenient::Null);
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            match k.as_ref() {
                "attachedDataKey" => key = map.next_value()?,
                "attachedDataValue" => value = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let wanted = matches!(&key, Lenient::Text(k) if k == ORIGINAL_GUID_KEY);
        Ok(Datum(if wanted { value } else { Lenient::Null }))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Datum(Lenient::Null))
    }
    scalars_read_as!(Datum(Lenient::Null));
}

/// `msgInfo` read leniently: anything but an object reads as empty.
struct MsgInfoSlot<'a>(MsgInfo<'a>);

impl<'de> Deserialize<'de> for MsgInfoSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MsgInfoVisitor)
    }
}

struct MsgInfoVisitor;

impl<'de> Visitor<'de> for MsgInfoVisitor {
    type Value = MsgInfoSlot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("msgInfo")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = MsgInfo::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match m.field_mut(&key) {
                Some(slot) => *slot = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(MsgInfoSlot(m))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(MsgInfoSlot(MsgInfo::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ndjson_line_is_the_payload_unless_it_spans_lines() {
        let line = |p: &[u8]| {
            let (bytes, end) = ndjson_line(p);
            [bytes.as_ref(), end].concat()
        };
        assert_eq!(line(b"{\"a\":1}"), b"{\"a\":1}\n");
        // A CR in a payload received on one line is kept; one at its end is followed by
        // a CRLF, whose CR a reader drops.
        assert_eq!(line(b"{\"a\":\r1}"), b"{\"a\":\r1}\n");
        assert_eq!(line(b"{\"a\":1}\r"), b"{\"a\":1}\r\r\n");
        // Received over several lines: every CR and LF a space.
        assert_eq!(line(b"{\r\n \"a\": 1\r\n}"), b"{   \"a\": 1  }\n");
        assert_eq!(line(b"{\n\"a\":\r1}"), b"{ \"a\": 1}\n");
    }

    #[test]
    fn reads_an_interaction_event_with_odd_types() {
        let raw = br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","queueId":"0311","interactionEventTS":"1763900100","msgInfo":{},"extra":{"deep":[1,2,{"x":null}]}}}"#;
        let ev = parse_event(raw).unwrap();
        assert_eq!(ev.family, "Interaction");
        assert_eq!(ev.event_type(), "InteractionQueued");
        assert_eq!(ev.body.queue_id.as_i64(), Some(311));
        assert_eq!(ev.body.queue_id.as_text().as_deref(), Some("0311"));
        assert_eq!(
            ev.payload_times().own.map(|t| t.ms),
            Some(1_763_900_100_000)
        );
        assert_eq!(ev.sequence_id(), None);
    }

    #[test]
    fn family_names_the_type_when_there_is_no_event_field() {
        let raw = br#"{"AgentStatusChange":{"agentId":"ag1","newState":"5","statusEventTS":1763899460,"msgInfo":{"sequenceId":991,"timestamp":1763899460000}}}"#;
        let ev = parse_event(raw).unwrap();
        assert_eq!(ev.event_type(), "AgentStatusChange");
        assert_eq!(ev.body.new_state.as_i64(), Some(5));
        assert_eq!(
            ev.payload_times().own,
            Some(EventTime {
                ms: 1_763_899_460_000,
                source: TimeSource::StatusEventTs
            })
        );
        assert_eq!(ev.sequence_id(), Some(991));
    }

    #[test]
    fn payload_times_keep_event_ts_apart() {
        let times = |raw: &[u8]| parse_event(raw).unwrap().payload_times();
        let msg_ts =
            times(br#"{"Interaction":{"event":"X","eventTS":5,"msgInfo":{"timestamp":7000}}}"#);
        assert_eq!(msg_ts.own.map(|t| t.ms), Some(7000));
        assert_eq!(msg_ts.event_ts_ms, Some(5000));
        let zero_first =
            times(br#"{"Interaction":{"event":"X","interactionEventTS":0,"eventTS":5}}"#);
        assert_eq!(zero_first.own, None);
        assert_eq!(zero_first.event_ts_ms, Some(5000));
        let none = times(br#"{"Interaction":{"event":"X","msgInfo":{}}}"#);
        assert_eq!(none, PayloadTimes::default());
    }

    #[test]
    fn reads_the_original_guid_from_attached_data_and_the_body() {
        let raw = br#"{"Interaction":{"event":"InteractionCreated","resourceType":2,"attachedData":{"attachedDatum":[{"attachedDataKey":"@pri","attachedDataValue":100},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-parent"},{"attachedDataValue":"x"}],"other":1},"originalInteractionGuid":"int-body"}}"#;
        let ev = parse_event(raw).unwrap();
        assert_eq!(ev.body.resource_type.as_i64(), Some(2));
        assert_eq!(
            ev.body.attached_original_guids.first.as_text().as_deref(),
            Some("int-parent")
        );
        assert!(!ev.body.attached_original_guids.other.is_present());
        assert_eq!(
            ev.body.original_interaction_guid.as_text().as_deref(),
            Some("int-body")
        );
        // One entry instead of a list; odd shapes read as absent.
        let one = br#"{"Interaction":{"attachedData":{"attachedDatum":{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-p"}}}}"#;
        let ev = parse_event(one).unwrap();
        assert_eq!(
            ev.body.attached_original_guids.first.as_text().as_deref(),
            Some("int-p")
        );
        // Several: the first, and the first other one after it, in document
        // order across lists and repeated keys.
        let several = br#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-k"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":""},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-k"}]},"attachedData":{"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-p"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-q"}]}}}"#;
        let ev = parse_event(several).unwrap();
        let texts = ev
            .body
            .attached_original_guids
            .values()
            .map(|v| v.as_text().map(|t| t.into_owned()));
        assert_eq!(texts, [Some("int-k".into()), Some("int-p".into())]);
        for odd in [
            &br#"{"Interaction":{"event":"X","attachedData":[1,2]}}"#[..],
            br#"{"Interaction":{"event":"X","attachedData":{"attachedDatum":"s"}}}"#,
            br#"{"Interaction":{"event":"X","attachedData":{"attachedDatum":[null,true,[{}],{"attachedDataKey":7,"attachedDataValue":"v"}]}}}"#,
        ] {
            let ev = parse_event(odd).unwrap();
            assert_eq!(ev.event_type(), "X");
            assert!(!ev.body.attached_original_guids.is_present());
        }
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert!(matches!(
            parse_event(b"[1,2,3]"),
            Err(NotAnEvent::NoEvent(_))
        ));
        assert!(matches!(
            parse_event(b"not json"),
            Err(NotAnEvent::NotJson(_))
        ));
        assert!(matches!(
            parse_event(b"{\"a\":1}"),
            Err(NotAnEvent::NoEvent(_))
        ));
        assert!(matches!(
            parse_event(b"{\"a\":{},\"b\":{}}"),
            Err(NotAnEvent::NoEvent(_))
        ));
        assert!(matches!(
            parse_event(&[0xff, 0xfe]),
            Err(NotAnEvent::NotUtf8(_))
        ));
        assert!(matches!(
            parse_event(br#"{"Interaction": {"event": "InteractionQueued""#),
            Err(NotAnEvent::NotJson(_))
        ));
    }

    #[test]
    fn escaped_keys_and_repeated_keys_are_read() {
        let raw = br#"{"Interaction":{"\u0065vent":"A","event":"B"}}"#;
        assert_eq!(parse_event(raw).unwrap().event_type(), "B");
    }
}
