//! Ground truth: docs/METRICS.md §3 applied to the simulator's own model of a leg
//! (its events exactly as they will be rendered, and the leg's place in its
//! contact), never to the rendered lines. `complete` has already made the list's
//! order equal to canonical order, so "first/last in canonical order" is
//! "first/last in the list" here.

use crate::model::{
    disposition_text, media_of_resource_type, Kind, LegAttrs, PlannedEvent, HANGUP_REASONS,
    INITIATORS, NO_AGENT, QUEUES,
};
use crate::Truth;

fn dur(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(end), Some(start)) if end >= start => Some(end - start),
        _ => None,
    }
}

pub(crate) fn compute(
    ix: &LegAttrs,
    evs: &[PlannedEvent],
    agent_ids: &[(String, String)],
) -> Truth {
    let first = |k: Kind| evs.iter().find(|e| e.kind == k);
    let last = |k: Kind| evs.iter().rev().find(|e| e.kind == k);
    let any = |k: Kind| evs.iter().any(|e| e.kind == k);
    let agent_name = |a: u32| -> Option<String> {
        if a == NO_AGENT {
            None
        } else {
            agent_ids.get(a as usize).map(|p| p.0.clone())
        }
    };

    let q = &QUEUES[ix.queue as usize];
    let has_queue_field = !ix.consult && evs.iter().any(|e| e.kind.carries_queue_id());
    let has_media = !ix.no_media && evs.iter().any(|e| e.kind.carries_media_type());
    let has_resource_type = evs.iter().any(|e| e.kind.carries_resource_type());
    let media_type = if has_media {
        Some(q.media)
    } else if has_resource_type {
        media_of_resource_type(ix.resource_type)
    } else {
        None
    };
    // `direction` is written on Queued/Assigned/Accepted of queued and dialled legs.
    let direction = if ix.outbound || any(Kind::CustomerAccepted) {
        Some("out".to_string())
    } else if any(Kind::Queued) || (!ix.consult && (any(Kind::Assigned) || any(Kind::Accepted))) {
        Some("in".to_string())
    } else {
        None
    };
    let outbound = direction.as_deref() == Some("out");

    let created_at = first(Kind::Created).map(PlannedEvent::t);
    let queued_at = first(Kind::Queued).map(PlannedEvent::t);
    let offer_count = evs.iter().filter(|e| e.kind == Kind::Assigned).count() as i64;
    let rejects = |reason: Option<i64>| {
        evs.iter()
            .filter(|e| e.kind == Kind::Rejected && reason.is_none_or(|r| e.a == r))
            .count() as i64
    };

    let acc_idx = evs.iter().position(|e| e.kind == Kind::Accepted);
    let accepted_at = acc_idx.map(|i| evs[i].t());
    let (assigned_at, agent_id) = match acc_idx {
        Some(i) => {
            let asg = evs[..i].iter().rev().find(|e| e.kind == Kind::Assigned);
            let acc_agent = agent_name(evs[i].agent);
            let agent = acc_agent.or_else(|| asg.and_then(|e| agent_name(e.agent)));
            (asg.map(PlannedEvent::t), agent)
        }
        None => (None, None),
    };
    let connected_at = if outbound {
        first(Kind::CustomerAccepted).map(PlannedEvent::t)
    } else {
        accepted_at
    };
    let wrap_start_at = first(Kind::PostProcess).map(PlannedEvent::t);
    let wrap_end_at = wrap_start_at.and_then(|ws| {
        let i = evs.iter().position(|e| e.kind == Kind::PostProcess)?;
        evs[i + 1..]
            .iter()
            .find(|e| e.kind == Kind::EndPostProcess && e.t() >= ws)
            .map(PlannedEvent::t)
    });
    let ended_at = last(Kind::Deleted).map(PlannedEvent::t);
    let talk_end_at = wrap_start_at.or(ended_at);

    let mut hold_count = 0i64;
    let mut max_hold_ms: Option<i64> = None;
    let hold_ms = match (connected_at, talk_end_at) {
        (Some(c), Some(te)) => {
            // The model's holds, each as the time it lasted.
            let mut held: Vec<i64> = Vec::new();
            let mut since: Option<i64> = None;
            for e in evs.iter().filter(|e| e.kind == Kind::LineHold) {
                let t = e.t();
                if t < c || t > te {
                    continue;
                }
                match (e.a != 0, since) {
                    (true, None) => {
                        since = Some(t);
                        hold_count += 1;
                    }
                    (false, Some(s)) => {
                        held.push(t - s);
                        since = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = since {
                held.push(te - s);
            }
            max_hold_ms = held.iter().copied().max();
            Some(held.iter().sum())
        }
        _ => None,
    };

    let queue_ms = dur(assigned_at, queued_at);
    let ring_ms = dur(accepted_at, assigned_at);
    let wait_ms = dur(accepted_at, queued_at);
    let dial_ms = if outbound {
        dur(connected_at, accepted_at)
    } else {
        None
    };
    let talk_ms = match (dur(talk_end_at, connected_at), hold_ms) {
        (Some(span), Some(h)) if span >= h => Some(span - h),
        _ => None,
    };
    let wrap_ms = dur(wrap_end_at, wrap_start_at);
    let handle_ms = talk_ms.map(|t| t + hold_ms.unwrap_or(0) + wrap_ms.unwrap_or(0));

    let deleted = last(Kind::Deleted);
    let outcome = if connected_at.is_some() {
        "answered"
    } else if !outbound && queued_at.is_some() && (any(Kind::Unqueued) || deleted.is_some()) {
        "abandoned"
    } else if outbound && deleted.is_some() {
        "unanswered"
    } else if deleted.is_some() {
        "ended"
    } else {
        "open"
    };
    let abandon_ms = if outcome == "abandoned" {
        let end = first(Kind::Unqueued).or(deleted).map(PlannedEvent::t);
        dur(end, queued_at)
    } else {
        None
    };
    let kind = if outbound {
        "outbound"
    } else if queued_at.is_some() {
        "inbound"
    } else if ix.parent.is_some() {
        "consult"
    } else {
        "unqueued"
    };
    let disposition_code = deleted
        .and_then(|e| disposition_text(e.b >> 8))
        .or_else(|| last(Kind::EndPostProcess).and_then(|e| disposition_text(e.b)));

    Truth {
        interaction_guid: ix.guid.clone(),
        tenant: ix.guid.rsplit('-').next().unwrap_or_default().to_string(),
        media_type: media_type.map(str::to_string),
        queue_id: has_queue_field.then_some(q.id),
        direction,
        parent_guid: ix.parent.clone(),
        contact_id: ix.contact.clone(),
        leg_index: i64::from(ix.leg_index),
        kind: kind.to_string(),
        outcome: outcome.to_string(),
        agent_id,
        created_at,
        queued_at,
        assigned_at,
        accepted_at,
        connected_at,
        wrap_start_at,
        wrap_end_at,
        ended_at,
        queue_ms,
        ring_ms,
        wait_ms,
        dial_ms,
        talk_ms,
        hold_ms,
        max_hold_ms,
        hold_count,
        wrap_ms,
        handle_ms,
        abandon_ms,
        offer_count,
        reject_count: rejects(None),
        reject_timeouts: rejects(Some(1)),
        reject_refusals: rejects(Some(2)),
        transferred: any(Kind::TransferRequest),
        hangup_initiator: deleted.and_then(|e| INITIATORS.get(e.a as usize).map(|s| s.to_string())),
        call_hangup_reason: deleted.and_then(|e| {
            HANGUP_REASONS
                .get((e.b & 0xff) as usize)
                .map(|s| s.to_string())
        }),
        disposition_code,
        complete: deleted.is_some(),
        event_count: evs.len() as i64,
        anomalies: Vec::new(),
    }
}
