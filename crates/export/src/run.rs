//! One export run: full, or incremental from the directory's checkpoint.
//!
//! Invariants:
//! - `events` gains, per run, the records at offsets from the checkpoint's
//!   `eventsEnd` to the reader's visible end (a tenant's export: to the
//!   end the projections hold), each once, in new files of their
//!   partitions: a record's partition never changes (its tenant and t(e)
//!   come from the record alone), so no row is written twice.
//! - `interactions` and `agent-states` are rewritten by partition: a run
//!   hashes every partition's rows and writes only those whose hash differs
//!   from the checkpoint's (a leg changed by a late event, moved to another
//!   day, or new); a partition left empty loses its files. After any run the
//!   tables hold what a full export would.
//! - `agent-states` is a function of the status changes, the largest t(e)
//!   and the code: a whole-archive run whose new records hold no status
//!   change, with the checkpoint's largest t(e), projection version and
//!   export code, keeps its partitions and reads only the new records.
//!   Otherwise an incremental whole-archive run reads the status changes
//!   the checkpoint's saved list names ([`crate::changes`]; same projection
//!   version and export code, each position still holding its offset)
//!   and the new records, in log order as a full scan would, and saves
//!   the list again; without a usable list it reads the whole log.
//! - A run that finds no new record and the same [`Sources`] as the
//!   checkpoint's reads no record and no leg and writes nothing (the
//!   checkpoint stays as it is): the tables are a function of those alone.
//! - Order of effects: leftovers of an interrupted run are removed, new
//!   files are put in place (each complete before it is visible), the
//!   checkpoint is replaced, and only then are the files it no longer names
//!   deleted. A crash at any point leaves the last checkpoint's files or
//!   the new ones complete; the next run removes the rest.
//! - A tenant's export (`tenant`) reads that tenant's records through the
//!   tenant index (`Projections::tenant_records`), never another tenant's,
//!   and writes only `tenant=<T>` partitions; its checkpoint names the
//!   tenant, so `since_last` continues only an export of the same tenant.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ccvault_event::Event;
use ccvault_projections::{InteractionFilter, Projections, SpanChanges};
use ccvault_store::facts::FactsCursor;
use ccvault_store::{payload_hash, ArchiveReader, Hit, Position, Record, RecordRef, StoreError};
use jiff::tz::TimeZone;
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use crate::changes::{self, CHANGES_FILE};
use crate::checkpoint::{Checkpoint, PartState, RecordMark, Sources, CHECKPOINT_FILE};
use crate::column::{ColumnError, Rows};
use crate::error::{io, ExportError, Result};
use crate::partition::{create_dirs, data_file_run, Dates, NewFile, PartitionKey, TableWriter};
use crate::stage::{staged_rows, At, Records, Stage};
use crate::tables::{fact_row, push_event, push_span, push_summary, read_event, Table};

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The zone of the `date=` partitions.
    pub tz: TimeZone,
    /// Continue from the directory's checkpoint (a full export when it has none).
    pub since_last: bool,
    /// Uncompressed bytes of a row group.
    pub row_group_bytes: usize,
    /// Uncompressed values of a table's row groups in progress, over all
    /// partitions, past which the idlest is completed early.
    pub memory_bytes: usize,
    /// Only this tenant's rows (docs/SCALE.md, "A tenant's export"): its
    /// events and legs, and the state spans of its agents.
    pub tenant: Option<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            tz: TimeZone::UTC,
            since_last: false,
            row_group_bytes: 128 << 20,
            memory_bytes: 512 << 20,
            tenant: None,
        }
    }
}

/// What a run did to one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSummary {
    pub table: &'static str,
    /// Rows in the files this run wrote.
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    /// Partitions that got new files.
    pub partitions_written: u64,
    /// Partitions left as they were.
    pub partitions_unchanged: u64,
    /// Partitions whose files were deleted (they have no rows any more).
    pub partitions_removed: u64,
    /// Time spent on this table (`events`: the log scan, which also
    /// collects the agent status changes).
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    pub run: u64,
    /// False for a full export (also `since_last` without a checkpoint).
    pub incremental: bool,
    /// The records the export now covers: offsets below this.
    pub events_end: u64,
    /// Damaged places of the log that were skipped.
    pub damaged: u64,
    /// The first of them, said.
    pub first_damage: Option<String>,
    /// Records this run read from the log (an incremental run reads the
    /// new ones, and the saved agent status changes when it needs them).
    pub records_read: u64,
    pub tables: Vec<TableSummary>,
}

/// The name a zone is recorded under in the checkpoint.
fn tz_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .map_or_else(|| format!("{tz:?}"), str::to_owned)
}

/// Exports the archive `reader` sees and its projections `p` (brought up
/// to date by the caller) to `dir`.
pub fn export(
    reader: &mut ArchiveReader,
    p: &Projections,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    create_dirs(dir)?;
    let _only_run = lock_out_dir(dir)?;
    let mut reached = Reached::Checking;
    let result = export_into(reader, p, dir, opts, &mut reached);
    let Err(e) = result else {
        return result;
    };
    // What a failed run was writing is never read (hidden names), but on a
    // full disk it holds the space until the next run: gone now, as far as
    // it can be.
    remove_temporaries(dir);
    let Reached::Writing(run) = reached else {
        return Err(e);
    };
    // The files it had put in place would be read beside those of the
    // last complete run (a rewritten partition twice): removed, as the
    // next run would, so the directory is that run's again. Every data
    // file of this run's number is this run's: the leftovers of earlier
    // attempts went before it wrote.
    let rolled_back = Checkpoint::load(dir)
        .and_then(|old| remove_leftovers(dir, old.as_ref()))
        .is_ok();
    Err(ExportError::RunFailed {
        run,
        rolled_back,
        source: Box::new(e),
    })
}

/// Holds `dir` for this run alone (an `flock` on the directory itself,
/// released when the process ends): two runs into one directory would each
/// remove the other's new files as not their own, and the last checkpoint
/// would name files that no longer exist (an audit: overlapping cron jobs,
/// both exit 0, the events table read as empty).
fn lock_out_dir(dir: &Path) -> Result<std::fs::File> {
    let handle = std::fs::File::open(dir).map_err(io("cannot open directory", dir))?;
    match handle.try_lock() {
        Ok(()) => Ok(handle),
        Err(std::fs::TryLockError::WouldBlock) => Err(ExportError::Refused(
            "another `ccvault export` is writing to this directory: run this one once it has finished (a run that overlapped it would remove its new files)".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock directory", dir)(e)),
    }
}

/// How far a run got: what its failure leaves to undo.
enum Reached {
    /// Reading the directory and the checkpoint: nothing written yet.
    Checking,
    /// Run `.0` writes data files; the checkpoint is the last run's.
    Writing(u64),
    /// The new checkpoint is in place; only superseded files remain to
    /// remove (which the error says, and the next run does).
    Committed,
}

/// Removes the temporary files under the table directories, best effort.
fn remove_temporaries(dir: &Path) {
    // The checkpoint's and the saved status changes' (an audit found the
    // latter left by a run that failed writing it).
    for name in [
        format!(".{CHECKPOINT_FILE}.tmp"),
        format!(".{CHANGES_FILE}.tmp"),
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let Ok(files) = table_files(dir) else { return };
    for f in files.iter().filter(|f| f.run.is_none()) {
        // With the partition directories it made and leaves empty (an
        // audit found `events/tenant=…/` left by a failed run).
        let _ = remove(dir, &f.rel);
    }
}

fn export_into(
    reader: &mut ArchiveReader,
    p: &Projections,
    dir: &Path,
    opts: &ExportOptions,
    reached: &mut Reached,
) -> Result<ExportSummary> {
    create_dirs(dir)?;
    let old = Checkpoint::load(dir)?;
    if old.is_none() {
        refuse_foreign(dir)?;
    }
    let tz = tz_name(&opts.tz);
    let incremental = match &old {
        Some(c) if opts.since_last => {
            if c.tz != tz {
                return Err(ExportError::Refused(format!(
                    "{} was exported with --tz {}; an incremental export must use the same zone (or run a full export without --since-last)",
                    dir.display(),
                    c.tz
                )));
            }
            if c.tenant != opts.tenant {
                return Err(ExportError::Refused(format!(
                    "{} is an export of {}; an incremental export must be of the same (or run a full export without --since-last)",
                    dir.display(),
                    scope(c.tenant.as_deref())
                )));
            }
            true
        }
        _ => false,
    };
    let run = old.as_ref().map_or(1, |c| c.run + 1);
    remove_leftovers(dir, old.as_ref())?;
    *reached = Reached::Writing(run);
    let mut new = match (&old, incremental) {
        (Some(c), true) => c.clone(),
        _ => Checkpoint::empty(tz, run, opts.tenant.clone()),
    };
    new.run = run;
    let start = new.events_end;
    let state = p.state()?;
    // The records the projections have consumed, so that the three tables
    // are of one snapshot: the reader, opened after them, may see a
    // running writer's later commits (an audit's export during an import
    // held events 270,000 records past its interactions). A tenant's
    // records are found through the projections' tenant index, which
    // covers the same.
    let end = state.consumed.min(reader.visible_end());
    if start > end {
        return Err(ExportError::Refused(format!(
            "{} covers {start} records but the archive shows only {end}: it was exported from another archive; run a full export (without --since-last) or use another directory",
            dir.display()
        )));
    }
    if let Some(m) = old
        .as_ref()
        .filter(|_| incremental)
        .and_then(|c| c.last_record.as_ref())
        .filter(|m| m.offset < start)
    {
        check_last_record(reader, dir, m, start)?;
    }

    let sources = Sources {
        projection_version: state.version,
        consumed: state.consumed,
        max_time_ms: state.max_time_ms,
        interactions: state.interactions,
        writer: writer_id(),
    };
    if let Some(c) = old.as_ref().filter(|_| incremental && start == end) {
        if c.sources.as_ref() == Some(&sources) {
            return Ok(unchanged(c));
        }
    }
    // Agent spans are a function of the status changes, the largest t(e)
    // and the code: when those are the checkpoint's and no new record is a
    // status change, its `agent-states` stand and the log before `start`
    // is not read (late events of old interactions cost only their own
    // records and the legs).
    let spans_kept = match old.as_ref().and_then(|c| c.sources.as_ref()) {
        Some(s) if incremental && opts.tenant.is_none() => {
            s.max_time_ms == sources.max_time_ms
                && s.projection_version == sources.projection_version
                && s.writer == sources.writer
                && !any_status_change(reader, start..end)?
        }
        _ => false,
    };
    // Otherwise the spans need every status change: the saved list of
    // them (when it is the checkpoint's, and the code that recognized them
    // is the same) spares reading the rest of the log; a list that does not
    // read back as it was saved is not used.
    let read = if spans_kept {
        Read::New
    } else {
        let saved = match old
            .as_ref()
            .filter(|_| incremental && opts.tenant.is_none())
        {
            Some(Checkpoint {
                sources: Some(s),
                agent_changes: Some(list),
                ..
            }) if s.projection_version == sources.projection_version
                && s.writer == sources.writer =>
            {
                changes::load(dir, list)?
            }
            _ => None,
        };
        saved
            .and_then(|hits| {
                let records = reader.read_hits(&hits).ok()?;
                let same = records.len() == hits.len()
                    && records.iter().zip(&hits).all(|(r, h)| r.offset == h.offset);
                same.then(|| hits.into_iter().zip(records).collect())
            })
            .map_or(Read::All, Read::SavedAndNew)
    };
    new.sources = Some(sources);

    let mut tables = Vec::new();
    let clock = std::time::Instant::now();
    let keep_list = matches!(read, Read::All | Read::SavedAndNew(_)) && opts.tenant.is_none();
    let scanned = scan_events(reader, p, dir, run, start..end, read, opts)?;
    let (events, spans_source, damaged) = (scanned.files, scanned.agents, scanned.damaged);
    let first_damage = scanned.first_damage;
    new.agent_changes = match scanned.changes {
        Some(hits) if keep_list => Some(changes::store(dir, &hits)?),
        // Kept spans: no new change, the list stands.
        _ if spans_kept => new.agent_changes.take(),
        _ => None,
    };
    let records_read = scanned.read;
    // A run that read nothing new keeps the mark it found in place; a
    // tenant's run, which reads through the index, looks for the record.
    if start < end {
        new.last_record = match scanned.last_record {
            Some(m) => Some(m),
            None => find_mark(reader, end - 1)?,
        };
    }
    let mut sum = merge_appended(&mut new, Table::Events, &events);
    sum.seconds = clock.elapsed().as_secs_f64();
    tables.push(sum);
    new.events_end = end;

    let old_parts = |t: Table| {
        old.as_ref()
            .filter(|_| incremental)
            .and_then(|c| c.tables.get(t.name()))
            .cloned()
            .unwrap_or_default()
    };
    let clock = std::time::Instant::now();
    let mut dates = Dates::new(opts.tz.clone());
    let legs = Rewrite::new(Table::Interactions, old_parts(Table::Interactions));
    let filter = InteractionFilter {
        tenant: opts.tenant.clone(),
        ..InteractionFilter::default()
    };
    let legs = legs.write_changed(dir, run, opts, push_summary, |f| {
        let mut failed = None;
        p.for_each_interaction(&filter, |s| {
            let key = PartitionKey {
                tenant: s.tenant.clone(),
                date: dates.of(s.offered_at),
            };
            Ok(match f(key, s) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })
        })?;
        failed.map_or(Ok(()), Err)
    })?;
    let mut sum = legs.into_checkpoint(&mut new);
    sum.seconds = clock.elapsed().as_secs_f64();
    tables.push(sum);

    if spans_kept {
        tables.push(TableSummary {
            table: Table::AgentStates.name(),
            partitions_unchanged: old_parts(Table::AgentStates).len() as u64,
            ..TableSummary::default()
        });
    } else {
        let clock = std::time::Instant::now();
        let max_time = state.max_time_ms.unwrap_or(i64::MIN);
        let mut spans_source = spans_source;
        let scratch = scratch_base(dir);
        let spans = Rewrite::new(Table::AgentStates, old_parts(Table::AgentStates));
        let spans = spans.write_changed(dir, run, opts, push_span, |f| {
            spans_source.for_each_span(
                max_time,
                |s| {
                    let key = PartitionKey {
                        tenant: s.tenant.clone(),
                        date: dates.of(s.start_ms),
                    };
                    f(key, s)
                },
                |e| io(SCRATCH_ERROR, &scratch)(e),
            )
        })?;
        let mut sum = spans.into_checkpoint(&mut new);
        sum.seconds = clock.elapsed().as_secs_f64();
        tables.push(sum);
    }
    commit(dir, old.as_ref(), &new, reached)?;
    Ok(ExportSummary {
        run,
        incremental,
        events_end: end,
        damaged,
        first_damage,
        records_read,
        tables,
    })
}

/// Replaces the checkpoint, then deletes the files it no longer names.
fn commit(
    dir: &Path,
    old: Option<&Checkpoint>,
    new: &Checkpoint,
    reached: &mut Reached,
) -> Result<()> {
    new.store(dir)?;
    *reached = Reached::Committed;
    if let Some(old) = old {
        remove_superseded(dir, old, new).map_err(|e| {
            ExportError::Refused(format!(
                "run {} is complete and its checkpoint written, but removing the files it replaced failed: {e}; until a run removes them, query engines read those rows twice (the next export, full or --since-last, removes them)",
                new.run
            ))
        })?;
    }
    Ok(())
}

/// Identifies the code that turns rows into files: a run by other code
/// (another version, other columns) must not take the checkpoint's
/// partitions as its own without comparing them.
fn writer_id() -> String {
    let mut h = Xxh3::new();
    for t in Table::ALL {
        h.update(format!("{}: {:?}\n", t.name(), t.specs()).as_bytes());
    }
    format!("ccvault {} {:016x}", env!("CARGO_PKG_VERSION"), h.digest())
}

/// The summary of a run that found nothing new: the checkpoint's run, no
/// file written, every partition unchanged; the directory is left as it
/// is, checkpoint included.
fn unchanged(c: &Checkpoint) -> ExportSummary {
    let tables = Table::ALL
        .iter()
        .map(|t| TableSummary {
            table: t.name(),
            partitions_unchanged: c.tables.get(t.name()).map_or(0, |p| p.len() as u64),
            ..TableSummary::default()
        })
        .collect();
    ExportSummary {
        run: c.run,
        incremental: true,
        events_end: c.events_end,
        damaged: 0,
        first_damage: None,
        records_read: 0,
        tables,
    }
}

/// `the whole archive` or `tenant "T"`, for messages.
fn scope(tenant: Option<&str>) -> String {
    match tenant {
        None => "the whole archive".to_owned(),
        Some(t) => format!("tenant {t:?}"),
    }
}

/// Whether a record at an offset in `range` may be an agent status change.
fn any_status_change(reader: &ArchiveReader, range: std::ops::Range<u64>) -> Result<bool> {
    let mut found = false;
    for_each_new_record(reader, range, |_, rec| {
        found = may_be_status_change(rec.payload);
        Ok(!found)
    })?;
    Ok(found)
}

/// Visits the records at offsets in `range`, in log order, reading the
/// log from the segment that holds `range.start` on; `f` returns whether
/// to go on.
fn for_each_new_record(
    reader: &ArchiveReader,
    range: std::ops::Range<u64>,
    mut f: impl FnMut(Position, RecordRef<'_>) -> Result<bool>,
) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let segment = segment_of(reader, range.start);
    let mut failed = None;
    // Where the scan stopped does not matter: `f` said, or the range ended.
    let _: ControlFlow<()> = reader
        .records()
        .scan(Position { segment, pos: 0 }, |at, rec| {
            if rec.offset < range.start {
                return ControlFlow::Continue(());
            }
            if rec.offset >= range.end {
                return ControlFlow::Break(());
            }
            match f(at, rec) {
                Ok(true) => ControlFlow::Continue(()),
                Ok(false) => ControlFlow::Break(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(ExportError::from)?;
    failed.map_or(Ok(()), Err)
}

/// Which records of the log a run reads for `events` and the spans.
enum Read {
    /// Every record (a tenant's export: every record of the tenant).
    All,
    /// Only the new ones: the spans are kept.
    New,
    /// The saved status changes (read by position, with their records),
    /// then the new records.
    SavedAndNew(Vec<(Hit, Record)>),
}

/// Where the agent status changes wait for the spans: scratch files in the
/// export directory, hidden, and unlinked as soon as they are created.
fn scratch_base(dir: &Path) -> PathBuf {
    dir.join(".ccvault-scratch")
}

const SCRATCH_ERROR: &str = "cannot use a scratch file for the agent status changes at";

/// What [`scan_events`] found.
struct Scanned {
    files: Vec<NewFile>,
    agents: SpanChanges,
    damaged: u64,
    first_damage: Option<String>,
    /// Every status change the agent states took, where each is (none
    /// when one's position is unknown: a tenant's records).
    changes: Option<Vec<Hit>>,
    /// Records read from the log.
    read: u64,
    /// The record just below the wanted range, if it was read by position.
    last_record: Option<RecordMark>,
}

/// One pass over the records `read` names: the `events` rows of those in
/// `wanted`, and the agent status changes among them (agent spans need all
/// of them; with [`Read::New`] the spans are kept). In a tenant's export,
/// every status change of the tenant's agents (only those are read, with
/// the tenant's events), whatever its own tenant, makes a span of the
/// tenant. This thread
/// reads the log; the records it keeps are parsed into rows on a
/// [`Stage`].
fn scan_events(
    reader: &mut ArchiveReader,
    p: &Projections,
    dir: &Path,
    run: u64,
    wanted: std::ops::Range<u64>,
    read: Read,
    opts: &ExportOptions,
) -> Result<Scanned> {
    let rows = EventRows {
        writer: TableWriter::new(
            Table::Events,
            dir.join(Table::Events.name()),
            run,
            opts.row_group_bytes,
            opts.memory_bytes,
        )?,
        agents: SpanChanges::new(Some(&scratch_base(dir))),
        scratch: scratch_base(dir),
        dates: Dates::new(opts.tz.clone()),
        wanted: wanted.clone(),
        only: opts.tenant.clone(),
        changes: Some(Vec::new()),
        key: PartitionKey {
            tenant: None,
            date: None,
        },
        facts_dir: reader.facts_dir(),
        facts: None,
    };
    let mut stage = Stage::spawn("export-parse", rows, EventRows::visit)?;
    let mut records_read = 0u64;
    let mut last_record = None;
    let mut pass = |at: At, rec: RecordRef<'_>| -> Result<()> {
        records_read += 1;
        if let (Some(segment), Some(pos), true) = (at.segment, at.pos, rec.offset + 1 == wanted.end)
        {
            last_record = Some(mark(
                rec.offset,
                Position { segment, pos },
                rec.payload,
                rec.ingest_ms,
            ));
        }
        // Only what the stage will use crosses to it.
        let kept =
            !rec.quarantined && (wanted.contains(&rec.offset) || may_be_status_change(rec.payload));
        if kept {
            stage.push(at, &rec)?;
        }
        Ok(())
    };
    // The first export error, kept while the reader is told to stop.
    let mut failed: Option<ExportError> = None;
    let mut stop = |e: ExportError| {
        failed = Some(e);
        StoreError::Input("export stopped".into())
    };
    let mut damaged = 0u64;
    let mut first_damage = None;
    let result = match (opts.tenant.as_deref(), read) {
        (None, Read::SavedAndNew(saved)) => {
            for (hit, rec) in &saved {
                let at = At {
                    segment: None,
                    pos: Some(hit.pos),
                };
                pass(at, rec.as_ref())?;
            }
            drop(saved);
            for_each_new_record(reader, wanted.clone(), |at, rec| {
                pass(logged(at), rec).map(|()| true)
            })?;
            Ok(())
        }
        (None, Read::New) => {
            for_each_new_record(reader, wanted.clone(), |at, rec| {
                pass(logged(at), rec).map(|()| true)
            })?;
            Ok(())
        }
        (None, Read::All) => reader
            .for_each_record_ref(
                |at, rec| pass(logged(at), rec).map_err(&mut stop),
                |place| {
                    damaged += 1;
                    first_damage.get_or_insert(place);
                },
            )
            .map_err(ExportError::from),
        (Some(t), _) => {
            let met = reader.damage_met().len();
            // The tenant's events, and the status changes of its agents
            // filed under another tenant: their spans are the tenant's
            // (`agents --tenant`), their rows are not.
            let read = p
                .tenant_records_and_agent_changes(reader, t, |rec, _| {
                    pass(At::default(), rec.as_ref()).map_err(|e| stop(e).into())
                })
                .map_err(ExportError::from);
            // The tenant's records in damaged places, left out by the lookups.
            damaged += (reader.damage_met().len() - met) as u64;
            first_damage = reader.damage_met().get(met).cloned();
            read
        }
    };
    if let Some(e) = failed {
        return Err(e);
    }
    result?;
    let rows = stage.finish()?;
    Ok(Scanned {
        files: rows.writer.finish()?,
        agents: rows.agents,
        damaged,
        first_damage,
        changes: rows.changes,
        read: records_read,
        last_record,
    })
}

/// The mark of the record at `offset`, found at `at` with `payload`.
fn mark(offset: u64, at: Position, payload: &[u8], ingest_ms: i64) -> RecordMark {
    RecordMark {
        offset,
        segment: at.segment,
        pos: at.pos,
        payload_hash: format!("{:016x}", payload_hash(payload)),
        ingest_ms: Some(ingest_ms),
    }
}

/// The segment that holds `offset`, if the log holds it: segments are named
/// by the offset of their first record.
fn segment_of(reader: &ArchiveReader, offset: u64) -> u64 {
    reader
        .log()
        .segments()
        .into_iter()
        .filter(|base| *base <= offset)
        .max()
        .unwrap_or(0)
}

/// The mark of the last message at or below `offset`, read from the start
/// of its segment (`None` if the log holds none there, or only in damaged
/// places). A tally (the counts a batch that dropped duplicates ends with)
/// is no message: a log that ends in one, the usual case, is marked by the
/// message before it, else an incremental run could not tell this log from
/// another archive's (until 2026-12-06 it went unmarked and unchecked).
fn find_mark(reader: &ArchiveReader, offset: u64) -> Result<Option<RecordMark>> {
    let mut bases = reader.log().segments();
    bases.retain(|&base| base <= offset);
    // From the segment that holds `offset` back, until one holds a message
    // at or below it (a tally starts a segment only after a roll).
    for &segment in bases.iter().rev() {
        let mut last = None;
        // Broken off past `offset`, or run to the visible end: `last` says.
        let _: ControlFlow<()> = reader
            .records()
            .scan(Position { segment, pos: 0 }, |at, rec| {
                if rec.offset > offset {
                    return ControlFlow::Break(());
                }
                last = Some(at);
                ControlFlow::Continue(())
            })
            .map_err(ExportError::from)?;
        if let Some(at) = last {
            let rec = reader.log().read_at(at).map_err(StoreError::from)?;
            return Ok(Some(mark(rec.offset, at, &rec.payload, rec.ingest_ms)));
        }
    }
    Ok(None)
}

/// Refuses an incremental run over a log that no longer holds, where the
/// checkpoint says, the record the last run exported last: the records
/// since would be read from the wrong offset on.
fn check_last_record(
    reader: &ArchiveReader,
    dir: &Path,
    m: &RecordMark,
    events_end: u64,
) -> Result<()> {
    let at = Position {
        segment: m.segment,
        pos: m.pos,
    };
    let found = reader.log().read_at(at).ok();
    // A mark written before it kept the ingest time compares the rest.
    let same = |r: &ccvault_store::Record| {
        let found = mark(r.offset, at, &r.payload, r.ingest_ms);
        found
            == RecordMark {
                ingest_ms: m.ingest_ms.or(found.ingest_ms),
                ..m.clone()
            }
    };
    // Only tallies followed it below `eventsEnd` when it was exported: a
    // message there took the offset of a lost tally, which the run, going
    // on from `eventsEnd`, would never export (until 2026-12-07: an
    // outside audit).
    let nothing_new_before_end = || {
        reader
            .records()
            .next_message_after(at, m.offset)
            .is_ok_and(|next| next.is_none_or(|o| o >= events_end))
    };
    if found.is_some_and(|r| same(&r)) && (m.offset + 1 >= events_end || nothing_new_before_end()) {
        return Ok(());
    }
    Err(ExportError::Refused(format!(
        "{}: the last event it exported (offset {}) is not in the archive as it was: the log lost records since (the writer warned of it), or the export is another archive's; run a full export (without --since-last) or use another directory",
        dir.display(),
        m.offset
    )))
}

/// Where a record the log's scan read is.
fn logged(at: Position) -> At {
    At {
        segment: Some(at.segment),
        pos: Some(at.pos),
    }
}

/// The parsing stage of [`scan_events`]: the rows of `events` and the
/// agent status changes.
struct EventRows {
    writer: TableWriter,
    agents: SpanChanges,
    scratch: PathBuf,
    dates: Dates,
    wanted: std::ops::Range<u64>,
    only: Option<String>,
    /// Where each status change taken is, while every one's is known.
    changes: Option<Vec<Hit>>,
    /// The partition of the last row: most rows share the one before's,
    /// so its tenant is copied only when it changes.
    key: PartitionKey,
    /// The archive's segment facts (`ccvault_store::facts`).
    facts_dir: PathBuf,
    /// The facts of the segment of the last record read (none: that
    /// segment has no usable facts), tried once a segment.
    facts: Option<(u64, Option<FactsCursor>)>,
}

impl EventRows {
    /// The records of one stage chunk, each from its segment's facts or
    /// else parsed into one event made for the chunk ([`read_event`]).
    fn visit(&mut self, records: Records<'_>) -> Result<()> {
        let mut event = Event::default();
        for (at, rec) in records {
            self.record(at, rec, &mut event)?;
        }
        Ok(())
    }

    /// `rec` is not quarantined, and wanted or maybe a status change; `at`
    /// is where it is in the log, when known; `event` is parsed into.
    fn record<'a>(&mut self, at: At, rec: RecordRef<'a>, event: &mut Event<'a>) -> Result<()> {
        let row_wanted = self.wanted.contains(&rec.offset);
        // A record its segment's facts describe needs no parse unless it
        // is a status change, which the agent states read whole.
        if let Some(seg) = at.segment {
            if self.facts.as_ref().map(|(base, _)| *base) != Some(seg) {
                let cursor = ccvault_store::facts::open_cursor(&self.facts_dir, seg);
                self.facts = Some((seg, cursor));
            }
        }
        let fact = match (&mut self.facts, at.segment) {
            (Some((_, Some(cursor))), Some(_)) => {
                cursor.get(rec.offset, rec.payload.len()).filter(|f| {
                    !is_status_change_name(f.family) && !is_status_change_name(f.event_type)
                })
            }
            _ => None,
        };
        let row = match fact {
            Some(f) => {
                if !row_wanted {
                    return Ok(());
                }
                fact_row(&rec, &f)
            }
            None => {
                // A wanted row is parsed anyway, and the agent states take
                // only the status changes among parsed events: the search
                // of the payload for one (a pass over its bytes) is for the
                // others.
                if !row_wanted && !may_be_status_change(rec.payload) {
                    return Ok(());
                }
                let (row, parsed) = read_event(&rec, event);
                if let Some(ev) = parsed {
                    // A tenant's export files every span of its agents
                    // under it, whatever tenant the change itself has.
                    let tenant = self.only.as_deref().or(row.tenant.as_deref());
                    let taken = self
                        .agents
                        .add_event_with_tenant(ev, row.time, rec.payload, tenant)
                        .map_err(io(SCRATCH_ERROR, &self.scratch))?;
                    if taken {
                        self.changes = match (self.changes.take(), at.pos) {
                            (Some(mut list), Some(pos)) => {
                                list.push(Hit {
                                    offset: rec.offset,
                                    pos,
                                });
                                Some(list)
                            }
                            _ => None,
                        };
                    }
                }
                row
            }
        };
        let only = self.only.as_deref();
        if !row_wanted || only.is_some_and(|t| row.tenant.as_deref() != Some(t)) {
            return Ok(());
        }
        let date = self.dates.of(row.time.ms);
        if self.key.date != date || self.key.tenant.as_deref() != row.tenant.as_deref() {
            self.key = PartitionKey {
                tenant: row.tenant.as_deref().map(str::to_owned),
                date,
            };
        }
        self.writer
            .row(&self.key, |rows| push_event(rows, &rec, &row))
    }
}

/// Whether an event of this family or type is a status change
/// (`ccvault_projections::agents`: either name says so).
fn is_status_change_name(name: &str) -> bool {
    name == "AgentStatusChange"
}

/// Whether a payload can be an `AgentStatusChange` (docs/METRICS.md §5):
/// it names the family or type, or it escapes characters (and could spell
/// it with escapes). Skips parsing the older records an incremental run
/// reads only for the agent states.
fn may_be_status_change(payload: &[u8]) -> bool {
    memchr::memmem::find(payload, b"AgentStatusChange").is_some()
        || memchr::memchr(b'\\', payload).is_some()
}

/// Adds the `events` files of this run to their partitions.
fn merge_appended(new: &mut Checkpoint, table: Table, files: &[NewFile]) -> TableSummary {
    let parts = new.tables.entry(table.name().to_owned()).or_default();
    let mut sum = TableSummary {
        table: table.name(),
        ..TableSummary::default()
    };
    let mut written = BTreeSet::new();
    for f in files {
        let st = parts.entry(f.partition.clone()).or_default();
        st.files.push(f.name.clone());
        st.rows += f.rows;
        sum.rows += f.rows;
        sum.files += 1;
        sum.bytes += f.bytes;
        written.insert(f.partition.as_str());
    }
    sum.partitions_written = written.len() as u64;
    sum.partitions_unchanged = (parts.len() - written.len()) as u64;
    sum
}

/// A table rewritten by partition: the hash of each partition's rows now,
/// against the checkpoint's.
///
/// A row is hashed as its bincode encoding (`config::standard()`, serde
/// path): the rows' types never omit a field, so the encoding of a row is
/// unambiguous, and it costs a fraction of the JSON it replaced (JSON
/// serialization and a partition path formatted per row were half of the
/// interactions step's main thread, docs/BENCHMARKS.md, "Integers
/// delta-encoded, rows hashed as bincode, …"). The encoding names no field, so each partition's hash
/// starts from the table's columns (names, types, nullability): a change
/// of columns changes every partition's hash, and every file is rewritten
/// with the new columns. A checkpoint written with JSON hashes sees each
/// partition as changed once, and the run rewrites it with the same rows.
struct Rewrite {
    table: Table,
    old: BTreeMap<String, PartState>,
    now: BTreeMap<String, (Xxh3, u64)>,
    /// Partitions (relative dirs) to write, known once every row is hashed.
    changed: BTreeSet<String>,
    files: Vec<NewFile>,
    /// The encoding of the row being hashed, reused row after row.
    encoded: Vec<u8>,
    /// Each partition key met so far, with its relative dir.
    dirs: HashMap<PartitionKey, String>,
    /// What each partition's hash starts from: the table's columns.
    columns: String,
}

impl Rewrite {
    fn new(table: Table, old: BTreeMap<String, PartState>) -> Rewrite {
        Rewrite {
            table,
            old,
            now: BTreeMap::new(),
            changed: BTreeSet::new(),
            files: Vec::new(),
            encoded: Vec::new(),
            dirs: HashMap::new(),
            columns: format!("{:?}", table.specs()),
        }
    }

    fn hash(&mut self, key: &PartitionKey, row: &impl Serialize) -> Result<()> {
        self.encoded.clear();
        bincode::serde::encode_into_std_write(row, &mut self.encoded, bincode::config::standard())
            .map_err(|e| ExportError::Column {
                table: self.table.name(),
                column: "*",
                why: e.to_string(),
            })?;
        let dir = match self.dirs.get(key) {
            Some(dir) => dir,
            None => self
                .dirs
                .entry(key.clone())
                .or_insert_with(|| key.rel_dir()),
        };
        let (h, n) = match self.now.get_mut(dir) {
            Some(slot) => slot,
            None => self.now.entry(dir.clone()).or_insert_with(|| {
                let mut h = Xxh3::new();
                h.update(self.columns.as_bytes());
                (h, 0)
            }),
        };
        h.update(&self.encoded);
        *n += 1;
        Ok(())
    }

    /// Hashes every row by partition, then writes the partitions whose
    /// hash differs from the checkpoint's. `rows` visits every row of the
    /// table with its partition, in the same order each time it is called:
    /// once to hash, and once more to write when a partition changed (once
    /// for both when the checkpoint has no partition of the table). The
    /// rows are read on this thread and hashed and pushed on another
    /// ([`staged_rows`]).
    fn write_changed<R: Serialize + Send>(
        self,
        dir: &Path,
        run: u64,
        opts: &ExportOptions,
        push: fn(&mut Rows, &R) -> Result<(), ColumnError>,
        mut rows: impl FnMut(&mut dyn FnMut(PartitionKey, R) -> Result<()>) -> Result<()>,
    ) -> Result<Rewrite> {
        let writer = TableWriter::new(
            self.table,
            dir.join(self.table.name()),
            run,
            opts.row_group_bytes,
            opts.memory_bytes,
        )?;
        let name = format!("export-{}-rows", self.table.name());
        if self.old.is_empty() {
            // Nothing to compare with: every partition is written, in the
            // one pass that hashes it.
            let (mut me, writer) = staged_rows(
                &name,
                (self, writer),
                &mut rows,
                |(me, writer), key, row| {
                    me.hash(&key, &row)?;
                    writer.row(&key, |r| push(r, &row))
                },
            )?;
            me.changed = me.now.keys().cloned().collect();
            me.files = writer.finish()?;
            return Ok(me);
        }
        let mut me = staged_rows(&name, self, &mut rows, |me, key, row| me.hash(&key, &row))?;
        me.changed = me
            .now
            .iter()
            .filter(|(part, (h, _))| {
                me.old.get(*part).and_then(|o| o.hash.as_deref()) != Some(&hex(h))
            })
            .map(|(part, _)| part.clone())
            .collect();
        let writer = if me.changed.is_empty() {
            writer
        } else {
            let (changed, dirs) = (&me.changed, &me.dirs);
            staged_rows(&name, writer, &mut rows, |writer, key, row| {
                let is_changed = match dirs.get(&key) {
                    Some(dir) => changed.contains(dir),
                    None => changed.contains(&key.rel_dir()),
                };
                if is_changed {
                    writer.row(&key, |r| push(r, &row))
                } else {
                    Ok(())
                }
            })?
        };
        me.files = writer.finish()?;
        Ok(me)
    }

    /// The table's partitions in the new checkpoint: new files where
    /// changed, the old ones elsewhere, none where no row is left.
    fn into_checkpoint(self, new: &mut Checkpoint) -> TableSummary {
        let mut sum = TableSummary {
            table: self.table.name(),
            ..TableSummary::default()
        };
        let mut parts: BTreeMap<String, PartState> = BTreeMap::new();
        for (part, (h, rows)) in &self.now {
            if self.changed.contains(part) {
                parts.insert(
                    part.clone(),
                    PartState {
                        hash: Some(hex(h)),
                        files: Vec::new(),
                        rows: *rows,
                    },
                );
            } else if let Some(o) = self.old.get(part) {
                parts.insert(part.clone(), o.clone());
                sum.partitions_unchanged += 1;
            }
        }
        for f in &self.files {
            if let Some(st) = parts.get_mut(&f.partition) {
                st.files.push(f.name.clone());
            }
            sum.rows += f.rows;
            sum.files += 1;
            sum.bytes += f.bytes;
        }
        sum.partitions_written = self.changed.len() as u64;
        sum.partitions_removed = self
            .old
            .keys()
            .filter(|k| !self.now.contains_key(*k))
            .count() as u64;
        new.tables.insert(self.table.name().to_owned(), parts);
        sum
    }
}

fn hex(h: &Xxh3) -> String {
    format!("{:032x}", h.digest128())
}

/// A directory without a checkpoint must hold nothing but what an
/// interrupted first run leaves (table directories, a checkpoint's
/// temporary file): a full export never deletes files it did not write.
fn refuse_foreign(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(io("cannot list", dir))?;
    let ours_too = [
        format!(".{CHECKPOINT_FILE}.tmp"),
        CHANGES_FILE.to_owned(),
        format!(".{CHANGES_FILE}.tmp"),
    ];
    for e in entries {
        let e = e.map_err(io("cannot list", dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours =
            Table::ALL.iter().any(|t| t.name() == name) || ours_too.iter().any(|o| *o == name);
        if !ours {
            return Err(ExportError::Refused(format!(
                "{} holds {name:?} and no export checkpoint ({CHECKPOINT_FILE}): export into a new or empty directory",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// A file under a table's partition directories (`<table>/tenant=*/date=*/`)
/// that a run of this export may have written.
struct TableFile {
    /// Relative to the export directory.
    rel: String,
    /// The run a data file's name gives; `None` for a temporary file.
    run: Option<u64>,
}

/// The data files and temporary files under the table directories. A
/// `.parquet` file named otherwise is refused: this export never wrote it,
/// and query engines would read its rows as the table's.
fn table_files(dir: &Path) -> Result<Vec<TableFile>> {
    let mut out = Vec::new();
    for t in Table::ALL {
        let tdir = dir.join(t.name());
        for tenant in list(&tdir)? {
            if !tenant.starts_with("tenant=") {
                continue;
            }
            for date in list(&tdir.join(&tenant))? {
                if !date.starts_with("date=") {
                    continue;
                }
                for f in list(&tdir.join(&tenant).join(&date))? {
                    let rel = format!("{}/{tenant}/{date}/{f}", t.name());
                    let tmp = f
                        .strip_prefix('.')
                        .and_then(|n| n.strip_suffix(".tmp"))
                        .is_some_and(|n| data_file_run(n).is_some());
                    if tmp {
                        out.push(TableFile { rel, run: None });
                    } else if let Some(run) = data_file_run(&f) {
                        out.push(TableFile {
                            rel,
                            run: Some(run),
                        });
                    } else if f.ends_with(".parquet") {
                        return Err(ExportError::Refused(format!(
                            "{} was not written by this export, and query engines would read its rows as the table's: move it out of {}",
                            dir.join(&rel).display(),
                            dir.display()
                        )));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Entry names of `dir`; none when it does not exist.
fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot list", dir)(e)),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(io("cannot list", dir))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Deletes what an interrupted run left: temporary files, and data files
/// the checkpoint does not name of its runs or of the interrupted one
/// after it (a first run's, when there is no checkpoint). A data file of a
/// later run is no leftover of this directory's runs: refused, never
/// deleted.
fn remove_leftovers(dir: &Path, old: Option<&Checkpoint>) -> Result<()> {
    let named: BTreeSet<String> = old.map(|c| c.files().collect()).unwrap_or_default();
    let next_run = old.map_or(1, |c| c.run + 1);
    for f in table_files(dir)? {
        if named.contains(&f.rel) {
            continue;
        }
        if f.run.is_some_and(|run| run > next_run) {
            let path = dir.join(&f.rel);
            let run = f.run.unwrap_or_default();
            return Err(ExportError::Refused(match old {
                Some(c) => format!(
                    "{} is named like a file of run {run} of an export, and {} had {} runs: it was not written here; move it out",
                    path.display(),
                    dir.display(),
                    c.run
                ),
                // The usual cause is a checkpoint removed by hand: the
                // files are this directory's own, of runs it no longer
                // knows.
                None => format!(
                    "{} is a file of run {run} of an export, but {} has no {CHECKPOINT_FILE}: an earlier export's files without its checkpoint (removed?) cannot be continued; export into an empty directory, or move this directory's files out first",
                    path.display(),
                    dir.display()
                ),
            }));
        }
        remove(dir, &f.rel)?;
    }
    Ok(())
}

/// Deletes the files `old` names and `new` does not, and the partition
/// directories left empty.
fn remove_superseded(dir: &Path, old: &Checkpoint, new: &Checkpoint) -> Result<()> {
    let kept: BTreeSet<String> = new.files().collect();
    for f in old.files().filter(|f| !kept.contains(f)) {
        remove(dir, &f)?;
    }
    Ok(())
}

/// Removes one file (relative to `dir`) and the date and tenant
/// directories it leaves empty.
fn remove(dir: &Path, rel: &str) -> Result<()> {
    let path = dir.join(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove", &path)(e)),
    }
    // Not empty (or already gone) is fine: only empty directories go.
    let mut d = path.parent();
    for _ in 0..2 {
        let Some(p) = d else { break };
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        d = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same rows in the same partition hash differently under other
    /// columns, so a change of columns rewrites every partition.
    #[test]
    fn a_partitions_hash_covers_the_tables_columns() {
        let key = PartitionKey {
            tenant: Some("t".into()),
            date: None,
        };
        let digest = |table: Table, rows: &[(&str, i64)]| {
            let mut r = Rewrite::new(table, BTreeMap::new());
            for row in rows {
                r.hash(&key, row).unwrap();
            }
            r.now
                .values()
                .map(|(h, n)| (hex(h), *n))
                .collect::<Vec<_>>()
        };
        let rows = [("a", 1), ("b", 2)];
        assert_eq!(
            digest(Table::Interactions, &rows),
            digest(Table::Interactions, &rows)
        );
        assert_eq!(digest(Table::Interactions, &rows)[0].1, 2);
        assert_ne!(
            digest(Table::Interactions, &rows),
            digest(Table::AgentStates, &rows)
        );
        assert_ne!(
            digest(Table::Interactions, &rows),
            digest(Table::Interactions, &[("a", 1), ("b", 3)])
        );
    }
}
