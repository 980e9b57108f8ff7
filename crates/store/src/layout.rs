//! Where an archive keeps its files.

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

    /// Whether `path` is one of the archive's own files (a segment, facts,
    /// the index, the projections, their scratch files, the lock): both
    /// as the file system resolves them (canonical), so that a symlink or
    /// `..` cannot hide it. An input named so would feed the archive its
    /// own bytes.
    pub fn owns(&self, path: &Path) -> bool {
        let Ok(dir) = std::fs::canonicalize(&self.dir) else {
            return false;
        };
        let Ok(path) = std::fs::canonicalize(path) else {
            return false;
        };
        if path.starts_with(dir.join("log")) || path.starts_with(dir.join("facts")) {
            return true;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        path.parent() == Some(dir.as_path())
            && (name.starts_with("index.redb")
                || name.starts_with("projections.redb")
                || name == "writer.lock")
    }
}
