//! Which interaction group each record of the log belongs to, known for
//! one window of the log at a time: what lets a rebuild's single scan hand
//! a group to the workers as soon as its last record is read.
//!
//! - Groups are numbered by their place in the index's GUID order, the
//!   same in every pass through one handle (the rebuild's deferred pass
//!   relies on it).
//! - The index's GUID postings are read **once**, whatever the number of
//!   windows: the pass fills the window the scan enters first and writes
//!   every later window's part to a bucket, read back when the scan gets
//!   there. (A pass per window made a rebuild superlinear: 3 passes over
//!   every posting at 50M records, 1 at 10M.)
//! - The pass runs on two threads, each over half the GUID hashes with
//!   buckets of its own (numbered as one pass would: the lower half's
//!   groups first, in each window too), so that the rebuild's start, when
//!   the workers have nothing to do yet, uses both cores.
//! - Each group carries its key in the index (the GUID hash), so that the
//!   rebuild can check that every record handed to it as one of the group's
//!   is an event of an interaction with that hash (a damaged index that
//!   files a record under another key is named, not summarized).
//! - Memory: 4 bytes a record of the window held, 16 a group touching it,
//!   and a write buffer per bucket during the pass (at most
//!   [`MAX_BUCKETS`] for both halves). Buckets are scratch files beside
//!   the file being built (unlinked at once: a crash leaves nothing), ~4
//!   bytes a record past the first window and 20 a group in each window;
//!   in memory when the rebuild keeps nothing on disk.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ccvault_store::{IndexReader, StoreError};

use super::runs::{at_end, scratch_file};
use super::schema::io_error;
use super::{ProjectionError, Result};

/// A record outside any interaction.
const NO_GROUP: u32 = u32::MAX;
/// Marks a slot the upper half of a two-thread pass filled: its place
/// counts from the end of the lower half's groups.
const UPPER_HALF: u32 = 1 << 31;
/// Buckets written at once by the pass; past this many later windows, a
/// bucket holds several and each is read once per window it holds (a few
/// extra sequential reads of ~4 bytes a record beyond 2^30 records with the
/// default window, instead of 64 KiB of buffer per window).
const MAX_BUCKETS: u64 = 64;
const BUCKET_BUFFER: usize = 64 << 10;
/// A bucket entry's head: window (u64), group number, records left from
/// the window's start, records in the window (u32 each), the group's GUID
/// hash (u64).
const HEAD_BYTES: usize = 28;

/// One bucket of later windows.
enum Bucket {
    Memory(Vec<u8>),
    Writing(BufWriter<File>),
    Written(File),
}

/// Which group each record of one window of the log belongs to, and how
/// many records of each group the scan has yet to read: a group is
/// complete, and can be summarized, once the scan has read its last record.
pub(super) struct GroupWindow<'a> {
    index: &'a IndexReader,
    /// Scratch files are named after it (and its errors told with it).
    path: PathBuf,
    on_disk: bool,
    /// The records the rebuild reads: offsets below it.
    end: u64,
    window: u64,
    /// The window held: offsets `start..stop` (empty before the first).
    start: u64,
    stop: u64,
    /// Per offset of the window: its group's place in `groups`, or
    /// `NO_GROUP` for a record outside any interaction (atomic so that
    /// both halves of a pass fill it; every access is `Relaxed`, the
    /// threads' join ordering them).
    slot: Vec<AtomicU32>,
    /// Per group with records in the window: its number, its records at or
    /// past the window's start not read yet, and its GUID hash.
    groups: Vec<(u32, u32, u64)>,
    /// The window the pass filled, and the later ones, `per_bucket` to a
    /// bucket (`None` before the pass).
    passed: Option<u64>,
    per_bucket: u64,
    /// Each half's buckets, and the number of its first group.
    buckets: Vec<Vec<Bucket>>,
    gid_base: Vec<u32>,
}

impl<'a> GroupWindow<'a> {
    /// Windows of `window` records over the offsets below `end`; buckets
    /// go to scratch files beside `path` when `on_disk`.
    pub(super) fn new(
        index: &'a IndexReader,
        path: &Path,
        on_disk: bool,
        end: u64,
        window: u64,
    ) -> GroupWindow<'a> {
        GroupWindow {
            index,
            path: path.to_path_buf(),
            on_disk,
            end,
            // Offsets within a window are stored as u32.
            window: window.clamp(1, u64::from(u32::MAX)),
            start: 0,
            stop: 0,
            slot: Vec::new(),
            groups: Vec::new(),
            passed: None,
            per_bucket: 1,
            buckets: Vec::new(),
            gid_base: Vec::new(),
        }
    }

    /// The group of the record at `offset`, its records not read yet after
    /// this one, how many there were before it (the group's size, at its
    /// first record) and its GUID hash; `None` outside any interaction.
    /// Offsets come in increasing order (one scan).
    pub(super) fn take(&mut self, offset: u64) -> Result<Option<Taken>> {
        if offset >= self.end {
            return Ok(None);
        }
        if offset < self.start || offset >= self.stop {
            self.load(offset / self.window)?;
        }
        let at = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        let slot = self
            .slot
            .get(at)
            .map_or(NO_GROUP, |s| s.load(Ordering::Relaxed));
        Ok(self.groups.get_mut(slot as usize).map(|(gid, left, hash)| {
            let before = *left;
            *left = left.saturating_sub(1);
            Taken {
                gid: *gid,
                left: *left,
                size: before,
                guid_hash: *hash,
            }
        }))
    }

    /// Holds window `w`: from its bucket when the pass wrote one for it,
    /// by a pass over the index otherwise (the first window, or a scan
    /// that went back).
    fn load(&mut self, w: u64) -> Result<()> {
        let start = w * self.window;
        let stop = start.saturating_add(self.window).min(self.end);
        let len = usize::try_from(stop - start).unwrap_or(0);
        self.slot.clear();
        self.slot.resize_with(len, || AtomicU32::new(NO_GROUP));
        self.groups.clear();
        match self.passed {
            Some(first) if w > first => self.read_bucket(first, w).map_err(io_error(&self.path))?,
            _ => self.pass(w)?,
        }
        self.start = start;
        self.stop = stop;
        Ok(())
    }

    /// The one pass over every GUID's postings: window `first` into
    /// `slot` and `groups`, every later one into its bucket. Each half of
    /// the GUID hashes runs on a thread of its own with buckets of its own,
    /// its groups numbered after the lower half's as one pass numbers them
    /// (so that the rebuild's start, when the workers have nothing to do
    /// yet, uses both cores), unless a window is too long to mark its
    /// slots (2^31 records).
    fn pass(&mut self, first: u64) -> Result<()> {
        let (window, end) = (self.window, self.end);
        let later = end.saturating_sub(1) / window - first;
        let halves: &[(RangeInclusive<u64>, u32)] =
            if (self.slot.len() as u64) < u64::from(UPPER_HALF) {
                // GUID hashes are xxh3: a split in the middle halves the work.
                &[
                    (0..=u64::MAX / 2, 0),
                    (u64::MAX / 2 + 1..=u64::MAX, UPPER_HALF),
                ]
            } else {
                &[(0..=u64::MAX, 0)]
            };
        // The buckets' write buffers stay within MAX_BUCKETS, however many
        // halves write them.
        let per_half = (MAX_BUCKETS / halves.len() as u64).max(1);
        self.per_bucket = later.div_ceil(per_half).max(1);
        let count = later.div_ceil(self.per_bucket);
        let mut buckets: Vec<Vec<Bucket>> = Vec::with_capacity(halves.len());
        for h in 0..halves.len() {
            let mut own = Vec::new();
            for b in 0..count {
                own.push(if self.on_disk {
                    let mut name = self.path.clone().into_os_string();
                    name.push(format!(".window.{h}.{b}"));
                    let file = scratch_file(Path::new(&name)).map_err(io_error(&self.path))?;
                    Bucket::Writing(BufWriter::with_capacity(BUCKET_BUFFER, file))
                } else {
                    Bucket::Memory(Vec::new())
                });
            }
            buckets.push(own);
        }
        let pass = HalfPass {
            index: self.index,
            path: &self.path,
            first,
            window,
            end,
            per_bucket: self.per_bucket,
            slot: &self.slot,
        };
        let passed: Vec<Result<HalfGroups>> = std::thread::scope(|scope| {
            let mut own = buckets.iter_mut().zip(halves);
            let lower = own.next();
            let others: Vec<_> = own
                .map(|(buckets, (hashes, mark))| {
                    let pass = &pass;
                    scope.spawn(move || pass.run(hashes.clone(), *mark, buckets))
                })
                .collect();
            let mut results = Vec::with_capacity(halves.len());
            if let Some((buckets, (hashes, mark))) = lower {
                results.push(pass.run(hashes.clone(), *mark, buckets));
            }
            for t in others {
                results.push(t.join().unwrap_or_else(|_| {
                    Err(ProjectionError::Worker(
                        "the index pass's second thread panicked".into(),
                    ))
                }));
            }
            results
        });
        let mut groups: Vec<(u32, u32, u64)> = Vec::new();
        let mut gid_base = Vec::with_capacity(passed.len());
        let mut gids = 0u32;
        // Where the upper half's groups start in `groups`.
        let mut upper_place = 0u32;
        for half in passed {
            let (own, numbered) = half?;
            gid_base.push(gids);
            upper_place = groups.len() as u32;
            groups.extend(
                own.into_iter()
                    .map(|(gid, left, hash)| (gid + gids, left, hash)),
            );
            gids += numbered;
        }
        if halves.len() > 1 {
            // The upper half's places count from the end of the lower's.
            for s in &self.slot {
                let v = s.load(Ordering::Relaxed);
                if v != NO_GROUP && v & UPPER_HALF != 0 {
                    s.store((v & !UPPER_HALF) + upper_place, Ordering::Relaxed);
                }
            }
        }
        for bucket in buckets.iter_mut().flatten() {
            bucket.finish().map_err(io_error(&self.path))?;
        }
        self.groups = groups;
        self.buckets = buckets;
        self.gid_base = gid_base;
        self.passed = Some(first);
        Ok(())
    }

    /// Window `w`'s entries from its buckets, the lower half's first (a
    /// bucket may hold other windows' too); the buckets are let go after
    /// their last window.
    fn read_bucket(&mut self, first: u64, w: u64) -> io::Result<()> {
        let b = ((w - first - 1) / self.per_bucket) as usize;
        let last_of_bucket = (w - first).is_multiple_of(self.per_bucket)
            || w == self.end.saturating_sub(1) / self.window;
        for (half, base) in self.gid_base.iter().enumerate() {
            let Some(bucket) = self.buckets.get_mut(half).and_then(|h| h.get_mut(b)) else {
                continue;
            };
            read_entries(bucket, w, *base, &self.slot, &mut self.groups)?;
            if last_of_bucket {
                *bucket = Bucket::Memory(Vec::new());
            }
        }
        Ok(())
    }
}

/// The entries of window `w` in `bucket`: each group's records' slots set
/// to its place in `groups`, where it is added with its number plus
/// `gid_base`.
fn read_entries(
    bucket: &mut Bucket,
    w: u64,
    gid_base: u32,
    slot: &[AtomicU32],
    groups: &mut Vec<(u32, u32, u64)>,
) -> io::Result<()> {
    let mut input: Box<dyn BufRead + '_> = match bucket {
        Bucket::Memory(bytes) => Box::new(&bytes[..]),
        Bucket::Written(file) => {
            file.seek(SeekFrom::Start(0))?;
            Box::new(BufReader::with_capacity(BUCKET_BUFFER, &*file))
        }
        Bucket::Writing(_) => return Err(io::Error::other("a window bucket still written")),
    };
    let mut head = [0u8; HEAD_BYTES];
    let mut offsets: Vec<u8> = Vec::new();
    while !at_end(&mut input)? {
        input.read_exact(&mut head)?;
        let word =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut window = [0u8; 8];
        window.copy_from_slice(&head[..8]);
        let (gid, left, n) = (word(8), word(12), word(16) as usize);
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&head[20..28]);
        offsets.resize(n * 4, 0);
        input.read_exact(&mut offsets)?;
        if u64::from_le_bytes(window) != w {
            continue;
        }
        let place = groups.len() as u32;
        for o in offsets.chunks_exact(4) {
            let o = u32::from_le_bytes([o[0], o[1], o[2], o[3]]) as usize;
            if let Some(s) = slot.get(o) {
                s.store(place, Ordering::Relaxed);
            }
        }
        groups.push((gid + gid_base, left, u64::from_le_bytes(hash)));
    }
    Ok(())
}

/// A half's groups with records in the pass's first window, as
/// `(group number within the half, records, GUID hash)`, and how many
/// groups it numbered.
type HalfGroups = (Vec<(u32, u32, u64)>, u32);

/// What [`GroupWindow::take`] says of a record in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Taken {
    pub(super) gid: u32,
    /// The group's records not read yet after this one.
    pub(super) left: u32,
    /// How many there were before it (the group's size, at its first).
    pub(super) size: u32,
    /// The group's key in the index.
    pub(super) guid_hash: u64,
}

/// What every half of [`GroupWindow::pass`] shares.
struct HalfPass<'a> {
    index: &'a IndexReader,
    /// The file being built, named in errors.
    path: &'a Path,
    first: u64,
    window: u64,
    end: u64,
    per_bucket: u64,
    slot: &'a [AtomicU32],
}

impl HalfPass<'_> {
    /// The groups of the GUID hashes in `hashes`: those with records in
    /// window `first` as `(group number within the half, records from
    /// the window's start)`, each record's slot set to its group's place
    /// in that list `or`'d with `mark`; each later window's part written to
    /// its bucket of `buckets`; and the number of groups the half numbered
    /// (those without records below `end` too).
    fn run(
        &self,
        hashes: RangeInclusive<u64>,
        mark: u32,
        buckets: &mut [Bucket],
    ) -> Result<HalfGroups> {
        let (first, window, end) = (self.first, self.window, self.end);
        let start = first * window;
        let mut groups: Vec<(u32, u32, u64)> = Vec::new();
        let mut offsets: Vec<u64> = Vec::new();
        let mut entry: Vec<u8> = Vec::new();
        let mut failed: Option<io::Error> = None;
        let mut gid = 0u32;
        self.index
            .for_each_guid_group_in(hashes, |hash, hits| {
                offsets.clear();
                offsets.extend(
                    hits.iter()
                        .map(|h| h.offset)
                        .filter(|&o| o >= start && o < end),
                );
                offsets.sort_unstable();
                let mut i = 0;
                while i < offsets.len() && failed.is_none() {
                    let w = offsets[i] / window;
                    let n = offsets[i..].partition_point(|&o| o / window == w);
                    let left = u32::try_from(offsets.len() - i).unwrap_or(u32::MAX);
                    let here = &offsets[i..i + n];
                    if w == first {
                        let place = groups.len() as u32 | mark;
                        for &o in here {
                            if let Some(s) = self.slot.get((o - start) as usize) {
                                s.store(place, Ordering::Relaxed);
                            }
                        }
                        groups.push((gid, left, hash));
                    } else if let Some(bucket) =
                        buckets.get_mut(((w - first - 1) / self.per_bucket) as usize)
                    {
                        entry.clear();
                        entry.extend_from_slice(&w.to_le_bytes());
                        entry.extend_from_slice(&gid.to_le_bytes());
                        entry.extend_from_slice(&left.to_le_bytes());
                        entry.extend_from_slice(&(n as u32).to_le_bytes());
                        entry.extend_from_slice(&hash.to_le_bytes());
                        for &o in here {
                            entry.extend_from_slice(&((o - w * window) as u32).to_le_bytes());
                        }
                        if let Err(e) = bucket.append(&entry) {
                            failed = Some(e);
                        }
                    }
                    i += n;
                }
                gid += 1;
            })
            .map_err(StoreError::from)?;
        match failed {
            Some(e) => Err(io_error(self.path)(e)),
            None => Ok((groups, gid)),
        }
    }
}

impl Bucket {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Bucket::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
            Bucket::Writing(out) => out.write_all(bytes),
            Bucket::Written(_) => Err(io::Error::other("a window bucket already written")),
        }
    }

    /// Done writing: the file's buffer flushed, ready to be read.
    fn finish(&mut self) -> io::Result<()> {
        if let Bucket::Writing(_) = self {
            let Bucket::Writing(out) = std::mem::replace(self, Bucket::Memory(Vec::new())) else {
                return Ok(());
            };
            *self = Bucket::Written(out.into_inner().map_err(|e| e.into_error())?);
        }
        Ok(())
    }
}
