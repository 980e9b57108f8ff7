//! One function per command.

mod archive;
pub mod ingest;
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
        Command::Show { guid, raw } => archive::show(cli, guid, *raw),
        Command::Stats => archive::stats(cli),
        Command::Verify => archive::verify(cli),
        Command::Reindex => archive::reindex(cli),
        Command::Quarantine => archive::quarantine(cli),
        Command::Ingest(args) => ingest::run(cli, args),
        Command::Simulate(args) => sim::run(cli, args),
    }
}
