//! Generation filters: for each complete generation of the log (see
//! [`GENERATION_RECORDS`]), a binary fuse filter of the key hashes its
//! `by_guid` and `by_payload` entries hold. The writer's duplicate check
//! consults them before it looks a key up in a generation: a filter never
//! says "absent" for a key that is there, so skipping on "absent" keeps the
//! check exact, and a false "present" (< 0.4 %) costs one B-tree lookup.
//! Without them every check would visit every generation, whose pages
//! stopped fitting redb's cache long ago.
//!
//! Guarantees:
//! - A filter is built once, when no later commit can add entries to its
//!   generation, and never changes.
//! - A generation with no filter (not complete yet, or one that could not
//!   be built or read back) is always looked up: a filter only ever saves
//!   work, it never decides an answer.
//! - Decoding checks the stored shape, so damaged bytes can only make a
//!   filter unusable (looked up instead), never index out of bounds.

use redb::ReadableTable;
use xorf::{BinaryFuse8, Filter};

use crate::place::KeyRange;
use crate::schema::GENERATION_RECORDS;
use crate::{key_map, KeyMap, PostingKind};

/// The generation of the record at `offset`.
pub(crate) fn generation(offset: u64) -> u64 {
    offset / GENERATION_RECORDS
}

/// The distinct key hashes of generation `g` of a posting table, sorted:
/// what its filters are built from.
pub(crate) fn gen_hashes<V: redb::Value + 'static>(
    t: &impl ReadableTable<(u64, u64, u64), V>,
    g: u64,
) -> std::result::Result<Vec<u64>, redb::Error> {
    let mut hashes = Vec::new();
    for item in t.range((g, 0, 0)..=(g, u64::MAX, u64::MAX))? {
        let hash = item?.0.value().1;
        if hashes.last() != Some(&hash) {
            hashes.push(hash);
        }
    }
    Ok(hashes)
}

/// What is known of one table's keys in one complete generation.
#[derive(Debug, Clone)]
pub(crate) enum GenFilter {
    /// The generation holds no key of this table.
    Empty,
    /// A filter of the generation's key hashes.
    Keys(Box<BinaryFuse8>),
    /// No usable filter: look the generation up.
    Unknown,
}

const DESCRIPTOR_LEN: usize = 20;

impl GenFilter {
    /// The filter of a generation's distinct, sorted key hashes.
    pub(crate) fn build(hashes: &[u64]) -> GenFilter {
        if hashes.is_empty() {
            return GenFilter::Empty;
        }
        match BinaryFuse8::try_from(hashes) {
            Ok(f) => GenFilter::Keys(Box::new(f)),
            Err(_) => GenFilter::Unknown,
        }
    }

    /// Whether the generation may hold `hash`.
    pub(crate) fn may_hold(&self, hash: u64) -> bool {
        match self {
            GenFilter::Empty => false,
            GenFilter::Keys(f) => f.contains(&hash),
            GenFilter::Unknown => true,
        }
    }

    /// The stored form (docs/FORMAT.md §3), or `None` when nothing is worth
    /// storing (the generation is then looked up).
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        match self {
            GenFilter::Empty => Some(Vec::new()),
            GenFilter::Keys(f) => {
                let d = &f.descriptor;
                let mut out = Vec::with_capacity(DESCRIPTOR_LEN + f.fingerprints.len());
                out.extend_from_slice(&d.seed.to_le_bytes());
                out.extend_from_slice(&d.segment_length.to_le_bytes());
                out.extend_from_slice(&d.segment_length_mask.to_le_bytes());
                out.extend_from_slice(&d.segment_count_length.to_le_bytes());
                out.extend_from_slice(&f.fingerprints);
                Some(out)
            }
            GenFilter::Unknown => None,
        }
    }

    /// Reads a stored filter back; bytes of the wrong shape give
    /// [`GenFilter::Unknown`].
    pub(crate) fn decode(bytes: &[u8]) -> GenFilter {
        if bytes.is_empty() {
            return GenFilter::Empty;
        }
        let Some((head, fingerprints)) = bytes.split_at_checked(DESCRIPTOR_LEN) else {
            return GenFilter::Unknown;
        };
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[i..i + 4]);
            u32::from_le_bytes(b)
        };
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&head[..8]);
        let descriptor = xorf::Descriptor {
            seed: u64::from_le_bytes(seed),
            segment_length: u32_at(8),
            segment_length_mask: u32_at(12),
            segment_count_length: u32_at(16),
        };
        // A lookup reads fingerprints below segment_count_length + 2 *
        // segment_length (segment_length a power of two, the mask one less,
        // the count a multiple of it), with u32 arithmetic: check exactly that.
        let sl = descriptor.segment_length;
        let scl = descriptor.segment_count_length;
        let shaped = sl.is_power_of_two()
            && descriptor.segment_length_mask == sl - 1
            && scl.is_multiple_of(sl)
            && u64::from(scl) + 2 * u64::from(sl) <= fingerprints.len() as u64
            && u64::from(scl) + 2 * u64::from(sl) <= u64::from(u32::MAX);
        if !shaped {
            return GenFilter::Unknown;
        }
        GenFilter::Keys(Box::new(BinaryFuse8 {
            descriptor,
            fingerprints: fingerprints.into(),
        }))
    }
}

/// Complete generations per span filter: spans of 8M records, so that a
/// new key's one probe a span stays a handful of probes at 50M events.
pub(crate) const SPAN_GENERATIONS: u64 = 32;

/// The span of generation `gen`.
pub(crate) fn span(gen: u64) -> u64 {
    gen / SPAN_GENERATIONS
}

/// Filter bits a key, as a span's filter is sized: ~1 % false positives
/// with one 512-bit block a key and 8 bits set in it.
const SPAN_BITS_PER_KEY: u64 = 10;

/// One block of a span filter: a cache line, so a probe reads one line.
type Block = [u64; 8];

/// Multipliers that pick a key's bit in each word of its block (those of
/// Parquet's split block Bloom filter, odd constants).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// The block of `hash` among `blocks` (from its high bits: the blocks
/// split the hashes into ranges of equal width, in order).
fn block_of(hash: u64, blocks: usize) -> usize {
    ((u128::from(hash) * blocks as u128) >> 64) as usize
}

/// The bit of `hash` in each word of its block (from its low 32 bits,
/// independent of the block's choice).
fn mask_of(hash: u64) -> Block {
    let low = hash as u32;
    SALT.map(|s| 1u64 << (low.wrapping_mul(s) >> 26))
}

/// Whether every bit of `mask` is set in `block`.
fn block_holds(block: &Block, mask: &Block) -> bool {
    block
        .iter()
        .zip(mask)
        .fold(true, |all, (w, m)| all & (w & m == *m))
}

fn block_bytes(block: &Block, out: &mut Vec<u8>) {
    for w in block {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

fn block_from(line: &[u8]) -> Block {
    let mut block = [0u64; 8];
    for (w, b) in block.iter_mut().zip(line.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        *w = u64::from_le_bytes(word);
    }
    block
}

/// Stored form's version: a span filter of another version is ignored
/// (its generations are probed one by one).
const SPAN_FORMAT: u32 = 1;
const SPAN_HEAD_LEN: usize = 8;

/// A blocked Bloom filter of the key hashes of the first `gens` complete
/// generations of a span (docs/FORMAT.md §3): a duplicate check skips all
/// of them with one probe when it rejects a hash. Filled one generation at
/// a time as each is sealed, so it never holds the span's keys at once.
#[derive(Debug, Clone)]
pub(crate) struct SpanFilter {
    /// Generations added, from the span's first.
    gens: u32,
    blocks: Box<[Block]>,
}

impl SpanFilter {
    /// An empty filter sized for `keys_per_gen` keys in each of the span's
    /// generations (more only raise its false positive rate).
    pub(crate) fn sized_for(keys_per_gen: u64) -> SpanFilter {
        let bits = keys_per_gen
            .saturating_mul(SPAN_GENERATIONS)
            .saturating_mul(SPAN_BITS_PER_KEY);
        let blocks = bits.div_ceil(512).clamp(1, 1 << 26);
        SpanFilter {
            gens: 0,
            blocks: vec![[0u64; 8]; blocks as usize].into_boxed_slice(),
        }
    }

    /// Generations added so far.
    pub(crate) fn gens(&self) -> u64 {
        u64::from(self.gens)
    }

    /// Adds the next generation's key hashes.
    pub(crate) fn add_generation(&mut self, hashes: &[u64]) {
        for &h in hashes {
            let (b, mask) = self.place(h);
            for (w, m) in self.blocks[b].iter_mut().zip(mask) {
                *w |= m;
            }
        }
        self.gens += 1;
    }

    /// The block of `hash` and the bit of each word.
    fn place(&self, hash: u64) -> (usize, Block) {
        (block_of(hash, self.blocks.len()), mask_of(hash))
    }

    /// Whether any of the added generations may hold `hash`.
    pub(crate) fn may_hold(&self, hash: u64) -> bool {
        let (b, mask) = self.place(hash);
        block_holds(&self.blocks[b], &mask)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SPAN_HEAD_LEN + 64 * self.blocks.len());
        out.extend_from_slice(&SPAN_FORMAT.to_le_bytes());
        out.extend_from_slice(&self.gens.to_le_bytes());
        for block in self.blocks.iter() {
            block_bytes(block, &mut out);
        }
        out
    }

    /// Reads a stored filter back; `None` for another version or bytes of
    /// the wrong shape (the span's generations are then probed one by one).
    pub(crate) fn decode(bytes: &[u8]) -> Option<SpanFilter> {
        let (head, body) = bytes.split_at_checked(SPAN_HEAD_LEN)?;
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[i..i + 4]);
            u32::from_le_bytes(b)
        };
        let gens = u32_at(4);
        let shaped = u32_at(0) == SPAN_FORMAT
            && (1..=SPAN_GENERATIONS).contains(&u64::from(gens))
            && !body.is_empty()
            && body.len().is_multiple_of(64);
        if !shaped {
            return None;
        }
        let blocks = body.chunks_exact(64).map(block_from).collect();
        Some(SpanFilter { gens, blocks })
    }
}

/// Blocks of a span's [`SpanBlocks`] at most, a generation (each 64 bytes
/// a generation and 8 more a stored entry): keeps a damaged or absurd key
/// count from sizing a huge allocation.
const MAX_SPAN_BLOCKS: u64 = 1 << 22;

/// The `by_guid` key hashes of each of a span's first `gens()` complete
/// generations, as a blocked Bloom filter per generation, all with the same
/// number of blocks, stored block by block (docs/FORMAT.md §3,
/// `guid_blocks`): the entry of a hash's block tells a reader, for each
/// generation of the span, whether it may hold the hash, so a GUID lookup
/// reads one small entry a span and descends only into the generations it
/// admits, instead of one B-tree range per generation (docs/BENCHMARKS.md,
/// "What grows in opening"). The writer fills it one generation at a time
/// as each is sealed; the duplicate check does not use it (it has its
/// [`SpanFilter`] and generation filters in memory).
#[derive(Debug, Clone)]
pub(crate) struct SpanBlocks {
    /// Blocks a generation, fixed by the span's first generation.
    blocks: usize,
    /// One filter per generation added, from the span's first.
    gens: Vec<Box<[Block]>>,
}

/// Bytes of a stored entry before its blocks: the first hash of its block's
/// range.
const BLOCKS_HEAD_LEN: usize = 8;

impl SpanBlocks {
    /// Empty, sized for `keys_per_gen` keys in each generation (~1 % false
    /// positives a generation at that count, as the span filters).
    pub(crate) fn sized_for(keys_per_gen: u64) -> SpanBlocks {
        let blocks = keys_per_gen
            .saturating_mul(SPAN_BITS_PER_KEY)
            .div_ceil(512)
            .clamp(1, MAX_SPAN_BLOCKS);
        SpanBlocks {
            blocks: blocks as usize,
            gens: Vec::new(),
        }
    }

    /// Generations added so far.
    pub(crate) fn gens(&self) -> u64 {
        self.gens.len() as u64
    }

    /// Adds the next generation's key hashes.
    pub(crate) fn add_generation(&mut self, hashes: &[u64]) {
        let mut filter = vec![[0u64; 8]; self.blocks].into_boxed_slice();
        for &h in hashes {
            let block = &mut filter[block_of(h, self.blocks)];
            for (w, m) in block.iter_mut().zip(mask_of(h)) {
                *w |= m;
            }
        }
        self.gens.push(filter);
    }

    /// Whether generation `i` of the span (from its first) may hold
    /// `hash`; `true` for one not added.
    pub(crate) fn may_hold(&self, i: usize, hash: u64) -> bool {
        self.gens
            .get(i)
            .is_none_or(|f| block_holds(&f[block_of(hash, self.blocks)], &mask_of(hash)))
    }

    /// The first hash of block `b`'s range (`b <= blocks`: `blocks` gives
    /// one past the last block's range, as a u128).
    fn range_start(b: usize, blocks: usize) -> u128 {
        ((b as u128) << 64).div_ceil(blocks as u128)
    }

    /// The stored entries, in key order: (the last hash of a block's range,
    /// the first hash of the range followed by that block of each
    /// generation). A reader finds a hash's entry as the first at or past
    /// the hash.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, Vec<u8>)> + '_ {
        (0..self.blocks).map(|b| {
            let start = Self::range_start(b, self.blocks) as u64;
            let end = (Self::range_start(b + 1, self.blocks) - 1) as u64;
            let mut value = Vec::with_capacity(BLOCKS_HEAD_LEN + 64 * self.gens.len());
            value.extend_from_slice(&start.to_le_bytes());
            for filter in &self.gens {
                block_bytes(&filter[b], &mut value);
            }
            (end, value)
        })
    }

    /// Reads a span's stored entries back (in key order); `None` unless
    /// they are exactly the entries of some [`SpanBlocks`] with a
    /// generation or more (then the caller rebuilds it from the table).
    pub(crate) fn from_entries<'a>(
        entries: impl ExactSizeIterator<Item = (u64, &'a [u8])>,
    ) -> Option<SpanBlocks> {
        let blocks = entries.len();
        if blocks == 0 || blocks as u64 > MAX_SPAN_BLOCKS {
            return None;
        }
        let mut gens: Vec<Box<[Block]>> = Vec::new();
        for (b, (end, value)) in entries.enumerate() {
            let (start, lines) = entry_parts(value)?;
            let shaped = u128::from(start) == Self::range_start(b, blocks)
                && u128::from(end) + 1 == Self::range_start(b + 1, blocks)
                && (b == 0 || lines.len() == gens.len() * 64);
            if !shaped {
                return None;
            }
            if b == 0 {
                gens = (0..lines.len() / 64)
                    .map(|_| vec![[0u64; 8]; blocks].into_boxed_slice())
                    .collect();
            }
            for (filter, line) in gens.iter_mut().zip(lines.chunks_exact(64)) {
                filter[b] = block_from(line);
            }
        }
        Some(SpanBlocks { blocks, gens })
    }
}

/// The first hash of an entry's range and its generations' blocks; `None`
/// for bytes of another shape.
fn entry_parts(value: &[u8]) -> Option<(u64, &[u8])> {
    let (head, lines) = value.split_at_checked(BLOCKS_HEAD_LEN)?;
    let mut start = [0u8; 8];
    start.copy_from_slice(head);
    let shaped = !lines.is_empty()
        && lines.len().is_multiple_of(64)
        && lines.len() as u64 <= 64 * SPAN_GENERATIONS;
    shaped.then_some((u64::from_le_bytes(start), lines))
}

/// For the stored entry a reader found for `hash` (the first of its span
/// whose key is at or past `hash`), whether each generation it covers,
/// from the span's first, may hold `hash`; `None` when the entry's range
/// does not hold `hash` (an entry missing before it) or its bytes are of
/// another shape: the span's generations are then all looked up.
pub(crate) fn span_blocks_admit(value: &[u8], hash: u64) -> Option<Vec<bool>> {
    let (start, lines) = entry_parts(value)?;
    if start > hash {
        return None;
    }
    let mask = mask_of(hash);
    Some(
        lines
            .chunks_exact(64)
            .map(|line| block_holds(&block_from(line), &mask))
            .collect(),
    )
}

/// The tables that have generation filters, with their code in the
/// `gen_filter` table's key.
pub(crate) const FILTERED: [PostingKind; 2] = [PostingKind::Guid, PostingKind::Payload];

/// Bytes of generation and span filters the writer keeps in memory at most
/// for the generations it can skip by their key ranges (those holding no
/// unplaced key): past it, the oldest generations' filters are dropped, and
/// a key whose place such a generation admits is looked up in its B-tree
/// (docs/OPERATIONS.md, memory). ~0.3 MiB a million events of the
/// simulated feed: the filters of its last ~25M events.
pub(crate) const FILTER_BUDGET: usize = 8 << 20;

/// The filters of the complete generations `0..sealed()`, as the writer
/// holds them (shared by each commit's writer, replaced after a commit that
/// completes a generation), with each generation's key ranges.
///
/// Invariants: every sealed generation has its ranges (maybe
/// [`KeyRange::ANY`]); a generation whose filter was dropped to stay within
/// [`FILTER_BUDGET`] has [`GenFilter::Unknown`] (looked up when its range
/// admits a key), and only generations whose ranges hold no unplaced key
/// are dropped, oldest first, with the spans they make up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    /// One entry per complete generation: the `by_guid` and `by_payload`
    /// filters, in [`FILTERED`] order.
    gens: Vec<[std::sync::Arc<GenFilter>; 2]>,
    /// The key ranges of each complete generation, in [`FILTERED`] order.
    ranges: Vec<[KeyRange; 2]>,
    /// One entry per span with a complete generation, in [`FILTERED`]
    /// order: its filter, or `None` (its generations are probed one by one).
    spans: Vec<[Option<std::sync::Arc<SpanFilter>>; 2]>,
    /// Generations below this may have had their filters dropped.
    dropped_below: u64,
}

fn slot(kind: PostingKind) -> Option<usize> {
    FILTERED.iter().position(|k| *k == kind)
}

/// Bytes a filter holds in memory.
fn gen_filter_bytes(f: &GenFilter) -> usize {
    match f {
        GenFilter::Keys(f) => f.fingerprints.len(),
        _ => 0,
    }
}

impl Filters {
    /// Number of complete generations (each has an entry, maybe `Unknown`).
    pub(crate) fn sealed(&self) -> u64 {
        self.gens.len() as u64
    }

    pub(crate) fn push(&mut self, filters: [GenFilter; 2], ranges: [KeyRange; 2]) {
        self.gens.push(filters.map(std::sync::Arc::new));
        self.ranges.push(ranges);
    }

    /// Forgets the filters of generations `gen..`, and those of the spans
    /// that cover any of them.
    pub(crate) fn truncate(&mut self, gen: u64) {
        let at = usize::try_from(gen).unwrap_or(usize::MAX);
        self.gens.truncate(at);
        self.ranges.truncate(at);
        self.spans
            .truncate(usize::try_from(span(gen)).unwrap_or(usize::MAX));
        self.dropped_below = self.dropped_below.min(gen);
    }

    /// The filter of span `s` of `kind`'s table, if there is one.
    pub(crate) fn span_filter(&self, s: u64, kind: PostingKind) -> Option<&SpanFilter> {
        let entry = usize::try_from(s).ok().and_then(|s| self.spans.get(s))?;
        entry[slot(kind)?].as_deref()
    }

    /// Sets the filters of span `s` (the spans before it get `None` if
    /// they had no entry).
    pub(crate) fn set_span(&mut self, s: u64, filters: [Option<SpanFilter>; 2]) {
        let Ok(s) = usize::try_from(s) else {
            return;
        };
        if self.spans.len() <= s {
            self.spans.resize(s + 1, [None, None]);
        }
        self.spans[s] = filters.map(|f| f.map(std::sync::Arc::new));
    }

    /// Whether generation `gen` of `kind`'s table may hold `hash`.
    pub(crate) fn may_hold(&self, gen: u64, kind: PostingKind, hash: u64) -> bool {
        let entry = usize::try_from(gen).ok().and_then(|g| self.gens.get(g));
        match (entry, slot(kind)) {
            (Some(filters), Some(i)) => filters[i].may_hold(hash),
            _ => true,
        }
    }

    /// Whether generation `gen` of `kind`'s table has a filter in memory
    /// (one of keys, or that it holds none).
    pub(crate) fn has_filter(&self, gen: u64, kind: PostingKind) -> bool {
        let entry = usize::try_from(gen).ok().and_then(|g| self.gens.get(g));
        match (entry, slot(kind)) {
            (Some(filters), Some(i)) => !matches!(*filters[i], GenFilter::Unknown),
            _ => false,
        }
    }

    /// Whether sealed generation `gen` of `kind`'s table may hold a key at
    /// `place` (yes for a generation not sealed, or a table not filtered).
    pub(crate) fn admits(&self, gen: u64, kind: PostingKind, place: Option<u64>) -> bool {
        let entry = usize::try_from(gen).ok().and_then(|g| self.ranges.get(g));
        match (entry, slot(kind)) {
            (Some(ranges), Some(i)) => ranges[i].admits(place),
            _ => true,
        }
    }

    /// Whether the filter of `kind`'s table (at `slot`) in generation
    /// `gen` may be dropped: its range places every key, or the table is
    /// `by_payload`, whose unplaced keys (quarantined records, agent events
    /// without a time of their own) are rarely looked up.
    pub(crate) fn droppable(ranges: &[KeyRange; 2], slot: usize) -> bool {
        FILTERED[slot] == PostingKind::Payload || !ranges[slot].holds_unplaced()
    }

    /// Drops the oldest droppable generation filters (and the span filters
    /// made of dropped ones only) until those held take at most `budget`
    /// bytes or none is left to drop.
    pub(crate) fn shed(&mut self, budget: usize) {
        let span_bytes =
            |f: &Option<std::sync::Arc<SpanFilter>>| f.as_ref().map_or(0, |f| f.blocks.len() * 64);
        let mut held: usize = self
            .gens
            .iter()
            .flat_map(|g| g.iter().map(|f| gen_filter_bytes(f)))
            .sum::<usize>()
            + self.spans.iter().flatten().map(span_bytes).sum::<usize>();
        let mut g = usize::try_from(self.dropped_below).unwrap_or(usize::MAX);
        let per_span = SPAN_GENERATIONS as usize;
        while held > budget && g < self.gens.len() {
            for (i, f) in self.gens[g].iter_mut().enumerate() {
                if Self::droppable(&self.ranges[g], i) {
                    held -= gen_filter_bytes(f);
                    *f = std::sync::Arc::new(GenFilter::Unknown);
                }
            }
            g += 1;
            // A span all of whose generations' filters went: its filter
            // goes too.
            if g.is_multiple_of(per_span) {
                let gens = g - per_span..g;
                if let Some(entry) = self.spans.get_mut(g / per_span - 1) {
                    for (i, f) in entry.iter_mut().enumerate() {
                        if gens.clone().all(|g| Self::droppable(&self.ranges[g], i)) {
                            held -= span_bytes(f);
                            *f = None;
                        }
                    }
                }
            }
        }
        self.dropped_below = g as u64;
    }

    /// Generations below this may have had their filters dropped.
    pub(crate) fn dropped_below(&self) -> u64 {
        self.dropped_below
    }
}

/// Keys an [`OpenKeys`] holds at most, a table; past it the table's keys
/// are given up until its newest generation is sealed: ~20 bytes a key,
/// so ~5 MiB of memory a table at most. A generation of the simulated
/// feed holds ~120,000 GUIDs.
const OPEN_KEYS_CAP: usize = 1 << 18;

/// The exact key hashes of the generations not yet complete (no filter
/// yet) of the `by_guid` and `by_payload` tables, as the writer committed
/// them, so that its duplicate check need not look a new key up in those
/// generations: for a new GUID that lookup is a B-tree seek that finds
/// nothing, once a commit, for every interaction (docs/BENCHMARKS.md,
/// "Import: ...", h2, 2026-12-03).
///
/// Guarantees, for each table:
/// - A generation `g >= from` holds no key that is not in `keys` (keys may
///   be there that it does not hold: a key is kept for every generation
///   from `from` to the last it was written in), so skipping a key it
///   does not hold keeps the check exact. Below `from` it knows nothing
///   ([`OpenKeys::may_hold`] says yes).
/// - `from` starts past the last generation the file holds keys of when
///   the writer opens it (those after are empty): a generation the file
///   already had keys of is looked up as ever until it is sealed.
/// - Only a commit that succeeded adds keys ([`OpenKeys::commit`]).
/// - What it holds is bounded ([`OPEN_KEYS_CAP`]), not by the archive.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenKeys {
    /// In [`FILTERED`] order.
    tables: [OpenTable; 2],
}

#[derive(Debug, Clone, Default)]
struct OpenTable {
    /// The first generation known exactly.
    from: u64,
    /// Each key hash of the generations `from..`, with the last generation
    /// it has a key in.
    keys: KeyMap<u64>,
}

impl OpenKeys {
    /// Knows the generations of each table from the one after the last it
    /// holds keys of (`generations`, in [`FILTERED`] order).
    pub(crate) fn empty_from(generations: [u64; 2]) -> OpenKeys {
        OpenKeys {
            tables: generations.map(|from| OpenTable {
                from,
                keys: key_map(0),
            }),
        }
    }

    /// Whether generation `gen` (not sealed) of `kind`'s table may hold
    /// `hash`.
    pub(crate) fn may_hold(&self, gen: u64, kind: PostingKind, hash: u64) -> bool {
        match slot(kind).map(|i| &self.tables[i]) {
            Some(t) => gen < t.from || t.keys.get(&hash).is_some_and(|&last| gen <= last),
            None => true,
        }
    }

    /// Takes the keys a successful commit wrote into `kind`'s table,
    /// `(generation, hash)`, and forgets the generations below `sealed`
    /// (their filters answer now).
    pub(crate) fn commit(
        &mut self,
        kind: PostingKind,
        added: impl Iterator<Item = (u64, u64)>,
        sealed: u64,
    ) {
        let Some(t) = slot(kind).map(|i| &mut self.tables[i]) else {
            return;
        };
        for (gen, hash) in added {
            let last = t.keys.entry(hash).or_insert(gen);
            *last = (*last).max(gen);
        }
        if t.from < sealed {
            t.keys.retain(|_, last| *last >= sealed);
            t.from = sealed;
        }
        if t.keys.len() > OPEN_KEYS_CAP {
            // Given up: known again from the generation after the newest
            // one written, which holds nothing yet.
            t.from = t.keys.values().max().map_or(t.from, |g| g + 1);
            t.keys = key_map(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_every_key_and_round_trips() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let built = GenFilter::build(&sorted);
        let bytes = built.encode().unwrap();
        let back = GenFilter::decode(&bytes);
        for f in [&built, &back] {
            assert!(matches!(f, GenFilter::Keys(_)));
            assert!(keys.iter().all(|k| f.may_hold(*k)));
        }
        let false_hits = false_hits_of_100k(|k| back.may_hold(k));
        assert!(false_hits < 1_000, "{false_hits} false hits of 100000");
    }

    /// How many of 100,000 keys no filter was given `may_hold` says yes to.
    fn false_hits_of_100k(may_hold: impl Fn(u64) -> bool) -> usize {
        (0..100_000u64)
            .filter(|i| may_hold(i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1))
            .count()
    }

    #[test]
    fn an_empty_generation_holds_nothing() {
        let f = GenFilter::build(&[]);
        assert!(!f.may_hold(7));
        assert!(matches!(
            GenFilter::decode(&f.encode().unwrap()),
            GenFilter::Empty
        ));
    }

    #[test]
    fn damaged_bytes_give_a_filter_that_is_looked_up() {
        let keys: Vec<u64> = (1..=1000u64).collect();
        let bytes = GenFilter::build(&keys).encode().unwrap();
        let mut wrong_length = bytes.clone();
        wrong_length.truncate(bytes.len() - 100);
        let mut wrong_mask = bytes.clone();
        wrong_mask[12] ^= 0x01;
        let mut wrong_segment = bytes.clone();
        wrong_segment[8..12].copy_from_slice(&3u32.to_le_bytes());
        for damaged in [&bytes[..5], &wrong_length[..], &wrong_mask, &wrong_segment] {
            let f = GenFilter::decode(damaged);
            assert!(matches!(f, GenFilter::Unknown));
            assert!(f.may_hold(12345));
        }
    }

    #[test]
    fn a_span_filter_holds_every_generations_keys_and_round_trips() {
        let key = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let gens: Vec<Vec<u64>> = (0..SPAN_GENERATIONS)
            .map(|g| (g * 10_000..(g + 1) * 10_000).map(key).collect())
            .collect();
        let mut f = SpanFilter::sized_for(10_000);
        for (i, keys) in gens.iter().enumerate() {
            f.add_generation(keys);
            assert_eq!(f.gens(), i as u64 + 1);
        }
        let back = SpanFilter::decode(&f.encode()).unwrap();
        for f in [&f, &back] {
            assert_eq!(f.gens(), SPAN_GENERATIONS);
            assert!(gens.iter().flatten().all(|k| f.may_hold(*k)));
        }
        let false_hits = false_hits_of_100k(|k| back.may_hold(k));
        // ~1 % as sized; 2 % leaves room for the blocks' uneven loads.
        assert!(false_hits < 2_000, "{false_hits} false hits of 100000");
    }

    #[test]
    fn a_span_filter_of_another_version_or_shape_is_not_used() {
        let mut f = SpanFilter::sized_for(100);
        f.add_generation(&[1, 2, 3]);
        let bytes = f.encode();
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        let mut too_many_gens = bytes.clone();
        too_many_gens[4] = SPAN_GENERATIONS as u8 + 1;
        let mut no_gens = bytes.clone();
        no_gens[4] = 0;
        let torn = &bytes[..bytes.len() - 1];
        for damaged in [
            &other_version[..],
            &too_many_gens,
            &no_gens,
            torn,
            &bytes[..8],
        ] {
            assert!(SpanFilter::decode(damaged).is_none());
        }
        assert!(SpanFilter::decode(&bytes).is_some());
    }

    #[test]
    fn span_blocks_admit_each_generations_keys_and_round_trip() {
        let key = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let gens: Vec<Vec<u64>> = (0..5u64)
            .map(|g| {
                let mut keys: Vec<u64> = (g * 10_000..(g + 1) * 10_000).map(key).collect();
                keys.sort_unstable();
                keys
            })
            .collect();
        let mut blocks = SpanBlocks::sized_for(10_000);
        for keys in &gens {
            blocks.add_generation(keys);
        }
        let entries: Vec<(u64, Vec<u8>)> = blocks.entries().collect();
        assert_eq!(entries.len(), 196, "10 bits a key");
        assert_eq!(entries.last().map(|e| e.0), Some(u64::MAX));
        // A reader's lookup: the first entry whose key is at or past the hash.
        let admit = |entries: &[(u64, Vec<u8>)], h: u64| {
            let i = entries.partition_point(|(end, _)| *end < h);
            span_blocks_admit(&entries[i].1, h)
        };
        for (g, keys) in gens.iter().enumerate() {
            for &k in keys {
                let admits = admit(&entries, k).unwrap();
                assert_eq!(admits.len(), 5);
                assert!(admits[g], "no false negative");
            }
        }
        let false_hits: usize = (0..5)
            .map(|g| false_hits_of_100k(|k| admit(&entries, k).unwrap()[g]))
            .sum();
        assert!(false_hits < 10_000, "{false_hits} false hits of 500000");
        // Read back, extended, and its entries are those of one built at once.
        let back = SpanBlocks::from_entries(entries.iter().map(|(k, v)| (*k, v.as_slice())));
        let mut back = back.unwrap();
        assert_eq!(back.gens(), 5);
        back.add_generation(&[key(1)]);
        blocks.add_generation(&[key(1)]);
        assert!(back.entries().eq(blocks.entries()));
    }

    #[test]
    fn span_blocks_of_another_shape_are_not_used() {
        let mut blocks = SpanBlocks::sized_for(100);
        blocks.add_generation(&[1, 2, 3]);
        blocks.add_generation(&[4]);
        let entries: Vec<(u64, Vec<u8>)> = blocks.entries().collect();
        assert_eq!(entries.len(), 2);
        let read = |entries: &[(u64, Vec<u8>)]| {
            SpanBlocks::from_entries(entries.iter().map(|(k, v)| (*k, v.as_slice())))
        };
        assert!(read(&entries).is_some());
        assert!(read(&entries[..1]).is_none(), "an entry missing");
        let mut torn = entries.clone();
        torn[1].1.pop();
        assert!(read(&torn).is_none());
        assert!(span_blocks_admit(&torn[1].1, u64::MAX).is_none());
        let mut uneven = entries.clone();
        uneven[1].1.truncate(8 + 64);
        assert!(read(&uneven).is_none(), "generations differ");
        // The second entry's range does not hold a hash of the first.
        assert!(span_blocks_admit(&entries[1].1, 5).is_none());
        assert!(span_blocks_admit(&entries[0].1, 5).is_some());
    }

    #[test]
    fn open_keys_skip_only_keys_absent_from_generations_known_from_their_start() {
        let (guid, payload) = (PostingKind::Guid, PostingKind::Payload);
        // The file held keys up to generation 2 of by_guid, none of by_payload.
        let mut k = OpenKeys::empty_from([3, 0]);
        assert!(k.may_hold(2, guid, 7), "written before: unknown");
        assert!(!k.may_hold(3, guid, 7));
        assert!(!k.may_hold(0, payload, 7));
        k.commit(guid, [(3, 7), (4, 8)].into_iter(), 0);
        assert!(
            k.may_hold(3, guid, 7) && !k.may_hold(4, guid, 7),
            "up to its last"
        );
        assert!(k.may_hold(3, guid, 8) && k.may_hold(4, guid, 8));
        assert!(!k.may_hold(3, guid, 9));
        assert!(!k.may_hold(3, payload, 7), "per table");
        assert!(k.may_hold(0, PostingKind::Agent, 7), "no keys kept");
        // Generation 3 sealed: its keys go, those of 4 stay.
        k.commit(guid, std::iter::empty(), 4);
        assert!(!k.may_hold(4, guid, 7) && k.may_hold(4, guid, 8));
        // Past the cap the keys are given up: everything up to the newest
        // generation written is looked up again, what comes after is known.
        let many = (0..=OPEN_KEYS_CAP as u64).map(|h| (5, h + 100));
        k.commit(guid, many, 4);
        assert!(k.may_hold(4, guid, 1) && k.may_hold(5, guid, 1));
        assert!(!k.may_hold(6, guid, 1));
        assert!(k.tables[0].keys.is_empty());
    }

    #[test]
    fn shedding_drops_the_oldest_placed_filters_and_spans_made_of_them() {
        let placed = {
            let mut r = KeyRange::EMPTY;
            r.add(Some(1));
            r
        };
        let unplaced = KeyRange::ANY;
        let mut filters = Filters::default();
        const S: u64 = SPAN_GENERATIONS;
        for g in 0..2 * S {
            let keys = [GenFilter::build(&[g]), GenFilter::build(&[g + 1000])];
            let guid_range = if g == S + 1 { unplaced } else { placed };
            filters.push(keys, [guid_range, unplaced]);
        }
        for s in 0..2 {
            let mut f = [SpanFilter::sized_for(1), SpanFilter::sized_for(1)];
            for (kind, f) in f.iter_mut().enumerate() {
                for g in s * S..s * S + S {
                    f.add_generation(&[g + 1000 * kind as u64]);
                }
            }
            filters.set_span(s, f.map(Some));
        }
        let (guid, payload) = (PostingKind::Guid, PostingKind::Payload);
        let mut kept = filters.clone();
        kept.shed(usize::MAX);
        assert!((0..2 * S).all(|g| kept.has_filter(g, guid) && kept.has_filter(g, payload)));
        filters.shed(0);
        assert_eq!(filters.dropped_below(), 2 * S);
        for g in 0..2 * S {
            assert_eq!(
                filters.has_filter(g, guid),
                g == S + 1,
                "unplaced GUIDs: kept"
            );
            assert!(!filters.has_filter(g, payload), "payload filters go");
            assert!(filters.may_hold(g, guid, g) && filters.may_hold(g, payload, 7));
        }
        assert!(
            filters.span_filter(0, guid).is_none() && filters.span_filter(0, payload).is_none()
        );
        assert!(
            filters.span_filter(1, guid).is_some(),
            "it covers generation S + 1"
        );
        assert!(filters.span_filter(1, payload).is_none());
        assert!(filters.admits(3, guid, Some(1)) && !filters.admits(3, guid, Some(2)));
        assert!(filters.admits(S + 1, guid, None) && !filters.admits(3, guid, None));
    }

    #[test]
    fn generations_without_a_filter_are_always_looked_up() {
        let mut filters = Filters::default();
        filters.push(
            [GenFilter::build(&[5]), GenFilter::Empty],
            [KeyRange::ANY; 2],
        );
        assert_eq!(filters.sealed(), 1);
        assert!(filters.may_hold(0, PostingKind::Guid, 5));
        assert!(!filters.may_hold(0, PostingKind::Payload, 5));
        assert!(filters.may_hold(1, PostingKind::Payload, 5), "not sealed");
        assert!(filters.may_hold(0, PostingKind::Agent, 5), "no filter kept");
        filters.truncate(0);
        assert!(filters.may_hold(0, PostingKind::Payload, 5));
    }
}
