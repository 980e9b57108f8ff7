//! The lanes of one interaction: what each row of the picture shows, derived
//! from the timeline's events and summary (never drawn here).

use std::borrow::Cow;

use ccvault_event::{parse_event, Lenient};
use ccvault_projections::{Direction, EventInput, Summary, Timeline};

/// What a segment shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// Waiting in the queue for an offer.
    Queue,
    /// One offer ringing at an agent, until accepted, rejected or withdrawn.
    Ring,
    /// Outbound: the agent's call ringing at the customer.
    Dial,
    /// Connected and not on hold.
    Talk,
    Hold,
    /// After-call work.
    Wrap,
}

impl SegmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentKind::Queue => "queue",
            SegmentKind::Ring => "ring",
            SegmentKind::Dial => "dial",
            SegmentKind::Talk => "talk",
            SegmentKind::Hold => "hold",
            SegmentKind::Wrap => "wrap",
        }
    }
}

/// A span of time on a lane, `[start, end]` in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub start: i64,
    pub end: i64,
    /// How it ended when that is news (`accepted`, `rejected (timeout)`,
    /// `abandoned`, ...).
    pub note: Option<String>,
    /// No event closed it: it runs to the last event of the interaction.
    pub open: bool,
}

impl Segment {
    pub fn duration_ms(&self) -> i64 {
        self.end.saturating_sub(self.start)
    }
}

/// One row of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub kind: SegmentKind,
    /// `Queue`, `Ring #2`, `Talk`, ...
    pub title: String,
    pub agent: Option<String>,
    pub segments: Vec<Segment>,
}

fn reject_reason_text(code: Option<i64>) -> &'static str {
    match code {
        Some(1) => "rejected (timeout)",
        Some(2) => "rejected (agent)",
        _ => "rejected",
    }
}

/// `rejectReason` of a raw payload, read as the summary reads it.
fn reject_reason(payload: &[u8]) -> Option<i64> {
    parse_event(payload).ok()?.body.reject_reason.as_i64()
}

/// `LineHoldStatus.status` as a flag, read from the text the timeline keeps
/// exactly as the summary reads the event (docs/METRICS.md, reading values).
fn flag(s: Option<&str>) -> Option<bool> {
    Lenient::Text(Cow::Borrowed(s?)).as_bool()
}

struct Offer {
    agent: Option<String>,
    start: i64,
    end: Option<(i64, String)>,
}

/// The lanes of one interaction, top to bottom: queue, one ring lane per offer,
/// dial (outbound), then talk, hold and wrap of the answering agent. Lanes with
/// nothing to show are left out. `inputs` are the records the timeline was
/// built from (for details the timeline does not keep, e.g. `rejectReason`).
pub fn lanes(timeline: &Timeline, inputs: &[EventInput<'_>]) -> Vec<Lane> {
    let Some(last_t) = timeline.events.iter().map(|e| e.t).max() else {
        return Vec::new();
    };
    let (queue, offers) = queue_and_offers(timeline, inputs, last_t);
    let mut out = Vec::new();
    if !queue.is_empty() {
        out.push(Lane {
            kind: SegmentKind::Queue,
            title: "Queue".to_string(),
            agent: None,
            segments: queue,
        });
    }
    out.extend(
        offers
            .into_iter()
            .enumerate()
            .map(|(i, o)| ring_lane(i, o, last_t)),
    );
    out.extend(dial_lane(&timeline.summary, last_t));
    out.extend(talk_and_hold_lanes(timeline, last_t));
    out.extend(wrap_lane(timeline, last_t));
    out
}

/// Time in queue and the offers, from walking the events in canonical order
/// (the summary keeps only the answering offer).
fn queue_and_offers(
    timeline: &Timeline,
    inputs: &[EventInput<'_>],
    last_t: i64,
) -> (Vec<Segment>, Vec<Offer>) {
    let s = &timeline.summary;
    let mut queue: Vec<Segment> = Vec::new();
    let mut in_queue: Option<i64> = None;
    let mut offers: Vec<Offer> = Vec::new();
    let mut ringing: Option<usize> = None;
    let mut accepted = false;
    let close_queue =
        |queue: &mut Vec<Segment>, in_queue: &mut Option<i64>, t: i64, note: Option<&str>| {
            if let Some(start) = in_queue.take() {
                queue.push(Segment {
                    kind: SegmentKind::Queue,
                    start,
                    end: t.max(start),
                    note: note.map(str::to_string),
                    open: false,
                });
            }
        };
    for e in &timeline.events {
        match e.event_type.as_str() {
            "InteractionQueued" if !accepted && in_queue.is_none() && ringing.is_none() => {
                in_queue = Some(e.t);
            }
            "InteractionAssigned" => {
                close_queue(&mut queue, &mut in_queue, e.t, None);
                if let Some(i) = ringing.take() {
                    offers[i].end = Some((e.t, "re-offered".to_string()));
                }
                offers.push(Offer {
                    agent: e.agent_id.clone(),
                    start: e.t,
                    end: None,
                });
                ringing = Some(offers.len() - 1);
            }
            "InteractionRejected" | "InteractionDeassigned" if !accepted => {
                if let Some(i) = ringing.take() {
                    let note = if e.event_type == "InteractionRejected" {
                        let payload = inputs.get(e.input_index).map(|r| r.payload);
                        reject_reason_text(payload.and_then(reject_reason)).to_string()
                    } else {
                        "withdrawn".to_string()
                    };
                    offers[i].end = Some((e.t, note));
                    // Back to the queue: the platform may offer it again.
                    if s.queued_at.is_some() && in_queue.is_none() {
                        in_queue = Some(e.t);
                    }
                }
            }
            "InteractionAccepted" if !accepted => {
                accepted = true;
                close_queue(&mut queue, &mut in_queue, e.t, None);
                if let Some(i) = ringing.take() {
                    offers[i].end = Some((e.t, "accepted".to_string()));
                }
            }
            "InteractionUnqueued" | "InteractionDeleted" => {
                let note = (!accepted).then_some("abandoned");
                close_queue(&mut queue, &mut in_queue, e.t, note);
                if let Some(i) = ringing.take() {
                    offers[i].end = Some((e.t, "ended while ringing".to_string()));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = in_queue {
        queue.push(Segment {
            kind: SegmentKind::Queue,
            start,
            end: last_t,
            note: Some("still queued".to_string()),
            open: true,
        });
    }
    (queue, offers)
}

/// The lane of the `i`-th offer (from 0); an offer nothing closed rings to the end.
fn ring_lane(i: usize, o: Offer, last_t: i64) -> Lane {
    let (end, note, open) = match o.end {
        Some((t, note)) => (t, Some(note), false),
        None => (last_t, Some("no answer".to_string()), true),
    };
    Lane {
        kind: SegmentKind::Ring,
        title: format!("Ring #{}", i + 1),
        agent: o.agent,
        segments: vec![Segment {
            kind: SegmentKind::Ring,
            start: o.start,
            end: end.max(o.start),
            note,
            open,
        }],
    }
}

/// Outbound: the agent's call ringing at the customer, from accept to connect.
fn dial_lane(s: &Summary, last_t: i64) -> Option<Lane> {
    let acc = s
        .accepted_at
        .filter(|_| s.direction == Some(Direction::Out))?;
    let (end, note, open) = match (s.connected_at, s.ended_at) {
        (Some(c), _) => (c, "customer answered", false),
        (None, Some(e)) => (e, "no answer", false),
        (None, None) => (last_t, "dialling", true),
    };
    (end >= acc).then(|| Lane {
        kind: SegmentKind::Dial,
        title: "Dial".to_string(),
        agent: s.agent_id.clone(),
        segments: vec![Segment {
            kind: SegmentKind::Dial,
            start: acc,
            end,
            note: Some(note.to_string()),
            open,
        }],
    })
}

/// Talk and hold: docs/METRICS.md §3's hold walk over [connectedAt, talkEndAt]; talk is
/// the rest of that span.
fn talk_and_hold_lanes(timeline: &Timeline, last_t: i64) -> Vec<Lane> {
    let s = &timeline.summary;
    let Some(connected) = s.connected_at else {
        return Vec::new();
    };
    let (end, open) = match s.wrap_start_at.or(s.ended_at) {
        Some(te) => (te, false),
        None => (last_t, true),
    };
    if end < connected {
        return Vec::new();
    }
    let holds = holds(timeline, connected, end, open);
    let mut talk = Vec::new();
    let mut from = connected;
    for h in &holds {
        if h.start > from {
            talk.push(Segment {
                kind: SegmentKind::Talk,
                start: from,
                end: h.start,
                note: None,
                open: false,
            });
        }
        from = from.max(h.end);
    }
    if end > from || (talk.is_empty() && end >= from) {
        talk.push(Segment {
            kind: SegmentKind::Talk,
            start: from,
            end,
            note: None,
            open,
        });
    }
    let mut out = vec![Lane {
        kind: SegmentKind::Talk,
        title: "Talk".to_string(),
        agent: s.agent_id.clone(),
        segments: talk,
    }];
    if !holds.is_empty() {
        out.push(Lane {
            kind: SegmentKind::Hold,
            title: format!("Hold ×{}", holds.len()),
            agent: s.agent_id.clone(),
            segments: holds,
        });
    }
    out
}

/// The holds between `connected` and `end`; one still open at `end` ends there.
fn holds(timeline: &Timeline, connected: i64, end: i64, open: bool) -> Vec<Segment> {
    let mut holds: Vec<Segment> = Vec::new();
    let mut since: Option<i64> = None;
    for e in timeline
        .events
        .iter()
        .filter(|e| e.event_type == "LineHoldStatus")
    {
        if e.t < connected || e.t > end {
            continue;
        }
        match (flag(e.status.as_deref()), since) {
            (Some(true), None) => since = Some(e.t),
            (Some(false), Some(start)) => {
                holds.push(Segment {
                    kind: SegmentKind::Hold,
                    start,
                    end: e.t,
                    note: None,
                    open: false,
                });
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        holds.push(Segment {
            kind: SegmentKind::Hold,
            start,
            end,
            note: Some("still on hold".to_string()),
            open,
        });
    }
    holds
}

/// After-call work, by the agent named on the PostProcess event when present.
fn wrap_lane(timeline: &Timeline, last_t: i64) -> Option<Lane> {
    let s = &timeline.summary;
    let ws = s.wrap_start_at?;
    let (end, open) = match s.wrap_end_at {
        Some(we) => (we, false),
        None => (last_t.max(ws), true),
    };
    let wrap_agent = timeline
        .events
        .iter()
        .find(|e| e.event_type == "InteractionPostProcess")
        .and_then(|e| e.agent_id.clone())
        .or_else(|| s.agent_id.clone());
    Some(Lane {
        kind: SegmentKind::Wrap,
        title: "Wrap".to_string(),
        agent: wrap_agent,
        segments: vec![Segment {
            kind: SegmentKind::Wrap,
            start: ws,
            end,
            note: None,
            open,
        }],
    })
}
