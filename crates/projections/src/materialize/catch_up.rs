//! Incremental catch-up: applies the records past `consumed`, recomputing
//! every interaction they touch from ALL its records (read through the
//! index), so the result equals a rebuild's.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Instant;

use ccvault_event::parse_event;
use ccvault_store::{ArchiveReader, Position};
use redb::Durability;

use super::project::{project_records, ArchivedEvent, Projected, Want};
use super::rebuild::{RebuildOptions, WORK_RECORDS};
use super::schema::{Anchor, SkippedDamage};
use super::{
    guarded, refused_write, Applied, AtPath, Progress, Projections, Result, PROJECTION_VERSION,
};
use crate::live::Live;

/// The legs a catch-up summarized again, for a caller that keeps state of
/// its own from them (the server's wallboard) instead of reading each leg a
/// second time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    /// `consumed` before the catch-up: `legs` are those named by the
    /// records from here to [`Applied::consumed`]. Empty after a rebuild
    /// ([`Applied::rebuilt`]), which names none.
    pub from: u64,
    /// Each leg with the stage it is in when in progress
    /// ([`crate::live_stage`] of the same events its summary was derived
    /// from), by GUID.
    pub legs: Vec<(String, Option<Live>)>,
}

impl Projections {
    /// Brings the projections up to the archive's visible end: a rebuild
    /// when the stored version is not this code's (or the archive is behind
    /// the store, i.e. it was replaced), else only the records past
    /// `consumed`, recomputing every interaction they touch from all its
    /// records.
    ///
    /// When the file system refuses the writes (a full disk, a quota, a
    /// read-only file system), the same catch-up runs again with the
    /// projections as last saved and every change kept in memory, so the
    /// reads of this process still see every record; [`Projections::unsaved`]
    /// then says why nothing was saved.
    pub fn catch_up(
        &mut self,
        reader: &mut ArchiveReader,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied> {
        self.catch_up_noting(reader, progress, None)
    }

    /// [`Projections::catch_up`], also saying in `touched` which legs it
    /// summarized again and their stage.
    pub fn catch_up_noting(
        &mut self,
        reader: &mut ArchiveReader,
        progress: &mut dyn FnMut(Progress),
        mut touched: Option<&mut Touched>,
    ) -> Result<Applied> {
        match self.catch_up_here(reader, progress, touched.as_deref_mut()) {
            Err(e) if self.unsaved.is_none() => match refused_write(&e) {
                Some(why) => {
                    let why = why.to_string();
                    // Release the file (and its lock) before reading it
                    // again as the base of the copy in memory.
                    self.db = None;
                    *self = Self::open_in_memory(&self.path, why)?;
                    self.catch_up_here(reader, progress, touched)
                }
                None => Err(e),
            },
            other => other,
        }
    }

    fn catch_up_here(
        &mut self,
        reader: &mut ArchiveReader,
        progress: &mut dyn FnMut(Progress),
        mut noted: Option<&mut Touched>,
    ) -> Result<Applied> {
        let path = self.path.clone();
        guarded(&path, || {
            self.writable()?;
            let state = self.state()?;
            let end = reader.visible_end();
            if let Some(t) = noted.as_deref_mut() {
                t.from = state.consumed;
                t.legs.clear();
            }
            if state.version != Some(PROJECTION_VERSION) {
                return self.rebuild(reader, RebuildOptions::default(), progress);
            }
            let anchor = self.scan_anchor()?;
            if Anchor::superseded(anchor.as_ref(), reader, state.consumed) {
                return self.rebuild(reader, RebuildOptions::default(), progress);
            }
            let started = Instant::now();
            if state.consumed == end {
                return Ok(Applied {
                    consumed: end,
                    elapsed: started.elapsed(),
                    ..Applied::default()
                });
            }
            let stored_pos = anchor.map(|a| a.pos);
            let records_seen = reader.records();
            // Start at the last consumed record when its segment is still there
            // (it always is: segments are never removed), else at the start; the
            // offset filter below makes either start correct.
            let start = stored_pos
                .filter(|p| state.consumed > 0 && records_seen.has_segment(p.segment))
                .unwrap_or(Position::START);

            let mut touched: BTreeSet<String> = BTreeSet::new();
            let mut new_recs: Vec<ArchivedEvent> = Vec::new();
            let mut last_pos = stored_pos;
            let mut records = 0u64;
            let mut projected = Projected::default();
            let mut skipped = SkippedDamage::default();
            let scanned = records_seen.scan_noting_damage(
                start,
                |pos, rec| {
                    if rec.offset < state.consumed {
                        return ControlFlow::Continue(());
                    }
                    last_pos = Some(pos);
                    records += 1;
                    if rec.quarantined {
                        return ControlFlow::Continue(());
                    }
                    new_recs.push(ArchivedEvent::of_ref(&rec));
                    if new_recs.len() >= WORK_RECORDS {
                        if let Err(e) = collect_new(&mut new_recs, &mut touched, &mut projected) {
                            return ControlFlow::Break(e);
                        }
                    }
                    ControlFlow::Continue(())
                },
                |damage| skipped.add(damage),
            )?;
            if let ControlFlow::Break(e) = scanned {
                return Err(e).at(&self.path);
            }
            collect_new(&mut new_recs, &mut touched, &mut projected).at(&self.path)?;
            // Recomputing an interaction reads its records through the
            // index, wherever they lie; a rebuild reads the log once. Past
            // one touched interaction per `REBUILD_PAST` records of the
            // log the rebuild is cheaper: a shuffled capture imported in
            // two halves touched most interactions, and the catch-up took
            // 25 to 80 times a rebuild's time (161 s against 7 s at 1.27M
            // events: an outside audit). Not in memory, where the file
            // cannot be written (the rebuild writes a new one).
            let many = touched.len() as u64;
            if self.unsaved.is_none() && many >= REBUILD_FROM && many * REBUILD_PAST > end {
                return self.rebuild(reader, RebuildOptions::default(), progress);
            }

            // Every touched interaction, from all its records (late events of
            // old interactions included).
            let want = Want {
                live: noted.is_some(),
                ..Want::SUMMARIES
            };
            let mut summaries = Vec::with_capacity(touched.len());
            for guid in &touched {
                let recs: Vec<ArchivedEvent> = reader
                    .interaction_records(guid)?
                    .iter()
                    .filter(|r| !r.quarantined)
                    .map(ArchivedEvent::of_record)
                    .collect();
                let p = project_records(&recs, want).at(&self.path)?;
                let before = summaries.len();
                summaries.extend(p.summaries.into_iter().filter(|row| row.guid == *guid));
                if let Some(t) = noted.as_deref_mut() {
                    let live = summaries.get(before..).and_then(|r| r.first()?.live);
                    t.legs.push((guid.clone(), live));
                }
            }
            let interactions = summaries.len() as u64;
            let agent_changes = projected.agents.len() as u64;
            let db = self.writable()?;
            let mut txn = db.begin_write().at(&self.path)?;
            let chunks = self.put_summaries(&txn, &summaries)?;
            self.put_report_chunks(&txn, &chunks)?;
            self.put_agents(&txn, &projected.agents, None)?;
            self.put_tenants(&txn, &[&projected.tenants], None)?;
            self.put_copies(&txn, &projected.copies)?;
            let max_time = state.own_max_time_ms.max(projected.own_max_ms);
            let anchor = last_pos.map(|p| Anchor::at(reader, p));
            let skipped = self.skipped_damage()?.and(skipped);
            self.put_meta(&txn, end, anchor, max_time, skipped)?;
            txn.set_durability(Durability::Immediate).at(&self.path)?;
            txn.commit().at(&self.path)?;
            Ok(Applied {
                rebuilt: false,
                records,
                interactions,
                agent_changes,
                deferred: 0,
                rescans: 0,
                elapsed: started.elapsed(),
                consumed: end,
            })
        })
    }
}

/// A catch-up rebuilds instead once it touches more than one interaction
/// per this many records of the log (see its use): recomputing one
/// interaction whose records are scattered took ~0.4 ms, a rebuild ~6 µs
/// a record of a shuffled log (docs/BENCHMARKS.md, section "At `ae3724f`,
/// 1M").
const REBUILD_PAST: u64 = 64;
/// ... and at least this many: below it a catch-up takes a second at most.
const REBUILD_FROM: u64 = 2048;

/// Parses a batch of new records for catch-up: the GUIDs they touch, their
/// status changes and largest t(e).
fn collect_new(
    recs: &mut Vec<ArchivedEvent>,
    touched: &mut BTreeSet<String>,
    projected: &mut Projected,
) -> Result<(), crate::codec::CodecError> {
    for r in recs.iter() {
        if let Ok(event) = parse_event(r.payload()) {
            if let Some(g) = event.body.interaction_guid.as_text() {
                if !touched.contains(g.as_ref()) {
                    touched.insert(g.into_owned());
                }
            }
        }
    }
    projected.absorb(project_records(recs, Want::AGENTS)?);
    recs.clear();
    Ok(())
}
