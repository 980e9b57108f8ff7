//! Materialized projections: `projections.redb` beside the archive.
//!
//! What is stored, and the invariants that hold after every commit:
//! - `meta`: `version` (= [`PROJECTION_VERSION`] of the code that wrote it),
//!   `consumed` (every visible archive record at an offset below it has been
//!   applied, none at or above it), `scan_segment`/`scan_pos` (the log
//!   position of the record at `consumed - 1`, where the next catch-up starts
//!   scanning) and `max_time_ms` (the largest t(e) of any event below
//!   `consumed`; absent when there is none).
//! - `interactions_by_offered`: `(offeredAt, interactionGUID) -> Summary`
//!   (codec), one entry per interaction that has at least one event below
//!   `consumed`, each equal to `summarize` of ALL its records below
//!   `consumed`. Listing and reports read this one table in key order, so a
//!   report is a sequential range scan, not a lookup per interaction.
//! - `interaction_offered`: `interactionGUID -> offeredAt`, exactly the keys
//!   of the table above (how a late event finds the row to replace).
//! - `agent_status`: `(agentId, t(e), offset) -> payload bytes` for every
//!   status change (METRICS §5) below `consumed`: enough to recompute agent
//!   state time exactly for any window.
//!
//! Every value is a function of the set of records below `consumed`, so
//! [`Projections::rebuild`] and any sequence of [`Projections::catch_up`]
//! calls over the same archive leave the same tables. Both paths summarize an
//! interaction with the same function ([`project_records`]) over the same
//! records (those whose parsed `interactionGUID` equals it).
//!
//! A rebuild writes a new file and renames it over the old one, so a crash
//! mid-rebuild leaves the previous projections intact, and a reader in
//! another process keeps its (old) snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccvault_event::{event_time_ms, parse_event, CanonicalKey};
use ccvault_log::{LogError, Position, RecordRef, ScanRef};
use ccvault_store::{ArchiveReader, Hit, Layout, Record, SourceKind, StoreError};
use redb::{
    Database, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::agents::{status_change_agent, AgentStateTime, AgentStates, AgentWindow};
use crate::codec::{self, CodecError};
use crate::input::{dedupe_in_canonical_order, Kind, Prepared};
use crate::report::{Report, ReportOptions, ReportRow};
use crate::summary::{derive, Outcome, Summary};

/// Bump whenever a stored value or a rule of METRICS.md changes: a store
/// written with another version is rebuilt on the next catch-up.
pub const PROJECTION_VERSION: i64 = 1;

const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const BY_OFFERED: TableDefinition<(i64, &str), &[u8]> =
    TableDefinition::new("interactions_by_offered");
const OFFERED: TableDefinition<&str, i64> = TableDefinition::new("interaction_offered");
const AGENT_STATUS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("agent_status");

/// Records buffered for interactions whose last record has not been read
/// yet, during a rebuild. Past this, the oldest interactions are set aside
/// and recomputed from the index at the end, so memory stays bounded
/// whatever the archive's shape.
const DEFAULT_BUFFER_BYTES: usize = 96 << 20;
/// Records per unit of work handed to a rebuild worker.
const WORK_RECORDS: usize = 512;
/// Summaries per intermediate (non-durable) commit of a rebuild.
const COMMIT_EVERY: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("{path}: {source}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{path}: {source}")]
    Codec {
        path: String,
        #[source]
        source: CodecError,
    },
    #[error("{0}: the projections are open read-only (another process is updating them)")]
    ReadOnly(String),
    #[error("{0}: projections have not been built yet; run `ccvault rebuild`")]
    NotBuilt(String),
    #[error("{0}: projections were written by version {1} of the projection code (this is version {PROJECTION_VERSION}); run `ccvault rebuild`")]
    Version(String, i64),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a rebuild worker failed: {0}")]
    Worker(String),
}

pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

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
    pub max_time_ms: Option<i64>,
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
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.records as f64 / secs
        } else {
            0.0
        }
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
    /// Interactions set aside during a rebuild (their records spread too
    /// far through the log to buffer) and recomputed from the index.
    pub deferred: u64,
    pub elapsed: Duration,
    /// `consumed` after the run.
    pub consumed: u64,
}

impl Applied {
    pub fn records_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.records as f64 / secs
        } else {
            0.0
        }
    }
}

/// Tuning of a rebuild (tests shrink the buffer to exercise deferral).
#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Compute threads besides the log reader and the writer.
    pub workers: usize,
    pub buffer_bytes: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

/// `interactions` filters: all present ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionFilter {
    /// `offeredAt` in `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub queue_id: Option<i64>,
    pub agent_id: Option<String>,
    pub outcome: Option<Outcome>,
}

impl InteractionFilter {
    pub fn matches(&self, s: &Summary) -> bool {
        self.from.is_none_or(|f| s.offered_at >= f)
            && self.to.is_none_or(|t| s.offered_at < t)
            && self.queue_id.is_none_or(|q| s.queue_id == Some(q))
            && self
                .agent_id
                .as_deref()
                .is_none_or(|a| s.agent_id.as_deref() == Some(a))
            && self.outcome.is_none_or(|o| s.outcome == o)
    }
}

enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

/// The materialized projections of one archive.
pub struct Projections {
    path: PathBuf,
    db: Option<Db>,
}

fn redb_err(path: &Path) -> impl Fn(redb::Error) -> ProjectionError + '_ {
    move |source| ProjectionError::Redb {
        path: path.display().to_string(),
        source,
    }
}

/// redb's page cache; bounded so a rebuild's memory does not grow with the
/// archive.
const CACHE_BYTES: usize = 64 << 20;

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    // One process updates the file; any number read it meanwhile.
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

/// For the private scratch file of a rebuild, which no other process opens:
/// the exclusive mode allows non-durable intermediate commits.
fn scratch_builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

/// Creates `path` owner-only before redb initializes it (projections hold
/// names and phone numbers, like the archive).
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| ProjectionError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// The tenant an MQTT topic names (`{tenant}/event-v1/...`).
fn topic_tenant(kind: SourceKind, source: &str) -> Option<&str> {
    if kind != SourceKind::Mqtt {
        return None;
    }
    source
        .split_once('/')
        .map(|(t, _)| t)
        .filter(|t| !t.is_empty())
}

/// An archived record as the projection functions take it.
pub fn record_input(rec: &Record) -> crate::EventInput<'_> {
    crate::EventInput {
        payload: &rec.payload,
        publish_time: (!rec.publish_time.is_empty()).then_some(rec.publish_time.as_str()),
        ingest_ms: rec.ingest_ms,
        topic_tenant: topic_tenant(rec.source_kind, &rec.source),
    }
}

/// A record detached from the log's buffer: what the projections need.
/// One allocation a record (payload and publish time together): a rebuild
/// makes millions on the log reader's thread and frees them on the workers'.
#[derive(Debug, Clone)]
struct Rec {
    offset: u64,
    ingest_ms: i64,
    /// The payload, then the publish time.
    bytes: Box<[u8]>,
    payload_len: usize,
    tenant: Option<Box<str>>,
}

impl Rec {
    fn new(
        offset: u64,
        ingest_ms: i64,
        payload: &[u8],
        publish_time: &str,
        tenant: Option<&str>,
    ) -> Rec {
        let mut bytes = Vec::with_capacity(payload.len() + publish_time.len());
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(publish_time.as_bytes());
        Rec {
            offset,
            ingest_ms,
            bytes: bytes.into_boxed_slice(),
            payload_len: payload.len(),
            tenant: tenant.map(Into::into),
        }
    }
    fn of_ref(r: &RecordRef<'_>) -> Rec {
        let tenant = topic_tenant(r.source_kind, r.source);
        Rec::new(r.offset, r.ingest_ms, r.payload, r.publish_time, tenant)
    }
    fn of_record(r: &Record) -> Rec {
        let tenant = topic_tenant(r.source_kind, &r.source);
        Rec::new(r.offset, r.ingest_ms, &r.payload, &r.publish_time, tenant)
    }
    fn payload(&self) -> &[u8] {
        self.bytes.get(..self.payload_len).unwrap_or_default()
    }
    /// The publish time ("" when none; it was a `&str` when stored).
    fn publish_time(&self) -> &str {
        let tail = self.bytes.get(self.payload_len..).unwrap_or_default();
        std::str::from_utf8(tail).unwrap_or_default()
    }
    fn bytes(&self) -> usize {
        self.bytes.len() + 64
    }
}

/// One agent status change row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentRow {
    agent: String,
    time_ms: i64,
    offset: u64,
    payload: Box<[u8]>,
}

/// The projection of some records: summaries of the interactions they name
/// and the status changes among them.
#[derive(Debug, Default)]
struct Projected {
    /// `(guid, offeredAt, encoded Summary)`.
    summaries: Vec<(String, i64, Vec<u8>)>,
    agents: Vec<AgentRow>,
    max_time_ms: Option<i64>,
}

impl Projected {
    fn absorb(&mut self, other: Projected) {
        self.summaries.extend(other.summaries);
        self.agents.extend(other.agents);
        self.max_time_ms = self.max_time_ms.max(other.max_time_ms);
    }
}

/// Projects `recs`: every interaction named by them, summarized over the
/// given records that name it (so callers pass ALL records of those
/// interactions), every status change, and the largest t(e). This is the
/// only summarizing code of both rebuild and catch-up, which is why they
/// agree.
fn project_records(
    recs: &[Rec],
    want_summaries: bool,
    want_agents: bool,
) -> Result<Projected, CodecError> {
    let mut out = Projected::default();
    // Usually one interaction; more only on a GUID hash collision.
    let mut by_guid: Vec<(String, Vec<Prepared<'_>>)> = Vec::new();
    for (input_index, r) in recs.iter().enumerate() {
        let Ok(event) = parse_event(r.payload()) else {
            continue;
        };
        let publish_time = r.publish_time();
        let publish = (!publish_time.is_empty()).then_some(publish_time);
        let t = event_time_ms(&event, publish, r.ingest_ms);
        out.max_time_ms = out.max_time_ms.max(Some(t));
        if want_agents {
            if let Some(agent) = status_change_agent(&event) {
                out.agents.push(AgentRow {
                    agent: agent.into_owned(),
                    time_ms: t,
                    offset: r.offset,
                    payload: r.payload().into(),
                });
            }
        }
        if !want_summaries {
            continue;
        }
        let slot = match event.body.interaction_guid.as_text() {
            None => continue,
            Some(g) => match by_guid.iter().position(|(have, _)| *have == g) {
                Some(i) => i,
                None => {
                    by_guid.push((g.into_owned(), Vec::new()));
                    by_guid.len() - 1
                }
            },
        };
        let key = CanonicalKey::new(&event, t, r.payload());
        let kind = Kind::of(&event.event_type());
        by_guid[slot].1.push(Prepared {
            key,
            event,
            kind,
            topic_tenant: r.tenant.as_deref(),
            input_index,
        });
    }
    let mut buf = Vec::new();
    for (guid, mut prepared) in by_guid {
        dedupe_in_canonical_order(&mut prepared);
        if let Some(summary) = derive(&prepared) {
            codec::encode_into(&summary, &mut buf)?;
            out.summaries.push((guid, summary.offered_at, buf.clone()));
        }
    }
    Ok(out)
}

/// Why a log scan stopped.
enum ScanStop {
    /// Reached the archive's visible end (not an error).
    End,
    Failed(ProjectionError),
}

impl From<LogError> for ScanStop {
    fn from(e: LogError) -> Self {
        ScanStop::Failed(e.into())
    }
}

impl Projections {
    /// Opens (creating if needed) the projections of the archive in `dir`:
    /// writable when no other process holds the file, else read-only.
    pub fn open(dir: &Path) -> Result<Projections> {
        let path = Layout::new(dir).projections_path();
        match Self::open_writable(&path) {
            Ok(p) => Ok(p),
            Err(ProjectionError::Redb {
                source: redb::Error::DatabaseAlreadyOpen,
                ..
            }) => Self::open_read_only(&path),
            // A read-only directory: use the file as it is, if there is one.
            Err(ProjectionError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied && path.exists() =>
            {
                Self::open_read_only(&path)
            }
            Err(e) => Err(e),
        }
    }

    fn open_writable(path: &Path) -> Result<Projections> {
        create_private(path)?;
        let db = builder()
            .create(path)
            .map_err(|e| redb_err(path)(e.into()))?;
        Ok(Projections {
            path: path.to_path_buf(),
            db: Some(Db::Writable(db)),
        })
    }

    fn open_read_only(path: &Path) -> Result<Projections> {
        if !path.exists() {
            return Err(ProjectionError::NotBuilt(path.display().to_string()));
        }
        let db = builder()
            .open_read_only(path)
            .map_err(|e| redb_err(path)(e.into()))?;
        Ok(Projections {
            path: path.to_path_buf(),
            db: Some(Db::ReadOnly(db)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn access(&self) -> Access {
        match self.db {
            Some(Db::Writable(_)) => Access::Writable,
            _ => Access::ReadOnly,
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> ProjectionError {
        redb_err(&self.path)(e.into())
    }

    fn codec_err(&self, source: CodecError) -> ProjectionError {
        ProjectionError::Codec {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn read_txn(&self) -> Result<ReadTransaction> {
        match &self.db {
            Some(Db::Writable(db)) => db.begin_read().map_err(|e| self.err(e)),
            Some(Db::ReadOnly(db)) => db.begin_read().map_err(|e| self.err(e)),
            None => Err(ProjectionError::NotBuilt(self.path.display().to_string())),
        }
    }

    fn writable(&self) -> Result<&Database> {
        match &self.db {
            Some(Db::Writable(db)) => Ok(db),
            _ => Err(ProjectionError::ReadOnly(self.path.display().to_string())),
        }
    }

    /// The stored version, offset consumed and sizes.
    pub fn state(&self) -> Result<State> {
        let txn = self.read_txn()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(State::default()),
            Err(e) => return Err(self.err(e)),
        };
        let get = |k: &str| -> Result<Option<i64>> {
            Ok(meta.get(k).map_err(|e| self.err(e))?.map(|v| v.value()))
        };
        let interactions = match txn.open_table(OFFERED) {
            Ok(t) => t.len().map_err(|e| self.err(e))?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(self.err(e)),
        };
        Ok(State {
            version: get("version")?,
            consumed: get("consumed")?.map_or(0, |c| c.max(0) as u64),
            max_time_ms: get("max_time_ms")?,
            interactions,
        })
    }

    /// Brings the projections up to the archive's visible end: a rebuild
    /// when the stored version is not this code's (or the archive is behind
    /// the store, i.e. it was replaced), else only the records past
    /// `consumed`, recomputing every interaction they touch from all its
    /// records.
    pub fn catch_up(
        &mut self,
        reader: &mut ArchiveReader,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied> {
        self.writable()?;
        let state = self.state()?;
        let end = reader.visible_end();
        if state.version != Some(PROJECTION_VERSION) || state.consumed > end {
            return self.rebuild(reader, RebuildOptions::default(), progress);
        }
        let started = Instant::now();
        if state.consumed == end {
            return Ok(Applied {
                consumed: end,
                elapsed: started.elapsed(),
                ..Applied::default()
            });
        }
        let txn = self.read_txn()?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let stored_pos = match (
            meta.get("scan_segment").map_err(|e| self.err(e))?,
            meta.get("scan_pos").map_err(|e| self.err(e))?,
        ) {
            (Some(s), Some(p)) => Some(Position {
                segment: s.value().max(0) as u64,
                pos: u32::try_from(p.value()).unwrap_or(0),
            }),
            _ => None,
        };
        drop(meta);
        drop(txn);
        // Start at the last consumed record when its segment is still there
        // (it always is: segments are never removed), else at the start; the
        // offset filter below makes either start correct.
        let start = stored_pos
            .filter(|p| state.consumed > 0 && reader.log().segments().contains(&p.segment))
            .unwrap_or(Position::START);

        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut new_recs: Vec<Rec> = Vec::new();
        let mut last_pos = stored_pos;
        let mut records = 0u64;
        let mut projected = Projected::default();
        let scanned = reader.log().scan_with(start, |item| {
            let ScanRef::Record(pos, rec) = item else {
                // Damage is `verify`'s business; the records after it are
                // still read (scans resynchronise).
                return Ok(());
            };
            if rec.offset >= end {
                return Err(ScanStop::End);
            }
            if rec.offset < state.consumed {
                return Ok(());
            }
            last_pos = Some(pos);
            records += 1;
            if rec.quarantined {
                return Ok(());
            }
            new_recs.push(Rec::of_ref(&rec));
            if new_recs.len() >= WORK_RECORDS {
                collect_new(&mut new_recs, &mut touched, &mut projected)?;
            }
            Ok(())
        });
        match scanned {
            Ok(()) | Err(ScanStop::End) => {}
            Err(ScanStop::Failed(e)) => return Err(e),
        }
        collect_new(&mut new_recs, &mut touched, &mut projected).map_err(|e| match e {
            ScanStop::Failed(e) => e,
            ScanStop::End => ProjectionError::Worker("unexpected end".into()),
        })?;

        // Every touched interaction, from all its records (late events of
        // old interactions included).
        let mut summaries = Vec::with_capacity(touched.len());
        for guid in &touched {
            let recs: Vec<Rec> = reader
                .interaction_records(guid)?
                .iter()
                .filter(|r| !r.quarantined)
                .map(Rec::of_record)
                .collect();
            let p = project_records(&recs, true, false).map_err(|e| self.codec_err(e))?;
            summaries.extend(p.summaries.into_iter().filter(|(g, _, _)| g == guid));
        }
        let interactions = summaries.len() as u64;
        let agent_changes = projected.agents.len() as u64;
        let db = self.writable()?;
        let mut txn = db.begin_write().map_err(|e| self.err(e))?;
        self.put_summaries(&txn, &summaries, true)?;
        self.put_agents(&txn, &projected.agents)?;
        let max_time = state.max_time_ms.max(projected.max_time_ms);
        self.put_meta(&txn, end, last_pos, max_time)?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(Applied {
            rebuilt: false,
            records,
            interactions,
            agent_changes,
            deferred: 0,
            elapsed: started.elapsed(),
            consumed: end,
        })
    }

    /// Writes summaries; with `replace`, first removes each interaction's
    /// previous row (its `offeredAt` may have changed).
    fn put_summaries(
        &self,
        txn: &WriteTransaction,
        summaries: &[(String, i64, Vec<u8>)],
        replace: bool,
    ) -> Result<()> {
        let mut by_offered = txn.open_table(BY_OFFERED).map_err(|e| self.err(e))?;
        let mut offered = txn.open_table(OFFERED).map_err(|e| self.err(e))?;
        for (guid, at, bytes) in summaries {
            let old = offered
                .insert(guid.as_str(), *at)
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            if replace {
                if let Some(old) = old.filter(|old| old != at) {
                    by_offered
                        .remove((old, guid.as_str()))
                        .map_err(|e| self.err(e))?;
                }
            }
            by_offered
                .insert((*at, guid.as_str()), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn put_agents(&self, txn: &WriteTransaction, rows: &[AgentRow]) -> Result<()> {
        let mut t = txn.open_table(AGENT_STATUS).map_err(|e| self.err(e))?;
        for r in rows {
            t.insert((r.agent.as_str(), r.time_ms, r.offset), &*r.payload)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn put_meta(
        &self,
        txn: &WriteTransaction,
        consumed: u64,
        last_pos: Option<Position>,
        max_time_ms: Option<i64>,
    ) -> Result<()> {
        let mut t = txn.open_table(META).map_err(|e| self.err(e))?;
        let mut put = |k: &str, v: i64| t.insert(k, v).map(drop).map_err(|e| self.err(e));
        put("version", PROJECTION_VERSION)?;
        put("consumed", i64::try_from(consumed).unwrap_or(i64::MAX))?;
        if let Some(p) = last_pos {
            put("scan_segment", i64::try_from(p.segment).unwrap_or(i64::MAX))?;
            put("scan_pos", i64::from(p.pos))?;
        }
        if let Some(m) = max_time_ms {
            put("max_time_ms", m)?;
        }
        Ok(())
    }

    /// Recomputes every projection from the archive: a new file, filled by
    /// a log reader, `opts.workers` compute threads and this thread writing,
    /// then renamed over the old one.
    pub fn rebuild(
        &mut self,
        reader: &mut ArchiveReader,
        opts: RebuildOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied> {
        self.writable()?;
        let started = Instant::now();
        let scratch = self.path.with_extension("redb.rebuild");
        let _ = std::fs::remove_file(&scratch);
        create_private(&scratch)?;
        let db = scratch_builder()
            .create(&scratch)
            .map_err(|e| redb_err(&scratch)(e.into()))?;
        let building = Projections {
            path: scratch.clone(),
            db: Some(Db::Writable(db)),
        };
        let mut applied = building.fill(reader, opts, progress, started)?;
        drop(building);
        // Release our handle on the old file, then swap the new one in.
        self.db = None;
        std::fs::rename(&scratch, &self.path).map_err(|source| ProjectionError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let reopened =
            Self::open_writable(&self.path).or_else(|_| Self::open_read_only(&self.path))?;
        self.db = reopened.db;
        applied.elapsed = started.elapsed();
        Ok(applied)
    }

    /// The rebuild proper, into this (empty) store.
    fn fill(
        &self,
        reader: &mut ArchiveReader,
        opts: RebuildOptions,
        progress: &mut dyn FnMut(Progress),
        started: Instant,
    ) -> Result<Applied> {
        let end = reader.visible_end();
        // Which interaction group (GUID hash) each offset belongs to, and how
        // many records each group has: a group is complete, and can be
        // summarized, as soon as the scan has read its last record. 4 bytes
        // per record, plus 4 per group.
        let mut group_of: Vec<u32> = vec![NO_GROUP; usize::try_from(end).unwrap_or(0)];
        let mut remaining: Vec<u32> = Vec::new();
        reader
            .index()
            .for_each_guid_group(|_, hits| {
                let gid = remaining.len() as u32;
                let mut n = 0u32;
                for h in hits {
                    if let Some(slot) = group_of.get_mut(h.offset as usize) {
                        *slot = gid;
                        n += 1;
                    }
                }
                remaining.push(n);
            })
            .map_err(StoreError::from)?;

        let records_read = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let workers = opts.workers.max(1);
        let (work_tx, work_rx) = mpsc::sync_channel::<Vec<Work>>(workers * 4);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (out_tx, out_rx) = mpsc::sync_channel::<Result<Projected, CodecError>>(workers * 4);

        let mut applied = Applied {
            rebuilt: true,
            consumed: end,
            ..Applied::default()
        };
        let log = reader.log();
        let (group_of, remaining) = (&group_of, &mut remaining);
        let (records_read, failed) = (&records_read, &failed);
        let outcome = std::thread::scope(|scope| -> Result<ScanResult> {
            let scan = scope.spawn(move || {
                scan_groups(
                    log,
                    end,
                    group_of,
                    remaining,
                    opts.buffer_bytes,
                    work_tx,
                    records_read,
                    failed,
                )
            });
            for _ in 0..workers {
                let rx = Arc::clone(&work_rx);
                let tx = out_tx.clone();
                scope.spawn(move || compute_worker(&rx, &tx, failed));
            }
            // Only the workers hold the receiving end: if they all stop, the
            // reader's sends fail instead of blocking.
            drop(work_rx);
            drop(out_tx);
            let written = self.write_outputs(&out_rx, records_read, end, started, progress);
            if written.is_err() {
                failed.store(true, Ordering::Relaxed);
                // Unblock the workers so the scope can end.
                while out_rx.recv().is_ok() {}
            }
            let scan_result = scan
                .join()
                .map_err(|_| ProjectionError::Worker("the log reader panicked".into()))?;
            let (interactions, agents, max_time) = written?;
            let mut r = scan_result?;
            r.interactions = interactions;
            r.agents = agents;
            r.max_time_ms = r.max_time_ms.max(max_time);
            Ok(r)
        })?;
        applied.records = outcome.records;
        applied.interactions = outcome.interactions;
        applied.agent_changes = outcome.agents;
        applied.deferred = outcome.deferred.len() as u64;
        let mut max_time = outcome.max_time_ms;

        // Interactions set aside: recompute each from the index, like a
        // catch-up does.
        if !outcome.deferred.is_empty() {
            let deferred: BTreeSet<u32> = outcome.deferred.iter().copied().collect();
            let mut groups: Vec<Vec<Hit>> = Vec::new();
            let mut gid = 0u32;
            reader
                .index()
                .for_each_guid_group(|_, hits| {
                    if deferred.contains(&gid) {
                        groups.push(hits.iter().copied().filter(|h| h.offset < end).collect());
                    }
                    gid += 1;
                })
                .map_err(StoreError::from)?;
            let db = self.writable()?;
            let txn = db.begin_write().map_err(|e| self.err(e))?;
            for hits in groups {
                let recs: Vec<Rec> = reader
                    .read_hits(&hits)?
                    .iter()
                    .filter(|r| !r.quarantined)
                    .map(Rec::of_record)
                    .collect();
                let p = project_records(&recs, true, true).map_err(|e| self.codec_err(e))?;
                max_time = max_time.max(p.max_time_ms);
                applied.interactions += p.summaries.len() as u64;
                applied.agent_changes += p.agents.len() as u64;
                self.put_summaries(&txn, &p.summaries, false)?;
                self.put_agents(&txn, &p.agents)?;
            }
            txn.commit().map_err(|e| self.err(e))?;
        }

        let db = self.writable()?;
        let mut txn = db.begin_write().map_err(|e| self.err(e))?;
        self.put_meta(&txn, end, outcome.last_pos, max_time)?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        progress(Progress {
            records: applied.records,
            total: end,
            elapsed: started.elapsed(),
        });
        Ok(applied)
    }

    /// The writer side of a rebuild: stores what the workers project, in
    /// non-durable commits (the final meta commit makes them durable).
    fn write_outputs(
        &self,
        out_rx: &Receiver<Result<Projected, CodecError>>,
        records_read: &AtomicU64,
        end: u64,
        started: Instant,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(u64, u64, Option<i64>)> {
        let db = self.writable()?;
        let (mut interactions, mut agents, mut max_time) = (0u64, 0u64, None);
        let mut txn = db.begin_write().map_err(|e| self.err(e))?;
        let mut in_txn = 0usize;
        let mut last_report = Instant::now();
        loop {
            let item = match out_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(item) => Some(item),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(item) = item {
                let p = item.map_err(|e| self.codec_err(e))?;
                interactions += p.summaries.len() as u64;
                agents += p.agents.len() as u64;
                max_time = max_time.max(p.max_time_ms);
                in_txn += p.summaries.len() + p.agents.len();
                self.put_summaries(&txn, &p.summaries, false)?;
                self.put_agents(&txn, &p.agents)?;
                if in_txn >= COMMIT_EVERY {
                    txn.set_durability(Durability::None)
                        .map_err(|e| self.err(e))?;
                    txn.commit().map_err(|e| self.err(e))?;
                    txn = db.begin_write().map_err(|e| self.err(e))?;
                    in_txn = 0;
                }
            }
            if last_report.elapsed() >= Duration::from_millis(200) {
                last_report = Instant::now();
                progress(Progress {
                    records: records_read.load(Ordering::Relaxed),
                    total: end,
                    elapsed: started.elapsed(),
                });
            }
        }
        txn.set_durability(Durability::None)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok((interactions, agents, max_time))
    }

    /// The summary of one interaction, if it has events.
    pub fn summary(&self, guid: &str) -> Result<Option<Summary>> {
        let txn = self.read_txn()?;
        let offered = match txn.open_table(OFFERED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(at) = offered
            .get(guid)
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let t = txn.open_table(BY_OFFERED).map_err(|e| self.err(e))?;
        match t.get((at, guid)).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(
                codec::decode(v.value()).map_err(|e| self.codec_err(e))?,
            )),
            None => Ok(None),
        }
    }

    /// Visits the summaries matching `filter`, sorted by `offeredAt` then
    /// GUID; `f` returns `false` to stop.
    pub fn for_each_interaction(
        &self,
        filter: &InteractionFilter,
        mut f: impl FnMut(Summary) -> Result<bool>,
    ) -> Result<()> {
        let txn = self.read_txn()?;
        let t = match txn.open_table(BY_OFFERED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        let lo = filter.from.unwrap_or(i64::MIN);
        let range = match filter.to {
            Some(to) => t.range((lo, "")..(to, "")),
            None => t.range((lo, "")..),
        }
        .map_err(|e| self.err(e))?;
        for item in range {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let s: Summary = codec::decode(v.value()).map_err(|e| self.codec_err(e))?;
            if filter.matches(&s) && !f(s)? {
                break;
            }
        }
        Ok(())
    }

    /// The aggregate report over the stored summaries (METRICS §4).
    pub fn report(&self, opts: ReportOptions) -> Result<Vec<ReportRow>> {
        let filter = InteractionFilter {
            from: opts.from,
            to: opts.to,
            ..InteractionFilter::default()
        };
        let mut report = Report::new(opts);
        self.for_each_interaction(&filter, |s| {
            report.add(&s);
            Ok(true)
        })?;
        Ok(report.rows())
    }

    /// Agent state time (METRICS §5) over `[from, to)`; without `to`, the
    /// last state runs to the largest t(e) in the archive.
    pub fn agents(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<AgentStateTime>> {
        let state = self.state()?;
        let txn = self.read_txn()?;
        let t = match txn.open_table(AGENT_STATUS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut acc = AgentStates::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (_, time_ms, _) = k.value();
            let raw = v.value();
            if let Ok(event) = parse_event(raw) {
                acc.add_event(&event, time_ms, raw);
            }
        }
        Ok(acc.finish(&AgentWindow {
            from,
            to,
            archive_max_time_ms: state.max_time_ms.unwrap_or(i64::MIN),
        }))
    }
}

/// Parses a batch of new records for catch-up: the GUIDs they touch, their
/// status changes and largest t(e).
fn collect_new(
    recs: &mut Vec<Rec>,
    touched: &mut BTreeSet<String>,
    projected: &mut Projected,
) -> Result<(), ScanStop> {
    for r in recs.iter() {
        if let Ok(event) = parse_event(r.payload()) {
            if let Some(g) = event.body.interaction_guid.as_text() {
                if !touched.contains(g.as_ref()) {
                    touched.insert(g.into_owned());
                }
            }
        }
    }
    let p = project_records(recs, false, true).map_err(|e| {
        ScanStop::Failed(ProjectionError::Codec {
            path: "catch-up".into(),
            source: e,
        })
    })?;
    projected.absorb(p);
    recs.clear();
    Ok(())
}

const NO_GROUP: u32 = u32::MAX;

/// A unit of rebuild work: the complete records of one interaction group,
/// or records outside any interaction (status changes and the like).
enum Work {
    Group(Vec<Rec>),
    Loose(Vec<Rec>),
}

struct ScanResult {
    records: u64,
    last_pos: Option<Position>,
    deferred: Vec<u32>,
    interactions: u64,
    agents: u64,
    max_time_ms: Option<i64>,
}

/// The log reader of a rebuild: one sequential scan; hands each group to
/// the workers once its last record is read.
#[allow(clippy::too_many_arguments)]
fn scan_groups(
    log: &ccvault_log::LogReader,
    end: u64,
    group_of: &[u32],
    remaining: &mut [u32],
    buffer_bytes: usize,
    work_tx: SyncSender<Vec<Work>>,
    records_read: &AtomicU64,
    failed: &AtomicBool,
) -> Result<ScanResult> {
    let mut inflight: HashMap<u32, (u64, usize, Vec<Rec>)> = HashMap::new();
    // First buffered offset -> group, to set the oldest aside when over budget.
    let mut by_age: BTreeMap<u64, u32> = BTreeMap::new();
    let mut deferred: Vec<u32> = Vec::new();
    let mut deferred_set: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let mut buffered = 0usize;
    let mut batch: Vec<Work> = Vec::new();
    let mut batch_records = 0usize;
    let mut loose: Vec<Rec> = Vec::new();
    let mut records = 0u64;
    let mut last_pos = None;
    let send = |batch: &mut Vec<Work>| -> Result<(), ScanStop> {
        if failed.load(Ordering::Relaxed) {
            return Err(ScanStop::Failed(ProjectionError::Worker(
                "stopped after an error".into(),
            )));
        }
        work_tx
            .send(std::mem::take(batch))
            .map_err(|_| ScanStop::Failed(ProjectionError::Worker("workers stopped".into())))
    };
    let scanned = log.scan_with(Position::START, |item| {
        let ScanRef::Record(pos, rec) = item else {
            return Ok(());
        };
        if rec.offset >= end {
            return Err(ScanStop::End);
        }
        records += 1;
        last_pos = Some(pos);
        if records & 4095 == 0 {
            records_read.store(records, Ordering::Relaxed);
        }
        if rec.quarantined {
            return Ok(());
        }
        let gid = group_of
            .get(rec.offset as usize)
            .copied()
            .unwrap_or(NO_GROUP);
        if gid == NO_GROUP {
            loose.push(Rec::of_ref(&rec));
            if loose.len() >= WORK_RECORDS {
                batch_records += loose.len();
                batch.push(Work::Loose(std::mem::take(&mut loose)));
            }
        } else if !deferred_set.contains(&gid) {
            let r = Rec::of_ref(&rec);
            buffered += r.bytes();
            let left = remaining.get_mut(gid as usize).map_or(0, |n| {
                *n = n.saturating_sub(1);
                *n
            });
            let entry = inflight.entry(gid).or_insert_with(|| {
                by_age.insert(rec.offset, gid);
                (rec.offset, 0, Vec::new())
            });
            entry.1 += r.bytes();
            entry.2.push(r);
            if left == 0 {
                if let Some((first, bytes, recs)) = inflight.remove(&gid) {
                    by_age.remove(&first);
                    buffered -= bytes;
                    batch_records += recs.len();
                    batch.push(Work::Group(recs));
                }
            }
            while buffered > buffer_bytes {
                let Some((first, old)) = by_age.pop_first() else {
                    break;
                };
                if let Some((_, bytes, _)) = inflight.remove(&old) {
                    buffered -= bytes;
                }
                let _ = first;
                deferred.push(old);
                deferred_set.insert(old);
            }
        }
        if batch_records >= WORK_RECORDS {
            send(&mut batch)?;
            batch_records = 0;
        }
        Ok(())
    });
    match scanned {
        Ok(()) | Err(ScanStop::End) => {}
        Err(ScanStop::Failed(e)) => return Err(e),
    }
    records_read.store(records, Ordering::Relaxed);
    if !loose.is_empty() {
        batch.push(Work::Loose(loose));
    }
    // Groups whose remaining records are not visible (cannot happen with a
    // consistent index, but the log is the judge): project what was read.
    let mut rest: Vec<(u64, Vec<Rec>)> = inflight
        .into_values()
        .map(|(first, _, recs)| (first, recs))
        .collect();
    rest.sort_by_key(|(first, _)| *first);
    batch.extend(rest.into_iter().map(|(_, recs)| Work::Group(recs)));
    if !batch.is_empty() {
        send(&mut batch).map_err(|e| match e {
            ScanStop::Failed(e) => e,
            ScanStop::End => ProjectionError::Worker("unexpected end".into()),
        })?;
    }
    deferred.sort_unstable();
    Ok(ScanResult {
        records,
        last_pos,
        deferred,
        interactions: 0,
        agents: 0,
        max_time_ms: None,
    })
}

/// A rebuild worker: projects units of work until the reader is done.
fn compute_worker(
    rx: &Mutex<Receiver<Vec<Work>>>,
    tx: &SyncSender<Result<Projected, CodecError>>,
    failed: &AtomicBool,
) {
    loop {
        let batch = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(batch) = batch else {
            return;
        };
        let mut out = Projected::default();
        for work in batch {
            let p = match &work {
                Work::Group(recs) => project_records(recs, true, true),
                // Records outside interactions can still be status changes.
                Work::Loose(recs) => project_records(recs, false, true),
            };
            match p {
                Ok(p) => out.absorb(p),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if tx.send(Ok(out)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
