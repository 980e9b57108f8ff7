//! The columns of a [`Summary`], in JSON order: the one list that CSV and
//! the human listing read (JSON comes from serde; a test holds the two equal).

use crate::columns::{Cell, Column, Show};
use crate::summary::{Direction, Summary};

const fn col(
    key: &'static str,
    label: Option<&'static str>,
    show: Show,
    width: usize,
    get: fn(&Summary) -> Cell<'_>,
) -> Column<Summary> {
    Column {
        key,
        label,
        show,
        width,
        get,
    }
}

fn text(v: &Option<String>) -> Cell<'_> {
    Cell::opt_text(v.as_deref())
}

/// Every field of [`Summary`], in JSON order.
pub static SUMMARY_COLUMNS: [Column<Summary>; 42] = [
    col("interactionGUID", Some("guid"), Show::Text, 72, |s| {
        text(&s.interaction_guid)
    }),
    col("contactId", None, Show::Text, 0, |s| text(&s.contact_id)),
    col("legIndex", None, Show::Number, 0, |s| {
        Cell::Count(s.leg_index)
    }),
    col("parentGuid", None, Show::Text, 0, |s| text(&s.parent_guid)),
    col("kind", Some("kind"), Show::Text, 8, |s| {
        Cell::Text(s.kind.as_str().into())
    }),
    col("tenant", None, Show::Text, 0, |s| text(&s.tenant)),
    col("mediaType", Some("channel"), Show::Text, 7, |s| {
        text(&s.media_type)
    }),
    col("queueId", Some("queue"), Show::Number, 6, |s| {
        Cell::opt_int(s.queue_id)
    }),
    col("direction", Some("dir"), Show::Text, 3, |s| {
        Cell::opt_text(s.direction.map(Direction::as_str))
    }),
    col("createdAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.created_at)
    }),
    col("queuedAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.queued_at)
    }),
    col("offeredAt", Some("offered"), Show::Instant, 29, |s| {
        Cell::Int(s.offered_at)
    }),
    col("offerCount", None, Show::Number, 0, |s| {
        Cell::Count(s.offer_count)
    }),
    col("rejectCount", None, Show::Number, 0, |s| {
        Cell::Count(s.reject_count)
    }),
    col("rejectTimeouts", None, Show::Number, 0, |s| {
        Cell::Count(s.reject_timeouts)
    }),
    col("rejectRefusals", None, Show::Number, 0, |s| {
        Cell::Count(s.reject_refusals)
    }),
    col("acceptedAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.accepted_at)
    }),
    col("assignedAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.assigned_at)
    }),
    col("agentId", Some("agent"), Show::Text, 24, |s| {
        text(&s.agent_id)
    }),
    col("connectedAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.connected_at)
    }),
    col("wrapStartAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.wrap_start_at)
    }),
    col("wrapEndAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.wrap_end_at)
    }),
    col("endedAt", None, Show::Instant, 0, |s| {
        Cell::opt_int(s.ended_at)
    }),
    col("holdCount", None, Show::Number, 0, |s| {
        Cell::Count(s.hold_count)
    }),
    col("holdMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.hold_ms)
    }),
    col("maxHoldMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.max_hold_ms)
    }),
    col("queueMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.queue_ms)
    }),
    col("ringMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.ring_ms)
    }),
    col("waitMs", Some("wait"), Show::Duration, 10, |s| {
        Cell::opt_int(s.wait_ms)
    }),
    col("dialMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.dial_ms)
    }),
    col("talkMs", Some("talk"), Show::Duration, 10, |s| {
        Cell::opt_int(s.talk_ms)
    }),
    col("wrapMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.wrap_ms)
    }),
    col("handleMs", Some("handle"), Show::Duration, 10, |s| {
        Cell::opt_int(s.handle_ms)
    }),
    col("abandonMs", None, Show::Duration, 0, |s| {
        Cell::opt_int(s.abandon_ms)
    }),
    col("outcome", Some("outcome"), Show::Text, 10, |s| {
        Cell::Text(s.outcome.as_str().into())
    }),
    col("hangupInitiator", None, Show::Text, 0, |s| {
        text(&s.hangup_initiator)
    }),
    col("callHangupReason", None, Show::Text, 0, |s| {
        text(&s.call_hangup_reason)
    }),
    col("dispositionCode", None, Show::Text, 0, |s| {
        text(&s.disposition_code)
    }),
    col("transferred", None, Show::Flag, 0, |s| {
        Cell::Bool(s.transferred)
    }),
    col("complete", None, Show::Flag, 0, |s| Cell::Bool(s.complete)),
    col("eventCount", None, Show::Number, 0, |s| {
        Cell::Count(s.event_count)
    }),
    col("anomalies", None, Show::List, 0, |s| {
        Cell::List(s.anomalies.iter().map(|a| a.as_str()).collect())
    }),
];

/// The columns of the streamed human listing (`ccvault interactions`).
pub fn listed_columns() -> impl Iterator<Item = &'static Column<Summary>> {
    SUMMARY_COLUMNS.iter().filter(|c| c.label.is_some())
}

/// One line of the human listing: each listed column padded to its width.
fn listing_line(cells: Vec<String>) -> String {
    let (widths, right): (Vec<usize>, Vec<bool>) = listed_columns()
        .map(|c| (c.width, c.show.right_aligned()))
        .unzip();
    crate::text::line(&cells, &widths, &right)
}

/// The header line of the human listing.
pub fn listing_header() -> String {
    listing_line(
        listed_columns()
            .map(|c| c.label.unwrap_or("").to_uppercase())
            .collect(),
    )
}

/// `s` as a line of the human listing, times in `tz` (UTC when `None`).
pub fn listing_row(s: &Summary, tz: Option<&jiff::tz::TimeZone>) -> String {
    listing_line(listed_columns().map(|c| c.human(s, tz)).collect())
}
