//! Column chunks of dictionary-encoded text whose pages are made here
//! rather than by the `parquet` crate's column writer: the events table's
//! text columns (source, type, interaction GUID, agent, tenant...).
//!
//! Why: through the column writer every value of every batch became a
//! reference-counted slice of the batch's text, was hashed and compared in
//! its interner, and compared again for the page's minimum and maximum:
//! ~15 % of the 1M export's CPU (docs/BENCHMARKS.md, "Where the 1M export's
//! CPU goes"). Here a value equal to the one before (most of them: a
//! batch's text shares the range of a repeated value, [`crate::column`])
//! costs a comparison of two ranges, and the others one hash lookup.
//!
//! Invariants:
//! - The chunk is what the column writer makes for such a column with the
//!   same properties, so every reader reads the same values and may skip
//!   the same pages: a dictionary page (PLAIN) first, then version 1 data
//!   pages of RLE_DICTIONARY indices (a 1-byte bit width, then the
//!   RLE/bit-packed hybrid), their definition levels RLE-encoded before
//!   them (nullable columns); once the dictionary's PLAIN size reaches
//!   `dictionary_page_size_limit` it is written and the rest of the chunk
//!   is PLAIN pages (the column writer's fallback). A page ends at
//!   `data_page_row_count_limit` rows, or PLAIN pages at
//!   `data_page_size_limit` bytes.
//! - Statistics as the column writer keeps them at its default level
//!   (page): the chunk's minimum and maximum (unsigned byte order, cut to
//!   `statistics_truncate_length` bytes and marked inexact when cut), null
//!   count, unencoded byte size and definition level histogram; a column
//!   index of each page's minimum and maximum (cut to
//!   `column_index_truncate_length`), null count, histogram, the pages'
//!   boundary order; an offset index with each page's unencoded bytes.
//! - Only flat text columns (required, or optional at definition level 1).

use std::collections::HashMap;
use std::sync::Arc;

use parquet::basic::{BoundaryOrder, Compression, Encoding};
use parquet::column::page::Page;
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;

use crate::plain::{Compressor, Pages};

/// One row group's chunk of a dictionary-encoded text column, its pages
/// serialized into memory as batches come.
pub struct DictChunk {
    descr: ColumnDescPtr,
    codec: Compression,
    nullable: bool,
    page_rows: usize,
    page_bytes: usize,
    dict_limit: usize,
    stats_cut: Option<usize>,
    index_cut: Option<usize>,
    /// The chunk: the dictionary page first.
    out: Pages,
    /// Dictionary-encoded data pages, held until the dictionary page is
    /// written before them; `None` once it is (the fallback to PLAIN).
    held: Option<Pages>,
    /// Where each held page is in `held`, for the offset index.
    held_at: Vec<(i64, i32)>,
    /// Each distinct value's index in the dictionary.
    dict: HashMap<Box<[u8]>, u32, OneShot>,
    /// The dictionary PLAIN-encoded: its page, and its size for the limit.
    dict_plain: Vec<u8>,
    page: PageBuf,
    /// The index of the last value pushed (dictionary mode).
    last: u32,
    offsets: OffsetIndexBuilder,
    index: ColumnIndexBuilder,
    /// The minimum and maximum of the last page with values, and whether
    /// the pages so far ascend or descend by them.
    last_bounds: Option<(Vec<u8>, Vec<u8>)>,
    ascending: bool,
    descending: bool,
    min: Option<Vec<u8>>,
    max: Option<Vec<u8>>,
    nulls: i64,
    value_bytes: i64,
    rows: u64,
    /// A page's bytes before compression, reused page after page.
    scratch: Vec<u8>,
}

/// The page being filled.
#[derive(Default)]
struct PageBuf {
    /// Dictionary indices, or (after the fallback) PLAIN values.
    indices: Vec<u32>,
    plain: Vec<u8>,
    /// Definition levels (nullable columns): 1 present, 0 null.
    def: Vec<u32>,
    rows: usize,
    nulls: usize,
    value_bytes: i64,
    min: Vec<u8>,
    max: Vec<u8>,
    has_value: bool,
}

impl PageBuf {
    /// Widens the page's bounds to `v`.
    fn bound(&mut self, v: &[u8]) {
        if !self.has_value {
            self.has_value = true;
            self.min.clear();
            self.min.extend_from_slice(v);
            self.max.clear();
            self.max.extend_from_slice(v);
        } else if v < self.min.as_slice() {
            self.min.clear();
            self.min.extend_from_slice(v);
        } else if v > self.max.as_slice() {
            self.max.clear();
            self.max.extend_from_slice(v);
        }
    }

    fn clear(&mut self) {
        self.indices.clear();
        self.plain.clear();
        self.def.clear();
        self.rows = 0;
        self.nulls = 0;
        self.value_bytes = 0;
        self.has_value = false;
    }
}

impl DictChunk {
    /// The chunk of column `descr` (a flat BYTE_ARRAY, dictionary, zstd,
    /// statistics at page level), its pages written into `buf` (emptied
    /// first: the buffer of an earlier chunk, whose memory is reused).
    pub fn new(
        descr: ColumnDescPtr,
        props: &Arc<WriterProperties>,
        buf: Vec<u8>,
    ) -> Result<DictChunk> {
        let path = descr.path();
        let codec = props.compression(path);
        if !matches!(codec, Compression::ZSTD(_))
            || descr.max_def_level() > 1
            || descr.max_rep_level() != 0
            || !props.dictionary_enabled(path)
            || props.statistics_enabled(path) != EnabledStatistics::Page
        {
            return Err(ParquetError::General(format!(
                "column {path} cannot have its dictionary pages made by the export"
            )));
        }
        Ok(DictChunk {
            codec,
            nullable: descr.max_def_level() == 1,
            page_rows: props.data_page_row_count_limit().max(1),
            page_bytes: props.data_page_size_limit(),
            dict_limit: props.dictionary_page_size_limit(),
            stats_cut: props.statistics_truncate_length(),
            index_cut: props.column_index_truncate_length(),
            index: ColumnIndexBuilder::new(descr.physical_type()),
            descr,
            out: Pages::new(buf),
            held: Some(Pages::new(Vec::new())),
            held_at: Vec::new(),
            dict: HashMap::with_hasher(OneShot::new()),
            dict_plain: Vec::new(),
            page: PageBuf::default(),
            last: 0,
            offsets: OffsetIndexBuilder::new(),
            last_bounds: None,
            ascending: true,
            descending: true,
            min: None,
            max: None,
            nulls: 0,
            value_bytes: 0,
            rows: 0,
            scratch: Vec::new(),
        })
    }

    /// Writes one batch: the present values, each a range of `data` (a
    /// value equal to the one before shares its range), and for a
    /// nullable column each row's definition level.
    pub fn write(
        &mut self,
        data: &[u8],
        ranges: &[(usize, usize)],
        def: &[i16],
        z: &mut Compressor,
    ) -> Result<()> {
        let rows = if self.nullable {
            def.len()
        } else {
            ranges.len()
        };
        let mut values = ranges.iter();
        // The range of the value before, within this batch.
        let mut before = None;
        for r in 0..rows {
            let present = !self.nullable || def.get(r) == Some(&1);
            if present {
                let Some(&(start, end)) = values.next() else {
                    return Err(ParquetError::General(format!(
                        "column {}: fewer values than rows",
                        self.descr.path()
                    )));
                };
                let v = data.get(start..end).ok_or_else(|| {
                    ParquetError::General(format!("a value at {start}..{end} of {}", data.len()))
                })?;
                let same = before == Some((start, end)) && self.page.has_value;
                before = Some((start, end));
                self.push(v, same);
            } else {
                self.page.nulls += 1;
            }
            if self.nullable {
                self.page.def.push(u32::from(present));
            }
            self.page.rows += 1;
            if self.held.is_some() && self.dict_plain.len() >= self.dict_limit {
                self.fall_back(z)?;
            } else if self.page.rows >= self.page_rows
                || (self.held.is_none() && self.page.plain.len() >= self.page_bytes)
            {
                self.flush_page(z)?;
            }
        }
        if values.next().is_some() {
            return Err(ParquetError::General(format!(
                "column {}: more values than rows",
                self.descr.path()
            )));
        }
        Ok(())
    }

    /// One present value; `same`: equal to the one before, in this page.
    fn push(&mut self, v: &[u8], same: bool) {
        self.page.value_bytes += v.len() as i64;
        if self.held.is_none() {
            self.page
                .plain
                .extend_from_slice(&(v.len() as u32).to_le_bytes());
            self.page.plain.extend_from_slice(v);
        } else {
            if !same {
                self.last = match self.dict.get(v) {
                    Some(&i) => i,
                    None => {
                        let i = self.dict.len() as u32;
                        self.dict.insert(v.into(), i);
                        self.dict_plain
                            .extend_from_slice(&(v.len() as u32).to_le_bytes());
                        self.dict_plain.extend_from_slice(v);
                        i
                    }
                };
            }
            self.page.indices.push(self.last);
        }
        if !same {
            self.page.bound(v);
        }
    }

    /// The dictionary is full: its pages are written, and PLAIN ones follow.
    fn fall_back(&mut self, z: &mut Compressor) -> Result<()> {
        self.flush_page(z)?;
        self.write_dictionary(z)?;
        self.dict = HashMap::with_hasher(OneShot::new());
        self.dict_plain = Vec::new();
        Ok(())
    }

    /// Writes the dictionary page, then the data pages held for it.
    fn write_dictionary(&mut self, z: &mut Compressor) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let entries = u32::try_from(self.dict.len())
            .map_err(|_| ParquetError::General("a dictionary past 2^32 values".into()))?;
        let page = Page::DictionaryPage {
            buf: z.compress(&self.dict_plain)?,
            num_values: entries,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        self.out.write(page, self.dict_plain.len())?;
        let base = self.out.append(held)?;
        for (offset, size) in self.held_at.drain(..) {
            self.offsets.append_offset_and_size(base + offset, size);
        }
        Ok(())
    }

    fn flush_page(&mut self, z: &mut Compressor) -> Result<()> {
        let page = &mut self.page;
        if page.rows == 0 {
            return Ok(());
        }
        let buf = &mut self.scratch;
        buf.clear();
        if self.nullable {
            // Version 1 pages: the levels' byte length, then the levels.
            buf.extend_from_slice(&[0; 4]);
            rle_hybrid(&page.def, 1, buf);
            let len = (buf.len() - 4) as u32;
            buf[..4].copy_from_slice(&len.to_le_bytes());
        }
        let encoding = if self.held.is_some() {
            let width = bit_width(self.dict.len().saturating_sub(1) as u32);
            buf.push(width);
            rle_hybrid(&page.indices, width, buf);
            Encoding::RLE_DICTIONARY
        } else {
            buf.extend_from_slice(&page.plain);
            Encoding::PLAIN
        };
        let num_values = u32::try_from(page.rows)
            .map_err(|_| ParquetError::General(format!("{} values in one page", page.rows)))?;
        let data_page = Page::DataPage {
            buf: z.compress(buf)?,
            num_values,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        match self.held.as_mut() {
            Some(held) => self.held_at.push(held.write(data_page, buf.len())?),
            None => {
                let (offset, size) = self.out.write(data_page, buf.len())?;
                self.offsets.append_offset_and_size(offset, size);
            }
        }
        self.offsets.append_row_count(i64::from(num_values));
        self.offsets
            .append_unencoded_byte_array_data_bytes(Some(page.value_bytes));

        // The column index, and the chunk's statistics.
        let nulls = page.nulls as i64;
        if page.has_value {
            if let Some((min, max)) = &self.last_bounds {
                if min > &page.min || max > &page.max {
                    self.ascending = false;
                }
                if &page.min > min || &page.max > max {
                    self.descending = false;
                }
            }
            let (min, _) = cut_min(&page.min, self.index_cut);
            let (max, _) = cut_max(&page.max, self.index_cut);
            self.index.append(false, min, max, nulls, None);
            match &mut self.min {
                Some(m) if m.as_slice() <= page.min.as_slice() => {}
                m => *m = Some(page.min.clone()),
            }
            match &mut self.max {
                Some(m) if m.as_slice() >= page.max.as_slice() => {}
                m => *m = Some(page.max.clone()),
            }
            self.last_bounds = Some((page.min.clone(), page.max.clone()));
        } else {
            self.index.append(true, Vec::new(), Vec::new(), nulls, None);
        }
        let histogram = self
            .nullable
            .then(|| LevelHistogram::from(vec![nulls, (page.rows - page.nulls) as i64]));
        self.index.append_histograms(&None, &histogram);
        self.nulls += nulls;
        self.value_bytes += page.value_bytes;
        self.rows += page.rows as u64;
        page.clear();
        Ok(())
    }

    /// The chunk's bytes and what the row group needs to splice them in.
    pub fn close(mut self, z: &mut Compressor) -> Result<(Vec<u8>, ColumnCloseResult)> {
        self.flush_page(z)?;
        self.write_dictionary(z)?;
        let (min, min_cut) = match &self.min {
            Some(v) => {
                let (v, cut) = cut_min(v, self.stats_cut);
                (Some(ByteArray::from(v)), cut)
            }
            None => (None, false),
        };
        let (max, max_cut) = match &self.max {
            Some(v) => {
                let (v, cut) = cut_max(v, self.stats_cut);
                (Some(ByteArray::from(v)), cut)
            }
            None => (None, false),
        };
        let mut stats = ValueStatistics::new(min, max, None, Some(self.nulls as u64), false);
        if stats.min_opt().is_some() {
            stats = stats.with_min_is_exact(!min_cut);
        }
        if stats.max_opt().is_some() {
            stats = stats.with_max_is_exact(!max_cut);
        }
        let histogram = self
            .nullable
            .then(|| LevelHistogram::from(vec![self.nulls, self.rows as i64 - self.nulls]));
        let (bytes, metadata) = self.out.finish(self.descr, self.codec)?;
        let metadata = metadata
            .set_statistics(Statistics::ByteArray(stats))
            .set_unencoded_byte_array_data_bytes(Some(self.value_bytes))
            .set_definition_level_histogram(histogram)
            .build()?;
        let mut index = self.index;
        index.set_boundary_order(match (self.ascending, self.descending) {
            (true, _) => BoundaryOrder::ASCENDING,
            (false, true) => BoundaryOrder::DESCENDING,
            (false, false) => BoundaryOrder::UNORDERED,
        });
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index: Some(index.build()?),
            offset_index: Some(self.offsets.build()),
        };
        Ok((bytes, close))
    }
}

/// The dictionary's hash: a value's bytes in one xxh3 call (std's SipHash,
/// or xxh3 through its streaming `Hasher`, cost several times more for
/// values this short), seeded per chunk at random so that no archive's
/// values can be chosen to collide.
#[derive(Clone)]
struct OneShot(u64);

impl OneShot {
    fn new() -> OneShot {
        use std::hash::BuildHasher;
        OneShot(std::collections::hash_map::RandomState::new().hash_one(0u8))
    }
}

impl std::hash::BuildHasher for OneShot {
    type Hasher = OneShotHasher;
    fn build_hasher(&self) -> OneShotHasher {
        OneShotHasher(self.0)
    }
}

struct OneShotHasher(u64);

impl std::hash::Hasher for OneShotHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    /// A slice's length, written before its bytes: folded into the seed.
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The bits of the largest value `max`.
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// Appends `values` in Parquet's RLE/bit-packed hybrid encoding at `width`
/// bits each (without a length): a run of 8 or more equal values as one
/// RLE run, the rest bit-packed in groups of 8 (the last group padded with
/// zeros, which readers ignore past the page's value count).
fn rle_hybrid(values: &[u32], width: u8, out: &mut Vec<u8>) {
    let run_at = |i: usize| {
        let v = values[i];
        values[i..].iter().take_while(|&&x| x == v).count()
    };
    let value_bytes = usize::from(width).div_ceil(8);
    let mut i = 0;
    while i < values.len() {
        let run = run_at(i);
        if run >= 8 {
            varint((run as u64) << 1, out);
            out.extend_from_slice(&values[i].to_le_bytes()[..value_bytes]);
            i += run;
            continue;
        }
        // Bit-packed groups until a long run begins at a group's start.
        let start = i;
        let mut groups = 0u64;
        loop {
            i = (i + 8).min(values.len());
            groups += 1;
            if i >= values.len() || groups == 63 || values[i..].len() >= 8 && run_at(i) >= 8 {
                break;
            }
        }
        varint((groups << 1) | 1, out);
        let (mut acc, mut bits) = (0u64, 0u32);
        let packed = values[start..i]
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(groups as usize * 8);
        for v in packed {
            acc |= u64::from(v) << bits;
            bits += u32::from(width);
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A lower bound of `v` at most `cut` bytes long, as the column writer
/// cuts text statistics (at a character boundary), and whether it is cut.
fn cut_min(v: &[u8], cut: Option<usize>) -> (Vec<u8>, bool) {
    let cut_to = cut
        .filter(|&n| v.len() > n)
        .and_then(|n| std::str::from_utf8(v).ok().map(|s| (s, n)))
        .and_then(|(s, n)| (1..=n).rfind(|&x| s.is_char_boundary(x)));
    match cut_to {
        Some(at) => (v[..at].to_vec(), true),
        None => (v.to_vec(), false),
    }
}

/// An upper bound of `v` at most `cut` bytes long: cut at a character
/// boundary, its last character that can be incremented incremented (as
/// the column writer does), and whether it is cut.
fn cut_max(v: &[u8], cut: Option<usize>) -> (Vec<u8>, bool) {
    let bound = cut
        .filter(|&n| v.len() > n)
        .and_then(|n| std::str::from_utf8(v).ok().map(|s| (s, n)))
        .and_then(|(s, n)| {
            let at = (n.saturating_sub(3)..=n).rfind(|&x| s.is_char_boundary(x))?;
            let s = s.get(..at)?;
            s.char_indices().rev().find_map(|(i, c)| {
                let next = char::from_u32(c as u32 + 1)?;
                (next.len_utf8() == c.len_utf8()).then(|| {
                    let mut b = s.as_bytes()[..i + c.len_utf8()].to_vec();
                    next.encode_utf8(&mut b[i..]);
                    b
                })
            })
        });
    match bound {
        Some(b) => (b, true),
        None => (v.to_vec(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::{schema, ColumnSink, Rows, Spec, Ty};
    use bytes::Bytes;
    use parquet::data_type::ByteArrayType;
    use parquet::file::metadata::ParquetMetaData;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::record::Field;
    use parquet::schema::types::SchemaDescriptor;

    #[test]
    fn rle_hybrid_round_trips_runs_and_packed_groups() {
        // Decoded here as the spec says, against the encoder.
        fn decode(mut b: &[u8], width: u8, n: usize) -> Vec<u32> {
            let mut out = Vec::new();
            let vb = usize::from(width).div_ceil(8);
            while out.len() < n {
                let (mut h, mut shift) = (0u64, 0);
                loop {
                    let byte = b[0];
                    b = &b[1..];
                    h |= u64::from(byte & 0x7f) << shift;
                    shift += 7;
                    if byte < 0x80 {
                        break;
                    }
                }
                if h & 1 == 0 {
                    let mut v = [0u8; 4];
                    v[..vb].copy_from_slice(&b[..vb]);
                    b = &b[vb..];
                    out.extend(std::iter::repeat_n(
                        u32::from_le_bytes(v),
                        (h >> 1) as usize,
                    ));
                } else {
                    let count = (h >> 1) as usize * 8;
                    let bytes = count * usize::from(width) / 8;
                    let (mut acc, mut bits, mut i) = (0u64, 0u32, 0);
                    for _ in 0..count {
                        while bits < u32::from(width) {
                            acc |= u64::from(b[i]) << bits;
                            i += 1;
                            bits += 8;
                        }
                        out.push((acc & ((1u64 << width) - 1)) as u32);
                        acc >>= width;
                        bits -= u32::from(width);
                    }
                    b = &b[bytes..];
                }
            }
            out.truncate(n);
            out
        }
        let mut values: Vec<u32> = (0..1000).map(|i| (i * 7919) % 300).collect();
        values.extend(std::iter::repeat_n(5, 20));
        values.extend([1, 2, 3]);
        values.extend(std::iter::repeat_n(299, 9));
        values.extend((0..700).map(|i| i % 3));
        for width in [9u8, 10, 17] {
            let mut out = Vec::new();
            rle_hybrid(&values, width, &mut out);
            assert_eq!(decode(&out, width, values.len()), values, "width {width}");
        }
        let ones = vec![0u32; 100];
        let mut out = Vec::new();
        rle_hybrid(&ones, 0, &mut out);
        assert_eq!(out, vec![200, 1]);
    }

    /// The same values through the `parquet` crate's column writer and
    /// through [`DictChunk`], with the writer's page and dictionary checks
    /// after every value (so both cut pages at the same rows), read back:
    /// the same values, statistics, column index, encodings and pages.
    #[test]
    fn the_chunk_reads_as_the_column_writers_does() {
        let long_a = format!("{}é€x", "é".repeat(40));
        let long_z = format!("z{}ÿ", "€".repeat(30));
        let mut values: Vec<Option<String>> = Vec::new();
        for i in 0..3000usize {
            values.push(match i {
                // A page of nulls alone.
                200..=299 => None,
                _ if i % 11 == 0 => None,
                _ if i % 5 == 0 => Some(long_a.clone()),
                _ if i % 13 == 0 => Some(long_z.clone()),
                // Ascending distinct values: the dictionary fills up.
                _ if i > 1500 => Some(format!("v{i:05}")),
                _ => Some(["same", "other", "same"][i % 3].to_owned()),
            });
        }
        let props = Arc::new(
            crate::partition::properties(&[Spec::new("s", Ty::Text, true)])
                .unwrap()
                .into_builder()
                .set_write_batch_size(1)
                .set_data_page_row_count_limit(100)
                .set_dictionary_page_size_limit(4000)
                .set_data_page_size_limit(700)
                .build(),
        );
        let specs = [Spec::own_dictionary("s", true)];
        let schema = schema(&specs).unwrap();
        let descr = SchemaDescriptor::new(schema.clone());
        let dir = tempfile::tempdir().unwrap();

        // The crate's column writer.
        let theirs = dir.path().join("theirs.parquet");
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&theirs).unwrap(),
            schema.clone(),
            Arc::clone(&props),
        )
        .unwrap();
        let mut group = w.next_row_group().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        let present: Vec<ByteArray> = values
            .iter()
            .flatten()
            .map(|v| ByteArray::from(v.as_str()))
            .collect();
        let def: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&present, Some(&def), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        w.close().unwrap();

        // Ours, in uneven batches.
        let ours = dir.path().join("ours.parquet");
        let mut z = Compressor::new().unwrap();
        let chunk = DictChunk::new(descr.column(0), &props, Vec::new()).unwrap();
        let mut sinks = vec![ColumnSink::Dict(Box::new(chunk))];
        let mut rows = Rows::new(&specs);
        let mut scratch = Vec::new();
        for (i, v) in values.iter().enumerate() {
            rows.opt_text(0, v.as_deref()).unwrap();
            rows.end_row().unwrap();
            if i % 377 == 0 || i == values.len() - 1 {
                rows.write_to(&mut sinks, &mut scratch, &mut z).unwrap();
            }
        }
        let Some(ColumnSink::Dict(chunk)) = sinks.pop() else {
            panic!("the chunk is gone")
        };
        let (bytes, close) = (*chunk).close(&mut z).unwrap();
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&ours).unwrap(),
            schema,
            Arc::clone(&props),
        )
        .unwrap();
        let mut group = w.next_row_group().unwrap();
        group.append_column(&Bytes::from(bytes), close).unwrap();
        group.close().unwrap();
        w.close().unwrap();

        let read = |path: &std::path::Path| -> (Vec<Option<String>>, Arc<ParquetMetaData>) {
            let options = ReadOptionsBuilder::new().with_page_index().build();
            let file = std::fs::File::open(path).unwrap();
            let reader = SerializedFileReader::new_with_options(file, options).unwrap();
            let values = reader
                .get_row_iter(None)
                .unwrap()
                .map(|row| match row.unwrap().get_column_iter().next() {
                    Some((_, Field::Str(s))) => Some(s.clone()),
                    Some((_, Field::Null)) => None,
                    other => panic!("not a string: {other:?}"),
                })
                .collect();
            (values, Arc::new(reader.metadata().clone()))
        };
        let (their_values, their_meta) = read(&theirs);
        let (our_values, our_meta) = read(&ours);
        assert!(their_values == values, "the column writer's values differ");
        assert!(our_values == values, "the values read back differ");

        let (t, o) = (
            their_meta.row_group(0).column(0),
            our_meta.row_group(0).column(0),
        );
        assert_eq!(o.statistics(), t.statistics());
        assert!(o.statistics().is_some());
        assert_eq!(o.encodings_mask(), t.encodings_mask());
        assert_eq!(o.page_encoding_stats(), t.page_encoding_stats());
        assert_eq!(o.num_values(), t.num_values());
        assert_eq!(
            o.unencoded_byte_array_data_bytes(),
            t.unencoded_byte_array_data_bytes()
        );
        assert_eq!(
            o.definition_level_histogram(),
            t.definition_level_histogram()
        );
        assert!(o.dictionary_page_offset().is_some());

        let index = |m: &ParquetMetaData| {
            let page_index = m.page_index_for_row_group(0);
            let i = page_index.column_index(0).unwrap().clone();
            let o = page_index.offset_index(0).unwrap().clone();
            let rows: Vec<i64> = o
                .page_locations()
                .iter()
                .map(|p| p.first_row_index)
                .collect();
            (
                format!("{i:?}"),
                rows,
                o.unencoded_byte_array_data_bytes().cloned(),
            )
        };
        let (ti, to) = (index(&their_meta), index(&our_meta));
        assert_eq!(to.0, ti.0, "column index");
        assert_eq!(to.1, ti.1, "page rows");
        assert_eq!(to.2, ti.2, "page bytes");
        assert!(to.1.len() > 20, "{:?}", to.1);

        // The dictionary filled up: dictionary pages, then PLAIN ones.
        let file = std::fs::File::open(&ours).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.get_row_group(0).unwrap();
        let encodings: Vec<Encoding> = group
            .get_column_page_reader(0)
            .unwrap()
            .map(|p| p.unwrap().encoding())
            .collect();
        assert_eq!(encodings.first(), Some(&Encoding::PLAIN));
        assert!(encodings.contains(&Encoding::RLE_DICTIONARY));
        assert_eq!(encodings.last(), Some(&Encoding::PLAIN));
    }
}
