//! The outbound campaign: an idle sales agent dials during dialling hours;
//! some campaign calls are routed through a queue first.
//!
//! Guarantees: a dial scheduled for an agent who has since changed state
//! (its generation moved on) does nothing.

use std::io::Write;
use std::rc::Rc;

use super::{Engine, SimEv, HOUR, SEC};
use crate::model::{
    Kind, PlannedEvent, DISP_BUSY, DISP_NO_ANSWER, INIT_SYSTEM, NO_AGENT, Q_SALES, REASON_BUSY,
    REASON_NOANSWER,
};

/// The campaign dials 09:00-19:00 (simulated UTC).
const DIAL_FROM: i64 = 9 * HOUR;
const DIAL_TO: i64 = 19 * HOUR;

impl<W: Write> Engine<'_, W> {
    pub(super) fn dial(&mut self, a: u32, gen: u32) {
        let now = self.now;
        let Some(ag) = self.agents.get(a as usize) else {
            return;
        };
        if ag.gen != gen || ag.idle_key.is_none() || self.cap_reached {
            return;
        }
        let tod = now - self.day_start;
        if tod < DIAL_FROM {
            self.schedule(self.day_start + DIAL_FROM, SimEv::Dial(a, gen));
            return;
        }
        if tod >= DIAL_TO {
            return;
        }
        self.clear_idle(a);
        if let Some(ag) = self.agents.get_mut(a as usize) {
            ag.busy = true;
            ag.gen += 1;
        }
        self.count_interaction();
        let ix = Rc::new(self.new_ix(Q_SALES, true, false, None));
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert((now, id));
        // Some campaigns route through a queue: queued outbound calls, which never
        // count in inbound service level.
        let queued = self.rng.chance(0.3).then(|| now + self.rng.range(50, 250));
        let dq = self.pub_delay();
        let assigned = now + self.rng.range(300, 1500);
        let accepted = assigned + self.rng.range(SEC, 4 * SEC);
        let [d0, d1, d2, d3, d4] = self.pub_delays();
        let mut evs = vec![
            PlannedEvent::new(now, d0, Kind::Created, NO_AGENT),
            PlannedEvent::new(assigned, d1, Kind::Assigned, a),
            PlannedEvent::new(accepted, d2, Kind::Accepted, a),
        ];
        if let Some(q) = queued {
            evs.insert(1, PlannedEvent::new(q, dq, Kind::Queued, NO_AGENT));
        }
        let u = self.rng.f64();
        let free_at = if u < 0.55 {
            let ca = accepted + self.rng.range(6 * SEC, 25 * SEC);
            evs.push(PlannedEvent::new(ca, d3, Kind::CustomerAccepted, a));
            self.plan_connected(&mut evs, Q_SALES, a, ca, false).0
        } else {
            let (end, reason, disp) = if u < 0.85 {
                (
                    accepted + self.rng.range(25 * SEC, 35 * SEC),
                    REASON_NOANSWER,
                    DISP_NO_ANSWER,
                )
            } else {
                (
                    accepted + self.rng.range(3 * SEC, 8 * SEC),
                    REASON_BUSY,
                    DISP_BUSY,
                )
            };
            let gap = self.rng.range(5, 60);
            evs.push(
                PlannedEvent::new(end, d3, Kind::Deleted, NO_AGENT)
                    .with(i64::from(INIT_SYSTEM), (disp << 8) | i64::from(reason)),
            );
            evs.push(PlannedEvent::new(end + gap, d4, Kind::Deassigned, a));
            end + gap
        };
        self.complete(ix, now, id, evs);
        self.schedule(free_at, SimEv::AgentFree(a));
    }
}
