//! The frame of a swim-lane picture: its stylesheet and geometry, the time
//! scale, the SVG element, lane backgrounds, the time grid and the row of
//! event ticks. Shared by the one-interaction page and the contact page.

use std::fmt::Write as _;

use ccvault_projections::{Timeline, TimelineEvent};
use jiff::tz::TimeZone;

use super::bars::lane_row;
use super::lanes::Lane;
use crate::escape::push;
use crate::svg::{clock, f, text, time_step, time_ticks, zone_name, Scale};

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
pub(super) const RIGHT: f64 = 24.0;
pub(crate) const AXIS_H: f64 = 28.0;
pub(crate) const EVENTS_H: f64 = 30.0;
pub(crate) const LANE_H: f64 = 48.0;
pub(super) const BAR_Y: f64 = 9.0;
pub(super) const BAR_H: f64 = 20.0;

/// The horizontal scale of a picture of events from `t0` to `t1`, with a
/// little room on both sides so the first and last marks are not on the edge.
pub(crate) fn time_scale(t0: i64, t1: i64) -> (Scale, i64, i64) {
    let span = (t1 - t0).max(1_000);
    let pad = span / 40;
    let (d0, d1) = (t0 - pad, t0 + span + pad);
    (Scale::new(d0 as f64, d1 as f64, LABEL_W, W - RIGHT), d0, d1)
}

/// The SVG: a time axis, a row of event ticks, then one row per lane.
pub(super) fn svg_lanes(out: &mut String, timeline: &Timeline, lanes: &[Lane], tz: &TimeZone) {
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
