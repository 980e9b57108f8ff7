//! `ccvault`: the command line. Thin: parsing, output, exit codes. The work
//! is done by the store, projections, ingest and simulator crates.
//!
//! Exit codes (docs/OPERATIONS.md): 0 success, also when the reader of our
//! output closed the pipe; 1 error; 2 bad command line (clap's errors and
//! [`output::UsageError`]); 3 as the command documents (import with rejected
//! lines, ingest refused by the peer).

mod args;
mod cmd;
mod interrupt;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::output::{ColorChoice, HumanJson};

/// A rebuild hands millions of small records from the log reader to the
/// workers; glibc's malloc serializes those cross-thread frees on an arena lock
/// (a profile showed ~6 % of all CPU in its futex waits). With mimalloc the 5M
/// rebuild is 1.29× faster (`docs/BENCHMARKS.md`). Libraries leave the choice of
/// allocator to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes the allocator keep freed memory for a second before returning it to
/// the OS (its default: 10 ms) while the process is small. `import` frees
/// and allocates its batches, index pages and decoded events at a steady
/// rate, and with the default the same memory went back to the OS and was
/// faulted in (and zeroed) again: a 1M import took 0.87x the CPU with 1 s
/// (0.94x with 100 ms), for 25-28 MiB more peak RSS (docs/BENCHMARKS.md,
/// "Import at 1M"). Past a few million events (redb's cache full) the
/// held memory no longer paid: a 20M import took the same CPU with either
/// delay but peaked at 257 MiB with 1 s against 210 MiB with 10 ms, over
/// import's 256 MB bound (docs/OPERATIONS.md). So the caller reports the
/// process's size with [`FreedMemory::check`], and past
/// [`FreedMemory::HOLD_BELOW_KIB`] the delay goes back to the allocator's own
/// for good (`export` holds it throughout). Only the commands that call
/// it pay that memory.
pub(crate) struct FreedMemory {
    /// The delay to go back to (the allocator's own), while holding.
    held: Option<std::ffi::c_long>,
}

impl FreedMemory {
    /// Resident size past which freed memory is returned at the
    /// allocator's default pace. Held memory comes back only as each
    /// thread next calls the allocator (the index commit thread's when it
    /// next commits), so the peak overshoots the switch by ~10-17 MiB:
    /// with 224 MiB a 50M import peaked at 236-242 MiB there; with 208
    /// MiB at 227.5 MiB, the 1M import's CPU unchanged (it passes the
    /// limit near its end either way; docs/BENCHMARKS.md, "Import's peak
    /// and the commit thread").
    pub(crate) const HOLD_BELOW_KIB: u64 = 208 << 10;

    /// Starts holding freed memory.
    pub(crate) fn hold() -> FreedMemory {
        let default = purge_delay(None);
        purge_delay(Some(1000));
        FreedMemory {
            held: Some(default),
        }
    }

    /// Stops holding freed memory once the process's resident size
    /// (`rss_kib()`, when known) has passed [`Self::HOLD_BELOW_KIB`]; the
    /// size is read only while holding.
    pub(crate) fn check(&mut self, rss_kib: impl FnOnce() -> Option<u64>) {
        if let Some(default) = self.held {
            if rss_kib().is_some_and(|r| r > Self::HOLD_BELOW_KIB) {
                purge_delay(Some(default));
                self.held = None;
            }
        }
    }
}

/// Makes the process's memory come in the kernel's 4 KiB pages, not in
/// transparent huge pages; `main` calls it first, for every command.
/// mimalloc asks for huge pages on its arenas
/// (`madvise(MADV_HUGEPAGE)`, its `allow_thp` option, read when the first
/// arena is reserved, before `main`). On the VMs measured a fresh 2 MiB
/// page cost ~8 ms of the kernel's time unless another process had freed
/// it within a second or two (the VM hands free 2 MiB blocks back to its
/// host, which backs them again at the next touch), against ~2 ms for the
/// same memory in 4 KiB pages, which come from blocks the VM kept: an
/// export's ~75 huge pages were 0.4-0.9 s of system time for a 1.2-1.5 s
/// `events` step, a 1M rebuild's ~100 0.4-0.6 s, and a 1M import run after
/// other work took 1.36 s with them against 1.24 s without (a 10M import's
/// peak 252 MiB against 220, over import's bound); with 4 KiB pages only
/// the bytes used are faulted in. The cost: user time +1-6 % (TLB misses),
/// so the same binary run twice in a row, the second run getting the huge
/// pages the first just freed, is 3-10 % faster with them: a condition
/// users seldom meet (docs/BENCHMARKS.md, issues 12 and 14, "Import in 4
/// KiB pages"). The flag is the
/// process's (`PR_SET_THP_DISABLE`, checked at each page fault), so it
/// also covers memory mapped before the call. Where the kernel refuses it
/// the command runs as before.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes no pointer and
    // only sets a flag of this process; its result is not needed.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// How much lower than the process's own priority an import's reading,
/// parsing and appending threads run (nice values, 0-19 above it).
pub(crate) const IMPORT_NICE: i32 = 5;

/// Lowers this thread's priority by [`IMPORT_NICE`]; the threads it starts
/// from now on inherit it. `import` calls it once the archive is open, so
/// that the threads the open started (the log's compressor and its
/// flusher) keep the process's priority while the threads producing their
/// work yield to them. On 2 cores the compressor, one runnable thread of
/// five, fell behind by about two segments a second, and a 10M import
/// ended with ~1.2 GB still to compress (1.5 s at close); yielding, it
/// keeps up, and the close compresses one or two segments (docs/BENCHMARKS.md,
/// issue 12). Only raises the nice value, which any process may; where the
/// kernel refuses, the import runs as before.
pub(crate) fn yield_to_log_threads() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` takes no argument; `getpriority` and `setpriority`
    // take a thread id and a value, no pointer, and touch only that
    // thread's nice value. On Linux a nice value is a thread's own.
    #[allow(unsafe_code)]
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        // -1 is also a valid priority: errno tells an error apart.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now != -1 || *libc::__errno_location() == 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + IMPORT_NICE).min(19));
        }
    }
}

/// How long (ms) mimalloc keeps freed memory before returning it to the
/// OS: sets it to `set` if given, and returns the value before.
fn purge_delay(set: Option<std::ffi::c_long>) -> std::ffi::c_long {
    /// `mi_option_purge_delay` of mimalloc v2's `mi_option_e` (mimalloc.h);
    /// libmimalloc-sys names no constant for it.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: `mi_option_get` and `mi_option_set` take a valid option (and
    // any value); mimalloc reads the value whenever it purges memory.
    #[allow(unsafe_code)]
    unsafe {
        let before = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
        if let Some(ms) = set {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms);
        }
        before
    }
}

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
    /// Whether `--data-dir` was typed on the command line (not the
    /// default, not `CCVAULT_DATA`): `demo` then archives there.
    #[arg(skip)]
    pub data_dir_typed: bool,
    /// Output format for the command that follows (each command lists the values it takes in its --help; the flag may also follow the command name).
    #[arg(long = "format", value_name = "FORMAT", value_parser = PossibleValuesParser::new(output::ANY_FORMAT))]
    pub format: Option<String>,
    /// Time zone for printed times and for dates without an offset (IANA name, e.g. Europe/London); UTC by default.
    #[arg(long, global = true, value_name = "ZONE", value_parser = args::parse_tz)]
    pub tz: Option<jiff::tz::TimeZone>,
    /// Colour on stderr: auto (only when stderr is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print nothing on stderr but errors (no progress, summaries, notes or warnings).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log detail on stderr: -v info, -vv debug, -vvv trace (CCVAULT_LOG, a tracing filter, overrides).
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command's output format: its own `--format`, else the one given
    /// before the command name.
    pub fn format_of<F: ValueEnum + Clone>(
        &self,
        own: Option<F>,
        command: &str,
    ) -> anyhow::Result<F> {
        output::resolve_format(own, self.format.as_deref(), command)
    }

    /// Whether an output format was given, the command's own or the one
    /// before the command name.
    pub fn format_given<F>(&self, own: &Option<F>) -> bool {
        own.is_some() || self.format.is_some()
    }

    /// `--tz`, or UTC.
    pub fn tz(&self) -> jiff::tz::TimeZone {
        output::time_zone(self.tz.as_ref())
    }
}

/// `import --input-format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormatArg {
    Auto,
    Ndjson,
    JsonStream,
    JsonArray,
}

impl From<InputFormatArg> for ccvault_store::InputFormat {
    fn from(f: InputFormatArg) -> Self {
        match f {
            InputFormatArg::Auto => ccvault_store::InputFormat::Auto,
            InputFormatArg::Ndjson => ccvault_store::InputFormat::Ndjson,
            InputFormatArg::JsonStream => ccvault_store::InputFormat::JsonStream,
            InputFormatArg::JsonArray => ccvault_store::InputFormat::JsonArray,
        }
    }
}

/// `import --direct-read`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectReadArg {
    Auto,
    Always,
    Never,
}

impl From<DirectReadArg> for ccvault_store::DirectRead {
    fn from(d: DirectReadArg) -> Self {
        match d {
            DirectReadArg::Auto => ccvault_store::DirectRead::Auto,
            DirectReadArg::Always => ccvault_store::DirectRead::Always,
            DirectReadArg::Never => ccvault_store::DirectRead::Never,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct WriteArgs {
    /// When appended records are made durable: every record, every batch (group commit), or never (left to the OS) [possible values: always, batch, never].
    #[arg(long, default_value_t = ccvault_store::FsyncPolicy::Batch)]
    pub fsync: ccvault_store::FsyncPolicy,
    /// Segment size at which the log rolls to a new file (bytes, or with a unit: 64MiB).
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = args::parse_segment_size)]
    pub segment_bytes: u64,
    /// Records larger than this are rejected with an error naming them: the event as archived (a Pulsar envelope's decoded payload, not its base64) (bytes, or with a unit: 1MiB).
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = args::parse_record_limit)]
    pub max_record_bytes: usize,
    /// Leave sealed log segments uncompressed (`.seg`). By default each sealed segment is compressed in the background into a `.segz` (docs/FORMAT.md §1.7), and a file `import` finishes compressing them before it exits, while `ingest` leaves the ones not yet compressed when it stops to the next writer; segments already compressed stay so.
    #[arg(long)]
    pub no_compress: bool,
}

/// `--format human|json` of a command that prints one report.
#[derive(clap::Args, Debug, Clone)]
pub struct HumanJsonArg {
    /// Output format: readable text, or JSON.
    #[arg(long, value_enum)]
    pub format: Option<HumanJson>,
}

/// `--from`/`--to` of a command that filters by time.
#[derive(clap::Args, Debug, Clone)]
pub struct TimeRange {
    /// From this instant on (inclusive): RFC 3339, epoch ms, a date (midnight in --tz), a local time, now, or relative (-7d, 2h ago).
    #[arg(long, value_name = "T", value_parser = args::parse_time, allow_hyphen_values = true)]
    pub from: Option<args::TimeArg>,
    /// Before this instant (exclusive); same forms as --from.
    #[arg(long, value_name = "T", value_parser = args::parse_time, allow_hyphen_values = true)]
    pub to: Option<args::TimeArg>,
}

impl TimeRange {
    /// The range in epoch ms, with dates in `--tz` and relative times from now.
    pub fn resolve(&self, cli: &Cli) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        let tz = cli.tz();
        let (from, to) = (
            args::resolve_opt(self.from.as_ref(), &tz)?,
            args::resolve_opt(self.to.as_ref(), &tz)?,
        );
        // An empty answer would say "nothing then", not "you swapped them".
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(output::UsageError(format!(
                    "--from ({}) is after --to ({}): the window is [from, to)",
                    output::format_ms(f, &tz),
                    output::format_ms(t, &tz)
                ))
                .into());
            }
        }
        Ok((from, to))
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a day of a contact center, archive it into a fresh directory, print the report and one interaction: the quick start.
    Demo(cmd::demo::DemoArgs),
    /// Archive NDJSON files or stdin (`-`), or legacy JSON captures: bare events or Pulsar envelopes, gzip or plain.
    Import {
        /// Files to import; `-` or nothing reads stdin.
        files: Vec<PathBuf>,
        /// Shape of the input: one event per line, JSON values back to back (also pretty-printed), JSON arrays, or detected from the start of each file.
        #[arg(long, value_enum, default_value_t = InputFormatArg::Auto)]
        input_format: InputFormatArg,
        /// How input files are read: with O_DIRECT (skipping the page cache) when a file is larger than half the memory available, always, or never. Stdin and pipes are always read as usual.
        #[arg(long, value_enum, default_value_t = DirectReadArg::Auto)]
        direct_read: DirectReadArg,
        #[command(flatten)]
        write: WriteArgs,
        /// Print `durable SOURCE LINE` on stdout each time input up to LINE is durable.
        #[arg(long, hide = true)]
        print_acks: bool,
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// One interaction's timeline: every event with its time, state, agent and the gap since the previous one, then the derived durations and outcome.
    Show {
        /// The interactionGUID of any leg of the contact: the whole contact is shown.
        guid: String,
        /// Print the archived payloads byte-exact, in canonical order, each followed by a newline (one per line, but for a payload archived from a pretty-printed capture, which keeps its own line breaks).
        #[arg(long, conflicts_with = "format")]
        raw: bool,
        /// Also write a self-contained HTML page with a swim-lane timeline and the raw events (`-`: only the page, on stdout).
        #[arg(long, value_name = "FILE", conflicts_with = "raw")]
        html: Option<PathBuf>,
        /// Refuse the interaction unless it belongs to this tenant (and show only this tenant's legs of its contact).
        #[arg(long, value_name = "TENANT", value_parser = cmd::projections::parse_tenant)]
        tenant: Option<String>,
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// Records, bytes, duplicates, quarantined, segments, time range; per tenant with --by-tenant or --tenant.
    Stats {
        /// One line per tenant: its events, legs, contacts and time range (from the projections' tenant index).
        #[arg(long)]
        by_tenant: bool,
        /// Only this tenant's line of --by-tenant.
        #[arg(long, value_name = "TENANT", value_parser = cmd::projections::parse_tenant)]
        tenant: Option<String>,
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// Check every CRC of the log, the index against the log, and the projections against a recompute from the log; exit 0 only when clean.
    Verify {
        /// Check the log and the index only, not the projections (their
        /// recompute takes about as long as `rebuild`, and its memory).
        #[arg(long)]
        no_projections: bool,
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// Rebuild the index from the log (and every sealed segment's facts), then the projections through it.
    Reindex {
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// List quarantined messages with the reason and where they came from (--from/--to: by arrival time).
    Quarantine {
        #[command(flatten)]
        range: TimeRange,
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// Live archive from an MQTT broker or a Pulsar WebSocket reader or consumer until SIGINT/SIGTERM; acknowledges only what is durable.
    Ingest(cmd::ingest::IngestArgs),
    /// Write a realistic synthetic 8x8 stream (NDJSON, deterministic by --seed) with the quirks of real feeds.
    Simulate(cmd::sim::SimulateArgs),
    /// One summary per interaction (docs/METRICS.md §3), sorted by offeredAt then GUID.
    Interactions(cmd::projections::InteractionsArgs),
    /// Aggregate metrics per interval and queue/agent (docs/METRICS.md §4), by the interval of offeredAt.
    Report(cmd::projections::ReportArgs),
    /// Time in each state per agent (docs/METRICS.md §5).
    Agents(cmd::projections::AgentsArgs),
    /// Recompute all projections from the log, with progress and throughput.
    #[command(alias = "replay")]
    Rebuild {
        #[command(flatten)]
        out: HumanJsonArg,
    },
    /// Raw events byte-exact as NDJSON (a payload received over several lines is written on one, its line breaks as spaces), interaction summaries as NDJSON or CSV, or events, legs and agent state spans as Parquet tables (--format parquet --out DIR).
    Export(cmd::export::ExportArgs),
    /// A read-only web application over the archive: live wallboard (pushed over Server-Sent Events), contact dispute view, search, report, JSON API and Prometheus metrics (docs/SERVE.md).
    Serve(cmd::serve::ServeArgs),
    /// What is happening now: per queue the contacts waiting and today's service, agents by state, interactions in progress by stage (the document `serve` pushes).
    Wallboard(cmd::serve::WallboardArgs),
    /// Print a shell completion script: `ccvault completions bash > /etc/bash_completion.d/ccvault`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ccvault man > ccvault.1; man ./ccvault.1`; `ccvault man import` prints ccvault-import(1), with every flag of that command.
    Man {
        /// A command whose own page to print: `import`, `ingest mqtt` (also
        /// `ingest-mqtt`, as the pages are named).
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// A file written past the size limit (`ulimit -f`) is an error naming it
/// (`EFBIG`, "File too large"), not the end of the process: SIGXFSZ's
/// default action killed a command mid-write without a word, and an export
/// left its temporary files (an outside audit, 2026-12-06).
fn ignore_file_size_signal() {
    // SAFETY: sets one signal's disposition to "ignore", before any thread
    // is started; no handler runs, nothing is shared.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// `--version`'s long form: the formats this build reads and writes, which
/// the crate version alone does not tell (docs/FORMAT.md; upgrading is
/// one-way, docs/OPERATIONS.md).
fn long_version() -> &'static str {
    let text = format!(
        "{}\nsegment format {} (reads {} and later), .segz container {}, index {}, projections {}, facts {}",
        env!("CARGO_PKG_VERSION"),
        ccvault_store::SEGMENT_FORMAT,
        ccvault_store::OLDEST_SEGMENT_FORMAT,
        ccvault_store::SEGZ_VERSION,
        ccvault_store::INDEX_VERSION,
        ccvault_projections::PROJECTION_VERSION,
        ccvault_store::facts::FACTS_VERSION,
    );
    // Once, for the process's one command line.
    Box::leak(text.into_boxed_str())
}

fn main() -> ExitCode {
    no_huge_pages();
    ccvault_store::install_panic_hook();
    ignore_file_size_signal();
    // `CCVAULT_DATA=` (set, but to nothing) is taken as unset, as shells and
    // most tools treat an empty variable; clap would call it a missing
    // `--data-dir` value, which the user never typed.
    if std::env::var_os("CCVAULT_DATA").is_some_and(|v| v.is_empty()) {
        std::env::remove_var("CCVAULT_DATA");
    }
    // clap writes its own help and usage errors before `--color` is parsed:
    // told the choice from a look at the arguments first.
    let matches = command_definition(|cmd| {
        cmd.long_version(long_version())
            .color(output::clap_color(std::env::args_os()))
    })
    .try_get_matches()
    .unwrap_or_else(|e| exit_after_clap(e));
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    cli.data_dir_typed =
        matches.value_source("data_dir") == Some(clap::parser::ValueSource::CommandLine);
    output::set_quiet(cli.quiet);
    output::init_logging(cli.verbose, cli.quiet, output::use_color(cli.color));
    tracing::debug!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %cli.data_dir.display(),
        "ccvault starting"
    );
    match cmd::run(&cli) {
        Ok(code) => code,
        // `ccvault export | head`: the reader has what it wanted.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        // A bad command line found after clap's parse ends as clap's own
        // do: with the command's usage.
        Err(e) if e.downcast_ref::<output::UsageError>().is_some() => {
            let line = with_usage(output::error_text(&e), usage_of_command_line());
            output::error_line(format_args!("ccvault: error: {line}"));
            ExitCode::from(output::exit_code_of(&e))
        }
        Err(e) => {
            output::say_error(&e);
            ExitCode::from(output::exit_code_of(&e))
        }
    }
}

/// A usage error's line with the command's usage at its end, as
/// docs/OPERATIONS.md says every usage error ends.
fn with_usage(mut line: String, usage: Option<String>) -> String {
    if let Some(usage) = usage {
        line.push_str(&format!(" (usage: {usage}; more with --help)"));
    }
    line
}

/// The usage of the command this process's command line names (each
/// argument that names a command of the one before), or of `ccvault`
/// itself: for a usage error whose message came without one (clap leaves
/// it out of some, such as a flag given no value; ccvault's own checks
/// after the parse have none), which until 2026-12-07 ended bare (an
/// outside audit).
fn usage_of_command_line() -> Option<String> {
    let mut cmd = command_definition(|cmd| cmd.color(clap::ColorChoice::Never));
    cmd.build();
    // Down through the commands the arguments name (`ingest mqtt`), past
    // the values of options: `--data-dir demo report …` is `report`'s
    // command line, not `demo`'s (until 2026-12-07 it was given demo's
    // usage: an outside audit).
    let mut named = &mut cmd;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        let takes_value = |is_it: &dyn Fn(&clap::Arg) -> bool| {
            named
                .get_arguments()
                .any(|a| is_it(a) && a.get_action().takes_values())
        };
        if let Some(long) = arg.strip_prefix("--") {
            let spelt = |a: &clap::Arg| {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|all| all.contains(&long))
            };
            if !long.contains('=') && takes_value(&spelt) {
                args.next();
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            if takes_value(&|a: &clap::Arg| short.starts_with(a.get_short().unwrap_or('\0'))) {
                args.next();
            }
        } else if named.find_subcommand(arg).is_some() {
            named = named.find_subcommand_mut(arg)?;
        }
    }
    let text = named.render_usage().to_string();
    Some(
        text.trim()
            .strip_prefix("Usage: ")
            .unwrap_or(text.trim())
            .to_owned(),
    )
}

/// Prints what clap made of a command line it did not run (help, version,
/// a usage error) and exits with clap's code, but as any printing command
/// for a stdout that fails: exit 1 naming it (`--help > /dev/full` exited
/// 0, the help lost), exit 0 for a closed pipe.
fn exit_after_clap(e: clap::Error) -> ! {
    if let Some(line) = usage_error_line(&e) {
        output::error_line(format_args!("ccvault: error: {line}"));
        std::process::exit(e.exit_code());
    }
    match e.print() {
        Err(write) if write.kind() != std::io::ErrorKind::BrokenPipe && e.use_stderr() => {
            std::process::exit(e.exit_code())
        }
        Err(write) if write.kind() != std::io::ErrorKind::BrokenPipe => {
            output::say_error(&anyhow::Error::new(write).context("stdout"));
            std::process::exit(1)
        }
        _ => std::process::exit(e.exit_code()),
    }
}

/// A usage error as the one line every other error is (docs/OPERATIONS.md:
/// `ccvault: error: WHAT`): clap's message, its hints joined on, and the
/// command's usage. `None` for help and version, which are printed as
/// clap writes them.
fn usage_error_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return None;
    }
    let text = e.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u);
        } else if !line.starts_with("For more information") {
            parts.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    let ours = usage_of_command_line();
    let usage = match (usage, ours) {
        // clap's names the top level (`ccvault [OPTIONS] <COMMAND>`) for
        // an error it met before the command, which the line goes on to
        // name: that command's (it gave the top level's until 2026-12-07:
        // an outside audit).
        (Some(clap), Some(ours)) if clap.contains("<COMMAND>") && !ours.contains("<COMMAND>") => {
            Some(ours)
        }
        (Some(clap), _) => Some(clap.to_owned()),
        (None, ours) => ours,
    };
    Some(with_usage(join_error_lines(&parts), usage))
}

/// clap's error lines on one line: `; ` between them, but a line that
/// introduces the next (`…were not provided:`, then `<GUID>`) runs on with
/// a space (it read `provided:; <GUID>`).
fn join_error_lines(parts: &[&str]) -> String {
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

/// Global flags each command has no use for: still accepted there (a
/// wrapper that passes `--data-dir` to every call keeps working), but not
/// listed in its help, manual page or completions, where a newcomer took
/// them for something the command reads (`simulate` opens no archive, and
/// its days run from 2025-11-24T00:00Z whatever `--tz` says: listed there
/// until 2026-12-07, an outside audit).
const UNUSED_GLOBALS: [(&str, &[&str]); 3] = [
    ("simulate", &["data_dir", "tz"]),
    ("completions", &["data_dir", "tz"]),
    ("man", &["data_dir", "tz"]),
];

/// The command line's definition, built, as it parses and as `--help`, the
/// manual pages and the completions show it; `prepare` sets what must be
/// set before it is built (what reaches the subcommands: the colour, no
/// `help` pseudo-command on the pages).
pub fn command_definition(prepare: impl FnOnce(clap::Command) -> clap::Command) -> clap::Command {
    let mut cmd = prepare(numbers_may_be_negative(
        <Cli as clap::CommandFactory>::command(),
    ));
    // Global flags reach the subcommands when it is built, except where a
    // subcommand has a flag of that id already: there, a hidden copy.
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    for (name, unused) in UNUSED_GLOBALS {
        cmd = cmd.mut_subcommand(name, |sub| {
            globals
                .iter()
                .filter(|a| unused.contains(&a.get_id().as_str()))
                .fold(sub, |sub, a| sub.arg(a.clone().hide(true)))
        });
    }
    cmd.build();
    cmd
}

/// `--events -1` is a bad value of `--events`, said as such (`invalid
/// value '-1' for '--events <N>'`), not an unknown flag `-1`: no flag of
/// ccvault is a digit.
fn numbers_may_be_negative(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true)
        .mut_subcommands(numbers_may_be_negative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn no_huge_pages_sets_the_process_flag() {
        no_huge_pages();
        // SAFETY: `prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)` takes no pointer
        // and only reads a flag of this process.
        #[allow(unsafe_code)]
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn yielding_lowers_this_threads_priority_and_its_childrens_only() {
        // SAFETY: as in `yield_to_log_threads`.
        #[allow(unsafe_code)]
        fn nice() -> i32 {
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            }
        }
        let before = nice();
        let (mine, child) = std::thread::spawn(move || {
            yield_to_log_threads();
            let child = std::thread::spawn(nice).join().unwrap();
            (nice(), child)
        })
        .join()
        .unwrap();
        let want = (before + IMPORT_NICE).min(19);
        assert_eq!((mine, child), (want, want));
        assert_eq!(nice(), before, "the calling thread's siblings keep theirs");
    }

    #[test]
    fn freed_memory_is_held_only_until_the_process_passes_the_limit() {
        let own = purge_delay(None);
        let mut freed = FreedMemory::hold();
        assert_eq!(purge_delay(None), 1000);
        freed.check(|| None);
        freed.check(|| Some(FreedMemory::HOLD_BELOW_KIB));
        assert_eq!(purge_delay(None), 1000, "at the limit: still held");
        freed.check(|| Some(FreedMemory::HOLD_BELOW_KIB + 1));
        assert_eq!(purge_delay(None), own, "past it: the allocator's own");
        purge_delay(Some(1000));
        freed.check(|| Some(FreedMemory::HOLD_BELOW_KIB + 1));
        assert_eq!(purge_delay(None), 1000, "switched once, for good");
        purge_delay(Some(own));
    }
}
