//! From archived records to the distinct events of one subject, parsed once
//! and in canonical order (docs/METRICS.md §2).

use std::cmp::Ordering;

use ccvault_event::{event_time, parse_event, Arrival, CanonicalKey, Event, EventTime, TimeSource};

/// One archived record as the projections need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventInput<'a> {
    /// The archived payload bytes (a decoded envelope's payload, not the envelope).
    pub payload: &'a [u8],
    /// The Pulsar envelope's `publishTime`, when the record came in one.
    pub publish_time: Option<&'a str>,
    /// The archive's ingest time of the record, in ms.
    pub ingest_ms: i64,
    /// Whether a live source (MQTT, Pulsar) received the record (its ingest
    /// time is then a receipt time, which ranks above `eventTS`); else it
    /// was imported and its ingest time is weak.
    pub live: bool,
    /// The tenant named by the MQTT topic the record arrived on, when known.
    pub topic_tenant: Option<&'a str>,
}

impl EventInput<'_> {
    /// How the record arrived, for t(e).
    pub fn arrival(&self) -> Arrival<'_> {
        Arrival {
            publish_time: self.publish_time,
            ingest_ms: self.ingest_ms,
            live: self.live,
        }
    }
}

/// What the interaction rules need to know of an event type; decided once
/// per event so the rule walks compare enums, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Created,
    Queued,
    Assigned,
    Rejected,
    Accepted,
    CustomerAccepted,
    LineHold,
    PostProcess,
    EndPostProcess,
    Unqueued,
    Deleted,
    TransferRequest,
    Other,
}

impl Kind {
    pub(crate) fn of(event_type: &str) -> Kind {
        match event_type {
            "InteractionCreated" => Kind::Created,
            "InteractionQueued" => Kind::Queued,
            "InteractionAssigned" => Kind::Assigned,
            "InteractionRejected" => Kind::Rejected,
            "InteractionAccepted" => Kind::Accepted,
            "InteractionCustomerAccepted" => Kind::CustomerAccepted,
            "LineHoldStatus" => Kind::LineHold,
            "InteractionPostProcess" => Kind::PostProcess,
            "InteractionEndPostProcess" => Kind::EndPostProcess,
            "InteractionUnqueued" => Kind::Unqueued,
            "InteractionDeleted" => Kind::Deleted,
            "InteractionTransferRequest" => Kind::TransferRequest,
            _ => Kind::Other,
        }
    }
}

/// One distinct event, parsed, with its place in canonical order.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a> {
    pub key: CanonicalKey<'a>,
    /// The rule that gave `key.time_ms`.
    pub time_source: TimeSource,
    /// Boxed: a parsed event is ~0.9 KB, and a `Prepared` is moved into
    /// its list and again by the canonical order; moving the box instead
    /// keeps each event where it was parsed to (issue 12).
    pub event: Box<Event<'a>>,
    pub kind: Kind,
    pub topic_tenant: Option<&'a str>,
    /// Index into the caller's input slice of the copy that was kept.
    pub input_index: usize,
}

/// Parses every record once, drops non-events, keeps one copy of each
/// distinct payload and sorts the result canonically.
pub(crate) fn prepare<'a>(inputs: &[EventInput<'a>]) -> Vec<Prepared<'a>> {
    let mut out: Vec<Prepared<'a>> = Vec::with_capacity(inputs.len());
    for (input_index, input) in inputs.iter().enumerate() {
        let Ok(event) = parse_event(input.payload) else {
            continue;
        };
        let t = event_time(&event, input.arrival());
        let key = CanonicalKey::new(&event, t.ms, input.payload);
        let kind = Kind::of(&event.event_type());
        out.push(Prepared {
            key,
            time_source: t.source,
            event: Box::new(event),
            kind,
            topic_tenant: input.topic_tenant.filter(|t| !t.is_empty()),
            input_index,
        });
    }
    dedupe_in_canonical_order(&mut out);
    out
}

/// Items that have a place in canonical order.
pub(crate) trait Canonical {
    fn key(&self) -> CanonicalKey<'_>;
    /// The rule that gave `key().time_ms`.
    fn time_source(&self) -> TimeSource;
    /// Among copies of one payload (same bytes) whose times are equal,
    /// which copy's record metadata wins; it must not depend on arrival
    /// order.
    fn prefer(&self, _other: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl Canonical for Prepared<'_> {
    fn key(&self) -> CanonicalKey<'_> {
        self.key.clone()
    }
    fn time_source(&self) -> TimeSource {
        self.time_source
    }
    fn prefer(&self, other: &Self) -> Ordering {
        // A known tenant beats an unknown one; ties go to the smaller text.
        match (self.topic_tenant, other.topic_tenant) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then(self.input_index.cmp(&other.input_index))
    }
}

/// Keeps one copy per distinct payload and sorts canonically.
///
/// Copies of one payload can differ in t(e) only when the time comes from
/// the record (publish, receipt or import time); the copy whose time is the
/// set's ([`EventTime::copy_order`]: the best rule any copy has, its
/// smallest value) is kept, so the result depends on the set of records,
/// not on which arrived first.
///
/// The sorts move places, not items: a parsed event is ~0.9 KB, and
/// sorting an interaction's events by moving them was ~3 % of a rebuild's
/// CPU (issue 12).
pub(crate) fn dedupe_in_canonical_order<T: Canonical>(items: &mut Vec<T>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let it: &[T] = items;
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (&it[a], &it[b]);
        let (ka, kb) = (a.key(), b.key());
        let time = |k: &CanonicalKey<'_>, source| EventTime {
            ms: k.time_ms,
            source,
        };
        ka.raw
            .cmp(kb.raw)
            .then_with(|| time(&ka, a.time_source()).copy_order(&time(&kb, b.time_source())))
            .then_with(|| a.prefer(b))
    });
    order.dedup_by(|later, kept| it[*later].key().raw == it[*kept].key().raw);
    // The raw bytes end the key, so distinct payloads never tie: an unstable
    // sort is deterministic here.
    order.sort_unstable_by(|&a, &b| it[a].key().cmp(&it[b].key()));
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take)),
    );
}
