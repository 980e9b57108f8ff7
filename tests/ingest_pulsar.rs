//! `ccvault ingest pulsar` against Pulsar WebSocket reader and consumer
//! endpoints implemented here on loopback, the way the Pulsar docs describe
//! them: `/ws/v2/reader/persistent/{tenant}/{ns}/{topic}` and
//! `/ws/v2/consumer/persistent/{tenant}/{ns}/{topic}/{subscription}`,
//! `X-API-Key` header auth (401 otherwise), base64 payloads, and flow
//! control: at most `receiverQueueSize` unacknowledged messages in flight,
//! more only after `{"messageId": ...}` acks. The reader starts after
//! `messageId=earliest|latest|<base64 id>`; the consumer's subscription keeps
//! the cursor (acknowledged messages are never sent again, unacknowledged
//! ones are redelivered when their connection ends) with `subscriptionType`
//! Exclusive (a second consumer gets 409), Failover (only the first
//! connected consumer receives; the next one takes over when it goes) or
//! Shared. It can also drop connections abruptly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use ccvault_store::ArchiveReader;
use common::daemon::Daemon;
use common::tls::Pki;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ccvault");
const KEY: &str = "test-api-key-PLUGH";
const PATH: &str = "/ws/v2/reader/persistent/acme/event-v1/all";
const CONSUMER_PATH: &str = "/ws/v2/consumer/persistent/acme/event-v1/all/";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn message_id(i: usize) -> String {
    // Like Pulsar's: base64 of binary, with '+', '/' and '=' to escape.
    b64(format!("\u{8}\u{1}\u{10}{i:07}~~>").as_bytes())
}

fn event(i: usize) -> String {
    format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{i:06}-pulsar-acme","queueId":3,"interactionEventTS":{},"msgInfo":{{"sequenceId":{i}}}}}}}"#,
        1_763_900_000 + i
    )
}

#[derive(Default)]
struct State {
    /// The topic: (messageId, event) in publish order.
    topic: Vec<(String, String)>,
    /// `messageId` query value of each accepted connection.
    starts: Vec<String>,
    /// Upgrade attempts refused for a bad key.
    refused: usize,
    /// Acks received (all connections).
    acks: usize,
    /// Most unacknowledged messages seen on one connection.
    max_unacked: usize,
    /// Acks for a message this connection never sent (must stay 0).
    bogus_acks: usize,
    /// Drop each connection abruptly after sending this many messages.
    drop_after: Option<usize>,
    dropped: usize,
    /// Consumer endpoint: the subscriptions by name.
    subs: HashMap<String, Sub>,
    /// Consumer connections so far (their ids).
    connections: u64,
    /// Query of each consumer connection.
    consumer_queries: Vec<String>,
    /// Consumer upgrades refused because an Exclusive subscription was held.
    busy: usize,
    /// TLS handshakes that failed (the client refused our certificate).
    tls_refused: usize,
}

impl State {
    /// Whether a connection that sent `sent` messages is to be dropped now
    /// (counted).
    fn drops_after(&mut self, sent: usize) -> bool {
        let drop = self.drop_after.is_some_and(|d| sent >= d);
        self.dropped += usize::from(drop);
        drop
    }
}

/// A durable subscription: the broker-side cursor.
#[derive(Default)]
struct Sub {
    /// Connected consumers in connection order (ids); with Failover the
    /// first one is the active one.
    consumers: Vec<u64>,
    /// Topic positions acknowledged (never sent again).
    acked: BTreeSet<usize>,
    /// Positions sent and not yet acknowledged, and to which consumer.
    in_flight: BTreeMap<usize, u64>,
    /// Deliveries per position (redeliveryCount = this - 1).
    deliveries: HashMap<usize, u32>,
    /// Acks naming a message not in flight on that connection (must stay 0).
    bogus_acks: usize,
    /// Positions each consumer left unacknowledged when its connection ended.
    released: HashMap<u64, BTreeSet<usize>>,
    /// Consumer id of each delivery, in order.
    delivered_to: Vec<u64>,
}

/// The reader endpoint on a loopback port, served by a background runtime.
struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A stream the endpoint can serve: plain TCP or TLS over it.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Conn for S {}

impl Server {
    fn start(state: State) -> Server {
        Server::start_with(state, None)
    }

    /// The endpoint behind TLS (`wss://`), presenting `config`'s certificate.
    fn start_tls(state: State, config: tokio_rustls::rustls::ServerConfig) -> Server {
        Server::start_with(
            state,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn start_with(state: State, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(state));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, tls) = (st.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = match tls {
                        None => serve(tcp, st).await,
                        Some(tls) => match tls.accept(tcp).await {
                            Ok(stream) => serve(stream, st).await,
                            Err(_) => {
                                st.lock().unwrap().tls_refused += 1;
                                Ok(())
                            }
                        },
                    };
                });
            }
        });
        Server {
            port,
            state,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}{PATH}", self.port)
    }

    fn tls_url(&self) -> String {
        format!("wss://127.0.0.1:{}{PATH}", self.port)
    }

    fn consumer_url(&self, subscription: &str) -> String {
        format!("ws://127.0.0.1:{}{CONSUMER_PATH}{subscription}", self.port)
    }

    fn publish(&self, range: std::ops::Range<usize>) {
        let mut s = self.state.lock().unwrap();
        for i in range {
            s.topic.push((message_id(i), event(i)));
        }
    }

    /// Publishes `range` from a thread, 100 events every 40 ms.
    fn publish_paced(&self, range: std::ops::Range<usize>) -> std::thread::JoinHandle<()> {
        let st = self.state.clone();
        std::thread::spawn(move || {
            let mut next = range.start;
            while next < range.end {
                let end = (next + 100).min(range.end);
                {
                    let mut s = st.lock().unwrap();
                    for i in next..end {
                        s.topic.push((message_id(i), event(i)));
                    }
                }
                next = end;
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    }
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
async fn serve(
    tcp: impl Conn,
    st: Arc<Mutex<State>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut query = String::new();
    let mut subscription = None;
    let st2 = st.clone();
    let ws = tokio_tungstenite::accept_hdr_async(
        tcp,
        |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let fail = |code: StatusCode, why: &str| {
                let mut r = ErrorResponse::new(Some(why.to_owned()));
                *r.status_mut() = code;
                r
            };
            let path = req.uri().path();
            subscription = path
                .strip_prefix(CONSUMER_PATH)
                .filter(|s| !s.is_empty() && !s.contains('/'))
                .map(str::to_owned);
            if path != PATH && subscription.is_none() {
                return Err(fail(StatusCode::NOT_FOUND, "no such topic"));
            }
            if req.headers().get("X-API-Key").and_then(|v| v.to_str().ok()) != Some(KEY) {
                st2.lock().unwrap().refused += 1;
                return Err(fail(
                    StatusCode::UNAUTHORIZED,
                    "HTTP 401 Unauthorized: invalid API key",
                ));
            }
            query = req.uri().query().unwrap_or("").to_owned();
            // As Pulsar's WebSocket service answers a parameter it cannot
            // parse.
            if query_param(&query, "cryptoFailureAction")
                .is_some_and(|v| !["FAIL", "DISCARD", "CONSUME"].contains(&v.as_str()))
            {
                st2.lock().unwrap().refused += 1;
                return Err(fail(StatusCode::BAD_REQUEST, "Invalid cryptoFailureAction"));
            }
            if let Some(name) = &subscription {
                let exclusive =
                    query_param(&query, "subscriptionType").is_none_or(|t| t == "Exclusive");
                let mut s = st2.lock().unwrap();
                if exclusive
                    && s.subs
                        .get(name)
                        .is_some_and(|sub| !sub.consumers.is_empty())
                {
                    s.busy += 1;
                    return Err(fail(
                        StatusCode::CONFLICT,
                        "Exclusive consumer is already connected",
                    ));
                }
            }
            Ok(resp)
        },
    )
    .await?;
    if let Some(name) = subscription {
        return serve_consumer(ws, st, &name, &query).await;
    }
    let start = query_param(&query, "messageId").unwrap_or_else(|| "latest".into());
    let queue: usize = query_param(&query, "receiverQueueSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut next = {
        let mut s = st.lock().unwrap();
        s.starts.push(start.clone());
        match start.as_str() {
            "earliest" => 0,
            "latest" => s.topic.len(),
            id => s
                .topic
                .iter()
                .position(|(m, _)| m == id)
                .map_or(0, |p| p + 1),
        }
    };
    let (mut tx, mut rx) = ws.split();
    let mut unacked: Vec<String> = Vec::new();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        // Send while the receiver queue has room.
        loop {
            let msg = {
                let s = st.lock().unwrap();
                if unacked.len() >= queue || next >= s.topic.len() {
                    None
                } else {
                    Some(s.topic[next].clone())
                }
            };
            let Some((id, ev)) = msg else { break };
            tx.send(frame(&id, &ev, 0)).await?;
            unacked.push(id);
            next += 1;
            sent += 1;
            {
                let mut s = st.lock().unwrap();
                s.max_unacked = s.max_unacked.max(unacked.len());
                if s.drops_after(sent) {
                    return Ok(()); // abrupt: no close frame
                }
            }
        }
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str())?;
                    let id = v["messageId"].as_str().unwrap_or("").to_owned();
                    let mut s = st.lock().unwrap();
                    match unacked.iter().position(|u| *u == id) {
                        Some(p) => { unacked.remove(p); s.acks += 1; }
                        None => s.bogus_acks += 1,
                    }
                }
                Some(Ok(_)) => {}
                _ => return Ok(()),
            },
            _ = tick.tick() => {}
        }
    }
}

fn frame(id: &str, ev: &str, redelivery_count: u32) -> Message {
    Message::text(
        serde_json::json!({
            "messageId": id,
            "payload": b64(ev.as_bytes()),
            "properties": {},
            "publishTime": "2025-10-15T09:30:00.000Z",
            "redeliveryCount": redelivery_count,
        })
        .to_string(),
    )
}

/// One consumer connection on subscription `name`.
async fn serve_consumer<S: Conn>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    st: Arc<Mutex<State>>,
    name: &str,
    query: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let queue: usize = query_param(query, "receiverQueueSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let shared = query_param(query, "subscriptionType").as_deref() == Some("Shared");
    let me = {
        let mut s = st.lock().unwrap();
        s.connections += 1;
        s.consumer_queries.push(query.to_owned());
        let me = s.connections;
        s.subs
            .entry(name.to_owned())
            .or_default()
            .consumers
            .push(me);
        me
    };
    let (mut tx, mut rx) = ws.split();
    let result = consume(&mut tx, &mut rx, &st, name, me, queue, shared).await;
    // Whatever ended the connection: what it left unacknowledged goes back
    // to the subscription, for the next (or another) consumer.
    let mut s = st.lock().unwrap();
    let sub = s.subs.get_mut(name).unwrap();
    sub.consumers.retain(|c| *c != me);
    let mine: BTreeSet<usize> = sub
        .in_flight
        .iter()
        .filter(|(_, c)| **c == me)
        .map(|(p, _)| *p)
        .collect();
    sub.in_flight.retain(|_, c| *c != me);
    sub.released.insert(me, mine);
    result
}

type ServerTx<S> = futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<S>, Message>;
type ServerRx<S> = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<S>>;

async fn consume<S: Conn>(
    tx: &mut ServerTx<S>,
    rx: &mut ServerRx<S>,
    st: &Arc<Mutex<State>>,
    name: &str,
    me: u64,
    queue: usize,
    shared: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        loop {
            let msg = {
                let mut guard = st.lock().unwrap();
                let s = &mut *guard;
                let sub = s.subs.get_mut(name).unwrap();
                let active = shared || sub.consumers.first() == Some(&me);
                let mine = sub.in_flight.values().filter(|c| **c == me).count();
                let next = (0..s.topic.len())
                    .find(|p| !sub.acked.contains(p) && !sub.in_flight.contains_key(p));
                match next {
                    Some(p) if active && mine < queue => {
                        sub.in_flight.insert(p, me);
                        sub.delivered_to.push(me);
                        let n = sub.deliveries.entry(p).or_default();
                        *n += 1;
                        Some((s.topic[p].clone(), *n - 1))
                    }
                    _ => None,
                }
            };
            let Some(((id, ev), redelivery)) = msg else {
                break;
            };
            tx.send(frame(&id, &ev, redelivery)).await?;
            sent += 1;
            if st.lock().unwrap().drops_after(sent) {
                return Ok(()); // abrupt: no close frame
            }
        }
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str())?;
                    let id = v["messageId"].as_str().unwrap_or("");
                    let mut guard = st.lock().unwrap();
                    let s = &mut *guard;
                    let p = s.topic.iter().position(|(m, _)| m == id);
                    let sub = s.subs.get_mut(name).unwrap();
                    match p.filter(|p| sub.in_flight.get(p) == Some(&me)) {
                        Some(p) if v["type"] == "negativeAcknowledge" => {
                            sub.in_flight.remove(&p);
                        }
                        Some(p) => {
                            sub.in_flight.remove(&p);
                            sub.acked.insert(p);
                            s.acks += 1;
                        }
                        None => sub.bogus_acks += 1,
                    }
                }
                Some(Ok(_)) => {}
                _ => return Ok(()),
            },
            _ = tick.tick() => {}
        }
    }
}

/// One `ccvault ingest pulsar` process (see `common::daemon`).
fn start_ingest(
    data: &Path,
    dir: &Path,
    n: usize,
    url: &str,
    key_file: &Path,
    extra: &[&str],
) -> Daemon {
    let cmd = ingest_command(data, url, key_file, extra);
    Daemon::spawn(cmd, dir.join(format!("ingest-{n}.log")))
}

fn ingest_command(data: &Path, url: &str, key_file: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "--format",
            "json",
            "ingest",
            "pulsar",
            "--url",
            url,
            "--api-key-file",
        ])
        .arg(key_file)
        .args([
            "--backoff-ms",
            "50",
            "--max-backoff-ms",
            "400",
            "--receiver-queue-size",
            "100",
        ])
        .args(extra)
        .env_remove("CCVAULT_PULSAR_API_KEY")
        .env_remove("CCVAULT_LOG");
    cmd
}

fn key_file(dir: &Path, key: &str) -> PathBuf {
    let p = dir.join("api-key");
    std::fs::write(&p, format!("{key}\n")).unwrap();
    p
}

/// payload -> (count, messageIds of its records)
fn archived(data: &Path) -> BTreeMap<Vec<u8>, Vec<String>> {
    let reader = ArchiveReader::open(data).unwrap();
    let mut map: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    reader
        .for_each_record(
            |r| {
                assert_eq!(r.source, "persistent://acme/event-v1/all");
                assert_eq!(r.publish_time, "2025-10-15T09:30:00.000Z");
                map.entry(r.payload).or_default().push(r.message_id);
                Ok(())
            },
            |d| panic!("damage: {d}"),
        )
        .unwrap();
    map
}

fn assert_exactly_once(data: &Path, n: usize) {
    let map = archived(data);
    assert_eq!(map.len(), n);
    for i in 0..n {
        assert_eq!(
            map.get(event(i).as_bytes()),
            Some(&vec![message_id(i)]),
            "event {i} archived once, decoded, with its messageId"
        );
    }
}

fn summary(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    serde_json::from_str(line).unwrap()
}

/// Publishes `n` events while one ingest on `url` is killed with SIGKILL
/// and restarted six times at random moments; then lets the last one (which
/// logs `connected`) archive everything, stops it and checks that every
/// event was archived exactly once.
fn archive_across_kill9_restarts(
    server: &Server,
    work: &Path,
    data: &Path,
    key: &Path,
    url: &str,
    connected: &str,
    n: usize,
) {
    // A producer publishing while the ingest is killed and restarted.
    let producer = server.publish_paced(0..n);
    let mut ingest = start_ingest(data, work, 0, url, key, &[]);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    for round in 1..=6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 400));
        ingest.kill9();
        ingest = start_ingest(data, work, round, url, key, &[]);
    }
    producer.join().unwrap();
    ingest.wait_for_log(connected, Duration::from_secs(20));
    ingest.wait_records(data, n as u64, Duration::from_secs(90));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    assert_eq!(summary(&stdout)["ok"], true);
    assert_exactly_once(data, n);
}

/// A new run on an archive and endpoint that are up to date receives
/// nothing.
fn assert_next_run_receives_nothing(
    data: &Path,
    work: &Path,
    url: &str,
    key: &Path,
    connected: &str,
) {
    let mut again = start_ingest(data, work, 99, url, key, &[]);
    again.wait_for_log(connected, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout) = again.terminate();
    assert!(status.success());
    assert_eq!(summary(&stdout)["received"], 0, "{stdout}");
}

#[test]
fn every_message_is_archived_exactly_once_across_kill9_restarts_and_resumes() {
    const N: usize = 3000;
    let server = Server::start(State::default());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let url = server.url();
    let connected = "Pulsar reader connected";
    archive_across_kill9_restarts(&server, work.path(), &data, &key, &url, connected, N);

    let s = server.state.lock().unwrap();
    assert_eq!(
        s.bogus_acks, 0,
        "acks for messages not sent on that connection"
    );
    assert!(
        s.max_unacked <= 100,
        "flow control exceeded: {}",
        s.max_unacked
    );
    assert!(s.acks > 0);
    assert_eq!(s.starts[0], "earliest");
    let resumed = s.starts.iter().skip(1).filter(|m| *m != "earliest").count();
    assert!(
        resumed > 0,
        "restarts never resumed from an archived messageId: {:?}",
        s.starts
    );
    drop(s);

    // A new run resumes after the last archived message: nothing is resent.
    assert_next_run_receives_nothing(&data, work.path(), &url, &key, connected);
    assert_eq!(
        server.state.lock().unwrap().starts.last(),
        Some(&message_id(N - 1))
    );
}

#[test]
fn a_wrong_api_key_is_a_clear_error_without_a_retry_storm() {
    let server = Server::start(State::default());
    server.publish(0..10);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), "wrong-key-XYZZY");
    let started = Instant::now();
    let mut ingest = start_ingest(&data, work.path(), 0, &server.url(), &key, &[]);
    let (status, stdout) = ingest.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(3), "{}", ingest.stderr());
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = ingest.stderr();
    assert!(err.contains("401") && err.contains("API key"), "{err}");
    // The last words name the endpoint (an outside audit found no URL).
    assert!(err.contains(&server.url()), "{err}");
    assert!(!err.contains("no API key was given"), "{err}");
    assert!(
        !err.contains("XYZZY") && !stdout.contains("XYZZY"),
        "the key leaked:\n{err}"
    );
    assert_eq!(
        server.state.lock().unwrap().refused,
        1,
        "retried a refused key"
    );
    assert_eq!(summary(&stdout)["archived"], 0);
}

/// A request the endpoint refuses as such (HTTP 400, a parameter it
/// cannot take) is not retried: the same request cannot succeed (until
/// 2026-12-06 it was retried for ever).
#[test]
fn a_request_the_endpoint_refuses_is_a_clear_error_without_a_retry() {
    let server = Server::start(State::default());
    server.publish(0..10);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let url = format!("{}?cryptoFailureAction=IGNORE", server.url());
    let mut ingest = start_ingest(&data, work.path(), 0, &url, &key, &[]);
    let (status, stdout) = ingest.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(3), "{}", ingest.stderr());
    let err = ingest.stderr();
    assert!(
        err.contains("400") && err.contains("Invalid cryptoFailureAction"),
        "{err}"
    );
    assert_eq!(server.state.lock().unwrap().refused, 1, "retried");
    assert_eq!(summary(&stdout)["archived"], 0);
}

/// `--api-key-file -` reads the key from standard input (it said "No such
/// file" of `-`): a key piped from a password manager never touches disk.
#[test]
fn the_api_key_can_come_from_standard_input() {
    let server = Server::start(State::default());
    server.publish(0..10);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut cmd = ingest_command(&data, &server.url(), Path::new("-"), &[]);
    cmd.stdin(std::fs::File::open(&key).unwrap());
    let mut ingest = Daemon::spawn(cmd, work.path().join("ingest.log"));
    ingest.wait_records(&data, 10, Duration::from_secs(30));
    let (status, _) = ingest.terminate();
    assert!(status.success(), "{}", ingest.stderr());
    assert_eq!(server.state.lock().unwrap().refused, 0);

    // Nothing on standard input is an empty key, named as such.
    let mut cmd = ingest_command(
        &work.path().join("data2"),
        &server.url(),
        Path::new("-"),
        &[],
    );
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Pulsar API key from standard input is empty"),
        "{err}"
    );
}

#[test]
fn the_api_key_never_reaches_the_log_even_at_trace_level() {
    let server = Server::start(State::default());
    server.publish(0..20);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut cmd = ingest_command(&data, &server.url(), &key, &[]);
    cmd.env("CCVAULT_LOG", "trace");
    // `spawn` would set CCVAULT_LOG=info over it.
    let mut ingest = Daemon::spawn_as_set(cmd, work.path().join("ingest.log"));
    ingest.wait_records(&data, 20, Duration::from_secs(60));
    let (_, stdout) = ingest.terminate();
    let err = ingest.stderr();
    // The WebSocket library's own handshake log reached us, so the cap on its
    // request trace (which prints every header) is what keeps the key out.
    assert!(err.contains("Client handshake done"), "{err}");
    assert!(
        !err.contains(KEY) && !stdout.contains(KEY),
        "the key leaked:\n{err}"
    );
}

#[test]
fn dropped_connections_resume_without_loss_or_doubling() {
    const N: usize = 1000;
    let server = Server::start(State {
        drop_after: Some(150),
        ..State::default()
    });
    server.publish(0..N);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut ingest = start_ingest(&data, work.path(), 0, &server.url(), &key, &[]);
    ingest.wait_for_log("Pulsar reader connected", Duration::from_secs(20));
    ingest.wait_records(&data, N as u64, Duration::from_secs(60));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let s = summary(&stdout);
    assert!(s["reconnects"].as_u64().unwrap_or(0) >= 5, "{s}");
    assert_eq!(s["archived"], N as u64);
    assert_exactly_once(&data, N);
    let st = server.state.lock().unwrap();
    assert!(st.dropped >= 5);
    assert_eq!(st.bogus_acks, 0);
}

#[test]
fn the_consumer_archives_every_message_exactly_once_across_kill9_restarts() {
    const N: usize = 3000;
    let server = Server::start(State::default());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let url = server.consumer_url("ccvault");
    // Each message once, though the broker redelivered what each killed
    // process had not acknowledged; a message acknowledged before it was
    // durable would be missing (the broker never sends it again).
    let connected = "Pulsar consumer connected";
    archive_across_kill9_restarts(&server, work.path(), &data, &key, &url, connected, N);

    let s = server.state.lock().unwrap();
    let sub = &s.subs["ccvault"];
    assert_eq!(sub.acked.len(), N, "every message acknowledged");
    assert!(
        sub.in_flight.is_empty(),
        "left unacknowledged after a clean stop"
    );
    assert_eq!(
        sub.bogus_acks, 0,
        "acks for messages not sent on that connection"
    );
    // The broker keeps the position: no messageId, Exclusive by default.
    // (A process killed early may not have connected at all.)
    assert!(!s.consumer_queries.is_empty());
    for q in &s.consumer_queries {
        assert_eq!(query_param(q, "messageId"), None, "{q}");
        assert_eq!(
            query_param(q, "subscriptionType").as_deref(),
            Some("Exclusive"),
            "{q}"
        );
        assert_eq!(
            query_param(q, "receiverQueueSize").as_deref(),
            Some("100"),
            "{q}"
        );
    }
    drop(s);

    // A new run finds the subscription fully acknowledged: nothing comes.
    assert_next_run_receives_nothing(&data, work.path(), &url, &key, connected);
}

#[test]
fn a_failover_subscription_moves_to_the_standby_when_the_active_ingest_is_killed() {
    const N: usize = 3000;
    let server = Server::start(State::default());
    server.publish(0..500);
    let work = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (work.path().join("a"), work.path().join("b"));
    let key = key_file(work.path(), KEY);
    let url = server.consumer_url("archive");
    let failover = ["--subscription-type", "failover"];
    let mut active = start_ingest(&data_a, work.path(), 0, &url, &key, &failover);
    active.wait_for_log("Pulsar consumer connected", Duration::from_secs(20));
    let mut standby = start_ingest(&data_b, work.path(), 1, &url, &key, &failover);
    standby.wait_for_log("Pulsar consumer connected", Duration::from_secs(20));
    active.wait_records(&data_a, 500, Duration::from_secs(60));

    // Publishing goes on while the active process is killed.
    let producer = server.publish_paced(500..N);
    std::thread::sleep(Duration::from_millis(300));
    active.kill9();
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while server.state.lock().unwrap().subs["archive"].acked.len() < N {
        assert!(Instant::now() < deadline, "{}", standby.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stdout) = standby.terminate();
    assert!(status.success(), "exit {status}:\n{}", standby.stderr());
    assert_eq!(summary(&stdout)["ok"], true);

    let s = server.state.lock().unwrap();
    let sub = &s.subs["archive"];
    assert_eq!(sub.bogus_acks, 0);
    // Failover: the first consumer got everything until it died, the
    // standby everything after.
    let first = sub.delivered_to[0];
    let switch = sub.delivered_to.iter().position(|c| *c != first).unwrap();
    assert!(sub.delivered_to[switch..].iter().all(|c| *c != first));
    let released = &sub.released[&first];

    // Between the two archives every message is there, each once per
    // archive; the only ones in both are those the killed process had not
    // acknowledged (durable in its archive or not), which the broker gave
    // the standby.
    let (a, b) = (archived(&data_a), archived(&data_b));
    let both = a.keys().filter(|k| b.contains_key(*k)).count();
    eprintln!(
        "active archived {}, standby {}, in both {both}, left unacknowledged by the killed one {}",
        a.len(),
        b.len(),
        released.len()
    );
    assert!(
        a.len() >= 500 && !b.is_empty(),
        "a {} b {}",
        a.len(),
        b.len()
    );
    for i in 0..N {
        let ev = event(i);
        let (in_a, in_b) = (a.get(ev.as_bytes()), b.get(ev.as_bytes()));
        assert!(in_a.is_some() || in_b.is_some(), "event {i} lost");
        for ids in [in_a, in_b].into_iter().flatten() {
            assert_eq!(ids, &vec![message_id(i)], "event {i}");
        }
        if in_a.is_some() && in_b.is_some() {
            assert!(
                released.contains(&i),
                "event {i} acknowledged by the killed process and delivered again"
            );
        }
    }
}

/// A flag of the other endpoint is a flag combination the command refuses:
/// a usage error, exit 2 (docs/OPERATIONS.md, Exit codes), not 1.
#[test]
fn options_of_the_other_endpoint_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let key = key_file(work.path(), KEY);
    let data = work.path().join("data");
    let consumer = "ws://127.0.0.1:9/ws/v2/consumer/persistent/acme/event-v1/all/s";
    let reader = "ws://127.0.0.1:9/ws/v2/reader/persistent/acme/event-v1/all";
    for (url, extra, needle) in [
        (
            consumer,
            ["--start", "latest"],
            "--start applies to a reader URL",
        ),
        (
            reader,
            ["--subscription-type", "shared"],
            "--subscription-type applies to a consumer URL",
        ),
    ] {
        let out = ingest_command(&data, url, &key, &extra).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

/// Values that can never work are refused before anything starts: a port
/// that is no port went to the default port (80) and retried forever, and
/// the others were silently changed.
#[test]
fn values_that_cannot_work_are_usage_errors() {
    let work = tempfile::tempdir().unwrap();
    let key = key_file(work.path(), KEY);
    let data = work.path().join("data");
    let reader = "ws://127.0.0.1:9/ws/v2/reader/persistent/acme/event-v1/all";
    for (url, extra, needle) in [
        (
            "ws://127.0.0.1:abc/ws/v2/reader/persistent/acme/event-v1/all",
            &[][..],
            "bad port \"abc\"",
        ),
        (
            "ws://127.0.0.1:0/ws/v2/reader/persistent/acme/event-v1/all",
            &[],
            "port 0 cannot be connected to",
        ),
        (
            reader,
            &["--backoff", "10s", "--max-backoff", "1s"],
            "--backoff 10s is longer than --max-backoff 1s",
        ),
        (reader, &["--ping-interval", "0s"], "give at least 100ms"),
        (
            reader,
            &["--backoff", "0s"],
            "--backoff under 1ms would reconnect at once",
        ),
        (reader, &["--receiver-queue-size", "0"], "0 is not in 1.."),
    ] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["ingest", "pulsar", "--url", url, "--api-key-file"])
            .arg(&key)
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url} {extra:?}: {err}");
        assert!(err.contains(needle), "{url} {extra:?}: {err}");
        assert!(!data.exists(), "{url} {extra:?} created the archive");
    }
    // A key file that cannot be read, as an unreadable --ca-file.
    let missing = work.path().join("no-such-key");
    let out = ingest_command(&data, reader, &missing, &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read Pulsar API key file"), "{err}");
    assert!(!data.exists(), "an unreadable key file created the archive");
}

#[test]
fn wss_verifies_the_endpoint_against_the_given_ca() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let server = Server::start_tls(State::default(), pki.server_config());
    server.publish(0..50);
    let key = key_file(work.path(), KEY);
    let url = server.tls_url();

    // Verification is on by default (the platform's roots do not know the
    // test CA), and the wrong CA is refused: no upgrade, nothing archived,
    // the reason in the log; the run keeps retrying until stopped.
    let other_ca = ["--ca-file", pki.other_ca.to_str().unwrap()];
    for (n, extra) in [(0, &[][..]), (1, &other_ca[..])] {
        let data = work.path().join(format!("refused-{n}"));
        let mut ingest = start_ingest(&data, work.path(), n, &url, &key, extra);
        ingest.wait_for_log("UnknownIssuer", Duration::from_secs(20));
        let (status, stdout) = ingest.terminate();
        assert!(status.success(), "{}", ingest.stderr());
        assert_eq!(summary(&stdout)["received"], 0);
        let log = ingest.stderr();
        assert!(
            log.contains("not trusted: give the CA that signed it with --ca-file"),
            "{log}"
        );
        assert!(!log.contains("Pulsar reader connected"), "{log}");
    }
    let s = server.state.lock().unwrap();
    assert!(
        s.tls_refused >= 2 && s.starts.is_empty(),
        "{}",
        s.tls_refused
    );
    drop(s);

    // The right CA: the reader archives the topic over TLS.
    let data = work.path().join("data");
    let ca = ["--ca-file", pki.ca.to_str().unwrap()];
    let mut ingest = start_ingest(&data, work.path(), 2, &url, &key, &ca);
    ingest.wait_records(&data, 50, Duration::from_secs(30));
    let (status, _) = ingest.terminate();
    assert!(status.success(), "{}", ingest.stderr());
    assert_exactly_once(&data, 50);
}

/// ccvault appends its own query parameters (messageId, receiverQueueSize,
/// subscriptionType) to the URL. After a `#fragment` they were never sent
/// (the reader silently started where the server chose), so a fragment is
/// refused; one of those parameters given in the URL is refused naming the
/// option that sets it (it was dropped silently); both are usage errors
/// (exit 2) and nothing connects. Other parameters are sent as given.
#[test]
fn a_url_fragment_or_a_parameter_ccvault_sets_is_refused_by_name() {
    let server = Server::start(State::default());
    server.publish(0..3);
    let work = tempfile::tempdir().unwrap();
    let key = key_file(work.path(), KEY);
    let data = work.path().join("data");
    let reader = server.url();
    for (n, (url, needle)) in [
        (format!("{reader}#x"), "fragment"),
        (format!("{reader}?readerName=r#x"), "fragment"),
        (format!("{reader}?messageId=latest"), "--start"),
        (
            format!("{reader}?readerName=r&receiverQueueSize=5"),
            "--receiver-queue-size",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cmd = ingest_command(&data, &url, &key, &[]);
        let mut run = Daemon::spawn(cmd, work.path().join(format!("refused-{n}.log")));
        let (status, _) = run.wait_exit(Duration::from_secs(20));
        let err = run.stderr();
        assert_eq!(status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(needle), "{url}: {err}");
    }
    assert!(
        server.state.lock().unwrap().starts.is_empty(),
        "a refused URL connected"
    );

    // A parameter ccvault does not set reaches the server as given.
    let url = format!("{}?consumerName=archive-a", server.consumer_url("ccvault"));
    let mut ingest = start_ingest(&data, work.path(), 9, &url, &key, &[]);
    ingest.wait_for_log("Pulsar consumer connected", Duration::from_secs(20));
    let (status, _) = ingest.terminate();
    assert!(status.success(), "{}", ingest.stderr());
    let s = server.state.lock().unwrap();
    assert!(!s.consumer_queries.is_empty());
    for q in &s.consumer_queries {
        assert_eq!(
            query_param(q, "consumerName").as_deref(),
            Some("archive-a"),
            "{q}"
        );
        assert_eq!(
            query_param(q, "receiverQueueSize").as_deref(),
            Some("100"),
            "{q}"
        );
    }
}

/// An 8x8 `ClientCheck` heartbeat is a transport control message, counted as
/// `control` (INGEST.md, Metrics), bare or inside a Pulsar envelope: it is
/// neither archived nor quarantined, live or in an import of envelopes.
/// (Inside an envelope it was archived and quarantined.)
#[test]
fn a_client_check_inside_an_envelope_counts_as_control() {
    const HEARTBEAT: &str = r#"{"ClientCheck":{"ts":1763900000}}"#;
    let server = Server::start(State::default());
    server.publish(0..3);
    server
        .state
        .lock()
        .unwrap()
        .topic
        .push((message_id(3), HEARTBEAT.to_owned()));
    server.publish(4..6);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut ingest = start_ingest(&data, work.path(), 0, &server.url(), &key, &[]);
    ingest.wait_records(&data, 5, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let s = summary(&stdout);
    assert_eq!(
        (
            s["received"].as_u64(),
            s["archived"].as_u64(),
            s["control"].as_u64(),
            s["quarantined"].as_u64()
        ),
        (Some(6), Some(5), Some(1), Some(0)),
        "{s}"
    );
    assert!(
        !ingest.stderr().contains("control message"),
        "a heartbeat is nothing to warn about:\n{}",
        ingest.stderr()
    );

    // The same envelopes imported from a capture.
    let capture = work.path().join("envelopes.ndjson");
    let lines: Vec<String> = [(message_id(0), event(0)), (message_id(3), HEARTBEAT.into())]
        .iter()
        .map(|(id, payload)| {
            format!(
                r#"{{"messageId":"{id}","payload":"{}","publishTime":"2025-11-24T10:00:00Z"}}"#,
                b64(payload.as_bytes())
            )
        })
        .collect();
    std::fs::write(&capture, lines.join("\n") + "\n").unwrap();
    let imported = work.path().join("imported");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&imported)
        .args(["import", "--format", "json"])
        .arg(&capture)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = ArchiveReader::open(&imported).unwrap().stats().unwrap();
    assert_eq!(stats.counters.records, 1, "{said}");
    assert_eq!(stats.counters.quarantined, 0, "{said}");
    assert_eq!(stats.counters.control, 1, "{said}");
}

/// The cap on the WebSocket library's handshake logging (it would print the
/// API key at trace level) only ever lowers that target's level: at the
/// default level, with `-q`, with `CCVAULT_LOG=error` or `info`, its debug
/// line "Client handshake done." is not printed. (The cap was a directive
/// of CCVAULT_LOG's filter, which raised the target to debug.)
#[test]
fn the_handshake_log_cap_never_raises_the_level() {
    let server = Server::start(State::default());
    server.publish(0..3);
    let work = tempfile::tempdir().unwrap();
    let key = key_file(work.path(), KEY);
    for (n, (env, quiet)) in [
        (None, false),
        (None, true),
        (Some("error"), false),
        (Some("info"), false),
    ]
    .into_iter()
    .enumerate()
    {
        let data = work.path().join(format!("data-{n}"));
        let mut cmd = ingest_command(&data, &server.url(), &key, &[]);
        if quiet {
            cmd.arg("-q");
        }
        if let Some(level) = env {
            cmd.env("CCVAULT_LOG", level);
        }
        let mut ingest = Daemon::spawn_as_set(cmd, work.path().join(format!("levels-{n}.log")));
        ingest.wait_records(&data, 3, Duration::from_secs(20));
        let (status, _) = ingest.terminate();
        let said = ingest.stderr();
        assert!(status.success(), "exit {status}:\n{said}");
        assert!(
            !said.contains("DEBUG") && !said.contains("handshake"),
            "CCVAULT_LOG {env:?}, -q {quiet}:\n{said}"
        );
    }
}

/// A message rejected over `--max-record-bytes` is acknowledged (retrying
/// it could never archive it), and the warning says its `messageId`, all
/// that finds it at the broker afterwards, at the default log level. Until
/// 2026-12-07 the id was said only with `-v`, as a Rust debug string (an
/// outside audit).
#[test]
fn a_message_rejected_for_its_size_is_named_by_its_message_id() {
    let server = Server::start(State::default());
    server.publish(0..2);
    let big = format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-big-pulsar-acme","note":"{}"}}}}"#,
        "x".repeat(4096)
    );
    server
        .state
        .lock()
        .unwrap()
        .topic
        .push((message_id(2), big));
    server.publish(3..4);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut ingest = start_ingest(
        &data,
        work.path(),
        0,
        &server.url(),
        &key,
        &["--max-record-bytes", "2KiB"],
    );
    ingest.wait_records(&data, 3, Duration::from_secs(20));
    ingest.wait_for_log("without archiving it", Duration::from_secs(10));
    let (status, _) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    let said = ingest.stderr();
    let line = said
        .lines()
        .find(|l| l.contains("without archiving it"))
        .unwrap_or_default();
    assert!(
        line.contains(&message_id(2)) && line.contains("exceeds") && !line.contains("Some("),
        "{said}"
    );
}
