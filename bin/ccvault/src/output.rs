//! The output layer: what every command shares about writing results.
//!
//! Guarantees:
//! - Results go to stdout, everything else (progress, summaries, notes,
//!   warnings, logs, errors) to stderr; `-q` silences all of stderr but
//!   errors.
//! - `--format` is validated per command by clap ([`HumanJson`],
//!   [`Table`], [`Export`], [`Stream`]); the same flag before the command
//!   name is accepted too and checked against the command's values (a
//!   mismatch is a usage error, exit 2).
//! - A reader that closes the pipe (`| head`) ends the command quietly with
//!   exit 0 ([`is_broken_pipe`]), but for `verify`, whose exit code is its
//!   answer.
//! - ANSI colour only when stderr is a terminal (`--color auto`, the
//!   default, and `NO_COLOR` unset), or with `--color always`.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use ccvault_projections::timefmt;
use clap::ValueEnum;

/// `--format` of commands whose output is one report: readable text or JSON.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum HumanJson {
    Human,
    Json,
}

/// `--format` of commands that list rows: text, JSON lines, or CSV.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Table {
    Human,
    Json,
    Csv,
}

/// `export --format`: JSON lines (`ndjson`, also spelled `json`), CSV, or
/// a directory of Parquet tables (`--out DIR`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Export {
    #[value(alias = "json")]
    Ndjson,
    Csv,
    Parquet,
}

/// `simulate --format`: its output is always the NDJSON event stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stream {
    #[value(alias = "ndjson")]
    Json,
}

/// Every value `--format` takes before a command name (each command
/// accepts its own subset).
pub const ANY_FORMAT: [&str; 5] = ["human", "json", "ndjson", "csv", "parquet"];

/// A bad command line found after clap's parse: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The command's format: its own `--format`, else the one given before the
/// command name (checked against the command's values), else the first
/// value of `F` (each format type lists its default first).
pub fn resolve_format<F: ValueEnum + Clone>(
    own: Option<F>,
    before: Option<&str>,
    command: &str,
) -> Result<F> {
    if let Some(f) = own {
        return Ok(f);
    }
    let Some(name) = before else {
        return Ok(F::value_variants()[0].clone());
    };
    F::from_str(name, false).map_err(|_| {
        let allowed: Vec<String> = F::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        anyhow::Error::new(UsageError(format!(
            "`{command}` has no --format {name} (it takes: {})",
            allowed.join(", ")
        )))
    })
}

/// True when `e` (anywhere in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    // serde_json and the CSV writer keep the io::Error inside without exposing it as a source.
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
            || c.downcast_ref::<ccvault_projections::columns::CsvError>()
                .is_some_and(|e| e.is_broken_pipe())
    })
}

/// The exit code for an error: 2 for a bad command line, else 1.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// `--color`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The `--color` the arguments give (the last one before `--`), for clap's
/// own output, which is written before the arguments are parsed: `auto`
/// leaves clap to its own rule (a terminal, and `NO_COLOR` unset).
pub fn clap_color(args: impl IntoIterator<Item = std::ffi::OsString>) -> clap::ColorChoice {
    let mut choice = clap::ColorChoice::Auto;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str().map(str::to_owned) else {
            continue;
        };
        if arg == "--" {
            break;
        }
        let value = match arg.strip_prefix("--color") {
            Some("") => args.next().and_then(|v| v.into_string().ok()),
            Some(v) => v.strip_prefix('=').map(str::to_owned),
            None => None,
        };
        choice = match value.as_deref() {
            Some("always") => clap::ColorChoice::Always,
            Some("never") => clap::ColorChoice::Never,
            Some(_) => clap::ColorChoice::Auto,
            None => choice,
        };
    }
    choice
}

/// Whether to colour what goes to stderr: `always`/`never` as told; `auto`
/// only when stderr is a terminal and `NO_COLOR` is unset or empty.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once by `main` from `-q`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints a status line (a summary, a note, a warning) on stderr unless `-q`.
pub fn status(args: fmt::Arguments<'_>) {
    if !quiet() {
        error_line(args);
    }
}

/// `status!("...", args)`: [`status`] with `format!` syntax.
#[macro_export]
macro_rules! status {
    ($($arg:tt)*) => { $crate::output::status(format_args!($($arg)*)) };
}

/// An error and its causes on one line, `: ` between them, as anyhow's
/// `{:#}` writes it, but a cause that the message before it already ends
/// with (a library error that names its source and also returns it) is
/// not written twice.
pub fn error_text(e: &anyhow::Error) -> String {
    ccvault_store::display_chain(e.as_ref())
}

/// Prints `e` as the error that ends a command (`ccvault: error: …`).
pub fn say_error(e: &anyhow::Error) {
    error_line(format_args!("ccvault: error: {}", error_text(e)));
}

/// Prints an error line on stderr (also with `-q`), control characters
/// escaped; never panics, even when stderr is closed.
pub fn error_line(args: fmt::Arguments<'_>) {
    // An error may quote input (a tenant, a GUID, a line): its control
    // characters are escaped, as in every human output.
    let line = args.to_string();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(ccvault_projections::message_for_terminal(&line).as_bytes());
    let _ = err.write_all(b"\n");
}

/// Whether to draw progress bars: stderr is a terminal and not `-q`.
pub fn show_progress() -> bool {
    !quiet() && std::io::stderr().is_terminal()
}

/// A count of the records indexed from the log while an archive is
/// opened, drawn on a terminal once indexing has run for a moment (an
/// upgrade or `reindex` reads the whole log: minutes at tens of millions of
/// records, where nothing was drawn). Nothing without a terminal or with
/// `-q`; cleared when dropped.
pub struct IndexingGauge {
    stop: std::sync::Arc<AtomicBool>,
    drawer: Option<std::thread::JoinHandle<()>>,
}

impl IndexingGauge {
    /// How long indexing runs before the count is drawn: an ordinary
    /// open's catch-up of a few records draws nothing.
    const AFTER: std::time::Duration = std::time::Duration::from_millis(300);

    pub fn start() -> IndexingGauge {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let drawer = show_progress()
            .then(|| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("indexing-gauge".into())
                    .spawn(move || draw_indexing(&stop))
                    .ok()
            })
            .flatten();
        IndexingGauge { stop, drawer }
    }
}

fn draw_indexing(stop: &AtomicBool) {
    let before = ccvault_store::records_indexed_from_log();
    let mut started: Option<std::time::Instant> = None;
    let mut bar: Option<indicatif::ProgressBar> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let indexed = ccvault_store::records_indexed_from_log() - before;
        if indexed == 0 {
            continue;
        }
        let since = *started.get_or_insert_with(std::time::Instant::now);
        if bar.is_none() && since.elapsed() >= IndexingGauge::AFTER {
            let b = indicatif::ProgressBar::new_spinner();
            let style = indicatif::ProgressStyle::with_template(
                "indexing the log {spinner} {human_pos} records {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            b.set_style(style);
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(indexed);
            let rate = indexed as f64 / since.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!("({rate:.0}/s)"));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

impl Drop for IndexingGauge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

/// The log filter: `CCVAULT_LOG` when set, else by `-q`/`-v`.
pub fn init_logging(verbose: u8, quiet: bool, color: bool) {
    // `-q` keeps errors, and the warnings that the archive lost something.
    let quiet_filter = format!("error,{}=warn", ccvault_store::LOSS_TARGET);
    let default = match (quiet, verbose) {
        (true, _) => quiet_filter.as_str(),
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // A filter that does not parse is said, not silently replaced: whoever
    // set it is looking for lines it would otherwise never get.
    let (filter, unusable) = match std::env::var("CCVAULT_LOG") {
        Err(std::env::VarError::NotPresent) => (None, None),
        Err(std::env::VarError::NotUnicode(_)) => (None, Some("it is not UTF-8".to_owned())),
        Ok(text) => match tracing_subscriber::EnvFilter::try_new(&text) {
            Ok(filter) => (Some(filter), None),
            Err(e) => (
                None,
                Some(format!("{text:?} is not a tracing filter ({e})")),
            ),
        },
    };
    let filter = filter.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    // The WebSocket library traces its whole upgrade request, the X-API-Key
    // header included (docs/INGEST.md, Secrets): that target is capped at
    // debug whatever CCVAULT_LOG says. The cap is a second filter an event
    // must also pass, so it only ever lowers the level: a directive added to
    // CCVAULT_LOG's filter instead would replace the level asked for that
    // target and print its debug lines even at the default level and `-q`.
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tungstenite::handshake::client", LevelFilter::DEBUG);
    // At the default level the lines are the user's warnings, said as the
    // command's own are ("ccvault: warning: …"); asked for more (-v, or
    // CCVAULT_LOG), they are a log, with time, level and where from.
    let as_log = verbose > 0 || std::env::var_os("CCVAULT_LOG").is_some();
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(color)
        .with_writer(std::io::stderr);
    let layer = if as_log {
        layer.with_filter(filter.and(cap)).boxed()
    } else {
        layer
            .event_format(Plain)
            .with_filter(filter.and(cap))
            .boxed()
    };
    // Another subscriber already installed (only in tests) keeps its own.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    if let Some(why) = unusable {
        status!("ccvault: warning: CCVAULT_LOG ignored: {why}; the level is {default}");
    }
}

/// A tracing event as one line of the command's own voice:
/// `ccvault: warning: MESSAGE`, control characters escaped.
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            _ => "note",
        };
        let mut text = String::new();
        ctx.field_format().format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut text),
            event,
        )?;
        writeln!(
            writer,
            "ccvault: {level}: {}",
            ccvault_projections::message_for_terminal(&text)
        )
    }
}

/// Standard output, locked, its write errors named: "stdout: No space left
/// on device" rather than the bare reason, which could be about any file.
/// The error keeps its kind, so a closed pipe is still one
/// ([`is_broken_pipe`]).
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

/// See [`stdout`].
pub struct Stdout(std::io::StdoutLock<'static>);

/// A write to stdout that failed: says where, then (as its source) why.
#[derive(Debug)]
struct StdoutError(std::io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `error_text` drops a part its text already ends with, so a caller
        // that said "cannot write the export to stdout" is not repeated.
        f.write_str("stdout")
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn named(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), StdoutError(e))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(named)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf).map_err(named)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(named)
    }
}

/// A path as text, as an input file is named in the archive (each
/// record's source) and in messages: as given, any byte that is not UTF-8
/// written `\xNN` (two files whose names differ only there were one lossy
/// `�`; and JSON,
/// which holds only text, could not hold such a path at all: `demo
/// --format json` panicked on one until 2026-12-07, an outside audit).
pub fn path_text(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut name = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        name.push_str(chunk.valid());
        for b in chunk.invalid() {
            name.push_str(&format!("\\x{b:02X}"));
        }
    }
    name
}

/// A path flag where `-` means stdout.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `bytes` to `path`, or to stdout for `-`; says on stderr what it
/// wrote to a file. Never over a file of the archive in `archive` (a page
/// written over a log segment, one typo, emptied the archive).
pub fn write_file_or_stdout(path: &Path, bytes: &[u8], what: &str, archive: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let own = ccvault_store::Layout::new(archive).own_files();
        if own.contains(&(meta.dev(), meta.ino())) {
            return Err(UsageError(format!(
                "cannot write {what} to {}: it is a file of the archive {} itself",
                path.display(),
                archive.display()
            ))
            .into());
        }
    }
    if is_stdout(path) {
        let mut out = stdout();
        out.write_all(bytes)?;
        out.flush()?;
    } else {
        write_private(path, bytes)?;
        status!("wrote {what} to {}", path.display());
    }
    Ok(())
}

/// Writes a page or file ccvault renders from the archive: a new file is
/// created owner-only (0600) like the archive, since it holds the same names
/// and phone numbers; an existing file keeps its mode (the operator chose
/// it).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// An optional output path: `None` for `-` (stdout).
pub fn file_unless_stdout(path: Option<&PathBuf>) -> Option<&Path> {
    path.map(PathBuf::as_path).filter(|p| !is_stdout(p))
}

/// The time zone for printed times: `--tz`, or UTC.
pub fn time_zone(tz: Option<&jiff::tz::TimeZone>) -> jiff::tz::TimeZone {
    tz.cloned().unwrap_or(jiff::tz::TimeZone::UTC)
}

/// An epoch-ms instant as ISO-8601 in `tz` (`Z` for UTC, whatever its name),
/// exactly as the projections print it.
pub fn format_ms(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    timefmt::format_instant(ms, timefmt::zone_for_display(tz))
}

/// Writes one JSON value as a line.
pub fn json_line(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// This process's peak resident set size in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// This process's resident memory now, in KiB (Linux; `None` elsewhere).
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_is_told_the_last_color_before_the_end_of_options() {
        let of = |args: &[&str]| clap_color(args.iter().map(std::ffi::OsString::from));
        assert_eq!(of(&["ccvault", "stats"]), clap::ColorChoice::Auto);
        assert_eq!(
            of(&["ccvault", "--color", "never", "x"]),
            clap::ColorChoice::Never
        );
        assert_eq!(
            of(&["ccvault", "--color=always"]),
            clap::ColorChoice::Always
        );
        assert_eq!(
            of(&["ccvault", "--color=always", "--color", "never"]),
            clap::ColorChoice::Never
        );
        assert_eq!(
            of(&["ccvault", "--", "--color=never"]),
            clap::ColorChoice::Auto
        );
        assert_eq!(of(&["ccvault", "--color", "auto"]), clap::ColorChoice::Auto);
    }

    struct BrokenWriter;

    impl Write for BrokenWriter {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_format_before_the_command_is_checked_against_the_command() {
        assert_eq!(
            resolve_format::<Table>(None, Some("csv"), "report").unwrap(),
            Table::Csv
        );
        assert_eq!(
            resolve_format::<Export>(None, Some("json"), "export").unwrap(),
            Export::Ndjson
        );
        assert_eq!(
            resolve_format::<HumanJson>(Some(HumanJson::Json), Some("human"), "stats").unwrap(),
            HumanJson::Json
        );
        assert_eq!(
            resolve_format::<HumanJson>(None, None, "stats").unwrap(),
            HumanJson::Human
        );
        let e = resolve_format::<HumanJson>(None, Some("csv"), "stats").unwrap_err();
        assert_eq!(exit_code_of(&e), 2);
        assert_eq!(
            e.to_string(),
            "`stats` has no --format csv (it takes: human, json)"
        );
    }

    #[test]
    fn a_closed_pipe_is_found_under_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
        let json = serde_json::to_writer(BrokenWriter, &1).unwrap_err();
        assert!(is_broken_pipe(&anyhow::Error::new(json).context("listing")));
        let columns = &ccvault_projections::agents::AGENT_STATE_COLUMNS;
        let csv = ccvault_projections::columns::CsvWriter::new(BrokenWriter, columns)
            .and_then(|w| w.finish())
            .err()
            .expect("a closed pipe fails the CSV flush");
        assert!(is_broken_pipe(&anyhow::Error::new(csv)));
        assert_eq!(exit_code_of(&e), 1);
    }
}
