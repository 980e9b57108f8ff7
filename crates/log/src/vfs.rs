//! The file system seam: every file operation of the log (create, open,
//! read, write, fsync, truncate, rename, remove, list, directory fsync,
//! lock) goes through a
//! [`Vfs`], so that tests can put a simulated disk under the real writer,
//! recovery and readers (power loss, `tests/power_loss.rs`), the way SQLite's
//! crash VFS and redb's crash-consistency backend do.
//!
//! Guarantees:
//! - [`StdVfs`], the backend every caller gets unless it asks for another,
//!   is the operating system's file system with exactly the calls and flags
//!   the log made before the seam existed (`O_NOFOLLOW | O_CLOEXEC`, the
//!   ownership and mode checks of `private`, `O_DIRECT` where allowed,
//!   `flock` for the writer lock).
//! - The seam is crossed once per system call, through a trait object: the
//!   writer calls it once per 1 MiB buffer and once per fsync, readers once
//!   per `pread`, so dynamic dispatch costs nothing measurable next to the
//!   call it wraps.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::private::{check_private_dir, open_private, private_options};

/// How [`Vfs::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only.
    Read,
    /// Read and write an existing file.
    ReadWrite,
    /// Create a new file (mode 0600), failing if the name exists; read and write.
    CreateNew,
}

/// Something held while the writer owns its directory; dropping it lets
/// another writer in.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// A file system the log runs on.
pub trait Vfs: Send + Sync + std::fmt::Debug {
    /// Whether `path` is a directory (following a link, as the operator's
    /// own path to the data directory may be one).
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates the directory `dir` and its missing parents, mode 0700.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Refuses a directory others could tamper with (see `private`).
    fn check_private_dir(&self, dir: &Path, follow: bool) -> Result<()>;
    /// The names in `dir` that are valid UTF-8 (segment names always are).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// [`Vfs::list_dir`]'s names that `wanted` accepts, each with its file's
    /// length ([`Vfs::file_len`]; `None` when it could not be read, as for a
    /// file removed since the listing).
    fn list_dir_lens(
        &self,
        dir: &Path,
        wanted: &dyn Fn(&str) -> bool,
    ) -> io::Result<Vec<(String, Option<u64>)>> {
        Ok(self
            .list_dir(dir)?
            .into_iter()
            .filter(|n| wanted(n))
            .map(|n| {
                let len = self.file_len(&dir.join(&n)).ok();
                (n, len)
            })
            .collect())
    }
    /// Opens `path`; refuses a symlink or a file others could tamper with.
    /// `op` says what was being done, for the error.
    fn open(&self, path: &Path, mode: OpenMode, op: &'static str) -> Result<Arc<dyn VfsFile>>;
    /// The same file opened for direct I/O (`O_DIRECT`), or `None` where
    /// that is not available: then the caller uses the page cache.
    fn open_direct(&self, path: &Path, write: bool) -> Option<Arc<dyn VfsFile>>;
    /// The length of the file at `path`, without opening it.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Makes the creation of the entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to` (same directory), replacing `to`; atomic, and
    /// durable once the directory is fsynced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path` (open handles keep reading it); durable once
    /// the directory is fsynced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Takes the single-writer lock of `dir`.
    fn lock_dir(&self, dir: &Path) -> Result<LockGuard>;
}

/// An open file of a [`Vfs`]. Positions are absolute (`pread`/`pwrite`).
pub trait VfsFile: Send + Sync {
    /// Reads at most `buf.len()` bytes at `pos`; 0 at end of file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Makes the data written (and the length) durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current length of the file.
    fn size(&self) -> io::Result<u64>;
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdVfs;

impl StdVfs {
    /// The real file system as a shared [`Vfs`].
    pub fn shared() -> Arc<dyn Vfs> {
        Arc::new(StdVfs)
    }
}

impl Vfs for StdVfs {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    fn check_private_dir(&self, dir: &Path, follow: bool) -> Result<()> {
        check_private_dir(dir, follow)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Each length read relative to the directory being listed (`statx` on
    /// its descriptor), not by a path walked from the root again: the
    /// `stat` of each of 400 segments was most of `stats`'s cost that grew
    /// with the archive (docs/BENCHMARKS.md, "What grows in opening").
    fn list_dir_lens(
        &self,
        dir: &Path,
        wanted: &dyn Fn(&str) -> bool,
    ) -> io::Result<Vec<(String, Option<u64>)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !wanted(&name) {
                continue;
            }
            // `DirEntry::metadata` does not follow a link; `file_len` does.
            let len = match entry.metadata() {
                Ok(m) if m.file_type().is_symlink() => self.file_len(&entry.path()).ok(),
                Ok(m) => Some(m.len()),
                Err(_) => None,
            };
            out.push((name, len));
        }
        Ok(out)
    }

    fn open(&self, path: &Path, mode: OpenMode, op: &'static str) -> Result<Arc<dyn VfsFile>> {
        let mut options = private_options();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true).mode(0o600),
        };
        Ok(Arc::new(open_private(&options, path, op)?))
    }

    fn open_direct(&self, path: &Path, write: bool) -> Option<Arc<dyn VfsFile>> {
        let file = OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .ok()?;
        Some(Arc::new(file))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn lock_dir(&self, dir: &Path) -> Result<LockGuard> {
        // Taken under the archive's lock: only a reader's probe contends.
        Ok(Box::new(crate::lock::lock_dir_waiting(
            dir,
            crate::lock::LOCK_GRACE,
        )?))
    }
}

impl VfsFile for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// The whole of the file at `path`, or `None` if there is none; an error
/// if it holds more than `limit` bytes (the caller's bound on what it
/// would allocate). For the small derived files kept beside the log.
pub fn read_file(vfs: &dyn Vfs, path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match vfs.open(path, OpenMode::Read, "reading") {
        Ok(f) => f,
        Err(LogError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(into_io(e)),
    };
    let len = file.size()?;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than the {limit} expected"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    let got = crate::segment::read_full_at(file.as_ref(), path, &mut buf, 0).map_err(into_io)?;
    buf.truncate(got);
    Ok(Some(buf))
}

/// The operating system's error behind `e`, if it is one.
fn into_io(e: LogError) -> io::Error {
    match e {
        LogError::Io { source, .. } => source,
        e => io::Error::other(e.to_string()),
    }
}

/// Whether `e` is the file system refusing a write (a full disk, a quota,
/// a read-only file system, the file size limit, a file or directory this
/// user may not write), as against damage or a fault: what a reader may
/// work around and a writer must not take for a damaged file.
pub fn is_write_refusal(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull | QuotaExceeded | ReadOnlyFilesystem | FileTooLarge | PermissionDenied
    )
}

/// Removes the file `path` if it is there.
pub fn remove_if_exists(vfs: &dyn Vfs, path: &Path) -> io::Result<()> {
    match vfs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes `dir` exist (mode 0700), with the entry of every directory this
/// call created durable: a record acknowledged in a new archive must not
/// vanish with a directory entry a power cut took. The store creates its
/// directories with it too.
pub fn create_dir_durably(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !vfs.is_dir(p))
        .collect();
    if !missing.is_empty() {
        vfs.create_dir_all(dir)
            .map_err(|e| LogError::io("creating directory", dir, e))?;
    }
    for parent in missing.iter().rev().filter_map(|p| p.parent()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        vfs.sync_dir(parent)
            .map_err(|e| LogError::io("fsyncing directory", parent, e))?;
    }
    Ok(())
}
