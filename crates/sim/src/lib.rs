//! Synthetic 8x8 contact-center event stream (`ccvault simulate`).
//!
//! Guarantees:
//! - **Deterministic.** The output bytes are a function of [`SimConfig`] only: one
//!   seed gives the same stream on every platform and run (ChaCha8 streams, our own
//!   portable distributions, no hash-map iteration, no clock).
//! - **Load-driven.** A discrete-event simulation of agents on shifts serving
//!   queues: queue times, abandons and ring-no-answers come from the load.
//! - **The contact center's variety**: phone, chat and email queues with their own
//!   patience and handling times, IVR hang-ups, transfer chains of up to three
//!   legs (some whose first leg the stream never carried), consultations, dialled
//!   and queued outbound campaign calls, rejects by timeout and by the agent.
//! - **Quirks of the real feed**, each switchable in [`Quirks`]: mixed JSON types,
//!   empty `msgInfo`, missing `interactionEventTS`, events with only `eventTS` in
//!   an envelope, legs with only `resourceType`, untimed agent events, unknown
//!   event types and families, out-of-order delivery, duplicates, Pulsar
//!   envelopes, malformed lines.
//! - **Exact ground truth.** [`simulate_with_truth`] reports, per interaction (leg),
//!   the docs/METRICS.md §3 summary that a correct implementation derives from the
//!   emitted lines, legs and contacts included. It is computed from the
//!   simulator's own model (event times as §2 reads them from the rendered fields;
//!   quirks are only applied where canonical order stays the intended order).
//! - **Bounded memory.** Only interactions in progress (and a few thousand lines of
//!   reorder/duplicate buffers) are held, however long the run.

mod engine;
mod model;
mod output;
mod render;
mod rng;
mod truth;

use serde::Serialize;

/// 2025-11-24T00:00:00Z (a Monday).
pub const DEFAULT_START_MS: i64 = 1_763_942_400_000;

/// What to simulate.
///
/// Run length: if `events` or `interactions` is set, the run goes on day after day
/// until the first of them is reached (`days` is ignored); otherwise it simulates
/// `days` days.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    /// Stop after this many output lines (every line counts: duplicates, malformed).
    pub events: Option<u64>,
    /// Create exactly this many interactions (legs), then let them finish.
    pub interactions: Option<u64>,
    pub days: u32,
    pub agents: u32,
    /// Simulation start (ms since epoch); days start here, so use a midnight.
    pub start_ms: i64,
    /// Tenant suffix of every `interactionGUID`; should not contain `-`.
    pub tenant: String,
    pub quirks: Quirks,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            events: None,
            interactions: None,
            days: 1,
            agents: 40,
            start_ms: DEFAULT_START_MS,
            tenant: "northwind01".to_string(),
            quirks: Quirks::default(),
        }
    }
}

/// Quirks of the real 8x8 feed. `Default` is all on (malformed at a very small rate).
#[derive(Debug, Clone, PartialEq)]
pub struct Quirks {
    /// Numbers and booleans sometimes as text (`"311"`, `"false"`, `"5"`, `"0311"`).
    pub mixed_types: bool,
    /// `"msgInfo":{}` on some events (only where `interactionEventTS` /
    /// `statusEventTS` is present).
    pub empty_msg_info: bool,
    /// No `interactionEventTS` on some events (only where `msgInfo.timestamp` is).
    pub missing_event_ts: bool,
    /// `InteractionFutureThing` events inside interactions and a `QueueStatsTick`
    /// family.
    pub unknown_types: bool,
    /// Lines are emitted up to this many ms (of event time) out of order; 0 = in order.
    pub reorder_window_ms: i64,
    /// Share of lines emitted a second time (identical bytes), sometimes far apart.
    pub duplicate_rate: f64,
    /// Share of events wrapped in a Pulsar WebSocket envelope.
    pub envelope_rate: f64,
    /// Extra garbage lines per event line (truncated JSON, not JSON, bad base64, ...).
    pub malformed_rate: f64,
    /// Some legs write their channel only as `resourceType` (no `mediaType`).
    pub resource_type_only: bool,
    /// Some events carry only `eventTS` (the queue-entry second, which does not
    /// advance): no `interactionEventTS`, `"msgInfo":{}`, inside a Pulsar envelope
    /// whose `publishTime` is when the event happened.
    pub weak_event_ts: bool,
    /// Some agent status changes carry no time at all (`"msgInfo":{}`, no
    /// `statusEventTS`, no envelope), as the untimed events of the real feed.
    pub untimed_agent_events: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            mixed_types: true,
            empty_msg_info: true,
            missing_event_ts: true,
            unknown_types: true,
            reorder_window_ms: 3_000,
            duplicate_rate: 0.01,
            envelope_rate: 0.1,
            malformed_rate: 0.0002,
            resource_type_only: true,
            weak_event_ts: true,
            untimed_agent_events: true,
        }
    }
}

impl Quirks {
    /// A clean stream: bare, well-typed, in-order, unique, known events.
    pub fn none() -> Self {
        Quirks {
            mixed_types: false,
            empty_msg_info: false,
            missing_event_ts: false,
            unknown_types: false,
            reorder_window_ms: 0,
            duplicate_rate: 0.0,
            envelope_rate: 0.0,
            malformed_rate: 0.0,
            resource_type_only: false,
            weak_event_ts: false,
            untimed_agent_events: false,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimSummary {
    /// All lines written.
    pub lines: u64,
    /// Distinct event lines (not duplicates, not malformed), any shape or family.
    pub events: u64,
    /// Interactions all of whose events were written (= truths reported).
    pub interactions: u64,
    /// Lines that repeat an earlier line byte for byte.
    pub duplicates: u64,
    /// Distinct event lines written as Pulsar envelopes.
    pub envelopes: u64,
    /// Garbage lines that ingest must quarantine.
    pub malformed: u64,
}

/// docs/METRICS.md §3 summary of one interaction, as derivable from the emitted stream.
/// Names and nulls as in `ccvault interactions --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Truth {
    #[serde(rename = "interactionGUID")]
    pub interaction_guid: String,
    pub tenant: String,
    pub media_type: Option<String>,
    pub queue_id: Option<i64>,
    pub direction: Option<String>,
    /// The leg this one was transferred from or consults for.
    pub parent_guid: Option<String>,
    /// The first leg of the customer's contact (maybe a leg the stream never had).
    pub contact_id: String,
    /// Legs between this one and the contact's first.
    pub leg_index: i64,
    /// "inbound" | "outbound" | "consult" | "unqueued".
    pub kind: String,
    /// "answered" | "abandoned" | "unanswered" | "ended".
    pub outcome: String,
    pub agent_id: Option<String>,
    pub created_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub assigned_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub wrap_start_at: Option<i64>,
    pub wrap_end_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub queue_ms: Option<i64>,
    pub ring_ms: Option<i64>,
    pub wait_ms: Option<i64>,
    pub dial_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub hold_ms: Option<i64>,
    /// The longest single hold; `None` without a hold.
    pub max_hold_ms: Option<i64>,
    pub hold_count: i64,
    pub wrap_ms: Option<i64>,
    pub handle_ms: Option<i64>,
    pub abandon_ms: Option<i64>,
    pub offer_count: i64,
    pub reject_count: i64,
    /// Rejects because the agent did not respond (`rejectReason` 1).
    pub reject_timeouts: i64,
    /// Rejects by the agent (`rejectReason` 2).
    pub reject_refusals: i64,
    pub transferred: bool,
    pub hangup_initiator: Option<String>,
    pub call_hangup_reason: Option<String>,
    pub disposition_code: Option<String>,
    pub complete: bool,
    /// Distinct events of the interaction.
    pub event_count: i64,
    /// Always empty: the simulator emits no anomalies.
    pub anomalies: Vec<String>,
}

/// Writes the stream as NDJSON to `out` (buffered internally).
pub fn simulate<W: std::io::Write>(cfg: &SimConfig, out: W) -> std::io::Result<SimSummary> {
    simulate_with_truth(cfg, out, &mut |_| {})
}

/// As [`simulate`], and calls `truth` once per interaction, right after its last
/// event line is written. Interactions cut off by `events` are not reported.
pub fn simulate_with_truth<W: std::io::Write>(
    cfg: &SimConfig,
    out: W,
    truth: &mut dyn FnMut(Truth),
) -> std::io::Result<SimSummary> {
    engine::run(cfg, out, truth)
}
