//! Event time and canonical order (docs/METRICS.md §2).
//!
//! Canonical order is total over distinct payloads: the last key is the raw
//! bytes, so any arrival order of the same set of events sorts identically.

use std::cmp::Ordering;

use crate::event::Event;
use crate::time::{resolve_time, Arrival, EventTime};

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

/// t(e) of `event` held by a record that arrived as `arrival`.
pub fn event_time(event: &Event<'_>, arrival: Arrival<'_>) -> EventTime {
    resolve_time(event.payload_times(), arrival)
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
        let t = event_time(
            &ev,
            Arrival {
                publish_time: None,
                ingest_ms: 0,
                live: false,
            },
        )
        .ms;
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
}
