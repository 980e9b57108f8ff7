//! The 8x8 MQTT topic layout (`{tenant}/event-v1/all`,
//! `{tenant}/event-v1/{EventType}`, `{tenant}/agent-v1/{agentId}`): the one
//! reader of topic names, for the ingest (which topics to expect) and the
//! projections (the tenant a record's topic names).

/// What an 8x8 topic says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `{tenant}/event-v1/all`
    AllEvents,
    /// `{tenant}/event-v1/{EventType}`
    EventType(&'a str),
    /// `{tenant}/agent-v1/{agentId}`
    Agent(&'a str),
}

/// An 8x8 topic: the tenant and what the topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a> {
    pub tenant: &'a str,
    pub kind: TopicKind<'a>,
}

/// Reads an 8x8 topic name; `None` when it does not follow the layout (such
/// messages are archived all the same, with the topic as their source, but
/// the topic names no tenant).
pub fn parse_topic(topic: &str) -> Option<Topic<'_>> {
    let mut parts = topic.split('/');
    let (tenant, family, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || tenant.is_empty() || leaf.is_empty() {
        return None;
    }
    let kind = match (family, leaf) {
        ("event-v1", "all") => TopicKind::AllEvents,
        ("event-v1", t) => TopicKind::EventType(t),
        ("agent-v1", a) => TopicKind::Agent(a),
        _ => return None,
    };
    Some(Topic { tenant, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_8x8_layout() {
        assert_eq!(
            parse_topic("acme/event-v1/all"),
            Some(Topic {
                tenant: "acme",
                kind: TopicKind::AllEvents
            })
        );
        assert_eq!(
            parse_topic("acme/event-v1/InteractionCreated").map(|t| t.kind),
            Some(TopicKind::EventType("InteractionCreated"))
        );
        assert_eq!(
            parse_topic("acme/agent-v1/ag1"),
            Some(Topic {
                tenant: "acme",
                kind: TopicKind::Agent("ag1")
            })
        );
        assert_eq!(parse_topic("acme/other/x"), None);
        assert_eq!(parse_topic("acme/event-v1/all/extra"), None);
        assert_eq!(parse_topic("/event-v1/all"), None);
        assert_eq!(parse_topic("acme/event-v1/"), None);
    }
}
