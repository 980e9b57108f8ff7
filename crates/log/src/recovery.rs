//! Crash recovery of the last segment when a writer opens the log.
//!
//! Invariants:
//! - Only the last segment is read; sealed segments were fsynced before the next
//!   segment was created, so they cannot have a torn tail. Open cost is one
//!   directory listing plus a scan of (part of) the last segment.
//! - Bytes are truncated only if no valid record follows them (a torn tail). Damage
//!   followed by a valid record is kept and reported: it may hide nothing, and
//!   truncating would drop acknowledged records.
//! - A checkpoint position is trusted only if a valid record starts there;
//!   otherwise the whole last segment is scanned.
//! - A last segment with no valid header and no record is a torn creation
//!   only if nothing but zeros follows its header (which is synced before
//!   any append); any other such file is refused, never overwritten.
//! - After recovery, everything kept in the last segment is fsynced.

use std::path::Path;
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::format::{FORMAT_VERSION, HEADER_LEN};
use crate::scan::{Damage, DamageReason, Scan, ScanRef, SegCursor, Step};
use crate::segment::{
    read_full_at, read_header, rewrite_empty_segment, segment_path, segz_path, HeaderState,
};
use crate::segz::SEGZ_HEADER_LEN;
use crate::vfs::{OpenMode, Vfs, VfsFile};
use crate::window::{Src, Window};
use crate::Position;

/// What recovery found and did when the writer opened the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Bytes of torn tail removed from the end of the last segment.
    pub truncated_bytes: u64,
    /// Damage found in the last segment and kept because valid records follow it.
    pub damaged: Vec<Damage>,
    /// The offset the next appended record gets.
    pub next_offset: u64,
    /// Valid records scanned during recovery.
    pub scanned_records: u64,
    /// Where the torn tail was cut, if anything was truncated.
    pub truncated_at: Option<Position>,
    /// Where the scan of the last segment started.
    pub scanned_from: Position,
    /// The last segment held records of an older format version, so the
    /// writer left it sealed as it was and started a new segment of this
    /// version: the version found. Records of a newer kind never go into an
    /// older segment.
    pub rolled_from_version: Option<u16>,
    /// The last file of the log was a sealed `.segz` with no `.seg` after
    /// it (the active segment removed, or never created): its base. The
    /// writer started a new segment after the `.segz`'s last record.
    pub resumed_after_packed: Option<u64>,
}

/// The recovered last segment, ready for appending.
pub(crate) struct Recovered {
    pub file: Arc<dyn VfsFile>,
    /// Length of the file after recovery: the next record goes here.
    pub len: u64,
    pub recovery: Recovery,
    /// The format version of the segment's header after recovery (`None`:
    /// damaged, and records follow it).
    pub version: Option<u16>,
}

/// Scans state of the last segment from one start position.
struct Pass {
    records: u64,
    last_offset: Option<u64>,
    /// End of the last valid record (or the start position).
    good_end: u64,
    damage: Vec<Damage>,
}

fn run(cur: &mut SegCursor, win: &mut Window) -> Result<Pass> {
    let mut pass = Pass {
        records: 0,
        last_offset: None,
        good_end: cur.pos,
        damage: Vec::new(),
    };
    loop {
        match cur.step(win)? {
            Step::Record { pos, len, offset } => {
                pass.records += 1;
                pass.last_offset = Some(offset);
                pass.good_end = pos + u64::from(len);
            }
            Step::Damage(d) => pass.damage.push(d),
            Step::End => return Ok(pass),
        }
    }
}

/// The offset after the last readable record of segment `base` (either
/// kind), and the damage after that record, if any (the segment's end is
/// then unknown: the damage may have held later offsets).
fn scan_to_end(vfs: &Arc<dyn Vfs>, dir: &Path, base: u64) -> Result<(u64, Option<Damage>)> {
    let mut scan = Scan::single(Arc::clone(vfs), dir.to_path_buf(), base, HEADER_LEN);
    let mut next = base;
    let mut damage_after: Option<Damage> = None;
    while let Some(item) = scan.next_ref() {
        match item? {
            ScanRef::Record(_, rec) => {
                next = rec.offset.saturating_add(1).max(next);
                damage_after = None;
            }
            ScanRef::Damage(d) => damage_after = Some(d),
        }
    }
    Ok((next, damage_after))
}

/// The offset after the last record of segment `base`, or `None` when its
/// end is damaged.
pub(crate) fn end_of_segment(vfs: &Arc<dyn Vfs>, dir: &Path, base: u64) -> Result<Option<u64>> {
    let (next, damage_after) = scan_to_end(vfs, dir, base)?;
    Ok(damage_after.is_none().then_some(next))
}

/// The offset after the last record of the sealed `.segz` of `base`, the
/// last file of the log: where a new segment after it starts. Refused when
/// the `.segz` ends in damage, which may have held later offsets.
///
/// `previous_end`: the offset after the last readable record of the
/// segment before it (`None`: none before it, or unknown); a `.segz` whose
/// name does not continue it is refused, left as it is.
pub(crate) fn next_offset_after_packed(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    base: u64,
    previous_end: &dyn Fn() -> Result<Option<u64>>,
) -> Result<u64> {
    let path = segz_path(dir, base);
    // A `.segz` is written whole under another name, synced, then renamed:
    // one shorter than its own header is no file the log wrote
    // (`: > log/….segz`), not a segment that lost its end.
    let len = packed_len(vfs.as_ref(), &path)?;
    if len < u64::from(SEGZ_HEADER_LEN) {
        return Err(LogError::Corrupt {
            file: path,
            pos: 0,
            what: format!(
                "named as the log's last segment, but it is {len} bytes long, shorter than the header \
                 of any compressed segment the log writes ({SEGZ_HEADER_LEN} bytes): not a segment this \
                 log wrote; the log's files were left as they are: move it out of the log directory \
                 and open again"
            ),
        });
    }
    if let Some(end) = previous_end()?.filter(|&end| end != base) {
        return Err(does_not_continue(path, end));
    }
    let (next, damage) = scan_to_end(vfs, dir, base)?;
    let Some(d) = damage else {
        return Ok(next);
    };
    Err(LogError::Corrupt {
        file: path,
        pos: d.pos,
        what: format!(
            "the log's last file is this sealed segment, with no {} after it, and its end is damaged ({}): \
             the next offset is unknown, so nothing can be appended; put the missing segment back, \
             or copy the readable events out with `ccvault export` into a new archive",
            segment_path(dir, next).display(),
            d.reason
        ),
    })
}

/// The refusal of a last segment file whose name does not continue the
/// log: the segment before it ends before offset `end`. A segment is
/// created at the offset after its predecessor's last record, so such a
/// file was not created by this log (`: > log/…`, or a copy), and
/// adopting it left a gap of offsets for good (an outside audit).
fn does_not_continue(file: std::path::PathBuf, end: u64) -> LogError {
    LogError::Corrupt {
        file,
        pos: 0,
        what: format!(
            "named as the log's last segment, but its name does not continue the log (the segment \
             before it ends before offset {end}): not a segment this log created; the log's files \
             were left as they are: move it out of the log directory and open again"
        ),
    }
}

/// The length of the file at `path`.
fn packed_len(vfs: &dyn Vfs, path: &Path) -> Result<u64> {
    vfs.open(path, OpenMode::Read, "opening")?
        .size()
        .map_err(|e| LogError::io("reading metadata of", path, e))
}

/// The position of the first byte of `file` in `from..to` that is not
/// zero, if any.
fn first_nonzero(file: &dyn VfsFile, path: &Path, from: u64, to: u64) -> Result<Option<u64>> {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = from;
    while pos < to {
        let want = usize::try_from(to - pos).map_or(buf.len(), |n| n.min(buf.len()));
        let Some(chunk) = buf.get_mut(..want) else {
            break;
        };
        let got = read_full_at(file, path, chunk, pos)?;
        let Some(read) = chunk.get(..got) else { break };
        if let Some(i) = read.iter().position(|&b| b != 0) {
            return Ok(Some(pos + i as u64));
        }
        if got < want {
            break;
        }
        pos += got as u64;
    }
    Ok(None)
}

/// Recovers segment `base` of `dir`, the last one of the log.
///
/// `previous_end`: the offset after the last readable record of the
/// segment before it, asked only of a last segment whose creation looks
/// torn (`None`: none before it, or unknown).
pub(crate) fn recover_last(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    scan_from: Option<Position>,
    previous_end: &dyn Fn() -> Result<Option<u64>>,
) -> Result<Recovered> {
    let path = segment_path(dir, base);
    let file = vfs.open(&path, OpenMode::ReadWrite, "opening")?;
    let header = read_header(file.as_ref(), &path, base)?;
    let src = Src::from_file(Arc::clone(&file), path.clone(), base, true)?;
    let old_len = src.real_len;
    let mut win = Window::new();

    // Start at the checkpoint if a valid record starts there, else at the start.
    let mut cur = SegCursor::new(src, u64::from(HEADER_LEN));
    let mut start = u64::from(HEADER_LEN);
    if let Some(sf) = scan_from {
        let p = u64::from(sf.pos);
        if sf.segment == base && p > start && p < cur.src.len {
            cur.pos = p;
            if matches!(cur.step(&mut win)?, Step::Record { .. }) {
                start = p;
            }
            cur.pos = start;
            cur.min_offset = base;
        }
    }
    let mut pass = run(&mut cur, &mut win)?;

    let scanned_from = Position {
        segment: base,
        pos: u32::try_from(start).unwrap_or(u32::MAX),
    };
    let mut recovery = Recovery {
        truncated_bytes: 0,
        damaged: Vec::new(),
        next_offset: base,
        scanned_records: pass.records,
        truncated_at: None,
        scanned_from,
        ..Recovery::default()
    };

    // A segment whose creation was torn: no valid header and no record.
    if matches!(header, HeaderState::Short | HeaderState::Damaged(_)) && pass.records == 0 {
        // Its header is synced before any record is appended, so a torn
        // creation holds nothing past the header but zeros. Other bytes
        // are a file this log never wrote (named like a segment, copied
        // into log/): never overwritten.
        if let Some(at) = first_nonzero(file.as_ref(), &path, u64::from(HEADER_LEN), old_len)? {
            return Err(LogError::Corrupt {
                file: path,
                pos: at,
                what: format!(
                    "named as the log's last segment, but it has no valid segment header and no record, \
                     and {} bytes of other data: not a segment this log wrote, and not overwritten; \
                     move it out of the log directory (keep it if it is someone's file) and open again",
                    old_len.saturating_sub(u64::from(HEADER_LEN))
                ),
            });
        }
        // A segment is created at the offset after its predecessor's last
        // record: an empty file named otherwise was not created by this
        // log (`: > log/…90000.seg`), and adopting it left a gap of
        // offsets for good (an outside audit).
        if let Some(end) = previous_end()?.filter(|&end| end != base) {
            return Err(does_not_continue(path, end));
        }
        rewrite_empty_segment(file.as_ref(), &path, base)?;
        recovery.truncated_bytes = old_len.saturating_sub(u64::from(HEADER_LEN));
        if recovery.truncated_bytes > 0 {
            recovery.truncated_at = Some(Position {
                segment: base,
                pos: HEADER_LEN,
            });
        }
        return Ok(Recovered {
            file,
            len: u64::from(HEADER_LEN),
            recovery,
            version: Some(FORMAT_VERSION),
        });
    }
    if let HeaderState::Damaged(what) = header {
        recovery.damaged.push(Damage {
            segment: base,
            pos: 0,
            len_skipped: u64::from(HEADER_LEN),
            reason: DamageReason::SegmentHeader(what),
            compressed: false,
        });
    }

    // Trailing damage with no valid record after it is a torn tail.
    let mut cut: Option<u64> = None;
    while let Some(d) = pass.damage.last() {
        let tail = matches!(
            d.reason,
            DamageReason::TruncatedTail | DamageReason::BeyondSegmentLimit
        );
        if !tail || d.pos < pass.good_end {
            break;
        }
        cut = Some(d.pos);
        pass.damage.pop();
    }
    recovery.damaged.append(&mut pass.damage);

    let len = match cut {
        Some(at) => {
            file.set_len(at)
                .map_err(|e| LogError::io("truncating torn tail of", &path, e))?;
            file.sync_all()
                .map_err(|e| LogError::io("fsyncing", &path, e))?;
            recovery.truncated_bytes = old_len - at;
            recovery.truncated_at = Some(Position {
                segment: base,
                pos: u32::try_from(at).unwrap_or(u32::MAX),
            });
            at
        }
        None => {
            file.sync_data()
                .map_err(|e| LogError::io("fsyncing", &path, e))?;
            old_len
        }
    };
    recovery.next_offset = pass
        .last_offset
        .map_or(base, |o| o.saturating_add(1))
        .max(base);
    let version = match header {
        HeaderState::Ok { version } => Some(version),
        HeaderState::Short | HeaderState::Damaged(_) => None,
    };
    Ok(Recovered {
        file,
        len,
        recovery,
        version,
    })
}
