//! Micro benchmark of the event reader every whole-archive pass shares
//! (`import`, `reindex`, `rebuild`, the Parquet export): `parse_event_into`
//! over a simulated feed, one event reused, as those passes call it.
//!
//! Run: `cargo bench -p ccvault-event --bench scan -- [EVENTS] [RUNS]`
//! (default 200,000 events of `simulate --agents 400 --no-quirks --seed 5`,
//! 9 runs). Prints the median run in events/s and MB/s of payload, and a
//! checksum of what was read, so two builds can be compared on the same
//! work. For an exact comparison count instructions instead of seconds:
//! `valgrind --tool=callgrind target/release/deps/scan-* 200000 1`.

// A benchmark: a failure may stop it (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ccvault_event::{parse_event_into, Event};
use ccvault_sim::{simulate, Quirks, SimConfig};

fn feed(events: u64) -> Vec<u8> {
    let cfg = SimConfig {
        seed: 5,
        events: Some(events),
        agents: 400,
        quirks: Quirks::none(),
        ..SimConfig::default()
    };
    let mut raw = Vec::new();
    simulate(&cfg, &mut raw).unwrap();
    raw
}

/// Reads every line; returns a sum over what was read, so nothing is
/// optimized away and two builds can be seen to read the same.
#[inline(never)]
fn read_all(lines: &[&[u8]]) -> u64 {
    let mut event = Event::default();
    let mut sum = 0u64;
    for line in lines {
        parse_event_into(line, &mut event).unwrap();
        let ts = event.body.interaction_event_ts.as_i64().unwrap_or(0);
        let guid = event.body.interaction_guid.as_text().map_or(0, |g| g.len());
        sum = sum.wrapping_add(ts as u64).wrapping_add(guid as u64);
        black_box(&event);
    }
    sum
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let events: u64 = args.next().map_or(200_000, |a| a.parse().unwrap());
    let runs: usize = args.next().map_or(9, |a| a.parse().unwrap());
    let raw = feed(events);
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut check = 0;
    for _ in 0..runs {
        let started = Instant::now();
        check = read_all(&lines);
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    println!(
        "parse_event_into: {} events, {:.1} MB; median of {runs} runs {:.1} ms: {:.0} events/s, {:.0} MB/s, {:.1} ns/event (checksum {check})",
        lines.len(),
        bytes as f64 / 1e6,
        median * 1e3,
        lines.len() as f64 / median,
        bytes as f64 / 1e6 / median,
        median * 1e9 / lines.len() as f64,
    );
}
