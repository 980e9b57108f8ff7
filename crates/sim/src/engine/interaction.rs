//! One leg's identity and its emission: a fresh GUID and the caller's
//! attributes when a leg is created, and, once all its events are decided,
//! the feed's per-event quirks, the ground truth and the hand-over to the
//! output.
//!
//! Guarantees: quirks are applied only where they leave canonical order as
//! intended, and draw from `qrng` only, so the world is the same whatever
//! the quirk switches; the truth is computed from the events as emitted.

use std::io::Write;
use std::rc::Rc;

use super::{Engine, Origin};
use crate::model::{Kind, LegAttrs, PlannedEvent, NO_AGENT, QUEUES};
use crate::output::Body;
use crate::truth;

const FIRST: [&str; 16] = [
    "Dana", "Alex", "Priya", "Tom", "Maria", "Chen", "Olu", "Sara", "Liam", "Noor", "Jonas",
    "Ines", "Mateo", "Yuki", "Fatima", "Ravi",
];
const LAST: [&str; 16] = [
    "Whitfield",
    "Okafor",
    "Novak",
    "Garcia",
    "Lindqvist",
    "Tanaka",
    "Murphy",
    "Rossi",
    "Haddad",
    "Kowalski",
    "Brennan",
    "Silva",
    "Nguyen",
    "Schmidt",
    "Moreau",
    "Patel",
];

impl<W: Write> Engine<'_, W> {
    /// A fresh GUID of a leg at `leg_index` of its contact on `media`.
    pub(super) fn guid(&mut self, media: &str, leg_index: u8) -> String {
        let mut guid = format!("int-{:x}-", self.now);
        self.rng.alnum(&mut guid, 25);
        guid.push_str(&format!("-{media}-{leg_index:02}-{}", self.cfg.tenant));
        guid
    }

    pub(super) fn new_ix(
        &mut self,
        queue: u8,
        outbound: bool,
        consult: bool,
        origin: Option<Origin>,
    ) -> LegAttrs {
        let def = &QUEUES[queue as usize];
        let leg_index = origin.as_ref().map_or(0, |o| o.leg_index);
        let guid = self.guid(def.media, leg_index);
        let caller = format!("{} {}", self.rng.pick(&FIRST), self.rng.pick(&LAST));
        let phone = 4_420_795_500_000 + self.rng.below(100_000);
        let instance = self.rng.below(2) as u8;
        let priority = *self.rng.pick(&[50i64, 50, 50, 100]);
        // How the leg's channel is written is the feed's business: its own stream.
        let resource_type = *self.qrng.pick(def.resource_types);
        let no_media = self.cfg.quirks.resource_type_only && self.qrng.chance(0.05);
        self.txn += 1;
        let (parent, contact) = match origin {
            Some(o) => (Some(o.parent), o.contact),
            None => (None, guid.clone()),
        };
        LegAttrs {
            guid,
            queue,
            outbound,
            consult,
            parent,
            contact,
            leg_index,
            resource_type,
            no_media,
            offer_sec: self.now.div_euclid(1000).into(),
            instance,
            caller,
            phone,
            txn: self.txn,
            priority,
            remaining: 0.into(),
            truth: None.into(),
        }
    }

    /// Applies the per-event quirks where they cannot change canonical order,
    /// computes the truth and hands the events to the output.
    pub(super) fn complete(
        &mut self,
        ix: Rc<LegAttrs>,
        created: i64,
        id: u64,
        mut evs: Vec<PlannedEvent>,
    ) {
        let q = &self.cfg.quirks;
        evs.sort_by_key(|e| e.r);
        let insert = self.qrng.chance(0.03);
        let pos = self.qrng.u64();
        if q.unknown_types && insert && evs.len() >= 2 {
            let i = 1 + (pos % (evs.len() as u64 - 1)) as usize;
            let prev = &evs[i - 1];
            let agent = evs[i..]
                .iter()
                .chain(evs[..i].iter().rev())
                .map(|e| e.agent)
                .find(|&a| a != NO_AGENT)
                .unwrap_or(NO_AGENT);
            let f = PlannedEvent::new(prev.r, prev.d, Kind::FutureThing, agent);
            evs.insert(i, f);
        }
        let n = evs.len();
        for i in 0..n {
            let drop_ts = self.qrng.chance(0.03);
            let empty = self.qrng.chance(0.04);
            let mixed = self.qrng.chance(0.15);
            let bits = self.qrng.u64() as u8;
            let weak = self.qrng.chance(0.02);
            if q.mixed_types && mixed {
                evs[i].mix = bits;
            }
            let ok = |evs: &[PlannedEvent]| {
                (i == 0 || evs[i - 1].surely_before(&evs[i]))
                    && (i + 1 >= n || evs[i].surely_before(&evs[i + 1]))
            };
            // Without a time of its own, an event of a kind that occurs twice could
            // be byte-equal to the other one, which would make them one event.
            let unique = || evs.iter().filter(|e| e.kind == evs[i].kind).count() == 1;
            if q.weak_event_ts && weak && unique() {
                let e = &mut evs[i];
                (e.has_ts, e.has_msg, e.weak) = (false, false, true);
                if !ok(&evs) {
                    let e = &mut evs[i];
                    (e.has_ts, e.has_msg, e.weak) = (true, true, false);
                }
            } else if q.missing_event_ts && drop_ts && evs[i].has_msg {
                evs[i].has_ts = false;
                if !ok(&evs) {
                    evs[i].has_ts = true;
                }
            } else if q.empty_msg_info && empty && evs[i].has_ts {
                evs[i].has_msg = false;
                if !ok(&evs) {
                    evs[i].has_msg = true;
                }
            }
        }
        let t = truth::compute(&ix, &evs, &self.out.agent_ids);
        *ix.truth.borrow_mut() = Some(t);
        ix.remaining.set(evs.len() as u32);
        for ev in evs {
            self.out.push(ev.r, Body::Leg(ix.clone(), ev));
        }
        self.open.remove(&(created, id));
    }
}
