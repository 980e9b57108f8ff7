//! Pulsar WebSocket URLs taken apart and put back together.
//!
//! Guarantees: only the reader (`/ws/v2/reader/persistent/{tenant}/{ns}/{topic}`)
//! and consumer (`/ws/v2/consumer/persistent/{tenant}/{ns}/{topic}/{subscription}`)
//! endpoints are accepted; a credential in the URL (user info or a
//! credential-like query key) is refused with a message that never repeats
//! it; the query parameters ccvault sets itself (`messageId`,
//! `receiverQueueSize`, `subscriptionType`) are refused naming the option
//! that sets them (dropping them silently would ignore what the caller
//! asked for), and every other query parameter is sent as given; a
//! `#fragment` is refused, since the parameters ccvault appends would land
//! after the `#` and never reach the server.

use percent_encoding::percent_decode_str;

use crate::secrets::{is_secret_query_key, redact_url};
use crate::{IngestError, Result};

/// How a consumer shares its subscription with other consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionType {
    /// One consumer only; a second one is refused by the broker.
    #[default]
    Exclusive,
    /// One active consumer; the broker fails over to the next connected one
    /// when it goes, redelivering what it left unacknowledged.
    Failover,
    /// Messages spread over every connected consumer.
    Shared,
}

impl SubscriptionType {
    /// The value of the `subscriptionType` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Exclusive => "Exclusive",
            SubscriptionType::Failover => "Failover",
            SubscriptionType::Shared => "Shared",
        }
    }
}

/// Which WebSocket endpoint a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// No subscription: ccvault keeps the position (the archive).
    Reader,
    /// A durable subscription: the broker keeps the cursor.
    Consumer { subscription: String },
}

/// A reader or consumer URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulsarUrl {
    /// Scheme, host and path, no query.
    pub base: String,
    /// Query parameters other than the ones ccvault sets.
    pub query: Vec<String>,
    /// `persistent://tenant/namespace/topic`: the archived records' source.
    pub topic: String,
    pub tenant: String,
    pub tls: bool,
    pub endpoint: Endpoint,
}

/// Query parameters ccvault sets from its own options, and the option that
/// sets each.
const OWN_KEYS: [(&str, &str); 3] = [
    (
        "messageId",
        "--start (a reader resumes after the last archived message by itself)",
    ),
    ("receiverQueueSize", "--receiver-queue-size"),
    ("subscriptionType", "--subscription-type"),
];

const SHAPES: &str = "expected wss://HOST/ws/v2/reader/persistent/TENANT/NAMESPACE/TOPIC \
                      or wss://HOST/ws/v2/consumer/persistent/TENANT/NAMESPACE/TOPIC/SUBSCRIPTION";

/// Parses `ws[s]://HOST[:PORT]/ws/v2/reader/persistent/{tenant}/{ns}/{topic}`
/// or `ws[s]://HOST[:PORT]/ws/v2/consumer/persistent/{tenant}/{ns}/{topic}/{subscription}`.
pub fn parse_url(url: &str) -> Result<PulsarUrl> {
    let bad =
        |why: &str| IngestError::Config(format!("bad Pulsar URL {:?}: {why}", redact_url(url)));
    let tls = if url.starts_with("wss://") {
        true
    } else if url.starts_with("ws://") {
        false
    } else {
        return Err(bad(SHAPES));
    };
    // ccvault appends its own query parameters; after a fragment they would
    // never be sent (a reader would silently start at the server's default).
    if url.contains('#') {
        return Err(bad(
            "a URL fragment ('#...') is not allowed: the query parameters ccvault adds \
             (messageId, receiverQueueSize) would follow it and never reach the server; \
             remove it (write a '#' inside a value as %23)",
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = &base[if tls { 6 } else { 5 }..];
    let (authority, path) = after_scheme.split_once('/').ok_or_else(|| bad("no path"))?;
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            "no host, or credentials in the URL (use --api-key-file)",
        ));
    }
    crate::host_and_port(authority).map_err(|why| bad(&why))?;
    let (kind, rest) = path
        .strip_prefix("ws/v2/")
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| bad(SHAPES))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (domain, tenant, namespace, topic, endpoint) = match (kind, parts.as_slice()) {
        ("reader", [d, t, n, topic]) => (*d, *t, *n, *topic, Endpoint::Reader),
        ("consumer", [d, t, n, topic, sub]) if !sub.is_empty() => (
            *d,
            *t,
            *n,
            *topic,
            Endpoint::Consumer {
                subscription: (*sub).to_owned(),
            },
        ),
        _ => return Err(bad(SHAPES)),
    };
    if !matches!(domain, "persistent" | "non-persistent")
        || tenant.is_empty()
        || namespace.is_empty()
        || topic.is_empty()
    {
        return Err(bad(SHAPES));
    }
    // A key as the endpoint reads it: `x-api%2Dkey` is `x-api-key` there
    // (until 2026-12-07 the encoded spelling passed these checks: an
    // outside audit).
    let decoded = |key: &str| percent_decode_str(key).decode_utf8_lossy().into_owned();
    if let Some(key) = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|key| is_secret_query_key(key))
    {
        return Err(bad(&format!(
            "the credential {key:?} does not belong in the URL, where `ps` and logs would show it: \
             put the API key in a file given with --api-key-file, or in CCVAULT_PULSAR_API_KEY"
        )));
    }
    for kv in query.split('&') {
        let key = kv.split('=').next().unwrap_or("");
        let as_read = decoded(key);
        if let Some((own, flag)) = OWN_KEYS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&as_read))
        {
            return Err(bad(&format!(
                "the query parameter {key:?} is set by ccvault ({own}): use {flag} instead"
            )));
        }
    }
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(str::to_owned)
        .collect();
    // The topic as the endpoint reads it, whatever its spelling in the URL
    // (`%61ll` is `all`): the archived records' source, by which a reader
    // finds where it stopped (until 2026-12-07 a respelled URL started
    // at `latest`, leaving a gap: an outside audit).
    let (tenant, namespace, topic) = (decoded(tenant), decoded(namespace), decoded(topic));
    Ok(PulsarUrl {
        base: base.to_owned(),
        query,
        topic: format!("{domain}://{tenant}/{namespace}/{topic}"),
        tenant,
        tls,
        endpoint,
    })
}

impl PulsarUrl {
    /// The URL to connect to: ccvault's own parameters after the caller's.
    pub fn with_params(&self, params: &[(&str, &str)]) -> String {
        let mut q = self.query.clone();
        for (key, value) in params {
            q.push(format!("{key}={}", percent_encode(value)));
        }
        format!("{}?{}", self.base, q.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a base64
/// message id has `+`, `/` and `=`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_urls() {
        let u = parse_url(
            "wss://pulsar.example/ws/v2/reader/persistent/acme/event-v1/all?readerName=x",
        )
        .unwrap();
        assert_eq!(u.topic, "persistent://acme/event-v1/all");
        assert_eq!(u.tenant, "acme");
        assert_eq!(u.endpoint, Endpoint::Reader);
        assert!(u.tls);
        assert_eq!(
            u.with_params(&[("messageId", "CAEQAQ=="), ("receiverQueueSize", "500")]),
            "wss://pulsar.example/ws/v2/reader/persistent/acme/event-v1/all?readerName=x&messageId=CAEQAQ%3D%3D&receiverQueueSize=500"
        );
        assert!(parse_url("https://x/ws/v2/reader/persistent/a/b/c").is_err());
        assert!(parse_url("wss://x/ws/v2/reader/persistent/a/b").is_err());
        assert!(parse_url("wss://x/ws/v2/reader/persistent/a/b/c/d").is_err());
        assert!(parse_url("wss://x/ws/v2/producer/persistent/a/b/c").is_err());
        assert!(parse_url("wss://k@x/ws/v2/reader/persistent/a/b/c").is_err());
        // A port that is no port went to the default one (80 or 443).
        for (url, why) in [
            ("ws://h:0/ws/v2/reader/persistent/a/b/c", "port 0"),
            (
                "ws://h:abc/ws/v2/reader/persistent/a/b/c",
                "bad port \"abc\"",
            ),
            ("ws://h:99999/ws/v2/reader/persistent/a/b/c", "bad port"),
            ("wss://[::1]x/ws/v2/reader/persistent/a/b/c", "after ']'"),
            ("wss://:8080/ws/v2/reader/persistent/a/b/c", "no host"),
        ] {
            let Err(IngestError::Config(got)) = parse_url(url) else {
                panic!("{url} accepted");
            };
            assert!(got.contains(why), "{url}: {got}");
        }
        assert!(parse_url("ws://[::1]:8080/ws/v2/reader/persistent/a/b/c").is_ok());
        // A fragment would swallow the parameters ccvault appends.
        for url in [
            "wss://x/ws/v2/reader/persistent/a/b/c#f",
            "wss://x/ws/v2/reader/persistent/a/b/c?readerName=r#f",
        ] {
            let Err(IngestError::Config(why)) = parse_url(url) else {
                panic!("{url} accepted");
            };
            assert!(why.contains("fragment"), "{why}");
        }
        // ccvault's own parameters are refused naming the option to use.
        for (query, flag) in [
            ("messageId=latest", "--start"),
            ("receiverqueuesize=5", "--receiver-queue-size"),
            ("a=b&subscriptionType=Shared", "--subscription-type"),
        ] {
            let url = format!("wss://x/ws/v2/reader/persistent/a/b/c?{query}");
            let Err(IngestError::Config(why)) = parse_url(&url) else {
                panic!("{url} accepted");
            };
            assert!(why.contains(flag), "{why}");
        }
    }

    #[test]
    fn consumer_urls() {
        let u = parse_url(
            "ws://127.0.0.1:8080/ws/v2/consumer/persistent/acme/event-v1/all/archive?consumerName=a",
        )
        .unwrap();
        assert_eq!(u.topic, "persistent://acme/event-v1/all");
        assert_eq!(
            u.endpoint,
            Endpoint::Consumer {
                subscription: "archive".into()
            }
        );
        assert!(!u.tls);
        assert_eq!(
            u.with_params(&[("subscriptionType", "Failover")]),
            "ws://127.0.0.1:8080/ws/v2/consumer/persistent/acme/event-v1/all/archive?consumerName=a&subscriptionType=Failover"
        );
        // No subscription, an empty one, or one path segment too many.
        for url in [
            "wss://x/ws/v2/consumer/persistent/a/b/c",
            "wss://x/ws/v2/consumer/persistent/a/b/c/",
            "wss://x/ws/v2/consumer/persistent/a/b/c/s/t",
        ] {
            let Err(IngestError::Config(why)) = parse_url(url) else {
                panic!("{url} accepted");
            };
            assert!(why.contains("SUBSCRIPTION"), "{why}");
        }
        let Err(IngestError::Config(why)) =
            parse_url("wss://x/ws/v2/consumer/persistent/a/b/c/s?x-api-key=SECRET")
        else {
            panic!("a key in the URL accepted");
        };
        assert!(
            why.contains("--api-key-file") && !why.contains("SECRET"),
            "{why}"
        );
    }

    /// Keys and the topic as the endpoint reads them, percent-decoded: an
    /// encoded credential or own parameter is refused as the plain one is,
    /// and a respelled topic is the same topic (the source a reader
    /// resumes from).
    #[test]
    fn percent_encoded_keys_and_topics_are_read_as_the_endpoint_reads_them() {
        for (query, names) in [
            ("x-api%2Dkey=SECRET", "--api-key-file"),
            ("message%49d=latest", "--start"),
            ("%72eceiverQueueSize=5", "--receiver-queue-size"),
        ] {
            let url = format!("wss://x/ws/v2/reader/persistent/a/b/all?{query}");
            let Err(IngestError::Config(why)) = parse_url(&url) else {
                panic!("{url} accepted");
            };
            assert!(why.contains(names) && !why.contains("SECRET"), "{why}");
        }
        let plain = parse_url("wss://x/ws/v2/reader/persistent/t1/event-v1/all").unwrap();
        let spelled = parse_url("wss://x/ws/v2/reader/persistent/t%31/event-v1/%61ll").unwrap();
        assert_eq!(spelled.topic, plain.topic);
        assert_eq!(spelled.tenant, "t1");
    }
}
