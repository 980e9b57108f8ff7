//! An [`Event`] in a compact binary form: the facts a rebuild reads instead
//! of parsing the JSON again (docs/FORMAT.md §5).
//!
//! Invariants:
//! - `decode_facts(encode_facts(e)) == e` for every event [`parse_event`]
//!   returns, field by field, each [`Lenient`] keeping its kind (text `"5"`
//!   stays text, `5` stays a number), so every rule reads the same values.
//! - Decoding never panics: bytes that are not a whole encoding (damaged,
//!   truncated, trailing data, not UTF-8) are an error, and the caller
//!   parses the payload instead. Text borrows from the facts bytes.
//! - The layout is versioned by [`FACTS_VERSION`]: a change of what
//!   [`Event`] keeps bumps it, which makes every stored encoding stale.
//!
//! [`parse_event`]: crate::parse_event

use std::borrow::Cow;

use crate::event::{Event, EventBody, MsgInfo};
use crate::value::Lenient;

/// The version of this encoding (and of the files that hold it).
pub const FACTS_VERSION: u16 = 1;

/// Why some bytes are not the facts of an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event facts: {0}")]
pub struct FactsError(&'static str);

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const NESTED: u8 = 6;

/// The body's fields in their encoded order; `decode_facts` fills them back
/// in the same order.
fn fields<'e, 'a>(b: &'e EventBody<'a>) -> [&'e Lenient<'a>; 25] {
    [
        &b.event,
        &b.interaction_guid,
        &b.agent_id,
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
        &b.interaction_event_ts,
        &b.status_event_ts,
        &b.event_ts,
        &b.msg_info.timestamp,
        &b.msg_info.sequence_id,
        &b.msg_info.instance_id,
        &b.resource_type,
        &b.original_interaction_guid,
        &b.attached_original_guid,
    ]
}

fn fields_mut<'e, 'a>(b: &'e mut EventBody<'a>) -> [&'e mut Lenient<'a>; 25] {
    [
        &mut b.event,
        &mut b.interaction_guid,
        &mut b.agent_id,
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
        &mut b.interaction_event_ts,
        &mut b.status_event_ts,
        &mut b.event_ts,
        &mut b.msg_info.timestamp,
        &mut b.msg_info.sequence_id,
        &mut b.msg_info.instance_id,
        &mut b.resource_type,
        &mut b.original_interaction_guid,
        &mut b.attached_original_guid,
    ]
}

/// Appends the facts of `event` to `out`: the family, then each field as a
/// tag byte and its value (integers as zigzag LEB128, text length-prefixed).
pub fn encode_facts(event: &Event<'_>, out: &mut Vec<u8>) {
    put_text(out, &event.family);
    for v in fields(&event.body) {
        match v {
            Lenient::Null => out.push(NULL),
            Lenient::Bool(false) => out.push(FALSE),
            Lenient::Bool(true) => out.push(TRUE),
            Lenient::Int(n) => {
                out.push(INT);
                put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
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
}

/// Reads back what [`encode_facts`] wrote: exactly one event, all of `bytes`.
pub fn decode_facts(bytes: &[u8]) -> Result<Event<'_>, FactsError> {
    let mut r = Reader { bytes, at: 0 };
    let family = r.text()?;
    let mut body = EventBody {
        msg_info: MsgInfo::default(),
        ..EventBody::default()
    };
    for slot in fields_mut(&mut body) {
        *slot = match r.byte()? {
            NULL => Lenient::Null,
            FALSE => Lenient::Bool(false),
            TRUE => Lenient::Bool(true),
            INT => {
                let z = r.varint()?;
                Lenient::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FLOAT => Lenient::Float(f64::from_bits(u64::from_le_bytes(r.array()?))),
            TEXT => Lenient::Text(r.text()?),
            NESTED => Lenient::Nested,
            _ => return Err(FactsError("unknown value tag")),
        };
    }
    if r.at != bytes.len() {
        return Err(FactsError("trailing bytes after the event"));
    }
    Ok(Event { family, body })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_text(out: &mut Vec<u8>, t: &str) {
    put_varint(out, t.len() as u64);
    out.extend_from_slice(t.as_bytes());
}

/// A cursor over facts bytes; every read checks the bounds.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, FactsError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or(FactsError("truncated value"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FactsError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(FactsError("length out of range"))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(FactsError("truncated value"))?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FactsError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, FactsError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FactsError("varint longer than 64 bits"))
    }

    fn text(&mut self) -> Result<Cow<'a, str>, FactsError> {
        let n = usize::try_from(self.varint()?).map_err(|_| FactsError("length out of range"))?;
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(Cow::Borrowed)
            .map_err(|_| FactsError("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_event;
    use proptest::prelude::*;

    fn round_trip(raw: &[u8]) {
        let ev = parse_event(raw).unwrap();
        let mut buf = Vec::new();
        encode_facts(&ev, &mut buf);
        assert_eq!(
            decode_facts(&buf).unwrap(),
            ev,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn every_kind_of_value_comes_back_as_it_was() {
        round_trip(br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","queueId":"0311","interactionEventTS":"1763900100","msgInfo":{},"extra":{"deep":[1,2,{"x":null}]}}}"#);
        round_trip(br#"{"AgentStatusChange":{"agentId":"ag1","newState":5,"statusEventTS":1763899460,"msgInfo":{"sequenceId":-991,"timestamp":1763899460000,"instanceId":"i"}}}"#);
        round_trip(br#"{"Interaction":{"event":"X","isOutboundCall":true,"status":false,"direction":3.5,"queueId":18446744073709551615,"mediaType":{"a":1},"callState":[1],"eventTS":null,"resourceType":"","rejectReason":-1}}"#);
        round_trip(br#"{"Interaction":{"event":"InteractionCreated","resourceType":2,"attachedData":{"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-parent"}]},"originalInteractionGuid":"int-b\u00e9"}}"#);
        round_trip(br#"{"Interaction":{"n":1e400,"event":"\ud800x"}}"#);
    }

    #[test]
    fn damaged_facts_are_an_error_not_a_panic() {
        let ev = parse_event(br#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1","queueId":311}}"#).unwrap();
        let mut buf = Vec::new();
        encode_facts(&ev, &mut buf);
        for n in 0..buf.len() {
            assert!(
                decode_facts(&buf[..n]).is_err(),
                "a prefix of {n} bytes decoded"
            );
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode_facts(&longer).is_err());
        let mut bad_tag = buf.clone();
        let last = bad_tag.len() - 1;
        bad_tag[last] = 9;
        assert!(decode_facts(&bad_tag).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(12), ..ProptestConfig::default() })]

        /// Any mix of the kept fields, with any JSON scalar, round-trips.
        #[test]
        fn any_event_round_trips(
            values in proptest::collection::vec(
                (0usize..8, prop_oneof![
                    Just("null".to_owned()),
                    any::<bool>().prop_map(|b| b.to_string()),
                    any::<i64>().prop_map(|n| n.to_string()),
                    any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
                    "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                    Just("{}".to_owned()),
                ]),
                0..12,
            )
        ) {
            const KEYS: [&str; 8] = ["event", "interactionGUID", "agentId", "queueId", "direction", "newState", "statusEventTS", "zz"];
            let body: Vec<String> = values.iter().map(|(k, v)| format!("\"{}\":{v}", KEYS[*k])).collect();
            let raw = format!("{{\"Interaction\":{{{}}}}}", body.join(","));
            round_trip(raw.as_bytes());
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_facts(&bytes);
        }
    }
}
