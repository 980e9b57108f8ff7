//! An event's fields read straight from the payload bytes, without serde:
//! the fast path of [`crate::parse_event`] for the plain shape every
//! archived event has.
//!
//! Invariants:
//! - [`scan_event`] either gives the same [`Event`] as
//!   [`crate::parse_event_serde`] (every field of [`EventBody`], strings
//!   borrowed from the payload), or `None` ("not sure"), and the caller
//!   parses with serde. So what is accepted, what is refused and the
//!   reason given are serde's alone; `tests/fuzz.rs` checks the agreement
//!   over the fuzz seeds, their mutations, generated events and a simulated
//!   feed with its quirks.
//! - It answers only for the plain shape: a document that is one object with
//!   one key (not `payload`, `type`, `messageId`, `publishTime` or
//!   `ClientCheck`, which serde's reader treats apart) whose value is an
//!   object, valid JSON throughout (checked here as serde_json checks it:
//!   the grammar, control characters in strings, nesting depth, nothing
//!   after the value), no backslash in any string (an escaped key or value
//!   would need decoding; outside strings one breaks the grammar), integers
//!   within `i64` (a fraction, an exponent or a larger number needs
//!   serde_json's float reading). Anything else is `None`.
//! - The body's fields are filled by the one key list serde's visitor uses
//!   (`EventBody::scalar_mut`, `MsgInfo::field_mut`); a repeated key keeps
//!   its last value, `attachedData` its last present original GUID.
//! - Why: parsing every event through serde's visitors was a quarter of a
//!   rebuild's CPU and a fifth of the Parquet export's (docs/BENCHMARKS.md);
//!   this reads each value once and skips the rest of the bytes.

use std::borrow::Cow;

use crate::event::{Event, EventBody, MsgInfo, OriginalGuids, ORIGINAL_GUID_KEY};
use crate::value::Lenient;

/// Containers deeper than this are left to serde: well under serde_json's
/// limit (128), so a document read here never fails there.
const MAX_DEPTH: usize = 64;

/// The event of a payload in the plain shape, or `None` when only serde
/// can say (see the module's invariants).
pub fn scan_event(payload: &[u8]) -> Option<Event<'_>> {
    let mut event = Event::default();
    scan_event_into(payload, &mut event).then_some(event)
}

/// [`scan_event`] into `out`, whatever it held (a caller parsing many
/// events reuses one, instead of moving each ~0.9 KB event out: those
/// copies were a tenth of a rebuild's parse, issue 12). `false` when only
/// serde can say; `out` then holds part of the event.
pub(crate) fn scan_event_into<'a>(payload: &'a [u8], out: &mut Event<'a>) -> bool {
    scan_into(payload, out).is_some()
}

fn scan_into<'a>(payload: &'a [u8], out: &mut Event<'a>) -> Option<()> {
    // The payload is not checked as UTF-8 first: every byte outside a
    // string is matched as ASCII by the grammar, and each string is checked
    // as it is read ([`Scanner::string`]), so a payload read here is UTF-8
    // (that pass over every byte was ~3 % of a Parquet export, issue 14).
    let mut s = Scanner {
        bytes: payload,
        at: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    let family = s.string()?;
    if matches!(
        family,
        "payload" | "type" | "messageId" | "publishTime" | "ClientCheck"
    ) {
        return None;
    }
    s.ws();
    s.eat(b':')?;
    s.ws();
    s.body(&mut out.body)?;
    s.ws();
    s.eat(b'}')?;
    s.ws();
    if s.at != s.bytes.len() {
        return None;
    }
    out.family = Cow::Borrowed(family);
    Some(())
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A word of eight bytes `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of each byte of `word` that is below `n` (`n` <= 0x80), or
/// of a later byte after one that is: the lowest set bit is always a byte
/// below `n`, which is all [`string_end`] asks.
fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(splat(n)) & !word & splat(0x80)
}

/// Where the string that starts at `bytes[0]` (past its opening quote)
/// ends: the position of the first byte that is a quote, a backslash or a
/// control character, if that byte is the quote; `None` when it is one of
/// the others (an escape to decode, or a raw control character, which
/// serde_json refuses) or there is none. With it, whether every byte before
/// it is ASCII. One pass over each string that finds its end and checks its
/// bytes at once, where the payload was searched for backslashes and
/// control characters, then each string for its quote (issue 12), and
/// checked as UTF-8 whole (issue 14); sixteen bytes at a time where SSE2
/// is there, eight in a `u64` elsewhere ([`string_end_words`]), the two
/// checked against each other by the tests.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn string_end(bytes: &[u8]) -> Option<(usize, bool)> {
    // Sixteen bytes at a time, which the strings of an event mostly fit
    // in. At the first byte above 0x7f, or for the last bytes of the
    // payload, the words below take over.
    let mut at = 0;
    while let Some(block) = bytes.get(at..at + 16) {
        let mask = stops16(block.try_into().ok()?);
        if mask != 0 {
            let stop = at + mask.trailing_zeros() as usize;
            return match *bytes.get(stop)? {
                b'"' => Some((stop, true)),
                b if b >= 0x80 => {
                    let (len, _) = string_end_words(bytes.get(stop..)?)?;
                    Some((stop + len, false))
                }
                _ => None,
            };
        }
        at += 16;
    }
    let (len, ascii) = string_end_words(bytes.get(at..)?)?;
    Some((at + len, ascii))
}

/// A bit for each byte of `block` that is a quote, a backslash, a control
/// character or above 0x7f (one signed compare finds the last two: bytes
/// above 0x7f are negative as `i8`): three compares for sixteen bytes,
/// where the words below take about as many operations for eight (the
/// strings were half of the event scan's instructions, issue 14).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn stops16(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is enabled for this build (the `cfg` above; every
    // x86_64 has it), which is all these intrinsics need, and the load
    // reads the 16 bytes of `block`, unaligned loads allowed.
    #[allow(unsafe_code)]
    let mask = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let stops = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
            ),
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
        );
        _mm_movemask_epi8(stops)
    };
    mask as u32
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn string_end(bytes: &[u8]) -> Option<(usize, bool)> {
    string_end_words(bytes)
}

/// [`string_end`] eight bytes at a time, in a `u64`: the whole search
/// where SSE2 is not, and the rest of a string after its first byte above
/// 0x7f or in the last fifteen bytes of the payload where it is.
fn string_end_words(bytes: &[u8]) -> Option<(usize, bool)> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    // The high bits of the bytes passed.
    let mut high = 0u64;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let stops = bytes_below(w ^ splat(b'"'), 1)
            | bytes_below(w ^ splat(b'\\'), 1)
            | bytes_below(w, 0x20);
        if stops != 0 {
            let before = stops.trailing_zeros() / 8;
            // The bytes of this word before the stop (the low ones).
            high |= w & !(u64::MAX << (8 * before));
            at += before as usize;
            let ascii = high & splat(0x80) == 0;
            return (bytes.get(at) == Some(&b'"')).then_some((at, ascii));
        }
        high |= w;
        at += 8;
    }
    let rest = words.remainder();
    let stop = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let ascii = high & splat(0x80) == 0 && rest.get(..stop).is_some_and(<[u8]>::is_ascii);
    (rest.get(stop) == Some(&b'"')).then_some((at + stop, ascii))
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        // Archived events mostly have no whitespace between tokens: a byte
        // above the space is the common answer, in one compare (the four
        // compares of every call were 5 % of the scan's instructions).
        while self
            .peek()
            .is_some_and(|b| b <= b' ' && matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, borrowed; `None`
    /// when it is not UTF-8. Inlined: the call's register saves and
    /// restores were a fifth of its instructions (issue 14).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let (len, ascii) = string_end(self.bytes.get(start..)?)?;
        let end = start + len;
        self.at = end + 1;
        let bytes = self.bytes.get(start..end)?;
        if !ascii {
            return std::str::from_utf8(bytes).ok();
        }
        // SAFETY: `string_end` saw the high bit of none of these bytes, and
        // bytes below 0x80 are each a character of UTF-8.
        #[allow(unsafe_code)]
        let text = unsafe { std::str::from_utf8_unchecked(bytes) };
        Some(text)
    }

    /// An integer within `i64`, by JSON's grammar (no leading zeros).
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.at;
        // Accumulated as the digits are read, not parsed again after, and
        // without a check a digit: nineteen digits fit a `u64` (below
        // 10^19 < 2^64), and more are never within `i64`; which of the
        // nineteen-digit ones are is settled once, at the end (the checked
        // steps a digit were 4 % of the scan's instructions, issue 14).
        let mut magnitude = 0u64;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.at += 1;
        }
        let n = self.at - digits;
        let leading_zero = n > 1 && self.bytes.get(digits) == Some(&b'0');
        if n == 0 || n > 19 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let v = if negative {
            // Down to `i64::MIN`, whose magnitude is one more than `i64::MAX`.
            0i64.checked_sub_unsigned(magnitude)?
        } else {
            i64::try_from(magnitude).ok()?
        };
        // serde_json reads `-0` as a float (-0.0), which renders as "-0".
        (v != 0 || digits == start).then_some(v)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A scalar or nested value as `Lenient` reads it. `depth`: the
    /// containers around it.
    fn value(&mut self, depth: usize) -> Option<Lenient<'a>> {
        let mut v = Lenient::Null;
        self.value_into(depth, &mut v)?;
        Some(v)
    }

    /// [`Scanner::value`] stored in `out`, a field of the event: returned
    /// and then copied there, each value stalled the copy on the writes
    /// that had just made it (issue 12). On `None`, `out` may hold anything.
    /// Inlined, with the containers apart ([`Scanner::nested`]): a call
    /// per value, its registers saved and restored, was 2 % of the scan's
    /// instructions (issue 14).
    #[inline(always)]
    fn value_into(&mut self, depth: usize, out: &mut Lenient<'a>) -> Option<()> {
        *out = match self.peek()? {
            b'"' => Lenient::Text(Cow::Borrowed(self.string()?)),
            b't' => {
                self.literal(b"true")?;
                Lenient::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Lenient::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Lenient::Null
            }
            b'{' | b'[' => {
                self.nested(depth)?;
                Lenient::Nested
            }
            _ => Lenient::Int(self.integer()?),
        };
        Some(())
    }

    /// An object or an array, its values read and dropped. `depth`: the
    /// containers around it.
    #[inline(never)]
    fn nested(&mut self, depth: usize) -> Option<()> {
        if depth + 1 > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.members(|s, _| s.value(depth + 1).map(drop)),
            _ => self.elements(|s| s.value(depth + 1).map(drop)),
        }
    }

    /// Reads an object: `member` reads the value of each key.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.sequence(b'{', b'}', |s| {
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            member(s, key)
        })
    }

    /// Reads an array: `element` reads each value.
    fn elements(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', element)
    }

    /// Reads `open`, items separated by commas, then `close`.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                c if c == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The family's object, into `b` (emptied first). The top-level object
    /// and the body are the two containers around the body's values.
    fn body(&mut self, b: &mut EventBody<'a>) -> Option<()> {
        if self.peek()? != b'{' {
            // Not an event; serde's reader says why.
            return None;
        }
        *b = EventBody::default();
        self.members(|s, key| {
            if let Some(slot) = b.scalar_mut(key) {
                s.value_into(2, slot)?;
            } else if key == "msgInfo" {
                s.msg_info(&mut b.msg_info)?;
            } else if key == "attachedData" {
                let found = s.attached_data()?;
                b.attached_original_guids.extend(found);
            } else {
                s.value(2)?;
            }
            Some(())
        })
    }

    /// `msgInfo`, into `m` (emptied first): anything but an object reads
    /// as empty.
    fn msg_info(&mut self, m: &mut MsgInfo<'a>) -> Option<()> {
        *m = MsgInfo::default();
        if self.peek()? != b'{' {
            return self.value(2).map(drop);
        }
        self.members(|s, key| match m.field_mut(key) {
            Some(slot) => s.value_into(3, slot),
            None => s.value(3).map(drop),
        })
    }

    /// `attachedData`: the values of its `attachedDatum` original GUIDs;
    /// any other shape reads as absent.
    fn attached_data(&mut self) -> Option<OriginalGuids<'a>> {
        let mut found = OriginalGuids::default();
        if self.peek()? != b'{' {
            self.value(2)?;
            return Some(found);
        }
        self.members(|s, key| {
            if key == "attachedDatum" {
                found.extend(s.datums()?);
            } else {
                s.value(3)?;
            }
            Some(())
        })?;
        Some(found)
    }

    /// `attachedDatum`: a list of entries (their original GUIDs) or one
    /// entry; anything else reads as absent.
    fn datums(&mut self) -> Option<OriginalGuids<'a>> {
        let mut found = OriginalGuids::default();
        match self.peek()? {
            b'[' => self.elements(|s| {
                found.note(s.datum(4)?);
                Some(())
            })?,
            b'{' => found.note(self.datum(3)?),
            _ => {
                self.value(3)?;
            }
        }
        Some(found)
    }

    /// One entry: its `attachedDataValue` when its `attachedDataKey` is the
    /// original GUID's text, else absent. `depth`: the containers around it.
    fn datum(&mut self, depth: usize) -> Option<Lenient<'a>> {
        if self.peek()? != b'{' {
            return self.value(depth).map(|_| Lenient::Null);
        }
        let (mut key, mut value) = (Lenient::Null, Lenient::Null);
        self.members(|s, k| {
            let v = s.value(depth + 1)?;
            match k {
                "attachedDataKey" => key = v,
                "attachedDataValue" => value = v,
                _ => {}
            }
            Some(())
        })?;
        let wanted = matches!(&key, Lenient::Text(k) if k == ORIGINAL_GUID_KEY);
        Some(if wanted { value } else { Lenient::Null })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event_serde;

    /// `scan_event` agrees with serde's reader whenever it answers;
    /// returns whether it answered.
    fn agrees(payload: &[u8]) -> bool {
        let Some(fast) = scan_event(payload) else {
            return false;
        };
        let full = parse_event_serde(payload).unwrap_or_else(|e| {
            panic!(
                "scan_event read {:?}, which serde refuses: {e}",
                String::from_utf8_lossy(payload)
            )
        });
        assert_eq!(fast, full, "{}", String::from_utf8_lossy(payload));
        true
    }

    proptest::proptest! {
        /// The sixteen-byte search finds the same end, and says the same of
        /// the bytes before it, as the eight-byte words, wherever quotes,
        /// backslashes, control characters and bytes above 0x7f fall
        /// against the blocks and the end of the input.
        #[test]
        fn string_end_by_blocks_agrees_with_the_words(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![
                    b'a', b'"', b'\\', 0x00, 0x1f, b' ', 0x7f, 0x80, 0xa9, 0xc3, 0xff,
                ]),
                0..80,
            ),
            plain in 0usize..40,
        ) {
            // Mostly plain bytes first, as in real strings, so that the stop
            // falls in any block.
            let mut input = vec![b'x'; plain];
            input.extend_from_slice(&bytes);
            proptest::prop_assert_eq!(string_end(&input), string_end_words(&input));
        }
    }

    proptest::proptest! {
        /// Every `i64` is read, as serde reads it; any other run of digits
        /// is read as serde reads it or left to serde.
        #[test]
        fn integers_are_read_as_serde_reads_them(
            n in proptest::num::i64::ANY,
            digits in "-?[0-9]{1,22}",
        ) {
            let p = format!("{{\"Interaction\":{{\"eventTS\":{n}}}}}");
            proptest::prop_assert!(n == 0 || agrees(p.as_bytes()), "not read: {}", p);
            let p = format!("{{\"Interaction\":{{\"eventTS\":{digits}}}}}");
            agrees(p.as_bytes());
        }
    }

    #[test]
    fn reads_the_plain_shapes_as_serde() {
        for p in [
            r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1-acme","agentId":"ag","interactionEventTS":1763900100,"msgInfo":{"timestamp":1763900100123,"sequenceId":7},"extra":{"deep":[1,2,{"x":null}],"e":[]},"f":-3,"g":true,"h":false,"i":"é"}}"#,
            r#" { "Interaction" : { "event" : "X" , "interactionEventTS" : "0170" , "eventTS":5 } } "#,
            r#"{"AgentStatusChange":{"agentId":"a","statusEventTS":"12","msgInfo":[1]}}"#,
            r#"{"Interaction":{"event":1234,"interactionGUID":true,"agentId":{"a":1},"msgInfo":"x"}}"#,
            r#"{"Interaction":{"event":"A","event":"B","msgInfo":{"timestamp":5},"msgInfo":{}}}"#,
            r#"{"Interaction":{"interactionGUID":"","agentId":null,"eventTS":-5}}"#,
            r#"{"Interaction":{}}"#,
            "{\"Interaction\":{\"event\":\"X\"}}\n",
            // Every kept field, with the objects read apart.
            r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"g","agentId":7,"queueId":"0311","mediaType":"chat","direction":"in","isOutboundCall":"true","status":1,"callState":"CS_QUEUED","hangupInitiator":"c","callHangupReason":"x","dispositionCode":3,"rejectReason":4,"newState":5,"newSubState":6,"newReasonCodeUser":"r","interactionEventTS":1,"statusEventTS":2,"eventTS":3,"msgInfo":{"timestamp":4,"sequenceId":5,"instanceId":"i","other":[{}]},"resourceType":2,"originalInteractionGuid":"o"}}"#,
            r#"{"Interaction":{"resourceType":2,"attachedData":{"attachedDatum":[{"attachedDataKey":"@pri","attachedDataValue":100},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-parent"},{"attachedDataValue":"x"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":""}],"other":1},"originalInteractionGuid":"int-body"}}"#,
            r#"{"Interaction":{"attachedData":{"attachedDatum":{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"int-p"}},"attachedData":{"attachedDatum":[]}}}"#,
            // Several original GUIDs: the first, and the first other one.
            r#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"k"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"k"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"p"},{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"q"}]},"attachedData":{"attachedDatum":{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"r"}}}}"#,
            r#"{"Interaction":{"attachedData":{"attachedDatum":{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"k"},"attachedDatum":[{"attachedDataKey":"originalInteractionGuid","attachedDataValue":7}]}}}"#,
            r#"{"Interaction":{"attachedData":{"attachedDatum":{"attachedDataValue":5,"attachedDataKey":"originalInteractionGuid","attachedDataKey":"originalInteractionGuid"},"attachedDatum":"s"}}}"#,
            r#"{"Interaction":{"event":"X","attachedData":[1,2]}}"#,
            r#"{"Interaction":{"event":"X","attachedData":{"attachedDatum":"s"}}}"#,
            r#"{"Interaction":{"event":"X","attachedData":{"attachedDatum":[null,true,[{}],{"attachedDataKey":7,"attachedDataValue":"v"}]}}}"#,
            r#"{"Interaction":{"attachedData":null,"msgInfo":true}}"#,
            // The ends of `i64`, read as the digits come.
            r#"{"Interaction":{"eventTS":9223372036854775807,"statusEventTS":-9223372036854775808,"interactionEventTS":-170,"agentId":0}}"#,
        ] {
            assert!(agrees(p.as_bytes()), "not read: {p}");
        }
    }

    #[test]
    fn parsing_into_a_used_event_leaves_nothing_of_it() {
        let full = r#"{"Interaction":{"event":"InteractionCreated","interactionGUID":"g","agentId":7,"queueId":"0311","status":1,"msgInfo":{"timestamp":4,"sequenceId":5,"instanceId":"i"},"attachedData":{"attachedDatum":{"attachedDataKey":"originalInteractionGuid","attachedDataValue":"p"}},"resourceType":2}}"#;
        let small = r#"{"AgentStatusChange":{"agentId":"a","msgInfo":{"sequenceId":9}}}"#;
        let odd = r#"{"Interaction":{"event":"A\u0042","eventTS":1.5}}"#;
        let broken = r#"{"Interaction":{"event":"InteractionCreated","agentId":"#;
        let mut event = Event::default();
        for p in [full, small, full, odd, broken, small, full] {
            let into = crate::event::parse_event_into(p.as_bytes(), &mut event);
            match crate::event::parse_event(p.as_bytes()) {
                Ok(alone) => {
                    assert_eq!(into, Ok(()), "{p}");
                    assert_eq!(event, alone, "{p}");
                }
                Err(e) => assert_eq!(into, Err(e), "{p}"),
            }
        }
    }

    #[test]
    fn leaves_every_doubtful_document_to_serde() {
        for p in [
            // Escapes, floats, big numbers, leading zeros.
            r#"{"Interaction":{"event":"A\u0042"}}"#,
            r#"{"Interaction":{"eventTS":1.5}}"#,
            r#"{"Interaction":{"eventTS":1e3}}"#,
            r#"{"Interaction":{"eventTS":99999999999999999999}}"#,
            r#"{"Interaction":{"eventTS":9223372036854775808}}"#,
            r#"{"Interaction":{"eventTS":-9223372036854775809}}"#,
            r#"{"Interaction":{"eventTS":012}}"#,
            r#"{"Interaction":{"agentId":-0}}"#,
            // Not one family object.
            r#"{"Interaction":{},"Other":{}}"#,
            r#"{"Interaction":5}"#,
            r#"{"payload":{}}"#,
            r#"{"type":{}}"#,
            r#"{"ClientCheck":{}}"#,
            r#"{}"#,
            r#"[]"#,
            // Broken JSON.
            r#"{"Interaction":{"event":"X"}"#,
            r#"{"Interaction":{"event":"X"}} x"#,
            r#"{"Interaction":{"event":"X",}}"#,
            r#"{"Interaction":{"event" "X"}}"#,
            r#"{"Interaction":{"a":[1,]}}"#,
            r#"{"Interaction":{"a":tru}}"#,
            r#"{"Interaction":{"a":-}}"#,
            "{\"Interaction\":{\"a\":\"x\ty\"}}",
            "{\"Interaction\":{\"a\":\"\u{1}\"}}",
        ] {
            assert!(scan_event(p.as_bytes()).is_none(), "read: {p}");
        }
        assert!(scan_event(b"{\"Interaction\":{\"a\":\"\xff\"}}").is_none());
        // Bytes that are not UTF-8 are found in any string, kept or not,
        // wherever they fall among its eight-byte words, and outside strings.
        for bad in [
            &b"\xff"[..],
            b"\xc3",
            b"\x80",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xe2\x82",
        ] {
            for at in [0, 3, 7, 8, 13, 16, 21] {
                for key in ["event", "other"] {
                    let mut p = format!("{{\"Interaction\":{{\"{key}\":\"").into_bytes();
                    let mut value = b"abcdefghijklmnopqrstuvw".to_vec();
                    value.splice(at..at, bad.iter().copied());
                    p.extend_from_slice(&value);
                    p.extend_from_slice(b"\"}}");
                    assert!(std::str::from_utf8(&p).is_err());
                    assert!(scan_event(&p).is_none(), "read: {p:?}");
                }
            }
        }
        assert!(scan_event(b"{\"Interaction\":{\"a\":1}}\xc2\xa0").is_none());
        assert!(scan_event(b"{\"Interaction\":{\"a\":\xc2\xa01}}").is_none());
        // A control character in a string is found wherever it falls among
        // the whole-payload check's blocks (first block, later ones, the
        // remainder), also beside whitespace that is allowed.
        let text = "x".repeat(150);
        for at in [0, 40, 63, 64, 100, 127, 128, 149] {
            for control in ['\u{1}', '\t', '\n', '\u{1f}'] {
                let mut value = text.clone();
                value.replace_range(at..=at, &control.to_string());
                for gap in ["", "\n"] {
                    let p = format!("{{\"Interaction\":{gap}{{\"a\":\"{value}\"}}}}");
                    assert!(scan_event(p.as_bytes()).is_none(), "read: {p:?}");
                }
            }
        }
        // The same for a backslash, and a string of any length ends at its
        // quote wherever that falls in the eight-byte words (bytes above
        // 0x7f, of a multi-byte character, are no stop).
        for at in [0, 5, 7, 8, 9, 15, 16, 63, 64, 100, 149] {
            let mut value = text.clone();
            value.replace_range(at..=at, "\\");
            let p = format!("{{\"Interaction\":{{\"a\":\"{value}\"}}}}");
            assert!(scan_event(p.as_bytes()).is_none(), "read: {p:?}");
        }
        for len in 0..40 {
            for fill in ["x", "é", "\u{7f}", "€x"] {
                let value = fill.repeat(len);
                let p = format!("{{\"Interaction\":{{\"event\":\"{value}\",\"b\":\"{value}\"}}}}");
                assert!(agrees(p.as_bytes()), "not read: {p:?}");
            }
        }
        let spaced = format!("{{\"Interaction\":\n{{\"a\":\"{text}\",\r\n\t\"b\":1}}}}");
        assert!(agrees(spaced.as_bytes()), "not read: {spaced:?}");
        let deep = format!(
            "{{\"Interaction\":{{\"a\":{}{}}}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(scan_event(deep.as_bytes()).is_none());
        let ok = format!(
            "{{\"Interaction\":{{\"a\":{}{}}}}}",
            "[".repeat(60),
            "]".repeat(60)
        );
        assert!(agrees(ok.as_bytes()));
    }
}
