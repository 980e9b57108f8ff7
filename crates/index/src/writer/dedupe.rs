//! Duplicate lookups of a commit in progress: the records that may hold a
//! payload, among the snapshot the writer builds on and what it collected.
//!
//! Invariants:
//! - The candidates are exactly those a lookup in every generation would
//!   find: a complete generation is skipped only when its filter rejects
//!   the hash, and a filter has no false negatives.
//! - A GUID's committed postings are looked up once a commit (its events
//!   arrive close together); the cache is dropped with the writer.

use std::collections::hash_map::Entry as MapEntry;

use super::IndexWriter;
use crate::chunk::Posting;
use crate::filter::Filters;
use crate::{guid_hash, Hit, PostingKind, Result};

/// The generations below `gens` that may hold `hash` in `kind`'s table.
pub(super) fn candidates(
    filters: &Filters,
    gens: u64,
    kind: PostingKind,
    hash: u64,
) -> impl Iterator<Item = u64> + '_ {
    (0..gens).filter(move |&g| filters.may_hold(g, kind, hash))
}

impl IndexWriter {
    /// Records that may hold exactly these payload bytes (same hash), among
    /// committed and collected entries. `guid` is the payload's GUID.
    pub fn duplicate_candidates(&mut self, hash: u64, guid: Option<&str>) -> Result<Vec<Hit>> {
        let same = |p: &&Posting| p.payload_hash == hash;
        match guid {
            Some(g) => {
                let h = guid_hash(g);
                let mut hits: Vec<Hit> = self
                    .committed_postings(h)?
                    .iter()
                    .filter(same)
                    .map(Hit::from)
                    .collect();
                if let Some(chunk) = self.guid.get(&h) {
                    let mut collected = Vec::new();
                    chunk
                        .decode_into(&mut collected)
                        .map_err(|w| self.snapshot.corrupt(w))?;
                    hits.extend(collected.iter().filter(same).map(Hit::from));
                }
                Ok(hits)
            }
            None => {
                let gens = candidates(&self.filters, self.payload_gens, PostingKind::Payload, hash);
                let mut hits = self.snapshot.payload_postings_in(hash, gens)?;
                if let Some(hs) = self.payload.get(&hash) {
                    hits.extend_from_slice(hs);
                }
                Ok(hits)
            }
        }
    }

    /// The snapshot's postings of one GUID hash, looked up once a commit.
    fn committed_postings(&mut self, h: u64) -> Result<&[Posting]> {
        Ok(match self.committed_guid.entry(h) {
            MapEntry::Occupied(e) => e.into_mut(),
            MapEntry::Vacant(e) => {
                let gens = candidates(&self.filters, self.guid_gens, PostingKind::Guid, h);
                e.insert(
                    self.snapshot
                        .chunk_postings_in(PostingKind::Guid, h, gens)?,
                )
            }
        })
    }
}
