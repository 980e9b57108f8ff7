//! An event kept without its JSON: what a segment's facts hold so that a
//! rebuild reads no payload (docs/FORMAT.md §5).
//!
//! An event splits in two. Its *shared* fields (family, `event`, queue,
//! media, states, reasons and the rest: every field [`Event`] keeps but
//! the seven below) take a few hundred distinct values in a segment, so a
//! facts file stores each distinct encoding once; [`encode_shared`] writes
//! them exactly, value kinds included. The fields unique to an event are
//! kept apart, as what the projections read of them ([`EventFacts`]): the
//! `interactionGUID` and `agentId` as text, the four time fields as the
//! [`PayloadTimes`] they give, `msgInfo.sequenceId` as its number.
//!
//! Guarantee: the event [`decode_event_into`] rebuilds reads the same as
//! the parsed one through every accessor the projections use: equal
//! shared fields, equal [`Event::payload_times`], [`Event::sequence_id`]
//! and text of the GUID and agent. Its raw time fields are the ones that
//! give those times (`interactionEventTS: 5` where `"5"` was received),
//! not necessarily the received ones. Decoding is total: malformed bytes
//! yield `false`, never a panic.

use std::borrow::Cow;

use crate::event::{Event, EventBody};
use crate::time::{EventTime, PayloadTimes, TimeSource};
use crate::value::Lenient;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const NESTED: u8 = 6;

/// The shared fields of a body, in the order they are encoded.
fn shared_fields<'b, 'a>(b: &'b EventBody<'a>) -> [&'b Lenient<'a>; 18] {
    [
        &b.event,
        &b.queue_id,
        &b.media_type,
        &b.direction,
        &b.is_outbound_call,
        &b.status,
        &b.call_state,
        &b.hangup_initiator,
        &b.call_hangup_reason,
        &b.disposition_code,
        &b.reject_reason,
        &b.new_state,
        &b.new_sub_state,
        &b.new_reason_code_user,
        &b.msg_info.instance_id,
        &b.resource_type,
        &b.original_interaction_guid,
        &b.attached_original_guid,
    ]
}

/// [`shared_fields`], to fill.
fn shared_fields_mut<'b, 'a>(b: &'b mut EventBody<'a>) -> [&'b mut Lenient<'a>; 18] {
    [
        &mut b.event,
        &mut b.queue_id,
        &mut b.media_type,
        &mut b.direction,
        &mut b.is_outbound_call,
        &mut b.status,
        &mut b.call_state,
        &mut b.hangup_initiator,
        &mut b.call_hangup_reason,
        &mut b.disposition_code,
        &mut b.reject_reason,
        &mut b.new_state,
        &mut b.new_sub_state,
        &mut b.new_reason_code_user,
        &mut b.msg_info.instance_id,
        &mut b.resource_type,
        &mut b.original_interaction_guid,
        &mut b.attached_original_guid,
    ]
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // A payload is far below 4 GiB (the log's records are), so is a text.
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Lenient<'_>) {
    match v {
        Lenient::Null => out.push(NULL),
        Lenient::Bool(false) => out.push(FALSE),
        Lenient::Bool(true) => out.push(TRUE),
        Lenient::Int(n) => {
            out.push(INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Lenient::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Lenient::Text(t) => {
            out.push(TEXT);
            put_text(out, t);
        }
        Lenient::Nested => out.push(NESTED),
    }
}

/// Appends `event`'s shared fields (see the module's description) to `out`.
pub fn encode_shared(event: &Event<'_>, out: &mut Vec<u8>) {
    put_text(out, &event.family);
    for v in shared_fields(&event.body) {
        put_value(out, v);
    }
}

/// Reads what [`encode_shared`] wrote, borrowing texts from `bytes`.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn text(&mut self) -> Option<&'a str> {
        let len: [u8; 4] = self.take(4)?.try_into().ok()?;
        let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn value(&mut self) -> Option<Lenient<'a>> {
        Some(match *self.take(1)?.first()? {
            NULL => Lenient::Null,
            FALSE => Lenient::Bool(false),
            TRUE => Lenient::Bool(true),
            INT => Lenient::Int(i64::from_le_bytes(self.eight()?)),
            FLOAT => Lenient::Float(f64::from_bits(u64::from_le_bytes(self.eight()?))),
            TEXT => Lenient::Text(Cow::Borrowed(self.text()?)),
            NESTED => Lenient::Nested,
            _ => return None,
        })
    }
}

/// What a segment's facts hold of one event, borrowed from their buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventFacts<'a> {
    /// [`encode_shared`]'s bytes.
    pub shared: &'a [u8],
    /// `interactionGUID` as text ([`Lenient::as_text`]).
    pub guid: Option<&'a str>,
    /// `agentId` as text.
    pub agent: Option<&'a str>,
    /// [`Event::payload_times`].
    pub times: PayloadTimes,
    /// [`Event::sequence_id`].
    pub sequence_id: Option<i64>,
}

impl<'a> EventFacts<'a> {
    /// The facts of `event`, whose shared fields `shared` holds and whose
    /// GUID and agent, as text, are `guid` and `agent`.
    pub fn of(
        event: &Event<'_>,
        shared: &'a [u8],
        guid: Option<&'a str>,
        agent: Option<&'a str>,
    ) -> EventFacts<'a> {
        EventFacts {
            shared,
            guid,
            agent,
            times: event.payload_times(),
            sequence_id: event.sequence_id(),
        }
    }
}

/// Seconds of a time given as `secs × 1000`; `None` if it is not one.
fn whole_seconds(ms: i64) -> Option<Lenient<'static>> {
    (ms % 1000 == 0 && ms > 0).then_some(Lenient::Int(ms / 1000))
}

/// Rebuilds into `out`, whatever it held, the event `facts` describe (see
/// the module's guarantee); `false` when the facts are malformed or
/// describe no event the parser could have read, `out` then holding no
/// event.
pub fn decode_event_into<'a>(facts: &EventFacts<'a>, out: &mut Event<'a>) -> bool {
    let decoded = fill(facts, out);
    if decoded.is_none() {
        *out = Event::default();
    }
    decoded.is_some()
}

fn fill<'a>(facts: &EventFacts<'a>, out: &mut Event<'a>) -> Option<()> {
    let mut r = Reader {
        bytes: facts.shared,
        at: 0,
    };
    out.family = Cow::Borrowed(r.text()?);
    for field in shared_fields_mut(&mut out.body) {
        *field = r.value()?;
    }
    if r.at != facts.shared.len() {
        return None;
    }
    let b = &mut out.body;
    let text = |t: Option<&'a str>| t.map_or(Lenient::Null, |t| Lenient::Text(Cow::Borrowed(t)));
    b.interaction_guid = text(facts.guid);
    b.agent_id = text(facts.agent);
    b.interaction_event_ts = Lenient::Null;
    b.status_event_ts = Lenient::Null;
    b.msg_info.timestamp = Lenient::Null;
    if let Some(EventTime { ms, source }) = facts.times.own {
        match source {
            TimeSource::InteractionEventTs => b.interaction_event_ts = whole_seconds(ms)?,
            TimeSource::StatusEventTs => b.status_event_ts = whole_seconds(ms)?,
            TimeSource::MsgInfoTimestamp if ms > 0 => b.msg_info.timestamp = Lenient::Int(ms),
            _ => return None,
        }
    }
    b.event_ts = match facts.times.event_ts_ms {
        Some(ms) => whole_seconds(ms)?,
        None => Lenient::Null,
    };
    b.msg_info.sequence_id = facts.sequence_id.map_or(Lenient::Null, Lenient::Int);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    /// `event` through the facts and back, checked as the module promises.
    fn round_trip(event: &Event<'_>) {
        let mut shared = Vec::new();
        encode_shared(event, &mut shared);
        let (guid, agent) = (
            event.body.interaction_guid.as_text(),
            event.body.agent_id.as_text(),
        );
        let facts = EventFacts::of(event, &shared, guid.as_deref(), agent.as_deref());
        let mut back = Event::default();
        assert!(decode_event_into(&facts, &mut back), "{event:?}");
        assert_eq!(back.family, event.family);
        assert_eq!(
            shared_fields(&back.body).map(Clone::clone),
            shared_fields(&event.body).map(Clone::clone)
        );
        assert_eq!(back.payload_times(), event.payload_times());
        assert_eq!(back.sequence_id(), event.sequence_id());
        assert_eq!(back.event_type(), event.event_type());
        assert_eq!(back.body.interaction_guid.as_text(), guid);
        assert_eq!(back.body.agent_id.as_text(), agent);
    }

    #[test]
    fn every_kind_of_value_comes_back() {
        let raw = br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":42,
            "agentId":"ag\u00e9","queueId":"0311","mediaType":null,"direction":true,
            "isOutboundCall":false,"status":1.5,"callState":[1],"hangupInitiator":{},
            "rejectReason":-7,"newState":"","eventTS":"1763900000",
            "interactionEventTS":"0","statusEventTS":1763900001,
            "msgInfo":{"timestamp":5,"sequenceId":"12","instanceId":"i-1"},
            "originalInteractionGuid":"g0",
            "attachedData":{"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"g9"}]}}}"#;
        let ev = parse_event(raw).unwrap();
        assert_eq!(ev.body.status, Lenient::Float(1.5));
        round_trip(&ev);
        for raw in [
            &br#"{"AgentStatusChange":{"agentId":"a","newState":5,"msgInfo":{}}}"#[..],
            br#"{"Interaction":{"event":"InteractionCreated","msgInfo":{"timestamp":1763900000123}}}"#,
            br#"{"Interaction":{}}"#,
        ] {
            round_trip(&parse_event(raw).unwrap());
        }
    }

    #[test]
    fn malformed_facts_are_refused_and_leave_no_event() {
        let ev =
            parse_event(br#"{"Interaction":{"event":"InteractionCreated","queueId":7}}"#).unwrap();
        let mut shared = Vec::new();
        encode_shared(&ev, &mut shared);
        let mut out = Event::default();
        for cut in 0..shared.len() {
            let facts = EventFacts::of(&ev, &shared[..cut], None, None);
            assert!(!decode_event_into(&facts, &mut out), "cut at {cut}");
            assert_eq!(out, Event::default());
        }
        let mut longer = shared.clone();
        longer.push(NULL);
        assert!(!decode_event_into(
            &EventFacts::of(&ev, &longer, None, None),
            &mut out
        ));
        let mut bad_tag = shared.clone();
        let last = bad_tag.len() - 1;
        bad_tag[last] = 9;
        assert!(!decode_event_into(
            &EventFacts::of(&ev, &bad_tag, None, None),
            &mut out
        ));
        // A time no payload could have given.
        let mut facts = EventFacts::of(&ev, &shared, None, None);
        facts.times.event_ts_ms = Some(1_500);
        assert!(!decode_event_into(&facts, &mut out));
        facts.times.event_ts_ms = None;
        facts.times.own = Some(EventTime {
            ms: 1,
            source: TimeSource::Received,
        });
        assert!(!decode_event_into(&facts, &mut out));
    }
}
