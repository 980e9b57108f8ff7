//! How long redb alone takes to write the rows of an archive's
//! `projections.redb`: every row of its tables read into memory first, then
//! inserted in key order into a new file in one write transaction and
//! committed, as a rebuild's writer would with nothing else to do (no log
//! read, no JSON, no projecting). The floor of a rebuild that keeps its
//! projections in these tables (docs/BENCHMARKS.md, "The redb floor of a
//! rebuild").
//!
//! Run: `cargo run --release --manifest-path scripts/redb-floor/Cargo.toml
//! -- ARCHIVE/projections.redb /tmp/copy.redb [ROUNDS]`
//!
//! With `chunks` as a fourth argument, the same rows are written instead as
//! a rebuild that keeps its projections as columns would: each table's rows
//! in key order, packed (length-prefixed where variable) into values of
//! [`CHUNK_ROWS`] rows, keyed by the chunk's number: what writing the same
//! bytes as few large values costs ("Columnar chunks" in the same
//! document).
//!
//! The table definitions are those of
//! `crates/projections/src/materialize/schema.rs` at projection version 13
//! (2026-12-06); a table of another type fails to open, naming it.

use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const BY_OFFERED: TableDefinition<(i64, &[u8]), &[u8]> =
    TableDefinition::new("interactions_by_offered");
const OFFERED: TableDefinition<(u32, i64), u32> = TableDefinition::new("interaction_offered");
const CHILDREN: TableDefinition<(&str, &str), ()> = TableDefinition::new("children");
const REPORT_CHUNKS: TableDefinition<i64, &[u8]> = TableDefinition::new("report_chunks");
const AGENT_STATUS: TableDefinition<(&str, i64, u64), (u8, &[u8])> =
    TableDefinition::new("agent_status");
const TENANT_LEGS: TableDefinition<(u32, i64), u32> = TableDefinition::new("tenant_legs");
const TENANT_GUIDS: TableDefinition<(u32, u64), ()> = TableDefinition::new("tenant_guids");

/// One value of the chunked layout: the rows of one table packed in key order.
const CHUNKS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("chunks");
/// Rows a chunk holds.
const CHUNK_ROWS: usize = 4096;

type Failure = Box<dyn std::error::Error>;

/// A row keyed by time and GUID with a value of bytes, owned.
type TimedRow = ((i64, Vec<u8>), Vec<u8>);
/// An `agent_status` row, owned.
type StatusRow = ((String, i64, u64), (u8, Vec<u8>));

/// Every row of the tables above, owned.
#[derive(Default)]
struct Rows {
    by_offered: Vec<TimedRow>,
    offered: Vec<((u32, i64), u32)>,
    children: Vec<(String, String)>,
    chunks: Vec<(i64, Vec<u8>)>,
    status: Vec<StatusRow>,
    tenant_legs: Vec<((u32, i64), u32)>,
    tenant_guids: Vec<(u32, u64)>,
}

fn read(path: &str) -> Result<Rows, Failure> {
    let db = Database::open(path)?;
    let r = db.begin_read()?;
    let mut rows = Rows::default();
    for e in r.open_table(BY_OFFERED)?.iter()? {
        let (k, v) = e?;
        let (at, guid) = k.value();
        rows.by_offered
            .push(((at, guid.to_vec()), v.value().to_vec()));
    }
    for e in r.open_table(OFFERED)?.iter()? {
        let (k, v) = e?;
        rows.offered.push((k.value(), v.value()));
    }
    for e in r.open_table(CHILDREN)?.iter()? {
        let (k, _) = e?;
        let (a, b) = k.value();
        rows.children.push((a.to_owned(), b.to_owned()));
    }
    for e in r.open_table(REPORT_CHUNKS)?.iter()? {
        let (k, v) = e?;
        rows.chunks.push((k.value(), v.value().to_vec()));
    }
    for e in r.open_table(AGENT_STATUS)?.iter()? {
        let (k, v) = e?;
        let ((agent, at, n), (state, rest)) = (k.value(), v.value());
        rows.status
            .push(((agent.to_owned(), at, n), (state, rest.to_vec())));
    }
    for e in r.open_table(TENANT_LEGS)?.iter()? {
        let (k, v) = e?;
        rows.tenant_legs.push((k.value(), v.value()));
    }
    for e in r.open_table(TENANT_GUIDS)?.iter()? {
        rows.tenant_guids.push(e?.0.value());
    }
    Ok(rows)
}

/// Each step of a write and its time.
type Times = Vec<(&'static str, Duration)>;

/// The times of a write's steps, and what records the time since the last.
fn laps() -> (Times, impl FnMut(&'static str, &mut Times)) {
    let mut lap = Instant::now();
    let mark = move |name: &'static str, times: &mut Times| {
        times.push((name, lap.elapsed()));
        lap = Instant::now();
    };
    (Vec::new(), mark)
}

/// A new database at `path`, whatever was there.
fn fresh(path: &str) -> Result<Database, Failure> {
    let _ = std::fs::remove_file(path);
    Ok(Database::create(path)?)
}

/// Writes `rows` into a new `path`; the time of each table's inserts, in
/// the order above, and of the commit.
fn write(rows: &Rows, path: &str) -> Result<Times, Failure> {
    let (mut times, mut mark) = laps();
    let db = fresh(path)?;
    let w = db.begin_write()?;
    {
        let mut t = w.open_table(BY_OFFERED)?;
        for ((at, guid), v) in &rows.by_offered {
            t.insert((*at, guid.as_slice()), v.as_slice())?;
        }
        mark("interactions_by_offered", &mut times);
        let mut t = w.open_table(OFFERED)?;
        for (k, v) in &rows.offered {
            t.insert(*k, *v)?;
        }
        mark("interaction_offered", &mut times);
        let mut t = w.open_table(CHILDREN)?;
        for (a, b) in &rows.children {
            t.insert((a.as_str(), b.as_str()), ())?;
        }
        let mut t = w.open_table(REPORT_CHUNKS)?;
        for (k, v) in &rows.chunks {
            t.insert(*k, v.as_slice())?;
        }
        mark("children, report_chunks", &mut times);
        let mut t = w.open_table(AGENT_STATUS)?;
        for ((agent, at, n), (state, rest)) in &rows.status {
            t.insert((agent.as_str(), *at, *n), (*state, rest.as_slice()))?;
        }
        mark("agent_status", &mut times);
        let mut t = w.open_table(TENANT_LEGS)?;
        for (k, v) in &rows.tenant_legs {
            t.insert(*k, *v)?;
        }
        mark("tenant_legs", &mut times);
        let mut t = w.open_table(TENANT_GUIDS)?;
        for k in &rows.tenant_guids {
            t.insert(*k, ())?;
        }
        mark("tenant_guids", &mut times);
    }
    w.commit()?;
    mark("commit", &mut times);
    Ok(times)
}

/// Appends `bytes` with its length in front (a LEB128 varint).
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Writes each table's rows packed into [`CHUNK_ROWS`]-row values of one
/// table, encoding included in the time: as [`write`], one transaction.
fn write_chunked(rows: &Rows, path: &str) -> Result<Times, Failure> {
    fn chunked<T>(
        t: &mut redb::Table<(&str, u32), &[u8]>,
        name: &str,
        rows: &[T],
        put: impl Fn(&mut Vec<u8>, &T),
    ) -> Result<(), Failure> {
        let mut buf = Vec::new();
        for (n, chunk) in rows.chunks(CHUNK_ROWS).enumerate() {
            buf.clear();
            for row in chunk {
                put(&mut buf, row);
            }
            t.insert((name, n as u32), buf.as_slice())?;
        }
        Ok(())
    }
    let (mut times, mut mark) = laps();
    let db = fresh(path)?;
    let w = db.begin_write()?;
    {
        let mut t = w.open_table(CHUNKS)?;
        chunked(
            &mut t,
            "by_offered",
            &rows.by_offered,
            |b, ((at, guid), v)| {
                b.extend_from_slice(&at.to_le_bytes());
                put_bytes(b, guid);
                put_bytes(b, v);
            },
        )?;
        mark("interactions_by_offered", &mut times);
        chunked(&mut t, "offered", &rows.offered, |b, ((g, at), v)| {
            b.extend_from_slice(&g.to_le_bytes());
            b.extend_from_slice(&at.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        })?;
        mark("interaction_offered", &mut times);
        chunked(&mut t, "children", &rows.children, |b, (p, c)| {
            put_bytes(b, p.as_bytes());
            put_bytes(b, c.as_bytes());
        })?;
        let mut r = w.open_table(REPORT_CHUNKS)?;
        for (k, v) in &rows.chunks {
            r.insert(*k, v.as_slice())?;
        }
        mark("children, report_chunks", &mut times);
        chunked(
            &mut t,
            "agent_status",
            &rows.status,
            |b, ((agent, at, n), (state, rest))| {
                put_bytes(b, agent.as_bytes());
                b.extend_from_slice(&at.to_le_bytes());
                put_varint(b, *n);
                b.push(*state);
                put_bytes(b, rest);
            },
        )?;
        mark("agent_status", &mut times);
        chunked(
            &mut t,
            "tenant_legs",
            &rows.tenant_legs,
            |b, ((h, at), v)| {
                b.extend_from_slice(&h.to_le_bytes());
                b.extend_from_slice(&at.to_le_bytes());
                b.extend_from_slice(&v.to_le_bytes());
            },
        )?;
        mark("tenant_legs", &mut times);
        chunked(&mut t, "tenant_guids", &rows.tenant_guids, |b, (h, g)| {
            b.extend_from_slice(&h.to_le_bytes());
            b.extend_from_slice(&g.to_le_bytes());
        })?;
        mark("tenant_guids", &mut times);
    }
    w.commit()?;
    mark("commit", &mut times);
    Ok(times)
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        return Err("usage: redb-floor PROJECTIONS.redb COPY.redb [ROUNDS [chunks]]".into());
    };
    let rounds: usize = args.get(3).map_or(Ok(5), |r| r.parse())?;
    let chunks = match args.get(4).map(String::as_str) {
        None => false,
        Some("chunks") => true,
        Some(other) => return Err(format!("unknown layout {other:?}: only `chunks`").into()),
    };
    let rows = read(src)?;
    println!(
        "rows: interactions_by_offered {}, interaction_offered {}, children {}, report_chunks {}, agent_status {}, tenant_legs {}, tenant_guids {}",
        rows.by_offered.len(),
        rows.offered.len(),
        rows.children.len(),
        rows.chunks.len(),
        rows.status.len(),
        rows.tenant_legs.len(),
        rows.tenant_guids.len()
    );
    let mut totals = Vec::new();
    for round in 1..=rounds {
        let times = if chunks {
            write_chunked(&rows, dst)?
        } else {
            write(&rows, dst)?
        };
        let total: Duration = times.iter().map(|(_, d)| *d).sum();
        let parts: Vec<String> = times
            .iter()
            .map(|(name, d)| format!("{name} {:.3}", d.as_secs_f64()))
            .collect();
        println!(
            "round {round}: {:.3} s ({}); file {} bytes",
            total.as_secs_f64(),
            parts.join(", "),
            std::fs::metadata(dst)?.len()
        );
        totals.push(total);
    }
    totals.sort();
    println!(
        "median of {rounds}: {:.3} s",
        totals[totals.len() / 2].as_secs_f64()
    );
    Ok(())
}
