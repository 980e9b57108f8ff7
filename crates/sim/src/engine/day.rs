//! The calendar: each day's shifts and breaks, the arrival rates that follow
//! the staffing plan, the arrivals themselves and the queue-statistics tick.
//!
//! Guarantees: arrivals are a piecewise-constant Poisson process per inbound
//! queue, drawn from `rng` in event order; no inbound call arrives outside
//! opening hours.

use std::io::Write;

use super::{Engine, Origin, SimEv, DAY, HOUR, MIN, SEC};
use crate::model::{INBOUND, QUEUES, Q_BILLING, Q_CHAT, Q_SALES};
use crate::output::Body;

/// Inbound lines open 07:00-21:00 (simulated UTC).
const OPEN_H: i64 = 7;
const CLOSE_H: i64 = 21;

impl<W: Write> Engine<'_, W> {
    pub(super) fn day_start(&mut self, day: u32) {
        let start = self.now;
        self.day_start = start;
        let weekday = start.div_euclid(DAY).rem_euclid(7); // 0 = Thursday
        let weekend = weekday == 2 || weekday == 3;
        let mut staff = [[0.0f64; 24]; INBOUND.len()];
        for a in 0..self.agents.len() {
            let works = !weekend || self.rng.chance(0.45);
            let offset = 6 * HOUR + 45 * MIN + self.rng.range(0, 26) * 15 * MIN;
            let login_early = self.rng.range(60 * SEC, 240 * SEC);
            let b0 = self.rng.range(-15 * MIN, 15 * MIN);
            let b1 = self.rng.range(-20 * MIN, 20 * MIN);
            let b2 = self.rng.range(-15 * MIN, 15 * MIN);
            let extra: [i64; 3] = [
                self.rng.range(0, 3 * MIN),
                self.rng.range(0, 5 * MIN),
                self.rng.range(0, 3 * MIN),
            ];
            if !works {
                continue;
            }
            let s = start + offset;
            let e = s + 8 * HOUR + 30 * MIN;
            let a32 = a as u32;
            self.schedule(s - login_early, SimEv::Login(a32));
            self.schedule(s, SimEv::ShiftStart(a32));
            self.schedule(s + 2 * HOUR + b0, SimEv::BreakDue(a32, 0));
            self.schedule(s + 4 * HOUR + b1, SimEv::BreakDue(a32, 1));
            self.schedule(s + 6 * HOUR + 30 * MIN + b2, SimEv::BreakDue(a32, 2));
            self.schedule(e, SimEv::ShiftEnd(a32));
            let ag = &mut self.agents[a];
            ag.break_ms = [
                15 * MIN + extra[0],
                30 * MIN + extra[1],
                15 * MIN + extra[2],
            ];
            let inbound: Vec<u8> = INBOUND.iter().copied().filter(|&q| ag.has(q)).collect();
            let blended = ag.has(Q_SALES);
            let overlap: [f64; 24] = std::array::from_fn(|h| {
                let hs = start + h as i64 * HOUR;
                (e.min(hs + HOUR) - s.max(hs)).max(0) as f64 / HOUR as f64
            });
            let w = if blended {
                0.3
            } else {
                1.0 / inbound.len().max(1) as f64
            };
            for &q in &inbound {
                for (cell, o) in staff[q as usize].iter_mut().zip(overlap) {
                    *cell += o * w;
                }
            }
        }
        // Arrivals follow the staffing plan (as a WFM forecast would) with daily and
        // hourly forecast error, so queues build where the plan was too thin.
        let day_factor = 0.85 + 0.3 * self.rng.f64();
        let unstaffed = self.agents.is_empty();
        for (qi, &q) in INBOUND.iter().enumerate() {
            let def = &QUEUES[q as usize];
            let handle_s = def.talk_mean_s + 30.0 + 6.0 + 12.0;
            let per_agent_hour = 3600.0 / handle_s;
            let mut rates = [0.0f64; 24];
            for (h, (rate, staffed)) in rates.iter_mut().zip(staff[qi]).enumerate() {
                let noise = 0.85 + 0.35 * self.rng.f64();
                let open = (OPEN_H..CLOSE_H).contains(&(h as i64));
                let shape = match (q, h) {
                    (Q_BILLING, 0..=11) => 1.1,
                    (Q_BILLING, _) => 0.95,
                    (Q_CHAT, 16..) => 1.15,
                    _ => 1.0,
                };
                let per_hour = if !open {
                    0.0
                } else if unstaffed {
                    if QUEUES[q as usize].media != "phone" {
                        0.0
                    } else {
                        6.0
                    }
                } else {
                    staffed * 0.86 * per_agent_hour * def.load * day_factor * noise * shape
                };
                *rate = per_hour / HOUR as f64;
            }
            self.rates[qi] = rates;
            let first = self.next_arrival(qi, start);
            if let Some(t) = first {
                self.schedule(t, SimEv::Arrival(q));
            }
        }
        self.schedule(start + OPEN_H * HOUR, SimEv::Tick(day));
        if self.day_allowed(day + 1) {
            self.schedule(start + DAY, SimEv::DayStart(day + 1));
        }
    }

    /// Next arrival of a piecewise-constant Poisson process (exact: memoryless
    /// restart at each hour boundary). `None` after closing.
    fn next_arrival(&mut self, qi: usize, from: i64) -> Option<i64> {
        let mut t = from;
        loop {
            let h = (t - self.day_start).div_euclid(HOUR);
            if !(0..24).contains(&h) || h >= CLOSE_H {
                return None;
            }
            let boundary = self.day_start + (h + 1) * HOUR;
            let rate = self.rates[qi][h as usize];
            if rate > 0.0 {
                let dt = self.rng.exp(1.0 / rate);
                if dt < (boundary - t) as f64 {
                    return Some(t + (dt as i64).max(1));
                }
            }
            t = boundary;
        }
    }

    pub(super) fn arrival(&mut self, q: u8) {
        if self.cap_reached {
            return;
        }
        self.count_interaction();
        // A call transferred in from a leg the stream never carried (another
        // tenant's or from before the stream began): its contact is that leg.
        let origin = if QUEUES[q as usize].media == "phone" && self.rng.chance(0.02) {
            let parent = self.guid("phone", 0);
            Some(Origin {
                contact: parent.clone(),
                parent,
                leg_index: 1,
            })
        } else {
            None
        };
        self.new_inbound(q, origin);
        let qi = INBOUND.iter().position(|&x| x == q).unwrap_or(0);
        if let Some(t) = self.next_arrival(qi, self.now) {
            self.schedule(t, SimEv::Arrival(q));
        }
    }

    pub(super) fn tick(&mut self, day: u32) {
        let now = self.now;
        if self.cfg.quirks.unknown_types {
            for (qi, &q) in INBOUND.iter().enumerate() {
                let waiting = self.waiting[qi].len() as u64;
                let available = self.idle[qi].len() as u64;
                let longest = self.waiting[qi]
                    .first()
                    .map_or(0, |&(t, _)| (now - t).max(0) / SEC);
                self.out.push(
                    now,
                    Body::Tick {
                        queue: q,
                        waiting,
                        available,
                        longest_wait_s: longest,
                    },
                );
            }
        }
        let next = now + 15 * MIN;
        if next <= self.day_start + CLOSE_H * HOUR + 30 * MIN && !self.cap_reached {
            self.schedule(next, SimEv::Tick(day));
        }
    }
}
