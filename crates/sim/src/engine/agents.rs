//! Agents: skills, log-in and log-out, breaks, ring-no-answer time-outs,
//! the idle lists that route calls, and their status changes.
//!
//! Guarantees: at most one status change per agent per second (statusEventTS
//! is in seconds, and canonical order must not depend on sequenceId); an
//! agent busy at a due break or shift end takes it when free.

use std::io::Write;

use super::{Agent, Engine, SimEv, SEC};
use crate::model::{INBOUND, QUEUES, Q_BILLING, Q_CHAT, Q_EMAIL, Q_SALES, Q_SUPPORT};
use crate::output::Body;

// Agent states (streaming docs: 0 logged out, 1 logged in, 5 available).
pub(super) const ST_LOGGED_OUT: i64 = 0;
pub(super) const ST_LOGGED_IN: i64 = 1;
pub(super) const ST_NOT_READY: i64 = 2;
pub(super) const ST_BREAK: i64 = 3;
pub(super) const ST_AVAILABLE: i64 = 5;
const BREAK_REASONS: [&str; 3] = ["Break", "Lunch", "Break"];

impl<W: Write> Engine<'_, W> {
    pub(super) fn init_agents(&mut self) {
        let tenant = self.cfg.tenant.clone();
        for i in 0..self.cfg.agents {
            // Fixed skill mix by index so that even 1-3 agents cover the phone queues.
            let skills = match i % 8 {
                2 => (1 << Q_BILLING) | (1 << Q_SUPPORT) | (1 << Q_CHAT) | (1 << Q_EMAIL),
                5 => (1 << Q_CHAT) | (1 << Q_SUPPORT) | (1 << Q_EMAIL),
                6 | 7 => (1 << Q_SALES) | (1 << Q_BILLING),
                _ => (1 << Q_BILLING) | (1 << Q_SUPPORT),
            };
            let mut id = String::from("ag");
            self.rng.alnum(&mut id, 21);
            let mut guid = format!("{tenant}-{id}-");
            for (k, n) in [8usize, 4, 4, 4, 12].iter().enumerate() {
                if k > 0 {
                    guid.push('-');
                }
                self.rng.hex(&mut guid, *n);
            }
            self.out.agent_ids.push((id, guid));
            self.agents.push(Agent {
                skills,
                ..Agent::default()
            });
        }
    }

    pub(super) fn agent_status(&mut self, a: u32, state: i64, reason: &'static str) {
        let now = self.now;
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        // One change per agent per second: statusEventTS is in seconds, and
        // canonical order must not depend on sequenceId (msgInfo may be empty).
        let mut t = now;
        if ag.last_status != 0 && t.div_euclid(1000) <= ag.last_status.div_euclid(1000) {
            t = (ag.last_status.div_euclid(1000) + 1) * 1000;
        }
        ag.last_status = t;
        ag.state = state;
        self.out.push(
            t,
            Body::Agent {
                agent: a,
                state,
                reason,
            },
        );
    }

    pub(super) fn login(&mut self, a: u32) {
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        ag.logged_in = true;
        ag.working = false;
        ag.logout_pending = false;
        ag.break_pending = None;
        let first = !ag.provisioned;
        ag.provisioned = true;
        let skills = ag.skills;
        self.agent_status(a, ST_LOGGED_IN, "none");
        if first {
            for q in 0..QUEUES.len() as u8 {
                if skills & (1 << q) != 0 {
                    self.out.push(self.now, Body::Prov { agent: a, queue: q });
                }
            }
        }
    }

    /// The agent has nothing in hand: log out, take a due break, or take work.
    pub(super) fn agent_ready(&mut self, a: u32) {
        let Some(ag) = self.agents.get(a as usize) else {
            return;
        };
        if !ag.logged_in || !ag.working || ag.busy || ag.on_break || ag.in_rna {
            return;
        }
        if ag.logout_pending {
            self.logout(a);
            return;
        }
        if let Some(k) = ag.break_pending {
            self.start_break(a, k);
            return;
        }
        if ag.state != ST_AVAILABLE {
            self.agent_status(a, ST_AVAILABLE, "none");
        }
        if let Some(slot) = self.pick_call(a) {
            self.offer(a, slot);
            return;
        }
        self.set_idle(a);
        if self.agents[a as usize].has(Q_SALES) && !self.cap_reached {
            let gen = self.agents[a as usize].gen;
            let t = self.now + self.rng.range(3 * SEC, 20 * SEC);
            self.schedule(t, SimEv::Dial(a, gen));
        }
    }

    /// Oldest waiting call among the agent's inbound skills that it has not rejected.
    fn pick_call(&self, a: u32) -> Option<u32> {
        let ag = self.agents.get(a as usize)?;
        let mut best: Option<(i64, u32)> = None;
        for (qi, &q) in INBOUND.iter().enumerate() {
            if !ag.has(q) {
                continue;
            }
            let cand = self.waiting[qi].iter().take(64).find(|&&(_, s)| {
                self.calls
                    .get(s as usize)
                    .and_then(|c| c.as_ref())
                    .is_some_and(|c| !c.rejected_by.contains(&a))
            });
            if let Some(&k) = cand {
                if best.is_none_or(|b| k < b) {
                    best = Some(k);
                }
            }
        }
        best.map(|(_, s)| s)
    }

    fn set_idle(&mut self, a: u32) {
        let now = self.now;
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        if ag.idle_key.is_some() {
            return;
        }
        ag.idle_key = Some(now);
        for (qi, &q) in INBOUND.iter().enumerate() {
            if ag.has(q) {
                self.idle[qi].insert((now, a));
            }
        }
    }

    pub(super) fn clear_idle(&mut self, a: u32) {
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        if let Some(k) = ag.idle_key.take() {
            for (qi, &q) in INBOUND.iter().enumerate() {
                if ag.has(q) {
                    self.idle[qi].remove(&(k, a));
                }
            }
        }
    }

    pub(super) fn break_due(&mut self, a: u32, k: u8) {
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        if !ag.logged_in || !ag.working || ag.on_break {
            return;
        }
        if ag.busy || ag.in_rna {
            ag.break_pending = Some(k);
            return;
        }
        self.start_break(a, k);
    }

    fn start_break(&mut self, a: u32, k: u8) {
        self.clear_idle(a);
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        ag.break_pending = None;
        ag.on_break = true;
        ag.gen += 1;
        let dur = ag.break_ms[k as usize % 3];
        self.agent_status(a, ST_BREAK, BREAK_REASONS[k as usize % 3]);
        self.schedule(self.now + dur, SimEv::BreakEnd(a));
    }

    pub(super) fn shift_end(&mut self, a: u32) {
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        if !ag.logged_in {
            return;
        }
        if ag.busy || ag.on_break || ag.in_rna {
            ag.logout_pending = true;
            return;
        }
        self.logout(a);
    }

    fn logout(&mut self, a: u32) {
        self.clear_idle(a);
        let Some(ag) = self.agents.get_mut(a as usize) else {
            return;
        };
        ag.logged_in = false;
        ag.working = false;
        ag.logout_pending = false;
        ag.break_pending = None;
        ag.gen += 1;
        self.agent_status(a, ST_LOGGED_OUT, "none");
    }
}
