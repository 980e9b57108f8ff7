//! The Pulsar WebSocket reader source (SPEC §2 shape 2, the transport 8x8
//! uses today).
//!
//! Protocol (Pulsar WebSocket API, reader endpoint):
//! - `wss://HOST/ws/v2/reader/persistent/{tenant}/{namespace}/{topic}` with
//!   query `messageId=earliest|latest|<base64 id>` (the reader starts after
//!   that message) and `receiverQueueSize=N`; the API key goes in the
//!   `X-API-Key` header (marked sensitive, never logged).
//! - Each message is a JSON text frame
//!   `{"messageId","payload"(base64),"properties","publishTime","redeliveryCount"}`;
//!   the frame is handed to the archive as-is (it decodes the envelope).
//! - The reader acknowledges with `{"messageId": ...}`. A reader has no
//!   subscription, so acks do not move a cursor: the proxy uses them for
//!   flow control (at most `receiverQueueSize` unacknowledged messages).
//!   We ack only after the message is durable, so the archive, not the
//!   proxy, paces the stream.
//!
//! Resume: the position is the archive itself. On start the reader asks
//! for the messages after the last archived `messageId` of this topic
//! ([`ccvault_store::ArchiveReader::last_message_id`]); `--start` applies
//! only when there is none. After a dropped connection within a run it
//! resumes after the last message handed to the archive (which will be
//! durable before anything is acknowledged; if the process dies first, the
//! next start resumes from the archive). Replays are deduplicated.
//!
//! Authentication failures (HTTP 401/403 on the upgrade) are permanent:
//! the run ends with [`IngestError::Auth`] and no retry.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvault_store::{Archive, ArchiveReader, Outcome, SourceKind};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::secrets::Secret;
use crate::shutdown::requested;
use crate::sink::{self, Done, Item, SinkOptions};
use crate::{IngestError, Result};

/// Where to start when the archive holds no position for the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// The oldest message the topic retains (nothing is missed).
    #[default]
    Earliest,
    /// Only messages published from now on.
    Latest,
}

#[derive(Debug, Clone)]
pub struct PulsarConfig {
    /// The reader URL (`ws://` or `wss://`), without `messageId`.
    pub url: String,
    pub api_key: Option<Secret>,
    pub start: Start,
    /// Unacknowledged messages the proxy may send ahead.
    pub receiver_queue_size: u32,
    /// PEM CA bundle for `wss://` (the platform's roots otherwise).
    pub ca_file: Option<PathBuf>,
    /// WebSocket ping period; no frame for three periods = connection lost.
    pub ping_interval: Duration,
    pub connect_timeout: Duration,
    pub sink: SinkOptions,
    pub backoff: Backoff,
}

impl PulsarConfig {
    pub fn new(url: impl Into<String>) -> PulsarConfig {
        PulsarConfig {
            url: url.into(),
            api_key: None,
            start: Start::Earliest,
            receiver_queue_size: 1000,
            ca_file: None,
            ping_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            sink: SinkOptions::default(),
            backoff: Backoff::default(),
        }
    }
}

/// A reader URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderUrl {
    /// Scheme, host and path, no query.
    pub base: String,
    /// Query parameters other than `messageId` and `receiverQueueSize`.
    pub query: Vec<String>,
    /// `persistent://tenant/namespace/topic`: the archived records' source.
    pub topic: String,
    pub tenant: String,
    pub tls: bool,
}

/// Parses `ws[s]://HOST[:PORT]/ws/v2/reader/persistent/{tenant}/{ns}/{topic}`.
pub fn parse_url(url: &str) -> Result<ReaderUrl> {
    let bad = |why: &str| IngestError::Config(format!("bad Pulsar reader URL {url:?}: {why}"));
    let tls = if url.starts_with("wss://") {
        true
    } else if url.starts_with("ws://") {
        false
    } else {
        return Err(bad(
            "expected wss://HOST/ws/v2/reader/persistent/TENANT/NAMESPACE/TOPIC",
        ));
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let after_scheme = &base[if tls { 6 } else { 5 }..];
    let (authority, path) = after_scheme.split_once('/').ok_or_else(|| bad("no path"))?;
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            "no host, or credentials in the URL (use --api-key-file)",
        ));
    }
    let rest = path
        .strip_prefix("ws/v2/reader/")
        .ok_or_else(|| bad("the path must start with /ws/v2/reader/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [domain, tenant, namespace, topic] = parts.as_slice() else {
        return Err(bad("expected .../reader/persistent/TENANT/NAMESPACE/TOPIC"));
    };
    if !matches!(*domain, "persistent" | "non-persistent")
        || tenant.is_empty()
        || namespace.is_empty()
        || topic.is_empty()
    {
        return Err(bad("expected .../reader/persistent/TENANT/NAMESPACE/TOPIC"));
    }
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| {
            let key = kv.split('=').next().unwrap_or("");
            key != "messageId" && key != "receiverQueueSize"
        })
        .map(str::to_owned)
        .collect();
    Ok(ReaderUrl {
        base: base.to_owned(),
        query,
        topic: format!("{domain}://{tenant}/{namespace}/{topic}"),
        tenant: (*tenant).to_owned(),
        tls,
    })
}

impl ReaderUrl {
    /// The URL to connect to, starting after `position`.
    pub fn with_position(&self, position: &str, receiver_queue_size: u32) -> String {
        let mut q = self.query.clone();
        q.push(format!("messageId={}", percent_encode(position)));
        q.push(format!("receiverQueueSize={receiver_queue_size}"));
        format!("{}?{}", self.base, q.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a base64
/// message id has `+`, `/` and `=`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the reader needs to acknowledge one message.
#[derive(Debug, Clone)]
pub struct Token {
    generation: u64,
    message_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "messageId", borrow, default)]
    message_id: Option<Cow<'a, str>>,
}

/// Why a connection ended.
enum Ended {
    /// Stop requested and everything received was committed.
    Stopped,
    /// Lost; reconnect.
    Lost(String),
}

/// Archives the reader's messages until `stop` turns true (then commits,
/// acknowledges, closes and returns `Ok`) or a permanent error (refused API
/// key, archive failure).
pub async fn run(
    cfg: PulsarConfig,
    archive: Archive,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let url = parse_url(&cfg.url)?;
    let connector = if url.tls {
        Some(Connector::Rustls(Arc::new(crate::tls_config(
            cfg.ca_file.as_deref(),
            None,
        )?)))
    } else {
        Some(Connector::Plain)
    };
    let archived =
        ArchiveReader::of_writer(&archive)?.last_message_id(SourceKind::Pulsar, &url.topic)?;
    let mut position = match &archived {
        Some(id) => {
            tracing::info!(topic = %url.topic, message_id = %id, "resuming after the last archived message");
            id.clone()
        }
        None => {
            let p = match cfg.start {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
            };
            tracing::info!(topic = %url.topic, start = p, "no archived position for this topic");
            p.to_owned()
        }
    };
    if cfg.api_key.is_none() {
        tracing::warn!("no Pulsar API key given (--api-key-file or CCVAULT_PULSAR_API_KEY)");
    }
    let (sink_tx, mut done_rx, sink_thread) =
        sink::start::<Token>(archive, SourceKind::Pulsar, metrics.clone(), cfg.sink)?;
    let mut sink_tx = Some(sink_tx);
    let mut stop = stop;
    let mut backoff = cfg.backoff.clone();
    let source: Arc<str> = Arc::from(url.topic.as_str());
    let mut generation = 0u64;

    let result: Result<()> = loop {
        if sink_tx.is_none() {
            break Ok(());
        }
        let target = url.with_position(&position, cfg.receiver_queue_size.max(1));
        tracing::info!(topic = %url.topic, position = %position, "connecting to the Pulsar reader");
        let connected = tokio::select! {
            c = connect(&target, cfg.api_key.as_ref(), connector.clone(), cfg.connect_timeout) => c,
            _ = requested(&mut stop) => { sink_tx = None; break Ok(()); }
        };
        let ws = match connected {
            Ok(ws) => ws,
            Err(ConnectError::Auth(why)) => break Err(IngestError::Auth(why)),
            Err(ConnectError::Config(why)) => break Err(IngestError::Config(why)),
            Err(ConnectError::Transient(why)) => {
                metrics.add_reconnect();
                let delay = backoff.next_delay();
                tracing::warn!(error = %why, delay_ms = delay.as_millis() as u64, "cannot connect to the Pulsar reader; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = requested(&mut stop) => { sink_tx = None; break Ok(()); }
                }
            }
        };
        generation += 1;
        backoff.reset();
        metrics.set_connected(true);
        tracing::info!(topic = %url.topic, "Pulsar reader connected");
        let ended = session(
            ws,
            generation,
            &source,
            &mut sink_tx,
            &mut done_rx,
            &mut position,
            &metrics,
            &mut stop,
            cfg.ping_interval,
        )
        .await;
        metrics.set_connected(false);
        match ended {
            Ok(Ended::Stopped) => break Ok(()),
            Ok(Ended::Lost(why)) => {
                if sink_tx.is_none() {
                    break Ok(());
                }
                metrics.add_reconnect();
                let delay = backoff.next_delay();
                tracing::warn!(error = %why, delay_ms = delay.as_millis() as u64, "Pulsar connection lost; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = requested(&mut stop) => { sink_tx = None; break Ok(()); }
                }
            }
            Err(e) => break Err(e),
        }
    };
    // Whatever happened: no more input; let the sink commit what it holds.
    drop(sink_tx);
    while done_rx.recv().await.is_some() {}
    let sink_result = sink_thread.join().await;
    result.and(sink_result)
}

enum ConnectError {
    Auth(String),
    Config(String),
    Transient(String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    url: &str,
    api_key: Option<&Secret>,
    connector: Option<Connector>,
    timeout: Duration,
) -> std::result::Result<Ws, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Config(format!("bad Pulsar reader URL: {e}")))?;
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key.expose())
            .map_err(|_| ConnectError::Config("the API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert("X-API-Key", value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let attempt =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError::Transient(format!(
            "no answer within {}s",
            timeout.as_secs()
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            if status.as_u16() == 401 || status.as_u16() == 403 {
                Err(ConnectError::Auth(format!(
                    "the Pulsar endpoint answered {status} to the API key: check --api-key-file / CCVAULT_PULSAR_API_KEY {}",
                    if body.trim().is_empty() { String::new() } else { format!("({})", body.trim()) }
                )))
            } else {
                Err(ConnectError::Transient(format!(
                    "HTTP {status} {}",
                    body.trim()
                )))
            }
        }
        Ok(Err(e)) => Err(ConnectError::Transient(e.to_string())),
    }
}

/// Reads and acknowledges on one connection until it ends.
#[allow(clippy::too_many_arguments)]
async fn session(
    ws: Ws,
    generation: u64,
    source: &Arc<str>,
    sink_tx: &mut Option<mpsc::Sender<Item<Token>>>,
    done_rx: &mut mpsc::UnboundedReceiver<Vec<Done<Token>>>,
    position: &mut String,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
    ping_interval: Duration,
) -> Result<Ended> {
    let (mut tx, mut rx) = ws.split();
    let ping_interval = ping_interval.max(Duration::from_millis(100));
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let mut last_rx = Instant::now();
    loop {
        let stopping = sink_tx.is_none();
        tokio::select! {
            biased;
            _ = requested(stop), if !stopping => {
                // Stop reading; keep acknowledging until the sink is drained.
                *sink_tx = None;
            }
            done = done_rx.recv() => match done {
                Some(batch) => {
                    let mut n = 0u64;
                    for d in batch {
                        if let Outcome::Rejected { reason } = &d.outcome {
                            tracing::error!(message_id = ?d.token.message_id, "message not archived: {reason}");
                        }
                        let Some(id) = d.token.message_id else { continue };
                        if d.token.generation != generation {
                            continue;
                        }
                        let ack = serde_json::json!({ "messageId": id }).to_string();
                        if let Err(e) = tx.feed(Message::text(ack)).await {
                            return Ok(Ended::Lost(format!("cannot send an acknowledgement: {e}")));
                        }
                        n += 1;
                    }
                    if let Err(e) = tx.flush().await {
                        return Ok(Ended::Lost(format!("cannot send acknowledgements: {e}")));
                    }
                    metrics.add_acked(n);
                }
                None => {
                    if stopping {
                        let _ = tx.send(Message::Close(None)).await;
                        return Ok(Ended::Stopped);
                    }
                    return Err(IngestError::Internal("the archive thread stopped".into()));
                }
            },
            frame = rx.next(), if !stopping => {
                last_rx = Instant::now();
                let bytes = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(f))) => {
                        return Ok(Ended::Lost(match f {
                            Some(f) => format!("closed by the peer: {} {}", f.code, f.reason),
                            None => "closed by the peer".into(),
                        }));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Ok(Ended::Lost(e.to_string())),
                    None => return Ok(Ended::Lost("connection closed".into())),
                };
                metrics.add_received(1);
                let message_id = serde_json::from_slice::<FrameHead>(&bytes)
                    .ok()
                    .and_then(|h| h.message_id.map(Cow::into_owned));
                match &message_id {
                    Some(id) => position.clone_from(id),
                    None => tracing::warn!("a reader frame without messageId (archived; cannot be acknowledged)"),
                }
                let item = Item {
                    raw: bytes,
                    source: source.clone(),
                    token: Token { generation, message_id },
                };
                let Some(sender) = sink_tx.as_ref() else { continue };
                if sender.send(item).await.is_err() {
                    return Err(IngestError::Internal("the archive thread stopped".into()));
                }
            }
            _ = ping.tick() => {
                if stopping {
                    continue;
                }
                if last_rx.elapsed() > ping_interval * 3 {
                    return Ok(Ended::Lost(format!(
                        "nothing received for {}s (not even a pong)",
                        last_rx.elapsed().as_secs()
                    )));
                }
                if let Err(e) = tx.send(Message::Ping(Vec::new().into())).await {
                    return Ok(Ended::Lost(format!("cannot send a ping: {e}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_urls() {
        let u = parse_url("wss://pulsar.example/ws/v2/reader/persistent/acme/event-v1/all?readerName=x&messageId=latest").unwrap();
        assert_eq!(u.topic, "persistent://acme/event-v1/all");
        assert_eq!(u.tenant, "acme");
        assert!(u.tls);
        assert_eq!(
            u.with_position("CAEQAQ==", 500),
            "wss://pulsar.example/ws/v2/reader/persistent/acme/event-v1/all?readerName=x&messageId=CAEQAQ%3D%3D&receiverQueueSize=500"
        );
        assert!(parse_url("https://x/ws/v2/reader/persistent/a/b/c").is_err());
        assert!(parse_url("wss://x/ws/v2/consumer/persistent/a/b/c").is_err());
        assert!(parse_url("wss://x/ws/v2/reader/persistent/a/b").is_err());
        assert!(parse_url("wss://k@x/ws/v2/reader/persistent/a/b/c").is_err());
    }
}
