//! `ccvault completions SHELL` and `ccvault man`: generated from the same
//! clap definition that parses the command line, so they cannot drift from it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::Cli;

pub fn completions(cli: &Cli, shell: clap_complete::Shell) -> Result<ExitCode> {
    super::no_format(cli, "completions")?;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ccvault", &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(cli: &Cli) -> Result<ExitCode> {
    super::no_format(cli, "man")?;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
