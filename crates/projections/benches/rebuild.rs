//! Benchmark of the materialized projections: rebuild throughput and peak
//! memory, report time over the materialized archive, incremental catch-up
//! after importing 1,000 new events.
//!
//! Run: `cargo bench -p ccvault-projections --bench rebuild -- [EVENTS]`
//! (default 1,000,000 events of ~800 bytes, simulated by ccvault-sim and
//! padded). The rebuild runs in a child process so its peak RSS (VmHWM) is
//! its own, not the import's.

// A benchmark: a failure may stop it (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The allocator of the `ccvault` binary, whose rebuild this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ccvault_projections::report::{GroupBy, Interval, ReportOptions};
use ccvault_projections::{Projections, RebuildOptions};
use ccvault_sim::{simulate, Quirks, SimConfig};
use ccvault_store::{
    import_stream, Archive, ArchiveOptions, ArchiveReader, FsyncPolicy, SourceKind,
};

const TARGET_BYTES: usize = 800;

/// A simulated stream (quirks on, but bare events so padding stays JSON),
/// each line padded with a `zpad` field to ~800 bytes.
fn stream(events: u64, seed: u64, start_ms: i64) -> Vec<u8> {
    let cfg = SimConfig {
        seed,
        events: Some(events),
        agents: 200,
        start_ms,
        quirks: Quirks {
            envelope_rate: 0.0,
            malformed_rate: 0.0,
            ..Quirks::default()
        },
        ..SimConfig::default()
    };
    let mut raw = Vec::new();
    if let Err(e) = simulate(&cfg, &mut raw) {
        panic!("simulate: {e}");
    }
    let mut out = Vec::with_capacity(raw.len() * 2);
    for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match line.strip_suffix(b"}}") {
            Some(body) if line.len() + 12 < TARGET_BYTES => {
                out.extend_from_slice(body);
                out.extend_from_slice(b",\"zpad\":\"");
                out.resize(out.len() + TARGET_BYTES - line.len() - 12, b'x');
                out.extend_from_slice(b"\"}}\n");
            }
            _ => {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
    }
    out
}

fn import(dir: &Path, data: Vec<u8>) -> u64 {
    let opts = ArchiveOptions {
        fsync: FsyncPolicy::Never,
        ..ArchiveOptions::default()
    };
    let (mut archive, _) = Archive::open(dir, opts).expect("open archive");
    let s = import_stream(
        &mut archive,
        std::io::Cursor::new(data),
        SourceKind::File,
        "bench",
        1 << 20,
        &mut |_| {},
    )
    .expect("import");
    archive.sync().expect("sync");
    s.archived
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Child mode: rebuild the projections of `dir` and print the numbers.
fn child_rebuild(dir: &Path) {
    let mut reader = ArchiveReader::open(dir).expect("reader");
    let mut p = Projections::open(dir).expect("projections");
    let started = Instant::now();
    let applied = p
        .rebuild(&mut reader, RebuildOptions::default(), &mut |_| {})
        .expect("rebuild");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rebuild: {} records, {} interactions, {} agent changes in {secs:.3} s = {:.0} events/s, peak RSS {:.0} MiB",
        applied.records,
        applied.interactions,
        applied.agent_changes,
        applied.records as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child-rebuild") {
        if let Some(dir) = args.get(1) {
            child_rebuild(Path::new(dir));
        }
        return;
    }
    let events: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // CCVAULT_BENCH_DIR keeps the archive for profiling (must not exist yet).
    let kept = std::env::var_os("CCVAULT_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = kept.as_deref().unwrap_or(dir.path());

    let t = Instant::now();
    let data = stream(events, 42, 1_763_856_000_000);
    println!(
        "generated {} lines, {:.0} MB, avg {:.0} bytes/line in {:.1} s",
        data.iter().filter(|b| **b == b'\n').count(),
        data.len() as f64 / 1e6,
        data.len() as f64 / data.iter().filter(|b| **b == b'\n').count().max(1) as f64,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let archived = import(d, data);
    println!(
        "imported {archived} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Rebuild in a child so the peak RSS is the rebuild's alone; twice, the
    // second with a warm page cache.
    let exe = std::env::current_exe().expect("current exe");
    for _ in 0..2 {
        let out = Command::new(&exe)
            .arg("child-rebuild")
            .arg(d)
            .output()
            .expect("run child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }

    let p = Projections::open(d).expect("projections");
    for (name, opts) in [
        ("report 1h all", ReportOptions::default()),
        (
            "report 15m by queue America/New_York",
            ReportOptions {
                interval: Interval::Min15,
                by: GroupBy::QUEUE,
                tz: jiff::tz::TimeZone::get("America/New_York").expect("tz"),
                ..ReportOptions::default()
            },
        ),
        (
            "report 1d by agent",
            ReportOptions {
                interval: Interval::Day1,
                by: GroupBy::AGENT,
                ..ReportOptions::default()
            },
        ),
    ] {
        let mut best = f64::MAX;
        let mut rows = 0;
        for _ in 0..3 {
            let t = Instant::now();
            rows = p.report(opts.clone()).expect("report").len();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: {rows} rows in {:.3} s (best of 3)", best);
    }
    let t = Instant::now();
    let agents = p.agents(None, None).expect("agents").len();
    println!(
        "agents: {agents} agents in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    drop(p);

    // 1,000 new events: a later day of another seed, so new interactions
    // plus whatever the simulator's late/duplicate quirks bring.
    let more = stream(1_000, 43, 1_763_856_000_000 + 86_400_000);
    let added = import(d, more);
    let mut reader = ArchiveReader::open(d).expect("reader");
    let mut p = Projections::open(d).expect("projections");
    let t = Instant::now();
    let applied = p.catch_up(&mut reader, &mut |_| {}).expect("catch up");
    println!(
        "incremental: {added} new records -> {} records read, {} interactions, {} agent changes in {:.1} ms",
        applied.records,
        applied.interactions,
        applied.agent_changes,
        t.elapsed().as_secs_f64() * 1000.0
    );
}
