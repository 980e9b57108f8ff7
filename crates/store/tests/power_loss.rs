//! Power loss under the segments' facts: a writer appends records to a log
//! on the log crate's simulated disk (`crates/log/tests/common/sim.rs`) and
//! keeps each segment's facts as the archive's writer does (the facts of a
//! segment written once the log rolls past it, before that roll's records
//! are flushed; the last segment's at a clean close; resumed or removed at
//! the next open by `facts::resume`). The power is cut at every mutating
//! operation of the first generation in turn, then at a random one of each
//! later generation, with unsynced writes dropped, torn or reordered and
//! unsynced directory entries lost. After each cut the log recovers and the
//! facts are resumed, and then what `verify` checks of the facts must hold:
//! every facts file reads whole (a torn one would be reported as damage),
//! and every fact served for a record of the log is that record's (a cut
//! segment's offsets are appended again with other bytes of the same
//! length, so a stale entry would be served for the wrong record).
//!
//! Seeded and deterministic: a failure names the seed and the cut.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../log/tests/common/rng.rs"]
mod rng;
// The log's simulated disk, whole: this test uses only part of it.
#[allow(dead_code)]
#[path = "../../log/tests/common/sim.rs"]
mod sim;

use std::path::Path;

use ccvault_event::{parse_event, Keys};
use ccvault_log::{
    FsyncPolicy, Log, LogOptions, NewRecord, Position, RecordKind, ScanItem, SourceKind,
};
use ccvault_store::facts::{self, FactsBuilder, FactsCursor, SegmentFacts};
use rng::Rng;
use sim::SimDisk;

const LOG: &str = "/data/archive/log";
const FACTS: &str = "/data/archive/facts";
/// Generations (open, recover, resume the facts, append) per cut sequence.
const GENERATIONS: u64 = 4;
/// Records a generation appends: several segments' worth.
const RECORDS: u64 = 40;

fn options(fsync: FsyncPolicy) -> LogOptions {
    LogOptions {
        // A few records a segment: the log rolls every few appends.
        segment_bytes: 1_500,
        fsync,
        direct_io: false,
        compression: None,
    }
}

/// The event generation `g` appends at `offset`. Its length depends on the
/// offset only, so a record a cut took and a later generation appended
/// again has the old one's length and other facts (GUID, agent, times).
fn payload(g: u64, offset: u64) -> Vec<u8> {
    let event = ["InteractionQueued", "InteractionEnded"][(offset % 2) as usize];
    let agent = (g * 7 + offset) % 100;
    let ts = 1_763_900_000 + g * 10_000 + offset;
    format!(
        r#"{{"Interaction":{{"event":"{event}","interactionGUID":"int-g{g}-{offset:06}","agentId":"agent-{agent:02}","interactionEventTS":{ts},"msgInfo":{{"timestamp":{ts}123}}}}}}"#
    )
    .into_bytes()
}

fn keys_of(payload: &[u8]) -> Keys {
    let event = parse_event(payload).expect("the test's events parse");
    Keys::of(&event, payload)
}

/// The facts `verify` would find fault with after a recovery: a facts file
/// that does not read whole, a fact that disagrees with its record, a
/// malformed entry, an entry of the wrong length.
fn check(disk: &SimDisk, log: &Log, what: &str) -> u64 {
    let vfs = disk.vfs();
    let mut current: Option<(u64, Option<FactsCursor>)> = None;
    let mut served = 0;
    let end = |current: Option<(u64, Option<FactsCursor>)>| {
        if let Some((base, Some(c))) = current {
            assert!(c.is_sound(), "{what}: segment {base}: a malformed entry");
            assert_eq!(c.mismatched(), 0, "{what}: segment {base}: wrong lengths");
        }
    };
    for item in log.reader().scan(Position::START) {
        let ScanItem::Record(at, r) = item.unwrap_or_else(|e| panic!("{what}: scan: {e}")) else {
            continue;
        };
        if current.as_ref().map(|(b, _)| *b) != Some(at.segment) {
            end(current.take());
            let read = SegmentFacts::read(vfs.as_ref(), Path::new(FACTS), at.segment)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            current = Some((at.segment, read.map(SegmentFacts::into_cursor)));
        }
        let Some((_, Some(cursor))) = current.as_mut() else {
            continue;
        };
        let Some(fact) = cursor.get(r.offset, r.payload.len()) else {
            continue;
        };
        let keys = keys_of(&r.payload);
        let names = keys.names.as_ref().and_then(|n| n.read(&r.payload));
        assert_eq!(
            (
                names,
                keys.interaction_guid.as_deref(),
                keys.agent_id.as_deref(),
                keys.times
            ),
            (
                Some((fact.family, fact.event_type)),
                fact.interaction_guid,
                fact.agent_id,
                fact.times
            ),
            "{what}: the facts of offset {} are not its record's",
            r.offset
        );
        served += 1;
    }
    end(current);
    served
}

fn record(payload: &[u8]) -> NewRecord<'_> {
    NewRecord {
        kind: RecordKind::Message,
        ingest_ms: 1_763_900_000_000,
        quarantined: false,
        source_kind: SourceKind::File,
        source: "power-loss.ndjson",
        line: 0,
        message_id: "",
        publish_time: "",
        quarantine_reason: "",
        payload,
    }
}

/// What the sessions of a test met.
#[derive(Debug, Default)]
struct Tally {
    /// Facts served for records of the log, and checked.
    served: u64,
    /// Opens that continued the last segment's facts.
    continued: u64,
    /// Opens that removed the last segment's facts: a record they named
    /// was past the log's end.
    removed: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.served += o.served;
        self.continued += o.continued;
        self.removed += o.removed;
    }
}

/// One writer's session: opens (recovering) the log, resumes the facts,
/// checks them, appends with flushes at random points and writes each
/// segment's facts as the log rolls past it, and at a clean close the last
/// one's. Stops at the first error, which must be the power cut.
fn generation(disk: &SimDisk, fsync: FsyncPolicy, g: u64, seed: u64, what: &str) -> Tally {
    let mut tally = Tally::default();
    let vfs = disk.vfs();
    let facts_dir = Path::new(FACTS);
    let cut = |e: &dyn std::fmt::Display, doing: &str| {
        assert!(
            disk.is_cut(),
            "{what}: {doing} failed with the power on: {e}"
        );
    };
    let (mut log, _) = match Log::open_with(vfs.clone(), Path::new(LOG), options(fsync), None) {
        Ok(opened) => opened,
        Err(e) => {
            cut(&e, "open");
            return tally;
        }
    };
    let last = log.end_position().segment;
    let had_last = matches!(
        SegmentFacts::read(vfs.as_ref(), facts_dir, last),
        Ok(Some(_))
    );
    let mut building = match facts::resume(vfs.as_ref(), facts_dir, last, log.next_offset()) {
        Ok(b) => b,
        Err(e) => {
            cut(&e, "resuming the facts");
            return tally;
        }
    };
    tally.continued += u64::from(building.is_some());
    tally.removed += u64::from(had_last && building.is_none());
    tally.served += check(disk, &log, what);
    let mut rng = Rng(seed ^ (g + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for _ in 0..RECORDS {
        let offset = log.next_offset();
        let p = payload(g, offset);
        let (at, position) = match log.append(&record(&p)) {
            Ok(appended) => appended,
            Err(e) => {
                cut(&e, "append");
                return tally;
            }
        };
        if building.as_ref().map(FactsBuilder::base) != Some(position.segment) {
            if let Some(done) = building.take().filter(|b| !b.is_empty()) {
                if let Err(e) = done.write(vfs.as_ref(), facts_dir) {
                    cut(&e, "writing facts");
                    return tally;
                }
            }
            building = Some(FactsBuilder::new(position.segment));
        }
        if let Some(b) = building.as_mut() {
            b.push(at, &p, &keys_of(&p));
        }
        if rng.below(5) == 0 {
            if let Err(e) = log.flush() {
                cut(&e, "flush");
                return tally;
            }
        }
    }
    // A clean close (flushed, then the last segment's facts) or the power
    // going off before it.
    if rng.below(3) > 0 {
        if let Err(e) = log.flush() {
            cut(&e, "the closing flush");
            return tally;
        }
        if let Some(done) = building.take().filter(|b| !b.is_empty()) {
            if let Err(e) = done.write(vfs.as_ref(), facts_dir) {
                cut(&e, "writing the last facts");
            }
        }
    }
    tally
}

fn ops_of(fsync: FsyncPolicy, seed: u64) -> u64 {
    let disk = SimDisk::new(seed, false);
    generation(&disk, fsync, 0, seed, "dry run");
    disk.ops()
}

#[test]
fn facts_stay_whole_and_true_through_a_power_cut_at_every_operation() {
    let mut cuts = 0;
    let mut tally = Tally::default();
    for (seed, fsync) in [
        (0xFAC7_0001, FsyncPolicy::Batch),
        (0xFAC7_0002, FsyncPolicy::Always),
    ] {
        let n = ops_of(fsync, seed);
        assert!(n > 50, "only {n} operations");
        for k in 1..=n {
            let disk = SimDisk::new(seed.wrapping_add(k), false);
            let mut rng = Rng(seed ^ k << 20 | 1);
            for g in 0..GENERATIONS {
                let at = if g == 0 { k } else { 1 + rng.below(n) };
                disk.arm_cut(at);
                let what = format!(
                    "seed {seed:#x} {fsync:?}, cut at operation {k}, generation {g} (cut at {at})"
                );
                tally += generation(&disk, fsync, g, seed, &what);
                disk.cut_now();
                disk.restart();
                cuts += 1;
            }
            let what = format!("seed {seed:#x} {fsync:?}, cut at operation {k}, final open");
            let (log, _) =
                Log::open_with(disk.vfs(), Path::new(LOG), options(fsync), None).unwrap();
            let end = log.end_position().segment;
            facts::resume(
                disk.vfs().as_ref(),
                Path::new(FACTS),
                end,
                log.next_offset(),
            )
            .unwrap();
            tally.served += check(&disk, &log, &what);
        }
    }
    eprintln!("power_loss: {cuts} cuts, {tally:?}");
    // There are facts to check after most cuts, and some opens continue
    // the last segment's. (Facts that name records a cut took depend on the
    // facts winning a race with the log's flusher: the next test makes them
    // so.)
    assert!(tally.continued > 0, "{tally:?}");
    assert!(tally.served > cuts, "{tally:?} in {cuts} cuts");
}

/// The archive's facts thread may write a segment's facts before the log
/// has synced that segment's last records (it starts once the log rolls,
/// and the log syncs on its own thread). Made so here: the facts of records
/// never flushed are written, then the power goes. The next writer must
/// remove them and append those offsets again with other bytes (of the
/// same lengths), and no fact of the old records may be served for them.
#[test]
fn facts_of_records_a_power_cut_took_are_never_served_for_others() {
    let mut removed = 0;
    for seed in 1..=24u64 {
        let disk = SimDisk::new(seed, false);
        let vfs = disk.vfs();
        let facts_dir = Path::new(FACTS);
        let fsync = FsyncPolicy::Batch;
        // A first session whose records are durable, so that the lost ones
        // are the tail of a segment with records before them.
        let kept = generation(&disk, fsync, 0, seed, "first session");
        assert_eq!(kept.served, 0);
        disk.cut_now();
        disk.restart();
        let (mut log, _) =
            Log::open_with(vfs.clone(), Path::new(LOG), options(fsync), None).unwrap();
        let last = log.end_position().segment;
        let mut facts = facts::resume(vfs.as_ref(), facts_dir, last, log.next_offset())
            .unwrap()
            .unwrap_or_else(|| FactsBuilder::new(last));
        for _ in 0..1 + seed % 3 {
            let offset = log.next_offset();
            let p = payload(1, offset);
            let (at, position) = log.append(&record(&p)).unwrap();
            if position.segment != last {
                break;
            }
            facts.push(at, &p, &keys_of(&p));
        }
        facts.write(vfs.as_ref(), facts_dir).unwrap();
        disk.cut_now();
        drop(log);
        disk.restart();
        let what = format!("seed {seed}, after the cut");
        let t = generation(&disk, fsync, 2, seed, &what);
        removed += t.removed;
        disk.cut_now();
        disk.restart();
        let (log, _) = Log::open_with(vfs.clone(), Path::new(LOG), options(fsync), None).unwrap();
        let end = log.end_position().segment;
        facts::resume(vfs.as_ref(), facts_dir, end, log.next_offset()).unwrap();
        check(&disk, &log, &format!("seed {seed}, final open"));
    }
    assert!(removed > 0, "no facts were removed");
}
