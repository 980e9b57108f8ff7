//! `ccvault serve` and `ccvault wallboard`: the web application and the
//! wallboard document it pushes, both from crates/serve (docs/SERVE.md).
//!
//! Invariants: `wallboard --format json` prints the bytes `/api/wallboard`
//! serves for the same options and clock (one producer,
//! `ccvault_serve::wallboard::compute`); `serve` refuses a non-loopback
//! address without `--token-file` before it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use ccvault_ingest::secrets::warn_if_others_may_read;
use ccvault_projections::report::Sla;
use ccvault_projections::timefmt::{format_duration, format_instant, zone_for_display};
use ccvault_projections::StateNames;
use ccvault_serve::{Clock, Live, ServeOptions, Token, WallboardOptions};
use jiff::Timestamp;

use crate::args::{parse_duration, parse_duration_ms, parse_time, TimeArg};
use crate::cmd::archive::open_reader;
use crate::cmd::projections::{parse_sla, parse_state_names, up_to_date};
use crate::output::{json_line, HumanJson};
use crate::{Cli, HumanJsonArg};

/// What a wallboard counts, shared by `serve` and `wallboard`.
#[derive(clap::Args, Debug, Clone)]
pub struct WallboardFlags {
    /// Service-level threshold on waitMs: one (20s) or one per channel (phone=20s,chat=60s,*=30s), as `report --sla`.
    #[arg(long, default_value = "20s", value_name = "DURATION|CHANNEL=DURATION,...", value_parser = parse_sla, allow_hyphen_values = true)]
    pub sla: Sla,
    /// Abandons with abandonMs below this are short, as `report --short-abandon`.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration_ms, allow_hyphen_values = true)]
    pub short_abandon: i64,
    /// Names of agent state codes, e.g. "0=logged out,1=logged in,5=available".
    #[arg(long, value_name = "CODE=NAME,...", value_parser = parse_state_names)]
    pub state_names: Option<StateNames>,
    /// The wallboard's clock ("today" and what is in progress): a fixed instant for replaying a day of the archive; now by default.
    #[arg(long, value_name = "T", value_parser = parse_time, allow_hyphen_values = true)]
    pub at: Option<TimeArg>,
}

impl WallboardFlags {
    fn options(&self, cli: &Cli) -> Result<(WallboardOptions, Clock)> {
        let tz = cli.tz();
        let clock = match &self.at {
            Some(t) => {
                let at = t
                    .resolve(&tz, Timestamp::now())
                    .map_err(crate::output::UsageError)?;
                // The board counts from local midnight to the next: an
                // instant without both would start a server that answers
                // 503 for good.
                if ccvault_serve::wallboard::today(&tz, at).is_err() {
                    return Err(crate::output::UsageError(format!(
                        "--at {t}: its day in {} does not end within the range of instants (up to 9999-12-30 UTC)",
                        tz.iana_name().unwrap_or("the time zone")
                    ))
                    .into());
                }
                Clock::Fixed(at)
            }
            None => Clock::System,
        };
        Ok((
            WallboardOptions {
                tz,
                sla: self.sla.clone(),
                short_abandon_ms: self.short_abandon,
                state_names: self.state_names.clone().unwrap_or_default(),
                now_ms: clock.now_ms(),
            },
            clock,
        ))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback requires --token-file. Port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: SocketAddr,
    /// A file whose first line is the bearer token every client must present (at least 16 characters; visible ASCII, no `;`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often the archive is looked at for new records.
    #[arg(long, default_value = "100ms", value_name = "DURATION", value_parser = parse_duration)]
    pub poll: Duration,
    /// How long a client may take to send a request's headers, or the next request on a kept-alive connection, before it is disconnected; 30s by default (hidden: for tests; docs/SERVE.md).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, hide = true)]
    pub header_timeout: Option<Duration>,
    #[command(flatten)]
    pub wallboard: WallboardFlags,
}

impl ServeArgs {
    /// `ingest --serve ADDR`: the defaults of `serve` on that address.
    pub fn for_ingest(addr: SocketAddr, token_file: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            addr,
            token_file,
            tls_cert: None,
            tls_key: None,
            poll: Duration::from_millis(100),
            header_timeout: None,
            wallboard: WallboardFlags {
                sla: Sla::default(),
                short_abandon: 5_000,
                state_names: None,
                at: None,
            },
        }
    }

    /// The server's options, the token read from its file.
    pub fn options(&self) -> Result<ServeOptions> {
        let token = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                warn_if_others_may_read(path, "token");
                Some(
                    Token::from_file_text(&text)
                        .map_err(|e| anyhow::anyhow!("the token file {}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        if let Some(key) = &self.tls_key {
            warn_if_others_may_read(key, "TLS key");
        }
        let opts = ServeOptions {
            addr: self.addr,
            token,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            poll: self.poll.max(Duration::from_millis(10)),
            // A zero timeout would close every connection before it asks.
            header_timeout: self
                .header_timeout
                .map_or(ccvault_serve::HEADER_TIMEOUT, |t| {
                    t.max(Duration::from_millis(100))
                }),
        };
        ccvault_serve::check_exposure(&opts)?;
        // Loopback is this machine, not this user: every account (and every
        // container sharing its network) can connect, where the archive's
        // files are owner-only. Said here, where `serve` and `ingest
        // --serve` both get their options.
        if opts.token.is_none() {
            // Port 0 is the one the system picks, said once it listens.
            let through = match opts.addr.port() {
                0 => "this server".to_owned(),
                _ => opts.addr.to_string(),
            };
            crate::status!(
                "ccvault: note: serving without a token: any user of this machine can read the archive through {through}; a token file (`serve --token-file`, `ingest --serve-token-file`) restricts it to those who hold the token"
            );
        }
        Ok(opts)
    }

    /// The watcher over `cli`'s archive.
    pub fn live(&self, cli: &Cli) -> Result<std::sync::Arc<Live>> {
        let (wallboard, clock) = self.wallboard.options(cli)?;
        Ok(Live::new(&cli.data_dir, wallboard, clock))
    }
}

/// Prints where the server listens (stdout: scripts and tests read it).
pub fn announce(addr: SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    let mut out = crate::output::stdout();
    let _ = writeln!(out, "serving {scheme}://{addr}/");
    let _ = out.flush();
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    crate::cmd::no_format(cli, "serve")?;
    // Serving before the archive exists is allowed (a server started before
    // the ingest that creates it), but said once, not only in the warnings
    // of every refresh. A path no archive can appear at (a file, a dangling
    // link, one that cannot be read) is an error, as for every command:
    // until 2026-12-07 the server ran on, warning at every refresh.
    match ccvault_store::require_archive(&cli.data_dir) {
        Ok(_) => {}
        Err(ccvault_store::StoreError::NoArchive(dir)) => crate::status!(
            "no archive at {} yet: the wallboard and the search page say so, and the other pages and /api/* answer 503, until an import or an ingest creates one",
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot serve archive {}", cli.data_dir.display())
            })
        }
    }
    let opts = args.options()?;
    let live = args.live(cli)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let mut stop =
            ccvault_ingest::shutdown::on_signals().context("cannot install signal handlers")?;
        let tls = opts.tls.is_some();
        let shutdown = async move { ccvault_ingest::shutdown::requested(&mut stop).await };
        ccvault_serve::serve(live, opts, shutdown, |addr| announce(addr, tls)).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug, Clone)]
pub struct WallboardArgs {
    #[command(flatten)]
    pub wallboard: WallboardFlags,
    #[command(flatten)]
    pub out: HumanJsonArg,
}

/// `wallboard`: the document `/api/wallboard` serves, once.
pub fn wallboard(cli: &Cli, args: &WallboardArgs) -> Result<ExitCode> {
    use ccvault_projections::for_terminal;
    let format = cli.format_of(args.out.format, "wallboard")?;
    let (opts, _) = args.wallboard.options(cli)?;
    let mut reader = open_reader(cli)?;
    let p = up_to_date(cli)?;
    let board = ccvault_serve::wallboard::compute(&p, &mut reader, &opts)?;
    let mut out = crate::output::stdout();
    match format {
        HumanJson::Json => json_line(&mut out, &board)?,
        HumanJson::Human => {
            let tz = zone_for_display(&opts.tz);
            let ago = |since: i64| format_duration(opts.now_ms.saturating_sub(since));
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "Wallboard at {} (the log's first {} records, the tallies of dropped messages among them)",
                format_instant(board.as_of_ms, tz),
                board.records
            )?;
            writeln!(
                out,
                "\nQueues (today since {}):",
                format_instant(board.day_start_ms, tz)
            )?;
            for q in &board.queues {
                writeln!(
                    out,
                    "  queue {} {}: waiting {} (longest {}), offered {}, answered {}, abandoned {}, service level {}, outbound {} ({} connected)",
                    or_dash(q.queue_id.map(|q| q.to_string())),
                    or_dash(q.media_type.as_deref().map(|m| for_terminal(m).into_owned())),
                    q.waiting,
                    or_dash(q.oldest_waiting_since_ms.map(ago)),
                    q.offered,
                    q.answered,
                    q.abandoned,
                    or_dash(q.service_level.map(|s| format!("{:.1}%", s * 100.0))),
                    q.outbound,
                    q.outbound_connected
                )?;
            }
            writeln!(out, "\nIn progress: {}", board.in_progress.len())?;
            for l in &board.in_progress {
                writeln!(
                    out,
                    "  {} {} for {} (queue {}, agent {})",
                    for_terminal(&l.interaction_guid),
                    l.stage.as_str(),
                    ago(l.since_ms),
                    or_dash(l.queue_id.map(|q| q.to_string())),
                    for_terminal(l.agent_id.as_deref().unwrap_or("-"))
                )?;
            }
            writeln!(out, "\nAgents: {}", board.agents.len())?;
            for a in &board.agents {
                let activity = match (a.activity, a.activity_since_ms) {
                    (Some(stage), Some(since)) => {
                        format!(", {} for {}", stage.as_str(), ago(since))
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "  {} {} for {}{activity}",
                    for_terminal(&a.agent_id),
                    for_terminal(&a.state_name),
                    ago(a.since_ms)
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
