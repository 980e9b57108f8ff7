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

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use ccvault_projections::report::{GroupBy, GroupKey, Interval, Report, ReportOptions, Sla};
use ccvault_projections::{
    could_be_in_progress, live_stage, record_input, InteractionFilter, LegKind, Projections, Stage,
    StateNames,
};
use ccvault_store::ArchiveReader;
use jiff::tz::TimeZone;
use jiff::Timestamp;
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

/// Local midnight of the day of `now_ms` in `tz`, and the next one.
fn today(tz: &TimeZone, now_ms: i64) -> Result<(i64, i64)> {
    let now = Timestamp::from_millisecond(now_ms)
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
/// to it.
pub fn compute(
    p: &Projections,
    reader: &mut ArchiveReader,
    opts: &WallboardOptions,
) -> Result<Wallboard> {
    let (day_start, day_end) = today(&opts.tz, opts.now_ms)?;
    let mut queues: BTreeMap<(Option<i64>, Option<String>), QueueNow> = BTreeMap::new();
    let empty = |queue_id: Option<i64>, media_type: Option<String>| QueueNow {
        queue_id,
        media_type,
        waiting: 0,
        oldest_waiting_since_ms: None,
        offered: 0,
        answered: 0,
        abandoned: 0,
        short_abandoned: 0,
        answered_in_sla: 0,
        service_level: None,
        abandon_rate: None,
        asa_ms: None,
        outbound: 0,
        outbound_connected: 0,
    };

    // One pass over the stored summaries serves both today's counts and
    // the legs that may be in progress (the last 24 hours): in summary key
    // order, as `Projections::report` adds them, so the rows are the same.
    let horizon = opts.now_ms.saturating_sub(LIVE_HORIZON_MS);
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
        from: Some(day_start),
        to: Some(day_end),
    });
    let mut candidates = Vec::new();
    let scan = InteractionFilter {
        from: Some(day_start.min(horizon)),
        ..InteractionFilter::default()
    };
    p.for_each_interaction(&scan, |s| {
        report.add(&s);
        if s.offered_at >= horizon && could_be_in_progress(&s) {
            candidates.push(s);
        }
        Ok(true)
    })?;
    for r in report.rows() {
        let GroupKey {
            queue_id,
            media_type,
            ..
        } = r.group;
        let (q, m) = (queue_id.flatten(), media_type.flatten());
        let row = queues.entry((q, m.clone())).or_insert_with(|| empty(q, m));
        row.offered += r.offered;
        row.answered += r.answered;
        row.abandoned += r.abandoned;
        row.short_abandoned += r.short_abandoned;
        row.answered_in_sla += r.answered_in_sla;
        row.service_level = r.service_level;
        row.abandon_rate = r.abandon_rate;
        row.asa_ms = r.asa_ms;
        row.outbound += r.outbound;
        row.outbound_connected += r.outbound_connected;
    }

    let mut in_progress = Vec::new();
    for s in candidates {
        let Some(guid) = s.interaction_guid.clone() else {
            continue;
        };
        let records: Vec<_> = reader
            .interaction_records(&guid)?
            .into_iter()
            .filter(|r| !r.quarantined)
            .collect();
        let inputs: Vec<_> = records.iter().map(record_input).collect();
        let Some(live) = live_stage(&inputs) else {
            continue;
        };
        if matches!(live.stage, Stage::Queued | Stage::Ringing) {
            let row = queues
                .entry((s.queue_id, s.media_type.clone()))
                .or_insert_with(|| empty(s.queue_id, s.media_type.clone()));
            row.waiting += 1;
            row.oldest_waiting_since_ms = Some(
                row.oldest_waiting_since_ms
                    .map_or(live.since_ms, |o| o.min(live.since_ms)),
            );
        }
        in_progress.push(InProgress {
            interaction_guid: guid,
            contact_id: s.contact_id,
            stage: live.stage,
            since_ms: live.since_ms,
            kind: s.kind,
            queue_id: s.queue_id,
            media_type: s.media_type,
            agent_id: s.agent_id,
        });
    }
    in_progress
        .sort_by(|a, b| (a.since_ms, &a.interaction_guid).cmp(&(b.since_ms, &b.interaction_guid)));

    let handling = handled_by_agent(&in_progress);
    let agents = p
        .agents_now()?
        .into_iter()
        .filter(|a| a.since_ms >= horizon)
        .map(|a| {
            let (activity, activity_since_ms, interactions) = handling
                .get(a.agent_id.as_str())
                .map_or((None, None, 0), |&(stage, since, n)| {
                    (Some(stage), Some(since), n)
                });
            AgentRow {
                state_name: opts.state_names.name(a.state),
                agent_id: a.agent_id,
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
        day_start_ms: day_start,
        time_zone: opts.tz.iana_name().unwrap_or("UTC").to_owned(),
        records: reader.visible_end(),
        queues: queues.into_values().collect(),
        agents,
        in_progress,
    })
}
