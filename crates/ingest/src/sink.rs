//! The durable sink shared by both sources: one thread owns the
//! [`Archive`] and commits messages in groups.
//!
//! Guarantees:
//! - Items are archived in the order they were sent.
//! - A [`Done`] is emitted for an item only after `append_batch` returned
//!   for its batch: the item is durable and indexed. Sources acknowledge to
//!   their peer on `Done`, never earlier.
//! - Group commit: the thread takes everything queued so far (up to
//!   `max_batch` items / `max_batch_bytes`) as one batch, so one fsync serves
//!   many messages under load and a lone message is committed at once.
//! - With [`Visible`] (a reader in the same process, `ingest --serve`):
//!   every archived record is committed to the index, so readers see it,
//!   within [`Visible::within`] of its batch becoming durable, and the
//!   reader is told at once ([`Visible::notify`]) instead of polling.
//! - When every sender is dropped the thread commits what is left, syncs,
//!   and ends; the done channel then closes. On an archive error it stops
//!   at once (nothing after the failed batch is acknowledged) and
//!   [`SinkThread::join`] returns the error.

use std::sync::Arc;

use ccvault_event::{decode_message, resolve_time, Arrival};
use ccvault_store::{now_ms, Archive, Incoming, Outcome, SourceKind};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::{IngestError, Result};

/// How long the stream must be quiet before the sink syncs the archive
/// (so readers see the latest records even if the store defers commits).
const IDLE_SYNC: std::time::Duration = std::time::Duration::from_millis(200);
/// How often a quiet sink looks whether the compressor replaced a segment
/// whose `.seg` its log reader holds (only while the compressor works).
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_millis(500);

/// Group-commit limits and queue size.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub max_batch: usize,
    pub max_batch_bytes: usize,
    /// Items queued towards the sink before sources wait.
    pub queue: usize,
    /// Make records visible to readers promptly and tell them.
    pub visible: Option<Visible>,
}

/// A reader of the archive in this process that wants new records soon.
#[derive(Clone)]
pub struct Visible {
    /// Longest time from a batch being durable to its index commit. The
    /// store alone commits the index every second under load; a live view
    /// wants less. Commits are grouped: one per `within` at most while
    /// records keep coming.
    pub within: std::time::Duration,
    /// Called on the sink thread after each index commit that made records
    /// visible: cheap and non-blocking (it wakes the reader).
    pub notify: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Visible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visible")
            .field("within", &self.within)
            .finish_non_exhaustive()
    }
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_batch: 8192,
            max_batch_bytes: 16 << 20,
            queue: 16_384,
            visible: None,
        }
    }
}

/// One message for the sink, with what the source needs to acknowledge it.
#[derive(Debug)]
pub struct Item<T> {
    pub raw: Vec<u8>,
    /// The topic it came from.
    pub source: Arc<str>,
    pub token: T,
}

/// A durable item and its outcome.
#[derive(Debug)]
pub struct Done<T> {
    pub token: T,
    pub outcome: Outcome,
}

/// The sink's thread.
pub struct SinkThread {
    handle: std::thread::JoinHandle<Result<()>>,
}

impl SinkThread {
    /// Waits for the thread to end (after every sender is dropped or after
    /// an archive error) and returns how it ended.
    pub async fn join(self) -> Result<()> {
        let handle = self.handle;
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(IngestError::Internal("the archive thread panicked".into())),
            Err(e) => Err(IngestError::Internal(format!(
                "cannot join the archive thread: {e}"
            ))),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

pub type Channels<T> = (
    mpsc::Sender<Item<T>>,
    mpsc::UnboundedReceiver<Vec<Done<T>>>,
    SinkThread,
);

/// Starts the sink thread on `archive`.
pub fn start<T: Send + 'static>(
    mut archive: Archive,
    kind: SourceKind,
    metrics: Arc<Metrics>,
    options: SinkOptions,
) -> Result<Channels<T>> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| IngestError::Internal(format!("the sink needs a tokio runtime: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<Item<T>>(options.queue.max(1));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Vec<Done<T>>>();
    let handle = std::thread::Builder::new()
        .name("ccvault-sink".into())
        .spawn(move || -> Result<()> {
            let mut items: Vec<Item<T>> = Vec::with_capacity(options.max_batch);
            // Whether batches were appended since the last sync. The store
            // may defer index commits; when the stream goes quiet we sync
            // so readers see everything archived.
            let mut dirty = false;
            // With a reader to serve: whether archived records wait for an
            // index commit, and when the last such commit was. A record is
            // committed at once when the last commit is `within` old, else
            // with the others of that interval: at most one commit (one
            // fsync of the index) per `within`, and none delayed longer.
            let mut unseen = false;
            let mut last_shown: Option<std::time::Instant> = None;
            loop {
                if let (Some(v), true) = (&options.visible, unseen) {
                    if last_shown.is_none_or(|t| t.elapsed() >= v.within) {
                        archive.commit_index()?;
                        unseen = false;
                        last_shown = Some(std::time::Instant::now());
                        (v.notify)();
                    }
                }
                let wait = match (&options.visible, unseen, last_shown) {
                    (Some(v), true, Some(t)) => Some(v.within.saturating_sub(t.elapsed())),
                    _ if dirty => Some(IDLE_SYNC),
                    // Quiet, the compressor still at work: its segments'
                    // `.seg` files are let go of as it replaces them, not
                    // at the next message (their disk space is freed only
                    // then).
                    _ if archive.may_hold_replaced_segments() => Some(IDLE_RELEASE),
                    _ => None,
                };
                let next = match wait {
                    Some(wait) => match runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                        Ok(next) => next,
                        Err(_) if unseen => continue,
                        Err(_) if dirty => {
                            archive.sync()?;
                            dirty = false;
                            continue;
                        }
                        Err(_) => {
                            archive.drop_replaced_segments();
                            continue;
                        }
                    },
                    None => rx.blocking_recv(),
                };
                let Some(first) = next else { break };
                dirty = true;
                let mut bytes = first.raw.len();
                items.push(first);
                while items.len() < options.max_batch && bytes < options.max_batch_bytes {
                    match rx.try_recv() {
                        Ok(item) => {
                            bytes += item.raw.len();
                            items.push(item);
                        }
                        Err(_) => break,
                    }
                }
                let ingest_ms = now_ms();
                let batch: Vec<Incoming> = items
                    .iter()
                    .map(|i| Incoming {
                        raw: &i.raw,
                        source_kind: kind,
                        source: &i.source,
                        line: 0,
                        message_id: None,
                        ingest_ms,
                    })
                    .collect();
                // Said once, by the caller that stops on it ("archive
                // error, ingest stopped: …"; it was also logged here, a
                // second line with the cause in tracing fields).
                let report = archive.append_batch(&batch)?;
                drop(batch);
                unseen = options.visible.is_some();
                let durable_ms = now_ms();
                if let Some(observe) = metrics.durable_observer() {
                    for item in &items {
                        observe(&item.raw);
                    }
                }
                metrics.add_batch();
                let mut last_archived: Option<usize> = None;
                for (i, outcome) in report.outcomes.iter().enumerate() {
                    match outcome {
                        Outcome::Archived { .. } => {
                            metrics.add_archived(1);
                            last_archived = Some(i);
                        }
                        Outcome::Quarantined { reason, offset } => {
                            metrics.add_quarantined(1);
                            tracing::warn!(source = %items[i].source, offset, "quarantined: {reason}");
                        }
                        Outcome::Duplicate { .. } => metrics.add_duplicates(1),
                        Outcome::Control => metrics.add_control(1),
                        Outcome::Rejected { reason } => {
                            metrics.add_rejected(1);
                            // A warning, not an error: ingest goes on (an
                            // `error:` line ends a command, OPERATIONS.md
                            // "Output"; an outside audit took this one for
                            // the end). Of the loss target: shown with `-q`.
                            tracing::warn!(
                                target: ccvault_store::LOSS_TARGET,
                                source = %items[i].source,
                                "message not archived (acknowledged, so not sent again): {reason}"
                            );
                        }
                    }
                }
                if let Some(i) = last_archived {
                    let d = decode_message(&items[i].raw);
                    let times = d.outcome.as_ref().map(|k| k.times).unwrap_or_default();
                    let arrival = Arrival {
                        publish_time: d.publish_time.as_deref(),
                        ingest_ms: durable_ms,
                        live: true,
                    };
                    let t = resolve_time(times, arrival).ms;
                    metrics.set_last_event(t, durable_ms);
                }
                let done: Vec<Done<T>> = items
                    .drain(..)
                    .zip(report.outcomes)
                    .map(|(item, outcome)| Done {
                        token: item.token,
                        outcome,
                    })
                    .collect();
                // The source may be gone (shutting down after an error):
                // the batch is durable either way.
                let _ = done_tx.send(done);
            }
            archive.close()?;
            if let Some(v) = &options.visible {
                (v.notify)();
            }
            Ok(())
        })
        .map_err(|e| IngestError::Internal(format!("cannot start the archive thread: {e}")))?;
    Ok((tx, done_rx, SinkThread { handle }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use ccvault_store::{ArchiveOptions, ArchiveReader};

    use super::*;

    /// With a reader to serve, each notification means the records archived
    /// so far are visible to a new reader, although the store alone would
    /// not commit its index for an hour.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_serving_sink_commits_the_index_and_tells_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let options = ArchiveOptions {
            index_commit_interval: Duration::from_secs(3600),
            ..ArchiveOptions::default()
        };
        let (archive, _) = Archive::open(dir.path(), options).unwrap();
        let (told_tx, mut told) = mpsc::unbounded_channel::<()>();
        let told_tx = Mutex::new(told_tx);
        let sink = SinkOptions {
            visible: Some(Visible {
                within: Duration::from_millis(20),
                notify: Arc::new(move || {
                    let _ = told_tx.lock().unwrap().send(());
                }),
            }),
            ..SinkOptions::default()
        };
        let (tx, mut done, thread) =
            start::<u32>(archive, SourceKind::Other, Metrics::new("test"), sink).unwrap();
        for round in 0..3u32 {
            for i in 0..5 {
                let n = round * 5 + i;
                let raw = format!(
                    r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{n}","interactionEventTS":1763900000}}}}"#
                );
                tx.send(Item {
                    raw: raw.into_bytes(),
                    source: Arc::from("t"),
                    token: n,
                })
                .await
                .unwrap();
            }
            let mut durable = 0;
            while durable < 5 {
                durable += done.recv().await.unwrap().len();
            }
            // Told after the commit that shows this round (an earlier
            // notification may have shown part of it).
            loop {
                // A bound against hanging, not a measurement.
                tokio::time::timeout(Duration::from_secs(30), told.recv())
                    .await
                    .expect("no notification")
                    .unwrap();
                let end = ArchiveReader::open(dir.path()).unwrap().visible_end();
                if end == u64::from(round * 5 + 5) {
                    break;
                }
                assert!(end < u64::from(round * 5 + 5), "{end}");
            }
        }
        drop(tx);
        while done.recv().await.is_some() {}
        thread.join().await.unwrap();
    }
}
