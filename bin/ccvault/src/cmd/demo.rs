//! `ccvault demo`: the quick start. Simulates a day of a contact center,
//! archives it into a fresh directory, builds the projections, prints the
//! report and one interesting interaction, writes the HTML pictures (the
//! report, that interaction, and a customer's call transferred across legs),
//! and says what to try next. Everything here is glue over the library crates.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ccvault_projections::{timeline, Projections, ReportOptions};
use ccvault_sim::{SimConfig, Truth};
use ccvault_store::{import_stream, Archive, ArchiveOptions, ArchiveReader, SourceKind};

use crate::cmd::contact;
use crate::output::{json_line, path_text, write_private, HumanJson};
use crate::Cli;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Simulator seed (the same seed gives the same day).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Agents on shift, 1 to 1000: the demo holds its day in memory (about
    /// 0.8 MB an agent; 100,000 took every byte of a 24 GB machine), where
    /// `simulate --out FILE` and `import FILE` take any size.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub agents: u32,
    /// Where to create the demo archive (must not exist); without it the
    /// `--data-dir` typed on the command line, else `./ccvault-demo-<UTC time>`.
    #[arg(long)]
    pub into: Option<PathBuf>,
    /// Output format: the guided text, or one JSON object with the counts, paths and the commands to try next.
    #[arg(long, value_enum)]
    pub format: Option<HumanJson>,
}

/// `path` as one shell word (quoted only when it needs to be), so a
/// printed command works when pasted.
fn shell_word(path: &std::path::Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:+@%,=".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The commands the demo suggests, each one that works as printed from
/// the directory the demo ran in; `contact_leg` is a leg of a contact of
/// several legs, when the day has one.
pub fn try_next(dir: &std::path::Path, guid: &str, contact_leg: Option<&str>) -> Vec<String> {
    // A name that starts with `-` would be read as an option after a
    // space (an outside audit ran `demo --into=-dash`).
    let word = shell_word(dir);
    let d = if word.starts_with('-') {
        format!("={word}")
    } else {
        format!(" {word}")
    };
    let mut lines = vec![
        format!("ccvault --data-dir{d} stats"),
        format!("ccvault --data-dir{d} show {guid}"),
        format!("ccvault --data-dir{d} show {guid} --raw"),
    ];
    if let Some(leg) = contact_leg {
        lines.push(format!("ccvault --data-dir{d} show {leg}"));
    }
    lines.extend([
        format!("ccvault --data-dir{d} report --interval 15m --by queue --tz Europe/London --sla 30s"),
        format!("ccvault --data-dir{d} interactions --outcome abandoned --format json | head -3"),
        format!("ccvault --data-dir{d} agents --format csv"),
        format!("ccvault --data-dir{d} quarantine"),
        format!("ccvault --data-dir{d} verify"),
        "ccvault simulate --interactions 200 --seed 1 > sample.ndjson && ccvault import sample.ndjson".to_string(),
    ]);
    lines
}

/// How much an answered interaction shows off: rejected offers and holds.
fn interest(t: &Truth) -> i64 {
    if t.outcome != "answered" || t.wrap_ms.is_none() {
        return -1;
    }
    t.reject_count.min(2) * 10 + t.hold_count.min(2) * 5 + t.offer_count
}

/// Creates the directory `base`, or `base-2`, `base-3`, … when it is taken:
/// two demos started in the same second (the name's resolution) each get
/// one of their own, claimed by its creation, so two at once cannot share it.
fn fresh_dir(base: &str) -> Result<PathBuf> {
    for n in 1u32.. {
        let dir = PathBuf::from(match n {
            1 => base.to_owned(),
            n => format!("{base}-{n}"),
        });
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create directory {}", dir.display()))
            }
        }
    }
    bail!("no free name for the demo's directory beside {base}")
}

pub fn demo(cli: &Cli, args: &DemoArgs) -> Result<ExitCode> {
    let format = cli.format_of(args.format, "demo")?;
    let human = format == HumanJson::Human;
    let started = Instant::now();
    // `ccvault --data-dir X demo` archives into X, as every other command
    // would read X; --into, the demo's own flag, wins over it, and the
    // default and CCVAULT_DATA give a fresh directory.
    let into = match (&args.into, cli.data_dir_typed) {
        (None, true) => Some(&cli.data_dir),
        (into, _) => into.as_ref(),
    };
    let dir = match into {
        Some(d) if d.exists() => bail!(
            "{} already exists; the demo archives into a fresh directory (name another, or leave --into and --data-dir out)",
            d.display()
        ),
        Some(d) => d.clone(),
        None => fresh_dir(&format!(
            "ccvault-demo-{}",
            jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S")
        ))?,
    };
    // A demo stopped (SIGINT, SIGTERM) or failed half-way leaves nothing
    // behind: the directory is its own (it did not exist), and a partial
    // archive there was litter that also refused the next `demo --into`
    // of the same name. A second signal ends the process at once.
    let interrupt = crate::interrupt::Interrupt::install()?;
    // The directories the archive's creation will make above its own, for
    // `--into p/q/demo`: removed with it (they were left until 2026-12-07).
    let parents_made: Vec<PathBuf> = dir
        .ancestors()
        .skip(1)
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    let made = build(cli, args, human, &dir, &interrupt, started);
    let stopped = interrupt.received();
    // Nothing to remove when it failed before making the directory (a
    // parent that is a file: there the removal's own error was said first,
    // about a directory it never made, until 2026-12-07).
    if (made.is_err() || (stopped.is_some() && !matches!(made, Ok(Some(_))))) && dir.is_dir() {
        match std::fs::remove_dir_all(&dir) {
            Err(e) => crate::output::error_line(format_args!(
                "ccvault: warning: cannot remove the unfinished demo directory {}: {e}",
                dir.display()
            )),
            // Only empty ones, deepest first: anything else there is not
            // the demo's.
            Ok(()) => parents_made.iter().for_each(|p| {
                let _ = std::fs::remove_dir(p);
            }),
        }
    }
    match made? {
        Some(code) => Ok(code),
        None => {
            let (signal, code) = stopped.unwrap_or(("a signal", 130));
            crate::output::error_line(format_args!(
                "ccvault: demo stopped by {signal}; its unfinished directory {} was removed",
                dir.display()
            ));
            Ok(ExitCode::from(code))
        }
    }
}

/// Standard output for a demo whose reader may leave early (`| head`,
/// `| less` quit): once a write finds the pipe closed, the rest of the
/// text goes nowhere and the demo finishes its archive and pictures, which
/// its first lines announced. Until 2026-12-07 the closed pipe failed the
/// demo, which then removed the archive it had just announced, and exited
/// 0 (an outside audit). Any other write error still fails it.
struct ReaderMayLeave<W> {
    inner: W,
    gone: bool,
}

impl<W: Write> ReaderMayLeave<W> {
    fn new(inner: W) -> Self {
        ReaderMayLeave { inner, gone: false }
    }

    /// `result`, or nothing once the reader has gone.
    fn unless_gone<T>(&mut self, result: std::io::Result<T>, none: T) -> std::io::Result<T> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(none)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for ReaderMayLeave<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf);
        self.unless_gone(written, buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.gone {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.unless_gone(flushed, ())
    }
}

/// The demo's steps into `dir`; `None` when a signal stopped it between
/// two of them.
fn build(
    cli: &Cli,
    args: &DemoArgs,
    human: bool,
    dir: &Path,
    interrupt: &crate::interrupt::Interrupt,
    started: Instant,
) -> Result<Option<ExitCode>> {
    let stopped = || interrupt.received().is_some();
    let mut out = ReaderMayLeave::new(crate::output::stdout());
    // With --format json the text goes nowhere and one object ends the run.
    let mut sink = std::io::sink();
    let text: &mut dyn Write = if human { &mut out } else { &mut sink };

    // 1. A simulated day, with every quirk of the real stream.
    let cfg = SimConfig {
        seed: args.seed,
        agents: args.agents,
        ..SimConfig::default()
    };
    let mut stream = Vec::new();
    let mut best: Option<(i64, String)> = None;
    // Legs after the first of their contact, `(legIndex, GUID, contactId)`,
    // and every leg: the contact pictured is the longest whose first leg is
    // in the stream too.
    let mut later_legs: Vec<(i64, String, String)> = Vec::new();
    let mut all_legs: HashSet<String> = HashSet::new();
    let sim = ccvault_sim::simulate_with_truth(&cfg, &mut stream, &mut |t| {
        all_legs.insert(t.interaction_guid.clone());
        if t.leg_index > 0 {
            later_legs.push((
                t.leg_index,
                t.interaction_guid.clone(),
                t.contact_id.clone(),
            ));
        }
        let score = interest(&t);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, t.interaction_guid));
        }
    })
    .context("simulating")?;
    writeln!(
        text,
        "Simulated one day of a contact center (seed {}, {} agents): {} lines, {} interactions,\n  with {} duplicates, {} Pulsar envelopes and {} malformed lines mixed in, as the real stream has.\n",
        args.seed, args.agents, sim.lines, sim.interactions, sim.duplicates, sim.envelopes, sim.malformed
    )?;

    if stopped() {
        return Ok(None);
    }
    // 2. Archive it.
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default())
        .with_context(|| format!("cannot create the demo archive {}", dir.display()))?;
    let summary = import_stream(
        &mut archive,
        std::io::Cursor::new(stream),
        SourceKind::Other,
        "simulated-day",
        ArchiveOptions::default().max_record_bytes,
        &mut |_| {},
    )?;
    archive.close()?;
    writeln!(
        text,
        "Archived into {}: {} events stored, {} duplicates skipped, {} malformed lines quarantined.\n",
        dir.display(),
        summary.archived,
        summary.duplicates,
        summary.quarantined
    )?;

    if stopped() {
        return Ok(None);
    }
    // 3. Projections and the report.
    let mut reader = ArchiveReader::open(dir)?;
    let mut projections = Projections::open(dir)?;
    projections.catch_up(&mut reader, &mut |_| {})?;
    let tz = cli.tz();
    let opts = ReportOptions {
        tz: tz.clone(),
        ..ReportOptions::default()
    };
    let rows = projections.report(opts.clone())?;
    writeln!(
        text,
        "The day by hour (all queues, {}, SLA 20 s):\n",
        tz.iana_name().unwrap_or("UTC")
    )?;
    writeln!(
        text,
        "{}",
        ccvault_projections::report::render_text(&rows, &opts)
    )?;
    let report_html = dir.join("report.html");
    write_private(
        &report_html,
        ccvault_html::render_report(&rows, &opts).as_bytes(),
    )?;

    if stopped() {
        return Ok(None);
    }
    // 4. One interesting interaction, event by event.
    let Some((_, guid)) = best else {
        bail!("the simulated day has no interactions");
    };
    // Placed in its contact by the projections, as `show` places it: its
    // own records alone make a transferred leg its own contact, leg 0.
    let legs = contact::read_legs(&mut reader, Some(&projections), &guid)?;
    let shown = contact::timelines(&legs);
    let Some(asked) = shown.iter().find(|leg| leg.asked) else {
        bail!("interaction {guid} has no events");
    };
    let (tl, inputs) = (&asked.timeline, &asked.inputs);
    writeln!(
        text,
        "An interaction with rejected offers and holds, as a support engineer sees it:\n"
    )?;
    let shown_tz = ccvault_projections::timefmt::zone_for_display(&tz);
    writeln!(text, "{}", timeline::render_text(tl, shown_tz))?;
    let timeline_html = dir.join("timeline.html");
    write_private(
        &timeline_html,
        ccvault_html::render_timeline(tl, inputs, &tz).as_bytes(),
    )?;

    // 5. A customer's call across legs, as `show` pictures it.
    let mut contact_html = None;
    let mut contact_leg = None;
    let deepest = later_legs
        .into_iter()
        .filter(|(_, _, contact)| all_legs.contains(contact))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
    if let Some((_, leg, _)) = deepest {
        let legs = contact::read_legs(&mut reader, Some(&projections), &leg)?;
        let shown = contact::timelines(&legs);
        if shown.len() > 1 {
            let views: Vec<_> = shown.iter().map(contact::ShownLeg::view).collect();
            let path = dir.join("contact.html");
            write_private(&path, ccvault_html::render_contact(&views, &tz).as_bytes())?;
            writeln!(
                text,
                "A customer's call that went through {} legs (each transfer or consultation makes a new leg); `show` of any leg prints them all.\n",
                shown.len()
            )?;
            contact_html = Some(path);
            contact_leg = Some(leg);
        }
    }

    if stopped() {
        return Ok(None);
    }
    // 6. What next.
    let next = try_next(dir, &guid, contact_leg.as_deref());
    let secs = started.elapsed().as_secs_f64();
    if human {
        let pictures = [
            Some(&report_html),
            Some(&timeline_html),
            contact_html.as_ref(),
        ];
        let pictures: Vec<String> = pictures
            .iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        writeln!(
            out,
            "Done in {secs:.1}s. Pictures: {}\n\nTry next:",
            pictures.join(", "),
        )?;
        for line in &next {
            writeln!(out, "  {line}")?;
        }
    } else {
        json_line(
            &mut out,
            &serde_json::json!({
                "dataDir": path_text(dir), "seed": args.seed, "agents": args.agents,
                "lines": sim.lines, "interactions": sim.interactions,
                "archived": summary.archived, "duplicates": summary.duplicates,
                "quarantined": summary.quarantined, "reportRows": rows.len(),
                "interactionGUID": guid, "reportHtml": path_text(&report_html),
                "timelineHtml": path_text(&timeline_html),
                "contactHtml": contact_html.as_deref().map(path_text), "contactLeg": contact_leg,
                "seconds": (secs * 1000.0).round() / 1000.0, "tryNext": next,
            }),
        )?;
    }
    out.flush()?;
    Ok(Some(ExitCode::SUCCESS))
}
