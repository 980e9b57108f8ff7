//! `ccvault ingest pulsar` against a Pulsar WebSocket reader endpoint
//! implemented here on loopback, the way the Pulsar docs describe it:
//! `/ws/v2/reader/persistent/{tenant}/{ns}/{topic}`, `X-API-Key` header
//! auth (401 otherwise), `messageId=earliest|latest|<base64 id>` (start
//! after that message), base64 payloads, and flow control: at most
//! `receiverQueueSize` unacknowledged messages in flight, more only after
//! `{"messageId": ...}` acks. It can also drop connections abruptly.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use ccvault_store::ArchiveReader;
use common::daemon::Daemon;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ccvault");
const KEY: &str = "test-api-key-PLUGH";
const PATH: &str = "/ws/v2/reader/persistent/acme/event-v1/all";

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

impl Server {
    fn start(state: State) -> Server {
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
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, st).await;
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

    fn publish(&self, range: std::ops::Range<usize>) {
        let mut s = self.state.lock().unwrap();
        for i in range {
            s.topic.push((message_id(i), event(i)));
        }
    }
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
async fn serve(
    tcp: tokio::net::TcpStream,
    st: Arc<Mutex<State>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut query = String::new();
    let st2 = st.clone();
    let ws = tokio_tungstenite::accept_hdr_async(
        tcp,
        |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let fail = |code: StatusCode, why: &str| {
                let mut r = ErrorResponse::new(Some(why.to_owned()));
                *r.status_mut() = code;
                r
            };
            if req.uri().path() != PATH {
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
            Ok(resp)
        },
    )
    .await?;
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
            let frame = serde_json::json!({
                "messageId": id,
                "payload": b64(ev.as_bytes()),
                "properties": {},
                "publishTime": "2025-10-15T09:30:00.000Z",
                "redeliveryCount": 0,
            });
            tx.send(Message::text(frame.to_string())).await?;
            unacked.push(id);
            next += 1;
            sent += 1;
            {
                let mut s = st.lock().unwrap();
                s.max_unacked = s.max_unacked.max(unacked.len());
                if s.drop_after.is_some_and(|d| sent >= d) {
                    s.dropped += 1;
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

fn wait_records(data: &Path, n: u64, timeout: Duration, ingest: &Daemon) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = ArchiveReader::open(data) {
            if r.stats().map(|s| s.records).unwrap_or(0) >= n {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the archive did not reach {n} records:\n{}",
            ingest.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

#[test]
fn every_message_is_archived_exactly_once_across_kill9_restarts_and_resumes() {
    const N: usize = 3000;
    let server = Server::start(State::default());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let url = server.url();

    // A producer publishing while the ingest is killed and restarted.
    let st = server.state.clone();
    let producer = std::thread::spawn(move || {
        for chunk in 0..N / 100 {
            {
                let mut s = st.lock().unwrap();
                for i in chunk * 100..(chunk + 1) * 100 {
                    s.topic.push((message_id(i), event(i)));
                }
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let mut ingest = start_ingest(&data, work.path(), 0, &url, &key, &[]);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    for n in 1..=6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 400));
        ingest.kill9();
        ingest = start_ingest(&data, work.path(), n, &url, &key, &[]);
    }
    producer.join().unwrap();
    ingest.wait_for_log("Pulsar reader connected", Duration::from_secs(20));
    wait_records(&data, N as u64, Duration::from_secs(90), &ingest);
    let (status, stdout) = ingest.terminate();
    assert!(status.success(), "exit {status}:\n{}", ingest.stderr());
    assert_eq!(summary(&stdout)["ok"], true);
    assert_exactly_once(&data, N);

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
    let mut again = start_ingest(&data, work.path(), 99, &url, &key, &[]);
    again.wait_for_log("Pulsar reader connected", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout) = again.terminate();
    assert!(status.success());
    assert_eq!(summary(&stdout)["received"], 0, "{stdout}");
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

#[test]
fn the_api_key_never_reaches_the_log_even_at_trace_level() {
    let server = Server::start(State::default());
    server.publish(0..20);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let key = key_file(work.path(), KEY);
    let mut cmd = ingest_command(&data, &server.url(), &key, &[]);
    cmd.env("CCVAULT_LOG", "trace");
    let mut ingest = Daemon::spawn(cmd, work.path().join("ingest.log"));
    wait_records(&data, 20, Duration::from_secs(60), &ingest);
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
    wait_records(&data, N as u64, Duration::from_secs(60), &ingest);
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
