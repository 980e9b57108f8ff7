//! Column chunks whose pages are made here rather than by the `parquet`
//! crate's column writer: the events table's payload, a required text
//! column without dictionary or statistics, and most of the bytes of an
//! export.
//!
//! Why: the payload's values arrive already PLAIN-encoded in the batch
//! (each a 4-byte little-endian length and its bytes, [`crate::column`]),
//! so a page is compressed straight from the batch's buffer. Through the
//! column writer every value was a reference-counted slice, copied into the
//! encoder's buffer, copied again with the page's levels, and compressed
//! into a buffer grown to `compress_bound` and shrunk, page after page
//! (docs/BENCHMARKS.md, "Payload pages made by the export").
//!
//! Invariants:
//! - The chunk is what the column writer makes for such a column with the
//!   same properties: version 1 data pages of PLAIN values (no levels: the
//!   column is required and flat), compressed with the column's codec;
//!   chunk metadata with its encodings (PLAIN, and RLE for the absent
//!   levels, as the column writer lists them), page encoding counts and
//!   sizes, no statistics; an offset index of every page. So every reader
//!   reads the same values.
//! - A page is cut at a value boundary once it holds [`PAGE_BYTES`] or
//!   `data_page_row_count_limit` values ([`page_full`]), whatever the
//!   batches: the values of a batch that do not fill a page wait, copied,
//!   for the next batch. A batch normally ends where its page does
//!   (`crate::partition::TableWriter` sends it then), so its values are
//!   compressed where they are and nothing waits; only a batch sent early
//!   (an idle partition's, the end of a day) leaves values to copy.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnChunkMetaDataBuilder, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// The zstd level of every column (`crate::partition`'s properties):
/// the payload's own pages are compressed at the same level.
pub const ZSTD_LEVEL: i32 = 1;

/// Uncompressed bytes after which a page is cut: about the size the
/// column writer's payload pages had (its 1 MiB limit is checked after
/// runs of values: its pages averaged 1.41 MiB at 1M events), so that the
/// payload compresses as well as it did (pages of 1 MiB: 2.2 % larger).
pub const PAGE_BYTES: usize = 3 << 19;

/// Whether a page of `bytes` PLAIN-encoded values, `values` of them, is
/// complete (`page_rows`: the properties' `data_page_row_count_limit`).
/// The batches are cut by the same rule, so that pages need not wait for
/// the next batch.
pub fn page_full(bytes: usize, values: usize, page_rows: usize) -> bool {
    bytes >= PAGE_BYTES || values >= page_rows
}

/// One row group's chunk of an own-pages column, its pages serialized
/// into memory as batches come.
pub struct PlainChunk {
    descr: ColumnDescPtr,
    codec: Compression,
    page_rows: usize,
    pages: Pages,
    /// The start of the next page, copied from an earlier batch, and how
    /// many values it holds.
    pending: Vec<u8>,
    pending_values: usize,
    offsets: OffsetIndexBuilder,
}

/// Pages serialized into memory one after the other, and what a column
/// chunk's metadata says of them: shared by both kinds of own chunk
/// ([`PlainChunk`], [`crate::dict::DictChunk`]).
pub struct Pages {
    sink: TrackedWrite<Vec<u8>>,
    /// Page encoding counts in page order, as the column writer keeps them.
    stats: Vec<PageEncodingStats>,
    /// Values (levels) of the data pages.
    values: u64,
    uncompressed: u64,
    compressed: u64,
    data_page_offset: Option<i64>,
    dictionary_page_offset: Option<i64>,
}

impl Pages {
    /// Pages written into `buf` (emptied first: an earlier chunk's buffer,
    /// whose memory is reused).
    pub fn new(mut buf: Vec<u8>) -> Pages {
        buf.clear();
        Pages {
            sink: TrackedWrite::new(buf),
            stats: Vec::new(),
            values: 0,
            uncompressed: 0,
            compressed: 0,
            data_page_offset: None,
            dictionary_page_offset: None,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.sink.bytes_written()
    }

    /// Writes `page`, whose data is compressed from `uncompressed` bytes;
    /// where it starts and its size with its header.
    pub fn write(&mut self, page: Page, uncompressed: usize) -> Result<(i64, i32)> {
        let (page_type, encoding) = (page.page_type(), page.encoding());
        let num_values = page.num_values();
        let spec = SerializedPageWriter::new(&mut self.sink)
            .write_page(CompressedPage::new(page, uncompressed))?;
        let offset = i64::try_from(spec.offset)
            .map_err(|_| ParquetError::General("a column chunk past 2^63 bytes".into()))?;
        let size = i32::try_from(spec.compressed_size)
            .map_err(|_| ParquetError::General("a page past 2^31 bytes".into()))?;
        if page_type == PageType::DICTIONARY_PAGE {
            self.dictionary_page_offset.get_or_insert(offset);
        } else {
            self.data_page_offset.get_or_insert(offset);
            self.values += u64::from(num_values);
        }
        self.count(page_type, encoding, 1);
        self.uncompressed += spec.uncompressed_size as u64;
        self.compressed += spec.compressed_size as u64;
        Ok((offset, size))
    }

    fn count(&mut self, page_type: PageType, encoding: Encoding, n: i32) {
        match self.stats.last_mut() {
            Some(s) if s.page_type == page_type && s.encoding == encoding => s.count += n,
            _ => self.stats.push(PageEncodingStats {
                page_type,
                encoding,
                count: n,
            }),
        }
    }

    /// Appends the data pages of `other` after these; where they begin
    /// (add it to their offsets).
    pub fn append(&mut self, other: Pages) -> Result<i64> {
        let base = i64::try_from(self.len())
            .map_err(|_| ParquetError::General("a column chunk past 2^63 bytes".into()))?;
        let bytes = other.sink.into_inner()?;
        std::io::Write::write_all(&mut self.sink, &bytes)?;
        for s in other.stats {
            self.count(s.page_type, s.encoding, s.count);
        }
        if let Some(first) = other.data_page_offset {
            self.data_page_offset.get_or_insert(base + first);
        }
        self.values += other.values;
        self.uncompressed += other.uncompressed;
        self.compressed += other.compressed;
        Ok(base)
    }

    /// The chunk's bytes and the start of its metadata: codec, encodings
    /// (those of its pages, and RLE for the levels, as the column writer
    /// lists them), page counts, sizes and offsets.
    pub fn finish(
        self,
        descr: ColumnDescPtr,
        codec: Compression,
    ) -> Result<(Vec<u8>, ColumnChunkMetaDataBuilder)> {
        let too_big = |_| ParquetError::General("a column chunk past 2^63 bytes".into());
        let mut encodings = vec![Encoding::PLAIN, Encoding::RLE];
        encodings.extend(self.stats.iter().map(|s| s.encoding));
        let builder = ColumnChunkMetaData::builder(descr)
            .set_compression(codec)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(self.stats)
            .set_total_compressed_size(i64::try_from(self.compressed).map_err(too_big)?)
            .set_total_uncompressed_size(i64::try_from(self.uncompressed).map_err(too_big)?)
            .set_num_values(i64::try_from(self.values).map_err(too_big)?)
            .set_data_page_offset(self.data_page_offset.unwrap_or(0))
            .set_dictionary_page_offset(self.dictionary_page_offset);
        Ok((self.sink.into_inner()?, builder))
    }
}

/// The compression of own pages, one per writer thread: its context,
/// reused page after page.
pub struct Compressor {
    z: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    pub fn new() -> Result<Compressor> {
        let z = zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Compressor { z })
    }

    /// `data` compressed, in a buffer of its own that becomes the page's
    /// (`Bytes::from` keeps the allocation): compressing into one reused
    /// buffer meant copying every page out of it, ~45 MB per 1M events,
    /// into memory allocated for the copy. The page's buffer is freed as
    /// soon as the page is written, for the next page to allocate.
    pub fn compress(&mut self, data: &[u8]) -> Result<Bytes> {
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        self.z
            .compress_to_buffer(data, &mut out)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Bytes::from(out))
    }
}

impl PlainChunk {
    /// The chunk of column `descr` (a required BYTE_ARRAY, PLAIN, zstd),
    /// its pages written into `buf` (emptied first: the buffer of an
    /// earlier chunk, whose memory is reused).
    pub fn new(
        descr: ColumnDescPtr,
        props: &Arc<WriterProperties>,
        buf: Vec<u8>,
    ) -> Result<PlainChunk> {
        let codec = props.compression(descr.path());
        if !matches!(codec, Compression::ZSTD(_)) || descr.max_def_level() != 0 {
            return Err(ParquetError::General(format!(
                "column {} cannot have its pages made by the export",
                descr.path()
            )));
        }
        Ok(PlainChunk {
            page_rows: props.data_page_row_count_limit().max(1),
            descr,
            codec,
            pages: Pages::new(buf),
            pending: Vec::new(),
            pending_values: 0,
            offsets: OffsetIndexBuilder::new(),
        })
    }

    /// Writes the PLAIN-encoded values `data`, each ending at its entry of
    /// `ends`, as pages; the values after the last full page wait for the
    /// next call (or [`PlainChunk::close`]).
    pub fn write(&mut self, data: &[u8], ends: &[usize], z: &mut Compressor) -> Result<()> {
        let value = |start: usize, end: usize| {
            data.get(start..end).ok_or_else(|| {
                ParquetError::General(format!("a value at {start}..{end} of {}", data.len()))
            })
        };
        let (mut start, mut i) = (0, 0);
        // First the page begun by an earlier batch.
        while self.pending_values > 0 {
            let Some(&end) = ends.get(i) else {
                return Ok(());
            };
            self.pending.extend_from_slice(value(start, end)?);
            self.pending_values += 1;
            (start, i) = (end, i + 1);
            if self.full(self.pending.len(), self.pending_values) {
                self.flush_pending(z)?;
            }
        }
        let mut first = i;
        for (j, &end) in ends.iter().enumerate().skip(i) {
            if self.full(end - start, j + 1 - first) {
                self.page(value(start, end)?, j + 1 - first, z)?;
                (start, first) = (end, j + 1);
            }
        }
        if first < ends.len() {
            self.pending.extend_from_slice(value(start, data.len())?);
            self.pending_values = ends.len() - first;
        }
        Ok(())
    }

    /// Whether a page of `bytes` and `values` is complete.
    fn full(&self, bytes: usize, values: usize) -> bool {
        page_full(bytes, values, self.page_rows)
    }

    fn flush_pending(&mut self, z: &mut Compressor) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let n = std::mem::take(&mut self.pending_values);
        let written = self.page(&pending, n, z);
        self.pending = pending;
        self.pending.clear();
        written
    }

    fn page(&mut self, values: &[u8], n: usize, z: &mut Compressor) -> Result<()> {
        let num_values = u32::try_from(n)
            .map_err(|_| ParquetError::General(format!("{n} values in one page")))?;
        let page = Page::DataPage {
            buf: z.compress(values)?,
            num_values,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let (offset, size) = self.pages.write(page, values.len())?;
        self.offsets.append_offset_and_size(offset, size);
        self.offsets.append_row_count(i64::from(num_values));
        Ok(())
    }

    /// The chunk's bytes and what the row group needs to splice them in.
    pub fn close(mut self, z: &mut Compressor) -> Result<(Vec<u8>, ColumnCloseResult)> {
        if self.pending_values > 0 {
            self.flush_pending(z)?;
        }
        let rows = self.pages.values;
        let (bytes, metadata) = self.pages.finish(self.descr, self.codec)?;
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: rows,
            metadata: metadata.build()?,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(self.offsets.build()),
        };
        Ok((bytes, close))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::{schema, ColumnSink, Rows, Spec};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::record::Field;
    use parquet::schema::types::SchemaDescriptor;

    #[test]
    fn a_batch_sent_when_its_page_is_full_leaves_nothing_to_copy() {
        let specs = [Spec::own_pages("p")];
        let props = Arc::new(crate::partition::properties(&specs).unwrap());
        let descr = SchemaDescriptor::new(schema(&specs).unwrap());
        let page_rows = props.data_page_row_count_limit();
        let mut z = Compressor::new().unwrap();
        let chunk = PlainChunk::new(descr.column(0), &props, Vec::new()).unwrap();
        let mut sinks = vec![ColumnSink::Own(Box::new(chunk))];
        let mut rows = Rows::new(&specs);
        let mut scratch = Vec::new();
        // Pages ended by their bytes (long values), then by their rows
        // (short ones).
        let (mut sent, mut pages) = (0, 0);
        for i in 0..(2 * page_rows + 9000) {
            let n = if i < 9000 { 200 + i % 900 } else { i % 7 };
            rows.raw_text(0, "x".repeat(n).as_bytes()).unwrap();
            rows.end_row().unwrap();
            if rows.plain_page_full(page_rows) {
                sent += rows.len();
                rows.write_to(&mut sinks, &mut scratch, &mut z).unwrap();
                pages += 1;
                let Some(ColumnSink::Own(chunk)) = sinks.first() else {
                    panic!("the chunk is gone")
                };
                assert_eq!((chunk.pending_values, chunk.pending.len()), (0, 0));
                assert_eq!(chunk.pages.values, sent as u64);
            }
        }
        assert!(pages >= 4, "{pages} pages");
        let Some(ColumnSink::Own(chunk)) = sinks.first() else {
            panic!("the chunk is gone")
        };
        let counted: i32 = chunk.pages.stats.iter().map(|s| s.count).sum();
        assert_eq!(counted as usize, pages);
    }

    #[test]
    fn pages_cut_across_batches_read_back_value_for_value() {
        let specs = [Spec::own_pages("p")];
        let schema = schema(&specs).unwrap();
        let props = Arc::new(crate::partition::properties(&specs).unwrap());
        let descr = SchemaDescriptor::new(schema.clone());
        // Values of many sizes: empty ones, and one larger than a page.
        let values: Vec<String> = (0..6000usize)
            .map(|i| {
                let n = match i {
                    100 => PAGE_BYTES + 10,
                    _ if i % 7 == 0 => 0,
                    _ => 200 + i % 900,
                };
                char::from(b'a' + (i % 26) as u8).to_string().repeat(n)
            })
            .collect();
        let mut z = Compressor::new().unwrap();
        let chunk = PlainChunk::new(descr.column(0), &props, b"old".to_vec()).unwrap();
        let mut sinks = vec![ColumnSink::Own(Box::new(chunk))];
        let mut rows = Rows::new(&specs);
        let mut scratch = Vec::new();
        // Batches of uneven sizes (an empty one too), so that pages begin
        // in one batch and end in another.
        let mut rest = values.as_slice();
        for take in [1, 0, 2500, 17, 1000, usize::MAX] {
            let (batch, more) = rest.split_at(take.min(rest.len()));
            for v in batch {
                rows.raw_text(0, v.as_bytes()).unwrap();
                rows.end_row().unwrap();
            }
            rows.write_to(&mut sinks, &mut scratch, &mut z).unwrap();
            rest = more;
        }
        let Some(ColumnSink::Own(chunk)) = sinks.pop() else {
            panic!("the chunk is gone")
        };
        let (bytes, close) = (*chunk).close(&mut z).unwrap();
        assert_eq!(close.rows_written, values.len() as u64);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, Arc::clone(&props)).unwrap();
        let mut group = w.next_row_group().unwrap();
        group.append_column(&Bytes::from(bytes), close).unwrap();
        group.close().unwrap();
        w.close().unwrap();

        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader =
            SerializedFileReader::new_with_options(std::fs::File::open(&path).unwrap(), options)
                .unwrap();
        let read: Vec<String> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| match row.unwrap().get_column_iter().next() {
                Some((_, Field::Str(s))) => s.clone(),
                other => panic!("not a string: {other:?}"),
            })
            .collect();
        assert!(read == values, "the values read back differ");

        // Every page but the last is full, and none is fuller than a value
        // past it; the offset index names each page.
        let mut pages = Vec::new();
        let group = reader.get_row_group(0).unwrap();
        for page in group.get_column_page_reader(0).unwrap() {
            match page.unwrap() {
                Page::DataPage {
                    buf, num_values, ..
                } => pages.push((buf.len(), num_values)),
                other => panic!("not a data page: {:?}", other.page_type()),
            }
        }
        assert!(pages.len() >= 4, "{pages:?}");
        let (last, full) = pages.split_last().unwrap();
        assert!(last.0 > 0);
        // The largest value, with its length, is PAGE_BYTES + 14 bytes.
        let sizes = PAGE_BYTES..PAGE_BYTES + PAGE_BYTES + 14;
        assert!(full.iter().all(|(len, _)| sizes.contains(len)), "{pages:?}");
        let counted: u32 = pages.iter().map(|p| p.1).sum();
        assert_eq!(counted as usize, values.len());
        let index = reader.metadata().page_index_for_row_group(0);
        let offsets = index.offset_index(0).expect("an offset index");
        assert_eq!(offsets.page_locations().len(), pages.len());
    }
}
