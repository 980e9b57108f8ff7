//! The legs of one customer contact as `show` and the demo present them
//! (docs/METRICS.md §3): each leg's archived records, read through the index,
//! and its timeline, in `legIndex` order with the asked leg marked.
//!
//! Guarantees: the asked leg is always there (when it has events), even when
//! the projections cannot be read, so `show` never loses what it showed
//! before; every other leg comes from the projections' `children` table (no
//! scan), and each leg's timeline is built from its own records exactly as a
//! one-leg `show` builds it, with `contactId`/`legIndex` as the projections
//! resolve them.

use anyhow::Result;
use ccvault_html::LegView;
use ccvault_projections::{record_input, timeline, EventInput, Projections, Summary, Timeline};
use ccvault_store::{ArchiveReader, Record};

/// One leg's archived records (quarantined ones left out).
pub struct LegRecords {
    pub records: Vec<Record>,
    /// The projections' summary of the leg, with its place in the contact.
    pub placed: Option<Summary>,
    pub asked: bool,
}

/// Reads the records of every leg of `guid`'s contact: the legs `store`
/// knows, else `guid` alone. Empty when `guid` has no events.
pub fn read_legs(
    reader: &mut ArchiveReader,
    store: Option<&Projections>,
    guid: &str,
) -> Result<Vec<LegRecords>> {
    let mut legs = match store {
        Some(p) => p.contact_legs(guid)?,
        None => Vec::new(),
    };
    // A store behind the archive (held by another process) may not know the
    // asked leg yet: it is shown alone.
    if !legs
        .iter()
        .any(|s| s.interaction_guid.as_deref() == Some(guid))
    {
        legs.clear();
    }
    let mut out = Vec::with_capacity(legs.len().max(1));
    let mut read = |leg_guid: &str, placed: Option<Summary>| -> Result<()> {
        let records: Vec<Record> = reader
            .interaction_records(leg_guid)?
            .into_iter()
            .filter(|r| !r.quarantined)
            .collect();
        out.push(LegRecords {
            records,
            placed,
            asked: leg_guid == guid,
        });
        Ok(())
    };
    if legs.is_empty() {
        read(guid, None)?;
    }
    for s in legs {
        if let Some(g) = s.interaction_guid.clone() {
            read(&g, Some(s))?;
        }
    }
    if out.iter().any(|l| l.asked && l.records.is_empty()) {
        return Ok(Vec::new());
    }
    Ok(out)
}

/// One leg ready to print: its records, their projection inputs and the
/// timeline built from them.
pub struct ShownLeg<'r> {
    pub records: &'r [Record],
    pub inputs: Vec<EventInput<'r>>,
    pub timeline: Timeline,
    pub asked: bool,
}

impl ShownLeg<'_> {
    pub fn view(&self) -> LegView<'_> {
        LegView {
            timeline: &self.timeline,
            inputs: &self.inputs,
            asked: self.asked,
        }
    }
}

/// The timelines of `legs` (a leg whose records hold no event is left out).
pub fn timelines(legs: &[LegRecords]) -> Vec<ShownLeg<'_>> {
    legs.iter()
        .filter_map(|leg| {
            let inputs: Vec<EventInput<'_>> = leg.records.iter().map(record_input).collect();
            let mut timeline = timeline::build(&inputs)?;
            if let Some(placed) = &leg.placed {
                timeline.summary.contact_id = placed.contact_id.clone();
                timeline.summary.leg_index = placed.leg_index;
            }
            Some(ShownLeg {
                records: &leg.records,
                inputs,
                timeline,
                asked: leg.asked,
            })
        })
        .collect()
}
