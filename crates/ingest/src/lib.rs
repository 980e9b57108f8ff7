//! Live ingest: MQTT (8x8 topic layout) and the Pulsar WebSocket reader,
//! archived durably.
//!
//! Guarantees:
//! - **Acknowledge only what is durable.** A message is acknowledged to its
//!   peer (MQTT PUBACK, Pulsar WebSocket ack) only after the batch holding it
//!   has returned from [`ccvault_store::Archive::append_batch`], i.e. is in
//!   the log under the fsync policy and indexed. A crash at any moment makes
//!   the peer redeliver (MQTT persistent session) or the reader resume from
//!   the last archived `messageId` (Pulsar); nothing acknowledged is lost.
//! - **Redelivery is harmless.** The archive deduplicates by payload bytes,
//!   so a message delivered twice (redelivery, reconnect, the same event on
//!   several topics) is stored once and counted as a duplicate.
//! - **Every message gets an outcome.** Archived, quarantined (not an event,
//!   bad base64, ...), duplicate, or rejected over the size limit (logged
//!   with its topic / messageId and acknowledged: retrying cannot help).
//! - **Transient failures are retried, permanent ones are not.** Network
//!   errors reconnect with exponential backoff and full jitter; a refused
//!   login or API key is a clear error and a non-zero exit, never a retry
//!   storm. An archive I/O error stops ingest; unacknowledged messages stay
//!   with the peer.
//! - **Clean shutdown.** SIGINT/SIGTERM: stop reading, commit and fsync what
//!   was received, acknowledge it, disconnect, return a summary.
//! - **Secrets** (MQTT password, Pulsar API key) come from a file or an
//!   environment variable, never from a flag value, and are never logged.
//!
//! Modules, one job each: [`source`] (the [`Source`] trait and the one loop
//! every source runs in: connect, read, acknowledge, back off, stop),
//! [`sink`] (the durable group-commit writer it feeds), the sources
//! [`mqtt`] and [`pulsar`], [`backoff`], [`metrics`] (counters and the
//! Prometheus endpoint), [`secrets`], [`shutdown`].

pub mod backoff;
pub mod metrics;
pub mod mqtt;
pub mod pulsar;
pub mod secrets;
pub mod shutdown;
pub mod sink;
pub mod source;

pub use metrics::{Metrics, Snapshot};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use sink::{SinkOptions, Visible};
pub use source::Source;

/// Why ingest stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The peer refused our credentials. Not retried.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The peer refused something else permanently (e.g. a subscription).
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// Bad options (URL, files, ...).
    #[error("{0}")]
    Config(String),
    /// The archive failed; ingest stopped. Unacknowledged messages stay with
    /// the peer and are read again after a restart.
    #[error("archive error, ingest stopped")]
    Store(#[from] ccvault_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, IngestError>;

/// Installs the process-wide rustls crypto provider (aws-lc-rs) once, so
/// TLS never depends on which provider features other crates enabled.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A rustls client configuration trusting `ca_file` (PEM) or, without it,
/// the platform's roots; with an optional client certificate and key (PEM).
pub(crate) fn tls_config(
    ca_file: Option<&std::path::Path>,
    client_auth: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<rustls::ClientConfig> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                IngestError::Config(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    IngestError::Config(format!("bad certificate in {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    IngestError::Config(format!("bad certificate in {}: {e}", path.display()))
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(IngestError::Config(format!(
                    "no PEM certificate in CA file {}",
                    path.display()
                )));
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!("while loading the platform's CA certificates: {e}");
            }
            let (added, _) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(IngestError::Config(
                    "no CA certificates found on this machine; pass --ca-file".into(),
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_path, key_path)) => {
            let cert_pem = std::fs::read(cert_path).map_err(|e| {
                IngestError::Config(format!("cannot read {}: {e}", cert_path.display()))
            })?;
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    IngestError::Config(format!("bad certificate in {}: {e}", cert_path.display()))
                })?;
            let key_pem = std::fs::read(key_path).map_err(|e| {
                IngestError::Config(format!("cannot read {}: {e}", key_path.display()))
            })?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
                pem::Error::NoItemsFound => {
                    IngestError::Config(format!("no private key in {}", key_path.display()))
                }
                e => IngestError::Config(format!("bad private key in {}: {e}", key_path.display())),
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                IngestError::Config(format!("client certificate and key do not match: {e}"))
            })
        }
    }
}

/// A connection error, with what to do when it is a server certificate
/// that did not verify (rustls says only "invalid peer certificate:
/// UnknownIssuer" and the like).
pub(crate) fn explain_tls(why: String) -> String {
    if why.contains("invalid peer certificate") {
        format!(
            "{why} (the server's TLS certificate is not trusted: give the CA that signed it \
             with --ca-file; without it the system's CA certificates are used)"
        )
    } else {
        why
    }
}

/// Totals of one ingest run, printed at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub received: u64,
    pub archived: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub control: u64,
    pub rejected: u64,
    pub reconnects: u64,
    pub acked: u64,
}

impl Summary {
    pub fn from_metrics(m: &Metrics) -> Summary {
        let s = m.snapshot();
        Summary {
            received: s.received,
            archived: s.archived,
            quarantined: s.quarantined,
            duplicates: s.duplicates,
            control: s.control,
            rejected: s.rejected,
            reconnects: s.reconnects,
            acked: s.acked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(r: Result<rustls::ClientConfig>) -> String {
        match r {
            Err(IngestError::Config(why)) => why,
            Err(e) => panic!("expected a configuration error, got {e}"),
            Ok(_) => panic!("expected a configuration error, got a TLS configuration"),
        }
    }

    #[test]
    fn pem_files_without_what_they_should_hold_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let why = config_error(tls_config(Some(&empty), None));
        assert!(
            why.contains("no PEM certificate") && why.contains("empty.pem"),
            "{why}"
        );

        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let why = config_error(tls_config(Some(&bad), None));
        assert!(
            why.contains("bad certificate in") && why.contains("bad.pem"),
            "{why}"
        );

        let missing = dir.path().join("missing.pem");
        let why = config_error(tls_config(Some(&missing), None));
        assert!(why.contains("cannot read CA file"), "{why}");
    }
}
