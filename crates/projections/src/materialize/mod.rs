//! Materialized projections: `projections.redb` beside the archive.
//!
//! What is stored, and the invariants that hold after every commit:
//! - `meta`: `version` (= [`PROJECTION_VERSION`] of the code that wrote it),
//!   `consumed` (every visible archive record at an offset below it has been
//!   applied, none at or above it), `scan_segment`/`scan_pos` (the log
//!   position of the last message below `consumed`, tallies not being
//!   messages, where the next catch-up starts scanning) with
//!   `scan_offset`/`scan_hash` (that record's offset and payload hash: a
//!   catch-up goes on only while the log holds that record there, else it
//!   rebuilds, `schema::Anchor`), `damage_places`/`damage_segment`/
//!   `damage_pos` (the damaged places of the log skipped among the records
//!   applied, `schema::SkippedDamage`: reads warn of them) and
//!   `max_own_time_ms` (the largest t(e) that
//!   an event's own payload gives, rules 1–3, of any event below
//!   `consumed`; absent when there is none).
//! - `copy_best`/`copy_times`: for each event below `consumed` whose payload
//!   has no time of its own and that a record times (a `publishTime`, a
//!   live receipt), the best time its records give, i.e. its t(e). The
//!   archive's largest timed t(e) is the larger of `max_own_time_ms` and
//!   the last key of `copy_times`: a function of the events, whatever the
//!   order their copies arrived in.
//! - `interactions_by_offered`: `(offeredAt, interactionGUID packed by
//!   codec::encode_guid) -> Summary` (codec), one entry per interaction
//!   that has at least one event below `consumed`, each equal to
//!   `summarize` of ALL its records below `consumed`. Listings read this
//!   one table in key order, so a listing is a sequential range scan, not
//!   a lookup per interaction; as packed GUIDs do not sort as their text,
//!   a listing orders the rows of each `offeredAt` by GUID itself
//!   (`schema::rows_in_order`).
//! - `report_chunks`: `hour -> legs`, for every hour (`offeredAt` div
//!   `REPORT_CHUNK_MS`) with rows in `interactions_by_offered`, exactly
//!   those rows in key order as [`crate::report::ReportLeg`]s
//!   (`codec::encode_report_chunk`), `legIndex` = 0 known from the leg
//!   alone ([`crate::contact::opens_contact`]); a report reads only these.
//!   Rewritten whole from the summaries by one function, for the hours a
//!   catch-up's rows left or took, and by a rebuild once at its end.
//! - `interaction_offered`: `(offered_hash(interactionGUID), offeredAt) -> n`
//!   (the low 32 bits of the GUID hash),
//!   n > 0 the number of keys of the table above with that GUID hash and
//!   `offeredAt` (how a late event finds the row to replace; the hash keeps
//!   the GUID out of a second table).
//! - `children`: `(parentGuid, interactionGUID) -> ()`, exactly one entry
//!   per stored summary that has a `parentGuid` (whether or not the parent
//!   has events), so the legs of a contact are found from its first leg
//!   down ([`Projections::contact_legs`]) without a scan.
//! - `agent_status`: `(agentId, t(e), offset) -> (time source rank,
//!   payload)` for every status change (docs/METRICS.md §5) below
//!   `consumed`, the payload as `codec::encode_status_payload` stores it
//!   (its values when it has the feed's usual shape, which give back its
//!   exact bytes): enough to recompute agent state time exactly for any
//!   window.
//! - The tenant index (whose an event or a leg is: `crate::tenant`; "" in a
//!   key stands for none; `tenant_hash` is 32 bits): `tenant_legs`
//!   `(tenant_hash(tenant), offeredAt) -> n`, n > 0 the number of rows of
//!   `interactions_by_offered` with that `offeredAt` filed under a tenant
//!   of that hash (each row exactly once, under its `tenant`);
//!   `tenant_guids` `(tenant_hash(tenant), guid_hash(GUID)) -> ()` and
//!   `tenant_agents` `(tenant, agentId) -> ()`, one entry per
//!   distinct pair an event below `consumed` has (readers of the hashed
//!   tables check what they find against the tenant); `tenant_other` `(tenant,
//!   offset) -> payload hash` for each event below `consumed` with a
//!   tenant but neither a GUID nor an agent; `tenants` `tenant -> (events,
//!   legs, min, max)`: the events below `consumed` whose tenant it is
//!   ("" counting those without), its entries in `tenant_legs`, and the
//!   smallest and largest timed t(e) of its events (`i64::MAX`/`i64::MIN`
//!   for none). A tenant's data is a key range of each, so `--tenant` reads
//!   no other tenant's rows (but on a hash collision).
//!
//! A stored summary holds one leg's own answer for `contactId`/`legIndex`
//! (its GUID, 0); [`Projections::summary`] and every listing replace them
//! with the walk through the stored summaries' `parentGuid`s
//! (docs/METRICS.md §3) as they read. Resolving on read, not storing, is what
//! makes a late parent move its children at once without rewriting them.
//!
//! Every value is a function of the set of records below `consumed`, so
//! [`Projections::rebuild`] and any sequence of [`Projections::catch_up`]
//! calls over the same archive leave the same tables. Both paths summarize an
//! interaction with the same function (`project_records`) over the same
//! records (those whose parsed `interactionGUID` equals it).
//!
//! A rebuild writes a new file, compacts it and renames it over the old one, so a crash
//! mid-rebuild leaves the previous projections intact, and a reader in
//! another process keeps its (old) snapshot.
//!
//! When the file system refuses to write the file (full, over quota,
//! read-only), [`Projections::catch_up`] goes on over the file as last
//! saved with every change kept in memory (`ccvault_store::Overlay`): the reads of that
//! process see every record, nothing is saved, [`Projections::unsaved`]
//! says why, and a file its own failed creation half-wrote is removed.
//!
//! The parts: `schema` (the tables and their writers), `project` (the
//! one summarizing function), `catch_up`, `rebuild` (the parallel
//! rebuild) and `query` (what the commands read).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ccvault_store::{Layout, StoreError};
use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase};

use crate::codec::CodecError;

mod catch_up;
mod check;
mod group_window;
mod project;
mod query;
mod rebuild;
pub(crate) mod runs;
mod schema;

pub use catch_up::Touched;
pub use check::Checked;
pub use project::record_input;
pub use query::{InteractionFilter, NoEvents, TenantStats, UNREADABLE};
pub use schema::SkippedDamage;

/// Bump whenever a stored value or a rule of docs/METRICS.md changes: a store
/// written with another version is rebuilt on the next catch-up.
pub const PROJECTION_VERSION: i64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("{path}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}")]
    Codec {
        path: String,
        #[source]
        source: CodecError,
    },
    #[error("{0}: the projections are open read-only (another process is updating them)")]
    ReadOnly(String),
    #[error("{0}: projections have not been built yet; run `ccvault rebuild`")]
    NotBuilt(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: the projections file is damaged (reading it failed: {why}); run `ccvault rebuild`"
    )]
    Damaged { path: String, why: String },
    #[error("a rebuild worker failed: {0}")]
    Worker(String),
    #[error(
        "{index}: the index is damaged: it does not file interaction {guid} as the log's records say (noticed at the record at offset {offset}); run `ccvault reindex`"
    )]
    Unindexed {
        index: String,
        offset: u64,
        guid: String,
    },
}

pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

/// Where a rebuild builds the new projections before renaming them over
/// `path`.
pub(super) fn scratch_path(path: &Path) -> PathBuf {
    path.with_extension("redb.rebuild")
}

/// Where this process makes a new projections file before it links it in
/// at `path`: a name of its own (`projections.redb.new.PID-N`, N counting
/// this process's makings: two threads never share one), so that no other
/// file, half made or planted, is ever opened as it.
fn fresh_path(path: &Path) -> PathBuf {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("redb.new.{}-{n}", std::process::id()))
}

/// Whether `name` is a [`fresh_path`] name beside `path` (of any process).
fn is_fresh_name(path: &Path, name: &std::ffi::OsStr) -> bool {
    let Some(stem) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.to_str()
        .and_then(|n| n.strip_prefix(stem))
        .and_then(|n| n.strip_prefix(".new."))
        .and_then(|n| n.split_once('-'))
        .is_some_and(|(pid, n)| {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits(pid) && digits(n)
        })
}

/// Makes sure a projections file is at `path`, made whole before it is
/// linked in there: redb writes a new file's magic number last, so a
/// process killed while it made one in place left a file that every read
/// then called damaged, "not a redb database" (an outside audit, killing
/// reads that built the projections the first time). A file of no bytes
/// (a build before this one killed right after creating it) is made anew.
///
/// Each process makes its own file ([`fresh_path`]), created new; the link
/// never replaces a file already at `path`, so of processes doing this at
/// once the first to link wins and the others open its file. What a
/// killed one leaves is removed by the next writable open
/// ([`remove_stale_scratch`]).
fn create_whole(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let fresh = fresh_path(path);
    let io = |at: &Path| {
        let at = at.display().to_string();
        move |source| ProjectionError::Io { path: at, source }
    };
    loop {
        match std::fs::symlink_metadata(path) {
            Ok(m) => {
                // What is there is checked as ever: a symbolic link, or a
                // file others may write, is refused, never followed.
                schema::create_private(path)?;
                if m.len() > 0 {
                    return Ok(());
                }
                std::fs::remove_file(path)
                    .or_else(not_found_is_done)
                    .map_err(io(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(io(path)(source)),
        }
        // A file left under this name (a pid used again) goes.
        std::fs::remove_file(&fresh)
            .or_else(not_found_is_done)
            .map_err(io(&fresh))?;
        // Made through this descriptor, not the name: another process may
        // remove the name meanwhile (below), and the file stays this one.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&fresh)
            .map_err(io(&fresh))?;
        let made = guarded(&fresh, || {
            let backend = redb::backends::FileBackend::new(file).at(&fresh)?;
            schema::builder().create_with_backend(backend).at(&fresh)
        });
        if let Err(e) = made.map(drop) {
            let _ = std::fs::remove_file(&fresh);
            return Err(e);
        }
        let linked = std::fs::hard_link(&fresh, path);
        let _ = std::fs::remove_file(&fresh);
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                return Ok(());
            }
            // Another process linked its own in first (that one is
            // opened), or, having done so, removed this one's as a killed
            // process's (`remove_stale_scratch`): look again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
                ) => {}
            Err(source) => return Err(io(path)(source)),
        }
    }
}

/// A file to remove that is gone already.
fn not_found_is_done(e: std::io::Error) -> std::io::Result<()> {
    match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// Removes the scratch file a killed rebuild left beside `path` (as large as
/// the projections it was building), if any. Called only while holding
/// `path`'s write lock, which a rebuild holds from before it creates its
/// scratch file until after it renames it in, so no rebuild is using the
/// file. Best effort: one that stays is removed by the next holder.
///
/// Also the [`fresh_path`] files of processes killed while they made
/// them, or after they linked them in (a second name of a file a rebuild
/// may have replaced since, which it would keep on disk): a process still
/// making one, having found no file at `path`, finds its file gone and
/// then the file at `path`.
fn remove_stale_scratch(path: &Path) {
    let _ = std::fs::remove_file(scratch_path(path));
    let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_fresh_name(path, &entry.file_name()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Runs `f`, turning a panic of redb on a damaged `projections.redb` into
/// [`ProjectionError::Damaged`] (redb trusts its file's bytes; the file is
/// derived, so damage is a "rebuild it", never a crash). Every public method
/// that reads or writes the file runs inside it; caller callbacks run in
/// `unguarded`, so their bugs still panic.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    ccvault_store::guard_redb(f, |why| ProjectionError::Damaged {
        path: path.display().to_string(),
        why,
    })
}

/// Names the file an error of redb or of the codec happened in: the one
/// conversion every storage call of this module goes through.
trait AtPath<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T, E: Into<redb::Error>> AtPath<T> for std::result::Result<T, E> {
    /// A damaged file ([`ccvault_store::redb_damage`]) is derived, so "run
    /// `ccvault rebuild`", which replaces it.
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| {
            let source = e.into();
            match ccvault_store::redb_damage(&source) {
                Some(why) => ProjectionError::Damaged {
                    path: path.display().to_string(),
                    why,
                },
                None => ProjectionError::Redb {
                    path: path.display().to_string(),
                    source,
                },
            }
        })
    }
}

impl<T> AtPath<T> for std::result::Result<T, CodecError> {
    /// Stored bytes that do not decode are a damaged file (derived: "run
    /// `ccvault rebuild`"), like a redb panic on one; a value that cannot
    /// be encoded is this build's own failure.
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| match source {
            CodecError::Decode(why) => ProjectionError::Damaged {
                path: path.display().to_string(),
                why: format!("a stored value does not decode: {why}"),
            },
            source @ CodecError::Encode(_) => ProjectionError::Codec {
                path: path.display().to_string(),
                source,
            },
        })
    }
}

/// How the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// This process holds the file for writing: it can catch up.
    Writable,
    /// Another process holds it: reads see its last commit as is.
    ReadOnly,
}

/// What the store says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    pub version: Option<i64>,
    /// Records below this offset are applied.
    pub consumed: u64,
    /// The largest timed t(e) of any event below `consumed` (weak times
    /// left out; an event held by several records counts with its own
    /// t(e), the best they give).
    pub max_time_ms: Option<i64>,
    /// The largest t(e) an event's payload gives itself (rules 1–3); with
    /// the best times of the events without one, `max_time_ms`.
    pub own_max_time_ms: Option<i64>,
    pub interactions: u64,
}

/// Rebuild progress, reported a few times a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Records read from the log so far.
    pub records: u64,
    /// Records to read in all (the archive's visible end).
    pub total: u64,
    pub elapsed: Duration,
}

impl Progress {
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.records, self.elapsed)
    }
}

fn per_sec(records: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        records as f64 / secs
    } else {
        0.0
    }
}

/// What a rebuild or catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Applied {
    /// Whether the tables were recomputed from scratch.
    pub rebuilt: bool,
    /// Archive records read from the log.
    pub records: u64,
    /// Interaction summaries written (each replaced at most once per run).
    pub interactions: u64,
    /// Agent status changes added.
    pub agent_changes: u64,
    /// Interactions set aside during a rebuild's first scan of the log
    /// (their records spread too far through it to buffer), recomputed by
    /// further scans and, those that no scan could take, from the index.
    pub deferred: u64,
    /// The further scans of the log a rebuild made for them.
    pub rescans: u64,
    pub elapsed: Duration,
    /// `consumed` after the run.
    pub consumed: u64,
}

impl Applied {
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.records, self.elapsed)
    }
}

pub use rebuild::RebuildOptions;

enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
    /// The file as last saved, with this process's writes kept in memory
    /// ([`ccvault_store::Overlay`]): the file system refused a write.
    Memory(Database),
}

/// The materialized projections of one archive.
pub struct Projections {
    path: PathBuf,
    db: Option<Db>,
    /// Why the projections are kept in memory ([`Db::Memory`]).
    unsaved: Option<String>,
    /// The one read every query of this handle uses, once pinned
    /// ([`Projections::pin_reads`]).
    pinned: Option<Arc<ReadTransaction>>,
}

/// A read of the projections: a transaction of its own, or the one its
/// handle pinned.
pub(crate) enum Snapshot {
    Own(ReadTransaction),
    Pinned(Arc<ReadTransaction>),
}

impl std::ops::Deref for Snapshot {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        match self {
            Snapshot::Own(txn) => txn,
            Snapshot::Pinned(txn) => txn,
        }
    }
}

/// How long an open waits for another process to repair the file (see
/// [`Projections::open_on_disk`]): redb's repair reads the whole file,
/// well under this at 50M events.
const REPAIR_WAIT: Duration = Duration::from_secs(30);

/// The refusal of a write by the file system that reads may work around by
/// keeping the projections in memory: a full disk, a quota, a read-only
/// file system, the file size limit, a file or directory this user may not
/// write. `None` for any other error.
fn refused_write(e: &ProjectionError) -> Option<&std::io::Error> {
    let io = match e {
        ProjectionError::Io { source, .. }
        | ProjectionError::Redb {
            source: redb::Error::Io(source),
            ..
        } => source,
        _ => return None,
    };
    ccvault_store::is_write_refusal(io).then_some(io)
}

impl Projections {
    /// Opens (creating if needed) the projections of the archive in `dir`:
    /// writable when no other process holds the file, else read-only. When
    /// the file system refuses to write them (see [`Projections::unsaved`]),
    /// they are opened as saved, with every change kept in memory, so that
    /// [`Projections::catch_up`] still brings them up to date for this
    /// process.
    pub fn open(dir: &Path) -> Result<Projections> {
        let path = Layout::new(dir).projections_path();
        match Self::open_on_disk(&path) {
            Err(e) => match refused_write(&e) {
                Some(why) => Self::open_in_memory(&path, why.to_string()),
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// [`Projections::open`] without the fallback to memory.
    ///
    /// A file another process holds, left needing redb's repair by a
    /// process killed while it wrote (a read's catch-up or rebuild), is
    /// waited for: the holder's open repairs it, and only then can it be
    /// read. Until 2026-12-07 reads started together after such a kill
    /// failed with "Database repair aborted", all but the one that took
    /// the file (an outside audit).
    fn open_on_disk(path: &Path) -> Result<Projections> {
        let started = std::time::Instant::now();
        loop {
            match guarded(path, || Self::open_writable(path)) {
                Err(ProjectionError::Redb {
                    source: redb::Error::DatabaseAlreadyOpen,
                    ..
                }) => match guarded(path, || Self::open_read_only(path)) {
                    Err(ProjectionError::Redb {
                        source: redb::Error::RepairAborted,
                        ..
                    }) if started.elapsed() < REPAIR_WAIT => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    other => return other,
                },
                other => return other,
            }
        }
    }

    /// The projections as saved in `path` (nothing when there is no file),
    /// every change kept in memory; `why` the file could not be written.
    fn open_in_memory(path: &Path, why: String) -> Result<Projections> {
        guarded(path, || {
            let db = match ccvault_store::open_private_file(path) {
                Ok(file) => Some(file),
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            };
            let backend =
                ccvault_store::Overlay::over(db).map_err(|source| ProjectionError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            // Without a lock on the file, redb's single-writer mode (which
            // shares the file with readers) is not available; nobody else
            // can write such a file anyway.
            let builder = if backend.lockable() {
                schema::builder()
            } else {
                schema::scratch_builder()
            };
            let db = builder.create_with_backend(backend).at(path)?;
            Ok(Projections {
                path: path.to_path_buf(),
                db: Some(Db::Memory(db)),
                unsaved: Some(why),
                pinned: None,
            })
        })
    }

    /// Why the projections are not saved: the file system refused to write
    /// them (the reason, e.g. "No space left on device"), so they were
    /// brought up to date in memory, for this process only. `None` when
    /// every change is saved.
    pub fn unsaved(&self) -> Option<&str> {
        self.unsaved.as_deref()
    }

    /// Opens the projections of the archive in `dir` for reading only, as
    /// last committed, even when no other process holds them. Costs a few
    /// page reads, where a writable open has redb check the whole file: a
    /// reader whose store is already current (see [`State`]) needs no more.
    pub fn open_read_only_in(dir: &Path) -> Result<Projections> {
        let path = Layout::new(dir).projections_path();
        guarded(&path, || Self::open_read_only(&path))
    }

    /// Opens the projections of `dir` to rebuild them: a file too damaged
    /// to open is removed first (it is derived data; the rebuild writes a
    /// new one from the archive), which is what "run `ccvault rebuild`"
    /// promises.
    /// Never in memory: a rebuild is for saving.
    pub fn open_for_rebuild(dir: &Path) -> Result<Projections> {
        let path = Layout::new(dir).projections_path();
        match Self::open_on_disk(&path) {
            Err(
                ProjectionError::Damaged { path, .. }
                | ProjectionError::Redb {
                    path,
                    source: redb::Error::UpgradeRequired(_),
                },
            ) => {
                std::fs::remove_file(&path)
                    .map_err(|source| ProjectionError::Io { path, source })?;
                Self::open_on_disk(&Layout::new(dir).projections_path())
            }
            other => other,
        }
    }

    fn open_writable(path: &Path) -> Result<Projections> {
        create_whole(path)?;
        let db = schema::builder().create(path).at(path)?;
        remove_stale_scratch(path);
        Ok(Projections {
            path: path.to_path_buf(),
            db: Some(Db::Writable(db)),
            unsaved: None,
            pinned: None,
        })
    }

    fn open_read_only(path: &Path) -> Result<Projections> {
        if !path.exists() {
            return Err(ProjectionError::NotBuilt(path.display().to_string()));
        }
        let db = schema::builder().open_read_only(path).at(path)?;
        Ok(Projections {
            path: path.to_path_buf(),
            db: Some(Db::ReadOnly(db)),
            unsaved: None,
            pinned: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn access(&self) -> Access {
        match self.db {
            Some(Db::Writable(_) | Db::Memory(_)) => Access::Writable,
            _ => Access::ReadOnly,
        }
    }

    fn read_txn(&self) -> Result<Snapshot> {
        if let Some(txn) = &self.pinned {
            return Ok(Snapshot::Pinned(txn.clone()));
        }
        match &self.db {
            Some(Db::Writable(db) | Db::Memory(db)) => db.begin_read().at(&self.path),
            Some(Db::ReadOnly(db)) => db.begin_read().at(&self.path),
            None => Err(ProjectionError::NotBuilt(self.path.display().to_string())),
        }
        .map(Snapshot::Own)
    }

    /// Makes every later query of this handle read the projections as they
    /// are now, when another process holds the file (its catch-ups commit
    /// while this one reads): a command's state, its notes and its rows
    /// then come from one snapshot. Each query began its own read until
    /// 2026-12-07, and a command beside `serve` printed rows from a newer
    /// commit than the note and the tenant warning it printed with them
    /// (an outside audit). A handle that writes the file itself has no
    /// other writer, and nothing to pin.
    pub fn pin_reads(&mut self) -> Result<()> {
        if let Some(Db::ReadOnly(db)) = &self.db {
            self.pinned = Some(Arc::new(db.begin_read().at(&self.path)?));
        }
        Ok(())
    }

    fn writable(&self) -> Result<&Database> {
        match &self.db {
            Some(Db::Writable(db) | Db::Memory(db)) => Ok(db),
            _ => Err(ProjectionError::ReadOnly(self.path.display().to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
