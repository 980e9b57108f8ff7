//! Power loss, not just a killed process: the writer runs on a simulated disk
//! (`common/sim.rs`) whose power is cut at every mutating file operation in
//! turn — before and after every write, fsync, file creation, truncation and
//! directory fsync — with unsynced writes dropped, torn or reordered and
//! unsynced directory entries lost. The real recovery code then opens what
//! survived, and the test checks that every record acknowledged as durable
//! before the cut is there exactly once, and that every record served is one
//! the writer appended, byte for byte. Recovery itself is cut too, and the
//! log goes on being written after each recovery. Some scenarios compress
//! the sealed segments at the end of each generation, so the cuts also fall
//! on every step of a compression (temporary file, fsync, rename, directory
//! fsync, removal of the `.seg`) and on the tidying at the next open.
//!
//! Seeded and deterministic: a failure names the scenario and the cut.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ccvault_log::{
    verify_with, Compacted, Compression, FsyncPolicy, Log, LogOptions, Position, ScanItem,
};
use common::sim::SimDisk;
use common::{Rng, TestRec};

const DIR: &str = "/data/archive/log";
/// Generations (open, recover, append) per cut sequence.
const GENERATIONS: u64 = 3;

#[derive(Clone, Copy, Debug)]
struct Scenario {
    seed: u64,
    opts: LogOptions,
    records: u64,
    max_payload: u64,
    /// Compress the sealed segments after appending.
    compact: bool,
}

/// The record generation `generation` appends at `offset`: each generation
/// writes different bytes, so a record left over from an earlier one is told
/// apart.
fn record(generation: u64, offset: u64, max_payload: u64) -> TestRec {
    TestRec::new(generation << 32 | offset, max_payload)
}

/// What the writer was told, across generations.
#[derive(Default)]
struct Truth {
    /// Acknowledged durable: offset -> generation that wrote it.
    acked: BTreeMap<u64, u64>,
    /// Offset each generation started appending at.
    starts: BTreeMap<u64, u64>,
    /// Where each record was appended, by offset.
    positions: BTreeMap<u64, Position>,
}

impl Truth {
    /// What the index would pass as its checkpoint: the position of the
    /// last acknowledged record.
    fn checkpoint(&self) -> Option<Position> {
        let (offset, _) = self.acked.last_key_value()?;
        self.positions.get(offset).copied()
    }
}

/// Checks a freshly recovered log against `truth`.
fn check(disk: &SimDisk, log: &Log, next_offset: u64, truth: &Truth, sc: &Scenario, what: &str) {
    let max_acked = truth.acked.keys().next_back().copied();
    assert!(
        max_acked.is_none_or(|m| next_offset > m),
        "{what}: recovery resumes at {next_offset}, but {max_acked:?} was acknowledged"
    );
    let mut served: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last: Option<u64> = None;
    for item in log.reader().scan(Position::START) {
        let ScanItem::Record(at, r) = item.unwrap_or_else(|e| panic!("{what}: scan failed: {e}"))
        else {
            continue;
        };
        assert!(
            last.is_none_or(|l| r.offset > l),
            "{what}: offset {} served after {last:?} (at {at})",
            r.offset
        );
        last = Some(r.offset);
        let generation = ((r.ingest_ms - 1_700_000_000_000) as u64) >> 32;
        let started = truth.starts.get(&generation);
        assert!(
            started.is_some_and(|&s| r.offset >= s),
            "{what}: record {} at {at} claims generation {generation}, which never wrote it",
            r.offset
        );
        assert!(
            record(generation, r.offset, sc.max_payload).matches(r.offset, &r),
            "{what}: record {} at {at} is not what generation {generation} appended",
            r.offset
        );
        served.insert(r.offset, generation);
    }
    for (offset, generation) in &truth.acked {
        assert_eq!(
            served.get(offset),
            Some(generation),
            "{what}: acknowledged record {offset} (generation {generation}) is missing or replaced"
        );
    }
    let report = verify_with(disk.vfs().as_ref(), Path::new(DIR)).unwrap();
    assert_eq!(
        report.records,
        served.len() as u64,
        "{what}: verify and scan disagree"
    );
}

/// One generation: opens (recovering) the log, every other time from the
/// checkpoint an index would give, checks it, appends records with flushes
/// at random points, acknowledging what each flush makes durable. Stops at
/// the first error, which must be the power cut.
fn generation(disk: &SimDisk, sc: &Scenario, g: u64, truth: &mut Truth, what: &str) {
    let scan_from = if g % 2 == 1 { truth.checkpoint() } else { None };
    let (mut log, recovery) = match Log::open_with(disk.vfs(), Path::new(DIR), sc.opts, scan_from) {
        Ok(opened) => opened,
        Err(e) => {
            assert!(disk.is_cut(), "{what}: open failed with the power on: {e}");
            return;
        }
    };
    if let Some(cp) = scan_from.filter(|cp| cp.segment == recovery.scanned_from.segment) {
        assert_eq!(
            recovery.scanned_from, cp,
            "{what}: a checkpoint at a durable record was not trusted"
        );
    }
    check(disk, &log, recovery.next_offset, truth, sc, what);
    let start = recovery.next_offset;
    truth.starts.insert(g, start);
    let mut rng = Rng(sc.seed ^ (g + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for _ in 0..sc.records {
        let offset = log.next_offset();
        match log.append(&record(g, offset, sc.max_payload).as_new()) {
            Ok((at, position)) => {
                assert_eq!(at, offset);
                truth.positions.insert(at, position);
                if sc.opts.fsync == FsyncPolicy::Always {
                    truth.acked.insert(at, g);
                }
            }
            Err(e) => {
                assert!(
                    disk.is_cut(),
                    "{what}: append failed with the power on: {e}"
                );
                return;
            }
        }
        if rng.below(5) == 0 {
            match log.flush() {
                Ok(durable) => truth.acked.extend((start..durable).map(|o| (o, g))),
                Err(e) => {
                    assert!(disk.is_cut(), "{what}: flush failed with the power on: {e}");
                    return;
                }
            }
        }
    }
    // Sometimes the last records stay unflushed when the power goes.
    if rng.below(2) == 0 {
        if let Ok(durable) = log.flush() {
            truth.acked.extend((start..durable).map(|o| (o, g)));
        }
    }
    if sc.compact {
        let c = Compression {
            level: 1,
            block_bytes: 4096,
        };
        match log.compact_sealed(c) {
            // A segment keeps damage recovery could not cut (a lost sector
            // before records that survived): it stays a `.seg`.
            Ok(done) => {
                for (base, c) in done {
                    assert!(
                        matches!(c, Compacted::Done { .. } | Compacted::Damaged),
                        "{what}: segment {base}: {c:?}"
                    );
                }
            }
            Err(e) => assert!(
                disk.is_cut(),
                "{what}: compression failed with the power on: {e}"
            ),
        }
    }
    drop(log);
}

/// Mutating operations of one uncut first generation of `sc`.
fn ops_of(sc: &Scenario) -> u64 {
    let disk = SimDisk::new(sc.seed, sc.opts.direct_io);
    generation(&disk, sc, 0, &mut Truth::default(), "dry run");
    disk.ops()
}

/// Cuts the power at every operation of the first generation in turn; after
/// each, recovers and runs further generations with a cut at a random
/// operation. Returns the number of cuts.
fn run(sc: &Scenario) -> u64 {
    let n = ops_of(sc);
    assert!(n > 10, "{sc:?}: only {n} operations");
    let mut cuts = 0;
    let mut compressed = 0;
    for k in 1..=n {
        let disk = SimDisk::new(sc.seed.wrapping_add(k), sc.opts.direct_io);
        let mut truth = Truth::default();
        let mut rng = Rng(sc.seed ^ k << 20 | 1);
        for g in 0..GENERATIONS {
            let at = if g == 0 { k } else { 1 + rng.below(n) };
            disk.arm_cut(at);
            let what = format!("{sc:?}, cut at operation {k}, generation {g} (cut at {at})");
            generation(&disk, sc, g, &mut truth, &what);
            disk.cut_now();
            disk.restart();
            cuts += 1;
        }
        // Power on for good: recovery must still find every acknowledged record.
        let what = format!("{sc:?}, cut at operation {k}, final open");
        generation(
            &disk,
            &Scenario { records: 0, ..*sc },
            GENERATIONS,
            &mut truth,
            &what,
        );
        let names = disk.vfs().list_dir(Path::new(DIR)).unwrap_or_default();
        compressed += names.iter().filter(|n| n.ends_with(".segz")).count();
    }
    assert_eq!(
        sc.compact,
        compressed > 0,
        "{sc:?}: {compressed} compressed segments after the runs"
    );
    cuts
}

fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    let mut seed = 0x5EED_0001;
    for fsync in [FsyncPolicy::Batch, FsyncPolicy::Always] {
        for direct_io in [false, true] {
            // Small segments roll often; larger ones reach whole direct blocks.
            for (segment_bytes, records, max_payload) in [(600, 24, 120), (9_000, 30, 900)] {
                seed += 1;
                all.push(Scenario {
                    seed,
                    opts: LogOptions {
                        segment_bytes,
                        fsync,
                        direct_io,
                        compression: None,
                    },
                    records,
                    max_payload,
                    compact: false,
                });
            }
        }
    }
    for (fsync, direct_io) in [(FsyncPolicy::Batch, false), (FsyncPolicy::Always, true)] {
        seed += 1;
        all.push(Scenario {
            seed,
            opts: LogOptions {
                segment_bytes: 4_000,
                fsync,
                direct_io,
                // Compressed by `compact_sealed` at the end of each
                // generation: a background thread would make the order of
                // operations, and so the cuts, vary from run to run.
                compression: None,
            },
            records: 30,
            max_payload: 600,
            compact: true,
        });
    }
    all
}

#[test]
fn acknowledged_records_survive_a_power_cut_at_every_operation() {
    let started = Instant::now();
    let mut cuts = 0;
    for sc in scenarios() {
        cuts += run(&sc);
    }
    eprintln!(
        "power_loss: {cuts} simulated power cuts in {:.2?}",
        started.elapsed()
    );
    assert!(cuts >= 300, "only {cuts} cuts");
}

/// The directory entries the writer creates must be durable before it
/// acknowledges anything: cut the power right after the first
/// acknowledgement, losing every entry not fsynced, and the record is there.
#[test]
fn a_new_log_and_its_first_segment_survive_losing_unsynced_directory_entries() {
    for seed in 0..64 {
        let disk = SimDisk::new(seed, false);
        let opts = LogOptions {
            segment_bytes: 600,
            ..LogOptions::default()
        };
        let (mut log, _) = Log::open_with(disk.vfs(), Path::new(DIR), opts, None).unwrap();
        let rec = record(0, 0, 50);
        log.append(&rec.as_new()).unwrap();
        assert_eq!(log.flush().unwrap(), 1);
        disk.cut_now();
        drop(log);
        disk.restart();
        let (log, recovery) = Log::open_with(disk.vfs(), Path::new(DIR), opts, None).unwrap();
        assert_eq!(
            recovery.next_offset, 1,
            "seed {seed}: the acknowledged record is gone"
        );
        let r = log
            .reader()
            .read_at(Position {
                segment: 0,
                pos: ccvault_log::HEADER_LEN,
            })
            .unwrap();
        assert!(rec.matches(0, &r));
    }
}
