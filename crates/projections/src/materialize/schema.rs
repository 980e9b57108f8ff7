//! The tables of `projections.redb` (see the module header for what each
//! holds) and the only code that writes them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use ccvault_store::{guid_hash, payload_hash, ArchiveReader, Position, StoreError};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::project::{AgentRow, CopyTime, SummaryRow, TenantCount, TenantFacts};
use super::query::open_optional;
use super::runs::{read_bytes, read_str, write_bytes, write_str, RunKey, Runs};
use super::{guarded, AtPath, ProjectionError, Projections, Result, State, PROJECTION_VERSION};
use crate::codec;
use crate::report::ReportLeg;

pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// `(offeredAt, codec::encode_guid(interactionGUID, offeredAt)) ->
/// codec::encode_summary`: the GUID packed (issue 12: ~39 bytes for the
/// feed's ~63), so the rows of one `offeredAt` are not in GUID order and
/// readers sort them ([`rows_in_order`]).
pub(super) const BY_OFFERED: TableDefinition<(i64, &[u8]), &[u8]> =
    TableDefinition::new("interactions_by_offered");

/// The second part of `guid`'s key in `interactions_by_offered` when
/// stored at `at`.
pub(super) fn guid_key(guid: &str, at: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(guid.len() + 1);
    codec::encode_guid(guid, at, &mut buf);
    buf
}

/// Calls `visit(offeredAt, GUID, stored summary)` with the rows of
/// `interactions_by_offered` that `rows` (a range of it) yields, in
/// `(offeredAt, GUID)` order: the rows of one `offeredAt` are held and
/// sorted by GUID, as their packed keys do not sort as the GUIDs do. Stops
/// when `visit` returns `false`.
pub(super) fn rows_in_order(
    path: &Path,
    rows: redb::Range<'_, (i64, &'static [u8]), &'static [u8]>,
    mut visit: impl FnMut(i64, &str, &[u8]) -> Result<bool>,
) -> Result<()> {
    // The value guards are held, not copied: a tie is a few rows.
    type Tied<'a> = Vec<(String, redb::AccessGuard<'a, &'static [u8]>)>;
    let mut tied: Tied<'_> = Vec::new();
    let mut current: Option<i64> = None;
    let mut flush = |at: i64, tied: &mut Tied<'_>| -> Result<bool> {
        tied.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (guid, bytes) in tied.drain(..) {
            if !visit(at, &guid, bytes.value())? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    for item in rows {
        let (k, v) = item.at(path)?;
        let (at, key) = k.value();
        if let Some(cur) = current.filter(|&cur| cur != at) {
            if !flush(cur, &mut tied)? {
                return Ok(());
            }
        }
        current = Some(at);
        tied.push((codec::decode_guid(key, at).at(path)?, v));
    }
    if let Some(cur) = current {
        flush(cur, &mut tied)?;
    }
    Ok(())
}

/// `(offered_hash(interactionGUID), offeredAt) -> how many stored GUIDs
/// with that hash have that offeredAt` (1 but for a hash collision): finds
/// a GUID's row in 16 bytes a leg instead of repeating the GUID.
pub(super) const OFFERED: TableDefinition<(u32, i64), u32> =
    TableDefinition::new("interaction_offered");
/// `(parentGuid, interactionGUID) -> ()`: the legs transferred or consulted
/// from each leg, so a contact is found from its first leg down.
pub(super) const CHILDREN: TableDefinition<(&str, &str), ()> = TableDefinition::new("children");
/// `hour -> legs`: every row of `interactions_by_offered` whose
/// `offeredAt` is in the hour `[hour, hour + 1) * REPORT_CHUNK_MS`, as
/// the report reads it (`codec::encode_report_chunk`, in the rows' key
/// order), so a report decodes a few bytes a leg, not whole summaries.
/// An hour without rows has no entry.
pub(super) const REPORT_CHUNKS: TableDefinition<i64, &[u8]> = TableDefinition::new("report_chunks");
/// The span of `offeredAt` one `report_chunks` entry covers: a catch-up
/// rewrites the chunks of the legs it changes whole, so small enough for
/// that to be cheap, large enough for a report to read few entries.
pub(super) const REPORT_CHUNK_MS: i64 = 3_600_000;
/// Encoded `report_chunks` entries waiting for the thread that inserts
/// them during a rebuild (each an hour of legs, ~21 bytes a leg).
const REPORT_CHUNKS_QUEUED: usize = 64;

/// The `report_chunks` key of a leg offered at `at`.
pub(super) fn report_chunk_of(at: i64) -> i64 {
    at.div_euclid(REPORT_CHUNK_MS)
}

/// `(agentId, t(e), offset) -> (rank of t(e)'s time source, payload)`,
/// the payload as `codec::encode_status_payload` stores it (its values,
/// not its ~270 bytes of JSON, when it has the feed's usual shape).
pub(super) const AGENT_STATUS: TableDefinition<(&str, i64, u64), (u8, &[u8])> =
    TableDefinition::new("agent_status");

// The tenant index (`crate::tenant` says whose an event or a leg is; ""
// stands for none where a key needs a tenant).

/// `(tenant_hash(leg's tenant), offeredAt) -> how many rows of
/// `interactions_by_offered` at that `offeredAt` are filed under a tenant
/// with that hash`: every row filed under its leg's tenant, so one
/// tenant's legs are a range in `offeredAt` order. A hash, not the text
/// (issue 12: the texts took ~90 bytes a leg, this key 16), and no GUID:
/// a reader reads the rows at that `offeredAt` and keeps the tenant's
/// (the few legs of other tenants offered in the same millisecond are read
/// for nothing).
pub(super) const TENANT_LEGS: TableDefinition<(u32, i64), u32> =
    TableDefinition::new("tenant_legs");
/// `(tenant_hash(event's tenant), guid_hash(interactionGUID)) -> ()` for
/// every event having both: where a tenant's events are found through the
/// archive's index, which files them under that GUID hash (the records
/// read are checked against the tenant, so a collision costs a read).
pub(super) const TENANT_GUIDS: TableDefinition<(u32, u64), ()> =
    TableDefinition::new("tenant_guids");
/// `(event's tenant, agentId) -> ()` for every event having both: a
/// tenant's agents.
pub(super) const TENANT_AGENTS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("tenant_agents");
/// `(event's tenant, offset) -> payload hash` for the events of a tenant
/// that name neither an interaction nor an agent: the index files those by
/// payload hash (and finds the others by GUID or agent).
pub(super) const TENANT_OTHER: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("tenant_other");
/// `tenant -> (events, legs, smallest timed t(e), largest timed t(e))`,
/// "" counting events and legs without a tenant; the times are
/// `i64::MAX`/`i64::MIN` when no event of the tenant is timed.
pub(super) const TENANTS: TableDefinition<&str, (u64, u64, i64, i64)> =
    TableDefinition::new("tenants");

/// `xxh3_128(payload) -> (rank of its time source, t(e))` for every event
/// below `consumed` whose payload has no time of its own (rules 1–3) and
/// one of whose records gives it a timed one (a `publishTime`, a live
/// receipt): the best of those records' times (`CopyTime::beats`), which
/// is the event's t(e). A later, better copy replaces the entry, so the
/// largest time of the archive is one over events, not records.
pub(super) const COPY_BEST: TableDefinition<u128, (u8, i64)> = TableDefinition::new("copy_best");
/// `(t(e), xxh3_128(payload)) -> ()`: the entries of `copy_best` by time,
/// so the largest is the last key.
pub(super) const COPY_TIMES: TableDefinition<(i64, u128), ()> = TableDefinition::new("copy_times");

/// The key part standing for a tenant, "" for none.
pub(super) fn tenant_key(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("")
}

/// The key part standing for a tenant in `tenant_legs` and `tenant_guids`:
/// the low 32 bits of the xxh3-64 of [`tenant_key`]'s text (the GUID
/// hash's function). 32 bits are enough: every reader checks what it
/// finds against the tenant, so a collision costs reads, not answers.
pub(super) fn tenant_hash(tenant: &str) -> u32 {
    guid_hash(tenant) as u32
}

/// The key part standing for a GUID in `interaction_offered`: the low 32
/// bits of its GUID hash. A lookup checks each candidate row, so a
/// collision (at 1.2M legs, one lookup in ~3,600 has one) costs a read.
pub(super) fn offered_hash(guid: &str) -> u32 {
    guid_hash(guid) as u32
}

/// Adds `events`/`legs` (negative: removes) and widens the time range of
/// one tenant's counts.
fn count_tenant(
    tenants: &mut redb::Table<&str, (u64, u64, i64, i64)>,
    tenant: &str,
    legs: i64,
    add: TenantCount,
) -> std::result::Result<(), redb::StorageError> {
    let (events, old_legs, min, max) = tenants
        .get(tenant)?
        .map_or((0, 0, i64::MAX, i64::MIN), |v| v.value());
    let legs = old_legs.saturating_add_signed(legs);
    let value = (
        events.saturating_add(add.events),
        legs,
        min.min(add.min_ms),
        max.max(add.max_ms),
    );
    tenants.insert(tenant, value)?;
    Ok(())
}

/// The `offeredAt` under which `guid`'s summary is stored, if it has one:
/// the candidates its hash names in `offered`, checked against `by_offered`.
pub(super) fn offered_at_of(
    offered: &impl ReadableTable<(u32, i64), u32>,
    by_offered: &impl ReadableTable<(i64, &'static [u8]), &'static [u8]>,
    guid: &str,
) -> std::result::Result<Option<i64>, redb::StorageError> {
    let h = offered_hash(guid);
    for entry in offered.range((h, i64::MIN)..=(h, i64::MAX))? {
        let (_, at) = entry?.0.value();
        if by_offered
            .get((at, guid_key(guid, at).as_slice()))?
            .is_some()
        {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Counts one more (`up`) or one fewer row stored under `key` in a table
/// of counts (`interaction_offered`, `tenant_legs`), removing a key whose
/// count falls to 0.
fn count_key<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<K, u32>,
    key: K::SelfType<'k>,
    up: bool,
) -> std::result::Result<(), redb::StorageError> {
    let n = table.get(&key)?.map_or(0, |v| v.value());
    let n = if up {
        n.saturating_add(1)
    } else {
        n.saturating_sub(1)
    };
    if n == 0 {
        table.remove(&key)?;
    } else {
        table.insert(&key, n)?;
    }
    Ok(())
}

/// Adds `n` to the count under `key` (a rebuild's sorted batch: the key is
/// new to the table but for a hash collision with an earlier commit).
fn add_count<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<K, u32>,
    key: K::SelfType<'k>,
    n: usize,
) -> std::result::Result<(), redb::StorageError> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    // Insert first, add up in the rare case the key was there.
    let before = table.insert(&key, n)?.map(|v| v.value());
    if let Some(before) = before {
        table.insert(&key, before.saturating_add(n))?;
    }
    Ok(())
}

/// redb's page cache; bounded so a rebuild's memory does not grow with the
/// archive.
const CACHE_BYTES: usize = 64 << 20;

pub(super) fn builder() -> redb::Builder {
    let mut b = Database::builder();
    // One process updates the file; any number read it meanwhile.
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

/// For the private scratch file of a rebuild, which no other process opens:
/// the exclusive mode allows non-durable intermediate commits.
pub(super) fn scratch_builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

/// Creates `path` owner-only before redb initializes it (projections hold
/// names and phone numbers, like the archive).
pub(super) fn create_private(path: &Path) -> Result<()> {
    ccvault_store::create_private_file(path).map_err(|e| match e {
        // Kept as I/O: `Projections::open` reads a file it may not write.
        StoreError::Io { source, .. } => ProjectionError::Io {
            path: path.display().to_string(),
            source,
        },
        other => other.into(),
    })
}

/// The damaged places of the log that the rebuild and catch-ups skipped
/// among the records they applied (`VisibleRecords::scan_noting_damage`):
/// whatever records were there are in no projection, and every read says
/// so. `meta` keys `damage_places` and `damage_segment`/`damage_pos` (the
/// first in log order); none when there were none. Damage that came to
/// the log after the records it hit were applied is not here (their
/// projections hold them). Like `lost_seen`, a record of how the file was
/// made: `verify` gives its recompute the stored values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkippedDamage {
    pub places: u64,
    /// The first: (segment base, byte position).
    pub first: Option<(u64, u64)>,
}

impl SkippedDamage {
    pub(super) fn add(&mut self, damage: &ccvault_store::Damage) {
        self.places += 1;
        let at = (damage.segment, damage.pos);
        if self.first.is_none_or(|first| at < first) {
            self.first = Some(at);
        }
    }

    /// Both files' places: a catch-up's added to the stored ones.
    pub(super) fn and(self, more: SkippedDamage) -> SkippedDamage {
        let mut both = SkippedDamage {
            places: self.places + more.places,
            first: self.first,
        };
        if let Some(at) = more.first.filter(|&at| both.first.is_none_or(|f| at < f)) {
            both.first = Some(at);
        }
        both
    }

    pub(super) fn stored_in(
        meta: &impl ReadableTable<&'static str, i64>,
        path: &Path,
    ) -> Result<SkippedDamage> {
        let get = |k: &str| -> Result<Option<i64>> { Ok(meta.get(k).at(path)?.map(|v| v.value())) };
        Ok(SkippedDamage {
            places: get("damage_places")?.map_or(0, |n| n.max(0) as u64),
            first: match (get("damage_segment")?, get("damage_pos")?) {
                (Some(segment), Some(pos)) => Some((segment.max(0) as u64, pos.max(0) as u64)),
                _ => None,
            },
        })
    }

    pub(super) fn put(
        &self,
        meta: &mut redb::Table<'_, &'static str, i64>,
        path: &Path,
    ) -> Result<()> {
        let keys = ["damage_places", "damage_segment", "damage_pos"];
        match self.first.filter(|_| self.places > 0) {
            Some((segment, pos)) => {
                let values =
                    [self.places, segment, pos].map(|v| i64::try_from(v).unwrap_or(i64::MAX));
                for (k, v) in keys.into_iter().zip(values) {
                    meta.insert(k, v).at(path)?;
                }
            }
            None => {
                for k in keys {
                    meta.remove(k).at(path)?;
                }
            }
        }
        Ok(())
    }

    /// The sentence a read of these projections says on stderr; `None`
    /// when they skipped nothing.
    pub fn note(&self) -> Option<String> {
        let (segment, pos) = self.first.filter(|_| self.places > 0)?;
        Some(format!(
            "the projections were built around {} damaged place(s) of the log (the first in segment {segment:020} at byte {pos}): whatever records were there are in no interaction, report or agent state; `ccvault verify` names each place",
            self.places
        ))
    }
}

/// Where the last catch-up or rebuild stopped scanning (the record at
/// `consumed - 1`, or the last readable one before it) and that record's
/// offset and payload hash. A catch-up goes on from it only while the log
/// still holds that record there: a log that lost records since (their
/// offsets then given to others, docs/OPERATIONS.md "Crash recovery") is
/// rebuilt from, whoever holds the projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Anchor {
    pub(super) pos: Position,
    /// `(offset, payload_hash)`; `None` in files written before it was kept,
    /// or when the record could not be read.
    pub(super) record: Option<(u64, u64)>,
    /// The record's ingest time: the same payload archived again at the
    /// same offset (a lost tail imported again) is another record, whose
    /// import time may time its event (docs/METRICS.md §2) and whose
    /// neighbours may differ. `None` in files written before 2026-12-07,
    /// which compare the rest (until then such a refilled log was caught
    /// up from, not rebuilt: an outside audit).
    pub(super) ingest_ms: Option<i64>,
    /// The last loss of the log's records its index had recorded when
    /// these projections were made (`ArchiveReader::log_loss`): a loss
    /// recorded since makes them stale, not damaged, so that `verify`
    /// tells an anchor the log lost from one damaged or of another archive
    /// (since 2026-12-07: an outside audit saw both called stale).
    pub(super) lost_seen: Option<u64>,
}

impl Anchor {
    /// The anchor a `meta` table keeps (`None`: none kept, or an empty
    /// file).
    pub(super) fn stored_in(
        meta: &redb::ReadOnlyTable<&'static str, i64>,
        path: &Path,
    ) -> Result<Option<Anchor>> {
        let get = |k: &str| -> Result<Option<i64>> { Ok(meta.get(k).at(path)?.map(|v| v.value())) };
        let (Some(segment), Some(pos)) = (get("scan_segment")?, get("scan_pos")?) else {
            return Ok(None);
        };
        let record = match (get("scan_offset")?, get("scan_hash")?) {
            // Stored as i64 bit patterns of the u64s.
            (Some(offset), Some(hash)) => Some((offset as u64, hash as u64)),
            _ => None,
        };
        Ok(Some(Anchor {
            pos: Position {
                segment: segment.max(0) as u64,
                pos: u32::try_from(pos).unwrap_or(0),
            },
            ingest_ms: record.and(get("scan_ingest_ms")?),
            record,
            lost_seen: get("lost_seen")?.map(|o| o as u64),
        }))
    }

    /// The anchor at `pos`, with the record the log holds there.
    pub(super) fn at(reader: &ArchiveReader, pos: Position) -> Anchor {
        let found = reader.log().read_at(pos).ok();
        Anchor {
            pos,
            record: found.as_ref().map(|r| (r.offset, payload_hash(&r.payload))),
            ingest_ms: found.map(|r| r.ingest_ms),
            // Unread, it is taken for none, and a recorded loss makes the
            // projections stale: rebuilt, never wrong.
            lost_seen: reader.log_loss().ok().flatten().map(|(_, id)| id),
        }
    }

    /// Whether the index has recorded a loss of the log's records that
    /// the projections that stopped here, having applied the records below
    /// `consumed`, were made before, and that took records they applied
    /// (its first offset below `consumed`). (An index rebuilt since, which
    /// records none, says nothing either way.)
    pub(super) fn loss_since(&self, reader: &ArchiveReader, consumed: u64) -> bool {
        reader
            .log_loss()
            .ok()
            .flatten()
            .is_some_and(|(from, id)| self.lost_seen != Some(id) && from < consumed)
    }

    /// Whether the log holds the anchor's record at its place (an anchor
    /// that names none: nothing to compare, yes), below `consumed`, with
    /// records up to `consumed` and nothing but tallies after it below
    /// `consumed`, as when the projections were made: a message there took
    /// the offset of a lost tally, and a catch-up, which goes on from
    /// `consumed`, would never read it (until 2026-12-07: an outside
    /// audit); a `consumed` at or below the anchor's record, or past the
    /// log's end, is damage (a catch-up from it applied records twice, or
    /// none: an outside audit).
    pub(super) fn holds(&self, reader: &ArchiveReader, consumed: u64) -> bool {
        let Some(want) = self.record else {
            return true;
        };
        let found = Anchor::at(reader, self.pos);
        let same = found.record == Some(want)
            && self.ingest_ms.is_none_or(|at| found.ingest_ms == Some(at));
        same && want.0 < consumed
            && reader.log_reaches(self.pos, consumed - 1)
            && (want.0 + 1 >= consumed
                || reader
                    .records()
                    .next_message_after(self.pos, want.0)
                    .is_ok_and(|next| next.is_none_or(|o| o >= consumed)))
    }

    /// Whether projections that applied the records below `consumed` and
    /// stopped at `anchor` are to be rebuilt, never caught up from: the
    /// log lost records since they were made (their offsets perhaps given
    /// to others since), or does not hold the record they stopped at
    /// (damage, another archive's file), or they are past its end.
    pub(super) fn superseded(
        anchor: Option<&Anchor>,
        reader: &ArchiveReader,
        consumed: u64,
    ) -> bool {
        consumed > reader.visible_end()
            || anchor.is_some_and(|a| a.loss_since(reader, consumed) || !a.holds(reader, consumed))
    }
}

/// A rebuild's keys of the tables keyed by a hash or a GUID, held as sorted
/// runs (`super::runs`) until [`Projections::put_sorted`] writes each table
/// in key order.
pub(super) struct SortedTables {
    offered: Runs<(u32, i64)>,
    tenant_guids: Runs<(u32, u64)>,
    children: Runs<(String, String)>,
    agent_status: Runs<StatusRow>,
}

/// One `agent_status` row as a rebuild's sorted run holds it: its key
/// (`agentId`, t(e), offset), then its value (time source rank, stored
/// payload). Rows arrive a batch at a time across all agents, so inserted
/// as they come each batch split leaves all over the table and left them
/// half full (issue 12: 53-65 %); written in key order at the end, they
/// are packed. An offset is one record, so keys are unique and the value
/// never decides the order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct StatusRow {
    agent: String,
    time_ms: i64,
    offset: u64,
    rank: u8,
    payload: Vec<u8>,
}

impl RunKey for StatusRow {
    fn footprint(&self) -> usize {
        std::mem::size_of::<(Self, u32)>() + self.agent.capacity() + self.payload.capacity()
    }
    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        write_str(out, &self.agent)?;
        out.write_all(&self.time_ms.to_le_bytes())?;
        out.write_all(&self.offset.to_le_bytes())?;
        out.write_all(&[self.rank])?;
        write_bytes(out, &self.payload)
    }
    fn read_from(input: &mut impl std::io::BufRead) -> std::io::Result<Option<Self>> {
        if super::runs::at_end(input)? {
            return Ok(None);
        }
        let agent = read_str(input)?;
        let mut word = [0u8; 8];
        input.read_exact(&mut word)?;
        let time_ms = i64::from_le_bytes(word);
        input.read_exact(&mut word)?;
        let offset = u64::from_le_bytes(word);
        let mut rank = [0u8; 1];
        input.read_exact(&mut rank)?;
        Ok(Some(StatusRow {
            agent,
            time_ms,
            offset,
            rank: rank[0],
            payload: read_bytes(input)?,
        }))
    }
}

/// An I/O error on `path` (a scratch file's is told as the projections
/// file's).
pub(super) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ProjectionError + '_ {
    |source| ProjectionError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl SortedTables {
    /// Runs on scratch files beside `scratch` (`None`: in memory).
    pub(super) fn new(scratch: Option<&Path>) -> SortedTables {
        SortedTables {
            offered: Runs::new(scratch, "offered"),
            tenant_guids: Runs::new(scratch, "tenant-guids"),
            children: Runs::new(scratch, "children"),
            agent_status: Runs::new(scratch, "agent-status"),
        }
    }
}

impl Projections {
    /// Whether these projections are of this code's version, have applied
    /// every record `reader` shows, and were made from the records the log
    /// holds now: the record they stopped at is still there, the same
    /// record (a lost tail imported again puts the same payloads at the
    /// same offsets, but other records: until 2026-12-07 a read that found
    /// the count equal took them for current, an outside audit). What
    /// [`Projections::catch_up`] checks before it does nothing.
    pub fn is_current(&self, reader: &ArchiveReader) -> Result<bool> {
        let state = self.state()?;
        if state.version != Some(PROJECTION_VERSION) || state.consumed != reader.visible_end() {
            return Ok(false);
        }
        let anchor = self.scan_anchor()?;
        Ok(!Anchor::superseded(anchor.as_ref(), reader, state.consumed))
    }

    /// The stored version, offset consumed and sizes.
    pub fn state(&self) -> Result<State> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let meta = match txn.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(State::default()),
                Err(e) => return Err(e).at(&self.path),
            };
            let get = |k: &str| -> Result<Option<i64>> {
                Ok(meta.get(k).at(&self.path)?.map(|v| v.value()))
            };
            let version = get("version")?;
            // Another version's tables may have other types (version 11
            // keyed this one by the GUID's text): not opened, and the
            // file is rebuilt before anything reads it.
            let interactions = match txn.open_table(BY_OFFERED) {
                _ if version != Some(PROJECTION_VERSION) => 0,
                Ok(t) => t.len().at(&self.path)?,
                Err(redb::TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(e).at(&self.path),
            };
            let own_max_time_ms = get("max_own_time_ms")?;
            let copy_max = match txn.open_table(COPY_TIMES) {
                _ if version != Some(PROJECTION_VERSION) => None,
                Ok(t) => t.last().at(&self.path)?.map(|(k, _)| k.value().0),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).at(&self.path),
            };
            Ok(State {
                version,
                consumed: get("consumed")?.map_or(0, |c| c.max(0) as u64),
                max_time_ms: own_max_time_ms.max(copy_max),
                own_max_time_ms,
                interactions,
            })
        })
    }

    /// The damaged places of the log these projections were built around.
    pub fn skipped_damage(&self) -> Result<SkippedDamage> {
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            match txn.open_table(META) {
                Ok(meta) => SkippedDamage::stored_in(&meta, &self.path),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(SkippedDamage::default()),
                Err(e) => Err(e).at(&self.path),
            }
        })
    }

    /// Where the last catch-up or rebuild stopped scanning, and the record
    /// it found there, if recorded.
    pub(super) fn scan_anchor(&self) -> Result<Option<Anchor>> {
        // Guarded as every read of the file: a damaged page makes redb
        // panic, which is the file's damage, not this process's (until
        // 2026-12-07 a flipped byte of the `meta` page ended every read
        // command with a panic: an outside audit).
        guarded(&self.path, || {
            let txn = self.read_txn()?;
            let meta = txn.open_table(META).at(&self.path)?;
            Anchor::stored_in(&meta, &self.path)
        })
    }

    /// Writes a rebuild's summary rows (each interaction new to the store),
    /// one table at a time in that table's key order: a B-tree takes
    /// sorted keys on the pages it has just touched, where the workers'
    /// arrival order sends each insert to a page of its own (issue 12:
    /// the writer was a quarter of a rebuild's CPU). The keys of
    /// `interaction_offered` and `children`, spread all over their tables
    /// whatever the order, go to `sorted` instead, for
    /// [`Projections::put_sorted`] at the end. Leaves the same tables as
    /// [`Projections::put_summaries`] would.
    pub(super) fn put_new_summaries(
        &self,
        txn: &WriteTransaction,
        summaries: &[&SummaryRow],
        sorted: &mut SortedTables,
    ) -> Result<()> {
        // Every row's packed GUID in one buffer, by range: a vector of
        // its own a row was ~2 % of a rebuild's samples (issue 12).
        let mut packed: Vec<u8> = Vec::with_capacity(summaries.len() * 24);
        let mut one = Vec::new();
        let mut keys: Vec<(i64, Range<usize>, usize)> = summaries
            .iter()
            .enumerate()
            .map(|(i, r)| {
                codec::encode_guid(&r.guid, r.offered_at, &mut one);
                let start = packed.len();
                packed.extend_from_slice(&one);
                (r.offered_at, start..packed.len(), i)
            })
            .collect();
        let key = |r: &Range<usize>| packed.get(r.clone()).unwrap_or_default();
        keys.sort_unstable_by(|(a, ka, i), (b, kb, j)| {
            a.cmp(b).then_with(|| key(ka).cmp(key(kb))).then(i.cmp(j))
        });
        let mut by_offered = txn.open_table(BY_OFFERED).at(&self.path)?;
        for (at, range, i) in &keys {
            let Some(row) = summaries.get(*i) else {
                continue;
            };
            by_offered
                .insert((*at, key(range)), row.bytes.as_slice())
                .at(&self.path)?;
        }
        for r in summaries {
            sorted
                .offered
                .push((offered_hash(&r.guid), r.offered_at), 1)
                .map_err(io_error(&self.path))?;
            if let Some(parent) = &r.parent {
                sorted
                    .children
                    .push((parent.clone(), r.guid.clone()), 1)
                    .map_err(io_error(&self.path))?;
            }
        }
        // Each row is new to the store: one more leg of its tenant.
        let mut legs: BTreeMap<&str, i64> = BTreeMap::new();
        let mut hashes: BTreeMap<&str, u32> = BTreeMap::new();
        let mut filed: Vec<(u32, i64)> = Vec::with_capacity(summaries.len());
        for r in summaries {
            let tenant = tenant_key(&r.tenant);
            *legs.entry(tenant).or_default() += 1;
            let th = *hashes.entry(tenant).or_insert_with(|| tenant_hash(tenant));
            filed.push((th, r.offered_at));
        }
        filed.sort_unstable();
        let mut tenant_legs = txn.open_table(TENANT_LEGS).at(&self.path)?;
        for same in filed.chunk_by(|a, b| a == b) {
            let Some(&key) = same.first() else { continue };
            add_count(&mut tenant_legs, key, same.len()).at(&self.path)?;
        }
        let mut tenants = txn.open_table(TENANTS).at(&self.path)?;
        for (tenant, n) in legs {
            count_tenant(&mut tenants, tenant, n, TenantCount::default()).at(&self.path)?;
        }
        Ok(())
    }

    /// Writes the tables a rebuild held as sorted runs, each in ascending
    /// key order into its empty table (every leaf written once, and packed:
    /// redb starts a new leaf when an ascending insert fills the last one),
    /// and every `report_chunks` entry from the committed summaries. One
    /// thread a table, all in `txn`: each table is a B-tree of its own, so
    /// on 2 cores two fill at once (one after the other the runs took 1.5 s
    /// of a 10M rebuild on one core, the chunks 1.2 s on the other,
    /// docs/BENCHMARKS.md, issue 12).
    pub(super) fn put_sorted(
        &self,
        db: &Database,
        txn: &WriteTransaction,
        sorted: SortedTables,
    ) -> Result<()> {
        let path = self.path.as_path();
        let SortedTables {
            offered,
            tenant_guids,
            children,
            agent_status,
        } = sorted;
        std::thread::scope(|scope| {
            let filling = [
                scope.spawn(move || {
                    let mut table = txn.open_table(OFFERED).at(path)?;
                    offered.merge(
                        |key, n| add_count(&mut table, key, n as usize).at(path),
                        io_error(path),
                    )
                }),
                scope.spawn(move || {
                    let mut table = txn.open_table(TENANT_GUIDS).at(path)?;
                    tenant_guids.merge(
                        |key, _| table.insert(key, ()).map(drop).at(path),
                        io_error(path),
                    )
                }),
                scope.spawn(move || {
                    let mut table = txn.open_table(CHILDREN).at(path)?;
                    children.merge(
                        |(parent, guid), _| {
                            table
                                .insert((parent.as_str(), guid.as_str()), ())
                                .map(drop)
                                .at(path)
                        },
                        io_error(path),
                    )
                }),
                scope.spawn(move || {
                    let mut table = txn.open_table(AGENT_STATUS).at(path)?;
                    agent_status.merge(
                        |r, _| {
                            table
                                .insert(
                                    (r.agent.as_str(), r.time_ms, r.offset),
                                    (r.rank, r.payload.as_slice()),
                                )
                                .map(drop)
                                .at(path)
                        },
                        io_error(path),
                    )
                }),
                scope.spawn(move || put_all_report_chunks(db, txn, path)),
            ];
            // Every thread joined before the first error is returned.
            let ended: Vec<Result<()>> = filling
                .into_iter()
                .map(|t| {
                    t.join().unwrap_or_else(|_| {
                        Err(ProjectionError::Worker(
                            "a thread writing a rebuild's sorted tables panicked".into(),
                        ))
                    })
                })
                .collect();
            ended.into_iter().collect()
        })
    }

    /// Writes summary rows (a catch-up: an interaction's earlier row goes,
    /// as its `offeredAt`, part of the key, may have changed) and files each
    /// leg under its parent. A replaced row whose parent changed (an event
    /// earlier in canonical order named another one) leaves its old
    /// parent's `children` entry.
    /// Returns the `report_chunks` keys of every `offeredAt` a row left or
    /// took, for [`Projections::put_report_chunks`].
    pub(super) fn put_summaries(
        &self,
        txn: &WriteTransaction,
        summaries: &[SummaryRow],
    ) -> Result<std::collections::BTreeSet<i64>> {
        let mut chunks = std::collections::BTreeSet::new();
        let mut by_offered = txn.open_table(BY_OFFERED).at(&self.path)?;
        let mut offered = txn.open_table(OFFERED).at(&self.path)?;
        let mut children = txn.open_table(CHILDREN).at(&self.path)?;
        let mut tenant_legs = txn.open_table(TENANT_LEGS).at(&self.path)?;
        // Legs added (removed) per tenant: counted by what the table did.
        let mut legs: BTreeMap<String, i64> = BTreeMap::new();
        for row in summaries {
            let guid = row.guid.as_str();
            let old_at = offered_at_of(&offered, &by_offered, guid).at(&self.path)?;
            chunks.extend(old_at.map(report_chunk_of));
            chunks.insert(report_chunk_of(row.offered_at));
            let h = offered_hash(guid);
            if old_at != Some(row.offered_at) {
                if let Some(old) = old_at {
                    count_key(&mut offered, (h, old), false).at(&self.path)?;
                }
                count_key(&mut offered, (h, row.offered_at), true).at(&self.path)?;
            }
            let moved = match old_at {
                Some(old) if old != row.offered_at => by_offered
                    .remove((old, guid_key(guid, old).as_slice()))
                    .at(&self.path)?
                    .map(|v| (old, v.value().to_vec())),
                _ => None,
            };
            let key = guid_key(guid, row.offered_at);
            let overwritten = by_offered
                .insert((row.offered_at, key.as_slice()), row.bytes.as_slice())
                .at(&self.path)?
                .map(|v| (row.offered_at, v.value().to_vec()));
            // The row replaced: where it was filed (tenant, offeredAt).
            let mut old_filed = None;
            if let Some((at, old)) = moved.or(overwritten) {
                if old == row.bytes {
                    old_filed = Some((row.tenant.clone(), at));
                } else {
                    let old = crate::codec::decode_summary(guid, at, &old).at(&self.path)?;
                    if let Some(p) = old.parent_guid.filter(|p| Some(p) != row.parent.as_ref()) {
                        children.remove((p.as_str(), guid)).at(&self.path)?;
                    }
                    old_filed = Some((old.tenant, at));
                }
            }
            if let Some(parent) = &row.parent {
                children
                    .insert((parent.as_str(), guid), ())
                    .at(&self.path)?;
            }
            // Every stored row is filed once under (its tenant, its
            // offeredAt): refile it when either changed.
            let tenant = tenant_key(&row.tenant);
            let old_filed = old_filed
                .as_ref()
                .map(|(old_tenant, at)| (tenant_key(old_tenant), *at));
            if old_filed != Some((tenant, row.offered_at)) {
                if let Some((old_tenant, at)) = old_filed {
                    count_key(&mut tenant_legs, (tenant_hash(old_tenant), at), false)
                        .at(&self.path)?;
                    *legs.entry(old_tenant.to_owned()).or_default() -= 1;
                }
                count_key(
                    &mut tenant_legs,
                    (tenant_hash(tenant), row.offered_at),
                    true,
                )
                .at(&self.path)?;
                *legs.entry(tenant.to_owned()).or_default() += 1;
            }
        }
        let mut tenants = txn.open_table(TENANTS).at(&self.path)?;
        for (tenant, n) in legs.into_iter().filter(|(_, n)| *n != 0) {
            count_tenant(&mut tenants, &tenant, n, TenantCount::default()).at(&self.path)?;
        }
        Ok(chunks)
    }

    /// Rewrites the `report_chunks` entries `chunks` from the rows of
    /// `interactions_by_offered` in their hours (removing an entry whose
    /// hour has none left): a catch-up's, after its summaries are written.
    pub(super) fn put_report_chunks(
        &self,
        txn: &WriteTransaction,
        chunks: &std::collections::BTreeSet<i64>,
    ) -> Result<()> {
        for &c in chunks {
            write_report_chunks(txn, c, Some(c), &self.path)?;
        }
        Ok(())
    }

    /// Writes the tenant index entries of newly applied records (each
    /// record's entries are written once: its counts are added), given as
    /// the facts of one or more projections (a rebuild's batch is the
    /// workers' outputs as they came, not copied into one); a rebuild's
    /// `tenant_guids` keys go to `sorted` instead.
    pub(super) fn put_tenants(
        &self,
        txn: &WriteTransaction,
        facts: &[&TenantFacts],
        sorted: Option<&mut SortedTables>,
    ) -> Result<()> {
        let mut keys: Vec<(u32, u64)> = facts.iter().flat_map(|f| &f.guids).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        if let Some(sorted) = sorted {
            for key in keys {
                sorted
                    .tenant_guids
                    .push(key, 1)
                    .map_err(io_error(&self.path))?;
            }
        } else {
            let mut guids = txn.open_table(TENANT_GUIDS).at(&self.path)?;
            for key in keys {
                guids.insert(key, ()).at(&self.path)?;
            }
        }
        let mut keys: Vec<(&str, &str)> = facts
            .iter()
            .flat_map(|f| &f.agents)
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut agents = txn.open_table(TENANT_AGENTS).at(&self.path)?;
        for key in keys {
            agents.insert(key, ()).at(&self.path)?;
        }
        let mut other = txn.open_table(TENANT_OTHER).at(&self.path)?;
        for (tenant, offset, hash) in facts.iter().flat_map(|f| &f.other) {
            other
                .insert((tenant.as_str(), *offset), *hash)
                .at(&self.path)?;
        }
        let mut counts: BTreeMap<&str, TenantCount> = BTreeMap::new();
        for (tenant, count) in facts.iter().flat_map(|f| &f.counts) {
            counts.entry(tenant).or_default().merge(*count);
        }
        let mut tenants = txn.open_table(TENANTS).at(&self.path)?;
        for (tenant, count) in counts {
            count_tenant(&mut tenants, tenant, 0, count).at(&self.path)?;
        }
        Ok(())
    }

    /// Writes status change rows (sorted first, as for the summaries); a
    /// rebuild's go to `sorted` instead, for [`Projections::put_sorted`].
    pub(super) fn put_agents(
        &self,
        txn: &WriteTransaction,
        rows: &[AgentRow],
        sorted: Option<&mut SortedTables>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        if let Some(sorted) = sorted {
            for r in rows {
                codec::encode_status_payload(&r.agent, r.time_ms, &r.payload, &mut buf);
                let row = StatusRow {
                    agent: r.agent.clone(),
                    time_ms: r.time_ms,
                    offset: r.offset,
                    rank: r.source.rank(),
                    payload: buf.clone(),
                };
                sorted
                    .agent_status
                    .push(row, 1)
                    .map_err(io_error(&self.path))?;
            }
            return Ok(());
        }
        let mut rows: Vec<&AgentRow> = rows.iter().collect();
        rows.sort_unstable_by(|a, b| {
            (&a.agent, a.time_ms, a.offset).cmp(&(&b.agent, b.time_ms, b.offset))
        });
        let mut t = txn.open_table(AGENT_STATUS).at(&self.path)?;
        for r in rows {
            codec::encode_status_payload(&r.agent, r.time_ms, &r.payload, &mut buf);
            t.insert(
                (r.agent.as_str(), r.time_ms, r.offset),
                (r.source.rank(), buf.as_slice()),
            )
            .at(&self.path)?;
        }
        Ok(())
    }

    pub(super) fn put_meta(
        &self,
        txn: &WriteTransaction,
        consumed: u64,
        anchor: Option<Anchor>,
        own_max_time_ms: Option<i64>,
        skipped: SkippedDamage,
    ) -> Result<()> {
        let mut t = txn.open_table(META).at(&self.path)?;
        skipped.put(&mut t, &self.path)?;
        let mut put = |k: &str, v: i64| t.insert(k, v).map(drop).at(&self.path);
        put("version", PROJECTION_VERSION)?;
        put("consumed", i64::try_from(consumed).unwrap_or(i64::MAX))?;
        if let Some(a) = anchor {
            put(
                "scan_segment",
                i64::try_from(a.pos.segment).unwrap_or(i64::MAX),
            )?;
            put("scan_pos", i64::from(a.pos.pos))?;
            if let Some((offset, hash)) = a.record {
                put("scan_offset", offset as i64)?;
                put("scan_hash", hash as i64)?;
            }
            if let Some(at) = a.ingest_ms {
                put("scan_ingest_ms", at)?;
            }
            if let Some(id) = a.lost_seen {
                put("lost_seen", id as i64)?;
            }
        }
        if let Some(m) = own_max_time_ms {
            put("max_own_time_ms", m)?;
        }
        if anchor.is_some_and(|a| a.lost_seen.is_none()) {
            // Seen by the file before, not by the index it now goes on from
            // (rebuilt since, without the record of that loss).
            t.remove("lost_seen").at(&self.path)?;
        }
        Ok(())
    }

    /// Files the times records gave events without a time of their own,
    /// keeping each event's best (in any order, and a record given twice
    /// changes nothing): a rebuild's and a catch-up's alike.
    pub(super) fn put_copies<'c>(
        &self,
        txn: &WriteTransaction,
        copies: impl IntoIterator<Item = &'c CopyTime>,
    ) -> Result<()> {
        let mut copies = copies.into_iter().peekable();
        if copies.peek().is_none() {
            return Ok(());
        }
        let mut best = txn.open_table(COPY_BEST).at(&self.path)?;
        let mut times = txn.open_table(COPY_TIMES).at(&self.path)?;
        for c in copies {
            let kept = best.get(c.event).at(&self.path)?.map(|v| v.value());
            match kept {
                Some(kept) if !c.beats(kept) => continue,
                Some((_, ms)) => {
                    times.remove((ms, c.event)).at(&self.path)?;
                }
                None => {}
            }
            best.insert(c.event, (c.rank, c.ms)).at(&self.path)?;
            times.insert((c.ms, c.event), ()).at(&self.path)?;
        }
        Ok(())
    }
}

/// Writes every `report_chunks` entry of a rebuild (into the empty table)
/// from the summaries committed before `txn`, on two threads: the later
/// half of the hours encoded on one while this one encodes the earlier
/// half and inserts both. Decoding the summaries was the longest thread of
/// a rebuild's end (docs/BENCHMARKS.md, issue 12).
fn put_all_report_chunks(db: &Database, txn: &WriteTransaction, path: &Path) -> Result<()> {
    let read = db.begin_read().at(path)?;
    let Some(by_offered) = open_optional(&read, BY_OFFERED).at(path)? else {
        return Ok(());
    };
    let first = by_offered.first().at(path)?;
    let last = by_offered.last().at(path)?;
    let (Some((first, _)), Some((last, _))) = (first, last) else {
        return Ok(());
    };
    let (first, last) = (
        report_chunk_of(first.value().0),
        report_chunk_of(last.value().0),
    );
    let split = first + (last - first) / 2;
    let (tx, rx) = std::sync::mpsc::sync_channel::<(i64, Vec<u8>)>(REPORT_CHUNKS_QUEUED);
    std::thread::scope(|scope| {
        let by_offered = &by_offered;
        // The sender moves to the thread: the inserting loop below ends
        // when that thread does.
        let later = scope.spawn(move || {
            encode_report_chunks(by_offered, split + 1, None, path, |c, bytes| {
                // The inserting thread stopped on an error of its own,
                // the one reported.
                tx.send((c, bytes.to_vec()))
                    .map_err(|_| ProjectionError::Worker("report chunks not written".into()))
            })
        });
        let written = txn.open_table(REPORT_CHUNKS).at(path).and_then(|mut out| {
            encode_report_chunks(by_offered, first, Some(split), path, |c, bytes| {
                out.insert(c, bytes).at(path)?;
                while let Ok((c, bytes)) = rx.try_recv() {
                    out.insert(c, bytes.as_slice()).at(path)?;
                }
                Ok(())
            })?;
            for (c, bytes) in &rx {
                out.insert(c, bytes.as_slice()).at(path)?;
            }
            Ok(())
        });
        drop(rx);
        let encoded = later.join().unwrap_or_else(|_| {
            Err(ProjectionError::Worker(
                "a thread encoding report chunks panicked".into(),
            ))
        });
        written.and(encoded)
    })
}

/// Writes the chunks `first..=last` (`None`: to the end) from the
/// summaries in their hours and removes those with no summary left: a
/// catch-up's chunks (a rebuild's: [`put_all_report_chunks`]).
fn write_report_chunks(
    txn: &WriteTransaction,
    first: i64,
    last: Option<i64>,
    path: &Path,
) -> Result<()> {
    let by_offered = txn.open_table(BY_OFFERED).at(path)?;
    let mut out = txn.open_table(REPORT_CHUNKS).at(path)?;
    let mut written = std::collections::BTreeSet::new();
    encode_report_chunks(&by_offered, first, last, path, |c, bytes| {
        out.insert(c, bytes).at(path)?;
        written.insert(c);
        Ok(())
    })?;
    let stale: Vec<i64> = match last {
        Some(l) => out.range(first..=l),
        None => out.range(first..),
    }
    .at(path)?
    .map(|item| item.map(|(k, _)| k.value()))
    .collect::<std::result::Result<Vec<i64>, _>>()
    .at(path)?
    .into_iter()
    .filter(|c| !written.contains(c))
    .collect();
    for c in stale {
        out.remove(c).at(path)?;
    }
    Ok(())
}

/// Encodes the `report_chunks` entries `first..=last` (`None`: to the
/// end) from the summaries of `by_offered` in their hours, handing each to
/// `emit` in chunk order: the one function that says what a chunk holds,
/// so the chunks are a function of the summaries alone whichever path
/// (catch-up or rebuild) writes them. Each leg is read as
/// [`codec::decode_report_leg`] reads it: a leg opens its contact exactly
/// when [`crate::contact::opens_contact`] says so, which is what the walk
/// on read ([`Projections::summary`]) would find.
pub(super) fn encode_report_chunks(
    by_offered: &impl ReadableTable<(i64, &'static [u8]), &'static [u8]>,
    first: i64,
    last: Option<i64>,
    path: &Path,
    mut emit: impl FnMut(i64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut legs: Vec<codec::StoredLeg> = Vec::new();
    let mut current = None;
    let mut buf = Vec::new();
    let mut flush = |c: i64, legs: &mut Vec<codec::StoredLeg>| -> Result<()> {
        let view: Vec<ReportLeg<'_>> = legs.iter().map(codec::StoredLeg::leg).collect();
        codec::encode_report_chunk(&view, &mut buf).at(path)?;
        emit(c, &buf)?;
        legs.clear();
        Ok(())
    };
    let start = first.saturating_mul(REPORT_CHUNK_MS);
    let empty: &[u8] = &[];
    for item in by_offered.range((start, empty)..).at(path)? {
        let (k, v) = item.at(path)?;
        let (at, key) = k.value();
        let c = report_chunk_of(at);
        if last.is_some_and(|l| c > l) {
            break;
        }
        if let Some(cur) = current.filter(|&cur| cur != c) {
            flush(cur, &mut legs)?;
        }
        current = Some(c);
        legs.push(codec::decode_report_leg(key, at, v.value()).at(path)?);
    }
    if let Some(cur) = current {
        flush(cur, &mut legs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row through scratch files (a run per row), back in key order.
    fn through_runs<K: RunKey>(keys: Vec<K>) -> Vec<(K, u32)> {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p.redb.rebuild");
        let mut runs: Runs<K> = Runs::new(Some(&base), "t").with_limits(1, 3);
        for k in keys {
            runs.push(k, 1).unwrap();
        }
        super::super::runs::tests::merged(runs)
    }

    #[test]
    fn status_rows_round_trip_through_runs_in_key_order() {
        let row = |agent: &str, time_ms: i64, offset: u64, payload: &[u8]| StatusRow {
            agent: agent.to_owned(),
            time_ms,
            offset,
            rank: (offset % 7) as u8 + 1,
            payload: payload.to_vec(),
        };
        let rows = vec![
            row("ag2", 5, 9, b"\x01abc"),
            row("ag1", i64::MAX, 3, b""),
            row("ag1", -7, 8, &[0, 255, 10]),
            row("", i64::MIN, u64::MAX, b"x"),
            row("ag1", -7, 2, b"later offset first"),
        ];
        let mut want = rows.clone();
        want.sort();
        let got: Vec<StatusRow> = through_runs(rows).into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, want);
        // The 32-bit hashes of `interaction_offered` keep their order too.
        let got = through_runs(vec![(u32::MAX, 1i64), (0, -1), (7, i64::MIN), (0, -1)]);
        assert_eq!(
            got,
            vec![((0, -1), 2), ((7, i64::MIN), 1), ((u32::MAX, 1), 1)]
        );
    }
}
