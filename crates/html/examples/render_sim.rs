//! Renders a simulated day: one interesting interaction's timeline, one
//! contact of several legs, and the day's hourly report, as HTML files (for
//! looking at them in a browser).
//!
//! `cargo run -p ccvault-html --example render_sim -- [OUT_DIR] [SEED] [TZ]`
//! writes OUT_DIR/timeline.html, OUT_DIR/contact.html and OUT_DIR/report.html
//! (default /tmp).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ccvault_projections::{summarize, timeline, EventInput, Outcome, Report, ReportOptions};
use jiff::tz::TimeZone;

// The stream is grouped as the unit tests group it.
#[path = "../src/sim_day.rs"]
mod sim_day;

use sim_day::{inputs_of, Records};

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
    let mut truths = Vec::new();
    ccvault_sim::simulate_with_truth(&cfg, &mut buf, &mut |t| truths.push(t))?;

    let by_guid = sim_day::by_guid(&buf);
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
    let contact_path = dir.join("contact.html");
    std::fs::write(&contact_path, contact_page(&truths, &by_guid, &tz)?)?;
    let report_path = dir.join("report.html");
    std::fs::write(
        &report_path,
        ccvault_html::render_report(&report.rows(), report.options()),
    )?;
    println!(
        "{}\n{}\n{}\n{guid}",
        timeline_path.display(),
        contact_path.display(),
        report_path.display()
    );
    Ok(())
}

/// The page of the contact with the most legs (a consultation and a transfer
/// when the day has one), its legs in order of their first event.
fn contact_page(
    truths: &[ccvault_sim::Truth],
    by_guid: &BTreeMap<String, Records>,
    tz: &TimeZone,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut contacts: BTreeMap<&str, Vec<&ccvault_sim::Truth>> = BTreeMap::new();
    for t in truths {
        contacts.entry(&t.contact_id).or_default().push(t);
    }
    let score = |legs: &Vec<&ccvault_sim::Truth>| {
        let kinds = |k: &str| legs.iter().filter(|t| t.kind == k).count().min(1);
        legs.len() * 10
            + kinds("consult") * 5
            + legs.iter().map(|t| t.hold_count).sum::<i64>() as usize
    };
    let legs = contacts
        .values()
        .filter(|l| l.iter().all(|t| by_guid.contains_key(&t.interaction_guid)))
        .max_by_key(|l| score(l))
        .ok_or("no contact in the simulated day")?;
    let inputs: Vec<Vec<EventInput>> = legs
        .iter()
        .map(|t| inputs_of(&by_guid[&t.interaction_guid]))
        .collect();
    let mut tls = Vec::new();
    for i in &inputs {
        tls.push(timeline::build(i).ok_or("no events")?);
    }
    let mut order: Vec<usize> = (0..legs.len()).collect();
    order.sort_by_key(|&i| (tls[i].summary.offered_at, legs[i].interaction_guid.clone()));
    let views: Vec<ccvault_html::LegView> = order
        .iter()
        .map(|&i| ccvault_html::LegView {
            timeline: &tls[i],
            inputs: &inputs[i],
            asked: legs[i].leg_index == 1,
        })
        .collect();
    Ok(ccvault_html::render_contact(&views, tz))
}
