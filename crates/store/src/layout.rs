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
}
