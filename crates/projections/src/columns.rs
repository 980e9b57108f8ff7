//! One column list per output row, and the CSV writer.
//!
//! Guarantees:
//! - Each row type ([`crate::Summary`], [`crate::ReportRow`], agent state
//!   rows) declares its columns once, as a [`Column`] list in JSON order; the
//!   CSV header and cells, the human tables and the HTML report table all read
//!   that list, and unit tests compare it with the row's serde keys and
//!   values, so a new field cannot silently miss a format.
//! - A CSV cell holds the JSON value as text: `null` is empty, a list joins
//!   its items with `;`, text is quoted only when it holds a comma, a quote
//!   or a line break (RFC 4180, written by the `csv` crate).

use std::borrow::Cow;
use std::io::Write;

use jiff::tz::TimeZone;

use crate::timefmt::{format_duration, format_instant};

/// One value of a row, typed as its JSON value is.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Count(u64),
    /// A ratio already rounded to 4 decimals.
    Ratio(f64),
    Bool(bool),
    Text(Cow<'a, str>),
    List(Vec<&'static str>),
}

impl<'a> Cell<'a> {
    pub fn opt_int(v: Option<i64>) -> Cell<'a> {
        v.map_or(Cell::Null, Cell::Int)
    }

    pub fn opt_text(v: Option<&'a str>) -> Cell<'a> {
        v.map_or(Cell::Null, |t| Cell::Text(Cow::Borrowed(t)))
    }

    pub fn opt_ratio(v: Option<f64>) -> Cell<'a> {
        v.map_or(Cell::Null, Cell::Ratio)
    }

    /// The CSV text of the cell: what JSON prints, without quotes; empty for null.
    pub fn csv_text(&self) -> Cow<'_, str> {
        match self {
            Cell::Null => Cow::Borrowed(""),
            Cell::Int(v) => Cow::Owned(v.to_string()),
            Cell::Count(v) => Cow::Owned(v.to_string()),
            // serde_json's shortest round-trip form, as the JSON output prints it.
            Cell::Ratio(v) => Cow::Owned(serde_json::Value::from(*v).to_string()),
            Cell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Cell::Text(t) => Cow::Borrowed(t),
            Cell::List(items) => Cow::Owned(items.join(";")),
        }
    }

    /// The cell as a human view prints it (`-` for null).
    pub fn human(&self, show: Show, tz: Option<&TimeZone>) -> String {
        match (self, show) {
            (Cell::Null, _) => "-".to_string(),
            (Cell::Int(ms), Show::Instant) => format_instant(*ms, tz),
            (Cell::Int(ms), Show::Duration) => format_duration(*ms),
            (Cell::Ratio(r), Show::Percent) => format!("{:.2}%", r * 100.0),
            (Cell::List(items), _) if items.is_empty() => "-".to_string(),
            (Cell::List(items), _) => items.join(", "),
            (other, _) => other.csv_text().into_owned(),
        }
    }

    /// The JSON value the cell stands for (the column tests compare it with serde's).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(v) => (*v).into(),
            Cell::Count(v) => (*v).into(),
            Cell::Ratio(v) => (*v).into(),
            Cell::Bool(b) => (*b).into(),
            Cell::Text(t) => t.as_ref().into(),
            Cell::List(items) => items.clone().into(),
        }
    }
}

/// How a human view prints a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// An epoch-ms instant in the view's time zone.
    Instant,
    /// A duration in ms, `1m 19s`.
    Duration,
    /// A ratio as a percentage with two decimals.
    Percent,
    /// A count or an identifier number, right-aligned.
    Number,
    /// Text as given, left-aligned.
    Text,
    /// A boolean (`true`/`false`).
    Flag,
    /// A list of names (`;`-joined in CSV, comma-separated in human views).
    List,
}

impl Show {
    /// Numbers line up on the right in tables.
    pub fn right_aligned(self) -> bool {
        matches!(self, Show::Duration | Show::Percent | Show::Number)
    }
}

/// One column of a row type `R`.
pub struct Column<R> {
    /// The JSON key, which is also the CSV header.
    pub key: &'static str,
    /// The header of human views (tables and HTML); `None` when the column
    /// is left out of them (machine formats carry every column).
    pub label: Option<&'static str>,
    pub show: Show,
    /// The width of the column in a streamed human listing, where widths
    /// cannot come from the rows (0 when the column is not listed so).
    pub width: usize,
    pub get: fn(&R) -> Cell<'_>,
}

impl<R> Column<R> {
    /// The cell of `row` as a human view prints it.
    pub fn human(&self, row: &R, tz: Option<&TimeZone>) -> String {
        (self.get)(row).human(self.show, tz)
    }
}

impl<R> std::fmt::Debug for Column<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Column").field("key", &self.key).finish()
    }
}

/// Writes rows of one type as CSV: the header of the given columns first,
/// then one record per [`CsvWriter::write`].
pub struct CsvWriter<'c, W: Write, R> {
    out: csv::Writer<W>,
    columns: Vec<&'c Column<R>>,
    record: Vec<String>,
}

/// A failed CSV write (the output closed or failed); its source is the
/// write's own error, so the reason and the output it names are kept.
#[derive(Debug)]
pub struct CsvError(csv::Error);

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot write CSV")
    }
}

impl std::error::Error for CsvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `csv::Error` names no source of its own for a failed write.
        match self.0.kind() {
            csv::ErrorKind::Io(e) => Some(e),
            _ => Some(&self.0),
        }
    }
}

impl From<csv::Error> for CsvError {
    fn from(e: csv::Error) -> Self {
        CsvError(e)
    }
}

impl CsvError {
    /// Whether the output was closed (`| head`), which ends a listing quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self.0.kind(), csv::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl<'c, W: Write, R> CsvWriter<'c, W, R> {
    /// Starts the output with the header line.
    pub fn new(out: W, columns: impl IntoIterator<Item = &'c Column<R>>) -> Result<Self, CsvError> {
        let columns: Vec<&Column<R>> = columns.into_iter().collect();
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        out.write_record(columns.iter().map(|c| c.key))?;
        Ok(CsvWriter {
            out,
            record: Vec::with_capacity(columns.len()),
            columns,
        })
    }

    pub fn write(&mut self, row: &R) -> Result<(), CsvError> {
        self.record.clear();
        for c in &self.columns {
            self.record.push((c.get)(row).csv_text().into_owned());
        }
        self.out.write_record(&self.record)?;
        Ok(())
    }

    /// Flushes and hands back the output.
    pub fn finish(self) -> Result<W, CsvError> {
        self.out
            .into_inner()
            .map_err(|e| CsvError(csv::Error::from(e.into_error())))
    }
}

/// The object keys of a JSON text in the order written (serde_json's `Value`
/// sorts them, so the column tests read the text itself).
#[cfg(test)]
pub(crate) fn json_keys(json: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, serde::de::IgnoredAny)) = m.next_entry::<String, _>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(json)
        .map(|k| k.0)
        .unwrap_or_default()
}

/// Asserts that `columns` are exactly the serde keys of `row`, in order, and
/// that each column's cell is the value serde writes.
#[cfg(test)]
pub(crate) fn assert_columns_match_serde<R: serde::Serialize>(columns: &[&Column<R>], row: &R) {
    let text = serde_json::to_string(row).expect("rows serialize");
    let json: serde_json::Value = serde_json::from_str(&text).expect("serde writes JSON");
    let keys: Vec<&str> = columns.iter().map(|c| c.key).collect();
    assert_eq!(keys, json_keys(&text), "column list vs serde keys");
    for c in columns {
        assert_eq!((c.get)(row).to_json(), json[c.key], "column {}", c.key);
    }
}
