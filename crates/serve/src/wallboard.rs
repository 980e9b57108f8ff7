//! The wallboard document (docs/SERVE.md): per queue and channel what is
//! waiting now and today's service so far, agents by current state, and the
//! legs in progress with their stage. `ccvault wallboard --format json`,
//! `/api/wallboard` and every `wallboard` message of `/events` are this one
//! serialization of [`compute`].
//!
//! Invariants:
//! - A function of the archive's visible records, the projections caught up
//!   to them, and the options (the clock included): the same question asked
//!   of the CLI and of the server gives the same bytes.
//! - Durations that grow with the clock are given as instants (`sinceMs`),
//!   so the page can advance them every second without asking again.
//! - Lists are sorted (queues by queue then channel, legs by `sinceMs` then
//!   GUID, agents by id), so equal inputs give equal bytes.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use ccvault_projections::report::{GroupBy, Interval, Report, ReportOptions, Sla};
use ccvault_projections::{
    could_be_in_progress, live_stage, record_input, InteractionFilter, LegKind, Live, Projections,
    Stage, StateNames, Summary, Touched,
};
use ccvault_store::ArchiveReader;
use jiff::tz::TimeZone;
use serde::Serialize;

/// How far back a leg without an end, or an agent's last status change,
/// still counts as "now": a leg whose end event was lost leaves the board
/// after a day instead of waiting forever.
pub const LIVE_HORIZON_MS: i64 = 24 * 3_600_000;

/// The question a wallboard answers.
#[derive(Debug, Clone)]
pub struct WallboardOptions {
    /// "Today" is the calendar day of `now_ms` in this zone.
    pub tz: TimeZone,
    pub sla: Sla,
    pub short_abandon_ms: i64,
    pub state_names: StateNames,
    /// The clock, in epoch ms.
    pub now_ms: i64,
}

/// `/api/wallboard`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wallboard {
    /// The clock the document was computed at.
    pub as_of_ms: i64,
    /// Local midnight of today in `timeZone`: the start of the day's counts.
    pub day_start_ms: i64,
    pub time_zone: String,
    /// Archive records the document includes (the index's visible end).
    pub records: u64,
    pub queues: Vec<QueueNow>,
    pub agents: Vec<AgentRow>,
    pub in_progress: Vec<InProgress>,
}

/// One queue and channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueNow {
    pub queue_id: Option<i64>,
    pub media_type: Option<String>,
    /// Legs queued or ringing now.
    pub waiting: u64,
    /// Queue entry of the longest-waiting of them.
    pub oldest_waiting_since_ms: Option<i64>,
    /// Today so far, by `offeredAt` (docs/METRICS.md §4, inbound legs).
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub answered_in_sla: u64,
    pub service_level: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub asa_ms: Option<i64>,
    /// Today's outbound legs (campaign calls too, even when they queue:
    /// never in `offered`, docs/METRICS.md §4) and those the customer
    /// answered.
    pub outbound: u64,
    pub outbound_connected: u64,
}

impl QueueNow {
    /// Whether a column of the row counts a leg: one waiting now, or one of
    /// today's inbound or outbound legs. Today's legs that no column counts
    /// (consultations, calls that never queued) would make a row of zeros.
    fn counts_a_leg(&self) -> bool {
        self.waiting > 0 || self.offered > 0 || self.outbound > 0
    }
}

/// One agent's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRow {
    pub agent_id: String,
    /// The agent's status (8x8's agent stream: presence, e.g. available),
    /// which does not change when a call is accepted.
    pub state: i64,
    pub state_name: String,
    pub since_ms: i64,
    /// What the agent is doing on an interaction now, from the legs in
    /// progress: the stage (`talking`, `hold`, `wrapup`) of the latest leg
    /// the agent handles; `None` when the agent handles none.
    pub activity: Option<Stage>,
    /// When that stage began.
    pub activity_since_ms: Option<i64>,
    /// Legs in progress the agent handles (a chat agent may have several).
    pub interactions: u64,
}

/// One leg in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InProgress {
    #[serde(rename = "interactionGUID")]
    pub interaction_guid: String,
    pub contact_id: Option<String>,
    pub stage: Stage,
    /// When the stage began (queued and ringing: the queue entry).
    pub since_ms: i64,
    pub kind: LegKind,
    pub queue_id: Option<i64>,
    pub media_type: Option<String>,
    pub agent_id: Option<String>,
}

/// Per agent, what it does on the legs in progress: the stage and start of
/// its latest leg talking, on hold or in wrap-up (`in_progress` is sorted
/// by `sinceMs`, so the last one seen is the latest), and how many it has.
fn handled_by_agent(in_progress: &[InProgress]) -> HashMap<&str, (Stage, i64, u64)> {
    let mut out: HashMap<&str, (Stage, i64, u64)> = HashMap::new();
    for l in in_progress {
        let Some(agent) = l.agent_id.as_deref() else {
            continue;
        };
        if matches!(l.stage, Stage::Talking | Stage::Hold | Stage::Wrapup) {
            let e = out.entry(agent).or_insert((l.stage, l.since_ms, 0));
            *e = (l.stage, l.since_ms, e.2 + 1);
        }
    }
    out
}

/// Local midnight of the day of `now_ms` in `tz`, and the next one (an
/// error for an instant whose day is not within the range of instants).
pub fn today(tz: &TimeZone, now_ms: i64) -> Result<(i64, i64)> {
    let now = ccvault_event::timestamp_of(now_ms)
        .with_context(|| format!("the clock {now_ms} ms is out of range"))?
        .to_zoned_datetime(tz.clone());
    let start = now.start_of_day().context("no start of today")?;
    let end = start.tomorrow().context("no end of today")?;
    Ok((
        start.timestamp().as_millisecond(),
        end.timestamp().as_millisecond(),
    ))
}

/// The wallboard of the archive `reader` sees, from projections caught up
/// to it: [`Floor::build`] then [`Floor::wallboard`], the same code the
/// server's incremental updates end in.
pub fn compute(
    p: &Projections,
    reader: &mut ArchiveReader,
    opts: &WallboardOptions,
) -> Result<Wallboard> {
    Floor::build(p, reader, opts)?.wallboard(opts)
}

/// A queue row's key: queue, then channel.
type QueueKey = (Option<i64>, Option<String>);

/// Today's counts of one queue and channel (a [`QueueNow`] without what
/// waits now).
#[derive(Debug, Clone, Default, PartialEq)]
struct DayCounts {
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    answered_in_sla: u64,
    service_level: Option<f64>,
    abandon_rate: Option<f64>,
    asa_ms: Option<i64>,
    outbound: u64,
    outbound_connected: u64,
}

/// Today's legs of one queue and channel and their counts.
#[derive(Debug, Clone, Default)]
struct QueueDay {
    /// By (`offeredAt`, GUID): the order `Projections::report` adds them
    /// in, so the counts are the report's.
    legs: BTreeMap<(i64, String), Summary>,
    counts: DayCounts,
    /// `counts` no longer matches `legs`.
    stale: bool,
}

/// A leg that may be in progress, with its stage.
#[derive(Debug, Clone, PartialEq)]
struct LegNow {
    offered_at: i64,
    has_parent: bool,
    row: InProgress,
}

/// The state a wallboard is rendered from, kept current by applying the
/// legs each index commit touched ([`Floor::update`]) instead of reading
/// every leg again.
///
/// Invariant: after [`Floor::build`] and any sequence of
/// [`Floor::update`]s, each given what the catch-up from the state's end
/// noted (the legs it summarized again with their stage, and whether an
/// agent status change was among the records), [`Floor::wallboard`] equals
/// [`compute`] on the same archive, for any clock in the same local day.
/// The caller builds again when the day changes, or when it cannot name the
/// touched legs (the projections were rebuilt, or caught up by another
/// process, or from another offset than the state's end).
#[derive(Debug, Clone)]
pub struct Floor {
    /// Today, `[start, end)`, in the zone of the options it was built with.
    day: (i64, i64),
    /// Today's legs, by queue and channel.
    queues: BTreeMap<QueueKey, QueueDay>,
    /// Where each of today's legs is filed in `queues`.
    filed: HashMap<String, (QueueKey, i64)>,
    /// Legs in progress, whatever their `offeredAt`: those offered more
    /// than [`LIVE_HORIZON_MS`] before the clock are left out when
    /// rendering (the clock moves on without the archive changing).
    live: HashMap<String, LegNow>,
    /// Each agent's latest status change.
    agents: Vec<ccvault_projections::AgentNow>,
    /// The archive's visible end the state includes.
    records: u64,
}

impl Floor {
    /// The state of the archive as the projections `p` hold it (caught up
    /// to what `reader` sees, unless another process holds them), for the
    /// day of `opts.now_ms`.
    pub fn build(
        p: &Projections,
        reader: &mut ArchiveReader,
        opts: &WallboardOptions,
    ) -> Result<Floor> {
        let day = today(&opts.tz, opts.now_ms)?;
        let mut floor = Floor {
            day,
            queues: BTreeMap::new(),
            filed: HashMap::new(),
            live: HashMap::new(),
            agents: p.agents_now()?,
            // What the projections include: the reader's end once this
            // process caught them up, else (another process holds them)
            // as far as that process has brought them.
            records: p.state()?.consumed,
        };
        // One pass over the stored summaries serves both today's legs and
        // those that may be in progress (the last 24 hours).
        let horizon = opts.now_ms.saturating_sub(LIVE_HORIZON_MS);
        let mut candidates = Vec::new();
        let scan = InteractionFilter {
            from: Some(day.0.min(horizon)),
            ..InteractionFilter::default()
        };
        p.for_each_interaction(&scan, |s| {
            if s.offered_at >= horizon && could_be_in_progress(&s) {
                candidates.push(s.clone());
            }
            floor.file(s);
            Ok(true)
        })?;
        for s in &candidates {
            floor.place_live(reader, s)?;
        }
        floor.count(opts);
        Ok(floor)
    }

    /// Whether the clock of `opts` falls in the day the state counts (else
    /// [`Floor::wallboard`] refuses it: build again).
    pub fn covers(&self, opts: &WallboardOptions) -> bool {
        today(&opts.tz, opts.now_ms).is_ok_and(|d| d == self.day)
    }

    /// The archive's visible end the state includes.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Applies what the catch-up of the projections from the state's end
    /// (`touched.from`, which must be [`Floor::records`]) to `end` noted;
    /// `agents_changed` when an agent status change was among those
    /// records. The legs' events are not read again: the catch-up handed
    /// their stage over with them.
    pub fn update(
        &mut self,
        p: &Projections,
        touched: &Touched,
        agents_changed: bool,
        end: u64,
        opts: &WallboardOptions,
    ) -> Result<()> {
        anyhow::ensure!(
            touched.from == self.records,
            "the catch-up started at record {}, the wallboard state ends at {}",
            touched.from,
            self.records
        );
        for (guid, live) in &touched.legs {
            self.unfile(guid);
            self.live.remove(guid);
            let Some(s) = p.summary(guid)? else {
                continue;
            };
            // As `build` places a leg: its events' stage, if its summary
            // allows one (a leg whose InteractionDeleted is timed before its
            // last events, clocks apart, is complete: until 2026-12-07 an
            // update placed it "ringing" for a day, where a new server
            // did not: an outside audit).
            if let Some(live) = live.filter(|_| could_be_in_progress(&s)) {
                self.place(&s, live);
            }
            self.file(s);
        }
        if !touched.legs.is_empty() {
            let updated: HashSet<&str> = touched.legs.iter().map(|(g, _)| g.as_str()).collect();
            // A leg's contact is found through its parents' summaries: a
            // parent archived now moves its children in progress too.
            let children: Vec<String> = self
                .live
                .iter()
                .filter(|(g, l)| l.has_parent && !updated.contains(g.as_str()))
                .map(|(g, _)| g.clone())
                .collect();
            for guid in children {
                let contact = p.summary(&guid)?.and_then(|s| s.contact_id);
                if let Some(l) = self.live.get_mut(&guid) {
                    l.row.contact_id = contact;
                }
            }
        }
        if agents_changed {
            self.agents = p.agents_now()?;
        }
        self.records = end;
        self.count(opts);
        Ok(())
    }

    /// Files one of today's legs under its queue (others are ignored).
    fn file(&mut self, s: Summary) {
        if s.offered_at < self.day.0 || s.offered_at >= self.day.1 {
            return;
        }
        let Some(guid) = s.interaction_guid.clone() else {
            return;
        };
        let key = (s.queue_id, s.media_type.clone());
        let q = self.queues.entry(key.clone()).or_default();
        q.legs.insert((s.offered_at, guid.clone()), s.clone());
        q.stale = true;
        self.filed.insert(guid, (key, s.offered_at));
    }

    /// Takes a leg out of today's counts.
    fn unfile(&mut self, guid: &str) {
        let Some((key, at)) = self.filed.remove(guid) else {
            return;
        };
        if let Some(q) = self.queues.get_mut(&key) {
            q.legs.remove(&(at, guid.to_owned()));
            q.stale = true;
            if q.legs.is_empty() {
                self.queues.remove(&key);
            }
        }
    }

    /// Reads the leg's records and keeps it when it is in progress. Only
    /// the records the state includes (below [`Floor::records`]) count:
    /// beside a process that holds the projections and has not caught them
    /// up, the index shows later records, and a stage from those beside
    /// summaries from before them was a floor that never was (a second
    /// server showed no call in progress: an outside audit).
    fn place_live(&mut self, reader: &mut ArchiveReader, s: &Summary) -> Result<()> {
        let Some(guid) = s.interaction_guid.as_deref() else {
            return Ok(());
        };
        let records: Vec<_> = reader
            .interaction_records(guid)?
            .into_iter()
            .filter(|r| !r.quarantined && r.offset < self.records)
            .collect();
        let inputs: Vec<_> = records.iter().map(record_input).collect();
        if let Some(live) = live_stage(&inputs) {
            self.place(s, live);
        }
        Ok(())
    }

    /// Keeps a leg in progress, in stage `live`.
    fn place(&mut self, s: &Summary, live: Live) {
        let Some(guid) = s.interaction_guid.clone() else {
            return;
        };
        self.live.insert(
            guid.clone(),
            LegNow {
                offered_at: s.offered_at,
                has_parent: s.parent_guid.is_some(),
                row: InProgress {
                    interaction_guid: guid,
                    contact_id: s.contact_id.clone(),
                    stage: live.stage,
                    since_ms: live.since_ms,
                    kind: s.kind,
                    queue_id: s.queue_id,
                    media_type: s.media_type.clone(),
                    agent_id: s.agent_id.clone(),
                },
            },
        );
    }

    /// Counts today's legs again where they changed, with the report's
    /// code (docs/METRICS.md §4).
    fn count(&mut self, opts: &WallboardOptions) {
        for q in self.queues.values_mut().filter(|q| q.stale) {
            let mut report = Report::new(ReportOptions {
                interval: Interval::Day1,
                by: GroupBy {
                    queue: true,
                    channel: true,
                    agent: false,
                },
                tz: opts.tz.clone(),
                sla: opts.sla.clone(),
                short_abandon_ms: opts.short_abandon_ms,
                from: Some(self.day.0),
                to: Some(self.day.1),
            });
            for s in q.legs.values() {
                report.add(s);
            }
            let mut c = DayCounts::default();
            for r in report.rows() {
                c.offered += r.offered;
                c.answered += r.answered;
                c.abandoned += r.abandoned;
                c.short_abandoned += r.short_abandoned;
                c.answered_in_sla += r.answered_in_sla;
                c.service_level = r.service_level;
                c.abandon_rate = r.abandon_rate;
                c.asa_ms = r.asa_ms;
                c.outbound += r.outbound;
                c.outbound_connected += r.outbound_connected;
            }
            q.counts = c;
            q.stale = false;
        }
    }

    /// The wallboard at the clock of `opts` (which must fall in the
    /// state's day: else build again).
    pub fn wallboard(&self, opts: &WallboardOptions) -> Result<Wallboard> {
        let day = today(&opts.tz, opts.now_ms)?;
        anyhow::ensure!(
            day == self.day,
            "the wallboard state counts another day than the clock's"
        );
        let empty = |(queue_id, media_type): QueueKey, c: &DayCounts| QueueNow {
            queue_id,
            media_type,
            waiting: 0,
            oldest_waiting_since_ms: None,
            offered: c.offered,
            answered: c.answered,
            abandoned: c.abandoned,
            short_abandoned: c.short_abandoned,
            answered_in_sla: c.answered_in_sla,
            service_level: c.service_level,
            abandon_rate: c.abandon_rate,
            asa_ms: c.asa_ms,
            outbound: c.outbound,
            outbound_connected: c.outbound_connected,
        };
        let mut queues: BTreeMap<QueueKey, QueueNow> = self
            .queues
            .iter()
            .map(|(k, q)| (k.clone(), empty(k.clone(), &q.counts)))
            .collect();
        let horizon = opts.now_ms.saturating_sub(LIVE_HORIZON_MS);
        let mut in_progress: Vec<InProgress> = self
            .live
            .values()
            .filter(|l| l.offered_at >= horizon)
            .map(|l| l.row.clone())
            .collect();
        for l in &in_progress {
            if matches!(l.stage, Stage::Queued | Stage::Ringing) {
                let key = (l.queue_id, l.media_type.clone());
                let row = queues
                    .entry(key.clone())
                    .or_insert_with(|| empty(key, &DayCounts::default()));
                row.waiting += 1;
                row.oldest_waiting_since_ms = Some(
                    row.oldest_waiting_since_ms
                        .map_or(l.since_ms, |o| o.min(l.since_ms)),
                );
            }
        }
        in_progress.sort_by(|a, b| {
            (a.since_ms, &a.interaction_guid).cmp(&(b.since_ms, &b.interaction_guid))
        });

        let handling = handled_by_agent(&in_progress);
        let agents = self
            .agents
            .iter()
            .filter(|a| a.since_ms >= horizon)
            .map(|a| {
                let (activity, activity_since_ms, interactions) = handling
                    .get(a.agent_id.as_str())
                    .map_or((None, None, 0), |&(stage, since, n)| {
                        (Some(stage), Some(since), n)
                    });
                AgentRow {
                    state_name: opts.state_names.name(a.state),
                    agent_id: a.agent_id.clone(),
                    state: a.state,
                    since_ms: a.since_ms,
                    activity,
                    activity_since_ms,
                    interactions,
                }
            })
            .collect();

        Ok(Wallboard {
            as_of_ms: opts.now_ms,
            day_start_ms: self.day.0,
            time_zone: opts.tz.iana_name().unwrap_or("UTC").to_owned(),
            records: self.records,
            queues: queues
                .into_values()
                .filter(QueueNow::counts_a_leg)
                .collect(),
            agents,
            in_progress,
        })
    }
}
