//! Committing: everything an [`IndexWriter`] collected goes to the file in
//! one transaction.
//!
//! Invariants:
//! - Postings, quarantine entries, time marks, counters and the checkpoint
//!   commit together, durably: a reader never sees entries past the
//!   checkpoint, nor a checkpoint ahead of its entries.
//! - Posting keys are inserted in key order (generation first), so a commit
//!   that spans generations fills each one's pages in one pass.
//! - A generation gets its filters in the commit that completes it (no later
//!   record can fall in it: offsets only grow), and they never change after;
//!   the writer's copy of the filters is replaced only once that commit has
//!   succeeded.
//! - The keys of the generations not sealed yet that the index knows
//!   ([`crate::filter::OpenKeys`]) gain a commit's keys only once it has
//!   succeeded.
//! - A span's filter holds the keys of exactly the generations it says it
//!   covers (its first `gens()`), all sealed: it is extended in the commit
//!   that seals each of them, or built from the posting tables when it is
//!   missing (an index written before span filters, or a damaged entry),
//!   for the newest span and at most one older span a commit.
//! - A span's `guid_blocks` entries hold the `by_guid` keys of exactly the
//!   generations they say they cover (the span's first ones, all sealed):
//!   extended in the commit that seals each of them, or rebuilt from
//!   `by_guid` when they do not cover the generations before it. A reader
//!   trusts them only for sealed generations.

use std::sync::{Arc, PoisonError};

use redb::{Durability, ReadableTable};

use super::{Index, IndexWriter};
use crate::chunk::ChunkBuilder;
use crate::error::AtPath;
use crate::filter::{
    gen_hashes, generation, span, Filters, GenFilter, SpanBlocks, SpanFilter, FILTERED,
    SPAN_GENERATIONS,
};
use crate::guard::guarded;
use crate::place::KeyRange;
use crate::schema::{
    BY_AGENT, BY_GUID, BY_PAYLOAD, FILTERS, GUID_BLOCKS, KEY_RANGES, META, QUARANTINE,
    SPAN_FILTERS, TIME,
};
use crate::{Checkpoint, Hit, KeyMap, PostingKind, Result};

/// What [`Index::write_collected`] leaves for the writer begun after the
/// one it wrote: the number of sealed generations after the commit, for
/// [`IndexWriter::rebase`].
#[must_use = "the writer begun after this commit is rebased with it"]
#[derive(Debug, Clone, Copy)]
pub struct Written {
    sealed: u64,
}

impl Index {
    /// Writes everything the writer collected, with the checkpoint after it
    /// (`None` keeps the checkpoint), in one durable transaction.
    pub fn commit(&self, w: IndexWriter, checkpoint: Option<Checkpoint>) -> Result<()> {
        let written = self.write_collected(&w, checkpoint)?;
        // The writer's share of the known keys goes first, so that the
        // index's is (as a rule) the only one left and is extended in
        // place, not copied.
        let IndexWriter {
            open_keys,
            guid,
            payload,
            ..
        } = w;
        drop(open_keys);
        self.add_known_keys(&guid, &payload, written);
        Ok(())
    }

    /// The transaction of [`Index::commit`] alone, for a writer that the
    /// writer begun after it ([`Index::begin_after`]) shares, so that it can
    /// run on another thread while that one collects. The writer's keys
    /// join the known keys when the one after it is rebased
    /// ([`IndexWriter::rebase`]); until then no other commit may start.
    pub fn write_collected(
        &self,
        w: &IndexWriter,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Written> {
        self.write(w, checkpoint).map(|sealed| Written { sealed })
    }

    /// After a commit has succeeded: its keys join the known keys of the
    /// generations not sealed yet.
    pub(super) fn add_known_keys(
        &self,
        guid: &KeyMap<ChunkBuilder>,
        payload: &KeyMap<Vec<Hit>>,
        written: Written,
    ) {
        let sealed = written.sealed;
        let mut current = self
            .open_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut keys =
            Arc::try_unwrap(std::mem::take(&mut *current)).unwrap_or_else(|k| (*k).clone());
        keys.commit(
            PostingKind::Guid,
            guid.iter().map(|(h, c)| (generation(c.first()), *h)),
            sealed,
        );
        keys.commit(
            PostingKind::Payload,
            payload
                .iter()
                .flat_map(|(h, hits)| hits.iter().map(move |hit| (generation(hit.offset), *h))),
            sealed,
        );
        *current = Arc::new(keys);
    }

    /// The transaction of [`Index::commit`]; returns the number of sealed
    /// generations after it.
    fn write(&self, w: &IndexWriter, checkpoint: Option<Checkpoint>) -> Result<u64> {
        // Its filters would be those before `prev` was written.
        debug_assert!(w.prev.is_none(), "a writer is rebased before it commits");
        guarded(&self.path, || {
            let txn = self.db.begin_write().at(&self.path)?;
            let filters;
            {
                // Posting tables in a block of their own: sealing reads them.
                {
                    for (table, map) in [(BY_GUID, &w.guid), (BY_AGENT, &w.agent)] {
                        let mut t = txn.open_table(table).at(&self.path)?;
                        // In key order: a commit spanning generations
                        // fills each one's pages in one pass.
                        let mut chunks: Vec<((u64, u64, u64), &ChunkBuilder)> = map
                            .iter()
                            .map(|(hash, c)| ((generation(c.first()), *hash, c.first()), c))
                            .collect();
                        chunks.sort_unstable_by_key(|(key, _)| *key);
                        for (key, chunk) in chunks {
                            t.insert(key, chunk.bytes()).at(&self.path)?;
                        }
                    }
                    let mut t = txn.open_table(BY_PAYLOAD).at(&self.path)?;
                    let mut payload: Vec<((u64, u64, u64), u32)> = w
                        .payload
                        .iter()
                        .flat_map(|(h, hits)| {
                            hits.iter()
                                .map(move |hit| ((generation(hit.offset), *h, hit.offset), hit.pos))
                        })
                        .collect();
                    payload.sort_unstable();
                    for (key, pos) in payload {
                        t.insert(key, pos).at(&self.path)?;
                    }
                }
                self.widen_ranges(&txn, w)?;
                filters = self.seal_generations(&txn, w)?;
                let mut t = txn.open_table(QUARANTINE).at(&self.path)?;
                for hit in &w.quarantine {
                    t.insert(hit.offset, hit.pos).at(&self.path)?;
                }
                let mut time_marks = w.time_marks.clone();
                if let (Some(first), Some(max_time)) = (w.slice_first, w.counters.latest_ms()) {
                    time_marks.push((max_time.max(0) as u64, first));
                }
                let mut t = txn.open_table(TIME).at(&self.path)?;
                for (key, first) in time_marks {
                    if t.get(key).at(&self.path)?.is_none() {
                        t.insert(key, first).at(&self.path)?;
                    }
                }
                let mut t = txn.open_table(META).at(&self.path)?;
                let c = w.counters;
                let mut meta = vec![
                    ("records", c.records),
                    ("events", c.events),
                    ("quarantined", c.quarantined),
                    ("duplicates", c.duplicates),
                    ("control", c.control),
                    ("interactions", c.interactions),
                    ("sealed_generations", filters.sealed()),
                ];
                meta.push(("untimed", c.untimed));
                for (key, time) in [
                    ("min_time_ms", c.min_time_ms),
                    ("max_time_ms", c.max_time_ms),
                    ("untimed_min_ms", c.untimed_min_ms),
                    ("untimed_max_ms", c.untimed_max_ms),
                ] {
                    if let Some(t) = time {
                        meta.push((key, t as u64));
                    }
                }
                if let Some(offset) = w.tally_offset {
                    meta.push(("tally.offset", offset));
                }
                if let Some((segment, pos)) = c.first_damage {
                    meta.push(("damaged.places", c.damaged_places));
                    meta.push(("damaged.bytes", c.damaged_bytes));
                    meta.push(("damaged.segment", segment));
                    meta.push(("damaged.pos", u64::from(pos)));
                }
                if let Some((offset, id)) = w.lost {
                    meta.push(("lost.from", offset));
                    meta.push(("lost.id", id));
                }
                if let Some(p) = w.packed {
                    meta.push(("packed.count", p.count));
                    meta.push(("packed.bytes", p.bytes));
                    meta.push(("packed.bases", p.bases));
                }
                if let Some(cp) = checkpoint {
                    meta.push(("checkpoint.next_offset", cp.next_offset));
                    meta.push(("checkpoint.segment", cp.segment));
                    meta.push(("checkpoint.pos", u64::from(cp.pos)));
                }
                for (k, v) in meta {
                    t.insert(k, v).at(&self.path)?;
                }
            }
            let mut txn = txn;
            txn.set_durability(Durability::Immediate).at(&self.path)?;
            txn.commit().at(&self.path)?;
            let sealed = filters.sealed();
            *self.filters.lock().unwrap_or_else(PoisonError::into_inner) = filters;
            Ok(sealed)
        })
    }

    /// Builds and stores the filters of every generation this commit
    /// completes (no later record can fall in it: offsets only grow), adds
    /// each to its span's filter, and returns the filters as of this commit.
    fn seal_generations(
        &self,
        txn: &redb::WriteTransaction,
        w: &IndexWriter,
    ) -> Result<Arc<Filters>> {
        let mut filters = w.filters.as_ref().clone();
        let mut t = txn.open_table(FILTERS).at(&self.path)?;
        let mut spans = txn.open_table(SPAN_FILTERS).at(&self.path)?;
        let mut guid_blocks = txn.open_table(GUID_BLOCKS).at(&self.path)?;
        // Offsets only grow, so this never happens; were a commit to add
        // records to a sealed generation, its filters would be stale.
        if let Some(first) = w.first_offset.filter(|f| generation(*f) < filters.sealed()) {
            for g in generation(first)..filters.sealed() {
                for kind in FILTERED {
                    t.remove((g, kind as u8)).at(&self.path)?;
                }
            }
            for s in span(generation(first))..=span(filters.sealed()) {
                for kind in FILTERED {
                    spans.remove((s, kind as u8)).at(&self.path)?;
                }
                remove_span_blocks(&mut guid_blocks, s).at(&self.path)?;
            }
            filters.truncate(generation(first));
        }
        let Some(next) = w.next_offset else {
            return Ok(Arc::new(filters));
        };
        let guid = txn.open_table(BY_GUID).at(&self.path)?;
        let payload = txn.open_table(BY_PAYLOAD).at(&self.path)?;
        let sealed_before = filters.sealed();
        while filters.sealed() < generation(next) {
            let g = filters.sealed();
            let hashes = [
                gen_hashes(&guid, g).at(&self.path)?,
                gen_hashes(&payload, g).at(&self.path)?,
            ];
            let built = hashes.each_ref().map(|h| GenFilter::build(h));
            for (kind, filter) in FILTERED.iter().zip(&built) {
                if let Some(bytes) = filter.encode() {
                    t.insert((g, *kind as u8), bytes.as_slice())
                        .at(&self.path)?;
                }
            }
            let ranges = {
                let t = txn.open_table(KEY_RANGES).at(&self.path)?;
                let mut got = [KeyRange::EMPTY; 2];
                for ((slot, kind), filter) in got.iter_mut().zip(FILTERED).zip(&built) {
                    *slot = match t.get((g, kind as u8)).at(&self.path)? {
                        Some(v) => KeyRange::decode(v.value()),
                        None if matches!(filter, GenFilter::Empty) => KeyRange::EMPTY,
                        None => KeyRange::ANY,
                    };
                }
                got
            };
            filters.push(built, ranges);
            let span_filters = [
                span_with(&guid, &filters, PostingKind::Guid, g, &hashes[0]).at(&self.path)?,
                span_with(&payload, &filters, PostingKind::Payload, g, &hashes[1]).at(&self.path)?,
            ];
            put_span(&mut spans, &mut filters, span(g), span_filters).at(&self.path)?;
            let blocks = span_blocks_with(&guid, &guid_blocks, g, &hashes[0]).at(&self.path)?;
            // Entries left from blocks of another count would answer for
            // ranges they no longer cover.
            remove_span_blocks(&mut guid_blocks, span(g)).at(&self.path)?;
            for (end, value) in blocks.entries() {
                guid_blocks
                    .insert((span(g), end), value.as_slice())
                    .at(&self.path)?;
            }
        }
        // An index written before span filters gets them one older span a
        // commit that seals a generation, so no commit reads much more
        // than a span's keys.
        if filters.sealed() > sealed_before {
            let complete = filters.sealed() / SPAN_GENERATIONS;
            let whole = |s, kind| {
                filters
                    .span_filter(s, kind)
                    .is_some_and(|f| f.gens() == SPAN_GENERATIONS)
            };
            // Spans whose generations' filters were dropped (`shed`) are
            // not filled in again.
            let kept = span(filters.dropped_below()).min(complete);
            if let Some(s) = (kept..complete).find(|&s| !FILTERED.iter().all(|&k| whole(s, k))) {
                let upto = (s + 1) * SPAN_GENERATIONS;
                let span_filters = [
                    span_from(&guid, s, upto).at(&self.path)?,
                    span_from(&payload, s, upto).at(&self.path)?,
                ];
                put_span(&mut spans, &mut filters, s, span_filters).at(&self.path)?;
            }
        }
        filters.shed(self.filter_budget);
        Ok(Arc::new(filters))
    }

    /// Widens the stored key ranges of the generations `w` wrote keys into
    /// by the places of those keys. A generation that held keys of a table
    /// before any range of it was stored gets [`KeyRange::ANY`].
    fn widen_ranges(&self, txn: &redb::WriteTransaction, w: &IndexWriter) -> Result<()> {
        let mut t = txn.open_table(KEY_RANGES).at(&self.path)?;
        let held_keys = [w.guid_gens, w.payload_gens];
        for (g, ranges) in &w.ranges {
            for ((kind, added), gens_before) in FILTERED.iter().zip(ranges).zip(held_keys) {
                if added.is_empty() {
                    continue;
                }
                let key = (*g, *kind as u8);
                let stored = t
                    .get(key)
                    .at(&self.path)?
                    .map(|v| KeyRange::decode(v.value()));
                let widened = match stored {
                    Some(r) => r.merge(*added),
                    None if *g < gens_before => KeyRange::ANY,
                    None => *added,
                };
                if stored != Some(widened) {
                    t.insert(key, widened.encode().as_slice()).at(&self.path)?;
                }
            }
        }
        Ok(())
    }
}

/// Stores span `s`'s filters (in [`FILTERED`] order) and hands them to
/// `filters`.
fn put_span(
    table: &mut redb::Table<(u64, u8), &[u8]>,
    filters: &mut Filters,
    s: u64,
    span_filters: [SpanFilter; 2],
) -> std::result::Result<(), redb::Error> {
    for (kind, f) in FILTERED.iter().zip(&span_filters) {
        table.insert((s, *kind as u8), f.encode().as_slice())?;
    }
    filters.set_span(s, span_filters.map(Some));
    Ok(())
}

/// Span filter of generation `g`'s span once `keys` (those of `g`) are
/// added: the span's filter extended, or, when it is missing or covers
/// other generations, one built from the table.
fn span_with<V: redb::Value + 'static>(
    t: &impl ReadableTable<(u64, u64, u64), V>,
    filters: &Filters,
    kind: PostingKind,
    g: u64,
    keys: &[u64],
) -> std::result::Result<SpanFilter, redb::Error> {
    let s = span(g);
    let first = s * SPAN_GENERATIONS;
    let mut f = match filters.span_filter(s, kind) {
        Some(f) if first + f.gens() == g => f.clone(),
        _ if g > first => span_from(t, s, g)?,
        _ => SpanFilter::sized_for(keys.len() as u64),
    };
    f.add_generation(keys);
    Ok(f)
}

/// The filter of generations `span(s)..upto` of a posting table, read from
/// the table one generation at a time and sized by the first.
fn span_from<V: redb::Value + 'static>(
    t: &impl ReadableTable<(u64, u64, u64), V>,
    s: u64,
    upto: u64,
) -> std::result::Result<SpanFilter, redb::Error> {
    let filter = filter_from(
        t,
        s * SPAN_GENERATIONS..upto,
        SpanFilter::sized_for,
        SpanFilter::add_generation,
    )?;
    Ok(filter.unwrap_or_else(|| SpanFilter::sized_for(0)))
}

/// A filter of generations `gens` of a posting table, read from the table
/// one generation at a time: made by `sized_for` with the first one's key
/// count, each added with `add`; `None` when `gens` is empty.
fn filter_from<V: redb::Value + 'static, F>(
    t: &impl ReadableTable<(u64, u64, u64), V>,
    gens: std::ops::Range<u64>,
    sized_for: impl Fn(u64) -> F,
    add: impl Fn(&mut F, &[u64]),
) -> std::result::Result<Option<F>, redb::Error> {
    let mut filter = None;
    for g in gens {
        let hashes = gen_hashes(t, g)?;
        add(
            filter.get_or_insert_with(|| sized_for(hashes.len() as u64)),
            &hashes,
        );
    }
    Ok(filter)
}

/// The `guid_blocks` of generation `g`'s span once `keys` (those of `g`'s
/// `by_guid`) are added: the span's stored entries extended, or, when they
/// do not cover exactly the generations before `g`, built again from
/// `by_guid` (sized by the span's first generation).
fn span_blocks_with<V: redb::Value + 'static>(
    guid: &impl ReadableTable<(u64, u64, u64), V>,
    stored: &impl ReadableTable<(u64, u64), &'static [u8]>,
    g: u64,
    keys: &[u64],
) -> std::result::Result<SpanBlocks, redb::Error> {
    let s = span(g);
    let first = s * SPAN_GENERATIONS;
    let mut blocks = None;
    if g > first {
        let entries = stored
            .range((s, 0)..=(s, u64::MAX))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        blocks = SpanBlocks::from_entries(entries.iter().map(|(k, v)| (k.value().1, v.value())))
            .filter(|b| first + b.gens() == g);
    }
    let mut blocks = match blocks {
        Some(b) => b,
        None => filter_from(
            guid,
            first..g,
            SpanBlocks::sized_for,
            SpanBlocks::add_generation,
        )?
        .unwrap_or_else(|| SpanBlocks::sized_for(keys.len() as u64)),
    };
    blocks.add_generation(keys);
    Ok(blocks)
}

/// Removes span `s`'s `guid_blocks` entries.
fn remove_span_blocks(
    t: &mut redb::Table<(u64, u64), &[u8]>,
    s: u64,
) -> std::result::Result<(), redb::Error> {
    let keys = t
        .range((s, 0)..=(s, u64::MAX))?
        .map(|item| item.map(|(k, _)| k.value()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for key in keys {
        t.remove(key)?;
    }
    Ok(())
}
