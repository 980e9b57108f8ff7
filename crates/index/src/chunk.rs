//! Posting chunks: the records of one key written by one index commit.
//!
//! A chunk is the value of `(key hash, first offset)` and lists records in
//! increasing offset order:
//!
//! ```text
//! repeat: varint(offset - previous offset)   previous = the key's first offset
//!         varint(position in segment)
//!         [u64 LE payload hash]               only in chunks that carry hashes
//! ```
//!
//! Decoding is total: a malformed chunk yields an error, never a panic.

use std::collections::HashMap;

/// One record named by a posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Posting {
    pub offset: u64,
    pub pos: u32,
    /// The payload hash, when the chunk carries hashes.
    pub payload_hash: u64,
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the varint at `*at` and moves past it; `None` when the bytes end
/// first or it does not fit `u64`.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A chunk being collected, encoded as postings arrive: a commit holds
/// ~15 bytes a record this way instead of a `Posting` (24) and its share
/// of a growing `Vec`.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    first: u64,
    prev: u64,
    with_hash: bool,
    /// Bit `h >> 58` set for the payload hash `h` of each posting pushed
    /// (in memory only, not stored): the duplicate check decodes the chunk
    /// only when the bit of the payload it looks for is set. It decoded
    /// every record's chunk so far, in a fresh `Vec` (issue 12).
    payload_bits: u64,
    bytes: Vec<u8>,
    /// Postings pushed.
    count: u32,
    /// The postings by payload hash, once the chunk holds more than
    /// [`INDEXED_FROM`] (with hashes): one interaction with very many
    /// events (a feed reusing a GUID) filled every bit of `payload_bits`,
    /// and each of its events decoded the whole chunk, an import quadratic
    /// in the interaction's size (400,000 events: 95 s against 3 s, an
    /// outside audit).
    by_payload: Option<Box<ByPayload>>,
}

/// A chunk's postings by payload hash (boxed: most chunks, of an
/// interaction's few events or an agent's, never have one, and a commit
/// holds a chunk for every key it saw).
#[derive(Debug, Clone, Default)]
struct ByPayload(HashMap<u64, Vec<Posting>>);

/// Postings of one chunk past which it keeps them by payload hash too.
const INDEXED_FROM: u32 = 64;

impl ChunkBuilder {
    /// A chunk whose first posting will be at offset `first`.
    pub fn new(first: u64, with_hash: bool) -> ChunkBuilder {
        ChunkBuilder {
            first,
            prev: first,
            with_hash,
            payload_bits: 0,
            bytes: Vec::new(),
            count: 0,
            by_payload: None,
        }
    }

    /// Appends a posting; offsets must not decrease (callers add in log order).
    pub fn push(&mut self, p: &Posting) {
        debug_assert!(p.offset >= self.prev, "postings out of order");
        put_varint(&mut self.bytes, p.offset.saturating_sub(self.prev));
        put_varint(&mut self.bytes, u64::from(p.pos));
        if self.with_hash {
            self.bytes.extend_from_slice(&p.payload_hash.to_le_bytes());
            self.payload_bits |= payload_bit(p.payload_hash);
            if let Some(ByPayload(map)) = self.by_payload.as_deref_mut() {
                map.entry(p.payload_hash).or_default().push(*p);
            }
        }
        self.prev = p.offset;
        self.count = self.count.saturating_add(1);
        if self.with_hash && self.count == INDEXED_FROM && self.by_payload.is_none() {
            let mut all = Vec::new();
            if self.decode_into(&mut all).is_ok() {
                let mut map: HashMap<u64, Vec<Posting>> = HashMap::new();
                for q in all {
                    map.entry(q.payload_hash).or_default().push(q);
                }
                self.by_payload = Some(Box::new(ByPayload(map)));
            }
        }
    }

    /// Appends to `out` the postings pushed with payload hash
    /// `payload_hash`, in the order pushed (a chunk with hashes).
    pub fn with_payload_into(
        &self,
        payload_hash: u64,
        out: &mut Vec<Posting>,
    ) -> Result<(), String> {
        if !self.may_hold_payload(payload_hash) {
            return Ok(());
        }
        if let Some(ByPayload(map)) = self.by_payload.as_deref() {
            out.extend(map.get(&payload_hash).into_iter().flatten().copied());
            return Ok(());
        }
        let mut all = Vec::new();
        self.decode_into(&mut all)?;
        out.extend(all.into_iter().filter(|q| q.payload_hash == payload_hash));
        Ok(())
    }

    /// Whether a posting with payload hash `payload_hash` may have been
    /// pushed: `false` is certain (for a chunk with payload hashes).
    pub fn may_hold_payload(&self, payload_hash: u64) -> bool {
        !self.with_hash || self.payload_bits & payload_bit(payload_hash) != 0
    }

    /// The chunk's key offset.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The encoded chunk, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Heap bytes held.
    pub fn capacity(&self) -> usize {
        // A posting kept by payload hash too: itself, and about as much
        // again of the map's room.
        let indexed = self.by_payload.as_ref().map_or(0, |_| {
            self.count as usize * 2 * std::mem::size_of::<Posting>()
        });
        self.bytes.capacity() + indexed
    }

    /// Appends the postings collected so far to `out`.
    pub fn decode_into(&self, out: &mut Vec<Posting>) -> Result<(), String> {
        decode(self.first, &self.bytes, self.with_hash, out)
    }
}

/// The bit of [`ChunkBuilder::payload_bits`] for a payload hash: its top
/// six bits (xxh3's are as well mixed as any).
fn payload_bit(payload_hash: u64) -> u64 {
    1 << (payload_hash >> 58)
}

/// Decodes a chunk written by a [`ChunkBuilder`], appending to `out`.
pub fn decode(
    first: u64,
    bytes: &[u8],
    with_hash: bool,
    out: &mut Vec<Posting>,
) -> Result<(), String> {
    let mut at = 0usize;
    let mut prev = first;
    while at < bytes.len() {
        let start = at;
        let bad = || format!("malformed posting chunk at byte {start} of {}", bytes.len());
        let delta = get_varint(bytes, &mut at).ok_or_else(bad)?;
        let pos = get_varint(bytes, &mut at).ok_or_else(bad)?;
        let offset = prev.checked_add(delta).ok_or_else(bad)?;
        let pos = u32::try_from(pos).map_err(|_| bad())?;
        let payload_hash = if with_hash {
            let raw = bytes.get(at..at + 8).ok_or_else(bad)?;
            at += 8;
            let mut b = [0u8; 8];
            b.copy_from_slice(raw);
            u64::from_le_bytes(b)
        } else {
            0
        };
        out.push(Posting {
            offset,
            pos,
            payload_hash,
        });
        prev = offset;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The postings of one payload are those a decode finds, in order,
    /// below and past the size from which the chunk keeps them by hash.
    #[test]
    fn postings_of_a_payload_are_the_decoded_ones_at_any_size() {
        let mut chunk = ChunkBuilder::new(1000, true);
        let mut pushed = Vec::new();
        for i in 0..(INDEXED_FROM as u64 * 3) {
            let p = Posting {
                offset: 1000 + i * 3,
                pos: (i * 7) as u32,
                // Few distinct payloads, each pushed many times.
                payload_hash: (i % 5).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            };
            chunk.push(&p);
            pushed.push(p);
            for h in (0..6u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
                let mut found = Vec::new();
                chunk.with_payload_into(h, &mut found).unwrap();
                let expected: Vec<Posting> = pushed
                    .iter()
                    .filter(|q| q.payload_hash == h)
                    .copied()
                    .collect();
                assert_eq!(found, expected, "after {} postings, hash {h:x}", i + 1);
            }
        }
        assert!(chunk.by_payload.is_some());
        let mut all = Vec::new();
        chunk.decode_into(&mut all).unwrap();
        assert_eq!(all, pushed);
    }

    #[test]
    fn round_trips_with_and_without_hashes() {
        let ps = vec![
            Posting {
                offset: 10,
                pos: 32,
                payload_hash: 7,
            },
            Posting {
                offset: 11,
                pos: 900,
                payload_hash: u64::MAX,
            },
            Posting {
                offset: 5_000_000,
                pos: u32::MAX,
                payload_hash: 0,
            },
        ];
        for with_hash in [true, false] {
            let mut chunk = ChunkBuilder::new(10, with_hash);
            for p in &ps {
                chunk.push(p);
            }
            let mut back = Vec::new();
            decode(10, chunk.bytes(), with_hash, &mut back).unwrap();
            let mut again = Vec::new();
            chunk.decode_into(&mut again).unwrap();
            assert_eq!(again, back);
            let expect: Vec<Posting> = ps
                .iter()
                .map(|p| Posting {
                    payload_hash: if with_hash { p.payload_hash } else { 0 },
                    ..*p
                })
                .collect();
            assert_eq!(back, expect);
        }
    }

    #[test]
    fn a_chunk_may_hold_every_payload_pushed_and_says_no_only_when_sure() {
        let mut chunk = ChunkBuilder::new(0, true);
        let mut without = ChunkBuilder::new(0, false);
        let hashes: Vec<u64> = (0..7u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for (i, &h) in hashes.iter().enumerate() {
            let p = Posting {
                offset: i as u64,
                pos: 0,
                payload_hash: h,
            };
            chunk.push(&p);
            without.push(&p);
        }
        assert!(hashes.iter().all(|&h| chunk.may_hold_payload(h)));
        // A hash whose top six bits no pushed hash shares is ruled out.
        let absent = (0..64u64)
            .map(|b| b << 58)
            .find(|&h| hashes.iter().all(|&p| p >> 58 != h >> 58))
            .unwrap();
        assert!(!chunk.may_hold_payload(absent));
        // Without payload hashes nothing can be ruled out.
        assert!(without.may_hold_payload(absent));
    }

    #[test]
    fn malformed_chunks_are_errors_not_panics() {
        let mut out = Vec::new();
        for bytes in [
            &[0x80u8][..],
            &[0xff; 11],
            &[1, 1, 1, 2, 3],
            &[0, 0x80, 0x80, 0x80, 0x80, 0x10],
        ] {
            assert!(decode(0, bytes, true, &mut out).is_err(), "{bytes:?}");
        }
        assert!(decode(u64::MAX, &[5, 0], false, &mut out).is_err());
    }
}
