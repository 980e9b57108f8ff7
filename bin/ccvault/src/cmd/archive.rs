//! The archive commands: import, show, stats, verify, reindex, quarantine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ccvault_store::FsyncPolicy;

use crate::output::IndexingGauge;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccvault_projections::materialize::Checked;
use ccvault_projections::timefmt::zone_for_display;
use ccvault_projections::{for_terminal, record_input, summarize, Projections, RebuildOptions};
use ccvault_store::{
    open_input_file, open_stdin, Archive, ArchiveOptions, ArchiveReader, DirectRead, Import,
    InputFormat, Layout, OpenReport, SourceKind,
};
use serde_json::json;

use crate::cmd::projections::{check_tenant, no_such_tenant, up_to_date};
use crate::output::{format_ms, json_line, path_text, HumanJson};
use crate::{status, Cli, TimeRange, WriteArgs};

pub fn archive_options(w: &WriteArgs) -> ArchiveOptions {
    ArchiveOptions {
        segment_bytes: w.segment_bytes,
        fsync: w.fsync,
        max_record_bytes: w.max_record_bytes,
        compression: if w.no_compress {
            None
        } else {
            ArchiveOptions::default().compression
        },
        lock_wait: ccvault_store::LOCK_GRACE,
        ..ArchiveOptions::default()
    }
}

/// Opens the archive for writing and reports what recovery did.
pub fn open_writer(cli: &Cli, options: ArchiveOptions) -> Result<Archive> {
    let gauge = IndexingGauge::start();
    let (archive, report) = Archive::open(&cli.data_dir, options)
        .with_context(|| format!("cannot open archive {}", cli.data_dir.display()))?;
    drop(gauge);
    report_open(cli, &report);
    Ok(archive)
}

/// Says on stderr what opening the archive recovered or indexed.
fn report_open(cli: &Cli, report: &OpenReport) {
    if report.truncated_bytes > 0 || report.damaged_records > 0 || report.index_rebuilt {
        // Only what recovery did: "a torn tail of 0 bytes" was noise (an
        // outside audit).
        let mut did = Vec::new();
        if report.truncated_bytes > 0 {
            did.push(format!(
                "truncated a torn tail of {} bytes",
                report.truncated_bytes
            ));
        }
        if report.damaged_records > 0 {
            did.push(format!(
                "{} damaged records kept aside",
                report.damaged_records
            ));
        }
        did.push(format!(
            "index {}",
            if report.index_rebuilt {
                "rebuilt"
            } else {
                "intact"
            }
        ));
        status!(
            "recovered archive {}: {}",
            cli.data_dir.display(),
            did.join(", ")
        );
    }
    if report.reindexed_tail > 0 {
        status!(
            "indexed {} records past the index checkpoint",
            report.reindexed_tail
        );
    }
    for header in &report.rewritten_headers {
        let (name, what) = (header.file_name(), header.what);
        if header.compressed {
            status!("wrote the header and block index of {name} again from its blocks ({what}): its records are unchanged");
        } else {
            status!("wrote the header of {name} again from its first record ({what}): its records are unchanged");
        }
    }
}

pub fn open_reader(cli: &Cli) -> Result<ArchiveReader> {
    let reader = opened(cli, ArchiveReader::open)?;
    note_unindexed(&reader);
    Ok(reader)
}

/// [`open_reader`] for a command that makes a lookup or two and exits
/// (`ArchiveReader::open_brief`).
fn open_reader_brief(cli: &Cli) -> Result<ArchiveReader> {
    let reader = opened(cli, ArchiveReader::open_brief)?;
    note_unindexed(&reader);
    Ok(reader)
}

/// The archive opened by `open`, drawing progress while it indexes, with
/// the index's damage warned of.
fn opened(
    cli: &Cli,
    open: fn(&std::path::Path) -> ccvault_store::Result<ArchiveReader>,
) -> Result<ArchiveReader> {
    let gauge = IndexingGauge::start();
    let reader = open(&cli.data_dir)
        .with_context(|| format!("cannot read archive {}", cli.data_dir.display()))?;
    drop(gauge);
    warn_index_damage(&reader);
    Ok(reader)
}

/// Says on stderr, once a process and unless `-q` (the warnings above it
/// say why), that the log holds records the reader does not see because
/// they are not indexed yet. `stats` says it in its output instead.
fn note_unindexed(reader: &ArchiveReader) {
    static NOTED: std::sync::Once = std::sync::Once::new();
    let Some(first) = reader.unindexed_from() else {
        return;
    };
    NOTED.call_once(|| {
        if reader.writer_running() {
            crate::status!(
                "ccvault: note: the writer running now has not committed the log's records from offset {first} on to the index yet, so what follows ends before them (it commits as it goes; after an upgrade or a lost index.redb it first rebuilds the whole index)"
            );
        } else {
            crate::status!(
                "ccvault: note: the log's records from offset {first} on are not indexed, and indexing them here failed (warned above), so what follows ends before them"
            );
        }
    });
}

/// Says on stderr, once a process (even with `-q`: what follows may be
/// incomplete), that the index was built around damaged places of the log.
fn warn_index_damage(reader: &ArchiveReader) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let notes: Vec<String> = [reader.index_damage_note(), reader.missing_segments_note()]
        .into_iter()
        .flatten()
        .collect();
    if !notes.is_empty() {
        WARNED.call_once(|| {
            for note in &notes {
                crate::output::error_line(format_args!("ccvault: warning: {note}"));
            }
        });
    }
}

pub fn import(
    cli: &Cli,
    files: &[PathBuf],
    input_format: InputFormat,
    direct_read: DirectRead,
    write: &WriteArgs,
    print_acks: bool,
    format: HumanJson,
) -> Result<ExitCode> {
    let stdin_only = files.is_empty() || files.iter().all(|f| f.as_os_str() == "-");
    let sources: Vec<Option<&PathBuf>> = if stdin_only {
        vec![None]
    } else {
        files
            .iter()
            .map(|f| (f.as_os_str() != "-").then_some(f))
            .collect()
    };
    // Fail on a missing or unreadable file before touching (or creating)
    // the archive. Each is opened again when its turn comes, so that more
    // files than the descriptor limit can be named (`captures/*.ndjson`);
    // a FIFO or a device is only looked at: opening a FIFO waits for its
    // writer, and closing it would end that writer's stream.
    // Installed first: a signal while many inputs are checked is a stop
    // like any other.
    let interrupt = crate::interrupt::Interrupt::install()?;
    let own = Layout::new(&cli.data_dir).own_files();
    let not_own = |name: &str, meta: &std::fs::Metadata| -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        if own.contains(&(meta.dev(), meta.ino())) {
            anyhow::bail!(
                "cannot import {name}: it is a file of the archive {} itself",
                cli.data_dir.display()
            );
        }
        Ok(())
    };
    if sources.contains(&None) {
        if let Ok(meta) = std::fs::metadata("/dev/stdin") {
            not_own("-", &meta)?;
        }
    }
    for path in sources.iter().flatten() {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot open {}", path_text(path)))?;
        if meta.is_dir() {
            anyhow::bail!("cannot import {}: it is a directory", path_text(path));
        }
        not_own(&path_text(path), &meta)?;
        if meta.is_file() {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path_text(path)))?;
            // Another compression than gzip, a tar archive, or UTF-16
            // text, also inside gzip, is refused before anything is
            // archived, not once the inputs before it are (the error then
            // could say nothing of them).
            if let Some(why) = ccvault_store::refused_file(file, &path_text(path)) {
                anyhow::bail!(why);
            }
        }
    }
    if let Some((signal, code)) = interrupt.received() {
        say_stopped(signal);
        return Ok(ExitCode::from(code));
    }
    let mut freed_memory = crate::FreedMemory::hold();
    let mut archive = open_writer(cli, archive_options(write))?;
    // After the open: its compressor and flusher keep this priority.
    crate::yield_to_log_threads();
    let started = Instant::now();
    let show_progress = crate::output::show_progress() && !print_acks;
    // What the last durable batch left durable: said with an error that
    // stops the import part-way (a full disk, the file size limit).
    let durable: std::cell::RefCell<Option<DurableSoFar>> = Default::default();
    // Says what each batch that became durable holds (the batches of an
    // earlier file may become durable while a later one is read).
    let mut on_durable = |p: &ccvault_store::Progress, bar: Option<&indicatif::ProgressBar>| {
        freed_memory.check(crate::output::rss_kib);
        p.landed.rejected.iter().for_each(say_rejected);
        // An input rejected before its first line has nothing durable.
        if print_acks && p.durable_through_line > 0 {
            let mut out = crate::output::stdout();
            let _ = writeln!(out, "durable {} {}", p.source, p.durable_through_line);
            let _ = out.flush();
        }
        if let Some(bar) = bar {
            bar.set_message(format!("{} lines", p.summary.lines));
        }
        *durable.borrow_mut() = Some(DurableSoFar {
            source: p.source.to_owned(),
            through_line: p.durable_through_line,
            lines: p.summary.lines,
            archived: p.summary.archived,
            quarantined: p.summary.quarantined,
            duplicates: p.summary.duplicates,
        });
    };
    let run = || -> Result<(ccvault_store::ImportSummary, bool, bool)> {
        let mut import = Import::new(&mut archive);
        import.stop_on(interrupt.flag());
        let mut inputs_left = false;
        for source in sources {
            if import.stopped() {
                inputs_left = true;
                break;
            }
            let (name, kind, input) = match source {
                Some(path) => {
                    let name = path_text(path);
                    let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
                    if !regular {
                        // Opening a FIFO waits for its writer: what came before
                        // is made durable (and acknowledged) first.
                        import.make_durable(&mut |p| on_durable(p, None))?;
                    }
                    let opened = if regular {
                        std::fs::File::open(path)
                    } else {
                        let Some(opened) = open_unless(path, || import.stopped()) else {
                            inputs_left = true;
                            break;
                        };
                        opened
                    };
                    // Named by its path, it may have been replaced since it was
                    // checked: the file opened is checked again.
                    let opened = opened.and_then(|file| {
                        let meta = file.metadata()?;
                        not_own(&name, &meta).map_err(std::io::Error::other)?;
                        Ok(file)
                    });
                    let file = match opened {
                        Ok(file) => file,
                        // Gone or changed since it was checked: the others go on.
                        Err(e) => {
                            let r = ccvault_store::Rejected {
                                source: name,
                                line: 1,
                                reason: format!("cannot open it: {e}"),
                            };
                            say_rejected(&r);
                            import.reject(r);
                            continue;
                        }
                    };
                    let input = open_input_file(path, file, direct_read);
                    tracing::debug!(file = %name, direct = input.direct, "reading input");
                    (name, SourceKind::File, input)
                }
                None => {
                    // Someone who forgot the file name would otherwise face a
                    // silent wait (ripgrep says the same).
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        status!("ccvault: reading events from the terminal (stdin): end with Ctrl-D, or name a file to import");
                    }
                    (
                        "-".into(),
                        SourceKind::Stdin,
                        open_stdin().context("cannot read stdin")?,
                    )
                }
            };
            // A FIFO's or a device's length says nothing of what it will give:
            // no total (its bar was full from the start).
            let size = source
                .and_then(|p| std::fs::metadata(p).ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len());
            let bar = show_progress.then(|| progress_bar(size, &name));
            import.stream(
                input.reader,
                input.pause,
                kind,
                &name,
                input_format,
                write.max_record_bytes,
                &mut |p| {
                    let bar = bar.as_ref().filter(|_| p.source == name);
                    if let Some(bar) = bar {
                        bar.set_position(p.input_bytes);
                    }
                    on_durable(p, bar)
                },
            )?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        }
        let import_cut_short = import.cut_short();
        let total = import.finish(&mut |p| on_durable(p, None))?;
        Ok((total, inputs_left, import_cut_short))
    };
    let (total, inputs_left, import_cut_short) = match run() {
        Ok(done) => done,
        Err(e) if crate::output::is_broken_pipe(&e) => return Err(e),
        Err(e) => {
            crate::output::say_error(&e);
            say_durable_before_error(durable.borrow().as_ref(), write.fsync);
            return Ok(ExitCode::from(crate::output::exit_code_of(&e)));
        }
    };
    // A signal that came once every input was read changed nothing.
    let interrupted = (inputs_left || import_cut_short)
        .then(|| interrupt.received())
        .flatten();
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        total.lines as f64 / secs
    } else {
        0.0
    };
    // Said before the archive closes: everything counted is durable now,
    // and a signal while the log is compressed then ends the process at
    // once (it loses nothing: what is not compressed yet stays `.seg`).
    let said = match format {
        HumanJson::Json => json_line(
            &mut crate::output::stdout(),
            &json!({
                "lines": total.lines, "archived": total.archived, "quarantined": total.quarantined,
                "duplicates": total.duplicates, "control": total.control,
                "rejected": total.rejected.len(),
                "seconds": (secs * 1000.0).round() / 1000.0,
                "peakRssKiB": crate::output::peak_rss_kib(),
                "interrupted": interrupted.map(|(signal, _)| signal),
                // What the human summary's "all durable" says: false under
                // --fsync never (written, not synced).
                "durable": write.fsync != FsyncPolicy::Never,
            }),
        ),
        HumanJson::Human => {
            status!(
            "imported {} lines in {secs:.2}s ({rate:.0} lines/s): {} archived, {} quarantined, {} duplicates, {} control, {} rejected; {}",
            total.lines,
            total.archived,
            total.quarantined,
            total.duplicates,
            total.control,
            total.rejected.len(),
            kept_as(write.fsync)
            );
            Ok(())
        }
    };
    if interrupt.received().is_some() {
        // Asked to stop: the log is left to the next writer to compress.
        archive.close()?;
    } else {
        interrupt.end_at_once();
        archive.close_compressed()?;
    }
    if let Some((signal, code)) = interrupted {
        // Even when the summary could not be written (an acknowledgement
        // reader the same Ctrl-C ended), the stop is said and exits so.
        say_stopped(signal);
        return Ok(ExitCode::from(code));
    }
    // Everything was read and is durable: a reader of the summary that
    // went away (`import --format json … | true`) does not make rejected
    // lines a success.
    match said {
        Err(e) if !crate::output::is_broken_pipe(&e) => return Err(e),
        _ => {}
    }
    Ok(if total.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// What an import had made durable when it last reported.
struct DurableSoFar {
    source: String,
    through_line: u64,
    lines: u64,
    archived: u64,
    quarantined: u64,
    duplicates: u64,
}

/// Says, even with -q, after the error that stopped an import part-way,
/// what it knew to be durable: the operator knows what the archive holds
/// at least, and how to go on. Batches appended after the last one
/// reported may be durable too (their sync was under way): a lower bound.
fn say_durable_before_error(durable: Option<&DurableSoFar>, fsync: FsyncPolicy) {
    // Unsynced, they are written to the page cache: a power cut may lose
    // them, as it may what the summary of such an import counts.
    let durable_word = if fsync == FsyncPolicy::Never {
        "written (not synced: --fsync never)"
    } else {
        "durable"
    };
    let held = match durable {
        None => format!("no line was known to be {durable_word} yet"),
        Some(d) => format!(
            "at least {} lines were {durable_word} (through line {} of {}: {} archived, {} quarantined, {} duplicates)",
            d.lines, d.through_line, d.source, d.archived, d.quarantined, d.duplicates
        ),
    };
    crate::output::error_line(format_args!(
        "ccvault: before the error, {held}; import the same inputs again to go on (what is archived already counts as duplicates)"
    ));
}

/// What an import's summary says of the lines it counted.
fn kept_as(fsync: FsyncPolicy) -> &'static str {
    match fsync {
        FsyncPolicy::Never => "all written, not synced (--fsync never: a power cut may lose them)",
        _ => "all durable",
    }
}

/// Says, even with -q, that an import stopped before its inputs ended.
fn say_stopped(signal: &str) {
    crate::output::error_line(format_args!(
        "ccvault: import stopped by {signal} before its inputs ended; what it counted is durable: import the same inputs again to go on (what is archived already counts as duplicates)"
    ));
}

/// Opens `path`, unless `stop` turns true first: opening a FIFO waits for
/// its writer, in a call a signal does not end (it is restarted), so it
/// runs on a thread of its own, left to the process's end if a stop comes.
fn open_unless(path: &Path, stop: impl Fn() -> bool) -> Option<std::io::Result<std::fs::File>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_owned();
    if std::thread::Builder::new()
        .name("import-open".into())
        .spawn(move || {
            let _ = tx.send(std::fs::File::open(owned));
        })
        .is_err()
    {
        return Some(std::fs::File::open(path));
    }
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(opened) => return Some(opened),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if stop() => return None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Some(Err(std::io::Error::other("the opening thread ended")))
            }
        }
    }
}

/// Says a rejection on stderr: an error (exit 3), printed even with -q.
fn say_rejected(r: &ccvault_store::Rejected) {
    crate::output::error_line(format_args!(
        "ccvault: error: {}:{}: rejected: {}",
        r.source, r.line, r.reason
    ));
}

fn progress_bar(size: Option<u64>, name: &str) -> indicatif::ProgressBar {
    let (bar, template) = match size {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ),
        // Of unknown length (stdin, a FIFO): what was read, and how fast.
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{prefix} {spinner} {bytes} {bytes_per_sec} {msg}",
        ),
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(name.to_owned());
    bar
}

/// Where a lookup that found no events of an interaction looked: `DIR`,
/// and, when the reader could not see the log's newest records (not
/// indexed yet, and a writer running, which indexes them itself), that
/// those were not searched: an interaction found nowhere is then not
/// known to be absent.
pub fn searched(reader: &ArchiveReader, dir: &Path) -> String {
    match reader.not_searched() {
        None => dir.display().to_string(),
        Some(unseen) => format!("{}, as far as it is indexed: {unseen}", dir.display()),
    }
}

/// Says on stderr (even with `-q`: what is shown is incomplete) which
/// records the lookups left out because their place in the log is damaged.
pub fn warn_damage_met(reader: &ArchiveReader) {
    if let Some(note) = reader.damage_note() {
        crate::output::error_line(format_args!("ccvault: warning: {note}"));
    }
}

/// `show GUID --raw`: the archived payloads byte-exact, one a line, in
/// canonical order (docs/METRICS.md §2).
pub fn show_raw(cli: &Cli, guid: &str, tenant: Option<&str>) -> Result<ExitCode> {
    let mut reader = open_reader_brief(cli)?;
    let records = reader.interaction_records(guid)?;
    warn_damage_met(&reader);
    if records.is_empty() {
        anyhow::bail!(
            "no events of interaction {guid:?} in {}",
            searched(&reader, &cli.data_dir)
        );
    }
    if let Some(tenant) = tenant {
        let inputs: Vec<_> = records
            .iter()
            .filter(|r| !r.quarantined)
            .map(record_input)
            .collect();
        let leg = summarize(&inputs).and_then(|s| s.tenant);
        check_tenant(guid, leg.as_deref(), tenant)?;
    }
    let mut out = crate::output::stdout();
    super::contact::write_raw(&records, &mut out, false)?;
    Ok(ExitCode::SUCCESS)
}

pub fn stats(cli: &Cli, format: HumanJson) -> Result<ExitCode> {
    let reader = opened(cli, ArchiveReader::open_brief)?;
    let s = reader.stats()?;
    let c = &s.counters;
    let tz = cli.tz();
    let mut out = crate::output::stdout();
    match format {
        HumanJson::Json => json_line(
            &mut out,
            &json!({
                "records": c.records, "events": c.events, "quarantined": c.quarantined,
                "duplicates": c.duplicates, "control": c.control,
                "segments": s.segments, "bytes": s.bytes,
                "logBytes": s.log_bytes, "indexBytes": s.index_bytes,
                "projectionsBytes": s.projections_bytes,
                "interactions": c.interactions, "minTime": c.min_time_ms, "maxTime": c.max_time_ms,
                "untimed": c.untimed, "untimedMinTime": c.untimed_min_ms,
                "untimedMaxTime": c.untimed_max_ms,
                "unindexedFrom": reader.unindexed_from(),
                "damagedPlaces": c.damaged_places, "damagedBytes": c.damaged_bytes,
            }),
        )?,
        HumanJson::Human => {
            writeln!(out, "archive       {}", cli.data_dir.display())?;
            writeln!(out, "records       {}", c.records)?;
            writeln!(out, "  events      {}", c.events)?;
            writeln!(out, "  quarantined {}", c.quarantined)?;
            writeln!(out, "duplicates    {} (messages skipped)", c.duplicates)?;
            writeln!(
                out,
                "control       {} (transport messages, not archived)",
                c.control
            )?;
            writeln!(out, "interactions  {}", c.interactions)?;
            writeln!(out, "segments      {}", s.segments)?;
            writeln!(
                out,
                "bytes         {} (log {}, index {}, projections {})",
                s.bytes, s.log_bytes, s.index_bytes, s.projections_bytes
            )?;
            if let (Some(a), Some(b)) = (c.min_time_ms, c.max_time_ms) {
                writeln!(
                    out,
                    "time range    {} .. {}",
                    format_ms(a, &tz),
                    format_ms(b, &tz)
                )?;
            }
            // Weak times order events but never stretch the range above.
            if let (Some(a), Some(b)) = (c.untimed_min_ms, c.untimed_max_ms) {
                writeln!(
                    out,
                    "untimed       {} records (eventTS or import time only) {} .. {}",
                    c.untimed,
                    format_ms(a, &tz),
                    format_ms(b, &tz)
                )?;
            }
            if c.damaged_places > 0 {
                writeln!(
                    out,
                    "damaged       {} places of the log ({} bytes) skipped by indexing: their records, if any, are not counted above",
                    c.damaged_places, c.damaged_bytes
                )?;
            }
            if let Some(first) = reader.unindexed_from() {
                let why = if reader.writer_running() {
                    "a writer is running and has not indexed them yet (after an upgrade or a lost index.redb it rebuilds the whole index first)"
                } else {
                    "indexing them failed here (a full or read-only disk: see the warning above); the next command that can write indexes them"
                };
                writeln!(
                    out,
                    "unindexed     the log's records from offset {first} on, not counted above: {why}"
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stats --by-tenant` / `--tenant T`: one line per tenant from the
/// projections' tenant index (brought up to date first, like `report`).
pub fn tenant_stats(cli: &Cli, only: Option<&str>, format: HumanJson) -> Result<ExitCode> {
    let p = up_to_date(cli)?;
    let tenants = p.tenant_stats(only)?;
    if let Some(note) = only
        .map(|t| no_such_tenant(&p, t, cli))
        .transpose()?
        .flatten()
    {
        anyhow::bail!(note);
    }
    let tz = cli.tz();
    let mut out = crate::output::stdout();
    match format {
        HumanJson::Json => {
            for t in &tenants {
                json_line(&mut out, t)?;
            }
        }
        HumanJson::Human => {
            let text = ccvault_projections::tenant::render_text(&tenants, zone_for_display(&tz));
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(cli: &Cli, no_projections: bool, format: HumanJson) -> Result<ExitCode> {
    let gauge = IndexingGauge::start();
    let report = ccvault_store::verify(&cli.data_dir)
        .with_context(|| format!("cannot verify {}", cli.data_dir.display()))?;
    drop(gauge);
    let projections = if no_projections {
        Checked::NotChecked("--no-projections".to_owned())
    } else {
        let gauge = IndexingGauge::start();
        let opened = ArchiveReader::open(&cli.data_dir);
        drop(gauge);
        match opened {
            // No index to recompute them through; the index check says why.
            Err(e) if !report.index_problems.is_empty() => {
                Checked::NotChecked(format!("there is no index to recompute them through ({e})"))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot verify {}", cli.data_dir.display())))
            }
            Ok(mut reader) => {
                let mut checked =
                    Projections::check(&cli.data_dir, &mut reader, RebuildOptions::default());
                // Caught up by another process (`serve`) past the index
                // commit this reader sees: once more with a reader of the
                // commit they were caught up to.
                if let Ok(Checked::Ahead { .. }) = checked {
                    if let Ok(mut newer) = ArchiveReader::open(&cli.data_dir) {
                        checked = Projections::check(
                            &cli.data_dir,
                            &mut newer,
                            RebuildOptions::default(),
                        );
                    }
                }
                match checked {
                    Ok(checked) => checked,
                    // The recompute reads the index: one the index check
                    // found damaged is reported there, and the projections
                    // go unchecked.
                    Err(e) if !report.index_problems.is_empty() => {
                        Checked::NotChecked(format!("the recompute could not read the index ({e})"))
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "cannot check the projections of {}",
                            cli.data_dir.display()
                        )))
                    }
                }
            }
        }
    };
    let projection_problems: Vec<String> = match &projections {
        Checked::Compared { problems, .. } => problems.clone(),
        Checked::Unreadable(why) | Checked::NotOfThisLog(why) => vec![why.clone()],
        Checked::IndexIncomplete(_) => Vec::new(),
        Checked::NotBuilt
        | Checked::OtherVersion(_)
        | Checked::Superseded { .. }
        | Checked::Ahead { .. }
        | Checked::NotChecked(_) => Vec::new(),
    };
    if let (Checked::NotChecked(why), false) = (&projections, no_projections) {
        status!("ccvault: warning: the projections were not checked: {why}");
    }
    // The recompute found what the index check did not: the index's.
    let mut index_problems = report.index_problems.clone();
    if let Checked::IndexIncomplete(why) = &projections {
        index_problems.push(why.clone());
    }
    // What became of the projections, in the summary line's words.
    let projections_said = match &projections {
        Checked::Compared { consumed, .. } => format!(
            "{} projections problems (recomputed below log offset {consumed})",
            projection_problems.len()
        ),
        Checked::Unreadable(_) => "projections unreadable".to_owned(),
        Checked::NotOfThisLog(_) => "projections not of this log".to_owned(),
        Checked::NotBuilt => "no projections yet".to_owned(),
        Checked::NotChecked(_) | Checked::IndexIncomplete(_) => {
            "projections not checked".to_owned()
        }
        Checked::OtherVersion(v) => format!(
            "projections of version {} (rebuilt by the next read)",
            v.map_or("none".to_owned(), |v| v.to_string())
        ),
        Checked::Ahead { consumed } => format!(
            "projections not checked (another process caught them up to offset {consumed} while this check read an older index commit, twice; run verify again)"
        ),
        Checked::Superseded { consumed } => format!(
            "projections made from records below offset {consumed} of which the log has since lost some (rebuilt by the next read)"
        ),
    };
    let clean = report.is_clean() && projections.is_clean();
    let verdict = if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    // The exit code is the answer: a reader that stopped reading
    // (`verify | head -1`) must not turn damage into a success.
    let written = (|| -> Result<()> {
        let mut out = crate::output::stdout();
        match format {
            HumanJson::Json => {
                let damage: Vec<_> = report
                    .damage
                    .iter()
                    .map(|d| {
                        json!({"segment": d.file_name(), "segmentBase": d.segment, "pos": d.pos,
                           "bytesSkipped": d.len_skipped, "reason": d.reason.to_string()})
                    })
                    .collect();
                let problems = |list: &[String]| -> Vec<_> {
                    list.iter().map(|p| json!({"problem": p})).collect()
                };
                let projections_through = match &projections {
                    Checked::Compared { consumed, .. } => json!(consumed),
                    _ => json!(null),
                };
                json_line(
                    &mut out,
                    &json!({"clean": clean, "segments": report.segments, "records": report.records,
                        "tallies": report.tallies,
                        "damage": damage, "indexProblems": problems(&index_problems),
                        "notes": report.notes,
                        "factsChecked": report.facts_checked,
                        "factsProblems": problems(&report.facts_problems),
                        "projectionsThrough": projections_through,
                        "projections": projections_said,
                        "projectionsProblems": problems(&projection_problems)}),
                )?
            }
            HumanJson::Human => {
                for n in &report.notes {
                    writeln!(out, "NOTE   {n}")?;
                }
                for d in &report.damage {
                    writeln!(out, "DAMAGE {d}")?;
                }
                for p in &index_problems {
                    writeln!(out, "INDEX  {p}")?;
                }
                for p in &report.facts_problems {
                    writeln!(out, "FACTS  {p}")?;
                }
                for p in &projection_problems {
                    writeln!(out, "PROJ   {p}")?;
                }
                writeln!(
                out,
                "{}: {} segments, {} readable records, {} damaged places, {} index problems, {} facts problems, {}",
                if clean { "clean" } else { "NOT CLEAN" },
                report.segments,
                report.records,
                report.damage.len(),
                index_problems.len(),
                report.facts_problems.len(),
                projections_said,
            )?;
            }
        }
        Ok(())
    })();
    match written {
        Err(e) if !crate::output::is_broken_pipe(&e) => Err(e),
        _ => Ok(verdict),
    }
}

pub fn reindex(cli: &Cli, format: HumanJson) -> Result<ExitCode> {
    // Rebuilding the index of nothing would make an empty archive wherever
    // a mistyped --data-dir points, and report success.
    ccvault_store::require_archive(&cli.data_dir)
        .with_context(|| format!("cannot reindex archive {}", cli.data_dir.display()))?;
    crate::cmd::projections::refuse_held_projections(cli)?;
    let started = Instant::now();
    let options = ArchiveOptions {
        lock_wait: ccvault_store::LOCK_GRACE,
        ..ArchiveOptions::default()
    };
    let gauge = IndexingGauge::start();
    let (archive, report, n) = Archive::open_and_reindex(&cli.data_dir, options)
        .with_context(|| format!("cannot reindex archive {}", cli.data_dir.display()))?;
    drop(gauge);
    report_open(cli, &report);
    archive.close()?;
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    // The projections were computed through the old index (the records of
    // each interaction are found by it): a damaged one gave them wrong
    // answers that a new index alone would not correct. Rebuilt through
    // the new one; none yet, the next read builds them.
    let projections = Layout::new(&cli.data_dir)
        .projections_path()
        .exists()
        .then(|| crate::cmd::projections::rebuild_projections(cli))
        .transpose()?;
    match format {
        HumanJson::Json => json_line(
            &mut crate::output::stdout(),
            &json!({"records": n, "seconds": (secs * 1000.0).round() / 1000.0,
                    "recordsPerSec": rate.round(),
                    "projectionsRebuilt": projections.is_some(),
                    "rewrittenHeaders": report.rewritten_headers.iter()
                        .map(|h| h.file_name()).collect::<Vec<_>>(),
                    "peakRssKiB": crate::output::peak_rss_kib()}),
        )?,
        HumanJson::Human => {
            status!("reindexed {n} records in {secs:.2}s ({rate:.0} records/s)");
            if let Some(p) = &projections {
                status!(
                    "rebuilt the projections through the new index: {} interactions in {:.2}s",
                    p.interactions,
                    p.elapsed.as_secs_f64()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `quarantine [--from T] [--to T]`: by arrival (ingest) time, since a
/// quarantined line has no event time.
pub fn quarantine(cli: &Cli, range: &TimeRange, format: HumanJson) -> Result<ExitCode> {
    let (from, to) = range.resolve(cli)?;
    let mut reader = open_reader(cli)?;
    let records = reader.quarantined()?;
    warn_damage_met(&reader);
    let tz = cli.tz();
    let mut out = std::io::BufWriter::new(crate::output::stdout());
    let mut listed = 0u64;
    for r in records
        .iter()
        .filter(|r| from.is_none_or(|f| r.ingest_ms >= f) && to.is_none_or(|t| r.ingest_ms < t))
    {
        listed += 1;
        match format {
            HumanJson::Json => {
                let mut line = json!({"offset": r.offset, "source": r.source, "line": r.line,
                        "reason": r.quarantine_reason, "ingestTime": r.ingest_ms,
                        "payload": String::from_utf8_lossy(&r.payload)});
                // JSON text holds no byte that is not UTF-8: `payload`
                // shows such a line readably (U+FFFD for each bad byte),
                // `payloadBase64` gives its bytes back exactly.
                if std::str::from_utf8(&r.payload).is_err() {
                    line["payloadBase64"] = json!(BASE64.encode(&r.payload));
                }
                // What traces a live feed's message back to its broker.
                if !r.message_id.is_empty() {
                    line["messageId"] = json!(r.message_id);
                }
                if !r.publish_time.is_empty() {
                    line["publishTime"] = json!(r.publish_time);
                }
                json_line(&mut out, &line)?
            }
            HumanJson::Human => {
                write!(
                    out,
                    "offset {}  {}:{}  {}  {}",
                    r.offset,
                    for_terminal(&r.source),
                    r.line,
                    format_ms(r.ingest_ms, &tz),
                    for_terminal(&r.quarantine_reason)
                )?;
                if !r.message_id.is_empty() {
                    write!(out, "  message {}", for_terminal(&r.message_id))?;
                }
                if !r.publish_time.is_empty() {
                    write!(out, "  published {}", for_terminal(&r.publish_time))?;
                }
                writeln!(out)?
            }
        }
    }
    if format == HumanJson::Human {
        writeln!(out, "{listed} quarantined messages")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
