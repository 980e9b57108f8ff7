//! Transfers and consultations: a leg decided during a call starts later as
//! a new interaction linked to its parent (a transfer queues again; a
//! consultation rings a colleague and never queues).
//!
//! Guarantees: every decided leg is counted when decided, so a run capped by
//! `interactions` creates exactly that many.

use std::io::Write;
use std::rc::Rc;

use super::{Engine, Leg, Origin, SimEv, SEC};
use crate::model::{
    Kind, PlannedEvent, INIT_AGENT, INIT_SYSTEM, NO_AGENT, REASON_NOANSWER, REASON_NORMAL,
};

impl<W: Write> Engine<'_, W> {
    pub(super) fn add_leg(&mut self, at: i64, leg: Leg) {
        if self.cap_reached {
            return;
        }
        // Counted now so that `interactions` stays exact.
        self.count_interaction();
        self.pending_legs += 1;
        let slot = match self.free_legs.pop() {
            Some(s) => {
                self.legs[s as usize] = Some(leg);
                s
            }
            None => {
                self.legs.push(Some(leg));
                (self.legs.len() - 1) as u32
            }
        };
        self.schedule(at, SimEv::Leg(slot));
    }

    pub(super) fn leg(&mut self, slot: u32) {
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(|l| l.take()) else {
            return;
        };
        self.free_legs.push(slot);
        self.pending_legs = self.pending_legs.saturating_sub(1);
        match leg.consult_by {
            Some(a) => self.consult(a, leg.queue, leg.origin),
            None => self.new_inbound(leg.queue, Some(leg.origin)),
        }
    }

    /// Agent `a` calls a colleague (the longest idle one) about the call in hand:
    /// a leg that never queues. Nobody idle: it rings out unanswered.
    fn consult(&mut self, a: u32, queue: u8, origin: Origin) {
        let now = self.now;
        let colleague = self
            .idle
            .iter()
            .flat_map(|set| set.iter())
            .filter(|&&(_, b)| b != a)
            .min()
            .map(|&(_, b)| b);
        let ix = Rc::new(self.new_ix(queue, false, true, Some(origin)));
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert((now, id));
        let [d0, d1, d2, d3, d4] = self.pub_delays();
        let assigned = now + self.rng.range(300, 1500);
        let accepted = assigned + self.rng.range(SEC, 5 * SEC);
        let talk = self.rng.range(20 * SEC, 150 * SEC);
        let no_answer = now + self.rng.range(15 * SEC, 30 * SEC);
        let gap = self.rng.range(5, 60);
        let mut evs = vec![PlannedEvent::new(now, d0, Kind::Created, NO_AGENT)];
        match colleague {
            Some(b) => {
                self.clear_idle(b);
                if let Some(ag) = self.agents.get_mut(b as usize) {
                    ag.busy = true;
                    ag.gen += 1;
                }
                let end = accepted + talk;
                evs.push(PlannedEvent::new(assigned, d1, Kind::Assigned, b));
                evs.push(PlannedEvent::new(accepted, d2, Kind::Accepted, b));
                evs.push(
                    PlannedEvent::new(end, d3, Kind::Deleted, NO_AGENT)
                        .with(i64::from(INIT_AGENT), i64::from(REASON_NORMAL)),
                );
                evs.push(PlannedEvent::new(end + gap, d4, Kind::Deassigned, b));
                self.schedule(end + gap, SimEv::AgentFree(b));
            }
            None => evs.push(
                PlannedEvent::new(no_answer, d3, Kind::Deleted, NO_AGENT)
                    .with(i64::from(INIT_SYSTEM), i64::from(REASON_NOANSWER)),
            ),
        }
        self.complete(ix, now, id, evs);
    }
}
