//! The summary walk (docs/METRICS.md §3) over one interaction's distinct
//! events in canonical order. [`derive`] reads as the contract: one pass
//! collects the attributes and lifecycle marks, then each derived value
//! (answer, holds, durations, outcome, hang-up facts) has a function of its own.

use std::borrow::Cow;

use ccvault_event::{EventBody, Lenient};

use crate::input::{Kind, Prepared};
use crate::summary::{Anomaly, Direction, LegKind, Outcome, Summary};
use crate::tenant::guid_tenant;

fn owned(v: &Lenient<'_>) -> Option<String> {
    v.as_text().map(Cow::into_owned)
}

/// `direction` compares as text as given (§1): a number never matches.
fn text_is(v: &Lenient<'_>, want: &str) -> bool {
    matches!(v, Lenient::Text(t) if t == want)
}

/// What one pass over the events collects: first present attributes and
/// the events that mark the lifecycle.
#[derive(Default)]
struct Walk<'e, 'a> {
    guid: Option<String>,
    topic_tenant: Option<&'a str>,
    media_type: Option<String>,
    /// The first `resourceType` that names a channel.
    resource_media: Option<&'static str>,
    queue_id: Option<i64>,
    /// The first present `originalInteractionGuid`, and the first one that
    /// differs from it (used when the first is the leg's own GUID).
    original_guids: [Option<Cow<'e, str>>; 2],
    any_out: bool,
    any_in: bool,
    created_at: Option<i64>,
    queued_at: Option<i64>,
    offer_count: u64,
    reject_count: u64,
    reject_timeouts: u64,
    reject_refusals: u64,
    first_accepted: Option<&'e Prepared<'a>>,
    /// The last InteractionAssigned before the first InteractionAccepted.
    answering_offer: Option<&'e Prepared<'a>>,
    customer_accepted_at: Option<i64>,
    wrap_start_at: Option<i64>,
    wrap_end_at: Option<i64>,
    last_end_post_process: Option<&'e Prepared<'a>>,
    first_unqueued_at: Option<i64>,
    last_deleted: Option<&'e Prepared<'a>>,
    transferred: bool,
}

impl<'e, 'a> Walk<'e, 'a> {
    fn over(events: &'e [Prepared<'a>]) -> Self {
        let mut w = Walk::default();
        for p in events {
            w.attributes(p);
            w.lifecycle(p);
        }
        w
    }

    fn attributes(&mut self, p: &'e Prepared<'a>) {
        let b = &p.event.body;
        if self.guid.is_none() {
            self.guid = owned(&b.interaction_guid);
        }
        if self.topic_tenant.is_none() {
            self.topic_tenant = p.topic_tenant;
        }
        if self.media_type.is_none() {
            self.media_type = b.media_type.as_text().map(|m| m.to_lowercase());
        }
        if self.resource_media.is_none() {
            self.resource_media = b.resource_type.as_i64().and_then(media_of_resource);
        }
        if self.queue_id.is_none() {
            self.queue_id = b.queue_id.as_i64();
        }
        if self.original_guids[1].is_none() {
            let [first, other] = b.attached_original_guids.values();
            for v in [first, other, &b.original_interaction_guid] {
                let Some(g) = v.as_text() else { continue };
                match &self.original_guids[0] {
                    None => self.original_guids[0] = Some(g),
                    Some(first) if *first != g => {
                        self.original_guids[1] = Some(g);
                        break;
                    }
                    Some(_) => {}
                }
            }
        }
        self.any_out |= text_is(&b.direction, "out") || b.is_outbound_call.as_bool() == Some(true);
        self.any_in |= text_is(&b.direction, "in");
    }

    fn lifecycle(&mut self, p: &'e Prepared<'a>) {
        let t = p.key.time_ms;
        match p.kind {
            Kind::Created => {
                self.created_at.get_or_insert(t);
            }
            Kind::Queued => {
                self.any_in = true;
                self.queued_at.get_or_insert(t);
            }
            Kind::Assigned => {
                self.offer_count += 1;
                if self.first_accepted.is_none() {
                    self.answering_offer = Some(p);
                }
            }
            Kind::Rejected => {
                self.reject_count += 1;
                match p.event.body.reject_reason.as_i64() {
                    Some(REJECT_TIMEOUT) => self.reject_timeouts += 1,
                    Some(REJECT_REFUSED) => self.reject_refusals += 1,
                    _ => {}
                }
            }
            Kind::Accepted => {
                self.first_accepted.get_or_insert(p);
            }
            Kind::CustomerAccepted => {
                self.any_out = true;
                self.customer_accepted_at.get_or_insert(t);
            }
            Kind::PostProcess => {
                self.wrap_start_at.get_or_insert(t);
            }
            Kind::EndPostProcess => {
                if self.wrap_start_at.is_some() && self.wrap_end_at.is_none() {
                    self.wrap_end_at = Some(t);
                }
                self.last_end_post_process = Some(p);
            }
            Kind::Unqueued => {
                self.first_unqueued_at.get_or_insert(t);
            }
            Kind::Deleted => self.last_deleted = Some(p),
            Kind::TransferRequest => self.transferred = true,
            Kind::LineHold | Kind::Other => {}
        }
    }

    /// `direction`: out wins over in; neither is `null`.
    fn direction(&self) -> Option<Direction> {
        if self.any_out {
            Some(Direction::Out)
        } else if self.any_in {
            Some(Direction::In)
        } else {
            None
        }
    }

    /// `mediaType`: the first present `mediaType` lower-cased, else the
    /// channel of the first `resourceType`.
    fn media_type(&mut self) -> Option<String> {
        self.media_type
            .take()
            .or_else(|| self.resource_media.map(str::to_owned))
    }

    /// `parentGuid`: the first present `originalInteractionGuid` that is
    /// not the leg's own GUID.
    fn parent_guid(&self) -> Option<String> {
        let own = self.guid.as_deref();
        self.original_guids
            .iter()
            .flatten()
            .find(|g| Some(g.as_ref()) != own)
            .map(|g| g.clone().into_owned())
    }

    /// `tenant` (`crate::tenant`): the first topic tenant, else the GUID's.
    fn tenant(&self) -> Option<String> {
        self.topic_tenant
            .or_else(|| self.guid.as_deref().and_then(guid_tenant))
            .map(str::to_owned)
    }

    /// `acceptedAt`, `assignedAt` and `agentId` of the answer.
    fn answer(&self, anomalies: &mut Vec<Anomaly>) -> Answer {
        let Some(acc) = self.first_accepted else {
            return Answer::default();
        };
        if self.answering_offer.is_none() {
            anomalies.push(Anomaly::AcceptedWithoutAssigned);
        }
        let offer = self.answering_offer;
        Answer {
            accepted_at: Some(acc.key.time_ms),
            assigned_at: offer.map(|a| a.key.time_ms),
            agent_id: owned(&acc.event.body.agent_id)
                .or_else(|| offer.and_then(|a| owned(&a.event.body.agent_id))),
        }
    }

    fn deleted_body(&self) -> Option<&'e EventBody<'a>> {
        self.last_deleted.map(|p| &p.event.body)
    }
}

#[derive(Default)]
struct Answer {
    accepted_at: Option<i64>,
    assigned_at: Option<i64>,
    agent_id: Option<String>,
}

/// `rejectReason` 1: the agent did not respond in time.
const REJECT_TIMEOUT: i64 = 1;
/// `rejectReason` 2: the agent rejected the offer.
const REJECT_REFUSED: i64 = 2;

/// The channel 8x8 normalizes a `resourceType` code to (voice and video
/// are phone, SMS is chat).
fn media_of_resource(code: i64) -> Option<&'static str> {
    match code {
        0 | 4 => Some("phone"),
        1 => Some("email"),
        2 | 3 => Some("chat"),
        _ => None,
    }
}

/// `kind`, in the contract's order of precedence.
fn leg_kind(outbound: bool, queued: bool, has_parent: bool) -> LegKind {
    if outbound {
        LegKind::Outbound
    } else if queued {
        LegKind::Inbound
    } else if has_parent {
        LegKind::Consult
    } else {
        LegKind::Unqueued
    }
}

/// The holds of a leg (docs/METRICS.md §3).
struct Holds {
    /// `holdCount`.
    count: u64,
    /// `holdMs`: `null` without a talk window.
    total_ms: Option<i64>,
    /// `maxHoldMs`: `null` when `count` is 0.
    longest_ms: Option<i64>,
}

/// Holds inside the talk window `[connectedAt, talkEndAt]`; a hold event
/// outside it is the anomaly `hold_outside_talk`.
fn holds(
    events: &[Prepared<'_>],
    window: Option<(i64, i64)>,
    anomalies: &mut Vec<Anomaly>,
) -> Holds {
    let mut count = 0u64;
    let mut total = 0i64;
    let mut longest: Option<i64> = None;
    let mut on_hold_since: Option<i64> = None;
    let mut close = |start: i64, end: i64| {
        let held = end.saturating_sub(start);
        total = total.saturating_add(held);
        longest = longest.max(Some(held));
    };
    for p in events.iter().filter(|p| p.kind == Kind::LineHold) {
        let t = p.key.time_ms;
        match window {
            Some((from, to)) if from <= t && t <= to => match p.event.body.status.as_bool() {
                Some(true) if on_hold_since.is_none() => {
                    on_hold_since = Some(t);
                    count += 1;
                }
                Some(false) => {
                    if let Some(start) = on_hold_since.take() {
                        close(start, t);
                    }
                }
                _ => {}
            },
            _ => anomalies.push(Anomaly::HoldOutsideTalk),
        }
    }
    if let (Some(start), Some((_, to))) = (on_hold_since, window) {
        close(start, to);
    }
    Holds {
        count,
        total_ms: window.map(|_| total),
        longest_ms: longest,
    }
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

/// `talkMs` = (`talkEndAt` − `connectedAt`) − `holdMs`.
fn talk_ms(
    talk_end_at: Option<i64>,
    connected_at: Option<i64>,
    hold_ms: Option<i64>,
    anomalies: &mut Vec<Anomaly>,
) -> Option<i64> {
    let (end, start, hold) = (talk_end_at?, connected_at?, hold_ms?);
    non_negative(
        end.checked_sub(start).and_then(|d| d.checked_sub(hold)),
        Anomaly::NegativeTalkMs,
        anomalies,
    )
}

/// `handleMs` = `talkMs` + `holdMs` + (`wrapMs` or 0).
fn handle_ms(
    talk_ms: Option<i64>,
    hold_ms: Option<i64>,
    wrap_ms: Option<i64>,
    anomalies: &mut Vec<Anomaly>,
) -> Option<i64> {
    let (talk, hold) = (talk_ms?, hold_ms?);
    non_negative(
        talk.checked_add(hold)
            .and_then(|d| d.checked_add(wrap_ms.unwrap_or(0))),
        Anomaly::NegativeHandleMs,
        anomalies,
    )
}

/// `outcome`, in the contract's order of precedence.
fn outcome(w: &Walk<'_, '_>, connected_at: Option<i64>, outbound: bool) -> Outcome {
    let deleted = w.last_deleted.is_some();
    if connected_at.is_some() {
        Outcome::Answered
    } else if !outbound && w.queued_at.is_some() && (w.first_unqueued_at.is_some() || deleted) {
        Outcome::Abandoned
    } else if outbound && deleted {
        Outcome::Unanswered
    } else if deleted {
        Outcome::Ended
    } else {
        Outcome::Open
    }
}

/// The summary of distinct events already in canonical order.
pub(crate) fn derive(events: &[Prepared<'_>]) -> Option<Summary> {
    let first = events.first()?;
    let mut w = Walk::over(events);
    let direction = w.direction();
    let outbound = direction == Some(Direction::Out);
    let parent_guid = w.parent_guid();
    let kind = leg_kind(outbound, w.queued_at.is_some(), parent_guid.is_some());

    let mut anomalies = Vec::new();
    if w.created_at.is_none() {
        anomalies.push(Anomaly::MissingCreated);
    }

    // Instants.
    let Answer {
        accepted_at,
        assigned_at,
        agent_id,
    } = w.answer(&mut anomalies);
    let connected_at = if outbound {
        w.customer_accepted_at
    } else {
        accepted_at
    };
    let ended_at = w.last_deleted.map(|p| p.key.time_ms);
    let talk_end_at = w.wrap_start_at.or(ended_at);
    let queued_at = w.queued_at;

    let Holds {
        count: hold_count,
        total_ms: hold_ms,
        longest_ms: max_hold_ms,
    } = holds(events, connected_at.zip(talk_end_at), &mut anomalies);

    // Durations.
    let a = &mut anomalies;
    let queue_ms = duration(assigned_at, queued_at, Anomaly::NegativeQueueMs, a);
    let ring_ms = duration(accepted_at, assigned_at, Anomaly::NegativeRingMs, a);
    let wait_ms = duration(accepted_at, queued_at, Anomaly::NegativeWaitMs, a);
    let dial_ms = outbound
        .then(|| duration(connected_at, accepted_at, Anomaly::NegativeDialMs, a))
        .flatten();
    let talk_ms = talk_ms(talk_end_at, connected_at, hold_ms, a);
    let wrap_ms = duration(w.wrap_end_at, w.wrap_start_at, Anomaly::NegativeWrapMs, a);
    let handle_ms = handle_ms(talk_ms, hold_ms, wrap_ms, a);

    let outcome = outcome(&w, connected_at, outbound);
    let abandon_ms = (outcome == Outcome::Abandoned)
        .then(|| {
            let end = w.first_unqueued_at.or(ended_at);
            duration(end, queued_at, Anomaly::NegativeAbandonMs, a)
        })
        .flatten();

    // Hang-up facts: the last InteractionDeleted's, the disposition else
    // from the last InteractionEndPostProcess.
    let deleted = w.deleted_body();
    let disposition_code = deleted
        .and_then(|b| owned(&b.disposition_code))
        .or_else(|| {
            w.last_end_post_process
                .and_then(|p| owned(&p.event.body.disposition_code))
        });

    anomalies.sort_unstable();
    anomalies.dedup();

    Some(Summary {
        tenant: w.tenant(),
        media_type: w.media_type(),
        // One leg alone is its own contact; the store links legs.
        contact_id: w.guid.clone(),
        leg_index: 0,
        parent_guid,
        kind,
        interaction_guid: w.guid,
        queue_id: w.queue_id,
        direction,
        created_at: w.created_at,
        queued_at,
        offered_at: queued_at.or(w.created_at).unwrap_or(first.key.time_ms),
        offer_count: w.offer_count,
        reject_count: w.reject_count,
        reject_timeouts: w.reject_timeouts,
        reject_refusals: w.reject_refusals,
        accepted_at,
        assigned_at,
        agent_id,
        connected_at,
        wrap_start_at: w.wrap_start_at,
        wrap_end_at: w.wrap_end_at,
        ended_at,
        hold_count,
        hold_ms,
        max_hold_ms,
        queue_ms,
        ring_ms,
        wait_ms,
        dial_ms,
        talk_ms,
        wrap_ms,
        handle_ms,
        abandon_ms,
        outcome,
        hangup_initiator: deleted.and_then(|b| owned(&b.hangup_initiator)),
        call_hangup_reason: deleted.and_then(|b| owned(&b.call_hangup_reason)),
        disposition_code,
        transferred: w.transferred,
        complete: w.last_deleted.is_some(),
        event_count: events.len() as u64,
        anomalies,
    })
}
