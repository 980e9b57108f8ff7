//! Prints the file length and redb's storage statistics of each table of a
//! `projections.redb` (for sizing work, docs/BENCHMARKS.md):
//! `cargo run --release -p ccvault-projections --example table_stats -- DIR/projections.redb [LEGS]`
//! With `LEGS`, sizes are also given per leg; with `COMPACT` set in the
//! environment, the file is then compacted (redb's `Database::compact`) and
//! the time that took printed.
use redb::{ReadableDatabase, ReadableTableMetadata};

/// redb's page size (its default; `TableStats` does not say it).
const PAGE: u64 = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: table_stats PROJECTIONS.redb [LEGS]")?;
    let legs: Option<f64> = args.next().map(|s| s.parse()).transpose()?;
    let file = std::fs::metadata(&path)?.len();
    let db = redb::Database::open(&path)?;
    let txn = db.begin_read()?;
    let per = |b: u64| legs.map_or(String::new(), |n| format!("{:>8.1}", b as f64 / n));
    println!(
        "{:<26} {:>10} {:>12} {:>8} {:>12} {:>8} {:>6}",
        "table", "rows", "pages B", "/leg", "stored B", "/leg", "fill"
    );
    let mut total = 0;
    for handle in txn.list_tables()? {
        let t = txn.open_untyped_table(handle)?;
        let s = t.stats()?;
        let pages = (s.leaf_pages() + s.branch_pages()) * PAGE;
        total += pages;
        let fill = if pages == 0 {
            0.0
        } else {
            (s.stored_bytes() + s.metadata_bytes()) as f64 / pages as f64
        };
        println!(
            "{:<26} {:>10} {:>12} {:>8} {:>12} {:>8} {:>5.0}%",
            redb::TableHandle::name(&t),
            t.len()?,
            pages,
            per(pages),
            s.stored_bytes(),
            per(s.stored_bytes()),
            fill * 100.0
        );
    }
    println!(
        "{:<26} {:>10} {:>12} {:>8}",
        "all tables",
        "",
        total,
        per(total)
    );
    println!("{:<26} {:>10} {:>12} {:>8}", "file", "", file, per(file));
    drop(txn);
    let w = db.begin_write()?;
    let s = w.stats()?;
    println!(
        "database: allocated pages {} ({} B), leaf {} branch {}, stored {} B, metadata {} B, fragmented {} B",
        s.allocated_pages(),
        s.allocated_pages() * PAGE,
        s.leaf_pages(),
        s.branch_pages(),
        s.stored_bytes(),
        s.metadata_bytes(),
        s.fragmented_bytes()
    );
    w.abort()?;
    if std::env::var_os("COMPACT").is_some() {
        drop(db);
        let mut db = redb::Database::open(&path)?;
        let t = std::time::Instant::now();
        while db.compact()? {}
        println!(
            "compacted in {:.3} s: file {} B",
            t.elapsed().as_secs_f64(),
            std::fs::metadata(&path)?.len()
        );
    }
    Ok(())
}
