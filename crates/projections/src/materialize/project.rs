//! Projecting archived records: the one function ([`project_records`]) that
//! both the rebuild and the catch-up summarize with, which is why they
//! agree.

use ccvault_event::{event_time_ms, parse_event, parse_topic, CanonicalKey};
use ccvault_store::{Record, RecordRef, SourceKind};

use crate::agents::status_change_agent;
use crate::codec::{self, CodecError};
use crate::input::{dedupe_in_canonical_order, Kind, Prepared};
use crate::summary::derive;

/// The tenant a record's MQTT topic names, when it follows the 8x8 layout.
fn topic_tenant(kind: SourceKind, source: &str) -> Option<&str> {
    if kind != SourceKind::Mqtt {
        return None;
    }
    parse_topic(source).map(|t| t.tenant)
}

/// An archived record as the projection functions take it.
pub fn record_input(rec: &Record) -> crate::EventInput<'_> {
    crate::EventInput {
        payload: &rec.payload,
        publish_time: (!rec.publish_time.is_empty()).then_some(rec.publish_time.as_str()),
        ingest_ms: rec.ingest_ms,
        topic_tenant: topic_tenant(rec.source_kind, &rec.source),
    }
}

/// A record detached from the log's buffer: what the projections need.
/// One allocation a record (payload and publish time together): a rebuild
/// makes millions on the log reader's thread and frees them on the workers'.
#[derive(Debug, Clone)]
pub(super) struct ArchivedEvent {
    pub(super) offset: u64,
    ingest_ms: i64,
    /// The payload, then the publish time.
    bytes: Box<[u8]>,
    payload_len: usize,
    tenant: Option<Box<str>>,
}

impl ArchivedEvent {
    fn new(
        offset: u64,
        ingest_ms: i64,
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
            bytes: bytes.into_boxed_slice(),
            payload_len: payload.len(),
            tenant: tenant.map(Into::into),
        }
    }

    pub(super) fn of_ref(r: &RecordRef<'_>) -> ArchivedEvent {
        let tenant = topic_tenant(r.source_kind, r.source);
        ArchivedEvent::new(r.offset, r.ingest_ms, r.payload, r.publish_time, tenant)
    }

    pub(super) fn of_record(r: &Record) -> ArchivedEvent {
        let tenant = topic_tenant(r.source_kind, &r.source);
        ArchivedEvent::new(r.offset, r.ingest_ms, &r.payload, &r.publish_time, tenant)
    }

    pub(super) fn payload(&self) -> &[u8] {
        self.bytes.get(..self.payload_len).unwrap_or_default()
    }

    /// The publish time ("" when none; it was a `&str` when stored).
    fn publish_time(&self) -> &str {
        let tail = self.bytes.get(self.payload_len..).unwrap_or_default();
        std::str::from_utf8(tail).unwrap_or_default()
    }

    /// What buffering it costs, roughly (the rebuild's memory budget).
    pub(super) fn buffered_bytes(&self) -> usize {
        self.bytes.len() + 64
    }
}

/// One agent status change row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AgentRow {
    pub(super) agent: String,
    pub(super) time_ms: i64,
    pub(super) offset: u64,
    pub(super) payload: Box<[u8]>,
}

/// The projection of some records: summaries of the interactions they name
/// and the status changes among them.
#[derive(Debug, Default)]
pub(super) struct Projected {
    /// `(guid, offeredAt, encoded Summary)`.
    pub(super) summaries: Vec<(String, i64, Vec<u8>)>,
    pub(super) agents: Vec<AgentRow>,
    pub(super) max_time_ms: Option<i64>,
}

impl Projected {
    pub(super) fn absorb(&mut self, other: Projected) {
        self.summaries.extend(other.summaries);
        self.agents.extend(other.agents);
        self.max_time_ms = self.max_time_ms.max(other.max_time_ms);
    }
}

/// Which parts of a projection a caller needs (the largest t(e) always
/// comes along).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Want {
    /// Summaries of the interactions the records name: the caller passes
    /// ALL records of those interactions.
    pub(super) summaries: bool,
    /// The status changes among the records.
    pub(super) agents: bool,
}

impl Want {
    pub(super) const ALL: Want = Want {
        summaries: true,
        agents: true,
    };
    pub(super) const SUMMARIES: Want = Want {
        summaries: true,
        agents: false,
    };
    pub(super) const AGENTS: Want = Want {
        summaries: false,
        agents: true,
    };
}

/// Projects `recs`: every interaction named by them, summarized over the
/// given records that name it, every status change, and the largest t(e),
/// as far as `want` asks.
pub(super) fn project_records(recs: &[ArchivedEvent], want: Want) -> Result<Projected, CodecError> {
    let mut out = Projected::default();
    // Usually one interaction; more only on a GUID hash collision.
    let mut by_guid: Vec<(String, Vec<Prepared<'_>>)> = Vec::new();
    for (input_index, r) in recs.iter().enumerate() {
        let Ok(event) = parse_event(r.payload()) else {
            continue;
        };
        let publish_time = r.publish_time();
        let publish = (!publish_time.is_empty()).then_some(publish_time);
        let t = event_time_ms(&event, publish, r.ingest_ms);
        out.max_time_ms = out.max_time_ms.max(Some(t));
        if want.agents {
            if let Some(agent) = status_change_agent(&event) {
                out.agents.push(AgentRow {
                    agent: agent.into_owned(),
                    time_ms: t,
                    offset: r.offset,
                    payload: r.payload().into(),
                });
            }
        }
        if !want.summaries {
            continue;
        }
        let slot = match event.body.interaction_guid.as_text() {
            None => continue,
            Some(g) => match by_guid.iter().position(|(have, _)| *have == g) {
                Some(i) => i,
                None => {
                    by_guid.push((g.into_owned(), Vec::new()));
                    by_guid.len() - 1
                }
            },
        };
        let key = CanonicalKey::new(&event, t, r.payload());
        let kind = Kind::of(&event.event_type());
        by_guid[slot].1.push(Prepared {
            key,
            event,
            kind,
            topic_tenant: r.tenant.as_deref(),
            input_index,
        });
    }
    let mut buf = Vec::new();
    for (guid, mut prepared) in by_guid {
        dedupe_in_canonical_order(&mut prepared);
        if let Some(summary) = derive(&prepared) {
            codec::encode_into(&summary, &mut buf)?;
            out.summaries.push((guid, summary.offered_at, buf.clone()));
        }
    }
    Ok(out)
}
