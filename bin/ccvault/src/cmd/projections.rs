//! The projection commands: `show GUID`, `interactions`, `report`, `agents`,
//! `rebuild` / `replay`, `export`.
//!
//! Invariants:
//! - Read commands first bring `projections.redb` up to the archive's last
//!   index commit (a catch-up, or a rebuild after a projection version
//!   change); when another process holds the file they read its stored
//!   state as is and say so on stderr. `show` needs no store: it computes
//!   the timeline from the interaction's records directly.
//! - JSON output is exactly the projections crate's serialization (METRICS
//!   field names); lists are NDJSON in the crate's sort order, so the same
//!   set of events gives byte-identical output.
//! - Bad flag values are clap errors (exit 2) naming the value; nothing
//!   here panics on input.

use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ccvault_projections::materialize::Progress;
use ccvault_projections::report::{self, GroupBy, Interval, ReportOptions};
use ccvault_projections::timefmt::{format_instant, format_opt_duration, zone_for_display};
use ccvault_projections::{
    agents, record_input, timeline, Access, InteractionFilter, Outcome, Projections, StateNames,
    Summary, PROJECTION_VERSION,
};
use ccvault_store::ArchiveReader;
use serde_json::json;

use crate::cmd::archive::open_reader;
use crate::output::{json_line, time_zone};
use crate::{Cli, Format};

/// An instant flag: RFC 3339 (`2025-11-23T12:00:00Z`) or epoch milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is out of range for epoch milliseconds"));
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|_| {
            format!("invalid time {s:?}: expected RFC 3339 (2025-11-23T12:00:00Z) or epoch milliseconds")
        })
}

/// A duration flag: a whole number with a unit, `500ms`, `20s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid duration {s:?}: expected a number with a unit, e.g. 500ms, 20s, 2m, 1h")
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

fn parse_interval(s: &str) -> Result<Interval, String> {
    s.parse::<Interval>().map_err(|e| e.to_string())
}

fn parse_group(s: &str) -> Result<GroupBy, String> {
    s.parse::<GroupBy>().map_err(|e| e.to_string())
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    s.parse::<Outcome>()
}

fn parse_state_names(s: &str) -> Result<StateNames, String> {
    StateNames::parse(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug, Clone)]
pub struct InteractionsArgs {
    /// Only interactions offered at or after T (RFC 3339 or epoch ms).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Only interactions offered before T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub to: Option<i64>,
    /// Only this queueId.
    #[arg(long, value_name = "Q")]
    pub queue: Option<i64>,
    /// Only interactions answered by this agentId.
    #[arg(long, value_name = "A")]
    pub agent: Option<String>,
    /// Only this outcome: answered, abandoned, unanswered, ended, open.
    #[arg(long, value_name = "O", value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Only interactions offered at or after T (RFC 3339 or epoch ms).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Only interactions offered before T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub to: Option<i64>,
    /// Interval length: 15m, 30m, 1h, 1d (day buckets start at local midnight of --tz).
    #[arg(long, default_value = "1h", value_parser = parse_interval)]
    pub interval: Interval,
    /// Group rows by queue or agent (default: all interactions together).
    #[arg(long, value_name = "queue|agent", value_parser = parse_group)]
    pub by: Option<GroupBy>,
    /// Service-level threshold on waitMs (answered within it are in SLA).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub sla: i64,
    /// Abandons with abandonMs below this are short (excluded from service level and abandon rate).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub short_abandon: i64,
    /// Also write a self-contained HTML page with charts of volume, service level, ASA and abandons.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AgentsArgs {
    /// Window start (RFC 3339 or epoch ms): spans are clipped to it.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Window end; without it the last state runs to the archive's latest event.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub to: Option<i64>,
    /// Names of state codes for human output, e.g. "0=logged out,1=logged in,5=available".
    #[arg(long, value_name = "CODE=NAME,...", value_parser = parse_state_names)]
    pub state_names: Option<StateNames>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportWhat {
    Events,
    Interactions,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// What to export: the raw events (byte-exact, log order) or the interaction summaries.
    #[arg(long, value_enum, default_value_t = ExportWhat::Events)]
    pub what: ExportWhat,
    /// `export --format ndjson|csv` arrives here (see [`rewrite_export_format`]).
    #[arg(long = "export-format", value_enum, hide = true)]
    pub export_format: Option<ExportFormat>,
}

/// `--format` is global (human|json), but `export` takes `--format
/// ndjson|csv` (SPEC §5): for the export subcommand only, those two values
/// are passed to its own hidden `--export-format` instead.
pub fn rewrite_export_format(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_export = args.iter().skip(1).any(|a| a == "export");
    if !is_export {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let value_of = |v: &std::ffi::OsStr| matches!(v.to_str(), Some("ndjson" | "csv"));
        if a == "--format" && args.get(i + 1).is_some_and(|v| value_of(v)) {
            out.push("--export-format".into());
            out.push(args[i + 1].clone());
            i += 2;
            continue;
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--format=")) {
            if v == "ndjson" || v == "csv" {
                out.push(format!("--export-format={v}").into());
                i += 1;
                continue;
            }
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} records {msg} ({eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(what.to_owned());
    Some(bar)
}

fn on_progress(bar: &Option<indicatif::ProgressBar>) -> impl FnMut(Progress) + '_ {
    move |p: Progress| {
        if let Some(bar) = bar {
            bar.set_length(p.total.max(1));
            bar.set_position(p.records);
            bar.set_message(format!("{:.0} events/s", p.records_per_sec()));
        }
    }
}

/// The projections, brought up to the archive's last index commit when this
/// process can write them.
fn up_to_date(cli: &Cli) -> Result<Projections> {
    let mut reader = open_reader(cli)?;
    let mut p = Projections::open(&cli.data_dir)
        .with_context(|| format!("cannot open the projections of {}", cli.data_dir.display()))?;
    match p.access() {
        Access::Writable => {
            let bar = progress_bar(reader.visible_end(), "projections");
            let applied = p.catch_up(&mut reader, &mut on_progress(&bar))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if applied.rebuilt {
                eprintln!(
                    "built projections: {} records in {:.2}s ({:.0} events/s)",
                    applied.records,
                    applied.elapsed.as_secs_f64(),
                    applied.records_per_sec()
                );
            }
        }
        Access::ReadOnly => {
            let st = p.state()?;
            match st.version {
                None => bail!(
                    "{} is being built by another process and has no data yet; try again shortly",
                    p.path().display()
                ),
                Some(v) if v != PROJECTION_VERSION => bail!(
                    "{} is held by another process and was written by projection version {v} (this is {PROJECTION_VERSION}); try again when it is free",
                    p.path().display()
                ),
                Some(_) => {}
            }
            eprintln!(
                "ccvault: note: {} is held by another process; showing its stored state (records below offset {} of {})",
                p.path().display(),
                st.consumed,
                reader.visible_end()
            );
        }
    }
    Ok(p)
}

/// The timeline as JSON, each event with where it came from — archive
/// offset, source and line, envelope `messageId`/`publishTime` — and the
/// archived payload itself, so a dispute can be settled from this output.
fn with_provenance(
    tl: &ccvault_projections::Timeline,
    records: &[ccvault_store::Record],
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(tl)?;
    if let Some(events) = value.get_mut("events").and_then(|e| e.as_array_mut()) {
        for (json, event) in events.iter_mut().zip(&tl.events) {
            let (Some(obj), Some(rec)) = (json.as_object_mut(), records.get(event.input_index))
            else {
                continue;
            };
            let payload: serde_json::Value = serde_json::from_slice(&rec.payload)
                .unwrap_or_else(|_| String::from_utf8_lossy(&rec.payload).into());
            let text = |s: &str| (!s.is_empty()).then(|| serde_json::Value::from(s));
            obj.insert("offset".into(), rec.offset.into());
            obj.insert("source".into(), rec.source.clone().into());
            obj.insert("line".into(), rec.line.into());
            obj.insert("messageId".into(), text(&rec.message_id).into());
            obj.insert("publishTime".into(), text(&rec.publish_time).into());
            obj.insert("ingestTime".into(), rec.ingest_ms.into());
            obj.insert("event".into(), payload);
        }
    }
    Ok(value)
}

/// `show GUID` (not `--raw`): the full timeline.
pub fn show(cli: &Cli, guid: &str, html: Option<&std::path::Path>) -> Result<ExitCode> {
    let mut reader = open_reader(cli)?;
    let records: Vec<_> = reader
        .interaction_records(guid)?
        .into_iter()
        .filter(|r| !r.quarantined)
        .collect();
    let inputs: Vec<_> = records.iter().map(record_input).collect();
    let Some(tl) = timeline::build(&inputs) else {
        bail!(
            "no events of interaction {guid:?} in {}",
            cli.data_dir.display()
        );
    };
    let tz = time_zone(cli.tz.as_deref())?;
    if let Some(path) = html {
        std::fs::write(path, ccvault_html::render_timeline(&tl, &inputs, &tz))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    match cli.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &with_provenance(&tl, &records)?)?;
            out.write_all(b"\n")?;
        }
        Format::Human => {
            out.write_all(timeline::render_text(&tl, zone_for_display(&tz)).as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn interactions(cli: &Cli, args: &InteractionsArgs) -> Result<ExitCode> {
    let tz = time_zone(cli.tz.as_deref())?;
    let p = up_to_date(cli)?;
    let filter = InteractionFilter {
        from: args.from,
        to: args.to,
        queue_id: args.queue,
        agent_id: args.agent.clone(),
        outcome: args.outcome,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let zone = zone_for_display(&tz);
    let mut n = 0u64;
    if cli.format == Format::Human {
        writeln!(
            out,
            "{:<29}  {:<72}  {:>6}  {:<3}  {:<10}  {:<24}  {:>10}  {:>10}  {:>10}",
            "OFFERED", "GUID", "QUEUE", "DIR", "OUTCOME", "AGENT", "WAIT", "TALK", "HANDLE"
        )?;
    }
    p.for_each_interaction(&filter, |s| {
        n += 1;
        let written = match cli.format {
            Format::Json => serde_json::to_writer(&mut out, &s)
                .map_err(std::io::Error::from)
                .and_then(|_| out.write_all(b"\n")),
            Format::Human => human_interaction(&mut out, &s, zone),
        };
        // A closed pipe (`| head`) ends the listing quietly.
        Ok(written.is_ok())
    })?;
    if cli.format == Format::Human {
        writeln!(out, "{n} interactions")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn human_interaction(
    out: &mut impl Write,
    s: &Summary,
    zone: Option<&jiff::tz::TimeZone>,
) -> std::io::Result<()> {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:<29}  {:<72}  {:>6}  {:<3}  {:<10}  {:<24}  {:>10}  {:>10}  {:>10}",
        format_instant(s.offered_at, zone),
        dash(s.interaction_guid.clone()),
        dash(s.queue_id.map(|q| q.to_string())),
        match s.direction {
            Some(ccvault_projections::Direction::In) => "in",
            Some(ccvault_projections::Direction::Out) => "out",
            None => "-",
        },
        s.outcome.as_str(),
        dash(s.agent_id.clone()),
        format_opt_duration(s.wait_ms),
        format_opt_duration(s.talk_ms),
        format_opt_duration(s.handle_ms),
    )
}

pub fn report(cli: &Cli, args: &ReportArgs) -> Result<ExitCode> {
    let tz = time_zone(cli.tz.as_deref())?;
    let opts = ReportOptions {
        interval: args.interval,
        by: args.by.unwrap_or_default(),
        tz,
        sla_ms: args.sla,
        short_abandon_ms: args.short_abandon,
        from: args.from,
        to: args.to,
    };
    let p = up_to_date(cli)?;
    let rows = p.report(opts.clone())?;
    if let Some(path) = &args.html {
        std::fs::write(path, ccvault_html::render_report(&rows, &opts))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    match cli.format {
        Format::Json => {
            for row in &rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Human => out.write_all(report::render_text(&rows, &opts).as_bytes())?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn agents(cli: &Cli, args: &AgentsArgs) -> Result<ExitCode> {
    let p = up_to_date(cli)?;
    let states = p.agents(args.from, args.to)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    match cli.format {
        Format::Json => {
            for a in &states {
                serde_json::to_writer(&mut out, a)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Human => {
            let names = args.state_names.clone().unwrap_or_default();
            out.write_all(agents::render_text(&states, &names).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `rebuild` / `replay`: everything from the log, with progress.
pub fn rebuild(cli: &Cli) -> Result<ExitCode> {
    let mut reader = open_reader(cli)?;
    let mut p = Projections::open(&cli.data_dir)
        .with_context(|| format!("cannot open the projections of {}", cli.data_dir.display()))?;
    if p.access() != Access::Writable {
        bail!(
            "{} is in use by another process (a running command is updating it); try again when it finishes",
            p.path().display()
        );
    }
    let bar = progress_bar(reader.visible_end(), "rebuild");
    let applied = p.rebuild(&mut reader, Default::default(), &mut on_progress(&bar))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = applied.elapsed.as_secs_f64();
    match cli.format {
        Format::Json => json_line(
            &mut std::io::stdout().lock(),
            &json!({
                "records": applied.records, "interactions": applied.interactions,
                "agentChanges": applied.agent_changes, "deferred": applied.deferred,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "eventsPerSec": applied.records_per_sec().round(),
                "peakRssKiB": crate::output::peak_rss_kib(),
            }),
        )?,
        Format::Human => eprintln!(
            "rebuilt projections from {} records in {secs:.2}s ({:.0} events/s): {} interactions, {} agent status changes",
            applied.records,
            applied.records_per_sec(),
            applied.interactions,
            applied.agent_changes
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary fields in METRICS / JSON order: the CSV header.
const SUMMARY_FIELDS: [&str; 35] = [
    "interactionGUID",
    "tenant",
    "mediaType",
    "queueId",
    "direction",
    "createdAt",
    "queuedAt",
    "offeredAt",
    "offerCount",
    "rejectCount",
    "acceptedAt",
    "assignedAt",
    "agentId",
    "connectedAt",
    "wrapStartAt",
    "wrapEndAt",
    "endedAt",
    "holdCount",
    "holdMs",
    "queueMs",
    "ringMs",
    "waitMs",
    "dialMs",
    "talkMs",
    "wrapMs",
    "handleMs",
    "abandonMs",
    "outcome",
    "hangupInitiator",
    "callHangupReason",
    "dispositionCode",
    "transferred",
    "complete",
    "eventCount",
    "anomalies",
];

/// One CSV cell (RFC 4180): null is empty, lists join with `;`, text with
/// a comma, quote or line break is quoted.
fn csv_cell(v: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    let text = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub fn export(cli: &Cli, args: &ExportArgs) -> Result<ExitCode> {
    let format = args.export_format.unwrap_or(ExportFormat::Ndjson);
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    match args.what {
        ExportWhat::Events => {
            if format == ExportFormat::Csv {
                bail!("raw events export only as ndjson (their fields vary); use --what interactions for CSV");
            }
            let reader = open_reader(cli)?;
            export_events(&reader, &mut out)?;
        }
        ExportWhat::Interactions => {
            let p = up_to_date(cli)?;
            if format == ExportFormat::Csv {
                writeln!(out, "{}", SUMMARY_FIELDS.join(","))?;
            }
            let mut failed: Option<std::io::Error> = None;
            p.for_each_interaction(&InteractionFilter::default(), |s| {
                let r = match format {
                    ExportFormat::Ndjson => serde_json::to_writer(&mut out, &s)
                        .map_err(std::io::Error::from)
                        .and_then(|_| out.write_all(b"\n")),
                    ExportFormat::Csv => {
                        let v = serde_json::to_value(&s).map_err(std::io::Error::from);
                        v.and_then(|v| {
                            let cells: Vec<String> =
                                SUMMARY_FIELDS.iter().map(|f| csv_cell(v.get(*f))).collect();
                            writeln!(out, "{}", cells.join(","))
                        })
                    }
                };
                if let Err(e) = r {
                    failed = Some(e);
                    return Ok(false);
                }
                Ok(true)
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Every archived (not quarantined) event payload, in log order, one per
/// line, byte-exact. JSON cannot hold a raw line break inside a string, so a
/// CR or LF in a payload is whitespace between tokens: it is written as a
/// space to keep one event per line (same JSON value).
fn export_events(reader: &ArchiveReader, out: &mut impl Write) -> Result<()> {
    let mut damaged = 0u64;
    reader.for_each_record(
        |rec| {
            if rec.quarantined {
                return Ok(());
            }
            let mut payload = rec.payload;
            for b in payload.iter_mut() {
                if matches!(*b, b'\n' | b'\r') {
                    *b = b' ';
                }
            }
            out.write_all(&payload)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|source| ccvault_store::StoreError::Io {
                    what: "cannot write the export to",
                    path: "stdout".into(),
                    source,
                })
        },
        |_| damaged += 1,
    )?;
    if damaged > 0 {
        eprintln!(
            "ccvault: warning: skipped {damaged} damaged places in the log (run `ccvault verify`)"
        );
    }
    Ok(())
}
