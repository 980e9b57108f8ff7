//! One function per command.

mod archive;
mod contact;
pub mod demo;
pub mod docs;
pub mod export;
pub mod ingest;
pub mod projections;
pub mod serve;
pub mod sim;

use std::process::ExitCode;

use anyhow::Result;

use crate::{Cli, Command};

pub fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Import {
            files,
            input_format,
            direct_read,
            write,
            print_acks,
            out,
        } => archive::import(
            cli,
            files,
            (*input_format).into(),
            (*direct_read).into(),
            write,
            *print_acks,
            cli.format_of(out.format, "import")?,
        ),
        Command::Demo(args) => demo::demo(cli, args),
        Command::Show {
            guid,
            raw: true,
            tenant,
            ..
        } => archive::show_raw(cli, guid, tenant.as_deref()),
        Command::Show {
            guid,
            raw: false,
            html,
            tenant,
            out,
        } => {
            projections::page_alone_on_stdout(html.as_deref(), cli.format_given(&out.format))?;
            projections::show(
                cli,
                guid,
                tenant.as_deref(),
                html.as_deref(),
                cli.format_of(out.format, "show")?,
            )
        }
        Command::Stats {
            by_tenant,
            tenant,
            out,
        } => {
            let format = cli.format_of(out.format, "stats")?;
            if *by_tenant || tenant.is_some() {
                archive::tenant_stats(cli, tenant.as_deref(), format)
            } else {
                archive::stats(cli, format)
            }
        }
        Command::Verify {
            no_projections,
            out,
        } => archive::verify(cli, *no_projections, cli.format_of(out.format, "verify")?),
        Command::Reindex { out } => archive::reindex(cli, cli.format_of(out.format, "reindex")?),
        Command::Quarantine { range, out } => {
            archive::quarantine(cli, range, cli.format_of(out.format, "quarantine")?)
        }
        Command::Ingest(args) => ingest::run(cli, args),
        Command::Simulate(args) => sim::run(cli, args),
        Command::Interactions(args) => projections::interactions(cli, args),
        Command::Report(args) => projections::report(cli, args),
        Command::Agents(args) => projections::agents(cli, args),
        Command::Rebuild { out } => {
            projections::rebuild(cli, cli.format_of(out.format, "rebuild")?)
        }
        Command::Export(args) => export::export(cli, args),
        Command::Serve(args) => serve::serve(cli, args),
        Command::Wallboard(args) => serve::wallboard(cli, args),
        Command::Completions { shell } => docs::completions(cli, *shell),
        Command::Man { command } => {
            let command = command.join(" ");
            docs::man(cli, Some(command.as_str()).filter(|c| !c.is_empty()))
        }
    }
}

/// A command that has no `--format` refuses one given before its name.
fn no_format(cli: &Cli, command: &str) -> Result<()> {
    match &cli.format {
        None => Ok(()),
        Some(f) => {
            Err(crate::output::UsageError(format!("`{command}` has no --format (got {f})")).into())
        }
    }
}

/// The async runtime of the long-running commands (`ingest`, `serve`): two
/// workers, the I/O and timer drivers.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
