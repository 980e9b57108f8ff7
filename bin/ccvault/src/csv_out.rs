//! CSV output (RFC 4180, through the `csv` crate) of any rows that
//! serialize as JSON objects: interactions, report rows, agent state time.
//!
//! Guarantees: columns are the JSON field names in the rows' own field
//! order; nested objects are flattened to `outer.inner` columns (agents'
//! `stateMs.5`); null is an empty cell, a list is its items joined with `;`;
//! every row has every column of the header.

use std::io::Write;

use anyhow::Result;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

/// A JSON object's fields in document order (serde_json's `Map` sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    fields.push(entry);
                }
                Ok(Ordered(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// The row's cells by column name, nested objects flattened, in order.
fn flatten(row: &impl Serialize) -> Result<Vec<(String, Value)>> {
    let text = serde_json::to_string(row)?;
    let Ordered(fields) = serde_json::from_str(&text)?;
    let mut out = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        match value {
            Value::Object(inner) => {
                // Re-read the nested object in document order too.
                let Ordered(inner) = serde_json::from_str(&serde_json::to_string(&inner)?)?;
                out.extend(inner.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)));
            }
            other => out.push((name, other)),
        }
    }
    Ok(out)
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

/// A CSV stream whose header is the first row's columns.
pub struct CsvRows<W: Write> {
    w: csv::Writer<W>,
    header: Option<Vec<String>>,
}

impl<W: Write> CsvRows<W> {
    pub fn new(out: W) -> CsvRows<W> {
        CsvRows {
            w: csv::WriterBuilder::new().from_writer(out),
            header: None,
        }
    }

    /// A header given up front (all rows' columns, when they vary).
    fn with_header(out: W, header: Vec<String>) -> Result<CsvRows<W>> {
        let mut rows = CsvRows::new(out);
        rows.w.write_record(&header)?;
        rows.header = Some(header);
        Ok(rows)
    }

    pub fn row(&mut self, row: &impl Serialize) -> Result<()> {
        let cells = flatten(row)?;
        let header = match &self.header {
            Some(h) => h,
            None => {
                let h: Vec<String> = cells.iter().map(|(k, _)| k.clone()).collect();
                self.w.write_record(&h)?;
                self.header.insert(h)
            }
        };
        let record: Vec<String> = header
            .iter()
            .map(|col| cell(cells.iter().find(|(k, _)| k == col).map(|(_, v)| v)))
            .collect();
        self.w.write_record(&record)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.w.flush()?;
        Ok(())
    }
}

/// All `rows` as CSV, with the union of their columns (first-seen order;
/// flattened map columns sorted as the rows list them).
pub fn write_all<T: Serialize>(out: impl Write, rows: &[T]) -> Result<()> {
    let mut header: Vec<String> = Vec::new();
    for row in rows {
        for (k, _) in flatten(row)? {
            if !header.contains(&k) {
                header.push(k);
            }
        }
    }
    let mut csv = CsvRows::with_header(out, header)?;
    for row in rows {
        csv.row(row)?;
    }
    csv.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_in_field_order_nested_flattened_and_quoted() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Row {
            zeta: i64,
            alpha: Option<String>,
            state_ms: std::collections::BTreeMap<String, i64>,
            tags: Vec<String>,
        }
        let rows = vec![
            Row {
                zeta: 1,
                alpha: Some("a, \"b\"".into()),
                state_ms: [("5".to_string(), 10)].into(),
                tags: vec!["x".into(), "y".into()],
            },
            Row {
                zeta: 2,
                alpha: None,
                state_ms: [("0".to_string(), 3)].into(),
                tags: vec![],
            },
        ];
        let mut out = Vec::new();
        write_all(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "zeta,alpha,stateMs.5,tags,stateMs.0\n1,\"a, \"\"b\"\"\",10,x;y,\n2,,,,3\n"
        );
        let mut out = Vec::new();
        let mut csv = CsvRows::new(&mut out);
        csv.row(&json!({"b": 1, "a": [1, 2]})).unwrap();
        csv.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a,b\n1;2,1\n");
    }
}
