//! The interaction timeline behind `ccvault show GUID`: every distinct event
//! in canonical order with its time and the gap since the previous one, and
//! the derived summary.

use std::borrow::Cow;
use std::fmt::Write as _;

use ccvault_event::TimeSource;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::input::{prepare, EventInput};
use crate::summary::{derive, Summary};
use crate::text::{for_terminal, table};
use crate::timefmt::{format_duration, format_instant, format_opt_duration, format_opt_instant};

/// One event of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// t(e), ms since the epoch (docs/METRICS.md, event time).
    pub t: i64,
    /// The rule that gave `t`; a weak one (`eventTS`, `imported`) orders the
    /// event but says little about when it happened.
    pub time_source: TimeSource,
    /// t(e) minus the previous event's t(e); `null` for the first event.
    pub delta_ms: Option<i64>,
    pub event_type: String,
    pub agent_id: Option<String>,
    pub call_state: Option<String>,
    /// `newState` of agent status events.
    pub new_state: Option<i64>,
    /// `status` as text (hold, mute, recording).
    pub status: Option<String>,
    pub sequence_id: Option<i64>,
    /// Which of the caller's records this event is (the kept copy of a
    /// duplicated payload), so a caller can print its raw bytes. Not part of
    /// the JSON: it depends on the caller's record order.
    #[serde(skip)]
    pub input_index: usize,
}

impl TimelineEvent {
    /// The state the event reports, as `show` prints it: call state,
    /// `newState N`, `status S` (those present, in that order).
    pub fn state_details(&self) -> Vec<String> {
        let mut detail = Vec::new();
        if let Some(cs) = &self.call_state {
            detail.push(cs.clone());
        }
        if let Some(ns) = self.new_state {
            detail.push(format!("newState {ns}"));
        }
        if let Some(st) = &self.status {
            detail.push(format!("status {st}"));
        }
        detail
    }
}

/// `show GUID`: the ordered events and what they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    #[serde(rename = "interactionGUID")]
    pub interaction_guid: Option<String>,
    pub events: Vec<TimelineEvent>,
    pub summary: Summary,
}

/// Builds the timeline of one interaction's records (any order, duplicates
/// allowed). `None` when no record is an event.
pub fn build(events: &[EventInput<'_>]) -> Option<Timeline> {
    let prepared = prepare(events);
    let summary = derive(&prepared)?;
    let mut previous: Option<i64> = None;
    let events = prepared
        .iter()
        .map(|p| {
            let b = &p.event.body;
            let t = p.key.time_ms;
            let delta_ms = previous.and_then(|prev| t.checked_sub(prev));
            previous = Some(t);
            TimelineEvent {
                t,
                time_source: p.time_source,
                delta_ms,
                event_type: p.event.event_type().into_owned(),
                agent_id: b.agent_id.as_text().map(Cow::into_owned),
                call_state: b.call_state.as_text().map(Cow::into_owned),
                new_state: b.new_state.as_i64(),
                status: b.status.as_text().map(Cow::into_owned),
                sequence_id: p.key.sequence_id,
                input_index: p.input_index,
            }
        })
        .collect();
    Some(Timeline {
        interaction_guid: summary.interaction_guid.clone(),
        events,
        summary,
    })
}

/// Human output: the event table, then instants, durations, outcome and
/// anomalies. Times print in UTC unless `tz` is given.
pub fn render_text(timeline: &Timeline, tz: Option<&TimeZone>) -> String {
    let s = &timeline.summary;
    let mut out = String::new();
    let or_dash = |v: Option<&str>| for_terminal(v.unwrap_or("-")).into_owned();
    let _ = writeln!(
        out,
        "Interaction {}",
        or_dash(timeline.interaction_guid.as_deref())
    );
    let _ = writeln!(
        out,
        "tenant {}  media {}  queue {}  direction {}",
        or_dash(s.tenant.as_deref()),
        or_dash(s.media_type.as_deref()),
        s.queue_id
            .map_or_else(|| "-".to_string(), |q| q.to_string()),
        s.direction.map_or("-", |d| match d {
            crate::Direction::In => "in",
            crate::Direction::Out => "out",
        }),
    );
    let _ = writeln!(
        out,
        "kind {}  contact {}  legIndex {}  from {}",
        s.kind.as_str(),
        or_dash(s.contact_id.as_deref()),
        s.leg_index,
        or_dash(s.parent_guid.as_deref()),
    );
    out.push('\n');

    let rows: Vec<Vec<String>> = timeline
        .events
        .iter()
        .map(|e| {
            let mut detail = e.state_details();
            if !e.time_source.is_timed() {
                detail.push(format!("weak time ({})", e.time_source));
            }
            vec![
                format_instant(e.t, tz),
                e.delta_ms
                    .map_or_else(String::new, |d| format!("+{}", format_duration(d))),
                e.event_type.clone(),
                e.agent_id.clone().unwrap_or_else(|| "-".to_owned()),
                detail.join(", "),
            ]
        })
        .collect();
    out.push_str(&table(
        &["TIME", "DELTA", "EVENT", "AGENT", "STATE"],
        &rows,
        &[false, true, false, false, false],
    ));
    out.push('\n');

    let instants = [
        ("created", s.created_at),
        ("queued", s.queued_at),
        ("assigned", s.assigned_at),
        ("accepted", s.accepted_at),
        ("connected", s.connected_at),
        ("wrap start", s.wrap_start_at),
        ("wrap end", s.wrap_end_at),
        ("ended", s.ended_at),
    ];
    for (name, at) in instants {
        let _ = writeln!(out, "{name:<11} {}", format_opt_instant(at, tz));
    }
    out.push('\n');
    let durations = s.durations();
    for (name, ms) in durations {
        let _ = writeln!(out, "{name:<11} {}", format_opt_duration(ms));
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "outcome     {}{}",
        s.outcome.as_str(),
        s.agent_id
            .as_deref()
            .map_or_else(String::new, |a| format!(" (agent {})", for_terminal(a)))
    );
    let _ = writeln!(
        out,
        "offers {}  rejects {}  holds {}  transferred {}  complete {}  events {}",
        s.offer_count,
        s.reject_count,
        s.hold_count,
        if s.transferred { "yes" } else { "no" },
        if s.complete { "yes" } else { "no" },
        s.event_count,
    );
    let _ = writeln!(
        out,
        "hangup      {}  reason {}  disposition {}",
        or_dash(s.hangup_initiator.as_deref()),
        or_dash(s.call_hangup_reason.as_deref()),
        or_dash(s.disposition_code.as_deref()),
    );
    let anomalies: Vec<&str> = s.anomalies.iter().map(|a| a.as_str()).collect();
    let _ = writeln!(
        out,
        "anomalies   {}",
        if anomalies.is_empty() {
            "none".to_string()
        } else {
            anomalies.join(", ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn sample_timeline_orders_events_and_measures_gaps() {
        let tl = build(&inputs(&sample_of(GUID1))).unwrap();
        assert_eq!(tl.interaction_guid.as_deref(), Some(GUID1));
        let types: Vec<&str> = tl.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "InteractionCreated",
                "InteractionQueued",
                "InteractionAssigned",
                "InteractionRejected",
                "InteractionAssigned",
                "InteractionAccepted",
                "LineHoldStatus",
                "RecordingStatus",
                "LineHoldStatus",
                "InteractionDeleted", // seq 1029 before PostProcess's 1030
                "InteractionPostProcess",
                "InteractionEndPostProcess",
                "InteractionDeassigned",
            ]
        );
        let deltas: Vec<Option<i64>> = tl.events.iter().map(|e| e.delta_ms).collect();
        assert_eq!(
            deltas,
            [
                None,
                Some(2_000),
                Some(38_000),
                Some(30_000),
                Some(5_000),
                Some(6_000),
                Some(119_000),
                Some(0),
                Some(45_000),
                Some(157_000),
                Some(0),
                Some(29_000),
                Some(0),
            ]
        );
        assert_eq!(tl.events[0].call_state.as_deref(), Some("CS_QUEUED"));
        assert_eq!(tl.events[6].status.as_deref(), Some("true"));
        assert_eq!(tl.events[8].status.as_deref(), Some("false"));
        assert_eq!(tl.events[2].sequence_id, None); // msgInfo {}
        assert_eq!(tl.summary.talk_ms, Some(276_000));

        let json = serde_json::to_string(&tl).unwrap();
        assert!(json.starts_with(&format!(
            r#"{{"interactionGUID":"{GUID1}","events":[{{"t":1763900000000,"timeSource":"interactionEventTS","deltaMs":null,"eventType":"InteractionCreated","agentId":null,"callState":"CS_QUEUED","newState":null,"status":null,"sequenceId":1001}}"#
        )));
        assert!(json.contains(r#""summary":{"interactionGUID""#));
    }

    #[test]
    fn text_lists_every_event_then_what_they_add_up_to() {
        let tl = build(&inputs(&sample_of(GUID1))).unwrap();
        let text = render_text(&tl, None);
        assert!(text.contains("2025-11-23T12:13:20.000Z"), "{text}");
        assert!(text.contains("+38s"), "{text}");
        assert!(text.contains("agR2t9LmQx7VbN3cZk5WpYe"), "{text}");
        assert!(text.contains("talk        4m 36s"), "{text}");
        assert!(text.contains("outcome     answered (agent agR2t9LmQx7VbN3cZk5WpYe)"));
        assert!(text.contains("anomalies   none"));
        let event_lines = text
            .lines()
            .filter(|l| l.starts_with("2025-11-23T"))
            .count();
        assert_eq!(event_lines, 13, "{text}");

        let ny = TimeZone::get("America/New_York").unwrap();
        let text = render_text(&tl, Some(&ny));
        assert!(text.contains("2025-11-23T07:13:20.000-05:00"), "{text}");
    }

    #[test]
    fn input_index_points_at_a_kept_copy() {
        let lines = sample_of(GUID2);
        let mut recs = inputs(&lines);
        recs.insert(0, recs[3]);
        let tl = build(&recs).unwrap();
        assert_eq!(tl.events.len(), 4);
        for e in &tl.events {
            let raw = recs[e.input_index].payload;
            let tl1 = build(&inputs(&[raw])).unwrap();
            assert_eq!(tl1.events[0].t, e.t);
        }
    }
}
