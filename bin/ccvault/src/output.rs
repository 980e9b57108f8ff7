//! Printing: times, and JSON lines.

use std::io::Write;

use anyhow::{Context, Result};

/// The time zone for printed times: `--tz`, or UTC.
pub fn time_zone(tz: Option<&str>) -> Result<jiff::tz::TimeZone> {
    match tz {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name).with_context(|| {
            format!("unknown time zone {name:?} (use an IANA name such as Europe/London)")
        }),
    }
}

/// An epoch-ms instant as ISO-8601 in `tz` (`Z` for UTC).
pub fn format_ms(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) if tz == &jiff::tz::TimeZone::UTC => {
            ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

/// Writes one JSON value as a line.
pub fn json_line(out: &mut impl Write, value: &serde_json::Value) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// This process's peak resident set size in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
