//! Sorted runs of keys on scratch files, merged in key order: how a rebuild
//! fills the tables whose keys begin with a hash (`interaction_offered`,
//! `tenant_guids`) or a GUID (`children`), and `agent_status` (its rows,
//! key and value, arrive a batch at a time across all agents). Inserted as the interactions
//! complete, such keys land all over their table, so every intermediate
//! commit rewrote most of its leaves and redb re-read the ones its cache no
//! longer held: bytes written and read per event grew with the archive
//! (issue 17: 64 B written an event at 1M, 245 at 10M). Merged at the end,
//! each table is filled in ascending order, each leaf written once and
//! packed full.
//!
//! Memory is bounded by [`RUN_BYTES`] a table, whatever the archive's size;
//! the scratch files are unlinked as soon as they are created (where the
//! platform allows), so a crash leaves nothing behind.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Keys a table's run holds in memory before it is sorted and written out
/// (by their in-memory size): 3 tables, 8 MiB each.
const RUN_BYTES: usize = 8 << 20;
/// Runs merged at once; past this, the runs so far are merged into one
/// first, so the open files stay few however large the archive.
const MAX_RUNS: usize = 64;
/// The read buffer of each run during a merge.
const READ_BUFFER: usize = 64 << 10;

/// A key a run can hold: written and read back in a compact form.
pub(crate) trait RunKey: Ord + Sized {
    /// Bytes it takes in memory, for the run's budget.
    fn footprint(&self) -> usize;
    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;
    /// The next key, `None` at the end of the run.
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>>;
}

fn read_word(input: &mut impl Read) -> io::Result<[u8; 8]> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(b)
}

pub(crate) fn write_bytes(out: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| io::Error::other("a key longer than 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(b)
}

pub(crate) fn read_bytes(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(b) as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

pub(crate) fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    write_bytes(out, s.as_bytes())
}

pub(crate) fn read_str(input: &mut impl Read) -> io::Result<String> {
    String::from_utf8(read_bytes(input)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// True at the end of the run (nothing left to read).
pub(crate) fn at_end(input: &mut impl BufRead) -> io::Result<bool> {
    Ok(input.fill_buf()?.is_empty())
}

/// A fixed-width key part, stored as its 8 little-endian bytes.
pub(super) trait Word: Ord + Sized {
    fn to_bytes(&self) -> [u8; 8];
    fn from_bytes(b: [u8; 8]) -> Self;
}

impl Word for u64 {
    fn to_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_bytes(b: [u8; 8]) -> Self {
        u64::from_le_bytes(b)
    }
}

impl Word for u32 {
    fn to_bytes(&self) -> [u8; 8] {
        u64::from(*self).to_le_bytes()
    }
    fn from_bytes(b: [u8; 8]) -> Self {
        let [a, b, c, d, ..] = b;
        u32::from_le_bytes([a, b, c, d])
    }
}

impl Word for i64 {
    fn to_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_bytes(b: [u8; 8]) -> Self {
        i64::from_le_bytes(b)
    }
}

impl<A: Word, B: Word> RunKey for (A, B) {
    fn footprint(&self) -> usize {
        std::mem::size_of::<(Self, u32)>()
    }
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.0.to_bytes())?;
        out.write_all(&self.1.to_bytes())
    }
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        let a = A::from_bytes(read_word(input)?);
        Ok(Some((a, B::from_bytes(read_word(input)?))))
    }
}

impl RunKey for String {
    fn footprint(&self) -> usize {
        std::mem::size_of::<(Self, u32)>() + self.capacity()
    }
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, self)
    }
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        read_str(input).map(Some)
    }
}

impl RunKey for (String, String) {
    fn footprint(&self) -> usize {
        std::mem::size_of::<(Self, u32)>() + self.0.capacity() + self.1.capacity()
    }
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.0)?;
        write_str(out, &self.1)
    }
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        Ok(Some((read_str(input)?, read_str(input)?)))
    }
}

/// The keys one table receives during a rebuild, each with how many times
/// it was pushed: sorted runs on scratch files plus the run in memory.
pub(crate) struct Runs<K: RunKey> {
    /// Where scratch files go; `None` keeps everything in memory (a rebuild
    /// of projections that are not saved).
    dir: Option<PathBuf>,
    /// Scratch file names begin with this.
    stem: String,
    pending: Vec<(K, u32)>,
    pending_bytes: usize,
    /// [`RUN_BYTES`] and [`MAX_RUNS`] but in tests.
    run_bytes: usize,
    max_runs: usize,
    files: Vec<File>,
    made: usize,
}

impl<K: RunKey> Runs<K> {
    /// Runs whose scratch files are `<base>.<name>.<n>` (`base: None`: in
    /// memory).
    pub(crate) fn new(base: Option<&Path>, name: &str) -> Runs<K> {
        let (dir, stem) = match base {
            Some(base) => {
                let file = base.file_name().map(|f| f.to_string_lossy().into_owned());
                (
                    Some(base.parent().unwrap_or(Path::new(".")).to_path_buf()),
                    format!("{}.{name}", file.unwrap_or_default()),
                )
            }
            None => (None, String::new()),
        };
        Runs {
            dir,
            stem,
            pending: Vec::new(),
            pending_bytes: 0,
            run_bytes: RUN_BYTES,
            max_runs: MAX_RUNS,
            files: Vec::new(),
            made: 0,
        }
    }

    /// Runs of at most `run_bytes` each, merged past `max_runs`: small
    /// values make a test spill and merge.
    #[cfg(test)]
    pub(crate) fn with_limits(mut self, run_bytes: usize, max_runs: usize) -> Runs<K> {
        self.run_bytes = run_bytes;
        self.max_runs = max_runs;
        self
    }

    pub(crate) fn push(&mut self, key: K, count: u32) -> io::Result<()> {
        self.pending_bytes += key.footprint();
        self.pending.push((key, count));
        if self.pending_bytes >= self.run_bytes && self.dir.is_some() {
            self.spill()?;
        }
        Ok(())
    }

    /// The keys in memory, sorted, with the counts of equal keys added up.
    fn sorted_pending(&mut self) -> Vec<(K, u32)> {
        let mut keys = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, u32)> = Vec::with_capacity(keys.len());
        for (k, n) in keys {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = last.1.saturating_add(n),
                _ => out.push((k, n)),
            }
        }
        out
    }

    fn scratch(&mut self) -> io::Result<File> {
        let dir = self.dir.as_deref().unwrap_or(Path::new("."));
        let path = dir.join(format!("{}.{}", self.stem, self.made));
        self.made += 1;
        scratch_file(&path)
    }

    fn spill(&mut self) -> io::Result<()> {
        let keys = self.sorted_pending();
        let file = self.scratch()?;
        let mut out = BufWriter::with_capacity(READ_BUFFER, file);
        for (k, n) in &keys {
            k.write_to(&mut out)?;
            out.write_all(&n.to_le_bytes())?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        self.files.push(file);
        if self.files.len() >= self.max_runs {
            let files = std::mem::take(&mut self.files);
            let file = self.scratch()?;
            let mut out = BufWriter::with_capacity(READ_BUFFER, file);
            merge_runs(
                files,
                Vec::new(),
                |k: K, n: u32| -> io::Result<()> {
                    k.write_to(&mut out)?;
                    out.write_all(&n.to_le_bytes())
                },
                |e| e,
            )?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            self.files.push(file);
        }
        Ok(())
    }

    /// As [`Runs::merge`], keeping the runs for another pass.
    pub(crate) fn replay<E>(
        &mut self,
        put: impl FnMut(K, u32) -> Result<(), E>,
        io: impl Fn(io::Error) -> E,
    ) -> Result<(), E>
    where
        K: Clone,
    {
        let memory = self.sorted_pending();
        self.pending_bytes = memory.iter().map(|(k, _)| k.footprint()).sum();
        self.pending = memory.clone();
        let files = self
            .files
            .iter()
            .map(File::try_clone)
            .collect::<io::Result<Vec<File>>>()
            .map_err(&io)?;
        merge_runs(files, memory, put, io)
    }

    /// Calls `put` with every key in ascending order, once, with the sum of
    /// its counts; a scratch file's error goes through `io`.
    pub(crate) fn merge<E>(
        mut self,
        put: impl FnMut(K, u32) -> Result<(), E>,
        io: impl Fn(io::Error) -> E,
    ) -> Result<(), E> {
        let memory = self.sorted_pending();
        let files = std::mem::take(&mut self.files);
        merge_runs(files, memory, put, io)
    }
}

/// A new scratch file at `path`, owner-only (it holds GUIDs), unlinked at
/// once where the platform allows an open file to be, so a crash leaves
/// nothing behind.
pub(crate) fn scratch_file(path: &Path) -> io::Result<File> {
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path)?;
    let _ = std::fs::remove_file(path);
    Ok(file)
}

/// One run being merged: its next key and the rest.
struct Head<K> {
    key: K,
    count: u32,
    /// Which run (past the files: the one in memory).
    from: usize,
}

impl<K: Ord> PartialEq for Head<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<K: Ord> Eq for Head<K> {}
impl<K: Ord> PartialOrd for Head<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Head<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

fn read_entry<K: RunKey>(input: &mut impl BufRead) -> io::Result<Option<(K, u32)>> {
    let Some(k) = K::read_from(input)? else {
        return Ok(None);
    };
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(Some((k, u32::from_le_bytes(b))))
}

/// Merges sorted runs (files written by [`Runs::spill`], and one in
/// memory) into `put`, equal keys' counts added up.
fn merge_runs<K: RunKey, E>(
    files: Vec<File>,
    memory: Vec<(K, u32)>,
    mut put: impl FnMut(K, u32) -> Result<(), E>,
    io: impl Fn(io::Error) -> E,
) -> Result<(), E> {
    let mut readers = Vec::with_capacity(files.len());
    for mut f in files {
        f.seek(SeekFrom::Start(0)).map_err(&io)?;
        readers.push(BufReader::with_capacity(READ_BUFFER, f));
    }
    let memory_run = readers.len();
    let mut memory = memory.into_iter();
    let mut next = |from: usize| -> io::Result<Option<(K, u32)>> {
        match readers.get_mut(from) {
            Some(r) => read_entry(r),
            None => Ok(memory.next()),
        }
    };
    let mut heap = BinaryHeap::new();
    for from in 0..=memory_run {
        if let Some((key, count)) = next(from).map_err(&io)? {
            heap.push(Reverse(Head { key, count, from }));
        }
    }
    let mut current: Option<(K, u32)> = None;
    while let Some(Reverse(head)) = heap.pop() {
        if let Some((key, count)) = next(head.from).map_err(&io)? {
            heap.push(Reverse(Head {
                key,
                count,
                from: head.from,
            }));
        }
        current = match current {
            Some((k, n)) if k == head.key => Some((k, n.saturating_add(head.count))),
            Some((k, n)) => {
                put(k, n)?;
                Some((head.key, head.count))
            }
            None => Some((head.key, head.count)),
        };
    }
    if let Some((k, n)) = current {
        put(k, n)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every key of `runs` with its count, as the merge gives them.
    pub(crate) fn merged<K: RunKey>(runs: Runs<K>) -> Vec<(K, u32)> {
        let mut out = Vec::new();
        runs.merge(
            |k, n| -> io::Result<()> {
                out.push((k, n));
                Ok(())
            },
            |e| e,
        )
        .unwrap();
        out
    }

    #[test]
    fn merges_spilled_runs_in_order_adding_up_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p.redb.rebuild");
        let mut runs: Runs<(u64, i64)> = Runs::new(Some(&base), "offered");
        runs.run_bytes = 24 * 1000;
        runs.max_runs = 8;
        let mut expected = std::collections::BTreeMap::new();
        // Enough keys to spill many runs, merging runs early more than once.
        let n = 1000 * 20 + 17;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys among many: repeats across runs.
            let key = (x % 5003, (i % 3) as i64 - 1);
            runs.push(key, 1).unwrap();
            *expected.entry(key).or_insert(0u32) += 1;
        }
        assert!(runs.made > 2 * runs.max_runs, "spilled {} runs", runs.made);
        // Unlinked as soon as created: nothing in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let got = merged(runs);
        let want: Vec<((u64, i64), u32)> = expected.into_iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn strings_round_trip_through_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p.redb.rebuild");
        let mut runs: Runs<(String, String)> = Runs::new(Some(&base), "children");
        let pairs = [("b", "é2"), ("a", ""), ("b", "1"), ("a", "")];
        for (p, c) in pairs {
            runs.push((p.to_owned(), c.to_owned()), 1).unwrap();
        }
        runs.spill().unwrap();
        runs.push(("a".to_owned(), "z".to_owned()), 2).unwrap();
        let got = merged(runs);
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            got,
            vec![
                (s("a", ""), 2),
                (s("a", "z"), 2),
                (s("b", "1"), 1),
                (s("b", "é2"), 1)
            ]
        );
    }

    #[test]
    fn in_memory_runs_never_touch_the_disk() {
        let mut runs: Runs<(u64, u64)> = Runs::new(None, "guids");
        runs.run_bytes = 24 * 100;
        for i in (0..1000u64).rev() {
            runs.push((i % 7, i), 1).unwrap();
        }
        assert_eq!(runs.made, 0);
        let got = merged(runs);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(got.len(), 1000);
    }
}
