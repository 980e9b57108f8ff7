//! Whether an index describes the log beside it.
//!
//! The index is derived from its log, and its checkpoint names the record
//! it would index next: an offset and the position where that record
//! starts. An `index.redb` of another archive (or of another copy of this
//! one) put beside a log names a place where this log holds another
//! record, none, or the middle of one; indexing on from there would file
//! this log's records after the other archive's postings, and every answer
//! would mix the two.
//!
//! Invariant: an index is used only if the log holds, at its checkpoint's
//! position, the record of its checkpoint's offset; or that position ends
//! its segment and the log's next record (the next segment's first, or the
//! one a writer appends next) has that offset or a later one (a gap, which
//! indexing reports as damage). A writer checks after
//! recovering the log's tail, so a checkpoint at a damaged place is not a
//! torn append and the index is rebuilt (that costs time, never an
//! answer). A reader that finds no whole record there may be looking at a
//! record a running writer is appending: it leaves the judgement to a
//! writer open, which waits for no one (a running writer holds the lock
//! and checked the index when it opened).

use ccvault_index::Checkpoint;
use ccvault_log::{LogReader, Position};

/// Why the index whose checkpoint is `c` does not describe `log`, or
/// `None` when it does. `writer_next` is the offset the writer appends
/// next, after recovery; `None` for a reader, for which a checkpoint at
/// damage (perhaps a record being appended) is a misfit to be judged again
/// by a writer open.
pub(crate) fn misfit(log: &LogReader, c: &Checkpoint, writer_next: Option<u64>) -> Option<String> {
    let at = Position {
        segment: c.segment,
        pos: c.pos,
    };
    let place = format!("segment {:020} at byte {}", c.segment, c.pos);
    let error = match log.read_at(at) {
        Ok(record) if record.offset == c.next_offset => return None,
        Ok(record) => {
            return Some(format!(
                "its checkpoint expects record {} at {place}, where the log holds record {}",
                c.next_offset, record.offset
            ))
        }
        Err(e) => e,
    };
    // A missing segment is said by the missing-segment checks (and a
    // writer that lost records the index saw rebuilds it anyway).
    let len = log.segment_data_len(c.segment).ok()?;
    let at_end = u64::from(c.pos) == len;
    if u64::from(c.pos) > len {
        return Some(format!(
            "its checkpoint is at {place}, past the {len} bytes of that segment's data"
        ));
    }
    if !at_end {
        return Some(format!(
            "its checkpoint expects record {} at {place}, where the log holds none: {error}",
            c.next_offset
        ));
    }
    // The listing taken at open: a segment a running writer created since
    // is the reader's to miss (the writer checked at its own open).
    let next_base = log
        .listed_segments()
        .into_iter()
        .find(|&base| base > c.segment);
    let next = match (next_base, writer_next) {
        (Some(base), _) => base,
        (None, Some(next)) => next,
        (None, None) => return None,
    };
    // A later next offset is a gap (a segment file missing between), which
    // indexing reports as damage; an earlier one, records missing.
    (next < c.next_offset).then(|| {
        format!(
            "its checkpoint expects record {} next, at the end of segment {:020}, where the log's next record is {next}",
            c.next_offset, c.segment
        )
    })
}
