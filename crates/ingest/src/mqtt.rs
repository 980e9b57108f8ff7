//! The MQTT source (SPEC §2 shape 4): subscribe to the 8x8 topic layout at
//! QoS 1 with a persistent session and acknowledge each message only once
//! it is durable.
//!
//! How a message flows: the network task reads a PUBLISH from the event
//! loop and queues it to the [`sink`](crate::sink) tagged with the
//! connection generation and packet id; after its batch is durable the ack
//! task sends the PUBACK. The broker keeps every unacknowledged message in
//! our session (`clean_session = false`, a stable client id) and sends it
//! again after a reconnect or a restart; the archive's dedup makes that
//! harmless.
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

use ccvault_store::{Archive, SourceKind};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode, Transport,
};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::secrets::Secret;
use crate::shutdown::requested;
use crate::sink::{self, Done, Item, SinkOptions};
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

/// Parses `mqtt://HOST[:PORT]` / `mqtts://HOST[:PORT]` (also `tcp://`,
/// `ssl://`, `tls://`; IPv6 hosts in brackets). Credentials in the URL are
/// refused: they would show in `ps`.
pub fn parse_url(url: &str) -> Result<Endpoint> {
    let bad = |why: &str| IngestError::Config(format!("bad MQTT URL {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected mqtt://HOST:PORT or mqtts://HOST:PORT"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" | "tls" => true,
        _ => return Err(bad("the scheme must be mqtt:// or mqtts://")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad(
            "credentials do not belong in the URL (use --username and --password-file or CCVAULT_MQTT_PASSWORD)",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        None if tls => 8883,
        None => 1883,
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// What an 8x8 topic says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `{tenant}/event-v1/all`
    AllEvents,
    /// `{tenant}/event-v1/{EventType}`
    EventType(&'a str),
    /// `{tenant}/agent-v1/{agentId}`
    Agent(&'a str),
}

/// An 8x8 topic: the tenant and what the topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a> {
    pub tenant: &'a str,
    pub kind: TopicKind<'a>,
}

/// Reads an 8x8 topic name; `None` when it does not follow the layout (such
/// messages are archived all the same, with the topic as their source).
pub fn parse_topic(topic: &str) -> Option<Topic<'_>> {
    let mut parts = topic.split('/');
    let (tenant, family, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || tenant.is_empty() || leaf.is_empty() {
        return None;
    }
    let kind = match (family, leaf) {
        ("event-v1", "all") => TopicKind::AllEvents,
        ("event-v1", t) => TopicKind::EventType(t),
        ("agent-v1", a) => TopicKind::Agent(a),
        _ => return None,
    };
    Some(Topic { tenant, kind })
}

/// A stable default client id for the archive in `data_dir`: the broker
/// keeps the persistent session under this name, so it must not change
/// between runs (FNV-1a of the path, stable across Rust versions).
pub fn default_client_id(data_dir: &std::path::Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("ccvault-{:012x}", h & 0xffff_ffff_ffff)
}

/// What the ack task needs to acknowledge one message.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    generation: u64,
    pkid: u16,
    qos: QoS,
}

fn options(cfg: &MqttConfig) -> Result<(MqttOptions, Vec<String>)> {
    let ep = parse_url(&cfg.url)?;
    if cfg.client_id.trim().is_empty() {
        return Err(IngestError::Config("the MQTT client id is empty".into()));
    }
    let topics = if cfg.topics.is_empty() {
        vec![DEFAULT_FILTER.to_owned()]
    } else {
        cfg.topics.clone()
    };
    for t in &topics {
        if !rumqttc::valid_filter(t) {
            return Err(IngestError::Config(format!(
                "invalid MQTT topic filter {t:?}"
            )));
        }
    }
    let mut o = MqttOptions::new(cfg.client_id.clone(), ep.host.clone(), ep.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(cfg.keep_alive.max(Duration::from_secs(5)))
        .set_max_packet_size(MAX_PACKET_BYTES, 1 << 20)
        .set_request_channel_capacity(cfg.sink.queue.max(1024) * 2);
    match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => {
            o.set_credentials(u.clone(), p.expose().to_owned());
        }
        (Some(u), None) => {
            o.set_credentials(u.clone(), String::new());
        }
        (None, Some(_)) => {
            return Err(IngestError::Config(
                "an MQTT password was given without --username".into(),
            ))
        }
        (None, None) => {}
    }
    let client_auth = match (&cfg.client_cert, &cfg.client_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => {
            return Err(IngestError::Config(
                "--client-cert and --client-key go together".into(),
            ))
        }
    };
    if ep.tls || cfg.ca_file.is_some() || client_auth.is_some() {
        if !ep.tls {
            return Err(IngestError::Config(
                "TLS options need an mqtts:// URL".into(),
            ));
        }
        let tls = crate::tls_config(cfg.ca_file.as_deref(), client_auth)?;
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
    let (mqtt_options, topics) = options(&cfg)?;
    let ep = parse_url(&cfg.url)?;
    tracing::info!(
        host = %ep.host, port = ep.port, tls = ep.tls, client_id = %cfg.client_id,
        topics = ?topics, "MQTT ingest starting"
    );
    let (client, eventloop) = AsyncClient::new(mqtt_options, cfg.sink.queue.max(1024) * 2);
    let (sink_tx, done_rx, sink_thread) =
        sink::start::<Token>(archive, SourceKind::Mqtt, metrics.clone(), cfg.sink)?;
    let generation = Arc::new(AtomicU64::new(0));

    let mut net = tokio::spawn(network(
        eventloop,
        client.clone(),
        sink_tx,
        generation.clone(),
        metrics.clone(),
        stop.clone(),
        cfg.backoff.clone(),
        topics,
    ));
    let mut acker = tokio::spawn(acknowledge(
        done_rx,
        client.clone(),
        generation,
        metrics.clone(),
    ));
    let mut stop = stop;

    let outcome: Result<()> = tokio::select! {
        r = &mut net => {
            // A permanent error (or the archive thread died): the sink
            // sender is gone with the task, so the sink drains and ends.
            let r = flatten(r);
            let _ = (&mut acker).await;
            let s = sink_thread.join().await;
            return r.and(s);
        }
        _ = &mut acker => {
            // The done channel closed while not stopping: the archive
            // thread ended on an error.
            net.abort();
            return match sink_thread.join().await {
                Ok(()) => Err(IngestError::Internal("the archive thread ended unexpectedly".into())),
                Err(e) => Err(e),
            };
        }
        _ = requested(&mut stop) => Ok(()),
    };

    // Stopping: the network task has dropped its sink sender and discards
    // new messages; the sink commits what it holds; the ack task sends the
    // last PUBACKs through the still-running network task.
    if tokio::time::timeout(Duration::from_secs(60), &mut acker)
        .await
        .is_err()
    {
        tracing::warn!("timed out waiting for the last acknowledgements");
        acker.abort();
    }
    let sink_result = sink_thread.join().await;
    let _ = client.try_disconnect();
    match tokio::time::timeout(Duration::from_secs(5), &mut net).await {
        Ok(r) => {
            if let Err(e) = flatten(r) {
                tracing::warn!("while disconnecting: {e}");
            }
        }
        Err(_) => net.abort(),
    }
    metrics.set_connected(false);
    outcome.and(sink_result)
}

fn flatten(r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    match r {
        Ok(r) => r,
        Err(e) => Err(IngestError::Internal(format!("MQTT task failed: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn network(
    mut eventloop: EventLoop,
    client: AsyncClient,
    sink_tx: mpsc::Sender<Item<Token>>,
    generation: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut backoff: Backoff,
    topics: Vec<String>,
) -> Result<()> {
    let mut sink_tx = Some(sink_tx);
    let mut sources: HashMap<String, Arc<str>> = HashMap::new();
    let mut gen = 0u64;
    loop {
        let event = if sink_tx.is_none() {
            eventloop.poll().await
        } else {
            tokio::select! {
                biased;
                _ = requested(&mut stop) => {
                    sink_tx = None;
                    continue;
                }
                e = eventloop.poll() => e,
            }
        };
        let stopping = sink_tx.is_none();
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                gen += 1;
                generation.store(gen, Ordering::SeqCst);
                backoff.reset();
                metrics.set_connected(true);
                tracing::info!(session_present = ack.session_present, "MQTT connected");
                // Subscribing again on a resumed session is harmless (at
                // worst retained messages come again, as duplicates) and
                // picks up a changed --topic list.
                if !stopping {
                    let filters = topics
                        .iter()
                        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        return Err(IngestError::Internal(format!("cannot subscribe: {e}")));
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(tx) = &sink_tx else {
                    // Stopping: not archived, not acknowledged; the broker
                    // keeps it for the next run.
                    continue;
                };
                metrics.add_received(1);
                let source = match sources.get(p.topic.as_str()) {
                    Some(s) => s.clone(),
                    None => {
                        if parse_topic(&p.topic).is_none() {
                            tracing::warn!(topic = %p.topic, "topic does not follow the 8x8 layout; archiving its messages anyway");
                        }
                        if sources.len() > 100_000 {
                            sources.clear();
                        }
                        let s: Arc<str> = Arc::from(p.topic.as_str());
                        sources.insert(p.topic.clone(), s.clone());
                        s
                    }
                };
                let item = Item {
                    raw: p.payload.to_vec(),
                    source,
                    token: Token {
                        generation: gen,
                        pkid: p.pkid,
                        qos: p.qos,
                    },
                };
                if tx.send(item).await.is_err() {
                    return Err(IngestError::Internal(
                        "the archive thread stopped".into(),
                    ));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                for (code, topic) in s.return_codes.iter().zip(&topics) {
                    match code {
                        SubscribeReasonCode::Failure => {
                            return Err(IngestError::Refused(format!(
                                "the broker refused the subscription to {topic:?} (check the ACL)"
                            )))
                        }
                        SubscribeReasonCode::Success(qos) => {
                            tracing::info!(topic = %topic, ?qos, "subscribed");
                            if *qos == QoS::AtMostOnce {
                                tracing::warn!(topic = %topic, "the broker granted QoS 0: messages on it can be lost in transit");
                            }
                        }
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if stopping => return Ok(()),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => match code {
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                    return Err(IngestError::Auth(format!(
                        "the MQTT broker refused the login ({code:?}); check --username and the password"
                    )))
                }
                ConnectReturnCode::BadClientId | ConnectReturnCode::RefusedProtocolVersion => {
                    return Err(IngestError::Refused(format!(
                        "the MQTT broker refused the connection ({code:?})"
                    )))
                }
                _ => {
                    if stopping {
                        return Ok(());
                    }
                    retry_pause(&mut backoff, &metrics, &mut stop, &mut sink_tx, &format!("refused: {code:?}")).await;
                }
            },
            Err(ConnectionError::RequestsDone) => return Ok(()),
            Err(e) => {
                if stopping {
                    return Ok(());
                }
                retry_pause(&mut backoff, &metrics, &mut stop, &mut sink_tx, &e.to_string()).await;
            }
        }
    }
}

/// After a lost connection: counts it and waits the backoff delay (or
/// until a stop is requested).
async fn retry_pause(
    backoff: &mut Backoff,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
    sink_tx: &mut Option<mpsc::Sender<Item<Token>>>,
    why: &str,
) {
    metrics.set_connected(false);
    metrics.add_reconnect();
    let delay = backoff.next_delay();
    tracing::warn!(error = %why, delay_ms = delay.as_millis() as u64, "MQTT connection lost; reconnecting");
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = requested(stop) => { *sink_tx = None; }
    }
}

/// Sends the PUBACK of every durable message delivered on the current
/// connection.
async fn acknowledge(
    mut done_rx: mpsc::UnboundedReceiver<Vec<Done<Token>>>,
    client: AsyncClient,
    generation: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    let mut ack = Publish::new("", QoS::AtLeastOnce, Vec::<u8>::new());
    while let Some(batch) = done_rx.recv().await {
        let current = generation.load(Ordering::SeqCst);
        let mut n = 0u64;
        for d in batch {
            if d.token.qos == QoS::AtMostOnce || d.token.generation != current {
                continue;
            }
            ack.qos = d.token.qos;
            ack.pkid = d.token.pkid;
            if client.ack(&ack).await.is_err() {
                // The event loop is gone; the broker redelivers.
                return;
            }
            n += 1;
        }
        metrics.add_acked(n);
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
    }

    #[test]
    fn topics_follow_the_8x8_layout() {
        assert_eq!(
            parse_topic("acme/event-v1/all"),
            Some(Topic {
                tenant: "acme",
                kind: TopicKind::AllEvents
            })
        );
        assert_eq!(
            parse_topic("acme/event-v1/InteractionCreated").map(|t| t.kind),
            Some(TopicKind::EventType("InteractionCreated"))
        );
        assert_eq!(
            parse_topic("acme/agent-v1/ag1"),
            Some(Topic {
                tenant: "acme",
                kind: TopicKind::Agent("ag1")
            })
        );
        assert_eq!(parse_topic("acme/other/x"), None);
        assert_eq!(parse_topic("acme/event-v1/all/extra"), None);
    }

    #[test]
    fn client_id_is_stable() {
        let a = default_client_id(std::path::Path::new("/nonexistent/ccvault-data"));
        assert_eq!(
            a,
            default_client_id(std::path::Path::new("/nonexistent/ccvault-data"))
        );
        assert!(a.starts_with("ccvault-") && a.len() <= 23, "{a}");
    }
}
