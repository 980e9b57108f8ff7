//! The interaction summary (docs/METRICS.md §3): one record per `interactionGUID`,
//! derived from that interaction's distinct events walked in canonical order.

use serde::{Deserialize, Serialize};

use crate::input::prepare;
pub use crate::input::EventInput;
pub use columns::{listing_header, listing_row, SUMMARY_COLUMNS};

/// `direction` as derived by docs/METRICS.md §3 (not the raw attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// `kind` of a leg (docs/METRICS.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegKind {
    /// Queued for agents (a transferred leg that queues again included).
    Inbound,
    Outbound,
    /// A consultation: a child leg that never queued.
    Consult,
    /// Ended in the IVR or before reaching a queue.
    Unqueued,
}

impl LegKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LegKind::Inbound => "inbound",
            LegKind::Outbound => "outbound",
            LegKind::Consult => "consult",
            LegKind::Unqueued => "unqueued",
        }
    }
}

impl std::str::FromStr for LegKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inbound" => Ok(LegKind::Inbound),
            "outbound" => Ok(LegKind::Outbound),
            "consult" => Ok(LegKind::Consult),
            "unqueued" => Ok(LegKind::Unqueued),
            _ => Err(format!(
                "unknown kind {s:?} (expected inbound, outbound, consult or unqueued)"
            )),
        }
    }
}

/// `outcome` (docs/METRICS.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Answered,
    Abandoned,
    Unanswered,
    Ended,
    Open,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Unanswered => "unanswered",
            Outcome::Ended => "ended",
            Outcome::Open => "open",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "answered" => Ok(Outcome::Answered),
            "abandoned" => Ok(Outcome::Abandoned),
            "unanswered" => Ok(Outcome::Unanswered),
            "ended" => Ok(Outcome::Ended),
            "open" => Ok(Outcome::Open),
            _ => Err(format!(
                "unknown outcome {s:?} (expected answered, abandoned, unanswered, ended or open)"
            )),
        }
    }
}

/// The anomalies docs/METRICS.md §3 allows, and only those.
///
/// Variants are declared in the byte order of their names, so the derived
/// `Ord` sorts them as the contract's "sorted distinct strings".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Anomaly {
    #[serde(rename = "accepted_without_assigned")]
    AcceptedWithoutAssigned,
    #[serde(rename = "hold_outside_talk")]
    HoldOutsideTalk,
    #[serde(rename = "missing_created")]
    MissingCreated,
    #[serde(rename = "negative_abandonMs")]
    NegativeAbandonMs,
    #[serde(rename = "negative_dialMs")]
    NegativeDialMs,
    #[serde(rename = "negative_handleMs")]
    NegativeHandleMs,
    #[serde(rename = "negative_queueMs")]
    NegativeQueueMs,
    #[serde(rename = "negative_ringMs")]
    NegativeRingMs,
    #[serde(rename = "negative_talkMs")]
    NegativeTalkMs,
    #[serde(rename = "negative_waitMs")]
    NegativeWaitMs,
    #[serde(rename = "negative_wrapMs")]
    NegativeWrapMs,
}

impl Anomaly {
    pub const ALL: [Anomaly; 11] = [
        Anomaly::AcceptedWithoutAssigned,
        Anomaly::HoldOutsideTalk,
        Anomaly::MissingCreated,
        Anomaly::NegativeAbandonMs,
        Anomaly::NegativeDialMs,
        Anomaly::NegativeHandleMs,
        Anomaly::NegativeQueueMs,
        Anomaly::NegativeRingMs,
        Anomaly::NegativeTalkMs,
        Anomaly::NegativeWaitMs,
        Anomaly::NegativeWrapMs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::AcceptedWithoutAssigned => "accepted_without_assigned",
            Anomaly::HoldOutsideTalk => "hold_outside_talk",
            Anomaly::MissingCreated => "missing_created",
            Anomaly::NegativeAbandonMs => "negative_abandonMs",
            Anomaly::NegativeDialMs => "negative_dialMs",
            Anomaly::NegativeHandleMs => "negative_handleMs",
            Anomaly::NegativeQueueMs => "negative_queueMs",
            Anomaly::NegativeRingMs => "negative_ringMs",
            Anomaly::NegativeTalkMs => "negative_talkMs",
            Anomaly::NegativeWaitMs => "negative_waitMs",
            Anomaly::NegativeWrapMs => "negative_wrapMs",
        }
    }
}

/// One interaction, as `ccvault interactions` / `show` print it.
///
/// JSON field order is the declaration order below: identity, attributes,
/// instants in lifecycle order (with `offeredAt` after `queuedAt`), holds,
/// durations, outcome and hang-up facts, bookkeeping. Absent values are
/// `null`, never omitted, so the struct also round-trips through bincode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(rename = "interactionGUID")]
    pub interaction_guid: Option<String>,
    /// The GUID of the contact's first known leg; the summary of one leg
    /// alone says its own GUID, the store resolves it through the archive.
    pub contact_id: Option<String>,
    /// How many parent links lead from this leg to `contactId`.
    pub leg_index: u64,
    pub parent_guid: Option<String>,
    pub kind: LegKind,
    pub tenant: Option<String>,
    pub media_type: Option<String>,
    pub queue_id: Option<i64>,
    pub direction: Option<Direction>,
    pub created_at: Option<i64>,
    pub queued_at: Option<i64>,
    /// docs/METRICS.md §4: `queuedAt`, else `createdAt`, else t(first event).
    pub offered_at: i64,
    pub offer_count: u64,
    pub reject_count: u64,
    pub reject_timeouts: u64,
    pub reject_refusals: u64,
    pub accepted_at: Option<i64>,
    pub assigned_at: Option<i64>,
    pub agent_id: Option<String>,
    pub connected_at: Option<i64>,
    pub wrap_start_at: Option<i64>,
    pub wrap_end_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub hold_count: u64,
    pub hold_ms: Option<i64>,
    /// The longest single hold (a ccvault addition); `null` without holds.
    pub max_hold_ms: Option<i64>,
    pub queue_ms: Option<i64>,
    pub ring_ms: Option<i64>,
    pub wait_ms: Option<i64>,
    pub dial_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub wrap_ms: Option<i64>,
    pub handle_ms: Option<i64>,
    pub abandon_ms: Option<i64>,
    pub outcome: Outcome,
    pub hangup_initiator: Option<String>,
    pub call_hangup_reason: Option<String>,
    pub disposition_code: Option<String>,
    pub transferred: bool,
    pub complete: bool,
    pub event_count: u64,
    pub anomalies: Vec<Anomaly>,
}

impl Summary {
    /// The derived durations (docs/METRICS.md §3) with their short names, in the
    /// order every human view lists them.
    pub fn durations(&self) -> [(&'static str, Option<i64>); 10] {
        [
            ("queue", self.queue_ms),
            ("ring", self.ring_ms),
            ("wait", self.wait_ms),
            ("dial", self.dial_ms),
            ("talk", self.talk_ms),
            ("hold", self.hold_ms),
            ("max hold", self.max_hold_ms),
            ("wrap", self.wrap_ms),
            ("handle", self.handle_ms),
            ("abandon", self.abandon_ms),
        ]
    }
}

/// Summarizes the records of one interaction (any order, duplicates allowed;
/// records that are not events are ignored). `None` when no record is an event.
pub fn summarize(events: &[EventInput<'_>]) -> Option<Summary> {
    derive(&prepare(events))
}

mod columns;
mod derive;

pub(crate) use derive::derive;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
