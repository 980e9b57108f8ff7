//! Helpers shared by the unit tests.

use crate::input::EventInput;

pub const SAMPLE: &str = include_str!("../testdata/events.ndjson");

pub const GUID1: &str = "int-19ab3f0c1d2-Qm7tZp2LxWc9aRf3kYv8bNe1H-phone-00-northwind01";
pub const GUID2: &str = "int-19ab3f0d7e1-Lk2VbN8sXq4ZtR6mPy1cJw0Ud-phone-01-northwind01";
pub const GUID3: &str = "int-19ab3f0e9a4-Zx5CvB7nMq2WeR8tYu3iOp6As-phone-02-northwind01";

/// The sample's lines.
pub fn sample_lines() -> Vec<&'static [u8]> {
    SAMPLE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::as_bytes)
        .collect()
}

/// The sample lines that mention `guid`.
pub fn sample_of(guid: &str) -> Vec<&'static [u8]> {
    sample_lines()
        .into_iter()
        .filter(|l| std::str::from_utf8(l).is_ok_and(|s| s.contains(guid)))
        .collect()
}

/// Records with no envelope time and ingest time 0.
pub fn inputs<'a>(payloads: &[&'a [u8]]) -> Vec<EventInput<'a>> {
    payloads
        .iter()
        .map(|p| EventInput {
            payload: p,
            publish_time: None,
            ingest_ms: 0,
            live: false,
            topic_tenant: None,
        })
        .collect()
}

/// An Interaction event of type `event` at `ts` seconds with extra fields
/// (a JSON object body without braces, may be empty).
pub fn ev(event: &str, ts: i64, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"Interaction":{{"event":"{event}","interactionGUID":"int-t-phone-00-acme01","interactionEventTS":{ts}{sep}{extra}}}}}"#
    )
}
