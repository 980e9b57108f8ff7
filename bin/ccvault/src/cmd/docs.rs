//! `ccvault completions SHELL` and `ccvault man [COMMAND]`: generated from the same
//! clap definition that parses the command line, so they cannot drift from it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::output::UsageError;
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

pub fn man(cli: &Cli, command: Option<&str>) -> Result<ExitCode> {
    super::no_format(cli, "man")?;
    let mut top = Cli::command();
    // Global flags (`--data-dir`, `--format`, …) reach the subcommands' pages.
    top.build();
    let page = match command {
        None => top,
        Some(name) => {
            let Some(sub) = top.find_subcommand(name) else {
                let known: Vec<&str> = top.get_subcommands().map(|c| c.get_name()).collect();
                return Err(anyhow::Error::new(UsageError(format!(
                    "`ccvault man {name}`: no such command; the commands are {}",
                    known.join(", ")
                ))));
            };
            // Named as man(1) finds it: `man ccvault-import`.
            let full = format!("ccvault-{}", sub.get_name());
            sub.clone()
                .display_name(full)
                .version(env!("CARGO_PKG_VERSION"))
                .bin_name(format!("ccvault {name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
