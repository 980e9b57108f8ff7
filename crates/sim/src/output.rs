//! From decided events to lines: time-ordered release, `sequenceId` assignment,
//! shape choice, then the transport quirks (reorder, duplicates, malformed lines).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::io::{self, BufWriter, Write};
use std::rc::Rc;

use crate::model::{LegAttrs, PlannedEvent};
use crate::render::{self, AgentLine, TickLine};
use crate::rng::Rng;
use crate::{Quirks, SimSummary, Truth};

pub(crate) enum Body {
    Leg(Rc<LegAttrs>, PlannedEvent),
    Agent {
        agent: u32,
        state: i64,
        reason: &'static str,
    },
    Prov {
        agent: u32,
        queue: u8,
    },
    Tick {
        queue: u8,
        waiting: u64,
        available: u64,
        longest_wait_s: i64,
    },
}

/// Orders by (time, insertion), never by content: the insertion counter makes the
/// release order, and so the `sequenceId`s, follow the order events were decided in.
struct Keyed<T> {
    k: i64,
    n: u64,
    v: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.k, self.n) == (o.k, o.n)
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.k, self.n).cmp(&(o.k, o.n))
    }
}

struct Line {
    bytes: Vec<u8>,
    ix: Option<Rc<LegAttrs>>,
    envelope: bool,
    /// Shape-1 bytes of the event (for malformed variants of an envelope line).
    bare_len: usize,
}

const GARBAGE: [&str; 4] = [
    "not json at all",
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "PING",
    "[1,2,3]",
];

pub(crate) struct Output<'a, W: Write> {
    w: BufWriter<W>,
    q: Quirks,
    tenant: String,
    pub agent_ids: Vec<(String, String)>,
    rng: Rng,
    heap: BinaryHeap<Reverse<Keyed<Body>>>,
    n: u64,
    held: BinaryHeap<Reverse<Keyed<Line>>>,
    deferred: BinaryHeap<Reverse<Keyed<Vec<u8>>>>,
    seq: [u64; 2],
    ledger: u64,
    entry: u64,
    pub summary: SimSummary,
    max_lines: Option<u64>,
    pub stopped: bool,
    cb: &'a mut dyn FnMut(Truth),
    /// Untimed agent status lines written so far (a few per agent and day).
    untimed_seen: HashSet<Vec<u8>>,
}

impl<'a, W: Write> Output<'a, W> {
    pub(crate) fn new(
        w: W,
        q: Quirks,
        tenant: String,
        seed: u64,
        max_lines: Option<u64>,
        cb: &'a mut dyn FnMut(Truth),
    ) -> Self {
        let mut rng = Rng::new(seed, 2);
        let seq = [1000 + rng.below(9000), 1000 + rng.below(9000)];
        let ledger = 1000 + rng.below(90_000);
        Output {
            w: BufWriter::with_capacity(1 << 20, w),
            q,
            tenant,
            agent_ids: Vec::new(),
            rng,
            heap: BinaryHeap::new(),
            n: 0,
            held: BinaryHeap::new(),
            deferred: BinaryHeap::new(),
            seq,
            ledger,
            entry: 0,
            summary: SimSummary::default(),
            max_lines,
            stopped: max_lines == Some(0),
            cb,
            untimed_seen: HashSet::new(),
        }
    }

    pub(crate) fn push(&mut self, t: i64, body: Body) {
        self.n += 1;
        self.heap.push(Reverse(Keyed {
            k: t,
            n: self.n,
            v: body,
        }));
    }

    /// Emits everything decided up to `limit` (ms). The caller guarantees that no
    /// event at or before `limit` will be pushed later.
    pub(crate) fn flush_until(&mut self, limit: i64) -> io::Result<()> {
        while !self.stopped {
            match self.heap.peek() {
                Some(Reverse(top)) if top.k <= limit => {}
                _ => break,
            }
            let Some(Reverse(item)) = self.heap.pop() else {
                break;
            };
            let line = self.render(item.k, item.v);
            if self.q.reorder_window_ms > 0 {
                let key = item.k + self.rng.range(0, self.q.reorder_window_ms + 1);
                self.n += 1;
                self.held.push(Reverse(Keyed {
                    k: key,
                    n: self.n,
                    v: line,
                }));
                // Everything still to come has key >= item.k: releasing keys below it
                // keeps each line within the window of its event time.
                while let Some(Reverse(h)) = self.held.peek() {
                    if h.k >= item.k || self.stopped {
                        break;
                    }
                    if let Some(Reverse(h)) = self.held.pop() {
                        self.write_event(h.v)?;
                    }
                }
            } else {
                self.write_event(line)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> io::Result<()> {
        self.flush_until(i64::MAX)?;
        while let Some(Reverse(h)) = self.held.pop() {
            if self.stopped {
                break;
            }
            self.write_event(h.v)?;
        }
        while let Some(Reverse(d)) = self.deferred.pop() {
            if self.stopped {
                break;
            }
            self.write_raw(&d.v)?;
            self.summary.duplicates += 1;
        }
        self.w.flush()
    }

    fn next_seq(&mut self, instance: u8) -> u64 {
        let s = &mut self.seq[instance as usize & 1];
        *s += 1;
        *s
    }

    fn render(&mut self, t: i64, body: Body) -> Line {
        let mut b = Vec::with_capacity(640);
        let mut ix_ref = None;
        let mut publish = t;
        // Some(publishTime): this line must be an envelope published exactly then;
        // None: it never is one.
        let mut must_wrap: Option<Option<i64>> = None;
        match body {
            Body::Leg(ix, ev) => {
                let seq = self.next_seq(ix.instance);
                render::interaction(&mut b, &ix, &ev, seq, &self.tenant, &self.agent_ids);
                publish = ev.r + ev.d + 2;
                if ev.weak {
                    // The envelope's publishTime is the event's only time.
                    must_wrap = Some(Some(ev.r + ev.d));
                }
                ix_ref = Some(ix);
            }
            Body::Agent {
                agent,
                state,
                reason,
            } => {
                let instance = (agent & 1) as u8;
                let seq = self.next_seq(instance);
                let empty = self.rng.chance(0.04);
                let text = self.rng.chance(0.3);
                let mut untimed = self.q.untimed_agent_events && self.rng.chance(0.01);
                let id = self
                    .agent_ids
                    .get(agent as usize)
                    .map_or("", |p| p.0.as_str());
                let mut line = AgentLine {
                    agent_id: id,
                    state,
                    reason,
                    t,
                    has_msg: !(untimed || self.q.empty_msg_info && empty),
                    timed: !untimed,
                    text_state: self.q.mixed_types && text,
                    instance,
                    seq,
                    publish_ms: t + 1,
                };
                render::agent_status(&mut b, &line);
                // Without a time, the same change twice is the same payload, which
                // counts once: such a change keeps its time instead.
                if untimed && !self.untimed_seen.insert(b.clone()) {
                    untimed = false;
                    line.has_msg = !(self.q.empty_msg_info && empty);
                    line.timed = true;
                    b.clear();
                    render::agent_status(&mut b, &line);
                }
                if untimed {
                    // Any envelope would give it a time.
                    must_wrap = Some(None);
                }
            }
            Body::Prov { agent, queue } => {
                let instance = (agent & 1) as u8;
                let seq = self.next_seq(instance);
                let empty = self.rng.chance(0.5);
                let id = self
                    .agent_ids
                    .get(agent as usize)
                    .map_or("", |p| p.0.as_str());
                render::agent_prov(
                    &mut b,
                    &self.tenant,
                    id,
                    queue,
                    !(self.q.empty_msg_info && empty),
                    instance,
                    seq,
                    t,
                );
            }
            Body::Tick {
                queue,
                waiting,
                available,
                longest_wait_s,
            } => {
                let seq = self.next_seq(0);
                render::queue_tick(
                    &mut b,
                    &TickLine {
                        queue,
                        waiting,
                        available,
                        longest_wait_s,
                        t,
                        seq,
                    },
                );
            }
        }
        let bare_len = b.len();
        let chance = self.rng.chance(self.q.envelope_rate);
        let (wrap, publish) = match must_wrap {
            Some(Some(exact)) => (true, exact),
            Some(None) => (false, publish),
            None => (chance, publish + self.rng.range(0, 200)),
        };
        if wrap {
            self.entry += 1;
            let id = render::message_id(self.ledger, self.entry);
            let mut e = Vec::with_capacity(b.len() * 4 / 3 + 160);
            render::envelope(&mut e, &id, &b, publish);
            b = e;
        }
        Line {
            bytes: b,
            ix: ix_ref,
            envelope: wrap,
            bare_len,
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.w.write_all(bytes)?;
        self.w.write_all(b"\n")?;
        self.summary.lines += 1;
        if self.max_lines.is_some_and(|m| self.summary.lines >= m) {
            self.stopped = true;
        }
        Ok(())
    }

    fn write_event(&mut self, line: Line) -> io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.write_raw(&line.bytes)?;
        self.summary.events += 1;
        if line.envelope {
            self.summary.envelopes += 1;
        }
        if let Some(ix) = &line.ix {
            let left = ix.remaining.get().saturating_sub(1);
            ix.remaining.set(left);
            if left == 0 {
                if let Some(t) = ix.truth.borrow_mut().take() {
                    self.summary.interactions += 1;
                    (self.cb)(t);
                }
            }
        }
        if self.q.duplicate_rate > 0.0 && self.rng.chance(self.q.duplicate_rate) {
            if self.rng.chance(0.4) {
                self.write_raw(&line.bytes)?;
                self.summary.duplicates += 1;
            } else {
                let due = self.summary.lines + self.rng.range(1, 20_000) as u64;
                self.n += 1;
                self.deferred.push(Reverse(Keyed {
                    k: due as i64,
                    n: self.n,
                    v: line.bytes.clone(),
                }));
            }
        }
        if self.q.malformed_rate > 0.0 && self.rng.chance(self.q.malformed_rate) {
            let bad = self.malformed(&line);
            self.write_raw(&bad)?;
            self.summary.malformed += 1;
        }
        while let Some(Reverse(d)) = self.deferred.peek() {
            if d.k as u64 > self.summary.lines || self.stopped {
                break;
            }
            if let Some(Reverse(d)) = self.deferred.pop() {
                self.write_raw(&d.v)?;
                self.summary.duplicates += 1;
            }
        }
        Ok(())
    }

    /// A line ingest must quarantine: never valid JSON with a recognizable event.
    fn malformed(&mut self, line: &Line) -> Vec<u8> {
        match self.rng.below(5) {
            0 => {
                // A strict prefix of a JSON object is never valid JSON.
                let len = if line.envelope {
                    line.bytes.len()
                } else {
                    line.bare_len
                };
                let cut = self.rng.range(1, len.max(2) as i64) as usize;
                line.bytes[..cut.min(line.bytes.len())].to_vec()
            }
            1 => self.rng.pick(&GARBAGE).as_bytes().to_vec(),
            2 => {
                self.entry += 1;
                let id = render::message_id(self.ledger, self.entry);
                let mut b = Vec::new();
                render::envelope(&mut b, &id, b"", 0);
                // Replace the (empty) payload with text outside the base64 alphabet.
                let s = String::from_utf8_lossy(&b)
                    .replace("\"payload\":\"\"", "\"payload\":\"%%%not-base64%%%\"");
                s.into_bytes()
            }
            3 => {
                let mut b = b"{\"Interaction\":{\"callingName\":\"Jos".to_vec();
                b.push(0xE9); // Latin-1 e-acute: not UTF-8.
                b.extend_from_slice(b"\",\"event\":\"InteractionCreated\"}}");
                b
            }
            _ => {
                self.entry += 1;
                let id = render::message_id(self.ledger, self.entry);
                let mut b = Vec::new();
                render::envelope(&mut b, &id, b"not json inside", 0);
                b
            }
        }
    }
}
