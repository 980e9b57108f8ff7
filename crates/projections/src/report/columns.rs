//! The columns of a [`ReportRow`], in JSON order: the one list that CSV,
//! the text table and the HTML table read (JSON comes from serde; a test
//! holds the two equal).

use crate::columns::{Cell, Column, Show};
use crate::report::{GroupBy, ReportRow};

const fn col(
    key: &'static str,
    label: Option<&'static str>,
    show: Show,
    get: fn(&ReportRow) -> Cell<'_>,
) -> Column<ReportRow> {
    Column {
        key,
        label,
        show,
        width: 0,
        get,
    }
}

/// Every column a report row can have, in JSON order; the group columns
/// (`queueId`, `agentId`, `mediaType`) appear only when the report groups
/// by them ([`report_columns`]).
pub static REPORT_COLUMNS: [Column<ReportRow>; 29] = [
    col("intervalStart", Some("interval"), Show::Instant, |r| {
        Cell::Int(r.interval_start)
    }),
    col("intervalEnd", None, Show::Instant, |r| {
        Cell::Int(r.interval_end)
    }),
    col("queueId", Some("queue"), Show::Text, |r| {
        Cell::opt_int(r.group.queue_id.flatten())
    }),
    col("agentId", Some("agent"), Show::Text, |r| {
        Cell::opt_text(r.group.agent_id.as_ref().and_then(|a| a.as_deref()))
    }),
    col("mediaType", Some("channel"), Show::Text, |r| {
        Cell::opt_text(r.group.media_type.as_ref().and_then(|m| m.as_deref()))
    }),
    col("offered", Some("offered"), Show::Number, |r| {
        Cell::Count(r.offered)
    }),
    col("contacts", Some("contacts"), Show::Number, |r| {
        Cell::Count(r.contacts)
    }),
    col("transferredIn", Some("xfer in"), Show::Number, |r| {
        Cell::Count(r.transferred_in)
    }),
    col("answered", Some("answered"), Show::Number, |r| {
        Cell::Count(r.answered)
    }),
    col("abandoned", Some("abandoned"), Show::Number, |r| {
        Cell::Count(r.abandoned)
    }),
    col("shortAbandoned", Some("short"), Show::Number, |r| {
        Cell::Count(r.short_abandoned)
    }),
    col("answeredInSla", None, Show::Number, |r| {
        Cell::Count(r.answered_in_sla)
    }),
    col("serviceLevel", Some("SL"), Show::Percent, |r| {
        Cell::opt_ratio(r.service_level)
    }),
    col("abandonRate", Some("aband. rate"), Show::Percent, |r| {
        Cell::opt_ratio(r.abandon_rate)
    }),
    col("asaMs", Some("ASA"), Show::Duration, |r| {
        Cell::opt_int(r.asa_ms)
    }),
    col("maxWaitMs", Some("max wait"), Show::Duration, |r| {
        Cell::opt_int(r.max_wait_ms)
    }),
    col("unqueued", Some("unqueued"), Show::Number, |r| {
        Cell::Count(r.unqueued)
    }),
    col("consults", Some("consults"), Show::Number, |r| {
        Cell::Count(r.consults)
    }),
    col("outbound", Some("outbound"), Show::Number, |r| {
        Cell::Count(r.outbound)
    }),
    col("outboundConnected", Some("out conn."), Show::Number, |r| {
        Cell::Count(r.outbound_connected)
    }),
    col("handled", Some("handled"), Show::Number, |r| {
        Cell::Count(r.handled)
    }),
    col("ahtMs", Some("AHT"), Show::Duration, |r| {
        Cell::opt_int(r.aht_ms)
    }),
    col("avgTalkMs", Some("talk"), Show::Duration, |r| {
        Cell::opt_int(r.avg_talk_ms)
    }),
    col("avgHoldMs", Some("hold"), Show::Duration, |r| {
        Cell::opt_int(r.avg_hold_ms)
    }),
    col("avgWrapMs", Some("wrap"), Show::Duration, |r| {
        Cell::opt_int(r.avg_wrap_ms)
    }),
    col("holds", Some("holds"), Show::Number, |r| {
        Cell::Count(r.holds)
    }),
    col("maxHoldMs", Some("max hold"), Show::Duration, |r| {
        Cell::opt_int(r.max_hold_ms)
    }),
    col("rejects", Some("rejects"), Show::Number, |r| {
        Cell::Count(r.rejects)
    }),
    col("transfers", Some("transfers"), Show::Number, |r| {
        Cell::Count(r.transfers)
    }),
];

/// The group columns and which grouping shows each.
fn shown_for(key: &str, by: GroupBy) -> bool {
    match key {
        "queueId" => by.queue,
        "agentId" => by.agent,
        "mediaType" => by.channel,
        _ => true,
    }
}

/// The columns of a report grouped `by`, in JSON order.
pub fn report_columns(by: GroupBy) -> impl Iterator<Item = &'static Column<ReportRow>> {
    REPORT_COLUMNS.iter().filter(move |c| shown_for(c.key, by))
}

/// The columns of human views (text and HTML tables) of a report grouped `by`.
pub fn human_report_columns(by: GroupBy) -> impl Iterator<Item = &'static Column<ReportRow>> {
    report_columns(by).filter(|c| c.label.is_some())
}
