//! The Pulsar WebSocket source (input shape 2, docs/OPERATIONS.md, the transport 8x8
//! uses today): the reader and the consumer endpoint behind one [`Source`].
//!
//! Protocol (Pulsar WebSocket API):
//! - Reader: `wss://HOST/ws/v2/reader/persistent/{tenant}/{namespace}/{topic}`
//!   with query `messageId=earliest|latest|<base64 id>` (the reader starts
//!   after that message) and `receiverQueueSize=N`.
//! - Consumer: `wss://HOST/ws/v2/consumer/persistent/{tenant}/{namespace}/{topic}/{subscription}`
//!   with query `subscriptionType=Exclusive|Failover|Shared` and
//!   `receiverQueueSize=N`.
//! - The API key goes in the `X-API-Key` header (marked sensitive, never
//!   logged); see `ws`.
//! - Each message is a JSON text frame
//!   `{"messageId","payload"(base64),"properties","publishTime","redeliveryCount"}`;
//!   the frame is handed to the archive as-is (it decodes the envelope).
//! - Both acknowledge with `{"messageId": ...}`, sent only after the message
//!   is durable. A reader has no subscription, so its acks move no cursor:
//!   the proxy uses them for flow control (at most `receiverQueueSize`
//!   unacknowledged messages). A consumer's acks move the subscription's
//!   cursor: what is not acknowledged is delivered again.
//!
//! Position:
//! - Reader: the position is the archive itself. On start the reader asks
//!   for the messages after the last archived `messageId` of this topic
//!   ([`ccvault_store::ArchiveReader::last_message_id`]); `--start` applies
//!   only when there is none. After a dropped connection within a run it
//!   resumes after the last message handed to the archive (which will be
//!   durable before anything is acknowledged; if the process dies first,
//!   the next start resumes from the archive).
//! - Consumer: the broker keeps the cursor. Every message not acknowledged
//!   when a connection ends (dropped, killed, or the archive failed) is
//!   delivered again, to this process after a reconnect or to another
//!   consumer of a Failover/Shared subscription. A batch that cannot be made
//!   durable ends the run (the archive is unusable), so its messages are
//!   simply left unacknowledged: closing the connection hands them back to
//!   the broker at once, where a negative acknowledgement would only ask for
//!   a redelivery to this stopping consumer.
//!
//! Replays are deduplicated by the archive either way. Acknowledgements of
//! an earlier connection are never sent on a later one.
//!
//! Authentication failures (HTTP 401/403 on the upgrade) are permanent:
//! the run ends with [`IngestError::Auth`] and no retry.

mod url;
mod ws;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvault_store::{Archive, ArchiveReader, Outcome, SourceKind};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

pub use self::url::{parse_url, Endpoint, PulsarUrl, SubscriptionType};
use self::ws::{connect, ConnectError, Ws};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::secrets::Secret;
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
    /// The reader or consumer URL (`ws://` or `wss://`).
    pub url: String,
    pub api_key: Option<Secret>,
    /// Reader only: where to start without an archived position.
    pub start: Start,
    /// Consumer only: how the subscription is shared.
    pub subscription_type: SubscriptionType,
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
            subscription_type: SubscriptionType::Exclusive,
            receiver_queue_size: 1000,
            ca_file: None,
            ping_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(45),
            sink: SinkOptions::default(),
            backoff: Backoff::default(),
        }
    }
}

/// Checks what the options say by themselves, before anything is opened
/// or read (a caller reports these as a bad command line): the URL and,
/// for `wss://`, the CA file.
pub fn check_options(cfg: &PulsarConfig) -> Result<()> {
    if parse_url(&cfg.url)?.tls {
        crate::tls_config(cfg.ca_file.as_deref(), None)?;
    } else if cfg.ca_file.is_some() {
        // As MQTT refuses it: a CA file with a plain URL would read as a
        // pinned TLS connection while the key went out in the clear.
        return Err(IngestError::Config(
            "--ca-file needs a wss:// URL (a ws:// connection is not encrypted)".into(),
        ));
    }
    Ok(())
}

/// What the source needs to acknowledge one message.
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

/// Archives the reader's or consumer's messages until `stop` turns true (then commits,
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

/// One live connection.
struct Connection {
    tx: SplitSink<Ws, Message>,
    rx: SplitStream<Ws>,
    ping: tokio::time::Interval,
    last_rx: Instant,
}

/// Where the next connection starts.
#[derive(Debug)]
enum Mode {
    /// The reader starts after this message (or at `earliest`/`latest`).
    Reader { position: String },
    /// The broker keeps the subscription's cursor.
    Consumer {
        subscription: String,
        subscription_type: SubscriptionType,
    },
}

/// The Pulsar WebSocket reader or consumer behind [`Source`].
pub struct PulsarSource {
    url: PulsarUrl,
    api_key: Option<Secret>,
    connector: Connector,
    receiver_queue_size: u32,
    ping_interval: Duration,
    connect_timeout: Duration,
    mode: Mode,
    /// The topic, as the source of every record.
    source: Arc<str>,
    generation: u64,
    connection: Option<Connection>,
}

impl PulsarSource {
    /// For a reader, reads the resume position of the topic from `archive`.
    pub fn new(cfg: &PulsarConfig, archive: &Archive) -> Result<PulsarSource> {
        let url = parse_url(&cfg.url)?;
        let connector = if url.tls {
            Connector::Rustls(Arc::new(crate::tls_config(cfg.ca_file.as_deref(), None)?))
        } else {
            Connector::Plain
        };
        let mode = match &url.endpoint {
            Endpoint::Reader => Mode::Reader {
                position: reader_position(cfg.start, archive, &url.topic)?,
            },
            Endpoint::Consumer { subscription } => {
                tracing::info!(topic = %url.topic, subscription = %subscription, "the subscription keeps the position");
                Mode::Consumer {
                    subscription: subscription.clone(),
                    subscription_type: cfg.subscription_type,
                }
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
            mode,
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

/// The reader's start: after the last archived message of `topic`, else
/// `start`.
fn reader_position(start: Start, archive: &Archive, topic: &str) -> Result<String> {
    let archived = ArchiveReader::of_writer(archive)?.last_message_id(SourceKind::Pulsar, topic)?;
    Ok(match archived {
        Some(id) => {
            tracing::info!(topic = %topic, message_id = %id, "resuming after the last archived message");
            id
        }
        None => {
            let p = match start {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
            };
            tracing::info!(topic = %topic, start = p, "no archived position for this topic");
            p.to_owned()
        }
    })
}

impl Source for PulsarSource {
    type Token = Token;
    const KIND: SourceKind = SourceKind::Pulsar;

    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Reader { .. } => "the Pulsar reader",
            Mode::Consumer { .. } => "the Pulsar consumer",
        }
    }

    fn peer(&self) -> String {
        crate::secrets::redact_url(&self.url.base)
    }

    async fn connect(&mut self) -> std::result::Result<(), Failure> {
        self.connection = None;
        let queue = self.receiver_queue_size.to_string();
        let target = match &self.mode {
            Mode::Reader { position } => {
                tracing::info!(topic = %self.url.topic, position = %position, "connecting to the Pulsar reader");
                self.url
                    .with_params(&[("messageId", position), ("receiverQueueSize", &queue)])
            }
            Mode::Consumer {
                subscription,
                subscription_type,
            } => {
                tracing::info!(topic = %self.url.topic, subscription = %subscription, subscription_type = subscription_type.as_str(), "connecting to the Pulsar consumer");
                self.url.with_params(&[
                    ("subscriptionType", subscription_type.as_str()),
                    ("receiverQueueSize", &queue),
                ])
            }
        };
        let ws = connect(
            &target,
            self.api_key.as_ref(),
            Some(self.connector.clone()),
            self.connect_timeout,
        )
        .await
        .map_err(|e| match e {
            // Said once, as the process's last words: they name the
            // endpoint (credentials redacted), as the retried failures'
            // warnings do, and whether a key was sent (an outside audit
            // found neither).
            ConnectError::Auth(why) => {
                let key = match self.api_key {
                    Some(_) => "",
                    None => " (no API key was given)",
                };
                Failure::Fatal(IngestError::Auth(format!("{}{key}: {why}", self.peer())))
            }
            ConnectError::Refused(why) => {
                Failure::Fatal(IngestError::Refused(format!("{}: {why}", self.peer())))
            }
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
                            "nothing received for {:.1}s (not even a pong)",
                            c.last_rx.elapsed().as_secs_f64()
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
        match (&message_id, &mut self.mode) {
            (Some(id), Mode::Reader { position }) => position.clone_from(id),
            (Some(_), Mode::Consumer { .. }) => {}
            (None, _) => {
                // A control frame included: the sink counts it as control,
                // anything else is archived or quarantined.
                tracing::warn!(
                    "a Pulsar frame without messageId: it cannot be acknowledged (an event in it is archived, a control frame counted)"
                )
            }
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
            // The sink logged the rejection as an error, without the id;
            // said here at the default level, as the id is all that finds
            // the message at the broker once it is acknowledged (it was
            // said only with -v, as a Rust debug string: an outside audit).
            if let Outcome::Rejected { reason } = &d.outcome {
                let id = d.token.message_id.as_deref().unwrap_or("(none)");
                tracing::warn!(
                    "acknowledging message {id} without archiving it ({reason}): retrying it could never archive it"
                );
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
            // Until the server answers the close (or ends the stream): a
            // process that leaves with frames unread makes the kernel reset
            // the connection, and a server may drop acknowledgements it had
            // not read yet (the MQTT broker did).
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(frame)) = c.rx.next().await {
                    if let Message::Close(_) = frame {
                        return;
                    }
                }
            })
            .await;
        }
    }
}
