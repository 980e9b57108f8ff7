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
use ccvault_projections::{event_tenant, Summary};
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
pub struct EventRow<'e, 'a> {
    /// The event, parsed into the caller's [`read_event`] slot.
    pub event: Option<&'e Event<'a>>,
    pub time: EventTime,
    /// Borrowed from the record or the event where it can be: two of the
    /// three allocations a row made were its tenant's.
    pub tenant: Option<Cow<'e, str>>,
}

/// Parses a record once for its row, its partition and the agent states
/// (`parse_event_into`: the plain shape without serde), into `slot`,
/// whatever it held: a caller reuses one for many records instead of
/// moving each ~0.9 KB event out of the parser and into its row (~1 % of a
/// 1M Parquet export's samples, issue 14). A payload that is not an event
/// (none should be archived unquarantined) still gets a row: its time from
/// the record alone, no event fields.
pub fn read_event<'e, 'a>(rec: &RecordRef<'a>, slot: &'e mut Event<'a>) -> EventRow<'e, 'a> {
    // As `ccvault_projections::record_input`, for a record not copied out
    // of the log's buffer.
    let arrival = Arrival {
        publish_time: (!rec.publish_time.is_empty()).then_some(rec.publish_time),
        ingest_ms: rec.ingest_ms,
        live: rec.source_kind.is_live(),
    };
    match parse_event_into(rec.payload, slot) {
        Ok(()) => {
            let event = &*slot;
            let time = event_time(event, arrival);
            let tenant = event_tenant(rec.source_kind, rec.source, event);
            EventRow {
                event: Some(event),
                time,
                tenant,
            }
        }
        Err(_) => EventRow {
            event: None,
            time: resolve_time(PayloadTimes::default(), arrival),
            tenant: None,
        },
    }
}

/// Pushes the row of `rec`.
pub fn push_event(
    rows: &mut Rows,
    rec: &RecordRef<'_>,
    row: &EventRow<'_, '_>,
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
    match row.event {
        Some(ev) => {
            rows.text(9, &ev.family)?;
            rows.text(10, &ev.event_type())?;
            rows.opt_text(11, ev.body.interaction_guid.as_text().as_deref())?;
            rows.opt_text(12, ev.body.agent_id.as_text().as_deref())?;
        }
        None => {
            for i in 9..=12 {
                rows.null(i)?;
            }
        }
    }
    rows.opt_text(13, row.tenant.as_deref())?;
    if row.event.is_some() || std::str::from_utf8(rec.payload).is_ok() {
        // Parsed as an event, so UTF-8: kept byte for byte.
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
