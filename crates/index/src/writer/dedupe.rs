//! Duplicate lookups of a commit in progress: the records that may hold a
//! payload, among the snapshot the writer builds on and what it collected.
//!
//! Invariants:
//! - The candidates are exactly those a lookup in every generation would
//!   find: a complete generation is skipped only when its key range does
//!   not admit the key's place ([`crate::place`]), or its filter, or its
//!   span's, rejects the hash; a range holds every key's place and a filter
//!   has no false negatives.
//! - A generation not sealed yet is skipped only when the writer knows
//!   every key of it ([`OpenKeys`]) and the hash is not one of them.
//! - A GUID's committed postings are looked up once a commit (its events
//!   arrive close together); the cache is dropped with the writer. Those of
//!   a commit still being written (`prev`) count as committed: the cache
//!   holds the snapshot's and `prev`'s, which is what the snapshot holds
//!   once the writer is rebased onto `prev`'s commit, so it stays true.

use std::collections::hash_map::Entry as MapEntry;

use super::IndexWriter;
use crate::chunk::Posting;
use crate::filter::{span, Filters, OpenKeys, SPAN_GENERATIONS};
use crate::place::{guid_place, time_place};
use crate::{guid_hash, Hit, PostingKind, Result};

/// What a commit's duplicate checks (and its interactions counter) asked
/// of the snapshot: for observing how their cost grows with the number of
/// complete generations (docs/BENCHMARKS.md, issue 17).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lookups {
    /// Key hashes looked up in the snapshot (a GUID once a commit, a
    /// payload hash of a record without a GUID each time).
    pub keys: u64,
    /// Span filters consulted (each stands for up to 8 complete
    /// generations).
    pub spans: u64,
    /// Generation filters consulted.
    pub probes: u64,
    /// Complete generations whose filter let the key through (it is there,
    /// or a false positive), each looked up in the B-tree.
    pub passed: u64,
    /// B-tree range lookups: the passed generations plus the ones without
    /// a filter (the newest, incomplete one).
    pub seeks: u64,
}

/// The generations below `gens` that may hold `hash`, a key at `place`,
/// in `kind`'s table, counted in `lookups`. A sealed generation whose key
/// range does not admit `place` is skipped first; of a span with any
/// generation left, the span's filter, when it rejects the hash, rules out
/// every generation it covers with one probe; the others are probed one by
/// one; a generation not sealed yet is skipped when `open` knows its keys
/// and the hash is not among them.
pub(super) fn candidates(
    filters: &Filters,
    open: &OpenKeys,
    gens: u64,
    kind: PostingKind,
    hash: u64,
    place: Option<u64>,
    lookups: &mut Lookups,
) -> Vec<u64> {
    let sealed = gens.min(filters.sealed());
    let mut found = Vec::new();
    let mut start = 0;
    while start < sealed {
        let s = span(start);
        let end = ((s + 1) * SPAN_GENERATIONS).min(sealed);
        let mut admitted = (start..end).filter(|&g| filters.admits(g, kind, place));
        if let Some(first) = admitted.next() {
            let mut from = first;
            if let Some(f) = filters.span_filter(s, kind) {
                lookups.spans += 1;
                if !f.may_hold(hash) {
                    from = (s * SPAN_GENERATIONS + f.gens()).clamp(first, end);
                }
            }
            for g in std::iter::once(first)
                .chain(admitted)
                .filter(|&g| g >= from)
            {
                lookups.probes += 1;
                if filters.may_hold(g, kind, hash) {
                    lookups.passed += 1;
                    found.push(g);
                }
            }
        }
        start = end;
    }
    found.extend((sealed..gens).filter(|&g| open.may_hold(g, kind, hash)));
    lookups.keys += 1;
    lookups.seeks += found.len() as u64;
    found
}

impl IndexWriter {
    /// Records that may hold exactly these payload bytes (same hash), among
    /// committed and collected entries. `guid` is the payload's GUID, and
    /// `payload_time` its own event time ([`crate::Entry::payload_time`]: `None`
    /// for a payload that would be quarantined).
    pub fn duplicate_candidates(
        &mut self,
        hash: u64,
        guid: Option<&str>,
        payload_time: Option<i64>,
    ) -> Result<Vec<Hit>> {
        match guid {
            Some(g) => {
                let h = guid_hash(g);
                // Sorted by payload hash: the ones of this payload are a
                // range, found in a few steps however many events the
                // interaction has (a scan of them all made an import
                // quadratic in an interaction's size: an outside audit).
                let committed = self.committed_postings(h, g)?;
                let from = committed.partition_point(|p| p.payload_hash < hash);
                let mut hits: Vec<Hit> = committed
                    .get(from..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|p| p.payload_hash == hash)
                    .map(Hit::from)
                    .collect();
                if let Some(chunk) = self.guid.get(&h) {
                    let mut collected = Vec::new();
                    chunk
                        .with_payload_into(hash, &mut collected)
                        .map_err(|w| self.snapshot.corrupt(w))?;
                    hits.extend(collected.iter().map(Hit::from));
                }
                Ok(hits)
            }
            None => {
                let gens = candidates(
                    &self.filters,
                    &self.open_keys,
                    self.payload_gens,
                    PostingKind::Payload,
                    hash,
                    payload_time.map(time_place),
                    &mut self.lookups,
                );
                let mut hits = self.snapshot.payload_postings_in(hash, gens.into_iter())?;
                let prev = self.prev.as_deref().map(|p| &p.payload);
                for collected in prev.into_iter().chain([&self.payload]) {
                    if let Some(hs) = collected.get(&hash) {
                        hits.extend_from_slice(hs);
                    }
                }
                Ok(hits)
            }
        }
    }

    /// The snapshot's postings of `guid` (its hash `h`), looked up once a
    /// commit, sorted by payload hash.
    fn committed_postings(&mut self, h: u64, guid: &str) -> Result<&[Posting]> {
        Ok(match self.committed_guid.entry(h) {
            MapEntry::Occupied(e) => e.into_mut(),
            MapEntry::Vacant(e) => {
                let gens = candidates(
                    &self.filters,
                    &self.open_keys,
                    self.guid_gens,
                    PostingKind::Guid,
                    h,
                    guid_place(guid),
                    &mut self.lookups,
                );
                let mut postings =
                    self.snapshot
                        .chunk_postings_in(PostingKind::Guid, h, gens.into_iter())?;
                if let Some(chunk) = self.prev.as_ref().and_then(|p| p.guid.get(&h)) {
                    chunk
                        .decode_into(&mut postings)
                        .map_err(|w| self.snapshot.corrupt(w))?;
                }
                // By payload hash, then offset (a stable sort of postings
                // in offset order): what `duplicate_candidates` searches.
                postings.sort_by_key(|p| p.payload_hash);
                e.insert(postings)
            }
        })
    }
}
