//! The interaction summary (METRICS §3): one record per `interactionGUID`,
//! derived from that interaction's distinct events walked in canonical order.

use std::borrow::Cow;

use ccvault_event::Lenient;
use serde::{Deserialize, Serialize};

pub use crate::input::EventInput;
use crate::input::{prepare, Kind, Prepared};

/// `direction` as derived by METRICS §3 (not the raw attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// `outcome` (METRICS §3).
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

/// The anomalies METRICS §3 allows, and only those.
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
    pub tenant: Option<String>,
    pub media_type: Option<String>,
    pub queue_id: Option<i64>,
    pub direction: Option<Direction>,
    pub created_at: Option<i64>,
    pub queued_at: Option<i64>,
    /// METRICS §4: `queuedAt`, else `createdAt`, else t(first event).
    pub offered_at: i64,
    pub offer_count: u64,
    pub reject_count: u64,
    pub accepted_at: Option<i64>,
    pub assigned_at: Option<i64>,
    pub agent_id: Option<String>,
    pub connected_at: Option<i64>,
    pub wrap_start_at: Option<i64>,
    pub wrap_end_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub hold_count: u64,
    pub hold_ms: Option<i64>,
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
    /// The derived durations (METRICS §3) with their short names, in the
    /// order every human view lists them.
    pub fn durations(&self) -> [(&'static str, Option<i64>); 9] {
        [
            ("queue", self.queue_ms),
            ("ring", self.ring_ms),
            ("wait", self.wait_ms),
            ("dial", self.dial_ms),
            ("talk", self.talk_ms),
            ("hold", self.hold_ms),
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

fn owned(v: &Lenient<'_>) -> Option<String> {
    v.as_text().map(Cow::into_owned)
}

/// `direction` compares as text as given (METRICS §1): a number never matches.
fn text_is(v: &Lenient<'_>, want: &str) -> bool {
    matches!(v, Lenient::Text(t) if t == want)
}

/// `end − start`, or `None` when an end is missing or the difference does
/// not fit; a negative result is `None` and records `negative`.
fn duration(
    end: Option<i64>,
    start: Option<i64>,
    negative: Anomaly,
    anomalies: &mut Vec<Anomaly>,
) -> Option<i64> {
    non_negative(end?.checked_sub(start?), negative, anomalies)
}

fn non_negative(d: Option<i64>, negative: Anomaly, anomalies: &mut Vec<Anomaly>) -> Option<i64> {
    match d {
        Some(d) if d < 0 => {
            anomalies.push(negative);
            None
        }
        d => d,
    }
}

/// The METRICS §3 walk over distinct events already in canonical order.
pub(crate) fn derive(events: &[Prepared<'_>]) -> Option<Summary> {
    let first = events.first()?;

    let mut guid: Option<String> = None;
    let mut topic_tenant: Option<&str> = None;
    let mut media_type: Option<String> = None;
    let mut queue_id: Option<i64> = None;
    let (mut any_out, mut any_in) = (false, false);

    let (mut created_at, mut queued_at) = (None, None);
    let (mut offer_count, mut reject_count) = (0u64, 0u64);
    let mut first_accepted: Option<&Prepared> = None;
    // The last InteractionAssigned seen before the first InteractionAccepted.
    let mut answering_offer: Option<&Prepared> = None;
    let mut customer_accepted_at = None;
    let mut wrap_start: Option<usize> = None;
    let mut wrap_end_at = None;
    let mut last_end_post_process: Option<&Prepared> = None;
    let mut first_unqueued_at = None;
    let mut last_deleted: Option<&Prepared> = None;
    let mut transferred = false;

    for (i, p) in events.iter().enumerate() {
        let b = &p.event.body;
        let t = p.key.time_ms;
        if guid.is_none() {
            guid = owned(&b.interaction_guid);
        }
        if topic_tenant.is_none() {
            topic_tenant = p.topic_tenant;
        }
        if media_type.is_none() {
            media_type = owned(&b.media_type);
        }
        if queue_id.is_none() {
            queue_id = b.queue_id.as_i64();
        }
        any_out |= text_is(&b.direction, "out") || b.is_outbound_call.as_bool() == Some(true);
        any_in |= text_is(&b.direction, "in");

        match p.kind {
            Kind::Created => {
                created_at.get_or_insert(t);
            }
            Kind::Queued => {
                any_in = true;
                queued_at.get_or_insert(t);
            }
            Kind::Assigned => {
                offer_count += 1;
                if first_accepted.is_none() {
                    answering_offer = Some(p);
                }
            }
            Kind::Rejected => reject_count += 1,
            Kind::Accepted => {
                first_accepted.get_or_insert(p);
            }
            Kind::CustomerAccepted => {
                any_out = true;
                customer_accepted_at.get_or_insert(t);
            }
            Kind::PostProcess => {
                wrap_start.get_or_insert(i);
            }
            Kind::EndPostProcess => {
                if wrap_start.is_some() && wrap_end_at.is_none() {
                    wrap_end_at = Some(t);
                }
                last_end_post_process = Some(p);
            }
            Kind::Unqueued => {
                first_unqueued_at.get_or_insert(t);
            }
            Kind::Deleted => last_deleted = Some(p),
            Kind::TransferRequest => transferred = true,
            Kind::LineHold | Kind::Other => {}
        }
    }

    let direction = if any_out {
        Some(Direction::Out)
    } else if any_in {
        Some(Direction::In)
    } else {
        None
    };
    let outbound = direction == Some(Direction::Out);

    let mut anomalies = Vec::new();
    if created_at.is_none() {
        anomalies.push(Anomaly::MissingCreated);
    }

    let accepted_at = first_accepted.map(|p| p.key.time_ms);
    let (assigned_at, agent_id) = match first_accepted {
        None => (None, None),
        Some(acc) => {
            if answering_offer.is_none() {
                anomalies.push(Anomaly::AcceptedWithoutAssigned);
            }
            let agent = owned(&acc.event.body.agent_id)
                .or_else(|| answering_offer.and_then(|a| owned(&a.event.body.agent_id)));
            (answering_offer.map(|a| a.key.time_ms), agent)
        }
    };
    let connected_at = if outbound {
        customer_accepted_at
    } else {
        accepted_at
    };
    let wrap_start_at = wrap_start
        .and_then(|i| events.get(i))
        .map(|p| p.key.time_ms);
    let ended_at = last_deleted.map(|p| p.key.time_ms);
    let talk_end_at = wrap_start_at.or(ended_at);

    // Holds, within the talk window [connectedAt, talkEndAt] only.
    let window = connected_at.zip(talk_end_at);
    let mut hold_count = 0u64;
    let mut hold_total = 0i64;
    let mut on_hold_since: Option<i64> = None;
    for p in events.iter().filter(|p| p.kind == Kind::LineHold) {
        let t = p.key.time_ms;
        match window {
            Some((from, to)) if from <= t && t <= to => match p.event.body.status.as_bool() {
                Some(true) if on_hold_since.is_none() => {
                    on_hold_since = Some(t);
                    hold_count += 1;
                }
                Some(false) => {
                    if let Some(start) = on_hold_since.take() {
                        hold_total = hold_total.saturating_add(t.saturating_sub(start));
                    }
                }
                _ => {}
            },
            _ => anomalies.push(Anomaly::HoldOutsideTalk),
        }
    }
    if let (Some(start), Some((_, to))) = (on_hold_since, window) {
        hold_total = hold_total.saturating_add(to.saturating_sub(start));
    }
    let hold_ms = window.map(|_| hold_total);

    let queue_ms = duration(
        assigned_at,
        queued_at,
        Anomaly::NegativeQueueMs,
        &mut anomalies,
    );
    let ring_ms = duration(
        accepted_at,
        assigned_at,
        Anomaly::NegativeRingMs,
        &mut anomalies,
    );
    let wait_ms = duration(
        accepted_at,
        queued_at,
        Anomaly::NegativeWaitMs,
        &mut anomalies,
    );
    let dial_ms = if outbound {
        duration(
            connected_at,
            accepted_at,
            Anomaly::NegativeDialMs,
            &mut anomalies,
        )
    } else {
        None
    };
    let talk_ms = match (talk_end_at, connected_at, hold_ms) {
        (Some(end), Some(start), Some(hold)) => non_negative(
            end.checked_sub(start).and_then(|d| d.checked_sub(hold)),
            Anomaly::NegativeTalkMs,
            &mut anomalies,
        ),
        _ => None,
    };
    let wrap_ms = duration(
        wrap_end_at,
        wrap_start_at,
        Anomaly::NegativeWrapMs,
        &mut anomalies,
    );
    let handle_ms = match (talk_ms, hold_ms) {
        (Some(talk), Some(hold)) => non_negative(
            talk.checked_add(hold)
                .and_then(|d| d.checked_add(wrap_ms.unwrap_or(0))),
            Anomaly::NegativeHandleMs,
            &mut anomalies,
        ),
        _ => None,
    };

    let outcome = if connected_at.is_some() {
        Outcome::Answered
    } else if !outbound
        && queued_at.is_some()
        && (first_unqueued_at.is_some() || last_deleted.is_some())
    {
        Outcome::Abandoned
    } else if outbound && last_deleted.is_some() {
        Outcome::Unanswered
    } else if last_deleted.is_some() {
        Outcome::Ended
    } else {
        Outcome::Open
    };
    let abandon_ms = if outcome == Outcome::Abandoned {
        duration(
            first_unqueued_at.or(ended_at),
            queued_at,
            Anomaly::NegativeAbandonMs,
            &mut anomalies,
        )
    } else {
        None
    };

    let deleted_body = last_deleted.map(|p| &p.event.body);
    let hangup_initiator = deleted_body.and_then(|b| owned(&b.hangup_initiator));
    let call_hangup_reason = deleted_body.and_then(|b| owned(&b.call_hangup_reason));
    let disposition_code = deleted_body
        .and_then(|b| owned(&b.disposition_code))
        .or_else(|| last_end_post_process.and_then(|p| owned(&p.event.body.disposition_code)));

    let tenant = match topic_tenant {
        Some(t) => Some(t.to_owned()),
        None => guid
            .as_deref()
            .and_then(|g| g.rsplit_once('-'))
            .map(|(_, suffix)| suffix)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    };

    anomalies.sort_unstable();
    anomalies.dedup();

    Some(Summary {
        interaction_guid: guid,
        tenant,
        media_type,
        queue_id,
        direction,
        created_at,
        queued_at,
        offered_at: queued_at.or(created_at).unwrap_or(first.key.time_ms),
        offer_count,
        reject_count,
        accepted_at,
        assigned_at,
        agent_id,
        connected_at,
        wrap_start_at,
        wrap_end_at,
        ended_at,
        hold_count,
        hold_ms,
        queue_ms,
        ring_ms,
        wait_ms,
        dial_ms,
        talk_ms,
        wrap_ms,
        handle_ms,
        abandon_ms,
        outcome,
        hangup_initiator,
        call_hangup_reason,
        disposition_code,
        transferred,
        complete: last_deleted.is_some(),
        event_count: events.len() as u64,
        anomalies,
    })
}

#[cfg(test)]
mod tests;
