//! The writer's options: segment size, fsync policy, direct I/O, compression. Their own
//! module so that the writer and the flusher thread both depend on it
//! rather than on each other. `FsyncPolicy` parses and prints the names the
//! CLI's `--fsync` flag takes, so there is one list of them.

use crate::segz::Compression;

/// Default segment size (64 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When appended data is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FsyncPolicy {
    /// Write and fsync after every append.
    Always,
    /// Group commit: write and fsync at each `flush` (the default).
    #[default]
    Batch,
    /// Write at each `flush`, never fsync (sealed segments are still fsynced).
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "batch" => Ok(FsyncPolicy::Batch),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(format!(
                "unknown fsync policy `{other}` (expected always, batch or never)"
            )),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Batch => "batch",
            FsyncPolicy::Never => "never",
        })
    }
}

/// Options of the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment when the next record would push the file past this
    /// size. Clamped to `[HEADER_LEN + 1, 4 GiB - 1 - max record]`.
    pub segment_bytes: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Write whole blocks with `O_DIRECT` where the file system allows it
    /// (see `direct`): the segments' appends and the compressor's `.segz`;
    /// `false` always goes through the page cache.
    pub direct_io: bool,
    /// Compress each sealed segment into a `.segz` on a background thread
    /// (and, at open, those left as `.seg`); `None` keeps them as they are.
    pub compression: Option<Compression>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::Batch,
            direct_io: true,
            compression: Some(Compression::default()),
        }
    }
}
