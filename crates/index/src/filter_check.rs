//! What `verify` checks of the stored filters: that each holds the keys it
//! was built from. A filter that says "absent" for a key its generation
//! holds breaks an answer without any other sign: a generation filter or
//! span filter lets a duplicate of that key be archived again, a GUID
//! block hides the generation from `show GUID`. (A false "present" only
//! costs a lookup and is not a problem.)
//!
//! Guarantees: every stored generation filter, span filter and GUID block
//! of a sealed generation is asked about each key hash that generation's
//! part of `by_guid` or `by_payload` holds (the keys its filters were
//! built from; `verify` checks those tables against the log), and one
//! that rejects a key, or whose bytes are not of a filter's shape, is
//! named. Memory is that of one span's filters and one generation's keys.

use std::collections::BTreeMap;

use crate::error::AtPath;
use crate::filter::{gen_hashes, GenFilter, SpanBlocks, SpanFilter, FILTERED, SPAN_GENERATIONS};
use crate::guard::guarded;
use crate::schema::{BY_GUID, BY_PAYLOAD, FILTERS, GUID_BLOCKS, SPAN_FILTERS};
use crate::{IndexReader, PostingKind, Result};

/// A stored filter as read back for checking.
enum Stored<T> {
    /// No entry: the generations are looked up, nothing to check.
    Absent,
    /// An entry whose bytes are not of the filter's shape.
    Damaged,
    Read(T),
}

/// A filter that was asked, in the order problems are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Which {
    /// The generation filter of a table.
    Generation(u64, PostingKind),
    /// The span filter of a table.
    Span(u64, PostingKind),
    /// The GUID blocks of a span, for one of its generations.
    GuidBlocks(u64, u64),
}

impl Which {
    fn name(self) -> String {
        match self {
            Which::Generation(g, kind) => format!("`{kind}` filter of generation {g}"),
            Which::Span(s, kind) => format!("`{kind}` span filter of span {s}"),
            Which::GuidBlocks(s, g) => format!("GUID blocks of span {s} (generation {g})"),
        }
    }
}

/// What one filter answered: keys asked, keys rejected, damaged.
#[derive(Default)]
struct Tally {
    asked: u64,
    rejected: u64,
    damaged: bool,
}

impl Tally {
    /// `stored` asked about each of `hashes` (its generation's keys).
    fn of<T>(hashes: &[u64], stored: &Stored<T>, may_hold: impl Fn(&T, u64) -> bool) -> Tally {
        let asked = hashes.len() as u64;
        match stored {
            Stored::Absent => Tally::default(),
            Stored::Damaged => Tally {
                asked,
                rejected: 0,
                damaged: asked > 0,
            },
            Stored::Read(f) => Tally {
                asked,
                rejected: hashes.iter().filter(|&&h| !may_hold(f, h)).count() as u64,
                damaged: false,
            },
        }
    }

    fn add(&mut self, other: Tally) {
        self.asked += other.asked;
        self.rejected += other.rejected;
        self.damaged |= other.damaged;
    }
}

impl IndexReader {
    /// Where a stored filter of a sealed generation rejects a key of its
    /// generation or is damaged, one sentence a filter (see the module).
    pub fn filter_problems(&self) -> Result<Vec<String>> {
        guarded(&self.path, || {
            let path = &self.path;
            let (stated, sealed) = self.sealed_generations()?;
            let mut problems = Vec::new();
            if stated != sealed {
                problems.push(format!(
                    "`meta` sealed_generations says {stated} generations are complete, but the index's records fill at most {sealed}; `ccvault reindex` rebuilds the index"
                ));
            }
            // A table no commit created holds no keys.
            let (guid, payload) = (self.table(BY_GUID)?, self.table(BY_PAYLOAD)?);
            let gen_filters = self.table(FILTERS)?;
            let span_filters = self.table(SPAN_FILTERS)?;
            let guid_blocks = self.table(GUID_BLOCKS)?;
            let mut tallies: BTreeMap<Which, Tally> = BTreeMap::new();
            for s in 0..sealed.div_ceil(SPAN_GENERATIONS) {
                let mut spans = [Stored::Absent, Stored::Absent];
                if let Some(t) = &span_filters {
                    for (slot, kind) in spans.iter_mut().zip(FILTERED) {
                        if let Some(v) = t.get((s, kind as u8)).at(path)? {
                            // One claiming generations not sealed is not
                            // what this index's commits wrote.
                            *slot = SpanFilter::decode(v.value())
                                .filter(|f| s * SPAN_GENERATIONS + f.gens() <= sealed)
                                .map_or(Stored::Damaged, Stored::Read);
                        }
                    }
                }
                let mut blocks = Stored::Absent;
                if let Some(t) = &guid_blocks {
                    let entries = t
                        .range((s, 0)..=(s, u64::MAX))
                        .at(path)?
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .at(path)?;
                    if !entries.is_empty() {
                        blocks = SpanBlocks::from_entries(
                            entries.iter().map(|(k, v)| (k.value().1, v.value())),
                        )
                        .map_or(Stored::Damaged, Stored::Read);
                    }
                }
                let first = s * SPAN_GENERATIONS;
                for g in first..(first + SPAN_GENERATIONS).min(sealed) {
                    let i = g - first;
                    for (slot, kind) in FILTERED.into_iter().enumerate() {
                        let hashes = match (kind, &guid, &payload) {
                            (PostingKind::Guid, Some(t), _) => gen_hashes(t, g).at(path)?,
                            (PostingKind::Payload, _, Some(t)) => gen_hashes(t, g).at(path)?,
                            _ => Vec::new(),
                        };
                        let own = match &gen_filters {
                            Some(t) => match t.get((g, kind as u8)).at(path)? {
                                Some(v) => match GenFilter::decode(v.value()) {
                                    GenFilter::Unknown => Stored::Damaged,
                                    f => Stored::Read(f),
                                },
                                None => Stored::Absent,
                            },
                            None => Stored::Absent,
                        };
                        let mut add = |which, tally| tallies.entry(which).or_default().add(tally);
                        add(
                            Which::Generation(g, kind),
                            Tally::of(&hashes, &own, GenFilter::may_hold),
                        );
                        // A span filter answers for the generations it was
                        // built from.
                        if !matches!(&spans[slot], Stored::Read(f) if i >= f.gens()) {
                            add(
                                Which::Span(s, kind),
                                Tally::of(&hashes, &spans[slot], SpanFilter::may_hold),
                            );
                        }
                        if kind == PostingKind::Guid {
                            add(
                                Which::GuidBlocks(s, g),
                                Tally::of(&hashes, &blocks, |b: &SpanBlocks, h| {
                                    b.may_hold(i as usize, h)
                                }),
                            );
                        }
                    }
                }
            }
            problems.extend(
                tallies
                    .into_iter()
                    .filter_map(|(which, t)| problem(which, &t)),
            );
            Ok(problems)
        })
    }
}

/// The sentence for a filter's tally, if it is a problem.
fn problem(which: Which, t: &Tally) -> Option<String> {
    let repair = "`ccvault reindex` rebuilds it";
    if t.damaged {
        return Some(format!(
            "the {} is damaged (its bytes are not a filter's: looked up instead); {repair}",
            which.name()
        ));
    }
    if t.rejected == 0 {
        return None;
    }
    let consequence = match which {
        Which::GuidBlocks(..) => "`show` of such a GUID would miss its events there",
        _ => "a duplicate of such a key would be archived again",
    };
    Some(format!(
        "the {} rejects {} of the {} keys it holds: {consequence}; {repair}",
        which.name(),
        t.rejected,
        t.asked
    ))
}
