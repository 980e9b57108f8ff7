//! One function per command.

mod archive;
pub mod demo;
pub mod ingest;
pub mod projections;
pub mod sim;

use std::process::ExitCode;

use anyhow::Result;

use crate::{Cli, Command};

pub fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Import {
            files,
            write,
            print_acks,
        } => archive::import(cli, files, write, *print_acks),
        Command::Demo(args) => demo::demo(cli, args),
        Command::Show {
            guid, raw: true, ..
        } => archive::show_raw(cli, guid),
        Command::Show {
            guid,
            raw: false,
            html,
        } => projections::show(cli, guid, html.as_deref()),
        Command::Stats => archive::stats(cli),
        Command::Verify => archive::verify(cli),
        Command::Reindex => archive::reindex(cli),
        Command::Quarantine => archive::quarantine(cli),
        Command::Ingest(args) => ingest::run(cli, args),
        Command::Simulate(args) => sim::run(cli, args),
        Command::Interactions(args) => projections::interactions(cli, args),
        Command::Report(args) => projections::report(cli, args),
        Command::Agents(args) => projections::agents(cli, args),
        Command::Rebuild => projections::rebuild(cli),
        Command::Export(args) => projections::export(cli, args),
    }
}
