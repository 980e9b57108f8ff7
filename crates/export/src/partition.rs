//! Hive partitions (`tenant=<t>/date=<YYYY-MM-DD>`) and the writer that
//! fills their files.
//!
//! Invariants:
//! - A partition's path is a function of its key alone: the tenant escaped
//!   as Hive and Spark escape partition values, a missing tenant or date as
//!   [`NULL_PARTITION`], which Hive, Spark and DuckDB read as null.
//! - A file is visible under its final name only once complete: it is
//!   written under a hidden temporary name (`.part-…​.tmp`, which engines
//!   skip), synced, then renamed; [`TableWriter::finish`] also syncs the
//!   directories, so the files it names survive a crash.
//! - Row groups hold about `row_group_bytes` of uncompressed values; when the
//!   rows buffered over all partitions pass `memory_bytes`, the largest
//!   buffer is written out early (a smaller row group), so memory stays
//!   bounded whatever the number of partitions.
//! - Encoding, compression and file I/O run on one writer thread per
//!   table, fed one row group at a time (at most one queued), while the
//!   caller reads and parses the next rows; the first error of either side
//!   ends the export.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::column::{schema, ColumnError, Rows, Spec};
use crate::error::{io, ExportError, Result};
use crate::tables::Table;

/// The partition value Hive and Spark write for null, which DuckDB also
/// reads as null.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Where a row goes: its tenant and its date in the export's time zone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub tenant: Option<String>,
    pub date: Option<Date>,
}

impl PartitionKey {
    /// `tenant=<t>/date=<YYYY-MM-DD>`, relative to the table's directory.
    pub fn rel_dir(&self) -> String {
        let tenant = match &self.tenant {
            Some(t) => escape(t),
            None => NULL_PARTITION.to_owned(),
        };
        let date = match self.date {
            Some(d) => d.to_string(),
            None => NULL_PARTITION.to_owned(),
        };
        format!("tenant={tenant}/date={date}")
    }
}

/// A partition value as Hive (`FileUtils.escapePathName`) and Spark
/// (`ExternalCatalogUtils.escapePathName`) write it: `%XX` for control
/// characters and ``"#%'*/:=?\{[]^`` and DEL, so a tenant cannot name
/// another directory.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let special = c < ' ' || c == '\u{7f}' || "\"#%'*/:=?\\{[]^".contains(c);
        if special {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Dates of epoch-ms instants in one time zone, remembering the last day
/// (rows come mostly in time order, and a zone lookup per row would cost
/// more than the rest of the row).
pub struct Dates {
    tz: TimeZone,
    /// `[start, end)` of the last day looked up, and its date.
    last: Option<(i64, i64, Date)>,
}

impl Dates {
    pub fn new(tz: TimeZone) -> Dates {
        Dates { tz, last: None }
    }

    /// The date of `ms` in the zone; `None` outside the range of dates.
    pub fn of(&mut self, ms: i64) -> Option<Date> {
        if let Some((start, end, d)) = self.last {
            if (start..end).contains(&ms) {
                return Some(d);
            }
        }
        let date = Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned_datetime(self.tz.clone())
            .date();
        let start = date.to_zoned_datetime(self.tz.clone()).ok();
        let end = date
            .tomorrow()
            .ok()
            .and_then(|t| t.to_zoned_datetime(self.tz.clone()).ok());
        if let (Some(s), Some(e)) = (start, end) {
            let (s, e) = (
                s.timestamp().as_millisecond(),
                e.timestamp().as_millisecond(),
            );
            if (s..e).contains(&ms) {
                self.last = Some((s, e, date));
            }
        }
        Some(date)
    }
}

/// A file written by a run, in place under its final name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub partition: String,
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

struct OpenFile {
    writer: SerializedFileWriter<File>,
    tmp: PathBuf,
    name: String,
    rows: u64,
    /// When a row group last went to it (to close the idlest file).
    last_write: u64,
}

/// Files open at once at most; past it the idlest is finished (its
/// partition gets another file if more rows come).
const MAX_OPEN_FILES: usize = 64;

/// The files of one table being written: encoding, compression and file
/// I/O, on their own thread (while the caller parses the next rows).
struct Files {
    dir: PathBuf,
    run: u64,
    schema: Arc<Type>,
    props: Arc<WriterProperties>,
    open: BTreeMap<PartitionKey, OpenFile>,
    /// The next file number of each partition in this run.
    next: BTreeMap<PartitionKey, u32>,
    writes: u64,
    done: Vec<NewFile>,
    dirs: Vec<PathBuf>,
}

impl Files {
    /// Writes `rows` as a row group of `key`'s open file (opened first if
    /// needed) and empties them.
    fn write(&mut self, key: &PartitionKey, rows: &mut Rows) -> Result<()> {
        if !self.open.contains_key(key) {
            if self.open.len() >= MAX_OPEN_FILES {
                let idlest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_write)
                    .map(|(k, _)| k.clone());
                if let Some(k) = idlest {
                    self.finish_file(&k)?;
                }
            }
            self.open_file(key)?;
        }
        self.writes += 1;
        let Some(file) = self.open.get_mut(key) else {
            return Ok(());
        };
        file.rows += rows.len() as u64;
        file.last_write = self.writes;
        rows.write_row_group(&mut file.writer)
            .map_err(|source| ExportError::Parquet {
                path: file.tmp.clone(),
                source,
            })
    }

    fn open_file(&mut self, key: &PartitionKey) -> Result<()> {
        let rel = key.rel_dir();
        let dir = self.dir.join(&rel);
        create_dirs(&dir)?;
        let n = self.next.entry(key.clone()).or_insert(0);
        let name = format!("part-{:06}-{:04}.parquet", self.run, *n);
        *n += 1;
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = create_new(&tmp)?;
        let writer = SerializedFileWriter::new(file, self.schema.clone(), self.props.clone())
            .map_err(|source| ExportError::Parquet {
                path: tmp.clone(),
                source,
            })?;
        self.open.insert(
            key.clone(),
            OpenFile {
                writer,
                tmp,
                name,
                rows: 0,
                last_write: 0,
            },
        );
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
        Ok(())
    }

    /// Completes `key`'s open file: footer, sync, rename to its final name.
    fn finish_file(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        let OpenFile {
            writer,
            tmp,
            name,
            rows,
            ..
        } = file;
        let inner = writer.into_inner().map_err(|source| ExportError::Parquet {
            path: tmp.clone(),
            source,
        })?;
        inner.sync_all().map_err(io("cannot sync", &tmp))?;
        let bytes = inner.metadata().map(|m| m.len()).unwrap_or(0);
        drop(inner);
        let rel = key.rel_dir();
        let final_path = self.dir.join(&rel).join(&name);
        std::fs::rename(&tmp, &final_path).map_err(io("cannot rename into place", &final_path))?;
        self.done.push(NewFile {
            partition: rel,
            name,
            rows,
            bytes,
        });
        Ok(())
    }

    /// Completes every file and syncs the directories that received one.
    fn finish(mut self) -> Result<Vec<NewFile>> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        for k in &keys {
            self.finish_file(k)?;
        }
        for d in &self.dirs {
            sync_dir(d)?;
        }
        Ok(self.done)
    }

    /// The writer thread: row groups in, files out. Files are completed
    /// only on [`Msg::Finish`]: when the caller stops on an error instead,
    /// they stay under their hidden temporary names (the next run removes
    /// them), so a failed run puts nothing in place.
    fn serve(mut self, msgs: Receiver<Msg>) -> Result<Vec<NewFile>> {
        for msg in msgs {
            match msg {
                Msg::Group(key, mut rows) => self.write(&key, &mut rows)?,
                Msg::Finish => return self.finish(),
            }
        }
        Err(ExportError::Refused(
            "the export stopped before its files were complete".into(),
        ))
    }
}

/// What the writer thread is sent.
enum Msg {
    Group(PartitionKey, Rows),
    Finish,
}

/// Writes the rows of one table into its partitions' new files: rows are
/// buffered here by partition, and each full buffer goes to the writer
/// thread as one row group.
pub struct TableWriter {
    table: Table,
    specs: Vec<Spec>,
    parts: BTreeMap<PartitionKey, Rows>,
    buffered: usize,
    row_group_bytes: usize,
    memory_bytes: usize,
    groups: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<Result<Vec<NewFile>>>>,
}

impl TableWriter {
    /// A writer of `table` under `dir` (the table's directory) for run `run`.
    pub fn new(
        table: Table,
        dir: PathBuf,
        run: u64,
        row_group_bytes: usize,
        memory_bytes: usize,
    ) -> Result<TableWriter> {
        let specs = table.specs();
        let parquet_err = |source| ExportError::Parquet {
            path: dir.clone(),
            source,
        };
        let schema = schema(&specs).map_err(parquet_err)?;
        let props = Arc::new(properties(&specs).map_err(parquet_err)?);
        let files = Files {
            dir,
            run,
            schema,
            props,
            open: BTreeMap::new(),
            next: BTreeMap::new(),
            writes: 0,
            done: Vec::new(),
            dirs: Vec::new(),
        };
        // One row group queued while one is written: the parse and the
        // encoding overlap, and memory stays at two groups past the buffers.
        let (tx, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("export-{}", table.name()))
            .spawn(move || files.serve(rx))
            .map_err(io("cannot start the writer thread for", table.name()))?;
        Ok(TableWriter {
            table,
            specs,
            parts: BTreeMap::new(),
            buffered: 0,
            row_group_bytes,
            memory_bytes,
            groups: Some(tx),
            thread: Some(thread),
        })
    }

    /// Adds one row to `key`'s partition: `push` writes its columns.
    pub fn row(
        &mut self,
        key: &PartitionKey,
        push: impl FnOnce(&mut Rows) -> Result<(), ColumnError>,
    ) -> Result<()> {
        if !self.parts.contains_key(key) {
            self.parts.insert(key.clone(), Rows::new(&self.specs));
        }
        let table = self.table.name();
        let Some(rows) = self.parts.get_mut(key) else {
            return Ok(());
        };
        let before = rows.bytes();
        push(rows).map_err(|e| ExportError::Column {
            table,
            column: e.column,
            why: e.why,
        })?;
        let after = rows.bytes();
        self.buffered += after.saturating_sub(before);
        if after >= self.row_group_bytes {
            self.flush(key)?;
        } else if self.buffered > self.memory_bytes {
            let largest = self
                .parts
                .iter()
                .max_by_key(|(_, r)| r.bytes())
                .map(|(k, _)| k.clone());
            if let Some(k) = largest {
                self.flush(&k)?;
            }
        }
        Ok(())
    }

    /// Hands `key`'s buffered rows to the writer thread as a row group.
    fn flush(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(rows) = self.parts.get_mut(key) else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let next = rows.empty_like();
        let full = std::mem::replace(rows, next);
        self.buffered = self.buffered.saturating_sub(full.bytes());
        self.send(Msg::Group(key.clone(), full))
    }

    fn send(&mut self, msg: Msg) -> Result<()> {
        let sent = match &self.groups {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.join().and_then(|_| {
            Err(ExportError::Refused(format!(
                "the writer thread of table {} ended early",
                self.table.name()
            )))
        })
    }

    fn join(&mut self) -> Result<Vec<NewFile>> {
        self.groups = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ExportError::Refused(format!(
                "the writer thread of table {} failed",
                self.table.name()
            ))),
            None => Err(ExportError::Refused(format!(
                "the writer of table {} was already finished",
                self.table.name()
            ))),
        }
    }

    /// Writes what is buffered, completes every file and syncs the
    /// directories that received one; returns the files in place.
    pub fn finish(mut self) -> Result<Vec<NewFile>> {
        for (key, rows) in std::mem::take(&mut self.parts) {
            if !rows.is_empty() {
                self.send(Msg::Group(key, rows))?;
            }
        }
        self.send(Msg::Finish)?;
        self.join()
    }
}

/// zstd, dictionary-encoded strings (not the payload), statistics per
/// page, format 1.0 pages (every engine reads them).
fn properties(specs: &[Spec]) -> parquet::errors::Result<WriterProperties> {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_created_by(format!("ccvault {}", env!("CARGO_PKG_VERSION")));
    for s in specs {
        b = b.set_column_dictionary_enabled(ColumnPath::from(s.name), s.dictionary);
    }
    Ok(b.build())
}

/// Creates a file that did not exist, owner-only (0600: an export holds
/// the archive's names and numbers). `create_new` never follows a link.
pub fn create_new(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create", path))
}

/// Creates `dir` and its missing parents owner-only (0700).
pub fn create_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("cannot create directory", dir))
}

/// Makes the entries of `dir` (new names, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths() {
        let key = PartitionKey {
            tenant: Some("acme".into()),
            date: Some(jiff::civil::date(2025, 11, 24)),
        };
        assert_eq!(key.rel_dir(), "tenant=acme/date=2025-11-24");
        let none = PartitionKey {
            tenant: None,
            date: None,
        };
        assert_eq!(
            none.rel_dir(),
            "tenant=__HIVE_DEFAULT_PARTITION__/date=__HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(escape("../a/b=c%"), "..%2Fa%2Fb%3Dc%25");
        assert_eq!(escape("t\u{1}"), "t%01");
    }

    #[test]
    fn dates_in_a_zone_across_midnight_and_daylight_saving() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let mut d = Dates::new(paris);
        // 2025-03-29T23:30:00Z is 00:30 on the 30th in Paris (UTC+1).
        let ms = 1_743_291_000_000;
        assert_eq!(d.of(ms), Some(jiff::civil::date(2025, 3, 30)));
        assert_eq!(d.of(ms - 3_600_000), Some(jiff::civil::date(2025, 3, 29)));
        // The 30th is 23 hours long: 22:30Z is 00:30 on the 31st (UTC+2).
        assert_eq!(
            d.of(ms + 23 * 3_600_000),
            Some(jiff::civil::date(2025, 3, 31))
        );
        assert_eq!(
            d.of(ms + 22 * 3_600_000),
            Some(jiff::civil::date(2025, 3, 30))
        );
        assert_eq!(d.of(i64::MAX), None);
    }
}
