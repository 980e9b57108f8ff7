//! The legs of one customer contact as `show`, the demo and the server's
//! contact page present them (docs/METRICS.md §3): each leg's archived
//! records, read through the index, and its timeline, in `legIndex` order
//! with the asked leg marked; and the one JSON document of `show --format
//! json` and `/api/contact/{guid}`.
//!
//! Guarantees: the asked leg is always there (when it has events), even when
//! the projections cannot be read, so `show` never loses what it showed
//! before; every other leg comes from the projections' `children` table (no
//! scan), and each leg's timeline is built from its own records exactly as a
//! one-leg `show` builds it, with `contactId`/`legIndex` as the projections
//! resolve them.

use std::io::Write;

use anyhow::Result;
use ccvault_event::{event_time, parse_event, CanonicalKey};
use ccvault_html::LegView;
use ccvault_projections::{record_input, timeline, EventInput, Projections, Summary, Timeline};
use ccvault_store::{ArchiveReader, Record};
use serde_json::Value;

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

/// The timeline as JSON, each event with where it came from — archive
/// offset, source and line, envelope `messageId`/`publishTime` — and the
/// archived payload itself, so a dispute can be settled from this output.
fn with_provenance(tl: &Timeline, records: &[Record]) -> Result<Value> {
    let mut value = serde_json::to_value(tl)?;
    if let Some(events) = value.get_mut("events").and_then(|e| e.as_array_mut()) {
        for (json, event) in events.iter_mut().zip(&tl.events) {
            let (Some(obj), Some(rec)) = (json.as_object_mut(), records.get(event.input_index))
            else {
                continue;
            };
            let payload: Value = serde_json::from_slice(&rec.payload)
                .unwrap_or_else(|_| String::from_utf8_lossy(&rec.payload).into());
            let text = |s: &str| (!s.is_empty()).then(|| Value::from(s));
            obj.insert("offset".into(), rec.offset.into());
            obj.insert("source".into(), rec.source.clone().into());
            obj.insert("line".into(), rec.line.into());
            obj.insert("messageId".into(), text(&rec.message_id).into());
            obj.insert("publishTime".into(), text(&rec.publish_time).into());
            obj.insert("ingestTime".into(), rec.ingest_ms.into());
            obj.insert("event".into(), payload);
        }
    }
    Ok(value)
}

/// `show GUID --format json` and `/api/contact/{guid}` (docs/METRICS.md §3):
/// the asked leg's timeline with provenance, plus `contactId` and every leg
/// of the contact. `None` when `shown` holds no asked leg.
pub fn contact_json(shown: &[ShownLeg<'_>]) -> Result<Option<Value>> {
    let Some(asked) = shown.iter().find(|l| l.asked) else {
        return Ok(None);
    };
    let mut value = with_provenance(&asked.timeline, asked.records)?;
    let mut legs = Vec::with_capacity(shown.len());
    for leg in shown {
        let mut v = with_provenance(&leg.timeline, leg.records)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("asked".into(), leg.asked.into());
        }
        legs.push(v);
    }
    if let Some(obj) = value.as_object_mut() {
        let contact_id = asked.timeline.summary.contact_id.clone();
        obj.insert("contactId".into(), contact_id.into());
        obj.insert("legs".into(), legs.into());
    }
    Ok(Some(value))
}

/// The payloads of `records` that are events, byte-exact, one per line, in
/// canonical order (docs/METRICS.md §2): `show --raw` and the contact page's
/// NDJSON download.
pub fn write_raw(records: &[Record], out: &mut impl Write) -> std::io::Result<()> {
    let events: Vec<_> = records
        .iter()
        .filter_map(|r| parse_event(&r.payload).ok().map(|ev| (ev, r)))
        .collect();
    let mut keyed: Vec<(CanonicalKey<'_>, &Record)> = events
        .iter()
        .map(|(ev, r)| {
            let t = event_time(ev, record_input(r).arrival());
            (CanonicalKey::new(ev, t.ms, &r.payload), *r)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, r) in keyed {
        out.write_all(&r.payload)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
