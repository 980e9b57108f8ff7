//! SIGINT/SIGTERM as a watch channel: `true` once a stop was requested.

use tokio::sync::watch;

/// Starts listening for SIGINT and SIGTERM; the receiver turns `true` on
/// the first one. Must be called inside a tokio runtime.
pub fn on_signals() -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        // `ingest` and `serve` both stop on it: the words fit either.
        tracing::info!(signal = name, "stop requested");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Resolves once `rx` reads `true`; never if its sender is gone without
/// having requested a stop.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
