//! Opening archive files on a machine others share.
//!
//! Guarantees:
//! - Every archive file is opened with `O_NOFOLLOW` and `O_CLOEXEC`: a
//!   symlink planted where an archive file belongs is refused, never followed
//!   to truncate or append to its target, and no child process inherits the
//!   descriptor.
//! - A file is checked on the open descriptor (`fstat`, so nothing can be
//!   swapped in between) and a directory before use: one owned by another
//!   user, or writable by its group or by others, is refused with an error
//!   naming it and saying why, before a byte is read or written.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{LogError, Result};

/// `OpenOptions` with the flags every archive file is opened with.
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Opens `path` with `options` (from [`private_options`]) and refuses it
/// unless it is a regular file this user owns that group and others cannot
/// write. `op` says what was being done, for the error.
pub fn open_private(options: &OpenOptions, path: &Path, op: &'static str) -> Result<File> {
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            LogError::NotPrivate {
                path: path.to_path_buf(),
                why: "it is a symbolic link (archive files are never followed through links)"
                    .to_owned(),
            }
        } else {
            LogError::io(op, path, e)
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| LogError::io("inspecting", path, e))?;
    if meta.is_dir() {
        // What reading it would have said anyway, and what operators know.
        return Err(LogError::io(
            op,
            path,
            std::io::Error::from_raw_os_error(libc::EISDIR),
        ));
    }
    if !meta.is_file() {
        return Err(LogError::NotPrivate {
            path: path.to_path_buf(),
            why: "it is not a regular file".to_owned(),
        });
    }
    check_owner_and_mode(path, &meta)?;
    Ok(file)
}

/// Creates `path` owner-only (0600) unless it exists, with the refusals of
/// [`open_private`], for a database that initializes the file itself by
/// path (redb would create it with the umask's mode, and follow a planted
/// symlink): the one way the index and the projections files are created.
pub fn create_private_file(path: &Path) -> Result<()> {
    let mut options = private_options();
    options.write(true).create(true).truncate(false).mode(0o600);
    open_private(&options, path, "creating").map(drop)
}

/// Refuses the directory `dir` unless this user owns it and group and
/// others cannot write it. The operator names the data directory, so a
/// symlink to it is followed; directories inside it are not (`follow`).
pub fn check_private_dir(dir: &Path, follow: bool) -> Result<()> {
    let meta = if follow {
        std::fs::metadata(dir)
    } else {
        std::fs::symlink_metadata(dir)
    }
    .map_err(|e| LogError::io("inspecting", dir, e))?;
    if !meta.is_dir() {
        return Err(LogError::NotPrivate {
            path: dir.to_path_buf(),
            why: if meta.file_type().is_symlink() {
                "it is a symbolic link (archive directories are never followed through links)"
            } else {
                "it is not a directory"
            }
            .to_owned(),
        });
    }
    check_owner_and_mode(dir, &meta)
}

fn check_owner_and_mode(path: &Path, meta: &Metadata) -> Result<()> {
    let me = effective_uid();
    if meta.uid() != me {
        return Err(LogError::NotPrivate {
            path: path.to_path_buf(),
            why: format!(
                "it is owned by user id {}, not by this user (id {me})",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(LogError::NotPrivate {
            path: path.to_path_buf(),
            why: format!(
                "its mode {:o} lets its group or others write it (chmod go-w)",
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}
