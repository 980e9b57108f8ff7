//! The three tables and how a row of each is made: `events` (one archived
//! event, its archive metadata and its payload byte-exact), `interactions`
//! (one leg: every column of [`SUMMARY_COLUMNS`]) and `agent-states` (one
//! state span of an agent).
//!
//! Invariants: a table's columns are declared once ([`Table::specs`]) and
//! its rows are written in that order through [`Rows`], which refuses a
//! value of another type or a missing one; the interactions table reads
//! [`SUMMARY_COLUMNS`] for both, so a new summary field reaches Parquet
//! without a change here.

use std::borrow::Cow;

use ccvault_event::{
    event_time, parse_event_into, resolve_time, Arrival, Event, EventTime, PayloadTimes,
};
use ccvault_projections::agents::AgentSpan;
use ccvault_projections::summary::SUMMARY_COLUMNS;
use ccvault_projections::tenant::record_or_guid_tenant;
use ccvault_projections::{event_tenant, Summary};
use ccvault_store::facts::Fact;
use ccvault_store::RecordRef;

use crate::column::{ColumnError, Rows, Spec, Ty};

/// The tables of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Events,
    Interactions,
    AgentStates,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Events, Table::Interactions, Table::AgentStates];

    /// The table's directory under the export directory.
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Interactions => "interactions",
            Table::AgentStates => "agent-states",
        }
    }

    /// Whether the table's rows come in the order of their partition's
    /// date, so a row of a later date means the earlier dates' partitions
    /// are complete. Legs are read in `offeredAt` order and partitioned by
    /// its date; events come in log order and spans agent by agent.
    pub fn rows_in_date_order(self) -> bool {
        matches!(self, Table::Interactions)
    }

    pub fn specs(self) -> Vec<Spec> {
        match self {
            Table::Events => EVENT_COLUMNS.to_vec(),
            Table::Interactions => SUMMARY_COLUMNS
                .iter()
                .map(|c| Spec::new(c.key, Ty::of_show(c.show), true))
                .collect(),
            Table::AgentStates => AGENT_SPAN_COLUMNS.to_vec(),
        }
    }
}

/// The columns of `events`, in order: its text pages made by the export
/// (the most of its cost, [`crate::dict`], [`crate::plain`]).
pub const EVENT_COLUMNS: [Spec; 15] = [
    Spec::new("offset", Ty::Int64, false),
    Spec::own_dictionary("sourceKind", false),
    Spec::own_dictionary("source", false),
    Spec::new("line", Ty::Int64, true),
    Spec::new("ingestTime", Ty::Timestamp, false),
    Spec::own_dictionary("messageId", true),
    Spec::own_dictionary("publishTime", true),
    Spec::new("eventTime", Ty::Timestamp, false),
    Spec::own_dictionary("timeSource", false),
    Spec::own_dictionary("family", true),
    Spec::own_dictionary("type", true),
    Spec::own_dictionary("interactionGUID", true),
    Spec::own_dictionary("agentId", true),
    Spec::own_dictionary("tenant", true),
    Spec::own_pages("payload"),
];

/// The columns of `agent-states`, in order.
pub const AGENT_SPAN_COLUMNS: [Spec; 7] = [
    Spec::new("agentId", Ty::Text, false),
    Spec::new("state", Ty::Int64, false),
    Spec::new("reason", Ty::Text, true),
    Spec::own_dictionary("tenant", true),
    Spec::new("start", Ty::Timestamp, false),
    Spec::new("end", Ty::Timestamp, false),
    Spec::new("ms", Ty::Int64, false),
];

/// What the export reads of one archived (not quarantined) record.
pub struct EventRow<'e> {
    /// The event's names, when it is one.
    pub names: Option<EventNames<'e>>,
    pub time: EventTime,
    /// Borrowed from the record or the event where it can be: two of the
    /// three allocations a row made were its tenant's.
    pub tenant: Option<Cow<'e, str>>,
}

/// The columns of an event's row that come from the event.
pub struct EventNames<'e> {
    pub family: Cow<'e, str>,
    pub event_type: Cow<'e, str>,
    pub interaction_guid: Option<Cow<'e, str>>,
    pub agent_id: Option<Cow<'e, str>>,
}

/// How a record arrived, for its event time: as
/// `ccvault_projections::record_input`, for a record not copied out of the
/// log's buffer.
fn arrival<'a>(rec: &RecordRef<'a>) -> Arrival<'a> {
    Arrival {
        publish_time: (!rec.publish_time.is_empty()).then_some(rec.publish_time),
        ingest_ms: rec.ingest_ms,
        live: rec.source_kind.is_live(),
    }
}

/// Parses a record once for its row, its partition and the agent states
/// (`parse_event_into`: the plain shape without serde), into `slot`,
/// whatever it held: a caller reuses one for many records instead of
/// moving each ~0.9 KB event out of the parser and into its row (~1 % of a
/// 1M Parquet export's samples, issue 14). A payload that is not an event
/// (none should be archived unquarantined) still gets a row: its time from
/// the record alone, no event fields. The event is returned too, when the
/// payload is one.
pub fn read_event<'e, 'a>(
    rec: &RecordRef<'a>,
    slot: &'e mut Event<'a>,
) -> (EventRow<'e>, Option<&'e Event<'a>>) {
    match parse_event_into(rec.payload, slot) {
        Ok(()) => {
            let event: &'e Event<'a> = &*slot;
            let row = EventRow {
                names: Some(EventNames {
                    family: Cow::Borrowed(event.family.as_ref()),
                    event_type: event.event_type(),
                    interaction_guid: event.body.interaction_guid.as_text(),
                    agent_id: event.body.agent_id.as_text(),
                }),
                time: event_time(event, arrival(rec)),
                tenant: event_tenant(rec.source_kind, rec.source, event),
            };
            (row, Some(event))
        }
        Err(_) => (
            EventRow {
                names: None,
                time: resolve_time(PayloadTimes::default(), arrival(rec)),
                tenant: None,
            },
            None,
        ),
    }
}

/// The row of a record from its segment's facts (`ccvault_store::facts`),
/// without parsing its payload: the same row [`read_event`] makes of it.
pub fn fact_row<'f>(rec: &RecordRef<'f>, fact: &Fact<'f>) -> EventRow<'f> {
    EventRow {
        names: Some(EventNames {
            family: Cow::Borrowed(fact.family),
            event_type: Cow::Borrowed(fact.event_type),
            interaction_guid: fact.interaction_guid.map(Cow::Borrowed),
            agent_id: fact.agent_id.map(Cow::Borrowed),
        }),
        time: resolve_time(fact.times, arrival(rec)),
        tenant: record_or_guid_tenant(rec.source_kind, rec.source, fact.interaction_guid)
            .map(Cow::Borrowed),
    }
}

/// Pushes the row of `rec`.
pub fn push_event(
    rows: &mut Rows,
    rec: &RecordRef<'_>,
    row: &EventRow<'_>,
) -> Result<(), ColumnError> {
    fn nonempty(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    rows.int(0, offset_i64(rec.offset)?)?;
    rows.text(1, rec.source_kind.as_str())?;
    rows.text(2, rec.source)?;
    rows.opt_int(
        3,
        (rec.line > 0)
            .then(|| i64::try_from(rec.line).ok())
            .flatten(),
    )?;
    rows.int(4, rec.ingest_ms)?;
    rows.opt_text(5, nonempty(rec.message_id))?;
    rows.opt_text(6, nonempty(rec.publish_time))?;
    rows.int(7, row.time.ms)?;
    rows.text(8, row.time.source.name())?;
    match &row.names {
        Some(n) => {
            rows.text(9, &n.family)?;
            rows.text(10, &n.event_type)?;
            rows.opt_text(11, n.interaction_guid.as_deref())?;
            rows.opt_text(12, n.agent_id.as_deref())?;
        }
        None => {
            for i in 9..=12 {
                rows.null(i)?;
            }
        }
    }
    rows.opt_text(13, row.tenant.as_deref())?;
    if row.names.is_some() || std::str::from_utf8(rec.payload).is_ok() {
        // An event (parsed now or when archived), so UTF-8: kept byte for
        // byte.
        rows.raw_text(14, rec.payload)?;
    } else {
        // A STRING column must hold UTF-8; no archived event lacks it.
        rows.text(14, &String::from_utf8_lossy(rec.payload))?;
    }
    rows.end_row()
}

fn offset_i64(offset: u64) -> Result<i64, ColumnError> {
    i64::try_from(offset).map_err(|_| ColumnError {
        column: "offset",
        why: format!("offset {offset} does not fit INT64"),
    })
}

/// Pushes one leg: every column of [`SUMMARY_COLUMNS`].
pub fn push_summary(rows: &mut Rows, s: &Summary) -> Result<(), ColumnError> {
    for (i, c) in SUMMARY_COLUMNS.iter().enumerate() {
        rows.cell(i, (c.get)(s))?;
    }
    rows.end_row()
}

/// Pushes one agent state span.
pub fn push_span(rows: &mut Rows, s: &AgentSpan) -> Result<(), ColumnError> {
    rows.text(0, &s.agent_id)?;
    rows.int(1, s.state)?;
    rows.opt_text(2, s.reason.as_deref())?;
    rows.opt_text(3, s.tenant.as_deref())?;
    rows.int(4, s.start_ms)?;
    rows.int(5, s.end_ms)?;
    rows.int(6, s.ms)?;
    rows.end_row()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leg with every optional field set, so each column's cell has its type.
    fn full_summary() -> Summary {
        let mut json = serde_json::Map::new();
        for c in &SUMMARY_COLUMNS {
            let v = match Ty::of_show(c.show) {
                Ty::Timestamp | Ty::Int64 => serde_json::json!(5),
                Ty::Bool => serde_json::json!(true),
                Ty::Double => serde_json::json!(0.5),
                Ty::Text => serde_json::json!("x"),
                Ty::TextList => serde_json::json!([]),
            };
            json.insert(c.key.to_owned(), v);
        }
        // Fields whose text must name a variant.
        json.insert("kind".into(), "inbound".into());
        json.insert("direction".into(), "in".into());
        json.insert("outcome".into(), "answered".into());
        json.insert("anomalies".into(), serde_json::json!(["missing_created"]));
        serde_json::from_value(serde_json::Value::Object(json)).expect("a full summary")
    }

    #[test]
    fn every_summary_column_has_the_parquet_type_of_its_cells() {
        let s = full_summary();
        let mut rows = Rows::new(&Table::Interactions.specs());
        push_summary(&mut rows, &s).unwrap();
        assert_eq!(rows.len(), 1);
        for c in &SUMMARY_COLUMNS {
            let cell = (c.get)(&s);
            assert_ne!(cell, ccvault_projections::columns::Cell::Null, "{}", c.key);
        }
        let schema = crate::column::schema(&Table::Interactions.specs()).unwrap();
        assert_eq!(schema.get_fields().len(), SUMMARY_COLUMNS.len());
    }
}
