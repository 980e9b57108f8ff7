//! Hand-written JSON for the event shapes of the samples. Keys are written in byte
//! order (as the samples are), values in the styles of the samples.

use base64::Engine as _;

use crate::model::{
    Kind, LegAttrs, PlannedEvent, QueueDef, DISP_TEXT, HANGUP_REASONS, INITIATORS, INIT_CUSTOMER,
    NO_AGENT, QUEUES,
};

pub(crate) const INSTANCES: [&str; 2] = ["uk3sapi02.example-sapi-v1", "uk3sapi03.example-sapi-v1"];

// `PlannedEvent::mix` bits (only set when the mixed-types quirk is on).
pub(crate) const M_TS_TEXT: u8 = 1;
pub(crate) const M_QUEUE_TEXT: u8 = 2;
pub(crate) const M_QUEUE_ZERO: u8 = 4;
pub(crate) const M_BOOL_TEXT: u8 = 8;
pub(crate) const M_BOOL_NUM: u8 = 16;
pub(crate) const M_NUM_TEXT: u8 = 32;

pub(crate) struct Obj<'b> {
    b: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Obj<'b> {
    pub(crate) fn open(b: &'b mut Vec<u8>) -> Self {
        b.push(b'{');
        Obj { b, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.b.push(b',');
        }
        self.first = false;
        self.b.push(b'"');
        self.b.extend_from_slice(k.as_bytes());
        self.b.extend_from_slice(b"\":");
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str(self.b, v);
    }

    pub(crate) fn int(&mut self, k: &str, v: i64, text: bool) {
        self.key(k);
        let mut f = itoa::Buffer::new();
        let s = f.format(v);
        if text {
            self.b.push(b'"');
            self.b.extend_from_slice(s.as_bytes());
            self.b.push(b'"');
        } else {
            self.b.extend_from_slice(s.as_bytes());
        }
    }

    /// `style`: 0 JSON boolean, 1 text, 2 number 1/0.
    pub(crate) fn boolean(&mut self, k: &str, v: bool, style: u8) {
        self.key(k);
        let s: &[u8] = match (style, v) {
            (1, true) => b"\"true\"",
            (1, false) => b"\"false\"",
            (2, true) => b"1",
            (2, false) => b"0",
            (_, true) => b"true",
            (_, false) => b"false",
        };
        self.b.extend_from_slice(s);
    }

    /// Opens a nested object or array value; the caller writes it and closes it.
    pub(crate) fn raw_key(&mut self, k: &str) -> &mut Vec<u8> {
        self.key(k);
        self.b
    }

    pub(crate) fn close(self) {
        self.b.push(b'}');
    }
}

pub(crate) fn push_str(b: &mut Vec<u8>, v: &str) {
    b.push(b'"');
    for &c in v.as_bytes() {
        match c {
            b'"' => b.extend_from_slice(b"\\\""),
            b'\\' => b.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                b.extend_from_slice(b"\\u00");
                b.push(HEX[(c >> 4) as usize]);
                b.push(HEX[(c & 15) as usize]);
            }
            _ => b.push(c),
        }
    }
    b.push(b'"');
}

fn datum_str(b: &mut Vec<u8>, first: &mut bool, k: &str, v: &str) {
    if !*first {
        b.push(b',');
    }
    *first = false;
    b.extend_from_slice(b"{\"attachedDataKey\":");
    push_str(b, k);
    b.extend_from_slice(b",\"attachedDataValue\":");
    push_str(b, v);
    b.push(b'}');
}

fn datum_int(b: &mut Vec<u8>, first: &mut bool, k: &str, v: i64) {
    if !*first {
        b.push(b',');
    }
    *first = false;
    b.extend_from_slice(b"{\"attachedDataKey\":");
    push_str(b, k);
    b.extend_from_slice(b",\"attachedDataValue\":");
    b.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    b.push(b'}');
}

fn msg_info(o: &mut Obj<'_>, has: bool, instance: u8, seq: u64, ts: i64) {
    let b = o.raw_key("msgInfo");
    if !has {
        b.extend_from_slice(b"{}");
        return;
    }
    b.extend_from_slice(b"{\"instanceId\":\"");
    b.extend_from_slice(INSTANCES[instance as usize & 1].as_bytes());
    b.extend_from_slice(b"\",\"sequenceId\":");
    b.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    b.extend_from_slice(b",\"timestamp\":");
    b.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
    b.push(b'}');
}

fn disposition(o: &mut Obj<'_>, d: i64, text: bool) {
    if d > 0 {
        o.int("dispositionCode", d, text);
    } else if d < 0 {
        if let Some(s) = DISP_TEXT.get((-d - 1) as usize) {
            o.str("dispositionCode", s);
        }
    }
}

/// One interaction event as shape 1 (`{"Interaction":{...}}`), no newline. Keys
/// go in byte order, so each piece below writes the keys of one topic and they
/// are called in the order of their first key.
pub(crate) fn interaction(
    b: &mut Vec<u8>,
    ix: &LegAttrs,
    ev: &PlannedEvent,
    seq: u64,
    tenant: &str,
    agents: &[(String, String)],
) {
    let q = &QUEUES[ix.queue as usize];
    let m = ev.mix;
    let k = ev.kind;
    let inbound = !ix.outbound;
    let sec = ev.r.div_euclid(1000);
    let agent = if ev.agent == NO_AGENT {
        None
    } else {
        agents.get(ev.agent as usize)
    };
    let bool_style = if m & M_BOOL_TEXT != 0 { 1 } else { 0 };
    let num_text = m & M_NUM_TEXT != 0;

    b.extend_from_slice(b"{\"Interaction\":");
    let mut o = Obj::open(b);
    if let Some((id, guid)) = agent {
        if k != Kind::FutureThing {
            o.str("agentGUID", guid);
        }
        o.str("agentId", id);
    }
    attached_data(&mut o, ix, ev, q, tenant);
    if k == Kind::Deleted {
        let reason = HANGUP_REASONS.get((ev.b & 0xff) as usize).copied();
        o.str(
            "callHangupReason",
            reason.unwrap_or("CEC_DISCONNECT_NORMAL"),
        );
    }
    let state = call_state(ix, ev);
    if !state.is_empty() {
        o.str("callState", state);
    }
    let dir = if ix.outbound { "out" } else { "in" };
    match k {
        // A consultation is neither: the feed gives it no direction.
        Kind::Queued | Kind::Assigned | Kind::Accepted if !ix.consult => o.str("direction", dir),
        Kind::CustomerAccepted => o.str("direction", "out"),
        _ => {}
    }
    match k {
        Kind::EndPostProcess => disposition(&mut o, ev.b, num_text),
        Kind::Deleted => disposition(&mut o, ev.b >> 8, num_text),
        _ => {}
    }
    o.str("event", k.name());
    if ev.weak
        || matches!(
            k,
            Kind::Queued | Kind::Assigned | Kind::Accepted | Kind::CustomerAccepted
        )
    {
        o.int("eventTS", ix.offer_sec.get(), m & M_TS_TEXT != 0);
    }
    if k == Kind::FutureThing {
        let b = o.raw_key("futureField");
        b.extend_from_slice(b"{\"kind\":\"preview\",\"version\":2}");
    }
    if k == Kind::Deleted {
        let init = INITIATORS.get(ev.a as usize).copied().unwrap_or("SYSTEM");
        o.str("hangupInitiator", init);
    }
    if ev.has_ts {
        o.int("interactionEventTS", sec, m & M_TS_TEXT != 0);
    }
    o.str("interactionGUID", &ix.guid);
    flags(&mut o, ix, k, bool_style);
    if !ix.no_media && k.carries_media_type() {
        o.str("mediaType", q.media);
    }
    msg_info(&mut o, ev.has_msg, ix.instance, seq, ev.r + ev.d);
    if ix.outbound && k == Kind::Assigned {
        o.int("outboundCampaignid", 4926, num_text);
    }
    if inbound && matches!(k, Kind::Assigned | Kind::Rejected) {
        if let Some((id, _)) = agent {
            o.str("participatingAgents", id);
        }
    }
    if k == Kind::Queued {
        o.int("priority", ix.priority, num_text);
    }
    if !ix.consult {
        queue_fields(&mut o, q, k, m, sec);
    }
    if k == Kind::Recording {
        o.str("recordingMode", "yes");
    }
    if k == Kind::Rejected {
        o.int("rejectReason", ev.a, num_text);
    }
    if k == Kind::Deleted {
        o.int("rejectReason", 0, num_text);
    }
    if k.carries_resource_type() {
        o.int("resourceType", ix.resource_type, num_text);
    }
    match k {
        Kind::LineHold => {
            let style = if m & M_BOOL_NUM != 0 { 2 } else { bool_style };
            o.boolean("status", ev.a != 0, style);
        }
        Kind::Recording => o.str("status", if ev.a != 0 { "pause" } else { "resume" }),
        _ => {}
    }
    if k == Kind::TransferRequest {
        let target = QUEUES.get(ev.b as usize).map_or(0, |t| t.id);
        o.int("targetQueueId", target, num_text);
    }
    if matches!(k, Kind::Queued | Kind::LineHold) {
        o.int("transactionNum", ix.txn as i64, num_text);
    }
    if k == Kind::TransferRequest {
        o.str("transferType", "blind");
    }
    o.close();
    b.push(b'}');
}

/// `attachedData`: the caller and the parent leg on creation, the routing data
/// on queueing, the caller again when the customer hangs up.
fn attached_data(o: &mut Obj<'_>, ix: &LegAttrs, ev: &PlannedEvent, q: &QueueDef, tenant: &str) {
    match ev.kind {
        Kind::Created => {
            let b = o.raw_key("attachedData");
            b.extend_from_slice(b"{\"attachedDatum\":[");
            let mut first = true;
            datum_int(b, &mut first, "@pri", 100);
            datum_str(b, &mut first, "callingName", &ix.caller);
            if let Some(orig) = &ix.parent {
                datum_str(b, &mut first, "originalInteractionGuid", orig);
            }
            datum_int(b, &mut first, "phoneNum", ix.phone as i64);
            b.extend_from_slice(b"]}");
        }
        Kind::Queued => {
            let b = o.raw_key("attachedData");
            b.extend_from_slice(b"{\"attachedDatum\":[");
            let mut first = true;
            datum_str(b, &mut first, "channelName", q.channel);
            let que = format!("{tenant}~~queue~~{}~~{}", q.media, q.id);
            datum_str(b, &mut first, "que", &que);
            let dir = if ix.outbound { "out" } else { "in" };
            datum_str(b, &mut first, "queueDirection", dir);
            datum_int(b, &mut first, "priority", ix.priority);
            datum_str(b, &mut first, "tenantSkillName", q.name);
            b.extend_from_slice(b"]}");
        }
        Kind::Deleted if ev.a == i64::from(INIT_CUSTOMER) => {
            let b = o.raw_key("attachedData");
            b.extend_from_slice(b"{\"attachedDatum\":[");
            let mut first = true;
            datum_str(b, &mut first, "callingName", &ix.caller);
            datum_int(b, &mut first, "phoneNum", ix.phone as i64);
            b.extend_from_slice(b"]}");
        }
        _ => {}
    }
}

/// `callState` as the platform reports it at this event; "" where it sends none.
fn call_state(ix: &LegAttrs, ev: &PlannedEvent) -> &'static str {
    match ev.kind {
        Kind::Created if ix.outbound => "CS_IDLE",
        Kind::Created | Kind::Queued | Kind::Rejected => "CS_QUEUED",
        Kind::Assigned => "CS_INPROGRESS",
        Kind::Accepted if ix.outbound => "CS_INPROGRESS",
        Kind::Accepted | Kind::CustomerAccepted | Kind::TransferRequest => "CS_CONNECTED",
        Kind::LineHold if ev.a != 0 => "CS_HOLD",
        Kind::LineHold => "CS_CONNECTED",
        Kind::Unqueued => "CS_IDLE",
        Kind::PostProcess | Kind::EndPostProcess | Kind::Deassigned | Kind::Deleted => {
            "CS_DISCONNECTED"
        }
        Kind::Recording | Kind::FutureThing => "",
    }
}

/// The `is...` booleans (`isAPICall` .. `isQueued`).
fn flags(o: &mut Obj<'_>, ix: &LegAttrs, k: Kind, bool_style: u8) {
    if k == Kind::Recording {
        o.boolean("isAPICall", false, 1);
    }
    if !ix.outbound && matches!(k, Kind::Queued | Kind::Assigned) {
        o.boolean("isAgentInitiated", false, bool_style);
    }
    if ix.outbound && matches!(k, Kind::Queued | Kind::Assigned | Kind::CustomerAccepted) {
        o.boolean("isOutboundCall", true, bool_style);
    }
    if k == Kind::Deleted {
        o.boolean("isQueued", false, bool_style);
    }
}

/// `queueId` (sometimes as text, sometimes zero-padded), `queueList`, `queueTime`.
fn queue_fields(o: &mut Obj<'_>, q: &QueueDef, k: Kind, m: u8, sec: i64) {
    if k.carries_queue_id() {
        if m & M_QUEUE_TEXT != 0 {
            let s = if m & M_QUEUE_ZERO != 0 {
                format!("0{}", q.id)
            } else {
                q.id.to_string()
            };
            o.str("queueId", &s);
        } else {
            o.int("queueId", q.id, false);
        }
    }
    if matches!(k, Kind::Queued | Kind::Rejected) {
        o.int("queueList", q.id, m & M_NUM_TEXT != 0);
    }
    if k == Kind::Queued {
        o.int("queueTime", sec, m & M_TS_TEXT != 0);
    }
}

pub(crate) struct AgentLine<'a> {
    pub agent_id: &'a str,
    pub state: i64,
    pub reason: &'a str,
    pub t: i64,
    pub has_msg: bool,
    /// `statusEventTS` written (an untimed change has neither it nor `msgInfo`).
    pub timed: bool,
    pub text_state: bool,
    pub instance: u8,
    pub seq: u64,
    pub publish_ms: i64,
}

pub(crate) fn agent_status(b: &mut Vec<u8>, a: &AgentLine<'_>) {
    b.extend_from_slice(b"{\"AgentStatusChange\":");
    let mut o = Obj::open(b);
    o.str("agentId", a.agent_id);
    msg_info(&mut o, a.has_msg, a.instance, a.seq, a.publish_ms);
    o.str("newReasonCodeUser", a.reason);
    o.int("newState", a.state, a.text_state);
    o.str("newSubState", "none");
    o.str("newSubStateReason", "none");
    if a.timed {
        o.int("statusEventTS", a.t.div_euclid(1000), false);
    }
    o.close();
    b.push(b'}');
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn agent_prov(
    b: &mut Vec<u8>,
    tenant: &str,
    agent_id: &str,
    queue: u8,
    has_msg: bool,
    instance: u8,
    seq: u64,
    publish_ms: i64,
) {
    let q = &QUEUES[queue as usize];
    b.extend_from_slice(b"{\"AgentProvChange\":");
    let mut o = Obj::open(b);
    o.str("agentId", agent_id);
    o.str("enabled", "yes");
    o.str("event", "AgentSkillChanged");
    msg_info(&mut o, has_msg, instance, seq, publish_ms);
    o.str(
        "skillId",
        &format!("{tenant}-{agent_id}-{}-{}-7d1c", q.media, q.id),
    );
    o.str(
        "tenantSkillId",
        &format!("{tenant}-{}-{}-7d1c", q.media, q.id),
    );
    o.close();
    b.push(b'}');
}

pub(crate) struct TickLine {
    pub queue: u8,
    pub waiting: u64,
    pub available: u64,
    pub longest_wait_s: i64,
    pub t: i64,
    pub seq: u64,
}

pub(crate) fn queue_tick(b: &mut Vec<u8>, tick: &TickLine) {
    let q = &QUEUES[tick.queue as usize];
    b.extend_from_slice(b"{\"QueueStatsTick\":");
    let mut o = Obj::open(b);
    o.int("agentsAvailable", tick.available as i64, false);
    o.int("longestWaitSec", tick.longest_wait_s, false);
    o.str("mediaType", q.media);
    msg_info(&mut o, true, 0, tick.seq, tick.t);
    o.int("queueId", q.id, false);
    o.int("tickTS", tick.t.div_euclid(1000), false);
    o.int("waiting", tick.waiting as i64, false);
    o.close();
    b.push(b'}');
}

/// Pulsar WebSocket message around `payload` (shape 2).
pub(crate) fn envelope(b: &mut Vec<u8>, message_id: &[u8], payload: &[u8], publish_ms: i64) {
    let eng = base64::engine::general_purpose::STANDARD;
    b.extend_from_slice(b"{\"messageId\":\"");
    b.extend_from_slice(eng.encode(message_id).as_bytes());
    b.extend_from_slice(b"\",\"payload\":\"");
    b.extend_from_slice(eng.encode(payload).as_bytes());
    b.extend_from_slice(b"\",\"properties\":{},\"publishTime\":\"");
    iso_ms(b, publish_ms);
    b.extend_from_slice(b"\",\"redeliveryCount\":0}");
}

/// A Pulsar `MessageIdData` protobuf: ledgerId, entryId, partition, batchIndex.
pub(crate) fn message_id(ledger: u64, entry: u64) -> Vec<u8> {
    fn varint(b: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }
    let mut b = Vec::with_capacity(16);
    b.push(0x08);
    varint(&mut b, ledger);
    b.push(0x10);
    varint(&mut b, entry);
    b.extend_from_slice(&[0x18, 0x00, 0x20, 0x00]);
    b
}

/// `2025-11-23T12:13:20.000Z`.
pub(crate) fn iso_ms(b: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    );
    b.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        let mut b = Vec::new();
        iso_ms(&mut b, 1_763_900_000_000);
        assert_eq!(b, b"2025-11-23T12:13:20.000Z");
        b.clear();
        iso_ms(&mut b, crate::DEFAULT_START_MS + 1);
        assert_eq!(b, b"2025-11-24T00:00:00.001Z");
    }

    #[test]
    fn message_id_is_long_enough() {
        assert!(message_id(1, 1).len() >= 8);
    }
}
