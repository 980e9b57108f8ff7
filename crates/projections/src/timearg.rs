//! Instants as people type them (the CLI's `--from`/`--to`, the server's
//! `from`/`to` parameters): one grammar for both.
//!
//! Guarantees: parsing never reads the clock or `--tz`: an instant is
//! kept as typed ([`TimeArg`]) and resolved when the question is asked
//! ([`TimeArg::resolve`]), but for a zone named in the value itself
//! (`[America/New_York]`), read from the time zone database as it is
//! parsed; a bad value gives an error naming it and the accepted forms.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// An instant as typed on the command line.
#[derive(Clone, Debug)]
pub enum TimeArg {
    /// RFC 3339 with an offset, or epoch milliseconds: the same everywhere.
    Instant(i64),
    /// A bare date: local midnight in `--tz`.
    Date(Date),
    /// A date and time without an offset: local in `--tz`.
    Local(DateTime),
    /// `now`, or now plus a signed span (`-7d`, `-1h30m`, `2h ago`): days
    /// and larger units are calendar units in `--tz`.
    Relative(Span),
}

const TIME_FORMS: &str = "RFC 3339 (2025-11-24T08:00:00Z), a time in a named zone (2025-11-24T08:00[America/New_York]), epoch milliseconds (1763971200000), a date (2025-11-24 or 20251124, midnight in --tz), a local time (2025-11-24T08:00), now, or a relative time (-7d, -2h30m, 3d ago)";

/// `--from`/`--to` and every other instant flag.
pub fn parse_time(s: &str) -> Result<TimeArg, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(TimeArg::Relative(Span::new()));
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // As epoch milliseconds, 8 to 11 digits are instants of 1970–1973,
        // which no one means: 8 digits are a date written without dashes
        // (ISO 8601's basic form), 9 to 11 most likely epoch seconds (an
        // 8x8 event's `interactionEventTS`), refused with the fix.
        if digits.len() < t.len() {
            // `-1` is no instant anyone means (no event's time is before
            // 1970: docs/METRICS.md §2), and most likely a relative time
            // without its unit.
            // Suggested only as far as it is a duration one can give.
            let n = if digits.len() <= 4 { digits } else { "3" };
            return Err(format!(
                "{s:?} is a negative number without a unit: for a time before now give one (-{n}d, -{n}h, -{n}m); epoch milliseconds are positive"
            ));
        }
        if digits.len() == t.len() {
            match t.len() {
                // `--from 2024` was read as 2,024 ms after the epoch: an
                // empty report, exit 0. Only 0, the epoch itself, is meant.
                1..=7 if t.bytes().any(|b| b != b'0') => {
                    let year = if t.len() == 4 { format!("for the year write {t}-01-01; ") } else { String::new() };
                    return Err(format!(
                        "{s:?} as epoch milliseconds is an instant of 1970-01-01 ({year}epoch milliseconds since then have 12 or more digits)"
                    ));
                }
                8 => return compact_date(s, t),
                9..=11 => {
                    return Err(format!(
                        "{s:?} as epoch milliseconds is an instant of 1970–1973 (since then they have 12 or more digits): for epoch seconds write {t}000"
                    ))
                }
                _ => {}
            }
        }
        return t
            .parse::<i64>()
            .map(TimeArg::Instant)
            .map_err(|_| format!("{s:?} is out of range for epoch milliseconds"));
    }
    if t.contains('[') {
        return bracketed_zone(s, t);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(TimeArg::Instant(whole_ms_at_or_after(ts)));
    }
    // jiff reads a date out of a date-time too, so only a bare date is a Date.
    if !t.contains(['T', 't', ' ']) {
        if let Ok(d) = t.parse::<Date>() {
            return Ok(TimeArg::Date(d));
        }
    }
    if let Ok(dt) = t.parse::<DateTime>() {
        return Ok(TimeArg::Local(dt));
    }
    let relative = t.starts_with(['-', '+']) || t.ends_with("ago");
    if relative {
        if let Ok(span) = t.parse::<Span>() {
            return Ok(TimeArg::Relative(span));
        }
    }
    Err(format!("invalid time {s:?}: expected {TIME_FORMS}"))
}

/// The first whole millisecond at or after `ts`. Every event time is a
/// whole millisecond, so for any event time `t`, `t >= ts` exactly when
/// `t >= whole_ms_at_or_after(ts)`, and the same for `<`: `[from, to)`
/// selects what the instants as typed select, sub-millisecond digits and
/// all. (Until 2026-12-07 they were cut off, which moved both edges down:
/// `--to 10:00:00.0005Z` left out an event at 10:00:00.000; an outside
/// audit.)
fn whole_ms_at_or_after(ts: Timestamp) -> i64 {
    let up = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Millisecond)
        .mode(jiff::RoundMode::Ceil);
    // Only the last instant jiff holds has no millisecond after it; no
    // event time is there (docs/METRICS.md §2 stops at 9999-12-30).
    ts.round(up).unwrap_or(ts).as_millisecond()
}

/// A time with its zone in brackets (RFC 9557, as jiff and Temporal print
/// it: `2025-11-24T08:00[America/New_York]`): the wall time in that zone,
/// an offset beside it checked against the zone. Every part is read or
/// the value refused: until 2026-12-07 the parsers of the other forms
/// skipped the bracket, so the wall time was read in `--tz` and an offset
/// the zone never had passed (an outside audit).
fn bracketed_zone(typed: &str, t: &str) -> Result<TimeArg, String> {
    t.parse::<jiff::ZonedDateTime>()
        .map(|zoned| TimeArg::Instant(whole_ms_at_or_after(zoned.timestamp())))
        .map_err(|e| format!("invalid time {typed:?}: {e}"))
}

/// A date written `YYYYMMDD`.
fn compact_date(typed: &str, digits: &str) -> Result<TimeArg, String> {
    let field =
        |range: std::ops::Range<usize>| digits.get(range).and_then(|f| f.parse::<i16>().ok());
    let part = |range| field(range).and_then(|f| i8::try_from(f).ok());
    match (field(0..4), part(4..6), part(6..8)) {
        (Some(year), Some(month), Some(day)) => Date::new(year, month, day)
            .map(TimeArg::Date)
            .map_err(|_| format!("invalid time {typed:?}: read as a date (YYYYMMDD), {year:04}-{month:02}-{day:02} does not exist")),
        _ => Err(format!("invalid time {typed:?}: expected {TIME_FORMS}")),
    }
}

impl TimeArg {
    /// Epoch milliseconds of this instant, with dates and local times in
    /// `tz` and relative times from `now`.
    pub fn resolve(&self, tz: &TimeZone, now: Timestamp) -> Result<i64, String> {
        let zoned = match self {
            TimeArg::Instant(ms) => return Ok(*ms),
            TimeArg::Date(d) => d.to_zoned_datetime(tz.clone()),
            TimeArg::Local(dt) => dt.to_zoned_datetime(tz.clone()),
            TimeArg::Relative(span) => now.to_zoned_datetime(tz.clone()).checked_add(*span),
        };
        zoned
            .map(|z| whole_ms_at_or_after(z.timestamp()))
            .map_err(|_| {
                let zone = tz.iana_name().unwrap_or("the time zone");
                format!("time {self} is out of range in {zone}: instants run from -9999-01-02 to 9999-12-30 UTC")
            })
    }
}

/// As typed, near enough: the date, the local time, or the span.
impl std::fmt::Display for TimeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeArg::Instant(ms) => write!(f, "{ms}"),
            TimeArg::Date(d) => write!(f, "{d}"),
            TimeArg::Local(dt) => write!(f, "{dt}"),
            TimeArg::Relative(span) => write!(f, "now {span:+}"),
        }
    }
}

/// Resolves an optional instant flag against `--tz` and the clock.
pub fn resolve_opt(t: Option<&TimeArg>, tz: &TimeZone) -> Result<Option<i64>, String> {
    t.map(|t| t.resolve(tz, Timestamp::now())).transpose()
}

const DURATION_FORMS: &str =
    "a duration with units such as 250ms, 90s, 1m30s, 2h, 1d (or ISO 8601, PT1M30S, P1D)";

/// A non-negative duration in jiff's friendly forms (`250ms`, `90s`,
/// `1m30s`, `1h`) or ISO 8601 (`PT90S`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected {DURATION_FORMS}");
    // Days and weeks (ISO 8601's `P1D`, `1d`) as 24 hours and 7 days, a
    // threshold being no calendar span (they were refused until
    // 2026-12-07: an outside audit); months and years stay refused.
    let d: SignedDuration = match s.trim().parse::<SignedDuration>() {
        Ok(d) => d,
        Err(_) => s
            .trim()
            .parse::<Span>()
            .map_err(|_| bad())?
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|_| bad())?,
    };
    std::time::Duration::try_from(d)
        .map_err(|_| format!("invalid duration {s:?}: must not be negative"))
}

/// [`parse_duration`] in whole milliseconds (what the projections take:
/// the thresholds of metrics). A part below a millisecond is refused, not
/// rounded: `abandonMs < --short-abandon` wants it rounded up,
/// `waitMs <= --sla` down, and no one means either (until 2026-12-07 it
/// was cut off, so `--short-abandon 4999.5ms` left a 4,999 ms abandon
/// out; an outside audit).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "invalid duration {s:?}: thresholds are whole milliseconds (every time in an event is)"
        ));
    }
    i64::try_from(d.as_millis()).map_err(|_| format!("duration {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, tz: &str) -> i64 {
        let now: Timestamp = "2025-11-24T12:00:00Z".parse().unwrap();
        parse_time(s)
            .unwrap()
            .resolve(&TimeZone::get(tz).unwrap(), now)
            .unwrap()
    }

    #[test]
    fn digits_that_would_be_1970_are_a_date_or_refused_as_seconds() {
        let midnight = 1_763_942_400_000; // 2025-11-24T00:00:00Z
        assert_eq!(at("20251124", "UTC"), midnight);
        assert_eq!(at("20251124", "Europe/Paris"), midnight - 3_600_000);
        let err = parse_time("20251324").unwrap_err();
        assert!(err.contains("2025-13-24 does not exist"), "{err}");
        let err = parse_time("1763985600").unwrap_err();
        assert!(
            err.contains("for epoch seconds write 1763985600000"),
            "{err}"
        );
        assert!(parse_time("123456789").is_err());
        assert!(parse_time("12345678901").is_err());
        // A few digits are no instant anyone means either (a year, most
        // likely); the epoch itself and whole epoch milliseconds stay.
        let err = parse_time("2024").unwrap_err();
        assert!(err.contains("for the year write 2024-01-01"), "{err}");
        assert!(parse_time("1234567").is_err());
        assert!(parse_time("7").is_err());
        assert_eq!(at("0", "UTC"), 0);
        assert_eq!(at("000", "UTC"), 0);
        assert_eq!(at("100000000000", "UTC"), 100_000_000_000);
        // A negative number is a relative time without its unit.
        let err = parse_time("-1").unwrap_err();
        assert!(err.contains("-1d, -1h, -1m"), "{err}");
        assert!(parse_time("-20251124").is_err());
        // Each duration it suggests is one it takes.
        for given in ["-1", "-9999", "-99999999999999"] {
            let err = parse_time(given).unwrap_err();
            let suggested = err.split('(').nth(1).unwrap().split(',').next().unwrap();
            assert!(parse_time(suggested).is_ok(), "{given}: {err}");
        }
    }

    #[test]
    fn instants_in_every_form() {
        let noon = 1_763_985_600_000; // 2025-11-24T12:00:00Z
        assert_eq!(at("2025-11-24T12:00:00Z", "UTC"), noon);
        assert_eq!(at("2025-11-24T13:00:00+01:00", "UTC"), noon);
        assert_eq!(at("1763985600000", "Europe/Paris"), noon);
        assert_eq!(at("now", "Europe/Paris"), noon);
        assert_eq!(at("-7d", "UTC"), noon - 7 * 86_400_000);
        assert_eq!(at("2h ago", "UTC"), noon - 2 * 3_600_000);
        assert_eq!(at("-1h30m", "UTC"), noon - 90 * 60_000);
        // A bare date is midnight in --tz; a time without offset is local too.
        assert_eq!(at("2025-11-24", "UTC"), noon - 12 * 3_600_000);
        assert_eq!(at("2025-11-24", "Europe/London"), noon - 12 * 3_600_000);
        assert_eq!(at("2025-11-24", "America/New_York"), noon - 7 * 3_600_000);
        assert_eq!(at("2025-11-24T08:00", "Europe/Paris"), noon - 5 * 3_600_000);
    }

    #[test]
    fn a_zone_in_brackets_is_the_zone_of_the_wall_time() {
        let noon = 1_763_985_600_000; // 2025-11-24T12:00:00Z
        for tz in ["UTC", "Asia/Tokyo"] {
            assert_eq!(at("2025-11-24T07:00[America/New_York]", tz), noon);
            assert_eq!(at("2025-11-24T07:00-05:00[America/New_York]", tz), noon);
        }
        for bad in [
            "2025-11-24T08:00+01:00[America/New_York]",
            "2025-11-24T08:00[Mars/Olympus]",
            "2025-11-24T08:00[America/New_York",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn digits_below_a_millisecond_round_up_to_the_next_one() {
        let ten = 1_763_978_400_000; // 2025-11-24T10:00:00Z
        for (typed, ms) in [
            ("2025-11-24T10:00:00.0005Z", ten + 1),
            ("2025-11-24T10:00:00.000001Z", ten + 1),
            ("2025-11-24T10:00:00.001Z", ten + 1),
            ("2025-11-24T10:00:00.0010001Z", ten + 2),
            ("2025-11-24T10:00:00.000Z", ten),
            ("2025-11-24T05:00:00.0005[America/New_York]", ten + 1),
            ("2025-11-24T10:00:00.0005", ten + 1),
            // Before 1970 too: up is toward the later millisecond.
            ("1969-12-31T23:59:59.9995Z", 0),
            ("1969-12-31T23:59:59.9985Z", -1),
        ] {
            assert_eq!(at(typed, "UTC"), ms, "{typed}");
        }
    }

    #[test]
    fn a_relative_day_is_a_calendar_day_in_the_zone() {
        // 2025-03-30 is 23 hours long in Paris (summer time starts).
        let now: Timestamp = "2025-03-30T12:00:00+02:00".parse().unwrap();
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let then = parse_time("-1d").unwrap().resolve(&paris, now).unwrap();
        assert_eq!(now.as_millisecond() - then, 23 * 3_600_000);
    }

    #[test]
    fn bad_instants_name_the_value_and_the_forms() {
        for bad in ["yesterday", "2025-13-01", "7d", "", "12:00"] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn durations_in_friendly_forms() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1m 30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("PT20S"), Ok(20_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("P1D"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("1d 2h"), Ok(93_600_000));
        assert_eq!(parse_duration_ms("P1W"), Ok(7 * 86_400_000));
        assert!(parse_duration_ms("P1M").is_err() && parse_duration_ms("1y").is_err());
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("4.999s"), Ok(4_999));
        for below_a_ms in ["4999.5ms", "4.9999s", "1us", "PT0.0001S"] {
            let e = parse_duration_ms(below_a_ms).unwrap_err();
            assert!(e.contains("whole milliseconds"), "{e}");
        }
        for bad in ["20", "-5s", "fast", "1x"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
