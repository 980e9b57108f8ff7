//! `ccvault simulate`: a synthetic 8x8 stream (NDJSON) from `ccvault-sim`.
//!
//! The simulator buffers its own output, so stdout and files are written in
//! large blocks; this module only turns flags into a [`SimConfig`] and reports.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ccvault_sim::{simulate_with_truth, Quirks, SimConfig, SimSummary, Truth};

use crate::args::parse_duration_ms;
use crate::output::{self, Stream};
use crate::{status, Cli};

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Create exactly this many interactions (legs), then let them finish (overrides --days).
    #[arg(long)]
    pub interactions: Option<u64>,
    /// Stop after this many output lines (overrides --days).
    #[arg(long)]
    pub events: Option<u64>,
    /// Days of contact-center traffic to simulate, from 2025-11-24T00:00Z.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Agents on shift rotations, at most 1,000,000 (each is held in memory, ~0.6 KB).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub agents: u32,
    /// Same seed, same flags: byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the stream to FILE instead of stdout (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A clean stream: no mixed types, empty msgInfo, missing timestamps, eventTS-only or
    /// untimed events, resourceType-only legs, unknown types, reordering, duplicates,
    /// envelopes or malformed lines (the rate flags below still apply). The traffic itself
    /// (transfers, consultations, IVR hang-ups, outbound, chat and email) stays.
    #[arg(long)]
    pub no_quirks: bool,
    /// Share of lines emitted twice (0..1).
    #[arg(long, value_name = "R")]
    pub duplicate_rate: Option<f64>,
    /// Share of events wrapped in a Pulsar WebSocket envelope (0..1).
    #[arg(long, value_name = "R")]
    pub envelope_rate: Option<f64>,
    /// Garbage lines per event line (0..1), which import must quarantine.
    #[arg(long, value_name = "R")]
    pub malformed_rate: Option<f64>,
    /// Lines are emitted up to this much event time out of order (250ms, 2s); 0s = in order.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub reorder_window: Option<i64>,
    /// The former spelling of --reorder-window, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "reorder_window")]
    pub reorder_window_ms: Option<i64>,
    /// Also write the simulator's ground truth (one summary per interaction as docs/METRICS.md §3 defines it, NDJSON) to FILE: of every interaction all of whose events were written; those that `--events` cut off part-way have no truth.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Tenant suffix of every interactionGUID.
    #[arg(long, default_value = "northwind01")]
    pub tenant: String,
    /// The output is always the NDJSON event stream; `--format json` is accepted for uniformity.
    #[arg(long, value_enum)]
    pub format: Option<Stream>,
}

/// A value of a flag the simulator refuses: a bad command line (exit 2).
fn usage(why: String) -> anyhow::Error {
    crate::output::UsageError(why).into()
}

fn rate(name: &str, v: Option<f64>, default: f64) -> Result<f64> {
    match v {
        None => Ok(default),
        // `contains` is false for NaN, so NaN is rejected too.
        Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Some(r) => Err(usage(format!("--{name} must be between 0 and 1, got {r}"))),
    }
}

/// The simulator configuration the flags describe.
pub fn config(args: &SimulateArgs) -> Result<SimConfig> {
    let base = if args.no_quirks {
        Quirks::none()
    } else {
        Quirks::default()
    };
    if args.tenant.is_empty() || args.tenant.contains('-') {
        // The tenant is read back as the text after the GUID's last `-`.
        return Err(usage(
            "--tenant must be non-empty and contain no '-'".into(),
        ));
    }
    let reorder_window_ms = match args.reorder_window.or(args.reorder_window_ms) {
        None => base.reorder_window_ms,
        Some(ms) if ms >= 0 => ms,
        Some(ms) => {
            return Err(usage(format!(
                "--reorder-window must not be negative, got {ms} ms"
            )))
        }
    };
    let quirks = Quirks {
        duplicate_rate: rate("duplicate-rate", args.duplicate_rate, base.duplicate_rate)?,
        envelope_rate: rate("envelope-rate", args.envelope_rate, base.envelope_rate)?,
        malformed_rate: rate("malformed-rate", args.malformed_rate, base.malformed_rate)?,
        reorder_window_ms,
        ..base
    };
    if args.days == 0 && args.events.is_none() && args.interactions.is_none() {
        return Err(usage("--days must be at least 1".into()));
    }
    Ok(SimConfig {
        seed: args.seed,
        events: args.events,
        interactions: args.interactions,
        days: args.days,
        agents: args.agents,
        tenant: args.tenant.clone(),
        quirks,
        ..SimConfig::default()
    })
}

pub fn run(cli: &Cli, args: &SimulateArgs) -> Result<ExitCode> {
    cli.format_of(args.format, "simulate")?;
    let cfg = config(args)?;

    // `-` is stdout everywhere else (the events' default): a file named
    // `-` would surprise.
    if args.truth.as_deref().is_some_and(output::is_stdout) {
        return Err(output::UsageError(
            "--truth takes a file name, not `-`: the truth is written beside the events, never to stdout".into(),
        )
        .into());
    }
    // Both into one file interleaved them, and the stream no longer
    // imported as generated.
    if let (Some(truth), Some(out)) = (&args.truth, output::file_unless_stdout(args.out.as_ref())) {
        if same_file(truth, out) {
            return Err(output::UsageError(format!(
                "--truth and --out name the same file ({}): give the truth a file of its own",
                truth.display()
            ))
            .into());
        }
    }
    let mut truth_out = match &args.truth {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(path)
                .with_context(|| format!("cannot create truth file {}", path.display()))?,
        )),
        None => None,
    };
    // The callback cannot return an error: keep the first one and stop writing.
    let mut truth_err: Option<io::Error> = None;
    let mut on_truth = |t: Truth| {
        if truth_err.is_some() {
            return;
        }
        if let Some(w) = truth_out.as_mut() {
            let res = serde_json::to_writer(&mut *w, &t)
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n"));
            if let Err(e) = res {
                truth_err = Some(e);
            }
        }
    };

    let result: io::Result<SimSummary> = match output::file_unless_stdout(args.out.as_ref()) {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            simulate_with_truth(&cfg, file, &mut on_truth)
                .with_context(|| format!("writing {}", path.display()))
                .map_err(|e| io::Error::other(format!("{e:#}")))
        }
        None => simulate_with_truth(&cfg, crate::output::stdout(), &mut on_truth),
    };
    let summary = match result {
        Ok(s) => s,
        // `simulate | head` closes the pipe early: that is the reader's choice, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("simulate"),
    };
    if let Some(e) = truth_err {
        return Err(e).context("writing the truth file");
    }
    if let (Some(mut w), Some(path)) = (truth_out, &args.truth) {
        w.flush()
            .with_context(|| format!("writing truth file {}", path.display()))?;
    }
    status!(
        "simulated {} lines: {} events, {} interactions complete (every event written), {} duplicates, {} envelopes, {} malformed",
        summary.lines,
        summary.events,
        summary.interactions,
        summary.duplicates,
        summary.envelopes,
        summary.malformed
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether two paths name one file: the same absolute path, or (both
/// existing) the same inode.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b
        || matches!((std::path::absolute(a), std::path::absolute(b)), (Ok(x), Ok(y)) if x == y)
    {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}
