//! The live wallboard under load (issue 16), run through
//! `scripts/bench-serve.sh` (which says what the numbers mean), or:
//!
//!   CCVAULT_BENCH_DIR=/work/bench-h4 cargo bench -p ccvault --bench serve
//!
//! A real mosquitto, `ccvault ingest mqtt … --serve 127.0.0.1:0` (the
//! optimized binary, or the one `CCVAULT_BENCH_BIN` names, to measure a
//! baseline in the same session), one headless Chromium on the wallboard, and SSE
//! clients on `/events`. A publisher sends a paced stream of interaction
//! lifecycles (Created, Queued, Assigned, Accepted, PostProcess,
//! EndPostProcess: ~2 s each, so a few hundred calls are in progress) at
//! RATE events/s for SECONDS, once per phase:
//!
//! - `1 client`: the browser and one SSE client (the baseline);
//! - `100 clients`: the browser and 100 SSE clients.
//!
//! Event k of a phase is record offset k of the archive (one publisher, one
//! topic, distinct payloads, in order), so a wallboard document that says
//! `records: R` shows every event below R. Per event it takes:
//! - publish: the wall clock just before the publisher hands it to rumqttc;
//! - visible: when a reader of the archive, polling the index file every
//!   2 ms, first saw it (index commit; durability comes before it);
//! - screen: when the page's script had applied the first document that
//!   shows it (a MutationObserver on the status line, which render() writes
//!   with the tables: the browser's clock, same machine);
//! - sse: per client, when the first such document arrived.
//!
//! and prints p50/p99/max of screen - publish, screen - visible,
//! sse - publish (over every client and event), and each client's lag
//! behind the first client to see a document, as a markdown table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::browser::Browser;
use common::daemon::Daemon;
use common::http::Events;
use common::mqtt::Broker;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Offsets (ms) of an interaction's six events from its start.
const STEPS: [(&str, i64); 6] = [
    ("InteractionCreated", 0),
    ("InteractionQueued", 0),
    ("InteractionAssigned", 500),
    ("InteractionAccepted", 700),
    ("InteractionPostProcess", 1500),
    ("InteractionEndPostProcess", 2000),
];

/// The stream of a phase: (interaction, step), in the order of their
/// times; one interaction starts every `STEPS.len()` events, so the rate of
/// events is the rate of the schedule.
fn schedule(events: usize) -> Vec<(usize, usize)> {
    let per = STEPS.len() as i64;
    let mut all: Vec<(i64, usize, usize)> = Vec::new();
    let interactions = events / STEPS.len() + STEPS.len();
    for i in 0..interactions {
        for (s, (_, at)) in STEPS.iter().enumerate() {
            all.push((i as i64 * per + at, i, s));
        }
    }
    all.sort();
    all.into_iter()
        .take(events)
        .map(|(_, i, s)| (i, s))
        .collect()
}

fn payload(phase: &str, i: usize, step: usize, seq: usize, ms: i64) -> Vec<u8> {
    let (event, _) = STEPS[step];
    let agent = format!("agBench{:03}", i % 97);
    format!(
        r#"{{"Interaction":{{"event":"{event}","interactionGUID":"int-bench-{phase}-{i:07}-phone-00-acme","mediaType":"phone","direction":"in","queueId":{},"agentId":"{agent}","interactionEventTS":{},"msgInfo":{{"instanceId":"bench","sequenceId":{seq},"timestamp":{ms}}},"resourceType":0}}}}"#,
        300 + i % 5,
        ms / 1000
    )
    .into_bytes()
}

/// Publishes `events` at `rate`/s (QoS 1, pipelined); the publish times.
fn publish(port: u16, phase: &str, events: usize, rate: u64, first_seq: usize) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let phase = phase.to_string();
    rt.block_on(async move {
        let mut o = MqttOptions::new(format!("bench-pub-{phase}"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(1000);
        let (client, mut el) = AsyncClient::new(o, 1024);
        let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acked = acks.clone();
        let driver = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("publisher connection failed: {e}"),
                }
            }
        });
        let mut times = Vec::with_capacity(events);
        let start = tokio::time::Instant::now();
        for (k, (i, s)) in schedule(events).into_iter().enumerate() {
            let due = start + Duration::from_micros(k as u64 * 1_000_000 / rate);
            tokio::time::sleep_until(due).await;
            let at = now_ms();
            let bytes = payload(&phase, i, s, first_seq + k, at);
            client
                .publish("acme/event-v1/all", QoS::AtLeastOnce, false, bytes)
                .await
                .unwrap();
            times.push(at);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while acks.load(Ordering::Relaxed) < events && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = client.disconnect().await;
        driver.abort();
        times
    })
}

/// (time ms, records) pairs, in arrival order: when some observer first
/// saw the archive or a document at `records`.
type Seen = Vec<(i64, u64)>;

/// For each event offset in `from..to`, the first time in `seen` whose
/// records count covers it (None when never seen).
fn first_cover(seen: &Seen, from: u64, to: u64) -> Vec<Option<i64>> {
    let mut out = vec![None; (to - from) as usize];
    let mut covered = from;
    for &(t, r) in seen {
        while covered < r.min(to) {
            out[(covered - from) as usize] = Some(t);
            covered += 1;
        }
    }
    out
}

/// Polls the index file (2 ms) and records when the archive's visible end
/// moved, until `stop`.
fn watch_archive(data: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let index = data.join("index.redb");
        let mut seen = Vec::new();
        let mut last_meta = None;
        let mut last = 0;
        while !stop.load(Ordering::Relaxed) {
            let meta = std::fs::metadata(&index)
                .ok()
                .map(|m| (m.len(), m.modified().ok()));
            if meta != last_meta {
                last_meta = meta;
                if let Ok(r) = ccvault_store::ArchiveReader::open(&data) {
                    let end = r.visible_end();
                    if end > last {
                        last = end;
                        seen.push((now_ms(), end));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        seen
    })
}

/// One SSE client of `/events`: the arrival time and `records` of every
/// `wallboard` document, until `stop` (checked at each message).
fn sse_client(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut events = Events::open(addr, "/events", &[("Accept", "text/event-stream")]);
        assert_eq!(events.status, 200, "GET /events");
        let mut seen = Vec::new();
        let needle = "\"records\":";
        while !stop.load(Ordering::Relaxed) {
            let Some(msg) = events.next() else { break };
            let t = now_ms();
            if msg.event != "wallboard" {
                continue;
            }
            if let Some(at) = msg.data.find(needle) {
                let digits: String = msg.data[at + needle.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(r) = digits.parse() {
                    seen.push((t, r));
                }
            }
        }
        seen
    })
}

/// Records in the page, for every document the wallboard's script applies,
/// the browser's clock and the records count of its status line.
const WATCH_STATUS: &str = "
    window.__docs = [];
    var status = document.getElementById('status');
    new MutationObserver(function () {
      var m = /([0-9]+) records/.exec(status.textContent);
      if (m) window.__docs.push([Date.now(), Number(m[1])]);
    }).observe(status, {subtree: true, childList: true, characterData: true});
    return true;";

fn quantiles(mut v: Vec<i64>) -> String {
    if v.is_empty() {
        return "n/a | n/a | n/a".into();
    }
    v.sort_unstable();
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("{} | {} | {}", q(0.5), q(0.99), v[v.len() - 1])
}

struct Phase {
    name: String,
    events: usize,
    screen_publish: Vec<i64>,
    screen_visible: Vec<i64>,
    sse_publish: Vec<i64>,
    sse_lag: Vec<i64>,
    /// Events the page never showed.
    missed_screen: usize,
    /// (client, event) pairs a client never received.
    missed_sse: usize,
    in_progress: u64,
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    name: &str,
    clients: usize,
    broker: &Broker,
    addr: SocketAddr,
    data: &Path,
    browser: &Browser,
    events: usize,
    rate: u64,
    first: u64,
) -> Phase {
    browser.open_wallboard(&format!("http://{addr}/"));
    browser.execute(WATCH_STATUS, json!([]));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_archive(data.to_path_buf(), stop.clone());
    let sse: Vec<_> = (0..clients)
        .map(|_| sse_client(addr, stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let published = publish(broker.port, name, events, rate, first as usize);
    // Let the last documents arrive.
    let end = first + events as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let top = browser
            .execute(
                "var d = window.__docs; return d.length ? d[d.length - 1][1] : 0;",
                json!([]),
            )
            .as_u64()
            .unwrap_or(0);
        if top >= end || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let in_progress = browser
        .execute(
            "return document.querySelectorAll('#in-progress tr[data-guid]').length;",
            json!([]),
        )
        .as_u64()
        .unwrap_or(0);
    let docs: Seen = serde_json::from_value(browser.execute("return window.__docs;", json!([])))
        .unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    let visible = watcher.join().unwrap();
    // A keep-alive or a last document wakes each client up to see `stop`;
    // publish one more event so that every client gets a document.
    publish(
        broker.port,
        &format!("{name}-end"),
        1,
        rate,
        first as usize + events,
    );
    let sse: Vec<Seen> = sse.into_iter().map(|h| h.join().unwrap()).collect();

    let screen = first_cover(&docs, first, end);
    let seen_visible = first_cover(&visible, first, end);
    let mut phase = Phase {
        name: name.to_string(),
        events,
        screen_publish: Vec::new(),
        screen_visible: Vec::new(),
        sse_publish: Vec::new(),
        sse_lag: Vec::new(),
        missed_screen: screen.iter().filter(|s| s.is_none()).count(),
        missed_sse: 0,
        in_progress,
    };
    for k in 0..events {
        if let Some(s) = screen[k] {
            phase.screen_publish.push(s - published[k]);
            if let Some(v) = seen_visible[k] {
                phase.screen_visible.push(s - v);
            }
        }
    }
    let per_client: Vec<Vec<Option<i64>>> =
        sse.iter().map(|s| first_cover(s, first, end)).collect();
    for k in 0..events {
        let firsts: Vec<i64> = per_client.iter().filter_map(|c| c[k]).collect();
        let Some(&earliest) = firsts.iter().min() else {
            continue;
        };
        phase.missed_sse += per_client.len() - firsts.len();
        for t in firsts {
            phase.sse_publish.push(t - published[k]);
            phase.sse_lag.push(t - earliest);
        }
    }
    phase
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read from the command line.
    let events: usize =
        env_or("CCVAULT_BENCH_SECONDS", 20usize) * env_or("CCVAULT_BENCH_RATE", 1000usize);
    let rate: u64 = env_or("CCVAULT_BENCH_RATE", 1000);
    let dir = std::env::var_os("CCVAULT_BENCH_DIR")
        .map(PathBuf::from)
        .expect("set CCVAULT_BENCH_DIR (where the archive goes; emptied first)");
    let data = dir.join("serve-bench-data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&dir).unwrap();

    let broker = Broker::start("allow_anonymous true\nmax_inflight_messages 1000");
    // Another build of ccvault (a baseline) when CCVAULT_BENCH_BIN names one.
    let bin = std::env::var_os("CCVAULT_BENCH_BIN")
        .map_or_else(|| PathBuf::from(common::bin()), PathBuf::from);
    let mut cmd = Command::new(&bin);
    cmd.arg("--data-dir").arg(&data).args([
        "ingest",
        "mqtt",
        "--url",
        &broker.url(),
        "--topic",
        "+/event-v1/all",
        "--serve",
        "127.0.0.1:0",
    ]);
    cmd.env_remove("CCVAULT_DATA");
    let mut ingest = Daemon::spawn(cmd, dir.join("serve-bench-ingest.log"));
    let (addr, _) = ingest.serving_addr();
    ingest.wait_for_log("subscribed", Duration::from_secs(30));
    let browser = Browser::start();

    let mut phases = Vec::new();
    let mut first = 0u64;
    for (name, clients) in [("1 client", 1usize), ("100 clients", 100)] {
        let tag = name.replace(' ', "");
        let p = run_phase(
            &tag, clients, &broker, addr, &data, &browser, events, rate, first,
        );
        first += events as u64 + 1;
        let mut p = p;
        p.name = name.to_string();
        phases.push(p);
    }
    drop(browser);
    let _ = ingest.terminate();

    println!(
        "\n{} events at {rate}/s per phase; times in ms (p50 | p99 | max)\n",
        events
    );
    println!("| phase | publish → screen | visible → screen | publish → SSE client | SSE client behind the first | not on screen | not received | rows in progress |");
    println!("|---|---|---|---|---|---|---|---|");
    for p in &phases {
        println!(
            "| {} | {} | {} | {} | {} | {} of {} | {} | {} |",
            p.name,
            quantiles(p.screen_publish.clone()),
            quantiles(p.screen_visible.clone()),
            quantiles(p.sse_publish.clone()),
            quantiles(p.sse_lag.clone()),
            p.missed_screen,
            p.events,
            p.missed_sse,
            p.in_progress
        );
    }
}
