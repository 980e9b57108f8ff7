//! Segment files: naming, listing, creation and header checks.
//!
//! Invariants:
//! - A segment file is named `{base:020}.seg`, or `{base:020}.segz` once it is
//!   sealed and compressed (`segz`), where `base` is the offset of its first
//!   record; other names in the directory are ignored. A base listed with
//!   both names (a compression that has not yet removed the `.seg`) is one
//!   segment; readers open the `.seg` first and fall back to the `.segz`
//!   when the `.seg` is gone, so a reader racing a compression finds one.
//! - A new segment file is created exclusively (never over an existing one) with
//!   mode 0600, gets its header written and fsynced, and then the directory is
//!   fsynced, before any record is written to it.
//! - Listing never opens a segment: its cost is one directory read.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::format::{
    check_header, decode_body, encode_header, encode_header_version, frame_crc, frame_header,
    stated_base, HeaderProblem, RecordKind, FORMAT_VERSION, FRAME_HEADER_LEN, HEADER_LEN,
    MAX_BODY_LEN, MIN_BODY_LEN, OLDEST_READABLE_VERSION, RECORD_MAGIC,
};
use crate::scan::{Scan, ScanRef};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// File name of the segment with base offset `base`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// Path of the segment with base offset `base` in `dir`.
pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_file_name(base))
}

/// File name of the compressed segment with base offset `base`.
pub fn segz_file_name(base: u64) -> String {
    format!("{base:020}.segz")
}

/// Path of the compressed segment with base offset `base` in `dir`.
pub(crate) fn segz_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segz_file_name(base))
}

/// The two kinds of segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `.seg`: header and frames.
    Plain,
    /// `.segz`: a sealed segment in compressed blocks.
    Packed,
}

fn parse_base(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses a segment file name of either kind; `None` if it is not one.
pub(crate) fn parse_any_segment_name(name: &str) -> Option<(u64, Kind)> {
    if let Some(d) = name.strip_suffix(".seg") {
        return parse_base(d).map(|b| (b, Kind::Plain));
    }
    parse_base(name.strip_suffix(".segz")?).map(|b| (b, Kind::Packed))
}

/// Every segment file in `dir` with its kind, sorted by base (a base may
/// appear with both kinds).
///
/// The directory is read twice and the two listings joined: a read of a
/// directory that runs while the compressor renames a segment's `.segz`
/// into place and removes its `.seg` may return neither name (POSIX leaves
/// the entries added or removed during a `readdir` unspecified, and ext4
/// reading a large directory in several calls does miss them), and a scan
/// that listed the log so skipped that segment's records, 1 export in ~100
/// beside an import rolling 16 KiB segments (an outside audit). The `.segz`
/// is in place before the `.seg` goes, so a listing that missed the `.seg`
/// ended after the `.segz` was there for the next to see: of two listings
/// one after the other, one names every segment that had a file
/// throughout.
pub(crate) fn list_segment_files(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<(u64, Kind)>> {
    let mut files = Vec::new();
    for _ in 0..2 {
        let names = vfs
            .list_dir(dir)
            .map_err(|e| LogError::io("listing", dir, e))?;
        files.extend(names.iter().filter_map(|n| parse_any_segment_name(n)));
    }
    sort_segment_files(&mut files, |f| *f);
    files.dedup();
    Ok(files)
}

/// [`list_segment_files`] with each file's length, read in the same pass
/// over the directory (`None`: the file went away after the listing); two
/// listings joined, as there.
pub(crate) fn list_segment_file_lens(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<Vec<(u64, Kind, Option<u64>)>> {
    let mut files = Vec::new();
    for _ in 0..2 {
        let entries = vfs
            .list_dir_lens(dir, &|n| parse_any_segment_name(n).is_some())
            .map_err(|e| LogError::io("listing", dir, e))?;
        files.extend(
            entries
                .into_iter()
                .filter_map(|(n, len)| parse_any_segment_name(&n).map(|(b, k)| (b, k, len))),
        );
    }
    // Of a file both listings name, the first's length is kept.
    sort_segment_files(&mut files, |&(b, k, _)| (b, k));
    files.dedup_by_key(|&mut (b, k, _)| (b, k));
    Ok(files)
}

/// Sorts segment files by base, a base's `.seg` before its `.segz`;
/// stable, so equal entries keep their order.
fn sort_segment_files<T>(files: &mut [T], key: impl Fn(&T) -> (u64, Kind)) {
    files.sort_by_key(|f| {
        let (b, k) = key(f);
        (b, k == Kind::Packed)
    });
}

/// The segments of `dir` whose base lies in `[from, below)`, listed
/// afresh: for a reader whose listing goes from a segment ending before
/// offset `from` to one starting at `below`. A segment created while a
/// listing ran and compressed while the next did is in neither (see
/// [`list_segment_files`]), so a listing taken by a reader of a log whose
/// writer rolls and compresses segments quickly can lack a run of them;
/// by the time the reader finds the gap they are in place, and this finds
/// them. Empty when the log really lacks them.
pub(crate) fn listed_between(vfs: &dyn Vfs, dir: &Path, from: u64, below: u64) -> Result<Vec<u64>> {
    let mut bases = list_segments(vfs, dir)?;
    bases.retain(|b| (from..below).contains(b));
    Ok(bases)
}

/// Base offsets of the segments in `dir`, sorted ascending.
pub(crate) fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<u64>> {
    let mut bases: Vec<u64> = list_segment_files(vfs, dir)?
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    bases.dedup();
    Ok(bases)
}

/// The compressed segments (`.segz`) a writer knows are in its directory:
/// how many, their total length, and a fingerprint of their bases (the
/// wrapping sum of [`PackedSegments::mix`] of each). The store keeps it in
/// the index with each commit (docs/FORMAT.md §3, "Packed segments") so
/// that `stats` can size the log without a `stat` per segment: a `.segz`
/// never changes once renamed into place, so the files a reader lists
/// whose bases add up to the fingerprint have, together, `bytes` bytes
/// ([`LogReader::footprint_listed`](crate::LogReader::footprint_listed)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedSegments {
    /// Number of `.segz` files.
    pub count: u64,
    /// Their total length in bytes.
    pub bytes: u64,
    /// Wrapping sum of [`PackedSegments::mix`] of each one's base.
    pub bases: u64,
}

impl PackedSegments {
    /// Counts the `.segz` of `base`, `len` bytes long.
    pub fn add(&mut self, base: u64, len: u64) {
        self.count += 1;
        self.bytes += len;
        self.bases = self.bases.wrapping_add(Self::mix(base));
    }

    /// A base's share of the fingerprint: splitmix64's finaliser, so that
    /// two different sets of bases of one size sum alike only by a 2^-64
    /// chance.
    pub fn mix(base: u64) -> u64 {
        let mut z = base.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The `.segz` files of a listing (sorted by base, a base's `.seg`
    /// first, as [`list_segment_file_lens`] gives them) whose base has no
    /// `.seg` beside it, with their lengths.
    pub(crate) fn of_listing(files: &[(u64, Kind, Option<u64>)]) -> PackedSegments {
        let mut packed = PackedSegments::default();
        for (i, &(base, kind, len)) in files.iter().enumerate() {
            let paired = i > 0 && files[i - 1].0 == base;
            if let (Kind::Packed, false, Some(len)) = (kind, paired, len) {
                packed.add(base, len);
            }
        }
        packed
    }
}

/// An open segment file, its path and its kind.
pub(crate) type OpenedSegment = (Arc<dyn VfsFile>, PathBuf, Kind);

/// Opens segment `base` for reading: its `.seg`, or its `.segz` if there is
/// no `.seg` (any more). `Ok(None)` if neither exists.
pub(crate) fn open_segment(vfs: &dyn Vfs, dir: &Path, base: u64) -> Result<Option<OpenedSegment>> {
    for (path, kind) in [
        (segment_path(dir, base), Kind::Plain),
        (segz_path(dir, base), Kind::Packed),
    ] {
        match vfs.open(&path, OpenMode::Read, "opening") {
            Ok(f) => return Ok(Some((f, path, kind))),
            Err(LogError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The base segment file `base` of `kind` holds when that is another one
/// than its name (a file renamed or copied into the log directory): the
/// base its header states when the header is well formed; else, its bytes
/// damaged, the base the file shows otherwise (a `.seg`'s first record at
/// byte 32, a `.segz`'s copy of its `.seg` header; until 2026-12-07 a
/// copy or a swap with a flipped header byte was read in place, and a
/// writer appended to such a copy: an outside audit). A file that shows
/// none gives `None`: it is damage, found and reported by the scans.
pub(crate) fn misnamed(vfs: &dyn Vfs, dir: &Path, base: u64, kind: Kind) -> Result<Option<u64>> {
    let path = kind_path(dir, base, kind);
    // A file that cannot be read says nothing of its name: it is the
    // reads' error where they need it (a sector gone bad in an old segment
    // must not keep a live ingest from starting). One not found was
    // compressed meanwhile (a `.seg` renamed away by a writer beside a
    // `verify`): a writer runs only on a log of rightly named files.
    let Ok(file) = vfs.open(&path, OpenMode::Read, "opening") else {
        return Ok(None);
    };
    let mut h = [0u8; crate::segz::SEGZ_HEADER_LEN as usize];
    let Ok(got) = read_full_at(file.as_ref(), &path, &mut h, 0) else {
        return Ok(None);
    };
    let head = h.get(..got).unwrap_or_default();
    let holds = match kind {
        Kind::Plain => match crate::format::stated_base(head) {
            Some(stated) => Some(stated),
            None => first_record_offset(file.as_ref(), &path)?,
        },
        Kind::Packed => crate::segz::stated_base(head).or_else(|| {
            let copy = head.get(SEGZ_SEG_HEADER_AT..SEGZ_SEG_HEADER_AT + HEADER_LEN as usize)?;
            crate::format::stated_base(copy)
        }),
    };
    Ok(holds.filter(|&holds| holds != base))
}

/// Where a `.segz` header keeps a copy of its `.seg` header (FORMAT §1.7).
const SEGZ_SEG_HEADER_AT: usize = 40;

/// The offset of the valid record at byte 32 of the `.seg` `file`, if one
/// starts there: the base of the segment the file holds.
fn first_record_offset(file: &dyn VfsFile, path: &Path) -> Result<Option<u64>> {
    let mut head = [0u8; FRAME_HEADER_LEN as usize];
    let at = u64::from(HEADER_LEN);
    if read_full_at(file, path, &mut head, at)? < head.len() {
        return Ok(None);
    }
    let Some((magic, len, crc)) = frame_header(&head) else {
        return Ok(None);
    };
    if magic != RECORD_MAGIC || !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&len) {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    if read_full_at(file, path, &mut body, at + u64::from(FRAME_HEADER_LEN))? < body.len() {
        return Ok(None);
    }
    let valid = head
        .get(4..8)
        .is_some_and(|len_bytes| frame_crc(len_bytes, &body) == crc);
    Ok(valid
        .then(|| decode_body(&body).ok().map(|r| r.offset))
        .flatten())
}

/// [`LogError::Misnamed`] for segment file `base` of `kind` when it is
/// [`misnamed`].
pub(crate) fn check_named_rightly(vfs: &dyn Vfs, dir: &Path, base: u64, kind: Kind) -> Result<()> {
    match misnamed(vfs, dir, base, kind)? {
        Some(holds) => Err(LogError::Misnamed {
            file: kind_path(dir, base, kind),
            holds,
            rightful: kind_path(dir, holds, kind),
        }),
        None => Ok(()),
    }
}

fn kind_path(dir: &Path, base: u64, kind: Kind) -> PathBuf {
    match kind {
        Kind::Plain => segment_path(dir, base),
        Kind::Packed => segz_path(dir, base),
    }
}

/// fsyncs a directory so that file creations in it are durable.
pub(crate) fn sync_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    vfs.sync_dir(dir)
        .map_err(|e| LogError::io("fsyncing directory", dir, e))
}

/// Creates the segment `base` in `dir` (mode 0600), writes and fsyncs its header,
/// fsyncs the directory, and returns the file open for appending.
pub(crate) fn create_segment(vfs: &dyn Vfs, dir: &Path, base: u64) -> Result<Arc<dyn VfsFile>> {
    let path = segment_path(dir, base);
    let file = vfs.open(&path, OpenMode::CreateNew, "creating segment")?;
    file.write_all_at(&encode_header(base), 0)
        .map_err(|e| LogError::io("writing segment header to", &path, e))?;
    file.sync_all()
        .map_err(|e| LogError::io("fsyncing", &path, e))?;
    sync_dir(vfs, dir)?;
    Ok(file)
}

/// Rewrites the header of a segment that holds no record (torn creation).
pub(crate) fn rewrite_empty_segment(file: &dyn VfsFile, path: &Path, base: u64) -> Result<()> {
    file.set_len(0)
        .map_err(|e| LogError::io("truncating", path, e))?;
    file.write_all_at(&encode_header(base), 0)
        .map_err(|e| LogError::io("writing segment header to", path, e))?;
    file.sync_all()
        .map_err(|e| LogError::io("fsyncing", path, e))
}

/// Writes again the header of the `.seg` of `base` when its bytes are
/// damaged (its magic or CRC does not hold) and the file shows which
/// header it had: a valid record at byte 32 whose offset is `base`, as
/// the first record of a segment of that name is. A header is its base
/// and format version and nothing else (docs/FORMAT.md §1.3): the
/// version it states when that is one this build reads, else this
/// build's. Written in place and synced, the frames untouched: a write cut
/// short leaves a damaged header again, nothing else. Returns what was
/// wrong, or `None` when nothing was written: the header is whole, or
/// well formed with another base (a file renamed into the log), or the
/// file does not show its base (its first record lost too).
pub(crate) fn restore_plain_header(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    base: u64,
) -> Result<Option<&'static str>> {
    let path = segment_path(dir, base);
    let file = vfs.open(&path, OpenMode::ReadWrite, "opening")?;
    let Some((what, h)) = damaged_header_bytes(file.as_ref(), &path, base)? else {
        return Ok(None);
    };
    let mut scan = Scan::single(Arc::clone(vfs), dir.to_owned(), base, HEADER_LEN);
    let shows_base = matches!(
        scan.next_ref(),
        Some(Ok(ScanRef::Record(at, rec))) if at.pos == HEADER_LEN && rec.offset == base
    );
    if !shows_base {
        return Ok(None);
    }
    // Version 1 holds no tally (§1.3): one that states it over a tally
    // (2 with two bits flipped) was 2.
    let stated = u16::from_le_bytes([h[8], h[9]]);
    let mut holds_tally = || {
        std::iter::from_fn(|| {
            scan.next_ref().map(
                |item| matches!(item, Ok(ScanRef::Record(_, rec)) if rec.kind == RecordKind::Tally),
            )
        })
        .any(|tally| tally)
    };
    let version = if stated == 1 && !holds_tally() {
        1
    } else {
        FORMAT_VERSION
    };
    file.write_all_at(&encode_header_version(base, version), 0)
        .map_err(|e| LogError::io("writing segment header to", &path, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fsyncing", &path, e))?;
    Ok(Some(what))
}

/// What is wrong with the header of the `.seg` `file` of `base` when its
/// bytes are damaged (magic or CRC), with those bytes; `None` for a whole
/// header, a short file, or a well-formed header that states another base
/// or length (a file renamed into the log, or made so).
pub(crate) fn damaged_header_bytes(
    file: &dyn VfsFile,
    path: &Path,
    base: u64,
) -> Result<Option<(&'static str, [u8; HEADER_LEN as usize])>> {
    let mut h = [0u8; HEADER_LEN as usize];
    let got = read_full_at(file, path, &mut h, 0)?;
    match check_header(h.get(..got).unwrap_or_default(), base) {
        Err(HeaderProblem::Damaged(what)) if stated_base(&h).is_none() => Ok(Some((what, h))),
        _ => Ok(None),
    }
}

/// Reads up to `buf.len()` bytes at `pos`, stopping early only at end of file.
pub(crate) fn read_full_at(
    file: &dyn VfsFile,
    path: &Path,
    buf: &mut [u8],
    pos: u64,
) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let Some(dst) = buf.get_mut(got..) else { break };
        match file.read_at(dst, pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io("reading", path, e)),
        }
    }
    Ok(got)
}

/// Result of looking at a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderState {
    /// Valid header for this base, of a version this build reads.
    Ok { version: u16 },
    /// Shorter than a header (torn creation, or empty file).
    Short,
    /// Damaged header.
    Damaged(&'static str),
}

/// Reads and checks the header of segment `base`. A well-formed header of a
/// version this build does not read is an error ([`LogError::UnsupportedVersion`]); damage is reported as
/// state so that the records after it can still be read.
pub(crate) fn read_header(file: &dyn VfsFile, path: &Path, base: u64) -> Result<HeaderState> {
    let mut h = [0u8; HEADER_LEN as usize];
    let got = read_full_at(file, path, &mut h, 0)?;
    match check_header(h.get(..got).unwrap_or(&[]), base) {
        Ok(version) => Ok(HeaderState::Ok { version }),
        Err(HeaderProblem::Short) => Ok(HeaderState::Short),
        Err(HeaderProblem::Damaged(what)) => Ok(HeaderState::Damaged(what)),
        Err(HeaderProblem::Version(version)) => Err(LogError::UnsupportedVersion {
            file: path.to_owned(),
            what: "segment format",
            version,
            oldest: OLDEST_READABLE_VERSION,
            supported: FORMAT_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{LockGuard, StdVfs};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The file system, but its first `misses` directory reads leave out
    /// `hidden`, as a `readdir` racing a rename and a removal may.
    #[derive(Debug)]
    struct Racing {
        hidden: String,
        misses: AtomicUsize,
    }

    impl Racing {
        fn listed(&self, mut names: Vec<String>) -> Vec<String> {
            let miss = self
                .misses
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if miss {
                names.retain(|n| *n != self.hidden);
            }
            names
        }
    }

    impl Vfs for Racing {
        fn is_dir(&self, path: &Path) -> bool {
            StdVfs.is_dir(path)
        }
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            StdVfs.create_dir_all(dir)
        }
        fn check_private_dir(&self, dir: &Path, follow: bool) -> Result<()> {
            StdVfs.check_private_dir(dir, follow)
        }
        fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            Ok(self.listed(StdVfs.list_dir(dir)?))
        }
        fn list_dir_lens(
            &self,
            dir: &Path,
            wanted: &dyn Fn(&str) -> bool,
        ) -> std::io::Result<Vec<(String, Option<u64>)>> {
            let all = StdVfs.list_dir_lens(dir, wanted)?;
            let kept = self.listed(all.iter().map(|(n, _)| n.clone()).collect());
            Ok(all.into_iter().filter(|(n, _)| kept.contains(n)).collect())
        }
        fn open(&self, path: &Path, mode: OpenMode, op: &'static str) -> Result<Arc<dyn VfsFile>> {
            StdVfs.open(path, mode, op)
        }
        fn open_direct(&self, path: &Path, write: bool) -> Option<Arc<dyn VfsFile>> {
            StdVfs.open_direct(path, write)
        }
        fn file_len(&self, path: &Path) -> std::io::Result<u64> {
            StdVfs.file_len(path)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            StdVfs.sync_dir(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            StdVfs.rename(from, to)
        }
        fn remove_file(&self, path: &Path) -> std::io::Result<()> {
            StdVfs.remove_file(path)
        }
        fn lock_dir(&self, dir: &Path) -> Result<LockGuard> {
            StdVfs.lock_dir(dir)
        }
    }

    /// A segment one directory read misses (its `.seg` removed and its
    /// `.segz` renamed into place during that read) is still listed, with
    /// its length: the second read finds it.
    #[test]
    fn a_segment_one_directory_read_misses_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            segment_file_name(0),
            segz_file_name(10),
            segment_file_name(20),
        ] {
            std::fs::write(dir.path().join(name), b"0123").unwrap();
        }
        for misses in [0, 1] {
            let vfs = Racing {
                hidden: segz_file_name(10),
                misses: AtomicUsize::new(misses),
            };
            assert_eq!(list_segments(&vfs, dir.path()).unwrap(), [0, 10, 20]);
            let vfs = Racing {
                hidden: segz_file_name(10),
                misses: AtomicUsize::new(misses),
            };
            let lens = list_segment_file_lens(&vfs, dir.path()).unwrap();
            assert_eq!(
                lens,
                [
                    (0, Kind::Plain, Some(4)),
                    (10, Kind::Packed, Some(4)),
                    (20, Kind::Plain, Some(4))
                ]
            );
        }
        // A name both reads see is listed once; both kinds of one base are
        // listed, the `.seg` first.
        std::fs::write(dir.path().join(segz_file_name(0)), b"01").unwrap();
        let vfs = Racing {
            hidden: String::new(),
            misses: AtomicUsize::new(0),
        };
        assert_eq!(
            list_segment_files(&vfs, dir.path()).unwrap(),
            [
                (0, Kind::Plain),
                (0, Kind::Packed),
                (10, Kind::Packed),
                (20, Kind::Plain)
            ]
        );
    }

    fn parse_segment_name(name: &str) -> Option<u64> {
        match parse_any_segment_name(name)? {
            (base, Kind::Plain) => Some(base),
            (_, Kind::Packed) => None,
        }
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(5), "00000000000000000005.seg");
        assert_eq!(parse_segment_name("00000000000000000005.seg"), Some(5));
        assert_eq!(parse_segment_name("0000000000000000005.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000005.seg.tmp"), None);
        assert_eq!(parse_segment_name("+0000000000000000005.seg"), None);
        assert_eq!(parse_segment_name("99999999999999999999.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000005.segz"), None);
        assert_eq!(
            parse_any_segment_name("00000000000000000005.segz"),
            Some((5, Kind::Packed))
        );
        assert_eq!(
            parse_any_segment_name("00000000000000000005.seg"),
            Some((5, Kind::Plain))
        );
        assert_eq!(
            parse_any_segment_name("00000000000000000005.segz.tmp"),
            None
        );
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
    }
}
