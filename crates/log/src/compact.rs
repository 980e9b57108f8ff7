//! Compressing sealed segments (`.seg` → `.segz`, docs/FORMAT.md §1.7) and
//! putting the directory right after a crash in the middle of it.
//!
//! Invariants:
//! - Only a sealed segment (never the last) whose every byte verifies (intact
//!   header, every frame valid, nothing skipped) is compressed; a damaged one
//!   stays a `.seg`, its damage reported as before.
//! - The `.segz` is written to `{base:020}.segz.tmp`, fsynced, renamed into
//!   place, and the directory fsynced, before the `.seg` is removed (and the
//!   directory fsynced again): at every instant at least one complete copy
//!   of the segment exists under a name readers look for.
//! - After a crash, [`tidy`] (run when a writer opens the log) deletes any
//!   `.segz.tmp`, and where a segment has both files keeps the `.segz` only if
//!   every block of it reads back, otherwise the `.seg`.
//! - Compression never delays an acknowledgement: the records of a sealed
//!   segment were durable before it was sealed.
//! - A segment is read once: the scan that verifies it hands each frame to
//!   the encoder ([`Encoder`]), whose buffers, like the scan's, a
//!   [`Compactor`] keeps from one segment to the next.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::direct::DirectAppender;
use crate::error::{LogError, Result};
use crate::format::HEADER_LEN;
use crate::scan::{DamageReason, SegCursor, Step};
use crate::segment::read_full_at;
use crate::segment::{list_segment_files, segment_path, segz_path, sync_dir, Kind, PackedSegments};
use crate::segz::{self, Compression, Encoder};
use crate::vfs::{OpenMode, Vfs};
use crate::window::{Src, Window};

/// What compressing one segment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compacted {
    /// The `.seg` of `seg_bytes` was replaced by a `.segz` of `segz_bytes`.
    Done {
        /// Length of the `.seg`.
        seg_bytes: u64,
        /// Length of the `.segz`.
        segz_bytes: u64,
    },
    /// Left as a `.seg`: it has damage (`verify` reports it).
    Damaged,
    /// There is no `.seg` for this base (already compressed).
    Absent,
    /// Left as a `.seg`: the writer closed first (the next writer to open
    /// the log compresses it).
    Stopped,
}

fn temp_path(dir: &Path, base: u64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.segz.tmp"))
}

fn remove_if_present(vfs: &dyn Vfs, path: &Path) -> Result<bool> {
    match vfs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LogError::io("removing", path, e)),
    }
}

/// What compressing segments keeps from one segment to the next: the scan's
/// read buffer, and the encoder's buffers and zstd context (created with the
/// first segment).
pub(crate) struct Compactor {
    win: Window,
    enc: Option<Encoder>,
    /// Write the `.segz` with `O_DIRECT` where allowed (the log's
    /// `direct_io` option).
    direct_writes: bool,
}

impl Compactor {
    pub fn new(direct_writes: bool) -> Compactor {
        Compactor {
            win: Window::new(),
            enc: None,
            direct_writes,
        }
    }
}

/// Compresses the sealed segment `base` of `dir`. The caller holds the
/// writer lock and guarantees the segment is sealed (not the last one).
/// Once `stop` is set it gives up before writing anything
/// ([`Compacted::Stopped`]). A `.segz` put in place is counted in `packed`
/// once the `.seg` is gone (a reader listing both counts the `.seg`).
///
/// The segment is read once: each frame the scan verifies goes into the
/// block being gathered, so a segment found damaged midway has been partly
/// compressed for nothing, and nothing is written. The reads are direct
/// (`O_DIRECT`) where the file system allows it: the writer wrote the
/// segment past the page cache, so a buffered read would fill the cache
/// from the disk only to copy the bytes out of it once.
pub(crate) fn compact_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    c: Compression,
    stop: &AtomicBool,
    work: &mut Compactor,
    packed: &Mutex<PackedSegments>,
) -> Result<Compacted> {
    let seg = segment_path(dir, base);
    let file = match vfs.open(&seg, OpenMode::Read, "opening") {
        Ok(f) => f,
        Err(LogError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(Compacted::Absent)
        }
        Err(e) => return Err(e),
    };
    // Read through the scan's window (a few MiB), not whole: memory stays
    // the output and one block whatever the segment size.
    let mut src = Src::from_file(Arc::clone(&file), seg.clone(), base, false)?;
    src.direct = vfs.open_direct(&seg, false);
    let seg_len = src.len;
    let cur = SegCursor::new(src, 0);
    if cur.header_damage()?.is_some() {
        return Ok(Compacted::Damaged);
    }
    let mut seg_header = [0u8; HEADER_LEN as usize];
    if read_full_at(file.as_ref(), &seg, &mut seg_header, 0)? != seg_header.len() {
        return Ok(Compacted::Damaged);
    }
    let (segz_len, out_len) = match write_segz(vfs, dir, cur, &seg_header, c, stop, work, false)? {
        Written::Done { segz_len, out_len } => (segz_len, out_len),
        Written::Damaged => return Ok(Compacted::Damaged),
        Written::Stopped => return Ok(Compacted::Stopped),
    };
    // Counted once its `.segz` is durable, before the `.seg` goes: whoever
    // sees the `.seg` gone (a listing, then an index commit) finds it
    // counted. Counted after the removal, a commit in between counted one
    // fewer than the listing showed.
    packed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add(base, segz_len);
    vfs.remove_file(&seg)
        .map_err(|e| LogError::io("removing", &seg, e))?;
    sync_dir(vfs, dir)?;
    Ok(Compacted::Done {
        seg_bytes: seg_len,
        segz_bytes: out_len,
    })
}

/// What [`write_segz`] did.
enum Written {
    /// The `.segz` is in place, durably: `segz_len` bytes as the file
    /// system reports them, `out_len` written.
    Done { segz_len: u64, out_len: u64 },
    /// A frame was damaged: nothing written.
    Damaged,
    /// `stop` was set: nothing written.
    Stopped,
}

/// Encodes every frame `cur` reads (from the start of its segment) and puts
/// the `.segz` of its base in place, durably: written to a temporary name,
/// synced, renamed over any `.segz` of that base, the directory synced.
/// Any damage the scan meets means nothing is written, except, with
/// `past_container_notes`, the notes of a damaged `.segz` header or block
/// index that lose nothing (read from the `.segz` being written again).
#[allow(clippy::too_many_arguments)]
fn write_segz(
    vfs: &dyn Vfs,
    dir: &Path,
    mut cur: SegCursor,
    seg_header: &[u8; HEADER_LEN as usize],
    c: Compression,
    stop: &AtomicBool,
    work: &mut Compactor,
    past_container_notes: bool,
) -> Result<Written> {
    let base = cur.src.base;
    let seg = cur.src.path.clone();
    let seg_len = cur.src.len;
    let Compactor {
        win,
        enc,
        direct_writes,
    } = work;
    let enc = match enc {
        Some(enc) => enc,
        None => enc.insert(Encoder::new(c).map_err(|e| LogError::io("compressing", &seg, e))?),
    };
    enc.begin(c)
        .map_err(|e| LogError::io("compressing", &seg, e))?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(Written::Stopped);
        }
        match cur.step(win)? {
            Step::Record { pos, len, offset } => {
                let at = u32::try_from(pos).map_err(|_| LogError::Corrupt {
                    file: seg.clone(),
                    pos,
                    what: "record past the 4 GiB segment limit".into(),
                })?;
                enc.push(&seg, at, win.slice(&cur.src, pos, len as usize)?, offset)?;
            }
            Step::Damage(d)
                if past_container_notes
                    && d.len_skipped == 0
                    && matches!(
                        d.reason,
                        DamageReason::Compressed {
                            rewritable: true,
                            ..
                        }
                    ) => {}
            Step::Damage(_) => return Ok(Written::Damaged),
            Step::End => break,
        }
    }
    drop(cur);
    let out = enc.finish(&seg, base, seg_len, seg_header)?;
    let tmp = temp_path(dir, base);
    remove_if_present(vfs, &tmp)?;
    let f = vfs.open(&tmp, OpenMode::CreateNew, "creating")?;
    // Past the page cache too, where allowed, as the log's own appends:
    // copying the output into the cache was a sixteenth of a 1M import's
    // samples (docs/BENCHMARKS.md, issue 17); the partial last block goes
    // through the cache.
    let direct = if *direct_writes {
        DirectAppender::open(vfs, &tmp, f.as_ref(), 0)
    } else {
        None
    };
    match direct {
        Some(mut d) => d.append(out, 0).and_then(|()| d.publish(f.as_ref())),
        None => f.write_all_at(out, 0),
    }
    .map_err(|e| LogError::io("writing", &tmp, e))?;
    f.sync_all()
        .map_err(|e| LogError::io("fsyncing", &tmp, e))?;
    // The length as the file system reports it, which is what a reader's
    // `stat` would say (direct writes publish the partial last block).
    let segz_len = f
        .size()
        .map_err(|e| LogError::io("reading the length of", &tmp, e))?;
    drop(f);
    let segz = segz_path(dir, base);
    vfs.rename(&tmp, &segz)
        .map_err(|e| LogError::io("renaming", &tmp, e))?;
    sync_dir(vfs, dir)?;
    Ok(Written::Done {
        segz_len,
        out_len: out.len() as u64,
    })
}

/// Writes the `.segz` of sealed segment `base` again when its header or
/// block index is damaged but its file shows every block was found and
/// every block reads back (docs/FORMAT.md §1.7): the same frames at the
/// same positions, so the index and every record stay as they were.
/// Returns what was wrong, or `None` if
/// nothing was rewritten: the file is whole, or lost records (a `verify`
/// names them; only a backup brings them back).
pub(crate) fn restore_container(
    vfs: &dyn Vfs,
    dir: &Path,
    base: u64,
    c: Compression,
    work: &mut Compactor,
) -> Result<Option<&'static str>> {
    let path = segz_path(dir, base);
    let file = vfs.open(&path, OpenMode::Read, "opening")?;
    // The header and block index alone, unless they are damaged.
    let table = segz::load_table(file.as_ref(), &path, base)?;
    let Some(note) = table.holes.first().filter(|h| h.rewritable) else {
        return Ok(None);
    };
    let what = note.what;
    drop(file);
    // Its `.seg` header as a read of it gives it: the copy the old header
    // kept, or a new one (`segz::Table::seg_header`).
    let src = Src::open(vfs, dir, base, false)?;
    let mut seg_header = [0u8; HEADER_LEN as usize];
    read_full_at(src.file.as_ref(), &path, &mut seg_header, 0)?;
    let cur = SegCursor::new(src, 0);
    match write_segz(
        vfs,
        dir,
        cur,
        &seg_header,
        c,
        &AtomicBool::new(false),
        work,
        true,
    )? {
        Written::Done { .. } => Ok(Some(what)),
        Written::Damaged | Written::Stopped => Ok(None),
    }
}

/// Whether the `.segz` of `base` reads back whole: header, index, every
/// block's CRC and length, and the `.seg` header inside.
fn segz_is_whole(vfs: &dyn Vfs, dir: &Path, base: u64) -> Result<bool> {
    let path = segz_path(dir, base);
    let file = vfs.open(&path, OpenMode::Read, "opening")?;
    let bytes = segz::read_all(file.as_ref(), &path)?;
    match segz::lazy(bytes, &path, base) {
        Ok((img, holes)) => {
            img.prepare_all()
                .map_err(|e| LogError::io("reading", &path, e))?;
            let late = img
                .take_late_holes()
                .map_err(|e| LogError::io("reading", &path, e))?;
            let header = crate::segment::read_header(&img, &path, base);
            Ok(holes.is_empty()
                && late.is_empty()
                && matches!(header, Ok(crate::segment::HeaderState::Ok { .. })))
        }
        Err(LogError::UnsupportedVersion { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Puts `dir` right after a crash during a compression: removes torn
/// `.segz.tmp` files, and for a segment present as both `.seg` and `.segz`
/// keeps the `.segz` if it is whole, else the `.seg`.
pub(crate) fn tidy(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| LogError::io("listing", dir, e))?;
    let mut removed = false;
    for name in &names {
        let Some(stem) = name.strip_suffix(".tmp") else {
            continue;
        };
        if let Some((_, Kind::Packed)) = crate::segment::parse_any_segment_name(stem) {
            removed |= remove_if_present(vfs, &dir.join(name))?;
        }
    }
    let files = list_segment_files(vfs, dir)?;
    for pair in files.windows(2) {
        if let [(a, Kind::Plain), (b, Kind::Packed)] = *pair {
            // A file whose header states another base is no leftover of a
            // compression but one renamed or copied in: neither is removed
            // (the writer then refuses it, naming it).
            let put_in = |kind| crate::segment::misnamed(vfs, dir, a, kind).map(|m| m.is_some());
            if a == b && !put_in(Kind::Plain)? && !put_in(Kind::Packed)? {
                let loser = if segz_is_whole(vfs, dir, a)? {
                    segment_path(dir, a)
                } else {
                    segz_path(dir, a)
                };
                removed |= remove_if_present(vfs, &loser)?;
            }
        }
    }
    if removed {
        sync_dir(vfs, dir)?;
    }
    Ok(())
}
