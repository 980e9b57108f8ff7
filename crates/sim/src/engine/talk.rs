//! A connected call to the end of wrap-up: talk, holds (with recording
//! pauses), a transfer or consultation, the hang-up, the disposition and
//! after-call work.
//!
//! Guarantees: a hold lies inside talk (docs/METRICS.md §3) except one left
//! open on purpose, which the metrics close at the end of talk.

use std::io::Write;

use super::{Engine, SEC};
use crate::model::{
    Kind, PlannedEvent, INIT_AGENT, INIT_CUSTOMER, NO_AGENT, QUEUES, Q_BILLING, Q_SALES, Q_SUPPORT,
    REASON_NORMAL,
};

const INBOUND_DISPOSITIONS: [i64; 5] = [1000, 1000, 1001, 1002, 1010];

impl<W: Write> Engine<'_, W> {
    /// Plans everything from connect to the end of wrap-up; returns when the agent
    /// is free and, for a transfer or a consultation, when the next leg starts, in
    /// which queue, and whether it is a consultation.
    pub(super) fn plan_connected(
        &mut self,
        evs: &mut Vec<PlannedEvent>,
        queue: u8,
        a: u32,
        connected: i64,
        allow_transfer: bool,
    ) -> (i64, Option<(i64, u8, bool)>) {
        let def = &QUEUES[queue as usize];
        let chat = def.media != "phone";
        let mut talk = (self.rng.erlang(2, def.talk_mean_s * 1000.0) as i64).max(20 * SEC);
        let mut transfer = None;
        let mut initiator = if self.rng.chance(0.7) {
            INIT_CUSTOMER
        } else {
            INIT_AGENT
        };
        if allow_transfer && self.rng.chance(0.06) {
            let x = connected + talk * self.rng.range(30, 80) / 100;
            let y = x + self.rng.range(5 * SEC, 25 * SEC);
            let target = if queue == Q_BILLING {
                Q_SUPPORT
            } else {
                Q_BILLING
            };
            let d = self.pub_delay();
            evs.push(PlannedEvent::new(x, d, Kind::TransferRequest, a).with(0, i64::from(target)));
            talk = y - connected;
            transfer = Some((y + self.rng.range(100, 900), target, false));
            initiator = INIT_AGENT;
        } else if allow_transfer && self.rng.chance(0.04) {
            let x = connected + talk * self.rng.range(20, 60) / 100;
            transfer = Some((x, queue, true));
        }
        let end = connected + talk;
        if !chat && talk > 40 * SEC && self.rng.chance(def.hold_p) {
            let n = if self.rng.chance(0.3) { 2 } else { 1 };
            let seg = (talk - 15 * SEC) / n;
            for k in 0..n {
                let seg_start = connected + 5 * SEC + k * seg;
                let hs = seg_start + self.rng.range(0, seg / 3);
                let open = k == n - 1 && transfer.is_none_or(|t| t.2) && self.rng.chance(0.06);
                let dur = 5 * SEC + self.rng.exp(35_000.0) as i64;
                let he = (hs + dur).min(seg_start + seg - 2 * SEC);
                let [d1, d2, d3, d4] = self.pub_delays();
                let rec1 = self.rng.range(40, 400);
                let rec2 = self.rng.range(40, 400);
                if open {
                    // Still on hold when the agent drops the call: the hold runs to the
                    // end of talk (docs/METRICS.md §3: closed at talkEndAt).
                    evs.push(PlannedEvent::new(hs, d1, Kind::LineHold, a).with(1, 0));
                    evs.push(PlannedEvent::new(hs + rec1, d2, Kind::Recording, a).with(1, 0));
                    initiator = INIT_AGENT;
                    continue;
                }
                if he - hs < 3 * SEC {
                    continue;
                }
                evs.push(PlannedEvent::new(hs, d1, Kind::LineHold, a).with(1, 0));
                evs.push(PlannedEvent::new(hs + rec1, d2, Kind::Recording, a).with(1, 0));
                evs.push(PlannedEvent::new(he, d3, Kind::LineHold, a).with(0, 0));
                evs.push(PlannedEvent::new(he + rec2, d4, Kind::Recording, a).with(0, 0));
            }
        }
        let outbound = queue == Q_SALES;
        let disp = if outbound {
            *self.rng.pick(&[-3i64, -3, -4, -4, -4, -5])
        } else {
            *self.rng.pick(&INBOUND_DISPOSITIONS)
        };
        let disp_on_deleted = self.rng.chance(0.5);
        let wraps = self.rng.chance(0.95);
        let wrap = 5 * SEC + self.rng.erlang(2, 25_000.0) as i64;
        let [d1, d2, d3, d4] = self.pub_delays();
        let pp_gap = self.rng.range(5, 40);
        let da_gap = self.rng.range(5, 60);
        let del_disp = if disp_on_deleted { disp } else { 0 };
        evs.push(PlannedEvent::new(end, d1, Kind::Deleted, NO_AGENT).with(
            i64::from(initiator),
            (del_disp << 8) | i64::from(REASON_NORMAL),
        ));
        let free_at = if wraps {
            evs.push(PlannedEvent::new(end + pp_gap, d2, Kind::PostProcess, a));
            evs.push(PlannedEvent::new(end + wrap, d3, Kind::EndPostProcess, a).with(0, disp));
            evs.push(PlannedEvent::new(
                end + wrap + da_gap,
                d4,
                Kind::Deassigned,
                a,
            ));
            end + wrap + da_gap
        } else {
            evs.push(PlannedEvent::new(end + da_gap, d4, Kind::Deassigned, a));
            end + da_gap
        };
        (free_at, transfer)
    }
}
