use std::path::PathBuf;

/// Errors of the archive. Each names the file, record or input line at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] ccvault_log::LogError),
    #[error(transparent)]
    Index(#[from] ccvault_index::IndexError),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {dir} is locked by another writer{holder}; stop it or wait for it to finish (read commands work meanwhile)")]
    Locked { dir: PathBuf, holder: String },
    #[error("no archive at {0} (create one there with `ccvault --data-dir {0} import FILE`, or try a sample day with `ccvault demo`, which says where it put it and how to read it; or name another with --data-dir)")]
    NoArchive(PathBuf),
    #[error("{0} is a file, not an archive directory (--data-dir names the directory that holds log/ and index.redb)")]
    NotADirectory(PathBuf),
    /// The data directory is a symlink to nothing: creating it there would
    /// fail with "File exists" (the link), naming neither the link nor its
    /// target (until 2026-12-07; an outside audit).
    #[error("{dir} is a symbolic link to {target}, which does not exist: create that directory, or point --data-dir elsewhere")]
    DanglingLink { dir: PathBuf, target: PathBuf },
    /// Read while the writer that holds the archive has no index file in
    /// place: in the first instant of a new archive, or after the file was
    /// removed under a running writer.
    #[error("archive {dir} has no index.redb while a writer{holder} holds it (it is creating the archive, or the file was removed under it): try again in a moment, or once that writer has finished")]
    NoIndexYet { dir: PathBuf, holder: String },
    #[error("the archive writer stopped after an earlier error and must be reopened: {0}")]
    Poisoned(String),
    /// An older build's index, which only a writer can replace (a read
    /// needs it rebuilt from the log, and cannot write it).
    #[error("{index} is of index version {found}, an older build's: it is rebuilt from the log by the first command that can write the archive, and this one cannot ({why}); free space (or make the directory writable) and run any command, or `ccvault reindex`")]
    UpgradeNeedsWriter {
        index: PathBuf,
        found: u64,
        why: String,
    },
    /// A missing index, which only a writer can build (a read needs it
    /// built from the log, and cannot write it).
    #[error("{index} is missing: it is built from the log by the first command that can write the archive, and this one cannot ({why}); free space (or make the directory writable) and run any command, or `ccvault reindex`")]
    MissingIndexNeedsWriter { index: PathBuf, why: String },
    /// An index that has seen none of the log's records, which only a
    /// writer can fill: a read would answer as if the log held nothing.
    #[error("{index} indexes none of the log's records yet: they are indexed by the first command that can write the archive, and this one cannot ({why}); free space (or make the directory writable) and run any command, or `ccvault reindex`")]
    NothingIndexedNeedsWriter { index: PathBuf, why: String },
    /// A thread of the command stopped without its result (it panicked or
    /// could not be started): the command's answer would be incomplete.
    #[error("{0}: the command did not finish")]
    Thread(String),
    /// The duplicate check could not read an archived record that may be
    /// a copy of the message being archived: storing the message then
    /// might store it twice, so it is not stored (the writer stops).
    #[error("cannot read record {offset}, which may be a copy of a message being archived, to compare the two; that message was not archived, so that nothing is stored twice (free file descriptors, or make the segment readable, and go on; `ccvault verify` checks the log)")]
    UnreadableCopy {
        offset: u64,
        #[source]
        source: ccvault_log::LogError,
    },
    /// Input that cannot be imported at all (e.g. an XML capture).
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { what, path, source }
}
