//! The discrete-event simulation: agents on shifts, queues with FIFO waiting lists,
//! customers with finite patience, offers that ring, get rejected or accepted.
//!
//! Every decision comes from `rng` (stream 0) in event order, so the world is the
//! same whatever the quirk switches; quirks draw from their own streams.
//!
//! The engine's state and its event loop live here; what happens to each
//! kind of simulated event lives in the submodules, each an `impl Engine`
//! block: the calendar and arrivals (`day`), creating and emitting a leg
//! (`interaction`), an inbound call through IVR, queue and offers (`queue`),
//! transfers and consultations (`legs`), the connected call to the end of
//! wrap-up (`talk`), campaign dialling (`outbound`) and the agents' shifts,
//! breaks and status (`agents`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::io::{self, Write};
use std::rc::Rc;

use crate::model::{LegAttrs, PlannedEvent, INBOUND};
use crate::output::Output;
use crate::rng::Rng;
use crate::{SimConfig, SimSummary, Truth};

mod agents;
mod day;
mod interaction;
mod legs;
mod outbound;
mod queue;
mod talk;

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

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
    ix: Rc<LegAttrs>,
    created: i64,
    evs: Vec<PlannedEvent>,
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

    /// How long after an event the platform publishes it (ms).
    fn pub_delay(&mut self) -> i64 {
        self.rng.range(1, 60)
    }

    /// `N` publication delays, drawn in order.
    fn pub_delays<const N: usize>(&mut self) -> [i64; N] {
        std::array::from_fn(|_| self.pub_delay())
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

    fn count_interaction(&mut self) {
        self.created += 1;
        if self.cfg.interactions.is_some_and(|n| self.created >= n) {
            self.cap_reached = true;
        }
    }
}
