//! A simulated disk under the log's file system seam, for power-loss tests
//! (after SQLite's crash VFS and redb's crash-consistency backend): the
//! log's, and the store's of the segments' facts, which include this file
//! by path.
//!
//! Every file has a durable image (what a power cut keeps) and a live image
//! (what the running program sees), plus the writes and truncations made
//! since its last fsync. Every directory entry is durable or not (created
//! since the last fsync of its directory). A cut is armed at one numbered
//! mutating operation: when the program reaches it, the power goes off
//! (that operation and everything after it fail) and the disk image that
//! survives is drawn at random within what real disks may do:
//! - a file's unsynced changes are all lost, all kept, kept up to a random
//!   byte of one write (a torn write, earlier ones whole), or kept sector by
//!   sector (each 512-byte sector old or new, as writeback goes in any
//!   order), with a length anywhere between the old and the new one;
//! - bytes that were fsynced are never changed;
//! - an entry created since its directory's last fsync is kept or lost
//!   (losing a directory loses everything under it);
//! - a rename since the directory's last fsync happened or not, atomically
//!   (the file is under exactly one of the two names); a removal since then
//!   happened or not.
//!
//! [`SimDisk::restart`] then powers the disk back on with that image.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ccvault_log::vfs::LockGuard;
use ccvault_log::{LogError, OpenMode, Vfs, VfsFile};

use super::Rng;

const SECTOR: usize = 512;

enum Change {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

struct Inode {
    durable: Vec<u8>,
    live: Vec<u8>,
    pending: Vec<Change>,
}

#[derive(Clone, Copy)]
enum Node {
    Dir,
    File(usize),
}

struct Entry {
    node: Node,
    durable: bool,
    /// Renamed here since the directory's last fsync, from this name, which
    /// was durable (or not): a cut keeps the file under one of the two.
    renamed_from: Option<(PathBuf, bool)>,
}

/// What survives a cut: directories and files with their bytes.
type Image = BTreeMap<PathBuf, Option<Vec<u8>>>;

struct State {
    entries: BTreeMap<PathBuf, Entry>,
    inodes: Vec<Inode>,
    /// Bumped at every restart: handles from before it are dead.
    generation: u64,
    /// Mutating operations so far (this generation).
    ops: u64,
    cut_at: Option<u64>,
    /// Set once the power is off.
    image: Option<Image>,
    rng: Rng,
    direct_io: bool,
    /// Durable entries removed since their directory's last fsync: a cut
    /// may bring them back.
    removed: Vec<(PathBuf, Node)>,
}

/// The simulated disk; clone it to share.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimDisk")
    }
}

fn power_off() -> io::Error {
    io::Error::other("simulated power cut: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimDisk {
    /// An empty disk (only `/`). `direct_io`: whether `open_direct` works.
    pub fn new(seed: u64, direct_io: bool) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                entries: BTreeMap::new(),
                inodes: Vec::new(),
                generation: 0,
                ops: 0,
                cut_at: None,
                image: None,
                rng: Rng(seed | 1),
                direct_io,
                removed: Vec::new(),
            })),
        }
    }

    pub fn vfs(&self) -> Arc<dyn Vfs> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power when the `n`th mutating operation from now (1 = the
    /// next) is about to run.
    pub fn arm_cut(&self, n: u64) {
        let mut s = self.lock();
        s.cut_at = Some(s.ops + n);
    }

    /// Mutating operations run since the last restart.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the power went off.
    pub fn is_cut(&self) -> bool {
        self.lock().image.is_some()
    }

    /// Cuts the power now (if it is still on).
    pub fn cut_now(&self) {
        let mut s = self.lock();
        if s.image.is_none() {
            s.cut(None);
        }
    }

    /// Powers the disk back on with what survived the cut (or, with the
    /// power still on, with everything as it is, all of it durable).
    pub fn restart(&self) {
        let mut s = self.lock();
        let image = match s.image.take() {
            Some(image) => image,
            None => s
                .entries
                .iter()
                .map(|(p, e)| {
                    let content = match e.node {
                        Node::Dir => None,
                        Node::File(i) => Some(s.inodes[i].live.clone()),
                    };
                    (p.clone(), content)
                })
                .collect(),
        };
        s.entries.clear();
        s.inodes.clear();
        for (path, content) in image {
            let node = match content {
                None => Node::Dir,
                Some(bytes) => {
                    s.inodes.push(Inode {
                        durable: bytes.clone(),
                        live: bytes,
                        pending: Vec::new(),
                    });
                    Node::File(s.inodes.len() - 1)
                }
            };
            s.entries.insert(
                path,
                Entry {
                    node,
                    durable: true,
                    renamed_from: None,
                },
            );
        }
        s.removed.clear();
        s.generation += 1;
        s.ops = 0;
        s.cut_at = None;
    }

    /// Puts a file with `bytes` at `path`, durable (directories must exist).
    pub fn put_file(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.lock();
        s.inodes.push(Inode {
            durable: bytes.clone(),
            live: bytes,
            pending: Vec::new(),
        });
        let node = Node::File(s.inodes.len() - 1);
        s.entries.insert(
            path.to_owned(),
            Entry {
                node,
                durable: true,
                renamed_from: None,
            },
        );
    }

    /// The live bytes of the file at `path`.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        match s.entries.get(path)?.node {
            Node::File(i) => Some(s.inodes[i].live.clone()),
            Node::Dir => None,
        }
    }

    /// Creates the directory `path` (and its parents), durable.
    pub fn put_dir(&self, path: &Path) {
        let mut s = self.lock();
        for p in path.ancestors().filter(|p| p.parent().is_some()) {
            s.entries.insert(
                p.to_owned(),
                Entry {
                    node: Node::Dir,
                    durable: true,
                    renamed_from: None,
                },
            );
        }
    }
}

impl State {
    /// Counts one mutating operation; cuts the power if it is the armed one.
    /// `write`: the data of the write about to run, which the cut may tear.
    fn tick(&mut self, write: Option<(usize, u64, &[u8])>) -> io::Result<()> {
        if self.image.is_some() {
            return Err(power_off());
        }
        self.ops += 1;
        if self.cut_at == Some(self.ops) {
            self.cut(write);
            return Err(power_off());
        }
        Ok(())
    }

    fn alive(&self, generation: u64) -> io::Result<()> {
        if self.image.is_some() || generation != self.generation {
            return Err(power_off());
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.parent().is_none()
            || matches!(self.entries.get(path), Some(e) if matches!(e.node, Node::Dir))
    }

    /// Draws what survives, now.
    fn cut(&mut self, in_flight: Option<(usize, u64, &[u8])>) {
        // The write being made as the power fails may reach the disk in part.
        if let Some((inode, pos, data)) = in_flight {
            let n = self.rng.below(data.len() as u64 + 1) as usize;
            if n > 0 {
                let part = data[..n].to_vec();
                apply(
                    &mut self.inodes[inode].live,
                    &Change::Write {
                        pos,
                        data: part.clone(),
                    },
                );
                self.inodes[inode]
                    .pending
                    .push(Change::Write { pos, data: part });
            }
        }
        let mut image = Image::new();
        let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for path in paths {
            let entry = &self.entries[&path];
            let (node, durable) = (entry.node, entry.durable);
            let renamed_from = entry.renamed_from.clone();
            let parent_kept = path
                .parent()
                .is_some_and(|p| p.parent().is_none() || image.get(p).is_some_and(Option::is_none));
            if !parent_kept {
                continue;
            }
            // A rename not yet durable: under the new name or the old one.
            let name = match renamed_from {
                Some((from, from_durable)) if !durable => {
                    if self.rng.below(2) == 0 {
                        Some(path)
                    } else if from_durable {
                        Some(from)
                    } else {
                        None
                    }
                }
                _ if durable || self.rng.below(2) == 0 => Some(path),
                _ => None,
            };
            let Some(name) = name else { continue };
            let content = match node {
                Node::Dir => None,
                Node::File(i) => Some(survivor(&mut self.rng, &self.inodes[i])),
            };
            image.insert(name, content);
        }
        // A removal not yet durable may be undone.
        let removed = std::mem::take(&mut self.removed);
        for (path, node) in removed {
            let parent_kept = path
                .parent()
                .is_some_and(|p| p.parent().is_none() || image.get(p).is_some_and(Option::is_none));
            if parent_kept && !image.contains_key(&path) && self.rng.below(2) == 0 {
                if let Node::File(i) = node {
                    let content = survivor(&mut self.rng, &self.inodes[i]);
                    image.insert(path, Some(content));
                }
            }
        }
        self.image = Some(image);
    }
}

/// The bytes of `inode` that survive the cut.
fn survivor(rng: &mut Rng, inode: &Inode) -> Vec<u8> {
    if inode.pending.is_empty() {
        return inode.durable.clone();
    }
    match rng.below(4) {
        0 => inode.durable.clone(),
        1 => inode.live.clone(),
        2 => {
            // In order, up to a random byte of one write.
            let upto = rng.below(inode.pending.len() as u64) as usize;
            let mut bytes = inode.durable.clone();
            for change in &inode.pending[..upto] {
                apply(&mut bytes, change);
            }
            match &inode.pending[upto] {
                Change::Write { pos, data } => {
                    let n = rng.below(data.len() as u64 + 1) as usize;
                    apply(
                        &mut bytes,
                        &Change::Write {
                            pos: *pos,
                            data: data[..n].to_vec(),
                        },
                    );
                }
                change @ Change::SetLen(_) => {
                    if rng.below(2) == 0 {
                        apply(&mut bytes, change);
                    }
                }
            }
            bytes
        }
        _ => {
            // Sector by sector, in any order.
            let (old, new) = (&inode.durable, &inode.live);
            let (lo, hi) = (old.len().min(new.len()), old.len().max(new.len()));
            let len = lo + rng.below((hi - lo) as u64 + 1) as usize;
            let mut bytes = vec![0u8; len];
            for start in (0..len).step_by(SECTOR) {
                let end = (start + SECTOR).min(len);
                let from = if rng.below(2) == 0 { old } else { new };
                for (k, b) in bytes[start..end].iter_mut().enumerate() {
                    *b = from.get(start + k).copied().unwrap_or(0);
                }
            }
            bytes
        }
    }
}

fn apply(bytes: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { pos, data } => {
            let pos = *pos as usize;
            if bytes.len() < pos + data.len() {
                bytes.resize(pos + data.len(), 0);
            }
            bytes[pos..pos + data.len()].copy_from_slice(data);
        }
        Change::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

struct SimFile {
    disk: SimDisk,
    generation: u64,
    inode: usize,
    writable: bool,
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.alive(self.generation)?;
        s.tick(None)?;
        let inode = &mut s.inodes[self.inode];
        inode.durable = inode.live.clone();
        inode.pending.clear();
        Ok(())
    }

    fn change(&self, change: Change) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let mut s = self.disk.lock();
        s.alive(self.generation)?;
        match &change {
            Change::Write { pos, data } => s.tick(Some((self.inode, *pos, data)))?,
            Change::SetLen(_) => s.tick(None)?,
        }
        let inode = &mut s.inodes[self.inode];
        apply(&mut inode.live, &change);
        inode.pending.push(change);
        Ok(())
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let s = self.disk.lock();
        s.alive(self.generation)?;
        let live = &s.inodes[self.inode].live;
        let from = (pos as usize).min(live.len());
        let n = buf.len().min(live.len() - from);
        buf[..n].copy_from_slice(&live[from..from + n]);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.change(Change::Write {
            pos,
            data: buf.to_vec(),
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(Change::SetLen(len))
    }
    fn size(&self) -> io::Result<u64> {
        let s = self.disk.lock();
        s.alive(self.generation)?;
        Ok(s.inodes[self.inode].live.len() as u64)
    }
}

impl Vfs for SimDisk {
    fn is_dir(&self, path: &Path) -> bool {
        self.lock().is_dir(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.alive(s.generation)?;
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|p| !s.is_dir(p))
            .map(Path::to_owned)
            .collect();
        for p in missing.into_iter().rev() {
            if s.entries.contains_key(&p) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            s.tick(None)?;
            s.entries.insert(
                p,
                Entry {
                    node: Node::Dir,
                    durable: false,
                    renamed_from: None,
                },
            );
        }
        Ok(())
    }

    fn check_private_dir(&self, dir: &Path, _follow: bool) -> Result<(), LogError> {
        if self.is_dir(dir) {
            Ok(())
        } else {
            Err(LogError::Io {
                op: "inspecting",
                path: dir.to_owned(),
                source: not_found(dir),
            })
        }
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        s.alive(s.generation)?;
        if !s.is_dir(dir) {
            return Err(not_found(dir));
        }
        Ok(s.entries
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
            .collect())
    }

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
        op: &'static str,
    ) -> Result<Arc<dyn VfsFile>, LogError> {
        let err = |e: io::Error| LogError::Io {
            op,
            path: path.to_owned(),
            source: e,
        };
        let mut s = self.lock();
        s.alive(s.generation).map_err(err)?;
        let inode = match (mode, s.entries.get(path).map(|e| e.node)) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(err(io::Error::from(io::ErrorKind::AlreadyExists)))
            }
            (OpenMode::CreateNew, None) => {
                if !path.parent().is_some_and(|p| s.is_dir(p)) {
                    return Err(err(not_found(path)));
                }
                s.tick(None).map_err(err)?;
                s.inodes.push(Inode {
                    durable: Vec::new(),
                    live: Vec::new(),
                    pending: Vec::new(),
                });
                let inode = s.inodes.len() - 1;
                s.entries.insert(
                    path.to_owned(),
                    Entry {
                        node: Node::File(inode),
                        durable: false,
                        renamed_from: None,
                    },
                );
                inode
            }
            (_, Some(Node::File(i))) => i,
            (_, Some(Node::Dir)) => return Err(err(io::Error::from_raw_os_error(libc::EISDIR))),
            (_, None) => return Err(err(not_found(path))),
        };
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            generation: s.generation,
            inode,
            writable: mode != OpenMode::Read,
        }))
    }

    fn open_direct(&self, path: &Path, write: bool) -> Option<Arc<dyn VfsFile>> {
        let s = self.lock();
        if !s.direct_io || s.image.is_some() {
            return None;
        }
        match s.entries.get(path)?.node {
            Node::File(inode) => Some(Arc::new(SimFile {
                disk: self.clone(),
                generation: s.generation,
                inode,
                writable: write,
            })),
            Node::Dir => None,
        }
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let s = self.lock();
        s.alive(s.generation)?;
        match s.entries.get(path).map(|e| e.node) {
            Some(Node::File(i)) => Ok(s.inodes[i].live.len() as u64),
            _ => Err(not_found(path)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.alive(s.generation)?;
        if !s.is_dir(dir) {
            return Err(not_found(dir));
        }
        s.tick(None)?;
        for (path, entry) in s.entries.iter_mut() {
            if path.parent() == Some(dir) {
                entry.durable = true;
                entry.renamed_from = None;
            }
        }
        s.removed.retain(|(p, _)| p.parent() != Some(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.alive(s.generation)?;
        let Some(entry) = s.entries.get(from) else {
            return Err(not_found(from));
        };
        if !matches!(entry.node, Node::File(_)) || from.parent() != to.parent() {
            return Err(io::Error::other(
                "the simulated disk renames files within a directory only",
            ));
        }
        s.tick(None)?;
        let Some(old) = s.entries.remove(from) else {
            return Err(not_found(from));
        };
        // Whatever `to` was is replaced; if it was durable, a cut may keep it
        // only when the rename is lost, which `removed` models.
        if let Some(replaced) = s.entries.remove(to) {
            if replaced.durable {
                let node = replaced.node;
                s.removed.push((to.to_owned(), node));
            }
        }
        let from_durable = old.durable && old.renamed_from.is_none();
        s.entries.insert(
            to.to_owned(),
            Entry {
                node: old.node,
                durable: false,
                renamed_from: Some((from.to_owned(), from_durable)),
            },
        );
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.alive(s.generation)?;
        match s.entries.get(path) {
            Some(e) if matches!(e.node, Node::File(_)) => {}
            Some(_) => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            None => return Err(not_found(path)),
        }
        s.tick(None)?;
        if let Some(e) = s.entries.remove(path) {
            if e.durable {
                s.removed.push((path.to_owned(), e.node));
            }
        }
        Ok(())
    }

    fn lock_dir(&self, _dir: &Path) -> Result<LockGuard, LogError> {
        // One process owns this disk: there is no one to lock out.
        Ok(Box::new(()))
    }
}
