//! Event time t(e) and where it came from (docs/METRICS.md, "Event time and
//! order").
//!
//! Guarantees: [`resolve_time`] always yields a time and names the rule that
//! gave it; the ranking lives here only. Sources 1–5 are *timed*; `eventTS`
//! (the interaction's queue-entry time, which does not advance from event
//! to event) and the import time are *weak*: they order events but never
//! extend a window or a time range.

use crate::value::Lenient;

/// The rule that gave an event its time, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeSource {
    /// 1. `interactionEventTS` × 1000.
    InteractionEventTs,
    /// 2. `statusEventTS` × 1000.
    StatusEventTs,
    /// 3. `msgInfo.timestamp` (ms).
    MsgInfoTimestamp,
    /// 4. The Pulsar envelope's `publishTime`.
    PublishTime,
    /// 5. When a live source (MQTT, Pulsar) received the record.
    Received,
    /// 6. `eventTS` × 1000 (weak).
    EventTs,
    /// 7. When the record was imported from a file or stdin (weak).
    Imported,
}

impl TimeSource {
    /// The name `show --format json` prints as `timeSource`.
    pub fn name(self) -> &'static str {
        match self {
            TimeSource::InteractionEventTs => "interactionEventTS",
            TimeSource::StatusEventTs => "statusEventTS",
            TimeSource::MsgInfoTimestamp => "msgInfo.timestamp",
            TimeSource::PublishTime => "publishTime",
            TimeSource::Received => "received",
            TimeSource::EventTs => "eventTS",
            TimeSource::Imported => "imported",
        }
    }

    /// Every source, best first (its rank is its index).
    pub const ALL: [TimeSource; 7] = [
        TimeSource::InteractionEventTs,
        TimeSource::StatusEventTs,
        TimeSource::MsgInfoTimestamp,
        TimeSource::PublishTime,
        TimeSource::Received,
        TimeSource::EventTs,
        TimeSource::Imported,
    ];

    /// The rank (1–7), a stable code for storing it.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }

    /// The source of a rank, if it is one.
    pub fn of_rank(rank: u8) -> Option<TimeSource> {
        Self::ALL.get(usize::from(rank.checked_sub(1)?)).copied()
    }

    /// The source a name (as [`TimeSource::name`] gives it) stands for.
    pub fn of_name(name: &str) -> Option<TimeSource> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the time says when the event happened (sources 1–5).
    pub fn is_timed(self) -> bool {
        self < TimeSource::EventTs
    }

    /// Whether the payload itself gives the time (sources 1–3): then every
    /// copy of the event gives the same one. Else each record holding the
    /// event may give another, and the event's is the best among them.
    pub fn is_own(self) -> bool {
        self < TimeSource::PublishTime
    }
}

impl serde::Serialize for TimeSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for TimeSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        TimeSource::of_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown time source {name:?}")))
    }
}

impl std::fmt::Display for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An event time in ms and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    pub ms: i64,
    pub source: TimeSource,
}

impl EventTime {
    pub fn is_timed(&self) -> bool {
        self.source.is_timed()
    }

    /// Of two copies of one payload (records whose bytes are equal), the
    /// one whose time is the event's orders first (docs/METRICS.md §2):
    /// the better-ranked rule, then the smaller value. For each rule the
    /// set of copies has, its value is the smallest among the copies that
    /// have it, and the first rule any copy has wins, so the first copy in
    /// this order gives t(e) of the whole set, whatever the arrival order.
    pub fn copy_order(&self, other: &EventTime) -> std::cmp::Ordering {
        self.source.cmp(&other.source).then(self.ms.cmp(&other.ms))
    }
}

/// The latest instant a payload's time may name, 9999-12-30T22:00:00.999Z
/// (`jiff::Timestamp::MAX`, the last instant every zone can write with a
/// four-digit year; every engine's timestamp type holds it, where
/// DuckDB's microseconds end near the year 294247). A larger value, such
/// as microseconds in a field of seconds, is no time: read as absent, like
/// one ≤ 0, so that one such event cannot stretch every agent's last state
/// span, the archive's time range and the Parquet instants to millions of
/// years (docs/METRICS.md §2).
pub const LATEST_MS: i64 = 253_402_207_200_999;

/// `ms` since the epoch as a `jiff::Timestamp`, for every instant the
/// calendar holds, [`LATEST_MS`] included: `Timestamp::from_millisecond`
/// refuses the last 999 ms before it (its bound is whole seconds), so
/// times the archive accepts printed as raw milliseconds (outside audit).
pub fn timestamp_of(ms: i64) -> Option<jiff::Timestamp> {
    let nanos = i32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
    jiff::Timestamp::new(ms.div_euclid(1000), nanos).ok()
}

/// A payload's time field as an instant in ms: `value` × `unit_ms`, if
/// that is > 0 and no later than [`LATEST_MS`].
pub fn payload_instant(value: i64, unit_ms: i64) -> Option<i64> {
    value
        .checked_mul(unit_ms)
        .filter(|ms| (1..=LATEST_MS).contains(ms))
}

/// A payload's time field (`unit_ms`: 1000 for seconds, 1 for ms) as an
/// instant in whole ms ([`payload_instant`]). A JSON number with a fraction
/// is a number (docs/METRICS.md §1): `1763900003.5` seconds is
/// 1763900003500 ms. Digits past the millisecond are dropped, as
/// JavaScript's `Date` drops them; the fraction is read from the shortest
/// decimal that reads back as the same double, so `1763900003.123` is
/// …123 ms, and `1095465718.215` …215 ms, not the …214.9999 its double
/// times 1000 gives. Until 2026-12-07 a
/// fraction made the field absent, and the event fell to a later rule,
/// often its import time (an outside audit).
pub fn payload_time_ms(value: &Lenient<'_>, unit_ms: i64) -> Option<i64> {
    let ms = match value {
        Lenient::Float(f) if f.fract() != 0.0 => fraction_ms(*f, unit_ms),
        other => other.as_i64()?.checked_mul(unit_ms),
    };
    payload_instant(ms?, 1)
}

/// `value` × `unit_ms` (a power of ten), cut to whole ms toward zero, for
/// a positive `value` with a fraction (the others are no instant).
fn fraction_ms(value: f64, unit_ms: i64) -> Option<i64> {
    if value <= 0.0 || !value.is_finite() {
        return None;
    }
    // Rust prints a double as its shortest round-trip decimal, never with
    // an exponent: "1763900003.123".
    let text = value.to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let places = unit_ms.checked_ilog10()? as usize;
    let kept: String = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(places)
        .map(char::from)
        .collect();
    let whole: i64 = whole.parse().ok()?;
    let part: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    whole.checked_mul(unit_ms)?.checked_add(part)
}

/// What an event's payload says about its time: the first of rules 1–3
/// that is present, > 0 and no later than [`LATEST_MS`], and rule 6
/// (`eventTS`), which ranks below the record's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PayloadTimes {
    pub own: Option<EventTime>,
    pub event_ts_ms: Option<i64>,
}

/// How the record holding an event reached the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival<'a> {
    /// The Pulsar envelope's `publishTime` (RFC 3339), when it came in one.
    pub publish_time: Option<&'a str>,
    /// When the archive took the record in, ms.
    pub ingest_ms: i64,
    /// Whether a live source (MQTT, Pulsar) received it; else it was
    /// imported from a file or stdin, and `ingest_ms` is the import time.
    pub live: bool,
}

/// Parses an envelope `publishTime` (RFC 3339) to ms since the epoch.
pub fn parse_publish_time(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|ts| ts.as_millisecond())
}

/// t(e) by the ranking: the payload's rules 1–3, `publishTime`, live
/// receipt, `eventTS`, import time.
pub fn resolve_time(payload: PayloadTimes, arrival: Arrival<'_>) -> EventTime {
    let at = |ms, source| EventTime { ms, source };
    if let Some(own) = payload.own {
        return own;
    }
    if let Some(ms) = arrival
        .publish_time
        .and_then(parse_publish_time)
        .filter(|ms| *ms > 0)
    {
        return at(ms, TimeSource::PublishTime);
    }
    if arrival.live {
        return at(arrival.ingest_ms, TimeSource::Received);
    }
    match payload.event_ts_ms {
        Some(ms) => at(ms, TimeSource::EventTs),
        None => at(arrival.ingest_ms, TimeSource::Imported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    fn t(raw: &[u8], publish_time: Option<&str>, live: bool) -> EventTime {
        let ev = parse_event(raw).unwrap();
        resolve_time(
            ev.payload_times(),
            Arrival {
                publish_time,
                ingest_ms: 42,
                live,
            },
        )
    }

    const PT: Option<&str> = Some("2025-11-23T12:13:20.000Z");

    #[test]
    fn each_rule_in_its_rank() {
        let all = br#"{"Interaction":{"event":"X","interactionEventTS":3,"statusEventTS":4,"eventTS":5,"msgInfo":{"timestamp":7000}}}"#;
        let first = t(all, PT, true);
        assert_eq!(
            (first.ms, first.source),
            (3000, TimeSource::InteractionEventTs)
        );
        let status = br#"{"AgentStatusChange":{"statusEventTS":4,"eventTS":5,"msgInfo":{"timestamp":7000}}}"#;
        assert_eq!(t(status, PT, true).source, TimeSource::StatusEventTs);
        let msg = br#"{"Interaction":{"event":"X","eventTS":5,"msgInfo":{"timestamp":7000}}}"#;
        let m = t(msg, PT, true);
        assert_eq!((m.ms, m.source), (7000, TimeSource::MsgInfoTimestamp));
    }

    #[test]
    fn every_accepted_instant_is_a_timestamp() {
        for ms in [LATEST_MS, LATEST_MS - 1, LATEST_MS - 999, 1, 0, -1, -1001] {
            let ts = timestamp_of(ms).unwrap_or_else(|| panic!("{ms}"));
            assert_eq!(ts.as_millisecond(), ms);
        }
        assert_eq!(timestamp_of(LATEST_MS + 1), None);
        assert_eq!(timestamp_of(i64::MAX), None);
        assert_eq!(timestamp_of(i64::MIN), None);
    }

    #[test]
    fn a_time_past_the_year_9999_is_no_time_and_the_next_rule_applies() {
        assert_eq!(LATEST_MS, jiff::Timestamp::MAX.as_millisecond());
        // Microseconds in a field of seconds, nanoseconds in one of ms.
        let raw = br#"{"Interaction":{"event":"X","interactionEventTS":1763967600000000,"msgInfo":{"timestamp":1763967600000}}}"#;
        let got = t(raw, PT, false);
        assert_eq!(
            (got.ms, got.source),
            (1_763_967_600_000, TimeSource::MsgInfoTimestamp)
        );
        let raw = br#"{"AgentStatusChange":{"statusEventTS":253402207201,"msgInfo":{"timestamp":1763967600000000000}}}"#;
        let got = t(raw, PT, false);
        assert_eq!(got.source, TimeSource::PublishTime);
        let raw = br#"{"Interaction":{"event":"X","eventTS":253402207201}}"#;
        assert_eq!(t(raw, None, false).source, TimeSource::Imported);
        // The last instant is one.
        let raw = br#"{"Interaction":{"event":"X","msgInfo":{"timestamp":253402207200999}}}"#;
        assert_eq!(t(raw, None, false).ms, LATEST_MS);
    }

    #[test]
    fn a_time_with_a_fraction_is_read_to_the_millisecond() {
        let own = |raw: &[u8]| {
            let got = t(raw, PT, false);
            (got.ms, got.source)
        };
        let secs = |v: &str| {
            own(format!(r#"{{"Interaction":{{"event":"X","interactionEventTS":{v}}}}}"#).as_bytes())
        };
        let at = 1_763_900_003_000;
        let source = TimeSource::InteractionEventTs;
        assert_eq!(secs("1763900003.5"), (at + 500, source));
        assert_eq!(secs("1.7639000035e9"), (at + 500, source));
        assert_eq!(secs("1763900003.123"), (at + 123, source));
        // The decimal as written, not its double: × 1000 in floating point
        // gives 1095465718214.9999.
        let got = secs("1095465718.215");
        assert_eq!(got, (1_095_465_718_215, source));
        assert_eq!(secs("1763900003.001"), (at + 1, source));
        // Past the millisecond: dropped.
        assert_eq!(secs("1763900003.1239"), (at + 123, source));
        assert_eq!(secs("0.5"), (500, source));
        // No instant: the next rule (here `publishTime`).
        for none in ["0.0004", "-1.5", "1e300", "253402207201.5"] {
            assert_eq!(secs(none).1, TimeSource::PublishTime, "{none}");
        }
        let ms = own(br#"{"Interaction":{"event":"X","msgInfo":{"timestamp":1763900007000.7}}}"#);
        assert_eq!(ms, (1_763_900_007_000, TimeSource::MsgInfoTimestamp));
        let status = own(br#"{"AgentStatusChange":{"statusEventTS":1763900003.25}}"#);
        assert_eq!(status, (at + 250, TimeSource::StatusEventTs));
        // Text stays digits only (§1): "1763900003.5" is no number.
        assert_eq!(secs(r#""1763900003.5""#).1, TimeSource::PublishTime);
    }

    #[test]
    fn a_publish_time_is_an_instant_with_an_offset_in_any_iso_8601_spelling() {
        let at = 1_763_900_000_000; // 2025-11-23T12:13:20Z
        for text in [
            "2025-11-23T12:13:20.000Z",
            "2025-11-23T13:13:20+01:00",
            "20251123T121320Z",
            "2025-11-23T13:13:20+01",
        ] {
            assert_eq!(parse_publish_time(text), Some(at), "{text}");
        }
        assert_eq!(parse_publish_time("2025-11-23T12:13:20,5Z"), Some(at + 500));
        assert_eq!(
            parse_publish_time("2025-11-23T12:13:60Z"),
            Some(at + 39_000)
        );
        for no_time in [
            "2025-11-23T12:13:20",
            "1763900000000",
            "2025-11-23",
            "",
            " 2025-11-23T12:13:20Z ",
        ] {
            assert_eq!(parse_publish_time(no_time), None, "{no_time:?}");
        }
    }

    #[test]
    fn publish_time_and_receipt_outrank_event_ts() {
        // An assignment that carries only the interaction's queue-entry
        // time, in an envelope published 40 s later: the envelope wins.
        let only_event_ts =
            br#"{"Interaction":{"event":"InteractionAssigned","eventTS":1763899980,"msgInfo":{}}}"#;
        let p = t(only_event_ts, PT, false);
        assert_eq!(
            (p.ms, p.source),
            (1_763_900_000_000, TimeSource::PublishTime)
        );
        let r = t(only_event_ts, None, true);
        assert_eq!((r.ms, r.source), (42, TimeSource::Received));
        let e = t(only_event_ts, None, false);
        assert_eq!((e.ms, e.source), (1_763_899_980_000, TimeSource::EventTs));
        assert!(!e.is_timed());
        assert_eq!(
            t(only_event_ts, Some("garbage"), false).source,
            TimeSource::EventTs
        );
    }

    #[test]
    fn import_time_is_the_last_resort_and_weak() {
        let none = br#"{"AgentProvChange":{"event":"AgentProvChange","msgInfo":{}}}"#;
        let i = t(none, None, false);
        assert_eq!((i.ms, i.source), (42, TimeSource::Imported));
        assert!(!i.is_timed());
        let zero = br#"{"Interaction":{"event":"X","interactionEventTS":0,"eventTS":0}}"#;
        assert_eq!(t(zero, None, false).source, TimeSource::Imported);
    }

    /// Every example event of the 8x8 documentation, imported from a file
    /// (import time 42): its time and the rule that gave it, in file order.
    #[test]
    fn the_8x8_examples_take_the_time_of_the_best_rule_present() {
        use crate::input::decode_message;
        use TimeSource::*;
        let docs = [
            (
                include_str!("../../../tests/fixtures/8x8-docs/event-reference.ndjson"),
                vec![
                    // statusEventTS outranks msgInfo.timestamp (…917 ms).
                    (StatusEventTs, 1_669_235_544_000),
                    // AgentProvChange: `msgInfo: {}` and nothing else.
                    (Imported, 42),
                    (MsgInfoTimestamp, 1_669_235_700_000),
                    // interactionEventTS outranks the equal eventTS.
                    (InteractionEventTs, 1_744_819_217_000),
                    (MsgInfoTimestamp, 1_669_236_000_000),
                    // InteractionAssigned: only eventTS, the queue time.
                    (EventTs, 1_744_819_092_000),
                    (InteractionEventTs, 1_744_819_218_000),
                    (InteractionEventTs, 1_744_819_224_000),
                    (InteractionEventTs, 1_744_819_223_000),
                ],
            ),
            (
                include_str!("../../../tests/fixtures/8x8-docs/message-format.ndjson"),
                vec![
                    // The envelope: its payload is no event (quarantined), so
                    // only the envelope's publishTime is left.
                    (PublishTime, 1_760_520_600_000),
                    (StatusEventTs, 1_669_235_544_000),
                    (InteractionEventTs, 1_669_235_827_000),
                    (InteractionEventTs, 1_669_235_836_000),
                    (InteractionEventTs, 1_669_236_911_000),
                ],
            ),
        ];
        for (text, want) in docs {
            let got: Vec<(TimeSource, i64)> = text
                .lines()
                .map(|line| {
                    let d = decode_message(line.as_bytes());
                    let arrival = Arrival {
                        publish_time: d.publish_time.as_deref(),
                        ingest_ms: 42,
                        live: false,
                    };
                    let times = d.outcome.map(|k| k.times).unwrap_or_default();
                    let t = resolve_time(times, arrival);
                    (t.source, t.ms)
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn among_copies_the_best_rule_wins_then_the_smallest_value() {
        let raw =
            br#"{"Interaction":{"event":"InteractionQueued","eventTS":1763899980,"msgInfo":{}}}"#;
        let published = |pt| t(raw, Some(pt), false);
        let early = published("2025-11-23T12:13:20Z");
        let late = published("2025-11-23T12:13:50Z");
        let received = t(raw, None, true);
        let imported = t(raw, None, false);
        assert!(received.ms < early.ms && imported.ms < early.ms);
        // A publish time outranks an earlier receipt, and both the
        // payload's eventTS; among publish times the smaller wins.
        let mut copies = [imported, late, received, early];
        copies.sort_by(EventTime::copy_order);
        assert_eq!(copies, [early, late, received, imported]);
        assert_eq!(early.copy_order(&early), std::cmp::Ordering::Equal);
    }

    #[test]
    fn names_and_strength() {
        let timed = [
            TimeSource::InteractionEventTs,
            TimeSource::StatusEventTs,
            TimeSource::MsgInfoTimestamp,
            TimeSource::PublishTime,
            TimeSource::Received,
        ];
        assert!(timed.iter().all(|s| s.is_timed()));
        assert!(!TimeSource::EventTs.is_timed() && !TimeSource::Imported.is_timed());
        assert_eq!(
            TimeSource::MsgInfoTimestamp.to_string(),
            "msgInfo.timestamp"
        );
    }
}
