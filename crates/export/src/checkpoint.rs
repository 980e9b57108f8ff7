//! The checkpoint of an export directory: `_ccvault_export.json`, what the
//! last completed run left in place.
//!
//! Invariants: it names every data file of the export (per table and
//! partition) and nothing else; it is replaced atomically (temporary file,
//! sync, rename, directory sync) and only after every file it names is in
//! place, so after a crash it describes a complete export. Files of the
//! table directories that it does not name are leftovers of an interrupted
//! run, which the next run deletes before writing. The leading `_` keeps
//! Hive, Spark and Trino from reading it as data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::changes::ChangesRef;
use crate::durable::sync_dir;
use crate::error::{io, ExportError, Result};
use crate::partition::{create_new, data_file_run, is_partition_dir};
use crate::tables::Table;

pub const CHECKPOINT_FILE: &str = "_ccvault_export.json";
const FORMAT: &str = "ccvault-parquet-export";
const VERSION: u32 = 1;

/// One partition of one table as the checkpoint knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// A hash of the partition's rows (tables rewritten by partition);
    /// `None` for `events`, whose partitions only gain files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub files: Vec<String>,
    pub rows: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub format: String,
    pub version: u32,
    /// The number of the last completed run (file names carry it).
    pub run: u64,
    /// The IANA name of the zone the dates are in.
    pub tz: String,
    /// The tenant of a tenant's export; absent for the whole archive
    /// (as in checkpoints written before tenants' exports existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Records below this offset are in the `events` table.
    pub events_end: u64,
    /// What the other tables were computed from (absent in checkpoints
    /// written before it existed: their next run compares every partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Sources>,
    /// Table name → partition (`tenant=…/date=…`) → its files.
    pub tables: BTreeMap<String, BTreeMap<String, PartState>>,
    /// The agent status changes of the log below `events_end`, saved
    /// beside the checkpoint ([`crate::changes`]); absent in a tenant's
    /// export and in checkpoints written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_changes: Option<ChangesRef>,
    /// The last record the run found below `events_end` (always below
    /// it: a checkpoint saying otherwise is refused), which the next incremental run
    /// finds again before it trusts `events_end` (absent when that record
    /// is in a damaged place, and in checkpoints written before it
    /// existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record: Option<RecordMark>,
    /// xxh3-64 (hex) of the file as written without this field: a flipped
    /// digit of `eventsEnd` would make the next run export rows again, a
    /// file name's would lose one. Only in the file: [`Checkpoint::load`]
    /// checks and clears it, [`Checkpoint::store`] sets it (absent in
    /// checkpoints written before 2026-12-06, which are not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// One record of the log: where it is and a hash of its payload. Positions
/// never change (compression keeps them), so the same log holds the same
/// record there; a log that lost records since (their offsets then taken
/// by others) or another archive does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordMark {
    pub offset: u64,
    pub segment: u64,
    pub pos: u32,
    /// `ccvault_store::payload_hash` of its payload, in hex.
    pub payload_hash: String,
    /// Its ingest time: the same payload archived again at the same place
    /// (a lost tail imported again) is another record, with other
    /// metadata. Absent from checkpoints written before 2026-12-07 (until
    /// then such a refilled log was exported from as if unchanged: an
    /// outside audit), which are compared without it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "ingestTime"
    )]
    pub ingest_ms: Option<i64>,
}

/// What `interactions` and `agent-states` are a function of, besides the
/// log up to `events_end`: the projections' version, the records they
/// have applied and the largest t(e) they saw (open agent spans end
/// there), and the export's own code (its version and columns). When a
/// run finds the same sources and no new record, no row of any table can
/// differ, so it reads nothing and writes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sources {
    pub projection_version: Option<i64>,
    pub consumed: u64,
    pub max_time_ms: Option<i64>,
    pub interactions: u64,
    /// `ccvault <version>` and a hash of every table's columns.
    pub writer: String,
}

impl Checkpoint {
    pub fn empty(tz: String, run: u64, tenant: Option<String>) -> Checkpoint {
        Checkpoint {
            format: FORMAT.to_owned(),
            version: VERSION,
            run,
            tz,
            tenant,
            events_end: 0,
            sources: None,
            tables: BTreeMap::new(),
            agent_changes: None,
            last_record: None,
            checksum: None,
        }
    }

    /// The checksum of the checkpoint's text without its checksum.
    fn checksum(&self) -> serde_json::Result<String> {
        let plain = Checkpoint {
            checksum: None,
            ..self.clone()
        };
        let text = serde_json::to_vec_pretty(&plain)?;
        Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&text)))
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CHECKPOINT_FILE)
    }

    /// The checkpoint of `dir`, `None` when it has none.
    pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = Checkpoint::path(dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let bad = |why: String| ExportError::Checkpoint {
            path: path.clone(),
            why,
        };
        let mut c: Checkpoint = serde_json::from_slice(&text).map_err(|e| {
            bad(format!(
                "not a checkpoint ({e}); remove the directory and export again"
            ))
        })?;
        if let Some(stored) = c.checksum.take() {
            let sum = c
                .checksum()
                .map_err(|e| bad(format!("cannot be checked ({e})")))?;
            if sum != stored {
                return Err(bad(format!(
                    "its content does not match its checksum ({stored}, the content's {sum}): it was changed or damaged since the export wrote it, and a run trusting it could export rows twice or lose files; remove the directory and export again"
                )));
            }
        }
        if c.format != FORMAT || c.version != VERSION {
            return Err(bad(format!(
                "format {} version {} is not {FORMAT} version {VERSION}",
                c.format, c.version
            )));
        }
        if let Some(m) = c.last_record.as_ref().filter(|m| m.offset >= c.events_end) {
            return Err(bad(format!(
                "says the events end at {} but names a record at offset {} as exported; remove the directory and export again",
                c.events_end, m.offset
            )));
        }
        // Its names become paths that a run deletes: one that is not a
        // table, a partition or a data file as this export names them
        // (`../..`, a file another tool wrote) is refused, never followed.
        for (table, parts) in &c.tables {
            if !Table::ALL.iter().any(|t| t.name() == table) {
                return Err(bad(format!(
                    "names the table {table:?}, which this export does not write; remove the directory and export again"
                )));
            }
            for (part, st) in parts {
                if !is_partition_dir(part) {
                    return Err(bad(format!(
                        "names the partition {part:?} of {table}, which is not `tenant=…/date=…`; remove the directory and export again"
                    )));
                }
                if let Some(f) = st.files.iter().find(|f| data_file_run(f).is_none()) {
                    return Err(bad(format!(
                        "names the file {f:?} in {table}/{part}, which is not a data file this export writes; remove the directory and export again"
                    )));
                }
            }
        }
        Ok(Some(c))
    }

    /// Replaces the checkpoint of `dir` atomically and durably.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let unwritable = |e: serde_json::Error| ExportError::Checkpoint {
            path: Checkpoint::path(dir),
            why: e.to_string(),
        };
        let sealed = Checkpoint {
            checksum: Some(self.checksum().map_err(unwritable)?),
            ..self.clone()
        };
        let mut text = serde_json::to_vec_pretty(&sealed).map_err(unwritable)?;
        text.push(b'\n');
        replace_file(dir, CHECKPOINT_FILE, &text)
    }

    /// Every file the checkpoint names, as paths relative to the export
    /// directory.
    pub fn files(&self) -> impl Iterator<Item = String> + '_ {
        self.tables.iter().flat_map(|(table, parts)| {
            parts.iter().flat_map(move |(part, st)| {
                st.files.iter().map(move |f| format!("{table}/{part}/{f}"))
            })
        })
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably: written to
/// `.name.tmp`, synced, renamed, the directory synced.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove", &tmp)(e)),
    }
    let mut f = create_new(&tmp)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io("cannot write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io("cannot rename into place", &path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), None);
        let mut c = Checkpoint::empty("UTC".into(), 3, Some("acme".into()));
        c.events_end = 42;
        c.tables.entry("events".into()).or_default().insert(
            "tenant=a/date=2025-11-24".into(),
            PartState {
                hash: None,
                files: vec!["part-000003-0000.parquet".into()],
                rows: 7,
            },
        );
        c.store(dir.path()).unwrap();
        c.store(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(c.clone()));
        assert_eq!(
            c.files().collect::<Vec<_>>(),
            vec!["events/tenant=a/date=2025-11-24/part-000003-0000.parquet"]
        );
        // Names that would lead a run's deletions elsewhere are refused.
        for (table, part, file) in [
            (
                "events",
                "tenant=a/date=2025-11-24",
                "../../../../victim.txt",
            ),
            ("events", "../../elsewhere", "part-000003-0000.parquet"),
            ("events", "tenant=a/date=x/y", "part-000003-0000.parquet"),
            (
                "../x",
                "tenant=a/date=2025-11-24",
                "part-000003-0000.parquet",
            ),
            (
                "events",
                "tenant=a/date=2025-11-24",
                "part-00000-abc.snappy.parquet",
            ),
        ] {
            let mut bad = c.clone();
            bad.tables.clear();
            bad.tables.entry(table.into()).or_default().insert(
                part.into(),
                PartState {
                    hash: None,
                    files: vec![file.into()],
                    rows: 1,
                },
            );
            bad.store(dir.path()).unwrap();
            let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains(CHECKPOINT_FILE), "{table} {part} {file}: {e}");
        }
        std::fs::write(Checkpoint::path(dir.path()), b"{").unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(CHECKPOINT_FILE) && e.contains("not a checkpoint"),
            "{e}"
        );
    }

    /// A changed digit, wherever it is, is caught by the checksum: a
    /// smaller `eventsEnd` would make the next run export its rows again
    /// (an audit flipped one bit: 10,217 rows twice, exit 0). A checkpoint
    /// written before the checksum loads unchecked; one whose last record
    /// does not end its events is refused.
    #[test]
    fn a_changed_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::empty("UTC".into(), 2, None);
        c.events_end = 198_089;
        c.last_record = Some(RecordMark {
            offset: 198_088,
            segment: 3,
            pos: 4096,
            payload_hash: "00ff".into(),
            ingest_ms: Some(1),
        });
        c.tables.entry("events".into()).or_default().insert(
            "tenant=a/date=2025-11-24".into(),
            PartState {
                hash: None,
                files: vec!["part-000002-0000.parquet".into()],
                rows: 12_373,
            },
        );
        c.store(dir.path()).unwrap();
        let path = Checkpoint::path(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"checksum\""), "{text}");
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(c.clone()));
        for (from, to) in [
            ("198089", "188089"),
            ("12373", "12372"),
            ("000002", "000003"),
        ] {
            assert!(text.contains(from), "{from}");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("checksum") && e.contains(CHECKPOINT_FILE),
                "{from}: {e}"
            );
        }
        // Written before checksums: not checked, but still consistent.
        let old = |c: &Checkpoint| {
            let mut text = serde_json::to_vec_pretty(c).unwrap();
            text.push(b'\n');
            std::fs::write(&path, text).unwrap();
        };
        old(&c);
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(c.clone()));
        let mut moved = c.clone();
        moved.events_end = 188_089;
        old(&moved);
        let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("188089") && e.contains("198088"), "{e}");
    }
}
