//! `show GUID --html`: a swim-lane picture of one interaction above the table
//! of its raw events, and the pieces the contact page ([`crate::contact`])
//! draws each leg with.
//!
//! The lanes are derived from the timeline's ordered events and summary
//! ([`lanes`]): queue time and one ring lane per offer come from walking the
//! events (the summary only keeps the answering offer); talk, hold, wrap and
//! dial use the summary's instants and the docs/METRICS.md §3 hold rule, so
//! the picture adds up to the numbers `show` prints. [`frame`] draws the SVG
//! around them (time axis, grid, event ticks, lane backgrounds), [`bars`] one
//! lane's segments with their labels, and [`page`] the whole page (facts,
//! durations, the picture, the events table).

mod bars;
mod frame;
mod lanes;
mod page;

pub(crate) use bars::lane_row;
pub(crate) use frame::{
    event_ticks, lane_background, svg_open, time_grid, time_scale, AXIS_H, CSS, EVENTS_H, LABEL_W,
    LANE_H, W,
};
pub use lanes::{lanes, Lane, Segment, SegmentKind};
pub use page::render_timeline;
pub(crate) use page::{events_table, guid_text, legend};
