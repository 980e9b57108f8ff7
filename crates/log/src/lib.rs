//! ccvault's append-only segment log.
//!
//! What this crate guarantees:
//! - Every appended record gets the next global offset (dense from 0) and is stored
//!   with its payload bytes exactly as given, framed and CRC-checked (CRC-32/IEEE).
//! - A record is a message or a tally ([`RecordKind`]); this crate stores both
//!   alike and says which each is: skipping tallies is for readers of messages.
//! - Segments of format version 1 (before tallies) are read; new records go
//!   only into segments of version 2 (`FORMAT_VERSION`).
//! - A record is durable once [`Log::flush`] (or [`Log::wait_durable`] after
//!   [`Log::flush_nowait`]) returns an offset above it (under
//!   [`FsyncPolicy::Always`], once `append` returns). Reopening after a crash keeps
//!   every durable record and truncates only a torn tail of the last segment.
//! - Sealed segments may be compressed (`.segz`, in the background, or
//!   [`Log::compact_sealed`], [`Log::wait_compressed`]): records keep their
//!   positions, readers read both kinds, and a crash at any point of a
//!   compression leaves one complete copy of every segment.
//! - No corrupted record is ever served: readers return an error or a [`Damage`], and
//!   damage never hides the valid records after it (scans resynchronise).
//! - No byte pattern on disk makes this crate panic.
//! - One writer per directory (an `flock`), any number of readers, also from other
//!   processes, while it writes.
//! - No file of the log is opened through a symbolic link, or when another user
//!   owns it or group or others may write it (`private`).
//!
//! The on-disk format is documented in `docs/FORMAT.md`. Modules, each with one job:
//! [`format`](mod@format) (bytes), `segment` (files), `segz` (compressed sealed segments), `compact` (making them, and tidying after a crash), `compressor` (the writer's background thread that does), `direct` (the appender's `O_DIRECT` writes), `scan` (sequential reading with resync), `window` (its chunked reads),
//! `writer` (appending), `flusher` (the writer's file I/O thread), `input` (an import's input file read with `O_DIRECT`), `recovery` (torn tails), `reader` (random access and scans),
//! `verify` (full check), `lock` (single writer), `private` (safe opening of files others could tamper with), `options` (the writer's options),
//! [`vfs`] (the file system seam every file operation goes through; tests put a simulated disk under it).

mod compact;
mod compressor;
mod direct;
mod error;
mod flusher;
pub mod format;
mod input;
mod lock;
mod options;
mod private;
mod reader;
mod recovery;
mod scan;
mod segment;
mod segz;
mod verify;
pub mod vfs;
mod window;
mod writer;

pub use compact::Compacted;
pub use compressor::Drainer;
pub use error::{display_chain, LogError};
pub use flusher::DurableWaiter;
pub use format::{
    LaterSource, NewRecord, Record, RecordKind, RecordRef, SourceKind, Tally, FORMAT_VERSION,
    HEADER_LEN, MAX_BODY_LEN, MAX_FIELD_LEN, OLDEST_READABLE_VERSION, RESERVED_SOURCE_CODES,
    TALLY_PAYLOAD_LEN,
};
pub use input::{DirectInput, DIRECT_CHUNK};
pub use lock::{
    held_for, lock_dir, lock_dir_for, lock_dir_waiting, writer_running, DirLock, LOCK_FILE_NAME,
    LOCK_GRACE,
};
pub use options::{FsyncPolicy, LogOptions, DEFAULT_SEGMENT_BYTES};
pub use private::{check_private_dir, create_private_file, open_private, private_options};
pub use reader::{LogReader, ScanControl};
pub use recovery::Recovery;
pub use scan::{Damage, DamageReason, Scan, ScanItem, ScanRef};
pub use segment::{segment_file_name, segz_file_name, PackedSegments};
pub use segz::{Compression, SEGZ_VERSION};
pub use verify::{verify, verify_with, VerifyReport};
pub use vfs::{OpenMode, StdVfs, Vfs, VfsFile};
pub use writer::{Log, RewrittenHeader, WRITE_BUFFER_BYTES};

/// Where a record lives: the segment (by base offset) and the byte position of the
/// record's frame in that segment file. Ordered like the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    /// Base offset of the segment (its first record's offset; names the file).
    pub segment: u64,
    /// Byte position of the record in the segment file.
    pub pos: u32,
}

impl Position {
    /// The start of the log (scan from here to read everything).
    pub const START: Position = Position { segment: 0, pos: 0 };
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", segment_file_name(self.segment), self.pos)
    }
}
