//! Where an archive keeps its files.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// Each sealed segment's facts (docs/FORMAT.md §5).
    pub fn facts_dir(&self) -> PathBuf {
        self.dir.join("facts")
    }
    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.redb")
    }
    pub fn scratch_index_path(&self) -> PathBuf {
        self.dir.join("index.redb.rebuild")
    }
    pub fn projections_path(&self) -> PathBuf {
        self.dir.join("projections.redb")
    }

    /// The device and inode of each of the archive's own files (its
    /// segments, facts, index, projections and their scratch files, the
    /// lock), to tell an input that is one of them however it is named:
    /// a symlink, `..`, a hard link, a bind mount, stdin redirected from
    /// it. An input read so would feed the archive its own bytes. Empty
    /// for an archive not created yet.
    pub fn own_files(&self) -> HashSet<(u64, u64)> {
        let mut own = HashSet::new();
        let mut add = |dir: &Path, wanted: &dyn Fn(&str) -> bool| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !wanted(&name.to_string_lossy()) {
                    continue;
                }
                if let Ok(meta) = std::fs::symlink_metadata(entry.path()) {
                    own.insert((meta.dev(), meta.ino()));
                }
            }
        };
        add(&self.log_dir(), &|n| {
            n.ends_with(".seg")
                || n.ends_with(".segz")
                || n.ends_with(".tmp")
                || n.ends_with(".lock")
        });
        add(&self.facts_dir(), &|n| n.contains(".facts"));
        add(&self.dir, &|n| {
            n.starts_with("index.redb") || n.starts_with("projections.redb") || n == "writer.lock"
        });
        own
    }
}
