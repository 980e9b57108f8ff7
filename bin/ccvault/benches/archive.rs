//! Archive benchmark (issue 2 targets), run against the built binary:
//!
//!   CCVAULT_BENCH_EVENTS=1000000 cargo bench -p ccvault --bench archive
//!
//! Steps, each timed as whole CLI processes (what a user waits for):
//! 1. generate N events with the simulator (default quirks off), each padded to
//!    ~800 bytes with an extra attribute, as one NDJSON file;
//! 2. baseline: copy the file into the archive's file system and fsync it (the
//!    disk's sequential write speed, measured in the same run);
//! 3. `import FILE` (durable at the end, `--fsync batch`): events/s, peak RSS;
//! 4. `stats`: archive bytes (log + index) / raw payload bytes;
//! 5. `reindex`, twice (log not cached, then cached): records/s;
//! 6. `show GUID --raw` for 21 GUIDs spread over the stream: median ms a process.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const TARGET_LINE: usize = 800;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ccvault")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(args: &[&str], data: &Path) -> (f64, String) {
    let started = Instant::now();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run ccvault");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ccvault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pads a bare event line to about TARGET_LINE bytes with a `benchPad` field.
fn pad(line: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let room = TARGET_LINE.saturating_sub(line.len() + 14);
    if line.starts_with(b"{\"Interaction\":{") && room > 0 && line.ends_with(b"}}") {
        out.extend_from_slice(&line[..line.len() - 2]);
        out.extend_from_slice(b",\"benchPad\":\"");
        out.extend(std::iter::repeat_n(b'x', room));
        out.extend_from_slice(b"\"}}");
    } else {
        out.extend_from_slice(line);
    }
}

/// Streams simulator output to the input file, padding each line.
struct Padder<W: Write> {
    out: W,
    line: Vec<u8>,
    padded: Vec<u8>,
    payload_bytes: u64,
    lines: u64,
    guid_every: u64,
    guids: Vec<String>,
}

impl<W: Write> Write for Padder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            pad(&self.line, &mut self.padded);
            self.payload_bytes += self.padded.len() as u64;
            self.lines += 1;
            self.out.write_all(&self.padded)?;
            self.out.write_all(b"\n")?;
            if self.lines.is_multiple_of(self.guid_every) {
                if let Ok(keys) = ccvault_event::decode_message(&self.padded).outcome {
                    self.guids.extend(keys.interaction_guid);
                }
            }
            self.line.clear();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn main() {
    let n: u64 = std::env::var("CCVAULT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    // CCVAULT_BENCH_INPUT=PATH keeps the generated stream there (for profiling).
    let input = std::env::var_os("CCVAULT_BENCH_INPUT").map_or_else(
        || tmp.path().join("events.ndjson"),
        std::path::PathBuf::from,
    );
    let data = tmp.path().join("archive");

    // 1. generate
    let started = Instant::now();
    let cfg = ccvault_sim::SimConfig {
        events: Some(n),
        agents: 200,
        quirks: ccvault_sim::Quirks::none(),
        ..Default::default()
    };
    let file = BufWriter::new(std::fs::File::create(&input).expect("create input"));
    let mut padder = Padder {
        out: file,
        line: Vec::new(),
        padded: Vec::new(),
        payload_bytes: 0,
        lines: 0,
        guid_every: (n / 21).max(1),
        guids: Vec::new(),
    };
    ccvault_sim::simulate(&cfg, &mut padder).expect("simulate");
    padder.out.flush().expect("flush");
    let Padder {
        payload_bytes,
        lines,
        guids,
        ..
    } = padder;
    println!(
        "generated {lines} lines, {:.0} bytes/line, in {:.1}s",
        payload_bytes as f64 / lines as f64,
        started.elapsed().as_secs_f64()
    );

    // 2. baseline: sequential copy + fsync
    let copy = tmp.path().join("copy.ndjson");
    let started = Instant::now();
    std::fs::copy(&input, &copy).expect("copy");
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .expect("sync");
    let copy_secs = started.elapsed().as_secs_f64();
    std::fs::remove_file(&copy).expect("rm copy");

    // 3. import
    let input_s = input.to_str().expect("utf-8 path");
    let (import_secs, summary) = run(&["--format", "json", "import", input_s], &data);
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("import json");
    let import_rss_mib = summary["peakRssKiB"].as_f64().unwrap_or(f64::NAN) / 1024.0;

    // 4. size
    let (_, stats) = run(&["--format", "json", "stats"], &data);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats json");
    let bytes = stats["bytes"].as_u64().unwrap_or(0);

    // 5. reindex, twice: the first reads a log that the import wrote around
    // the page cache (O_DIRECT), the second finds it cached.
    let reindex_secs: Vec<f64> = (0..2).map(|_| run(&["reindex"], &data).0).collect();

    // 6. show
    let mut show_ms = Vec::new();
    for g in &guids {
        let (secs, out) = run(&["show", g, "--raw"], &data);
        assert!(!out.is_empty());
        show_ms.push(secs * 1000.0);
    }

    let mb = payload_bytes as f64 / 1e6;
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "baseline copy+fsync      {:>8.2}s  {:>8.0} MB/s",
        copy_secs,
        mb / copy_secs
    );
    println!(
        "import (durable)         {:>8.2}s  {:>8.0} events/s  {:>6.0} MB/s  ({:.2}x baseline time)",
        import_secs,
        lines as f64 / import_secs,
        mb / import_secs,
        import_secs / copy_secs
    );
    println!("import peak RSS          {import_rss_mib:>8.0} MiB");
    println!(
        "archive size             {:>8.0} MB  = {:.3}x raw payload ({:.0} MB)",
        bytes as f64 / 1e6,
        bytes as f64 / payload_bytes as f64,
        mb
    );
    println!(
        "reindex (cold, warm)     {:>8.2}s  {:>8.0} records/s  |  {:.2}s  {:.0} records/s",
        reindex_secs[0],
        lines as f64 / reindex_secs[0],
        reindex_secs[1],
        lines as f64 / reindex_secs[1]
    );
    println!(
        "show GUID --raw          median {:.1} ms over {} processes (min {:.1}, max {:.1})",
        median(show_ms.clone()),
        show_ms.len(),
        show_ms.iter().cloned().fold(f64::MAX, f64::min),
        show_ms.iter().cloned().fold(0.0, f64::max)
    );
}
