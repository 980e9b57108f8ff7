//! Parquet exports of a ccvault archive, for the engines that analysts
//! already run (DuckDB, Spark, Trino, Athena, BigQuery): `ccvault export
//! --format parquet --out DIR` (docs/SCALE.md, "Querying the exports").
//!
//! Guarantees:
//! - Three tables as Hive partitions,
//!   `DIR/<table>/tenant=<t>/date=<YYYY-MM-DD>/part-<run>-<n>.parquet`:
//!   `events` (every archived event, unquarantined, with its archive
//!   metadata and its payload byte-exact), `interactions` (one row per leg,
//!   every column of the projections' `SUMMARY_COLUMNS`) and `agent-states`
//!   (one row per agent state span). The tenant is the one rule of
//!   `ccvault_projections::event_tenant` (a leg's: its summary's `tenant`);
//!   the date is in the export's zone; a missing value is the partition
//!   `__HIVE_DEFAULT_PARTITION__`.
//! - Typed columns: instants are TIMESTAMP(MILLIS, UTC), durations, counts
//!   and offsets INT64 (both DELTA_BINARY_PACKED), flags BOOLEAN, text
//!   dictionary-encoded STRING (the payload plain); zstd; row groups of
//!   about 128 MiB uncompressed.
//! - No reader ever sees a partly written file, and the checkpoint
//!   (`DIR/_ccvault_export.json`) moves only after the files it names are
//!   in place; an incremental run (`since_last`) leaves the same table
//!   contents as a full export of the same archive, with no row in two
//!   files (`run` says how).
//! - Bad input or a full disk is an error naming the file, never a panic.

mod changes;
mod checkpoint;
mod column;
mod dict;
mod durable;
mod error;
mod partition;
mod plain;
mod run;
mod stage;
mod tables;

pub use checkpoint::CHECKPOINT_FILE;
pub use error::{ExportError, Result};
pub use partition::NULL_PARTITION;
pub use run::{export, ExportOptions, ExportSummary, TableSummary};
pub use tables::Table;
