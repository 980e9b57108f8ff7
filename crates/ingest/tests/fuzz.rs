//! Fuzz targets for what ingest reads from the operator's command line: the
//! MQTT and Pulsar URL parsers and the redaction every quoted URL goes
//! through. Arbitrary text and mutations of the seeds in `fuzz/url/` never
//! panic, and a credential put in a URL, whatever characters it holds, is
//! never printed: not by `redact_url`, not in a parser's error.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ccvault_fuzz::{config, corpus, inputs};
use ccvault_ingest::secrets::redact_url;
use ccvault_ingest::{mqtt, pulsar};
use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/url"))
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Everything that quotes `url`, as printed.
fn printed(url: &str) -> Vec<String> {
    let mut out = vec![redact_url(url)];
    if let Err(e) = mqtt::parse_url(url) {
        out.push(e.to_string());
    }
    if let Err(e) = pulsar::parse_url(url) {
        out.push(e.to_string());
    }
    out
}

/// A credential: printable ASCII, marked so that it cannot occur by chance
/// in the rest of a generated URL (lower-case letters, digits and dots).
/// A password may hold any of it; a query value cannot hold the characters
/// that end it (`&`, `#`), or `?` and `@`, unencoded.
fn credential(in_query: bool) -> impl Strategy<Value = String> {
    "[!-~]{0,12}".prop_map(move |s| {
        let s = if in_query {
            s.replace(['&', '#', '?', '@'], "%")
        } else {
            s
        };
        format!("P{s}Z")
    })
}

#[derive(Debug, Clone)]
enum Secret {
    /// `scheme://user:SECRET@host...`
    Password,
    /// `scheme://SECRET@host...`
    UserOnly,
    /// `...?KEY=SECRET`
    Query(&'static str),
}

fn url_with_secret() -> impl Strategy<Value = (String, String)> {
    let scheme = proptest::sample::select(vec!["mqtt", "mqtts", "tcp", "ssl", "tls", "ws", "wss"]);
    let place = prop_oneof![
        Just(Secret::Password),
        Just(Secret::UserOnly),
        proptest::sample::select(vec!["token", "api_key", "X-Api-Key", "password", "auth"])
            .prop_map(Secret::Query),
    ];
    let secret = place.prop_flat_map(|place| {
        let in_query = matches!(place, Secret::Query(_));
        (Just(place), credential(in_query))
    });
    (
        scheme,
        secret,
        "[a-z]{1,8}",
        "[a-z0-9.]{1,12}",
        proptest::option::of(any::<u16>()),
        proptest::sample::select(vec!["", "/", "/ws/v2/reader/persistent/acme/ns/all"]),
    )
        .prop_map(|(scheme, (place, secret), user, host, port, path)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = match &place {
                Secret::Password => format!("{scheme}://{user}:{secret}@{host}{port}{path}"),
                Secret::UserOnly => format!("{scheme}://{secret}@{host}{port}{path}"),
                Secret::Query(key) => {
                    format!("{scheme}://{host}{port}{path}?a=1&{key}={secret}&b=2")
                }
            };
            (url, secret)
        })
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn a_credential_in_a_url_is_never_printed((url, secret) in url_with_secret()) {
        for text in printed(&url) {
            prop_assert!(!text.contains(&secret), "{url:?} printed as {text:?}");
        }
    }

    #[test]
    fn url_parsers_take_any_text(bytes in inputs(seeds(), 120)) {
        let url = String::from_utf8_lossy(&bytes);
        let _ = printed(&url);
    }
}

/// The cases that leaked before `redact_url` ran the user-info part to the
/// last `@`: a password holding `#`, `/` or `?`.
#[test]
fn a_password_with_url_delimiters_is_never_printed() {
    for url in [
        "mqtt://alice:Qz#Kx@broker:1883",
        "mqtts://alice:Qz/Kx@broker",
        "mqtt://alice:Qz?Kx@broker",
        "wss://k:Qz#Kx@h/ws/v2/reader/persistent/t/n/x?token=Tq9",
    ] {
        for text in printed(url) {
            for part in ["Qz", "Kx", "Tq9"] {
                assert!(!text.contains(part), "{url:?} printed as {text:?}");
            }
        }
    }
}

#[test]
fn url_corpus() {
    for bytes in seeds() {
        let url = String::from_utf8(bytes).unwrap();
        let _ = printed(&url);
    }
}
