//! Rebuild from scratch and incremental catch-up give the same tables, and
//! both equal the pure functions applied to the archive's records.

use std::collections::BTreeMap;
use std::path::Path;

use ccvault_sim::{simulate, SimConfig};
use ccvault_store::{import_stream, Archive, ArchiveOptions, ArchiveReader, Incoming, SourceKind};
use jiff::tz::TimeZone;

use super::*;
use crate::agents::{AgentStates, AgentWindow};
use crate::report::{GroupBy, Interval, Report, ReportOptions, ReportRow};
use crate::summary::summarize;
use crate::summary::Summary;
use ccvault_event::{event_time, parse_event, EventTime};
use query::TenantStats;
use schema::{CHILDREN, META, OFFERED};

fn sim_lines(seed: u64, interactions: u64) -> Vec<Vec<u8>> {
    sim_lines_with(seed, interactions, ccvault_sim::Quirks::default())
}

fn sim_lines_with(seed: u64, interactions: u64, quirks: ccvault_sim::Quirks) -> Vec<Vec<u8>> {
    lines_of(&SimConfig {
        seed,
        interactions: Some(interactions),
        agents: 12,
        quirks,
        ..SimConfig::default()
    })
}

/// A simulated day of another tenant (its GUIDs end in `-tenant`).
fn sim_tenant_lines(seed: u64, interactions: u64, tenant: &str) -> Vec<Vec<u8>> {
    lines_of(&SimConfig {
        seed,
        interactions: Some(interactions),
        agents: 6,
        tenant: tenant.to_owned(),
        ..SimConfig::default()
    })
}

fn lines_of(cfg: &SimConfig) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    simulate(cfg, &mut out).unwrap();
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn import_lines(dir: &Path, lines: &[Vec<u8>]) {
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let mut text = Vec::new();
    for l in lines {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    import_stream(
        &mut archive,
        std::io::Cursor::new(text),
        SourceKind::File,
        "part.ndjson",
        1 << 20,
        &mut |_| {},
    )
    .unwrap();
    archive.sync().unwrap();
}

/// Appends lines as if they came from MQTT (the topic names the tenant).
fn import_mqtt(dir: &Path, lines: &[Vec<u8>], topic: &str) {
    let (mut archive, _) = Archive::open(dir, ArchiveOptions::default()).unwrap();
    let batch: Vec<Incoming> = lines
        .iter()
        .map(|l| Incoming {
            raw: l,
            source_kind: SourceKind::Mqtt,
            source: topic,
            line: 0,
            message_id: None,
            ingest_ms: 1_700_000_000_000,
        })
        .collect();
    archive.append_batch(&batch).unwrap();
    archive.sync().unwrap();
}

fn report_opts() -> Vec<ReportOptions> {
    vec![
        ReportOptions::default(),
        ReportOptions {
            interval: Interval::Min15,
            by: GroupBy::QUEUE,
            tz: TimeZone::get("America/New_York").unwrap(),
            ..ReportOptions::default()
        },
        ReportOptions {
            interval: Interval::Day1,
            by: GroupBy::AGENT,
            ..ReportOptions::default()
        },
        // Thresholds are flags: report_chunks keep the durations, not
        // verdicts. A window of `offeredAt` that cuts hours.
        ReportOptions {
            interval: Interval::Min30,
            by: GroupBy {
                queue: true,
                agent: false,
                channel: true,
            },
            tz: TimeZone::get("Asia/Kolkata").unwrap(),
            sla: "phone=10s,chat=45s,*=2m".parse().unwrap(),
            short_abandon_ms: 12_000,
            from: Some(ccvault_sim::DEFAULT_START_MS + 9 * 3_600_000 + 1_234_567),
            to: Some(ccvault_sim::DEFAULT_START_MS + 14 * 3_600_000 + 7),
        },
    ]
}

/// Everything the store answers, as text: the summaries, the `children`
/// table as stored, every leg's contact as `contact_legs` finds it, the
/// reports, agent state time and the state.
fn dump(p: &Projections) -> String {
    let mut out = String::new();
    let mut guids = Vec::new();
    let mut offered_keys: BTreeMap<(u32, i64), u32> = BTreeMap::new();
    p.for_each_interaction(&InteractionFilter::default(), |s| {
        out += &serde_json::to_string(&s).unwrap();
        out.push('\n');
        let guid = s.interaction_guid.clone().unwrap();
        *offered_keys
            .entry((schema::offered_hash(&guid), s.offered_at))
            .or_default() += 1;
        guids.push(guid);
        Ok(true)
    })
    .unwrap();
    {
        let txn = p.read_txn().unwrap();
        // The GUID-hash table counts exactly the summaries' keys.
        let offered = txn.open_table(OFFERED).unwrap();
        let stored: BTreeMap<(u32, i64), u32> = redb::ReadableTable::iter(&offered)
            .unwrap()
            .map(|item| {
                let (k, v) = item.unwrap();
                (k.value(), v.value())
            })
            .collect();
        assert_eq!(stored, offered_keys);
        let children = txn.open_table(CHILDREN).unwrap();
        for item in redb::ReadableTable::iter(&children).unwrap() {
            let (k, _) = item.unwrap();
            let (parent, child) = k.value();
            out += &format!("child {parent} {child}\n");
        }
    }
    for g in &guids {
        out += &contact_line(g, &p.contact_legs(g).unwrap());
    }
    // A contact's legs listed through its links are the ones a scan of
    // every summary finds, in the same order.
    let mut scanned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    p.for_each_interaction(&InteractionFilter::default(), |s| {
        let contact = s.contact_id.clone().unwrap();
        scanned
            .entry(contact)
            .or_default()
            .extend(s.interaction_guid);
        Ok(true)
    })
    .unwrap();
    for (contact, legs) in &scanned {
        let filter = InteractionFilter {
            contact_id: Some(contact.clone()),
            ..InteractionFilter::default()
        };
        let mut listed = Vec::new();
        p.for_each_interaction(&filter, |s| {
            listed.extend(s.interaction_guid);
            Ok(true)
        })
        .unwrap();
        assert_eq!(&listed, legs, "legs of contact {contact}");
    }
    for opts in report_opts() {
        // The compact rows and the whole summaries (placed in their
        // contacts) give the same report.
        let rows = p.report(opts.clone()).unwrap();
        // A day of a few hundred legs has some in the window of hours.
        let day = p.state().unwrap().interactions >= 200;
        assert!(!day || opts.from.is_none() || !rows.is_empty(), "no legs");
        let mut summed = Vec::new();
        p.report_from_summaries(opts, None, |batch| {
            summed.extend(batch);
            Ok(true)
        })
        .unwrap();
        assert_eq!(rows, summed);
        for row in rows {
            out += &serde_json::to_string(&row).unwrap();
            out.push('\n');
        }
    }
    for (from, to) in [(None, None), (Some(1_763_900_000_000), None)] {
        for a in p.agents(from, to).unwrap() {
            out += &serde_json::to_string(&a).unwrap();
            out.push('\n');
        }
    }
    let st = p.state().unwrap();
    out += &format!(
        "{:?} {:?} {}\n",
        st.consumed, st.max_time_ms, st.interactions
    );
    out
}

/// The archive's records that are not quarantined, in log order.
fn archived(dir: &Path) -> (ArchiveReader, Vec<ccvault_store::Record>) {
    let reader = ArchiveReader::open(dir).unwrap();
    let mut recs = Vec::new();
    reader
        .for_each_record(
            |r| {
                if !r.quarantined {
                    recs.push(r);
                }
                Ok(())
            },
            |_| {},
        )
        .unwrap();
    (reader, recs)
}

/// The same answers computed directly from the archive's records with the
/// pure functions (no store involved).
fn oracle(dir: &Path) -> String {
    let (reader, recs) = archived(dir);
    let mut by_guid: BTreeMap<String, Vec<crate::EventInput>> = BTreeMap::new();
    let mut agents = AgentStates::new();
    // Each distinct event's t(e): the best time among the records holding
    // it (docs/METRICS.md §2); the largest timed one ends the last states.
    let mut event_times: BTreeMap<&[u8], EventTime> = BTreeMap::new();
    for r in &recs {
        let input = record_input(r);
        if let Ok(ev) = parse_event(&r.payload) {
            let t = event_time(&ev, input.arrival());
            let best = event_times.entry(&r.payload).or_insert(t);
            if t.copy_order(best).is_lt() {
                *best = t;
            }
            if let Some(g) = ev.body.interaction_guid.as_text() {
                by_guid.entry(g.into_owned()).or_default().push(input);
            }
        }
        agents.add(&input);
    }
    let max_time = event_times
        .values()
        .filter(|t| t.is_timed())
        .map(|t| t.ms)
        .max();
    let mut summaries: Vec<Summary> = by_guid.values().filter_map(|e| summarize(e)).collect();
    // Contacts (docs/METRICS.md §3) straight from the rule, over every leg.
    let parents: BTreeMap<String, Option<String>> = summaries
        .iter()
        .filter_map(|s| Some((s.interaction_guid.clone()?, s.parent_guid.clone())))
        .collect();
    for s in &mut summaries {
        let Some(guid) = s.interaction_guid.clone() else {
            continue;
        };
        let place = crate::contact::resolve_contact(
            &guid,
            |g| parents.get(g).cloned().flatten(),
            |g| parents.contains_key(g),
        );
        s.contact_id = Some(place.contact_id);
        s.leg_index = u64::from(place.leg_index);
    }
    summaries.sort_by(|a, b| {
        (a.offered_at, &a.interaction_guid).cmp(&(b.offered_at, &b.interaction_guid))
    });
    let mut out = String::new();
    for s in &summaries {
        out += &serde_json::to_string(s).unwrap();
        out.push('\n');
    }
    let links: std::collections::BTreeSet<(&str, &str)> = summaries
        .iter()
        .filter_map(|s| Some((s.parent_guid.as_deref()?, s.interaction_guid.as_deref()?)))
        .collect();
    for (parent, child) in links {
        out += &format!("child {parent} {child}\n");
    }
    for s in &summaries {
        let mut legs: Vec<Summary> = summaries
            .iter()
            .filter(|l| l.contact_id == s.contact_id)
            .cloned()
            .collect();
        legs.sort_by(|a, b| {
            (a.leg_index, a.offered_at, &a.interaction_guid).cmp(&(
                b.leg_index,
                b.offered_at,
                &b.interaction_guid,
            ))
        });
        out += &contact_line(s.interaction_guid.as_deref().unwrap(), &legs);
    }
    for opts in report_opts() {
        let mut rep = Report::new(opts);
        for s in &summaries {
            rep.add(s);
        }
        for row in rep.rows() {
            out += &serde_json::to_string(&row).unwrap();
            out.push('\n');
        }
    }
    for (from, to) in [(None, None), (Some(1_763_900_000_000), None)] {
        let window = AgentWindow {
            from,
            to,
            archive_max_time_ms: max_time.unwrap_or(i64::MIN),
        };
        for a in agents.clone().finish(&window) {
            out += &serde_json::to_string(&a).unwrap();
            out.push('\n');
        }
    }
    out += &format!(
        "{:?} {:?} {}\n",
        reader.visible_end(),
        max_time,
        summaries.len()
    );
    out
}

/// What the tenant index answers, per tenant in key order: its stats line,
/// its legs (`interactions --tenant`), its agents' state time and the
/// offsets of its events (`export --tenant`).
fn tenant_dump(p: &Projections, dir: &Path) -> String {
    let mut out = String::new();
    let mut reader = ArchiveReader::open(dir).unwrap();
    for st in p.tenant_stats(None).unwrap() {
        out += &serde_json::to_string(&st).unwrap();
        out.push('\n');
        let Some(t) = st.tenant else { continue };
        let filter = InteractionFilter {
            tenant: Some(t.clone()),
            ..InteractionFilter::default()
        };
        p.for_each_interaction(&filter, |s| {
            out += &serde_json::to_string(&s).unwrap();
            out.push('\n');
            Ok(true)
        })
        .unwrap();
        for a in p.tenant_agents_time(None, None, Some(&t)).unwrap() {
            out += &serde_json::to_string(&a).unwrap();
            out.push('\n');
        }
        p.tenant_records(&mut reader, &t, |r| {
            out += &format!("event {}\n", r.offset);
            Ok(())
        })
        .unwrap();
    }
    out
}

/// The same per tenant, straight from the archive's records and the rule
/// of `crate::tenant`, and from the unfiltered answers restricted to the
/// tenant (its legs, its agents' rows).
fn tenant_oracle(dir: &Path) -> String {
    let (_, recs) = archived(dir);
    let p = Projections::open_read_only_in(dir).unwrap();
    let mut legs = Vec::new();
    p.for_each_interaction(&InteractionFilter::default(), |s| {
        legs.push(s);
        Ok(true)
    })
    .unwrap();
    let all_agents = p.agents(None, None).unwrap();
    // tenant ("" none) -> (events, min, max); tenant -> agents.
    let mut counts: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    let mut agents: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut own: Vec<(u64, Option<String>, Option<String>)> = Vec::new();
    for r in &recs {
        let Ok(ev) = parse_event(&r.payload) else {
            continue;
        };
        let tenant = crate::tenant::event_tenant(r.source_kind, &r.source, &ev)
            .map(std::borrow::Cow::into_owned);
        let agent = ev.body.agent_id.as_text().map(|a| a.into_owned());
        let t = event_time(&ev, record_input(r).arrival());
        let c = counts
            .entry(tenant.clone().unwrap_or_default())
            .or_insert((0, i64::MAX, i64::MIN));
        c.0 += 1;
        if t.is_timed() {
            c.1 = c.1.min(t.ms);
            c.2 = c.2.max(t.ms);
        }
        if let (Some(tn), Some(a)) = (&tenant, &agent) {
            agents.entry(tn.clone()).or_default().insert(a.clone());
        }
        own.push((r.offset, tenant, agent));
    }
    for s in &legs {
        counts
            .entry(s.tenant.clone().unwrap_or_default())
            .or_insert((0, i64::MAX, i64::MIN));
    }
    let mut out = String::new();
    for (key, (events, min, max)) in &counts {
        let tenant = (!key.is_empty()).then(|| key.clone());
        let mine: Vec<&Summary> = legs.iter().filter(|s| s.tenant == tenant).collect();
        let contacts: std::collections::BTreeSet<&str> = mine
            .iter()
            .filter_map(|s| s.contact_id.as_deref())
            .collect();
        let st = TenantStats {
            tenant: tenant.clone(),
            events: *events,
            legs: mine.len() as u64,
            contacts: if tenant.is_some() {
                contacts.len() as u64
            } else {
                0
            },
            min_time_ms: (min <= max).then_some(*min),
            max_time_ms: (min <= max).then_some(*max),
        };
        out += &serde_json::to_string(&st).unwrap();
        out.push('\n');
        let Some(t) = tenant else { continue };
        for s in mine {
            out += &serde_json::to_string(s).unwrap();
            out.push('\n');
        }
        let theirs = agents.get(&t).cloned().unwrap_or_default();
        for a in all_agents.iter().filter(|a| theirs.contains(&a.agent_id)) {
            out += &serde_json::to_string(a).unwrap();
            out.push('\n');
        }
        for (offset, tenant, agent) in &own {
            let of_t = match tenant {
                Some(x) => *x == t,
                None => agent.as_ref().is_some_and(|a| theirs.contains(a)),
            };
            if of_t {
                out += &format!("event {offset}\n");
            }
        }
    }
    out
}

/// One leg's contact: its legs as `GUID@legIndex`, in order.
fn contact_line(guid: &str, legs: &[Summary]) -> String {
    let legs: Vec<String> = legs
        .iter()
        .map(|l| format!("{}@{}", l.interaction_guid.as_deref().unwrap(), l.leg_index))
        .collect();
    format!("contact of {guid}: {}\n", legs.join(" "))
}

fn catch_up(dir: &Path) -> Applied {
    let mut reader = ArchiveReader::open(dir).unwrap();
    let mut p = Projections::open(dir).unwrap();
    assert_eq!(p.access(), Access::Writable);
    p.catch_up(&mut reader, &mut |_| {}).unwrap()
}

/// `verify`'s check of the projections of `dir` through `reader` compares
/// them and finds nothing.
fn assert_checks_clean(dir: &Path, reader: &mut ArchiveReader) {
    assert_eq!(
        Projections::check(dir, reader, RebuildOptions::default()).unwrap(),
        Checked::Compared {
            consumed: reader.visible_end(),
            problems: vec![]
        }
    );
}

/// An archive of `lines`, its projections caught up.
fn archive_caught_up(lines: Vec<Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    import_lines(dir.path(), &lines);
    catch_up(dir.path());
    dir
}

#[test]
fn rebuild_and_incremental_catch_up_agree() {
    let lines = sim_lines(7, 400);
    assert!(lines.len() > 2000, "{} lines", lines.len());
    let half = lines.len() / 2;
    // Late events: every 9th line of the first half arrives only in the
    // last part, long after its interaction was summarized.
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for (i, l) in lines[..half].iter().enumerate() {
        if i % 9 == 4 {
            late.push(l.clone());
        } else {
            early.push(l.clone());
        }
    }
    let mut middle: Vec<Vec<u8>> = lines[half..half + 300].to_vec();
    // A second tenant's day, by its GUIDs' suffix.
    middle.extend(sim_tenant_lines(8, 60, "contoso02"));
    let mut rest: Vec<Vec<u8>> = lines[half + 300..].to_vec();
    // Duplicates of already archived lines, and the late events, mixed in.
    rest.extend(early.iter().step_by(5).cloned());
    rest.extend(late);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &early);
    let first = catch_up(d);
    assert!(first.rebuilt, "an empty store is rebuilt");
    import_lines(d, &middle);
    // A few events again over MQTT: their topic names the tenant.
    import_mqtt(d, &middle[..40], "acme/event-v1/all");
    // New ones too (archived from the topic; their copies in the file
    // later are duplicates): legs whose first topic tenant is not their
    // GUID's, with events of both tenants.
    import_mqtt(d, &rest[..60], "acme/event-v1/all");
    let second = catch_up(d);
    assert!(!second.rebuilt && second.records > 0);
    import_lines(d, &rest);
    let third = catch_up(d);
    assert!(!third.rebuilt && third.interactions > 0);
    // Nothing new: nothing done.
    let fourth = catch_up(d);
    assert_eq!((fourth.records, fourth.interactions), (0, 0));

    let incremental = dump(&Projections::open(d).unwrap());
    let expected = oracle(d);
    assert_eq!(incremental, expected, "incremental differs from the oracle");
    let tenants = tenant_dump(&Projections::open(d).unwrap(), d);
    let tenants_expected = tenant_oracle(d);
    assert_eq!(tenants, tenants_expected, "the tenant index differs");
    // Three tenants: the simulated ones and the MQTT topic's; events
    // without a tenant (status changes from a file) counted apart.
    for t in [
        r#""tenant":null"#,
        r#""tenant":"acme""#,
        r#""tenant":"contoso02""#,
        r#""tenant":"northwind01""#,
    ] {
        assert!(tenants.contains(t), "{t} missing:\n{tenants}");
    }

    let mut reader = ArchiveReader::open(d).unwrap();
    let mut p = Projections::open(d).unwrap();
    let full = p
        .rebuild(&mut reader, RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(full.deferred, 0);
    assert_eq!(dump(&p), expected, "rebuild differs from the oracle");
    assert_eq!(tenant_dump(&p, d), tenants_expected, "rebuilt tenant index");

    // A tiny buffer sets interactions aside; the result is the same.
    let tight = p
        .rebuild(
            &mut reader,
            RebuildOptions {
                workers: 1,
                buffer_bytes: 4096,
                ..RebuildOptions::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(tight.deferred > 0);
    assert_eq!(dump(&p), expected, "rebuild with deferral differs");
    assert_eq!(
        tenant_dump(&p, d),
        tenants_expected,
        "tenant index after deferral"
    );

    // Groups known a few records at a time (interactions crossing many
    // windows, some of them set aside): the result is the same.
    let roomy = RebuildOptions::default().buffer_bytes;
    for (window_records, buffer_bytes) in [(7, roomy), (5, 4096), (1, roomy)] {
        let windowed = p
            .rebuild(
                &mut reader,
                RebuildOptions {
                    workers: 2,
                    buffer_bytes,
                    window_records,
                },
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(windowed.records, full.records);
        assert_eq!(windowed.interactions, full.interactions);
        assert_eq!(
            dump(&p),
            expected,
            "rebuild with windows of {window_records} records differs"
        );
        assert_eq!(
            tenant_dump(&p, d),
            tenants_expected,
            "tenant index with windows of {window_records} records"
        );
    }

    // And a catch-up on top of a rebuild changes nothing.
    drop(p);
    let again = catch_up(d);
    assert_eq!(again.records, 0);
    assert_eq!(dump(&Projections::open(d).unwrap()), expected);
}

/// New records that touch most interactions (a shuffled capture imported
/// in two halves) are a rebuild, not a catch-up that recomputes each
/// interaction from records scattered over the log (25 to 80 times a
/// rebuild's time: an outside audit); a few late events are caught up.
/// Either way the projections are the oracle's.
/// `lines` in an order of their own (the same every run): every
/// interaction's records spread through the whole log.
fn shuffle(lines: &mut [Vec<u8>]) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..lines.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lines.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// A log out of time order (a capture imported shuffled): the first scan
/// can hold few interactions at once and sets most aside; further scans,
/// each taking a buffer's worth, recompute them, and what no scan can
/// take (an interaction larger than the buffer) is read through the index.
#[test]
fn a_log_out_of_time_order_is_rebuilt_by_further_scans() {
    let mut lines = sim_lines(13, 700);
    shuffle(&mut lines);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines);
    let expected = oracle(d);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut reader = ArchiveReader::open(d).unwrap();
    let mut p = Projections::open(d).unwrap();
    let mut rebuild = |buffer_bytes| {
        let applied = p
            .rebuild(
                &mut reader,
                RebuildOptions {
                    workers: 2,
                    buffer_bytes,
                    ..RebuildOptions::default()
                },
                &mut |_| {},
            )
            .unwrap();
        (applied, dump(&p))
    };
    let (roomy, all_at_once) = rebuild(4 * bytes);
    assert_eq!((roomy.deferred, roomy.rescans), (0, 0), "{roomy:?}");
    assert_eq!(all_at_once, expected);

    // An eighth of the log's bytes: a few scans.
    let (tight, rescanned) = rebuild(bytes / 8);
    assert!(tight.deferred > roomy.interactions / 2, "{tight:?}");
    assert!((2..=16).contains(&tight.rescans), "{tight:?}");
    assert_eq!(tight.interactions, roomy.interactions);
    assert_eq!(rescanned, expected, "rebuilt by further scans");

    // No interaction fits: one further scan completes none, and every
    // interaction set aside is read through the index.
    let (none_fit, through_index) = rebuild(1);
    assert_eq!(none_fit.rescans, 1, "{none_fit:?}");
    assert_eq!(none_fit.interactions, roomy.interactions);
    assert_eq!(through_index, expected, "rebuilt through the index");
}

#[test]
fn new_records_touching_most_interactions_rebuild() {
    let mut lines = sim_lines(12, 2600);
    // Shuffled: every interaction has records in both halves.
    shuffle(&mut lines);
    let half = lines.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines[..half - 50]);
    assert!(catch_up(d).rebuilt, "an empty store is rebuilt");
    import_lines(d, &lines[half - 50..half]);
    let few = catch_up(d);
    assert!(!few.rebuilt && few.interactions > 0, "{few:?}");
    import_lines(d, &lines[half..]);
    let most = catch_up(d);
    assert!(most.rebuilt, "{most:?}");
    assert_eq!(dump(&Projections::open(d).unwrap()), oracle(d));
}

/// Why a rebuild does not ask redb whether to compact its new file: the
/// file it leaves has no tenth free for compaction to give back, with the
/// interactions set aside and recomputed in a commit of their own too.
#[test]
fn a_rebuilt_file_has_nothing_for_compaction_to_give_back() {
    let lines = sim_lines(5, 600);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines);
    let path = Layout::new(d).projections_path();
    for opts in [
        RebuildOptions::default(),
        RebuildOptions {
            workers: 1,
            buffer_bytes: 4096,
            ..RebuildOptions::default()
        },
    ] {
        let mut reader = ArchiveReader::open(d).unwrap();
        let mut p = Projections::open(d).unwrap();
        let applied = p.rebuild(&mut reader, opts, &mut |_| {}).unwrap();
        assert!(applied.interactions > 500, "{applied:?}");
        drop(p);
        let mut db = redb::Database::open(&path).unwrap();
        let compacted = ccvault_store::compact_if_it_frees_enough(&mut db, &path).unwrap();
        assert!(!compacted, "a rebuilt file ({opts:?}) had a tenth free");
    }
}

/// A rebuild of days of hours (the chunks written on a thread of their
/// own, beside the sorted tables' threads, all in one transaction): the
/// store answers as the oracle.
#[test]
fn a_rebuild_of_days_of_report_chunks_equals_the_oracle() {
    let lines = lines_of(&SimConfig {
        seed: 11,
        // Days of business hours, ~8.5 chunks each.
        days: 10,
        agents: 4,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines);
    let applied = catch_up(d);
    assert!(applied.rebuilt, "an empty store is rebuilt");
    assert!(applied.interactions > 2_000, "{applied:?}");
    let p = Projections::open(d).unwrap();
    let hours = {
        let txn = p.read_txn().unwrap();
        let chunks = txn.open_table(schema::REPORT_CHUNKS).unwrap();
        redb::ReadableTableMetadata::len(&chunks).unwrap()
    };
    assert!(hours > 64, "{hours} hours of report chunks");
    assert_eq!(dump(&p), oracle(d));
}

#[test]
fn children_before_parents_and_a_parent_that_changes() {
    // Bare lines, so each one's leg can be read from the line itself.
    let quirks = ccvault_sim::Quirks {
        envelope_rate: 0.0,
        weak_event_ts: false,
        malformed_rate: 0.0,
        ..ccvault_sim::Quirks::default()
    };
    let lines = sim_lines_with(21, 400, quirks);
    let guid_of = |l: &[u8]| -> Option<String> {
        let ev = parse_event(l).ok()?;
        ev.body.interaction_guid.as_text().map(|g| g.into_owned())
    };
    let mut by_guid: BTreeMap<String, Vec<&Vec<u8>>> = BTreeMap::new();
    for l in &lines {
        if let Some(g) = guid_of(l) {
            by_guid.entry(g).or_default().push(l);
        }
    }
    let parent: BTreeMap<&str, Option<String>> = by_guid
        .iter()
        .map(|(g, ls)| {
            let inputs: Vec<crate::EventInput> = ls
                .iter()
                .map(|l| crate::EventInput {
                    payload: l,
                    ..Default::default()
                })
                .collect();
            (g.as_str(), summarize(&inputs).and_then(|s| s.parent_guid))
        })
        .collect();
    let depth = |g: &str| {
        let mut d = 0;
        let mut at = g.to_owned();
        while let Some(Some(p)) = parent.get(at.as_str()) {
            d += 1;
            at = p.clone();
            if d > 10 {
                break;
            }
        }
        d
    };
    let deepest = by_guid.keys().map(|g| depth(g)).max().unwrap();
    assert!(
        deepest >= 2,
        "the simulation has a transfer chain of 3 legs"
    );

    // One leg is first archived under a parent that is not its own; an
    // event earlier in canonical order, archived last, names the real one.
    let moved = by_guid.keys().find(|g| depth(g) == 1).unwrap().clone();
    let real_parent = parent[moved.as_str()].clone().unwrap();
    let first: &Vec<u8> = by_guid[&moved][0];
    let mut earlier: serde_json::Value = serde_json::from_slice(first).unwrap();
    let ts = earlier["Interaction"]["msgInfo"]["timestamp"]
        .as_i64()
        .unwrap();
    earlier["Interaction"]["msgInfo"]["timestamp"] = (ts - 1).into();
    let earlier = serde_json::to_vec(&earlier).unwrap();
    assert!(String::from_utf8_lossy(&earlier).contains(&real_parent));
    let decoy = |l: &Vec<u8>| -> Vec<u8> {
        String::from_utf8_lossy(l)
            .replace(&real_parent, "int-decoy-parent")
            .into_bytes()
    };

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The deepest legs first, the first legs (and lines of no leg) last,
    // each phase caught up before the next arrives.
    for level in (0..=deepest).rev() {
        let phase: Vec<Vec<u8>> = lines
            .iter()
            .filter(|l| guid_of(l).map_or(0, |g| depth(&g)) == level)
            .map(|l| {
                if guid_of(l).as_deref() == Some(moved.as_str()) {
                    decoy(l)
                } else {
                    l.clone()
                }
            })
            .collect();
        import_lines(d, &phase);
        catch_up(d);
    }
    let before = dump(&Projections::open(d).unwrap());
    assert!(before.contains(&format!("child int-decoy-parent {moved}\n")));
    import_lines(d, &[earlier]);
    let last = catch_up(d);
    assert!(!last.rebuilt && last.interactions == 1);

    let expected = oracle(d);
    assert!(expected.contains(&format!("child {real_parent} {moved}\n")));
    assert!(!expected.contains("int-decoy-parent"));
    // Three contacts of three legs, each listed from each of its legs.
    let three_legs = expected
        .lines()
        .filter(|l| l.starts_with("contact of ") && l.matches('@').count() == 3)
        .count();
    assert!(three_legs >= 9, "{expected}");
    assert_eq!(dump(&Projections::open(d).unwrap()), expected);

    let mut reader = ArchiveReader::open(d).unwrap();
    let mut p = Projections::open(d).unwrap();
    p.rebuild(&mut reader, RebuildOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(dump(&p), expected, "rebuild differs from the oracle");
}

/// A Pulsar envelope (as a capture holds it) of `payload`, published at
/// `publish_time`.
fn envelope(payload: &str, publish_time: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        r#"{{"messageId":"m","payload":"{b64}","properties":{{}},"publishTime":"{publish_time}","redeliveryCount":0}}"#
    )
    .into_bytes()
}

/// The archive's largest timed t(e), where the last agent states end
/// without `to`, is one over events: an event without a time of its own,
/// held by two envelopes, counts with the earlier `publishTime` (its t(e))
/// in whichever order they were archived, by a rebuild or catch-ups.
#[test]
fn the_largest_time_is_each_events_best_copys_in_any_order() {
    let status = br#"{"AgentStatusChange":{"agentId":"a1","newState":5,"statusEventTS":1763900000,"msgInfo":{}}}"#.to_vec();
    let deleted = r#"{"Interaction":{"event":"InteractionDeleted","interactionGUID":"int-k-phone-00-acme01","msgInfo":{}}}"#;
    // 2025-11-23T12:15:00Z and 12:14:10Z: 100 s and 50 s after the change.
    let later = envelope(deleted, "2025-11-23T12:15:00.000Z");
    let earlier = envelope(deleted, "2025-11-23T12:14:10.000Z");
    let best = 1_763_900_050_000;
    let orders: [(&str, Vec<Vec<Vec<u8>>>); 4] = [
        (
            "later copy first, a catch-up between",
            vec![vec![status.clone(), later.clone()], vec![earlier.clone()]],
        ),
        (
            "later copy first, one import",
            vec![vec![status.clone(), later.clone(), earlier.clone()]],
        ),
        (
            "earlier copy first",
            vec![vec![status.clone(), earlier.clone()], vec![later.clone()]],
        ),
        (
            "the copies before the change",
            vec![
                vec![later.clone()],
                vec![earlier.clone()],
                vec![status.clone()],
            ],
        ),
    ];
    let mut dumps = Vec::new();
    for (name, imports) in orders {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for lines in &imports {
            import_lines(d, lines);
            catch_up(d);
        }
        let p = Projections::open(d).unwrap();
        assert_eq!(p.state().unwrap().max_time_ms, Some(best), "{name}");
        let agents = p.agents(None, None).unwrap();
        assert_eq!(agents[0].state_ms.get(&5), Some(&50_000), "{name}");
        let incremental = dump(&p);
        assert_eq!(
            incremental,
            oracle(d),
            "{name}: catch-ups against the oracle"
        );
        drop(p);
        let mut reader = ArchiveReader::open(d).unwrap();
        let mut p = Projections::open(d).unwrap();
        p.rebuild(&mut reader, RebuildOptions::default(), &mut |_| {})
            .unwrap();
        assert_eq!(
            dump(&p),
            incremental,
            "{name}: the rebuild against the catch-ups"
        );
        drop(p);
        let mut reader = ArchiveReader::open(d).unwrap();
        assert_eq!(
            Projections::check(d, &mut reader, RebuildOptions::default()).unwrap(),
            Checked::Compared {
                consumed: reader.visible_end(),
                problems: vec![]
            },
            "{name}"
        );
        dumps.push(incremental);
    }
    assert!(dumps.windows(2).all(|w| w[0] == w[1]), "{dumps:#?}");
}

/// A check whose reader opened before another process caught the
/// projections up past it compares nothing (a recompute up to its reader's
/// end would differ from them: until 2026-12-07 it reported them damaged);
/// with a reader that sees what they applied, it compares them.
#[test]
fn a_check_behind_projections_caught_up_meanwhile_compares_nothing() {
    let lines = sim_lines(4, 60);
    let (first, second) = lines.split_at(lines.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, first);
    catch_up(d);
    let mut early = ArchiveReader::open(d).unwrap();
    import_lines(d, second);
    catch_up(d);
    let mut reader = ArchiveReader::open(d).unwrap();
    assert_eq!(
        Projections::check(d, &mut early, RebuildOptions::default()).unwrap(),
        Checked::Ahead {
            consumed: reader.visible_end()
        }
    );
    assert_checks_clean(d, &mut reader);
}

/// Where they stopped, damaged, on a log that lost nothing: not called
/// stale (until 2026-12-07 `verify` said the log had lost records and
/// called the archive clean: an outside audit), and the next read
/// rebuilds them.
#[test]
fn a_damaged_anchor_is_no_loss_of_the_log() {
    let dir = archive_caught_up(sim_lines(5, 60));
    let d = dir.path();
    let healthy = dump(&Projections::open(d).unwrap());
    // Each damage: the key, and its new value (`None`: the key gone).
    type Damage = (&'static str, fn(i64) -> Option<i64>);
    let damages: [Damage; 7] = [
        ("scan_hash", |v| Some(v ^ 1)),
        ("scan_offset", |v| Some(v ^ 1)),
        ("scan_ingest_ms", |v| Some(v ^ 1)),
        ("scan_pos", |v| Some(v ^ 1)),
        // Applied past the log's end, or not the records below the one
        // they stopped at, or nothing: a catch-up from there applied
        // records twice (an outside audit saw tenants' counts doubled).
        ("consumed", |v| Some(v + 2)),
        ("consumed", |v| Some(v / 2)),
        ("consumed", |_| None),
    ];
    for (key, damage) in damages {
        {
            let p = Projections::open(d).unwrap();
            let db = p.writable().unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                let v = redb::ReadableTable::get(&meta, key)
                    .unwrap()
                    .unwrap()
                    .value();
                match damage(v) {
                    Some(w) => drop(meta.insert(key, w).unwrap()),
                    None => drop(meta.remove(key).unwrap()),
                }
            }
            txn.commit().unwrap();
        }
        let mut reader = ArchiveReader::open(d).unwrap();
        match Projections::check(d, &mut reader, RebuildOptions::default()).unwrap() {
            Checked::NotOfThisLog(why) => assert!(why.contains("records no loss"), "{key}: {why}"),
            other => panic!("{key}: {other:?}"),
        }
        catch_up(d);
        assert_eq!(dump(&Projections::open(d).unwrap()), healthy, "{key}");
    }
}

/// A summary that differs from the log's is named by its offered time and
/// GUID, not by the GUID's stored bytes (until 2026-12-08 `verify` printed
/// them as a list of numbers: an outside audit).
#[test]
fn a_differing_summary_is_named_by_its_guid() {
    let dir = archive_caught_up(sim_lines(6, 60));
    let d = dir.path();
    let (offered_at, guid) = {
        let p = Projections::open(d).unwrap();
        let db = p.writable().unwrap();
        let txn = db.begin_write().unwrap();
        let key = {
            let mut t = txn.open_table(schema::BY_OFFERED).unwrap();
            let (offered_at, stored) = {
                let (k, _) = redb::ReadableTable::first(&t).unwrap().unwrap();
                let (offered_at, stored) = k.value();
                (offered_at, stored.to_vec())
            };
            t.insert((offered_at, &stored[..]), &[0u8][..]).unwrap();
            (
                offered_at,
                crate::codec::decode_guid(&stored, offered_at).unwrap(),
            )
        };
        txn.commit().unwrap();
        key
    };
    let mut reader = ArchiveReader::open(d).unwrap();
    match Projections::check(d, &mut reader, RebuildOptions::default()).unwrap() {
        Checked::Compared { problems, .. } => {
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert!(
                problems[0].contains(&format!(
                    "the value of key (offered {offered_at} ms, GUID {guid:?}) is not the log's"
                )),
                "{problems:#?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A new projections file is made whole before it is linked in: redb
/// writes a new file's magic number last, and a read killed while it made
/// one in place left a file every later read called damaged (an outside
/// audit). What a killed making leaves (a half-made file beside, no file,
/// a file of no bytes, or the made file under both names) is made good
/// by the next open, which answers as the oracle does; a file planted
/// under such a name (another redb file, linked) is never opened.
#[test]
fn a_projections_file_killed_while_made_is_made_again() {
    let lines = sim_lines(8, 60);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines);
    let path = Layout::new(d).projections_path();
    // Another process's name: no process has pid 2^22 + 1.
    let stale = path.with_extension("redb.new.4194305-0");
    // Half made: a redb file whose magic number is not written yet.
    drop(schema::builder().create(&stale).unwrap());
    let mut bytes = std::fs::read(&stale).unwrap();
    bytes[..9].fill(0);
    std::fs::write(&stale, &bytes).unwrap();
    assert!(!path.exists());
    catch_up(d);
    assert!(!stale.exists(), "the half-made file is gone");
    let made = dump(&Projections::open(d).unwrap());
    assert_eq!(made, oracle(d));

    // A file of no bytes at `path`.
    std::fs::write(&path, b"").unwrap();
    catch_up(d);
    assert_eq!(dump(&Projections::open(d).unwrap()), made);

    // Linked in, the process killed before it removed its other name.
    std::fs::hard_link(&path, &stale).unwrap();
    catch_up(d);
    assert!(!stale.exists(), "the second name is gone");
    assert_eq!(dump(&Projections::open(d).unwrap()), made);

    // The index linked under names of this process and another: neither
    // is opened as the projections, and the index is untouched.
    let index = Layout::new(d).index_path();
    let index_bytes = std::fs::read(&index).unwrap();
    std::fs::remove_file(&path).unwrap();
    let own = path.with_extension(format!("redb.new.{}-0", std::process::id()));
    std::fs::hard_link(&index, &own).unwrap();
    std::fs::hard_link(&index, &stale).unwrap();
    catch_up(d);
    assert_eq!(dump(&Projections::open(d).unwrap()), made);
    assert!(!stale.exists() && !own.exists());
    assert!(
        std::fs::read(&index).unwrap() == index_bytes,
        "the index was written"
    );
    let mut reader = ArchiveReader::open(d).unwrap();
    assert_checks_clean(d, &mut reader);
}

#[test]
fn a_version_change_rebuilds() {
    let dir = archive_caught_up(sim_lines(3, 60));
    let d = dir.path();
    {
        let p = Projections::open(d).unwrap();
        let db = p.writable().unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("version", PROJECTION_VERSION - 1)
            .unwrap();
        // As version 11 keyed it: by the GUID's text.
        txn.delete_table(schema::BY_OFFERED).unwrap();
        let old: redb::TableDefinition<(i64, &str), &[u8]> =
            redb::TableDefinition::new("interactions_by_offered");
        txn.open_table(old)
            .unwrap()
            .insert((1, "int-1-a"), &[0u8][..])
            .unwrap();
        txn.commit().unwrap();
    }
    // Read-only, the old file is refused by its version, not its types.
    let e = Projections::open_read_only_in(d).and_then(|p| p.state().map(|s| s.version));
    assert_eq!(e.unwrap(), Some(PROJECTION_VERSION - 1));
    let applied = catch_up(d);
    assert!(applied.rebuilt);
    assert_eq!(dump(&Projections::open(d).unwrap()), oracle(d));
}

#[test]
fn a_second_process_reads_read_only() {
    let dir = archive_caught_up(sim_lines(5, 30));
    let d = dir.path();
    let holder = Projections::open(d).unwrap();
    assert_eq!(holder.access(), Access::Writable);
    // redb refuses a second writable handle in one process just as across
    // processes, so this is what another process would see.
    let other = Projections::open(d).unwrap();
    assert_eq!(other.access(), Access::ReadOnly);
    assert_eq!(dump(&other), dump(&holder));
    let mut reader = ArchiveReader::open(d).unwrap();
    let mut other = other;
    assert!(matches!(
        other.catch_up(&mut reader, &mut |_| {}),
        Err(ProjectionError::ReadOnly(_))
    ));
}

/// A handle another process's catch-ups commit under reads them once pinned
/// (`pin_reads`): every query of it, the state and the rows, from one
/// snapshot. Unpinned, each query began its own read, and a command beside
/// `serve` printed rows from a newer commit than the state it said it
/// showed (an outside audit).
#[test]
fn a_pinned_read_only_handle_reads_one_snapshot_across_another_writers_commit() {
    let lines = sim_lines(12, 60);
    let half = lines.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The projections' rows and the record they stop at.
    let seen = |p: &Projections| (dump(p), p.state().unwrap().consumed);
    let mut writer = Projections::open(d).unwrap();
    assert_eq!(writer.access(), Access::Writable);
    let commit = |writer: &mut Projections, part: &[Vec<u8>]| {
        import_lines(d, part);
        let mut reader = ArchiveReader::open(d).unwrap();
        writer.catch_up(&mut reader, &mut |_| {}).unwrap();
        seen(writer)
    };
    let before = commit(&mut writer, &lines[..half]);

    let mut pinned = Projections::open(d).unwrap();
    let unpinned = Projections::open(d).unwrap();
    assert_eq!(pinned.access(), Access::ReadOnly);
    pinned.pin_reads().unwrap();

    // The other process commits the second half.
    let after = commit(&mut writer, &lines[half..]);
    assert_ne!(before, after, "the second half changes the projections");

    assert_eq!(seen(&pinned), before);
    assert_eq!(seen(&unpinned), after);
}

/// A catch-up that notes what it did names exactly the legs the new records
/// touch, each with the stage `live_stage` gives from all its archived
/// records (what the server's wallboard takes instead of reading them
/// again); a rebuild names none.
#[test]
fn a_noting_catch_up_names_the_touched_legs_with_their_stage() {
    use std::ops::ControlFlow;

    let lines = sim_lines(11, 200);
    let half = lines.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &lines[..half]);
    let mut p = Projections::open(d).unwrap();
    let mut noted = Touched::default();
    let mut reader = ArchiveReader::open(d).unwrap();
    let first = p
        .catch_up_noting(&mut reader, &mut |_| {}, Some(&mut noted))
        .unwrap();
    assert!(first.rebuilt, "an empty store is rebuilt");
    assert!(noted.legs.is_empty(), "a rebuild names no legs");

    // Mid-day: some calls of the new records are still in progress.
    import_lines(d, &lines[half..half + 150]);
    let mut reader = ArchiveReader::open(d).unwrap();
    let applied = p
        .catch_up_noting(&mut reader, &mut |_| {}, Some(&mut noted))
        .unwrap();
    assert!(!applied.rebuilt);
    assert_eq!(noted.from, first.consumed);
    let mut guids = std::collections::BTreeSet::new();
    let scanned = reader
        .records()
        .scan(ccvault_store::Position::START, |_, rec| {
            if rec.offset >= first.consumed && !rec.quarantined {
                if let Some(g) = parse_event(rec.payload)
                    .ok()
                    .and_then(|e| e.body.interaction_guid.as_text().map(|g| g.into_owned()))
                {
                    guids.insert(g);
                }
            }
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert!(scanned.is_continue());
    let expected: BTreeMap<String, Option<crate::Live>> = guids
        .into_iter()
        .map(|g| {
            let records: Vec<_> = reader
                .interaction_records(&g)
                .unwrap()
                .into_iter()
                .filter(|r| !r.quarantined)
                .collect();
            let inputs: Vec<_> = records.iter().map(record_input).collect();
            (g, crate::live_stage(&inputs))
        })
        .collect();
    let got: BTreeMap<String, Option<crate::Live>> = noted.legs.iter().cloned().collect();
    assert_eq!(got.len(), noted.legs.len(), "each leg named once");
    assert_eq!(got, expected);
    assert!(
        got.values().filter(|l| l.is_some()).count() > 0
            && got.values().filter(|l| l.is_none()).count() > 0,
        "legs in progress and legs ended: {got:?}"
    );
}

#[test]
fn rows_of_one_offered_at_are_listed_in_guid_order() {
    // Two tenants' days from the same start: many legs share an offeredAt.
    let mut lines = sim_lines(11, 3000);
    lines.extend(sim_tenant_lines(12, 2000, "contoso02"));
    let dir = tempfile::tempdir().unwrap();
    import_lines(dir.path(), &lines);
    catch_up(dir.path());
    let p = Projections::open_read_only_in(dir.path()).unwrap();
    // The packed keys of some offeredAt sort otherwise than their GUIDs,
    // so the order below is the readers' sort, not the table's.
    let mut by_at: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    {
        let txn = p.read_txn().unwrap();
        let t = txn.open_table(schema::BY_OFFERED).unwrap();
        for item in redb::ReadableTable::iter(&t).unwrap() {
            let (k, _) = item.unwrap();
            let (at, key) = k.value();
            by_at
                .entry(at)
                .or_default()
                .push(crate::codec::decode_guid(key, at).unwrap());
        }
    }
    assert!(
        by_at.values().any(|g| !g.is_sorted()),
        "no offeredAt whose packed keys sort otherwise than its GUIDs"
    );
    let listed = |tenant: Option<&str>| {
        let mut out = Vec::new();
        let filter = InteractionFilter {
            tenant: tenant.map(str::to_owned),
            ..InteractionFilter::default()
        };
        p.for_each_interaction(&filter, |s| {
            out.push((s.offered_at, s.interaction_guid.unwrap_or_default()));
            Ok(true)
        })
        .unwrap();
        out
    };
    let all = listed(None);
    let mut expected: Vec<(i64, String)> = by_at
        .into_iter()
        .flat_map(|(at, guids)| guids.into_iter().map(move |g| (at, g)))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    for tenant in ["northwind01", "contoso02"] {
        let mine: Vec<(i64, String)> = all
            .iter()
            .filter(|(_, g)| g.ends_with(tenant))
            .cloned()
            .collect();
        assert!(!mine.is_empty());
        assert_eq!(listed(Some(tenant)), mine, "{tenant}");
    }
}

#[test]
fn later_windows_read_back_from_their_buckets_group_alike() {
    // Late events stretch interactions over many windows of a few records.
    let lines = sim_lines(3, 120);
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for (i, l) in lines.into_iter().enumerate() {
        if i % 7 == 3 {
            late.push(l);
        } else {
            early.push(l);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_lines(d, &early);
    import_lines(d, &late);
    let reader = ArchiveReader::open(d).unwrap();
    let end = reader.visible_end();
    let scratch = d.join("projections.redb.rebuild");
    // What `take` says of each offset that `read` picks, in order.
    let takes = |window: u64, on_disk: bool, read: &dyn Fn(u64) -> bool| {
        let mut g = group_window::GroupWindow::new(reader.index(), &scratch, on_disk, end, window);
        (0..end)
            .filter(|&o| read(o))
            .map(|o| (o, g.take(o).unwrap()))
            .collect::<Vec<_>>()
    };
    let every: &dyn Fn(u64) -> bool = &|_| true;
    // The groups as one pass over the index numbers them (the windows' pass
    // runs each half of the GUID hashes on a thread of its own).
    let mut members: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut keys: BTreeMap<u32, u64> = BTreeMap::new();
    let mut gid = 0u32;
    reader
        .index()
        .for_each_guid_group(|hash, hits| {
            let mut mine: Vec<u64> = hits.iter().map(|h| h.offset).filter(|&o| o < end).collect();
            mine.sort_unstable();
            if !mine.is_empty() {
                members.insert(gid, mine);
                keys.insert(gid, hash);
            }
            gid += 1;
        })
        .unwrap();
    let taken_of = |gid: u32, left: u32, size: u32| group_window::Taken {
        gid,
        left,
        size,
        guid_hash: keys[&gid],
    };
    assert!(members.len() > 100, "{} groups", members.len());
    let group_of: BTreeMap<u64, u32> = members
        .iter()
        .flat_map(|(&gid, offsets)| offsets.iter().map(move |&o| (o, gid)))
        .collect();
    // One window: each record's group, its records after it, and from it.
    let truth: Vec<_> = (0..end)
        .map(|o| {
            let t = group_of.get(&o).map(|&gid| {
                let from = members[&gid].iter().filter(|&&m| m >= o).count() as u32;
                taken_of(gid, from - 1, from)
            });
            (o, t)
        })
        .collect();
    assert_eq!(takes(u64::MAX, false, every), truth);
    // A window counts a group's records from the window's start, whatever
    // the scan passed over before it.
    let expected = |window: u64, read: &dyn Fn(u64) -> bool| {
        let (mut current, mut taken) = (u64::MAX, BTreeMap::<u32, u32>::new());
        let mut out = Vec::new();
        for (o, t) in truth.iter().filter(|(o, _)| read(*o)) {
            let w = o / window;
            if w != current {
                (current, taken) = (w, BTreeMap::new());
            }
            out.push((
                *o,
                t.map(|group_window::Taken { gid, .. }| {
                    let from = w.saturating_mul(window);
                    let total = members[&gid].iter().filter(|&&m| m >= from).count() as u32;
                    let n = taken.entry(gid).or_default();
                    let before = total - *n;
                    *n += 1;
                    taken_of(gid, before - 1, before)
                }),
            ));
        }
        out
    };
    assert_eq!(expected(u64::MAX, every), truth);
    // Whole windows skipped by the scan (as records it does not ask for).
    let gaps: &dyn Fn(u64) -> bool = &|o| !(20..45).contains(&o) && o % 3 != 1;
    for read in [every, gaps] {
        for window in [1, 4, 9, 1000] {
            for on_disk in [false, true] {
                assert_eq!(
                    takes(window, on_disk, read),
                    expected(window, read),
                    "windows of {window} records (on disk: {on_disk})"
                );
            }
        }
    }
    // The scratch files are gone, even while written.
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".window."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// What a report hands its rows to.
type RowBatches<'a> = dyn FnMut(Vec<ReportRow>) -> Result<bool> + 'a;

#[test]
fn a_report_read_in_spans_of_an_hour_equals_one_fold() {
    // Five simulated days around New York's fall-back (a 25-hour day).
    let start_ms = 1_761_868_800_000; // 2025-10-31T00:00:00Z
    let lines = lines_of(&SimConfig {
        seed: 11,
        days: 5,
        agents: 6,
        start_ms,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    import_lines(dir.path(), &lines);
    let mut p = Projections::open(dir.path()).unwrap();
    let mut reader = ArchiveReader::open(dir.path()).unwrap();
    p.rebuild(&mut reader, Default::default(), &mut |_| {})
        .unwrap();
    // The windows of `report_opts`, moved to these days.
    let shift = |at: Option<i64>| at.map(|at| at - ccvault_sim::DEFAULT_START_MS + start_ms);
    let mut all_opts: Vec<ReportOptions> = report_opts()
        .into_iter()
        .map(|o| ReportOptions {
            from: shift(o.from),
            to: shift(o.to),
            ..o
        })
        .collect();
    all_opts.push(ReportOptions {
        interval: Interval::Day1,
        by: GroupBy::QUEUE,
        tz: TimeZone::get("America/New_York").unwrap(),
        ..ReportOptions::default()
    });
    all_opts.push(ReportOptions {
        interval: Interval::Hour1,
        by: GroupBy {
            queue: true,
            agent: true,
            channel: true,
        },
        tz: TimeZone::get("Asia/Kathmandu").unwrap(),
        ..ReportOptions::default()
    });
    for opts in all_opts {
        // The reference: every leg folded into one report, rows at the end.
        let mut one = Report::new(opts.clone());
        p.for_each_interaction(&InteractionFilter::default(), |s| {
            one.add(&s);
            Ok(true)
        })
        .unwrap();
        let one = one.rows();
        assert!(!one.is_empty());
        let batches = |read: &dyn Fn(&mut RowBatches)| {
            let mut got = Vec::new();
            read(&mut |rows| {
                assert!(!rows.is_empty(), "an empty batch");
                got.push(rows);
                Ok(true)
            });
            got
        };
        let hourly = batches(&|f| p.report_in_spans(opts.clone(), 1, f).unwrap());
        let daily = batches(&|f| p.report_each(opts.clone(), f).unwrap());
        let by_leg = batches(&|f| p.report_from_summaries(opts.clone(), None, f).unwrap());
        for (what, got) in [("hourly", hourly), ("daily", daily), ("by leg", by_leg)] {
            // Rows came before the end, not only after it (a day's rows
            // in the window of `report_opts`' last, which cuts hours).
            let whole_days = opts.from.is_none();
            assert!(
                !whole_days || got.len() >= 2,
                "{what}: {} batches, {opts:?}",
                got.len()
            );
            assert_eq!(got.concat(), one, "{what} {opts:?}");
        }
        // Stopping after the first batch stops.
        let mut calls = 0;
        p.report_in_spans(opts.clone(), 1, |_| {
            calls += 1;
            Ok(false)
        })
        .unwrap();
        assert_eq!(calls, 1);
    }
}
