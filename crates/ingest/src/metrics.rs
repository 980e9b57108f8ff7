//! Ingest counters and the optional Prometheus text endpoint.
//!
//! Metric names (all prefixed `ccvault_ingest_`, label `source="mqtt|pulsar"`):
//! `received_total`, `archived_total`, `duplicates_total`, `control_total`,
//! `quarantined_total`, `rejected_total`, `acked_total`, `reconnects_total`,
//! `batches_total`, `last_event_timestamp_seconds` (event time of the last
//! archived message), `lag_seconds` (durable time minus event time of the
//! last message of the last batch), `connected` (0/1).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{IngestError, Result};

/// Called with each message's raw bytes once it is durable.
pub type DurableObserver = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Counters shared by a source, its sink and the endpoint.
#[derive(Default)]
pub struct Metrics {
    /// For benchmarks and tests: see [`Metrics::observe_durable`].
    observer: std::sync::OnceLock<DurableObserver>,
    source: &'static str,
    received: AtomicU64,
    archived: AtomicU64,
    duplicates: AtomicU64,
    control: AtomicU64,
    quarantined: AtomicU64,
    rejected: AtomicU64,
    acked: AtomicU64,
    reconnects: AtomicU64,
    batches: AtomicU64,
    last_event_ms: AtomicI64,
    lag_ms: AtomicI64,
    connected: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub received: u64,
    pub archived: u64,
    pub duplicates: u64,
    pub control: u64,
    pub quarantined: u64,
    pub rejected: u64,
    pub acked: u64,
    pub reconnects: u64,
    pub batches: u64,
    pub last_event_ms: i64,
    pub lag_ms: i64,
    pub connected: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("source", &self.source)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl Metrics {
    pub fn new(source: &'static str) -> Arc<Metrics> {
        Arc::new(Metrics {
            source,
            ..Metrics::default()
        })
    }

    /// Installs (once) a function the sink calls with every message right
    /// after it became durable (used to measure publish-to-durable latency).
    pub fn observe_durable(&self, f: impl Fn(&[u8]) + Send + Sync + 'static) -> bool {
        self.observer.set(Box::new(f)).is_ok()
    }

    pub(crate) fn durable_observer(&self) -> Option<&DurableObserver> {
        self.observer.get()
    }

    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }
    pub fn add_archived(&self, n: u64) {
        self.archived.fetch_add(n, Relaxed);
    }
    pub fn add_duplicates(&self, n: u64) {
        self.duplicates.fetch_add(n, Relaxed);
    }
    pub fn add_control(&self, n: u64) {
        self.control.fetch_add(n, Relaxed);
    }
    pub fn add_quarantined(&self, n: u64) {
        self.quarantined.fetch_add(n, Relaxed);
    }
    pub fn add_rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Relaxed);
    }
    pub fn add_acked(&self, n: u64) {
        self.acked.fetch_add(n, Relaxed);
    }
    pub fn add_reconnect(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }
    pub fn add_batch(&self) {
        self.batches.fetch_add(1, Relaxed);
    }
    pub fn set_last_event(&self, event_ms: i64, durable_ms: i64) {
        self.last_event_ms.store(event_ms, Relaxed);
        self.lag_ms
            .store(durable_ms.saturating_sub(event_ms), Relaxed);
    }
    pub fn set_connected(&self, up: bool) {
        self.connected.store(u64::from(up), Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            received: self.received.load(Relaxed),
            archived: self.archived.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            control: self.control.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            acked: self.acked.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            batches: self.batches.load(Relaxed),
            last_event_ms: self.last_event_ms.load(Relaxed),
            lag_ms: self.lag_ms.load(Relaxed),
            connected: self.connected.load(Relaxed) != 0,
        }
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let s = self.snapshot();
        let src = self.source;
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP ccvault_ingest_{name} {help}");
            let _ = writeln!(out, "# TYPE ccvault_ingest_{name} {kind}");
            let _ = writeln!(out, "ccvault_ingest_{name}{{source=\"{src}\"}} {value}");
        };
        metric(
            "received_total",
            "counter",
            "Messages received from the peer.",
            s.received.to_string(),
        );
        metric(
            "archived_total",
            "counter",
            "Messages archived as events.",
            s.archived.to_string(),
        );
        metric(
            "duplicates_total",
            "counter",
            "Messages already archived (not stored again).",
            s.duplicates.to_string(),
        );
        metric(
            "control_total",
            "counter",
            "Transport control messages (not archived).",
            s.control.to_string(),
        );
        metric(
            "quarantined_total",
            "counter",
            "Messages archived but flagged as quarantined.",
            s.quarantined.to_string(),
        );
        metric(
            "rejected_total",
            "counter",
            "Messages not archived (over the size limit).",
            s.rejected.to_string(),
        );
        metric(
            "acked_total",
            "counter",
            "Acknowledgements sent after the message was durable.",
            s.acked.to_string(),
        );
        metric(
            "reconnects_total",
            "counter",
            "Reconnect attempts: lost connections and failed connection attempts, each followed by a retry.",
            s.reconnects.to_string(),
        );
        metric(
            "batches_total",
            "counter",
            "Durable batches committed (group commits).",
            s.batches.to_string(),
        );
        let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        metric(
            "last_event_timestamp_seconds",
            "gauge",
            "Event time of the last archived message (Unix seconds; 0 before the first).",
            secs(s.last_event_ms),
        );
        metric(
            "lag_seconds",
            "gauge",
            "Durable time minus event time of the last message of the last batch.",
            secs(s.lag_ms),
        );
        metric(
            "connected",
            "gauge",
            "1 while connected to the peer.",
            u64::from(s.connected).to_string(),
        );
        out
    }
}

/// Serves `GET /metrics` (any path, in fact) on `addr` until the returned
/// task is aborted. Binding errors are returned at once.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| IngestError::Config(format!("cannot listen on {addr} for metrics: {e}")))?;
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                // Read the request head (bounded), answer, close.
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while len < buf.len() {
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let (status, body) = if head.starts_with("GET ") {
                    ("200 OK", metrics.render())
                } else {
                    ("405 Method Not Allowed", String::new())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    }))
}
