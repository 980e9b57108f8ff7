//! The index's errors. Every redb error names the index file; a damaged or
//! foreign-version file says how to recover (`ccvault reindex`), since the
//! index is derived from the log.

use std::path::Path;

use crate::INDEX_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error("index {path} is version {found}, this ccvault reads version {INDEX_VERSION}: run `ccvault reindex`")]
    Version { path: String, found: u64 },
    #[error("index {path}: {what}: run `ccvault reindex`")]
    Corrupt { path: String, what: String },
}

pub type Result<T> = std::result::Result<T, IndexError>;

impl IndexError {
    /// The I/O error this is, if it is one (a full disk, a refused file),
    /// not anything about the file's contents.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            IndexError::Redb {
                source: redb::Error::Io(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// Whether the file needs the repair a crashed writer leaves, which a
    /// read-only open does not make (the next writer's open makes it).
    pub fn needs_repair(&self) -> bool {
        matches!(
            self,
            IndexError::Redb {
                source: redb::Error::RepairAborted,
                ..
            }
        )
    }

    /// Whether the file is open in another handle that holds its lock
    /// (this process's or another's): nothing about the file's contents.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            IndexError::Redb {
                source: redb::Error::DatabaseAlreadyOpen,
                ..
            }
        )
    }
}

/// Names the index file a redb error happened in: the one conversion every
/// storage call of this crate goes through.
pub(crate) trait AtPath<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T, E: Into<redb::Error>> AtPath<T> for std::result::Result<T, E> {
    /// A damaged file says so, with the command that replaces it.
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| {
            let source = e.into();
            match crate::redb_damage(&source) {
                Some(why) => IndexError::Corrupt {
                    path: path.display().to_string(),
                    what: format!("the index file is damaged ({why})"),
                },
                None => IndexError::Redb {
                    path: path.display().to_string(),
                    source,
                },
            }
        })
    }
}
