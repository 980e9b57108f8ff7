//! The Pulsar WebSocket reader source (input shape 2, docs/OPERATIONS.md, the transport 8x8
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
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::secrets::{is_secret_query_key, redact_url, Secret};
use crate::sink::{Done, Item, SinkOptions};
use crate::source::{self, Failure, Source};
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
            connect_timeout: Duration::from_secs(45),
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
    let bad = |why: &str| {
        IngestError::Config(format!(
            "bad Pulsar reader URL {:?}: {why}",
            redact_url(url)
        ))
    };
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
    if let Some(key) = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|key| is_secret_query_key(key))
    {
        return Err(bad(&format!(
            "the credential {key:?} does not belong in the URL, where `ps` and logs would show it: \
             put the API key in a file given with --api-key-file, or in CCVAULT_PULSAR_API_KEY"
        )));
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

/// Archives the reader's messages until `stop` turns true (then commits,
/// acknowledges, closes and returns `Ok`) or a permanent error (refused API
/// key, archive failure).
pub async fn run(
    cfg: PulsarConfig,
    archive: Archive,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let source = PulsarSource::new(&cfg, &archive)?;
    source::run(source, archive, metrics, stop, cfg.sink, cfg.backoff).await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One live reader connection.
struct Connection {
    tx: SplitSink<Ws, Message>,
    rx: SplitStream<Ws>,
    ping: tokio::time::Interval,
    last_rx: Instant,
}

/// The Pulsar WebSocket reader behind [`Source`].
pub struct PulsarSource {
    url: ReaderUrl,
    api_key: Option<Secret>,
    connector: Connector,
    receiver_queue_size: u32,
    ping_interval: Duration,
    connect_timeout: Duration,
    /// The reader starts after this message (or at `earliest`/`latest`).
    position: String,
    /// The topic, as the source of every record.
    source: Arc<str>,
    generation: u64,
    connection: Option<Connection>,
}

impl PulsarSource {
    /// Reads the resume position of the topic from `archive`.
    pub fn new(cfg: &PulsarConfig, archive: &Archive) -> Result<PulsarSource> {
        let url = parse_url(&cfg.url)?;
        let connector = if url.tls {
            Connector::Rustls(Arc::new(crate::tls_config(cfg.ca_file.as_deref(), None)?))
        } else {
            Connector::Plain
        };
        let archived =
            ArchiveReader::of_writer(archive)?.last_message_id(SourceKind::Pulsar, &url.topic)?;
        let position = match archived {
            Some(id) => {
                tracing::info!(topic = %url.topic, message_id = %id, "resuming after the last archived message");
                id
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
        Ok(PulsarSource {
            source: Arc::from(url.topic.as_str()),
            url,
            api_key: cfg.api_key.clone(),
            connector,
            receiver_queue_size: cfg.receiver_queue_size.max(1),
            ping_interval: cfg.ping_interval.max(Duration::from_millis(100)),
            connect_timeout: cfg.connect_timeout,
            position,
            generation: 0,
            connection: None,
        })
    }

    fn connection(&mut self) -> std::result::Result<&mut Connection, Failure> {
        self.connection
            .as_mut()
            .ok_or_else(|| Failure::Lost("not connected".into()))
    }
}

impl Source for PulsarSource {
    type Token = Token;
    const KIND: SourceKind = SourceKind::Pulsar;
    const NAME: &'static str = "the Pulsar reader";

    async fn connect(&mut self) -> std::result::Result<(), Failure> {
        self.connection = None;
        let target = self
            .url
            .with_position(&self.position, self.receiver_queue_size);
        tracing::info!(topic = %self.url.topic, position = %self.position, "connecting to the Pulsar reader");
        let ws = connect(
            &target,
            self.api_key.as_ref(),
            Some(self.connector.clone()),
            self.connect_timeout,
        )
        .await
        .map_err(|e| match e {
            ConnectError::Auth(why) => Failure::Fatal(IngestError::Auth(why)),
            ConnectError::Config(why) => Failure::Fatal(IngestError::Config(why)),
            ConnectError::Transient(why) => Failure::Lost(why),
        })?;
        let (tx, rx) = ws.split();
        let period = self.ping_interval;
        self.generation += 1;
        self.connection = Some(Connection {
            tx,
            rx,
            ping: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
            last_rx: Instant::now(),
        });
        Ok(())
    }

    async fn next_batch(
        &mut self,
        batch: &mut Vec<Item<Token>>,
    ) -> std::result::Result<(), Failure> {
        let period = self.ping_interval;
        let c = self.connection()?;
        let bytes = loop {
            tokio::select! {
                frame = c.rx.next() => {
                    c.last_rx = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(t))) => break t.as_str().as_bytes().to_vec(),
                        Some(Ok(Message::Binary(b))) => break b.to_vec(),
                        Some(Ok(Message::Close(f))) => {
                            return Err(Failure::Lost(match f {
                                Some(f) => format!("closed by the peer: {} {}", f.code, f.reason),
                                None => "closed by the peer".into(),
                            }));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(Failure::Lost(e.to_string())),
                        None => return Err(Failure::Lost("connection closed".into())),
                    }
                }
                _ = c.ping.tick() => {
                    if c.last_rx.elapsed() > period * 3 {
                        return Err(Failure::Lost(format!(
                            "nothing received for {}s (not even a pong)",
                            c.last_rx.elapsed().as_secs()
                        )));
                    }
                    if let Err(e) = c.tx.send(Message::Ping(Vec::new().into())).await {
                        return Err(Failure::Lost(format!("cannot send a ping: {e}")));
                    }
                }
            }
        };
        let message_id = serde_json::from_slice::<FrameHead>(&bytes)
            .ok()
            .and_then(|h| h.message_id.map(Cow::into_owned));
        match &message_id {
            Some(id) => self.position.clone_from(id),
            None => tracing::warn!(
                "a reader frame without messageId (archived; cannot be acknowledged)"
            ),
        }
        batch.push(Item {
            raw: bytes,
            source: self.source.clone(),
            token: Token {
                generation: self.generation,
                message_id,
            },
        });
        Ok(())
    }

    async fn ack(&mut self, done: Vec<Done<Token>>) -> std::result::Result<u64, Failure> {
        let generation = self.generation;
        let c = self.connection()?;
        let mut n = 0u64;
        for d in done {
            if let Outcome::Rejected { reason } = &d.outcome {
                tracing::error!(message_id = ?d.token.message_id, "message not archived: {reason}");
            }
            let Some(id) = d.token.message_id else {
                continue;
            };
            if d.token.generation != generation {
                continue;
            }
            let ack = serde_json::json!({ "messageId": id }).to_string();
            if let Err(e) = c.tx.feed(Message::text(ack)).await {
                return Err(Failure::Lost(format!(
                    "cannot send an acknowledgement: {e}"
                )));
            }
            n += 1;
        }
        if let Err(e) = c.tx.flush().await {
            return Err(Failure::Lost(format!("cannot send acknowledgements: {e}")));
        }
        Ok(n)
    }

    async fn close(&mut self) {
        if let Some(mut c) = self.connection.take() {
            let _ = c.tx.send(Message::Close(None)).await;
        }
    }
}

enum ConnectError {
    Auth(String),
    Config(String),
    Transient(String),
}

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
