//! `ccvault completions SHELL` and `ccvault man [COMMAND]`: generated from the same
//! clap definition that parses the command line, so they cannot drift from it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::output::UsageError;
use crate::Cli;

pub fn completions(cli: &Cli, shell: clap_complete::Shell) -> Result<ExitCode> {
    super::no_format(cli, "completions")?;
    let mut out = Vec::new();
    let mut definition = crate::command_definition(|cmd| cmd);
    definition.build();
    clap_complete::generate(shell, &mut visible_only(&definition), "ccvault", &mut out);
    let mut stdout = crate::output::stdout();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `cmd` (built: the global flags are in each command) without the flags
/// and commands hidden from help (scripts' and tests' flags, globals a
/// command does not use): clap_complete offers hidden flags too.
fn visible_only(cmd: &clap::Command) -> clap::Command {
    // A name a command takes is `'static` (clap's `string` feature is
    // off); a few bytes of a process that prints one script and ends.
    let name: &'static str = Box::leak(cmd.get_name().to_owned().into_boxed_str());
    // `--help` and `--version` the copy makes again.
    let own = |a: &&clap::Arg| {
        use clap::ArgAction::{Help, HelpLong, HelpShort, Version};
        !a.is_hide_set() && !matches!(a.get_action(), Help | HelpShort | HelpLong | Version)
    };
    let mut copy = clap::Command::new(name)
        .disable_help_subcommand(true)
        // Each command holds its globals already: not spread again (to
        // where they were hidden).
        .args(
            cmd.get_arguments()
                .filter(own)
                .map(|a| a.clone().global(false)),
        )
        .subcommands(
            cmd.get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(visible_only),
        );
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        let version: &'static str = Box::leak(version.to_owned().into_boxed_str());
        copy = copy.version(version);
    }
    copy
}

pub fn man(cli: &Cli, command: Option<&str>) -> Result<ExitCode> {
    super::no_format(cli, "man")?;
    // No `help` pseudo-command on any page (its pages would be empty);
    // global flags (`--data-dir`, `--format`, …) reach the subcommands'.
    let top = crate::command_definition(|cmd| {
        cmd.disable_help_subcommand(true)
            .mut_subcommands(|c| c.disable_help_subcommand(true))
    });
    let page = match command {
        None => top,
        Some(name) => {
            // `ingest-mqtt` (as the parent's page names it) or `ingest mqtt`.
            let path: Vec<&str> = match top.find_subcommand(name) {
                Some(_) => vec![name],
                None => name.splitn(2, ['-', ' ']).collect(),
            };
            let mut sub = Some(&top);
            for part in &path {
                sub = sub.and_then(|c| c.find_subcommand(part));
            }
            let Some(sub) = sub else {
                let known: Vec<String> = top
                    .get_subcommands()
                    .flat_map(|c| {
                        std::iter::once(c.get_name().to_owned()).chain(
                            c.get_subcommands()
                                .map(move |s| format!("{}-{}", c.get_name(), s.get_name())),
                        )
                    })
                    .collect();
                return Err(anyhow::Error::new(UsageError(format!(
                    "`ccvault man {name}`: no such command; the commands are {}",
                    known.join(", ")
                ))));
            };
            // Named as man(1) finds it: `man ccvault-import`,
            // `man ccvault-ingest-mqtt`.
            sub.clone()
                .display_name(format!("ccvault-{}", path.join("-")))
                .version(env!("CARGO_PKG_VERSION"))
                .bin_name(format!("ccvault {}", path.join(" ")))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    let out = with_exit_status(out);
    let mut stdout = crate::output::stdout();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The EXIT STATUS section of every page (docs/OPERATIONS.md, "Exit
/// codes", says more), where man-pages(7) puts it: after the options and
/// commands, before the version.
const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success; also when the reader of standard output closed the pipe, except that \fBverify\fR still exits 1 on damage and \fBimport\fR 3 for rejected lines.
.TP
\fB1\fR
An error, said on standard error; for \fBverify\fR: damage found.
.TP
\fB2\fR
A bad command line: an unknown command or flag, a bad value, a combination of flags the command refuses.
.TP
\fB3\fR
\fBimport\fR finished, but some lines were rejected or an input could not be read once opened; \fBingest\fR: the peer refused the credentials, a subscription or the request.
.TP
\fB130\fR, \fB143\fR
\fBimport\fR stopped by SIGINT or SIGTERM, after making durable what it had appended and printing its summary.
"#;

/// `page` (roff) with [`EXIT_STATUS`] before its VERSION section, or at
/// its end when it has none.
fn with_exit_status(page: Vec<u8>) -> Vec<u8> {
    let at = page
        .windows(b"\n.SH VERSION".len())
        .position(|w| w == b"\n.SH VERSION")
        .map_or(page.len(), |at| at + 1);
    [&page[..at], EXIT_STATUS.as_bytes(), &page[at..]].concat()
}
