//! Collecting a commit: an [`IndexWriter`] gathers the entries of the
//! records added since [`Index::begin`](super::Index::begin) in memory, as
//! the chunks, payload postings, quarantine entries, time marks and
//! counters that [`Index::commit`](super::Index::commit) writes.
//!
//! Invariants:
//! - Records are added in log order; one chunk per GUID and per agent
//!   a commit, so an interaction costs one B-tree entry per commit.
//! - `counters` are the snapshot's plus the collected records': an
//!   interaction is counted once, when no committed chunk has its GUID.
//!   A scratch index (a rebuild's) leaves `interactions` alone: asking
//!   every complete generation about each new GUID costs a filter probe per
//!   generation (and a B-tree lookup per false positive) per GUID, a cost
//!   that grows with the archive, so [`Index::seal`](super::Index::seal)
//!   counts the distinct GUIDs once, in one pass over `by_guid`.
//! - What is held grows with the commit, not the archive, and is reported
//!   by [`IndexWriter::held_bytes`] so callers can bound a commit by memory.
//! - A writer begun while the commit before it is still being written
//!   ([`Index::begin_after`](super::Index::begin_after)) builds on the same
//!   snapshot and sees that commit's entries through `prev`: its lookups
//!   and counters are those of the snapshot plus `prev` plus its own, as if
//!   `prev` had been committed. [`IndexWriter::rebase`] moves it onto the
//!   snapshot `prev` wrote once that commit has succeeded, and drops `prev`.

use std::sync::Arc;

use super::dedupe::{candidates, Lookups};
use super::{Index, Written};
use crate::chunk::{ChunkBuilder, Posting};
use crate::filter::{generation, Filters, OpenKeys};
use crate::place::{guid_place, time_place, KeyRange};
use crate::{
    agent_hash, guid_hash, key_map, Counters, Entry, Hit, IndexReader, KeyMap, PackedTotals,
    PostingKind, Result, TIME_SLICE,
};

/// The entries of one commit, collected in memory, plus the snapshot they
/// build on. Lookups see both.
pub struct IndexWriter {
    pub(super) snapshot: IndexReader,
    /// Generations of the snapshot's `by_guid` and `by_payload` tables.
    pub(super) guid_gens: u64,
    pub(super) payload_gens: u64,
    pub(super) filters: Arc<Filters>,
    /// The keys of the snapshot's generations not sealed yet, where known.
    pub(super) open_keys: Arc<OpenKeys>,
    /// Whether to count new interactions as records are added (not in a
    /// scratch index, whose seal counts them).
    pub(super) count_interactions: bool,
    /// The first collected offset, and one past the last.
    pub(super) first_offset: Option<u64>,
    pub(super) next_offset: Option<u64>,
    pub(super) counters: Counters,
    /// The last tally record collected (its offset), whose totals are now
    /// `counters.duplicates` and `counters.control`.
    pub(super) tally_offset: Option<u64>,
    /// The log's compressed segments to record with this commit.
    pub(super) packed: Option<PackedTotals>,
    /// Where the log lost records an index had seen, and that loss's
    /// identity, to record with this commit ([`IndexWriter::set_lost`]).
    pub(super) lost: Option<(u64, u64)>,
    pub(super) guid: KeyMap<ChunkBuilder>,
    /// The snapshot's postings of each GUID looked up during this commit.
    /// An interaction's events arrive close together, so one B-tree lookup
    /// serves all of them (bounded, like `guid`, by the commit's size).
    pub(super) committed_guid: KeyMap<Vec<Posting>>,
    pub(super) agent: KeyMap<ChunkBuilder>,
    /// Records that name no interaction, by payload hash.
    pub(super) payload: KeyMap<Vec<Hit>>,
    pub(super) quarantine: Vec<Hit>,
    /// First offset of the current time slice (see [`TIME_SLICE`]).
    pub(super) slice_first: Option<u64>,
    /// (running max event time at the end of a slice, its first offset).
    pub(super) time_marks: Vec<(u64, u64)>,
    pub(super) collected: u64,
    /// Approximate heap bytes of the collected entries.
    pub(super) held_bytes: usize,
    /// What this commit's lookups asked of the snapshot.
    pub(super) lookups: Lookups,
    /// The commit before this one, being written while this one collects
    /// (entries the snapshot does not hold yet).
    pub(super) prev: Option<Arc<IndexWriter>>,
    /// The places of the collected keys of `by_guid` and `by_payload` (in
    /// [`crate::filter::FILTERED`] order), by generation, in generation
    /// order.
    pub(super) ranges: Vec<(u64, [KeyRange; 2])>,
}

/// Approximate heap bytes of one map entry besides its chunk's bytes.
const ENTRY_OVERHEAD: usize = 64;

/// Adds a posting to the chunk of `key`, counting the bytes it takes.
fn collect(
    chunks: &mut KeyMap<ChunkBuilder>,
    key: u64,
    posting: &Posting,
    with_hash: bool,
    held_bytes: &mut usize,
) {
    let chunk = chunks.entry(key).or_insert_with(|| {
        *held_bytes += ENTRY_OVERHEAD;
        ChunkBuilder::new(posting.offset, with_hash)
    });
    let before = chunk.capacity();
    chunk.push(posting);
    *held_bytes += chunk.capacity() - before;
}

impl IndexWriter {
    /// An empty commit on top of `snapshot`, whose complete generations
    /// have `filters` (and its others the keys `open_keys`);
    /// `count_interactions` is false for a scratch index.
    pub(super) fn start(
        snapshot: IndexReader,
        filters: Arc<Filters>,
        open_keys: Arc<OpenKeys>,
        count_interactions: bool,
    ) -> Result<IndexWriter> {
        let counters = snapshot.counters()?;
        Ok(IndexWriter {
            guid_gens: snapshot.generations(PostingKind::Guid)?,
            payload_gens: snapshot.generations(PostingKind::Payload)?,
            filters,
            open_keys,
            count_interactions,
            first_offset: None,
            next_offset: None,
            snapshot,
            counters,
            tally_offset: None,
            packed: None,
            lost: None,
            guid: key_map(0),
            committed_guid: key_map(0),
            agent: key_map(0),
            payload: key_map(0),
            quarantine: Vec::new(),
            slice_first: None,
            time_marks: Vec::new(),
            collected: 0,
            held_bytes: 0,
            lookups: Lookups::default(),
            prev: None,
            ranges: Vec::new(),
        })
    }

    /// Moves a writer begun with [`Index::begin_after`] onto the snapshot
    /// its `prev` wrote (`written`, what [`Index::write_collected`] returned
    /// for it): `prev`'s keys join the index's known keys, and this writer
    /// takes the index's snapshot, filters and known keys as of that
    /// commit and lets `prev` go. What it collected and its counters are
    /// unchanged (they already counted `prev`'s entries). Does nothing to a
    /// writer without `prev`.
    pub fn rebase(&mut self, index: &Index, written: Written) -> Result<()> {
        let Some(mut prev) = self.prev.take() else {
            return Ok(());
        };
        // Both shares of the known keys go first, so that the index's is
        // extended in place, not copied.
        if let Some(p) = Arc::get_mut(&mut prev) {
            p.open_keys = Arc::default();
        }
        self.open_keys = Arc::default();
        index.add_known_keys(&prev.guid, &prev.payload, written);
        drop(prev);
        let snapshot = index.reader()?;
        self.guid_gens = snapshot.generations(PostingKind::Guid)?;
        self.payload_gens = snapshot.generations(PostingKind::Payload)?;
        self.snapshot = snapshot;
        self.filters = index.current_filters();
        self.open_keys = index.current_open_keys();
        Ok(())
    }

    /// Number of records collected since `begin`.
    pub fn pending(&self) -> u64 {
        self.collected
    }

    /// Approximate heap bytes held by the records collected since `begin`
    /// (for callers that bound a commit by memory).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// What this commit's duplicate checks and interactions counter looked
    /// up so far.
    pub fn lookups(&self) -> Lookups {
        self.lookups
    }

    /// Collects a batch of records, in log order.
    pub fn add_all(&mut self, entries: &[Entry<'_>]) -> Result<()> {
        for entry in entries {
            self.first_offset.get_or_insert(entry.offset);
            self.next_offset = Some(entry.offset + 1);
            let slice_first = *self.slice_first.get_or_insert(entry.offset);
            let posting = Posting {
                offset: entry.offset,
                pos: entry.pos,
                payload_hash: entry.payload_hash,
            };
            let hit = Hit {
                offset: entry.offset,
                pos: entry.pos,
            };
            let gen = generation(entry.offset);
            if self.ranges.last().is_none_or(|(g, _)| *g != gen) {
                self.ranges.push((gen, [KeyRange::EMPTY; 2]));
            }
            match entry.interaction_guid {
                Some(guid) => {
                    let place = guid_place(guid);
                    if let Some((_, r)) = self.ranges.last_mut() {
                        r[0].add(place);
                    }
                    let h = guid_hash(guid);
                    if self.count_interactions && !self.guid.contains_key(&h) {
                        let in_prev =
                            || self.prev.as_ref().is_some_and(|p| p.guid.contains_key(&h));
                        let committed = match self.committed_guid.get(&h) {
                            Some(ps) => !ps.is_empty(),
                            None if in_prev() => true,
                            None => self.snapshot.has_chunk_in(
                                PostingKind::Guid,
                                h,
                                candidates(
                                    &self.filters,
                                    &self.open_keys,
                                    self.guid_gens,
                                    PostingKind::Guid,
                                    h,
                                    place,
                                    &mut self.lookups,
                                )
                                .into_iter(),
                            )?,
                        };
                        if !committed {
                            self.counters.interactions += 1;
                        }
                    }
                    collect(&mut self.guid, h, &posting, true, &mut self.held_bytes);
                }
                None => {
                    if let Some((_, r)) = self.ranges.last_mut() {
                        r[1].add(entry.payload_time.map(time_place));
                    }
                    self.payload
                        .entry(entry.payload_hash)
                        .or_default()
                        .push(hit);
                    self.held_bytes += ENTRY_OVERHEAD;
                }
            }
            if let Some(agent) = entry.agent_id {
                let h = agent_hash(agent);
                collect(&mut self.agent, h, &posting, false, &mut self.held_bytes);
            }
            self.collected += 1;
            let c = &mut self.counters;
            c.records += 1;
            if entry.quarantined {
                self.quarantine.push(hit);
                self.held_bytes += std::mem::size_of::<Hit>();
                c.quarantined += 1;
            } else {
                c.events += 1;
            }
            c.add_time(entry.time_ms, entry.timed);
            if entry.offset + 1 - slice_first >= TIME_SLICE {
                let max_time = c.latest_ms().map_or(0, |m| m.max(0) as u64);
                self.time_marks.push((max_time, slice_first));
                self.slice_first = None;
            }
        }
        Ok(())
    }

    /// The counters as of this commit: the snapshot's plus what was
    /// collected.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Takes the counts of the log's tally record at `offset`: `duplicates`
    /// and `control` are running totals (docs/FORMAT.md §1.4), so they
    /// replace the counters, and a tally collected twice (the tail indexed
    /// again after a crash) changes nothing.
    pub fn add_tally(&mut self, offset: u64, duplicates: u64, control: u64) {
        self.counters.duplicates = duplicates;
        self.counters.control = control;
        self.tally_offset = Some(offset);
    }

    /// Counts a damaged place of the log that indexing skipped at
    /// (`segment`, `pos`), `bytes` long ([`Counters::damaged_places`]).
    /// Committed with the checkpoint past it, so a tail indexed again
    /// after a crash counts it once.
    pub fn add_damage(&mut self, segment: u64, pos: u32, bytes: u64) {
        self.counters.add_damage(segment, pos, bytes);
    }

    /// Records the log's compressed segments with this commit (as of a
    /// moment before the commit: `stats` relies on no file it counts
    /// having gone since, which compressed segments never do).
    pub fn set_packed(&mut self, packed: PackedTotals) {
        self.packed = Some(packed);
    }

    /// Records that the log lost the records an index had seen from
    /// `offset` on (the writer that recovered the log, in the index it
    /// rebuilt), as the loss `id`, which no other loss of this log has
    /// (two losses may start at the same offset): derived data made before
    /// the loss is told from derived data damaged since
    /// ([`crate::IndexReader::lost`]). The latest loss is kept.
    pub fn set_lost(&mut self, offset: u64, id: u64) {
        self.lost = Some((offset, id));
    }

    /// Sets counts that no tally of the log holds: those of an index of a
    /// log written before tallies, kept across a rebuild until the archive
    /// writes them into a tally.
    pub fn keep_untallied(&mut self, duplicates: u64, control: u64) {
        self.counters.duplicates = duplicates;
        self.counters.control = control;
    }
}
