//! Live ingest: MQTT (8x8 topic layout) and the Pulsar WebSocket reader or
//! consumer, archived durably.
//!
//! Guarantees:
//! - **Acknowledge only what is durable.** A message is acknowledged to its
//!   peer (MQTT PUBACK, Pulsar WebSocket ack) only after the batch holding it
//!   has returned from [`ccvault_store::Archive::append_batch`], i.e. is in
//!   the log under the fsync policy (readers find it once the index commits,
//!   and a reopening indexes the log past the last commit). A crash at any moment makes
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
/// The host and port of a URL's authority (`HOST`, `HOST:PORT`, `[V6]`,
/// `[V6]:PORT`), shared by both sources' URL parsers; the port is `None`
/// when the URL gives none. Port 0 and a port that is no number are
/// refused: a connection library took them for its default port, so a
/// typo connected somewhere else, or retried forever.
pub(crate) fn host_and_port(authority: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '['")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("text after ']'")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err("port 0 cannot be connected to: give the server's port".into()),
            Ok(n) => Some(n),
            Err(_) => return Err(format!("bad port {p:?} (a number from 1 to 65535)")),
        },
    };
    Ok((host, port))
}

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
            // Without this check rustls says "peer sent no certificates",
            // naming neither the file nor the cause (often: the key given
            // as --client-cert).
            if certs.is_empty() {
                return Err(IngestError::Config(format!(
                    "{} holds no certificate (no PEM \"BEGIN CERTIFICATE\" block); \
                     --client-cert takes the client certificate, --client-key its key",
                    cert_path.display()
                )));
            }
            let key_pem = std::fs::read(key_path).map_err(|e| {
                IngestError::Config(format!("cannot read {}: {e}", key_path.display()))
            })?;
            secrets::warn_if_others_may_read(key_path, "client key");
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| key_error(&key_pem, key_path, e))?;
            let version = x509_version(&certs[0]);
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| client_auth_error(e, version, cert_path, key_path))
        }
    }
}

/// Why the `--client-key` file at `path` gave no key: an encrypted key
/// (which the PEM reader skips as no key at all) is said as one.
fn key_error(pem_text: &[u8], path: &std::path::Path, e: pem::Error) -> IngestError {
    let encrypted = [&b"ENCRYPTED PRIVATE KEY"[..], b"Proc-Type: 4,ENCRYPTED"]
        .iter()
        .any(|mark| pem_text.windows(mark.len()).any(|w| w == *mark));
    IngestError::Config(match e {
        pem::Error::NoItemsFound if encrypted => format!(
            "{} holds an encrypted private key, which ccvault cannot decrypt: give it the key unencrypted (`openssl pkey -in KEY -out KEY.plain`, kept owner-only)",
            path.display()
        ),
        pem::Error::NoItemsFound => format!("no private key in {}", path.display()),
        e => format!("bad private key in {}: {e}", path.display()),
    })
}

/// What rustls's refusal of a client certificate and key means, naming the
/// file at fault: rustls reports an X.509 v1 certificate (which `openssl
/// x509 -req` makes without extensions, and which mosquitto accepts) as
/// "invalid peer certificate: ...UnsupportedCertVersion", as if it came
/// from the server.
fn client_auth_error(
    e: rustls::Error,
    version: Option<u64>,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> IngestError {
    let (cert, key) = (cert.display(), key.display());
    IngestError::Config(match e {
        rustls::Error::InvalidCertificate(_) if version == Some(1) => format!(
            "{cert}: an X.509 v1 certificate; rustls needs v3 (issue it with extensions, \
             e.g. `openssl x509 -req ... -extfile` with a subjectAltName or basicConstraints)"
        ),
        rustls::Error::InvalidCertificate(why) => {
            format!("{cert}: the client certificate cannot be used: {why:?}")
        }
        rustls::Error::InconsistentKeys(_) => {
            format!("the client certificate {cert} and the key {key} do not match")
        }
        e => format!("the client certificate {cert} with the key {key}: {e}"),
    })
}

/// The X.509 version (1, 2 or 3) of a DER certificate, if it reads as one:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] EXPLICIT
/// version INTEGER DEFAULT v1, ... } ... }`, version 0-based on the wire.
fn x509_version(der: &[u8]) -> Option<u64> {
    /// A DER tag and its content: (tag, content, rest after the content).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, b) = b.split_first()?;
        let (len, b) = if first < 0x80 {
            (usize::from(first), b)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let len = b[..n]
                .iter()
                .fold(0usize, |l, &x| (l << 8) | usize::from(x));
            (len, &b[n..])
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    match tlv(tbs)? {
        (0xa0, explicit, _) => match tlv(explicit)? {
            (0x02, [v], _) => Some(u64::from(*v) + 1),
            _ => None,
        },
        // No version field: the default, v1.
        _ => Some(1),
    }
}

/// A connection error, with what to do when it is a server certificate
/// that did not verify (rustls says only "invalid peer certificate:
/// UnknownIssuer" and the like).
pub(crate) fn explain_tls(why: String) -> String {
    // A certificate for another name, or out of its dates, is not a
    // question of trust: another CA would not help. rustls says each in
    // its `Debug` form or its `Display` form, depending on the version.
    let says = |forms: &[&str]| forms.iter().any(|f| why.contains(f));
    if says(&["NotValidForName", "not valid for name"]) {
        format!(
            "{why} (the server's TLS certificate is not valid for the host name in the URL: \
             connect with a name the certificate lists)"
        )
    } else if says(&["Expired", "expired", "NotValidYet", "not valid yet"]) {
        format!(
            "{why} (the server's TLS certificate is outside the dates it is valid for: \
             it must be renewed on the server, or this machine's clock is wrong)"
        )
    } else if why.contains("TLS")
        && says(&[
            "Connection reset",
            "InvalidContentType",
            "corrupt message",
            "UnexpectedEof",
            "unexpected EOF",
            "early eof",
        ])
    {
        // The peer dropped or answered the handshake with something not
        // TLS: a plain listener, most likely (an outside audit: `mqtts://`
        // at a plain MQTT port retried for ever with no hint).
        format!(
            "{why} (the TLS handshake failed before any certificate: is this port one that \
             speaks TLS? mqtt:// and ws:// URLs are plain, mqtts:// and wss:// TLS)"
        )
    } else if why.contains("invalid peer certificate") {
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
    fn a_certificate_for_another_name_is_not_sent_to_look_for_a_ca() {
        let why = explain_tls(
            "invalid peer certificate: NotValidForNameContext { expected: DnsName(\"h\") }".into(),
        );
        assert!(why.contains("not valid for the host name"), "{why}");
        assert!(!why.contains("--ca-file"), "{why}");
        let why = explain_tls("invalid peer certificate: UnknownIssuer".into());
        assert!(why.contains("--ca-file"), "{why}");
        // rustls's Display forms (an outside audit met these), and dates.
        let why = explain_tls(
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"broker.example.com\")".into(),
        );
        assert!(
            why.contains("not valid for the host name") && !why.contains("--ca-file"),
            "{why}"
        );
        for dates in [
            "invalid peer certificate: certificate expired: verification time 1764979200 (UNIX), but certificate is not valid after 1764892800 (86400 seconds ago)",
            "invalid peer certificate: Expired",
            "invalid peer certificate: NotValidYet",
        ] {
            let why = explain_tls(dates.into());
            assert!(why.contains("renewed") && !why.contains("--ca-file"), "{why}");
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

    #[test]
    fn an_encrypted_client_key_is_said_as_one() {
        let path = std::path::Path::new("client-enc.key");
        let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        for pem_text in [&encrypted[..], &legacy[..]] {
            let why = match key_error(pem_text, path, pem::Error::NoItemsFound) {
                IngestError::Config(why) => why,
                e => panic!("{e}"),
            };
            assert!(
                why.contains("encrypted private key") && why.contains("client-enc.key"),
                "{why}"
            );
        }
        let plain = key_error(b"nothing", path, pem::Error::NoItemsFound);
        assert!(
            plain
                .to_string()
                .contains("no private key in client-enc.key"),
            "{plain}"
        );
    }
}
