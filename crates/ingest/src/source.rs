//! The one ingest loop every live source runs in: connect, read, hand to the
//! durable [`sink`], acknowledge what it made durable, back off
//! and reconnect, stop cleanly. A transport implements [`Source`] (how to
//! connect, read and acknowledge) and gets the rest from [`run`].
//!
//! Guarantees of [`run`], whatever the source:
//! - A message is acknowledged only from a [`Done`], i.e. after its batch is
//!   durable; the source drops acknowledgements of an earlier connection.
//! - A lost connection is counted, waited out with [`Backoff`] and retried; a
//!   [`Failure::Fatal`] (refused login, refused subscription, archive
//!   failure) ends the run with that error and is never retried.
//! - On a stop request: no more reading; what the sink holds is committed and
//!   acknowledged on the live connection, then the source closes it.
//! - `connected`, `reconnects`, `received` and `acked` metrics are kept here,
//!   the archive outcomes by the sink.

use std::future::Future;
use std::sync::Arc;

use ccvault_store::{Archive, SourceKind};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::shutdown::requested;
use crate::sink::{self, Done, Item, SinkOptions};
use crate::{IngestError, Result};

/// Why a source could not go on.
#[derive(Debug)]
pub enum Failure {
    /// The connection failed or ended: reconnect after a pause.
    Lost(String),
    /// A permanent error: the run ends with it.
    Fatal(IngestError),
}

/// A live transport. The futures must be `Send` so that a run can be
/// spawned on a multi-threaded runtime.
pub trait Source: Send {
    /// What the source needs to acknowledge one message.
    type Token: Send + 'static;
    /// The source kind of its records on disk.
    const KIND: SourceKind;
    /// Its name in log messages ("MQTT", "the Pulsar consumer").
    fn name(&self) -> &'static str;

    /// Where it connects, for log messages: the broker's or endpoint's URL,
    /// credentials redacted (a warning that says only "cannot connect"
    /// leaves the operator to guess which of several hosts failed).
    fn peer(&self) -> String;

    /// Connects, or reconnects after [`Failure::Lost`].
    fn connect(&mut self) -> impl Future<Output = std::result::Result<(), Failure>> + Send;

    /// Waits for the next messages of the current connection and appends
    /// them to `batch`. Must be cancel-safe: the loop drops it to
    /// acknowledge or to stop, and calls it again.
    fn next_batch(
        &mut self,
        batch: &mut Vec<Item<Self::Token>>,
    ) -> impl Future<Output = std::result::Result<(), Failure>> + Send;

    /// Acknowledges durable messages delivered on the current connection
    /// (others are skipped: their peer delivers them again) and returns how
    /// many it acknowledged.
    fn ack(
        &mut self,
        done: Vec<Done<Self::Token>>,
    ) -> impl Future<Output = std::result::Result<u64, Failure>> + Send;

    /// Ends the current connection after the last acknowledgement of a stop.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Archives `source`'s messages until `stop` turns true (then commits,
/// acknowledges, closes and returns `Ok`) or a permanent error.
pub async fn run<S: Source>(
    mut source: S,
    archive: Archive,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    sink_options: SinkOptions,
    mut backoff: Backoff,
) -> Result<()> {
    let (sink_tx, mut done_rx, sink_thread) =
        sink::start::<S::Token>(archive, S::KIND, metrics.clone(), sink_options)?;
    let mut sink_tx = Some(sink_tx);
    let name = source.name();
    let result: Result<()> = loop {
        let connected = tokio::select! {
            c = source.connect() => c,
            _ = requested(&mut stop) => break Ok(()),
        };
        let lost = match connected {
            Ok(()) => {
                metrics.set_connected(true);
                tracing::info!("{} connected", name);
                let received = metrics.snapshot().received;
                let ended =
                    session(&mut source, &mut sink_tx, &mut done_rx, &metrics, &mut stop).await;
                metrics.set_connected(false);
                // A connection that delivered a message resets the backoff.
                // One that did not (a peer that accepts, then fails: a
                // garbage frame, a refused subscription retried) leaves it
                // growing, or such a peer is retried ten times a second.
                if metrics.snapshot().received > received {
                    backoff.reset();
                }
                match ended {
                    Ok(()) => break Ok(()),
                    Err(Failure::Fatal(e)) => break Err(e),
                    Err(Failure::Lost(why)) if sink_tx.is_some() => {
                        format!("{} connection to {} lost: {why}", name, source.peer())
                    }
                    Err(Failure::Lost(_)) => break Ok(()),
                }
            }
            Err(Failure::Fatal(e)) => break Err(e),
            Err(Failure::Lost(why)) => {
                format!("cannot connect to {} at {}: {why}", name, source.peer())
            }
        };
        // Counted per attempt, a failed connect included (docs/INGEST.md):
        // an unreachable peer shows as a rising count.
        metrics.add_reconnect();
        let delay = backoff.next_delay();
        tracing::warn!(delay_ms = delay.as_millis() as u64, "{lost}; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = requested(&mut stop) => break Ok(()),
        }
    };
    // Whatever happened: no more input; let the sink commit what it holds.
    // Without a connection its acknowledgements cannot go out: the peer
    // delivers those messages again and the archive deduplicates them.
    drop(sink_tx);
    while done_rx.recv().await.is_some() {}
    let sink_result = sink_thread.join().await;
    match (result, sink_result) {
        // The session saw only that the archive thread was gone; its own
        // error says why (a full disk), and is the one to report.
        (Err(IngestError::Internal(_)), Err(cause)) => Err(cause),
        (result, sink_result) => result.and(sink_result),
    }
}

/// Reads, archives and acknowledges on one connection until it is lost or,
/// after a stop, until the sink has committed and acknowledged everything
/// (`Ok`).
async fn session<S: Source>(
    source: &mut S,
    sink_tx: &mut Option<mpsc::Sender<Item<S::Token>>>,
    done_rx: &mut mpsc::UnboundedReceiver<Vec<Done<S::Token>>>,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
) -> std::result::Result<(), Failure> {
    let mut batch = Vec::new();
    loop {
        let stopping = sink_tx.is_none();
        tokio::select! {
            biased;
            _ = requested(stop), if !stopping => {
                // Stop reading; keep acknowledging until the sink is drained.
                *sink_tx = None;
            }
            done = done_rx.recv() => match done {
                Some(done) => metrics.add_acked(source.ack(done).await?),
                None if stopping => {
                    source.close().await;
                    return Ok(());
                }
                None => {
                    return Err(Failure::Fatal(IngestError::Internal(
                        "the archive thread stopped".into(),
                    )))
                }
            },
            read = source.next_batch(&mut batch), if !stopping => {
                read?;
                metrics.add_received(batch.len() as u64);
                let Some(tx) = sink_tx.as_ref() else { continue };
                for item in batch.drain(..) {
                    if tx.send(item).await.is_err() {
                        return Err(Failure::Fatal(IngestError::Internal(
                            "the archive thread stopped".into(),
                        )));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use ccvault_store::{ArchiveOptions, ArchiveReader};

    use super::*;

    /// What the loop did to a source, seen from outside.
    #[derive(Default)]
    struct Seen {
        connects: u32,
        /// (connection, message number) of every acknowledgement.
        acked: Vec<(u32, u32)>,
        closed: bool,
    }

    /// A source that fails its first connect, then delivers the same
    /// `total` messages on every connection, dropping the first connection
    /// after `drop_after` of them.
    struct Scripted {
        seen: Arc<Mutex<Seen>>,
        connection: u32,
        next: u32,
        total: u32,
        drop_after: u32,
    }

    impl Source for Scripted {
        type Token = (u32, u32);
        const KIND: SourceKind = SourceKind::Other;

        fn name(&self) -> &'static str {
            "scripted"
        }

        fn peer(&self) -> String {
            "nowhere".into()
        }

        async fn connect(&mut self) -> std::result::Result<(), Failure> {
            let mut seen = self.seen.lock().unwrap();
            seen.connects += 1;
            if seen.connects == 1 {
                return Err(Failure::Lost("refused".into()));
            }
            self.connection = seen.connects;
            self.next = 0;
            Ok(())
        }

        async fn next_batch(
            &mut self,
            batch: &mut Vec<Item<(u32, u32)>>,
        ) -> std::result::Result<(), Failure> {
            if self.connection == 2 && self.next == self.drop_after {
                return Err(Failure::Lost("dropped".into()));
            }
            if self.next == self.total {
                return std::future::pending().await;
            }
            let n = self.next;
            self.next += 1;
            batch.push(Item {
                raw: format!("{{\"n\":{n}}}").into_bytes(),
                source: Arc::from("scripted"),
                token: (self.connection, n),
            });
            Ok(())
        }

        async fn ack(&mut self, done: Vec<Done<(u32, u32)>>) -> std::result::Result<u64, Failure> {
            let mut seen = self.seen.lock().unwrap();
            let live: Vec<(u32, u32)> = done
                .into_iter()
                .map(|d| d.token)
                .filter(|t| t.0 == self.connection)
                .collect();
            seen.acked.extend(&live);
            Ok(live.len() as u64)
        }

        async fn close(&mut self) {
            self.seen.lock().unwrap().closed = true;
        }
    }

    /// A peer that accepts every connection and fails it at once.
    struct FailsAtOnce {
        connects: Arc<Mutex<u32>>,
    }

    impl Source for FailsAtOnce {
        type Token = ();
        const KIND: SourceKind = SourceKind::Other;

        fn name(&self) -> &'static str {
            "fails-at-once"
        }

        fn peer(&self) -> String {
            "nowhere".into()
        }

        async fn connect(&mut self) -> std::result::Result<(), Failure> {
            *self.connects.lock().unwrap() += 1;
            Ok(())
        }

        async fn next_batch(&mut self, _: &mut Vec<Item<()>>) -> std::result::Result<(), Failure> {
            Err(Failure::Lost("garbage frame".into()))
        }

        async fn ack(&mut self, _: Vec<Done<()>>) -> std::result::Result<u64, Failure> {
            Ok(0)
        }

        async fn close(&mut self) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_fails_every_connection_at_once_is_retried_with_a_growing_delay() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::open(dir.path(), ArchiveOptions::default()).unwrap();
        let connects = Arc::new(Mutex::new(0));
        let source = FailsAtOnce {
            connects: connects.clone(),
        };
        let (stop_tx, stop) = watch::channel(false);
        // Reset at every connect, the delays would stay at 20-40 ms: some
        // 40 connects in the second; growing, 20+40+80+160+320+640 ms.
        let backoff = Backoff::new(Duration::from_millis(40), Duration::from_secs(10));
        let run = tokio::spawn(run(
            source,
            archive,
            Metrics::new("fails-at-once"),
            stop,
            SinkOptions::default(),
            backoff,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop_tx.send(true).unwrap();
        run.await.unwrap().unwrap();
        let n = *connects.lock().unwrap();
        assert!((2..=8).contains(&n), "{n} connects in one second");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_reconnects_archives_once_and_acknowledges_only_durable_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::open(dir.path(), ArchiveOptions::default()).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let source = Scripted {
            seen: seen.clone(),
            connection: 0,
            next: 0,
            total: 50,
            drop_after: 20,
        };
        let metrics = Metrics::new("scripted");
        let (stop_tx, stop) = watch::channel(false);
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
        let run = tokio::spawn(run(
            source,
            archive,
            metrics.clone(),
            stop,
            SinkOptions::default(),
            backoff,
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().acked.len() < 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                metrics.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop_tx.send(true).unwrap();
        run.await.unwrap().unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.connects, 3,
            "one refusal, one drop, one good connection"
        );
        assert!(seen.closed, "closed after the stop");
        // Every acknowledgement is of the live connection, each message once.
        let mut acked = seen.acked.clone();
        acked.sort_unstable();
        acked.dedup();
        assert_eq!(acked.len(), seen.acked.len());
        assert!(acked.iter().all(|&(c, _)| c == 2 || c == 3), "{acked:?}");
        let last: Vec<u32> = acked.iter().filter(|t| t.0 == 3).map(|t| t.1).collect();
        assert_eq!(last, (0..50).collect::<Vec<_>>());
        let s = metrics.snapshot();
        assert_eq!((s.received, s.reconnects), (70, 2), "{s:?}");
        // Not 8x8 events: archived as quarantined; the 20 delivered again
        // after the drop are duplicates.
        assert_eq!((s.quarantined, s.duplicates), (50, 20), "{s:?}");
        assert_eq!(s.acked, seen.acked.len() as u64);
        let reader = ArchiveReader::open(dir.path()).unwrap();
        assert_eq!(reader.counters().unwrap().records, 50);
    }
}
