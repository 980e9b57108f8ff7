//! How instants and durations print in human output (docs/METRICS.md: UTC ISO-8601
//! unless a time zone is given).

use jiff::tz::TimeZone;

/// `2025-11-23T12:13:20.120Z` in UTC, `2025-11-23T07:13:20.120-05:00` in a
/// zone. Instants outside the calendar range print as raw milliseconds.
pub fn format_instant(ms: i64, tz: Option<&TimeZone>) -> String {
    let Some(ts) = ccvault_event::timestamp_of(ms) else {
        return format!("{ms}ms");
    };
    match tz {
        None => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Some(tz) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
    }
}

/// `45s`, `1m 19s`, `2h 03m 04s`, with `.mmm` when not whole seconds.
pub fn format_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (h, rest) = (abs / 3_600_000, abs % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    let secs = if milli == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{milli:03}s")
    };
    if h > 0 {
        let secs = if s < 10 { format!("0{secs}") } else { secs };
        format!("{sign}{h}h {m:02}m {secs}")
    } else if m > 0 {
        format!("{sign}{m}m {secs}")
    } else {
        format!("{sign}{secs}")
    }
}

/// An optional duration, `-` when absent.
pub fn format_opt_duration(ms: Option<i64>) -> String {
    ms.map(format_duration).unwrap_or_else(|| "-".to_string())
}

/// An optional instant, `-` when absent.
pub fn format_opt_instant(ms: Option<i64>, tz: Option<&TimeZone>) -> String {
    ms.map(|ms| format_instant(ms, tz))
        .unwrap_or_else(|| "-".to_string())
}

/// `None` for UTC (printed with `Z`), the zone otherwise.
pub fn zone_for_display(tz: &TimeZone) -> Option<&TimeZone> {
    let utc = *tz == TimeZone::UTC || matches!(tz.iana_name(), Some("UTC" | "Etc/UTC"));
    (!utc).then_some(tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_in_utc_or_the_zone() {
        assert_eq!(
            format_instant(1_763_900_000_120, None),
            "2025-11-23T12:13:20.120Z"
        );
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            format_instant(1_763_900_000_120, Some(&ny)),
            "2025-11-23T07:13:20.120-05:00"
        );
        assert_eq!(format_instant(i64::MAX, None), format!("{}ms", i64::MAX));
        // The last instant the archive accepts (docs/METRICS.md §2), and
        // the 999 ms before it that jiff's `from_millisecond` refuses.
        assert_eq!(
            format_instant(ccvault_event::LATEST_MS, None),
            "9999-12-30T22:00:00.999Z"
        );
        assert_eq!(
            format_instant(253_402_207_200_001, None),
            "9999-12-30T22:00:00.001Z"
        );
    }

    #[test]
    fn every_name_of_utc_prints_with_z() {
        for name in ["UTC", "Etc/UTC"] {
            let tz = TimeZone::get(name).unwrap();
            assert_eq!(
                format_instant(1_763_900_000_120, zone_for_display(&tz)),
                "2025-11-23T12:13:20.120Z",
                "{name}"
            );
        }
        let ny = TimeZone::get("America/New_York").unwrap();
        assert!(zone_for_display(&ny).is_some());
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(format_duration(45_000), "45s");
        assert_eq!(format_duration(79_000), "1m 19s");
        assert_eq!(format_duration(120), "0.120s");
        assert_eq!(format_duration(7_384_005), "2h 03m 04.005s");
        assert_eq!(format_duration(-2_000), "-2s");
    }
}
