//! `export`: the archive's raw events or its interaction summaries as a
//! stream on stdout (NDJSON, CSV), or every table as Parquet partitions in a
//! directory (crates/export).
//!
//! Invariants:
//! - Raw events are written byte-exact in log order, one per line (a CR or
//!   LF inside a payload becomes a space: same JSON value); quarantined
//!   records are never exported; damaged places are skipped and counted on
//!   stderr.
//! - `--tenant` reads that tenant's records through the tenant index only.
//! - Parquet writes whole files under temporary names and renames them into
//!   place, so an interrupted export leaves no partial file visible.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ccvault_event::{event_time, ndjson_line, parse_event};
use ccvault_projections::{record_input, InteractionFilter};
use ccvault_store::ArchiveReader;

use crate::cmd::archive::open_reader;
use crate::cmd::projections::{up_to_date_for, write_interactions, TenantArg};
use crate::output::{self, Export, Table};
use crate::{status, Cli, TimeRange};

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportWhat {
    Events,
    Interactions,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// What to export: the raw events (byte-exact, log order; the default) or the interaction summaries (`--format parquet` writes both and the agent state spans).
    #[arg(long, value_enum)]
    pub what: Option<ExportWhat>,
    /// Only events whose event time (interactions: whose offeredAt) is in this range (not with parquet).
    #[command(flatten)]
    pub range: TimeRange,
    #[command(flatten)]
    pub tenant: TenantArg,
    /// Output format: JSON lines (`ndjson`, or `json`), CSV (interactions only), or Parquet tables in the directory --out (docs/SCALE.md).
    #[arg(long, value_enum)]
    pub format: Option<Export>,
    /// The directory of a Parquet export: `events`, `interactions` and `agent-states` as Hive partitions `<table>/tenant=<t>/date=<YYYY-MM-DD>/` (dates in --tz).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Parquet: continue the export in --out from its checkpoint, rewriting only the partitions that changed (a full export when there is none).
    #[arg(long)]
    pub since_last: bool,
    /// Parquet: uncompressed bytes of a row group (for tests; 128MiB by default).
    #[arg(long, hide = true, value_parser = crate::args::parse_size_usize)]
    pub row_group_size: Option<usize>,
}

pub fn export(cli: &Cli, args: &ExportArgs) -> Result<ExitCode> {
    let format = cli.format_of(args.format, "export")?;
    if format == Export::Parquet {
        return export_parquet(cli, args);
    }
    if args.out.is_some() || args.since_last {
        return Err(output::UsageError(
            "--out and --since-last are for --format parquet (the other formats write to stdout)"
                .into(),
        )
        .into());
    }
    let (from, to) = args.range.resolve(cli)?;
    let mut out = BufWriter::with_capacity(1 << 20, crate::output::stdout());
    match (args.what.unwrap_or(ExportWhat::Events), format) {
        (_, Export::Parquet) => return unreachable_parquet(),
        (ExportWhat::Events, Export::Csv) => {
            return Err(output::UsageError(
                "raw events export only as ndjson (their fields vary); use --what interactions for CSV".into(),
            )
            .into());
        }
        (ExportWhat::Events, Export::Ndjson) => match &args.tenant.tenant {
            None => {
                let reader = open_reader(cli)?;
                export_events(&reader, (from, to), &mut out)?;
            }
            Some(tenant) => {
                let p = up_to_date_for(cli, Some(tenant))?;
                let mut reader = open_reader(cli)?;
                p.tenant_records(&mut reader, tenant, |rec| {
                    write_event(rec, (from, to), &mut out)
                        .map_err(|source| export_write_error(source).into())
                })?;
                crate::cmd::archive::warn_damage_met(&reader);
            }
        },
        (ExportWhat::Interactions, _) => {
            let p = up_to_date_for(cli, args.tenant.tenant.as_deref())?;
            let filter = InteractionFilter {
                from,
                to,
                tenant: args.tenant.tenant.clone(),
                ..InteractionFilter::default()
            };
            let table = match format {
                Export::Ndjson => Table::Json,
                Export::Csv => Table::Csv,
                Export::Parquet => return unreachable_parquet(),
            };
            write_interactions(&p, &filter, table, &cli.tz(), &mut out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--format parquet` is handled before the stream formats.
fn unreachable_parquet() -> Result<ExitCode> {
    bail!("internal: parquet is not a stream format")
}

/// `export --format parquet --out DIR [--since-last]`: the three tables
/// (crates/export); what was written goes to stderr.
fn export_parquet(cli: &Cli, args: &ExportArgs) -> Result<ExitCode> {
    // `-` means stdout elsewhere; a directory of tables cannot go there.
    let Some(dir) = args.out.as_ref().filter(|d| d.as_os_str() != "-") else {
        let why = if args.out.is_some() {
            "--format parquet writes a directory of tables, which cannot go to stdout: give --out a directory, not -"
        } else {
            "--format parquet writes a directory of tables: give it with --out DIR"
        };
        return Err(output::UsageError(why.into()).into());
    };
    let filtered = args.range.from.is_some() || args.range.to.is_some();
    if args.what.is_some() || filtered {
        return Err(output::UsageError(
            "--format parquet exports every table, kept in step with the archive by --since-last (no --what, --from or --to); filter by time in the query engine (the date=YYYY-MM-DD partitions)".into(),
        )
        .into());
    }
    let started = std::time::Instant::now();
    // The writer threads free and allocate page and column-chunk buffers
    // all along; with the allocator's default they went back to the OS and
    // were faulted in (and zeroed) again (docs/BENCHMARKS.md, issue 14).
    // Held for the whole run: export is not checked against a size, as
    // import is (`FreedMemory::check`).
    crate::FreedMemory::hold();
    // The projections first: the log scan then sees at least the records they hold.
    let p = up_to_date_for(cli, args.tenant.tenant.as_deref())?;
    let mut reader = open_reader(cli)?;
    let mut opts = ccvault_export::ExportOptions {
        tz: cli.tz(),
        since_last: args.since_last,
        tenant: args.tenant.tenant.clone(),
        ..Default::default()
    };
    if let Some(n) = args.row_group_size {
        opts.row_group_bytes = n.max(1);
    }
    let summary = ccvault_export::export(&mut reader, &p, dir, &opts)
        .with_context(|| format!("cannot export to {}", dir.display()))?;
    let secs = started.elapsed().as_secs_f64();
    status!(
        "{} export run {} of {} records{} to {} in {secs:.2}s ({} records read from the log)",
        if summary.incremental {
            "incremental"
        } else {
            "full"
        },
        summary.run,
        summary.events_end,
        match &opts.tenant {
            Some(t) => format!(" (tenant {t})"),
            None => String::new(),
        },
        dir.display(),
        summary.records_read
    );
    for t in &summary.tables {
        status!(
            "  {:<13} {} rows in {} files ({} bytes); partitions: {} written, {} unchanged, {} removed; {:.2}s",
            t.table,
            t.rows,
            t.files,
            t.bytes,
            t.partitions_written,
            t.partitions_unchanged,
            t.partitions_removed,
            t.seconds
        );
    }
    if let Some(first) = &summary.first_damage {
        warn_places_left_out(summary.damaged, first);
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr, even with `-q` (the export is incomplete), that places
/// of the log were left out, and the first of them.
fn warn_places_left_out(count: u64, first: &str) {
    crate::output::error_line(format_args!(
        "ccvault: warning: the export leaves out {count} damaged or missing place(s) of the log (first: {first}); run `ccvault verify`"
    ));
}

/// A failed write of the export to stdout, said as one error whatever the
/// filter.
fn export_write_error(source: std::io::Error) -> ccvault_store::StoreError {
    ccvault_store::StoreError::Io {
        what: "cannot write the export to",
        path: "stdout".into(),
        source,
    }
}

/// Every archived (not quarantined) event payload, in log order, one per
/// line, byte-exact. JSON cannot hold a raw line break inside a string, so a
/// CR or LF in a payload is whitespace between tokens: it is written as a
/// space to keep one event per line (same JSON value).
fn export_events(
    reader: &ArchiveReader,
    (from, to): (Option<i64>, Option<i64>),
    out: &mut impl Write,
) -> Result<()> {
    let mut damaged = Vec::new();
    reader.for_each_record(
        |rec| {
            if rec.quarantined {
                return Ok(());
            }
            write_event(rec, (from, to), out).map_err(export_write_error)
        },
        |place| damaged.push(place),
    )?;
    if let Some(first) = damaged.first() {
        warn_places_left_out(damaged.len() as u64, first);
    }
    Ok(())
}

/// One event of the export as a line, when its event time is in the range.
fn write_event(
    rec: ccvault_store::Record,
    (from, to): (Option<i64>, Option<i64>),
    out: &mut impl Write,
) -> std::io::Result<()> {
    if from.is_some() || to.is_some() {
        // Event time as METRICS defines it; an event without one is outside every range.
        let Ok(ev) = parse_event(&rec.payload) else {
            return Ok(());
        };
        let t = event_time(&ev, record_input(&rec).arrival()).ms;
        if from.is_some_and(|f| t < f) || to.is_some_and(|e| t >= e) {
            return Ok(());
        }
    }
    let (line, end) = ndjson_line(&rec.payload);
    out.write_all(&line)?;
    out.write_all(end)
}
