//! What the commands read: one summary, the summaries in `offeredAt`
//! order, the aggregate report and agent state time.

use std::collections::BTreeSet;

use ccvault_event::{parse_event, EventTime, TimeSource};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};

use super::schema::{offered_at_of, AGENT_STATUS, BY_OFFERED, CHILDREN, OFFERED};
use super::{guarded, AtPath, Projections, Result};
use crate::agents::{AgentStateTime, AgentStates, AgentWindow};
use crate::codec;
use crate::contact::resolve_contact;
use crate::report::{Report, ReportOptions, ReportRow};
use crate::summary::{LegKind, Outcome, Summary};
use ccvault_store::unguarded;

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
    }
}

/// The two tables a summary is read through.
struct SummaryTables {
    offered: ReadOnlyTable<(u64, i64), u32>,
    by_offered: ReadOnlyTable<(i64, &'static str), &'static [u8]>,
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
        let Some(v) = t.by_offered.get((at, guid)).at(&self.path)? else {
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

    /// Every leg of the contact `guid` belongs to (docs/METRICS.md §3), with
    /// `contactId` and `legIndex` resolved, in `legIndex` order (then
    /// `offeredAt`, GUID). A `guid` without events is taken as a contact
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
            legs.sort_by(|a, b| {
                (a.leg_index, a.offered_at, &a.interaction_guid).cmp(&(
                    b.leg_index,
                    b.offered_at,
                    &b.interaction_guid,
                ))
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
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let Some(t) = self.summary_tables(&txn)? else {
                return Ok(());
            };
            let lo = filter.from.unwrap_or(i64::MIN);
            let range = match filter.to {
                Some(to) => t.by_offered.range((lo, "")..(to, "")),
                None => t.by_offered.range((lo, "")..),
            }
            .at(&self.path)?;
            for item in range {
                let (k, v) = item.at(&self.path)?;
                let (at, guid) = k.value();
                let mut s = codec::decode_summary(guid, at, v.value()).at(&self.path)?;
                self.place_in_contact(&mut s, &t)?;
                if filter.matches(&s) && !unguarded(|| f(s))? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The aggregate report over the stored summaries (docs/METRICS.md §4).
    pub fn report(&self, opts: ReportOptions) -> Result<Vec<ReportRow>> {
        let filter = InteractionFilter {
            from: opts.from,
            to: opts.to,
            ..InteractionFilter::default()
        };
        let mut report = Report::new(opts);
        self.for_each_interaction(&filter, |s| {
            report.add(&s);
            Ok(true)
        })?;
        Ok(report.rows())
    }

    /// Agent state time (docs/METRICS.md §5) over `[from, to)`; without `to`, the
    /// last state runs to the largest timed t(e) in the archive.
    pub fn agents(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<AgentStateTime>> {
        guarded(&self.path, || {
            let state = self.state()?;
            let txn = self.read_txn()?;
            let t = match txn.open_table(AGENT_STATUS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e).at(&self.path),
            };
            let mut acc = AgentStates::new();
            for item in t.iter().at(&self.path)? {
                let (k, v) = item.at(&self.path)?;
                let (_, time_ms, _) = k.value();
                // The source says whether the change is timed (agent state
                // time counts timed changes only).
                let (rank, raw) = v.value();
                // A rank this code does not know cannot be trusted to be timed.
                let source = TimeSource::of_rank(rank).unwrap_or(TimeSource::Imported);
                if let Ok(event) = parse_event(raw) {
                    acc.add_event(
                        &event,
                        EventTime {
                            ms: time_ms,
                            source,
                        },
                        raw,
                    );
                }
            }
            Ok(acc.finish(&AgentWindow {
                from,
                to,
                archive_max_time_ms: state.max_time_ms.unwrap_or(i64::MIN),
            }))
        })
    }
}
