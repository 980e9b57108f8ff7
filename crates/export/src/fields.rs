//! The fields of an `events` row read straight from the payload bytes,
//! without serde: the export's fast path past `ccvault_event::parse_event`.
//!
//! Invariants:
//! - [`scan_event`] either gives the [`Event`] fields the row and its
//!   partition read (family, `event`, `interactionGUID`, `agentId`, the
//!   times of `interactionEventTS`, `statusEventTS`, `eventTS` and
//!   `msgInfo.timestamp`/`sequenceId`) with the values `parse_event` would
//!   give them, or `None` ("not sure"), and the caller parses with
//!   `parse_event`. Every other body field is left absent: callers that
//!   need more (agent status changes, for the spans) use `parse_event`.
//! - It answers only for the plain shape of archived events: a document
//!   that is one object with one key (not `payload`, `type`, `messageId`,
//!   `publishTime` or `ClientCheck`, which `parse_event` treats apart)
//!   whose value is an object, valid JSON throughout (checked here as
//!   serde_json checks it: the grammar, control characters in strings,
//!   nesting depth, nothing after the value), no backslash anywhere (an
//!   escaped key or value would need decoding), integers within `i64` (a
//!   fraction, an exponent or a larger number needs serde_json's float
//!   reading). Anything else is `None`.
//! - Why: parsing every event through serde's visitors was a fifth of the
//!   export's CPU; this reads the few fields the row needs and skips the
//!   rest of the bytes (docs/BENCHMARKS.md, "Parquet export").

use std::borrow::Cow;

use ccvault_event::{Event, EventBody, Lenient};

/// Containers deeper than this are left to `parse_event`: well under
/// serde_json's limit (128), so a document read here never fails there.
const MAX_DEPTH: usize = 64;

/// The row's fields of an event payload, or `None` when only `parse_event`
/// can say (see the module's invariants).
pub fn scan_event(payload: &[u8]) -> Option<Event<'_>> {
    if memchr::memchr(b'\\', payload).is_some() {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
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
    let body = s.body()?;
    s.ws();
    s.eat(b'}')?;
    s.ws();
    if s.at != s.bytes.len() {
        return None;
    }
    Some(Event {
        family: Cow::Borrowed(family),
        body,
    })
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// A string without escapes (none are in the payload), borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = memchr::memchr(b'"', self.bytes.get(start..)?)?;
        let end = start + len;
        // serde_json refuses raw control characters in strings.
        if self.bytes.get(start..end)?.iter().any(|&b| b < 0x20) {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// An integer within `i64`, by JSON's grammar (no leading zeros).
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let n = self.at - digits;
        let leading_zero = n > 1 && self.bytes.get(digits) == Some(&b'0');
        if n == 0 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let v: i64 = self.text.get(start..self.at)?.parse().ok()?;
        // serde_json reads `-0` as a float (-0.0), which renders as "-0".
        (v != 0 || digits == start).then_some(v)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A scalar or nested value as `Lenient` reads it.
    fn value(&mut self, depth: usize) -> Option<Lenient<'a>> {
        Some(match self.peek()? {
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
                self.skip_nested(depth)?;
                Lenient::Nested
            }
            _ => Lenient::Int(self.integer()?),
        })
    }

    /// Skips an object or array, checking its syntax. `depth`: the
    /// containers around it.
    fn skip_nested(&mut self, depth: usize) -> Option<()> {
        if depth + 1 > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.members(|s, _| s.value(depth + 1).map(drop)),
            b'[' => {
                self.at += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.at += 1;
                            self.ws();
                        }
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// Reads an object: `member` reads the value of each key.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The family's object: the row's fields, a repeated key keeping its
    /// last value (as `parse_event`).
    fn body(&mut self) -> Option<EventBody<'a>> {
        if self.peek()? != b'{' {
            // Not an event; parse_event says why.
            return None;
        }
        let mut b = EventBody::default();
        // The top-level object and the body are the two containers around
        // the body's values.
        self.members(|s, key| {
            let slot = match key {
                "event" => &mut b.event,
                "interactionGUID" => &mut b.interaction_guid,
                "agentId" => &mut b.agent_id,
                "interactionEventTS" => &mut b.interaction_event_ts,
                "statusEventTS" => &mut b.status_event_ts,
                "eventTS" => &mut b.event_ts,
                "msgInfo" => {
                    b.msg_info = Default::default();
                    if s.peek()? != b'{' {
                        // Anything but an object reads as an empty msgInfo.
                        return s.value(2).map(drop);
                    }
                    let m = &mut b.msg_info;
                    return s.members(|s, key| {
                        let slot = match key {
                            "timestamp" => &mut m.timestamp,
                            "sequenceId" => &mut m.sequence_id,
                            _ => return s.value(3).map(drop),
                        };
                        *slot = s.value(3)?;
                        Some(())
                    });
                }
                _ => return s.value(2).map(drop),
            };
            *slot = s.value(2)?;
            Some(())
        })?;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccvault_event::parse_event;

    /// What the row reads of an event.
    fn row_fields(ev: &Event<'_>) -> impl PartialEq + std::fmt::Debug {
        (
            ev.family.to_string(),
            ev.event_type().into_owned(),
            ev.body.interaction_guid.as_text().map(Cow::into_owned),
            ev.body.agent_id.as_text().map(Cow::into_owned),
            ev.payload_times(),
            ev.sequence_id(),
        )
    }

    /// `scan_event` agrees with `parse_event` whenever it answers; returns
    /// whether it answered.
    fn agrees(payload: &[u8]) -> bool {
        let Some(fast) = scan_event(payload) else {
            return false;
        };
        let full = parse_event(payload).unwrap_or_else(|e| {
            panic!(
                "scan_event read {:?}, which parse_event refuses: {e}",
                String::from_utf8_lossy(payload)
            )
        });
        assert_eq!(
            row_fields(&fast),
            row_fields(&full),
            "{}",
            String::from_utf8_lossy(payload)
        );
        true
    }

    #[test]
    fn reads_the_plain_shapes_as_parse_event() {
        for p in [
            r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1-acme","agentId":"ag","interactionEventTS":1763900100,"msgInfo":{"timestamp":1763900100123,"sequenceId":7},"extra":{"deep":[1,2,{"x":null}],"e":[]},"f":-3,"g":true,"h":false,"i":"é"}}"#,
            r#" { "Interaction" : { "event" : "X" , "interactionEventTS" : "0170" , "eventTS":5 } } "#,
            r#"{"AgentStatusChange":{"agentId":"a","statusEventTS":"12","msgInfo":[1]}}"#,
            r#"{"Interaction":{"event":1234,"interactionGUID":true,"agentId":{"a":1},"msgInfo":"x"}}"#,
            r#"{"Interaction":{"event":"A","event":"B","msgInfo":{"timestamp":5},"msgInfo":{}}}"#,
            r#"{"Interaction":{"interactionGUID":"","agentId":null,"eventTS":-5}}"#,
            r#"{"Interaction":{}}"#,
            "{\"Interaction\":{\"event\":\"X\"}}\n",
        ] {
            assert!(agrees(p.as_bytes()), "not read: {p}");
        }
    }

    #[test]
    fn leaves_every_doubtful_document_to_parse_event() {
        for p in [
            // Escapes, floats, big numbers, leading zeros.
            r#"{"Interaction":{"event":"A\u0042"}}"#,
            r#"{"Interaction":{"eventTS":1.5}}"#,
            r#"{"Interaction":{"eventTS":1e3}}"#,
            r#"{"Interaction":{"eventTS":99999999999999999999}}"#,
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

    #[test]
    fn agrees_with_parse_event_on_a_simulated_feed_with_its_quirks() {
        let cfg = ccvault_sim::SimConfig {
            events: Some(20_000),
            seed: 11,
            ..ccvault_sim::SimConfig::default()
        };
        let mut out = Vec::new();
        ccvault_sim::simulate(&cfg, &mut out).unwrap();
        let (mut read, mut total) = (0, 0);
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            total += 1;
            read += usize::from(agrees(line));
        }
        // The fast path must be the common one, or it buys nothing (the
        // quirks' escapes, envelopes and malformed lines are not: 89 %).
        assert!(read * 4 >= total * 3, "{read} of {total} read");
    }
}
