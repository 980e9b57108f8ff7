//! Projecting archived records: the one function ([`project_records`]) that
//! both the rebuild and the catch-up summarize with, which is why they
//! agree.

use std::collections::BTreeMap;

use ccvault_event::{
    event_time, parse_event_into, Arrival, CanonicalKey, Event, EventTime, TimeSource,
};
use ccvault_store::{guid_hash, payload_hash, Record, RecordRef};

use super::schema::tenant_hash;
use crate::agents::status_change_agent;
use crate::codec::{self, CodecError};
use crate::input::{dedupe_in_canonical_order, Kind, Prepared};
use crate::live::{stage_of_prepared, Live};
use crate::summary::derive;
use crate::tenant::{record_tenant, tenant_of};

/// An archived record as the projection functions take it.
pub fn record_input(rec: &Record) -> crate::EventInput<'_> {
    crate::EventInput {
        payload: &rec.payload,
        publish_time: (!rec.publish_time.is_empty()).then_some(rec.publish_time.as_str()),
        ingest_ms: rec.ingest_ms,
        live: rec.source_kind.is_live(),
        topic_tenant: record_tenant(rec.source_kind, &rec.source),
    }
}

/// A record detached from the log's buffer: what the projections need.
/// One allocation a record (payload and publish time together): a rebuild
/// makes millions on the log reader's thread and frees them on the workers'.
#[derive(Debug, Clone)]
pub(super) struct ArchivedEvent {
    pub(super) offset: u64,
    ingest_ms: i64,
    live: bool,
    /// The payload, then the publish time.
    bytes: Box<[u8]>,
    payload_len: usize,
    tenant: Option<Box<str>>,
}

impl ArchivedEvent {
    fn new(
        offset: u64,
        (ingest_ms, live): (i64, bool),
        payload: &[u8],
        publish_time: &str,
        tenant: Option<&str>,
    ) -> ArchivedEvent {
        let mut bytes = Vec::with_capacity(payload.len() + publish_time.len());
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(publish_time.as_bytes());
        ArchivedEvent {
            offset,
            ingest_ms,
            live,
            bytes: bytes.into_boxed_slice(),
            payload_len: payload.len(),
            tenant: tenant.map(Into::into),
        }
    }

    pub(super) fn of_ref(r: &RecordRef<'_>) -> ArchivedEvent {
        let tenant = record_tenant(r.source_kind, r.source);
        let arrival = (r.ingest_ms, r.source_kind.is_live());
        ArchivedEvent::new(r.offset, arrival, r.payload, r.publish_time, tenant)
    }

    pub(super) fn of_record(r: &Record) -> ArchivedEvent {
        let tenant = record_tenant(r.source_kind, &r.source);
        let arrival = (r.ingest_ms, r.source_kind.is_live());
        ArchivedEvent::new(r.offset, arrival, &r.payload, &r.publish_time, tenant)
    }

    pub(super) fn payload(&self) -> &[u8] {
        self.bytes.get(..self.payload_len).unwrap_or_default()
    }
}

/// How a record arrived, for t(e), from its publish time as stored after
/// the payload (`tail`: it was a `&str`; "" means none).
fn arrival_of(tail: &[u8], ingest_ms: i64, live: bool) -> Arrival<'_> {
    let publish_time = std::str::from_utf8(tail).unwrap_or_default();
    Arrival {
        publish_time: (!publish_time.is_empty()).then_some(publish_time),
        ingest_ms,
        live,
    }
}

/// What [`project_records`] reads of an archived record, however it is
/// held: on its own ([`ArchivedEvent`]) or in a rebuild's buffer of many
/// ([`ArchivedGroup`]).
pub(super) trait Archived {
    fn offset(&self) -> u64;
    fn payload(&self) -> &[u8];
    fn arrival(&self) -> Arrival<'_>;
    /// The tenant of the record's topic, if any.
    fn topic_tenant(&self) -> Option<&str>;
}

impl Archived for ArchivedEvent {
    fn offset(&self) -> u64 {
        self.offset
    }
    fn payload(&self) -> &[u8] {
        ArchivedEvent::payload(self)
    }
    fn arrival(&self) -> Arrival<'_> {
        let tail = self.bytes.get(self.payload_len..).unwrap_or_default();
        arrival_of(tail, self.ingest_ms, self.live)
    }
    fn topic_tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Records copied out of the log into one buffer: a rebuild's interaction
/// (or run of records outside any), with a few allocations a group instead
/// of one a record made on the log reader's thread and freed on a
/// worker's (a third of the reader's time, issue 12).
#[derive(Debug, Default)]
pub(super) struct ArchivedGroup {
    /// Each record's payload then its publish time, back to back.
    bytes: Vec<u8>,
    recs: Vec<GroupRec>,
    /// The key the index files the group's records under (`guid_hash` of
    /// their interaction's GUID); `None` for records outside any.
    guid_hash: Option<u64>,
}

#[derive(Debug)]
struct GroupRec {
    offset: u64,
    ingest_ms: i64,
    live: bool,
    /// Where its bytes start in the group's buffer.
    start: usize,
    payload_len: usize,
    publish_len: usize,
    tenant: Option<Box<str>>,
}

/// One record of an [`ArchivedGroup`].
pub(super) struct GroupEvent<'a> {
    rec: &'a GroupRec,
    /// Its payload then its publish time.
    bytes: &'a [u8],
}

impl ArchivedGroup {
    /// What a group holds for each record besides its bytes.
    pub(super) const PER_RECORD: usize = std::mem::size_of::<GroupRec>();

    /// A group expected to hold `records` records like `first`, in `spare`
    /// (an emptied group whose buffers are reused) or in new buffers.
    pub(super) fn for_records(
        records: usize,
        first: &RecordRef<'_>,
        spare: Option<ArchivedGroup>,
        guid_hash: u64,
    ) -> ArchivedGroup {
        let each = first.payload.len() + first.publish_time.len();
        // Room for the expected records (a little more: payloads vary),
        // bounded so that a wrong count cannot reserve much.
        let records = records.clamp(1, 64);
        let mut group = spare.unwrap_or_default();
        group.clear();
        group.bytes.reserve(records * each + records * each / 8);
        group.recs.reserve(records);
        group.guid_hash = Some(guid_hash);
        group
    }

    /// Empties the group, keeping its buffers for the next one.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.recs.clear();
        self.guid_hash = None;
    }

    /// `p`, the projection of this group, unless a leg it summarized is of
    /// an interaction the index does not file under the group's key: then
    /// the first such leg's first record, as `Projected::unplaced` (the
    /// rebuild stops there: the leg would be summarized from some of its
    /// events only, or twice).
    pub(super) fn check_filed(&self, mut p: Projected) -> Projected {
        let Some(key) = self.guid_hash else {
            return p;
        };
        if let Some(row) = p.summaries.iter().find(|row| guid_hash(&row.guid) != key) {
            let offset = self.recs.first().map_or(0, |r| r.offset);
            p.unplaced = Some((offset, row.guid.clone()));
        }
        p
    }

    pub(super) fn push(&mut self, r: &RecordRef<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(r.payload);
        self.bytes.extend_from_slice(r.publish_time.as_bytes());
        self.recs.push(GroupRec {
            offset: r.offset,
            ingest_ms: r.ingest_ms,
            live: r.source_kind.is_live(),
            start,
            payload_len: r.payload.len(),
            publish_len: r.publish_time.len(),
            tenant: record_tenant(r.source_kind, r.source).map(Into::into),
        });
    }

    pub(super) fn len(&self) -> usize {
        self.recs.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// The memory it holds (the rebuild's buffer budget).
    pub(super) fn footprint(&self) -> usize {
        self.bytes.capacity() + self.recs.capacity() * std::mem::size_of::<GroupRec>()
    }

    /// Its records, for [`project_records`].
    pub(super) fn events(&self) -> Vec<GroupEvent<'_>> {
        self.recs
            .iter()
            .map(|rec| GroupEvent {
                rec,
                bytes: self
                    .bytes
                    .get(rec.start..rec.start + rec.payload_len + rec.publish_len)
                    .unwrap_or_default(),
            })
            .collect()
    }
}

impl Archived for GroupEvent<'_> {
    fn offset(&self) -> u64 {
        self.rec.offset
    }
    fn payload(&self) -> &[u8] {
        self.bytes.get(..self.rec.payload_len).unwrap_or_default()
    }
    fn arrival(&self) -> Arrival<'_> {
        let tail = self.bytes.get(self.rec.payload_len..).unwrap_or_default();
        arrival_of(tail, self.rec.ingest_ms, self.rec.live)
    }
    fn topic_tenant(&self) -> Option<&str> {
        self.rec.tenant.as_deref()
    }
}

/// One agent status change row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AgentRow {
    pub(super) agent: String,
    pub(super) time_ms: i64,
    pub(super) source: TimeSource,
    pub(super) offset: u64,
    pub(super) payload: Box<[u8]>,
}

/// One interaction's stored summary and the keys it is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SummaryRow {
    pub(super) guid: String,
    pub(super) offered_at: i64,
    /// The leg's tenant: the row is filed under it in `tenant_legs`.
    pub(super) tenant: Option<String>,
    /// `parentGuid`: the row files the leg under its parent in `children`.
    pub(super) parent: Option<String>,
    /// The encoded Summary (codec).
    pub(super) bytes: Vec<u8>,
    /// The leg's stage when in progress (`live_stage`), when asked for
    /// (`Want::live`).
    pub(super) live: Option<Live>,
}

/// What some events add to one tenant's counts in `tenants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TenantCount {
    pub(super) events: u64,
    /// The smallest and largest timed t(e) (weak times left out), or
    /// `i64::MAX`/`i64::MIN` when none is timed.
    pub(super) min_ms: i64,
    pub(super) max_ms: i64,
}

impl Default for TenantCount {
    fn default() -> Self {
        TenantCount {
            events: 0,
            min_ms: i64::MAX,
            max_ms: i64::MIN,
        }
    }
}

impl TenantCount {
    pub(super) fn merge(&mut self, other: TenantCount) {
        self.events = self.events.saturating_add(other.events);
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }
}

/// The tenant index entries of some events (`crate::tenant::event_tenant`
/// of each): what `--tenant` and `stats --by-tenant` read. The pairs are
/// lists, not sets: the events of an interaction come together, so a pair
/// equal to the last one is not added again, and the writer sorts and
/// dedupes what is left (a set per batch cost a rebuild more than the
/// tables it fills, issue 12). A (tenant, GUID) pair is kept as the
/// `tenant_guids` key it gives, hashed where it is projected (on a
/// rebuild's workers), not as two texts for the writer to hash.
#[derive(Debug, Default)]
pub(super) struct TenantFacts {
    /// Per tenant ("" for events without one).
    pub(super) counts: BTreeMap<String, TenantCount>,
    /// `(tenant_hash(tenant), guid_hash(interactionGUID))` of every event
    /// with both, possibly repeated.
    pub(super) guids: Vec<(u32, u64)>,
    /// The last tenant hashed, and its hash.
    last_tenant: Option<(String, u32)>,
    /// The last GUID hashed, and its hash.
    last_guid: Option<(String, u64)>,
    /// (tenant, agentId) of every event with both, possibly repeated.
    pub(super) agents: Vec<(String, String)>,
    /// (tenant, offset, payload hash) of the events of a tenant that name
    /// neither an interaction nor an agent (the index files them by hash).
    pub(super) other: Vec<(String, u64, u64)>,
}

/// Adds `(tenant, value)` to `pairs` unless it is the last pair already.
fn push_pair(pairs: &mut Vec<(String, String)>, tenant: &str, value: &str) {
    if pairs.last().is_some_and(|(t, v)| t == tenant && v == value) {
        return;
    }
    pairs.push((tenant.to_owned(), value.to_owned()));
}

/// `hash(text)`, or the hash kept in `last` when `text` is the text it
/// was of; `last` then holds `text` and its hash (its buffer reused).
fn hash_unless_last<H: Copy>(last: &mut Option<(String, H)>, text: &str, hash: fn(&str) -> H) -> H {
    match last {
        Some((kept, h)) if kept == text => *h,
        Some((kept, h)) => {
            kept.clear();
            kept.push_str(text);
            *h = hash(text);
            *h
        }
        None => {
            let h = hash(text);
            *last = Some((text.to_owned(), h));
            h
        }
    }
}

impl TenantFacts {
    fn absorb(&mut self, other: TenantFacts) {
        for (t, c) in other.counts {
            self.counts.entry(t).or_default().merge(c);
        }
        self.guids.extend(other.guids);
        self.agents.extend(other.agents);
        self.other.extend(other.other);
    }

    /// [`tenant_hash`] of `tenant`, hashed only when it is not the last
    /// one's.
    fn tenant_hash(&mut self, tenant: &str) -> u32 {
        hash_unless_last(&mut self.last_tenant, tenant, tenant_hash)
    }

    /// [`guid_hash`] of `guid`, hashed only when it is not the last one's.
    fn guid_hash(&mut self, guid: &str) -> u64 {
        hash_unless_last(&mut self.last_guid, guid, guid_hash)
    }

    /// Files one event of `tenant` (timed at `t` when `timed`).
    fn add(&mut self, tenant: Option<&str>, event: &Event<'_>, r: &impl Archived, t: EventTime) {
        let key = tenant.unwrap_or("");
        let count = match self.counts.get_mut(key) {
            Some(count) => count,
            None => self.counts.entry(key.to_owned()).or_default(),
        };
        count.events += 1;
        if t.is_timed() {
            count.min_ms = count.min_ms.min(t.ms);
            count.max_ms = count.max_ms.max(t.ms);
        }
        let Some(tenant) = tenant else {
            return;
        };
        let guid = event.body.interaction_guid.as_text();
        let agent = event.body.agent_id.as_text();
        if guid.is_none() && agent.is_none() {
            let hash = payload_hash(r.payload());
            self.other.push((tenant.to_owned(), r.offset(), hash));
        }
        if let Some(g) = guid {
            let key = (self.tenant_hash(tenant), self.guid_hash(&g));
            if self.guids.last() != Some(&key) {
                self.guids.push(key);
            }
        }
        if let Some(a) = agent {
            push_pair(&mut self.agents, tenant, &a);
        }
    }
}

/// The projection of some records: summaries of the interactions they name
/// and the status changes among them.
#[derive(Debug, Default)]
pub(super) struct Projected {
    pub(super) summaries: Vec<SummaryRow>,
    pub(super) agents: Vec<AgentRow>,
    /// Comes with the status changes (`Want::agents`): facts of each record,
    /// which every path projects exactly once.
    pub(super) tenants: TenantFacts,
    /// The largest t(e) that an event's own payload gives (rules 1–3):
    /// the same in every copy of the event, so a largest over records is
    /// one over events.
    pub(super) own_max_ms: Option<i64>,
    /// With `Want::agents`: the timed t(e) of each record of an event
    /// without a time of its own, which its copies may give otherwise
    /// (`schema::COPY_BEST` keeps the best of each event's).
    pub(super) copies: Vec<CopyTime>,
    /// With `Want::loose`: the first record (offset, GUID) that names an
    /// interaction.
    pub(super) unplaced: Option<(u64, String)>,
}

impl Projected {
    pub(super) fn absorb(&mut self, other: Projected) {
        if self.unplaced.is_none() {
            self.unplaced = other.unplaced.clone();
        }
        self.summaries.extend(other.summaries);
        self.agents.extend(other.agents);
        self.tenants.absorb(other.tenants);
        self.own_max_ms = self.own_max_ms.max(other.own_max_ms);
        self.copies.extend(other.copies);
    }
}

/// The time one record gives an event whose payload has no time of its
/// own, when that time is timed (a `publishTime` or a live receipt): one
/// candidate for the event's t(e), the best of its copies'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CopyTime {
    /// xxh3-128 of the payload: the event, whichever record holds it (128
    /// bits, so that two events sharing one is not a practical concern).
    pub(super) event: u128,
    /// The time source's rank ([`TimeSource::rank`]).
    pub(super) rank: u8,
    pub(super) ms: i64,
}

impl CopyTime {
    fn of(payload: &[u8], t: EventTime) -> CopyTime {
        CopyTime {
            event: xxhash_rust::xxh3::xxh3_128(payload),
            rank: t.source.rank(),
            ms: t.ms,
        }
    }

    /// Whether this copy's time is the event's rather than `other`'s
    /// ([`EventTime::copy_order`]: the better rule, then the smaller value).
    pub(super) fn beats(&self, other: (u8, i64)) -> bool {
        (self.rank, self.ms) < other
    }
}

/// Which parts of a projection a caller needs (the largest t(e) always
/// comes along).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Want {
    /// Summaries of the interactions the records name: the caller passes
    /// ALL records of those interactions.
    pub(super) summaries: bool,
    /// The status changes among the records and their tenant index
    /// entries: facts of each record on its own, which the caller asks for
    /// once per record.
    pub(super) agents: bool,
    /// With the summaries, each leg's stage when in progress (a walk of the
    /// events the summary was derived from: no second parse).
    pub(super) live: bool,
    /// The records are those a rebuild found in no interaction's group:
    /// one that names an interaction is noted (`Projected::unplaced`), as
    /// the index should have placed it.
    pub(super) loose: bool,
}

impl Want {
    pub(super) const ALL: Want = Want {
        summaries: true,
        agents: true,
        live: false,
        loose: false,
    };
    pub(super) const SUMMARIES: Want = Want {
        summaries: true,
        agents: false,
        live: false,
        loose: false,
    };
    pub(super) const AGENTS: Want = Want {
        summaries: false,
        agents: true,
        live: false,
        loose: false,
    };
    /// What a rebuild projects of the records in no interaction's group.
    pub(super) const LOOSE: Want = Want {
        loose: true,
        ..Want::AGENTS
    };
}

/// Projects `recs`: every interaction named by them, summarized over the
/// given records that name it, every status change, and the largest t(e),
/// as far as `want` asks.
pub(super) fn project_records<R: Archived>(
    recs: &[R],
    want: Want,
) -> Result<Projected, CodecError> {
    let mut out = Projected::default();
    // Usually one interaction; more only on a GUID hash collision.
    let mut by_guid: Vec<(String, Vec<Prepared<'_>>)> = Vec::new();
    // Each event is parsed into a box, which goes into its interaction's
    // list or, when not kept, takes the next event: no ~0.9 KB event is
    // moved out of the parser and into a box of its own (issue 12).
    let mut spare: Option<Box<Event<'_>>> = None;
    for (input_index, r) in recs.iter().enumerate() {
        let mut event = spare.take().unwrap_or_default();
        if parse_event_into(r.payload(), &mut event).is_err() {
            spare = Some(event);
            continue;
        }
        let t = event_time(&event, r.arrival());
        // A weak time orders events but never stretches a window; a time
        // a copy gives counts only if it is its event's best
        // (`schema::COPY_BEST`), which no single record can tell.
        if t.source.is_own() {
            out.own_max_ms = out.own_max_ms.max(Some(t.ms));
        } else if t.is_timed() && want.agents {
            out.copies.push(CopyTime::of(r.payload(), t));
        }
        if want.agents {
            let tenant = tenant_of(r.topic_tenant(), &event);
            out.tenants.add(tenant.as_deref(), &event, r, t);
            if let Some(agent) = status_change_agent(&event) {
                out.agents.push(AgentRow {
                    agent: agent.into_owned(),
                    time_ms: t.ms,
                    source: t.source,
                    offset: r.offset(),
                    payload: r.payload().into(),
                });
            }
        }
        if want.loose && out.unplaced.is_none() {
            if let Some(g) = event.body.interaction_guid.as_text() {
                out.unplaced = Some((r.offset(), g.into_owned()));
            }
        }
        let slot = match event.body.interaction_guid.as_text() {
            Some(g) if want.summaries => match by_guid.iter().position(|(have, _)| *have == g) {
                Some(i) => Some(i),
                None => {
                    by_guid.push((g.into_owned(), Vec::new()));
                    Some(by_guid.len() - 1)
                }
            },
            _ => None,
        };
        let Some(slot) = slot else {
            spare = Some(event);
            continue;
        };
        let key = CanonicalKey::new(&event, t.ms, r.payload());
        let kind = Kind::of(&event.event_type());
        by_guid[slot].1.push(Prepared {
            key,
            time_source: t.source,
            event,
            kind,
            topic_tenant: r.topic_tenant(),
            input_index,
        });
    }
    let mut buf = Vec::new();
    for (guid, mut prepared) in by_guid {
        dedupe_in_canonical_order(&mut prepared);
        let live = if want.live {
            stage_of_prepared(&prepared)
        } else {
            None
        };
        if let Some(summary) = derive(&prepared) {
            let at = summary.offered_at;
            let parent = summary.parent_guid.clone();
            let tenant = summary.tenant.clone();
            codec::encode_summary(&guid, summary, &mut buf)?;
            out.summaries.push(SummaryRow {
                guid,
                offered_at: at,
                tenant,
                parent,
                bytes: buf.clone(),
                live,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(offset: u64, payload: &str, ingest_ms: i64) -> ArchivedEvent {
        ArchivedEvent::new(offset, (ingest_ms, false), payload.as_bytes(), "", None)
    }

    #[test]
    fn weak_times_never_raise_the_largest_time() {
        // An AgentProvChange with an empty msgInfo takes the import time
        // (months later); a queued event carries only eventTS. Neither may
        // stretch the archive's time span.
        let prov =
            r#"{"AgentProvChange":{"event":"AgentProvChange","agentId":"ag1","msgInfo":{}}}"#;
        let weak = r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"g1","eventTS":1763900900}}"#;
        let status =
            r#"{"AgentStatusChange":{"agentId":"ag1","newState":5,"statusEventTS":1763900000}}"#;
        let recs = [
            imported(0, prov, 1_800_000_000_000),
            imported(1, weak, 1_800_000_000_000),
            imported(2, status, 1_800_000_000_000),
        ];
        let p = project_records(&recs, Want::AGENTS).unwrap();
        assert_eq!(p.own_max_ms, Some(1_763_900_000_000));
        assert!(p.copies.is_empty());
        assert_eq!(p.agents.len(), 1);
        assert_eq!(p.agents[0].source, TimeSource::StatusEventTs);
        // With nothing timed there is no largest time at all.
        let p = project_records(&recs[..2], Want::AGENTS).unwrap();
        assert_eq!(p.own_max_ms, None);
    }

    #[test]
    fn a_live_receipt_is_timed() {
        let prov =
            r#"{"AgentProvChange":{"event":"AgentProvChange","agentId":"ag1","msgInfo":{}}}"#;
        let rec = ArchivedEvent::new(0, (1_763_900_123_000, true), prov.as_bytes(), "", None);
        let p = project_records(&[rec], Want::AGENTS).unwrap();
        // Not the payload's own time: a candidate, which a better copy of
        // the event may replace.
        assert_eq!(p.own_max_ms, None);
        assert_eq!(
            p.copies,
            [CopyTime {
                event: xxhash_rust::xxh3::xxh3_128(prov.as_bytes()),
                rank: TimeSource::Received.rank(),
                ms: 1_763_900_123_000
            }]
        );
    }
}
