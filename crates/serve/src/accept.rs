//! The accept loop of both listeners, plain HTTP and TLS: one hyper HTTP/1
//! connection per client over the same application.
//!
//! Invariants:
//! - A client cannot hold a socket without asking something: the TLS
//!   handshake and the headers of every request (the first one, and each
//!   next one on a kept-alive connection, so an idle connection too) must
//!   arrive within the header timeout, else the connection is closed. Only
//!   the reading of request headers is bounded: a response (`/events`
//!   streams for hours) is not.
//! - Shutdown is bounded: once asked, nothing more is accepted, idle
//!   connections close at once, requests in progress get [`DRAIN`] to
//!   finish, and whatever is still open then is dropped.
//! - A failing client (handshake, protocol error, timeout) is dropped
//!   alone, logged at debug, never the server; an accept error (out of file
//!   descriptors) pauses the loop briefly rather than spinning on it.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long open connections get to finish once shutdown is asked.
pub const DRAIN: Duration = Duration::from_secs(2);

/// How long the loop pauses after a failed accept: the usual cause is a
/// process out of file descriptors, which retrying at once does not cure.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown`, turns each into the stream HTTP
/// is read from with `handshake` (`None`: drop the client), and serves
/// `router` on it; then drains as the module says.
pub async fn serve<IO, H, F>(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handshake: H,
) -> Result<()>
where
    H: Fn(TcpStream) -> F,
    F: Future<Output = Option<IO>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Tells every connection that shutdown was asked; the sender lives
    // until the drain is over, so `changed()` only resolves on that send.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::debug!("accept failed: {e}");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                };
                let handshake = handshake(tcp);
                let service = TowerToHyperService::new(router.clone());
                let mut closing = closing_rx.clone();
                connections.spawn(async move {
                    let io = tokio::select! {
                        io = tokio::time::timeout(header_timeout, handshake) => match io {
                            Ok(Some(io)) => io,
                            Ok(None) => return,
                            Err(_) => {
                                tracing::debug!("handshake not done within {header_timeout:?}");
                                return;
                            }
                        },
                        _ = closing.changed() => return,
                    };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(TokioIo::new(io), service);
                    tokio::pin!(conn);
                    let ended = tokio::select! {
                        ended = conn.as_mut() => ended,
                        _ = closing.changed() => {
                            // Closes the connection if idle, else after the
                            // response in progress.
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}
