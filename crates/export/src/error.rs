//! What can stop an export: each error names the file or the directory.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write Parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("export checkpoint {path}: {why}")]
    Checkpoint { path: PathBuf, why: String },
    /// A directory that is not an export of ccvault, or an export made
    /// another way than this run asks for.
    #[error("{0}")]
    Refused(String),
    /// A value that does not fit its column: a bug, reported instead of a
    /// panic or a wrong file.
    #[error("table {table}, column {column}: {why}")]
    Column {
        table: &'static str,
        column: &'static str,
        why: String,
    },
    /// A run that failed once it had begun writing files, and whether
    /// the files it had put in place were removed again.
    #[error("run {run} did not complete ({}): {source}", if !*rolled_back {
        "removing the files it had written failed too: until the next run removes them, query engines may read rows of a rewritten partition twice"
    } else if *run == 1 {
        "the files it had written were removed: the directory holds no export yet"
    } else {
        "the files it had written were removed: the directory holds the last complete run's tables"
    })]
    RunFailed {
        run: u64,
        rolled_back: bool,
        source: Box<ExportError>,
    },
    #[error(transparent)]
    Store(#[from] ccvault_store::StoreError),
    #[error(transparent)]
    Projections(#[from] ccvault_projections::ProjectionError),
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// Maps an `io::Error` to [`ExportError::Io`] naming `what` and `path`.
pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.into();
    move |source| ExportError::Io { what, path, source }
}
