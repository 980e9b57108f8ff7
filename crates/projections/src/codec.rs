//! The one place that knows the stored encoding of projection values.
//!
//! Invariants: values are bincode 2 (`config::standard()`, serde path) of
//! types that never omit a field, so a decode either yields exactly what was
//! encoded or fails; it never panics on bad bytes. Changing anything here
//! changes the on-disk format and must bump `PROJECTION_VERSION`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::contact::opens_contact;
use crate::report::ReportLeg;
use crate::summary::{Anomaly, Direction, LegKind, Outcome, Summary};

/// A value that could not be encoded, or stored bytes that do not decode:
/// the file they were read from is damaged (or written by a build whose
/// encoding differs), which its reader reports as such.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("projection codec: {0}")]
    Encode(String),
    #[error("{0}")]
    Decode(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the encoding of `value` to `buf` (cleared first), so hot loops
/// reuse one buffer.
fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    buf.clear();
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(|_| ())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a whole value; trailing bytes are an error (a sign of a format
/// mismatch, not something to ignore).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(describe(&e)))?;
    if used != bytes.len() {
        return Err(CodecError::Decode(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// The stored form of a [`Summary`] in `interactions_by_offered`: only what
/// the row's key `(offeredAt, interactionGUID)` does not already say. A
/// stored summary is one leg's own (`contactId` = its GUID, `legIndex` 0;
/// the store resolves both when it reads), so neither is kept. Every
/// instant is kept as its distance from `offeredAt`, and instants and
/// durations are packed by [`pack_ms`]: mostly 1 or 3 bytes instead of 9
/// for an epoch in milliseconds.
#[derive(Serialize, Deserialize)]
struct StoredSummary {
    /// `None` when `interactionGUID` is the key's GUID (always, for rows the
    /// projections write); kept otherwise so nothing is lost.
    other_guid: Option<Option<String>>,
    parent_guid: Option<String>,
    kind: LegKind,
    tenant: Text,
    media_type: Text,
    queue_id: Option<i64>,
    direction: Option<Direction>,
    /// Instants, `t - offeredAt` (wrapping, so every i64 round-trips), packed:
    /// created, queued, accepted, assigned, connected, wrap start, wrap end, ended.
    instants: [u128; 8],
    offer_count: u64,
    reject_count: u64,
    reject_timeouts: u64,
    reject_refusals: u64,
    agent_id: Option<String>,
    hold_count: u64,
    /// hold, max hold, queue, ring, wait, dial, talk, wrap, handle, abandon,
    /// packed.
    durations: [u128; 10],
    outcome: Outcome,
    hangup_initiator: Text,
    call_hangup_reason: Text,
    disposition_code: Option<String>,
    transferred: bool,
    complete: bool,
    event_count: u64,
    anomalies: Vec<Anomaly>,
}

/// A decoding failure in words (bincode's own text is its `Debug`).
fn describe(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { additional } => format!("the value ends {additional} bytes early"),
        E::Utf8 { inner } => format!("a text is not UTF-8 ({inner})"),
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!("{found} is not a {type_name}"),
        E::InvalidBooleanValue(b) => format!("{b} is not a boolean"),
        other => format!("{other:?}"),
    }
}

/// Encodes the summary stored under `(summary.offered_at, guid)` into `buf`
/// (cleared first). Fails on a summary that is not one leg's own (a
/// resolved `contactId` or `legIndex` is never stored).
pub fn encode_summary(guid: &str, summary: Summary, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    if summary.contact_id != summary.interaction_guid || summary.leg_index != 0 {
        return Err(CodecError::Encode(format!(
            "summary of {guid}: only a leg's own contactId and legIndex are stored"
        )));
    }
    let at = summary.offered_at;
    let rel = |t: Option<i64>| pack_ms(t.map(|t| t.wrapping_sub(at)));
    let stored = StoredSummary {
        other_guid: (summary.interaction_guid.as_deref() != Some(guid))
            .then_some(summary.interaction_guid),
        parent_guid: summary.parent_guid,
        kind: summary.kind,
        tenant: Text::of(summary.tenant, guid),
        media_type: Text::of(summary.media_type, guid),
        queue_id: summary.queue_id,
        direction: summary.direction,
        instants: [
            rel(summary.created_at),
            rel(summary.queued_at),
            rel(summary.accepted_at),
            rel(summary.assigned_at),
            rel(summary.connected_at),
            rel(summary.wrap_start_at),
            rel(summary.wrap_end_at),
            rel(summary.ended_at),
        ],
        offer_count: summary.offer_count,
        reject_count: summary.reject_count,
        reject_timeouts: summary.reject_timeouts,
        reject_refusals: summary.reject_refusals,
        agent_id: summary.agent_id,
        hold_count: summary.hold_count,
        durations: [
            summary.hold_ms,
            summary.max_hold_ms,
            summary.queue_ms,
            summary.ring_ms,
            summary.wait_ms,
            summary.dial_ms,
            summary.talk_ms,
            summary.wrap_ms,
            summary.handle_ms,
            summary.abandon_ms,
        ]
        .map(pack_ms),
        outcome: summary.outcome,
        hangup_initiator: Text::of(summary.hangup_initiator, guid),
        call_hangup_reason: Text::of(summary.call_hangup_reason, guid),
        disposition_code: summary.disposition_code,
        transferred: summary.transferred,
        complete: summary.complete,
        event_count: summary.event_count,
        anomalies: summary.anomalies,
    };
    encode_into(&stored, buf)
}

/// Decodes the summary stored under `(offered_at, guid)`: the inverse of
/// [`encode_summary`].
pub fn decode_summary(guid: &str, offered_at: i64, bytes: &[u8]) -> Result<Summary, CodecError> {
    let s: StoredSummary = decode(bytes)?;
    let abs = |t: Option<i64>| t.map(|t| t.wrapping_add(offered_at));
    let [created_at, queued_at, accepted_at, assigned_at, connected_at, wrap_start_at, wrap_end_at, ended_at] =
        unpack_all(s.instants)?.map(abs);
    let [hold_ms, max_hold_ms, queue_ms, ring_ms, wait_ms, dial_ms, talk_ms, wrap_ms, handle_ms, abandon_ms] =
        unpack_all(s.durations)?;
    let interaction_guid = s.other_guid.unwrap_or_else(|| Some(guid.to_owned()));
    Ok(Summary {
        contact_id: interaction_guid.clone(),
        leg_index: 0,
        interaction_guid,
        parent_guid: s.parent_guid,
        kind: s.kind,
        tenant: s.tenant.text(guid)?,
        media_type: s.media_type.text(guid)?,
        queue_id: s.queue_id,
        direction: s.direction,
        created_at,
        queued_at,
        offered_at,
        offer_count: s.offer_count,
        reject_count: s.reject_count,
        reject_timeouts: s.reject_timeouts,
        reject_refusals: s.reject_refusals,
        accepted_at,
        assigned_at,
        agent_id: s.agent_id,
        connected_at,
        wrap_start_at,
        wrap_end_at,
        ended_at,
        hold_count: s.hold_count,
        hold_ms,
        max_hold_ms,
        queue_ms,
        ring_ms,
        wait_ms,
        dial_ms,
        talk_ms,
        wrap_ms,
        handle_ms,
        abandon_ms,
        outcome: s.outcome,
        hangup_initiator: s.hangup_initiator.text(guid)?,
        call_hangup_reason: s.call_hangup_reason.text(guid)?,
        disposition_code: s.disposition_code,
        transferred: s.transferred,
        complete: s.complete,
        event_count: s.event_count,
        anomalies: s.anomalies,
    })
}

/// What `report_chunks` keeps of a stored summary: its [`ReportLeg`], the
/// texts owned ([`StoredLeg::leg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLeg {
    leg: ReportLeg<'static>,
    agent_id: Option<String>,
    media_type: Option<String>,
}

impl StoredLeg {
    pub fn leg(&self) -> ReportLeg<'_> {
        ReportLeg {
            agent_id: self.agent_id.as_deref(),
            media_type: self.media_type.as_deref(),
            ..self.leg
        }
    }
}

/// The leg of the summary stored under `(offered_at, guid_key)`: what
/// [`decode_summary`] would give, seen as a report sees a stored leg (its
/// `legIndex` unresolved, so whether it opens its contact is told by its
/// parent: none, or itself). Built without the rest of the summary: the
/// GUID is decoded only when the leg needs it (a parent to compare, a
/// channel stored as the GUID's suffix), and texts the leg does not hold
/// are not resolved. Encoding the chunks of a 10M rebuild from whole
/// summaries was ~1.2 s on one core (docs/BENCHMARKS.md, issue 12).
pub fn decode_report_leg(
    guid_key: &[u8],
    offered_at: i64,
    bytes: &[u8],
) -> Result<StoredLeg, CodecError> {
    let s: StoredSummary = decode(bytes)?;
    unpack_all(s.instants)?;
    let [hold_ms, max_hold_ms, _queue, _ring, wait_ms, _dial, talk_ms, wrap_ms, handle_ms, abandon_ms] =
        unpack_all(s.durations)?;
    let needs_guid = (s.parent_guid.is_some() && s.other_guid.is_none())
        || matches!(s.media_type, Text::GuidSuffix);
    let key_guid = if needs_guid {
        decode_guid(guid_key, offered_at)?
    } else {
        String::new()
    };
    let first_leg = match (&s.other_guid, &s.parent_guid) {
        (_, None) | (Some(None), _) => true,
        (Some(Some(own)), Some(parent)) => opens_contact(own, Some(parent)),
        (None, Some(parent)) => opens_contact(&key_guid, Some(parent)),
    };
    Ok(StoredLeg {
        leg: ReportLeg {
            offered_at,
            kind: s.kind,
            outcome: s.outcome,
            direction: s.direction,
            first_leg,
            has_parent: s.parent_guid.is_some(),
            transferred: s.transferred,
            queue_id: s.queue_id,
            agent_id: None,
            media_type: None,
            wait_ms,
            abandon_ms,
            handle_ms,
            talk_ms,
            hold_ms,
            wrap_ms,
            max_hold_ms,
            hold_count: s.hold_count,
            reject_count: s.reject_count,
        },
        agent_id: s.agent_id,
        media_type: s.media_type.text(&key_guid)?,
    })
}

/// A chunk of [`ReportLeg`]s in `report_chunks` (docs/FORMAT.md §4) is
/// written by hand, not by bincode: a report decodes every leg of the
/// archive, and a varint loop is several times cheaper than serde's
/// visitors. Its bytes: the number of texts, each text (length, UTF-8),
/// the first leg's `offeredAt` (zigzag), the number of legs, then per leg
/// `offeredAt` minus the previous leg's (wrapping), one byte `kind` * 8 +
/// `outcome`, one byte of [`Bits`], `queueId` (zigzag) when present, the
/// agent and the channel (index into the texts plus 1, 0 for none),
/// `holdCount`, `rejectCount` and seven durations packed by [`pack_ms`]
/// (wait, abandon, handle, talk, hold, wrap, max hold). Every number is an
/// unsigned LEB128 varint.
struct Bits;

impl Bits {
    /// `direction`: 0 none, 1 in, 2 out.
    const DIRECTION: u8 = 3;
    const FIRST_LEG: u8 = 4;
    const HAS_PARENT: u8 = 8;
    const TRANSFERRED: u8 = 16;
    const HAS_QUEUE: u8 = 32;
    const ALL: u8 = 63;
}

/// By code: the inverse of the matches in [`encode_report_chunk`].
const KINDS: [LegKind; 4] = [
    LegKind::Inbound,
    LegKind::Outbound,
    LegKind::Consult,
    LegKind::Unqueued,
];
const OUTCOMES: [Outcome; 5] = [
    Outcome::Answered,
    Outcome::Abandoned,
    Outcome::Unanswered,
    Outcome::Ended,
    Outcome::Open,
];

/// Encodes `legs` (any order; a chunk keeps it) as one `report_chunks`
/// value into `buf` (cleared first).
pub fn encode_report_chunk<'a>(
    legs: &[ReportLeg<'a>],
    buf: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let mut words: Vec<&'a str> = Vec::new();
    let mut index: std::collections::HashMap<&'a str, u32> = std::collections::HashMap::new();
    let mut word = |w: Option<&'a str>| -> u32 {
        let Some(w) = w else { return 0 };
        *index.entry(w).or_insert_with(|| {
            words.push(w);
            words.len() as u32
        })
    };
    let mut body = Vec::with_capacity(legs.len() * 24);
    let first_at = legs.first().map_or(0, |l| l.offered_at);
    let mut prev = first_at;
    for l in legs {
        // Exhaustive, so a new variant fails to compile until it has a code
        // (appended to KINDS / OUTCOMES, with a version bump).
        let kind: u8 = match l.kind {
            LegKind::Inbound => 0,
            LegKind::Outbound => 1,
            LegKind::Consult => 2,
            LegKind::Unqueued => 3,
        };
        let outcome: u8 = match l.outcome {
            Outcome::Answered => 0,
            Outcome::Abandoned => 1,
            Outcome::Unanswered => 2,
            Outcome::Ended => 3,
            Outcome::Open => 4,
        };
        let direction = match l.direction {
            None => 0,
            Some(Direction::In) => 1,
            Some(Direction::Out) => 2,
        };
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        put_varint(
            &mut body,
            u128::from(l.offered_at.wrapping_sub(prev) as u64),
        );
        body.push(kind * 8 + outcome);
        body.push(
            direction
                | flag(l.first_leg, Bits::FIRST_LEG)
                | flag(l.has_parent, Bits::HAS_PARENT)
                | flag(l.transferred, Bits::TRANSFERRED)
                | flag(l.queue_id.is_some(), Bits::HAS_QUEUE),
        );
        if let Some(q) = l.queue_id {
            put_varint(&mut body, zigzag(q));
        }
        put_varint(&mut body, u128::from(word(l.agent_id)));
        put_varint(&mut body, u128::from(word(l.media_type)));
        put_varint(&mut body, u128::from(l.hold_count));
        put_varint(&mut body, u128::from(l.reject_count));
        for d in [
            l.wait_ms,
            l.abandon_ms,
            l.handle_ms,
            l.talk_ms,
            l.hold_ms,
            l.wrap_ms,
            l.max_hold_ms,
        ] {
            put_varint(&mut body, pack_ms(d));
        }
        prev = l.offered_at;
    }
    buf.clear();
    put_varint(buf, words.len() as u128);
    for w in &words {
        put_varint(buf, w.len() as u128);
        buf.extend_from_slice(w.as_bytes());
    }
    put_varint(buf, zigzag(first_at));
    put_varint(buf, legs.len() as u128);
    buf.extend_from_slice(&body);
    Ok(())
}

/// Decodes a `report_chunks` value, the inverse of
/// [`encode_report_chunk`]: calls `f` with each leg in turn, without
/// collecting them (a report folds millions; the legs borrow their texts
/// from `bytes`). The legs before a damaged byte are passed before the
/// error is returned.
pub fn for_each_report_leg<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(ReportLeg<'a>),
) -> Result<(), CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let n_words = r.count()?;
    let mut words = Vec::with_capacity(n_words.min(bytes.len()));
    for _ in 0..n_words {
        let len = r.count()?;
        let raw = r.take(len)?;
        words.push(
            std::str::from_utf8(raw)
                .map_err(|_| CodecError::Decode("report chunk: a text is not UTF-8".into()))?,
        );
    }
    let word = |i: u128| -> Result<Option<&str>, CodecError> {
        if i == 0 {
            return Ok(None);
        }
        usize::try_from(i - 1)
            .ok()
            .and_then(|i| words.get(i))
            .map(|w| Some(*w))
            .ok_or_else(|| CodecError::Decode(format!("report chunk: no text {i}")))
    };
    let mut at = unzigzag(r.varint()?)?;
    let n_legs = r.count()?;
    for _ in 0..n_legs {
        let delta = u64::try_from(r.varint()?).map_err(|_| r.bad("offeredAt"))?;
        at = at.wrapping_add(delta as i64);
        let ko = r.byte()?;
        let (Some(kind), Some(outcome)) = (
            KINDS.get(usize::from(ko / 8)),
            OUTCOMES.get(usize::from(ko % 8)),
        ) else {
            return Err(r.bad("kind and outcome"));
        };
        let bits = r.byte()?;
        let direction = match bits & Bits::DIRECTION {
            0 => None,
            1 => Some(Direction::In),
            2 => Some(Direction::Out),
            _ => return Err(r.bad("direction")),
        };
        if bits & !Bits::ALL != 0 {
            return Err(r.bad("flags"));
        }
        let queue_id = if bits & Bits::HAS_QUEUE != 0 {
            Some(unzigzag(r.varint()?)?)
        } else {
            None
        };
        let agent_id = word(r.varint()?)?;
        let media_type = word(r.varint()?)?;
        let hold_count = u64::try_from(r.varint()?).map_err(|_| r.bad("holdCount"))?;
        let reject_count = u64::try_from(r.varint()?).map_err(|_| r.bad("rejectCount"))?;
        let mut d = [None; 7];
        for slot in &mut d {
            *slot = unpack_ms(r.varint()?)?;
        }
        let [wait_ms, abandon_ms, handle_ms, talk_ms, hold_ms, wrap_ms, max_hold_ms] = d;
        f(ReportLeg {
            offered_at: at,
            kind: *kind,
            outcome: *outcome,
            direction,
            first_leg: bits & Bits::FIRST_LEG != 0,
            has_parent: bits & Bits::HAS_PARENT != 0,
            transferred: bits & Bits::TRANSFERRED != 0,
            queue_id,
            agent_id,
            media_type,
            wait_ms,
            abandon_ms,
            handle_ms,
            talk_ms,
            hold_ms,
            wrap_ms,
            max_hold_ms,
            hold_count,
            reject_count,
        });
    }
    if r.pos != bytes.len() {
        return Err(CodecError::Decode(format!(
            "{} trailing bytes after a report chunk",
            bytes.len() - r.pos
        )));
    }
    Ok(())
}

/// Appends `v` as an unsigned LEB128 varint.
fn put_varint(buf: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn zigzag(v: i64) -> u128 {
    u128::from(((v << 1) ^ (v >> 63)) as u64)
}

fn unzigzag(u: u128) -> Result<i64, CodecError> {
    let z = u64::try_from(u).map_err(|_| CodecError::Decode(format!("{u} is not a zigzag i64")))?;
    Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// A cursor over a report chunk's bytes; every read checks the length.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &str) -> CodecError {
        CodecError::Decode(format!("report chunk: bad {what} at byte {}", self.pos))
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.bad("length"))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint of at most 19 bytes (128 bits).
    fn varint(&mut self) -> Result<u128, CodecError> {
        // Most values of a leg are one byte.
        if let Some(&b) = self.bytes.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u128::from(b));
            }
        }
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("varint"))
    }

    fn count(&mut self) -> Result<usize, CodecError> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| self.bad("count"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.bad("length"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
}

/// An optional millisecond value as one unsigned varint: 0 for none; whole
/// seconds (most 8x8 times are) as `1 + 2 * zigzag(v / 1000)`; anything
/// else as `2 + 2 * zigzag(v)`. A wait of 45 s is one byte, a leg of an
/// hour three; every i64 still round-trips (hence u128).
fn pack_ms(v: Option<i64>) -> u128 {
    match v {
        None => 0,
        Some(v) if v % 1000 == 0 => 1 + 2 * zigzag(v / 1000),
        Some(v) => 2 + 2 * zigzag(v),
    }
}

/// The inverse of [`pack_ms`]; an encoding no `pack_ms` gives is an error.
fn unpack_ms(u: u128) -> Result<Option<i64>, CodecError> {
    let bad = || CodecError::Decode(format!("{u} is not a packed millisecond value"));
    if u == 0 {
        return Ok(None);
    }
    let z = u64::try_from((u - 1) / 2).map_err(|_| bad())?;
    let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
    if u % 2 == 1 {
        // Whole seconds.
        v.checked_mul(1000).map(Some).ok_or_else(bad)
    } else if v % 1000 == 0 {
        Err(bad())
    } else {
        Ok(Some(v))
    }
}

fn unpack_all<const N: usize>(packed: [u128; N]) -> Result<[Option<i64>; N], CodecError> {
    let mut out = [None; N];
    for (slot, u) in out.iter_mut().zip(packed) {
        *slot = unpack_ms(u)?;
    }
    Ok(out)
}

/// Values of the short text fields that most legs share, stored as their
/// index. Part of the format: only appended to, with a `PROJECTION_VERSION`
/// bump.
const WORDS: [&str; 14] = [
    "phone",
    "chat",
    "email",
    "voicemail",
    "sms",
    "social",
    "CUSTOMER",
    "AGENT",
    "SYSTEM",
    "CEC_DISCONNECT_NORMAL",
    "CEC_DISCONNECT_BUSY",
    "CEC_DISCONNECT_NOANSWER",
    "CEC_DISCONNECT_ABANDON",
    "CEC_DISCONNECT_TRANSFER",
];

/// An optional text field as stored: a common word by its index in
/// [`WORDS`], the tenant that ends the row's GUID by reference (8x8 GUIDs end
/// in `-<tenant>`), anything else spelled out.
#[derive(Serialize, Deserialize)]
enum Text {
    Absent,
    Word(u8),
    GuidSuffix,
    Own(String),
}

impl Text {
    fn of(value: Option<String>, guid: &str) -> Text {
        let Some(v) = value else {
            return Text::Absent;
        };
        if let Some(i) = WORDS.iter().position(|w| *w == v) {
            // WORDS has fewer than 256 entries.
            return Text::Word(i as u8);
        }
        if guid_suffix(guid) == Some(v.as_str()) {
            return Text::GuidSuffix;
        }
        Text::Own(v)
    }

    fn text(self, guid: &str) -> Result<Option<String>, CodecError> {
        match self {
            Text::Absent => Ok(None),
            Text::Word(i) => WORDS
                .get(usize::from(i))
                .map(|w| Some((*w).to_owned()))
                .ok_or_else(|| CodecError::Decode(format!("unknown word {i}"))),
            Text::GuidSuffix => guid_suffix(guid)
                .map(|t| Some(t.to_owned()))
                .ok_or_else(|| CodecError::Decode(format!("{guid} has no -suffix"))),
            Text::Own(s) => Ok(Some(s)),
        }
    }
}

/// What follows the last `-` of a GUID, when there is such a part.
fn guid_suffix(guid: &str) -> Option<&str> {
    guid.rsplit_once('-')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

/// One part of a [`STATUS_LAYOUT`]: bytes the payload must have there, or
/// a value the stored form keeps.
#[derive(Clone, Copy)]
enum Slot {
    Lit(&'static [u8]),
    /// The row key's `agentId`, spelled as in the key: nothing stored.
    Agent,
    /// A JSON string's bytes between its quotes, verbatim; `none` is
    /// stored as one byte.
    Text,
    /// A decimal integer as JSON writes it, stored as the zigzag varint of
    /// its distance from the row's t(e) divided by `div` (1 for
    /// milliseconds, 1000 for seconds: a byte or two, not 10 to 13 digits;
    /// 0 for a number unrelated to the time, stored as it is).
    Int {
        div: i64,
    },
}

/// The layout of an `AgentStatusChange` as the 8x8 feed writes it (keys in
/// this order, no spaces): a payload of exactly this shape is stored as
/// its values (~36 bytes instead of ~270), any other one verbatim. Part of
/// the format: changing it needs a `PROJECTION_VERSION` bump.
const STATUS_LAYOUT: [Slot; 19] = [
    Slot::Lit(br#"{"AgentStatusChange":{"agentId":""#),
    Slot::Agent,
    Slot::Lit(br#"","msgInfo":{"instanceId":""#),
    Slot::Text,
    Slot::Lit(br#"","sequenceId":"#),
    Slot::Int { div: 0 },
    Slot::Lit(br#","timestamp":"#),
    Slot::Int { div: 1 },
    Slot::Lit(br#"},"newReasonCodeUser":""#),
    Slot::Text,
    Slot::Lit(br#"","newState":"#),
    Slot::Int { div: 0 },
    Slot::Lit(br#","newSubState":""#),
    Slot::Text,
    Slot::Lit(br#"","newSubStateReason":""#),
    Slot::Text,
    Slot::Lit(br#"","statusEventTS":"#),
    Slot::Int { div: 1000 },
    Slot::Lit(b"}}"),
];

/// The tag of a stored status payload: what follows it.
const STATUS_VERBATIM: u8 = 0;
const STATUS_VALUES: u8 = 1;

/// The base an [`Slot::Int`] is stored relative to: `div` 0 is no base.
fn int_base(time_ms: i64, div: i64) -> i64 {
    if div == 0 {
        0
    } else {
        time_ms.div_euclid(div)
    }
}

/// The text [`Slot::Text`] stores as one byte.
const STATUS_NONE: &[u8] = b"none";

/// Encodes the payload of the `agent_status` row `(agent, time_ms, _)` into
/// `buf` (cleared first): its values when it has [`STATUS_LAYOUT`]'s
/// shape, else verbatim. [`decode_status_payload`] gives back the same
/// bytes either way (checked here before the short form is kept).
pub fn encode_status_payload(agent: &str, time_ms: i64, raw: &[u8], buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(STATUS_VALUES);
    if status_values(agent, time_ms, raw, buf).is_some() {
        let mut check = Vec::with_capacity(raw.len());
        if decode_status_payload(agent, time_ms, buf, &mut check).is_ok() && check == raw {
            return;
        }
    }
    buf.clear();
    buf.push(STATUS_VERBATIM);
    buf.extend_from_slice(raw);
}

/// Appends the values of `raw` read against [`STATUS_LAYOUT`]; `None`
/// when `raw` has another shape.
fn status_values(agent: &str, time_ms: i64, raw: &[u8], buf: &mut Vec<u8>) -> Option<()> {
    let mut rest = raw;
    let int = |rest: &mut &[u8], div: i64, buf: &mut Vec<u8>| -> Option<()> {
        let len = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(len);
        let v: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        // Only the spelling `to_string` gives back (no `+`, `-0` or
        // leading zeros) is stored as a number.
        if v.to_string().as_bytes() != digits {
            return None;
        }
        put_varint(buf, zigzag(v.wrapping_sub(int_base(time_ms, div))));
        *rest = after;
        Some(())
    };
    for slot in STATUS_LAYOUT {
        match slot {
            Slot::Lit(lit) => rest = rest.strip_prefix(lit)?,
            Slot::Agent => rest = rest.strip_prefix(agent.as_bytes())?,
            Slot::Text => {
                let len = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
                let (text, after) = rest.split_at(len);
                if text == STATUS_NONE {
                    buf.push(0);
                } else {
                    put_varint(buf, text.len() as u128 + 1);
                    buf.extend_from_slice(text);
                }
                rest = after;
            }
            Slot::Int { div } => int(&mut rest, div, buf)?,
        }
    }
    rest.is_empty().then_some(())
}

/// Writes into `out` (cleared first) the payload [`encode_status_payload`]
/// stored as `bytes` for the row `(agent, time_ms, _)`.
pub fn decode_status_payload(
    agent: &str,
    time_ms: i64,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    out.clear();
    let mut r = Reader { bytes, pos: 0 };
    match r.byte()? {
        STATUS_VERBATIM => {
            out.extend_from_slice(r.take(bytes.len() - 1)?);
            return Ok(());
        }
        STATUS_VALUES => {}
        tag => {
            return Err(CodecError::Decode(format!(
                "status payload: unknown tag {tag}"
            )))
        }
    }
    let int = |r: &mut Reader<'_>, div: i64, out: &mut Vec<u8>| -> Result<(), CodecError> {
        let v = unzigzag(r.varint()?)?.wrapping_add(int_base(time_ms, div));
        out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    };
    for slot in STATUS_LAYOUT {
        match slot {
            Slot::Lit(lit) => out.extend_from_slice(lit),
            Slot::Agent => out.extend_from_slice(agent.as_bytes()),
            Slot::Text => match r.count()? {
                0 => out.extend_from_slice(STATUS_NONE),
                n => out.extend_from_slice(r.take(n - 1)?),
            },
            Slot::Int { div } => int(&mut r, div, out)?,
        }
    }
    if r.pos != bytes.len() {
        return Err(CodecError::Decode(format!(
            "status payload: {} trailing bytes",
            bytes.len() - r.pos
        )));
    }
    Ok(())
}

/// The tag of a stored GUID (the second part of an
/// `interactions_by_offered` key): what follows it.
const GUID_VERBATIM: u8 = 0;
const GUID_PACKED: u8 = 1;

/// The 6-bit code of a byte a packed GUID may hold (1..=63, in ASCII
/// order; 0 is the padding that ends the packed text).
fn sextet(b: u8) -> Option<u32> {
    Some(u32::from(match b {
        b'-' => 1,
        b'0'..=b'9' => b - b'0' + 2,
        b'A'..=b'Z' => b - b'A' + 12,
        b'a'..=b'z' => b - b'a' + 38,
        _ => return None,
    }))
}

/// The byte of each 6-bit code (the inverse of [`sextet`]; code 0, the
/// padding, has none).
const SEXTETS: &[u8; 64] = b"\0-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn unsextet(code: u32) -> Option<u8> {
    match code {
        0 => None,
        c => SEXTETS.get(c as usize).copied(),
    }
}

/// Encodes `guid` as the second part of the `interactions_by_offered` key
/// `(offered_at, _)` into `buf` (cleared first). A GUID of the 8x8 shape
/// `int-<hex>-<rest>` (`<hex>` the lowercase hex of a u64 without leading
/// zeros, as the feed writes the creation time in ms; `<rest>` of `-`,
/// digits and ASCII letters) is packed: its number as the zigzag varint of
/// its distance from `offered_at` (wrapping), then `<rest>` 6 bits a
/// character ([`sextet`]), zero-padded to a byte: ~39 bytes instead of
/// ~63. Any other GUID is kept verbatim. [`decode_guid`] gives back the
/// same text either way (the shape is exactly what unpacks to itself: the
/// tests check it, as this runs for every row a rebuild writes), and the
/// encoding is a function of the GUID and `offered_at` alone, so a
/// lookup encodes the GUID it looks for. Packed keys do not sort as their
/// GUIDs do: readers sort the rows of one `offeredAt` by GUID.
pub fn encode_guid(guid: &str, offered_at: i64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(GUID_PACKED);
    if pack_guid(guid, offered_at, buf).is_some() {
        return;
    }
    buf.clear();
    buf.push(GUID_VERBATIM);
    buf.extend_from_slice(guid.as_bytes());
}

/// Appends the packed form of `guid`; `None` when it has another shape.
fn pack_guid(guid: &str, offered_at: i64, buf: &mut Vec<u8>) -> Option<()> {
    let (hex, rest) = guid.strip_prefix("int-")?.split_once('-')?;
    // What `{:x}` prints for a u64: 1 to 16 lowercase digits, no leading 0.
    if hex.is_empty()
        || hex.len() > 16
        || (hex.len() > 1 && hex.starts_with('0'))
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let created = u64::from_str_radix(hex, 16).ok()?;
    put_varint(buf, zigzag(created.wrapping_sub(offered_at as u64) as i64));
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in rest.bytes() {
        acc = (acc << 6) | sextet(b)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            buf.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits > 0 {
        buf.push((acc << (8 - bits)) as u8);
    }
    Some(())
}

/// Decodes the GUID [`encode_guid`] stored as `bytes` in the key
/// `(offered_at, _)`. Bytes [`encode_guid`] would not have written for
/// it (an unknown tag, text that is not UTF-8, a bad varint or padding) are
/// an error naming the byte.
pub fn decode_guid(bytes: &[u8], offered_at: i64) -> Result<String, CodecError> {
    let bad =
        |what: &str, at: usize| CodecError::Decode(format!("stored GUID: bad {what} at byte {at}"));
    match bytes.first() {
        Some(&GUID_VERBATIM) => {
            return std::str::from_utf8(&bytes[1..])
                .map(str::to_owned)
                .map_err(|e| bad("UTF-8", 1 + e.valid_up_to()));
        }
        Some(&GUID_PACKED) => {}
        _ => return Err(bad("tag", 0)),
    }
    let mut r = Reader { bytes, pos: 1 };
    let delta = r
        .varint()
        .and_then(unzigzag)
        .map_err(|_| bad("varint", 1))?;
    // The shortest varint only: a last byte of 0 would spell it longer.
    if r.pos > 2 && bytes.get(r.pos - 1) == Some(&0) {
        return Err(bad("varint", r.pos - 1));
    }
    let created = (offered_at as u64).wrapping_add(delta as u64);
    let mut out: Vec<u8> = Vec::with_capacity(22 + bytes.len() * 4 / 3);
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_fmt(&mut out, format_args!("int-{created:x}-"));
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut ended = false;
    for (i, &b) in bytes.iter().enumerate().skip(r.pos) {
        if ended {
            return Err(bad("padding", i));
        }
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            let code = acc >> bits;
            acc &= (1 << bits) - 1;
            match unsextet(code) {
                Some(c) => out.push(c),
                // Code 0: six bits of padding, which end the last byte.
                None if bits == 0 => ended = true,
                None => return Err(bad("padding", i)),
            }
        }
    }
    // The bits below the last character are padding: all 0.
    if acc != 0 {
        return Err(bad("padding", bytes.len() - 1));
    }
    // ASCII only was written, so this never fails.
    String::from_utf8(out).map_err(|e| bad("UTF-8", e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod status_tests {
    use super::*;
    use proptest::prelude::*;

    const FEED: &str = r#"{"AgentStatusChange":{"agentId":"agMpopYKQYlh54FDjf5CpTo","msgInfo":{"instanceId":"uk3sapi03.example-sapi-v1","sequenceId":6804,"timestamp":1763966469450},"newReasonCodeUser":"none","newState":1,"newSubState":"none","newSubStateReason":"none","statusEventTS":1763966469}}"#;
    const AGENT: &str = "agMpopYKQYlh54FDjf5CpTo";

    fn round_trip(agent: &str, time_ms: i64, raw: &[u8]) -> Vec<u8> {
        let mut stored = Vec::new();
        encode_status_payload(agent, time_ms, raw, &mut stored);
        let mut back = Vec::new();
        decode_status_payload(agent, time_ms, &stored, &mut back).unwrap();
        assert_eq!(back, raw, "{}", String::from_utf8_lossy(raw));
        stored
    }

    #[test]
    fn the_feeds_shape_is_stored_as_its_values() {
        let stored = round_trip(AGENT, 1_763_966_469_000, FEED.as_bytes());
        assert_eq!(stored[0], STATUS_VALUES);
        // Tag, instance id (26), sequence id (2), `timestamp` 450 ms after
        // t(e) (2), `statusEventTS` at t(e) (1), three `none`s, the state:
        // 36 bytes for 270.
        assert_eq!(stored.len(), 36, "{stored:?}");
        // Any t(e) (a weak one, or none at all) round-trips too.
        for t in [0, -1, i64::MIN, i64::MAX, 1_763_966_469_450] {
            assert_eq!(round_trip(AGENT, t, FEED.as_bytes())[0], STATUS_VALUES);
        }
        let other = FEED
            .replace(
                r#""newReasonCodeUser":"none""#,
                r#""newReasonCodeUser":"801=1722""#,
            )
            .replace(r#""newState":1"#, r#""newState":-5"#);
        assert_eq!(round_trip(AGENT, 7, other.as_bytes())[0], STATUS_VALUES);
    }

    #[test]
    fn any_other_payload_is_stored_verbatim() {
        let cases = [
            // Another agent than the key's, another key order, spaces.
            FEED.replace(AGENT, "ag1"),
            FEED.replace(r#""newState":1,"newSubState""#, r#""newSubState""#),
            FEED.replace(r#""newState":1"#, r#""newState": 1"#),
            // Numbers not spelled as Rust prints them, or too large.
            FEED.replace(r#""newState":1"#, r#""newState":01"#),
            FEED.replace(r#""newState":1"#, r#""newState":-0"#),
            FEED.replace(r#""newState":1"#, r#""newState":"1""#),
            FEED.replace(
                r#""sequenceId":6804"#,
                r#""sequenceId":99999999999999999999"#,
            ),
            // An escape in a text, trailing bytes, a cut payload.
            FEED.replace("uk3sapi03", r#"uk3\"sapi03"#),
            format!("{FEED}\n"),
            FEED[..FEED.len() - 1].to_owned(),
            String::new(),
        ];
        for raw in cases {
            let stored = round_trip(AGENT, 1_763_966_469_000, raw.as_bytes());
            assert_eq!(stored[0], STATUS_VERBATIM, "{raw}");
            assert_eq!(&stored[1..], raw.as_bytes());
        }
    }

    #[test]
    fn a_damaged_value_is_an_error() {
        let mut stored = Vec::new();
        encode_status_payload(AGENT, 0, FEED.as_bytes(), &mut stored);
        let mut out = Vec::new();
        // Nothing, an unknown tag, a value cut short.
        for bad in [&[][..], &[2][..], &stored[..stored.len() - 1]] {
            assert!(decode_status_payload(AGENT, 0, bad, &mut out).is_err());
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(decode_status_payload(AGENT, 0, &longer, &mut out).is_err());
    }

    proptest! {
        #[test]
        fn every_payload_round_trips(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            time_ms in any::<i64>(),
            state in any::<i64>(),
            text in "[ -~]{0,12}",
        ) {
            round_trip(AGENT, time_ms, &raw);
            let shaped = FEED
                .replace(r#""newState":1"#, &format!(r#""newState":{state}"#))
                .replace("uk3sapi03", &text);
            round_trip(AGENT, time_ms, shaped.as_bytes());
        }
    }
}

#[cfg(test)]
mod guid_tests {
    use super::*;
    use proptest::prelude::*;

    /// A GUID as the simulator (and the 8x8 feed) writes them.
    const GUID: &str = "int-19ab6a2f3c1-Qx7bK2mN9pL4rT8vW1yZ3cF6h-phone-00-northwind01";
    const AT: i64 = 0x19ab6a2f3c1 + 2_500;

    fn round_trip(guid: &str, at: i64) -> Vec<u8> {
        let mut stored = Vec::new();
        encode_guid(guid, at, &mut stored);
        assert_eq!(decode_guid(&stored, at).unwrap(), guid);
        stored
    }

    #[test]
    fn the_feeds_shape_is_packed() {
        let stored = round_trip(GUID, AT);
        assert_eq!(stored[0], GUID_PACKED);
        // Tag, a 2.5 s distance (2 bytes), 46 characters in 35 bytes.
        assert_eq!(stored.len(), 38, "{stored:?}");
        // Any offeredAt round-trips, however far from the GUID's time.
        for at in [0, -1, i64::MIN, i64::MAX] {
            assert_eq!(round_trip(GUID, at)[0], GUID_PACKED);
        }
        // Every length of the rest (each padding) and an empty rest.
        for n in 0..12 {
            let guid = format!("int-1f-{}", &"a-Z09zA-"[..n.min(8)].repeat(1 + n / 8));
            assert_eq!(round_trip(&guid, 5)[0], GUID_PACKED, "{guid}");
        }
    }

    #[test]
    fn any_other_guid_is_kept_verbatim() {
        for guid in [
            "",
            "int-",
            "int-1f",
            "int--x",
            "int-01f-x",
            "int-1F-x",
            "int-12345678901234567-x",
            "int-1f-under_score",
            "int-1f-space x",
            "int-1f-ünï",
            "8f14e45f-ceea-467f-a8f4-3b1b6d0c3f2a",
        ] {
            let stored = round_trip(guid, AT);
            assert_eq!(stored[0], GUID_VERBATIM, "{guid}");
            assert_eq!(&stored[1..], guid.as_bytes());
        }
    }

    #[test]
    fn a_damaged_value_is_an_error() {
        let mut stored = Vec::new();
        encode_guid(GUID, AT, &mut stored);
        let mut trailing = stored.clone();
        trailing.push(0);
        let mut stray = stored.clone();
        // The last byte ends in padding bits; set one.
        *stray.last_mut().unwrap() |= 1;
        // The same distance in a varint one byte longer.
        let mut long_varint = vec![GUID_PACKED, stored[1], stored[2] | 0x80, 0];
        long_varint.extend_from_slice(&stored[3..]);
        for bad in [
            &[][..],
            &[2][..],
            &[GUID_PACKED][..],
            &[GUID_PACKED, 0x80][..],
            &[GUID_VERBATIM, 0xff][..],
            &trailing[..],
            &stray[..],
            &long_varint[..],
        ] {
            let e = decode_guid(bad, AT).unwrap_err().to_string();
            assert!(e.contains("at byte"), "{bad:?}: {e}");
        }
    }

    proptest! {
        #[test]
        fn every_guid_round_trips(
            guid in "\\PC{0,70}",
            rest in "[-0-9A-Za-z_]{0,60}",
            created in any::<u64>(),
            at in any::<i64>(),
        ) {
            round_trip(&guid, at);
            round_trip(&format!("int-{created:x}-{rest}"), at);
        }

        #[test]
        fn no_bytes_panic(bytes in proptest::collection::vec(any::<u8>(), 0..60), at in any::<i64>()) {
            if let Ok(guid) = decode_guid(&bytes, at) {
                // A packed value decodes only when it is the packing of
                // what it decodes to: one stored form a GUID.
                if bytes.first() == Some(&GUID_PACKED) {
                    let mut again = Vec::new();
                    encode_guid(&guid, at, &mut again);
                    prop_assert_eq!(again, bytes);
                }
            }
        }

        #[test]
        fn packed_bytes_decode_only_as_packed(
            rest in proptest::collection::vec(any::<u8>(), 0..40),
            at in any::<i64>(),
        ) {
            let mut bytes = vec![GUID_PACKED, 0];
            bytes.extend_from_slice(&rest);
            if let Ok(guid) = decode_guid(&bytes, at) {
                let mut again = Vec::new();
                encode_guid(&guid, at, &mut again);
                prop_assert_eq!(again, bytes);
            }
        }
    }
}
