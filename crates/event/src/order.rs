//! Event time and canonical order (METRICS.md §2).
//!
//! Canonical order is total over distinct payloads: the last key is the raw
//! bytes, so any arrival order of the same set of events sorts identically.

use std::cmp::Ordering;

use crate::event::Event;

/// The lifecycle rank of an event type (docs/METRICS.md §2).
pub fn lifecycle_rank(event_type: &str) -> u8 {
    match event_type {
        "InteractionCreated" => 0,
        "InteractionQueued" => 1,
        "InteractionAssigned" => 2,
        "InteractionRejected" => 3,
        "InteractionAccepted" => 4,
        "InteractionCustomerAccepted" => 5,
        "LineHoldStatus" => 6,
        "InteractionPostProcess" => 8,
        "InteractionEndPostProcess" => 9,
        // v2: the agent's release comes after its wrap-up, not with a reject.
        "InteractionDeassigned" => 10,
        "InteractionUnqueued" => 11,
        "InteractionDeleted" => 12,
        _ => 7,
    }
}

/// Parses an envelope `publishTime` (RFC 3339) to ms since the epoch.
pub fn parse_publish_time(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|ts| ts.as_millisecond())
}

/// The event time t(e) in ms (METRICS §2): the payload's own times, then the
/// envelope's `publishTime`, then the record's ingest time.
pub fn event_time_ms(event: &Event<'_>, publish_time: Option<&str>, ingest_ms: i64) -> i64 {
    resolve_time(event.payload_time_ms(), publish_time, ingest_ms)
}

/// METRICS §2 rules 5–6 on top of the payload's own time (rules 1–4, see
/// [`Event::payload_time_ms`]).
pub fn resolve_time(
    payload_time_ms: Option<i64>,
    publish_time: Option<&str>,
    ingest_ms: i64,
) -> i64 {
    payload_time_ms
        .or_else(|| {
            publish_time
                .and_then(parse_publish_time)
                .filter(|ms| *ms > 0)
        })
        .unwrap_or(ingest_ms)
}

/// The sort key of one event in canonical order; compare with [`Ord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalKey<'a> {
    pub time_ms: i64,
    pub sequence_id: Option<i64>,
    pub rank: u8,
    pub raw: &'a [u8],
}

impl<'a> CanonicalKey<'a> {
    pub fn new(event: &Event<'_>, time_ms: i64, raw: &'a [u8]) -> Self {
        CanonicalKey {
            time_ms,
            sequence_id: event.sequence_id(),
            rank: lifecycle_rank(&event.event_type()),
            raw,
        }
    }
}

impl Ord for CanonicalKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let seq = match (self.sequence_id, other.sequence_id) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        self.time_ms
            .cmp(&other.time_ms)
            .then(seq)
            .then(self.rank.cmp(&other.rank))
            .then_with(|| self.raw.cmp(other.raw))
    }
}

impl PartialOrd for CanonicalKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    fn key(raw: &[u8]) -> CanonicalKey<'_> {
        let ev = parse_event(raw).unwrap();
        let t = event_time_ms(&ev, None, 0);
        CanonicalKey::new(&ev, t, raw)
    }

    #[test]
    fn ties_in_a_second_break_by_sequence_then_rank_then_bytes() {
        let deleted = br#"{"Interaction":{"event":"InteractionDeleted","interactionEventTS":10}}"#;
        let created = br#"{"Interaction":{"event":"InteractionCreated","interactionEventTS":10}}"#;
        assert!(key(created) < key(deleted));
        let with_seq = br#"{"Interaction":{"event":"InteractionDeleted","interactionEventTS":10,"msgInfo":{"sequenceId":5}}}"#;
        assert!(
            key(with_seq) < key(created),
            "events with a sequenceId come first"
        );
        let a = br#"{"Interaction":{"event":"Foo","interactionEventTS":10,"a":1}}"#;
        let b = br#"{"Interaction":{"event":"Foo","interactionEventTS":10,"a":2}}"#;
        assert!(key(a) < key(b));
    }

    #[test]
    fn publish_time_and_ingest_time_are_the_last_resorts() {
        let raw = br#"{"Interaction":{"event":"X","msgInfo":{}}}"#;
        let ev = parse_event(raw).unwrap();
        assert_eq!(
            event_time_ms(&ev, Some("2025-11-23T12:13:20.000Z"), 42),
            1_763_900_000_000
        );
        assert_eq!(event_time_ms(&ev, Some("garbage"), 42), 42);
        assert_eq!(event_time_ms(&ev, None, 42), 42);
    }
}
