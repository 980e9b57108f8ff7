//! The projection commands: `show GUID`, `interactions`, `report`, `agents`,
//! `rebuild` / `replay` (`export` is in export.rs).
//!
//! Invariants:
//! - Read commands first bring `projections.redb` up to the archive's last
//!   index commit (a catch-up, or a rebuild after a projection version
//!   change); a store that is already current is opened read-only and not
//!   touched (redb's writable open reads the whole file). When another
//!   process holds the file they read its stored state as is and say so on
//!   stderr. `show` reads only which legs form
//!   the contact from the store (each leg's timeline comes from its own
//!   records); without a readable store it shows the asked leg alone.
//! - JSON output is exactly the projections crate's serialization (METRICS
//!   field names); lists are NDJSON in the crate's sort order, so the same
//!   set of events gives byte-identical output.
//! - Bad flag values are clap errors (exit 2) naming the value; nothing
//!   here panics on input.
//! - `--format csv` (interactions, report, agents, export) writes the
//!   projections crate's column lists (its JSON field names; agents one row
//!   per agent and state) through its CSV writer.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ccvault_projections::agents::AGENT_STATE_COLUMNS;
use ccvault_projections::columns::{Column, CsvWriter};
use ccvault_projections::materialize::Progress;
use ccvault_projections::report::{self, GroupBy, Interval, ReportOptions, ReportRow, Sla};
use ccvault_projections::summary::{self, SUMMARY_COLUMNS};
use ccvault_projections::timefmt::zone_for_display;
use ccvault_projections::{
    agents, timeline, Access, Applied, InteractionFilter, LegKind, NoEvents, Outcome, Projections,
    StateNames, Summary, PROJECTION_VERSION, UNREADABLE,
};
use ccvault_store::ArchiveReader;
use serde_json::json;

use crate::args::parse_duration_ms;
use crate::cmd::archive::{open_reader, searched};
use crate::cmd::contact;
use crate::output::{self, json_line, HumanJson, Table};
use crate::{status, Cli, TimeRange};

fn parse_interval(s: &str) -> Result<Interval, String> {
    s.parse::<Interval>().map_err(|e| e.to_string())
}

/// `--sla` of `report`, `serve` and `wallboard`.
pub(crate) fn parse_sla(s: &str) -> Result<Sla, String> {
    s.parse::<Sla>().map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<LegKind, String> {
    s.parse::<LegKind>()
}

fn parse_group(s: &str) -> Result<GroupBy, String> {
    s.parse::<GroupBy>().map_err(|e| e.to_string())
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    s.parse::<Outcome>()
}

/// `--state-names` of `agents`, `serve` and `wallboard`.
pub(crate) fn parse_state_names(s: &str) -> Result<StateNames, String> {
    StateNames::parse(s).map_err(|e| e.to_string())
}

/// A tenant name as `--tenant` takes it: anything a topic's first level or
/// a GUID's suffix can be, which is any text but the empty one (a GUID's
/// suffix may hold a `/`, and `stats --by-tenant` lists it so).
pub fn parse_tenant(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!(
            "{s:?} is not a tenant name (the first level of an 8x8 topic, or what follows the last `-` of an interactionGUID)"
        ));
    }
    Ok(s.to_owned())
}

/// `--tenant` of the commands that read one tenant's data.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TenantArg {
    /// Only this tenant's data (docs/SCALE.md: the topic's tenant, else the interactionGUID's suffix), read through the tenant index without reading other tenants'.
    #[arg(long, value_name = "TENANT", value_parser = parse_tenant)]
    pub tenant: Option<String>,
}

/// `--format human|json|csv` of the listing commands.
#[derive(clap::Args, Debug, Clone)]
pub struct TableArg {
    /// Output format: a readable table, JSON lines, or CSV (JSON field names as columns).
    #[arg(long, value_enum)]
    pub format: Option<Table>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct InteractionsArgs {
    /// Only interactions offered in this range.
    #[command(flatten)]
    pub range: TimeRange,
    /// Only this queueId.
    #[arg(long, value_name = "Q")]
    pub queue: Option<i64>,
    /// Only interactions whose agentId is this one: the agent of the first InteractionAccepted (docs/METRICS.md §3), whatever the outcome (an outbound dial the customer never answered is its agent's too).
    #[arg(long, value_name = "A")]
    pub agent: Option<String>,
    /// Only this outcome: answered, abandoned, unanswered, ended, open.
    #[arg(long, value_name = "O", value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// Only this channel (mediaType: phone, chat, email, ...).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Only legs of this kind: inbound, outbound, consult, unqueued.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<LegKind>,
    /// Only the legs of the contact whose first leg is GUID (its contactId).
    #[arg(long, value_name = "GUID")]
    pub contact: Option<String>,
    #[command(flatten)]
    pub tenant: TenantArg,
    #[command(flatten)]
    pub out: TableArg,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Only interactions offered in this range.
    #[command(flatten)]
    pub range: TimeRange,
    /// Interval length: 15m, 30m, 1h, 1d (day buckets start at local midnight of --tz).
    #[arg(long, default_value = "1h", value_parser = parse_interval)]
    pub interval: Interval,
    /// Group rows by any combination of queue, agent and channel, e.g. `queue,channel` (default: all legs together).
    #[arg(long, value_name = "queue,agent,channel", value_parser = parse_group)]
    pub by: Option<GroupBy>,
    /// Service-level threshold on waitMs of inbound legs: one (20s, 1m30s, 1.5s) or one per channel (phone=20s,chat=60s,email=4h,*=30s).
    #[arg(long, default_value = "20s", value_name = "DURATION|CHANNEL=DURATION,...", value_parser = parse_sla, allow_hyphen_values = true)]
    pub sla: Sla,
    /// Abandons with abandonMs below this are short (excluded from service level and abandon rate).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration_ms, allow_hyphen_values = true)]
    pub short_abandon: i64,
    /// Also write a self-contained HTML page with charts of volume, service level, ASA and abandons (`-`: only the page, on stdout).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub tenant: TenantArg,
    #[command(flatten)]
    pub out: TableArg,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AgentsArgs {
    /// The window: spans are clipped to it; without --to the last state runs to the archive's latest event.
    #[command(flatten)]
    pub range: TimeRange,
    /// Names of state codes for human output, e.g. "0=logged out,1=logged in,5=available".
    #[arg(long, value_name = "CODE=NAME,...", value_parser = parse_state_names)]
    pub state_names: Option<StateNames>,
    #[command(flatten)]
    pub tenant: TenantArg,
    #[command(flatten)]
    pub out: TableArg,
}

fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !output::show_progress() {
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
/// [`up_to_date`] for a command limited to `tenant`: warns when the
/// archive holds no event of it (a typo would otherwise give an empty
/// answer and exit 0), naming the tenants it has. Even with `-q`, as every
/// warning of what an answer lacks: a cron job's `export --tenant T -q`
/// wrote nothing for a misspelt T and said nothing (an outside audit).
pub(crate) fn up_to_date_for(cli: &Cli, tenant: Option<&str>) -> Result<Projections> {
    let p = up_to_date(cli)?;
    if let Some(note) = tenant
        .map(|t| no_such_tenant(&p, t, cli))
        .transpose()?
        .flatten()
    {
        crate::output::error_line(format_args!("ccvault: warning: {note}"));
    }
    Ok(p)
}

/// The sentence for a tenant the archive holds no event of, naming the
/// tenants it has (each quoted: a name may hold a comma or spaces).
pub(crate) fn no_such_tenant(p: &Projections, tenant: &str, cli: &Cli) -> Result<Option<String>> {
    if !p.tenant_stats(Some(tenant))?.is_empty() {
        return Ok(None);
    }
    let known = p.tenant_stats(None)?;
    let names: Vec<String> = known
        .iter()
        .filter_map(|s| s.tenant.as_deref())
        .map(|n| format!("{n:?}"))
        .collect();
    Ok(Some(format!(
        "no events of tenant {tenant:?} in {} (its tenants: {})",
        cli.data_dir.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )))
}

/// How long a read waits for another process to finish building the
/// projections it needs (a 10M-event rebuild takes ~20 s here,
/// docs/BENCHMARKS.md), and how often it looks.
const BUILD_WAIT: Duration = Duration::from_secs(600);
const BUILD_POLL: Duration = Duration::from_millis(100);
/// How long a read waits for another process holding the projections to
/// bring them up to the records it sees (`serve` does at its next poll,
/// 100 ms by default; another read when its catch-up ends: ~0.8 s for
/// 570,000 new records here), before it shows them as they are, saying
/// so. Not longer: a holder that lags on purpose (`serve --poll 60s`) is
/// shown as it is, as before.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn up_to_date(cli: &Cli) -> Result<Projections> {
    let mut reader = open_reader(cli)?;
    let p = caught_up(cli, &mut reader)?;
    warn_skipped_damage(&p, &reader);
    Ok(p)
}

/// Says on stderr, once a process and even with `-q` (what follows lacks
/// records), that the projections were built around damaged places of
/// the log, unless the index's warning (`warn_index_damage`) has said the
/// same places.
fn warn_skipped_damage(p: &Projections, reader: &ArchiveReader) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let Ok(skipped) = p.skipped_damage() else {
        return;
    };
    let Some(note) = skipped.note() else {
        return;
    };
    let (places, first) = reader.index_damage();
    if places >= skipped.places && first.map(|(s, pos)| (s, u64::from(pos))) == skipped.first {
        return;
    }
    WARNED.call_once(|| crate::output::error_line(format_args!("ccvault: warning: {note}")));
}

/// The projections holding every record `reader` shows, caught up here
/// where they can be, else as another process holds them (said).
fn caught_up(cli: &Cli, reader: &mut ArchiveReader) -> Result<Projections> {
    if let Some(p) = already_current(cli, reader) {
        return Ok(p);
    }
    let open = || {
        Projections::open(&cli.data_dir)
            .with_context(|| format!("cannot open the projections of {}", cli.data_dir.display()))
    };
    let mut p = open()?;
    // Another process building them (the first reads after an import,
    // started together) is waited for, where this one failed with "being
    // built by another process" until 2026-12-07 (an outside audit); and
    // one bringing them up to this read's records (reads started together
    // after an import, `serve` at its next poll), where until
    // 2026-12-08 this one answered from the state before them, exit 0
    // (an outside audit: with `-q`, without a word).
    let waited = Instant::now();
    let mut said = false;
    while p.access() == Access::ReadOnly {
        let building = p.state()?.version != Some(PROJECTION_VERSION);
        let wait = match building {
            true => BUILD_WAIT,
            // Up to this read's records, or past them (`serve` beside a
            // live ingest): what it shows holds every record this one sees.
            false if p.state()?.consumed >= reader.visible_end() => break,
            false => CATCH_UP_WAIT,
        };
        if waited.elapsed() >= wait {
            break;
        }
        if !said {
            said = true;
            let path = p.path().display();
            match building {
                true => status!("ccvault: note: waiting for the process building {path}"),
                false => status!(
                    "ccvault: note: waiting for the process holding {path} to bring it up to offset {}",
                    reader.visible_end()
                ),
            }
        }
        drop(p);
        std::thread::sleep(BUILD_POLL);
        p = open()?;
    }
    match p.access() {
        Access::Writable => {
            let bar = progress_bar(reader.visible_end(), "projections");
            let applied = p.catch_up(reader, &mut on_progress(&bar))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(why) = p.unsaved() {
                status!(
                    "ccvault: warning: could not save the projections to {} ({why}); brought them up to date in memory for this command only (once the file can be written, with space on the disk and write permission, any read saves them)",
                    p.path().display()
                );
            } else if applied.rebuilt {
                status!(
                    "built projections: {} records in {:.2}s ({:.0} events/s)",
                    applied.records,
                    applied.elapsed.as_secs_f64(),
                    applied.records_per_sec()
                );
            }
        }
        Access::ReadOnly => {
            // Another process (`serve`, an ingest) commits while this one
            // reads: the note below, a tenant warning and the rows all
            // read one snapshot.
            p.pin_reads()?;
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
            if st.consumed >= reader.visible_end() {
                return Ok(p);
            }
            // What follows lacks records: said even with `-q`.
            crate::output::error_line(format_args!(
                "ccvault: warning: {} is held by another process that has not brought it up to the archive in {}s; showing its stored state (records below offset {} of {})",
                p.path().display(),
                CATCH_UP_WAIT.as_secs(),
                st.consumed,
                reader.visible_end()
            ));
        }
    }
    Ok(p)
}

/// The projections opened read-only when they already hold every record the
/// archive shows: a writable open makes redb read the whole file (tens of ms
/// per 10 MB), which a command that only reads a few rows (`show`) cannot
/// afford. `None` when they are missing, of another version or behind.
fn already_current(cli: &Cli, reader: &ArchiveReader) -> Option<Projections> {
    let mut p = Projections::open_read_only_in(&cli.data_dir).ok()?;
    // What is found current is what the command then reads, whatever a
    // writer commits meanwhile.
    p.pin_reads().ok()?;
    p.is_current(reader).ok()?.then_some(p)
}

/// The projections for `show`, or `None` (said on stderr) when they cannot
/// be read: `show` then shows the asked leg alone, from the archive.
fn projections_for_show(cli: &Cli) -> Option<Projections> {
    match up_to_date(cli) {
        Ok(p) => Some(p),
        Err(e) => {
            status!("ccvault: note: showing this leg alone, without the other legs of its contact: {e:#}");
            None
        }
    }
}

/// `` (the index was built around N damaged places of the log…)`` when it
/// was: an interaction found in none of its postings may have been there.
fn index_damage_aside(reader: &ArchiveReader) -> String {
    match reader.index_damage().0 {
        0 => String::new(),
        n => format!(
            " (the index was built around {n} damaged place(s) of the log: its records may have been there; `ccvault verify` lists them)"
        ),
    }
}

/// `show GUID` (not `--raw`): the timeline of every leg of the contact the
/// interaction belongs to (docs/METRICS.md §3), the asked one marked; one leg
/// prints as it always did.
pub fn show(
    cli: &Cli,
    guid: &str,
    tenant: Option<&str>,
    html: Option<&Path>,
    format: HumanJson,
) -> Result<ExitCode> {
    let mut reader = open_reader(cli)?;
    let store = projections_for_show(cli);
    let legs = contact::read_legs(&mut reader, store.as_ref(), guid)?;
    crate::cmd::archive::warn_damage_met(&reader);
    let mut shown = contact::timelines(&legs);
    if let (Some(tenant), Some(asked)) = (tenant, shown.iter().find(|l| l.asked)) {
        check_tenant(guid, asked.timeline.summary.tenant.as_deref(), tenant)?;
        // A contact's other legs of other tenants are theirs to see.
        shown.retain(|l| l.asked || l.timeline.summary.tenant.as_deref() == Some(tenant));
    }
    let Some(asked) = shown.iter().find(|l| l.asked) else {
        let searched = searched(&reader, &cli.data_dir);
        let known = match &store {
            // Records left out of what was read: this leg's.
            _ if !reader.damage_met().is_empty() => NoEvents::Unreadable,
            Some(p) => p.no_events_of(guid, tenant)?,
            None => NoEvents::Unknown,
        };
        match known {
            // Not sent to the legs of its contact, this one among them (an
            // outside audit found that answer contradicting itself).
            NoEvents::Unreadable => bail!(
                "no readable events of interaction {guid:?} in {searched}: {UNREADABLE}"
            ),
            // A contactId whose first leg never reached the archive: name
            // the legs that did, which `show` can show. An index built
            // around damage cannot tell that leg from one whose records
            // were all there: said (an outside audit, after a `reindex`).
            NoEvents::OtherLegs(legs) => bail!(
                "no events of interaction {guid:?} in {searched}{}; it names a contact whose first leg was never archived{}, and these legs of it were: {} (show any of them)",
                index_damage_aside(&reader),
                if reader.index_damage().0 > 0 { " or is in those places" } else { "" },
                legs.join(", ")
            ),
            NoEvents::Unknown => bail!(
                "no events of interaction {guid:?} in {searched}{}",
                index_damage_aside(&reader)
            ),
        }
    };
    let tz = cli.tz();
    if let Some(path) = html {
        let page = if shown.len() > 1 {
            let views: Vec<_> = shown.iter().map(contact::ShownLeg::view).collect();
            ccvault_html::render_contact(&views, &tz)
        } else {
            ccvault_html::render_timeline(&asked.timeline, &asked.inputs, &tz)
        };
        output::write_file_or_stdout(path, page.as_bytes(), "the timeline page", &cli.data_dir)?;
        if output::is_stdout(path) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut out = crate::output::stdout();
    match format {
        HumanJson::Json => {
            if let Some(value) = contact::contact_json(&shown) {
                json_line(&mut out, &value)?
            }
        }
        HumanJson::Human if shown.len() > 1 => {
            let texts: Vec<_> = shown
                .iter()
                .map(|l| ccvault_projections::contact::LegText {
                    timeline: &l.timeline,
                    asked: l.asked,
                })
                .collect();
            let text = ccvault_projections::contact::render_text(&texts, zone_for_display(&tz));
            out.write_all(text.as_bytes())?;
        }
        HumanJson::Human => {
            let text = timeline::render_text(&asked.timeline, zone_for_display(&tz));
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--html -` puts the page alone on stdout, where a `--format` beside it
/// would be dropped without a word (`report --html - --format csv` printed
/// the page): refused as a usage error instead.
pub(crate) fn page_alone_on_stdout(html: Option<&Path>, format_given: bool) -> Result<()> {
    if html.is_some_and(output::is_stdout) && format_given {
        return Err(output::UsageError(
            "--html - writes the page alone on stdout, so --format has nothing to format: give --html a file name to have both, or drop one".into(),
        )
        .into());
    }
    Ok(())
}

/// `show GUID --tenant T` refuses a leg of another tenant (or of none).
pub(crate) fn check_tenant(guid: &str, leg_tenant: Option<&str>, tenant: &str) -> Result<()> {
    match leg_tenant {
        Some(t) if t == tenant => Ok(()),
        Some(t) => bail!("interaction {guid:?} belongs to tenant {t:?}, not to {tenant:?}"),
        None => bail!(
            "interaction {guid:?} belongs to no tenant (no topic names one and its GUID has no `-` suffix), not to {tenant:?}"
        ),
    }
}

/// Writes the interactions `filter` selects, in the crate's order, as
/// `format` (the human table with a count line).
pub(crate) fn write_interactions(
    p: &Projections,
    filter: &InteractionFilter,
    format: Table,
    tz: &jiff::tz::TimeZone,
    out: &mut impl Write,
) -> Result<()> {
    let zone = zone_for_display(tz);
    let mut n = 0u64;
    if format == Table::Human {
        writeln!(out, "{}", summary::listing_header())?;
    }
    enum Sink<'a, W: Write> {
        Csv(Box<CsvWriter<'static, &'a mut W, Summary>>),
        Json(&'a mut W),
        Human(&'a mut W),
    }
    let mut sink = match format {
        Table::Csv => Sink::Csv(Box::new(CsvWriter::new(&mut *out, &SUMMARY_COLUMNS)?)),
        Table::Json => Sink::Json(&mut *out),
        Table::Human => Sink::Human(&mut *out),
    };
    // The callback cannot return our error: keep the first one and stop.
    let mut failed: Option<anyhow::Error> = None;
    p.for_each_interaction(filter, |s| {
        n += 1;
        let written = match &mut sink {
            Sink::Csv(csv) => csv.write(&s).map_err(anyhow::Error::from),
            Sink::Json(out) => json_line(out, &s),
            Sink::Human(out) => {
                writeln!(out, "{}", summary::listing_row(&s, zone)).map_err(anyhow::Error::from)
            }
        };
        match written {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    match sink {
        Sink::Csv(csv) => {
            csv.finish()?;
        }
        Sink::Human(out) => writeln!(out, "{n} interactions")?,
        Sink::Json(_) => {}
    }
    Ok(())
}

pub fn interactions(cli: &Cli, args: &InteractionsArgs) -> Result<ExitCode> {
    let format = cli.format_of(args.out.format, "interactions")?;
    let (from, to) = args.range.resolve(cli)?;
    let p = up_to_date_for(cli, args.tenant.tenant.as_deref())?;
    let filter = InteractionFilter {
        from,
        to,
        queue_id: args.queue,
        agent_id: args.agent.clone(),
        outcome: args.outcome,
        media_type: args.channel.as_deref().map(str::to_lowercase),
        kind: args.kind,
        contact_id: args.contact.clone(),
        tenant: args.tenant.tenant.clone(),
    };
    let mut out = BufWriter::new(crate::output::stdout());
    write_interactions(&p, &filter, format, &cli.tz(), &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Rows as JSON lines or CSV (the columns of `columns`); `false` for human
/// output (each command renders its own). `each` hands every row to the
/// writer it is given, in order, so rows need not all be held at once.
fn write_rows<'c, T: serde::Serialize, R: 'c>(
    format: Table,
    each: impl FnOnce(&mut dyn FnMut(&T) -> Result<()>) -> Result<()>,
    columns: impl IntoIterator<Item = &'c Column<R>>,
    csv_rows: impl Fn(&T) -> Vec<R>,
    out: &mut impl Write,
) -> Result<bool> {
    match format {
        Table::Json => each(&mut |row| json_line(out, row))?,
        Table::Csv => {
            let mut csv = CsvWriter::new(&mut *out, columns)?;
            each(&mut |row| {
                for r in csv_rows(row) {
                    csv.write(&r)?;
                }
                Ok(())
            })?;
            csv.finish()?;
        }
        Table::Human => return Ok(false),
    }
    Ok(true)
}

/// Hands each row of the report to `write`, in order, as the projections
/// make them final (never all held); the first error of `write` stops the
/// report and is returned.
fn each_report_row(
    p: &Projections,
    opts: &ReportOptions,
    tenant: Option<&str>,
    write: &mut dyn FnMut(&ReportRow) -> Result<()>,
) -> Result<()> {
    // The callback cannot return our error: keep the first one and stop.
    let mut failed: Option<anyhow::Error> = None;
    p.tenant_report_each(opts.clone(), tenant, |rows| {
        match rows.iter().try_for_each(&mut *write) {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// The most rows the text table of `report` keeps from measuring them to
/// print them (~25 MiB of rows by queue and agent): past it, the report is read again. Every hour of
/// five years is 43,800 rows.
const TEXT_ROWS_KEPT: usize = 1 << 16;

pub fn report(cli: &Cli, args: &ReportArgs) -> Result<ExitCode> {
    page_alone_on_stdout(args.html.as_deref(), cli.format_given(&args.out.format))?;
    let format = cli.format_of(args.out.format, "report")?;
    let (from, to) = args.range.resolve(cli)?;
    let opts = ReportOptions {
        interval: args.interval,
        by: args.by.unwrap_or_default(),
        tz: cli.tz(),
        sla: args.sla.clone(),
        short_abandon_ms: args.short_abandon,
        from,
        to,
    };
    let tenant = args.tenant.tenant.as_deref();
    let p = up_to_date_for(cli, tenant)?;
    if let Some(path) = &args.html {
        // The page draws every row at once; the rows printed beside it are
        // read again below rather than kept.
        let rows = p.tenant_report(opts.clone(), tenant)?;
        let page = ccvault_html::render_report(&rows, &opts);
        output::write_file_or_stdout(path, page.as_bytes(), "the report page", &cli.data_dir)?;
        if output::is_stdout(path) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut out = BufWriter::new(crate::output::stdout());
    let each =
        |write: &mut dyn FnMut(&ReportRow) -> Result<()>| each_report_row(&p, &opts, tenant, write);
    let columns = report::report_columns(opts.by);
    if !write_rows(format, each, columns, |r| vec![r.clone()], &mut out)? {
        // Columns as wide as their widest cell: every row is measured
        // before the first is printed. A short report's rows are kept from
        // that pass; a longer one is read a second time instead.
        let mut text = report::ReportText::new(&opts);
        let mut kept = Some(Vec::new());
        each(&mut |r| {
            text.measure(r);
            match &mut kept {
                Some(rows) if rows.len() < TEXT_ROWS_KEPT => rows.push(r.clone()),
                _ => kept = None,
            }
            Ok(())
        })?;
        out.write_all(text.head().as_bytes())?;
        let mut print = |r: &ReportRow| Ok(out.write_all(text.line(r).as_bytes())?);
        match kept {
            Some(rows) => rows.iter().try_for_each(&mut print)?,
            None => each(&mut print)?,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn agents(cli: &Cli, args: &AgentsArgs) -> Result<ExitCode> {
    let format = cli.format_of(args.out.format, "agents")?;
    let (from, to) = args.range.resolve(cli)?;
    let p = up_to_date_for(cli, args.tenant.tenant.as_deref())?;
    let states = p.tenant_agents_time(from, to, args.tenant.tenant.as_deref())?;
    let mut out = BufWriter::new(crate::output::stdout());
    if !write_rows(
        format,
        |write| states.iter().try_for_each(write),
        &AGENT_STATE_COLUMNS,
        |a| a.rows(),
        &mut out,
    )? {
        let names = args.state_names.clone().unwrap_or_default();
        agents::write_text(&states, &names, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses projections another process holds, naming who may: a command
/// updating them, or a server, which holds them for as long as it runs.
fn refuse_held(p: &Projections) -> Result<()> {
    if p.access() != Access::Writable {
        bail!(
            "{} is in use by another process: a command updating it (try again when it finishes), or a running `serve` or `ingest --serve`, which holds it while it runs (stop it first)",
            p.path().display()
        );
    }
    Ok(())
}

/// Refuses, before anything is changed, a `reindex` whose projections
/// another process holds: it would replace the index and then fail to
/// rebuild them through it (an outside audit met it with `serve` running).
pub fn refuse_held_projections(cli: &Cli) -> Result<()> {
    if !ccvault_store::Layout::new(&cli.data_dir)
        .projections_path()
        .exists()
    {
        return Ok(());
    }
    // One that does not open is rebuilt by the reindex, as before.
    match Projections::open(&cli.data_dir) {
        Ok(p) => refuse_held(&p),
        Err(_) => Ok(()),
    }
}

/// `rebuild` / `replay`: everything from the log, with progress.
/// Recomputes the projections of the archive from the log (a new file
/// renamed over the old one), with a progress bar on a terminal.
pub fn rebuild_projections(cli: &Cli) -> Result<Applied> {
    let mut reader = open_reader(cli)?;
    let mut p = Projections::open_for_rebuild(&cli.data_dir)
        .with_context(|| format!("cannot open the projections of {}", cli.data_dir.display()))?;
    refuse_held(&p)?;
    let bar = progress_bar(reader.visible_end(), "rebuild");
    let applied = p.rebuild(&mut reader, Default::default(), &mut on_progress(&bar))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(applied)
}

pub fn rebuild(cli: &Cli, format: HumanJson) -> Result<ExitCode> {
    let applied = rebuild_projections(cli)?;
    let secs = applied.elapsed.as_secs_f64();
    match format {
        HumanJson::Json => json_line(
            &mut crate::output::stdout(),
            &json!({
                "records": applied.records, "interactions": applied.interactions,
                "agentChanges": applied.agent_changes, "deferred": applied.deferred,
                "rescans": applied.rescans,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "eventsPerSec": applied.records_per_sec().round(),
                "peakRssKiB": crate::output::peak_rss_kib(),
            }),
        )?,
        HumanJson::Human => {
            status!(
                "rebuilt projections from {} records in {secs:.2}s ({:.0} events/s): {} interactions, {} agent status changes",
                applied.records,
                applied.records_per_sec(),
                applied.interactions,
                applied.agent_changes
            );
            if applied.deferred > 0 {
                status!(
                    "{} interactions were spread too far through the log to hold at once and were recomputed apart ({} more scans of the log)",
                    applied.deferred,
                    applied.rescans
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
