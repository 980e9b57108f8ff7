//! The ccvault archive: the segment log and its index behind one facade.
//!
//! Guarantees:
//! - An [`Archive`] is the only writer of its directory (a `flock`ed
//!   `writer.lock`; a second writer gets an error naming the holder's pid).
//! - [`Archive::append_batch`] returns only when the batch is durable (per
//!   the fsync policy), its postings in the index's open transaction:
//!   readers see them at the next index commit (every
//!   `index_commit_records` records or `index_commit_interval`, and at
//!   close: 2^18 records or 1 s by default). A crash at any moment loses nothing it
//!   returned: reopening indexes whatever reached the log after the last
//!   index commit (open time depends on that tail, not on the archive size).
//! - A payload is stored once, unless a later copy's record gives its event
//!   an earlier-ranked time (docs/METRICS.md §2; a time-less event
//!   published earlier, or received live after an import); importing the
//!   same messages again stores nothing. Every message has an outcome
//!   (archived, quarantined, duplicate, or rejected over a limit).
//! - [`ArchiveReader`] works while a writer runs and sees the archive as of
//!   one index commit; and on a disk that refuses writes, where an index a
//!   killed writer left needing repair is repaired in memory, never on
//!   disk.
//! - An index is used only where its checkpoint fits the log beside it
//!   (`fit`): another archive's `index.redb` is rebuilt, never mixed in.
//! - Files are created `0600`, directories `0700`.

mod archive;
mod error;
pub mod facts;
mod fit;
mod gzip;
mod import;
mod layout;
mod pause;
mod reader;
mod segments;
mod split;
mod verify;

pub use archive::{
    create_private_file, message_bound, now_ms, open_private_file, records_indexed_from_log,
    Archive, ArchiveOptions, BatchReport, Incoming, OpenReport, Outcome, Prepared,
    INDEXING_FOR_A_READ, LARGEST_RECORD_LIMIT,
};
pub use ccvault_index::overlay::Overlay;
pub use ccvault_index::{
    compact_if_it_frees_enough, guard_redb, guid_hash, install_panic_hook, payload_hash,
    redb_damage, unguarded, Counters, Hit, IndexReader, INDEX_VERSION,
};
/// An error and its causes on one line (`: ` between them).
pub use ccvault_log::display_chain;
/// The log's formats this build writes, and the oldest segment format it reads.
pub use ccvault_log::format::{
    FORMAT_VERSION as SEGMENT_FORMAT, OLDEST_READABLE_VERSION as OLDEST_SEGMENT_FORMAT,
};
pub use ccvault_log::vfs::is_write_refusal;
pub use ccvault_log::SEGZ_VERSION;
pub use ccvault_log::{
    segz_file_name, Compression, Damage, FsyncPolicy, Position, Record, RecordKind, RecordRef,
    SourceKind, LOCK_GRACE,
};
pub use error::{Result, StoreError};
pub use import::{
    direct_by_size, import_stream, import_stream_as, maybe_gunzip, open_input_file, open_stdin,
    refused_file, refused_input, DirectRead, Import, ImportSummary, OpenedInput, Progress,
    Rejected,
};
pub use layout::Layout;
pub use pause::{PauseProbe, WatchedInput, PAUSE};
pub use reader::{require_archive, ArchiveReader, CatchUp, Stats, VisibleRecords};
pub use split::InputFormat;
pub use verify::{verify, VerifyReport};

/// The tracing target of the warnings that say the archive lost something
/// it held (records the index had seen, a damaged record set aside on
/// open, a missing active segment): said even with `-q`, which keeps only
/// errors and these (docs/OPERATIONS.md, "Logs").
pub const LOSS_TARGET: &str = "ccvault_store::loss";
