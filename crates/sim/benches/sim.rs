//! Generation rate. `cargo bench -p ccvault-sim --bench sim [-- LINES]`
//! (default 1,000,000 lines; all quirks on, output to a sink).
use std::time::Instant;

use ccvault_sim::{simulate, Quirks, SimConfig};

fn main() -> std::io::Result<()> {
    let lines: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    for (name, quirks) in [
        ("all quirks", Quirks::default()),
        ("no quirks", Quirks::none()),
    ] {
        let cfg = SimConfig {
            seed: 42,
            events: Some(lines),
            quirks,
            ..SimConfig::default()
        };
        let mut sink = CountingSink(0);
        let t0 = Instant::now();
        let s = simulate(&cfg, &mut sink)?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "sim/{name}: {} lines, {} interactions, {:.1} MiB in {:.2} s = {:.0} lines/s, {:.1} MiB/s",
            s.lines,
            s.interactions,
            sink.0 as f64 / (1 << 20) as f64,
            secs,
            s.lines as f64 / secs,
            sink.0 as f64 / (1 << 20) as f64 / secs
        );
    }
    Ok(())
}

struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
