//! Which tenant an archived event belongs to (docs/METRICS.md, "tenant"):
//! the one place that says it. The summary's `tenant`, the tenant index of
//! `projections.redb` (`--tenant`, `stats --by-tenant`) and the Parquet
//! export's `tenant=` partitions all read it through these functions, so a
//! leg, its events and their partitions never disagree about the rule.
//!
//! The rule: the tenant the record's topic names (an MQTT topic
//! `{tenant}/event-v1/…` or `{tenant}/agent-v1/…`, a Pulsar topic
//! `persistent://{tenant}/event-v1/…`), else the text after the last `-` of
//! the event's `interactionGUID`. An event with neither (an imported
//! `AgentStatusChange`, say) has no tenant of its own.
//!
//! A leg's tenant ([`crate::Summary::tenant`]) is the topic tenant of its
//! first event (canonical order) whose record has one, else its GUID's: the
//! same two parts, so a leg whose events all have a topic tenant, or none
//! does, has the tenant of each of its events.

use std::borrow::Cow;

use ccvault_event::{parse_topic, Event};
use ccvault_store::SourceKind;
use jiff::tz::TimeZone;

use crate::materialize::TenantStats;
use crate::text::table;
use crate::timefmt::format_opt_instant;

/// Pulsar topic names start with their domain; the rest follows the 8x8
/// layout (`persistent://acme/event-v1/all`).
const PULSAR_DOMAINS: [&str; 2] = ["persistent://", "non-persistent://"];

/// The tenant a record's topic names, when it came from a live source on an
/// 8x8 topic (`source` is the record's source: the MQTT topic or the Pulsar
/// topic). Files, stdin and topics outside the layout name none.
pub fn record_tenant(kind: SourceKind, source: &str) -> Option<&str> {
    let topic = match kind {
        SourceKind::Mqtt => source,
        SourceKind::Pulsar => PULSAR_DOMAINS.iter().find_map(|d| source.strip_prefix(d))?,
        _ => return None,
    };
    parse_topic(topic).map(|t| t.tenant)
}

/// The tenant an `interactionGUID` ends with: the text after its last `-`
/// (8x8 GUIDs end in `-<tenant>`); `None` without a `-` or when nothing
/// follows it.
pub fn guid_tenant(guid: &str) -> Option<&str> {
    guid.rsplit_once('-')
        .map(|(_, suffix)| suffix)
        .filter(|s| !s.is_empty())
}

/// The tenant of one archived event: [`record_tenant`] of its record
/// (`kind`, `source`), else [`guid_tenant`] of its `interactionGUID`.
pub fn event_tenant<'a>(
    kind: SourceKind,
    source: &'a str,
    event: &'a Event<'_>,
) -> Option<Cow<'a, str>> {
    tenant_of(record_tenant(kind, source), event)
}

/// [`event_tenant`] of an event whose `interactionGUID` reads as `guid`
/// (text, as [`ccvault_event::Lenient::as_text`] gives it).
pub fn record_or_guid_tenant<'a>(
    kind: SourceKind,
    source: &'a str,
    guid: Option<&'a str>,
) -> Option<&'a str> {
    record_tenant(kind, source).or_else(|| guid_tenant(guid?))
}

/// [`event_tenant`] when the record's topic tenant is already known: it,
/// else [`guid_tenant`] of the `interactionGUID` read as text (§1).
pub(crate) fn tenant_of<'a>(
    record_tenant: Option<&'a str>,
    event: &'a Event<'_>,
) -> Option<Cow<'a, str>> {
    if let Some(t) = record_tenant {
        return Some(Cow::Borrowed(t));
    }
    match event.body.interaction_guid.as_text()? {
        Cow::Borrowed(g) => guid_tenant(g).map(Cow::Borrowed),
        Cow::Owned(g) => guid_tenant(&g).map(|t| Cow::Owned(t.to_owned())),
    }
}

/// `stats --by-tenant` as a table: one line per tenant (`(none)` for the
/// events and legs without one); times in UTC unless `tz` is given.
pub fn render_text(stats: &[TenantStats], tz: Option<&TimeZone>) -> String {
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|t| {
            vec![
                t.tenant.clone().unwrap_or_else(|| "(none)".to_owned()),
                t.events.to_string(),
                t.legs.to_string(),
                t.contacts.to_string(),
                format_opt_instant(t.min_time_ms, tz),
                format_opt_instant(t.max_time_ms, tz),
            ]
        })
        .collect();
    table(
        &["TENANT", "EVENTS", "LEGS", "CONTACTS", "FROM", "TO"],
        &rows,
        &[false, true, true, true, false, false],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccvault_event::parse_event;

    const QUEUED: &str = r#"{"Interaction":{"event":"InteractionQueued","interactionGUID":"int-1-phone-01-acme01","eventTS":1763900900}}"#;
    const STATUS: &str =
        r#"{"AgentStatusChange":{"agentId":"ag1","newState":5,"statusEventTS":1763900000}}"#;

    #[test]
    fn the_topic_names_the_tenant_else_the_guid() {
        let ev = parse_event(QUEUED.as_bytes()).unwrap();
        // A topic outside the layout, or a file named like one, names none.
        for (kind, source, want) in [
            (SourceKind::File, "day.ndjson", "acme01"),
            (SourceKind::Mqtt, "fromtopic/event-v1/all", "fromtopic"),
            (SourceKind::Mqtt, "fromtopic/agent-v1/ag1", "fromtopic"),
            (SourceKind::Pulsar, "persistent://pt/event-v1/all", "pt"),
            (SourceKind::Pulsar, "non-persistent://np/event-v1/all", "np"),
            (SourceKind::Mqtt, "some/other/topic/x", "acme01"),
            (SourceKind::File, "fromtopic/event-v1/all", "acme01"),
            (SourceKind::Pulsar, "fromtopic/event-v1/all", "acme01"),
        ] {
            let got = event_tenant(kind, source, &ev);
            assert_eq!(got.as_deref(), Some(want), "{kind:?} {source}");
        }
    }

    #[test]
    fn an_agent_event_has_a_tenant_only_from_its_topic() {
        let ev = parse_event(STATUS.as_bytes()).unwrap();
        assert_eq!(event_tenant(SourceKind::File, "x.ndjson", &ev), None);
        assert_eq!(
            event_tenant(SourceKind::Mqtt, "acme01/agent-v1/ag1", &ev).as_deref(),
            Some("acme01")
        );
    }

    #[test]
    fn guid_suffixes() {
        assert_eq!(guid_tenant("int-1-acme"), Some("acme"));
        assert_eq!(guid_tenant("nodash"), None);
        assert_eq!(guid_tenant("ends-"), None);
        let numeric = parse_event(br#"{"Interaction":{"interactionGUID":1234}}"#).unwrap();
        assert_eq!(event_tenant(SourceKind::File, "f", &numeric), None);
    }
}
