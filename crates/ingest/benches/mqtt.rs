//! MQTT ingest benchmark against a local mosquitto (started here).
//!
//! 1. Sustained drain: N events are queued by the broker for the archive's
//!    persistent session while it is offline; then ingest starts and we time
//!    until every event is durable and acknowledged (PUBACK after fsync).
//! 2. Latency: events published at 1,000/s while ingest runs; per event,
//!    publish -> durable (append_batch returned) p50/p99.
//!
//! Run: `cargo bench -p ccvault-ingest --bench mqtt`
//! Env: CCVAULT_BENCH_N (default 200000), CCVAULT_BENCH_SECONDS (latency
//! run length, default 10), CCVAULT_BENCH_INFLIGHT (mosquitto
//! max_inflight_messages, default 1000), CCVAULT_BENCH_DIR (archive parent
//! dir, default the system temp dir).

// A benchmark: a failure may stop it (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccvault_ingest::mqtt::{self, MqttConfig};
use ccvault_ingest::Metrics;
use ccvault_store::{Archive, ArchiveOptions};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Broker(Child);
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &std::path::Path, inflight: u64) -> (Broker, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages {inflight}\npersistence false\n"),
    )
    .unwrap();
    let bin = [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("mosquitto is not installed (apt-get install -y mosquitto)");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Broker(child), port)
}

fn event(i: u64) -> Vec<u8> {
    format!(
        r#"{{"Interaction":{{"event":"InteractionCreated","interactionGUID":"int-{i:08}-bench-acmecorp01","queueId":"{}","agentId":"ag{}","mediaType":"phone","direction":"in","interactionEventTS":{},"eventTS":{},"msgInfo":{{"sequenceId":{i},"timestamp":{}}}}}}}"#,
        i % 50,
        i % 200,
        1_763_900_000 + i / 100,
        1_763_900_000 + i / 100,
        1_763_900_000_000 + i * 10
    )
    .into_bytes()
}

fn seq_of(raw: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(raw).ok()?;
    let at = s.find("\"sequenceId\":")? + 13;
    let end = s[at..].find(|c: char| !c.is_ascii_digit())? + at;
    s[at..end].parse().ok()
}

/// Publishes `range` at QoS 1 with a window of 500 in flight; waits for all PUBACKs.
async fn publish(
    port: u16,
    range: std::ops::Range<u64>,
    rate: Option<u64>,
    stamps: Option<Arc<Mutex<Vec<Option<Instant>>>>>,
) {
    let mut o = MqttOptions::new(format!("bench-pub-{}", range.start), "127.0.0.1", port);
    o.set_inflight(500).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let total = range.end - range.start;
    let acker = tokio::spawn(async move {
        let mut acks = 0;
        while acks < total {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
        el
    });
    let mut tick = rate.map(|r| tokio::time::interval(Duration::from_nanos(1_000_000_000 / r)));
    for i in range {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        if let Some(s) = &stamps {
            s.lock().unwrap()[i as usize] = Some(Instant::now());
        }
        client
            .publish("acmecorp01/event-v1/all", QoS::AtLeastOnce, false, event(i))
            .await
            .unwrap();
    }
    let _el = acker.await.unwrap();
}

fn main() {
    let n = env_num("CCVAULT_BENCH_N", 200_000);
    let seconds = env_num("CCVAULT_BENCH_SECONDS", 10);
    let inflight = env_num("CCVAULT_BENCH_INFLIGHT", 1000);
    let parent = std::env::var_os("CCVAULT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(parent).unwrap();
    let (_broker, port) = start_broker(work.path(), inflight);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let data = work.path().join("data");

    let ingest = |metrics: Arc<Metrics>| {
        let (archive, _) = Archive::open(&data, ArchiveOptions::default()).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let cfg = MqttConfig::new(url.clone(), "ccvault-bench");
        let task = rt.spawn(mqtt::run(cfg, archive, metrics, stop_rx));
        (stop_tx, task)
    };
    let wait = |metrics: &Metrics, what: &dyn Fn(&Metrics) -> bool, limit: Duration| {
        let deadline = Instant::now() + limit;
        while !what(metrics) {
            assert!(
                Instant::now() < deadline,
                "timed out: {:?}",
                metrics.snapshot()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    // Create the persistent session, then go offline.
    let m = Metrics::new("mqtt");
    let (stop, task) = ingest(m.clone());
    wait(&m, &|m| m.snapshot().connected, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    stop.send(true).unwrap();
    rt.block_on(task).unwrap().unwrap();

    // 1. Sustained drain.
    let t = Instant::now();
    rt.block_on(publish(port, 0..n, None, None));
    println!(
        "queued {n} events in the broker in {:.2}s ({:.0}/s publish rate)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );
    let m = Metrics::new("mqtt");
    let t = Instant::now();
    let (stop, task) = ingest(m.clone());
    wait(&m, &|m| m.snapshot().acked >= n, Duration::from_secs(600));
    let dt = t.elapsed().as_secs_f64();
    let s = m.snapshot();
    println!(
        "sustained ingest: {n} events durable+PUBACKed in {dt:.2}s = {:.0} events/s ({} group commits, {:.0} events/commit)",
        n as f64 / dt,
        s.batches,
        n as f64 / s.batches.max(1) as f64
    );

    // Let the archive settle (the store commits its index on a timer and
    // the sink syncs when the stream goes quiet): the latency phase measures
    // the steady state, not the catch-up of phase 1.
    std::thread::sleep(Duration::from_millis(1500));

    // 2. Latency at 1,000 events/s.
    let count = seconds * 1000;
    let stamps: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; (n + count) as usize]));
    let durable: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; (n + count) as usize]));
    let d2 = durable.clone();
    m.observe_durable(move |raw| {
        if let Some(i) = seq_of(raw) {
            if let Some(slot) = d2.lock().unwrap().get_mut(i) {
                *slot = Some(Instant::now());
            }
        }
    });
    rt.block_on(publish(
        port,
        n..n + count,
        Some(1000),
        Some(stamps.clone()),
    ));
    wait(
        &m,
        &|m| m.snapshot().acked >= n + count,
        Duration::from_secs(60),
    );
    let stamps = stamps.lock().unwrap();
    let durable = durable.lock().unwrap();
    let mut lat: Vec<f64> = (n..n + count)
        .filter_map(|i| {
            Some(
                durable[i as usize]?
                    .duration_since(stamps[i as usize]?)
                    .as_secs_f64()
                    * 1000.0,
            )
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "latency at 1,000 events/s over {count} events: publish->durable p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    stop.send(true).unwrap();
    rt.block_on(task).unwrap().unwrap();
}
