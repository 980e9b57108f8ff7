//! The archive writer: decode, deduplicate, append, make durable, index.
//!
//! Invariants:
//! - A batch is acknowledged (its [`BatchReport`] returned) only after its
//!   records are durable in the log under the fsync policy. The index is
//!   derived: its write transaction stays open across batches and commits
//!   every `index_commit_records` records or `index_commit_interval`, and at
//!   close. A crash leaves records in the log past the index checkpoint;
//!   [`Archive::open`] indexes them before anything else happens, so open
//!   time is bounded by the commit interval, not the archive size.
//!   A commit due while appending is written on a thread of its own
//!   ([`Archive::commit_behind`]) once the log is durable through its
//!   checkpoint, while the next batches are appended and collected by the
//!   writer begun after it (which sees its entries for the duplicate check);
//!   at most one such commit runs at a time, and every other commit, the
//!   close and dropping the archive wait for it first.
//! - Readers see the archive as of the last index commit.
//! - The counts of messages dropped as duplicates or control messages are
//!   derived from the log: a batch that dropped any ends with a tally record
//!   of the running totals, durable with the batch, so after any crash the
//!   counts are exactly those of the batches the log holds (never of a
//!   batch it lost, never one counted twice), and a rebuild finds them
//!   again. The index holds the offset of the tally its counts come from;
//!   counts with no tally behind them (an archive written before tallies)
//!   are written into one at open ([`Archive::open`]).
//! - A message whose payload bytes equal an archived record's is counted as
//!   a duplicate and not stored, unless its own record would give the event
//!   an earlier-ranked time than every archived copy ([`gives_an_earlier_time`],
//!   docs/METRICS.md §2: rules 4, 5 and 7 take the smallest value among the
//!   records that hold one event): then it is stored, so t(e) stays a
//!   function of the set of messages whatever order they came in. Every
//!   message is checked against the index (committed batches) and the batch
//!   in hand; both are exact byte comparisons, the hash only finds
//!   candidates. Importing the same messages again stores nothing.
//! - An archive directory or index another user could have prepared (a
//!   symlink, another owner, writable by group or others) is refused before
//!   anything is written ([`check_private_files`]).
//! - After any error the writer is poisoned: it refuses further work, and the
//!   next open recovers from whatever reached the disk.
//!
//! Indexing the log in bulk (the tail at open, a whole rebuild) is in
//! `reindex`; this module appends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvault_event::{decode_message, resolve_time, Arrival, EventTime, Keys, PayloadTimes};
use ccvault_index::{
    key_map, payload_hash, Checkpoint, Entry, Index, IndexReader, IndexWriter, KeyMap, Written,
};
use ccvault_log::{
    Compression, FsyncPolicy, Log, LogError, LogOptions, LogReader, NewRecord, Position,
    RecordKind, SourceKind, StdVfs, Tally, MAX_FIELD_LEN,
};

use crate::error::{io, Result, StoreError};
use crate::facts::{FactsBuilder, FactsWriter};
use crate::layout::Layout;
use crate::segments::{packed_totals, SegmentMap};

mod reindex;
pub use reindex::records_indexed_from_log;

/// The largest record size limit (`--max-record-bytes`): the log's largest
/// record body (64 MiB) less room for the record's source fields.
pub const LARGEST_RECORD_LIMIT: usize = ccvault_log::MAX_BODY_LEN as usize - (1 << 20);

/// The longest message a reader of raw input reads whole for a record
/// limit of `max_record_bytes`: a Pulsar envelope carries its payload in
/// base64 (4 bytes for 3) beside its other fields, so an event of the
/// limit arrives in a third more and some. Longer ones are skipped
/// unread, their record certainly over the limit.
pub fn message_bound(max_record_bytes: usize) -> usize {
    max_record_bytes
        .saturating_add(max_record_bytes / 3)
        .saturating_add(64 << 10)
}

/// How the archive writes.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Messages whose record would be larger than this (an envelope's
    /// decoded payload, else the message) are rejected (not archived) with
    /// an error naming them. A reader of raw input reads messages up to
    /// [`message_bound`] of it whole.
    pub max_record_bytes: usize,
    /// Commit the index after this many records...
    pub index_commit_records: u64,
    /// ...or when this much time has passed since the last commit.
    pub index_commit_interval: Duration,
    /// A rebuild commits when its collected entries hold this many bytes.
    /// A commit rewrites only the newest index generation's pages, so
    /// smaller commits cost no time: 32 MiB against 96 MiB took a 10M
    /// reindex's peak RSS from ~315 to ~242 MiB (docs/BENCHMARKS.md).
    pub rebuild_commit_bytes: usize,
    /// How sealed log segments are compressed in the background (`None`:
    /// left as `.seg`), docs/FORMAT.md §1.7.
    pub compression: Option<Compression>,
    /// How long to wait for the archive's lock when another holds it
    /// ([`ccvault_log::LOCK_GRACE`] for a writer the user started; none for a read
    /// command's attempt to catch the index up, which a running writer
    /// answers).
    pub lock_wait: Duration,
    /// What the archive's lock file says this writer took it for, after
    /// its pid (`None`: a writer the user started). A read command that
    /// brings the index up to the log says so ([`INDEXING_FOR_A_READ`]),
    /// and other reads wait for it rather than answer without the records
    /// it is indexing.
    pub lock_role: Option<&'static str>,
}

/// The [`ArchiveOptions::lock_role`] of a read command's writer open.
pub const INDEXING_FOR_A_READ: &str = "a read command indexing the log's tail";

/// How long a writer the user started waits for a read command indexing
/// the log's tail ([`INDEXING_FOR_A_READ`]) to let go of the lock.
const READ_CATCH_UP_WAIT: Duration = Duration::from_secs(60);

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            segment_bytes: LogOptions::default().segment_bytes,
            fsync: FsyncPolicy::Batch,
            max_record_bytes: 1 << 20,
            index_commit_records: 262_144,
            index_commit_interval: Duration::from_secs(1),
            rebuild_commit_bytes: 32 << 20,
            compression: LogOptions::default().compression,
            lock_wait: Duration::ZERO,
            lock_role: None,
        }
    }
}

/// One message to archive, as received.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub raw: &'a [u8],
    pub source_kind: SourceKind,
    /// File path or topic.
    pub source: &'a str,
    /// Line number in a file (0 for streams).
    pub line: u64,
    /// Transport metadata known outside the payload (e.g. an MQTT message
    /// has none; a Pulsar envelope carries its own and needs none here).
    pub message_id: Option<&'a str>,
    pub ingest_ms: i64,
}

/// A message decoded ahead of [`Archive::append_prepared`], possibly on
/// another thread: shape detection, envelope decoding and hashing are the
/// CPU-heavy part of archiving and need nothing from the archive.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// An envelope's decoded payload; `None` when the message is archived
    /// as received.
    decoded_payload: Option<Vec<u8>>,
    message_id: Option<String>,
    publish_time: Option<String>,
    outcome: std::result::Result<Keys, String>,
    control: bool,
    hash: u64,
    /// Where the message began in its input, for the JSON shapes
    /// ([`Prepared::locate`]): said in a rejection too.
    input_offset: Option<u64>,
}

impl Prepared {
    pub fn of(raw: &[u8]) -> Prepared {
        let d = decode_message(raw);
        // A record keeps each metadata field in at most MAX_FIELD_LEN bytes.
        // An envelope whose field is longer is archived whole, as received
        // (nothing dropped), and quarantined naming the field, so one such
        // message can never fail the batch and stop the stream behind it.
        let oversized = [
            ("messageId", d.message_id.as_deref()),
            ("publishTime", d.publish_time.as_deref()),
        ]
        .into_iter()
        .find_map(|(field, v)| {
            v.filter(|v| v.len() > MAX_FIELD_LEN)
                .map(|v| (field, v.len()))
        });
        if let Some((field, len)) = oversized {
            return Prepared {
                decoded_payload: None,
                message_id: None,
                publish_time: None,
                outcome: Err(format!(
                    "Pulsar envelope {field} of {len} bytes is longer than the {MAX_FIELD_LEN} \
                     bytes a record's metadata holds; the envelope is archived as received"
                )),
                control: false,
                hash: payload_hash(raw),
                input_offset: None,
            };
        }
        let hash = payload_hash(&d.payload);
        Prepared {
            decoded_payload: match d.payload {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(v) => Some(v),
            },
            message_id: d.message_id,
            publish_time: d.publish_time,
            outcome: d.outcome,
            control: d.control,
            hash,
            input_offset: None,
        }
    }

    /// Names the input byte offset the message was found at in its
    /// quarantine reason, if it has one.
    pub(crate) fn locate(&mut self, offset: u64) {
        self.input_offset = Some(offset);
        if let Err(reason) = &mut self.outcome {
            *reason = format!("{reason} (at input byte offset {offset})");
        }
    }

    /// The bytes to archive for the message `raw` this was prepared from.
    fn payload<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        self.decoded_payload.as_deref().unwrap_or(raw)
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Archived {
        offset: u64,
    },
    Quarantined {
        offset: u64,
        reason: String,
    },
    /// Equal payload bytes are already archived at `offset`.
    Duplicate {
        offset: u64,
    },
    /// Not archived: over a limit.
    Rejected {
        reason: String,
    },
    /// Not archived: a transport control message (a Pulsar control frame,
    /// a `ClientCheck` heartbeat), counted only.
    Control,
}

/// The outcome of each message of a batch, in input order. Everything in it
/// is durable.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub outcomes: Vec<Outcome>,
    /// The log's next offset after this batch.
    pub next_offset: u64,
}

/// What opening the archive had to repair.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub truncated_bytes: u64,
    pub damaged_records: usize,
    /// Records past the index checkpoint that were indexed on open.
    pub reindexed_tail: u64,
    /// The index was ahead of the log or unreadable and was rebuilt.
    pub index_rebuilt: bool,
    /// Segment files whose damaged header (and a `.segz`'s block index) a
    /// reindex wrote again from what the file shows, their records
    /// unchanged ([`ccvault_log::Log::restore_headers`]).
    pub rewritten_headers: Vec<ccvault_log::RewrittenHeader>,
}

/// The single writer of an archive directory.
pub struct Archive {
    layout: Layout,
    log: Log,
    log_reader: LogReader,
    /// The compressor's count of `.segz` files when `log_reader` last let
    /// go of the `.seg` files they replaced.
    packed_seen: u64,
    /// Shared with the thread writing a commit behind the appender.
    index: Arc<Index>,
    segments: SegmentMap,
    options: ArchiveOptions,
    /// The open index transaction holding batches not yet committed.
    txn: Option<IndexWriter>,
    /// The thread that writes commits behind the appender, once one was.
    committer: Option<Committer>,
    /// Whether a commit was handed to `committer` and its outcome not yet
    /// taken; `txn` was begun after it.
    committing: bool,
    last_commit: Instant,
    poisoned: Option<String>,
    /// The facts of the segment being appended to (`crate::facts`).
    facts: Option<FactsBuilder>,
    /// The thread writing the facts of the segments rolled past, once
    /// there was one.
    facts_writer: Option<FactsWriter>,
    _lock: ccvault_log::DirLock,
}

fn create_private_dir(path: &Path) -> Result<()> {
    Ok(ccvault_log::vfs::create_dir_durably(&StdVfs, path)?)
}

/// Refuses an archive directory, or an index in it, that another user could
/// have prepared: a symlink, a file of another owner, or one writable by
/// group or others (the log checks its own files as it opens them). The
/// index is opened by redb by path; with the directory private, nobody else
/// can swap the checked file for a link before that open.
pub(crate) fn check_private_files(dir: &Path) -> Result<()> {
    ccvault_log::check_private_dir(dir, true)?;
    let layout = Layout::new(dir);
    // The facts directory, like the log's: never through a link (a writer
    // wrote its facts into the link's target), never another's.
    let facts = layout.facts_dir();
    match std::fs::symlink_metadata(&facts) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => ccvault_log::check_private_dir(&facts, false)?,
    }
    for path in [layout.index_path(), layout.scratch_index_path()] {
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => drop(ccvault_log::open_private(
                ccvault_log::private_options().read(true),
                &path,
                "opening",
            )?),
        }
    }
    Ok(())
}

/// Creates `path` owner-only unless it exists, refusing a symlink or a file
/// another user could have prepared (`ccvault_log::create_private_file`):
/// for the redb files kept beside the log, which redb would create with the
/// umask's mode. An I/O failure keeps its `io::Error` (a read-only file is
/// still readable).
pub fn create_private_file(path: &Path) -> Result<()> {
    ccvault_log::create_private_file(path).map_err(|e| match e {
        ccvault_log::LogError::Io { source, .. } => io("cannot create", path)(source),
        other => other.into(),
    })
}

/// Opens an existing redb file kept beside the log for reading, and for
/// writing too when the file system lets this user (`true` then), with the
/// refusals of [`create_private_file`]: for a caller that reads the file
/// through its own redb backend. An I/O failure keeps its `io::Error`.
pub fn open_private_file(path: &Path) -> Result<(std::fs::File, bool)> {
    let open = |write: bool| {
        ccvault_log::open_private(
            ccvault_log::private_options().read(true).write(write),
            path,
            "opening",
        )
        .map_err(|e| match e {
            ccvault_log::LogError::Io { source, .. } => io("cannot open", path)(source),
            other => other.into(),
        })
    };
    match open(true) {
        Ok(file) => Ok((file, true)),
        Err(StoreError::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            open(false).map(|file| (file, false))
        }
        Err(e) => Err(e),
    }
}

/// Whether `e`, from opening the index, is the file system refusing a
/// write ([`crate::is_write_refusal`]) or the file's lock held elsewhere:
/// nothing about the file's contents.
pub(crate) fn says_nothing_of_the_file(e: &StoreError) -> bool {
    let io = match e {
        StoreError::Io { source, .. } => Some(source),
        StoreError::Index(e) if e.is_busy() => return true,
        StoreError::Index(e) => e.io_error(),
        _ => None,
    };
    io.is_some_and(crate::is_write_refusal)
}

/// Opens the index file, creating it owner-only first.
pub(crate) fn open_index(path: &Path) -> Result<Index> {
    create_private_file(path)?;
    Ok(Index::open(path)?)
}

/// Creates the index file where there is none, or leaves none: a creation
/// the disk stopped is not left for reads to take for an index (empty, or
/// half written and then "damaged").
fn create_index(path: &Path) -> Result<Index> {
    open_index(path).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// Ms since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What [`Archive::open_unindexed`] leaves to index.
struct Unindexed {
    /// Where the index's checkpoint says indexing resumes.
    resume_from: Option<Position>,
    /// The index must be rebuilt from the whole log: it was unusable, the
    /// log lost records it had seen, or it does not describe this log
    /// (`fit`).
    rebuild: bool,
    /// The index has seen nothing of a log that holds records: this open
    /// created it for a missing or unusable one, or a build before was
    /// stopped (a kill) before its first commit. It is built whole, and
    /// removed again if that fails.
    placeholder: bool,
    /// The first offset of the records the log lost that the index had
    /// seen, and the loss's identity: recorded in the rebuilt index, for
    /// the projections to tell theirs made before the loss
    /// ([`ccvault_index::IndexReader::lost`]).
    lost: Option<(u64, u64)>,
}

impl Archive {
    /// Opens (creating if needed) the archive in `dir` for writing: takes
    /// the writer lock, recovers the log tail and indexes what the index
    /// has not seen.
    pub fn open(dir: &Path, options: ArchiveOptions) -> Result<(Archive, OpenReport)> {
        let (mut archive, mut report, todo) = Archive::open_unindexed(dir, options)?;
        // A missing index over a log that holds records is built whole in a
        // scratch file, as an unusable one is: never into the file readers
        // open, where a build stopped midway (a full disk) would be taken
        // for the log's index.
        let indexed = if todo.rebuild || todo.placeholder {
            report.index_rebuilt |= todo.rebuild;
            archive.rebuild_index_noting(todo.lost)
        } else {
            archive.index_tail(todo.resume_from, archive.options.index_commit_records, None)
        };
        report.reindexed_tail = archive.unless_placeholder_left(&todo, indexed)?;
        archive.tally_untallied_counts()?;
        Ok((archive, report))
    }

    /// [`Archive::open`] for `reindex`: the index is rebuilt from the whole
    /// log ([`Archive::rebuild_index`]) without first indexing the log's
    /// tail into the old one, which, missing or unreadable, would mean
    /// indexing the whole log twice. Returns the records indexed too.
    pub fn open_and_reindex(
        dir: &Path,
        options: ArchiveOptions,
    ) -> Result<(Archive, OpenReport, u64)> {
        let (mut archive, mut report, todo) = Archive::open_unindexed(dir, options)?;
        report.rewritten_headers = archive.log.restore_headers()?;
        let indexed = archive.rebuild_index();
        let indexed = archive.unless_placeholder_left(&todo, indexed)?;
        archive.tally_untallied_counts()?;
        Ok((archive, report, indexed))
    }

    /// A build of the index that failed over an index that has seen
    /// nothing ([`Unindexed::placeholder`]) removes that file: left, reads
    /// would answer from it as if the log held nothing.
    fn unless_placeholder_left(&self, todo: &Unindexed, indexed: Result<u64>) -> Result<u64> {
        if todo.placeholder && indexed.is_err() {
            let _ = std::fs::remove_file(self.layout.index_path());
        }
        indexed
    }

    /// Opens the log (recovering its tail) and the index, without indexing
    /// anything: returns what is left to index ([`Unindexed`]).
    fn open_unindexed(
        dir: &Path,
        options: ArchiveOptions,
    ) -> Result<(Archive, OpenReport, Unindexed)> {
        crate::reader::refuse_a_file(dir)?;
        create_private_dir(dir)?;
        check_private_files(dir)?;
        let lock = match ccvault_log::lock_dir_for(dir, options.lock_wait, options.lock_role) {
            // A writer the user started waits out a read command indexing
            // the log's tail, however long that takes here (up to
            // `READ_CATCH_UP_WAIT`): until 2026-12-08 an import started
            // beside a slow one was refused after its 2 s (an outside audit).
            Err(ccvault_log::LogError::Locked { .. })
                if !options.lock_wait.is_zero()
                    && ccvault_log::held_for(dir, INDEXING_FOR_A_READ) =>
            {
                ccvault_log::lock_dir_for(dir, READ_CATCH_UP_WAIT, options.lock_role)
            }
            taken => taken,
        }
        .map_err(|e| match e {
            ccvault_log::LogError::Locked { holder, .. } => StoreError::Locked {
                dir: dir.to_path_buf(),
                holder: format!(" ({holder})"),
            },
            other => StoreError::Log(other),
        })?;
        let layout = Layout::new(dir);
        create_private_dir(&layout.log_dir())?;
        let mut report = OpenReport::default();

        remove_file_if_exists(&layout.scratch_index_path())?;
        let index_path = layout.index_path();
        let missing = matches!(std::fs::symlink_metadata(&index_path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        // An index file of no bytes (cut to nothing, `: > index.redb`):
        // redb would take it for a new database, and the log's records
        // were indexed into it as a tail in silence (an outside audit:
        // `verify` said clean). Rebuilt and reported as damage when the
        // log holds records (below), not when a crash cut the creation of
        // a new archive's index.
        let emptied = !missing && std::fs::metadata(&index_path).is_ok_and(|m| m.len() == 0);
        let opened = match if missing {
            create_index(&index_path)
        } else if emptied {
            Err(StoreError::Index(ccvault_index::IndexError::Corrupt {
                path: index_path.display().to_string(),
                what: "the file is empty (0 bytes)".into(),
            }))
        } else {
            open_index(&index_path)
        } {
            Err(e) if missing => return Err(e),
            // A disk that refuses the write an open makes (redb's repair
            // after a crash, on a full disk), or a lock held by another
            // handle, says nothing of the file: it is kept for a writer
            // that can open it, never taken for damage, removed and rebuilt
            // on that same disk (a read on a full disk left an empty index,
            // and every later read saw no record).
            Err(e) if says_nothing_of_the_file(&e) => return Err(e),
            other => other,
        };
        let untallied = match &opened {
            Ok(_) => None,
            Err(_) if emptied => None,
            Err(e) => {
                match e {
                    StoreError::Index(ccvault_index::IndexError::Version { found, .. })
                        if *found < ccvault_index::INDEX_VERSION =>
                    {
                        tracing::warn!(
                            "the index is of version {found}, an older build's: rebuilding it from the log at version {} (once: the whole log is read)",
                            ccvault_index::INDEX_VERSION
                        )
                    }
                    e => tracing::warn!(
                        "index unusable ({}); rebuilding it from the log",
                        ccvault_log::display_chain(e)
                    ),
                }
                report.index_rebuilt = true;
                // An index of an older version, of an archive written
                // before tallies, is the only place its counts of dropped
                // messages are: read before it goes, and written into the
                // log (below) before it is removed.
                ccvault_index::IndexReader::dropped_counts_of_any_version(&index_path)
                    .ok()
                    .filter(|c| c.tally_offset.is_none() && (c.duplicates > 0 || c.control > 0))
            }
        };
        let checkpoint = match &opened {
            Ok(index) => index.reader()?.checkpoint()?,
            Err(_) => None,
        };
        let log_options = LogOptions {
            segment_bytes: options.segment_bytes,
            fsync: options.fsync,
            compression: options.compression,
            ..LogOptions::default()
        };
        let scan_from = checkpoint.map(|c| Position {
            segment: c.segment,
            pos: c.pos,
        });
        let (mut log, recovery) = Log::open(&layout.log_dir(), log_options, scan_from)?;
        if let Some(c) = untallied {
            // Durable before the old index goes: a crash in between writes
            // it again at the next open, the same running totals.
            let payload = Tally {
                duplicates: c.duplicates,
                control: c.control,
            }
            .encode();
            let (offset, _) = log.append(&NewRecord::tally(
                &payload,
                now_ms(),
                SourceKind::Unknown,
                "",
                0,
            ))?;
            log.flush()?;
            tracing::info!(
                duplicates = c.duplicates,
                control = c.control,
                offset,
                "counts of dropped messages of the old index written into the log"
            );
        }
        if emptied && log.next_offset() > 0 {
            tracing::warn!(
                "index unusable ({} is empty: 0 bytes); rebuilding it from the log",
                index_path.display()
            );
            report.index_rebuilt = true;
        }
        // Rebuilt as a whole (`rebuild_index`), not indexed as a tail into
        // the new file: that also rewrites every sealed segment's facts,
        // which an index of an older version may come with in an older
        // version (`verify` then named every segment's as not used).
        let unusable = opened.is_err();
        let index = match opened {
            Ok(index) => index,
            Err(_) => {
                remove_file_if_exists(&index_path)?;
                create_index(&index_path)?
            }
        };
        let facts_dir = layout.facts_dir();
        let end = log.end_position().segment;
        let facts = crate::facts::resume(&StdVfs, &facts_dir, end, log.next_offset())
            .map_err(io("cannot resume the facts in", &facts_dir))?;
        report.truncated_bytes = recovery.truncated_bytes;
        report.damaged_records = recovery.damaged.len();
        for d in &recovery.damaged {
            tracing::warn!(target: crate::LOSS_TARGET, "damaged record kept aside on open: {d}");
        }
        if let Some(base) = recovery.resumed_after_packed {
            tracing::warn!(
                target: crate::LOSS_TARGET,
                "the log's active segment was missing (its last file is the sealed {}): appending to a new segment after it",
                ccvault_log::segz_file_name(base)
            );
        }
        // The log lost records the index had seen: the index is rebuilt
        // below; the projections find that the record they stopped at is
        // gone, and rebuild on their next catch-up.
        let lost = checkpoint
            .map(|c| c.next_offset)
            .filter(|&seen| seen > log.next_offset());
        let log_reader = log.reader();
        if let Some(seen) = lost {
            tracing::warn!(
                target: crate::LOSS_TARGET,
                "the log no longer holds the records at offsets {}..{seen} that the index had seen (an unsynced tail lost, a damaged last record cut, a removed segment, or another archive's index); rebuilding the index, and the projections on the next read",
                log.next_offset()
            );
        }
        let misfit = checkpoint
            .filter(|_| lost.is_none())
            .and_then(|c| crate::fit::misfit(&log_reader, &c, Some(log.next_offset())));
        if let Some(why) = &misfit {
            tracing::warn!(
                "the index {} does not describe this log ({why}): another archive's index, or one put back from another copy; rebuilding it from the log",
                layout.index_path().display()
            );
            report.index_rebuilt = true;
        }
        let archive = Archive {
            segments: SegmentMap::new(&log_reader),
            layout,
            log,
            log_reader,
            packed_seen: 0,
            index: Arc::new(index),
            options,
            txn: None,
            committer: None,
            committing: false,
            last_commit: Instant::now(),
            poisoned: None,
            facts,
            facts_writer: None,
            _lock: lock,
        };
        let placeholder = checkpoint.is_none() && archive.log.next_offset() > 0;
        let todo = Unindexed {
            resume_from: scan_from,
            rebuild: unusable || lost.is_some() || misfit.is_some(),
            placeholder,
            // Its identity: when it was recovered, in nanoseconds (two
            // losses may start at the same offset; never at the same
            // instant).
            lost: lost.map(|_| {
                let id = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64);
                (archive.log.next_offset(), id)
            }),
        };
        Ok((archive, report, todo))
    }

    /// Writes counts of dropped messages that no tally of the log holds
    /// (those of an index of an archive written before tallies) into a
    /// tally, durably, so that a rebuild of the index finds them. A crash
    /// before the index commit leaves the tally to the next open's tail,
    /// which takes its counts (the same) and offset: written once.
    fn tally_untallied_counts(&mut self) -> Result<()> {
        let snapshot = self.index.reader()?;
        let c = snapshot.counters()?;
        if (c.duplicates == 0 && c.control == 0) || snapshot.tally_offset()?.is_some() {
            return Ok(());
        }
        let payload = Tally {
            duplicates: c.duplicates,
            control: c.control,
        }
        .encode();
        let (offset, _) = self.log.append(&NewRecord::tally(
            &payload,
            now_ms(),
            SourceKind::Unknown,
            "",
            0,
        ))?;
        let mut w = self.index.begin()?;
        w.add_tally(offset, c.duplicates, c.control);
        self.txn = Some(w);
        tracing::info!(
            duplicates = c.duplicates,
            control = c.control,
            offset,
            "counts of dropped messages written into the log"
        );
        self.commit_index()
    }

    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    pub fn next_offset(&self) -> u64 {
        self.log.next_offset()
    }

    /// A snapshot reader of this archive as of the last commit.
    pub fn index_snapshot(&self) -> Result<IndexReader> {
        Ok(self.index.reader()?)
    }

    /// Archives a batch of messages and returns once all of it is durable
    /// (its postings in the index's open transaction, which readers see
    /// once it commits; a reopening indexes the log's tail past the last
    /// commit).
    pub fn append_batch(&mut self, batch: &[Incoming<'_>]) -> Result<BatchReport> {
        let prepared: Vec<Prepared> = batch.iter().map(|m| Prepared::of(m.raw)).collect();
        self.append_prepared(batch, &prepared)
    }

    /// [`Archive::append_batch`] with the messages already decoded
    /// (`prepared[i]` is `Prepared::of(batch[i].raw)`), so that decoding can
    /// run on another thread.
    pub fn append_prepared(
        &mut self,
        batch: &[Incoming<'_>],
        prepared: &[Prepared],
    ) -> Result<BatchReport> {
        let report = self.append_checked(batch, prepared, true)?;
        self.wait_durable(report.next_offset)?;
        Ok(report)
    }

    /// [`Archive::append_prepared`] without asking for the batch to be made
    /// durable, so that several batches (small input files) share one
    /// fsync. Nothing of the batch may be acknowledged before
    /// [`Archive::wait_durable`] of an offset that [`Archive::sync_nowait`]
    /// returned at or past `report.next_offset` returns.
    pub fn append_prepared_unsynced(
        &mut self,
        batch: &[Incoming<'_>],
        prepared: &[Prepared],
    ) -> Result<BatchReport> {
        self.append_checked(batch, prepared, false)
    }

    /// Starts making every record appended so far durable, without waiting:
    /// returns the offset to pass to [`Archive::wait_durable`].
    pub fn sync_nowait(&mut self) -> Result<u64> {
        self.unless_poisoned(|a| Ok(a.log.flush_nowait()?))
    }

    fn append_checked(
        &mut self,
        batch: &[Incoming<'_>],
        prepared: &[Prepared],
        sync: bool,
    ) -> Result<BatchReport> {
        if prepared.len() != batch.len() {
            return Err(StoreError::Poisoned(format!(
                "{} prepared messages for a batch of {}",
                prepared.len(),
                batch.len()
            )));
        }
        self.unless_poisoned(|a| a.append_batch_inner(batch, prepared, sync))
    }

    /// Blocks until every record below `through` is durable in the log.
    pub fn wait_durable(&mut self, through: u64) -> Result<u64> {
        self.unless_poisoned(|a| Ok(a.log.wait_durable(through)?))
    }

    /// Whether the log reader may hold `.seg` files the compressor replaced
    /// (or is about to): segments are being compressed, or were since the
    /// last [`Archive::drop_replaced_segments`]. A writer gone quiet calls
    /// that until this is false (every index commit calls it too).
    pub fn may_hold_replaced_segments(&self) -> bool {
        self.log.compressing() || self.log.packed_segments().count != self.packed_seen
    }

    /// Once the compressor has replaced segments since the last look, lets
    /// the log reader go of their `.seg` files (LogReader::drop_replaced):
    /// a writer that runs for months (`ingest`) held them all, and one gone
    /// quiet held those compressed after its last commit until its next.
    pub fn drop_replaced_segments(&mut self) {
        let packed = self.log.packed_segments().count;
        if packed != self.packed_seen {
            self.packed_seen = packed;
            self.log_reader.drop_replaced();
        }
    }

    /// Runs `write` unless an earlier write failed, and remembers its
    /// failure: after one, the log and index may disagree with what the
    /// archive holds in memory, so every later write is refused.
    fn unless_poisoned<T>(&mut self, write: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(why) = &self.poisoned {
            return Err(StoreError::Poisoned(why.clone()));
        }
        let result = write(self);
        if let Err(e) = &result {
            self.poisoned = Some(ccvault_log::display_chain(e));
        }
        result
    }

    fn append_batch_inner(
        &mut self,
        batch: &[Incoming<'_>],
        prepared: &[Prepared],
        sync: bool,
    ) -> Result<BatchReport> {
        // A commit written meanwhile: rebasing on it lets its entries and
        // its snapshot go.
        if self.committing {
            if let Some(written) = self.committer.as_ref().and_then(Committer::try_done) {
                self.committing = false;
                self.rebase(written)?;
            }
        }
        if self.txn.is_none() {
            self.txn = Some(self.index.begin()?);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        // Payloads appended in this batch, for in-batch dedup: the last
        // pending record of each hash, each linking to the one before it
        // with the same hash. Sized for the batch and one entry a hash (not
        // a list), so that it is neither regrown nor allocates per message.
        let mut in_batch: KeyMap<usize> = key_map(batch.len());
        struct Pending<'a> {
            offset: u64,
            pos: u32,
            payload: &'a [u8],
            hash: u64,
            keys: &'a Keys,
            time: EventTime,
            quarantined: bool,
            /// The pending record before this one with the same hash.
            same_hash: Option<usize>,
        }
        const NO_KEYS: Keys = Keys {
            interaction_guid: None,
            agent_id: None,
            times: PayloadTimes {
                own: None,
                event_ts_ms: None,
            },
            names: None,
        };
        let mut pending: Vec<Pending> = Vec::with_capacity(batch.len());
        let mut duplicates = 0u64;
        let mut control = 0u64;

        for (msg, prep) in batch.iter().zip(prepared) {
            if prep.control {
                control += 1;
                outcomes.push(Outcome::Control);
                continue;
            }
            // The limit is on the record: an envelope's decoded payload
            // (its base64 a third longer) or the message as received.
            let archived_len = prep.payload(msg.raw).len();
            if archived_len > self.options.max_record_bytes {
                let received = if archived_len == msg.raw.len() {
                    String::new()
                } else {
                    format!(" (received as an envelope of {} bytes)", msg.raw.len())
                };
                let at = prep
                    .input_offset
                    .map_or(String::new(), |at| format!(" (at input byte offset {at})"));
                outcomes.push(Outcome::Rejected {
                    reason: format!(
                        "message of {archived_len} bytes{received} exceeds the limit of {} bytes{at}",
                        self.options.max_record_bytes
                    ),
                });
                continue;
            }
            // The caller's own metadata (a path, a topic, a transport id)
            // must fit a record too; it is not the message's fault, but the
            // message is still refused by name instead of failing the batch.
            if let Some((field, len)) = [
                ("source", msg.source.len()),
                ("message id", msg.message_id.map_or(0, str::len)),
            ]
            .into_iter()
            .find(|&(_, len)| len > MAX_FIELD_LEN)
            {
                outcomes.push(Outcome::Rejected {
                    reason: format!(
                        "{field} of {len} bytes exceeds the {MAX_FIELD_LEN} bytes a record's metadata holds"
                    ),
                });
                continue;
            }
            let payload = prep.payload(msg.raw);
            let hash = prep.hash;
            let publish_time = prep.publish_time.as_deref().unwrap_or("");
            let publish = (!publish_time.is_empty()).then_some(publish_time);
            let keys = prep.outcome.as_ref().ok();
            // The time this copy would give its event, where copies can
            // differ: an event whose payload has no time of rules 1-3.
            let copy_time = keys
                .filter(|k| k.times.own.is_none())
                .map(|k| resolve_time(k.times, arrival(publish, msg.ingest_ms, msg.source_kind)));
            let mut same = in_batch.get(&hash).and_then(|&i| pending.get(i));
            while let Some(p) = same.filter(|p| p.payload != payload) {
                same = p.same_hash.and_then(|i| pending.get(i));
            }
            // The latest pending copy is the best one archived: each copy
            // stored after the first was better than every copy before it.
            let archived = match same {
                Some(p) => Some((p.offset, Some(p.time))),
                None => {
                    let guid = keys.and_then(|k| k.interaction_guid.as_deref());
                    let own_time = keys.and_then(|k| payload_time(k, false));
                    self.find_archived(payload, hash, guid, own_time, keys)?
                }
            };
            if let Some((offset, best)) = archived {
                if !gives_an_earlier_time(copy_time, best) {
                    duplicates += 1;
                    outcomes.push(Outcome::Duplicate { offset });
                    continue;
                }
            }
            let message_id = prep.message_id.as_deref().or(msg.message_id).unwrap_or("");
            let (keys, reason) = match &prep.outcome {
                Ok(keys) => (keys, None),
                Err(reason) => (&NO_KEYS, Some(reason.as_str())),
            };
            let (offset, position) = self.log.append(&NewRecord {
                kind: RecordKind::Message,
                ingest_ms: msg.ingest_ms,
                quarantined: reason.is_some(),
                source_kind: msg.source_kind,
                source: msg.source,
                line: msg.line,
                message_id,
                publish_time,
                quarantine_reason: reason.unwrap_or(""),
                payload,
            })?;
            if reason.is_none() {
                self.note_facts(position.segment, offset, payload, keys);
            }
            let time = copy_time.unwrap_or_else(|| {
                resolve_time(keys.times, arrival(publish, msg.ingest_ms, msg.source_kind))
            });
            outcomes.push(match reason {
                Some(reason) => Outcome::Quarantined {
                    offset,
                    reason: reason.to_owned(),
                },
                None => Outcome::Archived { offset },
            });
            let same_hash = in_batch.insert(hash, pending.len());
            pending.push(Pending {
                offset,
                pos: position.pos,
                hash,
                same_hash,
                quarantined: matches!(outcomes.last(), Some(Outcome::Quarantined { .. })),
                payload,
                keys,
                time,
            });
        }

        let txn = match self.txn.as_mut() {
            Some(txn) => txn,
            None => self.txn.insert(self.index.begin()?),
        };
        let entries: Vec<Entry> = pending
            .iter()
            .map(|p| index_entry(p.offset, p.pos, p.hash, p.keys, p.time, p.quarantined))
            .collect();
        txn.add_all(&entries)?;
        // Duplicates and control messages never reach the log as messages:
        // a tally of the running totals closes the batch and is made durable
        // with it, so the counts are acknowledged with the batch and derived
        // from the log after any crash (issue 15; docs/FORMAT.md §1.4).
        if duplicates > 0 || control > 0 {
            let c = txn.counters();
            let totals = Tally {
                duplicates: c.duplicates + duplicates,
                control: c.control + control,
            };
            let last = batch.last().copied();
            let payload = totals.encode();
            let (offset, _) = self.log.append(&NewRecord::tally(
                &payload,
                last.map_or_else(now_ms, |m| m.ingest_ms),
                last.map_or(SourceKind::Unknown, |m| m.source_kind),
                last.map(|m| m.source)
                    .filter(|s| s.len() <= MAX_FIELD_LEN)
                    .unwrap_or(""),
                last.map_or(0, |m| m.line),
            ))?;
            txn.add_tally(offset, totals.duplicates, totals.control);
        }
        let commit = txn.pending() >= self.options.index_commit_records
            || self.last_commit.elapsed() >= self.options.index_commit_interval;
        // An index commit waits for the records it covers to be durable,
        // so it asks for their sync.
        let next_offset = if sync || commit {
            self.log.flush_nowait()?
        } else {
            self.log.next_offset()
        };
        if commit {
            self.commit_behind(next_offset)?;
        }
        Ok(BatchReport {
            outcomes,
            next_offset,
        })
    }

    /// Adds a record appended to `segment` to its facts; a segment's facts
    /// are written once the log has rolled past it.
    fn note_facts(&mut self, segment: u64, offset: u64, payload: &[u8], keys: &Keys) {
        if self.facts.as_ref().map(FactsBuilder::base) != Some(segment) {
            self.write_facts(false);
            self.facts = Some(FactsBuilder::new(segment));
        }
        if let Some(f) = self.facts.as_mut() {
            f.push(offset, payload, keys);
        }
    }

    /// Writes, on a thread of its own, the facts held if their segment is
    /// sealed (the log has rolled past it), or with `active_too` whatever
    /// segment they are of (at close, every record durable: the next
    /// writer continues them, or removes them if the log lost any record
    /// they name, [`crate::facts::resume`]). A failure costs only speed (the
    /// readers parse those payloads), so it is logged, not returned.
    fn write_facts(&mut self, active_too: bool) {
        if !self
            .facts
            .as_ref()
            .is_some_and(|f| active_too || f.base() < self.log.end_position().segment)
        {
            return;
        }
        let Some(done) = self.facts.take().filter(FactsBuilder::has_new_entries) else {
            return;
        };
        if self.facts_writer.is_none() {
            match FactsWriter::start(StdVfs::shared(), self.layout.facts_dir()) {
                Ok(w) => self.facts_writer = Some(w),
                Err(e) => tracing::warn!("could not start the facts writer ({e})"),
            }
        }
        if let Some(w) = self.facts_writer.as_mut() {
            w.write(done);
        }
    }

    /// Waits for the facts handed over to be written.
    fn wait_for_facts(&mut self) {
        if let Some(mut w) = self.facts_writer.take() {
            w.finish();
        }
    }

    /// Commits the open index transaction, making everything appended so
    /// far visible to readers.
    pub fn commit_index(&mut self) -> Result<()> {
        self.drop_replaced_segments();
        self.finish_commit()?;
        if let Some(mut txn) = self.txn.take() {
            txn.set_packed(packed_totals(self.log.packed_segments()));
            // The checkpoint must never be ahead of the durable log.
            self.log.flush()?;
            let checkpoint = self.end_checkpoint();
            let (records, lookups) = (txn.pending(), txn.lookups());
            let started = Instant::now();
            self.index.commit(txn, Some(checkpoint))?;
            trace_commit(records, lookups, started, false);
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Starts committing the open index transaction on a thread of its own,
    /// with the checkpoint at the end of the log (`through`, every record
    /// below it handed to the flusher to sync), and begins the next one
    /// after it. The thread waits until the log is durable through the
    /// checkpoint before it writes: the checkpoint is never ahead of the
    /// durable log. Meanwhile the appender goes on (the index commit, ~80 ms
    /// a quarter of a million records, held up every other thread of an
    /// import: docs/BENCHMARKS.md, issue 17). A commit still running is
    /// waited for first: commits are written one at a time, in order.
    fn commit_behind(&mut self, through: u64) -> Result<()> {
        self.drop_replaced_segments();
        self.finish_commit()?;
        let Some(mut txn) = self.txn.take() else {
            return Ok(());
        };
        txn.set_packed(packed_totals(self.log.packed_segments()));
        let checkpoint = self.end_checkpoint();
        debug_assert_eq!(checkpoint.next_offset, through);
        let writer = Arc::new(txn);
        self.txn = Some(self.index.begin_after(&writer)?);
        let index = Arc::clone(&self.index);
        let durable = self.log.durable_waiter();
        let job: CommitJob = Box::new(move || {
            durable.wait(through)?;
            let (records, lookups) = (writer.pending(), writer.lookups());
            let started = Instant::now();
            let written = index.write_collected(&writer, Some(checkpoint))?;
            trace_commit(records, lookups, started, true);
            Ok(written)
        });
        let committer = match &mut self.committer {
            Some(c) => c,
            None => self.committer.insert(Committer::start(self.layout.dir())?),
        };
        committer.submit(job)?;
        self.committing = true;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// The checkpoint at the end of the log as appended so far.
    fn end_checkpoint(&self) -> Checkpoint {
        let end = self.log.end_position();
        Checkpoint {
            next_offset: self.log.next_offset(),
            segment: end.segment,
            pos: end.pos,
        }
    }

    /// Waits for the commit handed to the commit thread, if any, and
    /// rebases the open transaction onto it.
    fn finish_commit(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.committing) {
            return Ok(());
        }
        let written = match &self.committer {
            Some(c) => c.done()?,
            None => return Err(lost_commit_thread()),
        };
        self.rebase(written)
    }

    /// Waits for the commit thread's last commit and ends the thread, so
    /// that the allocator takes back what its heap holds before the last
    /// commit and the compaction run on this thread. The thread's heap
    /// keeps the pages freed by its last commit (an idle thread returns
    /// nothing), and redb's cached pages it read, once evicted by this
    /// thread, went back to that heap, not to this one's: left running
    /// through `close`, a 50M streamed import peaked at 253-260 MiB
    /// during the compaction against ~238 MiB with the thread ended first
    /// (docs/BENCHMARKS.md, issue 17).
    fn end_commit_thread(&mut self) -> Result<()> {
        self.finish_commit()?;
        drop(self.committer.take());
        Ok(())
    }

    /// Rebases the open transaction onto the commit the thread wrote (or
    /// passes on why it could not).
    fn rebase(&mut self, written: Result<Written>) -> Result<()> {
        let written = written?;
        match self.txn.as_mut() {
            Some(txn) => Ok(txn.rebase(&self.index, written)?),
            // `commit_behind` begins the next writer before it hands the
            // commit over, and nothing takes it before this.
            None => Err(StoreError::Poisoned(
                "an index commit was written with no writer after it".into(),
            )),
        }
    }

    /// An archived record with exactly these payload bytes (`guid` and
    /// `payload_time` are what the payload says: [`Entry`]): its offset and,
    /// for a payload that parsed (`keys`), the time its record gives the
    /// event. With several such records (see [`gives_an_earlier_time`]), the
    /// one whose time is the event's.
    fn find_archived(
        &mut self,
        payload: &[u8],
        hash: u64,
        guid: Option<&str>,
        payload_time: Option<i64>,
        keys: Option<&Keys>,
    ) -> Result<Option<(u64, Option<EventTime>)>> {
        let hits = match &mut self.txn {
            Some(txn) => txn.duplicate_candidates(hash, guid, payload_time)?,
            None => self.index.reader()?.duplicate_candidates(hash, guid)?,
        };
        let mut best: Option<(u64, Option<EventTime>)> = None;
        for hit in hits {
            // The candidate may still be on its way to the file.
            self.log.wait_written(hit.offset)?;
            let at = self
                .segments
                .position(&self.log_reader, hit.offset, hit.pos);
            let mut read = self.log_reader.read_at(at);
            if !read.as_ref().is_ok_and(|rec| rec.offset == hit.offset) {
                // The listing may be older than the segment (as a reader's).
                if let Some(relisted) =
                    self.segments
                        .relisted_position(&self.log_reader, hit.offset, hit.pos)
                {
                    read = self.log_reader.read_at(relisted);
                }
            }
            match read {
                Ok(rec) if rec.offset == hit.offset && rec.payload == payload => {
                    let publish = (!rec.publish_time.is_empty()).then_some(&*rec.publish_time);
                    let time = keys.map(|k| {
                        resolve_time(k.times, arrival(publish, rec.ingest_ms, rec.source_kind))
                    });
                    let better = match (&best, time) {
                        (None, _) => true,
                        (Some((_, Some(have))), Some(t)) => t.copy_order(have).is_lt(),
                        _ => false,
                    };
                    if better {
                        best = Some((rec.offset, time));
                    }
                }
                Ok(_) => {}
                // The archived copy's bytes are damaged or gone: it holds
                // the event no more, and this intact copy keeps it
                // (`verify` reports the damaged one).
                Err(e @ (LogError::Corrupt { .. } | LogError::NoRecord { .. })) => {
                    tracing::warn!(
                        "record {} is damaged ({e}): a message with its hash is archived again, intact",
                        hit.offset
                    )
                }
                // Unreadable for now (out of descriptors, no permission, an
                // I/O error): whether the message is a copy cannot be told,
                // and archiving it anyway stored thousands of events twice
                // under `ulimit -n` (outside audit, 2026-12-07).
                Err(source) => {
                    return Err(StoreError::UnreadableCopy {
                        offset: hit.offset,
                        source,
                    })
                }
            }
        }
        Ok(best)
    }

    /// Flushes and syncs the log and commits the index (used at shutdown).
    pub fn sync(&mut self) -> Result<u64> {
        let next = self.log.flush()?;
        self.commit_index()?;
        self.write_facts(false);
        Ok(next)
    }

    /// Syncs, commits the index and compacts its file once it has grown
    /// enough since its last compaction ([`ccvault_index::Index::compact`]);
    /// the way to end a write session (dropping the archive syncs and
    /// commits, but never compacts).
    pub fn close(mut self) -> Result<u64> {
        self.finish()
    }

    /// [`Archive::close`] while the sealed segments still waiting for the
    /// background compressor are compressed beside it, on a thread of its
    /// own and then on this one ([`Log::compression_drainer`]): the end of
    /// a file import, whose archive should be as small as it will get when
    /// the command returns. A compression that failed leaves its segment a
    /// `.seg` (read as ever, tried again at the next open) and is logged.
    pub fn close_compressed(mut self) -> Result<u64> {
        let started = Instant::now();
        // Every segment sealed is queued once the log is flushed.
        let (_, drainer) = self.log.compression_drainer()?;
        let next = std::thread::scope(|scope| {
            let draining = drainer.as_ref().map(|d| scope.spawn(move || d.drain()));
            let next = self.finish();
            if let Some(d) = &drainer {
                d.drain();
            }
            if let Some(draining) = draining {
                let _ = draining.join();
            }
            next
        })?;
        if let Some(failure) = self.log.compression_failure() {
            tracing::warn!("a sealed segment stays uncompressed: {failure}");
        }
        self.commit_packed()?;
        tracing::debug!(elapsed = ?started.elapsed(), "closed and compressed");
        Ok(next)
    }

    /// Commits the count of compressed segments when the index's is behind
    /// (the last commit ran while the drain still compressed): a reader
    /// checks the log directory against it (`stats` sizes the log from it,
    /// and [`crate::ArchiveReader::missing_segments_note`] says when files
    /// it counted are gone).
    fn commit_packed(&mut self) -> Result<()> {
        let packed = packed_totals(self.log.packed_segments());
        if self.index.reader()?.packed()? == Some(packed) {
            return Ok(());
        }
        let mut txn = self.index.begin()?;
        txn.set_packed(packed);
        self.index.commit(txn, Some(self.end_checkpoint()))?;
        Ok(())
    }

    /// The end of [`Archive::close`]: syncs, commits, writes the facts and
    /// compacts the index if it pays.
    fn finish(&mut self) -> Result<u64> {
        self.end_commit_thread()?;
        let next = self.sync()?;
        self.write_facts(true);
        self.wait_for_facts();
        let started = Instant::now();
        // `sync` waited for any commit thread, which held the only other
        // share.
        let index = Arc::get_mut(&mut self.index)
            .ok_or_else(|| StoreError::Poisoned("the index is still being committed".into()))?;
        let compacted = index.compact()?;
        tracing::debug!(compacted, elapsed = ?started.elapsed(), "index compaction");
        Ok(next)
    }

    /// A snapshot reader; commits the index first so it sees every batch.
    pub fn reader(&mut self) -> Result<crate::ArchiveReader> {
        self.commit_index()?;
        crate::ArchiveReader::of_writer(self)
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        if self.poisoned.is_some() {
            // Not left writing the index after the directory is unlocked.
            drop(self.committer.take());
        } else {
            match self.sync() {
                Ok(_) => self.write_facts(true),
                Err(e) => {
                    tracing::error!("closing archive {}: {e}", self.layout.dir().display())
                }
            }
            self.wait_for_facts();
        }
    }
}

/// Logs an index commit's size, lookups and time (`behind`: written by the
/// commit thread).
fn trace_commit(records: u64, lookups: ccvault_index::Lookups, started: Instant, behind: bool) {
    tracing::debug!(
        records,
        lookups.keys,
        lookups.spans,
        lookups.probes,
        lookups.passed,
        lookups.seeks,
        behind,
        elapsed = ?started.elapsed(),
        "index commit"
    );
}

/// A commit's transaction, written by the [`Committer`].
type CommitJob = Box<dyn FnOnce() -> Result<Written> + Send>;

/// The thread that writes index commits behind the appender
/// ([`Archive::commit_behind`]), one at a time. One thread for the
/// archive's life, not one a commit: each thread's allocations (redb's
/// pages among them) are its allocator heap's, and a heap left by an ended
/// thread holds on to its pages.
struct Committer {
    jobs: Option<std::sync::mpsc::SyncSender<CommitJob>>,
    done: std::sync::mpsc::Receiver<Result<Written>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    fn start(dir: &Path) -> Result<Committer> {
        let (jobs, todo) = std::sync::mpsc::sync_channel::<CommitJob>(1);
        let (report, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ccvault-index-commit".into())
            .spawn(move || {
                for job in todo {
                    if report.send(job()).is_err() {
                        return;
                    }
                }
            })
            .map_err(io("cannot start the index commit thread for", dir))?;
        Ok(Committer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    fn submit(&self, job: CommitJob) -> Result<()> {
        match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err(lost_commit_thread()),
        }
    }

    /// The outcome of the commit handed over, waiting for it.
    fn done(&self) -> Result<Result<Written>> {
        self.done.recv().map_err(|_| lost_commit_thread())
    }

    /// The outcome of the commit handed over, if it is written.
    fn try_done(&self) -> Option<Result<Written>> {
        match self.done.try_recv() {
            Ok(written) => Some(written),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(Err(lost_commit_thread())),
        }
    }
}

impl Drop for Committer {
    /// Lets the thread finish the commit it has, then joins it.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lost_commit_thread() -> StoreError {
    StoreError::Poisoned("the index commit thread stopped (it panicked)".into())
}

/// The index entry of the record at `offset`/`pos` with these keys.
pub(crate) fn index_entry(
    offset: u64,
    pos: u32,
    payload_hash: u64,
    keys: &Keys,
    time: EventTime,
    quarantined: bool,
) -> Entry<'_> {
    Entry {
        offset,
        pos,
        payload_hash,
        interaction_guid: keys.interaction_guid.as_deref(),
        agent_id: keys.agent_id.as_deref(),
        time_ms: time.ms,
        timed: time.is_timed(),
        quarantined,
        payload_time: payload_time(keys, quarantined),
    }
}

/// Whether a message whose payload equals an archived record's is stored
/// after all: only when the time its own record gives the event (`copy`)
/// comes before the best time of the records archived (`archived`) in
/// [`EventTime::copy_order`]. docs/METRICS.md §2 makes t(e) a function of
/// every record that carried the event (the best rule among them, its
/// smallest value); a copy dropped as a duplicate could not take part.
/// Payloads with a time of their own give every copy the same time, and
/// a redelivery or a second import arrives later than the first copy, so
/// such a copy is rare: an earlier publish time arriving second, an event
/// imported from a file and then received live.
fn gives_an_earlier_time(copy: Option<EventTime>, archived: Option<EventTime>) -> bool {
    match (copy, archived) {
        (Some(copy), Some(archived)) => copy.copy_order(&archived).is_lt(),
        _ => false,
    }
}

/// The payload's own event time, where the duplicate check places a record
/// without a GUID ([`Entry::payload_time`]): a function of the payload's
/// bytes alone, the same when a copy of it arrives again.
pub(crate) fn payload_time(keys: &Keys, quarantined: bool) -> Option<i64> {
    keys.times.own.filter(|_| !quarantined).map(|t| t.ms)
}

pub(crate) fn remove_file_if_exists(path: &PathBuf) -> Result<()> {
    ccvault_log::vfs::remove_if_exists(&StdVfs, path).map_err(io("cannot remove", path))
}

/// How a record arrived, for its event time: a live source's ingest time is
/// a receipt time, an import's is weak.
pub(crate) fn arrival(publish_time: Option<&str>, ingest_ms: i64, kind: SourceKind) -> Arrival<'_> {
    Arrival {
        publish_time,
        ingest_ms,
        live: kind.is_live(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the user started waits out a read command indexing the
    /// log's tail past its usual grace (an outside audit: an import
    /// started beside a slow one was refused after 2 s), and is refused at
    /// once by any other holder after the grace.
    #[test]
    fn a_writer_waits_out_a_reads_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        drop(Archive::open(dir.path(), ArchiveOptions::default()).unwrap());
        let user = ArchiveOptions {
            lock_wait: Duration::from_millis(300),
            ..ArchiveOptions::default()
        };
        let hold = |role| ccvault_log::lock_dir_for(dir.path(), Duration::ZERO, role).unwrap();
        let released = |lock: ccvault_log::DirLock| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(900));
                drop(lock);
            })
        };

        let by_a_read = released(hold(Some(INDEXING_FOR_A_READ)));
        let started = std::time::Instant::now();
        let opened = Archive::open(dir.path(), user.clone());
        assert!(opened.is_ok(), "{:?}", opened.err());
        assert!(started.elapsed() >= Duration::from_millis(800));
        drop(opened);
        by_a_read.join().unwrap();

        let by_another = released(hold(None));
        let refused = Archive::open(dir.path(), user).err();
        assert!(
            matches!(refused, Some(StoreError::Locked { .. })),
            "{refused:?}"
        );
        by_another.join().unwrap();
    }
}
