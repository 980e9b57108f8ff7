//! The timed status changes agent spans are made of, for a caller that
//! reads a whole archive (the Parquet export's `agent-states`): kept as
//! sorted runs on scratch files ([`crate::materialize::runs`]) past a few
//! MiB, so memory does not grow with the archive, then replayed agent by
//! agent.
//!
//! Invariant: [`SpanChanges::for_each_span`] gives exactly the spans
//! [`AgentStates::spans`] gives for the same events, in the same order
//! (agent, then start): the runs hold every field a change has, ordered by
//! agent first, and each agent's changes go through the same duplicate
//! removal and canonical order as there. Untimed changes make no span and
//! are not kept.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::path::Path;

use ccvault_event::{Event, EventTime, TimeSource};

use super::{change_of, AgentChanges, AgentSpan, AgentStates, Change};
use crate::materialize::runs::{
    at_end, read_bytes, read_str, write_bytes, write_str, RunKey, Runs,
};

/// One timed change and its agent, as a run holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AgentChange {
    agent: String,
    time_ms: i64,
    sequence_id: Option<i64>,
    rank: u8,
    raw: Vec<u8>,
    new_state: i64,
    reason: Option<String>,
    tenant: Option<String>,
    /// The rule that gave `time_ms` (which of two copies gives the time).
    source: TimeSource,
}

fn write_i64(out: &mut impl Write, v: i64) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn read_i64(input: &mut impl BufRead) -> io::Result<i64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(i64::from_le_bytes(b))
}

fn read_u8(input: &mut impl BufRead) -> io::Result<u8> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

fn write_opt_str(out: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => {
            out.write_all(&[1])?;
            write_str(out, s)
        }
        None => out.write_all(&[0]),
    }
}

fn read_opt_str(input: &mut impl BufRead) -> io::Result<Option<String>> {
    Ok(match read_u8(input)? {
        0 => None,
        _ => Some(read_str(input)?),
    })
}

impl RunKey for AgentChange {
    fn footprint(&self) -> usize {
        std::mem::size_of::<(Self, u32)>()
            + self.agent.capacity()
            + self.raw.capacity()
            + self.reason.as_ref().map_or(0, String::capacity)
            + self.tenant.as_ref().map_or(0, String::capacity)
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.agent)?;
        write_i64(out, self.time_ms)?;
        match self.sequence_id {
            Some(s) => {
                out.write_all(&[1])?;
                write_i64(out, s)?;
            }
            None => out.write_all(&[0])?,
        }
        out.write_all(&[self.rank])?;
        write_bytes(out, &self.raw)?;
        write_i64(out, self.new_state)?;
        write_opt_str(out, self.reason.as_deref())?;
        write_opt_str(out, self.tenant.as_deref())?;
        out.write_all(&[self.source.rank()])
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        let agent = read_str(input)?;
        let time_ms = read_i64(input)?;
        let sequence_id = match read_u8(input)? {
            0 => None,
            _ => Some(read_i64(input)?),
        };
        Ok(Some(AgentChange {
            agent,
            time_ms,
            sequence_id,
            rank: read_u8(input)?,
            raw: read_bytes(input)?,
            new_state: read_i64(input)?,
            reason: read_opt_str(input)?,
            tenant: read_opt_str(input)?,
            source: TimeSource::of_rank(read_u8(input)?).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "unknown time source rank")
            })?,
        }))
    }
}

/// The timed status changes of an archive, for its agent spans.
pub struct SpanChanges {
    runs: Runs<AgentChange>,
}

impl SpanChanges {
    /// Changes whose scratch files are `<scratch>.agent-changes.<n>` (each
    /// unlinked once created); `None` keeps them all in memory.
    pub fn new(scratch: Option<&Path>) -> SpanChanges {
        SpanChanges {
            runs: Runs::new(scratch, "agent-changes"),
        }
    }

    /// As [`AgentStates::add_event_with_tenant`]: `Ok(false)` when the event
    /// is not a status change; a timed one is kept (with its reason and
    /// `tenant`), an untimed one only taken.
    pub fn add_event_with_tenant(
        &mut self,
        event: &Event<'_>,
        time: EventTime,
        raw: &[u8],
        tenant: Option<&str>,
    ) -> io::Result<bool> {
        let Some((agent, c)) = change_of(event, time, raw, Some(tenant)) else {
            return Ok(false);
        };
        if time.is_timed() {
            let change = AgentChange {
                agent: agent.into_owned(),
                time_ms: c.time_ms,
                sequence_id: c.sequence_id,
                rank: c.rank,
                raw: c.raw.into_vec(),
                new_state: c.new_state,
                reason: c.reason.map(String::from),
                tenant: c.tenant.map(String::from),
                source: c.source,
            };
            self.runs.push(change, 1)?;
        }
        Ok(true)
    }

    /// Calls `f` with every span, as [`AgentStates::spans`] would list them
    /// (the last span of an agent ends at `archive_max_time_ms`); may be
    /// called again for another pass. Memory holds one agent's changes.
    pub fn for_each_span<E>(
        &mut self,
        archive_max_time_ms: i64,
        mut f: impl FnMut(AgentSpan) -> Result<(), E>,
        io: impl Fn(io::Error) -> E,
    ) -> Result<(), E> {
        let mut agent: Option<String> = None;
        let mut timed: Vec<Change> = Vec::new();
        let spans_of_agent =
            |agent: String, timed: Vec<Change>, f: &mut dyn FnMut(AgentSpan) -> Result<(), E>| {
                let one = AgentStates {
                    agents: BTreeMap::from([(
                        agent,
                        AgentChanges {
                            timed,
                            untimed: Vec::new(),
                        },
                    )]),
                };
                one.spans(archive_max_time_ms).into_iter().try_for_each(f)
            };
        self.runs.replay(
            |c: AgentChange, _copies| {
                if agent.as_deref() != Some(c.agent.as_str()) {
                    if let Some(done) = agent.take() {
                        spans_of_agent(done, std::mem::take(&mut timed), &mut f)?;
                    }
                    agent = Some(c.agent.clone());
                }
                timed.push(Change {
                    time_ms: c.time_ms,
                    sequence_id: c.sequence_id,
                    rank: c.rank,
                    raw: c.raw.into_boxed_slice(),
                    new_state: c.new_state,
                    reason: c.reason.map(String::into_boxed_str),
                    tenant: c.tenant.map(String::into_boxed_str),
                    source: c.source,
                });
                Ok(())
            },
            io,
        )?;
        match agent {
            Some(done) => spans_of_agent(done, timed, &mut f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccvault_event::{event_time, parse_event};
    use ccvault_sim::{simulate, Quirks, SimConfig};

    /// A simulated day with every quirk (redeliveries, out-of-order and
    /// untimed events), its lines.
    fn feed() -> Vec<Vec<u8>> {
        let cfg = SimConfig {
            seed: 7,
            interactions: Some(1500),
            agents: 30,
            days: 2,
            quirks: Quirks::default(),
            ..SimConfig::default()
        };
        let mut out = Vec::new();
        simulate(&cfg, &mut out).unwrap();
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn time_of(ev: &Event<'_>, i: usize) -> EventTime {
        let arrival = ccvault_event::Arrival {
            publish_time: None,
            ingest_ms: 1_763_899_400_000 + i as i64,
            live: i.is_multiple_of(2),
        };
        event_time(ev, arrival)
    }

    fn spans_by_runs(lines: &[Vec<u8>], mut changes: SpanChanges, max: i64) -> Vec<AgentSpan> {
        for (i, line) in lines.iter().enumerate() {
            let Ok(ev) = parse_event(line) else { continue };
            let t = time_of(&ev, i);
            let tenant = (i % 3 == 0).then_some("acme");
            changes.add_event_with_tenant(&ev, t, line, tenant).unwrap();
        }
        let mut pass = || {
            let mut spans = Vec::new();
            let push = |s| -> io::Result<()> {
                spans.push(s);
                Ok(())
            };
            changes.for_each_span(max, push, |e| e).unwrap();
            spans
        };
        let out = pass();
        // A second pass gives the same spans.
        let again = pass();
        assert_eq!(out, again);
        out
    }

    #[test]
    fn spilled_runs_give_the_spans_of_the_whole_set() {
        let lines = feed();
        let max = i64::MAX / 2;
        let mut states = AgentStates::new();
        for (i, line) in lines.iter().enumerate() {
            let Ok(ev) = parse_event(line) else { continue };
            let t = time_of(&ev, i);
            let tenant = (i % 3 == 0).then_some("acme");
            states.add_event_with_tenant(&ev, t, line, tenant);
        }
        let want = states.spans(max);
        assert!(want.len() > 100, "{} spans", want.len());

        let in_memory = spans_by_runs(&lines, SpanChanges::new(None), max);
        assert_eq!(in_memory, want);

        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("x");
        let mut spilled = SpanChanges::new(Some(&base));
        // Runs of ~8 KiB, merged 4 at a time: many runs, several merges.
        spilled.runs =
            std::mem::replace(&mut spilled.runs, Runs::new(None, "unused")).with_limits(8 << 10, 4);
        assert_eq!(spans_by_runs(&lines, spilled, max), want);
        // The scratch files were unlinked as they were made.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
