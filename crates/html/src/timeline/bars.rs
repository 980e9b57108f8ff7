//! One lane of the picture: its title and agent, and each segment as a bar
//! with its duration, how it ended and its clock times, placed so that the
//! labels of a lane never overlap.

use std::fmt::Write as _;

use ccvault_projections::timefmt::format_duration;
use jiff::tz::TimeZone;

use super::frame::{BAR_H, BAR_Y, LABEL_W, RIGHT, W};
use super::lanes::{Lane, Segment};
use crate::escape::{esc, push};
use crate::svg::{clock, f, text, text_width, Scale};

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
