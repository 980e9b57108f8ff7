//! `cargo run -p ccvault-sim --example simdump -- SEED DAYS AGENTS [none]`: NDJSON on
//! stdout, truth NDJSON on stderr.
use ccvault_sim::{simulate_with_truth, Quirks, SimConfig};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let mut cfg = SimConfig {
        seed: num(1, 1),
        days: num(2, 1) as u32,
        agents: num(3, 40) as u32,
        ..SimConfig::default()
    };
    if args.get(4).is_some_and(|s| s == "none") {
        cfg.quirks = Quirks::none();
    }
    let stdout = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut truths = Vec::new();
    let s = simulate_with_truth(&cfg, stdout, &mut |t| truths.push(t))?;
    use std::io::Write;
    for t in truths {
        serde_json::to_writer(&mut err, &t)?;
        writeln!(err)?;
    }
    writeln!(err, "{}", serde_json::to_string(&s)?)?;
    Ok(())
}
