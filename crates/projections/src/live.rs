//! What is happening now (docs/SERVE.md, "In progress and stages"): the
//! stage of a leg that is still in progress, and each agent's current state.
//!
//! Invariants:
//! - [`live_stage`] is the one definition of "in progress" and of each
//!   stage: a walk of the leg's distinct events in canonical order
//!   (docs/METRICS.md §2), so it depends on the set of events only, like
//!   every other projection.
//! - [`could_be_in_progress`] is a necessary condition of [`live_stage`]
//!   returning a stage, read from the stored summary alone: a caller may
//!   skip the legs it rejects without reading their events.

use serde::{Deserialize, Serialize};

use crate::input::{prepare, EventInput, Kind, Prepared};
use crate::summary::Summary;

/// Where a leg in progress is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Waiting in a queue for an agent (also between a rejected offer and the next).
    Queued,
    /// Offered to an agent, not yet accepted.
    Ringing,
    /// Accepted (inbound) or answered by the customer (outbound, consult).
    Talking,
    /// Talking, with the line on hold.
    Hold,
    /// After-call work.
    Wrapup,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Ringing => "ringing",
            Stage::Talking => "talking",
            Stage::Hold => "hold",
            Stage::Wrapup => "wrapup",
        }
    }
}

/// A leg's stage and since when it has been in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    pub stage: Stage,
    /// t(e) of the event that started the stage; for `queued` and `ringing`
    /// the queue entry, so it measures the customer's wait across rejected
    /// offers.
    pub since_ms: i64,
}

/// The stage of a leg from its records (any order, duplicates allowed);
/// `None` when the leg is not in progress. The walk, in canonical order:
/// InteractionQueued starts `queued` (since the first queue entry of the
/// current wait); InteractionAssigned `ringing`; InteractionRejected goes
/// back to `queued`; InteractionAccepted or InteractionCustomerAccepted
/// `talking`; LineHoldStatus `true`/`false` while talking or on hold
/// `hold`/`talking`; InteractionPostProcess `wrapup`; InteractionEndPostProcess
/// ends the leg; InteractionUnqueued ends a leg still waiting (an abandon,
/// or it left the queue); InteractionDeleted ends a leg not in wrap-up
/// (after-call work outlives the customer's hang-up). A leg that never
/// reached a queue or an agent (only InteractionCreated, IVR events) is not
/// in progress.
pub fn live_stage(events: &[EventInput<'_>]) -> Option<Live> {
    stage_of_prepared(&prepare(events))
}

/// [`live_stage`] of a leg's events already parsed, deduplicated and in
/// canonical order (what the summaries are derived from: the catch-up hands
/// both out from one parse).
pub(crate) fn stage_of_prepared(prepared: &[Prepared<'_>]) -> Option<Live> {
    let mut now: Option<Live> = None;
    for p in prepared {
        let t = p.key.time_ms;
        let stage = now.map(|l| l.stage);
        let waiting_since = match now {
            Some(Live {
                stage: Stage::Queued | Stage::Ringing,
                since_ms,
            }) => since_ms,
            _ => t,
        };
        let at = |stage: Stage, since_ms: i64| Some(Live { stage, since_ms });
        now = match p.kind {
            Kind::Queued => at(Stage::Queued, waiting_since),
            Kind::Assigned => at(Stage::Ringing, waiting_since),
            Kind::Rejected if stage == Some(Stage::Ringing) => at(Stage::Queued, waiting_since),
            Kind::Accepted | Kind::CustomerAccepted => match stage {
                Some(Stage::Talking | Stage::Hold) => now,
                _ => at(Stage::Talking, t),
            },
            Kind::LineHold => match (stage, p.event.body.status.as_bool()) {
                (Some(Stage::Talking), Some(true)) => at(Stage::Hold, t),
                (Some(Stage::Hold), Some(false)) => at(Stage::Talking, t),
                _ => now,
            },
            Kind::PostProcess if stage != Some(Stage::Wrapup) => at(Stage::Wrapup, t),
            Kind::EndPostProcess => None,
            Kind::Unqueued if matches!(stage, Some(Stage::Queued | Stage::Ringing)) => None,
            Kind::Deleted if stage != Some(Stage::Wrapup) => None,
            _ => now,
        };
    }
    now
}

/// `false` only for legs [`live_stage`] cannot place in progress: ended
/// (an InteractionDeleted) with no wrap-up left open, or never queued nor
/// accepted.
pub fn could_be_in_progress(s: &Summary) -> bool {
    let reached = s.queued_at.is_some() || s.offer_count > 0 || s.accepted_at.is_some();
    let wrap_open = s.wrap_start_at.is_some() && s.wrap_end_at.is_none();
    (reached || s.wrap_start_at.is_some()) && (!s.complete || wrap_open)
}

/// An agent's latest status change (docs/METRICS.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentNow {
    pub agent_id: String,
    /// `newState` of the change.
    pub state: i64,
    /// t(e) of the change.
    pub since_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ty: &str, t: i64, extra: &str) -> String {
        format!(
            r#"{{"Interaction":{{"event":"{ty}","interactionGUID":"g1","interactionEventTS":{}{extra}}}}}"#,
            t / 1000
        )
    }

    fn stage_of(lines: &[String]) -> Option<Live> {
        let inputs: Vec<EventInput<'_>> = lines
            .iter()
            .map(|l| EventInput {
                payload: l.as_bytes(),
                ..EventInput::default()
            })
            .collect();
        live_stage(&inputs)
    }

    #[test]
    fn a_call_walks_through_every_stage() {
        let mut lines = vec![ev("InteractionCreated", 1_000, "")];
        assert_eq!(stage_of(&lines), None, "IVR only is not in progress");
        lines.push(ev("InteractionQueued", 2_000, ""));
        assert_eq!(
            stage_of(&lines),
            Some(Live {
                stage: Stage::Queued,
                since_ms: 2_000
            })
        );
        lines.push(ev("InteractionAssigned", 5_000, ""));
        assert_eq!(stage_of(&lines).map(|l| l.stage), Some(Stage::Ringing));
        lines.push(ev("InteractionRejected", 9_000, ""));
        // Back in the queue: the wait still counts from the queue entry.
        assert_eq!(
            stage_of(&lines),
            Some(Live {
                stage: Stage::Queued,
                since_ms: 2_000
            })
        );
        lines.push(ev("InteractionAssigned", 10_000, ""));
        lines.push(ev("InteractionAccepted", 12_000, ""));
        assert_eq!(
            stage_of(&lines),
            Some(Live {
                stage: Stage::Talking,
                since_ms: 12_000
            })
        );
        lines.push(ev("LineHoldStatus", 20_000, r#","status":"true""#));
        assert_eq!(stage_of(&lines).map(|l| l.stage), Some(Stage::Hold));
        lines.push(ev("LineHoldStatus", 30_000, r#","status":"false""#));
        assert_eq!(
            stage_of(&lines),
            Some(Live {
                stage: Stage::Talking,
                since_ms: 30_000
            })
        );
        lines.push(ev("InteractionPostProcess", 40_000, ""));
        lines.push(ev("InteractionDeleted", 41_000, ""));
        assert_eq!(
            stage_of(&lines),
            Some(Live {
                stage: Stage::Wrapup,
                since_ms: 40_000
            }),
            "wrap-up outlives the hang-up"
        );
        lines.push(ev("InteractionEndPostProcess", 50_000, ""));
        assert_eq!(stage_of(&lines), None);
    }

    #[test]
    fn abandons_and_hang_ups_end_the_leg_whatever_the_arrival_order() {
        let mut lines = vec![
            ev("InteractionUnqueued", 9_000, ""),
            ev("InteractionQueued", 2_000, ""),
        ];
        assert_eq!(stage_of(&lines), None);
        lines.reverse();
        assert_eq!(stage_of(&lines), None);
        let talking_then_gone = [
            ev("InteractionDeleted", 30_000, ""),
            ev("InteractionAccepted", 3_000, ""),
            ev("InteractionQueued", 1_000, ""),
        ];
        assert_eq!(stage_of(&talking_then_gone), None);
    }
}
