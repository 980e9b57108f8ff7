//! The MQTT source (input shape 4, docs/OPERATIONS.md): subscribe to the 8x8 topic layout at
//! QoS 1 with a persistent session and acknowledge each message only once
//! it is durable.
//!
//! How a message flows: a task polls the rumqttc event loop and hands each
//! PUBLISH to [`MqttSource`], which the shared ingest loop
//! ([`source::run`]) reads and queues to the [`sink`](crate::sink), tagged
//! with the connection generation and packet id; after its batch is durable
//! the loop hands it back and a second task sends the PUBACK. The broker
//! keeps every unacknowledged message in our session (`clean_session =
//! false`, a stable client id) and sends it again after a reconnect or a
//! restart; the archive's dedup makes that harmless.
//!
//! A PUBACK is only sent on the connection that delivered the message
//! (same generation). Messages of an earlier connection are redelivered by
//! the broker on the new one and acknowledged then, so a stale packet id can
//! never acknowledge a different message the broker gave that id since.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccvault_event::parse_topic;
use ccvault_store::{Archive, SourceKind};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    Publish, QoS, SubscribeFilter, SubscribeReasonCode, Transport,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::secrets::{redact_url, Secret};
use crate::sink::{Done, Item, SinkOptions};
use crate::source::{self, Failure, Source};
use crate::{IngestError, Result};

/// The default subscription: every event of every tenant, once.
pub const DEFAULT_FILTER: &str = "+/event-v1/all";

/// Largest MQTT packet (the protocol's limit): larger messages cannot be
/// sent at all; messages over the archive's record limit are rejected by
/// the archive (and acknowledged), never by the connection, which would
/// make the broker redeliver them forever.
pub const MAX_PACKET_BYTES: usize = 268_435_455;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `mqtt://HOST[:PORT]` (TCP, 1883) or `mqtts://HOST[:PORT]` (TLS, 8883).
    pub url: String,
    /// Topic filters; [`DEFAULT_FILTER`] when empty.
    pub topics: Vec<String>,
    /// Stable across restarts: the broker keeps the session under it.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM CA bundle for TLS (the platform's roots otherwise).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub keep_alive: Duration,
    /// The archive was being fed from MQTT: a broker without a session for
    /// the client id on the first connect is worth a warning.
    pub expect_session: bool,
    pub sink: SinkOptions,
    pub backoff: Backoff,
}

impl MqttConfig {
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            topics: Vec::new(),
            client_id: client_id.into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive: Duration::from_secs(30),
            expect_session: false,
            sink: SinkOptions::default(),
            backoff: Backoff::default(),
        }
    }
}

/// A broker address parsed from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `mqtt://HOST[:PORT]` / `mqtts://HOST[:PORT]` (also `tcp://`,
/// `ssl://`, `tls://`; IPv6 hosts in brackets). Credentials in the URL are
/// refused: they would show in `ps`.
pub fn parse_url(url: &str) -> Result<Endpoint> {
    let bad = |why: &str| IngestError::Config(format!("bad MQTT URL {:?}: {why}", redact_url(url)));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected mqtt://HOST:PORT or mqtts://HOST:PORT"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" | "tls" => true,
        _ => {
            return Err(bad(
                "the scheme must be mqtt:// or mqtts:// (also tcp://, or ssl:// and tls:// for mqtts://)",
            ))
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Anywhere after the scheme: a password may hold `/`, `?` or `#`.
    if rest.contains('@') {
        return Err(bad(
            "credentials do not belong in the URL (use --username and --password-file or CCVAULT_MQTT_PASSWORD)",
        ));
    }
    // Topics are --topic's: a path would be silently ignored.
    let after = &rest[authority.len()..];
    if !after.is_empty() && after != "/" {
        // Not quoted: what follows may be a password's end (`:p#w@h`).
        return Err(bad(
            "an MQTT URL names only the broker (host and port), with no path, query or fragment: give topic filters with --topic",
        ));
    }
    let (host, port) = crate::host_and_port(authority).map_err(|why| bad(&why))?;
    let port = match port {
        Some(p) => p,
        None if tls => 8883,
        None => 1883,
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// A stable default client id for the archive in `data_dir`: the broker
/// keeps the persistent session under this name, so it must not change
/// between runs (FNV-1a of the path, stable across Rust versions).
///
/// The path hashed is always the canonical one, so `data_dir` must exist:
/// call this once the archive is open. Hashing the path as typed when it
/// could not be canonicalized (a new archive given by a relative path, as
/// the default `./ccvault-data`) gave the first run another id than every
/// later one, and the messages the broker kept for the first run's session
/// while ccvault was stopped were never delivered.
pub fn default_client_id(data_dir: &std::path::Path) -> Result<String> {
    let path = std::fs::canonicalize(data_dir).map_err(|e| {
        IngestError::Config(format!(
            "cannot resolve the archive path {} for the default MQTT client id: {e}",
            data_dir.display()
        ))
    })?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("ccvault-{:012x}", h & 0xffff_ffff_ffff))
}

/// What the ack task needs to acknowledge one message.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    generation: u64,
    pkid: u16,
    qos: QoS,
}

/// The topic filters to subscribe to: those given, else the default.
fn topics(cfg: &MqttConfig) -> Vec<String> {
    if cfg.topics.is_empty() {
        vec![DEFAULT_FILTER.to_owned()]
    } else {
        cfg.topics.clone()
    }
}

/// The longest keep-alive MQTT can carry.
const MAX_KEEP_ALIVE: Duration = Duration::from_secs(u16::MAX as u64);

/// Checks what the options say by themselves, before anything is opened
/// or read (a caller reports these as a bad command line): the URL, each
/// topic filter, the keep-alive, a password without a user name, a client
/// certificate without its key (or the other way), TLS options without
/// `mqtts://`, and the files of TLS (a CA, a client certificate or key
/// that cannot be read or holds none).
pub fn check_options(cfg: &MqttConfig) -> Result<()> {
    let ep = parse_url(&cfg.url)?;
    for t in &topics(cfg) {
        if !rumqttc::valid_filter(t) {
            return Err(IngestError::Config(format!(
                "invalid MQTT topic filter {t:?} (a filter is levels separated by `/`; `+` stands for one whole level and `#` for the rest, only as the last level)"
            )));
        }
    }
    // MQTT carries the keep-alive in 16 bits of seconds: a longer one
    // wrapped (65536s went as 0, keep-alive off).
    if cfg.keep_alive > MAX_KEEP_ALIVE {
        return Err(IngestError::Config(format!(
            "an MQTT keep-alive of {:?} is longer than MQTT can carry: give at most 65535s (18h12m15s)",
            cfg.keep_alive
        )));
    }
    // ... and in whole seconds: a fraction was cut off, and anything under
    // 5 s went as 5 s, `0s` (keep-alive off, in MQTT) included, in silence
    // until 2026-12-07 (an outside audit).
    if cfg.keep_alive.subsec_nanos() != 0 {
        return Err(IngestError::Config(format!(
            "an MQTT keep-alive of {:?} is not whole seconds, which is all MQTT carries: give e.g. 1s, 30s, or 0s for none",
            cfg.keep_alive
        )));
    }
    if cfg.username.is_none() && cfg.password.is_some() {
        return Err(IngestError::Config(
            "an MQTT password was given without --username".into(),
        ));
    }
    if cfg.client_cert.is_some() != cfg.client_key.is_some() {
        return Err(IngestError::Config(
            "--client-cert and --client-key go together".into(),
        ));
    }
    let tls_options = cfg.ca_file.is_some() || cfg.client_cert.is_some();
    if tls_options && !ep.tls {
        return Err(IngestError::Config(
            "TLS options (--ca-file, --client-cert, --client-key) need an mqtts:// URL".into(),
        ));
    }
    if ep.tls {
        crate::tls_config(cfg.ca_file.as_deref(), client_auth(cfg))?;
    }
    Ok(())
}

/// Refuses a client id that is empty or blank. Not part of
/// [`check_options`]: a caller may set the default id (from the archive's
/// directory) only after those checks.
pub fn check_client_id(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(IngestError::Config("the MQTT client id is empty".into()));
    }
    Ok(())
}

/// The client certificate and key, when both are given.
fn client_auth(cfg: &MqttConfig) -> Option<(&std::path::Path, &std::path::Path)> {
    match (&cfg.client_cert, &cfg.client_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    }
}

fn options(cfg: &MqttConfig) -> Result<(MqttOptions, Vec<String>)> {
    check_options(cfg)?;
    let ep = parse_url(&cfg.url)?;
    check_client_id(&cfg.client_id)?;
    let topics = topics(cfg);
    let mut o = MqttOptions::new(cfg.client_id.clone(), ep.host.clone(), ep.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(cfg.keep_alive)
        .set_max_packet_size(MAX_PACKET_BYTES, 1 << 20)
        .set_request_channel_capacity(cfg.sink.queue.max(1024) * 2);
    match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => {
            o.set_credentials(u.clone(), p.expose().to_owned());
        }
        (Some(u), None) => {
            o.set_credentials(u.clone(), String::new());
        }
        // Refused by `check_options`.
        (None, _) => {}
    }
    if ep.tls {
        let tls = crate::tls_config(cfg.ca_file.as_deref(), client_auth(cfg))?;
        o.set_transport(Transport::tls_with_config(tls.into()));
    }
    Ok((o, topics))
}

/// Archives messages from the broker until `stop` turns true (then
/// commits, acknowledges, disconnects and returns `Ok`) or a permanent
/// error (refused login or subscription, archive failure).
pub async fn run(
    cfg: MqttConfig,
    archive: Archive,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let (sink, backoff) = (cfg.sink.clone(), cfg.backoff.clone());
    let source = MqttSource::new(&cfg)?;
    source::run(source, archive, metrics, stop, sink, backoff).await
}

/// Events of the event loop, as its polling task hands them over.
type Polled = std::result::Result<Event, ConnectionError>;

/// The MQTT transport behind [`Source`].
///
/// rumqttc's event loop must be polled for anything to move, acknowledgements
/// included, and a poll must not be abandoned halfway (it may have taken a
/// request it has not written yet). So one task polls it without pause and
/// hands every event over a channel (which [`Source::next_batch`] may
/// abandon at any time), and another sends the PUBACKs, so acknowledging
/// never waits on reading. After a failed poll the polling task waits until
/// [`Source::connect`] asks for the next attempt, so the run's backoff paces
/// reconnects.
pub struct MqttSource {
    client: AsyncClient,
    /// The event loop until the first connect starts its polling task.
    eventloop: Option<EventLoop>,
    events: mpsc::Receiver<Polled>,
    events_tx: mpsc::Sender<Polled>,
    /// Lets the polling task try again after a failed poll.
    retry: Arc<Notify>,
    /// The PUBACK task's input, taken when closing.
    acks: Option<mpsc::UnboundedSender<Vec<Token>>>,
    acker: Option<tokio::task::JoinHandle<()>>,
    /// Generation of the live connection; 0 while none is live.
    live: Arc<AtomicU64>,
    generation: u64,
    topics: Vec<String>,
    /// Topic -> the shared source string of its records.
    sources: HashMap<String, Arc<str>>,
    /// The broker, `mqtt[s]://HOST:PORT`, for log messages.
    peer: String,
    client_id: String,
    expect_session: bool,
}

impl MqttSource {
    pub fn new(cfg: &MqttConfig) -> Result<MqttSource> {
        let (mqtt_options, topics) = options(cfg)?;
        let ep = parse_url(&cfg.url)?;
        tracing::info!(
            host = %ep.host, port = ep.port, tls = ep.tls, client_id = %cfg.client_id,
            topics = ?topics, "MQTT ingest starting"
        );
        let (client, eventloop) = AsyncClient::new(mqtt_options, cfg.sink.queue.max(1024) * 2);
        let (events_tx, events) = mpsc::channel(1024);
        let live = Arc::new(AtomicU64::new(0));
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acknowledge(acks_rx, client.clone(), live.clone()));
        Ok(MqttSource {
            client,
            eventloop: Some(eventloop),
            events,
            events_tx,
            retry: Arc::new(Notify::new()),
            acks: Some(acks),
            acker: Some(acker),
            live,
            generation: 0,
            topics,
            sources: HashMap::new(),
            peer: ep.to_string(),
            client_id: cfg.client_id.clone(),
            expect_session: cfg.expect_session,
        })
    }

    /// The next event of the event loop.
    async fn poll(&mut self) -> std::result::Result<Event, Failure> {
        match self.events.recv().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                self.live.store(0, Ordering::SeqCst);
                Err(connection_failure(e, &self.peer))
            }
            None => Err(Failure::Fatal(IngestError::Internal(
                "the MQTT event loop stopped".into(),
            ))),
        }
    }

    /// The shared source string of `topic`'s records.
    fn source_of(&mut self, topic: &str) -> Arc<str> {
        if let Some(s) = self.sources.get(topic) {
            return s.clone();
        }
        if parse_topic(topic).is_none() {
            tracing::warn!(topic = %topic, "topic does not follow the 8x8 layout; archiving its messages anyway");
        }
        if self.sources.len() > 100_000 {
            self.sources.clear();
        }
        let s: Arc<str> = Arc::from(topic);
        self.sources.insert(topic.to_owned(), s.clone());
        s
    }
}

impl Source for MqttSource {
    type Token = Token;
    const KIND: SourceKind = SourceKind::Mqtt;

    fn name(&self) -> &'static str {
        "MQTT"
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }

    async fn connect(&mut self) -> std::result::Result<(), Failure> {
        match self.eventloop.take() {
            Some(eventloop) => {
                tokio::spawn(poll_loop(
                    eventloop,
                    self.events_tx.clone(),
                    self.retry.clone(),
                ));
            }
            None => self.retry.notify_one(),
        }
        loop {
            let event = match self.poll().await {
                Ok(event) => event,
                // Dropped before the broker's answer on a plain URL: the
                // likeliest cause is a port that speaks TLS (the other
                // slip than `mqtts://` at a plain port, which says so).
                Err(Failure::Lost(why))
                    if self.peer.starts_with("mqtt://")
                        && (why.contains("Connection reset") || why.contains("eof")) =>
                {
                    return Err(Failure::Lost(format!(
                        "{why} (dropped before the broker answered: is this port one that speaks TLS? \
                         mqtts:// URLs are TLS, mqtt:// plain)"
                    )));
                }
                Err(e) => return Err(e),
            };
            if let Event::Incoming(Packet::ConnAck(ack)) = event {
                self.generation += 1;
                self.live.store(self.generation, Ordering::SeqCst);
                tracing::info!(session_present = ack.session_present, "MQTT session");
                // A new session where ours should exist (a reconnect within
                // this run, or an archive already fed from MQTT): whatever
                // the broker received for the old one while we were away
                // is gone, and nothing else would say so.
                if !ack.session_present && (self.generation > 1 || self.expect_session) {
                    tracing::warn!(
                        client_id = %self.client_id,
                        "the broker at {} holds no session for this client id although this archive was being fed from MQTT: messages published while ccvault was not connected may be lost (a changed --client-id or --data-dir path, an expired session, or a broker restart without persistence)",
                        self.peer
                    );
                }
                // Subscribing again on a resumed session is harmless (at
                // worst retained messages come again, as duplicates) and
                // picks up a changed --topic list.
                let filters = self
                    .topics
                    .iter()
                    .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                return self.client.try_subscribe_many(filters).map_err(|e| {
                    Failure::Fatal(IngestError::Internal(format!("cannot subscribe: {e}")))
                });
            }
        }
    }

    async fn next_batch(
        &mut self,
        batch: &mut Vec<Item<Token>>,
    ) -> std::result::Result<(), Failure> {
        loop {
            match self.poll().await? {
                Event::Incoming(Packet::Publish(p)) => {
                    let source = self.source_of(&p.topic);
                    batch.push(Item {
                        raw: p.payload.to_vec(),
                        source,
                        token: Token {
                            generation: self.generation,
                            pkid: p.pkid,
                            qos: p.qos,
                        },
                    });
                    return Ok(());
                }
                Event::Incoming(Packet::SubAck(s)) => check_suback(&s.return_codes, &self.topics)?,
                _ => {}
            }
        }
    }

    async fn ack(&mut self, done: Vec<Done<Token>>) -> std::result::Result<u64, Failure> {
        let tokens: Vec<Token> = done
            .into_iter()
            .map(|d| d.token)
            .filter(|t| t.qos != QoS::AtMostOnce && t.generation == self.generation)
            .collect();
        let n = tokens.len() as u64;
        let sent = self.acks.as_ref().is_some_and(|a| a.send(tokens).is_ok());
        if !sent {
            return Err(Failure::Fatal(IngestError::Internal(
                "the MQTT acknowledging task stopped".into(),
            )));
        }
        Ok(n)
    }

    async fn close(&mut self) {
        // The last PUBACKs go out through the event loop before the
        // DISCONNECT queued after them; reading on keeps it polling.
        self.acks = None;
        if let Some(mut acker) = self.acker.take() {
            let drained = tokio::time::timeout(Duration::from_secs(60), async {
                loop {
                    tokio::select! {
                        _ = &mut acker => return,
                        e = self.events.recv() => if e.is_none() { return },
                    }
                }
            });
            if drained.await.is_err() {
                tracing::warn!("timed out waiting for the last acknowledgements");
            }
        }
        let _ = self.client.try_disconnect();
        // Until the broker, having read the DISCONNECT (and so every PUBACK
        // before it), closes the connection: the event loop's own
        // `Outgoing::Disconnect` comes before its bytes are surely out.
        let disconnected = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match self.events.recv().await {
                    Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            }
        });
        let _ = disconnected.await;
        self.live.store(0, Ordering::SeqCst);
    }
}

/// Polls the event loop for as long as the source lives, handing each event
/// over; after a failure, waits for the source's next connect.
async fn poll_loop(mut eventloop: EventLoop, events: mpsc::Sender<Polled>, retry: Arc<Notify>) {
    loop {
        let polled = eventloop.poll().await;
        let failed = polled.is_err();
        if events.send(polled).await.is_err() {
            return;
        }
        if failed {
            tokio::select! {
                _ = retry.notified() => {}
                _ = events.closed() => return,
            }
        }
    }
}

/// What a failed poll of the connection to `peer` means: a refused login
/// or client is permanent (said naming the broker: the run ends on it),
/// anything else is a lost connection.
fn connection_failure(e: ConnectionError, peer: &str) -> Failure {
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => Failure::Fatal(IngestError::Auth(format!(
            "the MQTT broker {peer} refused the login ({code:?}); check --username and the password"
        ))),
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadClientId | ConnectReturnCode::RefusedProtocolVersion),
        ) => Failure::Fatal(IngestError::Refused(format!(
            "the MQTT broker {peer} refused the connection ({code:?})"
        ))),
        ConnectionError::ConnectionRefused(code) => Failure::Lost(format!("refused: {code:?}")),
        e => Failure::Lost(crate::explain_tls(e.to_string())),
    }
}

/// A refused subscription is permanent (an ACL, most likely).
fn check_suback(
    codes: &[SubscribeReasonCode],
    topics: &[String],
) -> std::result::Result<(), Failure> {
    for (code, topic) in codes.iter().zip(topics) {
        match code {
            SubscribeReasonCode::Failure => {
                return Err(Failure::Fatal(IngestError::Refused(format!(
                    "the broker refused the subscription to {topic:?} (check the ACL)"
                ))))
            }
            SubscribeReasonCode::Success(qos) => {
                tracing::info!(topic = %topic, ?qos, "subscribed");
                if *qos == QoS::AtMostOnce {
                    tracing::warn!(topic = %topic, "the broker granted QoS 0: messages on it can be lost in transit");
                }
            }
        }
    }
    Ok(())
}

/// Sends the PUBACKs of durable messages, as long as the connection that
/// delivered them is still the live one.
async fn acknowledge(
    mut acks: mpsc::UnboundedReceiver<Vec<Token>>,
    client: AsyncClient,
    live: Arc<AtomicU64>,
) {
    let mut ack = Publish::new("", QoS::AtLeastOnce, Vec::<u8>::new());
    while let Some(tokens) = acks.recv().await {
        for t in tokens {
            if t.generation != live.load(Ordering::SeqCst) {
                continue;
            }
            ack.qos = t.qos;
            ack.pkid = t.pkid;
            if client.ack(&ack).await.is_err() {
                // The event loop is gone; the broker redelivers.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(parse_url("mqtts://broker.example").unwrap().port, 8883);
        assert_eq!(parse_url("mqtt://[::1]:1999").unwrap().host, "::1");
        assert!(parse_url("mqtt://u:p@host").is_err());
        assert!(parse_url("http://host").is_err());
        assert!(parse_url("host:1883").is_err());
        // Port 0 retried forever; a port in brackets' wake was ignored.
        for (url, why) in [
            ("mqtt://h:0", "port 0"),
            ("mqtt://h:", "bad port"),
            ("mqtt://[::1]x", "after ']'"),
        ] {
            let got = parse_url(url).unwrap_err().to_string();
            assert!(got.contains(why), "{url}: {got}");
        }
        // A trailing slash is the broker; a path, query or fragment would
        // be silently ignored, and is refused.
        assert_eq!(parse_url("mqtt://h:1/").unwrap().port, 1);
        for url in ["mqtt://h:1/events", "mqtt://h?x=1", "mqtt://h#f"] {
            let why = parse_url(url).unwrap_err().to_string();
            assert!(why.contains("--topic"), "{url}: {why}");
        }
        // Credentials are found past a `/`, `?` or `#` in the password.
        for url in ["mqtt://u:p/w@h", "mqtt://u:p#w@h", "mqtt://u:p?w@h"] {
            let why = parse_url(url).unwrap_err().to_string();
            assert!(
                why.contains("credentials") && !why.contains("p/w") && !why.contains("w@"),
                "{why}"
            );
        }
    }

    #[test]
    fn the_keep_alive_goes_as_given_in_whole_seconds() {
        let cfg = |keep_alive| MqttConfig {
            keep_alive,
            ..MqttConfig::new("mqtt://127.0.0.1:1883", "ccvault-test")
        };
        for secs in [0, 1, 4, 30, 65_535] {
            let (o, _) = options(&cfg(Duration::from_secs(secs))).unwrap();
            assert_eq!(o.keep_alive(), Duration::from_secs(secs));
        }
        for bad in [Duration::from_millis(1_500), Duration::from_millis(7_500)] {
            let why = options(&cfg(bad)).unwrap_err().to_string();
            assert!(why.contains("whole seconds"), "{why}");
        }
        let why = options(&cfg(Duration::from_secs(65_536)))
            .unwrap_err()
            .to_string();
        assert!(why.contains("at most 65535s"), "{why}");
    }

    #[test]
    fn client_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = default_client_id(dir.path()).unwrap();
        assert_eq!(a, default_client_id(dir.path()).unwrap());
        assert!(a.starts_with("ccvault-") && a.len() <= 23, "{a}");
        // The same archive by another spelling of its path: the same session.
        let other = dir.path().join(".").join("");
        assert_eq!(a, default_client_id(&other).unwrap());
        // No directory, no id (never one hashed from the path as typed).
        assert!(default_client_id(&dir.path().join("missing")).is_err());
    }
}
