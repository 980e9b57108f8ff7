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
//! - Row groups hold about `row_group_bytes` of uncompressed values. They
//!   are encoded and compressed as their rows come, in batches of about
//!   [`BATCH_BYTES`] (a table with a PLAIN column, the events' payload:
//!   one page of it, at most twice that, so that its pages are compressed
//!   where the batch holds them): memory holds a batch per partition being filled (at
//!   most [`BATCHES_BYTES`] over all; past it the idlest goes to the
//!   writer early) and, per row group in progress, its compressed pages
//!   and its dictionaries. A partition that stops receiving rows (rows
//!   come roughly in time order, so a day's partitions fall idle when the
//!   day is over) has its batch sent once half a row group's values
//!   (`row_group_bytes`) went to other partitions, and its row group
//!   completed once a whole row group's did: memory holds the groups of the partitions
//!   being filled, not of every partition seen, so it does not grow with
//!   the archive's days. When the row groups in progress pass
//!   `memory_bytes` of values, the idlest is completed early (a smaller
//!   row group): memory stays bounded whatever the number of partitions
//!   or the size of the archive.
//! - A table whose rows come in date order ([`Table::rows_in_date_order`])
//!   has the files of earlier dates completed as soon as a row of a later
//!   date comes, so it holds one day's partitions, however small they are
//!   against a row group. Should a row of a completed partition still come
//!   (a zone whose clocks go back across midnight), it starts another file
//!   of that partition: rows are never lost or merged.
//! - Encoding, compression and file I/O run on one writer thread per
//!   table, fed batch by batch (a few queued), while the caller reads and
//!   parses the next rows; emptied batches go back to the caller for reuse.
//!   Syncs run on another thread, which only waits ([`crate::durable`]):
//!   the writer never waits for the disk but at its end.
//!   The first error of either side ends the export.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::get_column_writer;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{SchemaDescriptor, Type};

use crate::column::{schema, ColumnError, ColumnSink, Rows, Spec};
use crate::dict::DictChunk;
use crate::durable::{sync_dirs, Complete, WriteBack};
use crate::error::{io, ExportError, Result};
use crate::plain::{Compressor, PlainChunk, ZSTD_LEVEL};
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
            Some(t) => tenant_dir_value(t),
            None => NULL_PARTITION.to_owned(),
        };
        let date = match self.date {
            Some(d) => d.to_string(),
            None => NULL_PARTITION.to_owned(),
        };
        format!("tenant={tenant}/date={date}")
    }
}

/// The name of the `n`th data file run `run` writes in a partition; its
/// temporary name while written is `.NAME.tmp`.
pub fn data_file_name(run: u64, n: u32) -> String {
    format!("part-{run:06}-{n:04}.parquet")
}

/// The run of a data file named as [`data_file_name`] names them; `None`
/// for any other name (a file this export never writes).
pub fn data_file_run(name: &str) -> Option<u64> {
    let (run, n) = name
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .split_once('-')?;
    let digits = |t: &str, min: usize| t.len() >= min && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(run, 6) || !digits(n, 4) {
        return None;
    }
    run.parse().ok()
}

/// Whether `rel` is a partition directory as [`PartitionKey::rel_dir`]
/// names them: `tenant=…/date=…`, two names neither of which can lead
/// out of the table's directory.
pub fn is_partition_dir(rel: &str) -> bool {
    let mut parts = rel.split('/');
    let (Some(tenant), Some(date), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    tenant.starts_with("tenant=")
        && date.starts_with("date=")
        && !rel.contains('\0')
        && !rel.contains('\\')
}

/// The longest escaped tenant a partition directory spells out whole:
/// with `tenant=` the name stays well under the 255 bytes file systems
/// allow one (a GUID's last part can be any length, and one over-long
/// tenant failed every export of the archive).
const TENANT_DIR_MAX: usize = 200;
/// How much of a longer one it keeps before the hash.
const TENANT_DIR_KEPT: usize = 180;

/// The `tenant=` value of `tenant`'s directories: [`escape`]d (and
/// [`NULL_PARTITION`] itself with its first `_` escaped), or, when
/// that is over [`TENANT_DIR_MAX`] bytes, its first [`TENANT_DIR_KEPT`]
/// bytes at most, `%7E` (a `~`, which [`escape`] never writes so, so no
/// tenant's whole name reads the same) and the xxh3-64 of the tenant in
/// hex. The rows' `tenant` column holds the whole name either way.
fn tenant_dir_value(tenant: &str) -> String {
    // The tenant named as the null partition gets a directory of its own
    // (its first `_` escaped, which engines read back as `_`): sharing the
    // null rows' directory, its files collided with theirs and stopped
    // every export of the archive.
    if tenant == NULL_PARTITION {
        return format!("%5F{}", &NULL_PARTITION[1..]);
    }
    let escaped = escape(tenant);
    if escaped.len() <= TENANT_DIR_MAX {
        return escaped;
    }
    let mut cut = TENANT_DIR_KEPT;
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    // Never half an escape: `%` and its two digits stay together.
    if let Some(at) = escaped[..cut].rfind('%').filter(|&at| cut - at < 3) {
        cut = at;
    }
    format!(
        "{}%7E{:016x}",
        &escaped[..cut],
        xxhash_rust::xxh3::xxh3_64(tenant.as_bytes())
    )
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
        let date = ccvault_event::timestamp_of(ms)?
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

/// The partitions of `map` dated before `date` (none of an unknown date).
fn dated_before<V>(map: &BTreeMap<PartitionKey, V>, date: Date) -> Vec<PartitionKey> {
    map.keys()
        .filter(|k| k.date.is_some_and(|d| d < date))
        .cloned()
        .collect()
}

/// A file written by a run, in place under its final name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub partition: String,
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Uncompressed bytes of values a partition buffers before they go to the
/// writer thread as one batch.
pub const BATCH_BYTES: usize = 2 << 20;
/// Batches buffered over all partitions at most: past it the idlest
/// partition's batch goes to the writer early.
pub const BATCHES_BYTES: usize = 32 << 20;
/// Batches queued for the writer thread at most.
const QUEUED_BATCHES: usize = 4;

struct OpenFile {
    writer: SerializedFileWriter<File>,
    tmp: PathBuf,
    name: String,
    rows: u64,
    /// [`Files::written`] when a batch last went to it (to find the
    /// idlest file and idle row groups).
    last_write: u64,
    /// The row group being encoded, if any.
    group: Option<Group>,
    /// Bytes written when its write-back was last started.
    flushed: usize,
}

/// A row group being filled: its column chunks are encoded and compressed
/// into memory as batches come, and copied into the file when it is
/// complete (a row group's chunks are contiguous in the file, one column
/// after the other, while rows fill all columns at once).
struct Group {
    columns: Vec<ColumnSink>,
    /// Where each column's pages go, for the `parquet` crate's column
    /// writers (own pages are held by their [`PlainChunk`]).
    chunks: Vec<Option<Arc<Mutex<Vec<u8>>>>>,
    /// Uncompressed bytes of values so far.
    bytes: usize,
}

/// A column chunk's pages, serialized into memory.
struct ChunkPages {
    sink: TrackedWrite<ChunkSink>,
}

impl PageWriter for ChunkPages {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        SerializedPageWriter::new(&mut self.sink).write_page(page)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        self.sink.flush()?;
        Ok(())
    }
}

/// The bytes of one column chunk, shared with the [`Group`] that takes them
/// once the column writer is closed.
struct ChunkSink(Arc<Mutex<Vec<u8>>>);

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut chunk = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("a column chunk's buffer was poisoned"))?;
        chunk.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes a file grows by before its write-back is started: about a row
/// group of the payload's compressed pages, so that a file's syncs are few.
const WRITE_BACK_BYTES: usize = 4 << 20;

/// Files open at once at most; past it the idlest is finished (its
/// partition gets another file if more rows come).
const MAX_OPEN_FILES: usize = 64;

/// The files of one table being written: encoding, compression and file
/// I/O, on their own thread (while the caller parses the next rows).
struct Files {
    dir: PathBuf,
    run: u64,
    schema: Arc<Type>,
    descr: Arc<SchemaDescriptor>,
    props: Arc<WriterProperties>,
    /// Which columns have their own pages ([`Spec::own_pages`]), and
    /// whether with a dictionary.
    own_pages: Vec<(bool, bool)>,
    /// Compresses the own pages of every row group.
    compressor: Compressor,
    /// Buffers of completed own-page chunks, for the next row groups'
    /// (a chunk grows to megabytes: fresh memory costs more than reuse).
    spare_chunks: SpareChunks,
    row_group_bytes: usize,
    memory_bytes: usize,
    open: BTreeMap<PartitionKey, OpenFile>,
    /// The next file number of each partition in this run.
    next: BTreeMap<PartitionKey, u32>,
    /// Uncompressed bytes of values written so far (at least 1 a batch).
    written: u64,
    /// Uncompressed bytes of the row groups in progress.
    grouped: usize,
    done: Vec<NewFile>,
    dirs: Vec<PathBuf>,
    /// Reused for every text column (the values as slices of its buffer).
    scratch: Vec<ByteArray>,
    /// Where emptied batches go back to the caller.
    spare: Sender<Rows>,
    /// Writes completed row groups and files to the disk meanwhile.
    write_back: WriteBack,
}

impl Files {
    fn parquet_err(path: &Path) -> impl FnOnce(ParquetError) -> ExportError + '_ {
        move |source| ExportError::Parquet {
            path: path.to_owned(),
            source,
        }
    }

    /// Encodes `rows` into the row group of `key`'s open file (opening the
    /// file and starting a group first if needed) and empties them.
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
        let bytes = rows.bytes();
        self.written += (bytes as u64).max(1);
        let Some(file) = self.open.get_mut(key) else {
            return Ok(());
        };
        let group = match &mut file.group {
            Some(g) => g,
            None => {
                let g = Group::new(
                    &self.descr,
                    &self.props,
                    &self.own_pages,
                    &mut self.spare_chunks,
                    self.row_group_bytes / PLAIN_RATIO,
                )
                .map_err(Files::parquet_err(&file.tmp))?;
                file.group.insert(g)
            }
        };
        file.rows += rows.len() as u64;
        file.last_write = self.written;
        rows.write_to(&mut group.columns, &mut self.scratch, &mut self.compressor)
            .map_err(Files::parquet_err(&file.tmp))?;
        group.bytes += bytes;
        self.grouped += bytes;
        if group.bytes >= self.row_group_bytes {
            self.end_group(key)?;
        } else if self.grouped > self.memory_bytes {
            let idlest = self
                .open
                .iter()
                .filter(|(_, f)| f.group.is_some())
                .min_by_key(|(_, f)| f.last_write)
                .map(|(k, _)| k.clone());
            if let Some(k) = idlest {
                self.end_group(&k)?;
            }
        }
        let idle: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, f)| {
                // A row group's worth of values went elsewhere: its day
                // is over, most likely. Twice the caller's bound (see
                // `TableWriter::idle_bytes`), so the partial batch sent
                // for idleness lands in the group before it completes.
                f.group.is_some()
                    && f.last_write.saturating_add(self.row_group_bytes as u64) < self.written
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &idle {
            self.end_group(k)?;
        }
        Ok(())
    }

    /// Completes the files of every partition dated before `date`.
    fn finish_dates_before(&mut self, date: Date) -> Result<()> {
        for k in &dated_before(&self.open, date) {
            self.finish_file(k)?;
        }
        Ok(())
    }

    /// Completes `key`'s row group in progress: its column chunks go into
    /// the file.
    fn end_group(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(file) = self.open.get_mut(key) else {
            return Ok(());
        };
        let Some(group) = file.group.take() else {
            return Ok(());
        };
        self.grouped = self.grouped.saturating_sub(group.bytes);
        let err = Files::parquet_err(&file.tmp);
        group
            .write(
                &mut file.writer,
                &mut self.compressor,
                &mut self.spare_chunks,
            )
            .map_err(err)?;
        if file.writer.bytes_written() >= file.flushed + WRITE_BACK_BYTES {
            file.writer.flush().map_err(io("cannot write", &file.tmp))?;
            file.flushed = file.writer.bytes_written();
            self.write_back.flush(file.writer.inner(), &file.tmp)?;
        }
        Ok(())
    }

    fn open_file(&mut self, key: &PartitionKey) -> Result<()> {
        let rel = key.rel_dir();
        let dir = self.dir.join(&rel);
        // A directory made here is a new entry of its parent: the parent is
        // synced too, or a power cut could lose a partition (or a tenant's
        // directory) that the checkpoint, synced after, names (outside
        // audit: only the leaves were).
        let made: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.exists())
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect();
        create_dirs(&dir)?;
        for parent in made {
            if !self.dirs.contains(&parent) {
                self.dirs.push(parent);
            }
        }
        let n = self.next.entry(key.clone()).or_insert(0);
        let name = data_file_name(self.run, *n);
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
                group: None,
                flushed: 0,
            },
        );
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
        Ok(())
    }

    /// Completes `key`'s open file: its last row group and the footer; it
    /// is synced and renamed to its final name in the background.
    fn finish_file(&mut self, key: &PartitionKey) -> Result<()> {
        let complete = self.complete_file(key)?;
        match complete {
            Some(c) => self.write_back.complete(c),
            None => Ok(()),
        }
    }

    /// Writes `key`'s last row group and footer, and notes the file as done.
    fn complete_file(&mut self, key: &PartitionKey) -> Result<Option<Complete>> {
        self.end_group(key)?;
        let Some(file) = self.open.remove(key) else {
            return Ok(None);
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
        let bytes = inner.metadata().map(|m| m.len()).unwrap_or(0);
        let rel = key.rel_dir();
        let path = self.dir.join(&rel).join(&name);
        self.done.push(NewFile {
            partition: rel,
            name,
            rows,
            bytes,
        });
        Ok(Some(Complete {
            file: inner,
            tmp,
            path,
        }))
    }

    /// Completes every file, syncs and renames them (the open ones at
    /// once), then syncs the directories that received one.
    fn finish(mut self) -> Result<Vec<NewFile>> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        let mut last = Vec::with_capacity(keys.len());
        for k in &keys {
            last.extend(self.complete_file(k)?);
        }
        self.write_back.finish(last)?;
        sync_dirs(&self.dirs)?;
        Ok(self.done)
    }

    /// The writer thread: batches in, files out. Files are completed only
    /// on [`Msg::Finish`]: when the caller stops on an error instead, they
    /// stay under their hidden temporary names (the next run removes them),
    /// so a failed run puts nothing in place.
    fn serve(mut self, msgs: Receiver<Msg>) -> Result<Vec<NewFile>> {
        for msg in msgs {
            match msg {
                Msg::Batch(key, mut rows) => {
                    self.write(&key, &mut rows)?;
                    // The caller may be finishing: then the rows just go.
                    let _ = self.spare.send(rows);
                }
                Msg::DatesBefore(date) => self.finish_dates_before(date)?,
                Msg::Finish => return self.finish(),
            }
        }
        Err(ExportError::Refused(
            "the export stopped before its files were complete".into(),
        ))
    }
}

/// The buffers of completed own-page chunks, by kind: a plain chunk's
/// (the payload's: most of a row group's bytes) are the large ones.
#[derive(Default)]
struct SpareChunks {
    plain: Vec<Vec<u8>>,
    dict: Vec<Vec<u8>>,
}

/// A row group's values over its plain chunk's compressed size, at most,
/// for the room that chunk is given at once: grown by doubling instead,
/// a chunk of megabytes was copied at each step into fresh memory, which
/// costs more than the copy on this kind of machine (half of an export's
/// fresh huge pages: docs/BENCHMARKS.md). The room is only reserved: its
/// pages are not touched until written. Payloads compress 10-14 times.
const PLAIN_RATIO: usize = 4;

impl Group {
    /// `own_pages`: which columns have their own pages, each taking a
    /// buffer from `spare` if one is there; a plain chunk's with room for
    /// `plain_bytes`.
    fn new(
        descr: &SchemaDescriptor,
        props: &Arc<WriterProperties>,
        own_pages: &[(bool, bool)],
        spare: &mut SpareChunks,
        plain_bytes: usize,
    ) -> parquet::errors::Result<Group> {
        let mut columns = Vec::with_capacity(descr.num_columns());
        let mut chunks = Vec::with_capacity(descr.num_columns());
        for i in 0..descr.num_columns() {
            if let Some(&(true, dictionary)) = own_pages.get(i) {
                columns.push(if dictionary {
                    let buf = spare.dict.pop().unwrap_or_default();
                    ColumnSink::Dict(Box::new(DictChunk::new(descr.column(i), props, buf)?))
                } else {
                    let buf = match spare.plain.pop() {
                        Some(b) if b.capacity() >= plain_bytes => b,
                        _ => Vec::with_capacity(plain_bytes),
                    };
                    ColumnSink::Own(Box::new(PlainChunk::new(descr.column(i), props, buf)?))
                });
                chunks.push(None);
                continue;
            }
            let chunk = Arc::new(Mutex::new(Vec::new()));
            let pages = ChunkPages {
                sink: TrackedWrite::new(ChunkSink(Arc::clone(&chunk))),
            };
            columns.push(ColumnSink::Parquet(Box::new(get_column_writer(
                descr.column(i),
                Arc::clone(props),
                Box::new(pages),
            ))));
            chunks.push(Some(chunk));
        }
        Ok(Group {
            columns,
            chunks,
            bytes: 0,
        })
    }

    /// Closes the column writers and appends their chunks to `file` as one
    /// row group; the own pages' buffers go to `spare`.
    fn write(
        self,
        file: &mut SerializedFileWriter<File>,
        z: &mut Compressor,
        spare: &mut SpareChunks,
    ) -> parquet::errors::Result<()> {
        let mut group = file.next_row_group()?;
        for (column, chunk) in self.columns.into_iter().zip(self.chunks) {
            let (own, pool) = match (column, chunk) {
                (ColumnSink::Own(own), _) => ((*own).close(z)?, &mut spare.plain),
                (ColumnSink::Dict(own), _) => ((*own).close(z)?, &mut spare.dict),
                (ColumnSink::Parquet(column), Some(chunk)) => {
                    let close = (*column).close()?;
                    let bytes =
                        chunk
                            .lock()
                            .map(|mut c| std::mem::take(&mut *c))
                            .map_err(|_| {
                                ParquetError::General("a column chunk's buffer was poisoned".into())
                            })?;
                    group.append_column(&Bytes::from(bytes), close)?;
                    continue;
                }
                (ColumnSink::Parquet(_), None) => {
                    return Err(ParquetError::General(
                        "a column writer without its chunk".into(),
                    ))
                }
            };
            let (bytes, close) = own;
            let bytes = Bytes::from(bytes);
            group.append_column(&bytes, close)?;
            // The only holder: the buffer itself comes back.
            pool.push(Vec::from(bytes));
        }
        group.close()?;
        Ok(())
    }
}

/// What the writer thread is sent.
enum Msg {
    Batch(PartitionKey, Rows),
    /// No more rows of partitions dated before this.
    DatesBefore(Date),
    Finish,
}

/// Writes the rows of one table into its partitions' new files: rows are
/// buffered here by partition, and each full batch goes to the writer
/// thread, which encodes it into the partition's row group.
pub struct TableWriter {
    table: Table,
    specs: Vec<Spec>,
    /// Each partition's batch being filled, and `added` when a row last
    /// came (to find the idlest and the idle).
    parts: BTreeMap<PartitionKey, (Rows, u64)>,
    /// Uncompressed bytes of values added so far (at least 1 a row).
    added: u64,
    /// Bytes of values in `parts`.
    buffered: usize,
    /// A batch's bytes: [`BATCH_BYTES`], or less for smaller row groups.
    batch_bytes: usize,
    /// For a table with a PLAIN column (the events' payload): the
    /// properties' row limit of a page. Its batches are sent when that
    /// column holds a page ([`Rows::plain_page_full`]), so that the
    /// writer compresses every page where the batch has it instead of
    /// copying its values to wait for the next batch (a batch of
    /// [`BATCH_BYTES`] ended before its page: the payload is ~65 % of an
    /// event's bytes, and most of it was copied once more), or at
    /// `batch_cap` bytes, whichever comes first.
    page_rows: Option<usize>,
    /// The bytes after which a batch is sent whatever its pages:
    /// `batch_bytes`, or for a table with a PLAIN column twice
    /// [`BATCH_BYTES`] (no larger than a row group).
    batch_cap: usize,
    /// Values added to other partitions after which a partition's partial
    /// batch goes to the writer: half a row group's.
    idle_bytes: u64,
    /// The latest date of a row, for a table whose rows come in date order
    /// (`None` for the others, and before the first dated row).
    latest_date: Option<Date>,
    in_date_order: bool,
    groups: Option<SyncSender<Msg>>,
    /// Emptied batches back from the writer thread (none once finishing).
    spare: Option<Receiver<Rows>>,
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
        let page_rows = specs
            .iter()
            .any(|s| s.own_pages && !s.dictionary)
            .then(|| props.data_page_row_count_limit().max(1));
        let batch_bytes = row_group_bytes.clamp(1, BATCH_BYTES);
        let batch_cap = match page_rows {
            Some(_) => row_group_bytes.clamp(1, 2 * BATCH_BYTES),
            None => batch_bytes,
        };
        let (spare_tx, spare) = channel();
        let compressor = Compressor::new().map_err(parquet_err)?;
        let files = Files {
            dir,
            run,
            descr: Arc::new(SchemaDescriptor::new(schema.clone())),
            schema,
            props,
            own_pages: specs.iter().map(|s| (s.own_pages, s.dictionary)).collect(),
            compressor,
            spare_chunks: SpareChunks::default(),
            row_group_bytes,
            memory_bytes,
            open: BTreeMap::new(),
            next: BTreeMap::new(),
            written: 0,
            grouped: 0,
            done: Vec::new(),
            dirs: Vec::new(),
            scratch: Vec::new(),
            spare: spare_tx,
            write_back: WriteBack::start(table.name())?,
        };
        let (tx, rx) = sync_channel(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name(format!("export-{}", table.name()))
            .spawn(move || files.serve(rx))
            .map_err(io("cannot start the writer thread for", table.name()))?;
        Ok(TableWriter {
            table,
            specs,
            parts: BTreeMap::new(),
            added: 0,
            buffered: 0,
            batch_bytes,
            page_rows,
            batch_cap,
            idle_bytes: (row_group_bytes / 2) as u64,
            latest_date: None,
            in_date_order: table.rows_in_date_order(),
            groups: Some(tx),
            spare: Some(spare),
            thread: Some(thread),
        })
    }

    /// Adds one row to `key`'s partition: `push` writes its columns.
    pub fn row(
        &mut self,
        key: &PartitionKey,
        push: impl FnOnce(&mut Rows) -> Result<(), ColumnError>,
    ) -> Result<()> {
        if let (true, Some(date)) = (self.in_date_order, key.date) {
            if self.latest_date.is_some_and(|latest| latest < date) {
                self.finish_dates_before(date)?;
            }
            self.latest_date = self.latest_date.max(Some(date));
        }
        let table = self.table.name();
        // One search of the partitions for most rows (two, a contains and
        // a get, were ~5 % of the events' parsing thread).
        let (rows, last) = match self.parts.get_mut(key) {
            Some(part) => part,
            None => {
                let spare = self.spare.as_ref().and_then(|r| r.try_recv().ok());
                // A batch is sent once past its bytes: room for them and a
                // value more, most likely.
                let room = self.batch_bytes + self.batch_bytes / 8;
                let rows = spare.unwrap_or_else(|| Rows::with_room(&self.specs, room));
                self.parts.entry(key.clone()).or_insert((rows, 0))
            }
        };
        let before = rows.bytes();
        push(rows).map_err(|e| ExportError::Column {
            table,
            column: e.column,
            why: e.why,
        })?;
        let after = rows.bytes();
        let grew = after.saturating_sub(before);
        self.added += (grew as u64).max(1);
        *last = self.added;
        self.buffered += grew;
        let page_full = self.page_rows.is_some_and(|n| rows.plain_page_full(n));
        if after >= self.batch_cap || page_full {
            self.flush(key)?;
            // Checked once a batch: the partitions no row came to lately.
            let idle: Vec<PartitionKey> = self
                .parts
                .iter()
                .filter(|(_, (_, last))| last.saturating_add(self.idle_bytes) < self.added)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &idle {
                self.flush(k)?;
            }
        } else if self.buffered > BATCHES_BYTES {
            let idlest = self
                .parts
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(k, _)| k.clone());
            if let Some(k) = idlest {
                self.flush(&k)?;
            }
        }
        Ok(())
    }

    /// Sends the batches of the partitions dated before `date` to the
    /// writer thread, which completes their files.
    fn finish_dates_before(&mut self, date: Date) -> Result<()> {
        for k in &dated_before(&self.parts, date) {
            self.flush(k)?;
        }
        self.send(Msg::DatesBefore(date))
    }

    /// Hands `key`'s batch to the writer thread. The partition keeps no
    /// buffer: its next row takes one the writer handed back.
    fn flush(&mut self, key: &PartitionKey) -> Result<()> {
        let Some((full, _)) = self.parts.remove(key) else {
            return Ok(());
        };
        if full.is_empty() {
            return Ok(());
        }
        self.buffered = self.buffered.saturating_sub(full.bytes());
        self.send(Msg::Batch(key.clone(), full))
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
        self.spare = None;
        for (key, (rows, _)) in std::mem::take(&mut self.parts) {
            if !rows.is_empty() {
                self.send(Msg::Batch(key, rows))?;
            }
        }
        self.send(Msg::Finish)?;
        self.join()
    }
}

/// zstd, dictionary-encoded strings (not the payload), integers and
/// instants DELTA_BINARY_PACKED, statistics per page, format 1.0 pages
/// (every engine reads them). Why delta: offsets, lines and times step by
/// small amounts, so their pages shrink to a few bits a value, and zstd
/// over PLAIN 8-byte values was ~7 % of the events writer's instructions
/// and a fifth of the interactions writer's (docs/BENCHMARKS.md, "Integers
/// delta-encoded, rows hashed as bincode, …").
pub(crate) fn properties(specs: &[Spec]) -> parquet::errors::Result<WriterProperties> {
    use crate::column::Ty;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_created_by(format!("ccvault {}", env!("CARGO_PKG_VERSION")));
    for s in specs {
        b = b.set_column_dictionary_enabled(ColumnPath::from(s.name), s.dictionary);
        if matches!(s.ty, Ty::Int64 | Ty::Timestamp) {
            b = b.set_column_encoding(
                ColumnPath::from(s.name),
                parquet::basic::Encoding::DELTA_BINARY_PACKED,
            );
        }
        if !s.dictionary && matches!(s.ty, Ty::Text) {
            // Minimum and maximum of long unique texts (payloads) help no
            // reader skip anything, and cost comparisons of every value.
            b = b.set_column_statistics_enabled(
                ColumnPath::from(s.name),
                parquet::file::properties::EnabledStatistics::None,
            );
        }
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
        .map_err(|e| {
            // "File exists" for a path that is a file says the wrong thing.
            let what = if e.kind() == std::io::ErrorKind::AlreadyExists && !dir.is_dir() {
                "a directory of tables cannot be made over the file"
            } else {
                "cannot create directory"
            };
            io(what, dir)(e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span row of about 40 bytes of values.
    fn span(agent: &str) -> ccvault_projections::agents::AgentSpan {
        ccvault_projections::agents::AgentSpan {
            agent_id: agent.to_owned(),
            state: 5,
            reason: None,
            tenant: None,
            start_ms: 0,
            end_ms: 1,
            ms: 1,
        }
    }

    fn key(tenant: &str) -> PartitionKey {
        PartitionKey {
            tenant: Some(tenant.to_owned()),
            date: Some(jiff::civil::date(2025, 11, 24)),
        }
    }

    /// Row counts of each row group of `file`.
    fn groups(file: &Path) -> Vec<i64> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(File::open(file).unwrap()).unwrap();
        let meta = reader.metadata();
        (0..meta.num_row_groups())
            .map(|i| meta.row_group(i).num_rows())
            .collect()
    }

    #[test]
    fn an_idle_partitions_row_group_is_completed_and_its_rows_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Row groups of 4 KiB: idle after 4 KiB of values elsewhere.
        let mut w =
            TableWriter::new(Table::AgentStates, dir.path().to_owned(), 1, 4096, 1 << 30).unwrap();
        let add = |w: &mut TableWriter, tenant: &str, n: usize| {
            for _ in 0..n {
                w.row(&key(tenant), |r| crate::tables::push_span(r, &span("ag")))
                    .unwrap();
            }
        };
        add(&mut w, "a", 3);
        // Fewer than a row group's rows each time, so only idleness ends
        // `a`'s groups; `b` fills several of its own meanwhile.
        add(&mut w, "b", 1000);
        add(&mut w, "a", 2);
        let files = w.finish().unwrap();
        let a: Vec<_> = files
            .iter()
            .filter(|f| f.partition == key("a").rel_dir())
            .collect();
        assert_eq!(a.len(), 1, "one file: {files:?}");
        assert_eq!(a[0].rows, 5);
        let path = dir.path().join(&a[0].partition).join(&a[0].name);
        assert_eq!(groups(&path), vec![3, 2]);
        let b = files
            .iter()
            .find(|f| f.partition == key("b").rel_dir())
            .unwrap();
        assert_eq!(b.rows, 1000);
    }

    #[test]
    fn rows_in_date_order_complete_the_earlier_days_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::new(
            Table::AgentStates,
            dir.path().to_owned(),
            1,
            1 << 20,
            1 << 30,
        )
        .unwrap();
        w.in_date_order = true;
        let on = |tenant: &str, day: i8| PartitionKey {
            tenant: Some(tenant.to_owned()),
            date: Some(jiff::civil::date(2025, 11, day)),
        };
        let mut add = |key: PartitionKey, n: usize| {
            for _ in 0..n {
                w.row(&key, |r| crate::tables::push_span(r, &span("ag")))
                    .unwrap();
            }
        };
        add(on("a", 24), 3);
        add(on("b", 24), 2);
        add(on("a", 25), 4);
        // A clock gone back across midnight: the 24th again.
        add(on("a", 24), 1);
        let files = w.finish().unwrap();
        let rows_of = |key: PartitionKey| {
            let mut rows: Vec<u64> = files
                .iter()
                .filter(|f| f.partition == key.rel_dir())
                .map(|f| f.rows)
                .collect();
            rows.sort();
            rows
        };
        // The 24th's file of `a` was completed when the 25th came, so the
        // late row has a file of its own; every row is kept.
        assert_eq!(rows_of(on("a", 24)), vec![1, 3], "{files:?}");
        assert_eq!(rows_of(on("b", 24)), vec![2]);
        assert_eq!(rows_of(on("a", 25)), vec![4]);
        for f in &files {
            assert!(dir.path().join(&f.partition).join(&f.name).is_file());
        }
    }

    #[test]
    fn partition_paths() {
        let key = PartitionKey {
            tenant: Some("acme".into()),
            date: Some(jiff::civil::date(2025, 11, 24)),
        };
        assert_eq!(key.rel_dir(), "tenant=acme/date=2025-11-24");
        // An over-long tenant: a bounded name, one per tenant, never cut
        // inside an escape or a character.
        for (a, b) in [
            ("x".repeat(300), format!("{}y", "x".repeat(299))),
            ("/".repeat(90), format!("{}é", "/".repeat(89))),
            ("é".repeat(150), format!("{}e", "é".repeat(149))),
        ] {
            let (da, db) = (tenant_dir_value(&a), tenant_dir_value(&b));
            assert_ne!(da, db);
            for d in [&da, &db] {
                assert!(d.len() <= TENANT_DIR_MAX, "{d}");
                let kept = d.split("%7E").next().unwrap();
                assert!(escape(&a).starts_with(kept), "{d}");
                let k = kept.as_bytes();
                let in_escape = k.ends_with(b"%") || k.get(k.len().wrapping_sub(2)) == Some(&b'%');
                assert!(!in_escape, "{d}");
            }
        }
        assert_eq!(tenant_dir_value(&"x".repeat(200)), "x".repeat(200));
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
