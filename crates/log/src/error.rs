//! Errors of the segment log.
//!
//! Invariants:
//! - Every error that concerns bytes on disk names the file and, where there is one,
//!   the byte position inside it.
//! - Nothing in this crate panics on bytes read from disk: such bytes produce a
//!   [`LogError`] (random access) or a `Damage` (scans), never a panic.

use std::io;
use std::path::PathBuf;

/// Error of the segment log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system I/O error (including a full disk).
    #[error("I/O error while {op} {path}")]
    Io {
        /// What was being done ("writing", "fsyncing", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A record (or segment header) failed validation: bad magic, impossible length,
    /// CRC mismatch or malformed body. The record is not served.
    #[error("corrupt data in {} at byte {pos}: {what}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte position of the record (or header) in that file.
        pos: u64,
        /// What is wrong.
        what: String,
    },

    /// There is no record at the requested position (past the end of the data,
    /// inside the segment header, or the segment does not exist).
    #[error("no record in {} at byte {pos}: {what}", file.display())]
    NoRecord {
        /// The segment file.
        file: PathBuf,
        /// Requested byte position.
        pos: u64,
        /// Why there is no record there.
        what: String,
    },

    /// The segment file declares a format version this build cannot read.
    #[error("{} has {what} version {version}, {}", file.display(), readable_versions(*version, *oldest, *supported))]
    UnsupportedVersion {
        /// The segment file.
        file: PathBuf,
        /// Which version: "segment format" or ".segz container".
        what: &'static str,
        /// The version found in its header.
        version: u16,
        /// The oldest version this build reads.
        oldest: u16,
        /// The version this build writes (and the newest it reads).
        supported: u16,
    },

    /// A segment file whose well-formed header states another segment than
    /// its name: files renamed, or one copied into the log directory.
    /// Opening for writing would take its records for damage (their
    /// offsets repeat or go back) and a `reindex` would leave them out.
    #[error(
        "{} holds the segment of base offset {holds} (its header says so, or its first record where the header is damaged), not the one its name gives: \
         segment files renamed, or a file copied into the log directory; the log's files were left as \
         they are: rename it to {} (if that name is taken by a file holding another segment, the two \
         were swapped: rename both; if by the same segment, this one is a copy: move it out of the log \
         directory) and open again",
        file.display(),
        rightful.display()
    )]
    Misnamed {
        /// The file.
        file: PathBuf,
        /// The base its header states.
        holds: u64,
        /// The name it should have.
        rightful: PathBuf,
    },

    /// Another writer holds the log directory.
    #[error("log {} is already open for writing by another writer ({holder}); only one writer may run at a time", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// Who holds the lock, e.g. "pid 1234", as recorded in the lock file.
        holder: String,
    },

    /// An archive file or directory that may not be trusted: a symbolic
    /// link, owned by another user, or writable by group or others.
    #[error("refusing {}: {why}", path.display())]
    NotPrivate {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// A string field of a new record is longer than the format allows.
    #[error("record field `{field}` is {len} bytes long, the maximum is {max} bytes")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },

    /// A new tally record that is quarantined or whose payload is not a
    /// tally's 16 bytes.
    #[error(
        "a tally record must carry exactly a tally's 16-byte payload and must not be quarantined"
    )]
    MalformedTally,

    /// A new record is larger than the format allows.
    #[error("record body would be {len} bytes, the maximum is {max} bytes")]
    RecordTooLarge {
        /// Encoded body length.
        len: u64,
        /// The maximum.
        max: u64,
    },

    /// The log's last record claims the highest offset there is, so no
    /// record can follow it (only a damaged log can say so).
    #[error("log {} has no offset left for a new record: its last record claims offset {}", dir.display(), u64::MAX)]
    OffsetsExhausted {
        /// The log directory.
        dir: PathBuf,
    },

    /// An earlier write or fsync failed; the writer refuses further work because the
    /// state of the file tail is unknown. Drop the `Log` and open it again: recovery
    /// truncates any torn tail.
    #[error("log writer stopped after an earlier error ({reason}); reopen the log to recover")]
    Poisoned {
        /// The earlier error.
        reason: String,
    },
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// `e` and its causes, joined by `": "` (as `anyhow`'s `{:#}` prints them):
/// for keeping an error as text. The error types name their cause only
/// through `source()`, so `to_string()` alone would drop it. A cause that
/// the text before it already ends with (an error that names its source
/// and also returns it) is not written twice.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// The end of an [`LogError::UnsupportedVersion`] message: what this build
/// reads, and who could have written the file.
fn readable_versions(version: u16, oldest: u16, supported: u16) -> String {
    let reads = if oldest == supported {
        format!("this build reads only version {supported}")
    } else {
        format!("this build reads versions {oldest} to {supported}")
    };
    if version > supported {
        format!("{reads}: a newer ccvault wrote it")
    } else {
        format!("{reads}: no ccvault writes version {version}, the file is damaged or not a ccvault file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_error_names_what_this_build_reads() {
        let e = |version, oldest, supported| {
            LogError::UnsupportedVersion {
                file: PathBuf::from("x.segz"),
                what: ".segz container",
                version,
                oldest,
                supported,
            }
            .to_string()
        };
        assert_eq!(
            e(2, 1, 1),
            "x.segz has .segz container version 2, this build reads only version 1: a newer ccvault wrote it"
        );
        assert_eq!(
            e(3, 1, 2),
            "x.segz has .segz container version 3, this build reads versions 1 to 2: a newer ccvault wrote it"
        );
        assert!(e(0, 1, 2)
            .ends_with("no ccvault writes version 0, the file is damaged or not a ccvault file"));
    }
}
