//! A simulated stream read as the archive reads it: every line decoded, and
//! the payload and publish time of each line that names an interaction kept
//! under that interaction's GUID, in stream order. Test and example code only:
//! the unit tests compile it with `cfg(test)` and the `render_sim` example
//! includes this file by path, so both read the simulator's output one way.

use std::collections::BTreeMap;

use ccvault_projections::EventInput;

/// Payloads and publish times of one interaction.
pub type Records = Vec<(Vec<u8>, Option<String>)>;

/// The lines of `stream` that carry an interaction GUID, grouped by it.
pub fn by_guid(stream: &[u8]) -> BTreeMap<String, Records> {
    let mut by_guid: BTreeMap<String, Records> = BTreeMap::new();
    for line in stream.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let d = ccvault_event::decode_message(line);
        if let Ok(Some(g)) = d.outcome.as_ref().map(|k| k.interaction_guid.clone()) {
            by_guid
                .entry(g)
                .or_default()
                .push((d.payload.to_vec(), d.publish_time.clone()));
        }
    }
    by_guid
}

/// One interaction's records as projection inputs (no ingest time, not live:
/// the pages must not depend on when the records arrived).
pub fn inputs_of(recs: &Records) -> Vec<EventInput<'_>> {
    recs.iter()
        .map(|(p, pt)| EventInput {
            payload: p,
            publish_time: pt.as_deref(),
            ingest_ms: 0,
            live: false,
            topic_tenant: None,
        })
        .collect()
}
