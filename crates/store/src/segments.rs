//! Which segment holds an offset: the greatest base offset at or below it.
//!
//! The list is cached and re-read from the log directory only when an offset
//! falls in the last known segment, the only one a writer can have rolled
//! past since the last look — and never for a reader's snapshot whose
//! listing already holds the segment of its index checkpoint: no segment
//! created later can hold a record the snapshot sees. (Listing the
//! directory per record read was the largest cost of the live wallboard's
//! refresh, docs/BENCHMARKS.md.)

use ccvault_index::PackedTotals;
use ccvault_log::{LogReader, PackedSegments, Position};

/// The log's compressed segments as the index keeps them: a writer's
/// commits record [`ccvault_log::Log::packed_segments`], and `stats` hands
/// them back to [`LogReader::footprint_listed`].
pub(crate) fn packed_totals(p: PackedSegments) -> PackedTotals {
    PackedTotals {
        count: p.count,
        bytes: p.bytes,
        bases: p.bases,
    }
}

/// [`packed_totals`] the other way.
pub(crate) fn packed_segments(t: PackedTotals) -> PackedSegments {
    PackedSegments {
        count: t.count,
        bytes: t.bytes,
        bases: t.bases,
    }
}

#[derive(Debug, Clone, Default)]
pub struct SegmentMap {
    bases: Vec<u64>,
    /// Every offset looked up lies in a listed segment (see
    /// [`SegmentMap::for_snapshot`]).
    settled: bool,
}

impl SegmentMap {
    pub fn new(reader: &LogReader) -> SegmentMap {
        SegmentMap {
            bases: reader.segments(),
            settled: false,
        }
    }

    /// The map of a snapshot whose visible records all lie in segments up
    /// to `last_visible` (its checkpoint's segment), for lookups of visible
    /// offsets only. Segments are never removed, and a segment a writer
    /// creates later begins past every visible record; so once the listing
    /// holds `last_visible`, it is final. It is the listing `reader` took
    /// last (at its open: for a snapshot's reader, opened after its
    /// checkpoint was read), not a new one; one that does not reach
    /// `last_visible` is re-read on demand like [`SegmentMap::new`]'s.
    pub fn for_snapshot(reader: &LogReader, last_visible: Option<u64>) -> SegmentMap {
        let bases = reader.listed_segments();
        let settled = last_visible.is_some_and(|s| bases.last().is_some_and(|&b| b >= s));
        SegmentMap { bases, settled }
    }

    /// [`SegmentMap::position`] from a fresh listing: for a lookup that
    /// found no record of its offset where the cached listing placed it,
    /// which may lack a segment a writer created and compressed while it
    /// was taken (`ccvault_log`'s listing). `None` when the fresh listing
    /// places it in the same segment.
    pub fn relisted_position(
        &mut self,
        reader: &LogReader,
        offset: u64,
        pos: u32,
    ) -> Option<Position> {
        let before = self.base_of(offset).map(|(b, _)| b);
        self.bases = reader.segments();
        let after = self.base_of(offset).map(|(b, _)| b)?;
        (Some(after) != before).then_some(Position {
            segment: after,
            pos,
        })
    }

    fn base_of(&self, offset: u64) -> Option<(u64, bool)> {
        let i = self.bases.partition_point(|&b| b <= offset);
        let i = i.checked_sub(1)?;
        Some((self.bases[i], i + 1 == self.bases.len()))
    }

    /// The log position of the record at `offset` whose byte position in
    /// its segment is `pos`.
    pub fn position(&mut self, reader: &LogReader, offset: u64, pos: u32) -> Position {
        match self.base_of(offset) {
            Some((base, last)) if !last || self.settled => Position { segment: base, pos },
            _ => {
                self.bases = reader.segments();
                let segment = self.base_of(offset).map_or(0, |(b, _)| b);
                Position { segment, pos }
            }
        }
    }
}
