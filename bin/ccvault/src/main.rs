//! `ccvault`: the command line. Thin: parsing, output, exit codes. The work
//! is done by the store, projections, ingest and simulator crates.

mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A rebuild hands millions of small records from the log reader to the
/// workers; glibc's malloc serializes those cross-thread frees on an arena lock
/// (a profile showed ~6 % of all CPU in its futex waits). With mimalloc the 5M
/// rebuild is 1.29× faster (`docs/BENCHMARKS.md`). Libraries leave the choice of
/// allocator to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "ccvault",
    version,
    about = "A durable archive and metrics engine for the 8x8 contact-center event stream"
)]
pub struct Cli {
    /// The archive directory.
    #[arg(
        long,
        global = true,
        env = "CCVAULT_DATA",
        default_value = "./ccvault-data"
    )]
    pub data_dir: PathBuf,
    /// Output format: readable text, or stable machine output (NDJSON for lists).
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Time zone for printed times (IANA name, e.g. Europe/London); UTC by default.
    #[arg(long, global = true)]
    pub tz: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    Always,
    Batch,
    Never,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WriteArgs {
    /// When appended records are made durable: every record, every batch (group commit), or never (left to the OS).
    #[arg(long, value_enum, default_value_t = Fsync::Batch)]
    pub fsync: Fsync,
    /// Segment size at which the log rolls to a new file.
    #[arg(long, default_value_t = 64 << 20)]
    pub segment_bytes: u64,
    /// Messages larger than this are rejected with an error naming them.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_record_bytes: usize,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a day of a contact center, archive it into a fresh directory, print the report and one interaction: the quick start.
    Demo(cmd::demo::DemoArgs),
    /// Archive NDJSON files or stdin (`-`): bare events or Pulsar envelopes, gzip or plain.
    Import {
        /// Files to import; `-` or nothing reads stdin.
        files: Vec<PathBuf>,
        #[command(flatten)]
        write: WriteArgs,
        /// Print `durable SOURCE LINE` on stdout each time input up to LINE is durable.
        #[arg(long, hide = true)]
        print_acks: bool,
    },
    /// One interaction's timeline: every event with its time, state, agent and the gap since the previous one, then the derived durations and outcome.
    Show {
        guid: String,
        /// Print the archived payloads byte-exact, one per line, in canonical order.
        #[arg(long)]
        raw: bool,
        /// Also write a self-contained HTML page with a swim-lane timeline and the raw events.
        #[arg(long, value_name = "FILE", conflicts_with = "raw")]
        html: Option<PathBuf>,
    },
    /// Records, bytes, duplicates, quarantined, segments, time range.
    Stats,
    /// Check every CRC of the log and the index against the log; exit 0 only when clean.
    Verify,
    /// Rebuild the index from the log.
    Reindex,
    /// List quarantined messages with the reason and where they came from.
    Quarantine,
    /// Live archive from an MQTT broker or a Pulsar WebSocket reader until SIGINT/SIGTERM; acknowledges only what is durable.
    Ingest(cmd::ingest::IngestArgs),
    /// Write a realistic synthetic 8x8 stream (NDJSON, deterministic by --seed) with the quirks of real feeds.
    Simulate(cmd::sim::SimulateArgs),
    /// One summary per interaction (METRICS §3), sorted by offeredAt then GUID.
    Interactions(cmd::projections::InteractionsArgs),
    /// Aggregate metrics per interval and queue/agent (METRICS §4), by the interval of offeredAt.
    Report(cmd::projections::ReportArgs),
    /// Time in each state per agent (METRICS §5).
    Agents(cmd::projections::AgentsArgs),
    /// Recompute all projections from the log, with progress and throughput.
    #[command(alias = "replay")]
    Rebuild,
    /// Raw events byte-exact as NDJSON, or interaction summaries as NDJSON or CSV (`--format ndjson|csv`).
    Export(cmd::projections::ExportArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CCVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse_from(cmd::projections::rewrite_export_format(
        std::env::args_os().collect(),
    ));
    match cmd::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ccvault: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
