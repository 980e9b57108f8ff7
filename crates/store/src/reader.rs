//! Read access to an archive, also while a writer runs.
//!
//! Invariants:
//! - A reader sees the archive as of one index commit. It reads log records
//!   only below that commit's checkpoint, so the view is the same whichever
//!   file a query touches.
//! - Readers of messages never see a tally record (docs/FORMAT.md §1.4):
//!   the scans here skip them; the counts they carry are the index's.
//! - Every durable record is visible unless a writer is running: a reader
//!   that finds records in the log past the index's checkpoint with no writer
//!   holding the archive (one stopped by an error, or an index restored from
//!   an older copy) indexes them before it reads. With a writer running, the
//!   view lags by at most the writer's commit interval.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ccvault_event::parse_event;
use ccvault_index::{Counters, Hit, IndexError, IndexReader, INDEX_VERSION};
use ccvault_log::{
    Damage, LogError, LogReader, Position, Record, RecordKind, RecordRef, ScanRef, SourceKind,
};

use crate::archive::{check_private_files, Archive, ArchiveOptions, INDEXING_FOR_A_READ};
use crate::error::{Result, StoreError};
use crate::layout::Layout;
use crate::segments::{packed_segments, SegmentMap};

/// Bytes of index pages an [`ArchiveReader::open_brief`] reader keeps: the
/// root and upper pages a lookup revisits fit; the leaves it reads once do
/// not stay.
pub const BRIEF_CACHE_BYTES: usize = 64 << 10;

/// Totals for `ccvault stats`: the index's counters and the sizes on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub counters: Counters,
    pub segments: u64,
    /// Log, index and projections bytes (files' lengths; see
    /// `docs/OPERATIONS.md`, "Sizing"). Not the segments' facts: sizing
    /// them takes a `stat` a segment, which would make `stats` grow with
    /// the archive (they are ~11 bytes an event).
    pub bytes: u64,
    pub log_bytes: u64,
    pub index_bytes: u64,
    /// `projections.redb`, once a command built it (0 before).
    pub projections_bytes: u64,
}

/// Whether an opened reader found the index behind the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    UpToDate,
    /// A writer holds the archive; it indexes its own records.
    WriterRunning,
    /// Records `first..end` were durable but not indexed; they are now.
    CaughtUp {
        first: u64,
        end: u64,
    },
    /// Records from `first` are not indexed and could not be.
    Failed {
        first: u64,
        error: String,
    },
    /// The index could not be opened (`why`: missing, zeroed, damaged) or
    /// did not describe the log beside it (another archive's), and was
    /// rebuilt from the log; every record is indexed now.
    Rebuilt {
        why: String,
    },
    /// The index was of an older version (`from`), an older build's, and
    /// was rebuilt from the log at this build's: an upgrade, not damage.
    Upgraded {
        from: u64,
    },
}

/// The options of the writer a read command opens to bring the index up to
/// the log (catch it up, repair it after a crash, rebuild an older
/// version's): it changes the index alone. The log's sealed segments stay
/// as they are: compressing them is the next import's or ingest's work (a
/// `show` that compressed them took their time, and undid an import's
/// `--no-compress`; an outside audit found it).
fn repair_options() -> ArchiveOptions {
    ArchiveOptions {
        compression: None,
        lock_role: Some(INDEXING_FOR_A_READ),
        ..ArchiveOptions::default()
    }
}

pub struct ArchiveReader {
    layout: Layout,
    index: IndexReader,
    log: LogReader,
    segments: SegmentMap,
    /// Records at offsets >= this are not visible.
    visible_end: u64,
    /// The first record of the log past the index's last commit, when this
    /// reader could not index it (a writer holds the archive, or indexing
    /// failed): what it cannot see.
    unindexed_from: Option<u64>,
    /// `unindexed_from` is set because a writer holds the archive (it
    /// indexes those records itself), not because indexing them failed.
    writer_running: bool,
    /// The damaged places of the log that lookups by the index met (a
    /// record that fails its checks, a segment that is gone): those records
    /// were left out and the others served; the caller says so.
    damage_met: Vec<String>,
}

impl ArchiveReader {
    /// Opens the archive in `dir` for reading. If no writer holds it and its
    /// index needs recovery after a crash, or is behind the log, recovers it
    /// first.
    pub fn open(dir: &Path) -> Result<ArchiveReader> {
        Self::open_catching_up(dir).map(|(reader, _)| reader)
    }

    /// [`ArchiveReader::open`] for a command that makes a lookup or two and
    /// exits (`show --raw`, `stats`): the index keeps `BRIEF_CACHE_BYTES`
    /// of pages instead of redb's usual 48 MiB. Such a command reads each
    /// page once; a lookup by GUID reads ~3 pages per generation its span's
    /// GUID blocks admit, and keeping them all (~600 KiB at 50M events,
    /// measured with generations of 2^20 records) cost `show`
    /// more in freshly faulted memory (~0.4 ms) than a cache saves
    /// (docs/BENCHMARKS.md, "What grows in opening").
    pub fn open_brief(dir: &Path) -> Result<ArchiveReader> {
        Self::open_catching_up_with(dir, Some(BRIEF_CACHE_BYTES)).map(|(reader, _)| reader)
    }

    /// [`ArchiveReader::open`], also saying whether the index was behind the
    /// log and what was done about it (`verify` reports it).
    pub fn open_catching_up(dir: &Path) -> Result<(ArchiveReader, CatchUp)> {
        Self::open_catching_up_with(dir, None)
    }

    /// [`ArchiveReader::open_catching_up`] with an index page cache of
    /// `cache_bytes` (`None`: redb's usual size).
    fn open_catching_up_with(
        dir: &Path,
        cache_bytes: Option<usize>,
    ) -> Result<(ArchiveReader, CatchUp)> {
        Self::open_catching_up_after(dir, cache_bytes, false)
    }

    /// [`ArchiveReader::open_catching_up_with`]; `waited`: this open
    /// follows a wait for another read's catch-up, and does not wait again.
    fn open_catching_up_after(
        dir: &Path,
        cache_bytes: Option<usize>,
        waited: bool,
    ) -> Result<(ArchiveReader, CatchUp)> {
        let (reader, rebuilt) = Self::open_reporting_rebuild(dir, cache_bytes)?;
        if let Some(rebuilt) = rebuilt {
            return Ok((reader, rebuilt));
        }
        let Some(first) = reader.first_unindexed()? else {
            return Ok((reader, CatchUp::UpToDate));
        };
        if reader.index.repaired_in_memory() {
            // A writer open has just failed to repair the index (and this
            // reader holds its lock): the records past the checkpoint stay
            // unseen, as where indexing them fails.
            let error = "the index needs a repair that could not be written".to_owned();
            if reader.visible_end == 0 {
                // As below: an index that has seen nothing answers nothing.
                return Err(StoreError::NothingIndexedNeedsWriter {
                    index: reader.layout.index_path(),
                    why: error,
                });
            }
            tracing::warn!(
                "records from offset {first} are in the log but not in the index: {error}"
            );
            let mut reader = reader;
            reader.unindexed_from = Some(first);
            return Ok((reader, CatchUp::Failed { first, error }));
        }
        match Archive::open(dir, repair_options()) {
            Ok((archive, report)) => {
                drop(archive);
                if report.reindexed_tail == 0 && !report.index_rebuilt {
                    // A writer held those records and committed them as it
                    // closed, between the look above and this open: nothing
                    // was behind once we could look as a writer.
                    return Ok((
                        Self::open_as_committed(dir, cache_bytes)?,
                        CatchUp::UpToDate,
                    ));
                }
            }
            // Another read indexing the same records (reads started
            // together after a crash): waited for, then looked at again.
            // Until 2026-12-08 this read answered without them, exit 0, an
            // `export` beside another one empty (an outside audit).
            Err(StoreError::Locked { .. })
                if !waited
                    && ccvault_log::held_for(dir, INDEXING_FOR_A_READ)
                    && lock_let_go(dir)? =>
            {
                drop(reader);
                return Self::open_catching_up_after(dir, cache_bytes, true);
            }
            // A writer: it indexes its records itself, and commits them
            // as it goes.
            Err(StoreError::Locked { .. }) => {
                let mut reader = reader;
                reader.unindexed_from = Some(first);
                reader.writer_running = true;
                return Ok((reader, CatchUp::WriterRunning));
            }
            // An index that has seen none of the log's records (the
            // first commit of an import the disk stopped never came):
            // answering from it would be answering "nothing", with exit 0
            // (an `export` taken as a backup came out empty; outside
            // audit, 2026-12-07).
            Err(e) if reader.visible_end == 0 => {
                return Err(StoreError::NothingIndexedNeedsWriter {
                    index: reader.layout.index_path(),
                    why: ccvault_log::display_chain(&e),
                })
            }
            Err(e) => {
                // Reads must keep working where a writer cannot (a full or
                // read-only disk); the records past the checkpoint stay unseen.
                let error = ccvault_log::display_chain(&e);
                tracing::warn!(
                    "records from offset {first} are in the log but not in the index, \
                     and indexing them failed: {error}"
                );
                let mut reader = reader;
                reader.unindexed_from = Some(first);
                return Ok((reader, CatchUp::Failed { first, error }));
            }
        }
        let reader = Self::open_as_committed(dir, cache_bytes)?;
        let end = reader.visible_end;
        Ok((reader, CatchUp::CaughtUp { first, end }))
    }

    /// The offset of the first valid record past the index's checkpoint, if
    /// the log holds one (damage there is not a record and is left to
    /// recovery and `verify`).
    fn first_unindexed(&self) -> Result<Option<u64>> {
        let from = self
            .index
            .checkpoint()?
            .map_or(Position::START, |c| Position {
                segment: c.segment,
                pos: c.pos,
            });
        // Over the listing taken at open, after the checkpoint was read (so
        // it holds the checkpoint's segment), without listing again: each
        // listing costs ~0.1 ms at 400 segments (docs/BENCHMARKS.md, "What
        // grows in opening"). A segment created after that listing exists
        // only if a writer has run since; its records are then that
        // writer's to index (running) or indexed (closed), and the answer
        // is the one a look at the listing's moment would have given.
        let mut scan = self.log.scan_listed(from);
        while let Some(item) = scan.next_ref() {
            if let ScanRef::Record(_, rec) = item? {
                return Ok((rec.offset >= self.visible_end).then_some(rec.offset));
            }
        }
        Ok(None)
    }

    /// The archive as of its last index commit, without catching up.
    fn open_as_committed(dir: &Path, cache_bytes: Option<usize>) -> Result<ArchiveReader> {
        Self::open_reporting_rebuild(dir, cache_bytes).map(|(reader, _)| reader)
    }

    /// [`Self::open_as_committed`], and why the index had to be rebuilt
    /// from the log on the way, if it had.
    fn open_reporting_rebuild(
        dir: &Path,
        cache_bytes: Option<usize>,
    ) -> Result<(ArchiveReader, Option<CatchUp>)> {
        let layout = Layout::new(dir);
        let index_exists = require_archive(dir)?;
        check_private_files(dir)?;
        let mut rebuilt = None;
        let open_index = |path: &Path| match cache_bytes {
            Some(bytes) => IndexReader::open_with_cache(path, bytes),
            None => IndexReader::open(path),
        };
        let open_repaired = |path: &Path| match cache_bytes {
            Some(bytes) => IndexReader::open_repaired_in_memory_with_cache(path, bytes),
            None => IndexReader::open_repaired_in_memory(path),
        };
        // The index a writer open has just closed: as committed, or, when
        // that writer could not close it cleanly (its close writes redb's
        // allocator state, which a full disk refuses), repaired in memory
        // as a crash's would be.
        let reopen = |path: &Path| -> Result<IndexReader> {
            open_index(path).or_else(|first| {
                let index = open_repaired(path).map_err(|_| first)?;
                tracing::warn!(
                    "the index {} was left needing repair by a writer that could not close it (a full disk?); \
                     repaired in memory for this command (the next command that can write repairs it)",
                    path.display()
                );
                Ok(index)
            })
        };
        let index = match open_index(&layout.index_path()) {
            Ok(index) => {
                let reader = Self::with_index(layout, index)?;
                let Some(why) = reader.misfit() else {
                    return Ok((reader, None));
                };
                // Another archive's index, or a record being appended at
                // the checkpoint: a writer open tells them apart, and
                // rebuilds the first (`fit`).
                let layout = reader.layout.clone();
                drop(reader);
                let rebuilt = match Archive::open(dir, repair_options()) {
                    Ok((archive, report)) => {
                        drop(archive);
                        report.index_rebuilt.then(|| CatchUp::Rebuilt {
                            why: format!("it did not describe this log ({why})"),
                        })
                    }
                    // The writer running checked the index when it opened
                    // the archive, and rebuilt it if it had to.
                    Err(StoreError::Locked { .. }) => None,
                    // Reads must keep working where a writer cannot (a
                    // full or read-only disk).
                    Err(e) => {
                        tracing::warn!(
                            "the index {} may not describe this log ({why}), and opening the archive to check and rebuild it failed: {e}; `ccvault reindex` rebuilds it",
                            layout.index_path().display()
                        );
                        None
                    }
                };
                let index = reopen(&layout.index_path())?;
                return Ok((Self::with_index(layout, index)?, rebuilt));
            }
            Err(first) => {
                // A crashed writer leaves the index needing repair (or, after
                // `rm index.redb`, missing): a writer open fixes both.
                match Archive::open(dir, repair_options()) {
                    Ok((archive, report)) => {
                        if report.index_rebuilt {
                            rebuilt = Some(match first {
                                IndexError::Version { found, .. } if found < INDEX_VERSION => {
                                    CatchUp::Upgraded { from: found }
                                }
                                other => CatchUp::Rebuilt {
                                    why: other.to_string(),
                                },
                            });
                        } else if !index_exists && report.reindexed_tail > 0 {
                            // Rebuilding a deleted index is a repair like
                            // rebuilding a zeroed one: `verify` says so.
                            rebuilt = Some(CatchUp::Rebuilt {
                                why: format!(
                                    "{} was missing; {} records indexed",
                                    layout.index_path().display(),
                                    report.reindexed_tail
                                ),
                            });
                        }
                        // Records a killed writer appended past its last
                        // commit, indexed by this repair's open, are the
                        // crash's recovery, not reported (OPERATIONS.md).
                        drop(archive)
                    }
                    Err(StoreError::Locked { dir, holder }) if !index_exists => {
                        return Err(StoreError::NoIndexYet { dir, holder })
                    }
                    // The holder, a writer or a reader repairing as this
                    // one would, repairs the index as it opens: waited for
                    // (until 2026-12-07 reads started together after a
                    // crash failed with "Database repair aborted").
                    Err(StoreError::Locked { .. }) if first.needs_repair() => {
                        let index = wait_for_repair(&layout.index_path(), open_index)?;
                        return Ok((Self::with_index(layout, index)?, None));
                    }
                    Err(StoreError::Locked { .. }) => return Err(first.into()),
                    // Reads must keep working where a writer cannot (a full
                    // or read-only disk): an index that needs the repair a
                    // crash leaves is repaired in memory instead.
                    Err(e) if index_exists => {
                        let path = layout.index_path();
                        let Ok(index) = open_repaired(&path) else {
                            if let IndexError::Version { found, .. } = first {
                                if found >= INDEX_VERSION {
                                    return Err(e);
                                }
                                return Err(StoreError::UpgradeNeedsWriter {
                                    index: path,
                                    found,
                                    why: ccvault_log::display_chain(&e),
                                });
                            }
                            // The writer open found an index that had
                            // seen none of the log's records (or none it
                            // could use), could not build it whole and
                            // removed it (`Archive::open`): said as the
                            // next read will say it, where until 2026-12-07
                            // the scratch file's bare I/O error was all.
                            if !path.exists() && crate::archive::says_nothing_of_the_file(&e) {
                                return Err(StoreError::MissingIndexNeedsWriter {
                                    index: path,
                                    why: ccvault_log::display_chain(&e),
                                });
                            }
                            return Err(e);
                        };
                        tracing::warn!(
                            "the index {} needs the repair a writer that stopped without closing it leaves, \
                             and opening the archive to make it failed: {e}; repaired in memory for this \
                             command (the next command that can write repairs it)",
                            path.display(),
                            e = ccvault_log::display_chain(&e)
                        );
                        return Ok((Self::with_index(layout, index)?, None));
                    }
                    Err(e) if crate::archive::says_nothing_of_the_file(&e) => {
                        return Err(StoreError::MissingIndexNeedsWriter {
                            index: layout.index_path(),
                            why: ccvault_log::display_chain(&e),
                        })
                    }
                    Err(e) => return Err(e),
                }
                reopen(&layout.index_path())?
            }
        };
        Ok((Self::with_index(layout, index)?, rebuilt))
    }

    /// A reader over the writer's own snapshot.
    pub fn of_writer(archive: &Archive) -> Result<ArchiveReader> {
        Self::with_index(Layout::new(archive.dir()), archive.index_snapshot()?)
    }

    fn with_index(layout: Layout, index: IndexReader) -> Result<ArchiveReader> {
        let checkpoint = index.checkpoint()?;
        // Listed after the checkpoint was read: the listing holds its
        // segment (see SegmentMap::for_snapshot).
        let log = LogReader::open(&layout.log_dir())?;
        let visible_end = checkpoint.map_or(0, |c| c.next_offset);
        Ok(ArchiveReader {
            segments: SegmentMap::for_snapshot(&log, checkpoint.map(|c| c.segment)),
            layout,
            index,
            log,
            visible_end,
            unindexed_from: None,
            writer_running: false,
            damage_met: Vec::new(),
        })
    }

    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// The last loss of records the index had seen that the writer which
    /// recovered the log recorded: the first offset lost, and the loss's
    /// identity (`None`: no loss since the index was built). Derived data
    /// made from records at or past that offset before that loss is stale,
    /// not damaged.
    pub fn log_loss(&self) -> Result<Option<(u64, u64)>> {
        Ok(self.index.lost()?)
    }

    /// Whether the log holds a record (a message or a tally) at `offset`
    /// or past it, read from `from` on, whether or not the index has seen
    /// it yet; or may hold it in a damaged place after its last readable
    /// record (a flipped byte in the last record: its offset cannot be
    /// read, and until 2026-12-07 projections that had applied it were
    /// called another archive's, which no `rebuild` changed: an outside
    /// audit).
    pub fn log_reaches(&self, from: Position, offset: u64) -> bool {
        let mut scan = self.log.scan(from);
        let mut damage_last = false;
        while let Some(item) = scan.next_ref() {
            match item {
                Ok(ScanRef::Record(_, rec)) if rec.offset >= offset => return true,
                Ok(ScanRef::Record(..)) => damage_last = false,
                Ok(ScanRef::Damage(_)) => damage_last = true,
                Err(_) => return false,
            }
        }
        damage_last
    }

    /// Why this reader's index does not describe its log (`fit`), if it
    /// does not.
    fn misfit(&self) -> Option<String> {
        let checkpoint = self.index.checkpoint().ok().flatten()?;
        crate::fit::misfit(&self.log, &checkpoint, None)
    }

    pub fn log(&self) -> &LogReader {
        &self.log
    }

    /// A scan over the records this reader sees, which can be handed to
    /// another thread while the reader serves lookups.
    pub fn records(&self) -> VisibleRecords<'_> {
        VisibleRecords {
            log: &self.log,
            end: self.visible_end,
        }
    }

    /// One past the last visible offset.
    /// The offset of the first record of the log this reader does not see
    /// because it is not indexed yet and could not be indexed at open: a
    /// writer is running (it indexes its records itself, a commit at a
    /// time; after a version change or a lost index it is rebuilding the
    /// whole index), or indexing failed. `None` when the reader sees every
    /// record the log held when it opened. A lookup that finds nothing
    /// says so, rather than that there is nothing.
    pub fn unindexed_from(&self) -> Option<u64> {
        self.unindexed_from
    }

    /// Whether the records from [`Self::unindexed_from`] on are unseen
    /// because a writer holds the archive (it commits them to the index as
    /// it goes), not because indexing them here failed.
    pub fn writer_running(&self) -> bool {
        self.writer_running
    }

    /// What a lookup that found nothing must add about the records it could
    /// not search ([`Self::unindexed_from`]), if there are any.
    pub fn not_searched(&self) -> Option<String> {
        self.unindexed_from.map(|first| {
            if self.writer_running {
                format!(
                    "its records from offset {first} on are not indexed yet, so were not searched \
                     (a running writer indexes its records as it commits them, and after an upgrade \
                     or a lost index.redb rebuilds the whole index first); ask again once it has"
                )
            } else {
                format!(
                    "its records from offset {first} on are not indexed, so were not searched \
                     (indexing them failed here: a full or read-only disk); the next command \
                     that can write indexes them"
                )
            }
        })
    }

    pub fn visible_end(&self) -> u64 {
        self.visible_end
    }

    /// The damaged places of the log the lookups so far met and left out
    /// (what and where), for the caller to say that what it shows is
    /// incomplete.
    pub fn damage_met(&self) -> &[String] {
        &self.damage_met
    }

    /// The sentence that says what [`ArchiveReader::damage_met`] left out
    /// of an answer, for every place that shows one; `None` when nothing.
    pub fn damage_note(&self) -> Option<String> {
        let first = self.damage_met.first()?;
        Some(format!(
            "{} record(s) of what follows are in damaged places of the log and left out (first: {first}); run `ccvault verify`",
            self.damage_met.len()
        ))
    }

    /// The sentence that says what every answer read through the index
    /// lacks: the damaged places of the log its indexing skipped
    /// (`reindex`, or a tail indexed at open), whose records, if any, no
    /// posting names. `None` when indexing met none (or the index, written
    /// before they were counted, does not say).
    pub fn index_damage_note(&self) -> Option<String> {
        let c = self.index.counters().ok()?;
        self.note_of_index_damage(&c)
    }

    /// The sentence that says a segment file the index saw is gone from
    /// the log directory (deleted, or lost with its directory entry): the
    /// records in it are in no answer, and those read through the index
    /// would be looked for in a neighbouring file. Segments are never
    /// removed and a `.segz` never goes back to a `.seg`, so fewer `.segz`
    /// files than the index counted at its last commit, or no file for the
    /// segment of its checkpoint, means some are missing. `None` when
    /// nothing is missing (or the index does not say).
    pub fn missing_segments_note(&self) -> Option<String> {
        let known = self.index.packed().ok().flatten().map(packed_segments);
        let checkpoint = self.index.checkpoint().ok().flatten();
        let (packed, has_last) = self
            .log
            .listed_packed_and_has(checkpoint.map_or(0, |c| c.segment));
        let missing_packed = known.map_or(0, |k| k.count.saturating_sub(packed));
        let missing_last = checkpoint.is_some() && !has_last;
        if missing_packed == 0 && !missing_last {
            return None;
        }
        let mut what = Vec::new();
        if missing_packed > 0 {
            what.push(format!(
                "{missing_packed} compressed segment file(s) the index counted ({} listed, {} counted)",
                packed,
                known.map_or(0, |k| k.count)
            ));
        }
        if let Some(c) = checkpoint.filter(|_| missing_last) {
            what.push(format!("the segment {:020} the index ends in", c.segment));
        }
        Some(format!(
            "the log directory {} lacks {}: the records in them are in no answer; `ccvault verify` names the missing offsets",
            self.layout.log_dir().display(),
            what.join(", and ")
        ))
    }

    /// How many damaged places of the log the index's indexing skipped (0
    /// when it met none, or does not say).
    pub fn index_damaged_places(&self) -> u64 {
        self.index_damage().0
    }

    /// How many damaged places of the log the index's indexing skipped, and
    /// the first (segment base, byte position).
    pub fn index_damage(&self) -> (u64, Option<(u64, u32)>) {
        self.index
            .counters()
            .map_or((0, None), |c| (c.damaged_places, c.first_damage))
    }

    fn note_of_index_damage(&self, c: &ccvault_index::Counters) -> Option<String> {
        let (segment, pos) = c.first_damage?;
        Some(format!(
            "the index was built around {} damaged place(s) of the log ({} bytes; the first in segment {segment:020} at byte {pos}): whatever records were there are in no answer; `ccvault verify` names each place",
            c.damaged_places, c.damaged_bytes,
        ))
    }

    /// From now on sees only the records below `end` (never more than it
    /// saw): what a check of something derived from those records reads.
    pub fn limit_visible(&mut self, end: u64) {
        self.visible_end = self.visible_end.min(end);
    }

    /// Reads the records of index hits, in offset order.
    pub fn read_hits(&mut self, hits: &[Hit]) -> Result<Vec<Record>> {
        let mut records = Vec::with_capacity(hits.len());
        for hit in hits.iter().filter(|h| h.offset < self.visible_end) {
            let mut at = self.segments.position(&self.log, hit.offset, hit.pos);
            let mut read = self.log.read_at(at);
            if !read.as_ref().is_ok_and(|rec| rec.offset == hit.offset) {
                if let Some(relisted) = self
                    .segments
                    .relisted_position(&self.log, hit.offset, hit.pos)
                {
                    at = relisted;
                    read = self.log.read_at(at);
                }
            }
            let rec = match read {
                Ok(rec) => rec,
                // Not served, and the rest still is (docs/OPERATIONS.md,
                // "Integrity checks"): noted for the caller to say.
                Err(e @ (LogError::Corrupt { .. } | LogError::NoRecord { .. })) => {
                    self.damage_met.push(format!("offset {}: {e}", hit.offset));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // Another record where the index places this one: its segment
            // file is gone (a sealed `.seg` removed leaves no other sign),
            // and the lookup fell into the one before. Left out and said,
            // as a damaged place is: the rest is still served.
            if rec.offset != hit.offset {
                self.damage_met.push(format!(
                    "offset {}: not in the log where the index places it (segment {:020} byte {} holds offset {}: the segment file that held it is gone, or the index is damaged)",
                    hit.offset, at.segment, at.pos, rec.offset
                ));
                continue;
            }
            records.push(rec);
        }
        Ok(records)
    }

    /// The records of one interaction, in offset (arrival) order.
    pub fn interaction_records(&mut self, guid: &str) -> Result<Vec<Record>> {
        let hits = self.index.guid_hits(guid)?;
        let mut records = self.read_hits(&hits)?;
        // A hash collision can bring in records of another interaction.
        records.retain(|r| names_guid(&r.payload, guid));
        Ok(records)
    }

    /// The records that name an agent, in offset order.
    pub fn agent_records(&mut self, agent: &str) -> Result<Vec<Record>> {
        let hits = self.index.agent_hits(agent)?;
        let mut records = self.read_hits(&hits)?;
        records.retain(|r| {
            parse_event(&r.payload)
                .ok()
                .and_then(|ev| ev.body.agent_id.as_text().map(|a| a == agent))
                .unwrap_or(false)
        });
        Ok(records)
    }

    /// Quarantined records, in offset order.
    pub fn quarantined(&mut self) -> Result<Vec<Record>> {
        let hits = self.index.quarantined()?;
        self.read_hits(&hits)
    }

    pub fn counters(&self) -> Result<Counters> {
        Ok(self.index.counters()?)
    }

    pub fn stats(&self) -> Result<Stats> {
        let c = self.index.counters()?;
        // Sized from the open's listing and what the index snapshot (taken
        // before it) counted of the compressed segments: no `stat` per
        // segment (docs/BENCHMARKS.md, "`stats` without a `stat` per segment").
        let known = self.index.packed()?.map(packed_segments);
        let (segments, log_bytes) = self.log.footprint_listed(known);
        let file_len = |path: std::path::PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
        let index_bytes = file_len(self.layout.index_path());
        let projections_bytes = file_len(self.layout.projections_path());
        Ok(Stats {
            counters: c,
            segments,
            bytes: log_bytes + index_bytes + projections_bytes,
            log_bytes,
            index_bytes,
            projections_bytes,
        })
    }

    /// The `message_id` of the last visible record that came from `source`
    /// (a topic) of kind `kind`: where a Pulsar reader resumes. Scans the
    /// log backwards one segment at a time (each segment forwards, stopping
    /// at the first segment holding such a record), so the cost is one
    /// segment when the archive is fed by that source, the whole log only
    /// when it never was. Damaged records are skipped.
    pub fn last_message_id(&self, kind: SourceKind, source: &str) -> Result<Option<String>> {
        self.newest_segment_answer(|found, rec| {
            if rec.kind == RecordKind::Message
                && rec.source_kind == kind
                && rec.source == source
                && !rec.message_id.is_empty()
            {
                *found = Some(rec.message_id.to_owned());
            }
        })
    }

    /// Whether the newest segment holding a message holds one of `kind`:
    /// a cheap "was this archive being fed by that source lately" (one
    /// segment's read, never the whole log), for a warning when a peer has
    /// forgotten the archive's session.
    pub fn recent_message_of(&self, kind: SourceKind) -> Result<bool> {
        let of_kind = self.newest_segment_answer(|of_kind, rec| {
            if rec.kind == RecordKind::Message {
                *of_kind = Some(of_kind.unwrap_or(false) || rec.source_kind == kind);
            }
        })?;
        Ok(of_kind.unwrap_or(false))
    }

    /// Reads the log's segments from the newest back, each in log order,
    /// handing `fold` every visible record of it and an answer to fill in;
    /// the first segment that gives an answer gives it (damaged records
    /// skipped). One segment's read when the newest has it.
    fn newest_segment_answer<T>(
        &self,
        mut fold: impl FnMut(&mut Option<T>, &RecordRef<'_>),
    ) -> Result<Option<T>> {
        for base in self.log.segments().into_iter().rev() {
            let mut answer = None;
            let mut scan = self.log.scan(ccvault_log::Position {
                segment: base,
                pos: 0,
            });
            while let Some(item) = scan.next_ref() {
                match item? {
                    ScanRef::Record(pos, rec) => {
                        if pos.segment != base || rec.offset >= self.visible_end {
                            break;
                        }
                        fold(&mut answer, &rec);
                    }
                    ScanRef::Damage(_) => {}
                }
            }
            if answer.is_some() {
                return Ok(answer);
            }
        }
        Ok(None)
    }

    /// Visits every visible message in log order (tally records are not
    /// messages and are skipped). Damaged records are reported to
    /// `on_damage` and skipped.
    pub fn for_each_record(
        &self,
        mut f: impl FnMut(Record) -> Result<()>,
        on_damage: impl FnMut(String),
    ) -> Result<()> {
        self.for_each_record_ref(|_, rec| f(rec.to_record()), on_damage)
    }

    /// Where the archive keeps its segments' facts (`crate::facts`).
    pub fn facts_dir(&self) -> PathBuf {
        self.layout.facts_dir()
    }

    /// [`Self::for_each_record`] without copying each record out of the
    /// log's read buffer, with the position each was read at.
    pub fn for_each_record_ref(
        &self,
        mut f: impl FnMut(Position, RecordRef<'_>) -> Result<()>,
        mut on_damage: impl FnMut(String),
    ) -> Result<()> {
        let start = ccvault_log::Position { segment: 0, pos: 0 };
        let mut order = OffsetOrder::default();
        // Offsets run on without a gap from 0 (tallies have theirs): one
        // after no damage the scan met means records whose file is gone or
        // was cut short (a sealed `.seg` removed has no other sign).
        let mut damage_since_last = false;
        let mut scan = self.log.scan(start);
        while let Some(item) = scan.next_ref() {
            match item? {
                ScanRef::Record(at, rec) => {
                    if rec.offset >= self.visible_end {
                        break;
                    }
                    if rec.offset > order.next && !damage_since_last {
                        on_damage(format!(
                            "offsets {} to {} are not in the log (before segment {:020}: a segment file removed or cut short); not served",
                            order.next,
                            rec.offset - 1,
                            at.segment
                        ));
                    }
                    damage_since_last = false;
                    if !order.admits(rec.offset) {
                        on_damage(format!(
                            "record at offset {} in segment {} repeats or goes back (a copied or renamed segment); not served",
                            rec.offset, at.segment
                        ));
                        continue;
                    }
                    if rec.kind == RecordKind::Message {
                        f(at, rec)?;
                    }
                }
                // A `.segz` header or block index damaged, its blocks found:
                // nothing is left out.
                ScanRef::Damage(d)
                    if d.len_skipped == 0
                        && matches!(d.reason, ccvault_log::DamageReason::Compressed { .. }) => {}
                ScanRef::Damage(d) => {
                    damage_since_last = true;
                    on_damage(d.to_string())
                }
            }
        }
        Ok(())
    }
}

/// The visible records of one [`ArchiveReader`] in log order, without
/// copying them out of the log's read buffer.
///
/// Guarantees: every message (event or quarantined input) at an offset
/// below the reader's visible end is passed exactly once, in offset order
/// (records before the start position are not), and none at or above it;
/// tally records are never passed (offsets may skip them); damaged ranges
/// are skipped (the scan resynchronises after them), and
/// [`VisibleRecords::scan_noting_damage`] says which of them lay among the
/// records it passed.
#[derive(Clone, Copy)]
pub struct VisibleRecords<'a> {
    log: &'a LogReader,
    end: u64,
}

impl VisibleRecords<'_> {
    /// One past the last visible offset.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether the log still has the segment whose base offset is `base`
    /// (where a scan position saved earlier can resume).
    pub fn has_segment(&self, base: u64) -> bool {
        self.log.segments().contains(&base)
    }

    /// The offset of the first visible message after the one at `at`
    /// (whose offset is `offset`), if any. What a derived file that
    /// stopped at that message and counted the tallies after it as done
    /// asks: a message there took the offset of a lost tally (a log that
    /// lost only tallies at its end, then took new records).
    pub fn next_message_after(&self, at: Position, offset: u64) -> Result<Option<u64>> {
        let next = self.scan(at, |_, rec| {
            if rec.offset <= offset {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(rec.offset)
            }
        })?;
        Ok(match next {
            ControlFlow::Break(o) => Some(o),
            ControlFlow::Continue(()) => None,
        })
    }

    /// Calls `f` with each visible record from `from` on and the position
    /// it was read at; stops early when `f` breaks, returning its value.
    pub fn scan<B>(
        &self,
        from: Position,
        f: impl FnMut(Position, RecordRef<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.scan_noting_damage(from, f, |_| {})
    }

    /// [`VisibleRecords::scan`], also calling `damaged` with each damaged
    /// place it skipped among the visible records: one with a visible
    /// record after it, or, at the scan's end, one after which visible
    /// offsets never came (the log's last visible records damaged). Bytes
    /// past the last visible record that no visible offset was in (a
    /// torn tail, or the frame a running writer is appending) are not
    /// among them.
    pub fn scan_noting_damage<B>(
        &self,
        from: Position,
        mut f: impl FnMut(Position, RecordRef<'_>) -> ControlFlow<B>,
        mut damaged: impl FnMut(&Damage),
    ) -> Result<ControlFlow<B>> {
        let end = self.end;
        let mut broke = None;
        let mut order = OffsetOrder::default();
        let mut pending: Vec<Damage> = Vec::new();
        // One past the last offset read below `end`, of any kind of record.
        let mut next_offset = None;
        self.log
            .scan_with(from, |item| -> std::result::Result<_, LogError> {
                let (pos, rec) = match item {
                    ScanRef::Record(pos, rec) => (pos, rec),
                    ScanRef::Damage(d) => {
                        pending.push(d);
                        return Ok(ControlFlow::Continue(()));
                    }
                };
                if rec.offset >= end {
                    return Ok(ControlFlow::Break(()));
                }
                if !pending.is_empty() {
                    pending.drain(..).for_each(|d| damaged(&d));
                }
                next_offset = Some(rec.offset.saturating_add(1));
                if !order.admits(rec.offset) || rec.kind != RecordKind::Message {
                    return Ok(ControlFlow::Continue(()));
                }
                Ok(f(pos, rec).map_break(|b| broke = Some(b)))
            })?;
        if broke.is_none() && next_offset.is_some_and(|next| next < end) {
            pending.iter().for_each(&mut damaged);
        }
        Ok(match broke {
            Some(b) => ControlFlow::Break(b),
            None => ControlFlow::Continue(()),
        })
    }
}

/// Enforces "each offset once, in increasing order" on a scan: a record
/// whose offset is not above the last one passed (a segment copied or
/// renamed to a wrong base, a repeated frame) is not served; `verify`
/// reports it as damage.
#[derive(Default)]
struct OffsetOrder {
    next: u64,
}

impl OffsetOrder {
    fn admits(&mut self, offset: u64) -> bool {
        if offset < self.next {
            return false;
        }
        self.next = offset.saturating_add(1);
        true
    }
}

/// Whether `path` exists; an error other than "not found" (a directory
/// this user may not search) is an error naming the path.
/// [`StoreError::NoArchive`] unless `dir` holds an archive's log or index:
/// for the commands that need one to exist (reading, and `reindex`, which
/// would otherwise make an empty archive wherever a mistyped `--data-dir`
/// points). `Ok(true)` when the index is there. "No archive" only when the
/// files are surely absent: a directory this user may not search answers
/// `exists()` with false too, and that is a permission error to name, not
/// an empty place.
pub fn require_archive(dir: &Path) -> Result<bool> {
    refuse_a_file(dir)?;
    let layout = Layout::new(dir);
    let index_exists = exists(&layout.index_path())?;
    if !index_exists && !exists(&layout.log_dir())? {
        return Err(StoreError::NoArchive(dir.to_path_buf()));
    }
    Ok(index_exists)
}

/// How long a reader waits for the holder of the writer lock to repair an
/// index a crash left needing it: a writer's open repairs it first, in
/// well under a second even at 50M events (docs/BENCHMARKS.md).
const REPAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The index at `path` opened with `open` once the writer lock's holder
/// has repaired it, polled for up to [`REPAIR_WAIT`]; past it, an error
/// saying what is waited for.
/// Waits up to [`REPAIR_WAIT`] for the read command indexing the log's
/// tail to let go of `dir`'s lock: whether it did (the lock free, or held
/// by another since, such as a writer started meanwhile, which a new look
/// answers without waiting).
fn lock_let_go(dir: &Path) -> Result<bool> {
    let started = std::time::Instant::now();
    while started.elapsed() < REPAIR_WAIT {
        if !ccvault_log::writer_running(dir)? || !ccvault_log::held_for(dir, INDEXING_FOR_A_READ) {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(false)
}

fn wait_for_repair(
    path: &Path,
    open: impl Fn(&Path) -> std::result::Result<IndexReader, IndexError>,
) -> Result<IndexReader> {
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        match open(path) {
            Err(e) if e.needs_repair() && started.elapsed() < REPAIR_WAIT => continue,
            Err(e) if e.needs_repair() => {
                return Err(StoreError::Input(format!(
                    "{} needs the repair a crash leaves, and the process that holds the archive has not made it in {}s; try again once it has",
                    path.display(),
                    REPAIR_WAIT.as_secs()
                )))
            }
            other => return Ok(other?),
        }
    }
}

/// Refuses a `dir` that exists as something other than a directory,
/// before any path inside it is tried (which would fail as "Not a
/// directory" or "File exists", naming the wrong thing).
pub(crate) fn refuse_a_file(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(StoreError::NotADirectory(dir.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(dir) {
            Ok(target) => Err(StoreError::DanglingLink {
                dir: dir.to_path_buf(),
                target,
            }),
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists()
        .map_err(crate::error::io("cannot read the archive at", path))
}

/// Whether an event payload's `interactionGUID` reads as `guid`.
fn names_guid(payload: &[u8], guid: &str) -> bool {
    parse_event(payload)
        .ok()
        .and_then(|ev| ev.body.interaction_guid.as_text().map(|g| g == guid))
        .unwrap_or(false)
}
