use super::*;
use crate::test_util::*;

const T: i64 = 1_763_899_400_000;

fn status(agent: &str, state: &str, secs: i64, extra: &str) -> String {
    format!(
        r#"{{"AgentStatusChange":{{"agentId":"{agent}","newState":{state},"statusEventTS":{secs}{extra}}}}}"#
    )
}

fn run(events: &[String], window: AgentWindow) -> Vec<AgentStateTime> {
    let mut states = AgentStates::new();
    for e in events {
        states.add(&inputs(&[e.as_bytes()])[0]);
    }
    states.finish(&window)
}

#[test]
fn sample_agent_state_time() {
    let mut states = AgentStates::new();
    let mut accepted = 0;
    for input in inputs(&sample_lines()) {
        accepted += usize::from(states.add(&input));
    }
    assert_eq!(accepted, 2); // the two AgentStatusChange lines
    let out = states.finish(&AgentWindow {
        from: None,
        to: None,
        // The sample's largest payload time: the outbound call's Deleted.
        archive_max_time_ms: 1_763_900_533_000,
    });
    let json = serde_json::to_string(&out).unwrap();
    // state 1 from 1763899400000 to 1763899460000 = 60000;
    // state 5 ("5" as text) from 1763899460000 to 1763900533000 = 1073000.
    assert_eq!(
        json,
        r#"[{"agentId":"agR2t9LmQx7VbN3cZk5WpYe","stateMs":{"1":60000,"5":1073000},"changes":2,"untimed":0}]"#
    );
    let back: Vec<AgentStateTime> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn window_clips_spans_and_counts_changes_inside() {
    let events = vec![
        status("a", "0", 1_763_899_400, ""),
        status("a", "1", 1_763_899_500, ""),
        status("a", "5", 1_763_899_600, ""),
        status("a", "10", 1_763_899_700, ""),
    ];
    let out = run(
        &events,
        AgentWindow {
            from: Some(T + 150_000),
            to: Some(T + 250_000),
            archive_max_time_ms: 0, // ignored when `to` is given
        },
    );
    assert_eq!(out.len(), 1);
    // state 1: [150, 200) s, state 5: [200, 250) s after T.
    assert_eq!(out[0].state_ms, BTreeMap::from([(1, 50_000), (5, 50_000)]));
    assert_eq!(out[0].changes, 1); // only the change at T+200 s

    // The last state runs to `to`, past the last event.
    let out = run(
        &events,
        AgentWindow {
            from: None,
            to: Some(T + 400_000),
            archive_max_time_ms: T + 999_000_000,
        },
    );
    assert_eq!(
        out[0].state_ms,
        BTreeMap::from([(0, 100_000), (1, 100_000), (5, 100_000), (10, 100_000)])
    );
    assert_eq!(out[0].changes, 4);
    // Numeric key order in JSON: "10" after "5".
    let json = serde_json::to_string(&out[0].state_ms).unwrap();
    assert_eq!(json, r#"{"0":100000,"1":100000,"5":100000,"10":100000}"#);

    // A window before any change: the agent is not listed.
    let out = run(
        &events,
        AgentWindow {
            from: Some(0),
            to: Some(T),
            archive_max_time_ms: 0,
        },
    );
    assert!(out.is_empty());
}

#[test]
fn order_duplicates_and_odd_values() {
    let events = vec![
        status("b", "5", 1_763_899_460, r#","msgInfo":{"sequenceId":2}"#),
        status("b", "\"1\"", 1_763_899_400, r#","msgInfo":{}"#),
        status("b", "5", 1_763_899_460, r#","msgInfo":{"sequenceId":2}"#),
        status("b", "\"busy\"", 1_763_899_430, ""), // not a number: ignored
        // Same second, sequenceId first: state 0 (seq 1) then 5 (seq 2).
        status("b", "0", 1_763_899_460, r#","msgInfo":{"sequenceId":1}"#),
        r#"{"AgentStatusChange":{"newState":1,"statusEventTS":1763899400}}"#.to_string(),
        r#"{"Interaction":{"event":"InteractionCreated","agentId":"b"}}"#.to_string(),
    ];
    let window = AgentWindow {
        from: None,
        to: None,
        archive_max_time_ms: T + 120_000,
    };
    let out = run(&events, window);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].agent_id, "b");
    // 1 for [0, 60) s; 0 for an instant (omitted); 5 for [60, 120) s.
    assert_eq!(out[0].state_ms, BTreeMap::from([(1, 60_000), (5, 60_000)]));
    assert_eq!(out[0].changes, 3);

    // Any order and split across accumulators: the same result.
    let mut reversed = events.clone();
    reversed.reverse();
    let mut left = AgentStates::new();
    let mut right = AgentStates::new();
    for (i, e) in reversed.iter().enumerate() {
        let acc = if i % 2 == 0 { &mut left } else { &mut right };
        acc.add(&inputs(&[e.as_bytes()])[0]);
    }
    left.merge(right);
    assert_eq!(left.finish(&window), out);
}

#[test]
fn state_names() {
    let names = StateNames::default();
    assert_eq!(names.name(0), "logged out");
    assert_eq!(names.name(5), "available");
    assert_eq!(names.name(7), "state 7");
    assert_eq!(StateNames::agent_status_api().name(5), "working offline");
    let custom = StateNames::parse("4=ready, 3 = on break").unwrap();
    assert_eq!(custom.name(3), "on break");
    assert_eq!(custom.name(0), "state 0");
    assert!(StateNames::parse("x=y").is_err());
    assert!(StateNames::parse("4").is_err());
    assert!(StateNames::parse("4=").is_err());

    let out = vec![AgentStateTime {
        agent_id: "a".into(),
        state_ms: BTreeMap::from([(1, 60_000), (5, 1_073_000)]),
        changes: 2,
        untimed: 0,
    }];
    let text = render_text(&out, &names);
    assert!(text.contains("logged in (1)"), "{text}");
    assert!(text.contains("available (5)"), "{text}");
    assert!(text.contains("17m 53s"), "{text}");
}

#[test]
fn csv_rows_spread_the_state_map_and_keep_every_json_key() {
    let out = run(
        &[
            status("a1", "1", 100, ""),
            status("a1", "5", 160, ""),
            status("b2", "0", 400, ""),
        ],
        AgentWindow {
            from: None,
            to: Some(400_000),
            archive_max_time_ms: 0,
        },
    );
    let mut w = crate::columns::CsvWriter::new(Vec::new(), &AGENT_STATE_COLUMNS).unwrap();
    for a in &out {
        for row in a.rows() {
            w.write(&row).unwrap();
        }
    }
    let csv = String::from_utf8(w.finish().unwrap()).unwrap();
    // b2's only change is at `to`: counted nowhere, no time, so not listed.
    assert_eq!(
        csv,
        "agentId,state,stateMs,changes,untimed\na1,1,60000,2,0\na1,5,240000,2,0\n"
    );
    // Each JSON key of an agent line is a column (the map as state + stateMs).
    let text = serde_json::to_string(&out[0]).unwrap();
    let keys: Vec<&str> = AGENT_STATE_COLUMNS.iter().map(|c| c.key).collect();
    for k in crate::columns::json_keys(&text) {
        assert!(keys.contains(&k.as_str()), "{k} has no CSV column");
    }
    let empty = AgentStateTime {
        agent_id: "c3".into(),
        state_ms: Default::default(),
        changes: 1,
        untimed: 0,
    };
    assert_eq!(
        empty.rows(),
        [AgentStateRow {
            agent_id: "c3".into(),
            state: None,
            state_ms: None,
            changes: 1,
            untimed: 0
        }]
    );
}

/// docs/METRICS.md §5: a status change whose only time is weak (the import
/// time here: no `statusEventTS`, `msgInfo` empty) sets no state and is
/// counted as `untimed`; an agent with only untimed changes is listed with
/// an empty `stateMs`. Without the rule, b's import time (1.8e12 ms, years
/// after the timed changes) would stretch a's state 1 to the import.
#[test]
fn weak_status_changes_are_counted_as_untimed_and_set_no_state() {
    let events = [
        status("a", "1", 1_763_899_400, ""),
        status("a", "5", 1_763_899_460, ""),
        // The 8x8 shape of a change with no time of its own.
        r#"{"AgentStatusChange":{"agentId":"a","msgInfo":{},"newState":0}}"#.to_string(),
        r#"{"AgentStatusChange":{"agentId":"b","msgInfo":{},"newState":"5"}}"#.to_string(),
        // The same payload twice counts once.
        r#"{"AgentStatusChange":{"agentId":"b","msgInfo":{},"newState":"5"}}"#.to_string(),
    ];
    let out = run(
        &events,
        AgentWindow {
            from: None,
            to: None,
            archive_max_time_ms: 1_763_899_560_000,
        },
    );
    let json = serde_json::to_string(&out).unwrap();
    assert_eq!(
        json,
        r#"[{"agentId":"a","stateMs":{"1":60000,"5":100000},"changes":2,"untimed":1},{"agentId":"b","stateMs":{},"changes":0,"untimed":1}]"#
    );
}

/// docs/METRICS.md §2 over copies: a time-less change held by an imported
/// record (weak) and by an envelope (its publish time) is one timed change,
/// whichever record came first; across the two kinds of copy, as within one.
#[test]
fn a_weak_copy_and_a_published_copy_are_one_timed_change() {
    let second = br#"{"AgentStatusChange":{"agentId":"k","msgInfo":{},"newState":5}}"#;
    let first = status("k", "1", 1_763_899_400, "");
    let imported = EventInput {
        payload: second,
        publish_time: None,
        ingest_ms: T + 500_000,
        live: false,
        topic_tenant: None,
    };
    let published = EventInput {
        publish_time: Some("2025-11-23T12:04:20.000Z"),
        ..imported
    };
    let window = AgentWindow {
        from: None,
        to: None,
        archive_max_time_ms: T + 120_000,
    };
    for copies in [[imported, published], [published, imported]] {
        let mut states = AgentStates::new();
        states.add(&inputs(&[first.as_bytes()])[0]);
        for c in &copies {
            states.add(c);
        }
        // Accumulators merged, as a rebuild's workers do, then compacted twice.
        let mut merged = AgentStates::new();
        merged.merge(states);
        merged.compact();
        let json = serde_json::to_string(&merged.finish(&window)).unwrap();
        assert_eq!(
            json,
            r#"[{"agentId":"k","stateMs":{"1":60000,"5":60000},"changes":2,"untimed":0}]"#
        );
    }
}

#[test]
fn spans_are_the_state_time_row_by_row() {
    let events = vec![
        status("a", "1", 1_763_899_400, r#","newReasonCodeUser":"lunch""#),
        status("a", "5", 1_763_899_460, ""),
        // The same payload twice is one change; a same-time change gives a 0 ms span.
        status("a", "5", 1_763_899_460, ""),
        status("a", "1", 1_763_899_520, ""),
        status("a", "3", 1_763_899_520, ""),
        status("b", "5", 1_763_899_430, ""),
        // An untimed change (eventTS only) has no span.
        r#"{"AgentStatusChange":{"agentId":"b","newState":1,"eventTS":1763899500}}"#.to_string(),
    ];
    let max = T + 300_000;
    let mut states = AgentStates::new();
    for e in &events {
        let ev = ccvault_event::parse_event(e.as_bytes()).unwrap();
        let t = ccvault_event::event_time(&ev, inputs(&[e.as_bytes()])[0].arrival());
        states.add_event_with_tenant(&ev, t, e.as_bytes(), Some("acme"));
    }
    let spans = states.clone().spans(max);
    let totals = states.finish(&AgentWindow {
        from: None,
        to: None,
        archive_max_time_ms: max,
    });
    let got: Vec<(&str, i64, Option<&str>, i64, i64)> = spans
        .iter()
        .map(|s| {
            (
                s.agent_id.as_str(),
                s.state,
                s.reason.as_deref(),
                s.start_ms - T,
                s.ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", 1, Some("lunch"), 0, 60_000),
            ("a", 5, None, 60_000, 60_000),
            ("a", 1, None, 120_000, 0),
            ("a", 3, None, 120_000, 180_000),
            ("b", 5, None, 30_000, 270_000),
        ]
    );
    assert!(spans.iter().all(|s| s.tenant.as_deref() == Some("acme")));
    assert!(spans.iter().all(|s| s.end_ms - s.start_ms == s.ms));
    for agent in &totals {
        let mine: Vec<&AgentSpan> = spans
            .iter()
            .filter(|s| s.agent_id == agent.agent_id)
            .collect();
        assert_eq!(mine.len() as u64, agent.changes, "{}", agent.agent_id);
        let mut by_state: BTreeMap<i64, i64> = BTreeMap::new();
        for s in mine.iter().filter(|s| s.ms > 0) {
            *by_state.entry(s.state).or_insert(0) += s.ms;
        }
        assert_eq!(by_state, agent.state_ms, "{}", agent.agent_id);
    }
    assert_eq!(
        totals.iter().find(|a| a.agent_id == "b").unwrap().untimed,
        1
    );
}
