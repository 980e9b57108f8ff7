//! The writer's commits as a reader sees them, and duplicate lookups
//! across collected, committed and sealed generations.

use super::*;
use crate::filter::SPAN_GENERATIONS;
use crate::schema::{FILTERS, GUID_BLOCKS, SPAN_FILTERS};
use crate::{
    guid_hash, payload_hash, Checkpoint, Counters, Entry, Hit, PostingDigest, PostingKind,
    GENERATION_RECORDS, TIME_SLICE,
};

fn entry(offset: u64, payload: &[u8], guid: Option<&'static str>) -> Entry<'static> {
    Entry {
        offset,
        pos: offset as u32 * 10,
        payload_hash: payload_hash(payload),
        interaction_guid: guid,
        agent_id: Some("ag1"),
        time_ms: 1000 * offset as i64,
        timed: true,
        quarantined: guid.is_none(),
        payload_time: None,
    }
}

fn offsets(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.offset).collect()
}

/// One interaction with many records, a few payloads each many times,
/// across commits: the candidates of a payload are exactly its records,
/// committed and collected, in offset order (kept by payload hash for an
/// interaction this large: an import was quadratic in its size).
#[test]
fn an_interaction_of_many_records_has_exactly_its_payloads_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let payloads: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
    let mut offset = 0u64;
    let expect = |w: &mut IndexWriter, upto: u64| {
        for (k, p) in payloads.iter().enumerate() {
            let found = w
                .duplicate_candidates(payload_hash(p), Some("g-big"), None)
                .unwrap();
            let want: Vec<u64> = (0..upto).filter(|o| o % 4 == k as u64).collect();
            assert_eq!(offsets(&found), want, "payload {k} after {upto} records");
        }
    };
    for _commit in 0..3 {
        let mut w = index.begin().unwrap();
        for _ in 0..150 {
            let p = payloads[(offset % 4) as usize];
            w.add_all(&[entry(offset, p, Some("g-big"))]).unwrap();
            offset += 1;
            if offset.is_multiple_of(37) {
                expect(&mut w, offset);
            }
        }
        expect(&mut w, offset);
        index.commit(w, None).unwrap();
    }
    let mut w = index.begin().unwrap();
    expect(&mut w, offset);
}

#[test]
fn postings_counters_and_checkpoint_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let index = Index::open(&path).unwrap();
    assert_eq!(index.reader().unwrap().checkpoint().unwrap(), None);

    let mut w = index.begin().unwrap();
    w.add_all(&[entry(0, b"a", Some("g1")), entry(1, b"b", Some("g2"))])
        .unwrap();
    w.add_all(&[entry(2, b"c", Some("g1")), entry(3, b"junk", None)])
        .unwrap();
    let c_hash = payload_hash(b"c");
    assert_eq!(
        w.duplicate_candidates(c_hash, Some("g1"), None)
            .unwrap()
            .len(),
        1,
        "visible before commit"
    );
    assert!(w
        .duplicate_candidates(c_hash, Some("g2"), None)
        .unwrap()
        .is_empty());
    assert_eq!(
        w.duplicate_candidates(payload_hash(b"junk"), None, None)
            .unwrap()
            .len(),
        1
    );
    w.keep_untallied(2, 0);
    let cp = Checkpoint {
        next_offset: 4,
        segment: 0,
        pos: 40,
    };
    index.commit(w, Some(cp)).unwrap();

    // A second commit adds a second chunk for g1.
    let mut w = index.begin().unwrap();
    assert_eq!(
        w.duplicate_candidates(c_hash, Some("g1"), None)
            .unwrap()
            .len(),
        1,
        "committed"
    );
    w.add_all(&[entry(4, b"d", Some("g1"))]).unwrap();
    let cp2 = Checkpoint {
        next_offset: 5,
        segment: 0,
        pos: 50,
    };
    index.commit(w, Some(cp2)).unwrap();

    let r = index.reader().unwrap();
    assert_eq!(r.checkpoint().unwrap(), Some(cp2));
    let hits = offsets(&r.guid_hits("g1").unwrap());
    assert_eq!(hits, vec![0, 2, 4]);
    assert_eq!(r.agent_hits("ag1").unwrap().len(), 5);
    assert_eq!(r.quarantined().unwrap(), vec![Hit { offset: 3, pos: 30 }]);
    let c = r.counters().unwrap();
    assert_eq!(
        (
            c.records,
            c.events,
            c.quarantined,
            c.duplicates,
            c.interactions
        ),
        (5, 4, 1, 2, 2)
    );
    assert_eq!(c.max_time_ms, Some(4000));
    assert_eq!(r.seek_time(2500).unwrap(), 0);
    assert_eq!(r.seek_time(3500).unwrap(), 4);
    assert_eq!(r.seek_time(99_999).unwrap(), 5);
    let mut groups = Vec::new();
    r.for_each_guid_group(|_, hits| groups.push(hits.len()))
        .unwrap();
    groups.sort();
    assert_eq!(groups, vec![1, 3]);
    assert_eq!(r.posting(PostingKind::Guid, b"g1", 2).unwrap(), Some(20));
    assert_eq!(r.posting(PostingKind::Guid, b"g1", 1).unwrap(), None);
    assert_eq!(r.posting_digest(PostingKind::Guid).unwrap().count, 4);
    assert_eq!(r.posting_digest(PostingKind::Agent).unwrap().count, 5);
    assert_eq!(r.posting_digest(PostingKind::Payload).unwrap().count, 1);
    let mut want = PostingDigest::default();
    for (offset, pos, payload) in [(0, 0, b"a"), (2, 20, b"c"), (4, 40, b"d")] {
        want.add_key(PostingKind::Guid, b"g1", offset, pos, payload_hash(payload));
    }
    want.add_key(PostingKind::Guid, b"g2", 1, 10, payload_hash(b"b"));
    assert_eq!(r.posting_digest(PostingKind::Guid).unwrap(), want);
    // The payload hash a GUID posting keeps is part of the digest: one
    // wrong there hides the record's copies from the duplicate check.
    let mut wrong = PostingDigest::default();
    for (offset, pos, payload) in [(0, 0, b"a"), (2, 20, b"c"), (4, 40, b"x")] {
        wrong.add_key(PostingKind::Guid, b"g1", offset, pos, payload_hash(payload));
    }
    wrong.add_key(PostingKind::Guid, b"g2", 1, 10, payload_hash(b"b"));
    assert_ne!(r.posting_digest(PostingKind::Guid).unwrap(), wrong);
}

#[test]
fn weak_times_stay_out_of_the_time_range_but_bound_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let at = |offset: u64, time_ms: i64, timed: bool| Entry {
        time_ms,
        timed,
        ..entry(offset, &offset.to_le_bytes(), Some("g1"))
    };
    let mut w = index.begin().unwrap();
    w.add_all(&[at(0, 1000, true), at(1, 9000, false)]).unwrap();
    index.commit(w, None).unwrap();
    let mut w = index.begin().unwrap();
    w.add_all(&[at(2, 2000, true), at(3, 500, false)]).unwrap();
    index.commit(w, None).unwrap();
    let r = index.reader().unwrap();
    let c = r.counters().unwrap();
    assert_eq!((c.min_time_ms, c.max_time_ms), (Some(1000), Some(2000)));
    assert_eq!(
        (c.untimed, c.untimed_min_ms, c.untimed_max_ms),
        (2, Some(500), Some(9000))
    );
    // Record 1's weak 9000 ms is still found by a seek from 5000 ms.
    assert_eq!(r.seek_time(5000).unwrap(), 0);
}

#[test]
fn one_large_commit_still_seeks_by_time_slice() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let n = 3 * TIME_SLICE + 10;
    let entries: Vec<Entry> = (0..n)
        .map(|offset| Entry {
            offset,
            pos: 0,
            payload_hash: offset,
            interaction_guid: None,
            agent_id: None,
            time_ms: offset as i64 * 10,
            timed: true,
            quarantined: false,
            payload_time: None,
        })
        .collect();
    let mut w = index.begin().unwrap();
    w.add_all(&entries).unwrap();
    index.commit(w, None).unwrap();
    let r = index.reader().unwrap();
    // Times grow with offsets: a seek lands on the start of T's slice.
    for offset in [0, 5, TIME_SLICE - 1, TIME_SLICE, 2 * TIME_SLICE + 7, n - 1] {
        let t = offset as i64 * 10;
        assert_eq!(
            r.seek_time(t).unwrap(),
            offset / TIME_SLICE * TIME_SLICE,
            "seek to {t}"
        );
    }
}

#[test]
fn lookups_span_generations_and_sealed_ones_are_filtered() {
    const G: u64 = GENERATION_RECORDS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let commit = |index: &Index, entries: &[Entry]| {
        let mut w = index.begin().unwrap();
        w.add_all(entries).unwrap();
        index.commit(w, None).unwrap();
    };
    {
        let index = Index::open(&path).unwrap();
        commit(
            &index,
            &[
                entry(0, b"a", Some("g1")),
                entry(1, b"b", Some("g2")),
                entry(2, b"junk", None),
            ],
        );
        assert_eq!(index.current_filters().sealed(), 0);
        // Offsets need not be dense: these fall in generations 1 and 2.
        commit(&index, &[entry(G + 1, b"c", Some("g1"))]);
        assert_eq!(index.current_filters().sealed(), 1);
        commit(
            &index,
            &[
                entry(2 * G + 3, b"d", Some("g1")),
                entry(2 * G + 4, b"e", Some("g3")),
            ],
        );
        assert_eq!(index.current_filters().sealed(), 2);
    }
    // Reopened: the filters come back from the file.
    let index = Index::open(&path).unwrap();
    assert_eq!(index.current_filters().sealed(), 2);
    let mut w = index.begin().unwrap();
    let found = |w: &mut IndexWriter, payload: &[u8], guid| {
        offsets(
            &w.duplicate_candidates(payload_hash(payload), guid, None)
                .unwrap(),
        )
    };
    assert_eq!(found(&mut w, b"a", Some("g1")), vec![0]);
    assert_eq!(found(&mut w, b"c", Some("g1")), vec![G + 1]);
    assert_eq!(found(&mut w, b"d", Some("g1")), vec![2 * G + 3]);
    assert_eq!(found(&mut w, b"junk", None), vec![2]);
    assert!(found(&mut w, b"a", Some("g9")).is_empty());
    assert!(found(&mut w, b"zz", None).is_empty());
    // g1 is known in three generations: not a new interaction.
    w.add_all(&[entry(3 * G, b"f", Some("g1"))]).unwrap();
    index.commit(w, None).unwrap();

    let r = index.reader().unwrap();
    assert_eq!(r.counters().unwrap().interactions, 3);
    let hits = offsets(&r.guid_hits("g1").unwrap());
    assert_eq!(hits, vec![0, G + 1, 2 * G + 3, 3 * G]);
    let mut groups = Vec::new();
    r.for_each_guid_group(|h, hits| groups.push((h, hits.iter().map(|x| x.offset).collect())))
        .unwrap();
    let mut want: Vec<(u64, Vec<u64>)> = vec![
        (guid_hash("g1"), hits),
        (guid_hash("g2"), vec![1]),
        (guid_hash("g3"), vec![2 * G + 4]),
    ];
    want.sort();
    assert_eq!(groups, want, "one group per GUID, in hash order");
    // Split anywhere, the two ranges' groups are the whole's, in order.
    let in_range = |range: std::ops::RangeInclusive<u64>| {
        let mut out: Vec<(u64, Vec<u64>)> = Vec::new();
        r.for_each_guid_group_in(range, |h, hits| {
            out.push((h, hits.iter().map(|x| x.offset).collect()))
        })
        .unwrap();
        out
    };
    for (h, _) in &want {
        for split in [*h, h + 1] {
            let mut both = in_range(0..=split - 1);
            both.extend(in_range(split..=u64::MAX));
            assert_eq!(both, want, "split at {split}");
        }
    }
    let (lo, hi) = (5, 4);
    assert_eq!(in_range(lo..=hi), vec![], "an empty range");
    assert_eq!(r.posting_digest(PostingKind::Guid).unwrap().count, 6);
    assert_eq!(r.agent_hits("ag1").unwrap().len(), 7);
    assert_eq!(
        r.posting(PostingKind::Guid, b"g1", 2 * G + 3).unwrap(),
        Some((2 * G + 3) as u32 * 10)
    );
}

#[test]
fn an_uncommitted_batch_is_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    {
        let mut w = index.begin().unwrap();
        w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
        // dropped without commit
    }
    let r = index.reader().unwrap();
    assert!(r.guid_hits("g1").unwrap().is_empty());
    assert_eq!(r.counters().unwrap(), Counters::default());
}

#[test]
fn a_read_only_reader_sees_the_writers_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    let mut w = index.begin().unwrap();
    w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
    index.commit(w, Some(Checkpoint::default())).unwrap();
    let r = IndexReader::open(&path).unwrap();
    assert_eq!(r.guid_hits("g1").unwrap().len(), 1);
}

#[test]
fn tallies_replace_the_dropped_counts_and_a_repeated_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let r = index.reader().unwrap();
    assert_eq!(r.tally_offset().unwrap(), None);

    let mut w = index.begin().unwrap();
    w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
    w.add_tally(1, 3, 1);
    assert_eq!((w.counters().duplicates, w.counters().control), (3, 1));
    let cp = |next_offset| Checkpoint {
        next_offset,
        segment: 0,
        pos: 10 * next_offset as u32,
    };
    index.commit(w, Some(cp(2))).unwrap();
    let r = index.reader().unwrap();
    assert_eq!(r.tally_offset().unwrap(), Some(1));
    let c = r.counters().unwrap();
    assert_eq!((c.records, c.duplicates, c.control), (1, 3, 1));

    // The same tally indexed again (a tail indexed twice), then a later one:
    // running totals, so the last one read is the count.
    let mut w = index.begin().unwrap();
    w.add_tally(1, 3, 1);
    assert_eq!((w.counters().duplicates, w.counters().control), (3, 1));
    w.add_all(&[entry(2, b"b", Some("g1"))]).unwrap();
    w.add_tally(3, 8, 1);
    index.commit(w, Some(cp(4))).unwrap();
    let r = index.reader().unwrap();
    assert_eq!(r.tally_offset().unwrap(), Some(3));
    let c = r.counters().unwrap();
    assert_eq!((c.records, c.duplicates, c.control), (2, 8, 1));

    // A commit without a tally keeps the last one's offset and counts.
    let mut w = index.begin().unwrap();
    w.add_all(&[entry(4, b"c", None)]).unwrap();
    index.commit(w, Some(cp(5))).unwrap();
    let r = index.reader().unwrap();
    assert_eq!(r.tally_offset().unwrap(), Some(3));
    assert_eq!(r.counters().unwrap().duplicates, 8);
}

/// `verify` reads the posting digests through a second, small-cache handle
/// only when its checkpoint is the snapshot's: the premise is that equal
/// checkpoints mean equal postings, and a later commit moves the checkpoint.
#[test]
fn a_reopened_handle_has_the_snapshots_digests_until_a_commit_moves_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    let mut w = index.begin().unwrap();
    w.add_all(&[entry(0, b"a", Some("g1")), entry(1, b"j", None)])
        .unwrap();
    let first = Checkpoint {
        next_offset: 2,
        segment: 0,
        pos: 20,
    };
    index.commit(w, Some(first)).unwrap();
    let snapshot = IndexReader::open(&path).unwrap();
    let digests = |r: &IndexReader| {
        [PostingKind::Guid, PostingKind::Agent, PostingKind::Payload]
            .map(|k| r.posting_digest(k).unwrap())
    };
    let small = snapshot.reopen_with_cache(1 << 20).unwrap();
    assert_eq!(small.checkpoint().unwrap(), Some(first));
    assert_eq!(digests(&small), digests(&snapshot));

    let mut w = index.begin().unwrap();
    w.add_all(&[entry(2, b"b", Some("g2"))]).unwrap();
    index
        .commit(
            w,
            Some(Checkpoint {
                next_offset: 3,
                segment: 0,
                pos: 30,
            }),
        )
        .unwrap();
    let newer = snapshot.reopen_with_cache(1 << 20).unwrap();
    assert_ne!(newer.checkpoint().unwrap(), snapshot.checkpoint().unwrap());
    assert_ne!(digests(&newer), digests(&snapshot));
    assert_eq!(
        snapshot.checkpoint().unwrap(),
        Some(first),
        "the snapshot stays"
    );
}

/// A rebuild's scratch index counts no interaction record by record: its
/// seal counts the distinct GUIDs over every generation in one pass. The
/// count must be the one a live index keeps record by record, for GUIDs
/// that come back generations later, span a generation boundary within one
/// commit, or appear in a single generation.
#[test]
fn a_sealed_scratch_index_counts_the_interactions_a_live_one_does() {
    const G: u64 = GENERATION_RECORDS;
    const GUIDS: [&str; 12] = [
        "g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10", "g11",
    ];
    // 30 generations; GUID k appears in the generations that are multiples
    // of k + 1, so g0 is everywhere, g11 only in 0, 12 and 24.
    let mut commits: Vec<Vec<Entry>> = Vec::new();
    for gen in 0..30u64 {
        let mut batch = Vec::new();
        for (k, guid) in GUIDS.iter().enumerate() {
            if gen % (k as u64 + 1) == 0 {
                let offset = gen * G + k as u64;
                batch.push(entry(offset, guid.as_bytes(), Some(*guid)));
            }
        }
        commits.push(batch);
    }
    // One commit that crosses a boundary: g12 at the end of generation 30
    // and the start of 31, new both times it is seen in that commit.
    commits.push(vec![
        entry(31 * G - 1, b"x", Some("g12")),
        entry(31 * G, b"y", Some("g12")),
        entry(31 * G + 1, b"z", Some("g0")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut counts = Vec::new();
    for scratch in [false, true] {
        let path = dir.path().join(format!("scratch-{scratch}.redb"));
        let index = if scratch {
            Index::create_scratch(&path).unwrap()
        } else {
            Index::open(&path).unwrap()
        };
        for batch in &commits {
            let mut w = index.begin().unwrap();
            w.add_all(batch).unwrap();
            index.commit(w, None).unwrap();
        }
        if scratch {
            index.seal().unwrap();
        }
        let r = IndexReader::open(&path).unwrap();
        let c = r.counters().unwrap();
        assert_eq!(r.distinct_guids().unwrap(), 13);
        counts.push((c.interactions, c.records));
    }
    let records = commits.iter().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(counts, vec![(13, records), (13, records)]);
}

#[test]
fn compaction_runs_again_only_once_the_index_grew_by_a_quarter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let len = || std::fs::metadata(&path).unwrap().len();
    let guids: Vec<&'static str> = (0..4000)
        .map(|i| &*Box::leak(format!("guid-{i}").into_boxed_str()))
        .collect();
    let mut next = 0u64;
    // Commits of interleaved interactions, as an import makes: each one
    // rewrites pages of the last, leaving freed pages behind.
    let mut fill = |index: &Index, records: u64| {
        let mut w = index.begin().unwrap();
        let batch: Vec<Entry> = (next..next + records)
            .map(|offset| {
                entry(
                    offset,
                    &offset.to_le_bytes(),
                    Some(guids[offset as usize % 4000]),
                )
            })
            .collect();
        next += records;
        w.add_all(&batch).unwrap();
        index.commit(w, None).unwrap();
        next
    };
    let compacted_records =
        |index: &Index| index.reader().unwrap().meta(COMPACTED_RECORDS).unwrap();
    let mut index = Index::open(&path).unwrap();
    for _ in 0..20 {
        fill(&index, 2000);
    }
    let before = len();
    assert!(index.compact().unwrap(), "never compacted: compacts");
    assert!(len() < before, "{} bytes, {before} before", len());
    assert_eq!(compacted_records(&index), Some(40_000));

    // A session that adds less than a quarter: its freed pages stay for
    // later commits to reuse, and the whole file is not read again.
    fill(&index, 9_000);
    let grown = len();
    assert!(!index.compact().unwrap(), "grew by less than a quarter");
    assert_eq!(len(), grown);
    assert_eq!(compacted_records(&index), Some(40_000));

    // Reopened, the count of the last compaction is still known; once the
    // index holds a quarter more records it is compacted again.
    drop(index);
    let mut index = Index::open(&path).unwrap();
    assert!(!index.compact().unwrap());
    fill(&index, 1_000);
    assert!(
        index.compact().unwrap(),
        "50,000 records, 40,000 at the last compaction"
    );
    assert_eq!(compacted_records(&index), Some(50_000));
    let r = index.reader().unwrap();
    assert_eq!(r.counters().unwrap().records, next);
    let want = (0..next).filter(|o| o % 4000 == 7).count();
    assert_eq!(r.guid_hits("guid-7").unwrap().len(), want);
}

/// Records one a generation over 20 generations (two whole spans of 8 and
/// part of a third), each with its own GUID and payload, and one record
/// without a GUID in generation 1.
/// Generations a span filter covers.
const S: u64 = SPAN_GENERATIONS;
/// Generations [`one_record_a_generation`] and [`placed_generations`]
/// write: two spans and a half, so that a lookup meets whole spans, a
/// partial one and the generation being written (`N - 1`, never sealed).
const N: u64 = 2 * S + S / 2;

fn one_record_a_generation(index: &Index) {
    const G: u64 = GENERATION_RECORDS;
    for gen in 0..N {
        let guid: &'static str = Box::leak(format!("gen{gen}").into_boxed_str());
        let mut batch = vec![entry(gen * G, guid.as_bytes(), Some(guid))];
        if gen == 1 {
            batch.push(entry(G + 1, b"no guid", None));
        }
        let mut w = index.begin().unwrap();
        w.add_all(&batch).unwrap();
        index.commit(w, None).unwrap();
    }
}

/// Checks that every record of [`one_record_a_generation`] is found again
/// from the last generation, and returns the lookups a key the index does
/// not hold costs.
fn every_generation_found(index: &Index) -> Lookups {
    const G: u64 = GENERATION_RECORDS;
    let mut w = index.begin().unwrap();
    for gen in 0..N {
        let guid = format!("gen{gen}");
        let hits = w
            .duplicate_candidates(payload_hash(guid.as_bytes()), Some(&guid), None)
            .unwrap();
        assert_eq!(offsets(&hits), vec![gen * G], "{guid}");
    }
    let hits = w
        .duplicate_candidates(payload_hash(b"no guid"), None, None)
        .unwrap();
    assert_eq!(offsets(&hits), vec![G + 1]);
    let before = w.lookups();
    assert!(w
        .duplicate_candidates(payload_hash(b"gen3"), Some("absent"), None)
        .unwrap()
        .is_empty());
    let after = w.lookups();
    Lookups {
        keys: after.keys - before.keys,
        spans: after.spans - before.spans,
        probes: after.probes - before.probes,
        passed: after.passed - before.passed,
        seeks: after.seeks - before.seeks,
    }
}

#[test]
fn a_duplicate_many_generations_later_is_caught_and_new_keys_cost_a_probe_a_span() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    one_record_a_generation(&index);
    assert_eq!(index.current_filters().sealed(), N - 1);
    let absent = every_generation_found(&index);
    // Spans 0..S, S..2S and 2S..N-1 reject it: no generation filter
    // probed, and no B-tree lookup: generation N-1, not complete, was
    // written by this handle from its start, whose keys it knows.
    assert_eq!((absent.spans, absent.probes, absent.seeks), (3, 0, 0));
    drop(index);
    let index = Index::open(&path).unwrap();
    assert_eq!(
        every_generation_found(&index),
        Lookups { seeks: 1, ..absent },
        "the span filters come back from the file; generation N-1, written \
         before this handle, is looked up"
    );
}

#[test]
fn keys_of_generations_not_complete_skip_lookups_only_where_known() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let lookups_of = |w: &mut IndexWriter, payload: &[u8], guid: Option<&str>| {
        let before = w.lookups();
        let hits = offsets(
            &w.duplicate_candidates(payload_hash(payload), guid, None)
                .unwrap(),
        );
        (hits, w.lookups().seeks - before.seeks)
    };
    {
        let index = Index::open(&path).unwrap();
        let mut w = index.begin().unwrap();
        w.add_all(&[entry(0, b"a", Some("g1")), entry(1, b"junk", None)])
            .unwrap();
        index.commit(w, None).unwrap();
        // Collected, then dropped: never committed, never known.
        let mut w = index.begin().unwrap();
        w.add_all(&[entry(2, b"b", Some("g2"))]).unwrap();
        drop(w);

        let mut w = index.begin().unwrap();
        assert_eq!(lookups_of(&mut w, b"a", Some("g1")), (vec![0], 1));
        assert_eq!(lookups_of(&mut w, b"junk", None), (vec![1], 1));
        assert_eq!(lookups_of(&mut w, b"b", Some("g2")), (vec![], 0));
        assert_eq!(lookups_of(&mut w, b"x", Some("g3")), (vec![], 0));
        assert_eq!(lookups_of(&mut w, b"y", None), (vec![], 0));
        // A new interaction is still counted once, and g1 is not new.
        w.add_all(&[entry(3, b"c", Some("g3")), entry(4, b"d", Some("g1"))])
            .unwrap();
        index.commit(w, None).unwrap();
        let mut w = index.begin().unwrap();
        assert_eq!(lookups_of(&mut w, b"c", Some("g3")), (vec![3], 1));
        assert_eq!(index.reader().unwrap().counters().unwrap().interactions, 2);
    }
    // Another handle: generation 0 holds keys it did not see written.
    let index = Index::open(&path).unwrap();
    let mut w = index.begin().unwrap();
    assert_eq!(lookups_of(&mut w, b"x", Some("g9")), (vec![], 1));
    assert_eq!(lookups_of(&mut w, b"d", Some("g1")), (vec![4], 1));
    assert_eq!(lookups_of(&mut w, b"a", Some("g1")), (vec![0], 0), "cached");
    assert_eq!(lookups_of(&mut w, b"c", Some("g3")), (vec![3], 1));
    assert_eq!(lookups_of(&mut w, b"y", None), (vec![], 1));
}

#[test]
fn an_index_without_span_filters_dedupes_exactly_and_gets_them_a_span_a_commit() {
    const G: u64 = GENERATION_RECORDS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    one_record_a_generation(&index);
    // As an index written before span filters: no such table.
    let txn = index.db.begin_write().unwrap();
    assert!(txn.delete_table(SPAN_FILTERS).unwrap());
    txn.commit().unwrap();
    drop(index);

    let index = Index::open(&path).unwrap();
    // The generations each span's filter covers (the same for both tables).
    let spans = |index: &Index| {
        let f = index.current_filters();
        (0..3)
            .map(|s| {
                let gens = |kind| f.span_filter(s, kind).map(|f| f.gens());
                assert_eq!(gens(PostingKind::Guid), gens(PostingKind::Payload));
                gens(PostingKind::Guid)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(spans(&index), vec![None, None, None]);
    let absent = every_generation_found(&index);
    assert_eq!((absent.spans, absent.probes), (0, N - 1), "one by one");

    // The commit that seals generation N-1 fills the newest span (2S..N)
    // and the oldest missing one; the next seal fills the other.
    let mut w = index.begin().unwrap();
    w.add_all(&[entry(N * G, b"next", Some("next"))]).unwrap();
    index.commit(w, None).unwrap();
    assert_eq!(spans(&index), vec![Some(S), None, Some(S / 2)]);
    let mut w = index.begin().unwrap();
    w.add_all(&[entry((N + 1) * G, b"after", Some("after"))])
        .unwrap();
    index.commit(w, None).unwrap();
    assert_eq!(spans(&index), vec![Some(S), Some(S), Some(S / 2 + 1)]);
    let absent = every_generation_found(&index);
    assert_eq!((absent.spans, absent.probes), (3, 0));

    // A damaged span filter is ignored: that span is probed one by one.
    let txn = index.db.begin_write().unwrap();
    txn.open_table(SPAN_FILTERS)
        .unwrap()
        .insert(
            (1u64, PostingKind::Guid as u8),
            &[1u8, 0, 0, 0, 9, 0, 0, 0][..],
        )
        .unwrap();
    txn.commit().unwrap();
    drop(index);
    let index = Index::open(&path).unwrap();
    let absent = every_generation_found(&index);
    assert_eq!((absent.spans, absent.probes), (2, S));
}

/// The generations a reader of `index` looks `guid` up in, after checking
/// that it finds exactly the record of [`one_record_a_generation`] (or of
/// a later one-record generation) there.
fn guid_looked_up_in(index: &Index, guid: &str, gens: u64) -> Vec<u64> {
    let r = index.reader().unwrap();
    let want: Vec<u64> = guid
        .strip_prefix("gen")
        .and_then(|g| g.parse::<u64>().ok())
        .map(|g| g * GENERATION_RECORDS)
        .into_iter()
        .collect();
    assert_eq!(offsets(&r.guid_hits(guid).unwrap()), want, "{guid}");
    assert_eq!(r.generations(PostingKind::Guid).unwrap(), gens);
    r.guid_generations(guid_hash(guid), gens).unwrap()
}

#[test]
fn a_guid_is_looked_up_only_in_the_generations_its_blocks_admit() {
    const G: u64 = GENERATION_RECORDS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    one_record_a_generation(&index);
    // Generations 0..N-1 sealed; N-1 is not: always looked up.
    for g in 0..N {
        let want = if g == N - 1 {
            vec![N - 1]
        } else {
            vec![g, N - 1]
        };
        assert_eq!(guid_looked_up_in(&index, &format!("gen{g}"), N), want);
    }
    assert_eq!(guid_looked_up_in(&index, "absent", N), vec![N - 1]);

    // A damaged entry (span 1 has one block: its only entry) leaves its
    // span's generations looked up one by one, the others still skipped.
    let txn = index.db.begin_write().unwrap();
    txn.open_table(GUID_BLOCKS)
        .unwrap()
        .insert((1u64, u64::MAX), &[0u8; 9][..])
        .unwrap();
    txn.commit().unwrap();
    let mut want: Vec<u64> = (S..2 * S).collect();
    want.push(N - 1);
    assert_eq!(guid_looked_up_in(&index, "absent", N), want);
    want.insert(0, 3);
    assert_eq!(guid_looked_up_in(&index, "gen3", N), want);

    // As an index written before the table: every generation, same answers.
    let txn = index.db.begin_write().unwrap();
    assert!(txn.delete_table(GUID_BLOCKS).unwrap());
    txn.commit().unwrap();
    for guid in ["gen0".to_string(), format!("gen{}", S + 4), "absent".into()] {
        assert_eq!(
            guid_looked_up_in(&index, &guid, N),
            (0..N).collect::<Vec<_>>()
        );
    }
    drop(index);

    // A writer that seals generation N-1 builds its span's entries (2S..N)
    // again from by_guid; spans 0 and 1 stay looked up one by one.
    let index = Index::open(&path).unwrap();
    let mut w = index.begin().unwrap();
    let next: &'static str = Box::leak(format!("gen{N}").into_boxed_str());
    w.add_all(&[entry(N * G, next.as_bytes(), Some(next))])
        .unwrap();
    index.commit(w, None).unwrap();
    let mut want: Vec<u64> = (0..2 * S).collect();
    want.push(N);
    assert_eq!(guid_looked_up_in(&index, "absent", N + 1), want);
    want.insert(2 * S as usize, 2 * S + 1);
    let in_the_third_span = format!("gen{}", 2 * S + 1);
    assert_eq!(guid_looked_up_in(&index, &in_the_third_span, N + 1), want);
}

#[test]
fn a_writer_begun_after_a_commit_being_written_sees_it_and_rebases_onto_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let index = Index::open(&path).unwrap();
    let mut first = index.begin().unwrap();
    first
        .add_all(&[entry(0, b"a", Some("g1")), entry(1, b"junk", None)])
        .unwrap();
    let first = std::sync::Arc::new(first);
    let mut next = index.begin_after(&first).unwrap();
    // Before `first` is written: its entries count as committed.
    assert_eq!(
        offsets(
            &next
                .duplicate_candidates(payload_hash(b"a"), Some("g1"), None)
                .unwrap()
        ),
        vec![0]
    );
    assert_eq!(
        offsets(
            &next
                .duplicate_candidates(payload_hash(b"junk"), None, None)
                .unwrap()
        ),
        vec![1]
    );
    // g1 is not a new interaction; g2 is.
    next.add_all(&[entry(2, b"b", Some("g1")), entry(3, b"c", Some("g2"))])
        .unwrap();
    assert_eq!(next.counters().interactions, 2);
    assert_eq!(next.counters().records, 4);
    let cp = |n: u64| Checkpoint {
        next_offset: n,
        segment: 0,
        pos: n as u32 * 10,
    };
    let written = std::thread::scope(|s| {
        s.spawn(|| index.write_collected(&first, Some(cp(2))))
            .join()
            .unwrap()
    })
    .unwrap();
    drop(first);
    next.rebase(&index, written).unwrap();
    assert_eq!(
        offsets(
            &next
                .duplicate_candidates(payload_hash(b"a"), Some("g1"), None)
                .unwrap()
        ),
        vec![0],
        "now from the snapshot"
    );
    index.commit(next, Some(cp(4))).unwrap();
    let r = index.reader().unwrap();
    assert_eq!(r.checkpoint().unwrap(), Some(cp(4)));
    assert_eq!(offsets(&r.guid_hits("g1").unwrap()), vec![0, 2]);
    let c = r.counters().unwrap();
    assert_eq!((c.records, c.interactions), (4, 2));
}

/// Twenty generations, one commit each, each with one interaction whose
/// GUID is placed (8x8's shape: created at 0x1000 + the generation) and one
/// record without a GUID placed at its own time (the generation × 1000).
fn placed_generations(index: &Index) {
    const G: u64 = GENERATION_RECORDS;
    for gen in 0..N {
        let guid: &'static str = Box::leak(format!("int-{:x}-t", 0x1000 + gen).into_boxed_str());
        let event: &'static [u8] =
            Box::leak(format!("event {gen}").into_bytes().into_boxed_slice());
        let batch = [
            entry(gen * G, guid.as_bytes(), Some(guid)),
            Entry {
                quarantined: false,
                payload_time: Some(gen as i64 * 1000),
                ..entry(gen * G + 1, event, None)
            },
        ];
        let mut w = index.begin().unwrap();
        w.add_all(&batch).unwrap();
        index.commit(w, None).unwrap();
    }
}

#[test]
fn placed_keys_skip_sealed_generations_and_stay_exact_without_filters() {
    const G: u64 = GENERATION_RECORDS;
    for budget in [FILTER_BUDGET, 0] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let mut index = Index::open(&path).unwrap();
        index.filter_budget = budget;
        placed_generations(&index);
        let filters = index.current_filters();
        assert_eq!(filters.sealed(), N - 1);
        for kind in [PostingKind::Guid, PostingKind::Payload] {
            assert_eq!(filters.has_filter(3, kind), budget > 0, "{budget}");
            assert_eq!(filters.span_filter(0, kind).is_some(), budget > 0);
        }
        let mut w = index.begin().unwrap();
        for gen in 0..N {
            let guid = format!("int-{:x}-t", 0x1000 + gen);
            let hits = w
                .duplicate_candidates(payload_hash(guid.as_bytes()), Some(&guid), None)
                .unwrap();
            assert_eq!(offsets(&hits), vec![gen * G], "{guid}, budget {budget}");
            let event = format!("event {gen}");
            let at = Some(gen as i64 * 1000);
            let hits = w
                .duplicate_candidates(payload_hash(event.as_bytes()), None, at)
                .unwrap();
            assert_eq!(offsets(&hits), vec![gen * G + 1], "{event}");
        }
        // A new interaction and an event at a new time: no sealed
        // generation is asked, filter or B-tree (generation N-1, open, was
        // written by this handle, which knows its keys).
        let before = w.lookups();
        let new_guid = w.duplicate_candidates(payload_hash(b"new"), Some("int-2000-t"), None);
        let new_event = w.duplicate_candidates(payload_hash(b"new event"), None, Some(99_000));
        assert!(new_guid.unwrap().is_empty() && new_event.unwrap().is_empty());
        let after = w.lookups();
        let asked = (
            after.spans - before.spans,
            after.probes - before.probes,
            after.seeks - before.seeks,
        );
        assert_eq!(asked, (0, 0, 0));
        // A late event of generation 3's interaction widens generation
        // N-1's range, then generation N seals it.
        w.add_all(&[entry((N - 1) * G + 5, b"late", Some("int-1003-t"))])
            .unwrap();
        index.commit(w, None).unwrap();
        let mut w = index.begin().unwrap();
        w.add_all(&[entry(N * G, b"next", Some("int-2001-t"))])
            .unwrap();
        index.commit(w, None).unwrap();
        drop(index);
        // Another handle: the ranges come back from the file.
        let index = Index::open(&path).unwrap();
        let mut w = index.begin().unwrap();
        let guid = Some("int-1003-t");
        let first = w.duplicate_candidates(payload_hash(b"int-1003-t"), guid, None);
        assert_eq!(offsets(&first.unwrap()), vec![3 * G]);
        let late = w.duplicate_candidates(payload_hash(b"late"), guid, None);
        assert_eq!(offsets(&late.unwrap()), vec![(N - 1) * G + 5]);
        let before = w.lookups();
        assert!(w
            .duplicate_candidates(payload_hash(b"x"), Some("int-3000-t"), None)
            .unwrap()
            .is_empty());
        assert_eq!(w.lookups().probes - before.probes, 0);
        let counters = index.reader().unwrap().counters().unwrap();
        assert_eq!(counters.interactions, N + 1, "the late event's is not new");
    }
}

/// `verify`'s check of the stored filters: clean on an index as its commits
/// wrote it, and naming each filter whose bytes were changed behind the
/// index's back so that it rejects a key it holds, or is not a filter.
#[test]
fn stored_filters_that_reject_their_keys_or_are_damaged_are_named() {
    let check =
        |path: &std::path::Path| IndexReader::open(path).unwrap().filter_problems().unwrap();
    // The fingerprints (after the 20-byte descriptor) or blocks (after an
    // 8-byte head) inverted: a key's answer then comes out wrong.
    let inverted = |bytes: &[u8], head: usize| {
        let mut b = bytes.to_vec();
        b.iter_mut().skip(head).for_each(|x| *x ^= 0xff);
        b
    };
    let zeroed = |bytes: &[u8], head: usize| {
        let mut b = bytes.to_vec();
        b.iter_mut().skip(head).for_each(|x| *x = 0);
        b
    };
    use redb::ReadableTable;
    type Tamper = Box<dyn Fn(&redb::WriteTransaction)>;
    let cases: Vec<(Tamper, Vec<&str>)> = vec![
        (
            Box::new(move |txn| {
                let mut t = txn.open_table(FILTERS).unwrap();
                let old = t
                    .get((3, PostingKind::Guid as u8))
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                t.insert((3, PostingKind::Guid as u8), inverted(&old, 20).as_slice())
                    .unwrap();
            }),
            vec!["the `by_guid` filter of generation 3 rejects 1 of the 1 keys it holds"],
        ),
        (
            Box::new(|txn| {
                let mut t = txn.open_table(FILTERS).unwrap();
                // Stored empty: "no key of this table in the generation".
                t.insert((5, PostingKind::Payload as u8), &[][..]).unwrap();
                t.insert((6, PostingKind::Payload as u8), &[1u8, 2, 3][..])
                    .unwrap();
            }),
            vec![
                "the `by_payload` filter of generation 5 rejects 1 of the 1 keys it holds",
                "the `by_payload` filter of generation 6 is damaged",
            ],
        ),
        (
            Box::new(move |txn| {
                let mut t = txn.open_table(SPAN_FILTERS).unwrap();
                let old = t
                    .get((0, PostingKind::Guid as u8))
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                t.insert((0, PostingKind::Guid as u8), zeroed(&old, 8).as_slice())
                    .unwrap();
            }),
            vec![Box::leak(
                format!("the `by_guid` span filter of span 0 rejects {S} of the {S} keys it holds")
                    .into_boxed_str(),
            )],
        ),
        (
            Box::new(move |txn| {
                let mut t = txn.open_table(GUID_BLOCKS).unwrap();
                let old: Vec<((u64, u64), Vec<u8>)> = t
                    .range((1, 0)..=(1, u64::MAX))
                    .unwrap()
                    .map(|e| {
                        let (k, v) = e.unwrap();
                        (k.value(), v.value().to_vec())
                    })
                    .collect();
                for (k, v) in old {
                    t.insert(k, zeroed(&v, 8).as_slice()).unwrap();
                }
                // And span 0's entries of another shape.
                t.insert((0, u64::MAX), &[7u8; 9][..]).unwrap();
            }),
            vec![
                Box::leak(
                    format!("the GUID blocks of span 1 (generation {S}) rejects 1 of the 1 keys it holds")
                        .into_boxed_str(),
                ),
                Box::leak(
                    format!("the GUID blocks of span 1 (generation {}) rejects 1 of", 2 * S - 1)
                        .into_boxed_str(),
                ),
                "`show` of such a GUID would miss its events there",
                "the GUID blocks of span 0 (generation 0) is damaged",
            ],
        ),
    ];
    for (tamper, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        placed_generations(&Index::open(&path).unwrap());
        assert_eq!(check(&path), Vec::<String>::new());
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        tamper(&txn);
        txn.commit().unwrap();
        drop(db);
        let problems = check(&path).join("\n");
        for n in named {
            assert!(problems.contains(n), "{n}\nin\n{problems}");
        }
        let last = format!("generation {}", N - 1);
        assert!(!problems.contains(&last), "{problems}");
    }
}

#[test]
fn damaged_places_add_up_across_commits_and_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    assert_eq!(
        index.reader().unwrap().counters().unwrap().first_damage,
        None
    );
    let mut w = index.begin().unwrap();
    w.add_all(&[entry(0, b"a", Some("g1"))]).unwrap();
    w.add_damage(2, 700, 50);
    index.commit(w, Some(Checkpoint::default())).unwrap();
    // A commit that meets none keeps them; the next ones add up.
    let w = index.begin().unwrap();
    index.commit(w, Some(Checkpoint::default())).unwrap();
    let mut w = index.begin().unwrap();
    w.add_damage(1, 900, 10);
    w.add_damage(3, 0, 5);
    index.commit(w, Some(Checkpoint::default())).unwrap();
    let c = index.reader().unwrap().counters().unwrap();
    assert_eq!(
        (c.damaged_places, c.damaged_bytes, c.first_damage),
        (3, 65, Some((1, 900)))
    );
}
