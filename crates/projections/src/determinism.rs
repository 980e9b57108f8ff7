//! Shuffling and duplicating the records never changes an output byte.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use proptest::prelude::*;

use crate::agents::{AgentStates, AgentWindow};
use crate::input::EventInput;
use crate::report::{GroupBy, Interval, Report, ReportOptions};
use crate::summary::summarize;
use crate::test_util::*;
use crate::timeline;

/// Every projection of `records`, as JSON text.
fn project(records: &[&[u8]]) -> String {
    let recs = inputs(records);
    let mut by_guid: BTreeMap<String, Vec<EventInput>> = BTreeMap::new();
    for r in &recs {
        let guid = ccvault_event::parse_event(r.payload)
            .ok()
            .and_then(|e| e.body.interaction_guid.as_text().map(|g| g.into_owned()));
        if let Some(g) = guid {
            by_guid.entry(g).or_default().push(*r);
        }
    }
    let mut out = String::new();
    let opts = ReportOptions {
        interval: Interval::Min15,
        by: GroupBy::QUEUE,
        tz: TimeZone::get("America/New_York").unwrap(),
        ..ReportOptions::default()
    };
    let mut report = Report::new(opts);
    for events in by_guid.values() {
        let s = summarize(events).unwrap();
        out += &serde_json::to_string(&s).unwrap();
        out += &serde_json::to_string(&timeline::build(events).unwrap()).unwrap();
        out += &timeline::render_text(&timeline::build(events).unwrap(), None);
        report.add(&s);
    }
    out += &serde_json::to_string(&report.rows()).unwrap();
    let mut agents = AgentStates::new();
    for r in &recs {
        agents.add(r);
    }
    let window = AgentWindow {
        from: None,
        to: None,
        archive_max_time_ms: 1_763_900_533_000,
    };
    out += &serde_json::to_string(&agents.finish(&window)).unwrap();
    out
}

fn shuffled_with_duplicates() -> impl Strategy<Value = Vec<&'static [u8]>> {
    let lines = sample_lines();
    let n = lines.len();
    proptest::collection::vec(0..n, 0..2 * n).prop_flat_map(move |dupes| {
        let mut all = lines.clone();
        all.extend(dupes.iter().map(|&i| lines[i]));
        all.push(b"{\"not\": \"an event\"");
        Just(all).prop_shuffle()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn outputs_depend_only_on_the_set_of_events(records in shuffled_with_duplicates()) {
        let baseline = project(&sample_lines());
        prop_assert_eq!(project(&records), baseline);
    }
}
