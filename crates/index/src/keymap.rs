//! Hash maps keyed by a key hash: a 64-bit xxh3 value of a GUID, an agent
//! id or a payload ([`crate::PostingKind::hash`]).
//!
//! Why not std's `HashMap` with its default hasher: its SipHash of every
//! key, several times a record (the in-batch duplicate map, a commit's
//! chunk maps, the duplicate check), is work the key has already had done
//! to it, on the appending thread, which is the import's bottleneck
//! (docs/BENCHMARKS.md, issue 12).
//!
//! Invariant: the bucket of a key depends on a secret drawn once per
//! process (from std's `RandomState`), as with std's hasher. The keys come
//! from a known function of the input, so without the secret a feed could
//! be made of GUIDs whose hashes share their low bits, and every lookup
//! would probe through all of them. Each key is mixed with the secret by a
//! folded multiply (the full 128-bit product of the key, XORed with the
//! secret, by a fixed odd constant, its halves XORed: every bit of the key
//! reaches the low bits the table uses), the construction `foldhash` uses
//! for integers. Nothing depends on the iteration order of these maps.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

/// A map from key hashes to `V`.
pub type KeyMap<V> = HashMap<u64, V, KeyHashing>;

/// An empty [`KeyMap`] with room for `n` keys.
pub fn key_map<V>(n: usize) -> KeyMap<V> {
    HashMap::with_capacity_and_hasher(n, KeyHashing::default())
}

/// The [`BuildHasher`] of a [`KeyMap`]: the process's secret.
#[derive(Debug, Clone, Copy)]
pub struct KeyHashing {
    secret: u64,
}

impl Default for KeyHashing {
    fn default() -> KeyHashing {
        static SECRET: OnceLock<u64> = OnceLock::new();
        KeyHashing {
            secret: *SECRET.get_or_init(|| RandomState::new().hash_one(0u64)),
        }
    }
}

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            secret: self.secret,
            state: 0,
        }
    }
}

/// Hashes one `u64` (any other key is read eight bytes at a time).
#[derive(Debug, Clone)]
pub struct KeyHasher {
    secret: u64,
    state: u64,
}

/// An odd constant with bits spread evenly (2^64 / golden ratio).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for KeyHasher {
    fn write_u64(&mut self, key: u64) {
        let product = u128::from(key ^ self.secret ^ self.state) * u128::from(MULTIPLIER);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for word in bytes.chunks(8) {
            let mut padded = [0u8; 8];
            padded[..word.len()].copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(padded));
        }
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_share_their_low_bits_spread_over_the_table() {
        // Keys alike in their low 20 bits (what a crafted feed could
        // produce without the secret) land in many buckets of a 2^12 table.
        let hashing = KeyHashing::default();
        let buckets: std::collections::HashSet<u64> = (0..4096u64)
            .map(|i| hashing.hash_one(i << 20) & 0xfff)
            .collect();
        assert!(buckets.len() > 2000, "{} buckets", buckets.len());
        let mut m: KeyMap<u64> = key_map(0);
        for i in 0..10_000u64 {
            *m.entry(i << 32).or_default() += i;
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&(77 << 32)), Some(&77));
    }
}
