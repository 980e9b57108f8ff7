//! `ccvault verify`: every CRC of the log, and the index against the log.
//!
//! Guarantees: reads every byte of every segment; damage in one record is
//! reported with its segment file and byte position and never hides the
//! records after it; every visible record must be found by every posting
//! that should name it (by GUID, else by payload hash; and by agent), and
//! the posting tables must hold nothing else; every stored filter must
//! hold the keys of its generation (`IndexReader::filter_problems`); the
//! payload hash each GUID posting keeps for the duplicate check must be
//! its record's; every entry of the index's tables must be found by a
//! lookup of its own key (`IndexReader::lookup_problems`); the index's counts of
//! dropped messages must be those of the log's last readable tally, and
//! every other count `stats` prints (records, events, quarantined,
//! interactions, untimed, the time ranges) the log's records' own. An
//! index behind the log with no writer running is a problem (readers did
//! not see durable records): it is reported, and indexed, so the run exits
//! non-zero once and the next is clean. A running writer's uncommitted records are not a problem, and the
//! record it is writing (a torn tail of the last segment while it holds the
//! log) is not damage.

use std::path::Path;
use std::sync::mpsc;

use ccvault_event::{parse_event, resolve_time, Arrival, Keys};
use ccvault_index::{
    guid_place, payload_hash, time_place, Counters, ExpectedRanges, PackedTotals, PostingDigest,
    PostingKind, INDEX_VERSION,
};
use ccvault_log::{
    verify as verify_log, DamageReason, PackedSegments, Position, RecordRef, ScanRef, SourceKind,
    StdVfs, Tally,
};

use crate::archive::{arrival, payload_time};
use crate::error::{Result, StoreError};
use crate::facts::{FactsCursor, SegmentFacts};
use crate::reader::{ArchiveReader, CatchUp};

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub segments: usize,
    /// Readable messages (events and quarantined inputs).
    pub records: u64,
    /// Readable tally records (docs/FORMAT.md §1.4), not in `records`.
    pub tallies: u64,
    /// Log damage: segment file and position of each damaged record.
    pub damage: Vec<ccvault_log::Damage>,
    /// Disagreements between the index and the log.
    pub index_problems: Vec<String>,
    /// What opening the archive did that is not a problem (the upgrade of
    /// an older build's index).
    pub notes: Vec<String>,
    /// Records whose segment's facts were checked against their payload.
    pub facts_checked: u64,
    /// Facts files that are damaged, or disagree with the payloads they
    /// describe (derived data: readers then parse; removing the file is
    /// safe).
    pub facts_problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.index_problems.is_empty() && self.facts_problems.is_empty()
    }
}

/// What the visible records of the log hold besides postings.
#[derive(Default)]
struct Seen {
    /// Messages (events and quarantined inputs).
    messages: u64,
    quarantined: u64,
    /// The last readable tally: its offset and counts.
    last_tally: Option<(u64, Tally)>,
}

/// Visible messages of the log, copied out of it a batch at a time, so
/// that another thread may parse them while the log is read on.
#[derive(Default)]
struct Batch {
    payloads: Vec<u8>,
    /// Each message's offset, place in the log, whether it is
    /// quarantined, and where its payload ends in `payloads`.
    messages: Vec<(u64, Position, bool, usize)>,
    /// Each message's ingest time, source kind, and where its envelope's
    /// `publishTime` ends in `publish_times`: what its event time may come
    /// from.
    arrivals: Vec<(i64, SourceKind, usize)>,
    publish_times: String,
}

/// One message of a [`Batch`].
struct Message<'b> {
    offset: u64,
    at: Position,
    quarantined: bool,
    payload: &'b [u8],
    arrival: Arrival<'b>,
}

/// Payload bytes after which a batch is handed on.
const BATCH_BYTES: usize = 1 << 20;

impl Batch {
    fn push(&mut self, at: Position, rec: &RecordRef<'_>) {
        self.payloads.extend_from_slice(rec.payload);
        let end = self.payloads.len();
        self.messages.push((rec.offset, at, rec.quarantined, end));
        self.publish_times.push_str(rec.publish_time);
        let publish_end = self.publish_times.len();
        self.arrivals
            .push((rec.ingest_ms, rec.source_kind, publish_end));
    }

    fn clear(&mut self) {
        self.payloads.clear();
        self.messages.clear();
        self.arrivals.clear();
        self.publish_times.clear();
    }

    /// Each message, in log order.
    fn messages(&self) -> impl Iterator<Item = Message<'_>> {
        let (mut start, mut publish_start) = (0, 0);
        self.messages.iter().zip(&self.arrivals).map(
            move |(&(offset, at, quarantined, end), &(ingest_ms, kind, publish_end))| {
                let payload = self.payloads.get(start..end).unwrap_or_default();
                let publish_time = self
                    .publish_times
                    .get(publish_start..publish_end)
                    .filter(|t| !t.is_empty());
                (start, publish_start) = (end, publish_end);
                Message {
                    offset,
                    at,
                    quarantined,
                    payload,
                    arrival: arrival(publish_time, ingest_ms, kind),
                }
            },
        )
    }
}

/// Reads the visible records of the log, hands its messages to `each` a
/// [`Batch`] at a time (`each` returns an emptied batch to fill next), and
/// returns what else the records hold.
fn scan_batches(
    reader: &ArchiveReader,
    mut each: impl FnMut(Batch) -> Result<Batch>,
) -> Result<Seen> {
    let visible_end = reader.visible_end();
    let mut seen = Seen::default();
    let mut batch = Batch::default();
    let mut scan = reader.log().scan(Position { segment: 0, pos: 0 });
    while let Some(item) = scan.next_ref() {
        let (at, rec) = match item? {
            ScanRef::Record(at, rec) => (at, rec),
            ScanRef::Damage(_) => continue, // reported by the log verification
        };
        if rec.offset >= visible_end {
            break;
        }
        if let Some(t) = rec.tally() {
            seen.last_tally = Some((rec.offset, t));
            continue;
        }
        seen.messages += 1;
        seen.quarantined += u64::from(rec.quarantined);
        batch.push(at, &rec);
        if batch.payloads.len() >= BATCH_BYTES {
            batch = each(batch)?;
            batch.clear();
        }
    }
    if !batch.messages.is_empty() {
        each(batch)?;
    }
    Ok(seen)
}

/// Calls `f(kind, key, offset, pos, place, payload_hash)` for every posting
/// the messages of `batch` call for (`place`: the key's place, for the
/// index's key ranges; `payload_hash`: what a GUID posting keeps for the
/// duplicate check, 0 for the other kinds), and `facts` with each message
/// that is not quarantined.
fn batch_postings(
    batch: &Batch,
    mut facts: Option<&mut FactsCheck>,
    mut times: Option<&mut Counters>,
    mut f: impl FnMut(PostingKind, &[u8], u64, u32, Option<u64>, u64) -> Result<()>,
) -> Result<()> {
    for message in batch.messages() {
        let Message {
            offset,
            at,
            quarantined,
            payload,
            arrival,
        } = message;
        let pos = at.pos;
        let keys = if quarantined {
            Keys::default()
        } else {
            parse_event(payload)
                .map(|ev| Keys::of(&ev, payload))
                .unwrap_or_default()
        };
        if let (Some(check), false) = (facts.as_deref_mut(), quarantined) {
            check.message(offset, at.segment, payload, &keys);
        }
        if let Some(times) = times.as_deref_mut() {
            // The time indexing gave the record (`index_entry`).
            let t = resolve_time(keys.times, arrival);
            times.add_time(t.ms, t.is_timed());
        }
        match &keys.interaction_guid {
            Some(guid) => f(
                PostingKind::Guid,
                guid.as_bytes(),
                offset,
                pos,
                guid_place(guid),
                payload_hash(payload),
            )?,
            None => {
                let place = payload_time(&keys, quarantined).map(time_place);
                f(PostingKind::Payload, payload, offset, pos, place, 0)?
            }
        }
        if let Some(agent) = &keys.agent_id {
            f(PostingKind::Agent, agent.as_bytes(), offset, pos, None, 0)?;
        }
    }
    Ok(())
}

/// Each record's facts (`crate::facts`) against its payload as parsed now.
struct FactsCheck {
    dir: std::path::PathBuf,
    /// The segment being read, and its facts if it has usable ones.
    current: Option<(u64, Option<FactsCursor>)>,
    checked: u64,
    problems: Vec<String>,
}

impl FactsCheck {
    fn new(dir: std::path::PathBuf) -> FactsCheck {
        FactsCheck {
            dir,
            current: None,
            checked: 0,
            problems: Vec::new(),
        }
    }

    fn message(&mut self, offset: u64, segment: u64, payload: &[u8], keys: &Keys) {
        if self.current.as_ref().map(|(base, _)| *base) != Some(segment) {
            self.end_segment();
            let cursor = match SegmentFacts::read(&StdVfs, &self.dir, segment) {
                Ok(f) => f.map(SegmentFacts::into_cursor),
                Err(e) => {
                    self.problems.push(format!(
                        "{e}: not used (the facts are derived: readers parse those events; `ccvault reindex` writes the file again, and removing it is safe)"
                    ));
                    None
                }
            };
            self.current = Some((segment, cursor));
        }
        let Some((_, Some(cursor))) = self.current.as_mut() else {
            return;
        };
        let Some(fact) = cursor.get(offset, payload.len()) else {
            return;
        };
        self.checked += 1;
        let names = keys.names.as_ref().and_then(|n| n.read(payload));
        let agrees = names == Some((fact.family, fact.event_type))
            && keys.interaction_guid.as_deref() == fact.interaction_guid
            && keys.agent_id.as_deref() == fact.agent_id
            && keys.times == fact.times;
        if !agrees {
            self.problems.push(format!(
                "the facts of segment {segment} disagree with the payload of offset {offset}: \
                 they say {fact:?}, the payload parses to {names:?} {keys:?}"
            ));
        }
    }

    /// Reports an entry of the segment read last that could not be read,
    /// or that named a record of another length.
    fn end_segment(&mut self) {
        if let Some((base, Some(cursor))) = self.current.take() {
            if !cursor.is_sound() {
                self.problems.push(format!(
                    "the facts of segment {base} hold a malformed entry: the entries after it are not used"
                ));
            }
            if cursor.mismatched() > 0 {
                self.problems.push(format!(
                    "the facts of segment {base} give {} records a payload length they do not have",
                    cursor.mismatched()
                ));
            }
        }
    }
}

/// Batches waiting for the parsing thread of [`expected_digests`].
const BATCHES_QUEUED: usize = 4;

/// What the parsing thread of [`expected_digests`] found.
struct Expected {
    digests: [PostingDigest; 3],
    places: ExpectedRanges,
    facts: FactsCheck,
    /// The records' time ranges and untimed count, as indexing counts
    /// them (the rest of `Counters` unused).
    times: Counters,
}

/// The digests of the postings the visible records call for, and their
/// keys' places, with what else the records hold; and each record's facts
/// checked. The log is read on this thread and parsed on another: a
/// digest is a sum, so the order in which the postings are added does not
/// matter.
fn expected_digests(reader: &ArchiveReader) -> Result<(Seen, Expected)> {
    let (to_parse, batches) = mpsc::sync_channel::<Batch>(BATCHES_QUEUED);
    let (to_refill, emptied) = mpsc::channel::<Batch>();
    let facts_dir = reader.facts_dir();
    std::thread::scope(|s| {
        let parse = move || -> Result<Expected> {
            let mut expected = [PostingDigest::default(); 3];
            let mut places = ExpectedRanges::default();
            let mut facts = FactsCheck::new(facts_dir);
            let mut times = Counters::default();
            for batch in batches {
                batch_postings(
                    &batch,
                    Some(&mut facts),
                    Some(&mut times),
                    |kind, key, offset, pos, place, hash| {
                        expected[kind as usize].add_key(kind, key, offset, pos, hash);
                        places.add(kind, offset, place);
                        Ok(())
                    },
                )?;
                // The reader may have stopped: the batch is then dropped.
                let _ = to_refill.send(batch);
            }
            facts.end_segment();
            Ok(Expected {
                digests: expected,
                places,
                facts,
                times,
            })
        };
        let parser = std::thread::Builder::new()
            .name("ccvault-verify-parse".to_owned())
            .spawn_scoped(s, parse)
            .map_err(|e| {
                StoreError::Thread(format!("verify cannot start a parsing thread: {e}"))
            })?;
        let seen = scan_batches(reader, |batch| {
            to_parse
                .send(batch)
                .map_err(|_| StoreError::Thread("verify's parsing thread stopped".to_owned()))?;
            Ok(emptied.try_recv().unwrap_or_default())
        });
        drop(to_parse);
        let parsed = parser.join().unwrap_or_else(|_| {
            Err(StoreError::Thread(
                "verify's parsing thread panicked".to_owned(),
            ))
        });
        // A parsing error explains a reader that could not hand on.
        let expected = parsed?;
        Ok((seen?, expected))
    })
}

/// [`verify_log`], not counting the record a running writer is still
/// writing: the end of the last segment then reads as a torn tail, which
/// is damage only when no writer holds the log. A writer that stopped
/// between the check and the probe has completed its tail, so a second
/// read tells the two apart.
fn verify_log_beside_writer(log_dir: &Path) -> Result<ccvault_log::VerifyReport> {
    let torn = |r: &ccvault_log::VerifyReport| {
        r.damage
            .last()
            .filter(|d| d.reason == DamageReason::TruncatedTail)
            .map(|d| (d.segment, d.pos))
    };
    let mut report = verify_log(log_dir)?;
    for second_read in [false, true] {
        let Some(tail) = torn(&report) else {
            break;
        };
        if ccvault_log::writer_running(log_dir)? {
            report.damage.pop();
            break;
        }
        if second_read {
            break;
        }
        let again = verify_log(log_dir)?;
        if torn(&again) == Some(tail) {
            break;
        }
        report = again;
    }
    Ok(report)
}

/// Whether the index's counts of dropped messages are those of the log's
/// last readable tally (a log written before tallies has none, and the
/// index may hold counts of its own then).
fn tally_problem(
    index_tally: Option<u64>,
    (duplicates, control): (u64, u64),
    log_tally: Option<(u64, Tally)>,
) -> Option<String> {
    match (index_tally, log_tally) {
        (None, None) => None,
        (Some(at), Some((offset, t)))
            if at == offset && (t.duplicates, t.control) == (duplicates, control) =>
        {
            None
        }
        (Some(at), Some((offset, t))) => Some(format!(
            "the index counts {duplicates} duplicates and {control} control messages from the \
             tally at offset {at}; the log's last readable tally, at offset {offset}, says {} and {}",
            t.duplicates, t.control
        )),
        (Some(at), None) => Some(format!(
            "the index counts {duplicates} duplicates and {control} control messages from the \
             tally at offset {at}, but the log holds no readable tally"
        )),
        (None, Some((offset, t))) => Some(format!(
            "the log's tally at offset {offset} counts {} duplicates and {} control messages, \
             but the index's counts ({duplicates} and {control}) do not come from it",
            t.duplicates, t.control
        )),
    }
}

const KINDS: [PostingKind; 3] = [PostingKind::Guid, PostingKind::Agent, PostingKind::Payload];

/// The page cache of the handle the digests are read through. Each digest
/// is one sequential pass over a posting table, which the reader's usual
/// 48 MiB would not speed up; it would only fill once the index outgrows it
/// (past ~2M events), and that filling was most of verify's growth in peak
/// memory from 1M to 10M events (docs/BENCHMARKS.md, issue 17).
const DIGEST_CACHE_BYTES: usize = 4 << 20;

pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let active = last_segment_length(&dir.join("log"));
    let (reader, catch_up) = match ArchiveReader::open_catching_up(dir) {
        Ok(opened) => opened,
        // An index that only a writer could build or fill, and this run
        // cannot write (a full disk, a read-only directory): the log is
        // still checked, every byte, and what keeps the index from being
        // checked is its one problem. It checked nothing until 2026-12-07
        // (an outside audit: a full disk is when the log's state matters).
        Err(
            e @ (StoreError::MissingIndexNeedsWriter { .. }
            | StoreError::UpgradeNeedsWriter { .. }
            | StoreError::NothingIndexedNeedsWriter { .. }),
        ) => {
            let log_report = verify_log_beside_writer(&dir.join("log"))?;
            let index_problems = vec![format!("not checked: {e}")];
            return Ok(report_of(
                log_report,
                index_problems,
                Vec::new(),
                0,
                Vec::new(),
            ));
        }
        Err(e) => return Err(e),
    };
    let mut notes = match &catch_up {
        CatchUp::Upgraded { from } => vec![format!(
            "the index was of version {from}, an older build's: rebuilt from the log at version {INDEX_VERSION}, with every sealed segment's facts (an upgrade, not damage)"
        )],
        _ => Vec::new(),
    };
    // The open repairs as a writer's does: it cuts a last segment's bytes
    // that are no whole record. Said, since this run changed the log.
    if let Some((path, before)) = active {
        let after = std::fs::metadata(&path).map_or(before, |m| m.len());
        if after < before {
            notes.push(format!(
                "{} ended in {} bytes that are no whole record (the unfinished write a crash leaves, or bytes added to the file): opening the archive cut them, as every writer's open does (at byte {after})",
                path.display(),
                before - after
            ));
        }
    }
    let log_dir = dir.join("log");
    // The log's own check (every byte, every CRC) reads the log apart from
    // the index check's scan: on a thread of its own, the two take both
    // cores at once instead of one after the other (issue 12).
    let (log_report, index_problems) = std::thread::scope(|s| {
        let log_check = std::thread::Builder::new()
            .name("ccvault-verify-log".to_owned())
            .spawn_scoped(s, || verify_log_beside_writer(&log_dir));
        let index_problems = index_problems(&reader, catch_up);
        let log_report = match log_check {
            Ok(thread) => thread.join().unwrap_or_else(|_| {
                Err(StoreError::Thread("verify's log check panicked".to_owned()))
            }),
            // No thread to be had: the same check here, after the other.
            Err(_) => verify_log_beside_writer(&log_dir),
        };
        (log_report, index_problems)
    });
    let log_report = log_report?;
    // An index that cannot be read to its end is one problem to report
    // beside the log's check, not the end of the check.
    let (index_problems, facts_checked, facts_problems) = match index_problems {
        Ok((problems, facts)) => (problems, facts.checked, facts.problems),
        Err(StoreError::Index(e @ ccvault_index::IndexError::Corrupt { .. })) => {
            (vec![e.to_string()], 0, Vec::new())
        }
        Err(e) => return Err(e),
    };
    Ok(report_of(
        log_report,
        index_problems,
        notes,
        facts_checked,
        facts_problems,
    ))
}

/// The report of the log's check `log` (its tallies counted apart from its
/// records) with what was found of the index and the facts.
fn report_of(
    log: ccvault_log::VerifyReport,
    index_problems: Vec<String>,
    notes: Vec<String>,
    facts_checked: u64,
    facts_problems: Vec<String>,
) -> VerifyReport {
    VerifyReport {
        segments: log.segments,
        records: log.records - log.tallies,
        tallies: log.tallies,
        damage: log.damage,
        index_problems,
        notes,
        facts_checked,
        facts_problems,
    }
}

/// The counts of the index's `meta` that `stats` prints and that differ
/// from what the log's records give: `interactions` (the distinct GUID
/// hashes of `by_guid`, itself checked against the log), and `times`, the
/// records' times as indexing counts them.
fn counter_problems(
    index: &Counters,
    seen: &Seen,
    interactions: u64,
    times: &Counters,
) -> Vec<String> {
    let range = |min: Option<i64>, max: Option<i64>| {
        let end = |ms: Option<i64>| ms.map_or("none".to_owned(), |ms| ms.to_string());
        match (min, max) {
            (None, None) => "none".to_owned(),
            _ => format!("{}..{} ms", end(min), end(max)),
        }
    };
    let counts = [
        ("events", index.events, seen.messages - seen.quarantined),
        ("quarantined", index.quarantined, seen.quarantined),
        ("interactions", index.interactions, interactions),
        ("untimed", index.untimed, times.untimed),
    ];
    let ranges = [
        (
            "timed records' time range",
            (index.min_time_ms, index.max_time_ms),
            (times.min_time_ms, times.max_time_ms),
        ),
        (
            "untimed records' time range",
            (index.untimed_min_ms, index.untimed_max_ms),
            (times.untimed_min_ms, times.untimed_max_ms),
        ),
    ];
    let counted = counts
        .into_iter()
        .filter(|(_, have, want)| have != want)
        .map(|(what, have, want)| (what, have.to_string(), want.to_string()));
    let ranged = ranges
        .into_iter()
        .filter(|(_, have, want)| have != want)
        .map(|(what, have, want)| (what, range(have.0, have.1), range(want.0, want.1)));
    counted
        .chain(ranged)
        .map(|(what, have, want)| {
            format!(
                "`meta` {what}: the index says {have}, the log's records give {want} \
                 (`stats` prints the index's); `ccvault reindex` rebuilds the index"
            )
        })
        .collect()
}

/// Where the index's record of the compressed segments (`meta` packed.*)
/// says what their files do not: more of them than there are (every read
/// then warns that the rest are missing), or, as many, other lengths
/// (`stats` prints the log's size from it) or other bases. Fewer is a
/// commit that had not yet seen the latest compression: nothing wrong.
fn packed_problem(recorded: Option<PackedTotals>, listed: PackedSegments) -> Option<String> {
    let recorded = recorded?;
    let fix = "`ccvault reindex` writes it again";
    if recorded.count > listed.count {
        return Some(format!(
            "`meta` packed.count: the index counts {} compressed segment files, the log directory \
             holds {} (every read warns that the rest are missing); if none is, {fix}",
            recorded.count, listed.count
        ));
    }
    if recorded.count < listed.count {
        return None;
    }
    let (field, have, want, effect) = if recorded.bytes != listed.bytes {
        let effect = "`stats` prints the log's size from it";
        ("bytes", recorded.bytes, listed.bytes, effect)
    } else if recorded.bases != listed.bases {
        let effect = "`stats` then lists the log to size it";
        ("bases", recorded.bases, listed.bases, effect)
    } else {
        return None;
    };
    Some(format!(
        "`meta` packed.{field}: the index says {have}, the {} compressed segment files give \
         {want} ({effect}); {fix}",
        listed.count
    ))
}

/// The last segment file of `log_dir` and its length, when it is a `.seg`
/// (the one a writer appends to and an open repairs).
fn last_segment_length(log_dir: &Path) -> Option<(std::path::PathBuf, u64)> {
    let base = ccvault_log::LogReader::open(log_dir)
        .ok()?
        .segments()
        .pop()?;
    let path = log_dir.join(ccvault_log::segment_file_name(base));
    let len = std::fs::metadata(&path).ok()?.len();
    Some((path, len))
}

/// Where the index disagrees with the log's visible records (and whether
/// opening had to catch it up), one sentence each; and the facts checked
/// on the way.
fn index_problems(reader: &ArchiveReader, catch_up: CatchUp) -> Result<(Vec<String>, FactsCheck)> {
    let index = reader.index();
    let visible_end = reader.visible_end();
    let mut problems = Vec::new();
    match catch_up {
        CatchUp::UpToDate | CatchUp::WriterRunning | CatchUp::Upgraded { .. } => {}
        CatchUp::CaughtUp { first, end } => problems.push(format!(
            "the index was behind the log: records {first}..{end} were durable but not indexed, \
             so readers did not see them (indexed now)"
        )),
        CatchUp::Rebuilt { why } => problems.push(format!(
            "the index could not be opened ({why}) and was rebuilt from the log"
        )),
        CatchUp::Failed { first, error } => problems.push(format!(
            "the index is behind the log: records from offset {first} are durable but not \
             indexed, and indexing them failed: {error}"
        )),
    }

    // Pass 1: digests of what the log calls for, against the index's. The
    // digests are read through a second handle with a small cache when it
    // sees the same commit (same checkpoint: postings only ever change with
    // it), else through the reader's own.
    let snapshot = index.checkpoint()?;
    let small = index
        .reopen_with_cache(DIGEST_CACHE_BYTES)
        .ok()
        .filter(|own| matches!(own.checkpoint(), Ok(c) if c == snapshot));
    let digests = small.as_ref().unwrap_or(index);
    let (
        seen,
        Expected {
            digests: expected,
            places,
            facts,
            times,
        },
    ) = expected_digests(reader)?;
    let mut differing = Vec::new();
    for kind in KINDS {
        let have = digests.posting_digest(kind)?;
        let want = expected[kind as usize];
        if have != want {
            differing.push(kind);
            if have.count != want.count {
                problems.push(format!(
                    "`{kind}` postings: the index has {}, the log's records call for {}",
                    have.count, want.count
                ));
            }
        }
    }

    // Through the small cache too: one pass over each generation's keys.
    problems.extend(digests.filter_problems()?);
    problems.extend(digests.lookup_problems()?);
    // The interactions `by_guid` holds, when it is the log's (else
    // reported above), through the small cache too.
    let guids = match differing.contains(&PostingKind::Guid) {
        true => None,
        false => Some(digests.distinct_guids()?),
    };
    drop(small);
    problems.extend(index.key_range_problems(&places)?);

    // Pass 2, only when they disagree: name each posting that is missing or
    // wrong; whatever is left over is in the index but not in the log.
    if !differing.is_empty() {
        let mut named = 0usize;
        scan_batches(reader, |batch| {
            batch_postings(&batch, None, None, |kind, key, offset, pos, _, _| {
                if !differing.contains(&kind) {
                    return Ok(());
                }
                match index.posting(kind, key, offset)? {
                    Some(p) if p == pos => {}
                    Some(p) => {
                        named += 1;
                        problems.push(format!(
                            "`{kind}` posting of offset {offset} ({}) says position {p}, the log has it at {pos}",
                            kind.describe_key(key)
                        ))
                    }
                    None => {
                        named += 1;
                        problems.push(format!(
                            "`{kind}` posting of offset {offset} ({}) is missing",
                            kind.describe_key(key)
                        ))
                    }
                }
                Ok(())
            })?;
            Ok(batch)
        })?;
        if named == 0 {
            let tables: Vec<String> = differing.iter().map(|k| format!("`{k}`")).collect();
            problems.push(format!(
                "{} postings: the index holds entries that no record of the log calls for, or a posting's payload hash is not its record's (the duplicate check would miss that record's copies); `ccvault reindex` rebuilds the index",
                tables.join(", ")
            ));
        }
    }

    let quarantine_entries = index.quarantine_count()?;
    if quarantine_entries != seen.quarantined {
        problems.push(format!(
            "quarantine entries: the index has {quarantine_entries}, the log has {} quarantined records",
            seen.quarantined
        ));
    }
    let counters = index.counters()?;
    if counters.records != seen.messages {
        problems.push(format!(
            "the index counts {} records below its checkpoint {visible_end}; the log has {} readable ones",
            counters.records, seen.messages
        ));
    } else {
        // With the records agreeing, every other count `stats` prints is
        // the log's too (an outside audit: one flipped byte of the index's
        // `meta` made `stats` say 0 interactions, with `verify` clean).
        // A `by_guid` that is not the log's says nothing more.
        let interactions = guids.unwrap_or(counters.interactions);
        problems.extend(counter_problems(&counters, &seen, interactions, &times));
    }
    problems.extend(packed_problem(
        index.packed()?,
        reader.log().packed_listed()?,
    ));
    problems.extend(tally_problem(
        index.tally_offset()?,
        (counters.duplicates, counters.control),
        seen.last_tally,
    ));
    Ok((problems, facts))
}
