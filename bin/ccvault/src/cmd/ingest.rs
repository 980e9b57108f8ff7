//! `ccvault ingest mqtt|pulsar`: live archiving until SIGINT/SIGTERM.
//!
//! Exit codes: 0 after a requested stop (everything received was committed
//! and acknowledged), 3 when the peer refused the credentials or a
//! subscription (retrying would not help; e.g. systemd
//! `RestartPreventExitStatus=3`), 2 for a bad command line (a refused URL
//! or flag combination), 1 for any other error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ccvault_ingest::backoff::Backoff;
use ccvault_ingest::mqtt::{self, MqttConfig, MqttSource};
use ccvault_ingest::pulsar::{self, Endpoint, PulsarConfig, PulsarSource, Start, SubscriptionType};
use ccvault_ingest::{secrets, IngestError, Metrics, SinkOptions, Source, Summary};
use ccvault_store::{Archive, ArchiveReader, SourceKind};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::archive::{archive_options, open_writer};
use crate::args::parse_duration;
use crate::output::{json_line, HumanJson, UsageError};
use crate::{Cli, WriteArgs};

/// `ccvault ingest ...`
#[derive(Args, Debug)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub source: IngestSource,
}

#[derive(Subcommand, Debug)]
pub enum IngestSource {
    /// Archive from an MQTT broker (8x8 topic layout, QoS 1, persistent session; PUBACK only once durable).
    Mqtt(MqttArgs),
    /// Archive from a Pulsar WebSocket reader (resuming after the last archived messageId) or consumer (the subscription keeps the position).
    Pulsar(PulsarArgs),
}

/// Options both sources share.
#[derive(Args, Debug)]
pub struct CommonArgs {
    #[command(flatten)]
    pub write: WriteArgs,
    /// Serve Prometheus metrics (text format) on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Largest group commit, in messages (1 to 1000000).
    #[arg(long, default_value_t = 8192, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize))]
    pub max_batch: usize,
    /// First reconnect delay (doubles up to --max-backoff, with jitter): 200ms, 1s.
    #[arg(long, default_value = "200ms", value_name = "DURATION", value_parser = parse_duration)]
    pub backoff: Duration,
    /// Longest reconnect delay.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// The former spelling of --backoff, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "backoff")]
    pub backoff_ms: Option<u64>,
    /// The former spelling of --max-backoff, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "max_backoff")]
    pub max_backoff_ms: Option<u64>,
    /// Output format of the final summary: text (on stderr, as every summary, not with -q) or one JSON object (on stdout).
    #[arg(long, value_enum)]
    pub format: Option<HumanJson>,
    /// Also run the web application of `ccvault serve` in this process on this address (e.g. 127.0.0.1:8080; port 0 picks one, printed on stdout first).
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<SocketAddr>,
    /// The bearer token file of --serve (required for a non-loopback address; as `serve --token-file`: at least 16 characters, visible ASCII, no `;`).
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub serve_token_file: Option<PathBuf>,
    /// Serve --serve over HTTPS with this PEM certificate chain (with --serve-tls-key), as `serve --tls-cert`.
    #[arg(long, value_name = "FILE", requires_all = ["serve", "serve_tls_key"])]
    pub serve_tls_cert: Option<PathBuf>,
    /// The PEM private key of --serve-tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["serve", "serve_tls_cert"])]
    pub serve_tls_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MqttArgs {
    /// Broker URL: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (the port is optional).
    #[arg(long)]
    pub url: String,
    /// Topic filter to subscribe to at QoS 1; repeatable. Default: +/event-v1/all.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Client id of the persistent session (default: derived from the archive path, stable across runs).
    #[arg(long)]
    pub client_id: Option<String>,
    /// User name for the broker.
    #[arg(long, env = "CCVAULT_MQTT_USERNAME")]
    pub username: Option<String>,
    /// File holding the broker password, `-` for standard input (else the CCVAULT_MQTT_PASSWORD environment variable).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificates to trust for mqtts:// (default: the system's).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key for mutual TLS (with --client-cert).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// MQTT keep-alive, whole seconds: 30s, 1m; 0s for none.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub keep_alive: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StartArg {
    Earliest,
    Latest,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SubscriptionTypeArg {
    Exclusive,
    Failover,
    Shared,
}

#[derive(Args, Debug)]
pub struct PulsarArgs {
    /// Reader URL wss://HOST/ws/v2/reader/persistent/TENANT/event-v1/all, or consumer URL wss://HOST/ws/v2/consumer/persistent/TENANT/event-v1/all/SUBSCRIPTION
    #[arg(long)]
    pub url: String,
    /// File holding the API key, sent as the X-API-Key header; `-` for standard input (else the CCVAULT_PULSAR_API_KEY environment variable).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Reader: where to start when the archive holds no messageId for this topic (otherwise it resumes after the last one). Default: earliest.
    #[arg(long, value_enum)]
    pub start: Option<StartArg>,
    /// Consumer: how the subscription is shared with other consumers (Failover: one active, the others take over). Default: exclusive.
    #[arg(long, value_enum)]
    pub subscription_type: Option<SubscriptionTypeArg>,
    /// Messages the proxy may send ahead of our (durable) acknowledgements (at least 1).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub receiver_queue_size: u32,
    /// PEM CA certificates to trust for wss:// (default: the system's).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// WebSocket ping period; silence for three periods counts as a lost connection: 30s (at least 100ms).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_ping_interval)]
    pub ping_interval: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(cli: &Cli, args: &IngestArgs) -> Result<ExitCode> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        match &args.source {
            IngestSource::Mqtt(a) => run_mqtt(cli, a).await,
            IngestSource::Pulsar(a) => run_pulsar(cli, a).await,
        }
    })
}

fn sink_options(c: &CommonArgs) -> SinkOptions {
    SinkOptions {
        max_batch: c.max_batch.max(1),
        ..SinkOptions::default()
    }
}

/// The reconnect delays; a first delay past the longest is a bad command
/// line (it was silently cut to the longest, after one delay past it), and
/// so is a first delay under a millisecond (it was silently raised to 1 ms,
/// until 2026-12-07).
fn backoff(c: &CommonArgs) -> Result<Backoff> {
    let first = c.backoff_ms.map_or(c.backoff, Duration::from_millis);
    let longest = c
        .max_backoff_ms
        .map_or(c.max_backoff, Duration::from_millis);
    if first < Duration::from_millis(1) {
        return Err(UsageError(
            "--backoff under 1ms would reconnect at once after every failure: give at least 1ms"
                .into(),
        )
        .into());
    }
    if first > longest {
        return Err(UsageError(format!(
            "--backoff {first:?} is longer than --max-backoff {longest:?}: the first reconnect delay cannot exceed the longest"
        ))
        .into());
    }
    Ok(Backoff::new(first, longest))
}

/// `--ping-interval`: the Pulsar source pings at most every 100 ms (a
/// shorter period was silently raised to it).
fn parse_ping_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!(
            "a ping interval of {} is too short: give at least 100ms",
            s.trim()
        ));
    }
    Ok(d)
}

async fn run_mqtt(cli: &Cli, a: &MqttArgs) -> Result<ExitCode> {
    // A secret file that cannot be read is a bad option value (exit 2), as
    // an unreadable --ca-file is; it was exit 1 until 2026-12-07.
    let password = secrets::load(
        a.password_file.as_deref(),
        "CCVAULT_MQTT_PASSWORD",
        "MQTT password",
    )
    .map_err(usage)?;
    // The default client id is set once the archive is open (below): only
    // then does its directory exist to be canonicalized, the same way on
    // the first run as on every later one.
    let mut cfg = MqttConfig::new(a.url.clone(), a.client_id.clone().unwrap_or_default());
    cfg.topics = a.topics.clone();
    cfg.username = a.username.clone();
    cfg.password = password;
    cfg.ca_file = a.ca_file.clone();
    cfg.client_cert = a.client_cert.clone();
    cfg.client_key = a.client_key.clone();
    cfg.keep_alive = a.keep_alive;
    // Validate the options before taking the archive lock: a URL ccvault
    // refuses is a bad command line (exit 2), as a refused Pulsar URL is.
    mqtt::check_options(&cfg).map_err(usage)?;
    // An id given empty is refused before anything runs (the default is
    // set below): found when connecting, it came after a summary of
    // nothing received until 2026-12-07.
    if let Some(id) = &a.client_id {
        mqtt::check_client_id(id).map_err(usage)?;
    }
    ingest(cli, &a.common, |archive| {
        if a.client_id.is_none() {
            cfg.client_id = mqtt::default_client_id(&cli.data_dir)?;
        }
        cfg.expect_session =
            ArchiveReader::of_writer(archive)?.recent_message_of(SourceKind::Mqtt)?;
        MqttSource::new(&cfg)
    })
    .await
}

async fn run_pulsar(cli: &Cli, a: &PulsarArgs) -> Result<ExitCode> {
    let api_key = secrets::load(
        a.api_key_file.as_deref(),
        "CCVAULT_PULSAR_API_KEY",
        "Pulsar API key",
    )
    .map_err(usage)?;
    let url = pulsar::parse_url(&a.url).map_err(usage)?;
    match url.endpoint {
        // A flag combination the command refuses: a usage error (exit 2).
        Endpoint::Reader if a.subscription_type.is_some() => {
            return Err(UsageError(
                "--subscription-type applies to a consumer URL (/ws/v2/consumer/.../SUBSCRIPTION), not to a reader".into(),
            )
            .into())
        }
        Endpoint::Consumer { .. } if a.start.is_some() => {
            return Err(UsageError(
                "--start applies to a reader URL: a consumer's subscription keeps its own position on the broker".into(),
            )
            .into())
        }
        _ => {}
    }
    let mut cfg = PulsarConfig::new(a.url.clone());
    cfg.api_key = api_key;
    cfg.start = match a.start.unwrap_or(StartArg::Earliest) {
        StartArg::Earliest => Start::Earliest,
        StartArg::Latest => Start::Latest,
    };
    cfg.subscription_type = match a
        .subscription_type
        .unwrap_or(SubscriptionTypeArg::Exclusive)
    {
        SubscriptionTypeArg::Exclusive => SubscriptionType::Exclusive,
        SubscriptionTypeArg::Failover => SubscriptionType::Failover,
        SubscriptionTypeArg::Shared => SubscriptionType::Shared,
    };
    cfg.receiver_queue_size = a.receiver_queue_size;
    cfg.ca_file = a.ca_file.clone();
    cfg.ping_interval = a.ping_interval;
    pulsar::check_options(&cfg).map_err(usage)?;
    ingest(cli, &a.common, |archive| PulsarSource::new(&cfg, archive)).await
}

/// A bad option value found before anything started (a URL ccvault
/// refuses) is a bad command line: exit 2, as clap's own errors.
fn usage(e: IngestError) -> anyhow::Error {
    match e {
        IngestError::Config(why) => crate::output::UsageError(why).into(),
        e => e.into(),
    }
}

/// Opens the archive, builds the source on it and runs it until a stop or a
/// permanent error: the wiring every source shares (metrics endpoint,
/// signals, group commit, backoff, summary and exit code).
async fn ingest<S: Source>(
    cli: &Cli,
    common: &CommonArgs,
    source: impl FnOnce(&Archive) -> ccvault_ingest::Result<S>,
) -> Result<ExitCode> {
    let backoff = backoff(common)?;
    let archive = open_writer(cli, archive_options(&common.write))?;
    let name = S::KIND.as_str();
    let metrics = Metrics::new(name);
    let stop = ccvault_ingest::shutdown::on_signals().context("cannot install signal handlers")?;
    let server = serve_metrics(common.metrics_addr, &metrics).await?;
    let (web_stop, web, live) = match common.serve {
        Some(addr) => {
            let (tx, task, live) = serve_web(cli, common, addr).await?;
            (Some(tx), Some(task), Some(live))
        }
        None => (None, None, None),
    };
    let result = match source(&archive) {
        Ok(source) => {
            let mut sink = sink_options(common);
            // The server in this process is told of each index commit, and
            // the sink commits often enough for the page to be live.
            sink.visible = live.map(|live| ccvault_ingest::Visible {
                within: SERVE_VISIBLE_WITHIN,
                notify: Arc::new(move || live.notify()),
            });
            ccvault_ingest::source::run(source, archive, metrics.clone(), stop, sink, backoff).await
        }
        Err(e) => Err(e),
    };
    if let (Some(stop), Some(web)) = (web_stop, web) {
        let _ = stop.send(());
        match web.await {
            Ok(Err(e)) => tracing::warn!("the web server failed: {e:#}"),
            Err(e) => tracing::warn!("the web server task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    finish(cli, common, name, &metrics, server, result)
}

/// With `--serve`: the longest a durable record waits for the index commit
/// that shows it to the server (docs/SERVE.md, Live updates).
const SERVE_VISIBLE_WITHIN: Duration = Duration::from_millis(100);

/// `--serve ADDR`: the web application of `ccvault serve` in this process,
/// reading the archive this process writes; it stops when ingest does. Its
/// watcher is returned for the sink to notify.
async fn serve_web(
    cli: &Cli,
    common: &CommonArgs,
    addr: SocketAddr,
) -> Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<()>>,
    Arc<ccvault_serve::Live>,
)> {
    let mut args = super::serve::ServeArgs::for_ingest(addr, common.serve_token_file.clone());
    args.tls_cert = common.serve_tls_cert.clone();
    args.tls_key = common.serve_tls_key.clone();
    let opts = args.options()?;
    let tls = opts.tls.is_some();
    let live = args.live(cli)?;
    let watched = live.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        ccvault_serve::serve(live, opts, shutdown, move |a| {
            let _ = ready_tx.send(a);
        })
        .await
    });
    match ready_rx.await {
        Ok(a) => super::serve::announce(a, tls),
        Err(_) => {
            return match task.await {
                Ok(Err(e)) => Err(e),
                _ => Err(anyhow::anyhow!("the web server did not start")),
            }
        }
    }
    Ok((stop_tx, task, watched))
}

async fn serve_metrics(
    addr: Option<SocketAddr>,
    metrics: &Arc<Metrics>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    match addr {
        Some(addr) => Ok(Some(
            ccvault_ingest::metrics::serve(addr, metrics.clone()).await?,
        )),
        None => Ok(None),
    }
}

/// Prints the summary (always, also after an error) and picks the exit code.
fn finish(
    cli: &Cli,
    common: &CommonArgs,
    source: &str,
    metrics: &Metrics,
    server: Option<tokio::task::JoinHandle<()>>,
    result: ccvault_ingest::Result<()>,
) -> Result<ExitCode> {
    if let Some(server) = server {
        server.abort();
    }
    let s = Summary::from_metrics(metrics);
    let mut out = crate::output::stdout();
    match cli.format_of(common.format, "ingest")? {
        HumanJson::Json => json_line(
            &mut out,
            &json!({
                "source": source,
                "ok": result.is_ok(),
                "received": s.received,
                "archived": s.archived,
                "quarantined": s.quarantined,
                "duplicates": s.duplicates,
                "control": s.control,
                "rejected": s.rejected,
                "acked": s.acked,
                "reconnects": s.reconnects,
            }),
        )?,
        // A summary, as import's: on stderr, and not with -q.
        HumanJson::Human => crate::status!(
            "ingest {source} {}: received {}, archived {}, quarantined {}, duplicates {}, control {}, rejected {}, acknowledged {}, reconnects {}",
            if result.is_ok() { "stopped" } else { "failed" },
            s.received,
            s.archived,
            s.quarantined,
            s.duplicates,
            s.control,
            s.rejected,
            s.acked,
            s.reconnects
        ),
    }
    out.flush()?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ (IngestError::Auth(_) | IngestError::Refused(_))) => {
            crate::output::error_line(format_args!("ccvault: error: {e}"));
            Ok(ExitCode::from(3))
        }
        // A bad option value found once the source is built (a CA file
        // that cannot be read) is a bad command line too.
        Err(e) => Err(usage(e)),
    }
}
