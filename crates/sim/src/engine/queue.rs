//! An inbound call: IVR, queue, offers to agents that ring, get rejected or
//! accepted, and the caller's patience.
//!
//! Guarantees: a waiting call is offered to the longest-idle agent with the
//! skill who has not rejected it; a caller leaves at the deadline drawn when
//! the call queued (a ring in progress ends at it as a hang-up).

use std::io::Write;
use std::rc::Rc;

use super::agents::ST_NOT_READY;
use super::{Call, Engine, Leg, Origin, RingOut, SimEv, SEC};
use crate::model::{Kind, PlannedEvent, INIT_CUSTOMER, NO_AGENT, QUEUES, Q_CHAT, REASON_NORMAL};

impl<W: Write> Engine<'_, W> {
    /// A contact that reaches the center: through the IVR to a queue, or hanging
    /// up in the IVR. `origin` is set for a transferred leg.
    pub(super) fn new_inbound(&mut self, q: u8, origin: Option<Origin>) {
        let now = self.now;
        let is_leg = origin.is_some();
        let ix = Rc::new(self.new_ix(q, false, false, origin));
        let id = self.next_id;
        self.next_id += 1;
        let d = self.pub_delay();
        let call = Call {
            id,
            ix,
            created: now,
            evs: vec![PlannedEvent::new(now, d, Kind::Created, NO_AGENT)],
            queue: q,
            queued: 0,
            deadline: 0,
            rejected_by: Vec::new(),
            ring: None,
            waiting: false,
        };
        let slot = match self.free_calls.pop() {
            Some(s) => {
                self.calls[s as usize] = Some(call);
                s
            }
            None => {
                self.calls.push(Some(call));
                (self.calls.len() - 1) as u32
            }
        };
        self.open.insert((now, id));
        // Only calls pass an IVR.
        let phone = QUEUES[q as usize].media == "phone";
        if !is_leg && self.rng.chance(0.03) && phone {
            let t = now + self.rng.range(4 * SEC, 40 * SEC);
            self.schedule(t, SimEv::IvrHangup(slot, id));
        } else {
            let ivr = if is_leg {
                self.rng.range(500, 2 * SEC)
            } else {
                self.rng.range(2 * SEC, 25 * SEC)
            };
            self.schedule(now + ivr, SimEv::Queue(slot, id));
        }
    }

    fn call_mut(&mut self, slot: u32, id: u64) -> Option<&mut Call> {
        self.calls
            .get_mut(slot as usize)
            .and_then(|c| c.as_mut())
            .filter(|c| c.id == id)
    }

    fn take_call(&mut self, slot: u32) -> Option<Call> {
        let c = self.calls.get_mut(slot as usize)?.take();
        if c.is_some() {
            self.free_calls.push(slot);
        }
        c
    }

    pub(super) fn enqueue(&mut self, slot: u32, id: u64) {
        let now = self.now;
        let d = self.pub_delay();
        let impatient = self.rng.chance(0.08);
        let short = 800 + self.rng.exp(2500.0) as i64;
        let Some(q) = self.call_mut(slot, id).map(|c| c.queue) else {
            return;
        };
        let def = &QUEUES[q as usize];
        let long = 5 * SEC + self.rng.exp(def.patience_mean_s * 1000.0) as i64;
        let patience = if impatient { short } else { long }.min(def.patience_max_s * SEC);
        let Some(c) = self.call_mut(slot, id) else {
            return;
        };
        c.evs
            .push(PlannedEvent::new(now, d, Kind::Queued, NO_AGENT));
        c.ix.offer_sec.set(now.div_euclid(1000));
        c.queued = now;
        c.deadline = now + patience;
        c.waiting = true;
        self.waiting[q as usize].insert((now, slot));
        self.schedule(now + patience, SimEv::Patience(slot, id));
        self.dispatch_call(slot);
    }

    pub(super) fn ivr_hangup(&mut self, slot: u32, id: u64) {
        if self.call_mut(slot, id).is_none() {
            return;
        }
        let d = self.pub_delay();
        if let Some(mut c) = self.take_call(slot) {
            let b = i64::from(REASON_NORMAL);
            c.evs.push(
                PlannedEvent::new(self.now, d, Kind::Deleted, NO_AGENT)
                    .with(i64::from(INIT_CUSTOMER), b),
            );
            self.complete(c.ix, c.created, c.id, c.evs);
        }
    }

    pub(super) fn patience(&mut self, slot: u32, id: u64) {
        let Some(c) = self.call_mut(slot, id) else {
            return;
        };
        if !c.waiting {
            // Ringing: the ring's own outcome already accounts for the deadline.
            return;
        }
        self.abandon(slot);
    }

    /// Customer hangs up while waiting in queue.
    fn abandon(&mut self, slot: u32) {
        let now = self.now;
        let d1 = self.pub_delay();
        let d2 = self.pub_delay();
        let gap = self.rng.range(3, 400);
        let Some(mut c) = self.take_call(slot) else {
            return;
        };
        if c.waiting {
            self.waiting[c.queue as usize].remove(&(c.queued, slot));
        }
        c.evs
            .push(PlannedEvent::new(now, d1, Kind::Unqueued, NO_AGENT));
        c.evs.push(
            PlannedEvent::new(now + gap, d2, Kind::Deleted, NO_AGENT)
                .with(i64::from(INIT_CUSTOMER), i64::from(REASON_NORMAL)),
        );
        self.complete(c.ix, c.created, c.id, c.evs);
    }

    /// Offers a waiting call to the longest-idle agent who has not rejected it.
    fn dispatch_call(&mut self, slot: u32) {
        let Some(c) = self.calls.get(slot as usize).and_then(|c| c.as_ref()) else {
            return;
        };
        if !c.waiting {
            return;
        }
        let qi = c.queue as usize;
        let found = self.idle[qi]
            .iter()
            .find(|(_, a)| !c.rejected_by.contains(a))
            .map(|&(_, a)| a);
        if let Some(a) = found {
            self.offer(a, slot);
        }
    }

    pub(super) fn offer(&mut self, a: u32, slot: u32) {
        let now = self.now;
        self.clear_idle(a);
        if let Some(ag) = self.agents.get_mut(a as usize) {
            ag.busy = true;
            ag.gen += 1;
        }
        let d = self.pub_delay();
        let u = self.rng.f64();
        let chat_ring = self.rng.range(SEC, 4 * SEC);
        let phone_ring = self.rng.range(2 * SEC, 9 * SEC);
        let rna_ring = 20 * SEC + self.rng.range(0, SEC);
        let reject_ring = self.rng.range(1500, 6 * SEC);
        let Some(c) = self.calls.get_mut(slot as usize).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.waiting {
            self.waiting[c.queue as usize].remove(&(c.queued, slot));
            c.waiting = false;
        }
        c.evs.push(PlannedEvent::new(now, d, Kind::Assigned, a));
        let (mut out, ring) = if u < 0.90 {
            let r = if c.queue == Q_CHAT {
                chat_ring
            } else {
                phone_ring
            };
            (RingOut::Accept, r)
        } else if u < 0.96 {
            (RingOut::Rna, rna_ring)
        } else {
            (RingOut::Reject, reject_ring)
        };
        let mut at = now + ring;
        if c.deadline < at {
            out = RingOut::Hangup;
            at = c.deadline.max(now + 200);
        }
        c.ring = Some((a, out));
        let id = c.id;
        self.schedule(at, SimEv::RingEnd(slot, id));
    }

    pub(super) fn ring_end(&mut self, slot: u32, id: u64) {
        let now = self.now;
        let Some((a, out)) = self.call_mut(slot, id).and_then(|c| c.ring.take()) else {
            return;
        };
        let d = self.pub_delay();
        match out {
            RingOut::Accept => {
                let Some(mut c) = self.take_call(slot) else {
                    return;
                };
                c.evs.push(PlannedEvent::new(now, d, Kind::Accepted, a));
                // A contact has at most three legs.
                let phone = QUEUES[c.queue as usize].media == "phone";
                let allow_transfer = phone && c.ix.leg_index < 2;
                let (free_at, next) =
                    self.plan_connected(&mut c.evs, c.queue, a, now, allow_transfer);
                if let Some((at, target, consult)) = next {
                    let origin = Origin {
                        parent: c.ix.guid.clone(),
                        contact: c.ix.contact.clone(),
                        leg_index: c.ix.leg_index + 1,
                    };
                    let leg = Leg {
                        origin,
                        queue: target,
                        consult_by: consult.then_some(a),
                    };
                    self.add_leg(at, leg);
                }
                self.complete(c.ix, c.created, c.id, c.evs);
                self.schedule(free_at, SimEv::AgentFree(a));
            }
            RingOut::Rna | RingOut::Reject => {
                let reason = if out == RingOut::Rna { 1 } else { 2 };
                if let Some(c) = self.call_mut(slot, id) {
                    c.evs
                        .push(PlannedEvent::new(now, d, Kind::Rejected, a).with(reason, 0));
                    c.rejected_by.push(a);
                }
                self.requeue(slot, id);
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.busy = false;
                    ag.gen += 1;
                    if out == RingOut::Rna {
                        ag.in_rna = true;
                    }
                }
                if out == RingOut::Rna {
                    // Ring-no-answer: the platform takes the agent out of routing.
                    self.agent_status(a, ST_NOT_READY, "RNA");
                    let back = now + self.rng.range(20 * SEC, 90 * SEC);
                    self.schedule(back, SimEv::RnaEnd(a));
                } else {
                    self.agent_ready(a);
                }
            }
            RingOut::Hangup => {
                let d2 = self.pub_delay();
                let gap = self.rng.range(5, 60);
                if let Some(mut c) = self.take_call(slot) {
                    c.evs.push(
                        PlannedEvent::new(now, d, Kind::Deleted, NO_AGENT)
                            .with(i64::from(INIT_CUSTOMER), i64::from(REASON_NORMAL)),
                    );
                    c.evs
                        .push(PlannedEvent::new(now + gap, d2, Kind::Deassigned, a));
                    self.complete(c.ix, c.created, c.id, c.evs);
                }
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.busy = false;
                }
                self.agent_ready(a);
            }
        }
    }

    fn requeue(&mut self, slot: u32, id: u64) {
        let now = self.now;
        let Some(c) = self.call_mut(slot, id) else {
            return;
        };
        if c.deadline <= now {
            self.abandon(slot);
            return;
        }
        c.waiting = true;
        let key = (c.queued, slot);
        let q = c.queue as usize;
        self.waiting[q].insert(key);
        self.dispatch_call(slot);
    }
}
