//! Projections of the ccvault archive: interaction summaries and timelines,
//! aggregate reports and agent state time (docs/METRICS.md §3–5).
//!
//! Guarantees:
//! - Every output is a pure function of the *set* of distinct events given
//!   (events are the same when their payload bytes are equal): arrival order
//!   and duplicates never change a byte of the JSON or text output.
//! - Nothing here panics on input: payloads that are not events are skipped,
//!   odd values read as absent, arithmetic that would overflow reads as null.
//! - Accumulators ([`report::Report`], [`agents::AgentStates`]) can be fed in
//!   any order, split across threads and merged, with the same result.
//!
//! - [`materialize::Projections`] keeps them in `projections.redb` beside the
//!   archive; a rebuild and any sequence of catch-ups give the same tables.
//! - One rule says which tenant an event or a leg belongs to
//!   ([`tenant::event_tenant`]); the tenant index and `Summary::tenant`
//!   both follow it.
//!
//! Rules the contract leaves open are decided in `docs/METRICS.md`.

pub mod agents;
mod codec;
pub mod columns;
pub mod contact;
#[cfg(test)]
mod determinism;
mod input;
pub mod live;
pub mod materialize;
pub mod report;
pub mod summary;
pub mod tenant;
#[cfg(test)]
mod test_util;
mod text;
pub mod timearg;
pub mod timefmt;
pub mod timeline;

pub use agents::{AgentSpan, AgentStateTime, AgentStates, AgentWindow, SpanChanges, StateNames};
pub use input::EventInput;
pub use live::{could_be_in_progress, live_stage, AgentNow, Live, Stage};
pub use materialize::{
    record_input, Access, Applied, InteractionFilter, NoEvents, ProjectionError, Projections,
    RebuildOptions, SkippedDamage, TenantStats, Touched, PROJECTION_VERSION, UNREADABLE,
};
pub use report::{GroupBy, GroupKey, Interval, Report, ReportOptions, ReportRow};
pub use summary::{summarize, Anomaly, Direction, LegKind, Outcome, Summary};
pub use tenant::{event_tenant, guid_tenant, record_tenant};
pub use text::{for_terminal, message_for_terminal};
pub use timeline::{Timeline, TimelineEvent};
