//! The discrete-event simulation: agents on shifts, queues with FIFO waiting lists,
//! customers with finite patience, offers that ring, get rejected or accepted.
//!
//! Every decision comes from `rng` (stream 0) in event order, so the world is the
//! same whatever the quirk switches; quirks draw from their own streams.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::io::{self, Write};
use std::rc::Rc;

use crate::model::*;
use crate::output::{Body, Output};
use crate::rng::Rng;
use crate::truth;
use crate::{SimConfig, SimSummary, Truth};

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Inbound lines open 07:00-21:00, the campaign dials 09:00-19:00 (simulated UTC).
const OPEN_H: i64 = 7;
const CLOSE_H: i64 = 21;
const DIAL_FROM: i64 = 9 * HOUR;
const DIAL_TO: i64 = 19 * HOUR;

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
const INBOUND_DISPOSITIONS: [i64; 5] = [1000, 1000, 1001, 1002, 1010];
const BREAK_REASONS: [&str; 3] = ["Break", "Lunch", "Break"];

// Agent states (streaming docs: 0 logged out, 1 logged in, 5 available).
const ST_LOGGED_OUT: i64 = 0;
const ST_LOGGED_IN: i64 = 1;
const ST_NOT_READY: i64 = 2;
const ST_BREAK: i64 = 3;
const ST_AVAILABLE: i64 = 5;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum SimEv {
    DayStart(u32),
    Arrival(u8),
    Queue(u32, u64),
    IvrHangup(u32, u64),
    Patience(u32, u64),
    RingEnd(u32, u64),
    AgentFree(u32),
    Login(u32),
    ShiftStart(u32),
    BreakDue(u32, u8),
    BreakEnd(u32),
    ShiftEnd(u32),
    RnaEnd(u32),
    Dial(u32, u32),
    Leg(u32),
    Tick(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RingOut {
    Accept,
    Rna,
    Reject,
    Hangup,
}

struct Call {
    id: u64,
    ix: Rc<Ix>,
    created: i64,
    evs: Vec<Ev>,
    queue: u8,
    queued: i64,
    deadline: i64,
    rejected_by: Vec<u32>,
    ring: Option<(u32, RingOut)>,
    waiting: bool,
}

/// Where a new leg comes from: the leg it was transferred from or consults for.
#[derive(Clone)]
struct Origin {
    parent: String,
    contact: String,
    /// Of the new leg.
    leg_index: u8,
}

/// A leg decided now that starts later.
struct Leg {
    origin: Origin,
    queue: u8,
    /// `Some(agent)`: that agent consults a colleague; `None`: a transfer to `queue`.
    consult_by: Option<u32>,
}

#[derive(Default)]
struct Agent {
    skills: u8,
    logged_in: bool,
    working: bool,
    busy: bool,
    on_break: bool,
    in_rna: bool,
    logout_pending: bool,
    break_pending: Option<u8>,
    idle_key: Option<i64>,
    gen: u32,
    state: i64,
    last_status: i64,
    break_ms: [i64; 3],
    provisioned: bool,
}

impl Agent {
    fn has(&self, q: u8) -> bool {
        self.skills & (1 << q) != 0
    }
}

struct Engine<'a, W: Write> {
    cfg: &'a SimConfig,
    rng: Rng,
    qrng: Rng,
    out: Output<'a, W>,
    heap: BinaryHeap<Reverse<(i64, u64, SimEv)>>,
    hseq: u64,
    now: i64,
    agents: Vec<Agent>,
    idle: [BTreeSet<(i64, u32)>; INBOUND.len()],
    waiting: [BTreeSet<(i64, u32)>; INBOUND.len()],
    calls: Vec<Option<Call>>,
    free_calls: Vec<u32>,
    legs: Vec<Option<Leg>>,
    free_legs: Vec<u32>,
    /// (createdAt, id) of interactions whose events are not all decided yet: nothing
    /// at or after the oldest of them may be released (it may still emit there).
    open: BTreeSet<(i64, u64)>,
    /// Calls per ms, per inbound queue and hour of the current day.
    rates: [[f64; 24]; INBOUND.len()],
    day_start: i64,
    created: u64,
    next_id: u64,
    txn: u64,
    cap_reached: bool,
    pending_legs: u32,
}

pub(crate) fn run<W: Write>(
    cfg: &SimConfig,
    w: W,
    cb: &mut dyn FnMut(Truth),
) -> io::Result<SimSummary> {
    let out = Output::new(
        w,
        cfg.quirks.clone(),
        cfg.tenant.clone(),
        cfg.seed,
        cfg.events,
        cb,
    );
    let mut e = Engine {
        cfg,
        rng: Rng::new(cfg.seed, 0),
        qrng: Rng::new(cfg.seed, 1),
        out,
        heap: BinaryHeap::new(),
        hseq: 0,
        now: cfg.start_ms,
        agents: Vec::new(),
        idle: Default::default(),
        waiting: Default::default(),
        calls: Vec::new(),
        free_calls: Vec::new(),
        legs: Vec::new(),
        free_legs: Vec::new(),
        open: BTreeSet::new(),
        rates: [[0.0; 24]; INBOUND.len()],
        day_start: cfg.start_ms,
        created: 0,
        next_id: 0,
        txn: 70_000,
        cap_reached: cfg.interactions == Some(0),
        pending_legs: 0,
    };
    e.init_agents();
    if e.day_allowed(0) {
        e.schedule(cfg.start_ms, SimEv::DayStart(0));
    }
    while let Some(Reverse((t, _, ev))) = e.heap.pop() {
        e.now = t;
        e.handle(ev);
        let limit = match e.open.first() {
            Some(&(c, _)) => t.min(c - 1),
            None => t,
        };
        e.out.flush_until(limit)?;
        if e.out.stopped || (e.cap_reached && e.open.is_empty() && e.pending_legs == 0) {
            break;
        }
    }
    e.out.finish()?;
    Ok(e.out.summary.clone())
}

impl<W: Write> Engine<'_, W> {
    fn schedule(&mut self, t: i64, ev: SimEv) {
        self.hseq += 1;
        self.heap.push(Reverse((t, self.hseq, ev)));
    }

    fn day_allowed(&self, day: u32) -> bool {
        if self.cfg.events.is_some() || self.cfg.interactions.is_some() {
            !self.cap_reached
        } else {
            day < self.cfg.days
        }
    }

    fn pub_delay(&mut self) -> i64 {
        self.rng.range(1, 60)
    }

    fn init_agents(&mut self) {
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

    fn handle(&mut self, ev: SimEv) {
        match ev {
            SimEv::DayStart(d) => self.day_start(d),
            SimEv::Arrival(q) => self.arrival(q),
            SimEv::Queue(s, id) => self.enqueue(s, id),
            SimEv::IvrHangup(s, id) => self.ivr_hangup(s, id),
            SimEv::Patience(s, id) => self.patience(s, id),
            SimEv::RingEnd(s, id) => self.ring_end(s, id),
            SimEv::AgentFree(a) => {
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.busy = false;
                }
                self.agent_ready(a);
            }
            SimEv::Login(a) => self.login(a),
            SimEv::ShiftStart(a) => {
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.working = true;
                }
                self.agent_ready(a);
            }
            SimEv::BreakDue(a, k) => self.break_due(a, k),
            SimEv::BreakEnd(a) => {
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.on_break = false;
                }
                self.agent_ready(a);
            }
            SimEv::RnaEnd(a) => {
                if let Some(ag) = self.agents.get_mut(a as usize) {
                    ag.in_rna = false;
                }
                self.agent_ready(a);
            }
            SimEv::ShiftEnd(a) => self.shift_end(a),
            SimEv::Dial(a, gen) => self.dial(a, gen),
            SimEv::Leg(l) => self.leg(l),
            SimEv::Tick(d) => self.tick(d),
        }
    }

    // ---- days, shifts, arrivals ------------------------------------------------

    fn day_start(&mut self, day: u32) {
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

    fn arrival(&mut self, q: u8) {
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

    fn count_interaction(&mut self) {
        self.created += 1;
        if self.cfg.interactions.is_some_and(|n| self.created >= n) {
            self.cap_reached = true;
        }
    }

    fn tick(&mut self, day: u32) {
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

    // ---- interactions ------------------------------------------------------------

    /// A fresh GUID of a leg at `leg_index` of its contact on `media`.
    fn guid(&mut self, media: &str, leg_index: u8) -> String {
        let mut guid = format!("int-{:x}-", self.now);
        self.rng.alnum(&mut guid, 25);
        guid.push_str(&format!("-{media}-{leg_index:02}-{}", self.cfg.tenant));
        guid
    }

    fn new_ix(&mut self, queue: u8, outbound: bool, consult: bool, origin: Option<Origin>) -> Ix {
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
        Ix {
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

    /// A contact that reaches the center: through the IVR to a queue, or hanging
    /// up in the IVR. `origin` is set for a transferred leg.
    fn new_inbound(&mut self, q: u8, origin: Option<Origin>) {
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
            evs: vec![Ev::new(now, d, Kind::Created, NO_AGENT)],
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

    fn enqueue(&mut self, slot: u32, id: u64) {
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
        c.evs.push(Ev::new(now, d, Kind::Queued, NO_AGENT));
        c.ix.offer_sec.set(now.div_euclid(1000));
        c.queued = now;
        c.deadline = now + patience;
        c.waiting = true;
        self.waiting[q as usize].insert((now, slot));
        self.schedule(now + patience, SimEv::Patience(slot, id));
        self.dispatch_call(slot);
    }

    fn ivr_hangup(&mut self, slot: u32, id: u64) {
        if self.call_mut(slot, id).is_none() {
            return;
        }
        let d = self.pub_delay();
        if let Some(mut c) = self.take_call(slot) {
            let b = i64::from(REASON_NORMAL);
            c.evs.push(
                Ev::new(self.now, d, Kind::Deleted, NO_AGENT).with(i64::from(INIT_CUSTOMER), b),
            );
            self.complete(c.ix, c.created, c.id, c.evs);
        }
    }

    fn patience(&mut self, slot: u32, id: u64) {
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
        c.evs.push(Ev::new(now, d1, Kind::Unqueued, NO_AGENT));
        c.evs.push(
            Ev::new(now + gap, d2, Kind::Deleted, NO_AGENT)
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

    fn offer(&mut self, a: u32, slot: u32) {
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
        c.evs.push(Ev::new(now, d, Kind::Assigned, a));
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

    fn ring_end(&mut self, slot: u32, id: u64) {
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
                c.evs.push(Ev::new(now, d, Kind::Accepted, a));
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
                        .push(Ev::new(now, d, Kind::Rejected, a).with(reason, 0));
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
                        Ev::new(now, d, Kind::Deleted, NO_AGENT)
                            .with(i64::from(INIT_CUSTOMER), i64::from(REASON_NORMAL)),
                    );
                    c.evs.push(Ev::new(now + gap, d2, Kind::Deassigned, a));
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

    fn add_leg(&mut self, at: i64, leg: Leg) {
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

    fn leg(&mut self, slot: u32) {
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
        let (d0, d1, d2, d3, d4) = (
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
        );
        let assigned = now + self.rng.range(300, 1500);
        let accepted = assigned + self.rng.range(SEC, 5 * SEC);
        let talk = self.rng.range(20 * SEC, 150 * SEC);
        let no_answer = now + self.rng.range(15 * SEC, 30 * SEC);
        let gap = self.rng.range(5, 60);
        let mut evs = vec![Ev::new(now, d0, Kind::Created, NO_AGENT)];
        match colleague {
            Some(b) => {
                self.clear_idle(b);
                if let Some(ag) = self.agents.get_mut(b as usize) {
                    ag.busy = true;
                    ag.gen += 1;
                }
                let end = accepted + talk;
                evs.push(Ev::new(assigned, d1, Kind::Assigned, b));
                evs.push(Ev::new(accepted, d2, Kind::Accepted, b));
                evs.push(
                    Ev::new(end, d3, Kind::Deleted, NO_AGENT)
                        .with(i64::from(INIT_AGENT), i64::from(REASON_NORMAL)),
                );
                evs.push(Ev::new(end + gap, d4, Kind::Deassigned, b));
                self.schedule(end + gap, SimEv::AgentFree(b));
            }
            None => evs.push(
                Ev::new(no_answer, d3, Kind::Deleted, NO_AGENT)
                    .with(i64::from(INIT_SYSTEM), i64::from(REASON_NOANSWER)),
            ),
        }
        self.complete(ix, now, id, evs);
    }

    /// Plans everything from connect to the end of wrap-up; returns when the agent
    /// is free and, for a transfer or a consultation, when the next leg starts, in
    /// which queue, and whether it is a consultation.
    fn plan_connected(
        &mut self,
        evs: &mut Vec<Ev>,
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
            evs.push(Ev::new(x, d, Kind::TransferRequest, a).with(0, i64::from(target)));
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
                let (d1, d2, d3, d4) = (
                    self.pub_delay(),
                    self.pub_delay(),
                    self.pub_delay(),
                    self.pub_delay(),
                );
                let rec1 = self.rng.range(40, 400);
                let rec2 = self.rng.range(40, 400);
                if open {
                    // Still on hold when the agent drops the call: the hold runs to the
                    // end of talk (docs/METRICS.md §3: closed at talkEndAt).
                    evs.push(Ev::new(hs, d1, Kind::LineHold, a).with(1, 0));
                    evs.push(Ev::new(hs + rec1, d2, Kind::Recording, a).with(1, 0));
                    initiator = INIT_AGENT;
                    continue;
                }
                if he - hs < 3 * SEC {
                    continue;
                }
                evs.push(Ev::new(hs, d1, Kind::LineHold, a).with(1, 0));
                evs.push(Ev::new(hs + rec1, d2, Kind::Recording, a).with(1, 0));
                evs.push(Ev::new(he, d3, Kind::LineHold, a).with(0, 0));
                evs.push(Ev::new(he + rec2, d4, Kind::Recording, a).with(0, 0));
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
        let (d1, d2, d3, d4) = (
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
        );
        let pp_gap = self.rng.range(5, 40);
        let da_gap = self.rng.range(5, 60);
        let del_disp = if disp_on_deleted { disp } else { 0 };
        evs.push(Ev::new(end, d1, Kind::Deleted, NO_AGENT).with(
            i64::from(initiator),
            (del_disp << 8) | i64::from(REASON_NORMAL),
        ));
        let free_at = if wraps {
            evs.push(Ev::new(end + pp_gap, d2, Kind::PostProcess, a));
            evs.push(Ev::new(end + wrap, d3, Kind::EndPostProcess, a).with(0, disp));
            evs.push(Ev::new(end + wrap + da_gap, d4, Kind::Deassigned, a));
            end + wrap + da_gap
        } else {
            evs.push(Ev::new(end + da_gap, d4, Kind::Deassigned, a));
            end + da_gap
        };
        (free_at, transfer)
    }

    fn dial(&mut self, a: u32, gen: u32) {
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
        let (d0, d1, d2, d3, d4) = (
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
            self.pub_delay(),
        );
        let mut evs = vec![
            Ev::new(now, d0, Kind::Created, NO_AGENT),
            Ev::new(assigned, d1, Kind::Assigned, a),
            Ev::new(accepted, d2, Kind::Accepted, a),
        ];
        if let Some(q) = queued {
            evs.insert(1, Ev::new(q, dq, Kind::Queued, NO_AGENT));
        }
        let u = self.rng.f64();
        let free_at = if u < 0.55 {
            let ca = accepted + self.rng.range(6 * SEC, 25 * SEC);
            evs.push(Ev::new(ca, d3, Kind::CustomerAccepted, a));
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
                Ev::new(end, d3, Kind::Deleted, NO_AGENT)
                    .with(i64::from(INIT_SYSTEM), (disp << 8) | i64::from(reason)),
            );
            evs.push(Ev::new(end + gap, d4, Kind::Deassigned, a));
            end + gap
        };
        self.complete(ix, now, id, evs);
        self.schedule(free_at, SimEv::AgentFree(a));
    }

    /// Applies the per-event quirks where they cannot change canonical order,
    /// computes the truth and hands the events to the output.
    fn complete(&mut self, ix: Rc<Ix>, created: i64, id: u64, mut evs: Vec<Ev>) {
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
            let f = Ev::new(prev.r, prev.d, Kind::FutureThing, agent);
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
            let ok = |evs: &[Ev]| {
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
            self.out.push(ev.r, Body::Ix(ix.clone(), ev));
        }
        self.open.remove(&(created, id));
    }

    // ---- agents ----------------------------------------------------------------

    fn agent_status(&mut self, a: u32, state: i64, reason: &'static str) {
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

    fn login(&mut self, a: u32) {
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
    fn agent_ready(&mut self, a: u32) {
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

    fn clear_idle(&mut self, a: u32) {
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

    fn break_due(&mut self, a: u32, k: u8) {
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

    fn shift_end(&mut self, a: u32) {
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
