//! The legs of one customer contact as `show`, the demo and the server's
//! contact page present them (docs/METRICS.md §3): each leg's archived
//! records, read through the index, and its timeline, in order of `offeredAt`
//! with the asked leg marked; and the one JSON document of `show --format
//! json` and `/api/contact/{guid}`.
//!
//! Guarantees: the asked leg is always there (when it has events), even when
//! the projections cannot be read, so `show` never loses what it showed
//! before; every other leg comes from the projections' `children` table (no
//! scan), and each leg's timeline is built from its own records exactly as a
//! one-leg `show` builds it, with `contactId`/`legIndex` as the projections
//! resolve them.

use std::borrow::Cow;
use std::io::Write;

use anyhow::Result;
use ccvault_event::{event_time, ndjson_line, parse_event, CanonicalKey};
use ccvault_html::LegView;
use ccvault_projections::{
    record_input, timeline, EventInput, Projections, Summary, Timeline, TimelineEvent,
};
use ccvault_store::{ArchiveReader, Record};
use serde::Serialize;
use serde_json::value::RawValue;

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

/// One event of a leg's timeline with where it came from (archive offset,
/// source and line, envelope `messageId`/`publishTime`, ingest time) and
/// the archived payload itself, so a dispute can be settled from this
/// output. Serialized straight from these structs, so the keys keep the
/// order docs/METRICS.md gives (a `serde_json::Value` sorts them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvenancedEvent<'a> {
    #[serde(flatten)]
    shown: &'a TimelineEvent,
    offset: u64,
    source: &'a str,
    line: u64,
    message_id: Option<&'a str>,
    publish_time: Option<&'a str>,
    ingest_time: i64,
    event: Payload<'a>,
}

/// An archived payload in JSON: its bytes as received when they are JSON,
/// else its text.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Json(&'a RawValue),
    Text(Cow<'a, str>),
}

impl<'a> Payload<'a> {
    fn of(bytes: &'a [u8]) -> Payload<'a> {
        match serde_json::from_slice::<&RawValue>(bytes) {
            Ok(raw) => Payload::Json(raw),
            Err(_) => Payload::Text(String::from_utf8_lossy(bytes)),
        }
    }
}

/// One leg: its timeline with provenance, `asked` in the contact's list.
#[derive(Serialize)]
struct LegJson<'a> {
    #[serde(rename = "interactionGUID")]
    interaction_guid: &'a Option<String>,
    events: Vec<ProvenancedEvent<'a>>,
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    asked: Option<bool>,
}

impl<'a> LegJson<'a> {
    fn of(tl: &'a Timeline, records: &'a [Record], asked: Option<bool>) -> LegJson<'a> {
        let text = |s: &'a str| (!s.is_empty()).then_some(s);
        let events = tl
            .events
            .iter()
            .filter_map(|shown| {
                let rec = records.get(shown.input_index)?;
                Some(ProvenancedEvent {
                    shown,
                    offset: rec.offset,
                    source: &rec.source,
                    line: rec.line,
                    message_id: text(&rec.message_id),
                    publish_time: text(&rec.publish_time),
                    ingest_time: rec.ingest_ms,
                    event: Payload::of(&rec.payload),
                })
            })
            .collect();
        LegJson {
            interaction_guid: &tl.interaction_guid,
            events,
            summary: &tl.summary,
            asked,
        }
    }
}

/// `show GUID --format json` and `/api/contact/{guid}` (docs/METRICS.md §3):
/// the asked leg's timeline with provenance, then `contactId` and every leg
/// of the contact.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactJson<'a> {
    #[serde(flatten)]
    asked: LegJson<'a>,
    contact_id: &'a Option<String>,
    legs: Vec<LegJson<'a>>,
}

/// The document of `shown`; `None` when it holds no asked leg.
pub fn contact_json<'a>(shown: &'a [ShownLeg<'a>]) -> Option<ContactJson<'a>> {
    let asked = shown.iter().find(|l| l.asked)?;
    Some(ContactJson {
        asked: LegJson::of(&asked.timeline, asked.records, None),
        contact_id: &asked.timeline.summary.contact_id,
        legs: shown
            .iter()
            .map(|leg| LegJson::of(&leg.timeline, leg.records, Some(leg.asked)))
            .collect(),
    })
}

/// The payloads of `records` that are events, in canonical order
/// (docs/METRICS.md §2), each followed by a newline: byte-exact for `show
/// --raw` (a payload archived from a pretty-printed capture keeps its line
/// breaks), or each on one line (`one_line`, [`ndjson_line`]: the same
/// JSON value) for the contact page's NDJSON download.
pub fn write_raw(records: &[Record], out: &mut impl Write, one_line: bool) -> std::io::Result<()> {
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
        if one_line {
            let (line, end) = ndjson_line(&r.payload);
            out.write_all(&line)?;
            out.write_all(end)?;
        } else {
            out.write_all(&r.payload)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
