//! Values on the command line: instants, durations, sizes, time zones.
//!
//! Guarantees: one parser per kind of value, used by every flag of that
//! kind; each returns an error naming the bad value and the accepted forms
//! (clap prints it and exits 2); nothing here reads the clock or `--tz` at
//! parse time: an instant is kept as typed ([`TimeArg`]) and resolved once
//! the command runs ([`TimeArg::resolve`]).

use jiff::tz::TimeZone;

pub use ccvault_projections::timearg::{parse_duration, parse_duration_ms, parse_time, TimeArg};

/// Resolves an optional instant flag against `--tz` and the clock; a
/// value out of range there is a bad value on the command line (exit 2).
pub fn resolve_opt(t: Option<&TimeArg>, tz: &TimeZone) -> anyhow::Result<Option<i64>> {
    ccvault_projections::timearg::resolve_opt(t, tz)
        .map_err(|why| crate::output::UsageError(why).into())
}

/// A size: bytes, or with a unit (`64MiB`, `1GiB`, `512KiB`, `10MB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("invalid size {s:?}: expected bytes or a number with a unit, e.g. 64MiB, 512KiB, 1GiB"))
}

/// [`parse_size`] for sizes held in memory.
pub fn parse_size_usize(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    usize::try_from(n).map_err(|_| format!("size {s:?} is too large for this machine"))
}

/// `--max-record-bytes`: a size of at least one byte. Zero would reject
/// every message, and reject means acknowledged: a live source's messages
/// would be gone from the broker, none archived.
/// At most [`ccvault_store::LARGEST_RECORD_LIMIT`]: the log holds no
/// larger record, and a larger limit only made the reader's buffers
/// unallocatable (`8EiB` panicked, and the import said it had succeeded).
pub fn parse_record_limit(s: &str) -> Result<usize, String> {
    match parse_size_usize(s)? {
        0 => Err(format!(
            "a record size limit of {s:?} would reject every message: give at least 1 byte (the default is 1MiB)"
        )),
        n if n > ccvault_store::LARGEST_RECORD_LIMIT => Err(format!(
            "a record size limit of {s:?} is more than the log holds in a record: give at most 63MiB (the default is 1MiB)"
        )),
        n => Ok(n),
    }
}

/// `--segment-bytes`: at least 4 KiB. A smaller size rolls a new segment
/// (and a facts file) for every record: 0 made a 5,000-line import take
/// 140 times as long in 4,983 files.
pub fn parse_segment_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        n if n < MIN_SEGMENT_BYTES => Err(format!(
            "a segment size of {s:?} would roll a new file for about every record: give at least 4KiB (the default is 64MiB)"
        )),
        n => Ok(n),
    }
}

/// The smallest `--segment-bytes` accepted.
const MIN_SEGMENT_BYTES: u64 = 4 << 10;

/// `--tz`: an IANA time zone name.
pub fn parse_tz(s: &str) -> Result<TimeZone, String> {
    TimeZone::get(s)
        .map_err(|_| format!("unknown time zone {s:?} (use an IANA name such as Europe/London)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert!(parse_size("lots").unwrap_err().contains("\"lots\""));
    }

    #[test]
    fn time_zones_by_name() {
        assert!(parse_tz("Europe/London").is_ok());
        assert!(parse_tz("Mars/Olympus")
            .unwrap_err()
            .contains("unknown time zone \"Mars/Olympus\""));
    }
}
