//! Aggregate reports (docs/METRICS.md §4): legs bucketed by the interval of
//! their `offeredAt` in a time zone, grouped by any combination of queue,
//! agent and channel. Service metrics count inbound legs only; outbound
//! calls, consultations and legs that never queued have columns of their own.
//!
//! [`Report`] is an accumulator: summaries can be added one at a time, in any
//! order, on several threads, and the partial reports merged. Sums are kept
//! as integers so the order of additions cannot change a rounded result.
//! Fed in `offeredAt` order, it gives up each row as soon as no later leg
//! can change it ([`Report::take_complete`]), so a report need not hold
//! the archive's rows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::columns::Column;
use crate::summary::{Direction, LegKind, Outcome, Summary};
use crate::text;
use crate::timefmt::{format_duration, zone_for_display};

pub use columns::{human_report_columns, report_columns, REPORT_COLUMNS};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// `--interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    Min15,
    Min30,
    Hour1,
    Day1,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Min15 => "15m",
            Interval::Min30 => "30m",
            Interval::Hour1 => "1h",
            Interval::Day1 => "1d",
        }
    }

    /// Length in ms of a bucket with no offset change inside it.
    fn nominal_ms(self) -> i64 {
        match self {
            Interval::Min15 => 15 * MINUTE_MS,
            Interval::Min30 => 30 * MINUTE_MS,
            Interval::Hour1 => 60 * MINUTE_MS,
            Interval::Day1 => DAY_MS,
        }
    }

    /// A bound on how long before an instant the [`bucket`] holding it
    /// starts (`at - start < reach`), in any zone: what lets a report print
    /// the rows of early intervals before it has read the later legs
    /// ([`Report::take_complete`]). A sub-day bucket is never longer than
    /// its nominal length (an offset change only cuts it; the UTC fallback
    /// is nominal). A day runs from one local midnight to the next: 24 h of
    /// wall clock plus the change of offset between them, and jiff's offsets
    /// lie within ±26 h, so a day is shorter than 76 h.
    fn reach_ms(self) -> i64 {
        match self {
            Interval::Day1 => 4 * DAY_MS,
            sub_day => sub_day.nominal_ms(),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--interval` or `--by` value that is not one of the choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {given:?}: expected one of {choices}")]
pub struct ParseChoiceError {
    pub(crate) what: &'static str,
    pub(crate) given: String,
    pub(crate) choices: &'static str,
}

impl FromStr for Interval {
    type Err = ParseChoiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "15m" => Ok(Interval::Min15),
            "30m" => Ok(Interval::Min30),
            "1h" | "60m" => Ok(Interval::Hour1),
            "1d" => Ok(Interval::Day1),
            _ => Err(ParseChoiceError {
                what: "interval",
                given: s.to_string(),
                choices: "15m, 30m, 1h, 1d",
            }),
        }
    }
}

/// What a report covers and how it buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    pub interval: Interval,
    pub by: GroupBy,
    /// Buckets follow this zone's wall clock; day buckets start at local midnight.
    pub tz: TimeZone,
    /// `--sla`: an answer with `waitMs` ≤ its channel's threshold is in
    /// service level.
    pub sla: Sla,
    /// `--short-abandon`: an abandon with `abandonMs` < this is short.
    pub short_abandon_ms: i64,
    /// Only interactions with `offeredAt` in `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            interval: Interval::Hour1,
            by: GroupBy::ALL,
            tz: TimeZone::UTC,
            sla: Sla::default(),
            short_abandon_ms: 5_000,
            from: None,
            to: None,
        }
    }
}

/// The bucket `[start, end)` (ms) holding the instant `ms`.
///
/// Sub-day buckets are aligned to the zone's wall clock with the offset in
/// force at `ms`; an offset change starts a new bucket, so a repeated or
/// skipped wall-clock hour never merges two real hours. Day buckets run from
/// local midnight (or the day's first instant when midnight is skipped) to the
/// next day's, so a DST day is 23 or 25 hours. Instants outside the calendar
/// range fall back to UTC-aligned fixed buckets.
pub fn bucket(ms: i64, interval: Interval, tz: &TimeZone) -> (i64, i64) {
    let len = interval.nominal_ms();
    let zoned = match interval {
        Interval::Day1 => day_bucket(ms, tz),
        _ => sub_day_bucket(ms, len, tz),
    };
    zoned.unwrap_or_else(|| {
        // Near i64::MIN the bucket's true start is below it: cut there.
        let start = ms.div_euclid(len).saturating_mul(len);
        (start, start.saturating_add(len))
    })
}

fn day_bucket(ms: i64, tz: &TimeZone) -> Option<(i64, i64)> {
    let zoned = ccvault_event::timestamp_of(ms)?.to_zoned_datetime(tz.clone());
    let start = zoned.start_of_day().ok()?;
    let start_ms = start.timestamp().as_millisecond();
    // The last days of the calendar: their end lies past the latest
    // instant there is, so it is taken as 24 hours on (an audit found
    // those days bucketed by UTC instead, overlapping the day before).
    let end_ms = match start.tomorrow().and_then(|t| t.start_of_day()) {
        Ok(end) => end.timestamp().as_millisecond(),
        Err(_) => start_ms.saturating_add(Interval::Day1.nominal_ms()),
    };
    Some((start_ms, end_ms))
}

fn sub_day_bucket(ms: i64, len: i64, tz: &TimeZone) -> Option<(i64, i64)> {
    let ts = ccvault_event::timestamp_of(ms)?;
    let offset_ms = i64::from(tz.to_offset(ts).seconds()) * 1000;
    let local = ms.checked_add(offset_ms)?;
    let local_start = local.div_euclid(len) * len;
    let mut start = local_start.checked_sub(offset_ms)?;
    let mut end = local_start.checked_add(len)?.checked_sub(offset_ms)?;
    // `preceding` is strict; probing 1 ms later finds a change at `ms` itself.
    let probe = ccvault_event::timestamp_of(ms.checked_add(1)?)?;
    for tr in tz.preceding(probe) {
        let at = tr.timestamp().as_millisecond();
        if at <= start {
            break;
        }
        if changes_offset(tz, at) {
            start = at;
            break;
        }
    }
    for tr in tz.following(ts) {
        let at = tr.timestamp().as_millisecond();
        if at >= end {
            break;
        }
        if changes_offset(tz, at) {
            end = at;
            break;
        }
    }
    Some((start, end))
}

/// Whether the offset differs on either side of a transition (some only
/// change the abbreviation or the DST flag).
fn changes_offset(tz: &TimeZone, at_ms: i64) -> bool {
    match (
        ccvault_event::timestamp_of(at_ms - 1),
        ccvault_event::timestamp_of(at_ms),
    ) {
        (Some(before), Some(at)) => tz.to_offset(before) != tz.to_offset(at),
        _ => false,
    }
}

/// A mean kept as an exact integer sum and a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mean {
    sum: i128,
    count: u64,
}

impl Mean {
    fn add(&mut self, v: Option<i64>) {
        if let Some(v) = v {
            self.sum += i128::from(v);
            self.count += 1;
        }
    }
    fn merge(&mut self, o: Mean) {
        self.sum += o.sum;
        self.count += o.count;
    }
    fn value(self) -> Option<i64> {
        mean_half_away(self.sum, self.count)
    }
}

/// `sum / count` rounded half away from zero, in integers.
fn mean_half_away(sum: i128, count: u64) -> Option<i64> {
    if count == 0 {
        return None;
    }
    let c = i128::from(count);
    let q = (2 * sum.abs() + c) / (2 * c);
    i64::try_from(if sum < 0 { -q } else { q }).ok()
}

/// `num / den` rounded to 4 decimals (half away from zero); `None` when
/// `den` is 0.
fn ratio4(num: u64, den: u64) -> Option<f64> {
    if den == 0 {
        return None;
    }
    let (n, d) = (u128::from(num), u128::from(den));
    let ten_thousandths = (2 * n * 10_000 + d) / (2 * d);
    // An integer over 10^4 divides to the double nearest the 4-decimal
    // value, which serde_json prints as exactly those decimals.
    Some(ten_thousandths as f64 / 10_000.0)
}

/// One group's running totals (docs/METRICS.md §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    interval_end: i64,
    // Inbound legs: the service metrics.
    offered: u64,
    transferred_in: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    answered_in_sla: u64,
    wait: Mean,
    max_wait_ms: Option<i64>,
    // Every leg, counted by kind.
    contacts: u64,
    unqueued: u64,
    consults: u64,
    outbound: u64,
    outbound_connected: u64,
    handled: u64,
    handle: Mean,
    talk: Mean,
    hold: Mean,
    wrap: Mean,
    holds: u64,
    max_hold_ms: Option<i64>,
    rejects: u64,
    transfers: u64,
}

impl Totals {
    fn merge(&mut self, o: &Totals) {
        self.interval_end = o.interval_end;
        self.offered += o.offered;
        self.transferred_in += o.transferred_in;
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.short_abandoned += o.short_abandoned;
        self.answered_in_sla += o.answered_in_sla;
        self.wait.merge(o.wait);
        self.max_wait_ms = self.max_wait_ms.max(o.max_wait_ms);
        self.contacts += o.contacts;
        self.unqueued += o.unqueued;
        self.consults += o.consults;
        self.outbound += o.outbound;
        self.outbound_connected += o.outbound_connected;
        self.handled += o.handled;
        self.handle.merge(o.handle);
        self.talk.merge(o.talk);
        self.hold.merge(o.hold);
        self.wrap.merge(o.wrap);
        self.holds += o.holds;
        self.max_hold_ms = self.max_hold_ms.max(o.max_hold_ms);
        self.rejects += o.rejects;
        self.transfers += o.transfers;
    }

    /// The service metrics of an inbound leg.
    fn add_inbound(&mut self, s: &ReportLeg<'_>, opts: &ReportOptions) {
        self.offered += 1;
        self.transferred_in += u64::from(s.has_parent);
        match s.outcome {
            Outcome::Answered => {
                self.answered += 1;
                let sla = opts.sla.threshold_ms(s.media_type);
                self.answered_in_sla += u64::from(s.wait_ms.is_some_and(|w| w <= sla));
                self.wait.add(s.wait_ms);
                self.max_wait_ms = self.max_wait_ms.max(s.wait_ms);
            }
            Outcome::Abandoned => {
                self.abandoned += 1;
                let short = s.abandon_ms.is_some_and(|a| a < opts.short_abandon_ms);
                self.short_abandoned += u64::from(short);
                self.max_wait_ms = self.max_wait_ms.max(s.abandon_ms);
            }
            Outcome::Unanswered | Outcome::Ended | Outcome::Open => {}
        }
    }

    /// What every leg counts, whatever its kind.
    fn add_leg(&mut self, s: &ReportLeg<'_>) {
        let answered = s.outcome == Outcome::Answered;
        self.contacts += u64::from(s.first_leg && s.direction != Some(Direction::Out));
        match s.kind {
            LegKind::Inbound => {}
            LegKind::Unqueued => self.unqueued += 1,
            LegKind::Consult => self.consults += 1,
            LegKind::Outbound => {
                self.outbound += 1;
                self.outbound_connected += u64::from(answered);
            }
        }
        if answered {
            self.handled += 1;
            self.handle.add(s.handle_ms);
            self.talk.add(s.talk_ms);
            self.hold.add(s.hold_ms);
            self.wrap.add(s.wrap_ms);
        }
        self.holds += s.hold_count;
        self.max_hold_ms = self.max_hold_ms.max(s.max_hold_ms);
        self.rejects += s.reject_count;
        self.transfers += u64::from(s.transferred);
    }
}

/// What a report reads of one leg: a [`Summary`]'s fields that the metrics
/// of docs/METRICS.md §4 and the groupings use, and nothing else, so the
/// store can keep legs for reports in a compact form of their own
/// (`report_chunks`, docs/FORMAT.md §4) and fold them without decoding
/// whole summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLeg<'a> {
    pub offered_at: i64,
    pub kind: LegKind,
    pub outcome: Outcome,
    pub direction: Option<Direction>,
    /// `legIndex` is 0 (the leg opens its contact).
    pub first_leg: bool,
    /// `parentGuid` is present (a transferred-in leg when inbound).
    pub has_parent: bool,
    pub transferred: bool,
    pub queue_id: Option<i64>,
    pub agent_id: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub wait_ms: Option<i64>,
    pub abandon_ms: Option<i64>,
    pub handle_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub hold_ms: Option<i64>,
    pub wrap_ms: Option<i64>,
    pub max_hold_ms: Option<i64>,
    pub hold_count: u64,
    pub reject_count: u64,
}

impl<'a> ReportLeg<'a> {
    /// The report's view of a summary whose `legIndex` is resolved.
    pub fn of(s: &'a Summary) -> ReportLeg<'a> {
        ReportLeg {
            offered_at: s.offered_at,
            kind: s.kind,
            outcome: s.outcome,
            direction: s.direction,
            first_leg: s.leg_index == 0,
            has_parent: s.parent_guid.is_some(),
            transferred: s.transferred,
            queue_id: s.queue_id,
            agent_id: s.agent_id.as_deref(),
            media_type: s.media_type.as_deref(),
            wait_ms: s.wait_ms,
            abandon_ms: s.abandon_ms,
            handle_ms: s.handle_ms,
            talk_ms: s.talk_ms,
            hold_ms: s.hold_ms,
            wrap_ms: s.wrap_ms,
            max_hold_ms: s.max_hold_ms,
            hold_count: s.hold_count,
            reject_count: s.reject_count,
        }
    }
}

/// The report accumulator.
#[derive(Debug, Clone)]
pub struct Report {
    opts: ReportOptions,
    groups: BTreeMap<(i64, GroupKey), Totals>,
    /// The last bucket computed: summaries mostly arrive in time order, and
    /// buckets partition time, so this skips most zone lookups.
    last_bucket: Option<(i64, i64)>,
    /// The intervals starting before this were taken as complete
    /// ([`Report::take_complete`]): no leg may land in one of them again.
    complete_before: i64,
}

impl Report {
    pub fn new(opts: ReportOptions) -> Report {
        Report {
            opts,
            groups: BTreeMap::new(),
            last_bucket: None,
            complete_before: i64::MIN,
        }
    }

    pub fn options(&self) -> &ReportOptions {
        &self.opts
    }

    /// Counts one interaction; `false` when its `offeredAt` is outside
    /// `[from, to)`. Each interaction must be added once.
    pub fn add(&mut self, s: &Summary) -> bool {
        self.add_leg(&ReportLeg::of(s))
    }

    /// [`Report::add`] of a leg as the report sees it.
    pub fn add_leg(&mut self, s: &ReportLeg<'_>) -> bool {
        let at = s.offered_at;
        if self.opts.from.is_some_and(|from| at < from) || self.opts.to.is_some_and(|to| at >= to) {
            return false;
        }
        let (start, end) = match self.last_bucket {
            Some((start, end)) if start <= at && at < end => (start, end),
            _ => {
                let b = bucket(at, self.opts.interval, &self.opts.tz);
                self.last_bucket = Some(b);
                b
            }
        };
        debug_assert!(start >= self.complete_before, "a leg after its row");
        let totals = self
            .groups
            .entry((start, self.opts.by.key_of(s)))
            .or_default();
        totals.interval_end = end;
        if s.kind == LegKind::Inbound {
            totals.add_inbound(s, &self.opts);
        }
        totals.add_leg(s);
        true
    }

    /// Adds another partial report built with the same options.
    pub fn merge(&mut self, other: Report) {
        debug_assert_eq!(
            self.opts, other.opts,
            "merging reports of different options"
        );
        debug_assert!(
            (other.groups.keys().next()).is_none_or(|(start, _)| *start >= self.complete_before),
            "a partial report after its rows"
        );
        for (key, totals) in other.groups {
            self.groups.entry(key).or_default().merge(&totals);
        }
    }

    /// The rows, sorted by `intervalStart` then group key.
    pub fn rows(&self) -> Vec<ReportRow> {
        self.groups
            .iter()
            .map(|((start, key), a)| row(*start, key.clone(), a))
            .collect()
    }

    /// Removes and returns the rows (sorted) that no leg offered at or after
    /// `added_before` can change: once every leg offered before that instant
    /// has been added, they are final, and every row still held or still to
    /// come sorts after them. Those of the intervals starting at least
    /// `Interval::reach_ms` before it: a later leg's interval starts
    /// after. A report fed in `offeredAt` order prints its rows as it goes
    /// and holds only the intervals still open, not the archive's.
    pub fn take_complete(&mut self, added_before: i64) -> Vec<ReportRow> {
        let open_from = added_before
            .saturating_sub(self.opts.interval.reach_ms())
            .saturating_add(1);
        // `GroupKey::default()` (no grouping's value) is the least key.
        let open = self.groups.split_off(&(open_from, GroupKey::default()));
        self.complete_before = self.complete_before.max(open_from);
        std::mem::replace(&mut self.groups, open)
            .into_iter()
            .map(|((start, key), a)| row(start, key, &a))
            .collect()
    }
}

/// The printed row of the group `key` of the interval starting at `start`.
fn row(start: i64, key: GroupKey, a: &Totals) -> ReportRow {
    let not_short = a.abandoned.saturating_sub(a.short_abandoned);
    ReportRow {
        interval_start: start,
        interval_end: a.interval_end,
        group: key,
        offered: a.offered,
        contacts: a.contacts,
        transferred_in: a.transferred_in,
        answered: a.answered,
        abandoned: a.abandoned,
        short_abandoned: a.short_abandoned,
        answered_in_sla: a.answered_in_sla,
        service_level: ratio4(a.answered_in_sla, a.answered + not_short),
        abandon_rate: ratio4(not_short, a.offered.saturating_sub(a.short_abandoned)),
        asa_ms: a.wait.value(),
        max_wait_ms: a.max_wait_ms,
        unqueued: a.unqueued,
        consults: a.consults,
        outbound: a.outbound,
        outbound_connected: a.outbound_connected,
        handled: a.handled,
        aht_ms: a.handle.value(),
        avg_talk_ms: a.talk.value(),
        avg_hold_ms: a.hold.value(),
        avg_wrap_ms: a.wrap.value(),
        holds: a.holds,
        max_hold_ms: a.max_hold_ms,
        rejects: a.rejects,
        transfers: a.transfers,
    }
}

/// One printed row. JSON keys in this order: `intervalStart`,
/// `intervalEnd`, `queueId` / `agentId` / `mediaType` when grouped by
/// them, then the docs/METRICS.md §4 table in its order;
/// [`REPORT_COLUMNS`] lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub interval_start: i64,
    pub interval_end: i64,
    #[serde(flatten)]
    pub group: GroupKey,
    pub offered: u64,
    pub contacts: u64,
    pub transferred_in: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub answered_in_sla: u64,
    pub service_level: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub asa_ms: Option<i64>,
    pub max_wait_ms: Option<i64>,
    pub unqueued: u64,
    pub consults: u64,
    pub outbound: u64,
    pub outbound_connected: u64,
    pub handled: u64,
    pub aht_ms: Option<i64>,
    pub avg_talk_ms: Option<i64>,
    pub avg_hold_ms: Option<i64>,
    pub avg_wrap_ms: Option<i64>,
    pub holds: u64,
    /// The longest single hold of any leg (a ccvault addition).
    pub max_hold_ms: Option<i64>,
    pub rejects: u64,
    pub transfers: u64,
}

/// Human output: one line per row; times in the report's zone (UTC with `Z`).
pub fn render_text(rows: &[ReportRow], opts: &ReportOptions) -> String {
    let mut text = ReportText::new(opts);
    for r in rows {
        text.measure(r);
    }
    let mut out = text.head();
    for r in rows {
        out.push_str(&text.line(r));
    }
    out
}

/// [`render_text`] for rows that come in batches and are not kept: the
/// columns are as wide as their widest cell, so the rows are read twice,
/// once to [`ReportText::measure`] them and once to print each
/// [`ReportText::line`] after the [`ReportText::head`].
pub struct ReportText<'a> {
    opts: &'a ReportOptions,
    columns: Vec<&'static Column<ReportRow>>,
    headers: Vec<String>,
    right: Vec<bool>,
    widths: Vec<usize>,
    rows: u64,
}

impl<'a> ReportText<'a> {
    pub fn new(opts: &'a ReportOptions) -> ReportText<'a> {
        let columns: Vec<_> = human_report_columns(opts.by).collect();
        let headers: Vec<String> = columns
            .iter()
            .map(|c| c.label.unwrap_or("").to_uppercase())
            .collect();
        let widths = text::widths_of(&headers.iter().map(String::as_str).collect::<Vec<_>>());
        let right = columns.iter().map(|c| c.show.right_aligned()).collect();
        ReportText {
            opts,
            columns,
            headers,
            right,
            widths,
            rows: 0,
        }
    }

    fn cells(&self, r: &ReportRow) -> Vec<String> {
        let tz = zone_for_display(&self.opts.tz);
        self.columns.iter().map(|c| c.human(r, tz)).collect()
    }

    /// Widens the columns to hold `r` (the first pass).
    pub fn measure(&mut self, r: &ReportRow) {
        let cells = self.cells(r);
        text::widen(&mut self.widths, &cells);
        self.rows += 1;
    }

    /// What comes before the rows: the title, and the header line of the
    /// columns measured, or `no interactions` when no row was.
    pub fn head(&self) -> String {
        let opts = self.opts;
        let by = if opts.by.is_all() {
            String::new()
        } else {
            format!(" and {}", opts.by.to_string().replace(',', ", "))
        };
        let mut out = format!(
            "Report by {} interval{by} (SLA {}, short abandon < {}), times {}\n\
             Service metrics count inbound legs; every metric lands in the interval of its leg's offeredAt.\n\n",
            opts.interval,
            opts.sla,
            format_duration(opts.short_abandon_ms),
            opts.tz.iana_name().unwrap_or("UTC"),
        );
        if self.rows == 0 {
            out.push_str("no interactions\n");
        } else {
            out.push_str(&text::line(&self.headers, &self.widths, &self.right));
            out.push('\n');
        }
        out
    }

    /// The line of `r` with its line break, columns as wide as measured.
    pub fn line(&self, r: &ReportRow) -> String {
        let mut line = text::line(&self.cells(r), &self.widths, &self.right);
        line.push('\n');
        line
    }
}

mod columns;
mod grouping;

pub use grouping::{GroupBy, GroupKey, ParseSlaError, Sla};
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
