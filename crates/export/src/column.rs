//! Typed Parquet columns and the row-group buffers that fill them.
//!
//! Invariants: a table is a list of [`Spec`]s; its Parquet schema
//! ([`schema`]) and its buffers ([`Rows`]) are both made from that list, so
//! a value lands in the column the schema declares or the push fails
//! ([`ColumnError`], never a panic or a misaligned file); every row gives
//! every column exactly one value (a list counts as one), checked by
//! [`Rows::end_row`].
//! - Rows are buffered in small batches, not whole row groups: each batch
//!   is encoded and compressed into the row group's column writers as it
//!   comes ([`Rows::write_to`]), so what a row group holds in memory is its
//!   compressed pages, and a batch's buffers, emptied, serve the next one
//!   (fresh memory costs more than the copying: the kernel zeroes every new
//!   page).
//! - Text is buffered as one byte arena per column, each value a range of
//!   it, and handed to the Parquet writer as slices of that one buffer:
//!   filling a batch allocates per column, never per value (an allocation
//!   and a cross-thread free per string cost more than the rest of the
//!   export). The arena comes back for the next batch once the writer
//!   holds no slice of it (a dictionary keeps slices of its distinct
//!   values until the row group ends: that arena is left to it).
//! - A column whose pages the export makes itself ([`Spec::own_pages`]:
//!   the payload) is buffered PLAIN-encoded, each value its 4-byte length
//!   and its bytes, and compressed page by page straight from that buffer
//!   ([`crate::plain`]); the buffer always comes back. A dictionary text
//!   column whose pages the export makes ([`Spec::own_dictionary`]) is
//!   buffered as other text and encoded from the ranges
//!   ([`crate::dict`]), its arena always coming back too.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use ccvault_projections::columns::{Cell, Show};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::schema::types::Type;

use crate::dict::DictChunk;
use crate::plain::{page_full, Compressor, PlainChunk};

/// The Parquet type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// INT64 TIMESTAMP(MILLIS, UTC): an epoch-ms instant.
    Timestamp,
    /// INT64: a duration in ms, a count, an offset or an identifier number.
    Int64,
    Bool,
    /// DOUBLE: a ratio.
    Double,
    /// BYTE_ARRAY STRING.
    Text,
    /// LIST of STRING: names such as a leg's anomalies.
    TextList,
}

impl Ty {
    /// The Parquet type a column of the projections' column lists has, from
    /// how its human views show it (so a new column of [`Show`] kind needs
    /// no change here).
    pub fn of_show(show: Show) -> Ty {
        match show {
            Show::Instant => Ty::Timestamp,
            Show::Duration | Show::Number => Ty::Int64,
            Show::Percent => Ty::Double,
            Show::Text => Ty::Text,
            Show::Flag => Ty::Bool,
            Show::List => Ty::TextList,
        }
    }
}

/// One column of a table.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
    /// Dictionary-encode the values (strings that repeat); off for values
    /// that rarely repeat (payloads), where a dictionary only costs time.
    pub dictionary: bool,
    /// The export makes the column's pages itself: a required text column
    /// without dictionary or statistics ([`crate::plain`]), or with
    /// `dictionary` a flat text column ([`crate::dict`]).
    pub own_pages: bool,
}

impl Spec {
    pub const fn new(name: &'static str, ty: Ty, nullable: bool) -> Spec {
        Spec {
            name,
            ty,
            nullable,
            dictionary: matches!(ty, Ty::Text | Ty::TextList),
            own_pages: false,
        }
    }

    /// A dictionary-encoded text column whose pages the export makes
    /// itself (the events table's text, [`crate::dict`]).
    pub const fn own_dictionary(name: &'static str, nullable: bool) -> Spec {
        Spec {
            name,
            ty: Ty::Text,
            nullable,
            dictionary: true,
            own_pages: true,
        }
    }

    /// A required text column whose pages the export makes itself: long,
    /// rarely repeated values (an event's payload).
    pub const fn own_pages(name: &'static str) -> Spec {
        Spec {
            name,
            ty: Ty::Text,
            nullable: false,
            dictionary: false,
            own_pages: true,
        }
    }
}

/// The Parquet schema of a table.
pub fn schema(specs: &[Spec]) -> Result<Arc<Type>, ParquetError> {
    let mut text = String::from("message schema {\n");
    for s in specs {
        let rep = if s.nullable { "OPTIONAL" } else { "REQUIRED" };
        let name = s.name;
        let _ = match s.ty {
            Ty::Timestamp => writeln!(text, "{rep} INT64 {name} (TIMESTAMP(MILLIS,true));"),
            Ty::Int64 => writeln!(text, "{rep} INT64 {name};"),
            Ty::Bool => writeln!(text, "{rep} BOOLEAN {name};"),
            Ty::Double => writeln!(text, "{rep} DOUBLE {name};"),
            Ty::Text => writeln!(text, "{rep} BYTE_ARRAY {name} (STRING);"),
            // The three-level LIST of the Parquet spec, which every engine reads.
            Ty::TextList => writeln!(
                text,
                "{rep} group {name} (LIST) {{ REPEATED group list {{ REQUIRED BYTE_ARRAY element (STRING); }} }}"
            ),
        };
    }
    text.push('}');
    Ok(Arc::new(parquet::schema::parser::parse_message_type(
        &text,
    )?))
}

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnError {
    pub column: &'static str,
    pub why: String,
}

/// The values of one column for the row group being filled.
#[derive(Debug)]
enum Values {
    I64(Vec<i64>),
    Bool(Vec<bool>),
    F64(Vec<f64>),
    /// Strings: their bytes one after the other in `data`, each value a
    /// `(start, end)` range of it; a value equal to the one before shares
    /// its range (most text repeats: source, family, tenant...).
    Text {
        data: Vec<u8>,
        ranges: Vec<(usize, usize)>,
    },
    /// Strings PLAIN-encoded as Parquet stores them (a 4-byte
    /// little-endian length, then the bytes), one after the other; `ends`:
    /// where each value ends in `data`.
    Plain {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
}

impl Values {
    /// Appends one string.
    fn push_text(data: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>, v: &[u8]) {
        if let Some(&(start, end)) = ranges.last() {
            if data.get(start..end) == Some(v) {
                ranges.push((start, end));
                return;
            }
        }
        let start = data.len();
        data.extend_from_slice(v);
        ranges.push((start, data.len()));
    }
}

#[derive(Debug)]
struct ColumnBuf {
    spec: Spec,
    values: Values,
    /// Definition levels (nullable columns and lists).
    def: Vec<i16>,
    /// Repetition levels (lists only).
    rep: Vec<i16>,
    /// Rows given so far.
    rows: usize,
}

/// The definition level of a present value: 1 for a nullable column, and
/// for a list 1 more when the list itself may be null.
fn present_level(spec: &Spec) -> i16 {
    let list = i16::from(spec.ty == Ty::TextList);
    i16::from(spec.nullable) + list
}

impl ColumnBuf {
    /// `plain_bytes`: the room a plain column's values get at once.
    fn new(spec: Spec, plain_bytes: usize) -> ColumnBuf {
        let values = match spec.ty {
            Ty::Text if spec.own_pages && !spec.dictionary => Values::Plain {
                data: Vec::with_capacity(plain_bytes),
                ends: Vec::new(),
            },
            Ty::Timestamp | Ty::Int64 => Values::I64(Vec::new()),
            Ty::Bool => Values::Bool(Vec::new()),
            Ty::Double => Values::F64(Vec::new()),
            Ty::Text | Ty::TextList => Values::Text {
                data: Vec::new(),
                ranges: Vec::new(),
            },
        };
        ColumnBuf {
            spec,
            values,
            def: Vec::new(),
            rep: Vec::new(),
            rows: 0,
        }
    }

    fn mismatch(&self, what: &str) -> ColumnError {
        ColumnError {
            column: self.spec.name,
            why: format!("a {what} value for a {:?} column", self.spec.ty),
        }
    }

    /// Records one present scalar's levels.
    fn present(&mut self) {
        if self.spec.nullable {
            self.def.push(1);
        }
        self.rows += 1;
    }

    fn null(&mut self) -> Result<(), ColumnError> {
        if !self.spec.nullable {
            return Err(ColumnError {
                column: self.spec.name,
                why: "null in a column that is never null".into(),
            });
        }
        self.def.push(0);
        if self.spec.ty == Ty::TextList {
            self.rep.push(0);
        }
        self.rows += 1;
        Ok(())
    }

    fn int(&mut self, v: i64) -> Result<usize, ColumnError> {
        match &mut self.values {
            Values::I64(vals) => vals.push(v),
            _ => return Err(self.mismatch("integer")),
        }
        self.present();
        Ok(8)
    }

    fn flag(&mut self, v: bool) -> Result<usize, ColumnError> {
        match &mut self.values {
            Values::Bool(vals) => vals.push(v),
            _ => return Err(self.mismatch("boolean")),
        }
        self.present();
        Ok(1)
    }

    fn double(&mut self, v: f64) -> Result<usize, ColumnError> {
        match &mut self.values {
            Values::F64(vals) => vals.push(v),
            _ => return Err(self.mismatch("double")),
        }
        self.present();
        Ok(8)
    }

    fn bytes(&mut self, v: &[u8]) -> Result<usize, ColumnError> {
        match (&mut self.values, self.spec.ty) {
            (Values::Text { data, ranges }, Ty::Text) => Values::push_text(data, ranges, v),
            (Values::Plain { data, ends }, Ty::Text) => {
                let Ok(len) = u32::try_from(v.len()) else {
                    return Err(ColumnError {
                        column: self.spec.name,
                        why: format!("a value of {} bytes (Parquet's limit: 4 GiB)", v.len()),
                    });
                };
                data.extend_from_slice(&len.to_le_bytes());
                data.extend_from_slice(v);
                ends.push(data.len());
            }
            _ => return Err(self.mismatch("text")),
        }
        self.present();
        Ok(v.len() + 4)
    }

    fn list(&mut self, items: &[&str]) -> Result<usize, ColumnError> {
        let (Values::Text { data, ranges }, Ty::TextList) = (&mut self.values, self.spec.ty) else {
            return Err(self.mismatch("list"));
        };
        let full = present_level(&self.spec);
        let mut n = 0;
        if items.is_empty() {
            // An empty list: defined up to the list, no element.
            self.def.push(full - 1);
            self.rep.push(0);
        }
        for (i, item) in items.iter().enumerate() {
            Values::push_text(data, ranges, item.as_bytes());
            self.def.push(full);
            self.rep.push(i16::from(i > 0));
            n += item.len() + 4;
        }
        self.rows += 1;
        Ok(n + 2)
    }

    fn clear(&mut self) {
        match &mut self.values {
            Values::I64(v) => v.clear(),
            Values::Bool(v) => v.clear(),
            Values::F64(v) => v.clear(),
            Values::Text { data, ranges } => {
                data.clear();
                ranges.clear();
            }
            Values::Plain { data, ends } => {
                data.clear();
                ends.clear();
            }
        }
        self.def.clear();
        self.rep.clear();
        self.rows = 0;
    }
}

/// The rows of one row group being filled, column by column.
#[derive(Debug)]
pub struct Rows {
    columns: Vec<ColumnBuf>,
    rows: usize,
    /// The uncompressed size of the values so far (an estimate: values plus
    /// 4 bytes of length per string), which sizes row groups.
    bytes: usize,
}

impl Rows {
    #[cfg(test)]
    pub fn new(specs: &[Spec]) -> Rows {
        Rows::with_room(specs, 0)
    }

    /// Rows whose plain column (the payload) has room for `plain_bytes`
    /// at once: a batch's buffer grown by doubling was copied at each step
    /// into fresh memory, which costs more than the copy here.
    pub fn with_room(specs: &[Spec], plain_bytes: usize) -> Rows {
        Rows {
            columns: specs
                .iter()
                .map(|s| ColumnBuf::new(s.clone(), plain_bytes))
                .collect(),
            rows: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a PLAIN column (the payload) holds a complete page of its
    /// own ([`crate::plain::page_full`]; `page_rows`: the properties'
    /// row limit of a page). A batch sent then is compressed page by page
    /// where it is: sent at any other size, the values past its last page
    /// are copied to wait for the next batch (most of the payload, when a
    /// batch's bytes end before its page does).
    pub fn plain_page_full(&self, page_rows: usize) -> bool {
        self.columns.iter().any(|c| match &c.values {
            Values::Plain { data, ends } => page_full(data.len(), ends.len(), page_rows),
            _ => false,
        })
    }

    fn col(&mut self, i: usize) -> Result<&mut ColumnBuf, ColumnError> {
        self.columns.get_mut(i).ok_or_else(|| ColumnError {
            column: "?",
            why: format!("the table has no column {i}"),
        })
    }

    pub fn null(&mut self, i: usize) -> Result<(), ColumnError> {
        self.col(i)?.null()
    }

    pub fn int(&mut self, i: usize, v: i64) -> Result<(), ColumnError> {
        self.bytes += self.col(i)?.int(v)?;
        Ok(())
    }

    pub fn opt_int(&mut self, i: usize, v: Option<i64>) -> Result<(), ColumnError> {
        match v {
            Some(v) => self.int(i, v),
            None => self.null(i),
        }
    }

    pub fn text(&mut self, i: usize, v: &str) -> Result<(), ColumnError> {
        self.bytes += self.col(i)?.bytes(v.as_bytes())?;
        Ok(())
    }

    pub fn opt_text(&mut self, i: usize, v: Option<&str>) -> Result<(), ColumnError> {
        match v {
            Some(v) => self.text(i, v),
            None => self.null(i),
        }
    }

    /// A text value given as its bytes, kept as they are (the caller knows
    /// they are UTF-8: an archived event's payload).
    pub fn raw_text(&mut self, i: usize, v: &[u8]) -> Result<(), ColumnError> {
        self.bytes += self.col(i)?.bytes(v)?;
        Ok(())
    }

    /// A cell of the projections' column lists, in the column of its type.
    pub fn cell(&mut self, i: usize, cell: Cell<'_>) -> Result<(), ColumnError> {
        let col = self.col(i)?;
        let n = match cell {
            Cell::Null => col.null().map(|()| 0)?,
            Cell::Int(v) => col.int(v)?,
            Cell::Count(v) => {
                let v = i64::try_from(v).map_err(|_| ColumnError {
                    column: col.spec.name,
                    why: format!("count {v} does not fit INT64"),
                })?;
                col.int(v)?
            }
            Cell::Ratio(v) => col.double(v)?,
            Cell::Bool(v) => col.flag(v)?,
            Cell::Text(t) => col.bytes(t.as_bytes())?,
            Cell::List(items) => col.list(&items)?,
        };
        self.bytes += n;
        Ok(())
    }

    /// Closes a row: every column must have had exactly one value.
    pub fn end_row(&mut self) -> Result<(), ColumnError> {
        self.rows += 1;
        match self.columns.iter().find(|c| c.rows != self.rows) {
            Some(c) => Err(ColumnError {
                column: c.spec.name,
                why: format!("{} values for {} rows", c.rows, self.rows),
            }),
            None => Ok(()),
        }
    }

    /// Encodes the rows into `columns` (one row group's column chunks, in
    /// the order of the specs) and empties the buffers, keeping their
    /// memory. `scratch`: the caller's reusable list of value slices; `z`:
    /// its compressor for own pages.
    pub fn write_to(
        &mut self,
        columns: &mut [ColumnSink],
        scratch: &mut Vec<ByteArray>,
        z: &mut Compressor,
    ) -> Result<(), ParquetError> {
        if columns.len() != self.columns.len() {
            return Err(ParquetError::General(format!(
                "{} column writers for {} columns",
                columns.len(),
                self.columns.len()
            )));
        }
        for (c, writer) in self.columns.iter_mut().zip(columns) {
            let def = (!c.def.is_empty()).then_some(c.def.as_slice());
            let rep = (!c.rep.is_empty()).then_some(c.rep.as_slice());
            let writer = match (&mut c.values, writer) {
                (Values::Plain { data, ends }, ColumnSink::Own(chunk)) => {
                    chunk.write(data, ends, z)?;
                    continue;
                }
                (Values::Text { data, ranges }, ColumnSink::Dict(chunk))
                    if c.spec.ty == Ty::Text =>
                {
                    chunk.write(data, ranges, &c.def, z)?;
                    continue;
                }
                (_, ColumnSink::Parquet(w)) => &mut **w,
                _ => {
                    return Err(ParquetError::General(format!(
                        "column {} ({:?}) has a writer of another kind",
                        c.spec.name, c.spec.ty
                    )))
                }
            };
            match (&mut c.values, writer) {
                (Values::I64(v), ColumnWriter::Int64ColumnWriter(w)) => {
                    w.write_batch(v, def, rep)?;
                }
                (Values::Bool(v), ColumnWriter::BoolColumnWriter(w)) => {
                    w.write_batch(v, def, rep)?;
                }
                (Values::F64(v), ColumnWriter::DoubleColumnWriter(w)) => {
                    w.write_batch(v, def, rep)?;
                }
                (Values::Text { data, ranges }, ColumnWriter::ByteArrayColumnWriter(w)) => {
                    // One shared buffer; each value a slice of it.
                    let whole = Arc::new(std::mem::take(data));
                    let bytes = Bytes::from_owner(Lent(Arc::clone(&whole)));
                    scratch.clear();
                    scratch.extend(
                        ranges
                            .iter()
                            .map(|&(start, end)| ByteArray::from(bytes.slice(start..end))),
                    );
                    drop(bytes);
                    w.write_batch(scratch, def, rep)?;
                    scratch.clear();
                    // Unless a dictionary kept slices, the buffer is ours
                    // again (else the next batch allocates one).
                    if let Ok(buf) = Arc::try_unwrap(whole) {
                        *data = buf;
                    }
                }
                _ => {
                    return Err(ParquetError::General(format!(
                        "column {} ({:?}) has a writer of another type",
                        c.spec.name, c.spec.ty
                    )))
                }
            }
        }
        self.clear();
        Ok(())
    }

    /// Empties the rows, keeping the capacity of every buffer.
    pub fn clear(&mut self) {
        for c in &mut self.columns {
            c.clear();
        }
        self.rows = 0;
        self.bytes = 0;
    }
}

/// Where a row group's column is encoded: the `parquet` crate's column
/// writer, or the export's own pages.
pub enum ColumnSink {
    /// Both boxed: a column writer is over a kilobyte, an own chunk a
    /// few hundred bytes.
    Parquet(Box<ColumnWriter<'static>>),
    Own(Box<PlainChunk>),
    Dict(Box<DictChunk>),
}

/// A column's text buffer lent to the Parquet writer as [`Bytes`].
struct Lent(Arc<Vec<u8>>);

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_of_the_wrong_type_or_count_is_an_error() {
        let specs = [
            Spec::new("a", Ty::Int64, false),
            Spec::new("b", Ty::Text, true),
            Spec::new("c", Ty::TextList, false),
        ];
        let mut rows = Rows::new(&specs);
        assert_eq!(rows.text(0, "x").unwrap_err().column, "a");
        assert_eq!(rows.null(0).unwrap_err().column, "a");
        rows.int(0, 1).unwrap();
        rows.null(1).unwrap();
        rows.cell(2, Cell::List(vec![])).unwrap();
        rows.end_row().unwrap();
        rows.int(0, 2).unwrap();
        let e = rows.end_row().unwrap_err();
        assert_eq!(e.column, "b");
        assert!(rows.cell(9, Cell::Null).is_err());
    }

    #[test]
    fn the_schema_types_every_kind() {
        let specs = [
            Spec::new("t", Ty::Timestamp, false),
            Spec::new("n", Ty::Int64, true),
            Spec::new("f", Ty::Bool, false),
            Spec::new("r", Ty::Double, true),
            Spec::new("s", Ty::Text, true),
            Spec::new("l", Ty::TextList, false),
        ];
        let schema = schema(&specs).unwrap();
        assert_eq!(schema.get_fields().len(), 6);
        let descr = parquet::schema::types::SchemaDescriptor::new(schema);
        assert_eq!(descr.num_columns(), 6);
        // The list's leaf: defined 1 (list present), repeated 1.
        assert_eq!(descr.column(5).max_def_level(), 1);
        assert_eq!(descr.column(5).max_rep_level(), 1);
    }
}
