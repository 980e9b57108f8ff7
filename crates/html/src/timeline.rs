//! `show GUID --html`: a swim-lane picture of one interaction above the table
//! of its raw events.
//!
//! The lanes are derived here from the timeline's ordered events and summary:
//! queue time and one ring lane per offer come from walking the events (the
//! summary only keeps the answering offer); talk, hold, wrap and dial use the
//! summary's instants and the docs/METRICS.md §3 hold rule, so the picture adds up to
//! the numbers `show` prints.

use std::borrow::Cow;
use std::fmt::Write as _;

use ccvault_event::{parse_event, Lenient};
use ccvault_projections::timefmt::{format_duration, format_instant, zone_for_display};
use ccvault_projections::{Direction, EventInput, Summary, Timeline, TimelineEvent};
use jiff::tz::TimeZone;

use crate::escape::{esc, push};
use crate::svg::{clock, f, text, text_width, time_step, time_ticks, zone_name, Scale};

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

pub(crate) const CSS: &str = "
.lane-bg{fill:#f7f9fb}
.lane-bg.alt{fill:#eef2f6}
.grid{stroke:#d0d7de;stroke-width:1}
.axis{font-size:11px;fill:#52606d}
.lane-title{font-size:13px;font-weight:600;fill:#1f2933}
.lane-agent{font-size:11px;fill:#52606d;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.seg{stroke:#1f2933;stroke-opacity:.35;stroke-width:1}
.seg.open{stroke-dasharray:4 3;stroke-opacity:.9}
:root{--queue:#f5a623;--ring:#4aa3df;--dial:#9b6bd3;--talk:#2f9e63;--hold:#e0533d;--wrap:#8a99a8}
.seg.queue{fill:var(--queue)}.k-queue{background:var(--queue)}
.seg.ring{fill:var(--ring)}.k-ring{background:var(--ring)}
.seg.dial{fill:var(--dial)}.k-dial{background:var(--dial)}
.seg.talk{fill:var(--talk)}.k-talk{background:var(--talk)}
.seg.hold{fill:var(--hold)}.k-hold{background:var(--hold)}
.seg.wrap{fill:var(--wrap)}.k-wrap{background:var(--wrap)}
.seg-in{font-size:11px;fill:#fff;font-weight:600}
.seg-out{font-size:11px;fill:#1f2933}
.seg-time{font-size:10px;fill:#52606d}
.tick{stroke:#334e68;stroke-width:1.5}
.tick-bg{fill:#fff}
.durations td{min-width:70px}
";

pub(crate) const W: f64 = 1200.0;
pub(crate) const LABEL_W: f64 = 230.0;
const RIGHT: f64 = 24.0;
pub(crate) const AXIS_H: f64 = 28.0;
pub(crate) const EVENTS_H: f64 = 30.0;
pub(crate) const LANE_H: f64 = 48.0;
const BAR_Y: f64 = 9.0;
const BAR_H: f64 = 20.0;

/// The whole page for `show GUID --html`: header facts, the SVG swim lanes,
/// and the table of raw events in canonical order. `inputs` are the records
/// the timeline was built from (their payloads are printed byte-exact, as
/// text); times print in `tz`.
pub fn render_timeline(timeline: &Timeline, inputs: &[EventInput<'_>], tz: &TimeZone) -> String {
    let guid = guid_text(timeline);
    let mut out =
        String::with_capacity(16_384 + inputs.iter().map(|i| i.payload.len() * 2).sum::<usize>());
    crate::page_start(&mut out, &format!("Interaction {guid}"), CSS);

    out.push_str("<h1>Interaction <code>");
    push(&mut out, guid);
    out.push_str("</code></h1>\n");
    facts(&mut out, timeline, tz);
    durations_table(&mut out, &timeline.summary);

    let lanes = lanes(timeline, inputs);
    out.push_str("<h2>Timeline</h2>\n");
    legend(&mut out);
    svg_lanes(&mut out, timeline, &lanes, tz);

    out.push_str("<h2>Events</h2>\n");
    events_table(&mut out, timeline, inputs, tz);
    crate::page_end(
        &mut out,
        &format!(
            "Generated by ccvault. Times in {}. Events in canonical order (docs/METRICS.md §2); durations as docs/METRICS.md §3 defines them.",
            zone_name(tz)
        ),
    );
    out
}

pub(crate) fn guid_text(timeline: &Timeline) -> &str {
    timeline
        .interaction_guid
        .as_deref()
        .unwrap_or("(no interactionGUID)")
}

/// `k <b>v</b> · ...`, a dash for a missing value.
fn fact_list(out: &mut String, items: &[(&str, Option<String>)]) {
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(" · ");
        }
        push(out, k);
        out.push_str(" <b>");
        push(out, v.as_deref().unwrap_or("-"));
        out.push_str("</b>");
    }
}

/// Two lines of facts: who and what, then when and how it ended.
fn facts(out: &mut String, timeline: &Timeline, tz: &TimeZone) {
    let s = &timeline.summary;
    let display_tz = zone_for_display(tz);
    out.push_str("<p class=\"facts\">");
    fact_list(
        out,
        &[
            ("outcome", Some(s.outcome.as_str().to_string())),
            ("agent", s.agent_id.clone()),
            ("queue", s.queue_id.map(|q| q.to_string())),
            ("media", s.media_type.clone()),
            (
                "direction",
                s.direction.map(|d| match d {
                    Direction::In => "in".to_string(),
                    Direction::Out => "out".to_string(),
                }),
            ),
            ("tenant", s.tenant.clone()),
            ("events", Some(timeline.events.len().to_string())),
            ("offers", Some(s.offer_count.to_string())),
            ("rejects", Some(s.reject_count.to_string())),
            ("holds", Some(s.hold_count.to_string())),
        ],
    );
    out.push_str("</p>\n<p class=\"facts\">");
    fact_list(
        out,
        &[
            (
                "created",
                s.created_at.map(|t| format_instant(t, display_tz)),
            ),
            ("ended", s.ended_at.map(|t| format_instant(t, display_tz))),
            ("hangup", s.hangup_initiator.clone()),
            ("reason", s.call_hangup_reason.clone()),
            ("disposition", s.disposition_code.clone()),
        ],
    );
    let anomalies: Vec<&str> = s.anomalies.iter().map(|a| a.as_str()).collect();
    out.push_str(" · anomalies <b>");
    push(out, if anomalies.is_empty() { "none" } else { "" });
    push(out, &anomalies.join(", "));
    out.push_str("</b></p>\n");
}

fn durations_table(out: &mut String, s: &Summary) {
    let durations = s.durations();
    out.push_str("<table class=\"durations\"><tr>");
    for (k, _) in durations {
        let _ = write!(out, "<th class=\"num\">{k}</th>");
    }
    out.push_str("</tr><tr>");
    for (_, v) in durations {
        let _ = write!(
            out,
            "<td class=\"num\">{}</td>",
            esc(&v.map_or_else(|| "-".to_string(), format_duration))
        );
    }
    out.push_str("</tr></table>\n");
}

pub(crate) fn legend(out: &mut String) {
    out.push_str("<div class=\"legend\">");
    for k in [
        SegmentKind::Queue,
        SegmentKind::Ring,
        SegmentKind::Dial,
        SegmentKind::Talk,
        SegmentKind::Hold,
        SegmentKind::Wrap,
    ] {
        let _ = write!(out, "<span><i class=\"k-{0}\"></i>{0}</span>", k.as_str());
    }
    out.push_str("<span>dashed outline: still open at the last event</span></div>\n");
}

/// One row per event: time, gap, type, agent, state details, raw payload.
pub(crate) fn events_table(
    out: &mut String,
    timeline: &Timeline,
    inputs: &[EventInput<'_>],
    tz: &TimeZone,
) {
    let display_tz = zone_for_display(tz);
    out.push_str("<table class=\"events\"><thead><tr><th class=\"num\">#</th><th>time</th><th class=\"num\">delta</th><th>event</th><th>agent</th><th>state</th><th>raw payload</th></tr></thead><tbody>\n");
    for (i, e) in timeline.events.iter().enumerate() {
        let mut detail = Vec::new();
        if let Some(cs) = &e.call_state {
            detail.push(cs.clone());
        }
        if let Some(ns) = e.new_state {
            detail.push(format!("newState {ns}"));
        }
        if let Some(st) = &e.status {
            detail.push(format!("status {st}"));
        }
        if let Some(seq) = e.sequence_id {
            detail.push(format!("seq {seq}"));
        }
        let raw = inputs
            .get(e.input_index)
            .map(|r| String::from_utf8_lossy(r.payload).into_owned())
            .unwrap_or_else(|| "(payload not available)".to_string());
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"mono nowrap\">{}</td><td class=\"num nowrap\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td><code class=\"raw\">{}</code></td></tr>",
            i + 1,
            esc(&format_instant(e.t, display_tz)),
            esc(&e.delta_ms.map_or_else(String::new, |d| format!("+{}", format_duration(d)))),
            esc(&e.event_type),
            esc(e.agent_id.as_deref().unwrap_or("")),
            esc(&detail.join(", ")),
            esc(&raw),
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The horizontal scale of a picture of events from `t0` to `t1`, with a
/// little room on both sides so the first and last marks are not on the edge.
pub(crate) fn time_scale(t0: i64, t1: i64) -> (Scale, i64, i64) {
    let span = (t1 - t0).max(1_000);
    let pad = span / 40;
    let (d0, d1) = (t0 - pad, t0 + span + pad);
    (Scale::new(d0 as f64, d1 as f64, LABEL_W, W - RIGHT), d0, d1)
}

/// The SVG: a time axis, a row of event ticks, then one row per lane.
fn svg_lanes(out: &mut String, timeline: &Timeline, lanes: &[Lane], tz: &TimeZone) {
    let t0 = timeline.events.iter().map(|e| e.t).min().unwrap_or(0);
    let t1 = timeline.events.iter().map(|e| e.t).max().unwrap_or(0);
    let (x, d0, d1) = time_scale(t0, t1);
    let lanes_top = AXIS_H + EVENTS_H;
    let h = lanes_top + LANE_H * lanes.len() as f64 + 8.0;

    svg_open(out, h);
    // Lane backgrounds first, so grid lines and bars draw over them.
    for i in 0..lanes.len() {
        lane_background(out, lanes_top + LANE_H * i as f64, i % 2 == 1);
    }
    time_grid(out, &x, d0, d1, h, tz);
    event_ticks(
        out,
        &x,
        AXIS_H,
        &format!("Events ({})", timeline.events.len()),
        &timeline.events,
        tz,
    );
    for (i, lane) in lanes.iter().enumerate() {
        lane_row(out, &x, lanes_top + LANE_H * i as f64, lane, tz);
    }
    out.push_str("</svg>\n");
}

pub(crate) fn svg_open(out: &mut String, h: f64) {
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" viewBox=\"0 0 {W} {}\" width=\"{W}\" height=\"{}\" role=\"img\" aria-label=\"swim-lane timeline\">",
        f(h),
        f(h)
    );
}

pub(crate) fn lane_background(out: &mut String, y: f64, alt: bool) {
    let _ = writeln!(
        out,
        "<rect class=\"lane-bg{}\" x=\"0\" y=\"{}\" width=\"{W}\" height=\"{LANE_H}\"/>",
        if alt { " alt" } else { "" },
        f(y)
    );
}

/// Vertical grid lines with clock labels in the display zone, down to `h`.
pub(crate) fn time_grid(out: &mut String, x: &Scale, d0: i64, d1: i64, h: f64, tz: &TimeZone) {
    let step = time_step(d1 - d0, 10);
    let fmt = if step % 60_000 == 0 {
        "%H:%M"
    } else {
        "%H:%M:%S"
    };
    for t in time_ticks(d0, d1, step, tz) {
        let tx = x.at(t as f64);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>",
            f(tx),
            f(AXIS_H - 6.0),
            f(h - 8.0)
        );
        text(out, tx, AXIS_H - 10.0, "axis", "middle", &clock(t, tz, fmt));
    }
    text(
        out,
        8.0,
        AXIS_H - 10.0,
        "axis",
        "start",
        &format!("time ({})", zone_name(tz)),
    );
}

/// A row of ticks at `top`, one per event, with its type on hover.
pub(crate) fn event_ticks(
    out: &mut String,
    x: &Scale,
    top: f64,
    title: &str,
    events: &[TimelineEvent],
    tz: &TimeZone,
) {
    text(out, 8.0, top + 19.0, "lane-title", "start", title);
    for e in events {
        let tx = x.at(e.t as f64);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"><title>",
            f(tx),
            f(top + 4.0),
            f(top + EVENTS_H - 6.0)
        );
        push(
            out,
            &format!("{} {}", clock(e.t, tz, "%H:%M:%S"), e.event_type),
        );
        if let Some(a) = &e.agent_id {
            push(out, &format!(" ({a})"));
        }
        out.push_str("</title></line>\n");
    }
}

/// One lane at `y`: its title and agent on the left, its segments as bars.
pub(crate) fn lane_row(out: &mut String, x: &Scale, y: f64, lane: &Lane, tz: &TimeZone) {
    let _ = write!(
        out,
        "<g class=\"lane\" data-kind=\"{}\" data-title=\"{}\">",
        lane.kind.as_str(),
        esc(&lane.title)
    );
    text(out, 8.0, y + 20.0, "lane-title", "start", &lane.title);
    if let Some(a) = &lane.agent {
        text(out, 8.0, y + 36.0, "lane-agent", "start", a);
    }
    // Labels of a lane must not overlap: track where the last one ended.
    let mut ends = LabelEnds {
        label: LABEL_W,
        time: LABEL_W,
    };
    for (j, seg) in lane.segments.iter().enumerate() {
        let next_x = lane
            .segments
            .get(j + 1)
            .map_or(W - RIGHT, |n| x.at(n.start as f64));
        segment_bar(out, x, y, lane, seg, next_x, &mut ends, tz);
    }
    out.push_str("</g>\n");
}

/// Where the last label and the last clock time of a lane end (px).
struct LabelEnds {
    label: f64,
    time: f64,
}

/// One segment: the bar with its hover title, its duration and how it ended,
/// and its clock times under it where they fit before `next_x`.
#[allow(clippy::too_many_arguments)]
fn segment_bar(
    out: &mut String,
    x: &Scale,
    y: f64,
    lane: &Lane,
    seg: &Segment,
    next_x: f64,
    ends: &mut LabelEnds,
    tz: &TimeZone,
) {
    let x0 = x.at(seg.start as f64);
    let x1 = x.at(seg.end as f64).max(x0 + 2.0);
    let dur = format_duration(seg.duration_ms());
    let mut title = format!(
        "{}{}: {} → {} ({dur})",
        lane.title,
        lane.agent
            .as_deref()
            .map_or_else(String::new, |a| format!(" {a}")),
        clock(seg.start, tz, "%H:%M:%S"),
        clock(seg.end, tz, "%H:%M:%S"),
    );
    if let Some(n) = &seg.note {
        title.push_str(", ");
        title.push_str(n);
    }
    let _ = write!(
        out,
        "<rect class=\"seg {}{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BAR_H}\" rx=\"3\" data-start=\"{}\" data-end=\"{}\" data-duration-ms=\"{}\"><title>",
        seg.kind.as_str(),
        if seg.open { " open" } else { "" },
        f(x0),
        f(y + BAR_Y),
        f(x1 - x0),
        seg.start,
        seg.end,
        seg.duration_ms(),
    );
    push(out, &title);
    out.push_str("</title></rect>");

    // The duration inside the bar when it fits, how it ended just after
    // the bar; both after the bar when the bar is too short.
    let label_y = y + BAR_Y + BAR_H / 2.0 + 4.0;
    let dur_inside = text_width(&dur, 11.0) + 10.0 <= x1 - x0;
    if dur_inside {
        text(out, (x0 + x1) / 2.0, label_y, "seg-in", "middle", &dur);
        ends.label = ends.label.max(x1);
    }
    let long = match &seg.note {
        Some(n) if dur_inside => Some(n.clone()),
        Some(n) => Some(format!("{dur} · {n}")),
        None if dur_inside => None,
        None => Some(dur.clone()),
    };
    let room = next_x - x1 - 6.0;
    let fits_after = |l: &str| text_width(l, 11.0) <= room && x1 + 4.0 >= ends.label;
    let after = match long {
        Some(l) if fits_after(&l) => Some(l),
        _ if !dur_inside && fits_after(&dur) => Some(dur.clone()),
        _ => None,
    };
    if let Some(l) = after {
        text(out, x1 + 4.0, label_y, "seg-out", "start", &l);
        ends.label = x1 + 4.0 + text_width(&l, 11.0);
    }
    // Start (and end) clock times under the bar, when there is room.
    let both = format!(
        "{}–{}",
        clock(seg.start, tz, "%H:%M:%S"),
        clock(seg.end, tz, "%H:%M:%S")
    );
    let start_only = clock(seg.start, tz, "%H:%M:%S");
    let room = (next_x - x0).max(x1 - x0);
    let times = [both.as_str(), start_only.as_str()]
        .into_iter()
        .find(|l| text_width(l, 10.0) + 4.0 <= room && x0 >= ends.time);
    if let Some(l) = times {
        text(out, x0, y + BAR_Y + BAR_H + 12.0, "seg-time", "start", l);
        ends.time = x0 + text_width(l, 10.0) + 6.0;
    }
}
