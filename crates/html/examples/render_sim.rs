//! Renders a simulated day: one interesting interaction's timeline and the
//! day's hourly report, as HTML files (for looking at them in a browser).
//!
//! `cargo run -p ccvault-html --example render_sim -- [OUT_DIR] [SEED] [TZ]`
//! writes OUT_DIR/timeline.html and OUT_DIR/report.html (default /tmp).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ccvault_projections::{summarize, timeline, EventInput, Outcome, Report, ReportOptions};
use jiff::tz::TimeZone;

type Records = Vec<(Vec<u8>, Option<String>)>;

fn inputs_of(recs: &Records) -> Vec<EventInput<'_>> {
    recs.iter()
        .map(|(p, pt)| EventInput {
            payload: p,
            publish_time: pt.as_deref(),
            ingest_ms: 0,
            topic_tenant: None,
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp".to_string()));
    let seed: u64 = args.next().map_or(Ok(7), |s| s.parse())?;
    let tz = match args.next() {
        Some(name) => TimeZone::get(&name)?,
        None => TimeZone::UTC,
    };
    let cfg = ccvault_sim::SimConfig {
        seed,
        ..Default::default()
    };
    let mut buf = Vec::new();
    ccvault_sim::simulate(&cfg, &mut buf)?;

    let mut by_guid: BTreeMap<String, Records> = BTreeMap::new();
    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let d = ccvault_event::decode_message(line);
        if let Ok(keys) = &d.outcome {
            if let Some(g) = &keys.interaction_guid {
                by_guid
                    .entry(g.clone())
                    .or_default()
                    .push((d.payload.to_vec(), d.publish_time.clone()));
            }
        }
    }
    let mut report = Report::new(ReportOptions {
        tz: tz.clone(),
        ..ReportOptions::default()
    });
    // The most telling interaction: answered after a reject, with holds and wrap-up.
    let mut best: Option<(u64, &str)> = None;
    for (guid, recs) in &by_guid {
        let Some(s) = summarize(&inputs_of(recs)) else {
            continue;
        };
        report.add(&s);
        if s.outcome == Outcome::Answered && s.wrap_ms.is_some() {
            let score = s.reject_count.min(2) * 10 + s.hold_count.min(2) * 5 + s.offer_count;
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, guid));
            }
        }
    }
    let (_, guid) = best.ok_or("no answered interaction in the simulated day")?;
    let recs = &by_guid[guid];
    let inputs = inputs_of(recs);
    let tl = timeline::build(&inputs).ok_or("no events")?;
    let timeline_path = dir.join("timeline.html");
    std::fs::write(
        &timeline_path,
        ccvault_html::render_timeline(&tl, &inputs, &tz),
    )?;
    let report_path = dir.join("report.html");
    std::fs::write(
        &report_path,
        ccvault_html::render_report(&report.rows(), report.options()),
    )?;
    println!(
        "{}\n{}\n{guid}",
        timeline_path.display(),
        report_path.display()
    );
    Ok(())
}
