//! Key places: where a key sits on the time line, so that the writer's
//! duplicate check (and its count of new interactions) need not ask a
//! sealed generation whose keys all sit elsewhere, nor keep its filter in
//! memory (docs/FORMAT.md §3, `key_range`; docs/OPERATIONS.md, memory).
//!
//! A place is a deterministic function of what a key is made of: for
//! `by_guid`, the creation time that 8x8 writes into an interaction GUID
//! (`int-<milliseconds in hex>-…`, [`guid_place`]); for `by_payload`, the
//! payload's own event time ([`time_place`]). Every key of a generation has
//! its place within the generation's [`KeyRange`] (or has none, and the
//! range says it holds unplaced keys). So skipping a generation whose range
//! does not admit a key's place keeps the check exact whatever the places
//! are; that places follow arrival is what makes it cheap: a new
//! interaction's GUID sits past every sealed generation's range.
//!
//! Guarantees:
//! - A generation's range is widened in the transaction that writes the
//!   keys it covers, and only ever widened.
//! - A generation that held keys before its range was first written (none
//!   in an index of this version), or whose stored range is of another
//!   version or shape, admits every key ([`KeyRange::ANY`]).

use std::collections::BTreeMap;

use crate::error::AtPath;
use crate::filter::{generation, FILTERED};
use crate::guard::guarded;
use crate::schema::KEY_RANGES;
use crate::{IndexReader, PostingKind, Result};

/// Stored form's version: a range of another version admits every key.
/// Bump it when what a place is made of changes.
const RANGE_VERSION: u8 = 1;
const RANGE_LEN: usize = 18;
/// Flag: the generation holds keys without a place.
const UNPLACED: u8 = 1;

/// The place of an interaction GUID: the hexadecimal second field of
/// `kind-<hex>-rest` (8x8 writes the interaction's creation time there, in
/// milliseconds), or `None` for a GUID of another shape.
pub fn guid_place(guid: &str) -> Option<u64> {
    // By hand: it runs for every event, and `split` costs ~10× as much.
    let bytes = guid.as_bytes();
    let dash = bytes.iter().position(|&b| b == b'-')?;
    let mut place = 0u64;
    for (i, &b) in bytes.get(dash + 1..)?.iter().enumerate() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'-' if i > 0 => return Some(place),
            _ => return None,
        };
        if i == 16 {
            return None;
        }
        place = place << 4 | u64::from(digit);
    }
    None
}

/// The place of a payload's own event time (ms): order-preserving from
/// `i64` to `u64`.
pub fn time_place(ms: i64) -> u64 {
    (ms as u64) ^ (1 << 63)
}

/// The places of one table's keys in one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRange {
    min: u64,
    max: u64,
    unplaced: bool,
}

impl KeyRange {
    /// Holds no key.
    pub(crate) const EMPTY: KeyRange = KeyRange {
        min: u64::MAX,
        max: 0,
        unplaced: false,
    };
    /// May hold any key.
    pub(crate) const ANY: KeyRange = KeyRange {
        min: 0,
        max: u64::MAX,
        unplaced: true,
    };

    pub(crate) fn is_empty(&self) -> bool {
        *self == KeyRange::EMPTY
    }

    /// Whether it holds keys without a place (those are never skipped).
    pub(crate) fn holds_unplaced(&self) -> bool {
        self.unplaced
    }

    /// Widens it to a key at `place`.
    pub(crate) fn add(&mut self, place: Option<u64>) {
        match place {
            Some(p) => {
                self.min = self.min.min(p);
                self.max = self.max.max(p);
            }
            None => self.unplaced = true,
        }
    }

    /// The range of both ranges' keys.
    pub(crate) fn merge(self, other: KeyRange) -> KeyRange {
        KeyRange {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            unplaced: self.unplaced || other.unplaced,
        }
    }

    /// Whether a key at `place` may be among its keys.
    pub(crate) fn admits(&self, place: Option<u64>) -> bool {
        match place {
            Some(p) => self.min <= p && p <= self.max,
            None => self.unplaced,
        }
    }

    pub(crate) fn encode(&self) -> [u8; RANGE_LEN] {
        let mut out = [0u8; RANGE_LEN];
        out[0] = RANGE_VERSION;
        out[1] = if self.unplaced { UNPLACED } else { 0 };
        out[2..10].copy_from_slice(&self.min.to_le_bytes());
        out[10..18].copy_from_slice(&self.max.to_le_bytes());
        out
    }

    /// A stored range; [`KeyRange::ANY`] for bytes of another version or
    /// shape.
    pub(crate) fn decode(bytes: &[u8]) -> KeyRange {
        KeyRange::parse(bytes).unwrap_or(KeyRange::ANY)
    }

    /// A stored range, `None` for bytes of another version or shape.
    fn parse(bytes: &[u8]) -> Option<KeyRange> {
        let b = <[u8; RANGE_LEN]>::try_from(bytes).ok()?;
        if b[0] != RANGE_VERSION || b[1] & !UNPLACED != 0 {
            return None;
        }
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Some(KeyRange {
            min: u64_at(2),
            max: u64_at(10),
            unplaced: b[1] & UNPLACED != 0,
        })
    }

    /// Whether every key `other` holds is admitted.
    fn holds(&self, other: &KeyRange) -> bool {
        let placed = other.min > other.max || (self.min <= other.min && other.max <= self.max);
        placed && (self.unplaced || !other.unplaced)
    }
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min <= self.max {
            write!(f, "places {}..={}", self.min, self.max)?;
        } else {
            write!(f, "no placed key")?;
        }
        if self.unplaced {
            write!(f, ", and keys without a place")?;
        }
        Ok(())
    }
}

/// The places that a log's records give the keys of each generation, to
/// be checked against the stored ranges ([`crate::IndexReader::key_range_problems`]):
/// what `verify` collects as it reads the log.
#[derive(Debug, Default)]
pub struct ExpectedRanges {
    gens: BTreeMap<u64, [KeyRange; 2]>,
}

impl ExpectedRanges {
    /// A key of `kind`'s table at `offset`, at `place` (`by_agent` has no
    /// ranges: ignored).
    pub fn add(&mut self, kind: PostingKind, offset: u64, place: Option<u64>) {
        let Some(slot) = FILTERED.iter().position(|k| *k == kind) else {
            return;
        };
        let ranges = self
            .gens
            .entry(generation(offset))
            .or_insert([KeyRange::EMPTY; 2]);
        ranges[slot].add(place);
    }
}

impl IndexReader {
    /// Where the stored key ranges do not hold the places the log's
    /// records give their keys (`expected`), one sentence each: a range
    /// missing, damaged, or narrower than its keys (a duplicate of such a
    /// key could then be archived twice).
    pub fn key_range_problems(&self, expected: &ExpectedRanges) -> Result<Vec<String>> {
        guarded(&self.path, || {
            let stored = self.table(KEY_RANGES)?;
            let mut problems = Vec::new();
            for (g, ranges) in &expected.gens {
                for (want, kind) in ranges.iter().zip(FILTERED) {
                    if want.is_empty() {
                        continue;
                    }
                    let have = match &stored {
                        Some(t) => t.get((*g, kind as u8)).at(&self.path)?,
                        None => None,
                    };
                    let problem = match have.as_ref().map(|v| KeyRange::parse(v.value())) {
                        None => Some("is missing".to_owned()),
                        Some(None) => Some("is damaged (of another version or shape)".to_owned()),
                        Some(Some(have)) if !have.holds(want) => {
                            Some(format!("holds {have}, its keys need {want}"))
                        }
                        Some(Some(_)) => None,
                    };
                    if let Some(p) = problem {
                        problems.push(format!("`{kind}` key range of generation {g} {p}"));
                    }
                }
            }
            Ok(problems)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_8x8_guid_is_placed_at_its_creation_time() {
        // The 8x8 documentation's example: created at 1669235827 s.
        let g = "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01";
        assert_eq!(guid_place(g), Some(1_669_235_827_932));
        assert_eq!(guid_place("a-ffffffffffffffff-"), Some(u64::MAX));
        assert_eq!(guid_place("X-00A-y"), Some(10));
        for other in [
            "int-ghost",
            "int-7-t-x",
            "g1",
            "",
            "int--x",
            "int-+ab-x",
            "a-12345678901234567-x",
            "int-7",
        ] {
            let expected = (other == "int-7-t-x").then_some(7);
            assert_eq!(guid_place(other), expected, "{other}");
        }
    }

    #[test]
    fn time_places_keep_the_order_of_times() {
        let times = [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_place(w[0]) < time_place(w[1]));
        }
    }

    #[test]
    fn a_range_admits_exactly_what_was_added_and_round_trips() {
        let mut r = KeyRange::EMPTY;
        assert!(r.is_empty() && !r.admits(Some(5)) && !r.admits(None));
        r.add(Some(10));
        r.add(Some(20));
        assert!(r.admits(Some(10)) && r.admits(Some(15)) && r.admits(Some(20)));
        assert!(!r.admits(Some(9)) && !r.admits(Some(21)) && !r.admits(None));
        let mut u = KeyRange::EMPTY;
        u.add(None);
        let both = r.merge(u);
        assert!(both.admits(None) && both.admits(Some(12)) && !both.admits(Some(30)));
        assert!(!u.admits(Some(12)), "unplaced keys only");
        for range in [r, u, both, KeyRange::EMPTY, KeyRange::ANY] {
            assert_eq!(KeyRange::decode(&range.encode()), range);
            assert!(range.holds(&range) && range.holds(&KeyRange::EMPTY));
            assert!(KeyRange::ANY.holds(&range));
        }
        assert!(both.holds(&r) && both.holds(&u) && !r.holds(&both) && !u.holds(&r));
        let mut wider = r;
        wider.add(Some(21));
        assert!(!r.holds(&wider) && wider.holds(&r));
    }

    #[test]
    fn a_damaged_or_foreign_range_admits_everything() {
        let mut r = KeyRange::EMPTY;
        r.add(Some(10));
        let bytes = r.encode();
        let mut other_version = bytes;
        other_version[0] = RANGE_VERSION + 1;
        let mut unknown_flag = bytes;
        unknown_flag[1] = 0x80;
        for damaged in [&bytes[..17], &other_version[..], &unknown_flag[..], &[]] {
            assert_eq!(KeyRange::decode(damaged), KeyRange::ANY);
            assert_eq!(KeyRange::parse(damaged), None);
        }
    }
}
