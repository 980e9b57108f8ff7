//! What the commands read: one summary, the summaries in `offeredAt`
//! order, the aggregate report and agent state time.

use std::collections::BTreeSet;
use std::sync::mpsc;

use ccvault_event::{parse_event, CanonicalKey, EventTime, TimeSource};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};

use super::runs::{scratch_file, Runs};
use super::schema::{
    guid_key, io_error, offered_at_of, report_chunk_of, rows_in_order, tenant_hash, AGENT_STATUS,
    BY_OFFERED, CHILDREN, OFFERED, REPORT_CHUNKS, REPORT_CHUNK_MS, TENANTS, TENANT_AGENTS,
    TENANT_GUIDS, TENANT_LEGS, TENANT_OTHER,
};
use super::{guarded, AtPath, ProjectionError, Projections, Result};
use crate::agents::{AgentStateTime, AgentStates, AgentWindow};
use crate::codec;
use crate::contact::resolve_contact;
use crate::live::AgentNow;
use crate::report::{Report, ReportOptions, ReportRow};
use crate::summary::{LegKind, Outcome, Summary};
use crate::tenant::event_tenant;
use ccvault_store::{unguarded, ArchiveReader, Hit, Record, StoreError};

/// `interactions` filters: all present ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionFilter {
    /// `offeredAt` in `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub queue_id: Option<i64>,
    pub agent_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// `mediaType` (lower case).
    pub media_type: Option<String>,
    pub kind: Option<LegKind>,
    /// Every leg of one contact.
    pub contact_id: Option<String>,
    /// The leg's tenant (`crate::tenant`): read through the tenant index,
    /// so other tenants' legs are not read at all.
    pub tenant: Option<String>,
}

impl InteractionFilter {
    pub fn matches(&self, s: &Summary) -> bool {
        self.from.is_none_or(|f| s.offered_at >= f)
            && self.to.is_none_or(|t| s.offered_at < t)
            && self.queue_id.is_none_or(|q| s.queue_id == Some(q))
            && self
                .agent_id
                .as_deref()
                .is_none_or(|a| s.agent_id.as_deref() == Some(a))
            && self.outcome.is_none_or(|o| s.outcome == o)
            && self
                .media_type
                .as_deref()
                .is_none_or(|m| s.media_type.as_deref() == Some(m))
            && self.kind.is_none_or(|k| s.kind == k)
            && self
                .contact_id
                .as_deref()
                .is_none_or(|c| s.contact_id.as_deref() == Some(c))
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| s.tenant.as_deref() == Some(t))
    }
}

/// The two tables a summary is read through.
struct SummaryTables {
    offered: ReadOnlyTable<(u32, i64), u32>,
    by_offered: ReadOnlyTable<(i64, &'static [u8]), &'static [u8]>,
}

/// Why an interaction the log gave no event of shows nothing, when its
/// records are unreadable ([`NoEvents::Unreadable`]), for `show` and `serve`.
pub const UNREADABLE: &str = "it was archived, but none of its records can be read now: they are in damaged places of the log (`ccvault verify` lists them)";

/// What the projections say of an interaction the log gave no event of
/// ([`Projections::no_events_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEvents {
    /// Nothing: an interaction never archived.
    Unknown,
    /// Its leg is summarized: its records were read once and cannot be now
    /// (damaged places of the log).
    Unreadable,
    /// A contact whose first leg was never archived: the legs that were.
    OtherLegs(Vec<String>),
}

impl Projections {
    /// Opens the summary tables; `None` before anything was stored.
    fn summary_tables(&self, txn: &ReadTransaction) -> Result<Option<SummaryTables>> {
        let offered = match txn.open_table(OFFERED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e).at(&self.path),
        };
        let by_offered = txn.open_table(BY_OFFERED).at(&self.path)?;
        Ok(Some(SummaryTables {
            offered,
            by_offered,
        }))
    }

    /// One stored summary as stored (`contactId`/`legIndex` not resolved).
    fn stored_summary(&self, t: &SummaryTables, guid: &str) -> Result<Option<Summary>> {
        let Some(at) = offered_at_of(&t.offered, &t.by_offered, guid).at(&self.path)? else {
            return Ok(None);
        };
        let Some(v) = t
            .by_offered
            .get((at, guid_key(guid, at).as_slice()))
            .at(&self.path)?
        else {
            return Ok(None);
        };
        Ok(Some(
            codec::decode_summary(guid, at, v.value()).at(&self.path)?,
        ))
    }

    /// The summary of one interaction, if it has events.
    pub fn summary(&self, guid: &str) -> Result<Option<Summary>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = self.summary_tables(&txn)? else {
                return Ok(None);
            };
            let Some(mut s) = self.stored_summary(&t, guid)? else {
                return Ok(None);
            };
            self.place_in_contact(&mut s, &t)?;
            Ok(Some(s))
        })
    }

    /// What the projections say of `guid`, of which the log gave no event:
    /// its own leg summarized (its records were readable once, and are in
    /// damaged places now), or the legs of the contact it names (its first
    /// leg never archived), of `tenant`'s when given.
    pub fn no_events_of(&self, guid: &str, tenant: Option<&str>) -> Result<NoEvents> {
        let legs = self.contact_legs(guid)?;
        if legs
            .iter()
            .any(|s| s.interaction_guid.as_deref() == Some(guid))
        {
            return Ok(NoEvents::Unreadable);
        }
        let legs: Vec<String> = legs
            .into_iter()
            .filter(|s| tenant.is_none_or(|t| s.tenant.as_deref() == Some(t)))
            .filter_map(|s| s.interaction_guid)
            .collect();
        Ok(if legs.is_empty() {
            NoEvents::Unknown
        } else {
            NoEvents::OtherLegs(legs)
        })
    }

    /// Every leg of the contact `guid` belongs to (docs/METRICS.md §3), with
    /// `contactId` and `legIndex` resolved, in order of `offeredAt`, then
    /// GUID. A `guid` without events is taken as a contact
    /// whose first leg was never archived: its legs are those that name it
    /// as their parent, and the legs below them (often none). The walk goes
    /// up to the contact through the legs' parents, then down through
    /// `children`: a few lookups per leg, whatever the archive's size.
    pub fn contact_legs(&self, guid: &str) -> Result<Vec<Summary>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = self.summary_tables(&txn)? else {
                return Ok(Vec::new());
            };
            let contact = match self.stored_summary(&t, guid)? {
                Some(mut asked) => {
                    self.place_in_contact(&mut asked, &t)?;
                    match asked.contact_id {
                        Some(c) => c,
                        None => return Ok(vec![asked]),
                    }
                }
                None => guid.to_owned(),
            };
            let children = txn.open_table(CHILDREN).at(&self.path)?;
            // The contact is its first leg (when archived) and everything below
            // it: every leg whose walk up passes through it ends there, since a
            // leg has one parent. The visited set ends a cycle's walk down.
            let mut seen: BTreeSet<String> = BTreeSet::from([contact.clone()]);
            let mut todo = vec![contact.clone()];
            let mut legs = Vec::new();
            while let Some(g) = todo.pop() {
                if let Some(mut s) = self.stored_summary(&t, &g)? {
                    self.place_in_contact(&mut s, &t)?;
                    legs.push(s);
                }
                for item in children.range((g.as_str(), "")..).at(&self.path)? {
                    let (k, _) = item.at(&self.path)?;
                    let (parent, child) = k.value();
                    if parent != g {
                        break;
                    }
                    if seen.insert(child.to_owned()) {
                        todo.push(child.to_owned());
                    }
                }
            }
            // A leg placed elsewhere would mean `children` disagrees with the
            // summaries' parents; the summaries are the truth.
            legs.retain(|s| s.contact_id.as_deref() == Some(contact.as_str()));
            // docs/METRICS.md §3: by `offeredAt`, then GUID (a leg's
            // `legIndex` can run against its time: a parent archived with a
            // later queue entry than its child's).
            legs.sort_by(|a, b| {
                (a.offered_at, &a.interaction_guid).cmp(&(b.offered_at, &b.interaction_guid))
            });
            Ok(legs)
        })
    }

    /// Fills `contactId` and `legIndex` (docs/METRICS.md §3) by walking the
    /// leg's parents through the stored summaries. They are resolved when
    /// read, never stored, so a parent archived late changes its children's
    /// answers at once, and a rebuild and any sequence of catch-ups (which
    /// store the same rows) give the same answers. Only legs with a parent
    /// walk; the others are their own contact at index 0.
    fn place_in_contact(&self, s: &mut Summary, t: &SummaryTables) -> Result<()> {
        let Some(own) = s.interaction_guid.clone() else {
            return Ok(());
        };
        s.contact_id = Some(own.clone());
        s.leg_index = 0;
        let Some(first_parent) = s.parent_guid.clone() else {
            return Ok(());
        };
        let mut failure = None;
        let mut parent_of = |guid: &str| -> Option<String> {
            if guid == own {
                return Some(first_parent.clone());
            }
            match self.stored_summary(t, guid) {
                Ok(parent) => parent.and_then(|p| p.parent_guid),
                Err(e) => {
                    failure.get_or_insert(e);
                    None
                }
            }
        };
        let archived = |guid: &str| {
            offered_at_of(&t.offered, &t.by_offered, guid)
                .ok()
                .flatten()
                .is_some()
        };
        let place = resolve_contact(&own, &mut parent_of, archived);
        if let Some(e) = failure {
            return Err(e);
        }
        s.contact_id = Some(place.contact_id);
        s.leg_index = u64::from(place.leg_index);
        Ok(())
    }

    /// Visits the summaries matching `filter`, sorted by `offeredAt` then
    /// GUID; `f` returns `false` to stop.
    pub fn for_each_interaction(
        &self,
        filter: &InteractionFilter,
        mut f: impl FnMut(Summary) -> Result<bool>,
    ) -> Result<()> {
        if let Some(contact) = filter.contact_id.as_deref() {
            // One contact's legs, found through their links (a few lookups
            // a leg) rather than by reading every summary of the archive.
            let mut legs = self.contact_legs(contact)?;
            legs.sort_by(|a, b| {
                (a.offered_at, &a.interaction_guid).cmp(&(b.offered_at, &b.interaction_guid))
            });
            for s in legs {
                if filter.matches(&s) && !f(s)? {
                    break;
                }
            }
            return Ok(());
        }
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = self.summary_tables(&txn)? else {
                return Ok(());
            };
            let lo = filter.from.unwrap_or(i64::MIN);
            let mut visit = |at: i64, guid: &str, bytes: &[u8]| -> Result<bool> {
                let mut s = codec::decode_summary(guid, at, bytes).at(&self.path)?;
                self.place_in_contact(&mut s, &t)?;
                Ok(!filter.matches(&s) || unguarded(|| f(s))?)
            };
            let empty: &[u8] = &[];
            if let Some(tenant) = filter.tenant.as_deref() {
                // One tenant's legs: its range of `tenant_legs`, then the
                // rows at each `offeredAt` it names, in GUID order
                // (`filter` drops the other tenants' there).
                let Some(legs) = open_optional(&txn, TENANT_LEGS).at(&self.path)? else {
                    return Ok(());
                };
                let th = tenant_hash(tenant);
                let range = match filter.to {
                    Some(to) => legs.range((th, lo)..(th, to)),
                    None => legs.range((th, lo)..=(th, i64::MAX)),
                }
                .at(&self.path)?;
                for item in range {
                    let (k, _) = item.at(&self.path)?;
                    let (_, at) = k.value();
                    let mut more = true;
                    let rows = t.by_offered.range((at, empty)..).at(&self.path)?;
                    rows_in_order(&self.path, rows, |row_at, guid, bytes| {
                        if row_at != at {
                            return Ok(false);
                        }
                        more = visit(at, guid, bytes)?;
                        Ok(more)
                    })?;
                    if !more {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            let range = match filter.to {
                Some(to) => t.by_offered.range((lo, empty)..(to, empty)),
                None => t.by_offered.range((lo, empty)..),
            }
            .at(&self.path)?;
            rows_in_order(&self.path, range, &mut visit)?;
            Ok(())
        })
    }

    /// The aggregate report over the stored summaries (docs/METRICS.md §4),
    /// sorted by interval then group ([`Projections::report_each`] gathered).
    pub fn report(&self, opts: ReportOptions) -> Result<Vec<ReportRow>> {
        self.tenant_report(opts, None)
    }

    /// The rows of [`Projections::report`] in order, a batch at a time as
    /// they become final: `f` gets each batch (never empty) and returns
    /// `false` to stop. Read from `report_chunks` a span of
    /// `REPORT_SPAN_HOURS` hours at a time, the spans folded by turns on
    /// two worker threads and merged here in order; the groups held are
    /// those of the spans in flight and of the intervals still open
    /// ([`Report::take_complete`]), so memory follows the legs of a few
    /// days, not the archive's (all rows of a report by queue and agent of
    /// a 50M-event archive took 1.7 GiB).
    pub fn report_each(
        &self,
        opts: ReportOptions,
        f: impl FnMut(Vec<ReportRow>) -> Result<bool>,
    ) -> Result<()> {
        self.report_in_spans(opts, REPORT_SPAN_HOURS, f)
    }

    /// [`Projections::report_each`] with spans of `span_hours` hours
    /// (tests make them short).
    pub(crate) fn report_in_spans(
        &self,
        opts: ReportOptions,
        span_hours: i64,
        mut f: impl FnMut(Vec<ReportRow>) -> Result<bool>,
    ) -> Result<()> {
        let span_hours = span_hours.max(1);
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(chunks) = open_optional(&txn, REPORT_CHUNKS).at(&self.path)? else {
                return Ok(());
            };
            let lo = report_chunk_of(opts.from.unwrap_or(i64::MIN));
            let hi = opts.to.map_or(i64::MAX, report_chunk_of);
            // The span holding the first chunk at or after `hour`, as its
            // first and last hours: the spans are aligned on multiples of
            // `span_hours`, and one read skips the hours without chunks, so
            // both workers find the same spans.
            let span_from = |hour: i64| -> Result<Option<(i64, i64)>> {
                let Some(item) = chunks.range(hour..=hi).at(&self.path)?.next() else {
                    return Ok(None);
                };
                let (k, _) = item.at(&self.path)?;
                let first = k.value();
                let last = first
                    .div_euclid(span_hours)
                    .saturating_mul(span_hours)
                    .saturating_add(span_hours - 1)
                    .min(hi);
                Ok(Some((first, last)))
            };
            let fold = |from: i64, to: i64| -> Result<Report> {
                let mut report = Report::new(opts.clone());
                for item in chunks.range(from..=to).at(&self.path)? {
                    let (_, v) = item.at(&self.path)?;
                    codec::for_each_report_leg(v.value(), |leg| {
                        report.add_leg(&leg);
                    })
                    .at(&self.path)?;
                }
                Ok(report)
            };
            // Worker `turn` folds the spans of even (0) or odd (1) rank.
            let work = |turn: usize, tx: mpsc::SyncSender<Folded>| {
                let run = || -> Result<()> {
                    let mut hour = lo;
                    let mut rank = 0usize;
                    while let Some((first, last)) = span_from(hour)? {
                        if rank % 2 == turn {
                            let report = fold(first, last)?;
                            if tx.send(Folded::Span { last, report }).is_err() {
                                // The reader stopped.
                                return Ok(());
                            }
                        }
                        rank += 1;
                        if last >= hi {
                            break;
                        }
                        hour = last + 1;
                    }
                    Ok(())
                };
                let end = match guarded(&self.path, run) {
                    Ok(()) => Folded::Done,
                    Err(e) => Folded::Failed(e),
                };
                let _ = tx.send(end);
            };
            std::thread::scope(|scope| {
                let mut rxs = Vec::with_capacity(2);
                let mut workers = Vec::with_capacity(2);
                for turn in 0..2 {
                    // One span folded ahead of the one being merged.
                    let (tx, rx) = mpsc::sync_channel(1);
                    rxs.push(rx);
                    workers.push(scope.spawn(move || work(turn, tx)));
                }
                let merged = (|| -> Result<()> {
                    let mut held = Report::new(opts.clone());
                    let mut rank = 0usize;
                    loop {
                        let Ok(folded) = rxs[rank % 2].recv() else {
                            return Err(ProjectionError::Worker("a report worker panicked".into()));
                        };
                        let (last, report) = match folded {
                            Folded::Span { last, report } => (last, report),
                            // Spans are dealt by turns: the worker whose
                            // turn it is has no more, so nobody has.
                            Folded::Done => break,
                            Folded::Failed(e) => return Err(e),
                        };
                        rank += 1;
                        held.merge(report);
                        // Every leg before the next span's first hour is in.
                        let next = last.saturating_add(1).saturating_mul(REPORT_CHUNK_MS);
                        let rows = held.take_complete(next);
                        if !rows.is_empty() && !unguarded(|| f(rows))? {
                            return Ok(());
                        }
                    }
                    let rows = held.take_complete(i64::MAX);
                    if !rows.is_empty() {
                        unguarded(|| f(rows))?;
                    }
                    Ok(())
                })();
                // A worker waiting to hand a span over sees the channel
                // closed and stops.
                drop(rxs);
                for w in workers {
                    if w.join().is_err() && merged.is_ok() {
                        return Err(ProjectionError::Worker("a report worker panicked".into()));
                    }
                }
                merged
            })
        })
    }

    /// The report from the stored summaries themselves, each decoded whole
    /// and placed in its contact: what `report_chunks` must agree with,
    /// and `--tenant`'s path (one tenant's legs are found through
    /// `tenant_legs`). Rows are handed to `f` as in
    /// [`Projections::report_each`]: the legs come in `offeredAt` order, so
    /// the intervals before each hour's first leg are final then.
    pub fn report_from_summaries(
        &self,
        opts: ReportOptions,
        tenant: Option<&str>,
        mut f: impl FnMut(Vec<ReportRow>) -> Result<bool>,
    ) -> Result<()> {
        let filter = InteractionFilter {
            from: opts.from,
            to: opts.to,
            tenant: tenant.map(str::to_owned),
            ..InteractionFilter::default()
        };
        let mut report = Report::new(opts);
        let mut stopped = false;
        let mut next_hour = i64::MIN;
        self.for_each_interaction(&filter, |s| {
            if s.offered_at >= next_hour {
                let rows = report.take_complete(s.offered_at);
                if !rows.is_empty() && !f(rows)? {
                    stopped = true;
                    return Ok(false);
                }
                next_hour = (report_chunk_of(s.offered_at) + 1).saturating_mul(REPORT_CHUNK_MS);
            }
            report.add(&s);
            Ok(true)
        })?;
        let rows = report.take_complete(i64::MAX);
        if !stopped && !rows.is_empty() {
            f(rows)?;
        }
        Ok(())
    }

    /// [`Projections::report_each`] over one tenant's legs only, when
    /// `tenant` is given.
    pub fn tenant_report_each(
        &self,
        opts: ReportOptions,
        tenant: Option<&str>,
        f: impl FnMut(Vec<ReportRow>) -> Result<bool>,
    ) -> Result<()> {
        match tenant {
            None => self.report_each(opts, f),
            Some(_) => self.report_from_summaries(opts, tenant, f),
        }
    }

    /// [`Projections::report`] over one tenant's legs only, when `tenant`
    /// is given.
    pub fn tenant_report(
        &self,
        opts: ReportOptions,
        tenant: Option<&str>,
    ) -> Result<Vec<ReportRow>> {
        let mut all = Vec::new();
        self.tenant_report_each(opts, tenant, |rows| {
            all.extend(rows);
            Ok(true)
        })?;
        Ok(all)
    }

    /// Each agent's latest timed status change that names a `newState`
    /// (the largest t(e), then offset): a few lookups per agent, never a
    /// scan of the agents' history. A change whose time is only `eventTS`
    /// or its arrival sets no state (docs/METRICS.md §5), here as in
    /// [`Projections::tenant_agents_time`]: an agent with no timed change is not
    /// listed.
    pub fn agents_now(&self) -> Result<Vec<AgentNow>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, AGENT_STATUS).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            // The smallest agent id above the last one seen: its own id and "\0".
            let mut above: Option<String> = None;
            let mut raw = Vec::new();
            loop {
                let first = match &above {
                    None => t.iter().at(&self.path)?.next(),
                    Some(a) => t
                        .range((a.as_str(), i64::MIN, 0u64)..)
                        .at(&self.path)?
                        .next(),
                };
                let Some(first) = first else { break };
                let (k, _) = first.at(&self.path)?;
                let agent = k.value().0.to_owned();
                let history = t
                    .range((agent.as_str(), i64::MIN, 0u64)..=(agent.as_str(), i64::MAX, u64::MAX))
                    .at(&self.path)?;
                // The last timed change in canonical order (docs/METRICS.md
                // §2, §5), as `agents` has it: of the changes at the latest
                // t(e), the last by `sequenceId`, rank and bytes. The
                // table's third key is the offset, arrival order: taking
                // the last row made the state depend on which of two
                // changes in one second was archived last (outside audit).
                let mut latest: Option<LatestChange> = None;
                for item in history.rev() {
                    let (k, v) = item.at(&self.path)?;
                    let (_, time_ms, _) = k.value();
                    if latest.as_ref().is_some_and(|l| time_ms < l.time_ms) {
                        break;
                    }
                    let (rank, stored) = v.value();
                    if !TimeSource::of_rank(rank).is_some_and(TimeSource::is_timed) {
                        continue;
                    }
                    codec::decode_status_payload(&agent, time_ms, stored, &mut raw)
                        .at(&self.path)?;
                    let Ok(event) = parse_event(&raw) else {
                        continue;
                    };
                    let Some(state) = event.body.new_state.as_i64() else {
                        continue;
                    };
                    let key = CanonicalKey::new(&event, time_ms, &raw);
                    if latest.as_ref().is_none_or(|l| key > l.key()) {
                        latest = Some(LatestChange {
                            time_ms,
                            sequence_id: key.sequence_id,
                            rank: key.rank,
                            raw: raw.clone(),
                            state,
                        });
                    }
                }
                if let Some(l) = latest {
                    out.push(AgentNow {
                        agent_id: agent.clone(),
                        state: l.state,
                        since_ms: l.time_ms,
                    });
                }
                above = Some(format!("{agent}\0"));
            }
            Ok(out)
        })
    }

    /// Agent state time (docs/METRICS.md §5) over `[from, to)`; without `to`, the
    /// last state runs to the largest timed t(e) in the archive.
    pub fn agents(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<AgentStateTime>> {
        self.tenant_agents_time(from, to, None)
    }

    /// [`Projections::agents`] for the agents of one tenant only, when
    /// `tenant` is given ([`Projections::agents_of_tenant`]; each reads
    /// its own status changes, so the rows equal the unfiltered ones).
    pub fn tenant_agents_time(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        tenant: Option<&str>,
    ) -> Result<Vec<AgentStateTime>> {
        let agents = match tenant {
            Some(t) => Some(self.agents_of_tenant(t)?),
            None => None,
        };
        guarded(&self.path, || {
            let state = self.state()?;
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, AGENT_STATUS).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let window = AgentWindow {
                from,
                to,
                archive_max_time_ms: state.max_time_ms.unwrap_or(i64::MIN),
            };
            let mut out = Vec::new();
            match &agents {
                None => {
                    state_time_by_agent(t.iter().at(&self.path)?, &window, &self.path, &mut out)?
                }
                Some(agents) => {
                    for a in agents {
                        let a = a.as_str();
                        let range = t
                            .range((a, i64::MIN, 0)..=(a, i64::MAX, u64::MAX))
                            .at(&self.path)?;
                        state_time_by_agent(range, &window, &self.path, &mut out)?;
                    }
                }
            }
            Ok(out)
        })
    }

    /// The agents of `tenant`: those named (`agentId`) by an event of the
    /// tenant, sorted.
    pub fn agents_of_tenant(&self, tenant: &str) -> Result<Vec<String>> {
        self.tenant_keys(TENANT_AGENTS, tenant)
    }

    /// The GUID hashes (`guid_hash`) of the interactions named by an
    /// event of `tenant`, sorted; another tenant's on a tenant hash
    /// collision.
    fn guid_hashes_of_tenant(&self, tenant: &str) -> Result<Vec<u64>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, TENANT_GUIDS).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let th = tenant_hash(tenant);
            let mut out = Vec::new();
            for item in t.range((th, 0)..=(th, u64::MAX)).at(&self.path)? {
                let (k, _) = item.at(&self.path)?;
                out.push(k.value().1);
            }
            Ok(out)
        })
    }

    /// `(offset, payload hash)` of the events of `tenant` that name neither
    /// an interaction nor an agent, in offset order.
    fn others_of_tenant(&self, tenant: &str) -> Result<Vec<(u64, u64)>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, TENANT_OTHER).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.range((tenant, 0)..=(tenant, u64::MAX)).at(&self.path)? {
                let (k, v) = item.at(&self.path)?;
                out.push((k.value().1, v.value()));
            }
            Ok(out)
        })
    }

    /// Visits the archived events of `tenant` in offset order (those
    /// below the projections' `consumed`): each event whose own tenant
    /// ([`crate::tenant::event_tenant`]) is `tenant`, and each event without
    /// a tenant of its own that names an agent of the tenant
    /// ([`Projections::agents_of_tenant`]), as `agents --tenant` counts that
    /// agent's status changes. They are found through the archive's index
    /// (by the tenant's interactions, agents, and the payload hash of the
    /// rest), so other tenants' records are not read, but for GUID or agent
    /// hash collisions, which are read and dropped. Quarantined records are
    /// not events and are never visited.
    pub fn tenant_records(
        &self,
        reader: &mut ArchiveReader,
        tenant: &str,
        mut f: impl FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        self.tenant_records_and_agent_changes(reader, tenant, |rec, is_event| {
            if is_event {
                f(rec)
            } else {
                Ok(())
            }
        })
    }

    /// [`Projections::tenant_records`] (`f(record, true)`), and besides them
    /// (`f(record, false)`) the other records that name one of the tenant's
    /// agents: events of another tenant, among them status changes that
    /// the tenant's agent state time counts as `agents --tenant` does (a
    /// change received on another tenant's topic is still the agent's).
    pub fn tenant_records_and_agent_changes(
        &self,
        reader: &mut ArchiveReader,
        tenant: &str,
        mut f: impl FnMut(Record, bool) -> Result<()>,
    ) -> Result<()> {
        let consumed = self.state()?.consumed;
        let agents: BTreeSet<String> = self.agents_of_tenant(tenant)?.into_iter().collect();
        let mut hits: Vec<Hit> = Vec::new();
        for h in self.guid_hashes_of_tenant(tenant)? {
            hits.extend(reader.index().guid_hash_hits(h).map_err(StoreError::from)?);
        }
        for a in &agents {
            hits.extend(reader.index().agent_hits(a).map_err(StoreError::from)?);
        }
        for (offset, hash) in self.others_of_tenant(tenant)? {
            let candidates = reader
                .index()
                .duplicate_candidates(hash, None)
                .map_err(StoreError::from)?;
            hits.extend(candidates.into_iter().filter(|h| h.offset == offset));
        }
        hits.retain(|h| h.offset < consumed);
        hits.sort_unstable_by_key(|h| h.offset);
        hits.dedup_by_key(|h| h.offset);
        for chunk in hits.chunks(TENANT_READ_CHUNK) {
            for rec in reader.read_hits(chunk)? {
                if rec.quarantined {
                    continue;
                }
                match whose(&rec, tenant, &agents) {
                    Whose::Tenant => f(rec, true)?,
                    Whose::AgentOfTenant => f(rec, false)?,
                    Whose::Other => {}
                }
            }
        }
        Ok(())
    }

    /// The second parts of `table`'s keys whose tenant is `tenant`.
    fn tenant_keys(
        &self,
        table: redb::TableDefinition<'static, (&'static str, &'static str), ()>,
        tenant: &str,
    ) -> Result<Vec<String>> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, table).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.range((tenant, "")..).at(&self.path)? {
                let (k, _) = item.at(&self.path)?;
                let (t_key, second) = k.value();
                if t_key != tenant {
                    break;
                }
                out.push(second.to_owned());
            }
            Ok(out)
        })
    }

    /// Per tenant (`crate::tenant`; `None` for events and legs without
    /// one): its events, legs, contacts and the time range of its timed
    /// events, in tenant order; only `only` when given. Counting contacts
    /// reads each of the tenant's legs, as `interactions --tenant` does.
    pub fn tenant_stats(&self, only: Option<&str>) -> Result<Vec<TenantStats>> {
        let counts = guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = open_optional(&txn, TENANTS).at(&self.path)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.iter().at(&self.path)? {
                let (k, v) = item.at(&self.path)?;
                let tenant = k.value();
                if only.is_some_and(|o| o != tenant) {
                    continue;
                }
                let (events, legs, min, max) = v.value();
                out.push(TenantStats {
                    tenant: (!tenant.is_empty()).then(|| tenant.to_owned()),
                    events,
                    legs,
                    contacts: 0,
                    min_time_ms: (min <= max).then_some(min),
                    max_time_ms: (min <= max).then_some(max),
                });
            }
            Ok(out)
        })?;
        // Distinct contacts counted by sorting their ids, in runs on
        // unlinked scratch files beside the store (in memory when none can
        // be made there, as for a reader without write access): a set of
        // them held ~130 bytes a contact, 782 MB for the 50M-event
        // archive's 5.8M.
        let probe = self.path.with_extension("redb.contacts-probe");
        let scratch = scratch_file(&probe).is_ok().then_some(self.path.as_path());
        let mut out = Vec::with_capacity(counts.len());
        for mut c in counts {
            if let Some(tenant) = &c.tenant {
                let contacts: Runs<String> = Runs::new(scratch, "contacts");
                // Tests count through spilled and merged runs.
                #[cfg(test)]
                let contacts = contacts.with_limits(512, 4);
                let mut contacts = contacts;
                let filter = InteractionFilter {
                    tenant: Some(tenant.clone()),
                    ..InteractionFilter::default()
                };
                self.for_each_interaction(&filter, |s| {
                    if let Some(contact) = s.contact_id {
                        contacts.push(contact, 1).map_err(io_error(&self.path))?;
                    }
                    Ok(true)
                })?;
                let mut distinct = 0u64;
                contacts.merge(
                    |_, _| {
                        distinct += 1;
                        Ok(())
                    },
                    io_error(&self.path),
                )?;
                c.contacts = distinct;
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// Appends to `out` the state time of the agents of `range` of
/// `agent_status`, one agent at a time: the table's keys begin with the
/// agent, so memory holds one agent's changes, not the archive's (all of
/// them took 525 MiB for a 50M-event archive's ~1M changes).
fn state_time_by_agent(
    range: redb::Range<'_, (&'static str, i64, u64), (u8, &'static [u8])>,
    window: &AgentWindow,
    path: &std::path::Path,
    out: &mut Vec<AgentStateTime>,
) -> Result<()> {
    let mut acc = AgentStates::new();
    let mut current: Option<String> = None;
    let mut raw = Vec::new();
    for item in range {
        let (k, v) = item.at(path)?;
        let (agent, time_ms, _) = k.value();
        if current.as_deref() != Some(agent) {
            out.extend(std::mem::take(&mut acc).finish(window));
            current = Some(agent.to_owned());
        }
        // The source says whether the change is timed (agent state time
        // counts timed changes only).
        let (rank, stored) = v.value();
        codec::decode_status_payload(agent, time_ms, stored, &mut raw).at(path)?;
        // A rank this code does not know cannot be trusted to be timed.
        let source = TimeSource::of_rank(rank).unwrap_or(TimeSource::Imported);
        if let Ok(event) = parse_event(&raw) {
            acc.add_event(
                &event,
                EventTime {
                    ms: time_ms,
                    source,
                },
                &raw,
            );
        }
    }
    out.extend(acc.finish(window));
    Ok(())
}

/// Hours of `report_chunks` a report worker folds at a time: a day, a few
/// thousand legs of the simulator's day, enough that handing spans over
/// costs nothing beside folding them.
pub(crate) const REPORT_SPAN_HOURS: i64 = 24;

/// What a report worker hands over, in the order of its spans.
enum Folded {
    /// The partial report of the span whose last hour is `last`.
    Span {
        last: i64,
        report: Report,
    },
    /// No span is left for this worker.
    Done,
    Failed(ProjectionError),
}

/// Records read from the log at a time by [`Projections::tenant_records`].
const TENANT_READ_CHUNK: usize = 4096;

/// Whether `rec` is an event of `tenant` as [`Projections::tenant_records`]
/// says (its own tenant is `tenant`, or it has none and names one of
/// `agents`, the tenant's), another tenant's that names one of `agents`,
/// or neither.
fn whose(rec: &Record, tenant: &str, agents: &BTreeSet<String>) -> Whose {
    let Ok(event) = parse_event(&rec.payload) else {
        return Whose::Other;
    };
    let agent_of_tenant = || {
        event
            .body
            .agent_id
            .as_text()
            .is_some_and(|a| agents.contains(a.as_ref()))
    };
    match event_tenant(rec.source_kind, &rec.source, &event) {
        Some(t) if t == tenant => Whose::Tenant,
        Some(_) if agent_of_tenant() => Whose::AgentOfTenant,
        Some(_) => Whose::Other,
        None if agent_of_tenant() => Whose::Tenant,
        None => Whose::Other,
    }
}

/// Whose a record is, as [`Projections::tenant_records_and_agent_changes`]
/// tells it.
enum Whose {
    /// An event of the tenant.
    Tenant,
    /// Another tenant's event that names one of the tenant's agents.
    AgentOfTenant,
    Other,
}

/// One tenant's line of `ccvault stats --by-tenant`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStats {
    /// `None`: the events and legs without a tenant.
    pub tenant: Option<String>,
    pub events: u64,
    pub legs: u64,
    /// Distinct `contactId`s of the tenant's legs (0 for `None`).
    pub contacts: u64,
    /// The smallest and largest timed t(e) of the tenant's events.
    pub min_time_ms: Option<i64>,
    pub max_time_ms: Option<i64>,
}

/// `table`, or `None` when nothing has been written to it yet (a store
/// written before it existed is rebuilt, so only an empty store lacks it).
pub(super) fn open_optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: redb::TableDefinition<'static, K, V>,
) -> std::result::Result<Option<ReadOnlyTable<K, V>>, redb::TableError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An agent's latest timed status change met so far, with what canonical
/// order compares ([`Projections::agents_now`]).
struct LatestChange {
    time_ms: i64,
    sequence_id: Option<i64>,
    rank: u8,
    raw: Vec<u8>,
    state: i64,
}

impl LatestChange {
    fn key(&self) -> CanonicalKey<'_> {
        CanonicalKey {
            time_ms: self.time_ms,
            sequence_id: self.sequence_id,
            rank: self.rank,
            raw: &self.raw,
        }
    }
}
