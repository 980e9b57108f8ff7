//! A second stage for the records a scan reads: the caller's thread reads
//! the log (decompression, framing, checksums) and hands the records, in
//! chunks, to a thread that makes the rows, so that both cores work
//! (the events table's writer thread is the third stage).
//!
//! Invariants: the stage sees every record it is given once, in the order
//! given, so what it makes is the same as on one thread (the exports stay
//! byte-identical); a chunk is a copy of its records (their texts in one
//! buffer, their payloads in another), and emptied chunks come back for
//! reuse (fresh memory costs more than the copy): at most [`CHUNKS`] are
//! ever made, each with room for [`CHUNK_BYTES`] of texts and as many of
//! payloads from the start, so none grows by copying (only one holding a
//! record larger than that does); a record's texts stay `str` in the
//! chunk, so they are not checked as UTF-8 again; the stage is given a
//! chunk's records at once (so it can reuse what it parses into over
//! them); the first error of the stage ends the run, and the caller gets
//! it from its next [`Stage::push`] or from [`Stage::finish`].
//!
//! [`staged_rows`] is the same split for the rows of the tables made
//! from the projections (legs, agent spans): the caller's thread reads
//! and decodes them, a second thread hashes and pushes them, in the order
//! given, and its first error is the one reported.

use std::ops::Range;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use ccvault_store::{RecordKind, RecordRef, SourceKind};

use crate::error::{io, ExportError, Result};

/// Bytes of records a chunk holds before it goes to the stage.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued for the stage at most.
const QUEUED_CHUNKS: usize = 4;
/// Chunks made at most: the queued ones, the one the stage reads and the
/// one being filled. Past that the caller waits for an emptied one, as it
/// would wait for room in the queue. Why: a chunk made whenever none had
/// come back yet, grown by doubling, was ~5 % of a 1M Parquet export's
/// samples in page faults and copies on the reading thread
/// (docs/BENCHMARKS.md, "Parquet export").
const CHUNKS: usize = QUEUED_CHUNKS + 2;

/// Records copied into two buffers: their texts, which are `str`, and
/// their payloads, which may be any bytes. The texts kept apart as a
/// `String` are handed back as `str` without the UTF-8 pass over them that
/// a shared byte buffer needed (~1 % of a 1M Parquet export's samples,
/// docs/BENCHMARKS.md, "Where the 1M export's CPU goes at `1684e20`").
#[derive(Default)]
struct Chunk {
    texts: String,
    bytes: Vec<u8>,
    records: Vec<Held>,
}

/// Where a staged record lies in the log, as far as its reader knew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    /// Its segment (the segment's first offset).
    pub segment: Option<u64>,
    /// Its byte position in its segment.
    pub pos: Option<u32>,
}

/// A record of a [`Chunk`]: its texts as ranges of the chunk's `texts`,
/// its payload as a range of its `bytes`.
struct Held {
    at: At,
    kind: RecordKind,
    offset: u64,
    ingest_ms: i64,
    quarantined: bool,
    source_kind: SourceKind,
    line: u64,
    source: Range<usize>,
    message_id: Range<usize>,
    publish_time: Range<usize>,
    quarantine_reason: Range<usize>,
    payload: Range<usize>,
}

impl Chunk {
    fn new() -> Chunk {
        // The texts are the smaller part (~80 bytes of a ~500-byte event),
        // but a chunk is sent before either buffer passes CHUNK_BYTES:
        // capacity never touched costs no memory.
        Chunk {
            texts: String::with_capacity(CHUNK_BYTES),
            bytes: Vec::with_capacity(CHUNK_BYTES),
            records: Vec::new(),
        }
    }

    /// Bytes held: the texts' and the payloads'.
    fn len(&self) -> usize {
        self.texts.len() + self.bytes.len()
    }

    /// The bytes [`Chunk::push`] adds for `rec`.
    fn needs(rec: &RecordRef<'_>) -> usize {
        rec.source.len()
            + rec.message_id.len()
            + rec.publish_time.len()
            + rec.quarantine_reason.len()
            + rec.payload.len()
    }

    fn push(&mut self, at: At, rec: &RecordRef<'_>) {
        let texts = &mut self.texts;
        let mut put = |t: &str| {
            let start = texts.len();
            texts.push_str(t);
            start..texts.len()
        };
        let (source, message_id, publish_time, quarantine_reason) = (
            put(rec.source),
            put(rec.message_id),
            put(rec.publish_time),
            put(rec.quarantine_reason),
        );
        let start = self.bytes.len();
        self.bytes.extend_from_slice(rec.payload);
        let held = Held {
            at,
            kind: rec.kind,
            offset: rec.offset,
            ingest_ms: rec.ingest_ms,
            quarantined: rec.quarantined,
            source_kind: rec.source_kind,
            line: rec.line,
            source,
            message_id,
            publish_time,
            quarantine_reason,
            payload: start..self.bytes.len(),
        };
        self.records.push(held);
    }

    /// The records, borrowed from the chunk.
    fn records(&self) -> Records<'_> {
        Records {
            texts: &self.texts,
            bytes: &self.bytes,
            held: self.records.iter(),
        }
    }

    fn clear(&mut self) {
        self.texts.clear();
        self.bytes.clear();
        self.records.clear();
    }
}

/// The records of one chunk, in the order pushed, with where they are in
/// the log when known.
pub struct Records<'c> {
    texts: &'c str,
    bytes: &'c [u8],
    held: std::slice::Iter<'c, Held>,
}

impl<'c> Iterator for Records<'c> {
    type Item = (At, RecordRef<'c>);

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.held.next()?;
        // Each range was cut at the ends of a `str` pushed whole, so it
        // lies on char boundaries; one that did not would read as empty
        // rather than panic.
        let text = |r: &Range<usize>| self.texts.get(r.clone()).unwrap_or("");
        let rec = RecordRef {
            kind: h.kind,
            offset: h.offset,
            ingest_ms: h.ingest_ms,
            quarantined: h.quarantined,
            source_kind: h.source_kind,
            source: text(&h.source),
            line: h.line,
            message_id: text(&h.message_id),
            publish_time: text(&h.publish_time),
            quarantine_reason: text(&h.quarantine_reason),
            payload: self.bytes.get(h.payload.clone()).unwrap_or_default(),
        };
        Some((h.at, rec))
    }
}

/// How a stage takes the records of one chunk, each with where it is in
/// the log when known. A chunk at a time, so that what the stage
/// parses a record into (a ~0.9 KB `Event` borrowing the chunk) can be made
/// once per chunk and reused for each of its records.
pub type Visit<S> = for<'c> fn(&mut S, Records<'c>) -> Result<()>;

/// A thread that owns `S` and calls `visit` with each record pushed.
pub struct Stage<S> {
    name: String,
    chunk: Chunk,
    chunks: Option<SyncSender<Chunk>>,
    spare: Receiver<Chunk>,
    /// Chunks made so far (at most [`CHUNKS`]).
    made: usize,
    thread: Option<JoinHandle<Result<S>>>,
}

impl<S: Send + 'static> Stage<S> {
    pub fn spawn(name: &str, mut state: S, visit: Visit<S>) -> Result<Stage<S>> {
        let (tx, rx) = sync_channel::<Chunk>(QUEUED_CHUNKS);
        let (spare_tx, spare) = channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for mut chunk in rx {
                    visit(&mut state, chunk.records())?;
                    chunk.clear();
                    // The caller may be finishing: then the chunk just goes.
                    let _ = spare_tx.send(chunk);
                }
                Ok(state)
            })
            .map_err(io("cannot start the thread", name))?;
        Ok(Stage {
            name: name.to_owned(),
            chunk: Chunk::new(),
            chunks: Some(tx),
            spare,
            made: 1,
            thread: Some(thread),
        })
    }

    /// Hands one record to the stage (a copy: `rec` may be reused at once).
    pub fn push(&mut self, at: At, rec: &RecordRef<'_>) -> Result<()> {
        let filled = self.chunk.len();
        if filled > 0 && filled + Chunk::needs(rec) > CHUNK_BYTES {
            let full = std::mem::take(&mut self.chunk);
            self.send(full)?;
            self.chunk = self.next_chunk()?;
        }
        self.chunk.push(at, rec);
        Ok(())
    }

    /// An emptied chunk, a new one while fewer than [`CHUNKS`] were made,
    /// or else the next one the stage empties.
    fn next_chunk(&mut self) -> Result<Chunk> {
        if let Ok(chunk) = self.spare.try_recv() {
            return Ok(chunk);
        }
        if self.made < CHUNKS {
            self.made += 1;
            return Ok(Chunk::new());
        }
        match self.spare.recv() {
            Ok(chunk) => Ok(chunk),
            Err(_) => self.stopped(),
        }
    }

    fn send(&mut self, chunk: Chunk) -> Result<()> {
        let sent = match &self.chunks {
            Some(tx) => tx.send(chunk).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.stopped()
    }

    /// The error of a stage that stopped before it was told to: its own.
    fn stopped<T>(&mut self) -> Result<T> {
        self.join().and_then(|_| {
            Err(ExportError::Refused(format!(
                "the thread {} ended early",
                self.name
            )))
        })
    }

    fn join(&mut self) -> Result<S> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ExportError::Refused(format!(
                "the thread {} failed",
                self.name
            ))),
            None => Err(ExportError::Refused(format!(
                "the thread {} was already finished",
                self.name
            ))),
        }
    }

    /// Waits until the stage has seen every record pushed; returns its state.
    pub fn finish(mut self) -> Result<S> {
        let last = std::mem::take(&mut self.chunk);
        if !last.records.is_empty() {
            self.send(last)?;
        }
        self.join()
    }
}

/// Rows handed to [`staged_rows`]'s thread at a time.
const ROWS_A_CHUNK: usize = 512;

/// Runs `feed` on the caller's thread and `work` on a thread of its own
/// (named `name`), which owns `state` and gets every row `feed` hands out,
/// in order; returns the state. Why: the `interactions` step was bound by
/// its one thread, which read and decoded the legs and also hashed and
/// pushed them (docs/BENCHMARKS.md, "The legs hashed and pushed on a
/// thread of their own"). The first error of `work` ends the run and is
/// the one returned (`feed` then sees its rows refused); else `feed`'s.
pub fn staged_rows<K: Send, R: Send, S: Send>(
    name: &str,
    state: S,
    feed: impl FnOnce(&mut dyn FnMut(K, R) -> Result<()>) -> Result<()>,
    mut work: impl FnMut(&mut S, K, R) -> Result<()> + Send,
) -> Result<S> {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<(K, R)>>(QUEUED_CHUNKS);
        let (spare_tx, spare) = channel::<Vec<(K, R)>>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, move || {
                let mut state = state;
                for mut chunk in rx {
                    for (key, row) in chunk.drain(..) {
                        work(&mut state, key, row)?;
                    }
                    // The caller may be finishing: then the chunk just goes.
                    let _ = spare_tx.send(chunk);
                }
                Ok(state)
            })
            .map_err(io("cannot start the thread", name))?;
        let refused = || ExportError::Refused(format!("the thread {name} ended early"));
        let mut chunk = Vec::with_capacity(ROWS_A_CHUNK);
        let fed = feed(&mut |key, row| {
            chunk.push((key, row));
            if chunk.len() >= ROWS_A_CHUNK {
                let next = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(ROWS_A_CHUNK));
                tx.send(std::mem::replace(&mut chunk, next))
                    .map_err(|_| refused())?;
            }
            Ok(())
        });
        let sent = match fed {
            Ok(()) if !chunk.is_empty() => tx.send(chunk).map_err(|_| refused()),
            other => other,
        };
        drop(tx);
        let done = thread
            .join()
            .unwrap_or_else(|_| Err(ExportError::Refused(format!("the thread {name} panicked"))));
        match (done, sent) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(state), Ok(())) => Ok(state),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_rows_come_once_in_order_and_the_first_error_is_the_threads() {
        let n = 3 * ROWS_A_CHUNK + 7;
        let seen = staged_rows(
            "test-rows",
            Vec::new(),
            |f| (0..n).try_for_each(|i| f(i, i * 2)),
            |seen: &mut Vec<(usize, usize)>, k, r| {
                seen.push((k, r));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..n).map(|i| (i, i * 2)).collect::<Vec<_>>());

        // The thread's error, not the feed's refusal, reaches the caller;
        // the feed stops soon after.
        let mut fed = 0;
        let e = staged_rows(
            "test-rows",
            0usize,
            |f| {
                (0..100 * ROWS_A_CHUNK).try_for_each(|i| {
                    fed += 1;
                    f(i, ())
                })
            },
            |count: &mut usize, k, ()| {
                *count += 1;
                match k {
                    700 => Err(ExportError::Refused("row 700 is bad".into())),
                    _ => Ok(()),
                }
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "row 700 is bad");
        assert!(fed < 20 * ROWS_A_CHUNK, "{fed}");

        // The feed's own error, when the thread had none.
        let e = staged_rows(
            "test-rows",
            (),
            |f| {
                f(1, ())?;
                Err(ExportError::Refused("the feed failed".into()))
            },
            |_, _: i32, ()| Ok(()),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the feed failed");
    }

    #[test]
    fn every_record_once_in_order_and_the_first_error_ends_it() {
        // ~10 MiB: more chunks than are ever made, so emptied ones are
        // waited for; one record larger than a chunk.
        let payloads: Vec<String> = (0..5000)
            .map(|i| match i {
                2500 => format!("{i}{}", "0".repeat(3 << 20)),
                _ => format!("{i:0>2000}"),
            })
            .collect();
        let rec = |i: usize| RecordRef {
            kind: RecordKind::Message,
            offset: i as u64,
            ingest_ms: 7,
            quarantined: i.is_multiple_of(3),
            source_kind: SourceKind::Mqtt,
            source: "t/event-v1/all",
            line: 0,
            // Not ASCII: the chunk's texts are handed back as they came.
            message_id: "mé",
            publish_time: "",
            quarantine_reason: "",
            payload: payloads[i].as_bytes(),
        };
        let visit = |seen: &mut Vec<(u64, bool, String)>, records: Records<'_>| {
            for (at, r) in records {
                assert_eq!(
                    at.pos.map(u64::from),
                    r.offset.is_multiple_of(2).then_some(r.offset)
                );
                assert_eq!(at.segment, at.pos.map(|_| 1000));
                assert_eq!(
                    (r.source, r.message_id, r.ingest_ms),
                    ("t/event-v1/all", "mé", 7)
                );
                let payload = String::from_utf8(r.payload.to_vec()).unwrap();
                seen.push((r.offset, r.quarantined, payload));
            }
            Ok(())
        };
        let mut stage = Stage::spawn("test", Vec::new(), visit).unwrap();
        for i in 0..payloads.len() {
            let pos = i.is_multiple_of(2).then_some(i as u32);
            let at = At {
                segment: pos.map(|_| 1000),
                pos,
            };
            stage.push(at, &rec(i)).unwrap();
        }
        let seen = stage.finish().unwrap();
        assert_eq!(seen.len(), payloads.len());
        for (i, (offset, quarantined, payload)) in seen.iter().enumerate() {
            assert_eq!((*offset, *quarantined), (i as u64, i.is_multiple_of(3)));
            assert_eq!(payload, &payloads[i]);
        }

        let failing = |_: &mut (), records: Records<'_>| {
            for (_, r) in records {
                if r.offset == 10 {
                    return Err(ExportError::Refused("offset 10".into()));
                }
            }
            Ok(())
        };
        let mut stage = Stage::spawn("test", (), failing).unwrap();
        let mut failed = None;
        for i in 0..payloads.len() {
            if let Err(e) = stage.push(At::default(), &rec(i)) {
                failed = Some(e);
                break;
            }
        }
        let e = match failed {
            Some(e) => e,
            None => stage.finish().unwrap_err(),
        };
        assert!(e.to_string().contains("offset 10"), "{e}");
    }
}
