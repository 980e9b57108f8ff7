//! Drawing helpers shared by the timeline and the report: scales, ticks,
//! wall-clock labels and text-size estimates (no font metrics are available
//! offline, so text widths are estimated generously).

use std::fmt::Write as _;

use jiff::tz::TimeZone;

/// A coordinate with one decimal: enough for screen pixels, and it keeps the
/// output deterministic and short.
pub(crate) fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}", v)
    } else {
        "0".to_string()
    }
}

/// Estimated width in px of `text` at `font_px` (average glyph ≈ 0.6 em).
pub(crate) fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * 0.6
}

/// A linear map from `[d0, d1]` to `[r0, r1]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Scale {
    pub fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        // A zero-width domain would divide by zero: widen it.
        let d1 = if d1 > d0 { d1 } else { d0 + 1.0 };
        Scale { d0, d1, r0, r1 }
    }
    pub fn at(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)
    }
}

/// Wall-clock text of an instant in `tz` (`fmt` is strftime), or raw ms when
/// the instant is outside the calendar.
pub(crate) fn clock(ms: i64, tz: &TimeZone, fmt: &str) -> String {
    match ccvault_event::timestamp_of(ms) {
        Some(ts) => ts.to_zoned_datetime(tz.clone()).strftime(fmt).to_string(),
        None => format!("{ms}ms"),
    }
}

/// [`clock`], with the zone's offset after it (`01:00 -05:00`) where the
/// wall-clock time is one a fall-back hour repeats: two intervals of a
/// chart had the same label and the same hover text (outside audit).
pub(crate) fn clock_marked(ms: i64, tz: &TimeZone, fmt: &str) -> String {
    let Some(ts) = ccvault_event::timestamp_of(ms) else {
        return format!("{ms}ms");
    };
    let zoned = ts.to_zoned_datetime(tz.clone());
    let text = zoned.strftime(fmt).to_string();
    match tz.to_ambiguous_timestamp(zoned.datetime()).offset() {
        jiff::tz::AmbiguousOffset::Fold { .. } => format!("{text} {}", zoned.strftime("%:z")),
        _ => text,
    }
}

/// The offset of `tz` at `ms`, in ms (0 outside the calendar).
pub(crate) fn offset_ms(ms: i64, tz: &TimeZone) -> i64 {
    ccvault_event::timestamp_of(ms)
        .map(|ts| i64::from(tz.to_offset(ts).seconds()) * 1000)
        .unwrap_or(0)
}

/// The zone's name for captions.
pub(crate) fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_string()
}

const TIME_STEPS_MS: [i64; 20] = [
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
];

/// The smallest "round" duration step that cuts `span_ms` into at most
/// `max_ticks` pieces.
pub(crate) fn time_step(span_ms: i64, max_ticks: i64) -> i64 {
    let max_ticks = max_ticks.max(1);
    TIME_STEPS_MS
        .iter()
        .copied()
        .find(|s| span_ms / s <= max_ticks)
        .unwrap_or_else(|| span_ms / max_ticks + 1)
}

/// Instants in `[t0, t1]` that are whole multiples of `step` on the wall
/// clock of `tz` (with the offset in force at `t0`).
pub(crate) fn time_ticks(t0: i64, t1: i64, step: i64, tz: &TimeZone) -> Vec<i64> {
    let step = step.max(1);
    let off = offset_ms(t0, tz);
    let local0 = t0.saturating_add(off);
    let first = local0.div_euclid(step) * step
        + if local0.rem_euclid(step) == 0 {
            0
        } else {
            step
        };
    let mut out = Vec::new();
    let mut local = first;
    // 200 ticks is far more than any axis shows; the bound keeps a bad step
    // from looping for long.
    while local.saturating_sub(off) <= t1 && out.len() < 200 {
        out.push(local - off);
        local = local.saturating_add(step);
    }
    out
}

/// A "nice" upper bound and step for a count/ratio axis: steps of 1, 2 or 5
/// times a power of ten, at most `max_ticks` of them.
pub(crate) fn nice_axis(max: f64, max_ticks: u32) -> (f64, f64) {
    if !(max.is_finite()) || max <= 0.0 {
        return (1.0, 1.0);
    }
    let raw = max / f64::from(max_ticks.max(1));
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// As [`nice_axis`] for durations in ms, stepping by round durations.
pub(crate) fn duration_axis(max_ms: i64, max_ticks: i64) -> (i64, i64) {
    let max_ms = max_ms.max(1);
    let step = time_step(max_ms, max_ticks).max(1);
    let top = (max_ms + step - 1) / step * step;
    (top, step)
}

/// Appends `<text>` with escaped content.
pub(crate) fn text(out: &mut String, x: f64, y: f64, class: &str, anchor: &str, content: &str) {
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" class=\"{class}\" text-anchor=\"{anchor}\">",
        f(x),
        f(y)
    );
    crate::escape::push(out, content);
    out.push_str("</text>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ticks_are_round() {
        assert_eq!(time_step(95_000, 10), 10_000);
        assert_eq!(time_step(3_600_000, 8), 600_000);
        assert_eq!(time_step(3_600_000, 4), 900_000);
        let tz = TimeZone::UTC;
        let ticks = time_ticks(1_000_500, 1_031_000, 10_000, &tz);
        assert_eq!(ticks, vec![1_010_000, 1_020_000, 1_030_000]);
        assert_eq!(nice_axis(87.0, 5), (100.0, 20.0));
        assert_eq!(nice_axis(0.0, 5), (1.0, 1.0));
        assert_eq!(duration_axis(47_000, 5), (50_000, 10_000));
    }
}
