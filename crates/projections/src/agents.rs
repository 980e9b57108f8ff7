//! Agent state time (docs/METRICS.md §5): per agent, how long each `newState` of
//! `AgentStatusChange` lasted, clipped to a report window.
//!
//! [`AgentStates`] collects changes in any order and from any number of
//! threads ([`AgentStates::merge`]); ordering and duplicate removal happen in
//! [`AgentStates::finish`] (time per state) and [`AgentStates::spans`] (one
//! row per state span, for the Parquet export), which walk the same spans, so
//! the result depends only on the set of events and the two always agree.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ccvault_event::{
    event_time, lifecycle_rank, parse_event, CanonicalKey, Event, EventTime, TimeSource,
};
use serde::{Deserialize, Serialize};

use crate::columns::{Cell, Column, Show};
use crate::input::{dedupe_in_canonical_order, Canonical, EventInput};
use crate::timefmt::format_duration;

/// The window of an agents report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentWindow {
    /// Spans are clipped to `[from, to)`; changes are counted in it.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The largest t(e) of any event in the archive: where the last state
    /// ends when there is no `to`.
    pub archive_max_time_ms: i64,
}

/// One agent's line of `ccvault agents --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStateTime {
    pub agent_id: String,
    /// ms per `newState`; JSON keys are the decimal text of the state, in
    /// numeric order. Only states with time in the window appear.
    pub state_ms: BTreeMap<i64, i64>,
    /// Timed AgentStatusChange events with t(e) in the window.
    pub changes: u64,
    /// AgentStatusChange events left out because their time is weak
    /// (docs/METRICS.md §5): counted whatever the window, since a weak time
    /// cannot place them in or out of it.
    pub untimed: u64,
}

impl AgentStateTime {
    /// The agent as flat rows, one per state with time (CSV's shape of the
    /// `stateMs` map); an agent with no state time gives one row without a state.
    pub fn rows(&self) -> Vec<AgentStateRow> {
        let row = |state: Option<(&i64, &i64)>| AgentStateRow {
            agent_id: self.agent_id.clone(),
            state: state.map(|(s, _)| *s),
            state_ms: state.map(|(_, ms)| *ms),
            changes: self.changes,
            untimed: self.untimed,
        };
        if self.state_ms.is_empty() {
            return vec![row(None)];
        }
        self.state_ms.iter().map(|s| row(Some(s))).collect()
    }
}

/// One agent and state: a row of `ccvault agents --format csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStateRow {
    pub agent_id: String,
    pub state: Option<i64>,
    pub state_ms: Option<i64>,
    pub changes: u64,
    pub untimed: u64,
}

/// The columns of [`AgentStateRow`]: the JSON keys of [`AgentStateTime`],
/// with its `stateMs` map spread over `state` and `stateMs`.
pub static AGENT_STATE_COLUMNS: [Column<AgentStateRow>; 5] = [
    Column {
        key: "agentId",
        label: Some("agent"),
        show: Show::Text,
        width: 0,
        get: |r| Cell::Text(r.agent_id.as_str().into()),
    },
    Column {
        key: "state",
        label: Some("state"),
        show: Show::Number,
        width: 0,
        get: |r| Cell::opt_int(r.state),
    },
    Column {
        key: "stateMs",
        label: Some("time"),
        show: Show::Duration,
        width: 0,
        get: |r| Cell::opt_int(r.state_ms),
    },
    Column {
        key: "changes",
        label: Some("changes"),
        show: Show::Number,
        width: 0,
        get: |r| Cell::Count(r.changes),
    },
    Column {
        key: "untimed",
        label: Some("untimed"),
        show: Show::Number,
        width: 0,
        get: |r| Cell::Count(r.untimed),
    },
];

/// One state span of an agent: a row of the Parquet export's `agent-states`
/// table. The state set by one timed change, from its t(e) to the agent's
/// next timed change (the last one to the archive's latest timed t(e)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpan {
    pub agent_id: String,
    pub state: i64,
    /// `newReasonCodeUser` of the change, as text (§1).
    pub reason: Option<String>,
    /// The change's tenant ([`crate::event_tenant`]).
    pub tenant: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `end_ms - start_ms`; 0 when the next change has the same t(e).
    pub ms: i64,
}

/// One distinct status change, kept with what canonical order needs.
#[derive(Debug, Clone)]
struct Change {
    time_ms: i64,
    /// The rule that gave `time_ms`: whether the change is timed, and which
    /// of two copies of its payload gives its time.
    source: TimeSource,
    sequence_id: Option<i64>,
    rank: u8,
    raw: Box<[u8]>,
    new_state: i64,
    /// Kept only for [`AgentStates::spans`] (`None` from [`AgentStates::add_event`]).
    reason: Option<Box<str>>,
    tenant: Option<Box<str>>,
}

impl Canonical for Change {
    fn key(&self) -> CanonicalKey<'_> {
        CanonicalKey {
            time_ms: self.time_ms,
            sequence_id: self.sequence_id,
            rank: self.rank,
            raw: &self.raw,
        }
    }
    fn time_source(&self) -> TimeSource {
        self.source
    }
    fn prefer(&self, other: &Self) -> Ordering {
        // Copies of one payload differ only by their record's tenant: a
        // known one beats none, then the smaller text (as for legs).
        match (&self.tenant, &other.tenant) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

/// The spans of one agent's timed changes in canonical order: each change's
/// state from its t(e) until the next change, the last one until
/// `last_end` (never before its own start).
fn spans_of(changes: &[Change], last_end: i64) -> impl Iterator<Item = (&Change, i64, i64)> {
    changes.iter().enumerate().map(move |(i, c)| {
        let end = changes.get(i + 1).map_or(last_end, |n| n.time_ms);
        (c, c.time_ms, end)
    })
}

/// The agent of an event that counts as a status change (docs/METRICS.md §5): an
/// `AgentStatusChange` with an `agentId` and a `newState` that reads as a
/// number. The one test of that rule, shared by the accumulator and the
/// materialized store.
pub(crate) fn status_change_agent<'e>(event: &'e Event<'_>) -> Option<std::borrow::Cow<'e, str>> {
    if event.family != "AgentStatusChange" && event.event_type() != "AgentStatusChange" {
        return None;
    }
    event.body.new_state.as_i64()?;
    event.body.agent_id.as_text()
}

/// The agent and the change of an event that counts as a status change;
/// `detail`: `Some(tenant)` keeps the reason and the tenant.
fn change_of<'e>(
    event: &'e Event<'_>,
    time: EventTime,
    raw: &[u8],
    detail: Option<Option<&str>>,
) -> Option<(std::borrow::Cow<'e, str>, Change)> {
    let agent = status_change_agent(event)?;
    let new_state = event.body.new_state.as_i64()?;
    let change = Change {
        time_ms: time.ms,
        source: time.source,
        sequence_id: event.sequence_id(),
        rank: lifecycle_rank(&event.event_type()),
        raw: raw.into(),
        new_state,
        reason: detail
            .and_then(|_| event.body.new_reason_code_user.as_text())
            .map(|r| r.into()),
        tenant: detail.flatten().map(Into::into),
    };
    Some((agent, change))
}

/// One agent's distinct status changes, split by whether their time says
/// when they happened.
#[derive(Debug, Clone, Default)]
struct AgentChanges {
    timed: Vec<Change>,
    untimed: Vec<Change>,
}

/// The agent state accumulator.
#[derive(Debug, Clone, Default)]
pub struct AgentStates {
    agents: BTreeMap<String, AgentChanges>,
}

impl AgentStates {
    pub fn new() -> AgentStates {
        AgentStates::default()
    }

    /// Takes one archived record; `false` when it is not an
    /// `AgentStatusChange` with an `agentId` and a numeric `newState`.
    pub fn add(&mut self, input: &EventInput<'_>) -> bool {
        let Ok(event) = parse_event(input.payload) else {
            return false;
        };
        let t = event_time(&event, input.arrival());
        self.add_event(&event, t, input.payload)
    }

    /// As [`AgentStates::add`], for a caller that has already parsed the
    /// payload `raw` into `event` and knows its t(e) and time source. A
    /// change with a weak time is kept aside and only counted.
    pub fn add_event(&mut self, event: &Event<'_>, time: EventTime, raw: &[u8]) -> bool {
        self.add_change(event, time, raw, None)
    }

    /// As [`AgentStates::add_event`], also keeping the change's reason and
    /// its record's `tenant` for [`AgentStates::spans`].
    pub fn add_event_with_tenant(
        &mut self,
        event: &Event<'_>,
        time: EventTime,
        raw: &[u8],
        tenant: Option<&str>,
    ) -> bool {
        self.add_change(event, time, raw, Some(tenant))
    }

    /// `detail`: `Some(tenant)` keeps the reason and the tenant.
    fn add_change(
        &mut self,
        event: &Event<'_>,
        time: EventTime,
        raw: &[u8],
        detail: Option<Option<&str>>,
    ) -> bool {
        let Some((agent, change)) = change_of(event, time, raw, detail) else {
            return false;
        };
        let changes = match self.agents.get_mut(agent.as_ref()) {
            Some(changes) => changes,
            None => self.agents.entry(agent.into_owned()).or_default(),
        };
        if time.is_timed() {
            changes.timed.push(change);
        } else {
            changes.untimed.push(change);
        }
        true
    }

    /// Adds the changes another accumulator collected.
    pub fn merge(&mut self, other: AgentStates) {
        for (agent, mut changes) in other.agents {
            let mine = self.agents.entry(agent).or_default();
            mine.timed.append(&mut changes.timed);
            mine.untimed.append(&mut changes.untimed);
        }
    }

    /// Drops duplicate payloads and sorts canonically; bounds memory on
    /// long feeds. Idempotent. Copies of one payload are compared across
    /// both lists: a change archived first with a weak time and again in an
    /// envelope with its publish time is one timed change (docs/METRICS.md
    /// §2, the best rule among its copies).
    pub fn compact(&mut self) {
        for changes in self.agents.values_mut() {
            if changes.timed.is_empty() || changes.untimed.is_empty() {
                dedupe_in_canonical_order(&mut changes.timed);
                dedupe_in_canonical_order(&mut changes.untimed);
                continue;
            }
            let mut all = std::mem::take(&mut changes.timed);
            all.append(&mut changes.untimed);
            dedupe_in_canonical_order(&mut all);
            (changes.timed, changes.untimed) = all.into_iter().partition(|c| c.source.is_timed());
        }
    }

    /// Time per state for every agent with time or changes in the window,
    /// sorted by `agentId`.
    pub fn finish(mut self, window: &AgentWindow) -> Vec<AgentStateTime> {
        self.compact();
        let lo = window.from.unwrap_or(i64::MIN);
        let hi = window.to.unwrap_or(window.archive_max_time_ms);
        let mut out = Vec::new();
        for (
            agent_id,
            AgentChanges {
                timed: changes,
                untimed,
            },
        ) in self.agents
        {
            let mut state_ms: BTreeMap<i64, i64> = BTreeMap::new();
            let mut count = 0u64;
            for (c, start, end) in spans_of(&changes, hi) {
                if c.time_ms >= lo && window.to.is_none_or(|to| c.time_ms < to) {
                    count += 1;
                }
                let (start, end) = (start.max(lo), end.min(hi));
                if let Some(ms) = end.checked_sub(start).filter(|ms| *ms > 0) {
                    let slot = state_ms.entry(c.new_state).or_insert(0);
                    *slot = slot.saturating_add(ms);
                }
            }
            let untimed = untimed.len() as u64;
            if count > 0 || !state_ms.is_empty() || untimed > 0 {
                out.push(AgentStateTime {
                    agent_id,
                    state_ms,
                    changes: count,
                    untimed,
                });
            }
        }
        out
    }

    /// Every state span of every agent, unclipped (the whole archive; the
    /// last span of an agent ends at `archive_max_time_ms`), by `agentId`
    /// then start: one row per timed change, so an agent has as many spans
    /// as `agents` without a window counts `changes`, and the spans of a
    /// state add up to its `stateMs` there. Untimed changes have no span.
    pub fn spans(mut self, archive_max_time_ms: i64) -> Vec<AgentSpan> {
        self.compact();
        let mut out = Vec::new();
        for (agent_id, changes) in &self.agents {
            for (c, start, end) in spans_of(&changes.timed, archive_max_time_ms) {
                let end = end.max(start);
                out.push(AgentSpan {
                    agent_id: agent_id.clone(),
                    state: c.new_state,
                    reason: c.reason.as_deref().map(str::to_owned),
                    tenant: c.tenant.as_deref().map(str::to_owned),
                    start_ms: start,
                    end_ms: end,
                    ms: end.saturating_sub(start),
                });
            }
        }
        out
    }
}

/// Names for state codes in human output. The 8x8 documents disagree, so
/// the mapping is configurable; JSON always keeps the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateNames(BTreeMap<i64, String>);

impl Default for StateNames {
    /// The streaming docs: 0 logged out, 1 logged in, 5 available.
    fn default() -> Self {
        StateNames::from_pairs(&[(0, "logged out"), (1, "logged in"), (5, "available")])
    }
}

/// A state-name mapping that does not read as `code=name,...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state name {entry:?}: expected CODE=NAME, e.g. 5=available")]
pub struct ParseStateNamesError {
    entry: String,
}

impl StateNames {
    fn from_pairs(pairs: &[(i64, &str)]) -> StateNames {
        StateNames(pairs.iter().map(|(c, n)| (*c, n.to_string())).collect())
    }

    /// The agent-status API's codes: 1 logged out, 2 logged in, 3 on break,
    /// 4 available, 5 working offline.
    pub fn agent_status_api() -> StateNames {
        StateNames::from_pairs(&[
            (1, "logged out"),
            (2, "logged in"),
            (3, "on break"),
            (4, "available"),
            (5, "working offline"),
        ])
    }

    /// Reads `CODE=NAME` pairs separated by commas (`0=off,5=ready`);
    /// codes not listed print as `state N`.
    pub fn parse(spec: &str) -> Result<StateNames, ParseStateNamesError> {
        let mut names = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || ParseStateNamesError {
                entry: entry.to_string(),
            };
            let (code, name) = entry.split_once('=').ok_or_else(bad)?;
            let code: i64 = code.trim().parse().map_err(|_| bad())?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad());
            }
            names.insert(code, name.to_string());
        }
        Ok(StateNames(names))
    }

    /// The name of a code, or `state N`.
    pub fn name(&self, code: i64) -> String {
        self.0
            .get(&code)
            .cloned()
            .unwrap_or_else(|| format!("state {code}"))
    }
}

const TEXT_HEADERS: [&str; 6] = ["AGENT", "CHANGES", "UNTIMED", "STATE", "TIME", "SHARE"];
const TEXT_RIGHT: [bool; 6] = [false, true, true, false, true, true];

/// Human output: one line per agent and state.
pub fn render_text(agents: &[AgentStateTime], names: &StateNames) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = write_text(agents, names, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render_text`] written to `out` line by line: the rows are made twice,
/// once to measure the columns and once to print, never all held (an
/// archive of 1M agents held ~0.8 GB of them: an outside audit).
pub fn write_text(
    agents: &[AgentStateTime],
    names: &StateNames,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if agents.is_empty() {
        return out.write_all(b"no agent status changes\n");
    }
    let mut widths = crate::text::widths_of(&TEXT_HEADERS);
    for a in agents {
        text_rows(a, names, |row| {
            crate::text::widen(&mut widths, row);
            Ok(())
        })?;
    }
    let header: Vec<String> = TEXT_HEADERS.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", crate::text::line(&header, &widths, &TEXT_RIGHT))?;
    for a in agents {
        text_rows(a, names, |row| {
            writeln!(out, "{}", crate::text::line(row, &widths, &TEXT_RIGHT))
        })?;
    }
    Ok(())
}

/// The table rows of one agent: one a state, the agent's own cells on the
/// first (or one row of dashes when it has no timed state).
fn text_rows(
    a: &AgentStateTime,
    names: &StateNames,
    mut row: impl FnMut(&[String]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let total: i64 = a
        .state_ms
        .values()
        .fold(0i64, |t, ms| t.saturating_add(*ms));
    if a.state_ms.is_empty() {
        row(&[
            a.agent_id.clone(),
            a.changes.to_string(),
            a.untimed.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
        ])?;
    }
    for (i, (code, ms)) in a.state_ms.iter().enumerate() {
        let share = if total > 0 {
            format!("{:.1}%", *ms as f64 * 100.0 / total as f64)
        } else {
            "-".into()
        };
        let first = i == 0;
        let own = |cell: String| if first { cell } else { String::new() };
        row(&[
            own(a.agent_id.clone()),
            own(a.changes.to_string()),
            own(a.untimed.to_string()),
            format!("{} ({code})", names.name(*code)),
            format_duration(*ms),
            share,
        ])?;
    }
    Ok(())
}

mod span_runs;
pub use span_runs::SpanChanges;

#[cfg(test)]
mod tests;
