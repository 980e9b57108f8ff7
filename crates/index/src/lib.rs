//! The ccvault index: redb tables that find records of the segment log.
//!
//! Guarantees and invariants:
//! - The log is the source of truth. Everything here is derived from it and
//!   can be rebuilt by replaying the log through [`IndexWriter::add_all`];
//!   two indexes built from the same log answer every query identically.
//! - The checkpoint is committed in the same transaction as the entries it
//!   covers: a reader never sees entries past it, nor a checkpoint ahead of
//!   its entries. After a crash the index is at some earlier checkpoint and
//!   the caller re-indexes the log tail past it.
//! - Postings are chunked: one commit writes, per GUID or agent, one value
//!   `(key hash, first offset) -> packed postings` (see [`chunk`]), so an
//!   interaction costs one B-tree entry per commit, not one per event, and
//!   nothing is ever rewritten. Keys are 64-bit hashes (xxh3): callers
//!   confirm a match against the record itself, so a collision costs a read,
//!   never a wrong answer.
//! - Posting keys lead with the record's generation ([`GENERATION_RECORDS`]
//!   offsets): a commit writes into the newest generation's part of each
//!   B-tree, so its cost does not grow with the archive.
//! - Deduplication finds candidates by payload hash: within the GUID's
//!   postings (which carry payload hashes) for events of an interaction, in
//!   a payload-hash table for every other record. A complete generation
//!   whose filter (module `filter`) rejects the key hash is skipped; a filter has
//!   no false negatives, so the candidates are exactly those a full lookup
//!   would find.
//! - Every generation stores, per table, the range of its keys' places
//!   (module `place`: an 8x8 GUID's creation time, a GUID-less payload's
//!   own event time), widened in the transaction that writes the keys. The
//!   duplicate check skips a sealed generation whose range does not admit
//!   a key's place (identical payloads have identical places: still exact),
//!   so the writer keeps only the newest generations' filters in memory.
//! - A GUID lookup reads, for each span of 32 generations, the one entry of
//!   `guid_blocks` that covers the GUID's hash, and descends only into the
//!   sealed generations it admits (and every generation it does not cover):
//!   its cost grows with the spans, not the generations, and the answer is
//!   that of a lookup in every generation.
//! - A writer accumulates a commit's entries in memory (bounded by how often
//!   the caller commits) and writes them in one transaction.
//!
//! Modules: `schema` (the tables, keys and what a record contributes),
//! `writer` (the single writer: opening the file, then `collect`ing a
//! commit in memory, `dedupe` lookups over it, the `commit` transaction),
//! `reader` (snapshots and lookups), `filter` (generation filters, span
//! filters, GUID blocks), `filter_check` (verify's check that each stored
//! filter holds its keys), `place` (key places and the generations' key
//! ranges),
//! `chunk` (packed postings), `keymap` (maps keyed by key hashes), `compaction` (when compacting a redb file
//! pays, for this crate's file and the projections'), `overlay` (a redb
//! file read as it is with every write kept in memory, for reads where the
//! disk refuses writes: this crate's file and the projections'), `error`,
//! and `guard` (redb panics on damaged files become errors).

pub mod chunk;
mod compaction;
mod error;
mod filter;
mod filter_check;
mod guard;
mod keymap;
mod lookup_check;
pub mod overlay;
mod place;
mod reader;
mod schema;
mod writer;

pub use compaction::compact_if_it_frees_enough;
pub use error::{IndexError, Result};
pub use guard::{guard_redb, install_hook as install_panic_hook, redb_damage, unguarded};
pub use keymap::{key_map, KeyHashing, KeyMap};
pub use place::{guid_place, time_place, ExpectedRanges};
pub use reader::IndexReader;
pub use schema::{
    agent_hash, guid_hash, payload_hash, Checkpoint, Counters, DroppedCounts, Entry, Hit,
    PackedTotals, PostingDigest, PostingKind, GENERATION_RECORDS, INDEX_VERSION, TIME_SLICE,
};
pub use writer::{Index, IndexWriter, Lookups, Written};
