//! Compresses every sealed segment of a log (`.seg` → `.segz`) and prints
//! the sizes and the time taken: the measurement behind the level and block
//! size chosen in docs/FORMAT.md §1.7.
//!
//! `cargo run --release -p ccvault-log --example compact -- LOG_DIR [LEVEL] [BLOCK_BYTES]`

use std::path::PathBuf;
use std::time::Instant;

use ccvault_log::{Compacted, Compression, Log, LogOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: compact LOG_DIR [LEVEL] [BLOCK_BYTES]")?,
    );
    let d = Compression::default();
    let level = args.next().map_or(Ok(d.level), |a| a.parse())?;
    let block_bytes = args.next().map_or(Ok(d.block_bytes), |a| a.parse())?;
    // No background compressor: it would take some of the segments at the
    // default level while this measures another.
    let options = LogOptions {
        compression: None,
        ..LogOptions::default()
    };
    let (mut log, _) = Log::open(&dir, options, None)?;
    let started = Instant::now();
    let done = log.compact_sealed(Compression { level, block_bytes })?;
    let secs = started.elapsed().as_secs_f64();
    let (mut seg, mut segz, mut n) = (0u64, 0u64, 0);
    for (_, c) in &done {
        if let Compacted::Done {
            seg_bytes,
            segz_bytes,
        } = c
        {
            seg += seg_bytes;
            segz += segz_bytes;
            n += 1;
        }
    }
    println!(
        "level {level} block {block_bytes}: {n} segments, {seg} -> {segz} bytes ({:.3}), {secs:.2} s ({:.0} MB/s of segment)",
        segz as f64 / seg.max(1) as f64,
        seg as f64 / 1e6 / secs
    );
    Ok(())
}
