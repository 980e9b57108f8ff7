//! The WebSocket upgrade both Pulsar endpoints share.
//!
//! Guarantees: the API key travels only in the `X-API-Key` header, marked
//! sensitive (tungstenite never prints it); 401/403 are told apart from
//! transient failures so a refused key is not retried; the whole connect
//! (TCP, TLS, upgrade) is bounded by the configured timeout.

use std::time::Duration;

use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::Connector;

use crate::secrets::Secret;

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) enum ConnectError {
    Auth(String),
    /// The endpoint refused the request itself (HTTP 400: a query
    /// parameter it cannot take): the same request again cannot succeed.
    Refused(String),
    Config(String),
    Transient(String),
}

pub(super) async fn connect(
    url: &str,
    api_key: Option<&Secret>,
    connector: Option<Connector>,
    timeout: Duration,
) -> std::result::Result<Ws, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Config(format!("bad Pulsar URL: {e}")))?;
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key.expose())
            .map_err(|_| ConnectError::Config("the API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert("X-API-Key", value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let attempt =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError::Transient(format!(
            "no answer within {}s",
            timeout.as_secs()
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            if status.as_u16() == 401 || status.as_u16() == 403 {
                Err(ConnectError::Auth(format!(
                    "the Pulsar endpoint answered {status} to the API key: check --api-key-file / CCVAULT_PULSAR_API_KEY {}",
                    if body.trim().is_empty() { String::new() } else { format!("({})", body.trim()) }
                )))
            } else if status.as_u16() == 400 {
                Err(ConnectError::Refused(format!(
                    "the Pulsar endpoint answered {status} to the connection's request, which the same request again cannot change: check the URL's topic, subscription and query parameters {}",
                    body.trim()
                )))
            } else if status.as_u16() == 409 {
                // Pulsar's answer when an Exclusive subscription (or the
                // active slot of a Failover one it cannot join) is taken:
                // retried, so this process takes over once the holder goes.
                Err(ConnectError::Transient(format!(
                    "HTTP {status}: the subscription is held by another consumer {}",
                    body.trim()
                )))
            } else {
                Err(ConnectError::Transient(format!(
                    "HTTP {status} {}",
                    body.trim()
                )))
            }
        }
        Ok(Err(e)) => Err(ConnectError::Transient(crate::explain_tls(e.to_string()))),
    }
}
